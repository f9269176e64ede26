/* rank: top-k items per user and top-k users per item against brute-force sorts (ties forced by
 * integer embeddings, filters with short sets, -1 padding, more users than one chunk), row ranks
 * against an O(n^2) count, and the teacher ensemble against a direct computation, by hand, and
 * through ccd_evaluate_scorer. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dense.h"
#include "eval.h"
#include "rank.h"
#include "rng.h"

/* a before b under (score desc, id asc) */
static int before(float sa, int a, float sb, int b)
{
    return sa > sb || (sa == sb && a < b);
}

/* Sort ids[0..n) by (score desc, id asc), score of id j being sc[j * stride]: insertion sort,
 * fine for test sizes. */
static void brute_sort(int *ids, int n, const float *sc, size_t stride)
{
    for (int p = 1; p < n; p++) {
        int x = ids[p], q = p;
        const float sx = sc[(size_t)x * stride];
        while (q > 0 && before(sx, x, sc[(size_t)ids[q - 1] * stride], ids[q - 1])) {
            ids[q] = ids[q - 1];
            q--;
        }
        ids[q] = x;
    }
}

/* Integer embeddings in [-2, 2]: dot products are small exact integers, so scores tie often and
 * do not depend on the summation order of SGEMM. */
static float *int_emb(ccd_rng *r, int n, int d)
{
    float *e = ccd_floats((size_t)n * d);
    assert_non_null(e);
    for (size_t k = 0; k < (size_t)n * d; k++)
        e[k] = (float)((int)ccd_rng_below(r, 5) - 2);
    return e;
}

static float *gauss_emb(ccd_rng *r, int n, int d, float scale)
{
    float *e = ccd_floats((size_t)n * d);
    assert_non_null(e);
    for (size_t k = 0; k < (size_t)n * d; k++)
        e[k] = scale * ccd_rng_normal(r);
    return e;
}

/* The full score matrix of a (small) scorer: (n_users x n_items). */
static float *all_rows(const ccd_scorer *s)
{
    int *users = malloc((size_t)s->n_users * sizeof *users);
    float *m = ccd_floats((size_t)s->n_users * s->n_items);
    assert_non_null(users);
    assert_non_null(m);
    for (int u = 0; u < s->n_users; u++)
        users[u] = u;
    assert_int_equal(s->rows(s, users, s->n_users, m), 0);
    free(users);
    return m;
}

/* The shared fixture: NU users (more than one chunk of 2048) x NI items, d = 4, and a filter of
 * two sets: A over all users (random pairs, plus user 7 losing all but 20 items, item 5 losing all
 * but 30 users and item 6 losing every user), B over the first 1000 users only. */
enum { NU = 2100, NI = 300, D = 4, K = 40 };

typedef struct {
    float *ue, *ie, *full; /* (NU x D), (NI x D), (NU x NI) */
    ccd_scorer s;
    ccd_csr a, b;
    ccd_filter f;
    unsigned char *ban; /* (NU x NI) the filter as a dense mask */
} fixture;

