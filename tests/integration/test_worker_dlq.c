/* The worker against the real broker and Redis with hostile input: valid Interaction events for
 * one model are interleaved with 19 malformed records of different kinds (truncated, bad
 * framing, unknown schema id, absurd lengths, wrong union branches, empty or oversized or
 * control-character ids, absurd timestamps, bad weights, trailing bytes, missing or unusable
 * keys). The worker must dead-letter each one with the original key and value and a reason
 * header, keep going, and fold exactly the valid events into its blocks (checked through the
 * published version's meta in Redis). */
#include <hiredis/hiredis.h>
#include <math.h>
#include <stdbool.h>

#include "avro_bytes.h"
#include "live_version.h"
#include "worker_harness.h"

#define N_VALID 600
#define BLOCK 300

/* A raw record without event_type; weight NAN means "absent". */
static void record(avro_bytes *o, const char *user, const char *item, int64_t t, float weight)
{
    avro_put_interaction(o, user, item, t, NULL, !isnan(weight), weight);
}

typedef struct {
    const char *key;
    avro_bytes value;
    const char *reason; /* expected substring of the ccd.error header ("" = any) */
    int seen;
} bad_record;

static bad_record bad[32];
static int n_bad;

static bad_record *add_bad(const char *key, const char *reason)
{
    bad_record *r = &bad[n_bad++];
    r->key = key;
    r->reason = reason;
    r->value.n = 0;
    return r;
}

static void make_bad_records(void)
{
    const int64_t t = 1700000000000LL;
    bad_record *r;
    char id[400];
    r = add_bad("m1", "trunc");
    record(&r->value, "bad-trunc", "i1", t, NAN);
    r->value.n -= 5;
    r = add_bad("m1", "unknown schema id");
    avro_put_confluent(&r->value, 99);
    record(&r->value, "bad-schema", "i1", t, NAN);
    r = add_bad("m1", ""); /* Confluent frame too short */
    r->value.b[0] = 0, r->value.b[1] = 0, r->value.n = 2;
    r = add_bad("m1", ""); /* a string length of 2^40 */
    avro_put_long(&r->value, INT64_C(1) << 40);
    avro_put_string(&r->value, "x", 1);
    r = add_bad("m1", ""); /* a negative length */
    avro_put_long(&r->value, -7);
    r = add_bad("m1", ""); /* union branch 7 for event_type: wrong type */
    record(&r->value, "bad-union", "i1", t, NAN);
    r->value.b[r->value.n - 2] = 14;
    r = add_bad("m1", ""); /* empty user id: its first byte is 0x00, so auto mode reads a
                            * Confluent frame with a nonsense schema id; refused either way */
    record(&r->value, "", "i1", t, NAN);
    r = add_bad("m1", "item_id"); /* empty item id */
    record(&r->value, "bad-noitem", "", t, NAN);
    r = add_bad("m1", "user_id"); /* control character */
    record(&r->value, "bad\x01user", "i1", t, NAN);
    r = add_bad("m1", ""); /* id longer than 256 bytes */
    memset(id, 'u', 300);
    id[300] = '\0';
    record(&r->value, id, "i1", t, NAN);
    r = add_bad("m1", "event_time"); /* year 3000 */
    record(&r->value, "bad-future", "i1", 32503680000000LL, NAN);
    r = add_bad("m1", "event_time"); /* before 1970 */
    record(&r->value, "bad-past", "i1", -5, NAN);
    r = add_bad("m1", "weight"); /* NaN weight: written as a present float */
    avro_put_interaction(&r->value, "bad-nan", "i1", t, NULL, true, NAN);
    r = add_bad("m1", "weight"); /* negative weight */
    record(&r->value, "bad-neg", "i1", t, -2.0f);
    r = add_bad("m1", "trailing"); /* trailing bytes */
    record(&r->value, "bad-trail", "i1", t, NAN);
    r->value.b[r->value.n++] = 0x42;
    r = add_bad("m1", ""); /* oversized value (70 kB id) */
    avro_put_long(&r->value, 70000);
    memset(r->value.b + r->value.n, 'z', 70000);
    r->value.n += 70000;
    r = add_bad(NULL, "key"); /* no key: no model */
    record(&r->value, "bad-nokey", "i1", t, NAN);
    r = add_bad("../etc", "model id"); /* a key that cannot be a model id */
    record(&r->value, "bad-key", "i1", t, NAN);
    r = add_bad("m1", ""); /* empty value */
}

