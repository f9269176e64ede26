/* distill: see distill.h.
 *
 * Both passes share one kernel, rrd_rows: a set of "row" entities (users in the batch pass, items
 * in the item pass) scored against every "column" entity with one SGEMM, the loss reduced per row
 * over that row's interesting list and uninteresting bitmap, and the gradient taken back with two
 * more SGEMMs (rows: G Y, columns: G^T X). */
#include "distill.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dense.h"
#include "rank.h"

#define ITEM_CHUNK 1024
#define CLAMP 10.0f

double ccd_rrd_loss(const float *pos, int k, const float *neg, int n, float *dpos, float *dneg)
{
    /* N = sum_m e^{min(s-_m, 10)}; D_j = sum_{j' >= j} e^{s+_j'} + N + 1e-8 */
    /* e^{s-} for the whole (long) uninteresting row at once, vectorised, into dneg */
    for (int m = 0; m < n; m++)
        dneg[m] = neg[m] < CLAMP ? neg[m] : CLAMP;
    ccd_vexp(dneg, dneg, n);
    double nsum = 0.0;
    for (int m = 0; m < n; m++)
        nsum += dneg[m];
    double *d = malloc((size_t)(k > 0 ? k : 1) * sizeof *d);
    if (!d)
        return NAN;
    double suffix = 0.0, loss = 0.0;
    for (int j = k - 1; j >= 0; j--) {
        suffix += exp((double)fminf(pos[j], CLAMP));
        d[j] = suffix + nsum + 1e-8;
        loss += log(d[j]) - (double)fminf(pos[j], CLAMP);
    }
    /* dl/ds+_j = e^{s+_j} sum_{k' <= j} 1/D_k' - 1; dl/ds-_m = e^{s-_m} sum_k 1/D_k */
    double cum = 0.0;
    for (int j = 0; j < k; j++) {
        cum += 1.0 / d[j];
        dpos[j] = pos[j] <= CLAMP ? (float)(exp((double)pos[j]) * cum - 1.0) : 0.0f;
    }
    const float fcum = (float)cum;
    for (int m = 0; m < n; m++)
        dneg[m] = neg[m] <= CLAMP ? dneg[m] * fcum : 0.0f;
    free(d);
    return loss;
}

/* ------------------------------------------------------------------------------------------ */
/* uninteresting draws */

/* Uniform draws of `want` distinct columns from [0, n_cols) minus the sorted, unique list skip,
 * from one row's own stream: the sample is a function of (seed, stream) only, so any batch can
 * regenerate any row's set and nothing users x items is ever stored. taken is a bitmap of
 * n_cols bits, all clear on entry and on return: a large catalogue's bitmap still sits in L1
 * (173,000 columns: 21 KB), where a byte or word per column would not. Three regimes keep the
 * cost O(min(n_cols, want)) in expectation:
 *   - want >= eligible: every eligible column;
 *   - want >= eligible / 2: drop (eligible - want) random eligible columns, keep the rest;
 *   - otherwise: rejection draws of the columns themselves.
 * The columns come out in ascending order, so the caller's gathers and scatters walk its
 * tables forward (the first two regimes produce that order anyway; the third reads it off the
 * bitmap when the bitmap's words are fewer than the draws, and otherwise leaves the draws in
 * the order drawn). */
#define BIT_TEST(m, c) ((m)[(c) >> 6] >> ((c)&63) & 1u)
#define BIT_SET(m, c) ((m)[(c) >> 6] |= (uint64_t)1 << ((c)&63))
#define BIT_CLEAR(m, c) ((m)[(c) >> 6] &= ~((uint64_t)1 << ((c)&63)))

/* The columns of [0, n_cols) whose bit is clear (set: whose bit is set) into out, ascending;
 * the bitmap is cleared on the way. */
static int bits_columns(uint64_t *taken, int n_cols, bool set, int *out)
{
    int n = 0;
    const int words = (n_cols + 63) / 64;
    for (int w = 0; w < words; w++) {
        uint64_t bits = set ? taken[w] : ~taken[w];
        if (w == words - 1 && (n_cols & 63))
            bits &= ((uint64_t)1 << (n_cols & 63)) - 1;
        taken[w] = 0;
        while (bits) {
            out[n++] = w * 64 + __builtin_ctzll(bits);
            bits &= bits - 1;
        }
    }
    return n;
}

