/* dataset: plain-text block reader. See dataset.h. */
#include "dataset.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

#define MAX_BLOCKS 1024

/* Parse one non-negative decimal int; *end is left after it. */
static int parse_int(const char *s, const char **end, long *out)
{
    errno = 0;
    char *e;
    long v = strtol(s, &e, 10);
    if (e == s || errno != 0 || v < 0 || v > INT32_MAX)
        return -1;
    *out = v;
    *end = e;
    return 0;
}

static int grow(int **arr, int64_t *cap, int64_t need)
{
    if (need <= *cap)
        return 0;
    int64_t nc = *cap ? *cap * 2 : 1024;
    while (nc < need)
        nc *= 2;
    int *p = realloc(*arr, (size_t)nc * sizeof *p);
    if (!p)
        return -1;
    *arr = p;
    *cap = nc;
    return 0;
}

int ccd_read_int_tsv(const char *path, int two_cols, int limit_a, int limit_b, int **a, int **b,
                     int64_t *n, char *err, size_t errlen)
{
    *a = NULL;
    if (b)
        *b = NULL;
    *n = 0;
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    int *va = NULL, *vb = NULL;
    int64_t cap_a = 0, cap_b = 0, count = 0, line_no = 0;
    char line[256];
    int rc = 0;
    while (fgets(line, sizeof line, f)) {
        line_no++;
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n') {
            snprintf(err, errlen, "%s:%lld: line too long", path, (long long)line_no);
            rc = -1;
            break;
        }
        if (line[0] == '\n' || (line[0] == '\r' && line[1] == '\n'))
            continue; /* tolerate blank lines (a trailing newline at the end) */
        const char *p = line;
        long x, y = 0;
        if (parse_int(p, &p, &x) != 0 || x >= limit_a) {
            snprintf(err, errlen, "%s:%lld: expected an id in [0, %d), got \"%.40s\"", path,
                     (long long)line_no, limit_a, line);
            rc = -1;
            break;
        }
        if (two_cols) {
            if (*p != '\t' || parse_int(p + 1, &p, &y) != 0 || y >= limit_b) {
                snprintf(err, errlen,
                         "%s:%lld: expected \"user<TAB>item\" with item in [0, %d), got \"%.40s\"",
                         path, (long long)line_no, limit_b, line);
                rc = -1;
                break;
            }
        }
        while (*p == '\r' || *p == '\n')
            p++;
        if (*p != '\0') {
            snprintf(err, errlen, "%s:%lld: unexpected trailing text \"%.40s\"", path,
                     (long long)line_no, p);
            rc = -1;
            break;
        }
        if (grow(&va, &cap_a, count + 1) != 0 || (two_cols && grow(&vb, &cap_b, count + 1) != 0)) {
            snprintf(err, errlen, "%s: out of memory", path);
            rc = -1;
            break;
        }
        va[count] = (int)x;
        if (two_cols)
            vb[count] = (int)y;
        count++;
    }
    if (rc == 0 && ferror(f)) {
        snprintf(err, errlen, "%s: read error", path);
        rc = -1;
    }
    fclose(f);
    if (rc != 0) {
        free(va);
        free(vb);
        return -1;
    }
    *a = va;
    if (b)
        *b = vb;
    else
        free(vb);
    *n = count;
    return 0;
}

/* Sort and deduplicate; returns the new length. */
static int sort_unique(int *v, int64_t n)
{
    qsort(v, (size_t)n, sizeof *v, ccd_cmp_int);
    int64_t w = 0;
    for (int64_t k = 0; k < n; k++)
        if (k == 0 || v[k] != v[w - 1])
            v[w++] = v[k];
    return (int)w;
}

static int load_pairs(ccd_csr *out, const char *dir, int k, const char *name, int nu, int ni,
                      int64_t *lines, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/block%d/%s", dir, k, name);
    int *u, *i;
    int64_t n;
    if (ccd_read_int_tsv(path, 1, nu, ni, &u, &i, &n, err, errlen) != 0)
        return -1;
    int rc = ccd_csr_from_pairs(out, nu, ni, u, i, n);
    free(u);
    free(i);
    if (rc != 0) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    if (lines)
        *lines = n;
    return 0;
}

static int load_ids(int **out, int *count, const char *dir, int k, const char *name, int limit,
                    char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/block%d/%s", dir, k, name);
    int64_t n;
    if (ccd_read_int_tsv(path, 0, limit, 0, out, NULL, &n, err, errlen) != 0)
        return -1;
    *count = sort_unique(*out, n);
    return 0;
}

static void block_free(ccd_block *b)
{
    ccd_csr_free(&b->train);
    ccd_csr_free(&b->valid);
    ccd_csr_free(&b->test);
    free(b->users);
    free(b->items);
    memset(b, 0, sizeof *b);
}

