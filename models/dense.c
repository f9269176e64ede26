/* dense: see dense.h. */
#include "dense.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define HUGE_PAGE ((size_t)2 << 20)
#define HUGE_MIN ((size_t)4 << 20) /* smaller buffers stay on 4 KB pages */

float *ccd_floats(size_t n)
{
    size_t bytes = (n * sizeof(float) + 63) & ~(size_t)63;
    if (bytes >= HUGE_MIN) {
        /* Embedding tables, gradients and score chunks are gathered at random rows: on 4 KB
         * pages every row of a table past a few MB is a TLB miss, so ask for 2 MB pages (the
         * kernel's default THP mode is madvise) before the memset faults them in. */
        bytes = (bytes + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
        float *p = aligned_alloc(HUGE_PAGE, bytes);
        if (p) {
#ifdef MADV_HUGEPAGE
            madvise(p, bytes, MADV_HUGEPAGE); /* advice only: a refusal changes nothing */
#endif
            memset(p, 0, bytes);
        }
        return p;
    }
    float *p = aligned_alloc(64, bytes ? bytes : 64);
    if (p)
        memset(p, 0, bytes);
    return p;
}

/* ccd_sgemm cuts C along its longer side (rows when m >= n, else columns) into at most
 * SGEMM_PARTS blocks, each a multiple of SGEMM_ALIGN long (the last one shorter): the cut
 * follows the shape only, never the thread count. Cutting the longer side repacks only the
 * small operand once per block, so the blocks cost the same CPU time as one call (measured at
 * Yelp's scoring and LWC-KD shapes, docs/algorithm.md); 16 blocks keep up to 16 threads busy. */
#define SGEMM_PARTS 16
#define SGEMM_ALIGN 64

typedef struct {
    bool ta, tb, by_rows;
    int m, n, k, lda, ldb, ldc, len, blocks; /* len: a block's length along the cut side */
    float alpha, beta;
    const float *a, *b;
    float *c;
} sgemm_plan;

/* Block q: rows [x0, x1) of C with the matching rows of op(A), or columns with those of op(B). */
static void sgemm_block(const sgemm_plan *p, int q)
{
    const int x0 = q * p->len, x1 = q + 1 < p->blocks ? x0 + p->len : (p->by_rows ? p->m : p->n);
    const float *a = p->a, *b = p->b;
    float *c = p->c;
    int m = p->m, n = p->n;
    if (p->by_rows) {
        a += p->ta ? (size_t)x0 : (size_t)x0 * p->lda; /* op(A) rows: A's columns when ta */
        c += (size_t)x0 * p->ldc;
        m = x1 - x0;
    } else {
        b += p->tb ? (size_t)x0 * p->ldb : (size_t)x0; /* op(B) columns: B's rows when tb */
        c += x0;
        n = x1 - x0;
    }
    cblas_sgemm(CblasRowMajor, p->ta ? CblasTrans : CblasNoTrans, p->tb ? CblasTrans : CblasNoTrans,
                m, n, p->k, p->alpha, a, p->lda, b, p->ldb, p->beta, c, p->ldc);
}

/* Single-threaded BLAS while anyone needs it: a count under a lock, so that engines running in
 * several threads of one process (one per trainer), or teacher updates run side by side, never
 * restore the thread count under one another's products. */
static pthread_mutex_t blas_lock = PTHREAD_MUTEX_INITIALIZER;
static int blas_single_users, blas_saved_threads;

void ccd_blas_single_begin(void)
{
    pthread_mutex_lock(&blas_lock);
    if (blas_single_users++ == 0) {
        blas_saved_threads = openblas_get_num_threads();
        openblas_set_num_threads(1);
    }
    pthread_mutex_unlock(&blas_lock);
}

void ccd_blas_single_end(void)
{
    pthread_mutex_lock(&blas_lock);
    if (--blas_single_users == 0)
        openblas_set_num_threads(blas_saved_threads);
    pthread_mutex_unlock(&blas_lock);
}

void ccd_sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a,
               int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    if (m <= 0 || n <= 0)
        return;
    sgemm_plan p = {trans_a, trans_b, m >= n, m, n, k, lda, ldb, ldc, 0, 0, alpha, beta, a, b, c};
    const int side = p.by_rows ? m : n;
    p.len = (side + SGEMM_PARTS - 1) / SGEMM_PARTS;
    p.len = (p.len + SGEMM_ALIGN - 1) / SGEMM_ALIGN * SGEMM_ALIGN;
    p.blocks = (side + p.len - 1) / p.len;
    ccd_blas_single_begin();
    /* inside a parallel region (teachers side by side) the blocks run on the calling thread */
#pragma omp parallel for schedule(dynamic, 1) if (p.blocks > 1 && !omp_in_parallel())
    for (int q = 0; q < p.blocks; q++)
        sgemm_block(&p, q);
    ccd_blas_single_end();
}

