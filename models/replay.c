/* replay: the proxy-guided replay sampler of sections 5.3 and 6.5. See replay.h.
 *
 * Design. Users are streamed in chunks of rows: one scorer call for src and one for ref per chunk
 * (scorers are called from one thread only), then two passes over the chunk:
 *   1. in parallel, per user: the `ab` best eligible items of src's row (the candidates), kept
 *      in a k-heap while the row is scanned once, then sorted best first, so a candidate's
 *      position is its rank_src; and each candidate's rank in ref's row (rank_ref), computed
 *      exactly by one of two methods chosen per user by their cost (see ref_ranks): a
 *      histogram of binary searches over the few items that beat the worst candidate when ref
 *      agrees with src (the usual case: the source and the model are related), or one SIMD
 *      counting pass per candidate when they disagree. Either is far below sorting the row.
 *   2. sequentially, in user order: weighted sampling without replacement with the one RNG, so
 *      the output depends only on the seed, never on the thread count or the chunk size.
 * Weights are exp(eps * (rank_ref - rank_src)), taken relative to the largest one of the user
 * (the distribution is unchanged and a large eps cannot overflow).
 * Measured on one core, 11k items, ab = 100: 0.1 to 0.2 ms per user besides scoring. */
#include "replay.h"

#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "dense.h"
#include "kbest.h"

/* Per-thread scratch of pass 1. */
typedef struct {
    unsigned char *mask; /* (n_items) 1 = filtered; cleared again after each user */
    float *heap_s;       /* (ab) scores of the candidate heap (kbest.h) */
    int *beat;           /* (n_items) items that beat the worst candidate in ref */
    int *by_ref;         /* (ab) candidate positions sorted by ref score, best first */
    float *key_s;        /* (pad) ref scores in by_ref order, then -inf */
    int *key_i;          /* (pad) item ids in by_ref order, then INT_MAX */
    int64_t *hist;       /* (pad) items whose first beaten candidate is at that position */
    int64_t *rank;       /* (ab) rank_ref of each candidate */
    int pad, log_pad;    /* pad = 2^log_pad > ab */
} scratch;

static void scratch_free(scratch *w)
{
    free(w->mask), free(w->heap_s), free(w->beat), free(w->by_ref);
    free(w->key_s), free(w->key_i), free(w->hist), free(w->rank);
}

static int scratch_alloc(scratch *w, int n_items, int ab)
{
    size_t n = (size_t)(n_items > 0 ? n_items : 1);
    w->pad = 1;
    w->log_pad = 0;
    while (w->pad <= ab)
        w->pad *= 2, w->log_pad++;
    w->mask = calloc(n, 1);
    w->heap_s = malloc((size_t)ab * sizeof *w->heap_s);
    w->beat = malloc(n * sizeof *w->beat);
    w->by_ref = malloc((size_t)ab * sizeof *w->by_ref);
    w->key_s = malloc((size_t)w->pad * sizeof *w->key_s);
    w->key_i = malloc((size_t)w->pad * sizeof *w->key_i);
    w->hist = malloc((size_t)w->pad * sizeof *w->hist);
    w->rank = malloc((size_t)ab * sizeof *w->rank);
    if (!w->mask || !w->heap_s || !w->beat || !w->by_ref || !w->key_s || !w->key_i || !w->hist ||
        !w->rank) {
        scratch_free(w);
        memset(w, 0, sizeof *w);
        return -1;
    }
    return 0;
}

/* Insertion sort of candidate positions pos[0..c) by the ref score of cand[pos], best first.
 * c <= ab, which is small (50..100). */
static void sort_by_ref(int *pos, int c, const int *cand, const float *ref)
{
    for (int a = 1; a < c; a++) {
        int p = pos[a], b = a - 1;
        while (b >= 0 && ccd_ranks_before(ref[cand[p]], cand[p], ref[cand[pos[b]]], cand[pos[b]])) {
            pos[b + 1] = pos[b];
            b--;
        }
        pos[b + 1] = p;
    }
}

/* rank_ref of one item i: #{ j < n : ref[j] > ref[i], or equal with j < i }, as two counting
 * loops that vectorise. */
static int64_t count_better(const float *ref, int n, int i)
{
    const float x = ref[i];
    int cnt = 0; /* int, not int64: twice the SIMD lanes; n < 2^31 */
    for (int j = 0; j < i; j++)
        cnt += ref[j] >= x;
    for (int j = i + 1; j < n; j++)
        cnt += ref[j] > x;
    return cnt;
}

