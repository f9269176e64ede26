/* rank: see rank.h.
 *
 * Design. Every function streams the scorer's rows in chunks of ccd_scorer_chunk(s) users, in
 * increasing user order, into one (chunk x n_items) buffer, and reduces each chunk before the
 * next is scored; the scorer's rows() runs outside parallel regions (it uses BLAS threads), the
 * reduction inside them.
 *
 *  - Both top-k functions keep the bounded heaps of kbest.h, whose root is the current k-th
 *    best, and scan ids in increasing order: once a heap is full, one float compare per entry.
 *    Filtered pairs are overwritten with NaN in the chunk buffer (ours), which fails every
 *    comparison and so never enters.
 *  - ccd_topk_items: rows are independent, so OpenMP splits the rows of a chunk, one (k) heap
 *    per thread.
 *  - ccd_topk_users: one (k) heap per item, plus a contiguous worst[] copy of the roots so the
 *    hot loop reads two floats per entry. Threads own disjoint item ranges and walk the chunk's
 *    rows in user order, so every heap sees exactly the sequential order (deterministic for any
 *    thread count).
 *  - ccd_row_ranks: a stable 3-pass LSD radix sort (11 + 11 + 10 bits) of item ids on the float
 *    score mapped to an order-reversing uint32 key. The ids start in increasing order and every
 *    pass is stable, so equal scores keep id order: (score desc, id asc) with no comparisons. The
 *    key is recomputed from the row on each pass (the row is L1/L2 resident), so the only scratch
 *    is the two id buffers the contract provides, idx and rank itself, plus about 40 KB of
 *    stack for the counters. The scatter runs two independent chains (see radix_pass). About
 *    135 us for 11k items on the 2-core development machine, against 330 us for a plain
 *    one-chain LSD sort and 1.4 ms for qsort of the bare floats.
 *  - the ensemble scorer: for each teacher, score a sub-batch of the users with the teacher's own
 *    rows() into a (batch x teacher items) buffer, rank the first n_items entries of each row and
 *    add w(rank) / M, with w tabulated once. The buffers and the table live in the ensemble's
 *    scratch when it has one (taken with a test-and-set flag, so a concurrent caller allocates
 *    its own instead of waiting). No global state.
 *
 * Scores are assumed not to be NaN (NaN has no place in a total order): the top-k functions
 * never select a NaN score (as if filtered), and ccd_row_ranks places it somewhere without
 * failing. -0.0 and +0.0 compare equal everywhere, as under float comparison. */
#include "rank.h"

#include <math.h>
#include <omp.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dense.h"
#include "kbest.h"

/* ---------------------------------------------------------------------------------------------
 * Filters */

/* Overwrite the filtered entries of row u (n_items) with NaN, which fails every comparison
 * below and so never enters a heap. */
static void mask_row(const ccd_filter *f, int u, float *row, int n_items)
{
    if (!f)
        return;
    for (int t = 0; t < f->n_sets; t++) {
        int len;
        const int *e = ccd_csr_row(f->sets[t], u, &len);
        for (int q = 0; q < len && e[q] < n_items; q++) /* rows are sorted */
            if (e[q] >= 0)
                row[e[q]] = NAN;
    }
}

/* ---------------------------------------------------------------------------------------------
 * Top-k items per user and top-k users per item, from one stream of row chunks */

/* The k best eligible items of each row of a (masked) chunk, into out rows c0.. (k each). */
static int topk_items_chunk(const float *scores, int c0, int cn, int n_items, int k, int *out)
{
    int rc = 0;
#pragma omp parallel
    {
        float *hs = malloc((size_t)k * sizeof *hs); /* (k) heap scores */
        int *hu = malloc((size_t)k * sizeof *hu);   /* (k) heap items */
        if (!hs || !hu) {
#pragma omp atomic write
            rc = -1;
        }
#pragma omp for schedule(dynamic, 16)
        for (int r = 0; r < cn; r++) {
            if (!hs || !hu)
                continue;
            const float *row = scores + (size_t)r * n_items;
            const int c = ccd_kbest_of_row(row, n_items, NULL, k, hs, hu); /* NaN: filtered */
            ccd_kbest_emit(hs, hu, c, k, out + (size_t)(c0 + r) * k);      /* (k) row of out */
        }
        free(hs);
        free(hu);
    }
    return rc;
}

/* Items per unit of work in the per-chunk item loop: a thread walks all rows of the chunk over
 * this many contiguous columns (a 1 KB stretch of each row). */
#define USER_ITEM_BLOCK 256

