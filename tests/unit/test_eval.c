/* Evaluation against hand-computed cases: Recall@K / NDCG@K of ranked lists with masks, users
 * with fewer than K relevant items, the top-1000 truncation, per-block masks, and top-k
 * selection. */
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
#include "kbest.h"
#include "rng.h"

static double g(int pos)
{
    return 1.0 / log2(pos + 1.0);
} /* gain at 1-based rank */

static void metrics_of_list_by_hand(void **state)
{
    (void)state;
    /* ranked 5 3 9 1 4 ..., item 3 is masked, ground truth {1, 7, 9}:
     * survivors 5 9 1 4 ... -> hits at survivor ranks 2 and 3 */
    int ranked[] = {5, 3, 9, 1, 4, 8, 6};
    int mask[] = {3}, gt[] = {1, 7, 9};
    double rec[CCD_NK], nd[CCD_NK];
    ccd_metrics_of_list(ranked, 7, mask, 1, NULL, 0, gt, 3, rec, nd);
    assert_float_equal(rec[CCD_K20], 2.0 / 3.0, 1e-12);
    assert_float_equal(rec[CCD_K50], 2.0 / 3.0, 1e-12);
    assert_float_equal(nd[CCD_K20], (g(2) + g(3)) / (g(1) + g(2) + g(3)), 1e-12);
    /* fewer relevant items than K: the ideal DCG stops at |G| */
    int gt1[] = {5};
    ccd_metrics_of_list(ranked, 7, mask, 1, NULL, 0, gt1, 1, rec, nd);
    assert_float_equal(rec[CCD_K20], 1.0, 1e-12);
    assert_float_equal(nd[CCD_K20], 1.0, 1e-12);
    /* a masked ground-truth item can never be hit */
    int gt3[] = {3};
    ccd_metrics_of_list(ranked, 7, mask, 1, NULL, 0, gt3, 1, rec, nd);
    assert_float_equal(rec[CCD_K20], 0.0, 0);
    assert_float_equal(nd[CCD_K50], 0.0, 0);
}

static void hit_between_20_and_50_counts_only_at_50(void **state)
{
    (void)state;
    int ranked[60];
    for (int k = 0; k < 60; k++)
        ranked[k] = 100 + k;
    int gt[] = {100 + 30}; /* survivor rank 31 */
    double rec[CCD_NK], nd[CCD_NK];
    ccd_metrics_of_list(ranked, 60, NULL, 0, NULL, 0, gt, 1, rec, nd);
    assert_float_equal(rec[CCD_K20], 0.0, 0);
    assert_float_equal(rec[CCD_K50], 1.0, 0);
    assert_float_equal(nd[CCD_K50], g(31) / g(1), 1e-12);
}

static void kbest_sorted_orders_by_score_then_id(void **state)
{
    (void)state;
    enum { N = 2000, K = 100 };
    float s[N], hs[K];
    int top[K];
    ccd_rng r;
    ccd_rng_init(&r, 9, 0);
    for (int k = 0; k < N; k++)
        s[k] = (float)ccd_rng_below(&r, 300); /* many ties */
    assert_int_equal(ccd_kbest_sorted(s, N, NULL, K, hs, top), K);
    /* the K-th best under (score desc, id asc) bounds every item left out */
    for (int k = 1; k < K; k++)
        assert_true(ccd_ranks_before(s[top[k - 1]], top[k - 1], s[top[k]], top[k]));
    unsigned char in_top[N] = {0};
    for (int k = 0; k < K; k++)
        in_top[top[k]] = 1;
    for (int i = 0; i < N; i++)
        if (!in_top[i])
            assert_true(ccd_ranks_before(s[top[K - 1]], top[K - 1], s[i], i));
}

/* The reference: every eligible id sorted by (score desc, id asc), by insertion. */
static int reference_top(const float *s, int n, const unsigned char *mask, int k, int *out)
{
    int m = 0, sorted[700];
    for (int i = 0; i < n; i++) {
        if ((mask && mask[i]) || s[i] != s[i])
            continue;
        int p = m++;
        while (p > 0 && ccd_ranks_before(s[i], i, s[sorted[p - 1]], sorted[p - 1])) {
            sorted[p] = sorted[p - 1];
            p--;
        }
        sorted[p] = i;
    }
    for (int q = 0; q < k; q++)
        out[q] = q < m ? sorted[q] : -1;
    return m < k ? m : k;
}

