/* synth: the synthetic stream generator. See synth.h for the model. */
#include "synth.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dense.h"

#define ZIPF_SPAN 100.0    /* pop = (1 + ZIPF_SPAN u)^-s: the head is 100x the tail at s = 1 */
#define ACTIVITY_SIGMA 0.8 /* log-normal spread of user activity */
#define MAX_TRIES 100000   /* rejection tries before an event takes its last proposal */
#define MIN_HOLDOUT 3      /* users with fewer distinct items in a block keep them all in train */

/* The rng streams of one block: a block's draws do not depend on how many earlier draws another
 * consumer made, so changing the split fractions leaves the events as they were. */
enum { STREAM_LATENT = 1, STREAM_EVENTS = 2, STREAM_SPLIT = 3 };
static uint64_t stream_of(int block, int what)
{
    return (uint64_t)block * 8 + (uint64_t)what;
}

void ccd_synth_defaults(ccd_synth_opts *o)
{
    *o = (ccd_synth_opts){
        .seed = 1,
        .n_blocks = 6,
        .users0 = 2000,
        .items0 = 1000,
        .new_users_per_block = 200,
        .new_items_per_block = 100,
        .events0 = 40000,
        .events_per_block = 8000,
        .clusters = 8,
        .dim = 16,
        .drift = 0.3f,
        .popularity_exponent = 1.0f,
        .temperature = 0.25f,
        .user_noise = 0.5f,
        .item_noise = 0.5f,
        .new_user_boost = 3.0f,
        .valid_fraction = 0.1f,
        .test_fraction = 0.1f,
    };
}

/* Written as !(lo <= x && x <= hi) so NaN fails too. */
static int out_of(double x, double lo, double hi)
{
    return !(x >= lo && x <= hi);
}

int ccd_synth_check(const ccd_synth_opts *o, char *err, size_t errlen)
{
    const char *bad = NULL;
    int64_t users = (int64_t)o->users0 + (int64_t)(o->n_blocks - 1) * o->new_users_per_block;
    int64_t items = (int64_t)o->items0 + (int64_t)(o->n_blocks - 1) * o->new_items_per_block;
    if (o->n_blocks < 1 || o->n_blocks > 1024)
        bad = "n_blocks must be in [1, 1024]";
    else if (o->users0 < 1 || o->items0 < 1)
        bad = "users0 and items0 must be >= 1";
    else if (o->new_users_per_block < 0 || o->new_items_per_block < 0)
        bad = "new users and items per block must be >= 0";
    else if (users > INT32_MAX / 2 || items > INT32_MAX / 2)
        bad = "too many users or items";
    else if (o->events0 < o->users0 || o->events0 > INT32_MAX)
        bad = "events0 must be in [users0, 2^31) (every user of block 0 has an event)";
    else if (o->n_blocks > 1 &&
             (o->events_per_block < 1 || o->events_per_block < o->new_users_per_block ||
              o->events_per_block > INT32_MAX))
        bad = "events_per_block must be in [max(1, new_users_per_block), 2^31) (every new user has "
              "an event)";
    else if (o->clusters < 1 || o->clusters > 4096 || o->dim < 1 || o->dim > 4096)
        bad = "clusters and dim must be in [1, 4096]";
    else if (out_of(o->drift, 0, 1))
        bad = "drift must be in [0, 1]";
    else if (out_of(o->popularity_exponent, 0, 10))
        bad = "popularity_exponent must be in [0, 10]";
    else if (out_of(o->temperature, 1e-3, 1e3))
        bad = "temperature must be in [0.001, 1000]";
    else if (out_of(o->user_noise, 0, 100) || out_of(o->item_noise, 0, 100))
        bad = "user_noise and item_noise must be in [0, 100]";
    else if (out_of(o->new_user_boost, 1e-3, 1e3))
        bad = "new_user_boost must be in [0.001, 1000]";
    else if (out_of(o->valid_fraction, 0, 0.45) || out_of(o->test_fraction, 0, 0.45))
        bad = "valid_fraction and test_fraction must be in [0, 0.45]";
    if (bad) {
        snprintf(err, errlen, "synthetic stream: %s", bad);
        return -1;
    }
    return 0;
}

