/* bench_foundation: seconds of the foundation's hot paths on a real block (not a test).
 *
 *   bench_foundation DATA_DIR [--epoch] [--step BATCH]
 *
 * Reports, on block 0 of DATA_DIR with base-teacher shapes (LightGCN d = 128):
 *   - SGEMM GFLOP/s for the evaluation's scoring shape (chunk x d times d x items);
 *   - one full propagation, one sparse product, one Adam step, one training mini-batch;
 *   - one full evaluation (valid + test of block 0);
 *   - with --epoch, one whole base-teacher epoch (sampling included);
 *   - with --step BATCH, a training step of BATCH triples split into its phases (forward,
 *     BPR loss and its gradient, backward, Adam), the mean of 20 steps: the grown batch of a
 *     large block (ccd.batch_growth_pairs) is 512 x train pairs / 120,000.
 * Each timing is the median of several repetitions. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bpr.h"
#include "dataset.h"
#include "dense.h"
#include "eval.h"
#include "omp_env.h"
#include "recmodel.h"
#include "train.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

int main(int argc, char **argv)
{
    ccd_omp_env(argv);
    if (argc < 2) {
        fprintf(stderr, "usage: bench_foundation DATA_DIR [--epoch] [--step BATCH]\n");
        return 2;
    }
    int do_epoch = 0, step_batch = 0;
    for (int a = 2; a < argc; a++) {
        if (strcmp(argv[a], "--epoch") == 0)
            do_epoch = 1;
        else if (strcmp(argv[a], "--step") == 0 && a + 1 < argc)
            step_batch = atoi(argv[++a]);
        else {
            fprintf(stderr, "bench_foundation: unknown argument %s\n", argv[a]);
            return 2;
        }
    }
    char err[512];
    ccd_dataset ds;
    if (ccd_dataset_load(&ds, argv[1], 1, err, sizeof err) != 0) {
        fprintf(stderr, "bench_foundation: %s\n", err);
        return 1;
    }
    const ccd_block *b = &ds.blocks[0];
    const int d = 128, nu = b->n_users, ni = b->n_items;
    printf("threads %d, block 0: %d users, %d items, %lld train pairs\n", ccd_threads(), nu, ni,
           (long long)b->train.nnz);

    /* SGEMM at the evaluation's shape. */
    const int chunk = 1024;
    float *a = ccd_floats((size_t)chunk * d), *items = ccd_floats((size_t)ni * d),
          *c = ccd_floats((size_t)chunk * ni);
    for (size_t k = 0; k < (size_t)chunk * d; k++)
        a[k] = (float)(k % 7) * 0.1f;
    for (size_t k = 0; k < (size_t)ni * d; k++)
        items[k] = (float)(k % 5) * 0.1f;
    double t[16];
    for (int r = 0; r < 7; r++) {
        double t0 = ccd_now();
        ccd_matmul_nt(a, items, c, chunk, ni, d);
        t[r] = ccd_now() - t0;
    }
    double gemm = median(t, 7);
    printf("sgemm %d x %d x %d (eval chunk): %.2f ms, %.1f GFLOP/s\n", chunk, ni, d, 1e3 * gemm,
           2.0 * chunk * ni * d / gemm * 1e-9);
    for (int r = 0; r < 5; r++) {
        double t0 = ccd_now();
        ccd_matmul_nt(items, items, c, chunk, ni, d); /* square-ish: items x items slice */
        t[r] = ccd_now() - t0;
    }
    free(a), free(items), free(c);

    ccd_csr graph;
    ccd_graph_build(&graph, &b->train, nu, ni);
    ccd_rng rng;
    ccd_rng_init(&rng, 0, 1);
    ccd_recmodel m;
    ccd_recmodel_init(&m, CCD_MODEL_LIGHTGCN, nu, ni, d, &graph, &rng);
    for (int r = 0; r < 9; r++) {
        double t0 = ccd_now();
        ccd_spmm(&graph, m.emb0, m.layer1, d);
        t[r] = ccd_now() - t0;
    }
    double spmm = median(t, 9);
    printf("spmm (A_hat, nnz %lld) x %d: %.2f ms, %.1f GFLOP/s\n", (long long)graph.nnz, d,
           1e3 * spmm, 2.0 * graph.nnz * d / spmm * 1e-9);
    for (int r = 0; r < 5; r++) {
        double t0 = ccd_now();
        ccd_recmodel_propagate_all(&m);
        t[r] = ccd_now() - t0;
    }
    printf("full propagation (2 layers): %.2f ms\n", 1e3 * median(t, 5));

    ccd_adam adam;
    ccd_adam_init(&adam, (size_t)(nu + ni) * d, 1e-3f, 1e-4f);
    for (int r = 0; r < 9; r++) {
        double t0 = ccd_now();
        ccd_adam_step(&adam, m.emb0, m.grad);
        t[r] = ccd_now() - t0;
    }
    printf("adam step (%d params): %.2f ms\n", (nu + ni) * d, 1e3 * median(t, 9));

    ccd_triples tr;
    ccd_bpr_sample(&tr, &b->train, NULL, ni, 2, &rng);
    ccd_triples sub = tr;
    sub.n = 512 * 8;
    double t0 = ccd_now();
    ccd_bpr_epoch(&m, &adam, &sub, 512, false, NULL);
    printf("training mini-batch (512 triples: forward, BPR, backward, Adam): %.2f ms\n",
           1e3 * (ccd_now() - t0) / 8);

    ccd_block_metrics bm;
    for (int r = 0; r < 3; r++) {
        t0 = ccd_now();
        ccd_recmodel_evaluate(&m, b, 1, &bm);
        t[r] = ccd_now() - t0;
    }
    printf("full evaluation of block 0 (valid + test, %d users): %.3f s\n", bm.test.n_users,
           median(t, 3));

    if (step_batch > 0) {
        /* The phases of ccd_bpr_epoch's loop, timed one by one. */
        const int steps = 20;
        ccd_triples ep;
        ccd_bpr_sample(&ep, &b->train, NULL, ni, 2, &rng);
        if (ep.n < (int64_t)step_batch * steps) {
            fprintf(stderr, "bench_foundation: --step %d needs %d triples, block 0 has %lld\n",
                    step_batch, step_batch * steps, (long long)ep.n);
            return 2;
        }
        const int nodes = nu + ni;
        int *stamp = malloc((size_t)nodes * sizeof *stamp),
            *rows = malloc((size_t)step_batch * 3 * sizeof *rows);
        float *dx = malloc((size_t)step_batch * sizeof *dx);
        for (int v = 0; v < nodes; v++)
            stamp[v] = -1;
        double ph[4] = {0};
        long n_rows = 0;
        for (int step = 0; step < steps; step++) {
            const int64_t b0 = (int64_t)step * step_batch;
            const int *u = ep.user + b0, *p = ep.pos + b0, *q = ep.neg + b0;
            int n = 0;
            for (int k = 0; k < step_batch; k++) {
                int v[3] = {u[k], nu + p[k], nu + q[k]};
                for (int c = 0; c < 3; c++)
                    if (stamp[v[c]] != step)
                        stamp[v[c]] = step, rows[n++] = v[c];
            }
            n_rows += n;
            double t1 = ccd_now();
            ccd_recmodel_forward(&m, rows, n);
            double t2 = ccd_now();
            ccd_bpr_forward(m.final, nu, d, u, p, q, step_batch, false, dx);
            ccd_bpr_backward(m.final, m.dfinal, nu, d, u, p, q, step_batch, dx);
            double t3 = ccd_now();
            ccd_recmodel_backward(&m, rows, n);
            double t4 = ccd_now();
            ccd_adam_step(&adam, m.emb0, m.grad);
            double t5 = ccd_now();
            ph[0] += t2 - t1, ph[1] += t3 - t2, ph[2] += t4 - t3, ph[3] += t5 - t4;
        }
        printf("training step of %d triples (%ld distinct rows): forward %.1f ms, BPR %.1f ms, "
               "backward %.1f ms, Adam %.1f ms, total %.1f ms\n",
               step_batch, n_rows / steps, 1e3 * ph[0] / steps, 1e3 * ph[1] / steps,
               1e3 * ph[2] / steps, 1e3 * ph[3] / steps,
               1e3 * (ph[0] + ph[1] + ph[2] + ph[3]) / steps);
        free(stamp), free(rows), free(dx);
        ccd_triples_free(&ep);
    }

    if (do_epoch) {
        t0 = ccd_now();
        ccd_triples ep;
        ccd_bpr_sample(&ep, &b->train, NULL, ni, 2, &rng);
        double ts = ccd_now() - t0;
        ccd_bpr_epoch(&m, &adam, &ep, 512, false, NULL);
        printf("base-teacher epoch (%lld triples, %lld batches): %.2f s (sampling %.2f s)\n",
               (long long)ep.n, (long long)((ep.n + 511) / 512), ccd_now() - t0, ts);
        ccd_triples_free(&ep);
    }
    ccd_triples_free(&tr);
    ccd_adam_free(&adam);
    ccd_recmodel_free(&m);
    ccd_csr_free(&graph);
    ccd_dataset_free(&ds);
    return 0;
}
