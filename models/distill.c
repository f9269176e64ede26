/* distill: see distill.h.
 *
 * Both passes share one kernel, rrd_rows: a set of "row" entities (users in the batch pass, items
 * in the item pass) scored against every "column" entity with one SGEMM, the loss reduced per row
 * over that row's interesting list and uninteresting bitmap, and the gradient taken back with two
 * more SGEMMs (rows: G Y, columns: G^T X). */
#include "distill.h"

#include <cblas.h>
#include <math.h>
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

static inline int bit(const uint64_t *row, int c) { return (int)((row[c >> 6] >> (c & 63)) & 1u); }

typedef struct {
    const ccd_kd_inputs *in;
    int n_users, n_items, k;
    const int *interesting_items; /* (n_users x k) A_u, -1 padded */
    const int *interesting_users; /* (n_items x k) B_i, -1 padded */
    const uint64_t *unint_items;  /* (n_users x words_items) bitmap of N_u */
    const uint64_t *unint_users;  /* (n_items x words_users) bitmap of N_i */
    int words_items, words_users;
    int *stamp;                   /* (n_users) last batch that listed each user */
    int *rows;                    /* (max(batch, ITEM_CHUNK)) row entities of a pass */
    int n_batch;
    ccd_rng rng;                  /* item-pass shuffles */
} kd_ctx;

/* The kernel. rows[0..n): entity indices of the row side; row_base/col_base: where that side's
 * and the column side's tables start in emb0/grad (in rows); n_cols columns. lists: (entities x k)
 * interesting columns; bits: (entities x words) uninteresting columns. Adds lambda * gradient to
 * m->grad and returns lambda * loss (NaN on allocation failure). */
static double rrd_rows(ccd_recmodel *m, const int *rows, int n, int row_base, int col_base,
                       int n_cols, const int *lists, int k, const uint64_t *bits, int words,
                       float lambda)
{
    const int d = m->dim;
    float *x = ccd_floats((size_t)n * d);          /* (n x d) gathered row embeddings */
    float *s = ccd_floats((size_t)n * n_cols);     /* (n x n_cols) scores, then dl/ds */
    float *gx = ccd_floats((size_t)n * d);         /* (n x d) row gradient */
    double *row_loss = calloc((size_t)(n > 0 ? n : 1), sizeof *row_loss);
    if (!x || !s || !gx || !row_loss) {
        free(x), free(s), free(gx), free(row_loss);
        return NAN;
    }
    const float *y = m->emb0 + (size_t)col_base * d; /* (n_cols x d) column table */
    for (int r = 0; r < n; r++)
        memcpy(x + (size_t)r * d, m->emb0 + (size_t)(row_base + rows[r]) * d, (size_t)d * sizeof *x);
    ccd_matmul_nt(x, y, s, n, n_cols, d);
    int failed = 0;
#pragma omp parallel
    {
        float *pos = malloc((size_t)k * sizeof *pos), *dpos = malloc((size_t)k * sizeof *dpos);
        float *neg = malloc((size_t)n_cols * sizeof *neg), *dneg = malloc((size_t)n_cols * sizeof *dneg);
        int *negc = malloc((size_t)n_cols * sizeof *negc);
        if (!pos || !dpos || !neg || !dneg || !negc) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic, 8)
        for (int r = 0; r < n; r++) {
            if (!negc)
                continue;
            float *sr = s + (size_t)r * n_cols;
            const int *list = lists + (size_t)rows[r] * k;
            const uint64_t *b = bits + (size_t)rows[r] * words;
            int kk = 0, nn = 0;
            while (kk < k && list[kk] >= 0) {
                pos[kk] = sr[list[kk]];
                kk++;
            }
            for (int c = 0; c < n_cols; c++)
                if (bit(b, c)) {
                    neg[nn] = sr[c];
                    negc[nn++] = c;
                }
            row_loss[r] = ccd_rrd_loss(pos, kk, neg, nn, dpos, dneg);
            memset(sr, 0, (size_t)n_cols * sizeof *sr);
            for (int j = 0; j < kk; j++)
                sr[list[j]] = lambda * dpos[j];
            for (int j = 0; j < nn; j++)
                sr[negc[j]] = lambda * dneg[j];
        }
        free(pos), free(dpos), free(neg), free(dneg), free(negc);
    }
    double loss = 0.0;
    for (int r = 0; r < n; r++)
        loss += row_loss[r];
    if (!failed) {
        /* rows: gx = G Y;  columns: grad_Y += G^T X */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, d, n_cols, 1.0f, s, n_cols, y, d,
                    0.0f, gx, d);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n_cols, d, n, 1.0f, s, n_cols, x, d,
                    1.0f, m->grad + (size_t)col_base * d, d);
        for (int r = 0; r < n; r++) {
            float *g = m->grad + (size_t)(row_base + rows[r]) * d;
            for (int c = 0; c < d; c++)
                g[c] += gx[(size_t)r * d + c];
        }
    }
    free(x), free(s), free(gx), free(row_loss);
    return failed ? NAN : lambda * loss;
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
    return rrd_rows(m, c->rows, n, 0, m->n_users, m->n_items, c->interesting_items, c->k,
                    c->unint_items, c->words_items, c->in->lambda);
}

