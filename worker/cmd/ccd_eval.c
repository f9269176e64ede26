/* ccd-eval: evaluate published student versions, read back from Redis, on a dataset's test sets.
 *
 *   ccd-eval --redis 127.0.0.1:6379 --model yelp --data ../shared/data/yelp [--version N | --all]
 *
 * A version of block k is scored exactly as ccd-offline scores CL_k (eval.h: R@20, N@20, R@50,
 * N@50 on the test split of every block j <= k). External ids are the dataset's decimal ids.
 * Items the worker never saw get no vector: they are ranked below every known item (an extra
 * coordinate gives them a score of -1e9), users it never saw score 0 everywhere. The password
 * comes from --redis-password-env VAR (an environment variable), never from the command line.
 * --html FILE writes a page with charts (report_html.h): per block, the newest version
 * evaluated for it, next to the popularity baseline, and its training time from the meta.
 *
 * worker/cmd/ holds the binaries' mains, one file each: its command line, the steps it runs and
 * what it prints. What they run lives in worker/ (the service's pieces), worker/config/ (config
 * files) and models/ (libccd, the engine). */
#include <math.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "cli.h"
#include "dense.h"
#include "eval.h"
#include "json_file.h"
#include "omp_env.h"
#include "redis_opts.h"
#include "report_html.h"

typedef struct {
    float *table; /* (n x (dim + 1)) */
    int n, dim;
    unsigned char *seen;
    int64_t unknown;
} side_table;

static int on_vector(void *ctx, const char *id, const float *vec, int dim)
{
    side_table *t = ctx;
    int64_t row;
    if (cli_parse_int64(id, 0, (int64_t)t->n - 1, &row) != 0 || dim != t->dim) {
        t->unknown++;
        return 0;
    }
    float *dst = t->table + (size_t)row * (t->dim + 1);
    memcpy(dst, vec, (size_t)dim * sizeof *dst);
    t->seen[row] = 1;
    return 0;
}

static int load_side(redis_sink *s, const char *model, int64_t v, const char *side, side_table *t,
                     int n, int dim, char *err, size_t errlen)
{
    t->n = n;
    t->dim = dim;
    t->unknown = 0;
    t->table = calloc((size_t)n * (dim + 1), sizeof *t->table);
    t->seen = calloc((size_t)(n > 0 ? n : 1), 1);
    if (!t->table || !t->seen) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int d;
    if (redis_read_vectors(s, model, v, side, &d, on_vector, t, err, errlen) < 0)
        return -1;
    return 0;
}

/* One integer field of a version's meta: 1, or 0 when absent or not an integer, -1 on error. */
static int meta_int(redis_sink *s, const char *model, int64_t v, const char *field, long long *out)
{
    char *val = NULL, err[256];
    int64_t x;
    int r = redis_read_meta(s, model, v, field, &val, err, sizeof err);
    if (r == 1 && cli_parse_int64(val, INT64_MIN, INT64_MAX, &x) != 0)
        r = 0;
    else if (r == 1)
        *out = x;
    free(val);
    return r;
}