int ccd_uninteresting_draw(uint64_t seed, uint64_t stream, int n_cols, const int *skip,
                           int64_t n_skip, int want, uint64_t *taken, int *out)
{
    const int64_t n_elig = (int64_t)n_cols - n_skip;
    if (want <= 0 || n_elig <= 0)
        return 0;
    for (int64_t s = 0; s < n_skip; s++)
        BIT_SET(taken, skip[s]);
    ccd_rng rng;
    ccd_rng_init(&rng, seed, stream);
    if (want >= n_elig)
        return bits_columns(taken, n_cols, false, out);
    if (2 * (int64_t)want >= n_elig) {
        int64_t drop = n_elig - want;
        while (drop > 0) {
            int c = (int)ccd_rng_below(&rng, (uint32_t)n_cols);
            if (!BIT_TEST(taken, c)) {
                BIT_SET(taken, c);
                drop--;
            }
        }
        return bits_columns(taken, n_cols, false, out);
    }
    int n = 0;
    while (n < want) {
        int c = (int)ccd_rng_below(&rng, (uint32_t)n_cols);
        if (!BIT_TEST(taken, c)) {
            BIT_SET(taken, c);
            out[n++] = c;
        }
    }
    for (int64_t s = 0; s < n_skip; s++)
        BIT_CLEAR(taken, skip[s]);
    if ((n_cols + 63) / 64 <= n) {
        /* the drawn bits are now the only ones set: read them back in order */
        n = bits_columns(taken, n_cols, true, out);
    } else {
        for (int j = 0; j < n; j++)
            BIT_CLEAR(taken, out[j]);
    }
    return n;
}

/* One side of the loss: rows of one kind (users, or items) against columns of the other. */
typedef struct {
    int row_base, col_base; /* where the row / column tables start in emb0 and grad (in rows) */
    int n_cols;
    const int *lists;      /* (rows x k) interesting columns, -1 padded */
    const ccd_csr *inelig; /* (rows x n_cols) columns a row may not draw (sorted, unique) */
    int want;              /* uninteresting draws per row (nui or nuu) */
    uint64_t stream;       /* row e draws from stream + e */
} rrd_side;

/* Per-thread scratch, sized for the larger side. */
typedef struct {
    int *cols;         /* (n) drawn columns */
    uint64_t *taken;   /* (n / 64 + 1) the draw's bitmap, clear between rows */
    float *neg, *dneg; /* (n) scores of the drawn columns, then dl/ds */
    float *pos, *dpos; /* (k) */
    float *colgrad;    /* (n x d) this thread's share of the column gradient */
} rrd_scratch;

typedef struct {
    const ccd_kd_inputs *in;
    int k;
    uint64_t seed;
    rrd_side users, items; /* users x items (batch pass) and items x users (item pass) */
    int n_threads;
    rrd_scratch *scratch; /* (n_threads) */
    int *stamp;           /* (n_users) last batch that listed each user */
    int *rows;            /* (max(batch, item_chunk)) row entities of a pass */
    int n_batch, item_chunk;
    ccd_rng rng;            /* item-pass shuffles */
    const atomic_int *stop; /* the run's stop flag, polled per chunk of the item pass */
    int *absent; /* (n_absent) users without a train pair (absent_users, hold_absent_users), or
                    NULL */
    int n_absent;
    float *held; /* (n_absent x d) their layer-0 rows at the start (hold_absent_users), or NULL */
    ccd_rng absent_rng; /* their pass's shuffles */
} kd_ctx;

/* Each term one CCD_FMA: the d = 8 copy of rrd_row below and the general one must agree. */
static inline float dot(const float *a, const float *b, int d)
{
    float s = 0.0f;
    for (int c = 0; c < d; c++)
        s = CCD_FMA(a[c], b[c], s);
    return s;
}

static inline void axpy(float *y, float a, const float *x, int d)
{
    for (int c = 0; c < d; c++)
        y[c] = CCD_FMA(a, x[c], y[c]);
}

/* One row of rrd_rows: its draw, scores, loss and gradient (the row's into m->grad, the
 * columns' into sc->colgrad). Returns the row's loss (NaN on failure). Always inlined, so the
 * call with the constant d = 8 (the student's width) compiles to fully unrolled dot products
 * and updates, the same operations in the same order as the general one. */
