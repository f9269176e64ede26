/* live_version: what the worker tests read back from Redis at the end: a model's live version and
 * its meta, in the layout of worker/redis_sink.h (P:{M}:current names the live version N;
 * P:{M}:vN:meta holds block, events_total, users; P:{M}:vN:user one field per user). Header-only;
 * a missing piece fails the test (CHECK). */
#ifndef CCD_LIVE_VERSION_H
#define CCD_LIVE_VERSION_H

#include <hiredis/hiredis.h>
#include <stdlib.h>

#include "services_env.h"

typedef struct {
    long long version;
    int block;
    long long events_total; /* events counted into blocks 0..block */
    long long users;        /* the meta's user count */
    long long
        user_fields; /* fields of the user hash: equal to users when the version is complete */
} live_version;

static inline live_version live_version_read(redisContext *r, const char *prefix, const char *model)
{
    live_version v;
    redisReply *cur = redisCommand(r, "GET %s:{%s}:current", prefix, model);
    CHECK(cur && cur->type == REDIS_REPLY_STRING, "%s: no live version", model);
    v.version = atoll(cur->str);
    freeReplyObject(cur);
    redisReply *meta = redisCommand(r, "HMGET %s:{%s}:v%lld:meta block events_total users", prefix,
                                    model, v.version);
    CHECK(meta && meta->type == REDIS_REPLY_ARRAY && meta->elements == 3 && meta->element[0]->str &&
              meta->element[1]->str && meta->element[2]->str,
          "%s: v%lld has no meta", model, v.version);
    v.block = atoi(meta->element[0]->str);
    v.events_total = atoll(meta->element[1]->str);
    v.users = atoll(meta->element[2]->str);
    freeReplyObject(meta);
    redisReply *hlen = redisCommand(r, "HLEN %s:{%s}:v%lld:user", prefix, model, v.version);
    CHECK(hlen && hlen->type == REDIS_REPLY_INTEGER, "%s: v%lld: HLEN of its users failed", model,
          v.version);
    v.user_fields = hlen->integer;
    freeReplyObject(hlen);
    return v;
}

#endif
