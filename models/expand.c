/* expand: grow a layer-0 table to a new block's id space (section 5.4, 9.4 fixed). See expand.h.
 *
 * Design. Users and items are the same construction with R_k and its transpose swapped, so one
 * routine (init_side) initialises the new entities of one side, given the side's rows (m) and
 * the other side's rows (mt = m transposed). Per side, the old entities are sorted once by
 * popularity (degree in R_k descending, id ascending); pos[v] is v's place in that order. For a
 * new entity u:
 *   one-hop: the mean of the old tables' rows of the old neighbours of u (zero if none);
 *   two-hop: candidates = old entities reached in two hops (u -> shared neighbour -> v), found
 *            by walking mt's rows of u's neighbours and deduplicated with a stamp array (no
 *            clearing between entities). With K = min(topk, old count):
 *              c = 0:      the first K of the popularity order;
 *              0 < c <= K: the c candidates, then the popularity order skipping candidates up
 *                          to K in all (the 9.4 fix: c = K takes exactly the candidates);
 *              c > K:      the K candidates with the smallest popularity position;
 *            the mean of those K rows (zero if K = 0).
 *   e0 = (one-hop + two-hop) / 2, accumulated in double.
 * Work is O(sum of two-hop path counts + K) per new entity; nothing dense beyond the tables. */
#include "expand.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int64_t deg;
    int id;
} by_degree;

static int cmp_popularity(const void *a, const void *b)
{
    const by_degree *x = a, *y = b;
    if (x->deg != y->deg)
        return x->deg > y->deg ? -1 : 1; /* more popular first */
    return (x->id > y->id) - (x->id < y->id);
}

static void add_row(double *acc, const float *row, int d)
{
    for (int k = 0; k < d; k++)
        acc[k] += row[k];
}

/* Initialise the new entities old_a..n_a-1 of one side.
 *   own_old:   (old_a x d) this side's old layer-0 rows;
 *   other_old: (old_b x d) the other side's old layer-0 rows;
 *   m:  this side's interactions (rows: this side, cols: other side); rows past m->n_rows empty;
 *   mt: m transposed;
 *   out: ((n_a - old_a) x d), row k is entity old_a + k. */
static int init_side(const float *own_old, int old_a, const float *other_old, int old_b, int n_a,
                     const ccd_csr *m, const ccd_csr *mt, int topk, int d, float *out)
{
    if (n_a <= old_a)
        return 0;
    const int K = topk < 0 ? 0 : topk < old_a ? topk : old_a;
    by_degree *pop = malloc((size_t)(old_a > 0 ? old_a : 1) * sizeof *pop); /* (old_a) */
    int *order = malloc((size_t)(old_a > 0 ? old_a : 1) * sizeof *order);   /* (old_a) ids */
    int *pos = malloc((size_t)(old_a > 0 ? old_a : 1) * sizeof *pos);       /* (old_a) */
    int *stamp = malloc((size_t)(old_a > 0 ? old_a : 1) * sizeof *stamp);   /* (old_a) */
    int *cand = malloc((size_t)(old_a > 0 ? old_a : 1) * sizeof *cand);     /* (<= old_a) */
    double *one = malloc((size_t)d * sizeof *one), *two = malloc((size_t)d * sizeof *two); /* (d) */
    if (!pop || !order || !pos || !stamp || !cand || !one || !two) {
        free(pop), free(order), free(pos), free(stamp), free(cand), free(one), free(two);
        return -1;
    }
    for (int v = 0; v < old_a; v++) {
        pop[v] = (by_degree){ccd_csr_row_len(m, v), v};
        stamp[v] = -1; /* stamp[v] == u: v is a candidate of the entity u being built */
    }
    qsort(pop, (size_t)old_a, sizeof *pop, cmp_popularity);
    for (int p = 0; p < old_a; p++) {
        order[p] = pop[p].id;
        pos[pop[p].id] = p;
    }
    for (int u = old_a; u < n_a; u++) {
        memset(one, 0, (size_t)d * sizeof *one);
        memset(two, 0, (size_t)d * sizeof *two);
        const bool has_row = u < m->n_rows; /* r may stop short of the new ids */
        const int64_t b = has_row ? m->indptr[u] : 0, e = has_row ? m->indptr[u + 1] : 0;
        int n_one = 0, c = 0; /* cand[0..c): popularity positions of the candidates */
        for (int64_t k = b; k < e; k++) {
            const int i = m->indices[k];
            if (i < old_b) {
                add_row(one, other_old + (size_t)i * d, d);
                n_one++;
            }
            if (i >= mt->n_rows)
                continue;
            for (int64_t t = mt->indptr[i]; t < mt->indptr[i + 1]; t++) {
                const int v = mt->indices[t];
                if (v < old_a && stamp[v] != u) {
                    stamp[v] = u;
                    cand[c++] = pos[v];
                }
            }
        }
        if (c == 0) {
            for (int p = 0; p < K; p++)
                add_row(two, own_old + (size_t)order[p] * d, d);
        } else if (c <= K) {
            for (int j = 0; j < c; j++)
                add_row(two, own_old + (size_t)order[cand[j]] * d, d);
            for (int p = 0, taken = c; taken < K; p++) /* K <= old_a, so p stays in range */
                if (stamp[order[p]] != u) {
                    add_row(two, own_old + (size_t)order[p] * d, d);
                    taken++;
                }
        } else {
            qsort(cand, (size_t)c, sizeof *cand, ccd_cmp_int);
            for (int j = 0; j < K; j++)
                add_row(two, own_old + (size_t)order[cand[j]] * d, d);
        }
        float *row = out + (size_t)(u - old_a) * d;
        for (int k = 0; k < d; k++) {
            const double h1 = n_one > 0 ? one[k] / n_one : 0.0, h2 = K > 0 ? two[k] / K : 0.0;
            row[k] = (float)(0.5 * (h1 + h2));
        }
    }
    free(pop), free(order), free(pos), free(stamp), free(cand), free(one), free(two);
    return 0;
}

int ccd_expand_init(const float *old_emb0, int old_users, int old_items, int d, const ccd_csr *r,
                    int n_users, int n_items, int topk, float *new_emb0)
{
    if (!old_emb0 || !r || !new_emb0 || d <= 0 || old_users < 0 || old_items < 0 ||
        old_users > n_users || old_items > n_items || r->n_rows > n_users || r->n_cols > n_items)
        return -1;
    /* old rows: users at the top, items after the (new) user block */
    memcpy(new_emb0, old_emb0, (size_t)old_users * d * sizeof *new_emb0);
    memcpy(new_emb0 + (size_t)n_users * d, old_emb0 + (size_t)old_users * d,
           (size_t)old_items * d * sizeof *new_emb0);
    if (n_users == old_users && n_items == old_items)
        return 0;
    ccd_csr rt; /* R_k^T: (r->n_cols x r->n_rows) */
    if (ccd_csr_transpose(&rt, r) != 0)
        return -1;
    const float *old_u = old_emb0, *old_i = old_emb0 + (size_t)old_users * d;
    int rc = init_side(old_u, old_users, old_i, old_items, n_users, r, &rt, topk, d,
                       new_emb0 + (size_t)old_users * d);
    if (rc == 0)
        rc = init_side(old_i, old_items, old_u, old_users, n_items, &rt, r, topk, d,
                       new_emb0 + ((size_t)n_users + old_items) * d);
    ccd_csr_free(&rt);
    return rc;
}
