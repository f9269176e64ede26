/* window: when a model's open window closes.
 *
 * Block 0 is the bootstrap window: it closes after `bootstrap_events` events, or before the first
 * event whose time is >= `bootstrap_until_ms`. Every later window is tumbling: `events` events, or
 * the event-time interval [start, start + duration_ms). An event-time window closes *before* the
 * first event at or past its end, which then opens the window that contains it (empty windows in
 * a gap are skipped, never produced). Events older than the open window's start (late events) are
 * kept in the open window and counted as late. Count and time closings depend only on the event
 * sequence, so a replay after a crash cuts the same blocks; the idle timeout and the buffer bound
 * (decided by the worker with wall-clock time) close a window early and are not replay-stable
 * unless the block they close was checkpointed. */
#ifndef CCD_WINDOW_H
#define CCD_WINDOW_H

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    int64_t bootstrap_events;   /* > 0: bootstrap by count */
    int64_t bootstrap_until_ms; /* else: bootstrap by time */
    int64_t events;             /* > 0: tumbling by count */
    int64_t duration_ms;        /* else: tumbling by time */
} window_rules;

typedef struct {
    int next_block;   /* the block the open window will become (0 = bootstrap) */
    int64_t start_ms; /* event-time windows: start of the open window; INT64_MIN until known */
    int64_t count;    /* events in the open window */
} window_state;

/* Must the open window close before an event at time t is added? */
bool window_closes_before(const window_rules *r, const window_state *w, int64_t t);
/* Add an event at time t to the open window; returns true when it is late. */
bool window_add(const window_rules *r, window_state *w, int64_t t);
/* Is the open window full after the last add (count windows)? */
bool window_full(const window_rules *r, const window_state *w);
/* Close the open window (it becomes block w->next_block). next_t: time of the event that
 * triggered the close (it will be added next), or INT64_MIN for count, idle and bound closings. */
void window_close(const window_rules *r, window_state *w, int64_t next_t);

#endif
