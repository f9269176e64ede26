/* ccd: Continual Collaborative Distillation, one block at a time (algorithm section 10).
 *
 * The engine's state after block k holds the teachers T_{m,k}, the distilled student D_k, the
 * continual student CL_k (the one to serve), the stability/plasticity proxies S_{k-1}, P_{k-1},
 * and block k's train data (the next block needs it as "block k-1": graphs, filters, LWC-KD).
 * The ensemble E_k is not stored: it is a scorer over the teachers, recomputed on demand.
 *
 *   ccd_config_yelp(&cfg);  (defaults.c; then any changes)
 *   ccd_state_init(&st);
 *   for each block k: ccd_block_step(&st, &cfg, block_k, eval_blocks, n_eval, &report, hooks,
 *                                    err, errlen);
 *
 * Block 0 bootstraps (base teachers, E_0, D_0; CL_0 = D_0). Every later block runs the student
 * update (CL_k, from D_{k-1}), the teacher updates (T_{m,k}), the ensemble (E_k) and the
 * distillation (D_k, for block k+1). Model selection uses block k's valid split only.
 * Everything is deterministic for a given seed and thread count; everything but the distillation
 * (D_k) for a given seed on any thread count (SGEMMs through ccd_sgemm). */
#ifndef CCD_CCD_H
#define CCD_CCD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "dataset.h"
#include "eval.h"
#include "recmodel.h"
#include "sparse.h"
#include "train.h" /* ccd_stage_opts */

#define CCD_MAX_TEACHERS 16
#define CCD_MAX_SCHEDULE 16 /* per-block settings for blocks 1..16; later blocks reuse the last */

typedef struct {
    ccd_model_type type;
    int dim;
    uint64_t seed;
} ccd_teacher_spec;

/* Per-block replay settings of the student update (section 5.6) and teacher update (6.7). */
typedef struct {
    int ab;       /* candidates: the proxy's top-ab */
    int ss, ps;   /* draws per user from S and P */
    float sw, pw; /* EMA weights of the S and P proxies */
} ccd_student_block_opts;

typedef struct {
    int ab;
    int ss, ps, cs; /* draws per user from S, P and the continual student */
} ccd_teacher_block_opts;

typedef struct {
    int n_teachers;
    ccd_teacher_spec teachers[CCD_MAX_TEACHERS];
    int student_dim; /* d_S: 8 on Yelp */
    uint64_t seed;   /* student and sampling seed */

    ccd_stage_opts base;        /* base teachers on block 0 */
    ccd_stage_opts kd;          /* distillation */
    ccd_stage_opts student;     /* continual student update */
    ccd_stage_opts teacher;     /* teacher update */
    int64_t batch_growth_pairs; /* blocks with more train pairs grow every batch in proportion
                                   (ccd_batch_growth); 0: fixed batches, as the reference */
    int64_t batch_growth_nodes; /* and so do blocks whose id space (users + items) is larger */
    int history_blocks;         /* the graph a model is scored on (evaluation, ensembles, proxies,
                                   the served student): block k's, where a user with no pair in
                                   block k propagates over the pairs of the last block they had any
                                   in, when it is one of the last history_blocks blocks up to k (0:
                                   however old); 1: block k's alone, the reference's. Training
                                   always propagates on block k's graph. */
    int eval_users;             /* model selection and metrics on about this many users when a
                                   block has more with held-out items (ccd_block_sample_eval,
                                   applied by the caller that owns the blocks); 0: every user */

    /* distillation (section 4) */
    int kd_interesting;         /* 40 */
    int kd_uninteresting_items; /* nui, or CCD_AUTO: ccd_rule_unint_items (10000 on Yelp) */
    int kd_uninteresting_users; /* nuu, or CCD_AUTO: ccd_rule_unint_users (11500 on Yelp) */
    float kd_lambda;            /* 0.01 */
    bool kd_train_items_first;  /* reproduce the reference's NaN-first interesting lists (9.3) */
    bool kd_warm_start;        /* D_k starts from CL_k instead of a fresh random student (k >= 1) */
    bool kd_absent_users;      /* distillation also ranks the users with no train pair in block k
                                  (off: the reference's, only the batches' users) */
    bool kd_hold_absent_users; /* a warm-started D_k keeps CL_k's rows of the users with no train
                                  pair in block k (off: the reference's, they move with E_k's
                                  item-side ranking and Adam's weight decay) */
    int exclusion_topk;        /* 40: top lists put in the negative-exclusion lists */

    /* continual student update (section 5) */
    int n_student_blocks;
    ccd_student_block_opts student_blocks[CCD_MAX_SCHEDULE]; /* [k-1] for block k */
    float student_replay_lambda;                             /* 0.5 */
    float student_anneal;                                    /* a_T: 10 */
    float replay_eps;                                        /* 1e-4 */
    int init_topk;                                           /* 20 */

    /* teacher update (section 6) */
    int n_teacher_blocks;
    ccd_teacher_block_opts teacher_blocks[CCD_MAX_SCHEDULE];
    float teacher_replay_lambda; /* 0.5 */
    float teacher_anneal;        /* T: 5 */
    float lwc_tau;               /* 5 */
    float lwc_lambda;            /* 0.01 */
    double lwc_graph_degree;     /* 10: average degree of the UU / II graphs */
    int lwc_max_neighbours;      /* LWC-KD's softmax samples this many neighbours when there are
                                    more (ccd_lwc_term_sampled); 0: always all, as the reference */

    /* switches: the ablations */
    bool replay;                  /* replay in the student and teacher updates */
    bool use_s, use_p;            /* the S and P proxies */
    bool use_cl;                  /* the continual student in the teachers' exclusion + replay */
    bool update_teachers;         /* false: teachers stay as bootstrapped */
    bool distill;                 /* false: no D_k; the student continues from CL_{k-1} */
    bool student_continues;       /* CL_k starts from CL_{k-1} (D_{k-1} still feeds the proxies,
                                     the exclusion and the replay labels); false: from D_{k-1},
                                     as the reference does */
    bool parallel_teachers;       /* train the teachers side by side, one thread each, */
    int parallel_teachers_max_mb; /* when their training buffers fit in this (0: always) */
    bool collaborative;           /* false: teachers updated without student knowledge */
} ccd_config;

