/* ccd: the engine's block step (algorithm section 10) and the state's lifecycle. See ccd.h;
 * the default settings and the data-size rules are in defaults.c.
 *
 * A block step builds, once, what its stages share (block.h: the graphs of blocks k-1 and k, the
 * scored proxies and student, E_{k-1}'s top lists), runs the stages (stage_student.c,
 * stage_teachers.c, stage_distill.c) on new buffers, and commits them to the state only when
 * every stage has succeeded, so a failed or stopped block leaves the state as it was. Scores are
 * always produced in row chunks through scorers (scorer.h, rank.h): no users x items matrix is
 * ever held. */
#include "ccd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "block.h"
#include "dense.h"

void ccd_state_init(ccd_state *st)
{
    memset(st, 0, sizeof *st);
    st->block = -1;
}

void ccd_state_free(ccd_state *st)
{
    for (int m = 0; m < CCD_MAX_TEACHERS; m++)
        free(st->teacher[m]);
    free(st->distilled);
    free(st->student);
    free(st->proxy_s);
    free(st->proxy_p);
    ccd_csr_free(&st->train);
    ccd_csr_free(&st->history);
    free(st->active_users);
    free(st->active_items);
    free(st->ensemble_top);
    ccd_state_init(st);
}

void ccd_block_report_free(ccd_block_report *r)
{
    free(r->student);
    free(r->ensemble);
    free(r->distilled);
    memset(r, 0, sizeof *r);
}

/* What the state keeps of block k: R_k and the block's active users and items. Copied before
 * the commit (which may then not fail) and swapped in by block_data_commit. */
typedef struct {
    ccd_csr train;
    int *users, *items;
} block_data;

static void block_data_free(block_data *d)
{
    ccd_csr_free(&d->train);
    free(d->users);
    free(d->items);
    memset(d, 0, sizeof *d);
}

static int block_data_copy(block_data *d, const ccd_block *blk)
{
    memset(d, 0, sizeof *d);
    const ccd_csr *t = &blk->train;
    d->users = malloc((size_t)(blk->n_active_users > 0 ? blk->n_active_users : 1) * sizeof(int));
    d->items = malloc((size_t)(blk->n_active_items > 0 ? blk->n_active_items : 1) * sizeof(int));
    d->train = (ccd_csr){.n_rows = t->n_rows, .n_cols = t->n_cols, .nnz = t->nnz};
    d->train.indptr = malloc(((size_t)t->n_rows + 1) * sizeof(int64_t));
    d->train.indices = malloc((size_t)(t->nnz > 0 ? t->nnz : 1) * sizeof(int));
    if (!d->users || !d->items || !d->train.indptr || !d->train.indices) {
        block_data_free(d);
        return -1;
    }
    memcpy(d->train.indptr, t->indptr, ((size_t)t->n_rows + 1) * sizeof(int64_t));
    memcpy(d->train.indices, t->indices, (size_t)t->nnz * sizeof(int));
    memcpy(d->users, blk->users, (size_t)blk->n_active_users * sizeof(int));
    memcpy(d->items, blk->items, (size_t)blk->n_active_items * sizeof(int));
    return 0;
}

/* Cannot fail: d's buffers and the block's history_k (empty when history_blocks is 1) move
 * into the state. */
static void block_data_commit(ccd_state *st, block_data *d, ccd_csr *history, const ccd_block *blk)
{
    ccd_csr_free(&st->history);
    st->history = *history;
    memset(history, 0, sizeof *history);
    ccd_csr_free(&st->train);
    free(st->active_users);
    free(st->active_items);
    st->train = d->train;
    st->active_users = d->users;
    st->active_items = d->items;
    memset(d, 0, sizeof *d);
    st->n_active_users = blk->n_active_users;
    st->n_active_items = blk->n_active_items;
    st->n_users = blk->n_users;
    st->n_items = blk->n_items;
    st->block = blk->index;
}

static int report_init(ccd_block_report *rep, int k, int n_eval)
{
    memset(rep, 0, sizeof *rep);
    rep->block = k;
    rep->n_eval = n_eval;
    size_t n = (size_t)(n_eval > 0 ? n_eval : 1);
    rep->student = calloc(n, sizeof *rep->student);
    rep->ensemble = calloc(n, sizeof *rep->ensemble);
    rep->distilled = calloc(n, sizeof *rep->distilled);
    return rep->student && rep->ensemble && rep->distilled ? 0 : -1;
}

