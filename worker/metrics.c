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
#include <time.h>

struct metrics_server {
    struct MHD_Daemon *daemon;
    pthread_mutex_t mu;
    metrics_snapshot snap;
    int64_t published_ms; /* monotonic clock of the last metrics_publish (0: none yet) */
    int64_t started_ms;
    int64_t health_timeout_ms;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *const dead_reason_names[DEAD_REASONS] = {
    "no_key", "bad_model_id", "frame", "unknown_schema", "undecodable", "invalid_field"};

/* From a fast publication (10 ms) to a 16x-Yelp bootstrap block (an hour). */
const double metrics_bucket_le[METRICS_BUCKETS - 1] = {0.01, 0.05, 0.1, 0.5, 1,   5,
                                                       10,   30,   60,  300, 900, 3600};

void metrics_histogram_observe(metrics_histogram *h, double seconds)
{
    int i = 0;
    while (i < METRICS_BUCKETS - 1 && seconds > metrics_bucket_le[i])
        i++;
    h->bucket[i]++;
    h->count++;
    h->sum += seconds;
}

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
    {"ccd_offset_moves_total", "Partitions whose offsets moved back under a model (input.on_offset_reset).", I64(offset_moves)},
    {"ccd_model_partition_conflicts_total", "Models seen on two partitions of one topic.", I64(partition_conflicts)},
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
    {"ccd_teacher_jobs_produced_total", "Teacher jobs sent by this owner (teachers.mode = kafka).", I64(teacher_jobs_produced)},
    {"ccd_teacher_jobs_done_total", "Teacher jobs run by this worker's teacher role.", I64(teacher_jobs_done)},
    {"ccd_teacher_jobs_failed_total", "Teacher jobs that failed here (an error blob written; the owner fails the block).", I64(teacher_jobs_failed)},
    {"ccd_teacher_jobs_skipped_total", "Teacher jobs skipped: result already stored, or input gone.", I64(teacher_jobs_skipped)},
    {"ccd_teacher_seconds_total", "Seconds this worker's teacher role spent training teachers.", F64(teacher_seconds_total)},
    {"ccd_teacher_last_seconds", "Seconds of the last teacher job run here.", F64(teacher_last_seconds)},
    {"ccd_teacher_wait_seconds_total", "Seconds this owner waited for teacher results after sending the jobs.", F64(teacher_wait_seconds_total)},
    {"ccd_schema_registry_requests_total", "Requests to the schema registry (input.registry.url).", I64(registry_requests)},
    {"ccd_schema_registry_found_total", "Writer schemas fetched from the schema registry.", I64(registry_found)},
    {"ccd_schema_registry_missing_total", "Schema ids the registry does not know, or whose schema was refused (their messages are dead-lettered).", I64(registry_missing)},
    {"ccd_schema_registry_errors_total", "Schema registry requests that failed (unavailable: the messages wait and are retried).", I64(registry_errors)},
    {"ccd_schema_registry_cache_hits_total", "Lookups answered from the negative cache (ids known to be missing).", I64(registry_cache_hits)},
    {"ccd_schema_registry_up", "0 while the last schema registry request failed.", I64(registry_up)},
    {"ccd_schema_registry_retries_total", "Messages held for a retry because the schema registry was unavailable.", I64(registry_retries)},
    {"ccd_schema_registry_held_partitions", "Partitions paused now until the schema registry answers.", I64(registry_held_partitions)},
    {"ccd_holdout_recall20", "Holdout R@20 of the last published student.", F64(holdout_recall20)},
    {"ccd_holdout_ndcg20", "Holdout N@20 of the last published student.", F64(holdout_ndcg20)},
};
// clang-format on

static size_t render_histogram(char *buf, size_t cap, size_t n, const char *name, const char *model,
                               const metrics_histogram *h)
{
    int64_t cum = 0;
    for (int i = 0; i < METRICS_BUCKETS; i++) {
        cum += h->bucket[i];
        if (i < METRICS_BUCKETS - 1)
            n = put(buf, cap, n, "%s_bucket{model=\"%s\",le=\"%g\"} %lld\n", name, model,
                    metrics_bucket_le[i], (long long)cum);
        else
            n = put(buf, cap, n, "%s_bucket{model=\"%s\",le=\"+Inf\"} %lld\n", name, model,
                    (long long)cum);
    }
    return put(buf, cap, n, "%s_sum{model=\"%s\"} %.6f\n%s_count{model=\"%s\"} %lld\n", name, model,
               h->sum, name, model, (long long)h->count);
}

