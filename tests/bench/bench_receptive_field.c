/* bench_receptive_field: how much of the graph one LightGCN mini-batch reaches (not a test).
 *
 *   bench_receptive_field DATA_DIR [BATCH ...]
 *
 * For mini-batches of BATCH BPR triples (default 512) drawn as the trainer draws them (a train
 * pair and a uniform negative item), on block 0's graph: the distinct rows of the batch, the
 * one-hop nodes whose first layer the batch's second layer reads, and the edges a forward pass
 * restricted to that receptive field would visit, as shares of the whole graph. A receptive-field
 * mini-batch beats growing the batch (ccd.batch_growth_pairs) only when its share of the edges is
 * below 1 / growth. Mean of 10 batches. */
#include <stdio.h>
#include <stdlib.h>

#include "dataset.h"
#include "rng.h"
#include "sparse.h"

/* The user row of train entry e (binary search in indptr). */
static int row_of(const ccd_csr *a, int64_t e)
{
    int lo = 0, hi = a->n_rows;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (a->indptr[mid + 1] <= e)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_receptive_field DATA_DIR [BATCH ...]\n");
        return 2;
    }
    ccd_dataset ds;
    char err[256];
    if (ccd_dataset_load(&ds, argv[1], 1, err, sizeof err) != 0) {
        fprintf(stderr, "bench_receptive_field: %s\n", err);
        return 1;
    }
    const ccd_block *b = &ds.blocks[0];
    const int nu = b->n_users, ni = b->n_items, nodes = nu + ni;
    ccd_csr g;
    int *seen = calloc((size_t)nodes, sizeof *seen),
        *reached = calloc((size_t)nodes, sizeof *reached);
    if (ccd_graph_build(&g, &b->train, nu, ni) != 0 || !seen || !reached) {
        fprintf(stderr, "bench_receptive_field: out of memory\n");
        return 1;
    }
    printf("%s block 0: %d nodes, %lld edges\n", argv[1], nodes, (long long)g.nnz);
    int stamp = 0;
    for (int a = argc > 2 ? 2 : 1; a < argc || (argc == 2 && a == 1); a++) {
        const int batch = argc > 2 ? atoi(argv[a]) : 512, reps = 10;
        int *rows = malloc((size_t)batch * 3 * sizeof *rows); /* (<= 3 batch) distinct rows */
        if (batch <= 0 || !rows) {
            fprintf(stderr, "bench_receptive_field: bad batch %s\n", argv[a]);
            return 2;
        }
        ccd_rng rng;
        ccd_rng_init(&rng, 1, (uint64_t)batch);
        double n_rows = 0, n_hop1 = 0, n_edges = 0;
        for (int rep = 0; rep < reps; rep++) {
            stamp++;
            int n = 0;
            for (int k = 0; k < batch; k++) {
                int64_t e = (int64_t)(ccd_rng_next(&rng) % (uint64_t)b->train.nnz);
                int v[3] = {row_of(&b->train, e), nu + b->train.indices[e],
                            nu + (int)ccd_rng_below(&rng, (uint32_t)ni)};
                for (int c = 0; c < 3; c++)
                    if (seen[v[c]] != stamp) {
                        seen[v[c]] = stamp;
                        rows[n++] = v[c];
                    }
            }
            long long hop1 = 0, edges = 0;
            for (int q = 0; q < n; q++)
                for (int64_t e = g.indptr[rows[q]]; e < g.indptr[rows[q] + 1]; e++) {
                    int c = g.indices[e];
                    if (reached[c] != stamp) {
                        reached[c] = stamp;
                        hop1++;
                        edges += g.indptr[c + 1] - g.indptr[c];
                    }
                }
            n_rows += n, n_hop1 += (double)hop1, n_edges += (double)edges;
        }
        printf("batch %6d: %8.0f rows, one-hop nodes %8.0f (%5.1f%%), edges of the receptive "
               "field %9.0f (%5.1f%% of the graph)\n",
               batch, n_rows / reps, n_hop1 / reps, 100.0 * n_hop1 / reps / nodes, n_edges / reps,
               100.0 * n_edges / reps / (double)g.nnz);
        free(rows);
        if (argc == 2)
            break;
    }
    free(seen);
    free(reached);
    ccd_csr_free(&g);
    ccd_dataset_free(&ds);
    return 0;
}
