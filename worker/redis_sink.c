/* redis_sink: publishing student versions to Redis and reading them back. See redis_sink.h.
 *
 * Publication of version N of model M (P = prefix), one blocking connection:
 *   1. INCR P:{M}:seq -> N, pipelined with ZRANGE versions -1 -1 -> the newest complete version.
 *   2. UNLINK the keys of every version in (newest, N]: numbers handed out to a publication that
 *      died before it was listed (orphans), and N itself in case a stale key survived a reset of
 *      `seq`. Fenced (owner.c delete_orphans): a publisher whose epoch is below the owner
 *      record's would delete the new owner's version in progress.
 *   3. User and item hashes: variadic HSETs of batch_fields fields, pipelined; the replies are
 *      read each time about WINDOW_BYTES of requests are queued, which bounds the client's
 *      memory for any version size while one round trip per MiB stays negligible. Every reply
 *      is read; an error reply fails the publication (after draining the window, so the
 *      connection stays in step). The HSET replies count the new fields, which catches
 *      duplicate ids (they would make a version whose hash is smaller than its meta says).
 *      Unfenced: N is ours alone and unlisted keys are never served.
 *   4. The meta hash, written only once the vectors are known to be in: a version is complete
 *      exactly when its meta exists.
 *   5. publish_commit (owner.c), one script: checks the epoch and that the block is not below the
 *      live one, then ZADD versions N N, SET current N, HSET owner block/version/epoch, PUBLISH
 *      P:{M}:updates "N". `current` never names a version that is not listed, no version is
 *      listed before it is complete, and `current` never moves to a lower block. An exact
 *      version of a block below a live provisional one is listed without the switch (owner.h).
 *   6. Prune (fenced script): the complete versions older than the newest keep_versions are
 *      ZREMed and then UNLINKed (ZREM first, so `versions` never lists keys that are gone).
 * A failure or a refusal before step 5 removes the partial version (best effort; the next
 * publication removes it otherwise). Refusals return -2 (fenced), never retried by the caller.
 *
 * Reading: redis_read_vectors HSCANs the side's hash (COUNT 1000) and fails when the number of
 * vectors read differs from the meta's count (the version was pruned under the reader), and when
 * the callback returns non-zero (it stops the scan). HSCAN repeats fields only when a hash
 * shrinks, which a complete version's never does; a repeat would fail the count check anyway.
 *
 * Vectors travel as little-endian float32 (le.h), so big-endian hosts write the same bytes.
 *
 * Connections: any I/O error (or a timeout, after which the reply stream can no longer be
 * trusted) frees the context; the next call reconnects, AUTHs and SELECTs again. Error replies
 * keep the connection. The password is never part of a message, and it is wiped on close.
 * hiredis writes with write(2): a process using the sink must ignore SIGPIPE, or a server that
 * drops the connection in the middle of a pipelined write kills it instead of failing a call. */
#include "redis_sink.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "errmsg.h"
#include "le.h"
#include "model_id.h"
#include "owner.h"
#include "testhook.h"

enum {
    ID_MAX = 127,           /* longest model id and prefix */
    KEY_MAX = 320,          /* prefix ":{" model "}:v" 20 digits ":user" and the NUL */
    WINDOW_BYTES = 1 << 20, /* pipelined request bytes in flight before the replies are read */
    DIM_MAX = 1 << 16,      /* largest dimension accepted (publish and read) */
    BATCH_MAX = 1 << 16,    /* largest batch_fields accepted */
    SCAN_COUNT = 1000       /* HSCAN COUNT hint */
};

struct redis_sink {
    redisContext *c; /* NULL while there is no usable connection */
    char *host, *user, *password, *prefix;
    int port, db, timeout_ms, keep_versions, batch_fields;
    /* Publication scratch, sized at open (argv) and on demand (vals), reused by every
     * publication: one HSET's argument vector and its converted vectors. */
    const char **argv;   /* (2 + 2 * batch_fields) */
    size_t *argvlen;     /* (2 + 2 * batch_fields) */
    unsigned char *vals; /* (batch_fields * 4 * dim) */
    size_t vals_cap;
    owner_scripts scripts; /* the fencing scripts' SHA1s on this connection (owner.c) */
};

/* Meta fields the sink writes itself; a caller's extra field may not reuse them. */
static const char *const reserved_meta[] = {"dim",   "dtype",      "users",      "items",
                                            "block", "created_ms", "provisional"};