/* One k-heap of users per item, fed chunk by chunk. */
typedef struct {
    int k, n_items;
    float *hs;    /* (n_items x k) heap scores */
    int *hu;      /* (n_items x k) heap users */
    int *cnt;     /* (n_items) heap sizes */
    float *worst; /* (n_items) entry threshold */
} user_heaps;

static int user_heaps_init(user_heaps *h, int n_items, int k)
{
    const size_t nk = (size_t)n_items * (size_t)k;
    h->k = k;
    h->n_items = n_items;
    h->hs = malloc(nk * sizeof *h->hs);
    h->hu = malloc(nk * sizeof *h->hu);
    h->cnt = calloc((size_t)n_items, sizeof *h->cnt);
    h->worst = malloc((size_t)n_items * sizeof *h->worst);
    if (!h->hs || !h->hu || !h->cnt || !h->worst)
        return -1;
    /* While a heap is not full every eligible score enters: threshold -inf, with -inf itself
     * let through by the explicit test in the hot loop. */
    for (int i = 0; i < n_items; i++)
        h->worst[i] = -INFINITY;
    return 0;
}

static void user_heaps_free(user_heaps *h)
{
    free(h->hs);
    free(h->hu);
    free(h->cnt);
    free(h->worst);
}

static void topk_users_chunk(user_heaps *h, const float *scores, int c0, int cn)
{
    const int n_items = h->n_items, k = h->k;
    const int n_blocks = (n_items + USER_ITEM_BLOCK - 1) / USER_ITEM_BLOCK;
    float *hs = h->hs, *worst = h->worst;
    int *hu = h->hu, *cnt = h->cnt;
#pragma omp parallel for schedule(static)
    for (int b = 0; b < n_blocks; b++) {
        const int i0 = b * USER_ITEM_BLOCK;
        const int i1 = i0 + USER_ITEM_BLOCK < n_items ? i0 + USER_ITEM_BLOCK : n_items;
        for (int r = 0; r < cn; r++) {
            const float *row = scores + (size_t)r * n_items;
            const int u = c0 + r;
            for (int j0 = i0; j0 < i1; j0 += 16) {
                const int j1 = j0 + 16 < i1 ? j0 + 16 : i1;
                /* Most stretches hold no candidate: test them with a branch-free scan the
                 * compiler vectorises. -inf is let through to the exact test below. */
                int hit = 0;
                for (int i = j0; i < j1; i++)
                    hit |= (row[i] > worst[i]) | (row[i] == -INFINITY);
                if (!hit)
                    continue;
                for (int i = j0; i < j1; i++) {
                    const float v = row[i];
                    if (!(v > worst[i] || (v == -INFINITY && cnt[i] < k)))
                        continue;
                    float *hh = hs + (size_t)i * k;
                    int *g = hu + (size_t)i * k;
                    if (cnt[i] < k) {
                        ccd_kbest_push(hh, g, cnt[i]++, v, u);
                        if (cnt[i] == k)
                            worst[i] = hh[0];
                    } else {
                        /* v is strictly better than the root (ties keep the earlier user) */
                        hh[0] = v;
                        g[0] = u;
                        ccd_kbest_sift_down(hh, g, k, 0);
                        worst[i] = hh[0];
                    }
                }
            }
        }
    }
}

struct ccd_topk_stream {
    const ccd_filter *f;
    int n_items, k_items, k_users;
    int *out_items, *out_users;
    user_heaps h;
};

ccd_topk_stream *ccd_topk_stream_new(int n_items, const ccd_filter *f, int k_items, int *out_items,
                                     int k_users, int *out_users)
{
    ccd_topk_stream *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->f = f;
    t->n_items = n_items;
    t->k_items = k_items > 0 && out_items ? k_items : 0;
    t->out_items = out_items;
    t->k_users = k_users > 0 && out_users && n_items > 0 ? k_users : 0;
    t->out_users = out_users;
    if (t->k_users && user_heaps_init(&t->h, n_items, t->k_users) != 0) {
        user_heaps_free(&t->h);
        free(t);
        return NULL;
    }
    return t;
}

int ccd_topk_stream_feed(void *ctx, int first_user, int n, float *rows)
{
    ccd_topk_stream *t = ctx;
    const int n_items = t->n_items;
    if (t->f) {
#pragma omp parallel for schedule(static)
        for (int r = 0; r < n; r++)
            mask_row(t->f, first_user + r, rows + (size_t)r * n_items, n_items);
    }
    if (t->k_items && topk_items_chunk(rows, first_user, n, n_items, t->k_items, t->out_items) != 0)
        return -1;
    if (t->k_users)
        topk_users_chunk(&t->h, rows, first_user, n);
    return 0;
}

