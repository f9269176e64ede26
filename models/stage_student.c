/* stage_student: S_update(k), the continual student of block k (algorithm section 5): CL_k
 * expanded from D_{k-1} (or CL_{k-1}), trained on block k with the F_S / F_P exclusion lists and
 * the replay of pairs drawn from the stability and plasticity proxies S_{k-1} and P_{k-1}. */
#include <stdlib.h>
#include <string.h>

#include "block.h"
#include "dense.h"

/* The EMA merge of a proxy (section 5.2); see ccd.h. */
float *ccd_proxy_merge(const float *old, int old_users, int old_items, const float *dk, int n_users,
                       int n_items, int dim, float w)
{
    float *p = block_copy_floats(dk, (size_t)(n_users + n_items) * dim);
    if (!p || !old)
        return p;
    for (int u = 0; u < old_users; u++)
        for (int c = 0; c < dim; c++)
            p[(size_t)u * dim + c] =
                w * old[(size_t)u * dim + c] + (1.0f - w) * p[(size_t)u * dim + c];
    for (int i = 0; i < old_items; i++) {
        const float *o = old + (size_t)(old_users + i) * dim;
        float *q = p + (size_t)(n_users + i) * dim;
        for (int c = 0; c < dim; c++)
            q[c] = w * o[c] + (1.0f - w) * q[c];
    }
    return p;
}

static const ccd_student_block_opts *student_opts(const ccd_config *c, int k)
{
    int idx = k - 1 < c->n_student_blocks ? k - 1 : c->n_student_blocks - 1;
    return &c->student_blocks[idx < 0 ? 0 : idx];
}

/* The proxies S_{k-1}, P_{k-1} (section 5.2) into b: copies of D_0 at k = 1, EMA merges of
 * the state's with base later; scored on R_{k-1}, with their filtered top lists (F_S; F_P from
 * block 2 on). */
static int student_proxies(block_ctx *b, const ccd_state *st, const ccd_student_block_opts *so,
                           const float *base)
{
    const int ds = st->student_dim, K = b->cfg->exclusion_topk;
    if (b->k == 1) {
        b->proxy_s = block_copy_floats(base, (size_t)(b->pu + b->pi) * ds);
        b->proxy_p = block_copy_floats(base, (size_t)(b->pu + b->pi) * ds);
    } else {
        b->proxy_s = ccd_proxy_merge(st->proxy_s, st->proxy_users, st->proxy_items, base, b->pu,
                                     b->pi, ds, so->sw);
        b->proxy_p = ccd_proxy_merge(st->proxy_p, st->proxy_users, st->proxy_items, base, b->pu,
                                     b->pi, ds, so->pw);
    }
    if (!b->proxy_s || !b->proxy_p ||
        block_score(&b->s_proxy, CCD_MODEL_LIGHTGCN, b->proxy_s, b->pu, b->pi, ds, b->score_prev,
                    0) != 0 ||
        block_score(&b->p_proxy, CCD_MODEL_LIGHTGCN, b->proxy_p, b->pu, b->pi, ds, b->score_prev,
                    0) != 0)
        return -1;
    b->s_top = block_topk_of(&b->s_proxy.scorer, &b->filter_both, NULL, K);
    b->p_top = b->k == 1 ? NULL : block_topk_of(&b->p_proxy.scorer, &b->filter_both, NULL, K);
    return !b->s_top || (b->k > 1 && !b->p_top) ? -1 : 0;
}

/* The exclusion lists (section 5.1), when distilling: E_{k-1}'s (filtered) and the starting
 * model w's; S's and P's (unfiltered) from block 2 on. */
static int student_exclusions(const block_ctx *b, const scored_model *w, ccd_csr *excl)
{
    const ccd_config *cfg = b->cfg;
    const int K = cfg->exclusion_topk;
    pairs x = {0};
    int rc = -1;
    if (cfg->distill) {
        if (block_pairs_add_topk(&x, b->e_prev_top, b->pu, K) != 0 ||
            block_add_topk(&x, &w->scorer, NULL, NULL, K) != 0)
            goto done;
        if (b->k >= 2 && (cfg->use_s || cfg->use_p) &&
            (block_add_topk(&x, &b->s_proxy.scorer, NULL, NULL, K) != 0 ||
             block_add_topk(&x, &b->p_proxy.scorer, NULL, NULL, K) != 0))
            goto done;
    }
    rc = ccd_csr_from_pairs(excl, b->pu, b->pi, x.u, x.i, x.n);
done:
    block_pairs_free(&x);
    return rc;
}

/* The replay set (section 5.3) into rs: pairs drawn from S and/or P (P from block 2 on, or
 * alone), ranked against the starting model w. */
