/* checkpoint_dir: the directory backend of the checkpoint store. See checkpoint.h.
 *
 * DIR/<model>/block-<k, 8 digits>.ckpt, written as DIR/<model>/.tmp-block-<k>-e<epoch>-<pid>-<n>
 * (created exclusively, so a concurrent save in another process never writes into our file),
 * fsynced, closed (its error checked: NFS reports a failed write-back there), renamed into place,
 * and the directory fsynced: only then is the save durable. Errors name the step, the file and
 * errno's text ("checkpoint: write DIR/m/.tmp-block-00000001-...: No space left on device").
 * Only canonical names are ours: block-5.ckpt or block-00000005.ckpt~ are neither loaded nor
 * pruned.
 *
 * Owners (issue 17, docs/design-fencing.md sections 1 and 2): a claim creates
 * DIR/<model>/owner/e-<epoch, 20 digits> with O_CREAT|O_EXCL (another claimant that took the same
 * name makes us try the next epoch), writes member, source and time into it, and fsyncs it and
 * the directory. The epoch is max(newest e-file + 1, wall-clock ms): strictly above every earlier
 * claim whatever the clocks say, and in the same range as the Redis store's epochs (TIME in ms),
 * so a directory epoch adopted into Redis is not refused for being small. The fence is the
 * newest e-file; the claim prunes all but the newest CLAIMS_KEPT. A save of epoch E (0: unfenced)
 * compares before the rename: fence > E unlinks the tmp file and returns CKPT_FENCED. The one
 * remaining race, a claim between that readdir and the rename, is benign (the claimant loads
 * after claiming, so it never reads the late file) and is detected afterwards: the fence is read
 * again, and a save that landed after a newer claim returns 1 and skips the sweep, leaving the
 * new owner's files alone. The sweeps remove only tmp files of older epochs (a stale writer must
 * not delete the new owner's save in progress); an unfenced save also removes unfenced ones
 * (epoch 0, and the pre-epoch .tmp-block-<k>-<pid>-<n> names). */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint.h"
#include "errmsg.h"
#include "testhook.h"

#define PATH_CAP 4096 /* longest DIR/<model>/<file> path the store builds */
#define NAME_CAP 96   /* block-<k>.ckpt, .tmp-* and owner/e-* names */
#define CLAIMS_KEPT 8 /* owner/e-* files kept: the fence and a short history */

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

/* The epoch in a .tmp-block-<k8>-e<epoch>-... name; 0 (unfenced) for any other .tmp-* name. */
static uint64_t tmp_epoch(const char *name)
{
    const char *p = name + strlen(".tmp-block-00000000");
    if (strncmp(name, ".tmp-block-", 11) != 0 || strlen(name) < 21 || strncmp(p, "-e", 2) != 0)
        return 0;
    uint64_t e = 0;
    for (p += 2; *p >= '0' && *p <= '9'; p++)
        e = e * 10 + (uint64_t)(*p - '0');
    return *p == '-' ? e : 0;
}

/* Whether a save of epoch mine may remove a .tmp-* file: a leftover of an older owner, or for an
 * unfenced save (mine = 0) an unfenced one. Never a newer owner's save in progress. */
static bool tmp_removable(const char *name, uint64_t mine)
{
    uint64_t e = tmp_epoch(name);
    return e < mine || (mine == 0 && e == 0);
}

/* The blocks of an open directory, newest first. With dfd_remove_tmp >= 0, the .tmp-* entries a
 * save of epoch mine may remove are unlinked on the way (leftovers of a crashed or fenced save).
 * Returns the count, or -1 with errno. */
