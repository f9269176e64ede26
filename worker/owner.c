/* owner: the per-model owner record and its Lua scripts; see owner.h.
 *
 * The scripts share a prelude: fenced(k) builds the refusal (the holder's fields and the server's
 * time, so the message can say how long ago the holder claimed). Replies are arrays: {1, "OK" |
 * "RAISED"[, switched "1" | "0"]} for a write done, {0, "FENCED", epoch, member, source,
 * claimed_ms, now_ms} and {0, "STALE", live_block} for a refusal. Numbers leave the scripts as
 * strings made with %d, never through Lua's number formatting. */
#include "owner.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errmsg.h"

enum { KEY_MAX = 320, CHUNK = 128 /* versions per script call (three keys each) */ };

#define PRELUDE                                                                                    \
    "local function fenced(k)\n"                                                                   \
    "  local h = redis.call('HMGET', k, 'epoch', 'member', 'source', 'claimed_ms')\n"              \
    "  local t = redis.call('TIME')\n"                                                             \
    "  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"                    \
    "  return {0, 'FENCED', h[1] or '0', h[2] or '', h[3] or '', h[4] or '-1',\n"                  \
    "          string.format('%d', now)}\n"                                                        \
    "end\n"                                                                                        \
    "local function owns(k, mine)\n"                                                               \
    "  return tonumber(mine) >= tonumber(redis.call('HGET', k, 'epoch') or '0')\n"                 \
    "end\n"

enum { S_ORPHANS, S_COMMIT, S_PRUNE, S_ADOPT, S_COUNT };

static const char *const script_src[S_COUNT] = {
    /* delete_orphans  KEYS: owner, the orphans' keys   ARGV: epoch */
    PRELUDE "if not owns(KEYS[1], ARGV[1]) then return fenced(KEYS[1]) end\n"
            "if #KEYS > 1 then redis.call('UNLINK', unpack(KEYS, 2)) end\n"
            "return {1, 'OK'}\n",
    /* publish_commit  KEYS: owner, versions, current, v<N>:meta
     *                 ARGV: epoch, N, block, channel, provisional ("1") or exact ("0") */
    PRELUDE "local mine = tonumber(ARGV[1])\n"
            "local stored = tonumber(redis.call('HGET', KEYS[1], 'epoch') or '0')\n"
            "if mine < stored then return fenced(KEYS[1]) end\n"
            "local live = tonumber(redis.call('HGET', KEYS[1], 'block') or '-1')\n"
            "local livep = redis.call('HGET', KEYS[1], 'provisional') == '1'\n"
            "local exact = redis.call('HGET', KEYS[1], 'exact_block')\n"
            "if not exact then exact = livep and '-1' or tostring(live) end\n"
            "exact = tonumber(exact)\n"
            "local blk, prov, switch = tonumber(ARGV[3]), ARGV[5] == '1', true\n"
            "if prov then\n"
            "  if blk < live or (blk == live and not livep) or blk <= exact then\n"
            "    return {0, 'STALE', string.format('%d', live)}\n"
            "  end\n"
            "else\n"
            "  if blk < exact then return {0, 'STALE', string.format('%d', exact)} end\n"
            "  switch = blk >= live\n"
            "end\n"
            "if redis.call('EXISTS', KEYS[4]) == 0 then\n"
            "  return redis.error_reply('ERR ccd: the meta of v' .. ARGV[2] .. ' is missing')\n"
            "end\n"
            "redis.call('ZADD', KEYS[2], ARGV[2], ARGV[2])\n"
            "redis.call('HSET', KEYS[1], 'epoch', ARGV[1])\n"
            "if not prov then redis.call('HSET', KEYS[1], 'exact_block', ARGV[3]) end\n"
            "if switch then\n"
            "  redis.call('SET', KEYS[3], ARGV[2])\n"
            "  redis.call('HSET', KEYS[1], 'block', ARGV[3], 'version', ARGV[2], 'provisional',\n"
            "             ARGV[5])\n"
            "  redis.call('PUBLISH', ARGV[4], ARGV[2])\n"
            "end\n"
            "return {1, mine > stored and 'RAISED' or 'OK', switch and '1' or '0'}\n",
    /* prune  KEYS: owner, versions, current, the old versions' keys (three each)
     *        ARGV: epoch, the version numbers. `current` is never pruned: an exact version of an
     *        older block listed after it (a provisional one is live) has a higher number. */
    PRELUDE "if not owns(KEYS[1], ARGV[1]) then return fenced(KEYS[1]) end\n"
            "local cur = redis.call('GET', KEYS[3])\n"
            "for i = 2, #ARGV do\n"
            "  if ARGV[i] ~= cur then\n"
            "    local b = 3 + (i - 2) * 3\n"
            "    redis.call('ZREM', KEYS[2], ARGV[i])\n"
            "    redis.call('UNLINK', KEYS[b + 1], KEYS[b + 2], KEYS[b + 3])\n"
            "  end\n"
            "end\n"
            "return {1, 'OK'}\n",
    /* adopt  KEYS: owner   ARGV: epoch, member, source, live block hint ("" when none) */
    PRELUDE "if not owns(KEYS[1], ARGV[1]) then return fenced(KEYS[1]) end\n"
            "local t = redis.call('TIME')\n"
            "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
            "redis.call('HSET', KEYS[1], 'epoch', ARGV[1], 'member', ARGV[2], 'source', ARGV[3],\n"
            "           'claimed_ms', string.format('%d', now))\n"
            "if ARGV[4] ~= '' and redis.call('HEXISTS', KEYS[1], 'block') == 0 then\n"
            "  redis.call('HSET', KEYS[1], 'block', ARGV[4])\n"
            "end\n"
            "return {1, 'OK'}\n"};
