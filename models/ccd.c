/* ccd: the block step (algorithm section 10) and its stages. See ccd.h.
 *
 * A block step builds, once, what several stages share: the graphs of blocks k-1 and k, the
 * final embeddings of every model it scores, the top-40 lists that go into negative-exclusion
 * lists, and the LWC-KD relation graphs. Each stage is then a training run of ccd_train_stage
 * with its own hooks (replay, LWC-KD, ranking distillation). Scores are always produced in row
 * chunks through scorers (scorer.h, rank.h): no users x items matrix is ever held. */
#include "ccd.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adam.h"
#include "dense.h"
#include "distill.h"
#include "expand.h"
#include "lwckd.h"
#include "rank.h"
#include "replay.h"
#include "simgraph.h"
#include "train.h"

/* ------------------------------------------------------------------------------------------ */
/* configuration */

static ccd_stage_opts stage(float lr, int batch, int nns, int epochs)
{
    return (ccd_stage_opts){.lr = lr, .batch = batch, .nns = nns, .weight_decay = 1e-4f,
                            .epochs = epochs, .eval_every = 1, .patience = 0};
}

void ccd_config_yelp(ccd_config *c)
{
    memset(c, 0, sizeof *c);
    c->n_teachers = 5;
    for (int m = 0; m < 5; m++)
        c->teachers[m] = (ccd_teacher_spec){CCD_MODEL_LIGHTGCN, 128, (uint64_t)m};
    c->student_dim = 8;
    c->seed = 1;
    c->base = stage(1e-3f, 512, 2, 100);
    c->base.patience = 10;
    /* Distillation: up to 20 epochs, stopping after 3 evaluations without a better valid R@20.
     * The reference's 6 epochs (of which only 1 and 6 could be kept, 9.8) leave D_0 short of
     * its teachers; see docs/performance.md, "The CCD engine", for the measured difference. */
    c->kd = stage(5e-3f, 1024, 1, 20);
    c->kd.patience = 3;
    c->student = stage(1e-3f, 2048, 1, 6);
    c->teacher = stage(1e-3f, 2048, 1, 6);
    /* Teachers: stop after 2 evaluations without a better valid R@20 (an epoch of LWC-KD costs
     * far more than an evaluation). */
    c->teacher.patience = 2;
    c->kd_interesting = 40;
    c->kd_uninteresting_items = CCD_AUTO; /* ccd_rule_unint_items: 10,000 on Yelp */
    c->kd_uninteresting_users = CCD_AUTO; /* ccd_rule_unint_users: 11,500 on Yelp */
    c->batch_growth_pairs = 120000;       /* Yelp's block 0 (117,367 pairs) keeps its batches */
    c->batch_growth_nodes = 32768;        /* and Yelp's largest id space (27,211) too */
    c->kd_lambda = 0.01f;
    c->exclusion_topk = 40;
    static const ccd_student_block_opts s[5] = {
        {50, 1, 0, 1.0f, 0.0f}, {100, 3, 5, 1.0f, 0.1f}, {100, 5, 5, 0.9f, 0.0f},
        {50, 1, 5, 0.9f, 0.0f}, {50, 3, 1, 0.9f, 0.0f}};
    static const ccd_teacher_block_opts t[5] = {
        {100, 5, 0, 5}, {100, 1, 3, 5}, {50, 3, 5, 1}, {100, 1, 3, 1}, {100, 1, 5, 1}};
    c->n_student_blocks = c->n_teacher_blocks = 5;
    memcpy(c->student_blocks, s, sizeof s);
    memcpy(c->teacher_blocks, t, sizeof t);
    c->student_replay_lambda = 0.5f;
    c->student_anneal = 10.0f;
    c->replay_eps = 1e-4f;
    c->init_topk = 20;
    c->teacher_replay_lambda = 0.5f;
    c->teacher_anneal = 5.0f;
    c->lwc_tau = 5.0f;
    c->lwc_lambda = 0.01f;
    c->lwc_graph_degree = 10.0;
    c->eval_users = 32768; /* Yelp has about 12,000 users with test items: all of them */
    c->lwc_max_neighbours = 12288; /* Yelp has at most 12,248 old users: exact there */
    c->replay = c->use_s = c->use_p = c->use_cl = true;
    c->update_teachers = c->collaborative = c->distill = true;
    c->parallel_teachers = true;
    c->parallel_teachers_max_mb = 512; /* Yelp: 203 MB, side by side; 4x Yelp: one at a time */
    /* not the reference's fresh student per block: measured better on every Yelp figure past
     * block 1 (docs/performance.md); configs/yelp-reference.ini turns it off */
    c->kd_warm_start = true;
}

void ccd_config_finetune(ccd_config *c)
{
    c->replay = c->use_s = c->use_p = c->use_cl = false;
    c->update_teachers = c->collaborative = c->distill = false;
}

/* ------------------------------------------------------------------------------------------ */
/* state */

void ccd_state_init(ccd_state *st)
{
    memset(st, 0, sizeof *st);
    st->block = -1;
}

void ccd_state_free(ccd_state *st)
{
    for (int m = 0; m < CCD_MAX_TEACHERS; m++)
        free(st->teacher[m]);
    free(st->distilled);
    free(st->student);
    free(st->proxy_s);
    free(st->proxy_p);
    ccd_csr_free(&st->train);
    free(st->active_users);
    free(st->active_items);
    free(st->ensemble_top);
    ccd_state_init(st);
}

void ccd_block_report_free(ccd_block_report *r)
{
    free(r->student);
    free(r->ensemble);
    free(r->distilled);
    memset(r, 0, sizeof *r);
}

/* ------------------------------------------------------------------------------------------ */
/* shared pieces */

typedef struct {
    ccd_log_fn fn;
    void *ctx;
} logger;

static void say(const logger *lg, const char *fmt, ...)
{
    if (!lg->fn)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    lg->fn(lg->ctx, msg);
}

/* A model ready to score: final embeddings of a layer-0 table on a graph. */
typedef struct {
    float *final; /* (n_users + n_items) x dim */
    float *layer1;/* (n_users + n_items) x dim, only when asked for */
    ccd_scorer scorer;
} scored_model;

static int score_model(scored_model *sm, ccd_model_type type, const float *emb0, int n_users,
                       int n_items, int dim, const ccd_csr *graph, int keep_layer1)
{
    memset(sm, 0, sizeof *sm);
    size_t n = (size_t)(n_users + n_items) * dim;
    sm->final = ccd_floats(n);
    sm->layer1 = keep_layer1 ? ccd_floats(n) : NULL;
    if (!sm->final || (keep_layer1 && !sm->layer1) ||
        ccd_final_embeddings(type, emb0, type == CCD_MODEL_MF ? NULL : graph, n_users + n_items,
                             dim, sm->final, sm->layer1) != 0) {
        free(sm->final);
        free(sm->layer1);
        memset(sm, 0, sizeof *sm); /* callers free it again on their error paths */
        return -1;
    }
    sm->scorer = ccd_scorer_embeddings(sm->final, sm->final + (size_t)n_users * dim, n_users,
                                       n_items, dim);
    return 0;
}

static void scored_free(scored_model *sm)
{
    free(sm->final);
    free(sm->layer1);
    memset(sm, 0, sizeof *sm);
}

/* Pairs collected for an exclusion list. */
typedef struct {
    int *u, *i;
    int64_t n, cap;
} pairs;

static int pairs_add_topk(pairs *p, const int *topk, int rows, int k)
{
    int64_t need = p->n + (int64_t)rows * k;
    if (need > p->cap) {
        int64_t cap = need * 2;
        int *u = realloc(p->u, (size_t)cap * sizeof *u);
        if (!u)
            return -1;
        p->u = u;
        int *i = realloc(p->i, (size_t)cap * sizeof *i);
        if (!i)
            return -1;
        p->i = i;
        p->cap = cap;
    }
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < k; j++)
            if (topk[(size_t)r * k + j] >= 0) {
                p->u[p->n] = r;
                p->i[p->n++] = topk[(size_t)r * k + j];
            }
    return 0;
}

static void pairs_free(pairs *p)
{
    free(p->u);
    free(p->i);
    memset(p, 0, sizeof *p);
}

