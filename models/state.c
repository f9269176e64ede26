/* state: see state.h. */
#include "state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "dense.h"

#define HEADER 24 /* magic 8 + version 4 + crc 4 + length 8 */

uint32_t ccd_crc32(const unsigned char *p, size_t n)
{
    /* zlib's crc32 takes at most UINT_MAX bytes per call; states can be larger */
    uLong c = crc32(0L, Z_NULL, 0);
    while (n > 0) {
        uInt part = n > 1u << 30 ? 1u << 30 : (uInt)n;
        c = crc32(c, p, part);
        p += part;
        n -= part;
    }
    return (uint32_t)c;
}

/* ------------------------------------------------------------------------------------------ */
/* writing */

typedef struct {
    unsigned char *p;
    size_t n, cap;
    int failed;
} out_buf;

static void put(out_buf *o, const void *src, size_t n)
{
    if (o->failed)
        return;
    if (o->n + n > o->cap) {
        size_t cap = (o->cap ? o->cap : 4096);
        while (cap < o->n + n)
            cap *= 2;
        unsigned char *p = realloc(o->p, cap);
        if (!p) {
            o->failed = 1;
            return;
        }
        o->p = p;
        o->cap = cap;
    }
    memcpy(o->p + o->n, src, n);
    o->n += n;
}

/* Little-endian writers (the in-memory float/int layout of x86 and ARM is already LE; the
 * explicit byte order keeps the format portable). */
static void put_u32(out_buf *o, uint32_t v)
{
    unsigned char b[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 24)};
    put(o, b, 4);
}

static void put_u64(out_buf *o, uint64_t v)
{
    put_u32(o, (uint32_t)v);
    put_u32(o, (uint32_t)(v >> 32));
}

static void put_i32s(out_buf *o, const int *v, size_t n)
{
    for (size_t k = 0; k < n; k++)
        put_u32(o, (uint32_t)v[k]);
}

static void put_floats(out_buf *o, const float *v, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        uint32_t u;
        memcpy(&u, &v[k], 4);
        put_u32(o, u);
    }
}

static void put_table(out_buf *o, const float *t, size_t n)
{
    put_u32(o, t != NULL);
    if (t)
        put_floats(o, t, n);
}