void ccd_synth_free(ccd_synth *s)
{
    if (!s)
        return;
    free(s->centre);
    free(s->user_cluster);
    free(s->user_off);
    free(s->user_act);
    free(s->item_cluster);
    free(s->item_vec);
    free(s->item_logpop);
    free(s->events);
    memset(s, 0, sizeof *s);
}

/* v (d) <- a random unit vector. */
static void random_unit(ccd_rng *r, float *v, int d)
{
    double n2 = 0;
    do {
        n2 = 0;
        for (int j = 0; j < d; j++) {
            v[j] = ccd_rng_normal(r);
            n2 += (double)v[j] * v[j];
        }
    } while (n2 < 1e-12);
    float inv = (float)(1.0 / sqrt(n2));
    for (int j = 0; j < d; j++)
        v[j] *= inv;
}

static double dot(const float *a, const float *b, int d)
{
    double s = 0;
    for (int j = 0; j < d; j++)
        s += (double)a[j] * b[j];
    return s;
}

int ccd_synth_init(ccd_synth *s, const ccd_synth_opts *o, char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    if (ccd_synth_check(o, err, errlen) != 0)
        return -1;
    s->o = *o;
    s->block = -1;
    s->cap_users = o->users0 + (o->n_blocks - 1) * o->new_users_per_block;
    s->cap_items = o->items0 + (o->n_blocks - 1) * o->new_items_per_block;
    size_t d = (size_t)o->dim;
    s->centre = malloc((size_t)o->clusters * d * sizeof *s->centre);
    s->user_cluster = malloc((size_t)s->cap_users * sizeof *s->user_cluster);
    s->user_off = malloc((size_t)s->cap_users * d * sizeof *s->user_off);
    s->user_act = malloc((size_t)s->cap_users * sizeof *s->user_act);
    s->item_cluster = malloc((size_t)s->cap_items * sizeof *s->item_cluster);
    s->item_vec = malloc((size_t)s->cap_items * d * sizeof *s->item_vec);
    s->item_logpop = malloc((size_t)s->cap_items * sizeof *s->item_logpop);
    if (!s->centre || !s->user_cluster || !s->user_off || !s->user_act || !s->item_cluster ||
        !s->item_vec || !s->item_logpop) {
        ccd_synth_free(s);
        snprintf(err, errlen, "synthetic stream: out of memory");
        return -1;
    }
    /* Orthonormal centres while clusters <= dim (Gram-Schmidt on random draws): every seed then
     * starts with equally separated tastes, and how learnable a stream is does not hinge on two
     * centres landing close by chance. Past dim, plain random unit vectors. */
    ccd_rng r;
    ccd_rng_init(&r, o->seed, 0);
    for (int c = 0; c < o->clusters; c++) {
        float *v = s->centre + (size_t)c * d;
        double n2;
        do {
            random_unit(&r, v, o->dim);
            for (int q = 0; q < c && c < o->dim; q++) {
                const float *w = s->centre + (size_t)q * d;
                double p = dot(v, w, o->dim);
                for (int j = 0; j < o->dim; j++)
                    v[j] -= (float)(p * w[j]);
            }
            n2 = dot(v, v, o->dim);
        } while (n2 < 1e-6);
        float inv = (float)(1.0 / sqrt(n2));
        for (int j = 0; j < o->dim; j++)
            v[j] *= inv;
    }
    return 0;
}

/* Move every centre a step of size drift on the sphere: c <- sqrt(1 - drift^2) c + drift t, with t
 * a random unit vector orthogonal to c, so cos(old, new) is exactly sqrt(1 - drift^2). */
