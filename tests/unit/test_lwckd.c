/* LWC-KD pieces (algorithm sections 6.2 and 6.3): the contrastive term against a direct
 * double-precision computation (small case, and one larger than a chunk), its neighbour gradient
 * against central finite differences, multiplicity weights against duplicated targets, and the
 * cosine relation graph against hand-computed cosines and a dense brute force. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lwckd.h"
#include "rng.h"
#include "simgraph.h"
#include "sparse.h"

/* ---------- contrastive term ---------- */

/* The term from its definition, in double: returns scale * L and, when grad is not NULL, writes
 * scale * dL/dN (m x d) there. */
static double reference_term(const float *tg, const float *w, int n, double n_count,
                             const float *nb, int m, int d, const ccd_csr *rel, const int *rows,
                             double tau, double scale, double *grad)
{
    double *z = malloc((size_t)m * sizeof *z), *a = malloc((size_t)m * sizeof *a);
    assert_non_null(z);
    assert_non_null(a);
    if (grad)
        memset(grad, 0, (size_t)m * d * sizeof *grad);
    double loss = 0.0;
    for (int t = 0; t < n; t++) {
        double s = 0.0;
        for (int j = 0; j < m; j++) {
            a[j] = ccd_csr_contains(rel, rows[t], j) ? 1.0 : 0.0;
            s += a[j];
        }
        if (s == 0.0)
            continue;
        double wt = w ? w[t] : 1.0, mx = -INFINITY, sum = 0.0;
        for (int j = 0; j < m; j++) {
            z[j] = 0.0;
            for (int c = 0; c < d; c++)
                z[j] += (double)nb[j * d + c] * tg[t * d + c];
            z[j] /= tau;
            mx = fmax(mx, z[j]);
        }
        for (int j = 0; j < m; j++)
            sum += exp(z[j] - mx);
        double lse = mx + log(sum), l = 0.0;
        for (int j = 0; j < m; j++)
            l += a[j] * (z[j] - lse);
        loss += wt * l / (s + 1e-8);
        if (grad)
            for (int j = 0; j < m; j++) {
                double g = -(wt / n_count) * (a[j] - s * exp(z[j] - lse)) / (s + 1e-8);
                for (int c = 0; c < d; c++)
                    grad[j * d + c] += scale * g * tg[t * d + c] / tau;
            }
    }
    free(z);
    free(a);
    return scale * (-loss / n_count);
}

static void fill_normal(ccd_rng *rng, float *x, int n, float sd)
{
    for (int k = 0; k < n; k++)
        x[k] = sd * ccd_rng_normal(rng);
}

/* The small case: 5 targets, 7 neighbours, d = 3. Relation rows: 0 {0,3}, 1 {1,2,6}, 2 {}
 * (empty), 3 {5}; target 1 uses the empty row and target 3 a row past n_rows. */
enum { SN = 5, SM = 7, SD = 3 };
static const int rel_r[] = {0, 0, 1, 1, 1, 3};
static const int rel_c[] = {0, 3, 1, 2, 6, 5};
static const int small_rows[SN] = {1, 2, 0, 9, 3};
static const float small_w[SN] = {1.0f, 2.0f, 0.5f, 3.0f, 1.5f};
static const double small_count = 9.0; /* one more occurrence than the weights hold */

typedef struct {
    ccd_csr rel;
    float tg[SN * SD], nb[SM * SD];
} small_case;

static void small_setup(small_case *s, uint64_t seed)
{
    assert_int_equal(ccd_csr_from_pairs(&s->rel, 4, SM, rel_r, rel_c, 6), 0);
    ccd_rng rng;
    ccd_rng_init(&rng, seed, 0);
    fill_normal(&rng, s->tg, SN * SD, 1.0f);
    fill_normal(&rng, s->nb, SM * SD, 1.0f);
}

