/* fuzz_config: libFuzzer target for the config parsers (worker/config/worker_config.c, which
 * hands the [ccd*] sections to worker/config/ccd_config.c; ccd-offline's ccd_config_load/_override
 * too).
 *
 * Input: an INI file, then optionally a NUL byte and NUL-separated -X assignments:
 *     <INI text> \0 <section.key=value> \0 <section.key=value> ...
 * so every plain .ini file is a valid input (tests/fuzz/corpus/config/ holds copies of the files
 * in configs/). The INI text goes through the real file path, worker_config_load(path) -> libinih,
 * from a memfd named as /proc/self/fd/N (nothing is written to disk). Then, as ccd-worker does:
 * each -X through worker_config_override, then worker_config_check; and, as ccd-offline does:
 * ccd_config_load on the same file, then ccd_config_override.
 * What must hold (else the harness prints what failed and abort()s):
 *   - no crash, leak or sanitizer report, and no exit() (libFuzzer and replay.c catch exit);
 *   - every call returns 0 or -1, and -1 comes with a non-empty, terminated message;
 *   - the loaded configs stay within their bounds (counts, ports, owned strings);
 *   - no message shows any part of the value of a secret key (worker_config_is_secret: password,
 *     secret, jaas, token, ...) given in the file or in a -X. A message holding 8 bytes of a
 *     secret value (shorter values are not checked) is a suspect; it is confirmed by running the
 *     same input again with the letters and digits of every secret value rotated (a->b, 9->0: the
 *     INI structure is unchanged): the message leaks if it then shows the rotated bytes instead.
 *     Bytes that the message got from elsewhere (a key name, its own wording) do not follow the
 *     rotation. */
#define _GNU_SOURCE /* memfd_create, memmem */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ccd_config.h"
#include "worker_config.h"

#define MAX_OVERRIDES 64
#define MAX_SECRETS 1024
#define CHUNK                                                                                      \
    8 /* bytes of a secret value that a message must not show; shorter values are not checked */
#define MAX_CALLS (3 + 2 * MAX_OVERRIDES)
#define MSG 1024

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

__attribute__((format(printf, 1, 2), noreturn)) static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fuzz_config: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

/* ---- the file ------------------------------------------------------------------------------ */

static int ini_fd = -1;
static char ini_path[64];

static void setup(void)
{
    ini_fd = memfd_create("fuzz_config.ini", MFD_CLOEXEC);
    if (ini_fd < 0) { /* no memfd: an unlinked temporary file, reached the same way */
        const char *dir = getenv("TMPDIR");
        char tmpl[4096];
        snprintf(tmpl, sizeof tmpl, "%s/fuzz_config.XXXXXX", dir && *dir ? dir : "/tmp");
        ini_fd = mkstemp(tmpl);
        if (ini_fd >= 0)
            unlink(tmpl);
    }
    if (ini_fd < 0)
        die("cannot create a scratch file: %s", strerror(errno));
    snprintf(ini_path, sizeof ini_path, "/proc/self/fd/%d", ini_fd);
    if (access(ini_path, R_OK) != 0)
        die("%s: %s (is /proc mounted?)", ini_path, strerror(errno));
}

static void write_ini(const uint8_t *text, size_t n)
{
    if (ftruncate(ini_fd, 0) != 0)
        die("ftruncate: %s", strerror(errno));
    for (size_t off = 0; off < n;) {
        ssize_t w = pwrite(ini_fd, text + off, n - off, (off_t)off);
        if (w <= 0)
            die("pwrite: %s", strerror(errno));
        off += (size_t)w;
    }
}

/* ---- where the secrets are ---------------------------------------------------------------- */

/* Byte ranges of the input that hold secret values: on an INI line "key = value" or "key: value"
 * with a secret key, the rest of the raw line, whatever inih makes of it (libinih cuts a long
 * line and reads its tail as a line of its own); an indented continuation line after a secret key
 * (inih's multi-line values); in a -X assignment with a secret name, what follows the first '='. */
typedef struct {
    int n;
    size_t start[MAX_SECRETS], end[MAX_SECRETS];
} secrets;

static void add_range(secrets *s, const uint8_t *data, size_t start, size_t end)
{
    while (start < end && (data[start] == ' ' || data[start] == '\t'))
        start++;
    if (end - start >= CHUNK && s->n < MAX_SECRETS) {
        s->start[s->n] = start;
        s->end[s->n++] = end;
    }
}

