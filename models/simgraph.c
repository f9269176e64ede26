/* simgraph: see simgraph.h.
 *
 * Design. The cosine matrix is never formed densely: row u's cosines come from a dense
 * accumulator over the other rows, filled through the transpose of b (for each column c of u,
 * every row v holding c gets b_uc b_vc), so the work is sum_c deg(c)^2 and memory is the kept
 * entries plus one accumulator of n_rows per thread. Only off-diagonal entries above the
 * bracket's low end (0.1001) are kept: no threshold the bisection can try is lower, so the rest
 * can never become edges.
 *
 * The rows are built in two passes (count, then fill) so that OpenMP over rows writes straight
 * into the final CSR at offsets that do not depend on the thread count: the result is the same
 * for any number of threads.
 *
 * Cosines are computed in double as dot / sqrt(|u|^2 |v|^2). For a 0/1 b the dot and the squared
 * norms are exact integers, so a cosine that is exactly representable (1/2 for one shared column
 * of rows with 1 and 4 entries) comes out exact, and C > t is decided on the true value, ties
 * included (the first bisection step tries t = 0.5 exactly). The reference (PyTorch, float32)
 * may round such ties either way; no port can match it bit for bit there.
 *
 * The bisection counts entries above t by binary search in a sorted copy of the kept values, so
 * each of its (at most 100) steps is O(log nnz) after one O(nnz log nnz) sort. */
#include "simgraph.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dense.h"

#define LO 0.1001
#define HI 0.8999
#define MAX_ITER 100
#define TOLERANCE 0.6

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Per-thread scratch for one row's cosines. */
typedef struct {
    double *acc;  /* (n_rows) dot products with row u; zero outside the touched rows */
    int *stamp;   /* (n_rows) u + 1 when v was touched while computing row u */
    int *touched; /* (n_rows) the rows touched, in first-touch order */
} scratch;

static void scratch_free(scratch *s)
{
    free(s->acc);
    free(s->stamp);
    free(s->touched);
}

static int scratch_init(scratch *s, int n)
{
    size_t k = (size_t)(n > 0 ? n : 1);
    s->acc = calloc(k, sizeof *s->acc);
    s->stamp = calloc(k, sizeof *s->stamp);
    s->touched = malloc(k * sizeof *s->touched);
    if (!s->acc || !s->stamp || !s->touched) {
        scratch_free(s);
        return -1;
    }
    return 0;
}

static inline double weight(const ccd_csr *a, int64_t k)
{
    return a->values ? (double)a->values[k] : 1.0;
}

/* Dot products of row u with every row sharing a column with it; returns how many rows were
 * touched (listed in s->touched, their dots in s->acc). */
static int row_dots(const ccd_csr *b, const ccd_csr *bt, int u, scratch *s)
{
    int nt = 0;
    for (int64_t k = b->indptr[u]; k < b->indptr[u + 1]; k++) {
        int c = b->indices[k];
        double wu = weight(b, k);
        for (int64_t q = bt->indptr[c]; q < bt->indptr[c + 1]; q++) {
            int v = bt->indices[q];
            if (s->stamp[v] != u + 1) {
                s->stamp[v] = u + 1;
                s->touched[nt++] = v;
            }
            s->acc[v] += wu * weight(bt, q);
        }
    }
    return nt;
}

static inline double cosine(double dot, double sq_u, double sq_v)
{
    /* A row with norm 0 touches nothing, so the clamp of the spec (norm >= 1e-8) only guards
     * against a zero denominator and never changes a value. */
    double den = sqrt(sq_u * sq_v);
    return dot / (den > 1e-16 ? den : 1e-16);
}

/* Count (idx == NULL) or also write (sorted indices at idx, cosines at val) the kept entries of
 * row u; the accumulator is left zeroed for the next row. */
static int64_t row_kept(const ccd_csr *b, const ccd_csr *bt, const double *sq, int u, scratch *s,
                        int *idx, double *val)
{
    int nt = row_dots(b, bt, u, s);
    int64_t n = 0;
    for (int k = 0; k < nt; k++) {
        int v = s->touched[k];
        if (v != u && cosine(s->acc[v], sq[u], sq[v]) > LO) {
            if (idx)
                idx[n] = v;
            n++;
        }
    }
    if (idx) {
        qsort(idx, (size_t)n, sizeof *idx, ccd_cmp_int);
        for (int64_t k = 0; k < n; k++)
            val[k] = cosine(s->acc[idx[k]], sq[u], sq[idx[k]]);
    }
    for (int k = 0; k < nt; k++)
        s->acc[s->touched[k]] = 0.0;
    return n;
}

