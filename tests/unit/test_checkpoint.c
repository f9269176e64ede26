/* checkpoint: the format round-trips field by field and refuses every truncation, bit flip and
 * lying count; the directory store keeps the newest `keep` files, falls back past a corrupted or
 * torn newest file, refuses bad model ids, and survives a full disk (RLIMIT_FSIZE) with the
 * previous checkpoint intact and no temporary file left behind; claims are monotonic across store
 * instances, a save by an older owner's epoch is refused (CKPT_FENCED) without touching the newer
 * checkpoint, and a save sweeps only older owners' temporary files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "checkpoint.h"
#include "le.h"
#include "state.h"
#include "test_util.h" /* xstrdup, write_file, rm_tree */

/* ------------------------------------------------------------------------------------------ */
/* fixtures */

static uint64_t rng_next(uint64_t *s)
{
    /* xorshift64*: deterministic content, no libc rand state shared with anything */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545f4914f6cdd1dull;
}

/* A checkpoint shaped like the worker's: Yelp-like ids, offsets on a few partitions of two
 * topics, and an opaque state blob of random bytes (zeros included). */
static void make_ckpt(checkpoint *c, const char *model, int block, int n_users, int n_items,
                      int n_offsets, size_t state_len, uint64_t seed)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
    checkpoint_init(c);
    snprintf(c->model, sizeof c->model, "%s", model);
    c->block = block;
    c->window_start_ms = 1700000000000 + (int64_t)(rng_next(&s) % 1000000);
    c->events_total = 123456789 + block;
    c->published_version = block + 1;
    c->state_len = state_len;
    if (state_len) {
        c->state = malloc(state_len);
        assert_non_null(c->state);
        for (size_t k = 0; k < state_len; k++)
            c->state[k] = (unsigned char)rng_next(&s);
    }
    c->n_users = n_users;
    c->user_ids = calloc((size_t)n_users + 1, sizeof *c->user_ids);
    assert_non_null(c->user_ids);
    for (int k = 0; k < n_users; k++) {
        char id[32];
        snprintf(id, sizeof id, "u%07d", k * 7 + 3);
        c->user_ids[k] = xstrdup(id);
    }
    c->n_items = n_items;
    c->item_ids = calloc((size_t)n_items + 1, sizeof *c->item_ids);
    assert_non_null(c->item_ids);
    for (int k = 0; k < n_items; k++) {
        char id[23];
        for (int j = 0; j < 22; j++)
            id[j] = alphabet[rng_next(&s) % 64];
        id[22] = '\0';
        c->item_ids[k] = xstrdup(id);
    }
    c->n_offsets = n_offsets;
    c->offsets = calloc((size_t)n_offsets + 1, sizeof *c->offsets);
    assert_non_null(c->offsets);
    for (int k = 0; k < n_offsets; k++) {
        const char *topic = k % 2 ? "ccd.events.yelp" : "ccd.events.x";
        snprintf(c->offsets[k].topic, sizeof c->offsets[k].topic, "%s", topic);
        c->offsets[k].partition = k / 2;
        c->offsets[k].next_offset = (int64_t)(rng_next(&s) % 100000000000ull);
        /* -1 (unknown) or a floor at or below next_offset */
        c->offsets[k].commit_floor =
            (int64_t)(rng_next(&s) % (uint64_t)(c->offsets[k].next_offset + 2)) - 1;
    }
}

static void assert_empty(const checkpoint *c)
{
    assert_string_equal(c->model, "");
    assert_int_equal(c->block, -1);
    assert_true(c->window_start_ms == INT64_MIN);
    assert_null(c->state);
    assert_int_equal(c->state_len, 0);
    assert_int_equal(c->n_users, 0);
    assert_int_equal(c->n_items, 0);
    assert_int_equal(c->n_offsets, 0);
    assert_null(c->user_ids);
    assert_null(c->item_ids);
    assert_null(c->offsets);
}

static void assert_ckpt_equal(const checkpoint *a, const checkpoint *b)
{
    assert_string_equal(a->model, b->model);
    assert_int_equal(a->block, b->block);
    assert_true(a->window_start_ms == b->window_start_ms);
    assert_true(a->events_total == b->events_total);
    assert_true(a->published_version == b->published_version);
    assert_int_equal(a->state_len, b->state_len);
    if (a->state_len)
        assert_memory_equal(a->state, b->state, a->state_len);
    assert_int_equal(a->n_users, b->n_users);
    for (int k = 0; k < a->n_users; k++)
        assert_string_equal(a->user_ids[k], b->user_ids[k]);
    assert_int_equal(a->n_items, b->n_items);
    for (int k = 0; k < a->n_items; k++)
        assert_string_equal(a->item_ids[k], b->item_ids[k]);
    assert_int_equal(a->n_offsets, b->n_offsets);
    for (int k = 0; k < a->n_offsets; k++) {
        assert_string_equal(a->offsets[k].topic, b->offsets[k].topic);
        assert_int_equal(a->offsets[k].partition, b->offsets[k].partition);
        assert_true(a->offsets[k].next_offset == b->offsets[k].next_offset);
        assert_true(a->offsets[k].commit_floor == b->offsets[k].commit_floor);
    }
}

