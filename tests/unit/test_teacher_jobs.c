/* teacher_jobs: the whole job path without Kafka is bit-identical to the in-process block step.
 * Blocks 1 and 2 of the engine fixture run with a `teachers` hook that does what the owner and a
 * teacher worker do between them (input blob encoded, decoded in a fresh struct, re-encoded to
 * the same bytes; ccd_teacher_update on the decoded inputs; result blob encoded and decoded) and
 * the states after each block must serialise to the same bytes as a plain run's. Also: every
 * truncation and a bit flip of an input blob are refused, a result blob of another teacher or
 * block is refused, the directory store's blobs are atomic and absent ones read as 0, and the
 * [teachers] and worker.roles keys refuse bad values naming the key. The owner side against
 * librdkafka's mock cluster, with a thread playing the teacher workers: a stop while it waits
 * returns CCD_STOPPED, a teacher's error blob fails the block with its message, stored results
 * complete it bit for bit, and the blobs are deleted every time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint.h"
#include "dense.h"
#include "engine_fixture.h"
#include "state.h"
#include "teacher_jobs.h"
#include "test_util.h"
#include "train.h"
#include "worker_config.h"

typedef struct {
    int calls;
    size_t input_bytes;
} hook_seen;

/* The owner's and the teacher worker's halves, back to back. */
static int jobs_hook(void *ctx, const ccd_teacher_inputs *in, float **out)
{
    hook_seen *seen = ctx;
    seen->calls++;
    unsigned char *buf, *again;
    size_t len, len2;
    assert_int_equal(tj_encode_inputs("north", 7, in, &buf, &len), 0);
    seen->input_bytes = len;
    tj_inputs x;
    char err[512];
    assert_int_equal(tj_decode_inputs(&x, buf, len, err, sizeof err), 0);
    assert_string_equal(x.model, "north");
    assert_int_equal(x.block, in->blk->index);
    ccd_teacher_inputs view = tj_inputs_view(&x);
    assert_int_equal(tj_encode_inputs("north", 7, &view, &again, &len2), 0);
    assert_int_equal(len2, len);
    assert_memory_equal(again, buf, len);
    free(again);
    free(buf);
    int64_t rows = (int64_t)in->blk->n_users + in->blk->n_items;
    for (int m = 0; m < in->prev->n_teachers; m++) {
        float *t = NULL, *back = NULL;
        double secs = -1;
        assert_int_equal(ccd_teacher_update(&view, m, NULL, &t, &secs, err, sizeof err), 0);
        int dim = in->prev->teacher_spec[m].dim;
        assert_int_equal(tj_encode_result("north", x.block, m, 7, t, rows, dim, &buf, &len), 0);
        assert_int_equal(
            tj_decode_result(buf, len, "north", x.block, m, 7, rows, dim, &back, err, sizeof err),
            0);
        assert_memory_equal(back, t, (size_t)rows * (size_t)dim * sizeof *t);
        /* another teacher's or another epoch's result is refused */
        float *wrong = NULL;
        assert_int_equal(tj_decode_result(buf, len, "north", x.block, m + 1, 7, rows, dim, &wrong,
                                          err, sizeof err),
                         -1);
        assert_int_equal(
            tj_decode_result(buf, len, "north", x.block, m, 8, rows, dim, &wrong, err, sizeof err),
            -1);
        assert_null(wrong);
        free(buf);
        free(t);
        out[m] = back;
    }
    tj_inputs_free(&x);
    return 0;
}

static void state_bytes(const ccd_state *st, unsigned char **buf, size_t *len)
{
    assert_int_equal(ccd_state_serialize(st, buf, len), 0);
}

static void jobs_path_is_bit_identical(void **unused)
{
    (void)unused;
    ccd_block blocks[BLOCKS];
    make_blocks(blocks);
    ccd_config cfg;
    small_config(&cfg);
    ccd_state plain, jobs;
    ccd_state_init(&plain);
    ccd_state_init(&jobs);
    hook_seen seen = {0};
    ccd_block_hooks hooks = {.teachers = jobs_hook, .ctx = &seen};
    char err[512];
    for (int k = 0; k < BLOCKS; k++) {
        ccd_block_report r1, r2;
        assert_int_equal(
            ccd_block_step(&plain, &cfg, &blocks[k], &blocks[k], 1, &r1, NULL, err, sizeof err), 0);
        assert_int_equal(
            ccd_block_step(&jobs, &cfg, &blocks[k], &blocks[k], 1, &r2, &hooks, err, sizeof err),
            0);
        ccd_block_report_free(&r1);
        ccd_block_report_free(&r2);
        unsigned char *a, *b;
        size_t la, lb;
        state_bytes(&plain, &a, &la);
        state_bytes(&jobs, &b, &lb);
        assert_int_equal(la, lb);
        assert_memory_equal(a, b, la);
        free(a);
        free(b);
    }
    assert_int_equal(seen.calls, BLOCKS - 1); /* block 0's base teachers stay in-process */
    ccd_state_free(&plain);
    ccd_state_free(&jobs);
    free_blocks(blocks);
}

