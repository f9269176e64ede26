/* worker_harness: what the worker integration tests share: topics, producing raw bytes, a
 * consumer to read a topic back, running the ccd-worker binary with a generated config, shell
 * commands. Header-only, for tests. */
#ifndef CCD_WORKER_HARNESS_H
#define CCD_WORKER_HARNESS_H

#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "services_env.h"

/* What a worker test reads from its environment (ctest sets it): the services' addresses
 * (services.env), the ccd-worker binary and the schema directory. */
typedef struct {
    char bootstrap[256]; /* Kafka, host:port */
    char redis_port[32]; /* redis-server on 127.0.0.1 */
    const char *worker_bin;
    const char *schema_dir;
} harness_env;

static inline harness_env harness_env_read(void)
{
    harness_env e;
    CHECK(services_env("KAFKA_BOOTSTRAP", e.bootstrap, sizeof e.bootstrap) == 0, "no broker");
    CHECK(services_env("REDIS_PORT", e.redis_port, sizeof e.redis_port) == 0, "no redis");
    e.worker_bin = getenv("CCD_WORKER_BIN");
    e.schema_dir = getenv("CCD_SCHEMA_DIR");
    CHECK(e.worker_bin && e.schema_dir,
          "CCD_WORKER_BIN and CCD_SCHEMA_DIR must be set (run through ctest)");
    return e;
}

static inline void harness_create_topic(const char *bootstrap, const char *topic, int partitions)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    CHECK(rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, sizeof err) ==
              RD_KAFKA_CONF_OK,
          "%s", err);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    CHECK(rk, "admin client: %s", err);
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, partitions, 1, err, sizeof err);
    CHECK(nt, "%s", err);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    CHECK(ev, "CreateTopics timed out");
    const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
    CHECK(res, "unexpected event %s", rd_kafka_event_name(ev));
    size_t n;
    const rd_kafka_topic_result_t **tr = rd_kafka_CreateTopics_result_topics(res, &n);
    CHECK(n == 1 && (rd_kafka_topic_result_error(tr[0]) == RD_KAFKA_RESP_ERR_NO_ERROR ||
                     rd_kafka_topic_result_error(tr[0]) == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS),
          "CreateTopics %s: %s", topic,
          n ? rd_kafka_topic_result_error_string(tr[0]) : "no result");
    rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy(nt);
    rd_kafka_destroy(rk);
}

static inline rd_kafka_t *harness_producer(const char *bootstrap)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    CHECK(rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, sizeof err) ==
              RD_KAFKA_CONF_OK,
          "%s", err);
    CHECK(rd_kafka_conf_set(conf, "enable.idempotence", "true", err, sizeof err) ==
              RD_KAFKA_CONF_OK,
          "%s", err);
    CHECK(rd_kafka_conf_set(conf, "message.max.bytes", "2000000", err, sizeof err) ==
              RD_KAFKA_CONF_OK,
          "%s", err);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    CHECK(rk, "producer: %s", err);
    return rk;
}

/* A consumer in group `group` subscribed to `topic`, reading from the earliest offset; it commits
 * only when the test calls rd_kafka_commit. */
static inline rd_kafka_t *harness_consumer(const char *bootstrap, const char *group,
                                           const char *topic)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const char *settings[][2] = {{"bootstrap.servers", bootstrap},
                                 {"group.id", group},
                                 {"auto.offset.reset", "earliest"},
                                 {"enable.auto.commit", "false"}};
    for (size_t s = 0; s < sizeof settings / sizeof settings[0]; s++)
        CHECK(rd_kafka_conf_set(conf, settings[s][0], settings[s][1], err, sizeof err) ==
                  RD_KAFKA_CONF_OK,
              "%s", err);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    CHECK(rk, "consumer: %s", err);
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, topic, RD_KAFKA_PARTITION_UA);
    CHECK(rd_kafka_subscribe(rk, sub) == RD_KAFKA_RESP_ERR_NO_ERROR, "subscribe to %s", topic);
    rd_kafka_topic_partition_list_destroy(sub);
    return rk;
}

/* Produce one message (key may be NULL) to a partition (-1: by key) and wait for the ack. */
static inline void harness_produce(rd_kafka_t *rk, const char *topic, int32_t partition,
                                   const char *key, const void *value, size_t len)
{
    rd_kafka_resp_err_t err = rd_kafka_producev(
        rk, RD_KAFKA_V_TOPIC(topic),
        RD_KAFKA_V_PARTITION(partition < 0 ? RD_KAFKA_PARTITION_UA : partition),
        RD_KAFKA_V_KEY(key, key ? strlen(key) : 0), RD_KAFKA_V_VALUE((void *)value, len),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    CHECK(!err, "produce: %s", rd_kafka_err2str(err));
}

static inline void harness_flush(rd_kafka_t *rk)
{
    CHECK(rd_kafka_flush(rk, 30000) == RD_KAFKA_RESP_ERR_NO_ERROR, "flush timed out");
    CHECK(rd_kafka_outq_len(rk) == 0, "messages left unsent");
}

/* Children still running when the test exits (a failed CHECK included) are killed. */
static pid_t harness_children[16];
static int harness_n_children;

static void harness_kill_children(void)
{
    for (int i = 0; i < harness_n_children; i++)
        if (harness_children[i] > 0 && kill(harness_children[i], SIGKILL) == 0)
            waitpid(harness_children[i], NULL, 0);
}

/* SIGKILL a child and reap it. */
static inline void harness_kill(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    for (int i = 0; i < harness_n_children; i++)
        if (harness_children[i] == pid)
            harness_children[i] = 0;
}

/* Start `argv` (NULL-terminated) with stderr to log_path; returns the pid. */
static inline pid_t harness_spawn(char *const argv[], const char *log_path)
{
    if (harness_n_children == 0)
        atexit(harness_kill_children);
    pid_t pid = fork();
    CHECK(pid >= 0, "fork failed");
    if (pid == 0) {
        FILE *f = freopen(log_path, "w", stderr);
        (void)f;
        execv(argv[0], argv);
        fprintf(stderr, "exec %s failed\n", argv[0]);
        _exit(127);
    }
    if (harness_n_children < 16)
        harness_children[harness_n_children++] = pid;
    return pid;
}

/* Wait for pid up to timeout_s; kill it (and fail) if it takes longer. Returns the exit status. */
static inline int harness_wait(pid_t pid, int timeout_s, const char *what)
{
    for (int waited = 0; waited < timeout_s * 10; waited++) {
        int status;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            for (int i = 0; i < harness_n_children; i++)
                if (harness_children[i] == pid)
                    harness_children[i] = 0;
            CHECK(WIFEXITED(status), "%s died from signal %d", what,
                  WIFSIGNALED(status) ? WTERMSIG(status) : -1);
            return WEXITSTATUS(status);
        }
        struct timespec ts = {0, 100000000};
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    CHECK(0, "%s did not finish within %d s", what, timeout_s);
    return -1;
}

static inline void harness_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    CHECK(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

/* Runs a shell command built like printf (showing a log, removing a directory); a failure is
 * reported on stderr, never fatal. */
static inline void harness_sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    CHECK(n >= 0 && (size_t)n < sizeof cmd, "shell command too long");
    if (system(cmd) != 0)
        fprintf(stderr, "(failed: %s)\n", cmd);
}

#endif