static void lwc_matches_double_reference(void **state)
{
    (void)state;
    small_case s;
    small_setup(&s, 3);
    const float tau = 0.8f, scale = 0.37f;
    float dn[SM * SD];
    for (int k = 0; k < SM * SD; k++)
        dn[k] = 0.25f; /* the term adds to what is there */
    double got = ccd_lwc_term(s.tg, small_w, SN, small_count, s.nb, SM, SD, &s.rel, small_rows, tau,
                              scale, dn);
    double grad[SM * SD];
    double want = reference_term(s.tg, small_w, SN, small_count, s.nb, SM, SD, &s.rel, small_rows,
                                 tau, scale, grad);
    print_message("loss %.8f, reference %.8f\n", got, want);
    assert_true(want > 0.0);
    assert_true(fabs(got - want) <= 1e-5 * fabs(want));
    for (int k = 0; k < SM * SD; k++)
        assert_true(fabs((dn[k] - 0.25) - grad[k]) < 1e-6);
    /* loss only: the same value, nothing written */
    double again = ccd_lwc_term(s.tg, small_w, SN, small_count, s.nb, SM, SD, &s.rel, small_rows,
                                tau, scale, NULL);
    assert_true(again == got);
    /* no weights means all 1 */
    const float ones[SN] = {1, 1, 1, 1, 1};
    double a = ccd_lwc_term(s.tg, NULL, SN, 5.0, s.nb, SM, SD, &s.rel, small_rows, tau, 1, NULL);
    double b = ccd_lwc_term(s.tg, ones, SN, 5.0, s.nb, SM, SD, &s.rel, small_rows, tau, 1, NULL);
    assert_true(a == b);
    /* only empty relation rows: zero, no gradient */
    const int empty_rows[SN] = {2, 2, 9, -1, 4};
    for (int k = 0; k < SM * SD; k++)
        dn[k] = 0.0f;
    assert_true(ccd_lwc_term(s.tg, small_w, SN, small_count, s.nb, SM, SD, &s.rel, empty_rows, tau,
                             scale, dn) == 0.0);
    for (int k = 0; k < SM * SD; k++)
        assert_true(dn[k] == 0.0f);
    ccd_csr_free(&s.rel);
}

static void lwc_gradient_matches_finite_differences(void **state)
{
    (void)state;
    small_case s;
    small_setup(&s, 5);
    const float tau = 0.5f, scale = 1.3f; /* a small tau keeps the softmax far from linear */
    float dn[SM * SD] = {0};
    ccd_lwc_term(s.tg, small_w, SN, small_count, s.nb, SM, SD, &s.rel, small_rows, tau, scale, dn);
    const float eps = 3e-3f;
    double max_err = 0.0;
    int nonzero = 0;
    for (int k = 0; k < SM * SD; k++) {
        float keep = s.nb[k];
        s.nb[k] = keep + eps;
        double lp = ccd_lwc_term(s.tg, small_w, SN, small_count, s.nb, SM, SD, &s.rel, small_rows,
                                 tau, scale, NULL);
        s.nb[k] = keep - eps;
        double lm = ccd_lwc_term(s.tg, small_w, SN, small_count, s.nb, SM, SD, &s.rel, small_rows,
                                 tau, scale, NULL);
        s.nb[k] = keep;
        /* the step actually taken, in float */
        double fd = (lp - lm) / ((double)(keep + eps) - (double)(keep - eps));
        double err = fabs(fd - dn[k]) / fmax(1e-2, fabs(fd) + fabs(dn[k]));
        max_err = fmax(max_err, err);
        nonzero += fabs(fd) > 1e-3;
    }
    print_message("max relative error %.2e over %d entries, %d non-zero\n", max_err, SM * SD,
                  nonzero);
    assert_true(nonzero >= 15); /* every neighbour is in every softmax */
    assert_true(max_err < 1e-2);
    ccd_csr_free(&s.rel);
}

