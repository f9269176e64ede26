/* checkpoint_store: what the checkpoint store does whichever backend holds the bytes: the checks
 * before a save, encoding, and the newest-first fallback of a load. See checkpoint.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "errmsg.h"
#include "model_id.h"
#include "wlog.h"

#define WHERE_CAP 4400 /* a backend's longest location (a path or a key) */

/* Checks a caller-supplied model string without reading past 128 bytes (model_id.h). */
static int check_model(const char *model, char *err, size_t errlen)
{
    size_t n = strnlen(model, 128);
    if (n < 128 && model_id_valid(model, n))
        return 0;
    errmsg_set(err, errlen,
               "checkpoint: bad model id \"%.127s\" (1..127 of [A-Za-z0-9._-], no leading '.')",
               model);
    return -1;
}

int ckpt_store_claim(ckpt_store *s, const char *model, const char *member, const char *source,
                     ckpt_claim *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (check_model(model, err, errlen) != 0)
        return -1;
    return s->be->claim(s->impl, model, member ? member : "", source ? source : "", out, err,
                        errlen);
}

int ckpt_store_save(ckpt_store *s, const checkpoint *c, uint64_t epoch, char *err, size_t errlen)
{
    if (check_model(c->model, err, errlen) != 0)
        return -1;
    if (c->block < 0) {
        errmsg_set(err, errlen, "checkpoint: model %s: block %d: only a folded block can be saved",
                   c->model, c->block);
        return -1;
    }
    char why[256];
    if (checkpoint_check(c, why, sizeof why) != 0) {
        errmsg_set(err, errlen, "checkpoint: model %s: %s", c->model, why);
        return -1;
    }
    unsigned char *buf;
    size_t len;
    if (checkpoint_encode(c, &buf, &len) != 0) {
        errmsg_set(err, errlen, "checkpoint: model %s block %d: out of memory encoding it",
                   c->model, c->block);
        return -1;
    }
    int rc = s->be->put(s->impl, c->model, c->block, epoch, buf, len, s->keep, err, errlen);
    free(buf);
    if (rc == 1) {
        /* Durable and harmless (the new owner claimed before loading, so it never reads this
         * file), but worth seeing: a stalled writer. */
        s->landed_late++;
        wlog(WLOG_WARN, "%s", err);
        rc = 0;
    } else if (rc == 2) {
        s->fence_raised++;
        rc = 0;
    }
    return rc;
}

static void skipped(const ckpt_store *s, const char *model, int block, const char *why,
                    void (*warn)(void *, const char *), void *warn_ctx)
{
    if (!warn)
        return;
    char where[WHERE_CAP], msg[WHERE_CAP + 600];
    s->be->where(s->impl, model, block, where, sizeof where);
    snprintf(msg, sizeof msg, "checkpoint: skipping %s: %s", where, why);
    warn(warn_ctx, msg);
}

/* One stored block into c: 1 loaded, 0 skipped (with a warning), -1 store error. */
static int load_block(ckpt_store *s, const char *model, int block, checkpoint *c,
                      void (*warn)(void *, const char *), void *warn_ctx, char *err, size_t errlen)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    char why[512] = "";
    int r = s->be->get(s->impl, model, block, &buf, &len, why, sizeof why);
    if (r < 0) {
        errmsg_set(err, errlen, "%s", why);
        return -1;
    }
    if (r == 0) {
        skipped(s, model, block, why, warn, warn_ctx);
        return 0;
    }
    r = checkpoint_decode(c, buf, len, why, sizeof why);
    free(buf);
    if (r != 0) {
        /* the reason without decode's "checkpoint: " prefix: skipped() adds its own */
        skipped(s, model, block, why + strlen("checkpoint: "), warn, warn_ctx);
        return 0;
    }
    /* A checkpoint copied to the wrong place or renamed by hand is as wrong as a corrupt one. */
    if (strcmp(c->model, model) != 0 || c->block != block) {
        snprintf(why, sizeof why, "it holds model %s block %d", c->model, c->block);
        checkpoint_free(c);
        skipped(s, model, block, why, warn, warn_ctx);
        return 0;
    }
    return 1;
}

int ckpt_store_load_latest(ckpt_store *s, const char *model, checkpoint *c,
                           void (*warn)(void *ctx, const char *msg), void *warn_ctx, char *err,
                           size_t errlen)
{
    checkpoint_init(c);
    if (check_model(model, err, errlen) != 0)
        return -1;
    int *blocks = NULL;
    int n = s->be->list(s->impl, model, &blocks, err, errlen);
    if (n < 0)
        return -1;
    int loaded = 0;
    for (int k = 0; k < n && loaded == 0; k++)
        loaded = load_block(s, model, blocks[k], c, warn, warn_ctx, err, errlen);
    free(blocks);
    if (loaded == 0 && n > 0) {
        /* Every one is unusable: starting from scratch would silently re-consume (or skip) the
         * input, so the caller must decide. */
        char where[WHERE_CAP];
        s->be->where(s->impl, model, -1, where, sizeof where);
        errmsg_set(err, errlen, "checkpoint: none of the %d checkpoints in %s can be loaded", n,
                   where);
        return -1;
    }
    return loaded;
}

void ckpt_store_close(ckpt_store *s)
{
    if (s->be)
        s->be->close(s->impl);
    memset(s, 0, sizeof *s);
}

/* ------------------------------------------------------------------------------------------ */
/* blobs */

static int check_blob(const char *model, const char *name, char *err, size_t errlen)
{
    if (check_model(model, err, errlen) != 0)
        return -1;
    size_t n = strnlen(name, 96);
    if (n < 96 && model_id_valid(name, n))
        return 0;
    errmsg_set(err, errlen, "blob: bad name \"%.95s\"", name);
    return -1;
}

int ckpt_store_put_blob(ckpt_store *s, const char *model, const char *name,
                        const unsigned char *buf, size_t len, char *err, size_t errlen)
{
    if (check_blob(model, name, err, errlen) != 0)
        return -1;
    if (!s->be->put_blob) {
        errmsg_set(err, errlen, "blob: this store keeps no blobs");
        return -1;
    }
    return s->be->put_blob(s->impl, model, name, buf, len, err, errlen);
}

int ckpt_store_get_blob(ckpt_store *s, const char *model, const char *name, unsigned char **buf,
                        size_t *len, char *err, size_t errlen)
{
    if (buf) {
        *buf = NULL;
        *len = 0;
    }
    if (check_blob(model, name, err, errlen) != 0 || !s->be->get_blob)
        return -1;
    return s->be->get_blob(s->impl, model, name, buf, len, err, errlen);
}

int ckpt_store_del_blob(ckpt_store *s, const char *model, const char *name, char *err,
                        size_t errlen)
{
    if (check_blob(model, name, err, errlen) != 0 || !s->be->del_blob)
        return -1;
    return s->be->del_blob(s->impl, model, name, err, errlen);
}

int ckpt_store_sweep_blobs(ckpt_store *s, const char *model,
                           bool (*drop)(void *ctx, const char *name), void *ctx, char *err,
                           size_t errlen)
{
    if (check_model(model, err, errlen) != 0)
        return -1;
    if (!s->be->sweep_blobs)
        return 0;
    return s->be->sweep_blobs(s->impl, model, drop, ctx, err, errlen);
}
