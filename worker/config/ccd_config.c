/* ccd_config: INI (libinih) -> ccd_config. See ccd_config.h. */
#include "ccd_config.h"
#include "cli.h"

#include <errno.h>
#include <stddef.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int ccd_parse_bool(const char *v, bool *out)
{
    if (!strcasecmp(v, "true") || !strcmp(v, "1") || !strcasecmp(v, "yes") || !strcasecmp(v, "on"))
        *out = true;
    else if (!strcasecmp(v, "false") || !strcmp(v, "0") || !strcasecmp(v, "no") ||
             !strcasecmp(v, "off"))
        *out = false;
    else
        return -1;
    return 0;
}

int ccd_parse_int(const char *v, int min, int max, int *out)
{
    int64_t x;
    if (cli_parse_int64(v, min, max, &x) != 0)
        return -1;
    *out = (int)x;
    return 0;
}

/* "auto" (the rule of the data's size, CCD_AUTO) or an integer in [min, max]. */
static int parse_int_or_auto(const char *v, int min, int max, int *out)
{
    if (!strcasecmp(v, "auto")) {
        *out = CCD_AUTO;
        return 0;
    }
    return ccd_parse_int(v, min, max, out);
}

static int parse_teachers(const char *v, ccd_config *c)
{
    char buf[1024];
    if (snprintf(buf, sizeof buf, "%s", v) >= (int)sizeof buf)
        return -1; /* not cut silently */
    int n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ' || *tok == '\t')
            tok++;
        /* digits only, converted with range checks (sscanf's %d is undefined on overflow: glibc
         * read dim 4294967360 as 64; %llu took -1 as 2^64-1) */
        char type[32], dims[8], seeds[24];
        char extra;
        if (n == CCD_MAX_TEACHERS ||
            sscanf(tok, "%31[a-z]:%7[0-9]:%23[0-9] %c", type, dims, seeds, &extra) != 3)
            return -1;
        int64_t dim;
        if (cli_parse_int64(dims, 1, 4096, &dim) != 0)
            return -1;
        errno = 0; /* a seed takes all 64 bits, beyond cli_parse_int64's int64_t */
        unsigned long long seed = strtoull(seeds, NULL, 10);
        if (errno)
            return -1;
        if (!strcmp(type, "lightgcn"))
            c->teachers[n].type = CCD_MODEL_LIGHTGCN;
        else if (!strcmp(type, "mf"))
            c->teachers[n].type = CCD_MODEL_MF;
        else
            return -1;
        c->teachers[n].dim = (int)dim;
        c->teachers[n].seed = seed;
        n++;
    }
    if (n == 0)
        return -1;
    c->n_teachers = n;
    return 0;
}

/* A key that holds one plain value: parsed, range-checked, into the field at `offset` of the
 * struct its table describes. Nothing is written when the value is bad. */
typedef struct {
    const char *key;
    enum { KEY_BOOL, KEY_INT, KEY_INT_OR_AUTO, KEY_INT64, KEY_FLOAT, KEY_FLOAT_IN_DOUBLE } kind;
    size_t offset;
    double min, max; /* numbers: the range accepted (exact for these ints and floats) */
} value_key;

#define KEY(type, key, field, kind, min, max)                                                      \
    {                                                                                              \
        key, kind, offsetof(type, field), min, max                                                 \
    }
#define CCD_KEY(field, kind, min, max) KEY(ccd_config, #field, field, kind, min, max)
#define CCD_SWITCH(field) KEY(ccd_config, #field, field, KEY_BOOL, 0, 0)

