/* lwckd: see lwckd.h.
 *
 * Design. Targets whose relation row is non-empty (and whose weight is non-zero) are gathered
 * CHUNK at a time into a dense block; the rest contribute nothing and are never touched. Per
 * chunk:
 *   Z = T N^T / tau                     one SGEMM, (rows x m)
 *   per row: max, then exp(z - max) and its sum in one pass, lse = max + log(sum);
 *            l_t = (sum_j A_tj z_tj - S_t lse) / (S_t + 1e-8), read from the few relation
 *            columns before Z is overwritten;
 *            G_tj = dL/dz_tj = (w_t / n_count) (S_t p_tj - A_tj) / (S_t + 1e-8)
 *                 = g_t (e_tj - A_tj sum_t / S_t): e - A sum / S is left in Z, and the row
 *            factor g_t multiplies the row's gathered target instead (d values, not m)
 *   dN += (scale / tau) G^T T = (scale / tau) Z^T (diag(g) T)    one SGEMM, (m x d)
 * so memory is O(CHUNK x m) whatever n is. The rows of a chunk are independent (OpenMP); their
 * losses are summed in target order afterwards, so the result does not depend on the thread
 * count. All buffers are allocated before d_neighbours is touched, so an allocation failure
 * (NaN) leaves it unchanged.
 *
 * Relation values: rel is a 0/1 pattern (values NULL); if it carries values they are used as
 * the weights A_tj, which is the same formula. */
#include "lwckd.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>

#include "dense.h"

#define CHUNK 256 /* rows per gathered block; 32-128 measured no faster (README) */

/* The loss of one gathered row, with its logit gradient left in z up to a per-row factor:
 * on return G_tj = *row_scale * z_tj. Folding the factor into the row's target (d values)
 * instead of z (m values) saves a pass over the row; two passes remain (max, exp + sum). */
static double row_term(float *z, int m, const ccd_csr *rel, int r, double coef_w, float *row_scale)
{
    const int64_t k0 = rel->indptr[r], k1 = rel->indptr[r + 1];
    double s = 0.0, az = 0.0; /* S_t and sum_j A_tj z_tj */
    for (int64_t k = k0; k < k1; k++) {
        double a = rel->values ? (double)rel->values[k] : 1.0;
        s += a;
        az += a * (double)z[rel->indices[k]];
    }
    const float mx = ccd_vmax(z, m);
    const double sum = ccd_vexp_shift_sum(z, m, mx); /* z now holds exp(z - max) */
    const double lse = (double)mx + log(sum);
    const double inv_s = 1.0 / (s + 1e-8);
    /* G_tj = coef (S p_tj - A_tj) = gp (e_tj - A_tj sum / S), coef = (w_t / n_count) / (S + 1e-8),
     * gp = coef S / sum */
    const double coef = coef_w * inv_s;
    *row_scale = (float)(coef * s / sum);
    const double per_a = s > 0.0 ? sum / s : 0.0;
    for (int64_t k = k0; k < k1; k++)
        z[rel->indices[k]] -= (float)(per_a * (rel->values ? (double)rel->values[k] : 1.0));
    return (az - s * lse) * inv_s;
}

double ccd_lwc_term(const float *targets, const float *weights, int n, double n_count,
                    const float *neighbours, int m, int d, const ccd_csr *rel, const int *rel_rows,
                    float tau, float scale, float *d_neighbours)
{
    if (n <= 0 || m <= 0 || n_count <= 0.0)
        return 0.0;
    const int cap = n < CHUNK ? n : CHUNK;
    float *tb = ccd_floats((size_t)cap * d);     /* (cap x d) gathered targets */
    float *z = ccd_floats((size_t)cap * m);      /* (cap x m) logits, then dL/dz */
    int *who = malloc((size_t)cap * sizeof *who); /* (cap) target index of each gathered row */
    double *lt = malloc((size_t)cap * sizeof *lt); /* (cap) w_t l_t of each gathered row */
    if (!tb || !z || !who || !lt) {
        free(tb), free(z), free(who), free(lt);
        return NAN;
    }
    const float inv_tau = 1.0f / tau;
    double total = 0.0; /* sum_t w_t l_t, in target order */
    int t = 0;
    while (t < n) {
        int rows = 0;
        for (; t < n && rows < cap; t++) {
            float w = weights ? weights[t] : 1.0f;
            if (w == 0.0f || ccd_csr_row_len(rel, rel_rows[t]) == 0)
                continue;
            who[rows] = t;
            for (int c = 0; c < d; c++)
                tb[(size_t)rows * d + c] = targets[(size_t)t * d + c];
            rows++;
        }
        if (rows == 0)
            break;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, m, d, inv_tau, tb, d,
                    neighbours, d, 0.0f, z, m);
#pragma omp parallel for schedule(dynamic, 8)
        for (int r = 0; r < rows; r++) {
            double w = weights ? (double)weights[who[r]] : 1.0;
            float gp;
            lt[r] = w * row_term(z + (size_t)r * m, m, rel, rel_rows[who[r]], w / n_count, &gp);
            for (int c = 0; c < d; c++) /* the row's gradient factor, moved onto its target */
                tb[(size_t)r * d + c] *= gp;
        }
        for (int r = 0; r < rows; r++)
            total += lt[r];
        if (d_neighbours && scale != 0.0f)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, m, d, rows, scale * inv_tau, z,
                        m, tb, d, 1.0f, d_neighbours, d);
    }
    free(tb), free(z), free(who), free(lt);
    return (double)scale * (-total / n_count);
}
