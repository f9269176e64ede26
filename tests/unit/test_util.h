/* test_util: small helpers the cmocka unit tests share (tests/unit/test_util.c). Each one fails
 * the running test (a cmocka assertion) instead of returning an error. */
#ifndef CCD_TEST_UTIL_H
#define CCD_TEST_UTIL_H

#include <stddef.h>

/* A malloc'd copy of s (free it). */
char *xstrdup(const char *s);

/* Writes n bytes to path (created or truncated). */
void write_file(const char *path, const void *data, size_t n);

/* Removes path: a file, or a directory with everything below it. A missing path is not an error. */
void rm_tree(const char *path);

#endif
