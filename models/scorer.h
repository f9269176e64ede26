/* scorer: a users x items score matrix that is never stored, only produced in row chunks.
 *
 * Everything that the CCD reference reads from a full score or rank matrix (evaluation, top-k
 * lists, ranks of a few items, ensemble values) is computed here from chunks of rows, so memory
 * stays O(chunk x items). A scorer is a small value: the matrix's shape and a function that writes
 * the rows of a list of users. The embedding scorer is one SGEMM per chunk; others (the teacher
 * ensemble) build on it. */
#ifndef CCD_SCORER_H
#define CCD_SCORER_H

typedef struct ccd_scorer ccd_scorer;
struct ccd_scorer {
    int n_users, n_items;
    /* Write the scores of users[0..n) against items 0..n_items-1 into out (n x n_items).
     * Called from one thread at a time (it may use BLAS threads inside). Returns 0 or -1. */
    int (*rows)(const ccd_scorer *s, const int *users, int n, float *out);
    /* embedding scorers: s(u, i) = user_emb[u] . item_emb[i] */
    const float *user_emb; /* (n_users x dim) */
    const float *item_emb; /* (n_items x dim) */
    int dim;
    const void *ctx; /* other scorers' state */
};

ccd_scorer ccd_scorer_embeddings(const float *user_emb, const float *item_emb, int n_users,
                                 int n_items, int dim);

/* Rows per chunk so that a chunk of scores takes about 64 MB. */
int ccd_scorer_chunk(const ccd_scorer *s);

#endif
