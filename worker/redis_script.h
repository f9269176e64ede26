/* redis_script: Lua scripts run by SHA1 (EVALSHA) on a redis_sink connection.
 *
 * A script is its source and the SHA1 the server gave for it. The first call loads it (SCRIPT
 * LOAD returns the 40-hex SHA1, so no SHA code of ours); a NOSCRIPT error (a failover to a
 * replica without the script cache, SCRIPT FLUSH) loads it again and retries once. Callers keep
 * their redis_script values next to their connection (one per thread), never in shared statics.
 * For Redis Cluster, every key a script touches must be passed in keys (all sharing one hash tag),
 * which is what makes the scripts cluster-valid; hiredis 0.14 does not follow MOVED itself. */
#ifndef CCD_REDIS_SCRIPT_H
#define CCD_REDIS_SCRIPT_H

#include <stddef.h>

#include "redis_sink.h"

typedef struct {
    const char *name; /* for messages ("ckpt_commit") */
    const char *src;  /* the Lua source (static) */
    char sha[41];     /* "" until loaded */
} redis_script;

/* A script not loaded yet. */
void redis_script_init(redis_script *sc, const char *name, const char *src);

/* EVALSHA sc with nkeys keys and nargs NUL-terminated arguments. Returns the reply (the caller
 * frees it with freeReplyObject), or NULL with a message naming the script on an I/O error or an
 * error reply (a script's redis.error_reply included). */
struct redisReply *redis_script_call(redis_sink *r, redis_script *sc, int nkeys,
                                     const char *const *keys, int nargs, const char *const *args,
                                     char *err, size_t errlen);

#endif
