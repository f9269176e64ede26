/* test_teacher_update: a block's teacher updates run on their own (ccd_teacher_update and the
 * block step's teachers hook; docs/algorithm.md, "Teacher updates on their own").
 *
 * The reference is the block step alone on the engine fixture's stream (two threads, the two
 * teachers side by side). The same stream is run again with a teachers hook that calls
 * ccd_teacher_update once per teacher, one after the other, in reverse order or not, each under
 * its own thread count (OpenMP and OpenBLAS, 1 to 3), with the block step's teachers side by
 * side or not, and once with every teacher in its own thread at the same time: every table the
 * hook hands back and every state after every block must equal the reference's byte for byte. The
 * teachers are wider than the fixture's (d = 128 and 64) so that their products cross OpenBLAS's
 * threading threshold and its thread count is exercised too. The block step's own thread count
 * stays at two: the distillation (D_k) depends on it (distill.c), the teacher updates must not.
 *
 * Then the failure paths: a stop raised returns CCD_STOPPED with nothing allocated (the ASan
 * build checks for leaks), bad inputs are refused, and a hook that fails, stops or leaves a
 * table out fails the block with the state as it was. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ccd.h"
#include "dense.h"
#include "state.h"

#include "engine_fixture.h"

#define STEP_THREADS 2

static void wide_config(ccd_config *c)
{
    small_config(c);
    c->teachers[0].dim = 128;
    c->teachers[1].dim = 64;
}

static unsigned char *save(const ccd_state *st, size_t *len)
{
    unsigned char *buf;
    assert_int_equal(ccd_state_serialize(st, &buf, len), 0);
    return buf;
}

/* What the reference run leaves after each block: the state's bytes, and CL_k and T_{m,k}. */
typedef struct {
    unsigned char *bytes[BLOCKS];
    size_t len[BLOCKS];
    float *student[BLOCKS];
    float *teacher[BLOCKS][CCD_MAX_TEACHERS];
    size_t teacher_len[BLOCKS][CCD_MAX_TEACHERS]; /* floats */
} reference;

static float *copy_floats(const float *src, size_t n)
{
    float *p = malloc(n * sizeof *p);
    assert_non_null(p);
    memcpy(p, src, n * sizeof *p);
    return p;
}

static void keep(reference *r, const ccd_state *st, int k)
{
    const size_t nodes = (size_t)st->n_users + st->n_items;
    r->bytes[k] = save(st, &r->len[k]);
    r->student[k] = copy_floats(st->student, nodes * st->student_dim);
    for (int m = 0; m < st->n_teachers; m++) {
        r->teacher_len[k][m] = nodes * st->teacher_spec[m].dim;
        r->teacher[k][m] = copy_floats(st->teacher[m], r->teacher_len[k][m]);
    }
}

static void reference_free(reference *r)
{
    for (int k = 0; k < BLOCKS; k++) {
        free(r->bytes[k]);
        free(r->student[k]);
        for (int m = 0; m < CCD_MAX_TEACHERS; m++)
            free(r->teacher[k][m]);
    }
}

/* The teachers hook of these tests: each teacher's ccd_teacher_update in turn, under its own
 * thread count, compared with the reference's table when there is one. */
typedef struct {
    const reference *ref;
    int threads[CCD_MAX_TEACHERS];
    bool reverse;
    int calls;
    double seconds;
} job_runner;

static int run_jobs(void *ctx, const ccd_teacher_inputs *in, float **out)
{
    job_runner *j = ctx;
    const int n = in->prev->n_teachers, k = in->blk->index;
    const size_t nodes = (size_t)in->blk->n_users + in->blk->n_items;
    j->calls++;
    assert_true(k >= 1);
    if (j->ref) /* the block step hands out CL_k as it commits it */
        assert_memory_equal(in->student, j->ref->student[k],
                            nodes * in->prev->student_dim * sizeof(float));
    int rc = 0;
    for (int q = 0; q < n && rc == 0; q++) {
        const int m = j->reverse ? n - 1 - q : q;
        char err[256];
        double s = 0.0;
        ccd_set_threads(j->threads[m]);
        rc = ccd_teacher_update(in, m, NULL, &out[m], &s, err, sizeof err);
        ccd_set_threads(STEP_THREADS);
        if (rc != 0)
            fail_msg("teacher %d, block %d: %s", m, k, err);
        j->seconds += s;
        if (j->ref) {
            assert_memory_equal(out[m], j->ref->teacher[k][m],
                                j->ref->teacher_len[k][m] * sizeof(float));
        }
    }
    return rc;
}

/* The same, every teacher in its own thread at once (each on the thread count set when the
 * process started: ccd_set_threads must not run alongside). */
typedef struct {
    const ccd_teacher_inputs *in;
    int m, rc;
    float **out;
    char err[256];
} job_thread;

static void *job_main(void *v)
{
    job_thread *j = v;
    j->rc = ccd_teacher_update(j->in, j->m, NULL, &j->out[j->m], NULL, j->err, sizeof j->err);
    return NULL;
}