static void fixture_make(fixture *x)
{
    ccd_rng r;
    ccd_rng_init(&r, 42, 1);
    x->ue = int_emb(&r, NU, D);
    x->ie = int_emb(&r, NI, D);
    x->s = ccd_scorer_embeddings(x->ue, x->ie, NU, NI, D);
    x->full = all_rows(&x->s);
    enum { MAXP = NU * 20 + NI + NU * 2 };
    int *pu = malloc(MAXP * sizeof *pu), *pi = malloc(MAXP * sizeof *pi);
    assert_non_null(pu);
    assert_non_null(pi);
    int n = 0;
    for (int u = 0; u < NU; u++)
        for (int t = 0; t < 8; t++)
            pu[n] = u, pi[n++] = (int)ccd_rng_below(&r, NI);
    for (int i = 20; i < NI; i++)
        pu[n] = 7, pi[n++] = i;
    for (int u = 30; u < NU; u++)
        pu[n] = u, pi[n++] = 5;
    for (int u = 0; u < NU; u++)
        pu[n] = u, pi[n++] = 6;
    assert_int_equal(ccd_csr_from_pairs(&x->a, NU, NI, pu, pi, n), 0);
    n = 0;
    for (int u = 0; u < 1000; u++)
        for (int t = 0; t < 10; t++)
            pu[n] = u, pi[n++] = (int)ccd_rng_below(&r, NI);
    assert_int_equal(ccd_csr_from_pairs(&x->b, 1000, NI, pu, pi, n), 0);
    free(pu);
    free(pi);
    x->f = (ccd_filter){.sets = {&x->a, &x->b}, .n_sets = 2};
    x->ban = calloc((size_t)NU * NI, 1);
    assert_non_null(x->ban);
    for (int u = 0; u < NU; u++)
        for (int i = 0; i < NI; i++)
            x->ban[(size_t)u * NI + i] =
                ccd_csr_contains(&x->a, u, i) || ccd_csr_contains(&x->b, u, i);
}

static void fixture_free(fixture *x)
{
    free(x->ue);
    free(x->ie);
    free(x->full);
    free(x->ban);
    ccd_csr_free(&x->a);
    ccd_csr_free(&x->b);
}

static void topk_items_matches_brute_force(void **state)
{
    (void)state;
    fixture x;
    fixture_make(&x);
    int *out = malloc((size_t)NU * K * sizeof *out), ids[NI];
    assert_non_null(out);
    for (int use_filter = 0; use_filter < 2; use_filter++) {
        assert_int_equal(ccd_topk_items(&x.s, use_filter ? &x.f : NULL, K, out), 0);
        for (int u = 0; u < NU; u++) {
            int m = 0;
            for (int i = 0; i < NI; i++)
                if (!use_filter || !x.ban[(size_t)u * NI + i])
                    ids[m++] = i;
            brute_sort(ids, m, x.full + (size_t)u * NI, 1);
            for (int p = 0; p < K; p++)
                assert_int_equal(out[(size_t)u * K + p], p < m ? ids[p] : -1);
        }
    }
    /* user 7 keeps items 0..19 less the random ones: fewer than K, so padded */
    assert_int_equal(out[7 * K + K - 1], -1);
    /* k larger than the number of items: every row padded after NI entries */
    int *big = malloc((size_t)NU * (NI + 5) * sizeof *big);
    assert_non_null(big);
    assert_int_equal(ccd_topk_items(&x.s, NULL, NI + 5, big), 0);
    for (int u = 0; u < NU; u += 97) {
        for (int i = 0; i < NI; i++)
            ids[i] = i;
        brute_sort(ids, NI, x.full + (size_t)u * NI, 1);
        for (int p = 0; p < NI + 5; p++)
            assert_int_equal(big[(size_t)u * (NI + 5) + p], p < NI ? ids[p] : -1);
    }
    free(big);
    free(out);
    fixture_free(&x);
}

/* Both top lists from one stream (ccd_topk_items_users), and fed by an evaluation pass
 * (ccd_evaluate_scorer_tee with ccd_topk_stream_feed), equal the separate calls. */
