/* state: see state.h. The frame (magic, version, CRC, length) and the byte order are le.h's. */
#include "state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dense.h"
#include "le.h"

#define MAGIC "CCDSTATE"

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

static void put_u32(out_buf *o, uint32_t v)
{
    unsigned char b[4];
    le_put_u32(b, v);
    put(o, b, 4);
}

static void put_u64(out_buf *o, uint64_t v)
{
    unsigned char b[8];
    le_put_u64(b, v);
    put(o, b, 8);
}

static void put_i32s(out_buf *o, const int *v, size_t n)
{
    for (size_t k = 0; k < n; k++)
        put_u32(o, (uint32_t)v[k]);
}

static void put_floats(out_buf *o, const float *v, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        unsigned char b[4];
        le_put_f32(b, v[k]);
        put(o, b, 4);
    }
}

static void put_table(out_buf *o, const float *t, size_t n)
{
    put_u32(o, t != NULL);
    if (t)
        put_floats(o, t, n);
}

/* a 0/1 pattern: rows, cols, nnz, the row pointers, the column ids */
static void put_csr(out_buf *o, const ccd_csr *a)
{
    put_u32(o, (uint32_t)a->n_rows);
    put_u32(o, (uint32_t)a->n_cols);
    put_u64(o, (uint64_t)a->nnz);
    for (int r = 0; a->indptr && r <= a->n_rows; r++)
        put_u64(o, (uint64_t)a->indptr[r]);
    put_i32s(o, a->indices, (size_t)a->nnz);
}

int ccd_state_serialize(const ccd_state *st, unsigned char **buf, size_t *len)
{
    out_buf o = {0};
    unsigned char zero[CCD_FRAME_BYTES] = {0};
    put(&o, zero, CCD_FRAME_BYTES); /* the frame, sealed once the payload is complete */
    const int ints[] = {st->block,       st->n_users,     st->n_items,    st->n_teachers,
                        st->student_dim, st->proxy_users, st->proxy_items};
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
    put_csr(&o, &st->train);
    put_u32(&o, (uint32_t)st->n_active_users);
    put_i32s(&o, st->active_users, (size_t)st->n_active_users);
    put_u32(&o, (uint32_t)st->n_active_items);
    put_i32s(&o, st->active_items, (size_t)st->n_active_items);
    put_u32(&o, (uint32_t)(st->ensemble_top ? st->ensemble_top_k : 0));
    if (st->ensemble_top)
        put_i32s(&o, st->ensemble_top, (size_t)st->n_users * (size_t)st->ensemble_top_k);
    const int with_history = st->history.indptr != NULL;
    if (with_history) {
        put_csr(&o, &st->history);
        for (int64_t e = 0; e < st->history.nnz; e++)
            put_u32(&o, (uint32_t)(int)st->history.values[e]);
    }
    if (o.failed) {
        free(o.p);
        return -1;
    }
    ccd_frame_seal(o.p, MAGIC, with_history ? CCD_STATE_VERSION : 1, o.n - CCD_FRAME_BYTES);
    *buf = o.p;
    *len = o.n;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* reading: every get past the end (or after a failure) sets `failed` and yields 0, so a run of
 * reads is checked once at its end; every size is checked against the bytes left before it
 * drives an allocation. */

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
    in->at += 4;
    return le_get_u32(in->p + in->at - 4);
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
    for (uint64_t k = 0; k < n; k++)
        t[k] = le_get_f32(in->p + in->at + 4 * k);
    in->at += 4 * (size_t)n;
    *present_out = 1;
    return t;
}

/* The readers below return NULL when what they read is consistent, else the reason. */

/* sizes and teacher specs */
static const char *read_sizes(in_buf *in, ccd_state *st)
{
    int v[7];
    for (int k = 0; k < 7; k++)
        v[k] = (int)get_u32(in);
    st->block = v[0];
    st->n_users = v[1];
    st->n_items = v[2];
    st->n_teachers = v[3];
    st->student_dim = v[4];
    st->proxy_users = v[5];
    st->proxy_items = v[6];
    if (in->failed || st->block < -1 || st->n_users < 0 || st->n_items < 0 || st->n_teachers < 0 ||
        st->n_teachers > CCD_MAX_TEACHERS || st->student_dim < 0 || st->proxy_users < 0 ||
        st->proxy_items < 0 || st->proxy_users > st->n_users || st->proxy_items > st->n_items)
        return "inconsistent sizes";
    for (int m = 0; m < st->n_teachers; m++) {
        ccd_teacher_spec *t = &st->teacher_spec[m];
        t->type = (ccd_model_type)get_u32(in);
        t->dim = (int)get_u32(in);
        t->seed = get_u64(in);
        if (in->failed || (t->type != CCD_MODEL_LIGHTGCN && t->type != CCD_MODEL_MF) ||
            t->dim <= 0 || t->dim > 65536)
            return "bad teacher spec";
    }
    return NULL;
}

/* teachers (n_users + n_items) x dim_m each; D_k and CL_k, the proxies (proxy nodes) x student_dim
 */
