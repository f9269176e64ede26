/* Integration test of the Redis checkpoint store's ownership and chunking (issue 17 items 1 and
 * 5, worker/checkpoint_redis.c) against the real redis-server that tests/services.sh starts: the
 * claim script (monotonic across connections, time-based, seeding owner.block only when absent,
 * surviving SCRIPT FLUSH), saves fenced by the owner epoch (refused before and leaving nothing
 * behind, a lost owner record raised again), a checkpoint larger than a lowered
 * proto-max-bulk-len saved in chunks and loaded back (the limit restored afterwards, also on
 * failure), the legacy single-string key still loading and migrated by the next save, and a
 * crashed writer's pending chunks removed by the next save; blobs in chunks (test_blobs). Model
 * ids carry the pid; the keys are removed at the end. */
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint.h"
#include "redis_sink.h"
#include "redis_admin.h"
#include "services_env.h"

static char g_host[128];
static int g_port;
static int g_pid;
static redisContext *g_admin;
static char g_bulk_saved[32]; /* proto-max-bulk-len to restore ("" when untouched) */

/* ---- helpers -------------------------------------------------------------------------------- */

static void cleanup_model(const char *model)
{
    char pattern[128];
    snprintf(pattern, sizeof pattern, "ccd:{%s}:*", model);
    cleanup(g_admin, pattern);
    snprintf(pattern, sizeof pattern, "ckpttest:{ckpttest-%d-*", g_pid);
    cleanup(g_admin, pattern);
}

static void model_id(char *out, size_t n, const char *what)
{
    snprintf(out, n, "ckpttest-%d-%s", g_pid, what);
}

/* A store on a connection of its own as user (NULL: the default user) under prefix (NULL: ccd). */
static void open_store_as(ckpt_store *st, int keep, size_t chunk_bytes, const char *user,
                          const char *password, const char *prefix)
{
    redis_sink_opts o;
    redis_sink_opts_default_at(&o, g_host, g_port, user, password, prefix);
    char err[512] = "";
    redis_sink *s = redis_sink_open(&o, err, sizeof err);
    CHECK(s, "redis_sink_open: %s", err);
    CHECK(ckpt_store_open_redis(st, s, keep, chunk_bytes, err, sizeof err) == 0, "open: %s", err);
}

static void open_store(ckpt_store *st, int keep, size_t chunk_bytes)
{
    open_store_as(st, keep, chunk_bytes, NULL, NULL, NULL);
}

static uint64_t claim(ckpt_store *st, const char *model, const char *member, ckpt_claim *cl)
{
    char err[512];
    CHECK(ckpt_store_claim(st, model, member, "in/3", cl, err, sizeof err) == 0, "claim: %s", err);
    return cl->epoch;
}

/* Block b of model with state_len bytes of state that depend on b. The caller frees c.state. */
static void make_ckpt(checkpoint *c, const char *model, int b, size_t state_len)
{
    static char *users[1] = {"u1"};
    static ckpt_offset off = {.topic = "in", .partition = 3, .next_offset = 0};
    checkpoint_init(c);
    snprintf(c->model, sizeof c->model, "%s", model);
    c->block = b;
    c->events_total = 1000 + b;
    c->state_len = state_len;
    c->state = malloc(state_len);
    CHECK(c->state, "out of memory");
    uint64_t x = 0x9e3779b97f4a7c15ull * (uint64_t)(b + 1);
    for (size_t i = 0; i < state_len; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* incompressible, block-dependent */
        c->state[i] = (unsigned char)x;
    }
    c->n_users = 1;
    c->user_ids = users;
    c->n_offsets = 1;
    c->offsets = &off;
}

static int save(ckpt_store *st, const char *model, int b, size_t state_len, uint64_t epoch,
                char *err, size_t errlen)
{
    checkpoint c;
    make_ckpt(&c, model, b, state_len);
    int rc = ckpt_store_save(st, &c, epoch, err, errlen);
    free(c.state);
    return rc;
}