static bool secret_name(const uint8_t *p, size_t n)
{
    while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    char *name = malloc(n + 1);
    if (!name)
        abort();
    memcpy(name, p, n);
    name[n] = '\0';
    bool secret = worker_config_is_secret(name);
    free(name);
    return secret;
}

static bool space(uint8_t ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\v' || ch == '\f';
}

/* libinih's find_chars_or_comment: the first of chars, or an inline comment (';' after white
 * space), from p; eol when neither. */
static size_t find(const uint8_t *data, size_t p, size_t eol, const char *chars)
{
    bool was_space = false;
    for (; p < eol && data[p]; p++) {
        if (strchr(chars, data[p]) || (was_space && data[p] == ';'))
            return p;
        was_space = space(data[p]) || data[p] == '\n';
    }
    return eol;
}

/* The line classification follows libinih's (r55): comment; indented line after a key of the
 * same section = continuation of that key's value; [section]; key = value / key: value. A line
 * of 199 bytes or more is read in pieces by Debian's libinih (fgets into 200 bytes) and skipped
 * by a loader that refuses long lines: which key a following indented line continues is then
 * unknown, and such lines are left out (neither secret nor a key). */
static void find_secrets(secrets *s, const uint8_t *data, size_t size, size_t ini_len)
{
    enum { NO_KEY, KEY, UNKNOWN } state = NO_KEY;
    bool key_secret = false;
    for (size_t at = 0; at < ini_len;) {
        const uint8_t *nl = memchr(data + at, '\n', ini_len - at);
        size_t eol = nl ? (size_t)(nl - data) : ini_len, p = at;
        if (at == 0 && eol >= 3 && !memcmp(data, "\xEF\xBB\xBF", 3))
            p = 3; /* a UTF-8 BOM, which inih skips */
        while (p < eol && space(data[p]))
            p++;
        if (p == eol || data[p] == ';' || data[p] == '#') {
            /* blank or comment */
        } else if (p > at && state != NO_KEY) {
            if (state == KEY && key_secret)
                add_range(s, data, p, eol);
        } else if (data[p] == '[') {
            size_t e = find(data, p + 1, eol, "]");
            if (e < eol && data[e] == ']') /* a malformed section line changes nothing */
                state = NO_KEY;
        } else {
            size_t d = find(data, p, eol, "=:");
            if (d < eol && data[d] != ';') {
                state = KEY;
                key_secret = secret_name(data + p, d - p);
                if (key_secret)
                    add_range(s, data, d + 1, eol); /* all of the line: a cut one's tail too */
            }
        }
        if (eol - at >= 199)
            state = UNKNOWN;
        at = eol + 1;
    }
    for (size_t at = ini_len + 1; at < size;) {
        const uint8_t *end = memchr(data + at, '\0', size - at);
        size_t stop = end ? (size_t)(end - data) : size;
        const uint8_t *eq = memchr(data + at, '=', stop - at);
        if (eq && secret_name(data + at, (size_t)(eq - (data + at))))
            add_range(s, data, (size_t)(eq - data) + 1, stop);
        at = stop + 1;
    }
}

static uint8_t rotate(uint8_t ch)
{
    if (ch >= 'a' && ch <= 'z')
        return ch == 'z' ? 'a' : ch + 1;
    if (ch >= 'A' && ch <= 'Z')
        return ch == 'Z' ? 'A' : ch + 1;
    if (ch >= '0' && ch <= '9')
        return ch == '9' ? '0' : ch + 1;
    return ch;
}

/* ---- invariants --------------------------------------------------------------------------- */

static void check_ccd(const ccd_config *c)
{
    if (c->n_teachers < 1 || c->n_teachers > CCD_MAX_TEACHERS || c->n_student_blocks < 0 ||
        c->n_student_blocks > CCD_MAX_SCHEDULE || c->n_teacher_blocks < 0 ||
        c->n_teacher_blocks > CCD_MAX_SCHEDULE || c->student_dim < 1)
        die("ccd_config out of bounds: %d teachers, %d/%d schedule blocks, student_dim %d",
            c->n_teachers, c->n_student_blocks, c->n_teacher_blocks, c->student_dim);
}

static volatile size_t sink; /* keeps the strlen calls of check_worker */

