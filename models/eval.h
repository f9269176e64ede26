/* eval: Recall@K and NDCG@K per block, exactly as algorithm section 7.
 *
 * For block j, every user u in Te_j that the model has (u < n_users) and that is active in block j
 * is scored against all of the model's items. The item list is truncated to the top 1000 (ties
 * broken by lower item id), the items of the block's mask are dropped, and the first K survivors
 * are compared with the ground truth:
 *   valid: G = Va_j(u), mask = Tr_j(u) u Te_j(u);   test: G = Te_j(u), mask = Tr_j(u) u Va_j(u)
 *   R@K = |L[:K] n G| / |G|;  N@K = DCG@K / IDCG@min(|G|, K)
 * and averaged over the users evaluated. Only block j's own interactions are masked.
 *
 * Scores come from SGEMM over chunks of users, so memory is O(chunk x items), never
 * users x items; each user is scored once for all requested blocks. */
#ifndef CCD_EVAL_H
#define CCD_EVAL_H

#include "dataset.h"
#include "scorer.h"

enum { CCD_K20 = 0, CCD_K50 = 1, CCD_NK = 2 };
extern const int ccd_eval_k[CCD_NK]; /* {20, 50} */
#define CCD_EVAL_TRUNCATE 1000

typedef struct {
    double recall[CCD_NK], ndcg[CCD_NK];
    int n_users; /* users evaluated */
} ccd_metrics;

typedef struct {
    ccd_metrics valid, test;
} ccd_block_metrics;

/* Evaluate final embeddings user_emb (n_users x d) and item_emb (n_items x d) on
 * blocks[0..n_blocks), writing out[j]. Returns 0 or -1 (out of memory). */
int ccd_evaluate(const float *user_emb, const float *item_emb, int n_users, int n_items, int d,
                 const ccd_block *blocks, int n_blocks, ccd_block_metrics *out);

/* The same for any scorer (an ensemble, say). */
int ccd_evaluate_scorer(const ccd_scorer *s, const ccd_block *blocks, int n_blocks,
                        ccd_block_metrics *out);

/* The metrics of one ranked list (exposed for tests): ranked holds item ids best first; items in
 * mask are skipped; gt is the ground truth. mask and gt are sorted arrays. Returns the number of
 * survivors considered. */
void ccd_metrics_of_list(const int *ranked, int n_ranked, const int *mask_a, int n_mask_a,
                         const int *mask_b, int n_mask_b, const int *gt, int n_gt,
                         double recall[CCD_NK], double ndcg[CCD_NK]);

/* The popularity baseline: every user ranks items by their number of distinct train users in
 * `source` (ties by lower id), evaluated on blocks[0..n) like any model. */
int ccd_evaluate_popularity(const ccd_block *source, const ccd_block *blocks, int n,
                            ccd_block_metrics *out);
/* The same, with every row also handed to tee once evaluated: all users 0..n_users-1 are scored
 * in order, in chunks, and tee(ctx, first_user, n, rows) receives each chunk (n x n_items),
 * which it may overwrite. One pass over an expensive scorer (the ensemble) then serves both the
 * evaluation and, say, its top lists. A nonzero return from tee fails the call (-1). */
typedef int (*ccd_rows_fn)(void *ctx, int first_user, int n, float *rows);
int ccd_evaluate_scorer_tee(const ccd_scorer *sc, const ccd_block *blocks, int n_blocks,
                            ccd_block_metrics *out, ccd_rows_fn tee, void *tee_ctx);

#endif