/* Epoch hook: the item pass (IR-RRD), one Adam step per chunk of shuffled items. */
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
    const size_t n_params = (size_t)ccd_recmodel_nodes(m) * m->dim;
    double loss = 0.0;
    for (int i0 = 0; i0 < m->n_items; i0 += ITEM_CHUNK) {
        int n = m->n_items - i0 < ITEM_CHUNK ? m->n_items - i0 : ITEM_CHUNK;
        memset(m->grad, 0, n_params * sizeof *m->grad);
        double l = rrd_rows(m, items + i0, n, m->n_users, 0, m->n_users, c->interesting_users,
                            c->k, c->unint_users, c->words_users, c->in->lambda);
        if (!(l >= 0.0)) {
            loss = -1.0;
            break;
        }
        loss += l;
        ccd_adam_step(adam, m->emb0, m->grad);
    }
    free(items);
    return loss;
}

/* Draw up to `want` distinct entries uniformly from {0..n-1} minus the sorted list `skip`
 * (length n_skip), setting their bits in row. */
static int draw_bits(uint64_t *row, int n, const int *skip, int64_t n_skip, int want, ccd_rng *rng,
                     int *scratch)
{
    int n_elig = 0;
    int64_t s = 0;
    for (int c = 0; c < n; c++) {
        while (s < n_skip && skip[s] < c)
            s++;
        if (s < n_skip && skip[s] == c)
            continue;
        scratch[n_elig++] = c;
    }
    int draws = want < n_elig ? want : n_elig;
    for (int t = 0; t < draws; t++) {
        int j = t + (int)ccd_rng_below(rng, (uint32_t)(n_elig - t));
        int v = scratch[j];
        scratch[j] = scratch[t];
        scratch[t] = v;
        row[v >> 6] |= (uint64_t)1 << (v & 63);
    }
    return draws < want; /* capped */
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

int ccd_distill(ccd_recmodel *m, const ccd_block *blk, const ccd_kd_inputs *in,
                const ccd_train_opts *o, ccd_block_metrics *best, int *best_epoch)
{
    const int nu = m->n_users, ni = m->n_items, k = in->n_interesting;
    kd_ctx c;
    memset(&c, 0, sizeof c);
    c.in = in;
    c.n_users = nu;
    c.n_items = ni;
    c.k = k;
    c.words_items = (ni + 63) / 64;
    c.words_users = (nu + 63) / 64;
    ccd_rng_init(&c.rng, o->seed, 0x4b44); /* the item pass's stream */
    int *a = malloc((size_t)nu * k * sizeof *a);       /* (nu x k) A_u */
    int *b = malloc((size_t)ni * k * sizeof *b);       /* (ni x k) B_i */
    uint64_t *ui = calloc((size_t)nu * c.words_items, sizeof *ui);
    uint64_t *uu = calloc((size_t)ni * c.words_users, sizeof *uu);
    c.stamp = malloc((size_t)nu * sizeof *c.stamp);
    c.rows = malloc((size_t)(o->batch > ITEM_CHUNK ? o->batch : ITEM_CHUNK) * sizeof *c.rows);
    int *scratch = malloc((size_t)(nu > ni ? nu : ni) * sizeof *scratch);
    int *pu = NULL, *pi = NULL;
    ccd_csr inelig = {0}, inelig_t = {0}, excl = {0};
    int rc = -1;
    if (!a || !b || !ui || !uu || !c.stamp || !c.rows || !scratch)
        goto done;
    for (int u = 0; u < nu; u++)
        c.stamp[u] = 0;

    /* Interesting lists from the ensemble, train pairs filtered out. */
    ccd_filter train_filter = {.sets = {&blk->train}, .n_sets = 1};
    if (in->ensemble_top)
        memcpy(a, in->ensemble_top, (size_t)nu * k * sizeof *a);
    else if (ccd_topk_items(in->ensemble, &train_filter, k, a) != 0)
        goto done;
    if (ccd_topk_users(in->ensemble, &train_filter, k, b) != 0)
        goto done;
    if (in->train_items_first) {
        ccd_csr tt;
        if (ccd_csr_transpose(&tt, &blk->train) != 0)
            goto done;
        train_first(a, a, nu, k, &blk->train);
        train_first(b, b, ni, k, &tt);
        ccd_csr_free(&tt);
    }

    /* Ineligible pairs: train, X, A, B; then the uninteresting draws. */
    int64_t n_x = in->exclude ? in->exclude->nnz : 0;
    int64_t cap = blk->train.nnz + n_x + (int64_t)nu * k + (int64_t)ni * k;
    pu = malloc((size_t)cap * sizeof *pu);
    pi = malloc((size_t)cap * sizeof *pi);
    if (!pu || !pi)
        goto done;
    int64_t np = 0, n_excl = 0;
    /* X and A first: they also form the BPR exclusion list */
    if (in->exclude)
        for (int u = 0; u < in->exclude->n_rows && u < nu; u++)
            for (int64_t e = in->exclude->indptr[u]; e < in->exclude->indptr[u + 1]; e++)
                if (in->exclude->indices[e] >= 0 && in->exclude->indices[e] < ni)
                    pu[np] = u, pi[np++] = in->exclude->indices[e];
    for (int u = 0; u < nu; u++)
        for (int j = 0; j < k; j++)
            if (a[(size_t)u * k + j] >= 0)
                pu[np] = u, pi[np++] = a[(size_t)u * k + j];
    n_excl = np;
    if (ccd_csr_from_pairs(&excl, nu, ni, pu, pi, n_excl) != 0)
        goto done;
    for (int u = 0; u < blk->train.n_rows; u++)
        for (int64_t e = blk->train.indptr[u]; e < blk->train.indptr[u + 1]; e++)
            pu[np] = u, pi[np++] = blk->train.indices[e];
    for (int i = 0; i < ni; i++)
        for (int j = 0; j < k; j++)
            if (b[(size_t)i * k + j] >= 0)
                pu[np] = b[(size_t)i * k + j], pi[np++] = i;
    if (ccd_csr_from_pairs(&inelig, nu, ni, pu, pi, np) != 0 ||
        ccd_csr_transpose(&inelig_t, &inelig) != 0)
        goto done;
    ccd_rng draw;
    ccd_rng_init(&draw, o->seed, 0x554e); /* uninteresting draws */
    int capped = 0;
    for (int u = 0; u < nu; u++)
        capped += draw_bits(ui + (size_t)u * c.words_items, ni, inelig.indices + inelig.indptr[u],
                            inelig.indptr[u + 1] - inelig.indptr[u], in->n_unint_items, &draw,
                            scratch);
    for (int i = 0; i < ni; i++)
        capped += draw_bits(uu + (size_t)i * c.words_users, nu,
                            inelig_t.indices + inelig_t.indptr[i],
                            inelig_t.indptr[i + 1] - inelig_t.indptr[i], in->n_unint_users, &draw,
                            scratch);
    (void)capped; /* rows with fewer eligible entries than asked: all of them were drawn */
    c.interesting_items = a;
    c.interesting_users = b;
    c.unint_items = ui;
    c.unint_users = uu;

    ccd_train_hooks hooks = {.batch = kd_batch, .epoch = kd_epoch, .ctx = &c};
    rc = ccd_train_stage(m, blk, &excl, o, true, &hooks, NULL, NULL, best, best_epoch);
done:
    free(a), free(b), free(ui), free(uu), free(c.stamp), free(c.rows), free(scratch);
    free(pu), free(pi);
    ccd_csr_free(&inelig);
    ccd_csr_free(&inelig_t);
    ccd_csr_free(&excl);
    return rc;
}