/* rank_ref for the c candidates, as rank[q] for cand[q]. Two exact methods, chosen by cost:
 *   search: the m items that beat the worst candidate (found in one pass; few when ref agrees
 *           with src) each binary-search, branch-free, the first candidate they beat in a
 *           (score, id) copy sorted by ref and padded to a power of two, and bump a histogram;
 *           a prefix sum gives the counts. About m log2(pad) dependent steps.
 *   count:  one vectorised counting pass over the row per candidate, c n / SIMD-width. Wins
 *           when ref and src disagree (m near n). */
static void ref_ranks(const float *ref, int n, const int *cand, int c, scratch *w, int64_t *rank)
{
    for (int q = 0; q < c; q++)
        w->by_ref[q] = q;
    sort_by_ref(w->by_ref, c, cand, ref);
    const int pad = w->pad;
    float *ks = w->key_s;
    int *ki = w->key_i;
    /* The keys past c are beaten by every j (score -inf, id INT_MAX), so "j beats key p" is
     * monotone in p over the whole padded array. */
    for (int p = 0; p < pad; p++) {
        ks[p] = p < c ? ref[cand[w->by_ref[p]]] : -INFINITY;
        ki[p] = p < c ? cand[w->by_ref[p]] : INT_MAX;
    }
    const float worst_s = ks[c - 1];
    const int worst_i = ki[c - 1];
    /* m = the number of items that beat the worst candidate = its rank_ref (a cheap SIMD pass) */
    const int64_t m = count_better(ref, n, worst_i);
    /* Measured on 11k items, ab = 100 (one core): a search step costs about as much as 30
     * vectorised comparisons; counting took ~170 us per user, searching 30 us (m ~ 100) to
     * 300 us (m ~ 9000). */
    if (m * w->log_pad * 30 > (int64_t)c * n) {
        for (int q = 0; q < c; q++)
            rank[q] = count_better(ref, n, cand[q]);
        return;
    }
    int nb = 0; /* the branch is rarely taken when m is small, so it predicts well */
    for (int j = 0; j < n; j++)
        if (ccd_ranks_before(ref[j], j, worst_s, worst_i))
            w->beat[nb++] = j;
    memset(w->hist, 0, (size_t)pad * sizeof *w->hist);
    for (int t = 0; t < nb; t++) {
        const int j = w->beat[t];
        const float rj = ref[j];
        int lo = 0; /* the number of leading keys j does not beat: the first one it beats */
        for (int step = pad / 2; step > 0; step /= 2) {
            const int at = lo + step - 1;
            /* ccd_ranks_before(rj, j, ks[at], ki[at]), written branch-free */
            const int beats = (rj > ks[at]) | ((rj == ks[at]) & (j < ki[at]));
            lo += beats ? 0 : step;
        }
        w->hist[lo]++; /* lo < c: j beats the worst candidate */
    }
    /* j counts for every position from its first beaten one on; a candidate never beats itself,
     * so it counts only for the positions after its own */
    int64_t acc = 0;
    for (int p = 0; p < c; p++) {
        acc += w->hist[p];
        rank[w->by_ref[p]] = acc;
    }
}

/* Set (value 1) or clear (0) the mask entries of row u's filtered items; a set's columns past
 * n_items are not items of src. */
static void mark_filtered(unsigned char *mask, const ccd_filter *f, int u, int n_items,
                          unsigned char value)
{
    for (int k = 0; f && k < f->n_sets; k++) {
        int len = 0;
        const int *e = f->sets[k] ? ccd_csr_row(f->sets[k], u, &len) : NULL;
        for (int q = 0; q < len; q++)
            if (e[q] < n_items)
                mask[e[q]] = value;
    }
}

/* Pass 1 for one user: writes the c candidates (best first) to cand, the log-weights
 * eps * (rank_ref - rank_src) to logw and the labels to label; returns c. */
static int user_candidates(int u, const float *s, const float *ref, int n_items,
                           const ccd_filter *f, int ab, float eps, scratch *w, int *cand,
                           double *logw, float *label)
{
    mark_filtered(w->mask, f, u, n_items, 1);
    const int c = ccd_kbest_sorted(s, n_items, w->mask, ab, w->heap_s, cand);
    mark_filtered(w->mask, f, u, n_items, 0);
    if (c <= 0)
        return 0;
    /* Filtered entries rank after every eligible one, so the position among the eligible items
     * is the rank in the whole row. */
    ref_ranks(ref, n_items, cand, c, w, w->rank);
    for (int q = 0; q < c; q++) {
        logw[q] = (double)eps * (double)(w->rank[q] - q); /* q = rank_src */
        label[q] = (float)(1.0 / (1.0 + exp(-(double)s[cand[q]])));
    }
    return c;
}

