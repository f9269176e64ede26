/* ccd-offline: run CCD over every block of a dataset and report the r[k][j] matrices.
 *
 *   ccd-offline -c configs/yelp.ini --data ../shared/data/yelp --report report.json
 *
 * For each block k it runs the engine's block step (bootstrap at k = 0) and evaluates the
 * continual student CL_k, the ensemble E_k and the distilled student D_k on the test split of
 * every block j <= k. It prints the matrices, LA / RA / H-mean of CL_k (k >= 1), seconds per
 * stage and block, and the peak RSS, and writes them as JSON (--report) and as an HTML page with
 * charts (--html, rewritten after every block so a long run can be watched).
 *
 * worker/cmd/ holds the binaries' mains, one file each: its command line, the steps it runs and
 * what it prints. What they run lives in worker/ (the service's pieces), worker/config/ (config
 * files) and models/ (libccd, the engine). */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ccd.h"
#include "cli.h"
#include "ccd_config.h"
#include "checkpoint.h"
#include "dataset.h"
#include "dense.h"
#include "eval.h"
#include "json_file.h"
#include "omp_env.h"
#include "report_html.h"
#include "state.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: ccd-offline [-c CONFIG] --data DIR [--report FILE] [options]\n"
            "  -c, --config FILE  INI config ([ccd...] sections); default: the Yelp reference "
            "settings\n"
            "  -X section.key=V   override one config value (repeatable)\n"
            "  --data DIR         block dataset (blocks.tsv, block<k>/...)\n"
            "  --blocks N         process only the first N blocks\n"
            "  --report FILE      write the JSON report\n"
            "  --html FILE        write an HTML report with charts (after every block)\n"
            "  --eval-users N     evaluate (model selection and reported metrics) on about N\n"
            "                     users per block when more have test items, sampled by a\n"
            "                     hash of the user id; 0: every user (default: the config's\n"
            "                     ccd.eval_users, 32768)\n"
            "  --checkpoint DIR   save the engine state after each block as DIR/state-<k>.bin\n"
            "  --resume FILE      start from a saved state (blocks up to its block are skipped)\n"
            "  --threads T        BLAS and OpenMP threads (default: all cores)\n"
            "  --quiet            no progress lines\n"
            "  --help, --version\n");
}

static double t_start;

static void log_line(void *ctx, const char *msg)
{
    (void)ctx;
    fprintf(stderr, "[%7.1f s] %s\n", ccd_now() - t_start, msg);
}

static double peak_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

/* The state file: written to a temporary name, flushed to disk, then renamed, so a crash
 * never leaves a half-written checkpoint under the real name. */
static int state_write(const ccd_state *st, const char *dir, int k, char *err, size_t errlen)
{
    unsigned char *buf;
    size_t len;
    if (ccd_state_serialize(st, &buf, &len) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/state-%d.bin", dir, k);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    int ok = f && fwrite(buf, 1, len, f) == len && fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (f && fclose(f) != 0)
        ok = 0;
    free(buf);
    if (!ok || rename(tmp, path) != 0) {
        snprintf(err, errlen, "%.900s: %s", path, strerror(errno));
        remove(tmp);
        return -1;
    }
    return 0;
}

/* Outputs are checked before the run, not when they are first written: a bootstrap alone takes
 * minutes, and a mistyped path should not cost them. The checkpoint directory is created if
 * missing (as the worker's, with checkpoint_make_dirs); a report file's directory must exist and
 * be writable. */
static int checkpoint_dir_ready(const char *dir, char *err, size_t errlen)
{
    struct stat sb;
    if (checkpoint_make_dirs(dir, err, errlen) != 0)
        return -1;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        snprintf(err, errlen, "%.900s is not a directory", dir);
        return -1;
    }
    if (access(dir, W_OK | X_OK) != 0) {
        snprintf(err, errlen, "%.900s: %s", dir, strerror(errno));
        return -1;
    }
    return 0;
}

static int output_file_ready(const char *path, char *err, size_t errlen)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode) || access(dir, W_OK | X_OK) != 0) {
        snprintf(err, errlen, "%.400s: directory %.400s is missing or not writable", path, dir);
        return -1;
    }
    if (stat(path, &sb) == 0 && (S_ISDIR(sb.st_mode) || access(path, W_OK) != 0)) {
        snprintf(err, errlen, "%.900s exists and cannot be overwritten", path);
        return -1;
    }
    return 0;
}

