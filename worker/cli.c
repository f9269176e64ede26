/* cli: see cli.h. */
#include "cli.h"

#include <errno.h>
#include <stdbool.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

int cli_parse_int64(const char *s, int64_t min, int64_t max, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end != '\0' || errno || v < min || v > max)
        return -1;
    *out = (int64_t)v;
    return 0;
}

int cli_int64(const char *tool, const char *name, const char *s, int64_t min, int64_t max,
              int64_t *out)
{
    if (cli_parse_int64(s, min, max, out) == 0)
        return 0;
    fprintf(stderr, "%s: --%s: expected an integer in [%" PRId64 ", %" PRId64 "], got \"%s\"\n",
            tool, name, min, max, s);
    return -1;
}

int cli_int(const char *tool, const char *name, const char *s, int min, int max, int *out)
{
    int64_t v;
    if (cli_int64(tool, name, s, min, max, &v) != 0)
        return -1;
    *out = (int)v;
    return 0;
}

/* strtof or strtod (as_float says which) over the whole of s, in [min, max]: 0 with *out, or -1. */
static int parse_real(const char *s, bool as_float, double min, double max, double *out)
{
    char *end;
    errno = 0;
    double v = as_float ? strtof(s, &end) : strtod(s, &end);
    if (end == s || *end != '\0' || errno || !(v >= min && v <= max))
        return -1;
    *out = v;
    return 0;
}

int cli_parse_float(const char *s, float min, float max, float *out)
{
    double v;
    if (parse_real(s, true, min, max, &v) != 0)
        return -1;
    *out = (float)v; /* exact: v is strtof's float */
    return 0;
}

int cli_parse_double(const char *s, double min, double max, double *out)
{
    return parse_real(s, false, min, max, out);
}
