/* block: what the stages of a CCD block step share. Internal to libccd (ccd.c and the stage_*.c
 * files); nothing outside models/ includes it.
 *
 * A block step (ccd.c) builds once what several stages read: block k's and k-1's graphs, the
 * scored proxies and the continual student, the previous ensemble's top lists (block_ctx). The
 * stages, each in its own file, are training runs of ccd_train_stage with their own hooks:
 *   stage_student.c   S_update(k): CL_k from the proxies, exclusion and replay (section 5)
 *   stage_teachers.c  the base teachers (2.5) and T_update(k) with LWC-KD and replay (section 6)
 *   stage_distill.c   E_k's top lists and evaluation in one pass (3), KD(k) (section 4)
 * The helpers here score tables, collect top lists into exclusion pairs, size a stage's batches
 * and expand tables to a grown id space. */
#ifndef CCD_BLOCK_H
#define CCD_BLOCK_H

#include <stddef.h>
#include <stdint.h>

#include "adam.h"
#include "ccd.h"
#include "rank.h"
#include "recmodel.h"
#include "replay.h"
#include "train.h"

typedef struct {
    ccd_log_fn fn;
    void *ctx;
} logger;

/* A model ready to score: final embeddings of a layer-0 table on a graph. */
typedef struct {
    float *final;  /* (n_users + n_items) x dim */
    float *layer1; /* (n_users + n_items) x dim, only when asked for */
    ccd_scorer scorer;
} scored_model;

/* Pairs collected for an exclusion list. */
typedef struct {
    int *u, *i;
    int64_t n, cap;
} pairs;

typedef struct {
    const ccd_replay_set *set;
    int batch;
    float lambda, anneal;
    ccd_rng rng;
    const atomic_int *stop; /* the block's stop flag, polled inside the pass */
} replay_ctx;

/* Everything one block step shares between its stages. */
typedef struct {
    const ccd_config *cfg;
    const ccd_block *blk;
    int k, nu, ni;         /* U_k, I_k */
    int pu, pi;            /* U_{k-1}, I_{k-1} */
    ccd_csr g_prev, g_cur; /* LightGCN graphs of R_{k-1} and R_k: what training propagates on */
    /* The graphs models are scored on (evaluation, ensembles, proxies, the served student): g_prev
     * and g_cur themselves, or with history_blocks != 1 h_prev and h_cur: g_prev and g_cur whose
     * empty user rows come from the graph of the state's history and of history_k (every user's
     * pairs of the last block they had any in, within history_blocks) */
    const ccd_csr *score_prev, *score_cur;
    ccd_csr h_prev, h_cur;
    ccd_csr history;     /* history_k, moved into the state at the commit (history_blocks != 1) */
    ccd_csr filter_both; /* Tr_{k-1} u Tr_k over (U_{k-1} x I_{k-1}): the F_S/F_P filter */
    int *e_prev_top;     /* (U_{k-1} x 40) E_{k-1}'s top-40, Tr_{k-1} filtered */
    float *proxy_s, *proxy_p;      /* S_{k-1}, P_{k-1} layer-0 tables */
    scored_model s_proxy, p_proxy; /* on score_prev */
    int *s_top, *p_top;            /* (U_{k-1} x 40) top-40 of F_S / F_P (filtered) */
    float *student;                /* CL_k */
    scored_model cl;               /* CL_k on score_cur */
    logger lg;
    const atomic_int *stop; /* hooks->stop, polled by every training loop */
    double growth;          /* ccd_batch_growth of the block: every batch is this much larger */
    ccd_block_report *rep;  /* its seconds_eval collects the stages' evaluation time */
} block_ctx;

/* Scorers of the teachers' final embeddings on a graph, and the ensemble over them. */
typedef struct {
    scored_model t[CCD_MAX_TEACHERS];
    ccd_scorer scorers[CCD_MAX_TEACHERS];
    ccd_ensemble ens;
    ccd_scorer scorer;
    int n;
} ensemble_model;

/* The caller's log callback, printf-style (a no-op without one). */
void block_say(const logger *lg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Final embeddings of a layer-0 table on a graph (NULL for MF) and their scorer; keep_layer1
 * also keeps A_hat E0. On failure sm is zeroed. */
int block_score(scored_model *sm, ccd_model_type type, const float *emb0, int n_users, int n_items,
                int dim, const ccd_csr *graph, int keep_layer1);
void block_scored_free(scored_model *sm);
/* Exclusion pairs: add rows x k top lists (-1 padded), or a scorer's top k with f1, f2 filtered. */
int block_pairs_add_topk(pairs *p, const int *topk, int rows, int k);
int block_add_topk(pairs *x, const ccd_scorer *s, const ccd_csr *f1, const ccd_csr *f2, int k);
void block_pairs_free(pairs *p);
/* A scorer's top k per user with f1, f2 filtered (users x k, -1 padded), or NULL. */
int *block_topk_of(const ccd_scorer *s, const ccd_csr *f1, const ccd_csr *f2, int k);
float *block_copy_floats(const float *src, size_t n);
/* The replay epoch hook of ccd_train_stage (ctx: a replay_ctx). */
double block_replay_epoch(void *vctx, ccd_recmodel *m, ccd_adam *adam, int epoch);
/* A stage's batch grown with the block (ccd_batch_growth), and its training options. */
int block_grown(int batch, double growth);
ccd_train_opts block_train_opts(block_ctx *b, const ccd_stage_opts *s, uint64_t seed,
                                ccd_stream_kind sampler);
/* The fast path: CL_k to the caller's student_ready before the teacher side, then its layer-0
 * table emb0 to student_table. */
int block_announce_student(const block_ctx *b, const ccd_block_hooks *hooks, const float *emb0,
                           int dim);
/* A layer-0 table grown from U_{k-1} x I_{k-1} to U_k x I_k (section 5.4), or NULL. */
float *block_expand(const block_ctx *b, const float *old, int dim);
/* The ensemble of the teachers' tables on a graph (section 3); its rows() fail once stop (may
 * be NULL) is raised. */
int block_ensemble_build(ensemble_model *e, const ccd_state *st, float *const *tables, int nu,
                         int ni, const ccd_csr *graph, const atomic_int *stop);
void block_ensemble_free(ensemble_model *e);

/* The stages. Each returns 0 or -1 (out of memory, or stopped: b->stop). */
int stage_student_update(block_ctx *b, ccd_state *st, int *best_epoch);
/* Only the proxies S_{k-1}, P_{k-1}, scored on R_{k-1}, and their top lists into b (part of the
 * student update; the teacher updates read them): the standalone teacher path's share of it. */
int stage_student_proxies(block_ctx *b, const ccd_state *st);
/* The base teachers on block 0 into st->teacher. */
int stage_base_teachers(block_ctx *b, ccd_state *st);
/* T_{m,k} for every teacher into out[m] (the state's teachers untouched). */
int stage_teacher_updates(block_ctx *b, const ccd_state *st, float **out);
/* T_{m,k} for teacher t alone into *out, with the same code as stage_teacher_updates. */
int stage_teacher_update(block_ctx *b, const ccd_state *st, int t, float **out);
int stage_ensemble_tops(const ccd_config *cfg, const ccd_scorer *ens, const ccd_block *blk,
                        const ccd_block *eval, int n_eval, ccd_block_metrics *metrics, int **items,
                        int **users);
int stage_distill(block_ctx *b, ccd_state *st, const ccd_scorer *ens, const int *e_top,
                  const int *e_users, float **out, int *best_epoch);

#endif
