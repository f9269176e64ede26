/* The CCD engine on small cases: the relaxed ranking loss and its gradient, the proxy EMA, state
 * save/load (round trip, every truncation, bit flips), and a three-block run of the whole
 * pipeline on a small synthetic stream that must be reproducible across a save/load between
 * blocks. */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ccd.h"
#include "dense.h"
#include "distill.h"
#include "rng.h"
#include "state.h"
#include "train.h"

#include "engine_fixture.h"

static void rrd_loss_by_hand_and_finite_differences(void **state)
{
    (void)state;
    /* k = 2, one negative: l = [log(e^a + e^b + e^c) - a] + [log(e^b + e^c) - b] */
    float pos[2] = {0.3f, -0.2f}, neg[1] = {0.5f}, dpos[2], dneg[1];
    double l = ccd_rrd_loss(pos, 2, neg, 1, dpos, dneg);
    double a = 0.3, b = -0.2, c = 0.5;
    double want = log(exp(a) + exp(b) + exp(c) + 1e-8) - a + log(exp(b) + exp(c) + 1e-8) - b;
    assert_float_equal(l, want, 1e-6);
    /* finite differences on a bigger random row, including a clamped score (> 10) */
    ccd_rng r;
    ccd_rng_init(&r, 4, 0);
    enum { K = 6, N = 9 };
    float p[K], n[N], dp[K], dn[N];
    for (int k = 0; k < K; k++)
        p[k] = ccd_rng_normal(&r);
    for (int k = 0; k < N; k++)
        n[k] = ccd_rng_normal(&r);
    p[2] = 12.0f; /* clamped: no gradient */
    ccd_rrd_loss(p, K, n, N, dp, dn);
    assert_float_equal(dp[2], 0.0f, 0.0f);
    const float h = 1e-3f;
    for (int k = 0; k < K + N; k++) {
        float *x = k < K ? &p[k] : &n[k - K];
        if (*x > 10.0f)
            continue;
        float keep = *x, t1[K], t2[N];
        *x = keep + h;
        double lp = ccd_rrd_loss(p, K, n, N, t1, t2);
        *x = keep - h;
        double lm = ccd_rrd_loss(p, K, n, N, t1, t2);
        *x = keep;
        double fd = (lp - lm) / (2 * h), an = k < K ? dp[k] : dn[k - K];
        assert_true(fabs(fd - an) < 2e-3 * fmax(1.0, fabs(fd)));
    }
}

/* The uninteresting draw of a row, in each of its three regimes (all eligible; drop a few;
 * rejection draws): the right count, distinct, never a skipped column, in ascending order, the
 * same set from the same stream, the bitmap left clear, and each eligible column drawn about
 * equally often over many streams. */
static void assert_bits_clear(const uint64_t *taken, int words)
{
    for (int w = 0; w < words; w++)
        assert_true(taken[w] == 0);
}

