/* metrics: the Prometheus text endpoint (GET /metrics) of a worker, served by libmicrohttpd.
 *
 * The consumer thread fills a metrics_snapshot after every batch and hands it over with
 * metrics_publish (a copy under a mutex); libmicrohttpd's own thread renders the latest copy on
 * each scrape, so a scrape never touches live worker state and never blocks the consumer for
 * longer than a memcpy. Nothing secret is ever part of a snapshot.
 *
 * The same server answers the orchestrator's probes:
 *   GET /healthz  200 while the consumer thread keeps publishing snapshots (it does so about once
 *                 a second from its poll loop), 503 once none came for metrics.health_timeout_ms:
 *                 the thread that polls Kafka, commits and hands blocks to the trainer is stuck.
 *                 The trainer is not judged by time: one stage of a big block legitimately runs
 *                 for many minutes; a stuck trainer shows as ccd_buffered_events growing and
 *                 ccd_input_paused.
 *   GET /readyz   200 when healthy, the group has given the worker an assignment, and the last
 *                 Redis publication did not fail; 503 with the reason otherwise. */
#ifndef CCD_METRICS_H
#define CCD_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define METRICS_MAX_PARTS 64

/* Why a message was dead-lettered: the `reason` label of ccd_dead_letters_by_reason_total. */
typedef enum {
    DEAD_NO_KEY,         /* no key and no input.default_model */
    DEAD_BAD_MODEL_ID,   /* the key is not a valid model id */
    DEAD_FRAME,          /* empty, too large, bad magic byte, short Confluent frame */
    DEAD_UNKNOWN_SCHEMA, /* a Confluent schema id with no writer schema */
    DEAD_UNDECODABLE,    /* does not decode with its writer schema */
    DEAD_INVALID_FIELD,  /* decodes, but a field is invalid (ids, event time, weight) */
    DEAD_REASONS
} dead_reason;
extern const char *const dead_reason_names[DEAD_REASONS];

/* A Prometheus histogram of seconds with fixed buckets (metrics_bucket_le, the last is +Inf):
 * bucket[i] counts the observations in (le[i-1], le[i]]; the exposition makes them cumulative. */
#define METRICS_BUCKETS 13
extern const double metrics_bucket_le[METRICS_BUCKETS - 1];
typedef struct {
    int64_t bucket[METRICS_BUCKETS];
    int64_t count;
    double sum;
} metrics_histogram;
void metrics_histogram_observe(metrics_histogram *h, double seconds);

/* One model's series (label model="<id>"). A worker names at most METRICS_MAX_MODELS - 1 models;
 * the blocks of any further model are summed under model=".other" (a name no model id can have),
 * so a multi-tenant worker cannot blow up the scrape. */
#define METRICS_MAX_MODELS 64
typedef struct {
    char model[128];
    int64_t live_version, blocks_done;
    double holdout_recall20, holdout_ndcg20;
    metrics_histogram block_seconds;   /* a block's whole run: window closed -> checkpointed */
    metrics_histogram publish_seconds; /* writing a student's version to Redis */
    /* freshness: from a window's close, and from its newest event's arrival, to the first version
     * of its block going live (provisional or exact: worker/fastpath.h), and from the close to the
     * exact version being published (queueing behind earlier blocks' slow paths included) */
    metrics_histogram fresh_close_seconds, fresh_event_seconds, fresh_exact_close_seconds;
    int first_live_next;           /* the lowest block whose first version has not gone live yet */
    int64_t provisional_published; /* provisional versions that went live */
    int64_t exact_behind;          /* exact versions listed behind a newer live provisional one */
    int64_t backlog; /* closed windows of the model not yet folded (the one training included) */
} metrics_model;

typedef struct {
    int64_t messages, decoded, dead_letters, dlq_delivery_errors, duplicates, late, windows_closed;
    int64_t offset_moves, partition_conflicts;
    int64_t dead_by_reason[DEAD_REASONS];
    int64_t buffered_events, max_buffered_events;
    int64_t paused; /* 0 or 1 */
    int64_t models;
    int64_t joined;          /* 1 once the group gave this worker an assignment (maybe empty) */
    int64_t publish_failing; /* 1 while the last publication to Redis failed (it is retried) */
    /* from the trainer */
    int64_t blocks_done, publish_errors, checkpoint_errors, publish_rows, live_version;
    double last_fast_seconds, last_total_seconds, last_publish_seconds;
    double holdout_recall20, holdout_ndcg20;
    int64_t last_window_events;
    int n_models;
    metrics_model per_model[METRICS_MAX_MODELS];
    /* fencing (owner.h): writes refused per kind, publications refused for a newer live block,
     * epochs raised, checkpoints that landed after a newer claim; claims; partitions fenced now */
    int64_t fenced_publish, fenced_checkpoint, stale_refused, fence_raised, checkpoints_landed_late;
    int64_t owner_claims, fenced_partitions;
    /* teacher jobs (teacher_jobs.h): sent by the owner; done, failed, skipped by the teacher
     * role; seconds training teachers (teacher role) and waiting for them (owner) */
    int64_t teacher_jobs_produced, teacher_jobs_done, teacher_jobs_failed, teacher_jobs_skipped;
    double teacher_seconds_total, teacher_last_seconds, teacher_wait_seconds_total;
    /* schema registry (schema_registry.h): HTTP requests and their outcomes, lookups answered
     * from the negative cache, whether the last request worked (1 when no registry is set), and
     * messages held for a retry because it was unavailable; partitions held now */
    int64_t registry_requests, registry_found, registry_missing, registry_errors;
    int64_t registry_cache_hits, registry_up, registry_retries, registry_held_partitions;
    /* consumer lag per assigned partition: high watermark - position */
    int n_parts;
    struct {
        char topic[256];
        int32_t partition;
        int64_t lag;
    } parts[METRICS_MAX_PARTS];
} metrics_snapshot;

typedef struct metrics_server metrics_server;

/* Listen on "host:port" (e.g. "127.0.0.1:9464"; port 0 is refused); /healthz turns 503 when no
 * snapshot came for health_timeout_ms. NULL with err on failure. */
metrics_server *metrics_start(const char *listen, int64_t health_timeout_ms, char *err,
                              size_t errlen);
void metrics_publish(metrics_server *m, const metrics_snapshot *s);
void metrics_stop(metrics_server *m);

/* Render a snapshot in the Prometheus text format into buf; returns the length (truncated at
 * cap). Exposed for tests. */
size_t metrics_render(const metrics_snapshot *s, char *buf, size_t cap);

#endif
