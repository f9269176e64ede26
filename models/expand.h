/* expand: grow a model to a new block's id space and initialise the new users and items
 * (algorithm section 5.4, with the "exactly topk candidates" bug of section 9.4 fixed).
 *
 * Old rows are copied. Each new user u (old_users <= u < n_users) gets
 *   e0(u) = (one_hop(u) + two_hop(u)) / 2
 *   one_hop(u) = mean of the old layer-0 embeddings of the OLD items (< old_items) u interacted
 *                with in R_k (zero vector if none; the reference divides by count + 1e-8);
 *   two_hop(u) = mean of the old layer-0 embeddings of a set of `topk` old users:
 *                candidates = old users v (< old_users) sharing at least one item with u in R_k
 *                (any item, new ones included); popularity = degree in R_k, higher is more popular,
 *                ties by lower id;
 *                c = 0: the topk most popular old users;
 *                0 < c <= topk: all c candidates plus the (topk - c) most popular non-candidates;
 *                c > topk: the topk most popular candidates.
 *                (If there are fewer than topk old users, all of them.)
 * New items: the same with users and items swapped (R_k transposed). Only block-k train data is
 * used. The tables are layer-0 tables [users; items] of dim d. */
#ifndef CCD_EXPAND_H
#define CCD_EXPAND_H

#include "sparse.h"

/* old_emb0: ((old_users + old_items) x d). r: R_k, (n_users x n_items) 0/1; it may have fewer
 * rows or columns (the missing ones are empty). new_emb0: ((n_users + n_items) x d), written in
 * full; it must not overlap old_emb0. topk <= 0 makes every two-hop term zero.
 * Returns 0, or -1 (old_users > n_users, old_items > n_items, r larger than n_users x n_items,
 * d <= 0, out of memory). */
int ccd_expand_init(const float *old_emb0, int old_users, int old_items, int d, const ccd_csr *r,
                    int n_users, int n_items, int topk, float *new_emb0);

#endif