/* The block loaded, its state compared with make_ckpt's (state_len bytes); -2 none, -1 error. */
static int load(ckpt_store *st, const char *model, size_t state_len, char *err, size_t errlen)
{
    checkpoint c, want;
    int r = ckpt_store_load_latest(st, model, &c, NULL, NULL, err, errlen);
    if (r != 1)
        return r == 0 ? -2 : -1;
    make_ckpt(&want, model, c.block, state_len);
    CHECK(c.state_len == state_len && memcmp(c.state, want.state, state_len) == 0 &&
              c.events_total == 1000 + c.block,
          "block %d loaded with other contents", c.block);
    free(want.state);
    int b = c.block;
    checkpoint_free(&c);
    return b;
}

/* ---- claims --------------------------------------------------------------------------------- */

static void test_claim(void)
{
    char model[64], v[64];
    model_id(model, sizeof model, "claim");
    /* a deployment that predates owner: the live version's block seeds owner.block */
    freeReplyObject(cmd(g_admin, "SET ccd:{%s}:current 5", model));
    freeReplyObject(cmd(g_admin, "HSET ccd:{%s}:v5:meta block 7", model));
    ckpt_store a, b;
    open_store(&a, 2, 0);
    open_store(&b, 2, 0);
    ckpt_claim ca, cb;
    uint64_t ea = claim(&a, model, "member-a", &ca);
    CHECK(ea > 1600000000000ull, "a time-based epoch (ms): %" PRIu64, ea);
    CHECK(!ca.prev_member[0] && !ca.prev_source[0], "no previous claimant");
    cmd_str(g_admin, v, sizeof v, "HGET ccd:{%s}:owner block", model);
    CHECK(!strcmp(v, "7"), "owner.block seeded from the live version: %s", v);
    uint64_t eb = claim(&b, model, "member-b", &cb);
    CHECK(eb > ea, "monotonic across connections: %" PRIu64 " then %" PRIu64, ea, eb);
    CHECK(!strcmp(cb.prev_member, "member-a") && !strcmp(cb.prev_source, "in/3"),
          "the previous claimant: %s %s", cb.prev_member, cb.prev_source);
    cmd_str(g_admin, v, sizeof v, "HGET ccd:{%s}:owner member", model);
    CHECK(!strcmp(v, "member-b"), "owner.member");
    CHECK(cmd_int(g_admin, "HEXISTS ccd:{%s}:owner claimed_ms", model) == 1, "owner.claimed_ms");
    /* owner.block belongs to the publication once set: a claim leaves it */
    freeReplyObject(cmd(g_admin, "HSET ccd:{%s}:owner block 9", model));
    /* a stored epoch ahead of the clock (a skewed clock, an adopted epoch): +1, not the clock */
    freeReplyObject(cmd(g_admin, "HSET ccd:{%s}:owner epoch 5000000000000000", model));
    /* the script cache lost (failover, SCRIPT FLUSH): loaded again */
    freeReplyObject(cmd(g_admin, "SCRIPT FLUSH"));
    CHECK(claim(&a, model, "member-a", &ca) == 5000000000000001ull, "stored + 1: %" PRIu64,
          ca.epoch);
    cmd_str(g_admin, v, sizeof v, "HGET ccd:{%s}:owner block", model);
    CHECK(!strcmp(v, "9"), "owner.block left alone: %s", v);
    ckpt_store_close(&a);
    ckpt_store_close(&b);
    printf("claim: monotonic, time-based, seeds owner.block once, survives SCRIPT FLUSH\n");
}

/* ---- fenced saves --------------------------------------------------------------------------- */