/* Rewrite the header's payload length and CRC so a hand-edited payload passes both checks and
 * reaches the count and string checks. */
static void reseal(unsigned char *buf, size_t len)
{
    le_put_u64(buf + 16, len - 24);
    le_put_u32(buf + 12, ccd_crc32(buf + 24, len - 24));
}

/* Decodes a private copy of exactly n bytes (so ASan sees any read past the end), expects a
 * refusal that leaves d empty, and returns the message. */
static const char *expect_refused(const unsigned char *buf, size_t n)
{
    static char err[512];
    unsigned char *copy = malloc(n ? n : 1);
    assert_non_null(copy);
    if (n)
        memcpy(copy, buf, n);
    checkpoint d;
    err[0] = '\0';
    int rc = checkpoint_decode(&d, copy, n, err, sizeof err);
    free(copy);
    if (rc == 0) {
        checkpoint_free(&d);
        fail_msg("decoding %zu bytes succeeded", n);
    }
    assert_int_equal(rc, -1);
    assert_empty(&d);
    assert_true(strncmp(err, "checkpoint: ", 12) == 0);
    return err;
}

/* directories */

static char *make_tmpdir(void)
{
    char *t = xstrdup("/tmp/ccd-ckpt-test-XXXXXX");
    assert_non_null(mkdtemp(t));
    return t;
}

/* Each store test gets a fresh directory as its state; the teardown removes it even when the
 * test failed. */
static int setup_dir(void **state)
{
    *state = make_tmpdir();
    return 0;
}

static int teardown_dir(void **state)
{
    rm_tree(*state);
    free(*state);
    return 0;
}

/* Entries of dir whose names start with prefix ("" counts everything but . and ..). */
static int count_entries(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
            !strncmp(e->d_name, prefix, strlen(prefix)))
            n++;
    closedir(d);
    return n;
}

static int file_exists(const char *dir, const char *model, int block)
{
    char p[4400];
    snprintf(p, sizeof p, "%s/%s/block-%08d.ckpt", dir, model, block);
    return access(p, F_OK) == 0;
}

typedef struct {
    int n;
    char all[8192];
} warnings;

static void collect_warning(void *ctx, const char *msg)
{
    warnings *w = ctx;
    w->n++;
    size_t used = strlen(w->all);
    snprintf(w->all + used, sizeof w->all - used, "%s\n", msg);
}

/* One save or load through a directory store opened for it, as a worker thread would. */
static int save_to(const char *dir, const checkpoint *c, int keep, char *err, size_t errlen)
{
    ckpt_store s;
    if (ckpt_store_open_dir(&s, dir, keep, err, errlen) != 0)
        return -1;
    int rc = ckpt_store_save(&s, c, 0, err, errlen);
    ckpt_store_close(&s);
    return rc;
}

static int load_from(const char *dir, const char *model, checkpoint *d,
                     void (*warn)(void *, const char *), void *warn_ctx, char *err, size_t errlen)
{
    ckpt_store s;
    if (ckpt_store_open_dir(&s, dir, 1, err, errlen) != 0) {
        checkpoint_init(d);
        return -1;
    }
    int rc = ckpt_store_load_latest(&s, model, d, warn, warn_ctx, err, errlen);
    ckpt_store_close(&s);
    return rc;
}

static void save_ok(const char *dir, const checkpoint *c, int keep)
{
    char err[512];
    if (save_to(dir, c, keep, err, sizeof err) != 0)
        fail_msg("save block %d: %s", c->block, err);
}

/* ------------------------------------------------------------------------------------------ */
/* format */

static void round_trip_realistic(void **state)
{
    (void)state;
    checkpoint c, d;
    make_ckpt(&c, "yelp-ccd_v2.1", 17, 3000, 2000, 6, 20000, 1);
    unsigned char *buf, *buf2;
    size_t len, len2;
    char err[512];
    assert_int_equal(checkpoint_encode(&c, &buf, &len), 0);
    assert_memory_equal(buf, "CCDCKPT1", 8);
    assert_int_equal(checkpoint_decode(&d, buf, len, err, sizeof err), 0);
    assert_ckpt_equal(&c, &d);
    /* deterministic: the decoded copy encodes to the same bytes */
    assert_int_equal(checkpoint_encode(&d, &buf2, &len2), 0);
    assert_int_equal(len, len2);
    assert_memory_equal(buf, buf2, len);
    free(buf);
    free(buf2);
    checkpoint_free(&d);
    checkpoint_free(&c);
    assert_empty(&c);

    /* the edges: nothing folded yet, no window, empty lists and state, extreme values */
    checkpoint_init(&c);
    snprintf(c.model, sizeof c.model, "m");
    assert_int_equal(checkpoint_encode(&c, &buf, &len), 0);
    assert_int_equal(checkpoint_decode(&d, buf, len, err, sizeof err), 0);
    assert_ckpt_equal(&c, &d);
    free(buf);
    checkpoint_free(&d);
    make_ckpt(&c, "m", 0, 2, 1, 1, 1, 2);
    c.window_start_ms = INT64_MAX;
    c.events_total = INT64_MAX;
    c.offsets[0].next_offset = INT64_MAX;
    c.offsets[0].partition = INT32_MAX;
    memset(c.offsets[0].topic, 't', CKPT_MAX_TOPIC); /* the longest topic Kafka allows */
    free(c.user_ids[1]);
    c.user_ids[1] = xstrdup(""); /* empty ids survive too */
    assert_int_equal(checkpoint_encode(&c, &buf, &len), 0);
    assert_int_equal(checkpoint_decode(&d, buf, len, err, sizeof err), 0);
    assert_ckpt_equal(&c, &d);
    free(buf);
    checkpoint_free(&d);
    checkpoint_free(&c);
}

