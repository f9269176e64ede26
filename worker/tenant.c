/* tenant: one model id's stream state in a worker; see tenant.h. */
#include "tenant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dense.h"
#include "sparse.h"
#include "state.h"

/* splitmix64 finaliser over FNV-1a of "user \x1f item", keyed by the seed */
int tenant_holdout(const char *user_id, const char *item_id, uint64_t seed, double fraction)
{
    if (fraction <= 0.0)
        return 0;
    uint64_t h = 1469598103934665603ULL ^ seed;
    for (const char *p = user_id; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    h = (h ^ 0x1f) * 1099511628211ULL;
    for (const char *p = item_id; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    h += 0x9e3779b97f4a7c15ULL;
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
    h ^= h >> 31;
    double x = (double)(h >> 11) * (1.0 / 9007199254740992.0);
    return x < 0.5 * fraction ? 1 : x < fraction ? 2 : 0;
}

tenant *tenant_new(const char *id, const checkpoint *c, char *err, size_t errlen)
{
    tenant *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    snprintf(m->id, sizeof m->id, "%s", id);
    ccd_state_init(&m->state);
    idmap_init(&m->users);
    idmap_init(&m->items);
    m->win.next_block = 0;
    m->win.start_ms = INT64_MIN;
    if (!c)
        return m;
    if (ccd_state_deserialize(&m->state, c->state, c->state_len, err, errlen) != 0)
        goto fail;
    if (m->state.block != c->block || m->state.n_users != c->n_users ||
        m->state.n_items != c->n_items) {
        snprintf(err, errlen,
                 "checkpoint of model %s: state (block %d, %d users, %d items) does not match "
                 "its id maps (block %d, %d users, %d items)",
                 id, m->state.block, m->state.n_users, m->state.n_items, c->block, c->n_users,
                 c->n_items);
        goto fail;
    }
    int added;
    for (int r = 0; r < c->n_users; r++)
        if (idmap_add(&m->users, c->user_ids[r], &added) != r)
            goto dup;
    for (int r = 0; r < c->n_items; r++)
        if (idmap_add(&m->items, c->item_ids[r], &added) != r)
            goto dup;
    m->parts = calloc((size_t)(c->n_offsets > 0 ? c->n_offsets : 1), sizeof *m->parts);
    if (!m->parts)
        goto oom;
    for (int i = 0; i < c->n_offsets; i++) {
        snprintf(m->parts[i].topic, sizeof m->parts[i].topic, "%s", c->offsets[i].topic);
        m->parts[i].partition = c->offsets[i].partition;
        m->parts[i].durable_next = c->offsets[i].next_offset;
        m->parts[i].commit_floor = c->offsets[i].commit_floor;
    }
    m->n_parts = c->n_offsets;
    m->win.next_block = c->block + 1;
    m->win.start_ms = c->window_start_ms;
    m->events_total = c->events_total;
    m->published_version = c->published_version;
    return m;
dup:
    snprintf(err, errlen, "checkpoint of model %s: duplicate or unusable id in its id maps", id);
    goto fail;
oom:
    snprintf(err, errlen, "out of memory");
fail:
    tenant_free(m);
    return NULL;
}

void tenant_free(tenant *m)
{
    if (!m)
        return;
    ccd_state_free(&m->state);
    idmap_free(&m->users);
    idmap_free(&m->items);
    free(m->ev);
    free(m->parts);
    for (closed_window *cw = m->closed; cw;) {
        closed_window *next = cw->next;
        free(cw->ev);
        free(cw);
        cw = next;
    }
    free(m);
}

int tenant_part_index(tenant *m, const char *topic, int32_t partition)
{
    for (int i = 0; i < m->n_parts; i++)
        if (m->parts[i].partition == partition && !strcmp(m->parts[i].topic, topic))
            return i;
    tenant_part *p = realloc(m->parts, (size_t)(m->n_parts + 1) * sizeof *p);
    if (!p)
        return -1;
    m->parts = p;
    memset(&p[m->n_parts], 0, sizeof *p);
    snprintf(p[m->n_parts].topic, sizeof p->topic, "%s", topic);
    p[m->n_parts].partition = partition;
    p[m->n_parts].commit_floor = -1;
    return m->n_parts++;
}

int tenant_push(tenant *m, const tenant_event *e)
{
    if (m->n_ev == m->cap_ev) {
        int64_t cap = m->cap_ev ? m->cap_ev * 2 : 4096;
        tenant_event *ev = realloc(m->ev, (size_t)cap * sizeof *ev);
        if (!ev)
            return -1;
        m->ev = ev;
        m->cap_ev = cap;
    }
    m->ev[m->n_ev++] = *e;
    return 0;
}

int tenant_close_window(tenant *m, int block, int64_t window_start_after, const char *reason)
{
    closed_window *cw = calloc(1, sizeof *cw);
    if (!cw)
        return -1;
    cw->block = block;
    cw->ev = m->ev;
    cw->n_ev = m->n_ev;
    cw->n_users = m->users.n;
    cw->n_items = m->items.n;
    cw->window_start_after = window_start_after;
    cw->reason = reason;
    cw->closed_s = ccd_now();
    cw->newest_arrival_s = m->n_ev > 0 ? m->last_arrival_s : cw->closed_s;
    m->ev = NULL;
    m->n_ev = m->cap_ev = 0;
    if (m->closed_tail)
        m->closed_tail->next = cw;
    else
        m->closed = cw;
    m->closed_tail = cw;
    return 0;
}

int64_t tenant_first_pending(const tenant *m, int part)
{
    for (const closed_window *cw = m->closed; cw; cw = cw->next)
        for (int64_t i = 0; i < cw->n_ev; i++)
            if (cw->ev[i].part == part)
                return cw->ev[i].offset;
    for (int64_t i = 0; i < m->n_ev; i++)
        if (m->ev[i].part == part)
            return m->ev[i].offset;
    return -1;
}

int64_t tenant_buffered(const tenant *m)
{
    int64_t n = m->n_ev;
    for (const closed_window *cw = m->closed; cw; cw = cw->next)
        n += cw->n_ev;
    return n;
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* Sorted unique copy of v[0..n) into a malloc'd array; *out_n its length. */
static int *unique_sorted(int *v, int64_t n, int *out_n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_int);
    int64_t w = 0;
    for (int64_t i = 0; i < n; i++)
        if (w == 0 || v[i] != v[w - 1])
            v[w++] = v[i];
    int *u = malloc((size_t)(w > 0 ? w : 1) * sizeof *u);
    if (u && w > 0)
        memcpy(u, v, (size_t)w * sizeof *u);
    *out_n = (int)w;
    return u;
}

int tenant_build_block(const closed_window *cw, int prev_users, int prev_items, ccd_block *blk)
{
    memset(blk, 0, sizeof *blk);
    int64_t n = cw->n_ev, nt = 0, nv = 0, ns = 0;
    size_t sz = (size_t)(n > 0 ? n : 1) * sizeof(int);
    int *tu = malloc(sz), *ti = malloc(sz), *vu = malloc(sz), *vi = malloc(sz), *su = malloc(sz),
        *si = malloc(sz), *all_u = malloc(sz);
    int rc = -1;
    if (!tu || !ti || !vu || !vi || !su || !si || !all_u)
        goto done;
    for (int64_t e = 0; e < n; e++) {
        const tenant_event *x = &cw->ev[e];
        all_u[e] = x->user;
        if (x->holdout == 1)
            vu[nv] = x->user, vi[nv++] = x->item;
        else if (x->holdout == 2)
            su[ns] = x->user, si[ns++] = x->item;
        else
            tu[nt] = x->user, ti[nt++] = x->item;
    }
    blk->index = cw->block;
    blk->n_users = cw->n_users;
    blk->n_items = cw->n_items;
    blk->prev_users = prev_users;
    blk->prev_items = prev_items;
    blk->n_train_lines = nt;
    if (ccd_csr_from_pairs(&blk->train, cw->n_users, cw->n_items, tu, ti, nt) != 0 ||
        ccd_csr_from_pairs(&blk->valid, cw->n_users, cw->n_items, vu, vi, nv) != 0 ||
        ccd_csr_from_pairs(&blk->test, cw->n_users, cw->n_items, su, si, ns) != 0)
        goto done;
    if (!(blk->users = unique_sorted(all_u, n, &blk->n_active_users)))
        goto done;
    if (!(blk->items = unique_sorted(ti, nt, &blk->n_active_items)))
        goto done;
    rc = 0;
done:
    free(tu), free(ti), free(vu), free(vi), free(su), free(si), free(all_u);
    if (rc != 0)
        tenant_block_free(blk);
    return rc;
}

void tenant_block_free(ccd_block *blk)
{
    ccd_csr_free(&blk->train);
    ccd_csr_free(&blk->valid);
    ccd_csr_free(&blk->test);
    free(blk->users);
    free(blk->items);
    memset(blk, 0, sizeof *blk);
}