static void test_fenced_save(void)
{
    char model[64], pattern[128], err[1024], v[64];
    model_id(model, sizeof model, "fence");
    ckpt_store a, b;
    open_store(&a, 3, 0);
    open_store(&b, 3, 0);
    ckpt_claim ca, cb;
    uint64_t ea = claim(&a, model, "member-a", &ca);
    CHECK(save(&a, model, 1, 1000, ea, err, sizeof err) == 0, "A saves block 1: %s", err);
    uint64_t eb = claim(&b, model, "member-b", &cb);
    CHECK(save(&b, model, 2, 1000, eb, err, sizeof err) == 0, "B saves block 2: %s", err);
    cmd_str(g_admin, v, sizeof v, "HGET ccd:{%s}:owner ckpt_block", model);
    CHECK(!strcmp(v, "2"), "owner.ckpt_block: %s", v);
    /* A wakes up: refused, naming B, and nothing of A's is left */
    err[0] = '\0';
    CHECK(save(&a, model, 3, 1000, ea, err, sizeof err) == CKPT_FENCED && strstr(err, "member-b"),
          "A's stale save: %s", err);
    CHECK(save(&a, model, 2, 1000, ea, err, sizeof err) == CKPT_FENCED, "A over B's block");
    snprintf(pattern, sizeof pattern, "ccd:{%s}:ckpt:00000003*", model);
    CHECK(scan_keys(g_admin, pattern, NULL) == 0, "no key of A's block 3");
    CHECK(cmd_int(g_admin, "SCARD ccd:{%s}:ckpt:pending", model) == 0, "nothing pending");
    CHECK(load(&b, model, 1000, err, sizeof err) == 2, "B's block 2 loads: %s", err);
    /* the owner record lost (a failover): B's next save raises it again */
    freeReplyObject(cmd(g_admin, "HDEL ccd:{%s}:owner epoch", model));
    CHECK(save(&b, model, 3, 1000, eb, err, sizeof err) == 0 && b.fence_raised == 1,
          "B raises the fence: %s", err);
    cmd_str(g_admin, v, sizeof v, "HGET ccd:{%s}:owner epoch", model);
    CHECK(strtoull(v, NULL, 10) == eb, "owner.epoch raised to B's: %s", v);
    CHECK(save(&a, model, 4, 1000, ea, err, sizeof err) == CKPT_FENCED, "A still fenced");
    /* an unfenced tool (epoch 0) still saves */
    CHECK(save(&a, model, 4, 1000, 0, err, sizeof err) == 0, "unfenced: %s", err);
    CHECK(load(&a, model, 1000, err, sizeof err) == 4, "block 4 loads: %s", err);
    ckpt_store_close(&a);
    ckpt_store_close(&b);
    printf("fence: a stale owner's saves refused and leave nothing; a lost record raised\n");
}

/* ---- chunks --------------------------------------------------------------------------------- */

static void restore_bulk(void)
{
    if (g_bulk_saved[0] && g_admin) {
        redisReply *r = redisCommand(g_admin, "CONFIG SET proto-max-bulk-len %s", g_bulk_saved);
        if (r)
            freeReplyObject(r);
        g_bulk_saved[0] = '\0';
    }
}

/* A checkpoint above proto-max-bulk-len (lowered to 1 MB, its minimum): one SET of it is refused,
 * the store saves it in chunks of half the limit and loads it back. */
