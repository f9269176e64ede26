/* stage_teachers: the teacher side of a block. The base teachers on block 0 (algorithm section
 * 2.5) and each block's T_update(k) (section 6): the teacher expanded to the new ids, trained on
 * block k with the student side's exclusion lists and replay (6.1, 6.5) and LWC-KD against its
 * own frozen previous tables (6.3). Teachers are independent within a block and train side by
 * side when their buffers fit (for_each_teacher). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "block.h"
#include "dense.h"
#include "lwckd.h"
#include "simgraph.h"

/* LWC-KD side data of one block (shared by all teachers) and one teacher's frozen tables. */
typedef struct {
    int n_bu, n_bi;
    const int *bu, *bi; /* sorted old users / items (block k-1's train keys and item list) */
    int *cu, *ci;       /* (U_{k-1}), (I_{k-1}): compact index or -1 */
    ccd_csr b, bt;      /* (n_bu x n_bi) R_{k-1} in compact coordinates, and its transpose */
    ccd_csr uu, ii;     /* (n_bu x n_bu), (n_bi x n_bi) cosine threshold graphs */
} lwc_data;

/* The distinct old users (or positive items) of a mini-batch, with their multiplicities. */
typedef struct {
    int *raw;       /* (batch) ids in the model */
    int *compact;   /* (batch) the same in lwc_data's compact coordinates */
    int *count;     /* (batch) occurrences in the batch */
    int n;          /* distinct entities */
    double n_count; /* occurrences in all */
} batch_set;

typedef struct {
    const lwc_data *data;
    int n_layers; /* 2 for LightGCN (layers 0 and 1 used), 1 for MF */
    int old_users, old_items;
    const float *old[2]; /* frozen layer-l tables of the old model ((old_users + old_items) x d) */
    float tau, scale[2];
    int max_neighbours; /* lwc_max_neighbours: sampled softmax past this many (0: never) */
    uint64_t seed, stream, calls; /* the sampled softmax's RNG: stream + calls, one per term */
    /* scratch */
    batch_set users, items;   /* the batch's old users and positive items */
    float *targets;           /* (max(n_bu, n_bi) x d) */
    float *weights;           /* (batch) */
    int *rel_rows;            /* (batch) */
    int *count_u, *count_i;   /* (n_bu), (n_bi) multiplicities in the batch */
    float *pres_u, *pres_i;   /* (n_bu x d), (n_bi x d) present layer-l embeddings */
    float *dpres_u, *dpres_i; /* same shapes: their gradients */
    float *dlayer1;           /* (nodes x d): gradient w.r.t. layer 1, zero outside old entities */
    float *tmp;               /* (nodes x d) */
} lwc_ctx;

/* One of the four terms: the targets are the batch set's entities in the old table side
 * old_side, against neighbours pres (m x d) under relation rel. */
static double lwc_one(lwc_ctx *c, int d, const float *old_side, const batch_set *set,
                      const float *pres, int m, const ccd_csr *rel, float scale, float *dpres)
{
    for (int t = 0; t < set->n; t++) {
        memcpy(c->targets + (size_t)t * d, old_side + (size_t)set->raw[t] * d,
               (size_t)d * sizeof(float));
        c->weights[t] = (float)set->count[t];
        c->rel_rows[t] = set->compact[t];
    }
    return ccd_lwc_term_sampled(c->targets, c->weights, set->n, set->n_count, pres, m, d, rel,
                                c->rel_rows, c->tau, scale, dpres, c->max_neighbours, c->seed,
                                c->stream + c->calls++);
}

/* The distinct ids[k] (k < b) below n_old that have a compact index, in order of first
 * appearance, with their counts. counter (compact ids) is zero on entry and on return. */
static void collect_old(batch_set *s, const int *ids, int b, int n_old, const int *compact_of,
                        int *counter)
{
    s->n = 0;
    s->n_count = 0;
    for (int k = 0; k < b; k++) {
        const int id = ids[k];
        if (id >= n_old || compact_of[id] < 0)
            continue;
        const int cid = compact_of[id];
        if (counter[cid]++ == 0) {
            s->raw[s->n] = id;
            s->compact[s->n++] = cid;
        }
        s->n_count++;
    }
    for (int t = 0; t < s->n; t++)
        s->count[t] = counter[s->compact[t]], counter[s->compact[t]] = 0;
}

