/* fastpath: the provisional-student thread; see fastpath.h for the design.
 *
 * Two lists under f->mu: the FIFO of jobs (one per closed window submitted) and the newest student
 * known per model (fp_student: a layer-0 table with its block, id-space sizes and kind). The
 * thread copies the newest student out under the lock and trains without it, so the trainer's
 * hand-over of an exact table never waits for a training run. A provisional student becomes the
 * model's newest only if nothing newer arrived meanwhile; an exact table replaces a provisional
 * one of the same block. */
#include "fastpath.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dense.h"
#include "owner.h"
#include "provisional.h"
#include "train.h"
#include "wlog.h"

enum { FP_MAX_FOLDED = 16 }; /* windows whose freshness a folded job reports (older: dropped) */

typedef struct fp_job {
    struct fp_job *next;
    const tenant *m;
    char model[128];
    closed_window cw; /* a copy; cw.ev is the job's own */
    const char **user_ids, **item_ids;
    uint64_t epoch;
    int64_t events_total;
    atomic_int stop;
    int n_win; /* the windows folded into this job, its own last: their freshness when it is live */
    trainer_window win[FP_MAX_FOLDED];
} fp_job;

typedef struct fp_student {
    struct fp_student *next;
    const tenant *m;
    int block;
    int n_users, n_items, dim;
    float *emb0; /* ((n_users + n_items) x dim) layer-0 table */
} fp_student;

struct fastpath {
    const worker_config *cfg;
    trainer_sink sink;
    trainer *tr;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    fp_job *queue, *tail, *running;
    fp_student *students;
    bool quit;
};

static void job_free(fp_job *j)
{
    free(j->cw.ev);
    free(j->user_ids);
    free(j->item_ids);
    free(j);
}

/* m's entry (f->mu held), or NULL. */
static fp_student *student_of(fastpath *f, const tenant *m)
{
    for (fp_student *s = f->students; s; s = s->next)
        if (s->m == m)
            return s;
    return NULL;
}

/* Make table (owned, moved in) m's newest student if block is at least the known one's
 * (replace_equal) or above it; else free it. f->mu held. */
static void student_offer(fastpath *f, const tenant *m, int block, float *table, int nu, int ni,
                          int dim, bool replace_equal)
{
    fp_student *s = student_of(f, m);
    if (s && (block < s->block || (block == s->block && !replace_equal))) {
        free(table);
        return;
    }
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s) {
            free(table);
            return;
        }
        s->m = m;
        s->next = f->students;
        f->students = s;
    }
    free(s->emb0);
    *s = (fp_student){s->next, m, block, nu, ni, dim, table};
}

static float *copy_table(const float *t, int nu, int ni, int dim)
{
    size_t n = (size_t)(nu + ni) * dim;
    float *c = ccd_floats(n);
    if (c)
        memcpy(c, t, n * sizeof *c);
    return c;
}

void fastpath_exact_table(void *vf, const tenant *m, int block, const float *emb0, int n_users,
                          int n_items, int dim)
{
    fastpath *f = vf;
    float *c = copy_table(emb0, n_users, n_items, dim); /* outside the lock: 2 MB on Yelp */
    if (!c)
        return;
    pthread_mutex_lock(&f->mu);
    student_offer(f, m, block, c, n_users, n_items, dim, true);
    pthread_mutex_unlock(&f->mu);
}

