/* errmsg: the worker's error convention in one place. A function that can fail takes
 * (char *err, size_t errlen) and, on failure, leaves a one-line message there; err may be NULL or
 * errlen 0 when the caller does not want it (nothing is written then). */
#ifndef CCD_ERRMSG_H
#define CCD_ERRMSG_H

#include <stddef.h>

void errmsg_set(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
