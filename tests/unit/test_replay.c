/* Unit tests of the replay sampler (replay.h) and of model expansion (expand.h).
 *
 * Replay: hand-made score matrices with known candidates and labels; the top-ab tie rule
 * against a brute-force sort; the sampling distribution against exact probabilities; rank_ref
 * against a brute-force count on random and heavily tied rows, through both of the sampler's
 * methods (a large eps makes the draw order follow the weights); several chunks of users; merge.
 * Expand: a hand-made block whose every new row is computed here by hand, for topk below, at and
 * above the candidate counts. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dense.h"
#include "expand.h"
#include "replay.h"
#include "scorer.h"
#include "sparse.h"

static float sigmoid(float x)
{
    return (float)(1.0 / (1.0 + exp(-(double)x)));
}

static bool in_list(const int *v, int n, int x)
{
    for (int k = 0; k < n; k++)
        if (v[k] == x)
            return true;
    return false;
}

/* ---- (1) candidates, labels, filters, caps ------------------------------------------------ */

/* src: 3 users x 12 items, d = 2, all products exact in fp32.
 *   user 0 = (1, 0): score a_i;  user 1 = (0, 1): score b_i = i % 4 (ties);  user 2 = (1, 1).
 * Filters: set A (3 rows) removes items 2 and 11 of user 0 and all but items 0 and 1 of user 2;
 * set B has 2 rows only (rows past its end exclude nothing) and removes item 7 of user 1. */
static const float src_users[3 * 2] = {1, 0, 0, 1, 1, 1};
static const float src_items[12 * 2] = {
    /* (a_i, b_i) for i = 0..11 */
    0.5f, 0, -1, 1, 3, 2, 2.5f, 3, -2, 0, 1, 1, 4, 2, -0.5f, 3, 1.5f, 0, 0, 1, -3, 2, 2, 3,
};

typedef struct {
    ccd_csr a, b;
    ccd_filter f;
} small_filter;

