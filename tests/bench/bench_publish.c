/* bench_publish: Redis publication throughput of the worker's sink (redis_publish), in rows/s.
 *
 *   bench_publish HOST PORT [USERS ITEMS DIM REPEATS]   (default: Yelp's 14950 x 12261, d = 8, 5)
 *
 * Each repeat publishes one complete version (both hashes, meta, switch, prune) of random
 * vectors with ids like the worker's, and reports the best and median rows/s. Compare with
 * redis-benchmark's pipelined SET of the same value size (4 * DIM bytes):
 * tests/bench/bench_worker.sh runs both side by side. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dense.h"
#include "redis_sink.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_publish HOST PORT [USERS ITEMS DIM REPEATS]\n");
        return 2;
    }
    int nu = argc > 3 ? atoi(argv[3]) : 14950, ni = argc > 4 ? atoi(argv[4]) : 12261;
    int dim = argc > 5 ? atoi(argv[5]) : 8, reps = argc > 6 ? atoi(argv[6]) : 5;
    char **uid = malloc((size_t)nu * sizeof *uid), **iid = malloc((size_t)ni * sizeof *iid);
    float *uv = malloc((size_t)nu * dim * sizeof *uv), *iv = malloc((size_t)ni * dim * sizeof *iv);
    for (int i = 0; i < nu; i++) {
        uid[i] = malloc(16);
        snprintf(uid[i], 16, "%d", i);
    }
    for (int i = 0; i < ni; i++) {
        iid[i] = malloc(16);
        snprintf(iid[i], 16, "%d", i);
    }
    for (size_t i = 0; i < (size_t)nu * dim; i++)
        uv[i] = (float)rand() / RAND_MAX;
    for (size_t i = 0; i < (size_t)ni * dim; i++)
        iv[i] = (float)rand() / RAND_MAX;
    redis_sink_opts o;
    redis_sink_opts_default(&o);
    o.host = argv[1];
    o.port = atoi(argv[2]);
    o.prefix = "ccdbench";
    o.keep_versions = 2;
    char err[512];
    redis_sink *s = redis_sink_open(&o, err, sizeof err);
    if (!s) {
        fprintf(stderr, "bench_publish: %s\n", err);
        return 1;
    }
    double *rate = malloc((size_t)reps * sizeof *rate);
    for (int r = 0; r < reps; r++) {
        redis_version v = {.model = "bench",
                           .block = r,
                           .dim = dim,
                           .n_users = nu,
                           .n_items = ni,
                           .user_ids = (const char *const *)uid,
                           .item_ids = (const char *const *)iid,
                           .user_vecs = uv,
                           .item_vecs = iv};
        double t0 = ccd_now();
        if (redis_publish(s, &v, err, sizeof err) < 0) {
            fprintf(stderr, "bench_publish: %s\n", err);
            return 1;
        }
        rate[r] = (nu + ni) / (ccd_now() - t0);
    }
    qsort(rate, (size_t)reps, sizeof *rate, cmp_double);
    printf("publish: %d rows (%d users + %d items) of %d floats: best %.0f rows/s, median %.0f "
           "rows/s\n",
           nu + ni, nu, ni, dim, rate[reps - 1], rate[reps / 2]);
    redis_sink_close(s);
    for (int i = 0; i < nu; i++)
        free(uid[i]);
    for (int i = 0; i < ni; i++)
        free(iid[i]);
    free(uid), free(iid), free(uv), free(iv), free(rate);
    return 0;
}
