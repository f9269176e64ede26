/* idmap: see idmap.h. */
#include "idmap.h"

#include <stdlib.h>
#include <string.h>

struct idmap_block {
    idmap_block *next;
    size_t used, cap;
    char data[];
};

#define ARENA_BLOCK (1u << 20)

void idmap_init(idmap *m)
{
    memset(m, 0, sizeof *m);
}

void idmap_free(idmap *m)
{
    for (idmap_block *b = m->arena; b;) {
        idmap_block *next = b->next;
        free(b);
        b = next;
    }
    free(m->ids);
    free(m->slots);
    memset(m, 0, sizeof *m);
}

/* FNV-1a, then a multiply-xorshift finaliser so that linear probing sees well-mixed low bits. */
uint64_t idmap_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ULL;
    h ^= h >> 32;
    return h;
}

int idmap_find(const idmap *m, const char *id)
{
    if (!m->n_slots)
        return -1;
    size_t mask = m->n_slots - 1;
    for (size_t i = idmap_hash(id) & mask;; i = (i + 1) & mask) {
        int32_t s = m->slots[i];
        if (s == 0)
            return -1;
        if (!strcmp(m->ids[s - 1], id))
            return s - 1;
    }
}

static int grow_slots(idmap *m)
{
    size_t n = m->n_slots ? m->n_slots * 2 : 1024;
    int32_t *slots = calloc(n, sizeof *slots);
    if (!slots)
        return -1;
    for (int r = 0; r < m->n; r++) {
        size_t i = idmap_hash(m->ids[r]) & (n - 1);
        while (slots[i])
            i = (i + 1) & (n - 1);
        slots[i] = r + 1;
    }
    free(m->slots);
    m->slots = slots;
    m->n_slots = n;
    return 0;
}

static const char *arena_copy(idmap *m, const char *id)
{
    size_t len = strlen(id) + 1;
    idmap_block *b = m->arena;
    if (!b || b->cap - b->used < len) {
        size_t cap = len > ARENA_BLOCK ? len : ARENA_BLOCK;
        idmap_block *nb = malloc(sizeof *nb + cap);
        if (!nb)
            return NULL;
        nb->next = b;
        nb->used = 0;
        nb->cap = cap;
        m->arena = b = nb;
    }
    char *dst = b->data + b->used;
    memcpy(dst, id, len);
    b->used += len;
    return dst;
}

int idmap_add(idmap *m, const char *id, int *added)
{
    *added = 0;
    int row = idmap_find(m, id);
    if (row >= 0)
        return row;
    if (m->n >= INT32_MAX / 2)
        return -1;
    if ((size_t)(m->n + 1) * 2 > m->n_slots && grow_slots(m) != 0)
        return -1;
    if (m->n == m->cap_rows) {
        int cap = m->cap_rows ? m->cap_rows * 2 : 1024;
        const char **ids = realloc(m->ids, (size_t)cap * sizeof *ids);
        if (!ids)
            return -1;
        m->ids = ids;
        m->cap_rows = cap;
    }
    const char *copy = arena_copy(m, id);
    if (!copy)
        return -1;
    row = m->n++;
    m->ids[row] = copy;
    size_t mask = m->n_slots - 1, i = idmap_hash(id) & mask;
    while (m->slots[i])
        i = (i + 1) & mask;
    m->slots[i] = row + 1;
    *added = 1;
    return row;
}

const char **idmap_snapshot(const idmap *m, int n)
{
    const char **s = malloc((size_t)(n > 0 ? n : 1) * sizeof *s);
    if (s && n > 0)
        memcpy(s, m->ids, (size_t)n * sizeof *s);
    return s;
}
