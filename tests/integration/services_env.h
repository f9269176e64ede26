/* services_env: what the integration tests share: reading the file tests/services.sh writes
 * (KEY=VALUE lines, path in CCD_SERVICES_ENV) and a CHECK that fails the test with a message. */
#ifndef CCD_SERVICES_ENV_H
#define CCD_SERVICES_ENV_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                   \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

/* Copies the value of key into out; returns 0, or -1 (with a message) if it is missing. */
static inline int services_env(const char *key, char *out, size_t n)
{
    const char *path = getenv("CCD_SERVICES_ENV");
    if (!path) {
        fprintf(stderr,
                "CCD_SERVICES_ENV is not set: run through ctest, which starts the services\n");
        return -1;
    }
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "%s: cannot open (did the services fixture start?)\n", path);
        return -1;
    }
    char line[512];
    size_t klen = strlen(key);
    int rc = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, klen) == 0 && line[klen] == '=') {
            line[strcspn(line, "\r\n")] = '\0';
            const char *value = line + klen + 1;
            size_t vlen = strlen(value);
            if (vlen < n) {
                memcpy(out, value, vlen + 1);
                rc = 0;
            }
            break;
        }
    fclose(f);
    if (rc != 0)
        fprintf(stderr, "%s: no %s\n", path, key);
    return rc;
}

#endif
