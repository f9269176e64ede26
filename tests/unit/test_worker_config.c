/* worker_config: the shipped INI files, FILE:LINE errors naming section.key, the kafka.*
 * passthrough checked by librdkafka, -X overrides, cross-key checks, secrets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <unistd.h>

#include "worker_config.h"

static const char *config_path(const char *name)
{
    static char buf[1024];
    const char *d = getenv("CCD_CONFIG_DIR");
    snprintf(buf, sizeof buf, "%s/%s", d ? d : "configs", name);
    return buf;
}

/* A temporary INI file with the given text; path in buf. */
static void write_ini(char *path, size_t pathlen, const char *text)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(path, pathlen, "%s/ccd-wcfg-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t n = strlen(text);
    assert_true(write(fd, text, n) == (ssize_t)n);
    close(fd);
}

static const char *kafka_value(const worker_config *w, const char *key)
{
    for (int k = 0; k < w->n_kafka; k++)
        if (!strcmp(w->kafka[k].key, key))
            return w->kafka[k].value;
    return NULL;
}

/* The shipped configs load, pass the cross-key checks, and put their values where they belong. */
static void wcfg_shipped_files(void **state)
{
    (void)state;
    char err[1024];
    worker_config w;
    worker_config_init(&w);
    if (worker_config_load(&w, config_path("worker.ini"), err, sizeof err) != 0)
        fail_msg("worker.ini: %s", err);
    if (worker_config_check(&w, err, sizeof err) != 0)
        fail_msg("worker.ini: %s", err);
    assert_int_equal(w.n_kafka, 2);
    assert_string_equal(kafka_value(&w, "bootstrap.servers"), "127.0.0.1:9092");
    assert_string_equal(kafka_value(&w, "group.id"), "ccd-worker");
    assert_int_equal(w.n_topics, 1);
    assert_string_equal(w.topics[0], "interactions");
    assert_string_equal(w.format, "auto");
    assert_string_equal(w.dead_letter_topic, "interactions.dlq");
    assert_string_equal(w.default_model, "");
    assert_true(w.max_buffered_events == 2000000);
    assert_int_equal(w.on_offset_reset, OFFSETS_FAIL);
    assert_true(w.bootstrap_events == 100000);
    assert_true(w.bootstrap_until_ms == INT64_MIN);
    assert_true(w.window_events == 20000);
    assert_true(w.window_duration_ms == 0);
    assert_true(w.idle_ms == 30000);
    assert_true(w.holdout_fraction == 0.1);
    assert_int_equal(w.ccd.n_teachers, 3);
    assert_int_equal(w.ccd.teachers[2].type, CCD_MODEL_MF);
    assert_int_equal(w.ccd.student_dim, 8);
    assert_string_equal(w.redis_password, "");
    assert_true(w.redis_publish);
    assert_int_equal(w.checkpoint_keep, 2);
    assert_int_equal(w.checkpoint_redis_chunk_bytes, 64 << 20);
    assert_int_equal(w.log_level, 2);
    assert_true(w.train);
    assert_int_equal(w.shutdown_timeout_ms, 25000);
    assert_true(w.fence_grace_ms == 0);
    assert_true(w.fastpath_enabled);
    assert_int_equal(w.fastpath_epochs, 2);
    assert_int_equal(w.fastpath_bootstrap_epochs, 5);
    assert_true(w.fastpath_bootstrap_lr == 0.01f);
    worker_config_free(&w);

    worker_config_init(&w);
    if (worker_config_load(&w, config_path("yelp-replay.ini"), err, sizeof err) != 0)
        fail_msg("yelp-replay.ini: %s", err);
    if (worker_config_check(&w, err, sizeof err) != 0)
        fail_msg("yelp-replay.ini: %s", err);
    assert_string_equal(kafka_value(&w, "group.id"), "ccd-yelp");
    assert_string_equal(w.topics[0], "yelp");
    assert_string_equal(w.dead_letter_topic, "yelp.dlq");
    assert_true(w.max_buffered_events == 1000000);
    assert_true(w.bootstrap_events == 0);
    assert_true(w.bootstrap_until_ms == 1600086400000LL);
    assert_true(w.window_events == 0);
    assert_true(w.window_duration_ms == 86400000);
    assert_true(w.idle_ms == 10000);
    assert_int_equal(w.ccd.n_teachers, 5);
    assert_int_equal(w.ccd.teachers[4].type, CCD_MODEL_LIGHTGCN);
    assert_int_equal(w.ccd.teachers[4].dim, 128);
    assert_int_equal(w.ccd.teachers[4].seed, 4);
    assert_int_equal(w.ccd.base.epochs, 10);
    assert_int_equal(w.ccd.base.patience, 0);
    assert_int_equal(w.redis_keep_versions, 10);
    assert_string_equal(w.checkpoint_dir, "checkpoints/yelp");
    worker_config_free(&w);
}