/* Grow out's arrays to hold at least `need` entries. */
static int reserve(ccd_replay_set *out, int64_t *cap, int64_t need)
{
    if (need <= *cap)
        return 0;
    int64_t nc = *cap > 0 ? *cap : 1024;
    while (nc < need)
        nc *= 2;
    int *u = realloc(out->user, (size_t)nc * sizeof *u);
    if (!u)
        return -1;
    out->user = u;
    int *i = realloc(out->item, (size_t)nc * sizeof *i);
    if (!i)
        return -1;
    out->item = i;
    float *l = realloc(out->label, (size_t)nc * sizeof *l);
    if (!l)
        return -1;
    out->label = l;
    *cap = nc;
    return 0;
}

/* Pass 2 for one user: draw m of the c candidates without replacement, each draw proportional
 * to the remaining weights, appending to out (which has room). logw and the candidate arrays are
 * permuted in place. */
static void draw_user(int u, int c, int m, int *cand, double *logw, float *label, double *wt,
                      ccd_rng *rng, ccd_replay_set *out)
{
    double mx = -INFINITY;
    for (int q = 0; q < c; q++)
        mx = logw[q] > mx ? logw[q] : mx;
    for (int q = 0; q < c; q++)
        wt[q] = exp(logw[q] - mx);
    for (int t = 0, left = c; t < m; t++, left--) {
        double total = 0.0;
        for (int q = 0; q < left; q++)
            total += wt[q];
        if (!(total > 1e-300)) {
            /* every remaining weight underflowed: rescale to the largest remaining one */
            mx = -INFINITY;
            for (int q = 0; q < left; q++)
                mx = logw[q] > mx ? logw[q] : mx;
            total = 0.0;
            for (int q = 0; q < left; q++)
                total += wt[q] = exp(logw[q] - mx);
        }
        const double x = ccd_rng_uniform53(rng) * total;
        int pick = -1;
        double acc = 0.0;
        for (int q = 0; q < left; q++) {
            acc += wt[q];
            if (wt[q] > 0.0) {
                pick = q; /* rounding fallback: the last positive weight */
                if (x < acc)
                    break;
            }
        }
        if (pick < 0) /* only with NaN weights (a NaN eps or score): stay deterministic */
            pick = 0;
        out->user[out->n] = u;
        out->item[out->n] = cand[pick];
        out->label[out->n] = label[pick];
        out->n++;
        /* remove the drawn candidate: move the last remaining one into its slot */
        const int last = left - 1;
        cand[pick] = cand[last];
        logw[pick] = logw[last];
        label[pick] = label[last];
        wt[pick] = wt[last];
    }
}

