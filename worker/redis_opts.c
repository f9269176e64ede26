/* redis_opts: see redis_opts.h. */
#include "redis_opts.h"

#include "cli.h"

#include <stdio.h>
#include <stdlib.h>

/* 1 if c is one of the six (taken), 0 if not, -1 on a malformed --version. */
static int take(redis_opts *o, const char *tool, int c, const char *arg)
{
    switch (c) {
    case REDIS_OPT_ADDRESS:
        o->address = arg;
        return 1;
    case REDIS_OPT_USER:
        o->user = arg;
        return 1;
    case REDIS_OPT_PASSWORD_ENV:
        o->password_env = arg;
        return 1;
    case REDIS_OPT_PREFIX:
        o->prefix = arg;
        return 1;
    case REDIS_OPT_MODEL:
        o->model = arg;
        return 1;
    case REDIS_OPT_VERSION:
        return cli_int64(tool, "version", arg, 1, INT64_MAX, &o->version) == 0 ? 1 : -1;
    default:
        return 0;
    }
}

int redis_opts_getopt(redis_opts *o, const char *tool, int argc, char **argv,
                      const struct option *longopts)
{
    int c, taken = 1;
    while (taken > 0 && (c = getopt_long(argc, argv, "h", longopts, NULL)) != -1)
        taken = take(o, tool, c, optarg);
    return taken < 0 ? REDIS_OPTS_BAD : taken > 0 ? -1 : c;
}

redis_sink *redis_opts_open(const redis_opts *o, char *err, size_t errlen)
{
    const char *password = o->password_env ? getenv(o->password_env) : NULL;
    return redis_sink_open_address(o->address, o->user, password, o->prefix, err, errlen);
}

int64_t redis_opts_live_version(const redis_opts *o, redis_sink *s, const char *tool)
{
    char err[512];
    int64_t v = redis_current_version(s, o->model, err, sizeof err);
    if (v > 0)
        return v;
    fprintf(stderr, "%s: model %s: %s\n", tool, o->model, v < 0 ? err : "no version published");
    return 0;
}
