/*
 * fuzz_util.h - shared by the fuzz harnesses (fuzz_*.c) and the corpus
 * generator (make_corpus.c).  Header-only: every harness is one .c file
 * plus either libFuzzer's main or replay.c.
 *
 *   - a per-process scratch directory on tmpfs (/dev/shm when writable,
 *     else $TMPDIR or /tmp), removed at exit;
 *   - file writing and removal helpers;
 *   - the fixed store id the harnesses use, and the log header/record
 *     layout constants of docs/FORMAT.md section 4, so that a harness
 *     can patch an input into a header and records that validate.
 */
#ifndef CAIRN_FUZZ_UTIL_H
#define CAIRN_FUZZ_UTIL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

/* Store id used by every harness: a log must carry it to get past wal_open. */
static const uint8_t FUZZ_STORE_ID[16] = {0x63, 0x61, 0x69, 0x72, 0x6e, 0x2d, 0x66, 0x75,
                                          0x7a, 0x7a, 0x2d, 0x69, 0x64, 0x2d, 0x30, 0x31};

/* docs/FORMAT.md section 4. */
#define FZ_WAL_MAGIC "CAIRNWAL"
#define FZ_WAL_HEADER 64
#define FZ_WAL_RECORD 32
#define FZ_WAL_KIND_PAGE 0xCA1E0001u
#define FZ_WAL_KIND_COMMIT 0xCA1E0002u
#define FZ_WAL_ID_OFF 16
#define FZ_WAL_SUM_OFF 56
#define FZ_PAGE 4096

/* Crash loudly with a message: a broken invariant is a finding. */
#define FZ_CHECK(cond, ...)                                                                                       \
    do {                                                                                                          \
        if (!(cond)) {                                                                                            \
            fprintf(stderr, "fuzz invariant failed at %s:%d: %s: ", __FILE__, __LINE__, #cond);                 \
            fprintf(stderr, __VA_ARGS__);                                                                         \
            fputc('\n', stderr);                                                                                  \
            abort();                                                                                              \
        }                                                                                                         \
    } while (0)

/* CAIRN_FUZZ_DEBUG=1 in the environment: harnesses say what each input
 * did (to check that a seed reaches what it was made for). */
static inline int fz_debug(void)
{
    static int on = -1;
    if (on < 0)
        on = getenv("CAIRN_FUZZ_DEBUG") != NULL;
    return on;
}

static inline size_t fz_pad8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

static inline uint64_t fz_get64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline uint32_t fz_get32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline void fz_put64(unsigned char *p, uint64_t v)
{
    memcpy(p, &v, 8);
}

static inline void fz_put32(unsigned char *p, uint32_t v)
{
    memcpy(p, &v, 4);
}

/* Fill the fixed fields of a 64-byte log header (magic, version, page
 * size) when full is set, put the store id, and seal the checksum. */
static inline void fz_wal_seal_header(unsigned char *h, const uint8_t id[16], int full)
{
    if (full) {
        memcpy(h, FZ_WAL_MAGIC, 8);
        fz_put32(h + 8, 1);
        fz_put32(h + 12, FZ_PAGE);
    }
    memcpy(h + FZ_WAL_ID_OFF, id, 16);
    fz_put64(h + FZ_WAL_SUM_OFF, XXH3_64bits(h, FZ_WAL_SUM_OFF));
}

/* Walk the records of a log image exactly as wal_replay frames them and
 * recompute the checksum chain (and, with fix_lsn, renumber the LSNs from
 * the header's start LSN).  Stops where a record no longer fits the file.
 * Kind, length, transaction id and payload are left as they are. */
static inline void fz_wal_seal_records(unsigned char *buf, size_t size, int fix_lsn)
{
    if (size < FZ_WAL_HEADER)
        return;
    uint64_t chain = fz_get64(buf + FZ_WAL_SUM_OFF), lsn = fz_get64(buf + 40);
    size_t at = FZ_WAL_HEADER;
    while (at + FZ_WAL_RECORD <= size) {
        uint32_t len = fz_get32(buf + at + 4);
        if (len > size - at - FZ_WAL_RECORD)
            break;
        if (fix_lsn)
            fz_put64(buf + at + 8, lsn++);
        fz_put64(buf + at + 24, 0);
        uint64_t sum = XXH3_64bits_withSeed(buf + at, FZ_WAL_RECORD + (size_t)len, chain);
        fz_put64(buf + at + 24, sum);
        chain = sum;
        at = fz_pad8(at + FZ_WAL_RECORD + (size_t)len);
    }
}

static inline int fz_write_file(const char *dir, const char *name, const void *data, size_t len)
{
    char path[8192];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return errno;
    const char *p = data;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = n < 0 ? errno : EIO;
            close(fd);
            return e;
        }
        p += n, len -= (size_t)n;
    }
    close(fd);
    return 0;
}

/* Remove every plain file in dir (not its subdirectories). */
static inline void fz_empty_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
}

static inline int fz_remove_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    remove(p);
    return 0;
}

static char *fz_scratch_path;
static pid_t fz_scratch_pid;

static inline void fz_scratch_cleanup(void)
{
    /* A forked child (libFuzzer -fork, a test) must not remove the parent's. */
    if (fz_scratch_path && getpid() == fz_scratch_pid)
        nftw(fz_scratch_path, fz_remove_one, 8, FTW_DEPTH | FTW_PHYS);
}

/* Scratch directories are named cairn-fuzz-<tag>-<pid>-XXXXXX.  A crash
 * (or libFuzzer killing a -fork child) skips the exit cleanup, so those of
 * processes that no longer exist are removed when a new one is made. */
static inline void fz_remove_stale(const char *base)
{
    DIR *d = opendir(base);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "cairn-fuzz-", 11) != 0)
            continue;
        const char *p = strchr(e->d_name + 11, '-');
        long pid = p ? strtol(p + 1, NULL, 10) : 0;
        if (pid <= 0 || (kill((pid_t)pid, 0) != 0 && errno == ESRCH)) {
            char path[8192];
            snprintf(path, sizeof path, "%s/%s", base, e->d_name);
            nftw(path, fz_remove_one, 8, FTW_DEPTH | FTW_PHYS);
        }
    }
    closedir(d);
}

/* One scratch directory per process, made on first use, removed with
 * everything in it at exit. */
static inline const char *fz_scratch_dir(const char *tag)
{
    if (fz_scratch_path)
        return fz_scratch_path;
    const char *base = NULL;
    if (access("/dev/shm", W_OK) == 0)
        base = "/dev/shm";
    else if (getenv("TMPDIR") && *getenv("TMPDIR"))
        base = getenv("TMPDIR");
    else
        base = "/tmp";
    fz_remove_stale(base);
    char *path;
    if (asprintf(&path, "%s/cairn-fuzz-%s-%ld-XXXXXX", base, tag, (long)getpid()) < 0 || !mkdtemp(path)) {
        perror("cairn fuzz: scratch directory");
        abort();
    }
    fz_scratch_path = path;
    fz_scratch_pid = getpid();
    atexit(fz_scratch_cleanup);
    return path;
}

/* Number of open file descriptors of this process (leak check). */
static inline int fz_count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

#endif