static void check_worker(const worker_config *w)
{
    size_t sum = 0; /* strlen of every owned string: ASan sees a dangling or unterminated one */
    const char *strs[] = {w->format,         w->reader_schema, w->dead_letter_topic,
                          w->default_model,  w->redis_host,    w->redis_user,
                          w->redis_password, w->redis_prefix,  w->checkpoint_dir,
                          w->metrics_listen};
    for (size_t i = 0; i < sizeof strs / sizeof *strs; i++) {
        if (!strs[i])
            die("worker_config: string %zu is NULL", i);
        sum += strlen(strs[i]);
    }
    if (w->n_kafka < 0 || w->n_kafka > WCFG_MAX_KAFKA || w->n_topics < 0 ||
        w->n_topics > WCFG_MAX_TOPICS || w->n_schemas < 0 || w->n_schemas > WCFG_MAX_SCHEMAS)
        die("worker_config: %d kafka keys, %d topics, %d schemas", w->n_kafka, w->n_topics,
            w->n_schemas);
    for (int i = 0; i < w->n_kafka; i++)
        sum += strlen(w->kafka[i].key) + strlen(w->kafka[i].value);
    for (int i = 0; i < w->n_topics; i++) {
        if (!w->topics[i][0])
            die("worker_config: empty topic %d", i);
        sum += strlen(w->topics[i]);
    }
    for (int i = 0; i < w->n_schemas; i++) {
        if (w->schema_ids[i] < 0 || !w->schema_paths[i][0])
            die("worker_config: schema %d: id %d, path \"%s\"", i, (int)w->schema_ids[i],
                w->schema_paths[i]);
        for (int j = 0; j < i; j++)
            if (w->schema_ids[j] == w->schema_ids[i])
                die("worker_config: schema id %d twice", (int)w->schema_ids[i]);
    }
    if (strcmp(w->format, "auto") && strcmp(w->format, "raw") && strcmp(w->format, "confluent"))
        die("worker_config: format \"%s\"", w->format);
    if (w->redis_port < 1 || w->redis_port > 65535 || w->log_level < 0 || w->log_level > 3 ||
        w->threads < 0 || !(w->holdout_fraction >= 0 && w->holdout_fraction < 1) ||
        !w->reader_schema[0] || !w->redis_host[0] || !w->redis_prefix[0] || !w->checkpoint_dir[0])
        die("worker_config: a value out of its range");
    check_ccd(&w->ccd);
    sink += sum;
}

/* ---- one run of the parsers ---------------------------------------------------------------- */

typedef struct {
    int n;
    const char *what[MAX_CALLS];
    char msg[MAX_CALLS][MSG];
} messages;

static char *record(messages *m, const char *what)
{
    if (m->n == MAX_CALLS)
        abort();
    m->what[m->n] = what;
    m->msg[m->n][0] = '\0';
    return m->msg[m->n++];
}

static void check_rc(const messages *m, int rc)
{
    const char *msg = m->msg[m->n - 1];
    if (rc != 0 && rc != -1)
        die("%s returned %d", m->what[m->n - 1], rc);
    if (!memchr(msg, '\0', MSG))
        die("%s: message not terminated", m->what[m->n - 1]);
    if (rc == -1 && !msg[0])
        die("%s failed without a message", m->what[m->n - 1]);
}

/* Everything the worker and ccd-offline do with a config file and -X options; each call's
 * message goes to m, in order. */
static void run_parsers(const uint8_t *data, size_t size, messages *m)
{
    const uint8_t *nul = memchr(data, '\0', size);
    size_t ini_len = nul ? (size_t)(nul - data) : size;
    char *overrides[MAX_OVERRIDES];
    int n_over = 0;
    for (size_t at = ini_len + 1; nul && at <= size && n_over < MAX_OVERRIDES;) {
        const uint8_t *end = memchr(data + at, '\0', size - at);
        size_t len = end ? (size_t)(end - (data + at)) : size - at;
        if (!(overrides[n_over] = malloc(len + 1))) /* exact size: ASan sees overreads */
            abort();
        memcpy(overrides[n_over], data + at, len);
        overrides[n_over++][len] = '\0';
        at += len + 1;
    }
    write_ini(data, ini_len);
    m->n = 0;

    /* ccd-worker: -c FILE, -X ..., then the cross-key checks */
    worker_config w;
    worker_config_init(&w);
    int rc = worker_config_load(&w, ini_path, record(m, "worker_config_load"), MSG);
    check_rc(m, rc);
    check_worker(&w);
    for (int i = 0; i < n_over; i++) {
        rc = worker_config_override(&w, overrides[i], record(m, "worker_config_override"), MSG);
        check_rc(m, rc);
        check_worker(&w);
    }
    rc = worker_config_check(&w, record(m, "worker_config_check"), MSG);
    check_rc(m, rc);
    worker_config_free(&w);

    /* ccd-offline: -c FILE (ccd sections only), -X ... */
    ccd_config c;
    ccd_config_yelp(&c);
    rc = ccd_config_load(&c, ini_path, record(m, "ccd_config_load"), MSG);
    check_rc(m, rc);
    check_ccd(&c);
    for (int i = 0; i < n_over; i++) {
        rc = ccd_config_override(&c, overrides[i], record(m, "ccd_config_override"), MSG);
        check_rc(m, rc);
        check_ccd(&c);
    }

    for (int i = 0; i < n_over; i++)
        free(overrides[i]);
}