static int run_jobs_at_once(void *ctx, const ccd_teacher_inputs *in, float **out)
{
    job_runner *r = ctx;
    const int n = in->prev->n_teachers;
    job_thread jt[CCD_MAX_TEACHERS];
    pthread_t th[CCD_MAX_TEACHERS];
    r->calls++;
    for (int m = 0; m < n; m++) {
        jt[m] = (job_thread){.in = in, .m = m, .out = out};
        assert_int_equal(pthread_create(&th[m], NULL, job_main, &jt[m]), 0);
    }
    for (int m = 0; m < n; m++)
        assert_int_equal(pthread_join(th[m], NULL), 0);
    for (int m = 0; m < n; m++) {
        if (jt[m].rc != 0)
            fail_msg("teacher %d: %s", m, jt[m].err);
        assert_memory_equal(out[m], r->ref->teacher[in->blk->index][m],
                            r->ref->teacher_len[in->blk->index][m] * sizeof(float));
    }
    return 0;
}

/* The stream on a fresh state, hooks may be NULL; each state compared with the reference's or
 * (ref without bytes) kept into it. */
static void run_stream(const ccd_config *cfg, ccd_block *blocks, const ccd_block_hooks *hooks,
                       reference *ref, bool build)
{
    ccd_state st;
    ccd_state_init(&st);
    char err[256];
    ccd_set_threads(STEP_THREADS);
    for (int k = 0; k < BLOCKS; k++) {
        ccd_block_report rep;
        if (ccd_block_step(&st, cfg, &blocks[k], blocks, k + 1, &rep, hooks, err, sizeof err) != 0)
            fail_msg("block %d: %s", k, err);
        ccd_block_report_free(&rep);
        if (build) {
            keep(ref, &st, k);
            continue;
        }
        size_t len;
        unsigned char *bytes = save(&st, &len);
        assert_int_equal(len, ref->len[k]);
        assert_memory_equal(bytes, ref->bytes[k], len);
        free(bytes);
    }
    ccd_state_free(&st);
}

static void standalone_teachers_equal_the_block_steps(void **state)
{
    (void)state;
    ccd_block blocks[BLOCKS];
    make_blocks(blocks);
    ccd_config cfg;
    wide_config(&cfg);
    cfg.parallel_teachers = true; /* two threads, two teachers: side by side */
    cfg.parallel_teachers_max_mb = 0;
    reference ref;
    memset(&ref, 0, sizeof ref);
    run_stream(&cfg, blocks, NULL, &ref, true);
    /* one after the other, last teacher first, on 1 and 3 threads */
    job_runner a = {.ref = &ref, .threads = {3, 1}, .reverse = true};
    ccd_block_hooks ha = {.teachers = run_jobs, .ctx = &a};
    cfg.parallel_teachers = false; /* block 0's base teachers one at a time, too */
    run_stream(&cfg, blocks, &ha, &ref, false);
    assert_int_equal(a.calls, BLOCKS - 1);
    /* in order, on 1 and 2 threads, the step's base teachers side by side again */
    job_runner b = {.ref = &ref, .threads = {1, 2}};
    ccd_block_hooks hb = {.teachers = run_jobs, .ctx = &b};
    cfg.parallel_teachers = true;
    run_stream(&cfg, blocks, &hb, &ref, false);
    assert_int_equal(b.calls, BLOCKS - 1);
    /* both at once, in two threads of this process */
    job_runner c = {.ref = &ref};
    ccd_block_hooks hc = {.teachers = run_jobs_at_once, .ctx = &c};
    run_stream(&cfg, blocks, &hc, &ref, false);
    assert_int_equal(c.calls, BLOCKS - 1);
    print_message("standalone teacher updates: %.2f s and %.2f s over %d blocks\n", a.seconds,
                  b.seconds, BLOCKS - 1);
    reference_free(&ref);
    free_blocks(blocks);
}

/* The same with the scoring history on (history_blocks = 0): a standalone update rebuilds the
 * history's graph from the state and the block, as the step does, and gets the same teachers. */
static void standalone_teachers_equal_the_block_steps_with_history(void **state)
{
    (void)state;
    ccd_block blocks[BLOCKS];
    make_blocks(blocks);
    ccd_config cfg;
    wide_config(&cfg);
    cfg.history_blocks = 0;
    reference ref;
    memset(&ref, 0, sizeof ref);
    run_stream(&cfg, blocks, NULL, &ref, true);
    job_runner b = {.ref = &ref, .threads = {1, 2}};
    ccd_block_hooks hb = {.teachers = run_jobs, .ctx = &b};
    run_stream(&cfg, blocks, &hb, &ref, false);
    assert_int_equal(b.calls, BLOCKS - 1);
    reference_free(&ref);
    free_blocks(blocks);
}

/* A teachers hook that keeps CL_k and returns what it is told: CCD_STOPPED, -1 after filling
 * out[0] (the engine must free it), or 0 with out[last] left NULL. */
