/* ccd-train: offline training of one base teacher on one block of a dataset.
 *
 * Trains LightGCN (or MF-BPR) with the base-teacher settings of the CCD reference (d = 128,
 * lr 1e-3, batch 512, 2 negatives, weight decay 1e-4, early stopping on the block's valid R@20)
 * and prints, per epoch, the loss, seconds and valid/test R@20 and N@20; before training it
 * prints the popularity baseline evaluated the same way. Optionally writes a JSON report.
 *
 * worker/cmd/ holds the binaries' mains, one file each: its command line, the steps it runs and
 * what it prints. What they run lives in worker/ (the service's pieces), worker/config/ (config
 * files) and models/ (libccd, the engine). */
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "dataset.h"
#include "dense.h"
#include "omp_env.h"
#include "eval.h"
#include "json_file.h"
#include "recmodel.h"
#include "train.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: ccd-train --data DIR [options]\n"
               "  --data DIR        block dataset (blocks.tsv, block<k>/...)\n"
               "  --block K         block to train on (default 0)\n"
               "  --model NAME      lightgcn (default) or mf\n"
               "  --dim D           embedding size (default 128)\n"
               "  --epochs N        maximum epochs (default 100)\n"
               "  --patience N      evaluations without a better valid R@20 before stopping (10)\n"
               "  --eval-every N    evaluate every N epochs (default 1)\n"
               "  --batch B         mini-batch size (default 512)\n"
               "  --negatives N     negatives per positive (default 2)\n"
               "  --lr X            learning rate (default 1e-3)\n"
               "  --weight-decay X  coupled L2 (default 1e-4)\n"
               "  --seed S          random seed (default 0)\n"
               "  --threads T       BLAS and OpenMP threads (default: all cores)\n"
               "  --report FILE     write a JSON report\n"
               "  --help, --version\n");
}

/* The JSON report (jansson): the object is built as training goes and written at the end. */
typedef struct {
    json_t *report; /* NULL: no --report */
} report_ctx;

static json_t *metrics_json(const ccd_block_metrics *m)
{
    return json_pack("{s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:i}", "valid_R20",
                     m->valid.recall[CCD_K20], "valid_N20", m->valid.ndcg[CCD_K20], "valid_R50",
                     m->valid.recall[CCD_K50], "valid_N50", m->valid.ndcg[CCD_K50], "test_R20",
                     m->test.recall[CCD_K20], "test_N20", m->test.ndcg[CCD_K20], "test_R50",
                     m->test.recall[CCD_K50], "test_N50", m->test.ndcg[CCD_K50], "users",
                     m->test.n_users);
}

static void on_epoch(const ccd_epoch_report *r, void *vctx)
{
    report_ctx *ctx = vctx;
    if (r->evaluated)
        printf("epoch %3d  loss %12.2f  train %6.2f s  eval %5.2f s  valid R@20 %.4f N@20 %.4f  "
               "test R@20 %.4f N@20 %.4f%s\n",
               r->epoch, r->loss, r->train_seconds, r->eval_seconds,
               r->metrics.valid.recall[CCD_K20], r->metrics.valid.ndcg[CCD_K20],
               r->metrics.test.recall[CCD_K20], r->metrics.test.ndcg[CCD_K20],
               r->improved ? "  *" : "");
    else
        printf("epoch %3d  loss %12.2f  train %6.2f s\n", r->epoch, r->loss, r->train_seconds);
    fflush(stdout);
    if (ctx->report) {
        json_t *e = json_pack("{s:i, s:f, s:f}", "epoch", r->epoch, "loss", r->loss,
                              "train_seconds", r->train_seconds);
        if (e && r->evaluated) {
            json_object_set_new(e, "eval_seconds", json_real(r->eval_seconds));
            json_object_set_new(e, "metrics", metrics_json(&r->metrics));
        }
        json_array_append_new(json_object_get(ctx->report, "epochs"), e);
    }
}

static int parse_int_arg(const char *name, const char *v, int min, int *out)
{
    return cli_int("ccd-train", name, v, min, 1000000000, out);
}

static int parse_float_arg(const char *name, const char *v, float *out)
{
    if (cli_parse_float(v, 0.0f, INFINITY, out) == 0)
        return 0;
    fprintf(stderr, "ccd-train: --%s: expected a non-negative number, got \"%s\"\n", name, v);
    return -1;
}

/* The command line. */
typedef struct {
    const char *data, *report; /* report NULL: no JSON */
    int block, dim, threads, seed;
    ccd_model_type type;
    ccd_train_opts o; /* the base teacher's settings, as the options change them */
} train_args;

