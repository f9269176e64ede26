/* ccd-replay: stream a block dataset, or the synthetic stream, into a Kafka topic as Avro
 * Interaction events.
 *
 *   ccd-replay --brokers HOST:PORT --topic T --model M --data ../shared/data/yelp [--blocks N]
 *   ccd-replay --brokers HOST:PORT --topic T --model M --synthetic [--seed S --synth-... ]
 *   ccd-replay --synthetic --write-dataset DIR            (no broker: write the files only)
 *
 * For each block k of a dataset it sends the train events, then the valid events, in file order
 * (the test split stays out: it is what ccd-eval measures). For the synthetic stream
 * (models/synth.h) it sends the block's train and valid events in generation order, the order they
 * happened, with the test events left out the same way. Block files carry no times, so the events
 * of block k get increasing event times spread over [base + k * block_ms, base + (k + 1) *
 * block_ms): a worker with window.bootstrap_until_ms = base + block_ms and window.duration_ms =
 * block_ms cuts exactly the dataset's blocks. Ids are sent as their decimal text; the key is the
 * model id.
 * --write-dataset DIR writes the synthetic stream in the dataset format (blocks.tsv,
 * block<k>/{train,valid,test,users,items}.tsv), so ccd-offline, ccd-eval and --data read it; then
 * the tool streams only when a broker is given as well. --create-topic P creates the topic first
 * (P partitions, replication 1; an existing topic is fine).
 * --rate limits events per second (0: as fast as the broker takes them); progress goes to
 * stderr every second. Exit status 0 only when every event was acknowledged by the broker.
 *
 * worker/cmd/ holds the binaries' mains, one file each: its command line, the steps it runs and
 * what it prints. What they run lives in worker/ (the service's pieces), worker/config/ (config
 * files) and models/ (libccd, the engine). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dataset.h"
#include "cli.h"
#include "event_codec.h"
#include "synth.h"
#include "worker_config.h"

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
    ccd_synth_opts d;
    ccd_synth_defaults(&d);
    fprintf(
        f,
        "usage: ccd-replay --brokers H:P --topic T --model M (--data DIR | --synthetic) [options]\n"
        "       ccd-replay --synthetic --write-dataset DIR [synthetic options]\n"
        "  --data DIR          replay a block dataset (train then valid events of each block)\n"
        "  --blocks N          only the first N blocks (synthetic: generate N blocks, default %d)\n"
        "  --from-block K      start at block K (default 0)\n"
        "  --rate R            at most R events per second (default: unlimited)\n"
        "  --format raw|confluent  wire format (default raw)\n"
        "  --schema-id N       Confluent schema id (default 1)\n"
        "  --schema FILE       reader schema (default schemas/interaction.avsc)\n"
        "  --writer-schema FILE  encode with FILE instead: the reader's fields plus optional\n"
        "                      ones, sent null (an evolved producer schema, for tests)\n"
        "  --base-time-ms T    event time of block 0's start (default 1600000000000)\n"
        "  --block-ms D        length of a block in event time (default 86400000)\n"
        "  --create-topic P    create the topic first with P partitions (replication 1)\n"
        "  -X kafka.KEY=VALUE  librdkafka producer property (repeatable)\n"
        "  --quiet             no progress lines\n"
        "  --help, --version\n"
        "synthetic stream (models/synth.h; train and valid events in time order, test kept out):\n"
        "  --synthetic         generate the stream instead of reading --data\n"
        "  --write-dataset DIR also write it as a block dataset (for ccd-offline / ccd-eval "
        "--data)\n"
        "  --seed S            generator seed (default %llu)\n"
        "  --synth-users N     users in block 0 (default %d)\n"
        "  --synth-items N     items in block 0 (default %d)\n"
        "  --synth-new-users N new users in every later block (default %d)\n"
        "  --synth-new-items N new items in every later block (default %d)\n"
        "  --synth-events N    events in block 0 (default %lld)\n"
        "  --synth-block-events N  events in every later block (default %lld)\n"
        "  --synth-clusters N  taste clusters (default %d)\n"
        "  --synth-dim N       latent dimension (default %d)\n"
        "  --synth-drift X     step of the cluster centres per block, 0..1 (default %g)\n"
        "  --synth-popularity X  power-law exponent of item popularity, 0 = flat (default %g)\n"
        "  --synth-temperature X  of exp(affinity / X); smaller is more clustered (default %g)\n"
        "  --synth-user-noise X   spread of users around their cluster (default %g)\n"
        "  --synth-item-noise X   spread of items around their cluster (default %g)\n"
        "  --synth-new-user-boost X  activity of users in their first block (default %g)\n"
        "  --synth-valid X     share of a user's items held out for validation (default %g)\n"
        "  --synth-test X      share held out for test (default %g)\n",
        d.n_blocks, (unsigned long long)d.seed, d.users0, d.items0, d.new_users_per_block,
        d.new_items_per_block, (long long)d.events0, (long long)d.events_per_block, d.clusters,
        d.dim, d.drift, d.popularity_exponent, d.temperature, d.user_noise, d.item_noise,
        d.new_user_boost, d.valid_fraction, d.test_fraction);
}

/* Strict numbers (cli.h): the whole argument, in range; a typo is an error, not a zero. */
static int arg_int(const char *name, const char *arg, int lo, int *out)
{
    return cli_int("ccd-replay", name, arg, lo, INT32_MAX, out);
}