static void uninteresting_draws_are_repeatable_uniform_samples_of_the_eligible(void **state)
{
    (void)state;
    enum { N = 200, SKIP = 30 };
    int skip[SKIP];
    for (int s = 0; s < SKIP; s++)
        skip[s] = 3 + 6 * s; /* sorted, unique */
    const int eligible = N - SKIP;
    uint64_t taken[N / 64 + 1] = {0};
    int out[N], again[N];
    const int wants[] = {0, 10, 100, 170, 500};
    for (size_t w = 0; w < sizeof wants / sizeof *wants; w++) {
        int want = wants[w], expect = want < eligible ? want : eligible;
        int n = ccd_uninteresting_draw(7, 1000 + w, N, skip, SKIP, want, taken, out);
        assert_int_equal(n, expect);
        assert_bits_clear(taken, N / 64 + 1);
        int seen[N] = {0};
        for (int j = 0; j < n; j++) {
            assert_true(out[j] >= 0 && out[j] < N);
            assert_int_equal(seen[out[j]]++, 0);
            assert_true(j == 0 || out[j] > out[j - 1]);
            for (int s = 0; s < SKIP; s++)
                assert_int_not_equal(out[j], skip[s]);
        }
        int m = ccd_uninteresting_draw(7, 1000 + w, N, skip, SKIP, want, taken, again);
        assert_int_equal(m, n);
        assert_memory_equal(out, again, (size_t)n * sizeof *out);
    }
    /* another stream, another set */
    int a = ccd_uninteresting_draw(7, 1, N, skip, SKIP, 10, taken, out);
    int b = ccd_uninteresting_draw(7, 2, N, skip, SKIP, 10, taken, again);
    assert_int_equal(a, b);
    assert_true(memcmp(out, again, (size_t)a * sizeof *out) != 0);
    /* uniform over the eligible columns, in the rejection (10) and drop (100) regimes */
    const int partial[] = {10, 100};
    for (int w = 0; w < 2; w++) {
        enum { ROWS = 4000 };
        int count[N] = {0};
        for (int r = 0; r < ROWS; r++) {
            int n = ccd_uninteresting_draw(3, (uint64_t)r, N, skip, SKIP, partial[w], taken, out);
            for (int j = 0; j < n; j++)
                count[out[j]]++;
        }
        double expect = (double)ROWS * partial[w] / eligible, chi2 = 0.0;
        for (int c = 0; c < N; c++) {
            int skipped = c >= 3 && (c - 3) % 6 == 0 && (c - 3) / 6 < SKIP;
            if (skipped)
                assert_int_equal(count[c], 0);
            else
                chi2 += (count[c] - expect) * (count[c] - expect) / expect;
        }
        /* 169 degrees of freedom (the drop regime is a fixed-size sample: smaller still) */
        assert_true(chi2 < 250.0);
    }
    assert_bits_clear(taken, N / 64 + 1);
    /* a sparse draw on a catalogue with more bitmap words than draws keeps the order drawn:
     * still distinct, never skipped, the bitmap clear */
    enum { BIG = 100000 };
    uint64_t *big = calloc(BIG / 64 + 1, sizeof *big);
    int *drawn = malloc(BIG * sizeof *drawn);
    assert_non_null(big);
    assert_non_null(drawn);
    int n = ccd_uninteresting_draw(5, 9, BIG, skip, SKIP, 40, big, drawn);
    assert_int_equal(n, 40);
    assert_bits_clear(big, BIG / 64 + 1);
    int ascending = 1;
    for (int j = 0; j < n; j++) {
        for (int i = 0; i < j; i++)
            assert_int_not_equal(drawn[i], drawn[j]);
        for (int s = 0; s < SKIP; s++)
            assert_int_not_equal(drawn[j], skip[s]);
        ascending &= j == 0 || drawn[j] > drawn[j - 1];
    }
    assert_false(ascending); /* 40 uniform draws from 100,000 are not sorted by chance */
    free(big), free(drawn);
}

/* The sizes that follow the data give the reference's numbers on Yelp's blocks, stop growing on
 * large catalogues, and batches grow only past batch_growth_pairs. */
static void data_size_rules_give_yelps_numbers(void **state)
{
    (void)state;
    static const int yelp_items[] = {10822, 11344, 11629, 11970, 12197, 12261};
    static const int yelp_users[] = {12248, 13367, 13896, 14399, 14761, 14950};
    for (int k = 0; k < 6; k++) {
        assert_int_equal(ccd_rule_unint_items(yelp_items[k]), 10000);
        assert_int_equal(ccd_rule_unint_users(yelp_users[k]), 11500);
    }
    assert_int_equal(ccd_rule_unint_items(2000), 1850);
    assert_int_equal(ccd_rule_unint_users(1000), 940);
    assert_int_equal(ccd_rule_unint_items(175000), 10000);
    assert_int_equal(ccd_rule_unint_users(195000), 11500);
    ccd_config c;
    ccd_config_yelp(&c);
    assert_int_equal(c.kd_uninteresting_items, CCD_AUTO);
    assert_true(ccd_batch_growth(&c, 117367, 12248 + 10822) == 1.0); /* Yelp's block 0 */
    assert_true(ccd_batch_growth(&c, 32691, 14950 + 12261) == 1.0);  /* and its largest ids */
    assert_true(ccd_batch_growth(&c, 2 * c.batch_growth_pairs, 1000) == 2.0);
    /* a small window on a large model: the id space sets the growth */
    assert_true(ccd_batch_growth(&c, 30000, 3 * c.batch_growth_nodes) == 3.0);
    c.batch_growth_pairs = 0;
    c.batch_growth_nodes = 0;
    assert_true(ccd_batch_growth(&c, 10000000, 10000000) == 1.0);
}

static void proxy_merge_blends_old_rows_and_copies_new_ones(void **state)
{
    (void)state;
    /* old proxy: 1 user, 1 item, dim 2; D: 2 users, 2 items */
    float old[4] = {1, 2, 3, 4};
    float d[8] = {10, 20, 30, 40, 50, 60, 70, 80};
    float *p = ccd_proxy_merge(old, 1, 1, d, 2, 2, 2, 0.9f);
    assert_non_null(p);
    float want[8] = {0.9f * 1 + 0.1f * 10, 0.9f * 2 + 0.1f * 20, 30, 40,
                     0.9f * 3 + 0.1f * 50, 0.9f * 4 + 0.1f * 60, 70, 80};
    for (int k = 0; k < 8; k++)
        assert_float_equal(p[k], want[k], 1e-5);
    free(p);
}

