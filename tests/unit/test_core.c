/* Unit tests of libccd's core: RNG, CSR, graph normalisation, Adam, BPR sampler. */
#include <math.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "adam.h"
#include "bpr.h"
#include "dense.h"
#include "rng.h"
#include "sparse.h"

static void rng_is_reproducible_and_streams_differ(void **state)
{
    (void)state;
    ccd_rng a, b, c;
    ccd_rng_init(&a, 42, 0);
    ccd_rng_init(&b, 42, 0);
    ccd_rng_init(&c, 42, 1);
    int same_c = 0;
    for (int k = 0; k < 1000; k++) {
        uint64_t x = ccd_rng_next(&a), y = ccd_rng_next(&b), z = ccd_rng_next(&c);
        assert_true(x == y);
        same_c += x == z;
    }
    assert_int_equal(same_c, 0);
}

static void rng_below_is_in_range_and_roughly_uniform(void **state)
{
    (void)state;
    ccd_rng r;
    ccd_rng_init(&r, 7, 0);
    int count[10] = {0};
    const int n = 100000;
    for (int k = 0; k < n; k++) {
        uint32_t v = ccd_rng_below(&r, 10);
        assert_true(v < 10);
        count[v]++;
    }
    /* chi-square with 9 degrees of freedom; 27.9 is the 0.999 quantile */
    double chi = 0;
    for (int v = 0; v < 10; v++)
        chi += (count[v] - n / 10.0) * (count[v] - n / 10.0) / (n / 10.0);
    assert_true(chi < 27.9);
}

static void rng_normal_has_unit_moments(void **state)
{
    (void)state;
    ccd_rng r;
    ccd_rng_init(&r, 3, 0);
    double s = 0, s2 = 0;
    const int n = 200000;
    for (int k = 0; k < n; k++) {
        double x = ccd_rng_normal(&r);
        s += x;
        s2 += x * x;
    }
    assert_true(fabs(s / n) < 0.01);
    assert_true(fabs(s2 / n - 1.0) < 0.02);
}

static void shuffle_is_a_permutation(void **state)
{
    (void)state;
    ccd_rng r;
    ccd_rng_init(&r, 1, 0);
    int a[100], seen[100] = {0}, moved = 0;
    for (int k = 0; k < 100; k++)
        a[k] = k;
    ccd_rng_shuffle_int(&r, a, 100);
    for (int k = 0; k < 100; k++) {
        seen[a[k]]++;
        moved += a[k] != k;
    }
    for (int k = 0; k < 100; k++)
        assert_int_equal(seen[k], 1);
    assert_true(moved > 50);
}

static void csr_from_pairs_sorts_and_deduplicates(void **state)
{
    (void)state;
    int rows[] = {2, 0, 2, 0, 2, 1};
    int cols[] = {3, 1, 0, 1, 3, 2};
    ccd_csr a;
    assert_int_equal(ccd_csr_from_pairs(&a, 4, 5, rows, cols, 6), 0);
    assert_int_equal(a.nnz, 4);
    assert_int_equal(ccd_csr_row_len(&a, 0), 1);
    assert_int_equal(ccd_csr_row_len(&a, 2), 2);
    assert_int_equal(ccd_csr_row_len(&a, 3), 0);
    assert_int_equal(ccd_csr_row_len(&a, 99), 0);
    assert_int_equal(a.indices[a.indptr[2]], 0);
    assert_int_equal(a.indices[a.indptr[2] + 1], 3);
    assert_true(ccd_csr_contains(&a, 2, 3));
    assert_false(ccd_csr_contains(&a, 2, 1));
    assert_false(ccd_csr_contains(&a, 7, 1));
    ccd_csr t;
    assert_int_equal(ccd_csr_transpose(&t, &a), 0);
    assert_int_equal(t.n_rows, 5);
    assert_true(ccd_csr_contains(&t, 3, 2));
    assert_true(ccd_csr_contains(&t, 1, 0));
    assert_int_equal(t.nnz, 4);
    ccd_csr_free(&t);
    ccd_csr_free(&a);
    int bad_r[] = {0}, bad_c[] = {5};
    assert_int_equal(ccd_csr_from_pairs(&a, 4, 5, bad_r, bad_c, 1), -1);
}