/* A sample size or count that follows the data (the config's "auto"). */
#define CCD_AUTO (-1)

/* Sizes that follow the data. The reference's absolute numbers are Yelp's; these rules give
 * them on Yelp and keep the cost per row fixed on larger catalogues:
 *   nui = 92.5% of the block's items, at most 10,000 (Yelp: 10,000 on every block);
 *   nuu = 94% of the block's users, at most 11,500 (Yelp: 11,500 on every block);
 *   batch growth = the larger of train pairs / batch_growth_pairs, (users + items) /
 *   batch_growth_nodes and 1: every stage's batch, the replay batches and the item-pass chunks
 *   grow by it, so an epoch takes at most the steps it takes at the reference size (each step
 *   costs the whole model) and its cost grows linearly with the data. */
int ccd_rule_unint_items(int n_items);
int ccd_rule_unint_users(int n_users);
double ccd_batch_growth(const ccd_config *c, int64_t train_pairs, int64_t nodes);

/* The engine's Yelp settings (run.sh; sections 2.5, 5.6, 6.7): five LightGCN teachers,
 * d = 128, seeds 0..4; LightGCN student d = 8. Student and teacher updates 6 epochs (the
 * reference trains 10 but can only select among its first 6; teachers stop after 2
 * evaluations without progress), distillation up to 20 with patience 3 (9.8), base teachers
 * up to 100 with patience 10. configs/yelp-reference.ini holds the reference's own. */
void ccd_config_yelp(ccd_config *c);
/* Fine-tune only: no replay, no proxies, no teacher side. */
void ccd_config_finetune(ccd_config *c);

typedef struct {
    int block;            /* k of the last block processed; -1 before the bootstrap */
    int n_users, n_items; /* U_k, I_k */
    int n_teachers;
    ccd_teacher_spec teacher_spec[CCD_MAX_TEACHERS];
    float *teacher[CCD_MAX_TEACHERS]; /* T_{m,k} layer-0 tables ((n_users + n_items) x dim_m) */
    int student_dim;
    float *distilled;             /* D_k   ((n_users + n_items) x student_dim) */
    float *student;               /* CL_k  ((n_users + n_items) x student_dim), served */
    int proxy_users, proxy_items; /* U_{k-1}, I_{k-1} (0 before block 1) */
    float *proxy_s, *proxy_p;     /* S_{k-1}, P_{k-1} ((proxy_users + proxy_items) x dim) */
    /* block k's data that block k+1 reads as "previous" */
    ccd_csr train;     /* R_k (n_users x n_items), deduplicated */
    int *active_users; /* sorted train keys of block k (users of the raw block) */
    int n_active_users;
    int *active_items; /* sorted items with a train pair in block k */
    int n_active_items;
    /* The train pairs models are scored on (history_blocks != 1): (n_users x n_items), every
     * user's pairs of the last block they had any in, each pair's value that block; empty (no
     * indptr) when history_blocks is 1 and the scoring graph is R_k's */
    ccd_csr history;
    /* E_k's top lists with Tr_k filtered ((n_users x ensemble_top_k)): the next block's
     * negative-exclusion lists start from them, so they are kept instead of recomputed */
    int *ensemble_top;
    int ensemble_top_k;
} ccd_state;

/* Metrics of the three models after one block, on every evaluated block j (test and valid). */
typedef struct {
    int block;
    int n_eval;                   /* blocks evaluated: 0..n_eval-1 */
    ccd_block_metrics *student;   /* CL_k, (n_eval) */
    ccd_block_metrics *ensemble;  /* E_k */
    ccd_block_metrics *distilled; /* D_k */
    double seconds_student, seconds_teachers, seconds_ensemble, seconds_distill, seconds_total;
    double seconds_eval; /* of those, evaluation inside the training stages (model selection;
                            summed over teachers trained side by side) */
    int student_epoch, distill_epoch; /* selected epochs */
} ccd_block_report;

void ccd_state_init(ccd_state *st);
void ccd_state_free(ccd_state *st);
void ccd_block_report_free(ccd_block_report *r);

