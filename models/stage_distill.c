/* stage_distill: the ensemble E_k and KD(k). E_k's evaluation and its top lists come from one
 * pass over its rows (the costliest scorer of a block: users x items x teachers); KD(k)
 * (section 4) distils E_k into D_k with ranking distillation on both sides. */
#include <stdlib.h>
#include <string.h>

#include "block.h"
#include "distill.h"

/* KD(k) (section 4): a fresh student (with kd_warm_start, CL_k) distilled from E_k. Writes D_k's
 * table to *out. e_top: E_k's top-kd_interesting lists with Tr_k filtered (computed by the caller).
 */
int stage_distill(block_ctx *b, ccd_state *st, const ccd_scorer *ens, const int *e_top,
                  const int *e_users, float **out, int *best_epoch)
{
    const ccd_config *cfg = b->cfg;
    const int K = cfg->exclusion_topk, ds = st->student_dim;
    pairs x = {0};
    ccd_csr excl = {0};
    ccd_recmodel m = {0};
    int rc = -1;
    /* Exclusion (section 4.1): F_S, F_P (k >= 2) and CL_k, each with Tr_k filtered. */
    if (b->s_top && cfg->use_s &&
        block_add_topk(&x, &b->s_proxy.scorer, &b->filter_both, &b->blk->train, K) != 0)
        goto done;
    if (b->p_top && cfg->use_p && b->k >= 2 &&
        block_add_topk(&x, &b->p_proxy.scorer, &b->filter_both, &b->blk->train, K) != 0)
        goto done;
    if (b->student && block_add_topk(&x, &b->cl.scorer, &b->blk->train, NULL, K) != 0)
        goto done;
    if (ccd_csr_from_pairs(&excl, b->nu, b->ni, x.u, x.i, x.n) != 0)
        goto done;
    ccd_rng init;
    ccd_rng_init(&init, cfg->seed, ccd_stream(CCD_STREAM_KD_INIT, b->k, 0));
    if (ccd_recmodel_init(&m, CCD_MODEL_LIGHTGCN, b->nu, b->ni, ds, &b->g_cur, &init) != 0)
        goto done;
    m.score_graph = b->score_cur;
    /* Warm start: D_k continues CL_k's lineage, so the next student (which starts from D_k)
     * keeps what CL_k remembers and the proxies average one model's successive versions. */
    if (cfg->kd_warm_start && b->student)
        memcpy(m.emb0, b->student, (size_t)(b->nu + b->ni) * ds * sizeof(float));
    ccd_kd_inputs in = {
        .ensemble = ens,
        .exclude = excl.nnz ? &excl : NULL,
        .ensemble_top = e_top,
        .ensemble_top_users = e_users,
        .n_interesting = cfg->kd_interesting,
        .n_unint_items = cfg->kd_uninteresting_items == CCD_AUTO ? ccd_rule_unint_items(b->ni)
                                                                 : cfg->kd_uninteresting_items,
        .n_unint_users = cfg->kd_uninteresting_users == CCD_AUTO ? ccd_rule_unint_users(b->nu)
                                                                 : cfg->kd_uninteresting_users,
        .item_chunk = block_grown(1024, b->growth),
        .lambda = cfg->kd_lambda,
        .train_items_first = cfg->kd_train_items_first,
        .absent_users = cfg->kd_absent_users,
        /* only a warm start has rows worth holding: a fresh D_k's are random */
        .hold_absent_users = cfg->kd_hold_absent_users && cfg->kd_warm_start && b->student,
        .block = b->k};
    ccd_train_opts o = block_train_opts(b, &cfg->kd, cfg->seed, CCD_STREAM_KD_SAMPLER);
    if (ccd_distill(&m, b->blk, &in, &o, NULL, best_epoch) != 0)
        goto done;
    *out = block_copy_floats(m.emb0, (size_t)(b->nu + b->ni) * ds);
    rc = *out ? 0 : -1;
done:
    block_pairs_free(&x);
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
int stage_ensemble_tops(const ccd_config *cfg, const ccd_scorer *ens, const ccd_block *blk,
                        const ccd_block *eval, int n_eval, ccd_block_metrics *metrics, int **items,
                        int **users)
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