/* A_hat = D^-1/2 A D^-1/2 checked entry by entry on a hand-made graph:
 * users 0..2, items 0..1 (+ an isolated item 2), edges u0-i0, u0-i1, u1-i0. */
static void graph_is_symmetric_normalised_bipartite(void **state)
{
    (void)state;
    int ru[] = {0, 0, 1}, ri[] = {0, 1, 0};
    ccd_csr r, g;
    assert_int_equal(ccd_csr_from_pairs(&r, 3, 3, ru, ri, 3), 0);
    assert_int_equal(ccd_graph_build(&g, &r, 3, 3), 0);
    assert_int_equal(g.n_rows, 6);
    assert_int_equal(g.nnz, 6);
    /* degrees: u0 2, u1 1, u2 0, i0 2, i1 1, i2 0 */
    float dense[6][6] = {{0}};
    for (int v = 0; v < 6; v++)
        for (int64_t k = g.indptr[v]; k < g.indptr[v + 1]; k++)
            dense[v][g.indices[k]] = g.values[k];
    assert_float_equal(dense[0][3], 1.0f / 2.0f, 1e-6);        /* u0-i0: 1/sqrt(2*2) */
    assert_float_equal(dense[0][4], 1.0f / sqrtf(2.0f), 1e-6); /* u0-i1: 1/sqrt(2*1) */
    assert_float_equal(dense[1][3], 1.0f / sqrtf(2.0f), 1e-6); /* u1-i0: 1/sqrt(1*2) */
    for (int x = 0; x < 6; x++)
        for (int y = 0; y < 6; y++)
            assert_float_equal(dense[x][y], dense[y][x], 0);
    assert_int_equal(ccd_csr_row_len(&g, 2), 0);
    assert_int_equal(ccd_csr_row_len(&g, 5), 0);
    ccd_csr_free(&g);
    ccd_csr_free(&r);
}

/* ccd_graph_fill_rows on the graph above (a) and one with u2's and i2's pairs (b: u2-i0,
 * u2-i2): only u2's empty row (among the users) takes b's row; i2's stays empty, u0's and u1's
 * and the items' stay a's, values included. */
static void graph_fill_rows_takes_only_empty_user_rows(void **state)
{
    (void)state;
    int au[] = {0, 0, 1}, ai[] = {0, 1, 0}, bu[] = {0, 2, 2}, bi[] = {1, 0, 2};
    ccd_csr ra, rb, a, b, f;
    assert_int_equal(ccd_csr_from_pairs(&ra, 3, 3, au, ai, 3), 0);
    assert_int_equal(ccd_csr_from_pairs(&rb, 3, 3, bu, bi, 3), 0);
    assert_int_equal(ccd_graph_build(&a, &ra, 3, 3), 0);
    assert_int_equal(ccd_graph_build(&b, &rb, 3, 3), 0);
    assert_int_equal(ccd_graph_fill_rows(&f, &a, &b, 3), 0);
    assert_int_equal(f.n_rows, 6);
    assert_int_equal(f.nnz, a.nnz + ccd_csr_row_len(&b, 2));
    for (int v = 0; v < 6; v++) {
        const ccd_csr *src = v == 2 ? &b : &a;
        assert_int_equal(ccd_csr_row_len(&f, v), ccd_csr_row_len(src, v));
        for (int64_t k = 0; k < ccd_csr_row_len(&f, v); k++) {
            assert_int_equal(f.indices[f.indptr[v] + k], src->indices[src->indptr[v] + k]);
            assert_float_equal(f.values[f.indptr[v] + k], src->values[src->indptr[v] + k], 0);
        }
    }
    assert_float_equal(f.values[f.indptr[2]], 1.0f / sqrtf(2.0f * 1.0f), 1e-6); /* u2-i0 in b */
    ccd_csr_free(&f);
    ccd_csr bad = {.n_rows = 5, .n_cols = 6};
    assert_int_equal(ccd_graph_fill_rows(&f, &a, &bad, 3), -1);
    ccd_csr_free(&a), ccd_csr_free(&b), ccd_csr_free(&ra), ccd_csr_free(&rb);
}