static void drift_centres(ccd_synth *s, ccd_rng *r, float *t /* (dim) scratch */)
{
    int d = s->o.dim;
    double keep = sqrt(1.0 - (double)s->o.drift * s->o.drift);
    for (int c = 0; c < s->o.clusters; c++) {
        float *cv = s->centre + (size_t)c * d;
        double n2;
        do { /* Gram-Schmidt; redraw in the (measure-zero) case t is parallel to c */
            random_unit(r, t, d);
            double p = dot(t, cv, d);
            n2 = 0;
            for (int j = 0; j < d; j++) {
                t[j] -= (float)(p * cv[j]);
                n2 += (double)t[j] * t[j];
            }
        } while (n2 < 1e-12 && d > 1);
        if (d == 1) /* no orthogonal direction: the centre stays */
            continue;
        double inv = 1.0 / sqrt(n2), norm2 = 0;
        for (int j = 0; j < d; j++) {
            cv[j] = (float)(keep * cv[j] + s->o.drift * t[j] * inv);
            norm2 += (double)cv[j] * cv[j];
        }
        float renorm = (float)(1.0 / sqrt(norm2)); /* float rounding only */
        for (int j = 0; j < d; j++)
            cv[j] *= renorm;
    }
}

/* Users [from, to) and items [ifrom, ito) join with their latent state. */
static void add_entities(ccd_synth *s, ccd_rng *r, int from, int to, int ifrom, int ito)
{
    int d = s->o.dim;
    float us = s->o.user_noise / sqrtf((float)d), is = s->o.item_noise / sqrtf((float)d);
    for (int u = from; u < to; u++) {
        s->user_cluster[u] = (int)ccd_rng_below(r, (uint32_t)s->o.clusters);
        for (int j = 0; j < d; j++)
            s->user_off[(size_t)u * d + j] = us * ccd_rng_normal(r);
        s->user_act[u] = (float)exp(ACTIVITY_SIGMA * ccd_rng_normal(r));
    }
    for (int i = ifrom; i < ito; i++) {
        int c = (int)ccd_rng_below(r, (uint32_t)s->o.clusters);
        s->item_cluster[i] = c;
        for (int j = 0; j < d; j++)
            s->item_vec[(size_t)i * d + j] = s->centre[(size_t)c * d + j] + is * ccd_rng_normal(r);
        /* a Zipf-Mandelbrot weight at a uniform relative rank u: the shares of the head do not
         * depend on the catalogue's size (at s = 1 the top 10% of ranks hold half the mass), and
         * a new item is as likely to be a hit as an old one */
        double u = ccd_rng_uniform53(r);
        s->item_logpop[i] = (float)(-s->o.popularity_exponent * log1p(ZIPF_SPAN * u));
    }
}

/* The entry of a cumulative table cum (n) that x (in [0, cum[n-1])) falls in: the first with
 * cum[i] > x, and the last one when rounding puts x past every entry. */
static int cdf_pick(const double *cum, int n, double x)
{
    return (int)ccd_first_above(cum, n - 1, x);
}

typedef struct {
    int64_t key; /* user * n_items + item */
    int64_t pos; /* event index */
} pair_key;

static int cmp_pair_key(const void *a, const void *b)
{
    const pair_key *x = a, *y = b;
    if (x->key != y->key)
        return (x->key > y->key) - (x->key < y->key);
    return (x->pos > y->pos) - (x->pos < y->pos);
}

/* Draw the block's events: users (every new user once, the rest by activity), then one item each
 * by rejection from the user's cluster table. */
