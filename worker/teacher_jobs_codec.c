/* teacher_jobs_codec: the input and result blobs of teacher jobs (teacher_jobs.h).
 *
 * Both are le.h frames (magic, version, CRC-32, length), little-endian, so a blob written on one
 * host decodes bit for bit on another, and a truncated or corrupted one is refused before a byte
 * of it is used. Strings are u32 length + bytes.
 *   "CCDTJIN1" v1: str model, i32 block, u64 epoch,
 *                  str config (ccd_config_each as "section\tkey\tvalue\n" lines: the owner's exact
 *                  engine settings travel with the job, so a teacher worker's own [ccd] sections
 *                  do not matter),
 *                  u64 n + n bytes: the state after block k-1 (state.h),
 *                  block: i32 index, n_users, n_items, prev_users, prev_items, i64 n_train_lines,
 *                  train, valid, test (each: i32 rows, i32 cols, i64 nnz, u32 has_values,
 *                  (rows + 1) i64 row pointers, nnz i32 columns, nnz f32 values when present),
 *                  u32 n + n i32 active users, the same for items,
 *                  u64 n + n f32: CL_k
 *   "CCDTJRS1" v1: str model, i32 block, i32 teacher, u64 epoch, i64 rows, i32 dim,
 *                  rows x dim f32 (no timing: a redo writes the same bytes)
 * The decoder re-renders the config it rebuilt and refuses the blob unless the text is the same,
 * so a key this build reads differently cannot change a teacher silently. */
#include <stdlib.h>
#include <string.h>

#include "ccd_config.h"
#include "errmsg.h"
#include "le.h"
#include "state.h"
#include "teacher_jobs.h"

#define IN_MAGIC "CCDTJIN1"
#define RS_MAGIC "CCDTJRS1"

/* ------------------------------------------------------------------------------------------ */
/* a growing buffer (a failed allocation sticks: checked once at the end) */

typedef struct {
    unsigned char *p;
    size_t len, cap;
    bool oom;
} wbuf;

static unsigned char *wb_room(wbuf *b, size_t n)
{
    if (b->oom)
        return NULL;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        unsigned char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return NULL;
        }
        b->p = p;
        b->cap = cap;
    }
    unsigned char *at = b->p + b->len;
    b->len += n;
    return at;
}

static void wb_u32(wbuf *b, uint32_t v)
{
    unsigned char *p = wb_room(b, 4);
    if (p)
        le_put_u32(p, v);
}

static void wb_u64(wbuf *b, uint64_t v)
{
    unsigned char *p = wb_room(b, 8);
    if (p)
        le_put_u64(p, v);
}

static void wb_bytes(wbuf *b, const void *src, size_t n)
{
    unsigned char *p = wb_room(b, n);
    if (p && n)
        memcpy(p, src, n);
}

static void wb_str(wbuf *b, const char *s, size_t n)
{
    wb_u32(b, (uint32_t)n);
    wb_bytes(b, s, n);
}

static void wb_i32s(wbuf *b, const int *v, size_t n)
{
    unsigned char *p = wb_room(b, 4 * n);
    for (size_t i = 0; p && i < n; i++)
        p = le_put_u32(p, (uint32_t)v[i]);
}

static void wb_f32s(wbuf *b, const float *v, size_t n)
{
    unsigned char *p = wb_room(b, 4 * n);
    for (size_t i = 0; p && i < n; i++)
        p = le_put_f32(p, v[i]);
}

static void wb_csr(wbuf *b, const ccd_csr *a)
{
    wb_u32(b, (uint32_t)a->n_rows);
    wb_u32(b, (uint32_t)a->n_cols);
    wb_u64(b, (uint64_t)a->nnz);
    wb_u32(b, a->values ? 1 : 0);
    for (int r = 0; a->indptr && r <= a->n_rows; r++)
        wb_u64(b, (uint64_t)a->indptr[r]);
    if (!a->indptr) /* an empty matrix without row pointers: all zero */
        for (int r = 0; r <= a->n_rows; r++)
            wb_u64(b, 0);
    wb_i32s(b, a->indices, (size_t)a->nnz);
    if (a->values)
        wb_f32s(b, a->values, (size_t)a->nnz);
}

/* Start a frame: room for the header, filled by wb_seal. */
static void wb_frame(wbuf *b)
{
    wb_room(b, CCD_FRAME_BYTES);
}

