/* checkpoint: a model's durable state after a block, and the store that keeps it.
 *
 * A checkpoint holds everything a worker needs to take over a model: the engine state
 * (state.h bytes), the id maps (external ids in row order), the input offsets the model has
 * durably consumed (per topic partition: the next offset to read for this model), and the
 * windowing state. Format (little-endian, le.h's frame):
 *   "CCDCKPT1" magic, u32 format version (2; 1 still decodes), u32 CRC-32 of the payload, u64
 * payload length, payload. Decoding checks magic, version, length and CRC before reading anything,
 * then every count against the bytes left, so a truncated or corrupted checkpoint is refused with a
 * message.
 *
 * The store: one interface, two backends, chosen once at start-up from the worker config
 * (checkpoint.store = dir | redis). It is a small vtable over bytes: a backend only claims a
 * model (owner epochs) and puts, lists and gets encoded checkpoints under (model, block). What must
 * not depend on where the bytes live is written once, in checkpoint_store.c: the checks before a
 * save (a save never writes what a load would refuse), encoding, and the load's fallback: newest
 * first, skipping (with a warning) a checkpoint that cannot be read, does not decode, or holds
 * another model or block, and failing when none of those stored loads (a silent fresh start would
 * re-consume or skip input). A store is used by one thread at a time: the worker opens one per
 * thread (the directory backend has no state; the Redis one owns its connection).
 *
 * Directory backend (checkpoint_dir.c): DIR/<model>/block-<k, 8 digits>.ckpt. A save writes
 * DIR/<model>/.tmp-*, fsyncs it, renames it into place and fsyncs the directory, so a reader (or
 * a crash) only ever sees complete files; then it deletes all but the newest `keep`. A full disk
 * fails the save with a clear error, removes the temporary file, and leaves the previous
 * checkpoints untouched. Owners: DIR/<model>/owner/e-<epoch, 20 digits>, one file per claim; a
 * fenced save compares its epoch with the newest one before the rename, and sweeps only the
 * temporary files of older epochs (a crashed or stalled owner's leftovers).
 *
 * Redis backend (checkpoint_redis.c), for groups without a shared volume (P = [redis] prefix):
 *   P:{M}:owner                    hash: the owner record (epoch, member, source, claimed_ms, ...)
 *   P:{M}:ckpt:<block, 8 digits>:m  manifest of a checkpoint stored in chunks (written last)
 *   P:{M}:ckpts                    sorted set of the stored blocks (score = block)
 * Fenced Lua scripts check the owner epoch and commit the manifest and the set together; chunk
 * sizes follow checkpoint.redis_chunk_bytes, so no checkpoint is too large for one Redis string.
 * The single-string checkpoints of earlier builds (P:{M}:ckpt:<block>) still load. */
#ifndef CCD_CHECKPOINT_H
#define CCD_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CKPT_VERSION 2     /* 2: commit_floor per partition; version 1 still decodes */
#define CKPT_MAX_TOPIC 249 /* Kafka's limit on topic names */

typedef struct {
    char topic[CKPT_MAX_TOPIC + 1];
    int32_t partition;
    int64_t next_offset;  /* every message of this model below it is in the state */
    int64_t commit_floor; /* the group's committed offset of this partition when the block was
                           * taken (a lower bound; -1 unknown): a successor starting below it
                           * means the offsets were reset or the topic recreated */
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
    char **user_ids; /* (n_users) owned strings, row order */
    char **item_ids; /* (n_items) */
    int n_offsets;
    ckpt_offset *offsets; /* (n_offsets) owned */
} checkpoint;

void checkpoint_init(checkpoint *c);
void checkpoint_free(checkpoint *c);

/* What the decoder would refuse (bad model id, negative counts, missing arrays, ...): 0, or -1
 * with a reason in why. */
int checkpoint_check(const checkpoint *c, char *why, size_t whylen);
/* Serialise into a malloc'd buffer. Returns 0 or -1 (checkpoint_check refuses it, or out of
 * memory). */
