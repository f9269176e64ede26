/* End-to-end quality on real data: a short LightGCN run on Yelp block 0 must clearly beat the
 * popularity baseline, and training must be reproducible from its seed. Two epochs at d = 64
 * keep it to seconds; the full base-teacher figures come from ccd-train (docs/performance.md). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dataset.h"
#include "eval.h"
#include "train.h"

static ccd_dataset ds;

static int load(void **state)
{
    (void)state;
    const char *data = getenv("CCD_DATA_DIR");
    char err[512];
    if (!data || ccd_dataset_load(&ds, data, 1, err, sizeof err) != 0) {
        print_error("cannot load CCD_DATA_DIR: %s\n", data ? err : "not set");
        return -1;
    }
    return 0;
}

static int unload(void **state)
{
    (void)state;
    ccd_dataset_free(&ds);
    return 0;
}

static void train(ccd_model_type type, int dim, int epochs, ccd_block_metrics *best, float *first)
{
    const ccd_block *b = &ds.blocks[0];
    ccd_csr g = {0};
    if (type == CCD_MODEL_LIGHTGCN)
        assert_int_equal(ccd_graph_build(&g, &b->train, b->n_users, b->n_items), 0);
    ccd_rng rng;
    ccd_rng_init(&rng, 1, 0);
    ccd_recmodel m;
    assert_int_equal(ccd_recmodel_init(&m, type, b->n_users, b->n_items, dim,
                                       type == CCD_MODEL_LIGHTGCN ? &g : NULL, &rng),
                     0);
    ccd_train_opts o = ccd_train_opts_base_teacher();
    o.stage.epochs = epochs;
    o.seed = 1;
    int best_epoch;
    assert_int_equal(ccd_train_bpr(&m, b, NULL, &o, NULL, NULL, best, &best_epoch), 0);
    assert_true(best_epoch >= 1);
    if (first)
        memcpy(first, m.emb0, 16 * sizeof *first);
    ccd_recmodel_free(&m);
    ccd_csr_free(&g);
}

static void lightgcn_beats_popularity_on_yelp_block0(void **state)
{
    (void)state;
    ccd_block_metrics pop, best;
    assert_int_equal(ccd_evaluate_popularity(&ds.blocks[0], &ds.blocks[0], 1, &pop), 0);
    train(CCD_MODEL_LIGHTGCN, 64, 2, &best, NULL);
    print_message(
        "popularity test R@20 %.4f N@20 %.4f; LightGCN d=64, 2 epochs: R@20 %.4f N@20 %.4f\n",
        pop.test.recall[CCD_K20], pop.test.ndcg[CCD_K20], best.test.recall[CCD_K20],
        best.test.ndcg[CCD_K20]);
    assert_int_equal(pop.test.n_users, best.test.n_users);
    assert_true(pop.test.recall[CCD_K20] > 0.01);
    assert_true(best.test.recall[CCD_K20] > 3.0 * pop.test.recall[CCD_K20]);
    assert_true(best.test.ndcg[CCD_K20] > 3.0 * pop.test.ndcg[CCD_K20]);
    assert_true(best.test.recall[CCD_K20] > 0.07);
}

static void training_is_reproducible_from_its_seed(void **state)
{
    (void)state;
    ccd_block_metrics a, b;
    float ea[16], eb[16];
    train(CCD_MODEL_MF, 16, 1, &a, ea);
    train(CCD_MODEL_MF, 16, 1, &b, eb);
    assert_memory_equal(ea, eb, sizeof ea);
    assert_true(a.valid.recall[CCD_K20] == b.valid.recall[CCD_K20]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(lightgcn_beats_popularity_on_yelp_block0),
        cmocka_unit_test(training_is_reproducible_from_its_seed),
    };
    return cmocka_run_group_tests(tests, load, unload);
}