/* The k best items per user of a scorer under a filter: (n_users x k), NULL on failure. */
static int *topk_of(const ccd_scorer *s, const ccd_csr *f1, const ccd_csr *f2, int k)
{
    int *out = malloc((size_t)s->n_users * k * sizeof *out);
    ccd_filter f = {.n_sets = 0};
    if (f1)
        f.sets[f.n_sets++] = f1;
    if (f2)
        f.sets[f.n_sets++] = f2;
    if (out && ccd_topk_items(s, &f, k, out) != 0) {
        free(out);
        return NULL;
    }
    return out;
}

/* Append a scorer's top-k lists (under up to two filters) to an exclusion list. */
static int add_topk(pairs *x, const ccd_scorer *s, const ccd_csr *f1, const ccd_csr *f2, int k)
{
    int *top = topk_of(s, f1, f2, k);
    int rc = top ? pairs_add_topk(x, top, s->n_users, k) : -1;
    free(top);
    return rc;
}

int ccd_rule_unint_items(int n_items)
{
    int n = (int)(0.925 * n_items);
    return n < 10000 ? n : 10000;
}

int ccd_rule_unint_users(int n_users)
{
    int n = (int)(0.94 * n_users);
    return n < 11500 ? n : 11500;
}

double ccd_batch_growth(const ccd_config *c, int64_t train_pairs, int64_t nodes)
{
    double g = 1.0;
    if (c->batch_growth_pairs > 0 && train_pairs > c->batch_growth_pairs)
        g = (double)train_pairs / (double)c->batch_growth_pairs;
    /* A step costs the whole model (full propagation, dense Adam) and the replay sets grow with
     * the users, so the id space bounds the steps too: an incremental block on a large model
     * would otherwise take as many whole-model steps as its pairs or replay pairs ask for. */
    if (c->batch_growth_nodes > 0 && nodes > c->batch_growth_nodes &&
        (double)nodes / (double)c->batch_growth_nodes > g)
        g = (double)nodes / (double)c->batch_growth_nodes;
    return g;
}

static float *copy_floats(const float *src, size_t n)
{
    float *p = ccd_floats(n);
    if (p)
        memcpy(p, src, n * sizeof *p);
    return p;
}

float *ccd_proxy_merge(const float *old, int old_users, int old_items, const float *dk,
                          int n_users, int n_items, int dim, float w)
{
    float *p = copy_floats(dk, (size_t)(n_users + n_items) * dim);
    if (!p || !old)
        return p;
    for (int u = 0; u < old_users; u++)
        for (int c = 0; c < dim; c++)
            p[(size_t)u * dim + c] = w * old[(size_t)u * dim + c] + (1.0f - w) * p[(size_t)u * dim + c];
    for (int i = 0; i < old_items; i++) {
        const float *o = old + (size_t)(old_users + i) * dim;
        float *q = p + (size_t)(n_users + i) * dim;
        for (int c = 0; c < dim; c++)
            q[c] = w * o[c] + (1.0f - w) * q[c];
    }
    return p;
}

/* ------------------------------------------------------------------------------------------ */
/* replay and LWC-KD hooks */

typedef struct {
    const ccd_replay_set *set;
    int batch;
    float lambda, anneal;
    ccd_rng rng;
} replay_ctx;

static double replay_epoch_hook(void *vctx, ccd_recmodel *m, ccd_adam *adam, int epoch)
{
    replay_ctx *c = vctx;
    float lambda = c->lambda * expf(-(float)epoch / c->anneal);
    return ccd_replay_epoch(m, adam, c->set, c->batch, lambda, &c->rng);
}

/* LWC-KD side data of one block (shared by all teachers) and one teacher's frozen tables. */
typedef struct {
    int n_bu, n_bi;
    const int *bu, *bi;   /* sorted old users / items (block k-1's train keys and item list) */
    int *cu, *ci;         /* (U_{k-1}), (I_{k-1}): compact index or -1 */
    ccd_csr b, bt;        /* (n_bu x n_bi) R_{k-1} in compact coordinates, and its transpose */
    ccd_csr uu, ii;       /* (n_bu x n_bu), (n_bi x n_bi) cosine threshold graphs */
} lwc_data;

typedef struct {
    const lwc_data *data;
    int n_layers;            /* 2 for LightGCN (layers 0 and 1 used), 1 for MF */
    int old_users, old_items;
    const float *old[2];     /* frozen layer-l tables of the old model ((old_users + old_items) x d) */
    float tau, scale[2];
    int max_neighbours;      /* lwc_max_neighbours: sampled softmax past this many (0: never) */
    uint64_t seed, stream, calls; /* the sampled softmax's RNG: stream + calls, one per term */
    /* scratch */
    float *targets;          /* (max(n_bu, n_bi) x d) */
    float *weights;          /* (batch) */
    int *rel_rows;           /* (batch) */
    int *count_u, *count_i;  /* (n_bu), (n_bi) multiplicities in the batch */
    float *pres_u, *pres_i;  /* (n_bu x d), (n_bi x d) present layer-l embeddings */
    float *dpres_u, *dpres_i;/* same shapes: their gradients */
    float *dlayer1;          /* (nodes x d): gradient w.r.t. layer 1, zero outside old entities */
    float *tmp;              /* (nodes x d) */
} lwc_ctx;

/* One of the four terms: targets are the distinct batch entities ids[0..n) (compact ids into the
 * old table side `side`), their counts, against neighbours pres (m x d). */
static double lwc_one(lwc_ctx *c, int d, const float *old_side, const int *compact_ids,
                      const int *raw_ids, const int *counts, int n, double n_count,
                      const float *pres, int m, const ccd_csr *rel, float scale, float *dpres)
{
    for (int t = 0; t < n; t++) {
        memcpy(c->targets + (size_t)t * d, old_side + (size_t)raw_ids[t] * d, (size_t)d * sizeof(float));
        c->weights[t] = (float)counts[t];
        c->rel_rows[t] = compact_ids[t];
    }
    return ccd_lwc_term_sampled(c->targets, c->weights, n, n_count, pres, m, d, rel, c->rel_rows,
                                c->tau, scale, dpres, c->max_neighbours, c->seed,
                                c->stream + c->calls++);
}