/* The kept cosines as CSR with double values: rows sorted, entries > LO, no diagonal. */
static int kept_cosines(const ccd_csr *b, int64_t **indptr_out, int **idx_out, double **val_out)
{
    const int n = b->n_rows;
    ccd_csr bt;
    if (ccd_csr_transpose(&bt, b) != 0)
        return -1;
    double *sq = calloc((size_t)(n > 0 ? n : 1), sizeof *sq); /* (n) squared norms */
    int64_t *indptr = calloc((size_t)n + 1, sizeof *indptr);  /* (n + 1) */
    int *idx = NULL;
    double *val = NULL;
    int failed = !sq || !indptr;
    for (int u = 0; !failed && u < n; u++)
        for (int64_t k = b->indptr[u]; k < b->indptr[u + 1]; k++)
            sq[u] += weight(b, k) * weight(b, k);
    for (int pass = 0; pass < 2 && !failed; pass++) {
        if (pass == 1) {
            for (int u = 0; u < n; u++)
                indptr[u + 1] += indptr[u];
            idx = malloc((size_t)(indptr[n] > 0 ? indptr[n] : 1) * sizeof *idx); /* (nnz) */
            val = malloc((size_t)(indptr[n] > 0 ? indptr[n] : 1) * sizeof *val); /* (nnz) */
            if (!idx || !val) {
                failed = 1;
                break;
            }
        }
#pragma omp parallel
        {
            scratch s;
            int ok = scratch_init(&s, n) == 0;
            if (!ok) {
#pragma omp atomic write
                failed = 1;
            }
#pragma omp for schedule(dynamic, 64)
            for (int u = 0; u < n; u++) {
                if (!ok)
                    continue;
                if (pass == 0)
                    indptr[u + 1] = row_kept(b, &bt, sq, u, &s, NULL, NULL);
                else
                    row_kept(b, &bt, sq, u, &s, idx + indptr[u], val + indptr[u]);
            }
            if (ok)
                scratch_free(&s);
        }
    }
    ccd_csr_free(&bt);
    free(sq);
    if (failed) {
        free(indptr), free(idx), free(val);
        return -1;
    }
    *indptr_out = indptr;
    *idx_out = idx;
    *val_out = val;
    return 0;
}

int ccd_cosine_graph(const ccd_csr *b, double target_degree, ccd_csr *out, double *threshold)
{
    memset(out, 0, sizeof *out);
    const int n = b->n_rows;
    int64_t *kptr;
    int *kidx;
    double *kval;
    if (kept_cosines(b, &kptr, &kidx, &kval) != 0)
        return -1;
    const int64_t nk = kptr[n];
    double *sorted = malloc((size_t)(nk > 0 ? nk : 1) * sizeof *sorted); /* (nk) ascending */
    if (!sorted) {
        free(kptr), free(kidx), free(kval);
        return -1;
    }
    memcpy(sorted, kval, (size_t)nk * sizeof *sorted);
    qsort(sorted, (size_t)nk, sizeof *sorted, cmp_double);

    double lo = LO, hi = HI, t = 0.5 * (LO + HI);
    for (int it = 0; it < MAX_ITER; it++) {
        t = 0.5 * (lo + hi);
        double avg = n > 0 ? (double)(nk - ccd_first_above(sorted, nk, t)) / n : 0.0;
        if (fabs(avg - target_degree) < TOLERANCE)
            break;
        if (avg > target_degree)
            lo = t;
        else
            hi = t;
    }
    free(sorted);

    /* Compact the kept entries above t in place: rows stay sorted, values are dropped. */
    int64_t w = 0;
    for (int u = 0; u < n; u++) {
        int64_t start = kptr[u];
        kptr[u] = w;
        for (int64_t k = start; k < kptr[u + 1]; k++)
            if (kval[k] > t)
                kidx[w++] = kidx[k];
    }
    kptr[n] = w;
    free(kval);
    int *shrunk = realloc(kidx, (size_t)(w > 0 ? w : 1) * sizeof *shrunk);
    out->n_rows = out->n_cols = n;
    out->nnz = w;
    out->indptr = kptr;
    out->indices = shrunk ? shrunk : kidx; /* a failed shrink keeps the larger block */
    out->values = NULL;
    if (threshold)
        *threshold = t;
    return 0;
}
