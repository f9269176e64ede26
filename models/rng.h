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

/* Every stream the engine draws from has a kind, so two consumers can never share a sequence:
 * a stream is ccd_stream(kind, block, index), the kind in the top byte, the block in the next
 * 16 bits, an index (a row, a call) in the low 40. Seeds are the run's seed for the student side
 * and a teacher's own seed for its stages. */
typedef enum {
    CCD_STREAM_TEST = 0,        /* tests and tools outside the engine */
    CCD_STREAM_TEACHER_INIT,    /* a teacher's table before training or expansion */
    CCD_STREAM_TEACHER_SAMPLER, /* a teacher stage's BPR triples */
    CCD_STREAM_TEACHER_REPLAY,  /* a teacher update's replay draws */
    CCD_STREAM_TEACHER_SHUFFLE, /* a teacher update's replay-epoch shuffles */
    CCD_STREAM_LWC,             /* LWC-KD's sampled softmax, one index per term */
    CCD_STREAM_STUDENT_INIT,    /* CL_k's table before expansion */
    CCD_STREAM_STUDENT_SAMPLER, /* the student update's BPR triples */
    CCD_STREAM_STUDENT_REPLAY,  /* the student update's replay draws (S and P) */
    CCD_STREAM_STUDENT_SHUFFLE, /* the student update's replay-epoch shuffles */
    CCD_STREAM_KD_INIT,         /* D_k's table when it starts fresh */
    CCD_STREAM_KD_SAMPLER,      /* distillation's BPR triples */
    CCD_STREAM_KD_ITEM_ORDER,   /* distillation's item-pass shuffles */
    CCD_STREAM_KD_UNINT_ITEMS,  /* a user's uninteresting items (index: the user) */
    CCD_STREAM_KD_UNINT_USERS,  /* an item's uninteresting users (index: the item) */
    CCD_STREAM_PROV_INIT,       /* a provisional student's table (provisional.h) */
    CCD_STREAM_PROV_SAMPLER,    /* a provisional student's BPR triples */
    CCD_STREAM_KD_ABSENT_ORDER, /* distillation's absent-user pass shuffles (kd_absent_users) */
} ccd_stream_kind;

static inline uint64_t ccd_stream(ccd_stream_kind kind, int block, uint64_t index)
{
    return (uint64_t)kind << 56 | ((uint64_t)block & 0xFFFF) << 40 | (index & 0xFFFFFFFFFFull);
}

/* splitmix64's finalizer: a 64-bit mix in which every input bit reaches every output bit. A
 * hash for choices that must follow from an id alone (which users an evaluation samples). */
uint64_t ccd_mix64(uint64_t z);
/* Seed from (seed, stream): different streams of one seed are independent sequences. */
void ccd_rng_init(ccd_rng *rng, uint64_t seed, uint64_t stream);
/* Tests only: when set, every ccd_rng_init reports its seed, stream and caller (from any thread;
 * the hook synchronises itself). NULL (the default) costs one load per init. */
extern void (*ccd_rng_trace)(uint64_t seed, uint64_t stream, const void *caller);
/* The next 64 bits. Inline, with ccd_rng_below, because the hot loops (the distillation's
 * uninteresting draws: ten thousand per row) draw one number per iteration: as calls into
 * another file the state went through memory on every draw. */
static inline uint64_t ccd_rng_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}
static inline uint64_t ccd_rng_next(ccd_rng *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = ccd_rng_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = ccd_rng_rotl(s[3], 45);
    return result;
}
/* Uniform integer in [0, n), unbiased (Lemire's multiply-and-reject). n > 0. */
static inline uint32_t ccd_rng_below(ccd_rng *rng, uint32_t n)
{
    uint64_t m = (uint64_t)(uint32_t)(ccd_rng_next(rng) >> 32) * n;
    uint32_t low = (uint32_t)m;
    if (low < n) {
        uint32_t threshold = (uint32_t)(-n) % n;
        while (low < threshold) {
            m = (uint64_t)(uint32_t)(ccd_rng_next(rng) >> 32) * n;
            low = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}
/* Uniform float in [0, 1) with 24 random bits. */
float ccd_rng_uniform(ccd_rng *rng);
/* Uniform double in [0, 1) with 53 random bits: for cumulative tables and weighted draws, where
 * 24 bits would leave the tail of a long table unreachable. */
double ccd_rng_uniform53(ccd_rng *rng);
/* Standard normal (Box-Muller; one value per call, the pair's second half is discarded). */
float ccd_rng_normal(ccd_rng *rng);
/* Fisher-Yates shuffle of n ints. */
void ccd_rng_shuffle_int(ccd_rng *rng, int *a, size_t n);

#endif
