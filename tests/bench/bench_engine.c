/* bench_engine: throughput of the CCD engine's dense phases (not a test).
 *
 *   bench_engine
 *
 * Reports side by side in one run: SGEMM's peak on this machine (2048^3), the LWC-KD term at the
 * shapes of a Yelp block-1 teacher batch (about 1500 distinct old users against 10,782 old items,
 * d = 128: logits SGEMM, softmax, gradient SGEMM), and its share of that peak. Random data: the
 * cost does not depend on the values. */
#include <stdio.h>
#include <stdlib.h>

#include "dense.h"
#include "lwckd.h"
#include "omp_env.h"
#include "rng.h"
#include "sparse.h"

static double best_of(int reps, double (*fn)(void *), void *ctx)
{
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t = fn(ctx);
        best = t < best ? t : best;
    }
    return best;
}

typedef struct {
    float *a, *b, *c;
    int n;
} gemm_ctx;

static double run_gemm(void *v)
{
    gemm_ctx *g = v;
    double t0 = ccd_now();
    ccd_matmul_nt(g->a, g->b, g->c, g->n, g->n, g->n);
    return ccd_now() - t0;
}

typedef struct {
    float *targets, *weights, *neighbours, *dn;
    int n, m, d;
    ccd_csr rel;
    int *rows;
} lwc_ctx;

static double run_lwc(void *v)
{
    lwc_ctx *c = v;
    double t0 = ccd_now();
    ccd_lwc_term(c->targets, c->weights, c->n, c->n, c->neighbours, c->m, c->d, &c->rel, c->rows,
                 5.0f, 0.005f, c->dn);
    return ccd_now() - t0;
}

int main(int argc, char **argv)
{
    (void)argc;
    ccd_omp_env(argv);
    ccd_rng rng;
    ccd_rng_init(&rng, 1, 0);
    const int n = 2048;
    gemm_ctx g = {ccd_floats((size_t)n * n), ccd_floats((size_t)n * n), ccd_floats((size_t)n * n),
                  n};
    for (size_t k = 0; k < (size_t)n * n; k++)
        g.a[k] = ccd_rng_uniform(&rng), g.b[k] = ccd_rng_uniform(&rng);
    double tg = best_of(5, run_gemm, &g);
    double peak = 2.0 * n * n * n / tg * 1e-9;
    printf("threads %d\nsgemm %d^3: %.1f ms, %.1f GFLOP/s (peak reference)\n", ccd_threads(), n,
           1e3 * tg, peak);

    lwc_ctx c = {.n = 1500, .m = 10782, .d = 128};
    c.targets = ccd_floats((size_t)c.n * c.d);
    c.weights = ccd_floats((size_t)c.n);
    c.neighbours = ccd_floats((size_t)c.m * c.d);
    c.dn = ccd_floats((size_t)c.m * c.d);
    c.rows = malloc((size_t)c.n * sizeof *c.rows);
    for (size_t k = 0; k < (size_t)c.n * c.d; k++)
        c.targets[k] = 0.1f * ccd_rng_normal(&rng);
    for (size_t k = 0; k < (size_t)c.m * c.d; k++)
        c.neighbours[k] = 0.1f * ccd_rng_normal(&rng);
    /* about 10 related neighbours per target, like the UI / UU relation rows */
    int *ru = malloc((size_t)c.n * 10 * sizeof *ru), *ri = malloc((size_t)c.n * 10 * sizeof *ri);
    for (int t = 0; t < c.n; t++) {
        c.weights[t] = 1.0f;
        c.rows[t] = t;
        for (int e = 0; e < 10; e++)
            ru[t * 10 + e] = t, ri[t * 10 + e] = (int)ccd_rng_below(&rng, (uint32_t)c.m);
    }
    ccd_csr_from_pairs(&c.rel, c.n, c.m, ru, ri, (int64_t)c.n * 10);
    double tl = best_of(5, run_lwc, &c);
    double flops = 2.0 * 2.0 * c.n * c.m * c.d; /* logits + neighbour gradient */
    printf("lwc-kd term %d targets x %d neighbours x d=%d: %.1f ms, %.1f GFLOP/s = %.0f%% of "
           "sgemm peak (GEMM flops only; softmax included in the time)\n",
           c.n, c.m, c.d, 1e3 * tl, flops / tl * 1e-9, 100.0 * flops / tl * 1e-9 / peak);
    printf("one block-1 teacher batch has 8 such terms (4 relations x 2 layers): about %.2f s\n",
           8 * tl);
    free(g.a), free(g.b), free(g.c);
    free(c.targets), free(c.weights), free(c.neighbours), free(c.dn), free(c.rows), free(ru),
        free(ri);
    ccd_csr_free(&c.rel);
    return 0;
}