/* ------------------------------------------------------------------------------------------ */
/* a small synthetic stream: latent clusters, new users and items in every block */

static unsigned char *save(const ccd_state *st, size_t *len)
{
    unsigned char *buf;
    assert_int_equal(ccd_state_serialize(st, &buf, len), 0);
    return buf;
}

static void pipeline_runs_and_resumes_from_a_checkpoint(void **state)
{
    (void)state;
    ccd_block blocks[BLOCKS];
    make_blocks(blocks);
    ccd_config cfg;
    small_config(&cfg);
    ccd_state st, resumed;
    ccd_state_init(&st);
    char err[256];
    unsigned char *ckpt = NULL;
    size_t ckpt_len = 0;
    for (int k = 0; k < BLOCKS; k++) {
        ccd_block_report rep;
        if (ccd_block_step(&st, &cfg, &blocks[k], blocks, k + 1, &rep, NULL, err, sizeof err) != 0)
            fail_msg("block %d: %s", k, err);
        for (int j = 0; j <= k; j++) {
            assert_true(rep.student[j].test.n_users > 0);
            assert_true(rep.student[j].test.recall[CCD_K20] >= 0 &&
                        rep.student[j].test.recall[CCD_K20] <= 1);
            assert_true(rep.ensemble[j].test.recall[CCD_K20] > 0);
        }
        /* the clustered stream is learnable: the ensemble finds the clusters */
        assert_true(rep.ensemble[k].test.recall[CCD_K20] > 0.3);
        ccd_block_report_free(&rep);
        assert_int_equal(st.block, k);
        assert_int_equal(st.n_users, USERS[k]);
        if (k == 1)
            ckpt = save(&st, &ckpt_len);
    }
    /* resume from the block-1 checkpoint: the same block 2 gives bit-identical models */
    if (ccd_state_deserialize(&resumed, ckpt, ckpt_len, err, sizeof err) != 0)
        fail_msg("%s", err);
    size_t again_len;
    unsigned char *again = save(&resumed, &again_len);
    assert_int_equal(again_len, ckpt_len);
    assert_memory_equal(again, ckpt, ckpt_len);
    free(again);
    ccd_block_report rep;
    if (ccd_block_step(&resumed, &cfg, &blocks[2], blocks, 3, &rep, NULL, err, sizeof err) != 0)
        fail_msg("resumed block 2: %s", err);
    ccd_block_report_free(&rep);
    size_t na, nb;
    unsigned char *a = save(&st, &na), *b = save(&resumed, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na);
    free(a), free(b);

    /* every truncation and a bit flip anywhere is refused cleanly */
    ccd_state bad;
    for (size_t cut = 0; cut < ckpt_len; cut += 1 + cut / 7)
        assert_int_equal(ccd_state_deserialize(&bad, ckpt, cut, err, sizeof err), -1);
    for (size_t at = 0; at < ckpt_len; at += 1 + ckpt_len / 97) {
        ckpt[at] ^= 0x10;
        assert_int_equal(ccd_state_deserialize(&bad, ckpt, ckpt_len, err, sizeof err), -1);
        ckpt[at] ^= 0x10;
    }
    assert_int_equal(ccd_state_deserialize(&bad, ckpt, ckpt_len, err, sizeof err), 0);
    ccd_state_free(&bad);
    free(ckpt);
    ccd_state_free(&resumed);
    ccd_state_free(&st);
    free_blocks(blocks);
}

/* The worker's hooks: student_ready fires once per block with CL_k's propagated embeddings
 * (before the teacher side), and a raised stop flag abandons the block leaving the state as
 * it was. */
typedef struct {
    int calls, n_users, n_items, dim;
    float first, recall;
    atomic_int stop;
    int stop_at_call; /* raise stop from inside student_ready at this call (0: never) */
} hook_probe;

static int probe_ready(void *ctx, const float *final, int n_users, int n_items, int dim,
                       const ccd_block_metrics *metrics)
{
    hook_probe *p = ctx;
    p->calls++;
    p->n_users = n_users, p->n_items = n_items, p->dim = dim;
    p->first = final[0];
    p->recall = (float)metrics->test.recall[CCD_K20];
    if (p->calls == p->stop_at_call)
        atomic_store(&p->stop, 1);
    return 0;
}

