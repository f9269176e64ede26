/* ccd-replay: stream a block dataset into a Kafka topic as Avro Interaction events.
 *
 *   ccd-replay --brokers HOST:PORT --topic T --model M --data ../shared/data/yelp [--blocks N]
 *
 * For each block k it sends the train events, then the valid events, in file order (the test
 * split stays out: it is what ccd-eval measures). Block files carry no times, so the events of
 * block k get increasing event times spread over [base + k * block_ms, base + (k + 1) * block_ms):
 * a worker with window.bootstrap_until_ms = base + block_ms and window.duration_ms = block_ms
 * cuts exactly the dataset's blocks. Ids are sent as their decimal text; the key is the model id.
 * --rate limits events per second (0: as fast as the broker takes them); progress goes to
 * stderr every second. Exit status 0 only when every event was acknowledged by the broker. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dataset.h"
#include "event_codec.h"
#include "worker_config.h"

#define VERSION "0.2.0"

static int64_t acked, failed;
static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk, (void)opaque;
    if (m->err) {
        if (failed++ < 5)
            fprintf(stderr, "ccd-replay: delivery failed: %s\n", rd_kafka_err2str(m->err));
    } else {
        acked++;
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: ccd-replay --brokers H:P --topic T --model M --data DIR [options]\n"
               "  --blocks N          only the first N blocks\n"
               "  --from-block K      start at block K (default 0)\n"
               "  --rate R            at most R events per second (default: unlimited)\n"
               "  --format raw|confluent  wire format (default raw)\n"
               "  --schema-id N       Confluent schema id (default 1)\n"
               "  --schema FILE       reader schema (default schemas/interaction.avsc)\n"
               "  --base-time-ms T    event time of block 0's start (default 1600000000000)\n"
               "  --block-ms D        length of a block in event time (default 86400000)\n"
               "  -X kafka.KEY=VALUE  librdkafka producer property (repeatable)\n"
               "  --quiet             no progress lines\n"
               "  --help, --version\n");
}

/* Produce one event, waiting while the local queue is full. */
static int produce(rd_kafka_t *rk, const char *topic, const char *key, const unsigned char *v, size_t n)
{
    for (;;) {
        rd_kafka_resp_err_t err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, strlen(key)),
                                                    RD_KAFKA_V_VALUE((void *)v, n),
                                                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (!err)
            return 0;
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            fprintf(stderr, "ccd-replay: produce: %s\n", rd_kafka_err2str(err));
            return -1;
        }
        rd_kafka_poll(rk, 50);
    }
}

