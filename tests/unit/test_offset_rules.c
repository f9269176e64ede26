/* offset_rules: the three rules on hand-made cases, each at its boundary, and the policy names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "offset_rules.h"

/* A successor after a crash or a rebalance starts at or above the floor and finds at least the
 * folded messages in the partition: nothing moved. */
static void normal_takeover_is_ok(void **state)
{
    (void)state;
    /* durable_next 1200, floor 1000: restarts at the floor, between, at and past durable_next */
    assert_int_equal(offsets_check_start(1200, 1000, 1000, 1500), OFFSETS_OK);
    assert_int_equal(offsets_check_start(1200, 1000, 1100, 1500), OFFSETS_OK);
    assert_int_equal(offsets_check_start(1200, 1000, 1200, 1200), OFFSETS_OK);
    assert_int_equal(offsets_check_start(1200, 1000, 1300, 1400), OFFSETS_OK);
    /* unknown floor (a format-1 checkpoint) and unknown watermark: nothing to compare */
    assert_int_equal(offsets_check_start(1200, -1, 0, -1), OFFSETS_OK);
    /* a model new to the partition (durable_next 0, floor -1) */
    assert_int_equal(offsets_check_start(0, -1, 0, 0), OFFSETS_OK);
}

static void start_below_the_floor_is_a_reset(void **state)
{
    (void)state;
    assert_int_equal(offsets_check_start(1200, 1000, 999, 1500), OFFSETS_RESET);
    assert_int_equal(offsets_check_start(1200, 1000, 0, 1500), OFFSETS_RESET);
    /* a recreated topic read from 0 trips the same rule before the watermark one */
    assert_int_equal(offsets_check_start(1200, 1000, 0, 300), OFFSETS_RESET);
}

static void watermark_below_the_folded_is_truncated(void **state)
{
    (void)state;
    assert_int_equal(offsets_check_start(1200, 1000, 1000, 1199), OFFSETS_TRUNCATED);
    /* no floor known: the watermark alone still tells */
    assert_int_equal(offsets_check_start(1200, -1, 0, 300), OFFSETS_TRUNCATED);
    assert_int_equal(offsets_check_start(1200, -1, 0, 1200), OFFSETS_OK);
}

static void going_back_while_reading_is_rewound(void **state)
{
    (void)state;
    assert_int_equal(offsets_check_next(-1, 0), OFFSETS_OK);  /* first message */
    assert_int_equal(offsets_check_next(10, 10), OFFSETS_OK); /* the next one */
    assert_int_equal(offsets_check_next(10, 15), OFFSETS_OK); /* a gap (compaction, aborts) */
    assert_int_equal(offsets_check_next(10, 9), OFFSETS_REWOUND);
    assert_int_equal(offsets_check_next(10, 0), OFFSETS_REWOUND);
}

static void policies_and_names(void **state)
{
    (void)state;
    offset_reset_policy p = OFFSETS_SKIP;
    assert_int_equal(offset_reset_policy_parse("fail", &p), 0);
    assert_int_equal(p, OFFSETS_FAIL);
    assert_int_equal(offset_reset_policy_parse("retrain", &p), 0);
    assert_int_equal(p, OFFSETS_RETRAIN);
    assert_int_equal(offset_reset_policy_parse("skip", &p), 0);
    assert_int_equal(p, OFFSETS_SKIP);
    assert_int_equal(offset_reset_policy_parse("Fail", &p), -1);
    assert_int_equal(offset_reset_policy_parse("", &p), -1);
    assert_int_equal(p, OFFSETS_SKIP); /* untouched on a refusal */
    assert_string_equal(offset_reset_policy_name(OFFSETS_RETRAIN), "retrain");
    assert_string_equal(offsets_moved_name(OFFSETS_TRUNCATED), "truncated");
}

/* The log line carries the numbers an operator needs to decide. */
static void descriptions_name_the_offsets(void **state)
{
    (void)state;
    char out[512];
    offsets_describe(OFFSETS_RESET, 1200, 1000, 7, -1, -1, 7, out, sizeof out);
    assert_non_null(strstr(out, " 7,"));
    assert_non_null(strstr(out, "1000"));
    assert_non_null(strstr(out, "1200"));
    offsets_describe(OFFSETS_TRUNCATED, 1200, -1, 0, 300, -1, 0, out, sizeof out);
    assert_non_null(strstr(out, "ends at 300"));
    assert_non_null(strstr(out, "1200"));
    offsets_describe(OFFSETS_REWOUND, -1, -1, 0, -1, 51, 4, out, sizeof out);
    assert_non_null(strstr(out, "offset 4 came after offset 50"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(normal_takeover_is_ok),
        cmocka_unit_test(start_below_the_floor_is_a_reset),
        cmocka_unit_test(watermark_below_the_folded_is_truncated),
        cmocka_unit_test(going_back_while_reading_is_rewound),
        cmocka_unit_test(policies_and_names),
        cmocka_unit_test(descriptions_name_the_offsets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