/* N_VALID events for model m1 on partition 0, the bad records spread among them (keyless ones on
 * partition 1). */
static void produce_stream(const char *bootstrap, const char *topic)
{
    rd_kafka_t *p = harness_producer(bootstrap);
    int next_bad = 0;
    for (int i = 0; i < N_VALID; i++) {
        avro_bytes v;
        v.n = 0;
        char user[32], item[32];
        int u = i % 50;
        snprintf(user, sizeof user, "u%d", u);
        snprintf(item, sizeof item, "i%d", (u * 7 + i / 50) % 40);
        record(&v, user, item, 1700000000000LL + i, i % 3 ? NAN : 1.5f);
        harness_produce(p, topic, 0, "m1", v.b, v.n);
        if (i % 31 == 7 && next_bad < n_bad) {
            bad_record *r = &bad[next_bad++];
            harness_produce(p, topic, r->key ? 0 : 1, r->key, r->value.b, r->value.n);
        }
    }
    for (; next_bad < n_bad; next_bad++)
        harness_produce(p, topic, bad[next_bad].key ? 0 : 1, bad[next_bad].key,
                        bad[next_bad].value.b, bad[next_bad].value.n);
    harness_flush(p);
    rd_kafka_destroy(p);
    fprintf(stderr, "produced %d valid events and %d bad records\n", N_VALID, n_bad);
}

/* One dead letter: its key and value are those of a bad record not seen yet, its ccd.error header
 * holds that record's reason, and it has a ccd.source header. */
static void match_dead_letter(const rd_kafka_message_t *m)
{
    rd_kafka_headers_t *h = NULL;
    const void *reason = NULL, *source = NULL;
    size_t rlen = 0, slen = 0;
    CHECK(rd_kafka_message_headers(m, &h) == 0, "dead letter without headers");
    CHECK(rd_kafka_header_get_last(h, "ccd.error", &reason, &rlen) == 0, "no ccd.error header");
    CHECK(rd_kafka_header_get_last(h, "ccd.source", &source, &slen) == 0, "no ccd.source header");
    const void *cls = NULL;
    size_t clen = 0;
    CHECK(rd_kafka_header_get_last(h, "ccd.error.class", &cls, &clen) == 0,
          "no ccd.error.class header");
    char why[300], class_name[64];
    snprintf(why, sizeof why, "%.*s", (int)rlen, (const char *)reason);
    snprintf(class_name, sizeof class_name, "%.*s", (int)clen, (const char *)cls);
    /* the class is the one the reason belongs to (the metric's reason label) */
    static const struct {
        const char *prefix, *class_name;
    } classes[] = {{"missing key", "no_key"},
                   {"bad model id", "bad_model_id"},
                   {"empty message", "frame"},
                   {"message too large", "frame"},
                   {"bad magic byte", "frame"},
                   {"short confluent frame", "frame"},
                   {"unknown schema id", "unknown_schema"},
                   {"empty user_id", "invalid_field"},
                   {"empty item_id", "invalid_field"},
                   {"control character", "invalid_field"},
                   {"field too long", "invalid_field"},
                   {"event_time out of range", "invalid_field"},
                   {"weight not finite", "invalid_field"},
                   {"negative weight", "invalid_field"}};
    const char *want = "undecodable";
    for (size_t k = 0; k < sizeof classes / sizeof *classes; k++)
        if (!strncmp(why, classes[k].prefix, strlen(classes[k].prefix))) {
            want = classes[k].class_name;
            break;
        }
    CHECK(!strcmp(class_name, want), "dead letter '%s' classed %s, expected %s", why, class_name,
          want);
    int matched = 0;
    for (int b = 0; b < n_bad && !matched; b++) {
        bad_record *r = &bad[b];
        bool same_key = r->key
                            ? (m->key_len == strlen(r->key) && !memcmp(m->key, r->key, m->key_len))
                            : m->key_len == 0;
        if (r->seen || !same_key || m->len != r->value.n ||
            (m->len && memcmp(m->payload, r->value.b, m->len)))
            continue;
        CHECK(strstr(why, r->reason), "bad record %d: reason '%s' lacks '%s'", b, why, r->reason);
        r->seen = matched = 1;
    }
    CHECK(matched, "unexpected dead letter (reason '%s', %zu bytes)", why, m->len);
    fprintf(stderr, "dead letter: %s (%.*s)\n", why, (int)slen, (const char *)source);
}

