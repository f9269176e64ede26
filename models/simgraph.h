/* simgraph: the user-user and item-item relation graphs of LWC-KD (algorithm section 6.2).
 *
 * Rows of the 0/1 matrix b (users of block k-1 in compact coordinates for UU; b transposed for
 * II) are L2-normalised (norm clamped at >= 1e-8) and their cosine C = b_hat b_hat^T computed
 * sparsely, row by row. A threshold t is chosen by bisection on [0.1001, 0.8999]: t = midpoint;
 * avgdeg = (number of off-diagonal entries with C > t) / rows; stop when |avgdeg - target| < 0.6
 * (at most 100 iterations); if avgdeg > target raise t (lo = t), else lower it (hi = t); when the
 * tolerance is never met the last t is used. The graph is 1[C > t] with a zero diagonal.
 * Only entries above the bracket's low end are ever stored. */
#ifndef CCD_SIMGRAPH_H
#define CCD_SIMGRAPH_H

#include "sparse.h"

/* out: (b->n_rows x b->n_rows) 0/1 pattern (values NULL). *threshold receives t.
 * Returns 0 or -1. */
int ccd_cosine_graph(const ccd_csr *b, double target_degree, ccd_csr *out, double *threshold);

#endif
