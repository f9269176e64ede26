/* trainer: the training thread against a fake sink and a fake checkpoint store, with the real
 * engine on a small clustered stream (engine_fixture.h). What it publishes (the student's shape,
 * ids, meta) and that it publishes before it checkpoints; what it checkpoints (the published
 * version, the events, the offsets made durable, a state that loads); jobs in submission order;
 * a failing sink or store retried with backoff and counted; a stop while either is down, or
 * before the job starts, abandons the job without a checkpoint. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "dense.h"
#include "engine_fixture.h"
#include "rng.h"
#include "owner.h"
#include "state.h"
#include "train.h"
#include "trainer.h"

/* ------------------------------------------------------------------------------------------ */
/* a log of what the fakes saw, in order */

enum { LOG_MAX = 16 };

typedef struct {
    char what[LOG_MAX][64]; /* "publish m0 block 0", "save m0 block 0" */
    int n;
} call_log;

static void log_call(call_log *l, const char *kind, const char *model, int block)
{
    if (l->n < LOG_MAX)
        snprintf(l->what[l->n++], sizeof l->what[0], "%s %s block %d", kind, model, block);
}

/* Failures on demand, for both fakes: the first `failures` calls fail (all of them when < 0), and
 * after `stop_after` failures (0: never) the job's stop is raised, as a rebalance would. */
typedef struct {
    int failures, stop_after, calls, failed;
    trainer_job *job;
} fault;

/* Counts a call; true when it is to fail (err says so). */
static bool fault_now(fault *f, char *err, size_t errlen, const char *why)
{
    f->calls++;
    if (f->failures >= 0 && f->failed >= f->failures)
        return false;
    f->failed++;
    if (f->stop_after > 0 && f->failed >= f->stop_after)
        atomic_store(&f->job->stop, 1);
    snprintf(err, errlen, "%s", why);
    return true;
}

/* The sink: versions from 41 once it works. */
typedef struct {
    call_log *log;
    fault fault;
    int64_t next_version;
    /* the last publication */
    int block, dim, n_users, n_items;
    char user0[16], item_last[16], meta[512];
    int finite;
    int fenced;     /* 1: every publication is fenced (-2); 2: refused as stale */
    bool behind;    /* publications succeed but are listed behind a live provisional version */
    uint64_t epoch; /* the epoch of the last call */
} fake_sink;

static int64_t fake_publish(void *ctx, const redis_version *v, char *err, size_t errlen)
{
    fake_sink *f = ctx;
    f->epoch = v->epoch;
    if (f->fenced) {
        f->fault.calls++;
        if (v->outcome)
            v->outcome->stale = f->fenced == 2;
        snprintf(err, errlen, "fake owner holds epoch 99");
        return OWNER_FENCED;
    }
    if (fault_now(&f->fault, err, errlen, "fake sink down"))
        return -1;
    if (v->outcome)
        v->outcome->behind = f->behind;
    log_call(f->log, "publish", v->model, v->block);
    f->block = v->block;
    f->dim = v->dim;
    f->n_users = v->n_users;
    f->n_items = v->n_items;
    snprintf(f->user0, sizeof f->user0, "%s", v->user_ids[0]);
    snprintf(f->item_last, sizeof f->item_last, "%s", v->item_ids[v->n_items - 1]);
    f->finite = 1;
    for (size_t k = 0; k < (size_t)v->n_users * v->dim; k++)
        f->finite &= v->user_vecs[k] == v->user_vecs[k] && v->user_vecs[k] < 1e30f &&
                     v->user_vecs[k] > -1e30f;
    f->meta[0] = '\0';
    for (int k = 0; k < v->n_meta; k++) {
        size_t used = strlen(f->meta);
        snprintf(f->meta + used, sizeof f->meta - used, "%s=%s;", v->meta_names[k],
                 v->meta_values[k]);
    }
    return f->next_version++;
}

/* The store: a successful put keeps the bytes of the last checkpoint. */
typedef struct {
    call_log *log;
    fault fault;
    int keep;
    unsigned char *bytes;
    size_t len;
    bool fenced;    /* every save is refused (CKPT_FENCED) */
    uint64_t epoch; /* the epoch of the last save */
} fake_store;

static int fake_claim(void *impl, const char *model, const char *member, const char *source,
                      ckpt_claim *out, char *err, size_t errlen)
{
    (void)impl, (void)model, (void)member, (void)source, (void)err, (void)errlen;
    out->epoch = 1;
    return 0;
}