/* Bootstrap (section 10 step 0): base teachers, E_0, D_0; CL_0 = D_0. */
static int bootstrap(block_ctx *b, ccd_state *st, ccd_block_report *rep, const ccd_block *eval,
                     int n_eval)
{
    const ccd_config *cfg = b->cfg;
    st->n_teachers = cfg->n_teachers;
    st->student_dim = cfg->student_dim;
    for (int m = 0; m < cfg->n_teachers; m++)
        st->teacher_spec[m] = cfg->teachers[m];
    double t0 = ccd_now();
    if (stage_base_teachers(b, st) != 0)
        return -1;
    rep->seconds_teachers = ccd_now() - t0;
    t0 = ccd_now();
    ensemble_model e;
    if (block_ensemble_build(&e, st, st->teacher, b->nu, b->ni, b->score_cur, b->stop) != 0) {
        block_ensemble_free(&e);
        return -1;
    }
    float *d0 = NULL;
    int *e_top = NULL, *e_users = NULL;
    int rc =
        stage_ensemble_tops(cfg, &e.scorer, b->blk, eval, n_eval, rep->ensemble, &e_top, &e_users);
    rep->seconds_ensemble = ccd_now() - t0;
    if (rc == 0) /* marks the phase for progress and shutdown measurements */
        block_say(&b->lg, "ensemble E_0 ranked in %.1f s; distilling D_0", rep->seconds_ensemble);
    t0 = ccd_now();
    if (rc == 0)
        rc = stage_distill(b, st, &e.scorer,
                           cfg->kd_interesting == cfg->exclusion_topk ? e_top : NULL, e_users, &d0,
                           &rep->distill_epoch);
    free(e_users);
    free(st->ensemble_top);
    st->ensemble_top = e_top;
    st->ensemble_top_k = e_top ? cfg->exclusion_topk : 0;
    rep->seconds_distill = ccd_now() - t0;
    block_ensemble_free(&e);
    if (rc != 0)
        return -1;
    st->distilled = d0;
    st->student = block_copy_floats(d0, (size_t)(b->nu + b->ni) * st->student_dim);
    return st->student ? 0 : -1;
}

#define ANNOUNCE_FAILED "the caller's student_ready failed (or scoring CL_k ran out of memory)"

/* What a block step produces before it commits: the state's after a successful commit. */
typedef struct {
    float *teachers[CCD_MAX_TEACHERS]; /* T_{m,k} */
    float *dk;                         /* D_k (NULL when not distilling) */
    int *e_top;                        /* E_k's top lists, Tr_k filtered */
    block_data kept;                   /* R_k and the active ids */
} block_out;

static void block_out_free(block_out *o)
{
    for (int m = 0; m < CCD_MAX_TEACHERS; m++)
        free(o->teachers[m]);
    free(o->dk);
    free(o->e_top);
    block_data_free(&o->kept);
    memset(o, 0, sizeof *o);
}

static void block_ctx_init(block_ctx *b, const ccd_state *st, const ccd_config *cfg,
                           const ccd_block *blk, const ccd_block_hooks *hooks,
                           ccd_block_report *rep)
{
    memset(b, 0, sizeof *b);
    b->cfg = cfg;
    b->blk = blk;
    b->k = blk->index;
    b->nu = blk->n_users;
    b->ni = blk->n_items;
    b->pu = st->n_users;
    b->pi = st->n_items;
    b->lg = (logger){hooks ? hooks->log : NULL, hooks ? hooks->ctx : NULL};
    b->stop = hooks ? hooks->stop : NULL;
    b->growth = ccd_batch_growth(cfg, blk->train.nnz, (int64_t)blk->n_users + blk->n_items);
    b->rep = rep;
}

static void block_ctx_free(block_ctx *b, const ccd_state *st)
{
    ccd_csr_free(&b->g_prev);
    ccd_csr_free(&b->g_cur);
    ccd_csr_free(&b->h_prev);
    ccd_csr_free(&b->h_cur);
    ccd_csr_free(&b->history);
    ccd_csr_free(&b->filter_both);
    if (b->e_prev_top != st->ensemble_top)
        free(b->e_prev_top);
    free(b->proxy_s);
    free(b->proxy_p);
    block_scored_free(&b->s_proxy);
    block_scored_free(&b->p_proxy);
    free(b->s_top);
    free(b->p_top);
    free(b->student);
    block_scored_free(&b->cl);
}

/* history_k (block.h): every user's pairs of block k, or, for a user with none, the pairs of the
 * last block they had any in (the state's history, or R_{k-1} from a state that kept none) when
 * that block is one of the history_blocks - 1 before k (any of them for 0). A row's pairs all
 * carry the block they came from. */
