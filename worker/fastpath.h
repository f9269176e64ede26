/* fastpath: provisional students, so that a closed window is served within seconds even while
 * its model's previous block is still in the trainer (issue 15, items 3-4; docs/fastpath.md).
 *
 * The trainer (trainer.h) runs one block step after another: block k's exact student CL_k comes
 * only after block k-1's slow path (teachers, ensemble, distillation: minutes) and, for the
 * bootstrap window, after the base teachers. The fast path is a second thread that never waits
 * for the trainer:
 *   - when a window of model M closes while M's previous block is still in the trainer (queued
 *     or running), or when it is M's bootstrap window (no student yet), the consumer thread
 *     submits a provisional job with a copy of the window (fastpath_submit);
 *   - the thread takes the newest student of M it knows (the exact CL_{k-1}, handed over by the
 *     trainer's student_table hook, or the last provisional one, or the restored state's) and
 *     trains ccd_student_provisional (models/provisional.h) on the window: expanded and
 *     fine-tuned for fastpath.epochs, or from scratch for fastpath.bootstrap_epochs;
 *   - it publishes the result with meta provisional=1 and block = the window's block; the exact
 *     CL_k replaces it when the trainer gets there (owner.h: publication rules);
 *   - a job is skipped when a newer window of the same model is already queued behind it, or when
 *     a student of its block (exact or provisional) already exists.
 * Nothing here is checkpointed, and offsets are still committed only after the exact block's
 * checkpoint: a provisional student is pure serving state, lost on restart and re-made from the
 * replayed windows. A fenced or stale publication is dropped quietly (the trainer's own exact
 * publication reports fencing); failures are retried a few times, then dropped.
 *
 * Threads: the consumer thread submits, seeds and stops models; the trainer thread hands over
 * exact tables (fastpath_exact_table); the fast-path thread trains and publishes. The job
 * queue and the table of newest students are guarded by one mutex; a job's stop flag is atomic.
 * Publications of both threads share one lock (fastpath_serial_sink): a publication deletes the
 * numbered-but-unlisted versions above the newest listed one (redis_sink.h step 2), which would
 * be the other thread's version in progress. */
#ifndef CCD_FASTPATH_H
#define CCD_FASTPATH_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "redis_sink.h"
#include "tenant.h"
#include "trainer.h"
#include "worker_config.h"

typedef struct fastpath fastpath;

/* Start the thread. sink.publish may be NULL (publication off: provisional students are still
 * trained, for the tests). tr receives the provisional versions' counters and freshness. */
fastpath *fastpath_start(const worker_config *cfg, trainer_sink sink, trainer *tr);
/* Shutdown: raise every job's stop, drop the queued ones and wait for the running one (a
 * mini-batch, or a publication stuck on Redis) until `deadline` (ccd_now() seconds): true when
 * the thread is idle. f may be NULL. */
bool fastpath_stop_until(fastpath *f, double deadline);
/* Stop every job, join the thread, free everything (after fastpath_stop_until said idle, or at
 * any time when waiting for a publication is fine). */
void fastpath_stop(fastpath *f);

/* Consumer thread: window cw of model m closed (m->closed's tail). The window's events are
 * copied; the id snapshots user_ids/item_ids (cw->n_users, cw->n_items entries, owned by the job
 * afterwards) must stay valid until fastpath_stop_model(m). epoch: m's owner epoch. 0, or -1
 * when out of memory (the window is then simply not served early). */
int fastpath_submit(fastpath *f, tenant *m, const closed_window *cw, const char **user_ids,
                    const char **item_ids, uint64_t epoch, int64_t events_total);
/* Consumer thread, m not busy: its state's CL (a restored model) as the newest student, unless a
 * newer one is known. */
void fastpath_seed(fastpath *f, const tenant *m);
/* Consumer thread: stop m's jobs, wait for them until `deadline` (ccd_now() seconds; INFINITY),
 * forget its students (before m is freed). False when a job of m is still running (a
 * publication stuck on Redis): m must not be freed. f may be NULL. */
bool fastpath_stop_model_until(fastpath *f, const tenant *m, double deadline);
/* Trainer thread (trainer.on_table): CL_k's layer-0 table of m's block k. */
void fastpath_exact_table(void *f, const tenant *m, int block, const float *emb0, int n_users,
                          int n_items, int dim);

/* A trainer_sink that serialises publications of several threads on one mutex. */
typedef struct {
    pthread_mutex_t *mu;
    redis_sink *sink;
} fastpath_serial;
trainer_sink fastpath_serial_sink(fastpath_serial *s);

#endif
