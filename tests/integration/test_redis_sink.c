/* Integration test of worker/redis_sink against the real redis-server that tests/services.sh
 * starts: the key layout byte for byte, the update announcement, pruning, orphan removal, reading
 * back, a concurrent reader that must never see a partial version, the publication rate of a
 * Yelp-sized version (printed, not asserted), error paths, reconnection, and an ACL user limited
 * to its own key prefix, and the owner record's fencing (owner.h): a publisher with an older epoch
 * changes nothing, a lower block never goes live, the scripts come back after SCRIPT FLUSH. Every
 * model id carries the pid, and the keys are removed at the end, so
 * runs sharing a server do not meet. */
#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint.h"
#include "owner.h"
#include "redis_sink.h"
#include "redis_admin.h"
#include "services_env.h"

static char g_host[128];
static int g_port;
static int g_pid;
static redisContext *g_admin; /* default user: inspects and tampers with keys */

/* ---- helpers -------------------------------------------------------------------------------- */

static void put_f32le(unsigned char *p, float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    for (int b = 0; b < 4; b++)
        p[b] = (unsigned char)(u >> (8 * b));
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static redisContext *raw_connect(void)
{
    struct timeval tv = {10, 0};
    redisContext *c = redisConnectWithTimeout(g_host, g_port, tv);
    CHECK(c && !c->err, "connect %s:%d: %s", g_host, g_port, c ? c->errstr : "no context");
    CHECK(redisSetTimeout(c, tv) == REDIS_OK, "set timeout");
    return c;
}

static void model_id(char *out, size_t n, const char *what)
{
    snprintf(out, n, "sinktest-%d-%s", g_pid, what);
}

static redis_sink *open_sink(int keep, int batch, const char *prefix, const char *user,
                             const char *password)
{
    redis_sink_opts o;
    redis_sink_opts_default_at(&o, g_host, g_port, user, password, prefix);
    o.keep_versions = keep;
    o.batch_fields = batch;
    char err[512] = "";
    redis_sink *s = redis_sink_open(&o, err, sizeof err);
    CHECK(s, "redis_sink_open: %s", err);
    return s;
}

/* A version of n_users x n_items rows with ids u<k> / i<k> and values that depend on the row,
 * the dimension and a salt (so versions differ). One allocation per array, owned by the caller
 * through version_free. */
typedef struct {
    redis_version v;
    char *idbuf;
    const char **ids;
    float *vecs;
} test_version;

static float value_of(int side, int row, int d, int salt)
{
    if ((row + d) % 7 == 3)
        return 0.0f; /* NUL bytes in the blob */
    return (float)(side ? -1 : 1) * ((float)row * 0.5f + (float)d * 0.03125f + (float)salt) / 3.0f;
}

static void version_make(test_version *t, const char *model, int n_users, int n_items, int dim,
                         int salt)
{
    int n = n_users + n_items;
    t->idbuf = malloc((size_t)n * 16 + 1);
    t->ids = malloc((size_t)(n + 1) * sizeof *t->ids);
    t->vecs = malloc(((size_t)n * (size_t)dim + 1) * sizeof *t->vecs);
    CHECK(t->idbuf && t->ids && t->vecs, "out of memory");
    for (int r = 0; r < n; r++) {
        int item = r >= n_users, row = item ? r - n_users : r;
        snprintf(t->idbuf + 16 * r, 16, "%c%d", item ? 'i' : 'u', row);
        t->ids[r] = t->idbuf + 16 * r;
        for (int d = 0; d < dim; d++)
            t->vecs[(size_t)r * dim + d] = value_of(item, row, d, salt);
    }
    t->v = (redis_version){
        .model = model,
        .block = 100, /* one block: re-publications pass the owner record's stale check */
        .dim = dim,
        .n_users = n_users,
        .n_items = n_items,
        .user_ids = t->ids,
        .item_ids = t->ids + n_users,
        .user_vecs = t->vecs,
        .item_vecs = t->vecs + (size_t)n_users * dim,
    };
}

static void version_free(test_version *t)
{
    free(t->idbuf), free(t->ids), free(t->vecs);
}

/* Asserts the three keys of version v of a model exist (or all are gone). */
static void check_version_keys(const char *prefix, const char *model, int64_t v, int exist)
{
    long long n = cmd_int(g_admin,
                          "EXISTS %s:{%s}:v%" PRId64 ":user %s:{%s}:v%" PRId64 ":item "
                          "%s:{%s}:v%" PRId64 ":meta",
                          prefix, model, v, prefix, model, v, prefix, model, v);
    CHECK(n == (exist ? 3 : 0), "version %" PRId64 " of %s: %lld of its 3 keys exist, expected %d",
          v, model, n, exist ? 3 : 0);
}

/* The members of the versions zset, with their scores checked equal to the members. */
static int versions_of(const char *prefix, const char *model, int64_t *out, int cap)
{
    redisReply *r = cmd(g_admin, "ZRANGE %s:{%s}:versions 0 -1 WITHSCORES", prefix, model);
    CHECK(r->type == REDIS_REPLY_ARRAY && r->elements % 2 == 0, "ZRANGE versions");
    int n = (int)(r->elements / 2);
    CHECK(n <= cap, "too many versions");
    for (int i = 0; i < n; i++) {
        out[i] = strtoll(r->element[2 * i]->str, NULL, 10);
        CHECK(strtoll(r->element[2 * i + 1]->str, NULL, 10) == out[i],
              "version %" PRId64 " has score %s", out[i], r->element[2 * i + 1]->str);
    }
    freeReplyObject(r);
    return n;
}

/* ---- layout, announcement, reading back ----------------------------------------------------- */

typedef struct {
    const test_version *t;
    int side; /* 0 user, 1 item */
    int seen, bad;
} readback;

static int readback_fn(void *ctx, const char *id, const float *vec, int dim)
{
    readback *rb = ctx;
    int n = rb->side ? rb->t->v.n_items : rb->t->v.n_users;
    const char *const *ids = rb->side ? rb->t->v.item_ids : rb->t->v.user_ids;
    const float *vecs = rb->side ? rb->t->v.item_vecs : rb->t->v.user_vecs;
    rb->seen++;
    int row = atoi(id + 1);
    if (row < 0 || row >= n || strcmp(ids[row], id) != 0 ||
        memcmp(vecs + (size_t)row * dim, vec, (size_t)dim * sizeof *vec) != 0)
        rb->bad++;
    return 0;
}

static int stop_fn(void *ctx, const char *id, const float *vec, int dim)
{
    (void)id, (void)vec, (void)dim;
    return ++*(int *)ctx >= 2 ? 7 : 0;
}

static void test_layout(void)
{
    char model[64], chan[128], err[512];
    model_id(model, sizeof model, "layout");
    snprintf(chan, sizeof chan, "ccd:{%s}:updates", model);

    /* Subscribed before the publication, on its own connection. */
    redisContext *sub = raw_connect();
    redisReply *r = cmd(sub, "SUBSCRIBE %s", chan);
    CHECK(r->type == REDIS_REPLY_ARRAY && r->elements == 3, "SUBSCRIBE");
    freeReplyObject(r);

    enum { D = 4 };
    const char *users[3] = {"u-1", "alice@example", "3"};
    const char *items[2] = {"biz:Zx9", "i 2"};
    const float uvec[3 * D] = {1.0f,    -2.5f, 0.0f,  3.25e-3f, -0.0f,  1e30f,
                               -7.125f, 0.1f,  42.0f, 0.5f,     -0.25f, 1.0f};
    const float ivec[2 * D] = {0.0f, 0.0f, 0.0f, 1.0f, -1.0f, 2.0f, -3.0f, 4.0f};
    const char *mnames[2] = {"holdout_recall@20", "events"};
    const char *mvalues[2] = {"0.2512", "12345"};
    redis_version v = {.model = model,
                       .block = 7,
                       .dim = D,
                       .n_users = 3,
                       .n_items = 2,
                       .user_ids = users,
                       .item_ids = items,
                       .user_vecs = uvec,
                       .item_vecs = ivec,
                       .n_meta = 2,
                       .meta_names = mnames,
                       .meta_values = mvalues};
    redis_sink *s = open_sink(3, 512, NULL, NULL, NULL);
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    long long now_ms = (long long)wall.tv_sec * 1000 + wall.tv_nsec / 1000000;
    CHECK(redis_current_version(s, model, err, sizeof err) == 0, "current before publishing: %s",
          err);
    int64_t n = redis_publish(s, &v, err, sizeof err);
    CHECK(n == 1, "publish: %s", err);

    /* The layout, key by key. */
    CHECK(cmd_num(g_admin, "GET ccd:{%s}:seq", model) == 1, "seq");
    CHECK(cmd_num(g_admin, "GET ccd:{%s}:current", model) == 1, "current");
    int64_t vers[8];
    CHECK(versions_of("ccd", model, vers, 8) == 1 && vers[0] == 1, "versions zset");
    for (int side = 0; side < 2; side++) {
        const char *name = side ? "item" : "user";
        int count = side ? 2 : 3;
        const char *const *ids = side ? items : users;
        const float *vecs = side ? ivec : uvec;
        CHECK(cmd_int(g_admin, "HLEN ccd:{%s}:v1:%s", model, name) == count, "HLEN %s", name);
        for (int k = 0; k < count; k++) {
            unsigned char want[4 * D];
            for (int d = 0; d < D; d++)
                put_f32le(want + 4 * d, vecs[k * D + d]);
            r = cmd(g_admin, "HGET ccd:{%s}:v1:%s %s", model, name, ids[k]);
            CHECK(r->type == REDIS_REPLY_STRING && r->len == sizeof want &&
                      memcmp(r->str, want, sizeof want) == 0,
                  "%s %s: raw bytes differ from the little-endian floats", name, ids[k]);
            freeReplyObject(r);
        }
    }
    const char *expect[][2] = {{"dim", "4"},        {"dtype", "f32le"},
                               {"users", "3"},      {"items", "2"},
                               {"block", "7"},      {"holdout_recall@20", "0.2512"},
                               {"events", "12345"}, {"provisional", "0"}};
    for (size_t k = 0; k < sizeof expect / sizeof *expect; k++) {
        r = cmd(g_admin, "HGET ccd:{%s}:v1:meta %s", model, expect[k][0]);
        CHECK(r->type == REDIS_REPLY_STRING && strcmp(r->str, expect[k][1]) == 0,
              "meta %s: %s, expected %s", expect[k][0], r->str ? r->str : "(nil)", expect[k][1]);
        freeReplyObject(r);
    }
    int64_t created = cmd_num(g_admin, "HGET ccd:{%s}:v1:meta created_ms", model);
    CHECK(llabs(created - now_ms) < 60000, "created_ms %" PRId64 " is not now (%lld)", created,
          now_ms);
    CHECK(cmd_int(g_admin, "HLEN ccd:{%s}:v1:meta", model) == 9, "meta has extra fields");

    /* The announcement. */
    r = NULL;
    CHECK(redisGetReply(sub, (void **)&r) == REDIS_OK && r, "no announcement: %s", sub->errstr);
    CHECK(r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
              strcmp(r->element[0]->str, "message") == 0 && strcmp(r->element[1]->str, chan) == 0 &&
              strcmp(r->element[2]->str, "1") == 0,
          "announcement is not [message, %s, 1]", chan);
    freeReplyObject(r);
    redisFree(sub);

    /* Reading back through the sink. */
    CHECK(redis_current_version(s, model, err, sizeof err) == 1, "current: %s", err);
    char *val = NULL;
    CHECK(redis_read_meta(s, model, 1, "dtype", &val, err, sizeof err) == 1 &&
              strcmp(val, "f32le") == 0,
          "read_meta dtype: %s", err);
    free(val);
    CHECK(redis_read_meta(s, model, 1, "holdout_recall@20", &val, err, sizeof err) == 1 &&
              strcmp(val, "0.2512") == 0,
          "read_meta extra: %s", err);
    free(val);
    CHECK(redis_read_meta(s, model, 1, "no-such-field", &val, err, sizeof err) == 0 && !val,
          "absent meta field");
    CHECK(redis_read_meta(s, model, 2, "dim", &val, err, sizeof err) == 0,
          "meta of an absent version");
    float got[8];
    int dim = 0;
    for (int k = 0; k < 3; k++) {
        CHECK(redis_read_vector(s, model, 1, "user", users[k], got, 8, &dim, err, sizeof err) ==
                      1 &&
                  dim == D,
              "read_vector %s: %s", users[k], err);
        CHECK(memcmp(got, uvec + k * D, sizeof(float) * D) == 0, "read_vector %s: values differ",
              users[k]);
    }
    CHECK(redis_read_vector(s, model, 1, "item", items[1], got, 8, &dim, err, sizeof err) == 1 &&
              memcmp(got, ivec + D, sizeof(float) * D) == 0,
          "read_vector item: %s", err);
    CHECK(redis_read_vector(s, model, 1, "user", "nobody", got, 8, &dim, err, sizeof err) == 0,
          "absent id");
    err[0] = '\0';
    CHECK(redis_read_vector(s, model, 1, "user", users[0], got, 3, &dim, err, sizeof err) == -1 &&
              err[0],
          "max_dim below dim is an error");
    err[0] = '\0';
    CHECK(redis_read_vector(s, model, 5, "user", users[0], got, 8, &dim, err, sizeof err) == -1 &&
              err[0],
          "a missing version is an error");

    /* readback_fn finds rows by the digits after the first byte: a version with u<k> ids */
    test_version tv;
    version_make(&tv, model, 40, 25, 6, 3);
    CHECK(redis_publish(s, &tv.v, err, sizeof err) == 2, "publish 2: %s", err);
    for (int side = 0; side < 2; side++) {
        readback rb = {.t = &tv, .side = side};
        int64_t cnt = redis_read_vectors(s, model, 2, side ? "item" : "user", &dim, readback_fn,
                                         &rb, err, sizeof err);
        CHECK(cnt == (side ? 25 : 40) && dim == 6 && rb.seen == cnt && rb.bad == 0,
              "read_vectors %d: %" PRId64 " (%d seen, %d bad): %s", side, cnt, rb.seen, rb.bad,
              err);
    }
    int calls = 0;
    err[0] = '\0';
    CHECK(redis_read_vectors(s, model, 2, "user", &dim, stop_fn, &calls, err, sizeof err) == -1 &&
              calls == 2 && err[0],
          "a callback's non-zero return stops the read");
    err[0] = '\0';
    CHECK(redis_read_vectors(s, model, 9, "user", &dim, readback_fn, NULL, err, sizeof err) == -1 &&
              err[0],
          "read_vectors of a missing version");
    err[0] = '\0';
    CHECK(redis_read_vectors(s, model, 2, "users", &dim, readback_fn, NULL, err, sizeof err) ==
                  -1 &&
              err[0],
          "bad side");

    /* A value of the wrong length is refused. */
    r = cmd(g_admin, "HSET ccd:{%s}:v2:user u0 abc", model);
    freeReplyObject(r);
    err[0] = '\0';
    CHECK(redis_read_vector(s, model, 2, "user", "u0", got, 8, &dim, err, sizeof err) == -1 &&
              err[0],
          "short value (read_vector)");
    readback rb = {.t = &tv};
    err[0] = '\0';
    CHECK(redis_read_vectors(s, model, 2, "user", &dim, readback_fn, &rb, err, sizeof err) == -1 &&
              err[0],
          "short value (read_vectors)");

    /* An empty side is a valid version. */
    version_free(&tv);
    version_make(&tv, model, 5, 0, 3, 4);
    CHECK(redis_publish(s, &tv.v, err, sizeof err) == 3, "publish without items: %s", err);
    CHECK(redis_read_vectors(s, model, 3, "item", &dim, readback_fn, &rb, err, sizeof err) == 0,
          "empty side: %s", err);
    version_free(&tv);
    redis_sink_close(s);
    printf("layout: keys, bytes, meta, announcement and read-back are as documented\n");
}

/* ---- pruning, orphans, a failed publication ---------------------------------------------------
 */

static void test_prune_orphans(void)
{
    char model[64], err[512];
    model_id(model, sizeof model, "prune");
    redis_sink *s =
        open_sink(3, 2, NULL, NULL, NULL); /* batch of 2 fields: several HSETs per side */
    test_version tv[5];
    for (int k = 0; k < 5; k++) {
        version_make(&tv[k], model, 5, 3, 4, k);
        CHECK(redis_publish(s, &tv[k].v, err, sizeof err) == k + 1, "publish %d: %s", k + 1, err);
    }
    int64_t vers[16];
    CHECK(versions_of("ccd", model, vers, 16) == 3 && vers[0] == 3 && vers[1] == 4 && vers[2] == 5,
          "versions after 5 publications with keep 3");
    check_version_keys("ccd", model, 1, 0);
    check_version_keys("ccd", model, 2, 0);
    for (int k = 3; k <= 5; k++)
        check_version_keys("ccd", model, k, 1);
    CHECK(cmd_num(g_admin, "GET ccd:{%s}:current", model) == 5, "current after pruning");
    CHECK(cmd_int(g_admin, "HLEN ccd:{%s}:v5:user", model) == 5, "batches of 2 fields");

    /* A publication that died while writing version 6: a number handed out, a partial hash. */
    CHECK(cmd_int(g_admin, "INCR ccd:{%s}:seq", model) == 6, "simulated orphan number");
    CHECK(cmd_int(g_admin, "HSET ccd:{%s}:v6:user u0 partial", model) == 1,
          "simulated orphan hash");
    CHECK(redis_publish(s, &tv[0].v, err, sizeof err) == 7, "publish after an orphan: %s", err);
    CHECK(cmd_int(g_admin, "EXISTS ccd:{%s}:v6:user", model) == 0, "the orphan was not deleted");
    CHECK(versions_of("ccd", model, vers, 16) == 3 && vers[0] == 4 && vers[1] == 5 && vers[2] == 7,
          "versions after the orphan");
    check_version_keys("ccd", model, 3, 0);

    /* The counter lost (deleted, or restored from an old snapshot): never reuse a listed number. */
    CHECK(cmd_int(g_admin, "DEL ccd:{%s}:seq", model) == 1, "DEL seq");
    CHECK(redis_publish(s, &tv[1].v, err, sizeof err) == 8, "publish after losing seq: %s", err);
    CHECK(versions_of("ccd", model, vers, 16) == 3 && vers[0] == 5 && vers[1] == 7 && vers[2] == 8,
          "versions after losing seq");
    check_version_keys("ccd", model, 7, 1);

    /* Duplicate ids fail the publication, leave no partial version and do not move current. */
    test_version dup;
    version_make(&dup, model, 4, 2, 4, 9);
    dup.ids[2] = dup.ids[0];
    err[0] = '\0';
    CHECK(redis_publish(s, &dup.v, err, sizeof err) == -1 && strstr(err, "duplicate"),
          "duplicate ids: %s", err);
    check_version_keys("ccd", model, 9, 0);
    CHECK(cmd_num(g_admin, "GET ccd:{%s}:current", model) == 8,
          "current moved on a failed publication");
    version_free(&dup);

    /* Reserved meta names and bad shapes are refused before anything is written. */
    const char *names[1] = {"users"}, *values[1] = {"1"};
    redis_version bad = tv[0].v;
    bad.n_meta = 1, bad.meta_names = names, bad.meta_values = values;
    err[0] = '\0';
    CHECK(redis_publish(s, &bad, err, sizeof err) == -1 && err[0], "reserved meta name");
    bad = tv[0].v;
    bad.dim = 0;
    CHECK(redis_publish(s, &bad, err, sizeof err) == -1, "dim 0");
    CHECK(cmd_num(g_admin, "GET ccd:{%s}:seq", model) == 9, "refused versions took a number");
    CHECK(redis_publish(s, &tv[2].v, err, sizeof err) == 10, "publish after failures: %s", err);
    check_version_keys("ccd", model, 9, 0);
    for (int k = 0; k < 5; k++)
        version_free(&tv[k]);
    redis_sink_close(s);
    printf("prune: keep_versions, orphans, a lost counter and a failed publication behave\n");
}

/* ---- a reader against a publishing writer --------------------------------------------------- */

typedef struct {
    const char *model;
    atomic_int done;
    long long checks, complete, pruned;
    int64_t first, last;
} race;

/* Reads current, then checks the version in one MULTI (so the check itself is atomic): the meta
 * must be present with users/items equal to the hash sizes, or the whole version must be gone
 * (pruned since current was read). A partial version has a hash without meta, or a short hash. */
static void *reader(void *arg)
{
    race *rc = arg;
    redisContext *c = raw_connect();
    while (!atomic_load(&rc->done) || rc->checks < 5) {
        int64_t cur = cmd_num(c, "GET ccd:{%s}:current", rc->model);
        if (cur < 0)
            continue;
        /* MULTI, four reads and EXEC in one round trip: the more checks, the better the odds */
        const char *q[4] = {"HGET ccd:{%s}:v%" PRId64 ":meta users",
                            "HGET ccd:{%s}:v%" PRId64 ":meta items",
                            "HLEN ccd:{%s}:v%" PRId64 ":user", "HLEN ccd:{%s}:v%" PRId64 ":item"};
        CHECK(redisAppendCommand(c, "MULTI") == REDIS_OK, "MULTI");
        for (int k = 0; k < 4; k++)
            CHECK(redisAppendCommand(c, q[k], rc->model, cur) == REDIS_OK, "append");
        CHECK(redisAppendCommand(c, "EXEC") == REDIS_OK, "EXEC");
        redisReply *r = NULL;
        for (int k = 0; k < 5; k++) { /* +OK and +QUEUED */
            CHECK(redisGetReply(c, (void **)&r) == REDIS_OK && r && r->type == REDIS_REPLY_STATUS,
                  "MULTI / QUEUED: %s", c->errstr);
            freeReplyObject(r);
        }
        CHECK(redisGetReply(c, (void **)&r) == REDIS_OK && r, "EXEC: %s", c->errstr);
        CHECK(r->type == REDIS_REPLY_ARRAY && r->elements == 4, "EXEC");
        redisReply **e = r->element;
        rc->checks++;
        if (e[0]->type == REDIS_REPLY_NIL) {
            CHECK(e[1]->type == REDIS_REPLY_NIL && e[2]->integer == 0 && e[3]->integer == 0,
                  "version %" PRId64 " is current but partial: no meta, %lld users, %lld items",
                  cur, e[2]->integer, e[3]->integer);
            rc->pruned++;
        } else {
            CHECK(e[0]->type == REDIS_REPLY_STRING && e[1]->type == REDIS_REPLY_STRING,
                  "meta counts");
            CHECK(atoll(e[0]->str) == e[2]->integer && atoll(e[1]->str) == e[3]->integer,
                  "version %" PRId64
                  " is current but partial: meta %s users %s items, hashes %lld and %lld",
                  cur, e[0]->str, e[1]->str, e[2]->integer, e[3]->integer);
            rc->complete++;
            if (!rc->first)
                rc->first = cur;
            rc->last = cur;
        }
        freeReplyObject(r);
    }
    redisFree(c);
    return NULL;
}

static void test_reader(void)
{
    char model[64], err[512];
    model_id(model, sizeof model, "race");
    redis_sink *s = open_sink(3, 512, NULL, NULL, NULL);
    test_version tv;
    version_make(&tv, model, 1200, 800, 8, 1);
    CHECK(redis_publish(s, &tv.v, err, sizeof err) == 1, "first version: %s", err);
    race rc = {.model = model};
    pthread_t th;
    CHECK(pthread_create(&th, NULL, reader, &rc) == 0, "pthread_create");
    for (int k = 2; k <= 21; k++) {
        tv.v.block = 100 + k;
        tv.v.n_users = 1200 - 20 * k; /* the sizes change, so a mix-up would show */
        tv.v.n_items = 800 + 10 * k;
        tv.v.item_ids = tv.ids + tv.v.n_users;
        tv.v.item_vecs = tv.vecs + (size_t)tv.v.n_users * 8;
        CHECK(redis_publish(s, &tv.v, err, sizeof err) == k, "publish %d: %s", k, err);
    }
    atomic_store(&rc.done, 1);
    pthread_join(th, NULL);
    CHECK(rc.complete > 0, "the reader never saw a version");
    printf("reader: %lld checks while 20 versions of ~2000 rows were published (%lld complete, "
           "%lld pruned "
           "under it; versions %" PRId64 "..%" PRId64 " seen), never a partial one\n",
           rc.checks, rc.complete, rc.pruned, rc.first, rc.last);
    version_free(&tv);
    redis_sink_close(s);
}

/* ---- fencing (owner.h) ---------------------------------------------------------------------- */

static void test_fencing(void)
{
    char model[64], err[512];
    model_id(model, sizeof model, "fence");
    redis_sink *a = open_sink(2, 512, NULL, NULL, NULL), *b = open_sink(2, 512, NULL, NULL, NULL);
    test_version va, vb;
    version_make(&va, model, 30, 20, 4, 1);
    version_make(&vb, model, 30, 20, 4, 2);
    owner_outcome o;
    /* A owns the model with epoch 10 (adopted, as with the directory checkpoint store) */
    CHECK(owner_adopt(a, model, 10, "member-a", "t/0", &o, err, sizeof err) == 0, "adopt: %s", err);
    va.v.epoch = 10, va.v.block = 2, va.v.outcome = &o;
    CHECK(redis_publish(a, &va.v, err, sizeof err) == 1 && !o.raised, "A publishes: %s", err);
    CHECK(cmd_num(g_admin, "HGET ccd:{%s}:owner block", model) == 2 &&
              cmd_num(g_admin, "HGET ccd:{%s}:owner version", model) == 1 &&
              cmd_num(g_admin, "HGET ccd:{%s}:owner epoch", model) == 10,
          "owner record after a publication");
    /* B claims with a higher epoch; A's adopt of an older one is refused and names B */
    CHECK(owner_adopt(b, model, 20, "member-b", "t/1", &o, err, sizeof err) == 0, "adopt B: %s",
          err);
    CHECK(owner_adopt(a, model, 10, "member-a", "t/0", &o, err, sizeof err) == OWNER_FENCED &&
              o.held_epoch == 20 && !strcmp(o.member, "member-b") && !strcmp(o.source, "t/1") &&
              o.claimed_ago_s >= 0,
          "an older adopt is refused");
    /* B's version 2 in progress: an orphan in A's eyes (numbered, unlisted) */
    CHECK(cmd_int(g_admin, "INCR ccd:{%s}:seq", model) == 2, "seq");
    redisReply *r = cmd(g_admin, "HSET ccd:{%s}:v2:meta block 3", model);
    freeReplyObject(r);
    /* A's publication is fenced: B's in-progress version survives, nothing of A's is listed */
    CHECK(redis_publish(a, &va.v, err, sizeof err) == OWNER_FENCED && strstr(err, "member-b") &&
              strstr(err, "epoch 20"),
          "A fenced at the orphan deletion: %s", err);
    CHECK(cmd_int(g_admin, "EXISTS ccd:{%s}:v2:meta", model) == 1, "B's version was deleted");
    CHECK(cmd_int(g_admin, "EXISTS ccd:{%s}:v3:meta ccd:{%s}:v3:user", model, model) == 0,
          "A's fenced version left keys");
    CHECK(cmd_num(g_admin, "GET ccd:{%s}:current", model) == 1, "current moved");
    r = cmd(g_admin, "DEL ccd:{%s}:v2:meta", model);
    freeReplyObject(r);
    /* B publishes block 5; after SCRIPT FLUSH the scripts are loaded again (NOSCRIPT) */
    r = cmd(g_admin, "SCRIPT FLUSH");
    freeReplyObject(r);
    vb.v.epoch = 20, vb.v.block = 5, vb.v.outcome = &o;
    CHECK(redis_publish(b, &vb.v, err, sizeof err) == 4, "B publishes after SCRIPT FLUSH: %s", err);
    /* a lower block never goes live, even with the owner's epoch: stale, its keys removed */
    vb.v.block = 4;
    CHECK(redis_publish(b, &vb.v, err, sizeof err) == OWNER_FENCED && o.stale &&
              o.live_block == 5 && strstr(err, "block 5"),
          "a lower block is refused: %s", err);
    CHECK(cmd_int(g_admin, "EXISTS ccd:{%s}:v5:meta", model) == 0, "the stale version's keys");
    vb.v.block = 5; /* the same block again: a re-publication passes */
    CHECK(redis_publish(b, &vb.v, err, sizeof err) == 6, "re-publication: %s", err);
    /* a record that lost B's epoch (failover): B's next publication raises it back */
    r = cmd(g_admin, "HSET ccd:{%s}:owner epoch 15", model);
    freeReplyObject(r);
    vb.v.block = 6;
    CHECK(redis_publish(b, &vb.v, err, sizeof err) == 7 && o.raised &&
              cmd_num(g_admin, "HGET ccd:{%s}:owner epoch", model) == 20,
          "raised: %s", err);
    /* prune is fenced too: A's publication (epoch 10) neither lists nor prunes anything */
    int64_t vers[8];
    int nv = versions_of("ccd", model, vers, 8);
    CHECK(redis_publish(a, &va.v, err, sizeof err) == OWNER_FENCED, "A fenced again");
    CHECK(versions_of("ccd", model, vers, 8) == nv &&
              cmd_num(g_admin, "GET ccd:{%s}:current", model) == 7,
          "A changed versions or current");
    version_free(&va);
    version_free(&vb);
    redis_sink_close(a);
    redis_sink_close(b);
}

/* ---- provisional versions (the fast path, owner.h publication rules) ------------------------- */

/* Publish tv as block `block` (provisional or exact) with epoch 10; returns redis_publish's. */
static int64_t publish_as(redis_sink *s, test_version *tv, int block, bool provisional,
                          owner_outcome *o, char *err, size_t errlen)
{
    tv->v.block = block, tv->v.provisional = provisional, tv->v.epoch = 10, tv->v.outcome = o;
    return redis_publish(s, &tv->v, err, errlen);
}

static void check_meta(redis_sink *s, const char *model, int64_t v, const char *field,
                       const char *want)
{
    char *got = NULL, err[512];
    CHECK(redis_read_meta(s, model, v, field, &got, err, sizeof err) == 1 && !strcmp(got, want),
          "v%" PRId64 " meta %s: %s, expected %s (%s)", v, field, got ? got : "(absent)", want,
          err);
    free(got);
}

static void test_provisional(void)
{
    char model[64], err[512];
    model_id(model, sizeof model, "prov");
    redis_sink *s = open_sink(2, 512, NULL, NULL, NULL);
    test_version tv;
    version_make(&tv, model, 30, 20, 4, 3);
    owner_outcome o;
    CHECK(owner_adopt(s, model, 10, "member-a", "t/0", &o, err, sizeof err) == 0, "adopt: %s", err);
    CHECK(publish_as(s, &tv, 0, false, &o, err, sizeof err) == 1 && !o.behind, "exact 0: %s", err);
    check_meta(s, model, 1, "provisional", "0");
    CHECK(publish_as(s, &tv, 1, true, &o, err, sizeof err) == 2, "provisional 1: %s", err);
    check_meta(s, model, 2, "provisional", "1");
    CHECK(publish_as(s, &tv, 2, true, &o, err, sizeof err) == 3, "provisional 2: %s", err);
    /* exact 1 while provisional 2 is live: listed, readable, `current` stays */
    CHECK(publish_as(s, &tv, 1, false, &o, err, sizeof err) == 4 && o.behind, "exact 1: %s", err);
    CHECK(cmd_num(g_admin, "GET ccd:{%s}:current", model) == 3, "current moved back");
    CHECK(cmd_num(g_admin, "ZSCORE ccd:{%s}:versions 4", model) == 4, "exact 1 not listed");
    check_meta(s, model, 4, "block", "1");
    check_meta(s, model, 4, "provisional", "0");
    CHECK(cmd_num(g_admin, "HGET ccd:{%s}:owner block", model) == 2 &&
              cmd_num(g_admin, "HGET ccd:{%s}:owner exact_block", model) == 1,
          "owner record after exact 1");
    /* a provisional version of a block that has an exact one is superseded: nothing listed */
    CHECK(publish_as(s, &tv, 1, true, &o, err, sizeof err) == OWNER_FENCED && o.stale,
          "provisional 1 after exact 1: %s", err);
    check_version_keys("ccd", model, 5, 0);
    /* provisional 5 live, then exact 2, 3, 4 behind it: keep_versions = 2 prunes older ones,
     * never the live v6 */
    CHECK(publish_as(s, &tv, 5, true, &o, err, sizeof err) == 6, "provisional 5: %s", err);
    for (int b = 2; b <= 4; b++)
        CHECK(publish_as(s, &tv, b, false, &o, err, sizeof err) == 5 + b && o.behind,
              "exact %d: %s", b, err);
    CHECK(cmd_num(g_admin, "GET ccd:{%s}:current", model) == 6, "current moved");
    check_version_keys("ccd", model, 6, 1);
    CHECK(cmd_num(g_admin, "ZSCORE ccd:{%s}:versions 6", model) == 6, "the live version pruned");
    check_version_keys("ccd", model, 7, 0);
    /* exact 5 replaces provisional 5 */
    CHECK(publish_as(s, &tv, 5, false, &o, err, sizeof err) == 10 && !o.behind, "exact 5: %s", err);
    CHECK(cmd_num(g_admin, "GET ccd:{%s}:current", model) == 10 &&
              cmd_num(g_admin, "HGET ccd:{%s}:owner provisional", model) == 0,
          "exact 5 did not replace provisional 5");
    CHECK(publish_as(s, &tv, 5, true, &o, err, sizeof err) == OWNER_FENCED && o.stale,
          "provisional 5 over exact 5: %s", err);
    /* exact blocks below the newest exact one stay refused (a checkpoint older than the live) */
    CHECK(publish_as(s, &tv, 4, false, &o, err, sizeof err) == OWNER_FENCED && o.stale,
          "exact 4 after exact 5: %s", err);
    /* and an older epoch is fenced whatever the kind */
    tv.v.block = 6, tv.v.provisional = true, tv.v.epoch = 9;
    CHECK(redis_publish(s, &tv.v, err, sizeof err) == OWNER_FENCED && !o.stale &&
              o.held_epoch == 10,
          "an older epoch's provisional version: %s", err);
    CHECK(cmd_num(g_admin, "GET ccd:{%s}:current", model) == 10, "current moved");
    printf("provisional: exact behind a provisional listed, not live; exact replaces it; the live "
           "version never pruned\n");
    version_free(&tv);
    redis_sink_close(s);
}

/* ---- a Yelp-sized version ------------------------------------------------------------------- */

static void test_big(void)
{
    char model[64], err[512];
    model_id(model, sizeof model, "big");
    redis_sink *s = open_sink(2, 512, NULL, NULL, NULL);
    enum { USERS = 20000, ITEMS = 8000, D = 8, RUNS = 4 };
    test_version tv;
    version_make(&tv, model, USERS, ITEMS, D, 5);
    double best = 1e30;
    for (int k = 1; k <= RUNS; k++) {
        double t0 = now_s();
        CHECK(redis_publish(s, &tv.v, err, sizeof err) == k, "publish %d: %s", k, err);
        double dt = now_s() - t0;
        best = dt < best ? dt : best;
    }
    CHECK(cmd_int(g_admin, "HLEN ccd:{%s}:v%d:user", model, RUNS) == USERS, "user hash size");
    CHECK(cmd_int(g_admin, "HLEN ccd:{%s}:v%d:item", model, RUNS) == ITEMS, "item hash size");
    int dim = 0;
    for (int side = 0; side < 2; side++) {
        readback rb = {.t = &tv, .side = side};
        double t0 = now_s();
        int64_t n = redis_read_vectors(s, model, RUNS, side ? "item" : "user", &dim, readback_fn,
                                       &rb, err, sizeof err);
        double dt = now_s() - t0;
        CHECK(n == (side ? ITEMS : USERS) && rb.bad == 0 && dim == D,
              "read back %d: %" PRId64 " (%d bad): %s", side, n, rb.bad, err);
        if (side == 0)
            fprintf(stderr, "info: read_vectors: %.0f rows/s\n", (double)n / dt);
    }
    fprintf(stderr, "info: publication of %d rows (dim %d): best of %d %.1f ms, %.0f rows/s\n",
            USERS + ITEMS, D, RUNS, 1e3 * best, (USERS + ITEMS) / best);
    version_free(&tv);
    redis_sink_close(s);
    printf("big: %d rows published %d times and read back\n", USERS + ITEMS, RUNS);
}

/* ---- errors --------------------------------------------------------------------------------- */

static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0, "socket");
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(bind(fd, (struct sockaddr *)&a, sizeof a) == 0, "bind");
    socklen_t len = sizeof a;
    CHECK(getsockname(fd, (struct sockaddr *)&a, &len) == 0, "getsockname");
    close(fd); /* bound, never listened on: nothing answers there now */
    return ntohs(a.sin_port);
}