enum { ARGS_RUN = -1 };

/* One option c with its argument: 0, -1 after saying why it is bad, -2 when c is no option. */
static int take_option(train_args *a, int c, const char *arg)
{
    switch (c) {
    case 'd':
        a->data = arg;
        return 0;
    case 'r':
        a->report = arg;
        return 0;
    case 'k':
        return parse_int_arg("block", arg, 0, &a->block);
    case 'D':
        return parse_int_arg("dim", arg, 1, &a->dim);
    case 'e':
        return parse_int_arg("epochs", arg, 1, &a->o.stage.epochs);
    case 'p':
        return parse_int_arg("patience", arg, 1, &a->o.stage.patience);
    case 'E':
        return parse_int_arg("eval-every", arg, 1, &a->o.stage.eval_every);
    case 'b':
        return parse_int_arg("batch", arg, 1, &a->o.stage.batch);
    case 'n':
        return parse_int_arg("negatives", arg, 1, &a->o.stage.nns);
    case 's':
        return parse_int_arg("seed", arg, 0, &a->seed);
    case 't':
        return parse_int_arg("threads", arg, 1, &a->threads);
    case 'l':
        return parse_float_arg("lr", arg, &a->o.stage.lr);
    case 'w':
        return parse_float_arg("weight-decay", arg, &a->o.stage.weight_decay);
    case 'm':
        if (strcmp(arg, "lightgcn") == 0)
            a->type = CCD_MODEL_LIGHTGCN;
        else if (strcmp(arg, "mf") == 0)
            a->type = CCD_MODEL_MF;
        else {
            fprintf(stderr, "ccd-train: --model: expected lightgcn or mf, got \"%s\"\n", arg);
            return -1;
        }
        return 0;
    default:
        return -2;
    }
}

/* argv -> a. ARGS_RUN, or the exit status: 0 after --help or --version, 2 on a bad command
 * line. */
static int parse_args(int argc, char **argv, train_args *a)
{
    static const struct option longopts[] = {{"data", required_argument, 0, 'd'},
                                             {"block", required_argument, 0, 'k'},
                                             {"model", required_argument, 0, 'm'},
                                             {"dim", required_argument, 0, 'D'},
                                             {"epochs", required_argument, 0, 'e'},
                                             {"patience", required_argument, 0, 'p'},
                                             {"eval-every", required_argument, 0, 'E'},
                                             {"batch", required_argument, 0, 'b'},
                                             {"negatives", required_argument, 0, 'n'},
                                             {"lr", required_argument, 0, 'l'},
                                             {"weight-decay", required_argument, 0, 'w'},
                                             {"seed", required_argument, 0, 's'},
                                             {"threads", required_argument, 0, 't'},
                                             {"report", required_argument, 0, 'r'},
                                             {"help", no_argument, 0, 'h'},
                                             {"version", no_argument, 0, 'V'},
                                             {0, 0, 0, 0}};
    *a = (train_args){.dim = 128, .type = CCD_MODEL_LIGHTGCN, .o = ccd_train_opts_base_teacher()};
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return 0;
        }
        if (c == 'V') {
            printf("ccd-train " CCD_VERSION "\n");
            return 0;
        }
        int r = take_option(a, c, optarg);
        if (r == -2)
            usage(stderr);
        if (r != 0)
            return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "ccd-train: unexpected argument \"%s\"\n", argv[optind]);
        return 2;
    }
    if (!a->data) {
        fprintf(stderr, "ccd-train: --data is required\n");
        usage(stderr);
        return 2;
    }
    a->o.seed = (uint64_t)a->seed;
    return ARGS_RUN;
}

/* The popularity baseline of block b, printed and written to the JSON report's head. 0, or -1. */
static int report_popularity(const train_args *a, const ccd_block *b, json_t *report)
{
    ccd_block_metrics pop;
    if (ccd_evaluate_popularity(b, b, 1, &pop) != 0)
        return -1;
    printf("popularity baseline: valid R@20 %.4f N@20 %.4f  test R@20 %.4f N@20 %.4f "
           "(R@50 %.4f N@50 %.4f, %d test users)\n",
           pop.valid.recall[CCD_K20], pop.valid.ndcg[CCD_K20], pop.test.recall[CCD_K20],
           pop.test.ndcg[CCD_K20], pop.test.recall[CCD_K50], pop.test.ndcg[CCD_K50],
           pop.test.n_users);
    if (report) {
        json_object_set_new(report, "block", json_integer(a->block));
        json_object_set_new(report, "model",
                            json_string(a->type == CCD_MODEL_MF ? "mf" : "lightgcn"));
        json_object_set_new(report, "dim", json_integer(a->dim));
        json_object_set_new(report, "seed", json_integer(a->seed));
        json_object_set_new(report, "threads", json_integer(ccd_threads()));
        json_object_set_new(report, "popularity", metrics_json(&pop));
        json_object_set_new(report, "epochs", json_array());
    }
    return 0;
}

