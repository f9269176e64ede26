/* Worker parts, each checked by hand-computed cases:
 *   window         bootstrap and tumbling windows by count and by event time: exact boundaries,
 *                  gaps, late events, idle closings and realignment;
 *   idmap          rows in first-appearance order, growth, stable id pointers, long and colliding ids;
 *   model          the holdout split, pending offsets, block building, restoring from a checkpoint;
 *   worker_config  the shipped INI files, FILE:LINE errors naming section.key, the kafka.*
 *                  passthrough checked by librdkafka, -X overrides, cross-key checks, secrets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <unistd.h>

#include "checkpoint.h"
#include "idmap.h"
#include "model.h"
#include "sparse.h"
#include "state.h"
#include "metrics.h"
#include "window.h"
#include "worker_config.h"

/* ------------------------------------------------------------------------------------------ */
/* window */

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

static window_state fresh_window(void) { return (window_state){.next_block = 0, .start_ms = INT64_MIN}; }

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
 * when it holds events; the next window is the grid window [until + j D, ...) holding that event. */
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
    assert_true(w.start_ms == 1050);      /* block 1 = [1050, 1150) */
    assert_false(step(&r, &w, 1149).late);
    assert_false(step(&r, &w, 1050).late);
    assert_false(window_full(&r, &w));
    assert_int_equal(w.count, 3);
    /* exactly at the end */
    assert_false(window_closes_before(&r, &w, 1149));
    s = step(&r, &w, 1150);
    assert_int_equal(s.closed_before, 1);
    assert_true(w.start_ms == 1150);      /* block 2 = [1150, 1250) */
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
    step(&r, &w, 1550);                   /* block 1 = [1550, 1650) */
    window_close(&r, &w, INT64_MIN);      /* idle */
    assert_int_equal(w.next_block, 2);
    assert_int_equal(w.count, 0);
    assert_true(w.start_ms == 1650);
    assert_false(window_closes_before(&r, &w, 100000)); /* empty: nothing to close */
    step_result s = step(&r, &w, 10000);
    assert_int_equal(s.closed_before, -1);
    assert_false(s.late);
    assert_true(w.start_ms == 9950);      /* 1650 + 83 * 100 <= 10000 < 10050 */
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

/* ------------------------------------------------------------------------------------------ */
/* idmap */

/* Rows are given in order of first appearance; find never adds. */
static void idmap_add_find_order(void **state)
{
    (void)state;
    idmap m;
    idmap_init(&m);
    assert_int_equal(idmap_find(&m, "x"), -1); /* empty map */
    const char *seq[] = {"x", "y", "x", "z", "y", ""};
    int want_row[] = {0, 1, 0, 2, 1, 3}, want_added[] = {1, 1, 0, 1, 0, 1};
    for (int k = 0; k < 6; k++) {
        int added = -1;
        assert_int_equal(idmap_add(&m, seq[k], &added), want_row[k]);
        assert_int_equal(added, want_added[k]);
    }
    assert_int_equal(m.n, 4);
    assert_string_equal(idmap_id(&m, 0), "x");
    assert_string_equal(idmap_id(&m, 1), "y");
    assert_string_equal(idmap_id(&m, 2), "z");
    assert_string_equal(idmap_id(&m, 3), "");
    assert_int_equal(idmap_find(&m, "z"), 2);
    assert_int_equal(idmap_find(&m, ""), 3);
    assert_int_equal(idmap_find(&m, "w"), -1);
    assert_int_equal(idmap_find(&m, "xx"), -1);
    assert_int_equal(m.n, 4);
    idmap_free(&m);
    assert_int_equal(m.n, 0);
}

/* 200k ids: many rehashes (1024 -> 512k slots) and arena blocks; every id keeps its row, the table
 * stays at most half full, and strings taken before the growth are still valid and unchanged. */
static void idmap_growth_and_stable_snapshot(void **state)
{
    (void)state;
    enum { N = 200000, EARLY = 10 };
    idmap m;
    idmap_init(&m);
    char id[32];
    int added;
    for (int k = 0; k < EARLY; k++) {
        snprintf(id, sizeof id, "user-%d", k);
        assert_int_equal(idmap_add(&m, id, &added), k);
    }
    const char **snap = idmap_snapshot(&m, EARLY);
    assert_non_null(snap);
    const char *early0 = idmap_id(&m, 0);
    for (int k = EARLY; k < N; k++) {
        snprintf(id, sizeof id, "user-%d", k);
        assert_int_equal(idmap_add(&m, id, &added), k);
        assert_int_equal(added, 1);
    }
    assert_int_equal(m.n, N);
    assert_true(m.n_slots >= 2 * (size_t)N);
    assert_true(m.n_slots >= 1024 * 256); /* grew through 9 rehashes at least */
    for (int k = 0; k < N; k++) {
        snprintf(id, sizeof id, "user-%d", k);
        assert_int_equal(idmap_find(&m, id), k);
        assert_string_equal(idmap_id(&m, k), id);
    }
    assert_int_equal(idmap_add(&m, "user-123456", &added), 123456);
    assert_int_equal(added, 0);
    assert_int_equal(idmap_find(&m, "user-200000"), -1);
    /* the snapshot taken at 10 rows: same pointers as the map's, strings unchanged (ASan would
     * catch a moved or freed string) */
    for (int k = 0; k < EARLY; k++) {
        snprintf(id, sizeof id, "user-%d", k);
        assert_string_equal(snap[k], id);
        assert_ptr_equal(snap[k], idmap_id(&m, k));
    }
    assert_ptr_equal(early0, idmap_id(&m, 0));
    free(snap);
    const char **all = idmap_snapshot(&m, N);
    assert_non_null(all);
    assert_string_equal(all[N - 1], "user-199999");
    free(all);
    idmap_free(&m);
}

/* Ids longer than an arena block (1 MiB) get their own block; ids that differ only in the last byte
 * are distinct; short ids added afterwards still work. */