/* The three products against a double-precision loop, for widths that take every slice of the
 * kernel (64, 32, 16, 8) and the plain remainder loop (d = 13, 141), on a random weighted CSR
 * with empty rows and rows longer than the prefetch distance. */
/* ccd_sgemm: every transposition, cut by rows and by columns, padded leading dimensions,
 * beta 0 and 1; the plain double-precision product to float accuracy, and the same bits on 1,
 * 2 and 3 threads (the shapes are past OpenBLAS's own threading threshold, where cblas_sgemm
 * gives other bits on another thread count). */
static void sgemm_matches_plain_products_on_any_thread_count(void **state)
{
    (void)state;
    const int shapes[][3] = {{1, 1, 1}, {70, 3, 5}, {130, 1100, 40}, {1100, 130, 40}};
    const int saved = ccd_threads();
    ccd_rng rng;
    ccd_rng_init(&rng, 11, 0);
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (int t = 0; t < 8; t++) {
            const bool ta = t & 1, tb = t & 2;
            const float beta = t & 4 ? 1.0f : 0.0f;
            const int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
            const int ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
            const int lda = ac + 3, ldb = bc + 1, ldc = n + 2;
            float *a = ccd_floats((size_t)ar * lda), *b = ccd_floats((size_t)br * ldb);
            float *c0 = ccd_floats((size_t)m * ldc), *c = ccd_floats((size_t)m * ldc);
            assert_true(a && b && c0 && c);
            for (size_t q = 0; q < (size_t)ar * lda; q++)
                a[q] = ccd_rng_normal(&rng);
            for (size_t q = 0; q < (size_t)br * ldb; q++)
                b[q] = ccd_rng_normal(&rng);
            for (size_t q = 0; q < (size_t)m * ldc; q++)
                c0[q] = ccd_rng_normal(&rng);
            float *first = NULL;
            for (int threads = 1; threads <= 3; threads++) {
                memcpy(c, c0, (size_t)m * ldc * sizeof *c);
                ccd_set_threads(threads);
                ccd_sgemm(ta, tb, m, n, k, 0.5f, a, lda, b, ldb, beta, c, ldc);
                if (first) {
                    assert_memory_equal(c, first, (size_t)m * ldc * sizeof *c);
                    continue;
                }
                first = ccd_floats((size_t)m * ldc);
                assert_non_null(first);
                memcpy(first, c, (size_t)m * ldc * sizeof *c);
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < ldc; j++) {
                        double want = c0[(size_t)i * ldc + j], mag = fabs(want);
                        if (j < n) {
                            want *= beta;
                            mag *= beta;
                            for (int q = 0; q < k; q++) {
                                double x = ta ? a[(size_t)q * lda + i] : a[(size_t)i * lda + q];
                                double y = tb ? b[(size_t)j * ldb + q] : b[(size_t)q * ldb + j];
                                want += 0.5 * x * y;
                                mag += fabs(0.5 * x * y);
                            }
                        }
                        assert_true(fabs(c[(size_t)i * ldc + j] - want) <= 1e-5 * (mag + 1.0));
                    }
            }
            free(a), free(b), free(c0), free(c), free(first);
        }
    ccd_set_threads(saved);
}

