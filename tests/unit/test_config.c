/* The INI config of the ccd sections: shipped configs load, values land where they should, and
 * bad keys, values and sections fail naming the key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    /* the released schedule: evaluation after epochs 1 and 6 only, no early stop, and base
     * teachers capped at 10 epochs (reference-results.md) */
    const ccd_stage_opts *six[] = {&c.kd, &c.student, &c.teacher};
    for (int s = 0; s < 3; s++) {
        assert_int_equal(six[s]->epochs, 6);
        assert_int_equal(six[s]->eval_every, 5);
        assert_int_equal(six[s]->patience, 0);
    }
    assert_int_equal(c.base.epochs, 10);
    assert_int_equal(c.base.patience, 0);
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

/* c written as INI and read back into target: every field must come back. */
static void round_trip(const ccd_config *c, ccd_config *target)
{
    char file[] = "/tmp/ccd-config-XXXXXX";
    int fd = mkstemp(file);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    assert_int_equal(ccd_config_write_ini(f, c), 0);
    assert_int_equal(fclose(f), 0);
    char err[512];
    if (ccd_config_load(target, file, err, sizeof err) != 0)
        fail_msg("%s", err);
    unlink(file);
}

/* ccd_config_each names every setting (the reports' "settings" say what produced them): written
 * out and read back into a config that differs everywhere it can, the bytes are the same. */
static void every_setting_is_written_and_reads_back(void **state)
{
    (void)state;
    char err[512];
    const char *files[] = {NULL, "yelp.ini", "yelp-reference.ini", "yelp-finetune.ini"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        ccd_config c, back;
        ccd_config_yelp(&c);
        if (files[i] && ccd_config_load(&c, path(files[i]), err, sizeof err) != 0)
            fail_msg("%s", err);
        if (i == 0) { /* values off every default, and the awkward ones */
            const char *x[] = {"ccd.teachers=mf:64:7, lightgcn:32:18446744073709551615",
                               "ccd.seed=2147483647",
                               "ccd.kd_uninteresting_items=123",
                               "ccd.kd_lambda=0.0123",
                               "ccd.lwc_graph_degree=7.3",
                               "ccd.batch_growth_pairs=0",
                               "ccd.kd.lr=3e-7",
                               "ccd.teacher.eval_every=3",
                               "ccd.teacher.lazy_decay=true",
                               "ccd.student.block7.pw=0.3333333",
                               "ccd.teacher.block6.cs=9"};
            for (size_t k = 0; k < sizeof x / sizeof *x; k++)
                if (ccd_config_override(&c, x[k], err, sizeof err) != 0)
                    fail_msg("%s: %s", x[k], err);
        }
        /* the target starts elsewhere: fine-tune switches, other sizes and schedules */
        ccd_config_yelp(&back);
        ccd_config_finetune(&back);
        back.seed = 99, back.student_dim = 3, back.kd_uninteresting_users = 5;
        back.base.lr = 1, back.kd.batch = 7, back.lwc_graph_degree = 2.5;
        back.student_blocks[0].ab = 1, back.teacher_blocks[4].ss = 2;
        round_trip(&c, &back);
        assert_memory_equal(&back, &c, sizeof c);
    }
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
        cmocka_unit_test(every_setting_is_written_and_reads_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
