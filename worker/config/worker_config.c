/* worker_config: INI (libinih) + -X overrides -> worker_config. See worker_config.h.
 *
 * Strings are owned (strdup'd) by the config and freed by worker_config_free. The [ccd*] sections
 * are handed to ccd_config_set, so the worker and ccd-offline read the engine's keys identically.
 */
#include "worker_config.h"

#include <errno.h>
#include <ini.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ccd_config.h"
#include "config_value.h"
#include "cli.h"

static int set_str(char **dst, const char *v)
{
    char *s = strdup(v);
    if (!s)
        return -1;
    free(*dst);
    *dst = s;
    return 0;
}

static bool contains_ci(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++)
        if (!strncasecmp(hay, needle, n))
            return true;
    return false;
}

bool worker_config_is_secret(const char *key)
{
    static const char *const words[] = {"password",           "secret",    "jaas",
                                        "ssl.key.pem",        "private",   "token",
                                        "oauthbearer.config", "credential"};
    for (size_t i = 0; i < sizeof words / sizeof *words; i++)
        if (contains_ci(key, words[i]))
            return true;
    return false;
}

void worker_config_init(worker_config *w)
{
    memset(w, 0, sizeof *w);
    w->format = strdup("auto");
    w->reader_schema = strdup("schemas/interaction.avsc");
    w->dead_letter_topic = strdup("");
    w->default_model = strdup("");
    w->min_event_time_ms = 0;               /* 1970 */
    w->max_event_time_ms = 4102444800000LL; /* 2100-01-01 */
    w->max_buffered_events = 2000000;
    w->on_offset_reset = OFFSETS_FAIL;
    w->bootstrap_events = 0;
    w->bootstrap_until_ms = INT64_MIN;
    w->window_events = 0;
    w->window_duration_ms = 0;
    w->idle_ms = 30000;
    w->holdout_fraction = 0.1;
    w->holdout_seed = 0;
    ccd_config_yelp(&w->ccd);
    w->redis_host = strdup("127.0.0.1");
    w->redis_port = 6379;
    w->redis_user = strdup("");
    w->redis_password = strdup("");
    w->redis_db = 0;
    w->redis_prefix = strdup("ccd");
    w->redis_keep_versions = 3;
    w->redis_timeout_ms = 5000;
    w->redis_publish = true;
    w->checkpoint_dir = strdup("checkpoints");
    w->checkpoint_keep = 2;
    w->checkpoint_redis_chunk_bytes = 64 << 20;
    w->metrics_listen = strdup("");
    w->registry_url = strdup("");
    w->registry_username = strdup("");
    w->registry_password = strdup("");
    w->registry_ca_file = strdup("");
    w->registry_timeout_ms = 5000;
    w->registry_missing_ttl_ms = 60000;
    w->metrics_health_timeout_ms = 20000;
    w->log_level = 2;
    w->log_json = false;
    w->threads = 0;
    w->train = true;
    w->shutdown_timeout_ms = 25000; /* Kubernetes' grace period is 30 s */
    w->fastpath_enabled = true;
    w->fastpath_epochs = 2;
    w->fastpath_bootstrap_epochs = 5;
    w->fastpath_bootstrap_lr = 0.01f;
    w->role_owner = true;
    w->teachers_jobs_topic = strdup("ccd-teacher-jobs");
    w->teachers_results_topic = strdup("ccd-teacher-results");
}

void worker_config_free(worker_config *w)
{
    for (int i = 0; i < w->n_kafka; i++)
        free(w->kafka[i].key), free(w->kafka[i].value);
    for (int i = 0; i < w->n_topics; i++)
        free(w->topics[i]);
    for (int i = 0; i < w->n_schemas; i++)
        free(w->schema_paths[i]);
    char **strs[] = {&w->format,          &w->reader_schema,       &w->dead_letter_topic,
                     &w->default_model,   &w->redis_host,          &w->redis_user,
                     &w->redis_password,  &w->redis_prefix,        &w->checkpoint_dir,
                     &w->metrics_listen,  &w->teachers_jobs_topic, &w->teachers_results_topic,
                     &w->registry_url,    &w->registry_username,   &w->registry_password,
                     &w->registry_ca_file};
    for (size_t i = 0; i < sizeof strs / sizeof *strs; i++)
        free(*strs[i]);
    memset(w, 0, sizeof *w);
}