static int state_read(ccd_state *st, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot open: %s", strerror(errno));
        return -1;
    }
    unsigned char *buf = NULL;
    size_t len = 0, cap = 0, got;
    do {
        if (len == cap) {
            cap = cap ? 2 * cap : (1 << 20);
            unsigned char *p = realloc(buf, cap);
            if (!p) {
                free(buf);
                fclose(f);
                snprintf(err, errlen, "out of memory");
                return -1;
            }
            buf = p;
        }
        got = fread(buf + len, 1, cap - len, f);
        len += got;
    } while (got > 0);
    int bad = ferror(f);
    fclose(f);
    int rc = bad ? -1 : ccd_state_deserialize(st, buf, len, err, errlen);
    if (bad)
        snprintf(err, errlen, "read error");
    free(buf);
    return rc;
}

typedef struct {
    double la, ra, h;
} forgetting;

/* LA = mean_k r[k][k], RA = mean_k mean_{j<k} r[k][j], k = max(1, first)..n-1;
 * H = 2 LA RA / (LA + RA). (first > 1 only when resuming: earlier rows were not run.) */
static forgetting summarise(double **r, int first, int n)
{
    forgetting f = {0, 0, 0};
    int k0 = first > 1 ? first : 1;
    if (n - k0 < 1)
        return f;
    for (int k = k0; k < n; k++) {
        f.la += r[k][k];
        double s = 0;
        for (int j = 0; j < k; j++)
            s += r[k][j];
        f.ra += s / k;
    }
    f.la /= n - k0;
    f.ra /= n - k0;
    f.h = f.la + f.ra > 0 ? 2 * f.la * f.ra / (f.la + f.ra) : 0;
    return f;
}

/* r[k][j] for k = first..n-1, j <= k: the lower triangle as an array of rows. */
static json_t *json_matrix(double **r, int first, int n)
{
    json_t *rows = json_array();
    for (int k = first; k < n; k++) {
        json_t *row = json_array();
        for (int j = 0; j <= k; j++)
            json_array_append_new(row, json_real(r[k][j]));
        json_array_append_new(rows, row);
    }
    return rows;
}

static void print_matrix(const char *name, const char *metric, double **r, int first, int n)
{
    printf("%s test %s, r[k][j]:\n", name, metric);
    for (int k = first; k < n; k++) {
        printf("  k=%d", k);
        for (int j = 0; j <= k; j++)
            printf("  %.4f", r[k][j]);
        printf("\n");
    }
}

