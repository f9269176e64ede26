/* sparse: CSR construction and the products LightGCN needs. See sparse.h. */
#include "sparse.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dense.h"

int ccd_cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

int ccd_csr_from_pairs(ccd_csr *out, int n_rows, int n_cols, const int *rows, const int *cols,
                       int64_t n)
{
    memset(out, 0, sizeof *out);
    for (int64_t k = 0; k < n; k++)
        if (rows[k] < 0 || rows[k] >= n_rows || cols[k] < 0 || cols[k] >= n_cols)
            return -1;
    int64_t *ptr = calloc((size_t)n_rows + 1, sizeof *ptr);
    int *idx = malloc((size_t)(n > 0 ? n : 1) * sizeof *idx);
    int64_t *fill = malloc((size_t)(n_rows > 0 ? n_rows : 1) * sizeof *fill);
    if (!ptr || !idx || !fill) {
        free(ptr), free(idx), free(fill);
        return -1;
    }
    for (int64_t k = 0; k < n; k++)
        ptr[rows[k] + 1]++;
    for (int r = 0; r < n_rows; r++)
        ptr[r + 1] += ptr[r];
    memcpy(fill, ptr, (size_t)n_rows * sizeof *fill);
    for (int64_t k = 0; k < n; k++)
        idx[fill[rows[k]]++] = cols[k];
    /* Sort each row and squeeze out duplicates in place. */
    int64_t w = 0;
    for (int r = 0; r < n_rows; r++) {
        int64_t b = ptr[r], e = ptr[r + 1];
        qsort(idx + b, (size_t)(e - b), sizeof *idx, ccd_cmp_int);
        ptr[r] = w;
        for (int64_t k = b; k < e; k++)
            if (k == b || idx[k] != idx[k - 1])
                idx[w++] = idx[k];
    }
    ptr[n_rows] = w;
    free(fill);
    int *shrunk = realloc(idx, (size_t)(w > 0 ? w : 1) * sizeof *idx);
    out->n_rows = n_rows;
    out->n_cols = n_cols;
    out->nnz = w;
    out->indptr = ptr;
    out->indices = shrunk ? shrunk : idx;
    out->values = NULL;
    return 0;
}

int ccd_csr_transpose(ccd_csr *out, const ccd_csr *a)
{
    memset(out, 0, sizeof *out);
    int64_t *ptr = calloc((size_t)a->n_cols + 1, sizeof *ptr);
    int *idx = malloc((size_t)(a->nnz > 0 ? a->nnz : 1) * sizeof *idx);
    float *val = a->values ? malloc((size_t)(a->nnz > 0 ? a->nnz : 1) * sizeof *val) : NULL;
    int64_t *fill = malloc(((size_t)a->n_cols + 1) * sizeof *fill);
    if (!ptr || !idx || !fill || (a->values && !val)) {
        free(ptr), free(idx), free(val), free(fill);
        return -1;
    }
    for (int64_t k = 0; k < a->nnz; k++)
        ptr[a->indices[k] + 1]++;
    for (int c = 0; c < a->n_cols; c++)
        ptr[c + 1] += ptr[c];
    memcpy(fill, ptr, (size_t)a->n_cols * sizeof *fill);
    /* Walking rows in order keeps every output row sorted. */
    for (int r = 0; r < a->n_rows; r++)
        for (int64_t k = a->indptr[r]; k < a->indptr[r + 1]; k++) {
            int64_t at = fill[a->indices[k]]++;
            idx[at] = r;
            if (val)
                val[at] = a->values[k];
        }
    free(fill);
    out->n_rows = a->n_cols;
    out->n_cols = a->n_rows;
    out->nnz = a->nnz;
    out->indptr = ptr;
    out->indices = idx;
    out->values = val;
    return 0;
}

void ccd_csr_free(ccd_csr *a)
{
    if (!a)
        return;
    free(a->indptr);
    free(a->indices);
    free(a->values);
    memset(a, 0, sizeof *a);
}