static inline __attribute__((always_inline)) double
rrd_row(const kd_ctx *c, ccd_recmodel *m, const rrd_side *side, rrd_scratch *sc, int e, int d)
{
    const int k = c->k;
    const float lambda = c->in->lambda;
    const float *y = m->emb0 + (size_t)side->col_base * d; /* (n_cols x d) column table */
    const float *x = m->emb0 + (size_t)(side->row_base + e) * d;
    const int *list = side->lists + (size_t)e * k;
    const ccd_csr *ie = side->inelig;
    int nn = ccd_uninteresting_draw(c->seed, side->stream + (uint64_t)e, side->n_cols,
                                    ie->indices + ie->indptr[e], ie->indptr[e + 1] - ie->indptr[e],
                                    side->want, sc->taken, sc->cols);
    int kk = 0;
    while (kk < k && list[kk] >= 0) {
        sc->pos[kk] = dot(x, y + (size_t)list[kk] * d, d);
        kk++;
    }
    for (int j = 0; j < nn; j++)
        sc->neg[j] = dot(x, y + (size_t)sc->cols[j] * d, d);
    double l = ccd_rrd_loss(sc->pos, kk, sc->neg, nn, sc->dpos, sc->dneg);
    if (!(l == l))
        return l;
    float *gx = m->grad + (size_t)(side->row_base + e) * d; /* rows are distinct */
    for (int j = 0; j < kk; j++) {
        float g = lambda * sc->dpos[j];
        axpy(gx, g, y + (size_t)list[j] * d, d);
        axpy(sc->colgrad + (size_t)list[j] * d, g, x, d);
    }
    for (int j = 0; j < nn; j++) {
        float g = lambda * sc->dneg[j];
        axpy(gx, g, y + (size_t)sc->cols[j] * d, d);
        axpy(sc->colgrad + (size_t)sc->cols[j] * d, g, x, d);
    }
    return l;
}

/* The kernel: the loss of rows[0..n) of one side, each scored against its interesting list and
 * its uninteresting draw (gathered dot products: O(rows x (k + want) x d), whatever the catalogue
 * size). Adds lambda * gradient to m->grad and returns lambda * loss (NaN on failure). Rows are
 * split statically over the threads and the column gradients summed in thread order, so the
 * result depends only on the seed and the thread count. */
static double rrd_rows(kd_ctx *c, ccd_recmodel *m, const int *rows, int n, const rrd_side *side)
{
    const int d = m->dim;
    double loss = 0.0;
    int failed = 0, team = 1;
#pragma omp parallel num_threads(c->n_threads) reduction(+ : loss)
    {
#pragma omp single
        team = omp_get_num_threads(); /* 1 when nested inside another parallel region */
        rrd_scratch *sc = &c->scratch[omp_get_thread_num()];
        memset(sc->colgrad, 0, (size_t)side->n_cols * d * sizeof *sc->colgrad);
#pragma omp for schedule(static)
        for (int r = 0; r < n; r++) {
            double l =
                d == 8 ? rrd_row(c, m, side, sc, rows[r], 8) : rrd_row(c, m, side, sc, rows[r], d);
            if (!(l == l)) {
#pragma omp atomic write
                failed = 1;
                continue;
            }
            loss += l;
        }
    }
    if (failed)
        return NAN;
    /* Column gradients, thread 0 first, split over the threads by column. */
    float *gy = m->grad + (size_t)side->col_base * d;
    const ptrdiff_t total = (ptrdiff_t)side->n_cols * d;
#pragma omp parallel for schedule(static) num_threads(c->n_threads)
    for (ptrdiff_t q = 0; q < total; q++) {
        float s = 0.0f;
        for (int t = 0; t < team; t++)
            s += c->scratch[t].colgrad[q];
        gy[q] += s;
    }
    return c->in->lambda * loss;
}

/* Batch hook: RRD over the batch's distinct users. */
static double kd_batch(void *vctx, ccd_recmodel *m, const int *user, const int *pos, const int *neg,
                       int b)
{
    (void)pos, (void)neg;
    kd_ctx *c = vctx;
    c->n_batch++;
    int n = 0;
    for (int k = 0; k < b; k++)
        if (c->stamp[user[k]] != c->n_batch) {
            c->stamp[user[k]] = c->n_batch;
            c->rows[n++] = user[k];
        }
    return rrd_rows(c, m, c->rows, n, &c->users);
}

