/* checkpoint_redis: the Redis backend of the checkpoint store (checkpoint.store = redis), on a
 * connection of its own (redis_sink.h). Keys (P = [redis] prefix, M = model; the {M} hash tag
 * keeps them on one Cluster slot, and every script declares every key it touches):
 *   P:{M}:owner                    hash: epoch, member, source, claimed_ms (the claim), block
 *                                  (seeded here when absent; the publication owns it), ckpt_block
 *   P:{M}:ckpts                    sorted set of the stored blocks (score = block)
 *   P:{M}:ckpt:<blk8>:m            manifest (hash): layout=1, epoch, w, bytes, chunks, crc32
 *   P:{M}:ckpt:<blk8>:<w>:<i>      chunk i (0..chunks-1) of the encoded checkpoint, at most
 *                                  checkpoint.redis_chunk_bytes (and half the server's
 *                                  proto-max-bulk-len when CONFIG GET is allowed)
 *   P:{M}:ckpt:pending             set of "<blk>:<w>:<chunks>": saves begun, not committed
 *   P:{M}:ckpt:<blk8>              a legacy (single-string) checkpoint, still loaded
 *   P:{M}:blob:<name>[:<w>:<i>]    a blob's manifest and chunks (teacher jobs; see "blobs")
 *   P:{M}:blobs                    set of "<name> <w> <chunks>": the blob writes not yet dropped
 * w = "<epoch>.<8 hex>" names one save attempt, so chunk names are never reused: a retry or a
 * re-save of a block writes new keys and never overwrites what a manifest points to.
 *
 * Claim (script `claim`): epoch = max(stored + 1, TIME in ms), so a claim lost in a failover
 * (asynchronous replication) still mints an epoch above the lost one in practice.
 * Save of epoch E (0: unfenced): (1) `ckpt_begin` checks the fence (stored epoch > E: CKPT_FENCED),
 * adds our pending entry and returns the stale ones (epoch < E, or E's own failed attempts),
 * whose chunks `ckpt_drop` removes; (2) SET of each chunk (unfenced: the names are ours alone);
 * (3) `ckpt_commit` checks the fence again and that the chunks' STRLENs add up to the size, then
 * writes the manifest, ZADDs the block, SREMs our pending entry, sets owner.ckpt_block (and
 * raises owner.epoch when ours is above it: the record was lost) and returns the replaced
 * manifest's chunks, which `ckpt_drop` removes with the legacy key of the block; (4) prune below
 * `keep` with `ckpt_drop` (ZREM before UNLINK, in one script). A fenced save removes its own
 * chunks (unique names: nobody else's) and leaves everything else to the new owner. A crash
 * between (1) and (3) leaves a pending entry, cleaned by the next save.
 * Load: the manifest's chunks, concatenated and checked (size, CRC); a missing chunk skips the
 * block like a missing value; with no manifest, the legacy string. Writers write only the
 * manifest form: an older binary cannot read it (one-way upgrade, docs/operations.md). */
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint.h"
#include "errmsg.h"
#include "le.h"
#include "redis_script.h"
#include "redis_sink.h"
#include "testhook.h"

#define KEY_CAP                                                                                    \
    360          /* prefix (127) ":{" model (127) "}:ckpt:" 8 digits ":" w (29) ":" i and NUL      \
                  */
#define W_CAP 40 /* "<epoch>.<8 hex>" */
#define DEFAULT_CHUNK ((size_t)64 << 20)

