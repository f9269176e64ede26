/* sparse: compressed sparse rows, the only sparse format in libccd.
 *
 * Interaction sets (train/valid/test per user, exclusion lists) and the LightGCN graph are all
 * CSR with sorted, duplicate-free column indices in each row, so membership is a binary search
 * and the rows can be walked in order. Row pointers are int64 so production-sized graphs fit;
 * column indices are int32 (ids are dense rows of an embedding table). */
#ifndef CCD_SPARSE_H
#define CCD_SPARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    int n_rows, n_cols;
    int64_t nnz;
    int64_t *indptr; /* (n_rows + 1) */
    int *indices;    /* (nnz) sorted within each row, no duplicates */
    float *values;   /* (nnz) or NULL for a 0/1 pattern */
} ccd_csr;

/* qsort comparator for ints, ascending. */
int ccd_cmp_int(const void *a, const void *b);

/* Build a 0/1 pattern from n (row, col) pairs: duplicates are removed and rows sorted.
 * Returns 0, or -1 if an index is out of range or memory runs out (out is then zeroed). */
int ccd_csr_from_pairs(ccd_csr *out, int n_rows, int n_cols, const int *rows, const int *cols,
                       int64_t n);
/* The transpose (values carried when present). */
int ccd_csr_transpose(ccd_csr *out, const ccd_csr *a);
void ccd_csr_free(ccd_csr *a);
/* An (n_rows x n_cols) CSR with room for cap entries (values too when with_values), its nnz 0 and
 * its row pointers unset: the caller fills them. Returns 0, or -1 (out of memory: out zeroed). */
int ccd_csr_alloc(ccd_csr *out, int n_rows, int n_cols, int64_t cap, bool with_values);
static inline int64_t ccd_csr_row_len(const ccd_csr *a, int r)
{
    return r >= 0 && r < a->n_rows ? a->indptr[r + 1] - a->indptr[r] : 0;
}
/* Row r's column indices, *len of them (a row holds distinct int columns, so its length fits
 * an int); rows past n_rows are empty (NULL). */
static inline const int *ccd_csr_row(const ccd_csr *a, int r, int *len)
{
    *len = (int)ccd_csr_row_len(a, r);
    return *len ? a->indices + a->indptr[r] : NULL;
}
/* Whether (r, c) is stored; rows past n_rows are empty. */
bool ccd_csr_contains(const ccd_csr *a, int r, int c);

/* The symmetric normalised bipartite adjacency of LightGCN (section 2.1):
 *   A = [[0, R], [R^T, 0]], A_hat = D^-1/2 A D^-1/2, 1/sqrt(0) = 0,
 * over n_users + n_items nodes (users first). R may have fewer rows/cols than n_users/n_items;
 * the rest are isolated nodes. nnz(A_hat) = 2 nnz(R). */
int ccd_graph_build(ccd_csr *out, const ccd_csr *r, int n_users, int n_items);

/* A copy of graph a (values included) whose empty rows among the first n_fill take b's rows
 * instead (a and b over the same nodes): a scoring graph where the nodes a leaves isolated
 * propagate over b's neighbourhoods while every other row stays a's. No longer symmetric.
 * Returns 0, or -1 (sizes differ, out of memory: out zeroed). */
int ccd_graph_fill_rows(ccd_csr *out, const ccd_csr *a, const ccd_csr *b, int n_fill);

/* Y = A X for dense row-major X (a->n_cols x d) and Y (a->n_rows x d). Rows are computed
 * independently (OpenMP over rows), so the result does not depend on the thread count. */
void ccd_spmm(const ccd_csr *a, const float *x, float *y, int d);
/* Y = scale (A X + ADD), ADD shaped like Y: a product and an update in one pass over Y. */
void ccd_spmm_add(const ccd_csr *a, const float *x, float *y, int d, const float *add, float scale);
/* The same products over the rows of X whose mask byte is set (the others count as zero and are
 * never read): what a backward pass needs when the gradient lives on a few rows. ymask (may be
 * NULL) receives, per row of Y, whether any masked neighbour contributed. Y is written in full.
 * Returns 0, or -1 when scratch memory runs out. */
int ccd_spmm_masked(const ccd_csr *a, const float *x, const unsigned char *mask, float *y, int d,
                    unsigned char *ymask);
int ccd_spmm_add_masked(const ccd_csr *a, const float *x, const unsigned char *mask, float *y,
                        int d, const float *add, float scale);
/* Y[r] = (A X)[r] for the n listed rows only; other rows of Y are untouched. */
void ccd_spmm_rows(const ccd_csr *a, const float *x, float *y, int d, const int *rows, int n);

#endif