static int arg_i64(const char *name, const char *arg, int64_t lo, int64_t hi, int64_t *out)
{
    return cli_int64("ccd-replay", name, arg, lo, hi, out);
}

static int arg_float(const char *name, const char *arg, float *out)
{
    if (cli_parse_float(arg, -INFINITY, INFINITY, out) == 0) /* ranges: ccd_synth_check */
        return 0;
    fprintf(stderr, "ccd-replay: --%s: expected a number, got \"%s\"\n", name, arg);
    return -1;
}

static int arg_double(const char *name, const char *arg, double *out)
{
    if (cli_parse_double(arg, -INFINITY, INFINITY, out) == 0)
        return 0;
    fprintf(stderr, "ccd-replay: --%s: expected a number, got \"%s\"\n", name, arg);
    return -1;
}

/* Create the topic with the admin API on a client of its own (the producer's settings, -X
 * included, so SASL/SSL apply). An existing topic is fine: replaying twice into one topic is a
 * normal thing to do. */
static int create_topic(rd_kafka_conf_t *conf, const char *topic, int partitions)
{
    char err[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk) {
        fprintf(stderr, "ccd-replay: admin client: %s\n", err);
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    int rc = -1;
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, partitions, 1, err, sizeof err);
    rd_kafka_AdminOptions_t *ao = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    if (!nt) {
        fprintf(stderr, "ccd-replay: --create-topic: %s\n", err);
        goto done;
    }
    /* wait for the controller to finish creating it, so the first produce finds the topic */
    if (rd_kafka_AdminOptions_set_operation_timeout(ao, 30000, err, sizeof err) ||
        rd_kafka_AdminOptions_set_request_timeout(ao, 60000, err, sizeof err)) {
        fprintf(stderr, "ccd-replay: --create-topic: %s\n", err);
        goto done;
    }
    rd_kafka_CreateTopics(rk, &nt, 1, ao, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 70000);
    if (!ev) {
        fprintf(stderr, "ccd-replay: --create-topic: no answer from the cluster\n");
        goto done;
    }
    const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
    size_t n = 0;
    const rd_kafka_topic_result_t **tr = res ? rd_kafka_CreateTopics_result_topics(res, &n) : NULL;
    if (rd_kafka_event_error(ev)) {
        fprintf(stderr, "ccd-replay: --create-topic: %s\n", rd_kafka_event_error_string(ev));
    } else if (n != 1) {
        fprintf(stderr, "ccd-replay: --create-topic: unexpected answer\n");
    } else if (rd_kafka_topic_result_error(tr[0]) == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        fprintf(stderr, "ccd-replay: topic %s already exists\n", topic);
        rc = 0;
    } else if (rd_kafka_topic_result_error(tr[0]) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        fprintf(stderr, "ccd-replay: --create-topic %s: %s\n", topic,
                rd_kafka_topic_result_error_string(tr[0]));
    } else {
        fprintf(stderr, "ccd-replay: created topic %s with %d partitions\n", topic, partitions);
        rc = 0;
    }
    rd_kafka_event_destroy(ev);
done:
    if (nt)
        rd_kafka_NewTopic_destroy(nt);
    rd_kafka_AdminOptions_destroy(ao);
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
    return rc;
}