static int wb_seal(wbuf *b, const char *magic, unsigned char **buf, size_t *len)
{
    if (b->oom) {
        free(b->p);
        return -1;
    }
    ccd_frame_seal(b->p, magic, 1, b->len - CCD_FRAME_BYTES);
    *buf = b->p;
    *len = b->len;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* reading (every count checked against the bytes left) */

typedef struct {
    const unsigned char *p;
    size_t left;
    bool bad;
} rbuf;

static const unsigned char *rb_take(rbuf *r, size_t n)
{
    if (r->bad || r->left < n) {
        r->bad = true;
        return NULL;
    }
    const unsigned char *at = r->p;
    r->p += n;
    r->left -= n;
    return at;
}

static uint32_t rb_u32(rbuf *r)
{
    const unsigned char *p = rb_take(r, 4);
    return p ? le_get_u32(p) : 0;
}

static uint64_t rb_u64(rbuf *r)
{
    const unsigned char *p = rb_take(r, 8);
    return p ? le_get_u64(p) : 0;
}

static int32_t rb_i32(rbuf *r)
{
    return le_i32(rb_u32(r));
}

/* n elements of 4 bytes into a new array (NULL when n is 0 or on failure: r->bad tells). */
static void *rb_array4(rbuf *r, uint64_t n, bool floats)
{
    if (n == 0 || n > r->left / 4) {
        r->bad = r->bad || n > r->left / 4;
        return NULL;
    }
    const unsigned char *p = rb_take(r, 4 * (size_t)n);
    void *out = malloc(4 * (size_t)n);
    if (!out) {
        r->bad = true;
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (floats)
            ((float *)out)[i] = le_get_f32(p + 4 * i);
        else
            ((int *)out)[i] = le_i32(le_get_u32(p + 4 * i));
    }
    return out;
}

static void rb_str(rbuf *r, char *out, size_t cap)
{
    uint32_t n = rb_u32(r);
    const unsigned char *p = n < cap ? rb_take(r, n) : NULL;
    if (!p) {
        r->bad = true;
        out[0] = '\0';
        return;
    }
    memcpy(out, p, n);
    out[n] = '\0';
}

static void rb_csr(rbuf *r, ccd_csr *a)
{
    memset(a, 0, sizeof *a);
    a->n_rows = rb_i32(r);
    a->n_cols = rb_i32(r);
    a->nnz = le_i64(rb_u64(r));
    uint32_t has_values = rb_u32(r);
    if (r->bad || a->n_rows < 0 || a->n_cols < 0 || a->nnz < 0 ||
        (uint64_t)a->n_rows + 1 > r->left / 8) {
        r->bad = true;
        return;
    }
    a->indptr = malloc(sizeof *a->indptr * ((size_t)a->n_rows + 1));
    if (!a->indptr) {
        r->bad = true;
        return;
    }
    for (int i = 0; i <= a->n_rows; i++) {
        a->indptr[i] = le_i64(rb_u64(r));
        if (a->indptr[i] < (i ? a->indptr[i - 1] : 0) || a->indptr[i] > a->nnz)
            r->bad = true;
    }
    if (a->indptr[a->n_rows] != a->nnz)
        r->bad = true;
    a->indices = rb_array4(r, (uint64_t)a->nnz, false);
    for (int64_t e = 0; a->indices && e < a->nnz; e++)
        if (a->indices[e] < 0 || a->indices[e] >= a->n_cols)
            r->bad = true;
    if (has_values)
        a->values = rb_array4(r, (uint64_t)a->nnz, true);
}

/* ------------------------------------------------------------------------------------------ */
/* inputs */

static int config_line(void *ctx, const char *section, const char *key, const char *value)
{
    wbuf *b = ctx;
    wb_bytes(b, section, strlen(section));
    wb_bytes(b, "\t", 1);
    wb_bytes(b, key, strlen(key));
    wb_bytes(b, "\t", 1);
    wb_bytes(b, value, strlen(value));
    wb_bytes(b, "\n", 1);
    return b->oom ? -1 : 0;
}

/* The config as text, NUL-terminated (malloc'd), or NULL. */
static char *config_text(const ccd_config *c)
{
    wbuf b = {0};
    if (ccd_config_each(c, config_line, &b) != 0 || (wb_bytes(&b, "", 1), b.oom)) {
        free(b.p);
        return NULL;
    }
    return (char *)b.p;
}

static void wb_block(wbuf *b, const ccd_block *k)
{
    wb_u32(b, (uint32_t)k->index);
    wb_u32(b, (uint32_t)k->n_users);
    wb_u32(b, (uint32_t)k->n_items);
    wb_u32(b, (uint32_t)k->prev_users);
    wb_u32(b, (uint32_t)k->prev_items);
    wb_u64(b, (uint64_t)k->n_train_lines);
    wb_csr(b, &k->train);
    wb_csr(b, &k->valid);
    wb_csr(b, &k->test);
    wb_u32(b, (uint32_t)k->n_active_users);
    wb_i32s(b, k->users, (size_t)k->n_active_users);
    wb_u32(b, (uint32_t)k->n_active_items);
    wb_i32s(b, k->items, (size_t)k->n_active_items);
}

int tj_encode_inputs(const char *model, uint64_t epoch, const ccd_teacher_inputs *in,
                     unsigned char **buf, size_t *len)
{
    char *cfg = config_text(in->cfg);
    unsigned char *state = NULL;
    size_t state_len = 0;
    if (!cfg || ccd_state_serialize(in->prev, &state, &state_len) != 0) {
        free(cfg);
        return -1;
    }
    wbuf b = {0};
    wb_frame(&b);
    wb_str(&b, model, strlen(model));
    wb_u32(&b, (uint32_t)in->blk->index);
    wb_u64(&b, epoch);
    wb_str(&b, cfg, strlen(cfg));
    wb_u64(&b, state_len);
    wb_bytes(&b, state, state_len);
    free(cfg);
    free(state);
    wb_block(&b, in->blk);
    size_t n =
        ((size_t)in->blk->n_users + (size_t)in->blk->n_items) * (size_t)in->prev->student_dim;
    wb_u64(&b, n);
    wb_f32s(&b, in->student, n);
    return wb_seal(&b, IN_MAGIC, buf, len);
}

/* The config lines into c (from the Yelp defaults, as the owner's started). 0 or -1. */
static int config_parse(ccd_config *c, char *text, char *err, size_t errlen)
{
    ccd_config_yelp(c);
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *t1 = strchr(line, '\t'), *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
        if (!t2) {
            errmsg_set(err, errlen, "teacher job: bad config line");
            return -1;
        }
        *t1 = *t2 = '\0';
        char why[256];
        if (ccd_config_set(c, line, t1 + 1, t2 + 1, why, sizeof why) != 1) {
            errmsg_set(err, errlen, "teacher job: config %s.%s: %s", line, t1 + 1, why);
            return -1;
        }
    }
    return 0;
}

