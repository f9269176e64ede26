/* provisional: the fast path's student for a window whose exact block step has not run yet.
 *
 * The exact continual student CL_k comes out of the block step (ccd.h) only after block k-1's
 * slow path (teachers, ensemble, distillation) has finished, minutes on Yelp. A provisional
 * student bridges that gap: the newest student the caller has (CL_{k-1}, or an earlier
 * provisional one) expanded to block k's id space exactly as the engine expands CL_k (section
 * 5.4, ccd_expand_init with cfg->init_topk), then fine-tuned on block k's train pairs with plain
 * BPR for a few epochs: student dimension, LightGCN, the student stage's settings (batch grown
 * with the block as the engine grows it), no exclusions, no replay, no proxies. Without a
 * previous student (the bootstrap window) the table starts from the engine's N(0, 0.01^2)
 * initialisation and trains on the window alone. The best epoch on the block's valid split is
 * kept, as every engine stage does.
 *
 * It never touches an engine state: its output is served and then thrown away once the exact
 * CL_k exists. Deterministic for (cfg->seed, block index, inputs, thread count); the stop flag
 * is polled before every mini-batch. */
#ifndef CCD_PROVISIONAL_H
#define CCD_PROVISIONAL_H

#include <stdatomic.h>
#include <stddef.h>

#include "ccd.h"

typedef struct {
    int epochs; /* trained at most (>= 1) */
    float lr;   /* Adam's learning rate; <= 0: cfg->student.lr */
} ccd_provisional_opts;

typedef struct {
    int n_users, n_items, dim;
    float
        *emb0; /* ((n_users + n_items) x dim) the layer-0 table: the next provisional starts here */
    float
        *final; /* ((n_users + n_items) x dim) propagated on block k's graph: what it scores with */
    ccd_block_metrics metrics;    /* the selected epoch's, on the block's valid and test splits */
    int epoch;                    /* the selected epoch */
    double first_loss, last_loss; /* summed BPR loss of the first and the last epoch trained */
    double seconds;
} ccd_provisional;

/* prev: a layer-0 table ((prev_users + prev_items) x cfg->student_dim, users first) or NULL (train
 * from scratch; prev_users and prev_items are then ignored). prev_users <= blk->n_users and
 * prev_items <= blk->n_items. stop may be NULL. Returns 0 with *out filled (free with
 * ccd_provisional_free), -1 with a message in err, or CCD_STOPPED (train.h). */
int ccd_student_provisional(const ccd_config *cfg, const ccd_block *blk, const float *prev,
                            int prev_users, int prev_items, const ccd_provisional_opts *o,
                            const atomic_int *stop, ccd_provisional *out, char *err, size_t errlen);
void ccd_provisional_free(ccd_provisional *p);

#endif
