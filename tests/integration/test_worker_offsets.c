/* Offsets that move (issue 17 item 3), against the real broker and Redis: one model's stream is
 * folded by a worker; then the group's offsets are reset to the start and the worker is run under
 * each input.on_offset_reset policy; then the topic is deleted and recreated with fewer messages.
 *   fail     exits with status 1 naming the model, topic/partition and rule, and commits nothing
 *            (the group's offset stays where the reset put it);
 *   skip     goes on as before: nothing is folded again, the live version stays;
 *   retrain  folds the stream again as new blocks: block numbers and events_total grow, so the
 *            live version moves forward;
 *   a recreated topic under fail exits with status 1 as well.
 * Before this work every one of these runs skipped the stream silently (the reset and the
 * recreated topic looked like duplicates of what the checkpoint held). */
#include <hiredis/hiredis.h>
#include <stdbool.h>

#include "avro_bytes.h"
#include "live_version.h"
#include "worker_harness.h"

#define N_EVENTS 1200
#define BLOCK 400 /* bootstrap and later windows: 3 blocks */

static void produce_stream(const char *bootstrap, const char *topic, int n)
{
    rd_kafka_t *p = harness_producer(bootstrap);
    for (int i = 0; i < n; i++) {
        avro_bytes v;
        v.n = 0;
        char user[32], item[32];
        int u = i % 60;
        snprintf(user, sizeof user, "u%d", u);
        snprintf(item, sizeof item, "i%d", (u * 7 + i / 60) % 45);
        avro_put_interaction(&v, user, item, 1700000000000LL + i, NULL, false, 0.0f);
        harness_produce(p, topic, 0, "m", v.b, v.n);
    }
    harness_flush(p);
    rd_kafka_destroy(p);
}

/* A consumer handle of `group` that never subscribes: it only commits or reads commits. */
static rd_kafka_t *group_handle(const char *bootstrap, const char *group)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const char *settings[][2] = {
        {"bootstrap.servers", bootstrap}, {"group.id", group}, {"enable.auto.commit", "false"}};
    for (size_t s = 0; s < sizeof settings / sizeof settings[0]; s++)
        CHECK(rd_kafka_conf_set(conf, settings[s][0], settings[s][1], err, sizeof err) ==
                  RD_KAFKA_CONF_OK,
              "%s", err);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    CHECK(rk, "consumer: %s", err);
    return rk;
}

/* What `kafka-consumer-groups --reset-offsets --to-offset` does, for an empty group. */
static void group_commit(const char *bootstrap, const char *group, const char *topic,
                         int64_t offset)
{
    rd_kafka_t *rk = group_handle(bootstrap, group);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, 0)->offset = offset;
    rd_kafka_resp_err_t e = rd_kafka_commit(rk, l, 0);
    CHECK(!e && !l->elems[0].err, "resetting %s's offset: %s", group,
          rd_kafka_err2str(e ? e : l->elems[0].err));
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(rk);
}

static int64_t group_committed(const char *bootstrap, const char *group, const char *topic)
{
    rd_kafka_t *rk = group_handle(bootstrap, group);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, 0);
    rd_kafka_resp_err_t e = rd_kafka_committed(rk, l, 15000);
    CHECK(!e, "reading %s's offset: %s", group, rd_kafka_err2str(e));
    int64_t off = l->elems[0].offset;
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(rk);
    return off;
}

static void delete_topic(const char *bootstrap, const char *topic)
{
    rd_kafka_t *rk = harness_producer(bootstrap);
    rd_kafka_DeleteTopic_t *dt = rd_kafka_DeleteTopic_new(topic);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_DeleteTopics(rk, &dt, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    CHECK(ev && rd_kafka_event_DeleteTopics_result(ev), "DeleteTopics timed out");
    size_t n;
    const rd_kafka_topic_result_t **tr =
        rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(ev), &n);
    CHECK(n == 1 && !rd_kafka_topic_result_error(tr[0]), "DeleteTopics %s: %s", topic,
          n ? rd_kafka_topic_result_error_string(tr[0]) : "no result");
    rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_DeleteTopic_destroy(dt);
    rd_kafka_destroy(rk);
}