/* Step hook (hold_absent_users): the held rows back as they were before the stage, so neither
 * a gradient nor Adam's weight decay and momentum moves them. */
static void hold_rows(void *vctx, ccd_recmodel *m)
{
    const kd_ctx *c = vctx;
    const size_t d = (size_t)m->dim;
    for (int r = 0; r < c->n_absent; r++)
        memcpy(m->emb0 + (size_t)c->absent[r] * d, c->held + (size_t)r * d, d * sizeof(float));
}

/* RRD over rows[0..n) of one side in chunks of item_chunk, one Adam step per chunk. The summed
 * loss, CCD_STOPPED or -1. */
static double rrd_chunked(kd_ctx *c, ccd_recmodel *m, ccd_adam *adam, const int *rows, int n,
                          const rrd_side *side)
{
    const size_t n_params = (size_t)ccd_recmodel_nodes(m) * m->dim;
    double loss = 0.0;
    for (int i0 = 0; i0 < n; i0 += c->item_chunk) {
        if (ccd_stop_raised(c->stop))
            return CCD_STOPPED;
        int len = n - i0 < c->item_chunk ? n - i0 : c->item_chunk;
        memset(m->grad, 0, n_params * sizeof *m->grad);
        double l = rrd_rows(c, m, rows + i0, len, side);
        if (!(l >= 0.0))
            return -1.0;
        loss += l;
        ccd_adam_step(adam, m->emb0, m->grad);
        if (c->held)
            hold_rows(c, m);
    }
    return loss;
}

/* Epoch hook: the item pass (IR-RRD) over the shuffled items, then (absent_users) the user side
 * over the shuffled users the batches never list. */
static double kd_epoch(void *vctx, ccd_recmodel *m, ccd_adam *adam, int epoch)
{
    (void)epoch;
    kd_ctx *c = vctx;
    int *items = malloc((size_t)m->n_items * sizeof *items);
    if (!items)
        return -1.0;
    for (int i = 0; i < m->n_items; i++)
        items[i] = i;
    ccd_rng_shuffle_int(&c->rng, items, (size_t)m->n_items);
    double loss = rrd_chunked(c, m, adam, items, m->n_items, &c->items);
    free(items);
    if (loss >= 0.0 && c->n_absent > 0 && !c->held) {
        ccd_rng_shuffle_int(&c->absent_rng, c->absent, (size_t)c->n_absent);
        double l = rrd_chunked(c, m, adam, c->absent, c->n_absent, &c->users);
        loss = l >= 0.0 ? loss + l : l;
    }
    return loss;
}

/* The users without a train pair in blk (ascending), for the absent-user pass or, with hold,
 * with a copy of their rows in m to hold them at. 0 or -1. */
static int absent_users(kd_ctx *c, const ccd_block *blk, const ccd_recmodel *m, bool hold)
{
    const int nu = m->n_users;
    const size_t d = (size_t)m->dim;
    c->absent = malloc((size_t)(nu > 0 ? nu : 1) * sizeof *c->absent);
    if (!c->absent)
        return -1;
    for (int u = 0; u < nu; u++)
        if (ccd_csr_row_len(&blk->train, u) == 0)
            c->absent[c->n_absent++] = u;
    if (!hold)
        return 0;
    c->held = malloc((c->n_absent > 0 ? (size_t)c->n_absent : 1) * d * sizeof *c->held);
    if (!c->held)
        return -1;
    for (int r = 0; r < c->n_absent; r++)
        memcpy(c->held + (size_t)r * d, m->emb0 + (size_t)c->absent[r] * d, d * sizeof(float));
    return 0;
}

/* Interesting lists with the reference's NaN-first order: the entity's train partners first
 * (ascending id, at most k), then the best non-train ones. */
static void train_first(int *lists, const int *best, int n, int k, const ccd_csr *train)
{
    int *row = malloc((size_t)k * sizeof *row);
    if (!row)
        return;
    for (int e = 0; e < n; e++) {
        int w = 0;
        for (int64_t t = e < train->n_rows ? train->indptr[e] : 0;
             e < train->n_rows && t < train->indptr[e + 1] && w < k; t++)
            row[w++] = train->indices[t];
        for (int j = 0; j < k && w < k; j++)
            if (best[(size_t)e * k + j] >= 0)
                row[w++] = best[(size_t)e * k + j];
        for (; w < k; w++)
            row[w] = -1;
        memcpy(lists + (size_t)e * k, row, (size_t)k * sizeof *row);
    }
    free(row);
}

