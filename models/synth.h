/* synth: a deterministic synthetic interaction stream with the shape of the Yelp blocks.
 *
 * Users bring their own data; the demo, the tests and anyone without data use this stream. It is
 * built to exercise what CCD is for: a clustered, learnable signal, a power-law popularity that a
 * model has to beat, new users and items in every block, and preferences that drift over time.
 *
 * The model. There are C clusters with unit centres c_1..c_C in R^d. At every block boundary each
 * centre takes a step of size `drift` on the sphere (cos(c_k, c_{k+1}) = sqrt(1 - drift^2)).
 *   item i  (born in block b): cluster z_i, vector y_i = c_{z_i}(b) + item_noise * g / sqrt(d),
 *           fixed for life, and a popularity pop_i = (1 + 100 r_i)^-s with r_i ~ U[0, 1): a
 *           Zipf-Mandelbrot law over relative ranks (at s = 1 the top 10% of items carry about
 *           half of the popularity mass, whatever the catalogue's size);
 *   user u: cluster z_u, a fixed personal offset o_u = user_noise * g / sqrt(d), and an activity
 *           a_u = exp(0.8 g) (log-normal, like the events-per-user spread of real data). In block
 *           k the user's taste is x_u(k) = c_{z_u}(k) + o_u: tastes follow the drifting centres
 *           while items stay where they were born, so newer items fit current tastes better.
 * An event of block k picks a user u with probability proportional to a_u (times new_user_boost
 * for users in their first block; every new user gets at least one event, its arrival), then an
 * item i among the I_k items with probability
 *   p(i | u) ~ pop_i * exp(<x_u(k), y_i> / temperature).
 * Sampling is exact and never touches a users x items matrix: per block, each cluster c gets a
 * cumulative table of w_c(i) = pop_i * exp(<c_c(k), y_i> / T) (C x I_k doubles); a user of cluster
 * c proposes from w_c by binary search and accepts with probability
 *   exp((<o_u, y_i> - |o_u| * max_j |y_j|) / T) <= 1,
 * the remaining factor of p(i | u) over its upper bound (rejection sampling). Memory is
 * O((users + items) * d + clusters * items + events of one block).
 *
 * Splits (as the reference made the Yelp blocks, algorithm section 1.2): within a block, each
 * user's distinct items are shuffled; the first max(1, floor(test_fraction * n)) go to test, the
 * next max(1, floor(valid_fraction * n)) to valid, the rest (at least one) to train; users with
 * fewer than 3 distinct items keep them all in train. A held-out item that nobody trains on in the
 * block goes back to train, and a user left with an empty valid or test list gives both back to
 * train, so every valid/test item has a train pair in the block, valid and test are disjoint from
 * train, and every active user has a train pair. Every event of a (user, item) pair carries the
 * pair's split; train events may repeat a pair (repeat consumption), the dataset deduplicates them.
 *
 * Determinism: the stream is a function of the options alone (each block draws from its own
 * ccd_rng streams of `seed`), for a given build: a compiler that contracts differently into FMA
 * could in rare cases flip one rejection test. */
#ifndef CCD_SYNTH_H
#define CCD_SYNTH_H

#include <stddef.h>
#include <stdint.h>

#include "dataset.h"
#include "rng.h"

typedef struct {
    uint64_t seed;
    int n_blocks;              /* 6 */
    int users0, items0;        /* id-space sizes of block 0: 2000, 1000 */
    int new_users_per_block;   /* 200: ids [U_{k-1}, U_k) are block k's new users */
    int new_items_per_block;   /* 100 */
    int64_t events0;           /* 40000 events in block 0 (>= users0) */
    int64_t events_per_block;  /* 8000 in every later block (>= new_users_per_block) */
    int clusters;              /* 8 */
    int dim;                   /* 16: latent dimension */
    float drift;               /* 0.3: step of the cluster centres per block, in [0, 1] */
    float popularity_exponent; /* 1.0: s of pop = (1 + 100 rank)^-s, rank in [0, 1); 0 is flat */
    float temperature;         /* 0.25: of exp(affinity / T); smaller is more clustered */
    float user_noise;          /* 0.5: norm of a user's personal offset from the centre */
    float item_noise;          /* 0.5: norm of an item's offset from its birth centre */
    float new_user_boost;      /* 3: activity multiplier of users in their first block */
    float valid_fraction;      /* 0.1 */
    float test_fraction;       /* 0.1 */
} ccd_synth_opts;

enum { CCD_SYNTH_TRAIN = 0, CCD_SYNTH_VALID = 1, CCD_SYNTH_TEST = 2 };

typedef struct {
    int user, item; /* rows of the block's id space */
    int block;
    int split; /* CCD_SYNTH_TRAIN, _VALID or _TEST */
} ccd_synth_event;

/* The generator between blocks: latent state of every user and item so far, and the events of
 * the last block generated. Plain data; ccd_synth_free releases it. */
typedef struct {
    ccd_synth_opts o;
    int block;            /* last block generated; -1 before the first */
    int n_users, n_items; /* U_k, I_k after that block */
    int prev_users, prev_items;
    float *centre;      /* (clusters x dim) current unit centres */
    int *user_cluster;  /* (cap_users) */
    float *user_off;    /* (cap_users x dim) personal offsets o_u */
    float *user_act;    /* (cap_users) activity a_u */
    int *item_cluster;  /* (cap_items) */
    float *item_vec;    /* (cap_items x dim) y_i */
    float *item_logpop; /* (cap_items) log pop_i */
    int cap_users, cap_items;
    ccd_synth_event *events; /* (n_events) the last block's events in time order */
    int64_t n_events;
    int64_t n_split[3]; /* events of that block per split */
} ccd_synth;

/* The defaults above. */
void ccd_synth_defaults(ccd_synth_opts *o);
/* 0, or -1 with a message naming the bad option. */
int ccd_synth_check(const ccd_synth_opts *o, char *err, size_t errlen);

/* The iterator. init checks the options; next generates block s->block + 1 into s->events and
 * returns 1, or 0 once n_blocks blocks were generated, or -1 with a message (out of memory). */
int ccd_synth_init(ccd_synth *s, const ccd_synth_opts *o, char *err, size_t errlen);
int ccd_synth_next(ccd_synth *s, char *err, size_t errlen);
void ccd_synth_free(ccd_synth *s);

/* The last generated block as ccd_dataset_load would read it from files written from its events:
 * train/valid/test CSR (deduplicated), n_train_lines = train events, users = every user with an
 * event, items = items with a train event. Returns 0 or -1 (out of memory). */
int ccd_synth_block(const ccd_synth *s, ccd_block *out, char *err, size_t errlen);

/* All blocks in memory, as ccd_dataset_load would return them; free with ccd_dataset_free. */
int ccd_synth_blocks(const ccd_synth_opts *o, ccd_dataset *out, char *err, size_t errlen);

/* Write the stream as a block dataset directory (shared/data/README.md): blocks.tsv and
 * block<k>/{train,valid,test}.tsv (the split's events in time order, repeats kept),
 * block<k>/{users,items}.tsv (sorted), plus synth.txt with the options. Creates dir and its
 * block directories when missing; existing files are replaced. */
int ccd_synth_write(const ccd_synth_opts *o, const char *dir, char *err, size_t errlen);

#endif
