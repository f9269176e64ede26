/* bpr: see bpr.h. */
#include "bpr.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static bool excluded(const ccd_csr *train, const ccd_csr *exclude, int u, int j)
{
    return ccd_csr_contains(train, u, j) || (exclude && ccd_csr_contains(exclude, u, j));
}

int ccd_bpr_sample(ccd_triples *t, const ccd_csr *train, const ccd_csr *exclude, int n_items,
                   int nns, ccd_rng *rng)
{
    memset(t, 0, sizeof *t);
    int64_t cap = train->nnz * nns;
    int *user = malloc((size_t)(cap > 0 ? cap : 1) * sizeof *user);
    int *pos = malloc((size_t)(cap > 0 ? cap : 1) * sizeof *pos);
    int *neg = malloc((size_t)(cap > 0 ? cap : 1) * sizeof *neg);
    int *order = malloc((size_t)(cap > 0 ? cap : 1) * sizeof *order);
    int *allowed = NULL;
    if (!user || !pos || !neg || !order)
        goto oom;
    int64_t n = 0;
    for (int u = 0; u < train->n_rows; u++) {
        int64_t len = ccd_csr_row_len(train, u);
        if (len == 0)
            continue;
        /* An upper bound on the excluded count decides whether rejection can stall. */
        int64_t n_excl = len + (exclude ? ccd_csr_row_len(exclude, u) : 0);
        int n_allowed = -1; /* built lazily when rejection keeps failing */
        for (int64_t e = train->indptr[u]; e < train->indptr[u + 1]; e++) {
            for (int s = 0; s < nns; s++) {
                int j = -1;
                if (n_excl < n_items)
                    for (int tries = 0; tries < 64; tries++) {
                        int c = (int)ccd_rng_below(rng, (uint32_t)n_items);
                        if (!excluded(train, exclude, u, c)) {
                            j = c;
                            break;
                        }
                    }
                if (j < 0) {
                    /* Dense exclusions: draw from the explicit list of allowed items. */
                    if (n_allowed < 0) {
                        if (!allowed && !(allowed = malloc((size_t)n_items * sizeof *allowed)))
                            goto oom;
                        n_allowed = 0;
                        for (int c = 0; c < n_items; c++)
                            if (!excluded(train, exclude, u, c))
                                allowed[n_allowed++] = c;
                    }
                    if (n_allowed == 0)
                        continue;
                    j = allowed[ccd_rng_below(rng, (uint32_t)n_allowed)];
                }
                user[n] = u;
                pos[n] = train->indices[e];
                neg[n] = j;
                n++;
            }
        }
    }
    for (int64_t k = 0; k < n; k++)
        order[k] = (int)k;
    ccd_rng_shuffle_int(rng, order, (size_t)n);
    t->n = n;
    t->user = malloc((size_t)(n > 0 ? n : 1) * sizeof *t->user);
    t->pos = malloc((size_t)(n > 0 ? n : 1) * sizeof *t->pos);
    t->neg = malloc((size_t)(n > 0 ? n : 1) * sizeof *t->neg);
    if (!t->user || !t->pos || !t->neg) {
        ccd_triples_free(t);
        goto oom;
    }
    for (int64_t k = 0; k < n; k++) {
        t->user[k] = user[order[k]];
        t->pos[k] = pos[order[k]];
        t->neg[k] = neg[order[k]];
    }
    free(user), free(pos), free(neg), free(order), free(allowed);
    return 0;
oom:
    free(user), free(pos), free(neg), free(order), free(allowed);
    return -1;
}

void ccd_triples_free(ccd_triples *t)
{
    free(t->user);
    free(t->pos);
    free(t->neg);
    memset(t, 0, sizeof *t);
}

/* A batch's triples name rows scattered through tables that, past a few hundred thousand nodes,
 * live in memory rather than cache: the loops below fetch the rows of the triple BPR_AHEAD
 * places ahead so their misses overlap the current triple's arithmetic. */
#define BPR_AHEAD 4
static inline void prefetch_row(const float *row, int d, int write)
{
    for (int c = 0; c < d; c += 16)
        if (write)
            __builtin_prefetch(row + c, 1);
        else
            __builtin_prefetch(row + c, 0);
}

static inline float dot(const float *a, const float *b, int d)
{
    float s = 0.0f;
    for (int k = 0; k < d; k++)
        s += a[k] * b[k];
    return s;
}

double ccd_bpr_forward(const float *final, int n_users, int d, const int *user, const int *pos,
                       const int *neg, int b, bool clamp, float *dx)
{
    double loss = 0.0;
    for (int k = 0; k < b; k++) {
        if (k + BPR_AHEAD < b) {
            const int f = k + BPR_AHEAD;
            prefetch_row(final + (size_t)user[f] * d, d, 0);
            prefetch_row(final + (size_t)(n_users + pos[f]) * d, d, 0);
            prefetch_row(final + (size_t)(n_users + neg[f]) * d, d, 0);
        }
        const float *eu = final + (size_t)user[k] * d;
        const float *ei = final + (size_t)(n_users + pos[k]) * d;
        const float *ej = final + (size_t)(n_users + neg[k]) * d;
        double x = (double)dot(eu, ei, d) - (double)dot(eu, ej, d);
        if (clamp) {
            double s = 1.0 / (1.0 + exp(-x));
            if (s < 1e-4 || s > 0.9999) {
                /* clamped: constant loss, zero gradient */
                loss += -log(s < 1e-4 ? 1e-4 : 0.9999);
                dx[k] = 0.0f;
                continue;
            }
            loss += -log(s);
            dx[k] = (float)(-(1.0 - s));
        } else {
            /* -log sigmoid(x) = softplus(-x), computed without overflow */
            loss += x > 0 ? log1p(exp(-x)) : -x + log1p(exp(x));
            dx[k] = (float)(-1.0 / (1.0 + exp(x)));
        }
    }
    return loss;
}

void ccd_bpr_backward(const float *final, float *dfinal, int n_users, int d, const int *user,
                      const int *pos, const int *neg, int b, const float *dx)
{
    for (int k = 0; k < b; k++) {
        if (k + BPR_AHEAD < b) {
            const int f = k + BPR_AHEAD;
            const size_t r[3] = {(size_t)user[f], (size_t)(n_users + pos[f]),
                                 (size_t)(n_users + neg[f])};
            for (int c = 0; c < 3; c++) {
                prefetch_row(final + r[c] * d, d, 0);
                prefetch_row(dfinal + r[c] * d, d, 1);
            }
        }
        const float g = dx[k];
        if (g == 0.0f)
            continue;
        size_t ou = (size_t)user[k] * d, oi = (size_t)(n_users + pos[k]) * d,
               oj = (size_t)(n_users + neg[k]) * d;
        for (int c = 0; c < d; c++) {
            float eu = final[ou + c], ei = final[oi + c], ej = final[oj + c];
            dfinal[ou + c] += g * (ei - ej);
            dfinal[oi + c] += g * eu;
            dfinal[oj + c] -= g * eu;
        }
    }
}