/* One pass with a bounded heap gives exactly a full sort's first k, ties included, for short
 * and long rows, k from 1 to n, with masked and NaN entries left out (and -1 padding when
 * fewer than k are eligible). */
static void kbest_sorted_matches_a_full_sort(void **state)
{
    (void)state;
    enum { N = 700 };
    float s[N], hs[N];
    int a[N], b[N];
    unsigned char mask[N];
    ccd_rng r;
    ccd_rng_init(&r, 11, 0);
    const int lengths[] = {1, 15, 16, 17, 100, 333, N};
    for (size_t t = 0; t < sizeof lengths / sizeof *lengths; t++) {
        const int n = lengths[t];
        for (int trial = 0; trial < 4; trial++) {
            for (int k = 0; k < n; k++) { /* 0: many ties; 1: rising; 2: spread; 3: masks, NaN */
                s[k] = trial == 0   ? (float)ccd_rng_below(&r, 40)
                       : trial == 1 ? (float)k
                                    : ccd_rng_normal(&r);
                mask[k] = trial == 3 && ccd_rng_below(&r, 4) == 0;
                if (trial == 3 && ccd_rng_below(&r, 8) == 0)
                    s[k] = NAN;
            }
            const int ks[] = {1, 7, n / 2 > 0 ? n / 2 : 1, n};
            for (int q = 0; q < 4; q++) {
                int k = ks[q] < n ? ks[q] : n;
                const unsigned char *m = trial == 3 ? mask : NULL;
                int want = reference_top(s, n, m, k, a);
                assert_int_equal(ccd_kbest_sorted(s, n, m, k, hs, b), want);
                assert_memory_equal(a, b, (size_t)k * sizeof *a);
            }
        }
    }
}

/* A block built by hand: 3 users, n_items items, scores s(u,i) = user_vec . item_vec with d=1
 * item vectors = -i (so item 0 ranks first for a positive user vector). */
typedef struct {
    ccd_block b;
} hand_block;

static void make_block(ccd_block *b, int nu, int ni, int *tr_u, int *tr_i, int ntr, int *va_u,
                       int *va_i, int nva, int *te_u, int *te_i, int nte)
{
    memset(b, 0, sizeof *b);
    b->n_users = nu;
    b->n_items = ni;
    assert_int_equal(ccd_csr_from_pairs(&b->train, nu, ni, tr_u, tr_i, ntr), 0);
    assert_int_equal(ccd_csr_from_pairs(&b->valid, nu, ni, va_u, va_i, nva), 0);
    assert_int_equal(ccd_csr_from_pairs(&b->test, nu, ni, te_u, te_i, nte), 0);
    b->users = malloc((size_t)nu * sizeof *b->users);
    for (int u = 0; u < nu; u++)
        b->users[u] = u;
    b->n_active_users = nu;
}

static void free_block(ccd_block *b)
{
    ccd_csr_free(&b->train);
    ccd_csr_free(&b->valid);
    ccd_csr_free(&b->test);
    free(b->users);
}

static void evaluate_masks_by_mode_and_truncates_at_1000(void **state)
{
    (void)state;
    enum { NI = 1200 };
    /* user 0: train {0}, valid {1}, test {2}. Valid mode masks train and test, so item 1 is at
     * survivor rank 1; test mode masks train and valid, so item 2 is at survivor rank 1.
     * user 1: train = items 0..959 (masked), test {1000}: item 1000 is the 1001st overall, so the
     * top-1000 truncation drops it although it would be survivor 41; valid {999} is survivor 40.
     * user 2 has test items but is not active in the block: not evaluated. */
    int tr_u[962], tr_i[962], ntr = 0;
    tr_u[ntr] = 0, tr_i[ntr++] = 0;
    for (int i = 0; i < 960; i++)
        tr_u[ntr] = 1, tr_i[ntr++] = i;
    int va_u[] = {0, 1, 2}, va_i[] = {1, 999, 5};
    int te_u[] = {0, 1, 2}, te_i[] = {2, 1000, 5};
    ccd_block b;
    make_block(&b, 3, NI, tr_u, tr_i, ntr, va_u, va_i, 3, te_u, te_i, 3);
    b.n_active_users = 2; /* users 0 and 1 only */
    float user[3] = {1, 1, 1}, item[NI];
    for (int i = 0; i < NI; i++)
        item[i] = (float)-i;
    ccd_block_metrics m;
    assert_int_equal(ccd_evaluate(user, item, 3, NI, 1, &b, 1, &m), 0);
    assert_int_equal(m.valid.n_users, 2);
    assert_int_equal(m.test.n_users, 2);
    /* valid: user 0 R@20 = 1, N = 1; user 1 hit at survivor 40 -> R@20 0, R@50 1, N@50 g(40) */
    assert_float_equal(m.valid.recall[CCD_K20], 0.5, 1e-12);
    assert_float_equal(m.valid.recall[CCD_K50], 1.0, 1e-12);
    assert_float_equal(m.valid.ndcg[CCD_K50], (1.0 + g(40)) / 2.0, 1e-12);
    /* test: user 0 hit at 1, user 1 truncated away */
    assert_float_equal(m.test.recall[CCD_K20], 0.5, 1e-12);
    assert_float_equal(m.test.recall[CCD_K50], 0.5, 1e-12);
    assert_float_equal(m.test.ndcg[CCD_K20], 0.5, 1e-12);
    /* a model with fewer users than the block skips the rest */
    assert_int_equal(ccd_evaluate(user, item, 1, NI, 1, &b, 1, &m), 0);
    assert_int_equal(m.test.n_users, 1);
    assert_float_equal(m.test.recall[CCD_K20], 1.0, 1e-12);
    free_block(&b);
}

