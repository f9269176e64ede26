/* checkpoint: a model's durable state after a block, and the store that keeps it.
 *
 * A checkpoint holds everything a worker needs to take over a model: the engine state
 * (state.h bytes), the id maps (external ids in row order), the input offsets the model has
 * durably consumed (per topic partition: the next offset to read for this model), and the
 * windowing state. Format (little-endian):
 *   "CCDCKPT1" magic, u32 format version, u32 CRC-32 of the payload, u64 payload length, payload.
 * Decoding checks magic, version, length and CRC before reading anything, then every count
 * against the bytes left, so a truncated or corrupted file is refused with a message.
 *
 * Directory store: DIR/<model>/block-<k, 8 digits>.ckpt. A save writes DIR/<model>/.tmp-*,
 * fsyncs it, renames it into place and fsyncs the directory, so a reader (or a crash) only ever
 * sees complete files; then it deletes all but the newest `keep`. Loading takes the newest file
 * that decodes; a newer file that does not decode is reported (warning) and skipped, so a torn
 * or corrupted newest checkpoint falls back to the previous one. A full disk fails the save with
 * a clear error, removes the temporary file, and leaves the previous checkpoints untouched. */
#ifndef CCD_CHECKPOINT_H
#define CCD_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#define CKPT_VERSION 1
#define CKPT_MAX_TOPIC 249 /* Kafka's limit on topic names */

typedef struct {
    char topic[CKPT_MAX_TOPIC + 1];
    int32_t partition;
    int64_t next_offset; /* every message of this model below it is in the state */
} ckpt_offset;

typedef struct {
    char model[128];
    int block;                 /* last block folded into the state (-1: none) */
    int64_t window_start_ms;   /* event-time windows: start of the open window (or INT64_MIN) */
    int64_t events_total;      /* events counted into blocks 0..block */
    int64_t published_version; /* Redis version of the student of `block` (0: not published) */
    unsigned char *state;      /* ccd_state_serialize bytes (owned) */
    size_t state_len;
    int n_users, n_items;
    char **user_ids;           /* (n_users) owned strings, row order */
    char **item_ids;           /* (n_items) */
    int n_offsets;
    ckpt_offset *offsets;      /* (n_offsets) owned */
} checkpoint;

void checkpoint_init(checkpoint *c);
void checkpoint_free(checkpoint *c);

/* Serialise into a malloc'd buffer. Returns 0 or -1 (out of memory). */
int checkpoint_encode(const checkpoint *c, unsigned char **buf, size_t *len);
/* Decode (c is initialised here; on failure it is left empty). Returns 0 or -1 with err. */
int checkpoint_decode(checkpoint *c, const unsigned char *buf, size_t len, char *err, size_t errlen);

/* mkdir -p path (0755), new directories fsynced into their parents. Returns 0 or -1 with err. */
int checkpoint_make_dirs(const char *path, char *err, size_t errlen);

/* Save as DIR/<model>/block-<k>.ckpt atomically, keeping the newest `keep` (>= 1).
 * Returns 0 or -1 with a message (errno text, path). */
int checkpoint_save(const char *dir, const checkpoint *c, int keep, char *err, size_t errlen);

/* Load the newest checkpoint of model that decodes. Returns 1 (loaded into c), 0 (none: c is
 * empty), or -1 (the directory cannot be read; err). warn (may be NULL) receives messages about
 * files that were skipped. */
int checkpoint_load_latest(const char *dir, const char *model, checkpoint *c,
                           void (*warn)(void *ctx, const char *msg), void *warn_ctx, char *err, size_t errlen);

#endif