static void hooks_publish_early_and_stop_cleanly(void **state)
{
    (void)state;
    ccd_block blocks[BLOCKS];
    make_blocks(blocks);
    ccd_config cfg;
    small_config(&cfg);
    ccd_state st;
    ccd_state_init(&st);
    char err[256];
    hook_probe p = {.stop_at_call = 2};
    ccd_block_hooks hooks = {.student_ready = probe_ready, .stop = &p.stop, .ctx = &p};
    ccd_block_report rep;
    assert_int_equal(
        ccd_block_step(&st, &cfg, &blocks[0], blocks, 1, &rep, &hooks, err, sizeof err), 0);
    ccd_block_report_free(&rep);
    assert_int_equal(p.calls, 1);
    assert_int_equal(p.n_users, USERS[0]);
    assert_int_equal(p.dim, cfg.student_dim);
    assert_true(p.recall > 0.0f && p.recall <= 1.0f);
    unsigned char *before;
    size_t before_len;
    before = save(&st, &before_len);
    /* block 1: the student is announced, then the stop raised inside the hook abandons the
     * teacher side; the state must still be block 0's, byte for byte */
    assert_int_equal(
        ccd_block_step(&st, &cfg, &blocks[1], blocks, 2, &rep, &hooks, err, sizeof err),
        CCD_STOPPED);
    ccd_block_report_free(&rep);
    assert_int_equal(p.calls, 2);
    assert_int_equal(p.n_users, USERS[1]);
    size_t after_len;
    unsigned char *after = save(&st, &after_len);
    assert_int_equal(after_len, before_len);
    assert_memory_equal(after, before, before_len);
    free(after);
    /* lowered again, the same block runs to the end */
    atomic_store(&p.stop, 0);
    p.stop_at_call = 0;
    assert_int_equal(
        ccd_block_step(&st, &cfg, &blocks[1], blocks, 2, &rep, &hooks, err, sizeof err), 0);
    ccd_block_report_free(&rep);
    assert_int_equal(st.block, 1);
    /* a stop raised before the bootstrap leaves an empty state */
    ccd_state fresh;
    ccd_state_init(&fresh);
    atomic_store(&p.stop, 1);
    assert_int_equal(
        ccd_block_step(&fresh, &cfg, &blocks[0], blocks, 1, &rep, &hooks, err, sizeof err),
        CCD_STOPPED);
    ccd_block_report_free(&rep);
    assert_int_equal(fresh.block, -1);
    assert_null(fresh.student);
    free(before);
    ccd_state_free(&st);
    free_blocks(blocks);
}

/* Runs blocks [from, to) on st (each evaluated on the blocks so far); fails naming the block. */
static void run_blocks(ccd_state *st, const ccd_config *cfg, ccd_block *blocks, int from, int to,
                       const char *what)
{
    char err[256];
    for (int k = from; k < to; k++) {
        ccd_block_report rep;
        if (ccd_block_step(st, cfg, &blocks[k], blocks, k + 1, &rep, NULL, err, sizeof err) != 0)
            fail_msg("%s, block %d: %s", what, k, err);
        assert_true(rep.student[k].test.n_users > 0);
        ccd_block_report_free(&rep);
    }
}

/* Every ccd_rng_init of a run: (seed, stream, call site). */
typedef struct {
    uint64_t seed, stream;
    const void *caller;
} traced_init;
static pthread_mutex_t trace_lock = PTHREAD_MUTEX_INITIALIZER;
static traced_init *traced;
static size_t n_traced, cap_traced;

static void trace_init(uint64_t seed, uint64_t stream, const void *caller)
{
    pthread_mutex_lock(&trace_lock);
    if (n_traced == cap_traced) {
        cap_traced = cap_traced ? 2 * cap_traced : 4096;
        traced = realloc(traced, cap_traced * sizeof *traced);
    }
    if (traced)
        traced[n_traced++] = (traced_init){seed, stream, caller};
    pthread_mutex_unlock(&trace_lock);
}

static int cmp_traced(const void *a, const void *b)
{
    const traced_init *x = a, *y = b;
    if (x->seed != y->seed)
        return x->seed < y->seed ? -1 : 1;
    if (x->stream != y->stream)
        return x->stream < y->stream ? -1 : 1;
    return 0;
}

/* No two consumers share a random sequence: over three blocks of the whole pipeline, a (seed,
 * stream) pair is only ever seeded again by the code that seeded it first (the uninteresting
 * draws regenerate a row's set on purpose). The hex-literal streams collided at blocks 1 and 2:
 * 0x5300 + k, the student's replay draws, was 0x5301, its initial table, at k = 1. */
