/* checkpoint: a model's durable state and its directory store. See checkpoint.h.
 *
 * Payload layout (after the 24-byte header; integers little-endian, strings as u32 length then
 * bytes, no terminator):
 *   str model, i32 block, i64 window_start_ms, i64 events_total, i64 published_version,
 *   u64 state_len, state bytes,
 *   u32 n_users, n_users x str, u32 n_items, n_items x str,
 *   u32 n_offsets, n_offsets x (str topic, i32 partition, i64 next_offset)
 * The encoder refuses exactly what the decoder refuses (bad model id, negative counts, ...), so
 * a save can never produce a file that a later load rejects.
 *
 * The store assumes one writer per model directory at a time (the worker that owns the model):
 * a save removes any .tmp-* file it finds there as the leftover of a crashed writer. */
#include "checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "model_id.h"
#include "state.h"

#define MAGIC "CCDCKPT1"
#define HEADER 24        /* magic 8 + version 4 + crc 4 + payload length 8 */
#define PATH_CAP 4096    /* longest DIR/<model>/<file> path the store builds */
#define NAME_CAP 64      /* block-<k>.ckpt and .tmp-* names */

static void seterr(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

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

/* A model id names a directory (model_id.h). */
static int valid_model_id(const char *m, size_t n) { return model_id_valid(m, n); }

/* Checks a caller-supplied model string without reading past 128 bytes. */
static int valid_model_str(const char *m)
{
    size_t n = strnlen(m, 128);
    return n < 128 && valid_model_id(m, n);
}

/* ------------------------------------------------------------------------------------------ */
/* encoding */

/* What the decoder would refuse, checked before anything is written. */
static int validate(const checkpoint *c, char *why, size_t whylen)
{
    if (!valid_model_str(c->model)) {
        seterr(why, whylen, "bad model id \"%.127s\"", c->model);
        return -1;
    }
    if (c->block < -1 || c->events_total < 0 || c->published_version < 0) {
        seterr(why, whylen, "negative block, event total or published version");
        return -1;
    }
    if (c->state_len > 0 && !c->state) {
        seterr(why, whylen, "state_len %zu with no state bytes", c->state_len);
        return -1;
    }
    if (c->n_users < 0 || c->n_items < 0 || c->n_offsets < 0 || (c->n_users > 0 && !c->user_ids) ||
        (c->n_items > 0 && !c->item_ids) || (c->n_offsets > 0 && !c->offsets)) {
        seterr(why, whylen, "negative count or missing array");
        return -1;
    }
    for (int k = 0; k < c->n_users; k++)
        if (!c->user_ids[k] || strlen(c->user_ids[k]) > UINT32_MAX) {
            seterr(why, whylen, "user id %d missing or too long", k);
            return -1;
        }
    for (int k = 0; k < c->n_items; k++)
        if (!c->item_ids[k] || strlen(c->item_ids[k]) > UINT32_MAX) {
            seterr(why, whylen, "item id %d missing or too long", k);
            return -1;
        }
    for (int k = 0; k < c->n_offsets; k++) {
        const ckpt_offset *o = &c->offsets[k];
        size_t n = strnlen(o->topic, sizeof o->topic);
        if (n == 0 || n > CKPT_MAX_TOPIC || o->partition < 0 || o->next_offset < 0) {
            seterr(why, whylen, "offset %d: empty or unterminated topic, or negative partition or offset", k);
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

static unsigned char *put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
    return p + 4;
}

static unsigned char *put_u64(unsigned char *p, uint64_t v)
{
    p = put_u32(p, (uint32_t)v);
    return put_u32(p, (uint32_t)(v >> 32));
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
    p = put_u32(p, (uint32_t)n);
    return put_bytes(p, s, n);
}

int checkpoint_encode(const checkpoint *c, unsigned char **buf, size_t *len)
{
    char why[256];
    if (validate(c, why, sizeof why) != 0)
        return -1;
    /* Size the buffer exactly first, so the writing pass has no failure paths. */
    size_t n = HEADER;
    int bad = add_size(&n, 4 + strlen(c->model) + 4 + 3 * 8 + 8) || add_size(&n, c->state_len) ||
              add_size(&n, 4);
    for (int k = 0; !bad && k < c->n_users; k++)
        bad = add_size(&n, 4) || add_size(&n, strlen(c->user_ids[k]));
    bad = bad || add_size(&n, 4);
    for (int k = 0; !bad && k < c->n_items; k++)
        bad = add_size(&n, 4) || add_size(&n, strlen(c->item_ids[k]));
    bad = bad || add_size(&n, 4);
    for (int k = 0; !bad && k < c->n_offsets; k++)
        bad = add_size(&n, 4 + strlen(c->offsets[k].topic) + 4 + 8);
    if (bad)
        return -1;
    unsigned char *out = malloc(n);
    if (!out)
        return -1;

    unsigned char *p = out + HEADER;
    p = put_str(p, c->model);
    p = put_u32(p, (uint32_t)c->block);
    p = put_u64(p, (uint64_t)c->window_start_ms);
    p = put_u64(p, (uint64_t)c->events_total);
    p = put_u64(p, (uint64_t)c->published_version);
    p = put_u64(p, (uint64_t)c->state_len);
    p = put_bytes(p, c->state, c->state_len);
    p = put_u32(p, (uint32_t)c->n_users);
    for (int k = 0; k < c->n_users; k++)
        p = put_str(p, c->user_ids[k]);
    p = put_u32(p, (uint32_t)c->n_items);
    for (int k = 0; k < c->n_items; k++)
        p = put_str(p, c->item_ids[k]);
    p = put_u32(p, (uint32_t)c->n_offsets);
    for (int k = 0; k < c->n_offsets; k++) {
        p = put_str(p, c->offsets[k].topic);
        p = put_u32(p, (uint32_t)c->offsets[k].partition);
        p = put_u64(p, (uint64_t)c->offsets[k].next_offset);
    }

    const size_t payload = n - HEADER;
    unsigned char *h = put_bytes(out, MAGIC, 8);
    h = put_u32(h, CKPT_VERSION);
    h = put_u32(h, ccd_crc32(out + HEADER, payload));
    put_u64(h, (uint64_t)payload);
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

static uint32_t le32(const unsigned char *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static uint64_t le64(const unsigned char *b)
{
    return (uint64_t)le32(b) | (uint64_t)le32(b + 4) << 32;
}

/* Two's complement back to signed without relying on implementation-defined conversions. */
static int32_t to_i32(uint32_t u)
{
    return u <= INT32_MAX ? (int32_t)u : -(int32_t)(UINT32_MAX - u) - 1;
}

static int64_t to_i64(uint64_t u)
{
    return u <= INT64_MAX ? (int64_t)u : -(int64_t)(UINT64_MAX - u) - 1;
}

static int get_u32(reader *r, uint32_t *v)
{
    if (r->left < 4)
        return -1;
    *v = le32(r->p);
    r->p += 4;
    r->left -= 4;
    return 0;
}

static int get_u64(reader *r, uint64_t *v)
{
    if (r->left < 8)
        return -1;
    *v = le64(r->p);
    r->p += 8;
    r->left -= 8;
    return 0;
}

/* A length-prefixed string: its length is checked against the bytes left and against max before
 * anything is allocated, and it must not contain a NUL (it becomes a C string). On success *s
 * points into the buffer (not terminated) and *n is its length. idx >= 0 numbers the string in
 * the message. */
static int get_str(reader *r, const char *what, int idx, size_t max, const unsigned char **s, size_t *n,
                   char *why, size_t whylen)
{
    char name[64];
    if (idx >= 0)
        snprintf(name, sizeof name, "%s %d", what, idx);
    else
        snprintf(name, sizeof name, "%s", what);
    uint32_t len;
    if (get_u32(r, &len) != 0) {
        seterr(why, whylen, "truncated payload (length of %s)", name);
        return -1;
    }
    if (len > r->left) {
        seterr(why, whylen, "%s: length %" PRIu32 " too large for the %zu bytes left", name, len, r->left);
        return -1;
    }
    if (len > max) {
        seterr(why, whylen, "%s: length %" PRIu32 " over the limit of %zu", name, len, max);
        return -1;
    }
    if (memchr(r->p, '\0', len)) {
        seterr(why, whylen, "%s: string not NUL-free", name);
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
static int get_count(reader *r, const char *what, size_t min_bytes, int *count, char *why, size_t whylen)
{
    uint32_t n;
    if (get_u32(r, &n) != 0) {
        seterr(why, whylen, "truncated payload (%s count)", what);
        return -1;
    }
    if (n > INT_MAX || n > r->left / min_bytes) {
        seterr(why, whylen, "%s count %" PRIu32 " too large for the %zu bytes left", what, n, r->left);
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
        seterr(why, whylen, "out of memory (%d %ss)", n, what);
        return -1;
    }
    *count = n;
    for (int k = 0; k < n; k++) {
        const unsigned char *s;
        size_t len;
        if (get_str(r, what, k, UINT32_MAX, &s, &len, why, whylen) != 0)
            return -1;
        if (!((*ids)[k] = dup_span(s, len))) {
            seterr(why, whylen, "out of memory (%s %d)", what, k);
            return -1;
        }
    }
    return 0;
}

static int decode_payload(checkpoint *c, reader *r, char *why, size_t whylen)
{
    const unsigned char *s;
    size_t n;
    if (get_str(r, "model id", -1, sizeof c->model - 1, &s, &n, why, whylen) != 0)
        return -1;
    if (!valid_model_id((const char *)s, n)) {
        seterr(why, whylen, "bad model id \"%.*s\"", (int)n, (const char *)s);
        return -1;
    }
    memcpy(c->model, s, n);
    c->model[n] = '\0';

    uint32_t block;
    uint64_t window, events, published, state_len;
    if (get_u32(r, &block) || get_u64(r, &window) || get_u64(r, &events) || get_u64(r, &published) ||
        get_u64(r, &state_len)) {
        seterr(why, whylen, "truncated payload (block fields)");
        return -1;
    }
    c->block = to_i32(block);
    c->window_start_ms = to_i64(window);
    c->events_total = to_i64(events);
    c->published_version = to_i64(published);
    if (c->block < -1 || c->events_total < 0 || c->published_version < 0) {
        seterr(why, whylen, "block %d, events %" PRId64 ", published version %" PRId64 ": out of range",
               c->block, c->events_total, c->published_version);
        return -1;
    }
    if (state_len > r->left) {
        seterr(why, whylen, "state length %" PRIu64 " too large for the %zu bytes left", state_len, r->left);
        return -1;
    }
    if (state_len > 0) {
        if (!(c->state = malloc((size_t)state_len))) {
            seterr(why, whylen, "out of memory (state of %" PRIu64 " bytes)", state_len);
            return -1;
        }
        memcpy(c->state, r->p, (size_t)state_len);
        c->state_len = (size_t)state_len;
        r->p += state_len;
        r->left -= (size_t)state_len;
    }

    if (get_ids(r, "user id", &c->user_ids, &c->n_users, why, whylen) != 0 ||
        get_ids(r, "item id", &c->item_ids, &c->n_items, why, whylen) != 0)
        return -1;

    int n_off;
    if (get_count(r, "offset", 4 + 4 + 8, &n_off, why, whylen) != 0)
        return -1;
    if (!(c->offsets = calloc((size_t)(n_off ? n_off : 1), sizeof *c->offsets))) {
        seterr(why, whylen, "out of memory (%d offsets)", n_off);
        return -1;
    }
    c->n_offsets = n_off;
    for (int k = 0; k < n_off; k++) {
        ckpt_offset *o = &c->offsets[k];
        uint32_t part;
        uint64_t next;
        if (get_str(r, "topic", k, CKPT_MAX_TOPIC, &s, &n, why, whylen) != 0)
            return -1;
        if (get_u32(r, &part) || get_u64(r, &next)) {
            seterr(why, whylen, "truncated payload (offset %d)", k);
            return -1;
        }
        memcpy(o->topic, s, n);
        o->topic[n] = '\0';
        o->partition = to_i32(part);
        o->next_offset = to_i64(next);
        if (n == 0 || o->partition < 0 || o->next_offset < 0) {
            seterr(why, whylen, "offset %d: empty topic or negative partition or offset", k);
            return -1;
        }
    }
    if (r->left != 0) {
        seterr(why, whylen, "%zu unexpected bytes at the end of the payload", r->left);
        return -1;
    }
    return 0;
}

/* Decode with a reason that has no "checkpoint:" prefix (the store prefixes its own context). */
static int decode(checkpoint *c, const unsigned char *buf, size_t len, char *why, size_t whylen)
{
    checkpoint_init(c);
    if (len >= 8 && memcmp(buf, MAGIC, 8) != 0) {
        seterr(why, whylen, "bad magic (not a ccd-stream checkpoint)");
        return -1;
    }
    if (len < HEADER) {
        seterr(why, whylen, "truncated header (%zu bytes)", len);
        return -1;
    }
    const uint32_t version = le32(buf + 8), crc = le32(buf + 12);
    const uint64_t payload = le64(buf + 16);
    if (version != CKPT_VERSION) {
        seterr(why, whylen, "format version %" PRIu32 " not supported (this build reads %d)", version,
               CKPT_VERSION);
        return -1;
    }
    if (payload != len - HEADER) {
        if (payload > len - HEADER)
            seterr(why, whylen, "truncated (header says %" PRIu64 " payload bytes, %zu present)", payload,
                   len - HEADER);
        else
            seterr(why, whylen, "%zu trailing bytes after the payload", len - HEADER - (size_t)payload);
        return -1;
    }
    if (ccd_crc32(buf + HEADER, (size_t)payload) != crc) {
        seterr(why, whylen, "checksum mismatch (corrupted)");
        return -1;
    }
    reader r = {.p = buf + HEADER, .left = (size_t)payload};
    if (decode_payload(c, &r, why, whylen) != 0) {
        checkpoint_free(c);
        return -1;
    }
    return 0;
}

int checkpoint_decode(checkpoint *c, const unsigned char *buf, size_t len, char *err, size_t errlen)
{
    char why[512];
    if (decode(c, buf, len, why, sizeof why) != 0) {
        seterr(err, errlen, "checkpoint: %s", why);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* directory store */

typedef struct {
    int block;
    char name[NAME_CAP];
} block_file;

/* block-<k>.ckpt with k written as %08d exactly: any other spelling (block-5.ckpt, block-+5,
 * block-00000005.ckpt~) is not ours and is neither loaded nor pruned. */
static int parse_block_name(const char *name, int *block)
{
    if (strncmp(name, "block-", 6) != 0)
        return -1;
    const char *p = name + 6;
    long long v = 0;
    int digits = 0;
    for (; *p >= '0' && *p <= '9'; p++, digits++) {
        v = v * 10 + (*p - '0');
        if (v > INT_MAX)
            return -1;
    }
    if (digits == 0 || strcmp(p, ".ckpt") != 0)
        return -1;
    char canon[NAME_CAP];
    snprintf(canon, sizeof canon, "block-%08d.ckpt", (int)v);
    if (strcmp(canon, name) != 0)
        return -1;
    *block = (int)v;
    return 0;
}

static int by_block_desc(const void *a, const void *b)
{
    const block_file *x = a, *y = b;
    return (x->block < y->block) - (x->block > y->block);
}

/* The block files of an open directory, newest first. With dfd_remove_tmp >= 0, .tmp-* entries
 * are unlinked on the way (leftovers of a crashed save). Returns the count, or -1 with errno. */
static int list_blocks(DIR *d, int dfd_remove_tmp, block_file **out)
{
    block_file *v = NULL;
    int n = 0, cap = 0;
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(d);
        if (!e) {
            if (errno) {
                int saved = errno;
                free(v);
                errno = saved;
                return -1;
            }
            break;
        }
        if (dfd_remove_tmp >= 0 && strncmp(e->d_name, ".tmp-", 5) == 0) {
            unlinkat(dfd_remove_tmp, e->d_name, 0); /* best effort: the next save retries */
            continue;
        }
        int block;
        if (parse_block_name(e->d_name, &block) != 0)
            continue;
        if (n == cap) {
            int ncap = cap ? 2 * cap : 16;
            block_file *nv = realloc(v, (size_t)ncap * sizeof *nv);
            if (!nv) {
                free(v);
                errno = ENOMEM;
                return -1;
            }
            v = nv;
            cap = ncap;
        }
        v[n].block = block;
        snprintf(v[n].name, sizeof v[n].name, "block-%08d.ckpt", block); /* == d_name, canonical */
        n++;
    }
    if (n > 1)
        qsort(v, (size_t)n, sizeof *v, by_block_desc);
    *out = v;
    return n;
}

/* Some filesystems cannot fsync a directory and say EINVAL; nothing more can be done there. */
static int fsync_dir_fd(int fd)
{
    return fsync(fd) == 0 || errno == EINVAL ? 0 : -1;
}

/* Make a newly created directory's entry durable in its parent. */
static int fsync_parent(const char *path)
{
    char parent[PATH_CAP];
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(parent, sizeof parent, ".");
    else if (slash == path)
        snprintf(parent, sizeof parent, "/");
    else
        snprintf(parent, sizeof parent, "%.*s", (int)(slash - path), path);
    int fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync_dir_fd(fd);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

/* mkdir -p path (0755), each new directory made durable in its parent. A component that exists
 * as a file fails later, at the first mkdir or open below it (ENOTDIR). */
int checkpoint_make_dirs(const char *path, char *err, size_t errlen)
{
    char buf[PATH_CAP];
    size_t n = strlen(path);
    if (n >= sizeof buf) {
        seterr(err, errlen, "checkpoint: directory path too long (%zu bytes)", n);
        return -1;
    }
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if ((buf[i] != '/' && buf[i] != '\0') || buf[i - 1] == '/')
            continue;
        char saved = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0755) == 0) {
            if (fsync_parent(buf) != 0) {
                seterr(err, errlen, "checkpoint: fsync the parent of %s: %s", buf, strerror(errno));
                return -1;
            }
        } else if (errno != EEXIST) {
            seterr(err, errlen, "checkpoint: mkdir %s: %s", buf, strerror(errno));
            return -1;
        }
        buf[i] = saved;
    }
    return 0;
}

/* Drop old checkpoints: all but the newest `keep` blocks, never the one just written (a newer,
 * undecodable file left by a crash would otherwise push it out with keep = 1), and every stale
 * temporary file. Failures are ignored: the save itself is already durable, and the next save
 * sweeps again. */
static void sweep(const char *mdir, int keep, int written)
{
    DIR *d = opendir(mdir);
    if (!d)
        return;
    block_file *v = NULL;
    int n = list_blocks(d, dirfd(d), &v);
    for (int k = keep; k < n; k++)
        if (v[k].block != written)
            unlinkat(dirfd(d), v[k].name, 0);
    free(v);
    closedir(d);
}

static int write_all(int fd, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static atomic_uint tmp_serial;

int checkpoint_save(const char *dir, const checkpoint *c, int keep, char *err, size_t errlen)
{
    char why[256];
    if (keep < 1) {
        seterr(err, errlen, "checkpoint: keep must be at least 1 (got %d)", keep);
        return -1;
    }
    if (!valid_model_str(c->model)) {
        seterr(err, errlen, "checkpoint: bad model id \"%.127s\" (1..127 of [A-Za-z0-9._-], no leading '.')",
               c->model);
        return -1;
    }
    if (c->block < 0) {
        seterr(err, errlen, "checkpoint: model %s: block %d: only a folded block can be saved", c->model,
               c->block);
        return -1;
    }
    if (validate(c, why, sizeof why) != 0) {
        seterr(err, errlen, "checkpoint: model %s: %s", c->model, why);
        return -1;
    }
    char mdir[PATH_CAP], tmp[PATH_CAP + NAME_CAP + 2], final[PATH_CAP + NAME_CAP + 2];
    if ((size_t)snprintf(mdir, sizeof mdir, "%s/%s", dir, c->model) >= sizeof mdir - NAME_CAP - 1) {
        seterr(err, errlen, "checkpoint: directory path too long");
        return -1;
    }
    char name[NAME_CAP], tname[NAME_CAP];
    snprintf(name, sizeof name, "block-%08d.ckpt", c->block);
    snprintf(final, sizeof final, "%s/%s", mdir, name);

    unsigned char *buf;
    size_t len;
    if (checkpoint_encode(c, &buf, &len) != 0) {
        seterr(err, errlen, "checkpoint: %s: out of memory encoding the checkpoint", final);
        return -1;
    }
    if (checkpoint_make_dirs(mdir, err, errlen) != 0) {
        free(buf);
        return -1;
    }
    int dfd = open(mdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        seterr(err, errlen, "checkpoint: open %s: %s", mdir, strerror(errno));
        free(buf);
        return -1;
    }
    /* Clear crash leftovers before writing: on a disk they filled, this save can then succeed. */
    sweep(mdir, INT_MAX, c->block);

    /* A fresh name (pid + serial, created exclusively) so a concurrent save in another process
     * can never write into our file; collisions with a dead process's leftover just retry. */
    int fd = -1;
    for (int attempt = 0; fd < 0 && attempt < 100; attempt++) {
        snprintf(tname, sizeof tname, ".tmp-block-%08d-%ld-%u", c->block, (long)getpid(),
                 atomic_fetch_add(&tmp_serial, 1));
        fd = openat(dfd, tname, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    snprintf(tmp, sizeof tmp, "%s/%s", mdir, tname);
    if (fd < 0) {
        seterr(err, errlen, "checkpoint: create %s: %s", tmp, strerror(errno));
        free(buf);
        close(dfd);
        return -1;
    }

    /* errno is captured at the failing call: close, free and unlink may change it afterwards. */
    const char *step = NULL;
    int saved = 0;
    if (write_all(fd, buf, len) != 0) {
        step = "write";
        saved = errno;
    } else if (fsync(fd) != 0) {
        step = "fsync";
        saved = errno;
    }
    /* close's error is checked: some filesystems (NFS) report a failed write-back only here. */
    if (close(fd) != 0 && !step) {
        step = "close";
        saved = errno;
    }
    if (!step && renameat(dfd, tname, dfd, name) != 0) {
        step = "rename";
        saved = errno;
    }
    free(buf);
    if (step) {
        unlinkat(dfd, tname, 0);
        close(dfd);
        if (strcmp(step, "rename") == 0)
            seterr(err, errlen, "checkpoint: rename %s to %s: %s", tmp, final, strerror(saved));
        else
            seterr(err, errlen, "checkpoint: %s %s: %s", step, tmp, strerror(saved));
        return -1;
    }
    /* The rename is only durable once the directory is: until then a crash may bring back the
     * previous file (or none), which the caller must not mistake for a saved block. */
    if (fsync_dir_fd(dfd) != 0) {
        seterr(err, errlen, "checkpoint: fsync directory %s: %s", mdir, strerror(errno));
        close(dfd);
        return -1;
    }
    close(dfd);
    sweep(mdir, keep, c->block);
    return 0;
}

/* The whole file at dfd/name into a malloc'd buffer. Returns 0 or -1 with errno. */
static int read_file_at(int dfd, const char *name, unsigned char **out, size_t *len)
{
    int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat st;
    size_t cap = 1 << 16, n = 0;
    /* The size is only a hint for the first allocation: the file is read to its end. */
    if (fstat(fd, &st) == 0 && st.st_size > 0 && (uint64_t)st.st_size < ((uint64_t)1 << 40))
        cap = (size_t)st.st_size + 1;
    unsigned char *buf = malloc(cap);
    for (;;) {
        if (buf && n == cap) {
            unsigned char *nb = cap <= SIZE_MAX / 2 ? realloc(buf, cap * 2) : NULL;
            if (!nb)
                free(buf);
            buf = nb;
            cap *= 2;
        }
        if (!buf) {
            close(fd);
            errno = ENOMEM;
            return -1;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            int saved = errno;
            free(buf);
            close(fd);
            errno = saved;
            return -1;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    *out = buf;
    *len = n;
    return 0;
}

static void warnf(void (*warn)(void *, const char *), void *ctx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void warnf(void (*warn)(void *, const char *), void *ctx, const char *fmt, ...)
{
    if (!warn)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    warn(ctx, msg);
}

int checkpoint_load_latest(const char *dir, const char *model, checkpoint *c,
                           void (*warn)(void *ctx, const char *msg), void *warn_ctx, char *err, size_t errlen)
{
    checkpoint_init(c);
    if (!valid_model_str(model)) {
        seterr(err, errlen, "checkpoint: bad model id \"%.127s\" (1..127 of [A-Za-z0-9._-], no leading '.')",
               model);
        return -1;
    }
    char mdir[PATH_CAP];
    if ((size_t)snprintf(mdir, sizeof mdir, "%s/%s", dir, model) >= sizeof mdir - NAME_CAP - 1) {
        seterr(err, errlen, "checkpoint: directory path too long");
        return -1;
    }
    DIR *d = opendir(mdir);
    if (!d) {
        if (errno == ENOENT)
            return 0; /* a model never checkpointed */
        seterr(err, errlen, "checkpoint: open directory %s: %s", mdir, strerror(errno));
        return -1;
    }
    block_file *v = NULL;
    int n = list_blocks(d, -1, &v);
    if (n < 0) {
        seterr(err, errlen, "checkpoint: read directory %s: %s", mdir, strerror(errno));
        closedir(d);
        return -1;
    }
    int loaded = 0;
    for (int k = 0; k < n && !loaded; k++) {
        unsigned char *buf;
        size_t len;
        char why[512];
        if (read_file_at(dirfd(d), v[k].name, &buf, &len) != 0) {
            warnf(warn, warn_ctx, "checkpoint: skipping %s/%s: %s", mdir, v[k].name, strerror(errno));
            continue;
        }
        int rc = decode(c, buf, len, why, sizeof why);
        free(buf);
        if (rc != 0) {
            warnf(warn, warn_ctx, "checkpoint: skipping %s/%s: %s", mdir, v[k].name, why);
            continue;
        }
        /* A file copied into the wrong directory or renamed by hand is as wrong as a corrupt one. */
        if (strcmp(c->model, model) != 0 || c->block != v[k].block) {
            warnf(warn, warn_ctx, "checkpoint: skipping %s/%s: it holds model %s block %d", mdir, v[k].name,
                  c->model, c->block);
            checkpoint_free(c);
            continue;
        }
        loaded = 1;
    }
    free(v);
    closedir(d);
    if (!loaded && n > 0) {
        /* Every file is unreadable: starting from scratch would silently re-consume (or skip)
         * the input, so the caller must decide. */
        seterr(err, errlen, "checkpoint: none of the %d checkpoint files in %s can be loaded", n, mdir);
        return -1;
    }
    return loaded;
}
