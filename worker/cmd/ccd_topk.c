/* ccd-topk: recommendations for one user, read back from the student published in Redis.
 *
 *   ccd-topk --model shop --user alice [--k 10] [--version N] [--redis 127.0.0.1:6379]
 *
 * Reads the live version (or --version N), the user's vector and every item vector of that
 * version, and prints the K items with the highest scores dot(user, item), which is how the
 * student itself ranks them. Scoring and ranking are libccd's (the scorer and top-k of rank.h).
 * The password comes from --redis-password-env VAR, never from the command line. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rank.h"
#include "cli.h"
#include "redis_sink.h"
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

int main(int argc, char **argv)
{
    const char *redis = "127.0.0.1:6379", *ruser = NULL, *pw_env = NULL, *prefix = "ccd", *model = NULL,
               *user = NULL;
    int k = 10;
    int64_t version = 0;
    enum { O_REDIS = 1000, O_RUSER, O_PWENV, O_PREFIX, O_MODEL, O_USER, O_K, O_VERSION };
    static const struct option opts[] = {{"redis", required_argument, NULL, O_REDIS},
                                         {"redis-user", required_argument, NULL, O_RUSER},
                                         {"redis-password-env", required_argument, NULL, O_PWENV},
                                         {"prefix", required_argument, NULL, O_PREFIX},
                                         {"model", required_argument, NULL, O_MODEL},
                                         {"user", required_argument, NULL, O_USER},
                                         {"k", required_argument, NULL, O_K},
                                         {"version", required_argument, NULL, O_VERSION},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_REDIS: redis = optarg; break;
        case O_RUSER: ruser = optarg; break;
        case O_PWENV: pw_env = optarg; break;
        case O_PREFIX: prefix = optarg; break;
        case O_MODEL: model = optarg; break;
        case O_USER: user = optarg; break;
        case O_K:
            if (cli_int("ccd-topk", "k", optarg, 1, 1000000, &k) != 0)
                return 2;
            break;
        case O_VERSION:
            if (cli_int64("ccd-topk", "version", optarg, 1, INT64_MAX, &version) != 0)
                return 2;
            break;
        default:
            fprintf(c == 'h' ? stdout : stderr,
                    "usage: ccd-topk --model M --user ID [--k 10] [--version N] [--redis HOST:PORT]\n"
                    "                [--prefix ccd] [--redis-user U] [--redis-password-env VAR]\n");
            return c == 'h' ? 0 : 2;
        }
    }
    if (!model || !user || k < 1 || k > 10000) {
        fprintf(stderr, "ccd-topk: --model and --user are required (--k 1..10000)\n");
        return 2;
    }
    char err[512];
    redis_sink *s = redis_sink_open_address(redis, ruser, pw_env ? getenv(pw_env) : NULL, prefix, err, sizeof err);
    if (!s) {
        fprintf(stderr, "ccd-topk: %s\n", err);
        return 1;
    }
    if (version <= 0 && (version = redis_current_version(s, model, err, sizeof err)) <= 0) {
        fprintf(stderr, "ccd-topk: model %s: %s\n", model, version < 0 ? err : "no version published");
        return 1;
    }
    float uvec[4096];
    int dim;
    int r = redis_read_vector(s, model, version, "user", user, uvec, 4096, &dim, err, sizeof err);
    if (r <= 0) {
        fprintf(stderr, "ccd-topk: %s\n", r < 0 ? err : "unknown user in this version");
        return 1;
    }
    item_table items = {0};
    if (redis_read_vectors(s, model, version, "item", &dim, on_item, &items, err, sizeof err) < 0) {
        fprintf(stderr, "ccd-topk: %s\n", err);
        return 1;
    }
    if (items.n == 0) {
        fprintf(stderr, "ccd-topk: version %lld has no items\n", (long long)version);
        return 1;
    }
    if (k > items.n)
        k = (int)items.n;
    ccd_scorer sc = ccd_scorer_embeddings(uvec, items.vecs, 1, (int)items.n, dim);
    float *scores = malloc((size_t)items.n * sizeof *scores);
    int *top = malloc((size_t)k * sizeof *top), zero = 0;
    if (!scores || !top || sc.rows(&sc, &zero, 1, scores) != 0 || ccd_topk_items(&sc, NULL, k, top) != 0) {
        fprintf(stderr, "ccd-topk: out of memory\n");
        return 1;
    }
    printf("model %s, version %lld, user %s: top %d of %lld items\n", model, (long long)version, user, k,
           (long long)items.n);
    for (int i = 0; i < k; i++)
        printf("%3d  %-24s %.4f\n", i + 1, items.ids[top[i]], scores[top[i]]);
    for (int64_t i = 0; i < items.n; i++)
        free(items.ids[i]);
    free(items.ids), free(items.vecs), free(scores), free(top);
    redis_sink_close(s);
    return 0;
}