int ccd_state_serialize(const ccd_state *st, unsigned char **buf, size_t *len)
{
    out_buf o = {0};
    unsigned char zero[HEADER] = {0};
    put(&o, zero, HEADER);
    const int ints[] = {st->block, st->n_users, st->n_items, st->n_teachers, st->student_dim,
                        st->proxy_users, st->proxy_items};
    put_i32s(&o, ints, sizeof ints / sizeof ints[0]);
    const size_t nodes = (size_t)st->n_users + (size_t)st->n_items;
    for (int m = 0; m < st->n_teachers; m++) {
        put_u32(&o, (uint32_t)st->teacher_spec[m].type);
        put_u32(&o, (uint32_t)st->teacher_spec[m].dim);
        put_u64(&o, st->teacher_spec[m].seed);
    }
    for (int m = 0; m < st->n_teachers; m++)
        put_table(&o, st->teacher[m], nodes * (size_t)st->teacher_spec[m].dim);
    put_table(&o, st->distilled, nodes * (size_t)st->student_dim);
    put_table(&o, st->student, nodes * (size_t)st->student_dim);
    const size_t pnodes = (size_t)st->proxy_users + (size_t)st->proxy_items;
    put_table(&o, st->proxy_s, pnodes * (size_t)st->student_dim);
    put_table(&o, st->proxy_p, pnodes * (size_t)st->student_dim);
    put_u32(&o, (uint32_t)st->train.n_rows);
    put_u32(&o, (uint32_t)st->train.n_cols);
    put_u64(&o, (uint64_t)st->train.nnz);
    for (int r = 0; st->train.indptr && r <= st->train.n_rows; r++)
        put_u64(&o, (uint64_t)st->train.indptr[r]);
    put_i32s(&o, st->train.indices, (size_t)st->train.nnz);
    put_u32(&o, (uint32_t)st->n_active_users);
    put_i32s(&o, st->active_users, (size_t)st->n_active_users);
    put_u32(&o, (uint32_t)st->n_active_items);
    put_i32s(&o, st->active_items, (size_t)st->n_active_items);
    put_u32(&o, (uint32_t)(st->ensemble_top ? st->ensemble_top_k : 0));
    if (st->ensemble_top)
        put_i32s(&o, st->ensemble_top, (size_t)st->n_users * (size_t)st->ensemble_top_k);
    if (o.failed) {
        free(o.p);
        return -1;
    }
    /* header */
    size_t payload = o.n - HEADER;
    memcpy(o.p, "CCDSTATE", 8);
    out_buf h = {.p = o.p + 8, .cap = 16};
    put_u32(&h, CCD_STATE_VERSION);
    put_u32(&h, ccd_crc32(o.p + HEADER, payload));
    put_u64(&h, payload);
    *buf = o.p;
    *len = o.n;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* reading */

typedef struct {
    const unsigned char *p;
    size_t n, at;
    int failed;
} in_buf;

static uint32_t get_u32(in_buf *in)
{
    if (in->failed || in->n - in->at < 4) {
        in->failed = 1;
        return 0;
    }
    const unsigned char *b = in->p + in->at;
    in->at += 4;
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static uint64_t get_u64(in_buf *in)
{
    uint64_t lo = get_u32(in);
    return lo | (uint64_t)get_u32(in) << 32;
}

/* Whether n elements of 4 bytes remain (guards every allocation against corrupt sizes). */
static int have(const in_buf *in, uint64_t n)
{
    return !in->failed && n <= (in->n - in->at) / 4;
}

static int *get_i32s(in_buf *in, uint64_t n)
{
    if (!have(in, n)) {
        in->failed = 1;
        return NULL;
    }
    int *v = malloc((size_t)(n ? n : 1) * sizeof *v);
    if (!v) {
        in->failed = 1;
        return NULL;
    }
    for (uint64_t k = 0; k < n; k++)
        v[k] = (int)get_u32(in);
    return v;
}

static float *get_table(in_buf *in, uint64_t n, int *present_out)
{
    uint32_t present = get_u32(in);
    *present_out = 0;
    if (in->failed || present > 1) {
        in->failed = 1;
        return NULL;
    }
    if (!present)
        return NULL;
    if (!have(in, n)) {
        in->failed = 1;
        return NULL;
    }
    float *t = ccd_floats((size_t)n);
    if (!t) {
        in->failed = 1;
        return NULL;
    }
    for (uint64_t k = 0; k < n; k++) {
        uint32_t u = get_u32(in);
        memcpy(&t[k], &u, 4);
    }
    *present_out = 1;
    return t;
}

static int fail(ccd_state *st, char *err, size_t errlen, const char *why)
{
    ccd_state_free(st);
    snprintf(err, errlen, "state: %s", why);
    return -1;
}

int ccd_state_deserialize(ccd_state *st, const unsigned char *buf, size_t len, char *err,
                          size_t errlen)
{
    ccd_state_init(st);
    if (len < HEADER || memcmp(buf, "CCDSTATE", 8) != 0)
        return fail(st, err, errlen, len < HEADER ? "truncated header" : "not a ccd-stream state (bad magic)");
    in_buf h = {.p = buf + 8, .n = 16};
    uint32_t version = get_u32(&h), crc = get_u32(&h);
    uint64_t payload = get_u64(&h);
    if (version != CCD_STATE_VERSION) {
        snprintf(err, errlen, "state: format version %u, this build reads %d", version, CCD_STATE_VERSION);
        return -1;
    }
    if (payload != len - HEADER)
        return fail(st, err, errlen, payload > len - HEADER ? "truncated (payload shorter than its header says)"
                                                            : "trailing bytes after the payload");
    if (ccd_crc32(buf + HEADER, (size_t)payload) != crc)
        return fail(st, err, errlen, "checksum mismatch (corrupted)");
    in_buf in = {.p = buf + HEADER, .n = (size_t)payload};
    int v[7];
    for (int k = 0; k < 7; k++)
        v[k] = (int)get_u32(&in);
    st->block = v[0];
    st->n_users = v[1];
    st->n_items = v[2];
    st->n_teachers = v[3];
    st->student_dim = v[4];
    st->proxy_users = v[5];
    st->proxy_items = v[6];
    if (in.failed || st->block < -1 || st->n_users < 0 || st->n_items < 0 || st->n_teachers < 0 ||
        st->n_teachers > CCD_MAX_TEACHERS || st->student_dim < 0 || st->proxy_users < 0 ||
        st->proxy_items < 0 || st->proxy_users > st->n_users || st->proxy_items > st->n_items)
        return fail(st, err, errlen, "inconsistent sizes");
    for (int m = 0; m < st->n_teachers; m++) {
        st->teacher_spec[m].type = (ccd_model_type)get_u32(&in);
        st->teacher_spec[m].dim = (int)get_u32(&in);
        st->teacher_spec[m].seed = get_u64(&in);
        if (in.failed || (st->teacher_spec[m].type != CCD_MODEL_LIGHTGCN && st->teacher_spec[m].type != CCD_MODEL_MF) ||
            st->teacher_spec[m].dim <= 0 || st->teacher_spec[m].dim > 65536)
            return fail(st, err, errlen, "bad teacher spec");
    }
    const uint64_t nodes = (uint64_t)st->n_users + (uint64_t)st->n_items;
    const uint64_t pnodes = (uint64_t)st->proxy_users + (uint64_t)st->proxy_items;
    int present;
    for (int m = 0; m < st->n_teachers; m++) {
        st->teacher[m] = get_table(&in, nodes * (uint64_t)st->teacher_spec[m].dim, &present);
        if (in.failed || !present)
            return fail(st, err, errlen, "missing or truncated teacher table");
    }
    st->distilled = get_table(&in, nodes * (uint64_t)st->student_dim, &present);
    st->student = get_table(&in, nodes * (uint64_t)st->student_dim, &present);
    st->proxy_s = get_table(&in, pnodes * (uint64_t)st->student_dim, &present);
    st->proxy_p = get_table(&in, pnodes * (uint64_t)st->student_dim, &present);
    if (in.failed)
        return fail(st, err, errlen, "truncated student tables");
    int rows = (int)get_u32(&in), cols = (int)get_u32(&in);
    uint64_t nnz = get_u64(&in);
    if (in.failed || rows != st->n_users || cols != st->n_items || !have(&in, 2 * ((uint64_t)rows + 1) + nnz))
        return fail(st, err, errlen, "bad train matrix header");
    st->train.n_rows = rows;
    st->train.n_cols = cols;
    st->train.nnz = (int64_t)nnz;
    st->train.indptr = malloc(((size_t)rows + 1) * sizeof *st->train.indptr);
    if (!st->train.indptr)
        return fail(st, err, errlen, "out of memory");
    for (int r = 0; r <= rows; r++) {
        st->train.indptr[r] = (int64_t)get_u64(&in);
        if (st->train.indptr[r] < (r ? st->train.indptr[r - 1] : 0) || (uint64_t)st->train.indptr[r] > nnz)
            return fail(st, err, errlen, "bad train row pointers");
    }
    if (st->train.indptr[0] != 0 || (uint64_t)st->train.indptr[rows] != nnz)
        return fail(st, err, errlen, "bad train row pointers");
    st->train.indices = get_i32s(&in, nnz);
    for (uint64_t e = 0; !in.failed && e < nnz; e++)
        if (st->train.indices[e] < 0 || st->train.indices[e] >= cols)
            return fail(st, err, errlen, "train item id out of range");
    st->n_active_users = (int)get_u32(&in);
    st->active_users = st->n_active_users >= 0 ? get_i32s(&in, (uint64_t)st->n_active_users) : NULL;
    st->n_active_items = (int)get_u32(&in);
    st->active_items = st->n_active_items >= 0 ? get_i32s(&in, (uint64_t)st->n_active_items) : NULL;
    if (in.failed || !st->active_users || !st->active_items)
        return fail(st, err, errlen, "truncated active lists");
    for (int k = 0; k < st->n_active_users; k++)
        if (st->active_users[k] < 0 || st->active_users[k] >= st->n_users)
            return fail(st, err, errlen, "active user out of range");
    for (int k = 0; k < st->n_active_items; k++)
        if (st->active_items[k] < 0 || st->active_items[k] >= st->n_items)
            return fail(st, err, errlen, "active item out of range");
    uint32_t topk = get_u32(&in);
    if (in.failed || topk > 100000)
        return fail(st, err, errlen, "bad ensemble top-list size");
    if (topk > 0) {
        st->ensemble_top_k = (int)topk;
        st->ensemble_top = get_i32s(&in, (uint64_t)st->n_users * topk);
        if (in.failed)
            return fail(st, err, errlen, "truncated ensemble top lists");
        for (uint64_t e = 0; e < (uint64_t)st->n_users * topk; e++)
            if (st->ensemble_top[e] < -1 || st->ensemble_top[e] >= st->n_items)
                return fail(st, err, errlen, "ensemble top item out of range");
    }
    if (in.at != in.n)
        return fail(st, err, errlen, "unexpected bytes at the end of the payload");
    return 0;
}