typedef struct {
    float *student;
    int rc;
    bool fill_first;
} odd_hook;

static int odd_teachers(void *ctx, const ccd_teacher_inputs *in, float **out)
{
    odd_hook *h = ctx;
    const size_t nodes = (size_t)in->blk->n_users + in->blk->n_items;
    if (!h->student)
        h->student = copy_floats(in->student, nodes * in->prev->student_dim);
    if (h->fill_first)
        for (int m = 0; m < in->prev->n_teachers - 1; m++)
            out[m] = calloc(nodes * in->prev->teacher_spec[m].dim, sizeof(float));
    return h->rc;
}

/* ccd_block_step on block 1 must return want and leave st's bytes as before. */
static void step_fails(ccd_state *st, const ccd_config *cfg, ccd_block *blocks,
                       const ccd_block_hooks *hooks, int want, const char *says)
{
    size_t before_len, after_len;
    unsigned char *before = save(st, &before_len);
    ccd_block_report rep;
    char err[256] = "";
    assert_int_equal(ccd_block_step(st, cfg, &blocks[1], blocks, 2, &rep, hooks, err, sizeof err),
                     want);
    ccd_block_report_free(&rep);
    if (!strstr(err, says))
        fail_msg("error \"%s\" does not say \"%s\"", err, says);
    unsigned char *after = save(st, &after_len);
    assert_int_equal(after_len, before_len);
    assert_memory_equal(after, before, before_len);
    free(before), free(after);
}

/* ccd_teacher_update(in, m) with the stop flag as given: rc, and *out NULL unless it succeeded. */
static float *update(const ccd_teacher_inputs *in, int m, int raised, int want)
{
    atomic_int stop = raised;
    float *out = (float *)&stop; /* must be reset */
    char err[256] = "";
    double s = -1.0;
    int rc = ccd_teacher_update(in, m, &stop, &out, &s, err, sizeof err);
    if (rc != want)
        fail_msg("teacher %d: rc %d (%s), want %d", m, rc, err, want);
    assert_true(s >= 0.0);
    if (rc != 0) {
        assert_null(out);
        assert_true(err[0] != '\0');
    }
    return out;
}

static void failures_leave_nothing_behind(void **state)
{
    (void)state;
    ccd_block blocks[BLOCKS];
    make_blocks(blocks);
    ccd_config cfg;
    wide_config(&cfg);
    cfg.parallel_teachers = true;
    ccd_set_threads(STEP_THREADS);
    ccd_state st;
    ccd_state_init(&st);
    char err[256];
    ccd_block_report rep;
    assert_int_equal(ccd_block_step(&st, &cfg, &blocks[0], blocks, 1, &rep, NULL, err, sizeof err),
                     0);
    ccd_block_report_free(&rep);
    /* hooks that stop, fail after allocating, or leave a table out: the state stays block 0's */
    odd_hook h = {.rc = CCD_STOPPED};
    ccd_block_hooks hooks = {.teachers = odd_teachers, .ctx = &h};
    step_fails(&st, &cfg, blocks, &hooks, CCD_STOPPED, "stopped");
    h = (odd_hook){.student = h.student, .rc = -1, .fill_first = true};
    step_fails(&st, &cfg, blocks, &hooks, -1, "teachers hook failed");
    h.rc = 0;
    step_fails(&st, &cfg, blocks, &hooks, -1, "left a teacher's table out");
    /* CL_1 as the hook saw it: the standalone update refuses bad inputs, stops cleanly */
    ccd_teacher_inputs in = {.prev = &st, .cfg = &cfg, .blk = &blocks[1], .student = h.student};
    update(&in, 1, 1, CCD_STOPPED);
    update(&in, 0, 1, CCD_STOPPED);
    update(&in, 2, 0, -1);
    update(&in, -1, 0, -1);
    ccd_teacher_inputs wrong = in;
    wrong.blk = &blocks[2];
    update(&wrong, 0, 0, -1);
    ccd_config kept = cfg;
    kept.update_teachers = false;
    wrong = in;
    wrong.cfg = &kept;
    update(&wrong, 0, 0, -1);
    /* and, unstopped, gives the block step's T_{m,1} */
    float *t[2] = {update(&in, 0, 0, 0), update(&in, 1, 0, 0)};
    assert_int_equal(ccd_block_step(&st, &cfg, &blocks[1], blocks, 2, &rep, NULL, err, sizeof err),
                     0);
    ccd_block_report_free(&rep);
    const size_t nodes = (size_t)USERS[1] + ITEMS[1];
    for (int m = 0; m < 2; m++) {
        assert_memory_equal(t[m], st.teacher[m], nodes * cfg.teachers[m].dim * sizeof(float));
        free(t[m]);
    }
    free(h.student);
    ccd_state_free(&st);
    free_blocks(blocks);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(standalone_teachers_equal_the_block_steps),
        cmocka_unit_test(standalone_teachers_equal_the_block_steps_with_history),
        cmocka_unit_test(failures_leave_nothing_behind),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
