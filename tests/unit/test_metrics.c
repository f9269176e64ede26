/* metrics: the Prometheus text of a snapshot (worker/metrics.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "metrics.h"

/* metrics: the Prometheus text has HELP/TYPE lines, the values of the snapshot, one lag sample
 * per partition with its labels, and a too-small buffer truncates instead of overflowing. */
static void metrics_render_text(void **state)
{
    (void)state;
    metrics_snapshot s;
    memset(&s, 0, sizeof s);
    s.messages = 71268;
    s.dead_letters = 3;
    s.paused = 1;
    s.live_version = 6;
    s.holdout_recall20 = 0.3148;
    s.last_fast_seconds = 2.25;
    s.fenced_publish = 2;
    s.fenced_checkpoint = 1;
    s.owner_claims = 5;
    s.stale_refused = 4;
    s.n_parts = 2;
    snprintf(s.parts[0].topic, sizeof s.parts[0].topic, "in");
    s.parts[0].partition = 0;
    s.parts[0].lag = 12;
    snprintf(s.parts[1].topic, sizeof s.parts[1].topic, "in");
    s.parts[1].partition = 1;
    s.parts[1].lag = 0;
    char buf[16384];
    size_t n = metrics_render(&s, buf, sizeof buf);
    assert_true(n > 0 && n < sizeof buf);
    assert_non_null(strstr(buf, "# TYPE ccd_events_in_total counter\nccd_events_in_total 71268\n"));
    assert_non_null(strstr(buf, "\nccd_dead_letters_total 3\n"));
    assert_non_null(strstr(buf, "\nccd_input_paused 1\n"));
    assert_non_null(strstr(buf, "\nccd_live_version 6\n"));
    assert_non_null(strstr(buf, "\nccd_holdout_recall20 0.314800\n"));
    assert_non_null(strstr(buf, "ccd_stage_seconds{stage=\"fast_path\"} 2.250\n"));
    assert_non_null(strstr(buf, "ccd_consumer_lag{topic=\"in\",partition=\"0\"} 12\n"));
    assert_non_null(strstr(buf, "ccd_fenced_writes_total{write=\"publish\"} 2\n"));
    assert_non_null(strstr(buf, "ccd_fenced_writes_total{write=\"checkpoint\"} 1\n"));
    assert_non_null(strstr(buf, "\nccd_owner_claims_total 5\n"));
    assert_non_null(strstr(buf, "\nccd_stale_publications_refused_total 4\n"));
    assert_non_null(strstr(buf, "ccd_consumer_lag{topic=\"in\",partition=\"1\"} 0\n"));
    /* every sample line belongs to a metric announced by a TYPE line */
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n"))
        assert_true(line[0] == '#' || !strncmp(line, "ccd_", 4));
    char small[64];
    n = metrics_render(&s, small, sizeof small);
    assert_true(n < sizeof small);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(metrics_render_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
