/* Dataset reader: a small dataset written here (deduplication, sizes, errors naming file and
 * line), and the real Yelp blocks (CCD_DATA_DIR) against the sizes in the algorithm spec. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "dataset.h"
#include "test_util.h" /* write_file, rm_tree */

static char dir[256];

/* Writes text to the file name of the dataset directory. */
static void write_dataset_file(const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    write_file(path, text, strlen(text));
}

static int make_dataset(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/ccd-dataset-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    char sub[600];
    if (snprintf(sub, sizeof sub, "mkdir -p %s/block0 %s/block1", dir, dir) < 0 || system(sub) != 0)
        return -1;
    write_dataset_file("blocks.tsv", "block\tnum_users\tnum_items\n0\t3\t4\n1\t5\t6\n");
    write_dataset_file("block0/train.tsv", "0\t1\n0\t1\n1\t2\n2\t3\n0\t0\n");
    write_dataset_file("block0/valid.tsv", "0\t2\n");
    write_dataset_file("block0/test.tsv", "0\t3\n1\t0\n");
    write_dataset_file("block0/users.tsv", "0\n1\n2\n");
    write_dataset_file("block0/items.tsv", "0\n1\n2\n3\n");
    write_dataset_file("block1/train.tsv", "3\t4\n4\t5\n");
    write_dataset_file("block1/valid.tsv", "3\t5\n");
    write_dataset_file("block1/test.tsv", "4\t4\n");
    write_dataset_file("block1/users.tsv", "4\n3\n1\n");
    write_dataset_file("block1/items.tsv", "4\n5\n");
    return 0;
}

static int remove_dataset(void **state)
{
    (void)state;
    rm_tree(dir);
    return 0;
}

static void loads_blocks_with_deduplicated_train(void **state)
{
    (void)state;
    char err[512];
    ccd_dataset ds;
    assert_int_equal(ccd_dataset_load(&ds, dir, 0, err, sizeof err), 0);
    assert_int_equal(ds.n_blocks, 2);
    const ccd_block *b0 = &ds.blocks[0], *b1 = &ds.blocks[1];
    assert_int_equal(b0->n_users, 3);
    assert_int_equal(b0->n_items, 4);
    assert_int_equal(b0->n_train_lines, 5);
    assert_int_equal(b0->train.nnz, 4); /* (0,1) twice */
    assert_true(ccd_csr_contains(&b0->train, 0, 0));
    assert_true(ccd_csr_contains(&b0->test, 1, 0));
    assert_int_equal(b1->prev_users, 3);
    assert_int_equal(b1->prev_items, 4);
    assert_int_equal(b1->n_active_users, 3);
    assert_int_equal(b1->users[0], 1); /* sorted */
    assert_int_equal(b1->users[2], 4);
    ccd_dataset_free(&ds);
    assert_int_equal(ccd_dataset_load(&ds, dir, 1, err, sizeof err), 0);
    assert_int_equal(ds.n_blocks, 1);
    ccd_dataset_free(&ds);
}

static void malformed_line_is_named(void **state)
{
    (void)state;
    char err[512];
    ccd_dataset ds;
    write_dataset_file("block1/train.tsv", "3\t4\n4 5\n");
    assert_int_equal(ccd_dataset_load(&ds, dir, 0, err, sizeof err), -1);
    assert_non_null(strstr(err, "block1/train.tsv:2"));
    write_dataset_file("block1/train.tsv", "3\t4\n4\t6\n"); /* item 6 outside block 1's 6 items */
    assert_int_equal(ccd_dataset_load(&ds, dir, 0, err, sizeof err), -1);
    assert_non_null(strstr(err, "block1/train.tsv:2"));
    write_dataset_file("block1/train.tsv", "3\t4\n4\t5\n");
    write_dataset_file("blocks.tsv",
                       "block\tnum_users\tnum_items\n0\t3\t4\n1\t2\t6\n"); /* shrinks */
    assert_int_equal(ccd_dataset_load(&ds, dir, 0, err, sizeof err), -1);
    assert_non_null(strstr(err, "blocks.tsv:3"));
    write_dataset_file("blocks.tsv", "block\tnum_users\tnum_items\n0\t3\t4\n1\t5\t6\n");
    assert_int_equal(ccd_dataset_load(&ds, dir, 0, err, sizeof err), 0);
    ccd_dataset_free(&ds);
}

static void missing_file_is_named(void **state)
{
    (void)state;
    char err[512], path[512];
    ccd_dataset ds;
    snprintf(path, sizeof path, "%s/block1/users.tsv", dir);
    assert_int_equal(rename(path, "/tmp/ccd-users-moved.tsv"), 0);
    assert_int_equal(ccd_dataset_load(&ds, dir, 0, err, sizeof err), -1);
    assert_non_null(strstr(err, "block1/users.tsv"));
    assert_non_null(strstr(err, "cannot open"));
    assert_int_equal(rename("/tmp/ccd-users-moved.tsv", path), 0);
    assert_int_equal(ccd_dataset_load(&ds, "/nonexistent/ccd", 0, err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent/ccd/blocks.tsv"));
}

/* The real data: sizes from blocks.tsv and nnz(R_k) from the algorithm spec, section 1.3. */
static void yelp_blocks_match_the_spec(void **state)
{
    (void)state;
    const char *data = getenv("CCD_DATA_DIR");
    assert_non_null(data); /* set by CTest; a missing dataset is a failure, not a skip */
    char err[512];
    ccd_dataset ds;
    if (ccd_dataset_load(&ds, data, 0, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_int_equal(ds.n_blocks, 6);
    static const int users[] = {12248, 13367, 13896, 14399, 14761, 14950};
    static const int nnz[] = {117367, 32691, 19942, 19873, 23321, 21069};
    static const int keys[] = {12248, 9733, 8075, 7625, 7946, 7180};
    static const int items[] = {10782, 9324, 7877, 7570, 8074, 7683};
    for (int k = 0; k < 6; k++) {
        assert_int_equal(ds.blocks[k].n_users, users[k]);
        assert_int_equal(ds.blocks[k].train.nnz, nnz[k]);
        assert_int_equal(ds.blocks[k].n_active_users, keys[k]);
        assert_int_equal(ds.blocks[k].n_active_items, items[k]);
    }
    assert_int_equal(ds.blocks[0].n_items, 10822);
    assert_int_equal(ds.blocks[0].n_train_lines - ds.blocks[0].train.nnz, 2502); /* duplicates */
    ccd_dataset_free(&ds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(loads_blocks_with_deduplicated_train),
        cmocka_unit_test(malformed_line_is_named),
        cmocka_unit_test(missing_file_is_named),
        cmocka_unit_test(yelp_blocks_match_the_spec),
    };
    return cmocka_run_group_tests(tests, make_dataset, remove_dataset);
}