/* The per-model series, and where each one's value is in a metrics_model: 'i' an int64 (a
 * counter when the name ends in _total, else a gauge), 'f' a double gauge, 'h' a histogram. */
typedef struct {
    const char *name, *help;
    size_t at;
    char kind;
} model_metric_def;
#define M_AT(field) offsetof(metrics_model, field)
// clang-format off
static const model_metric_def per_model[] = {
    {"ccd_model_live_version", "Version number of the model's live student.", M_AT(live_version), 'i'},
    {"ccd_model_blocks_done_total", "Blocks of the model trained, published, checkpointed.", M_AT(blocks_done), 'i'},
    {"ccd_model_holdout_recall20", "Holdout R@20 of the model's last student.", M_AT(holdout_recall20), 'f'},
    {"ccd_model_holdout_ndcg20", "Holdout N@20 of the model's last student.", M_AT(holdout_ndcg20), 'f'},
    {"ccd_model_backlog", "Closed windows of the model not yet folded into its state (the one training included).", M_AT(backlog), 'i'},
    {"ccd_block_seconds", "Seconds from a block's start to its checkpoint.", M_AT(block_seconds), 'h'},
    {"ccd_publish_seconds", "Seconds to write a student's version to Redis.", M_AT(publish_seconds), 'h'},
    {"ccd_freshness_close_seconds", "Seconds from a window's close to the first version of its block (provisional or exact) going live.", M_AT(fresh_close_seconds), 'h'},
    {"ccd_freshness_event_seconds", "Seconds from the arrival of a window's newest event to the first version of its block going live.", M_AT(fresh_event_seconds), 'h'},
    {"ccd_freshness_exact_close_seconds", "Seconds from a window's close to the exact student of its block being published.", M_AT(fresh_exact_close_seconds), 'h'},
    {"ccd_model_provisional_versions_total", "Provisional versions (the fast path) that went live.", M_AT(provisional_published), 'i'},
    {"ccd_model_exact_behind_total", "Exact versions listed without going live: a provisional version of a newer block was live.", M_AT(exact_behind), 'i'},
};
// clang-format on

/* Each per-model metric's HELP and TYPE once, then one sample (or histogram) per model. */
static size_t render_models(const metrics_snapshot *s, char *buf, size_t cap, size_t n)
{
    for (size_t k = 0; k < sizeof per_model / sizeof *per_model; k++) {
        const model_metric_def *d = &per_model[k];
        size_t len = strlen(d->name);
        const char *type = d->kind == 'h'                                    ? "histogram"
                           : len > 6 && !strcmp(d->name + len - 6, "_total") ? "counter"
                                                                             : "gauge";
        n = put(buf, cap, n, "# HELP %s %s\n# TYPE %s %s\n", d->name, d->help, d->name, type);
        for (int i = 0; i < s->n_models && i < METRICS_MAX_MODELS; i++) {
            const metrics_model *m = &s->per_model[i];
            const char *at = (const char *)m + d->at;
            int64_t i64;
            double f64;
            if (d->kind == 'h') {
                n = render_histogram(buf, cap, n, d->name, m->model,
                                     (const metrics_histogram *)(const void *)at);
            } else if (d->kind == 'f') {
                memcpy(&f64, at, sizeof f64);
                n = put(buf, cap, n, "%s{model=\"%s\"} %.6f\n", d->name, m->model, f64);
            } else {
                memcpy(&i64, at, sizeof i64);
                n = put(buf, cap, n, "%s{model=\"%s\"} %lld\n", d->name, m->model, (long long)i64);
            }
        }
    }
    return n;
}

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
    n = render_models(s, buf, cap, n);
    n = put(buf, cap, n,
            "# HELP ccd_stage_seconds Seconds of the last block's stages.\n"
            "# TYPE ccd_stage_seconds gauge\n"
            "ccd_stage_seconds{stage=\"fast_path\"} %.3f\nccd_stage_seconds{stage=\"block\"} %.3f\n"
            "ccd_stage_seconds{stage=\"publish\"} %.3f\n",
            s->last_fast_seconds, s->last_total_seconds, s->last_publish_seconds);
    n = put(buf, cap, n,
            "# HELP ccd_dead_letters_by_reason_total Messages sent to the dead-letter topic, by "
            "reason.\n# TYPE ccd_dead_letters_by_reason_total counter\n");
    for (int r = 0; r < DEAD_REASONS; r++)
        n = put(buf, cap, n, "ccd_dead_letters_by_reason_total{reason=\"%s\"} %lld\n",
                dead_reason_names[r], (long long)s->dead_by_reason[r]);
    n = put(buf, cap, n,
            "# HELP ccd_build_info The build: its version (CMake's project version).\n"
            "# TYPE ccd_build_info gauge\nccd_build_info{version=\"%s\"} 1\n",
            CCD_VERSION);
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