void fastpath_seed(fastpath *f, const tenant *m)
{
    const ccd_state *st = &m->state;
    if (st->block < 0 || !st->student)
        return;
    pthread_mutex_lock(&f->mu);
    const fp_student *s = student_of(f, m);
    bool want = !s || s->block < st->block;
    pthread_mutex_unlock(&f->mu);
    float *c = want ? copy_table(st->student, st->n_users, st->n_items, st->student_dim) : NULL;
    if (!c)
        return;
    pthread_mutex_lock(&f->mu);
    student_offer(f, m, st->block, c, st->n_users, st->n_items, st->student_dim, false);
    pthread_mutex_unlock(&f->mu);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Publish p as the provisional version of j's block: its number, 0 when it was superseded or
 * fenced (the trainer's exact publication reports fencing), -1 after a few failed tries. */
static int64_t publish(fastpath *f, fp_job *j, const ccd_block *blk, const ccd_provisional *p)
{
    if (!f->sink.publish)
        return 0;
    const ccd_metrics *q = &p->metrics.test; /* selection never saw the test half */
    char events[24], total[24], r20[32], n20[32], hu[16], unew[16], inew[16], secs[32];
    snprintf(events, sizeof events, "%lld", (long long)j->cw.n_ev);
    snprintf(total, sizeof total, "%lld", (long long)(j->events_total + j->cw.n_ev));
    snprintf(r20, sizeof r20, "%.6f", q->recall[CCD_K20]);
    snprintf(n20, sizeof n20, "%.6f", q->ndcg[CCD_K20]);
    snprintf(hu, sizeof hu, "%d", q->n_users);
    snprintf(unew, sizeof unew, "%d", p->n_users - blk->prev_users);
    snprintf(inew, sizeof inew, "%d", p->n_items - blk->prev_items);
    snprintf(secs, sizeof secs, "%.3f", p->seconds);
    const char *names[] = {"model",          "events",        "events_total", "holdout_recall20",
                           "holdout_ndcg20", "holdout_users", "new_users",    "new_items",
                           "train_seconds"};
    const char *values[] = {j->model, events, total, r20, n20, hu, unew, inew, secs};
    owner_outcome o;
    redis_version v = {.model = j->model,
                       .block = j->cw.block,
                       .dim = p->dim,
                       .n_users = p->n_users,
                       .n_items = p->n_items,
                       .user_ids = j->user_ids,
                       .item_ids = j->item_ids,
                       .user_vecs = p->final,
                       .item_vecs = p->final + (size_t)p->n_users * p->dim,
                       .n_meta = (int)(sizeof names / sizeof *names),
                       .meta_names = names,
                       .meta_values = values,
                       .epoch = j->epoch,
                       .outcome = &o,
                       .provisional = true};
    for (int attempt = 0, wait = 200; attempt < 3 && !atomic_load(&j->stop); attempt++) {
        char err[512];
        double t0 = ccd_now();
        int64_t ver = f->sink.publish(f->sink.ctx, &v, err, sizeof err);
        if (ver > 0) {
            trainer_note_provisional(f->tr, j->model, j->win, j->n_win, ver,
                                     p->n_users + p->n_items, ccd_now() - t0);
            return ver;
        }
        if (ver == OWNER_FENCED) {
            wlog(o.stale ? WLOG_INFO : WLOG_WARN, "model %s block %d: provisional student %s: %s",
                 j->model, j->cw.block, o.stale ? "superseded" : "fenced", err);
            return 0;
        }
        wlog(WLOG_WARN, "model %s block %d: provisional publish failed (%s)", j->model, j->cw.block,
             err);
        sleep_ms(wait);
        wait *= 2;
    }
    return -1;
}

/* Train and publish the provisional student of j's window from m's newest student. */
static void run_job(fastpath *f, fp_job *j)
{
    const worker_config *cfg = f->cfg;
    pthread_mutex_lock(&f->mu);
    const fp_student *s = student_of(f, j->m);
    int have = s ? s->block : -1, pu = s ? s->n_users : 0, pi = s ? s->n_items : 0;
    float *prev = s && s->block < j->cw.block ? copy_table(s->emb0, pu, pi, s->dim) : NULL;
    pthread_mutex_unlock(&f->mu);
    if (have >= j->cw.block || (have >= 0 && !prev)) {
        wlog(WLOG_DEBUG, "model %s block %d: no provisional student (a student of block %d exists)",
             j->model, j->cw.block, have);
        free(prev);
        return;
    }
    ccd_block blk;
    if (tenant_build_block(&j->cw, prev ? pu : 0, prev ? pi : 0, &blk) != 0) {
        free(prev);
        return;
    }
    ccd_block_sample_eval(&blk, cfg->ccd.eval_users, cfg->ccd.seed);
    ccd_provisional_opts o = {.epochs =
                                  prev ? cfg->fastpath_epochs : cfg->fastpath_bootstrap_epochs,
                              .lr = prev ? 0.0f : cfg->fastpath_bootstrap_lr};
    ccd_provisional p;
    char err[512];
    int rc =
        ccd_student_provisional(&cfg->ccd, &blk, prev, pu, pi, &o, &j->stop, &p, err, sizeof err);
    free(prev);
    if (rc != 0) {
        wlog(rc == CCD_STOPPED ? WLOG_INFO : WLOG_WARN, "model %s: %s", j->model, err);
        tenant_block_free(&blk);
        return;
    }
    int64_t ver = publish(f, j, &blk, &p);
    tenant_block_free(&blk);
    wlog(WLOG_INFO,
         "model %s block %d: provisional student v%lld %s %.1f s after the close (windows %d-%d, "
         "from %s, trained %.1f s, epoch %d, holdout R@20 %.4f)",
         j->model, j->cw.block, (long long)ver, ver > 0 ? "live" : "not published",
         ccd_now() - j->cw.closed_s, j->win[0].block, j->cw.block,
         have >= 0 ? "the newest student" : "scratch", p.seconds, p.epoch,
         p.metrics.test.recall[CCD_K20]);
    pthread_mutex_lock(&f->mu);
    student_offer(f, j->m, j->cw.block, p.emb0, p.n_users, p.n_items, p.dim, false);
    pthread_mutex_unlock(&f->mu);
    p.emb0 = NULL;
    ccd_provisional_free(&p);
}

/* Move j's events in front of q's (a later window of the same model): q's id space contains j's,
 * so j's rows stay valid there. 0, or -1 when out of memory (q is left as it was). */
static int merge_into(fp_job *q, const fp_job *j)
{
    tenant_event *ev = malloc((size_t)(j->cw.n_ev + q->cw.n_ev + 1) * sizeof *ev);
    if (!ev)
        return -1;
    memcpy(ev, j->cw.ev, (size_t)j->cw.n_ev * sizeof *ev);
    memcpy(ev + j->cw.n_ev, q->cw.ev, (size_t)q->cw.n_ev * sizeof *ev);
    free(q->cw.ev);
    q->cw.ev = ev;
    q->cw.n_ev += j->cw.n_ev;
    q->events_total -= j->cw.n_ev; /* events_total counts the blocks before the merged window */
    trainer_window win[FP_MAX_FOLDED];
    int n = 0;
    for (int i = 0; i < j->n_win && n < FP_MAX_FOLDED - q->n_win; i++)
        win[n++] = j->win[i];
    memcpy(win + n, q->win, (size_t)q->n_win * sizeof *win);
    memcpy(q->win, win, (size_t)(n + q->n_win) * sizeof *win);
    q->n_win += n;
    return 0;
}

/* The next job to run (f->mu held). A job with a newer window of its model queued behind it is
 * folded into that one: a single provisional student is trained on both windows, so the windows
 * skipped are still in what readers get, and the fast path catches up with a backlog. */
static fp_job *next_job(fastpath *f)
{
    while (f->queue) {
        fp_job *j = f->queue;
        f->queue = j->next;
        if (!f->queue)
            f->tail = NULL;
        fp_job *newer = NULL;
        for (fp_job *q = f->queue; q && !newer; q = q->next)
            if (q->m == j->m)
                newer = q;
        if (!atomic_load(&j->stop) && (!newer || merge_into(newer, j) != 0))
            return j;
        job_free(j);
    }
    return NULL;
}

static void *fastpath_main(void *arg)
{
    fastpath *f = arg;
    pthread_mutex_lock(&f->mu);
    for (;;) {
        while (!f->queue && !f->quit)
            pthread_cond_wait(&f->cv, &f->mu);
        if (f->quit)
            break;
        fp_job *j = next_job(f);
        if (!j)
            continue;
        f->running = j;
        pthread_mutex_unlock(&f->mu);
        run_job(f, j);
        pthread_mutex_lock(&f->mu);
        f->running = NULL;
        job_free(j);
        pthread_cond_broadcast(&f->cv);
    }
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

fastpath *fastpath_start(const worker_config *cfg, trainer_sink sink, trainer *tr)
{
    fastpath *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->cfg = cfg;
    f->sink = sink;
    f->tr = tr;
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    if (pthread_create(&f->thread, NULL, fastpath_main, f) != 0) {
        pthread_mutex_destroy(&f->mu);
        pthread_cond_destroy(&f->cv);
        free(f);
        return NULL;
    }
    return f;
}

/* Raise the stop of m's jobs (all when m is NULL), drop the queued ones, wait for the running
 * one until deadline. f->mu held. True when none of them is left. */
static bool stop_jobs(fastpath *f, const tenant *m, double deadline)
{
    for (fp_job **pp = &f->queue; *pp;) {
        fp_job *j = *pp;
        if (m && j->m != m) {
            f->tail = j;
            pp = &j->next;
            continue;
        }
        *pp = j->next;
        job_free(j);
    }
    if (!f->queue)
        f->tail = NULL;
    if (f->running && (!m || f->running->m == m))
        atomic_store(&f->running->stop, 1);
    while (f->running && (!m || f->running->m == m))
        if (!cond_wait_slice(&f->cv, &f->mu, deadline))
            return false;
    return true;
}

bool fastpath_stop_until(fastpath *f, double deadline)
{
    if (!f)
        return true;
    pthread_mutex_lock(&f->mu);
    bool idle = stop_jobs(f, NULL, deadline);
    pthread_mutex_unlock(&f->mu);
    return idle;
}

bool fastpath_stop_model_until(fastpath *f, const tenant *m, double deadline)
{
    if (!f)
        return true;
    pthread_mutex_lock(&f->mu);
    if (!stop_jobs(f, m, deadline)) {
        pthread_mutex_unlock(&f->mu);
        return false;
    }
    for (fp_student **pp = &f->students; *pp;) {
        fp_student *s = *pp;
        if (s->m != m) {
            pp = &s->next;
            continue;
        }
        *pp = s->next;
        free(s->emb0);
        free(s);
    }
    pthread_mutex_unlock(&f->mu);
    return true;
}

void fastpath_stop(fastpath *f)
{
    if (!f)
        return;
    pthread_mutex_lock(&f->mu);
    f->quit = true;
    if (f->running)
        atomic_store(&f->running->stop, 1);
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    pthread_join(f->thread, NULL);
    stop_jobs(f, NULL, INFINITY);
    while (f->students) {
        fp_student *s = f->students;
        f->students = s->next;
        free(s->emb0);
        free(s);
    }
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
    free(f);
}

int fastpath_submit(fastpath *f, tenant *m, const closed_window *cw, const char **user_ids,
                    const char **item_ids, uint64_t epoch, int64_t events_total)
{
    fp_job *j = calloc(1, sizeof *j);
    tenant_event *ev = malloc((size_t)(cw->n_ev > 0 ? cw->n_ev : 1) * sizeof *ev);
    if (!j || !ev) {
        free(j), free(ev), free(user_ids), free(item_ids);
        return -1;
    }
    memcpy(ev, cw->ev, (size_t)cw->n_ev * sizeof *ev);
    j->m = m;
    snprintf(j->model, sizeof j->model, "%s", m->id);
    j->cw = *cw;
    j->cw.next = NULL;
    j->cw.ev = ev;
    j->user_ids = user_ids;
    j->item_ids = item_ids;
    j->epoch = epoch;
    j->events_total = events_total;
    j->n_win = 1;
    j->win[0] = (trainer_window){cw->block, cw->closed_s, cw->newest_arrival_s};
    pthread_mutex_lock(&f->mu);
    if (f->tail)
        f->tail->next = j;
    else
        f->queue = j;
    f->tail = j;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    return 0;
}

static int64_t serial_publish(void *ctx, const redis_version *v, char *err, size_t errlen)
{
    fastpath_serial *s = ctx;
    pthread_mutex_lock(s->mu);
    int64_t r = redis_publish(s->sink, v, err, errlen);
    pthread_mutex_unlock(s->mu);
    return r;
}

trainer_sink fastpath_serial_sink(fastpath_serial *s)
{
    return (trainer_sink){.publish = serial_publish, .ctx = s};
}