void ccd_matmul_nt(const float *a, const float *b, float *c, int m, int n, int k)
{
    ccd_sgemm(false, true, m, n, k, 1.0f, a, k, b, k, 0.0f, c, n);
}

void ccd_set_threads(int n)
{
    if (n <= 0)
        return;
    openblas_set_num_threads(n);
    omp_set_num_threads(n);
}

int ccd_threads(void)
{
    return omp_get_max_threads();
}

void ccd_set_blas_threads(int n)
{
    if (n > 0)
        openblas_set_num_threads(n);
}

double ccd_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* exp(x) for float arrays, written so GCC vectorises it: x = n ln2 + r with |r| <= ln2 / 2
 * (ln2 split in two parts for accuracy), e^r by a degree-6 polynomial, 2^n by adding n to the
 * exponent bits. Relative error below 2e-7 (about 2 ulp) over the clamped range; libm's scalar
 * expf is the bottleneck of the softmax and ranking-loss passes otherwise. */
static inline float exp_poly(float v)
{
    v = v > -87.0f ? v : -87.0f; /* also maps NaN to -87 */
    v = v < 88.0f ? v : 88.0f;
    /* round to nearest by the 1.5 * 2^23 trick (no libm call, so the loop vectorises) */
    float t = (v * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = v - t * 0.693145751953125f;   /* ln2 high part (exact product) */
    r = r - t * 1.42860682030941723212e-6f; /* ln2 low part */
    float p = 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    uint32_t bits; /* unsigned: adding a negative exponent is a defined wrap-around */
    memcpy(&bits, &p, 4);
    bits += (uint32_t)(int32_t)t << 23;
    memcpy(&p, &bits, 4);
    return p;
}

void ccd_vexp(const float *x, float *y, int n)
{
    for (int k = 0; k < n; k++)
        y[k] = exp_poly(x[k]);
}

/* Lanes: 16 independent accumulators, so the loops vectorise without -ffast-math (a single
 * float accumulator would fix the summation order and keep GCC scalar). */
#define LANES 16

float ccd_vmax(const float *x, int n)
{
    float lane[LANES];
    for (int l = 0; l < LANES; l++)
        lane[l] = -INFINITY;
    int k = 0;
    for (; k + LANES <= n; k += LANES)
        for (int l = 0; l < LANES; l++)
            lane[l] = x[k + l] > lane[l] ? x[k + l] : lane[l];
    float mx = -INFINITY;
    for (int l = 0; l < LANES; l++)
        mx = lane[l] > mx ? lane[l] : mx;
    for (; k < n; k++)
        mx = x[k] > mx ? x[k] : mx;
    return mx;
}

double ccd_vexp_shift_sum(float *x, int n, float shift)
{
    float lane[LANES] = {0};
    int k = 0;
    for (; k + LANES <= n; k += LANES)
        for (int l = 0; l < LANES; l++) {
            float e = exp_poly(x[k + l] - shift);
            x[k + l] = e;
            lane[l] += e;
        }
    double sum = 0.0;
    for (int l = 0; l < LANES; l++)
        sum += lane[l];
    for (; k < n; k++) {
        x[k] = exp_poly(x[k] - shift);
        sum += x[k];
    }
    return sum;
}

int64_t ccd_first_above(const double *v, int64_t n, double x)
{
    int64_t lo = 0, hi = n;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (v[mid] > x)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}
