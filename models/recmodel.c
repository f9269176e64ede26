/* recmodel: LightGCN / MF-BPR forward and backward. See recmodel.h. */
#include "recmodel.h"

#include <stdlib.h>
#include <string.h>

#include "dense.h"

int ccd_recmodel_init(ccd_recmodel *m, ccd_model_type type, int n_users, int n_items, int dim,
                      const ccd_csr *graph, ccd_rng *rng)
{
    memset(m, 0, sizeof *m);
    m->type = type;
    m->n_users = n_users;
    m->n_items = n_items;
    m->dim = dim;
    m->n_layers = type == CCD_MODEL_LIGHTGCN ? 2 : 0;
    size_t n = (size_t)(n_users + n_items) * (size_t)dim;
    if (type == CCD_MODEL_LIGHTGCN) {
        if (!graph || graph->n_rows != n_users + n_items)
            return -1;
        m->graph = graph;
    }
    m->emb0 = ccd_floats(n);
    m->grad = ccd_floats(n);
    if (!m->emb0 || !m->grad)
        goto fail;
    if (type == CCD_MODEL_LIGHTGCN) {
        m->layer1 = ccd_floats(n);
        m->final = ccd_floats(n);
        m->dfinal = ccd_floats(n);
        m->scratch = ccd_floats(n);
        m->mark = calloc(3 * (size_t)(n_users + n_items), 1);
        m->near = malloc((size_t)(n_users + n_items) * sizeof *m->near);
        if (!m->layer1 || !m->final || !m->dfinal || !m->scratch || !m->mark || !m->near)
            goto fail;
    } else {
        m->final = m->emb0; /* MF: the final embedding is the layer-0 table */
        m->dfinal = ccd_floats(n);
        if (!m->dfinal)
            goto fail;
    }
    for (size_t k = 0; k < n; k++)
        m->emb0[k] = 0.01f * ccd_rng_normal(rng);
    return 0;
fail:
    ccd_recmodel_free(m);
    return -1;
}

void ccd_recmodel_free(ccd_recmodel *m)
{
    if (!m)
        return;
    if (m->type == CCD_MODEL_LIGHTGCN) {
        free(m->layer1);
        free(m->final);
        free(m->scratch);
        free(m->mark);
        free(m->near);
    }
    free(m->dfinal);
    free(m->emb0);
    free(m->grad);
    memset(m, 0, sizeof *m);
}

/* The batch rows and their neighbours, in increasing order, into m->near; returns how many.
 * The third mask marks them and is cleared again by the scan that lists them. */
static int near_rows(ccd_recmodel *m, const int *rows, int n)
{
    const ccd_csr *a = m->graph;
    const int nodes = ccd_recmodel_nodes(m);
    unsigned char *near = m->mark + 2 * (size_t)nodes;
    for (int k = 0; k < n; k++) {
        near[rows[k]] = 1;
        for (int64_t e = a->indptr[rows[k]]; e < a->indptr[rows[k] + 1]; e++)
            near[a->indices[e]] = 1;
    }
    int w = 0;
    for (int v = 0; v < nodes; v++) {
        m->near[w] = v;
        w += near[v];
        near[v] = 0;
    }
    return w;
}

void ccd_recmodel_forward(ccd_recmodel *m, const int *rows, int n)
{
    if (m->type == CCD_MODEL_MF)
        return; /* final aliases emb0 */
    const int d = m->dim;
    /* E1 = A_hat E0 where it is read: at the batch rows' neighbours (their second layer) and at
     * the rows themselves (the layer mean), or everywhere when a hook reads it there. */
    if (m->layer1_everywhere)
        ccd_spmm(m->graph, m->emb0, m->layer1, d);
    else
        ccd_spmm_rows(m->graph, m->emb0, m->layer1, d, m->near, near_rows(m, rows, n));
    /* E2 only at the batch rows, straight into final, then the layer mean. */
    ccd_spmm_rows(m->graph, m->layer1, m->final, d, rows, n);
#pragma omp parallel for schedule(static)
    for (int k = 0; k < n; k++) {
        size_t off = (size_t)rows[k] * d;
        for (int j = 0; j < d; j++)
            m->final[off + j] =
                (m->emb0[off + j] + m->layer1[off + j] + m->final[off + j]) * (1.0f / 3.0f);
    }
}

