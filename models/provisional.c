/* provisional: the fast path's provisional student; see provisional.h.
 *
 * One training run of ccd_train_stage on a fresh LightGCN model of block k's id space: its
 * table is either the previous student expanded (the engine's own expansion, so a provisional
 * version and the exact CL_k agree on where new users and items start) or the engine's random
 * initialisation. Streams CCD_STREAM_PROV_* keep its randomness apart from the engine's, so
 * training a provisional student changes nothing in the exact block step that follows. */
#include "provisional.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "block.h"
#include "dense.h"
#include "expand.h"
#include "train.h"

void ccd_provisional_free(ccd_provisional *p)
{
    free(p->emb0);
    free(p->final);
    memset(p, 0, sizeof *p);
}

/* The starting table of the model m (already initialised at random): prev expanded, if any. */
static int start_table(const ccd_config *cfg, const ccd_block *blk, const float *prev, int pu,
                       int pi, ccd_recmodel *m)
{
    if (!prev)
        return 0;
    return ccd_expand_init(prev, pu, pi, m->dim, &blk->train, blk->n_users, blk->n_items,
                           cfg->init_topk, m->emb0);
}

/* ccd_train_stage's epoch callback: the first and the last epoch's loss. */
static void on_epoch(const ccd_epoch_report *r, void *ctx)
{
    ccd_provisional *out = ctx;
    if (r->epoch == 1)
        out->first_loss = r->loss;
    out->last_loss = r->loss;
}

static int fail(char *err, size_t errlen, int k, const char *why)
{
    snprintf(err, errlen, "provisional student of block %d: %s", k, why);
    return -1;
}

int ccd_student_provisional(const ccd_config *cfg, const ccd_block *blk, const float *prev,
                            int prev_users, int prev_items, const ccd_provisional_opts *o,
                            const atomic_int *stop, ccd_provisional *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    const int k = blk->index, nu = blk->n_users, ni = blk->n_items, d = cfg->student_dim;
    if (o->epochs < 1 || d < 1 ||
        (prev && (prev_users < 0 || prev_items < 0 || prev_users > nu || prev_items > ni)))
        return fail(err, errlen, k, "bad arguments (epochs, dimension or previous sizes)");
    double t0 = ccd_now();
    ccd_csr graph = {0};
    ccd_recmodel m = {0};
    ccd_rng init;
    ccd_rng_init(&init, cfg->seed, ccd_stream(CCD_STREAM_PROV_INIT, k, 0));
    if (ccd_graph_build(&graph, &blk->train, nu, ni) != 0 ||
        ccd_recmodel_init(&m, CCD_MODEL_LIGHTGCN, nu, ni, d, &graph, &init) != 0 ||
        start_table(cfg, blk, prev, prev_users, prev_items, &m) != 0) {
        ccd_recmodel_free(&m);
        ccd_csr_free(&graph);
        return fail(err, errlen, k, "out of memory");
    }
    double growth = ccd_batch_growth(cfg, blk->train.nnz, (int64_t)nu + ni);
    ccd_train_opts to = {.stage = cfg->student,
                         .seed = cfg->seed,
                         .stream = ccd_stream(CCD_STREAM_PROV_SAMPLER, k, 0),
                         .stop = stop};
    to.stage.epochs = o->epochs;
    to.stage.batch = block_grown(cfg->student.batch, growth);
    if (o->lr > 0)
        to.stage.lr = o->lr;
    ccd_train_hooks hooks = {.stop = stop};
    int rc = ccd_train_stage(&m, blk, NULL, &to, false, &hooks, on_epoch, out, &out->metrics,
                             &out->epoch);
    if (rc == 0) { /* ccd_train_stage left the selected table in emb0 and propagated it */
        size_t n = (size_t)(nu + ni) * d;
        out->emb0 = block_copy_floats(m.emb0, n);
        out->final = block_copy_floats(m.final, n);
        out->n_users = nu, out->n_items = ni, out->dim = d;
        if (!out->emb0 || !out->final) {
            ccd_provisional_free(out);
            rc = -1;
        }
    }
    ccd_recmodel_free(&m);
    ccd_csr_free(&graph);
    out->seconds = ccd_now() - t0;
    if (rc == CCD_STOPPED || ccd_stop_raised(stop)) {
        ccd_provisional_free(out);
        snprintf(err, errlen, "provisional student of block %d: stopped on request", k);
        return CCD_STOPPED;
    }
    return rc == 0 ? 0 : fail(err, errlen, k, "out of memory while training");
}