static void idmap_long_ids(void **state)
{
    (void)state;
    size_t big = (1u << 20) + 17;
    char *a = malloc(big + 1), *b = malloc(big + 1), *c = malloc(5001);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    memset(a, 'q', big);
    a[big] = '\0';
    memcpy(b, a, big + 1);
    b[big - 1] = 'r';
    memset(c, 'z', 5000);
    c[5000] = '\0';
    idmap m;
    idmap_init(&m);
    int added;
    assert_int_equal(idmap_add(&m, "short", &added), 0);
    assert_int_equal(idmap_add(&m, a, &added), 1);
    assert_int_equal(idmap_add(&m, b, &added), 2);
    assert_int_equal(idmap_add(&m, c, &added), 3);
    assert_int_equal(idmap_add(&m, "after", &added), 4);
    assert_int_equal(idmap_add(&m, a, &added), 1);
    assert_int_equal(added, 0);
    assert_int_equal(idmap_find(&m, b), 2);
    assert_int_equal(idmap_find(&m, c), 3);
    assert_int_equal(strlen(idmap_id(&m, 1)), big);
    assert_string_equal(idmap_id(&m, 2), b);
    assert_string_equal(idmap_id(&m, 0), "short");
    assert_string_equal(idmap_id(&m, 4), "after");
    c[4999] = 'y';
    assert_int_equal(idmap_find(&m, c), -1);
    idmap_free(&m);
    free(a), free(b), free(c);
}

/* idmap.c's hash, copied, to build ids that share their home slot. */
static uint64_t idmap_hash_copy(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ULL;
    h ^= h >> 32;
    return h;
}

/* Ids whose hashes agree in the low 16 bits (the same home slot up to 64k slots) are told apart by
 * comparing strings along the probe sequence; an absent id with the same home slot is not found. */
static void idmap_colliding_ids(void **state)
{
    (void)state;
    enum { G = 8 };
    char group[G + 1][32];
    int found = 0;
    uint64_t want = idmap_hash_copy("k0") & 0xffff;
    snprintf(group[found++], sizeof group[0], "k0");
    for (int k = 1; found < G + 1 && k < 50000000; k++) {
        char id[32];
        snprintf(id, sizeof id, "k%d", k);
        if ((idmap_hash_copy(id) & 0xffff) == want)
            snprintf(group[found++], sizeof group[0], "%s", id);
    }
    assert_int_equal(found, G + 1);
    idmap m;
    idmap_init(&m);
    int added;
    for (int k = 0; k < G; k++)
        assert_int_equal(idmap_add(&m, group[k], &added), k);
    /* the copy of the hash is idmap's: the group sits in consecutive slots from its home slot */
    size_t mask = m.n_slots - 1, home = (size_t)want & mask;
    assert_int_equal(m.n_slots, 1024);
    for (int k = 0; k < G; k++)
        assert_int_equal(m.slots[(home + (size_t)k) & mask], k + 1);
    for (int k = 0; k < G; k++)
        assert_int_equal(idmap_find(&m, group[k]), k);
    assert_int_equal(idmap_find(&m, group[G]), -1);
    /* grow past several rehashes (still colliding below 64k slots), then check again */
    char id[32];
    for (int k = 0; k < 20000; k++) {
        snprintf(id, sizeof id, "filler-%d", k);
        assert_int_equal(idmap_add(&m, id, &added), G + k);
    }
    assert_true(m.n_slots == 65536);
    for (int k = 0; k < G; k++) {
        assert_int_equal(idmap_find(&m, group[k]), k);
        assert_int_equal(idmap_add(&m, group[k], &added), k);
        assert_int_equal(added, 0);
    }
    assert_int_equal(idmap_find(&m, group[G]), -1);
    assert_int_equal(idmap_add(&m, group[G], &added), G + 20000);
    idmap_free(&m);
}

/* ------------------------------------------------------------------------------------------ */
/* model */

/* The holdout is a pure function of (user, item, seed): deterministic, seed-dependent, split
 * (1 - f, f/2, f/2) over many pairs, and fraction 0 holds nothing out. */
static void model_holdout_split(void **state)
{
    (void)state;
    enum { N = 100000 };
    const double f = 0.2;
    int count[3] = {0, 0, 0}, seed_diff = 0;
    char u[32], i[32];
    for (int k = 0; k < N; k++) {
        snprintf(u, sizeof u, "user%d", k % 997);
        snprintf(i, sizeof i, "item%d", k / 997 * 7 + k % 13);
        int h = model_holdout(u, i, 0, f);
        assert_true(h >= 0 && h <= 2);
        assert_int_equal(model_holdout(u, i, 0, f), h);
        count[h]++;
        seed_diff += model_holdout(u, i, 12345, f) != h;
        assert_int_equal(model_holdout(u, i, 0, 0.0), 0);
        assert_int_equal(model_holdout(u, i, 99, 0.0), 0);
    }
    /* binomial standard deviations: ~126 (train), ~95 (valid, test); allow about 6 of them */
    assert_in_range(count[0], 80000 - 750, 80000 + 750);
    assert_in_range(count[1], 10000 - 600, 10000 + 600);
    assert_in_range(count[2], 10000 - 600, 10000 + 600);
    /* another seed: independent decisions, P(differ) = 1 - (0.8^2 + 2 * 0.1^2) = 0.34 */
    assert_in_range(seed_diff, 34000 - 1000, 34000 + 1000);
    /* user \x1f item is not user + item: ("ab", "c") and ("a", "bc") are different pairs */
    int differ = 0;
    for (int k = 0; k < 200; k++) {
        char u2[40];
        snprintf(u, sizeof u, "u%d", k);
        snprintf(i, sizeof i, "%dx", k);
        snprintf(u2, sizeof u2, "u%d%d", k, k); /* u2 + "x" == u + i */
        differ += model_holdout(u, i, 1, 0.5) != model_holdout(u2, "x", 1, 0.5);
    }
    assert_true(differ > 80); /* P(differ) = 1 - (0.5^2 + 2 * 0.25^2) = 0.625: ~125 of 200 */
}

static model_event ev(int32_t user, int32_t item, int32_t part, int32_t holdout, int64_t offset)
{
    return (model_event){.user = user, .item = item, .part = part, .holdout = holdout, .offset = offset};
}

/* Parts are found or added; the first pending offset of a part is the oldest one still buffered,
 * closed windows first, then the open window; -1 when the part has nothing pending. */
