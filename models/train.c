/* train: see train.h. */
#include "train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dense.h"

ccd_train_opts ccd_train_opts_base_teacher(void)
{
    ccd_train_opts o;
    memset(&o, 0, sizeof o); /* padding included: configs are compared byte for byte */
    o.stage.lr = 1e-3f;
    o.stage.batch = 512;
    o.stage.nns = 2;
    o.stage.weight_decay = 1e-4f;
    o.stage.epochs = 100;
    o.stage.eval_every = 1;
    o.stage.patience = 10;
    o.stream = ccd_stream(CCD_STREAM_TEACHER_SAMPLER, 0, 0);
    return o;
}

int ccd_recmodel_evaluate(ccd_recmodel *m, const ccd_block *blocks, int n, ccd_block_metrics *out)
{
    ccd_recmodel_propagate_all(m);
    return ccd_evaluate(m->final, m->final + (size_t)m->n_users * m->dim, m->n_users, m->n_items,
                        m->dim, blocks, n, out);
}

double ccd_bpr_epoch(ccd_recmodel *m, ccd_adam *adam, const ccd_triples *t, int batch, bool clamp,
                     const ccd_train_hooks *hooks)
{
    const int nodes = ccd_recmodel_nodes(m);
    int *stamp = malloc((size_t)nodes * sizeof *stamp);   /* last batch that listed each node */
    int *rows = malloc((size_t)batch * 3 * sizeof *rows); /* (<= 3 batch) unique node rows */
    float *dx = malloc((size_t)batch * sizeof *dx);       /* (batch) dL/dx per triple */
    if (!stamp || !rows || !dx) {
        free(stamp), free(rows), free(dx);
        return -1.0;
    }
    for (int v = 0; v < nodes; v++)
        stamp[v] = -1;
    double loss = 0.0;
    int step = 0;
    for (int64_t b0 = 0; b0 < t->n; b0 += batch, step++) {
        if (hooks && ccd_stop_raised(hooks->stop)) {
            loss = CCD_STOPPED;
            break;
        }
        int b = (int)(t->n - b0 < batch ? t->n - b0 : batch);
        const int *u = t->user + b0, *p = t->pos + b0, *q = t->neg + b0;
        int n = 0;
        for (int k = 0; k < b; k++) {
            int v[3] = {u[k], m->n_users + p[k], m->n_users + q[k]};
            for (int c = 0; c < 3; c++)
                if (stamp[v[c]] != step) {
                    stamp[v[c]] = step;
                    rows[n++] = v[c];
                }
        }
        ccd_recmodel_forward(m, rows, n);
        loss += ccd_bpr_forward(m->final, m->n_users, m->dim, u, p, q, b, clamp, dx);
        ccd_bpr_backward(m->final, m->dfinal, m->n_users, m->dim, u, p, q, b, dx);
        ccd_recmodel_backward(m, rows, n);
        if (hooks && hooks->batch) {
            double extra = hooks->batch(hooks->ctx, m, u, p, q, b);
            if (!(extra >= 0.0)) {
                loss = -1.0;
                break;
            }
            loss += extra;
        }
        ccd_adam_step(adam, m->emb0, m->grad);
        if (hooks && hooks->step)
            hooks->step(hooks->ctx, m);
    }
    free(stamp), free(rows), free(dx);
    return loss;
}

int ccd_train_bpr(ccd_recmodel *m, const ccd_block *blk, const ccd_csr *exclude,
                  const ccd_train_opts *o, ccd_epoch_fn on_epoch, void *ctx,
                  ccd_block_metrics *best, int *best_epoch)
{
    return ccd_train_stage(m, blk, exclude, o, false, NULL, on_epoch, ctx, best, best_epoch);
}

/* One epoch's training: a fresh sample of (train, exclusions) triples, its BPR mini-batches
 * with the batch hook, then the epoch hook. Returns the summed loss; negative or NaN when memory
 * runs out, a hook fails or o->stop is raised (the caller tells which by the flag). */
