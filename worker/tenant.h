/* tenant: one model id's stream state in a worker (a "tenant" of the worker: the events keyed by
 * one model id): id maps, the open window, closed windows waiting for the trainer, the engine
 * state, and what of its input is durable. The model id stays the user-facing name (Kafka key,
 * Redis keys, checkpoints); "tenant" names this struct so that "model" keeps meaning the engine's
 * recommenders.
 *
 * Ownership: the consumer thread owns everything here except `state` while a job for the tenant
 * is in flight (tenant.busy): then the trainer thread owns the state, and the consumer thread
 * only appends to the id maps and the open window.
 *
 * Offsets: a tenant remembers, per topic partition it has read from, `durable_next`: every message
 * of its model id below it is folded into the checkpointed state. After a restart or a rebalance,
 * messages below it are skipped, which is what makes replaying a partition from an older
 * committed offset safe. */
#ifndef CCD_TENANT_H
#define CCD_TENANT_H

#include <stdbool.h>
#include <stdint.h>

#include "ccd.h"
#include "checkpoint.h"
#include "dataset.h"
#include "idmap.h"
#include "window.h"

typedef struct {
    int32_t user, item; /* rows in the model's id maps */
    int32_t part;       /* index into model.parts */
    int32_t holdout;    /* 0 train; kept out of training: 1 valid (selection), 2 test (quality) */
    int64_t offset;     /* Kafka offset of the message */
} tenant_event;

typedef struct {
    char topic[CKPT_MAX_TOPIC + 1];
    int32_t partition;
    int64_t durable_next;
    int64_t commit_floor; /* checkpoint.h: the group's committed offset when the state's block
                           * was taken (-1 unknown) */
    bool checked;         /* the offset rules ran for this partition since the model loaded */
} tenant_part;

/* A closed window on its way to becoming block `block`. */
typedef struct closed_window {
    struct closed_window *next;
    int block;
    tenant_event *ev;
    int64_t n_ev;
    int n_users, n_items;       /* id-space sizes when the window closed */
    int64_t window_start_after; /* the windowing state to checkpoint with this block */
    const char *reason;         /* "count", "time", "idle", "buffer bound" */
    double closed_s;            /* ccd_now() when it closed, and when its newest event arrived: */
    double newest_arrival_s;    /* freshness is measured from both to the version going live */
} closed_window;

typedef struct tenant {
    char id[128];
    ccd_state state;
    idmap users, items;
    window_state win;
    tenant_event *ev; /* the open window */
    int64_t n_ev, cap_ev;
    int n_parts;
    tenant_part *parts;
    closed_window *closed, *closed_tail; /* FIFO; the head is the in-flight job when busy */
    int64_t events_total;                /* events in blocks folded into the state */
    int64_t published_version;
    int64_t late_events;
    int64_t last_event_ms; /* wall clock of the last event (idle timeout) */
    double last_arrival_s; /* ccd_now() when the open window's newest event arrived */
    uint64_t epoch;        /* our owner epoch, from the claim made before the checkpoint load */
    bool busy;
    bool failed;
} tenant;

/* Holdout decision for one event from a hash of (user, item, seed) mapped to [0, 1): below
 * fraction / 2 it is a valid pair (model selection), below fraction a test pair (the quality
 * reported with each version, never used for selection), else a train pair. The same pair always
 * lands on the same side. */
int tenant_holdout(const char *user_id, const char *item_id, uint64_t seed, double fraction);

/* A fresh model, or one restored from a checkpoint (c may be NULL). Returns NULL with err. */
tenant *tenant_new(const char *id, const checkpoint *c, char *err, size_t errlen);
void tenant_free(tenant *m);

/* Index of (topic, partition) in m->parts, adding it (durable_next 0) when new; -1 on OOM. */
int tenant_part_index(tenant *m, const char *topic, int32_t partition);

/* Append an event to the open window; -1 on OOM. */
int tenant_push(tenant *m, const tenant_event *e);

/* Close the open window (even if empty: callers check) into the closed queue. */
int tenant_close_window(tenant *m, int block, int64_t window_start_after, const char *reason);

/* The first offset of (part) still pending (closed or open windows), or -1 when none. */
int64_t tenant_first_pending(const tenant *m, int part);

/* Buffered events (open + closed windows). */
int64_t tenant_buffered(const tenant *m);

/* Build block cw->block's data: train pairs (deduplicated), the valid and test halves of the
 * holdout, active users (every user of the window) and items (with a train pair).
 * prev_users/prev_items: the state's id-space sizes. Returns 0 or -1 (OOM). */
int tenant_build_block(const closed_window *cw, int prev_users, int prev_items, ccd_block *blk);
void tenant_block_free(ccd_block *blk);

#endif