static void spmm_matches_plain_products(void **state)
{
    (void)state;
    enum { R = 60, C = 45 };
    ccd_rng rng;
    ccd_rng_init(&rng, 7, 0);
    int rows[R * 30], cols[R * 30];
    int64_t n = 0;
    for (int r = 0; r < R; r++) {
        int len = r % 7 == 0 ? 0 : (int)ccd_rng_below(&rng, 30);
        for (int k = 0; k < len; k++)
            rows[n] = r, cols[n] = (int)ccd_rng_below(&rng, C), n++;
    }
    ccd_csr a;
    assert_int_equal(ccd_csr_from_pairs(&a, R, C, rows, cols, n), 0);
    a.values = malloc((size_t)(a.nnz ? a.nnz : 1) * sizeof *a.values);
    assert_non_null(a.values);
    for (int64_t k = 0; k < a.nnz; k++)
        a.values[k] = ccd_rng_normal(&rng);
    const int widths[] = {8, 13, 16, 32, 64, 128, 141};
    for (size_t t = 0; t < sizeof widths / sizeof *widths; t++) {
        const int d = widths[t];
        float *x = ccd_floats((size_t)C * d), *y = ccd_floats((size_t)R * d),
              *add = ccd_floats((size_t)R * d), *z = ccd_floats((size_t)R * d);
        double *ref = calloc((size_t)R * d, sizeof *ref);
        assert_true(x && y && add && z && ref);
        for (int k = 0; k < C * d; k++)
            x[k] = ccd_rng_normal(&rng);
        for (int k = 0; k < R * d; k++)
            add[k] = ccd_rng_normal(&rng), z[k] = -7.0f;
        for (int r = 0; r < R; r++)
            for (int64_t k = a.indptr[r]; k < a.indptr[r + 1]; k++)
                for (int j = 0; j < d; j++)
                    ref[(size_t)r * d + j] += (double)a.values[k] * x[(size_t)a.indices[k] * d + j];
        ccd_spmm(&a, x, y, d);
        for (int k = 0; k < R * d; k++)
            assert_float_equal(y[k], ref[k], 1e-4);
        ccd_spmm_add(&a, x, y, d, add, 0.5f);
        for (int k = 0; k < R * d; k++)
            assert_float_equal(y[k], 0.5 * (ref[k] + add[k]), 1e-4);
        int pick[] = {3, 0, 59, 14};
        ccd_spmm_rows(&a, x, z, d, pick, 4);
        for (int r = 0; r < R; r++) {
            bool picked = r == 3 || r == 0 || r == 59 || r == 14;
            for (int j = 0; j < d; j++)
                assert_float_equal(z[(size_t)r * d + j], picked ? ref[(size_t)r * d + j] : -7.0,
                                   1e-4);
        }
        /* Masked: rows of x without their mask byte count as zero and may hold anything. */
        unsigned char mask[C], ymask[R];
        double *mref = calloc((size_t)R * d, sizeof *mref);
        assert_non_null(mref);
        for (int c = 0; c < C; c++)
            mask[c] = c % 3 == 1;
        for (int c = 0; c < C; c++)
            if (!mask[c])
                for (int j = 0; j < d; j++)
                    x[(size_t)c * d + j] = NAN; /* never read */
        for (int r = 0; r < R; r++)
            for (int64_t k = a.indptr[r]; k < a.indptr[r + 1]; k++)
                if (mask[a.indices[k]])
                    for (int j = 0; j < d; j++)
                        mref[(size_t)r * d + j] +=
                            (double)a.values[k] * x[(size_t)a.indices[k] * d + j];
        memset(ymask, 2, sizeof ymask); /* both are written in full */
        for (int k = 0; k < R * d; k++)
            y[k] = NAN;
        assert_int_equal(ccd_spmm_masked(&a, x, mask, y, d, ymask), 0);
        for (int r = 0; r < R; r++) {
            bool any = false;
            for (int64_t k = a.indptr[r]; k < a.indptr[r + 1]; k++)
                any |= mask[a.indices[k]] != 0;
            assert_int_equal(ymask[r], any);
            for (int j = 0; j < d; j++)
                assert_float_equal(y[(size_t)r * d + j], mref[(size_t)r * d + j], 1e-4);
        }
        assert_int_equal(ccd_spmm_add_masked(&a, x, mask, y, d, add, 0.5f), 0);
        for (int k = 0; k < R * d; k++)
            assert_float_equal(y[k], 0.5 * (mref[k] + add[k]), 1e-4);
        free(mref);
        free(x), free(y), free(add), free(z), free(ref);
    }
    ccd_csr_free(&a);
}

/* One step of torch.optim.Adam (lr 0.01, wd 0.1) on rp, m, v (3), computed in double; lazy
 * leaves the L2 term out where g is zero (ccd_adam's lazy_decay). */
