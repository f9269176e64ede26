/* redis_admin: what the Redis integration tests share: commands on a raw hiredis connection
 * whose failures fail the test (CHECK, services_env.h), and deleting keys by pattern. */
#ifndef CCD_REDIS_ADMIN_H
#define CCD_REDIS_ADMIN_H

#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "services_env.h"

/* A command on a raw connection; the reply must exist (I/O errors fail the test). */
static inline redisReply *cmd(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    CHECK(r, "command \"%s\": %s", fmt, c->errstr);
    return r;
}

static inline long long cmd_int(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    CHECK(r && r->type == REDIS_REPLY_INTEGER, "command \"%s\": no integer (%s)", fmt,
          r && r->str ? r->str : c->errstr);
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

/* The string value of a command (GET, HGET) as an int64; -1 when nil. */
static inline int64_t cmd_num(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    CHECK(r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_NIL), "command \"%s\": %s",
          fmt, r && r->str ? r->str : c->errstr);
    int64_t v = r->type == REDIS_REPLY_NIL ? -1 : strtoll(r->str, NULL, 10);
    freeReplyObject(r);
    return v;
}

/* A string reply's value ("" for nil) into out. */
static inline void cmd_str(redisContext *c, char *out, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    CHECK(r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_NIL),
          "command \"%s\": no string", fmt);
    snprintf(out, n, "%s", r->type == REDIS_REPLY_STRING ? r->str : "");
    freeReplyObject(r);
}

/* Calls fn(c, key) for every key matching pattern (SCAN); returns how many there were. */
static inline long long scan_keys(redisContext *c, const char *pattern,
                                  void (*fn)(redisContext *, const char *))
{
    long long n = 0;
    char cursor[32] = "0";
    do {
        redisReply *r = cmd(c, "SCAN %s MATCH %s COUNT 1000", cursor, pattern);
        CHECK(r->type == REDIS_REPLY_ARRAY && r->elements == 2, "SCAN");
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        for (size_t i = 0; fn && i < r->element[1]->elements; i++)
            fn(c, r->element[1]->element[i]->str);
        n += (long long)r->element[1]->elements;
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    return n;
}

static inline void unlink_key(redisContext *c, const char *key)
{
    freeReplyObject(cmd(c, "UNLINK %s", key));
}

/* Deletes every key matching pattern (a test's keys, at its end). */
static inline void cleanup(redisContext *c, const char *pattern)
{
    scan_keys(c, pattern, unlink_key);
}

/* The services fixture's redis-server (services.env: REDIS_HOST, REDIS_PORT) into host and
 * *port, and an admin connection to it (10 s timeouts). SIGPIPE is ignored, as any hiredis user
 * must: a server that drops a connection mid-write makes write(2) fail with EPIPE instead of
 * killing the process. */
static inline redisContext *services_redis(char *host, size_t hostlen, int *port)
{
    char p[16];
    CHECK(services_env("REDIS_HOST", host, hostlen) == 0 &&
              services_env("REDIS_PORT", p, sizeof p) == 0,
          "no redis");
    *port = atoi(p);
    signal(SIGPIPE, SIG_IGN);
    struct timeval tv = {10, 0};
    redisContext *c = redisConnectWithTimeout(host, *port, tv);
    CHECK(c && !c->err, "connect %s:%d: %s", host, *port, c ? c->errstr : "no context");
    CHECK(redisSetTimeout(c, tv) == REDIS_OK, "set timeout");
    return c;
}

#endif
