/* Two workers in one consumer group on a 4-partition topic carrying 6 models. The first half of
 * every model's events (block 0 and half of block 1) is produced; once both workers own
 * partitions and one has published, that one is killed with SIGKILL, holding open windows whose
 * events are not committed. Then the second half is produced. The other must take its partitions
 * over (after the session timeout), resume A's models from the shared checkpoint directory,
 * replay the uncommitted open windows, and finish every model. Windows close by count only (no
 * idle timeout), so the blocks do not depend on timing. Checked at the end, through each model's
 * live version in Redis: every model reached its last block, and the events counted into its
 * blocks equal the events produced for it (none lost, none counted twice), whoever processed
 * them. With CCD_CKPT_STORE=redis the checkpoints live in Redis instead of a shared directory. */
#include <hiredis/hiredis.h>
#include <stdbool.h>

#include "avro_bytes.h"
#include "live_version.h"
#include "worker_harness.h"

#define N_MODELS 6
#define N_EVENTS 1200 /* per model */
#define BLOCK 400     /* bootstrap and tumbling windows: blocks 0, 1, 2 */

/* Events [from, to) of every model, interleaved, keyed by model id (the partitioner spreads them).
 */
static void produce_events(const char *bootstrap, const char *topic, int from, int to)
{
    rd_kafka_t *p = harness_producer(bootstrap);
    for (int i = from; i < to; i++)
        for (int m = 0; m < N_MODELS; m++) {
            char key[32], user[32], item[32];
            avro_bytes v;
            v.n = 0;
            snprintf(key, sizeof key, "model%d", m);
            int u = (i * 7 + m) % 80;
            snprintf(user, sizeof user, "u%d", u);
            snprintf(item, sizeof item, "i%d", (u % 8) * 6 + (i / 80 + m) % 6);
            avro_put_interaction(&v, user, item, 1700000000000LL + i, NULL, false, 0.0f);
            harness_produce(p, topic, -1, key, v.b, v.n);
        }
    harness_flush(p);
    rd_kafka_destroy(p);
}