static void topk_both_from_one_pass(void **state)
{
    (void)state;
    fixture x;
    fixture_make(&x);
    size_t ni = (size_t)NU * K, nu = (size_t)NI * K;
    int *items = malloc(ni * sizeof *items), *users = malloc(nu * sizeof *users);
    int *items2 = malloc(ni * sizeof *items2), *users2 = malloc(nu * sizeof *users2);
    assert_non_null(items), assert_non_null(users), assert_non_null(items2),
        assert_non_null(users2);
    assert_int_equal(ccd_topk_items(&x.s, &x.f, K, items), 0);
    assert_int_equal(ccd_topk_users(&x.s, &x.f, K, users), 0);
    assert_int_equal(ccd_topk_items_users(&x.s, &x.f, K, items2, K, users2), 0);
    assert_memory_equal(items, items2, ni * sizeof *items);
    assert_memory_equal(users, users2, nu * sizeof *users);
    memset(items2, 0xff, ni * sizeof *items2);
    memset(users2, 0xff, nu * sizeof *users2);
    ccd_topk_stream *t = ccd_topk_stream_new(NI, &x.f, K, items2, K, users2);
    assert_non_null(t);
    assert_int_equal(ccd_evaluate_scorer_tee(&x.s, NULL, 0, NULL, ccd_topk_stream_feed, t), 0);
    ccd_topk_stream_finish(t);
    assert_memory_equal(items, items2, ni * sizeof *items);
    assert_memory_equal(users, users2, nu * sizeof *users);
    free(items), free(users), free(items2), free(users2);
    fixture_free(&x);
}

static void topk_users_matches_brute_force(void **state)
{
    (void)state;
    fixture x;
    fixture_make(&x);
    int *out = malloc((size_t)NI * K * sizeof *out), *ids = malloc(NU * sizeof *ids);
    assert_non_null(out);
    assert_non_null(ids);
    for (int use_filter = 0; use_filter < 2; use_filter++) {
        assert_int_equal(ccd_topk_users(&x.s, use_filter ? &x.f : NULL, K, out), 0);
        for (int i = 0; i < NI; i++) {
            int m = 0;
            for (int u = 0; u < NU; u++)
                if (!use_filter || !x.ban[(size_t)u * NI + i])
                    ids[m++] = u;
            brute_sort(ids, m, x.full + i, NI);
            for (int p = 0; p < K; p++)
                assert_int_equal(out[(size_t)i * K + p], p < m ? ids[p] : -1);
        }
    }
    /* item 5 has at most 30 eligible users, item 6 none */
    assert_int_equal(out[5 * K + 30], -1);
    assert_true(out[5 * K] >= 0 && out[5 * K] < 30);
    for (int p = 0; p < K; p++)
        assert_int_equal(out[6 * K + p], -1);
    free(ids);
    free(out);
    fixture_free(&x);
}

static void check_ranks(const float *row, int n)
{
    int *rank = malloc((size_t)(n + 1) * sizeof *rank);
    int *idx = malloc((size_t)(n + 1) * sizeof *idx);
    uint64_t *sorted = malloc((size_t)(n + 1) * sizeof *sorted);
    uint64_t *scratch = malloc((size_t)(n + 1) * sizeof *scratch);
    assert_non_null(rank);
    assert_non_null(idx);
    assert_non_null(sorted);
    assert_non_null(scratch);
    ccd_row_sort(row, n, sorted, scratch);
    for (int p = 0; p < n; p++) {
        idx[p] = (int)(uint32_t)sorted[p];
        rank[idx[p]] = p;
    }
    /* The fused ensemble step weighs every item by its rank, setting then adding. */
    float *w = malloc((size_t)(n + 1) * sizeof *w), *out = malloc((size_t)(n + 1) * sizeof *out);
    uint64_t *two = malloc((size_t)(2 * n + 1) * sizeof *two);
    assert_true(w && out && two);
    for (int p = 0; p < n; p++)
        w[p] = (float)p * 0.5f + 1.0f; /* exact in float for these n */
    ccd_row_rank_weights(row, n, w, out, false, two);
    for (int i = 0; i < n; i++)
        assert_true(out[i] == w[rank[i]]);
    ccd_row_rank_weights(row, n, w, out, true, two);
    for (int i = 0; i < n; i++)
        assert_true(out[i] == 2.0f * w[rank[i]]);
    free(w), free(out), free(two);
    free(sorted);
    free(scratch);
    for (int i = 0; i < n; i++) {
        int r = 0; /* items strictly before i */
        for (int j = 0; j < n; j++)
            r += before(row[j], j, row[i], i);
        assert_int_equal(rank[i], r);
        assert_int_equal(idx[r], i);
    }
    free(rank);
    free(idx);
}