/* The page: rows = blocks that have an evaluated version; the popularity baseline of each. */
static int write_html(const char *path, const char *model, const char *data, const ccd_dataset *ds,
                      int64_t current, const int64_t *version, double **r20, double **n20,
                      const double *train_s, char *err, size_t errlen)
{
    const int nb = ds->n_blocks;
    int lo = -1, hi = -1;
    for (int k = 0; k < nb; k++)
        if (version[k] > 0) {
            if (lo < 0)
                lo = k;
            hi = k;
        }
    if (lo < 0) {
        snprintf(err, errlen, "no version evaluated");
        return -1;
    }
    double *pop = malloc((size_t)nb * 2 * sizeof *pop);
    if (!pop) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (int k = 0; k < nb; k++) {
        ccd_block_metrics pm;
        pop[k] = pop[nb + k] = NAN;
        if (k >= lo && k <= hi &&
            ccd_evaluate_popularity(&ds->blocks[k], &ds->blocks[k], 1, &pm) == 0) {
            pop[k] = pm.test.recall[CCD_K20];
            pop[nb + k] = pm.test.ndcg[CCD_K20];
        }
    }
    char title[300], f_cur[32], f_vers[512];
    snprintf(title, sizeof title, "Published student of model %.200s", model);
    snprintf(f_cur, sizeof f_cur, "%lld", (long long)current);
    size_t o = 0;
    f_vers[0] = '\0';
    for (int k = lo; k <= hi && o + 48 < sizeof f_vers; k++)
        if (version[k] > 0)
            o += (size_t)snprintf(f_vers + o, sizeof f_vers - o, "%sblock %d: v%lld", o ? ", " : "",
                                  k, (long long)version[k]);
    report_html h = {.title = title, .n_blocks = hi + 1, .first = lo};
    report_add_fact(&h, "model", model);
    report_add_fact(&h, "live version", f_cur);
    report_add_fact(&h, "versions evaluated", f_vers);
    report_add_fact(&h, "test data", data);
    h.series[0] = (report_series){"published student (from Redis)", "#1f77b4", r20, n20};
    h.n_series = 1;
    h.base_r20 = pop;
    h.base_n20 = pop + nb;
    h.n_stages = 1;
    h.stage_names[0] = "training until live";
    h.stage_secs = train_s;
    int rc = report_html_write(&h, path, err, errlen);
    free(pop);
    return rc;
}

typedef struct {
    redis_opts redis;
    const char *data, *json, *html;
    int all; /* with redis.version 0: every version up to the live one */
} eval_args;

enum { ARGS_RUN = -1 };