static void random_streams_never_collide(void **state)
{
    (void)state;
    ccd_block blocks[BLOCKS];
    make_blocks(blocks);
    ccd_config cfg;
    small_config(&cfg);
    cfg.kd_absent_users = true; /* its stream too */
    ccd_state st;
    ccd_state_init(&st);
    n_traced = 0;
    ccd_rng_trace = trace_init;
    run_blocks(&st, &cfg, blocks, 0, BLOCKS, "traced run");
    ccd_rng_trace = NULL;
    assert_non_null(traced);
    assert_true(n_traced > 100);
    qsort(traced, n_traced, sizeof *traced, cmp_traced);
    size_t shared = 0;
    for (size_t t = 1; t < n_traced; t++)
        if (cmp_traced(&traced[t - 1], &traced[t]) == 0) {
            shared++;
            if (traced[t - 1].caller != traced[t].caller)
                fail_msg("seed %llu stream %#llx seeded from two places",
                         (unsigned long long)traced[t].seed, (unsigned long long)traced[t].stream);
        }
    assert_true(shared > 0); /* the regenerated uninteresting sets were seen */
    free(traced);
    traced = NULL;
    n_traced = cap_traced = 0;
    ccd_state_free(&st);
    free_blocks(blocks);
}

/* Evaluation on a user sample: about the asked number of users keep their valid and test rows,
 * the same users in both splits and in every call, train untouched; a large enough bound keeps
 * everything. */
static void evaluation_user_sample_is_repeatable(void **state)
{
    (void)state;
    ccd_block blocks[BLOCKS];
    make_blocks(blocks);
    ccd_block *b = &blocks[0];
    int n_test = 0;
    for (int u = 0; u < b->test.n_rows; u++)
        n_test += ccd_csr_row_len(&b->test, u) > 0;
    int64_t train_nnz = b->train.nnz;
    assert_int_equal(ccd_block_sample_eval(b, n_test, 5), n_test); /* nothing to drop */
    int want = n_test / 4;
    int kept = ccd_block_sample_eval(b, want, 5);
    assert_true(kept > want / 2 && kept < want * 2);
    assert_int_equal(b->train.nnz, train_nnz);
    for (int u = 0; u < b->test.n_rows; u++)
        if (ccd_csr_row_len(&b->test, u) == 0)
            assert_int_equal(ccd_csr_row_len(&b->valid, u), 0);
    ccd_block again[BLOCKS];
    make_blocks(again);
    assert_int_equal(ccd_block_sample_eval(&again[0], want, 5), kept);
    assert_int_equal(again[0].test.nnz, b->test.nnz);
    assert_memory_equal(again[0].test.indptr, b->test.indptr,
                        ((size_t)b->test.n_rows + 1) * sizeof *b->test.indptr);
    free_blocks(again);
    free_blocks(blocks);
}

static void ablation_switches_run(void **state)
{
    (void)state;
    ccd_block blocks[BLOCKS];
    make_blocks(blocks);
    for (int variant = 0; variant < 2; variant++) {
        ccd_config cfg;
        small_config(&cfg);
        if (variant == 0)
            ccd_config_finetune(&cfg);
        else
            cfg.collaborative = false;
        ccd_state st;
        ccd_state_init(&st);
        run_blocks(&st, &cfg, blocks, 0, BLOCKS,
                   variant == 0 ? "fine-tune only" : "no collaborative half");
        if (variant == 0) {
            assert_null(st.proxy_s); /* fine-tune only keeps no proxies */
            /* ... nor a D_k after block 0: D_0 is sized for block 0's ids, and serializing it
             * with the state's larger sizes read past its end (ASan) */
            assert_null(st.distilled);
            size_t len;
            unsigned char *buf = save(&st, &len);
            ccd_state back;
            ccd_state_init(&back);
            char err[256];
            assert_int_equal(ccd_state_deserialize(&back, buf, len, err, sizeof err), 0);
            assert_null(back.distilled);
            size_t len2;
            unsigned char *buf2 = save(&back, &len2);
            assert_int_equal(len2, len);
            assert_memory_equal(buf2, buf, len);
            free(buf2);
            free(buf);
            ccd_state_free(&back);
        }
        ccd_state_free(&st);
    }
    free_blocks(blocks);
}

/* Batches that grow with the block (batch_growth_pairs far below the blocks' sizes) and LWC-KD's
 * sampled softmax: every stage, the replay passes, LWC-KD's per-batch buffers and the item pass
 * run with the larger batches
 * (ASan watches the buffers), the ensemble still learns the clusters, the evaluation time is
 * reported, and the models differ from fixed batches (the switch acts). */
