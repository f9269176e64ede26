/* service: the ccd-worker service; see service.h. Kafka in, windows, one CCD block per window
 * (the trainer thread), students out to Redis, checkpoints, commits.
 *
 * Threads: the consumer thread (the caller of service_run) polls Kafka, decodes, dead-letters
 * bad records, maps ids, cuts windows, commits offsets and handles rebalances (librdkafka serves
 * its callbacks from this thread's polls); the trainer thread (trainer.c) runs the engine,
 * publishes and checkpoints. librdkafka and libmicrohttpd have threads of their own. The only
 * flag shared across threads here is `stopping` (an atomic, set by service_stop from a signal
 * handler or another thread); everything the trainer shares goes through trainer.h.
 *
 * Delivery: a partition's committed offset never passes an event that is not in a checkpoint:
 * it is the smallest offset still pending in any model's windows, or the consumed position when
 * nothing is pending. After a restart or a rebalance the partition is read again from there, and
 * each model skips the messages below its checkpoint's `durable_next`, so every event is counted
 * into exactly one block. Dead letters are flushed to their topic before each commit.
 *
 * Fencing (issue 17, owner.h): a model is claimed (a new owner epoch, from the checkpoint store)
 * before its checkpoint is loaded, and the epoch is adopted into the Redis owner record; every
 * publication and checkpoint of its blocks carries it. When one is refused (a newer owner claimed
 * the model while this worker was stalled), the model's partitions are fenced: paused, their
 * models dropped, never committed again, their fetched messages ignored, until the expected
 * revoke clears them; still assigned after worker.fence_grace_ms, the worker stops (fatal). */
#include "service.h"

#include <inttypes.h>
#include <math.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint.h"
#include "dense.h"
#include "errmsg.h"
#include "event_codec.h"
#include "idmap.h"
#include "metrics.h"
#include "tenant.h"
#include "model_id.h"
#include "offset_rules.h"
#include "owner.h"
#include "redis_sink.h"
#include "fastpath.h"
#include "schema_registry.h"
#include "train.h"
#include "teacher_jobs.h"
#include "testhook.h"
#include "trainer.h"
#include "window.h"
#include "wlog.h"

/* ------------------------------------------------------------------------------------------ */
/* state of the consumer thread */

typedef struct {
    char topic[CKPT_MAX_TOPIC + 1];
    int32_t partition;
    int64_t position;  /* next offset after the last message consumed; -1 unknown */
    int64_t committed; /* last offset committed by us; -1 none */
    int64_t first;     /* first offset read since the assignment; -1 none yet (offset_rules.h) */
    bool assigned;
    bool moved;  /* its offsets moved back under input.on_offset_reset = fail: never committed */
    bool fenced; /* a write of one of its models was fenced: paused, never committed */
    bool held;   /* paused and sought back to `position` until the schema registry answers */
    int64_t retry_at_ms;     /* held: when to resume (monotonic) */
    int64_t fenced_since_ms; /* monotonic */
    char fenced_model[128];  /* the model whose write was refused (for the fatal message) */
} part_state;

typedef struct job_node {
    struct job_node *next;
    trainer_job *job;
} job_node;

typedef struct {
    worker_config cfg;
    window_rules rules;
    event_format format;
    event_codec *codec;
    schema_registry *registry; /* input.registry.url, or NULL */
    rd_kafka_t *rk;            /* consumer */
    rd_kafka_t *dlq;           /* dead-letter producer, or NULL */
    rd_kafka_t *mock_host; /* --embedded-kafka: the handle that hosts librdkafka's mock cluster */
    rd_kafka_mock_cluster_t *mock;
    metrics_server *metrics;
    int embedded_partitions;
    redis_sink *sink;      /* publication, or NULL (the trainer thread's) */
    redis_sink *owner;     /* the consumer thread's connection for owner_adopt, with sink */
    ckpt_store load_store; /* the consumer thread's checkpoint store (it loads models) */
    ckpt_store save_store; /* the trainer thread's (it saves blocks) */
    trainer tr;
    fastpath *fp;           /* provisional students (fastpath.h), or NULL when off */
    redis_sink *fp_sink;    /* its publication connection */
    pthread_mutex_t pub_mu; /* publications of the trainer and the fast path, one at a time */
    fastpath_serial pub_tr, pub_fp;
    bool fp_stuck;    /* shutdown: a model was left to a provisional job past the deadline */
    tj_owner *tjo;    /* teachers.mode = kafka: the jobs producer (the trainer thread's) */
    tj_teacher *tjt;  /* worker.roles has teacher: the teacher thread */
    idmap model_ids;  /* model id -> slot in tenants */
    tenant **tenants; /* (model_ids.n) NULL when not loaded */
    int cap_tenants;
    part_state *parts;
    int n_parts;
    job_node *jobs; /* in flight */
    bool paused;
    bool fatal;
    int64_t exit_idle_ms;
    int64_t last_message_ms;
    bool joined;         /* the group gave this worker an assignment (maybe empty) at least once */
    int64_t deadline_ms; /* now_ms() by which shutdown must be done (INT64_MAX until it starts) */
    /* wall clock of the first and last message (ingest rate) */
    double first_message_s, last_message_s;
    /* counters */
    int64_t messages, decoded, dead_letters, duplicates, late, dlq_delivery_errors, blocks_closed;
    int64_t offset_moves, partition_conflicts;
    int64_t dead_by_reason[DEAD_REASONS];
    int64_t owner_claims;
    int64_t registry_retries; /* messages held because the schema registry was unavailable */
} worker;

/* Raised by service_stop, possibly from a signal handler: lock-free, so async-signal-safe. The
 * time of the first request starts the shutdown's clock (worker.shutdown_timeout_ms). */
static atomic_bool stopping;
static atomic_llong stop_requested_ms; /* now_ms() of the first stop request; 0: none */
_Static_assert(ATOMIC_BOOL_LOCK_FREE == 2, "service_stop must be async-signal-safe");
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "service_stop must be async-signal-safe");

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* async-signal-safe */
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void service_stop(void)
{
    long long none = 0;
    atomic_compare_exchange_strong(&stop_requested_ms, &none, (long long)now_ms());
    atomic_store(&stopping, true);
}

/* A partition just assigned or revoked: nothing consumed or committed by this worker yet. */
static void part_reset(part_state *p, bool assigned)
{
    p->assigned = assigned;
    p->fenced = false;
    p->held = false;
    p->position = -1;
    p->committed = -1;
    p->first = -1;
    p->moved = false;
}

static part_state *part_find(worker *w, const char *topic, int32_t partition, bool add)
{
    for (int i = 0; i < w->n_parts; i++)
        if (w->parts[i].partition == partition && !strcmp(w->parts[i].topic, topic))
            return &w->parts[i];
    if (!add)
        return NULL;
    part_state *p = realloc(w->parts, (size_t)(w->n_parts + 1) * sizeof *p);
    if (!p)
        return NULL;
    w->parts = p;
    p = &w->parts[w->n_parts++];
    memset(p, 0, sizeof *p);
    snprintf(p->topic, sizeof p->topic, "%s", topic);
    p->partition = partition;
    part_reset(p, false);
    return p;
}

/* Index of (topic, partition) in m->parts without adding; -1 when the model never read it. */
static int tenant_part_find(const tenant *m, const char *topic, int32_t partition)
{
    for (int i = 0; i < m->n_parts; i++)
        if (m->parts[i].partition == partition && !strcmp(m->parts[i].topic, topic))
            return i;
    return -1;
}

/* ------------------------------------------------------------------------------------------ */
/* dead letters */

/* Errors that retrying cannot cure: wrong credentials (SASL), a principal without the ACLs it
 * needs (the group's Read, the input topics' Read, the dead-letter topic's Write), an unusable
 * client. librdkafka retries them forever while the worker looks alive (and --exit-when-idle
 * then exits 0 without having read anything; a dead letter refused by the broker was lost while
 * its offset was committed), so the worker stops with status 1 instead, as Java clients throw. */
static bool kafka_err_fatal(rd_kafka_resp_err_t err)
{
    return err == RD_KAFKA_RESP_ERR__AUTHENTICATION || err == RD_KAFKA_RESP_ERR__FATAL ||
           err == RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED ||
           err == RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED ||
           err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED ||
           err == RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED;
}

static void dlq_delivered(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    worker *w = opaque;
    if (m->err) {
        w->dlq_delivery_errors++;
        wlog(WLOG_ERROR, "dead letter not delivered: %s", rd_kafka_err2str(m->err));
        if (kafka_err_fatal(m->err)) {
            wlog(WLOG_ERROR,
                 "dead-letter topic: %s (fatal: check the [kafka] credentials and ACLs; stopping "
                 "without committing past it)",
                 rd_kafka_err2name(m->err));
            w->fatal = true;
        }
    }
}

static dead_reason dead_reason_of(event_reject r)
{
    switch (r) {
    case EVENT_REJECT_FRAME:
        return DEAD_FRAME;
    case EVENT_REJECT_SCHEMA:
        return DEAD_UNKNOWN_SCHEMA;
    case EVENT_REJECT_FIELD:
        return DEAD_INVALID_FIELD;
    default:
        return DEAD_UNDECODABLE;
    }
}