static void model_pending_offsets(void **state)
{
    (void)state;
    char err[256];
    model *m = model_new("m", NULL, err, sizeof err);
    assert_non_null(m);
    assert_int_equal(m->win.next_block, 0);
    assert_true(m->win.start_ms == INT64_MIN);
    assert_int_equal(model_part_index(m, "t", 0), 0);
    assert_int_equal(model_part_index(m, "t", 1), 1);
    assert_int_equal(model_part_index(m, "t", 0), 0);
    assert_int_equal(model_part_index(m, "u", 0), 2);
    assert_int_equal(m->n_parts, 3);
    assert_true(m->parts[2].durable_next == 0);
    assert_true(model_first_pending(m, 0) == -1);
    assert_true(model_buffered(m) == 0);

    m->users.n = 2, m->items.n = 3; /* only the sizes are read when a window closes */
    model_event e[] = {ev(0, 0, 0, 0, 10), ev(1, 1, 0, 0, 11), ev(0, 2, 1, 0, 5)};
    for (int k = 0; k < 3; k++)
        assert_int_equal(model_push(m, &e[k]), 0);
    assert_true(model_first_pending(m, 0) == 10);
    assert_int_equal(model_close_window(m, 0, 777, "count"), 0);
    m->users.n = 0, m->items.n = 0;
    assert_true(m->n_ev == 0);
    assert_non_null(m->closed);
    assert_ptr_equal(m->closed, m->closed_tail);
    assert_int_equal(m->closed->block, 0);
    assert_true(m->closed->n_ev == 3);
    assert_int_equal(m->closed->n_users, 2);
    assert_int_equal(m->closed->n_items, 3);
    assert_true(m->closed->window_start_after == 777);
    assert_string_equal(m->closed->reason, "count");
    assert_true(m->closed->ev[2].offset == 5);

    model_event f[] = {ev(1, 0, 0, 2, 12), ev(1, 1, 1, 1, 6)};
    for (int k = 0; k < 2; k++)
        assert_int_equal(model_push(m, &f[k]), 0);
    assert_true(model_first_pending(m, 0) == 10);
    assert_true(model_first_pending(m, 1) == 5);
    assert_true(model_first_pending(m, 2) == -1);
    assert_true(model_buffered(m) == 5);

    /* the trainer folds block 0 in (what the worker does when the job is done) */
    closed_window *cw = m->closed;
    m->closed = cw->next;
    if (!m->closed)
        m->closed_tail = NULL;
    free(cw->ev);
    free(cw);
    assert_true(model_first_pending(m, 0) == 12);
    assert_true(model_first_pending(m, 1) == 6);
    assert_true(model_buffered(m) == 2);

    /* block 1 closed, more in the open window: closed ones still come first */
    assert_int_equal(model_close_window(m, 1, INT64_MIN, "idle"), 0);
    model_event g = ev(0, 0, 0, 0, 13);
    assert_int_equal(model_push(m, &g), 0);
    assert_true(model_first_pending(m, 0) == 12);
    assert_true(model_buffered(m) == 3);
    /* an empty window can be closed too (callers check) */
    assert_int_equal(model_close_window(m, 2, 0, "time"), 0);
    assert_int_equal(model_close_window(m, 3, 0, "time"), 0);
    assert_true(m->closed_tail->n_ev == 0);
    assert_int_equal(m->closed->next->block, 2);
    assert_true(model_first_pending(m, 0) == 12);
    assert_true(model_first_pending(m, 2) == -1);
    assert_true(model_buffered(m) == 3);
    /* many events: the open window grows past its first allocation */
    for (int k = 0; k < 10000; k++) {
        model_event h = ev(0, 0, 2, 0, 1000 + k);
        assert_int_equal(model_push(m, &h), 0);
    }
    assert_true(model_first_pending(m, 2) == 1000);
    assert_true(model_buffered(m) == 10003);
    model_free(m);
}

/* A hand-made closed window: train pairs deduplicated (n_train_lines counts the raw ones), valid and
 * test from holdout 1 and 2, active users = every user of the window, active items = items with a
 * train pair. */
static void model_build_block_by_hand(void **state)
{
    (void)state;
    model_event e[] = {
        ev(0, 0, 0, 0, 1), ev(0, 0, 0, 0, 2), ev(1, 2, 0, 0, 3), ev(0, 3, 0, 1, 4),
        ev(2, 1, 0, 2, 5), ev(3, 4, 0, 1, 6), ev(1, 2, 0, 0, 7), ev(2, 0, 0, 0, 8),
    };
    closed_window cw = {.block = 2, .ev = e, .n_ev = 8, .n_users = 5, .n_items = 5, .reason = "count"};
    ccd_block b;
    assert_int_equal(model_build_block(&cw, 2, 3, &b), 0);
    assert_int_equal(b.index, 2);
    assert_int_equal(b.n_users, 5);
    assert_int_equal(b.n_items, 5);
    assert_int_equal(b.prev_users, 2);
    assert_int_equal(b.prev_items, 3);
    assert_true(b.n_train_lines == 5);
    /* train: (0,0) (1,2) (2,0) */
    assert_int_equal(b.train.n_rows, 5);
    assert_int_equal(b.train.n_cols, 5);
    assert_true(b.train.nnz == 3);
    int64_t want_ptr[6] = {0, 1, 2, 3, 3, 3};
    assert_memory_equal(b.train.indptr, want_ptr, sizeof want_ptr);
    int want_idx[3] = {0, 2, 0};
    assert_memory_equal(b.train.indices, want_idx, sizeof want_idx);
    /* valid: (0,3) (3,4); test: (2,1) */
    assert_true(b.valid.nnz == 2);
    assert_true(ccd_csr_contains(&b.valid, 0, 3));
    assert_true(ccd_csr_contains(&b.valid, 3, 4));
    assert_false(ccd_csr_contains(&b.valid, 2, 1));
    assert_true(b.test.nnz == 1);
    assert_true(ccd_csr_contains(&b.test, 2, 1));
    assert_int_equal(b.valid.n_rows, 5);
    assert_int_equal(b.test.n_cols, 5);
    /* users 0..3 (user 3 has only a valid pair; user 4 is not in the window) */
    assert_int_equal(b.n_active_users, 4);
    int want_users[4] = {0, 1, 2, 3};
    assert_memory_equal(b.users, want_users, sizeof want_users);
    /* items with a train pair: 0, 2 (1, 3, 4 are held out only) */
    assert_int_equal(b.n_active_items, 2);
    int want_items[2] = {0, 2};
    assert_memory_equal(b.items, want_items, sizeof want_items);
    model_block_free(&b);
    assert_null(b.users);

    /* an empty window builds an empty block */
    closed_window empty = {.block = 0, .n_users = 0, .n_items = 0};
    assert_int_equal(model_build_block(&empty, 0, 0, &b), 0);
    assert_int_equal(b.n_active_users, 0);
    assert_int_equal(b.n_active_items, 0);
    assert_true(b.train.nnz == 0 && b.n_train_lines == 0);
    model_block_free(&b);
}