static void grown_batches_run_every_stage(void **state)
{
    (void)state;
    ccd_block blocks[BLOCKS];
    make_blocks(blocks);
    unsigned char *saved[2];
    size_t len[2];
    for (int grow = 0; grow < 2; grow++) {
        ccd_config cfg;
        small_config(&cfg);
        cfg.batch_growth_pairs = grow ? 150 : 0;
        cfg.batch_growth_nodes = 0;
        cfg.lwc_max_neighbours = grow ? 20 : 0; /* and LWC-KD's sampled softmax */
        assert_true(ccd_batch_growth(&cfg, blocks[0].train.nnz, 0) > (grow ? 2.0 : 0.99));
        ccd_state st;
        ccd_state_init(&st);
        char err[256];
        for (int k = 0; k < BLOCKS; k++) {
            ccd_block_report rep;
            if (ccd_block_step(&st, &cfg, &blocks[k], blocks, k + 1, &rep, NULL, err, sizeof err) !=
                0)
                fail_msg("growth %d, block %d: %s", grow, k, err);
            /* summed over the teachers trained side by side, one thread each: it may pass the
             * block's wall time on a busy machine, never that times the threads */
            assert_true(rep.seconds_eval > 0.0 &&
                        rep.seconds_eval <= rep.seconds_total * ccd_threads());
            assert_true(rep.ensemble[k].test.recall[CCD_K20] > 0.3);
            assert_true(rep.student[k].test.recall[CCD_K20] > 0.0);
            ccd_block_report_free(&rep);
        }
        saved[grow] = save(&st, &len[grow]);
        ccd_state_free(&st);
    }
    assert_int_equal(len[0], len[1]);
    assert_true(memcmp(saved[0], saved[1], len[0]) != 0);
    free(saved[0]), free(saved[1]);
    free_blocks(blocks);
}

/* student_continues: CL_k starts from CL_{k-1}, not from D_{k-1}. With no student epochs the
 * old rows of CL_2 are exactly the starting model's, so the two settings can be told apart. */
static void student_starts_from_the_chosen_model(void **state)
{
    (void)state;
    ccd_block blocks[BLOCKS];
    make_blocks(blocks);
    for (int continues = 0; continues < 2; continues++) {
        ccd_config cfg;
        small_config(&cfg);
        cfg.student.epochs = 0;
        cfg.student_continues = continues;
        ccd_state st;
        ccd_state_init(&st);
        const int ds = cfg.student_dim;
        run_blocks(&st, &cfg, blocks, 0, 2, continues ? "continues" : "from D");
        size_t n = (size_t)(USERS[1] + ITEMS[1]) * ds;
        float *cl1 = malloc(n * sizeof *cl1), *d1 = malloc(n * sizeof *d1);
        memcpy(cl1, st.student, n * sizeof *cl1);
        memcpy(d1, st.distilled, n * sizeof *d1);
        run_blocks(&st, &cfg, blocks, 2, BLOCKS, continues ? "continues" : "from D");
        const float *want = continues ? cl1 : d1, *other = continues ? d1 : cl1;
        int differs = 0;
        for (int u = 0; u < USERS[1]; u++)
            for (int c = 0; c < ds; c++) {
                assert_float_equal(st.student[(size_t)u * ds + c], want[(size_t)u * ds + c], 0.0f);
                differs |= other[(size_t)u * ds + c] != want[(size_t)u * ds + c];
            }
        for (int i = 0; i < ITEMS[1]; i++)
            for (int c = 0; c < ds; c++)
                assert_float_equal(st.student[(size_t)(USERS[2] + i) * ds + c],
                                   want[(size_t)(USERS[1] + i) * ds + c], 0.0f);
        assert_true(differs); /* D_1 and CL_1 are different models */
        free(cl1), free(d1);
        ccd_state_free(&st);
    }
    free_blocks(blocks);
}

/* kd_warm_start: D_k starts from CL_k. With no distillation epochs D_1 is exactly CL_1 when
 * warm, and a fresh random table when not. */
