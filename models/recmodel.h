/* recmodel: the embedding recommenders, LightGCN and MF-BPR (algorithm sections 2.1, 2.2).
 *
 * One struct serves both, because MF-BPR is exactly LightGCN with zero propagation layers:
 * the trainable parameters are the layer-0 table E0 = [P; Q] of n_users + n_items rows, and the
 * score is the dot product of final embeddings. LightGCN (2 layers, layer mean) computes
 *   E1 = A_hat E0,  E2 = A_hat E1,  E = (E0 + E1 + E2) / 3
 * on the block's graph A_hat (sparse.h), recomputed for every mini-batch with gradients through
 * A_hat back to E0.
 *
 * Training is a forward/backward pair over the batch's node rows (users u, items n_users + i):
 *   recmodel_forward(m, rows, n)   fills final[rows] (and layer1 at rows and their neighbours,
 *                                  or everywhere with layer1_everywhere)
 *   ... loss forward/backward writes dL/dE into dfinal[rows] ...
 *   recmodel_backward(m, rows, n)  grad = dL/dE0 over all rows; clears dfinal[rows]
 * Only the batch rows of the second layer are propagated, and the backward products read only
 * the rows where the gradient lives (the batch, then its neighbours), so a batch costs about one
 * full sparse product forward and one product over the batch's neighbourhood back. */
#ifndef CCD_RECMODEL_H
#define CCD_RECMODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "rng.h"
#include "sparse.h"

typedef enum { CCD_MODEL_LIGHTGCN = 0, CCD_MODEL_MF = 1 } ccd_model_type;

typedef struct {
    ccd_model_type type;
    int n_users, n_items, dim;
    int n_layers;               /* 2 for LightGCN, 0 for MF */
    const ccd_csr *graph;       /* borrowed A_hat, (n_users + n_items)^2; NULL for MF */
    const ccd_csr *score_graph; /* borrowed: the graph propagate_all scores on, when not graph
                                   (history_blocks, ccd.h); NULL: graph */
    /* parameters and gradient */
    float *emb0; /* (n_users + n_items, dim) layer-0 table [P; Q] */
    float *grad; /* (n_users + n_items, dim) dL/d emb0 */
    /* activations and scratch (layer1 and scratch are NULL for MF) */
    float *layer1;       /* (n_users + n_items, dim) A_hat E0 */
    float *final;        /* (n_users + n_items, dim) final embeddings; for MF this aliases emb0 */
    float *dfinal;       /* (n_users + n_items, dim) dL/dE, nonzero only at the batch rows */
    float *scratch;      /* (n_users + n_items, dim) backward temporaries */
    unsigned char *mark; /* (3, n_users + n_items) row masks, zero between batches */
    int *near;           /* (n_users + n_items) the rows where the forward pass needs layer1 */
    bool layer1_everywhere; /* forward computes layer1 for every row (a hook reads it there);
                               false: only next to the batch rows */
} ccd_recmodel;

/* Allocate and initialise E0 ~ N(0, 0.01^2). graph must outlive the model (LightGCN only). */
int ccd_recmodel_init(ccd_recmodel *m, ccd_model_type type, int n_users, int n_items, int dim,
                      const ccd_csr *graph, ccd_rng *rng);
void ccd_recmodel_free(ccd_recmodel *m);
static inline int ccd_recmodel_nodes(const ccd_recmodel *m)
{
    return m->n_users + m->n_items;
}

/* Training pair; rows are node indices (unique). */
void ccd_recmodel_forward(ccd_recmodel *m, const int *rows, int n);
void ccd_recmodel_backward(ccd_recmodel *m, const int *rows, int n);

/* final for every node (evaluation, scoring), on score_graph when set. Leaves layer1 to the next
 * forward pass, which recomputes what it reads. */
void ccd_recmodel_propagate_all(ccd_recmodel *m);

/* Final embeddings of a layer-0 table without a model: final (nodes x d) = the layer mean on
 * graph (NULL for MF); layer1 (nodes x d), if not NULL, receives A_hat E0 (zero for MF).
 * Returns 0 or -1. */
int ccd_final_embeddings(ccd_model_type type, const float *emb0, const ccd_csr *graph, int nodes,
                         int d, float *final, float *layer1);

#endif
