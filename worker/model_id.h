/* model_id: the one rule for model ids, shared by the consumer (message keys), the checkpoint
 * store (a directory per model) and the Redis sink (the id sits inside a {hash tag}).
 *
 * 1..127 bytes of [A-Za-z0-9._-], not starting with '.': never "." or "..", never hidden, no '/',
 * no brace that would move the hash tag, no ':' or space that would make keys ambiguous. */
#ifndef CCD_MODEL_ID_H
#define CCD_MODEL_ID_H

#include <stdbool.h>
#include <stddef.h>

#define MODEL_ID_MAX 127

static inline bool model_id_char(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '.' || ch == '_' || ch == '-';
}

/* id[0..len) need not be NUL-terminated. */
static inline bool model_id_valid(const char *id, size_t len)
{
    if (len == 0 || len > MODEL_ID_MAX || id[0] == '.')
        return false;
    for (size_t i = 0; i < len; i++)
        if (!model_id_char((unsigned char)id[i]))
            return false;
    return true;
}

#endif