static int list_blocks(DIR *d, int dfd_remove_tmp, uint64_t mine, int **out)
{
    int *v = NULL, n = 0, cap = 0;
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(d);
        if (!e)
            break;
        if (dfd_remove_tmp >= 0 && strncmp(e->d_name, ".tmp-", 5) == 0) {
            if (tmp_removable(e->d_name, mine))
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
    int n = list_blocks(d, -1, 0, blocks);
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

/* ------------------------------------------------------------------------------------------ */
/* owners: DIR/<model>/owner/e-<epoch, 20 digits> */

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* e-<20 digits> exactly, above 0 and within 64 bits. */
static int parse_claim_name(const char *name, uint64_t *epoch)
{
    if (strncmp(name, "e-", 2) != 0 || strlen(name) != 22)
        return -1;
    uint64_t v = 0;
    for (const char *p = name + 2; *p; p++) {
        if (*p < '0' || *p > '9' || v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    *epoch = v;
    return v > 0 ? 0 : -1;
}

static int by_epoch_desc(const void *a, const void *b)
{
    const uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x < y) - (x > y);
}

/* The claims' epochs in the owner directory odir, newest first (*out malloc'd, NULL when none).
 * A missing directory has none. Returns the count, or -1 with errno. */
static int list_claims(const char *odir, uint64_t **out)
{
    *out = NULL;
    DIR *d = opendir(odir);
    if (!d)
        return errno == ENOENT ? 0 : -1;
    uint64_t *v = NULL;
    int n = 0, cap = 0, failed = 0;
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(d);
        if (!e) {
            failed = errno;
            break;
        }
        uint64_t epoch;
        if (parse_claim_name(e->d_name, &epoch) != 0)
            continue;
        if (n == cap) {
            uint64_t *nv = realloc(v, (size_t)(cap = cap ? 2 * cap : 16) * sizeof *nv);
            if (!nv) {
                failed = ENOMEM;
                break;
            }
            v = nv;
        }
        v[n++] = epoch;
    }
    closedir(d);
    if (failed) {
        free(v);
        errno = failed;
        return -1;
    }
    if (n > 1)
        qsort(v, (size_t)n, sizeof *v, by_epoch_desc);
    *out = v;
    return n;
}

/* The fence: the newest claim's epoch (0: none). Returns 0, or -1 with err. */
static int read_fence(const char *odir, uint64_t *fence, char *err, size_t errlen)
{
    uint64_t *v;
    int n = list_claims(odir, &v);
    if (n < 0) {
        errmsg_set(err, errlen, "checkpoint: read directory %s: %s", odir, strerror(errno));
        return -1;
    }
    *fence = n > 0 ? v[0] : 0;
    free(v);
    return 0;
}

/* One line "key=value" of a claim file into out ("" when absent). */
static void claim_field(const char *text, const char *key, char *out, size_t outlen)
{
    size_t kl = strlen(key);
    out[0] = '\0';
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, key, kl) == 0 && p[kl] == '=') {
            size_t n = strcspn(p + kl + 1, "\n");
            snprintf(out, outlen, "%.*s", (int)(n < outlen ? n : outlen - 1), p + kl + 1);
            return;
        }
}

/* Who made the claim of epoch (member, source, claimed_ms; "" and 0 when unreadable: a claim is
 * created before its contents are written, and they are for messages only). */
static void read_claim(const char *odir, uint64_t epoch, ckpt_claim *who, uint64_t *claimed_ms)
{
    char path[PATH_CAP], text[1024] = "", ms[32];
    snprintf(path, sizeof path, "%s/e-%020" PRIu64, odir, epoch);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t r = read(fd, text, sizeof text - 1);
        text[r > 0 ? r : 0] = '\0';
        close(fd);
    }
    claim_field(text, "member", who->prev_member, sizeof who->prev_member);
    claim_field(text, "source", who->prev_source, sizeof who->prev_source);
    claim_field(text, "claimed_ms", ms, sizeof ms);
    *claimed_ms = strtoull(ms, NULL, 10);
}