static void lwc_weight_equals_duplicated_target(void **state)
{
    (void)state;
    small_case s;
    small_setup(&s, 7);
    /* targets 0, 2, 0 with weight 1 against targets 0, 2 with weights 2, 1 */
    float dup[3 * SD], once[2 * SD];
    const int pick[3] = {0, 2, 0};
    for (int r = 0; r < 3; r++)
        memcpy(dup + r * SD, s.tg + pick[r] * SD, SD * sizeof *dup);
    memcpy(once, dup, sizeof once);
    const int rows_dup[3] = {small_rows[0], small_rows[2], small_rows[0]};
    const int rows_once[2] = {small_rows[0], small_rows[2]};
    const float w_once[2] = {2.0f, 1.0f};
    float g_dup[SM * SD] = {0}, g_once[SM * SD] = {0};
    /* small_rows[0] is the non-empty row 1, so the duplicate matters */
    assert_true(ccd_csr_row_len(&s.rel, small_rows[0]) > 0);
    double l_dup =
        ccd_lwc_term(dup, NULL, 3, 3.0, s.nb, SM, SD, &s.rel, rows_dup, 1.0f, 1.0f, g_dup);
    double l_once =
        ccd_lwc_term(once, w_once, 2, 3.0, s.nb, SM, SD, &s.rel, rows_once, 1.0f, 1.0f, g_once);
    print_message("duplicated %.9f, weighted %.9f\n", l_dup, l_once);
    assert_true(l_dup > 0.0);
    assert_true(fabs(l_dup - l_once) <= 1e-6 * l_dup);
    double gmax = 0.0;
    for (int k = 0; k < SM * SD; k++)
        gmax = fmax(gmax, fabs(g_dup[k]));
    assert_true(gmax > 1e-3);
    for (int k = 0; k < SM * SD; k++)
        assert_true(fabs(g_dup[k] - g_once[k]) <= 1e-6 * gmax);
    ccd_csr_free(&s.rel);
}

/* 720 targets (over 512 of them live: three chunks of 256), random relation rows, some empty,
 * some past the end of rel, weights 1 to 3. */
static void lwc_chunks_match_double_reference(void **state)
{
    (void)state;
    enum { N = 720, M = 37, D = 8, R = 50 };
    ccd_rng rng;
    ccd_rng_init(&rng, 13, 0);
    int pr[R * M], pc[R * M], np = 0;
    for (int r = 0; r < R; r++)
        for (int c = 0; c < M; c++)
            if (r % 7 != 3 && ccd_rng_uniform(&rng) < 0.3f) { /* rows 3, 10, ... empty */
                pr[np] = r;
                pc[np++] = c;
            }
    ccd_csr rel;
    assert_int_equal(ccd_csr_from_pairs(&rel, R, M, pr, pc, np), 0);
    float *tg = malloc(N * D * sizeof *tg), *nb = malloc(M * D * sizeof *nb), w[N];
    float *dn = calloc(M * D, sizeof *dn);
    double *grad = malloc(M * D * sizeof *grad);
    int rows[N];
    assert_non_null(tg);
    assert_non_null(nb);
    assert_non_null(dn);
    assert_non_null(grad);
    fill_normal(&rng, tg, N * D, 0.5f);
    fill_normal(&rng, nb, M * D, 0.5f);
    double count = 0.0;
    int live = 0;
    for (int t = 0; t < N; t++) {
        rows[t] = (int)ccd_rng_below(&rng, R + 5);
        w[t] = (float)(1 + ccd_rng_below(&rng, 3));
        count += w[t];
        live += ccd_csr_row_len(&rel, rows[t]) > 0;
    }
    assert_true(live > 2 * 256); /* the live targets span three chunks */
    double got = ccd_lwc_term(tg, w, N, count, nb, M, D, &rel, rows, 5.0f, 0.5f, dn);
    double want = reference_term(tg, w, N, count, nb, M, D, &rel, rows, 5.0, 0.5, grad);
    print_message("loss %.8f, reference %.8f (%d live targets)\n", got, want, live);
    assert_true(fabs(got - want) <= 1e-5 * fabs(want));
    double gmax = 0.0, err = 0.0;
    for (int k = 0; k < M * D; k++) {
        gmax = fmax(gmax, fabs(grad[k]));
        err = fmax(err, fabs(dn[k] - grad[k]));
    }
    print_message("gradient max %.3e, max abs error %.3e\n", gmax, err);
    assert_true(gmax > 0.0);
    assert_true(err <= 1e-4 * gmax);
    free(tg), free(nb), free(dn), free(grad);
    ccd_csr_free(&rel);
}

/* The sampled softmax of large catalogues: exactly ccd_lwc_term when it need not sample; with
 * every column drawn it is the full softmax again (weights 1); with a real sample (100 of 2,000
 * columns) its loss, averaged over draws, is close to the exact one, each draw's gradient touches
 * only the relation columns and the drawn ones, and the same stream gives the same result. */