/* Create topic (1 partition); false while a topic of that name still exists (being deleted). */
static bool create_topic_fresh(const char *bootstrap, const char *topic)
{
    char err[512];
    rd_kafka_t *rk = harness_producer(bootstrap);
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, 1, 1, err, sizeof err);
    CHECK(nt, "%s", err);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    CHECK(ev && rd_kafka_event_CreateTopics_result(ev), "CreateTopics timed out");
    size_t n;
    const rd_kafka_topic_result_t **tr =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
    CHECK(n == 1, "CreateTopics: no result");
    rd_kafka_resp_err_t e = rd_kafka_topic_result_error(tr[0]);
    CHECK(!e || e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS, "CreateTopics %s: %s", topic,
          rd_kafka_topic_result_error_string(tr[0]));
    rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy(nt);
    rd_kafka_destroy(rk);
    return !e;
}

typedef struct {
    harness_env env;
    char dir[64], topic[96], group[96];
    int run;
} fixture;

/* One worker run to idle with a policy; returns its exit status, its log in log_path. */
static int run_worker(fixture *f, const char *policy, char *log_path, size_t log_cap)
{
    char config[4096], path[600];
    snprintf(config, sizeof config,
             "[kafka]\nbootstrap.servers = %s\ngroup.id = %s\n"
             "[input]\ntopics = %s\nformat = auto\nreader_schema = %s/interaction.avsc\n"
             "max_buffered_events = 10000\non_offset_reset = %s\n"
             "[window]\nbootstrap_events = %d\nevents = %d\nidle_ms = 3000\n"
             "[ccd]\nteachers = mf:8:0\nstudent_dim = 4\nkd_interesting = 5\nexclusion_topk = "
             "5\ninit_topk = 3\n"
             "kd_uninteresting_items = 30\nkd_uninteresting_users = 40\n"
             "[ccd.base]\nepochs = 2\nbatch = 64\n[ccd.kd]\nepochs = 1\nbatch = 64\n"
             "[ccd.student]\nepochs = 1\nbatch = 64\n[ccd.teacher]\nepochs = 1\nbatch = 64\n"
             "[redis]\nhost = 127.0.0.1\nport = %s\nprefix = %s\nkeep_versions = 20\n"
             "[checkpoint]\ndir = %s/ckpt\n[worker]\nthreads = 2\n",
             f->env.bootstrap, f->group, f->topic, f->env.schema_dir, policy, BLOCK, BLOCK,
             f->env.redis_port, f->group, f->dir);
    snprintf(path, sizeof path, "%s/worker-%d.ini", f->dir, f->run);
    harness_write_file(path, config);
    snprintf(log_path, log_cap, "%s/worker-%d-%s.log", f->dir, f->run, policy);
    f->run++;
    char *argv[] = {(char *)f->env.worker_bin, "-c", path, "--exit-when-idle", "6000", NULL};
    return harness_wait(harness_spawn(argv, log_path), 300, "ccd-worker");
}

static bool log_has(const char *log_path, const char *needle)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "grep -qF -- '%s' %s", needle, log_path);
    return system(cmd) == 0;
}

static void expect_log(const char *log_path, const char *needle)
{
    if (!log_has(log_path, needle))
        harness_sh("tail -n 30 %s >&2", log_path);
    CHECK(log_has(log_path, needle), "%s: no \"%s\"", log_path, needle);
}

static live_version live(const fixture *f)
{
    redisContext *r = redisConnect("127.0.0.1", atoi(f->env.redis_port));
    CHECK(r && !r->err, "redis connect");
    live_version v = live_version_read(r, f->group, "m");
    redisFree(r);
    return v;
}