void ccd_topk_stream_finish(ccd_topk_stream *t)
{
    if (!t)
        return;
    if (t->k_users) {
        const int k = t->k_users;
#pragma omp parallel for schedule(static)
        for (int i = 0; i < t->n_items; i++) /* out row i: (k) */
            ccd_kbest_emit(t->h.hs + (size_t)i * k, t->h.hu + (size_t)i * k, t->h.cnt[i], k,
                           t->out_users + (size_t)i * k);
    }
    user_heaps_free(&t->h);
    free(t);
}

int ccd_topk_items_users(const ccd_scorer *s, const ccd_filter *f, int k_items, int *out_items,
                         int k_users, int *out_users)
{
    const int n_users = s->n_users, n_items = s->n_items;
    if (!((k_items > 0 && out_items && n_users > 0) || (k_users > 0 && out_users && n_items > 0)))
        return 0;
    const int chunk = ccd_scorer_chunk(s);
    /* (chunk x n_items) */
    float *scores = ccd_floats((size_t)chunk * (size_t)(n_items > 0 ? n_items : 1));
    int *users = malloc((size_t)chunk * sizeof *users); /* (chunk) */
    ccd_topk_stream *t = ccd_topk_stream_new(n_items, f, k_items, out_items, k_users, out_users);
    int rc = scores && users && t ? 0 : -1;
    for (int c0 = 0; rc == 0 && c0 < n_users; c0 += chunk) {
        const int cn = n_users - c0 < chunk ? n_users - c0 : chunk;
        for (int r = 0; r < cn; r++)
            users[r] = c0 + r;
        if (s->rows(s, users, cn, scores) != 0 || ccd_topk_stream_feed(t, c0, cn, scores) != 0)
            rc = -1;
    }
    ccd_topk_stream_finish(t);
    free(scores);
    free(users);
    return rc;
}

int ccd_topk_items(const ccd_scorer *s, const ccd_filter *f, int k, int *out)
{
    return ccd_topk_items_users(s, f, k, out, 0, NULL);
}

int ccd_topk_users(const ccd_scorer *s, const ccd_filter *f, int k, int *out)
{
    return ccd_topk_items_users(s, f, 0, NULL, k, out);
}

/* ---------------------------------------------------------------------------------------------
 * Row ranks */

/* The order-reversing key: key(a) < key(b) iff a > b as floats, for non-NaN a, b. Negative
 * floats already sort descending by their raw bits (sign-magnitude); non-negative ones sort
 * descending once their low 31 bits are flipped, and stay below every negative with sign bit 0.
 * -0.0 is folded onto +0.0 first so the two tie, as they do under float comparison. */
static inline uint32_t desc_key(float x)
{
    uint32_t b;
    memcpy(&b, &x, sizeof b);
    if (b == 0x80000000u)
        b = 0;
    uint32_t neg = 0u - (b >> 31); /* all ones for negative x */
    return b ^ (0x7FFFFFFFu & ~neg);
}

#define RADIX_BITS 11
#define RADIX_SIZE (1 << RADIX_BITS)
#define RADIX_PASSES 3 /* 11 + 11 + 10 bits */

/* One stable counting pass on the key digit at shift (of the packed (key << 32 | id) values):
 * dst[0..n) = src[0..n) ordered by that digit, ties in src order. count is the digit's
 * histogram. Returns 0, writing nothing, when every key has the same digit (the pass would be
 * the identity).
 *
 * Keys and ids travel together, so a pass reads its input in order and never gathers from the
 * row. The scatter is a chain of dependent counter updates; running two independent chains, the
 * front half forward from the bucket starts and the back half backward from the bucket ends,
 * roughly halves its time. Both halves keep src order within a bucket, and they meet exactly
 * because together they hold every bucket's count. */
static inline int radix_pass(int n, const uint64_t *src, uint64_t *dst, const int *count, int shift)
{
    if (count[(src[0] >> shift) & (RADIX_SIZE - 1)] == n)
        return 0;
    int first[RADIX_SIZE], end[RADIX_SIZE]; /* each bucket's next front and back slot */
    int sum = 0;
    for (int d = 0; d < RADIX_SIZE; d++) {
        first[d] = sum;
        sum += count[d];
        end[d] = sum;
    }
    int q = 0, q2 = n - 1;
    for (; q < q2; q++, q2--) {
        const uint64_t a = src[q], b = src[q2];
        dst[first[(a >> shift) & (RADIX_SIZE - 1)]++] = a;
        dst[--end[(b >> shift) & (RADIX_SIZE - 1)]] = b;
    }
    if (q == q2) /* odd n: the middle element goes with the front half */
        dst[first[(src[q] >> shift) & (RADIX_SIZE - 1)]++] = src[q];
    return 1;
}