static void encode_refuses_what_decode_would(void **state)
{
    (void)state;
    checkpoint c;
    unsigned char *buf;
    size_t len;
    make_ckpt(&c, "m", 3, 3, 3, 2, 8, 3);
    c.offsets[1].partition = -1;
    assert_int_equal(checkpoint_encode(&c, &buf, &len), -1);
    c.offsets[1].partition = 0;
    c.block = -2;
    assert_int_equal(checkpoint_encode(&c, &buf, &len), -1);
    c.block = 3;
    char *saved = c.item_ids[2];
    c.item_ids[2] = NULL;
    assert_int_equal(checkpoint_encode(&c, &buf, &len), -1);
    c.item_ids[2] = saved;
    snprintf(c.model, sizeof c.model, "../m");
    assert_int_equal(checkpoint_encode(&c, &buf, &len), -1);
    snprintf(c.model, sizeof c.model, "m");
    assert_int_equal(checkpoint_encode(&c, &buf, &len), 0);
    free(buf);
    checkpoint_free(&c);
}

static void every_truncation_refused(void **state)
{
    (void)state;
    checkpoint c;
    make_ckpt(&c, "yelp", 5, 3000, 2000, 6, 20000, 4);
    unsigned char *buf;
    size_t len;
    assert_int_equal(checkpoint_encode(&c, &buf, &len), 0);
    checkpoint_free(&c);
    /* every cut in the header and the first and last bytes, a stride through the rest */
    const size_t stride = len / 1500 + 1;
    for (size_t cut = 0; cut < len; cut += (cut < 64 || cut > len - 64) ? 1 : stride) {
        const char *err = expect_refused(buf, cut);
        if (!strstr(err, "truncated"))
            fail_msg("cut at %zu: %s", cut, err);
    }
    /* one byte too many is refused as well */
    unsigned char *longer = malloc(len + 1);
    assert_non_null(longer);
    memcpy(longer, buf, len);
    longer[len] = 0;
    assert_non_null(strstr(expect_refused(longer, len + 1), "trailing"));
    free(longer);
    free(buf);
}

/* Every prefix of a payload, sealed with a matching length and CRC, still fails: only the count
 * and string checks stand between it and a half-filled checkpoint. */
static void every_resealed_prefix_refused(void **state)
{
    (void)state;
    checkpoint c;
    make_ckpt(&c, "small", 2, 20, 15, 3, 100, 5);
    unsigned char *buf;
    size_t len;
    assert_int_equal(checkpoint_encode(&c, &buf, &len), 0);
    checkpoint_free(&c);
    unsigned char *copy = malloc(len);
    assert_non_null(copy);
    for (size_t cut = 24; cut < len; cut++) {
        memcpy(copy, buf, cut);
        reseal(copy, cut);
        expect_refused(copy, cut);
    }
    free(copy);
    free(buf);
}

