/* checkpoint: the format of a model's durable state. See checkpoint.h; the store is
 * checkpoint_store.c and its backends.
 *
 * Payload layout (after le.h's 24-byte frame; integers little-endian, strings as u32 length then
 * bytes, no terminator):
 *   str model, i32 block, i64 window_start_ms, i64 events_total, i64 published_version,
 *   u64 state_len, state bytes,
 *   u32 n_users, n_users x str, u32 n_items, n_items x str,
 *   u32 n_offsets, n_offsets x (str topic, i32 partition, i64 next_offset, i64 commit_floor)
 * Version 1 (before 2026-12) had no commit_floor; it still decodes, with commit_floor -1
 * (unknown), so a checkpoint written by an older worker loads and only the backwards-offset rule
 * that needs the floor stays off for it (offset_rules.h). The encoder refuses exactly what the
 * decoder refuses (checkpoint_check), so a save can never produce a checkpoint that a later load
 * rejects. */
#include "checkpoint.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errmsg.h"
#include "le.h"
#include "model_id.h"

#define MAGIC "CCDCKPT1"

void checkpoint_init(checkpoint *c)
{
    memset(c, 0, sizeof *c);
    c->block = -1;
    c->window_start_ms = INT64_MIN;
}

void checkpoint_free(checkpoint *c)
{
    free(c->state);
    /* The id arrays are calloc'd before they are filled, so a half-decoded checkpoint holds
     * NULLs past the last string it read: free(NULL) keeps this path simple. */
    for (int k = 0; c->user_ids && k < c->n_users; k++)
        free(c->user_ids[k]);
    for (int k = 0; c->item_ids && k < c->n_items; k++)
        free(c->item_ids[k]);
    free(c->user_ids);
    free(c->item_ids);
    free(c->offsets);
    checkpoint_init(c);
}

/* Checks a caller-supplied model string without reading past 128 bytes (model_id.h). */
static int valid_model_str(const char *m)
{
    size_t n = strnlen(m, 128);
    return n < 128 && model_id_valid(m, n);
}

/* ------------------------------------------------------------------------------------------ */
/* encoding */

int checkpoint_check(const checkpoint *c, char *why, size_t whylen)
{
    if (!valid_model_str(c->model)) {
        errmsg_set(why, whylen, "bad model id \"%.127s\"", c->model);
        return -1;
    }
    if (c->block < -1 || c->events_total < 0 || c->published_version < 0) {
        errmsg_set(why, whylen, "negative block, event total or published version");
        return -1;
    }
    if (c->state_len > 0 && !c->state) {
        errmsg_set(why, whylen, "state_len %zu with no state bytes", c->state_len);
        return -1;
    }
    if (c->n_users < 0 || c->n_items < 0 || c->n_offsets < 0 || (c->n_users > 0 && !c->user_ids) ||
        (c->n_items > 0 && !c->item_ids) || (c->n_offsets > 0 && !c->offsets)) {
        errmsg_set(why, whylen, "negative count or missing array");
        return -1;
    }
    for (int k = 0; k < c->n_users; k++)
        if (!c->user_ids[k] || strlen(c->user_ids[k]) > UINT32_MAX) {
            errmsg_set(why, whylen, "user id %d missing or too long", k);
            return -1;
        }
    for (int k = 0; k < c->n_items; k++)
        if (!c->item_ids[k] || strlen(c->item_ids[k]) > UINT32_MAX) {
            errmsg_set(why, whylen, "item id %d missing or too long", k);
            return -1;
        }
    for (int k = 0; k < c->n_offsets; k++) {
        const ckpt_offset *o = &c->offsets[k];
        size_t n = strnlen(o->topic, sizeof o->topic);
        if (n == 0 || n > CKPT_MAX_TOPIC || o->partition < 0 || o->next_offset < 0 ||
            o->commit_floor < -1) {
            errmsg_set(why, whylen,
                       "offset %d: empty or unterminated topic, or negative partition, offset or "
                       "commit floor",
                       k);
            return -1;
        }
    }
    return 0;
}