int checkpoint_encode(const checkpoint *c, unsigned char **buf, size_t *len);
/* Decode (c is initialised here; on failure it is left empty). Returns 0 or -1 with err. */
int checkpoint_decode(checkpoint *c, const unsigned char *buf, size_t len, char *err,
                      size_t errlen);

/* mkdir -p path (0755), new directories fsynced into their parents (the directory backend's, in
 * checkpoint_dir.c; ccd-offline uses it too). Returns 0 or -1 with err. */
int checkpoint_make_dirs(const char *path, char *err, size_t errlen);

/* ------------------------------------------------------------------------------------------ */
/* the store */

#define CKPT_FENCED (-2) /* a save refused: a newer owner has claimed the model (err names it) */

/* One ownership of a model (issue 17, docs/design-fencing.md section 1). */
typedef struct {
    uint64_t epoch;        /* ours, minted by the claim: above every earlier claim's */
    char prev_member[128]; /* the previous claimant's member id ("" when none) */
    char prev_source[300]; /* the previous claimant's "topic/partition" ("" when none) */
} ckpt_claim;

/* A backend: bytes under (model, block), and the model's owner epochs. Every function returns -1
 * with a message on a store error; model ids reach it already checked (model_id.h). */
typedef struct {
    /* Mint a new owner epoch for model, above every earlier claim's, recording member and source
     * (see ckpt_store_claim). 0 or -1. */
    int (*claim)(void *impl, const char *model, const char *member, const char *source,
                 ckpt_claim *out, char *err, size_t errlen);
    /* Store buf as the model's checkpoint of block, replacing one of the same block, then keep
     * only the newest `keep` blocks. 0 once the checkpoint is durable (pruning may fail quietly:
     * the next save retries it); CKPT_FENCED when a claim newer than epoch (0: unfenced) exists,
     * leaving the stored checkpoints as they were; 1 when it is durable but a newer claim came
     * between the check and the write (err says so; nothing pruned); 2 when it is durable and
     * raised the fence to epoch (the stored one was lower: a lost claim record). */
    int (*put)(void *impl, const char *model, int block, uint64_t epoch, const unsigned char *buf,
               size_t len, int keep, char *err, size_t errlen);
    /* The stored blocks, newest first, in a malloc'd array (*blocks, NULL when none). Returns the
     * count (0: no checkpoint, not even a place for them yet) or -1. */
    int (*list)(void *impl, const char *model, int **blocks, char *err, size_t errlen);
    /* One stored checkpoint into a malloc'd buffer: 1 read, 0 to be skipped (gone since it was
     * listed, or unreadable: the reason in err), -1 when the store itself fails (stop loading). */
    int (*get)(void *impl, const char *model, int block, unsigned char **buf, size_t *len,
               char *err, size_t errlen);
    /* Where a block lives (block -1: where the model's checkpoints live), for messages. */
    void (*where)(const void *impl, const char *model, int block, char *out, size_t outlen);
    void (*close)(void *impl);
    /* Blobs (teacher_jobs.h; last, so that older positional initialisers stay valid): whole byte
     * strings under (model, name), name of [A-Za-z0-9._-]. put_blob stores buf atomically (a reader
     * sees all of it or nothing; durable on return); get_blob: 1 read into a malloc'd buffer, 0
     * absent, -1 store error (buf NULL: only whether it exists, the same codes); del_blob: 0
     * (absent too) or -1. Unfenced: the caller puts the owner epoch into the name. */
    int (*put_blob)(void *impl, const char *model, const char *name, const unsigned char *buf,
                    size_t len, char *err, size_t errlen);
    int (*get_blob)(void *impl, const char *model, const char *name, unsigned char **buf,
                    size_t *len, char *err, size_t errlen);
    int (*del_blob)(void *impl, const char *model, const char *name, char *err, size_t errlen);
    /* Delete every blob of model whose name drop(ctx, name) accepts, the leftovers of writes that
     * died half-way included. The count deleted, or -1. */
    int (*sweep_blobs)(void *impl, const char *model, bool (*drop)(void *ctx, const char *name),
                       void *ctx, char *err, size_t errlen);
} ckpt_backend;