/* librdkafka validates the property: the same call the consumer will make, on a scratch conf. */
static int kafka_key(worker_config *w, const char *key, const char *v, char *err, size_t errlen)
{
    char msg[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_res_t r = rd_kafka_conf_set(conf, key, v, msg, sizeof msg);
    rd_kafka_conf_destroy(conf);
    if (r != RD_KAFKA_CONF_OK) {
        snprintf(err, errlen, "kafka.%s: %s", key, msg);
        return -1;
    }
    for (int i = 0; i < w->n_kafka; i++)
        if (!strcmp(w->kafka[i].key, key))
            return set_str(&w->kafka[i].value, v);
    if (w->n_kafka == WCFG_MAX_KAFKA) {
        snprintf(err, errlen, "kafka.%s: more than %d kafka keys", key, WCFG_MAX_KAFKA);
        return -1;
    }
    w->kafka[w->n_kafka].key = strdup(key);
    w->kafka[w->n_kafka].value = strdup(v);
    if (!w->kafka[w->n_kafka].key || !w->kafka[w->n_kafka].value)
        return -1;
    w->n_kafka++;
    return 0;
}

static int set_topics(worker_config *w, const char *v)
{
    for (int i = 0; i < w->n_topics; i++)
        free(w->topics[i]);
    w->n_topics = 0;
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", v) >= (int)sizeof buf)
        return -1;
    char *save = NULL;
    for (char *t = strtok_r(buf, ", \t", &save); t; t = strtok_r(NULL, ", \t", &save)) {
        if (w->n_topics == WCFG_MAX_TOPICS || strlen(t) > 249)
            return -1;
        if (!(w->topics[w->n_topics++] = strdup(t)))
            return -1;
    }
    return w->n_topics > 0 ? 0 : -1;
}

/* [input] registry.*: the schema registry (schema_registry.h). */
static int registry_key(worker_config *w, const char *key, const char *v)
{
    if (!strcmp(key, "url")) {
        if (*v && strncmp(v, "http://", 7) && strncmp(v, "https://", 8))
            return -1;
        return set_str(&w->registry_url, v);
    }
    if (!strcmp(key, "username"))
        return set_str(&w->registry_username, v);
    if (!strcmp(key, "password")) {
        if (w->registry_password)
            config_value_wipe(w->registry_password);
        return set_str(&w->registry_password, v);
    }
    if (!strcmp(key, "ca_location")) /* not ca_file: KEY_file reads a file into KEY */
        return set_str(&w->registry_ca_file, v);
    int64_t n;
    if (!strcmp(key, "timeout_ms")) {
        if (cli_parse_int64(v, 1, 600000, &n) != 0)
            return -1;
        w->registry_timeout_ms = (int)n;
        return 0;
    }
    if (!strcmp(key, "missing_ttl_ms"))
        return cli_parse_int64(v, 0, INT64_C(1) << 40, &w->registry_missing_ttl_ms);
    return -2;
}

static int input_key(worker_config *w, const char *key, const char *v)
{
    if (!strncmp(key, "registry.", 9))
        return registry_key(w, key + 9, v);
    if (!strcmp(key, "topics"))
        return set_topics(w, v);
    if (!strcmp(key, "format")) {
        if (strcmp(v, "auto") && strcmp(v, "raw") && strcmp(v, "confluent"))
            return -1;
        return set_str(&w->format, v);
    }
    if (!strcmp(key, "reader_schema"))
        return *v ? set_str(&w->reader_schema, v) : -1;
    if (!strncmp(key, "schema.", 7)) {
        int64_t id;
        if (cli_parse_int64(key + 7, 0, INT32_MAX, &id) != 0 || !*v)
            return -1;
        for (int i = 0; i < w->n_schemas; i++)
            if (w->schema_ids[i] == (int32_t)id)
                return set_str(&w->schema_paths[i], v);
        if (w->n_schemas == WCFG_MAX_SCHEMAS)
            return -1;
        w->schema_ids[w->n_schemas] = (int32_t)id;
        w->schema_paths[w->n_schemas] = NULL;
        if (set_str(&w->schema_paths[w->n_schemas], v) != 0)
            return -1;
        w->n_schemas++;
        return 0;
    }
    if (!strcmp(key, "dead_letter_topic"))
        return set_str(&w->dead_letter_topic, v);
    if (!strcmp(key, "default_model"))
        return set_str(&w->default_model, v);
    if (!strcmp(key, "min_event_time_ms"))
        return cli_parse_int64(v, INT64_MIN, INT64_MAX, &w->min_event_time_ms);
    if (!strcmp(key, "max_event_time_ms"))
        return cli_parse_int64(v, INT64_MIN, INT64_MAX, &w->max_event_time_ms);
    if (!strcmp(key, "max_buffered_events"))
        return cli_parse_int64(v, 1000, INT64_C(1) << 40, &w->max_buffered_events);
    if (!strcmp(key, "on_offset_reset"))
        return offset_reset_policy_parse(v, &w->on_offset_reset);
    return -2;
}

static int window_key(worker_config *w, const char *key, const char *v)
{
    if (!strcmp(key, "bootstrap_events"))
        return cli_parse_int64(v, 0, INT64_C(1) << 40, &w->bootstrap_events);
    if (!strcmp(key, "bootstrap_until_ms"))
        return *v ? cli_parse_int64(v, INT64_MIN + 1, INT64_MAX, &w->bootstrap_until_ms)
                  : (w->bootstrap_until_ms = INT64_MIN, 0);
    if (!strcmp(key, "events"))
        return cli_parse_int64(v, 0, INT64_C(1) << 40, &w->window_events);
    if (!strcmp(key, "duration_ms"))
        return cli_parse_int64(v, 0, INT64_C(1) << 50, &w->window_duration_ms);
    if (!strcmp(key, "idle_ms"))
        return cli_parse_int64(v, 0, INT64_C(1) << 40, &w->idle_ms);
    return -2;
}

static int holdout_key(worker_config *w, const char *key, const char *v)
{
    if (!strcmp(key, "fraction")) {
        double x;
        if (cli_parse_double(v, 0.0, 1.0, &x) != 0 || x == 1.0)
            return -1;
        w->holdout_fraction = x;
        return 0;
    }
    if (!strcmp(key, "seed")) {
        int64_t s;
        if (cli_parse_int64(v, 0, INT64_MAX, &s) != 0)
            return -1;
        w->holdout_seed = (uint64_t)s;
        return 0;
    }
    return -2;
}

static int redis_key(worker_config *w, const char *key, const char *v)
{
    if (!strcmp(key, "host"))
        return *v ? set_str(&w->redis_host, v) : -1;
    if (!strcmp(key, "port"))
        return ccd_parse_int(v, 1, 65535, &w->redis_port);
    if (!strcmp(key, "user"))
        return set_str(&w->redis_user, v);
    if (!strcmp(key, "password"))
        return set_str(&w->redis_password, v);
    if (!strcmp(key, "db"))
        return ccd_parse_int(v, 0, 1 << 16, &w->redis_db);
    if (!strcmp(key, "prefix")) {
        for (const char *p = v; *p; p++)
            if (*p == '{' || *p == '}' || *p == ' ' || (unsigned char)*p < 0x20)
                return -1;
        return *v ? set_str(&w->redis_prefix, v) : -1;
    }
    if (!strcmp(key, "keep_versions"))
        return ccd_parse_int(v, 1, 1000, &w->redis_keep_versions);
    if (!strcmp(key, "timeout_ms"))
        return ccd_parse_int(v, 10, 600000, &w->redis_timeout_ms);
    if (!strcmp(key, "publish"))
        return ccd_parse_bool(v, &w->redis_publish);
    return -2;
}

static int fastpath_key(worker_config *w, const char *key, const char *v)
{
    if (!strcmp(key, "enabled"))
        return ccd_parse_bool(v, &w->fastpath_enabled);
    if (!strcmp(key, "epochs"))
        return ccd_parse_int(v, 1, 1000, &w->fastpath_epochs);
    if (!strcmp(key, "bootstrap_epochs"))
        return ccd_parse_int(v, 1, 1000, &w->fastpath_bootstrap_epochs);
    if (!strcmp(key, "bootstrap_lr"))
        return cli_parse_float(v, 0.0f, 10.0f, &w->fastpath_bootstrap_lr);
    return -2;
}

/* "owner", "teacher" or both, comma-separated (spaces allowed), at least one. */
static int roles_key(worker_config *w, const char *v)
{
    bool owner = false, teacher = false;
    const char *p = v;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        size_t n = strcspn(p, ", ");
        if (n == 5 && !strncmp(p, "owner", 5))
            owner = true;
        else if (n == 7 && !strncmp(p, "teacher", 7))
            teacher = true;
        else if (n > 0)
            return -1;
        p += n;
    }
    if (!owner && !teacher)
        return -1;
    w->role_owner = owner;
    w->role_teacher = teacher;
    return 0;
}

