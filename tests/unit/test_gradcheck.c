/* Gradient checks: LightGCN and MF-BPR backward against central finite differences of the BPR
 * loss, LightGCN forward against a dense reference built from the definition, and the BPR loss's
 * derivative against finite differences (clamped and unclamped). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bpr.h"
#include "recmodel.h"
#include "sparse.h"

enum { NU = 7, NI = 6, D = 5, B = 9 };

static int tu[] = {0, 0, 1, 2, 2, 3, 4, 4, 5, 5, 5, 0};
static int ti[] = {0, 1, 1, 2, 3, 3, 4, 0, 1, 2, 5, 0}; /* (0,0) twice; user 6, no item 6 */
static int bu[B] = {0, 1, 2, 3, 4, 5, 5, 0, 2};
static int bp[B] = {1, 1, 3, 3, 4, 2, 5, 0, 2};
static int bn[B] = {2, 4, 0, 5, 3, 0, 3, 5, 1};

typedef struct {
    ccd_csr r, g;
    ccd_recmodel m;
    int rows[3 * B];
    int n_rows;
} fixture;

static void setup_model(fixture *f, ccd_model_type type)
{
    assert_int_equal(ccd_csr_from_pairs(&f->r, NU, NI, tu, ti, 12), 0);
    assert_int_equal(ccd_graph_build(&f->g, &f->r, NU, NI), 0);
    ccd_rng rng;
    ccd_rng_init(&rng, 11, 0);
    assert_int_equal(
        ccd_recmodel_init(&f->m, type, NU, NI, D, type == CCD_MODEL_LIGHTGCN ? &f->g : NULL, &rng),
        0);
    /* larger weights than the 0.01 init so the loss is far from flat */
    for (int k = 0; k < (NU + NI) * D; k++)
        f->m.emb0[k] = ccd_rng_normal(&rng) * 0.7f;
    int seen[NU + NI] = {0};
    f->n_rows = 0;
    for (int k = 0; k < B; k++) {
        int v[3] = {bu[k], NU + bp[k], NU + bn[k]};
        for (int c = 0; c < 3; c++)
            if (!seen[v[c]]++)
                f->rows[f->n_rows++] = v[c];
    }
}

static void teardown_model(fixture *f)
{
    ccd_recmodel_free(&f->m);
    ccd_csr_free(&f->g);
    ccd_csr_free(&f->r);
}

static double loss_of(fixture *f, bool clamp)
{
    float dx[B];
    ccd_recmodel_forward(&f->m, f->rows, f->n_rows);
    return ccd_bpr_forward(f->m.final, NU, D, bu, bp, bn, B, clamp, dx);
}

static void check_gradient(ccd_model_type type)
{
    fixture f;
    setup_model(&f, type);
    float dx[B];
    ccd_recmodel_forward(&f.m, f.rows, f.n_rows);
    ccd_bpr_forward(f.m.final, NU, D, bu, bp, bn, B, false, dx);
    ccd_bpr_backward(f.m.final, f.m.dfinal, NU, D, bu, bp, bn, B, dx);
    ccd_recmodel_backward(&f.m, f.rows, f.n_rows);
    /* dfinal is cleared for the next batch */
    for (int k = 0; k < (NU + NI) * D; k++)
        assert_float_equal(f.m.dfinal[k], 0.0f, 0.0f);
    const float eps = 1e-2f;
    double max_err = 0;
    int nonzero = 0;
    for (int k = 0; k < (NU + NI) * D; k++) {
        float keep = f.m.emb0[k];
        f.m.emb0[k] = keep + eps;
        double lp = loss_of(&f, false);
        f.m.emb0[k] = keep - eps;
        double lm = loss_of(&f, false);
        f.m.emb0[k] = keep;
        double fd = (lp - lm) / (2.0 * eps);
        double err = fabs(fd - f.m.grad[k]) / fmax(1e-2, fabs(fd) + fabs(f.m.grad[k]));
        max_err = fmax(max_err, err);
        nonzero += fabs(fd) > 1e-4;
    }
    assert_true(nonzero > 10); /* the check exercises real gradients */
    print_message("max relative error %.2e over %d parameters\n", max_err, (NU + NI) * D);
    assert_true(max_err < 1e-2);
    teardown_model(&f);
}

static void lightgcn_gradient_matches_finite_differences(void **state)
{
    (void)state;
    check_gradient(CCD_MODEL_LIGHTGCN);
}

static void mf_gradient_matches_finite_differences(void **state)
{
    (void)state;
    check_gradient(CCD_MODEL_MF);
}

