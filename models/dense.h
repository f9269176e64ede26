/* dense: the few dense helpers libccd shares, over OpenBLAS.
 *
 * Buffers are plain row-major float arrays; their shapes are written next to every use. Large
 * buffers are 64-byte aligned so SIMD loops and BLAS kernels see aligned rows. */
#ifndef CCD_DENSE_H
#define CCD_DENSE_H

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* c + a b as one fused multiply-add where the CPU has one (fmaf, inlined), written out so that
 * the bits of a loop do not depend on whether the compiler chose to contract it: it once fused
 * the d = 128 product slices and not the d = 8 one, and a loop and its unrolled copy must
 * agree. Without FMA, a multiply then an add. */
#ifdef __FMA__
#define CCD_FMA(a, b, c) fmaf((a), (b), (c))
#else
#define CCD_FMA(a, b, c) ((c) + (a) * (b))
#endif

/* 64-byte aligned, zeroed; free with free(). NULL on failure. Buffers of 4 MB or more are
 * 2 MB aligned, rounded up to 2 MB and advised as transparent huge pages. */
float *ccd_floats(size_t n);
/* C (m x n) = alpha op(A) op(B) + beta C, row-major (cblas_sgemm's arguments), with results
 * that do not depend on the thread count: OpenBLAS splits a product over its threads by the
 * thread count and its kernels round the edge rows and columns of each part differently, so
 * the same product gave other bits on 1, 2 or 3 threads (0.3.21, Haswell). Here C is cut into
 * blocks that follow its shape only, each one single-threaded BLAS call, spread over the OpenMP
 * threads: the bits depend on the shapes, the library build and the CPU's BLAS kernel alone.
 * Called inside a parallel region, the blocks run one after the other on the calling thread.
 * BLAS runs on one thread meanwhile (ccd_blas_single_begin): ccd_set_threads and
 * ccd_set_blas_threads must not run in another thread while a product does. */
void ccd_sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a,
               int lda, const float *b, int ldb, float beta, float *c, int ldc);
/* C (m x n) = A (m x k) B^T, B being (n x k): the "score rows against all items" product
 * (ccd_sgemm). */
void ccd_matmul_nt(const float *a, const float *b, float *c, int m, int n, int k);
/* Threads for BLAS and for libccd's own parallel loops (<= 0: leave the defaults). */
void ccd_set_threads(int n);
int ccd_threads(void);
/* BLAS threads only. */
void ccd_set_blas_threads(int n);
/* BLAS on one thread from begin to end (nested and concurrent pairs counted; the last end
 * restores the thread count the first begin found): while several models train side by side,
 * each on its own thread, and inside ccd_sgemm. */
void ccd_blas_single_begin(void);
void ccd_blas_single_end(void);
/* y[k] = exp(x[k]) (x clamped to [-87, 88]), vectorised; x and y must not overlap unless
 * equal. Relative error < 2e-7. */
void ccd_vexp(const float *x, float *y, int n);
/* The largest of x[0..n) (-INFINITY for n = 0; NaNs are ignored). */
float ccd_vmax(const float *x, int n);
/* x[k] = exp(x[k] - shift) in place (ccd_vexp's accuracy); returns the sum of the new values.
 * One pass: the softmax's exponent and normaliser together. */
double ccd_vexp_shift_sum(float *x, int n, float shift);
/* The first index of the nondecreasing v (n) whose value is above x; n when there is none. */
int64_t ccd_first_above(const double *v, int64_t n, double x);
/* Wall-clock seconds from a monotonic clock. */
double ccd_now(void);

#endif