static char *xstrdup(const char *s)
{
    char *d = malloc(strlen(s) + 1);
    assert_non_null(d);
    strcpy(d, s);
    return d;
}

/* A real engine state after block 0 over 3 users and 2 items (one MF teacher of dim 2, student
 * dim 2), serialised into a checkpoint with ids, three partitions and windowing state. */
static void make_restorable(checkpoint *c, const char *const *users, int n_users, const char *const *items,
                            int n_items)
{
    ccd_state st;
    ccd_state_init(&st);
    st.block = 0;
    st.n_users = 3;
    st.n_items = 2;
    st.n_teachers = 1;
    st.teacher_spec[0] = (ccd_teacher_spec){.type = CCD_MODEL_MF, .dim = 2, .seed = 7};
    st.student_dim = 2;
    st.teacher[0] = malloc(10 * sizeof(float));
    st.student = malloc(10 * sizeof(float));
    st.distilled = malloc(10 * sizeof(float));
    assert_non_null(st.teacher[0]);
    assert_non_null(st.student);
    assert_non_null(st.distilled);
    for (int k = 0; k < 10; k++) {
        st.teacher[0][k] = 0.5f * (float)k;
        st.student[k] = -0.25f * (float)k;
        st.distilled[k] = 1.0f + (float)k;
    }
    int ru[3] = {0, 1, 2}, ri[3] = {0, 1, 0};
    assert_int_equal(ccd_csr_from_pairs(&st.train, 3, 2, ru, ri, 3), 0);
    st.active_users = malloc(3 * sizeof(int));
    st.active_items = malloc(2 * sizeof(int));
    assert_non_null(st.active_users);
    assert_non_null(st.active_items);
    memcpy(st.active_users, ru, 3 * sizeof(int));
    st.active_items[0] = 0, st.active_items[1] = 1;
    st.n_active_users = 3;
    st.n_active_items = 2;

    checkpoint_init(c);
    snprintf(c->model, sizeof c->model, "m1");
    c->block = 0;
    c->window_start_ms = 1234000;
    c->events_total = 77;
    c->published_version = 3;
    assert_int_equal(ccd_state_serialize(&st, &c->state, &c->state_len), 0);
    ccd_state_free(&st);
    c->n_users = n_users;
    c->user_ids = calloc((size_t)n_users + 1, sizeof *c->user_ids);
    assert_non_null(c->user_ids);
    for (int k = 0; k < n_users; k++)
        c->user_ids[k] = xstrdup(users[k]);
    c->n_items = n_items;
    c->item_ids = calloc((size_t)n_items + 1, sizeof *c->item_ids);
    assert_non_null(c->item_ids);
    for (int k = 0; k < n_items; k++)
        c->item_ids[k] = xstrdup(items[k]);
    c->n_offsets = 3;
    c->offsets = calloc(3, sizeof *c->offsets);
    assert_non_null(c->offsets);
    const char *topics[3] = {"t", "t", "other"};
    int32_t parts[3] = {0, 1, 3};
    int64_t next[3] = {100, 50, 7};
    for (int k = 0; k < 3; k++) {
        snprintf(c->offsets[k].topic, sizeof c->offsets[k].topic, "%s", topics[k]);
        c->offsets[k].partition = parts[k];
        c->offsets[k].next_offset = next[k];
    }
}

/* model_new from a checkpoint restores the engine state, the id maps in row order, the parts with
 * their durable offsets, the windowing state (next block, open window start) and the counters. */
static void model_restores_from_checkpoint(void **state)
{
    (void)state;
    const char *users[] = {"alice", "bob", "carol"}, *items[] = {"x", "y"};
    checkpoint c;
    make_restorable(&c, users, 3, items, 2);
    char err[512];
    model *m = model_new("m1", &c, err, sizeof err);
    if (!m)
        fail_msg("model_new: %s", err);
    assert_string_equal(m->id, "m1");
    assert_int_equal(m->state.block, 0);
    assert_int_equal(m->state.n_users, 3);
    assert_int_equal(m->state.n_items, 2);
    assert_int_equal(m->state.teacher_spec[0].dim, 2);
    assert_true(m->state.student[9] == -2.25f);
    assert_true(m->state.teacher[0][3] == 1.5f);
    assert_true(m->state.train.nnz == 3);
    assert_int_equal(m->users.n, 3);
    assert_int_equal(m->items.n, 2);
    assert_int_equal(idmap_find(&m->users, "bob"), 1);
    assert_int_equal(idmap_find(&m->users, "carol"), 2);
    assert_string_equal(idmap_id(&m->users, 0), "alice");
    assert_string_equal(idmap_id(&m->items, 1), "y");
    int added;
    assert_int_equal(idmap_add(&m->users, "dave", &added), 3); /* new ids continue the rows */
    assert_int_equal(m->n_parts, 3);
    assert_string_equal(m->parts[2].topic, "other");
    assert_int_equal(m->parts[2].partition, 3);
    assert_true(m->parts[0].durable_next == 100);
    assert_true(m->parts[1].durable_next == 50);
    assert_true(m->parts[2].durable_next == 7);
    assert_int_equal(model_part_index(m, "t", 1), 1);
    assert_int_equal(model_part_index(m, "other", 3), 2);
    assert_int_equal(model_part_index(m, "t", 3), 3);
    assert_true(m->parts[3].durable_next == 0);
    assert_int_equal(m->win.next_block, 1);
    assert_true(m->win.start_ms == 1234000);
    assert_true(m->win.count == 0);
    assert_true(m->events_total == 77);
    assert_true(m->published_version == 3);
    assert_true(model_buffered(m) == 0);
    assert_true(model_first_pending(m, 0) == -1);
    assert_false(m->busy);
    model_free(m);
    checkpoint_free(&c);
}