static double lwc_batch_hook(void *vctx, ccd_recmodel *m, const int *user, const int *pos,
                             const int *neg, int b)
{
    (void)neg;
    lwc_ctx *c = vctx;
    const lwc_data *ld = c->data;
    const int d = m->dim;
    /* Distinct old users / positive items of the batch with their multiplicities. */
    int *uid = malloc((size_t)b * sizeof *uid), *ucomp = malloc((size_t)b * sizeof *ucomp);
    int *ucnt = malloc((size_t)b * sizeof *ucnt);
    int *iid = malloc((size_t)b * sizeof *iid), *icomp = malloc((size_t)b * sizeof *icomp);
    int *icnt = malloc((size_t)b * sizeof *icnt);
    if (!uid || !ucomp || !ucnt || !iid || !icomp || !icnt) {
        free(uid), free(ucomp), free(ucnt), free(iid), free(icomp), free(icnt);
        return -1.0;
    }
    int nu = 0, ni = 0;
    double nu_count = 0, ni_count = 0;
    for (int k = 0; k < b; k++) {
        int u = user[k], i = pos[k];
        if (u < c->old_users && ld->cu[u] >= 0) {
            int cu = ld->cu[u];
            if (c->count_u[cu]++ == 0) {
                uid[nu] = u;
                ucomp[nu++] = cu;
            }
            nu_count++;
        }
        if (i < c->old_items && ld->ci[i] >= 0) {
            int ci = ld->ci[i];
            if (c->count_i[ci]++ == 0) {
                iid[ni] = i;
                icomp[ni++] = ci;
            }
            ni_count++;
        }
    }
    for (int t = 0; t < nu; t++)
        ucnt[t] = c->count_u[ucomp[t]], c->count_u[ucomp[t]] = 0;
    for (int t = 0; t < ni; t++)
        icnt[t] = c->count_i[icomp[t]], c->count_i[icomp[t]] = 0;

    double loss = 0.0;
    const size_t nodes = (size_t)ccd_recmodel_nodes(m);
    for (int l = 0; l < c->n_layers && loss >= 0.0; l++) {
        const float *layer = l == 0 ? m->emb0 : m->layer1; /* present layer l, (nodes x d) */
        for (int t = 0; t < ld->n_bu; t++)
            memcpy(c->pres_u + (size_t)t * d, layer + (size_t)ld->bu[t] * d, (size_t)d * sizeof(float));
        for (int t = 0; t < ld->n_bi; t++)
            memcpy(c->pres_i + (size_t)t * d, layer + (size_t)(m->n_users + ld->bi[t]) * d,
                   (size_t)d * sizeof(float));
        memset(c->dpres_u, 0, (size_t)ld->n_bu * d * sizeof(float));
        memset(c->dpres_i, 0, (size_t)ld->n_bi * d * sizeof(float));
        const float *old_u = c->old[l], *old_i = c->old[l] + (size_t)c->old_users * d;
        float s = c->scale[l];
        double t = 0.0;
        if (nu) {
            t += lwc_one(c, d, old_u, ucomp, uid, ucnt, nu, nu_count, c->pres_i, ld->n_bi, &ld->b, s, c->dpres_i);
            t += lwc_one(c, d, old_u, ucomp, uid, ucnt, nu, nu_count, c->pres_u, ld->n_bu, &ld->uu, s, c->dpres_u);
        }
        if (ni) {
            t += lwc_one(c, d, old_i, icomp, iid, icnt, ni, ni_count, c->pres_u, ld->n_bu, &ld->bt, s, c->dpres_u);
            t += lwc_one(c, d, old_i, icomp, iid, icnt, ni, ni_count, c->pres_i, ld->n_bi, &ld->ii, s, c->dpres_i);
        }
        if (!(t == t)) {
            loss = -1.0;
            break;
        }
        loss += t;
        /* Back to E0: layer 0 directly; layer 1 = A_hat E0, so through A_hat (symmetric). */
        float *dst = l == 0 ? m->grad : c->dlayer1;
        if (l == 1)
            memset(c->dlayer1, 0, nodes * d * sizeof(float));
        for (int r = 0; r < ld->n_bu; r++) {
            float *g = dst + (size_t)ld->bu[r] * d;
            for (int q = 0; q < d; q++)
                g[q] += c->dpres_u[(size_t)r * d + q];
        }
        for (int r = 0; r < ld->n_bi; r++) {
            float *g = dst + (size_t)(m->n_users + ld->bi[r]) * d;
            for (int q = 0; q < d; q++)
                g[q] += c->dpres_i[(size_t)r * d + q];
        }
        if (l == 1) {
            ccd_spmm(m->graph, c->dlayer1, c->tmp, d);
            for (size_t q = 0; q < nodes * d; q++)
                m->grad[q] += c->tmp[q];
        }
    }
    free(uid), free(ucomp), free(ucnt), free(iid), free(icomp), free(icnt);
    return loss;
}

typedef struct {
    lwc_ctx *lwc;
    replay_ctx *replay;
} teacher_hooks;

static double teacher_batch(void *vctx, ccd_recmodel *m, const int *u, const int *p, const int *n, int b)
{
    teacher_hooks *h = vctx;
    return h->lwc ? lwc_batch_hook(h->lwc, m, u, p, n, b) : 0.0;
}

static double teacher_epoch(void *vctx, ccd_recmodel *m, ccd_adam *adam, int epoch)
{
    teacher_hooks *h = vctx;
    return h->replay ? replay_epoch_hook(h->replay, m, adam, epoch) : 0.0;
}

static int lwc_data_build(lwc_data *ld, const ccd_state *st, double degree)
{
    memset(ld, 0, sizeof *ld);
    ld->bu = st->active_users;
    ld->n_bu = st->n_active_users;
    ld->bi = st->active_items;
    ld->n_bi = st->n_active_items;
    ld->cu = malloc((size_t)st->n_users * sizeof *ld->cu);
    ld->ci = malloc((size_t)st->n_items * sizeof *ld->ci);
    int64_t nnz = st->train.nnz;
    int *pu = malloc((size_t)(nnz > 0 ? nnz : 1) * sizeof *pu);
    int *pi = malloc((size_t)(nnz > 0 ? nnz : 1) * sizeof *pi);
    int rc = -1;
    if (!ld->cu || !ld->ci || !pu || !pi)
        goto done;
    for (int u = 0; u < st->n_users; u++)
        ld->cu[u] = -1;
    for (int i = 0; i < st->n_items; i++)
        ld->ci[i] = -1;
    for (int t = 0; t < ld->n_bu; t++)
        ld->cu[ld->bu[t]] = t;
    for (int t = 0; t < ld->n_bi; t++)
        ld->ci[ld->bi[t]] = t;
    int64_t n = 0;
    for (int u = 0; u < st->train.n_rows; u++)
        for (int64_t e = st->train.indptr[u]; e < st->train.indptr[u + 1]; e++) {
            int i = st->train.indices[e];
            if (ld->cu[u] >= 0 && ld->ci[i] >= 0) {
                pu[n] = ld->cu[u];
                pi[n++] = ld->ci[i];
            }
        }
    double tu, ti;
    if (ccd_csr_from_pairs(&ld->b, ld->n_bu, ld->n_bi, pu, pi, n) != 0 ||
        ccd_csr_transpose(&ld->bt, &ld->b) != 0 ||
        ccd_cosine_graph(&ld->b, degree, &ld->uu, &tu) != 0 ||
        ccd_cosine_graph(&ld->bt, degree, &ld->ii, &ti) != 0)
        goto done;
    rc = 0;
done:
    free(pu);
    free(pi);
    return rc;
}

static void lwc_data_free(lwc_data *ld)
{
    free(ld->cu);
    free(ld->ci);
    ccd_csr_free(&ld->b);
    ccd_csr_free(&ld->bt);
    ccd_csr_free(&ld->uu);
    ccd_csr_free(&ld->ii);
}

/* Whether the teachers of a block train side by side: parallel_teachers, and their training
 * buffers together (9 tables of nodes x dim each: parameters, gradient, two Adam moments, the
 * best epoch's copy, layer 1, final embeddings, their gradient and scratch) fit in
 * parallel_teachers_max_mb. Side by side saves little once the sparse products and Adam steps
 * dominate (they use every core either way), while it doubles the biggest term of the peak. */
static bool teachers_side_by_side(const ccd_config *cfg, const ccd_state *st, int nodes)
{
    if (!cfg->parallel_teachers)
        return false;
    if (cfg->parallel_teachers_max_mb <= 0)
        return true;
    int dmax = 0;
    for (int m = 0; m < st->n_teachers; m++)
        dmax = st->teacher_spec[m].dim > dmax ? st->teacher_spec[m].dim : dmax;
    double mb = 9.0 * nodes * dmax * sizeof(float) * ccd_threads() / (1024.0 * 1024.0);
    return mb <= cfg->parallel_teachers_max_mb;
}

/* Teachers are independent within a block. Side by side, one thread each (BLAS single-threaded
 * inside, libccd's own loops then run serially as nested regions), both cores stay busy through
 * the serial parts of every mini-batch, which a single multi-threaded teacher leaves idle. When
 * the teachers do not divide evenly among the threads (5 on 2 cores), the last n % threads run
 * one after the other with every thread, instead of alone on one core while the others idle:
 * with 2 threads that is the whole tail at twice the speed. Which teacher gets how many threads
 * depends only on n and the thread count, so results stay reproducible. */
static int for_each_teacher(int n, bool parallel, int (*fn)(void *ctx, int m), void *ctx)
{
    int threads = ccd_threads();
    int n_side = parallel && threads > 1 ? n - n % threads : 0;
    if (n_side < 2)
        n_side = 0;
    int failed = 0;
    if (n_side > 0) {
        ccd_set_blas_threads(1);
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
        for (int m = 0; m < n_side; m++)
            if (fn(ctx, m) != 0) {
#pragma omp atomic write
                failed = 1;
            }
        ccd_set_blas_threads(threads);
    }
    for (int m = n_side; m < n && !failed; m++)
        if (fn(ctx, m) != 0)
            failed = 1;
    return failed ? -1 : 0;
}