static int student_replay(const block_ctx *b, const ccd_student_block_opts *so,
                          const scored_model *w, ccd_replay_set *rs)
{
    const ccd_config *cfg = b->cfg;
    if (!cfg->replay || !(cfg->use_s || cfg->use_p))
        return 0;
    ccd_rng rng;
    ccd_rng_init(&rng, cfg->seed, ccd_stream(CCD_STREAM_STUDENT_REPLAY, b->k, 0));
    ccd_filter f = {.sets = {&b->filter_both}, .n_sets = 1};
    int use_s = cfg->use_s, use_p = cfg->use_p && (b->k >= 2 || !cfg->use_s);
    if (use_s && so->ss > 0 &&
        ccd_replay_sample(&b->s_proxy.scorer, &f, &w->scorer, so->ab, so->ss, cfg->replay_eps, &rng,
                          rs) != 0)
        return -1;
    if (use_p && so->ps > 0) {
        ccd_replay_set part = {0};
        int rc = ccd_replay_sample(&b->p_proxy.scorer, &f, &w->scorer, so->ab, so->ps,
                                   cfg->replay_eps, &rng, &part) == 0 &&
                         ccd_replay_merge(rs, &part) == 0
                     ? 0
                     : -1;
        ccd_replay_free(&part);
        return rc;
    }
    return 0;
}

/* CL_k: start expanded to block k, trained with the exclusions and the replay; into b->student
 * and, scored on R_k, b->cl. */
static int student_train(block_ctx *b, int ds, const float *start, const ccd_csr *excl,
                         const ccd_replay_set *rs, int *best_epoch)
{
    const ccd_config *cfg = b->cfg;
    ccd_recmodel m = {0};
    int rc = -1;
    ccd_rng init;
    ccd_rng_init(&init, cfg->seed, ccd_stream(CCD_STREAM_STUDENT_INIT, b->k, 0));
    if (ccd_recmodel_init(&m, CCD_MODEL_LIGHTGCN, b->nu, b->ni, ds, &b->g_cur, &init) != 0)
        goto done;
    m.score_graph = b->score_cur;
    float *expanded = block_expand(b, start, ds);
    if (!expanded)
        goto done;
    memcpy(m.emb0, expanded, (size_t)(b->nu + b->ni) * ds * sizeof(float));
    free(expanded);
    replay_ctx rc_ctx = {.set = rs,
                         .batch = block_grown(cfg->student.batch, b->growth),
                         .lambda = cfg->student_replay_lambda,
                         .anneal = cfg->student_anneal,
                         .stop = b->stop};
    ccd_rng_init(&rc_ctx.rng, cfg->seed, ccd_stream(CCD_STREAM_STUDENT_SHUFFLE, b->k, 0));
    ccd_train_hooks hooks = {.epoch = rs->n ? block_replay_epoch : NULL, .ctx = &rc_ctx};
    ccd_train_opts o = block_train_opts(b, &cfg->student, cfg->seed, CCD_STREAM_STUDENT_SAMPLER);
    block_say(&b->lg, "student update: %lld replay pairs, %lld exclusions", (long long)rs->n,
              (long long)excl->nnz);
    if (ccd_train_stage(&m, b->blk, excl, &o, false, &hooks, NULL, NULL, NULL, best_epoch) != 0)
        goto done;
    b->student = block_copy_floats(m.emb0, (size_t)(b->nu + b->ni) * ds);
    if (!b->student ||
        block_score(&b->cl, CCD_MODEL_LIGHTGCN, b->student, b->nu, b->ni, ds, b->score_cur, 0) != 0)
        goto done;
    rc = 0;
done:
    ccd_recmodel_free(&m);
    return rc;
}

/* What the proxies are EMAs of: the distilled students D_{k-1}, so that the teachers' knowledge
 * reaches CL_k through them whichever model the student continues from. st->distilled is absent
 * after a block that did not distil (a state resumed with ccd.distill turned back on): the
 * student stands in for it. */
static const float *proxy_base(const ccd_config *cfg, const ccd_state *st)
{
    return cfg->distill && st->distilled ? st->distilled : st->student;
}

/* The proxies and their top lists into b (when the config uses them). Split from the student
 * update because the teacher updates read them too: ccd_teacher_update rebuilds them through
 * this same function without training the student. They depend only on the previous state and
 * R_{k-1} (no random draws), so both paths get the same bytes. */
int stage_student_proxies(block_ctx *b, const ccd_state *st)
{
    const ccd_config *cfg = b->cfg;
    if (!cfg->use_s && !cfg->use_p)
        return 0;
    return student_proxies(b, st, student_opts(cfg, b->k), proxy_base(cfg, st));
}

/* Student update S_update(k) (section 5): proxies, exclusion, replay, expansion, training. */
int stage_student_update(block_ctx *b, ccd_state *st, int *best_epoch)
{
    const ccd_config *cfg = b->cfg;
    const int ds = st->student_dim;
    /* The model the student continues from: D_{k-1} as in the reference, or CL_{k-1} (when not
     * distilling, or when student_continues). */
    const float *start = cfg->student_continues ? st->student : proxy_base(cfg, st);
    scored_model w = {0};
    ccd_csr excl = {0};
    ccd_replay_set rs = {0};
    int rc = -1;
    if (block_score(&w, CCD_MODEL_LIGHTGCN, start, b->pu, b->pi, ds, b->score_prev, 0) != 0)
        goto done;
    if (stage_student_proxies(b, st) != 0)
        goto done;
    if (student_exclusions(b, &w, &excl) != 0 ||
        student_replay(b, student_opts(cfg, b->k), &w, &rs) != 0 ||
        student_train(b, ds, start, &excl, &rs, best_epoch) != 0)
        goto done;
    rc = 0;
done:
    block_scored_free(&w);
    ccd_csr_free(&excl);
    ccd_replay_free(&rs);
    return rc;
}