static int fake_put(void *impl, const char *model, int block, uint64_t epoch,
                    const unsigned char *buf, size_t len, int keep, char *err, size_t errlen)
{
    fake_store *f = impl;
    f->epoch = epoch;
    if (f->fenced) {
        f->fault.calls++;
        snprintf(err, errlen, "fake claim of epoch 99");
        return CKPT_FENCED;
    }
    if (fault_now(&f->fault, err, errlen, "fake disk full"))
        return -1;
    log_call(f->log, "save", model, block);
    free(f->bytes);
    f->bytes = malloc(len);
    assert_non_null(f->bytes);
    memcpy(f->bytes, buf, len);
    f->len = len;
    f->keep = keep;
    return 0;
}

static int fake_list(void *impl, const char *model, int **blocks, char *err, size_t errlen)
{
    (void)impl, (void)model, (void)err, (void)errlen;
    *blocks = NULL;
    return 0;
}

static int fake_get(void *impl, const char *model, int block, unsigned char **buf, size_t *len,
                    char *err, size_t errlen)
{
    (void)impl, (void)model, (void)block, (void)buf, (void)len;
    snprintf(err, errlen, "not used");
    return -1;
}

static void fake_where(const void *impl, const char *model, int block, char *out, size_t outlen)
{
    (void)impl;
    snprintf(out, outlen, "fake %s %d", model, block);
}

static void fake_close(void *impl)
{
    (void)impl;
}

/* no blobs: the trainer's tests run with teachers.mode = local */
static const ckpt_backend fake_backend = {.claim = fake_claim,
                                          .put = fake_put,
                                          .list = fake_list,
                                          .get = fake_get,
                                          .where = fake_where,
                                          .close = fake_close};

/* ------------------------------------------------------------------------------------------ */
/* a model with one closed window, and its job */

enum { USERS0 = 70, ITEMS0 = 60, OFFSET0 = 100 };

/* Block 0 of the fixture's stream as Kafka events of partition "in"/3: ids u<k> and i<k>, each
 * user's first event a valid pair and its second a test pair (the rest train), offsets from
 * OFFSET0 with a gap every 50 (other models' messages in between). Returns the last offset. */
static int64_t fill_window(tenant *m, uint64_t seed)
{
    ccd_rng r;
    ccd_rng_init(&r, seed, 0);
    int part = tenant_part_index(m, "in", 3);
    assert_int_equal(part, 0);
    int64_t offset = OFFSET0, last = -1;
    for (int u = 0; u < USERS0; u++)
        for (int e = 0; e < 8; e++) {
            int cluster = u % 4, i = (int)ccd_rng_below(&r, ITEMS0);
            if (ccd_rng_uniform(&r) < 0.8f)
                i = (i / 4) * 4 + cluster;
            if (i >= ITEMS0)
                i = cluster;
            char uid[16], iid[16];
            snprintf(uid, sizeof uid, "u%d", u);
            snprintf(iid, sizeof iid, "i%d", i);
            int added;
            /* holdout: 1 valid (e == 0), 2 test (e == 1), 0 train */
            tenant_event ev = {.part = part, .holdout = e < 2 ? e + 1 : 0, .offset = offset};
            ev.user = idmap_add(&m->users, uid, &added);
            ev.item = idmap_add(&m->items, iid, &added);
            assert_int_equal(tenant_push(m, &ev), 0);
            last = offset;
            offset += (offset % 50 == 0) ? 7 : 1;
        }
    m->last_arrival_s = ccd_now() - 0.5; /* the newest event arrived half a second ago */
    assert_int_equal(tenant_close_window(m, 0, 1234, "count"), 0);
    return last;
}

/* What the service's submit does: snapshots of the ids and parts at submit time. */
static trainer_job *job_for(tenant *m)
{
    trainer_job *j = calloc(1, sizeof *j);
    assert_non_null(j);
    closed_window *cw = m->closed;
    j->m = m;
    j->cw = cw;
    j->user_ids = idmap_snapshot(&m->users, cw->n_users);
    j->item_ids = idmap_snapshot(&m->items, cw->n_items);
    j->n_parts = m->n_parts;
    j->parts = malloc((size_t)m->n_parts * sizeof *j->parts);
    assert_true(j->user_ids && j->item_ids && j->parts);
    memcpy(j->parts, m->parts, (size_t)m->n_parts * sizeof *j->parts);
    j->events_total = m->events_total;
    j->epoch = m->epoch;
    return j;
}