/* ------------------------------------------------------------------------------------------ */
/* the block step */

/* Everything one block step shares between its stages. */
typedef struct {
    const ccd_config *cfg;
    const ccd_block *blk;
    int k, nu, ni;           /* U_k, I_k */
    int pu, pi;              /* U_{k-1}, I_{k-1} */
    ccd_csr g_prev, g_cur;   /* LightGCN graphs of R_{k-1} and R_k */
    ccd_csr filter_both;     /* Tr_{k-1} u Tr_k over (U_{k-1} x I_{k-1}): the F_S/F_P filter */
    int *e_prev_top;         /* (U_{k-1} x 40) E_{k-1}'s top-40, Tr_{k-1} filtered */
    float *proxy_s, *proxy_p;/* S_{k-1}, P_{k-1} layer-0 tables */
    scored_model s_proxy, p_proxy; /* on R_{k-1} */
    int *s_top, *p_top;      /* (U_{k-1} x 40) top-40 of F_S / F_P (filtered) */
    float *student;          /* CL_k */
    scored_model cl;         /* CL_k on R_k */
    logger lg;
    const atomic_int *stop;  /* hooks->stop, polled by every training loop */
    double growth;           /* ccd_batch_growth of the block: every batch is this much larger */
    ccd_block_report *rep;   /* its seconds_eval collects the stages' evaluation time */
} block_ctx;

static int grown(int batch, double growth) { return (int)ceil(batch * growth); }

static ccd_train_opts train_opts(block_ctx *b, const ccd_stage_opts *s, uint64_t seed,
                                 ccd_stream_kind sampler)
{
    return (ccd_train_opts){.stop = b->stop,
                            .eval_seconds = &b->rep->seconds_eval,
                            .lr = s->lr,
                            .batch = grown(s->batch, b->growth),
                            .nns = s->nns,
                            .weight_decay = s->weight_decay,
                            .max_epochs = s->epochs,
                            .eval_every = s->eval_every,
                            .patience = s->patience,
                            .seed = seed,
                            .stream = ccd_stream(sampler, b->k, 0)};
}

/* The fast path: hand CL_k's propagated embeddings to the caller before the teacher side. */
static int announce_student(const block_ctx *b, const ccd_block_hooks *hooks, int dim)
{
    if (!hooks || !hooks->student_ready)
        return 0;
    ccd_block_metrics m;
    if (ccd_evaluate_scorer(&b->cl.scorer, b->blk, 1, &m) != 0)
        return -1;
    return hooks->student_ready(hooks->ctx, b->cl.final, b->nu, b->ni, dim, &m);
}

/* Expand a layer-0 table from the previous id space to the current one (section 5.4). */
static float *expand(const block_ctx *b, const float *old, int dim)
{
    float *t = ccd_floats((size_t)(b->nu + b->ni) * dim);
    if (t && ccd_expand_init(old, b->pu, b->pi, dim, &b->blk->train, b->nu, b->ni,
                             b->cfg->init_topk, t) != 0) {
        free(t);
        return NULL;
    }
    return t;
}

static const ccd_student_block_opts *student_opts(const ccd_config *c, int k)
{
    int idx = k - 1 < c->n_student_blocks ? k - 1 : c->n_student_blocks - 1;
    return &c->student_blocks[idx < 0 ? 0 : idx];
}

static const ccd_teacher_block_opts *teacher_opts(const ccd_config *c, int k)
{
    int idx = k - 1 < c->n_teacher_blocks ? k - 1 : c->n_teacher_blocks - 1;
    return &c->teacher_blocks[idx < 0 ? 0 : idx];
}

/* Student update S_update(k) (section 5): proxies, exclusion, replay, expansion, training. */
static int student_update(block_ctx *b, ccd_state *st, int *best_epoch)
{
    const ccd_config *cfg = b->cfg;
    const ccd_student_block_opts *so = student_opts(cfg, b->k);
    const int ds = st->student_dim, K = cfg->exclusion_topk;
    /* The model the student continues from: D_{k-1} as in the reference, or CL_{k-1} (when not
     * distilling, or when student_continues). The proxies are EMAs of the distilled students, so
     * that the teachers' knowledge reaches CL_k through them in both cases. */
    const float *start = cfg->distill && !cfg->student_continues ? st->distilled : st->student;
    const float *base = cfg->distill ? st->distilled : st->student;
    scored_model w = {0};
    pairs x = {0};
    ccd_csr excl = {0};
    ccd_replay_set rs = {0}, part = {0};
    ccd_recmodel m = {0};
    int rc = -1;
    if (score_model(&w, CCD_MODEL_LIGHTGCN, start, b->pu, b->pi, ds, &b->g_prev, 0) != 0)
        goto done;

    /* Proxies S_{k-1}, P_{k-1}: copies of D_0 at k = 1, EMA merges later. */
    if (cfg->use_s || cfg->use_p) {
        if (b->k == 1) {
            b->proxy_s = copy_floats(base, (size_t)(b->pu + b->pi) * ds);
            b->proxy_p = copy_floats(base, (size_t)(b->pu + b->pi) * ds);
        } else {
            b->proxy_s = ccd_proxy_merge(st->proxy_s, st->proxy_users, st->proxy_items, base, b->pu,
                                     b->pi, ds, so->sw);
            b->proxy_p = ccd_proxy_merge(st->proxy_p, st->proxy_users, st->proxy_items, base, b->pu,
                                     b->pi, ds, so->pw);
        }
        if (!b->proxy_s || !b->proxy_p ||
            score_model(&b->s_proxy, CCD_MODEL_LIGHTGCN, b->proxy_s, b->pu, b->pi, ds, &b->g_prev, 0) != 0 ||
            score_model(&b->p_proxy, CCD_MODEL_LIGHTGCN, b->proxy_p, b->pu, b->pi, ds, &b->g_prev, 0) != 0)
            goto done;
        b->s_top = topk_of(&b->s_proxy.scorer, &b->filter_both, NULL, K);
        b->p_top = b->k == 1 ? NULL : topk_of(&b->p_proxy.scorer, &b->filter_both, NULL, K);
        if (!b->s_top || (b->k > 1 && !b->p_top))
            goto done;
    }

    /* Exclusion (section 5.1): E_{k-1} (filtered) and D_{k-1}; S and P (unfiltered) at k >= 2. */
    if (cfg->distill) {
        if (pairs_add_topk(&x, b->e_prev_top, b->pu, K) != 0 || add_topk(&x, &w.scorer, NULL, NULL, K) != 0)
            goto done;
        if (b->k >= 2 && (cfg->use_s || cfg->use_p) &&
            (add_topk(&x, &b->s_proxy.scorer, NULL, NULL, K) != 0 ||
             add_topk(&x, &b->p_proxy.scorer, NULL, NULL, K) != 0))
            goto done;
    }
    if (ccd_csr_from_pairs(&excl, b->pu, b->pi, x.u, x.i, x.n) != 0)
        goto done;

    /* Replay set (section 5.3) from S and/or P against W = the starting model. */
    ccd_rng rng;
    ccd_rng_init(&rng, cfg->seed, ccd_stream(CCD_STREAM_STUDENT_REPLAY, b->k, 0));
    ccd_filter f = {.sets = {&b->filter_both}, .n_sets = 1};
    if (cfg->replay && (cfg->use_s || cfg->use_p)) {
        int use_s = cfg->use_s, use_p = cfg->use_p && (b->k >= 2 || !cfg->use_s);
        if (use_s && so->ss > 0 &&
            ccd_replay_sample(&b->s_proxy.scorer, &f, &w.scorer, so->ab, so->ss, cfg->replay_eps, &rng, &rs) != 0)
            goto done;
        if (use_p && so->ps > 0) {
            if (ccd_replay_sample(&b->p_proxy.scorer, &f, &w.scorer, so->ab, so->ps, cfg->replay_eps, &rng, &part) != 0 ||
                ccd_replay_merge(&rs, &part) != 0)
                goto done;
        }
    }

    /* Expand and train CL_k. */
    ccd_rng init;
    ccd_rng_init(&init, cfg->seed, ccd_stream(CCD_STREAM_STUDENT_INIT, b->k, 0));
    if (ccd_recmodel_init(&m, CCD_MODEL_LIGHTGCN, b->nu, b->ni, ds, &b->g_cur, &init) != 0)
        goto done;
    float *expanded = expand(b, start, ds);
    if (!expanded)
        goto done;
    memcpy(m.emb0, expanded, (size_t)(b->nu + b->ni) * ds * sizeof(float));
    free(expanded);
    replay_ctx rc_ctx = {.set = &rs,
                         .batch = grown(cfg->student.batch, b->growth),
                         .lambda = cfg->student_replay_lambda,
                         .anneal = cfg->student_anneal};
    ccd_rng_init(&rc_ctx.rng, cfg->seed, ccd_stream(CCD_STREAM_STUDENT_SHUFFLE, b->k, 0));
    ccd_train_hooks hooks = {.epoch = rs.n ? replay_epoch_hook : NULL, .ctx = &rc_ctx};
    ccd_train_opts o = train_opts(b, &cfg->student, cfg->seed, CCD_STREAM_STUDENT_SAMPLER);
    say(&b->lg, "student update: %lld replay pairs, %lld exclusions", (long long)rs.n, (long long)excl.nnz);
    if (ccd_train_stage(&m, b->blk, &excl, &o, false, &hooks, NULL, NULL, NULL, best_epoch) != 0)
        goto done;
    b->student = copy_floats(m.emb0, (size_t)(b->nu + b->ni) * ds);
    if (!b->student || score_model(&b->cl, CCD_MODEL_LIGHTGCN, b->student, b->nu, b->ni, ds, &b->g_cur, 0) != 0)
        goto done;
    rc = 0;
done:
    scored_free(&w);
    pairs_free(&x);
    ccd_csr_free(&excl);
    ccd_replay_free(&rs);
    ccd_replay_free(&part);
    ccd_recmodel_free(&m);
    return rc;
}