static void test_chunks(void)
{
    char model[64], err[1024], v[64];
    model_id(model, sizeof model, "chunks");
    redisReply *r = cmd(g_admin, "CONFIG GET proto-max-bulk-len");
    CHECK(r->type == REDIS_REPLY_ARRAY && r->elements == 2, "CONFIG GET");
    snprintf(g_bulk_saved, sizeof g_bulk_saved, "%s", r->element[1]->str);
    freeReplyObject(r);
    atexit(restore_bulk);
    r = cmd(g_admin, "CONFIG SET proto-max-bulk-len 1048576");
    CHECK(r->type == REDIS_REPLY_STATUS, "CONFIG SET proto-max-bulk-len: %s", r->str);
    freeReplyObject(r);

    const size_t big = 3u << 20; /* 3 MiB of state */
    /* what the single-string store did, one SET of the whole value: the server refuses it */
    {
        redisContext *c = redisConnect(g_host, g_port);
        CHECK(c && !c->err, "connect");
        unsigned char *buf = calloc(1, big);
        CHECK(buf, "out of memory");
        redisReply *x = redisCommand(c, "SET ccd:{%s}:ckpt:00000000 %b", model, buf, big);
        CHECK(!x || x->type == REDIS_REPLY_ERROR, "a 3 MiB SET under a 1 MB limit was accepted");
        if (x)
            freeReplyObject(x);
        free(buf);
        redisFree(c);
    }
    ckpt_store st;
    open_store(&st, 2, 0);
    ckpt_claim cl;
    uint64_t e = claim(&st, model, "member", &cl);
    CHECK(save(&st, model, 0, big, e, err, sizeof err) == 0, "chunked save: %s", err);
    cmd_str(g_admin, v, sizeof v, "HGET ccd:{%s}:ckpt:00000000:m chunks", model);
    long n = strtol(v, NULL, 10);
    cmd_str(g_admin, v, sizeof v, "HGET ccd:{%s}:ckpt:00000000:m bytes", model);
    long long bytes = strtoll(v, NULL, 10);
    CHECK(bytes > (long long)big && n == (bytes + 524287) / 524288,
          "chunks of half the limit: %ld chunks for %lld bytes", n, bytes);
    char w[64];
    cmd_str(g_admin, w, sizeof w, "HGET ccd:{%s}:ckpt:00000000:m w", model);
    for (long i = 0; i < n; i++)
        CHECK(cmd_int(g_admin, "STRLEN ccd:{%s}:ckpt:00000000:%s:%ld", model, w, i) ==
                  (i < n - 1 ? 524288 : bytes - 524288 * (n - 1)),
              "chunk %ld's length", i);
    CHECK(load(&st, model, big, err, sizeof err) == 0, "chunked load: %s", err);
    ckpt_store_close(&st);

    /* Where CONFIG is not allowed (here an ACL user without it), the configured size is used as
     * it is: a chunk above the server's limit fails the save, naming the key and the setting. */
    char user[64], password[64];
    snprintf(user, sizeof user, "ckpttest-%d", g_pid);
    snprintf(password, sizeof password, "pw-%d", g_pid);
    freeReplyObject(
        cmd(g_admin, "ACL SETUSER %s on >%s ~ckpttest:* +@all -config", user, password));
    open_store_as(&st, 2, 2u << 20, user, password, "ckpttest");
    e = claim(&st, model, "member", &cl);
    err[0] = '\0';
    CHECK(save(&st, model, 2, big, e, err, sizeof err) == -1 &&
              strstr(err, "checkpoint.redis_chunk_bytes = 2097152") &&
              strstr(err, "SET ckpttest:{") && strstr(err, ":ckpt:00000002:") &&
              strstr(err, "proto-max-bulk-len unknown"),
          "a chunk above the limit, CONFIG denied: %s", err);
    printf("chunks: CONFIG denied, chunk above the limit: %s\n", err);
    ckpt_store_close(&st);
    freeReplyObject(cmd(g_admin, "ACL DELUSER %s", user));
    restore_bulk();

    /* a configured chunk size below the server's */
    open_store(&st, 2, 100000);
    e = claim(&st, model, "member", &cl);
    CHECK(save(&st, model, 1, 450000, e, err, sizeof err) == 0, "small chunks: %s", err);
    cmd_str(g_admin, v, sizeof v, "HGET ccd:{%s}:ckpt:00000001:m chunks", model);
    CHECK(!strcmp(v, "5"), "450 kB in chunks of 100 kB: %s", v);
    CHECK(load(&st, model, 450000, err, sizeof err) == 1, "small chunks load: %s", err);
    /* block 0 is still kept (keep 2) */
    CHECK(cmd_int(g_admin, "ZCARD ccd:{%s}:ckpts", model) == 2, "two blocks listed");
    ckpt_store_close(&st);
    printf("chunks: %lld bytes in %ld chunks under a 1 MB proto-max-bulk-len, loaded back\n", bytes,
           n);
}