static const char *const script_name[S_COUNT] = {"delete_orphans", "publish_commit", "prune",
                                                 "adopt"};

_Static_assert(sizeof((owner_scripts *)0)->sc / sizeof(redis_script) == S_COUNT,
               "owner_scripts holds one redis_script per script");

void owner_scripts_init(owner_scripts *sc)
{
    for (int i = 0; i < S_COUNT; i++)
        redis_script_init(&sc->sc[i], script_name[i], script_src[i]);
}

/* EVALSHA script id on s (its connection's SHA1 cache, redis_script.h) with the keys and then the
 * arguments in argv[3..argc) (callbuf's layout). The reply, or NULL with a message. */
static redisReply *script_call(redis_sink *s, int id, int nkeys, int argc, const char **argv,
                               char *err, size_t errlen)
{
    owner_scripts *sc = redis_sink_owner_scripts(s);
    return redis_script_call(s, &sc->sc[id], nkeys, argv + 3, argc - 3 - nkeys, argv + 3 + nkeys,
                             err, errlen);
}

static void copy_str(char *dst, size_t n, const redisReply *r)
{
    size_t len = r->type == REDIS_REPLY_STRING ? r->len : 0;
    if (len >= n)
        len = n - 1;
    memcpy(dst, len ? r->str : "", len);
    dst[len] = '\0';
}

static int64_t reply_i64(const redisReply *r)
{
    return r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : -1;
}

/* Reads {1, ...} -> 0, {0, "FENCED"|"STALE", ...} -> OWNER_FENCED (o filled), else -1. Frees r. */
static int script_result(redisReply *r, int id, owner_outcome *o, char *err, size_t errlen)
{
    memset(o, 0, sizeof *o);
    o->claimed_ago_s = -1;
    o->live_block = -1;
    int rc = -1;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
        r->element[0]->type != REDIS_REPLY_INTEGER || r->element[1]->type != REDIS_REPLY_STRING) {
        errmsg_set(err, errlen, "redis: unexpected reply from script %s", script_name[id]);
    } else if (r->element[0]->integer == 1) {
        o->raised = strcmp(r->element[1]->str, "RAISED") == 0;
        o->behind = r->elements >= 3 && r->element[2]->type == REDIS_REPLY_STRING &&
                    strcmp(r->element[2]->str, "0") == 0;
        rc = 0;
    } else if (strcmp(r->element[1]->str, "STALE") == 0 && r->elements >= 3) {
        o->stale = true;
        o->live_block = reply_i64(r->element[2]);
        rc = OWNER_FENCED;
    } else if (strcmp(r->element[1]->str, "FENCED") == 0 && r->elements >= 7) {
        o->held_epoch = (uint64_t)strtoull(r->element[2]->str, NULL, 10);
        copy_str(o->member, sizeof o->member, r->element[3]);
        copy_str(o->source, sizeof o->source, r->element[4]);
        int64_t claimed = reply_i64(r->element[5]), now = reply_i64(r->element[6]);
        o->claimed_ago_s = claimed >= 0 && now >= claimed ? (double)(now - claimed) / 1000 : -1;
        rc = OWNER_FENCED;
    } else {
        errmsg_set(err, errlen, "redis: unexpected refusal from script %s", script_name[id]);
    }
    freeReplyObject(r);
    return rc;
}

