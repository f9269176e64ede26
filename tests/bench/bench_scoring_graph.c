/* bench_scoring_graph: how much of a LightGCN model's "forgetting" is the graph it is scored on
 * (not a test; docs/performance.md, "Scoring on the block's graph").
 *
 *   bench_scoring_graph DATA_DIR [EPOCHS [FINETUNE_EPOCHS [SEED]]]
 *
 * Trains one base teacher (LightGCN d = 128, the base-teacher settings, EPOCHS epochs, default 30,
 * selected on block 0's valid split) on block 0, then scores the same weights, expanded to block
 * 1's id space, on three graphs: R_0's (where it trained), R_1's (what the engine scores a model
 * of block 1 on by default), R_0 u R_1's, and R_1's with the rows of the users who have no R_1 pair
 * taken from R_0 u R_1's (their block-0 neighbourhoods: history_blocks = 0). Then it fine-tunes the
 * model on block 1 with plain BPR on R_1's graph for FINETUNE_EPOCHS epochs (default 5; the better
 * of epochs 1 and FINETUNE_EPOCHS on block 1's valid split, scored on R_1, is kept) and scores it
 * on the three block-1 graphs again. Prints valid and test R@20 on blocks 0 and 1 for each. The
 * weights are the same across a row pair: only the scoring graph differs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "eval.h"
#include "recmodel.h"
#include "rng.h"
#include "sparse.h"
#include "train.h"

#define DIM 128

static void report(const char *what, ccd_recmodel *m, const ccd_block *blocks, int n)
{
    ccd_block_metrics out[2];
    if (ccd_recmodel_evaluate(m, blocks, n, out) != 0) {
        fprintf(stderr, "bench_scoring_graph: out of memory\n");
        exit(1);
    }
    printf("%-44s", what);
    for (int j = 0; j < n; j++)
        printf("  block %d valid %.4f test %.4f", j, out[j].valid.recall[CCD_K20],
               out[j].test.recall[CCD_K20]);
    printf("\n");
    fflush(stdout);
}

/* The graph of R_0 u R_1 over block 1's id space. */
static int union_graph(ccd_csr *g, const ccd_block *b0, const ccd_block *b1)
{
    int64_t n = b0->train.nnz + b1->train.nnz, w = 0;
    int *r = malloc((size_t)n * sizeof *r), *c = malloc((size_t)n * sizeof *c);
    ccd_csr pairs = {0};
    int rc = -1;
    if (r && c) {
        const ccd_csr *sets[2] = {&b0->train, &b1->train};
        for (int s = 0; s < 2; s++)
            for (int u = 0; u < sets[s]->n_rows; u++)
                for (int64_t e = sets[s]->indptr[u]; e < sets[s]->indptr[u + 1]; e++)
                    r[w] = u, c[w++] = sets[s]->indices[e];
        rc = ccd_csr_from_pairs(&pairs, b1->n_users, b1->n_items, r, c, w) == 0 &&
                     ccd_graph_build(g, &pairs, b1->n_users, b1->n_items) == 0
                 ? 0
                 : -1;
    }
    ccd_csr_free(&pairs);
    free(r), free(c);
    return rc;
}

/* dst's users and items take src's rows (block 0's ids are block 1's first ids); new rows keep
 * their initialisation. */
static void expand(ccd_recmodel *dst, const ccd_recmodel *src)
{
    const size_t d = (size_t)src->dim;
    memcpy(dst->emb0, src->emb0, (size_t)src->n_users * d * sizeof(float));
    memcpy(dst->emb0 + (size_t)dst->n_users * d, src->emb0 + (size_t)src->n_users * d,
           (size_t)src->n_items * d * sizeof(float));
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_scoring_graph DATA_DIR [EPOCHS [FINETUNE_EPOCHS [SEED]]]\n");
        return 2;
    }
    const int epochs = argc > 2 ? atoi(argv[2]) : 30, finetune = argc > 3 ? atoi(argv[3]) : 5;
    const uint64_t seed = argc > 4 ? strtoull(argv[4], NULL, 10) : 0;
    char err[256];
    ccd_dataset ds;
    if (ccd_dataset_load(&ds, argv[1], 2, err, sizeof err) != 0 || ds.n_blocks < 2) {
        fprintf(stderr, "bench_scoring_graph: %s\n", ds.n_blocks < 2 ? "need two blocks" : err);
        return 1;
    }
    const ccd_block *b0 = &ds.blocks[0], *b1 = &ds.blocks[1];
    ccd_csr g0, g1, gu, gf; /* gf: R_1's graph, the rows of users with no R_1 pair from gu */
    if (ccd_graph_build(&g0, &b0->train, b0->n_users, b0->n_items) != 0 ||
        ccd_graph_build(&g1, &b1->train, b1->n_users, b1->n_items) != 0 ||
        union_graph(&gu, b0, b1) != 0 || ccd_graph_fill_rows(&gf, &g1, &gu, b1->n_users) != 0) {
        fprintf(stderr, "bench_scoring_graph: out of memory\n");
        return 1;
    }
    ccd_rng rng;
    ccd_rng_init(&rng, seed, ccd_stream(CCD_STREAM_TEACHER_INIT, 0, 0));
    ccd_recmodel m0, m1;
    if (ccd_recmodel_init(&m0, CCD_MODEL_LIGHTGCN, b0->n_users, b0->n_items, DIM, &g0, &rng) != 0 ||
        ccd_recmodel_init(&m1, CCD_MODEL_LIGHTGCN, b1->n_users, b1->n_items, DIM, &g1, &rng) != 0) {
        fprintf(stderr, "bench_scoring_graph: out of memory\n");
        return 1;
    }
    ccd_train_opts o = ccd_train_opts_base_teacher();
    o.seed = seed;
    o.stage.epochs = epochs;
    o.stage.patience = 0;
    int best_epoch = 0;
    if (ccd_train_bpr(&m0, b0, NULL, &o, NULL, NULL, NULL, &best_epoch) != 0)
        return 1;
    printf("base teacher, block 0, %d epochs (selected: %d); R@20:\n", epochs, best_epoch);
    report("trained on R_0, scored on R_0", &m0, ds.blocks, 1);
    expand(&m1, &m0);
    report("the same weights, scored on R_1", &m1, ds.blocks, 2);
    m1.score_graph = &gu;
    report("the same weights, scored on R_0 u R_1", &m1, ds.blocks, 2);
    m1.score_graph = &gf;
    report("the same weights, R_1 + absent users' R_0 rows", &m1, ds.blocks, 2);
    m1.score_graph = NULL;
    o.stage.epochs = finetune;
    o.stage.eval_every = finetune; /* evaluated after epochs 1 and FINETUNE_EPOCHS */
    if (ccd_train_bpr(&m1, b1, NULL, &o, NULL, NULL, NULL, NULL) != 0)
        return 1;
    report("fine-tuned on R_1, scored on R_1", &m1, ds.blocks, 2);
    m1.score_graph = &gu;
    report("fine-tuned on R_1, scored on R_0 u R_1", &m1, ds.blocks, 2);
    m1.score_graph = &gf;
    report("fine-tuned on R_1, R_1 + absent users' R_0 rows", &m1, ds.blocks, 2);
    ccd_recmodel_free(&m0);
    ccd_recmodel_free(&m1);
    ccd_csr_free(&g0), ccd_csr_free(&g1), ccd_csr_free(&gu), ccd_csr_free(&gf);
    ccd_dataset_free(&ds);
    return 0;
}