static int draw_events(ccd_synth *s, int k, int64_t n_ev, char *err, size_t errlen)
{
    const ccd_synth_opts *o = &s->o;
    int d = o->dim, nu = s->n_users, ni = s->n_items, C = o->clusters;
    double *table = malloc((size_t)C * ni * sizeof *table);    /* (C x ni) cumulative w_c */
    double *ucum = malloc((size_t)nu * sizeof *ucum);          /* (nu) cumulative user weights */
    int *slot_user = malloc((size_t)n_ev * sizeof *slot_user); /* (n_ev) */
    if (!table || !ucum || !slot_user) {
        free(table), free(ucum), free(slot_user);
        snprintf(err, errlen, "synthetic stream: out of memory");
        return -1;
    }
    double ymax = 0;
    for (int i = 0; i < ni; i++)
        ymax = fmax(ymax, sqrt(dot(s->item_vec + (size_t)i * d, s->item_vec + (size_t)i * d, d)));
    /* w_c(i) = pop_i exp(<c, y_i> / T), shifted by the row max before exp: a cold temperature
     * would otherwise overflow */
    double inv_t = 1.0 / o->temperature;
    for (int c = 0; c < C; c++) {
        double *row = table + (size_t)c * ni, m = -INFINITY, acc = 0;
        for (int i = 0; i < ni; i++) {
            const float *y = s->item_vec + (size_t)i * d;
            row[i] = s->item_logpop[i] + dot(s->centre + (size_t)c * d, y, d) * inv_t;
            m = fmax(m, row[i]);
        }
        for (int i = 0; i < ni; i++) {
            acc += exp(row[i] - m);
            row[i] = acc;
        }
    }
    double acc = 0;
    for (int u = 0; u < nu; u++) {
        acc += (double)s->user_act[u] * (u >= s->prev_users ? o->new_user_boost : 1.0);
        ucum[u] = acc;
    }
    ccd_rng r;
    ccd_rng_init(&r, o->seed, stream_of(k, STREAM_EVENTS));
    int64_t n_new = nu - s->prev_users, t = 0;
    for (; t < n_new; t++)
        slot_user[t] = s->prev_users + (int)t; /* arrivals */
    for (; t < n_ev; t++)
        slot_user[t] = cdf_pick(ucum, nu, ccd_rng_uniform53(&r) * acc);
    ccd_rng_shuffle_int(&r, slot_user, (size_t)n_ev);
    for (t = 0; t < n_ev; t++) {
        int u = slot_user[t];
        const float *off = s->user_off + (size_t)u * d;
        const double *row = table + (size_t)s->user_cluster[u] * ni;
        double bound = sqrt(dot(off, off, d)) * ymax, total = row[ni - 1];
        int item = 0;
        for (int tries = 0; tries < MAX_TRIES; tries++) {
            item = cdf_pick(row, ni, ccd_rng_uniform53(&r) * total);
            double a = dot(off, s->item_vec + (size_t)item * d, d);
            if (ccd_rng_uniform53(&r) < exp((a - bound) * inv_t))
                break;
        }
        s->events[t] =
            (ccd_synth_event){.user = u, .item = item, .block = k, .split = CCD_SYNTH_TRAIN};
    }
    free(table), free(ucum), free(slot_user);
    return 0;
}

/* A block's events grouped by (user, item) pair, and each pair's split. */
typedef struct {
    int64_t n, n_pairs, ni; /* events, distinct pairs, items */
    pair_key *pk;           /* (n) events sorted by pair, then by position */
    unsigned char *psplit;  /* (pairs <= n) split of each pair */
    int *pitem;             /* (pairs) item of each pair */
} pair_table;

/* The events pk[e0..*e1) and pairs [p0, *p1) of the user whose first event is pk[e0]. */
static void user_span(const pair_table *t, int64_t e0, int64_t p0, int64_t *e1, int64_t *p1)
{
    const int64_t user = t->pk[e0].key / t->ni;
    *e1 = e0, *p1 = p0;
    for (; *e1 < t->n && t->pk[*e1].key / t->ni == user; (*e1)++)
        if (*e1 == e0 || t->pk[*e1].key != t->pk[*e1 - 1].key)
            (*p1)++;
}