/* [ccd], but for seed, preset and teachers. */
static const value_key CCD_KEYS[] = {
    CCD_KEY(student_dim, KEY_INT, 1, 4096),
    CCD_SWITCH(replay),
    CCD_SWITCH(use_s),
    CCD_SWITCH(use_p),
    CCD_SWITCH(use_cl),
    CCD_SWITCH(update_teachers),
    CCD_SWITCH(collaborative),
    CCD_SWITCH(distill),
    CCD_SWITCH(student_continues),
    CCD_SWITCH(parallel_teachers),
    CCD_SWITCH(kd_train_items_first),
    CCD_SWITCH(kd_warm_start),
    CCD_SWITCH(kd_absent_users),
    CCD_SWITCH(kd_hold_absent_users),
    CCD_KEY(kd_interesting, KEY_INT, 1, 1000),
    CCD_KEY(kd_uninteresting_items, KEY_INT_OR_AUTO, 0, 1 << 30),
    CCD_KEY(kd_uninteresting_users, KEY_INT_OR_AUTO, 0, 1 << 30),
    CCD_KEY(eval_users, KEY_INT, 0, 1 << 30),
    CCD_KEY(history_blocks, KEY_INT, 0, 1 << 20),
    CCD_KEY(lwc_max_neighbours, KEY_INT, 0, 1 << 30),
    CCD_KEY(parallel_teachers_max_mb, KEY_INT, 0, 1 << 30),
    CCD_KEY(batch_growth_pairs, KEY_INT64, 0, 1 << 30),
    CCD_KEY(batch_growth_nodes, KEY_INT64, 0, 1 << 30),
    CCD_KEY(kd_lambda, KEY_FLOAT, 0.0f, 1e6f),
    CCD_KEY(exclusion_topk, KEY_INT, 0, 1000),
    CCD_KEY(init_topk, KEY_INT, 1, 100000),
    CCD_KEY(replay_eps, KEY_FLOAT, 0.0f, 10.0f),
    CCD_KEY(student_replay_lambda, KEY_FLOAT, 0.0f, 1e6f),
    CCD_KEY(student_anneal, KEY_FLOAT, 1e-6f, 1e6f),
    CCD_KEY(teacher_replay_lambda, KEY_FLOAT, 0.0f, 1e6f),
    CCD_KEY(teacher_anneal, KEY_FLOAT, 1e-6f, 1e6f),
    CCD_KEY(lwc_tau, KEY_FLOAT, 1e-6f, 1e6f),
    CCD_KEY(lwc_lambda, KEY_FLOAT, 0.0f, 1e6f),
    CCD_KEY(lwc_graph_degree, KEY_FLOAT_IN_DOUBLE, 0.0f, 1e6f),
};

/* [ccd.base], [ccd.kd], [ccd.student], [ccd.teacher]. */
static const value_key STAGE_KEYS[] = {
    KEY(ccd_stage_opts, "lr", lr, KEY_FLOAT, 0.0f, 10.0f),
    KEY(ccd_stage_opts, "batch", batch, KEY_INT, 1, 1 << 24),
    KEY(ccd_stage_opts, "negatives", nns, KEY_INT, 1, 1000),
    KEY(ccd_stage_opts, "weight_decay", weight_decay, KEY_FLOAT, 0.0f, 10.0f),
    KEY(ccd_stage_opts, "lazy_decay", lazy_decay, KEY_BOOL, 0, 0),
    KEY(ccd_stage_opts, "epochs", epochs, KEY_INT, 1, 100000),
    KEY(ccd_stage_opts, "eval_every", eval_every, KEY_INT, 1, 100000),
    KEY(ccd_stage_opts, "patience", patience, KEY_INT, 0, 100000),
};

/* [ccd.student.block<k>] */
static const value_key STUDENT_BLOCK_KEYS[] = {
    KEY(ccd_student_block_opts, "ab", ab, KEY_INT, 1, 1 << 30),
    KEY(ccd_student_block_opts, "ss", ss, KEY_INT, 0, 1 << 20),
    KEY(ccd_student_block_opts, "ps", ps, KEY_INT, 0, 1 << 20),
    KEY(ccd_student_block_opts, "sw", sw, KEY_FLOAT, 0.0f, 1.0f),
    KEY(ccd_student_block_opts, "pw", pw, KEY_FLOAT, 0.0f, 1.0f),
};

/* [ccd.teacher.block<k>] */
static const value_key TEACHER_BLOCK_KEYS[] = {
    KEY(ccd_teacher_block_opts, "ab", ab, KEY_INT, 1, 1 << 30),
    KEY(ccd_teacher_block_opts, "ss", ss, KEY_INT, 0, 1 << 20),
    KEY(ccd_teacher_block_opts, "ps", ps, KEY_INT, 0, 1 << 20),
    KEY(ccd_teacher_block_opts, "cs", cs, KEY_INT, 0, 1 << 20),
};

static int set_value(const value_key *k, void *base, const char *v)
{
    void *field = (char *)base + k->offset;
    float f;
    switch (k->kind) {
    case KEY_BOOL:
        return ccd_parse_bool(v, field);
    case KEY_INT:
        return ccd_parse_int(v, (int)k->min, (int)k->max, field);
    case KEY_INT_OR_AUTO:
        return parse_int_or_auto(v, (int)k->min, (int)k->max, field);
    case KEY_INT64:
        return cli_parse_int64(v, (int64_t)k->min, (int64_t)k->max, field);
    case KEY_FLOAT:
        return cli_parse_float(v, (float)k->min, (float)k->max, field);
    case KEY_FLOAT_IN_DOUBLE: /* read at float precision, as it always was: its bits must not change
                               */
        if (cli_parse_float(v, (float)k->min, (float)k->max, &f) != 0)
            return -1;
        *(double *)field = f;
        return 0;
    }
    return -1;
}