static int history_next(ccd_csr *out, const ccd_state *st, const ccd_block *blk, int keep)
{
    const ccd_csr *old = st->history.indptr ? &st->history : st->block >= 0 ? &st->train : NULL;
    const ccd_csr *cur = &blk->train;
    const int k = blk->index, nu = blk->n_users;
    if (ccd_csr_alloc(out, nu, blk->n_items, cur->nnz + (old ? old->nnz : 0), true) != 0)
        return -1;
    int64_t w = 0;
    for (int u = 0; u < nu; u++) {
        out->indptr[u] = w;
        const ccd_csr *src = cur;
        float last = (float)k;
        if (ccd_csr_row_len(cur, u) == 0) {
            if (!old || u >= old->n_rows || ccd_csr_row_len(old, u) == 0)
                continue;
            src = old;
            last = old->values ? old->values[old->indptr[u]] : (float)st->block;
            if (keep != 0 && last <= (float)(k - keep))
                continue;
        }
        for (int64_t e = src->indptr[u]; e < src->indptr[u + 1]; e++)
            out->indices[w] = src->indices[e], out->values[w++] = last;
    }
    out->indptr[nu] = w;
    out->nnz = w;
    return 0;
}

/* The graph models are scored on (block.h): the training graph g whose empty user rows (the
 * users with no pair in the block) take their rows of the history's graph, so those users
 * propagate over their last block's items (normalised by that graph's degrees) while every other
 * row, the items' included, stays the block's: the active users' scores are the reference's. */
static int score_graph(ccd_csr *out, const ccd_csr *g, const ccd_csr *history, int nu, int ni)
{
    ccd_csr h;
    if (ccd_graph_build(&h, history, nu, ni) != 0)
        return -1;
    int rc = ccd_graph_fill_rows(out, g, &h, nu);
    ccd_csr_free(&h);
    return rc;
}

/* R_k's graph for training, and the graph models are scored on (block.h). */
static int block_graphs(block_ctx *b, const ccd_state *st)
{
    if (ccd_graph_build(&b->g_cur, &b->blk->train, b->nu, b->ni) != 0)
        return -1;
    b->score_cur = &b->g_cur;
    if (b->cfg->history_blocks == 1)
        return 0;
    if (history_next(&b->history, st, b->blk, b->cfg->history_blocks) != 0)
        return -1;
    if (b->history.nnz == b->blk->train.nnz) /* nothing older kept: the same graph */
        return 0;
    b->score_cur = &b->h_cur;
    return score_graph(&b->h_cur, &b->g_cur, &b->history, b->nu, b->ni);
}

/* Tr_k restricted to the old id space, merged with Tr_{k-1}: the F_S / F_P filter. */
static int filter_both(ccd_csr *out, const ccd_state *st, const ccd_block *blk, int pu, int pi)
{
    int64_t n = st->train.nnz + blk->train.nnz, w = 0;
    int *u = malloc((size_t)(n > 0 ? n : 1) * sizeof *u),
        *i = malloc((size_t)(n > 0 ? n : 1) * sizeof *i);
    int rc = -1;
    if (u && i) {
        const ccd_csr *sets[2] = {&st->train, &blk->train};
        for (int s = 0; s < 2; s++)
            for (int r = 0; r < sets[s]->n_rows && r < pu; r++)
                for (int64_t e = sets[s]->indptr[r]; e < sets[s]->indptr[r + 1]; e++)
                    if (sets[s]->indices[e] < pi)
                        u[w] = r, i[w++] = sets[s]->indices[e];
        rc = ccd_csr_from_pairs(out, pu, pi, u, i, w);
    }
    free(u), free(i);
    return rc;
}

/* What the stages of block k >= 1 share: R_{k-1}'s graph, the F_S filter, E_{k-1}'s top lists
 * (kept in the state from block k-1, or recomputed when the list size changed). */