/* Load text as an INI file; returns the error (or "" on success) and the file's path. */
static int load_text(worker_config *w, const char *text, char *err, size_t errlen, char *path,
                     size_t pathlen)
{
    write_ini(path, pathlen, text);
    err[0] = '\0';
    int r = worker_config_load(w, path, err, errlen);
    unlink(path);
    return r;
}

static void assert_contains(const char *hay, const char *needle)
{
    if (!strstr(hay, needle))
        fail_msg("'%s' does not contain '%s'", hay, needle);
}

/* Errors in a file name FILE:LINE and section.key: unknown section, unknown key, bad value, a kafka
 * key librdkafka does not know, a syntax error. */
static void wcfg_file_errors(void **state)
{
    (void)state;
    static const struct {
        const char *text, *line, *names;
    } cases[] = {
        {"[window]\nevents = 10\nevnets = 5\n", ":3: ", "window.evnets"},
        {"[input]\ntopics = a\n\n[bogus]\nkey = 1\n", ":5: ", "bogus.key"},
        {"[redis]\nport = 70000\n", ":2: ", "redis.port"},
        {"[window]\nevents = ten\n", ":2: ", "window.events"},
        {"[holdout]\nfraction = 1.0\n", ":2: ", "holdout.fraction"},
        {"[input]\nformat = json\n", ":2: ", "input.format"},
        {"[input]\non_offset_reset = ignore\n", ":2: ", "input.on_offset_reset"},
        {"[log]\nlevel = verbose\n", ":2: ", "log.level"},
        {"[kafka]\nbootstrap.servers = h:1\nno.such.property = 1\n",
         ":3: ", "kafka.no.such.property"},
        {"[kafka]\nsecurity.protocol = carrier_pigeon\n", ":2: ", "kafka.security.protocol"},
        {"[ccd]\nstudent_dim = -3\n", ":2: ", "ccd.student_dim"},
        {"[ccd.student]\nepohcs = 3\n", ":2: ", "ccd.student.epohcs"},
        {"[window]\nthis line has no equals sign\n", ":2: ", "syntax error"},
        {"[worker]\nshutdown_timeout_ms = 999\n", ":2: ", "worker.shutdown_timeout_ms"},
        {"[worker]\nshutdown_timeout_ms = 25s\n", ":2: ", "worker.shutdown_timeout_ms"},
        {"[worker]\nshutdown_timeout_ms = -1\n", ":2: ", "worker.shutdown_timeout_ms"},
        {"[checkpoint]\nredis_chunk_bytes = 100\n", ":2: ", "checkpoint.redis_chunk_bytes"},
        {"[fastpath]\nenabled = maybe\n", ":2: ", "fastpath.enabled"},
        {"[fastpath]\nepochs = 0\n", ":2: ", "fastpath.epochs"},
        {"[fastpath]\nbootstrap_epochs = 1001\n", ":2: ", "fastpath.bootstrap_epochs"},
        {"[fastpath]\nbootstrap_lr = -0.1\n", ":2: ", "fastpath.bootstrap_lr"},
        {"[fastpath]\nepoch = 3\n", ":2: ", "fastpath.epoch"},
    };
    char err[1024], path[512];
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        worker_config w;
        worker_config_init(&w);
        assert_int_equal(load_text(&w, cases[k].text, err, sizeof err, path, sizeof path), -1);
        assert_true(!strncmp(err, path, strlen(path)));
        assert_contains(err + strlen(path), cases[k].line);
        assert_contains(err, cases[k].names);
        worker_config_free(&w);
    }
    /* a missing file */
    worker_config w;
    worker_config_init(&w);
    assert_int_equal(worker_config_load(&w, "/nonexistent/dir/x.ini", err, sizeof err), -1);
    assert_contains(err, "/nonexistent/dir/x.ini");
    worker_config_free(&w);
}

