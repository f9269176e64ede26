/* Integration smoke test against the real Kafka 3.9 broker started by tests/services.sh:
 * create a 3-partition topic, produce Avro-encoded Interaction records (schemas/
 * interaction.avsc) keyed by model id with librdkafka, consume them back in a consumer group,
 * decode them with Avro-C, compare field by field, commit, and read the committed offsets back. */
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <avro.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "worker_harness.h"

#define N_RECORDS 300

static int delivered_ok, delivered_err;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk, (void)opaque;
    if (m->err)
        delivered_err++;
    else
        delivered_ok++;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    CHECK(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    CHECK(fread(buf, 1, (size_t)n, f) == (size_t)n, "short read of %s", path);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* The key (model id) of record k. */
static const char *key_of(int k)
{
    return k % 3 ? "model-a" : "model-b";
}

/* Record k: user-(k % 17), item-k, event_time 1700000000000 + k, event_type null (even k) or
 * "click" (odd k), weight 0.5 k. */
static void fill_record(avro_value_t *rec, int k)
{
    avro_value_t field, branch;
    char user[32], item[32];
    snprintf(user, sizeof user, "user-%d", k % 17);
    snprintf(item, sizeof item, "item-%d", k);
    avro_value_reset(rec);
    avro_value_get_by_name(rec, "user_id", &field, NULL);
    avro_value_set_string(&field, user);
    avro_value_get_by_name(rec, "item_id", &field, NULL);
    avro_value_set_string(&field, item);
    avro_value_get_by_name(rec, "event_time", &field, NULL);
    avro_value_set_long(&field, 1700000000000LL + k);
    avro_value_get_by_name(rec, "event_type", &field, NULL);
    avro_value_set_branch(&field, k % 2, &branch); /* null for even k, "click" for odd */
    if (k % 2)
        avro_value_set_string(&branch, "click");
    else
        avro_value_set_null(&branch);
    avro_value_get_by_name(rec, "weight", &field, NULL);
    avro_value_set_branch(&field, 1, &branch);
    avro_value_set_float(&branch, 0.5f * (float)k);
}

/* Records 0..N_RECORDS-1, Avro-encoded with Avro-C, all delivered. */
static void produce_records(const char *bootstrap, const char *topic, avro_value_t *rec)
{
    char err[512];
    rd_kafka_conf_t *pconf = rd_kafka_conf_new();
    CHECK(rd_kafka_conf_set(pconf, "bootstrap.servers", bootstrap, err, sizeof err) ==
              RD_KAFKA_CONF_OK,
          "%s", err);
    CHECK(rd_kafka_conf_set(pconf, "enable.idempotence", "true", err, sizeof err) ==
              RD_KAFKA_CONF_OK,
          "%s", err);
    rd_kafka_conf_set_dr_msg_cb(pconf, on_delivery);
    rd_kafka_t *producer = rd_kafka_new(RD_KAFKA_PRODUCER, pconf, err, sizeof err);
    CHECK(producer, "producer: %s", err);
    char buf[512];
    for (int k = 0; k < N_RECORDS; k++) {
        fill_record(rec, k);
        avro_writer_t w = avro_writer_memory(buf, sizeof buf);
        CHECK(avro_value_write(w, rec) == 0, "encode: %s", avro_strerror());
        size_t len = (size_t)avro_writer_tell(w);
        avro_writer_free(w);
        const char *key = key_of(k);
        rd_kafka_resp_err_t e = rd_kafka_producev(
            producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, strlen(key)),
            RD_KAFKA_V_VALUE(buf, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        CHECK(e == RD_KAFKA_RESP_ERR_NO_ERROR, "produce: %s", rd_kafka_err2str(e));
        rd_kafka_poll(producer, 0);
    }
    CHECK(rd_kafka_flush(producer, 30000) == RD_KAFKA_RESP_ERR_NO_ERROR, "flush timed out");
    CHECK(delivered_ok == N_RECORDS && delivered_err == 0, "delivered %d ok, %d failed",
          delivered_ok, delivered_err);
    rd_kafka_destroy(producer);
}

/* Decodes one consumed message and compares it field by field with the record its item names;
 * returns that record's number. */
static int check_message(const rd_kafka_message_t *m, avro_value_t *rec, int seen[N_RECORDS])
{
    avro_value_t field, branch;
    avro_reader_t r = avro_reader_memory(m->payload, (int64_t)m->len);
    avro_value_reset(rec);
    CHECK(avro_value_read(r, rec) == 0, "decode: %s", avro_strerror());
    avro_reader_free(r);
    const char *item;
    size_t item_len;
    avro_value_get_by_name(rec, "item_id", &field, NULL);
    avro_value_get_string(&field, &item, &item_len);
    int k = atoi(item + 5);
    CHECK(k >= 0 && k < N_RECORDS && !seen[k], "unexpected or repeated record %s", item);
    seen[k] = 1;
    const char *user;
    size_t user_len;
    char want[32];
    avro_value_get_by_name(rec, "user_id", &field, NULL);
    avro_value_get_string(&field, &user, &user_len);
    snprintf(want, sizeof want, "user-%d", k % 17);
    CHECK(strcmp(user, want) == 0, "record %d: user %s, want %s", k, user, want);
    int64_t t;
    avro_value_get_by_name(rec, "event_time", &field, NULL);
    avro_value_get_long(&field, &t);
    CHECK(t == 1700000000000LL + k, "record %d: time %" PRId64, k, t);
    int disc;
    avro_value_get_by_name(rec, "event_type", &field, NULL);
    avro_value_get_discriminant(&field, &disc);
    CHECK(disc == k % 2, "record %d: event_type branch %d", k, disc);
    float wt;
    avro_value_get_by_name(rec, "weight", &field, NULL);
    avro_value_get_current_branch(&field, &branch);
    avro_value_get_float(&branch, &wt);
    CHECK(wt == 0.5f * (float)k, "record %d: weight %g", k, wt);
    const char *key = key_of(k);
    CHECK(m->key_len == strlen(key) && memcmp(m->key, key, m->key_len) == 0, "record %d: key", k);
    return k;
}

/* Every record consumed exactly once within 60 s; messages per partition in partitions_used. */
static void consume_records(rd_kafka_t *consumer, avro_value_t *rec, int partitions_used[3])
{
    int seen[N_RECORDS] = {0}, got = 0;
    time_t deadline = time(NULL) + 60;
    while (got < N_RECORDS && time(NULL) < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(consumer, 500);
        if (!m)
            continue;
        if (m->err) {
            CHECK(m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF, "consume: %s",
                  rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        check_message(m, rec, seen);
        partitions_used[m->partition]++;
        got++;
        rd_kafka_message_destroy(m);
    }
    CHECK(got == N_RECORDS, "consumed %d of %d records in 60 s", got, N_RECORDS);
    /* Same key, same partition: the two keys land on at most two partitions. */
    int used = (partitions_used[0] > 0) + (partitions_used[1] > 0) + (partitions_used[2] > 0);
    CHECK(used >= 1 && used <= 2, "keys spread over %d partitions", used);
}

/* Commit, then read the group's committed offsets back: each partition's is what was consumed
 * from it (none for an unused partition). */
static void check_committed(rd_kafka_t *consumer, const char *topic, const int partitions_used[3])
{
    CHECK(rd_kafka_commit(consumer, NULL, 0) == RD_KAFKA_RESP_ERR_NO_ERROR, "commit");
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(3);
    for (int p = 0; p < 3; p++)
        rd_kafka_topic_partition_list_add(parts, topic, p);
    CHECK(rd_kafka_committed(consumer, parts, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR, "committed");
    int64_t total = 0;
    for (int p = 0; p < parts->cnt; p++) {
        int64_t off = parts->elems[p].offset;
        CHECK(off == (partitions_used[p] ? partitions_used[p] : RD_KAFKA_OFFSET_INVALID),
              "partition %d: committed %" PRId64 ", consumed %d", p, off, partitions_used[p]);
        total += off > 0 ? off : 0;
    }
    CHECK(total == N_RECORDS, "committed %" PRId64 " in all", total);
    rd_kafka_topic_partition_list_destroy(parts);
}

int main(void)
{
    char bootstrap[256];
    CHECK(services_env("KAFKA_BOOTSTRAP", bootstrap, sizeof bootstrap) == 0, "no broker");
    const char *schema_dir = getenv("CCD_SCHEMA_DIR");
    CHECK(schema_dir, "CCD_SCHEMA_DIR is not set");
    char path[1024];
    snprintf(path, sizeof path, "%s/interaction.avsc", schema_dir);
    size_t json_len;
    char *json = read_file(path, &json_len);
    avro_schema_t schema;
    CHECK(avro_schema_from_json_length(json, json_len, &schema) == 0, "schema: %s",
          avro_strerror());
    avro_value_iface_t *iface = avro_generic_class_from_schema(schema);
    CHECK(iface, "%s", avro_strerror());
    avro_value_t rec;
    CHECK(avro_generic_value_new(iface, &rec) == 0, "%s", avro_strerror());

    char topic[128];
    snprintf(topic, sizeof topic, "ccd-smoke-%d-%ld", (int)getpid(), (long)time(NULL));
    harness_create_topic(bootstrap, topic, 3);
    produce_records(bootstrap, topic, &rec);

    /* Consume in a group, decode and compare, commit. */
    char group[160];
    snprintf(group, sizeof group, "%s-group", topic);
    rd_kafka_t *consumer = harness_consumer(bootstrap, group, topic);
    int partitions_used[3] = {0};
    consume_records(consumer, &rec, partitions_used);
    check_committed(consumer, topic, partitions_used);
    rd_kafka_consumer_close(consumer);
    rd_kafka_destroy(consumer);
    avro_value_decref(&rec);
    avro_value_iface_decref(iface);
    avro_schema_decref(schema);
    free(json);
    printf("kafka+avro: produced, consumed and committed %d records on %s via %s\n", N_RECORDS,
           topic, bootstrap);
    return 0;
}