/* ---- migration and crash leftovers ---------------------------------------------------------- */

static void test_legacy(void)
{
    char model[64], err[1024], pattern[128];
    model_id(model, sizeof model, "legacy");
    checkpoint c;
    make_ckpt(&c, model, 4, 5000);
    unsigned char *buf;
    size_t len;
    CHECK(checkpoint_encode(&c, &buf, &len) == 0, "encode");
    free(c.state);
    /* what the single-string store wrote: one string and the set */
    freeReplyObject(cmd(g_admin, "SET ccd:{%s}:ckpt:00000004 %b", model, buf, len));
    freeReplyObject(cmd(g_admin, "ZADD ccd:{%s}:ckpts 4 4", model));
    free(buf);
    ckpt_store st;
    open_store(&st, 1, 0);
    CHECK(load(&st, model, 5000, err, sizeof err) == 4, "the single-string key loads: %s", err);
    /* re-saving the block replaces the legacy key; the next block prunes block 4 entirely */
    ckpt_claim cl;
    uint64_t e = claim(&st, model, "m", &cl);
    CHECK(save(&st, model, 4, 5000, e, err, sizeof err) == 0, "re-save block 4: %s", err);
    CHECK(cmd_int(g_admin, "EXISTS ccd:{%s}:ckpt:00000004", model) == 0, "the legacy key replaced");
    CHECK(load(&st, model, 5000, err, sizeof err) == 4, "block 4 in chunks: %s", err);
    CHECK(save(&st, model, 5, 5000, e, err, sizeof err) == 0, "block 5: %s", err);
    snprintf(pattern, sizeof pattern, "ccd:{%s}:ckpt:00000004*", model);
    CHECK(scan_keys(g_admin, pattern, NULL) == 0, "block 4 pruned (keep 1): manifest and chunks");
    CHECK(load(&st, model, 5000, err, sizeof err) == 5, "block 5: %s", err);
    ckpt_store_close(&st);
    printf("legacy: a single-string checkpoint loads, is replaced by chunks, and pruned\n");
}

/* What a writer killed between its chunks and its commit leaves: a pending entry and chunks. The
 * next save removes them (older epochs, and the owner's own failed attempts), not a newer
 * epoch's. */