int main(int argc, char **argv)
{
    const char *brokers = NULL, *topic = NULL, *model = NULL, *data = NULL, *schema = "schemas/interaction.avsc";
    int max_blocks = 0, from_block = 0, quiet = 0;
    double rate = 0;
    int32_t schema_id = 1;
    event_format format = EVENT_FORMAT_RAW;
    int64_t base = 1600000000000LL, block_ms = 86400000LL;
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    enum { O_BROKERS = 1000, O_TOPIC, O_MODEL, O_DATA, O_BLOCKS, O_FROM, O_RATE, O_FORMAT, O_SID, O_SCHEMA, O_BASE,
           O_BMS, O_QUIET, O_VERSION };
    static const struct option opts[] = {
        {"brokers", required_argument, NULL, O_BROKERS}, {"topic", required_argument, NULL, O_TOPIC},
        {"model", required_argument, NULL, O_MODEL},     {"data", required_argument, NULL, O_DATA},
        {"blocks", required_argument, NULL, O_BLOCKS},   {"from-block", required_argument, NULL, O_FROM},
        {"rate", required_argument, NULL, O_RATE},       {"format", required_argument, NULL, O_FORMAT},
        {"schema-id", required_argument, NULL, O_SID},   {"schema", required_argument, NULL, O_SCHEMA},
        {"base-time-ms", required_argument, NULL, O_BASE}, {"block-ms", required_argument, NULL, O_BMS},
        {"quiet", no_argument, NULL, O_QUIET},           {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, O_VERSION},       {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "X:h", opts, NULL)) != -1) {
        switch (c) {
        case O_BROKERS: brokers = optarg; break;
        case O_TOPIC: topic = optarg; break;
        case O_MODEL: model = optarg; break;
        case O_DATA: data = optarg; break;
        case O_BLOCKS: max_blocks = atoi(optarg); break;
        case O_FROM: from_block = atoi(optarg); break;
        case O_RATE: rate = atof(optarg); break;
        case O_FORMAT:
            if (event_format_parse(optarg, &format) != 0 || format == EVENT_FORMAT_AUTO) {
                fprintf(stderr, "ccd-replay: --format: raw or confluent\n");
                return 2;
            }
            break;
        case O_SID: schema_id = (int32_t)atoi(optarg); break;
        case O_SCHEMA: schema = optarg; break;
        case O_BASE: base = atoll(optarg); break;
        case O_BMS: block_ms = atoll(optarg); break;
        case O_QUIET: quiet = 1; break;
        case 'X': {
            const char *eq = strchr(optarg, '=');
            if (strncmp(optarg, "kafka.", 6) || !eq) {
                fprintf(stderr, "ccd-replay: -X %s: expected kafka.KEY=VALUE\n", optarg);
                return 2;
            }
            char key[256];
            snprintf(key, sizeof key, "%.*s", (int)(eq - optarg - 6), optarg + 6);
            if (rd_kafka_conf_set(conf, key, eq + 1, err, sizeof err) != RD_KAFKA_CONF_OK) {
                fprintf(stderr, "ccd-replay: kafka.%s: %s\n", key, err);
                return 2;
            }
            break;
        }
        case 'h': usage(stdout); return 0;
        case O_VERSION: printf("ccd-replay %s\n", VERSION); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!brokers || !topic || !model || !data || block_ms <= 0) {
        usage(stderr);
        return 2;
    }
    ccd_dataset ds;
    if (ccd_dataset_load(&ds, data, max_blocks, err, sizeof err) != 0) {
        fprintf(stderr, "ccd-replay: %s\n", err);
        return 1;
    }
    event_codec *codec = event_codec_new(schema, INT64_MIN, INT64_MAX, err, sizeof err);
    if (!codec) {
        fprintf(stderr, "ccd-replay: %s\n", err);
        return 1;
    }
    if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, err, sizeof err) != RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "linger.ms", "20", err, sizeof err) != RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "enable.idempotence", "true", err, sizeof err) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "ccd-replay: %s\n", err);
        return 1;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk) {
        fprintf(stderr, "ccd-replay: %s\n", err);
        return 1;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    int64_t sent = 0;
    double t0 = now_s(), last_report = t0;
    int rc = 0;
    for (int k = from_block; k < ds.n_blocks && !interrupted && rc == 0; k++) {
        /* the block's events: train then valid, in file order (read again from the files, since
         * the loaded sets are deduplicated and sorted) */
        char path[2][4096];
        snprintf(path[0], sizeof path[0], "%s/block%d/train.tsv", data, k);
        snprintf(path[1], sizeof path[1], "%s/block%d/valid.tsv", data, k);
        int *us[2] = {NULL, NULL}, *is[2] = {NULL, NULL};
        int64_t ns[2] = {0, 0};
        for (int f = 0; f < 2; f++)
            if (ccd_read_int_tsv(path[f], 1, ds.blocks[k].n_users, ds.blocks[k].n_items, &us[f], &is[f], &ns[f],
                                 err, sizeof err) != 0) {
                fprintf(stderr, "ccd-replay: %s\n", err);
                rc = 1;
            }
        int64_t n = ns[0] + ns[1], i = 0;
        int64_t start = base + (int64_t)k * block_ms;
        for (int f = 0; f < 2 && rc == 0; f++)
            for (int64_t e = 0; e < ns[f] && !interrupted; e++, i++) {
                ccd_event ev;
                memset(&ev, 0, sizeof ev);
                snprintf(ev.user_id, sizeof ev.user_id, "%d", us[f][e]);
                snprintf(ev.item_id, sizeof ev.item_id, "%d", is[f][e]);
                ev.event_time_ms = start + (int64_t)((double)i * (double)block_ms / (double)n);
                unsigned char *buf;
                size_t len;
                if (event_encode(codec, &ev, format == EVENT_FORMAT_CONFLUENT ? schema_id : -1, &buf, &len, err,
                                 sizeof err) != 0) {
                    fprintf(stderr, "ccd-replay: %s\n", err);
                    rc = 1;
                    break;
                }
                if (produce(rk, topic, model, buf, len) != 0)
                    rc = 1;
                free(buf);
                if (rc)
                    break;
                sent++;
                rd_kafka_poll(rk, 0);
                if (rate > 0) {
                    double ahead = (double)sent / rate - (now_s() - t0);
                    if (ahead > 0.001) {
                        struct timespec ts = {(time_t)ahead, (long)((ahead - (time_t)ahead) * 1e9)};
                        nanosleep(&ts, NULL);
                    }
                }
                double now = now_s();
                if (!quiet && now - last_report >= 1.0) {
                    fprintf(stderr, "ccd-replay: block %d, %lld sent, %lld acked, %.0f events/s\n", k,
                            (long long)sent, (long long)acked, (double)sent / (now - t0));
                    last_report = now;
                }
            }
        if (!quiet)
            fprintf(stderr, "ccd-replay: block %d: %lld events (%lld train, %lld valid), times [%lld, %lld)\n", k,
                    (long long)n, (long long)ns[0], (long long)ns[1], (long long)start,
                    (long long)(start + block_ms));
        for (int f = 0; f < 2; f++)
            free(us[f]), free(is[f]);
    }
    while (rd_kafka_outq_len(rk) > 0 && rd_kafka_flush(rk, 1000) == RD_KAFKA_RESP_ERR__TIMED_OUT && !interrupted)
        ;
    double secs = now_s() - t0;
    printf("sent %lld acked %lld failed %lld seconds %.2f events_per_s %.0f\n", (long long)sent, (long long)acked,
           (long long)failed, secs, secs > 0 ? (double)acked / secs : 0.0);
    rd_kafka_destroy(rk);
    event_codec_free(codec);
    ccd_dataset_free(&ds);
    if (interrupted)
        return 130;
    return rc == 0 && failed == 0 && acked == sent ? 0 : 1;
}
