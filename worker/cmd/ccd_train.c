/* ccd-train: offline training of one base teacher on one block of a dataset.
 *
 * Trains LightGCN (or MF-BPR) with the base-teacher settings of the CCD reference (d = 128,
 * lr 1e-3, batch 512, 2 negatives, weight decay 1e-4, early stopping on the block's valid R@20)
 * and prints, per epoch, the loss, seconds and valid/test R@20 and N@20; before training it
 * prints the popularity baseline evaluated the same way. Optionally writes a JSON report. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "cli.h"
#include "dense.h"
#include "omp_env.h"
#include "eval.h"
#include "recmodel.h"
#include "train.h"

#define VERSION "0.1.0"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: ccd-train --data DIR [options]\n"
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

typedef struct {
    FILE *json;
    int first;
} report_ctx;

static void print_metrics_json(FILE *f, const ccd_block_metrics *m)
{
    fprintf(f,
            "{\"valid_R20\": %.6f, \"valid_N20\": %.6f, \"valid_R50\": %.6f, \"valid_N50\": %.6f, "
            "\"test_R20\": %.6f, \"test_N20\": %.6f, \"test_R50\": %.6f, \"test_N50\": %.6f, "
            "\"users\": %d}",
            m->valid.recall[CCD_K20], m->valid.ndcg[CCD_K20], m->valid.recall[CCD_K50],
            m->valid.ndcg[CCD_K50], m->test.recall[CCD_K20], m->test.ndcg[CCD_K20],
            m->test.recall[CCD_K50], m->test.ndcg[CCD_K50], m->test.n_users);
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
    if (ctx->json) {
        fprintf(ctx->json, "%s\n    {\"epoch\": %d, \"loss\": %.4f, \"train_seconds\": %.4f",
                ctx->first ? "" : ",", r->epoch, r->loss, r->train_seconds);
        if (r->evaluated) {
            fprintf(ctx->json, ", \"eval_seconds\": %.4f, \"metrics\": ", r->eval_seconds);
            print_metrics_json(ctx->json, &r->metrics);
        }
        fprintf(ctx->json, "}");
        ctx->first = 0;
    }
}

static int parse_int_arg(const char *name, const char *v, int min, int *out)
{
    return cli_int("ccd-train", name, v, min, 1000000000, out);
}

static int parse_float_arg(const char *name, const char *v, float *out)
{
    char *end;
    float x = strtof(v, &end);
    if (*v == '\0' || *end != '\0' || !(x >= 0.0f)) {
        fprintf(stderr, "ccd-train: --%s: expected a non-negative number, got \"%s\"\n", name, v);
        return -1;
    }
    *out = x;
    return 0;
}

int main(int argc, char **argv)
{
    ccd_omp_env(argv);
    static const struct option longopts[] = {
        {"data", required_argument, 0, 'd'},      {"block", required_argument, 0, 'k'},
        {"model", required_argument, 0, 'm'},     {"dim", required_argument, 0, 'D'},
        {"epochs", required_argument, 0, 'e'},    {"patience", required_argument, 0, 'p'},
        {"eval-every", required_argument, 0, 'E'}, {"batch", required_argument, 0, 'b'},
        {"negatives", required_argument, 0, 'n'}, {"lr", required_argument, 0, 'l'},
        {"weight-decay", required_argument, 0, 'w'}, {"seed", required_argument, 0, 's'},
        {"threads", required_argument, 0, 't'},   {"report", required_argument, 0, 'r'},
        {"help", no_argument, 0, 'h'},            {"version", no_argument, 0, 'V'},
        {0, 0, 0, 0}};
    const char *data = NULL, *report = NULL;
    int block = 0, dim = 128, threads = 0, seed = 0;
    ccd_model_type type = CCD_MODEL_LIGHTGCN;
    ccd_train_opts o = ccd_train_opts_base_teacher();
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'd': data = optarg; break;
        case 'r': report = optarg; break;
        case 'k': bad = parse_int_arg("block", optarg, 0, &block); break;
        case 'D': bad = parse_int_arg("dim", optarg, 1, &dim); break;
        case 'e': bad = parse_int_arg("epochs", optarg, 1, &o.max_epochs); break;
        case 'p': bad = parse_int_arg("patience", optarg, 1, &o.patience); break;
        case 'E': bad = parse_int_arg("eval-every", optarg, 1, &o.eval_every); break;
        case 'b': bad = parse_int_arg("batch", optarg, 1, &o.batch); break;
        case 'n': bad = parse_int_arg("negatives", optarg, 1, &o.nns); break;
        case 's': bad = parse_int_arg("seed", optarg, 0, &seed); break;
        case 't': bad = parse_int_arg("threads", optarg, 1, &threads); break;
        case 'l': bad = parse_float_arg("lr", optarg, &o.lr); break;
        case 'w': bad = parse_float_arg("weight-decay", optarg, &o.weight_decay); break;
        case 'm':
            if (strcmp(optarg, "lightgcn") == 0)
                type = CCD_MODEL_LIGHTGCN;
            else if (strcmp(optarg, "mf") == 0)
                type = CCD_MODEL_MF;
            else {
                fprintf(stderr, "ccd-train: --model: expected lightgcn or mf, got \"%s\"\n", optarg);
                bad = 1;
            }
            break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("ccd-train " VERSION "\n"); return 0;
        default: usage(stderr); return 2;
        }
        if (bad)
            return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "ccd-train: unexpected argument \"%s\"\n", argv[optind]);
        return 2;
    }
    if (!data) {
        fprintf(stderr, "ccd-train: --data is required\n");
        usage(stderr);
        return 2;
    }
    o.seed = (uint64_t)seed;
    ccd_set_threads(threads);

    char err[512];
    ccd_dataset ds;
    if (ccd_dataset_load(&ds, data, block + 1, err, sizeof err) != 0) {
        fprintf(stderr, "ccd-train: %s\n", err);
        return 1;
    }
    if (block >= ds.n_blocks) {
        fprintf(stderr, "ccd-train: --block %d: the dataset has %d blocks\n", block, ds.n_blocks);
        ccd_dataset_free(&ds);
        return 2;
    }
    const ccd_block *b = &ds.blocks[block];
    printf("block %d: %d users, %d items, %lld distinct train pairs (%lld lines)\n", block,
           b->n_users, b->n_items, (long long)b->train.nnz, (long long)b->n_train_lines);
    FILE *json = NULL;
    if (report && !(json = fopen(report, "w"))) {
        fprintf(stderr, "ccd-train: --report %s: cannot open for writing\n", report);
        ccd_dataset_free(&ds);
        return 1;
    }
    int rc = 1;
    ccd_csr graph = {0};
    ccd_recmodel m = {0};
    ccd_block_metrics pop;
    if (ccd_evaluate_popularity(b, b, 1, &pop) != 0)
        goto done;
    printf("popularity baseline: valid R@20 %.4f N@20 %.4f  test R@20 %.4f N@20 %.4f "
           "(R@50 %.4f N@50 %.4f, %d test users)\n",
           pop.valid.recall[CCD_K20], pop.valid.ndcg[CCD_K20], pop.test.recall[CCD_K20],
           pop.test.ndcg[CCD_K20], pop.test.recall[CCD_K50], pop.test.ndcg[CCD_K50],
           pop.test.n_users);
    if (json) {
        fprintf(json, "{\n  \"block\": %d, \"model\": \"%s\", \"dim\": %d, \"seed\": %d, \"threads\": %d,\n",
                block, type == CCD_MODEL_MF ? "mf" : "lightgcn", dim, seed, ccd_threads());
        fprintf(json, "  \"popularity\": ");
        print_metrics_json(json, &pop);
        fprintf(json, ",\n  \"epochs\": [");
    }
    if (type == CCD_MODEL_LIGHTGCN && ccd_graph_build(&graph, &b->train, b->n_users, b->n_items) != 0)
        goto done;
    ccd_rng init_rng;
    ccd_rng_init(&init_rng, (uint64_t)seed, ccd_stream(CCD_STREAM_TEACHER_INIT, 0, 0)); /* as the engine's base teachers */
    if (ccd_recmodel_init(&m, type, b->n_users, b->n_items, dim,
                          type == CCD_MODEL_LIGHTGCN ? &graph : NULL, &init_rng) != 0)
        goto done;
    printf("training %s d=%d on %d threads: lr %g, batch %d, %d negatives, weight decay %g, "
           "up to %d epochs, patience %d\n",
           type == CCD_MODEL_MF ? "MF-BPR" : "LightGCN", dim, ccd_threads(), o.lr, o.batch, o.nns,
           o.weight_decay, o.max_epochs, o.patience);
    report_ctx ctx = {json, 1};
    ccd_block_metrics best;
    int best_epoch = 0;
    double t0 = ccd_now();
    if (ccd_train_bpr(&m, b, NULL, &o, on_epoch, &ctx, &best, &best_epoch) != 0) {
        fprintf(stderr, "ccd-train: out of memory\n");
        goto done;
    }
    double total = ccd_now() - t0;
    printf("selected epoch %d: valid R@20 %.4f N@20 %.4f  test R@20 %.4f N@20 %.4f  "
           "(R@50 %.4f N@50 %.4f); %.1f s in all\n",
           best_epoch, best.valid.recall[CCD_K20], best.valid.ndcg[CCD_K20],
           best.test.recall[CCD_K20], best.test.ndcg[CCD_K20], best.test.recall[CCD_K50],
           best.test.ndcg[CCD_K50], total);
    if (json) {
        fprintf(json, "\n  ],\n  \"best_epoch\": %d, \"seconds\": %.3f,\n  \"best\": ", best_epoch, total);
        print_metrics_json(json, &best);
        fprintf(json, "\n}\n");
    }
    rc = 0;
done:
    if (json && fclose(json) != 0) {
        fprintf(stderr, "ccd-train: --report %s: write failed\n", report);
        rc = 1;
    }
    ccd_recmodel_free(&m);
    ccd_csr_free(&graph);
    ccd_dataset_free(&ds);
    return rc;
}
