/* kbest: see kbest.h.
 *
 * The sifts move a hole instead of swapping: the moving entry is written once, where it stops. */
#include "kbest.h"

#include <math.h>
#include <string.h>

/* Heap slot i holds (score, id). */
static inline void put(float *hs, int *hu, int i, float score, int id)
{
    hs[i] = score;
    hu[i] = id;
}

void ccd_kbest_sift_down(float *hs, int *hu, int n, int i)
{
    const float v = hs[i];
    const int u = hu[i];
    for (;;) {
        int c = 2 * i + 1; /* the worse child */
        if (c >= n)
            break;
        if (c + 1 < n && ccd_ranks_before(hs[c], hu[c], hs[c + 1], hu[c + 1]))
            c++;
        if (!ccd_ranks_before(v, u, hs[c], hu[c]))
            break;
        put(hs, hu, i, hs[c], hu[c]);
        i = c;
    }
    put(hs, hu, i, v, u);
}

void ccd_kbest_push(float *hs, int *hu, int n, float score, int id)
{
    int i = n;
    while (i > 0) {
        int p = (i - 1) / 2;
        if (!ccd_ranks_before(hs[p], hu[p], score, id))
            break;
        put(hs, hu, i, hs[p], hu[p]);
        i = p;
    }
    put(hs, hu, i, score, id);
}

void ccd_kbest_emit(float *hs, int *hu, int n, int k, int *out)
{
    /* pop the worst to the end, n - 1 times */
    for (int end = n - 1; end > 0; end--) {
        const float s = hs[0];
        const int u = hu[0];
        put(hs, hu, 0, hs[end], hu[end]);
        put(hs, hu, end, s, u);
        ccd_kbest_sift_down(hs, hu, end, 0);
    }
    if (out != hu)
        memcpy(out, hu, (size_t)n * sizeof *out);
    for (int p = n; p < k; p++)
        out[p] = -1;
}

int ccd_kbest_of_row(const float *row, int n, const unsigned char *mask, int k, float *hs, int *hu)
{
    if (k <= 0)
        return 0;
    int c = 0, i = 0;
    for (; i < n && c < k; i++)
        if (row[i] == row[i] && !(mask && mask[i])) /* not NaN, not masked */
            ccd_kbest_push(hs, hu, c++, row[i], i);
    /* Full (or the row is done): from here an entry enters only with a strictly greater score
     * than the root, which a NaN never has. */
    float bar = c == k ? hs[0] : INFINITY;
    for (; i < n; i++)
        if (row[i] > bar && !(mask && mask[i])) {
            put(hs, hu, 0, row[i], i);
            ccd_kbest_sift_down(hs, hu, k, 0);
            bar = hs[0];
        }
    return c;
}

int ccd_kbest_sorted(const float *row, int n, const unsigned char *mask, int k, float *hs, int *out)
{
    const int c = ccd_kbest_of_row(row, n, mask, k, hs, out);
    ccd_kbest_emit(hs, out, c, k, out);
    return c;
}
