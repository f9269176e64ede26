/* trainer: see trainer.h. */
#include "trainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "checkpoint.h"
#include "dense.h"
#include "errmsg.h"
#include "owner.h"
#include "state.h"
#include "teacher_jobs.h"
#include "testhook.h"
#include "train.h"
#include "wlog.h"

/* The series of model id (under the trainer's lock): its own while there is room, else the
 * shared ".other" entry, which is the table's last slot. */
static metrics_model *model_stats(trainer_stats *st, const char *id)
{
    for (int i = 0; i < st->n_models; i++)
        if (!strcmp(st->per_model[i].model, id))
            return &st->per_model[i];
    if (st->n_models == METRICS_MAX_MODELS)
        return &st->per_model[METRICS_MAX_MODELS - 1];
    metrics_model *m = &st->per_model[st->n_models++];
    snprintf(m->model, sizeof m->model, "%s", st->n_models == METRICS_MAX_MODELS ? ".other" : id);
    return m;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Wait about ms, returning early when the job is stopped. */
static void backoff(const trainer_job *j, int ms)
{
    for (int waited = 0; waited < ms && !atomic_load(&j->stop); waited += 50)
        sleep_ms(50);
}

typedef struct {
    trainer *t;
    trainer_job *j;
    const ccd_block *blk;
} publish_ctx;

/* A write refused by the owner fence: never retried. The job ends with CCD_FENCED and the
 * holder in j->err; the consumer thread logs it and gives up the model's partitions. */
static int fenced(trainer *t, trainer_job *j, const char *write, bool stale, const char *why)
{
    pthread_mutex_lock(&t->mu);
    if (stale)
        t->stats.stale_refused++;
    else if (!strcmp(write, "publish"))
        t->stats.fenced_publish++;
    else
        t->stats.fenced_checkpoint++;
    pthread_mutex_unlock(&t->mu);
    j->fenced = true;
    errmsg_set(j->err, sizeof j->err, "block %d: %s %s: %s", j->cw->block, write,
               stale ? "refused (a newer block is live)" : "fenced", why);
    return -1;
}

/* A publication found an epoch below ours in the owner record, and raised it. */
static void fence_raised(trainer *t, const trainer_job *j)
{
    pthread_mutex_lock(&t->mu);
    t->stats.fence_raised++;
    pthread_mutex_unlock(&t->mu);
    wlog(WLOG_WARN,
         "model %s block %d: the owner record held an epoch below ours (%llu): raised it (was the "
         "record lost, e.g. a Redis failover?)",
         j->m->id, j->cw->block, (unsigned long long)j->epoch);
}

/* A version written (t->mu held): rows, its write time, publication no longer failing. */
static void note_version(trainer *t, metrics_model *ms, int64_t rows, double seconds)
{
    t->stats.publish_rows += rows;
    t->stats.last_publish_seconds = seconds;
    metrics_histogram_observe(&ms->publish_seconds, seconds);
    t->stats.publish_failing = false;
}

/* Version ver of block went live, or was listed behind a newer live one (t->mu held). The
 * window's freshness is observed once, by the first version of its block that goes live. */
static void note_live(trainer *t, metrics_model *ms, int block, double closed_s, double newest_s,
                      int64_t ver, bool behind)
{
    if (behind) {
        ms->exact_behind++;
        return;
    }
    ms->live_version = ver;
    t->stats.live_version = ver;
    if (block >= ms->first_live_next) {
        double now = ccd_now();
        metrics_histogram_observe(&ms->fresh_close_seconds, now - closed_s);
        metrics_histogram_observe(&ms->fresh_event_seconds, now - newest_s);
        ms->first_live_next = block + 1;
    }
}

void trainer_note_provisional(trainer *t, const char *model, const trainer_window *win, int n,
                              int64_t version, int64_t rows, double publish_seconds)
{
    pthread_mutex_lock(&t->mu);
    metrics_model *ms = model_stats(&t->stats, model);
    note_version(t, ms, rows, publish_seconds);
    for (int i = 0; i < n; i++) /* oldest first: first_live_next only grows */
        note_live(t, ms, win[i].block, win[i].closed_s, win[i].newest_s, version, false);
    ms->provisional_published++;
    pthread_mutex_unlock(&t->mu);
}

static int publish_student(void *vctx, const float *final, int n_users, int n_items, int dim,
                           const ccd_block_metrics *metrics)
{
    publish_ctx *pc = vctx;
    trainer *t = pc->t;
    trainer_job *j = pc->j;
    double t_fast = ccd_now();
    /* the quality reported is the test half of the holdout: selection never saw it */
    const ccd_metrics *q = &metrics->test;
    j->holdout = *q;
    if (!t->sink.publish)
        return 0;
    char events[24], total[24], r20[32], n20[32], hu[16], users_new[16], items_new[16], secs[32];
    snprintf(events, sizeof events, "%lld", (long long)j->cw->n_ev);
    snprintf(total, sizeof total, "%lld", (long long)(j->events_total + j->cw->n_ev));
    snprintf(r20, sizeof r20, "%.6f", q->recall[CCD_K20]);
    snprintf(n20, sizeof n20, "%.6f", q->ndcg[CCD_K20]);
    snprintf(hu, sizeof hu, "%d", q->n_users);
    snprintf(users_new, sizeof users_new, "%d", n_users - pc->blk->prev_users);
    snprintf(items_new, sizeof items_new, "%d", n_items - pc->blk->prev_items);
    snprintf(secs, sizeof secs, "%.3f", t_fast - j->t_start);
    const char *names[] = {"model",          "events",        "events_total", "holdout_recall20",
                           "holdout_ndcg20", "holdout_users", "new_users",    "new_items",
                           "train_seconds"};
    const char *values[] = {j->m->id, events, total, r20, n20, hu, users_new, items_new, secs};
    redis_version v = {.model = j->m->id,
                       .block = j->cw->block,
                       .dim = dim,
                       .n_users = n_users,
                       .n_items = n_items,
                       .user_ids = j->user_ids,
                       .item_ids = j->item_ids,
                       .user_vecs = final,
                       .item_vecs = final + (size_t)n_users * dim,
                       .n_meta = (int)(sizeof names / sizeof *names),
                       .meta_names = names,
                       .meta_values = values,
                       .epoch = j->epoch};
    int wait = 200;
    bool behind = false;
    for (;;) {
        char err[512];
        owner_outcome o;
        memset(&o, 0, sizeof o);
        v.outcome = &o;
        double t0 = ccd_now();
        int64_t ver = t->sink.publish(t->sink.ctx, &v, err, sizeof err);
        if (ver == OWNER_FENCED)
            return fenced(t, j, "publish", o.stale, err);
        if (ver > 0 && o.raised)
            fence_raised(t, j);
        if (ver > 0) {
            j->version = ver;
            behind = o.behind;
            pthread_mutex_lock(&t->mu);
            metrics_model *ms = model_stats(&t->stats, j->m->id);
            note_version(t, ms, n_users + n_items, ccd_now() - t0);
            note_live(t, ms, j->cw->block, j->cw->closed_s, j->cw->newest_arrival_s, ver, behind);
            metrics_histogram_observe(&ms->fresh_exact_close_seconds, ccd_now() - j->cw->closed_s);
            pthread_mutex_unlock(&t->mu);
            break;
        }
        pthread_mutex_lock(&t->mu);
        t->stats.publish_errors++;
        t->stats.publish_failing = true;
        pthread_mutex_unlock(&t->mu);
        wlog(WLOG_WARN, "model %s block %d: publish failed (%s); retrying in %d ms", j->m->id,
             j->cw->block, err, wait);
        backoff(j, wait);
        if (atomic_load(&j->stop))
            return -1;
        wait = wait * 2 < 10000 ? wait * 2 : 10000; /* doubling, at most 10 s */
    }
    j->seconds_fast = ccd_now() - t_fast;
    wlog(WLOG_INFO,
         "model %s block %d: student v%lld %s (%d users, %d items, holdout R@20 %.4f N@20 %.4f)",
         j->m->id, j->cw->block, (long long)j->version,
         behind ? "stored behind a newer live provisional version" : "live", n_users, n_items,
         j->holdout.recall[CCD_K20], j->holdout.ndcg[CCD_K20]);
    test_pause("after_publish", j->m->id, j->cw->block);
    return 0;
}

static void engine_log(void *ctx, const char *msg)
{
    const trainer_job *j = ctx;
    wlog(WLOG_DEBUG, "model %s: %s", j->m->id, msg);
}

typedef struct {
    trainer_job *j;
    publish_ctx *pc;
} hook_ctx;

static void hook_log(void *ctx, const char *msg)
{
    engine_log(((hook_ctx *)ctx)->j, msg);
}

static int hook_ready(void *ctx, const float *final, int n_users, int n_items, int dim,
                      const ccd_block_metrics *v)
{
    return publish_student(((hook_ctx *)ctx)->pc, final, n_users, n_items, dim, v);
}

/* CL_k's layer-0 table to the fast path (trainer.on_table), after its publication. */
static void hook_table(void *ctx, const float *emb0, int n_users, int n_items, int dim)
{
    const hook_ctx *hc = ctx;
    trainer *t = hc->pc->t;
    if (t->on_table && !hc->j->fenced)
        t->on_table(t->on_table_ctx, hc->j->m, hc->j->cw->block, emb0, n_users, n_items, dim);
}

/* teachers.mode = kafka: T_{m,k} from teacher workers (teacher_jobs.h). */
static int hook_teachers(void *ctx, const ccd_teacher_inputs *in, float **out)
{
    hook_ctx *hc = ctx;
    trainer *t = hc->pc->t;
    trainer_job *j = hc->j;
    char err[512];
    int rc = tj_owner_teachers(t->teacher_jobs, t->store, j->m->id, j->epoch, &j->stop, in, out,
                               err, sizeof err);
    if (rc != 0 && rc != CCD_STOPPED)
        wlog(WLOG_ERROR, "model %s block %d: teacher jobs: %s", j->m->id, j->cw->block, err);
    return rc;
}

/* The checkpoint of the block just folded into m->state. */
static int write_checkpoint(trainer *t, trainer_job *j)
{
    const closed_window *cw = j->cw;
    checkpoint c;
    checkpoint_init(&c);
    snprintf(c.model, sizeof c.model, "%s", j->m->id);
    c.block = cw->block;
    c.window_start_ms = cw->window_start_after;
    c.events_total = j->events_total + cw->n_ev;
    c.published_version = j->version;
    c.n_users = cw->n_users;
    c.n_items = cw->n_items;
    c.user_ids = (char **)j->user_ids; /* borrowed: not freed below */
    c.item_ids = (char **)j->item_ids;
    c.n_offsets = j->n_parts;
    ckpt_offset *offs = calloc((size_t)(j->n_parts > 0 ? j->n_parts : 1), sizeof *offs);
    if (!offs)
        return -1;
    for (int i = 0; i < j->n_parts; i++) {
        snprintf(offs[i].topic, sizeof offs[i].topic, "%s", j->parts[i].topic);
        offs[i].partition = j->parts[i].partition;
        offs[i].next_offset = j->parts[i].durable_next;
        offs[i].commit_floor = j->parts[i].commit_floor;
    }
    c.offsets = offs;
    if (ccd_state_serialize(&j->m->state, &c.state, &c.state_len) != 0) {
        free(offs);
        return -1;
    }
    int wait = 200, rc = -1;
    for (;;) {
        char err[512];
        int r = ckpt_store_save(t->store, &c, j->epoch, err, sizeof err);
        if (r == 0) {
            rc = 0;
            pthread_mutex_lock(&t->mu);
            t->stats.checkpoints_landed_late = (int64_t)t->store->landed_late;
            t->stats.checkpoint_fence_raised = (int64_t)t->store->fence_raised;
            pthread_mutex_unlock(&t->mu);
            break;
        }
        if (r == CKPT_FENCED) {
            fenced(t, j, "checkpoint", false, err);
            break;
        }
        pthread_mutex_lock(&t->mu);
        t->stats.checkpoint_errors++;
        pthread_mutex_unlock(&t->mu);
        wlog(WLOG_ERROR, "model %s block %d: checkpoint failed (%s); retrying in %d ms", j->m->id,
             cw->block, err, wait);
        backoff(j, wait);
        if (atomic_load(&j->stop))
            break;
        wait = wait * 2 < 30000 ? wait * 2 : 30000; /* doubling, at most 30 s */
    }
    free(c.state);
    free(offs);
    return rc;
}

static void run_job(trainer *t, trainer_job *j)
{
    double t0 = ccd_now();
    j->t_start = t0;
    tenant *m = j->m;
    const closed_window *cw = j->cw;
    ccd_block blk;
    if (tenant_build_block(cw, m->state.block >= 0 ? m->state.n_users : 0,
                           m->state.block >= 0 ? m->state.n_items : 0, &blk) != 0) {
        j->rc = -1;
        snprintf(j->err, sizeof j->err, "out of memory building block %d", cw->block);
        return;
    }
    /* Large windows: model selection on a hashed sample of the held-out users (ccd.eval_users). */
    ccd_block_sample_eval(&blk, t->cfg->ccd.eval_users, t->cfg->ccd.seed);
    /* the offsets this block makes durable */
    for (int64_t e = 0; e < cw->n_ev; e++) {
        tenant_part *p = &j->parts[cw->ev[e].part];
        if (cw->ev[e].offset + 1 > p->durable_next)
            p->durable_next = cw->ev[e].offset + 1;
    }
    publish_ctx pc = {t, j, &blk};
    hook_ctx hc = {j, &pc};
    ccd_block_hooks hooks = {.log = hook_log,
                             .student_ready = hook_ready,
                             .student_table = hook_table,
                             .stop = &j->stop,
                             .ctx = &hc};
    if (t->teacher_jobs)
        hooks.teachers = hook_teachers;
    ccd_block_report rep;
    char eng_err[512];
    wlog(WLOG_INFO,
         "model %s block %d: %lld events (%lld train pairs, %lld holdout), %d users (+%d), "
         "%d items (+%d), closed by %s",
         m->id, cw->block, (long long)cw->n_ev, (long long)blk.train.nnz,
         (long long)(blk.valid.nnz + blk.test.nnz), blk.n_users, blk.n_users - blk.prev_users,
         blk.n_items, blk.n_items - blk.prev_items, cw->reason);
    test_pause("train", m->id, cw->block);
    int rc = ccd_block_step(&m->state, &t->cfg->ccd, &blk, &blk, 1, &rep, &hooks, eng_err,
                            sizeof eng_err);
    ccd_block_report_free(&rep);
    tenant_block_free(&blk);
    if (j->fenced) {
        j->rc = CCD_FENCED; /* the engine stopped because the publication was refused */
        return;
    }
    if (rc != 0) {
        snprintf(j->err, sizeof j->err, "%s", eng_err);
        j->rc = rc;
        return;
    }
    double t1 = ccd_now();
    test_pause("before_ckpt", m->id, cw->block);
    if (write_checkpoint(t, j) != 0) {
        if (j->fenced) {
            j->rc = CCD_FENCED;
            return;
        }
        /* the state holds the block but it is not durable: the consumer drops the model */
        j->rc = atomic_load(&j->stop) ? CCD_STOPPED : -1;
        snprintf(j->err, sizeof j->err, "checkpoint of block %d not written", cw->block);
        return;
    }
    j->seconds_checkpoint = ccd_now() - t1;
    j->seconds_total = ccd_now() - t0;
    j->rc = 0;
    pthread_mutex_lock(&t->mu);
    t->stats.blocks_done++;
    t->stats.last_fast_seconds = j->seconds_fast;
    t->stats.last_total_seconds = j->seconds_total;
    t->stats.last_holdout_recall20 = j->holdout.recall[CCD_K20];
    t->stats.last_holdout_ndcg20 = j->holdout.ndcg[CCD_K20];
    t->stats.last_window_events = cw->n_ev;
    metrics_model *ms = model_stats(&t->stats, m->id);
    ms->blocks_done++;
    metrics_histogram_observe(&ms->block_seconds, j->seconds_total);
    ms->holdout_recall20 = j->holdout.recall[CCD_K20];
    ms->holdout_ndcg20 = j->holdout.ndcg[CCD_K20];
    pthread_mutex_unlock(&t->mu);
    wlog(WLOG_INFO, "model %s block %d: done in %.1f s (checkpoint %.2f s)", m->id, cw->block,
         j->seconds_total, j->seconds_checkpoint);
}

static void *trainer_main(void *arg)
{
    trainer *t = arg;
    pthread_mutex_lock(&t->mu);
    for (;;) {
        while (!t->queue && !t->quit)
            pthread_cond_wait(&t->cv, &t->mu);
        if (!t->queue)
            break;
        trainer_job *j = t->queue;
        t->queue = j->next;
        if (!t->queue)
            t->queue_tail = NULL;
        t->running = j;
        pthread_mutex_unlock(&t->mu);
        if (atomic_load(&j->stop)) {
            j->rc = CCD_STOPPED;
            snprintf(j->err, sizeof j->err, "stopped before it started");
        } else {
            run_job(t, j);
        }
        pthread_mutex_lock(&t->mu);
        t->running = NULL;
        j->done = true;
        pthread_cond_broadcast(&t->cv);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

static int64_t publish_redis(void *ctx, const redis_version *v, char *err, size_t errlen)
{
    return redis_publish(ctx, v, err, errlen);
}

trainer_sink trainer_sink_redis(redis_sink *s)
{
    return (trainer_sink){.publish = publish_redis, .ctx = s};
}

int trainer_start(trainer *t, const worker_config *cfg, trainer_sink sink, ckpt_store *store)
{
    memset(t, 0, sizeof *t);
    t->cfg = cfg;
    t->sink = sink;
    t->store = store;
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    if (pthread_create(&t->thread, NULL, trainer_main, t) != 0)
        return -1;
    return 0;
}

void trainer_join(trainer *t)
{
    pthread_mutex_lock(&t->mu);
    t->quit = true;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    pthread_join(t->thread, NULL);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
}

void trainer_submit(trainer *t, trainer_job *j)
{
    pthread_mutex_lock(&t->mu);
    j->next = NULL;
    j->done = false;
    if (t->queue_tail)
        t->queue_tail->next = j;
    else
        t->queue = j;
    t->queue_tail = j;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

/* See trainer.h. The condition variable runs on the realtime clock, the deadline on ccd_now()'s:
 * short slices keep a clock step from stretching the wait. */
bool cond_wait_slice(pthread_cond_t *cv, pthread_mutex_t *mu, double deadline)
{
    if (ccd_now() >= deadline)
        return false;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 50000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(cv, mu, &ts);
    return true;
}

/* Whether the trainer holds a job of m (every job when m is NULL); t->mu held. */
static bool holds_jobs_of(const trainer *t, const tenant *m)
{
    bool left = t->running && (!m || t->running->m == m);
    for (trainer_job *j = t->queue; j && !left; j = j->next)
        left = !m || j->m == m;
    return left;
}

/* Raise the stop of m's jobs (every job when m is NULL) and wait until none is left or until
 * deadline. */
static bool stop_jobs_until(trainer *t, const tenant *m, double deadline)
{
    pthread_mutex_lock(&t->mu);
    for (trainer_job *j = t->queue; j; j = j->next)
        if (!m || j->m == m)
            atomic_store(&j->stop, 1);
    if (t->running && (!m || t->running->m == m))
        atomic_store(&t->running->stop, 1);
    bool left;
    while ((left = holds_jobs_of(t, m)) && cond_wait_slice(&t->cv, &t->mu, deadline))
        ;
    pthread_mutex_unlock(&t->mu);
    return !left;
}

void trainer_stop_model(trainer *t, const tenant *m)
{
    stop_jobs_until(t, m, INFINITY);
}

bool trainer_stop_model_until(trainer *t, const tenant *m, double deadline)
{
    return stop_jobs_until(t, m, deadline);
}

bool trainer_stop_all_until(trainer *t, double deadline)
{
    return stop_jobs_until(t, NULL, deadline);
}

bool trainer_job_done(trainer *t, const trainer_job *j)
{
    pthread_mutex_lock(&t->mu);
    bool done = j->done;
    pthread_mutex_unlock(&t->mu);
    return done;
}

trainer_stats trainer_get_stats(trainer *t)
{
    pthread_mutex_lock(&t->mu);
    trainer_stats s = t->stats;
    pthread_mutex_unlock(&t->mu);
    return s;
}