static void bit_flips_refused(void **state)
{
    (void)state;
    checkpoint c;
    unsigned char *buf;
    size_t len;
    /* every bit of a small checkpoint */
    make_ckpt(&c, "small", 2, 10, 10, 2, 64, 6);
    assert_int_equal(checkpoint_encode(&c, &buf, &len), 0);
    checkpoint_free(&c);
    for (size_t bit = 0; bit < 8 * len; bit++) {
        buf[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        expect_refused(buf, len);
        buf[bit / 8] ^= (unsigned char)(1u << (bit % 8));
    }
    free(buf);
    /* a spread of positions through a large one (CRC-32 catches any single-bit error) */
    make_ckpt(&c, "yelp", 9, 3000, 2000, 6, 20000, 7);
    assert_int_equal(checkpoint_encode(&c, &buf, &len), 0);
    checkpoint_free(&c);
    uint64_t s = 99;
    for (int k = 0; k < 1200; k++) {
        size_t at = k < 24 ? (size_t)k : (size_t)(rng_next(&s) % len);
        unsigned char mask = (unsigned char)(1u << (rng_next(&s) % 8));
        buf[at] ^= mask;
        expect_refused(buf, len);
        buf[at] ^= mask;
    }
    free(buf);
}

static void wrong_magic_and_version_refused(void **state)
{
    (void)state;
    checkpoint c;
    unsigned char *buf;
    size_t len;
    make_ckpt(&c, "m", 1, 5, 5, 1, 16, 8);
    assert_int_equal(checkpoint_encode(&c, &buf, &len), 0);
    checkpoint_free(&c);
    memcpy(buf, "CCDSTATE", 8); /* an engine state is not a checkpoint */
    assert_non_null(strstr(expect_refused(buf, len), "bad magic"));
    memcpy(buf, "CCDCKPT1", 8);
    le_put_u32(buf + 8, CKPT_VERSION + 1);
    assert_non_null(strstr(expect_refused(buf, len), "version 3 not supported"));
    le_put_u32(buf + 8, 0);
    assert_non_null(strstr(expect_refused(buf, len), "version 0 not supported"));
    le_put_u32(buf + 8, CKPT_VERSION);
    le_put_u32(buf + 12, ccd_crc32(buf + 24, len - 24) ^ 1);
    assert_non_null(strstr(expect_refused(buf, len), "checksum mismatch"));
    free(buf);
}

/* A checkpoint of format 1 (no commit_floor per partition) still loads, with the floor unknown:
 * an upgraded worker must take over models from checkpoints the old one wrote. The version-1
 * bytes are the version-2 encoding of one offset without its last 8 bytes (the floor), as the
 * layout in checkpoint.c says. */
static void version_1_still_decodes(void **state)
{
    (void)state;
    checkpoint c, d;
    unsigned char *buf;
    size_t len;
    make_ckpt(&c, "m", 4, 6, 5, 1, 40, 12);
    c.offsets[0].commit_floor = 77;
    assert_int_equal(checkpoint_encode(&c, &buf, &len), 0);
    len -= 8;
    ccd_frame_seal(buf, "CCDCKPT1", 1, len - CCD_FRAME_BYTES);
    char err[512];
    assert_int_equal(checkpoint_decode(&d, buf, len, err, sizeof err), 0);
    assert_true(d.offsets[0].commit_floor == -1);
    c.offsets[0].commit_floor = -1;
    assert_ckpt_equal(&c, &d);
    checkpoint_free(&d);
    /* and a version-2 checkpoint cut the same way is refused, not misread */
    ccd_frame_seal(buf, "CCDCKPT1", 2, len - CCD_FRAME_BYTES);
    assert_non_null(strstr(expect_refused(buf, len), "truncated"));
    free(buf);
    checkpoint_free(&c);
}

/* Payload offsets for model "m" with an empty state: model length 0, "m" 4, block 5,
 * window 9, events 17, published 25, state length 33, user count 41, first user id 45. */
#define AT_BLOCK 5
#define AT_EVENTS 17
#define AT_STATE_LEN 33
#define AT_USERS 41
#define AT_USER0 45

static void lying_counts_refused(void **state)
{
    (void)state;
    checkpoint c;
    unsigned char *good, *buf;
    size_t len;
    make_ckpt(&c, "m", 1, 2, 2, 1, 0, 9);
    assert_int_equal(checkpoint_encode(&c, &good, &len), 0);
    checkpoint_free(&c);
    assert_int_equal(good[24 + AT_USERS], 2); /* the layout the offsets above assume */
    assert_int_equal(good[24 + AT_USER0], 8); /* "u0000003" */
    buf = malloc(len + 8);
    assert_non_null(buf);

#define EXPECT(patch, words)                                                                       \
    do {                                                                                           \
        memcpy(buf, good, len);                                                                    \
        size_t n = len;                                                                            \
        patch;                                                                                     \
        reseal(buf, n);                                                                            \
        const char *e = expect_refused(buf, n);                                                    \
        if (!strstr(e, words))                                                                     \
            fail_msg("expected \"%s\" in: %s", words, e);                                          \
    } while (0)

    EXPECT(le_put_u32(buf + 24 + AT_USERS, 0x7fffffff), "count 2147483647 too large for the");
    EXPECT(le_put_u32(buf + 24 + AT_USERS, 0xffffffff), "too large for the");
    EXPECT(le_put_u32(buf + 24 + AT_USER0, 1000), "length 1000 too large for the");
    EXPECT(buf[24 + AT_USER0 + 4 + 3] = 0, "string not NUL-free");
    EXPECT(le_put_u64(buf + 24 + AT_STATE_LEN, 1ull << 62), "state length");
    EXPECT(le_put_u32(buf + 24 + AT_BLOCK, (uint32_t)-2), "out of range");
    EXPECT(le_put_u64(buf + 24 + AT_EVENTS, (uint64_t)-5), "out of range");
    EXPECT(buf[24 + 4] = '/', "bad model id");
    EXPECT(le_put_u32(buf + 24, 0), "bad model id");
    EXPECT((buf[n] = 7, n++), "unexpected bytes at the end");
    /* the last offset record is u32 12, "ccd.events.x", i32 partition, i64 offset, i64 floor */
    assert_memory_equal(good + len - 32, "ccd.events.x", 12);
    EXPECT(le_put_u32(buf + len - 36, 300), "topic 0: length 300 too large for the");
    EXPECT(le_put_u32(buf + len - 36, 0), "offset 0: empty topic");
    EXPECT(le_put_u32(buf + len - 40, 2), "offset count 2 too large for the");
    EXPECT(le_put_u64(buf + len - 8, (uint64_t)-2), "negative partition, offset or commit floor");
#undef EXPECT
    free(buf);
    free(good);
}

/* ------------------------------------------------------------------------------------------ */
/* directory store */

static void save_keeps_newest(void **state)
{
    const char *tmp = *state;
    char dir[1024], mdir[2048], path[4200], err[512];
    snprintf(dir, sizeof dir, "%s/not/yet/there", tmp); /* created on the first save */
    snprintf(mdir, sizeof mdir, "%s/model-a", dir);
    checkpoint c, d;
    for (int b = 0; b <= 5; b++) {
        make_ckpt(&c, "model-a", b, 50, 40, 2, 256, (uint64_t)b);
        save_ok(dir, &c, 3);
        checkpoint_free(&c);
    }
    /* a crashed save's leftover is swept by the next save */
    snprintf(path, sizeof path, "%s/.tmp-block-00000006-1-0", mdir);
    write_file(path, "half", 4);
    make_ckpt(&c, "model-a", 6, 50, 40, 2, 256, 6);
    save_ok(dir, &c, 3);
    assert_int_equal(count_entries(mdir, ".tmp-"), 0);
    assert_int_equal(count_entries(mdir, ""), 3);
    for (int b = 0; b <= 6; b++)
        assert_int_equal(file_exists(dir, "model-a", b), b >= 4);
    assert_int_equal(load_from(dir, "model-a", &d, NULL, NULL, err, sizeof err), 1);
    assert_ckpt_equal(&c, &d);
    checkpoint_free(&d);

    /* the same block again (recomputed after a crash) replaces the file */
    c.events_total += 1000;
    save_ok(dir, &c, 3);
    assert_int_equal(count_entries(mdir, ""), 3);
    assert_int_equal(load_from(dir, "model-a", &d, NULL, NULL, err, sizeof err), 1);
    assert_true(d.events_total == c.events_total);
    checkpoint_free(&d);

    /* keep 1 leaves one file; keep < 1 and a block never folded are refused */
    c.block = 7;
    save_ok(dir, &c, 1);
    assert_int_equal(count_entries(mdir, ""), 1);
    assert_true(file_exists(dir, "model-a", 7));
    assert_int_equal(save_to(dir, &c, 0, err, sizeof err), -1);
    assert_non_null(strstr(err, "keep"));
    c.block = -1;
    assert_int_equal(save_to(dir, &c, 2, err, sizeof err), -1);
    assert_non_null(strstr(err, "block -1"));
    checkpoint_free(&c);

    /* a second model lives beside the first */
    make_ckpt(&c, "model-b", 0, 3, 3, 1, 0, 11);
    save_ok(dir, &c, 2);
    assert_int_equal(load_from(dir, "model-b", &d, NULL, NULL, err, sizeof err), 1);
    assert_ckpt_equal(&c, &d);
    checkpoint_free(&d);
    checkpoint_free(&c);
    assert_int_equal(load_from(dir, "model-a", &d, NULL, NULL, err, sizeof err), 1);
    assert_int_equal(d.block, 7);
    checkpoint_free(&d);

    /* created 0644 less the umask: at least the owner can read and write it */
    struct stat st;
    snprintf(path, sizeof path, "%s/block-%08d.ckpt", mdir, 7);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0600, 0600);
}