/* kafka.* keys are validated by librdkafka and kept verbatim (dotted keys, enum values, secrets);
 * a later value for the same key replaces the earlier one. */
static void wcfg_kafka_passthrough(void **state)
{
    (void)state;
    char err[1024], path[512];
    worker_config w;
    worker_config_init(&w);
    assert_int_equal(
        load_text(
            &w,
            "[kafka]\nbootstrap.servers = b1:9092,b2:9092\nsecurity.protocol = SASL_SSL\n"
            "sasl.mechanisms = SCRAM-SHA-512\nsasl.username = svc\nsasl.password = p@ss.w=rd\n"
            "session.timeout.ms = 45000\n",
            err, sizeof err, path, sizeof path),
        0);
    assert_int_equal(w.n_kafka, 6);
    assert_string_equal(w.kafka[0].key, "bootstrap.servers");
    assert_string_equal(w.kafka[0].value, "b1:9092,b2:9092");
    assert_string_equal(kafka_value(&w, "security.protocol"), "SASL_SSL");
    assert_string_equal(kafka_value(&w, "sasl.mechanisms"), "SCRAM-SHA-512");
    assert_string_equal(kafka_value(&w, "sasl.password"), "p@ss.w=rd");
    assert_string_equal(kafka_value(&w, "session.timeout.ms"), "45000");

    /* -X: everything after "kafka." is the key, everything after the first '=' the value */
    assert_int_equal(worker_config_override(&w, "kafka.sasl.password=x.y=z", err, sizeof err), 0);
    assert_string_equal(kafka_value(&w, "sasl.password"), "x.y=z");
    assert_int_equal(worker_config_override(&w, "kafka.client.id=ccd-worker-1", err, sizeof err),
                     0);
    assert_string_equal(kafka_value(&w, "client.id"), "ccd-worker-1");
    assert_int_equal(w.n_kafka, 7);
    assert_null(kafka_value(&w, "sasl"));
    assert_null(kafka_value(&w, "password"));

    /* librdkafka refuses: unknown key, bad enum value, bad integer; nothing is stored */
    assert_int_equal(worker_config_override(&w, "kafka.bogus.key=1", err, sizeof err), -1);
    assert_contains(err, "kafka.bogus.key");
    assert_int_equal(worker_config_override(&w, "kafka.security.protocol=TLS", err, sizeof err),
                     -1);
    assert_contains(err, "kafka.security.protocol");
    assert_int_equal(worker_config_override(&w, "kafka.session.timeout.ms=soon", err, sizeof err),
                     -1);
    assert_contains(err, "kafka.session.timeout.ms");
    assert_int_equal(worker_config_set(&w, "kafka", "group.idd", "g", err, sizeof err), -1);
    assert_contains(err, "kafka.group.idd");
    assert_int_equal(w.n_kafka, 7);
    assert_string_equal(kafka_value(&w, "security.protocol"), "SASL_SSL");
    assert_string_equal(kafka_value(&w, "session.timeout.ms"), "45000");
    assert_int_equal(worker_config_override(&w, "kafka.=1", err, sizeof err), -1);

    /* a name of 256 bytes or more is refused whole: cut to fit, "input.schema.<300 x>password"
     * would lose the word that hides its value (fuzz_config's finding) */
    char longname[400];
    snprintf(longname, sizeof longname, "input.schema.%0300dpassword=%s", 0, "hunter2-secret");
    assert_int_equal(worker_config_override(&w, longname, err, sizeof err), -1);
    assert_contains(err, "name longer than 255 bytes");
    assert_null(strstr(err, "hunter2"));
    worker_config_free(&w);
}

/* -X overrides: section.key=value with the last dot before '=' splitting (ccd.student.epochs), the
 * dotted input.schema.<id> key, replacement of earlier values, and malformed assignments. */