/* The HTML page of rows first..done-1 (report_html.h). */
static int write_html(const char *path, const char *config, const char *data, const ccd_config *cfg,
                      double **r[6], double *pop[2], double (*secs)[5], int first, int done,
                      char *err, size_t errlen)
{
    report_html h = {.title = "CCD offline run", .n_blocks = done, .first = first};
    char f_cfg[512], f_seed[32], f_teach[512], f_lara[128], f_lara_n[128], f_time[64], f_rss[32],
        f_blocks[64];
    snprintf(f_cfg, sizeof f_cfg, "%.500s", config ? config : "(built-in Yelp reference settings)");
    snprintf(f_seed, sizeof f_seed, "%llu", (unsigned long long)cfg->seed);
    size_t o = 0;
    f_teach[0] = '\0';
    for (int t = 0; t < cfg->n_teachers && o + 40 < sizeof f_teach; t++)
        o += (size_t)snprintf(f_teach + o, sizeof f_teach - o, "%s%s d=%d seed %d", t ? ", " : "",
                              cfg->teachers[t].type == CCD_MODEL_MF ? "MF-BPR" : "LightGCN",
                              cfg->teachers[t].dim, (int)cfg->teachers[t].seed);
    snprintf(f_blocks, sizeof f_blocks, "%d to %d", first, done - 1);
    forgetting fr = summarise(r[0], first, done), fn = summarise(r[1], first, done);
    snprintf(f_lara, sizeof f_lara, "%.4f / %.4f / %.4f", fr.la, fr.ra, fr.h);
    snprintf(f_lara_n, sizeof f_lara_n, "%.4f / %.4f / %.4f", fn.la, fn.ra, fn.h);
    double total = 0;
    for (int k = first; k < done; k++)
        total += secs[k][4];
    snprintf(f_time, sizeof f_time, "%.1f s (%d threads)", total, ccd_threads());
    snprintf(f_rss, sizeof f_rss, "%.0f MB", peak_rss_mb());
    report_add_fact(&h, "config", f_cfg);
    report_add_fact(&h, "data", data);
    report_add_fact(&h, "blocks", f_blocks);
    report_add_fact(&h, "seed", f_seed);
    report_add_fact(&h, "teachers", f_teach);
    report_add_fact(&h, "CL_k LA / RA / H-mean, R@20",
                    done - first > 1 || first > 0 ? f_lara : "(after block 1)");
    report_add_fact(&h, "CL_k LA / RA / H-mean, N@20",
                    done - first > 1 || first > 0 ? f_lara_n : "(after block 1)");
    report_add_fact(&h, "total time", f_time);
    report_add_fact(&h, "peak RSS", f_rss);
    h.series[0] = (report_series){"continual student CL_k", "#1f77b4", r[0], r[1]};
    h.series[1] = (report_series){"ensemble E_k", "#ff7f0e", r[2], r[3]};
    h.series[2] = (report_series){"distilled D_k", "#2ca02c", r[4], r[5]};
    h.n_series = 3;
    h.base_r20 = pop[0];
    h.base_n20 = pop[1];
    /* secs[k] = student, teachers, ensemble, distill, total: the chart stacks the four stages
     * and the rest (evaluation, set-up) */
    double *st = calloc((size_t)done * 5, sizeof *st);
    if (!st) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (int k = first; k < done; k++) {
        double rest = secs[k][4];
        for (int q = 0; q < 4; q++) {
            st[k * 5 + q] = secs[k][q];
            rest -= secs[k][q];
        }
        st[k * 5 + 4] = rest > 0 ? rest : 0;
    }
    h.n_stages = 5;
    const char *names[] = {"student update", "teachers", "ensemble", "distillation",
                           "evaluation and set-up"};
    for (int q = 0; q < 5; q++)
        h.stage_names[q] = names[q];
    h.stage_secs = st;
    int rc = report_html_write(&h, path, err, errlen);
    free(st);
    return rc;
}

/* The command line. */
typedef struct {
    const char *config, *data, *report, *ckpt_dir, *resume, *html; /* NULL: not given */
    const char *overrides[64];                                     /* -X section.key=value */
    int n_overrides;
    int max_blocks, threads, quiet; /* 0: every block, every core */
    int eval_users;                 /* -1: the config's */
} offline_args;

enum { ARGS_RUN = -1 };

static const struct option longopts[] = {{"config", required_argument, 0, 'c'},
                                         {"data", required_argument, 0, 'd'},
                                         {"blocks", required_argument, 0, 'b'},
                                         {"report", required_argument, 0, 'r'},
                                         {"checkpoint", required_argument, 0, 'C'},
                                         {"resume", required_argument, 0, 'R'},
                                         {"threads", required_argument, 0, 't'},
                                         {"quiet", no_argument, 0, 'q'},
                                         {"html", required_argument, 0, 'H'},
                                         {"eval-users", required_argument, 0, 'E'},
                                         {"help", no_argument, 0, 'h'},
                                         {"version", no_argument, 0, 'V'},
                                         {0, 0, 0, 0}};

/* argv -> a. ARGS_RUN, or the exit status: 0 after --help or --version, 2 on a bad command
 * line. */