static void row_ranks_match_brute_force(void **state)
{
    (void)state;
    enum { N = 3000 };
    float *row = malloc(N * sizeof *row);
    assert_non_null(row);
    ccd_rng r;
    ccd_rng_init(&r, 7, 0);
    /* many ties among small integers of both signs, with +0 and -0 (which tie) */
    for (int i = 0; i < N; i++)
        row[i] = (float)((int)ccd_rng_below(&r, 41) - 20);
    row[3] = -0.0f;
    row[4] = 0.0f;
    row[5] = -0.0f;
    check_ranks(row, N);
    check_ranks(row, N - 1); /* odd n: the scatter's middle element */
    check_ranks(row, 5);
    /* wide magnitudes: normals at several scales, infinities, denormals, exact duplicates */
    for (int i = 0; i < N; i++)
        row[i] = ccd_rng_normal(&r) * powf(10.0f, (float)((int)ccd_rng_below(&r, 61) - 30));
    row[10] = INFINITY;
    row[11] = -INFINITY;
    row[12] = 1e-40f;
    row[13] = -1e-40f;
    row[14] = row[15] = row[16];
    check_ranks(row, N);
    /* all equal (every radix pass skipped): ranks are the ids */
    for (int i = 0; i < N; i++)
        row[i] = 0.25f;
    check_ranks(row, N);
    /* keys differing only in one digit, so some passes are skipped and others not */
    for (int i = 0; i < N; i++)
        row[i] = 1.0f + (float)ccd_rng_below(&r, 8) * 0x1p-23f;
    check_ranks(row, N);
    for (int i = 0; i < N; i++)
        row[i] = (float)(1 << ccd_rng_below(&r, 30));
    check_ranks(row, N);
    /* non-negative small integers: the low digit is constant, two passes run (the sorted order
     * ends in rank's buffer and must be moved back to idx) */
    for (int i = 0; i < N; i++)
        row[i] = (float)ccd_rng_below(&r, 5000);
    check_ranks(row, N);
    /* tiny rows */
    float one[1] = {3.0f}, two[2] = {1.0f, 2.0f};
    check_ranks(one, 1);
    check_ranks(two, 2);
    check_ranks(row, 0);
    free(row);
}

/* E(u, i) computed directly in double: teachers' full matrices, ranks over the first ni items. */
static double *brute_ensemble(const ccd_scorer *t, int m, int nu, int ni)
{
    double *e = calloc((size_t)nu * ni, sizeof *e);
    int *ids = malloc((size_t)ni * sizeof *ids);
    assert_non_null(e);
    assert_non_null(ids);
    for (int q = 0; q < m; q++) {
        float *full = all_rows(&t[q]);
        for (int u = 0; u < nu; u++) {
            const float *row = full + (size_t)u * t[q].n_items;
            for (int i = 0; i < ni; i++)
                ids[i] = i;
            brute_sort(ids, ni, row, 1);
            for (int r = 0; r < ni; r++)
                e[(size_t)u * ni + ids[r]] += pow(r + 1.0, -0.05) / m;
        }
        free(full);
    }
    free(ids);
    return e;
}