static void test_errors(void)
{
    char err[512];
    redis_sink_opts o;
    redis_sink_opts_default(&o);
    o.host = "127.0.0.1";
    o.port = closed_port();
    o.timeout_ms = 2000;
    err[0] = '\0';
    CHECK(!redis_sink_open(&o, err, sizeof err) && strstr(err, "connect"), "closed port: \"%s\"",
          err);
    printf("errors: closed port: %s\n", err);
    o.port = g_port;
    o.keep_versions = 0;
    CHECK(!redis_sink_open(&o, err, sizeof err), "keep_versions 0");
    o.keep_versions = 3;
    o.prefix = "a{b}";
    CHECK(!redis_sink_open(&o, err, sizeof err), "prefix with a hash tag");
    o.prefix = "ccd";
    o.user = "someone";
    CHECK(!redis_sink_open(&o, err, sizeof err), "ACL user without a password");

    redis_sink *s = open_sink(3, 512, NULL, NULL, NULL);
    char longid[200];
    memset(longid, 'a', 128);
    longid[128] = '\0';
    const char *bad[] = {"",    longid, "a{b", "a}b",         "{x}",
                         "a b", "a:b",  "a/b", "caf\xc3\xa9", "x\n"};
    float vec[4] = {1, 2, 3, 4};
    const char *ids[1] = {"u"};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        redis_version v = {
            .model = bad[k], .dim = 4, .n_users = 1, .user_ids = ids, .user_vecs = vec};
        err[0] = '\0';
        CHECK(redis_publish(s, &v, err, sizeof err) == -1 && strstr(err, "model id"),
              "bad model id %zu: %s", k, err);
        CHECK(redis_current_version(s, bad[k], err, sizeof err) == -1, "bad model id %zu (current)",
              k);
        char *val = NULL;
        CHECK(redis_read_meta(s, bad[k], 1, "dim", &val, err, sizeof err) == -1,
              "bad model id %zu (meta)", k);
    }
    CHECK(redis_publish(s, &(redis_version){.model = NULL, .dim = 4}, err, sizeof err) == -1,
          "NULL model id");
    memset(longid, 'a', 127);
    longid[127] = '\0';
    CHECK(redis_current_version(s, longid, err, sizeof err) == 0, "a 127-byte id is fine: %s", err);
    CHECK(redis_current_version(s, "AZaz09._-", err, sizeof err) == 0,
          "every allowed character: %s", err);
    redis_sink_close(s);
    printf("errors: bad model ids and options refused\n");
}