static void dead_letter(worker *w, const rd_kafka_message_t *msg, dead_reason why,
                        const char *reason)
{
    w->dead_letters++;
    w->dead_by_reason[why]++;
    char source[CKPT_MAX_TOPIC + 48];
    snprintf(source, sizeof source, "%s/%" PRId32 "/%" PRId64, rd_kafka_topic_name(msg->rkt),
             msg->partition, msg->offset);
    wlog(WLOG_WARN, "dead letter %s: %s", source, reason);
    if (!w->dlq)
        return;
    rd_kafka_headers_t *h = rd_kafka_headers_new(3);
    rd_kafka_header_add(h, "ccd.error", -1, reason, -1);
    rd_kafka_header_add(h, "ccd.error.class", -1, dead_reason_names[why], -1);
    rd_kafka_header_add(h, "ccd.source", -1, source, -1);
    for (int attempt = 0;; attempt++) {
        rd_kafka_resp_err_t err = rd_kafka_producev(
            w->dlq, RD_KAFKA_V_TOPIC(w->cfg.dead_letter_topic),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(msg->key, msg->key_len),
            RD_KAFKA_V_VALUE(msg->payload, msg->len), RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
        if (!err)
            return; /* the headers now belong to the message */
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || attempt == 100) {
            w->dlq_delivery_errors++;
            wlog(WLOG_ERROR, "dead letter %s not produced: %s", source, rd_kafka_err2str(err));
            rd_kafka_headers_destroy(h);
            return;
        }
        rd_kafka_poll(w->dlq, 100);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* commits */

/* The offset that may be committed for one partition: see the comment at the top. */
static int64_t commit_point(const worker *w, const part_state *p)
{
    int64_t c = p->position;
    if (c < 0)
        return -1;
    for (int s = 0; s < w->model_ids.n; s++) {
        const tenant *m = w->tenants[s];
        if (!m)
            continue;
        int i = tenant_part_find(m, p->topic, p->partition);
        if (i < 0)
            continue;
        int64_t first = tenant_first_pending(m, i);
        if (first >= 0 && first < c)
            c = first;
    }
    return c;
}

/* Until when a shutdown waits for the trainer (ccd_now() seconds): its deadline less what
 * committing and leaving the group may need (3 s, a third of short timeouts). No limit before. */
static double trainer_deadline(const worker *w)
{
    if (w->deadline_ms == INT64_MAX)
        return INFINITY;
    const int64_t t = w->cfg.shutdown_timeout_ms, reserve = t / 3 < 3000 ? t / 3 : 3000;
    return (double)(w->deadline_ms - reserve) / 1000.0;
}

/* How long a flush of dead letters may wait: 10 s, or what is left before the shutdown's
 * deadline. */
static int flush_ms(const worker *w)
{
    int64_t left = w->deadline_ms - now_ms();
    return left <= 0 ? 0 : left < 10000 ? (int)left : 10000;
}

/* Commit every assigned partition (only those in `only` when given) whose commit point moved. */
static void commit_offsets(worker *w, const rd_kafka_topic_partition_list_t *only)
{
    if (w->dlq) {
        /* dead letters first: committing passes their offsets */
        if (rd_kafka_flush(w->dlq, flush_ms(w)) != RD_KAFKA_RESP_ERR_NO_ERROR) {
            wlog(WLOG_WARN, "dead letters not all delivered in time: committing nothing now");
            return; /* their offsets stay uncommitted: read (and dead-lettered) again */
        }
        if (w->fatal && w->dlq_delivery_errors > 0)
            return; /* one may be lost (no Write ACL): its offset stays uncommitted, read again */
    }
    rd_kafka_topic_partition_list_t *list =
        rd_kafka_topic_partition_list_new(w->n_parts > 0 ? w->n_parts : 1);
    for (int i = 0; i < w->n_parts; i++) {
        part_state *p = &w->parts[i];
        /* fenced: a dropped model's events may be pending; the new owner reads them */
        if (!p->assigned || p->moved || p->fenced)
            continue;
        if (only && !rd_kafka_topic_partition_list_find(only, p->topic, p->partition))
            continue;
        int64_t c = commit_point(w, p);
        if (c < 0 || c <= p->committed)
            continue;
        rd_kafka_topic_partition_list_add(list, p->topic, p->partition)->offset = c;
    }
    if (list->cnt > 0) {
        rd_kafka_resp_err_t err = rd_kafka_commit(w->rk, list, 0);
        if (err) {
            wlog(WLOG_WARN, "commit failed: %s", rd_kafka_err2str(err));
        } else {
            for (int i = 0; i < list->cnt; i++) {
                part_state *p = part_find(w, list->elems[i].topic, list->elems[i].partition, false);
                if (list->elems[i].err) {
                    wlog(WLOG_WARN, "commit of %s/%d failed: %s", list->elems[i].topic,
                         list->elems[i].partition, rd_kafka_err2str(list->elems[i].err));
                } else if (p) {
                    p->committed = list->elems[i].offset;
                    wlog(WLOG_DEBUG, "committed %s/%d at %" PRId64, p->topic, p->partition,
                         p->committed);
                }
            }
        }
    }
    rd_kafka_topic_partition_list_destroy(list);
}

/* ------------------------------------------------------------------------------------------ */
/* models and jobs */

static void submit_next(worker *w, tenant *m)
{
    if (m->busy || !m->closed || !w->cfg.train || w->deadline_ms != INT64_MAX) /* shutting down */
        return;
    closed_window *cw = m->closed;
    trainer_job *j = calloc(1, sizeof *j);
    job_node *jn = calloc(1, sizeof *jn);
    if (j) {
        j->user_ids = idmap_snapshot(&m->users, cw->n_users);
        j->item_ids = idmap_snapshot(&m->items, cw->n_items);
        j->parts = malloc((size_t)(m->n_parts > 0 ? m->n_parts : 1) * sizeof *j->parts);
    }
    if (!j || !jn || !j->user_ids || !j->item_ids || !j->parts) {
        wlog(WLOG_ERROR, "model %s: out of memory submitting block %d", m->id, cw->block);
        w->fatal = true;
        if (j)
            free(j->user_ids), free(j->item_ids), free(j->parts);
        free(j), free(jn);
        return;
    }
    j->m = m;
    j->cw = cw;
    j->n_parts = m->n_parts;
    memcpy(j->parts, m->parts, (size_t)m->n_parts * sizeof *j->parts);
    /* The group's committed offset only grows, so what this worker has committed is a floor for
     * where any later owner of the partition starts (offset_rules.h). */
    for (int i = 0; i < j->n_parts; i++) {
        const part_state *ps = part_find(w, j->parts[i].topic, j->parts[i].partition, false);
        if (ps && ps->assigned && ps->committed > j->parts[i].commit_floor)
            j->parts[i].commit_floor = ps->committed;
    }
    j->events_total = m->events_total;
    j->epoch = m->epoch;
    m->busy = true;
    jn->job = j;
    jn->next = w->jobs;
    w->jobs = jn;
    trainer_submit(&w->tr, j);
}

static void job_free(trainer_job *j)
{
    free(j->user_ids);
    free(j->item_ids);
    free(j->parts);
    free(j);
}

/* A write of model m was fenced (why names the holder): fence every assigned partition m reads.
 * They are paused at once; their models are dropped by drop_fenced after the jobs are collected
 * (collect_jobs runs inside model_drop, so it must not drop models itself). */
static void fence_partitions(worker *w, tenant *m, const char *why)
{
    char list[512] = "";
    size_t at = 0;
    rd_kafka_topic_partition_list_t *pause = rd_kafka_topic_partition_list_new(1);
    for (int i = 0; i < m->n_parts; i++) {
        part_state *p = part_find(w, m->parts[i].topic, m->parts[i].partition, false);
        if (!p || !p->assigned)
            continue;
        if (!p->fenced) {
            p->fenced = true;
            p->fenced_since_ms = now_ms();
            snprintf(p->fenced_model, sizeof p->fenced_model, "%s", m->id);
            rd_kafka_topic_partition_list_add(pause, p->topic, p->partition);
        }
        if (at < sizeof list)
            at += (size_t)snprintf(list + at, sizeof list - at, "%s%s/%d", at ? ", " : "", p->topic,
                                   (int)p->partition);
    }
    if (pause->cnt > 0)
        rd_kafka_pause_partitions(w->rk, pause);
    rd_kafka_topic_partition_list_destroy(pause);
    m->failed = true;
    wlog(WLOG_WARN,
         "model %s %s; dropping the models of %s, pausing it, committing nothing more for it",
         m->id, why, list[0] ? list : "(no partition assigned)");
}

/* Fold finished jobs into their models; returns how many finished. */
static int collect_jobs(worker *w)
{
    int n = 0;
    for (job_node **pp = &w->jobs; *pp;) {
        job_node *jn = *pp;
        trainer_job *j = jn->job;
        if (!trainer_job_done(&w->tr, j)) {
            pp = &jn->next;
            continue;
        }
        *pp = jn->next;
        free(jn);
        n++;
        tenant *m = j->m;
        m->busy = false;
        if (j->rc == 0) {
            closed_window *cw = m->closed;
            m->closed = cw->next;
            if (!m->closed)
                m->closed_tail = NULL;
            m->events_total += cw->n_ev;
            for (int i = 0; i < j->n_parts; i++) {
                m->parts[i].durable_next = j->parts[i].durable_next;
                m->parts[i].commit_floor = j->parts[i].commit_floor;
            }
            if (j->version > 0)
                m->published_version = j->version;
            free(cw->ev);
            free(cw);
            submit_next(w, m);
        } else if (j->rc == CCD_FENCED) {
            fence_partitions(w, m, j->err);
        } else if (j->rc == CCD_STOPPED) {
            m->failed = true; /* dropped by whoever stopped it */
            wlog(WLOG_INFO, "model %s: block abandoned (%s)", m->id, j->err);
        } else {
            m->failed = true;
            w->fatal = true;
            wlog(WLOG_ERROR, "model %s: %s", m->id, j->err);
        }
        job_free(j);
    }
    return n;
}

static void model_drop(worker *w, int slot)
{
    tenant *m = w->tenants[slot];
    if (!m)
        return;
    /* its provisional job reads m: past the shutdown's deadline m is left to the exit */
    bool fp_idle = fastpath_stop_model_until(w->fp, m, trainer_deadline(w));
    trainer_stop_model(&w->tr, m);
    collect_jobs(w);
    if (!fp_idle) {
        w->fp_stuck = true;
        w->tenants[slot] = NULL;
        return;
    }
    wlog(WLOG_INFO, "model %s released (%lld events in %d blocks)", m->id,
         (long long)m->events_total, m->state.block + 1);
    tenant_free(m);
    w->tenants[slot] = NULL;
}

/* Drop every model that reads a fenced partition (after fence_partitions). */
static void drop_fenced(worker *w)
{
    for (int s = 0; s < w->model_ids.n; s++) {
        tenant *m = w->tenants[s];
        bool hit = false;
        for (int i = 0; m && i < m->n_parts && !hit; i++) {
            const part_state *p = part_find(w, m->parts[i].topic, m->parts[i].partition, false);
            hit = p && p->fenced;
        }
        if (hit)
            model_drop(w, s);
    }
}

static void warn_cb(void *ctx, const char *msg)
{
    (void)ctx;
    wlog(WLOG_WARN, "%s", msg);
}

/* Claim model id for this worker (a new owner epoch from the checkpoint store, before the load:
 * from here on an older owner's checkpoint saves are refused) and adopt the epoch into the Redis
 * owner record that fences publication. 0, or -1 (fatal: the store failed, or Redis holds a higher
 * epoch: the partition is fenced instead). */
static int claim(worker *w, const char *id, const char *topic, int32_t partition, uint64_t *epoch)
{
    char source[CKPT_MAX_TOPIC + 16], err[512];
    snprintf(source, sizeof source, "%s/%d", topic, (int)partition);
    char *member = rd_kafka_memberid(w->rk);
    ckpt_claim cl;
    int rc =
        ckpt_store_claim(&w->load_store, id, member ? member : "", source, &cl, err, sizeof err);
    if (rc != 0) {
        wlog(WLOG_ERROR, "model %s: cannot claim it: %s", id, err);
        w->fatal = true;
    } else {
        w->owner_claims++;
        *epoch = cl.epoch;
        wlog(WLOG_INFO, "model %s: claimed, owner epoch %llu (previous owner %s, %s)", id,
             (unsigned long long)cl.epoch, cl.prev_member[0] ? cl.prev_member : "none",
             cl.prev_source[0] ? cl.prev_source : "-");
    }
    owner_outcome o;
    if (rc == 0 && w->owner) {
        int r =
            owner_adopt(w->owner, id, cl.epoch, member ? member : "", source, &o, err, sizeof err);
        if (r == OWNER_FENCED) {
            tenant probe = {0}; /* fence_partitions needs the model's id and partitions */
            tenant_part part = {.partition = partition};
            snprintf(probe.id, sizeof probe.id, "%s", id);
            snprintf(part.topic, sizeof part.topic, "%s", topic);
            probe.parts = &part, probe.n_parts = 1;
            char why[600];
            owner_describe(w->owner, id, cl.epoch, &o, why, sizeof why);
            errmsg_set(err, sizeof err, "claim refused by the Redis owner record: %s", why);
            fence_partitions(w, &probe, err);
            rc = -1;
        } else if (r != 0) {
            /* not fatal: the first publication raises the record to our epoch */
            wlog(WLOG_WARN, "model %s: owner record not updated (%s); the first publication will",
                 id, err);
        }
    }
    if (member)
        rd_kafka_mem_free(w->rk, member);
    return rc;
}

/* The model for a key, claiming it and loading its checkpoint the first time it is seen. */
static tenant *tenant_get(worker *w, const char *id, const char *topic, int32_t partition)
{
    int added;
    int slot = idmap_add(&w->model_ids, id, &added);
    if (slot < 0)
        return NULL;
    if (slot >= w->cap_tenants) {
        int cap = w->cap_tenants ? w->cap_tenants * 2 : 64;
        while (cap <= slot)
            cap *= 2;
        tenant **mm = realloc(w->tenants, (size_t)cap * sizeof *mm);
        if (!mm)
            return NULL;
        memset(mm + w->cap_tenants, 0, (size_t)(cap - w->cap_tenants) * sizeof *mm);
        w->tenants = mm;
        w->cap_tenants = cap;
    }
    if (w->tenants[slot])
        return w->tenants[slot];
    uint64_t epoch = 0;
    if (w->cfg.train && claim(w, id, topic, partition, &epoch) != 0)
        return NULL;
    checkpoint c;
    char err[512];
    int r = ckpt_store_load_latest(&w->load_store, id, &c, warn_cb, NULL, err, sizeof err);
    if (r < 0) {
        wlog(WLOG_ERROR, "model %s: cannot read checkpoints: %s", id, err);
        w->fatal = true;
        return NULL;
    }
    tenant *m = tenant_new(id, r == 1 ? &c : NULL, err, sizeof err);
    if (r == 1)
        checkpoint_free(&c);
    if (!m) {
        wlog(WLOG_ERROR, "model %s: %s", id, err);
        w->fatal = true;
        return NULL;
    }
    if (r == 1)
        wlog(WLOG_INFO,
             "model %s: resumed from its block-%d checkpoint (%d users, %d items, %lld events, "
             "v%lld)",
             id, m->state.block, m->users.n, m->items.n, (long long)m->events_total,
             (long long)m->published_version);
    else
        wlog(WLOG_INFO, "model %s: new", id);
    m->last_event_ms = now_ms();
    m->epoch = epoch;
    if (w->tjo && epoch > 0)
        tj_sweep_stale(&w->load_store, id, epoch, 0); /* what earlier owners' jobs left */
    w->tenants[slot] = m;
    return m;
}

/* The window just closed (m->closed_tail) to the fast path, when its exact student will not come
 * at once: the model's previous block is still in the trainer, or it is the bootstrap window
 * (the base teachers take minutes). Called before submit_next, so m->busy is about earlier
 * blocks. */
static void fastpath_window(worker *w, tenant *m)
{
    const closed_window *cw = m->closed_tail;
    if (!w->fp || !cw || w->deadline_ms != INT64_MAX) /* shutting down */
        return;
    if (!m->busy) /* a restored model: its state's CL is the newest student */
        fastpath_seed(w->fp, m);
    if (!m->busy && m->state.block >= 0)
        return;
    int64_t before = m->events_total; /* events of the blocks before this one */
    for (const closed_window *c = m->closed; c && c != cw; c = c->next)
        before += c->n_ev;
    const char **users = idmap_snapshot(&m->users, cw->n_users),
               **items = idmap_snapshot(&m->items, cw->n_items);
    if (!users || !items || fastpath_submit(w->fp, m, cw, users, items, m->epoch, before) != 0)
        wlog(WLOG_WARN, "model %s: out of memory: no provisional student for block %d", m->id,
             cw->block);
    if (!users || !items)
        free(users), free(items);
}

static void close_window(worker *w, tenant *m, const char *reason, int64_t next_t)
{
    int block = m->win.next_block;
    int64_t n = m->n_ev;
    window_close(&w->rules, &m->win, next_t);
    if (tenant_close_window(m, block, m->win.start_ms, reason) != 0) {
        wlog(WLOG_ERROR, "model %s: out of memory closing block %d", m->id, block);
        w->fatal = true;
        return;
    }
    w->blocks_closed++;
    wlog(WLOG_INFO, "model %s: window of block %d closed by %s (%lld events)", m->id, block, reason,
         (long long)n);
    test_hang("consumer_hang", m->id, block);
    if (!w->cfg.train) {
        /* ingest only: count the block and forget it */
        closed_window *cw = m->closed;
        m->closed = cw->next;
        if (!m->closed)
            m->closed_tail = NULL;
        m->events_total += cw->n_ev;
        free(cw->ev);
        free(cw);
        return;
    }
    fastpath_window(w, m);
    submit_next(w, m);
}

/* ------------------------------------------------------------------------------------------ */
/* offsets that move (offset_rules.h) */

/* Apply input.on_offset_reset to model m, whose partition ps moved (rule mv, described in why)
 * at `offset`. Returns 0 to go on with the message, -1 to drop it (fail: the worker stops). */
static int offsets_moved_act(worker *w, tenant *m, tenant_part *tp, part_state *ps,
                             offsets_moved mv, int64_t offset, const char *why)
{
    w->offset_moves++;
    const char *rule = offsets_moved_name(mv);
    switch (w->cfg.on_offset_reset) {
    case OFFSETS_SKIP:
        wlog(WLOG_WARN,
             "model %s: %s/%d: offsets moved back (%s): %s; input.on_offset_reset = skip: its "
             "messages below %" PRId64 " are skipped as already folded",
             m->id, ps->topic, ps->partition, rule, why, tp->durable_next);
        return 0;
    case OFFSETS_RETRAIN:
        wlog(WLOG_WARN,
             "model %s: %s/%d: offsets moved back (%s): %s; input.on_offset_reset = retrain: "
             "folding the partition again from offset %" PRId64 " as new blocks after block %d",
             m->id, ps->topic, ps->partition, rule, why, offset, m->win.next_block - 1);
        tp->durable_next = offset;
        tp->commit_floor = -1; /* the old floor belongs to the offsets before the move */
        return 0;
    default:
        wlog(WLOG_ERROR,
             "model %s: %s/%d: offsets moved back (%s): %s; input.on_offset_reset = fail: "
             "stopping and committing nothing more for %s/%d (set it to skip or retrain, or move "
             "the model's checkpoints aside, to go on)",
             m->id, ps->topic, ps->partition, rule, why, ps->topic, ps->partition);
        ps->moved = true;
        w->fatal = true;
        return -1;
    }
}

/* At model m's first message on a partition its checkpoint knows: did the offsets move back? */
static int check_offsets(worker *w, tenant *m, int part, part_state *ps, int64_t offset)
{
    tenant_part *tp = &m->parts[part];
    tp->checked = true;
    int64_t lo, hi;
    /* the cached watermark: the fetch that brought this message updated it */
    if (rd_kafka_get_watermark_offsets(w->rk, ps->topic, ps->partition, &lo, &hi) !=
        RD_KAFKA_RESP_ERR_NO_ERROR)
        hi = -1;
    offsets_moved mv = offsets_check_start(tp->durable_next, tp->commit_floor, ps->first, hi);
    if (mv == OFFSETS_OK)
        return 0;
    char why[512];
    offsets_describe(mv, tp->durable_next, tp->commit_floor, ps->first, hi, ps->position, offset,
                     why, sizeof why);
    return offsets_moved_act(w, m, tp, ps, mv, offset, why);
}

/* A message below the one before it, with no seek of ours: every model reading the partition. */
static int partition_rewound(worker *w, part_state *ps, int64_t offset)
{
    char why[512];
    offsets_describe(OFFSETS_REWOUND, -1, -1, ps->first, -1, ps->position, offset, why, sizeof why);
    int rc = 0, models = 0;
    for (int s = 0; s < w->model_ids.n && rc == 0; s++) {
        tenant *m = w->tenants[s];
        int i = m ? tenant_part_find(m, ps->topic, ps->partition) : -1;
        if (i < 0)
            continue;
        models++;
        rc = offsets_moved_act(w, m, &m->parts[i], ps, OFFSETS_REWOUND, offset, why);
    }
    if (models == 0)
        wlog(WLOG_WARN, "%s/%d: %s (no model loaded from it yet)", ps->topic, ps->partition, why);
    if (rc == 0 && w->cfg.on_offset_reset == OFFSETS_RETRAIN)
        ps->committed = -1; /* commits start again from the rewound position */
    return rc;
}

/* A model read from two partitions of one topic: its producers disagree on the partitioner (e.g.
 * librdkafka's default against Java's murmur2), and the model's events are split between two
 * owners. Reported once per pair (the partition is new to the model here). */
static void check_partition_conflict(worker *w, const tenant *m, int part)
{
    const tenant_part *p = &m->parts[part];
    for (int i = 0; i < m->n_parts; i++)
        if (i != part && !strcmp(m->parts[i].topic, p->topic)) {
            w->partition_conflicts++;
            wlog(WLOG_WARN,
                 "model %s: events on two partitions of %s (%d and %d): its producers use "
                 "different partitioners, or the topic's partitions were added; the model is "
                 "split between the partitions' owners",
                 m->id, p->topic, m->parts[i].partition, p->partition);
        }
}

/* The partition state of a consumed message, its position advanced; NULL when the message is
 * not for this worker to handle (fetched before a revoke or a fence, whose new owner reads it;
 * offsets that moved and the worker stopping) or on OOM (fatal). */
static part_state *message_partition(worker *w, const rd_kafka_message_t *msg)
{
    part_state *ps = part_find(w, rd_kafka_topic_name(msg->rkt), msg->partition, true);
    if (!ps) {
        w->fatal = true;
        return NULL;
    }
    if (!ps->assigned || ps->moved || ps->fenced || ps->held)
        return NULL;
    if (offsets_check_next(ps->position, msg->offset) != OFFSETS_OK &&
        partition_rewound(w, ps, msg->offset) != 0)
        return NULL;
    if (ps->first < 0)
        ps->first = msg->offset;
    ps->position = msg->offset + 1;
    return ps;
}

/* The model id a message is keyed by, into model_id (128 bytes): 0, or -1 after dead-lettering
 * a message with no usable key. */
static int message_model_id(worker *w, const rd_kafka_message_t *msg, char *model_id)
{
    if (msg->key_len == 0 || !msg->key) {
        if (!w->cfg.default_model[0]) {
            dead_letter(w, msg, DEAD_NO_KEY, "missing key (model id)");
            return -1;
        }
        snprintf(model_id, 128, "%s", w->cfg.default_model);
    } else if (!model_id_valid(msg->key, msg->key_len)) {
        dead_letter(w, msg, DEAD_BAD_MODEL_ID, "bad model id in key");
        return -1;
    } else {
        memcpy(model_id, msg->key, msg->key_len);
        model_id[msg->key_len] = '\0';
    }
    return 0;
}

/* A decoded event of model m at (part, offset) into its open window, closing windows by event
 * time before and by count after. */
static void fold_event(worker *w, tenant *m, int part, int64_t offset, const ccd_event *ev)
{
    m->last_event_ms = w->last_message_ms;
    if (window_closes_before(&w->rules, &m->win, ev->event_time_ms))
        close_window(w, m, "time", ev->event_time_ms);
    int added_u, added_i;
    tenant_event e = {.part = part, .offset = offset};
    e.user = idmap_add(&m->users, ev->user_id, &added_u);
    e.item = idmap_add(&m->items, ev->item_id, &added_i);
    if (e.user < 0 || e.item < 0) {
        wlog(WLOG_ERROR, "model %s: id map full or out of memory", m->id);
        w->fatal = true;
        return;
    }
    e.holdout =
        tenant_holdout(ev->user_id, ev->item_id, w->cfg.holdout_seed, w->cfg.holdout_fraction);
    if (window_add(&w->rules, &m->win, ev->event_time_ms)) {
        m->late_events++;
        w->late++;
    }
    if (tenant_push(m, &e) != 0) {
        w->fatal = true;
        return;
    }
    m->last_arrival_s = w->last_message_s;
    if (window_full(&w->rules, &m->win))
        close_window(w, m, "count", INT64_MIN);
}

/* Pause or resume one partition. */
static void pause_one(worker *w, const char *topic, int32_t partition, bool pause)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, partition);
    if (pause)
        rd_kafka_pause_partitions(w->rk, l);
    else
        rd_kafka_resume_partitions(w->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
}

/* The schema registry could not be asked for msg's writer schema. The message is not bad input,
 * so it is not dead-lettered: its partition is paused and sought back to it, and resumed after
 * the registry's backoff (housekeeping), when the message is read and looked up again. The
 * position goes back too, so a commit never passes the message. Other partitions go on: their
 * schemas may be known already. */
static void hold_partition(worker *w, part_state *ps, const rd_kafka_message_t *msg,
                           const char *reason)
{
    int64_t wait = schema_registry_retry_ms(w->registry);
    w->registry_retries++;
    ps->position = msg->offset;
    ps->held = true;
    ps->retry_at_ms = now_ms() + wait;
    pause_one(w, ps->topic, ps->partition, true);
    /* rd_kafka_seek, not rd_kafka_seek_partitions: librdkafka before 2.1 reads the latter's
     * timeout in the wrong unit (librdkafka PR #4230), so its wait ends almost at once and the
     * seek is reported as timed out while still pending. */
    rd_kafka_resp_err_t err = rd_kafka_seek(msg->rkt, ps->partition, msg->offset, 10000);
    if (err) {
        /* unseekable: the message would be lost if we went on, so stop (it is not committed) */
        wlog(WLOG_ERROR, "%s/%d: cannot seek back to %lld after a schema registry failure: %s",
             ps->topic, (int)ps->partition, (long long)msg->offset, rd_kafka_err2str(err));
        w->fatal = true;
    }
    wlog(WLOG_WARN, "%s/%d offset %lld waits %lld ms for the schema registry: %s", ps->topic,
         (int)ps->partition, (long long)msg->offset, (long long)wait, reason);
}

/* Resume the held partitions whose wait is over (not while the whole input is paused at the
 * buffer bound: set_paused resumes them with the rest). */
static void release_held(worker *w, int64_t now)
{
    for (int i = 0; i < w->n_parts; i++) {
        part_state *p = &w->parts[i];
        if (!p->assigned || !p->held || now < p->retry_at_ms)
            continue;
        p->held = false;
        if (!w->paused && !p->fenced)
            pause_one(w, p->topic, p->partition, false);
    }
}

static void handle_message(worker *w, const rd_kafka_message_t *msg)
{
    w->messages++;
    w->last_message_ms = now_ms();
    w->last_message_s = ccd_now();
    if (w->messages == 1)
        w->first_message_s = w->last_message_s;
    part_state *ps = message_partition(w, msg);
    char model_id[128];
    if (!ps || message_model_id(w, msg, model_id) != 0)
        return;
    ccd_event ev;
    char reason[256];
    if (event_decode(w->codec, w->format, msg->payload, msg->len, &ev, reason, sizeof reason) !=
        0) {
        if (event_last_reject(w->codec) == EVENT_REJECT_RETRY)
            hold_partition(w, ps, msg, reason);
        else
            dead_letter(w, msg, dead_reason_of(event_last_reject(w->codec)), reason);
        return;
    }
    w->decoded++;
    tenant *m = tenant_get(w, model_id, ps->topic, msg->partition);
    if (!m)
        return;
    int n_parts = m->n_parts;
    int part = tenant_part_index(m, ps->topic, msg->partition);
    if (part < 0) {
        w->fatal = true;
        return;
    }
    if (m->n_parts > n_parts)
        check_partition_conflict(w, m, part);
    if (!m->parts[part].checked && check_offsets(w, m, part, ps, msg->offset) != 0)
        return;
    if (msg->offset < m->parts[part].durable_next) {
        w->duplicates++; /* already folded into the checkpointed state */
        return;
    }
    fold_event(w, m, part, msg->offset, &ev);
}

/* ------------------------------------------------------------------------------------------ */
/* rebalances */

/* Stop, checkpoint-wait and drop every model that reads any of parts, after committing them. */
static void release_partitions(worker *w, const rd_kafka_topic_partition_list_t *parts)
{
    for (int s = 0; s < w->model_ids.n; s++) {
        tenant *m = w->tenants[s];
        if (!m)
            continue;
        bool hit = false;
        for (int i = 0; i < m->n_parts && !hit; i++)
            hit = rd_kafka_topic_partition_list_find(parts, m->parts[i].topic,
                                                     m->parts[i].partition) != NULL;
        if (hit) {
            /* unbounded but in a shutdown; a block the engine does not give up in time stays */
            trainer_stop_model_until(&w->tr, m, trainer_deadline(w));
            collect_jobs(w);
        }
    }
    commit_offsets(w, parts);
    for (int s = 0; s < w->model_ids.n; s++) {
        tenant *m = w->tenants[s];
        if (!m || m->busy) /* busy: its job outlived the deadline; the process exits around it */
            continue;
        for (int i = 0; i < m->n_parts; i++)
            if (rd_kafka_topic_partition_list_find(parts, m->parts[i].topic,
                                                   m->parts[i].partition)) {
                model_drop(w, s);
                break;
            }
    }
    for (int i = 0; i < parts->cnt; i++) {
        part_state *p = part_find(w, parts->elems[i].topic, parts->elems[i].partition, false);
        if (p)
            part_reset(p, false);
    }
}

/* Hand a change of assignment to librdkafka: incrementally under the cooperative protocol,
 * wholesale under the eager one. */
static void change_assignment(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *parts, bool assign)
{
    rd_kafka_error_t *e = NULL;
    if (!strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE"))
        e = assign ? rd_kafka_incremental_assign(rk, parts)
                   : rd_kafka_incremental_unassign(rk, parts);
    else
        rd_kafka_assign(rk, assign ? parts : NULL);
    if (e) {
        wlog(WLOG_ERROR, "%s: %s", assign ? "assign" : "unassign", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    }
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    worker *w = opaque;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        w->joined = true;
        for (int i = 0; i < parts->cnt; i++) {
            part_state *p = part_find(w, parts->elems[i].topic, parts->elems[i].partition, true);
            if (p)
                part_reset(p, true);
            wlog(WLOG_INFO, "assigned %s/%d", parts->elems[i].topic, parts->elems[i].partition);
        }
        change_assignment(rk, parts, true);
        if (w->paused)
            rd_kafka_pause_partitions(rk, parts);
    } else {
        if (rd_kafka_assignment_lost(rk))
            wlog(WLOG_WARN, "assignment lost: dropping its models without committing");
        for (int i = 0; i < parts->cnt; i++)
            wlog(WLOG_INFO, "revoked %s/%d", parts->elems[i].topic, parts->elems[i].partition);
        release_partitions(w, parts);
        change_assignment(rk, parts, false);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* housekeeping between polls */

static int64_t buffered_events(const worker *w)
{
    int64_t n = 0;
    for (int s = 0; s < w->model_ids.n; s++)
        if (w->tenants[s])
            n += tenant_buffered(w->tenants[s]);
    return n;
}

static void set_paused(worker *w, bool pause)
{
    rd_kafka_topic_partition_list_t *a = NULL;
    if (rd_kafka_assignment(w->rk, &a) != RD_KAFKA_RESP_ERR_NO_ERROR || !a)
        return;
    if (pause)
        rd_kafka_pause_partitions(w->rk, a);
    else
        rd_kafka_resume_partitions(w->rk, a);
    rd_kafka_topic_partition_list_destroy(a);
    for (int i = 0; i < w->n_parts && !pause; i++) /* still waiting for the schema registry */
        if (w->parts[i].assigned && w->parts[i].held)
            pause_one(w, w->parts[i].topic, w->parts[i].partition, true);
    w->paused = pause;
    /* no message comes while the input is paused: --exit-when-idle counts from the resumption,
     * not from the last message before the pause (the partitions still hold unread events) */
    w->last_message_ms = now_ms();
    wlog(WLOG_INFO, "input %s (%lld events buffered, bound %lld)", pause ? "paused" : "resumed",
         (long long)buffered_events(w), (long long)w->cfg.max_buffered_events);
}

/* worker.fence_grace_ms, or session.timeout.ms (librdkafka's default 45 s) + 15 s. */
static int64_t fence_grace_ms(const worker *w)
{
    if (w->cfg.fence_grace_ms > 0)
        return w->cfg.fence_grace_ms;
    int64_t session = 45000;
    for (int i = 0; i < w->cfg.n_kafka; i++)
        if (!strcmp(w->cfg.kafka[i].key, "session.timeout.ms"))
            session = strtoll(w->cfg.kafka[i].value, NULL, 10);
    return session + 15000;
}

/* A fenced partition should be revoked within a session timeout (the group moved on without
 * us). Still assigned after the grace: another worker of our own group writes the same model. */
static void check_fenced(worker *w, int64_t now)
{
    int64_t grace = fence_grace_ms(w);
    for (int i = 0; i < w->n_parts; i++) {
        const part_state *p = &w->parts[i];
        if (!p->assigned || !p->fenced || now - p->fenced_since_ms < grace)
            continue;
        wlog(WLOG_ERROR,
             "%s/%d still assigned %.0f s after being fenced: another writer holds model %s "
             "(different partitioners? one redis.prefix or checkpoint store, two deployments?); "
             "stopping",
             p->topic, (int)p->partition, (double)(now - p->fenced_since_ms) / 1000,
             p->fenced_model);
        w->fatal = true;
    }
}

static void housekeeping(worker *w)
{
    int64_t now = now_ms();
    check_fenced(w, now);
    release_held(w, now);
    if (w->cfg.idle_ms > 0)
        for (int s = 0; s < w->model_ids.n; s++) {
            tenant *m = w->tenants[s];
            if (m && m->n_ev > 0 && now - m->last_event_ms >= w->cfg.idle_ms)
                close_window(w, m, "idle", INT64_MIN);
        }
    int64_t buffered = buffered_events(w);
    if (!w->paused && buffered >= w->cfg.max_buffered_events)
        set_paused(w, true);
    else if (w->paused && buffered < w->cfg.max_buffered_events / 2)
        set_paused(w, false);
    if (w->paused && !w->jobs) {
        /* nothing is training, so nothing will free the buffer: cut the largest open window */
        tenant *big = NULL;
        for (int s = 0; s < w->model_ids.n; s++)
            if (w->tenants[s] && w->tenants[s]->n_ev > 0 &&
                (!big || w->tenants[s]->n_ev > big->n_ev))
                big = w->tenants[s];
        if (big)
            close_window(w, big, "buffer bound", INT64_MIN);
    }
}

/* Closed windows of model id not yet folded (0 when it is not loaded here, or ".other"). */
static int64_t model_backlog(const worker *w, const char *id)
{
    int slot = idmap_find(&w->model_ids, id);
    const tenant *m = slot >= 0 ? w->tenants[slot] : NULL;
    int64_t n = 0;
    for (const closed_window *cw = m ? m->closed : NULL; cw; cw = cw->next)
        n++;
    return n;
}

/* The numbers /metrics shows, taken by the consumer thread (it owns them) about once a second. */
/* The teacher-job counters of both sides (either may be off). */
static void teacher_metrics(const worker *w, metrics_snapshot *m)
{
    tj_stats o = tj_owner_stats(w->tjo), t = tj_teacher_stats(w->tjt);
    m->teacher_jobs_produced = o.jobs_produced;
    m->teacher_wait_seconds_total = o.wait_seconds_total;
    m->teacher_jobs_done = t.jobs_done;
    m->teacher_jobs_failed = t.jobs_failed;
    m->teacher_jobs_skipped = t.jobs_skipped;
    m->teacher_seconds_total = t.teacher_seconds_total;
    m->teacher_last_seconds = t.last_teacher_seconds;
}

static void publish_metrics(worker *w)
{
    metrics_snapshot m;
    memset(&m, 0, sizeof m);
    m.messages = w->messages;
    m.decoded = w->decoded;
    m.dead_letters = w->dead_letters;
    memcpy(m.dead_by_reason, w->dead_by_reason, sizeof m.dead_by_reason);
    m.dlq_delivery_errors = w->dlq_delivery_errors;
    m.duplicates = w->duplicates;
    m.offset_moves = w->offset_moves;
    m.partition_conflicts = w->partition_conflicts;
    m.joined = w->joined;
    m.late = w->late;
    m.windows_closed = w->blocks_closed;
    m.buffered_events = buffered_events(w);
    m.max_buffered_events = w->cfg.max_buffered_events;
    m.paused = w->paused;
    for (int s = 0; s < w->model_ids.n; s++)
        m.models += w->tenants[s] != NULL;
    trainer_stats t = trainer_get_stats(&w->tr);
    m.blocks_done = t.blocks_done;
    m.publish_errors = t.publish_errors;
    m.checkpoint_errors = t.checkpoint_errors;
    m.fenced_publish = t.fenced_publish;
    m.fenced_checkpoint = t.fenced_checkpoint;
    m.stale_refused = t.stale_refused;
    m.fence_raised = t.fence_raised + t.checkpoint_fence_raised;
    m.checkpoints_landed_late = t.checkpoints_landed_late;
    m.owner_claims = w->owner_claims;
    for (int i = 0; i < w->n_parts; i++) {
        m.fenced_partitions += w->parts[i].assigned && w->parts[i].fenced;
        m.registry_held_partitions += w->parts[i].assigned && w->parts[i].held;
    }
    m.registry_up = 1;
    m.registry_retries = w->registry_retries;
    if (w->registry) {
        schema_registry_stats rs;
        schema_registry_get_stats(w->registry, &rs);
        m.registry_requests = rs.requests;
        m.registry_found = rs.found;
        m.registry_missing = rs.missing;
        m.registry_errors = rs.errors;
        m.registry_cache_hits = rs.cache_hits;
        m.registry_up = rs.up;
    }
    m.publish_rows = t.publish_rows;
    m.live_version = t.live_version;
    m.publish_failing = t.publish_failing;
    m.n_models = t.n_models;
    memcpy(m.per_model, t.per_model, (size_t)t.n_models * sizeof *m.per_model);
    for (int i = 0; i < m.n_models; i++) /* the slow-path backlog of each model shown */
        m.per_model[i].backlog = model_backlog(w, m.per_model[i].model);
    m.last_fast_seconds = t.last_fast_seconds;
    m.last_total_seconds = t.last_total_seconds;
    m.last_publish_seconds = t.last_publish_seconds;
    m.holdout_recall20 = t.last_holdout_recall20;
    m.holdout_ndcg20 = t.last_holdout_ndcg20;
    m.last_window_events = t.last_window_events;
    teacher_metrics(w, &m);
    bool query = w->paused;
    for (int i = 0; i < w->n_parts && m.n_parts < METRICS_MAX_PARTS; i++) {
        const part_state *p = &w->parts[i];
        int64_t lo, hi;
        if (!p->assigned || p->position < 0)
            continue;
        /* The cached high watermark comes with fetch responses, and a paused partition is not
         * fetched: at the buffer bound it would stay put while the backlog grows. Then ask the
         * broker (briefly: this thread has nothing else to do while paused; after one failure,
         * e.g. the broker is down, the others keep their cached value this round). */
        rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR__STATE;
        if (query) {
            e = rd_kafka_query_watermark_offsets(w->rk, p->topic, p->partition, &lo, &hi, 200);
            query = e == RD_KAFKA_RESP_ERR_NO_ERROR;
        }
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
            e = rd_kafka_get_watermark_offsets(w->rk, p->topic, p->partition, &lo, &hi);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR || hi < 0)
            continue;
        snprintf(m.parts[m.n_parts].topic, sizeof m.parts[m.n_parts].topic, "%s", p->topic);
        m.parts[m.n_parts].partition = p->partition;
        m.parts[m.n_parts].lag = hi > p->position ? hi - p->position : 0;
        m.n_parts++;
    }
    metrics_publish(w->metrics, &m);
}

/* Nothing to wait for: no block training or queued, and no open window that the idle timeout
 * will still close (with idle_ms = 0 open windows stay open: their events remain uncommitted
 * and are read again by whoever consumes the partition next). */
static bool all_quiet(const worker *w)
{
    if (w->jobs || w->paused)
        return false;
    for (int i = 0; i < w->n_parts; i++) /* events wait for the schema registry */
        if (w->parts[i].assigned && w->parts[i].held)
            return false;
    for (int s = 0; s < w->model_ids.n; s++)
        if (w->tenants[s] &&
            ((w->cfg.idle_ms > 0 && w->tenants[s]->n_ev > 0) || w->tenants[s]->closed))
            return false;
    return true;
}

/* ------------------------------------------------------------------------------------------ */
/* start-up */

/* librdkafka's own log lines (syslog levels) through the worker's logger, so that JSON logging
 * covers them too. */
static void kafka_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    wlog(level <= 3   ? WLOG_ERROR
         : level == 4 ? WLOG_WARN
         : level <= 6 ? WLOG_INFO
                      : WLOG_DEBUG,
         "kafka %s: %s", fac, buf);
}

/* librdkafka's error events (served by the poll calls of this thread); without this callback
 * librdkafka only logs them. */
static void kafka_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    worker *w = opaque;
    if (kafka_err_fatal((rd_kafka_resp_err_t)err)) {
        wlog(WLOG_ERROR,
             "kafka %s: %s: %s (fatal: check the [kafka] credentials and ACLs; stopping)",
             rd_kafka_name(rk), rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
        w->fatal = true;
    } else {
        /* transient (a broker down, a connection refused): librdkafka retries, and its log
         * callback has already reported it */
        wlog(WLOG_DEBUG, "kafka %s: %s", rd_kafka_name(rk), reason);
    }
}

static rd_kafka_conf_t *kafka_conf(worker *w, bool consumer, char *err, size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* our defaults first: the user's [kafka] keys override them */
    if (consumer) {
        const char *defaults[][2] = {{"enable.auto.commit", "false"},
                                     {"enable.auto.offset.store", "false"},
                                     {"auto.offset.reset", "earliest"},
                                     {"partition.assignment.strategy", "cooperative-sticky"},
                                     {"group.id", "ccd-worker"},
                                     /* interaction events are small (~40 bytes): librdkafka's 1 MiB
                                      * per-partition fetch made ingest wait on round trips
                                      * (230k events/s measured, 960k with 10 MiB) */
                                     {"max.partition.fetch.bytes", "10485760"}};
        for (size_t i = 0; i < sizeof defaults / sizeof *defaults; i++)
            rd_kafka_conf_set(conf, defaults[i][0], defaults[i][1], NULL, 0);
    } else {
        rd_kafka_conf_set(conf, "linger.ms", "20", NULL, 0);
    }
    for (int i = 0; i < w->cfg.n_kafka; i++) {
        const char *k = w->cfg.kafka[i].key;
        /* consumer-only or producer-only keys would only produce warnings on the other client */
        if (!consumer &&
            (!strcmp(k, "group.id") || !strncmp(k, "enable.auto", 11) ||
             !strcmp(k, "auto.offset.reset") || !strcmp(k, "partition.assignment.strategy") ||
             !strcmp(k, "group.instance.id") || !strcmp(k, "session.timeout.ms") ||
             !strcmp(k, "max.poll.interval.ms") || !strcmp(k, "isolation.level")))
            continue;
        if (rd_kafka_conf_set(conf, k, w->cfg.kafka[i].value, err, errlen) != RD_KAFKA_CONF_OK) {
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    }
    rd_kafka_conf_set_opaque(conf, w);
    rd_kafka_conf_set_log_cb(conf, kafka_log);
    rd_kafka_conf_set_error_cb(conf, kafka_error);
    if (consumer)
        rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    else
        rd_kafka_conf_set_dr_msg_cb(conf, dlq_delivered);
    return conf;
}

/* The demo's broker: librdkafka's mock cluster, hosted by a producer handle of its own, with the
 * input topics (and the dead-letter topic) created; its address replaces bootstrap.servers so
 * that the consumer, the dead-letter producer and other processes (ccd-replay) use it. */
static int start_embedded_kafka(worker *w, char *err, size_t errlen)
{
    char msg[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (!(w->mock_host = rd_kafka_new(RD_KAFKA_PRODUCER, conf, msg, sizeof msg))) {
        errmsg_set(err, errlen, "embedded kafka: %s", msg);
        return -1;
    }
    if (!(w->mock = rd_kafka_mock_cluster_new(w->mock_host, 1))) {
        errmsg_set(err, errlen, "embedded kafka: cannot start the mock cluster");
        return -1;
    }
    for (int i = 0; i < w->cfg.n_topics; i++)
        if (rd_kafka_mock_topic_create(w->mock, w->cfg.topics[i], w->embedded_partitions, 1)) {
            errmsg_set(err, errlen, "embedded kafka: cannot create topic %s", w->cfg.topics[i]);
            return -1;
        }
    if (w->cfg.dead_letter_topic[0])
        rd_kafka_mock_topic_create(w->mock, w->cfg.dead_letter_topic, 1, 1);
    const char *addr = rd_kafka_mock_cluster_bootstraps(w->mock);
    if (worker_config_set(&w->cfg, "kafka", "bootstrap.servers", addr, err, errlen) != 0)
        return -1;
    wlog(WLOG_INFO, "embedded Kafka (librdkafka mock cluster, in memory) at %s", addr);
    return 0;
}

static void stop_embedded_kafka(worker *w)
{
    if (w->mock)
        rd_kafka_mock_cluster_destroy(w->mock);
    if (w->mock_host)
        rd_kafka_destroy(w->mock_host);
}

/* A Redis connection with the [redis] settings. Redis may be down at start-up: retry like a
 * publication would, but give up after a minute so that a wrong address fails visibly. */
static redis_sink *open_redis(const worker_config *c, char *msg, size_t msglen)
{
    redis_sink_opts o;
    redis_sink_opts_default_at(&o, c->redis_host, c->redis_port,
                               c->redis_user[0] ? c->redis_user : NULL,
                               c->redis_password[0] ? c->redis_password : NULL, c->redis_prefix);
    o.db = c->redis_db;
    o.timeout_ms = c->redis_timeout_ms;
    o.keep_versions = c->redis_keep_versions;
    redis_sink *s;
    for (int attempt = 0; !(s = redis_sink_open(&o, msg, msglen)); attempt++) {
        if (attempt == 30 || atomic_load(&stopping))
            return NULL;
        wlog(WLOG_WARN, "redis: %s; retrying", msg);
        sleep(2);
    }
    return s;
}

/* One thread's checkpoint store, as checkpoint.store says: the directory, or Redis on a
 * connection of its own. */
static int open_store(const worker_config *c, ckpt_store *store, char *err, size_t errlen)
{
    if (!c->checkpoint_redis)
        return ckpt_store_open_dir(store, c->checkpoint_dir, c->checkpoint_keep, err, errlen);
    char msg[512];
    redis_sink *r = open_redis(c, msg, sizeof msg);
    if (!r) {
        errmsg_set(err, errlen, "redis (checkpoint store): %s", msg);
        return -1;
    }
    return ckpt_store_open_redis(store, r, c->checkpoint_keep,
                                 (size_t)c->checkpoint_redis_chunk_bytes, err, errlen);
}

/* Windows and the event decoder. */
static int setup_input(worker *w, char *err, size_t errlen)
{
    const worker_config *c = &w->cfg;
    w->rules = (window_rules){.bootstrap_events = c->bootstrap_events,
                              .bootstrap_until_ms = c->bootstrap_until_ms,
                              .events = c->window_events,
                              .duration_ms = c->window_duration_ms};
    if (event_format_parse(c->format, &w->format) != 0) {
        errmsg_set(err, errlen, "input.format: bad value");
        return -1;
    }
    char msg[512];
    w->codec = event_codec_new(c->reader_schema, c->min_event_time_ms, c->max_event_time_ms, msg,
                               sizeof msg);
    if (!w->codec) {
        errmsg_set(err, errlen, "input.reader_schema: %s", msg);
        return -1;
    }
    for (int i = 0; i < c->n_schemas; i++)
        if (event_codec_register(w->codec, c->schema_ids[i], c->schema_paths[i], msg, sizeof msg) !=
            0) {
            errmsg_set(err, errlen, "input.schema.%d: %s", c->schema_ids[i], msg);
            return -1;
        }
    if (c->registry_url[0]) {
        schema_registry_opts ro = {.url = c->registry_url,
                                   .username = c->registry_username,
                                   .password = c->registry_password,
                                   .ca_file = c->registry_ca_file,
                                   .timeout_ms = c->registry_timeout_ms,
                                   .missing_ttl_ms = c->registry_missing_ttl_ms};
        if (!(w->registry = schema_registry_new(&ro, msg, sizeof msg))) {
            errmsg_set(err, errlen, "%s", msg);
            return -1;
        }
        event_codec_set_lookup(w->codec, schema_registry_lookup, w->registry);
    }
    return 0;
}

/* Checkpoint stores, the publication connection and the trainer thread. */
static int setup_output(worker *w, char *err, size_t errlen)
{
    const worker_config *c = &w->cfg;
    if (open_store(c, &w->load_store, err, errlen) != 0 ||
        open_store(c, &w->save_store, err, errlen) != 0)
        return -1;
    char msg[512];
    if (c->redis_publish && c->train && !(w->sink = open_redis(c, msg, sizeof msg))) {
        errmsg_set(err, errlen, "redis: %s", msg);
        return -1;
    }
    if (w->sink && !(w->owner = open_redis(c, msg, sizeof msg))) {
        errmsg_set(err, errlen, "redis (owner record): %s", msg);
        return -1;
    }
    if (w->sink && c->fastpath_enabled && !(w->fp_sink = open_redis(c, msg, sizeof msg))) {
        errmsg_set(err, errlen, "redis (fast path): %s", msg);
        return -1;
    }
    pthread_mutex_init(&w->pub_mu, NULL);
    w->pub_tr = (fastpath_serial){&w->pub_mu, w->sink};
    w->pub_fp = (fastpath_serial){&w->pub_mu, w->fp_sink};
    trainer_sink sink = w->sink ? fastpath_serial_sink(&w->pub_tr) : (trainer_sink){0};
    if (trainer_start(&w->tr, c, sink, &w->save_store) != 0) {
        errmsg_set(err, errlen, "cannot start the trainer thread");
        return -1;
    }
    /* set before the first job is submitted (the submit's lock publishes it to the trainer) */
    if (c->teachers_kafka && c->train &&
        !(w->tr.teacher_jobs = w->tjo = tj_owner_open(c, err, errlen)))
        return -1;
    if (!c->fastpath_enabled || !c->train)
        return 0;
    trainer_sink fsink = w->fp_sink ? fastpath_serial_sink(&w->pub_fp) : (trainer_sink){0};
    if (!(w->fp = fastpath_start(c, fsink, &w->tr))) {
        errmsg_set(err, errlen, "cannot start the fast-path thread");
        return -1;
    }
    w->tr.on_table = fastpath_exact_table; /* no job has run yet */
    w->tr.on_table_ctx = w->fp;
    return 0;
}

/* The consumer, or the dead-letter producer, with kafka_conf's settings. NULL with err. */
static rd_kafka_t *kafka_client(worker *w, bool consumer, char *err, size_t errlen)
{
    char msg[512];
    rd_kafka_conf_t *conf = kafka_conf(w, consumer, msg, sizeof msg);
    if (!conf) {
        errmsg_set(err, errlen, "kafka: %s", msg);
        return NULL;
    }
    rd_kafka_t *rk =
        rd_kafka_new(consumer ? RD_KAFKA_CONSUMER : RD_KAFKA_PRODUCER, conf, msg, sizeof msg);
    if (!rk) {
        rd_kafka_conf_destroy(conf); /* rd_kafka_new takes it over only when it succeeds */
        errmsg_set(err, errlen, "kafka %s: %s", consumer ? "consumer" : "producer", msg);
    }
    return rk;
}

/* The dead-letter producer (when configured) and the consumer, subscribed. */
static int setup_kafka(worker *w, char *err, size_t errlen)
{
    const worker_config *c = &w->cfg;
    if (c->dead_letter_topic[0] && !(w->dlq = kafka_client(w, false, err, errlen)))
        return -1;
    if (!(w->rk = kafka_client(w, true, err, errlen)))
        return -1;
    rd_kafka_poll_set_consumer(w->rk);
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(c->n_topics);
    for (int i = 0; i < c->n_topics; i++)
        rd_kafka_topic_partition_list_add(topics, c->topics[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(w->rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (e) {
        errmsg_set(err, errlen, "subscribe: %s", rd_kafka_err2str(e));
        return -1;
    }
    return 0;
}

static int setup(worker *w, char *err, size_t errlen)
{
    const worker_config *c = &w->cfg;
    wlog_setup(c->log_level, c->log_json);
    if (c->threads > 0)
        ccd_set_threads(c->threads);
    if (setup_input(w, err, errlen) != 0 || setup_output(w, err, errlen) != 0)
        return -1;
    if (w->embedded_partitions > 0 && start_embedded_kafka(w, err, errlen) != 0)
        return -1;
    if (c->metrics_listen[0]) {
        char msg[512];
        if (!(w->metrics = metrics_start(c->metrics_listen, c->metrics_health_timeout_ms, msg,
                                         sizeof msg))) {
            errmsg_set(err, errlen, "%s", msg);
            return -1;
        }
        wlog(WLOG_INFO, "metrics on http://%s/metrics", c->metrics_listen);
    }
    if (c->role_teacher && !(w->tjt = tj_teacher_start(c, err, errlen)))
        return -1;
    return setup_kafka(w, err, errlen);
}

static void log_totals(const worker *w)
{
    wlog(WLOG_INFO,
         "stopped: %lld messages, %lld decoded, %lld dead letters, %lld duplicates skipped, "
         "%lld late, %lld windows closed",
         (long long)w->messages, (long long)w->decoded, (long long)w->dead_letters,
         (long long)w->duplicates, (long long)w->late, (long long)w->blocks_closed);
    if (w->messages > 1)
        wlog(WLOG_INFO,
             "ingest: %lld messages in %.3f s from the first to the last (%.0f messages/s)",
             (long long)w->messages, w->last_message_s - w->first_message_s,
             (double)(w->messages - 1) / (w->last_message_s - w->first_message_s + 1e-9));
}

/* The shutdown's deadline: worker.shutdown_timeout_ms after the stop request (or after now, for
 * a fatal error or --exit-when-idle). */
static void set_deadline(worker *w)
{
    int64_t from = (int64_t)atomic_load(&stop_requested_ms);
    w->deadline_ms = (from > 0 ? from : now_ms()) + w->cfg.shutdown_timeout_ms;
}

/* Raise every job's stop and wait for the trainer until trainer_deadline. True when idle. */
static bool stop_trainer(worker *w)
{
    return !w->tr.thread || trainer_stop_all_until(&w->tr, trainer_deadline(w));
}

/* Leave the group, serving its revoke (which commits and drops the models) from here, until
 * closed or the deadline. True when closed. */
static bool close_consumer(worker *w)
{
    rd_kafka_queue_t *q = rd_kafka_queue_new(w->rk);
    rd_kafka_error_t *e = rd_kafka_consumer_close_queue(w->rk, q);
    if (e) {
        wlog(WLOG_WARN, "consumer close: %s", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    }
    while (!rd_kafka_consumer_closed(w->rk) && now_ms() < w->deadline_ms)
        rd_kafka_queue_poll_callback(q, 100);
    bool closed = rd_kafka_consumer_closed(w->rk);
    rd_kafka_queue_destroy(q);
    return closed;
}

/* The deadline passed with a block still in the trainer (in a loop without a poll point, or a
 * long write) or the group not yet left: exit without joining the thread or freeing what it
 * uses. What was committed is durable; the block's window never was, so whoever owns the model
 * next reads its events again (and a partial version or a checkpoint's tmp file it may leave is
 * cleaned by the next publication or save). */
static void exit_now(worker *w, const char *what)
{
    wlog(WLOG_WARN,
         "shutdown: %s %d ms after the stop request (worker.shutdown_timeout_ms): "
         "exiting without waiting",
         what, w->cfg.shutdown_timeout_ms);
    log_totals(w);
    fflush(stdout);
    fflush(stderr);
    _exit(w->fatal ? 1 : 0);
}

static void shutdown_worker(worker *w)
{
    /* abandon running blocks (within the deadline), commit what is durable, leave the group */
    set_deadline(w);
    tj_teacher_stop(w->tjt); /* a teacher job in training is abandoned, uncommitted */
    w->tjt = NULL;
    fastpath_stop_until(w->fp, 0); /* raise its stops now */
    bool idle = stop_trainer(w);
    if (w->rk) {
        collect_jobs(w);
        commit_offsets(w, NULL);
        if (!close_consumer(w))
            exit_now(w, "the consumer group not left");
        rd_kafka_destroy(w->rk);
    }
    if (!idle && !stop_trainer(w)) /* it may have finished during the revoke */
        exit_now(w, "a block still in training");
    collect_jobs(w); /* jobs that ended after the revoke (nothing new is submitted) */
    if (w->tr.thread)
        trainer_join(&w->tr);
    /* after the trainer, whose student_table hook hands tables to it; its jobs stop within a
     * mini-batch, but a publication may hang on Redis up to its timeout (nothing is submitted
     * once the shutdown started) */
    if (w->fp_stuck || !fastpath_stop_until(w->fp, trainer_deadline(w)))
        exit_now(w, "a provisional student still being published");
    fastpath_stop(w->fp);
    w->fp = NULL;
    tj_owner_close(w->tjo);
    for (int s = 0; s < w->model_ids.n; s++)
        if (w->tenants[s])
            tenant_free(w->tenants[s]);
    free(w->tenants);
    idmap_free(&w->model_ids);
    if (w->dlq) {
        rd_kafka_flush(w->dlq, flush_ms(w));
        rd_kafka_destroy(w->dlq);
    }
    metrics_stop(w->metrics);
    stop_embedded_kafka(w);
    redis_sink_close(w->sink);
    redis_sink_close(w->fp_sink);
    redis_sink_close(w->owner);
    ckpt_store_close(&w->load_store);
    ckpt_store_close(&w->save_store);
    event_codec_free(w->codec);
    schema_registry_free(w->registry);
    free(w->parts);
    log_totals(w);
    worker_config_free(&w->cfg);
}

/* ------------------------------------------------------------------------------------------ */
/* the consumer loop */

/* A batch of messages (one queue lock per batch, which is what lets ingest keep up with kcat);
 * rebalance callbacks are served from the same queue. */
static void consume_batch(worker *w, rd_kafka_queue_t *queue)
{
    enum { BATCH = 4096 };
    static rd_kafka_message_t *batch[BATCH];
    ssize_t got = rd_kafka_consume_batch_queue(queue, 100, batch, BATCH);
    for (ssize_t i = 0; i < got; i++) {
        rd_kafka_message_t *msg = batch[i];
        if (w->fatal || atomic_load(&stopping))
            ; /* not handled: the uncommitted offsets bring it back */
        else if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR)
            handle_message(w, msg);
        else if (kafka_err_fatal(msg->err)) {
            wlog(WLOG_ERROR,
                 "consumer: %s: %s (fatal: check the [kafka] credentials and ACLs; stopping)",
                 rd_kafka_err2name(msg->err), rd_kafka_message_errstr(msg));
            w->fatal = true;
        } else if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            wlog(WLOG_WARN, "consumer: %s", rd_kafka_message_errstr(msg));
        rd_kafka_message_destroy(msg);
    }
}

/* --exit-when-idle: true when it is time to leave the loop. */
static bool idle_exit(worker *w, int64_t now)
{
    if (w->exit_idle_ms <= 0 || now - w->last_message_ms < w->exit_idle_ms || !all_quiet(w))
        return false;
    if (!w->joined) {
        /* nothing read because nothing could be: an unreachable broker, a TLS handshake that never
         * succeeds (librdkafka retries those forever); not a clean finish */
        wlog(WLOG_ERROR,
             "idle for %lld ms without ever joining the consumer group (broker unreachable? TLS or "
             "authentication failing? see the kafka lines above): exiting with an error",
             (long long)w->exit_idle_ms);
        w->fatal = true;
    } else {
        wlog(WLOG_INFO, "idle for %lld ms with nothing pending: exiting",
             (long long)w->exit_idle_ms);
    }
    return true;
}

/* Until stopped, a fatal error, or --exit-when-idle. The housekeeping runs once per batch, not
 * once per message. */
static void consume_loop(worker *w)
{
    w->last_message_ms = now_ms();
    int64_t last_commit = now_ms(), last_metrics = 0;
    rd_kafka_queue_t *queue = rd_kafka_queue_get_consumer(w->rk);
    while (!atomic_load(&stopping) && !w->fatal) {
        consume_batch(w, queue);
        if (w->dlq)
            rd_kafka_poll(w->dlq, 0);
        bool finished = collect_jobs(w) > 0;
        drop_fenced(w);
        housekeeping(w);
        int64_t now = now_ms();
        if (w->metrics && now - last_metrics >= 1000) {
            publish_metrics(w);
            last_metrics = now;
        }
        if (finished || now - last_commit >= 5000) {
            commit_offsets(w, NULL);
            last_commit = now;
        }
        if (idle_exit(w, now))
            break;
    }
    rd_kafka_queue_destroy(queue);
}

/* worker.roles = teacher: no input, no trainer; the teacher thread, the metrics, until stopped. */
static int teacher_only(worker *w)
{
    const worker_config *c = &w->cfg;
    char err[1024];
    wlog_setup(c->log_level, c->log_json);
    if (c->threads > 0)
        ccd_set_threads(c->threads);
    if (c->metrics_listen[0] &&
        !(w->metrics =
              metrics_start(c->metrics_listen, c->metrics_health_timeout_ms, err, sizeof err))) {
        fprintf(stderr, "ccd-worker: %s\n", err);
        return 2;
    }
    if (!(w->tjt = tj_teacher_start(c, err, sizeof err))) {
        fprintf(stderr, "ccd-worker: %s\n", err);
        metrics_stop(w->metrics);
        return 2;
    }
    wlog(WLOG_INFO, "ccd-worker %s started: teacher role only", CCD_VERSION);
    while (!atomic_load(&stopping) && !tj_teacher_failed(w->tjt)) {
        if (w->metrics) {
            metrics_snapshot m;
            memset(&m, 0, sizeof m);
            m.joined = 1;
            teacher_metrics(w, &m);
            metrics_publish(w->metrics, &m);
        }
        struct timespec ts = {0, 200000000L};
        nanosleep(&ts, NULL);
    }
    bool failed = tj_teacher_failed(w->tjt);
    tj_teacher_stop(w->tjt);
    metrics_stop(w->metrics);
    return failed ? 1 : 0;
}

int service_run(worker_config *cfg, const service_opts *o)
{
    worker *w = calloc(1, sizeof *w);
    if (!w) {
        fprintf(stderr, "ccd-worker: out of memory\n");
        worker_config_free(cfg);
        return 2;
    }
    w->cfg = *cfg; /* the service owns the config's strings from here on */
    memset(cfg, 0, sizeof *cfg);
    w->deadline_ms = INT64_MAX;
    idmap_init(&w->model_ids);
    w->exit_idle_ms = o->exit_idle_ms;
    w->embedded_partitions = o->embedded_partitions;
    if (!w->cfg.role_owner) {
        int rc = teacher_only(w);
        worker_config_free(&w->cfg);
        free(w);
        return rc;
    }
    char err[1024];
    if (setup(w, err, sizeof err) != 0) {
        fprintf(stderr, "ccd-worker: %s\n", err);
        shutdown_worker(w);
        free(w);
        return 2;
    }
    const char *group = "ccd-worker";
    for (int i = 0; i < w->cfg.n_kafka; i++)
        if (!strcmp(w->cfg.kafka[i].key, "group.id"))
            group = w->cfg.kafka[i].value;
    wlog(WLOG_INFO, "ccd-worker %s started: %d topic(s) from %s, group %s, librdkafka %s",
         CCD_VERSION, w->cfg.n_topics, w->cfg.topics[0], group, rd_kafka_version_str());
    consume_loop(w);
    bool fatal = w->fatal;
    shutdown_worker(w);
    free(w);
    return fatal ? 1 : 0;
}