/* Produce one event, waiting while the local queue is full. */
static int produce(rd_kafka_t *rk, const char *topic, const char *key, const unsigned char *v,
                   size_t n)
{
    for (;;) {
        rd_kafka_resp_err_t err =
            rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, strlen(key)),
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

/* What sending one event needs: the producer, the codec, pacing and progress. */
typedef struct {
    rd_kafka_t *rk;
    const char *topic, *model;
    event_codec *codec;
    int32_t schema_id; /* -1: raw */
    double rate, t0, last_report;
    int quiet;
    int64_t sent;
} sender;

/* Encode and produce one event of block k, then pace and report. 0 or -1. */
static int send_event(sender *s, int k, int user, int item, int64_t time_ms)
{
    char err[512];
    ccd_event ev;
    memset(&ev, 0, sizeof ev);
    snprintf(ev.user_id, sizeof ev.user_id, "%d", user);
    snprintf(ev.item_id, sizeof ev.item_id, "%d", item);
    ev.event_time_ms = time_ms;
    unsigned char *buf;
    size_t len;
    if (event_encode(s->codec, &ev, s->schema_id, &buf, &len, err, sizeof err) != 0) {
        fprintf(stderr, "ccd-replay: %s\n", err);
        return -1;
    }
    int rc = produce(s->rk, s->topic, s->model, buf, len);
    free(buf);
    if (rc)
        return -1;
    s->sent++;
    rd_kafka_poll(s->rk, 0);
    if (s->rate > 0) {
        double ahead = (double)s->sent / s->rate - (now_s() - s->t0);
        if (ahead > 0.001) {
            struct timespec ts = {(time_t)ahead, (long)((ahead - (time_t)ahead) * 1e9)};
            nanosleep(&ts, NULL);
        }
    }
    double now = now_s();
    if (!s->quiet && now - s->last_report >= 1.0) {
        fprintf(stderr, "ccd-replay: block %d, %lld sent, %lld acked, %.0f events/s\n", k,
                (long long)s->sent, (long long)acked, (double)s->sent / (now - s->t0));
        s->last_report = now;
    }
    return 0;
}

/* The dataset's blocks from --from-block on: train then valid events in file order. */
static int replay_dataset(sender *s, const ccd_dataset *ds, const char *data, int from_block,
                          int64_t base, int64_t block_ms)
{
    char err[512];
    int rc = 0;
    for (int k = from_block; k < ds->n_blocks && !interrupted && rc == 0; k++) {
        /* the block's events: train then valid, in file order (read again from the files, since
         * the loaded sets are deduplicated and sorted) */
        char path[2][4096];
        snprintf(path[0], sizeof path[0], "%s/block%d/train.tsv", data, k);
        snprintf(path[1], sizeof path[1], "%s/block%d/valid.tsv", data, k);
        int *us[2] = {NULL, NULL}, *is[2] = {NULL, NULL};
        int64_t ns[2] = {0, 0};
        for (int f = 0; f < 2; f++)
            if (ccd_read_int_tsv(path[f], 1, ds->blocks[k].n_users, ds->blocks[k].n_items, &us[f],
                                 &is[f], &ns[f], err, sizeof err) != 0) {
                fprintf(stderr, "ccd-replay: %s\n", err);
                rc = 1;
            }
        int64_t n = ns[0] + ns[1], i = 0;
        int64_t start = base + (int64_t)k * block_ms;
        for (int f = 0; f < 2 && rc == 0; f++)
            for (int64_t e = 0; e < ns[f] && !interrupted; e++, i++) {
                int64_t t = start + (int64_t)((double)i * (double)block_ms / (double)n);
                if (send_event(s, k, us[f][e], is[f][e], t) != 0) {
                    rc = 1;
                    break;
                }
            }
        if (!s->quiet)
            fprintf(
                stderr,
                "ccd-replay: block %d: %lld events (%lld train, %lld valid), times [%lld, %lld)\n",
                k, (long long)n, (long long)ns[0], (long long)ns[1], (long long)start,
                (long long)(start + block_ms));
        for (int f = 0; f < 2; f++)
            free(us[f]), free(is[f]);
    }
    return rc;
}

/* The synthetic blocks from --from-block on: train and valid events in generation order (earlier
 * blocks are generated and skipped: the generator's state carries over blocks). */
static int replay_synthetic(sender *s, const ccd_synth_opts *so, int from_block, int64_t base,
                            int64_t block_ms)
{
    char err[512];
    ccd_synth gen;
    if (ccd_synth_init(&gen, so, err, sizeof err) != 0) {
        fprintf(stderr, "ccd-replay: %s\n", err);
        return 1;
    }
    int rc = 0, more;
    while (rc == 0 && !interrupted && (more = ccd_synth_next(&gen, err, sizeof err)) != 0) {
        if (more < 0) {
            fprintf(stderr, "ccd-replay: %s\n", err);
            rc = 1;
            break;
        }
        int k = gen.block;
        if (k < from_block)
            continue;
        int64_t n = gen.n_split[CCD_SYNTH_TRAIN] + gen.n_split[CCD_SYNTH_VALID], i = 0;
        int64_t start = base + (int64_t)k * block_ms;
        for (int64_t e = 0; e < gen.n_events && !interrupted; e++) {
            const ccd_synth_event *ev = &gen.events[e];
            if (ev->split == CCD_SYNTH_TEST)
                continue;
            int64_t t = start + (int64_t)((double)i * (double)block_ms / (double)n);
            if (send_event(s, k, ev->user, ev->item, t) != 0) {
                rc = 1;
                break;
            }
            i++;
        }
        if (!s->quiet)
            fprintf(
                stderr,
                "ccd-replay: block %d: %lld events (%lld train, %lld valid; %lld test kept out), "
                "%d users (%d new), %d items (%d new), times [%lld, %lld)\n",
                k, (long long)n, (long long)gen.n_split[CCD_SYNTH_TRAIN],
                (long long)gen.n_split[CCD_SYNTH_VALID], (long long)gen.n_split[CCD_SYNTH_TEST],
                gen.n_users, gen.n_users - gen.prev_users, gen.n_items,
                gen.n_items - gen.prev_items, (long long)start, (long long)(start + block_ms));
    }
    ccd_synth_free(&gen);
    return rc;
}

/* The command line. */
typedef struct {
    const char *brokers, *topic, *model, *data, *schema, *writer_schema,
        *write_dir; /* NULL: not given */
    int max_blocks, from_block, quiet, synthetic, partitions;
    double rate; /* events per second; <= 0: unlimited */
    int32_t schema_id;
    event_format format;
    int64_t base, block_ms;
    ccd_synth_opts so;
    int stream; /* send to Kafka (not only --write-dataset) */
} replay_args;

enum { ARGS_RUN = -1, NOT_MINE = 1 };

enum {
    O_BROKERS = 1000,
    O_TOPIC,
    O_MODEL,
    O_DATA,
    O_BLOCKS,
    O_FROM,
    O_RATE,
    O_FORMAT,
    O_SID,
    O_SCHEMA,
    O_WSCHEMA,
    O_BASE,
    O_BMS,
    O_QUIET,
    O_VERSION,
    O_SYNTH,
    O_WRITE,
    O_CREATE,
    O_SEED,
    O_S_USERS,
    O_S_ITEMS,
    O_S_NEW_USERS,
    O_S_NEW_ITEMS,
    O_S_EVENTS,
    O_S_BLOCK_EVENTS,
    O_S_CLUSTERS,
    O_S_DIM,
    O_S_DRIFT,
    O_S_POP,
    O_S_TEMP,
    O_S_UNOISE,
    O_S_INOISE,
    O_S_BOOST,
    O_S_VALID,
    O_S_TEST
};

static const struct option longopts[] = {
    {"brokers", required_argument, NULL, O_BROKERS},
    {"topic", required_argument, NULL, O_TOPIC},
    {"model", required_argument, NULL, O_MODEL},
    {"data", required_argument, NULL, O_DATA},
    {"blocks", required_argument, NULL, O_BLOCKS},
    {"from-block", required_argument, NULL, O_FROM},
    {"rate", required_argument, NULL, O_RATE},
    {"format", required_argument, NULL, O_FORMAT},
    {"schema-id", required_argument, NULL, O_SID},
    {"schema", required_argument, NULL, O_SCHEMA},
    {"writer-schema", required_argument, NULL, O_WSCHEMA},
    {"base-time-ms", required_argument, NULL, O_BASE},
    {"block-ms", required_argument, NULL, O_BMS},
    {"quiet", no_argument, NULL, O_QUIET},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, O_VERSION},
    {"synthetic", no_argument, NULL, O_SYNTH},
    {"write-dataset", required_argument, NULL, O_WRITE},
    {"create-topic", required_argument, NULL, O_CREATE},
    {"seed", required_argument, NULL, O_SEED},
    {"synth-users", required_argument, NULL, O_S_USERS},
    {"synth-items", required_argument, NULL, O_S_ITEMS},
    {"synth-new-users", required_argument, NULL, O_S_NEW_USERS},
    {"synth-new-items", required_argument, NULL, O_S_NEW_ITEMS},
    {"synth-events", required_argument, NULL, O_S_EVENTS},
    {"synth-block-events", required_argument, NULL, O_S_BLOCK_EVENTS},
    {"synth-clusters", required_argument, NULL, O_S_CLUSTERS},
    {"synth-dim", required_argument, NULL, O_S_DIM},
    {"synth-drift", required_argument, NULL, O_S_DRIFT},
    {"synth-popularity", required_argument, NULL, O_S_POP},
    {"synth-temperature", required_argument, NULL, O_S_TEMP},
    {"synth-user-noise", required_argument, NULL, O_S_UNOISE},
    {"synth-item-noise", required_argument, NULL, O_S_INOISE},
    {"synth-new-user-boost", required_argument, NULL, O_S_BOOST},
    {"synth-valid", required_argument, NULL, O_S_VALID},
    {"synth-test", required_argument, NULL, O_S_TEST},
    {NULL, 0, NULL, 0}};