/* Every user with at least MIN_HOLDOUT pairs sends a random test_fraction of them to test and
 * valid_fraction to valid (at least one each when the fraction is not 0); the rest train.
 * perm (n) is scratch. */
static void hold_out(pair_table *t, const ccd_synth_opts *o, ccd_rng *r, int *perm)
{
    for (int64_t p0 = 0, e0 = 0, p1, e1; p0 < t->n_pairs; p0 = p1, e0 = e1) {
        user_span(t, e0, p0, &e1, &p1);
        int cnt = (int)(p1 - p0);
        memset(t->psplit + p0, CCD_SYNTH_TRAIN, (size_t)cnt);
        if (cnt < MIN_HOLDOUT)
            continue;
        int n_test = o->test_fraction > 0 ? (int)fmax(1.0, floor(o->test_fraction * cnt)) : 0;
        int n_valid = o->valid_fraction > 0 ? (int)fmax(1.0, floor(o->valid_fraction * cnt)) : 0;
        for (int j = 0; j < cnt; j++)
            perm[j] = j;
        ccd_rng_shuffle_int(r, perm, (size_t)cnt);
        for (int j = 0; j < n_test; j++)
            t->psplit[p0 + perm[j]] = CCD_SYNTH_TEST;
        for (int j = n_test; j < n_test + n_valid; j++)
            t->psplit[p0 + perm[j]] = CCD_SYNTH_VALID;
    }
}

/* Held-out pairs whose item nobody trains on in the block go back to train. trained (ni) is
 * zeroed scratch. */
static void return_untrained_items(pair_table *t, unsigned char *trained)
{
    for (int64_t p = 0; p < t->n_pairs; p++)
        if (t->psplit[p] == CCD_SYNTH_TRAIN)
            trained[t->pitem[p]] = 1;
    for (int64_t p = 0; p < t->n_pairs; p++)
        if (t->psplit[p] != CCD_SYNTH_TRAIN && !trained[t->pitem[p]])
            t->psplit[p] = CCD_SYNTH_TRAIN;
}

/* A user whose valid or test list emptied (while the other did not) gives both back. */
static void return_half_held_users(pair_table *t, const ccd_synth_opts *o)
{
    for (int64_t p0 = 0, e0 = 0, p1, e1; p0 < t->n_pairs; p0 = p1, e0 = e1) {
        user_span(t, e0, p0, &e1, &p1);
        int nv = 0, nt = 0;
        for (int64_t p = p0; p < p1; p++) {
            nv += t->psplit[p] == CCD_SYNTH_VALID;
            nt += t->psplit[p] == CCD_SYNTH_TEST;
        }
        if ((nv || nt) && ((o->valid_fraction > 0 && !nv) || (o->test_fraction > 0 && !nt)))
            memset(t->psplit + p0, CCD_SYNTH_TRAIN, (size_t)(p1 - p0));
    }
}