static void job_free(trainer_job *j)
{
    free(j->user_ids);
    free(j->item_ids);
    free(j->parts);
    free(j);
}

static void wait_done(trainer *t, const trainer_job *j)
{
    for (int k = 0; k < 12000 && !trainer_job_done(t, j); k++) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    assert_true(trainer_job_done(t, j));
}

/* One trainer, its fakes and one model per test. */
typedef struct {
    worker_config cfg;
    call_log log;
    fake_sink sink;
    fake_store store_impl;
    ckpt_store store;
    trainer t;
    tenant *m;
    int64_t last_offset;
} rig;

static int rig_setup(void **state)
{
    rig *g = calloc(1, sizeof *g);
    assert_non_null(g);
    worker_config_init(&g->cfg);
    small_config(&g->cfg.ccd);
    g->sink = (fake_sink){.log = &g->log, .next_version = 41};
    g->store_impl = (fake_store){.log = &g->log};
    g->store = (ckpt_store){.be = &fake_backend, .impl = &g->store_impl, .keep = 2};
    char err[256];
    g->m = tenant_new("m0", NULL, err, sizeof err);
    assert_non_null(g->m);
    g->last_offset = fill_window(g->m, 99);
    *state = g;
    return 0;
}

static int rig_teardown(void **state)
{
    rig *g = *state;
    tenant_free(g->m);
    free(g->store_impl.bytes);
    worker_config_free(&g->cfg);
    free(g);
    return 0;
}

static void start(rig *g, bool publish)
{
    trainer_sink sink = {publish ? fake_publish : NULL, &g->sink};
    assert_int_equal(trainer_start(&g->t, &g->cfg, sink, &g->store), 0);
}

/* Run one job to its end; the trainer is joined afterwards, so the fakes can be read freely. */
static trainer_job *run_one(rig *g, bool stop_first)
{
    trainer_job *j = job_for(g->m);
    g->sink.fault.job = g->store_impl.fault.job = j;
    if (stop_first)
        atomic_store(&j->stop, 1);
    trainer_submit(&g->t, j);
    wait_done(&g->t, j);
    return j;
}

/* Start the trainer (publishing or not), run one job to its end, take the counters and join. */
static trainer_job *run_to_end(rig *g, bool publish, bool stop_first, trainer_stats *st)
{
    start(g, publish);
    trainer_job *j = run_one(g, stop_first);
    *st = trainer_get_stats(&g->t);
    trainer_join(&g->t);
    return j;
}

static checkpoint saved(const rig *g)
{
    checkpoint c;
    char err[256];
    assert_non_null(g->store_impl.bytes);
    if (checkpoint_decode(&c, g->store_impl.bytes, g->store_impl.len, err, sizeof err) != 0)
        fail_msg("the saved checkpoint does not decode: %s", err);
    return c;
}

/* ------------------------------------------------------------------------------------------ */
/* tests */