/* Optional progress messages (stage names and timings). */
typedef void (*ccd_log_fn)(void *ctx, const char *msg);

/* Inputs of block k's teacher updates, as the block step hands them out (k >= 1): everything a
 * teacher update reads is a function of these (see ccd_teacher_update). */
typedef struct {
    const ccd_state *prev; /* the state after block k-1 */
    const ccd_config *cfg;
    const ccd_block *blk; /* block k */
    const float *student; /* CL_k layer-0 table ((blk->n_users + blk->n_items) x
                             prev->student_dim) */
} ccd_teacher_inputs;

/* What a block step tells its caller while it runs (every field may be NULL):
 *   log            progress messages;
 *   student_ready  the fast path: called as soon as CL_k exists, before the teacher side (at
 *                  block 0, after the bootstrap). final is CL_k's propagated embeddings, the ones
 *                  it scores with ((n_users + n_items) x dim, users first), valid only during
 *                  the call; metrics are CL_k's on the block's valid and test splits. A
 *                  nonzero return stops the step with an error;
 *   teachers       T_update(k) done elsewhere (block k >= 1, with cfg->update_teachers; block 0's
 *                  base teachers and the expansion of kept teachers stay in-process): called
 *                  instead of training the teachers, once CL_k exists (after student_ready). It
 *                  must fill out[m] for m < in->prev->n_teachers with malloc'd tables
 *                  ((n_users + n_items) x teacher_spec[m].dim) that are exactly what
 *                  ccd_teacher_update(in, m, ...) returns. The engine takes ownership of every
 *                  non-NULL out[m], on failure too. in is valid only during the call. Returns 0,
 *                  -1 (the step fails) or CCD_STOPPED (the step returns CCD_STOPPED);
 *   stop           polled before every mini-batch and per row chunk of the ensemble and the
 *                  distillation's item pass (seen within a fraction of a second on Yelp, see
 *                  train.h): once nonzero the step returns CCD_STOPPED and the state is
 *                  left as it was before the block. Polling changes no result. */
typedef struct {
    ccd_log_fn log;
    int (*student_ready)(void *ctx, const float *final, int n_users, int n_items, int dim,
                         const ccd_block_metrics *metrics);
    void (*student_table)(void *ctx, const float *emb0, int n_users, int n_items, int dim);
    int (*teachers)(void *ctx, const ccd_teacher_inputs *in, float **out);
    const atomic_int *stop;
    void *ctx;
} ccd_block_hooks;

/* Process block blk (its index must be st->block + 1). eval/n_eval: the blocks to report on
 * (usually 0..k); n_eval may be 0. hooks may be NULL. Returns 0; -1 with a message in err; or
 * CCD_STOPPED (train.h) when hooks->stop was raised. On any failure st is unchanged. */
int ccd_block_step(ccd_state *st, const ccd_config *cfg, const ccd_block *blk,
                   const ccd_block *eval, int n_eval, ccd_block_report *rep,
                   const ccd_block_hooks *hooks, char *err, size_t errlen);

/* Teacher m's update T_update(k) alone, without the rest of the block: rebuilds what it reads
 * from the inputs (the graphs of R_{k-1} and R_k, the F_S filter, E_{k-1}'s top lists, the
 * proxies S_{k-1} and P_{k-1} and their top lists, CL_k's scores, the LWC-KD graphs) with the
 * block step's own code, then trains teacher m. *out: a malloc'd table
 * ((blk->n_users + blk->n_items) x prev->teacher_spec[m].dim), byte for byte the T_{m,k} that
 * ccd_block_step produces in-process, whatever the thread count (OpenMP and OpenBLAS) here and
 * there and whether the teachers trained side by side (cfg->parallel_teachers) or not; the
 * library must be the same build (compiler, flags, OpenBLAS kernel) on both sides, and the
 * inputs the same bytes: the whole state (ccd_state_serialize keeps all of it), the whole
 * config, and the whole block as the step saw it (train, valid and test, whose valid split
 * selects the epoch, after any ccd_block_sample_eval). Several calls may run at once in threads
 * of one process (not alongside ccd_set_threads). stop (may be NULL) is polled as in the block
 * step. *seconds (may be NULL): the call's wall time. Memory: about one teacher's training
 * buffers plus the block's shared inputs (two graphs, the proxies, the LWC-KD graphs); no other
 * teacher is touched. Returns 0; -1 with a message in err; or CCD_STOPPED; *out is NULL and
 * nothing stays allocated unless it returns 0. */
int ccd_teacher_update(const ccd_teacher_inputs *in, int m, const atomic_int *stop, float **out,
                       double *seconds, char *err, size_t errlen);

/* EMA merge of a proxy (section 5.2), exposed for tests: rows present in the old proxy
 * ((old_users + old_items) x dim) become w * old + (1 - w) * d; the others are copied from d
 * ((n_users + n_items) x dim). old may be NULL (a copy of d). Returns a new table or NULL. */
float *ccd_proxy_merge(const float *old, int old_users, int old_items, const float *d, int n_users,
                       int n_items, int dim, float w);

#endif