static void lwc_sampled_softmax(void **state)
{
    (void)state;
    small_case s;
    small_setup(&s, 11);
    const float tau = 0.8f, scale = 0.5f;
    float g1[SM * SD] = {0}, g2[SM * SD] = {0};
    double a = ccd_lwc_term(s.tg, small_w, SN, small_count, s.nb, SM, SD, &s.rel, small_rows, tau,
                            scale, g1);
    double b = ccd_lwc_term_sampled(s.tg, small_w, SN, small_count, s.nb, SM, SD, &s.rel,
                                    small_rows, tau, scale, g2, SM, 1, 2);
    assert_true(a == b);
    assert_memory_equal(g1, g2, sizeof g1);
    /* 6 of 7 columns: R holds 6 of them, so the one left is drawn and every weight is 1 */
    float g3[SM * SD] = {0};
    double c = ccd_lwc_term_sampled(s.tg, small_w, SN, small_count, s.nb, SM, SD, &s.rel,
                                    small_rows, tau, scale, g3, SM - 1, 1, 2);
    assert_true(fabs(c - a) <= 1e-6 * fabs(a));
    for (int k = 0; k < SM * SD; k++)
        assert_true(fabs(g3[k] - g1[k]) <= 1e-6);
    ccd_csr_free(&s.rel);

    enum { N = 40, M = 2000, D = 8, DRAW = 100 };
    float *tg = malloc(N * D * sizeof *tg), *nb = malloc((size_t)M * D * sizeof *nb);
    float *g = calloc((size_t)M * D, sizeof *g);
    int rr[N * 3], rc[N * 3], rows[N];
    for (int t = 0; t < N; t++) {
        rows[t] = t;
        for (int q = 0; q < 3; q++)
            rr[3 * t + q] = t, rc[3 * t + q] = (t * 37 + q * 501) % M;
    }
    ccd_csr rel;
    assert_int_equal(ccd_csr_from_pairs(&rel, N, M, rr, rc, N * 3), 0);
    ccd_rng rng;
    ccd_rng_init(&rng, 9, 0);
    fill_normal(&rng, tg, N * D, 1.0f);
    fill_normal(&rng, nb, M * D, 0.5f);
    double exact = ccd_lwc_term(tg, NULL, N, N, nb, M, D, &rel, rows, 1.0f, 1.0f, NULL);
    double mean = 0.0;
    for (int r = 0; r < 50; r++)
        mean += ccd_lwc_term_sampled(tg, NULL, N, N, nb, M, D, &rel, rows, 1.0f, 1.0f, NULL, DRAW,
                                     3, (uint64_t)r) /
                50;
    print_message("exact %.5f, mean of 50 sampled %.5f\n", exact, mean);
    assert_true(exact > 0.0);
    assert_true(fabs(mean - exact) < 0.05 * exact);
    double l1 =
        ccd_lwc_term_sampled(tg, NULL, N, N, nb, M, D, &rel, rows, 1.0f, 1.0f, g, DRAW, 3, 7);
    double l2 =
        ccd_lwc_term_sampled(tg, NULL, N, N, nb, M, D, &rel, rows, 1.0f, 1.0f, NULL, DRAW, 3, 7);
    assert_true(l1 == l2);
    int touched = 0;
    for (int j = 0; j < M; j++) {
        int nz = 0;
        for (int q = 0; q < D; q++)
            nz |= g[j * D + q] != 0.0f;
        touched += nz;
    }
    print_message("%d of %d neighbours touched\n", touched, M);
    assert_true(touched > DRAW && touched <= DRAW + N * 3);
    ccd_csr_free(&rel);
    free(tg), free(nb), free(g);

    /* more targets than one group (256): ten groups, ten draws; the loss of one call
     * averages over many targets, so a single call is close to the exact one */
    enum { N2 = 2500, M2 = 3000, DRAW2 = 300 };
    float *tg2 = malloc((size_t)N2 * D * sizeof *tg2), *nb2 = malloc((size_t)M2 * D * sizeof *nb2);
    float *ga = calloc((size_t)M2 * D, sizeof *ga), *gb = calloc((size_t)M2 * D, sizeof *gb);
    int *r2 = malloc(N2 * 2 * sizeof *r2), *c2 = malloc(N2 * 2 * sizeof *c2);
    int *rows2 = malloc(N2 * sizeof *rows2);
    for (int t = 0; t < N2; t++) {
        rows2[t] = t;
        for (int q = 0; q < 2; q++)
            r2[2 * t + q] = t, c2[2 * t + q] = (t * 7 + q * 1499) % M2;
    }
    assert_int_equal(ccd_csr_from_pairs(&rel, N2, M2, r2, c2, N2 * 2), 0);
    fill_normal(&rng, tg2, N2 * D, 1.0f);
    fill_normal(&rng, nb2, M2 * D, 0.5f);
    double exact2 = ccd_lwc_term(tg2, NULL, N2, N2, nb2, M2, D, &rel, rows2, 1.0f, 1.0f, ga);
    double one = ccd_lwc_term_sampled(tg2, NULL, N2, N2, nb2, M2, D, &rel, rows2, 1.0f, 1.0f, gb,
                                      DRAW2, 3, 1);
    print_message("%d targets: exact %.5f, one sampled call %.5f\n", N2, exact2, one);
    assert_true(fabs(one - exact2) < 0.05 * exact2);
    double dot = 0.0, na = 0.0, nb_ = 0.0; /* the sampled gradient points the same way */
    for (int k = 0; k < M2 * D; k++)
        dot += (double)ga[k] * gb[k], na += (double)ga[k] * ga[k], nb_ += (double)gb[k] * gb[k];
    print_message("gradient cosine %.3f\n", dot / sqrt(na * nb_));
    assert_true(dot / sqrt(na * nb_) > 0.8);
    ccd_csr_free(&rel);
    free(tg2), free(nb2), free(ga), free(gb), free(r2), free(c2), free(rows2);
}