/* ---- SELECT ---------------------------------------------------------------------------------- */

static void test_db(void)
{
    char model[64], err[512];
    model_id(model, sizeof model, "db");
    redis_sink_opts o;
    redis_sink_opts_default(&o);
    o.host = g_host, o.port = g_port, o.db = 1;
    redis_sink *s = redis_sink_open(&o, err, sizeof err);
    CHECK(s, "open with db 1: %s", err);
    test_version tv;
    version_make(&tv, model, 3, 2, 4, 1);
    CHECK(redis_publish(s, &tv.v, err, sizeof err) == 1, "publish to db 1: %s", err);
    CHECK(redis_current_version(s, model, err, sizeof err) == 1, "current in db 1: %s", err);
    CHECK(cmd_int(g_admin, "EXISTS ccd:{%s}:current", model) == 0,
          "db 1 publication landed in db 0");
    redisContext *c = raw_connect();
    freeReplyObject(cmd(c, "SELECT 1"));
    CHECK(cmd_num(c, "GET ccd:{%s}:current", model) == 1, "current in db 1");
    CHECK(cmd_int(c,
                  "UNLINK ccd:{%s}:current ccd:{%s}:seq ccd:{%s}:versions ccd:{%s}:v1:user "
                  "ccd:{%s}:v1:item ccd:{%s}:v1:meta",
                  model, model, model, model, model, model) == 6,
          "the keys in db 1");
    redisFree(c);
    version_free(&tv);
    redis_sink_close(s);
    printf("db: SELECT puts the version in the configured database\n");
}