/* A non-negative decimal (what the sink stores) without sign, spaces or overflow. */
static int parse_u63(const char *p, size_t len, int64_t *out)
{
    if (len == 0 || len > 19)
        return -1;
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        int d = p[i] - '0';
        if (v > (INT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

static int reply_u63(const redisReply *r, int64_t *out)
{
    return r && r->type == REDIS_REPLY_STRING ? parse_u63(r->str, r->len, out) : -1;
}

/* The model goes inside the {hash tag} and into every key: a brace would move the tag, and
 * ':' or spaces would make keys ambiguous, so only [A-Za-z0-9._-] is accepted. */
static int check_model(const char *model, char *err, size_t errlen)
{
    if (!model || !*model) {
        errmsg_set(err, errlen, "redis: empty model id");
        return -1;
    }
    size_t n = strlen(model);
    if (n > ID_MAX) {
        errmsg_set(err, errlen, "redis: model id of %zu bytes (at most %d)", n, ID_MAX);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)model[i];
        if (!model_id_char(ch)) {
            errmsg_set(err, errlen,
                       "redis: model id has byte 0x%02x at %zu (only A-Z a-z 0-9 . _ -)", ch, i);
            return -1;
        }
    }
    return 0;
}

static int check_side(const char *side, char *err, size_t errlen)
{
    if (side && (strcmp(side, "user") == 0 || strcmp(side, "item") == 0))
        return 0;
    errmsg_set(err, errlen, "redis: side must be \"user\" or \"item\"");
    return -1;
}

/* P:{M}:<name>; the lengths are bounded by ID_MAX, so KEY_MAX always suffices. */
static size_t model_key(char *out, const redis_sink *s, const char *model, const char *name)
{
    return (size_t)snprintf(out, KEY_MAX, "%s:{%s}:%s", s->prefix, model, name);
}

/* P:{M}:v<N>:<part> */
static size_t version_key(char *out, const redis_sink *s, const char *model, int64_t v,
                          const char *part)
{
    return (size_t)snprintf(out, KEY_MAX, "%s:{%s}:v%" PRId64 ":%s", s->prefix, model, v, part);
}

/* ---- connection ----------------------------------------------------------------------------- */

static void sink_drop(redis_sink *s)
{
    if (s->c) {
        redisFree(s->c);
        s->c = NULL;
    }
}

/* An I/O-level failure: report it and drop the connection (the next call reconnects). */
static void io_error(redis_sink *s, const char *what, char *err, size_t errlen)
{
    const char *why = s->c && s->c->errstr[0] ? s->c->errstr : "connection lost";
    errmsg_set(err, errlen, "redis %s:%d: %s: %s", s->host, s->port, what, why);
    sink_drop(s);
}

static void reply_error(const redis_sink *s, const char *what, const redisReply *r, char *err,
                        size_t errlen)
{
    errmsg_set(err, errlen, "redis %s:%d: %s: %.*s", s->host, s->port, what,
               (int)(r->len < 300 ? r->len : 300), r->str ? r->str : "");
}

static int sink_connect(redis_sink *s, char *err, size_t errlen)
{
    if (s->c)
        return 0;
    struct timeval tv = {.tv_sec = s->timeout_ms / 1000, .tv_usec = (s->timeout_ms % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(s->host, s->port, tv);
    if (!c) {
        errmsg_set(err, errlen, "redis %s:%d: connect: out of memory", s->host, s->port);
        return -1;
    }
    if (c->err) {
        errmsg_set(err, errlen, "redis %s:%d: connect: %s", s->host, s->port, c->errstr);
        redisFree(c);
        return -1;
    }
    s->c = c;
    /* The command timeout bounds every later read and write; keepalive notices a peer that
     * vanished without closing (a network partition) between publications. */
    if (redisSetTimeout(c, tv) != REDIS_OK || redisEnableKeepAlive(c) != REDIS_OK) {
        io_error(s, "socket options", err, errlen);
        return -1;
    }
    if (s->password) {
        const char *argv[3] = {"AUTH"};
        size_t len[3] = {4};
        int argc = 1;
        if (s->user) {
            argv[argc] = s->user;
            len[argc++] = strlen(s->user);
        }
        argv[argc] = s->password;
        len[argc++] = strlen(s->password);
        redisReply *r = redisCommandArgv(c, argc, argv, len);
        if (!r) {
            io_error(s, "AUTH", err, errlen);
            return -1;
        }
        if (r->type == REDIS_REPLY_ERROR) {
            /* The server's text (WRONGPASS ...) never echoes the password. */
            reply_error(s, s->user ? "AUTH (ACL user)" : "AUTH", r, err, errlen);
            freeReplyObject(r);
            sink_drop(s);
            return -1;
        }
        freeReplyObject(r);
    }
    if (s->db != 0) {
        char db[16];
        int n = snprintf(db, sizeof db, "%d", s->db);
        const char *argv[2] = {"SELECT", db};
        size_t len[2] = {6, (size_t)n};
        redisReply *r = redisCommandArgv(c, 2, argv, len);
        if (!r) {
            io_error(s, "SELECT", err, errlen);
            return -1;
        }
        if (r->type == REDIS_REPLY_ERROR) {
            reply_error(s, "SELECT", r, err, errlen);
            freeReplyObject(r);
            sink_drop(s);
            return -1;
        }
        freeReplyObject(r);
    }
    return 0;
}

struct redisReply *redis_sink_command(redis_sink *s, int argc, const char **argv,
                                      const size_t *argvlen, char *err, size_t errlen)
{
    if (sink_connect(s, err, errlen) != 0)
        return NULL;
    redisReply *r = redisCommandArgv(s->c, argc, argv, argvlen);
    if (!r) {
        io_error(s, argv[0], err, errlen);
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        reply_error(s, argv[0], r, err, errlen);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

const char *redis_sink_prefix(const redis_sink *s)
{
    return s->prefix;
}

struct owner_scripts *redis_sink_owner_scripts(redis_sink *s)
{
    return &s->scripts;
}

/* One command of NUL-terminated arguments: redis_sink_command. */
static redisReply *sink_cmd(redis_sink *s, int argc, const char **argv, char *err, size_t errlen)
{
    enum { ARGS_MAX = 16 };
    size_t len[ARGS_MAX];
    if (argc > ARGS_MAX)
        abort(); /* a programming error in this file */
    for (int i = 0; i < argc; i++)
        len[i] = strlen(argv[i]);
    return redis_sink_command(s, argc, argv, len, err, errlen);
}

/* ---- pipelines ------------------------------------------------------------------------------ */

typedef struct {
    redis_sink *s;
    const char *what; /* for messages */
    char *err;
    size_t errlen;
    int pending;     /* commands whose replies are unread */
    size_t bytes;    /* their approximate request size */
    long long added; /* sum of the integer replies (HSET: new fields; UNLINK: keys removed) */
    bool failed;     /* an error reply was read (first one in err) */
    bool dead;       /* the connection was dropped */
} pipeline;

/* Reads every pending reply. Returns 0, or -1 if one was an error (the connection is in step
 * again) or the connection broke (dropped). */
static int pipe_drain(pipeline *p)
{
    if (p->dead)
        return -1;
    while (p->pending > 0) {
        void *reply = NULL;
        if (redisGetReply(p->s->c, &reply) != REDIS_OK || !reply) {
            if (reply)
                freeReplyObject(reply);
            io_error(p->s, p->what, p->err, p->errlen);
            p->dead = true;
            p->pending = 0;
            return -1;
        }
        redisReply *r = reply;
        p->pending--;
        if (r->type == REDIS_REPLY_ERROR) {
            if (!p->failed)
                reply_error(p->s, p->what, r, p->err, p->errlen);
            p->failed = true;
        } else if (r->type == REDIS_REPLY_INTEGER) {
            p->added += r->integer;
        }
        freeReplyObject(r);
    }
    p->bytes = 0;
    return p->failed ? -1 : 0;
}

/* Queues one command (the arguments are copied at once, so argv may be reused); reads the
 * replies when a window's worth is in flight. */
static int pipe_append(pipeline *p, int argc, const char **argv, const size_t *len)
{
    if (p->dead || p->failed)
        return -1;
    if (redisAppendCommandArgv(p->s->c, argc, argv, len) != REDIS_OK) {
        /* Out of memory in hiredis: what is queued can no longer be trusted. */
        io_error(p->s, p->what, p->err, p->errlen);
        p->dead = true;
        return -1;
    }
    p->pending++;
    for (int i = 0; i < argc; i++)
        p->bytes += len[i] + 16; /* "$<len>\r\n...\r\n" */
    return p->bytes >= WINDOW_BYTES ? pipe_drain(p) : 0;
}

/* ---- open / close --------------------------------------------------------------------------- */

void redis_sink_opts_default(redis_sink_opts *o)
{
    *o = (redis_sink_opts){
        .host = "127.0.0.1",
        .port = 6379,
        .user = NULL,
        .password = NULL,
        .db = 0,
        .timeout_ms = 5000,
        .prefix = "ccd",
        .keep_versions = 3,
        .batch_fields = 512,
    };
}

void redis_sink_opts_default_at(redis_sink_opts *o, const char *host, int port, const char *user,
                                const char *password, const char *prefix)
{
    redis_sink_opts_default(o);
    o->host = host;
    o->port = port;
    o->user = user;
    o->password = password;
    if (prefix)
        o->prefix = prefix;
}

static int check_opts(const redis_sink_opts *o, char *err, size_t errlen)
{
    if (!o->host || !*o->host) {
        errmsg_set(err, errlen, "redis: no host");
        return -1;
    }
    if (o->port < 1 || o->port > 65535 || o->db < 0 || o->timeout_ms < 1 || o->keep_versions < 1 ||
        o->batch_fields < 1 || o->batch_fields > BATCH_MAX) {
        errmsg_set(
            err, errlen,
            "redis: bad option (port 1..65535, db >= 0, timeout_ms >= 1, keep_versions >= 1, "
            "batch_fields 1..%d)",
            BATCH_MAX);
        return -1;
    }
    if (o->user && !o->password) {
        errmsg_set(err, errlen, "redis: ACL user %s given without a password", o->user);
        return -1;
    }
    const char *p = o->prefix;
    size_t n = p ? strlen(p) : 0;
    if (n == 0 || n > ID_MAX) {
        errmsg_set(err, errlen, "redis: key prefix must have 1 to %d bytes", ID_MAX);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (p[i] <= ' ' || p[i] > '~' || p[i] == '{' || p[i] == '}') {
            /* braces would become the cluster hash tag; spaces and controls have no place in keys
             */
            errmsg_set(err, errlen, "redis: key prefix has byte 0x%02x at %zu", (unsigned char)p[i],
                       i);
            return -1;
        }
    return 0;
}

static char *dup_or_null(const char *p, bool *oom)
{
    if (!p)
        return NULL;
    char *q = strdup(p);
    if (!q)
        *oom = true;
    return q;
}

/* Overwrites the secret before the memory goes back to the allocator (volatile: the stores
 * must not be dropped as dead). */
static void wipe_free(char *p)
{
    if (!p)
        return;
    for (volatile char *v = p; *v; v++)
        *v = 0;
    free(p);
}

redis_sink *redis_sink_open(const redis_sink_opts *o, char *err, size_t errlen)
{
    if (!o) {
        errmsg_set(err, errlen, "redis: no options");
        return NULL;
    }
    if (check_opts(o, err, errlen) != 0)
        return NULL;
    redis_sink *s = calloc(1, sizeof *s);
    if (!s) {
        errmsg_set(err, errlen, "redis: out of memory");
        return NULL;
    }
    bool oom = false;
    s->host = dup_or_null(o->host, &oom);
    s->user = dup_or_null(o->user, &oom);
    s->password = dup_or_null(o->password, &oom);
    s->prefix = dup_or_null(o->prefix, &oom);
    s->port = o->port;
    s->db = o->db;
    s->timeout_ms = o->timeout_ms;
    s->keep_versions = o->keep_versions;
    s->batch_fields = o->batch_fields;
    owner_scripts_init(&s->scripts);
    size_t nargv = 2 + 2 * (size_t)o->batch_fields;
    s->argv = malloc(nargv * sizeof *s->argv);
    s->argvlen = malloc(nargv * sizeof *s->argvlen);
    if (oom || !s->argv || !s->argvlen) {
        errmsg_set(err, errlen, "redis: out of memory");
        redis_sink_close(s);
        return NULL;
    }
    if (sink_connect(s, err, errlen) != 0) {
        redis_sink_close(s);
        return NULL;
    }
    return s;
}

void redis_sink_close(redis_sink *s)
{
    if (!s)
        return;
    sink_drop(s);
    wipe_free(s->password);
    free(s->host), free(s->user), free(s->prefix);
    free(s->argv), free(s->argvlen), free(s->vals);
    free(s);
}

/* ---- publication ---------------------------------------------------------------------------- */

static int check_version(const redis_version *v, char *err, size_t errlen)
{
    if (check_model(v->model, err, errlen) != 0)
        return -1;
    if (v->dim < 1 || v->dim > DIM_MAX || v->n_users < 0 || v->n_items < 0 || v->n_meta < 0) {
        errmsg_set(err, errlen, "redis: bad version shape (dim %d, users %d, items %d, meta %d)",
                   v->dim, v->n_users, v->n_items, v->n_meta);
        return -1;
    }
    if ((v->n_users > 0 && (!v->user_ids || !v->user_vecs)) ||
        (v->n_items > 0 && (!v->item_ids || !v->item_vecs)) ||
        (v->n_meta > 0 && (!v->meta_names || !v->meta_values))) {
        errmsg_set(err, errlen, "redis: version %s: missing ids, vectors or meta arrays", v->model);
        return -1;
    }
    /* A NULL id found halfway would leave a partial version behind; look before writing. */
    for (int i = 0; i < v->n_users; i++)
        if (!v->user_ids[i]) {
            errmsg_set(err, errlen, "redis: version %s: user id %d is NULL", v->model, i);
            return -1;
        }
    for (int i = 0; i < v->n_items; i++)
        if (!v->item_ids[i]) {
            errmsg_set(err, errlen, "redis: version %s: item id %d is NULL", v->model, i);
            return -1;
        }
    for (int i = 0; i < v->n_meta; i++) {
        if (!v->meta_names[i] || !v->meta_values[i]) {
            errmsg_set(err, errlen, "redis: version %s: meta field %d is NULL", v->model, i);
            return -1;
        }
        for (size_t k = 0; k < sizeof reserved_meta / sizeof *reserved_meta; k++)
            if (strcmp(v->meta_names[i], reserved_meta[k]) == 0) {
                errmsg_set(err, errlen,
                           "redis: version %s: meta field \"%s\" is written by the sink", v->model,
                           reserved_meta[k]);
                return -1;
            }
    }
    return 0;
}

/* Step 1: N from `seq`, and the newest complete version. A `seq` behind `versions` (the counter
 * was deleted or restored from an older snapshot) is moved past it, so a fresh number can never
 * overwrite a listed version. */
static int next_version(redis_sink *s, const char *model, int64_t *n, int64_t *newest, char *err,
                        size_t errlen)
{
    char seq[KEY_MAX], vkey[KEY_MAX];
    size_t seqlen = model_key(seq, s, model, "seq"),
           vkeylen = model_key(vkey, s, model, "versions");
    const char *incr[2] = {"INCR", seq};
    size_t incrlen[2] = {4, seqlen};
    const char *zr[4] = {"ZRANGE", vkey, "-1", "-1"};
    size_t zrlen[4] = {6, vkeylen, 2, 2};
    if (redisAppendCommandArgv(s->c, 2, incr, incrlen) != REDIS_OK ||
        redisAppendCommandArgv(s->c, 4, zr, zrlen) != REDIS_OK) {
        io_error(s, "INCR seq", err, errlen);
        return -1;
    }
    redisReply *r[2] = {NULL, NULL};
    for (int i = 0; i < 2; i++) {
        void *reply = NULL;
        if (redisGetReply(s->c, &reply) != REDIS_OK || !reply) {
            if (reply)
                freeReplyObject(reply);
            if (r[0])
                freeReplyObject(r[0]);
            io_error(s, i == 0 ? "INCR seq" : "ZRANGE versions", err, errlen);
            return -1;
        }
        r[i] = reply;
    }
    int rc = -1;
    if (r[0]->type == REDIS_REPLY_ERROR)
        reply_error(s, "INCR seq", r[0], err, errlen);
    else if (r[1]->type == REDIS_REPLY_ERROR)
        reply_error(s, "ZRANGE versions", r[1], err, errlen);
    else if (r[0]->type != REDIS_REPLY_INTEGER || r[0]->integer < 1 ||
             r[1]->type != REDIS_REPLY_ARRAY)
        errmsg_set(err, errlen, "redis: model %s: unexpected reply to INCR seq / ZRANGE versions",
                   model);
    else if (r[1]->elements > 0 && reply_u63(r[1]->element[0], newest) != 0)
        errmsg_set(err, errlen,
                   "redis: model %s: `versions` holds a member that is not a version number",
                   model);
    else {
        if (r[1]->elements == 0)
            *newest = 0;
        *n = r[0]->integer;
        rc = 0;
    }
    freeReplyObject(r[0]);
    freeReplyObject(r[1]);
    if (rc == 0 && *n <= *newest) {
        char by[24];
        snprintf(by, sizeof by, "%" PRId64, *newest + 1 - *n);
        const char *argv[3] = {"INCRBY", seq, by};
        redisReply *q = sink_cmd(s, 3, argv, err, errlen);
        if (!q)
            return -1;
        if (q->type != REDIS_REPLY_INTEGER || q->integer <= *newest) {
            errmsg_set(err, errlen, "redis: model %s: cannot move seq past version %" PRId64, model,
                       *newest);
            rc = -1;
        } else {
            *n = q->integer;
        }
        freeReplyObject(q);
    }
    return rc;
}

static int reserve_vals(redis_sink *s, int dim, char *err, size_t errlen)
{
    size_t need = (size_t)s->batch_fields * 4 * (size_t)dim;
    if (need <= s->vals_cap)
        return 0;
    unsigned char *p = realloc(s->vals, need);
    if (!p) {
        errmsg_set(err, errlen, "redis: out of memory (%zu bytes of vectors per batch)", need);
        return -1;
    }
    s->vals = p;
    s->vals_cap = need;
    return 0;
}

/* Step 3, one side: pipelined HSETs of batch_fields fields. Argument vectors point into the
 * caller's ids and into s->vals (converted floats); hiredis copies them when a command is
 * queued, so both are reused for every batch and nothing is allocated per row. */
static int write_side(redis_sink *s, const redis_version *v, int64_t n, bool user, char *err,
                      size_t errlen)
{
    int rows = user ? v->n_users : v->n_items;
    const char *const *ids = user ? v->user_ids : v->item_ids;
    const float *vecs = user ? v->user_vecs : v->item_vecs;
    if (rows == 0)
        return 0;
    char key[KEY_MAX];
    size_t dim = (size_t)v->dim, vbytes = 4 * dim;
    const char **argv = s->argv;
    size_t *len = s->argvlen;
    argv[0] = "HSET", len[0] = 4;
    argv[1] = key, len[1] = version_key(key, s, v->model, n, user ? "user" : "item");
    pipeline p = {.s = s,
                  .what = user ? "HSET user vectors" : "HSET item vectors",
                  .err = err,
                  .errlen = errlen};
    for (int r0 = 0; r0 < rows; r0 += s->batch_fields) {
        int nb = rows - r0 < s->batch_fields ? rows - r0 : s->batch_fields;
        for (int k = 0; k < nb; k++) {
            const float *x = vecs + (size_t)(r0 + k) * dim;
            unsigned char *val = s->vals + (size_t)k * vbytes;
            for (size_t d = 0; d < dim; d++)
                le_put_f32(val + 4 * d, x[d]);
            argv[2 + 2 * k] = ids[r0 + k], len[2 + 2 * k] = strlen(ids[r0 + k]);
            argv[3 + 2 * k] = (const char *)val, len[3 + 2 * k] = vbytes;
        }
        if (pipe_append(&p, 2 + 2 * nb, argv, len) != 0)
            break;
    }
    if (pipe_drain(&p) != 0)
        return -1;
    if (p.added != rows) {
        errmsg_set(err, errlen,
                   "redis: version %s/%" PRId64 ": %d %s ids but %lld distinct (duplicate ids)",
                   v->model, n, rows, user ? "user" : "item", p.added);
        return -1;
    }
    return 0;
}

/* Step 4. */
static int write_meta(redis_sink *s, const redis_version *v, int64_t n, char *err, size_t errlen)
{
    char key[KEY_MAX], dim[16], users[16], items[16], block[16], created[24];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(dim, sizeof dim, "%d", v->dim);
    snprintf(users, sizeof users, "%d", v->n_users);
    snprintf(items, sizeof items, "%d", v->n_items);
    snprintf(block, sizeof block, "%d", v->block);
    snprintf(created, sizeof created, "%lld", (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
    const char *fixed[14] = {
        "dim", dim,     "dtype", "f32le",      "users", users,         "items",
        items, "block", block,   "created_ms", created, "provisional", v->provisional ? "1" : "0"};
    int argc = 2 + 14 + 2 * v->n_meta;
    const char **argv = malloc((size_t)argc * sizeof *argv);
    size_t *len = malloc((size_t)argc * sizeof *len);
    if (!argv || !len) {
        free(argv), free(len);
        errmsg_set(err, errlen, "redis: out of memory");
        return -1;
    }
    argv[0] = "HSET", len[0] = 4;
    argv[1] = key, len[1] = version_key(key, s, v->model, n, "meta");
    for (int i = 0; i < 14; i++)
        argv[2 + i] = fixed[i], len[2 + i] = strlen(fixed[i]);
    for (int i = 0; i < v->n_meta; i++) {
        argv[16 + 2 * i] = v->meta_names[i], len[16 + 2 * i] = strlen(v->meta_names[i]);
        argv[17 + 2 * i] = v->meta_values[i], len[17 + 2 * i] = strlen(v->meta_values[i]);
    }
    pipeline p = {.s = s, .what = "HSET meta", .err = err, .errlen = errlen};
    int rc = pipe_append(&p, argc, argv, len);
    if (pipe_drain(&p) != 0)
        rc = -1;
    free(argv), free(len);
    return rc;
}

/* Step 6, second half: every complete version but the newest keep_versions (fenced). */
static int prune(redis_sink *s, const char *model, uint64_t epoch, owner_outcome *o, char *err,
                 size_t errlen)
{
    char vkey[KEY_MAX], stop[24];
    model_key(vkey, s, model, "versions");
    snprintf(stop, sizeof stop, "%d", -(s->keep_versions + 1));
    const char *argv[4] = {"ZRANGE", vkey, "0", stop};
    redisReply *r = sink_cmd(s, 4, argv, err, errlen);
    if (!r)
        return -1;
    if (r->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        errmsg_set(err, errlen, "redis: model %s: unexpected reply to ZRANGE versions", model);
        return -1;
    }
    int rc = 0;
    if (r->elements > 0) {
        int64_t *old = malloc(r->elements * sizeof *old);
        size_t m = 0;
        if (!old) {
            errmsg_set(err, errlen, "redis: out of memory");
            rc = -1;
        } else {
            for (size_t i = 0; i < r->elements; i++)
                if (reply_u63(r->element[i], &old[m]) == 0)
                    m++;
            rc = owner_prune(s, model, epoch, old, m, o, err, errlen);
        }
        free(old);
    }
    freeReplyObject(r);
    return rc;
}

/* Removes our version n after a failure or a refusal before it was listed, if the connection
 * still works; the caller's message is kept (the next publication removes it otherwise). n was
 * handed out to this publication alone, so this UNLINK needs no fence. */
static void discard_partial(redis_sink *s, const char *model, int64_t n)
{
    if (!s->c)
        return;
    char keys[3][KEY_MAX], ignored[256];
    const char *argv[4] = {"UNLINK", keys[0], keys[1], keys[2]};
    version_key(keys[0], s, model, n, "user");
    version_key(keys[1], s, model, n, "item");
    version_key(keys[2], s, model, n, "meta");
    redisReply *r = sink_cmd(s, 4, argv, ignored, sizeof ignored);
    if (r)
        freeReplyObject(r);
}

/* A refusal by the owner record: the message names the holder (or the newer live block). */
static int fenced(redis_sink *s, const redis_version *v, int64_t n, const char *what,
                  const owner_outcome *o, char *err, size_t errlen)
{
    char why[512];
    owner_describe(s, v->model, v->epoch, o, why, sizeof why);
    errmsg_set(err, errlen, "%s v%" PRId64 ": %s", what, n, why);
    return OWNER_FENCED;
}

int64_t redis_publish(redis_sink *s, const redis_version *v, char *err, size_t errlen)
{
    if (!s || !v) {
        errmsg_set(err, errlen, "redis: no sink or version");
        return -1;
    }
    if (check_version(v, err, errlen) != 0 || reserve_vals(s, v->dim, err, errlen) != 0 ||
        sink_connect(s, err, errlen) != 0)
        return -1;
    owner_outcome local;
    memset(&local, 0, sizeof local);
    owner_outcome *o = v->outcome ? v->outcome : &local;
    memset(o, 0, sizeof *o);
    const char *model = v->model;
    int64_t n = 0, newest = 0;
    if (next_version(s, model, &n, &newest, err, errlen) != 0)
        return -1;
    test_pause("publish_start", model, v->block);
    /* Step 2, fenced: a stale publisher must not delete the newer owner's version in progress. */
    int rc = owner_delete_orphans(s, model, v->epoch, newest + 1, n, o, err, errlen);
    if (rc == OWNER_FENCED)
        return fenced(s, v, n, "orphan deletion before", o, err, errlen);
    if (rc != 0 || write_side(s, v, n, true, err, errlen) != 0 ||
        write_side(s, v, n, false, err, errlen) != 0 || write_meta(s, v, n, err, errlen) != 0) {
        discard_partial(s, model, n);
        return -1;
    }
    test_pause("publish_switch", model, v->block);
    /* Step 5: ZADD, SET current, the owner record and PUBLISH in one fenced script. A refusal
     * leaves v<N> unlisted: ours to remove (N was handed out to us alone). */
    rc = owner_publish_commit(s, model, v->epoch, n, v->block, v->provisional, o, err, errlen);
    if (rc != 0) {
        discard_partial(s, model, n);
        return rc == OWNER_FENCED ? fenced(s, v, n, "switch to", o, err, errlen) : -1;
    }
    /* The switch is done; a failure below is still reported (the caller may publish again, which
     * is harmless), with a message saying the version is live. */
    owner_outcome po;
    char why[512];
    rc = prune(s, model, v->epoch, &po, why, sizeof why);
    if (rc == OWNER_FENCED) {
        o->held_epoch = po.held_epoch; /* the version is live, but the model is someone else's */
        char who[512];
        owner_describe(s, model, v->epoch, &po, who, sizeof who);
        errmsg_set(err, errlen, "version %" PRId64 " of %s is live, but pruning was fenced: %s", n,
                   model, who);
        return OWNER_FENCED;
    }
    if (rc != 0) {
        errmsg_set(err, errlen, "version %" PRId64 " of %s is live, but pruning failed: %s", n,
                   model, why);
        return -1;
    }
    return n;
}

/* ---- reading -------------------------------------------------------------------------------- */

int64_t redis_current_version(redis_sink *s, const char *model, char *err, size_t errlen)
{
    if (!s || check_model(model, err, errlen) != 0)
        return -1;
    char key[KEY_MAX];
    model_key(key, s, model, "current");
    const char *argv[2] = {"GET", key};
    redisReply *r = sink_cmd(s, 2, argv, err, errlen);
    if (!r)
        return -1;
    int64_t v = -1;
    if (r->type == REDIS_REPLY_NIL)
        v = 0;
    else if (reply_u63(r, &v) != 0 || v < 1) {
        errmsg_set(err, errlen, "redis: %s is not a version number", key);
        v = -1;
    }
    freeReplyObject(r);
    return v;
}

/* HGET key field: 1 with the string reply in *out (the caller frees it), 0 when the field or the
 * key is absent, -1 on an error. */
static int hget(redis_sink *s, const char *key, const char *field, redisReply **out, char *err,
                size_t errlen)
{
    const char *argv[3] = {"HGET", key, field};
    redisReply *r = sink_cmd(s, 3, argv, err, errlen);
    *out = NULL;
    if (!r)
        return -1;
    if (r->type == REDIS_REPLY_STRING) {
        *out = r;
        return 1;
    }
    int rc = r->type == REDIS_REPLY_NIL ? 0 : -1;
    if (rc < 0)
        errmsg_set(err, errlen, "redis: unexpected reply to HGET %s", key);
    freeReplyObject(r);
    return rc;
}

int redis_read_meta(redis_sink *s, const char *model, int64_t version, const char *field,
                    char **out, char *err, size_t errlen)
{
    if (!s || !field || !out || check_model(model, err, errlen) != 0)
        return -1;
    *out = NULL;
    if (version < 1) {
        errmsg_set(err, errlen, "redis: bad version %" PRId64, version);
        return -1;
    }
    char key[KEY_MAX];
    version_key(key, s, model, version, "meta");
    redisReply *r;
    int rc = hget(s, key, field, &r, err, errlen);
    if (rc == 1) {
        if (!(*out = malloc(r->len + 1))) {
            errmsg_set(err, errlen, "redis: out of memory");
            rc = -1;
        } else {
            memcpy(*out, r->str, r->len);
            (*out)[r->len] = '\0';
        }
        freeReplyObject(r);
    }
    return rc;
}

/* The dimension (and, for count != NULL, the side's vector count) from a version's meta. A
 * version without meta is not published (never written, pruned, or still being written). */
static int read_shape(redis_sink *s, const char *model, int64_t version, const char *side, int *dim,
                      int64_t *count, char *err, size_t errlen)
{
    char key[KEY_MAX];
    version_key(key, s, model, version, "meta");
    const char *argv[5] = {"HMGET", key, "dim", "dtype",
                           strcmp(side, "user") == 0 ? "users" : "items"};
    redisReply *r = sink_cmd(s, 5, argv, err, errlen);
    if (!r)
        return -1;
    int rc = -1;
    int64_t d = 0, c = 0;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3)
        errmsg_set(err, errlen, "redis: unexpected reply to HMGET %s", key);
    else if (r->element[0]->type == REDIS_REPLY_NIL)
        errmsg_set(err, errlen, "redis: version %" PRId64 " of %s is not published (no meta)",
                   version, model);
    else if (reply_u63(r->element[0], &d) != 0 || d < 1 || d > DIM_MAX)
        errmsg_set(err, errlen, "redis: %s: bad dim", key);
    else if (r->element[1]->type != REDIS_REPLY_STRING || r->element[1]->len != 5 ||
             memcmp(r->element[1]->str, "f32le", 5) != 0)
        errmsg_set(err, errlen, "redis: %s: dtype is not f32le", key);
    else if (count && reply_u63(r->element[2], &c) != 0)
        errmsg_set(err, errlen, "redis: %s: bad %s count", key, argv[4]);
    else {
        *dim = (int)d;
        if (count)
            *count = c;
        rc = 0;
    }
    freeReplyObject(r);
    return rc;
}

int64_t redis_read_vectors(redis_sink *s, const char *model, int64_t version, const char *side,
                           int *dim, redis_vector_fn fn, void *ctx, char *err, size_t errlen)
{
    if (!s || !dim || !fn || check_model(model, err, errlen) != 0 ||
        check_side(side, err, errlen) != 0)
        return -1;
    if (version < 1) {
        errmsg_set(err, errlen, "redis: bad version %" PRId64, version);
        return -1;
    }
    int64_t expect = 0;
    if (read_shape(s, model, version, side, dim, &expect, err, errlen) != 0)
        return -1;
    size_t vbytes = 4 * (size_t)*dim;
    float *vec = malloc(vbytes);
    if (!vec) {
        errmsg_set(err, errlen, "redis: out of memory");
        return -1;
    }
    char key[KEY_MAX], cursor[32] = "0", count[16];
    version_key(key, s, model, version, side);
    snprintf(count, sizeof count, "%d", SCAN_COUNT);
    int64_t got = 0;
    int rc = 0;
    do {
        const char *argv[5] = {"HSCAN", key, cursor, "COUNT", count};
        redisReply *r = sink_cmd(s, 5, argv, err, errlen);
        if (!r) {
            rc = -1;
            break;
        }
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[0]->type != REDIS_REPLY_STRING || r->element[0]->len >= sizeof cursor ||
            r->element[1]->type != REDIS_REPLY_ARRAY || r->element[1]->elements % 2 != 0) {
            errmsg_set(err, errlen, "redis: unexpected reply to HSCAN %s", key);
            freeReplyObject(r);
            rc = -1;
            break;
        }
        memcpy(cursor, r->element[0]->str, r->element[0]->len);
        cursor[r->element[0]->len] = '\0';
        const redisReply *kv = r->element[1];
        for (size_t i = 0; i < kv->elements && rc == 0; i += 2) {
            const redisReply *id = kv->element[i], *val = kv->element[i + 1];
            if (id->type != REDIS_REPLY_STRING || val->type != REDIS_REPLY_STRING ||
                val->len != vbytes) {
                errmsg_set(err, errlen, "redis: %s: field %.*s holds %zu bytes, not %zu", key,
                           (int)(id->len < 64 ? id->len : 64), id->str ? id->str : "", val->len,
                           vbytes);
                rc = -1;
                break;
            }
            const unsigned char *p = (const unsigned char *)val->str;
            for (int d = 0; d < *dim; d++)
                vec[d] = le_get_f32(p + 4 * d);
            /* hiredis NUL-terminates string replies, so the id can be passed as it is */
            int stop = fn(ctx, id->str, vec, *dim);
            if (stop != 0) {
                errmsg_set(err, errlen, "redis: reading %s stopped by the callback (%d)", key,
                           stop);
                rc = -1;
            }
            got++;
        }
        freeReplyObject(r);
    } while (rc == 0 && strcmp(cursor, "0") != 0);
    free(vec);
    if (rc != 0)
        return -1;
    /* A hash smaller than its meta says was pruned (or deleted) while it was being read. */
    if (got != expect) {
        errmsg_set(err, errlen,
                   "redis: %s: read %" PRId64 " vectors, meta says %" PRId64
                   " (pruned while reading?)",
                   key, got, expect);
        return -1;
    }
    return got;
}

int redis_read_vector(redis_sink *s, const char *model, int64_t version, const char *side,
                      const char *id, float *vec, int max_dim, int *dim, char *err, size_t errlen)
{
    if (!s || !id || !vec || !dim || check_model(model, err, errlen) != 0 ||
        check_side(side, err, errlen) != 0)
        return -1;
    if (version < 1) {
        errmsg_set(err, errlen, "redis: bad version %" PRId64, version);
        return -1;
    }
    int d = 0;
    if (read_shape(s, model, version, side, &d, NULL, err, errlen) != 0)
        return -1;
    if (d > max_dim) {
        errmsg_set(err, errlen,
                   "redis: version %" PRId64 " of %s has dim %d, more than the %d given", version,
                   model, d, max_dim);
        return -1;
    }
    *dim = d;
    char key[KEY_MAX];
    version_key(key, s, model, version, side);
    redisReply *r;
    int rc = hget(s, key, id, &r, err, errlen);
    if (rc == 1) {
        if (r->len != 4 * (size_t)d) {
            errmsg_set(err, errlen, "redis: %s: the value of %s is not %d float32", key, id, d);
            rc = -1;
        } else {
            for (int k = 0; k < d; k++)
                vec[k] = le_get_f32((const unsigned char *)r->str + 4 * k);
        }
        freeReplyObject(r);
    }
    return rc;
}

redis_sink *redis_sink_open_address(const char *addr, const char *user, const char *password,
                                    const char *prefix, char *err, size_t errlen)
{
    char host[256];
    const char *colon = strrchr(addr, ':');
    int port = 6379;
    if (colon) {
        char *end;
        long p = strtol(colon + 1, &end, 10);
        if (*end || p < 1 || p > 65535) {
            errmsg_set(err, errlen, "redis address '%s': bad port", addr);
            return NULL;
        }
        port = (int)p;
    }
    int n = colon ? (int)(colon - addr) : (int)strlen(addr);
    if (n <= 0 || n >= (int)sizeof host) {
        errmsg_set(err, errlen, "redis address '%s': bad host", addr);
        return NULL;
    }
    snprintf(host, sizeof host, "%.*s", n, addr);
    redis_sink_opts o;
    redis_sink_opts_default_at(&o, host, port, user, password, prefix);
    return redis_sink_open(&o, err, errlen);
}
