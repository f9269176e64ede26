/* replay: a main() for the fuzz targets without libFuzzer. Every file named on the command line,
 * and every regular file of every directory named (in name order, not recursively), goes once
 * through LLVMFuzzerTestOneInput, in a heap buffer of exactly its size. This is how the committed
 * corpora run as CTest tests (test_fuzz_corpus_*) in the gcc builds, Sanitize included.
 *
 * Fails when a file cannot be read, when nothing was replayed (a missing or empty corpus), and
 * when the target calls exit() (an atexit hook turns that into a failure even for exit(0)). A
 * crash or a sanitizer report fails it the usual way. */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *current; /* the input being run, for the atexit hook */

static void exit_hook(void)
{
    if (current) {
        fprintf(stderr, "replay: the target called exit() while running %s\n", current);
        _exit(1);
    }
}

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t cap = 4096, n = 0;
    unsigned char *buf = malloc(cap);
    for (;;) {
        if (!buf) {
            fclose(f);
            fprintf(stderr, "replay: %s: out of memory\n", path);
            return -1;
        }
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        unsigned char *grown = realloc(buf, cap *= 2);
        if (!grown)
            free(buf);
        buf = grown;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        fprintf(stderr, "replay: %s: read error\n", path);
        free(buf);
        return -1;
    }
    /* exactly n bytes, so ASan sees any read past the end */
    unsigned char *exact = malloc(n ? n : 1);
    if (!exact) {
        free(buf);
        return -1;
    }
    memcpy(exact, buf, n);
    free(buf);
    current = path;
    LLVMFuzzerTestOneInput(exact, n);
    current = NULL;
    free(exact);
    return 0;
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int skip_dot(const struct dirent *d)
{
    return d->d_name[0] != '.';
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE|DIR ...\n", argv[0]);
        return 2;
    }
    atexit(exit_hook);
    int runs = 0, failed = 0;
    for (int a = 1; a < argc; a++) {
        if (!is_dir(argv[a])) {
            if (run_file(argv[a]) == 0)
                runs++;
            else
                failed++;
            continue;
        }
        struct dirent **names;
        int k = scandir(argv[a], &names, skip_dot, alphasort);
        if (k < 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[a], strerror(errno));
            failed++;
            continue;
        }
        for (int i = 0; i < k; i++) {
            char path[4096];
            struct stat st;
            snprintf(path, sizeof path, "%s/%s", argv[a], names[i]->d_name);
            if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
                if (run_file(path) == 0)
                    runs++;
                else
                    failed++;
            }
            free(names[i]);
        }
        free(names);
    }
    printf("replay: %d inputs run, %d unreadable\n", runs, failed);
    return failed || runs == 0 ? 1 : 0;
}
