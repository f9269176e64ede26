/* dense: see dense.h. */
#include "dense.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
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

void ccd_matmul_nt(const float *a, const float *b, float *c, int m, int n, int k)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, a, k, b, k, 0.0f, c, n);
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