/* Inputs of block 1 as the hook sees them, kept for the corruption test. */
static unsigned char *kept;
static size_t kept_len;

static int keep_hook(void *ctx, const ccd_teacher_inputs *in, float **out)
{
    (void)ctx;
    (void)out;
    assert_int_equal(tj_encode_inputs("north", 3, in, &kept, &kept_len), 0);
    return -1; /* the step fails; the state stays as it was */
}

static void input_blob_corruption_refused(void **unused)
{
    (void)unused;
    ccd_block blocks[BLOCKS];
    make_blocks(blocks);
    ccd_config cfg;
    small_config(&cfg);
    ccd_state st;
    ccd_state_init(&st);
    ccd_block_report r;
    char err[512];
    assert_int_equal(
        ccd_block_step(&st, &cfg, &blocks[0], &blocks[0], 1, &r, NULL, err, sizeof err), 0);
    ccd_block_report_free(&r);
    ccd_block_hooks hooks = {.teachers = keep_hook};
    assert_int_not_equal(
        ccd_block_step(&st, &cfg, &blocks[1], &blocks[1], 1, &r, &hooks, err, sizeof err), 0);
    ccd_block_report_free(&r);
    assert_non_null(kept);
    tj_inputs x;
    for (size_t n = 0; n < kept_len; n += 1 + n / 7)
        assert_int_equal(tj_decode_inputs(&x, kept, n, err, sizeof err), -1);
    kept[kept_len / 2] ^= 0x10;
    assert_int_equal(tj_decode_inputs(&x, kept, kept_len, err, sizeof err), -1);
    kept[kept_len / 2] ^= 0x10;
    assert_int_equal(tj_decode_inputs(&x, kept, kept_len, err, sizeof err), 0);
    assert_int_equal(x.block, 1);
    assert_int_equal(x.epoch, 3);
    tj_inputs_free(&x);
    free(kept);
    kept = NULL;
    ccd_state_free(&st);
    free_blocks(blocks);
}

static void dir_store_blobs(void **unused)
{
    (void)unused;
    char dir[] = "/tmp/ccd-tj-XXXXXX";
    assert_non_null(mkdtemp(dir));
    ckpt_store s;
    char err[512];
    assert_int_equal(ckpt_store_open_dir(&s, dir, 2, err, sizeof err), 0);
    unsigned char *buf;
    size_t len;
    assert_int_equal(ckpt_store_get_blob(&s, "north", "tj-b1-in", &buf, &len, err, sizeof err), 0);
    assert_int_equal(ckpt_store_put_blob(&s, "north", "tj-b1-in", (const unsigned char *)"abc", 3,
                                         err, sizeof err),
                     0);
    assert_int_equal(ckpt_store_put_blob(&s, "north", "tj-b1-in", (const unsigned char *)"abcd", 4,
                                         err, sizeof err),
                     0);
    assert_int_equal(ckpt_store_get_blob(&s, "north", "tj-b1-in", &buf, &len, err, sizeof err), 1);
    assert_int_equal(len, 4);
    assert_memory_equal(buf, "abcd", 4);
    free(buf);
    /* buf NULL: whether it exists */
    assert_int_equal(ckpt_store_get_blob(&s, "north", "tj-b1-in", NULL, NULL, err, sizeof err), 1);
    assert_int_equal(ckpt_store_get_blob(&s, "north", "tj-b2-in", NULL, NULL, err, sizeof err), 0);
    /* names are checked like model ids: no path tricks */
    assert_int_equal(
        ckpt_store_put_blob(&s, "north", "../x", (const unsigned char *)"a", 1, err, sizeof err),
        -1);
    assert_int_equal(
        ckpt_store_put_blob(&s, "north", ".hidden", (const unsigned char *)"a", 1, err, sizeof err),
        -1);
    assert_int_equal(ckpt_store_del_blob(&s, "north", "tj-b1-in", err, sizeof err), 0);
    assert_int_equal(ckpt_store_del_blob(&s, "north", "tj-b1-in", err, sizeof err), 0);
    assert_int_equal(ckpt_store_get_blob(&s, "north", "tj-b1-in", &buf, &len, err, sizeof err), 0);
    /* the blobs live apart from the checkpoints: listing still finds none */
    int *blocks = NULL;
    assert_int_equal(s.be->list(s.impl, "north", &blocks, err, sizeof err), 0);
    free(blocks);
    ckpt_store_close(&s);
    rm_tree(dir);
}