typedef struct {
    const ckpt_backend *be;
    void *impl;
    int keep; /* blocks kept per model (>= 1) */
    /* saves that landed after a newer claim (logged as a warning; for a metric): the window
     * between the fence check and the write that design-fencing.md section 2 leaves open */
    unsigned long landed_late;
    unsigned long fence_raised; /* saves that found a lower stored epoch and raised it */
} ckpt_store;

typedef struct redis_sink redis_sink;

/* The directory backend at dir (created, with its parents, when missing). Returns 0 or -1. */
int ckpt_store_open_dir(ckpt_store *s, const char *dir, int keep, char *err, size_t errlen);
/* The Redis backend on an open sink connection, which the store owns from this call on (closed
 * with the store, or here on failure); chunk_bytes: checkpoint.redis_chunk_bytes (0: 64 MiB).
 * Returns 0 or -1. */
int ckpt_store_open_redis(ckpt_store *s, redis_sink *sink, int keep, size_t chunk_bytes, char *err,
                          size_t errlen);
/* Closes the backend; a zeroed store is closed as well. */
void ckpt_store_close(ckpt_store *s);

/* Claim model for a new owner (member: the consumer's member id, source: "topic/partition" it
 * reads the model from; both for diagnostics, "" allowed): mints an epoch above every earlier
 * claim's and returns it with the previous claimant in out. A worker claims before it loads the
 * checkpoint, then passes the epoch to every save; a save by an older epoch is then refused.
 * Returns 0 or -1 with a message (store error, retryable). */
int ckpt_store_claim(ckpt_store *s, const char *model, const char *member, const char *source,
                     ckpt_claim *out, char *err, size_t errlen);

/* Save a folded block (c->block >= 0) as the owner of epoch (from ckpt_store_claim). Epoch 0 means
 * "unfenced": the save neither checks nor is refused by claims (tools and tests that never
 * claim; a worker always passes its epoch). Returns 0 once it is durable, -1 with a message (store
 * error, retryable) or CKPT_FENCED (a newer owner has claimed the model: err names it; retrying is
 * pointless, the stored checkpoints are left as they were). */
int ckpt_store_save(ckpt_store *s, const checkpoint *c, uint64_t epoch, char *err, size_t errlen);

/* Load the newest checkpoint of model that loads (see the top). Returns 1 (loaded into c), 0
 * (none stored: c is empty) or -1 (err; c is empty). warn (may be NULL) receives a message for
 * each checkpoint skipped. */
int ckpt_store_load_latest(ckpt_store *s, const char *model, checkpoint *c,
                           void (*warn)(void *ctx, const char *msg), void *warn_ctx, char *err,
                           size_t errlen);

/* Blobs (see ckpt_backend): the model id and the name are checked here (a name is 1..95 of
 * [A-Za-z0-9._-], no leading '.'), then the backend's put_blob / get_blob / del_blob runs. */
int ckpt_store_put_blob(ckpt_store *s, const char *model, const char *name,
                        const unsigned char *buf, size_t len, char *err, size_t errlen);
int ckpt_store_get_blob(ckpt_store *s, const char *model, const char *name, unsigned char **buf,
                        size_t *len, char *err, size_t errlen);
int ckpt_store_del_blob(ckpt_store *s, const char *model, const char *name, char *err,
                        size_t errlen);
/* Delete model's blobs that drop(ctx, name) accepts (a new owner's sweep of what crashed owners
 * and teachers left, teacher_jobs.c): the count deleted, or -1 with err. */
int ckpt_store_sweep_blobs(ckpt_store *s, const char *model,
                           bool (*drop)(void *ctx, const char *name), void *ctx, char *err,
                           size_t errlen);

#endif