/* Teacher update T_update(k, m) (section 6). Writes the new layer-0 table to *out. */
static int teacher_update(block_ctx *b, ccd_state *st, int t, const lwc_data *ld, float **out)
{
    const ccd_config *cfg = b->cfg;
    const ccd_teacher_block_opts *to = teacher_opts(cfg, b->k);
    const ccd_teacher_spec *spec = &st->teacher_spec[t];
    const int d = spec->dim, K = cfg->exclusion_topk;
    const int collab = cfg->collaborative;
    scored_model old = {0}, t0 = {0};
    pairs x = {0};
    ccd_csr excl = {0};
    ccd_replay_set rs = {0}, part = {0};
    ccd_recmodel m = {0};
    lwc_ctx lc;
    memset(&lc, 0, sizeof lc);
    int rc = -1;

    /* Exclusion (section 6.1). */
    if (pairs_add_topk(&x, b->e_prev_top, b->pu, K) != 0)
        goto done;
    if (collab && cfg->use_s && b->s_top && pairs_add_topk(&x, b->s_top, b->pu, K) != 0)
        goto done;
    if (collab && cfg->use_p && b->k >= 2 && b->p_top && pairs_add_topk(&x, b->p_top, b->pu, K) != 0)
        goto done;
    if (collab && cfg->use_cl && add_topk(&x, &b->cl.scorer, NULL, NULL, K) != 0)
        goto done;
    if (ccd_csr_from_pairs(&excl, b->nu, b->ni, x.u, x.i, x.n) != 0)
        goto done;

    /* Frozen layer-wise tables of T_{m,k-1} on R_{k-1}, then expansion to block k. */
    if (score_model(&old, spec->type, st->teacher[t], b->pu, b->pi, d, &b->g_prev, 1) != 0)
        goto done;
    ccd_rng init;
    ccd_rng_init(&init, spec->seed, ccd_stream(CCD_STREAM_TEACHER_INIT, b->k, 0));
    if (ccd_recmodel_init(&m, spec->type, b->nu, b->ni, d,
                          spec->type == CCD_MODEL_LIGHTGCN ? &b->g_cur : NULL, &init) != 0)
        goto done;
    m.layer1_everywhere = true; /* LWC-KD reads the present layer 1 of every old user and item */
    float *expanded = expand(b, st->teacher[t], d);
    if (!expanded)
        goto done;
    memcpy(m.emb0, expanded, (size_t)(b->nu + b->ni) * d * sizeof(float));
    free(expanded);

    /* Replay from the student side (section 6.5), ranked against the expanded teacher T_0. */
    ccd_rng rng;
    ccd_rng_init(&rng, spec->seed, ccd_stream(CCD_STREAM_TEACHER_REPLAY, b->k, 0));
    if (collab && cfg->replay) {
        if (score_model(&t0, spec->type, m.emb0, b->nu, b->ni, d, &b->g_cur, 0) != 0)
            goto done;
        ccd_filter f = {.sets = {&b->filter_both}, .n_sets = 1};
        struct { int on; const ccd_scorer *src; const ccd_filter *flt; int n; } src[3] = {
            {cfg->use_s && b->proxy_s != NULL, &b->s_proxy.scorer, &f, to->ss},
            {cfg->use_p && b->k >= 2 && b->proxy_p != NULL, &b->p_proxy.scorer, &f, to->ps},
            {cfg->use_cl, &b->cl.scorer, NULL, to->cs}};
        for (int s = 0; s < 3; s++) {
            if (!src[s].on || src[s].n <= 0)
                continue;
            if (ccd_replay_sample(src[s].src, src[s].flt, &t0.scorer, to->ab, src[s].n, cfg->replay_eps,
                                  &rng, &part) != 0 ||
                ccd_replay_merge(&rs, &part) != 0)
                goto done;
            ccd_replay_free(&part);
        }
        scored_free(&t0);
    }

    /* LWC-KD (section 6.3): layers 0 and 1 for LightGCN, weight 1/2 each; layer 0 for MF. */
    const size_t nodes = (size_t)(b->nu + b->ni);
    lc.data = ld;
    lc.n_layers = spec->type == CCD_MODEL_LIGHTGCN ? 2 : 1;
    lc.old_users = b->pu;
    lc.old_items = b->pi;
    lc.old[0] = st->teacher[t];
    lc.old[1] = old.layer1;
    lc.tau = cfg->lwc_tau;
    lc.scale[0] = lc.scale[1] = cfg->lwc_lambda * (lc.n_layers == 2 ? 0.5f + 1e-8f : 1.0f);
    lc.max_neighbours = cfg->lwc_max_neighbours;
    lc.seed = spec->seed;
    lc.stream = ccd_stream(CCD_STREAM_LWC, b->k, 0);
    int nmax = ld->n_bu > ld->n_bi ? ld->n_bu : ld->n_bi;
    lc.targets = ccd_floats((size_t)nmax * d);
    const int tbatch = grown(cfg->teacher.batch, b->growth);
    lc.weights = malloc((size_t)tbatch * sizeof *lc.weights);
    lc.rel_rows = malloc((size_t)tbatch * sizeof *lc.rel_rows);
    lc.count_u = calloc((size_t)ld->n_bu + 1, sizeof *lc.count_u);
    lc.count_i = calloc((size_t)ld->n_bi + 1, sizeof *lc.count_i);
    lc.pres_u = ccd_floats((size_t)ld->n_bu * d);
    lc.pres_i = ccd_floats((size_t)ld->n_bi * d);
    lc.dpres_u = ccd_floats((size_t)ld->n_bu * d);
    lc.dpres_i = ccd_floats((size_t)ld->n_bi * d);
    lc.dlayer1 = ccd_floats(nodes * d);
    lc.tmp = ccd_floats(nodes * d);
    if (!lc.targets || !lc.weights || !lc.rel_rows || !lc.count_u || !lc.count_i || !lc.pres_u ||
        !lc.pres_i || !lc.dpres_u || !lc.dpres_i || !lc.dlayer1 || !lc.tmp)
        goto done;
    replay_ctx rctx = {.set = &rs, .batch = tbatch, .lambda = cfg->teacher_replay_lambda,
                       .anneal = cfg->teacher_anneal};
    ccd_rng_init(&rctx.rng, spec->seed, ccd_stream(CCD_STREAM_TEACHER_SHUFFLE, b->k, 0));
    teacher_hooks th = {.lwc = &lc, .replay = rs.n ? &rctx : NULL};
    ccd_train_hooks hooks = {.batch = teacher_batch, .epoch = teacher_epoch, .ctx = &th};
    ccd_train_opts o = train_opts(b, &cfg->teacher, spec->seed, CCD_STREAM_TEACHER_SAMPLER);
    int best_epoch = 0;
    ccd_block_metrics best;
    if (ccd_train_stage(&m, b->blk, &excl, &o, false, &hooks, NULL, NULL, &best, &best_epoch) != 0)
        goto done;
    say(&b->lg, "teacher %d updated: %lld replay pairs, epoch %d selected, valid R@20 %.4f", t,
        (long long)rs.n, best_epoch, best.valid.recall[CCD_K20]);
    *out = copy_floats(m.emb0, nodes * d);
    rc = *out ? 0 : -1;
done:
    scored_free(&old);
    scored_free(&t0);
    pairs_free(&x);
    ccd_csr_free(&excl);
    ccd_replay_free(&rs);
    ccd_replay_free(&part);
    ccd_recmodel_free(&m);
    free(lc.targets), free(lc.weights), free(lc.rel_rows), free(lc.count_u), free(lc.count_i);
    free(lc.pres_u), free(lc.pres_i), free(lc.dpres_u), free(lc.dpres_i), free(lc.dlayer1);
    free(lc.tmp);
    return rc;
}

