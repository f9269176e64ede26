/* trainer: the thread that turns closed windows into blocks.
 *
 * The consumer thread submits one job per model at a time (the head of the model's closed
 * queue); the trainer runs the engine's block step on it. As soon as the continual student CL_k
 * exists (the fast path) it is published to Redis; then the teacher side runs (the slow path);
 * then the checkpoint is written. Only then is the job done and its offsets may be committed.
 * Publication and checkpoint failures (Redis down, disk full) are retried with exponential
 * backoff until they succeed or the job is stopped, so nothing is committed that is not durable.
 * A fenced write (owner.h, checkpoint.h: a newer owner has claimed the model, or a newer block is
 * live) is never retried: the job ends with CCD_FENCED and the consumer gives the model up.
 * A stop (rebalance, shutdown) abandons the block within about a second, mid-epoch (the engine
 * polls it before every mini-batch and per row chunk); the state is left as it was before
 * the block and the window's events stay uncommitted for whoever replays them. Shutdown waits
 * for that only until its deadline (trainer_stop_all_until).
 *
 * Seams: the trainer publishes through a trainer_sink (a function and its context: the Redis
 * sink in the service, trainer_sink_redis; a fake in tests/unit/test_trainer.c) and checkpoints
 * through a ckpt_store (checkpoint.h, itself a vtable), so both can be replaced by fakes that
 * record calls or fail on demand, while the engine runs for real.
 *
 * Threads: the job queue, `running`, `quit`, each job's results and `done`, and the stats are
 * guarded by `mu`; a job's `stop` is an atomic (the engine polls it without the lock). */
#ifndef CCD_TRAINER_H
#define CCD_TRAINER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "checkpoint.h"
#include "metrics.h"
#include "tenant.h"
#include "redis_sink.h"
#include "worker_config.h"

/* A job's rc when a write was fenced (below train.h's CCD_STOPPED and -1). */
#define CCD_FENCED (-3)

typedef struct trainer_job {
    struct trainer_job *next;
    /* set by the consumer thread at submit (snapshots: the consumer keeps growing the originals) */
    tenant *m;
    closed_window *cw;     /* m->closed head */
    const char **user_ids; /* (cw->n_users) row -> id */
    const char **item_ids; /* (cw->n_items) */
    int n_parts;
    tenant_part *parts;   /* (n_parts) copy of m->parts; durable_next updated by the trainer */
    int64_t events_total; /* m->events_total before this block */
    uint64_t epoch;       /* m->epoch: the owner epoch every write of this job is fenced by */
    atomic_int stop;      /* raised by the consumer thread, polled by the engine */
    /* results, written by the trainer before done is set */
    int rc; /* 0 done, CCD_STOPPED, CCD_FENCED (err names the holder), -1 failed */
    bool fenced;
    char err[512];
    int64_t version;     /* published version (0: not published) */
    ccd_metrics holdout; /* CL_k on the window's holdout */
    double t_start;      /* ccd_now() when training started */
    double seconds_fast, seconds_total, seconds_checkpoint;
    bool done;
} trainer_job;

typedef struct {
    /* counters for metrics, updated under the trainer's lock */
    int64_t blocks_done, publish_errors, checkpoint_errors, publish_rows;
    /* fencing: writes refused {publish, checkpoint}; publications refused because a newer block
     * was live; publications that raised the owner record's epoch (the record had lost ours) */
    int64_t fenced_publish, fenced_checkpoint, stale_refused, fence_raised;
    /* the save store's counters (checkpoint.h landed_late, fence_raised), copied after a save */
    int64_t checkpoints_landed_late, checkpoint_fence_raised;
    double last_fast_seconds, last_total_seconds, last_publish_seconds;
    int64_t live_version;
    double last_holdout_recall20, last_holdout_ndcg20;
    int64_t last_window_events;
    bool publish_failing; /* the last publication failed (set until one succeeds) */
    int n_models;         /* per-model series (metrics.h) */
    metrics_model per_model[METRICS_MAX_MODELS];
} trainer_stats;

