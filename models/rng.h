/* rng: the engine's one source of randomness.
 *
 * xoshiro256** seeded through splitmix64. Every random choice in libccd (initialisation,
 * negative sampling, shuffles) draws from an explicit ccd_rng, so a run is reproducible from its
 * seed and thread count. Streams for independent consumers (one per teacher, one per stage) are
 * derived with ccd_rng_init(seed, stream) instead of sharing a global state. */
#ifndef CCD_RNG_H
#define CCD_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t s[4];
} ccd_rng;

/* Seed from (seed, stream): different streams of one seed are independent sequences. */
void ccd_rng_init(ccd_rng *rng, uint64_t seed, uint64_t stream);
uint64_t ccd_rng_next(ccd_rng *rng);
/* Uniform integer in [0, n), unbiased (Lemire's multiply-and-reject). n > 0. */
uint32_t ccd_rng_below(ccd_rng *rng, uint32_t n);
/* Uniform float in [0, 1) with 24 random bits. */
float ccd_rng_uniform(ccd_rng *rng);
/* Standard normal (Box-Muller; one value per call, the pair's second half is discarded). */
float ccd_rng_normal(ccd_rng *rng);
/* Fisher-Yates shuffle of n ints. */
void ccd_rng_shuffle_int(ccd_rng *rng, int *a, size_t n);

#endif