/* The packing pass and the two low passes of the sort: returns the buffer (a or b) that holds
 * the row ordered by the low 22 key bits, and the top digit's histogram in top. */
static uint64_t *row_sort_low(const float *row, int n, uint64_t *a, uint64_t *b,
                              int top[RADIX_SIZE])
{
    int hist[2][RADIX_SIZE]; /* hist[p][d]: keys with digit d in pass p */
    int top_odd[RADIX_SIZE]; /* the top digits of odd i, merged into top after */
    memset(hist, 0, sizeof hist);
    memset(top_odd, 0, sizeof top_odd);
    memset(top, 0, RADIX_SIZE * sizeof *top);
    /* The top digit repeats along a row far more than the others; counting odd and even i in
     * separate tables breaks the chain of updates to one counter. Ids ascend in the packed
     * input, so the stable passes leave ties in increasing id. */
    for (int i = 0; i < n; i += 2) {
        const uint32_t key = desc_key(row[i]);
        a[i] = (uint64_t)key << 32 | (uint32_t)i;
        hist[0][key & (RADIX_SIZE - 1)]++;
        hist[1][(key >> RADIX_BITS) & (RADIX_SIZE - 1)]++;
        top[key >> (2 * RADIX_BITS)]++;
        if (i + 1 < n) {
            const uint32_t k1 = desc_key(row[i + 1]);
            a[i + 1] = (uint64_t)k1 << 32 | (uint32_t)(i + 1);
            hist[0][k1 & (RADIX_SIZE - 1)]++;
            hist[1][(k1 >> RADIX_BITS) & (RADIX_SIZE - 1)]++;
            top_odd[k1 >> (2 * RADIX_BITS)]++;
        }
    }
    for (int d = 0; d < RADIX_SIZE; d++)
        top[d] += top_odd[d];
    uint64_t *src = a, *dst = b, *t;
    if (radix_pass(n, src, dst, hist[0], 32))
        t = src, src = dst, dst = t;
    if (radix_pass(n, src, dst, hist[1], 32 + RADIX_BITS))
        t = src, src = dst, dst = t;
    return src;
}

void ccd_row_sort(const float *row, int n, uint64_t *sorted, uint64_t *scratch)
{
    if (n <= 0)
        return;
    int top[RADIX_SIZE];
    uint64_t *src = row_sort_low(row, n, sorted, scratch, top);
    uint64_t *dst = src == sorted ? scratch : sorted;
    if (radix_pass(n, src, dst, top, 32 + 2 * RADIX_BITS))
        src = dst;
    if (src != sorted)
        memcpy(sorted, src, (size_t)n * sizeof *sorted);
}

void ccd_row_rank_weights(const float *row, int n, const float *w, float *out, bool add,
                          uint64_t *scratch)
{
    if (n <= 0)
        return;
    int top[RADIX_SIZE];
    const uint64_t *src = row_sort_low(row, n, scratch, scratch + n, top);
    /* The top pass, fused: an entry's slot in it is its rank, so weigh it there instead of
     * writing the sorted row out and reading it back (two chains, as in radix_pass). */
    int first[RADIX_SIZE], end[RADIX_SIZE];
    int sum = 0;
    for (int d = 0; d < RADIX_SIZE; d++) {
        first[d] = sum;
        sum += top[d];
        end[d] = sum;
    }
    const int shift = 32 + 2 * RADIX_BITS;
    int q = 0, q2 = n - 1;
    if (add) {
        for (; q < q2; q++, q2--) {
            const uint64_t a = src[q], b = src[q2];
            out[(uint32_t)a] += w[first[a >> shift]++];
            out[(uint32_t)b] += w[--end[b >> shift]];
        }
        if (q == q2)
            out[(uint32_t)src[q]] += w[first[src[q] >> shift]++];
    } else {
        for (; q < q2; q++, q2--) {
            const uint64_t a = src[q], b = src[q2];
            out[(uint32_t)a] = w[first[a >> shift]++];
            out[(uint32_t)b] = w[--end[b >> shift]];
        }
        if (q == q2)
            out[(uint32_t)src[q]] = w[first[src[q] >> shift]++];
    }
}

/* ---------------------------------------------------------------------------------------------
 * Ensemble scorer */

struct ccd_ensemble_scratch {
    atomic_flag busy; /* held by the rows() call using the buffers below */
    float *w;         /* (w_items) w(r) / w_teachers */
    int w_items, w_teachers;
    float *buf; /* (buf_n): a sub-batch of one teacher's rows, (batch x teacher items) */
    size_t buf_n;
    uint64_t *sort; /* (sort_n): each thread's sorted row and its scratch, (threads x 2 n_items) */
    size_t sort_n;
};