static enum MHD_Result respond(struct MHD_Connection *conn, unsigned code, const char *type,
                               char *body, size_t len, enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    enum MHD_Result ret = MHD_queue_response(conn, code, r);
    MHD_destroy_response(r);
    return ret;
}

/* The probes' verdicts on a snapshot taken at published_ms (0: none yet); the reason in why. */
static bool healthy(const metrics_server *m, int64_t published_ms, int64_t now, char *why,
                    size_t len)
{
    int64_t since = published_ms ? published_ms : m->started_ms;
    if (now - since <= m->health_timeout_ms) {
        snprintf(why, len, "ok\n");
        return true;
    }
    snprintf(
        why, len,
        "unhealthy: the consumer thread has not reported for %.1f s (metrics.health_timeout_ms "
        "= %lld)\n",
        (double)(now - since) / 1000, (long long)m->health_timeout_ms);
    return false;
}

static bool ready(const metrics_snapshot *s, char *why, size_t len)
{
    if (!s->joined)
        snprintf(why, len, "not ready: no partition assignment from the consumer group yet\n");
    else if (s->publish_failing)
        snprintf(why, len, "not ready: the last publication to Redis failed (retrying)\n");
    else {
        snprintf(why, len, "ready\n");
        return true;
    }
    return false;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **state)
{
    (void)version, (void)upload, (void)upload_size, (void)state;
    metrics_server *m = cls;
    static const char text[] = "text/plain; charset=utf-8";
    metrics_snapshot s;
    pthread_mutex_lock(&m->mu);
    s = m->snap;
    int64_t published_ms = m->published_ms;
    pthread_mutex_unlock(&m->mu);
    static char nf[] = "not found: GET /metrics, /healthz or /readyz\n";
    if (strcmp(method, "GET") != 0)
        return respond(conn, MHD_HTTP_NOT_FOUND, text, nf, sizeof nf - 1, MHD_RESPMEM_PERSISTENT);
    if (!strcmp(url, "/healthz") || !strcmp(url, "/readyz")) {
        char why[256];
        bool ok = !strcmp(url, "/healthz")
                      ? healthy(m, published_ms, mono_ms(), why, sizeof why)
                      : ready(&s, why, sizeof why) &&
                            healthy(m, published_ms, mono_ms(), why, sizeof why);
        return respond(conn, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, text, why,
                       strlen(why), MHD_RESPMEM_MUST_COPY);
    }
    if (strcmp(url, "/metrics") != 0)
        return respond(conn, MHD_HTTP_NOT_FOUND, text, nf, sizeof nf - 1, MHD_RESPMEM_PERSISTENT);
    size_t cap = 16384 + (size_t)s.n_parts * 256 + (size_t)s.n_models * 4096;
    char *buf = malloc(cap);
    if (!buf)
        return MHD_NO;
    size_t n = metrics_render(&s, buf, cap);
    return respond(conn, MHD_HTTP_OK, "text/plain; version=0.0.4", buf, n, MHD_RESPMEM_MUST_FREE);
}

metrics_server *metrics_start(const char *listen, int64_t health_timeout_ms, char *err,
                              size_t errlen)
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
    m->started_ms = mono_ms();
    m->health_timeout_ms = health_timeout_ms;
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
    m->published_ms = mono_ms();
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