/* The present layer-l rows of the old users and items (pres_u, pres_i), gradients zeroed. */
static void gather_present(lwc_ctx *c, const ccd_recmodel *m, int l)
{
    const lwc_data *ld = c->data;
    const int d = m->dim;
    const float *layer = l == 0 ? m->emb0 : m->layer1; /* present layer l, (nodes x d) */
    for (int t = 0; t < ld->n_bu; t++)
        memcpy(c->pres_u + (size_t)t * d, layer + (size_t)ld->bu[t] * d, (size_t)d * sizeof(float));
    for (int t = 0; t < ld->n_bi; t++)
        memcpy(c->pres_i + (size_t)t * d, layer + (size_t)(m->n_users + ld->bi[t]) * d,
               (size_t)d * sizeof(float));
    memset(c->dpres_u, 0, (size_t)ld->n_bu * d * sizeof(float));
    memset(c->dpres_i, 0, (size_t)ld->n_bi * d * sizeof(float));
}

/* The four relations of layer l (UI, UU for the batch's users; IU, II for its items). */
static double layer_terms(lwc_ctx *c, int d, int l)
{
    const lwc_data *ld = c->data;
    const float *old_u = c->old[l], *old_i = c->old[l] + (size_t)c->old_users * d;
    const float s = c->scale[l];
    double t = 0.0;
    if (c->users.n) {
        t += lwc_one(c, d, old_u, &c->users, c->pres_i, ld->n_bi, &ld->b, s, c->dpres_i);
        t += lwc_one(c, d, old_u, &c->users, c->pres_u, ld->n_bu, &ld->uu, s, c->dpres_u);
    }
    if (c->items.n) {
        t += lwc_one(c, d, old_i, &c->items, c->pres_u, ld->n_bu, &ld->bt, s, c->dpres_u);
        t += lwc_one(c, d, old_i, &c->items, c->pres_i, ld->n_bi, &ld->ii, s, c->dpres_i);
    }
    return t;
}

/* The present rows' gradients back to E0: layer 0 directly; layer 1 = A_hat E0, so through
 * A_hat (symmetric). */
static void add_layer_gradient(lwc_ctx *c, ccd_recmodel *m, int l)
{
    const lwc_data *ld = c->data;
    const int d = m->dim;
    const size_t nodes = (size_t)ccd_recmodel_nodes(m);
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

/* The batch hook of a teacher update: LWC-KD's terms on the batch's old users and positive
 * items, layer by layer, their gradient added to m->grad. */
static double lwc_batch_hook(void *vctx, ccd_recmodel *m, const int *user, const int *pos,
                             const int *neg, int b)
{
    (void)neg;
    lwc_ctx *c = vctx;
    collect_old(&c->users, user, b, c->old_users, c->data->cu, c->count_u);
    collect_old(&c->items, pos, b, c->old_items, c->data->ci, c->count_i);
    double loss = 0.0;
    for (int l = 0; l < c->n_layers && loss >= 0.0; l++) {
        gather_present(c, m, l);
        const double t = layer_terms(c, m->dim, l);
        if (!(t == t))
            return -1.0;
        loss += t;
        add_layer_gradient(c, m, l);
    }
    return loss;
}

typedef struct {
    lwc_ctx *lwc;
    replay_ctx *replay;
} teacher_hooks;

static double teacher_batch(void *vctx, ccd_recmodel *m, const int *u, const int *p, const int *n,
                            int b)
{
    teacher_hooks *h = vctx;
    return h->lwc ? lwc_batch_hook(h->lwc, m, u, p, n, b) : 0.0;
}

static double teacher_epoch(void *vctx, ccd_recmodel *m, ccd_adam *adam, int epoch)
{
    teacher_hooks *h = vctx;
    return h->replay ? block_replay_epoch(h->replay, m, adam, epoch) : 0.0;
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
        ccd_blas_single_begin();
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
        for (int m = 0; m < n_side; m++)
            if (fn(ctx, m) != 0) {
#pragma omp atomic write
                failed = 1;
            }
        ccd_blas_single_end();
    }
    for (int m = n_side; m < n && !failed; m++)
        if (fn(ctx, m) != 0)
            failed = 1;
    return failed ? -1 : 0;
}

static const ccd_teacher_block_opts *teacher_opts(const ccd_config *c, int k)
{
    int idx = k - 1 < c->n_teacher_blocks ? k - 1 : c->n_teacher_blocks - 1;
    return &c->teacher_blocks[idx < 0 ? 0 : idx];
}

/* The exclusion lists of a teacher update (section 6.1): E_{k-1}'s top lists and, with the
 * student side (collaborative), F_S's, F_P's (k >= 2) and CL_k's. */