bool ccd_csr_contains(const ccd_csr *a, int r, int c)
{
    if (r < 0 || r >= a->n_rows)
        return false;
    int64_t lo = a->indptr[r], hi = a->indptr[r + 1];
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int v = a->indices[mid];
        if (v == c)
            return true;
        if (v < c)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

int ccd_csr_alloc(ccd_csr *out, int n_rows, int n_cols, int64_t cap, bool with_values)
{
    memset(out, 0, sizeof *out);
    out->n_rows = n_rows;
    out->n_cols = n_cols;
    const size_t room = (size_t)(cap > 0 ? cap : 1);
    out->indptr = malloc(((size_t)n_rows + 1) * sizeof *out->indptr);
    out->indices = malloc(room * sizeof *out->indices);
    out->values = with_values ? malloc(room * sizeof *out->values) : NULL;
    if (!out->indptr || !out->indices || (with_values && !out->values)) {
        ccd_csr_free(out);
        return -1;
    }
    return 0;
}

int ccd_graph_fill_rows(ccd_csr *out, const ccd_csr *a, const ccd_csr *b, int n_fill)
{
    memset(out, 0, sizeof *out);
    if (a->n_rows != b->n_rows || a->n_cols != b->n_cols || n_fill > a->n_rows || !a->values ||
        !b->values)
        return -1;
    const int n = a->n_rows;
    int64_t nnz = 0;
    for (int r = 0; r < n; r++) {
        const ccd_csr *src = r < n_fill && ccd_csr_row_len(a, r) == 0 ? b : a;
        nnz += ccd_csr_row_len(src, r);
    }
    if (ccd_csr_alloc(out, n, a->n_cols, nnz, true) != 0)
        return -1;
    int64_t w = 0;
    for (int r = 0; r < n; r++) {
        out->indptr[r] = w;
        const ccd_csr *src = r < n_fill && ccd_csr_row_len(a, r) == 0 ? b : a;
        const int64_t len = ccd_csr_row_len(src, r), at = src->indptr[r];
        memcpy(out->indices + w, src->indices + at, (size_t)len * sizeof *out->indices);
        memcpy(out->values + w, src->values + at, (size_t)len * sizeof *out->values);
        w += len;
    }
    out->indptr[n] = w;
    out->nnz = w;
    return 0;
}

int ccd_graph_build(ccd_csr *out, const ccd_csr *r, int n_users, int n_items)
{
    memset(out, 0, sizeof *out);
    if (r->n_rows > n_users || r->n_cols > n_items)
        return -1;
    ccd_csr rt;
    if (ccd_csr_transpose(&rt, r) != 0)
        return -1;
    int n = n_users + n_items;
    float *inv_sqrt_deg = malloc((size_t)(n > 0 ? n : 1) * sizeof *inv_sqrt_deg);
    if (ccd_csr_alloc(out, n, n, 2 * r->nnz, true) != 0 || !inv_sqrt_deg) {
        ccd_csr_free(out);
        ccd_csr_free(&rt);
        free(inv_sqrt_deg);
        return -1;
    }
    for (int v = 0; v < n; v++) {
        int64_t deg = v < n_users ? ccd_csr_row_len(r, v) : ccd_csr_row_len(&rt, v - n_users);
        inv_sqrt_deg[v] = deg > 0 ? (float)(1.0 / sqrt((double)deg)) : 0.0f;
    }
    /* User rows hold item neighbours (offset by n_users), item rows hold user neighbours; both
     * stay sorted because users precede items in node order. */
    int64_t w = 0;
    for (int v = 0; v < n; v++) {
        out->indptr[v] = w;
        const ccd_csr *src = v < n_users ? r : &rt;
        int row = v < n_users ? v : v - n_users;
        int offset = v < n_users ? n_users : 0;
        if (row >= src->n_rows)
            continue;
        for (int64_t k = src->indptr[row]; k < src->indptr[row + 1]; k++) {
            int nb = src->indices[k] + offset;
            out->indices[w] = nb;
            out->values[w] = inv_sqrt_deg[v] * inv_sqrt_deg[nb];
            w++;
        }
    }
    out->indptr[n] = w;
    out->nnz = w;
    ccd_csr_free(&rt);
    free(inv_sqrt_deg);
    return 0;
}

/* One output row: y_r = sum_k w_k x_{c_k}. The neighbour rows are scattered through x, so the
 * loop is bound by memory: prefetching a few neighbours ahead keeps loads in flight, and the sum
 * is kept in registers rather than in y_r. The row is cut into slices of W = 128, 64, 32, 16 or
 * 8 columns (compile-time widths, so the W accumulators are W / 8 AVX2 or W / 16 AVX-512
 * registers), and the neighbour list is walked once per slice. With AVX-512 (32 registers) a
 * d = 128 teacher row is one walk of 128: every neighbour row is fetched once, whole, with its
 * eight cache lines in flight together (a 16x product 12% faster than two walks of 64, a 1x one
 * about a third); without it 64 is the most that leaves AVX2 registers for the loads, and d = 128
 * takes two walks of 64. The d = 8 student is one walk of 8. A remainder that no slice fits (d not
 * a multiple of 8) goes through a plain loop. Every column sums its terms in neighbour order
 * whatever the slicing, as the plain loop does, so the widths give the same bits. */
#define SPMM_AHEAD 16
/* Each term is one CCD_FMA (dense.h), so every width gives the same bits. */
#define SPMM_SLICE(W)                                                                              \
    static inline void spmm_slice##W(const int *restrict ind, const float *restrict val,           \
                                     int64_t b, int64_t e, const float *restrict x, size_t d,      \
                                     float *restrict yr)                                           \
    {                                                                                              \
        float acc[W];                                                                              \
        for (int j = 0; j < W; j++)                                                                \
            acc[j] = 0.0f;                                                                         \
        for (int64_t k = b; k < e; k++) {                                                          \
            if (k + SPMM_AHEAD < e) {                                                              \
                const char *next = (const char *)(x + (size_t)ind[k + SPMM_AHEAD] * d);            \
                for (size_t off = 0; off < W * sizeof(float); off += 64)                           \
                    __builtin_prefetch(next + off);                                                \
            }                                                                                      \
            const float w = val[k];                                                                \
            const float *restrict xr = x + (size_t)ind[k] * d;                                     \
            for (int j = 0; j < W; j++)                                                            \
                acc[j] = CCD_FMA(w, xr[j], acc[j]);                                                \
        }                                                                                          \
        for (int j = 0; j < W; j++)                                                                \
            yr[j] = acc[j];                                                                        \
    }
