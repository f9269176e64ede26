/* distill: ranking distillation from the teacher ensemble into a fresh student (section 4).
 *
 * The student is trained on block k with BPR (clamped) plus the DE-RRD relaxed ranking loss on
 * both sides, on layer-0 scores p_u . q_i:
 *   per mini-batch, for each distinct user u of the batch:
 *     0.01 * l(s(u, A_u), s(u, N_u)),   A_u = the ensemble's 40 best items for u (interesting),
 *                                        N_u = nui items drawn uniformly from the eligible ones;
 *   after the BPR batches, an item pass over chunks of 1024 shuffled items, one Adam step each:
 *     0.01 * sum_i l(s(B_i, i), s(N_i, i)), B_i = the ensemble's 40 best users for item i.
 *   l(s+, s-) = sum_k [ log(sum_{j>=k} e^{s+_j} + sum_m e^{s-_m} + 1e-8) - s+_k ], scores clamped
 *   at 10 (no gradient where clamped).
 * Eligible (u, i): not a train pair, i not in X(u), i not in A_u, u not in B_i. The uninteresting
 * sets are drawn once per block, but never stored: row e's set is a function of the seed and e
 * alone (its own RNG stream), so each batch regenerates the sets of its rows and scores them with
 * gathered dot products. Memory is O(pairs + (users + items) x k) and a row costs
 * O((k + nui) x d), whatever the catalogue size. */
#ifndef CCD_DISTILL_H
#define CCD_DISTILL_H

#include <stdbool.h>
#include <stdint.h>

#include "dataset.h"
#include "eval.h"
#include "recmodel.h"
#include "rng.h"
#include "scorer.h"
#include "train.h"

typedef struct {
    const ccd_scorer *ensemble;    /* E_k, at least (n_users x n_items) of the block */
    const ccd_csr *exclude;        /* X: negative-exclusion lists (may be NULL, or fewer rows) */
    const int *ensemble_top;       /* optional (n_users x n_interesting): the ensemble's best items
                                    * per user with train pairs filtered, if already computed */
    const int *ensemble_top_users; /* optional (n_items x n_interesting): the ensemble's best
                                    * users per item with train pairs filtered */
    int n_interesting;             /* 40 */
    int n_unint_items;             /* nui: 10000 on Yelp */
    int n_unint_users;             /* nuu: 11500 on Yelp */
    float lambda;                  /* 0.01 */
    int item_chunk;                /* items per Adam step of the item pass (0: 1024) */
    bool train_items_first;        /* the reference's NaN-first interesting lists (section 9.3) */
    bool absent_users; /* also distil, once per epoch in chunks of item_chunk, the users with no
                          train pair in the block (the ensemble ranks them too) */
    bool hold_absent_users; /* leave the layer-0 rows of the users with no train pair in the
                               block as m has them at the start (a warm start's CL_k): every
                               Adam step puts them back. Overrides absent_users. */
    int block;              /* k: names the item pass's and the uninteresting draws' streams */
} ccd_kd_inputs;

/* The relaxed ranking loss of one row and its gradient (exposed for tests):
 * pos (k) interesting scores in order, neg (n) uninteresting scores; writes dl/dpos, dl/dneg. */
double ccd_rrd_loss(const float *pos, int k, const float *neg, int n, float *dpos, float *dneg);

/* The uninteresting draw of one row (exposed for tests): up to `want` distinct columns of
 * [0, n_cols) not in skip (sorted, unique, n_skip entries), uniformly, from RNG stream (seed,
 * stream). Writes them to out (n_cols) and returns their number, min(want, eligible). They are
 * in ascending order except for a sparse rejection draw on a catalogue with more 64-column words
 * than draws, which keeps the order drawn. taken ((n_cols + 63) / 64 words) is a scratch bitmap,
 * all clear on entry and left clear. */
int ccd_uninteresting_draw(uint64_t seed, uint64_t stream, int n_cols, const int *skip,
                           int64_t n_skip, int want, uint64_t *taken, int *out);

/* Train the fresh student m (already initialised on block blk's graph) by distillation.
 * Returns 0, or -1 on allocation failure. */
int ccd_distill(ccd_recmodel *m, const ccd_block *blk, const ccd_kd_inputs *in,
                const ccd_train_opts *o, ccd_block_metrics *best, int *best_epoch);

#endif