/* A checkpoint whose id maps disagree with its state (counts, block) or hold a duplicate id, or
 * whose state bytes are corrupted, is refused with a message. */
static void model_refuses_inconsistent_checkpoint(void **state)
{
    (void)state;
    char err[512];
    checkpoint c;
    const char *users4[] = {"alice", "bob", "carol", "dan"}, *users3[] = {"alice", "bob", "carol"};
    const char *items[] = {"x", "y"}, *items1[] = {"x"};

    make_restorable(&c, users4, 4, items, 2);
    err[0] = '\0';
    assert_null(model_new("m1", &c, err, sizeof err));
    assert_non_null(strstr(err, "m1"));
    assert_non_null(strstr(err, "does not match"));
    assert_non_null(strstr(err, "4 users"));
    checkpoint_free(&c);

    make_restorable(&c, users3, 3, items1, 1);
    err[0] = '\0';
    assert_null(model_new("m1", &c, err, sizeof err));
    assert_non_null(strstr(err, "1 items"));
    checkpoint_free(&c);

    make_restorable(&c, users3, 3, items, 2);
    c.block = 1;
    err[0] = '\0';
    assert_null(model_new("m1", &c, err, sizeof err));
    assert_non_null(strstr(err, "block 1"));
    checkpoint_free(&c);

    const char *dup[] = {"alice", "bob", "alice"};
    make_restorable(&c, dup, 3, items, 2);
    err[0] = '\0';
    assert_null(model_new("m1", &c, err, sizeof err));
    assert_non_null(strstr(err, "duplicate"));
    checkpoint_free(&c);

    make_restorable(&c, users3, 3, items, 2);
    c.state[c.state_len - 1] ^= 0x40;
    err[0] = '\0';
    assert_null(model_new("m1", &c, err, sizeof err));
    assert_true(err[0] != '\0');
    checkpoint_free(&c);
}

/* ------------------------------------------------------------------------------------------ */
/* worker_config */

static const char *config_path(const char *name)
{
    static char buf[1024];
    const char *d = getenv("CCD_CONFIG_DIR");
    snprintf(buf, sizeof buf, "%s/%s", d ? d : "configs", name);
    return buf;
}

/* A temporary INI file with the given text; path in buf. */
static void write_ini(char *path, size_t pathlen, const char *text)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(path, pathlen, "%s/ccd-wcfg-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t n = strlen(text);
    assert_true(write(fd, text, n) == (ssize_t)n);
    close(fd);
}

static const char *kafka_value(const worker_config *w, const char *key)
{
    for (int k = 0; k < w->n_kafka; k++)
        if (!strcmp(w->kafka[k].key, key))
            return w->kafka[k].value;
    return NULL;
}

/* The shipped configs load, pass the cross-key checks, and put their values where they belong. */
static void wcfg_shipped_files(void **state)
{
    (void)state;
    char err[1024];
    worker_config w;
    worker_config_init(&w);
    if (worker_config_load(&w, config_path("worker.ini"), err, sizeof err) != 0)
        fail_msg("worker.ini: %s", err);
    if (worker_config_check(&w, err, sizeof err) != 0)
        fail_msg("worker.ini: %s", err);
    assert_int_equal(w.n_kafka, 2);
    assert_string_equal(kafka_value(&w, "bootstrap.servers"), "127.0.0.1:9092");
    assert_string_equal(kafka_value(&w, "group.id"), "ccd-worker");
    assert_int_equal(w.n_topics, 1);
    assert_string_equal(w.topics[0], "interactions");
    assert_string_equal(w.format, "auto");
    assert_string_equal(w.dead_letter_topic, "interactions.dlq");
    assert_string_equal(w.default_model, "");
    assert_true(w.max_buffered_events == 2000000);
    assert_true(w.bootstrap_events == 100000);
    assert_true(w.bootstrap_until_ms == INT64_MIN);
    assert_true(w.window_events == 20000);
    assert_true(w.window_duration_ms == 0);
    assert_true(w.idle_ms == 30000);
    assert_true(w.holdout_fraction == 0.1);
    assert_int_equal(w.ccd.n_teachers, 3);
    assert_int_equal(w.ccd.teachers[2].type, CCD_MODEL_MF);
    assert_int_equal(w.ccd.student_dim, 8);
    assert_string_equal(w.redis_password, "");
    assert_true(w.redis_publish);
    assert_int_equal(w.checkpoint_keep, 2);
    assert_int_equal(w.log_level, 2);
    assert_true(w.train);
    worker_config_free(&w);

    worker_config_init(&w);
    if (worker_config_load(&w, config_path("yelp-replay.ini"), err, sizeof err) != 0)
        fail_msg("yelp-replay.ini: %s", err);
    if (worker_config_check(&w, err, sizeof err) != 0)
        fail_msg("yelp-replay.ini: %s", err);
    assert_string_equal(kafka_value(&w, "group.id"), "ccd-yelp");
    assert_string_equal(w.topics[0], "yelp");
    assert_string_equal(w.dead_letter_topic, "yelp.dlq");
    assert_true(w.max_buffered_events == 1000000);
    assert_true(w.bootstrap_events == 0);
    assert_true(w.bootstrap_until_ms == 1600086400000LL);
    assert_true(w.window_events == 0);
    assert_true(w.window_duration_ms == 86400000);
    assert_true(w.idle_ms == 10000);
    assert_int_equal(w.ccd.n_teachers, 5);
    assert_int_equal(w.ccd.teachers[4].type, CCD_MODEL_LIGHTGCN);
    assert_int_equal(w.ccd.teachers[4].dim, 128);
    assert_int_equal(w.ccd.teachers[4].seed, 4);
    assert_int_equal(w.ccd.base.epochs, 10);
    assert_int_equal(w.ccd.base.patience, 0);
    assert_int_equal(w.redis_keep_versions, 10);
    assert_string_equal(w.checkpoint_dir, "checkpoints/yelp");
    worker_config_free(&w);
}

/* Load text as an INI file; returns the error (or "" on success) and the file's path. */
static int load_text(worker_config *w, const char *text, char *err, size_t errlen, char *path, size_t pathlen)
{
    write_ini(path, pathlen, text);
    err[0] = '\0';
    int r = worker_config_load(w, path, err, errlen);
    unlink(path);
    return r;
}

static void assert_contains(const char *hay, const char *needle)
{
    if (!strstr(hay, needle))
        fail_msg("'%s' does not contain '%s'", hay, needle);
}

