/* replay: the proxy-guided, rank-difference replay sampler (algorithm sections 5.3 and 6.5).
 *
 * For every user u < src->n_users (active or not), with src the source's score matrix F_X (the
 * proxy's filtered scores, or the student's) and ref the model being trained (W = D_{k-1} for the
 * student, T_0 for a teacher), both over items 0..src->n_items-1:
 *   candidates = the `ab` best items of src's row u after removing src_filter's entries
 *                (the reference's "-1e8" entries; rank by (score desc, id asc));
 *   weight(i)  = exp(eps * (rank_ref(u, i) - rank_src(u, i))), ranks 0-based over the row
 *                (rank_ref over ref's row restricted to items < src->n_items, unfiltered;
 *                 rank_src over src's row with the filtered entries ranked last);
 *   draw n_draw distinct candidates without replacement with probability proportional to
 *   weight (all of them if there are fewer), each labelled y = sigmoid(src score).
 * ref must have at least src->n_users rows and src->n_items items. */
#ifndef CCD_REPLAY_H
#define CCD_REPLAY_H

#include <stdint.h>

#include "rank.h"
#include "rng.h"
#include "scorer.h"

typedef struct {
    int64_t n;
    int *user, *item; /* (n) */
    float *label;     /* (n) soft labels in [0, 1] */
} ccd_replay_set;

/* Writes *out from scratch (whatever it held is not freed); free it with ccd_replay_free. The
 * pairs come grouped by user in increasing order, each user's in draw order. src_filter may be
 * NULL. ab is capped at src->n_items; ab <= 0 or n_draw <= 0 gives an empty set. The rng is used
 * only in user order (one 64-bit draw per sampled pair), so the result depends on its state and
 * the inputs only, not on the thread count. Returns 0, or -1 (ref smaller than src, a scorer
 * failing, out of memory) with *out empty. */
int ccd_replay_sample(const ccd_scorer *src, const ccd_filter *src_filter, const ccd_scorer *ref,
                      int ab, int n_draw, float eps, ccd_rng *rng, ccd_replay_set *out);

/* into = into u other; a (user, item) pair present in both (or twice in one) keeps the larger
 * label. The result is sorted by (user, item). other may be NULL or empty. Returns 0, or -1 (out
 * of memory) with into unchanged. */
int ccd_replay_merge(ccd_replay_set *into, const ccd_replay_set *other);

void ccd_replay_free(ccd_replay_set *r);

#endif