/* Give every event its (user, item) pair's split; see synth.h for the rules. */
static int split_events(ccd_synth *s, int k, char *err, size_t errlen)
{
    pair_table t = {.n = s->n_events, .ni = s->n_items};
    const int64_t n = t.n;
    t.pk = malloc((size_t)n * sizeof *t.pk);
    t.psplit = malloc((size_t)n);
    t.pitem = malloc((size_t)n * sizeof *t.pitem);
    unsigned char *trained = calloc((size_t)t.ni, 1); /* (ni) items with a train pair */
    int *perm = malloc((size_t)n * sizeof *perm);     /* scratch: one user's pairs */
    if (!t.pk || !t.psplit || !t.pitem || !trained || !perm) {
        free(t.pk), free(t.psplit), free(t.pitem), free(trained), free(perm);
        snprintf(err, errlen, "synthetic stream: out of memory");
        return -1;
    }
    for (int64_t e = 0; e < n; e++)
        t.pk[e] = (pair_key){(int64_t)s->events[e].user * t.ni + s->events[e].item, e};
    qsort(t.pk, (size_t)n, sizeof *t.pk, cmp_pair_key);
    for (int64_t e = 0; e < n; e++) /* the distinct pairs, in (user, item) order */
        if (e == 0 || t.pk[e].key != t.pk[e - 1].key)
            t.pitem[t.n_pairs++] = (int)(t.pk[e].key % t.ni);
    ccd_rng r;
    ccd_rng_init(&r, s->o.seed, stream_of(k, STREAM_SPLIT));
    hold_out(&t, &s->o, &r, perm);
    return_untrained_items(&t, trained);
    return_half_held_users(&t, &s->o);
    /* events take their pair's split */
    memset(s->n_split, 0, sizeof s->n_split);
    for (int64_t e = 0, p = -1; e < n; e++) {
        if (e == 0 || t.pk[e].key != t.pk[e - 1].key)
            p++;
        s->events[t.pk[e].pos].split = t.psplit[p];
        s->n_split[t.psplit[p]]++;
    }
    free(t.pk), free(t.psplit), free(t.pitem), free(trained), free(perm);
    return 0;
}

int ccd_synth_next(ccd_synth *s, char *err, size_t errlen)
{
    const ccd_synth_opts *o = &s->o;
    int k = s->block + 1;
    if (k >= o->n_blocks)
        return 0;
    ccd_rng r;
    ccd_rng_init(&r, o->seed, stream_of(k, STREAM_LATENT));
    float *scratch = malloc((size_t)o->dim * sizeof *scratch);
    if (!scratch) {
        snprintf(err, errlen, "synthetic stream: out of memory");
        return -1;
    }
    if (k > 0)
        drift_centres(s, &r, scratch);
    free(scratch);
    s->prev_users = s->n_users;
    s->prev_items = s->n_items;
    int nu = k ? s->n_users + o->new_users_per_block : o->users0;
    int ni = k ? s->n_items + o->new_items_per_block : o->items0;
    add_entities(s, &r, s->n_users, nu, s->n_items, ni);
    s->n_users = nu;
    s->n_items = ni;
    s->block = k;
    int64_t n_ev = k ? o->events_per_block : o->events0;
    ccd_synth_event *ev = realloc(s->events, (size_t)(n_ev > 0 ? n_ev : 1) * sizeof *ev);
    if (!ev) {
        snprintf(err, errlen, "synthetic stream: out of memory");
        return -1;
    }
    s->events = ev;
    s->n_events = n_ev;
    if (draw_events(s, k, n_ev, err, errlen) != 0 || split_events(s, k, err, errlen) != 0)
        return -1;
    return 1;
}

/* The block's active users (every user with an event) and items (items with a train event),
 * sorted: marks over the id space, read back in order. */
static int active_sets(const ccd_synth *s, int **users, int *n_users, int **items, int *n_items)
{
    unsigned char *mu = calloc((size_t)s->n_users, 1), *mi = calloc((size_t)s->n_items, 1);
    *users = malloc((size_t)s->n_users * sizeof **users);
    *items = malloc((size_t)s->n_items * sizeof **items);
    if (!mu || !mi || !*users || !*items) {
        free(mu), free(mi), free(*users), free(*items);
        *users = *items = NULL;
        return -1;
    }
    for (int64_t e = 0; e < s->n_events; e++) {
        mu[s->events[e].user] = 1;
        if (s->events[e].split == CCD_SYNTH_TRAIN)
            mi[s->events[e].item] = 1;
    }
    *n_users = *n_items = 0;
    for (int u = 0; u < s->n_users; u++)
        if (mu[u])
            (*users)[(*n_users)++] = u;
    for (int i = 0; i < s->n_items; i++)
        if (mi[i])
            (*items)[(*n_items)++] = i;
    free(mu), free(mi);
    return 0;
}