static void test_pending(void)
{
    char model[64], err[1024], pattern[128];
    model_id(model, sizeof model, "pending");
    ckpt_store st;
    open_store(&st, 2, 0);
    ckpt_claim cl;
    uint64_t e = claim(&st, model, "m", &cl);
    uint64_t old = e - 10;
    freeReplyObject(
        cmd(g_admin, "SADD ccd:{%s}:ckpt:pending 3:%" PRIu64 ".deadbeef:2", model, old));
    freeReplyObject(
        cmd(g_admin, "SET ccd:{%s}:ckpt:00000003:%" PRIu64 ".deadbeef:0 x", model, old));
    freeReplyObject(
        cmd(g_admin, "SET ccd:{%s}:ckpt:00000003:%" PRIu64 ".deadbeef:1 y", model, old));
    freeReplyObject(cmd(g_admin, "SADD ccd:{%s}:ckpt:pending 3:%" PRIu64 ".0badf00d:1", model, e));
    freeReplyObject(cmd(g_admin, "SET ccd:{%s}:ckpt:00000003:%" PRIu64 ".0badf00d:0 z", model, e));
    CHECK(save(&st, model, 3, 1000, e, err, sizeof err) == 0, "save: %s", err);
    snprintf(pattern, sizeof pattern, "ccd:{%s}:ckpt:00000003:*", model);
    CHECK(scan_keys(g_admin, pattern, NULL) == 2,
          "only the new save's manifest and chunk are left: %lld",
          scan_keys(g_admin, pattern, NULL));
    CHECK(cmd_int(g_admin,
                  "EXISTS ccd:{%s}:ckpt:00000003:%" PRIu64 ".deadbeef:0 "
                  "ccd:{%s}:ckpt:00000003:%" PRIu64 ".deadbeef:1 "
                  "ccd:{%s}:ckpt:00000003:%" PRIu64 ".0badf00d:0",
                  model, old, model, old, model, e) == 0,
          "the crashed attempts' chunks are gone");
    CHECK(cmd_int(g_admin, "SCARD ccd:{%s}:ckpt:pending", model) == 0, "pending cleaned");
    /* an unfenced save does not touch a fenced writer's entry */
    freeReplyObject(cmd(g_admin, "SADD ccd:{%s}:ckpt:pending 6:%" PRIu64 ".00000001:1", model, e));
    CHECK(save(&st, model, 4, 1000, 0, err, sizeof err) == 0, "unfenced save: %s", err);
    CHECK(cmd_int(g_admin, "SISMEMBER ccd:{%s}:ckpt:pending 6:%" PRIu64 ".00000001:1", model, e) ==
              1,
          "a newer epoch's entry kept");
    ckpt_store_close(&st);
    printf("pending: a crashed writer's chunks removed by the next save\n");
}

/* ---- the commit-time fence ------------------------------------------------------------------ */

typedef struct {
    ckpt_store *st;
    const char *model;
    uint64_t epoch;
    size_t len;
    int rc;
    atomic_int done;
    char err[1024];
} save_job;

static void *save_thread(void *arg)
{
    save_job *j = arg;
    j->rc = save(j->st, j->model, 7, j->len, j->epoch, j->err, sizeof j->err);
    atomic_store(&j->done, 1);
    return NULL;
}

/* A claim that comes while A writes its chunks (after ckpt_begin's check): ckpt_commit refuses,
 * and A removes its own chunks. The claim is made as soon as A's pending entry appears, with A
 * writing thousands of 4 KiB chunks; should A still finish first, it is tried again, larger. */
static void test_commit_fence(void)
{
    char model[64], pattern[128];
    model_id(model, sizeof model, "commitfence");
    snprintf(pattern, sizeof pattern, "ccd:{%s}:ckpt:00000007*", model);
    int hit = 0;
    for (size_t len = 8u << 20; !hit && len <= (64u << 20); len *= 2) {
        ckpt_store a, b;
        open_store(&a, 2, 4096);
        open_store(&b, 2, 0);
        ckpt_claim ca, cb;
        save_job j = {
            .st = &a, .model = model, .epoch = claim(&a, model, "member-a", &ca), .len = len};
        pthread_t t;
        CHECK(pthread_create(&t, NULL, save_thread, &j) == 0, "thread");
        while (cmd_int(g_admin, "SCARD ccd:{%s}:ckpt:pending", model) == 0 && !atomic_load(&j.done))
            ; /* until A has passed ckpt_begin */
        claim(&b, model, "member-b", &cb);
        pthread_join(t, NULL);
        if (j.rc == CKPT_FENCED) {
            hit = 1;
            CHECK(strstr(j.err, "member-b"), "the refusal names B: %s", j.err);
            CHECK(scan_keys(g_admin, pattern, NULL) == 0, "A's chunks removed, no manifest");
            CHECK(cmd_int(g_admin, "SCARD ccd:{%s}:ckpt:pending", model) == 0, "A's entry removed");
            CHECK(cmd_int(g_admin, "ZCARD ccd:{%s}:ckpts", model) == 0, "nothing listed");
        } else {
            CHECK(j.rc == 0, "A's save: %s", j.err);
            cleanup_model(model);
        }
        ckpt_store_close(&a);
        ckpt_store_close(&b);
    }
    CHECK(hit, "A's commit was never refused after B's claim during its chunk writes");
    printf("commit fence: a claim during the chunk writes makes the commit refuse\n");
}