static void corrupt_newest_falls_back(void **state)
{
    const char *dir = *state;
    char mdir[2048], path[4200], err[512];
    snprintf(mdir, sizeof mdir, "%s/m", dir);
    checkpoint c[4], d;
    for (int b = 1; b <= 3; b++) {
        make_ckpt(&c[b], "m", b, 300, 200, 4, 4096, (uint64_t)b);
        save_ok(dir, &c[b], 5);
    }
    warnings w = {0};

    /* overwrite bytes in the middle of the newest */
    snprintf(path, sizeof path, "%s/block-00000003.ckpt", mdir);
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, "garbage!", 8, 2000), 8);
    assert_int_equal(close(fd), 0);
    assert_int_equal(load_from(dir, "m", &d, collect_warning, &w, err, sizeof err), 1);
    assert_ckpt_equal(&c[2], &d);
    checkpoint_free(&d);
    assert_int_equal(w.n, 1);
    assert_non_null(strstr(w.all, "block-00000003.ckpt"));
    assert_non_null(strstr(w.all, "checksum mismatch"));

    /* a torn (truncated) block 2 and an empty block 4 fall back to block 1 */
    snprintf(path, sizeof path, "%s/block-00000002.ckpt", mdir);
    assert_int_equal(truncate(path, 1000), 0);
    snprintf(path, sizeof path, "%s/block-00000004.ckpt", mdir);
    write_file(path, "", 0);
    memset(&w, 0, sizeof w);
    assert_int_equal(load_from(dir, "m", &d, collect_warning, &w, err, sizeof err), 1);
    assert_ckpt_equal(&c[1], &d);
    checkpoint_free(&d);
    assert_int_equal(w.n, 3);
    assert_non_null(strstr(w.all, "block-00000004.ckpt: truncated header"));
    assert_non_null(strstr(w.all, "block-00000002.ckpt: truncated"));

    /* a valid file under the wrong name or in the wrong model's directory is not taken */
    char from[4200];
    snprintf(from, sizeof from, "%s/block-00000001.ckpt", mdir);
    snprintf(path, sizeof path, "%s/block-00000009.ckpt", mdir);
    unsigned char *bytes;
    size_t len;
    assert_int_equal(checkpoint_encode(&c[1], &bytes, &len), 0);
    write_file(path, bytes, len);
    free(bytes);
    memset(&w, 0, sizeof w);
    assert_int_equal(load_from(dir, "m", &d, collect_warning, &w, err, sizeof err), 1);
    assert_int_equal(d.block, 1);
    checkpoint_free(&d);
    assert_non_null(strstr(w.all, "block-00000009.ckpt: it holds model m block 1"));
    assert_int_equal(unlink(path), 0);

    /* every file bad: an error, not a silent fresh start */
    assert_int_equal(truncate(from, 10), 0);
    memset(&w, 0, sizeof w);
    assert_int_equal(load_from(dir, "m", &d, collect_warning, &w, err, sizeof err), -1);
    assert_empty(&d);
    assert_int_equal(w.n, 4);
    assert_non_null(strstr(err, "none of the 4"));

    /* the next save is taken as the newest again */
    save_ok(dir, &c[3], 5);
    assert_int_equal(load_from(dir, "m", &d, NULL, NULL, err, sizeof err), 1);
    assert_ckpt_equal(&c[3], &d);
    checkpoint_free(&d);

    for (int b = 1; b <= 3; b++)
        checkpoint_free(&c[b]);
}

