/* metrics: see metrics.h. */
#include "metrics.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct metrics_server {
    struct MHD_Daemon *daemon;
    pthread_mutex_t mu;
    metrics_snapshot snap;
};

static size_t put(char *buf, size_t cap, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static size_t put(char *buf, size_t cap, size_t n, const char *fmt, ...)
{
    if (n >= cap)
        return n;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(buf + n, cap - n, fmt, ap);
    va_end(ap);
    return w < 0 ? n : n + (size_t)w;
}

/* The metrics with a single sample, in the order they are shown, and where their value is in a
 * snapshot. A name ending in _total is a counter, any other a gauge (Prometheus' naming rule). */
typedef struct {
    const char *name, *help;
    size_t at;
    bool real; /* a double printed with 6 decimals, else an int64_t */
} metric_def;
/* (_Generic: a field of another type does not compile) */
#define AT(field, type)                                                                            \
    offsetof(metrics_snapshot, field) +                                                            \
        0 * sizeof(_Generic(((metrics_snapshot *)0)->field, type : 1))
#define I64(field) AT(field, int64_t), false
#define F64(field) AT(field, double), true
/* one metric a line, past the column limit where it must */
// clang-format off
static const metric_def single[] = {
    {"ccd_events_in_total", "Kafka messages consumed.", I64(messages)},
    {"ccd_events_decoded_total", "Messages decoded into valid events.", I64(decoded)},
    {"ccd_dead_letters_total", "Messages sent to the dead-letter topic.", I64(dead_letters)},
    {"ccd_dead_letter_errors_total", "Dead letters that could not be produced.", I64(dlq_delivery_errors)},
    {"ccd_duplicates_skipped_total", "Messages skipped as already in a checkpoint.", I64(duplicates)},
    {"ccd_late_events_total", "Events older than their window's start.", I64(late)},
    {"ccd_buffered_events", "Events in open and closed windows not yet checkpointed.", I64(buffered_events)},
    {"ccd_buffered_events_limit", "input.max_buffered_events.", I64(max_buffered_events)},
    {"ccd_input_paused", "1 while the partitions are paused at the buffer bound.", I64(paused)},
    {"ccd_models", "Models loaded by this worker.", I64(models)},
    {"ccd_windows_closed_total", "Windows closed into blocks.", I64(windows_closed)},
    {"ccd_last_window_events", "Events in the last block trained.", I64(last_window_events)},
    {"ccd_blocks_done_total", "Blocks trained, published and checkpointed.", I64(blocks_done)},
    {"ccd_live_version", "Version number of the last student published.", I64(live_version)},
    {"ccd_publish_rows_total", "Vectors written to Redis.", I64(publish_rows)},
    {"ccd_publish_errors_total", "Failed Redis publications (retried).", I64(publish_errors)},
    {"ccd_checkpoint_errors_total", "Failed checkpoint writes (retried).", I64(checkpoint_errors)},
    {"ccd_owner_claims_total", "Models claimed (a new owner epoch each).", I64(owner_claims)},
    {"ccd_fenced_partitions", "Partitions paused because a write of their model was fenced.", I64(fenced_partitions)},
    {"ccd_fence_raised_total", "Publications and checkpoints that raised the owner record's epoch to ours (record lost).", I64(fence_raised)},
    {"ccd_stale_publications_refused_total", "Publications refused: a newer block was live.", I64(stale_refused)},
    {"ccd_checkpoints_landed_late_total", "Checkpoints that landed after a newer claim (harmless, logged).", I64(checkpoints_landed_late)},
    {"ccd_holdout_recall20", "Holdout R@20 of the last published student.", F64(holdout_recall20)},
    {"ccd_holdout_ndcg20", "Holdout N@20 of the last published student.", F64(holdout_ndcg20)},
};
// clang-format on

size_t metrics_render(const metrics_snapshot *s, char *buf, size_t cap)
{
    size_t n = 0;
    for (size_t k = 0; k < sizeof single / sizeof *single; k++) {
        const metric_def *m = &single[k];
        size_t len = strlen(m->name);
        const char *type = len > 6 && !strcmp(m->name + len - 6, "_total") ? "counter" : "gauge";
        const char *value = (const char *)s + m->at;
        int64_t i64;
        double f64;
        n = put(buf, cap, n, "# HELP %s %s\n# TYPE %s %s\n", m->name, m->help, m->name, type);
        if (m->real) {
            memcpy(&f64, value, sizeof f64);
            n = put(buf, cap, n, "%s %.6f\n", m->name, f64);
        } else {
            memcpy(&i64, value, sizeof i64);
            n = put(buf, cap, n, "%s %lld\n", m->name, (long long)i64);
        }
    }
    n = put(buf, cap, n,
            "# HELP ccd_stage_seconds Seconds of the last block's stages.\n"
            "# TYPE ccd_stage_seconds gauge\n"
            "ccd_stage_seconds{stage=\"fast_path\"} %.3f\nccd_stage_seconds{stage=\"block\"} %.3f\n"
            "ccd_stage_seconds{stage=\"publish\"} %.3f\n",
            s->last_fast_seconds, s->last_total_seconds, s->last_publish_seconds);
    n = put(buf, cap, n,
            "# HELP ccd_fenced_writes_total Writes refused because a newer owner holds the model.\n"
            "# TYPE ccd_fenced_writes_total counter\n"
            "ccd_fenced_writes_total{write=\"publish\"} %lld\n"
            "ccd_fenced_writes_total{write=\"checkpoint\"} %lld\n",
            (long long)s->fenced_publish, (long long)s->fenced_checkpoint);
    n = put(buf, cap, n,
            "# HELP ccd_consumer_lag Messages between the position and the high watermark.\n"
            "# TYPE ccd_consumer_lag gauge\n");
    for (int i = 0; i < s->n_parts; i++)
        n = put(buf, cap, n, "ccd_consumer_lag{topic=\"%s\",partition=\"%d\"} %lld\n",
                s->parts[i].topic, s->parts[i].partition, (long long)s->parts[i].lag);
    return n < cap ? n : cap - 1;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **state)
{
    (void)version, (void)upload, (void)upload_size, (void)state;
    metrics_server *m = cls;
    if (strcmp(method, "GET") || strcmp(url, "/metrics")) {
        static const char nf[] = "not found: GET /metrics\n";
        struct MHD_Response *r =
            MHD_create_response_from_buffer(sizeof nf - 1, (void *)nf, MHD_RESPMEM_PERSISTENT);
        enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_NOT_FOUND, r);
        MHD_destroy_response(r);
        return ret;
    }
    metrics_snapshot s;
    pthread_mutex_lock(&m->mu);
    s = m->snap;
    pthread_mutex_unlock(&m->mu);
    size_t cap = 16384 + (size_t)s.n_parts * 256;
    char *buf = malloc(cap);
    if (!buf)
        return MHD_NO;
    size_t n = metrics_render(&s, buf, cap);
    struct MHD_Response *r = MHD_create_response_from_buffer(n, buf, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", "text/plain; version=0.0.4");
    enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

metrics_server *metrics_start(const char *listen, char *err, size_t errlen)
{
    const char *colon = strrchr(listen, ':');
    int port = colon ? atoi(colon + 1) : 0;
    if (!colon || port <= 0 || port > 65535) {
        snprintf(err, errlen, "metrics.listen: expected host:port, got '%s'", listen);
        return NULL;
    }
    char host[64];
    snprintf(host, sizeof host, "%.*s", (int)(colon - listen), listen);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    if (!host[0] || !strcmp(host, "0.0.0.0"))
        addr.sin_addr.s_addr = htonl(INADDR_ANY);
    else if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        snprintf(err, errlen, "metrics.listen: '%s' is not an IPv4 address", host);
        return NULL;
    }
    metrics_server *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&m->mu, NULL);
    m->daemon =
        MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, (uint16_t)port, NULL, NULL, on_request, m,
                         MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_END);
    if (!m->daemon) {
        snprintf(err, errlen, "metrics.listen: cannot listen on %s", listen);
        pthread_mutex_destroy(&m->mu);
        free(m);
        return NULL;
    }
    return m;
}

void metrics_publish(metrics_server *m, const metrics_snapshot *s)
{
    pthread_mutex_lock(&m->mu);
    m->snap = *s;
    pthread_mutex_unlock(&m->mu);
}

void metrics_stop(metrics_server *m)
{
    if (!m)
        return;
    MHD_stop_daemon(m->daemon);
    pthread_mutex_destroy(&m->mu);
    free(m);
}