static void expect_exit(fixture *f, const char *policy, int want, char *log, size_t cap)
{
    int rc = run_worker(f, policy, log, cap);
    if (rc != want)
        harness_sh("tail -n 30 %s >&2", log);
    CHECK(rc == want, "ccd-worker (%s) exited with %d, expected %d", policy, rc, want);
}

int main(void)
{
    fixture f = {.env = harness_env_read()};
    snprintf(f.dir, sizeof f.dir, "/tmp/ccd-offsets-XXXXXX");
    CHECK(mkdtemp(f.dir), "mkdtemp");
    snprintf(f.topic, sizeof f.topic, "offsets-%d-%ld", (int)getpid(), (long)time(NULL));
    snprintf(f.group, sizeof f.group, "offsets%d", (int)getpid());
    harness_create_topic(f.env.bootstrap, f.topic, 1);
    produce_stream(f.env.bootstrap, f.topic, N_EVENTS);
    char log[700], where[200];
    snprintf(where, sizeof where, "model m: %s/0: offsets moved back (reset)", f.topic);

    /* the stream folded once: blocks 0-2, every event counted, everything committed */
    expect_exit(&f, "fail", 0, log, sizeof log);
    live_version v = live(&f);
    CHECK(v.block == 2 && v.events_total == N_EVENTS, "first run: block %d, %lld events", v.block,
          v.events_total);
    CHECK(group_committed(f.env.bootstrap, f.group, f.topic) == N_EVENTS, "first run's commit");

    /* offsets reset to the start; fail: status 1, a message naming it all, nothing committed */
    group_commit(f.env.bootstrap, f.group, f.topic, 0);
    expect_exit(&f, "fail", 1, log, sizeof log);
    expect_log(log, where);
    expect_log(log, "input.on_offset_reset = fail");
    int64_t c = group_committed(f.env.bootstrap, f.group, f.topic);
    CHECK(c == 0, "the failed run committed %lld", (long long)c);
    CHECK(live(&f).version == v.version, "the failed run published");

    /* skip: today's behaviour, with a warning; nothing folded again */
    expect_exit(&f, "skip", 0, log, sizeof log);
    expect_log(log, where);
    expect_log(log, "input.on_offset_reset = skip");
    live_version s = live(&f);
    CHECK(s.version == v.version && s.events_total == N_EVENTS,
          "skip published v%lld (%lld events)", s.version, s.events_total);

    /* retrain: the stream again, as blocks 3-5 on the current state */
    group_commit(f.env.bootstrap, f.group, f.topic, 0);
    expect_exit(&f, "retrain", 0, log, sizeof log);
    expect_log(log, where);
    expect_log(log, "input.on_offset_reset = retrain");
    live_version r = live(&f);
    CHECK(r.block == 5 && r.events_total == 2 * N_EVENTS && r.version > v.version,
          "retrain: block %d, %lld events, v%lld", r.block, r.events_total, r.version);
    CHECK(group_committed(f.env.bootstrap, f.group, f.topic) == N_EVENTS, "retrain's commit");

    /* the topic deleted and recreated with fewer messages than the model folded */
    delete_topic(f.env.bootstrap, f.topic);
    for (int tries = 0; !create_topic_fresh(f.env.bootstrap, f.topic); tries++) {
        CHECK(tries < 30, "topic %s still there 60 s after its deletion", f.topic);
        sleep(2); /* the deletion completes asynchronously */
    }
    produce_stream(f.env.bootstrap, f.topic, N_EVENTS / 4);
    expect_exit(&f, "fail", 1, log, sizeof log);
    snprintf(where, sizeof where, "model m: %s/0: offsets moved back", f.topic);
    expect_log(log, where);
    CHECK(live(&f).version == r.version, "the failed run after the recreation published");

    if (getenv("CCD_KEEP"))
        fprintf(stderr, "kept %s\n", f.dir);
    else
        harness_sh("rm -rf %s", f.dir);
    fprintf(stderr, "ok: reset (fail, skip, retrain) and recreated topic (fail) as configured\n");
    return 0;
}
