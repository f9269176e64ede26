/* config_value: ${NAME} expansion and KEY_file values; see config_value.h. */
#include "config_value.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errmsg.h"

/* A growing output string; on OOM `failed` is set and the rest is dropped. */
typedef struct {
    char *s;
    size_t n, cap;
    bool failed;
} text;

static void text_add(text *t, const char *p, size_t n)
{
    if (t->failed)
        return;
    if (t->n + n + 1 > t->cap) {
        size_t cap = (t->n + n + 1) * 2;
        char *s = realloc(t->s, cap);
        if (!s) {
            t->failed = true;
            return;
        }
        t->s = s;
        t->cap = cap;
    }
    memcpy(t->s + t->n, p, n);
    t->n += n;
    t->s[t->n] = '\0';
}

static bool name_char(char c, bool first)
{
    return c == '_' || isalpha((unsigned char)c) || (!first && isdigit((unsigned char)c));
}

/* One ${...} at p (p[0..1] = "${"): appended to t; returns the characters consumed, or 0 with
 * err. */
static size_t expand_one(const char *p, text *t, char *err, size_t errlen)
{
    const char *name = p + 2, *q = name;
    while (name_char(*q, q == name))
        q++;
    size_t len = (size_t)(q - name);
    const char *deflt = NULL, *end;
    if (q[0] == ':' && q[1] == '-') {
        deflt = q + 2;
        end = strchr(deflt, '}');
    } else {
        end = *q == '}' ? q : NULL;
    }
    if (len == 0 || !end) {
        errmsg_set(err, errlen,
                   "malformed ${...} (expected ${NAME} or ${NAME:-default}, NAME of letters, "
                   "digits and _; write $${ for a literal ${)");
        return 0;
    }
    char var[256];
    if (len >= sizeof var) {
        errmsg_set(err, errlen, "environment variable name longer than %zu", sizeof var - 1);
        return 0;
    }
    memcpy(var, name, len);
    var[len] = '\0';
    const char *v = getenv(var);
    if (deflt && (!v || !*v))
        text_add(t, deflt, (size_t)(end - deflt));
    else if (v)
        text_add(t, v, strlen(v));
    else {
        errmsg_set(err, errlen,
                   "environment variable %s is not set (use ${%s:-default} for a default)", var,
                   var);
        return 0;
    }
    return (size_t)(end + 1 - p);
}

int config_value_expand(const char *in, char **out, char *err, size_t errlen)
{
    text t = {0};
    text_add(&t, "", 0);
    for (const char *p = in; *p;) {
        if (p[0] == '$' && p[1] == '$' && p[2] == '{') {
            text_add(&t, "${", 2);
            p += 3;
        } else if (p[0] == '$' && p[1] == '{') {
            size_t used = expand_one(p, &t, err, errlen);
            if (used == 0) {
                free(t.s);
                return -1;
            }
            p += used;
        } else {
            const char *next = strchr(p + 1, '$');
            size_t n = next ? (size_t)(next - p) : strlen(p);
            text_add(&t, p, n);
            p += n;
        }
    }
    if (t.failed) {
        free(t.s);
        errmsg_set(err, errlen, "out of memory");
        return -1;
    }
    *out = t.s;
    return 0;
}

int config_value_read_file(const char *path, char **out, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        errmsg_set(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    char *buf = malloc(CONFIG_VALUE_FILE_MAX + 2);
    if (!buf) {
        fclose(f);
        errmsg_set(err, errlen, "out of memory");
        return -1;
    }
    size_t n = fread(buf, 1, CONFIG_VALUE_FILE_MAX + 1, f);
    int read_err = ferror(f);
    fclose(f);
    const char *why = read_err                       ? "read error"
                      : n > CONFIG_VALUE_FILE_MAX    ? "larger than 64 KiB"
                      : memchr(buf, '\0', n) != NULL ? "holds a NUL byte"
                                                     : NULL;
    if (why) {
        free(buf);
        errmsg_set(err, errlen, "%s: %s", path, why);
        return -1;
    }
    if (n > 0 && buf[n - 1] == '\n') {
        n--;
        if (n > 0 && buf[n - 1] == '\r')
            n--;
    }
    buf[n] = '\0';
    *out = buf;
    return 0;
}

bool config_value_is_file_key(const char *key)
{
    size_t n = strlen(key);
    return n > 5 && !strcmp(key + n - 5, "_file");
}

void config_value_wipe(char *s)
{
    for (volatile char *p = s; p && *p; p++)
        *p = 0;
}