/* argv -> a. ARGS_RUN, or the exit status (0 after --help, 2 on a bad command line). */
static int parse_args(int argc, char **argv, eval_args *a)
{
    *a = (eval_args){.redis = REDIS_OPTS_DEFAULTS};
    enum { O_DATA = 1000, O_ALL, O_JSON, O_HTML };
    static const struct option opts[] = {REDIS_OPTS_LONGOPTS,
                                         {"data", required_argument, NULL, O_DATA},
                                         {"all", no_argument, NULL, O_ALL},
                                         {"json", required_argument, NULL, O_JSON},
                                         {"html", required_argument, NULL, O_HTML},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int c;
    while ((c = redis_opts_getopt(&a->redis, "ccd-eval", argc, argv, opts)) != -1) {
        switch (c) {
        case REDIS_OPTS_BAD:
            return 2;
        case O_DATA:
            a->data = optarg;
            break;
        case O_ALL:
            a->all = 1;
            break;
        case O_JSON:
            a->json = optarg;
            break;
        case O_HTML:
            a->html = optarg;
            break;
        case 'h':
        default:
            fprintf(c == 'h' ? stdout : stderr,
                    "usage: ccd-eval --model M --data DIR [--redis HOST:PORT] [--redis-user U]\n"
                    "                [--redis-password-env VAR] [--prefix ccd] [--version N | "
                    "--all] [--json FILE]\n"
                    "                [--html FILE]\n");
            return c == 'h' ? 0 : 2;
        }
    }
    if (!a->redis.model || !a->data) {
        fprintf(stderr, "ccd-eval: --model and --data are required\n");
        return 2;
    }
    return ARGS_RUN;
}

/* The rows of the HTML page: block k -> the newest version of block k evaluated. */
typedef struct {
    double *store;       /* (2 x n x n), NAN where not measured */
    double **r20, **n20; /* (n) rows of store: r20[k][j], test R@20 of block j */
    double *train_s;     /* (n) training seconds from the version's meta, NAN: absent */
    int64_t *version;    /* (n) 0: no version of block k evaluated */
} page_rows;

static void page_rows_free(page_rows *p)
{
    free(p->store), free(p->train_s), free(p->r20), free(p->n20), free(p->version);
}

static int page_rows_init(page_rows *p, int nb)
{
    p->store = malloc((size_t)nb * nb * 2 * sizeof *p->store);
    p->train_s = malloc((size_t)nb * sizeof *p->train_s);
    p->r20 = malloc((size_t)nb * sizeof *p->r20);
    p->n20 = malloc((size_t)nb * sizeof *p->n20);
    p->version = calloc((size_t)nb, sizeof *p->version);
    if (!p->store || !p->train_s || !p->r20 || !p->n20 || !p->version)
        return -1;
    for (size_t q = 0; q < (size_t)nb * nb * 2; q++)
        p->store[q] = NAN;
    for (int k = 0; k < nb; k++) {
        p->r20[k] = p->store + (size_t)k * nb;
        p->n20[k] = p->store + (size_t)(nb + k) * nb;
        p->train_s[k] = NAN;
    }
    return 0;
}

/* One run over the versions: where they are read from, what they are scored on, where the
 * results go. */
typedef struct {
    const eval_args *a;
    redis_sink *s;
    const ccd_dataset *ds;
    int64_t current;  /* the live version */
    FILE *json;       /* NULL: no --json */
    json_t *versions; /* the --json report's versions, written at the end */
    page_rows page;
    int rc; /* 1 once anything failed */
} eval_run;

/* The block and dimension version v was trained with, from its meta: 1, or 0 when it is skipped
 * (said on stderr, and a failure, when it was asked for, is the live one or does not fit). */
static int version_shape(eval_run *r, int64_t v, long long *block, long long *dim)
{
    const char *model = r->a->redis.model;
    if (meta_int(r->s, model, v, "block", block) != 1 ||
        meta_int(r->s, model, v, "dim", dim) != 1) {
        if (r->a->redis.version > 0 || v == r->current) {
            fprintf(stderr, "ccd-eval: version %lld of model %s is not there\n", (long long)v,
                    model);
            r->rc = 1;
        }
        return 0;
    }
    if (*block < 0 || *block >= r->ds->n_blocks || *dim < 1 || *dim > 4096) {
        fprintf(stderr, "ccd-eval: version %lld: block %lld / dim %lld do not fit the dataset\n",
                (long long)v, *block, *dim);
        r->rc = 1;
        return 0;
    }
    return 1;
}

/* Print version v's metrics m[0..block], keep them for the page and write them to --json. */
static void report_version(eval_run *r, int64_t v, int block, int missing_users, int missing_items,
                           int64_t foreign, const ccd_block_metrics *m)
{
    printf("version %lld (block %d, %d users and %d items without a vector, %lld foreign ids):\n",
           (long long)v, block, missing_users, missing_items, (long long)foreign);
    for (int j = 0; j <= block; j++)
        printf("  block %d test R@20 %.4f N@20 %.4f R@50 %.4f N@50 %.4f (%d users)\n", j,
               m[j].test.recall[CCD_K20], m[j].test.ndcg[CCD_K20], m[j].test.recall[CCD_K50],
               m[j].test.ndcg[CCD_K50], m[j].test.n_users);
    for (int j = 0; j <= block; j++) {
        r->page.r20[block][j] = m[j].test.recall[CCD_K20];
        r->page.n20[block][j] = m[j].test.ndcg[CCD_K20];
    }
    r->page.version[block] = v;
    char *ts = NULL, terr[128];
    double secs;
    if (redis_read_meta(r->s, r->a->redis.model, v, "train_seconds", &ts, terr, sizeof terr) == 1 &&
        cli_parse_double(ts, -INFINITY, INFINITY, &secs) == 0)
        r->page.train_s[block] = secs;
    free(ts);
    if (!r->json)
        return;
    json_t *r20 = json_array(), *n20 = json_array();
    for (int j = 0; j <= block; j++) {
        json_array_append_new(r20, json_real(m[j].test.recall[CCD_K20]));
        json_array_append_new(n20, json_real(m[j].test.ndcg[CCD_K20]));
    }
    json_array_append_new(r->versions, json_pack("{s:I, s:i, s:o, s:o}", "version", (json_int_t)v,
                                                 "block", block, "test_R20", r20, "test_N20", n20));
}

/* Score version v (trained on block `block`, vectors of dim floats) as ccd-offline scores CL_k. */
static void eval_version(eval_run *r, int64_t v, int block, int dim)
{
    const ccd_block *bk = &r->ds->blocks[block];
    side_table us = {0}, is = {0};
    char err[512];
    if (load_side(r->s, r->a->redis.model, v, "user", &us, bk->n_users, dim, err, sizeof err) !=
            0 ||
        load_side(r->s, r->a->redis.model, v, "item", &is, bk->n_items, dim, err, sizeof err) !=
            0) {
        fprintf(stderr, "ccd-eval: version %lld: %s\n", (long long)v, err);
        r->rc = 1;
    } else {
        /* the extra coordinate: 1 on every user, -1e9 on an item without a vector */
        int missing_items = 0, missing_users = 0;
        for (int u = 0; u < us.n; u++) {
            us.table[(size_t)u * (dim + 1) + dim] = 1.0f;
            missing_users += !us.seen[u];
        }
        for (int i = 0; i < is.n; i++)
            if (!is.seen[i]) {
                is.table[(size_t)i * (dim + 1) + dim] = -1e9f;
                missing_items++;
            }
        ccd_block_metrics *m = calloc((size_t)block + 1, sizeof *m);
        if (!m || ccd_evaluate(us.table, is.table, us.n, is.n, dim + 1, r->ds->blocks, block + 1,
                               m) != 0) {
            fprintf(stderr, "ccd-eval: out of memory\n");
            r->rc = 1;
        } else {
            report_version(r, v, block, missing_users, missing_items, us.unknown + is.unknown, m);
        }
        free(m);
    }
    free(us.table), free(us.seen), free(is.table), free(is.seen);
}

/* Every version asked for, from the oldest; then the --json tail and the --html page. */
static int eval_versions(eval_run *r)
{
    const eval_args *a = r->a;
    int64_t lo = a->redis.version > 0 ? a->redis.version : (a->all ? 1 : r->current);
    int64_t hi = a->redis.version > 0 ? a->redis.version : r->current;
    for (int64_t v = lo; v <= hi; v++) {
        long long block, dim;
        if (version_shape(r, v, &block, &dim))
            eval_version(r, v, (int)block, (int)dim);
    }
    if (r->json) {
        json_t *doc = json_pack("{s:s, s:I, s:O}", "model", a->redis.model, "current",
                                (json_int_t)r->current, "versions", r->versions);
        if (json_file_write(doc, r->json) != 0) {
            fprintf(stderr, "ccd-eval: --json %s: write failed\n", a->json);
            r->rc = 1;
        }
        json_decref(doc);
        r->json = NULL;
    }
    char err[512];
    if (a->html && write_html(a->html, a->redis.model, a->data, r->ds, r->current, r->page.version,
                              r->page.r20, r->page.n20, r->page.train_s, err, sizeof err) != 0) {
        fprintf(stderr, "ccd-eval: --html: %s\n", err);
        r->rc = 1;
    }
    return r->rc;
}

/* The live version, the --json file and the page's rows, then every version asked for. */
static int run(const eval_args *a, redis_sink *s, const ccd_dataset *ds)
{
    eval_run r = {.a = a, .s = s, .ds = ds, .versions = json_array()};
    if ((r.current = redis_opts_live_version(&a->redis, s, "ccd-eval")) == 0)
        return 1;
    if (a->json && !(r.json = fopen(a->json, "w"))) {
        fprintf(stderr, "ccd-eval: %s: %s\n", a->json, strerror(errno));
        return 1;
    }
    int rc = 1;
    if (page_rows_init(&r.page, ds->n_blocks) != 0)
        fprintf(stderr, "ccd-eval: out of memory\n");
    else
        rc = eval_versions(&r); /* closes r.json */
    if (r.json)
        fclose(r.json);
    json_decref(r.versions);
    page_rows_free(&r.page);
    return rc;
}

int main(int argc, char **argv)
{
    ccd_omp_env(argv);
    eval_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc != ARGS_RUN)
        return rc;
    char err[512];
    redis_sink *s = redis_opts_open(&a.redis, err, sizeof err);
    if (!s) {
        fprintf(stderr, "ccd-eval: redis: %s\n", err);
        return 1;
    }
    ccd_dataset ds;
    if (ccd_dataset_load(&ds, a.data, 0, err, sizeof err) != 0) {
        fprintf(stderr, "ccd-eval: %s\n", err);
        redis_sink_close(s);
        return 1;
    }
    rc = run(&a, s, &ds);
    ccd_dataset_free(&ds);
    redis_sink_close(s);
    return rc;
}
