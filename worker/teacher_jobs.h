/* teacher_jobs: a block's teacher updates as Kafka jobs (issue 15; docs/design-teacher-jobs.md).
 *
 * With teachers.mode = kafka the owner of a model (the worker that consumes its input and trains
 * its blocks) no longer trains the teachers of block k >= 1 itself. The engine calls the
 * ccd_block_hooks `teachers` hook once CL_k exists; the owner then
 *   1. writes the teacher inputs ONCE per block as a blob in the shared checkpoint store
 *      (checkpoint.h put_blob: a directory or Redis): the engine config as INI text, the state
 *      after block k-1 (state.h codec), block k, CL_k; le.h frame "CCDTJIN1", CRC-checked;
 *   2. produces one job per teacher m to teachers.jobs_topic: key = the model, a short text
 *      payload (model, block, teacher, owner epoch, input and result blob names), partition
 *      (crc32(model) + m) mod the topic's partitions, so that one model's teachers land on
 *      different partitions and therefore on different teacher workers;
 *   3. polls the store for the result blobs (le.h frame "CCDTJRS1": the table T_{m,k}) or an
 *      error blob, checks them against the block and the teacher's spec, hands the tables to the
 *      engine, and deletes the block's blobs. The job's stop flag (rebalance, shutdown) ends the
 *      wait within 200 ms (CCD_STOPPED, the blobs deleted).
 * Blob names carry the block and the owner epoch (tj-b<k>-e<epoch>-in, ...-t<m>): a newer owner
 * of the model never reads an older owner's inputs or results, so the blobs need no fence of
 * their own, and before each block's inputs the owner deletes those of older epochs and earlier
 * blocks (what a crashed owner or a late teacher left; ckpt_store_sweep_blobs).
 *
 * Teacher role (worker.roles contains "teacher"): a thread with its own consumer in group
 * "<group.id>.teachers" on the jobs topic, enable.auto.commit off. Per job: skip it when its
 * result blob exists already (a redo after a crash) or its input blob is gone (the owner has
 * finished or given up the block); otherwise get the input (the last one decoded is cached: a
 * worker often runs several teachers of the same block), run ccd_teacher_update, write the result
 * blob (durable on return: fsync + rename for a directory), produce a result message to
 * teachers.results_topic, then commit the job's offset. A worker killed mid-job never committed
 * it: after the rebalance another teacher worker runs it again; a duplicate result has the same
 * bytes (ccd_teacher_update is deterministic), so whichever write lands last is the same table.
 * A job that fails (bad input, out of memory) writes an error blob with the message and is
 * committed: the owner fails the block, as an in-process failure would.
 *
 * Threads: tj_owner is used by the trainer thread only (its producer is thread-safe anyway); the
 * teacher thread owns its consumer, producer and store. The counters are guarded by a mutex. */
#ifndef CCD_TEACHER_JOBS_H
#define CCD_TEACHER_JOBS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ccd.h"
#include "checkpoint.h"
#include "worker_config.h"

/* ------------------------------------------------------------------------------------------ */
/* blobs (exposed for tests) */

/* The teacher inputs decoded from an input blob; everything owned. */
typedef struct {
    char model[128];
    int block;
    uint64_t epoch;
    ccd_config cfg;
    ccd_state prev;
    ccd_block blk;
    float *student; /* (blk.n_users + blk.n_items) x prev.student_dim */
} tj_inputs;

/* in as an input blob (malloc'd). 0, or -1 (out of memory). */
int tj_encode_inputs(const char *model, uint64_t epoch, const ccd_teacher_inputs *in,
                     unsigned char **buf, size_t *len);
/* An input blob into x (initialised here, left empty on failure). 0, or -1 with err. */
int tj_decode_inputs(tj_inputs *x, const unsigned char *buf, size_t len, char *err, size_t errlen);
void tj_inputs_free(tj_inputs *x);
/* The engine's view of decoded inputs (pointers into x). */
ccd_teacher_inputs tj_inputs_view(const tj_inputs *x);

