/* wlog: see wlog.h. One fprintf per line under stdio's stream lock, so lines never interleave. */
#include "wlog.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

static int log_level = WLOG_INFO, log_json = 0;

void wlog_setup(int level, int json)
{
    log_level = level;
    log_json = json;
}

static void json_escape(char *dst, size_t n, const char *src)
{
    size_t w = 0;
    for (; *src && w + 7 < n; src++) {
        unsigned char c = (unsigned char)*src;
        if (c == '"' || c == '\\') {
            dst[w++] = '\\';
            dst[w++] = (char)c;
        } else if (c < 0x20) {
            w += (size_t)snprintf(dst + w, n - w, "\\u%04x", c);
        } else {
            dst[w++] = (char)c;
        }
    }
    dst[w] = '\0';
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
    if (log_json) {
        char esc[4 * sizeof msg];
        json_escape(esc, sizeof esc, msg);
        fprintf(stderr, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"%s\"}\n", when, names[level],
                esc);
    } else {
        fprintf(stderr, "%s %-5s %s\n", when, names[level], msg);
    }
}
