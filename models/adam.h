/* adam: dense Adam with coupled L2 weight decay (algorithm section 2.5), as torch.optim.Adam:
 *   g += wd * p;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
 *   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 * Every step updates every row, including rows outside the batch (they still move through
 * momentum and decay); lazy/sparse Adam would be a different optimiser.
 *
 * lazy_decay (off unless a stage asks for it: ccd.<stage>.lazy_decay) leaves the L2 term out
 * for parameters whose gradient is exactly zero in the step, that is rows no term of the
 * batch touched. Why it matters: for such a row the only gradient is wd * p, and Adam divides
 * it by its own magnitude, so each step moves every coordinate by about lr towards zero
 * whatever wd is. Over a continual stage's few hundred steps that erases the rows of users
 * and items absent from the block (docs/algorithm.md, "Weight decay on idle rows"). Momentum
 * still moves them as in dense Adam. */
#ifndef CCD_ADAM_H
#define CCD_ADAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    size_t n;     /* number of parameters */
    float *m, *v; /* (n) first and second moments */
    int64_t t;    /* steps taken */
    float lr, beta1, beta2, eps, weight_decay;
    bool lazy_decay; /* no L2 on parameters with a zero gradient (above) */
} ccd_adam;

int ccd_adam_init(ccd_adam *a, size_t n, float lr, float weight_decay);
void ccd_adam_free(ccd_adam *a);
/* One step on param (n) with gradient grad (n); grad is not modified. */
void ccd_adam_step(ccd_adam *a, float *param, const float *grad);

#endif
