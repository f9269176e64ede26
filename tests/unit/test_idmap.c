/* idmap: rows in first-appearance order, growth, stable id pointers, long and colliding ids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "idmap.h"

/* Rows are given in order of first appearance; find never adds. */
static void idmap_add_find_order(void **state)
{
    (void)state;
    idmap m;
    idmap_init(&m);
    assert_int_equal(idmap_find(&m, "x"), -1); /* empty map */
    const char *seq[] = {"x", "y", "x", "z", "y", ""};
    int want_row[] = {0, 1, 0, 2, 1, 3}, want_added[] = {1, 1, 0, 1, 0, 1};
    for (int k = 0; k < 6; k++) {
        int added = -1;
        assert_int_equal(idmap_add(&m, seq[k], &added), want_row[k]);
        assert_int_equal(added, want_added[k]);
    }
    assert_int_equal(m.n, 4);
    assert_string_equal(idmap_id(&m, 0), "x");
    assert_string_equal(idmap_id(&m, 1), "y");
    assert_string_equal(idmap_id(&m, 2), "z");
    assert_string_equal(idmap_id(&m, 3), "");
    assert_int_equal(idmap_find(&m, "z"), 2);
    assert_int_equal(idmap_find(&m, ""), 3);
    assert_int_equal(idmap_find(&m, "w"), -1);
    assert_int_equal(idmap_find(&m, "xx"), -1);
    assert_int_equal(m.n, 4);
    idmap_free(&m);
    assert_int_equal(m.n, 0);
}

/* 200k ids: many rehashes (1024 -> 512k slots) and arena blocks; every id keeps its row, the table
 * stays at most half full, and strings taken before the growth are still valid and unchanged. */
static void idmap_growth_and_stable_snapshot(void **state)
{
    (void)state;
    enum { N = 200000, EARLY = 10 };
    idmap m;
    idmap_init(&m);
    char id[32];
    int added;
    for (int k = 0; k < EARLY; k++) {
        snprintf(id, sizeof id, "user-%d", k);
        assert_int_equal(idmap_add(&m, id, &added), k);
    }
    const char **snap = idmap_snapshot(&m, EARLY);
    assert_non_null(snap);
    const char *early0 = idmap_id(&m, 0);
    for (int k = EARLY; k < N; k++) {
        snprintf(id, sizeof id, "user-%d", k);
        assert_int_equal(idmap_add(&m, id, &added), k);
        assert_int_equal(added, 1);
    }
    assert_int_equal(m.n, N);
    assert_true(m.n_slots >= 2 * (size_t)N);
    assert_true(m.n_slots >= 1024 * 256); /* grew through 9 rehashes at least */
    for (int k = 0; k < N; k++) {
        snprintf(id, sizeof id, "user-%d", k);
        assert_int_equal(idmap_find(&m, id), k);
        assert_string_equal(idmap_id(&m, k), id);
    }
    assert_int_equal(idmap_add(&m, "user-123456", &added), 123456);
    assert_int_equal(added, 0);
    assert_int_equal(idmap_find(&m, "user-200000"), -1);
    /* the snapshot taken at 10 rows: same pointers as the map's, strings unchanged (ASan would
     * catch a moved or freed string) */
    for (int k = 0; k < EARLY; k++) {
        snprintf(id, sizeof id, "user-%d", k);
        assert_string_equal(snap[k], id);
        assert_ptr_equal(snap[k], idmap_id(&m, k));
    }
    assert_ptr_equal(early0, idmap_id(&m, 0));
    free(snap);
    const char **all = idmap_snapshot(&m, N);
    assert_non_null(all);
    assert_string_equal(all[N - 1], "user-199999");
    free(all);
    idmap_free(&m);
}

/* Ids longer than an arena block (1 MiB) get their own block; ids that differ only in the last byte
 * are distinct; short ids added afterwards still work. */
static void idmap_long_ids(void **state)
{
    (void)state;
    size_t big = (1u << 20) + 17;
    char *a = malloc(big + 1), *b = malloc(big + 1), *c = malloc(5001);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    memset(a, 'q', big);
    a[big] = '\0';
    memcpy(b, a, big + 1);
    b[big - 1] = 'r';
    memset(c, 'z', 5000);
    c[5000] = '\0';
    idmap m;
    idmap_init(&m);
    int added;
    assert_int_equal(idmap_add(&m, "short", &added), 0);
    assert_int_equal(idmap_add(&m, a, &added), 1);
    assert_int_equal(idmap_add(&m, b, &added), 2);
    assert_int_equal(idmap_add(&m, c, &added), 3);
    assert_int_equal(idmap_add(&m, "after", &added), 4);
    assert_int_equal(idmap_add(&m, a, &added), 1);
    assert_int_equal(added, 0);
    assert_int_equal(idmap_find(&m, b), 2);
    assert_int_equal(idmap_find(&m, c), 3);
    assert_int_equal(strlen(idmap_id(&m, 1)), big);
    assert_string_equal(idmap_id(&m, 2), b);
    assert_string_equal(idmap_id(&m, 0), "short");
    assert_string_equal(idmap_id(&m, 4), "after");
    c[4999] = 'y';
    assert_int_equal(idmap_find(&m, c), -1);
    idmap_free(&m);
    free(a), free(b), free(c);
}

/* Ids whose hashes agree in the low 16 bits (the same home slot up to 64k slots) are told apart by
 * comparing strings along the probe sequence; an absent id with the same home slot is not found. */
static void idmap_colliding_ids(void **state)
{
    (void)state;
    enum { G = 8 };
    char group[G + 1][32];
    int found = 0;
    uint64_t want = idmap_hash("k0") & 0xffff;
    snprintf(group[found++], sizeof group[0], "k0");
    for (int k = 1; found < G + 1 && k < 50000000; k++) {
        char id[32];
        snprintf(id, sizeof id, "k%d", k);
        if ((idmap_hash(id) & 0xffff) == want)
            snprintf(group[found++], sizeof group[0], "%s", id);
    }
    assert_int_equal(found, G + 1);
    idmap m;
    idmap_init(&m);
    int added;
    for (int k = 0; k < G; k++)
        assert_int_equal(idmap_add(&m, group[k], &added), k);
    /* the group sits in consecutive slots from its home slot */
    size_t mask = m.n_slots - 1, home = (size_t)want & mask;
    assert_int_equal(m.n_slots, 1024);
    for (int k = 0; k < G; k++)
        assert_int_equal(m.slots[(home + (size_t)k) & mask], k + 1);
    for (int k = 0; k < G; k++)
        assert_int_equal(idmap_find(&m, group[k]), k);
    assert_int_equal(idmap_find(&m, group[G]), -1);
    /* grow past several rehashes (still colliding below 64k slots), then check again */
    char id[32];
    for (int k = 0; k < 20000; k++) {
        snprintf(id, sizeof id, "filler-%d", k);
        assert_int_equal(idmap_add(&m, id, &added), G + k);
    }
    assert_true(m.n_slots == 65536);
    for (int k = 0; k < G; k++) {
        assert_int_equal(idmap_find(&m, group[k]), k);
        assert_int_equal(idmap_add(&m, group[k], &added), k);
        assert_int_equal(added, 0);
    }
    assert_int_equal(idmap_find(&m, group[G]), -1);
    assert_int_equal(idmap_add(&m, group[G], &added), G + 20000);
    idmap_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(idmap_add_find_order),
        cmocka_unit_test(idmap_growth_and_stable_snapshot),
        cmocka_unit_test(idmap_long_ids),
        cmocka_unit_test(idmap_colliding_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