static int teacher_exclusions(const block_ctx *b, ccd_csr *excl)
{
    const ccd_config *cfg = b->cfg;
    const int K = cfg->exclusion_topk, collab = cfg->collaborative;
    pairs x = {0};
    int rc = -1;
    if (block_pairs_add_topk(&x, b->e_prev_top, b->pu, K) != 0)
        goto done;
    if (collab && cfg->use_s && b->s_top && block_pairs_add_topk(&x, b->s_top, b->pu, K) != 0)
        goto done;
    if (collab && cfg->use_p && b->k >= 2 && b->p_top &&
        block_pairs_add_topk(&x, b->p_top, b->pu, K) != 0)
        goto done;
    if (collab && cfg->use_cl && block_add_topk(&x, &b->cl.scorer, NULL, NULL, K) != 0)
        goto done;
    rc = ccd_csr_from_pairs(excl, b->nu, b->ni, x.u, x.i, x.n);
done:
    block_pairs_free(&x);
    return rc;
}

/* T_{m,k-1}'s frozen layer-wise tables on R_{k-1} into old, and the model to train, m:
 * T_{m,k-1} expanded to block k (section 5.4). */
static int teacher_start(const block_ctx *b, const ccd_state *st, int t, scored_model *old,
                         ccd_recmodel *m)
{
    const ccd_teacher_spec *spec = &st->teacher_spec[t];
    const int d = spec->dim;
    if (block_score(old, spec->type, st->teacher[t], b->pu, b->pi, d, &b->g_prev, 1) != 0)
        return -1;
    ccd_rng init;
    ccd_rng_init(&init, spec->seed, ccd_stream(CCD_STREAM_TEACHER_INIT, b->k, 0));
    if (ccd_recmodel_init(m, spec->type, b->nu, b->ni, d,
                          spec->type == CCD_MODEL_LIGHTGCN ? &b->g_cur : NULL, &init) != 0)
        return -1;
    m->layer1_everywhere = true; /* LWC-KD reads the present layer 1 of every old user and item */
    if (spec->type == CCD_MODEL_LIGHTGCN)
        m->score_graph = b->score_cur;
    float *expanded = block_expand(b, st->teacher[t], d);
    if (!expanded)
        return -1;
    memcpy(m->emb0, expanded, (size_t)(b->nu + b->ni) * d * sizeof(float));
    free(expanded);
    return 0;
}

/* The replay set of a teacher update (section 6.5) into rs: pairs drawn from the student side
 * (S, P from block 2 on, CL_k), ranked against the expanded teacher T_0 (m's table). */
static int teacher_replay(const block_ctx *b, const ccd_teacher_spec *spec, const ccd_recmodel *m,
                          ccd_replay_set *rs)
{
    const ccd_config *cfg = b->cfg;
    if (!cfg->collaborative || !cfg->replay)
        return 0;
    const ccd_teacher_block_opts *to = teacher_opts(cfg, b->k);
    scored_model t0;
    if (block_score(&t0, spec->type, m->emb0, b->nu, b->ni, spec->dim, b->score_cur, 0) != 0)
        return -1;
    ccd_rng rng;
    ccd_rng_init(&rng, spec->seed, ccd_stream(CCD_STREAM_TEACHER_REPLAY, b->k, 0));
    ccd_filter f = {.sets = {&b->filter_both}, .n_sets = 1};
    struct {
        int on;
        const ccd_scorer *src;
        const ccd_filter *flt;
        int n;
    } src[3] = {{cfg->use_s && b->proxy_s != NULL, &b->s_proxy.scorer, &f, to->ss},
                {cfg->use_p && b->k >= 2 && b->proxy_p != NULL, &b->p_proxy.scorer, &f, to->ps},
                {cfg->use_cl, &b->cl.scorer, NULL, to->cs}};
    ccd_replay_set part = {0};
    int rc = 0;
    for (int s = 0; s < 3 && rc == 0; s++) {
        if (!src[s].on || src[s].n <= 0)
            continue;
        if (ccd_replay_sample(src[s].src, src[s].flt, &t0.scorer, to->ab, src[s].n, cfg->replay_eps,
                              &rng, &part) != 0 ||
            ccd_replay_merge(rs, &part) != 0)
            rc = -1;
        ccd_replay_free(&part);
    }
    block_scored_free(&t0);
    return rc;
}

static void lwc_ctx_free(lwc_ctx *lc)
{
    free(lc->users.raw), free(lc->users.compact), free(lc->users.count);
    free(lc->items.raw), free(lc->items.compact), free(lc->items.count);
    free(lc->targets), free(lc->weights), free(lc->rel_rows), free(lc->count_u), free(lc->count_i);
    free(lc->pres_u), free(lc->pres_i), free(lc->dpres_u), free(lc->dpres_i), free(lc->dlayer1);
    free(lc->tmp);
    memset(lc, 0, sizeof *lc);
}

