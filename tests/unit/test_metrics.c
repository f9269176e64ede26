/* metrics: the Prometheus text of a snapshot (worker/metrics.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

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
    s.dead_by_reason[DEAD_UNKNOWN_SCHEMA] = 2;
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
    assert_non_null(
        strstr(buf, "\nccd_dead_letters_by_reason_total{reason=\"unknown_schema\"} 2\n"));
    assert_non_null(strstr(buf, "\nccd_dead_letters_by_reason_total{reason=\"no_key\"} 0\n"));
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

/* A snapshot with something in every kind of series: two models with histograms, lag, dead
 * letters by reason. */
static void rich_snapshot(metrics_snapshot *s)
{
    memset(s, 0, sizeof *s);
    s->messages = 1000;
    s->dead_letters = 3;
    s->dead_by_reason[DEAD_FRAME] = 1;
    s->dead_by_reason[DEAD_INVALID_FIELD] = 2;
    s->joined = 1;
    s->n_models = 2;
    snprintf(s->per_model[0].model, sizeof s->per_model[0].model, "shop");
    snprintf(s->per_model[1].model, sizeof s->per_model[1].model, "news.eu-1");
    s->per_model[0].live_version = 7;
    s->per_model[0].blocks_done = 3;
    s->per_model[0].holdout_recall20 = 0.25;
    metrics_histogram_observe(&s->per_model[0].block_seconds, 0.004);  /* first bucket */
    metrics_histogram_observe(&s->per_model[0].block_seconds, 2.0);    /* (1, 5] */
    metrics_histogram_observe(&s->per_model[0].block_seconds, 7200);   /* +Inf only */
    metrics_histogram_observe(&s->per_model[1].publish_seconds, 0.05); /* on a bound: le 0.05 */
    metrics_histogram_observe(&s->per_model[0].fresh_close_seconds, 40);
    metrics_histogram_observe(&s->per_model[0].fresh_event_seconds, 45);
    s->per_model[0].backlog = 2;
    s->n_parts = 1;
    snprintf(s->parts[0].topic, sizeof s->parts[0].topic, "in");
    s->parts[0].lag = 4;
}

/* Per-model series and histograms: cumulative buckets, +Inf, sum and count, one HELP/TYPE each. */
static void metrics_render_models(void **state)
{
    (void)state;
    metrics_snapshot s;
    rich_snapshot(&s);
    static char buf[65536];
    size_t n = metrics_render(&s, buf, sizeof buf);
    assert_true(n > 0 && n < sizeof buf);
    assert_non_null(strstr(buf, "# TYPE ccd_block_seconds histogram\n"));
    assert_non_null(strstr(buf, "\nccd_block_seconds_bucket{model=\"shop\",le=\"0.01\"} 1\n"));
    assert_non_null(strstr(buf, "\nccd_block_seconds_bucket{model=\"shop\",le=\"1\"} 1\n"));
    assert_non_null(strstr(buf, "\nccd_block_seconds_bucket{model=\"shop\",le=\"5\"} 2\n"));
    assert_non_null(strstr(buf, "\nccd_block_seconds_bucket{model=\"shop\",le=\"3600\"} 2\n"));
    assert_non_null(strstr(buf, "\nccd_block_seconds_bucket{model=\"shop\",le=\"+Inf\"} 3\n"));
    assert_non_null(strstr(buf, "\nccd_block_seconds_sum{model=\"shop\"} 7202.004000\n"));
    assert_non_null(strstr(buf, "\nccd_block_seconds_count{model=\"shop\"} 3\n"));
    assert_non_null(
        strstr(buf, "\nccd_publish_seconds_bucket{model=\"news.eu-1\",le=\"0.05\"} 1\n"));
    assert_non_null(
        strstr(buf, "\nccd_publish_seconds_bucket{model=\"news.eu-1\",le=\"0.01\"} 0\n"));
    assert_non_null(strstr(buf, "\nccd_model_live_version{model=\"shop\"} 7\n"));
    assert_non_null(strstr(buf, "\nccd_model_blocks_done_total{model=\"shop\"} 3\n"));
    assert_non_null(strstr(buf, "\nccd_model_backlog{model=\"shop\"} 2\n"));
    assert_non_null(
        strstr(buf, "\nccd_freshness_close_seconds_bucket{model=\"shop\",le=\"30\"} 0\n"));
    assert_non_null(
        strstr(buf, "\nccd_freshness_close_seconds_bucket{model=\"shop\",le=\"60\"} 1\n"));
    assert_non_null(strstr(buf, "\nccd_freshness_event_seconds_sum{model=\"shop\"} 45.000000\n"));
    const char *type = strstr(buf, "# TYPE ccd_model_live_version gauge\n");
    assert_non_null(type);
    assert_null(strstr(type + 1, "# TYPE ccd_model_live_version")); /* announced once */
}