/* Every bad record is in the dead-letter topic (within 60 s), with its key, value and a reason. */
static void check_dead_letters(const char *bootstrap, const char *dlq_topic)
{
    char group[64];
    snprintf(group, sizeof group, "dlq-reader-%d", (int)getpid());
    rd_kafka_t *c = harness_consumer(bootstrap, group, dlq_topic);
    int got = 0;
    time_t until = time(NULL) + 60;
    while (got < n_bad && time(NULL) < until) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 500);
        if (!m)
            continue;
        if (m->err) {
            rd_kafka_message_destroy(m);
            continue;
        }
        got++;
        match_dead_letter(m);
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    CHECK(got == n_bad, "%d dead letters, expected %d", got, n_bad);
}

int main(void)
{
    harness_env env = harness_env_read();
    char dir[] = "/tmp/ccd-dlq-XXXXXX";
    CHECK(mkdtemp(dir), "mkdtemp");
    char in_topic[96], dlq_topic[96];
    snprintf(in_topic, sizeof in_topic, "dlq-in-%d-%ld", (int)getpid(), (long)time(NULL));
    snprintf(dlq_topic, sizeof dlq_topic, "dlq-out-%d-%ld", (int)getpid(), (long)time(NULL));
    harness_create_topic(env.bootstrap, in_topic, 2);
    harness_create_topic(env.bootstrap, dlq_topic, 1);
    make_bad_records();
    produce_stream(env.bootstrap, in_topic);

    /* the worker, with a tiny engine so that two blocks train in seconds */
    char config[4096], path[600], log_path[600];
    snprintf(config, sizeof config,
             "[kafka]\nbootstrap.servers = %s\ngroup.id = dlq-test-%d\n"
             "[input]\ntopics = %s\nformat = auto\nreader_schema = %s/interaction.avsc\n"
             "dead_letter_topic = %s\nmax_buffered_events = 10000\n"
             "[window]\nbootstrap_events = %d\nevents = %d\nidle_ms = 3000\n"
             "[ccd]\nteachers = mf:8:0\nstudent_dim = 4\nkd_interesting = 5\nexclusion_topk = "
             "5\ninit_topk = 3\n"
             "kd_uninteresting_items = 30\nkd_uninteresting_users = 40\n"
             "[ccd.base]\nepochs = 2\nbatch = 64\n[ccd.kd]\nepochs = 1\nbatch = 64\n"
             "[ccd.student]\nepochs = 1\nbatch = 64\n[ccd.teacher]\nepochs = 1\nbatch = 64\n"
             "[redis]\nhost = 127.0.0.1\nport = %s\nprefix = ccddlq\nkeep_versions = 5\n"
             "[checkpoint]\ndir = %s/ckpt\n[worker]\nthreads = 2\n",
             env.bootstrap, (int)getpid(), in_topic, env.schema_dir, dlq_topic, BLOCK, BLOCK,
             env.redis_port, dir);
    snprintf(path, sizeof path, "%s/worker.ini", dir);
    harness_write_file(path, config);
    snprintf(log_path, sizeof log_path, "%s/worker.log", dir);
    char *argv[] = {(char *)env.worker_bin, "-c", path, "--exit-when-idle", "6000", NULL};
    int rc = harness_wait(harness_spawn(argv, log_path), 240, "ccd-worker");
    if (rc != 0)
        harness_sh("tail -n 40 %s >&2", log_path);
    CHECK(rc == 0, "ccd-worker exited with %d", rc);

    check_dead_letters(env.bootstrap, dlq_topic);

    /* the valid events, and only they, went into the blocks */
    redisContext *r = redisConnect("127.0.0.1", atoi(env.redis_port));
    CHECK(r && !r->err, "redis connect");
    live_version live = live_version_read(r, "ccddlq", "m1");
    CHECK(live.block == N_VALID / BLOCK - 1, "last block %d, expected %d", live.block,
          N_VALID / BLOCK - 1);
    CHECK(live.events_total == N_VALID, "events_total %lld, expected %d", live.events_total,
          N_VALID);
    redisFree(r);
    harness_sh("grep -c 'dead letter' %s >&2; rm -rf %s", log_path, dir);
    fprintf(stderr, "ok: %d bad records dead-lettered with reasons, %d valid events in %d blocks\n",
            n_bad, N_VALID, N_VALID / BLOCK);
    return 0;
}