/* A Kafka topic name: 1..249 of [A-Za-z0-9._-] ("" allowed where empty is meaningful). */
static int topic_value(char **dst, const char *v, bool empty_ok)
{
    size_t n = strlen(v);
    if ((n == 0 && !empty_ok) || n > 249)
        return -1;
    for (const char *p = v; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == '-'))
            return -1;
    return set_str(dst, v);
}

static int teachers_key(worker_config *w, const char *key, const char *v)
{
    if (!strcmp(key, "mode")) {
        if (strcmp(v, "local") && strcmp(v, "kafka"))
            return -1;
        w->teachers_kafka = !strcmp(v, "kafka");
        return 0;
    }
    if (!strcmp(key, "jobs_topic"))
        return topic_value(&w->teachers_jobs_topic, v, false);
    if (!strcmp(key, "results_topic"))
        return topic_value(&w->teachers_results_topic, v, true);
    if (!strcmp(key, "jobs_partitions"))
        return ccd_parse_int(v, 0, 10000, &w->teachers_jobs_partitions);
    return -2;
}

static int other_key(worker_config *w, const char *section, const char *key, const char *v)
{
    if (!strcmp(section, "input"))
        return input_key(w, key, v);
    if (!strcmp(section, "window"))
        return window_key(w, key, v);
    if (!strcmp(section, "holdout"))
        return holdout_key(w, key, v);
    if (!strcmp(section, "redis"))
        return redis_key(w, key, v);
    if (!strcmp(section, "checkpoint")) {
        if (!strcmp(key, "dir"))
            return *v ? set_str(&w->checkpoint_dir, v) : -1;
        if (!strcmp(key, "keep"))
            return ccd_parse_int(v, 1, 1000, &w->checkpoint_keep);
        if (!strcmp(key, "redis_chunk_bytes")) /* 4 KiB .. 512 MiB (Redis's default bulk limit) */
            return ccd_parse_int(v, 4096, 512 << 20, &w->checkpoint_redis_chunk_bytes);
        if (!strcmp(key, "store")) {
            if (strcmp(v, "dir") && strcmp(v, "redis"))
                return -1;
            w->checkpoint_redis = !strcmp(v, "redis");
            return 0;
        }
        return -2;
    }
    if (!strcmp(section, "metrics")) {
        if (!strcmp(key, "listen"))
            return set_str(&w->metrics_listen, v);
        if (!strcmp(key, "health_timeout_ms"))
            return cli_parse_int64(v, 1000, 3600000, &w->metrics_health_timeout_ms);
        return -2;
    }
    if (!strcmp(section, "log")) {
        if (!strcmp(key, "level")) {
            static const char *const names[] = {"error", "warn", "info", "debug"};
            for (int i = 0; i < 4; i++)
                if (!strcasecmp(v, names[i]))
                    return w->log_level = i, 0;
            return -1;
        }
        if (!strcmp(key, "format")) {
            if (!strcmp(v, "text") || !strcmp(v, "json"))
                return w->log_json = !strcmp(v, "json"), 0;
            return -1;
        }
        return -2;
    }
    if (!strcmp(section, "fastpath"))
        return fastpath_key(w, key, v);
    if (!strcmp(section, "worker")) {
        if (!strcmp(key, "threads"))
            return ccd_parse_int(v, 0, 1024, &w->threads);
        if (!strcmp(key, "train"))
            return ccd_parse_bool(v, &w->train);
        if (!strcmp(key, "shutdown_timeout_ms")) /* at least 1 s: the close needs its reserve */
            return ccd_parse_int(v, 1000, 3600000, &w->shutdown_timeout_ms);
        if (!strcmp(key, "fence_grace_ms"))
            return cli_parse_int64(v, 0, INT64_C(1) << 40, &w->fence_grace_ms);
        if (!strcmp(key, "roles"))
            return roles_key(w, v);
        return -2;
    }
    if (!strcmp(section, "teachers"))
        return teachers_key(w, key, v);
    return -3;
}