static void distillation_warm_starts_from_the_student(void **state)
{
    (void)state;
    ccd_block blocks[BLOCKS];
    make_blocks(blocks);
    for (int warm = 0; warm < 2; warm++) {
        ccd_config cfg;
        small_config(&cfg);
        cfg.kd.epochs = 0;
        cfg.kd_warm_start = warm;
        ccd_state st;
        ccd_state_init(&st);
        run_blocks(&st, &cfg, blocks, 0, 2, warm ? "warm" : "fresh");
        size_t n = (size_t)(USERS[1] + ITEMS[1]) * cfg.student_dim, same = 0;
        for (size_t q = 0; q < n; q++)
            same += st.distilled[q] == st.student[q];
        if (warm)
            assert_int_equal(same, n);
        else
            assert_true(same < n / 10);
        ccd_state_free(&st);
    }
    free_blocks(blocks);
}

/* kd_absent_users: block 1 has users with no train pair; the extra pass changes D_1, and two
 * runs with it are bit-identical. */
static void distillation_covers_absent_users(void **state)
{
    (void)state;
    ccd_block blocks[BLOCKS];
    make_blocks(blocks);
    int absent = 0;
    for (int u = 0; u < blocks[1].n_users; u++)
        absent += ccd_csr_row_len(&blocks[1].train, u) == 0;
    assert_true(absent > 0);
    float *d1[3];
    ccd_config cfg;
    small_config(&cfg);
    const size_t n = (size_t)(USERS[1] + ITEMS[1]) * cfg.student_dim;
    for (int run = 0; run < 3; run++) {
        small_config(&cfg);
        cfg.kd.epochs = 2;
        cfg.kd_absent_users = run > 0;
        ccd_state st;
        ccd_state_init(&st);
        run_blocks(&st, &cfg, blocks, 0, 2,
                   run > 0 ? "absent users distilled" : "batch users only");
        d1[run] = malloc(n * sizeof(float));
        assert_non_null(d1[run]);
        memcpy(d1[run], st.distilled, n * sizeof(float));
        ccd_state_free(&st);
    }
    assert_memory_not_equal(d1[0], d1[1], n * sizeof(float));
    assert_memory_equal(d1[1], d1[2], n * sizeof(float));
    for (int run = 0; run < 3; run++)
        free(d1[run]);
    free_blocks(blocks);
}

/* kd_hold_absent_users: a warm-started D_1 keeps CL_1's rows of block 1's users with no train
 * pair, bit for bit, while the other rows are distilled; and the switch changes D_1. */
static void distillation_holds_absent_users(void **state)
{
    (void)state;
    ccd_block blocks[BLOCKS];
    make_blocks(blocks);
    float *d1[2];
    ccd_config cfg;
    small_config(&cfg);
    const int ds = cfg.student_dim;
    const size_t n = (size_t)(USERS[1] + ITEMS[1]) * ds;
    for (int run = 0; run < 2; run++) {
        small_config(&cfg);
        cfg.kd.epochs = 2;
        cfg.kd_warm_start = true;
        cfg.kd_hold_absent_users = run > 0;
        ccd_state st;
        ccd_state_init(&st);
        run_blocks(&st, &cfg, blocks, 0, 2, run > 0 ? "absent users held" : "absent users move");
        int held = 0, moved = 0;
        for (int u = 0; u < blocks[1].n_users; u++) {
            const size_t off = (size_t)u * ds;
            const bool same = !memcmp(st.distilled + off, st.student + off, ds * sizeof(float));
            if (ccd_csr_row_len(&blocks[1].train, u) == 0)
                held += same;
            else
                moved += !same;
        }
        int absent = 0;
        for (int u = 0; u < blocks[1].n_users; u++)
            absent += ccd_csr_row_len(&blocks[1].train, u) == 0;
        assert_true(absent > 0);
        if (run > 0)
            assert_int_equal(held, absent); /* every absent user's row is CL_1's */
        else
            assert_true(held < absent); /* without the switch they move */
        assert_true(moved > 0);         /* the active users are distilled either way */
        d1[run] = malloc(n * sizeof(float));
        assert_non_null(d1[run]);
        memcpy(d1[run], st.distilled, n * sizeof(float));
        ccd_state_free(&st);
    }
    assert_memory_not_equal(d1[0], d1[1], n * sizeof(float));
    free(d1[0]), free(d1[1]);
    free_blocks(blocks);
}

/* The last of blocks[0..k] in which user u has a train pair, or -1 (by hand). */
static int last_active_block(ccd_block *blocks, int k, int u)
{
    for (int j = k; j >= 0; j--)
        if (u < blocks[j].train.n_rows && ccd_csr_row_len(&blocks[j].train, u) > 0)
            return j;
    return -1;
}

/* history_blocks: the state keeps, for every user, the pairs of the last block they had any in
 * (within the last N blocks; any for 0) with that block, a checkpoint carries them (as format
 * version 2; a state without them is still written as version 1), models are scored on them (so
 * D_k changes), and a run that switches it on from a state that kept none continues as one that
 * always had it. */
