/* config_value: from a value as an operator wrote it in the worker's configuration (file or -X)
 * to the value its key receives, so that secrets and per-deployment settings need not be written
 * into the file:
 *   ${NAME}            the environment variable NAME; unset is an error naming NAME (a typo in a
 *                      variable name must not become an empty password)
 *   ${NAME:-default}   NAME, or `default` when NAME is unset or empty
 *   $${                a literal "${"; any other '$' stays as it is (passwords may contain '$')
 * and any key may be written KEY_file = PATH: the key receives the content of the file PATH (one
 * trailing newline dropped, at most 64 KiB), which is how a Kubernetes Secret or a Docker secret
 * is mounted. The path is expanded first. NAME is [A-Za-z_][A-Za-z0-9_]*. */
#ifndef CCD_CONFIG_VALUE_H
#define CCD_CONFIG_VALUE_H

#include <stdbool.h>
#include <stddef.h>

#define CONFIG_VALUE_FILE_MAX 65536

/* Expand ${...} in `in` into a malloc'd *out. Returns 0, or -1 with a reason in err (which never
 * quotes the value: it may be a secret). */
int config_value_expand(const char *in, char **out, char *err, size_t errlen);

/* The content of `path` into a malloc'd *out (NUL-terminated; one trailing "\n" or "\r\n"
 * dropped). Returns 0, or -1 with a reason naming the path. A file holding a NUL byte is refused
 * (a value is a C string). */
int config_value_read_file(const char *path, char **out, char *err, size_t errlen);

/* Overwrite a string that held a secret before it is freed (a volatile store: not optimised
 * away like a memset before free). */
void config_value_wipe(char *s);

/* true when key ends in "_file" (and has something before it): the KEY_file form. */
bool config_value_is_file_key(const char *key);

#endif
