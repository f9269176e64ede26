/* redis_script: EVALSHA with SCRIPT LOAD on first use and on NOSCRIPT. See redis_script.h. */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errmsg.h"
#include "redis_script.h"

void redis_script_init(redis_script *sc, const char *name, const char *src)
{
    sc->name = name;
    sc->src = src;
    sc->sha[0] = '\0';
}

static int load(redis_sink *r, redis_script *sc, char *err, size_t errlen)
{
    const char *argv[3] = {"SCRIPT", "LOAD", sc->src};
    size_t len[3] = {6, 4, strlen(sc->src)};
    redisReply *x = redis_sink_command(r, 3, argv, len, err, errlen);
    if (!x)
        return -1;
    int ok = x->type == REDIS_REPLY_STRING && x->len == 40;
    if (ok)
        memcpy(sc->sha, x->str, 41);
    else
        errmsg_set(err, errlen, "redis: SCRIPT LOAD %s: unexpected reply", sc->name);
    freeReplyObject(x);
    return ok ? 0 : -1;
}

redisReply *redis_script_call(redis_sink *r, redis_script *sc, int nkeys, const char *const *keys,
                              int nargs, const char *const *args, char *err, size_t errlen)
{
    int argc = 3 + nkeys + nargs;
    const char **argv = malloc((size_t)argc * sizeof *argv);
    size_t *len = malloc((size_t)argc * sizeof *len);
    char nk[16];
    redisReply *x = NULL;
    if (!argv || !len) {
        errmsg_set(err, errlen, "redis: script %s: out of memory", sc->name);
        goto out;
    }
    snprintf(nk, sizeof nk, "%d", nkeys);
    argv[0] = "EVALSHA", argv[2] = nk;
    for (int i = 0; i < nkeys; i++)
        argv[3 + i] = keys[i];
    for (int i = 0; i < nargs; i++)
        argv[3 + nkeys + i] = args[i];
    for (int i = 0; i < argc; i++)
        len[i] = i == 1 ? 40 : strlen(argv[i]);
    /* At most two tries: the second after loading the script again (NOSCRIPT). */
    for (int attempt = 0; attempt < 2 && !x; attempt++) {
        if ((!sc->sha[0] || attempt > 0) && load(r, sc, err, errlen) != 0)
            break;
        argv[1] = sc->sha;
        x = redis_sink_command(r, argc, argv, len, err, errlen);
        /* redis_sink_command keeps the server's text: "...: EVALSHA: NOSCRIPT No matching ..." */
        if (!x && !strstr(err, "EVALSHA: NOSCRIPT"))
            break;
    }
    if (!x) {
        char why[512];
        snprintf(why, sizeof why, "%s", err);
        errmsg_set(err, errlen, "script %s: %s", sc->name, why);
    }
out:
    free(argv);
    free(len);
    return x;
}