static int block_prepare(block_ctx *b, const ccd_state *st)
{
    if (ccd_graph_build(&b->g_prev, &st->train, b->pu, b->pi) != 0 ||
        filter_both(&b->filter_both, st, b->blk, b->pu, b->pi) != 0)
        return -1;
    b->score_prev = &b->g_prev;
    if (b->cfg->history_blocks != 1 && st->history.indptr && st->history.nnz != st->train.nnz) {
        if (score_graph(&b->h_prev, &b->g_prev, &st->history, b->pu, b->pi) != 0)
            return -1;
        b->score_prev = &b->h_prev;
    }
    if (st->ensemble_top && st->ensemble_top_k == b->cfg->exclusion_topk) {
        b->e_prev_top = st->ensemble_top; /* still the state's */
        return 0;
    }
    double t0 = ccd_now();
    ensemble_model e_prev;
    int rc = block_ensemble_build(&e_prev, st, st->teacher, b->pu, b->pi, b->score_prev, b->stop);
    if (rc == 0 &&
        !(b->e_prev_top = block_topk_of(&e_prev.scorer, &st->train, NULL, b->cfg->exclusion_topk)))
        rc = -1;
    block_ensemble_free(&e_prev);
    b->rep->seconds_ensemble += ccd_now() - t0;
    return rc;
}

/* E_k from the new teachers, its top lists and evaluation, then D_k (when distilling). */
static int block_ensemble_and_distill(block_ctx *b, ccd_state *st, const ccd_block *eval,
                                      int n_eval, block_out *out)
{
    const ccd_config *cfg = b->cfg;
    double t0 = ccd_now();
    ensemble_model e;
    int *e_users = NULL;
    int rc = block_ensemble_build(&e, st, out->teachers, b->nu, b->ni, b->score_cur, b->stop);
    if (rc == 0)
        rc = stage_ensemble_tops(cfg, &e.scorer, b->blk, eval, n_eval, b->rep->ensemble,
                                 &out->e_top, &e_users);
    b->rep->seconds_ensemble += ccd_now() - t0;
    t0 = ccd_now();
    if (rc == 0 && cfg->distill)
        rc = stage_distill(b, st, &e.scorer,
                           cfg->kd_interesting == cfg->exclusion_topk ? out->e_top : NULL, e_users,
                           &out->dk, &b->rep->distill_epoch);
    b->rep->seconds_distill = ccd_now() - t0;
    free(e_users);
    block_ensemble_free(&e);
    return rc;
}

/* CL_k's and D_k's figures on the blocks so far. */
static int block_evaluate(block_ctx *b, const ccd_state *st, const ccd_block *eval, int n_eval,
                          const block_out *out)
{
    if (n_eval <= 0)
        return 0;
    if (ccd_evaluate_scorer(&b->cl.scorer, eval, n_eval, b->rep->student) != 0)
        return -1;
    if (!out->dk)
        return 0;
    scored_model dm;
    if (block_score(&dm, CCD_MODEL_LIGHTGCN, out->dk, b->nu, b->ni, st->student_dim, b->score_cur,
                    0) != 0)
        return -1;
    int rc = ccd_evaluate_scorer(&dm.scorer, eval, n_eval, b->rep->distilled);
    block_scored_free(&dm);
    return rc;
}

/* The new state takes everything the block produced. Cannot fail: all of it is allocated. */
static void block_commit(ccd_state *st, block_ctx *b, block_out *out)
{
    if (b->e_prev_top == st->ensemble_top)
        b->e_prev_top = NULL; /* freed just below, as the state's */
    free(st->ensemble_top);
    st->ensemble_top = out->e_top;
    st->ensemble_top_k = b->cfg->exclusion_topk;
    out->e_top = NULL;
    for (int m = 0; m < st->n_teachers; m++) {
        free(st->teacher[m]);
        st->teacher[m] = out->teachers[m];
        out->teachers[m] = NULL;
    }
    /* A block that does not distil (ccd.distill = false, after block 0) leaves no D_k: the old
     * D_{k-1} is sized for the previous id space and nothing reads it again, so it goes rather
     * than stay behind as a table the state's sizes no longer describe. */
    free(st->distilled);
    st->distilled = out->dk;
    out->dk = NULL;
    free(st->student);
    st->student = b->student;
    b->student = NULL;
    if (b->proxy_s) {
        free(st->proxy_s);
        free(st->proxy_p);
        st->proxy_s = b->proxy_s;
        st->proxy_p = b->proxy_p;
        b->proxy_s = b->proxy_p = NULL;
        st->proxy_users = b->pu;
        st->proxy_items = b->pi;
    }
    block_data_commit(st, &out->kept, &b->history, b->blk);
}

/* T_update(k) for every teacher into out->teachers: in-process, or through the caller's
 * teachers hook (other processes running ccd_teacher_update), whose tables the block takes
 * over; kept teachers (no update_teachers) only grow to the new id space. Returns 0, -1 (*why)
 * or CCD_STOPPED (the hook's). */