static void wcfg_overrides(void **state)
{
    (void)state;
    char err[1024];
    worker_config w;
    worker_config_init(&w);
    assert_int_equal(worker_config_override(&w, "input.schema.5=schemas/v5.avsc", err, sizeof err),
                     0);
    assert_int_equal(worker_config_override(&w, "input.schema.12=/abs/v12.avsc", err, sizeof err),
                     0);
    assert_int_equal(worker_config_override(&w, "input.schema.5=schemas/v5b.avsc", err, sizeof err),
                     0);
    assert_int_equal(w.n_schemas, 2);
    assert_int_equal(w.schema_ids[0], 5);
    assert_string_equal(w.schema_paths[0], "schemas/v5b.avsc");
    assert_int_equal(w.schema_ids[1], 12);
    assert_string_equal(w.schema_paths[1], "/abs/v12.avsc");
    assert_int_equal(worker_config_override(&w, "input.schema.x=a.avsc", err, sizeof err), -1);
    assert_contains(err, "input.schema.x");
    assert_int_equal(worker_config_override(&w, "input.schema.-1=a.avsc", err, sizeof err), -1);
    assert_int_equal(worker_config_override(&w, "input.schema.3=", err, sizeof err), -1);
    assert_int_equal(w.n_schemas, 2);

    assert_int_equal(worker_config_override(&w, "window.events=1000", err, sizeof err), 0);
    assert_true(w.window_events == 1000);
    assert_int_equal(worker_config_override(&w, "ccd.student.epochs=3", err, sizeof err), 0);
    assert_int_equal(w.ccd.student.epochs, 3);
    assert_int_equal(worker_config_override(&w, "input.topics=a, b,c", err, sizeof err), 0);
    assert_int_equal(w.n_topics, 3);
    assert_string_equal(w.topics[1], "b");
    assert_int_equal(worker_config_override(&w, "input.topics=z", err, sizeof err), 0);
    assert_int_equal(w.n_topics, 1);
    assert_string_equal(w.topics[0], "z");
    assert_int_equal(worker_config_override(&w, "window.bootstrap_until_ms=-5", err, sizeof err),
                     0);
    assert_true(w.bootstrap_until_ms == -5);
    assert_int_equal(worker_config_override(&w, "window.bootstrap_until_ms=", err, sizeof err), 0);
    assert_true(w.bootstrap_until_ms == INT64_MIN);
    assert_int_equal(worker_config_override(&w, "redis.publish=off", err, sizeof err), 0);
    assert_false(w.redis_publish);
    assert_int_equal(worker_config_override(&w, "log.format=json", err, sizeof err), 0);
    assert_true(w.log_json);

    const char *bad[] = {"window.events",    "windowevents=3",    ".events=3",    "window.=3",
                         "window.events=-1", "window.events=1e3", "redis.port=0", "nosuch.key=1"};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        err[0] = '\0';
        if (worker_config_override(&w, bad[k], err, sizeof err) != -1)
            fail_msg("-X %s accepted", bad[k]);
        assert_true(err[0] != '\0');
    }
    assert_int_equal(worker_config_override(&w, "window.evnets=3", err, sizeof err), -1);
    assert_contains(err, "window.evnets");
    assert_int_equal(worker_config_override(&w, "nosuch.key=1", err, sizeof err), -1);
    assert_contains(err, "nosuch.key");
    assert_true(w.window_events == 1000);
    assert_int_equal(worker_config_override(&w, "input.on_offset_reset=retrain", err, sizeof err),
                     0);
    assert_int_equal(w.on_offset_reset, OFFSETS_RETRAIN);
    worker_config_free(&w);
}

/* A configuration that passes worker_config_check, built from -X assignments. */
static void valid_config(worker_config *w)
{
    char err[512];
    worker_config_init(w);
    const char *x[] = {"kafka.bootstrap.servers=h:9092", "input.topics=t",
                       "window.bootstrap_events=100", "window.events=10",
                       "input.max_buffered_events=1000"};
    for (size_t k = 0; k < sizeof x / sizeof *x; k++)
        if (worker_config_override(w, x[k], err, sizeof err) != 0)
            fail_msg("-X %s: %s", x[k], err);
    if (worker_config_check(w, err, sizeof err) != 0)
        fail_msg("check: %s", err);
}

/* Cross-key checks: bootstrap.servers and topics are required, exactly one rule per window kind,
 * and the buffer bound at least twice the largest count window (equality allowed). */
