/* teacher_jobs: the owner's side (jobs out, results in) and the teacher role's thread. The design
 * is in teacher_jobs.h and docs/design-teacher-jobs.md; the blob formats in
 * teacher_jobs_codec.c. */
#include "teacher_jobs.h"

#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dense.h"
#include "errmsg.h"
#include "le.h"
#include "model_id.h"
#include "redis_sink.h"
#include "testhook.h"
#include "train.h"
#include "wlog.h"

#define NAME_CAP 96

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Sleep about ms in 50 ms slices; true when stop was raised (then at once). */
static bool stopped_after(const atomic_int *stop, int ms)
{
    for (int waited = 0; waited < ms && !atomic_load(stop); waited += 50)
        sleep_ms(50);
    return atomic_load(stop) != 0;
}

/* tj-b<block>-e<epoch>-in, or -t<m><suffix> for teacher m's result ("") or error (".err"). */
static void blob_name(char *out, int block, uint64_t epoch, int m, const char *suffix)
{
    if (m < 0)
        snprintf(out, NAME_CAP, "tj-b%08d-e%020" PRIu64 "-in", block, epoch);
    else
        snprintf(out, NAME_CAP, "tj-b%08d-e%020" PRIu64 "-t%02d%s", block, epoch, m, suffix);
}

/* ------------------------------------------------------------------------------------------ */
/* Kafka clients */

static void kafka_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    wlog(level <= 3   ? WLOG_ERROR
         : level == 4 ? WLOG_WARN
                      : WLOG_DEBUG,
         "kafka (teacher jobs) %s: %s", fac, buf);
}

static bool consumer_only(const char *k)
{
    return !strcmp(k, "group.id") || !strncmp(k, "enable.auto", 11) ||
           !strcmp(k, "auto.offset.reset") || !strcmp(k, "partition.assignment.strategy") ||
           !strcmp(k, "group.instance.id") || !strcmp(k, "session.timeout.ms") ||
           !strcmp(k, "max.poll.interval.ms") || !strcmp(k, "isolation.level") ||
           !strcmp(k, "heartbeat.interval.ms") || !strcmp(k, "max.partition.fetch.bytes");
}

/* The [kafka] settings for the jobs producer, or for the teacher consumer (group
 * "<group.id>.teachers": the teachers must not join the owners' group). NULL with err. */
static rd_kafka_conf_t *client_conf(const worker_config *cfg, bool consumer, char *err,
                                    size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const char *group = "ccd-worker";
    if (consumer) {
        /* a job trains for minutes without a poll: the default 5 min would evict the worker */
        const char *defaults[][2] = {{"enable.auto.commit", "false"},
                                     {"auto.offset.reset", "earliest"},
                                     {"max.poll.interval.ms", "3600000"}};
        for (size_t i = 0; i < sizeof defaults / sizeof *defaults; i++)
            rd_kafka_conf_set(conf, defaults[i][0], defaults[i][1], NULL, 0);
    } else {
        rd_kafka_conf_set(conf, "linger.ms", "5", NULL, 0);
    }
    for (int i = 0; i < cfg->n_kafka; i++) {
        const char *k = cfg->kafka[i].key;
        if (!strcmp(k, "group.id"))
            group = cfg->kafka[i].value;
        if ((!consumer && consumer_only(k)) || !strcmp(k, "group.id") ||
            !strcmp(k, "group.instance.id") || !strncmp(k, "enable.auto", 11))
            continue;
        if (rd_kafka_conf_set(conf, k, cfg->kafka[i].value, err, errlen) != RD_KAFKA_CONF_OK) {
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    }
    if (consumer) {
        char tgroup[512];
        snprintf(tgroup, sizeof tgroup, "%s.teachers", group);
        rd_kafka_conf_set(conf, "group.id", tgroup, NULL, 0);
    }
    rd_kafka_conf_set_log_cb(conf, kafka_log);
    return conf;
}

static rd_kafka_t *client_new(rd_kafka_conf_t *conf, bool consumer, char *err, size_t errlen)
{
    char msg[512];
    rd_kafka_t *rk =
        rd_kafka_new(consumer ? RD_KAFKA_CONSUMER : RD_KAFKA_PRODUCER, conf, msg, sizeof msg);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        errmsg_set(err, errlen, "teacher jobs: kafka %s: %s", consumer ? "consumer" : "producer",
                   msg);
    }
    return rk;
}