static int block_teachers(block_ctx *b, const ccd_state *st, const ccd_block_hooks *hooks,
                          block_out *out, const char **why)
{
    *why = "the teacher updates ran out of memory";
    if (!b->cfg->update_teachers) {
        for (int m = 0; m < st->n_teachers; m++)
            if (!(out->teachers[m] = block_expand(b, st->teacher[m], st->teacher_spec[m].dim)))
                return -1;
        return 0;
    }
    if (!hooks || !hooks->teachers)
        return stage_teacher_updates(b, st, out->teachers);
    ccd_teacher_inputs in = {.prev = st, .cfg = b->cfg, .blk = b->blk, .student = b->student};
    *why = "the caller's teachers hook failed";
    int rc = hooks->teachers(hooks->ctx, &in, out->teachers);
    if (rc != 0)
        return rc == CCD_STOPPED ? CCD_STOPPED : -1;
    *why = "the caller's teachers hook left a teacher's table out";
    for (int m = 0; m < st->n_teachers; m++)
        if (!out->teachers[m])
            return -1;
    return 0;
}

/* Block k >= 1 (section 10): S_update, T_update, Ensemble, KD, then the commit. On failure
 * *why says what failed and st is untouched. Returns 0, -1 or CCD_STOPPED. */
static int block_continue(block_ctx *b, ccd_state *st, const ccd_block_hooks *hooks,
                          const ccd_block *eval, int n_eval, block_out *out, const char **why)
{
    ccd_block_report *rep = b->rep;
    *why = "out of memory preparing what the stages share";
    if (block_prepare(b, st) != 0)
        return -1;
    *why = "the student update ran out of memory";
    double t0 = ccd_now();
    if (stage_student_update(b, st, &rep->student_epoch) != 0)
        return -1;
    rep->seconds_student = ccd_now() - t0;
    block_say(&b->lg, "block %d: student updated in %.1f s (epoch %d)", b->k, rep->seconds_student,
              rep->student_epoch);
    *why = ANNOUNCE_FAILED;
    if (block_announce_student(b, hooks, b->student, st->student_dim) != 0)
        return -1;
    t0 = ccd_now();
    int rc = block_teachers(b, st, hooks, out, why);
    if (rc != 0)
        return rc;
    rep->seconds_teachers = ccd_now() - t0;
    *why = "the ensemble or the distillation ran out of memory";
    if (block_ensemble_and_distill(b, st, eval, n_eval, out) != 0)
        return -1;
    *why = "the evaluation ran out of memory";
    if (block_evaluate(b, st, eval, n_eval, out) != 0)
        return -1;
    *why = "out of memory before the commit";
    if (block_data_copy(&out->kept, b->blk) != 0)
        return -1;
    block_commit(st, b, out);
    return 0;
}

/* Block 0 (section 10 step 0) on a fresh state: on failure the state is fresh again. */
static int block_first(block_ctx *b, ccd_state *st, const ccd_block_hooks *hooks,
                       const ccd_block *eval, int n_eval, const char **why)
{
    block_data kept = {0};
    int rc = -1;
    *why = "the bootstrap ran out of memory";
    if (bootstrap(b, st, b->rep, eval, n_eval) != 0)
        goto fail;
    *why = ANNOUNCE_FAILED;
    if (block_score(&b->cl, CCD_MODEL_LIGHTGCN, st->student, b->nu, b->ni, st->student_dim,
                    b->score_cur, 0) != 0 ||
        block_announce_student(b, hooks, st->student, st->student_dim) != 0)
        goto fail;
    *why = "the evaluation ran out of memory";
    if (n_eval > 0 && ccd_evaluate_scorer(&b->cl.scorer, eval, n_eval, b->rep->student) != 0)
        goto fail;
    *why = "out of memory before the commit";
    if (block_data_copy(&kept, b->blk) != 0)
        goto fail;
    block_data_commit(st, &kept, &b->history, b->blk);
    memcpy(b->rep->distilled, b->rep->student, (size_t)n_eval * sizeof *b->rep->distilled);
    return 0;
fail:
    ccd_state_free(st); /* leave it as before the block */
    ccd_state_init(st);
    return rc;
}