typedef struct {
    block_ctx *b;
    ccd_state *st;
    const lwc_data *ld;
    float **out;
} update_ctx;

static int teacher_update_one(void *vctx, int m)
{
    update_ctx *c = vctx;
    return teacher_update(c->b, c->st, m, c->ld, &c->out[m]);
}

/* Scorers of the teachers' final embeddings on a graph, and the ensemble over them. */
typedef struct {
    scored_model t[CCD_MAX_TEACHERS];
    ccd_scorer scorers[CCD_MAX_TEACHERS];
    ccd_ensemble ens;
    ccd_scorer scorer;
    int n;
} ensemble_model;

static int ensemble_build(ensemble_model *e, const ccd_state *st, float *const *tables, int nu,
                          int ni, const ccd_csr *graph)
{
    memset(e, 0, sizeof *e);
    for (int m = 0; m < st->n_teachers; m++) {
        if (score_model(&e->t[m], st->teacher_spec[m].type, tables[m], nu, ni,
                        st->teacher_spec[m].dim, graph, 0) != 0)
            return -1;
        e->scorers[m] = e->t[m].scorer;
        e->n = m + 1;
    }
    e->ens = (ccd_ensemble){.teachers = e->scorers, .n_teachers = e->n, .n_users = nu, .n_items = ni};
    e->scorer = ccd_scorer_ensemble(&e->ens);
    return 0;
}

static void ensemble_free(ensemble_model *e)
{
    for (int m = 0; m < e->n; m++)
        scored_free(&e->t[m]);
    memset(e, 0, sizeof *e);
}

/* KD(k) (section 4): a fresh student (with kd_warm_start, CL_k) distilled from E_k. Writes D_k's
 * table to *out. e_top: E_k's top-kd_interesting lists with Tr_k filtered (computed by the caller). */
static int distill(block_ctx *b, ccd_state *st, const ccd_scorer *ens, const int *e_top,
                   const int *e_users, float **out, int *best_epoch)
{
    const ccd_config *cfg = b->cfg;
    const int K = cfg->exclusion_topk, ds = st->student_dim;
    pairs x = {0};
    ccd_csr excl = {0};
    ccd_recmodel m = {0};
    int rc = -1;
    /* Exclusion (section 4.1): F_S, F_P (k >= 2) and CL_k, each with Tr_k filtered. */
    if (b->s_top && cfg->use_s && add_topk(&x, &b->s_proxy.scorer, &b->filter_both, &b->blk->train, K) != 0)
        goto done;
    if (b->p_top && cfg->use_p && b->k >= 2 &&
        add_topk(&x, &b->p_proxy.scorer, &b->filter_both, &b->blk->train, K) != 0)
        goto done;
    if (b->student && add_topk(&x, &b->cl.scorer, &b->blk->train, NULL, K) != 0)
        goto done;
    if (ccd_csr_from_pairs(&excl, b->nu, b->ni, x.u, x.i, x.n) != 0)
        goto done;
    ccd_rng init;
    ccd_rng_init(&init, cfg->seed, ccd_stream(CCD_STREAM_KD_INIT, b->k, 0));
    if (ccd_recmodel_init(&m, CCD_MODEL_LIGHTGCN, b->nu, b->ni, ds, &b->g_cur, &init) != 0)
        goto done;
    /* Warm start: D_k continues CL_k's lineage, so the next student (which starts from D_k)
     * keeps what CL_k remembers and the proxies average one model's successive versions. */
    if (cfg->kd_warm_start && b->student)
        memcpy(m.emb0, b->student, (size_t)(b->nu + b->ni) * ds * sizeof(float));
    ccd_kd_inputs in = {.ensemble = ens,
                        .exclude = excl.nnz ? &excl : NULL,
                        .ensemble_top = e_top,
                        .ensemble_top_users = e_users,
                        .n_interesting = cfg->kd_interesting,
                        .n_unint_items = cfg->kd_uninteresting_items == CCD_AUTO
                                             ? ccd_rule_unint_items(b->ni)
                                             : cfg->kd_uninteresting_items,
                        .n_unint_users = cfg->kd_uninteresting_users == CCD_AUTO
                                             ? ccd_rule_unint_users(b->nu)
                                             : cfg->kd_uninteresting_users,
                        .item_chunk = grown(1024, b->growth),
                        .lambda = cfg->kd_lambda,
                        .train_items_first = cfg->kd_train_items_first,
                        .block = b->k};
    ccd_train_opts o = train_opts(b, &cfg->kd, cfg->seed, CCD_STREAM_KD_SAMPLER);
    if (ccd_distill(&m, b->blk, &in, &o, NULL, best_epoch) != 0)
        goto done;
    *out = copy_floats(m.emb0, (size_t)(b->nu + b->ni) * ds);
    rc = *out ? 0 : -1;
done:
    pairs_free(&x);
    ccd_csr_free(&excl);
    ccd_recmodel_free(&m);
    return rc;
}

/* E_k's top lists with Tr_k filtered, from the same pass over the ensemble's rows as its
 * evaluation on eval[0..n_eval) (into metrics; the ensemble is the costliest scorer, so it is
 * scored once): *items, the best items per user (exclusion_topk), used by KD(k) (its interesting
 * items, when the sizes agree) and kept in the state for block k+1's exclusion lists; *users
 * (when distilling), the best users per item (kd_interesting), KD(k)'s interesting users.
 * Returns 0 or -1. */
static int ensemble_tops(const ccd_config *cfg, const ccd_scorer *ens, const ccd_block *blk,
                         const ccd_block *eval, int n_eval, ccd_block_metrics *metrics,
                         int **items, int **users)
{
    const int ki = cfg->exclusion_topk, ku = cfg->distill ? cfg->kd_interesting : 0;
    *items = malloc((size_t)ens->n_users * (ki > 0 ? ki : 1) * sizeof **items);
    *users = ku > 0 ? malloc((size_t)ens->n_items * ku * sizeof **users) : NULL;
    ccd_filter f = {.sets = {&blk->train}, .n_sets = 1};
    ccd_topk_stream *t = *items && (ku <= 0 || *users)
                             ? ccd_topk_stream_new(ens->n_items, &f, ki, *items, ku, *users)
                             : NULL;
    int rc = t ? ccd_evaluate_scorer_tee(ens, eval, n_eval, metrics, ccd_topk_stream_feed, t) : -1;
    ccd_topk_stream_finish(t);
    if (rc == 0)
        return 0;
    free(*items);
    free(*users);
    *items = *users = NULL;
    return -1;
}

/* What the state keeps of block k: R_k and the block's active users and items. Copied before
 * the commit (which may then not fail) and swapped in by block_data_commit. */
