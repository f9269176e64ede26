/* checkpoint_dir: the directory backend of the checkpoint store. See checkpoint.h.
 *
 * DIR/<model>/block-<k, 8 digits>.ckpt, written as DIR/<model>/.tmp-block-<k>-<pid>-<serial>
 * (created exclusively, so a concurrent save in another process never writes into our file),
 * fsynced, closed (its error checked: NFS reports a failed write-back there), renamed into place,
 * and the directory fsynced: only then is the save durable. Errors name the step, the file and
 * errno's text ("checkpoint: write DIR/m/.tmp-block-00000001-...: No space left on device").
 * Only canonical names are ours: block-5.ckpt or block-00000005.ckpt~ are neither loaded nor
 * pruned. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "checkpoint.h"
#include "errmsg.h"

#define PATH_CAP 4096 /* longest DIR/<model>/<file> path the store builds */
#define NAME_CAP 64   /* block-<k>.ckpt and .tmp-* names */

typedef struct {
    char dir[PATH_CAP];
} dir_store;

static void block_name(char *out, int block)
{
    snprintf(out, NAME_CAP, "block-%08d.ckpt", block);
}

/* DIR/<model>, leaving room for a file name below it. */
static int model_dir(const dir_store *d, const char *model, char *mdir, char *err, size_t errlen)
{
    if ((size_t)snprintf(mdir, PATH_CAP, "%s/%s", d->dir, model) >= PATH_CAP - NAME_CAP - 1) {
        errmsg_set(err, errlen, "checkpoint: directory path too long");
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* listing */

/* block-<k>.ckpt with k written as %08d exactly. */
static int parse_block_name(const char *name, int *block)
{
    if (strncmp(name, "block-", 6) != 0)
        return -1;
    const char *p = name + 6;
    long long v = 0;
    int digits = 0;
    for (; *p >= '0' && *p <= '9'; p++, digits++) {
        v = v * 10 + (*p - '0');
        if (v > INT_MAX)
            return -1;
    }
    if (digits == 0 || strcmp(p, ".ckpt") != 0)
        return -1;
    char canon[NAME_CAP];
    block_name(canon, (int)v);
    if (strcmp(canon, name) != 0)
        return -1;
    *block = (int)v;
    return 0;
}

static int by_block_desc(const void *a, const void *b)
{
    const int x = *(const int *)a, y = *(const int *)b;
    return (x < y) - (x > y);
}

/* The blocks of an open directory, newest first. With dfd_remove_tmp >= 0, .tmp-* entries are
 * unlinked on the way (leftovers of a crashed save). Returns the count, or -1 with errno. */
static int list_blocks(DIR *d, int dfd_remove_tmp, int **out)
{
    int *v = NULL, n = 0, cap = 0;
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(d);
        if (!e)
            break;
        if (dfd_remove_tmp >= 0 && strncmp(e->d_name, ".tmp-", 5) == 0) {
            unlinkat(dfd_remove_tmp, e->d_name, 0); /* best effort: the next save retries */
            continue;
        }
        int block;
        if (parse_block_name(e->d_name, &block) != 0)
            continue;
        if (n == cap) {
            int *nv = realloc(v, (size_t)(cap = cap ? 2 * cap : 16) * sizeof *nv);
            if (!nv) {
                free(v);
                errno = ENOMEM;
                return -1;
            }
            v = nv;
        }
        v[n++] = block;
    }
    if (errno) {
        int saved = errno;
        free(v);
        errno = saved;
        return -1;
    }
    if (n > 1)
        qsort(v, (size_t)n, sizeof *v, by_block_desc);
    *out = v;
    return n;
}

static int dir_list(void *impl, const char *model, int **blocks, char *err, size_t errlen)
{
    char mdir[PATH_CAP];
    *blocks = NULL;
    if (model_dir(impl, model, mdir, err, errlen) != 0)
        return -1;
    DIR *d = opendir(mdir);
    if (!d) {
        if (errno == ENOENT)
            return 0; /* a model never checkpointed */
        errmsg_set(err, errlen, "checkpoint: open directory %s: %s", mdir, strerror(errno));
        return -1;
    }
    int n = list_blocks(d, -1, blocks);
    if (n < 0)
        errmsg_set(err, errlen, "checkpoint: read directory %s: %s", mdir, strerror(errno));
    closedir(d);
    return n;
}

/* ------------------------------------------------------------------------------------------ */
/* directories */

/* Some filesystems cannot fsync a directory and say EINVAL; nothing more can be done there. */
static int fsync_dir_fd(int fd)
{
    return fsync(fd) == 0 || errno == EINVAL ? 0 : -1;
}

/* Make a newly created directory's entry durable in its parent. */
static int fsync_parent(const char *path)
{
    char copy[PATH_CAP];
    snprintf(copy, sizeof copy, "%s", path); /* dirname may write into its argument */
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync_dir_fd(fd);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

/* A component that exists as a file fails later, at the first mkdir or open below it (ENOTDIR). */
int checkpoint_make_dirs(const char *path, char *err, size_t errlen)
{
    char buf[PATH_CAP];
    size_t n = strlen(path);
    if (n >= sizeof buf) {
        errmsg_set(err, errlen, "checkpoint: directory path too long (%zu bytes)", n);
        return -1;
    }
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if ((buf[i] != '/' && buf[i] != '\0') || buf[i - 1] == '/')
            continue;
        char saved = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0755) == 0) {
            if (fsync_parent(buf) != 0) {
                errmsg_set(err, errlen, "checkpoint: fsync the parent of %s: %s", buf,
                           strerror(errno));
                return -1;
            }
        } else if (errno != EEXIST) {
            errmsg_set(err, errlen, "checkpoint: mkdir %s: %s", buf, strerror(errno));
            return -1;
        }
        buf[i] = saved;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* saving */

/* Drop old checkpoints: all but the newest `keep` blocks, never the one just written (a newer,
 * undecodable file left by a crash would otherwise push it out with keep = 1), and every stale
 * temporary file. Failures are ignored: the save itself is already durable, and the next save
 * sweeps again. */
static void sweep(const char *mdir, int keep, int written)
{
    DIR *d = opendir(mdir);
    if (!d)
        return;
    int *v = NULL;
    int n = list_blocks(d, dirfd(d), &v);
    for (int k = keep; k < n; k++)
        if (v[k] != written) {
            char name[NAME_CAP];
            block_name(name, v[k]);
            unlinkat(dirfd(d), name, 0);
        }
    free(v);
    closedir(d);
}

static int write_all(int fd, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static atomic_uint tmp_serial;

/* A fresh temporary file in dfd for block (pid + serial, created exclusively; a dead process's
 * leftover of the same name just makes it try the next serial). Returns the fd or -1 (errno). */
static int create_tmp(int dfd, int block, char *tname)
{
    int fd = -1;
    for (int attempt = 0; fd < 0 && attempt < 100; attempt++) {
        snprintf(tname, NAME_CAP, ".tmp-block-%08d-%ld-%u", block, (long)getpid(),
                 atomic_fetch_add(&tmp_serial, 1));
        fd = openat(dfd, tname, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    return fd;
}

/* buf into mdir/name through a temporary file, then the rename made durable. */
static int write_durably(int dfd, const char *mdir, const char *name, int block,
                         const unsigned char *buf, size_t len, char *err, size_t errlen)
{
    char tname[NAME_CAP];
    int fd = create_tmp(dfd, block, tname);
    if (fd < 0) {
        errmsg_set(err, errlen, "checkpoint: create %s/%s: %s", mdir, tname, strerror(errno));
        return -1;
    }
    /* errno is captured at the failing call: close and unlink may change it afterwards. */
    const char *step = NULL;
    int saved = 0;
    if (write_all(fd, buf, len) != 0)
        step = "write", saved = errno;
    else if (fsync(fd) != 0)
        step = "fsync", saved = errno;
    if (close(fd) != 0 && !step)
        step = "close", saved = errno;
    if (!step && renameat(dfd, tname, dfd, name) != 0) {
        errmsg_set(err, errlen, "checkpoint: rename %s/%s to %s/%s: %s", mdir, tname, mdir, name,
                   strerror(errno));
        unlinkat(dfd, tname, 0);
        return -1;
    }
    if (step) {
        errmsg_set(err, errlen, "checkpoint: %s %s/%s: %s", step, mdir, tname, strerror(saved));
        unlinkat(dfd, tname, 0);
        return -1;
    }
    /* The rename is only durable once the directory is: until then a crash may bring back the
     * previous file (or none), which the caller must not mistake for a saved block. */
    if (fsync_dir_fd(dfd) != 0) {
        errmsg_set(err, errlen, "checkpoint: fsync directory %s: %s", mdir, strerror(errno));
        return -1;
    }
    return 0;
}

/* Not built yet (issue 17 step 2): the interface only. */
static int dir_claim(void *impl, const char *model, const char *member, const char *source,
                     ckpt_claim *out, char *err, size_t errlen)
{
    (void)impl, (void)member, (void)source, (void)out;
    errmsg_set(err, errlen, "checkpoint: model %s: claim not built yet", model);
    return -1;
}

static int dir_put(void *impl, const char *model, int block, uint64_t epoch,
                   const unsigned char *buf, size_t len, int keep, char *err, size_t errlen)
{
    (void)epoch; /* the fence comes with the claim */
    char mdir[PATH_CAP], name[NAME_CAP];
    if (model_dir(impl, model, mdir, err, errlen) != 0 ||
        checkpoint_make_dirs(mdir, err, errlen) != 0)
        return -1;
    block_name(name, block);
    int dfd = open(mdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        errmsg_set(err, errlen, "checkpoint: open %s: %s", mdir, strerror(errno));
        return -1;
    }
    /* Clear crash leftovers before writing: on a disk they filled, this save can then succeed. */
    sweep(mdir, INT_MAX, block);
    int rc = write_durably(dfd, mdir, name, block, buf, len, err, errlen);
    close(dfd);
    if (rc == 0)
        sweep(mdir, keep, block);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* reading */

/* The whole file into a malloc'd buffer. Returns 0, or -1 with errno (ENOMEM when out of memory);
 * on failure nothing is left allocated. */
static int read_whole_file(const char *path, unsigned char **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat st;
    size_t cap = 1 << 16, n = 0;
    /* The size is only a hint for the first allocation: the file is read to its end. */
    if (fstat(fd, &st) == 0 && st.st_size > 0 && (uint64_t)st.st_size < ((uint64_t)1 << 40))
        cap = (size_t)st.st_size + 1;
    unsigned char *buf = malloc(cap);
    int failed = buf ? 0 : ENOMEM;
    while (!failed) {
        if (n == cap) { /* the file grew since fstat: double the buffer */
            unsigned char *bigger = cap <= SIZE_MAX / 2 ? realloc(buf, cap * 2) : NULL;
            if (!bigger) {
                failed = ENOMEM;
                break;
            }
            buf = bigger;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r == 0)
            break;
        if (r < 0 && errno != EINTR)
            failed = errno;
        n += r > 0 ? (size_t)r : 0;
    }
    close(fd);
    if (failed) {
        free(buf);
        errno = failed;
        return -1;
    }
    *out = buf;
    *len = n;
    return 0;
}

/* The path of a block's file (block -1: the model's directory); 0, or -1 when it is cut short. */
static int block_path(const dir_store *d, const char *model, int block, char *out, size_t outlen)
{
    int n = block < 0 ? snprintf(out, outlen, "%s/%s", d->dir, model)
                      : snprintf(out, outlen, "%s/%s/block-%08d.ckpt", d->dir, model, block);
    return n >= 0 && (size_t)n < outlen ? 0 : -1;
}

static void dir_where(const void *impl, const char *model, int block, char *out, size_t outlen)
{
    block_path(impl, model, block, out, outlen);
}

/* A file that cannot be read is skipped like one that does not decode (0, the reason in err). */
static int dir_get(void *impl, const char *model, int block, unsigned char **buf, size_t *len,
                   char *err, size_t errlen)
{
    char path[PATH_CAP];
    if (block_path(impl, model, block, path, sizeof path) != 0) {
        errmsg_set(err, errlen, "checkpoint: directory path too long");
        return -1;
    }
    if (read_whole_file(path, buf, len) != 0) {
        errmsg_set(err, errlen, "%s", strerror(errno));
        return 0;
    }
    return 1;
}

static void dir_close(void *impl)
{
    free(impl);
}

static const ckpt_backend dir_backend = {dir_claim, dir_put,   dir_list,
                                         dir_get,   dir_where, dir_close};

int ckpt_store_open_dir(ckpt_store *s, const char *dir, int keep, char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    if (keep < 1) {
        errmsg_set(err, errlen, "checkpoint: keep must be at least 1 (got %d)", keep);
        return -1;
    }
    if (strlen(dir) >= PATH_CAP - 2 * NAME_CAP) {
        errmsg_set(err, errlen, "checkpoint: directory path too long");
        return -1;
    }
    /* created now, so that a directory that cannot be made fails at start-up */
    dir_store *d = calloc(1, sizeof *d);
    if (!d || checkpoint_make_dirs(dir, err, errlen) != 0) {
        if (!d)
            errmsg_set(err, errlen, "checkpoint: out of memory");
        free(d);
        return -1;
    }
    snprintf(d->dir, sizeof d->dir, "%s", dir);
    *s = (ckpt_store){.be = &dir_backend, .impl = d, .keep = keep};
    return 0;
}
