/* redis_opts: which Redis, model and version a command-line tool reads; shared by ccd-eval and
 * ccd-topk, so both take the same options with the same defaults and checks:
 *
 *   --redis HOST[:PORT]      (default 127.0.0.1:6379)
 *   --redis-user U           ACL user (default: none)
 *   --redis-password-env VAR the password is read from the environment variable VAR, never from
 *                            the command line, where ps would show it
 *   --prefix P               key prefix (default ccd)
 *   --model M                the model (required: the tool checks)
 *   --version N              a published version, N >= 1 (default: the live one)
 *
 * A tool puts REDIS_OPTS_LONGOPTS into its getopt_long table and reads its command line with
 * redis_opts_getopt, which hands it only its own options. */
#ifndef CCD_REDIS_OPTS_H
#define CCD_REDIS_OPTS_H

#include <getopt.h>
#include <stddef.h>
#include <stdint.h>

#include "redis_sink.h"

typedef struct {
    const char *address, *user, *password_env, *prefix, *model; /* borrowed from argv */
    int64_t version;                                            /* 0: the live one */
} redis_opts;

/* getopt_long values of the six options, below the tools' own (which start at 1000). */
enum {
    REDIS_OPT_ADDRESS = 900,
    REDIS_OPT_USER,
    REDIS_OPT_PASSWORD_ENV,
    REDIS_OPT_PREFIX,
    REDIS_OPT_MODEL,
    REDIS_OPT_VERSION
};

/* clang-format off */
#define REDIS_OPTS_DEFAULTS {.address = "127.0.0.1:6379", .prefix = "ccd"}

#define REDIS_OPTS_LONGOPTS                                                      \
    {"redis", required_argument, NULL, REDIS_OPT_ADDRESS},                       \
    {"redis-user", required_argument, NULL, REDIS_OPT_USER},                     \
    {"redis-password-env", required_argument, NULL, REDIS_OPT_PASSWORD_ENV},     \
    {"prefix", required_argument, NULL, REDIS_OPT_PREFIX},                       \
    {"model", required_argument, NULL, REDIS_OPT_MODEL},                         \
    {"version", required_argument, NULL, REDIS_OPT_VERSION}
/* clang-format on */

/* getopt_long(argc, argv, "h", longopts), taking the six options itself: the next answer that is
 * not one of them, -1 at the end, or REDIS_OPTS_BAD after a malformed --version (said on stderr as
 * "TOOL: --version: ..."). */
#define REDIS_OPTS_BAD (-2)
int redis_opts_getopt(redis_opts *o, const char *tool, int argc, char **argv,
                      const struct option *longopts);

/* Connect (redis_sink_open_address). NULL with a message in err. */
redis_sink *redis_opts_open(const redis_opts *o, char *err, size_t errlen);

/* The live version of the model: > 0, or 0 after printing "TOOL: model M: ..." (none published,
 * or Redis's error) to stderr. */
int64_t redis_opts_live_version(const redis_opts *o, redis_sink *s, const char *tool);

#endif