static int parse_args(int argc, char **argv, offline_args *a)
{
    *a = (offline_args){.eval_users = -1};
    int c;
    while ((c = getopt_long(argc, argv, "c:X:", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            a->config = optarg;
            break;
        case 'X':
            if (a->n_overrides == 64) {
                fprintf(stderr, "ccd-offline: too many -X\n");
                return 2;
            }
            a->overrides[a->n_overrides++] = optarg;
            break;
        case 'd':
            a->data = optarg;
            break;
        case 'r':
            a->report = optarg;
            break;
        case 'H':
            a->html = optarg;
            break;
        case 'C':
            a->ckpt_dir = optarg;
            break;
        case 'R':
            a->resume = optarg;
            break;
        case 'b':
            if (cli_int("ccd-offline", "blocks", optarg, 1, 1 << 20, &a->max_blocks) != 0)
                return 2;
            break;
        case 't':
            if (cli_int("ccd-offline", "threads", optarg, 1, 4096, &a->threads) != 0)
                return 2;
            break;
        case 'q':
            a->quiet = 1;
            break;
        case 'E':
            if (cli_int("ccd-offline", "eval-users", optarg, 0, 1 << 30, &a->eval_users) != 0)
                return 2;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("ccd-offline " CCD_VERSION "\n");
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!a->data || optind < argc) {
        fprintf(stderr, "ccd-offline: %s\n",
                a->data ? "unexpected argument" : "--data is required");
        usage(stderr);
        return 2;
    }
    return ARGS_RUN;
}

/* The engine's config: the Yelp reference settings, then -c FILE, then every -X in order; then
 * the outputs checked. 0, or 2 after saying why. */
static int prepare(const offline_args *a, ccd_config *cfg)
{
    char err[1024];
    ccd_config_yelp(cfg);
    if (a->config && ccd_config_load(cfg, a->config, err, sizeof err) != 0) {
        fprintf(stderr, "ccd-offline: %s\n", err);
        return 2;
    }
    for (int k = 0; k < a->n_overrides; k++)
        if (ccd_config_override(cfg, a->overrides[k], err, sizeof err) != 0) {
            fprintf(stderr, "ccd-offline: %s\n", err);
            return 2;
        }
    if (a->ckpt_dir && checkpoint_dir_ready(a->ckpt_dir, err, sizeof err) != 0) {
        fprintf(stderr, "ccd-offline: --checkpoint: %s\n", err);
        return 2;
    }
    if (a->report && output_file_ready(a->report, err, sizeof err) != 0) {
        fprintf(stderr, "ccd-offline: --report: %s\n", err);
        return 2;
    }
    if (a->html && output_file_ready(a->html, err, sizeof err) != 0) {
        fprintf(stderr, "ccd-offline: --html: %s\n", err);
        return 2;
    }
    return 0;
}

/* Evaluation on about cfg->eval_users users of each block (ccd_block_sample_eval). */
static void sample_eval_users(ccd_dataset *ds, const ccd_config *cfg, int quiet)
{
    for (int k = 0; k < ds->n_blocks && cfg->eval_users > 0; k++) {
        const ccd_csr *t = &ds->blocks[k].test;
        int all = 0;
        for (int u = 0; u < t->n_rows; u++)
            all += t->indptr[u + 1] > t->indptr[u];
        int kept = ccd_block_sample_eval(&ds->blocks[k], cfg->eval_users, cfg->seed);
        if (!quiet && kept < all)
            fprintf(stderr,
                    "block %d: evaluating on %d of its %d users with test items (eval_users)\n", k,
                    kept, all);
    }
}

/* What the run measured, block by block (rows first..n-1 filled as they run). */
typedef struct {
    int n;             /* blocks */
    double *store;     /* (8 x n x n) */
    double **r[8];     /* r[q][k][j] on block j's test split: student R, N; ensemble R, N; distilled
                          R, N; then the student's R, N on block j's valid split (n x n each) */
    double (*secs)[5]; /* (n) student, teachers, ensemble, distill, total */
    double (*block_extra)[2]; /* (n) evaluation s, peak RSS MB */
    double *pop[2];           /* (n) popularity baseline R@20, N@20 on block k's test */
} offline_results;

static void results_free(offline_results *res)
{
    for (int q = 0; q < 8; q++)
        free(res->r[q]);
    free(res->store);
    free(res->secs);
    free(res->block_extra);
    free(res->pop[0]);
    free(res->pop[1]);
}

static int results_init(offline_results *res, int n)
{
    *res = (offline_results){.n = n};
    res->store = calloc((size_t)n * n * 8, sizeof *res->store);
    int ok = res->store != NULL;
    for (int q = 0; q < 8; q++) {
        res->r[q] = malloc((size_t)n * sizeof *res->r[q]);
        ok = ok && res->r[q];
        for (int k = 0; k < n && ok; k++)
            res->r[q][k] = res->store + ((size_t)q * n + k) * n;
    }
    res->secs = calloc((size_t)n, sizeof *res->secs);
    res->block_extra = calloc((size_t)n, sizeof *res->block_extra);
    res->pop[0] = calloc((size_t)n, sizeof(double));
    res->pop[1] = calloc((size_t)n, sizeof(double));
    return ok && res->secs && res->block_extra && res->pop[0] && res->pop[1] ? 0 : -1;
}

/* Block k's report into the results, and its progress line on stdout. */
static void record_block(offline_results *res, int k, const ccd_block_report *rep)
{
    double **const *r = res->r;
    for (int j = 0; j <= k; j++) {
        r[0][k][j] = rep->student[j].test.recall[CCD_K20];
        r[1][k][j] = rep->student[j].test.ndcg[CCD_K20];
        r[2][k][j] = rep->ensemble[j].test.recall[CCD_K20];
        r[3][k][j] = rep->ensemble[j].test.ndcg[CCD_K20];
        r[4][k][j] = rep->distilled[j].test.recall[CCD_K20];
        r[5][k][j] = rep->distilled[j].test.ndcg[CCD_K20];
        r[6][k][j] = rep->student[j].valid.recall[CCD_K20];
        r[7][k][j] = rep->student[j].valid.ndcg[CCD_K20];
    }
    res->secs[k][0] = rep->seconds_student;
    res->secs[k][1] = rep->seconds_teachers;
    res->secs[k][2] = rep->seconds_ensemble;
    res->secs[k][3] = rep->seconds_distill;
    res->secs[k][4] = rep->seconds_total;
    res->block_extra[k][0] = rep->seconds_eval;
    res->block_extra[k][1] = peak_rss_mb();
    printf("block %d: %.1f s (student %.1f, teachers %.1f, ensemble %.1f, distill %.1f; "
           "evaluation inside them %.1f); CL test R@20 %.4f N@20 %.4f, E %.4f, D %.4f; "
           "peak RSS %.0f MB\n",
           k, rep->seconds_total, rep->seconds_student, rep->seconds_teachers,
           rep->seconds_ensemble, rep->seconds_distill, rep->seconds_eval, r[0][k][k], r[1][k][k],
           r[2][k][k], r[4][k][k], res->block_extra[k][1]);
    fflush(stdout);
}

/* One run of blocks first..n-1: what every block step reads, and where its outputs go. */
typedef struct {
    const offline_args *a;
    const ccd_config *cfg;
    const ccd_dataset *ds;
    ccd_state st;
    int first; /* the first block run (after --resume, the one after the saved state's) */
    offline_results res;
} offline_run;

/* Block k: the engine's block step, its numbers, the --html page, the --checkpoint state. 0, or 1
 * when the run must stop. */
static int run_block(offline_run *run, int k)
{
    const offline_args *a = run->a;
    char err[1024];
    ccd_block_report rep;
    ccd_block_hooks hooks = {.log = a->quiet ? NULL : log_line};
    if (ccd_block_step(&run->st, run->cfg, &run->ds->blocks[k], run->ds->blocks, k + 1, &rep,
                       &hooks, err, sizeof err) != 0) {
        fprintf(stderr, "ccd-offline: %s\n", err);
        ccd_block_report_free(&rep);
        return 1;
    }
    record_block(&run->res, k, &rep);
    ccd_block_report_free(&rep);
    /* the baseline both reports show beside the models (a model below it learnt nothing): one
     * more evaluation of block k (users x items, like the models'), so only when one is asked */
    ccd_block_metrics pm;
    if ((a->html || a->report) &&
        ccd_evaluate_popularity(&run->ds->blocks[k], &run->ds->blocks[k], 1, &pm) == 0) {
        run->res.pop[0][k] = pm.test.recall[CCD_K20];
        run->res.pop[1][k] = pm.test.ndcg[CCD_K20];
    }
    if (a->html) {
        if (write_html(a->html, a->config, a->data, run->cfg, run->res.r, run->res.pop,
                       run->res.secs, run->first, k + 1, err, sizeof err) != 0)
            fprintf(stderr, "ccd-offline: --html: %s\n", err); /* a report is not worth the run */
    }
    if (a->ckpt_dir && state_write(&run->st, a->ckpt_dir, k, err, sizeof err) != 0) {
        fprintf(stderr, "ccd-offline: --checkpoint: %s\n", err);
        return 1;
    }
    return 0;
}

/* The matrices and the forgetting summary of rows first..done-1 on stdout. */
static void print_summary(const offline_results *res, int first, int done)
{
    forgetting fr = summarise(res->r[0], first, done), fn = summarise(res->r[1], first, done);
    print_matrix("continual student CL_k", "R@20", res->r[0], first, done);
    print_matrix("continual student CL_k", "N@20", res->r[1], first, done);
    print_matrix("ensemble E_k", "R@20", res->r[2], first, done);
    print_matrix("distilled D_k", "R@20", res->r[4], first, done);
    printf("CL_k: LA / RA / H-mean  R@20 %.4f / %.4f / %.4f   N@20 %.4f / %.4f / %.4f\n", fr.la,
           fr.ra, fr.h, fn.la, fn.ra, fn.h);
    /* the figures to choose settings by (the test ones are reported, not chosen on) */
    forgetting vr = summarise(res->r[6], first, done), vn = summarise(res->r[7], first, done);
    printf("CL_k on the valid splits: LA / RA / H-mean  R@20 %.4f / %.4f / %.4f   N@20 %.4f / "
           "%.4f / %.4f\n",
           vr.la, vr.ra, vr.h, vn.la, vn.ra, vn.h);
    double total = 0;
    for (int k = first; k < done; k++)
        total += res->secs[k][4];
    printf("total %.1f s, peak RSS %.0f MB\n", total, peak_rss_mb());
}

/* One setting as a JSON value: numbers and booleans as themselves, anything else ("auto", the
 * teacher list) as a string. */
static json_t *json_setting_value(const char *v)
{
    if (!strcmp(v, "true") || !strcmp(v, "false"))
        return json_boolean(!strcmp(v, "true"));
    char *end;
    errno = 0;
    long long i = strtoll(v, &end, 10);
    if (*v && !*end && !errno)
        return json_integer(i);
    errno = 0;
    double d = strtod(v, &end);
    if (*v && !*end && !errno)
        return json_real(d);
    return json_string(v);
}

/* ccd_config_each's visitor: "section": {"key": value, ...} objects, in the file's own terms. */
static int json_setting(void *ctx, const char *section, const char *key, const char *value)
{
    json_t *settings = ctx, *sec = json_object_get(settings, section);
    if (!sec) {
        sec = json_object();
        json_object_set_new(settings, section, sec);
    }
    json_object_set_new(sec, key, json_setting_value(value));
    return 0;
}

/* The report's "config" object: what the run was configured with. "settings" holds every
 * setting that can change the output, section by section as a config file writes them (the
 * run can be repeated from it: see ccd_config_write_ini). */
static json_t *json_config(const char *config, const ccd_config *cfg, int first, int done)
{
    json_t *settings = json_object();
    ccd_config_each(cfg, json_setting, settings);
    return json_pack("{s:s, s:i, s:i, s:i, s:o}", "file", config ? config : "(defaults)", "threads",
                     ccd_threads(), "blocks", done, "first_block", first, "settings", settings);
}

/* The r[k][j] matrices of one model (R@20 and N@20). */
static json_t *json_pair(double **r20, double **n20, int first, int done)
{
    return json_pack("{s:o, s:o}", "r_R20", json_matrix(r20, first, done), "r_N20",
                     json_matrix(n20, first, done));
}

/* The student's matrices (r20, n20) with their LA / RA / H-mean figures. */
static json_t *json_student(double **r20, double **n20, int first, int done)
{
    forgetting fr = summarise(r20, first, done), fn = summarise(n20, first, done);
    json_t *o = json_pair(r20, n20, first, done);
    json_t *fig = json_pack("{s:f, s:f, s:f, s:f, s:f, s:f}", "LA_R20", fr.la, "RA_R20", fr.ra,
                            "H_R20", fr.h, "LA_N20", fn.la, "RA_N20", fn.ra, "H_N20", fn.h);
    json_object_update(o, fig);
    json_decref(fig);
    return o;
}

/* The JSON report (--report) of rows first..done-1. 0, or 1 when it cannot be written. */
static int write_report(const char *path, const char *config, const ccd_config *cfg,
                        const offline_results *res, int first, int done)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "ccd-offline: --report %s: cannot open\n", path);
        return 1;
    }
    json_t *student = json_student(res->r[0], res->r[1], first, done);
    json_t *valid = json_student(res->r[6], res->r[7], first, done);
    json_t *blocks = json_array();
    double total = 0;
    for (int k = first; k < done; k++) {
        const double *s = res->secs[k];
        json_array_append_new(blocks,
                              json_pack("{s:f, s:f, s:f, s:f, s:f, s:f, s:f}", "student", s[0],
                                        "teachers", s[1], "ensemble", s[2], "distill", s[3],
                                        "total", s[4], "eval_in_stages", res->block_extra[k][0],
                                        "peak_rss_mb", res->block_extra[k][1]));
        total += s[4];
    }
    json_t *pop = json_pack("{s:o, s:o}", "R20", json_array(), "N20", json_array());
    for (int k = first; k < done; k++) {
        json_array_append_new(json_object_get(pop, "R20"), json_real(res->pop[0][k]));
        json_array_append_new(json_object_get(pop, "N20"), json_real(res->pop[1][k]));
    }
    json_t *report =
        json_pack("{s:o, s:o, s:o, s:o, s:o, s:{s:o, s:f}, s:f, s:o}", "student", student,
                  "student_valid", valid, "ensemble", json_pair(res->r[2], res->r[3], first, done),
                  "distilled", json_pair(res->r[4], res->r[5], first, done), "popularity", pop,
                  "seconds", "blocks", blocks, "total", total, "peak_rss_mb", peak_rss_mb(),
                  "config", json_config(config, cfg, first, done));
    int rc = json_file_write(report, f) != 0;
    if (rc)
        fprintf(stderr, "ccd-offline: --report %s: write failed\n", path);
    json_decref(report);
    return rc;
}