#ifdef __AVX512F__
SPMM_SLICE(128)
#endif
SPMM_SLICE(64)
SPMM_SLICE(32)
SPMM_SLICE(16)
SPMM_SLICE(8)

/* y_r from the neighbour list ind[b..e) with weights val[b..e). */
static inline void spmm_list(const int *restrict ind, const float *restrict val, int64_t b,
                             int64_t e, const float *restrict x, float *restrict yr, int d)
{
    /* x and yr never overlap: callers pass distinct buffers. */
    const size_t ld = (size_t)d;
    int j = 0;
#ifdef __AVX512F__
    for (; j + 128 <= d; j += 128)
        spmm_slice128(ind, val, b, e, x + j, ld, yr + j);
#endif
    for (; j + 64 <= d; j += 64)
        spmm_slice64(ind, val, b, e, x + j, ld, yr + j);
    if (j + 32 <= d)
        spmm_slice32(ind, val, b, e, x + j, ld, yr + j), j += 32;
    if (j + 16 <= d)
        spmm_slice16(ind, val, b, e, x + j, ld, yr + j), j += 16;
    if (j + 8 <= d)
        spmm_slice8(ind, val, b, e, x + j, ld, yr + j), j += 8;
    if (j < d) {
        for (int c = j; c < d; c++)
            yr[c] = 0.0f;
        for (int64_t k = b; k < e; k++) {
            const float w = val[k];
            const float *restrict xr = x + (size_t)ind[k] * ld;
            for (int c = j; c < d; c++)
                yr[c] = CCD_FMA(w, xr[c], yr[c]);
        }
    }
}