static void publishes_then_checkpoints(void **state)
{
    rig *g = *state;
    trainer_stats st;
    trainer_job *j = run_to_end(g, true, false, &st);
    if (j->rc != 0)
        fail_msg("job failed: %s", j->err);

    /* published once, then saved once, in that order */
    assert_int_equal(g->log.n, 2);
    assert_string_equal(g->log.what[0], "publish m0 block 0");
    assert_string_equal(g->log.what[1], "save m0 block 0");
    /* the student: every user and item of the window, in row order, the student's dimension */
    assert_int_equal(g->sink.block, 0);
    assert_int_equal(g->sink.dim, g->cfg.ccd.student_dim);
    assert_int_equal(g->sink.n_users, USERS0);
    assert_int_equal(g->sink.n_items, j->cw->n_items);
    assert_string_equal(g->sink.user0, "u0");
    assert_string_equal(g->sink.item_last, j->item_ids[j->cw->n_items - 1]);
    assert_true(g->sink.finite);
    char expect[64];
    snprintf(expect, sizeof expect, "events=%d;events_total=%d;", USERS0 * 8, USERS0 * 8);
    assert_non_null(strstr(g->sink.meta, "model=m0;"));
    assert_non_null(strstr(g->sink.meta, expect));
    assert_non_null(strstr(g->sink.meta, "holdout_recall20=0."));
    snprintf(expect, sizeof expect, "new_users=%d;", USERS0);
    assert_non_null(strstr(g->sink.meta, expect));
    /* the job's results and the counters */
    assert_int_equal(j->version, 41);
    assert_true(j->holdout.n_users > 0 && j->holdout.recall[CCD_K20] > 0.0);
    assert_int_equal(st.blocks_done, 1);
    assert_int_equal(st.live_version, 41);
    assert_int_equal(st.publish_rows, USERS0 + j->cw->n_items);
    assert_int_equal(st.publish_errors + st.checkpoint_errors, 0);
    /* the model's own series: one block in the block histogram, one publication */
    assert_int_equal(st.n_models, 1);
    assert_string_equal(st.per_model[0].model, "m0");
    assert_int_equal(st.per_model[0].blocks_done, 1);
    assert_int_equal(st.per_model[0].live_version, 41);
    assert_int_equal(st.per_model[0].block_seconds.count, 1);
    assert_int_equal(st.per_model[0].publish_seconds.count, 1);
    assert_true(st.per_model[0].block_seconds.sum >= st.per_model[0].publish_seconds.sum);
    assert_false(st.publish_failing);
    /* freshness: close -> live is the block's fast path; the newest event's arrival half a second
     * before the close adds that half second */
    const metrics_model *pm = &st.per_model[0];
    assert_int_equal(pm->fresh_close_seconds.count, 1);
    assert_int_equal(pm->fresh_event_seconds.count, 1);
    assert_true(pm->fresh_close_seconds.sum > 0 && pm->fresh_close_seconds.sum < 60);
    assert_true(fabs(pm->fresh_event_seconds.sum - pm->fresh_close_seconds.sum - 0.5) < 0.05);

    /* the checkpoint: the version just published, the window's events and state, the offsets
     * made durable (one past the last event's), the store's keep passed down */
    checkpoint c = saved(g);
    assert_string_equal(c.model, "m0");
    assert_int_equal(c.block, 0);
    assert_int_equal(c.published_version, 41);
    assert_int_equal(c.events_total, USERS0 * 8);
    assert_int_equal(c.window_start_ms, 1234);
    assert_int_equal(c.n_users, USERS0);
    assert_string_equal(c.user_ids[69], "u69");
    assert_int_equal(c.n_offsets, 1);
    assert_string_equal(c.offsets[0].topic, "in");
    assert_int_equal(c.offsets[0].partition, 3);
    assert_int_equal(c.offsets[0].next_offset, g->last_offset + 1);
    assert_int_equal(g->store_impl.keep, 2);
    ccd_state st2;
    char err[256];
    assert_int_equal(ccd_state_deserialize(&st2, c.state, c.state_len, err, sizeof err), 0);
    assert_int_equal(st2.block, 0);
    assert_int_equal(st2.n_users, USERS0);
    ccd_state_free(&st2);
    checkpoint_free(&c);
    /* the model's state holds the block (the consumer thread takes the rest from the job) */
    assert_int_equal(g->m->state.block, 0);
    job_free(j);
}

static void publication_off_still_checkpoints(void **state)
{
    rig *g = *state;
    trainer_stats st;
    trainer_job *j = run_to_end(g, false, false, &st);
    assert_int_equal(j->rc, 0);
    assert_int_equal(g->sink.fault.calls, 0);
    assert_int_equal(j->version, 0);
    checkpoint c = saved(g);
    assert_int_equal(c.published_version, 0);
    assert_int_equal(c.block, 0);
    checkpoint_free(&c);
    job_free(j);
}

/* Jobs run in submission order, each published and saved before the next starts. */
static void jobs_in_submission_order(void **state)
{
    rig *g = *state;
    char err[256];
    tenant *m1 = tenant_new("m1", NULL, err, sizeof err);
    assert_non_null(m1);
    fill_window(m1, 7);
    start(g, true);
    trainer_job *a = job_for(g->m), *b = job_for(m1);
    g->sink.fault.job = g->store_impl.fault.job = a;
    trainer_submit(&g->t, a);
    trainer_submit(&g->t, b);
    wait_done(&g->t, b);
    assert_true(trainer_job_done(&g->t, a));
    trainer_join(&g->t);
    assert_int_equal(a->rc, 0);
    assert_int_equal(b->rc, 0);
    assert_int_equal(g->log.n, 4);
    assert_string_equal(g->log.what[0], "publish m0 block 0");
    assert_string_equal(g->log.what[1], "save m0 block 0");
    assert_string_equal(g->log.what[2], "publish m1 block 0");
    assert_string_equal(g->log.what[3], "save m1 block 0");
    assert_int_equal(a->version, 41);
    assert_int_equal(b->version, 42);
    checkpoint c = saved(g);
    assert_string_equal(c.model, "m1");
    assert_int_equal(c.published_version, 42);
    checkpoint_free(&c);
    job_free(a);
    job_free(b);
    tenant_free(m1);
}