static void adam_reference_step(double *rp, double *m, double *v, const float *g, int t, bool lazy)
{
    for (int k = 0; k < 3; k++) {
        double gk = lazy && g[k] == 0.0f ? 0.0 : g[k] + 0.1 * rp[k];
        m[k] = 0.9 * m[k] + 0.1 * gk;
        v[k] = 0.999 * v[k] + 0.001 * gk * gk;
        double mh = m[k] / (1 - pow(0.9, t)), denom = sqrt(v[k]) / sqrt(1 - pow(0.999, t)) + 1e-8;
        rp[k] -= 0.01 * mh / denom;
    }
}

/* Adam against the torch.optim.Adam recurrences, computed here in double. */
static void adam_matches_reference_recurrence(void **state)
{
    (void)state;
    ccd_adam a;
    assert_int_equal(ccd_adam_init(&a, 3, 0.01f, 0.1f), 0);
    float p[3] = {0.5f, -1.0f, 2.0f};
    double rp[3] = {0.5, -1.0, 2.0}, m[3] = {0}, v[3] = {0};
    for (int t = 1; t <= 5; t++) {
        float g[3] = {0.3f * t, -0.2f, 0.0f};
        ccd_adam_step(&a, p, g);
        adam_reference_step(rp, m, v, g, t, false);
    }
    for (int k = 0; k < 3; k++)
        assert_float_equal(p[k], (float)rp[k], 1e-5);
    /* a zero gradient still moves the parameter through the coupled decay */
    assert_true(p[2] < 2.0f);
    ccd_adam_free(&a);
}

/* lazy_decay: the same recurrences with the L2 term left out where the gradient is zero. A
 * parameter never touched stays put; one touched once keeps moving through its momentum only. */
static void adam_lazy_decay_skips_idle_parameters(void **state)
{
    (void)state;
    ccd_adam a;
    assert_int_equal(ccd_adam_init(&a, 3, 0.01f, 0.1f), 0);
    a.lazy_decay = true;
    float p[3] = {0.5f, -1.0f, 2.0f};
    double rp[3] = {0.5, -1.0, 2.0}, m[3] = {0}, v[3] = {0};
    for (int t = 1; t <= 5; t++) {
        float g[3] = {0.3f * t, 0.0f, t == 1 ? 0.4f : 0.0f};
        ccd_adam_step(&a, p, g);
        adam_reference_step(rp, m, v, g, t, true);
    }
    for (int k = 0; k < 3; k++)
        assert_float_equal(p[k], (float)rp[k], 1e-5);
    assert_true(p[1] == -1.0f);       /* never touched: not decayed (dense Adam moves it, above) */
    assert_true(p[2] < 2.0f - 0.02f); /* its one step moved it 0.01; momentum carried it on */
    ccd_adam_free(&a);
}

static void sampler_respects_exclusions(void **state)
{
    (void)state;
    /* 3 users x 6 items. User 2 has every item excluded: it gets no triple. */
    int tu[] = {0, 0, 1, 2}, ti[] = {0, 1, 2, 3};
    int xu[] = {0, 0, 2, 2, 2, 2, 2}, xi[] = {2, 3, 0, 1, 2, 4, 5};
    ccd_csr train, excl;
    assert_int_equal(ccd_csr_from_pairs(&train, 3, 6, tu, ti, 4), 0);
    assert_int_equal(ccd_csr_from_pairs(&excl, 3, 6, xu, xi, 7), 0);
    ccd_rng r;
    ccd_rng_init(&r, 5, 0);
    int neg_count[6] = {0};
    for (int rep = 0; rep < 2000; rep++) {
        ccd_triples t;
        assert_int_equal(ccd_bpr_sample(&t, &train, &excl, 6, 2, &r), 0);
        assert_int_equal(t.n, 6); /* (2 + 1) positives x 2 negatives; user 2 has none */
        for (int64_t k = 0; k < t.n; k++) {
            assert_true(ccd_csr_contains(&train, t.user[k], t.pos[k]));
            assert_false(ccd_csr_contains(&train, t.user[k], t.neg[k]));
            assert_false(ccd_csr_contains(&excl, t.user[k], t.neg[k]));
            assert_int_not_equal(t.user[k], 2);
            if (t.user[k] == 0)
                neg_count[t.neg[k]]++;
        }
        ccd_triples_free(&t);
    }
    /* user 0 may only draw items 4 and 5, uniformly: 8000 draws */
    assert_int_equal(neg_count[4] + neg_count[5], 8000);
    assert_true(abs(neg_count[4] - 4000) < 300);
    ccd_csr_free(&train);
    ccd_csr_free(&excl);
}

