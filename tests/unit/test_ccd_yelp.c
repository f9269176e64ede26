/* Yelp smoke of the whole CCD pipeline (shortened: two blocks, two small teachers, few epochs):
 * every stage runs on real data, and the continual student, the ensemble and the distilled
 * student are all well above the popularity baseline on both blocks. The full-size figures come
 * from ccd-offline (docs/performance.md). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ccd.h"
#include "dataset.h"
#include "eval.h"

static void log_line(void *ctx, const char *msg)
{
    (void)ctx;
    print_message("  %s\n", msg);
}

static void ccd_beats_popularity_on_two_yelp_blocks(void **state)
{
    (void)state;
    const char *data = getenv("CCD_DATA_DIR");
    assert_non_null(data);
    char err[512];
    ccd_dataset ds;
    if (ccd_dataset_load(&ds, data, 2, err, sizeof err) != 0)
        fail_msg("%s", err);
    ccd_config c;
    ccd_config_yelp(&c);
    c.n_teachers = 2;
    c.teachers[0] = (ccd_teacher_spec){CCD_MODEL_LIGHTGCN, 32, 0};
    c.teachers[1] = (ccd_teacher_spec){CCD_MODEL_MF, 32, 1};
    c.base.epochs = 3;
    c.kd.epochs = 2;
    c.student.epochs = 2;
    c.teacher.epochs = 1;
    ccd_state st;
    ccd_state_init(&st);
    for (int k = 0; k < 2; k++) {
        ccd_block_report rep;
        if (ccd_block_step(&st, &c, &ds.blocks[k], ds.blocks, k + 1, &rep,
                           &(ccd_block_hooks){.log = log_line}, err, sizeof err) != 0)
            fail_msg("block %d: %s", k, err);
        for (int j = 0; j <= k; j++) {
            ccd_block_metrics pop;
            assert_int_equal(ccd_evaluate_popularity(&ds.blocks[j], &ds.blocks[j], 1, &pop), 0);
            double p = pop.test.recall[CCD_K20];
            print_message("k=%d j=%d test R@20: popularity %.4f  CL %.4f  E %.4f  D %.4f\n", k, j,
                          p, rep.student[j].test.recall[CCD_K20],
                          rep.ensemble[j].test.recall[CCD_K20],
                          rep.distilled[j].test.recall[CCD_K20]);
            assert_true(rep.student[j].test.recall[CCD_K20] > 2.0 * p);
            assert_true(rep.ensemble[j].test.recall[CCD_K20] > 2.0 * p);
            assert_true(rep.distilled[j].test.recall[CCD_K20] > 1.5 * p);
        }
        ccd_block_report_free(&rep);
    }
    ccd_state_free(&st);
    ccd_dataset_free(&ds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ccd_beats_popularity_on_two_yelp_blocks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