static double train_epoch(ccd_recmodel *m, ccd_adam *adam, const ccd_block *blk,
                          const ccd_csr *exclude, const ccd_train_opts *o, bool clamp,
                          const ccd_train_hooks *hooks, ccd_rng *rng, int epoch)
{
    ccd_triples t;
    if (ccd_bpr_sample(&t, &blk->train, exclude, m->n_items, o->stage.nns, rng) != 0)
        return -1.0;
    ccd_train_hooks h = hooks ? *hooks : (ccd_train_hooks){0};
    h.stop = o->stop;
    double loss = ccd_bpr_epoch(m, adam, &t, o->stage.batch, clamp, &h);
    ccd_triples_free(&t);
    if (loss >= 0 && hooks && hooks->epoch) {
        double extra = hooks->epoch(hooks->ctx, m, adam, epoch - 1);
        loss = extra >= 0.0 ? loss + extra : -1.0;
    }
    return loss;
}

/* The best evaluated epoch so far. */
typedef struct {
    float *emb0; /* (nodes x dim) its weights */
    double r20;  /* its valid R@20 (-1 before the first evaluation) */
    int epoch;   /* 0 before the first evaluation */
    ccd_block_metrics metrics;
    int stale; /* evaluations since it */
} selection;

/* m's embedding scorer, failing once the stop is raised: the evaluation asks for its rows chunk
 * by chunk (the same chunks, so the same results), which makes it a poll point (an evaluation
 * of Yelp block 0 takes 1-3 s, longer with teachers side by side on a loaded host). */
typedef struct {
    ccd_scorer inner;
    const atomic_int *stop;
} stoppable_scorer;

static int stoppable_rows(const ccd_scorer *s, const int *users, int n, float *out)
{
    const stoppable_scorer *w = s->ctx;
    return ccd_stop_raised(w->stop) ? -1 : w->inner.rows(&w->inner, users, n, out);
}

/* Evaluate m on blk's valid split into r, and select its weights when their valid R@20 beats
 * the best so far (strictly: the earlier epoch wins a tie). Returns 0 or -1 (out of memory, or
 * stopped). */
static int evaluate_and_select(ccd_recmodel *m, const ccd_block *blk, const ccd_train_opts *o,
                               size_t n_params, ccd_epoch_report *r, selection *sel)
{
    double t0 = ccd_now();
    ccd_recmodel_propagate_all(m);
    stoppable_scorer w = {.inner = ccd_scorer_embeddings(m->final,
                                                         m->final + (size_t)m->n_users * m->dim,
                                                         m->n_users, m->n_items, m->dim),
                          .stop = o->stop};
    ccd_scorer s = {
        .n_users = m->n_users, .n_items = m->n_items, .rows = stoppable_rows, .ctx = &w};
    if (ccd_evaluate_scorer(&s, blk, 1, &r->metrics) != 0)
        return -1;
    r->eval_seconds = ccd_now() - t0;
    if (o->eval_seconds) {
#pragma omp atomic update
        *o->eval_seconds += r->eval_seconds;
    }
    r->evaluated = true;
    if (r->metrics.valid.recall[CCD_K20] > sel->r20) {
        sel->r20 = r->metrics.valid.recall[CCD_K20];
        memcpy(sel->emb0, m->emb0, n_params * sizeof *sel->emb0);
        sel->epoch = r->epoch;
        sel->metrics = r->metrics;
        r->improved = true;
        sel->stale = 0;
    } else {
        sel->stale++;
    }
    return 0;
}