/* clang-format off */
static const char claim_lua[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local stored = tonumber(redis.call('HGET', KEYS[1], 'epoch') or '0')\n"
    "local e = math.max(stored + 1, now)\n"
    "local prev = redis.call('HMGET', KEYS[1], 'member', 'source')\n"
    "redis.call('HSET', KEYS[1], 'epoch', string.format('%d', e), 'member', ARGV[1],\n"
    "           'source', ARGV[2], 'claimed_ms', string.format('%d', now))\n"
    "if ARGV[3] ~= '' and redis.call('HEXISTS', KEYS[1], 'block') == 0 then\n"
    "  redis.call('HSET', KEYS[1], 'block', ARGV[3]) end\n"
    "return {string.format('%d', e), prev[1] or '', prev[2] or ''}\n";

/* The fence check the scripts share: {0, holder's epoch, member, source, claimed_ms} or nil. */
#define FENCE_LUA \
    "local mine = tonumber(ARGV[1])\n" \
    "local h = redis.call('HMGET', KEYS[1], 'epoch', 'member', 'source', 'claimed_ms')\n" \
    "local stored = tonumber(h[1] or '0')\n" \
    "if mine > 0 and mine < stored then\n" \
    "  return {0, h[1], h[2] or '', h[3] or '', h[4] or ''} end\n"

/* KEYS owner, pending  ARGV epoch, our pending entry */
static const char begin_lua[] = FENCE_LUA
    "local stale = {1}\n"
    "for _, m in ipairs(redis.call('SMEMBERS', KEYS[2])) do\n"
    "  local e = tonumber(string.match(m, '^%d+:(%d+)%.') or '0')\n"
    "  if e <= mine and m ~= ARGV[2] then stale[#stale + 1] = m end\n"
    "end\n"
    "redis.call('SADD', KEYS[2], ARGV[2])\n"
    "return stale\n";

/* KEYS owner, ckpts, manifest, pending, chunks...  ARGV epoch, block, pending entry, bytes,
 * chunks, w, crc32 */
static const char commit_lua[] = FENCE_LUA
    "local total = 0\n"
    "for i = 5, #KEYS do total = total + redis.call('STRLEN', KEYS[i]) end\n"
    "if total ~= tonumber(ARGV[4]) then return redis.error_reply('ERR ccd: the chunks of ' ..\n"
    "  KEYS[3] .. ' hold ' .. string.format('%d', total) .. ' bytes, not ' .. ARGV[4]) end\n"
    "local old = redis.call('HMGET', KEYS[3], 'w', 'chunks')\n"
    "redis.call('DEL', KEYS[3])\n"
    "redis.call('HSET', KEYS[3], 'layout', '1', 'epoch', ARGV[1], 'w', ARGV[6], 'bytes', ARGV[4],\n"
    "           'chunks', ARGV[5], 'crc32', ARGV[7])\n"
    "redis.call('ZADD', KEYS[2], ARGV[2], ARGV[2])\n"
    "redis.call('SREM', KEYS[4], ARGV[3])\n"
    "local raised = 0\n"
    "if mine > 0 then\n"
    "  if mine > stored then redis.call('HSET', KEYS[1], 'epoch', ARGV[1]); raised = 1 end\n"
    "  local cb = tonumber(redis.call('HGET', KEYS[1], 'ckpt_block') or '-1')\n"
    "  if tonumber(ARGV[2]) > cb then redis.call('HSET', KEYS[1], 'ckpt_block', ARGV[2]) end\n"
    "end\n"
    "return {1, old[1] or '', old[2] or '', raised}\n";

/* KEYS owner, ckpts, pending, keys to unlink...  ARGV epoch, ZREM members, SREM members (each a
 * comma-separated list, "" for none) */
static const char drop_lua[] = FENCE_LUA
    "for m in string.gmatch(ARGV[2], '[^,]+') do redis.call('ZREM', KEYS[2], m) end\n"
    "for m in string.gmatch(ARGV[3], '[^,]+') do redis.call('SREM', KEYS[3], m) end\n"
    "for i = 4, #KEYS do redis.call('UNLINK', KEYS[i]) end\n"
    "return {1}\n";
/* clang-format on */

enum { S_CLAIM, S_BEGIN, S_COMMIT, S_DROP, N_SCRIPTS };

typedef struct {
    redis_sink *r;
    size_t chunk_bytes;    /* checkpoint.redis_chunk_bytes */
    long long server_bulk; /* the server's proto-max-bulk-len (0: not known yet) */
    redis_script sc[N_SCRIPTS];
} redis_store;

/* ------------------------------------------------------------------------------------------ */
/* keys */

static void model_key(const redis_store *s, const char *model, const char *what, char *key)
{
    snprintf(key, KEY_CAP, "%s:{%s}:%s", redis_sink_prefix(s->r), model, what);
}

/* P:{M}:ckpt:<blk8> followed by suffix ("" for the legacy key, ":m" for the manifest). */
static void block_key(const redis_store *s, const char *model, int block, const char *suffix,
                      char *key)
{
    snprintf(key, KEY_CAP, "%s:{%s}:ckpt:%08d%s", redis_sink_prefix(s->r), model, block, suffix);
}

static void chunk_key(const redis_store *s, const char *model, int block, const char *w, long i,
                      char *key)
{
    snprintf(key, KEY_CAP, "%s:{%s}:ckpt:%08d:%s:%ld", redis_sink_prefix(s->r), model, block, w, i);
}

/* The keys of chunks 0..n-1 of save w of block, after `lead` slots left for the caller's keys,
 * in one allocation; NULL (err set) when out of memory. */
static char (*chunk_keys(const redis_store *s, const char *model, int block, const char *w, long n,
                         size_t lead, char *err, size_t errlen))[KEY_CAP]
{
    char(*keys)[KEY_CAP] = calloc(lead + (size_t)n + 1, KEY_CAP);
    if (!keys) {
        errmsg_set(err, errlen, "checkpoint: out of memory");
        return NULL;
    }
    for (long i = 0; i < n; i++)
        chunk_key(s, model, block, w, i, keys[lead + (size_t)i]);
    return keys;
}

/* ------------------------------------------------------------------------------------------ */
/* replies */

/* Element i of an array reply as a string ("" when it is not one). */
static const char *elem_str(const redisReply *x, size_t i)
{
    if (x->type != REDIS_REPLY_ARRAY || i >= x->elements)
        return "";
    const redisReply *e = x->element[i];
    return e->type == REDIS_REPLY_STRING || e->type == REDIS_REPLY_STATUS ? e->str : "";
}

static long long elem_int(const redisReply *x, size_t i)
{
    if (x->type != REDIS_REPLY_ARRAY || i >= x->elements)
        return -1;
    const redisReply *e = x->element[i];
    return e->type == REDIS_REPLY_INTEGER ? e->integer : strtoll(elem_str(x, i), NULL, 10);
}

/* err for a write refused by the fence: x is the scripts' {0, epoch, member, source, ms}. */
static void fenced_message(const redis_store *s, const char *model, int block, uint64_t mine,
                           const redisReply *x, char *err, size_t errlen)
{
    char owner[KEY_CAP];
    model_key(s, model, "owner", owner);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long long now = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    long long at = elem_int(x, 4);
    errmsg_set(err, errlen,
               "checkpoint: model %s block %d: refused: %s holds epoch %s (member %s, source %s, "
               "claimed %.1f s ago), newer than our epoch %" PRIu64,
               model, block, owner, elem_str(x, 1), *elem_str(x, 2) ? elem_str(x, 2) : "?",
               *elem_str(x, 3) ? elem_str(x, 3) : "?",
               at > 0 && at <= now ? (double)(now - at) / 1000.0 : 0.0, mine);
}

/* A command of NUL-terminated arguments; the reply is freed here. Returns 0 or -1 with err. */
static int run(redis_sink *r, int argc, const char **argv, char *err, size_t errlen)
{
    size_t len[4];
    for (int i = 0; i < argc; i++)
        len[i] = strlen(argv[i]);
    redisReply *x = redis_sink_command(r, argc, argv, len, err, errlen);
    if (!x)
        return -1;
    freeReplyObject(x);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* claim */

/* The live version's block, to seed owner.block in deployments that predate it ("" when none
 * is published or it cannot be read: the claim then leaves the field alone). */
static void live_block_hint(redis_store *s, const char *model, char *out, size_t outlen)
{
    char key[KEY_CAP], err[256];
    out[0] = '\0';
    model_key(s, model, "current", key);
    const char *get[2] = {"GET", key};
    size_t gl[2] = {3, strlen(key)};
    redisReply *x = redis_sink_command(s->r, 2, get, gl, err, sizeof err);
    long long n = x && x->type == REDIS_REPLY_STRING ? strtoll(x->str, NULL, 10) : 0;
    if (x)
        freeReplyObject(x);
    if (n <= 0)
        return;
    char what[40];
    snprintf(what, sizeof what, "v%lld:meta", n);
    model_key(s, model, what, key);
    const char *hget[3] = {"HGET", key, "block"};
    size_t hl[3] = {4, strlen(key), 5};
    x = redis_sink_command(s->r, 3, hget, hl, err, sizeof err);
    if (x && x->type == REDIS_REPLY_STRING)
        snprintf(out, outlen, "%lld", strtoll(x->str, NULL, 10));
    if (x)
        freeReplyObject(x);
}

static int redis_claim(void *impl, const char *model, const char *member, const char *source,
                       ckpt_claim *out, char *err, size_t errlen)
{
    redis_store *s = impl;
    char owner[KEY_CAP], hint[24];
    model_key(s, model, "owner", owner);
    live_block_hint(s, model, hint, sizeof hint);
    const char *keys[1] = {owner};
    const char *args[3] = {member, source, hint};
    redisReply *x = redis_script_call(s->r, &s->sc[S_CLAIM], 1, keys, 3, args, err, errlen);
    if (!x)
        return -1;
    int rc = -1;
    uint64_t e = strtoull(elem_str(x, 0), NULL, 10);
    if (x->type == REDIS_REPLY_ARRAY && x->elements == 3 && e > 0) {
        out->epoch = e;
        snprintf(out->prev_member, sizeof out->prev_member, "%s", elem_str(x, 1));
        snprintf(out->prev_source, sizeof out->prev_source, "%s", elem_str(x, 2));
        rc = 0;
    } else {
        errmsg_set(err, errlen, "checkpoint: claim of %s: unexpected reply", owner);
    }
    freeReplyObject(x);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* dropping keys */

/* ckpt_drop: n keys unlinked, the ZREM and SREM lists (comma-separated) removed, unless a newer
 * claim fences epoch. Returns 0, CKPT_FENCED or -1 (err). */
static int drop(redis_store *s, const char *model, uint64_t epoch, char (*keys)[KEY_CAP], size_t n,
                const char *zrem, const char *srem, char *err, size_t errlen)
{
    const char **kv = malloc((3 + n) * sizeof *kv);
    if (!kv) {
        errmsg_set(err, errlen, "checkpoint: out of memory");
        return -1;
    }
    char owner[KEY_CAP], ckpts[KEY_CAP], pending[KEY_CAP], ep[24];
    model_key(s, model, "owner", owner);
    model_key(s, model, "ckpts", ckpts);
    model_key(s, model, "ckpt:pending", pending);
    snprintf(ep, sizeof ep, "%" PRIu64, epoch);
    kv[0] = owner, kv[1] = ckpts, kv[2] = pending;
    for (size_t i = 0; i < n; i++)
        kv[3 + i] = keys[i];
    const char *args[3] = {ep, zrem, srem};
    redisReply *x = redis_script_call(s->r, &s->sc[S_DROP], (int)(3 + n), kv, 3, args, err, errlen);
    free(kv);
    if (!x)
        return -1;
    int rc = elem_int(x, 0) == 1 ? 0 : CKPT_FENCED;
    freeReplyObject(x);
    return rc;
}

/* The chunks of a pending entry "<blk>:<w>:<n>" (a save that never committed) and the entry. */
static int drop_pending(redis_store *s, const char *model, uint64_t epoch, const char *entry,
                        char *err, size_t errlen)
{
    int block;
    long n;
    char w[W_CAP];
    if (sscanf(entry, "%d:%39[^:]:%ld", &block, w, &n) != 3 || n < 0 || n > 1000000)
        return drop(s, model, epoch, NULL, 0, "", entry, err, errlen); /* not ours: forget it */
    char(*keys)[KEY_CAP] = chunk_keys(s, model, block, w, n, 0, err, errlen);
    if (!keys)
        return -1;
    int rc = drop(s, model, epoch, keys, (size_t)n, "", entry, err, errlen);
    free(keys);
    return rc;
}

/* Every block below the newest `keep`: out of the set, then its manifest, chunks and legacy key
 * (one ckpt_drop each). Best effort: the next save prunes again. */
static void prune(redis_store *s, const char *model, uint64_t epoch, int keep)
{
    char set[KEY_CAP], stop[16], err[512];
    model_key(s, model, "ckpts", set);
    snprintf(stop, sizeof stop, "%d", -keep - 1);
    const char *range[4] = {"ZRANGE", set, "0", stop};
    size_t len[4] = {6, strlen(set), 1, strlen(stop)};
    redisReply *x = redis_sink_command(s->r, 4, range, len, err, sizeof err);
    for (size_t i = 0; x && x->type == REDIS_REPLY_ARRAY && i < x->elements; i++) {
        int block = (int)strtol(elem_str(x, i), NULL, 10);
        char mkey[KEY_CAP];
        block_key(s, model, block, ":m", mkey);
        const char *hm[4] = {"HMGET", mkey, "w", "chunks"};
        size_t hl[4] = {5, strlen(mkey), 1, 6};
        redisReply *m = redis_sink_command(s->r, 4, hm, hl, err, sizeof err);
        long n = m ? elem_int(m, 1) : -1;
        char w[W_CAP];
        snprintf(w, sizeof w, "%s", m ? elem_str(m, 0) : "");
        if (m)
            freeReplyObject(m);
        if (!m)
            break;
        n = n > 0 && n <= 1000000 && w[0] ? n : 0;
        char(*keys)[KEY_CAP] = chunk_keys(s, model, block, w, n, 2, err, sizeof err);
        if (!keys)
            break;
        block_key(s, model, block, ":m", keys[0]);
        block_key(s, model, block, "", keys[1]); /* legacy */
        int rc = drop(s, model, epoch, keys, (size_t)n + 2, elem_str(x, i), "", err, sizeof err);
        free(keys);
        if (rc != 0)
            break;
    }
    if (x)
        freeReplyObject(x);
}

/* ------------------------------------------------------------------------------------------ */
/* saving */

/* The chunk size: checkpoint.redis_chunk_bytes, at most half the server's proto-max-bulk-len
 * (a SET's value is one bulk string; half leaves room however the limit is counted). The limit
 * is asked once (CONFIG GET); where CONFIG is not allowed (ACL, managed Redis) the configured
 * size is used as it is, and a chunk the server refuses fails the save naming the setting. */
static size_t chunk_size(redis_store *s)
{
    if (s->server_bulk == 0) {
        const char *argv[3] = {"CONFIG", "GET", "proto-max-bulk-len"};
        size_t len[3] = {6, 3, 18};
        char err[256];
        redisReply *x = redis_sink_command(s->r, 3, argv, len, err, sizeof err);
        long long v = x && x->type == REDIS_REPLY_ARRAY && x->elements == 2 ? elem_int(x, 1) : -1;
        s->server_bulk = v > 0 ? v : -1;
        if (x)
            freeReplyObject(x);
    }
    size_t cb = s->chunk_bytes;
    if (s->server_bulk > 0 && (unsigned long long)s->server_bulk / 2 < cb)
        cb = (size_t)(s->server_bulk / 2);
    return cb > 0 ? cb : 1;
}

/* ckpt_begin, then the stale entries' chunks dropped. 0, CKPT_FENCED or -1. */
static int begin(redis_store *s, const char *model, int block, uint64_t epoch, const char *entry,
                 char *err, size_t errlen)
{
    char owner[KEY_CAP], pending[KEY_CAP], ep[24];
    model_key(s, model, "owner", owner);
    model_key(s, model, "ckpt:pending", pending);
    snprintf(ep, sizeof ep, "%" PRIu64, epoch);
    const char *keys[2] = {owner, pending};
    const char *args[2] = {ep, entry};
    redisReply *x = redis_script_call(s->r, &s->sc[S_BEGIN], 2, keys, 2, args, err, errlen);
    if (!x)
        return -1;
    int rc = 0;
    if (elem_int(x, 0) != 1) {
        fenced_message(s, model, block, epoch, x, err, errlen);
        rc = CKPT_FENCED;
    }
    /* a crashed (or fenced) writer's chunks: best effort, the next save tries again */
    for (size_t i = 1; rc == 0 && x->type == REDIS_REPLY_ARRAY && i < x->elements; i++) {
        char why[512];
        if (drop_pending(s, model, epoch, elem_str(x, i), why, sizeof why) == CKPT_FENCED)
            break;
    }
    freeReplyObject(x);
    return rc;
}

/* SET of each chunk. 0 or -1 (err names the key and the setting). */
static int write_chunks(redis_store *s, const char *model, int block, char (*keys)[KEY_CAP], long n,
                        const unsigned char *buf, size_t len, size_t cb, char *err, size_t errlen)
{
    for (long i = 0; i < n; i++) {
        size_t off = (size_t)i * cb, part = len - off < cb ? len - off : cb;
        const char *argv[3] = {"SET", keys[i], (const char *)buf + off};
        size_t argl[3] = {3, strlen(keys[i]), part};
        char why[600];
        redisReply *x = redis_sink_command(s->r, 3, argv, argl, why, sizeof why);
        if (x) {
            freeReplyObject(x);
            continue;
        }
        char limit[40] = "unknown (CONFIG GET failed)";
        if (s->server_bulk > 0)
            snprintf(limit, sizeof limit, "%lld", s->server_bulk);
        errmsg_set(err, errlen,
                   "checkpoint: model %s block %d: SET %s (chunk %ld of %ld, %zu bytes; "
                   "checkpoint.redis_chunk_bytes = %zu, the server's proto-max-bulk-len %s; a "
                   "chunk must fit in it and in maxmemory): %s",
                   model, block, keys[i], i + 1, n, part, s->chunk_bytes, limit, why);
        return -1;
    }
    return 0;
}

/* ckpt_commit, then the replaced manifest's chunks and the block's legacy key dropped. 0, 2 (saved
 * and the fence raised to our epoch), CKPT_FENCED or -1. */
static int commit(redis_store *s, const char *model, int block, uint64_t epoch, const char *entry,
                  const char *w, char (*keys)[KEY_CAP], long n, const unsigned char *buf,
                  size_t len, char *err, size_t errlen)
{
    const char **kv = malloc((size_t)(4 + n) * sizeof *kv);
    if (!kv) {
        errmsg_set(err, errlen, "checkpoint: out of memory");
        return -1;
    }
    char owner[KEY_CAP], ckpts[KEY_CAP], mkey[KEY_CAP], pending[KEY_CAP];
    char ep[24], blk[16], bytes[24], chunks[24], crc[16];
    model_key(s, model, "owner", owner);
    model_key(s, model, "ckpts", ckpts);
    block_key(s, model, block, ":m", mkey);
    model_key(s, model, "ckpt:pending", pending);
    kv[0] = owner, kv[1] = ckpts, kv[2] = mkey, kv[3] = pending;
    for (long i = 0; i < n; i++)
        kv[4 + i] = keys[i];
    snprintf(ep, sizeof ep, "%" PRIu64, epoch);
    snprintf(blk, sizeof blk, "%d", block);
    snprintf(bytes, sizeof bytes, "%zu", len);
    snprintf(chunks, sizeof chunks, "%ld", n);
    snprintf(crc, sizeof crc, "%u", (unsigned)ccd_crc32(buf, len));
    const char *args[7] = {ep, blk, entry, bytes, chunks, w, crc};
    redisReply *x =
        redis_script_call(s->r, &s->sc[S_COMMIT], (int)(4 + n), kv, 7, args, err, errlen);
    free(kv);
    if (!x)
        return -1;
    if (elem_int(x, 0) != 1) {
        fenced_message(s, model, block, epoch, x, err, errlen);
        freeReplyObject(x);
        return CKPT_FENCED;
    }
    int rc = elem_int(x, 3) == 1 ? 2 : 0;
    char old_w[W_CAP];
    snprintf(old_w, sizeof old_w, "%s", elem_str(x, 1));
    long old_n = elem_int(x, 2);
    freeReplyObject(x);
    old_n = old_w[0] && strcmp(old_w, w) != 0 && old_n > 0 && old_n <= 1000000 ? old_n : 0;
    char why[512];
    char(*old)[KEY_CAP] = chunk_keys(s, model, block, old_w, old_n, 1, why, sizeof why);
    if (old) { /* best effort: a leftover only costs memory */
        block_key(s, model, block, "", old[0]);
        drop(s, model, epoch, old, (size_t)old_n + 1, "", "", why, sizeof why);
        free(old);
    }
    return rc;
}

/* "<epoch>.<8 hex>": one save attempt's name (random: a retry never reuses a name). */
static void attempt_name(uint64_t epoch, char *w)
{
    uint32_t r;
    if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        r = (uint32_t)ts.tv_nsec ^ ((uint32_t)getpid() << 12);
    }
    snprintf(w, W_CAP, "%" PRIu64 ".%08x", epoch, r);
}

static int redis_put(void *impl, const char *model, int block, uint64_t epoch,
                     const unsigned char *buf, size_t len, int keep, char *err, size_t errlen)
{
    redis_store *s = impl;
    size_t cb = chunk_size(s);
    long n = (long)((len + cb - 1) / cb);
    char w[W_CAP], entry[80];
    attempt_name(epoch, w);
    snprintf(entry, sizeof entry, "%d:%s:%ld", block, w, n);
    int rc = begin(s, model, block, epoch, entry, err, errlen);
    if (rc != 0)
        return rc;
    char(*keys)[KEY_CAP] = chunk_keys(s, model, block, w, n, 0, err, errlen);
    if (!keys)
        return -1;
    rc = write_chunks(s, model, block, keys, n, buf, len, cb, err, errlen);
    if (rc == 0)
        test_pause("ckpt_commit", model, block); /* the stall test: chunks written, not committed */
    if (rc == 0)
        rc = commit(s, model, block, epoch, entry, w, keys, n, buf, len, err, errlen);
    if (rc == CKPT_FENCED) {
        /* Our own chunks (nobody else's names) and entry; the rest is the new owner's. */
        char why[512];
        for (long i = 0; i < n; i++) {
            const char *unl[2] = {"UNLINK", keys[i]};
            run(s->r, 2, unl, why, sizeof why);
        }
        char pending[KEY_CAP];
        model_key(s, model, "ckpt:pending", pending);
        const char *srem[3] = {"SREM", pending, entry};
        run(s->r, 3, srem, why, sizeof why);
    }
    free(keys);
    if (rc >= 0)
        prune(s, model, epoch, keep);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* listing and loading */

static int redis_list(void *impl, const char *model, int **blocks, char *err, size_t errlen)
{
    redis_store *s = impl;
    char set[KEY_CAP];
    model_key(s, model, "ckpts", set);
    const char *argv[4] = {"ZREVRANGE", set, "0", "-1"};
    size_t len[4] = {9, strlen(set), 1, 2};
    *blocks = NULL;
    redisReply *x = redis_sink_command(s->r, 4, argv, len, err, errlen);
    if (!x)
        return -1;
    int n = 0;
    if (x->type == REDIS_REPLY_ARRAY && x->elements > 0 &&
        !(*blocks = malloc(x->elements * sizeof **blocks))) {
        errmsg_set(err, errlen, "checkpoint: out of memory listing %s", set);
        n = -1;
    }
    for (size_t i = 0; n >= 0 && x->type == REDIS_REPLY_ARRAY && i < x->elements; i++) {
        const char *m = elem_str(x, i);
        char *end;
        long v = strtol(m, &end, 10);
        if (*m && !*end && v >= 0 && v <= INT_MAX && strlen(m) <= 10)
            (*blocks)[n++] = (int)v;
    }
    freeReplyObject(x);
    return n;
}

/* GET key into buf + off (at most cap - off bytes). 1 read (*got), 0 gone, -1 error. */
static int get_into(redis_store *s, const char *key, unsigned char *buf, size_t cap, size_t off,
                    size_t *got, char *err, size_t errlen)
{
    const char *argv[2] = {"GET", key};
    size_t argl[2] = {3, strlen(key)};
    redisReply *x = redis_sink_command(s->r, 2, argv, argl, err, errlen);
    if (!x)
        return -1;
    int rc = 0;
    if (x->type != REDIS_REPLY_STRING) {
        errmsg_set(err, errlen, "%s gone since it was listed", key);
    } else if (x->len > cap - off) {
        errmsg_set(err, errlen, "%s is larger than its manifest says", key);
    } else {
        memcpy(buf + off, x->str, x->len);
        *got = x->len;
        rc = 1;
    }
    freeReplyObject(x);
    return rc;
}

/* The legacy single string (builds before issue 17). */
static int get_legacy(redis_store *s, const char *model, int block, unsigned char **buf,
                      size_t *len, char *err, size_t errlen)
{
    char key[KEY_CAP];
    block_key(s, model, block, "", key);
    const char *argv[2] = {"STRLEN", key};
    size_t argl[2] = {6, strlen(key)};
    redisReply *x = redis_sink_command(s->r, 2, argv, argl, err, errlen);
    if (!x)
        return -1;
    size_t n = x->type == REDIS_REPLY_INTEGER && x->integer > 0 ? (size_t)x->integer : 0;
    freeReplyObject(x);
    if (n == 0) {
        errmsg_set(err, errlen, "listed in the set but gone");
        return 0;
    }
    if (!(*buf = malloc(n))) {
        errmsg_set(err, errlen, "checkpoint: out of memory reading %s", key);
        return -1;
    }
    int rc = get_into(s, key, *buf, n, 0, len, err, errlen);
    if (rc != 1) {
        free(*buf);
        *buf = NULL;
    }
    return rc;
}

/* The chunks of a manifest {layout, w, bytes, chunks, crc32}, concatenated and checked. */
static int get_chunks(redis_store *s, const char *model, int block, const redisReply *m,
                      unsigned char **buf, size_t *len, char *err, size_t errlen)
{
    if (strcmp(elem_str(m, 0), "1") != 0) {
        errmsg_set(err, errlen, "manifest layout %s unknown to this build", elem_str(m, 0));
        return 0;
    }
    char w[W_CAP], key[KEY_CAP];
    snprintf(w, sizeof w, "%s", elem_str(m, 1));
    unsigned long long bytes = strtoull(elem_str(m, 2), NULL, 10);
    long n = elem_int(m, 3);
    uint32_t crc = (uint32_t)strtoul(elem_str(m, 4), NULL, 10);
    if (n < 0 || n > 1000000 || bytes >= ((unsigned long long)1 << 40)) {
        errmsg_set(err, errlen, "manifest with %ld chunks of %llu bytes", n, bytes);
        return 0;
    }
    if (!(*buf = malloc(bytes > 0 ? (size_t)bytes : 1))) {
        errmsg_set(err, errlen, "checkpoint: out of memory reading %llu bytes", bytes);
        return -1;
    }
    size_t off = 0, got = 0;
    int rc = 1;
    for (long i = 0; rc == 1 && i < n; i++, off += got) {
        chunk_key(s, model, block, w, i, key);
        rc = get_into(s, key, *buf, (size_t)bytes, off, &got, err, errlen);
    }
    if (rc == 1 && off != bytes) {
        errmsg_set(err, errlen, "its chunks hold %zu bytes, the manifest says %llu", off, bytes);
        rc = 0;
    } else if (rc == 1 && ccd_crc32(*buf, off) != crc) {
        errmsg_set(err, errlen, "its chunks do not match the manifest's CRC-32");
        rc = 0;
    }
    if (rc != 1) {
        free(*buf);
        *buf = NULL;
    }
    *len = rc == 1 ? off : 0;
    return rc;
}

/* A listed block whose keys are gone (pruned by a newer owner meanwhile) is skipped. */
static int redis_get(void *impl, const char *model, int block, unsigned char **buf, size_t *len,
                     char *err, size_t errlen)
{
    redis_store *s = impl;
    char mkey[KEY_CAP];
    block_key(s, model, block, ":m", mkey);
    const char *argv[7] = {"HMGET", mkey, "layout", "w", "bytes", "chunks", "crc32"};
    size_t argl[7] = {5, strlen(mkey), 6, 1, 5, 6, 5};
    *buf = NULL;
    *len = 0;
    redisReply *m = redis_sink_command(s->r, 7, argv, argl, err, errlen);
    if (!m)
        return -1;
    int rc = m->type == REDIS_REPLY_ARRAY && m->elements == 5 &&
                     m->element[0]->type == REDIS_REPLY_STRING
                 ? get_chunks(s, model, block, m, buf, len, err, errlen)
                 : get_legacy(s, model, block, buf, len, err, errlen); /* migration */
    freeReplyObject(m);
    return rc;
}

static void redis_where(const void *impl, const char *model, int block, char *out, size_t outlen)
{
    char key[KEY_CAP];
    if (block < 0)
        model_key(impl, model, "ckpts", key);
    else
        block_key(impl, model, block, ":m", key);
    snprintf(out, outlen, "Redis key %s", key);
}

/* ------------------------------------------------------------------------------------------ */
/* blobs, chunked like checkpoints (a teacher job's inputs at 16x Yelp pass Redis's 512 MB string
 * limit): P:{M}:blob:<name> holds the manifest "CCDBLOB1 <w> <chunks> <bytes> <crc32>", written
 * after its chunks P:{M}:blob:<name>:<w>:<i>, so a reader sees a whole blob or none; w names the
 * write (attempt_name), so a rewrite never touches the chunks a reader may be fetching, and the
 * replaced write's chunks are dropped after the new manifest is in. A value without the magic is a
 * blob of an older worker (one string), read as it is. Every write is listed in the set
 * P:{M}:blobs as "<name> <w> <chunks>" before its first chunk and removed once its chunks are
 * dropped, so a sweep (ckpt_store_sweep_blobs) finds the writes that died half-way too. */

#define BLOB_MAGIC "CCDBLOB1 "
#define BLOB_KEY_CAP 448 /* prefix (127) ":{" model (127) "}:blob:" name (95) ":" w ":" i */

static void blob_key(const redis_store *s, const char *model, const char *name, const char *w,
                     long i, char *key)
{
    if (w)
        snprintf(key, BLOB_KEY_CAP, "%s:{%s}:blob:%s:%s:%ld", redis_sink_prefix(s->r), model, name,
                 w, i);
    else
        snprintf(key, BLOB_KEY_CAP, "%s:{%s}:blob:%s", redis_sink_prefix(s->r), model, name);
}

/* VERB of one blob key (the manifest when w is NULL, else chunk i of write w): the reply, or NULL
 * with err. */
static redisReply *blob_cmd(redis_store *s, const char *verb, const char *model, const char *name,
                            const char *w, long i, char *err, size_t errlen)
{
    char key[BLOB_KEY_CAP];
    blob_key(s, model, name, w, i, key);
    const char *argv[2] = {verb, key};
    size_t argl[2] = {strlen(verb), strlen(key)};
    return redis_sink_command(s->r, 2, argv, argl, err, errlen);
}

typedef struct {
    char w[W_CAP];
    long chunks;
    size_t bytes;
    unsigned crc;
} blob_manifest;

/* The manifest of (model, name): 1, 0 when absent, 2 when the key holds an older worker's whole
 * blob (returned in *legacy when legacy is not NULL), -1 on a store error or a bad manifest. */
static int blob_manifest_get(redis_store *s, const char *model, const char *name, blob_manifest *bm,
                             redisReply **legacy, char *err, size_t errlen)
{
    redisReply *x = blob_cmd(s, "GET", model, name, NULL, 0, err, errlen);
    if (!x)
        return -1;
    if (x->type != REDIS_REPLY_STRING) {
        freeReplyObject(x);
        return 0;
    }
    size_t ml = strlen(BLOB_MAGIC);
    if (x->len < ml || memcmp(x->str, BLOB_MAGIC, ml) != 0) {
        if (legacy)
            *legacy = x;
        else
            freeReplyObject(x);
        return 2;
    }
    unsigned long long bytes = 0;
    int ok = x->len < 200 &&
             sscanf(x->str + ml, "%39s %ld %llu %u", bm->w, &bm->chunks, &bytes, &bm->crc) == 4 &&
             bm->chunks >= 0 && bm->chunks <= 1000000;
    bm->bytes = (size_t)bytes;
    freeReplyObject(x);
    if (!ok) {
        errmsg_set(err, errlen, "blob: %s of model %s: bad manifest", name, model);
        return -1;
    }
    return 1;
}

/* SADD or SREM (verb) of write w's entry in P:{M}:blobs. 0 or -1 with err. */
static int blob_listing(redis_store *s, const char *verb, const char *model, const char *name,
                        const char *w, long chunks, char *err, size_t errlen)
{
    char key[KEY_CAP], entry[200];
    model_key(s, model, "blobs", key);
    snprintf(entry, sizeof entry, "%s %s %ld", name, w, chunks);
    const char *argv[3] = {verb, key, entry};
    return run(s->r, 3, argv, err, errlen);
}

/* Write w's chunks 0..n-1 deleted, then its entry in P:{M}:blobs (best effort: a leftover only
 * costs memory, and a listed one is swept later). */
static void blob_forget(redis_store *s, const char *model, const char *name, const char *w, long n)
{
    char why[256];
    for (long i = 0; i < n; i++) {
        redisReply *x = blob_cmd(s, "UNLINK", model, name, w, i, why, sizeof why);
        if (x)
            freeReplyObject(x);
    }
    blob_listing(s, "SREM", model, name, w, n, why, sizeof why);
}

static int redis_put_blob(void *impl, const char *model, const char *name, const unsigned char *buf,
                          size_t len, char *err, size_t errlen)
{
    redis_store *s = impl;
    size_t cb = chunk_size(s);
    blob_manifest bm = {
        .chunks = (long)((len + cb - 1) / cb), .bytes = len, .crc = (unsigned)ccd_crc32(buf, len)};
    attempt_name(0, bm.w);
    if (blob_listing(s, "SADD", model, name, bm.w, bm.chunks, err, errlen) != 0)
        return -1;
    char key[BLOB_KEY_CAP];
    for (long i = 0; i < bm.chunks; i++) {
        size_t off = (size_t)i * cb, part = len - off < cb ? len - off : cb;
        blob_key(s, model, name, bm.w, i, key);
        const char *argv[3] = {"SET", key, (const char *)buf + off};
        size_t argl[3] = {3, strlen(key), part};
        char why[600];
        redisReply *x = redis_sink_command(s->r, 3, argv, argl, why, sizeof why);
        if (!x) {
            errmsg_set(
                err, errlen,
                "blob: SET %s (chunk %ld of %ld, %zu bytes; checkpoint.redis_chunk_bytes = "
                "%zu; a chunk must fit in the server's proto-max-bulk-len and maxmemory): %s",
                key, i + 1, bm.chunks, part, s->chunk_bytes, why);
            blob_forget(s, model, name, bm.w, bm.chunks);
            return -1;
        }
        freeReplyObject(x);
    }
    blob_manifest old;
    char why[256];
    int had = blob_manifest_get(s, model, name, &old, NULL, why, sizeof why);
    char man[160];
    int ml =
        snprintf(man, sizeof man, BLOB_MAGIC "%s %ld %zu %u", bm.w, bm.chunks, bm.bytes, bm.crc);
    blob_key(s, model, name, NULL, 0, key);
    const char *argv[3] = {"SET", key, man};
    size_t argl[3] = {3, strlen(key), (size_t)ml};
    redisReply *x = redis_sink_command(s->r, 3, argv, argl, err, errlen);
    if (!x) {
        blob_forget(s, model, name, bm.w, bm.chunks);
        return -1;
    }
    freeReplyObject(x);
    if (had == 1 && strcmp(old.w, bm.w) != 0)
        blob_forget(s, model, name, old.w, old.chunks);
    return 0;
}

/* One read of the blob: 1 (buf, len set), 0 absent, -1 error, 3 a chunk gone (a rewrite replaced
 * the manifest meanwhile: read again). */
static int blob_read(redis_store *s, const char *model, const char *name, unsigned char **buf,
                     size_t *len, char *err, size_t errlen)
{
    blob_manifest bm;
    redisReply *legacy = NULL;
    int rc = blob_manifest_get(s, model, name, &bm, &legacy, err, errlen);
    if (rc == 2) {
        *buf = malloc(legacy->len > 0 ? legacy->len : 1);
        if (*buf) {
            memcpy(*buf, legacy->str, legacy->len);
            *len = legacy->len;
        }
        freeReplyObject(legacy);
        if (!*buf)
            errmsg_set(err, errlen, "blob: out of memory reading %s", name);
        return *buf ? 1 : -1;
    }
    if (rc != 1)
        return rc;
    unsigned char *b = malloc(bm.bytes > 0 ? bm.bytes : 1);
    if (!b) {
        errmsg_set(err, errlen, "blob: out of memory reading %s (%zu bytes)", name, bm.bytes);
        return -1;
    }
    size_t got = 0;
    for (long i = 0; i < bm.chunks; i++) {
        redisReply *x = blob_cmd(s, "GET", model, name, bm.w, i, err, errlen);
        if (!x) {
            free(b);
            return -1;
        }
        if (x->type != REDIS_REPLY_STRING || x->len > bm.bytes - got) {
            int gone = x->type != REDIS_REPLY_STRING;
            freeReplyObject(x);
            free(b);
            if (gone)
                return 3;
            errmsg_set(err, errlen, "blob: %s: chunk %ld runs past the manifest's %zu bytes", name,
                       i, bm.bytes);
            return -1;
        }
        memcpy(b + got, x->str, x->len);
        got += x->len;
        freeReplyObject(x);
    }
    if (got != bm.bytes || (unsigned)ccd_crc32(b, got) != bm.crc) {
        free(b);
        errmsg_set(err, errlen, "blob: %s: %zu of %zu bytes, or a CRC mismatch", name, got,
                   bm.bytes);
        return -1;
    }
    *buf = b;
    *len = got;
    return 1;
}

static int redis_get_blob(void *impl, const char *model, const char *name, unsigned char **buf,
                          size_t *len, char *err, size_t errlen)
{
    redis_store *s = impl;
    if (!buf) {
        redisReply *x = blob_cmd(s, "EXISTS", model, name, NULL, 0, err, errlen);
        if (!x)
            return -1;
        int rc = x->type == REDIS_REPLY_INTEGER && x->integer > 0;
        freeReplyObject(x);
        return rc;
    }
    for (int attempt = 0; attempt < 5; attempt++) {
        int rc = blob_read(s, model, name, buf, len, err, errlen);
        if (rc != 3)
            return rc;
    }
    errmsg_set(err, errlen, "blob: %s: rewritten during five reads in a row", name);
    return -1;
}

static int redis_del_blob(void *impl, const char *model, const char *name, char *err, size_t errlen)
{
    redis_store *s = impl;
    blob_manifest bm;
    int rc = blob_manifest_get(s, model, name, &bm, NULL, err, errlen);
    if (rc < 0)
        return -1;
    redisReply *x = blob_cmd(s, "DEL", model, name, NULL, 0, err, errlen);
    if (!x)
        return -1;
    freeReplyObject(x);
    if (rc == 1)
        blob_forget(s, model, name, bm.w, bm.chunks);
    return 0;
}

/* The writes listed in P:{M}:blobs whose name drop() accepts: their manifest, chunks and entry. */
static int redis_sweep_blobs(void *impl, const char *model,
                             bool (*drop)(void *ctx, const char *name), void *ctx, char *err,
                             size_t errlen)
{
    redis_store *s = impl;
    char key[KEY_CAP];
    model_key(s, model, "blobs", key);
    const char *argv[2] = {"SMEMBERS", key};
    size_t argl[2] = {8, strlen(key)};
    redisReply *x = redis_sink_command(s->r, 2, argv, argl, err, errlen);
    if (!x)
        return -1;
    int n = 0;
    for (size_t i = 0; x->type == REDIS_REPLY_ARRAY && i < x->elements; i++) {
        char name[128], w[W_CAP], why[256];
        long chunks;
        if (sscanf(elem_str(x, i), "%127s %39s %ld", name, w, &chunks) != 3 || !drop(ctx, name))
            continue;
        redisReply *d = blob_cmd(s, "UNLINK", model, name, NULL, 0, why, sizeof why);
        if (d)
            freeReplyObject(d);
        blob_forget(s, model, name, w, chunks > 0 && chunks <= 1000000 ? chunks : 0);
        n++;
    }
    freeReplyObject(x);
    return n;
}

static void redis_close(void *impl)
{
    redis_store *s = impl;
    if (s)
        redis_sink_close(s->r);
    free(s);
}

static const ckpt_backend redis_backend = {
    redis_claim, redis_put,      redis_list,     redis_get,      redis_where,
    redis_close, redis_put_blob, redis_get_blob, redis_del_blob, redis_sweep_blobs};

int ckpt_store_open_redis(ckpt_store *s, redis_sink *sink, int keep, size_t chunk_bytes, char *err,
                          size_t errlen)
{
    memset(s, 0, sizeof *s);
    redis_store *rs = keep >= 1 && sink ? calloc(1, sizeof *rs) : NULL;
    if (!rs) {
        errmsg_set(err, errlen,
                   "checkpoint: keep must be at least 1 (got %d), a connection given, and memory",
                   keep);
        redis_sink_close(sink);
        return -1;
    }
    rs->r = sink;
    rs->chunk_bytes = chunk_bytes > 0 ? chunk_bytes : DEFAULT_CHUNK;
    redis_script_init(&rs->sc[S_CLAIM], "claim", claim_lua);
    redis_script_init(&rs->sc[S_BEGIN], "ckpt_begin", begin_lua);
    redis_script_init(&rs->sc[S_COMMIT], "ckpt_commit", commit_lua);
    redis_script_init(&rs->sc[S_DROP], "ckpt_drop", drop_lua);
    *s = (ckpt_store){.be = &redis_backend, .impl = rs, .keep = keep};
    return 0;
}
