/* redis_sink: publishing student versions to Redis, and reading them back (hiredis).
 *
 * Key layout (the contract serving code relies on; P = prefix, default "ccd"; M = model id; the
 * {M} hash tag keeps one model on one Redis Cluster slot):
 *   P:{M}:seq            INCR counter that hands out version numbers (1, 2, ...)
 *   P:{M}:v<N>:user      hash: external user id -> dim little-endian float32 (4*dim bytes)
 *   P:{M}:v<N>:item      hash: external item id -> dim little-endian float32
 *   P:{M}:v<N>:meta      hash: dim, dtype (f32le), users, items, block, created_ms,
 *                        provisional ("1": the fast path's provisional student of the block,
 *                        replaced by the exact one later; "0": the exact CL_k), and the
 *                        caller's extra fields (holdout quality, events, ...)
 *   P:{M}:versions       sorted set of complete versions (score = N)
 *   P:{M}:current        the live version number N (decimal string); its block never goes
 *                        down. An exact version of a block below a live provisional one is
 *                        listed in `versions` (readable by number) without moving `current`.
 *   channel P:{M}:updates  a message "N" after each switch
 *   P:{M}:owner          hash: the model's owner record and fencing token (owner.h)
 * A version is written completely (user, item, meta) before it joins `versions` and before
 * `current` moves, so a reader that reads `current` and then the version's hashes never sees a
 * partial version. The newest `keep_versions` complete versions are kept; older ones are deleted
 * after the switch. Version numbers handed out but never completed (a crash while writing) are
 * deleted by the next publication. Vectors are the embeddings the student scores with (after
 * propagation): score(u, i) = dot(user[u], item[i]).
 *
 * Errors: every call returns -1 with a message and leaves the connection ready to be retried
 * (a broken connection is reopened on the next call); the caller decides the backoff. */
#ifndef CCD_REDIS_SINK_H
#define CCD_REDIS_SINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *host;     /* "127.0.0.1" */
    int port;             /* 6379 */
    const char *user;     /* ACL user, or NULL for the default user */
    const char *password; /* or NULL */
    int db;               /* SELECT db (0) */
    int timeout_ms;       /* connect and command timeout (5000) */
    const char *prefix;   /* key prefix ("ccd") */
    int keep_versions;    /* complete versions kept (3) */
    int batch_fields;     /* fields per pipelined HSET (512) */
} redis_sink_opts;

typedef struct redis_sink redis_sink;

/* Defaults as documented above. */
void redis_sink_opts_default(redis_sink_opts *o);
/* The defaults, for this server and user: user and password may be NULL (the default user, no
 * AUTH), prefix too (the default prefix). The strings are borrowed until redis_sink_open. */
void redis_sink_opts_default_at(redis_sink_opts *o, const char *host, int port, const char *user,
                                const char *password, const char *prefix);

/* Connect (AUTH and SELECT as configured). Returns NULL with a message in err. */
redis_sink *redis_sink_open(const redis_sink_opts *o, char *err, size_t errlen);
void redis_sink_close(redis_sink *s);

/* For command-line tools: "HOST[:PORT]" (default port 6379), the other options at their defaults
 * except user, password (may be NULL) and prefix (NULL: "ccd"). */
redis_sink *redis_sink_open_address(const char *addr, const char *user, const char *password,
                                    const char *prefix, char *err, size_t errlen);

typedef struct {
    const char *model;
    int block;
    int dim;
    int n_users, n_items;
    const char *const *user_ids; /* (n_users) external ids, row order */
    const char *const *item_ids; /* (n_items) */
    const float *user_vecs;      /* (n_users x dim) */
    const float *item_vecs;      /* (n_items x dim) */
    int n_meta;                  /* extra meta fields (name, value) */
    const char *const *meta_names;
    const char *const *meta_values;
    /* Fencing (owner.h): the publisher's owner epoch (0 when it never claimed the model: then
     * any claim fences it). outcome, when not NULL, receives the owner record's verdict. */
    uint64_t epoch;
    struct owner_outcome *outcome;
    bool provisional; /* the fast path's provisional student (owner.h: publication rules) */
} redis_version;

/* Write a complete version, switch `current` to it, announce it, prune old versions. The orphan
 * deletion, the switch and the prune are fenced by v->epoch (owner.h).
 * Returns the new version number (> 0), -1 with a message in err (retryable), or -2 (fenced:
 * a newer owner holds the model or a newer block is live; never retried; the message names
 * the holder). */
int64_t redis_publish(redis_sink *s, const redis_version *v, char *err, size_t errlen);

/* The live version of a model: > 0, 0 when none is published, -1 on error. */
int64_t redis_current_version(redis_sink *s, const char *model, char *err, size_t errlen);

/* Read every vector of one side ("user" or "item") of a version, calling fn for each (the id
 * is NUL-terminated, vec has dim floats; both valid during the call only). The dimension is read
 * from the version's meta (*dim). Returns the number of vectors, or -1 (missing version, bad
 * value length, connection error) with a message. */
typedef int (*redis_vector_fn)(void *ctx, const char *id, const float *vec, int dim);
int64_t redis_read_vectors(redis_sink *s, const char *model, int64_t version, const char *side,
                           int *dim, redis_vector_fn fn, void *ctx, char *err, size_t errlen);

/* One vector by id: 1 found (vec filled, dim floats), 0 absent, -1 error. vec holds max_dim. */
int redis_read_vector(redis_sink *s, const char *model, int64_t version, const char *side,
                      const char *id, float *vec, int max_dim, int *dim, char *err, size_t errlen);

/* One meta field as a string (malloc'd, *out), 1 found, 0 absent, -1 error. */
int redis_read_meta(redis_sink *s, const char *model, int64_t version, const char *field,
                    char **out, char *err, size_t errlen);

/* For the other users of a [redis] connection (the checkpoint store, checkpoint.h): one command
 * with binary-safe arguments (argvlen[i] bytes each), connecting again first when the connection
 * was dropped. Returns hiredis's reply (the caller frees it with freeReplyObject), or NULL with a
 * message on an I/O error (the connection is dropped) or an error reply (it is kept). */
struct redisReply *redis_sink_command(redis_sink *s, int argc, const char **argv,
                                      const size_t *argvlen, char *err, size_t errlen);
/* The owner scripts' SHA1s on this connection (owner.c), loaded on first use. */
struct owner_scripts *redis_sink_owner_scripts(redis_sink *s);
/* The key prefix every key of this connection starts with ("ccd"). */
const char *redis_sink_prefix(const redis_sink *s);

#endif