/* Train the model on block b, printing every epoch and the selected one. 0, or 1. */
static int train_model(const train_args *a, const ccd_block *b, json_t *report)
{
    int rc = 1;
    ccd_csr graph = {0};
    ccd_recmodel m = {0};
    if (a->type == CCD_MODEL_LIGHTGCN &&
        ccd_graph_build(&graph, &b->train, b->n_users, b->n_items) != 0)
        goto done;
    ccd_rng init_rng;
    ccd_rng_init(&init_rng, (uint64_t)a->seed,
                 ccd_stream(CCD_STREAM_TEACHER_INIT, 0, 0)); /* as the engine's base teachers */
    if (ccd_recmodel_init(&m, a->type, b->n_users, b->n_items, a->dim,
                          a->type == CCD_MODEL_LIGHTGCN ? &graph : NULL, &init_rng) != 0)
        goto done;
    const ccd_stage_opts *o = &a->o.stage;
    printf("training %s d=%d on %d threads: lr %g, batch %d, %d negatives, weight decay %g, "
           "up to %d epochs, patience %d\n",
           a->type == CCD_MODEL_MF ? "MF-BPR" : "LightGCN", a->dim, ccd_threads(), o->lr, o->batch,
           o->nns, o->weight_decay, o->epochs, o->patience);
    report_ctx ctx = {report};
    ccd_block_metrics best;
    int best_epoch = 0;
    double t0 = ccd_now();
    if (ccd_train_bpr(&m, b, NULL, &a->o, on_epoch, &ctx, &best, &best_epoch) != 0) {
        fprintf(stderr, "ccd-train: out of memory\n");
        goto done;
    }
    double total = ccd_now() - t0;
    printf("selected epoch %d: valid R@20 %.4f N@20 %.4f  test R@20 %.4f N@20 %.4f  "
           "(R@50 %.4f N@50 %.4f); %.1f s in all\n",
           best_epoch, best.valid.recall[CCD_K20], best.valid.ndcg[CCD_K20],
           best.test.recall[CCD_K20], best.test.ndcg[CCD_K20], best.test.recall[CCD_K50],
           best.test.ndcg[CCD_K50], total);
    if (report) {
        json_object_set_new(report, "best_epoch", json_integer(best_epoch));
        json_object_set_new(report, "seconds", json_real(total));
        json_object_set_new(report, "best", metrics_json(&best));
    }
    rc = 0;
done:
    ccd_recmodel_free(&m);
    ccd_csr_free(&graph);
    return rc;
}

int main(int argc, char **argv)
{
    ccd_omp_env(argv);
    train_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc != ARGS_RUN)
        return rc;
    ccd_set_threads(a.threads);
    char err[512];
    ccd_dataset ds;
    if (ccd_dataset_load(&ds, a.data, a.block + 1, err, sizeof err) != 0) {
        fprintf(stderr, "ccd-train: %s\n", err);
        return 1;
    }
    if (a.block >= ds.n_blocks) {
        fprintf(stderr, "ccd-train: --block %d: the dataset has %d blocks\n", a.block, ds.n_blocks);
        ccd_dataset_free(&ds);
        return 2;
    }
    const ccd_block *b = &ds.blocks[a.block];
    printf("block %d: %d users, %d items, %lld distinct train pairs (%lld lines)\n", a.block,
           b->n_users, b->n_items, (long long)b->train.nnz, (long long)b->n_train_lines);
    /* the report file is opened first, so that a bad path fails before the training */
    FILE *f = NULL;
    if (a.report && !(f = fopen(a.report, "w"))) {
        fprintf(stderr, "ccd-train: --report %s: cannot open for writing\n", a.report);
        ccd_dataset_free(&ds);
        return 1;
    }
    json_t *report = f ? json_object() : NULL;
    rc = report_popularity(&a, b, report) == 0 ? train_model(&a, b, report) : 1;
    if (f && json_file_write(report, f) != 0) {
        fprintf(stderr, "ccd-train: --report %s: write failed\n", a.report);
        rc = 1;
    }
    json_decref(report);
    ccd_dataset_free(&ds);
    return rc;
}