/* ---------- cosine graph ---------- */

static void assert_symmetric_no_diagonal(const ccd_csr *g)
{
    assert_null(g->values);
    assert_int_equal(g->n_rows, g->n_cols);
    for (int u = 0; u < g->n_rows; u++)
        for (int64_t k = g->indptr[u]; k < g->indptr[u + 1]; k++) {
            int v = g->indices[k];
            assert_true(v != u);
            if (k > g->indptr[u])
                assert_true(g->indices[k - 1] < v); /* sorted, no duplicates */
            assert_true(ccd_csr_contains(g, v, u));
        }
}

static void assert_row(const ccd_csr *g, int u, const int *want, int n)
{
    assert_int_equal(ccd_csr_row_len(g, u), n);
    for (int k = 0; k < n; k++)
        assert_int_equal(g->indices[g->indptr[u] + k], want[k]);
}

/* Five rows over five columns:
 *   0 {0,1}  1 {0,1,2,3}  2 {4}  3 {}  4 {1,2,3,4}
 * cosines: C01 = 2/(sqrt2 * 2) = 0.7071, C04 = 1/(sqrt2 * 2) = 0.3536, C14 = 3/4 = 0.75,
 * C24 = 1/2 = 0.5 exactly, every other pair 0 (row 3 has norm 0). */
