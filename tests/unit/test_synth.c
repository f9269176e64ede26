/* The synthetic stream (models/synth.h): option checks, determinism, every dataset invariant the
 * loader guarantees (checked on the blocks and against the files ccd_dataset_load reads back),
 * the event stream agreeing with the blocks, power-law popularity, arrivals, drift, and that
 * CCD learns it: the continual student beats the popularity baseline on every block. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "ccd.h"
#include "eval.h"
#include "synth.h"

#include "engine_fixture.h" /* small_config */
#include "test_util.h"      /* rm_tree */

/* A small stream: big enough for the statistics below, fast under the sanitizers. */
static void small_opts(ccd_synth_opts *o)
{
    ccd_synth_defaults(o);
    o->seed = 7;
    o->n_blocks = 4;
    o->users0 = 400;
    o->items0 = 300;
    o->new_users_per_block = 60;
    o->new_items_per_block = 30;
    o->events0 = 8000;
    o->events_per_block = 2000;
}

static void fail_err(int rc, const char *err)
{
    if (rc != 0)
        fail_msg("%s", err);
}

/* The stream of small_opts, started (options in *o). */
static void start_small_stream(ccd_synth *s, ccd_synth_opts *o)
{
    char err[256];
    small_opts(o);
    fail_err(ccd_synth_init(s, o, err, sizeof err), err);
}

static void assert_csr_equal(const ccd_csr *a, const ccd_csr *b)
{
    assert_int_equal(a->n_rows, b->n_rows);
    assert_int_equal(a->n_cols, b->n_cols);
    assert_int_equal(a->nnz, b->nnz);
    assert_memory_equal(a->indptr, b->indptr, ((size_t)a->n_rows + 1) * sizeof *a->indptr);
    if (a->nnz)
        assert_memory_equal(a->indices, b->indices, (size_t)a->nnz * sizeof *a->indices);
    assert_null(a->values);
    assert_null(b->values);
}

/* The two datasets are identical in every field. */
static void assert_dataset_equal(const ccd_dataset *x, const ccd_dataset *y)
{
    assert_int_equal(x->n_blocks, y->n_blocks);
    for (int k = 0; k < x->n_blocks; k++) {
        const ccd_block *a = &x->blocks[k], *b = &y->blocks[k];
        assert_int_equal(a->index, b->index);
        assert_int_equal(a->n_users, b->n_users);
        assert_int_equal(a->n_items, b->n_items);
        assert_int_equal(a->prev_users, b->prev_users);
        assert_int_equal(a->prev_items, b->prev_items);
        assert_int_equal(a->n_train_lines, b->n_train_lines);
        assert_csr_equal(&a->train, &b->train);
        assert_csr_equal(&a->valid, &b->valid);
        assert_csr_equal(&a->test, &b->test);
        assert_int_equal(a->n_active_users, b->n_active_users);
        assert_int_equal(a->n_active_items, b->n_active_items);
        assert_memory_equal(a->users, b->users, (size_t)a->n_active_users * sizeof *a->users);
        assert_memory_equal(a->items, b->items, (size_t)a->n_active_items * sizeof *a->items);
    }
}

static int datasets_differ(const ccd_dataset *x, const ccd_dataset *y)
{
    for (int k = 0; k < x->n_blocks; k++) {
        const ccd_csr *a = &x->blocks[k].train, *b = &y->blocks[k].train;
        if (a->nnz != b->nnz ||
            memcmp(a->indptr, b->indptr, ((size_t)a->n_rows + 1) * sizeof *a->indptr) ||
            memcmp(a->indices, b->indices, (size_t)a->nnz * sizeof *a->indices))
            return 1;
    }
    return 0;
}