static const char *read_tables(in_buf *in, ccd_state *st)
{
    const uint64_t nodes = (uint64_t)st->n_users + (uint64_t)st->n_items;
    const uint64_t pnodes = (uint64_t)st->proxy_users + (uint64_t)st->proxy_items;
    int present;
    for (int m = 0; m < st->n_teachers; m++) {
        st->teacher[m] = get_table(in, nodes * (uint64_t)st->teacher_spec[m].dim, &present);
        if (in->failed || !present)
            return "missing or truncated teacher table";
    }
    st->distilled = get_table(in, nodes * (uint64_t)st->student_dim, &present);
    st->student = get_table(in, nodes * (uint64_t)st->student_dim, &present);
    st->proxy_s = get_table(in, pnodes * (uint64_t)st->student_dim, &present);
    st->proxy_p = get_table(in, pnodes * (uint64_t)st->student_dim, &present);
    return in->failed ? "truncated student tables" : NULL;
}

/* a pattern of (n_users x n_items) pairs, row pointers non-decreasing from 0 to nnz: block k's
 * train pairs, or the scoring history */
static const char *read_csr(in_buf *in, const ccd_state *st, ccd_csr *a)
{
    int rows = (int)get_u32(in), cols = (int)get_u32(in);
    uint64_t nnz = get_u64(in);
    if (in->failed || rows != st->n_users || cols != st->n_items ||
        !have(in, 2 * ((uint64_t)rows + 1) + nnz))
        return "bad pair matrix header";
    a->n_rows = rows;
    a->n_cols = cols;
    a->nnz = (int64_t)nnz;
    if (!(a->indptr = malloc(((size_t)rows + 1) * sizeof *a->indptr)))
        return "out of memory";
    for (int r = 0; r <= rows; r++) {
        a->indptr[r] = (int64_t)get_u64(in);
        if (a->indptr[r] < (r ? a->indptr[r - 1] : 0) || (uint64_t)a->indptr[r] > nnz)
            return "bad pair row pointers";
    }
    if (a->indptr[0] != 0 || (uint64_t)a->indptr[rows] != nnz)
        return "bad pair row pointers";
    a->indices = get_i32s(in, nnz);
    for (uint64_t e = 0; !in->failed && e < nnz; e++)
        if (a->indices[e] < 0 || a->indices[e] >= cols)
            return "pair item id out of range";
    return in->failed ? "truncated pair matrix" : NULL;
}

/* the scoring history (version 2): its pairs, then the block each comes from */
static const char *read_history(in_buf *in, ccd_state *st)
{
    ccd_csr *h = &st->history;
    const char *bad = read_csr(in, st, h);
    if (bad)
        return bad;
    if (!have(in, (uint64_t)h->nnz))
        return "truncated history blocks";
    if (!(h->values = malloc((size_t)(h->nnz > 0 ? h->nnz : 1) * sizeof *h->values)))
        return "out of memory";
    for (int64_t e = 0; e < h->nnz; e++) {
        int k = (int)get_u32(in);
        if (k < 0 || k > st->block)
            return "history block out of range";
        h->values[e] = (float)k;
    }
    return NULL;
}

/* n ids, each in [lo, hi) */
static int in_range(const int *v, uint64_t n, int lo, int hi)
{
    for (uint64_t k = 0; k < n; k++)
        if (v[k] < lo || v[k] >= hi)
            return 0;
    return 1;
}

/* the active users and items, then E_k's top lists (n_users x top_k, -1 padded) */
static const char *read_lists(in_buf *in, ccd_state *st)
{
    st->n_active_users = (int)get_u32(in);
    st->active_users = st->n_active_users >= 0 ? get_i32s(in, (uint64_t)st->n_active_users) : NULL;
    st->n_active_items = (int)get_u32(in);
    st->active_items = st->n_active_items >= 0 ? get_i32s(in, (uint64_t)st->n_active_items) : NULL;
    if (in->failed || !st->active_users || !st->active_items)
        return "truncated active lists";
    if (!in_range(st->active_users, (uint64_t)st->n_active_users, 0, st->n_users))
        return "active user out of range";
    if (!in_range(st->active_items, (uint64_t)st->n_active_items, 0, st->n_items))
        return "active item out of range";
    uint32_t topk = get_u32(in);
    if (in->failed || topk > 100000)
        return "bad ensemble top-list size";
    if (topk > 0) {
        st->ensemble_top_k = (int)topk;
        st->ensemble_top = get_i32s(in, (uint64_t)st->n_users * topk);
        if (in->failed)
            return "truncated ensemble top lists";
        if (!in_range(st->ensemble_top, (uint64_t)st->n_users * topk, -1, st->n_items))
            return "ensemble top item out of range";
    }
    return NULL;
}

int ccd_state_deserialize(ccd_state *st, const unsigned char *buf, size_t len, char *err,
                          size_t errlen)
{
    ccd_state_init(st);
    char why[160];
    size_t payload;
    uint32_t version = 0;
    if (ccd_frame_open(buf, len, MAGIC, 1, CCD_STATE_VERSION, "state", &payload, &version, why,
                       sizeof why) != 0) {
        snprintf(err, errlen, "state: %s", why);
        return -1;
    }
    in_buf in = {.p = buf + CCD_FRAME_BYTES, .n = payload};
    const char *bad = read_sizes(&in, st);
    bad = bad ? bad : read_tables(&in, st);
    bad = bad ? bad : read_csr(&in, st, &st->train);
    bad = bad ? bad : read_lists(&in, st);
    if (!bad && version >= 2)
        bad = read_history(&in, st);
    if (!bad && in.at != in.n)
        bad = "unexpected bytes at the end of the payload";
    if (bad) {
        ccd_state_free(st);
        snprintf(err, errlen, "state: %s", bad);
        return -1;
    }
    return 0;
}
