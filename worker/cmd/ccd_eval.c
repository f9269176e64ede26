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
 * evaluated for it, next to the popularity baseline, and its training time from the meta. */
#include <math.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "cli.h"
#include "dense.h"
#include "eval.h"
#include "omp_env.h"
#include "redis_sink.h"
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
    char *end;
    errno = 0;
    long row = strtol(id, &end, 10);
    if (*id == '\0' || *end != '\0' || errno || row < 0 || row >= t->n || dim != t->dim) {
        t->unknown++;
        return 0;
    }
    float *dst = t->table + (size_t)row * (t->dim + 1);
    memcpy(dst, vec, (size_t)dim * sizeof *dst);
    t->seen[row] = 1;
    return 0;
}

static int load_side(redis_sink *s, const char *model, int64_t v, const char *side, side_table *t, int n, int dim,
                     char *err, size_t errlen)
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

static int meta_int(redis_sink *s, const char *model, int64_t v, const char *field, long long *out)
{
    char *val = NULL, err[256];
    int r = redis_read_meta(s, model, v, field, &val, err, sizeof err);
    if (r == 1)
        *out = atoll(val);
    free(val);
    return r;
}

/* The page: rows = blocks that have an evaluated version; the popularity baseline of each. */
static int write_html(const char *path, const char *model, const char *data, const ccd_dataset *ds, int64_t current,
                      const int64_t *version, double **r20, double **n20, const double *train_s, char *err,
                      size_t errlen)
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
        if (k >= lo && k <= hi && ccd_evaluate_popularity(&ds->blocks[k], &ds->blocks[k], 1, &pm) == 0) {
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
            o += (size_t)snprintf(f_vers + o, sizeof f_vers - o, "%sblock %d: v%lld", o ? ", " : "", k,
                                  (long long)version[k]);
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

int main(int argc, char **argv)
{
    ccd_omp_env(argv);
    const char *redis = "127.0.0.1:6379", *user = NULL, *pw_env = NULL, *prefix = "ccd", *model = NULL,
               *data = NULL, *json = NULL,
               *html = NULL;
    int64_t version = 0;
    int all = 0;
    enum { O_REDIS = 1000, O_USER, O_PWENV, O_PREFIX, O_MODEL, O_DATA, O_VERSION, O_ALL, O_JSON, O_HTML };
    static const struct option opts[] = {{"redis", required_argument, NULL, O_REDIS},
                                         {"redis-user", required_argument, NULL, O_USER},
                                         {"redis-password-env", required_argument, NULL, O_PWENV},
                                         {"prefix", required_argument, NULL, O_PREFIX},
                                         {"model", required_argument, NULL, O_MODEL},
                                         {"data", required_argument, NULL, O_DATA},
                                         {"version", required_argument, NULL, O_VERSION},
                                         {"all", no_argument, NULL, O_ALL},
                                         {"json", required_argument, NULL, O_JSON},
                                         {"html", required_argument, NULL, O_HTML},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_REDIS: redis = optarg; break;
        case O_USER: user = optarg; break;
        case O_PWENV: pw_env = optarg; break;
        case O_PREFIX: prefix = optarg; break;
        case O_MODEL: model = optarg; break;
        case O_DATA: data = optarg; break;
        case O_VERSION:
            if (cli_int64("ccd-eval", "version", optarg, 1, INT64_MAX, &version) != 0)
                return 2;
            break;
        case O_ALL: all = 1; break;
        case O_JSON: json = optarg; break;
        case O_HTML: html = optarg; break;
        case 'h':
        default:
            fprintf(c == 'h' ? stdout : stderr,
                    "usage: ccd-eval --model M --data DIR [--redis HOST:PORT] [--redis-user U]\n"
                    "                [--redis-password-env VAR] [--prefix ccd] [--version N | --all] [--json FILE]\n"
                    "                [--html FILE]\n");
            return c == 'h' ? 0 : 2;
        }
    }
    if (!model || !data) {
        fprintf(stderr, "ccd-eval: --model and --data are required\n");
        return 2;
    }
    char err[512];
    redis_sink *s = redis_sink_open_address(redis, user, pw_env ? getenv(pw_env) : NULL, prefix, err, sizeof err);
    if (!s) {
        fprintf(stderr, "ccd-eval: redis: %s\n", err);
        return 1;
    }
    ccd_dataset ds;
    if (ccd_dataset_load(&ds, data, 0, err, sizeof err) != 0) {
        fprintf(stderr, "ccd-eval: %s\n", err);
        return 1;
    }
    int64_t current = redis_current_version(s, model, err, sizeof err);
    if (current <= 0) {
        fprintf(stderr, "ccd-eval: model %s: %s\n", model, current < 0 ? err : "no version published");
        return 1;
    }
    int64_t lo = version > 0 ? version : (all ? 1 : current), hi = version > 0 ? version : current;
    FILE *jf = json ? fopen(json, "w") : NULL;
    if (json && !jf) {
        fprintf(stderr, "ccd-eval: %s: %s\n", json, strerror(errno));
        return 1;
    }
    if (jf)
        fprintf(jf, "{\"model\": \"%s\", \"current\": %lld, \"versions\": [", model, (long long)current);
    int rc = 0, first = 1;
    /* rows of the HTML page: block k -> the newest version of block k evaluated */
    const int nb = ds.n_blocks;
    double *hstore = malloc((size_t)nb * nb * 2 * sizeof *hstore), *train_s = malloc((size_t)nb * sizeof *train_s);
    double **h_r20 = malloc((size_t)nb * sizeof *h_r20), **h_n20 = malloc((size_t)nb * sizeof *h_n20);
    int64_t *h_version = calloc((size_t)nb, sizeof *h_version);
    if (!hstore || !train_s || !h_r20 || !h_n20 || !h_version) {
        fprintf(stderr, "ccd-eval: out of memory\n");
        return 1;
    }
    for (size_t q = 0; q < (size_t)nb * nb * 2; q++)
        hstore[q] = NAN;
    for (int k = 0; k < nb; k++) {
        h_r20[k] = hstore + (size_t)k * nb;
        h_n20[k] = hstore + (size_t)(nb + k) * nb;
        train_s[k] = NAN;
    }
    for (int64_t v = lo; v <= hi; v++) {
        long long block, dim;
        if (meta_int(s, model, v, "block", &block) != 1 || meta_int(s, model, v, "dim", &dim) != 1) {
            if (version > 0 || v == current) {
                fprintf(stderr, "ccd-eval: version %lld of model %s is not there\n", (long long)v, model);
                rc = 1;
            }
            continue;
        }
        if (block < 0 || block >= ds.n_blocks || dim < 1 || dim > 4096) {
            fprintf(stderr, "ccd-eval: version %lld: block %lld / dim %lld do not fit the dataset\n", (long long)v,
                    block, dim);
            rc = 1;
            continue;
        }
        const ccd_block *bk = &ds.blocks[block];
        side_table us = {0}, is = {0};
        if (load_side(s, model, v, "user", &us, bk->n_users, (int)dim, err, sizeof err) != 0 ||
            load_side(s, model, v, "item", &is, bk->n_items, (int)dim, err, sizeof err) != 0) {
            fprintf(stderr, "ccd-eval: version %lld: %s\n", (long long)v, err);
            rc = 1;
        } else {
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
            if (!m || ccd_evaluate(us.table, is.table, us.n, is.n, (int)dim + 1, ds.blocks, (int)block + 1, m) != 0) {
                fprintf(stderr, "ccd-eval: out of memory\n");
                rc = 1;
            } else {
                printf("version %lld (block %lld, %d users and %d items without a vector, %lld foreign ids):\n",
                       (long long)v, block, missing_users, missing_items, (long long)(us.unknown + is.unknown));
                for (int j = 0; j <= block; j++)
                    printf("  block %d test R@20 %.4f N@20 %.4f R@50 %.4f N@50 %.4f (%d users)\n", j,
                           m[j].test.recall[CCD_K20], m[j].test.ndcg[CCD_K20], m[j].test.recall[CCD_K50],
                           m[j].test.ndcg[CCD_K50], m[j].test.n_users);
                for (int j = 0; j <= block; j++) {
                    h_r20[block][j] = m[j].test.recall[CCD_K20];
                    h_n20[block][j] = m[j].test.ndcg[CCD_K20];
                }
                h_version[block] = v;
                char *ts = NULL, terr[128];
                if (redis_read_meta(s, model, v, "train_seconds", &ts, terr, sizeof terr) == 1)
                    train_s[block] = atof(ts);
                free(ts);
                if (jf) {
                    fprintf(jf, "%s\n  {\"version\": %lld, \"block\": %lld, \"test_R20\": [", first ? "" : ",",
                            (long long)v, block);
                    for (int j = 0; j <= block; j++)
                        fprintf(jf, "%s%.6f", j ? ", " : "", m[j].test.recall[CCD_K20]);
                    fprintf(jf, "], \"test_N20\": [");
                    for (int j = 0; j <= block; j++)
                        fprintf(jf, "%s%.6f", j ? ", " : "", m[j].test.ndcg[CCD_K20]);
                    fprintf(jf, "]}");
                    first = 0;
                }
            }
            free(m);
        }
        free(us.table), free(us.seen), free(is.table), free(is.seen);
    }
    if (jf) {
        fprintf(jf, "\n]}\n");
        fclose(jf);
    }
    if (html && write_html(html, model, data, &ds, current, h_version, h_r20, h_n20, train_s, err, sizeof err) != 0) {
        fprintf(stderr, "ccd-eval: --html: %s\n", err);
        rc = 1;
    }
    free(hstore), free(train_s), free(h_r20), free(h_n20), free(h_version);
    ccd_dataset_free(&ds);
    redis_sink_close(s);
    return rc;
}