/* The config string: parsed, then rendered again and compared (see the top). */
static int rb_config(rbuf *r, ccd_config *c, char *err, size_t errlen)
{
    uint32_t n = rb_u32(r);
    const unsigned char *p = rb_take(r, n);
    char *text = p ? malloc((size_t)n + 1) : NULL, *copy = p ? malloc((size_t)n + 1) : NULL;
    int rc = -1;
    if (!text || !copy) {
        errmsg_set(err, errlen, "teacher job: %s", p ? "out of memory" : "truncated config");
    } else {
        memcpy(text, p, n);
        text[n] = '\0';
        memcpy(copy, text, (size_t)n + 1);
        if (config_parse(c, text, err, errlen) == 0) {
            char *again = config_text(c);
            rc = again && !strcmp(again, copy) ? 0 : -1;
            if (rc)
                errmsg_set(err, errlen,
                           "teacher job: this build reads the owner's engine config differently");
            free(again);
        }
    }
    free(text);
    free(copy);
    return rc;
}

static void rb_block(rbuf *r, ccd_block *k)
{
    k->index = rb_i32(r);
    k->n_users = rb_i32(r);
    k->n_items = rb_i32(r);
    k->prev_users = rb_i32(r);
    k->prev_items = rb_i32(r);
    k->n_train_lines = le_i64(rb_u64(r));
    rb_csr(r, &k->train);
    rb_csr(r, &k->valid);
    rb_csr(r, &k->test);
    k->n_active_users = rb_i32(r);
    k->users = k->n_active_users > 0 ? rb_array4(r, (uint64_t)k->n_active_users, false) : NULL;
    k->n_active_items = rb_i32(r);
    k->items = k->n_active_items > 0 ? rb_array4(r, (uint64_t)k->n_active_items, false) : NULL;
    if (k->n_users < 0 || k->n_items < 0 || k->n_active_users < 0 || k->n_active_items < 0 ||
        k->train.n_rows != k->n_users || k->train.n_cols != k->n_items)
        r->bad = true;
}

static void block_free(ccd_block *k)
{
    ccd_csr_free(&k->train);
    ccd_csr_free(&k->valid);
    ccd_csr_free(&k->test);
    free(k->users);
    free(k->items);
    memset(k, 0, sizeof *k);
}

void tj_inputs_free(tj_inputs *x)
{
    ccd_state_free(&x->prev);
    block_free(&x->blk);
    free(x->student);
    memset(x, 0, sizeof *x);
    ccd_state_init(&x->prev);
}