static void wcfg_check(void **state)
{
    (void)state;
    static const struct {
        const char *x[3];
        const char *names;
    } cases[] = {
        {{"window.bootstrap_until_ms=5"}, "window.bootstrap_events"}, /* both bootstrap rules */
        {{"window.bootstrap_events=0"}, "window.bootstrap_until_ms"}, /* neither */
        {{"window.duration_ms=1000"}, "window.duration_ms"},          /* both window rules */
        {{"window.events=0"}, "window.events"},                       /* neither */
        {{"window.bootstrap_events=501"}, "input.max_buffered_events"},
        {{"window.events=501"}, "input.max_buffered_events"},
        {{"window.bootstrap_events=0", "window.bootstrap_until_ms=5", "window.events=600"},
         "input.max_buffered_events"},
        {{"input.min_event_time_ms=5", "input.max_event_time_ms=5"}, "input.min_event_time_ms"},
    };
    char err[512];
    worker_config w;
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        valid_config(&w);
        for (int j = 0; j < 3 && cases[k].x[j]; j++)
            assert_int_equal(worker_config_override(&w, cases[k].x[j], err, sizeof err), 0);
        err[0] = '\0';
        if (worker_config_check(&w, err, sizeof err) != -1)
            fail_msg("case %zu passed the check", k);
        assert_contains(err, cases[k].names);
        worker_config_free(&w);
    }
    /* exactly twice the largest window is enough */
    valid_config(&w);
    assert_int_equal(worker_config_override(&w, "window.bootstrap_events=500", err, sizeof err), 0);
    assert_int_equal(worker_config_check(&w, err, sizeof err), 0);
    /* time rules have no count bound */
    assert_int_equal(worker_config_override(&w, "window.bootstrap_events=0", err, sizeof err), 0);
    assert_int_equal(worker_config_override(&w, "window.bootstrap_until_ms=0", err, sizeof err), 0);
    assert_int_equal(worker_config_override(&w, "window.events=0", err, sizeof err), 0);
    assert_int_equal(worker_config_override(&w, "window.duration_ms=60000", err, sizeof err), 0);
    assert_int_equal(worker_config_check(&w, err, sizeof err), 0);
    worker_config_free(&w);

    /* no bootstrap.servers, no topics */
    worker_config_init(&w);
    assert_int_equal(worker_config_override(&w, "input.topics=t", err, sizeof err), 0);
    assert_int_equal(worker_config_override(&w, "window.bootstrap_events=10", err, sizeof err), 0);
    assert_int_equal(worker_config_override(&w, "window.events=10", err, sizeof err), 0);
    assert_int_equal(worker_config_override(&w, "kafka.group.id=g", err, sizeof err), 0);
    assert_int_equal(worker_config_check(&w, err, sizeof err), -1);
    assert_contains(err, "kafka.bootstrap.servers");
    worker_config_free(&w);
    worker_config_init(&w);
    assert_int_equal(worker_config_override(&w, "kafka.bootstrap.servers=h:1", err, sizeof err), 0);
    assert_int_equal(worker_config_override(&w, "window.bootstrap_events=10", err, sizeof err), 0);
    assert_int_equal(worker_config_override(&w, "window.events=10", err, sizeof err), 0);
    assert_int_equal(worker_config_check(&w, err, sizeof err), -1);
    assert_contains(err, "input.topics");
    assert_int_equal(worker_config_override(&w, "input.topics= , ", err, sizeof err),
                     -1); /* no topic */
    assert_contains(err, "input.topics");
    worker_config_free(&w);
}

/* Secret keys are recognised by name; their values never appear in an error message. */
static void wcfg_secrets(void **state)
{
    (void)state;
    const char *secret[] = {"password",         "sasl.password",
                            "ssl.key.password", "sasl.oauthbearer.client.secret",
                            "sasl.jaas.config", "ssl.key.pem",
                            "SASL.PASSWORD",    "sasl.oauthbearer.token.endpoint.url"};
    for (size_t k = 0; k < sizeof secret / sizeof *secret; k++)
        if (!worker_config_is_secret(secret[k]))
            fail_msg("%s not secret", secret[k]);
    const char *plain[] = {
        "bootstrap.servers", "group.id",        "sasl.username", "user",  "security.protocol",
        "sasl.mechanisms",   "ssl.ca.location", "host",          "topics"};
    for (size_t k = 0; k < sizeof plain / sizeof *plain; k++)
        if (worker_config_is_secret(plain[k]))
            fail_msg("%s secret", plain[k]);

    /* redis.password takes any value; malformed or misplaced assignments carrying one never echo it
     */
    char err[1024], path[512];
    worker_config w;
    worker_config_init(&w);
    assert_int_equal(worker_config_override(&w, "redis.password=hunter2 x;y", err, sizeof err), 0);
    assert_string_equal(w.redis_password, "hunter2 x;y");
    const char *bad[] = {
        "redis_password=hunter2", "redis:password=hunter2",  ".password=hunter2",
        "redis.=hunter2",         "redis.passwd=hunter2",    "kafka.sasl.passwd=hunter2",
        "kafka.=hunter2",         "nosuch.password=hunter2", "redis.password:hunter2"};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        err[0] = '\0';
        assert_int_equal(worker_config_override(&w, bad[k], err, sizeof err), -1);
        assert_true(err[0] != '\0');
        if (strstr(err, "hunter2"))
            fail_msg("-X %s: '%s' shows the value", bad[k], err);
    }
    assert_string_equal(w.redis_password, "hunter2 x;y");
    /* in a file: an error on the password's line or after it never shows the password */
    assert_int_equal(load_text(&w, "[redis]\npassword = hunter2\nport = hunter2port\n", err,
                               sizeof err, path, sizeof path),
                     -1);
    assert_contains(err, "redis.port");
    assert_contains(err, ":3: ");
    assert_int_equal(
        load_text(&w, "[redis]\npasword = hunter2\n", err, sizeof err, path, sizeof path), -1);
    assert_contains(err, "redis.pasword");
    assert_null(strstr(err, "hunter2"));
    worker_config_free(&w);
}