static inline void spmm_row(const ccd_csr *a, const float *restrict x, float *restrict yr, int d,
                            int r)
{
    spmm_list(a->indices, a->values, a->indptr[r], a->indptr[r + 1], x, yr, d);
}

void ccd_spmm(const ccd_csr *a, const float *x, float *y, int d)
{
#pragma omp parallel for schedule(dynamic, 256)
    for (int r = 0; r < a->n_rows; r++)
        spmm_row(a, x, y + (size_t)r * d, d, r);
}

void ccd_spmm_add(const ccd_csr *a, const float *x, float *y, int d, const float *add, float scale)
{
#pragma omp parallel for schedule(dynamic, 256)
    for (int r = 0; r < a->n_rows; r++) {
        float *yr = y + (size_t)r * d;
        spmm_row(a, x, yr, d, r);
        const float *ar = add + (size_t)r * d;
        for (int j = 0; j < d; j++)
            yr[j] = scale * (yr[j] + ar[j]);
    }
}

void ccd_spmm_rows(const ccd_csr *a, const float *x, float *y, int d, const int *rows, int n)
{
#pragma omp parallel for schedule(dynamic, 64)
    for (int k = 0; k < n; k++)
        spmm_row(a, x, y + (size_t)rows[k] * d, d, rows[k]);
}

/* The masked products: a row's neighbours with mask set are first copied into a short list (a
 * pass over indices and one byte each), so the kernel loads, and prefetches, only rows that
 * count. Each thread's list holds the longest row. */
static int64_t max_row_len(const ccd_csr *a)
{
    int64_t m = 1;
    for (int r = 0; r < a->n_rows; r++)
        if (a->indptr[r + 1] - a->indptr[r] > m)
            m = a->indptr[r + 1] - a->indptr[r];
    return m;
}

static int spmm_masked_run(const ccd_csr *a, const float *x, const unsigned char *mask, float *y,
                           int d, unsigned char *ymask, const float *add, float scale)
{
    const int64_t cap = max_row_len(a);
    int failed = 0;
#pragma omp parallel
    {
        int *ind = malloc((size_t)cap * sizeof *ind); /* (cap) this row's kept neighbours */
        float *val = malloc((size_t)cap * sizeof *val);
        if (!ind || !val) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp barrier
        if (!failed) {
#pragma omp for schedule(dynamic, 256)
            for (int r = 0; r < a->n_rows; r++) {
                int64_t n = 0;
                for (int64_t k = a->indptr[r]; k < a->indptr[r + 1]; k++) {
                    const int c = a->indices[k];
                    ind[n] = c;
                    val[n] = a->values[k];
                    n += mask[c] != 0;
                }
                float *yr = y + (size_t)r * d;
                if (n)
                    spmm_list(ind, val, 0, n, x, yr, d);
                else
                    memset(yr, 0, (size_t)d * sizeof *yr);
                if (ymask)
                    ymask[r] = n != 0;
                if (add) {
                    const float *ar = add + (size_t)r * d;
                    for (int j = 0; j < d; j++)
                        yr[j] = scale * (yr[j] + ar[j]);
                }
            }
        }
        free(ind);
        free(val);
    }
    return failed ? -1 : 0;
}

int ccd_spmm_masked(const ccd_csr *a, const float *x, const unsigned char *mask, float *y, int d,
                    unsigned char *ymask)
{
    return spmm_masked_run(a, x, mask, y, d, ymask, NULL, 1.0f);
}

int ccd_spmm_add_masked(const ccd_csr *a, const float *x, const unsigned char *mask, float *y,
                        int d, const float *add, float scale)
{
    return spmm_masked_run(a, x, mask, y, d, NULL, add, scale);
}