/* A key with its final value (config_value.h already applied). */
static int set_resolved(worker_config *w, const char *section, const char *key, const char *value,
                        char *err, size_t errlen)
{
    if (!strcmp(section, "kafka"))
        return kafka_key(w, key, value, err, errlen);
    int r = ccd_config_set(&w->ccd, section, key, value, err, errlen);
    if (r == 1)
        return 0;
    if (r == -1)
        return -1;
    r = other_key(w, section, key, value);
    if (r == 0)
        return 0;
    const char *shown = worker_config_is_secret(key) ? "(hidden)" : value;
    if (r == -1)
        snprintf(err, errlen, "%s.%s: bad value '%s'", section, key, shown);
    else if (r == -2)
        snprintf(err, errlen, "%s.%s: unknown key", section, key);
    else
        snprintf(err, errlen, "%s.%s: unknown section [%s]", section, key, section);
    return -1;
}

int worker_config_set(worker_config *w, const char *section, const char *key, const char *value,
                      char *err, size_t errlen)
{
    char why[400], *v;
    if (config_value_expand(value, &v, why, sizeof why) != 0) {
        snprintf(err, errlen, "%s.%s: %s", section, key, why);
        return -1;
    }
    int rc;
    if (config_value_is_file_key(key)) {
        /* KEY_file = PATH: KEY gets the file's content (a mounted secret) */
        char base[256], *content;
        snprintf(base, sizeof base, "%.*s", (int)strlen(key) - 5, key);
        rc = config_value_read_file(v, &content, why, sizeof why);
        if (rc != 0)
            snprintf(err, errlen, "%s.%s: %s", section, key, why);
        else {
            rc = set_resolved(w, section, base, content, err, errlen);
            config_value_wipe(content);
            free(content);
        }
    } else {
        rc = set_resolved(w, section, key, v, err, errlen);
    }
    config_value_wipe(v); /* it may have been a secret from the environment */
    free(v);
    return rc;
}