static int scratch_alloc(kd_ctx *c, int n, int k, int d)
{
    c->n_threads = ccd_threads();
    c->scratch = calloc((size_t)c->n_threads, sizeof *c->scratch);
    if (!c->scratch)
        return -1;
    for (int t = 0; t < c->n_threads; t++) {
        rrd_scratch *s = &c->scratch[t];
        s->cols = malloc((size_t)n * sizeof *s->cols);
        s->taken = calloc((size_t)n / 64 + 1, sizeof *s->taken);
        s->neg = malloc((size_t)n * sizeof *s->neg);
        s->dneg = malloc((size_t)n * sizeof *s->dneg);
        s->pos = malloc((size_t)k * sizeof *s->pos);
        s->dpos = malloc((size_t)k * sizeof *s->dpos);
        s->colgrad = ccd_floats((size_t)n * d);
        if (!s->cols || !s->taken || !s->neg || !s->dneg || !s->pos || !s->dpos || !s->colgrad)
            return -1;
    }
    return 0;
}

static void scratch_free(kd_ctx *c)
{
    for (int t = 0; c->scratch && t < c->n_threads; t++) {
        rrd_scratch *s = &c->scratch[t];
        free(s->cols), free(s->taken), free(s->neg), free(s->dneg), free(s->pos), free(s->dpos);
        free(s->colgrad);
    }
    free(c->scratch);
}

/* The interesting lists (n_interesting each, -1 padded): A_u (nu x k), the ensemble's best
 * items per user, and B_i (ni x k), its best users per item, train pairs filtered out; taken
 * from in when the caller has them. With train_items_first, the reference's NaN-first order. */
static int kd_interesting_lists(const ccd_kd_inputs *in, const ccd_block *blk, int nu, int ni,
                                int *a, int *b)
{
    const int k = in->n_interesting;
    ccd_filter train_filter = {.sets = {&blk->train}, .n_sets = 1};
    if (in->ensemble_top)
        memcpy(a, in->ensemble_top, (size_t)nu * k * sizeof *a);
    else if (ccd_topk_items(in->ensemble, &train_filter, k, a) != 0)
        return -1;
    if (in->ensemble_top_users)
        memcpy(b, in->ensemble_top_users, (size_t)ni * k * sizeof *b);
    else if (ccd_topk_users(in->ensemble, &train_filter, k, b) != 0)
        return -1;
    if (in->train_items_first) {
        ccd_csr tt;
        if (ccd_csr_transpose(&tt, &blk->train) != 0)
            return -1;
        train_first(a, a, nu, k, &blk->train);
        train_first(b, b, ni, k, &tt);
        ccd_csr_free(&tt);
    }
    return 0;
}

/* The pair sets of the distillation (O(pairs + (users + items) x k), never users x items):
 * excl = X u A, the BPR exclusion list, and inelig = train u X u A u B (with its transpose),
 * what the uninteresting draws may not take. */
static int kd_pair_sets(const ccd_kd_inputs *in, const ccd_block *blk, int nu, int ni, const int *a,
                        const int *b, ccd_csr *excl, ccd_csr *inelig, ccd_csr *inelig_t)
{
    const int k = in->n_interesting;
    const ccd_csr *x = in->exclude;
    int64_t cap = blk->train.nnz + (x ? x->nnz : 0) + (int64_t)nu * k + (int64_t)ni * k;
    int *pu = malloc((size_t)cap * sizeof *pu), *pi = malloc((size_t)cap * sizeof *pi); /* (cap) */
    int rc = -1;
    if (!pu || !pi)
        goto done;
    int64_t np = 0;
    /* X and A first: they also form the BPR exclusion list */
    for (int u = 0; x && u < x->n_rows && u < nu; u++)
        for (int64_t e = x->indptr[u]; e < x->indptr[u + 1]; e++)
            if (x->indices[e] >= 0 && x->indices[e] < ni)
                pu[np] = u, pi[np++] = x->indices[e];
    for (int u = 0; u < nu; u++)
        for (int j = 0; j < k; j++)
            if (a[(size_t)u * k + j] >= 0)
                pu[np] = u, pi[np++] = a[(size_t)u * k + j];
    if (ccd_csr_from_pairs(excl, nu, ni, pu, pi, np) != 0)
        goto done;
    for (int u = 0; u < blk->train.n_rows; u++)
        for (int64_t e = blk->train.indptr[u]; e < blk->train.indptr[u + 1]; e++)
            pu[np] = u, pi[np++] = blk->train.indices[e];
    for (int i = 0; i < ni; i++)
        for (int j = 0; j < k; j++)
            if (b[(size_t)i * k + j] >= 0)
                pu[np] = b[(size_t)i * k + j], pi[np++] = i;
    if (ccd_csr_from_pairs(inelig, nu, ni, pu, pi, np) != 0 ||
        ccd_csr_transpose(inelig_t, inelig) != 0)
        goto done;
    rc = 0;
done:
    free(pu), free(pi);
    return rc;
}