/* One option of the synthetic generator (--seed, --synth-*): 0, -1 after saying why it is bad,
 * or NOT_MINE. (--blocks, which it shares with --data, is the stream's.) */
static int synth_option(ccd_synth_opts *so, int c, const char *arg)
{
    int64_t seed;
    switch (c) {
    case O_SEED:
        if (arg_i64("seed", arg, 0, INT64_MAX, &seed) != 0)
            return -1;
        so->seed = (uint64_t)seed;
        return 0;
    case O_S_USERS:
        return arg_int("synth-users", arg, 1, &so->users0);
    case O_S_ITEMS:
        return arg_int("synth-items", arg, 1, &so->items0);
    case O_S_NEW_USERS:
        return arg_int("synth-new-users", arg, 0, &so->new_users_per_block);
    case O_S_NEW_ITEMS:
        return arg_int("synth-new-items", arg, 0, &so->new_items_per_block);
    case O_S_EVENTS:
        return arg_i64("synth-events", arg, 1, INT32_MAX, &so->events0);
    case O_S_BLOCK_EVENTS:
        return arg_i64("synth-block-events", arg, 0, INT32_MAX, &so->events_per_block);
    case O_S_CLUSTERS:
        return arg_int("synth-clusters", arg, 1, &so->clusters);
    case O_S_DIM:
        return arg_int("synth-dim", arg, 1, &so->dim);
    case O_S_DRIFT:
        return arg_float("synth-drift", arg, &so->drift);
    case O_S_POP:
        return arg_float("synth-popularity", arg, &so->popularity_exponent);
    case O_S_TEMP:
        return arg_float("synth-temperature", arg, &so->temperature);
    case O_S_UNOISE:
        return arg_float("synth-user-noise", arg, &so->user_noise);
    case O_S_INOISE:
        return arg_float("synth-item-noise", arg, &so->item_noise);
    case O_S_BOOST:
        return arg_float("synth-new-user-boost", arg, &so->new_user_boost);
    case O_S_VALID:
        return arg_float("synth-valid", arg, &so->valid_fraction);
    case O_S_TEST:
        return arg_float("synth-test", arg, &so->test_fraction);
    default:
        return NOT_MINE;
    }
}