/* ---- ACL user, key prefix, reconnection ----------------------------------------------------- */

static void test_acl(void)
{
    char user[64], pw[64], model[64], err[512];
    snprintf(user, sizeof user, "ccdtest-%d", g_pid);
    snprintf(pw, sizeof pw, "pw-%d-Secret!x", g_pid);
    model_id(model, sizeof model, "acl");
    /* exactly the commands the sink sends (SELECT too when db != 0) */
    redisReply *r = cmd(
        g_admin,
        "ACL SETUSER %s reset on >%s ~ccdtest:* resetchannels &ccdtest:* +incr +incrby +hset "
        "+hget +hmget +hscan +zadd +zrange +zrem +set +get +publish +unlink +evalsha +script|load "
        "+hexists +exists +time",
        user, pw);
    CHECK(r->type == REDIS_REPLY_STATUS, "ACL SETUSER: %s", r->str);
    freeReplyObject(r);

    redis_sink *s = open_sink(3, 512, "ccdtest", user, pw);
    test_version tv;
    version_make(&tv, model, 30, 20, 4, 2);
    CHECK(redis_publish(s, &tv.v, err, sizeof err) == 1, "publish as the ACL user: %s", err);
    CHECK(redis_publish(s, &tv.v, err, sizeof err) == 2, "second publish as the ACL user: %s", err);
    CHECK(redis_current_version(s, model, err, sizeof err) == 2, "current as the ACL user: %s",
          err);
    int dim = 0;
    readback rb = {.t = &tv};
    CHECK(redis_read_vectors(s, model, 2, "user", &dim, readback_fn, &rb, err, sizeof err) == 30 &&
              rb.bad == 0,
          "read_vectors as the ACL user: %s", err);
    check_version_keys("ccdtest", model, 2, 1);

    /* The same user cannot write outside its prefix. */
    redisContext *c = raw_connect();
    r = cmd(c, "AUTH %s %s", user, pw);
    CHECK(r->type == REDIS_REPLY_STATUS, "AUTH raw");
    freeReplyObject(r);
    r = cmd(c, "SET sinktest-%d-outside x", g_pid);
    CHECK(r->type == REDIS_REPLY_ERROR && strstr(r->str, "NOPERM"),
          "write outside the prefix was allowed");
    freeReplyObject(r);
    redisFree(c);
    /* ... so a sink with another prefix fails, with the server's reason and without the password */
    redis_sink *other = open_sink(3, 512, "ccd", user, pw);
    err[0] = '\0';
    CHECK(redis_publish(other, &tv.v, err, sizeof err) == -1 && strstr(err, "NOPERM") &&
              !strstr(err, pw),
          "publish outside the prefix: %s", err);
    redis_sink_close(other);

    /* A wrong password: refused, the message names neither password. */
    redis_sink_opts o;
    redis_sink_opts_default(&o);
    o.host = g_host, o.port = g_port, o.user = user, o.password = "wrong-Secret!x",
    o.prefix = "ccdtest";
    err[0] = '\0';
    CHECK(!redis_sink_open(&o, err, sizeof err) && err[0] && !strstr(err, "wrong-Secret") &&
              !strstr(err, pw),
          "wrong password: %s", err);
    printf("acl: wrong password: %s\n", err);

    /* Reconnection: the server drops the sink's connection; the next call fails, the one after
     * reconnects (AUTH again) and works. Only this user's connections are killed, so other tests
     * sharing the server are untouched. */
    CHECK(cmd_int(g_admin, "CLIENT KILL USER %s", user) >= 1, "CLIENT KILL USER");
    err[0] = '\0';
    CHECK(redis_current_version(s, model, err, sizeof err) == -1 && err[0],
          "a dropped connection is reported");
    printf("acl: dropped connection: %s\n", err);
    CHECK(redis_current_version(s, model, err, sizeof err) == 2, "reconnect: %s", err);
    CHECK(cmd_int(g_admin, "CLIENT KILL USER %s", user) >= 1, "CLIENT KILL USER");
    CHECK(redis_publish(s, &tv.v, err, sizeof err) == -1, "publish on a dropped connection");
    CHECK(redis_publish(s, &tv.v, err, sizeof err) >= 3, "publish after reconnecting: %s", err);

    redis_sink_close(s);
    version_free(&tv);
    CHECK(cmd_int(g_admin, "ACL DELUSER %s", user) == 1, "ACL DELUSER");
    printf("acl: a user limited to ccdtest:* publishes, reads back and reconnects\n");
}