/* A value for one line of a claim file: control characters would break the line format. */
static void line_safe(char *out, size_t outlen, const char *in)
{
    snprintf(out, outlen, "%s", in);
    for (char *p = out; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
}

/* Create owner/e-<epoch> exclusively from epoch upwards (a concurrent claimant that took a name
 * makes us take the next), write who claims, fsync it. Returns the fd's epoch, or 0 with err. */
static uint64_t create_claim(int odfd, const char *odir, uint64_t epoch, const char *member,
                             const char *source, char *err, size_t errlen)
{
    char name[NAME_CAP], m[128], src[300], text[600];
    int fd = -1;
    for (int attempt = 0; fd < 0 && attempt < 1000; attempt++, epoch += fd < 0) {
        snprintf(name, sizeof name, "e-%020" PRIu64, epoch);
        fd = openat(odfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    if (fd < 0) {
        errmsg_set(err, errlen, "checkpoint: create %s/%s: %s", odir, name, strerror(errno));
        return 0;
    }
    line_safe(m, sizeof m, member);
    line_safe(src, sizeof src, source);
    int n = snprintf(text, sizeof text, "member=%s\nsource=%s\nclaimed_ms=%" PRIu64 "\n", m, src,
                     wall_ms());
    const char *step = write_all(fd, (const unsigned char *)text, (size_t)n) != 0 ? "write"
                       : fsync(fd) != 0                                           ? "fsync"
                                                                                  : NULL;
    int saved = errno;
    if (close(fd) != 0 && !step)
        step = "close", saved = errno;
    if (step) {
        /* left in place: its name is taken either way, and the next claim goes above it */
        errmsg_set(err, errlen, "checkpoint: %s %s/%s: %s", step, odir, name, strerror(saved));
        return 0;
    }
    return epoch;
}

/* All but the newest CLAIMS_KEPT claims: only the newest is the fence; a few more say who held
 * the model before. Best effort. */
static void prune_claims(int odfd, const char *odir)
{
    uint64_t *v;
    int n = list_claims(odir, &v);
    for (int k = CLAIMS_KEPT; k < n; k++) {
        char name[NAME_CAP];
        snprintf(name, sizeof name, "e-%020" PRIu64, v[k]);
        unlinkat(odfd, name, 0);
    }
    free(v);
}

static int owner_dir(const dir_store *d, const char *model, char *odir, char *err, size_t errlen)
{
    if ((size_t)snprintf(odir, PATH_CAP, "%s/%s/owner", d->dir, model) >= PATH_CAP - NAME_CAP - 1) {
        errmsg_set(err, errlen, "checkpoint: directory path too long");
        return -1;
    }
    return 0;
}

static int dir_claim(void *impl, const char *model, const char *member, const char *source,
                     ckpt_claim *out, char *err, size_t errlen)
{
    char odir[PATH_CAP];
    uint64_t fence, ms = wall_ms(), prev_ms;
    if (owner_dir(impl, model, odir, err, errlen) != 0 ||
        checkpoint_make_dirs(odir, err, errlen) != 0 || read_fence(odir, &fence, err, errlen) != 0)
        return -1;
    if (fence > 0)
        read_claim(odir, fence, out, &prev_ms);
    int odfd = open(odir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (odfd < 0) {
        errmsg_set(err, errlen, "checkpoint: open %s: %s", odir, strerror(errno));
        return -1;
    }
    out->epoch =
        create_claim(odfd, odir, fence + 1 > ms ? fence + 1 : ms, member, source, err, errlen);
    int rc = out->epoch > 0 ? 0 : -1;
    /* The claim holds only once its name is durable: a crash must not bring back a lower fence. */
    if (rc == 0 && fsync_dir_fd(odfd) != 0) {
        errmsg_set(err, errlen, "checkpoint: fsync directory %s: %s", odir, strerror(errno));
        rc = -1;
    }
    if (rc == 0)
        prune_claims(odfd, odir);
    close(odfd);
    return rc;
}

/* err for a save of epoch mine that finds the newer claim fence (how = "refused" before the
 * rename, "landed after" when the claim came between the check and the rename). */
static void fenced_message(const char *odir, const char *model, int block, uint64_t mine,
                           uint64_t fence, const char *how, char *err, size_t errlen)
{
    ckpt_claim who = {0};
    uint64_t at_ms = 0, now = wall_ms();
    read_claim(odir, fence, &who, &at_ms);
    errmsg_set(err, errlen,
               "checkpoint: model %s block %d: %s: %s/e-%020" PRIu64
               " (member %s, source %s, claimed %.1f s ago) is newer than our epoch %" PRIu64,
               model, block, how, odir, fence, who.prev_member[0] ? who.prev_member : "?",
               who.prev_source[0] ? who.prev_source : "?",
               at_ms && at_ms <= now ? (double)(now - at_ms) / 1000.0 : 0.0, mine);
}

/* ------------------------------------------------------------------------------------------ */
/* saving */

/* Drop old checkpoints: all but the newest `keep` blocks, never the one just written (a newer,
 * undecodable file left by a crash would otherwise push it out with keep = 1), and the temporary
 * files a save of epoch mine may remove (tmp_removable). Failures are ignored: the save itself is
 * already durable, and the next save sweeps again. */
static void sweep(const char *mdir, int keep, int written, uint64_t mine)
{
    DIR *d = opendir(mdir);
    if (!d)
        return;
    int *v = NULL;
    int n = list_blocks(d, dirfd(d), mine, &v);
    for (int k = keep; k < n; k++)
        if (v[k] != written) {
            char name[NAME_CAP];
            block_name(name, v[k]);
            unlinkat(dirfd(d), name, 0);
        }
    free(v);
    closedir(d);
}

static atomic_uint tmp_serial;

/* A fresh temporary file in dfd for block (epoch + pid + serial, created exclusively; a dead
 * process's leftover of the same name just makes it try the next serial). Returns the fd or -1
 * (errno). */
static int create_tmp(int dfd, int block, uint64_t epoch, char *tname)
{
    int fd = -1;
    for (int attempt = 0; fd < 0 && attempt < 100; attempt++) {
        snprintf(tname, NAME_CAP, ".tmp-block-%08d-e%" PRIu64 "-%ld-%u", block, epoch,
                 (long)getpid(), atomic_fetch_add(&tmp_serial, 1));
        fd = openat(dfd, tname, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    return fd;
}

/* buf into a new temporary file of mdir (its name in tname), fsynced and closed. 0 or -1 (err;
 * the file is removed). */
static int write_tmp(int dfd, const char *mdir, int block, uint64_t epoch, char *tname,
                     const unsigned char *buf, size_t len, char *err, size_t errlen)
{
    int fd = create_tmp(dfd, block, epoch, tname);
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
    if (step) {
        errmsg_set(err, errlen, "checkpoint: %s %s/%s: %s", step, mdir, tname, strerror(saved));
        unlinkat(dfd, tname, 0);
        return -1;
    }
    return 0;
}

/* The temporary file into place, made durable: the rename is only durable once the directory is
 * (until then a crash may bring back the previous file, or none, which the caller must not
 * mistake for a saved block). 0 or -1 (err). */
static int rename_durably(int dfd, const char *mdir, const char *tname, const char *name, char *err,
                          size_t errlen)
{
    if (renameat(dfd, tname, dfd, name) != 0) {
        errmsg_set(err, errlen, "checkpoint: rename %s/%s to %s/%s: %s", mdir, tname, mdir, name,
                   strerror(errno));
        unlinkat(dfd, tname, 0);
        return -1;
    }
    if (fsync_dir_fd(dfd) != 0) {
        errmsg_set(err, errlen, "checkpoint: fsync directory %s: %s", mdir, strerror(errno));
        return -1;
    }
    return 0;
}

/* Compare, then rename (design-fencing.md section 2): 0 saved, 1 saved but a newer claim came
 * before the rename (err says so), -1 error, CKPT_FENCED refused (tmp removed). */
static int commit_fenced(int dfd, const char *mdir, const char *model, int block, uint64_t epoch,
                         const char *tname, char *err, size_t errlen)
{
    test_pause("ckpt_commit", model, block); /* the stall test: tmp written, fence not read */
    char odir[PATH_CAP], name[NAME_CAP];
    uint64_t fence = 0;
    block_name(name, block);
    /* mdir has room for a name below it (model_dir) */
    if ((size_t)snprintf(odir, sizeof odir, "%s/owner", mdir) >= sizeof odir ||
        (epoch > 0 && read_fence(odir, &fence, err, errlen) != 0)) {
        if (strlen(odir) >= sizeof odir - 1)
            errmsg_set(err, errlen, "checkpoint: directory path too long");
        unlinkat(dfd, tname, 0);
        return -1;
    }
    if (fence > epoch) {
        unlinkat(dfd, tname, 0);
        fenced_message(odir, model, block, epoch, fence, "refused", err, errlen);
        return CKPT_FENCED;
    }
    if (rename_durably(dfd, mdir, tname, name, err, errlen) != 0)
        return -1;
    if (epoch > 0 && read_fence(odir, &fence, err, errlen) == 0 && fence > epoch) {
        fenced_message(odir, model, block, epoch, fence, "landed after a newer claim", err, errlen);
        return 1;
    }
    return 0;
}

static int dir_put(void *impl, const char *model, int block, uint64_t epoch,
                   const unsigned char *buf, size_t len, int keep, char *err, size_t errlen)
{
    char mdir[PATH_CAP], tname[NAME_CAP];
    if (model_dir(impl, model, mdir, err, errlen) != 0 ||
        checkpoint_make_dirs(mdir, err, errlen) != 0)
        return -1;
    int dfd = open(mdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        errmsg_set(err, errlen, "checkpoint: open %s: %s", mdir, strerror(errno));
        return -1;
    }
    /* Clear crash leftovers before writing: on a disk they filled, this save can then succeed. */
    sweep(mdir, INT_MAX, block, epoch);
    int rc = write_tmp(dfd, mdir, block, epoch, tname, buf, len, err, errlen);
    if (rc == 0)
        rc = commit_fenced(dfd, mdir, model, block, epoch, tname, err, errlen);
    close(dfd);
    /* after a newer claim, the files here are the new owner's to prune */
    if (rc == 0)
        sweep(mdir, keep, block, epoch);
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

/* ------------------------------------------------------------------------------------------ */
/* blobs: DIR/<model>/blobs/<name>, written like a checkpoint (temporary file, fsync, rename,
 * fsync of the directory), so a reader sees a whole blob or none */

static int blob_dir(const dir_store *d, const char *model, char *bdir, char *err, size_t errlen)
{
    if ((size_t)snprintf(bdir, PATH_CAP, "%s/%s/blobs", d->dir, model) >= PATH_CAP - NAME_CAP - 1) {
        errmsg_set(err, errlen, "blob: directory path too long");
        return -1;
    }
    return 0;
}

static int dir_put_blob(void *impl, const char *model, const char *name, const unsigned char *buf,
                        size_t len, char *err, size_t errlen)
{
    char bdir[PATH_CAP], tname[NAME_CAP + 64];
    if (blob_dir(impl, model, bdir, err, errlen) != 0 ||
        checkpoint_make_dirs(bdir, err, errlen) != 0)
        return -1;
    int dfd = open(bdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        errmsg_set(err, errlen, "blob: open %s: %s", bdir, strerror(errno));
        return -1;
    }
    snprintf(tname, sizeof tname, ".tmp-%s-%ld-%u", name, (long)getpid(),
             atomic_fetch_add(&tmp_serial, 1));
    int fd = openat(dfd, tname, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int rc = -1;
    if (fd < 0) {
        errmsg_set(err, errlen, "blob: create %s/%s: %s", bdir, tname, strerror(errno));
    } else {
        int bad = write_all(fd, buf, len) != 0 || fsync(fd) != 0;
        int saved = errno;
        bad = close(fd) != 0 || bad;
        if (bad) {
            errmsg_set(err, errlen, "blob: write %s/%s: %s", bdir, tname, strerror(saved));
            unlinkat(dfd, tname, 0);
        } else {
            rc = rename_durably(dfd, bdir, tname, name, err, errlen);
        }
    }
    close(dfd);
    return rc;
}

static int dir_get_blob(void *impl, const char *model, const char *name, unsigned char **buf,
                        size_t *len, char *err, size_t errlen)
{
    char bdir[PATH_CAP], path[PATH_CAP + NAME_CAP];
    if (blob_dir(impl, model, bdir, err, errlen) != 0)
        return -1;
    snprintf(path, sizeof path, "%s/%s", bdir, name);
    struct stat st;
    if (!buf ? stat(path, &st) == 0 : read_whole_file(path, buf, len) == 0)
        return 1;
    if (errno == ENOENT)
        return 0;
    errmsg_set(err, errlen, "blob: read %s: %s", path, strerror(errno));
    return -1;
}

static int dir_del_blob(void *impl, const char *model, const char *name, char *err, size_t errlen)
{
    char bdir[PATH_CAP], path[PATH_CAP + NAME_CAP];
    if (blob_dir(impl, model, bdir, err, errlen) != 0)
        return -1;
    snprintf(path, sizeof path, "%s/%s", bdir, name);
    if (unlink(path) == 0 || errno == ENOENT)
        return 0;
    errmsg_set(err, errlen, "blob: unlink %s: %s", path, strerror(errno));
    return -1;
}

/* Every entry of the blob directory: a blob, or ".tmp-<name>-<pid>-<serial>" (a write that died
 * before its rename), judged by <name>. */
static int dir_sweep_blobs(void *impl, const char *model, bool (*drop)(void *ctx, const char *name),
                           void *ctx, char *err, size_t errlen)
{
    char bdir[PATH_CAP];
    if (blob_dir(impl, model, bdir, err, errlen) != 0)
        return -1;
    DIR *dp = opendir(bdir);
    if (!dp) {
        if (errno == ENOENT)
            return 0;
        errmsg_set(err, errlen, "blob: open %s: %s", bdir, strerror(errno));
        return -1;
    }
    int n = 0;
    for (struct dirent *e; (e = readdir(dp));) {
        char name[sizeof e->d_name];
        memcpy(name, e->d_name, sizeof name);
        if (!strncmp(name, ".tmp-", 5)) {
            memmove(name, name + 5, strlen(name + 5) + 1);
            for (int dashes = 0; dashes < 2; dashes++) {
                char *d = strrchr(name, '-');
                if (d)
                    *d = '\0';
            }
        } else if (name[0] == '.') {
            continue;
        }
        if (drop(ctx, name) && unlinkat(dirfd(dp), e->d_name, 0) == 0)
            n++;
    }
    closedir(dp);
    return n;
}

static void dir_close(void *impl)
{
    free(impl);
}

static const ckpt_backend dir_backend = {dir_claim,    dir_put,        dir_list,     dir_get,
                                         dir_where,    dir_close,      dir_put_blob, dir_get_blob,
                                         dir_del_blob, dir_sweep_blobs};

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