static void evaluate_uses_each_blocks_own_masks(void **state)
{
    (void)state;
    /* Two blocks over the same 1 user x 30 items, scores descending by id. Block 0 trains on
     * items 0..4 and tests item 5; block 1 trains on nothing and tests item 5: item 5 is at
     * survivor rank 1 in block 0 and rank 6 in block 1 (block 0's train items are not masked). */
    int tr_u[5] = {0, 0, 0, 0, 0}, tr_i[5] = {0, 1, 2, 3, 4};
    int v_u[] = {0}, v_i[] = {29}, t_u[] = {0}, t_i[] = {5};
    ccd_block b[2];
    make_block(&b[0], 1, 30, tr_u, tr_i, 5, v_u, v_i, 1, t_u, t_i, 1);
    make_block(&b[1], 1, 30, tr_u, tr_i, 0, v_u, v_i, 1, t_u, t_i, 1);
    float user[1] = {1}, item[30];
    for (int i = 0; i < 30; i++)
        item[i] = (float)(30 - i);
    ccd_block_metrics m[2];
    assert_int_equal(ccd_evaluate(user, item, 1, 30, 1, b, 2, m), 0);
    assert_float_equal(m[0].test.ndcg[CCD_K20], 1.0, 1e-12);
    assert_float_equal(m[1].test.ndcg[CCD_K20], g(6), 1e-12);
    /* valid item 29 is the last survivor: outside the top 20 in both, inside the top 50 */
    assert_float_equal(m[0].valid.recall[CCD_K20], 0.0, 0);
    assert_float_equal(m[1].valid.recall[CCD_K50], 1.0, 0);
    free_block(&b[0]);
    free_block(&b[1]);
}

static void popularity_ranks_by_train_count(void **state)
{
    (void)state;
    /* item 2 has 3 users, item 1 two, item 0 one. User 3 (no train) tests item 2: rank 1.
     * User 0 trained on item 2 (masked) and tests item 0: survivor rank 2. */
    int tr_u[] = {0, 1, 2, 1, 2, 2}, tr_i[] = {2, 2, 2, 1, 1, 0};
    int v_u[] = {0, 3}, v_i[] = {3, 3}, t_u[] = {0, 3}, t_i[] = {0, 2};
    ccd_block b;
    make_block(&b, 4, 4, tr_u, tr_i, 6, v_u, v_i, 2, t_u, t_i, 2);
    ccd_block_metrics m;
    assert_int_equal(ccd_evaluate_popularity(&b, &b, 1, &m), 0);
    assert_float_equal(m.test.ndcg[CCD_K20], (g(2) + 1.0) / 2.0, 1e-12);
    free_block(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(metrics_of_list_by_hand),
        cmocka_unit_test(hit_between_20_and_50_counts_only_at_50),
        cmocka_unit_test(kbest_sorted_orders_by_score_then_id),
        cmocka_unit_test(kbest_sorted_matches_a_full_sort),
        cmocka_unit_test(evaluate_masks_by_mode_and_truncates_at_1000),
        cmocka_unit_test(evaluate_uses_each_blocks_own_masks),
        cmocka_unit_test(popularity_ranks_by_train_count),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