typedef struct {
    worker_config *w;
    char msg[600];
    int failed;
} load_ctx;

static int on_entry(void *user, const char *section, const char *key, const char *value)
{
    load_ctx *l = user;
    if (l->failed)
        return 1;
    if (worker_config_set(l->w, section, key, value, l->msg, sizeof l->msg) != 0) {
        l->failed = 1;
        return 0; /* inih reports the line */
    }
    return 1;
}

int worker_config_load(worker_config *w, const char *path, char *err, size_t errlen)
{
    load_ctx l = {.w = w};
    bool too_long;
    int line = ccd_ini_parse(path, on_entry, &l, &too_long);
    if (line < 0) {
        snprintf(err, errlen, "%s: cannot open: %s", path,
                 line == -1 ? strerror(errno) : "out of memory");
        return -1;
    }
    if (line > 0) {
        snprintf(err, errlen, "%s:%d: %s", path, line,
                 too_long   ? "line too long"
                 : l.failed ? l.msg
                            : "syntax error");
        return -1;
    }
    return 0;
}

int worker_config_override(worker_config *w, const char *assignment, char *err, size_t errlen)
{
    const char *eq = strchr(assignment, '=');
    /* errors show the name only (what precedes '='): the value may be a secret */
    if (!eq) {
        if (worker_config_is_secret(assignment))
            snprintf(err, errlen, "-X (hidden): expected section.key=value");
        else
            snprintf(err, errlen, "-X %s: expected section.key=value", assignment);
        return -1;
    }
    int name_len = (int)(eq - assignment);
    char section[256], key[256];
    /* A longer name would be cut to fit the buffers, and the cut name might no longer say that
     * it is a secret (worker_config_is_secret): refuse it whole (fuzz_config found this). */
    if (name_len >= (int)sizeof key) {
        snprintf(err, errlen, "-X %.40s...: name longer than %zu bytes", assignment,
                 sizeof key - 1);
        return -1;
    }
    if (!strncmp(assignment, "kafka.", 6)) {
        /* librdkafka keys contain dots themselves: everything after "kafka." is the key */
        snprintf(section, sizeof section, "kafka");
        snprintf(key, sizeof key, "%.*s", (int)(eq - assignment - 6), assignment + 6);
    } else {
        const char *dot = NULL;
        for (const char *p = assignment; p < eq; p++)
            if (*p == '.')
                dot = p;
        /* [input] schema.<id> and registry.*: the key has a dot */
        if (!strncmp(assignment, "input.schema.", 13) ||
            !strncmp(assignment, "input.registry.", 15))
            dot = assignment + 5;
        if (!dot || dot == assignment || dot + 1 == eq) {
            snprintf(err, errlen, "-X %.*s=...: expected section.key=value", name_len, assignment);
            return -1;
        }
        snprintf(section, sizeof section, "%.*s", (int)(dot - assignment), assignment);
        snprintf(key, sizeof key, "%.*s", (int)(eq - dot - 1), dot + 1);
    }
    if (!key[0]) {
        snprintf(err, errlen, "-X %.*s=...: empty key", name_len, assignment);
        return -1;
    }
    return worker_config_set(w, section, key, eq + 1, err, errlen);
}

