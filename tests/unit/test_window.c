/* window: the closing rules, by hand-computed cases: bootstrap and tumbling windows by count and
 * by event time, exact boundaries, gaps, late events, idle closings and realignment. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "window.h"

/* What the worker does with one event (handle_message): a time close before it, the add, a count
 * close after it. */
typedef struct {
    int closed_before; /* block closed before the event (-1: none) */
    int closed_after;  /* block closed after it (count windows) */
    bool late;
} step_result;

static step_result step(const window_rules *r, window_state *w, int64_t t)
{
    step_result s = {-1, -1, false};
    if (window_closes_before(r, w, t)) {
        s.closed_before = w->next_block;
        window_close(r, w, t);
    }
    s.late = window_add(r, w, t);
    if (window_full(r, w)) {
        s.closed_after = w->next_block;
        window_close(r, w, INT64_MIN);
    }
    return s;
}

static window_state fresh_window(void)
{
    return (window_state){.next_block = 0, .start_ms = INT64_MIN};
}

/* Bootstrap by count closes exactly at the N-th event whatever the event times, then tumbling count
 * windows close every `events` events. */
static void window_bootstrap_and_tumbling_by_count(void **state)
{
    (void)state;
    window_rules r = {.bootstrap_events = 3, .events = 2};
    window_state w = fresh_window();
    int64_t times[] = {500, 100, 99999999};
    for (int k = 0; k < 2; k++) {
        assert_false(window_closes_before(&r, &w, times[k]));
        step_result s = step(&r, &w, times[k]);
        assert_int_equal(s.closed_before, -1);
        assert_int_equal(s.closed_after, -1);
        assert_false(s.late);
        assert_false(window_full(&r, &w));
    }
    assert_int_equal(w.count, 2);
    assert_false(window_closes_before(&r, &w, INT64_MAX)); /* count windows never close on time */
    window_add(&r, &w, times[2]);
    assert_true(window_full(&r, &w));
    window_close(&r, &w, INT64_MIN);
    assert_int_equal(w.next_block, 1);
    assert_int_equal(w.count, 0);
    assert_true(w.start_ms == INT64_MIN);
    /* blocks 1, 2, 3: two events each, never late (count windows have no start) */
    int closed[6];
    for (int k = 0; k < 6; k++) {
        step_result s = step(&r, &w, 1000 - k * 100);
        assert_int_equal(s.closed_before, -1);
        assert_false(s.late);
        closed[k] = s.closed_after;
    }
    int want[6] = {-1, 1, -1, 2, -1, 3};
    assert_memory_equal(closed, want, sizeof want);
    assert_int_equal(w.next_block, 4);
    assert_int_equal(w.count, 0);
}

/* Bootstrap by time: closes before the first event at or past `until` (not one ms earlier), only
 * when it holds events; the next window is the grid window [until + j D, ...) holding that event.
 */
static void window_bootstrap_by_time(void **state)
{
    (void)state;
    window_rules r = {.bootstrap_until_ms = 1000, .duration_ms = 100};
    window_state w = fresh_window();
    assert_false(window_closes_before(&r, &w, 5000)); /* empty: never closes */
    assert_false(step(&r, &w, 10).late);
    assert_false(step(&r, &w, 999).late);
    assert_false(window_full(&r, &w));
    assert_false(window_closes_before(&r, &w, 999));
    assert_true(window_closes_before(&r, &w, 1000));
    assert_true(window_closes_before(&r, &w, 5000));
    step_result s = step(&r, &w, 1000);
    assert_int_equal(s.closed_before, 0);
    assert_int_equal(s.closed_after, -1);
    assert_false(s.late);
    assert_int_equal(w.next_block, 1);
    assert_true(w.start_ms == 1000);
    assert_int_equal(w.count, 1);
    /* block 1 = [1000, 1100) */
    assert_false(window_closes_before(&r, &w, 1099));
    assert_true(window_closes_before(&r, &w, 1100));

    /* the first event already past `until`: kept (block 0 is never empty), the next one closes it
     * and opens the grid window that holds it: 1000 + 10 * 100 = 2000 <= 2001 < 2100 */
    w = fresh_window();
    s = step(&r, &w, 2000);
    assert_int_equal(s.closed_before, -1);
    assert_int_equal(w.count, 1);
    s = step(&r, &w, 2001);
    assert_int_equal(s.closed_before, 0);
    assert_true(w.start_ms == 2000);
    assert_int_equal(w.count, 1);

    /* time bootstrap followed by count windows */
    window_rules rc = {.bootstrap_until_ms = 1000, .events = 2};
    w = fresh_window();
    step(&rc, &w, 5);
    s = step(&rc, &w, 1500);
    assert_int_equal(s.closed_before, 0);
    assert_true(w.start_ms == INT64_MIN);
    s = step(&rc, &w, 1);
    assert_int_equal(s.closed_after, 1);
    assert_false(s.late);
}

/* Tumbling time windows after a count bootstrap: the first one starts at its first event, windows
 * are [start, start + D), an event exactly at the end closes, a gap of empty windows is skipped
 * (the new window holds the event and stays on the grid), late events are kept and flagged. */