static bool log_has(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    char line[4096];
    bool found = false;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

/* Every model's live version: the last block, complete, holding exactly the events produced. */
static void check_models(int redis_port, const char *prefix)
{
    redisContext *r = redisConnect("127.0.0.1", redis_port);
    CHECK(r && !r->err, "redis connect");
    for (int m = 0; m < N_MODELS; m++) {
        char model[32];
        snprintf(model, sizeof model, "model%d", m);
        live_version live = live_version_read(r, prefix, model);
        CHECK(live.block == N_EVENTS / BLOCK - 1, "%s: live block %d", model, live.block);
        CHECK(live.events_total == N_EVENTS, "%s: %lld events in its blocks, %d produced", model,
              live.events_total, N_EVENTS);
        CHECK(live.user_fields == live.users, "%s: live version incomplete", model);
        fprintf(stderr, "%s: v%lld, block %d, %lld events\n", model, live.version, live.block,
                live.events_total);
    }
    redisFree(r);
}

int main(void)
{
    harness_env env = harness_env_read();
    /* CCD_CKPT_STORE=redis runs the same scenario with the checkpoints in Redis */
    const char *store = getenv("CCD_CKPT_STORE") ? getenv("CCD_CKPT_STORE") : "dir";
    char dir[] = "/tmp/ccd-group-XXXXXX";
    CHECK(mkdtemp(dir), "mkdtemp");
    char topic[96], prefix[64];
    snprintf(topic, sizeof topic, "group-in-%d-%ld", (int)getpid(), (long)time(NULL));
    snprintf(prefix, sizeof prefix, "ccdgrp%d", (int)getpid());
    harness_create_topic(env.bootstrap, topic, 4);

    produce_events(env.bootstrap, topic, 0, N_EVENTS / 2);

    char config[4096], path[600], log_a[600], log_b[600];
    snprintf(
        config, sizeof config,
        "[kafka]\nbootstrap.servers = %s\ngroup.id = group-test-%d\nsession.timeout.ms = 6000\n"
        "heartbeat.interval.ms = 1000\n"
        "[input]\ntopics = %s\nreader_schema = %s/interaction.avsc\nmax_buffered_events = 100000\n"
        "[window]\nbootstrap_events = %d\nevents = %d\nidle_ms = 0\n"
        "[ccd]\nteachers = mf:8:0, lightgcn:8:1\nstudent_dim = 4\nkd_interesting = "
        "5\nexclusion_topk = 5\n"
        "init_topk = 3\nkd_uninteresting_items = 30\nkd_uninteresting_users = 40\n"
        "[ccd.base]\nepochs = 3\nbatch = 64\n[ccd.kd]\nepochs = 2\nbatch = 64\n"
        "[ccd.student]\nepochs = 2\nbatch = 64\n[ccd.teacher]\nepochs = 2\nbatch = 64\n"
        "[redis]\nport = %s\nprefix = %s\nkeep_versions = 10\n"
        "[checkpoint]\nstore = %s\ndir = %s/ckpt\n[worker]\nthreads = 1\n",
        env.bootstrap, (int)getpid(), topic, env.schema_dir, BLOCK, BLOCK, env.redis_port, prefix,
        store, dir);
    snprintf(path, sizeof path, "%s/worker.ini", dir);
    harness_write_file(path, config);
    snprintf(log_a, sizeof log_a, "%s/a.log", dir);
    snprintf(log_b, sizeof log_b, "%s/b.log", dir);
    /* both exit on their own once idle; whichever joined first may take all the partitions first */
    char *argv_a[] = {(char *)env.worker_bin, "-c", path, "--exit-when-idle", "20000", NULL};
    char *argv_b[] = {(char *)env.worker_bin, "-c", path, "--exit-when-idle", "20000", NULL};
    pid_t a = harness_spawn(argv_a, log_a);
    pid_t b = harness_spawn(argv_b, log_b);

    /* once both own partitions and one has published, kill the one that published (while it
     * holds open windows whose events are not committed) */
    time_t until = time(NULL) + 120;
    while (!((log_has(log_a, " live (") || log_has(log_b, " live (")) &&
             log_has(log_a, "assigned ") && log_has(log_b, "assigned ")) &&
           time(NULL) < until) {
        struct timespec ts = {0, 50000000};
        nanosleep(&ts, NULL);
    }
    CHECK(log_has(log_a, " live (") || log_has(log_b, " live ("),
          "no worker published within 120 s");
    CHECK(log_has(log_a, "assigned ") && log_has(log_b, "assigned "),
          "a worker owned no partition: the group did not spread the work");
    struct timespec settle = {1, 0};
    nanosleep(&settle, NULL);
    bool kill_a = log_has(log_a, " live (");
    pid_t victim = kill_a ? a : b, survivor = kill_a ? b : a;
    const char *log_s = kill_a ? log_b : log_a;
    harness_kill(victim);
    fprintf(stderr, "worker %s killed; producing the second half\n", kill_a ? "A" : "B");
    produce_events(env.bootstrap, topic, N_EVENTS / 2, N_EVENTS);

    int rc = harness_wait(survivor, 400, "the surviving worker");
    if (rc != 0)
        harness_sh("tail -n 30 %s %s >&2", log_a, log_b);
    CHECK(rc == 0, "the surviving worker exited with %d", rc);
    CHECK(log_has(log_s, "resumed from its block-"),
          "the surviving worker resumed no model from a checkpoint");

    check_models(atoi(env.redis_port), prefix);
    harness_sh("grep -h 'resumed from' %s >&2; rm -rf %s", log_s, dir);
    fprintf(stderr,
            "ok: %d models finished after a SIGKILL, every event counted once (checkpoints: %s)\n",
            N_MODELS, store);
    return 0;
}