static void scoring_history_keeps_the_last_blocks(void **state)
{
    (void)state;
    ccd_block blocks[BLOCKS];
    make_blocks(blocks);
    ccd_config cfg;
    char err[256];
    const int keeps[3] = {1, 0, 2};
    float *distilled[3];
    int64_t nnz[3] = {0};
    const size_t n = (size_t)(USERS[2] + ITEMS[2]) * 4;
    for (int r = 0; r < 3; r++) {
        small_config(&cfg);
        cfg.history_blocks = keeps[r];
        ccd_state st;
        ccd_state_init(&st);
        run_blocks(&st, &cfg, blocks, 0, 2, "history");
        size_t len;
        unsigned char *ckpt = save(&st, &len);
        assert_int_equal(ckpt[8], keeps[r] == 1 ? 1 : 2); /* the format version's low byte */
        ccd_state resumed;
        if (ccd_state_deserialize(&resumed, ckpt, len, err, sizeof err) != 0)
            fail_msg("%s", err);
        run_blocks(&st, &cfg, blocks, 2, 3, "history");
        run_blocks(&resumed, &cfg, blocks, 2, 3, "history, resumed");
        size_t na, nb;
        unsigned char *a = save(&st, &na), *b = save(&resumed, &nb);
        assert_int_equal(na, nb);
        assert_memory_equal(a, b, na);
        free(a), free(b), free(ckpt);
        if (keeps[r] == 1) {
            assert_null(st.history.indptr);
        } else {
            int64_t expected = 0;
            for (int u = 0; u < USERS[2]; u++) {
                int last = last_active_block(blocks, 2, u);
                bool kept = last >= 0 && (keeps[r] == 0 || last > 2 - keeps[r]);
                for (int i = 0; i < ITEMS[2]; i++) {
                    bool in = kept && u < blocks[last].train.n_rows &&
                              ccd_csr_contains(&blocks[last].train, u, i);
                    expected += in;
                    assert_int_equal(ccd_csr_contains(&st.history, u, i), in);
                }
                for (int64_t e = st.history.indptr[u]; e < st.history.indptr[u + 1]; e++)
                    assert_int_equal((int)st.history.values[e], last);
            }
            assert_int_equal(st.history.nnz, expected);
            assert_true(expected > blocks[2].train.nnz);
            nnz[r] = expected;
        }
        distilled[r] = malloc(n * sizeof(float));
        assert_non_null(distilled[r]);
        memcpy(distilled[r], st.distilled, n * sizeof(float));
        ccd_state_free(&resumed);
        ccd_state_free(&st);
    }
    assert_memory_not_equal(distilled[0], distilled[1], n * sizeof(float));
    assert_memory_not_equal(distilled[1], distilled[2], n * sizeof(float));
    assert_true(nnz[1] > nnz[2]); /* some users' last pairs are older than two blocks */

    /* switched on after block 0 of a run without it: the same state as with it from the start */
    small_config(&cfg);
    ccd_state st;
    ccd_state_init(&st);
    run_blocks(&st, &cfg, blocks, 0, 1, "history off");
    cfg.history_blocks = 0;
    run_blocks(&st, &cfg, blocks, 1, 3, "history switched on");
    assert_memory_equal(st.distilled, distilled[1], n * sizeof(float));
    ccd_state_free(&st);
    for (int r = 0; r < 3; r++)
        free(distilled[r]);
    free_blocks(blocks);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rrd_loss_by_hand_and_finite_differences),
        cmocka_unit_test(uninteresting_draws_are_repeatable_uniform_samples_of_the_eligible),
        cmocka_unit_test(data_size_rules_give_yelps_numbers),
        cmocka_unit_test(evaluation_user_sample_is_repeatable),
        cmocka_unit_test(grown_batches_run_every_stage),
        cmocka_unit_test(proxy_merge_blends_old_rows_and_copies_new_ones),
        cmocka_unit_test(pipeline_runs_and_resumes_from_a_checkpoint),
        cmocka_unit_test(hooks_publish_early_and_stop_cleanly),
        cmocka_unit_test(ablation_switches_run),
        cmocka_unit_test(student_starts_from_the_chosen_model),
        cmocka_unit_test(distillation_warm_starts_from_the_student),
        cmocka_unit_test(distillation_covers_absent_users),
        cmocka_unit_test(distillation_holds_absent_users),
        cmocka_unit_test(scoring_history_keeps_the_last_blocks),
        cmocka_unit_test(random_streams_never_collide),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
