/* rng: xoshiro256** (Blackman and Vigna) seeded by splitmix64. See rng.h. */
#include "rng.h"

#include <math.h>

uint64_t ccd_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t splitmix64(uint64_t *x)
{
    return ccd_mix64(*x += 0x9e3779b97f4a7c15ULL);
}

void (*ccd_rng_trace)(uint64_t seed, uint64_t stream, const void *caller);

void ccd_rng_init(ccd_rng *rng, uint64_t seed, uint64_t stream)
{
    if (ccd_rng_trace)
        ccd_rng_trace(seed, stream, __builtin_return_address(0));
    uint64_t x = seed ^ (stream * 0xd1342543de82ef95ULL + 0x2545f4914f6cdd1dULL);
    for (int i = 0; i < 4; i++)
        rng->s[i] = splitmix64(&x);
}

float ccd_rng_uniform(ccd_rng *rng)
{
    return (float)(ccd_rng_next(rng) >> 40) * (1.0f / 16777216.0f);
}

double ccd_rng_uniform53(ccd_rng *rng)
{
    return (double)(ccd_rng_next(rng) >> 11) * (1.0 / 9007199254740992.0);
}

float ccd_rng_normal(ccd_rng *rng)
{
    /* u1 in (0, 1] so the log is finite. */
    double u1 = ((double)(ccd_rng_next(rng) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
    double u2 = ccd_rng_uniform53(rng);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

void ccd_rng_shuffle_int(ccd_rng *rng, int *a, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = ccd_rng_below(rng, (uint32_t)i);
        int t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}
