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
 * count (nor do the products: ccd_sgemm). All buffers are allocated before d_neighbours is touched,
 * so an allocation failure (NaN) leaves it unchanged.
 *
 * Relation values: rel is a 0/1 pattern (values NULL); if it carries values they are used as
 * the weights A_tj, which is the same formula. */
#include "lwckd.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "dense.h"
#include "rng.h"

#define CHUNK 256 /* rows per gathered block; 32-128 measured no faster (docs/performance.md) */

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
                       const float *neighbours, int m, int d, const ccd_csr *rel,
                       const int *rel_rows, float tau, float scale, const float *bias,
                       float *d_neighbours)
{
    if (n <= 0 || m <= 0 || n_count <= 0.0)
        return 0.0;
    const int cap = n < CHUNK ? n : CHUNK;
    float *tb = ccd_floats((size_t)cap * d);       /* (cap x d) gathered targets */
    float *z = ccd_floats((size_t)cap * m);        /* (cap x m) logits, then dL/dz */
    int *who = malloc((size_t)cap * sizeof *who);  /* (cap) target index of each gathered row */
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
        ccd_sgemm(false, true, rows, m, d, inv_tau, tb, d, neighbours, d, 0.0f, z, m);
#pragma omp parallel for schedule(dynamic, 8)
        for (int r = 0; r < rows; r++) {
            double w = weights ? (double)weights[who[r]] : 1.0;
            float gp;
            lt[r] =
                w * row_term(z + (size_t)r * m, m, rel, rel_rows[who[r]], w / n_count, bias, &gp);
            for (int c = 0; c < d; c++) /* the row's gradient factor, moved onto its target */
                tb[(size_t)r * d + c] *= gp;
        }
        for (int r = 0; r < rows; r++)
            total += lt[r];
        if (d_neighbours && scale != 0.0f)
            ccd_sgemm(true, false, m, d, rows, scale * inv_tau, z, m, tb, d, 1.0f, d_neighbours, d);
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

/* Targets per sample: each group of targets gets its own draw, so the columns a term scores
 * (the group's relation columns plus the draw) stay bounded however large the batch grows. */
#define SAMPLE_ROWS 256

/* Scratch of the sampled softmax, sized for its largest group. */
typedef struct {
    unsigned char *flag; /* (m) 1: relation column, 2: drawn, 0: out */
    int *pos;            /* (m) compact index of a column in C */
    int *cols;           /* (c_max) C, sorted */
    float *nb, *dnb;     /* (c_max x d) its neighbours, and their gradient */
    float *bias;         /* (c_max) log-weights */
    int *rows;           /* (rows_max) row t of rc */
    ccd_csr rc;          /* the group's relation rows in compact columns */
} sampled;

static void sampled_free(sampled *w)
{
    free(w->flag), free(w->pos), free(w->cols), free(w->nb), free(w->dnb), free(w->bias);
    free(w->rows), free(w->rc.indptr), free(w->rc.indices), free(w->rc.values);
    memset(w, 0, sizeof *w);
}

/* Groups of rows_max targets with at most rel_max relation entries each, C of at most c_max
 * columns among m, neighbours of d values; with_values: the relation carries values. */
static int sampled_alloc(sampled *w, int m, int d, int rows_max, int64_t rel_max, int64_t c_max,
                         bool with_values)
{
    const size_t n_rel = (size_t)(rel_max > 0 ? rel_max : 1);
    memset(w, 0, sizeof *w);
    w->flag = calloc((size_t)m, 1);
    w->pos = malloc((size_t)m * sizeof *w->pos);
    w->cols = malloc((size_t)c_max * sizeof *w->cols);
    w->nb = ccd_floats((size_t)c_max * d);
    w->dnb = ccd_floats((size_t)c_max * d);
    w->bias = ccd_floats((size_t)c_max);
    w->rows = malloc((size_t)rows_max * sizeof *w->rows);
    w->rc.indptr = malloc(((size_t)rows_max + 1) * sizeof *w->rc.indptr);
    w->rc.indices = malloc(n_rel * sizeof *w->rc.indices);
    w->rc.values = with_values ? malloc(n_rel * sizeof *w->rc.values) : NULL;
    return w->flag && w->pos && w->cols && w->nb && w->dnb && w->bias && w->rows && w->rc.indptr &&
                   w->rc.indices && (!with_values || w->rc.values)
               ? 0
               : -1;
}

/* Whether target t's relation row takes part: a valid row, and a non-zero weight. */
static bool target_counts(const ccd_csr *rel, const int *rel_rows, const float *weights, int t)
{
    const int r = rel_rows[t];
    return !(weights && weights[t] == 0.0f) && r >= 0 && r < rel->n_rows;
}

/* The most relation entries of one group of rows_max consecutive targets. */
static int64_t group_rel_max(const ccd_csr *rel, const int *rel_rows, int n, int rows_max)
{
    int64_t rel_max = 0;
    for (int t0 = 0; t0 < n; t0 += rows_max) {
        int64_t g = 0;
        for (int t = t0; t < n && t < t0 + rows_max; t++)
            g += ccd_csr_row_len(rel, rel_rows[t]);
        rel_max = g > rel_max ? g : rel_max;
    }
    return rel_max;
}

/* C for targets [t0, t0 + gn) into w->cols, sorted (column order, as the full softmax): their
 * relation columns R (flag 1), then *want draws among the m - |R| others (flag 2). Returns |C|;
 * *n_rel = |R|. */
static int pick_columns(sampled *w, const ccd_csr *rel, const int *rel_rows, const float *weights,
                        int t0, int gn, int m, int max_neighbours, ccd_rng *rng, int *n_rel,
                        int *want)
{
    int nc = 0;
    for (int t = t0; t < t0 + gn; t++) {
        if (!target_counts(rel, rel_rows, weights, t))
            continue;
        const int r = rel_rows[t];
        for (int64_t e = rel->indptr[r]; e < rel->indptr[r + 1]; e++)
            if (!w->flag[rel->indices[e]]) {
                w->flag[rel->indices[e]] = 1;
                w->cols[nc++] = rel->indices[e];
            }
    }
    *n_rel = nc;
    *want = max_neighbours < m - nc ? max_neighbours : m - nc;
    while (nc < *n_rel + *want) {
        int j = (int)ccd_rng_below(rng, (uint32_t)m);
        if (!w->flag[j]) {
            w->flag[j] = 2;
            w->cols[nc++] = j;
        }
    }
    qsort(w->cols, (size_t)nc, sizeof *w->cols, ccd_cmp_int);
    return nc;
}

/* C's neighbours (w->nb) and log-weights (w->bias: lw on the drawn columns), and the group's
 * relation rows in C's compact columns (w->rc, w->rows). */
static void gather_group(sampled *w, int nc, float lw, const float *neighbours, int d,
                         const ccd_csr *rel, const int *rel_rows, const float *weights, int t0,
                         int gn)
{
    for (int q = 0; q < nc; q++) {
        w->pos[w->cols[q]] = q;
        memcpy(w->nb + (size_t)q * d, neighbours + (size_t)w->cols[q] * d,
               (size_t)d * sizeof *w->nb);
        w->bias[q] = w->flag[w->cols[q]] == 2 ? lw : 0.0f;
    }
    ccd_csr *rc = &w->rc;
    int64_t e_out = 0;
    for (int t = 0; t < gn; t++) {
        rc->indptr[t] = e_out;
        w->rows[t] = t;
        if (!target_counts(rel, rel_rows, weights, t0 + t))
            continue;
        const int r = rel_rows[t0 + t];
        for (int64_t e = rel->indptr[r]; e < rel->indptr[r + 1]; e++) {
            if (rc->values)
                rc->values[e_out] = rel->values[e];
            rc->indices[e_out++] = w->pos[rel->indices[e]]; /* increasing: C is sorted */
        }
    }
    rc->indptr[gn] = e_out;
    rc->nnz = e_out;
    rc->n_rows = gn;
    rc->n_cols = nc;
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
    const int rows_max = n < SAMPLE_ROWS ? n : SAMPLE_ROWS;
    const int64_t rel_max = group_rel_max(rel, rel_rows, n, rows_max);
    sampled w;
    if (sampled_alloc(&w, m, d, rows_max, rel_max, rel_max + max_neighbours, rel->values != NULL) !=
        0) {
        sampled_free(&w);
        return NAN;
    }
    ccd_rng rng;
    ccd_rng_init(&rng, seed, stream);
    double loss = 0.0;
    for (int t0 = 0; t0 < n; t0 += rows_max) {
        const int gn = n - t0 < rows_max ? n - t0 : rows_max;
        int n_rel, want;
        const int nc = pick_columns(&w, rel, rel_rows, weights, t0, gn, m, max_neighbours, &rng,
                                    &n_rel, &want);
        /* The draws' exps estimate the sum over the columns outside R: weight (m - |R|) / |U|. */
        const float lw = want > 0 ? (float)log((double)(m - n_rel) / (double)want) : 0.0f;
        gather_group(&w, nc, lw, neighbours, d, rel, rel_rows, weights, t0, gn);
        if (d_neighbours)
            memset(w.dnb, 0, (size_t)nc * d * sizeof *w.dnb);
        double l =
            lwc_term(targets + (size_t)t0 * d, weights ? weights + t0 : NULL, gn, n_count, w.nb, nc,
                     d, &w.rc, w.rows, tau, scale, w.bias, d_neighbours ? w.dnb : NULL);
        if (!(l == l)) {
            loss = NAN;
            break;
        }
        loss += l;
        if (d_neighbours)
            for (int q = 0; q < nc; q++) {
                float *g = d_neighbours + (size_t)w.cols[q] * d;
                const float *src = w.dnb + (size_t)q * d;
                for (int c = 0; c < d; c++)
                    g[c] += src[c];
            }
        for (int q = 0; q < nc; q++)
            w.flag[w.cols[q]] = 0;
    }
    sampled_free(&w);
    return loss;
}
