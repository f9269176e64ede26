/* ccd-topk: recommendations for one user, read back from the student published in Redis.
 *
 *   ccd-topk --model shop --user alice [--k 10] [--version N] [--redis 127.0.0.1:6379]
 *
 * Reads the live version (or --version N), the user's vector and every item vector of that
 * version, and prints the K items with the highest scores dot(user, item), which is how the
 * student itself ranks them. Scoring and ranking are libccd's (the scorer and top-k of rank.h).
 * The password comes from --redis-password-env VAR, never from the command line.
 *
 * worker/cmd/ holds the binaries' mains, one file each: its command line, the steps it runs and
 * what it prints. What they run lives in worker/ (the service's pieces), worker/config/ (config
 * files) and models/ (libccd, the engine). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rank.h"
#include "cli.h"
#include "redis_opts.h"
#include "scorer.h"

typedef struct {
    char **ids;
    float *vecs; /* (n x dim) */
    int64_t n, cap;
    int dim;
} item_table;

static int on_item(void *ctx, const char *id, const float *vec, int dim)
{
    item_table *t = ctx;
    if (t->n == t->cap) {
        int64_t cap = t->cap ? t->cap * 2 : 4096;
        char **ids = realloc(t->ids, (size_t)cap * sizeof *ids);
        float *vecs = ids ? realloc(t->vecs, (size_t)cap * dim * sizeof *vecs) : NULL;
        if (ids)
            t->ids = ids;
        if (!ids || !vecs)
            return -1;
        t->vecs = vecs;
        t->cap = cap;
    }
    if (!(t->ids[t->n] = strdup(id)))
        return -1;
    memcpy(t->vecs + (size_t)t->n * dim, vec, (size_t)dim * sizeof *vec);
    t->dim = dim;
    t->n++;
    return 0;
}

typedef struct {
    redis_opts redis;
    const char *user;
    int k;
} topk_args;

enum { ARGS_RUN = -1 };

/* argv -> a. ARGS_RUN, or the exit status (0 after --help, 2 on a bad command line). */
static int parse_args(int argc, char **argv, topk_args *a)
{
    *a = (topk_args){.redis = REDIS_OPTS_DEFAULTS, .k = 10};
    enum { O_USER = 1000, O_K };
    static const struct option opts[] = {REDIS_OPTS_LONGOPTS,
                                         {"user", required_argument, NULL, O_USER},
                                         {"k", required_argument, NULL, O_K},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int c;
    while ((c = redis_opts_getopt(&a->redis, "ccd-topk", argc, argv, opts)) != -1) {
        switch (c) {
        case REDIS_OPTS_BAD:
            return 2;
        case O_USER:
            a->user = optarg;
            break;
        case O_K:
            if (cli_int("ccd-topk", "k", optarg, 1, 1000000, &a->k) != 0)
                return 2;
            break;
        default:
            fprintf(
                c == 'h' ? stdout : stderr,
                "usage: ccd-topk --model M --user ID [--k 10] [--version N] [--redis HOST:PORT]\n"
                "                [--prefix ccd] [--redis-user U] [--redis-password-env VAR]\n");
            return c == 'h' ? 0 : 2;
        }
    }
    if (!a->redis.model || !a->user || a->k < 1 || a->k > 10000) {
        fprintf(stderr, "ccd-topk: --model and --user are required (--k 1..10000)\n");
        return 2;
    }
    return ARGS_RUN;
}

/* The a->k best items of the version for the user's vector (libccd's scorer and top-k), printed
 * best first. 0, or 1 on a failure (said on stderr). */
static int print_top(const topk_args *a, int64_t version, const float *uvec, int dim,
                     const item_table *items)
{
    int k = a->k > items->n ? (int)items->n : a->k;
    ccd_scorer sc = ccd_scorer_embeddings(uvec, items->vecs, 1, (int)items->n, dim);
    float *scores = malloc((size_t)items->n * sizeof *scores);
    int *top = malloc((size_t)k * sizeof *top), zero = 0;
    if (!scores || !top || sc.rows(&sc, &zero, 1, scores) != 0 ||
        ccd_topk_items(&sc, NULL, k, top) != 0) {
        fprintf(stderr, "ccd-topk: out of memory\n");
        free(scores), free(top);
        return 1;
    }
    printf("model %s, version %lld, user %s: top %d of %lld items\n", a->redis.model,
           (long long)version, a->user, k, (long long)items->n);
    for (int i = 0; i < k; i++)
        printf("%3d  %-24s %.4f\n", i + 1, items->ids[top[i]], scores[top[i]]);
    free(scores), free(top);
    return 0;
}

/* Read the version's user vector and item table, then print the top k. */
static int recommend(redis_sink *s, const topk_args *a)
{
    int64_t version = a->redis.version;
    if (version <= 0 && (version = redis_opts_live_version(&a->redis, s, "ccd-topk")) == 0)
        return 1;
    char err[512];
    float uvec[4096];
    int dim;
    int r = redis_read_vector(s, a->redis.model, version, "user", a->user, uvec, 4096, &dim, err,
                              sizeof err);
    if (r <= 0) {
        fprintf(stderr, "ccd-topk: %s\n", r < 0 ? err : "unknown user in this version");
        return 1;
    }
    item_table items = {0};
    int rc = 1;
    if (redis_read_vectors(s, a->redis.model, version, "item", &dim, on_item, &items, err,
                           sizeof err) < 0)
        fprintf(stderr, "ccd-topk: %s\n", err);
    else if (items.n == 0)
        fprintf(stderr, "ccd-topk: version %lld has no items\n", (long long)version);
    else
        rc = print_top(a, version, uvec, dim, &items);
    for (int64_t i = 0; i < items.n; i++)
        free(items.ids[i]);
    free(items.ids), free(items.vecs);
    return rc;
}

int main(int argc, char **argv)
{
    topk_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc != ARGS_RUN)
        return rc;
    char err[512];
    redis_sink *s = redis_opts_open(&a.redis, err, sizeof err);
    if (!s) {
        fprintf(stderr, "ccd-topk: %s\n", err);
        return 1;
    }
    rc = recommend(s, &a);
    redis_sink_close(s);
    return rc;
}