int ccd_synth_block(const ccd_synth *s, ccd_block *b, char *err, size_t errlen)
{
    memset(b, 0, sizeof *b);
    if (s->block < 0) {
        snprintf(err, errlen, "synthetic stream: no block generated yet");
        return -1;
    }
    b->index = s->block;
    b->n_users = s->n_users;
    b->n_items = s->n_items;
    b->prev_users = s->prev_users;
    b->prev_items = s->prev_items;
    b->n_train_lines = s->n_split[CCD_SYNTH_TRAIN];
    int64_t n = s->n_events;
    size_t cap = (size_t)(n > 0 ? n : 1);
    int *rows = malloc(cap * sizeof *rows),
        *cols = malloc(cap * sizeof *cols); /* (n) one split's pairs */
    int rc = rows && cols ? 0 : -1;
    ccd_csr *dst[3] = {&b->train, &b->valid, &b->test};
    for (int split = 0; split < 3 && rc == 0; split++) {
        int64_t m = 0;
        for (int64_t e = 0; e < n; e++)
            if (s->events[e].split == split)
                rows[m] = s->events[e].user, cols[m++] = s->events[e].item;
        rc = ccd_csr_from_pairs(dst[split], b->n_users, b->n_items, rows, cols, m);
    }
    free(rows), free(cols);
    if (rc == 0)
        rc = active_sets(s, &b->users, &b->n_active_users, &b->items, &b->n_active_items);
    if (rc != 0) {
        ccd_csr_free(&b->train), ccd_csr_free(&b->valid), ccd_csr_free(&b->test);
        free(b->users), free(b->items);
        memset(b, 0, sizeof *b);
        snprintf(err, errlen, "synthetic stream: out of memory");
        return -1;
    }
    return 0;
}

int ccd_synth_blocks(const ccd_synth_opts *o, ccd_dataset *ds, char *err, size_t errlen)
{
    memset(ds, 0, sizeof *ds);
    ccd_synth s;
    if (ccd_synth_init(&s, o, err, errlen) != 0)
        return -1;
    ds->blocks = calloc((size_t)o->n_blocks, sizeof *ds->blocks);
    if (!ds->blocks) {
        ccd_synth_free(&s);
        snprintf(err, errlen, "synthetic stream: out of memory");
        return -1;
    }
    ds->n_blocks = o->n_blocks; /* zeroed blocks free cleanly if a later one fails */
    for (int k = 0; k < o->n_blocks; k++)
        if (ccd_synth_next(&s, err, errlen) != 1 ||
            ccd_synth_block(&s, &ds->blocks[k], err, errlen) != 0) {
            ccd_synth_free(&s);
            ccd_dataset_free(ds);
            return -1;
        }
    ccd_synth_free(&s);
    return 0;
}

/* mkdir -p: the parents too, so --write-dataset out/synth/run1 just works. */
static int make_dir(const char *path, char *err, size_t errlen)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) {
        snprintf(err, errlen, "%.200s: bad directory name", path);
        return -1;
    }
    memcpy(buf, path, n + 1);
    for (size_t k = 1; k <= n; k++) {
        if (buf[k] != '/' && buf[k] != '\0')
            continue;
        char keep = buf[k];
        buf[k] = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) {
            snprintf(err, errlen, "%s: cannot create: %s", buf, strerror(errno));
            return -1;
        }
        buf[k] = keep;
    }
    return 0;
}

/* Close f and report a failed write (a full disk shows up here, at the latest). */
static int close_checked(FILE *f, const char *path, char *err, size_t errlen)
{
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        snprintf(err, errlen, "%s: write failed", path);
        return -1;
    }
    return 0;
}

static FILE *open_out(char *path, size_t cap, const char *dir, int k, const char *name, char *err,
                      size_t errlen)
{
    if (k >= 0)
        snprintf(path, cap, "%s/block%d/%s", dir, k, name);
    else
        snprintf(path, cap, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f)
        snprintf(err, errlen, "%s: cannot open for writing: %s", path, strerror(errno));
    return f;
}