static int batch_set_alloc(batch_set *s, int batch)
{
    s->raw = malloc((size_t)batch * sizeof *s->raw);
    s->compact = malloc((size_t)batch * sizeof *s->compact);
    s->count = malloc((size_t)batch * sizeof *s->count);
    return s->raw && s->compact && s->count ? 0 : -1;
}

/* LWC-KD for teacher t (section 6.3): layers 0 and 1 for LightGCN, weight 1/2 each; layer 0 for
 * MF, against T_{m,k-1}'s frozen tables (old holds its layer 1). Scratch for batches of up to
 * batch triples. On failure the caller frees lc. */
static int lwc_ctx_init(lwc_ctx *lc, const block_ctx *b, const ccd_state *st, int t,
                        const lwc_data *ld, const scored_model *old, int batch)
{
    const ccd_config *cfg = b->cfg;
    const ccd_teacher_spec *spec = &st->teacher_spec[t];
    const int d = spec->dim;
    const size_t nodes = (size_t)(b->nu + b->ni);
    memset(lc, 0, sizeof *lc);
    lc->data = ld;
    lc->n_layers = spec->type == CCD_MODEL_LIGHTGCN ? 2 : 1;
    lc->old_users = b->pu;
    lc->old_items = b->pi;
    lc->old[0] = st->teacher[t];
    lc->old[1] = old->layer1;
    lc->tau = cfg->lwc_tau;
    lc->scale[0] = lc->scale[1] = cfg->lwc_lambda * (lc->n_layers == 2 ? 0.5f + 1e-8f : 1.0f);
    lc->max_neighbours = cfg->lwc_max_neighbours;
    lc->seed = spec->seed;
    lc->stream = ccd_stream(CCD_STREAM_LWC, b->k, 0);
    int nmax = ld->n_bu > ld->n_bi ? ld->n_bu : ld->n_bi;
    lc->targets = ccd_floats((size_t)nmax * d);
    lc->weights = malloc((size_t)batch * sizeof *lc->weights);
    lc->rel_rows = malloc((size_t)batch * sizeof *lc->rel_rows);
    lc->count_u = calloc((size_t)ld->n_bu + 1, sizeof *lc->count_u);
    lc->count_i = calloc((size_t)ld->n_bi + 1, sizeof *lc->count_i);
    lc->pres_u = ccd_floats((size_t)ld->n_bu * d);
    lc->pres_i = ccd_floats((size_t)ld->n_bi * d);
    lc->dpres_u = ccd_floats((size_t)ld->n_bu * d);
    lc->dpres_i = ccd_floats((size_t)ld->n_bi * d);
    lc->dlayer1 = ccd_floats(nodes * d);
    lc->tmp = ccd_floats(nodes * d);
    if (batch_set_alloc(&lc->users, batch) != 0 || batch_set_alloc(&lc->items, batch) != 0)
        return -1;
    return lc->targets && lc->weights && lc->rel_rows && lc->count_u && lc->count_i && lc->pres_u &&
                   lc->pres_i && lc->dpres_u && lc->dpres_i && lc->dlayer1 && lc->tmp
               ? 0
               : -1;
}

/* Teacher update T_update(k, m) (section 6): exclusions, the expanded teacher, replay and
 * LWC-KD, then training on block k. Writes the new layer-0 table to *out. */
static int teacher_update(block_ctx *b, const ccd_state *st, int t, const lwc_data *ld, float **out)
{
    const ccd_config *cfg = b->cfg;
    const ccd_teacher_spec *spec = &st->teacher_spec[t];
    const int tbatch = block_grown(cfg->teacher.batch, b->growth);
    scored_model old = {0};
    ccd_csr excl = {0};
    ccd_replay_set rs = {0};
    ccd_recmodel m = {0};
    lwc_ctx lc;
    memset(&lc, 0, sizeof lc);
    int rc = -1;
    if (teacher_exclusions(b, &excl) != 0 || teacher_start(b, st, t, &old, &m) != 0 ||
        teacher_replay(b, spec, &m, &rs) != 0 || lwc_ctx_init(&lc, b, st, t, ld, &old, tbatch) != 0)
        goto done;
    replay_ctx rctx = {.set = &rs,
                       .batch = tbatch,
                       .lambda = cfg->teacher_replay_lambda,
                       .anneal = cfg->teacher_anneal,
                       .stop = b->stop};
    ccd_rng_init(&rctx.rng, spec->seed, ccd_stream(CCD_STREAM_TEACHER_SHUFFLE, b->k, 0));
    teacher_hooks th = {.lwc = &lc, .replay = rs.n ? &rctx : NULL};
    ccd_train_hooks hooks = {.batch = teacher_batch, .epoch = teacher_epoch, .ctx = &th};
    ccd_train_opts o = block_train_opts(b, &cfg->teacher, spec->seed, CCD_STREAM_TEACHER_SAMPLER);
    int best_epoch = 0;
    ccd_block_metrics best;
    if (ccd_train_stage(&m, b->blk, &excl, &o, false, &hooks, NULL, NULL, &best, &best_epoch) != 0)
        goto done;
    block_say(&b->lg, "teacher %d updated: %lld replay pairs, epoch %d selected, valid R@20 %.4f",
              t, (long long)rs.n, best_epoch, best.valid.recall[CCD_K20]);
    *out = block_copy_floats(m.emb0, (size_t)(b->nu + b->ni) * spec->dim);
    rc = *out ? 0 : -1;
done:
    block_scored_free(&old);
    ccd_csr_free(&excl);
    ccd_replay_free(&rs);
    ccd_recmodel_free(&m);
    lwc_ctx_free(&lc);
    return rc;
}