/* ---- main ----------------------------------------------------------------------------------- */

/* ---- blobs (teacher jobs' inputs and results) ----------------------------------------------- */

static bool drop_prefixed(void *prefix, const char *name)
{
    return !strncmp(name, prefix, strlen(prefix));
}

/* A blob larger than the chunk size in chunks (a manifest written last), read back bit for bit;
 * rewritten under the same name: the new bytes, the old write's chunks gone; a corrupted chunk
 * refused by the CRC; an older worker's single-string blob still read; deleted: no key left; a
 * sweep by name drops complete and half-written writes and nothing else. */
static void test_blobs(void)
{
    char model[64], err[1024], pattern[160];
    model_id(model, sizeof model, "blobs");
    ckpt_store st;
    open_store(&st, 2, 1000); /* 1,000-byte chunks */
    enum { N = 4500 };
    unsigned char a[N], b[N];
    for (int i = 0; i < N; i++) {
        a[i] = (unsigned char)(i * 7 + 1);
        b[i] = (unsigned char)(i * 13 + 5);
    }
    a[17] = 0; /* binary-safe */
    unsigned char *got = NULL;
    size_t len = 0;
    CHECK(ckpt_store_get_blob(&st, model, "in-1", &got, &len, err, sizeof err) == 0,
          "absent blob: %s", err);
    CHECK(ckpt_store_put_blob(&st, model, "in-1", a, N, err, sizeof err) == 0, "put: %s", err);
    snprintf(pattern, sizeof pattern, "ccd:{%s}:blob:in-1:*", model);
    CHECK(scan_keys(g_admin, pattern, NULL) == 5, "4,500 bytes in five 1,000-byte chunks");
    CHECK(ckpt_store_get_blob(&st, model, "in-1", NULL, NULL, err, sizeof err) == 1, "exists");
    CHECK(ckpt_store_get_blob(&st, model, "in-1", &got, &len, err, sizeof err) == 1 && len == N &&
              memcmp(got, a, N) == 0,
          "read back: %s", err);
    free(got);
    /* rewritten with other bytes (a redone job): the new ones, and only the new write's chunks */
    CHECK(ckpt_store_put_blob(&st, model, "in-1", b, 2500, err, sizeof err) == 0, "rewrite: %s",
          err);
    CHECK(scan_keys(g_admin, pattern, NULL) == 3, "the replaced write's chunks dropped");
    CHECK(ckpt_store_get_blob(&st, model, "in-1", &got, &len, err, sizeof err) == 1 &&
              len == 2500 && memcmp(got, b, 2500) == 0,
          "rewritten read: %s", err);
    free(got);
    /* a chunk changed behind the store's back: refused, not returned */
    char w[64], man[200];
    cmd_str(g_admin, man, sizeof man, "GET ccd:{%s}:blob:in-1", model);
    CHECK(sscanf(man, "CCDBLOB1 %63s", w) == 1, "manifest: %s", man);
    freeReplyObject(cmd(g_admin, "SETRANGE ccd:{%s}:blob:in-1:%s:1 10 X", model, w));
    err[0] = '\0';
    got = NULL;
    CHECK(ckpt_store_get_blob(&st, model, "in-1", &got, &len, err, sizeof err) == -1 && !got &&
              strstr(err, "CRC"),
          "a corrupted chunk: %s", err);
    /* an empty blob, and an older worker's single string */
    CHECK(ckpt_store_put_blob(&st, model, "empty", a, 0, err, sizeof err) == 0, "empty: %s", err);
    CHECK(ckpt_store_get_blob(&st, model, "empty", &got, &len, err, sizeof err) == 1 && len == 0,
          "empty read: %s", err);
    free(got);
    freeReplyObject(cmd(g_admin, "SET ccd:{%s}:blob:old %b", model, "old bytes", (size_t)9));
    CHECK(ckpt_store_get_blob(&st, model, "old", &got, &len, err, sizeof err) == 1 && len == 9 &&
              memcmp(got, "old bytes", 9) == 0,
          "a single-string blob: %s", err);
    free(got);
    /* every write listed in P:{M}:blobs until its chunks are dropped */
    CHECK(cmd_int(g_admin, "SCARD ccd:{%s}:blobs", model) == 2, "two writes listed (in-1, empty)");
    const char *names[] = {"in-1", "empty", "old"};
    for (int i = 0; i < 3; i++)
        CHECK(ckpt_store_del_blob(&st, model, names[i], err, sizeof err) == 0, "del %s: %s",
              names[i], err);
    snprintf(pattern, sizeof pattern, "ccd:{%s}:blob:*", model);
    CHECK(scan_keys(g_admin, pattern, NULL) == 0, "deleted: manifests and chunks");
    CHECK(ckpt_store_get_blob(&st, model, "in-1", NULL, NULL, err, sizeof err) == 0, "gone");
    CHECK(cmd_int(g_admin, "SCARD ccd:{%s}:blobs", model) == 0, "no write listed");

    /* the sweep: "keep-*" stays; "drop-1" goes, and so does a write that died after its second
     * chunk (listed, chunks, no manifest) */
    CHECK(ckpt_store_put_blob(&st, model, "keep-1", a, N, err, sizeof err) == 0, "keep: %s", err);
    CHECK(ckpt_store_put_blob(&st, model, "drop-1", a, N, err, sizeof err) == 0, "drop: %s", err);
    freeReplyObject(cmd(g_admin, "SADD ccd:{%s}:blobs %s", model, "drop-2 0.deadbeef 5"));
    for (int i = 0; i < 2; i++)
        freeReplyObject(cmd(g_admin, "SET ccd:{%s}:blob:drop-2:0.deadbeef:%d x", model, i));
    int swept = ckpt_store_sweep_blobs(&st, model, drop_prefixed, "drop-", err, sizeof err);
    CHECK(swept == 2, "swept %d writes: %s", swept, err);
    CHECK(scan_keys(g_admin, pattern, NULL) == 6, "keep-1's manifest and five chunks remain");
    CHECK(ckpt_store_get_blob(&st, model, "keep-1", &got, &len, err, sizeof err) == 1 && len == N &&
              memcmp(got, a, N) == 0,
          "keep-1 intact: %s", err);
    free(got);
    CHECK(cmd_int(g_admin, "SCARD ccd:{%s}:blobs", model) == 1, "keep-1 listed alone");
    ckpt_store_close(&st);
    printf("blobs: 4,500 bytes in 5 chunks read back, rewritten (old chunks dropped), a corrupted "
           "chunk refused, a single-string blob read, deleted without leftovers; a sweep dropped "
           "a complete and a half-written write, kept the other\n");
}

int main(void)
{
    g_admin = services_redis(g_host, sizeof g_host, &g_port);
    g_pid = (int)getpid();
    test_claim();
    test_fenced_save();
    test_chunks();
    test_legacy();
    test_pending();
    test_commit_fence();
    test_blobs();
    char pattern[96];
    snprintf(pattern, sizeof pattern, "ccd:{ckpttest-%d-*", g_pid);
    cleanup(g_admin, pattern);
    snprintf(pattern, sizeof pattern, "ckpttest:{ckpttest-%d-*", g_pid);
    cleanup(g_admin, pattern);
    redisFree(g_admin);
    g_admin = NULL;
    printf("redis_ckpt: all checks passed on %s:%d\n", g_host, g_port);
    return 0;
}