static size_t owner_key(char *out, const redis_sink *s, const char *model, const char *name)
{
    return (size_t)snprintf(out, KEY_MAX, "%s:{%s}:%s", redis_sink_prefix(s), model, name);
}

void owner_describe(const redis_sink *s, const char *model, uint64_t epoch, const owner_outcome *o,
                    char *out, size_t outlen)
{
    char key[KEY_MAX];
    owner_key(key, s, model, "owner");
    if (o->stale)
        snprintf(out, outlen,
                 "%s: the live version is of block %" PRId64 ", newer (ours epoch %" PRIu64 ")",
                 key, o->live_block, epoch);
    else
        snprintf(out, outlen,
                 "%s holds epoch %" PRIu64 " (member %s, %s, claimed %.1f s ago), ours %" PRIu64,
                 key, o->held_epoch, o->member[0] ? o->member : "?", o->source[0] ? o->source : "?",
                 o->claimed_ago_s, epoch);
}

/* Keys and arguments of one script call, built in one buffer. */
typedef struct {
    const char **argv; /* argv[0..2] unused (EVALSHA, sha, nkeys in redis_script_call) */
    char *buf;         /* KEY_MAX per slot */
    int argc;
} callbuf;

static int cb_init(callbuf *c, int slots, char *err, size_t errlen)
{
    c->argv = malloc((size_t)(slots + 3) * sizeof *c->argv);
    c->buf = malloc((size_t)slots * KEY_MAX);
    c->argc = 3;
    if (c->argv && c->buf)
        return 0;
    free(c->argv), free(c->buf);
    errmsg_set(err, errlen, "redis: out of memory");
    return -1;
}

static void cb_free(callbuf *c)
{
    free(c->argv), free(c->buf);
}

/* Appends one argument formatted like printf into the buffer's next slot. */
__attribute__((format(printf, 2, 3))) static void cb_add(callbuf *c, const char *fmt, ...)
{
    char *slot = c->buf + (size_t)(c->argc - 3) * KEY_MAX;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(slot, KEY_MAX, fmt, ap);
    va_end(ap);
    c->argv[c->argc++] = slot;
}

static void cb_add_version_keys(callbuf *c, const redis_sink *s, const char *model, int64_t v)
{
    static const char *const parts[3] = {"user", "item", "meta"};
    for (int k = 0; k < 3; k++)
        cb_add(c, "%s:{%s}:v%" PRId64 ":%s", redis_sink_prefix(s), model, v, parts[k]);
}

int owner_delete_orphans(redis_sink *s, const char *model, uint64_t epoch, int64_t lo, int64_t hi,
                         owner_outcome *o, char *err, size_t errlen)
{
    callbuf c;
    if (cb_init(&c, 2 + 3 * CHUNK, err, errlen) != 0)
        return -1;
    int rc = 0;
    for (int64_t at = lo; at <= hi && rc == 0; at += CHUNK) {
        c.argc = 3;
        cb_add(&c, "%s:{%s}:owner", redis_sink_prefix(s), model);
        for (int64_t v = at; v <= hi && v < at + CHUNK; v++)
            cb_add_version_keys(&c, s, model, v);
        int nkeys = c.argc - 3;
        cb_add(&c, "%" PRIu64, epoch);
        redisReply *r = script_call(s, S_ORPHANS, nkeys, c.argc, c.argv, err, errlen);
        rc = r ? script_result(r, S_ORPHANS, o, err, errlen) : -1;
    }
    cb_free(&c);
    return rc;
}