static void vexp_matches_libm(void **state)
{
    (void)state;
    enum { N = 200001 };
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
    for (int k = 0; k < N; k++)
        x[k] = -87.0f + 175.0f * (float)k / (N - 1);
    ccd_vexp(x, y, N);
    double worst = 0;
    for (int k = 0; k < N; k++) {
        double want = exp((double)x[k]);
        double rel = fabs(y[k] - want) / want;
        worst = rel > worst ? rel : worst;
    }
    print_message("ccd_vexp: worst relative error %.2e\n", worst);
    assert_true(worst < 3e-7);
    float big[3] = {-1000.0f, 0.0f, 1000.0f};
    ccd_vexp(big, big, 3); /* in place, clamped */
    assert_true(big[0] > 0.0f && big[0] < 1e-37f);
    assert_float_equal(big[1], 1.0f, 0.0f);
    assert_true(isfinite(big[2]) && big[2] > 1e38f);
    free(x);
    free(y);
}

/* The softmax helpers on lengths around the 16-lane blocks, against plain loops. */
static void vmax_and_exp_shift_sum_match_plain_loops(void **state)
{
    (void)state;
    const int lens[] = {1, 15, 16, 17, 33, 1000};
    for (size_t c = 0; c < sizeof lens / sizeof *lens; c++) {
        int n = lens[c];
        float *x = malloc(n * sizeof *x);
        for (int k = 0; k < n; k++)
            x[k] = (float)((k * 37) % 101) / 10.0f - 5.0f; /* in [-5, 5.1] */
        x[n / 2] = 7.25f;                                  /* the maximum, once */
        assert_float_equal(ccd_vmax(x, n), 7.25f, 0.0f);
        double want = 0.0;
        float *e = malloc(n * sizeof *e);
        for (int k = 0; k < n; k++)
            want += (e[k] = (float)exp((double)(x[k] - 7.25f))); /* the same float shift */
        double got = ccd_vexp_shift_sum(x, n, 7.25f);
        assert_true(fabs(got - want) <= 1e-6 * want);
        for (int k = 0; k < n; k++)
            assert_true(fabsf(x[k] - e[k]) <= 3e-7f * e[k] + 1e-30f);
        assert_float_equal(x[n / 2], 1.0f, 0.0f);
        free(x), free(e);
    }
    float nan_first[3] = {NAN, 1.0f, 2.0f};
    assert_float_equal(ccd_vmax(nan_first, 3), 2.0f, 0.0f);
    assert_true(isinf(ccd_vmax(nan_first, 0)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rng_is_reproducible_and_streams_differ),
        cmocka_unit_test(rng_below_is_in_range_and_roughly_uniform),
        cmocka_unit_test(rng_normal_has_unit_moments),
        cmocka_unit_test(shuffle_is_a_permutation),
        cmocka_unit_test(csr_from_pairs_sorts_and_deduplicates),
        cmocka_unit_test(graph_is_symmetric_normalised_bipartite),
        cmocka_unit_test(graph_fill_rows_takes_only_empty_user_rows),
        cmocka_unit_test(sgemm_matches_plain_products_on_any_thread_count),
        cmocka_unit_test(spmm_matches_plain_products),
        cmocka_unit_test(adam_matches_reference_recurrence),
        cmocka_unit_test(adam_lazy_decay_skips_idle_parameters),
        cmocka_unit_test(sampler_respects_exclusions),
        cmocka_unit_test(vexp_matches_libm),
        cmocka_unit_test(vmax_and_exp_shift_sum_match_plain_loops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
