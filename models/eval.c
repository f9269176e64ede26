/* eval: see eval.h. */
#include "eval.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "dense.h"

const int ccd_eval_k[CCD_NK] = {20, 50};
#define KMAX 50
/* First try: sort only this many of the top 1000; enough unless a user has more than
 * PREFIX - KMAX masked items among them, in which case the whole top 1000 is sorted. */
#define PREFIX 160

static inline bool better(int a, int b, const float *s)
{
    return s[a] > s[b] || (s[a] == s[b] && a < b);
}

void ccd_select_top(int *idx, int n, int k, const float *s)
{
    if (k <= 0 || k >= n)
        return;
    int lo = 0, hi = n - 1, target = k - 1;
    while (lo < hi) {
        /* median of three as the pivot */
        int a = idx[lo], b = idx[lo + (hi - lo) / 2], c = idx[hi], p;
        if (better(a, b, s))
            p = better(b, c, s) ? b : (better(a, c, s) ? c : a);
        else
            p = better(a, c, s) ? a : (better(b, c, s) ? c : b);
        int i = lo, j = hi;
        while (i <= j) {
            while (better(idx[i], p, s))
                i++;
            while (better(p, idx[j], s))
                j--;
            if (i <= j) {
                int t = idx[i];
                idx[i] = idx[j];
                idx[j] = t;
                i++;
                j--;
            }
        }
        if (target <= j)
            hi = j;
        else if (target >= i)
            lo = i;
        else
            break;
    }
}

