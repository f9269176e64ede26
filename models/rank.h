/* rank: top-k lists, per-item top users, row ranks and the teacher ensemble, all streamed from
 * a scorer (scorer.h) in chunks of rows, never a users x items matrix.
 *
 * Order everywhere: score descending, ties by lower id first (kbest.h: a strict total order, so
 * results are deterministic and independent of the thread count). "Filtered" entries, the
 * reference's "set to -1e8", are simply not eligible. */
#ifndef CCD_RANK_H
#define CCD_RANK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "scorer.h"
#include "sparse.h"

/* A union of (user, item) sets to leave out; a set with fewer rows than the scorer excludes
 * nothing for the rows past its end. Up to 4 sets. */
typedef struct {
    const ccd_csr *sets[4];
    int n_sets;
} ccd_filter;

/* For every user u < s->n_users: the k best eligible items of row u, best first, into
 * out (n_users x k); a row with fewer than k eligible items is padded with -1. f may be NULL;
 * a filter's item ids at or past s->n_items are ignored. k <= 0 writes nothing.
 * Returns 0, or -1 (out of memory, or the scorer's rows() failed). */
int ccd_topk_items(const ccd_scorer *s, const ccd_filter *f, int k, int *out);

/* For every item i < s->n_items: the k best eligible users of column i (score desc, user id asc),
 * best first, into out (n_items x k), -1 padded. Streams the rows once, keeping a k-heap per
 * item (O(n_items x k) memory besides one chunk). Same filter rules and returns as above. */
int ccd_topk_users(const ccd_scorer *s, const ccd_filter *f, int k, int *out);

/* Both of the above from one stream of row chunks (the scorer's rows are produced once: for the
 * ensemble, the costliest scorer, that halves the work). Either output may be NULL or its k 0. */
int ccd_topk_items_users(const ccd_scorer *s, const ccd_filter *f, int k_items, int *out_items,
                         int k_users, int *out_users);

/* The same fed chunk by chunk by a caller that produces the rows anyway (an evaluation pass,
 * ccd_evaluate_scorer_tee): new (outputs as above; NULL when memory runs out), feed every user's
 * row in increasing user order (feed masks the rows in place; its signature is a ccd_rows_fn),
 * then finish, which writes out_users and frees the stream. finish(NULL) does nothing. A failed
 * feed leaves the outputs undefined; finish still frees. */
typedef struct ccd_topk_stream ccd_topk_stream;
ccd_topk_stream *ccd_topk_stream_new(int n_items, const ccd_filter *f, int k_items, int *out_items,
                                     int k_users, int *out_users);
int ccd_topk_stream_feed(void *stream, int first_user, int n, float *rows);
void ccd_topk_stream_finish(ccd_topk_stream *t);

/* The row sorted by (score desc, id asc): on return (uint32_t)sorted[p] is the item at
 * position p, i.e. the item of rank p (the high half holds its order key). sorted and scratch are
 * (n) each and must not overlap. A stable LSD radix sort of packed (key, id) pairs on the float
 * bits: O(n), no comparisons, no allocation. -0.0 ties with +0.0; row must not contain NaN. */
void ccd_row_sort(const float *row, int n, uint64_t *sorted, uint64_t *scratch);
/* out[i] = w[rank of i] (add: +=) for the same order, without writing the sorted row: the
 * ensemble's step. scratch is (2 n). */
void ccd_row_rank_weights(const float *row, int n, const float *w, float *out, bool add,
                          uint64_t *scratch);

/* The rank-importance ensemble of section 3: E(u, i) = (1/M) sum_m (r_m(u, i) + 1)^-0.05, with
 * r_m the rank of item i in teacher m's unmasked row. All teachers share the ensemble's shape
 * (n_users x n_items); teachers' own scorers may be bigger (their extra rows/items are ignored:
 * ranks are taken over items 0..n_items-1). The returned scorer borrows e (its ctx), which must
 * outlive it. */
typedef struct ccd_ensemble_scratch ccd_ensemble_scratch;
typedef struct {
    const ccd_scorer *teachers; /* (n_teachers) */
    int n_teachers;
    int n_users, n_items;
    const atomic_int *stop;        /* optional: polled per sub-batch of rows (the ranking of a Yelp
                                      chunk takes seconds), rows() fails once it is raised */
    ccd_ensemble_scratch *scratch; /* optional, owned by whoever owns e: buffers kept from one
                                      rows() call to the next (see below) */
} ccd_ensemble;

/* The scorer's rows() returns -1 if a teacher has fewer users or items than e, if
 * e->n_teachers <= 0, if memory runs out, or once e->stop is raised. Per call it needs one (batch x
 * widest teacher row) buffer, batch = min(n, ccd_scorer_chunk(teacher)), the weight table and
 * sort scratch, besides out. Without e->scratch each call allocates them; with it they are
 * allocated once and reused (a chunk's buffer is 64 MB, and allocating it per chunk cost as much
 * as the ranking). A call that finds the scratch in use by another thread allocates its own, so
 * the scorer stays safe to call concurrently. */
ccd_scorer ccd_scorer_ensemble(const ccd_ensemble *e);
ccd_ensemble_scratch *ccd_ensemble_scratch_new(void);
void ccd_ensemble_scratch_free(ccd_ensemble_scratch *s); /* NULL is fine */

#endif
