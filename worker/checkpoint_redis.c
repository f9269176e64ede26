/* checkpoint_redis: the Redis backend of the checkpoint store (checkpoint.store = redis), on a
 * connection of its own (redis_sink.h). See checkpoint.h for the keys:
 *   P:{M}:ckpt:<block, 8 digits>   one encoded checkpoint
 *   P:{M}:ckpts                    sorted set of the stored blocks (score = block)
 * A save SETs the value, then ZADDs the block, so a listed checkpoint is always complete; then it
 * ZREMs and UNLINKs every block below the newest `keep` (a failure there leaves the save done:
 * the next one prunes again). The {M} hash tag keeps a model's keys on one Redis Cluster slot. */
#include <hiredis/hiredis.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "errmsg.h"
#include "redis_sink.h"

#define KEY_CAP 320 /* prefix (127) ":{" model (127) "}:ckpt:" 10 digits and the NUL */

static void ckpt_key(const redis_sink *r, const char *model, int block, char *key)
{
    snprintf(key, KEY_CAP, "%s:{%s}:ckpt:%08d", redis_sink_prefix(r), model, block);
}

static void set_key(const redis_sink *r, const char *model, char *key)
{
    snprintf(key, KEY_CAP, "%s:{%s}:ckpts", redis_sink_prefix(r), model);
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

/* A sorted-set member back to a block number; -1 when it is not one of ours. */
static int member_block(const redisReply *e)
{
    if (e->type != REDIS_REPLY_STRING || e->len == 0 || e->len > 10)
        return -1;
    char *end;
    long v = strtol(e->str, &end, 10);
    return *end || v < 0 || v > INT_MAX ? -1 : (int)v;
}

/* Every block below the newest `keep`, out of the set and then out of Redis. */
static void prune(redis_sink *r, const char *model, int keep)
{
    char set[KEY_CAP], stop[16], err[256];
    set_key(r, model, set);
    snprintf(stop, sizeof stop, "%d", -keep - 1);
    const char *range[4] = {"ZRANGE", set, "0", stop};
    size_t len[4] = {6, strlen(set), 1, strlen(stop)};
    redisReply *x = redis_sink_command(r, 4, range, len, err, sizeof err);
    for (size_t i = 0; x && x->type == REDIS_REPLY_ARRAY && i < x->elements; i++) {
        int block = member_block(x->element[i]);
        if (block < 0)
            continue;
        char old[KEY_CAP];
        ckpt_key(r, model, block, old);
        const char *zrem[3] = {"ZREM", set, x->element[i]->str};
        const char *unl[2] = {"UNLINK", old};
        if (run(r, 3, zrem, err, sizeof err) != 0 || run(r, 2, unl, err, sizeof err) != 0)
            break;
    }
    if (x)
        freeReplyObject(x);
}

/* Not built yet (issue 17 step 2): the interface only. */
static int redis_claim(void *impl, const char *model, const char *member, const char *source,
                       ckpt_claim *out, char *err, size_t errlen)
{
    (void)impl, (void)member, (void)source, (void)out;
    errmsg_set(err, errlen, "checkpoint: model %s: claim not built yet", model);
    return -1;
}

static int redis_put(void *impl, const char *model, int block, uint64_t epoch,
                     const unsigned char *buf, size_t len, int keep, char *err, size_t errlen)
{
    (void)epoch; /* the fence comes with the claim */
    redis_sink *r = impl;
    char key[KEY_CAP], set[KEY_CAP], member[16];
    ckpt_key(r, model, block, key);
    set_key(r, model, set);
    snprintf(member, sizeof member, "%d", block);
    const char *setv[3] = {"SET", key, (const char *)buf};
    size_t setl[3] = {3, strlen(key), len};
    redisReply *x = redis_sink_command(r, 3, setv, setl, err, errlen);
    if (!x)
        return -1;
    freeReplyObject(x);
    const char *zadd[4] = {"ZADD", set, member, member};
    if (run(r, 4, zadd, err, errlen) != 0)
        return -1;
    prune(r, model, keep);
    return 0;
}

static int redis_list(void *impl, const char *model, int **blocks, char *err, size_t errlen)
{
    redis_sink *r = impl;
    char set[KEY_CAP];
    set_key(r, model, set);
    const char *argv[4] = {"ZREVRANGE", set, "0", "-1"};
    size_t len[4] = {9, strlen(set), 1, 2};
    *blocks = NULL;
    redisReply *x = redis_sink_command(r, 4, argv, len, err, errlen);
    if (!x)
        return -1;
    int n = 0;
    if (x->type == REDIS_REPLY_ARRAY && x->elements > 0 &&
        !(*blocks = malloc(x->elements * sizeof **blocks))) {
        errmsg_set(err, errlen, "checkpoint: out of memory listing %s", set);
        n = -1;
    }
    for (size_t i = 0; n >= 0 && x->type == REDIS_REPLY_ARRAY && i < x->elements; i++)
        if (member_block(x->element[i]) >= 0)
            (*blocks)[n++] = member_block(x->element[i]);
    freeReplyObject(x);
    return n;
}

/* A listed block whose value is gone (pruned by a newer owner meanwhile) is skipped. */
static int redis_get(void *impl, const char *model, int block, unsigned char **buf, size_t *len,
                     char *err, size_t errlen)
{
    redis_sink *r = impl;
    char key[KEY_CAP];
    ckpt_key(r, model, block, key);
    const char *argv[2] = {"GET", key};
    size_t argl[2] = {3, strlen(key)};
    *buf = NULL;
    *len = 0;
    redisReply *x = redis_sink_command(r, 2, argv, argl, err, errlen);
    if (!x)
        return -1;
    int rc = 0;
    if (x->type != REDIS_REPLY_STRING) {
        errmsg_set(err, errlen, "listed in the set but gone");
    } else if (!(*buf = malloc(x->len > 0 ? x->len : 1))) {
        errmsg_set(err, errlen, "checkpoint: out of memory reading %s", key);
        rc = -1;
    } else {
        memcpy(*buf, x->str, x->len);
        *len = x->len;
        rc = 1;
    }
    freeReplyObject(x);
    return rc;
}

static void redis_where(const void *impl, const char *model, int block, char *out, size_t outlen)
{
    char key[KEY_CAP];
    if (block < 0)
        set_key(impl, model, key);
    else
        ckpt_key(impl, model, block, key);
    snprintf(out, outlen, "Redis key %s", key);
}

static void redis_close(void *impl)
{
    redis_sink_close(impl);
}

static const ckpt_backend redis_backend = {redis_claim, redis_put,   redis_list,
                                           redis_get,   redis_where, redis_close};

int ckpt_store_open_redis(ckpt_store *s, redis_sink *sink, int keep, char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    if (keep < 1 || !sink) {
        errmsg_set(err, errlen,
                   "checkpoint: keep must be at least 1 (got %d) and a connection given", keep);
        redis_sink_close(sink);
        return -1;
    }
    *s = (ckpt_store){.be = &redis_backend, .impl = sink, .keep = keep};
    return 0;
}
