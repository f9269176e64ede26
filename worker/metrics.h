/* metrics: the Prometheus text endpoint (GET /metrics) of a worker, served by libmicrohttpd.
 *
 * The consumer thread fills a metrics_snapshot after every batch and hands it over with
 * metrics_publish (a copy under a mutex); libmicrohttpd's own thread renders the latest copy on
 * each scrape, so a scrape never touches live worker state and never blocks the consumer for
 * longer than a memcpy. Nothing secret is ever part of a snapshot. */
#ifndef CCD_METRICS_H
#define CCD_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define METRICS_MAX_PARTS 64

typedef struct {
    int64_t messages, decoded, dead_letters, dlq_delivery_errors, duplicates, late, windows_closed;
    int64_t buffered_events, max_buffered_events;
    int64_t paused; /* 0 or 1 */
    int64_t models;
    /* from the trainer */
    int64_t blocks_done, publish_errors, checkpoint_errors, publish_rows, live_version;
    double last_fast_seconds, last_total_seconds, last_publish_seconds;
    double holdout_recall20, holdout_ndcg20;
    int64_t last_window_events;
    /* fencing (owner.h): writes refused per kind, publications refused for a newer live block,
     * epochs raised, checkpoints that landed after a newer claim; claims; partitions fenced now */
    int64_t fenced_publish, fenced_checkpoint, stale_refused, fence_raised, checkpoints_landed_late;
    int64_t owner_claims, fenced_partitions;
    /* consumer lag per assigned partition: high watermark - position */
    int n_parts;
    struct {
        char topic[256];
        int32_t partition;
        int64_t lag;
    } parts[METRICS_MAX_PARTS];
} metrics_snapshot;

typedef struct metrics_server metrics_server;

/* Listen on "host:port" (e.g. "127.0.0.1:9464"; port 0 is refused). NULL with err on failure. */
metrics_server *metrics_start(const char *listen, char *err, size_t errlen);
void metrics_publish(metrics_server *m, const metrics_snapshot *s);
void metrics_stop(metrics_server *m);

/* Render a snapshot in the Prometheus text format into buf; returns the length (truncated at
 * cap). Exposed for tests. */
size_t metrics_render(const metrics_snapshot *s, char *buf, size_t cap);

#endif