static int write_block(const ccd_synth *s, const char *dir, char *err, size_t errlen)
{
    static const char *names[3] = {"train.tsv", "valid.tsv", "test.tsv"};
    char path[4096];
    int k = s->block;
    snprintf(path, sizeof path, "%s/block%d", dir, k);
    if (make_dir(path, err, errlen) != 0)
        return -1;
    for (int split = 0; split < 3; split++) {
        FILE *f = open_out(path, sizeof path, dir, k, names[split], err, errlen);
        if (!f)
            return -1;
        for (int64_t e = 0; e < s->n_events; e++)
            if (s->events[e].split == split)
                fprintf(f, "%d\t%d\n", s->events[e].user, s->events[e].item);
        if (close_checked(f, path, err, errlen) != 0)
            return -1;
    }
    int *users, *items, nu, ni;
    if (active_sets(s, &users, &nu, &items, &ni) != 0) {
        snprintf(err, errlen, "synthetic stream: out of memory");
        return -1;
    }
    int rc = 0;
    for (int which = 0; which < 2 && rc == 0; which++) {
        FILE *f =
            open_out(path, sizeof path, dir, k, which ? "items.tsv" : "users.tsv", err, errlen);
        if (!f) {
            rc = -1;
            break;
        }
        const int *v = which ? items : users;
        for (int j = 0, n = which ? ni : nu; j < n; j++)
            fprintf(f, "%d\n", v[j]);
        rc = close_checked(f, path, err, errlen);
    }
    free(users), free(items);
    return rc;
}

int ccd_synth_write(const ccd_synth_opts *o, const char *dir, char *err, size_t errlen)
{
    ccd_synth s;
    if (ccd_synth_init(&s, o, err, errlen) != 0)
        return -1;
    char path[4096];
    int rc = make_dir(dir, err, errlen);
    /* blocks.tsv last: its sizes are the ones the block files were written with */
    int sizes[1024][2];
    for (int k = 0; rc == 0 && k < o->n_blocks; k++) {
        rc = ccd_synth_next(&s, err, errlen) == 1 ? write_block(&s, dir, err, errlen) : -1;
        sizes[k][0] = s.n_users, sizes[k][1] = s.n_items;
    }
    ccd_synth_free(&s);
    if (rc != 0)
        return -1;
    FILE *f = open_out(path, sizeof path, dir, -1, "blocks.tsv", err, errlen);
    if (!f)
        return -1;
    fprintf(f, "block\tnum_users\tnum_items\n");
    for (int k = 0; k < o->n_blocks; k++)
        fprintf(f, "%d\t%d\t%d\n", k, sizes[k][0], sizes[k][1]);
    if (close_checked(f, path, err, errlen) != 0)
        return -1;
    /* the options, so the directory says how to make it again */
    if (!(f = open_out(path, sizeof path, dir, -1, "synth.txt", err, errlen)))
        return -1;
    fprintf(
        f,
        "seed = %llu\nblocks = %d\nusers0 = %d\nitems0 = %d\nnew_users_per_block = %d\n"
        "new_items_per_block = %d\nevents0 = %lld\nevents_per_block = %lld\nclusters = %d\ndim = "
        "%d\n"
        "drift = %g\npopularity_exponent = %g\ntemperature = %g\nuser_noise = %g\nitem_noise = %g\n"
        "new_user_boost = %g\nvalid_fraction = %g\ntest_fraction = %g\n",
        (unsigned long long)o->seed, o->n_blocks, o->users0, o->items0, o->new_users_per_block,
        o->new_items_per_block, (long long)o->events0, (long long)o->events_per_block, o->clusters,
        o->dim, o->drift, o->popularity_exponent, o->temperature, o->user_noise, o->item_noise,
        o->new_user_boost, o->valid_fraction, o->test_fraction);
    return close_checked(f, path, err, errlen);
}
