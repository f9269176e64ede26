/* window: see window.h. */
#include "window.h"

static bool by_time(const window_rules *r, const window_state *w)
{
    return w->next_block == 0 ? r->bootstrap_events <= 0 : r->events <= 0;
}

/* End of the open event-time window; INT64_MAX while its start is unknown. */
static int64_t window_end(const window_rules *r, const window_state *w)
{
    if (w->next_block == 0)
        return r->bootstrap_until_ms;
    if (w->start_ms == INT64_MIN)
        return INT64_MAX;
    return w->start_ms > INT64_MAX - r->duration_ms ? INT64_MAX : w->start_ms + r->duration_ms;
}

bool window_closes_before(const window_rules *r, const window_state *w, int64_t t)
{
    return by_time(r, w) && w->count > 0 && t >= window_end(r, w);
}

bool window_add(const window_rules *r, window_state *w, int64_t t)
{
    if (w->next_block > 0 && r->events <= 0) {
        if (w->start_ms == INT64_MIN)
            w->start_ms = t; /* after a count bootstrap, time windows start at their first event */
        else if (w->count == 0 && t >= window_end(r, w))
            w->start_ms +=
                (t - w->start_ms) / r->duration_ms * r->duration_ms; /* after an idle gap */
    }
    w->count++;
    return w->next_block > 0 && r->events <= 0 && t < w->start_ms;
}

bool window_full(const window_rules *r, const window_state *w)
{
    if (by_time(r, w))
        return false;
    return w->count >= (w->next_block == 0 ? r->bootstrap_events : r->events);
}

void window_close(const window_rules *r, window_state *w, int64_t next_t)
{
    int64_t end = by_time(r, w) ? window_end(r, w) : INT64_MIN;
    w->next_block++;
    w->count = 0;
    if (r->events > 0) {
        w->start_ms = INT64_MIN;
        return;
    }
    /* the next window is an event-time one */
    if (end == INT64_MIN || end == INT64_MAX) {
        w->start_ms = next_t; /* unknown until its first event (INT64_MIN if none yet) */
        return;
    }
    w->start_ms = end;
    if (next_t != INT64_MIN && next_t >= end) {
        /* skip the empty windows of a gap: open the one that holds next_t */
        int64_t skip = (next_t - end) / r->duration_ms;
        w->start_ms = end + skip * r->duration_ms;
    }
}