static void cosine_graph_hand_made(void **state)
{
    (void)state;
    const int r[] = {0, 0, 1, 1, 1, 1, 2, 4, 4, 4, 4};
    const int c[] = {0, 1, 0, 1, 2, 3, 4, 1, 2, 3, 4};
    ccd_csr b, g;
    double t;
    assert_int_equal(ccd_csr_from_pairs(&b, 5, 5, r, c, 11), 0);

    /* target 0.8: the first midpoint t = 0.5 keeps 01 and 14 (C24 = 0.5 is not > t): 4 / 5 */
    assert_int_equal(ccd_cosine_graph(&b, 0.8, &g, &t), 0);
    assert_true(fabs(t - 0.5) < 1e-12);
    assert_symmetric_no_diagonal(&g);
    assert_int_equal(g.nnz, 4);
    assert_row(&g, 0, (const int[]){1}, 1);
    assert_row(&g, 1, (const int[]){0, 4}, 2);
    assert_row(&g, 2, NULL, 0);
    assert_row(&g, 3, NULL, 0);
    assert_row(&g, 4, (const int[]){1}, 1);
    ccd_csr_free(&g);

    /* target 1.6: t = 0.5 gives 0.8, too few, so t = (0.1001 + 0.5) / 2 = 0.30005 keeps all
     * four pairs: 8 / 5 = 1.6 */
    assert_int_equal(ccd_cosine_graph(&b, 1.6, &g, &t), 0);
    assert_true(fabs(t - 0.30005) < 1e-12);
    assert_symmetric_no_diagonal(&g);
    assert_int_equal(g.nnz, 8);
    assert_row(&g, 0, (const int[]){1, 4}, 2);
    assert_row(&g, 1, (const int[]){0, 4}, 2);
    assert_row(&g, 2, (const int[]){4}, 1);
    assert_row(&g, 3, NULL, 0);
    assert_row(&g, 4, (const int[]){0, 1, 2}, 3);
    ccd_csr_free(&g);

    /* target 3: never met; t sinks to the low end and every stored pair is an edge */
    assert_int_equal(ccd_cosine_graph(&b, 3.0, &g, &t), 0);
    assert_true(t > 0.1001 - 1e-12 && t < 0.1001 + 1e-9);
    assert_int_equal(g.nnz, 8);
    ccd_csr_free(&g);

    /* target 0: t = 0.5 and t = 0.69995 both keep 01 and 14 (0.8, too many), so t rises to
     * 0.799925 where nothing is left */
    assert_int_equal(ccd_cosine_graph(&b, 0.0, &g, &t), 0);
    assert_true(fabs(t - 0.799925) < 1e-12);
    assert_int_equal(g.nnz, 0);
    assert_int_equal(g.n_rows, 5);
    ccd_csr_free(&g);
    ccd_csr_free(&b);
}

/* 300 rows over 200 columns, each cell 1 with probability 0.05 (~10 per row), target 10: the
 * bisection reaches the target, and the graph is exactly 1[C > t] off the diagonal for a dense
 * double-precision cosine. */
static void cosine_graph_matches_brute_force(void **state)
{
    (void)state;
    enum { NR = 300, NC = 200 };
    ccd_rng rng;
    ccd_rng_init(&rng, 17, 0);
    static unsigned char dense[NR][NC];
    static int pr[NR * NC], pc[NR * NC];
    int np = 0;
    for (int u = 0; u < NR; u++)
        for (int c = 0; c < NC; c++) {
            dense[u][c] = ccd_rng_uniform(&rng) < 0.05f;
            if (dense[u][c]) {
                pr[np] = u;
                pc[np++] = c;
            }
        }
    ccd_csr b, g;
    double t;
    assert_int_equal(ccd_csr_from_pairs(&b, NR, NC, pr, pc, np), 0);
    assert_int_equal(ccd_cosine_graph(&b, 10.0, &g, &t), 0);
    assert_symmetric_no_diagonal(&g);
    double avg = (double)g.nnz / NR;
    print_message("threshold %.6f, average degree %.3f\n", t, avg);
    assert_true(t > 0.1001 && t < 0.8999);
    assert_true(fabs(avg - 10.0) < 0.6);

    int deg[NR];
    for (int u = 0; u < NR; u++) {
        deg[u] = 0;
        for (int c = 0; c < NC; c++)
            deg[u] += dense[u][c];
    }
    int64_t above = 0;
    for (int u = 0; u < NR; u++)
        for (int v = 0; v < NR; v++) {
            if (u == v)
                continue;
            int dot = 0;
            for (int c = 0; c < NC; c++)
                dot += dense[u][c] & dense[v][c];
            double cs = deg[u] && deg[v] ? dot / sqrt((double)deg[u] * deg[v]) : 0.0;
            above += cs > t;
            assert_int_equal(ccd_csr_contains(&g, u, v), cs > t);
        }
    assert_int_equal(g.nnz, above);
    ccd_csr_free(&g);
    ccd_csr_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(lwc_matches_double_reference),
        cmocka_unit_test(lwc_gradient_matches_finite_differences),
        cmocka_unit_test(lwc_weight_equals_duplicated_target),
        cmocka_unit_test(lwc_chunks_match_double_reference),
        cmocka_unit_test(lwc_sampled_softmax),
        cmocka_unit_test(cosine_graph_hand_made),
        cmocka_unit_test(cosine_graph_matches_brute_force),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
