/* worker_config: the whole ccd-worker configuration from one INI file plus -X overrides.
 *
 * Sections (every key is documented in the files in configs/):
 *   [kafka]       any librdkafka property, passed through untouched (kcat's -X): bootstrap.servers,
 *                 group.id, security.protocol, sasl.*, ssl.*, ... Each one is tried on a scratch
 *                 librdkafka config while loading, so a typo fails start-up naming kafka.<key>.
 *   [input]       topics, format, reader_schema, schema.<id> (Confluent id -> writer schema file),
 *                 dead_letter_topic, default_model, min_event_time_ms, max_event_time_ms,
 *                 max_buffered_events, on_offset_reset (fail | skip | retrain: offset_rules.h),
 *                 registry.url, registry.username, registry.password, registry.ca_location,
 *                 registry.timeout_ms, registry.missing_ttl_ms (schema_registry.h)
 *   [window]      bootstrap_events | bootstrap_until_ms, events | duration_ms, idle_ms
 *   [holdout]     fraction, seed
 *   [ccd*]        the engine (ccd_config.h)
 *   [redis]       host, port, user, password, db, prefix, keep_versions, timeout_ms, publish
 *   [checkpoint]  store (dir | redis), dir, keep, redis_chunk_bytes
 *   [metrics]     listen (host:port of the Prometheus endpoint and the probes; empty: off),
 *                 health_timeout_ms
 *   [log]         level (error|warn|info|debug), format (text|json)
 *   [fastpath]    enabled, epochs, bootstrap_epochs, bootstrap_lr (worker/fastpath.h: provisional
 *                 students while a model's previous block is still in the trainer)
 *   [worker]      threads, train (false: consume and count only, for ingest benchmarks),
 *                 shutdown_timeout_ms (SIGTERM to exit, however long the block in training),
 *                 fence_grace_ms (a fenced partition still assigned after it: fatal),
 *                 roles (owner | teacher | owner,teacher: teacher_jobs.h)
 *   [teachers]    mode (local | kafka: where a block's teacher updates run), jobs_topic,
 *                 jobs_partitions, results_topic (teacher_jobs.h, docs/design-teacher-jobs.md)
 * Any value may use ${NAME} / ${NAME:-default} (the environment), and any key may be given as
 * KEY_file = PATH (the content of a file, e.g. a mounted secret): config_value.h.
 * -X overrides use the same names: -X kafka.bootstrap.servers=H:P (everything after "kafka." is
 * the librdkafka key), -X window.events=1000, -X ccd.student.epochs=3. An unknown section or key,
 * or a bad value, is an error naming section.key (and FILE:LINE for the file).
 *
 * worker/config/ holds the configuration parsers: this one, and ccd_config.h for the engine's
 * [ccd*] sections (which ccd-offline reads on its own). */
#ifndef CCD_WORKER_WORKER_CONFIG_H
#define CCD_WORKER_WORKER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ccd.h"
#include "offset_rules.h"

#define WCFG_MAX_KAFKA 128
#define WCFG_MAX_SCHEMAS 64
#define WCFG_MAX_TOPICS 16

typedef struct {
    char *key, *value;
} wcfg_pair;

typedef struct {
    /* [kafka] */
    int n_kafka;
    wcfg_pair kafka[WCFG_MAX_KAFKA];
    /* [input] */
    int n_topics;
    char *topics[WCFG_MAX_TOPICS];
    char *format;        /* auto | raw | confluent */
    char *reader_schema; /* path */
    int n_schemas;
    int32_t schema_ids[WCFG_MAX_SCHEMAS];
    char *schema_paths[WCFG_MAX_SCHEMAS];
    char *dead_letter_topic; /* "" disables (bad records are then only counted and logged) */
    char *default_model;     /* model for messages without a key ("" : dead-letter them) */
    int64_t min_event_time_ms, max_event_time_ms;
    int64_t max_buffered_events;
    offset_reset_policy on_offset_reset; /* what to do when a partition's offsets moved back */
    char *registry_url;                  /* "" : no schema registry (only the schema.<id> files) */
    char *registry_username, *registry_password, *registry_ca_file;
    int registry_timeout_ms;
    int64_t registry_missing_ttl_ms;
    /* [window] */
    int64_t bootstrap_events;   /* 0: by time */
    int64_t bootstrap_until_ms; /* INT64_MIN: by count */
    int64_t window_events;      /* 0: by time */
    int64_t window_duration_ms;
    int64_t idle_ms; /* 0: never close on idleness */
    /* [holdout] */
    double holdout_fraction;
    uint64_t holdout_seed;
    /* [ccd*] */
    ccd_config ccd;
    /* [redis] */
    char *redis_host;
    int redis_port;
    char *redis_user, *redis_password;
    int redis_db;
    char *redis_prefix;
    int redis_keep_versions;
    int redis_timeout_ms;
    bool redis_publish;
    /* [checkpoint] */
    char *checkpoint_dir;
    bool checkpoint_redis; /* store = redis: checkpoints in Redis ([redis] connection) */
    int checkpoint_keep;
    int checkpoint_redis_chunk_bytes; /* store = redis: the largest chunk of a checkpoint */
    /* [metrics] */
    char *metrics_listen;
    int64_t metrics_health_timeout_ms; /* /healthz: 503 after this long without a snapshot */
    /* [log] */
    int log_level; /* 0 error, 1 warn, 2 info, 3 debug */
    bool log_json;
    /* [worker] */
    int threads; /* 0: all cores */
    bool train;
    int shutdown_timeout_ms; /* stop request -> exit, at most (design-fencing.md section 5) */
    int64_t fence_grace_ms;  /* 0: kafka session.timeout.ms (librdkafka's 45000) + 15000 */
    /* [fastpath] (worker/fastpath.h) */
    bool fastpath_enabled;
    int fastpath_epochs;           /* fine-tune epochs of a provisional student (continued) */
    int fastpath_bootstrap_epochs; /* epochs of the bootstrap window's student (from scratch) */
    float fastpath_bootstrap_lr;   /* its learning rate (0: ccd.student.lr) */
    bool role_owner;               /* consume the input topics and train blocks (the default) */
    bool role_teacher;             /* run teacher jobs from teachers.jobs_topic */
    /* [teachers] */
    bool teachers_kafka;          /* mode = kafka: teacher updates as jobs (teacher_jobs.h) */
    char *teachers_jobs_topic;    /* "ccd-teacher-jobs" */
    char *teachers_results_topic; /* "ccd-teacher-results"; "" : no result messages */
    int teachers_jobs_partitions; /* > 0: create the jobs topic with so many when missing */
} worker_config;

/* Defaults: see configs/worker.ini. */
void worker_config_init(worker_config *w);
void worker_config_free(worker_config *w);

/* Apply one section/key/value. Returns 0 or -1 with err naming section.key. */
int worker_config_set(worker_config *w, const char *section, const char *key, const char *value,
                      char *err, size_t errlen);
/* A whole INI file: 0, or -1 with err = "FILE:LINE: ...". */
int worker_config_load(worker_config *w, const char *path, char *err, size_t errlen);
/* -X section.key=value. */
int worker_config_override(worker_config *w, const char *assignment, char *err, size_t errlen);
/* Cross-key checks after everything is applied (windows defined, topics given, ...). */
int worker_config_check(const worker_config *w, char *err, size_t errlen);

/* True for keys whose values must never be printed (passwords, secrets, keys). */
bool worker_config_is_secret(const char *key);

#endif
