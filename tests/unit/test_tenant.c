/* model (worker/tenant.c: a tenant's stream state): the holdout split, pending offsets, block
 * building, restoring from a checkpoint and refusing an inconsistent one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "checkpoint.h"
#include "idmap.h"
#include "tenant.h"
#include "sparse.h"
#include "state.h"
#include "test_util.h" /* xstrdup */

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
        int h = tenant_holdout(u, i, 0, f);
        assert_true(h >= 0 && h <= 2);
        assert_int_equal(tenant_holdout(u, i, 0, f), h);
        count[h]++;
        seed_diff += tenant_holdout(u, i, 12345, f) != h;
        assert_int_equal(tenant_holdout(u, i, 0, 0.0), 0);
        assert_int_equal(tenant_holdout(u, i, 99, 0.0), 0);
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
        differ += tenant_holdout(u, i, 1, 0.5) != tenant_holdout(u2, "x", 1, 0.5);
    }
    assert_true(differ > 80); /* P(differ) = 1 - (0.5^2 + 2 * 0.25^2) = 0.625: ~125 of 200 */
}

static tenant_event ev(int32_t user, int32_t item, int32_t part, int32_t holdout, int64_t offset)
{
    return (tenant_event){
        .user = user, .item = item, .part = part, .holdout = holdout, .offset = offset};
}

/* Parts are found or added; the first pending offset of a part is the oldest one still buffered,
 * closed windows first, then the open window; -1 when the part has nothing pending. */
static void model_pending_offsets(void **state)
{
    (void)state;
    char err[256];
    tenant *m = tenant_new("m", NULL, err, sizeof err);
    assert_non_null(m);
    assert_int_equal(m->win.next_block, 0);
    assert_true(m->win.start_ms == INT64_MIN);
    assert_int_equal(tenant_part_index(m, "t", 0), 0);
    assert_int_equal(tenant_part_index(m, "t", 1), 1);
    assert_int_equal(tenant_part_index(m, "t", 0), 0);
    assert_int_equal(tenant_part_index(m, "u", 0), 2);
    assert_int_equal(m->n_parts, 3);
    assert_true(m->parts[2].durable_next == 0);
    assert_true(tenant_first_pending(m, 0) == -1);
    assert_true(tenant_buffered(m) == 0);

    m->users.n = 2, m->items.n = 3; /* only the sizes are read when a window closes */
    tenant_event e[] = {ev(0, 0, 0, 0, 10), ev(1, 1, 0, 0, 11), ev(0, 2, 1, 0, 5)};
    for (int k = 0; k < 3; k++)
        assert_int_equal(tenant_push(m, &e[k]), 0);
    assert_true(tenant_first_pending(m, 0) == 10);
    assert_int_equal(tenant_close_window(m, 0, 777, "count"), 0);
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

    tenant_event f[] = {ev(1, 0, 0, 2, 12), ev(1, 1, 1, 1, 6)};
    for (int k = 0; k < 2; k++)
        assert_int_equal(tenant_push(m, &f[k]), 0);
    assert_true(tenant_first_pending(m, 0) == 10);
    assert_true(tenant_first_pending(m, 1) == 5);
    assert_true(tenant_first_pending(m, 2) == -1);
    assert_true(tenant_buffered(m) == 5);

    /* the trainer folds block 0 in (what the worker does when the job is done) */
    closed_window *cw = m->closed;
    m->closed = cw->next;
    if (!m->closed)
        m->closed_tail = NULL;
    free(cw->ev);
    free(cw);
    assert_true(tenant_first_pending(m, 0) == 12);
    assert_true(tenant_first_pending(m, 1) == 6);
    assert_true(tenant_buffered(m) == 2);

    /* block 1 closed, more in the open window: closed ones still come first */
    assert_int_equal(tenant_close_window(m, 1, INT64_MIN, "idle"), 0);
    tenant_event g = ev(0, 0, 0, 0, 13);
    assert_int_equal(tenant_push(m, &g), 0);
    assert_true(tenant_first_pending(m, 0) == 12);
    assert_true(tenant_buffered(m) == 3);
    /* an empty window can be closed too (callers check) */
    assert_int_equal(tenant_close_window(m, 2, 0, "time"), 0);
    assert_int_equal(tenant_close_window(m, 3, 0, "time"), 0);
    assert_true(m->closed_tail->n_ev == 0);
    assert_int_equal(m->closed->next->block, 2);
    assert_true(tenant_first_pending(m, 0) == 12);
    assert_true(tenant_first_pending(m, 2) == -1);
    assert_true(tenant_buffered(m) == 3);
    /* many events: the open window grows past its first allocation */
    for (int k = 0; k < 10000; k++) {
        tenant_event h = ev(0, 0, 2, 0, 1000 + k);
        assert_int_equal(tenant_push(m, &h), 0);
    }
    assert_true(tenant_first_pending(m, 2) == 1000);
    assert_true(tenant_buffered(m) == 10003);
    tenant_free(m);
}