/* Which blobs a new owner sweeps (tj_blob_stale), and the directory store's sweep: an older
 * epoch's blobs, this epoch's of earlier blocks and a write that died before its rename go; the
 * current block's, a newer epoch's and other names stay. */
static void stale_blobs_swept(void **unused)
{
    (void)unused;
    const uint64_t e = 1796470030319ull;
    char older[96], same_earlier[96], same_now[96], newer[96], tmp[160], path[512];
    snprintf(older, sizeof older, "tj-b%08d-e%020llu-t01", 7, (unsigned long long)(e - 1));
    snprintf(same_earlier, sizeof same_earlier, "tj-b%08d-e%020llu-in", 2, (unsigned long long)e);
    snprintf(same_now, sizeof same_now, "tj-b%08d-e%020llu-in", 3, (unsigned long long)e);
    snprintf(newer, sizeof newer, "tj-b%08d-e%020llu-t00.err", 1, (unsigned long long)(e + 1));
    assert_true(tj_blob_stale(older, e, 3));
    assert_true(tj_blob_stale(same_earlier, e, 3));
    assert_false(tj_blob_stale(same_now, e, 3));
    assert_false(tj_blob_stale(newer, e, 3));
    assert_false(tj_blob_stale("notes", e, 3));
    assert_false(tj_blob_stale("tj-b00000001-eX", e, 3));

    char dir[] = "/tmp/ccd-tj-XXXXXX";
    assert_non_null(mkdtemp(dir));
    ckpt_store s;
    char err[512];
    assert_int_equal(ckpt_store_open_dir(&s, dir, 2, err, sizeof err), 0);
    const char *names[] = {older, same_earlier, same_now, newer, "notes"};
    for (int i = 0; i < 5; i++)
        assert_int_equal(ckpt_store_put_blob(&s, "north", names[i], (const unsigned char *)"x", 1,
                                             err, sizeof err),
                         0);
    /* what a writer killed before its rename leaves (checkpoint_dir.c's temporary name) */
    snprintf(tmp, sizeof tmp, ".tmp-%s-4242-7", older);
    snprintf(path, sizeof path, "%s/north/blobs/%s", dir, tmp);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
    int n = ckpt_store_sweep_blobs(&s, "north", tj_sweep_drop, &(tj_sweep_floor){e, 3}, err,
                                   sizeof err);
    assert_int_equal(n, 3);
    assert_int_equal(access(path, F_OK), -1);
    int want[] = {0, 0, 1, 1, 1};
    for (int i = 0; i < 5; i++)
        assert_int_equal(ckpt_store_get_blob(&s, "north", names[i], NULL, NULL, err, sizeof err),
                         want[i]);
    /* a model without blobs: nothing to do */
    assert_int_equal(ckpt_store_sweep_blobs(&s, "south", tj_sweep_drop, &(tj_sweep_floor){e, 3},
                                            err, sizeof err),
                     0);
    ckpt_store_close(&s);
    rm_tree(dir);
}

