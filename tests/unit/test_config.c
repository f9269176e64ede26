/* The INI config of the ccd sections: shipped configs load, values land where they should, and
 * bad keys, values and sections fail naming the key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ccd_config.h"

static const char *path(const char *name)
{
    static char buf[1024];
    snprintf(buf, sizeof buf, "%s/%s", getenv("CCD_CONFIG_DIR"), name);
    return buf;
}

static void shipped_configs_load(void **state)
{
    (void)state;
    char err[512];
    ccd_config c, ref;
    ccd_config_yelp(&ref);
    ccd_config_yelp(&c);
    if (ccd_config_load(&c, path("yelp.ini"), err, sizeof err) != 0)
        fail_msg("%s", err);
    /* yelp.ini restates the defaults, except the reference's interesting lists (9.3), which the
     * three Yelp configs turn on */
    assert_true(c.kd_train_items_first);
    assert_false(ref.kd_train_items_first);
    ref.kd_train_items_first = true;
    assert_memory_equal(&c, &ref, sizeof c);
    ccd_config_yelp(&c);
    assert_int_equal(ccd_config_load(&c, path("yelp-finetune.ini"), err, sizeof err), 0);
    assert_false(c.replay || c.use_s || c.update_teachers || c.distill);
    assert_true(c.kd_train_items_first);
    ccd_config_yelp(&c);
    assert_int_equal(ccd_config_load(&c, path("yelp-nocollab.ini"), err, sizeof err), 0);
    assert_false(c.collaborative);
    assert_true(c.update_teachers && c.replay && c.kd_train_items_first && c.kd_warm_start);
    ccd_config_yelp(&c);
    assert_int_equal(ccd_config_load(&c, path("yelp-reference.ini"), err, sizeof err), 0);
    assert_false(c.kd_warm_start || c.student_continues);
    assert_int_equal(c.kd.epochs, 6);
    assert_int_equal(c.kd.patience, 0);
    assert_int_equal(ref.kd.epochs, 20);
    assert_true(c.kd_train_items_first && c.distill && c.collaborative);
    assert_int_equal(c.eval_users, 0); /* the reference evaluates every user */
    assert_int_equal(ref.eval_users, 32768);
}

static void overrides_set_values(void **state)
{
    (void)state;
    char err[512];
    ccd_config c;
    ccd_config_yelp(&c);
    assert_int_equal(
        ccd_config_override(&c, "ccd.teachers=mf:64:3, lightgcn:32:9", err, sizeof err), 0);
    assert_int_equal(c.n_teachers, 2);
    assert_int_equal(c.teachers[0].type, CCD_MODEL_MF);
    assert_int_equal(c.teachers[0].dim, 64);
    assert_int_equal(c.teachers[1].seed, 9);
    assert_int_equal(ccd_config_override(&c, "ccd.kd.lr=0.01", err, sizeof err), 0);
    assert_float_equal(c.kd.lr, 0.01f, 1e-9);
    assert_int_equal(ccd_config_override(&c, "ccd.student.block7.ab=77", err, sizeof err), 0);
    assert_int_equal(c.n_student_blocks, 7);
    assert_int_equal(c.student_blocks[6].ab, 77);
    assert_int_equal(c.student_blocks[5].ab, c.student_blocks[4].ab); /* filled from the last */
    assert_int_equal(ccd_config_override(&c, "ccd.eval_users=1000", err, sizeof err), 0);
    assert_int_equal(c.eval_users, 1000);
}

static void bad_input_names_the_key(void **state)
{
    (void)state;
    char err[512];
    ccd_config c;
    ccd_config_yelp(&c);
    assert_int_equal(ccd_config_override(&c, "ccd.bogus=1", err, sizeof err), -1);
    assert_non_null(strstr(err, "ccd.bogus"));
    assert_int_equal(ccd_config_override(&c, "ccd.kd.epochs=-3", err, sizeof err), -1);
    assert_non_null(strstr(err, "ccd.kd.epochs"));
    assert_int_equal(ccd_config_override(&c, "ccd.teachers=cnn:8:0", err, sizeof err), -1);
    assert_non_null(strstr(err, "ccd.teachers"));
    assert_int_equal(ccd_config_override(&c, "ccd.replay=maybe", err, sizeof err), -1);
    assert_non_null(strstr(err, "ccd.replay"));
    assert_int_equal(ccd_config_override(&c, "ccd.eval_users=-5", err, sizeof err), -1);
    assert_non_null(strstr(err, "ccd.eval_users"));
    assert_int_equal(ccd_config_override(&c, "noequals", err, sizeof err), -1);
    assert_int_equal(ccd_config_override(&c, "ccd.nope.x=1", err, sizeof err), -1);
    assert_non_null(strstr(err, "ccd.nope"));
    FILE *f = fopen("/tmp/ccd-bad.ini", "w");
    fputs("[ccd]\nseed = 3\n\n[ccd.kd]\nbatch = zero\n", f);
    fclose(f);
    assert_int_equal(ccd_config_load(&c, "/tmp/ccd-bad.ini", err, sizeof err), -1);
    assert_non_null(strstr(err, "/tmp/ccd-bad.ini:5"));
    assert_non_null(strstr(err, "ccd.kd.batch"));
    assert_int_equal(ccd_config_load(&c, "/tmp/does-not-exist.ini", err, sizeof err), -1);
    assert_non_null(strstr(err, "does-not-exist.ini"));
    remove("/tmp/ccd-bad.ini");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(shipped_configs_load),
        cmocka_unit_test(overrides_set_values),
        cmocka_unit_test(bad_input_names_the_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
