/* ccd-worker: the service's command line (the service itself is worker/service.c).
 *
 *   ccd-worker -c configs/worker.ini [-X section.key=value ...] [--check] [--exit-when-idle MS]
 *              [--embedded-kafka PARTITIONS]
 *
 * The config file is read first, then every -X in order, whatever their order on the command
 * line. Exit status: 0 clean stop, 1 fatal error while running, 2 bad usage, config or start-up. */
#include <getopt.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "omp_env.h"
#include "service.h"
#include "worker_config.h"

static void usage(FILE *f)
{
    fputs("usage: ccd-worker -c CONFIG [-X section.key=value ...] [options]\n"
          "  -c, --config FILE     worker config (INI; see configs/worker.ini)\n"
          "  -X section.key=VALUE  override a config key; kafka.<property> goes to librdkafka\n"
          "  --check               load and check the config, print it (secrets hidden), exit\n"
          "  --exit-when-idle MS   exit cleanly once no message came for MS and nothing is\n"
          "                        pending\n"
          "  --embedded-kafka P    run an in-process Kafka (librdkafka's mock cluster, for demos\n"
          "                        and trials: nothing is persisted) with the input topics\n"
          "                        created with P partitions; its address is logged and\n"
          "                        replaces bootstrap.servers\n"
          "  --help, --version\n",
          f);
}

static void print_config(const worker_config *c)
{
    for (int i = 0; i < c->n_kafka; i++)
        printf("kafka.%s = %s\n", c->kafka[i].key,
               worker_config_is_secret(c->kafka[i].key) ? "(hidden)" : c->kafka[i].value);
    for (int i = 0; i < c->n_topics; i++)
        printf("input.topic = %s\n", c->topics[i]);
    printf("input.format = %s\ninput.dead_letter_topic = %s\n", c->format, c->dead_letter_topic);
    for (int i = 0; i < c->n_schemas; i++)
        printf("input.schema.%d = %s\n", (int)c->schema_ids[i], c->schema_paths[i]);
    if (c->registry_url[0])
        printf("input.registry = %s (user '%s', password %s, CA %s, timeout %d ms)\n",
               c->registry_url, c->registry_username,
               c->registry_password[0] ? "(hidden)" : "(none)",
               c->registry_ca_file[0] ? c->registry_ca_file : "system", c->registry_timeout_ms);
    printf("window.bootstrap_events = %lld\nwindow.events = %lld\nwindow.duration_ms = %lld\n"
           "window.idle_ms = %lld\n",
           (long long)c->bootstrap_events, (long long)c->window_events,
           (long long)c->window_duration_ms, (long long)c->idle_ms);
    printf("redis = %s:%d (user '%s', password %s)\ncheckpoint.dir = %s\n", c->redis_host,
           c->redis_port, c->redis_user, c->redis_password[0] ? "(hidden)" : "(none)",
           c->checkpoint_dir);
}

enum { OPT_CHECK = 1000, OPT_EXIT_IDLE, OPT_VERSION, OPT_EMBEDDED };
static const struct option long_opts[] = {
    {"config", required_argument, NULL, 'c'},
    {"check", no_argument, NULL, OPT_CHECK},
    {"exit-when-idle", required_argument, NULL, OPT_EXIT_IDLE},
    {"embedded-kafka", required_argument, NULL, OPT_EMBEDDED},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0}};

typedef struct {
    const char *config;
    bool check_only;
    service_opts service;
} cmdline;

/* The options but -X (read in a second pass). Returns -1 to go on, else the exit status. */
static int parse_options(int argc, char **argv, cmdline *cl)
{
    int c;
    while ((c = getopt_long(argc, argv, "c:X:h", long_opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            cl->config = optarg;
            break;
        case 'X':
            break;
        case OPT_CHECK:
            cl->check_only = true;
            break;
        case OPT_EXIT_IDLE:
            if (cli_int64("ccd-worker", "exit-when-idle", optarg, 1, INT64_MAX,
                          &cl->service.exit_idle_ms) != 0)
                return 2;
            break;
        case OPT_EMBEDDED:
            if (cli_int("ccd-worker", "embedded-kafka", optarg, 1, 1000,
                        &cl->service.embedded_partitions) != 0)
                return 2;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case OPT_VERSION:
            printf("ccd-worker %s (librdkafka %s)\n", CCD_VERSION, rd_kafka_version_str());
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    return -1;
}

/* The file, then the -X overrides in order, then the cross-key checks. 0 or -1 with err. */
static int load_config(int argc, char **argv, const cmdline *cl, worker_config *cfg, char *err,
                       size_t errlen)
{
    if (cl->config && worker_config_load(cfg, cl->config, err, errlen) != 0)
        return -1;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "c:X:h", long_opts, NULL)) != -1)
        if (c == 'X' && worker_config_override(cfg, optarg, err, errlen) != 0)
            return -1;
    if (cl->service.embedded_partitions > 0 &&
        worker_config_set(cfg, "kafka", "bootstrap.servers", "embedded", err, errlen) != 0)
        return -1;
    return worker_config_check(cfg, err, errlen);
}

static void on_signal(int sig)
{
    (void)sig;
    service_stop();
}

int main(int argc, char **argv)
{
    ccd_omp_env(argv);
    cmdline cl = {0};
    int rc = parse_options(argc, argv, &cl);
    if (rc >= 0)
        return rc;
    static worker_config cfg;
    worker_config_init(&cfg);
    char err[1024];
    if (load_config(argc, argv, &cl, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "ccd-worker: %s\n", err);
        worker_config_free(&cfg);
        return 2;
    }
    if (cl.check_only) {
        print_config(&cfg);
        worker_config_free(&cfg);
        return 0;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    return service_run(&cfg, &cl.service);
}