static void empty_or_missing_directory(void **state)
{
    const char *dir = *state;
    char sub[2048], path[4200], err[512];
    checkpoint d;
    warnings w = {0};
    /* the store's directory is made when the store opens (a bad path fails at start-up); gone
     * again, it holds nothing, which is not an error */
    snprintf(sub, sizeof sub, "%s/missing/below", dir);
    ckpt_store s;
    assert_int_equal(ckpt_store_open_dir(&s, sub, 2, err, sizeof err), 0);
    assert_int_equal(count_entries(sub, ""), 0);
    assert_int_equal(rmdir(sub), 0);
    assert_int_equal(ckpt_store_load_latest(&s, "m", &d, collect_warning, &w, err, sizeof err), 0);
    assert_empty(&d);
    ckpt_store_close(&s);
    snprintf(sub, sizeof sub, "%s/missing", dir);
    assert_int_equal(rmdir(sub), 0);
    assert_int_equal(load_from(dir, "m", &d, collect_warning, &w, err, sizeof err), 0);
    assert_empty(&d);
    /* files that are not ours (non-canonical names, temporaries) are ignored */
    snprintf(sub, sizeof sub, "%s/m", dir);
    assert_int_equal(mkdir(sub, 0755), 0);
    assert_int_equal(load_from(dir, "m", &d, collect_warning, &w, err, sizeof err), 0);
    const char *others[] = {"notes.txt", "block-5.ckpt", "block-abc.ckpt", "block-00000001.ckpt~",
                            ".tmp-block-00000003-1-1"};
    for (size_t k = 0; k < sizeof others / sizeof others[0]; k++) {
        snprintf(path, sizeof path, "%s/%s", sub, others[k]);
        write_file(path, "x", 1);
    }
    assert_int_equal(load_from(dir, "m", &d, collect_warning, &w, err, sizeof err), 0);
    assert_empty(&d);
    assert_int_equal(w.n, 0);
    /* the model's path is a file: the directory cannot be read */
    snprintf(path, sizeof path, "%s/f", dir);
    write_file(path, "x", 1);
    assert_int_equal(load_from(dir, "f", &d, collect_warning, &w, err, sizeof err), -1);
    assert_non_null(strstr(err, "/f"));
    assert_empty(&d);
}

static void bad_model_ids_refused(void **state)
{
    const char *dir = *state;
    char err[512], long_id[201];
    memset(long_id, 'a', 200);
    long_id[200] = '\0';
    const char *bad[] = {"", "../x", "a/b", ".hidden", ".", "..", "sp ace", "uni\xc3\xa9", long_id};
    checkpoint c, d;
    make_ckpt(&c, "ok", 0, 2, 2, 1, 4, 12);
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        snprintf(c.model, sizeof c.model, "%s", bad[k]);
        if (strlen(bad[k]) < sizeof c.model) {
            err[0] = '\0';
            assert_int_equal(save_to(dir, &c, 2, err, sizeof err), -1);
            assert_non_null(strstr(err, "bad model id"));
        }
        err[0] = '\0';
        assert_int_equal(load_from(dir, bad[k], &d, NULL, NULL, err, sizeof err), -1);
        assert_non_null(strstr(err, "bad model id"));
        assert_empty(&d);
    }
    /* a model field with no terminator in its 128 bytes */
    memset(c.model, 'a', sizeof c.model);
    assert_int_equal(save_to(dir, &c, 2, err, sizeof err), -1);
    assert_non_null(strstr(err, "bad model id"));
    /* the longest valid id works */
    memset(c.model, 'a', 127);
    c.model[127] = '\0';
    save_ok(dir, &c, 2);
    assert_int_equal(load_from(dir, c.model, &d, NULL, NULL, err, sizeof err), 1);
    assert_ckpt_equal(&c, &d);
    checkpoint_free(&d);
    checkpoint_free(&c);
    assert_int_equal(count_entries(dir, ""), 1); /* nothing was created for the bad ones */
}