static void config_keys(void **unused)
{
    (void)unused;
    worker_config w;
    worker_config_init(&w);
    char err[512];
    assert_false(w.teachers_kafka);
    assert_true(w.role_owner);
    assert_false(w.role_teacher);
    assert_int_equal(worker_config_set(&w, "teachers", "mode", "remote", err, sizeof err), -1);
    assert_non_null(strstr(err, "teachers.mode"));
    assert_int_equal(worker_config_set(&w, "teachers", "jobs_topic", "a b", err, sizeof err), -1);
    assert_non_null(strstr(err, "teachers.jobs_topic"));
    assert_int_equal(worker_config_set(&w, "teachers", "jobs_topic", "", err, sizeof err), -1);
    assert_int_equal(worker_config_set(&w, "teachers", "results_topic", "", err, sizeof err), 0);
    assert_int_equal(worker_config_set(&w, "teachers", "jobs_partitions", "-1", err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "teachers.jobs_partitions"));
    assert_int_equal(worker_config_set(&w, "worker", "roles", "owner,chef", err, sizeof err), -1);
    assert_non_null(strstr(err, "worker.roles"));
    assert_int_equal(worker_config_set(&w, "worker", "roles", ",", err, sizeof err), -1);
    assert_int_equal(worker_config_set(&w, "worker", "roles", "teacher", err, sizeof err), 0);
    assert_false(w.role_owner);
    assert_true(w.role_teacher);
    assert_int_equal(worker_config_set(&w, "kafka", "bootstrap.servers", "h:1", err, sizeof err),
                     0);
    /* a teacher without kafka mode has nothing to run */
    assert_int_equal(worker_config_check(&w, err, sizeof err), -1);
    assert_non_null(strstr(err, "worker.roles"));
    assert_int_equal(worker_config_set(&w, "teachers", "mode", "kafka", err, sizeof err), 0);
    /* a teacher-only worker needs no input topics or windows */
    assert_int_equal(worker_config_check(&w, err, sizeof err), 0);
    assert_int_equal(worker_config_set(&w, "worker", "roles", " owner , teacher ", err, sizeof err),
                     0);
    assert_true(w.role_owner && w.role_teacher);
    worker_config_free(&w);
}

/* ------------------------------------------------------------------------------------------ */
/* the owner against librdkafka's mock cluster: a helper thread plays the teacher workers */

typedef enum { PLAY_STOP, PLAY_ERROR, PLAY_RESULTS } play;

typedef struct {
    play what;
    ckpt_store *store;
    const ccd_teacher_inputs *in;
    atomic_int *stop;
    uint64_t epoch;
} player;

static void *play_teachers(void *arg)
{
    player *p = arg;
    struct timespec ts = {0, 300000000L};
    nanosleep(&ts, NULL); /* the owner is waiting by now */
    char name[96], err[512];
    int block = p->in->blk->index;
    if (p->what == PLAY_STOP) {
        atomic_store(p->stop, 1);
    } else if (p->what == PLAY_ERROR) {
        snprintf(name, sizeof name, "tj-b%08d-e%020llu-t01.err", block,
                 (unsigned long long)p->epoch);
        assert_int_equal(ckpt_store_put_blob(p->store, "north", name,
                                             (const unsigned char *)"out of cheese", 13, err,
                                             sizeof err),
                         0);
    } else {
        int64_t rows = (int64_t)p->in->blk->n_users + p->in->blk->n_items;
        for (int m = 0; m < p->in->prev->n_teachers; m++) {
            float *t;
            unsigned char *buf;
            size_t len;
            assert_int_equal(ccd_teacher_update(p->in, m, NULL, &t, NULL, err, sizeof err), 0);
            assert_int_equal(tj_encode_result("north", block, m, p->epoch, t, rows,
                                              p->in->prev->teacher_spec[m].dim, &buf, &len),
                             0);
            snprintf(name, sizeof name, "tj-b%08d-e%020llu-t%02d", block,
                     (unsigned long long)p->epoch, m);
            assert_int_equal(
                ckpt_store_put_blob(p->store, "north", name, buf, len, err, sizeof err), 0);
            free(buf);
            free(t);
        }
    }
    return NULL;
}

typedef struct {
    tj_owner *owner;
    ckpt_store *store;
    play what;
    atomic_int stop;
    int rc;
    char err[512];
} owner_ctx;

static int owner_hook(void *ctx, const ccd_teacher_inputs *in, float **out)
{
    owner_ctx *o = ctx;
    player p = {o->what, o->store, in, &o->stop, 9};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, play_teachers, &p), 0);
    double t0 = ccd_now();
    o->rc =
        tj_owner_teachers(o->owner, o->store, "north", 9, &o->stop, in, out, o->err, sizeof o->err);
    pthread_join(th, NULL);
    assert_true(ccd_now() - t0 < 30);
    return o->rc;
}

static int blobs_left(const char *dir)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "ls %s/north/blobs 2>/dev/null | grep -c '^tj-'", dir);
    FILE *f = popen(cmd, "r");
    int n = -1;
    assert_int_equal(fscanf(f, "%d", &n), 1);
    pclose(f);
    return n;
}

