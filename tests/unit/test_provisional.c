/* The fast path's provisional student (models/provisional.h) on the engine's small synthetic
 * stream: a bootstrap student trained from scratch ranks above popularity, a student continued
 * from CL_0 lowers its loss and ranks block 1 above popularity, runs are bit-identical for a seed,
 * a raised stop flag returns CCD_STOPPED with nothing kept, and bad sizes are refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ccd.h"
#include "eval.h"
#include "expand.h"
#include "provisional.h"
#include "sparse.h"
#include "train.h"

#include "engine_fixture.h"

static ccd_block blocks[BLOCKS];

static int setup(void **state)
{
    (void)state;
    make_blocks(blocks);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    free_blocks(blocks);
    return 0;
}

static double test_r20(const ccd_block_metrics *m)
{
    return m->test.recall[CCD_K20];
}

static void bootstrap_beats_popularity(void **state)
{
    (void)state;
    ccd_config c;
    small_config(&c);
    ccd_provisional p;
    char err[256];
    ccd_provisional_opts o = {.epochs = 20, .lr = 0.01f};
    assert_int_equal(
        ccd_student_provisional(&c, &blocks[0], NULL, 0, 0, &o, NULL, &p, err, sizeof err), 0);
    assert_int_equal(p.n_users, USERS[0]);
    assert_int_equal(p.n_items, ITEMS[0]);
    assert_int_equal(p.dim, c.student_dim);
    ccd_block_metrics pop, got;
    assert_int_equal(ccd_evaluate_popularity(&blocks[0], &blocks[0], 1, &pop), 0);
    /* the served embeddings are the ones it was selected with */
    assert_int_equal(ccd_evaluate(p.final, p.final + (size_t)p.n_users * p.dim, p.n_users,
                                  p.n_items, p.dim, &blocks[0], 1, &got),
                     0);
    print_message("bootstrap: test R@20 %.4f (popularity %.4f), epoch %d\n", test_r20(&got),
                  test_r20(&pop), p.epoch);
    assert_true(test_r20(&got) > test_r20(&pop) + 0.02);
    assert_true(p.last_loss < 0.5 * p.first_loss);
    assert_float_equal(test_r20(&got), test_r20(&p.metrics), 1e-9);
    ccd_provisional_free(&p);
}

/* CL_0 from the engine's bootstrap, expanded to block 1 and propagated there, evaluated. */
static double expanded_only_r20(const ccd_config *c, const float *cl0)
{
    const ccd_block *b = &blocks[1];
    int n = b->n_users + b->n_items, d = c->student_dim;
    float *e0 = malloc((size_t)n * d * sizeof *e0), *fin = malloc((size_t)n * d * sizeof *fin);
    ccd_csr g = {0};
    assert_non_null(e0);
    assert_non_null(fin);
    assert_int_equal(ccd_expand_init(cl0, USERS[0], ITEMS[0], d, &b->train, b->n_users, b->n_items,
                                     c->init_topk, e0),
                     0);
    assert_int_equal(ccd_graph_build(&g, &b->train, b->n_users, b->n_items), 0);
    assert_int_equal(ccd_final_embeddings(CCD_MODEL_LIGHTGCN, e0, &g, n, d, fin, NULL), 0);
    ccd_block_metrics m;
    assert_int_equal(
        ccd_evaluate(fin, fin + (size_t)b->n_users * d, b->n_users, b->n_items, d, b, 1, &m), 0);
    ccd_csr_free(&g);
    free(e0), free(fin);
    return test_r20(&m);
}

static void continued_from_cl0_and_deterministic(void **state)
{
    (void)state;
    ccd_config c;
    small_config(&c);
    ccd_state st;
    ccd_state_init(&st);
    ccd_block_report rep;
    char err[256];
    assert_int_equal(ccd_block_step(&st, &c, &blocks[0], blocks, 1, &rep, NULL, err, sizeof err),
                     0);
    ccd_block_report_free(&rep);
    ccd_provisional a, b;
    ccd_provisional_opts o = {.epochs = 6, .lr = 0.01f};
    assert_int_equal(ccd_student_provisional(&c, &blocks[1], st.student, st.n_users, st.n_items, &o,
                                             NULL, &a, err, sizeof err),
                     0);
    assert_int_equal(ccd_student_provisional(&c, &blocks[1], st.student, st.n_users, st.n_items, &o,
                                             NULL, &b, err, sizeof err),
                     0);
    size_t n = (size_t)(a.n_users + a.n_items) * a.dim;
    assert_int_equal(a.n_users, USERS[1]);
    assert_memory_equal(a.emb0, b.emb0, n * sizeof *a.emb0);
    assert_memory_equal(a.final, b.final, n * sizeof *a.final);
    ccd_block_metrics pop;
    assert_int_equal(ccd_evaluate_popularity(&blocks[1], &blocks[1], 1, &pop), 0);
    double before = expanded_only_r20(&c, st.student);
    print_message("block 1: CL_0 expanded %.4f, provisional %.4f (epoch %d), popularity %.4f, "
                  "loss %.2f -> %.2f\n",
                  before, test_r20(&a.metrics), a.epoch, test_r20(&pop), a.first_loss, a.last_loss);
    assert_true(a.last_loss < 0.95 * a.first_loss);
    assert_true(test_r20(&a.metrics) > test_r20(&pop));
    /* a different seed trains a different student */
    c.seed += 1;
    ccd_provisional_free(&b);
    assert_int_equal(ccd_student_provisional(&c, &blocks[1], st.student, st.n_users, st.n_items, &o,
                                             NULL, &b, err, sizeof err),
                     0);
    assert_true(memcmp(a.emb0, b.emb0, n * sizeof *a.emb0) != 0);
    ccd_provisional_free(&a);
    ccd_provisional_free(&b);
    ccd_state_free(&st);
}

static void stop_flag_and_bad_sizes(void **state)
{
    (void)state;
    ccd_config c;
    small_config(&c);
    ccd_provisional p;
    char err[256];
    ccd_provisional_opts o = {.epochs = 3};
    atomic_int stop = 1;
    assert_int_equal(
        ccd_student_provisional(&c, &blocks[0], NULL, 0, 0, &o, &stop, &p, err, sizeof err),
        CCD_STOPPED);
    assert_null(p.emb0);
    assert_null(p.final);
    assert_non_null(strstr(err, "stopped"));
    float prev[(200 + 200) * 4] = {0};
    assert_int_equal(ccd_student_provisional(&c, &blocks[1], prev, USERS[1] + 1, ITEMS[0], &o, NULL,
                                             &p, err, sizeof err),
                     -1);
    o.epochs = 0;
    assert_int_equal(
        ccd_student_provisional(&c, &blocks[1], NULL, 0, 0, &o, NULL, &p, err, sizeof err), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bootstrap_beats_popularity),
        cmocka_unit_test(continued_from_cl0_and_deterministic),
        cmocka_unit_test(stop_flag_and_bad_sizes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