/* Errors in a file name FILE:LINE and section.key: unknown section, unknown key, bad value, a kafka
 * key librdkafka does not know, a syntax error. */
static void wcfg_file_errors(void **state)
{
    (void)state;
    static const struct {
        const char *text, *line, *names;
    } cases[] = {
        {"[window]\nevents = 10\nevnets = 5\n", ":3: ", "window.evnets"},
        {"[input]\ntopics = a\n\n[bogus]\nkey = 1\n", ":5: ", "bogus.key"},
        {"[redis]\nport = 70000\n", ":2: ", "redis.port"},
        {"[window]\nevents = ten\n", ":2: ", "window.events"},
        {"[holdout]\nfraction = 1.0\n", ":2: ", "holdout.fraction"},
        {"[input]\nformat = json\n", ":2: ", "input.format"},
        {"[log]\nlevel = verbose\n", ":2: ", "log.level"},
        {"[kafka]\nbootstrap.servers = h:1\nno.such.property = 1\n", ":3: ", "kafka.no.such.property"},
        {"[kafka]\nsecurity.protocol = carrier_pigeon\n", ":2: ", "kafka.security.protocol"},
        {"[ccd]\nstudent_dim = -3\n", ":2: ", "ccd.student_dim"},
        {"[ccd.student]\nepohcs = 3\n", ":2: ", "ccd.student.epohcs"},
        {"[window]\nthis line has no equals sign\n", ":2: ", "syntax error"},
    };
    char err[1024], path[512];
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        worker_config w;
        worker_config_init(&w);
        assert_int_equal(load_text(&w, cases[k].text, err, sizeof err, path, sizeof path), -1);
        assert_true(!strncmp(err, path, strlen(path)));
        assert_contains(err + strlen(path), cases[k].line);
        assert_contains(err, cases[k].names);
        worker_config_free(&w);
    }
    /* a missing file */
    worker_config w;
    worker_config_init(&w);
    assert_int_equal(worker_config_load(&w, "/nonexistent/dir/x.ini", err, sizeof err), -1);
    assert_contains(err, "/nonexistent/dir/x.ini");
    worker_config_free(&w);
}

/* kafka.* keys are validated by librdkafka and kept verbatim (dotted keys, enum values, secrets);
 * a later value for the same key replaces the earlier one. */
static void wcfg_kafka_passthrough(void **state)
{
    (void)state;
    char err[1024], path[512];
    worker_config w;
    worker_config_init(&w);
    assert_int_equal(load_text(&w,
                               "[kafka]\nbootstrap.servers = b1:9092,b2:9092\nsecurity.protocol = SASL_SSL\n"
                               "sasl.mechanisms = SCRAM-SHA-512\nsasl.username = svc\nsasl.password = p@ss.w=rd\n"
                               "session.timeout.ms = 45000\n",
                               err, sizeof err, path, sizeof path),
                     0);
    assert_int_equal(w.n_kafka, 6);
    assert_string_equal(w.kafka[0].key, "bootstrap.servers");
    assert_string_equal(w.kafka[0].value, "b1:9092,b2:9092");
    assert_string_equal(kafka_value(&w, "security.protocol"), "SASL_SSL");
    assert_string_equal(kafka_value(&w, "sasl.mechanisms"), "SCRAM-SHA-512");
    assert_string_equal(kafka_value(&w, "sasl.password"), "p@ss.w=rd");
    assert_string_equal(kafka_value(&w, "session.timeout.ms"), "45000");

    /* -X: everything after "kafka." is the key, everything after the first '=' the value */
    assert_int_equal(worker_config_override(&w, "kafka.sasl.password=x.y=z", err, sizeof err), 0);
    assert_string_equal(kafka_value(&w, "sasl.password"), "x.y=z");
    assert_int_equal(worker_config_override(&w, "kafka.client.id=ccd-worker-1", err, sizeof err), 0);
    assert_string_equal(kafka_value(&w, "client.id"), "ccd-worker-1");
    assert_int_equal(w.n_kafka, 7);
    assert_null(kafka_value(&w, "sasl"));
    assert_null(kafka_value(&w, "password"));

    /* librdkafka refuses: unknown key, bad enum value, bad integer; nothing is stored */
    assert_int_equal(worker_config_override(&w, "kafka.bogus.key=1", err, sizeof err), -1);
    assert_contains(err, "kafka.bogus.key");
    assert_int_equal(worker_config_override(&w, "kafka.security.protocol=TLS", err, sizeof err), -1);
    assert_contains(err, "kafka.security.protocol");
    assert_int_equal(worker_config_override(&w, "kafka.session.timeout.ms=soon", err, sizeof err), -1);
    assert_contains(err, "kafka.session.timeout.ms");
    assert_int_equal(worker_config_set(&w, "kafka", "group.idd", "g", err, sizeof err), -1);
    assert_contains(err, "kafka.group.idd");
    assert_int_equal(w.n_kafka, 7);
    assert_string_equal(kafka_value(&w, "security.protocol"), "SASL_SSL");
    assert_string_equal(kafka_value(&w, "session.timeout.ms"), "45000");
    assert_int_equal(worker_config_override(&w, "kafka.=1", err, sizeof err), -1);
    worker_config_free(&w);
}

/* -X overrides: section.key=value with the last dot before '=' splitting (ccd.student.epochs), the
 * dotted input.schema.<id> key, replacement of earlier values, and malformed assignments. */