/* Where students go: publish writes version v and returns its number (> 0), -1 with err
 * (retried), or -2 (fenced: never retried; v->outcome, when set, says why). */
typedef struct {
    int64_t (*publish)(void *ctx, const redis_version *v, char *err, size_t errlen);
    void *ctx;
} trainer_sink;

/* The sink for a Redis connection (redis_publish). */
trainer_sink trainer_sink_redis(redis_sink *s);

/* Where CL_k's layer-0 table goes right after its publication (the engine's student_table hook):
 * the fast path (fastpath.h) continues its provisional students from it. Called on the trainer
 * thread; emb0 is valid during the call only. */
typedef void (*trainer_table_fn)(void *ctx, const tenant *m, int block, const float *emb0,
                                 int n_users, int n_items, int dim);

typedef struct {
    const worker_config *cfg;
    trainer_sink sink;         /* publish NULL: publication is off */
    trainer_table_fn on_table; /* optional, set before the first job */
    void *on_table_ctx;
    ckpt_store *store; /* the trainer thread's own store (checkpoint.h) */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    trainer_job *queue, *queue_tail;
    trainer_job *running;
    bool quit;
    trainer_stats stats;
    /* teachers.mode = kafka: the block step's teacher updates go out as jobs (teacher_jobs.h);
     * set by the caller after trainer_start, before the first job; NULL: in-process */
    struct tj_owner *teacher_jobs;
} trainer;

/* Start the thread. sink.publish may be NULL (publication off); store stays the caller's and must
 * outlive trainer_join. The engine settings are cfg->ccd. */
int trainer_start(trainer *t, const worker_config *cfg, trainer_sink sink, ckpt_store *store);
/* Stop the thread after the running job (raise its stop first if you want it abandoned). */
void trainer_join(trainer *t);

/* Queue a job (ownership of j passes to the trainer until trainer_job_done says so). */
void trainer_submit(trainer *t, trainer_job *j);

/* Whether j is done (its results may then be read without the lock). */
bool trainer_job_done(trainer *t, const trainer_job *j);

/* Wait on cv (mu held) for at most 50 ms; false, without waiting, once `deadline` (ccd_now()
 * seconds) has passed. For loops that wait for a condition until a deadline (the trainer's and
 * the fast path's stops). */
bool cond_wait_slice(pthread_cond_t *cv, pthread_mutex_t *mu, double deadline);

/* Raise the stop flag of every queued or running job of model m and wait until none is left
 * in the trainer. */
void trainer_stop_model(trainer *t, const tenant *m);
/* The same, giving up at `deadline` (ccd_now() seconds): true when none of m's jobs is left. */
bool trainer_stop_model_until(trainer *t, const tenant *m, double deadline);

/* Shutdown: raise the stop flag of every queued or running job, then wait until the trainer
 * holds no job or until `deadline` (ccd_now() seconds). True when it is idle; false when a job
 * is still running (in a loop without a poll point, or a long write): the caller must then not
 * join the thread nor free what the job uses. */
bool trainer_stop_all_until(trainer *t, double deadline);

/* A window's freshness marks (closed_window's closed_s and newest_arrival_s). */
typedef struct {
    int block;
    double closed_s, newest_s;
} trainer_window;

/* A provisional version of model `model` went live (the fast path, fastpath.h), trained on the
 * windows win[0..n) (several when the fast path folded a backlog; the version's block is the last
 * one's): its counters, and each window's freshness unless a version of its block was live
 * before. Under the lock. */
void trainer_note_provisional(trainer *t, const char *model, const trainer_window *win, int n,
                              int64_t version, int64_t rows, double publish_seconds);

/* Snapshot of the counters. */
trainer_stats trainer_get_stats(trainer *t);

#endif
