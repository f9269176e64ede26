/* idmap: external ids (strings) <-> dense rows 0..n-1, in order of first appearance.
 *
 * An open-addressing hash table (linear probing, power-of-two capacity, at most half full) of
 * row numbers; the id strings live in an arena of large blocks that never moves or frees a string
 * while the map lives, so a `const char *` handed out stays valid (the trainer thread reads a
 * snapshot of the row -> id pointers while the consumer thread keeps adding ids). */
#ifndef CCD_IDMAP_H
#define CCD_IDMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct idmap_block idmap_block;

typedef struct {
    int n; /* rows */
    int cap_rows;
    const char **ids; /* (cap_rows) row -> id (into the arena) */
    int32_t *slots;   /* (n_slots) row + 1, 0 = empty */
    size_t n_slots;   /* power of two */
    idmap_block *arena;
} idmap;

void idmap_init(idmap *m);
void idmap_free(idmap *m);

/* Row of id; -1 when absent. */
int idmap_find(const idmap *m, const char *id);

/* Row of id, adding it as row n when absent (*added = 1). -1 when out of memory or full
 * (more than INT32_MAX / 2 rows). */
int idmap_add(idmap *m, const char *id, int *added);

/* The id of a row (valid while the map lives). */
static inline const char *idmap_id(const idmap *m, int row)
{
    return m->ids[row];
}

/* A malloc'd copy of the row -> id pointers of rows 0..n-1 (n <= m->n), or NULL. */
const char **idmap_snapshot(const idmap *m, int n);

/* The hash of an id; its low bits (& n_slots - 1) are the id's home slot. Public for the tests,
 * which build ids that collide. */
uint64_t idmap_hash(const char *id);

#endif