/* key of table t (n keys) set in the struct at base: 0, -1 (bad value) or -2 (no such key). */
static int table_key(const value_key *t, size_t n, void *base, const char *key, const char *v)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(t[i].key, key))
            return set_value(&t[i], base, v);
    return -2;
}

#define TABLE_KEY(table, base, key, v) table_key(table, sizeof table / sizeof *table, base, key, v)

/* One key of [ccd]: 0, -1 (bad value) or -2 (unknown key). */
static int ccd_key(ccd_config *c, const char *key, const char *v)
{
    int seed;
    if (!strcmp(key, "seed")) {
        if (ccd_parse_int(v, 0, 2147483647, &seed) != 0)
            return -1;
        c->seed = (uint64_t)seed;
        return 0;
    }
    if (!strcmp(key, "preset")) {
        if (!strcmp(v, "full"))
            return 0;
        if (!strcmp(v, "finetune")) {
            ccd_config_finetune(c);
            return 0;
        }
        return -1;
    }
    if (!strcmp(key, "teachers"))
        return parse_teachers(v, c);
    return TABLE_KEY(CCD_KEYS, c, key, v);
}

/* k of a section "<prefix><k>", k in 1..CCD_MAX_SCHEDULE written with digits only; 0 otherwise.
 * (sscanf's %d is undefined on overflow: glibc read block4294967297 as block 1.) */
static int block_number(const char *section, const char *prefix)
{
    size_t n = strlen(prefix);
    if (strncmp(section, prefix, n) != 0 || !section[n])
        return 0;
    int k = 0;
    for (const char *p = section + n; *p; p++) {
        if (*p < '0' || *p > '9' || k > CCD_MAX_SCHEDULE)
            return 0;
        k = 10 * k + (*p - '0');
    }
    return k >= 1 && k <= CCD_MAX_SCHEDULE ? k : 0;
}

/* Row k (k >= 1) of a per-block schedule of *n_rows rows (row_size bytes each), extended to k rows
 * when shorter: the new rows repeat the last row given, or row 0's defaults when none is. */
static void *schedule_row(void *rows, size_t row_size, int *n_rows, int k)
{
    unsigned char *r = rows;
    if (k > *n_rows) {
        const unsigned char *last = r + (size_t)(*n_rows ? *n_rows - 1 : 0) * row_size;
        for (int j = *n_rows; j < k; j++)
            memmove(r + (size_t)j * row_size, last, row_size);
        *n_rows = k;
    }
    return r + (size_t)(k - 1) * row_size;
}

int ccd_config_set(ccd_config *c, const char *section, const char *key, const char *v, char *err,
                   size_t errlen)
{
    int r = -2, k;
    if (!strcmp(section, "ccd"))
        r = ccd_key(c, key, v);
    else if (!strcmp(section, "ccd.base"))
        r = TABLE_KEY(STAGE_KEYS, &c->base, key, v);
    else if (!strcmp(section, "ccd.kd"))
        r = TABLE_KEY(STAGE_KEYS, &c->kd, key, v);
    else if (!strcmp(section, "ccd.student"))
        r = TABLE_KEY(STAGE_KEYS, &c->student, key, v);
    else if (!strcmp(section, "ccd.teacher"))
        r = TABLE_KEY(STAGE_KEYS, &c->teacher, key, v);
    else if ((k = block_number(section, "ccd.student.block")) > 0)
        r = TABLE_KEY(
            STUDENT_BLOCK_KEYS,
            schedule_row(c->student_blocks, sizeof *c->student_blocks, &c->n_student_blocks, k),
            key, v);
    else if ((k = block_number(section, "ccd.teacher.block")) > 0)
        r = TABLE_KEY(
            TEACHER_BLOCK_KEYS,
            schedule_row(c->teacher_blocks, sizeof *c->teacher_blocks, &c->n_teacher_blocks, k),
            key, v);
    else if (strncmp(section, "ccd", 3) == 0 && (section[3] == '\0' || section[3] == '.')) {
        snprintf(err, errlen, "unknown section [%s]", section);
        return -1;
    } else {
        return 0;
    }
    if (r == -2) {
        snprintf(err, errlen, "unknown key %s.%s", section, key);
        return -1;
    }
    if (r != 0) {
        snprintf(err, errlen, "bad value for %s.%s: \"%s\"", section, key, v);
        return -1;
    }
    return 1;
}