/* In a child (the limit and the signal disposition stay out of the test runner): with
 * RLIMIT_FSIZE below the checkpoint's size, write fails with EFBIG as on a full disk. */
static int full_disk_child(const char *dir, const char *mdir)
{
    struct rlimit rl = {.rlim_cur = 8192, .rlim_max = 8192};
    signal(SIGXFSZ, SIG_IGN);
    if (setrlimit(RLIMIT_FSIZE, &rl) != 0) {
        fprintf(stderr, "setrlimit: %s\n", strerror(errno));
        return 2;
    }
    checkpoint c, d;
    char err[512];
    make_ckpt(&c, "m", 2, 3000, 2000, 6, 20000, 14);
    int rc = save_to(dir, &c, 1, err, sizeof err);
    checkpoint_free(&c);
    if (rc != -1) {
        fprintf(stderr, "save succeeded past RLIMIT_FSIZE\n");
        return 3;
    }
    if (!strstr(err, strerror(EFBIG)) || !strstr(err, mdir) || !strstr(err, "write")) {
        fprintf(stderr, "unexpected message: %s\n", err);
        return 4;
    }
    if (count_entries(mdir, ".tmp-") != 0) {
        fprintf(stderr, "temporary file left behind\n");
        return 5;
    }
    if (load_from(dir, "m", &d, NULL, NULL, err, sizeof err) != 1 || d.block != 1) {
        fprintf(stderr, "previous checkpoint lost: %s\n", err);
        return 6;
    }
    checkpoint_free(&d);
    return 0;
}

static void full_disk_keeps_previous(void **state)
{
    const char *dir = *state;
    char mdir[2048], err[512];
    snprintf(mdir, sizeof mdir, "%s/m", dir);
    checkpoint c, d;
    make_ckpt(&c, "m", 1, 3000, 2000, 6, 20000, 13);
    save_ok(dir, &c, 1);

    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(full_disk_child(dir, mdir));
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    /* seen from here too: only the previous file, and it loads unchanged */
    assert_int_equal(count_entries(mdir, ""), 1);
    assert_int_equal(load_from(dir, "m", &d, NULL, NULL, err, sizeof err), 1);
    assert_ckpt_equal(&c, &d);
    checkpoint_free(&d);
    checkpoint_free(&c);
}

/* ------------------------------------------------------------------------------------------ */
/* owners and fenced saves (issue 17) */

static uint64_t claim_in(const char *dir, const char *model, const char *member, const char *source,
                         ckpt_claim *cl)
{
    ckpt_store s;
    char err[512];
    if (ckpt_store_open_dir(&s, dir, 2, err, sizeof err) != 0 ||
        ckpt_store_claim(&s, model, member, source, cl, err, sizeof err) != 0)
        fail_msg("claim %s as %s: %s", model, member, err);
    ckpt_store_close(&s);
    return cl->epoch;
}

static int save_as(const char *dir, const checkpoint *c, uint64_t epoch, char *err, size_t errlen)
{
    ckpt_store s;
    if (ckpt_store_open_dir(&s, dir, 2, err, errlen) != 0)
        return -1;
    int rc = ckpt_store_save(&s, c, epoch, err, errlen);
    ckpt_store_close(&s);
    return rc;
}

/* Every claim, from any store instance, is above every earlier one and names its predecessor;
 * a claim file far in the future still gets a successor; owner/ stays small. */
static void claims_monotonic(void **state)
{
    const char *dir = *state;
    char odir[2048], path[4200];
    ckpt_claim a, b, c;
    uint64_t ea = claim_in(dir, "m", "member-a", "in/0", &a);
    assert_true(ea > 0);
    assert_string_equal(a.prev_member, "");
    assert_string_equal(a.prev_source, "");
    uint64_t eb = claim_in(dir, "m", "member-b", "in/1", &b);
    assert_true(eb > ea);
    assert_string_equal(b.prev_member, "member-a");
    assert_string_equal(b.prev_source, "in/0");
    /* a claim made by a clock far ahead: the next one goes above it, not back to the clock */
    snprintf(odir, sizeof odir, "%s/m/owner", dir);
    snprintf(path, sizeof path, "%s/e-%020llu", odir, 90000000000000000ull);
    write_file(path, "member=future\nsource=in/7\nclaimed_ms=1\n", 39);
    assert_int_equal(claim_in(dir, "m", "member-c", "in/2", &c), 90000000000000001ull);
    assert_string_equal(c.prev_member, "future");
    assert_string_equal(c.prev_source, "in/7");
    uint64_t last = c.epoch;
    for (int k = 0; k < 12; k++) {
        assert_true(claim_in(dir, "m", "member-d", "in/3", &c) > last);
        last = c.epoch;
    }
    assert_int_equal(count_entries(odir, "e-"), 8);
    /* other models are independent */
    assert_true(claim_in(dir, "other", "x", "", &a) < 90000000000000000ull);
}