/* E = (E0 + A E0 + A^2 E0) / 3 with A from the definition, in double. */
static void lightgcn_forward_matches_dense_definition(void **state)
{
    (void)state;
    fixture f;
    setup_model(&f, CCD_MODEL_LIGHTGCN);
    enum { N = NU + NI };
    static double a[N][N], e1[N][D], e2[N][D];
    memset(a, 0, sizeof a);
    double deg[N] = {0};
    for (int u = 0; u < NU; u++)
        for (int i = 0; i < NI; i++)
            if (ccd_csr_contains(&f.r, u, i)) {
                a[u][NU + i] = a[NU + i][u] = 1.0;
                deg[u] += 1;
                deg[NU + i] += 1;
            }
    for (int x = 0; x < N; x++)
        for (int y = 0; y < N; y++)
            if (a[x][y] != 0)
                a[x][y] /= sqrt(deg[x] * deg[y]);
    for (int x = 0; x < N; x++)
        for (int c = 0; c < D; c++) {
            e1[x][c] = 0;
            for (int y = 0; y < N; y++)
                e1[x][c] += a[x][y] * f.m.emb0[y * D + c];
        }
    for (int x = 0; x < N; x++)
        for (int c = 0; c < D; c++) {
            e2[x][c] = 0;
            for (int y = 0; y < N; y++)
                e2[x][c] += a[x][y] * e1[y][c];
        }
    ccd_recmodel_propagate_all(&f.m);
    for (int x = 0; x < N; x++)
        for (int c = 0; c < D; c++) {
            double want = (f.m.emb0[x * D + c] + e1[x][c] + e2[x][c]) / 3.0;
            assert_float_equal(f.m.final[x * D + c], (float)want, 1e-5);
        }
    /* user 6 and item... every isolated node ends at e0 / 3 */
    for (int c = 0; c < D; c++)
        assert_float_equal(f.m.final[6 * D + c], f.m.emb0[6 * D + c] / 3.0f, 1e-7);
    /* the batch forward agrees with the full propagation on the batch rows */
    float keep[(NU + NI) * D];
    memcpy(keep, f.m.final, sizeof keep);
    memset(f.m.final, 0, sizeof keep);
    ccd_recmodel_forward(&f.m, f.rows, f.n_rows);
    for (int k = 0; k < f.n_rows; k++)
        for (int c = 0; c < D; c++)
            assert_float_equal(f.m.final[f.rows[k] * D + c], keep[f.rows[k] * D + c], 1e-6);
    teardown_model(&f);
}

/* d/dx of -log sigmoid(x) against finite differences, through the public BPR functions on a
 * one-triple, one-dimension model where x = e_u (e_i - e_j). */
static void bpr_loss_derivative_matches_finite_differences(void **state)
{
    (void)state;
    for (int clamp = 0; clamp < 2; clamp++)
        for (double x = -12.0; x <= 12.0; x += 0.75) {
            /* final = [u; i; j] with e_u = 1, e_i = x, e_j = 0 */
            float fin[3] = {1.0f, (float)x, 0.0f}, dx;
            int u = 0, p = 0, n = 1;
            ccd_bpr_forward(fin, 1, 1, &u, &p, &n, 1, clamp, &dx);
            double h = 1e-3;
            float fp[3] = {1.0f, (float)(x + h), 0.0f}, fm[3] = {1.0f, (float)(x - h), 0.0f}, t;
            double lp = ccd_bpr_forward(fp, 1, 1, &u, &p, &n, 1, clamp, &t);
            double lm = ccd_bpr_forward(fm, 1, 1, &u, &p, &n, 1, clamp, &t);
            double fd = (lp - lm) / (2 * h);
            double s = 1.0 / (1.0 + exp(-x));
            if (clamp && (s < 1.2e-4 || s > 0.99985))
                continue; /* finite differences straddle the clamp's kink */
            assert_true(fabs(fd - dx) < 1e-3);
            if (!clamp)
                assert_true(
                    fabs(ccd_bpr_forward(fin, 1, 1, &u, &p, &n, 1, 0, &t) - log1p(exp(-x))) < 1e-4);
        }
    /* clamped: a confident triple contributes -log(0.9999) and no gradient */
    float fin[3] = {1.0f, 20.0f, 0.0f}, dx;
    int u = 0, p = 0, n = 1;
    double l = ccd_bpr_forward(fin, 1, 1, &u, &p, &n, 1, true, &dx);
    assert_float_equal(l, -log(0.9999), 1e-9);
    assert_float_equal(dx, 0.0f, 0.0f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(lightgcn_gradient_matches_finite_differences),
        cmocka_unit_test(mf_gradient_matches_finite_differences),
        cmocka_unit_test(lightgcn_forward_matches_dense_definition),
        cmocka_unit_test(bpr_loss_derivative_matches_finite_differences),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
