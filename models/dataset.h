/* dataset: block datasets on disk -> per-block interaction sets.
 *
 * A dataset directory (format in shared/data/README.md) has blocks.tsv with the id-space sizes
 * after each block and block<k>/{train,valid,test,users,items}.tsv. Each block is loaded into
 * CSR sets over that block's id space: train pairs deduplicated (the raw file may repeat a pair),
 * valid and test per user, plus the block's active users (every user of the raw block, the
 * reference's train keys, some without a train pair) and active items. Any missing or malformed
 * file is an error naming the file and line. */
#ifndef CCD_DATASET_H
#define CCD_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "sparse.h"

typedef struct {
    int index;                  /* k */
    int n_users, n_items;       /* U_k, I_k: id-space sizes after this block */
    int prev_users, prev_items; /* U_{k-1}, I_{k-1} (0 for block 0) */
    ccd_csr train;              /* (n_users x n_items) deduplicated train pairs */
    ccd_csr valid, test;        /* (n_users x n_items) */
    int64_t n_train_lines;      /* train events as read, duplicates included */
    int *users;                 /* (n_active_users) sorted: users active in the raw block */
    int n_active_users;
    int *items; /* (n_active_items) sorted: items with a train pair */
    int n_active_items;
} ccd_block;

typedef struct {
    int n_blocks;
    ccd_block *blocks;
} ccd_dataset;

/* Load blocks 0..n-1 of the dataset in dir, n = min(max_blocks, blocks in blocks.tsv);
 * max_blocks <= 0 loads all. Returns 0, or -1 with a message in err. */
int ccd_dataset_load(ccd_dataset *ds, const char *dir, int max_blocks, char *err, size_t errlen);
void ccd_dataset_free(ccd_dataset *ds);

/* Evaluate on a sample of users (large catalogues): when more than max_users users have test
 * items, keep the valid and test pairs of about max_users of them, chosen by a hash of (seed,
 * user id) so every block and every run picks the same users; the others' valid and test rows
 * are emptied (model selection and the reported metrics then use the sample). Train data is
 * untouched. max_users <= 0 keeps everything. Returns the users left with test items. */
int ccd_block_sample_eval(ccd_block *b, int max_users, uint64_t seed);

/* Read a TSV of "a<TAB>b" int pairs (two_cols) or single ints. Exposed for tests.
 * On success *a (and *b) are malloc'd arrays of *n values. Values must lie in [0, limit_a) and
 * [0, limit_b). */
int ccd_read_int_tsv(const char *path, int two_cols, int limit_a, int limit_b, int **a, int **b,
                     int64_t *n, char *err, size_t errlen);

#endif
