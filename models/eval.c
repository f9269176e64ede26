/* eval: see eval.h. */
#include "eval.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "dense.h"
#include "kbest.h"

const int ccd_eval_k[CCD_NK] = {20, 50};
#define KMAX 50
/* First try: sort only this many of the top 1000; enough unless a user has more than
 * PREFIX - KMAX masked items among them, in which case the whole top 1000 is sorted. */
#define PREFIX 160

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

/* What the steps of one evaluation pass share. */
typedef struct {
    const ccd_block *blocks;
    int n_blocks, n_users, n_items;
    int top;     /* the truncation: CCD_EVAL_TRUNCATE, or every item when there are fewer */
    int prefix;  /* sorted first: min(top, PREFIX) */
    double *per; /* (n_blocks x 2 modes x 4 figures x n_users) R@20, R@50, N@20, N@50 per user */
} eval_pass;

/* The figures of (block j, mode): figure q of user u is at [q * n_users + u]. */
static double *per_figures(const eval_pass *e, int j, int mode)
{
    return e->per + (((size_t)j * 2 + mode) * 4) * e->n_users;
}

static bool evaluated_anywhere(const eval_pass *e, int u)
{
    bool evaluated = false;
    for (int j = 0; j < e->n_blocks && !evaluated; j++)
        evaluated = evaluates(&e->blocks[j], u, e->n_users);
    return evaluated;
}

/* The users a pass scores, into users: anyone some block evaluates, or every user in order when
 * the rows go on to a tee. Returns their count. */
static int users_to_score(const eval_pass *e, bool everyone, int *users)
{
    int n = 0;
    for (int u = 0; u < e->n_users; u++)
        if (everyone || evaluated_anywhere(e, u))
            users[n++] = u;
    return n;
}

/* User u's figures on every block that evaluates it, from its score row s (n_items). idx
 * (n_items) and hs (top) are scratch. */
static void evaluate_user(const eval_pass *e, int u, const float *s, int *idx, float *hs)
{
    ccd_kbest_sorted(s, e->n_items, NULL, e->prefix, hs, idx); /* idx[0..prefix): the best */
    bool all_sorted = e->prefix == e->top;
    for (int j = 0; j < e->n_blocks; j++) {
        const ccd_block *b = &e->blocks[j];
        if (!evaluates(b, u, e->n_users))
            continue;
        int ntr, nva, nte;
        const int *tr = ccd_csr_row(&b->train, u, &ntr), *va = ccd_csr_row(&b->valid, u, &nva),
                  *te = ccd_csr_row(&b->test, u, &nte);
        for (int mode = 0; mode < 2; mode++) {
            const int *gt = mode ? te : va, *other = mode ? va : te;
            int ngt = mode ? nte : nva, nother = mode ? nva : nte;
            if (ngt == 0)
                continue;
            if (!all_sorted && survivors(idx, e->prefix, tr, ntr, other, nother) < KMAX) {
                /* Rare: too many masked items near the top. Rank the whole top 1000. */
                ccd_kbest_sorted(s, e->n_items, NULL, e->top, hs, idx);
                all_sorted = true;
            }
            double rec[CCD_NK], nd[CCD_NK];
            ccd_metrics_of_list(idx, all_sorted ? e->top : e->prefix, tr, ntr, other, nother, gt,
                                ngt, rec, nd);
            double *p = per_figures(e, j, mode);
            p[0 * (size_t)e->n_users + u] = rec[0];
            p[1 * (size_t)e->n_users + u] = rec[1];
            p[2 * (size_t)e->n_users + u] = nd[0];
            p[3 * (size_t)e->n_users + u] = nd[1];
        }
    }
}

/* The figures of the evaluated users among users[0..cn), whose rows are scores (cn x n_items),
 * in parallel. Returns 0 or -1 (out of memory). */
static int evaluate_chunk(const eval_pass *e, const int *users, int cn, const float *scores)
{
    int rc = 0;
#pragma omp parallel
    {
        int *idx = malloc((size_t)(e->n_items > 0 ? e->n_items : 1) * sizeof *idx); /* (n_items) */
        float *hs = malloc((size_t)(e->top > 0 ? e->top : 1) * sizeof *hs);         /* (top) */
        if (!idx || !hs) {
#pragma omp atomic write
            rc = -1;
        }
#pragma omp for schedule(dynamic, 16)
        for (int k = 0; k < cn; k++)
            if (idx && hs && evaluated_anywhere(e, users[k])) /* else scored for the tee only */
                evaluate_user(e, users[k], scores + (size_t)k * e->n_items, idx, hs);
        free(idx);
        free(hs);
    }
    return rc;
}

/* out[j]: block j's figures averaged over the users it evaluates, summed in user order so the
 * result does not depend on the thread count. */
static void average_figures(const eval_pass *e, ccd_block_metrics *out)
{
    const int n_users = e->n_users;
    for (int j = 0; j < e->n_blocks; j++)
        for (int mode = 0; mode < 2; mode++) {
            ccd_metrics *m = mode ? &out[j].test : &out[j].valid;
            const double *p = per_figures(e, j, mode);
            const ccd_csr *g = mode ? &e->blocks[j].test : &e->blocks[j].valid;
            int count = 0;
            for (int u = 0; u < n_users; u++) {
                if (!evaluates(&e->blocks[j], u, n_users) || ccd_csr_row_len(g, u) == 0)
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
}

int ccd_evaluate_scorer_tee(const ccd_scorer *sc, const ccd_block *blocks, int n_blocks,
                            ccd_block_metrics *out, ccd_rows_fn tee, void *tee_ctx)
{
    const int n_users = sc->n_users, n_items = sc->n_items;
    if (n_blocks > 0)
        memset(out, 0, (size_t)n_blocks * sizeof *out);
    const int top = n_items < CCD_EVAL_TRUNCATE ? n_items : CCD_EVAL_TRUNCATE;
    eval_pass e = {.blocks = blocks,
                   .n_blocks = n_blocks,
                   .n_users = n_users,
                   .n_items = n_items,
                   .top = top,
                   .prefix = top < PREFIX ? top : PREFIX};
    int *users = malloc((size_t)(n_users > 0 ? n_users : 1) * sizeof *users); /* (n_users) */
    e.per =
        calloc((size_t)(n_blocks > 0 ? n_blocks : 1) * 2 * 4 * (size_t)(n_users > 0 ? n_users : 1),
               sizeof *e.per);
    if (!users || !e.per) {
        free(users), free(e.per);
        return -1;
    }
    const int n_eval = users_to_score(&e, tee != NULL, users);
    const int chunk = ccd_scorer_chunk(sc);
    float *scores = ccd_floats((size_t)chunk * n_items); /* (chunk x n_items) */
    int rc = scores ? 0 : -1;
    for (int c0 = 0; rc == 0 && c0 < n_eval; c0 += chunk) {
        int cn = n_eval - c0 < chunk ? n_eval - c0 : chunk;
        if (sc->rows(sc, users + c0, cn, scores) != 0 ||
            evaluate_chunk(&e, users + c0, cn, scores) != 0 ||
            (tee && tee(tee_ctx, c0, cn, scores) != 0))
            rc = -1;
    }
    if (rc == 0)
        average_figures(&e, out);
    free(users);
    free(e.per);
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