/* teachers.jobs_partitions > 0: the jobs topic created with that many partitions (replication:
 * the broker's default) when it does not exist; an existing topic is left as it is. Both roles
 * call it at start-up, so the teachers can join before the first job. 0 or -1 with err. */
static int ensure_jobs_topic(const worker_config *cfg, char *err, size_t errlen)
{
    if (cfg->teachers_jobs_partitions <= 0)
        return 0;
    rd_kafka_conf_t *conf = client_conf(cfg, false, err, errlen);
    rd_kafka_t *rk = conf ? client_new(conf, false, err, errlen) : NULL;
    if (!rk)
        return -1;
    char why[512];
    const char *topic = cfg->teachers_jobs_topic;
    rd_kafka_NewTopic_t *nt =
        rd_kafka_NewTopic_new(topic, cfg->teachers_jobs_partitions, -1, why, sizeof why);
    rd_kafka_AdminOptions_t *ao = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_event_t *ev = NULL;
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR__FAIL;
    if (nt && !rd_kafka_AdminOptions_set_operation_timeout(ao, 30000, why, sizeof why)) {
        rd_kafka_CreateTopics(rk, &nt, 1, ao, q);
        ev = rd_kafka_queue_poll(q, 60000);
        const rd_kafka_CreateTopics_result_t *res =
            ev ? rd_kafka_event_CreateTopics_result(ev) : NULL;
        size_t n = 0;
        const rd_kafka_topic_result_t **tr =
            res ? rd_kafka_CreateTopics_result_topics(res, &n) : NULL;
        e = !ev                        ? RD_KAFKA_RESP_ERR__TIMED_OUT
            : rd_kafka_event_error(ev) ? rd_kafka_event_error(ev)
            : n == 1                   ? rd_kafka_topic_result_error(tr[0])
                                       : RD_KAFKA_RESP_ERR__FAIL;
        snprintf(why, sizeof why, "%s", rd_kafka_err2str(e));
    }
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
        wlog(WLOG_INFO, "teacher jobs: created topic %s with %d partitions", topic,
             cfg->teachers_jobs_partitions);
    if (ev)
        rd_kafka_event_destroy(ev);
    if (nt)
        rd_kafka_NewTopic_destroy(nt);
    rd_kafka_AdminOptions_destroy(ao);
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
    if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        errmsg_set(err, errlen, "teachers.jobs_partitions: creating %s: %s", topic, why);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* owner */

struct tj_owner {
    const worker_config *cfg;
    rd_kafka_t *rk;
    int n_partitions; /* of the jobs topic (0 until known) */
    atomic_int delivery_failures;
    pthread_mutex_t mu;
    tj_stats st;
};

static void job_delivered(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    if (!m->err)
        return;
    tj_owner *o = opaque;
    atomic_fetch_add(&o->delivery_failures, 1);
    wlog(WLOG_WARN, "teacher jobs: a job was not delivered: %s", rd_kafka_err2str(m->err));
}

tj_owner *tj_owner_open(const worker_config *cfg, char *err, size_t errlen)
{
    if (ensure_jobs_topic(cfg, err, errlen) != 0)
        return NULL;
    tj_owner *o = calloc(1, sizeof *o);
    rd_kafka_conf_t *conf = o ? client_conf(cfg, false, err, errlen) : NULL;
    if (!conf) {
        if (!o)
            errmsg_set(err, errlen, "teacher jobs: out of memory");
        free(o);
        return NULL;
    }
    rd_kafka_conf_set_opaque(conf, o);
    rd_kafka_conf_set_dr_msg_cb(conf, job_delivered);
    if (!(o->rk = client_new(conf, false, err, errlen))) {
        free(o);
        return NULL;
    }
    o->cfg = cfg;
    pthread_mutex_init(&o->mu, NULL);
    return o;
}

void tj_owner_close(tj_owner *o)
{
    if (!o)
        return;
    rd_kafka_flush(o->rk, 2000);
    rd_kafka_destroy(o->rk);
    pthread_mutex_destroy(&o->mu);
    free(o);
}

tj_stats tj_owner_stats(tj_owner *o)
{
    tj_stats s = {0};
    if (!o)
        return s;
    pthread_mutex_lock(&o->mu);
    s = o->st;
    pthread_mutex_unlock(&o->mu);
    return s;
}

/* The jobs topic's partition count, asked once. 0 or -1 with err. */
static int jobs_partitions(tj_owner *o, char *err, size_t errlen)
{
    if (o->n_partitions > 0)
        return 0;
    const char *topic = o->cfg->teachers_jobs_topic;
    rd_kafka_topic_t *t = rd_kafka_topic_new(o->rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = t ? rd_kafka_metadata(o->rk, 0, t, &md, 5000) : RD_KAFKA_RESP_ERR__FAIL;
    if (!e) {
        e = md->topic_cnt == 1 ? md->topics[0].err : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
        if (!e)
            o->n_partitions = md->topics[0].partition_cnt;
        rd_kafka_metadata_destroy(md);
    }
    if (t)
        rd_kafka_topic_destroy(t);
    if (o->n_partitions <= 0) {
        errmsg_set(err, errlen, "teacher jobs: topic %s: %s", topic,
                   e ? rd_kafka_err2str(e) : "no partitions");
        return -1;
    }
    return 0;
}

/* One job per teacher, delivered (flushed). 0, -1 with err, CCD_STOPPED. */
static int produce_jobs(tj_owner *o, const char *model, int block, uint64_t epoch, int n,
                        const atomic_int *stop, char *err, size_t errlen)
{
    if (jobs_partitions(o, err, errlen) != 0)
        return -1;
    uint32_t h = ccd_crc32((const unsigned char *)model, strlen(model));
    atomic_store(&o->delivery_failures, 0);
    for (int m = 0; m < n; m++) {
        char in[NAME_CAP], res[NAME_CAP], payload[512];
        blob_name(in, block, epoch, -1, "");
        blob_name(res, block, epoch, m, "");
        int len = snprintf(payload, sizeof payload,
                           "model=%s block=%d teacher=%d epoch=%" PRIu64 " input=%s result=%s",
                           model, block, m, epoch, in, res);
        /* consecutive partitions: one model's teachers go to different teacher workers */
        int32_t part = (int32_t)((h + (uint32_t)m) % (uint32_t)o->n_partitions);
        rd_kafka_resp_err_t e = rd_kafka_producev(
            o->rk, RD_KAFKA_V_TOPIC(o->cfg->teachers_jobs_topic), RD_KAFKA_V_PARTITION(part),
            RD_KAFKA_V_KEY(model, strlen(model)), RD_KAFKA_V_VALUE(payload, (size_t)len),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (e) {
            errmsg_set(err, errlen, "teacher jobs: produce: %s", rd_kafka_err2str(e));
            return -1;
        }
    }
    while (rd_kafka_flush(o->rk, 200) == RD_KAFKA_RESP_ERR__TIMED_OUT)
        if (atomic_load(stop))
            return CCD_STOPPED;
    if (atomic_load(&o->delivery_failures) > 0) {
        errmsg_set(err, errlen, "teacher jobs: %d job(s) not delivered",
                   atomic_load(&o->delivery_failures));
        return -1;
    }
    pthread_mutex_lock(&o->mu);
    o->st.jobs_produced += n;
    pthread_mutex_unlock(&o->mu);
    return 0;
}

/* What the store holds for teacher m: 1 its table loaded into *out, 0 nothing yet (or a store
 * error, retried), -1 a failure (its error blob, or a result that does not fit: err). */
static int load_result(ckpt_store *store, const char *model, const ccd_teacher_inputs *in,
                       uint64_t epoch, int m, float **out, char *err, size_t errlen)
{
    char name[NAME_CAP], why[512];
    unsigned char *buf;
    size_t len;
    int block = in->blk->index;
    blob_name(name, block, epoch, m, "");
    int r = ckpt_store_get_blob(store, model, name, &buf, &len, why, sizeof why);
    if (r == 1) {
        int64_t rows = (int64_t)in->blk->n_users + in->blk->n_items;
        r = tj_decode_result(buf, len, model, block, m, epoch, rows, in->prev->teacher_spec[m].dim,
                             out, err, errlen);
        free(buf);
        return r == 0 ? 1 : -1;
    }
    if (r < 0) {
        wlog(WLOG_WARN, "model %s block %d: teacher %d result: %s (retrying)", model, block, m,
             why);
        return 0;
    }
    blob_name(name, block, epoch, m, ".err");
    if (ckpt_store_get_blob(store, model, name, &buf, &len, why, sizeof why) != 1)
        return 0;
    errmsg_set(err, errlen, "teacher %d failed on a teacher worker: %.*s", m,
               (int)(len < 400 ? len : 400), (const char *)buf);
    free(buf);
    return -1;
}

/* The block's blobs (input, results, error blobs) deleted: best effort, a leftover only costs
 * space (docs/design-teacher-jobs.md). */
static void delete_blobs(ckpt_store *store, const char *model, int block, uint64_t epoch, int n)
{
    char name[NAME_CAP], why[512];
    blob_name(name, block, epoch, -1, "");
    ckpt_store_del_blob(store, model, name, why, sizeof why);
    for (int m = 0; m < n; m++) {
        blob_name(name, block, epoch, m, "");
        ckpt_store_del_blob(store, model, name, why, sizeof why);
        blob_name(name, block, epoch, m, ".err");
        ckpt_store_del_blob(store, model, name, why, sizeof why);
    }
}

bool tj_blob_stale(const char *name, uint64_t epoch, int block)
{
    int b, used = 0;
    unsigned long long e;
    if (sscanf(name, "tj-b%8d-e%20llu-%n", &b, &e, &used) != 2 || used == 0)
        return false;
    return e < epoch || (e == epoch && b < block);
}

bool tj_sweep_drop(void *floor, const char *name)
{
    const tj_sweep_floor *f = floor;
    return tj_blob_stale(name, f->epoch, f->block);
}

void tj_sweep_stale(ckpt_store *store, const char *model, uint64_t epoch, int block)
{
    char why[512];
    tj_sweep_floor f = {epoch, block};
    int n = ckpt_store_sweep_blobs(store, model, tj_sweep_drop, &f, why, sizeof why);
    if (n > 0)
        wlog(WLOG_INFO,
             "model %s, before block %d: %d stale teacher-job blobs deleted (earlier "
             "owners or blocks)",
             model, block, n);
    else if (n < 0)
        wlog(WLOG_WARN, "model %s, before block %d: sweeping stale teacher-job blobs: %s", model,
             block, why);
}

/* The input blob written, retried with backoff. 0, -1 (out of memory), CCD_STOPPED. */
static int put_inputs(ckpt_store *store, const char *model, uint64_t epoch,
                      const ccd_teacher_inputs *in, const atomic_int *stop, char *err,
                      size_t errlen)
{
    unsigned char *buf;
    size_t len;
    if (tj_encode_inputs(model, epoch, in, &buf, &len) != 0) {
        errmsg_set(err, errlen, "teacher jobs: out of memory encoding the inputs");
        return -1;
    }
    char name[NAME_CAP], why[512];
    blob_name(name, in->blk->index, epoch, -1, "");
    int rc = 0;
    for (int wait = 200; ckpt_store_put_blob(store, model, name, buf, len, why, sizeof why) != 0;
         wait = wait < 5000 ? wait * 2 : 10000) {
        wlog(WLOG_WARN, "model %s block %d: teacher inputs: %s; retrying in %d ms", model,
             in->blk->index, why, wait);
        if (stopped_after(stop, wait)) {
            rc = CCD_STOPPED;
            break;
        }
    }
    wlog(WLOG_INFO, "model %s block %d: teacher inputs stored (%.1f MB, %s)", model, in->blk->index,
         (double)len / 1e6, name);
    free(buf);
    return rc;
}

/* Poll the store until every result is in (1 s between rounds after the first few). */
static int wait_results(ckpt_store *store, const char *model, uint64_t epoch,
                        const ccd_teacher_inputs *in, const atomic_int *stop, float **out,
                        char *err, size_t errlen)
{
    int n = in->prev->n_teachers;
    double t0 = ccd_now(), last_log = t0;
    for (int round = 0;; round++) {
        int have = 0;
        for (int m = 0; m < n; m++) {
            int r = out[m] ? 1 : load_result(store, model, in, epoch, m, &out[m], err, errlen);
            if (r < 0)
                return -1;
            have += r;
        }
        if (have == n)
            return 0;
        if (ccd_now() - last_log >= 30) {
            last_log = ccd_now();
            wlog(WLOG_INFO, "model %s block %d: %d of %d teacher results after %.0f s", model,
                 in->blk->index, have, n, last_log - t0);
        }
        if (stopped_after(stop, round < 50 ? 100 : 500))
            return CCD_STOPPED;
    }
}

int tj_owner_teachers(tj_owner *o, ckpt_store *store, const char *model, uint64_t epoch,
                      const atomic_int *stop, const ccd_teacher_inputs *in, float **out, char *err,
                      size_t errlen)
{
    int n = in->prev->n_teachers, block = in->blk->index;
    for (int m = 0; m < n; m++)
        out[m] = NULL;
    double t0 = ccd_now();
    tj_sweep_stale(store, model, epoch, block);
    int rc = put_inputs(store, model, epoch, in, stop, err, errlen);
    for (int wait = 200; rc == 0;) {
        rc = produce_jobs(o, model, block, epoch, n, stop, err, errlen);
        if (rc != -1)
            break;
        wlog(WLOG_WARN, "model %s block %d: %s; retrying in %d ms", model, block, err, wait);
        rc = stopped_after(stop, wait) ? CCD_STOPPED : 0;
        wait = wait < 5000 ? wait * 2 : 10000;
    }
    double t1 = ccd_now();
    if (rc == 0) {
        wlog(WLOG_INFO, "model %s block %d: %d teacher jobs sent to %s", model, block, n,
             o->cfg->teachers_jobs_topic);
        rc = wait_results(store, model, epoch, in, stop, out, err, errlen);
    }
    delete_blobs(store, model, block, epoch, n);
    if (rc != 0) {
        for (int m = 0; m < n; m++) {
            free(out[m]);
            out[m] = NULL;
        }
        return rc;
    }
    double t2 = ccd_now();
    pthread_mutex_lock(&o->mu);
    o->st.wait_seconds_total += t2 - t1;
    pthread_mutex_unlock(&o->mu);
    wlog(WLOG_INFO, "model %s block %d: %d teacher results in %.2f s (inputs %.2f s)", model, block,
         n, t2 - t0, t1 - t0);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* teacher role */

typedef struct {
    char model[128];
    int block, m;
    uint64_t epoch;
    char input[NAME_CAP], result[NAME_CAP];
} tj_job;

struct tj_teacher {
    const worker_config *cfg;
    rd_kafka_t *rk;   /* consumer of the jobs topic */
    rd_kafka_t *prod; /* result messages, or NULL */
    ckpt_store store;
    pthread_t thread;
    bool started;
    atomic_int stop;
    atomic_bool failed;
    pthread_mutex_t mu;
    tj_stats st;
    /* the last input decoded, for the next teacher of the same block */
    bool cached;
    char cache_model[128], cache_name[NAME_CAP];
    tj_inputs cache;
};

static int parse_job(const rd_kafka_message_t *msg, tj_job *j)
{
    char text[1024];
    if (!msg->payload || msg->len >= sizeof text)
        return -1;
    memcpy(text, msg->payload, msg->len);
    text[msg->len] = '\0';
    memset(j, 0, sizeof *j);
    int got =
        sscanf(text, "model=%127s block=%d teacher=%d epoch=%" SCNu64 " input=%95s result=%95s",
               j->model, &j->block, &j->m, &j->epoch, j->input, j->result);
    if (got != 6 || !model_id_valid(j->model, strlen(j->model)) || j->block < 1 || j->m < 0 ||
        j->m >= CCD_MAX_TEACHERS)
        return -1;
    return 0;
}

/* get_blob retried on store errors: 1, 0 (absent) or CCD_STOPPED (buf NULL: whether it
 * exists). */
static int get_retry(tj_teacher *t, const char *model, const char *name, unsigned char **buf,
                     size_t *len)
{
    char why[512];
    for (int wait = 200;; wait = wait < 5000 ? wait * 2 : 10000) {
        int r = ckpt_store_get_blob(&t->store, model, name, buf, len, why, sizeof why);
        if (r >= 0)
            return r;
        wlog(WLOG_WARN, "teacher job: %s: %s; retrying in %d ms", name, why, wait);
        if (stopped_after(&t->stop, wait))
            return CCD_STOPPED;
    }
}

static int put_retry(tj_teacher *t, const char *model, const char *name, const unsigned char *buf,
                     size_t len)
{
    char why[512];
    for (int wait = 200; ckpt_store_put_blob(&t->store, model, name, buf, len, why, sizeof why);
         wait = wait < 5000 ? wait * 2 : 10000) {
        wlog(WLOG_WARN, "teacher job: %s: %s; retrying in %d ms", name, why, wait);
        if (stopped_after(&t->stop, wait))
            return CCD_STOPPED;
    }
    return 0;
}

/* The job's inputs in t->cache: 1 ready, 0 the input is gone (the owner finished or gave up the
 * block), -1 undecodable (err), CCD_STOPPED. */
static int load_inputs(tj_teacher *t, const tj_job *j, char *err, size_t errlen)
{
    if (t->cached && !strcmp(t->cache_model, j->model) && !strcmp(t->cache_name, j->input)) {
        /* a redo of a finished block must not train (and leave a result nobody deletes) */
        int r = get_retry(t, j->model, j->input, NULL, NULL);
        if (r == 1)
            return 1;
        if (r != 0)
            return r;
    }
    if (t->cached)
        tj_inputs_free(&t->cache);
    t->cached = false;
    unsigned char *buf;
    size_t len;
    int r = get_retry(t, j->model, j->input, &buf, &len);
    if (r != 1)
        return r;
    r = tj_decode_inputs(&t->cache, buf, len, err, errlen);
    free(buf);
    if (r != 0)
        return -1;
    if (strcmp(t->cache.model, j->model) || t->cache.block != j->block ||
        t->cache.epoch != j->epoch || j->m >= t->cache.prev.n_teachers) {
        errmsg_set(err, errlen, "teacher job: input %s does not match the job (teacher %d)",
                   j->input, j->m);
        tj_inputs_free(&t->cache);
        return -1;
    }
    t->cached = true;
    snprintf(t->cache_model, sizeof t->cache_model, "%s", j->model);
    snprintf(t->cache_name, sizeof t->cache_name, "%s", j->input);
    return 1;
}

static void produce_result(tj_teacher *t, const tj_job *j, const char *status, double seconds)
{
    if (!t->prod)
        return;
    char payload[512];
    int len = snprintf(payload, sizeof payload,
                       "model=%s block=%d teacher=%d epoch=%" PRIu64 " result=%s status=%s "
                       "seconds=%.3f",
                       j->model, j->block, j->m, j->epoch, j->result, status, seconds);
    rd_kafka_resp_err_t e = rd_kafka_producev(
        t->prod, RD_KAFKA_V_TOPIC(t->cfg->teachers_results_topic),
        RD_KAFKA_V_KEY(j->model, strlen(j->model)), RD_KAFKA_V_VALUE(payload, (size_t)len),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    if (e)
        wlog(WLOG_WARN, "teacher job: result message: %s", rd_kafka_err2str(e));
    rd_kafka_flush(t->prod, 5000);
}

/* A failed job: its error blob (the owner fails the block on it). 0 or CCD_STOPPED. */
static int job_failed(tj_teacher *t, const tj_job *j, const char *why)
{
    wlog(WLOG_ERROR, "teacher job: model %s block %d teacher %d failed: %s", j->model, j->block,
         j->m, why);
    char name[NAME_CAP + 8];
    snprintf(name, sizeof name, "%s.err", j->result);
    if (put_retry(t, j->model, name, (const unsigned char *)why, strlen(why)) != 0)
        return CCD_STOPPED;
    produce_result(t, j, "failed", 0);
    pthread_mutex_lock(&t->mu);
    t->st.jobs_failed++;
    pthread_mutex_unlock(&t->mu);
    return 0;
}

static int skip_job(tj_teacher *t, const tj_job *j, const char *why)
{
    wlog(WLOG_INFO, "teacher job: model %s block %d teacher %d skipped: %s", j->model, j->block,
         j->m, why);
    pthread_mutex_lock(&t->mu);
    t->st.jobs_skipped++;
    pthread_mutex_unlock(&t->mu);
    return 0;
}

/* Train teacher m and store its table. 0 (commit the job) or CCD_STOPPED (leave it). */
static int train_job(tj_teacher *t, const tj_job *j)
{
    ccd_teacher_inputs in = tj_inputs_view(&t->cache);
    float *table = NULL;
    double seconds = 0;
    char why[512] = "";
    test_pause("teacher_job", j->model, j->block);
    int rc = ccd_teacher_update(&in, j->m, &t->stop, &table, &seconds, why, sizeof why);
    if (rc == CCD_STOPPED || atomic_load(&t->stop)) {
        free(table);
        return CCD_STOPPED;
    }
    if (rc != 0)
        return job_failed(t, j, why[0] ? why : "ccd_teacher_update failed");
    unsigned char *buf;
    size_t len;
    int64_t rows = (int64_t)t->cache.blk.n_users + t->cache.blk.n_items;
    int dim = t->cache.prev.teacher_spec[j->m].dim;
    rc = tj_encode_result(j->model, j->block, j->m, j->epoch, table, rows, dim, &buf, &len);
    free(table);
    if (rc != 0)
        return job_failed(t, j, "out of memory encoding the result");
    rc = put_retry(t, j->model, j->result, buf, len);
    free(buf);
    if (rc != 0)
        return rc;
    if (get_retry(t, j->model, j->input, NULL, NULL) == 0) /* the owner finished meanwhile */
        ckpt_store_del_blob(&t->store, j->model, j->result, why, sizeof why);
    produce_result(t, j, "done", seconds);
    pthread_mutex_lock(&t->mu);
    t->st.jobs_done++;
    t->st.teacher_seconds_total += seconds;
    t->st.last_teacher_seconds = seconds;
    pthread_mutex_unlock(&t->mu);
    wlog(WLOG_INFO, "teacher job: model %s block %d teacher %d done in %.2f s", j->model, j->block,
         j->m, seconds);
    return 0;
}

static int run_job(tj_teacher *t, const tj_job *j)
{
    int r = get_retry(t, j->model, j->result, NULL, NULL);
    if (r == CCD_STOPPED)
        return r;
    if (r == 1)
        return skip_job(t, j, "its result is stored already");
    char why[512];
    r = load_inputs(t, j, why, sizeof why);
    if (r == CCD_STOPPED)
        return r;
    if (r == 0)
        return skip_job(t, j, "its input is gone (the owner finished or gave up the block)");
    if (r < 0)
        return job_failed(t, j, why);
    return train_job(t, j);
}

/* Assignments logged (the tests wait for them); librdkafka's default handling otherwise. */
static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    (void)opaque;
    bool assign = err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS;
    bool coop = !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
    wlog(WLOG_INFO, "teacher jobs: %s %d partition(s)", assign ? "assigned" : "revoked",
         parts->cnt);
    if (coop) {
        rd_kafka_error_t *e = assign ? rd_kafka_incremental_assign(rk, parts)
                                     : rd_kafka_incremental_unassign(rk, parts);
        if (e)
            rd_kafka_error_destroy(e);
    } else {
        rd_kafka_assign(rk, assign ? parts : NULL);
    }
}

static void handle(tj_teacher *t, rd_kafka_message_t *msg)
{
    if (msg->err) {
        rd_kafka_resp_err_t e = msg->err;
        bool fatal = e == RD_KAFKA_RESP_ERR__FATAL || e == RD_KAFKA_RESP_ERR__AUTHENTICATION ||
                     e == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED ||
                     e == RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED;
        if (e != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            wlog(fatal ? WLOG_ERROR : WLOG_WARN, "teacher jobs: %s%s", rd_kafka_message_errstr(msg),
                 fatal ? " (fatal: stopping)" : "");
        if (fatal) {
            atomic_store(&t->failed, true);
            atomic_store(&t->stop, 1);
        }
        return;
    }
    tj_job j;
    if (parse_job(msg, &j) != 0) {
        wlog(WLOG_ERROR, "teacher jobs: a message at %s/%d offset %lld is not a job: skipped",
             rd_kafka_topic_name(msg->rkt), (int)msg->partition, (long long)msg->offset);
    } else if (run_job(t, &j) != 0) {
        return; /* stopped: uncommitted, whoever gets the partition next runs it */
    }
    rd_kafka_resp_err_t e = rd_kafka_commit_message(t->rk, msg, 0);
    if (e)
        wlog(WLOG_WARN, "teacher jobs: commit: %s (the job may run again: harmless)",
             rd_kafka_err2str(e));
}

static void *teacher_main(void *arg)
{
    tj_teacher *t = arg;
    while (!atomic_load(&t->stop)) {
        rd_kafka_message_t *msg = rd_kafka_consumer_poll(t->rk, 200);
        if (msg) {
            handle(t, msg);
            rd_kafka_message_destroy(msg);
        }
        if (t->prod)
            rd_kafka_poll(t->prod, 0);
    }
    rd_kafka_consumer_close(t->rk);
    return NULL;
}

/* The thread's store: the [checkpoint] one, on a connection of its own for Redis. */
static int open_store(const worker_config *c, ckpt_store *s, char *err, size_t errlen)
{
    if (!c->checkpoint_redis)
        return ckpt_store_open_dir(s, c->checkpoint_dir, c->checkpoint_keep, err, errlen);
    redis_sink_opts o;
    redis_sink_opts_default_at(&o, c->redis_host, c->redis_port,
                               c->redis_user[0] ? c->redis_user : NULL,
                               c->redis_password[0] ? c->redis_password : NULL, c->redis_prefix);
    o.db = c->redis_db;
    o.timeout_ms = c->redis_timeout_ms;
    char msg[512];
    redis_sink *r = redis_sink_open(&o, msg, sizeof msg);
    if (!r) {
        errmsg_set(err, errlen, "teacher jobs: redis: %s", msg);
        return -1;
    }
    return ckpt_store_open_redis(s, r, c->checkpoint_keep, (size_t)c->checkpoint_redis_chunk_bytes,
                                 err, errlen);
}

static int teacher_clients(tj_teacher *t, char *err, size_t errlen)
{
    const worker_config *c = t->cfg;
    if (ensure_jobs_topic(c, err, errlen) != 0)
        return -1;
    rd_kafka_conf_t *conf = client_conf(c, true, err, errlen);
    if (!conf)
        return -1;
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    if (!(t->rk = client_new(conf, true, err, errlen)))
        return -1;
    rd_kafka_poll_set_consumer(t->rk);
    if (c->teachers_results_topic[0]) {
        if (!(conf = client_conf(c, false, err, errlen)) ||
            !(t->prod = client_new(conf, false, err, errlen)))
            return -1;
    }
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, c->teachers_jobs_topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(t->rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (e) {
        errmsg_set(err, errlen, "teacher jobs: subscribe %s: %s", c->teachers_jobs_topic,
                   rd_kafka_err2str(e));
        return -1;
    }
    return 0;
}

static void teacher_free(tj_teacher *t)
{
    if (t->rk)
        rd_kafka_destroy(t->rk);
    if (t->prod) {
        rd_kafka_flush(t->prod, 2000);
        rd_kafka_destroy(t->prod);
    }
    ckpt_store_close(&t->store);
    if (t->cached)
        tj_inputs_free(&t->cache);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

tj_teacher *tj_teacher_start(const worker_config *cfg, char *err, size_t errlen)
{
    tj_teacher *t = calloc(1, sizeof *t);
    if (!t) {
        errmsg_set(err, errlen, "teacher jobs: out of memory");
        return NULL;
    }
    t->cfg = cfg;
    pthread_mutex_init(&t->mu, NULL);
    if (open_store(cfg, &t->store, err, errlen) != 0 || teacher_clients(t, err, errlen) != 0) {
        teacher_free(t);
        return NULL;
    }
    if (pthread_create(&t->thread, NULL, teacher_main, t) != 0) {
        errmsg_set(err, errlen, "teacher jobs: cannot start the thread");
        teacher_free(t);
        return NULL;
    }
    t->started = true;
    wlog(WLOG_INFO, "teacher jobs: teacher role on %s", cfg->teachers_jobs_topic);
    return t;
}

void tj_teacher_stop(tj_teacher *t)
{
    if (!t)
        return;
    atomic_store(&t->stop, 1);
    if (t->started)
        pthread_join(t->thread, NULL);
    teacher_free(t);
}

tj_stats tj_teacher_stats(tj_teacher *t)
{
    tj_stats s = {0};
    if (!t)
        return s;
    pthread_mutex_lock(&t->mu);
    s = t->st;
    pthread_mutex_unlock(&t->mu);
    return s;
}

bool tj_teacher_failed(tj_teacher *t)
{
    return t && atomic_load(&t->failed);
}