typedef struct {
    ccd_csr train;
    int *users, *items;
} block_data;

static void block_data_free(block_data *d)
{
    ccd_csr_free(&d->train);
    free(d->users);
    free(d->items);
    memset(d, 0, sizeof *d);
}

static int block_data_copy(block_data *d, const ccd_block *blk)
{
    memset(d, 0, sizeof *d);
    const ccd_csr *t = &blk->train;
    d->users = malloc((size_t)(blk->n_active_users > 0 ? blk->n_active_users : 1) * sizeof(int));
    d->items = malloc((size_t)(blk->n_active_items > 0 ? blk->n_active_items : 1) * sizeof(int));
    d->train = (ccd_csr){.n_rows = t->n_rows, .n_cols = t->n_cols, .nnz = t->nnz};
    d->train.indptr = malloc(((size_t)t->n_rows + 1) * sizeof(int64_t));
    d->train.indices = malloc((size_t)(t->nnz > 0 ? t->nnz : 1) * sizeof(int));
    if (!d->users || !d->items || !d->train.indptr || !d->train.indices) {
        block_data_free(d);
        return -1;
    }
    memcpy(d->train.indptr, t->indptr, ((size_t)t->n_rows + 1) * sizeof(int64_t));
    memcpy(d->train.indices, t->indices, (size_t)t->nnz * sizeof(int));
    memcpy(d->users, blk->users, (size_t)blk->n_active_users * sizeof(int));
    memcpy(d->items, blk->items, (size_t)blk->n_active_items * sizeof(int));
    return 0;
}

/* Cannot fail: d's buffers move into the state. */
static void block_data_commit(ccd_state *st, block_data *d, const ccd_block *blk)
{
    ccd_csr_free(&st->train);
    free(st->active_users);
    free(st->active_items);
    st->train = d->train;
    st->active_users = d->users;
    st->active_items = d->items;
    memset(d, 0, sizeof *d);
    st->n_active_users = blk->n_active_users;
    st->n_active_items = blk->n_active_items;
    st->n_users = blk->n_users;
    st->n_items = blk->n_items;
    st->block = blk->index;
}

static int report_init(ccd_block_report *rep, int k, int n_eval)
{
    memset(rep, 0, sizeof *rep);
    rep->block = k;
    rep->n_eval = n_eval;
    size_t n = (size_t)(n_eval > 0 ? n_eval : 1);
    rep->student = calloc(n, sizeof *rep->student);
    rep->ensemble = calloc(n, sizeof *rep->ensemble);
    rep->distilled = calloc(n, sizeof *rep->distilled);
    return rep->student && rep->ensemble && rep->distilled ? 0 : -1;
}

typedef struct {
    block_ctx *b;
    ccd_state *st;
} base_ctx;

/* Train base teacher m on block 0 (section 2.5). */
static int base_teacher(void *vctx, int m)
{
    base_ctx *c = vctx;
    block_ctx *b = c->b;
    const ccd_teacher_spec *spec = &c->st->teacher_spec[m];
    ccd_rng init;
    ccd_rng_init(&init, spec->seed, ccd_stream(CCD_STREAM_TEACHER_INIT, 0, 0));
    ccd_recmodel tm;
    if (ccd_recmodel_init(&tm, spec->type, b->nu, b->ni, spec->dim,
                          spec->type == CCD_MODEL_LIGHTGCN ? &b->g_cur : NULL, &init) != 0)
        return -1;
    ccd_train_opts o = train_opts(b, &b->cfg->base, spec->seed, CCD_STREAM_TEACHER_SAMPLER);
    ccd_block_metrics best;
    int best_epoch = 0;
    int rc = ccd_train_stage(&tm, b->blk, NULL, &o, false, NULL, NULL, NULL, &best, &best_epoch);
    if (rc == 0)
        c->st->teacher[m] = copy_floats(tm.emb0, (size_t)(b->nu + b->ni) * spec->dim);
    ccd_recmodel_free(&tm);
    if (rc != 0 || !c->st->teacher[m])
        return -1;
    say(&b->lg, "base teacher %d (%s d=%d seed %llu): epoch %d, valid R@20 %.4f test R@20 %.4f", m,
        spec->type == CCD_MODEL_MF ? "MF" : "LightGCN", spec->dim, (unsigned long long)spec->seed,
        best_epoch, best.valid.recall[CCD_K20], best.test.recall[CCD_K20]);
    return 0;
}

/* Bootstrap (section 10 step 0): base teachers, E_0, D_0; CL_0 = D_0. */
static int bootstrap(block_ctx *b, ccd_state *st, ccd_block_report *rep, const ccd_block *eval, int n_eval)
{
    const ccd_config *cfg = b->cfg;
    st->n_teachers = cfg->n_teachers;
    st->student_dim = cfg->student_dim;
    for (int m = 0; m < cfg->n_teachers; m++)
        st->teacher_spec[m] = cfg->teachers[m];
    double t0 = ccd_now();
    base_ctx bc = {b, st};
    if (for_each_teacher(cfg->n_teachers, teachers_side_by_side(cfg, st, b->nu + b->ni), base_teacher,
                         &bc) != 0)
        return -1;
    rep->seconds_teachers = ccd_now() - t0;
    t0 = ccd_now();
    ensemble_model e;
    if (ensemble_build(&e, st, st->teacher, b->nu, b->ni, &b->g_cur) != 0) {
        ensemble_free(&e);
        return -1;
    }
    float *d0 = NULL;
    int *e_top = NULL, *e_users = NULL;
    int rc = ensemble_tops(cfg, &e.scorer, b->blk, eval, n_eval, rep->ensemble, &e_top, &e_users);
    rep->seconds_ensemble = ccd_now() - t0;
    t0 = ccd_now();
    if (rc == 0)
        rc = distill(b, st, &e.scorer, cfg->kd_interesting == cfg->exclusion_topk ? e_top : NULL,
                     e_users, &d0, &rep->distill_epoch);
    free(e_users);
    free(st->ensemble_top);
    st->ensemble_top = e_top;
    st->ensemble_top_k = e_top ? cfg->exclusion_topk : 0;
    rep->seconds_distill = ccd_now() - t0;
    ensemble_free(&e);
    if (rc != 0)
        return -1;
    st->distilled = d0;
    st->student = copy_floats(d0, (size_t)(b->nu + b->ni) * st->student_dim);
    return st->student ? 0 : -1;
}