/* A stalled owner's save after a newer claim is refused and leaves the new owner's checkpoint
 * (and no file of its own); the new owner's and unfenced saves go through. */
static void older_epoch_save_fenced(void **state)
{
    const char *dir = *state;
    char mdir[2048], err[1024];
    ckpt_claim a, b;
    uint64_t ea = claim_in(dir, "m", "member-a", "in/0", &a);
    checkpoint c, d;
    make_ckpt(&c, "m", 3, 50, 40, 2, 256, 21);
    assert_int_equal(save_as(dir, &c, ea, err, sizeof err), 0);
    uint64_t eb = claim_in(dir, "m", "member-b", "in/0", &b);
    checkpoint_free(&c);
    make_ckpt(&c, "m", 4, 50, 40, 2, 256, 22);
    assert_int_equal(save_as(dir, &c, eb, err, sizeof err), 0);
    checkpoint stale;
    make_ckpt(&stale, "m", 5, 50, 40, 2, 256, 23);
    err[0] = '\0';
    assert_int_equal(save_as(dir, &stale, ea, err, sizeof err), CKPT_FENCED);
    assert_non_null(strstr(err, "member-b"));
    assert_non_null(strstr(err, "refused"));
    /* also when it would replace the new owner's block */
    stale.block = 4;
    assert_int_equal(save_as(dir, &stale, ea, err, sizeof err), CKPT_FENCED);
    snprintf(mdir, sizeof mdir, "%s/m", dir);
    assert_int_equal(count_entries(mdir, ".tmp-"), 0);
    assert_false(file_exists(dir, "m", 5));
    assert_int_equal(load_from(dir, "m", &d, NULL, NULL, err, sizeof err), 1);
    assert_ckpt_equal(&c, &d);
    checkpoint_free(&d);
    /* the owner's own epoch again, and an unfenced tool, still save */
    checkpoint_free(&c);
    make_ckpt(&c, "m", 6, 50, 40, 2, 256, 24);
    assert_int_equal(save_as(dir, &c, eb, err, sizeof err), 0);
    c.block = 7;
    assert_int_equal(save_as(dir, &c, 0, err, sizeof err), 0);
    assert_true(file_exists(dir, "m", 7));
    checkpoint_free(&c);
    checkpoint_free(&stale);
}

/* The pre-write sweep removes the temporary files of older owners only: a newer owner's save in
 * progress must survive a stale writer (today's sweep deleted every .tmp-*). */
static void only_older_tmp_swept(void **state)
{
    const char *dir = *state;
    char mdir[2048], older[4200], newer[4200], legacy[4200], err[512];
    ckpt_claim a;
    uint64_t ea = claim_in(dir, "m", "member-a", "in/0", &a);
    snprintf(mdir, sizeof mdir, "%s/m", dir);
    snprintf(older, sizeof older, "%s/.tmp-block-00000002-e%llu-1-0", mdir,
             (unsigned long long)(ea - 1));
    snprintf(newer, sizeof newer, "%s/.tmp-block-00000002-e%llu-1-0", mdir,
             (unsigned long long)(ea + 1));
    snprintf(legacy, sizeof legacy, "%s/.tmp-block-00000002-1-0", mdir);
    write_file(older, "old", 3);
    write_file(newer, "new", 3);
    write_file(legacy, "pre", 3);
    checkpoint c;
    make_ckpt(&c, "m", 2, 50, 40, 2, 256, 31);
    assert_int_equal(save_as(dir, &c, ea, err, sizeof err), 0);
    assert_int_equal(access(older, F_OK), -1);
    assert_int_equal(access(legacy, F_OK), -1);
    assert_int_equal(access(newer, F_OK), 0);
    assert_int_equal(count_entries(mdir, ".tmp-"), 1);
    /* an unfenced save leaves fenced temporaries alone too */
    c.block = 3;
    assert_int_equal(save_as(dir, &c, 0, err, sizeof err), 0);
    assert_int_equal(access(newer, F_OK), 0);
    checkpoint_free(&c);
}

/* The checksum is the standard CRC-32: its check value, and the same over a split input. */
static void crc32_is_the_standard_one(void **state)
{
    (void)state;
    const unsigned char check[] = "123456789";
    assert_int_equal(ccd_crc32(check, 9), 0xCBF43926u);
    assert_int_equal(ccd_crc32(check, 0), 0u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(crc32_is_the_standard_one),
        cmocka_unit_test(round_trip_realistic),
        cmocka_unit_test(encode_refuses_what_decode_would),
        cmocka_unit_test(every_truncation_refused),
        cmocka_unit_test(every_resealed_prefix_refused),
        cmocka_unit_test(bit_flips_refused),
        cmocka_unit_test(wrong_magic_and_version_refused),
        cmocka_unit_test(version_1_still_decodes),
        cmocka_unit_test(lying_counts_refused),
        cmocka_unit_test_setup_teardown(save_keeps_newest, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(corrupt_newest_falls_back, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(empty_or_missing_directory, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(bad_model_ids_refused, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(full_disk_keeps_previous, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(claims_monotonic, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(older_epoch_save_fenced, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(only_older_tmp_swept, setup_dir, teardown_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