int owner_publish_commit(redis_sink *s, const char *model, uint64_t epoch, int64_t n, int block,
                         bool provisional, owner_outcome *o, char *err, size_t errlen)
{
    callbuf c;
    if (cb_init(&c, 9, err, errlen) != 0)
        return -1;
    const char *pre = redis_sink_prefix(s);
    cb_add(&c, "%s:{%s}:owner", pre, model);
    cb_add(&c, "%s:{%s}:versions", pre, model);
    cb_add(&c, "%s:{%s}:current", pre, model);
    cb_add(&c, "%s:{%s}:v%" PRId64 ":meta", pre, model, n);
    cb_add(&c, "%" PRIu64, epoch);
    cb_add(&c, "%" PRId64, n);
    cb_add(&c, "%d", block);
    cb_add(&c, "%s:{%s}:updates", pre, model);
    cb_add(&c, "%s", provisional ? "1" : "0");
    redisReply *r = script_call(s, S_COMMIT, 4, c.argc, c.argv, err, errlen);
    int rc = r ? script_result(r, S_COMMIT, o, err, errlen) : -1;
    cb_free(&c);
    return rc;
}

int owner_prune(redis_sink *s, const char *model, uint64_t epoch, const int64_t *vers, size_t nv,
                owner_outcome *o, char *err, size_t errlen)
{
    callbuf c;
    if (cb_init(&c, 4 + 4 * CHUNK, err, errlen) != 0)
        return -1;
    int rc = 0;
    for (size_t at = 0; at < nv && rc == 0; at += CHUNK) {
        size_t m = nv - at < CHUNK ? nv - at : CHUNK;
        c.argc = 3;
        cb_add(&c, "%s:{%s}:owner", redis_sink_prefix(s), model);
        cb_add(&c, "%s:{%s}:versions", redis_sink_prefix(s), model);
        cb_add(&c, "%s:{%s}:current", redis_sink_prefix(s), model);
        for (size_t i = 0; i < m; i++)
            cb_add_version_keys(&c, s, model, vers[at + i]);
        int nkeys = c.argc - 3;
        cb_add(&c, "%" PRIu64, epoch);
        for (size_t i = 0; i < m; i++)
            cb_add(&c, "%" PRId64, vers[at + i]);
        redisReply *r = script_call(s, S_PRUNE, nkeys, c.argc, c.argv, err, errlen);
        rc = r ? script_result(r, S_PRUNE, o, err, errlen) : -1;
    }
    cb_free(&c);
    return rc;
}

/* The live version's block ("" when nothing is live), to seed owner.block in deployments that
 * published before the record existed. */
static int live_block_hint(redis_sink *s, const char *model, char *out, size_t outlen, char *err,
                           size_t errlen)
{
    out[0] = '\0';
    int64_t cur = redis_current_version(s, model, err, errlen);
    if (cur <= 0)
        return cur < 0 ? -1 : 0;
    char *block = NULL;
    int r = redis_read_meta(s, model, cur, "block", &block, err, errlen);
    if (r == 1)
        snprintf(out, outlen, "%s", block);
    free(block);
    return r < 0 ? -1 : 0;
}

int owner_adopt(redis_sink *s, const char *model, uint64_t epoch, const char *member,
                const char *source, owner_outcome *o, char *err, size_t errlen)
{
    char hint[24];
    if (live_block_hint(s, model, hint, sizeof hint, err, errlen) != 0)
        return -1;
    callbuf c;
    if (cb_init(&c, 5, err, errlen) != 0)
        return -1;
    cb_add(&c, "%s:{%s}:owner", redis_sink_prefix(s), model);
    cb_add(&c, "%" PRIu64, epoch);
    cb_add(&c, "%s", member ? member : "");
    cb_add(&c, "%s", source ? source : "");
    cb_add(&c, "%s", hint);
    redisReply *r = script_call(s, S_ADOPT, 1, c.argc, c.argv, err, errlen);
    int rc = r ? script_result(r, S_ADOPT, o, err, errlen) : -1;
    cb_free(&c);
    return rc;
}