int ccd_replay_sample(const ccd_scorer *src, const ccd_filter *src_filter, const ccd_scorer *ref,
                      int ab, int n_draw, float eps, ccd_rng *rng, ccd_replay_set *out)
{
    memset(out, 0, sizeof *out);
    if (!src || !ref || !rng || ref->n_users < src->n_users || ref->n_items < src->n_items)
        return -1;
    const int n_users = src->n_users, n_items = src->n_items, n_ref = ref->n_items;
    if (ab > n_items)
        ab = n_items;
    if (ab <= 0 || n_draw <= 0 || n_users <= 0)
        return 0;
    const int m_max = n_draw < ab ? n_draw : ab;
    /* The smaller of the two chunks keeps both score buffers near the scorer's budget. */
    int chunk = ccd_scorer_chunk(src);
    const int chunk_ref = ccd_scorer_chunk(ref);
    chunk = chunk < chunk_ref ? chunk : chunk_ref;
    chunk = chunk < n_users ? chunk : n_users;

    int *users = malloc((size_t)chunk * sizeof *users);        /* (chunk) */
    float *s_buf = ccd_floats((size_t)chunk * n_items);        /* (chunk x n_items) */
    float *r_buf = ccd_floats((size_t)chunk * n_ref);          /* (chunk x n_ref) */
    int *cand = malloc((size_t)chunk * ab * sizeof *cand);     /* (chunk x ab) */
    double *logw = malloc((size_t)chunk * ab * sizeof *logw);  /* (chunk x ab) */
    float *label = malloc((size_t)chunk * ab * sizeof *label); /* (chunk x ab) */
    int *n_cand = malloc((size_t)chunk * sizeof *n_cand);      /* (chunk) */
    double *wt = malloc((size_t)ab * sizeof *wt);              /* (ab) pass-2 weights */
    int rc = users && s_buf && r_buf && cand && logw && label && n_cand && wt ? 0 : -1;
    int64_t cap = 0;

    for (int u0 = 0; rc == 0 && u0 < n_users; u0 += chunk) {
        const int cn = n_users - u0 < chunk ? n_users - u0 : chunk;
        for (int k = 0; k < cn; k++)
            users[k] = u0 + k;
        if (src->rows(src, users, cn, s_buf) != 0 || ref->rows(ref, users, cn, r_buf) != 0) {
            rc = -1;
            break;
        }
        /* a handful of users is not worth waking the team (it costs more than the work) */
#pragma omp parallel if (cn > 16)
        {
            scratch w;
            const bool ok = scratch_alloc(&w, n_items, ab) == 0;
            if (!ok) {
#pragma omp atomic write
                rc = -1;
            }
#pragma omp for schedule(dynamic, 16)
            for (int k = 0; k < cn; k++) {
                if (!ok)
                    continue;
                n_cand[k] =
                    user_candidates(u0 + k, s_buf + (size_t)k * n_items, r_buf + (size_t)k * n_ref,
                                    n_items, src_filter, ab, eps, &w, cand + (size_t)k * ab,
                                    logw + (size_t)k * ab, label + (size_t)k * ab);
            }
            if (ok)
                scratch_free(&w);
        }
        if (rc != 0)
            break;
        int64_t need = out->n;
        for (int k = 0; k < cn; k++)
            need += n_cand[k] < m_max ? n_cand[k] : m_max;
        if (reserve(out, &cap, need) != 0) {
            rc = -1;
            break;
        }
        for (int k = 0; k < cn; k++) {
            const int c = n_cand[k], m = c < m_max ? c : m_max;
            draw_user(u0 + k, c, m, cand + (size_t)k * ab, logw + (size_t)k * ab,
                      label + (size_t)k * ab, wt, rng, out);
        }
    }
    free(users), free(s_buf), free(r_buf), free(cand), free(logw), free(label), free(n_cand);
    free(wt);
    if (rc != 0)
        ccd_replay_free(out);
    return rc;
}

/* One (user, item) pair with its label; key = user << 32 | item sorts by (user, item). */
typedef struct {
    uint64_t key;
    float label;
} keyed;

static int cmp_keyed(const void *a, const void *b)
{
    uint64_t x = ((const keyed *)a)->key, y = ((const keyed *)b)->key;
    return (x > y) - (x < y);
}

int ccd_replay_merge(ccd_replay_set *into, const ccd_replay_set *other)
{
    const int64_t n = into->n + (other ? other->n : 0);
    keyed *all = malloc((size_t)(n > 0 ? n : 1) * sizeof *all); /* (n) both sets */
    if (!all)
        return -1;
    const ccd_replay_set *sets[2] = {into, other};
    int64_t w = 0;
    for (int k = 0; k < 2; k++)
        for (int64_t e = 0; sets[k] && e < sets[k]->n; e++)
            all[w++] =
                (keyed){((uint64_t)(uint32_t)sets[k]->user[e] << 32) | (uint32_t)sets[k]->item[e],
                        sets[k]->label[e]};
    qsort(all, (size_t)n, sizeof *all, cmp_keyed);
    int64_t m = 0; /* entries after collapsing duplicates into all[0..m) */
    for (int64_t e = 0; e < n; e++) {
        if (m > 0 && all[m - 1].key == all[e].key) {
            if (all[e].label > all[m - 1].label)
                all[m - 1].label = all[e].label;
        } else {
            all[m++] = all[e];
        }
    }
    size_t sz = (size_t)(m > 0 ? m : 1);
    int *user = malloc(sz * sizeof *user), *item = malloc(sz * sizeof *item); /* (m) */
    float *label = malloc(sz * sizeof *label);                                /* (m) */
    if (!user || !item || !label) {
        free(all), free(user), free(item), free(label);
        return -1; /* into is unchanged */
    }
    for (int64_t e = 0; e < m; e++) {
        user[e] = (int)(all[e].key >> 32);
        item[e] = (int)(uint32_t)all[e].key;
        label[e] = all[e].label;
    }
    free(all);
    ccd_replay_free(into);
    into->n = m;
    into->user = user;
    into->item = item;
    into->label = label;
    return 0;
}

void ccd_replay_free(ccd_replay_set *r)
{
    if (!r)
        return;
    free(r->user), free(r->item), free(r->label);
    memset(r, 0, sizeof *r);
}