/* ${NAME}, ${NAME:-default} and $${ in values, from the file and from -X. */
static void wcfg_environment(void **state)
{
    (void)state;
    char err[1024], path[512];
    setenv("CCD_T_PASS", "s3cr$t}x", 1);
    setenv("CCD_T_EMPTY", "", 1);
    setenv("CCD_T_HOST", "redis.internal", 1);
    unsetenv("CCD_T_UNSET");
    worker_config w;
    worker_config_init(&w);
    assert_int_equal(load_text(&w,
                               "[redis]\nhost = ${CCD_T_HOST}\npassword = ${CCD_T_PASS}\n"
                               "user = ${CCD_T_UNSET:-svc}${CCD_T_EMPTY:-1}\n"
                               "[input]\ndead_letter_topic = a$b$${CCD_T_HOST}\n",
                               err, sizeof err, path, sizeof path),
                     0);
    assert_string_equal(w.redis_host, "redis.internal");
    assert_string_equal(w.redis_password, "s3cr$t}x"); /* the value is not expanded again */
    assert_string_equal(w.redis_user, "svc1");
    assert_string_equal(w.dead_letter_topic, "a$b${CCD_T_HOST}");
    assert_int_equal(
        worker_config_override(&w, "kafka.sasl.password=${CCD_T_PASS}", err, sizeof err), 0);
    assert_string_equal(kafka_value(&w, "sasl.password"), "s3cr$t}x");
    /* an unset variable is an error naming the key and the variable, never the value */
    assert_int_equal(worker_config_override(&w, "redis.password=${CCD_T_UNSET}", err, sizeof err),
                     -1);
    assert_contains(err, "redis.password");
    assert_contains(err, "CCD_T_UNSET is not set");
    static const char *const malformed[] = {"redis.host=${", "redis.host=${CCD_T_HOST",
                                            "redis.host=${}", "redis.host=${1A}",
                                            "redis.host=${A B}"};
    for (size_t k = 0; k < sizeof malformed / sizeof *malformed; k++) {
        assert_int_equal(worker_config_override(&w, malformed[k], err, sizeof err), -1);
        assert_contains(err, "redis.host: malformed ${...}");
    }
    assert_string_equal(w.redis_host, "redis.internal"); /* untouched by the refusals */
    worker_config_free(&w);
}

/* KEY_file = PATH: the key gets the file's content, one trailing newline dropped; errors name
 * the key and the path, never the content. */