/* ---- the target ----------------------------------------------------------------------------- */

/* Every CHUNK-byte window of the secret values, by content (8 bytes: the key is the window
 * itself), in an open-addressing table reset by generation. */
#define TABLE (1u << 16)
static uint64_t t_key[TABLE];
static uint32_t t_at[TABLE], t_gen[TABLE], gen;

static uint64_t window(const void *p)
{
    uint64_t k;
    memcpy(&k, p, sizeof k);
    return k;
}

static uint32_t slot(uint64_t k)
{
    return (uint32_t)((k * UINT64_C(0x9E3779B97F4A7C15)) >> 48) & (TABLE - 1);
}

static void insert(uint64_t k, uint32_t at)
{
    for (uint32_t i = slot(k);; i = (i + 1) & (TABLE - 1)) {
        if (t_gen[i] != gen) {
            t_gen[i] = gen, t_key[i] = k, t_at[i] = at;
            return;
        }
        if (t_key[i] == k)
            return;
    }
}

static bool lookup(uint64_t k, uint32_t *at)
{
    for (uint32_t i = slot(k); t_gen[i] == gen; i = (i + 1) & (TABLE - 1))
        if (t_key[i] == k)
            return *at = t_at[i], true;
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (ini_fd < 0)
        setup();
    static messages first, again;
    static secrets s;
    run_parsers(data, size, &first);

    const uint8_t *nul = memchr(data, '\0', size);
    s.n = 0;
    find_secrets(&s, data, size, nul ? (size_t)(nul - data) : size);
    if (s.n == 0)
        return 0;

    /* the windows of the secret values that rotation changes (at most half the table) */
    gen++;
    uint32_t n_windows = 0;
    for (int i = 0; i < s.n; i++) {
        for (size_t at = s.start[i]; at + CHUNK <= s.end[i] && n_windows < TABLE / 2; at++) {
            bool changes = false;
            for (size_t j = 0; j < CHUNK; j++)
                changes |= rotate(data[at + j]) != data[at + j];
            if (changes)
                insert(window(data + at), (uint32_t)at), n_windows++;
        }
    }

    /* suspects: (message, window) pairs where the message holds a window of a secret value */
    enum { MAX_SUSPECTS = 64 };
    int n_suspects = 0, s_call[MAX_SUSPECTS];
    uint32_t s_at[MAX_SUSPECTS];
    for (int k = 0; k < first.n && n_suspects < MAX_SUSPECTS; k++) {
        size_t mlen = strlen(first.msg[k]);
        for (size_t p = 0; p + CHUNK <= mlen && n_suspects < MAX_SUSPECTS; p++) {
            uint32_t at;
            if (lookup(window(first.msg[k] + p), &at))
                s_call[n_suspects] = k, s_at[n_suspects++] = at;
        }
    }
    if (n_suspects == 0)
        return 0;

    /* confirm: the same input with every secret value rotated; a message that then shows the
     * rotated window, and no longer the original, got it from the secret */
    uint8_t *rotated = malloc(size);
    if (!rotated)
        abort();
    memcpy(rotated, data, size);
    for (int i = 0; i < s.n; i++)
        for (size_t j = s.start[i]; j < s.end[i]; j++)
            rotated[j] = rotate(data[j]);
    run_parsers(rotated, size, &again);
    for (int i = 0; i < n_suspects; i++) {
        int k = s_call[i];
        if (k >= again.n)
            continue;
        size_t mlen = strlen(again.msg[k]);
        if (memmem(again.msg[k], mlen, rotated + s_at[i], CHUNK) &&
            !memmem(again.msg[k], mlen, data + s_at[i], CHUNK))
            die("%s shows a secret value: \"%s\" (the same input with the secret values rotated: "
                "\"%s\")",
                first.what[k], first.msg[k], again.msg[k]);
    }
    free(rotated);
    return 0;
}