int ccd_distill(ccd_recmodel *m, const ccd_block *blk, const ccd_kd_inputs *in,
                const ccd_train_opts *o, ccd_block_metrics *best, int *best_epoch)
{
    const int nu = m->n_users, ni = m->n_items, k = in->n_interesting;
    kd_ctx c;
    memset(&c, 0, sizeof c);
    c.in = in;
    c.k = k;
    c.seed = o->seed;
    c.item_chunk = in->item_chunk > 0 ? in->item_chunk : 1024;
    c.stop = o->stop;
    ccd_rng_init(&c.rng, o->seed, ccd_stream(CCD_STREAM_KD_ITEM_ORDER, in->block, 0));
    ccd_rng_init(&c.absent_rng, o->seed, ccd_stream(CCD_STREAM_KD_ABSENT_ORDER, in->block, 0));
    int *a = malloc((size_t)nu * k * sizeof *a);   /* (nu x k) A_u */
    int *b = malloc((size_t)ni * k * sizeof *b);   /* (ni x k) B_i */
    c.stamp = calloc((size_t)nu, sizeof *c.stamp); /* (nu) */
    c.rows = malloc((size_t)(o->stage.batch > c.item_chunk ? o->stage.batch : c.item_chunk) *
                    sizeof *c.rows); /* (max(batch, item_chunk)) */
    ccd_csr inelig = {0}, inelig_t = {0}, excl = {0};
    int rc = -1;
    if (!a || !b || !c.stamp || !c.rows || scratch_alloc(&c, nu > ni ? nu : ni, k, m->dim) != 0 ||
        ((in->absent_users || in->hold_absent_users) &&
         absent_users(&c, blk, m, in->hold_absent_users) != 0) ||
        kd_interesting_lists(in, blk, nu, ni, a, b) != 0 ||
        kd_pair_sets(in, blk, nu, ni, a, b, &excl, &inelig, &inelig_t) != 0)
        goto done;
    /* The uninteresting sets are drawn per row from the row's own stream, so every batch that
     * lists a row regenerates the same set (once per block, as the reference draws them). */
    c.users = (rrd_side){.row_base = 0,
                         .col_base = nu,
                         .n_cols = ni,
                         .lists = a,
                         .inelig = &inelig,
                         .want = in->n_unint_items,
                         .stream = ccd_stream(CCD_STREAM_KD_UNINT_ITEMS, in->block, 0)};
    c.items = (rrd_side){.row_base = nu,
                         .col_base = 0,
                         .n_cols = nu,
                         .lists = b,
                         .inelig = &inelig_t,
                         .want = in->n_unint_users,
                         .stream = ccd_stream(CCD_STREAM_KD_UNINT_USERS, in->block, 0)};
    ccd_train_hooks hooks = {
        .batch = kd_batch, .epoch = kd_epoch, .step = c.held ? hold_rows : NULL, .ctx = &c};
    rc = ccd_train_stage(m, blk, &excl, o, true, &hooks, NULL, NULL, best, best_epoch);
done:
    free(a), free(b), free(c.stamp), free(c.rows), free(c.absent), free(c.held);
    scratch_free(&c);
    ccd_csr_free(&inelig);
    ccd_csr_free(&inelig_t);
    ccd_csr_free(&excl);
    return rc;
}