static void owner_against_mock(void **unused)
{
    (void)unused;
    char err[512], dir[] = "/tmp/ccd-tjo-XXXXXX";
    assert_non_null(mkdtemp(dir));
    rd_kafka_t *host = rd_kafka_new(RD_KAFKA_PRODUCER, rd_kafka_conf_new(), err, sizeof err);
    rd_kafka_mock_cluster_t *mock = rd_kafka_mock_cluster_new(host, 1);
    assert_int_equal(rd_kafka_mock_topic_create(mock, "jobs", 2, 1), 0);
    worker_config w;
    worker_config_init(&w);
    assert_int_equal(worker_config_set(&w, "kafka", "bootstrap.servers",
                                       rd_kafka_mock_cluster_bootstraps(mock), err, sizeof err),
                     0);
    assert_int_equal(worker_config_set(&w, "teachers", "jobs_topic", "jobs", err, sizeof err), 0);
    assert_int_equal(worker_config_set(&w, "teachers", "results_topic", "", err, sizeof err), 0);
    tj_owner *owner = tj_owner_open(&w, err, sizeof err);
    assert_non_null(owner);
    ckpt_store store;
    assert_int_equal(ckpt_store_open_dir(&store, dir, 2, err, sizeof err), 0);

    ccd_block blocks[BLOCKS];
    make_blocks(blocks);
    ccd_config cfg;
    small_config(&cfg);
    ccd_state plain, st;
    ccd_state_init(&plain);
    ccd_state_init(&st);
    ccd_block_report r;
    for (int k = 0; k < 2; k++) {
        assert_int_equal(
            ccd_block_step(&plain, &cfg, &blocks[k], &blocks[k], 1, &r, NULL, err, sizeof err), 0);
        ccd_block_report_free(&r);
    }
    assert_int_equal(
        ccd_block_step(&st, &cfg, &blocks[0], &blocks[0], 1, &r, NULL, err, sizeof err), 0);
    ccd_block_report_free(&r);
    owner_ctx o = {.owner = owner, .store = &store};
    ccd_block_hooks hooks = {.teachers = owner_hook, .ctx = &o, .stop = &o.stop};
    /* stop while waiting: CCD_STOPPED, the state untouched, the blobs gone */
    o.what = PLAY_STOP;
    assert_int_equal(
        ccd_block_step(&st, &cfg, &blocks[1], &blocks[1], 1, &r, &hooks, err, sizeof err),
        CCD_STOPPED);
    ccd_block_report_free(&r);
    assert_int_equal(o.rc, CCD_STOPPED);
    assert_int_equal(st.block, 0);
    assert_int_equal(blobs_left(dir), 0);
    /* a teacher's error blob fails the block with its message */
    atomic_store(&o.stop, 0);
    o.what = PLAY_ERROR;
    assert_int_equal(
        ccd_block_step(&st, &cfg, &blocks[1], &blocks[1], 1, &r, &hooks, err, sizeof err), -1);
    ccd_block_report_free(&r);
    assert_non_null(strstr(o.err, "out of cheese"));
    assert_int_equal(blobs_left(dir), 0);
    /* every result stored: the block completes, bit for bit the in-process one */
    o.what = PLAY_RESULTS;
    assert_int_equal(
        ccd_block_step(&st, &cfg, &blocks[1], &blocks[1], 1, &r, &hooks, err, sizeof err), 0);
    ccd_block_report_free(&r);
    assert_int_equal(o.rc, 0);
    assert_int_equal(blobs_left(dir), 0);
    unsigned char *a, *b;
    size_t la, lb;
    state_bytes(&plain, &a, &la);
    state_bytes(&st, &b, &lb);
    assert_int_equal(la, lb);
    assert_memory_equal(a, b, la);
    free(a);
    free(b);
    assert_int_equal(tj_owner_stats(owner).jobs_produced, 3 * cfg.n_teachers);

    ccd_state_free(&plain);
    ccd_state_free(&st);
    free_blocks(blocks);
    ckpt_store_close(&store);
    tj_owner_close(owner);
    worker_config_free(&w);
    rd_kafka_mock_cluster_destroy(mock);
    rd_kafka_destroy(host);
    rm_tree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(jobs_path_is_bit_identical),
        cmocka_unit_test(input_blob_corruption_refused),
        cmocka_unit_test(dir_store_blobs),
        cmocka_unit_test(stale_blobs_swept),
        cmocka_unit_test(config_keys),
        cmocka_unit_test(owner_against_mock),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