static void small_filter_build(small_filter *sf)
{
    int au[] = {0, 0, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2};
    int ai[] = {2, 11, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
    int bu[] = {1}, bi[] = {7};
    assert_int_equal(ccd_csr_from_pairs(&sf->a, 3, 12, au, ai, 12), 0);
    assert_int_equal(ccd_csr_from_pairs(&sf->b, 2, 12, bu, bi, 1), 0);
    sf->f = (ccd_filter){.sets = {&sf->a, &sf->b}, .n_sets = 2};
}

static void small_filter_free(small_filter *sf)
{
    ccd_csr_free(&sf->a);
    ccd_csr_free(&sf->b);
}

static void replay_draws_top_eligible_with_sigmoid_labels(void **state)
{
    (void)state;
    ccd_scorer src = ccd_scorer_embeddings(src_users, src_items, 3, 12, 2);
    /* ref: more users and items than src (the extra ones must be ignored), arbitrary scores */
    float ref_users[4 * 2] = {1, -1, 0.5f, 2, -1, 1, 3, 0};
    float ref_items[14 * 2];
    for (int i = 0; i < 14; i++) {
        ref_items[2 * i] = (float)((i * 5) % 7) - 3.0f;
        ref_items[2 * i + 1] = (float)((i * 3) % 11) * 0.25f;
    }
    ccd_scorer ref = ccd_scorer_embeddings(ref_users, ref_items, 4, 14, 2);
    small_filter sf;
    small_filter_build(&sf);

    /* Expected candidates (ab = 4), by hand:
     *   user 0: a = 4(i6) 3(i2, filtered) 2.5(i3) 2(i11, filtered) 1.5(i8) 1(i5) -> 6 3 8 5
     *   user 1: b = 3: i3 i7(filtered) i11, then b = 2: i2 i6             -> 3 11 2 6
     *   user 2: only items 0 and 1 are eligible                            -> 0 1 */
    const int expect[3][4] = {{6, 3, 8, 5}, {3, 11, 2, 6}, {0, 1, -1, -1}};
    const int n_expect[3] = {4, 4, 2};

    for (int seed = 0; seed < 20; seed++) {
        for (int n_draw = 1; n_draw <= 10; n_draw += 3) {
            ccd_rng rng;
            ccd_rng_init(&rng, (uint64_t)seed, 7);
            ccd_replay_set out;
            assert_int_equal(ccd_replay_sample(&src, &sf.f, &ref, 4, n_draw, 1e-4f, &rng, &out), 0);
            int per_user[3] = {0};
            int64_t k = 0;
            for (int u = 0; u < 3; u++) {
                int drawn[12];
                /* users come out in order, each user's draws together */
                while (k < out.n && out.user[k] == u) {
                    const int i = out.item[k];
                    assert_true(in_list(expect[u], n_expect[u], i));
                    assert_false(ccd_csr_contains(&sf.a, u, i));
                    assert_false(ccd_csr_contains(&sf.b, u, i));
                    assert_false(in_list(drawn, per_user[u], i)); /* distinct within the user */
                    drawn[per_user[u]++] = i;
                    const float s = src_users[2 * u] * src_items[2 * i] +
                                    src_users[2 * u + 1] * src_items[2 * i + 1];
                    assert_float_equal(out.label[k], sigmoid(s), 1e-7);
                    k++;
                }
                const int cap = n_draw < n_expect[u] ? n_draw : n_expect[u];
                assert_int_equal(per_user[u], cap);
            }
            assert_int_equal(k, out.n);
            ccd_replay_free(&out);
        }
    }

    /* The same seed gives the same set, draw for draw. */
    ccd_rng r1, r2;
    ccd_rng_init(&r1, 99, 0);
    ccd_rng_init(&r2, 99, 0);
    ccd_replay_set x, y;
    assert_int_equal(ccd_replay_sample(&src, &sf.f, &ref, 4, 2, 0.3f, &r1, &x), 0);
    assert_int_equal(ccd_replay_sample(&src, &sf.f, &ref, 4, 2, 0.3f, &r2, &y), 0);
    assert_int_equal(x.n, y.n);
    assert_memory_equal(x.item, y.item, (size_t)x.n * sizeof *x.item);
    ccd_replay_free(&x);
    ccd_replay_free(&y);

    /* No filter: user 0's candidates are the plain top 4 (6 2 3 11); n_draw 0 draws nothing. */
    ccd_rng_init(&r1, 1, 0);
    assert_int_equal(ccd_replay_sample(&src, NULL, &ref, 4, 4, 1e-4f, &r1, &x), 0);
    assert_int_equal(x.n, 12);
    for (int k = 0; k < 4; k++)
        assert_true(in_list((const int[]){6, 2, 3, 11}, 4, x.item[k]));
    ccd_replay_free(&x);
    assert_int_equal(ccd_replay_sample(&src, NULL, &ref, 4, 0, 1e-4f, &r1, &x), 0);
    assert_int_equal(x.n, 0);
    ccd_replay_free(&x);

    /* A reference smaller than the source is an error. */
    ccd_scorer small_ref = ccd_scorer_embeddings(ref_users, ref_items, 2, 14, 2);
    assert_int_equal(ccd_replay_sample(&src, NULL, &small_ref, 4, 1, 1e-4f, &r1, &x), -1);
    assert_int_equal(x.n, 0);
    small_filter_free(&sf);
}

/* The top-ab selection keeps, among equal scores, the lower ids: 300 random rows of 5..44 items
 * with 4 score levels (so almost every cut falls inside a tie), random filters and ab, checked
 * against a brute-force sort. */
static void replay_candidates_break_ties_by_id(void **state)
{
    (void)state;
    ccd_rng g;
    ccd_rng_init(&g, 23, 0);
    const float one = 1.0f;
    for (int trial = 0; trial < 300; trial++) {
        const int n = 5 + (int)ccd_rng_below(&g, 40), ab = 1 + (int)ccd_rng_below(&g, (uint32_t)n);
        float sc[44];
        int fu[8], fi[8], order[44], n_order = 0;
        for (int i = 0; i < n; i++)
            sc[i] = (float)ccd_rng_below(&g, 4);
        for (int k = 0; k < 8; k++)
            fu[k] = 0, fi[k] = (int)ccd_rng_below(&g, (uint32_t)n);
        ccd_csr fs;
        assert_int_equal(ccd_csr_from_pairs(&fs, 1, n, fu, fi, 8), 0);
        /* expected: eligible items by (score desc, id asc), by insertion */
        for (int i = 0; i < n; i++) {
            if (ccd_csr_contains(&fs, 0, i))
                continue;
            int at = n_order;
            while (at > 0 && sc[order[at - 1]] < sc[i])
                at--;
            memmove(order + at + 1, order + at, (size_t)(n_order - at) * sizeof *order);
            order[at] = i;
            n_order++;
        }
        ccd_scorer src = ccd_scorer_embeddings(&one, sc, 1, n, 1);
        ccd_filter f = {.sets = {&fs}, .n_sets = 1};
        ccd_rng rng;
        ccd_rng_init(&rng, (uint64_t)trial, 1);
        ccd_replay_set out;
        assert_int_equal(ccd_replay_sample(&src, &f, &src, ab, ab, 1e-4f, &rng, &out), 0);
        const int expect_n = ab < n_order ? ab : n_order;
        assert_int_equal(out.n, expect_n);
        for (int64_t k = 0; k < out.n; k++)
            assert_true(in_list(order, expect_n, out.item[k]));
        ccd_replay_free(&out);
        ccd_csr_free(&fs);
    }
}

/* ---- (2) the sampling distribution --------------------------------------------------------- */

/* One user, src over 6 items, ref over 7 (item 6 lies outside src and must not count).
 *   src scores: i3 5, i4 4, i5 3, others lower   -> candidates (ab = 3): i3 i4 i5, rank_src 0 1 2
 *   ref scores: i4 10, i5 10 (tie: i4 first), i6 9.5 (ignored), i0 9, i1 8, i3 8 (tie: i1
 *               first), i2 1
 *     ranks over items 0..5: i4 0, i5 1, i0 2, i1 3, i3 4, i2 5
 *   rank_ref - rank_src: i3 4 - 0 = 4, i4 0 - 1 = -1, i5 1 - 2 = -1.
 * Both tie directions occur (the candidate with the lower id, i4, and with the higher, i3). */
static const float dist_src_items[6] = {1, 0, -1, 5, 4, 3};
static const float dist_ref_items[7] = {9, 8, 1, 8, 10, 10, 9.5f};
static const float one_user[1] = {1};

static void replay_follows_rank_difference_distribution(void **state)
{
    (void)state;
    ccd_scorer src = ccd_scorer_embeddings(one_user, dist_src_items, 1, 6, 1);
    ccd_scorer ref = ccd_scorer_embeddings(one_user, dist_ref_items, 1, 7, 1);
    const float eps = 0.5f;
    const int cand[3] = {3, 4, 5}, diff[3] = {4, -1, -1};
    double w[3], wsum = 0;
    for (int q = 0; q < 3; q++)
        wsum += w[q] = exp((double)eps * diff[q]);

    /* n_draw = 1: P(i) = w_i / W. n_draw = 2 (sequential, without replacement):
     * P(i drawn) = w_i / W + sum_{j != i} (w_j / W) (w_i / (W - w_j)). */
    for (int n_draw = 1; n_draw <= 2; n_draw++) {
        const int n = 20000;
        int count[6] = {0};
        for (int rep = 0; rep < n; rep++) {
            ccd_rng rng;
            ccd_rng_init(&rng, 2024, (uint64_t)rep);
            ccd_replay_set out;
            assert_int_equal(ccd_replay_sample(&src, NULL, &ref, 3, n_draw, eps, &rng, &out), 0);
            assert_int_equal(out.n, n_draw);
            for (int64_t k = 0; k < out.n; k++)
                count[out.item[k]]++;
            if (n_draw == 2)
                assert_int_not_equal(out.item[0], out.item[1]);
            ccd_replay_free(&out);
        }
        for (int q = 0; q < 3; q++) {
            double p = w[q] / wsum;
            if (n_draw == 2)
                for (int j = 0; j < 3; j++)
                    if (j != q)
                        p += w[j] / wsum * w[q] / (wsum - w[j]);
            const double freq = (double)count[cand[q]] / n;
            const double sigma = sqrt(p * (1 - p) / n);
            assert_true(fabs(freq - p) < 3.5 * sigma);
        }
    }
}

/* ---- rank_ref against brute force ---------------------------------------------------------- */

/* With eps = 50 the weight ratio between rank differences one apart is e^50, so drawing all
 * candidates orders them by rank_ref - rank_src (ties aside): the sequence of brute-force
 * differences must be non-increasing, and every drawn item must be a top-ab eligible one. */
static void check_against_brute_force(const ccd_scorer *src, const ccd_scorer *ref,
                                      const ccd_csr *fs, int ab)
{
    const int U = src->n_users, I = src->n_items, IR = ref->n_items;
    ccd_filter f = {.sets = {fs}, .n_sets = 1};
    int *users = malloc((size_t)U * sizeof *users);
    for (int u = 0; u < U; u++)
        users[u] = u;
    /* the scores exactly as the sampler sees them */
    float *ss = ccd_floats((size_t)U * I), *rs = ccd_floats((size_t)U * IR);
    assert_int_equal(src->rows(src, users, U, ss), 0);
    assert_int_equal(ref->rows(ref, users, U, rs), 0);
    ccd_rng rng;
    ccd_rng_init(&rng, 5, 0);
    ccd_replay_set out;
    assert_int_equal(ccd_replay_sample(src, &f, ref, ab, ab, 50.0f, &rng, &out), 0);
    assert_int_equal(out.n, (int64_t)U * ab);
    for (int u = 0; u < U; u++) {
        const float *s = ss + (size_t)u * I, *r = rs + (size_t)u * IR;
        int prev_diff = 1 << 30;
        for (int t = 0; t < ab; t++) {
            const int64_t k = (int64_t)u * ab + t;
            assert_int_equal(out.user[k], u);
            const int i = out.item[k];
            assert_false(ccd_csr_contains(fs, u, i));
            int rank_src = 0, rank_ref = 0; /* brute force, O(n) each */
            for (int j = 0; j < I; j++) {
                if (!ccd_csr_contains(fs, u, j) && (s[j] > s[i] || (s[j] == s[i] && j < i)))
                    rank_src++;
                if (r[j] > r[i] || (r[j] == r[i] && j < i))
                    rank_ref++;
            }
            assert_true(rank_src < ab); /* a top-ab eligible item */
            const int diff = rank_ref - rank_src;
            assert_true(diff <= prev_diff);
            prev_diff = diff;
            assert_float_equal(out.label[k], sigmoid(s[i]), 1e-7);
        }
    }
    ccd_replay_free(&out);
    free(users), free(ss), free(rs);
}

/* Random embeddings. Even users' ref rows nearly agree with src (few items beat the worst
 * candidate: the sampler's search path), odd users' are unrelated (its counting path). ref has
 * 30 extra items, the filter some columns past src's items. */
static void replay_rank_ref_matches_brute_force(void **state)
{
    (void)state;
    enum { U = 40, I = 1000, IR = 1030, D = 4, AB = 15, NF = 20 };
    ccd_rng g;
    ccd_rng_init(&g, 11, 0);
    float *su = ccd_floats(U * D), *si = ccd_floats(I * D), *ru = ccd_floats(U * D),
          *ri = ccd_floats(IR * D);
    for (int k = 0; k < U * D; k++) {
        su[k] = ccd_rng_normal(&g);
        ru[k] = (k / D) % 2 ? ccd_rng_normal(&g) : su[k];
    }
    for (int k = 0; k < I * D; k++)
        si[k] = ccd_rng_normal(&g);
    for (int k = 0; k < IR * D; k++)
        ri[k] = k < I * D ? si[k] + 0.05f * ccd_rng_normal(&g) : ccd_rng_normal(&g);
    ccd_scorer src = ccd_scorer_embeddings(su, si, U, I, D);
    ccd_scorer ref = ccd_scorer_embeddings(ru, ri, U, IR, D);
    int fu[U * NF], fi[U * NF];
    for (int k = 0; k < U * NF; k++)
        fu[k] = k / NF, fi[k] = (int)ccd_rng_below(&g, I + 10);
    ccd_csr fs;
    assert_int_equal(ccd_csr_from_pairs(&fs, U, I + 10, fu, fi, U * NF), 0);
    check_against_brute_force(&src, &ref, &fs, AB);
    ccd_csr_free(&fs);
    free(su), free(si), free(ru), free(ri);
}

/* Skewed random levels 0..9: level 9 about 1% of items, 8 about 3%, 7 about 5%, ... so a
 * top-18 list of 600 items ends inside level 8 while level-9 items keep arriving. */
static float skewed_level(ccd_rng *g)
{
    return (float)(9 - (int)sqrt((double)ccd_rng_below(g, 10000)) / 10);
}

/* Many exact ties. d = 3; src items (floor(i / 7), q_i, p_i), ref items (floor(i / 5), q_i, p'_i)
 * with q, p, p' skewed random levels (ref has 20 more items); every product is a small exact
 * integer.
 *   users 0..2: the same factor of the first column in src and ref (+1 and +2: best = high ids,
 *               -1: best = low ids): rows agree in order, the sampler's search path;
 *   user 3:     +1 in src, -1 in ref: the counting path;
 *   user 4:     q in src, p' in ref (unrelated ties everywhere): the counting path;
 *   user 5:     q in both (identical rows, scattered ties): the search path;
 *   user 6:     p in src, q in ref: the counting path.
 * ab = 18 cuts user 1's list inside a group of equal scores (items 14..20), and users 4..6's
 * inside level 8, so the top-ab selection's tie rule shows too. */
static void replay_rank_ref_breaks_ties_by_id(void **state)
{
    (void)state;
    enum { U = 7, I = 600, IR = 620, AB = 18 };
    const float su[U * 3] = {1, 0, 0, -1, 0, 0, 2, 0, 0, 1, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 1};
    const float ru[U * 3] = {1, 0, 0, -1, 0, 0, 2, 0, 0, -1, 0, 0, 0, 0, 1, 0, 1, 0, 0, 1, 0};
    float *si = ccd_floats(I * 3), *ri = ccd_floats(IR * 3);
    ccd_rng g;
    ccd_rng_init(&g, 17, 0);
    for (int i = 0; i < IR; i++) {
        const float q = skewed_level(&g), p = skewed_level(&g), p2 = skewed_level(&g);
        if (i < I) {
            si[3 * i] = (float)(i / 7);
            si[3 * i + 1] = q;
            si[3 * i + 2] = p;
        }
        ri[3 * i] = (float)(i / 5);
        ri[3 * i + 1] = q;
        ri[3 * i + 2] = p2;
    }
    ccd_scorer src = ccd_scorer_embeddings(su, si, U, I, 3);
    ccd_scorer ref = ccd_scorer_embeddings(ru, ri, U, IR, 3);
    int fu[] = {0, 0, 1, 2, 3, 4, 5}, fi[] = {598, 590, 3, 580, 590, 7, 11};
    ccd_csr fs;
    assert_int_equal(ccd_csr_from_pairs(&fs, U, I, fu, fi, 7), 0);
    check_against_brute_force(&src, &ref, &fs, AB);
    ccd_csr_free(&fs);
    free(si), free(ri);
}

/* ---- several chunks ------------------------------------------------------------------------- */

/* 70 users over 2^18 items: ccd_scorer_chunk gives 64 rows, so users 64..69 are a second chunk.
 * d = 1, item score x_i = i; odd users have +1 (best = highest id), even users -1 (best = 0).
 * The filter removes each user's own (u % 3) best items, so every chunk offset shows. */
static void replay_streams_several_chunks(void **state)
{
    (void)state;
    enum { U = 70, I = 1 << 18, AB = 3 };
    float *iemb = ccd_floats(I), uemb[U];
    for (int i = 0; i < I; i++)
        iemb[i] = (float)i;
    for (int u = 0; u < U; u++)
        uemb[u] = u % 2 ? 1.0f : -1.0f;
    ccd_scorer s = ccd_scorer_embeddings(uemb, iemb, U, I, 1);
    assert_int_equal(ccd_scorer_chunk(&s), 64);
    int fu[U * 2], fi[U * 2], nf = 0;
    for (int u = 0; u < U; u++)
        for (int k = 0; k < u % 3; k++) {
            fu[nf] = u;
            fi[nf++] = u % 2 ? I - 1 - k : k;
        }
    ccd_csr fs;
    assert_int_equal(ccd_csr_from_pairs(&fs, U, I, fu, fi, nf), 0);
    ccd_filter f = {.sets = {&fs}, .n_sets = 1};
    ccd_rng rng;
    ccd_rng_init(&rng, 3, 0);
    ccd_replay_set out;
    assert_int_equal(ccd_replay_sample(&s, &f, &s, AB, AB, 1e-4f, &rng, &out), 0);
    assert_int_equal(out.n, U * AB);
    for (int u = 0; u < U; u++)
        for (int t = 0; t < AB; t++) {
            const int64_t k = (int64_t)u * AB + t;
            assert_int_equal(out.user[k], u);
            const int skip = u % 3, i = out.item[k];
            const int rank = u % 2 ? I - 1 - i : i; /* position in the unfiltered order */
            assert_true(rank >= skip && rank < skip + AB);
        }
    ccd_replay_free(&out);
    ccd_csr_free(&fs);
    free(iemb);
}

/* ---- (3) merge ------------------------------------------------------------------------------ */

static void replay_merge_sorts_and_keeps_max(void **state)
{
    (void)state;
    int au[] = {1, 0, 2}, ai[] = {5, 3, 0};
    float al[] = {0.2f, 0.9f, 0.1f};
    int bu[] = {0, 0, 2, 1, 3}, bi[] = {3, 1, 0, 5, 2};
    float bl[] = {0.4f, 0.5f, 0.3f, 0.7f, 0.6f};
    ccd_replay_set into = {0}, other = {.n = 5, .user = bu, .item = bi, .label = bl};
    into.n = 3;
    into.user = malloc(sizeof au), into.item = malloc(sizeof ai), into.label = malloc(sizeof al);
    memcpy(into.user, au, sizeof au), memcpy(into.item, ai, sizeof ai);
    memcpy(into.label, al, sizeof al);
    assert_int_equal(ccd_replay_merge(&into, &other), 0);
    const int eu[] = {0, 0, 1, 2, 3}, ei[] = {1, 3, 5, 0, 2};
    const float el[] = {0.5f, 0.9f, 0.7f, 0.3f, 0.6f};
    assert_int_equal(into.n, 5);
    for (int k = 0; k < 5; k++) {
        assert_int_equal(into.user[k], eu[k]);
        assert_int_equal(into.item[k], ei[k]);
        assert_float_equal(into.label[k], el[k], 0);
    }
    /* merging an empty set, and into an empty set, changes nothing but the storage */
    ccd_replay_set empty = {0};
    assert_int_equal(ccd_replay_merge(&into, &empty), 0);
    assert_int_equal(into.n, 5);
    assert_int_equal(ccd_replay_merge(&empty, &into), 0);
    assert_int_equal(empty.n, 5);
    assert_memory_equal(empty.item, into.item, 5 * sizeof(int));
    assert_memory_equal(empty.label, into.label, 5 * sizeof(float));
    ccd_replay_free(&empty);
    ccd_replay_free(&into);
    assert_null(into.user);
}

/* ---- (4) expand ----------------------------------------------------------------------------- */

/* Old: users 0..3, items 0..2 (d = 2). New: users 4, 5, 6 and item 3. R_k:
 *   u0: i0 i1 i2   u1: i0 i2   u2: i1 i3   u3: i3   u4: i1 i2   u5: i3   u6: (nothing)
 * Old user degrees 3 2 2 1 -> popularity order u0 u1 u2 u3 (u1 before u2 by id).
 * Old item degrees i0 2 (u0 u1), i1 3 (u0 u2 u4), i2 3 (u0 u1 u4) -> order i1 i2 i0.
 * Two-hop candidates: u4 -> {u0 u1 u2} (c = 3; met in the order u0 u2 u1, through i1 then i2),
 * u5 -> {u2 u3} (c = 2), u6 -> {} (c = 0); i3 (users u2 u3 u5) -> {i1} (c = 1).
 * One-hop: u4 mean(i1, i2), u5 and u6 zero (no old items), i3 mean(u2, u3). */
static const float old_emb[7 * 2] = {
    1, 2, 3,  -1, -2, 4, 0.5f, 0.5f, /* users 0..3 */
    2, 0, -1, 1,  4,  4,             /* items 0..2 */
};

static void expand_case(int topk, const float expect[4][2])
{
    int ru[] = {0, 0, 0, 1, 1, 2, 2, 3, 4, 4, 5}, ri[] = {0, 1, 2, 0, 2, 1, 3, 3, 1, 2, 3};
    /* R_k with all 7 rows, and with 6 (u6 has no interactions; rows past the end are empty) */
    for (int n_rows = 7; n_rows >= 6; n_rows--) {
        ccd_csr r;
        assert_int_equal(ccd_csr_from_pairs(&r, n_rows, 4, ru, ri, 11), 0);
        float out[(7 + 4) * 2];
        memset(out, 0xff, sizeof out); /* NaN everywhere: every row must be written */
        assert_int_equal(ccd_expand_init(old_emb, 4, 3, 2, &r, 7, 4, topk, out), 0);
        assert_memory_equal(out, old_emb, 4 * 2 * sizeof(float));                 /* old users */
        assert_memory_equal(out + 7 * 2, old_emb + 4 * 2, 3 * 2 * sizeof(float)); /* old items */
        const int rows[4] = {4, 5, 6, 7 + 3};                                     /* u4 u5 u6 i3 */
        for (int k = 0; k < 4; k++)
            for (int c = 0; c < 2; c++)
                assert_float_equal(out[rows[k] * 2 + c], expect[k][c], 1e-6);
        ccd_csr_free(&r);
    }
}

static void expand_initialises_new_rows_by_hand(void **state)
{
    (void)state;
    /* topk = 2:
     *   u4: c = 3 > 2 -> the 2 most popular candidates u0 u1 (not u2: same degree, higher id):
     *       two = (2, 0.5); one = (1.5, 2.5)
     *   u5: c = 2 = topk -> exactly u2 u3 (the 9.4 fix): two = (-0.75, 2.25); one = 0
     *   u6: c = 0 -> the 2 most popular, u0 u1: two = (2, 0.5); one = 0
     *   i3: c = 1 -> i1 plus the most popular non-candidate i2: two = (1.5, 2.5);
     *       one = mean(u2, u3) = (-0.75, 2.25) */
    const float k2[4][2] = {{1.75f, 1.5f}, {-0.375f, 1.125f}, {1.0f, 0.25f}, {0.375f, 2.375f}};
    expand_case(2, k2);
    /* topk = 1: u4 -> u0; u5 (c = 2 > 1) -> u2 (u2 beats u3 on degree); u6 -> u0;
     * i3 (c = 1 = topk) -> i1 only. */
    const float k1[4][2] = {{1.25f, 2.25f}, {-1.0f, 2.0f}, {0.5f, 1.0f}, {-0.875f, 1.625f}};
    expand_case(1, k1);
    /* topk = 10 > 4 old users, 3 old items: every two-hop is the mean of all old rows,
     * users (0.625, 1.375), items (5/3, 5/3). */
    const float k10[4][2] = {{1.0625f, 1.9375f},
                             {0.3125f, 0.6875f},
                             {0.3125f, 0.6875f},
                             {(-0.75f + 5.0f / 3) / 2, (2.25f + 5.0f / 3) / 2}};
    expand_case(10, k10);
}

static void expand_without_new_entities_is_a_copy(void **state)
{
    (void)state;
    int ru[] = {0, 1, 3}, ri[] = {2, 0, 1};
    ccd_csr r;
    assert_int_equal(ccd_csr_from_pairs(&r, 4, 3, ru, ri, 3), 0);
    float out[7 * 2];
    assert_int_equal(ccd_expand_init(old_emb, 4, 3, 2, &r, 4, 3, 2, out), 0);
    assert_memory_equal(out, old_emb, sizeof out);
    /* growth must not shrink: fewer users than before is an error */
    assert_int_equal(ccd_expand_init(old_emb, 4, 3, 2, &r, 3, 3, 2, out), -1);
    ccd_csr_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(replay_draws_top_eligible_with_sigmoid_labels),
        cmocka_unit_test(replay_candidates_break_ties_by_id),
        cmocka_unit_test(replay_follows_rank_difference_distribution),
        cmocka_unit_test(replay_rank_ref_matches_brute_force),
        cmocka_unit_test(replay_rank_ref_breaks_ties_by_id),
        cmocka_unit_test(replay_streams_several_chunks),
        cmocka_unit_test(replay_merge_sorts_and_keeps_max),
        cmocka_unit_test(expand_initialises_new_rows_by_hand),
        cmocka_unit_test(expand_without_new_entities_is_a_copy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
