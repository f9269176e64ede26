/* block: the helpers the stages of a block step share. See block.h. */
#include "block.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dense.h"
#include "expand.h"

void block_say(const logger *lg, const char *fmt, ...)
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

int block_score(scored_model *sm, ccd_model_type type, const float *emb0, int n_users, int n_items,
                int dim, const ccd_csr *graph, int keep_layer1)
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
    sm->scorer =
        ccd_scorer_embeddings(sm->final, sm->final + (size_t)n_users * dim, n_users, n_items, dim);
    return 0;
}

void block_scored_free(scored_model *sm)
{
    free(sm->final);
    free(sm->layer1);
    memset(sm, 0, sizeof *sm);
}

int block_pairs_add_topk(pairs *p, const int *topk, int rows, int k)
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

void block_pairs_free(pairs *p)
{
    free(p->u);
    free(p->i);
    memset(p, 0, sizeof *p);
}

/* The k best items per user of a scorer under a filter: (n_users x k), NULL on failure. */
int *block_topk_of(const ccd_scorer *s, const ccd_csr *f1, const ccd_csr *f2, int k)
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
int block_add_topk(pairs *x, const ccd_scorer *s, const ccd_csr *f1, const ccd_csr *f2, int k)
{
    int *top = block_topk_of(s, f1, f2, k);
    int rc = top ? block_pairs_add_topk(x, top, s->n_users, k) : -1;
    free(top);
    return rc;
}

float *block_copy_floats(const float *src, size_t n)
{
    float *p = ccd_floats(n);
    if (p)
        memcpy(p, src, n * sizeof *p);
    return p;
}

double block_replay_epoch(void *vctx, ccd_recmodel *m, ccd_adam *adam, int epoch)
{
    replay_ctx *c = vctx;
    float lambda = c->lambda * expf(-(float)epoch / c->anneal);
    return ccd_replay_epoch(m, adam, c->set, c->batch, lambda, &c->rng, c->stop);
}

int block_grown(int batch, double growth)
{
    return (int)ceil(batch * growth);
}

ccd_train_opts block_train_opts(block_ctx *b, const ccd_stage_opts *s, uint64_t seed,
                                ccd_stream_kind sampler)
{
    ccd_train_opts o = {.stage = *s,
                        .seed = seed,
                        .stream = ccd_stream(sampler, b->k, 0),
                        .stop = b->stop,
                        .eval_seconds = &b->rep->seconds_eval};
    o.stage.batch = block_grown(s->batch, b->growth);
    return o;
}

/* The fast path: hand CL_k's propagated embeddings to the caller before the teacher side. */
int block_announce_student(const block_ctx *b, const ccd_block_hooks *hooks, const float *emb0,
                           int dim)
{
    if (!hooks)
        return 0;
    if (hooks->student_ready) {
        ccd_block_metrics m;
        if (ccd_evaluate_scorer(&b->cl.scorer, b->blk, 1, &m) != 0 ||
            hooks->student_ready(hooks->ctx, b->cl.final, b->nu, b->ni, dim, &m) != 0)
            return -1;
    }
    if (hooks->student_table)
        hooks->student_table(hooks->ctx, emb0, b->nu, b->ni, dim);
    return 0;
}

/* Expand a layer-0 table from the previous id space to the current one (section 5.4). */
float *block_expand(const block_ctx *b, const float *old, int dim)
{
    float *t = ccd_floats((size_t)(b->nu + b->ni) * dim);
    if (t && ccd_expand_init(old, b->pu, b->pi, dim, &b->blk->train, b->nu, b->ni,
                             b->cfg->init_topk, t) != 0) {
        free(t);
        return NULL;
    }
    return t;
}

int block_ensemble_build(ensemble_model *e, const ccd_state *st, float *const *tables, int nu,
                         int ni, const ccd_csr *graph, const atomic_int *stop)
{
    memset(e, 0, sizeof *e);
    for (int m = 0; m < st->n_teachers; m++) {
        if (block_score(&e->t[m], st->teacher_spec[m].type, tables[m], nu, ni,
                        st->teacher_spec[m].dim, graph, 0) != 0)
            return -1;
        e->scorers[m] = e->t[m].scorer;
        e->n = m + 1;
    }
    e->ens = (ccd_ensemble){.teachers = e->scorers,
                            .n_teachers = e->n,
                            .n_users = nu,
                            .n_items = ni,
                            .stop = stop,
                            .scratch = ccd_ensemble_scratch_new()};
    e->scorer = ccd_scorer_ensemble(&e->ens);
    return e->ens.scratch ? 0 : -1;
}

void block_ensemble_free(ensemble_model *e)
{
    for (int m = 0; m < e->n; m++)
        block_scored_free(&e->t[m]);
    ccd_ensemble_scratch_free(e->ens.scratch);
    memset(e, 0, sizeof *e);
}