/* -X kafka.KEY=VALUE: KEY=VALUE set on the producer's config (librdkafka checks it). 0, or -1. */
static int kafka_option(rd_kafka_conf_t *conf, const char *arg)
{
    char err[512];
    const char *eq = strchr(arg, '=');
    if (strncmp(arg, "kafka.", 6) || !eq) {
        fprintf(stderr, "ccd-replay: -X %s: expected kafka.KEY=VALUE\n", arg);
        return -1;
    }
    char key[256];
    snprintf(key, sizeof key, "%.*s", (int)(eq - arg - 6), arg + 6);
    if (rd_kafka_conf_set(conf, key, eq + 1, err, sizeof err) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "ccd-replay: kafka.%s: %s\n", key, err);
        return -1;
    }
    return 0;
}

/* One option of the stream (what is sent, where, how fast): 0, -1 after saying why it is bad, or
 * NOT_MINE. */
static int stream_option(replay_args *a, rd_kafka_conf_t *conf, int c, const char *arg)
{
    int64_t schema_id;
    switch (c) {
    case O_BROKERS:
        a->brokers = arg;
        return 0;
    case O_TOPIC:
        a->topic = arg;
        return 0;
    case O_MODEL:
        a->model = arg;
        return 0;
    case O_DATA:
        a->data = arg;
        return 0;
    case O_BLOCKS:
        return arg_int("blocks", arg, 0, &a->max_blocks);
    case O_FROM:
        return arg_int("from-block", arg, 0, &a->from_block);
    case O_RATE:
        return arg_double("rate", arg, &a->rate);
    case O_FORMAT:
        if (event_format_parse(arg, &a->format) != 0 || a->format == EVENT_FORMAT_AUTO) {
            fprintf(stderr, "ccd-replay: --format: raw or confluent\n");
            return -1;
        }
        return 0;
    case O_SID:
        if (arg_i64("schema-id", arg, 0, INT32_MAX, &schema_id) != 0)
            return -1;
        a->schema_id = (int32_t)schema_id;
        return 0;
    case O_SCHEMA:
        a->schema = arg;
        return 0;
    case O_WSCHEMA:
        a->writer_schema = arg;
        return 0;
    case O_BASE:
        return arg_i64("base-time-ms", arg, 0, INT64_MAX, &a->base);
    case O_BMS:
        return arg_i64("block-ms", arg, 0, INT64_MAX, &a->block_ms);
    case O_QUIET:
        a->quiet = 1;
        return 0;
    case O_SYNTH:
        a->synthetic = 1;
        return 0;
    case O_WRITE:
        a->write_dir = arg;
        return 0;
    case O_CREATE:
        return arg_int("create-topic", arg, 1, &a->partitions);
    case 'X':
        return kafka_option(conf, arg);
    default:
        return NOT_MINE;
    }
}