typedef struct {
    block_ctx *b;
    const ccd_state *st;
    const lwc_data *ld;
    float **out;
} update_ctx;

static int teacher_update_one(void *vctx, int m)
{
    update_ctx *c = vctx;
    if (ccd_stop_raised(c->b->stop)) /* the side-by-side loop cannot break: skip the rest */
        return -1;
    return teacher_update(c->b, c->st, m, c->ld, &c->out[m]);
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
    if (ccd_stop_raised(b->stop)) /* the side-by-side loop cannot break: skip the rest */
        return -1;
    const ccd_teacher_spec *spec = &c->st->teacher_spec[m];
    ccd_rng init;
    ccd_rng_init(&init, spec->seed, ccd_stream(CCD_STREAM_TEACHER_INIT, 0, 0));
    ccd_recmodel tm;
    if (ccd_recmodel_init(&tm, spec->type, b->nu, b->ni, spec->dim,
                          spec->type == CCD_MODEL_LIGHTGCN ? &b->g_cur : NULL, &init) != 0)
        return -1;
    ccd_train_opts o = block_train_opts(b, &b->cfg->base, spec->seed, CCD_STREAM_TEACHER_SAMPLER);
    ccd_block_metrics best;
    int best_epoch = 0;
    int rc = ccd_train_stage(&tm, b->blk, NULL, &o, false, NULL, NULL, NULL, &best, &best_epoch);
    if (rc == 0)
        c->st->teacher[m] = block_copy_floats(tm.emb0, (size_t)(b->nu + b->ni) * spec->dim);
    ccd_recmodel_free(&tm);
    if (rc != 0 || !c->st->teacher[m])
        return -1;
    block_say(
        &b->lg, "base teacher %d (%s d=%d seed %llu): epoch %d, valid R@20 %.4f test R@20 %.4f", m,
        spec->type == CCD_MODEL_MF ? "MF" : "LightGCN", spec->dim, (unsigned long long)spec->seed,
        best_epoch, best.valid.recall[CCD_K20], best.test.recall[CCD_K20]);
    return 0;
}

int stage_base_teachers(block_ctx *b, ccd_state *st)
{
    base_ctx bc = {b, st};
    return for_each_teacher(b->cfg->n_teachers, teachers_side_by_side(b->cfg, st, b->nu + b->ni),
                            base_teacher, &bc);
}

int stage_teacher_updates(block_ctx *b, const ccd_state *st, float **out)
{
    lwc_data ld;
    int rc = lwc_data_build(&ld, st, b->cfg->lwc_graph_degree);
    if (rc == 0) {
        update_ctx uc = {b, st, &ld, out};
        rc = for_each_teacher(st->n_teachers, teachers_side_by_side(b->cfg, st, b->nu + b->ni),
                              teacher_update_one, &uc);
    }
    lwc_data_free(&ld);
    return rc;
}

/* One teacher's update alone (ccd_teacher_update): the LWC-KD side data is rebuilt for it (a
 * pure function of the previous state) and the same teacher_update runs, so the table is the
 * one the in-process loop above produces for teacher t. */
int stage_teacher_update(block_ctx *b, const ccd_state *st, int t, float **out)
{
    lwc_data ld;
    int rc = lwc_data_build(&ld, st, b->cfg->lwc_graph_degree);
    if (rc == 0)
        rc = teacher_update(b, st, t, &ld, out);
    lwc_data_free(&ld);
    return rc;
}
