/* adam: see adam.h. */
#include "adam.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dense.h"

int ccd_adam_init(ccd_adam *a, size_t n, float lr, float weight_decay)
{
    memset(a, 0, sizeof *a);
    a->n = n;
    a->lr = lr;
    a->beta1 = 0.9f;
    a->beta2 = 0.999f;
    a->eps = 1e-8f;
    a->weight_decay = weight_decay;
    a->m = ccd_floats(n);
    a->v = ccd_floats(n);
    if (!a->m || !a->v) {
        ccd_adam_free(a);
        return -1;
    }
    return 0;
}

void ccd_adam_free(ccd_adam *a)
{
    free(a->m);
    free(a->v);
    memset(a, 0, sizeof *a);
}

void ccd_adam_step(ccd_adam *a, float *restrict param, const float *restrict grad)
{
    a->t++;
    const float b1 = a->beta1, b2 = a->beta2, wd = a->weight_decay, eps = a->eps;
    const bool lazy = a->lazy_decay;
    const float step = (float)(a->lr / (1.0 - pow(b1, (double)a->t)));
    const float inv_sqrt_bc2 = (float)(1.0 / sqrt(1.0 - pow(b2, (double)a->t)));
    float *restrict m = a->m, *restrict v = a->v;
    const ptrdiff_t n = (ptrdiff_t)a->n;
#pragma omp parallel for schedule(static)
    for (ptrdiff_t k = 0; k < n; k++) {
        const float gk = grad[k];
        float g = gk + (lazy && gk == 0.0f ? 0.0f : wd) * param[k];
        m[k] = b1 * m[k] + (1.0f - b1) * g;
        v[k] = b2 * v[k] + (1.0f - b2) * g * g;
        param[k] -= step * m[k] / (sqrtf(v[k]) * inv_sqrt_bc2 + eps);
    }
}