void ccd_heap_sift_down(int *h, int n, int i, const float *s)
{
    /* min-heap under "better": the root is the worst, so popping sorts best-first from the end */
    for (;;) {
        int l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && better(h[w], h[l], s))
            w = l;
        if (r < n && better(h[w], h[r], s))
            w = r;
        if (w == i)
            return;
        int t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

void ccd_sort_by_score(int *idx, int n, const float *s)
{
    for (int i = n / 2 - 1; i >= 0; i--)
        ccd_heap_sift_down(idx, n, i, s);
    for (int end = n - 1; end > 0; end--) {
        int t = idx[0];
        idx[0] = idx[end];
        idx[end] = t;
        ccd_heap_sift_down(idx, end, 0, s);
    }
}

void ccd_top_sorted(int *out, int n, int k, const float *s)
{
    if (k <= 0)
        return;
    if (k > n)
        k = n;
    /* A bounded heap whose root is the k-th best so far (as top_eligible in replay.c). Ids come
     * in increasing order, so a tie with the root loses (the root's id is lower) and an entry
     * enters only with a strictly greater score: one compare per entry against a cached bar, and
     * about k ln(n / k) entries ever enter. */
    for (int i = 0; i < k; i++)
        out[i] = i;
    for (int i = k / 2 - 1; i >= 0; i--)
        ccd_heap_sift_down(out, k, i, s);
    float bar = s[out[0]];
    for (int i = k; i < n; i++)
        if (s[i] > bar) {
            out[0] = i;
            ccd_heap_sift_down(out, k, 0, s);
            bar = s[out[0]];
        }
    ccd_sort_by_score(out, k, s);
}

static bool in_sorted(const int *v, int n, int x)
{
    int lo = 0, hi = n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (v[mid] == x)
            return true;
        if (v[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

static double idcg(int n)
{
    double s = 0.0;
    for (int r = 1; r <= n; r++)
        s += 1.0 / log2(r + 1.0);
    return s;
}

void ccd_metrics_of_list(const int *ranked, int n_ranked, const int *mask_a, int n_mask_a,
                         const int *mask_b, int n_mask_b, const int *gt, int n_gt,
                         double recall[CCD_NK], double ndcg[CCD_NK])
{
    int hits[CCD_NK] = {0};
    double dcg[CCD_NK] = {0};
    int pos = 0; /* 1-based rank among survivors, after increment */
    for (int r = 0; r < n_ranked && pos < KMAX; r++) {
        int it = ranked[r];
        if (in_sorted(mask_a, n_mask_a, it) || in_sorted(mask_b, n_mask_b, it))
            continue;
        pos++;
        if (!in_sorted(gt, n_gt, it))
            continue;
        double gain = 1.0 / log2(pos + 1.0);
        for (int q = 0; q < CCD_NK; q++)
            if (pos <= ccd_eval_k[q]) {
                hits[q]++;
                dcg[q] += gain;
            }
    }
    for (int q = 0; q < CCD_NK; q++) {
        int k = ccd_eval_k[q];
        recall[q] = n_gt > 0 ? (double)hits[q] / n_gt : 0.0;
        ndcg[q] = n_gt > 0 ? dcg[q] / idcg(n_gt < k ? n_gt : k) : 0.0;
    }
}

static const int *row(const ccd_csr *a, int r, int *len)
{
    if (r < 0 || r >= a->n_rows) {
        *len = 0;
        return NULL;
    }
    *len = (int)(a->indptr[r + 1] - a->indptr[r]);
    return a->indices + a->indptr[r];
}

/* Whether block b evaluates user u (section 7): u has test items, is active, and is modelled. */
static bool evaluates(const ccd_block *b, int u, int n_users)
{
    return u < n_users && ccd_csr_row_len(&b->test, u) > 0 &&
           in_sorted(b->users, b->n_active_users, u);
}

/* Survivors wanted in a ranked prefix: count the mask hits in it. */
static int survivors(const int *ranked, int n, const int *ma, int na, const int *mb, int nb)
{
    int s = 0;
    for (int r = 0; r < n; r++)
        if (!in_sorted(ma, na, ranked[r]) && !in_sorted(mb, nb, ranked[r]))
            s++;
    return s;
}

int ccd_evaluate(const float *user_emb, const float *item_emb, int n_users, int n_items, int d,
                 const ccd_block *blocks, int n_blocks, ccd_block_metrics *out)
{
    ccd_scorer s = ccd_scorer_embeddings(user_emb, item_emb, n_users, n_items, d);
    return ccd_evaluate_scorer(&s, blocks, n_blocks, out);
}

int ccd_evaluate_scorer(const ccd_scorer *sc, const ccd_block *blocks, int n_blocks,
                        ccd_block_metrics *out)
{
    return ccd_evaluate_scorer_tee(sc, blocks, n_blocks, out, NULL, NULL);
}

int ccd_evaluate_scorer_tee(const ccd_scorer *sc, const ccd_block *blocks, int n_blocks,
                            ccd_block_metrics *out, ccd_rows_fn tee, void *tee_ctx)
{
    const int n_users = sc->n_users, n_items = sc->n_items;
    if (n_blocks > 0)
        memset(out, 0, (size_t)n_blocks * sizeof *out);
    /* Users scored: anyone some block evaluates. */
    int *users = malloc((size_t)(n_users > 0 ? n_users : 1) * sizeof *users);
    /* Per (block, mode, user): R@20, R@50, N@20, N@50, summed in user order afterwards so the
     * result does not depend on the thread count. */
    double *per = calloc((size_t)(n_blocks > 0 ? n_blocks : 1) * 2 * 4 * (size_t)(n_users > 0 ? n_users : 1),
                         sizeof *per);
    if (!users || !per) {
        free(users), free(per);
        return -1;
    }
    /* With a tee every user is scored, in order, and the rows handed on after evaluation. */
    int n_eval = 0;
    for (int u = 0; u < n_users; u++) {
        bool take = tee != NULL;
        for (int j = 0; j < n_blocks && !take; j++)
            take = evaluates(&blocks[j], u, n_users);
        if (take)
            users[n_eval++] = u;
    }
    const int chunk = ccd_scorer_chunk(sc);
    float *scores = ccd_floats((size_t)chunk * n_items); /* (chunk x n_items) */
    int rc = scores ? 0 : -1;
    const int top = n_items < CCD_EVAL_TRUNCATE ? n_items : CCD_EVAL_TRUNCATE;
    const int prefix = top < PREFIX ? top : PREFIX;
    for (int c0 = 0; rc == 0 && c0 < n_eval; c0 += chunk) {
        int cn = n_eval - c0 < chunk ? n_eval - c0 : chunk;
        if (sc->rows(sc, users + c0, cn, scores) != 0) {
            rc = -1;
            break;
        }
#pragma omp parallel
        {
            int *idx = malloc((size_t)(n_items > 0 ? n_items : 1) * sizeof *idx);
            if (!idx) {
#pragma omp atomic write
                rc = -1;
            }
#pragma omp for schedule(dynamic, 16)
            for (int k = 0; k < cn; k++) {
                if (!idx)
                    continue;
                const int u = users[c0 + k];
                const float *s = scores + (size_t)k * n_items;
                bool evaluated = false;
                for (int j = 0; j < n_blocks && !evaluated; j++)
                    evaluated = evaluates(&blocks[j], u, n_users);
                if (!evaluated) /* scored for the tee only */
                    continue;
                ccd_top_sorted(idx, n_items, prefix, s); /* idx[0..prefix): the best, sorted */
                bool all_sorted = prefix == top;
                for (int j = 0; j < n_blocks; j++) {
                    const ccd_block *b = &blocks[j];
                    if (!evaluates(b, u, n_users))
                        continue;
                    int ntr, nva, nte;
                    const int *tr = row(&b->train, u, &ntr), *va = row(&b->valid, u, &nva),
                              *te = row(&b->test, u, &nte);
                    for (int mode = 0; mode < 2; mode++) {
                        const int *gt = mode ? te : va, *other = mode ? va : te;
                        int ngt = mode ? nte : nva, nother = mode ? nva : nte;
                        if (ngt == 0)
                            continue;
                        int n_ranked = prefix;
                        if (!all_sorted && survivors(idx, prefix, tr, ntr, other, nother) < KMAX) {
                            /* Rare: too many masked items near the top. Rank the whole top 1000. */
                            for (int i = 0; i < n_items; i++)
                                idx[i] = i;
                            ccd_select_top(idx, n_items, top, s);
                            ccd_sort_by_score(idx, top, s);
                            all_sorted = true;
                        }
                        if (all_sorted)
                            n_ranked = top;
                        double rec[CCD_NK], nd[CCD_NK];
                        ccd_metrics_of_list(idx, n_ranked, tr, ntr, other, nother, gt, ngt, rec, nd);
                        double *p = per + (((size_t)j * 2 + mode) * 4) * n_users;
                        p[0 * (size_t)n_users + u] = rec[0];
                        p[1 * (size_t)n_users + u] = rec[1];
                        p[2 * (size_t)n_users + u] = nd[0];
                        p[3 * (size_t)n_users + u] = nd[1];
                    }
                }
            }
            free(idx);
        }
        if (rc == 0 && tee && tee(tee_ctx, c0, cn, scores) != 0)
            rc = -1;
    }
    if (rc == 0)
        for (int j = 0; j < n_blocks; j++)
            for (int mode = 0; mode < 2; mode++) {
                ccd_metrics *m = mode ? &out[j].test : &out[j].valid;
                const double *p = per + (((size_t)j * 2 + mode) * 4) * n_users;
                int count = 0;
                for (int u = 0; u < n_users; u++) {
                    const ccd_csr *g = mode ? &blocks[j].test : &blocks[j].valid;
                    if (!evaluates(&blocks[j], u, n_users) || ccd_csr_row_len(g, u) == 0)
                        continue;
                    count++;
                    m->recall[0] += p[0 * (size_t)n_users + u];
                    m->recall[1] += p[1 * (size_t)n_users + u];
                    m->ndcg[0] += p[2 * (size_t)n_users + u];
                    m->ndcg[1] += p[3 * (size_t)n_users + u];
                }
                m->n_users = count;
                for (int q = 0; q < CCD_NK; q++)
                    if (count) {
                        m->recall[q] /= count;
                        m->ndcg[q] /= count;
                    }
            }
    free(users);
    free(per);
    free(scores);
    return rc;
}

int ccd_evaluate_popularity(const ccd_block *source, const ccd_block *blocks, int n,
                            ccd_block_metrics *out)
{
    /* A rank-1 model: user vectors are 1, item vectors are counts, so scores are counts. */
    int nu = source->n_users, ni = source->n_items;
    float *ones = ccd_floats((size_t)nu), *count = ccd_floats((size_t)ni);
    int rc = -1;
    if (ones && count) {
        for (int u = 0; u < nu; u++)
            ones[u] = 1.0f;
        for (int64_t e = 0; e < source->train.nnz; e++)
            count[source->train.indices[e]] += 1.0f;
        rc = ccd_evaluate(ones, count, nu, ni, 1, blocks, n, out);
    }
    free(ones);
    free(count);
    return rc;
}