static void defaults_pass_and_bad_options_are_refused(void **state)
{
    (void)state;
    char err[256];
    ccd_synth_opts o;
    ccd_synth_defaults(&o);
    assert_int_equal(ccd_synth_check(&o, err, sizeof err), 0);
    assert_int_equal(o.n_blocks, 6);
    assert_int_equal(o.users0, 2000);
    assert_int_equal(o.items0, 1000);
    /* each line breaks one option; the check names the problem instead of generating nonsense */
    ccd_synth_opts b;
#define REFUSE(stmt)                                                                               \
    do {                                                                                           \
        ccd_synth_defaults(&b);                                                                    \
        stmt;                                                                                      \
        err[0] = 0;                                                                                \
        assert_int_equal(ccd_synth_check(&b, err, sizeof err), -1);                                \
        assert_non_null(strstr(err, "synthetic stream"));                                          \
        ccd_synth s;                                                                               \
        assert_int_equal(ccd_synth_init(&s, &b, err, sizeof err), -1);                             \
    } while (0)
    REFUSE(b.n_blocks = 0);
    REFUSE(b.users0 = 0);
    REFUSE(b.items0 = -3);
    REFUSE(b.new_users_per_block = -1);
    REFUSE(b.events0 = b.users0 - 1); /* every block-0 user needs an event */
    REFUSE(b.events_per_block = b.new_users_per_block - 1);
    REFUSE((b.new_users_per_block = 0, b.events_per_block = 0)); /* an empty later block */
    REFUSE(b.clusters = 0);
    REFUSE(b.dim = 0);
    REFUSE(b.drift = 1.5f);
    REFUSE(b.drift = NAN);
    REFUSE(b.popularity_exponent = -1);
    REFUSE(b.temperature = 0);
    REFUSE(b.user_noise = -0.1f);
    REFUSE(b.new_user_boost = 0);
    REFUSE(b.valid_fraction = 0.5f);
    REFUSE(b.test_fraction = -0.1f);
#undef REFUSE
    /* one block needs no later-block events */
    ccd_synth_defaults(&b);
    b.n_blocks = 1;
    b.events_per_block = 0;
    assert_int_equal(ccd_synth_check(&b, err, sizeof err), 0);
}

static void same_seed_same_stream_other_seed_differs(void **state)
{
    (void)state;
    char err[256];
    ccd_synth_opts o;
    small_opts(&o);
    ccd_dataset a, b, c;
    fail_err(ccd_synth_blocks(&o, &a, err, sizeof err), err);
    fail_err(ccd_synth_blocks(&o, &b, err, sizeof err), err);
    assert_dataset_equal(&a, &b);
    /* the event streams too, block by block */
    ccd_synth s1, s2;
    fail_err(ccd_synth_init(&s1, &o, err, sizeof err), err);
    fail_err(ccd_synth_init(&s2, &o, err, sizeof err), err);
    while (ccd_synth_next(&s1, err, sizeof err) == 1) {
        assert_int_equal(ccd_synth_next(&s2, err, sizeof err), 1);
        assert_int_equal(s1.n_events, s2.n_events);
        assert_memory_equal(s1.events, s2.events, (size_t)s1.n_events * sizeof *s1.events);
    }
    assert_int_equal(ccd_synth_next(&s2, err, sizeof err), 0);
    assert_int_equal(s1.block, o.n_blocks - 1);
    ccd_synth_free(&s1);
    ccd_synth_free(&s2);
    o.seed = 8;
    fail_err(ccd_synth_blocks(&o, &c, err, sizeof err), err);
    assert_true(datasets_differ(&a, &c));
    ccd_dataset_free(&a);
    ccd_dataset_free(&b);
    ccd_dataset_free(&c);
    /* the split has its own rng stream: other fractions leave the events where they were */
    small_opts(&o);
    ccd_synth_opts p = o;
    p.valid_fraction = 0.2f;
    p.test_fraction = 0.0f;
    fail_err(ccd_synth_init(&s1, &o, err, sizeof err), err);
    fail_err(ccd_synth_init(&s2, &p, err, sizeof err), err);
    while (ccd_synth_next(&s1, err, sizeof err) == 1) {
        assert_int_equal(ccd_synth_next(&s2, err, sizeof err), 1);
        assert_int_equal(s2.n_split[CCD_SYNTH_TEST], 0);
        for (int64_t e = 0; e < s1.n_events; e++) {
            assert_int_equal(s1.events[e].user, s2.events[e].user);
            assert_int_equal(s1.events[e].item, s2.events[e].item);
        }
    }
    ccd_synth_free(&s1);
    ccd_synth_free(&s2);
}

static void assert_csr_valid(const ccd_csr *a, int n_rows, int n_cols)
{
    assert_int_equal(a->n_rows, n_rows);
    assert_int_equal(a->n_cols, n_cols);
    assert_int_equal(a->indptr[0], 0);
    assert_int_equal(a->indptr[n_rows], a->nnz);
    for (int r = 0; r < n_rows; r++) {
        assert_true(a->indptr[r] <= a->indptr[r + 1]);
        for (int64_t k = a->indptr[r]; k < a->indptr[r + 1]; k++) {
            assert_true(a->indices[k] >= 0 && a->indices[k] < n_cols);
            if (k > a->indptr[r])
                assert_true(a->indices[k - 1] < a->indices[k]); /* sorted, unique */
        }
    }
}