static void ensemble_matches_brute_force(void **state)
{
    (void)state;
    enum { EU = 150, EI = 500, ED = 8, EXTRA = 40 };
    ccd_rng r;
    ccd_rng_init(&r, 3, 0);
    /* teacher 0: exact shape; teacher 1: integer embeddings (ties); teacher 2: more users and
     * EXTRA more items, which score highest of all so they would shift every rank if counted */
    float *u0 = gauss_emb(&r, EU, ED, 1.0f), *i0 = gauss_emb(&r, EI, ED, 1.0f);
    float *u1 = int_emb(&r, EU, ED), *i1 = int_emb(&r, EI, ED);
    float *u2 = gauss_emb(&r, EU + 10, ED, 1.0f), *i2 = gauss_emb(&r, EI + EXTRA, ED, 1.0f);
    for (int u = 0; u < EU + 10; u++)
        u2[(size_t)u * ED] = 1.0f;
    for (int i = EI; i < EI + EXTRA; i++)
        i2[(size_t)i * ED] = 1000.0f;
    ccd_scorer t[3] = {ccd_scorer_embeddings(u0, i0, EU, EI, ED),
                       ccd_scorer_embeddings(u1, i1, EU, EI, ED),
                       ccd_scorer_embeddings(u2, i2, EU + 10, EI + EXTRA, ED)};
    ccd_ensemble e = {.teachers = t, .n_teachers = 3, .n_users = EU, .n_items = EI};
    ccd_scorer s = ccd_scorer_ensemble(&e);
    assert_int_equal(s.n_users, EU);
    assert_int_equal(s.n_items, EI);
    assert_ptr_equal(s.ctx, &e);
    double *want = brute_ensemble(t, 3, EU, EI);
    float *got = all_rows(&s);
    for (size_t k = 0; k < (size_t)EU * EI; k++)
        assert_float_equal(got[k], want[k], 1e-6);
    /* any list of users, in any order, gives the same rows */
    int users[3] = {EU - 1, 0, 77};
    float *part = ccd_floats(3 * (size_t)EI);
    assert_non_null(part);
    assert_int_equal(s.rows(&s, users, 3, part), 0);
    for (int q = 0; q < 3; q++)
        assert_memory_equal(part + (size_t)q * EI, got + (size_t)users[q] * EI, EI * sizeof(float));
    /* one teacher: each row's best item has exactly 1, its second 2^-0.05 */
    ccd_ensemble e1 = {.teachers = t, .n_teachers = 1, .n_users = EU, .n_items = EI};
    ccd_scorer s1 = ccd_scorer_ensemble(&e1);
    float *one = all_rows(&s1), *sc = all_rows(&t[0]);
    int ids[EI];
    for (int u = 0; u < EU; u++) {
        for (int i = 0; i < EI; i++)
            ids[i] = i;
        brute_sort(ids, EI, sc + (size_t)u * EI, 1);
        assert_true(one[(size_t)u * EI + ids[0]] == 1.0f);
        assert_true(one[(size_t)u * EI + ids[1]] == (float)pow(2.0, -0.05));
        assert_true(one[(size_t)u * EI + ids[EI - 1]] == (float)pow((double)EI, -0.05));
    }
    /* a teacher smaller than the ensemble is an error */
    ccd_ensemble bad = {.teachers = t, .n_teachers = 3, .n_users = EU + 5, .n_items = EI};
    ccd_scorer sb = ccd_scorer_ensemble(&bad);
    assert_int_equal(sb.rows(&sb, users, 3, part), -1);
    free(one);
    free(sc);
    free(part);
    free(got);
    free(want);
    free(u0), free(i0), free(u1), free(i1), free(u2), free(i2);
}

static void ensemble_by_hand(void **state)
{
    (void)state;
    /* one user, three items. Teacher a scores (3, 1, 2): ranks (0, 2, 1). Teacher b scores
     * (1, 2, 3): ranks (2, 1, 0). */
    float user[1] = {1.0f}, ia[3] = {3, 1, 2}, ib[3] = {1, 2, 3};
    ccd_scorer t[2] = {ccd_scorer_embeddings(user, ia, 1, 3, 1),
                       ccd_scorer_embeddings(user, ib, 1, 3, 1)};
    ccd_ensemble e = {.teachers = t, .n_teachers = 2, .n_users = 1, .n_items = 3};
    ccd_scorer s = ccd_scorer_ensemble(&e);
    float out[3];
    int u0 = 0;
    assert_int_equal(s.rows(&s, &u0, 1, out), 0);
    const double w1 = pow(2.0, -0.05), w2 = pow(3.0, -0.05);
    assert_float_equal(out[0], (1.0 + w2) / 2, 1e-7);
    assert_float_equal(out[1], (w2 + w1) / 2, 1e-7);
    assert_float_equal(out[2], (w1 + 1.0) / 2, 1e-7);
    /* ensemble of two over only the first two items: b's ranks there are (1, 0) */
    e.n_items = 2;
    s = ccd_scorer_ensemble(&e);
    assert_int_equal(s.rows(&s, &u0, 1, out), 0);
    assert_float_equal(out[0], (1.0 + w1) / 2, 1e-7);
    assert_float_equal(out[1], (w1 + 1.0) / 2, 1e-7);
}

