/* wlog: the worker's log lines on stderr, human-readable or JSON lines, from any thread.
 *
 *   text:  2026-11-29T02:10:00.123Z info  block 3 of model shop: 41233 events, 120 new users
 *   json:  {"ts":"2026-11-29T02:10:00.123Z","level":"info","msg":"block 3 of model shop: ..."}
 * Messages never contain secrets: callers pass values through worker_config_is_secret first. */
#ifndef CCD_WLOG_H
#define CCD_WLOG_H

enum { WLOG_ERROR = 0, WLOG_WARN = 1, WLOG_INFO = 2, WLOG_DEBUG = 3 };

void wlog_setup(int level, int json);
void wlog(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