ccd_ensemble_scratch *ccd_ensemble_scratch_new(void)
{
    ccd_ensemble_scratch *s = calloc(1, sizeof *s);
    if (s)
        atomic_flag_clear(&s->busy);
    return s;
}

static void scratch_release(ccd_ensemble_scratch *s)
{
    free(s->w);
    free(s->buf);
    free(s->sort);
}

void ccd_ensemble_scratch_free(ccd_ensemble_scratch *s)
{
    if (!s)
        return;
    scratch_release(s);
    free(s);
}

/* Grow s to hold a call's buffers; the weight table is rebuilt only when its shape changes. */
static int scratch_fit(ccd_ensemble_scratch *s, int n_items, int M, size_t buf_n, size_t sort_n)
{
    if (s->buf_n < buf_n) {
        free(s->buf);
        s->buf_n = 0;
        /* rows() fills every entry it hands on: the zeroing is the allocator's, once */
        if (!(s->buf = ccd_floats(buf_n)))
            return -1;
        s->buf_n = buf_n;
    }
    if (s->sort_n < sort_n) {
        free(s->sort);
        s->sort_n = 0;
        if (!(s->sort = malloc(sort_n * sizeof *s->sort)))
            return -1;
        s->sort_n = sort_n;
    }
    if (s->w_items != n_items || s->w_teachers != M) {
        free(s->w);
        s->w_items = 0;
        if (!(s->w = malloc((size_t)n_items * sizeof *s->w)))
            return -1;
        /* w(r) = (r + 1)^-0.05 / M, in double then rounded once (so a single teacher's best
         * item gets exactly 1). The reference tabulates w for r < 45 000; any n_items works. */
        for (int r = 0; r < n_items; r++)
            s->w[r] = (float)(pow((double)r + 1.0, -0.05) / M);
        s->w_items = n_items, s->w_teachers = M;
    }
    return 0;
}

static int ensemble_rows(const ccd_scorer *s, const int *users, int n, float *out)
{
    const ccd_ensemble *e = s->ctx;
    const int n_items = e->n_items, M = e->n_teachers;
    if (M <= 0)
        return -1;
    if (n <= 0 || n_items <= 0)
        return 0;
    /* The teachers must cover the ensemble's shape (their extra rows and items are ignored). */
    int batch = n, width = 0; /* rows per teacher call; widest teacher row */
    for (int m = 0; m < M; m++) {
        const ccd_scorer *t = &e->teachers[m];
        if (t->n_users < e->n_users || t->n_items < n_items)
            return -1;
        int c = ccd_scorer_chunk(t);
        batch = c < batch ? c : batch;
        width = t->n_items > width ? t->n_items : width;
    }
    const int n_threads = omp_get_max_threads();
    ccd_ensemble_scratch own = {0}, *sc = e->scratch;
    if (!sc || atomic_flag_test_and_set_explicit(&sc->busy, memory_order_acquire))
        sc = &own;
    int rc = scratch_fit(sc, n_items, M, (size_t)batch * width, (size_t)n_threads * 2 * n_items);
    const float *w = sc->w;
    float *buf = sc->buf;
    uint64_t *scratch = sc->sort;
    for (int b0 = 0; rc == 0 && b0 < n; b0 += batch) {
        const int bn = n - b0 < batch ? n - b0 : batch;
        for (int m = 0; rc == 0 && m < M; m++) {
            const ccd_scorer *t = &e->teachers[m];
            const int tw = t->n_items;
            /* outside the parallel region: a stop abandons the rows between teacher passes */
            if ((e->stop && atomic_load_explicit(e->stop, memory_order_relaxed)) ||
                t->rows(t, users + b0, bn, buf) != 0) {
                rc = -1;
                break;
            }
#pragma omp parallel for schedule(dynamic, 8)
            for (int r = 0; r < bn; r++)
                ccd_row_rank_weights(buf + (size_t)r * tw, n_items, w,
                                     out + (size_t)(b0 + r) * n_items, m > 0,
                                     scratch + (size_t)omp_get_thread_num() * 2 * n_items);
        }
    }
    if (sc == &own)
        scratch_release(&own);
    else
        atomic_flag_clear_explicit(&sc->busy, memory_order_release);
    return rc;
}

ccd_scorer ccd_scorer_ensemble(const ccd_ensemble *e)
{
    return (ccd_scorer){
        .n_users = e->n_users, .n_items = e->n_items, .rows = ensemble_rows, .ctx = e};
}