int ccd_block_step(ccd_state *st, const ccd_config *cfg, const ccd_block *blk,
                   const ccd_block *eval, int n_eval, ccd_block_report *rep,
                   const ccd_block_hooks *hooks, char *err, size_t errlen)
{
    double start = ccd_now();
    if (blk->index != st->block + 1) {
        snprintf(err, errlen, "block %d given after block %d", blk->index, st->block);
        return -1;
    }
    if (st->block >= 0 && (blk->n_users < st->n_users || blk->n_items < st->n_items)) {
        snprintf(err, errlen, "block %d shrinks the id space", blk->index);
        return -1;
    }
    if (report_init(rep, blk->index, n_eval) != 0) {
        snprintf(err, errlen, "block %d: out of memory for its report", blk->index);
        return -1;
    }
    block_ctx b;
    memset(&b, 0, sizeof b);
    b.cfg = cfg;
    b.blk = blk;
    b.k = blk->index;
    b.nu = blk->n_users;
    b.ni = blk->n_items;
    b.pu = st->n_users;
    b.pi = st->n_items;
    b.lg = (logger){hooks ? hooks->log : NULL, hooks ? hooks->ctx : NULL};
    b.stop = hooks ? hooks->stop : NULL;
    b.growth = ccd_batch_growth(cfg, blk->train.nnz, (int64_t)blk->n_users + blk->n_items);
    b.rep = rep;
    ensemble_model e_prev = {0}, e_cur = {0};
    lwc_data ld;
    memset(&ld, 0, sizeof ld);
    float *new_teachers[CCD_MAX_TEACHERS] = {0};
    float *dk = NULL;
    int *e_cur_top = NULL; /* E_k's top lists, Tr_k filtered: the state's after the commit */
    block_data kept = {0};  /* R_k and the active ids, the state's after the commit */
    int rc = -1;
    if (ccd_graph_build(&b.g_cur, &blk->train, b.nu, b.ni) != 0) {
        snprintf(err, errlen, "out of memory building block %d's graph", b.k);
        goto done;
    }
    if (b.k == 0) {
        if (bootstrap(&b, st, rep, eval, n_eval) != 0) {
            ccd_state_free(st); /* leave it as before the block */
            ccd_state_init(st);
            goto oom;
        }
        if (score_model(&b.cl, CCD_MODEL_LIGHTGCN, st->student, b.nu, b.ni, st->student_dim, &b.g_cur, 0) != 0 ||
            announce_student(&b, hooks, st->student_dim) != 0 ||
            (n_eval > 0 && ccd_evaluate_scorer(&b.cl.scorer, eval, n_eval, rep->student) != 0) ||
            block_data_copy(&kept, blk) != 0) {
            ccd_state_free(st);
            ccd_state_init(st);
            goto oom;
        }
        block_data_commit(st, &kept, blk);
        memcpy(rep->distilled, rep->student, (size_t)n_eval * sizeof *rep->distilled);
        rc = 0;
        goto done;
    }

    /* Shared by the stages: R_{k-1}'s graph, the F_S filter, E_{k-1}'s top-40. */
    if (ccd_graph_build(&b.g_prev, &st->train, b.pu, b.pi) != 0)
        goto oom;
    {
        ccd_csr cur_crop; /* Tr_k restricted to the old id space, merged with Tr_{k-1} */
        int64_t n = st->train.nnz + blk->train.nnz, w = 0;
        int *pu = malloc((size_t)(n > 0 ? n : 1) * sizeof *pu), *pi = malloc((size_t)(n > 0 ? n : 1) * sizeof *pi);
        if (!pu || !pi) {
            free(pu), free(pi);
            goto oom;
        }
        const ccd_csr *sets[2] = {&st->train, &blk->train};
        for (int s = 0; s < 2; s++)
            for (int u = 0; u < sets[s]->n_rows && u < b.pu; u++)
                for (int64_t e = sets[s]->indptr[u]; e < sets[s]->indptr[u + 1]; e++)
                    if (sets[s]->indices[e] < b.pi)
                        pu[w] = u, pi[w++] = sets[s]->indices[e];
        int r = ccd_csr_from_pairs(&cur_crop, b.pu, b.pi, pu, pi, w);
        free(pu), free(pi);
        if (r != 0)
            goto oom;
        b.filter_both = cur_crop;
    }
    double t0 = ccd_now();
    if (st->ensemble_top && st->ensemble_top_k == cfg->exclusion_topk) {
        b.e_prev_top = st->ensemble_top; /* kept from block k-1; still the state's */
    } else if (ensemble_build(&e_prev, st, st->teacher, b.pu, b.pi, &b.g_prev) != 0 ||
               !(b.e_prev_top = topk_of(&e_prev.scorer, &st->train, NULL, cfg->exclusion_topk))) {
        goto oom;
    }
    ensemble_free(&e_prev);
    rep->seconds_ensemble += ccd_now() - t0;

    /* 1. student update -> CL_k, S_{k-1}, P_{k-1} */
    t0 = ccd_now();
    if (student_update(&b, st, &rep->student_epoch) != 0)
        goto oom;
    rep->seconds_student = ccd_now() - t0;
    say(&b.lg, "block %d: student updated in %.1f s (epoch %d)", b.k, rep->seconds_student, rep->student_epoch);
    if (announce_student(&b, hooks, st->student_dim) != 0)
        goto oom;

    /* 2. teacher updates -> T_{m,k} */
    t0 = ccd_now();
    if (cfg->update_teachers) {
        if (lwc_data_build(&ld, st, cfg->lwc_graph_degree) != 0)
            goto oom;
        update_ctx uc = {&b, st, &ld, new_teachers};
        if (for_each_teacher(st->n_teachers, teachers_side_by_side(cfg, st, b.nu + b.ni),
                             teacher_update_one, &uc) != 0)
            goto oom;
    } else {
        /* Teachers kept: grow their tables to the new id space (new rows initialised). */
        for (int m = 0; m < st->n_teachers; m++)
            if (!(new_teachers[m] = expand(&b, st->teacher[m], st->teacher_spec[m].dim)))
                goto oom;
    }
    rep->seconds_teachers = ccd_now() - t0;

    /* 3. ensemble E_k and 4. distillation D_k */
    t0 = ccd_now();
    if (ensemble_build(&e_cur, st, new_teachers, b.nu, b.ni, &b.g_cur) != 0)
        goto oom;
    int *e_cur_users = NULL;
    if (ensemble_tops(cfg, &e_cur.scorer, blk, eval, n_eval, rep->ensemble, &e_cur_top,
                      &e_cur_users) != 0)
        goto oom;
    rep->seconds_ensemble += ccd_now() - t0;
    t0 = ccd_now();
    if (cfg->distill) {
        int r = distill(&b, st, &e_cur.scorer,
                        cfg->kd_interesting == cfg->exclusion_topk ? e_cur_top : NULL, e_cur_users,
                        &dk, &rep->distill_epoch);
        free(e_cur_users);
        if (r != 0)
            goto oom;
    }
    rep->seconds_distill = ccd_now() - t0;
    if (n_eval > 0) {
        if (ccd_evaluate_scorer(&b.cl.scorer, eval, n_eval, rep->student) != 0)
            goto oom;
        if (dk) {
            scored_model dm;
            if (score_model(&dm, CCD_MODEL_LIGHTGCN, dk, b.nu, b.ni, st->student_dim, &b.g_cur, 0) != 0)
                goto oom;
            int r = ccd_evaluate_scorer(&dm.scorer, eval, n_eval, rep->distilled);
            scored_free(&dm);
            if (r != 0)
                goto oom;
        }
    }

    /* Commit the new state: everything it takes is allocated by now, so it cannot fail. */
    if (block_data_copy(&kept, blk) != 0)
        goto oom;
    if (b.e_prev_top == st->ensemble_top)
        b.e_prev_top = NULL; /* freed just below, as the state's */
    free(st->ensemble_top);
    st->ensemble_top = e_cur_top;
    st->ensemble_top_k = cfg->exclusion_topk;
    e_cur_top = NULL;
    for (int m = 0; m < st->n_teachers; m++) {
        free(st->teacher[m]);
        st->teacher[m] = new_teachers[m];
        new_teachers[m] = NULL;
    }
    if (dk) {
        free(st->distilled);
        st->distilled = dk;
        dk = NULL;
    }
    free(st->student);
    st->student = b.student;
    b.student = NULL;
    if (b.proxy_s) {
        free(st->proxy_s);
        free(st->proxy_p);
        st->proxy_s = b.proxy_s;
        st->proxy_p = b.proxy_p;
        b.proxy_s = b.proxy_p = NULL;
        st->proxy_users = b.pu;
        st->proxy_items = b.pi;
    }
    block_data_commit(st, &kept, blk);
    rc = 0;
    goto done;
oom:
    if (b.stop && atomic_load_explicit(b.stop, memory_order_relaxed)) {
        rc = CCD_STOPPED;
        snprintf(err, errlen, "block %d: stopped on request", b.k);
    } else {
        snprintf(err, errlen, "block %d: out of memory or the caller's student_ready failed", b.k);
    }
done:
    rep->seconds_total = ccd_now() - start;
    block_data_free(&kept);
    for (int m = 0; m < CCD_MAX_TEACHERS; m++)
        free(new_teachers[m]);
    free(dk);
    ensemble_free(&e_prev);
    ensemble_free(&e_cur);
    lwc_data_free(&ld);
    ccd_csr_free(&b.g_prev);
    ccd_csr_free(&b.g_cur);
    ccd_csr_free(&b.filter_both);
    if (b.e_prev_top != st->ensemble_top)
        free(b.e_prev_top);
    free(e_cur_top);
    free(b.proxy_s);
    free(b.proxy_p);
    scored_free(&b.s_proxy);
    scored_free(&b.p_proxy);
    free(b.s_top);
    free(b.p_top);
    free(b.student);
    scored_free(&b.cl);
    return rc;
}
