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
#include <string.h>

#include "dense.h"
#include "rng.h"

#define CHUNK 256 /* rows per gathered block; 32-128 measured no faster (README) */

/* The loss of one gathered row, with its logit gradient left in z up to a per-row factor:
 * on return G_tj = *row_scale * z_tj. Folding the factor into the row's target (d values)
 * instead of z (m values) saves a pass over the row; two passes remain (max, exp + sum). */
static double row_term(float *z, int m, const ccd_csr *rel, int r, double coef_w, const float *bias,
                       float *row_scale)
{
    if (bias) /* log-weights of sampled columns (ccd_lwc_term_sampled); zero on relation columns */
        for (int j = 0; j < m; j++)
            z[j] += bias[j];
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

static double lwc_term(const float *targets, const float *weights, int n, double n_count,
                       const float *neighbours, int m, int d, const ccd_csr *rel, const int *rel_rows,
                       float tau, float scale, const float *bias, float *d_neighbours)
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
            lt[r] = w * row_term(z + (size_t)r * m, m, rel, rel_rows[who[r]], w / n_count, bias, &gp);
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

double ccd_lwc_term(const float *targets, const float *weights, int n, double n_count,
                    const float *neighbours, int m, int d, const ccd_csr *rel, const int *rel_rows,
                    float tau, float scale, float *d_neighbours)
{
    return lwc_term(targets, weights, n, n_count, neighbours, m, d, rel, rel_rows, tau, scale, NULL,
                    d_neighbours);
}

double ccd_lwc_term_sampled(const float *targets, const float *weights, int n, double n_count,
                            const float *neighbours, int m, int d, const ccd_csr *rel,
                            const int *rel_rows, float tau, float scale, float *d_neighbours,
                            int max_neighbours, uint64_t seed, uint64_t stream)
{
    if (max_neighbours <= 0 || m <= max_neighbours)
        return ccd_lwc_term(targets, weights, n, n_count, neighbours, m, d, rel, rel_rows, tau,
                            scale, d_neighbours);
    if (n <= 0 || n_count <= 0.0)
        return 0.0;
    /* C = R (every relation column of a target that counts) u U (max_neighbours uniform draws
     * without replacement), in increasing column id. flag: 1 in R, 2 in U only. */
    unsigned char *flag = calloc((size_t)m, 1);          /* (m) */
    int *cidx = malloc((size_t)m * sizeof *cidx);         /* (m) compact index of a column of C */
    int64_t rel_nnz = 0;
    for (int t = 0; t < n; t++)
        rel_nnz += ccd_csr_row_len(rel, rel_rows[t]);
    ccd_csr rc = {0};
    rc.n_rows = n;
    rc.indptr = malloc(((size_t)n + 1) * sizeof *rc.indptr);
    rc.indices = malloc((size_t)(rel_nnz > 0 ? rel_nnz : 1) * sizeof *rc.indices);
    rc.values = rel->values ? malloc((size_t)(rel_nnz > 0 ? rel_nnz : 1) * sizeof *rc.values) : NULL;
    int *rows = malloc((size_t)n * sizeof *rows);        /* (n) target t -> row t of rc */
    if (!flag || !cidx || !rc.indptr || !rc.indices || (rel->values && !rc.values) || !rows) {
        free(flag), free(cidx), free(rc.indptr), free(rc.indices), free(rc.values), free(rows);
        return NAN;
    }
    int64_t n_rel = 0;
    for (int t = 0; t < n; t++) {
        const int r = rel_rows[t];
        if ((weights && weights[t] == 0.0f) || r < 0 || r >= rel->n_rows)
            continue;
        for (int64_t e = rel->indptr[r]; e < rel->indptr[r + 1]; e++)
            if (!flag[rel->indices[e]]) {
                flag[rel->indices[e]] = 1;
                n_rel++;
            }
    }
    ccd_rng rng;
    ccd_rng_init(&rng, seed, stream);
    const int64_t want = max_neighbours < m - n_rel ? max_neighbours : m - n_rel;
    for (int64_t got = 0; got < want;) { /* draws among the columns outside R */
        int j = (int)ccd_rng_below(&rng, (uint32_t)m);
        if (!flag[j]) {
            flag[j] = 2;
            got++;
        }
    }
    int nc = 0;
    for (int j = 0; j < m; j++)
        cidx[j] = flag[j] ? nc++ : -1;
    float *nb = ccd_floats((size_t)nc * d);   /* (nc x d) the sampled neighbours */
    float *dnb = ccd_floats((size_t)nc * d);  /* (nc x d) their gradient */
    float *bias = ccd_floats((size_t)nc);     /* (nc) log-weights */
    double loss = NAN;
    if (nb && dnb && bias) {
        /* Sum over the columns outside R estimated from the draws: weight (m - |R|) / |U|. */
        const float lw = want > 0 ? (float)log((double)(m - n_rel) / (double)want) : 0.0f;
        for (int j = 0; j < m; j++)
            if (flag[j]) {
                memcpy(nb + (size_t)cidx[j] * d, neighbours + (size_t)j * d, (size_t)d * sizeof *nb);
                bias[cidx[j]] = flag[j] == 2 ? lw : 0.0f;
            }
        int64_t w = 0;
        for (int t = 0; t < n; t++) {
            const int r = rel_rows[t];
            rc.indptr[t] = w;
            rows[t] = t;
            if (r >= 0 && r < rel->n_rows)
                for (int64_t e = rel->indptr[r]; e < rel->indptr[r + 1]; e++) {
                    if (rc.values)
                        rc.values[w] = rel->values[e];
                    rc.indices[w++] = cidx[rel->indices[e]]; /* increasing: C keeps the order */
                }
        }
        rc.indptr[n] = w;
        rc.nnz = w;
        rc.n_cols = nc;
        loss = lwc_term(targets, weights, n, n_count, nb, nc, d, &rc, rows, tau, scale, bias,
                        d_neighbours ? dnb : NULL);
        if (loss == loss && d_neighbours)
            for (int j = 0; j < m; j++)
                if (flag[j]) {
                    float *g = d_neighbours + (size_t)j * d;
                    const float *s = dnb + (size_t)cidx[j] * d;
                    for (int c = 0; c < d; c++)
                        g[c] += s[c];
                }
    }
    free(nb), free(dnb), free(bias);
    free(flag), free(cidx), free(rc.indptr), free(rc.indices), free(rc.values), free(rows);
    return loss;
}