static void make_block(ccd_block *b, int nu, int ni, ccd_rng *r)
{
    memset(b, 0, sizeof *b);
    b->n_users = nu;
    b->n_items = ni;
    int n = nu * 6, *pu = malloc((size_t)n * sizeof *pu), *pi = malloc((size_t)n * sizeof *pi);
    assert_non_null(pu);
    assert_non_null(pi);
    ccd_csr *sets[3] = {&b->train, &b->valid, &b->test};
    for (int q = 0; q < 3; q++) {
        for (int k = 0; k < n; k++)
            pu[k] = k % nu, pi[k] = (int)ccd_rng_below(r, (uint32_t)ni);
        assert_int_equal(ccd_csr_from_pairs(sets[q], nu, ni, pu, pi, q == 0 ? n : n / 3), 0);
    }
    free(pu);
    free(pi);
    b->users = malloc((size_t)nu * sizeof *b->users);
    assert_non_null(b->users);
    for (int u = 0; u < nu; u++)
        b->users[u] = u;
    b->n_active_users = nu;
}

/* Three teachers of gaussian (n_users x d) and (n_items x d) tables, into t (the tables into ue,
 * ie, freed by the caller). */
static void gauss_teachers(ccd_rng *r, int n_users, int n_items, int d, float *ue[3], float *ie[3],
                           ccd_scorer t[3])
{
    for (int q = 0; q < 3; q++) {
        ue[q] = gauss_emb(r, n_users, d, 1.0f);
        ie[q] = gauss_emb(r, n_items, d, 1.0f);
        t[q] = ccd_scorer_embeddings(ue[q], ie[q], n_users, n_items, d);
    }
}

static void ensemble_evaluates(void **state)
{
    (void)state;
    enum { EU = 120, EI = 400, ED = 8 };
    ccd_rng r;
    ccd_rng_init(&r, 5, 0);
    float *ue[3], *ie[3];
    ccd_scorer t[3];
    gauss_teachers(&r, EU, EI, ED, ue, ie, t);
    ccd_block b;
    make_block(&b, EU, EI, &r);
    /* one teacher: the ensemble ranks exactly as the teacher, so the metrics are identical */
    ccd_ensemble e1 = {.teachers = t, .n_teachers = 1, .n_users = EU, .n_items = EI};
    ccd_scorer s1 = ccd_scorer_ensemble(&e1);
    ccd_block_metrics me, mt;
    assert_int_equal(ccd_evaluate_scorer(&s1, &b, 1, &me), 0);
    assert_int_equal(ccd_evaluate_scorer(&t[0], &b, 1, &mt), 0);
    assert_true(me.test.n_users > 0);
    assert_int_equal(me.test.n_users, mt.test.n_users);
    for (int q = 0; q < CCD_NK; q++) {
        assert_float_equal(me.test.recall[q], mt.test.recall[q], 0);
        assert_float_equal(me.test.ndcg[q], mt.test.ndcg[q], 0);
        assert_float_equal(me.valid.ndcg[q], mt.valid.ndcg[q], 0);
    }
    ccd_ensemble e3 = {.teachers = t, .n_teachers = 3, .n_users = EU, .n_items = EI};
    ccd_scorer s3 = ccd_scorer_ensemble(&e3);
    assert_int_equal(ccd_evaluate_scorer(&s3, &b, 1, &me), 0);
    assert_int_equal(me.test.n_users, mt.test.n_users);
    assert_true(me.test.recall[CCD_K50] >= 0.0 && me.test.recall[CCD_K50] <= 1.0);
    ccd_csr_free(&b.train);
    ccd_csr_free(&b.valid);
    ccd_csr_free(&b.test);
    free(b.users);
    for (int q = 0; q < 3; q++)
        free(ue[q]), free(ie[q]);
}