/* Redis down for two attempts, then the disk full once: both retried with backoff and counted,
 * the student published once, and the version that went live is the one checkpointed. */
static void failures_retried(void **state)
{
    rig *g = *state;
    g->sink.fault.failures = 2;
    g->store_impl.fault.failures = 1;
    trainer_stats st;
    trainer_job *j = run_to_end(g, true, false, &st);
    assert_int_equal(j->rc, 0);
    assert_int_equal(g->sink.fault.calls, 3);
    assert_int_equal(g->store_impl.fault.calls, 2);
    assert_int_equal(st.publish_errors, 2);
    assert_int_equal(st.checkpoint_errors, 1);
    assert_int_equal(st.live_version, 41);
    assert_false(st.publish_failing); /* cleared by the publication that succeeded */
    assert_int_equal(st.blocks_done, 1);
    assert_int_equal(g->log.n, 2);
    checkpoint c = saved(g);
    assert_int_equal(c.published_version, 41);
    checkpoint_free(&c);
    job_free(j);
}

/* Redis (sink_down) or the disk down until the job is stopped (a rebalance): the job ends
 * CCD_STOPPED with nothing checkpointed, so the consumer thread commits none of its offsets.
 * With Redis down the block is abandoned before the state changes; with the disk full the
 * student went live but the job still says the block was not written. */
static void stopped_while_down(rig *g, bool sink_down)
{
    if (sink_down)
        g->sink.fault = (fault){.failures = -1, .stop_after = 2};
    else
        g->store_impl.fault = (fault){.failures = -1, .stop_after = 2};
    trainer_stats st;
    trainer_job *j = run_to_end(g, true, false, &st);
    assert_int_equal(j->rc, CCD_STOPPED);
    assert_null(g->store_impl.bytes);
    assert_int_equal(st.blocks_done, 0);
    assert_int_equal(sink_down ? g->sink.fault.calls : g->store_impl.fault.calls, 2);
    assert_int_equal(sink_down ? st.publish_errors : st.checkpoint_errors, 2);
    assert_int_equal(st.publish_failing, sink_down); /* /readyz: not ready while Redis fails */
    assert_int_equal(j->version, sink_down ? 0 : 41);
    assert_int_equal(g->store_impl.fault.calls, sink_down ? 0 : 2);
    if (sink_down)
        assert_int_equal(g->m->state.block, -1);
    else
        assert_non_null(strstr(j->err, "checkpoint of block 0 not written"));
    job_free(j);
}

static void stop_while_sink_down(void **state)
{
    stopped_while_down(*state, true);
}

static void stop_while_store_down(void **state)
{
    stopped_while_down(*state, false);
}

/* A fenced publication (a newer owner, or a newer block live) is never retried: the job ends
 * CCD_FENCED at once with the holder in its message, nothing is checkpointed, and the write is
 * counted as fenced, not as an error. The job's epoch is the one the sink sees. */
static void fenced_publish_not_retried(void **state)
{
    rig *g = *state;
    g->sink.fenced = 1;
    g->m->epoch = 7;
    trainer_stats st;
    trainer_job *j = run_to_end(g, true, false, &st);
    assert_int_equal(j->rc, CCD_FENCED);
    assert_int_equal(g->sink.fault.calls, 1);
    assert_int_equal(g->sink.epoch, 7);
    assert_int_equal(g->store_impl.fault.calls, 0);
    assert_int_equal(st.fenced_publish, 1);
    assert_int_equal(st.publish_errors + st.stale_refused + st.blocks_done, 0);
    assert_non_null(strstr(j->err, "publish fenced: fake owner holds epoch 99"));
    assert_int_equal(g->m->state.block, -1);
    job_free(j);
}

