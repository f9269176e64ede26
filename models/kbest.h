/* kbest: the engine's ranking order and the bounded heap that keeps the k best entries of a row.
 *
 * Order everywhere in libccd: score descending, ties by lower id first. It is a strict total
 * order on (score, id) pairs, so a top-k list is unique and does not depend on the thread count
 * or on how the row was scanned. NaN has no place in it: ccd_ranks_before is false both ways for
 * a NaN score, and the row scans below never select one (as if filtered).
 *
 * The heap holds (score, id) pairs in two parallel arrays hs (scores) and hu (ids), k each, with
 * the WORST kept entry at the root: once the heap is full the root is the bar a new entry must
 * clear. A row scanned in increasing id order then needs one float compare per entry (a tie with
 * the root has a higher id and loses), and only about k ln(n / k) entries of a random row ever
 * enter. Used by the evaluation (eval.c), the top-k lists (rank.c) and the replay sampler's
 * candidates (replay.c). */
#ifndef CCD_KBEST_H
#define CCD_KBEST_H

#include <stdbool.h>

/* (sa, a) ranks before (sb, b): a higher score, or the same score and a lower id. */
static inline bool ccd_ranks_before(float sa, int a, float sb, int b)
{
    return sa > sb || (sa == sb && a < b);
}

/* Add (score, id) to a heap of n entries (room for n + 1). */
void ccd_kbest_push(float *hs, int *hu, int n, float score, int id);
/* Restore the heap of n entries below position i (after the root was replaced, say). */
void ccd_kbest_sift_down(float *hs, int *hu, int n, int i);
/* Sort a heap of n entries best first in place, then write its ids to out[0..n) and -1 to
 * out[n..k). out may be hu itself. */
void ccd_kbest_emit(float *hs, int *hu, int n, int k, int *out);

/* The k best entries of row[0..n) (ids are positions) whose mask byte is 0 (mask may be NULL: all
 * eligible) and whose score is not NaN, as an unsorted heap in hs, hu ((k) each). Returns how
 * many: min(k, eligible entries). */
int ccd_kbest_of_row(const float *row, int n, const unsigned char *mask, int k, float *hs, int *hu);

/* The same, sorted best first into out ((k), -1 padded; out may be hu). hs is (k) scratch. */
int ccd_kbest_sorted(const float *row, int n, const unsigned char *mask, int k, float *hs,
                     int *out);

#endif