/* argv -> a (and -X into conf). ARGS_RUN, or the exit status (0 after --help or --version, 2 on a
 * bad command line). */
static int parse_args(int argc, char **argv, replay_args *a, rd_kafka_conf_t *conf)
{
    *a = (replay_args){.schema = "schemas/interaction.avsc",
                       .schema_id = 1,
                       .format = EVENT_FORMAT_RAW,
                       .base = 1600000000000LL,
                       .block_ms = 86400000LL};
    ccd_synth_defaults(&a->so);
    int c;
    while ((c = getopt_long(argc, argv, "X:h", longopts, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return 0;
        }
        if (c == O_VERSION) {
            printf("ccd-replay %s\n", CCD_VERSION);
            return 0;
        }
        int r = stream_option(a, conf, c, optarg);
        if (r == NOT_MINE)
            r = synth_option(&a->so, c, optarg);
        if (r == NOT_MINE)
            usage(stderr);
        if (r != 0)
            return 2;
    }
    return ARGS_RUN;
}

/* The options together: a source, a destination unless only writing files, a generator that
 * ccd_synth_check accepts. ARGS_RUN, or 2 after saying why. */
static int check_args(replay_args *a)
{
    char err[512];
    if (a->data && a->synthetic) {
        fprintf(stderr, "ccd-replay: --data and --synthetic are exclusive\n");
        return 2;
    }
    if (a->write_dir && !a->synthetic) {
        fprintf(stderr,
                "ccd-replay: --write-dataset writes the synthetic stream: add --synthetic\n");
        return 2;
    }
    /* --write-dataset alone writes files; anything naming a broker streams as well */
    a->stream = !a->write_dir || a->brokers || a->topic || a->model || a->partitions;
    if ((!a->data && !a->synthetic) || a->block_ms <= 0 ||
        (a->stream && (!a->brokers || !a->topic || !a->model))) {
        usage(stderr);
        return 2;
    }
    if (a->synthetic) {
        if (a->max_blocks > 0)
            a->so.n_blocks = a->max_blocks;
        if (ccd_synth_check(&a->so, err, sizeof err) != 0) {
            fprintf(stderr, "ccd-replay: %s\n", err);
            return 2;
        }
    }
    return ARGS_RUN;
}

/* The producer on conf (which it takes: *confp = NULL once it does), the topic created first with
 * --create-topic. NULL after saying why. */
static rd_kafka_t *producer_new(const replay_args *a, rd_kafka_conf_t **confp)
{
    char err[512];
    rd_kafka_conf_t *conf = *confp;
    if (rd_kafka_conf_set(conf, "bootstrap.servers", a->brokers, err, sizeof err) !=
        RD_KAFKA_CONF_OK) {
        fprintf(stderr, "ccd-replay: %s\n", err);
        return NULL;
    }
    if (a->partitions > 0 && create_topic(rd_kafka_conf_dup(conf), a->topic, a->partitions) != 0)
        return NULL;
    if (rd_kafka_conf_set(conf, "linger.ms", "20", err, sizeof err) != RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "enable.idempotence", "true", err, sizeof err) !=
            RD_KAFKA_CONF_OK) {
        fprintf(stderr, "ccd-replay: %s\n", err);
        return NULL;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk) {
        fprintf(stderr, "ccd-replay: %s\n", err);
        return NULL;
    }
    *confp = NULL; /* the producer owns it now */
    return rk;
}