/* A hand-made closed window: train pairs deduplicated (n_train_lines counts the raw ones), valid
 * and test from holdout 1 and 2, active users = every user of the window, active items = items with
 * a train pair. */
static void model_build_block_by_hand(void **state)
{
    (void)state;
    tenant_event e[] = {
        ev(0, 0, 0, 0, 1), ev(0, 0, 0, 0, 2), ev(1, 2, 0, 0, 3), ev(0, 3, 0, 1, 4),
        ev(2, 1, 0, 2, 5), ev(3, 4, 0, 1, 6), ev(1, 2, 0, 0, 7), ev(2, 0, 0, 0, 8),
    };
    closed_window cw = {
        .block = 2, .ev = e, .n_ev = 8, .n_users = 5, .n_items = 5, .reason = "count"};
    ccd_block b;
    assert_int_equal(tenant_build_block(&cw, 2, 3, &b), 0);
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
    tenant_block_free(&b);
    assert_null(b.users);

    /* an empty window builds an empty block */
    closed_window empty = {.block = 0, .n_users = 0, .n_items = 0};
    assert_int_equal(tenant_build_block(&empty, 0, 0, &b), 0);
    assert_int_equal(b.n_active_users, 0);
    assert_int_equal(b.n_active_items, 0);
    assert_true(b.train.nnz == 0 && b.n_train_lines == 0);
    tenant_block_free(&b);
}

/* A real engine state after block 0 over 3 users and 2 items (one MF teacher of dim 2, student
 * dim 2), serialised into a checkpoint with ids, three partitions and windowing state. */
static void make_restorable(checkpoint *c, const char *const *users, int n_users,
                            const char *const *items, int n_items)
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

/* tenant_new from a checkpoint restores the engine state, the id maps in row order, the parts with
 * their durable offsets, the windowing state (next block, open window start) and the counters. */
static void model_restores_from_checkpoint(void **state)
{
    (void)state;
    const char *users[] = {"alice", "bob", "carol"}, *items[] = {"x", "y"};
    checkpoint c;
    make_restorable(&c, users, 3, items, 2);
    char err[512];
    tenant *m = tenant_new("m1", &c, err, sizeof err);
    if (!m)
        fail_msg("tenant_new: %s", err);
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
    assert_int_equal(tenant_part_index(m, "t", 1), 1);
    assert_int_equal(tenant_part_index(m, "other", 3), 2);
    assert_int_equal(tenant_part_index(m, "t", 3), 3);
    assert_true(m->parts[3].durable_next == 0);
    assert_int_equal(m->win.next_block, 1);
    assert_true(m->win.start_ms == 1234000);
    assert_true(m->win.count == 0);
    assert_true(m->events_total == 77);
    assert_true(m->published_version == 3);
    assert_true(tenant_buffered(m) == 0);
    assert_true(tenant_first_pending(m, 0) == -1);
    assert_false(m->busy);
    tenant_free(m);
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
    assert_null(tenant_new("m1", &c, err, sizeof err));
    assert_non_null(strstr(err, "m1"));
    assert_non_null(strstr(err, "does not match"));
    assert_non_null(strstr(err, "4 users"));
    checkpoint_free(&c);

    make_restorable(&c, users3, 3, items1, 1);
    err[0] = '\0';
    assert_null(tenant_new("m1", &c, err, sizeof err));
    assert_non_null(strstr(err, "1 items"));
    checkpoint_free(&c);

    make_restorable(&c, users3, 3, items, 2);
    c.block = 1;
    err[0] = '\0';
    assert_null(tenant_new("m1", &c, err, sizeof err));
    assert_non_null(strstr(err, "block 1"));
    checkpoint_free(&c);

    const char *dup[] = {"alice", "bob", "alice"};
    make_restorable(&c, dup, 3, items, 2);
    err[0] = '\0';
    assert_null(tenant_new("m1", &c, err, sizeof err));
    assert_non_null(strstr(err, "duplicate"));
    checkpoint_free(&c);

    make_restorable(&c, users3, 3, items, 2);
    c.state[c.state_len - 1] ^= 0x40;
    err[0] = '\0';
    assert_null(tenant_new("m1", &c, err, sizeof err));
    assert_true(err[0] != '\0');
    checkpoint_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(model_holdout_split),
        cmocka_unit_test(model_pending_offsets),
        cmocka_unit_test(model_build_block_by_hand),
        cmocka_unit_test(model_restores_from_checkpoint),
        cmocka_unit_test(model_refuses_inconsistent_checkpoint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