/* ------------------------------------------------------------------------------------------ */
/* the effective settings, key by key (the tables above, read the other way) */

/* The shortest decimal (at most 9 digits) that reads back as the same float: 0.01, not
 * 0.00999999978. */
static void format_float(float x, char *buf, size_t n)
{
    for (int digits = 6; digits <= 9; digits++) {
        snprintf(buf, n, "%.*g", digits, (double)x);
        if (strtof(buf, NULL) == x)
            return;
    }
}

/* One table value as the config file writes it (set back, the same bits). */
static void format_value(const value_key *k, const void *base, char *buf, size_t n)
{
    const void *field = (const char *)base + k->offset;
    switch (k->kind) {
    case KEY_BOOL:
        snprintf(buf, n, "%s", *(const bool *)field ? "true" : "false");
        return;
    case KEY_INT:
        snprintf(buf, n, "%d", *(const int *)field);
        return;
    case KEY_INT_OR_AUTO:
        if (*(const int *)field == CCD_AUTO)
            snprintf(buf, n, "auto");
        else
            snprintf(buf, n, "%d", *(const int *)field);
        return;
    case KEY_INT64:
        snprintf(buf, n, "%lld", (long long)*(const int64_t *)field);
        return;
    case KEY_FLOAT:
        format_float(*(const float *)field, buf, n);
        return;
    case KEY_FLOAT_IN_DOUBLE: /* a float's value, as set_value stores it */
        format_float((float)*(const double *)field, buf, n);
        return;
    }
}

static int each_in_table(const value_key *t, size_t n, const void *base, const char *section,
                         ccd_config_visit fn, void *ctx)
{
    char v[64];
    for (size_t i = 0; i < n; i++) {
        format_value(&t[i], base, v, sizeof v);
        if (fn(ctx, section, t[i].key, v) != 0)
            return -1;
    }
    return 0;
}

#define EACH_IN_TABLE(table, base, section)                                                        \
    each_in_table(table, sizeof table / sizeof *table, base, section, fn, ctx)

/* [ccd]'s seed and teachers, the two keys outside the tables. */
static int each_special(const ccd_config *c, ccd_config_visit fn, void *ctx)
{
    char v[CCD_MAX_TEACHERS * 48] = "", seed[24];
    size_t used = 0;
    for (int m = 0; m < c->n_teachers && used < sizeof v; m++)
        used += (size_t)snprintf(v + used, sizeof v - used, "%s%s:%d:%llu", m ? ", " : "",
                                 c->teachers[m].type == CCD_MODEL_MF ? "mf" : "lightgcn",
                                 c->teachers[m].dim, (unsigned long long)c->teachers[m].seed);
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)c->seed);
    return fn(ctx, "ccd", "seed", seed) != 0 || fn(ctx, "ccd", "teachers", v) != 0 ? -1 : 0;
}

int ccd_config_each(const ccd_config *c, ccd_config_visit fn, void *ctx)
{
    static const char *const stages[] = {"ccd.base", "ccd.kd", "ccd.student", "ccd.teacher"};
    const ccd_stage_opts *opts[] = {&c->base, &c->kd, &c->student, &c->teacher};
    if (each_special(c, fn, ctx) != 0 || EACH_IN_TABLE(CCD_KEYS, c, "ccd") != 0)
        return -1;
    for (int s = 0; s < 4; s++)
        if (EACH_IN_TABLE(STAGE_KEYS, opts[s], stages[s]) != 0)
            return -1;
    char section[48];
    for (int k = 1; k <= c->n_student_blocks; k++) {
        snprintf(section, sizeof section, "ccd.student.block%d", k);
        if (EACH_IN_TABLE(STUDENT_BLOCK_KEYS, &c->student_blocks[k - 1], section) != 0)
            return -1;
    }
    for (int k = 1; k <= c->n_teacher_blocks; k++) {
        snprintf(section, sizeof section, "ccd.teacher.block%d", k);
        if (EACH_IN_TABLE(TEACHER_BLOCK_KEYS, &c->teacher_blocks[k - 1], section) != 0)
            return -1;
    }
    return 0;
}

typedef struct {
    FILE *f;
    char section[48]; /* the section whose header was written last */
} ini_writer;