/* Send the events, wait for the broker's acknowledgements, print the totals. The exit status: 0
 * only when every event was acknowledged, 130 when interrupted. */
static int stream(const replay_args *a, rd_kafka_conf_t **confp)
{
    char err[512];
    ccd_dataset ds = {0};
    if (a->data && ccd_dataset_load(&ds, a->data, a->max_blocks, err, sizeof err) != 0) {
        fprintf(stderr, "ccd-replay: %s\n", err);
        return 1;
    }
    event_codec *codec = event_codec_new(a->schema, INT64_MIN, INT64_MAX, err, sizeof err);
    if (codec && a->writer_schema &&
        event_codec_encode_as(codec, a->writer_schema, err, sizeof err) != 0) {
        event_codec_free(codec);
        codec = NULL;
    }
    if (!codec) {
        fprintf(stderr, "ccd-replay: %s\n", err);
        ccd_dataset_free(&ds);
        return 1;
    }
    rd_kafka_t *rk = producer_new(a, confp);
    if (!rk) {
        event_codec_free(codec);
        ccd_dataset_free(&ds);
        return 1;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    sender s = {.rk = rk,
                .topic = a->topic,
                .model = a->model,
                .codec = codec,
                .quiet = a->quiet,
                .rate = a->rate,
                .schema_id = a->format == EVENT_FORMAT_CONFLUENT ? a->schema_id : -1};
    s.t0 = s.last_report = now_s();
    int rc = a->synthetic ? replay_synthetic(&s, &a->so, a->from_block, a->base, a->block_ms)
                          : replay_dataset(&s, &ds, a->data, a->from_block, a->base, a->block_ms);
    while (rd_kafka_outq_len(rk) > 0 && rd_kafka_flush(rk, 1000) == RD_KAFKA_RESP_ERR__TIMED_OUT &&
           !interrupted)
        ;
    double secs = now_s() - s.t0;
    printf("sent %lld acked %lld failed %lld seconds %.2f events_per_s %.0f\n", (long long)s.sent,
           (long long)acked, (long long)failed, secs, secs > 0 ? (double)acked / secs : 0.0);
    rd_kafka_destroy(rk);
    event_codec_free(codec);
    ccd_dataset_free(&ds);
    if (interrupted)
        return 130;
    return rc == 0 && failed == 0 && acked == s.sent ? 0 : 1;
}

/* main's body; *confp is main's to free unless the producer took it (then set to NULL), so the
 * early error exits here do not each need their own clean-up. */
static int replay_main(int argc, char **argv, rd_kafka_conf_t **confp)
{
    replay_args a;
    int rc = parse_args(argc, argv, &a, *confp);
    if (rc == ARGS_RUN)
        rc = check_args(&a);
    if (rc != ARGS_RUN)
        return rc;
    if (a.write_dir) {
        char err[512];
        double t = now_s();
        if (ccd_synth_write(&a.so, a.write_dir, err, sizeof err) != 0) {
            fprintf(stderr, "ccd-replay: %s\n", err);
            return 1;
        }
        if (!a.quiet)
            fprintf(stderr, "ccd-replay: wrote %d synthetic blocks to %s in %.2f s\n",
                    a.so.n_blocks, a.write_dir, now_s() - t);
    }
    return a.stream ? stream(&a, confp) : 0;
}

int main(int argc, char **argv)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    int rc = replay_main(argc, argv, &conf);
    if (conf)
        rd_kafka_conf_destroy(conf);
    return rc;
}