void ccd_recmodel_backward(ccd_recmodel *m, const int *rows, int n)
{
    const int d = m->dim;
    if (m->type == CCD_MODEL_MF) {
        memset(m->grad, 0, (size_t)ccd_recmodel_nodes(m) * d * sizeof *m->grad);
        for (int k = 0; k < n; k++) {
            size_t off = (size_t)rows[k] * d;
            memcpy(m->grad + off, m->dfinal + off, (size_t)d * sizeof *m->grad);
            memset(m->dfinal + off, 0, (size_t)d * sizeof *m->dfinal);
        }
        return;
    }
    const ccd_csr *a = m->graph;
    const int nodes = ccd_recmodel_nodes(m);
    float *h1 = m->scratch;                      /* (nodes, d) A_hat G */
    unsigned char *in_batch = m->mark;           /* (nodes) G's nonzero rows */
    unsigned char *near_batch = m->mark + nodes; /* (nodes) H1's nonzero rows */
    /* dE0 = (G + A_hat G + A_hat^2 G) / 3 with G = dfinal (A_hat is symmetric). G lives on the
     * batch rows and A_hat G next to them, so both products read only those rows: each output
     * row pulls its masked neighbours in the graph's order (no scatter, so the rows split over
     * the threads and the sums do not depend on their number). Without scratch for the masks'
     * lists the plain products give the same values, more slowly. */
    for (int k = 0; k < n; k++)
        in_batch[rows[k]] = 1;
    if (ccd_spmm_masked(a, m->dfinal, in_batch, h1, d, near_batch) != 0 ||
        ccd_spmm_add_masked(a, h1, near_batch, m->grad, d, h1, 1.0f / 3.0f) != 0) {
        ccd_spmm(a, m->dfinal, h1, d);
        ccd_spmm_add(a, h1, m->grad, d, h1, 1.0f / 3.0f);
    }
    for (int k = 0; k < n; k++) {
        size_t off = (size_t)rows[k] * d;
        for (int j = 0; j < d; j++) {
            m->grad[off + j] += m->dfinal[off + j] * (1.0f / 3.0f);
            m->dfinal[off + j] = 0.0f;
        }
        in_batch[rows[k]] = 0;
    }
}

void ccd_recmodel_propagate_all(ccd_recmodel *m)
{
    if (m->type == CCD_MODEL_MF)
        return;
    const int d = m->dim;
    const size_t total = (size_t)ccd_recmodel_nodes(m) * d;
    const ccd_csr *g = m->score_graph ? m->score_graph : m->graph;
    ccd_spmm(g, m->emb0, m->layer1, d);
    ccd_spmm(g, m->layer1, m->final, d);
#pragma omp parallel for schedule(static)
    for (size_t k = 0; k < total; k++)
        m->final[k] = (m->emb0[k] + m->layer1[k] + m->final[k]) * (1.0f / 3.0f);
}

int ccd_final_embeddings(ccd_model_type type, const float *emb0, const ccd_csr *graph, int nodes,
                         int d, float *final, float *layer1)
{
    const size_t total = (size_t)nodes * d;
    if (type == CCD_MODEL_MF) {
        memcpy(final, emb0, total * sizeof *final);
        if (layer1)
            memset(layer1, 0, total * sizeof *layer1);
        return 0;
    }
    if (!graph || graph->n_rows != nodes)
        return -1;
    float *l1 = layer1 ? layer1 : ccd_floats(total); /* (nodes x d) A_hat E0 */
    if (!l1)
        return -1;
    ccd_spmm(graph, emb0, l1, d);
    ccd_spmm(graph, l1, final, d);
#pragma omp parallel for schedule(static)
    for (size_t k = 0; k < total; k++)
        final[k] = (emb0[k] + l1[k] + final[k]) * (1.0f / 3.0f);
    if (!layer1)
        free(l1);
    return 0;
}