/* a + b, refusing to wrap (a corrupt in-memory count must not turn into a short buffer) */
static int add_size(size_t *a, size_t b)
{
    if (*a > SIZE_MAX - b)
        return -1;
    *a += b;
    return 0;
}

static unsigned char *put_bytes(unsigned char *p, const void *src, size_t n)
{
    if (n)
        memcpy(p, src, n);
    return p + n;
}

static unsigned char *put_str(unsigned char *p, const char *s)
{
    size_t n = strlen(s);
    p = le_put_u32(p, (uint32_t)n);
    return put_bytes(p, s, n);
}

int checkpoint_encode(const checkpoint *c, unsigned char **buf, size_t *len)
{
    char why[256];
    if (checkpoint_check(c, why, sizeof why) != 0)
        return -1;
    /* Size the buffer exactly first, so the writing pass has no failure paths. */
    size_t n = CCD_FRAME_BYTES;
    int bad = add_size(&n, 4 + strlen(c->model) + 4 + 3 * 8 + 8) || add_size(&n, c->state_len) ||
              add_size(&n, 4);
    for (int k = 0; !bad && k < c->n_users; k++)
        bad = add_size(&n, 4) || add_size(&n, strlen(c->user_ids[k]));
    bad = bad || add_size(&n, 4);
    for (int k = 0; !bad && k < c->n_items; k++)
        bad = add_size(&n, 4) || add_size(&n, strlen(c->item_ids[k]));
    bad = bad || add_size(&n, 4);
    for (int k = 0; !bad && k < c->n_offsets; k++)
        bad = add_size(&n, 4 + strlen(c->offsets[k].topic) + 4 + 8 + 8);
    if (bad)
        return -1;
    unsigned char *out = malloc(n);
    if (!out)
        return -1;

    unsigned char *p = out + CCD_FRAME_BYTES;
    p = put_str(p, c->model);
    p = le_put_u32(p, (uint32_t)c->block);
    p = le_put_u64(p, (uint64_t)c->window_start_ms);
    p = le_put_u64(p, (uint64_t)c->events_total);
    p = le_put_u64(p, (uint64_t)c->published_version);
    p = le_put_u64(p, (uint64_t)c->state_len);
    p = put_bytes(p, c->state, c->state_len);
    p = le_put_u32(p, (uint32_t)c->n_users);
    for (int k = 0; k < c->n_users; k++)
        p = put_str(p, c->user_ids[k]);
    p = le_put_u32(p, (uint32_t)c->n_items);
    for (int k = 0; k < c->n_items; k++)
        p = put_str(p, c->item_ids[k]);
    p = le_put_u32(p, (uint32_t)c->n_offsets);
    for (int k = 0; k < c->n_offsets; k++) {
        p = put_str(p, c->offsets[k].topic);
        p = le_put_u32(p, (uint32_t)c->offsets[k].partition);
        p = le_put_u64(p, (uint64_t)c->offsets[k].next_offset);
        p = le_put_u64(p, (uint64_t)c->offsets[k].commit_floor);
    }

    ccd_frame_seal(out, MAGIC, CKPT_VERSION, n - CCD_FRAME_BYTES);
    *buf = out;
    *len = n;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* decoding */

typedef struct {
    const unsigned char *p;
    size_t left;
} reader;

static int get_u32(reader *r, uint32_t *v)
{
    if (r->left < 4)
        return -1;
    *v = le_get_u32(r->p);
    r->p += 4;
    r->left -= 4;
    return 0;
}

static int get_u64(reader *r, uint64_t *v)
{
    if (r->left < 8)
        return -1;
    *v = le_get_u64(r->p);
    r->p += 8;
    r->left -= 8;
    return 0;
}

/* A length-prefixed string: its length is checked against the bytes left and against max before
 * anything is allocated, and it must not contain a NUL (it becomes a C string). On success *s
 * points into the buffer (not terminated) and *n is its length. idx >= 0 numbers the string in
 * the message. */
static int get_str(reader *r, const char *what, int idx, size_t max, const unsigned char **s,
                   size_t *n, char *why, size_t whylen)
{
    char name[64];
    if (idx >= 0)
        snprintf(name, sizeof name, "%s %d", what, idx);
    else
        snprintf(name, sizeof name, "%s", what);
    uint32_t len;
    if (get_u32(r, &len) != 0) {
        errmsg_set(why, whylen, "truncated payload (length of %s)", name);
        return -1;
    }
    if (len > r->left) {
        errmsg_set(why, whylen, "%s: length %" PRIu32 " too large for the %zu bytes left", name,
                   len, r->left);
        return -1;
    }
    if (len > max) {
        errmsg_set(why, whylen, "%s: length %" PRIu32 " over the limit of %zu", name, len, max);
        return -1;
    }
    if (memchr(r->p, '\0', len)) {
        errmsg_set(why, whylen, "%s: string not NUL-free", name);
        return -1;
    }
    *s = r->p;
    *n = len;
    r->p += len;
    r->left -= len;
    return 0;
}

static char *dup_span(const unsigned char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        if (n)
            memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

/* A count followed by that many records of at least `min_bytes` each: checked against the bytes
 * left so a corrupt count can never drive a huge allocation. */
static int get_count(reader *r, const char *what, size_t min_bytes, int *count, char *why,
                     size_t whylen)
{
    uint32_t n;
    if (get_u32(r, &n) != 0) {
        errmsg_set(why, whylen, "truncated payload (%s count)", what);
        return -1;
    }
    if (n > INT_MAX || n > r->left / min_bytes) {
        errmsg_set(why, whylen, "%s count %" PRIu32 " too large for the %zu bytes left", what, n,
                   r->left);
        return -1;
    }
    *count = (int)n;
    return 0;
}

static int get_ids(reader *r, const char *what, char ***ids, int *count, char *why, size_t whylen)
{
    int n;
    if (get_count(r, what, 4, &n, why, whylen) != 0)
        return -1;
    /* calloc and publish the count first: checkpoint_free then frees exactly what was read. */
    *ids = calloc((size_t)(n ? n : 1), sizeof **ids);
    if (!*ids) {
        errmsg_set(why, whylen, "out of memory (%d %ss)", n, what);
        return -1;
    }
    *count = n;
    for (int k = 0; k < n; k++) {
        const unsigned char *s;
        size_t len;
        if (get_str(r, what, k, UINT32_MAX, &s, &len, why, whylen) != 0)
            return -1;
        if (!((*ids)[k] = dup_span(s, len))) {
            errmsg_set(why, whylen, "out of memory (%s %d)", what, k);
            return -1;
        }
    }
    return 0;
}

/* str model, i32 block, i64 window_start_ms, i64 events_total, i64 published_version */
static int get_block_fields(reader *r, checkpoint *c, char *why, size_t whylen)
{
    const unsigned char *s;
    size_t n;
    if (get_str(r, "model id", -1, sizeof c->model - 1, &s, &n, why, whylen) != 0)
        return -1;
    if (!model_id_valid((const char *)s, n)) {
        errmsg_set(why, whylen, "bad model id \"%.*s\"", (int)n, (const char *)s);
        return -1;
    }
    memcpy(c->model, s, n);
    c->model[n] = '\0';
    uint32_t block;
    uint64_t window, events, published;
    if (get_u32(r, &block) || get_u64(r, &window) || get_u64(r, &events) ||
        get_u64(r, &published)) {
        errmsg_set(why, whylen, "truncated payload (block fields)");
        return -1;
    }
    c->block = le_i32(block);
    c->window_start_ms = le_i64(window);
    c->events_total = le_i64(events);
    c->published_version = le_i64(published);
    if (c->block < -1 || c->events_total < 0 || c->published_version < 0) {
        errmsg_set(why, whylen,
                   "block %d, events %" PRId64 ", published version %" PRId64 ": out of range",
                   c->block, c->events_total, c->published_version);
        return -1;
    }
    return 0;
}

/* u64 state_len, state bytes (copied: the checkpoint owns them) */
static int get_state(reader *r, checkpoint *c, char *why, size_t whylen)
{
    uint64_t state_len;
    if (get_u64(r, &state_len) != 0) {
        errmsg_set(why, whylen, "truncated payload (block fields)");
        return -1;
    }
    if (state_len > r->left) {
        errmsg_set(why, whylen, "state length %" PRIu64 " too large for the %zu bytes left",
                   state_len, r->left);
        return -1;
    }
    if (state_len == 0)
        return 0;
    if (!(c->state = malloc((size_t)state_len))) {
        errmsg_set(why, whylen, "out of memory (state of %" PRIu64 " bytes)", state_len);
        return -1;
    }
    memcpy(c->state, r->p, (size_t)state_len);
    c->state_len = (size_t)state_len;
    r->p += state_len;
    r->left -= (size_t)state_len;
    return 0;
}

/* u32 n_offsets, n_offsets x (str topic, i32 partition, i64 next_offset[, i64 commit_floor]) */
static int get_offsets(reader *r, uint32_t version, checkpoint *c, char *why, size_t whylen)
{
    int n_off;
    if (get_count(r, "offset", 4 + 4 + 8 + (version >= 2 ? 8 : 0), &n_off, why, whylen) != 0)
        return -1;
    if (!(c->offsets = calloc((size_t)(n_off ? n_off : 1), sizeof *c->offsets))) {
        errmsg_set(why, whylen, "out of memory (%d offsets)", n_off);
        return -1;
    }
    c->n_offsets = n_off;
    for (int k = 0; k < n_off; k++) {
        ckpt_offset *o = &c->offsets[k];
        const unsigned char *s;
        size_t n;
        uint32_t part;
        uint64_t next, floor = (uint64_t)-1;
        if (get_str(r, "topic", k, CKPT_MAX_TOPIC, &s, &n, why, whylen) != 0)
            return -1;
        if (get_u32(r, &part) || get_u64(r, &next) || (version >= 2 && get_u64(r, &floor))) {
            errmsg_set(why, whylen, "truncated payload (offset %d)", k);
            return -1;
        }
        memcpy(o->topic, s, n);
        o->topic[n] = '\0';
        o->partition = le_i32(part);
        o->next_offset = le_i64(next);
        o->commit_floor = le_i64(floor);
        if (n == 0 || o->partition < 0 || o->next_offset < 0 || o->commit_floor < -1) {
            errmsg_set(why, whylen,
                       "offset %d: empty topic or negative partition, offset or commit floor", k);
            return -1;
        }
    }
    return 0;
}

/* Decode with a reason that has no "checkpoint:" prefix (the store prefixes its own context). */
static int decode(checkpoint *c, const unsigned char *buf, size_t len, char *why, size_t whylen)
{
    checkpoint_init(c);
    size_t payload;
    uint32_t version;
    if (ccd_frame_open(buf, len, MAGIC, 1, CKPT_VERSION, "checkpoint", &payload, &version, why,
                       whylen) != 0)
        return -1;
    reader r = {.p = buf + CCD_FRAME_BYTES, .left = payload};
    if (get_block_fields(&r, c, why, whylen) != 0 || get_state(&r, c, why, whylen) != 0 ||
        get_ids(&r, "user id", &c->user_ids, &c->n_users, why, whylen) != 0 ||
        get_ids(&r, "item id", &c->item_ids, &c->n_items, why, whylen) != 0 ||
        get_offsets(&r, version, c, why, whylen) != 0) {
        checkpoint_free(c);
        return -1;
    }
    if (r.left != 0) {
        errmsg_set(why, whylen, "%zu unexpected bytes at the end of the payload", r.left);
        checkpoint_free(c);
        return -1;
    }
    return 0;
}

int checkpoint_decode(checkpoint *c, const unsigned char *buf, size_t len, char *err, size_t errlen)
{
    char why[512];
    if (decode(c, buf, len, why, sizeof why) != 0) {
        errmsg_set(err, errlen, "checkpoint: %s", why);
        return -1;
    }
    return 0;
}