/* ---- the checkpoint store's Redis backend -------------------------------------------------- */

static int g_skipped;          /* checkpoints the last load skipped */
static char g_last_skip[1024]; /* and the last reason */

static void count_skip(void *ctx, const char *msg)
{
    (void)ctx;
    g_skipped++;
    snprintf(g_last_skip, sizeof g_last_skip, "%s", msg);
}

/* Block b of model with one user and one offset; events_total tells the blocks apart. */
static void save_block(ckpt_store *st, const char *model, int b)
{
    checkpoint c;
    checkpoint_init(&c);
    snprintf(c.model, sizeof c.model, "%s", model);
    c.block = b;
    c.events_total = 1000 + b;
    char *users[1] = {"u1"};
    ckpt_offset off = {.topic = "in", .partition = 2, .next_offset = 77 + b};
    c.n_users = 1;
    c.user_ids = users;
    c.n_offsets = 1;
    c.offsets = &off;
    char err[512];
    CHECK(ckpt_store_save(st, &c, 0, err, sizeof err) == 0, "checkpoint save of block %d: %s", b,
          err);
}

/* The block loaded (its contents checked), -2 when none is stored, -1 on an error. */
static int load_block(ckpt_store *st, const char *model, char *err, size_t errlen)
{
    checkpoint c;
    g_skipped = 0;
    int r = ckpt_store_load_latest(st, model, &c, count_skip, NULL, err, errlen);
    if (r != 1)
        return r == 0 ? -2 : -1;
    CHECK(c.events_total == 1000 + c.block && c.n_users == 1 && strcmp(c.user_ids[0], "u1") == 0 &&
              c.n_offsets == 1 && c.offsets[0].next_offset == 77 + c.block,
          "checkpoint of block %d loaded with other contents", c.block);
    int b = c.block;
    checkpoint_free(&c);
    return b;
}