static int write_ini_key(void *ctx, const char *section, const char *key, const char *value)
{
    ini_writer *w = ctx;
    if (strcmp(w->section, section) != 0) {
        fprintf(w->f, "%s[%s]\n", w->section[0] ? "\n" : "", section);
        snprintf(w->section, sizeof w->section, "%s", section);
    }
    return fprintf(w->f, "%s = %s\n", key, value) < 0 ? -1 : 0;
}

int ccd_config_write_ini(FILE *f, const ccd_config *c)
{
    ini_writer w = {.f = f};
    return ccd_config_each(c, write_ini_key, &w);
}

typedef struct {
    FILE *f;
    char *buf;
    size_t cap;
    int line;     /* lines read so far */
    int too_long; /* first line longer than inih's buffer, 0 if none */
} line_reader;

/* inih's reader: one whole line per call (fgets would hand a long line over in pieces). A line
 * that does not fit in num bytes is recorded and given to inih as a blank line. */
static char *read_line(char *str, int num, void *stream)
{
    line_reader *r = stream;
    ssize_t got = getline(&r->buf, &r->cap, r->f);
    if (got < 0)
        return NULL;
    r->line++;
    size_t n = (size_t)got;
    while (n > 0 && (r->buf[n - 1] == '\n' || r->buf[n - 1] == '\r'))
        n--; /* inih strips trailing white space anyway */
    if (n >= (size_t)num) {
        if (!r->too_long)
            r->too_long = r->line;
        n = 0;
    }
    memcpy(str, r->buf, n);
    str[n] = '\0';
    return str;
}

int ccd_ini_parse(const char *path,
                  int (*handler)(void *, const char *, const char *, const char *), void *user,
                  bool *too_long)
{
    line_reader r = {.f = fopen(path, "r")};
    *too_long = false;
    if (!r.f)
        return -1;
    int line = ini_parse_stream(read_line, &r, handler, user);
    fclose(r.f);
    free(r.buf);
    if (r.too_long && (line <= 0 || r.too_long < line)) {
        *too_long = true;
        return r.too_long;
    }
    return line;
}

typedef struct {
    ccd_config *c;
    char *err;
    size_t errlen;
    const char *path;
    int failed;
} load_ctx;

static int on_entry(void *user, const char *section, const char *key, const char *value)
{
    load_ctx *l = user;
    char msg[512];
    int r = ccd_config_set(l->c, section, key, value, msg, sizeof msg);
    if (r == 0)
        snprintf(msg, sizeof msg, "unknown section [%s] (key %s)", section, key);
    if (r != 1) {
        if (!l->failed)
            snprintf(l->err, l->errlen, "%s", msg);
        l->failed = 1;
        return 0; /* inih reports the line */
    }
    return 1;
}

int ccd_config_load(ccd_config *c, const char *path, char *err, size_t errlen)
{
    load_ctx l = {c, err, errlen, path, 0};
    char msg[600];
    msg[0] = '\0';
    l.err = msg;
    l.errlen = sizeof msg;
    bool too_long;
    int line = ccd_ini_parse(path, on_entry, &l, &too_long);
    if (line < 0) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    if (line > 0) {
        snprintf(err, errlen, "%s:%d: %s", path, line,
                 too_long ? "line too long"
                 : msg[0] ? msg
                          : "syntax error");
        return -1;
    }
    return 0;
}

int ccd_config_override(ccd_config *c, const char *assignment, char *err, size_t errlen)
{
    const char *eq = strchr(assignment, '=');
    const char *dot = NULL;
    for (const char *p = assignment; eq && p < eq; p++)
        if (*p == '.')
            dot = p;
    /* errors show the name only (what precedes '='): the value may be a secret */
    if (eq && (!dot || dot == assignment || dot + 1 == eq)) {
        snprintf(err, errlen, "-X %.*s=...: expected section.key=value", (int)(eq - assignment),
                 assignment);
        return -1;
    }
    if (!eq) {
        snprintf(err, errlen, "-X %s: expected section.key=value", assignment);
        return -1;
    }
    char section[256], key[256];
    snprintf(section, sizeof section, "%.*s", (int)(dot - assignment), assignment);
    snprintf(key, sizeof key, "%.*s", (int)(eq - dot - 1), dot + 1);
    int r = ccd_config_set(c, section, key, eq + 1, err, errlen);
    if (r == 0) {
        snprintf(err, errlen, "-X %s.%s=...: unknown section [%s]", section, key, section);
        return -1;
    }
    return r == 1 ? 0 : -1;
}