int ccd_dataset_load(ccd_dataset *ds, const char *dir, int max_blocks, char *err, size_t errlen)
{
    memset(ds, 0, sizeof *ds);
    char path[4096];
    snprintf(path, sizeof path, "%s/blocks.tsv", dir);
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    int sizes[MAX_BLOCKS][2];
    int n_blocks = 0, line_no = 0;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        line_no++;
        if (line_no == 1 && strncmp(line, "block", 5) == 0)
            continue; /* header */
        if (line[0] == '\n')
            continue;
        int b, nu, ni;
        char extra;
        if (sscanf(line, "%d\t%d\t%d %c", &b, &nu, &ni, &extra) != 3 || b != n_blocks || nu <= 0 ||
            ni <= 0 ||
            (n_blocks > 0 && (nu < sizes[n_blocks - 1][0] || ni < sizes[n_blocks - 1][1]))) {
            snprintf(
                err, errlen,
                "%s:%d: expected \"%d<TAB>num_users<TAB>num_items\" with sizes that never shrink",
                path, line_no, n_blocks);
            fclose(f);
            return -1;
        }
        if (n_blocks == MAX_BLOCKS) {
            snprintf(err, errlen, "%s:%d: more than %d blocks", path, line_no, MAX_BLOCKS);
            fclose(f);
            return -1;
        }
        sizes[n_blocks][0] = nu;
        sizes[n_blocks][1] = ni;
        n_blocks++;
    }
    fclose(f);
    if (n_blocks == 0) {
        snprintf(err, errlen, "%s: no blocks listed", path);
        return -1;
    }
    if (max_blocks > 0 && max_blocks < n_blocks)
        n_blocks = max_blocks;
    ds->blocks = calloc((size_t)n_blocks, sizeof *ds->blocks);
    if (!ds->blocks) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    ds->n_blocks = n_blocks;
    for (int k = 0; k < n_blocks; k++) {
        ccd_block *b = &ds->blocks[k];
        b->index = k;
        b->n_users = sizes[k][0];
        b->n_items = sizes[k][1];
        b->prev_users = k ? sizes[k - 1][0] : 0;
        b->prev_items = k ? sizes[k - 1][1] : 0;
        if (load_pairs(&b->train, dir, k, "train.tsv", b->n_users, b->n_items, &b->n_train_lines,
                       err, errlen) != 0 ||
            load_pairs(&b->valid, dir, k, "valid.tsv", b->n_users, b->n_items, NULL, err, errlen) !=
                0 ||
            load_pairs(&b->test, dir, k, "test.tsv", b->n_users, b->n_items, NULL, err, errlen) !=
                0 ||
            load_ids(&b->users, &b->n_active_users, dir, k, "users.tsv", b->n_users, err, errlen) !=
                0 ||
            load_ids(&b->items, &b->n_active_items, dir, k, "items.tsv", b->n_items, err, errlen) !=
                0) {
            ccd_dataset_free(ds);
            return -1;
        }
    }
    return 0;
}

void ccd_dataset_free(ccd_dataset *ds)
{
    if (!ds || !ds->blocks)
        return;
    for (int k = 0; k < ds->n_blocks; k++)
        block_free(&ds->blocks[k]);
    free(ds->blocks);
    memset(ds, 0, sizeof *ds);
}

/* A user's place in the evaluation sample: a hash of (seed, user) as a fraction in [0, 1). */
static double sample_point(uint64_t seed, int u)
{
    uint64_t z = ccd_mix64(seed * 0x9e3779b97f4a7c15ULL + (uint64_t)u + 0x632be59bd9b4e019ULL);
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

/* Keep the rows of users whose sample point is below keep; the others become empty. */
static int keep_rows(ccd_csr *a, uint64_t seed, double keep)
{
    int64_t w = 0;
    for (int u = 0; u < a->n_rows; u++) {
        int64_t from = a->indptr[u], to = a->indptr[u + 1];
        a->indptr[u] = w;
        if (sample_point(seed, u) < keep)
            for (int64_t e = from; e < to; e++)
                a->indices[w++] = a->indices[e];
    }
    a->indptr[a->n_rows] = w;
    a->nnz = w;
    return 0;
}

int ccd_block_sample_eval(ccd_block *b, int max_users, uint64_t seed)
{
    if (max_users <= 0)
        return 0;
    int n_eval = 0;
    for (int u = 0; u < b->test.n_rows; u++)
        n_eval += b->test.indptr[u + 1] > b->test.indptr[u];
    if (n_eval <= max_users)
        return n_eval;
    const double keep = (double)max_users / n_eval;
    keep_rows(&b->valid, seed, keep);
    keep_rows(&b->test, seed, keep);
    int kept = 0;
    for (int u = 0; u < b->test.n_rows; u++)
        kept += b->test.indptr[u + 1] > b->test.indptr[u];
    return kept;
}