int worker_config_check(const worker_config *w, char *err, size_t errlen)
{
    bool has_bootstrap = false;
    for (int i = 0; i < w->n_kafka; i++)
        if (!strcmp(w->kafka[i].key, "bootstrap.servers"))
            has_bootstrap = true;
    if (!has_bootstrap) {
        snprintf(err, errlen, "kafka.bootstrap.servers: not set");
        return -1;
    }
    if (w->role_teacher && !w->teachers_kafka) {
        snprintf(err, errlen,
                 "worker.roles: the teacher role needs teachers.mode = kafka (it runs the jobs "
                 "that mode produces)");
        return -1;
    }
    if (!w->role_owner)
        return 0; /* a teacher-only worker reads no input */
    if (w->n_topics == 0) {
        snprintf(err, errlen, "input.topics: not set");
        return -1;
    }
    if ((w->bootstrap_events > 0) == (w->bootstrap_until_ms != INT64_MIN)) {
        snprintf(err, errlen,
                 "window.bootstrap_events / window.bootstrap_until_ms: set exactly one");
        return -1;
    }
    if ((w->window_events > 0) == (w->window_duration_ms > 0)) {
        snprintf(err, errlen, "window.events / window.duration_ms: set exactly one");
        return -1;
    }
    /* a count window that can never fill below the buffer bound would pause the input forever */
    int64_t biggest =
        w->bootstrap_events > w->window_events ? w->bootstrap_events : w->window_events;
    if (biggest > 0 && 2 * biggest > w->max_buffered_events) {
        snprintf(
            err, errlen,
            "input.max_buffered_events: %lld is less than twice the largest window (%lld events)",
            (long long)w->max_buffered_events, (long long)biggest);
        return -1;
    }
    if (w->min_event_time_ms >= w->max_event_time_ms) {
        snprintf(err, errlen, "input.min_event_time_ms: must be below input.max_event_time_ms");
        return -1;
    }
    return 0;
}
