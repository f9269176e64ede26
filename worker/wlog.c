/* wlog: see wlog.h. One fprintf per line under stdio's stream lock, so lines never interleave. */
#include "wlog.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static int log_level = WLOG_INFO, log_json = 0;

void wlog_setup(int level, int json)
{
    log_level = level;
    log_json = json;
}

/* msg as a JSON string (jansson escapes it). A message is not always valid UTF-8 (it may quote a
 * hostile record); then its non-ASCII bytes become '?' rather than the line being lost. */
static char *json_line(const char *when, const char *level, char *msg)
{
    json_t *s = json_string(msg);
    if (!s) {
        for (char *p = msg; *p; p++)
            if ((unsigned char)*p >= 0x80)
                *p = '?';
        s = json_string(msg);
    }
    json_t *line = json_pack("{s:s, s:s, s:o*}", "ts", when, "level", level, "msg", s);
    char *out = line ? json_dumps(line, JSON_COMPACT) : NULL;
    json_decref(line);
    return out;
}

void wlog(int level, const char *fmt, ...)
{
    if (level > log_level)
        return;
    static const char *const names[] = {"error", "warn", "info", "debug"};
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[40];
    size_t l = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + l, sizeof when - l, ".%03ldZ", ts.tv_nsec / 1000000);
    char *line = log_json ? json_line(when, names[level], msg) : NULL;
    if (line) {
        fprintf(stderr, "%s\n", line);
        free(line);
    } else {
        fprintf(stderr, "%s %-5s %s\n", when, names[level], msg);
    }
}
