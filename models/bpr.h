/* bpr: the BPR sampler and loss (algorithm section 2.5).
 *
 * One epoch of triples: for every distinct (u, i+) of the block's train set, nns negatives drawn
 * uniformly from [0, n_items), rejecting the user's train items and the user's exclusion list
 * X(u) (rows past X's end exclude only positives). The triples are then shuffled into batches.
 *
 * Loss over a batch (a sum, not a mean): L = sum -log sigmoid(x), x = s(u,i+) - s(u,j), with
 * s(u,i) = e_u . e_i on the final embeddings; clamp=1 bounds sigmoid to [1e-4, 0.9999] first
 * (distillation's variant). */
#ifndef CCD_BPR_H
#define CCD_BPR_H

#include <stdbool.h>
#include <stdint.h>

#include "rng.h"
#include "sparse.h"

typedef struct {
    int64_t n;
    int *user, *pos, *neg; /* (n) each; item ids are item rows, not node rows */
} ccd_triples;

/* Draw an epoch's triples in shuffled order. exclude may be NULL. A user whose train items and
 * exclusions cover every item gets no triple. Returns 0 or -1 (out of memory). */
int ccd_bpr_sample(ccd_triples *t, const ccd_csr *train, const ccd_csr *exclude, int n_items,
                   int nns, ccd_rng *rng);
void ccd_triples_free(ccd_triples *t);

/* Forward over b triples on final (nodes x d, users first, items at n_users + i). Writes
 * dx[k] = dL/dx_k and returns the summed loss. */
double ccd_bpr_forward(const float *final, int n_users, int d, const int *user, const int *pos,
                       const int *neg, int b, bool clamp, float *dx);
/* Accumulate dL/dE into dfinal (same layout as final). */
void ccd_bpr_backward(const float *final, float *dfinal, int n_users, int d, const int *user,
                      const int *pos, const int *neg, int b, const float *dx);

#endif