static void window_tumbling_by_time(void **state)
{
    (void)state;
    window_rules r = {.bootstrap_events = 2, .duration_ms = 100};
    window_state w = fresh_window();
    step(&r, &w, 1000);
    assert_int_equal(step(&r, &w, 1010).closed_after, 0);
    assert_true(w.start_ms == INT64_MIN); /* unknown until block 1's first event */
    assert_false(window_closes_before(&r, &w, INT64_MAX - 1));
    step_result s = step(&r, &w, 1050);
    assert_false(s.late);
    assert_true(w.start_ms == 1050); /* block 1 = [1050, 1150) */
    assert_false(step(&r, &w, 1149).late);
    assert_false(step(&r, &w, 1050).late);
    assert_false(window_full(&r, &w));
    assert_int_equal(w.count, 3);
    /* exactly at the end */
    assert_false(window_closes_before(&r, &w, 1149));
    s = step(&r, &w, 1150);
    assert_int_equal(s.closed_before, 1);
    assert_true(w.start_ms == 1150); /* block 2 = [1150, 1250) */
    assert_int_equal(w.count, 1);
    /* a gap: [1250, 1350), [1350, 1450), [1450, 1550) are empty; block 3 = [1550, 1650) */
    s = step(&r, &w, 1600);
    assert_int_equal(s.closed_before, 2);
    assert_int_equal(w.next_block, 3);
    assert_true(w.start_ms == 1550);
    assert_int_equal((w.start_ms - 1050) % 100, 0);
    /* late events: older than the open window's start, kept in it */
    s = step(&r, &w, 1500);
    assert_int_equal(s.closed_before, -1);
    assert_true(s.late);
    assert_true(step(&r, &w, 1549).late);
    assert_true(step(&r, &w, 3).late);
    assert_false(step(&r, &w, 1550).late);
    assert_false(step(&r, &w, 1649).late);
    assert_int_equal(w.count, 6);
    assert_int_equal(w.next_block, 3);
    assert_true(w.start_ms == 1550);
    assert_int_equal(step(&r, &w, 1650).closed_before, 3);
    assert_true(w.start_ms == 1650);
}

/* Idle (or buffer-bound) closings pass INT64_MIN: the next window starts where the closed one ended
 * and realigns on the grid when its first event comes much later. */
static void window_idle_close_then_realign(void **state)
{
    (void)state;
    window_rules r = {.bootstrap_events = 1, .duration_ms = 100};
    window_state w = fresh_window();
    assert_int_equal(step(&r, &w, 42).closed_after, 0);
    step(&r, &w, 1550);              /* block 1 = [1550, 1650) */
    window_close(&r, &w, INT64_MIN); /* idle */
    assert_int_equal(w.next_block, 2);
    assert_int_equal(w.count, 0);
    assert_true(w.start_ms == 1650);
    assert_false(window_closes_before(&r, &w, 100000)); /* empty: nothing to close */
    step_result s = step(&r, &w, 10000);
    assert_int_equal(s.closed_before, -1);
    assert_false(s.late);
    assert_true(w.start_ms == 9950); /* 1650 + 83 * 100 <= 10000 < 10050 */
    assert_false(window_closes_before(&r, &w, 10049));
    assert_int_equal(step(&r, &w, 10050).closed_before, 2);
    assert_true(w.start_ms == 10050);

    /* idle close, then an event inside the following window: no realignment */
    window_close(&r, &w, INT64_MIN);
    assert_true(w.start_ms == 10150);
    assert_false(step(&r, &w, 10200).late);
    assert_true(w.start_ms == 10150);
    /* idle close, then an event older than the new start: kept, late */
    window_close(&r, &w, INT64_MIN);
    assert_true(w.start_ms == 10250);
    assert_true(step(&r, &w, 10000).late);
    assert_true(w.start_ms == 10250);

    /* idle close of a time bootstrap: the next window starts at `until`, then realigns */
    window_rules rb = {.bootstrap_until_ms = 1000, .duration_ms = 100};
    w = fresh_window();
    step(&rb, &w, 10);
    window_close(&rb, &w, INT64_MIN);
    assert_int_equal(w.next_block, 1);
    assert_true(w.start_ms == 1000);
    assert_false(step(&rb, &w, 5555).late);
    assert_true(w.start_ms == 5500);

    /* idle close of a count bootstrap before it filled: time windows start at the next event */
    window_rules rcb = {.bootstrap_events = 10, .duration_ms = 100};
    w = fresh_window();
    step(&rcb, &w, 10);
    window_close(&rcb, &w, INT64_MIN);
    assert_true(w.start_ms == INT64_MIN);
    step(&rcb, &w, 777);
    assert_true(w.start_ms == 777);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(window_bootstrap_and_tumbling_by_count),
        cmocka_unit_test(window_bootstrap_by_time),
        cmocka_unit_test(window_tumbling_by_time),
        cmocka_unit_test(window_idle_close_then_realign),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