/* Prometheus' own checker accepts the exposition (promtool, Debian's prometheus package, which
 * docker/setup.sh --test installs). */
static void promtool_accepts(void **state)
{
    (void)state;
    if (system("command -v promtool > /dev/null") != 0)
        fail_msg("promtool not found (bash docker/setup.sh --test installs Debian's prometheus)");
    metrics_snapshot s;
    rich_snapshot(&s);
    static char buf[65536];
    size_t n = metrics_render(&s, buf, sizeof buf);
    char path[] = "/tmp/ccd-metrics-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, buf, n), (ssize_t)n);
    close(fd);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "promtool check metrics < %s", path);
    int rc = system(cmd);
    unlink(path);
    assert_int_equal(rc, 0);
}

/* GET url from 127.0.0.1:port; returns the HTTP status, the body in body. */
static int http_get(int port, const char *url, char *body, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    char req[256];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: x\r\n\r\n", url);
    assert_int_equal(write(fd, req, (size_t)n), n);
    static char resp[65536];
    size_t got = 0;
    ssize_t r;
    while (got < sizeof resp - 1 && (r = read(fd, resp + got, sizeof resp - 1 - got)) > 0)
        got += (size_t)r;
    close(fd);
    resp[got] = '\0';
    int status = 0;
    assert_int_equal(sscanf(resp, "HTTP/1.%*d %d", &status), 1);
    const char *b = strstr(resp, "\r\n\r\n");
    snprintf(body, cap, "%s", b ? b + 4 : "");
    return status;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The probes: /readyz follows the assignment and Redis, /healthz the consumer thread's snapshots
 * (a second's timeout here: 503 once none came for that long, 200 again at the next one). */
static void probes(void **state)
{
    (void)state;
    metrics_server *m = NULL;
    char err[256], listen[64];
    static char body[65536];
    int port = 0;
    for (int k = 0; k < 50 && !m; k++) {
        port = 20000 + (int)((unsigned)getpid() * 7919u + (unsigned)k * 104729u) % 30000;
        snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
        m = metrics_start(listen, 1000, err, sizeof err);
    }
    assert_non_null(m);
    metrics_snapshot s;
    memset(&s, 0, sizeof s);
    metrics_publish(m, &s);
    assert_int_equal(http_get(port, "/healthz", body, sizeof body), 200);
    assert_int_equal(http_get(port, "/readyz", body, sizeof body), 503);
    assert_non_null(strstr(body, "no partition assignment"));
    s.joined = 1;
    metrics_publish(m, &s);
    assert_int_equal(http_get(port, "/readyz", body, sizeof body), 200);
    s.publish_failing = 1;
    metrics_publish(m, &s);
    assert_int_equal(http_get(port, "/readyz", body, sizeof body), 503);
    assert_non_null(strstr(body, "Redis"));
    s.publish_failing = 0;
    metrics_publish(m, &s);
    assert_int_equal(http_get(port, "/metrics", body, sizeof body), 200);
    assert_non_null(strstr(body, "ccd_build_info{version=\"" CCD_VERSION "\"} 1\n"));
    assert_int_equal(http_get(port, "/nope", body, sizeof body), 404);
    /* the consumer thread stops reporting */
    sleep_ms(1600);
    assert_int_equal(http_get(port, "/healthz", body, sizeof body), 503);
    assert_non_null(strstr(body, "has not reported for"));
    assert_int_equal(http_get(port, "/readyz", body, sizeof body), 503);
    metrics_publish(m, &s);
    assert_int_equal(http_get(port, "/healthz", body, sizeof body), 200);
    metrics_stop(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(metrics_render_text),
        cmocka_unit_test(probes),
        cmocka_unit_test(metrics_render_models),
        cmocka_unit_test(promtool_accepts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
