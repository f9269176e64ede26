/* lwckd: one contrastive term of layer-wise contrastive KD (algorithm section 6.3).
 *
 * For n frozen target vectors b_t (n x d), m trainable neighbour vectors N (m x d) and 0/1
 * relation rows A_t (row rel_rows[t] of rel, whose columns index the neighbours):
 *   z_t = N b_t / tau;  log p_t = log_softmax(z_t) over all m neighbours;
 *   l_t = sum_j A_tj log p_tj / (sum_j A_tj + 1e-8);
 *   L   = -(1 / n_count) sum_t w_t l_t
 * with w_t the multiplicity of target t (a batch lists a user once per occurrence; identical
 * rows are passed once with their count) and n_count = the number of occurrences in the batch.
 * A target with an empty relation row contributes 0 and no gradient (but counts in n_count).
 * The logits and the neighbour gradient are SGEMMs over chunks of targets, so memory is
 * O(chunk x m). */
#ifndef CCD_LWCKD_H
#define CCD_LWCKD_H

#include <stdint.h>

#include "sparse.h"

/* Returns scale * L and adds scale * dL/dN to d_neighbours (m x d). weights may be NULL
 * (all 1); d_neighbours may be NULL (loss only). rel_rows[t] < 0 or >= rel->n_rows is an empty
 * row; rel's column indices must be < m. n <= 0 or n_count <= 0 returns 0 and adds nothing.
 * Returns NaN on allocation failure, with d_neighbours untouched. */
double ccd_lwc_term(const float *targets, const float *weights, int n, double n_count,
                    const float *neighbours, int m, int d, const ccd_csr *rel, const int *rel_rows,
                    float tau, float scale, float *d_neighbours);

/* The same with a sampled softmax when the neighbours are many (large catalogues): when
 * m > max_neighbours, the targets go in groups of 256, and each group's softmax runs over C =
 * the group's relation columns R plus max_neighbours columns drawn uniformly (without
 * replacement) from the rest, the drawn ones weighted by (m - |R|) / max_neighbours (their logits
 * shifted by its log) so that their sum estimates the rest's. A term then costs
 * O(n x (max_neighbours + 256 x relation degree) x d) instead of O(n x m x d), however large n.
 * The draws come from RNG stream (seed, stream). max_neighbours <= 0 or m <= max_neighbours is
 * exactly ccd_lwc_term. Returns NaN on allocation failure; d_neighbours may then hold part of the
 * gradient (the caller's step fails). */
double ccd_lwc_term_sampled(const float *targets, const float *weights, int n, double n_count,
                            const float *neighbours, int m, int d, const ccd_csr *rel,
                            const int *rel_rows, float tau, float scale, float *d_neighbours,
                            int max_neighbours, uint64_t seed, uint64_t stream);

#endif