static int in_sorted(const int *v, int n, int x)
{
    int lo = 0, hi = n;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (v[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && v[lo] == x;
}

/* Every property of a loaded block, and the block against the events it came from. */
static void blocks_keep_every_dataset_invariant(void **state)
{
    (void)state;
    char err[256];
    ccd_synth_opts o;
    ccd_synth s;
    start_small_stream(&s, &o);
    int k = 0;
    while (ccd_synth_next(&s, err, sizeof err) == 1) {
        ccd_block b;
        fail_err(ccd_synth_block(&s, &b, err, sizeof err), err);
        /* id spaces grow by the configured amounts */
        assert_int_equal(b.index, k);
        assert_int_equal(b.n_users, o.users0 + k * o.new_users_per_block);
        assert_int_equal(b.n_items, o.items0 + k * o.new_items_per_block);
        assert_int_equal(b.prev_users, k ? o.users0 + (k - 1) * o.new_users_per_block : 0);
        assert_int_equal(b.prev_items, k ? o.items0 + (k - 1) * o.new_items_per_block : 0);
        assert_int_equal(s.n_events, k ? o.events_per_block : o.events0);
        assert_int_equal(s.n_split[0] + s.n_split[1] + s.n_split[2], s.n_events);
        assert_int_equal(b.n_train_lines, s.n_split[CCD_SYNTH_TRAIN]);
        assert_true(b.train.nnz <= b.n_train_lines);
        assert_true(b.valid.nnz > 0 && b.test.nnz > 0);
        assert_csr_valid(&b.train, b.n_users, b.n_items);
        assert_csr_valid(&b.valid, b.n_users, b.n_items);
        assert_csr_valid(&b.test, b.n_users, b.n_items);
        /* users and items strictly increasing, in range */
        for (int j = 0; j < b.n_active_users; j++)
            assert_true(b.users[j] >= 0 && b.users[j] < b.n_users &&
                        (j == 0 || b.users[j - 1] < b.users[j]));
        for (int j = 0; j < b.n_active_items; j++)
            assert_true(b.items[j] >= 0 && b.items[j] < b.n_items &&
                        (j == 0 || b.items[j - 1] < b.items[j]));
        /* the block's new users are all active in it */
        for (int u = b.prev_users; u < b.n_users; u++)
            assert_true(in_sorted(b.users, b.n_active_users, u));
        /* events: each in range, its pair in its split's set, its user active */
        int *seen_item = calloc((size_t)b.n_items, sizeof *seen_item);
        int n_train_items = 0;
        const ccd_csr *sets[3] = {&b.train, &b.valid, &b.test};
        for (int64_t e = 0; e < s.n_events; e++) {
            const ccd_synth_event *ev = &s.events[e];
            assert_int_equal(ev->block, k);
            assert_true(ev->split >= 0 && ev->split <= 2);
            assert_true(ccd_csr_contains(sets[ev->split], ev->user, ev->item));
            assert_true(in_sorted(b.users, b.n_active_users, ev->user));
            if (ev->split == CCD_SYNTH_TRAIN && !seen_item[ev->item]++)
                n_train_items++;
        }
        /* items = exactly the items with a train pair */
        assert_int_equal(b.n_active_items, n_train_items);
        for (int j = 0; j < b.n_active_items; j++)
            assert_true(seen_item[b.items[j]] > 0);
        free(seen_item);
        /* per user: valid and test disjoint from train and from each other, their items trained in
         * the block, both present or both absent, and every active user has a train pair */
        int with_holdout = 0;
        for (int u = 0; u < b.n_users; u++) {
            int64_t nt = ccd_csr_row_len(&b.train, u), nv = ccd_csr_row_len(&b.valid, u);
            int64_t ns = ccd_csr_row_len(&b.test, u);
            int active = in_sorted(b.users, b.n_active_users, u);
            assert_int_equal(nt > 0, active);
            assert_int_equal(nv > 0, ns > 0);
            with_holdout += nv > 0;
            for (int which = 1; which <= 2; which++) {
                const ccd_csr *h = sets[which];
                for (int64_t q = h->indptr[u]; q < h->indptr[u + 1]; q++) {
                    int i = h->indices[q];
                    assert_false(ccd_csr_contains(&b.train, u, i));
                    assert_false(ccd_csr_contains(sets[3 - which], u, i));
                    assert_true(in_sorted(b.items, b.n_active_items, i));
                }
            }
        }
        /* most active users are evaluable (the rest have fewer than 3 distinct items) */
        assert_true(with_holdout > b.n_active_users / 3);
        ccd_csr_free(&b.train), ccd_csr_free(&b.valid), ccd_csr_free(&b.test);
        free(b.users), free(b.items);
        k++;
    }
    assert_int_equal(k, o.n_blocks);
    ccd_synth_free(&s);
}

/* Written to files and read back by the dataset loader: the very same blocks. */
static void written_dataset_loads_back_identical(void **state)
{
    (void)state;
    char err[256], dir[] = "/tmp/ccd-synth-XXXXXX";
    assert_non_null(mkdtemp(dir));
    ccd_synth_opts o;
    small_opts(&o);
    o.n_blocks = 3;
    ccd_dataset mem, disk;
    fail_err(ccd_synth_blocks(&o, &mem, err, sizeof err), err);
    fail_err(ccd_synth_write(&o, dir, err, sizeof err), err);
    fail_err(ccd_dataset_load(&disk, dir, 0, err, sizeof err), err);
    assert_dataset_equal(&mem, &disk);
    /* writing into an existing directory replaces the files */
    fail_err(ccd_synth_write(&o, dir, err, sizeof err), err);
    ccd_dataset_free(&disk);
    fail_err(ccd_dataset_load(&disk, dir, 2, err, sizeof err), err);
    assert_int_equal(disk.n_blocks, 2);
    ccd_dataset_free(&disk);
    ccd_dataset_free(&mem);
    rm_tree(dir);
    /* an unwritable place is an error with a message, not a crash */
    assert_int_equal(ccd_synth_write(&o, "/proc/ccd-synth-no/such", err, sizeof err), -1);
    assert_true(strlen(err) > 0);
}

/* Share of all events that go to the 10% most interacted items, over every block. */
static double top10_share(const ccd_synth_opts *o)
{
    char err[256];
    ccd_synth s;
    fail_err(ccd_synth_init(&s, o, err, sizeof err), err);
    int64_t *count = calloc((size_t)s.cap_items, sizeof *count), total = 0;
    while (ccd_synth_next(&s, err, sizeof err) == 1)
        for (int64_t e = 0; e < s.n_events; e++, total++)
            count[s.events[e].item]++;
    /* counts descending: a counting pass is enough, no sort needed for a share */
    int n = s.n_items, top = n / 10;
    int64_t max = 0, taken = 0;
    for (int i = 0; i < n; i++)
        max = count[i] > max ? count[i] : max;
    int64_t *hist = calloc((size_t)max + 1, sizeof *hist);
    for (int i = 0; i < n; i++)
        hist[count[i]]++;
    int left = top;
    for (int64_t c = max; c >= 0 && left > 0; c--) {
        int64_t use = hist[c] < left ? hist[c] : left;
        taken += use * c;
        left -= (int)use;
    }
    free(hist);
    free(count);
    ccd_synth_free(&s);
    return (double)taken / (double)total;
}

static void popularity_follows_a_power_law(void **state)
{
    (void)state;
    ccd_synth_opts o;
    small_opts(&o);
    double share = top10_share(&o);
    o.popularity_exponent = 0;
    double flat = top10_share(&o);
    print_message("top 10%% of items: %.3f of the events (exponent 1), %.3f (exponent 0)\n", share,
                  flat);
    /* Zipf with s = 1: the top tenth of the catalogue takes about half of all events; without
     * the power law, only what the clusters' affinities concentrate */
    assert_true(share > 0.4);
    assert_true(flat < 0.3);
    assert_true(share > flat + 0.15);
}

/* Every new user of block k shows up in block k, new users are busier than old ones in their
 * first block, and most new items are taken up. */
static void new_users_and_items_arrive_in_their_block(void **state)
{
    (void)state;
    char err[256];
    ccd_synth_opts o;
    ccd_synth s;
    start_small_stream(&s, &o);
    while (ccd_synth_next(&s, err, sizeof err) == 1) {
        int *per_user = calloc((size_t)s.n_users, sizeof *per_user);
        char *item_seen = calloc((size_t)s.n_items, 1);
        for (int64_t e = 0; e < s.n_events; e++) {
            per_user[s.events[e].user]++;
            item_seen[s.events[e].item] = 1;
        }
        int64_t old_events = 0, old_active = 0, new_events = 0;
        for (int u = 0; u < s.n_users; u++) {
            if (u >= s.prev_users) {
                assert_true(per_user[u] > 0);
                new_events += per_user[u];
            } else if (per_user[u] > 0) {
                old_events += per_user[u];
                old_active++;
            }
        }
        int new_items_seen = 0;
        for (int i = s.prev_items; i < s.n_items; i++)
            new_items_seen += item_seen[i];
        if (s.block > 0) {
            double per_new = (double)new_events / (s.n_users - s.prev_users);
            double per_old = (double)old_events / (double)old_active;
            assert_true(per_new > per_old);
            assert_true(new_items_seen > (s.n_items - s.prev_items) / 2);
        }
        free(per_user);
        free(item_seen);
    }
    ccd_synth_free(&s);
}

/* Centres keep unit length and move by exactly the configured angle: cos = sqrt(1 - drift^2). */
static void centres_drift_by_the_configured_step(void **state)
{
    (void)state;
    char err[256];
    float drifts[] = {0.0f, 0.3f, 1.0f};
    for (int t = 0; t < 3; t++) {
        ccd_synth_opts o;
        small_opts(&o);
        o.drift = drifts[t];
        o.n_blocks = 3;
        ccd_synth s;
        fail_err(ccd_synth_init(&s, &o, err, sizeof err), err);
        size_t n = (size_t)o.clusters * o.dim;
        float *before = malloc(n * sizeof *before);
        for (int k = 0; k < o.n_blocks; k++) {
            memcpy(before, s.centre, n * sizeof *before);
            assert_int_equal(ccd_synth_next(&s, err, sizeof err), 1);
            if (k == 0)
                continue; /* block 0 does not move the centres */
            for (int c = 0; c < o.clusters; c++) {
                double dot = 0, nn = 0;
                for (int j = 0; j < o.dim; j++) {
                    dot += (double)before[c * o.dim + j] * s.centre[c * o.dim + j];
                    nn += (double)s.centre[c * o.dim + j] * s.centre[c * o.dim + j];
                }
                assert_float_equal(nn, 1.0, 1e-5);
                assert_float_equal(dot, sqrt(1.0 - (double)drifts[t] * drifts[t]), 1e-5);
            }
        }
        free(before);
        ccd_synth_free(&s);
    }
}

/* The stream is learnable: after each of three blocks, the continual student's test R@20 on that
 * block is well above the popularity baseline's. */
static void ccd_beats_popularity_on_the_stream(void **state)
{
    (void)state;
    char err[256];
    ccd_synth_opts o;
    small_opts(&o);
    o.seed = 4;
    o.n_blocks = 3;
    o.users0 = 300;
    o.items0 = 400;
    o.new_users_per_block = 40;
    o.new_items_per_block = 40;
    o.events0 = 6000;
    o.events_per_block = 1500;
    o.clusters = 4;
    ccd_dataset ds;
    fail_err(ccd_synth_blocks(&o, &ds, err, sizeof err), err);
    ccd_config cfg;
    small_config(&cfg);
    ccd_state st;
    ccd_state_init(&st);
    for (int k = 0; k < ds.n_blocks; k++) {
        ccd_block_report rep;
        if (ccd_block_step(&st, &cfg, &ds.blocks[k], ds.blocks, k + 1, &rep, NULL, err,
                           sizeof err) != 0)
            fail_msg("block %d: %s", k, err);
        ccd_block_metrics pop;
        assert_int_equal(ccd_evaluate_popularity(&ds.blocks[k], &ds.blocks[k], 1, &pop), 0);
        double student = rep.student[k].test.recall[CCD_K20], base = pop.test.recall[CCD_K20];
        print_message("block %d: CL_k test R@20 %.4f, ensemble %.4f, popularity %.4f (%d users)\n",
                      k, student, rep.ensemble[k].test.recall[CCD_K20], base, pop.test.n_users);
        assert_true(pop.test.n_users > 50);
        assert_true(student > 1.3 * base);
        ccd_block_report_free(&rep);
    }
    ccd_state_free(&st);
    ccd_dataset_free(&ds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_pass_and_bad_options_are_refused),
        cmocka_unit_test(same_seed_same_stream_other_seed_differs),
        cmocka_unit_test(blocks_keep_every_dataset_invariant),
        cmocka_unit_test(written_dataset_loads_back_identical),
        cmocka_unit_test(popularity_follows_a_power_law),
        cmocka_unit_test(new_users_and_items_arrive_in_their_block),
        cmocka_unit_test(centres_drift_by_the_configured_step),
        cmocka_unit_test(ccd_beats_popularity_on_the_stream),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