static void wcfg_secret_files(void **state)
{
    (void)state;
    char dir[] = "/tmp/ccd-secret-XXXXXX", file[600], big[600], err[1024], x[1400];
    assert_non_null(mkdtemp(dir));
    snprintf(file, sizeof file, "%s/redis-password", dir);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fputs("hunter2 with spaces\r\n", f);
    fclose(f);
    snprintf(big, sizeof big, "%s/big", dir);
    f = fopen(big, "w");
    assert_non_null(f);
    for (int k = 0; k < 70000; k++)
        fputc('x', f);
    fclose(f);
    setenv("CCD_T_DIR", dir, 1);
    worker_config w;
    worker_config_init(&w);
    assert_int_equal(worker_config_override(&w, "redis.password_file=${CCD_T_DIR}/redis-password",
                                            err, sizeof err),
                     0);
    assert_string_equal(w.redis_password, "hunter2 with spaces");
    snprintf(x, sizeof x, "kafka.sasl.password_file=%s", file);
    assert_int_equal(worker_config_override(&w, x, err, sizeof err), 0);
    assert_string_equal(kafka_value(&w, "sasl.password"), "hunter2 with spaces");
    assert_null(kafka_value(&w, "sasl.password_file"));
    snprintf(x, sizeof x, "redis.password_file=%s/missing", dir);
    assert_int_equal(worker_config_override(&w, x, err, sizeof err), -1);
    assert_contains(err, "redis.password_file");
    assert_contains(err, "/missing");
    snprintf(x, sizeof x, "redis.password_file=%s", big);
    assert_int_equal(worker_config_override(&w, x, err, sizeof err), -1);
    assert_contains(err, "larger than 64 KiB");
    /* the file form of a key that does not exist is refused like the key itself */
    snprintf(x, sizeof x, "redis.pasword_file=%s", file);
    assert_int_equal(worker_config_override(&w, x, err, sizeof err), -1);
    assert_contains(err, "redis.pasword");
    assert_null(strstr(err, "hunter2"));
    /* the schema registry's password from a file, its other keys through -X (dotted keys) */
    snprintf(x, sizeof x, "input.registry.password_file=%s", file);
    assert_int_equal(worker_config_override(&w, x, err, sizeof err), 0);
    assert_string_equal(w.registry_password, "hunter2 with spaces");
    worker_config_free(&w);
    unlink(file);
    unlink(big);
    rmdir(dir);
}

/* [input] registry.*: defaults, -X, values checked, the secret hidden in errors. */
static void wcfg_registry(void **state)
{
    (void)state;
    char err[1024];
    worker_config w;
    worker_config_init(&w);
    assert_string_equal(w.registry_url, "");
    assert_int_equal(w.registry_timeout_ms, 5000);
    assert_int_equal(w.registry_missing_ttl_ms, 60000);
    assert_int_equal(worker_config_override(
                         &w, "input.registry.url=https://sr:8081/apis/ccompat/v7", err, sizeof err),
                     0);
    assert_string_equal(w.registry_url, "https://sr:8081/apis/ccompat/v7");
    assert_int_equal(worker_config_set(&w, "input", "registry.username", "ccd", err, sizeof err),
                     0);
    assert_string_equal(w.registry_username, "ccd");
    assert_int_equal(
        worker_config_set(&w, "input", "registry.ca_location", "/etc/ca.pem", err, sizeof err), 0);
    assert_string_equal(w.registry_ca_file, "/etc/ca.pem");
    assert_int_equal(worker_config_override(&w, "input.registry.timeout_ms=250", err, sizeof err),
                     0);
    assert_int_equal(w.registry_timeout_ms, 250);
    assert_int_equal(worker_config_override(&w, "input.registry.missing_ttl_ms=0", err, sizeof err),
                     0);
    assert_int_equal(w.registry_missing_ttl_ms, 0);
    assert_int_equal(worker_config_override(&w, "input.registry.url=ftp://sr", err, sizeof err),
                     -1);
    assert_contains(err, "input.registry.url");
    assert_int_equal(worker_config_override(&w, "input.registry.timeout_ms=0", err, sizeof err),
                     -1);
    assert_int_equal(worker_config_override(&w, "input.registry.colour=red", err, sizeof err), -1);
    assert_contains(err, "unknown key");
    assert_int_equal(worker_config_set(&w, "input", "registry.password", "s3cret", err, sizeof err),
                     0);
    assert_string_equal(w.registry_password, "s3cret");
    assert_true(worker_config_is_secret("registry.password"));
    worker_config_free(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(wcfg_shipped_files),
        cmocka_unit_test(wcfg_file_errors),
        cmocka_unit_test(wcfg_kafka_passthrough),
        cmocka_unit_test(wcfg_overrides),
        cmocka_unit_test(wcfg_check),
        cmocka_unit_test(wcfg_secrets),
        cmocka_unit_test(wcfg_environment),
        cmocka_unit_test(wcfg_secret_files),
        cmocka_unit_test(wcfg_registry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