/* Start from the state saved in path: the run goes on after its block. 0, or -1 after saying why.
 */
static int resume(offline_run *run, const char *path)
{
    char err[1024];
    if (state_read(&run->st, path, err, sizeof err) != 0) {
        fprintf(stderr, "ccd-offline: --resume %s: %s\n", path, err);
        return -1;
    }
    run->first = run->st.block + 1;
    fprintf(stderr, "resuming after block %d from %s\n", run->st.block, path);
    return 0;
}

/* Every block from run->first on, then the summary and the report. The exit status. */
static int run_blocks(offline_run *run)
{
    const int n = run->ds->n_blocks;
    int rc = 0;
    for (int k = run->first; k < n && rc == 0; k++)
        rc = run_block(run, k);
    if (rc != 0 || n == 0)
        return rc;
    print_summary(&run->res, run->first, n);
    if (run->a->report)
        rc = write_report(run->a->report, run->a->config, run->cfg, &run->res, run->first, n);
    return rc;
}

int main(int argc, char **argv)
{
    ccd_omp_env(argv);
    offline_args a;
    ccd_config cfg;
    int rc = parse_args(argc, argv, &a);
    if (rc != ARGS_RUN)
        return rc;
    if (prepare(&a, &cfg) != 0)
        return 2;
    ccd_set_threads(a.threads);
    t_start = ccd_now();
    char err[1024];
    ccd_dataset ds;
    if (ccd_dataset_load(&ds, a.data, a.max_blocks, err, sizeof err) != 0) {
        fprintf(stderr, "ccd-offline: %s\n", err);
        return 1;
    }
    if (a.eval_users >= 0)
        cfg.eval_users = a.eval_users;
    sample_eval_users(&ds, &cfg, a.quiet);
    offline_run run = {.a = &a, .cfg = &cfg, .ds = &ds};
    ccd_state_init(&run.st);
    rc = 1;
    if (results_init(&run.res, ds.n_blocks) != 0)
        fprintf(stderr, "ccd-offline: out of memory\n");
    else if (!a.resume || resume(&run, a.resume) == 0)
        rc = run_blocks(&run);
    ccd_state_free(&run.st);
    ccd_dataset_free(&ds);
    results_free(&run.res);
    return rc;
}