static void wcfg_overrides(void **state)
{
    (void)state;
    char err[1024];
    worker_config w;
    worker_config_init(&w);
    assert_int_equal(worker_config_override(&w, "input.schema.5=schemas/v5.avsc", err, sizeof err), 0);
    assert_int_equal(worker_config_override(&w, "input.schema.12=/abs/v12.avsc", err, sizeof err), 0);
    assert_int_equal(worker_config_override(&w, "input.schema.5=schemas/v5b.avsc", err, sizeof err), 0);
    assert_int_equal(w.n_schemas, 2);
    assert_int_equal(w.schema_ids[0], 5);
    assert_string_equal(w.schema_paths[0], "schemas/v5b.avsc");
    assert_int_equal(w.schema_ids[1], 12);
    assert_string_equal(w.schema_paths[1], "/abs/v12.avsc");
    assert_int_equal(worker_config_override(&w, "input.schema.x=a.avsc", err, sizeof err), -1);
    assert_contains(err, "input.schema.x");
    assert_int_equal(worker_config_override(&w, "input.schema.-1=a.avsc", err, sizeof err), -1);
    assert_int_equal(worker_config_override(&w, "input.schema.3=", err, sizeof err), -1);
    assert_int_equal(w.n_schemas, 2);

    assert_int_equal(worker_config_override(&w, "window.events=1000", err, sizeof err), 0);
    assert_true(w.window_events == 1000);
    assert_int_equal(worker_config_override(&w, "ccd.student.epochs=3", err, sizeof err), 0);
    assert_int_equal(w.ccd.student.epochs, 3);
    assert_int_equal(worker_config_override(&w, "input.topics=a, b,c", err, sizeof err), 0);
    assert_int_equal(w.n_topics, 3);
    assert_string_equal(w.topics[1], "b");
    assert_int_equal(worker_config_override(&w, "input.topics=z", err, sizeof err), 0);
    assert_int_equal(w.n_topics, 1);
    assert_string_equal(w.topics[0], "z");
    assert_int_equal(worker_config_override(&w, "window.bootstrap_until_ms=-5", err, sizeof err), 0);
    assert_true(w.bootstrap_until_ms == -5);
    assert_int_equal(worker_config_override(&w, "window.bootstrap_until_ms=", err, sizeof err), 0);
    assert_true(w.bootstrap_until_ms == INT64_MIN);
    assert_int_equal(worker_config_override(&w, "redis.publish=off", err, sizeof err), 0);
    assert_false(w.redis_publish);
    assert_int_equal(worker_config_override(&w, "log.format=json", err, sizeof err), 0);
    assert_true(w.log_json);

    const char *bad[] = {"window.events", "windowevents=3", ".events=3", "window.=3", "window.events=-1",
                         "window.events=1e3", "redis.port=0", "nosuch.key=1"};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        err[0] = '\0';
        if (worker_config_override(&w, bad[k], err, sizeof err) != -1)
            fail_msg("-X %s accepted", bad[k]);
        assert_true(err[0] != '\0');
    }
    assert_int_equal(worker_config_override(&w, "window.evnets=3", err, sizeof err), -1);
    assert_contains(err, "window.evnets");
    assert_int_equal(worker_config_override(&w, "nosuch.key=1", err, sizeof err), -1);
    assert_contains(err, "nosuch.key");
    assert_true(w.window_events == 1000);
    worker_config_free(&w);
}

/* A configuration that passes worker_config_check, built from -X assignments. */
static void valid_config(worker_config *w)
{
    char err[512];
    worker_config_init(w);
    const char *x[] = {"kafka.bootstrap.servers=h:9092", "input.topics=t", "window.bootstrap_events=100",
                       "window.events=10", "input.max_buffered_events=1000"};
    for (size_t k = 0; k < sizeof x / sizeof *x; k++)
        if (worker_config_override(w, x[k], err, sizeof err) != 0)
            fail_msg("-X %s: %s", x[k], err);
    if (worker_config_check(w, err, sizeof err) != 0)
        fail_msg("check: %s", err);
}

/* Cross-key checks: bootstrap.servers and topics are required, exactly one rule per window kind,
 * and the buffer bound at least twice the largest count window (equality allowed). */
static void wcfg_check(void **state)
{
    (void)state;
    static const struct {
        const char *x[3];
        const char *names;
    } cases[] = {
        {{"window.bootstrap_until_ms=5"}, "window.bootstrap_events"},      /* both bootstrap rules */
        {{"window.bootstrap_events=0"}, "window.bootstrap_until_ms"},      /* neither */
        {{"window.duration_ms=1000"}, "window.duration_ms"},               /* both window rules */
        {{"window.events=0"}, "window.events"},                            /* neither */
        {{"window.bootstrap_events=501"}, "input.max_buffered_events"},
        {{"window.events=501"}, "input.max_buffered_events"},
        {{"window.bootstrap_events=0", "window.bootstrap_until_ms=5", "window.events=600"},
         "input.max_buffered_events"},
        {{"input.min_event_time_ms=5", "input.max_event_time_ms=5"}, "input.min_event_time_ms"},
    };
    char err[512];
    worker_config w;
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        valid_config(&w);
        for (int j = 0; j < 3 && cases[k].x[j]; j++)
            assert_int_equal(worker_config_override(&w, cases[k].x[j], err, sizeof err), 0);
        err[0] = '\0';
        if (worker_config_check(&w, err, sizeof err) != -1)
            fail_msg("case %zu passed the check", k);
        assert_contains(err, cases[k].names);
        worker_config_free(&w);
    }
    /* exactly twice the largest window is enough */
    valid_config(&w);
    assert_int_equal(worker_config_override(&w, "window.bootstrap_events=500", err, sizeof err), 0);
    assert_int_equal(worker_config_check(&w, err, sizeof err), 0);
    /* time rules have no count bound */
    assert_int_equal(worker_config_override(&w, "window.bootstrap_events=0", err, sizeof err), 0);
    assert_int_equal(worker_config_override(&w, "window.bootstrap_until_ms=0", err, sizeof err), 0);
    assert_int_equal(worker_config_override(&w, "window.events=0", err, sizeof err), 0);
    assert_int_equal(worker_config_override(&w, "window.duration_ms=60000", err, sizeof err), 0);
    assert_int_equal(worker_config_check(&w, err, sizeof err), 0);
    worker_config_free(&w);

    /* no bootstrap.servers, no topics */
    worker_config_init(&w);
    assert_int_equal(worker_config_override(&w, "input.topics=t", err, sizeof err), 0);
    assert_int_equal(worker_config_override(&w, "window.bootstrap_events=10", err, sizeof err), 0);
    assert_int_equal(worker_config_override(&w, "window.events=10", err, sizeof err), 0);
    assert_int_equal(worker_config_override(&w, "kafka.group.id=g", err, sizeof err), 0);
    assert_int_equal(worker_config_check(&w, err, sizeof err), -1);
    assert_contains(err, "kafka.bootstrap.servers");
    worker_config_free(&w);
    worker_config_init(&w);
    assert_int_equal(worker_config_override(&w, "kafka.bootstrap.servers=h:1", err, sizeof err), 0);
    assert_int_equal(worker_config_override(&w, "window.bootstrap_events=10", err, sizeof err), 0);
    assert_int_equal(worker_config_override(&w, "window.events=10", err, sizeof err), 0);
    assert_int_equal(worker_config_check(&w, err, sizeof err), -1);
    assert_contains(err, "input.topics");
    assert_int_equal(worker_config_override(&w, "input.topics= , ", err, sizeof err), -1); /* no topic */
    assert_contains(err, "input.topics");
    worker_config_free(&w);
}

