/* Integration smoke test against the real redis-server started by tests/services.sh: write an
 * embedding as a binary little-endian float32 blob (plain key and hash field, with NUL and
 * high bytes inside), read it back with hiredis and compare bit for bit. */
#include <hiredis/hiredis.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "services_env.h"

/* float32 -> 4 little-endian bytes, independent of the host's byte order */
static void put_f32le(unsigned char *p, float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    for (int b = 0; b < 4; b++)
        p[b] = (unsigned char)(u >> (8 * b));
}

static float get_f32le(const unsigned char *p)
{
    uint32_t u = 0;
    for (int b = 0; b < 4; b++)
        u |= (uint32_t)p[b] << (8 * b);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

int main(void)
{
    char host[128], port[16];
    CHECK(services_env("REDIS_HOST", host, sizeof host) == 0 &&
              services_env("REDIS_PORT", port, sizeof port) == 0,
          "no redis");
    struct timeval tv = {5, 0};
    redisContext *c = redisConnectWithTimeout(host, atoi(port), tv);
    CHECK(c && !c->err, "connect %s:%s: %s", host, port, c ? c->errstr : "no context");
    enum { D = 64 };
    float vec[D];
    unsigned char blob[4 * D];
    for (int k = 0; k < D; k++) {
        vec[k] = (k % 2 ? -1.0f : 1.0f) * (float)k / 7.0f;
        put_f32le(blob + 4 * k, vec[k]);
    }
    vec[3] = 0.0f; /* a zero float puts NUL bytes in the blob */
    put_f32le(blob + 12, vec[3]);
    char key[64];
    snprintf(key, sizeof key, "ccd:{smoke-%d}:blob", (int)getpid());
    redisReply *r = redisCommand(c, "SET %s %b", key, blob, sizeof blob);
    CHECK(r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "OK") == 0, "SET");
    freeReplyObject(r);
    r = redisCommand(c, "GET %s", key);
    CHECK(r && r->type == REDIS_REPLY_STRING && r->len == sizeof blob, "GET length");
    CHECK(memcmp(r->str, blob, sizeof blob) == 0, "GET bytes differ");
    for (int k = 0; k < D; k++)
        CHECK(get_f32le((const unsigned char *)r->str + 4 * k) == vec[k], "element %d", k);
    freeReplyObject(r);
    /* hash field: the per-version user table layout (field = external id) */
    r = redisCommand(c, "HSET %s:h %s %b", key, "user-42", blob, sizeof blob);
    CHECK(r && r->type == REDIS_REPLY_INTEGER && r->integer == 1, "HSET");
    freeReplyObject(r);
    r = redisCommand(c, "HGET %s:h %s", key, "user-42");
    CHECK(r && r->type == REDIS_REPLY_STRING && r->len == sizeof blob &&
              memcmp(r->str, blob, sizeof blob) == 0,
          "HGET bytes differ");
    freeReplyObject(r);
    r = redisCommand(c, "DEL %s %s:h", key, key);
    CHECK(r && r->type == REDIS_REPLY_INTEGER && r->integer == 2, "DEL");
    freeReplyObject(r);
    redisFree(c);
    printf("redis: %d-float blob written and read back bit for bit on %s:%s\n", D, host, port);
    return 0;
}
