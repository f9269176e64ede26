/* scorer: see scorer.h. */
#include "scorer.h"

#include <stdlib.h>
#include <string.h>

#include "dense.h"

static int embedding_rows(const ccd_scorer *s, const int *users, int n, float *out)
{
    const int d = s->dim;
    float *u = ccd_floats((size_t)n * d); /* (n x d) gathered user rows */
    if (!u)
        return -1;
    for (int k = 0; k < n; k++)
        memcpy(u + (size_t)k * d, s->user_emb + (size_t)users[k] * d, (size_t)d * sizeof *u);
    ccd_matmul_nt(u, s->item_emb, out, n, s->n_items, d);
    free(u);
    return 0;
}

ccd_scorer ccd_scorer_embeddings(const float *user_emb, const float *item_emb, int n_users,
                                 int n_items, int dim)
{
    return (ccd_scorer){.n_users = n_users,
                        .n_items = n_items,
                        .rows = embedding_rows,
                        .user_emb = user_emb,
                        .item_emb = item_emb,
                        .dim = dim};
}

int ccd_scorer_chunk(const ccd_scorer *s)
{
    int chunk = (int)(((size_t)16 << 20) / (size_t)(s->n_items > 0 ? s->n_items : 1));
    return chunk < 64 ? 64 : chunk > 2048 ? 2048 : chunk;
}