/* Secret keys are recognised by name; their values never appear in an error message. */
static void wcfg_secrets(void **state)
{
    (void)state;
    const char *secret[] = {"password", "sasl.password", "ssl.key.password", "sasl.oauthbearer.client.secret",
                            "sasl.jaas.config", "ssl.key.pem", "SASL.PASSWORD", "sasl.oauthbearer.token.endpoint.url"};
    for (size_t k = 0; k < sizeof secret / sizeof *secret; k++)
        if (!worker_config_is_secret(secret[k]))
            fail_msg("%s not secret", secret[k]);
    const char *plain[] = {"bootstrap.servers", "group.id", "sasl.username", "user", "security.protocol",
                           "sasl.mechanisms", "ssl.ca.location", "host", "topics"};
    for (size_t k = 0; k < sizeof plain / sizeof *plain; k++)
        if (worker_config_is_secret(plain[k]))
            fail_msg("%s secret", plain[k]);

    /* redis.password takes any value; malformed or misplaced assignments carrying one never echo it */
    char err[1024], path[512];
    worker_config w;
    worker_config_init(&w);
    assert_int_equal(worker_config_override(&w, "redis.password=hunter2 x;y", err, sizeof err), 0);
    assert_string_equal(w.redis_password, "hunter2 x;y");
    const char *bad[] = {"redis_password=hunter2", "redis:password=hunter2", ".password=hunter2",
                         "redis.=hunter2", "redis.passwd=hunter2", "kafka.sasl.passwd=hunter2",
                         "kafka.=hunter2", "nosuch.password=hunter2", "redis.password:hunter2"};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        err[0] = '\0';
        assert_int_equal(worker_config_override(&w, bad[k], err, sizeof err), -1);
        assert_true(err[0] != '\0');
        if (strstr(err, "hunter2"))
            fail_msg("-X %s: '%s' shows the value", bad[k], err);
    }
    assert_string_equal(w.redis_password, "hunter2 x;y");
    /* in a file: an error on the password's line or after it never shows the password */
    assert_int_equal(load_text(&w, "[redis]\npassword = hunter2\nport = hunter2port\n", err, sizeof err, path,
                               sizeof path),
                     -1);
    assert_contains(err, "redis.port");
    assert_contains(err, ":3: ");
    assert_int_equal(load_text(&w, "[redis]\npasword = hunter2\n", err, sizeof err, path, sizeof path), -1);
    assert_contains(err, "redis.pasword");
    assert_null(strstr(err, "hunter2"));
    worker_config_free(&w);
}

/* metrics: the Prometheus text has HELP/TYPE lines, the values of the snapshot, one lag sample
 * per partition with its labels, and a too-small buffer truncates instead of overflowing. */
static void metrics_render_text(void **state)
{
    (void)state;
    metrics_snapshot s;
    memset(&s, 0, sizeof s);
    s.messages = 71268;
    s.dead_letters = 3;
    s.paused = 1;
    s.live_version = 6;
    s.holdout_recall20 = 0.3148;
    s.last_fast_seconds = 2.25;
    s.n_parts = 2;
    snprintf(s.parts[0].topic, sizeof s.parts[0].topic, "in");
    s.parts[0].partition = 0;
    s.parts[0].lag = 12;
    snprintf(s.parts[1].topic, sizeof s.parts[1].topic, "in");
    s.parts[1].partition = 1;
    s.parts[1].lag = 0;
    char buf[16384];
    size_t n = metrics_render(&s, buf, sizeof buf);
    assert_true(n > 0 && n < sizeof buf);
    assert_non_null(strstr(buf, "# TYPE ccd_events_in_total counter\nccd_events_in_total 71268\n"));
    assert_non_null(strstr(buf, "\nccd_dead_letters_total 3\n"));
    assert_non_null(strstr(buf, "\nccd_input_paused 1\n"));
    assert_non_null(strstr(buf, "\nccd_live_version 6\n"));
    assert_non_null(strstr(buf, "\nccd_holdout_recall20 0.314800\n"));
    assert_non_null(strstr(buf, "ccd_stage_seconds{stage=\"fast_path\"} 2.250\n"));
    assert_non_null(strstr(buf, "ccd_consumer_lag{topic=\"in\",partition=\"0\"} 12\n"));
    assert_non_null(strstr(buf, "ccd_consumer_lag{topic=\"in\",partition=\"1\"} 0\n"));
    /* every sample line belongs to a metric announced by a TYPE line */
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n"))
        assert_true(line[0] == '#' || !strncmp(line, "ccd_", 4));
    char small[64];
    n = metrics_render(&s, small, sizeof small);
    assert_true(n < sizeof small);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(window_bootstrap_and_tumbling_by_count),
        cmocka_unit_test(window_bootstrap_by_time),
        cmocka_unit_test(window_tumbling_by_time),
        cmocka_unit_test(window_idle_close_then_realign),
        cmocka_unit_test(idmap_add_find_order),
        cmocka_unit_test(idmap_growth_and_stable_snapshot),
        cmocka_unit_test(idmap_long_ids),
        cmocka_unit_test(idmap_colliding_ids),
        cmocka_unit_test(model_holdout_split),
        cmocka_unit_test(model_pending_offsets),
        cmocka_unit_test(model_build_block_by_hand),
        cmocka_unit_test(model_restores_from_checkpoint),
        cmocka_unit_test(model_refuses_inconsistent_checkpoint),
        cmocka_unit_test(wcfg_shipped_files),
        cmocka_unit_test(wcfg_file_errors),
        cmocka_unit_test(wcfg_kafka_passthrough),
        cmocka_unit_test(wcfg_overrides),
        cmocka_unit_test(wcfg_check),
        cmocka_unit_test(wcfg_secrets),
        cmocka_unit_test(metrics_render_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