/* The key of chunk 0 of a block's stored checkpoint (from its manifest). */
static void chunk0_key(const char *model, int block, char *key, size_t keylen)
{
    redisReply *r = cmd(g_admin, "HGET ccd:{%s}:ckpt:%08d:m w", model, block);
    CHECK(r->type == REDIS_REPLY_STRING, "manifest of block %d has no w", block);
    snprintf(key, keylen, "ccd:{%s}:ckpt:%08d:%s:0", model, block, r->str);
    freeReplyObject(r);
}

/* Keys P:{M}:ckpt:<8 digits>:m (manifest) and :<w>:<i> (chunks), P:{M}:ckpts, pruning to `keep`,
 * and the load's fallback past a damaged chunk and a listed chunk that is gone, then the error
 * when none loads. (Chunking, fencing and migration: test_redis_ckpt.c.) */
static void test_checkpoint_store(void)
{
    char model[64], err[512], key[256];
    model_id(model, sizeof model, "ckpt");
    ckpt_store st;
    CHECK(ckpt_store_open_redis(&st, open_sink(3, 512, NULL, NULL, NULL), 2, 0, err, sizeof err) ==
              0,
          "open: %s", err);
    CHECK(load_block(&st, model, err, sizeof err) == -2, "a model never saved loads nothing: %s",
          err);
    for (int b = 0; b < 4; b++)
        save_block(&st, model, b);
    CHECK(cmd_int(g_admin, "ZCARD ccd:{%s}:ckpts", model) == 2, "keep 2: the set");
    CHECK(cmd_int(g_admin, "EXISTS ccd:{%s}:ckpt:00000000:m ccd:{%s}:ckpt:00000001:m", model,
                  model) == 0 &&
              cmd_int(g_admin, "EXISTS ccd:{%s}:ckpt:00000002:m ccd:{%s}:ckpt:00000003:m", model,
                      model) == 2,
          "keep 2: the manifests");
    redisReply *r = cmd(g_admin, "HMGET ccd:{%s}:ckpt:00000003:m layout chunks epoch", model);
    CHECK(r->type == REDIS_REPLY_ARRAY && r->elements == 3 && r->element[0]->str &&
              !strcmp(r->element[0]->str, "1") && r->element[1]->str &&
              !strcmp(r->element[1]->str, "1") && r->element[2]->str &&
              !strcmp(r->element[2]->str, "0"),
          "the manifest: layout 1, one chunk, epoch 0 (unfenced)");
    freeReplyObject(r);
    chunk0_key(model, 3, key, sizeof key);
    r = cmd(g_admin, "GET %s", key);
    CHECK(r->type == REDIS_REPLY_STRING && r->len > 24 && memcmp(r->str, "CCDCKPT1", 8) == 0,
          "the chunk's format");
    freeReplyObject(r);
    CHECK(cmd_int(g_admin, "SCARD ccd:{%s}:ckpt:pending", model) == 0, "nothing pending");
    CHECK(load_block(&st, model, err, sizeof err) == 3 && g_skipped == 0, "newest: %s", err);

    /* a damaged newest chunk: block 2, with a warning naming the key */
    freeReplyObject(cmd(g_admin, "SETRANGE %s 40 garbage", key));
    CHECK(load_block(&st, model, err, sizeof err) == 2 && g_skipped == 1 &&
              strstr(g_last_skip, ":ckpt:00000003") && strstr(g_last_skip, "CRC-32"),
          "fallback past a damaged chunk: %s", g_last_skip);
    /* block 2 listed but its chunk gone, block 3 damaged: an error, not a fresh start */
    chunk0_key(model, 2, key, sizeof key);
    CHECK(cmd_int(g_admin, "DEL %s", key) == 1, "DEL");
    CHECK(load_block(&st, model, err, sizeof err) == -1 && g_skipped == 2 &&
              strstr(err, "none of the 2"),
          "nothing loadable: %s / %s", err, g_last_skip);
    CHECK(strstr(g_last_skip, "gone since it was listed"), "the gone chunk: %s", g_last_skip);
    /* the next save is the newest again, and prunes the damaged ones' neighbours to keep 2 */
    save_block(&st, model, 4);
    CHECK(load_block(&st, model, err, sizeof err) == 4 && g_skipped == 0, "after a new save: %s",
          err);
    CHECK(cmd_int(g_admin, "ZCARD ccd:{%s}:ckpts", model) == 2, "keep 2 after the new save");
    ckpt_store_close(&st);
}

/* ---- main ----------------------------------------------------------------------------------- */

int main(void)
{
    g_admin = services_redis(g_host, sizeof g_host, &g_port);
    g_pid = (int)getpid();
    test_errors();
    test_layout();
    test_prune_orphans();
    test_fencing();
    test_provisional();
    test_reader();
    test_big();
    test_db();
    test_acl();
    test_checkpoint_store();
    char pattern[96];
    snprintf(pattern, sizeof pattern, "ccd:{sinktest-%d-*", g_pid);
    cleanup(g_admin, pattern);
    snprintf(pattern, sizeof pattern, "ccdtest:{sinktest-%d-*", g_pid);
    cleanup(g_admin, pattern);
    redisFree(g_admin);
    printf("redis_sink: all checks passed on %s:%d\n", g_host, g_port);
    return 0;
}