static void ensemble_scratch_reused(void **state)
{
    (void)state;
    enum { EU = 90, EI = 300, ED = 8 };
    ccd_rng r;
    ccd_rng_init(&r, 11, 0);
    float *ue[3], *ie[3];
    ccd_scorer t[3];
    gauss_teachers(&r, EU, EI, ED, ue, ie, t);
    ccd_ensemble plain = {.teachers = t, .n_teachers = 3, .n_users = EU, .n_items = EI};
    ccd_scorer sp = ccd_scorer_ensemble(&plain);
    float *want3 = all_rows(&sp);
    plain.n_teachers = 2;
    float *want2 = all_rows(&sp);
    ccd_ensemble e = plain;
    e.n_teachers = 3;
    e.scratch = ccd_ensemble_scratch_new();
    assert_non_null(e.scratch);
    ccd_scorer s = ccd_scorer_ensemble(&e);
    /* a small call first, so the next one must grow the buffers */
    int users[EU];
    for (int u = 0; u < EU; u++)
        users[u] = EU - 1 - u;
    float *got = ccd_floats((size_t)EU * EI);
    assert_non_null(got);
    assert_int_equal(s.rows(&s, users, 2, got), 0);
    for (int q = 0; q < 2; q++)
        assert_memory_equal(got + (size_t)q * EI, want3 + (size_t)users[q] * EI,
                            EI * sizeof(float));
    float *all = all_rows(&s);
    assert_memory_equal(all, want3, (size_t)EU * EI * sizeof(float));
    free(all);
    /* another teacher count: the weight table follows it */
    e.n_teachers = 2;
    all = all_rows(&s);
    assert_memory_equal(all, want2, (size_t)EU * EI * sizeof(float));
    free(all);
    /* callers on two threads at once: one takes the scratch, the other allocates its own, and
     * both get the same rows as alone (each thread scores its own half, in several calls) */
    e.n_teachers = 3;
    int fails = 0;
#pragma omp parallel for num_threads(2) schedule(static, 1) reduction(+ : fails)
    for (int part = 0; part < 2; part++)
        for (int u0 = part * (EU / 2); u0 < (part + 1) * (EU / 2); u0 += 5)
            for (int rep = 0; rep < 3; rep++)
                fails += s.rows(&s, users + u0, 5, got + (size_t)u0 * EI) != 0;
    assert_int_equal(fails, 0);
    for (int q = 0; q < EU; q++)
        assert_memory_equal(got + (size_t)q * EI, want3 + (size_t)users[q] * EI,
                            EI * sizeof(float));
    ccd_ensemble_scratch_free(e.scratch);
    ccd_ensemble_scratch_free(NULL);
    free(got);
    free(want3);
    free(want2);
    for (int q = 0; q < 3; q++)
        free(ue[q]), free(ie[q]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(topk_items_matches_brute_force),
        cmocka_unit_test(topk_users_matches_brute_force),
        cmocka_unit_test(row_ranks_match_brute_force),
        cmocka_unit_test(topk_both_from_one_pass),
        cmocka_unit_test(ensemble_matches_brute_force),
        cmocka_unit_test(ensemble_by_hand),
        cmocka_unit_test(ensemble_evaluates),
        cmocka_unit_test(ensemble_scratch_reused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
