/* train: BPR training of one recommender on one block, with model selection.
 *
 * This is the base-teacher stage of algorithm section 2.5 (and the building block later stages
 * extend): epochs of shuffled BPR triples in mini-batches, one dense Adam step per batch, an
 * evaluation on the block's valid split every eval_every epochs, and early stopping after
 * `patience` evaluations without a strictly better valid R@20. The model ends holding the best
 * evaluated weights. */
#ifndef CCD_TRAIN_H
#define CCD_TRAIN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "adam.h"
#include "bpr.h"
#include "dataset.h"
#include "eval.h"
#include "recmodel.h"
#include "replay.h"

/* The settings of one BPR-trained stage: the engine's config holds one per stage (ccd.h), and
 * ccd_train_opts carries them into the training loop. */
typedef struct {
    float lr;
    int batch;
    int nns;            /* negatives per positive */
    float weight_decay; /* coupled L2 */
    bool lazy_decay;    /* decay only the parameters with a gradient in the step (adam.h) */
    int epochs;         /* epochs trained at most; the best evaluated one is kept */
    int eval_every; /* evaluate on the block's valid split after epochs 1, 1+N, ... and the last */
    int patience;   /* stop after this many evaluations without improvement (0: never) */
} ccd_stage_opts;

/* One training run: a stage's settings and where its randomness and control come from. */
typedef struct {
    ccd_stage_opts stage;
    uint64_t seed;
    uint64_t stream;        /* the sampler's stream (ccd_stream) */
    const atomic_int *stop; /* optional: nonzero stops the run (CCD_STOPPED) before the next
                               mini-batch; raised by another thread */
    double *eval_seconds;   /* optional: evaluation time is added here (atomically) */
} ccd_train_opts;

/* Returned by the training loops when opts.stop was raised: nothing is kept. */
#define CCD_STOPPED (-2)

/* The training loops poll the stop flag before every mini-batch (and the ensemble and the
 * distillation's item pass once per row chunk), so a stop is seen mid-epoch within one batch, not
 * only between epochs: a Yelp base-teacher batch takes 8-30 ms, even with teachers side by side
 * on a loaded host (polling every 64 batches left 1-4 s there). Polling reads an atomic (about a
 * nanosecond against the batch's milliseconds) and changes no result. */

/* Whether an optional stop flag was raised. */
static inline bool ccd_stop_raised(const atomic_int *stop)
{
    return stop && atomic_load_explicit(stop, memory_order_relaxed);
}

/* The base-teacher settings of section 2.5: lr 1e-3, batch 512, 2 negatives, weight decay 1e-4,
 * up to 100 epochs, evaluated after each, patience 10; seed 0. */
ccd_train_opts ccd_train_opts_base_teacher(void);

typedef struct {
    int epoch;            /* 1-based */
    double loss;          /* summed BPR loss of the epoch */
    double train_seconds; /* sampling + batches */
    double eval_seconds;
    bool evaluated, improved;
    ccd_block_metrics metrics; /* valid and test on the block, when evaluated */
} ccd_epoch_report;

typedef void (*ccd_epoch_fn)(const ccd_epoch_report *r, void *ctx);

/* Extra terms of the CCD stages, hooked into the BPR loop, and its stop flag:
 *   batch(ctx, m, u, p, n, b): after the BPR backward of a mini-batch (m->final holds the batch
 *     rows' final embeddings, m->layer1 the full first layer), adds its terms' gradient to
 *     m->grad and returns their loss; the batch's single Adam step follows.
 *   step(ctx, m): after each mini-batch's Adam step (a stage that holds some rows fixed puts
 *     them back here).
 *   epoch(ctx, m, adam, epoch): after the epoch's BPR batches, runs passes with Adam steps of its
 *     own (replay, the item-side distillation); returns their loss.
 * Either may be NULL. A negative return (or NaN) stops training with an error.
 *   stop: polled before every batch (ccd_train_stage sets it from opts.stop). */
typedef struct {
    double (*batch)(void *ctx, ccd_recmodel *m, const int *user, const int *pos, const int *neg,
                    int b);
    double (*epoch)(void *ctx, ccd_recmodel *m, ccd_adam *adam, int epoch);
    void (*step)(void *ctx, ccd_recmodel *m);
    void *ctx;
    const atomic_int *stop;
} ccd_train_hooks;

/* The general stage loop: sample (train, exclusions) triples every epoch, BPR mini-batches with
 * hooks, evaluation on blk's valid split, keep the best. clamp selects the clamped BPR of the
 * distillation stage. Same returns as ccd_train_bpr. */
int ccd_train_stage(ccd_recmodel *m, const ccd_block *blk, const ccd_csr *exclude,
                    const ccd_train_opts *o, bool clamp, const ccd_train_hooks *hooks,
                    ccd_epoch_fn on_epoch, void *ctx, ccd_block_metrics *best, int *best_epoch);

/* Train m on blk (exclude may be NULL). on_epoch, if set, is called after every epoch.
 * best (may be NULL) receives the selected epoch's metrics; *best_epoch its number.
 * Returns 0 or -1 (out of memory). */
int ccd_train_bpr(ccd_recmodel *m, const ccd_block *blk, const ccd_csr *exclude,
                  const ccd_train_opts *o, ccd_epoch_fn on_epoch, void *ctx,
                  ccd_block_metrics *best, int *best_epoch);

/* Evaluate m on blocks[0..n): propagates, then scores (eval.h). */
int ccd_recmodel_evaluate(ccd_recmodel *m, const ccd_block *blocks, int n, ccd_block_metrics *out);

/* One pass of BPR mini-batches over t, one Adam step each: returns the summed loss, a
 * negative value when memory runs out, or CCD_STOPPED when hooks->stop was raised (the pass is
 * left unfinished). */
double ccd_bpr_epoch(ccd_recmodel *m, ccd_adam *adam, const ccd_triples *t, int batch, bool clamp,
                     const ccd_train_hooks *hooks);

/* One replay pass (sections 5.5 and 6.6): the pairs shuffled into batches, one Adam step per
 * batch on L = lambda sum_batch BCE(sigmoid(s(u, i)), y) with propagated embeddings.
 * Returns the summed loss, a negative value when memory runs out, or CCD_STOPPED when stop
 * (may be NULL) was raised (polled before every batch). */
double ccd_replay_epoch(ccd_recmodel *m, ccd_adam *adam, const ccd_replay_set *r, int batch,
                        float lambda, ccd_rng *rng, const atomic_int *stop);

#endif
