/* owner: the per-model owner record and its Lua scripts (issue 17, docs/design-fencing.md).
 *
 * P:{M}:owner is a hash: epoch (the current owner's fencing token, minted by the checkpoint store
 * when a worker claims the model: checkpoint.h), member and source (that worker's group member id
 * and "topic/partition"), claimed_ms (server time of the claim), block and version (the live
 * version's block and number, written by each publication), ckpt_block (the checkpoint store's).
 * Every write that could undo or destroy another owner's work is a script that first compares
 * our epoch with the stored one, atomically with the write:
 *   mine < stored   fenced: nothing is written, OWNER_FENCED (-2) with the holder in the message;
 *   mine == stored  ours: written;
 *   mine > stored   written, and publish_commit raises the stored epoch to ours ("raised": the
 *                   record was lost, e.g. a Redis failover that dropped the claim).
 * The scripts: delete_orphans (the unlisted versions in (newest, N]), publish_commit (ZADD
 * versions, SET current, HSET owner block/version/epoch, PUBLISH, in one step; also refuses a
 * block below owner.block: `current` never moves back, "stale"; an exact version of a block below
 * a live provisional one is listed without the switch), prune (ZREM then UNLINK the old
 * versions, never the current one), adopt (store an epoch minted elsewhere, the directory
 * checkpoint store's, with our member and source; refused when the stored epoch is higher). Each
 * script declares every key it touches in KEYS, all under the {M} hash tag (one cluster slot); the
 * channel is an argument.
 *
 * Scripts are sent once with SCRIPT LOAD and called with EVALSHA through redis_script.h (a
 * NOSCRIPT reply, after a failover to a node without the script cache or a SCRIPT FLUSH, loads
 * them again and retries once); each redis_sink connection keeps its own SHA1s
 * (redis_sink_owner_scripts), so the two threads never share them. Epochs are below 2^53, exact in
 * Lua's doubles, and are stored as the decimal strings the caller passed. */
#ifndef CCD_OWNER_H
#define CCD_OWNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "redis_script.h"
#include "redis_sink.h"

/* One connection's loaded scripts (held by the redis_sink: redis_sink_owner_scripts). */
typedef struct owner_scripts {
    redis_script sc[4];
} owner_scripts;
void owner_scripts_init(owner_scripts *sc);

#define OWNER_FENCED (-2) /* refused: a newer owner holds the model, or the block is stale */

/* Why a script refused, and who holds the model (for messages and metrics). */
typedef struct owner_outcome {
    bool stale;           /* refused for the block (below owner.block), not for the epoch */
    bool raised;          /* (success) our epoch was above the stored one, and is now stored */
    bool behind;          /* (success) an exact version of a block below the live provisional one:
                             listed (readable by number) but `current` did not move */
    uint64_t held_epoch;  /* the stored epoch */
    char member[128];     /* the holder's member id ("" when unknown) */
    char source[300];     /* the holder's topic/partition */
    double claimed_ago_s; /* seconds since the holder's claim, by the server's clock; -1 unknown */
    int64_t live_block;   /* owner.block (stale refusals; -1 when none) */
} owner_outcome;

/* UNLINK the keys of versions lo..hi (never listed: orphans), if epoch still owns the model.
 * Returns 0, -1 (error, retryable) or OWNER_FENCED. */
int owner_delete_orphans(redis_sink *s, const char *model, uint64_t epoch, int64_t lo, int64_t hi,
                         owner_outcome *o, char *err, size_t errlen);

/* List version n (its meta must exist), switch `current` to it, record block/version/epoch/
 * provisional in the owner record and announce n on P:{M}:updates, if epoch owns the model.
 * The owner record also holds exact_block, the newest exact block published. By kind:
 *   exact:       block >= live block: switched (an equal block replaces a provisional version or
 *                is a re-publication); exact_block <= block < live block (a provisional version
 *                of a newer block is live): listed only, o->behind; block < exact_block: STALE.
 *   provisional: block > live block, or = live block while a provisional one is live, and above
 *                exact_block: switched; otherwise STALE (superseded, nothing listed).
 * 0, -1 or OWNER_FENCED (o->stale for the block rules). */
int owner_publish_commit(redis_sink *s, const char *model, uint64_t epoch, int64_t n, int block,
                         bool provisional, owner_outcome *o, char *err, size_t errlen);

/* ZREM vers[0..nv) from `versions`, then UNLINK their keys, if epoch owns the model. */
int owner_prune(redis_sink *s, const char *model, uint64_t epoch, const int64_t *vers, size_t nv,
                owner_outcome *o, char *err, size_t errlen);

/* Store epoch (minted by the checkpoint store) with member and source as the owner, unless a
 * higher epoch is stored. Seeds owner.block from the live version's meta when the record has none
 * (deployments that predate the record). 0, -1 or OWNER_FENCED (o names the holder). */
int owner_adopt(redis_sink *s, const char *model, uint64_t epoch, const char *member,
                const char *source, owner_outcome *o, char *err, size_t errlen);

/* "P:{M}:owner holds epoch E (member X, source S, claimed T s ago), ours F" or the stale form,
 * for log lines and errors. */
void owner_describe(const redis_sink *s, const char *model, uint64_t epoch, const owner_outcome *o,
                    char *out, size_t outlen);

#endif