/* Teacher m's table of block `block` ((rows) x dim) as a result blob. 0 or -1. */
int tj_encode_result(const char *model, int block, int m, uint64_t epoch, const float *table,
                     int64_t rows, int dim, unsigned char **buf, size_t *len);
/* A result blob: the table (malloc'd) when it is model's block, teacher m, epoch, with rows x
 * dim floats; -1 with err otherwise. */
int tj_decode_result(const unsigned char *buf, size_t len, const char *model, int block, int m,
                     uint64_t epoch, int64_t rows, int dim, float **table, char *err,
                     size_t errlen);

/* Whether blob `name` is a teacher-job blob that an owner of `epoch` about to send the jobs of
 * `block` may delete: one of an older epoch (a previous owner's) or of an earlier block under the
 * same epoch. Other names: false. */
bool tj_blob_stale(const char *name, uint64_t epoch, int block);
/* tj_blob_stale as ckpt_store_sweep_blobs's drop, floor a tj_sweep_floor. */
typedef struct {
    uint64_t epoch;
    int block;
} tj_sweep_floor;
bool tj_sweep_drop(void *floor, const char *name);
/* The teacher-job blobs of model that no one will read again deleted: every one of an epoch
 * before `epoch`, and of this epoch's blocks before `block` (an earlier owner's, one that crashed
 * mid-block included, and this owner's of earlier blocks, such as a result that landed after its
 * block was done). Called before each block's inputs are written, and with block 0 when an owner
 * takes a model, so a model that is never trained again does not keep a crashed owner's blobs.
 * Best effort: a failure is logged. */
void tj_sweep_stale(ckpt_store *store, const char *model, uint64_t epoch, int block);

/* ------------------------------------------------------------------------------------------ */
/* counters (metrics.h: ccd_teacher_*) */

typedef struct {
    int64_t jobs_produced;          /* owner: jobs sent */
    int64_t jobs_done, jobs_failed; /* teacher: results written, error blobs written */
    int64_t jobs_skipped;           /* teacher: a result already there, or no input */
    double teacher_seconds_total;   /* teacher: ccd_teacher_update, summed over jobs */
    double last_teacher_seconds;    /* teacher: the last job's */
    double wait_seconds_total;      /* owner: jobs sent -> every result loaded, summed */
} tj_stats;

/* ------------------------------------------------------------------------------------------ */
/* owner side */

typedef struct tj_owner tj_owner;

/* The jobs producer (the [kafka] settings). NULL with err. */
tj_owner *tj_owner_open(const worker_config *cfg, char *err, size_t errlen);
void tj_owner_close(tj_owner *o);
/* The ccd_block_hooks `teachers` hook of model's block in->blk->index, owned under epoch, through
 * store (the trainer thread's): 0 with out[m] filled, CCD_STOPPED once stop was raised, -1 with
 * err. Store and Kafka errors are retried with backoff until stop. */
int tj_owner_teachers(tj_owner *o, ckpt_store *store, const char *model, uint64_t epoch,
                      const atomic_int *stop, const ccd_teacher_inputs *in, float **out, char *err,
                      size_t errlen);
tj_stats tj_owner_stats(tj_owner *o);

/* ------------------------------------------------------------------------------------------ */
/* teacher role */

typedef struct tj_teacher tj_teacher;

/* Start the teacher thread (its consumer, producer and store). NULL with err. */
tj_teacher *tj_teacher_start(const worker_config *cfg, char *err, size_t errlen);
/* Raise its stop (a job in training is abandoned uncommitted), leave the group, join. */
void tj_teacher_stop(tj_teacher *t);
tj_stats tj_teacher_stats(tj_teacher *t);
/* Whether a fatal Kafka error (authentication, authorisation) stopped the thread. */
bool tj_teacher_failed(tj_teacher *t);

#endif