int ccd_train_stage(ccd_recmodel *m, const ccd_block *blk, const ccd_csr *exclude,
                    const ccd_train_opts *o, bool clamp, const ccd_train_hooks *hooks,
                    ccd_epoch_fn on_epoch, void *ctx, ccd_block_metrics *best, int *best_epoch)
{
    const ccd_stage_opts *so = &o->stage;
    const size_t n_params = (size_t)ccd_recmodel_nodes(m) * m->dim;
    ccd_adam adam;
    if (ccd_adam_init(&adam, n_params, so->lr, so->weight_decay) != 0)
        return -1;
    adam.lazy_decay = so->lazy_decay;
    selection sel = {.emb0 = ccd_floats(n_params), .r20 = -1.0};
    if (!sel.emb0) {
        ccd_adam_free(&adam);
        return -1;
    }
    memcpy(sel.emb0, m->emb0, n_params * sizeof *sel.emb0);
    ccd_rng rng;
    ccd_rng_init(&rng, o->seed, o->stream);
    int rc = 0;
    for (int epoch = 1; epoch <= so->epochs; epoch++) {
        if (ccd_stop_raised(o->stop)) {
            rc = CCD_STOPPED;
            break;
        }
        ccd_epoch_report r;
        memset(&r, 0, sizeof r);
        r.epoch = epoch;
        double t0 = ccd_now();
        r.loss = train_epoch(m, &adam, blk, exclude, o, clamp, hooks, &rng, epoch);
        if (!(r.loss >= 0)) {
            rc = ccd_stop_raised(o->stop) ? CCD_STOPPED : -1;
            break;
        }
        r.train_seconds = ccd_now() - t0;
        /* epochs 1, 1 + N, 1 + 2N, ... and the last: with N = 5 and 6 epochs this is the
         * reference's schedule (it can only ever select epoch 1 or 6) */
        if (((epoch - 1) % so->eval_every == 0 || epoch == so->epochs) &&
            evaluate_and_select(m, blk, o, n_params, &r, &sel) != 0) {
            rc = ccd_stop_raised(o->stop) ? CCD_STOPPED : -1;
            break;
        }
        if (on_epoch)
            on_epoch(&r, ctx);
        if (r.evaluated && so->patience > 0 && sel.stale >= so->patience)
            break;
    }
    if (rc != CCD_STOPPED) { /* stopped: nothing is kept, so nothing to restore */
        memcpy(m->emb0, sel.emb0, n_params * sizeof *sel.emb0);
        ccd_recmodel_propagate_all(m);
    }
    if (best)
        *best = sel.metrics;
    if (best_epoch)
        *best_epoch = sel.epoch;
    free(sel.emb0);
    ccd_adam_free(&adam);
    return rc;
}

double ccd_replay_epoch(ccd_recmodel *m, ccd_adam *adam, const ccd_replay_set *r, int batch,
                        float lambda, ccd_rng *rng, const atomic_int *stop)
{
    if (r->n == 0)
        return 0.0;
    const int nodes = ccd_recmodel_nodes(m), d = m->dim;
    int *order = malloc((size_t)r->n * sizeof *order); /* (n) shuffled pair indices */
    int *stamp = malloc((size_t)nodes * sizeof *stamp);
    int *rows = malloc((size_t)batch * 2 * sizeof *rows); /* (<= 2 batch) unique node rows */
    if (!order || !stamp || !rows) {
        free(order), free(stamp), free(rows);
        return -1.0;
    }
    for (int64_t k = 0; k < r->n; k++)
        order[k] = (int)k;
    ccd_rng_shuffle_int(rng, order, (size_t)r->n);
    for (int v = 0; v < nodes; v++)
        stamp[v] = -1;
    double loss = 0.0;
    int step = 0;
    for (int64_t b0 = 0; b0 < r->n; b0 += batch, step++) {
        if (ccd_stop_raised(stop)) {
            loss = CCD_STOPPED;
            break;
        }
        int b = (int)(r->n - b0 < batch ? r->n - b0 : batch);
        int n = 0;
        for (int k = 0; k < b; k++) {
            int e = order[b0 + k];
            int v[2] = {r->user[e], m->n_users + r->item[e]};
            for (int c = 0; c < 2; c++)
                if (stamp[v[c]] != step) {
                    stamp[v[c]] = step;
                    rows[n++] = v[c];
                }
        }
        ccd_recmodel_forward(m, rows, n);
        /* L = lambda sum BCE(sigmoid(s), y); dL/ds = lambda (sigmoid(s) - y) */
        for (int k = 0; k < b; k++) {
            int e = order[b0 + k];
            const float *eu = m->final + (size_t)r->user[e] * d;
            const float *ei = m->final + (size_t)(m->n_users + r->item[e]) * d;
            float *gu = m->dfinal + (size_t)r->user[e] * d;
            float *gi = m->dfinal + (size_t)(m->n_users + r->item[e]) * d;
            double s = 0.0;
            for (int c = 0; c < d; c++)
                s += (double)eu[c] * ei[c];
            double y = r->label[e];
            /* -y log sig(s) - (1-y) log(1 - sig(s)) = softplus(s) - y s */
            double sp = s > 0 ? s + log1p(exp(-s)) : log1p(exp(s));
            loss += lambda * (sp - y * s);
            float g = (float)(lambda * (1.0 / (1.0 + exp(-s)) - y));
            for (int c = 0; c < d; c++) {
                gu[c] += g * ei[c];
                gi[c] += g * eu[c];
            }
        }
        ccd_recmodel_backward(m, rows, n);
        ccd_adam_step(adam, m->emb0, m->grad);
    }
    free(order), free(stamp), free(rows);
    return loss;
}