static void stale_publish_not_retried(void **state)
{
    rig *g = *state;
    g->sink.fenced = 2;
    trainer_stats st;
    trainer_job *j = run_to_end(g, true, false, &st);
    assert_int_equal(j->rc, CCD_FENCED);
    assert_int_equal(g->sink.fault.calls, 1);
    assert_int_equal(st.stale_refused, 1);
    assert_int_equal(st.fenced_publish, 0);
    assert_non_null(strstr(j->err, "refused (a newer block is live)"));
    job_free(j);
}

/* The engine's student_table hook as the trainer passes it on (trainer.on_table). */
typedef struct {
    int calls, block, n_users, dim;
    double first;
} table_seen;

static void on_table(void *ctx, const tenant *m, int block, const float *emb0, int n_users,
                     int n_items, int dim)
{
    (void)m, (void)n_items;
    table_seen *t = ctx;
    t->calls++;
    t->block = block, t->n_users = n_users, t->dim = dim, t->first = emb0[0];
}

/* An exact version listed behind a newer live provisional one (the fast path) is not an error:
 * the block is checkpointed, the version counted as behind, not live, and the first-live
 * freshness left to the provisional version; CL_k's table reaches trainer.on_table. */
static void exact_behind_provisional(void **state)
{
    rig *g = *state;
    g->sink.behind = true;
    start(g, true);
    table_seen seen = {0};
    g->t.on_table = on_table;
    g->t.on_table_ctx = &seen;
    trainer_job *j = run_one(g, false);
    trainer_stats st = trainer_get_stats(&g->t);
    trainer_join(&g->t);
    if (j->rc != 0)
        fail_msg("job failed: %s", j->err);
    assert_int_equal(st.blocks_done, 1);
    assert_int_equal(st.stale_refused + st.fenced_publish + st.publish_errors, 0);
    assert_int_equal(st.n_models, 1);
    const metrics_model *ms = &st.per_model[0];
    assert_int_equal(ms->exact_behind, 1);
    assert_int_equal(ms->live_version, 0);
    assert_int_equal(ms->fresh_close_seconds.count, 0);
    assert_int_equal(ms->fresh_exact_close_seconds.count, 1);
    assert_int_equal(seen.calls, 1);
    assert_int_equal(seen.block, 0);
    assert_int_equal(seen.n_users, USERS0);
    assert_int_equal(seen.dim, g->cfg.ccd.student_dim);
    assert_true(seen.first == g->m->state.student[0]); /* CL_0's layer-0 table, as committed */
    job_free(j);
}

static void fenced_checkpoint_not_retried(void **state)
{
    rig *g = *state;
    g->store_impl.fenced = true;
    g->m->epoch = 9;
    trainer_stats st;
    trainer_job *j = run_to_end(g, true, false, &st);
    assert_int_equal(j->rc, CCD_FENCED);
    assert_int_equal(g->store_impl.fault.calls, 1);
    assert_int_equal(g->store_impl.epoch, 9);
    assert_int_equal(st.fenced_checkpoint, 1);
    assert_int_equal(st.checkpoint_errors + st.blocks_done, 0);
    assert_non_null(strstr(j->err, "checkpoint fenced: fake claim of epoch 99"));
    job_free(j);
}

static void stop_before_start(void **state)
{
    rig *g = *state;
    trainer_stats st;
    trainer_job *j = run_to_end(g, true, true, &st);
    assert_int_equal(j->rc, CCD_STOPPED);
    assert_string_equal(j->err, "stopped before it started");
    assert_int_equal(g->sink.fault.calls + g->store_impl.fault.calls, 0);
    assert_int_equal(g->m->state.block, -1);
    job_free(j);
}

/* every test gets a fresh trainer, fakes and model */
#define RIG_TEST(f) cmocka_unit_test_setup_teardown(f, rig_setup, rig_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        RIG_TEST(publishes_then_checkpoints), RIG_TEST(publication_off_still_checkpoints),
        RIG_TEST(jobs_in_submission_order),   RIG_TEST(failures_retried),
        RIG_TEST(stop_while_sink_down),       RIG_TEST(stop_while_store_down),
        RIG_TEST(stop_before_start),          RIG_TEST(fenced_publish_not_retried),
        RIG_TEST(stale_publish_not_retried),  RIG_TEST(fenced_checkpoint_not_retried),
        RIG_TEST(exact_behind_provisional),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