int ccd_block_step(ccd_state *st, const ccd_config *cfg, const ccd_block *blk,
                   const ccd_block *eval, int n_eval, ccd_block_report *rep,
                   const ccd_block_hooks *hooks, char *err, size_t errlen)
{
    double start = ccd_now();
    if (blk->index != st->block + 1) {
        snprintf(err, errlen, "block %d given after block %d", blk->index, st->block);
        return -1;
    }
    if (st->block >= 0 && (blk->n_users < st->n_users || blk->n_items < st->n_items)) {
        snprintf(err, errlen, "block %d shrinks the id space", blk->index);
        return -1;
    }
    if (report_init(rep, blk->index, n_eval) != 0) {
        snprintf(err, errlen, "block %d: out of memory for its report", blk->index);
        return -1;
    }
    block_ctx b;
    block_ctx_init(&b, st, cfg, blk, hooks, rep);
    block_out out = {0};
    const char *why = "out of memory building its graph";
    int rc = block_graphs(&b, st);
    if (rc == 0)
        rc = b.k == 0 ? block_first(&b, st, hooks, eval, n_eval, &why)
                      : block_continue(&b, st, hooks, eval, n_eval, &out, &why);
    if (rc == CCD_STOPPED || (rc != 0 && ccd_stop_raised(b.stop))) {
        rc = CCD_STOPPED;
        snprintf(err, errlen, "block %d: stopped on request", b.k);
    } else if (rc != 0) {
        snprintf(err, errlen, "block %d: %s", b.k, why);
    }
    rep->seconds_total = ccd_now() - start;
    block_out_free(&out);
    block_ctx_free(&b, st);
    return rc;
}

/* What ccd_block_step checks of a block against the state, plus the teacher asked for. */
static int teacher_inputs_check(const ccd_teacher_inputs *in, int m, char *err, size_t errlen)
{
    if (!in || !in->prev || !in->cfg || !in->blk || !in->student) {
        snprintf(err, errlen, "teacher update: inputs missing");
        return -1;
    }
    const ccd_state *st = in->prev;
    const ccd_block *blk = in->blk;
    if (st->block < 0 || blk->index != st->block + 1) {
        snprintf(err, errlen, "teacher update: block %d given after block %d", blk->index,
                 st->block);
        return -1;
    }
    if (blk->n_users < st->n_users || blk->n_items < st->n_items) {
        snprintf(err, errlen, "teacher update: block %d shrinks the id space", blk->index);
        return -1;
    }
    if (m < 0 || m >= st->n_teachers || !st->teacher[m]) {
        snprintf(err, errlen, "teacher update: no teacher %d (the state has %d)", m,
                 st->n_teachers);
        return -1;
    }
    if (!in->cfg->update_teachers) {
        snprintf(err, errlen, "teacher update: the config keeps its teachers (update_teachers)");
        return -1;
    }
    return 0;
}

/* What the teacher updates of block k read, rebuilt from (prev, block, CL_k) by the block step's
 * own functions: R_k's graph, block_prepare's share, the proxies (the student update's share,
 * without training the student) and CL_k scored on R_k. None of it draws random numbers. */
static int teacher_side_prepare(block_ctx *b, const ccd_teacher_inputs *in)
{
    const ccd_state *st = in->prev;
    if (block_graphs(b, st) != 0 || block_prepare(b, st) != 0 || stage_student_proxies(b, st) != 0)
        return -1;
    return block_score(&b->cl, CCD_MODEL_LIGHTGCN, in->student, b->nu, b->ni, st->student_dim,
                       b->score_cur, 0);
}

int ccd_teacher_update(const ccd_teacher_inputs *in, int m, const atomic_int *stop, float **out,
                       double *seconds, char *err, size_t errlen)
{
    double start = ccd_now();
    *out = NULL;
    if (seconds)
        *seconds = 0.0;
    if (teacher_inputs_check(in, m, err, errlen) != 0)
        return -1;
    ccd_block_report rep; /* only its timings are written (block_prepare, the training's eval) */
    memset(&rep, 0, sizeof rep);
    ccd_block_hooks hooks = {.stop = stop};
    block_ctx b;
    block_ctx_init(&b, in->prev, in->cfg, in->blk, &hooks, &rep);
    int rc = teacher_side_prepare(&b, in);
    if (rc == 0)
        rc = stage_teacher_update(&b, in->prev, m, out);
    if (rc != 0) {
        free(*out);
        *out = NULL;
        if (ccd_stop_raised(stop)) {
            rc = CCD_STOPPED;
            snprintf(err, errlen, "block %d, teacher %d: stopped on request", b.k, m);
        } else {
            rc = -1;
            snprintf(err, errlen, "block %d, teacher %d: out of memory", b.k, m);
        }
    }
    block_ctx_free(&b, in->prev);
    if (seconds)
        *seconds = ccd_now() - start;
    return rc;
}