/* The state bytes. 0 or -1 (r->bad or err). */
static int rb_state(rbuf *r, ccd_state *st, char *err, size_t errlen)
{
    uint64_t n = rb_u64(r);
    const unsigned char *p = n <= r->left ? rb_take(r, (size_t)n) : NULL;
    if (!p) {
        r->bad = true;
        return -1;
    }
    char why[256];
    if (ccd_state_deserialize(st, p, (size_t)n, why, sizeof why) != 0) {
        errmsg_set(err, errlen, "teacher job: previous state: %s", why);
        return -1;
    }
    return 0;
}

int tj_decode_inputs(tj_inputs *x, const unsigned char *buf, size_t len, char *err, size_t errlen)
{
    memset(x, 0, sizeof *x);
    ccd_state_init(&x->prev);
    size_t payload;
    char why[256];
    if (ccd_frame_open(buf, len, IN_MAGIC, 1, 1, "teacher input", &payload, NULL, why,
                       sizeof why) != 0) {
        errmsg_set(err, errlen, "teacher job: input blob: %s", why);
        return -1;
    }
    rbuf r = {buf + CCD_FRAME_BYTES, payload, false};
    rb_str(&r, x->model, sizeof x->model);
    x->block = rb_i32(&r);
    x->epoch = rb_u64(&r);
    if (r.bad || rb_config(&r, &x->cfg, err, errlen) != 0 ||
        rb_state(&r, &x->prev, err, errlen) != 0) {
        if (r.bad)
            errmsg_set(err, errlen, "teacher job: input blob truncated or inconsistent");
        tj_inputs_free(x);
        return -1;
    }
    rb_block(&r, &x->blk);
    uint64_t n = rb_u64(&r);
    uint64_t want =
        ((uint64_t)x->blk.n_users + (uint64_t)x->blk.n_items) * (uint64_t)x->prev.student_dim;
    x->student = n == want && !r.bad ? rb_array4(&r, n, true) : NULL;
    if (r.bad || !x->student || r.left != 0 || x->blk.index != x->block ||
        x->prev.block != x->block - 1) {
        errmsg_set(err, errlen, "teacher job: input blob truncated or inconsistent");
        tj_inputs_free(x);
        return -1;
    }
    return 0;
}

ccd_teacher_inputs tj_inputs_view(const tj_inputs *x)
{
    return (ccd_teacher_inputs){
        .prev = &x->prev, .cfg = &x->cfg, .blk = &x->blk, .student = x->student};
}

/* ------------------------------------------------------------------------------------------ */
/* results */

int tj_encode_result(const char *model, int block, int m, uint64_t epoch, const float *table,
                     int64_t rows, int dim, unsigned char **buf, size_t *len)
{
    wbuf b = {0};
    wb_frame(&b);
    wb_str(&b, model, strlen(model));
    wb_u32(&b, (uint32_t)block);
    wb_u32(&b, (uint32_t)m);
    wb_u64(&b, epoch);
    wb_u64(&b, (uint64_t)rows);
    wb_u32(&b, (uint32_t)dim);
    wb_f32s(&b, table, (size_t)rows * (size_t)dim);
    return wb_seal(&b, RS_MAGIC, buf, len);
}

int tj_decode_result(const unsigned char *buf, size_t len, const char *model, int block, int m,
                     uint64_t epoch, int64_t rows, int dim, float **table, char *err, size_t errlen)
{
    *table = NULL;
    size_t payload;
    char why[256], got_model[128];
    if (ccd_frame_open(buf, len, RS_MAGIC, 1, 1, "teacher result", &payload, NULL, why,
                       sizeof why) != 0) {
        errmsg_set(err, errlen, "teacher result: %s", why);
        return -1;
    }
    rbuf r = {buf + CCD_FRAME_BYTES, payload, false};
    rb_str(&r, got_model, sizeof got_model);
    int got_block = rb_i32(&r), got_m = rb_i32(&r);
    uint64_t got_epoch = rb_u64(&r);
    int64_t got_rows = le_i64(rb_u64(&r));
    int got_dim = rb_i32(&r);
    if (r.bad || strcmp(got_model, model) || got_block != block || got_m != m ||
        got_epoch != epoch || got_rows != rows || got_dim != dim ||
        r.left != (size_t)rows * (size_t)dim * 4) {
        errmsg_set(err, errlen,
                   "teacher result: holds model %s block %d teacher %d (%lld x %d), expected %s "
                   "block %d teacher %d (%lld x %d)",
                   got_model, got_block, got_m, (long long)got_rows, got_dim, model, block, m,
                   (long long)rows, dim);
        return -1;
    }
    *table = rb_array4(&r, (uint64_t)rows * (uint64_t)dim, true);
    if (!*table && rows * dim > 0) {
        errmsg_set(err, errlen, "teacher result: out of memory");
        return -1;
    }
    return 0;
}
