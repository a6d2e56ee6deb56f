/*
 * shim.c - an LD_PRELOAD library that simulates power loss for the files
 * of one directory tree (a cairn store: data.mdb, wal, wal.tmp, lock, and
 * any subdirectory; LMDB's lock.mdb files are left alone, LMDB rebuilds
 * them at every first open).
 *
 * Model.  Every write to a file of the tree goes through to the real
 * file at once (so the running process, and LMDB's read-only map, see
 * what they wrote), but the shim first saves what it overwrites: the old
 * bytes of the range and the old size, plus the new bytes.  These are the
 * file's *unsynced operations* (writes and truncations, O_TRUNC included).
 * fsync/fdatasync of the file (through any descriptor: they are kept per
 * inode) make them durable and drop them.  A write through a descriptor
 * opened O_DSYNC/O_SYNC (or pwritev2 with RWF_DSYNC) is durable when it
 * returns, but makes nothing else durable (Linux syncs only its range).
 *
 * Names are a second, separate list: creating, renaming, linking or
 * unlinking a name, making or removing a directory, are unsynced
 * *directory operations*, kept in the order they were made (a journaling
 * file system applies them in order).  An fsync of a directory makes
 * durable every one of them up to the last that touched that directory (as
 * parent of a name it created, removed, or renamed from or to).  A rename
 * or unlink first hard-links the name it replaces or removes to a hidden
 * name (".pl-hidden-N", in the top directory) so that it can be undone.
 * File data is undone per inode and names per directory, so (as on a real
 * file system) a rename can survive while the data written just before it
 * does not, unless the program synced the file in between.
 *
 * Sync points: every fsync, fdatasync, msync, sync, syncfs call and every
 * write through an O_DSYNC/O_SYNC descriptor, counted from 1 in the order
 * the process makes them (whichever thread).  A sync point is counted
 * only if it concerns a file or directory of the tree, except
 * msync/sync/syncfs, always counted.
 *
 * Environment:
 *   CAIRN_PL_DIR=dir     absolute path of the directory tree to watch
 *                        (unset: the shim does nothing at all)
 *   CAIRN_PL_CRASH_AT=k  at sync point k, before performing it: simulate
 *                        power loss, then _exit(99)
 *   CAIRN_PL_SEED=n      damage pattern: 0 drops every unsynced operation,
 *                        1 keeps every one, otherwise a PRNG seeded with n
 *                        and k decides each one (see damage())
 *   CAIRN_PL_COUNT=file  write the number of sync points seen to file at
 *                        exit (a counting run)
 *   CAIRN_PL_REPORT=file at the crash, describe the unsynced operations
 *                        and what was done with each
 *   CAIRN_PL_TAIL=1      random damage to the newest quarter of each file's
 *                        unsynced operations only (the older ones are kept)
 *   CAIRN_PL_TRACE=1     log every tracked operation to stderr
 *   CAIRN_PL_REAL_SYNC=1 also perform the real fsync/fdatasync and keep
 *                        O_DSYNC (by default they are skipped: the power
 *                        loss is simulated, the real page cache survives)
 *
 * Power loss at sync point k, for each inode with unsynced operations:
 * every one of them is undone, newest first (the file is then exactly
 * as last synced), then each is redone or not, oldest first: kept whole,
 * dropped, or torn (only a prefix ending at a multiple of 512 or 4096
 * bytes of the file, or at any byte), or scattered (each 4096- or 512-byte
 * block of it kept or not).  Durable (O_DSYNC) writes are always redone.
 * The unsynced directory operations are then undone from the newest back
 * to a randomly chosen point: a prefix of them survives.  Hidden names are
 * removed.  Then _exit(99).
 *
 * Not modelled (refused with exit status 97 and a message, so nothing
 * goes unnoticed): writable shared mappings and fallocate of watched
 * files (but FALLOC_FL_KEEP_SIZE alone, which only reserves blocks),
 * renaming directories, renames into or out of the tree.
 *
 * Nothing here may run in a signal handler except the fast paths for
 * untracked descriptors (cairn's fault path calls fallocate and write(2)),
 * which only read the descriptor table and call the real function.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef RWF_DSYNC
#define RWF_DSYNC 0x00000002
#endif
#ifndef RWF_SYNC
#define RWF_SYNC 0x00000004
#endif
#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif

#define MAX_FD 65536
#define PRIV_FD_MIN 700 /* our own descriptors live up here */

/* ---- state ---- */

enum { OP_WRITE = 1, OP_TRUNC };

struct op {
    int kind;
    int durable;         /* O_DSYNC write: always survives */
    uint64_t off, len;   /* write: range; trunc: off = new size */
    uint64_t old_size;   /* file size before the operation */
    unsigned char *old;  /* bytes it replaced (those that existed) */
    uint64_t old_len;    /* write: bytes of [off, off+len) below old_size; trunc: old_size - off if shrinking */
    unsigned char *data; /* write: the new bytes */
};

struct inode {
    dev_t dev;
    ino_t ino;
    int priv;      /* our O_RDWR descriptor of the inode */
    char name[64]; /* last name it was opened by, for reports */
    struct op *ops;
    size_t nops, cap;
    struct inode *next;
};

enum { DOP_CREATE = 1, DOP_RENAME, DOP_UNLINK, DOP_LINK, DOP_MKDIR, DOP_RMDIR };

struct dirop {
    int kind;
    char *a, *b;  /* absolute paths: created name; rename src, dst; unlink name; link new name;
                     made or removed directory */
    char *hidden; /* absolute path of the hidden link to the replaced/removed inode, or NULL */
};

struct fdinfo {
    struct inode *ino;
    char *dir;             /* a directory: its absolute path */
    unsigned char tracked; /* 1 a file, 2 a directory */
    unsigned char dsync, append;
};

static int active;
static char pldir[PATH_MAX];
static size_t pldir_len;
static long crash_at = -1;
static uint64_t seed;
static const char *count_path, *report_path;
static int trace, pass_sync, tail_only;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct fdinfo fds[MAX_FD];
static struct inode *inodes;
static struct dirop *dops;
static size_t ndops, capdops;
static long nsync;
static unsigned hidden_seq;

/* ---- the real functions ---- */

static int (*real_open)(const char *, int, ...);
static int (*real_open64)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_openat64)(int, const char *, int, ...);
static int (*real_creat)(const char *, mode_t);
static int (*real_creat64)(const char *, mode_t);
static int (*real_open_2)(const char *, int);
static int (*real_open64_2)(const char *, int);
static int (*real_openat_2)(int, const char *, int);
static int (*real_openat64_2)(int, const char *, int);
static int (*real_close)(int);
static int (*real_dup)(int);
static int (*real_dup2)(int, int);
static int (*real_dup3)(int, int, int);
static int (*real_fcntl)(int, int, ...);
static int (*real_fcntl64)(int, int, ...);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static ssize_t (*real_pwritev)(int, const struct iovec *, int, off_t);
static ssize_t (*real_pwritev64)(int, const struct iovec *, int, off_t);
static ssize_t (*real_pwritev2)(int, const struct iovec *, int, off_t, int);
static ssize_t (*real_pwritev64v2)(int, const struct iovec *, int, off_t, int);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_msync)(void *, size_t, int);
static void (*real_sync)(void);
static int (*real_syncfs)(int);
static int (*real_ftruncate)(int, off_t);
static int (*real_ftruncate64)(int, off_t);
static int (*real_truncate)(const char *, off_t);
static int (*real_truncate64)(const char *, off_t);
static int (*real_fallocate)(int, int, off_t, off_t);
static int (*real_fallocate64)(int, int, off_t, off_t);
static int (*real_rename)(const char *, const char *);
static int (*real_renameat)(int, const char *, int, const char *);
static int (*real_renameat2)(int, const char *, int, const char *, unsigned);
static int (*real_unlink)(const char *);
static int (*real_unlinkat)(int, const char *, int);
static int (*real_mkdirat)(int, const char *, mode_t);
static int (*real_link)(const char *, const char *);
static int (*real_linkat)(int, const char *, int, const char *, int);
static void *(*real_mmap)(void *, size_t, int, int, int, off_t);
static void *(*real_mmap64)(void *, size_t, int, int, int, off_t);

#define LOAD(name) real_##name = (__typeof__(real_##name))dlsym(RTLD_NEXT, #name)

static void load_real(void)
{
    LOAD(open);
    LOAD(open64);
    LOAD(openat);
    LOAD(openat64);
    LOAD(creat);
    LOAD(creat64);
    real_open_2 = (__typeof__(real_open_2))dlsym(RTLD_NEXT, "__open_2");
    real_open64_2 = (__typeof__(real_open64_2))dlsym(RTLD_NEXT, "__open64_2");
    real_openat_2 = (__typeof__(real_openat_2))dlsym(RTLD_NEXT, "__openat_2");
    real_openat64_2 = (__typeof__(real_openat64_2))dlsym(RTLD_NEXT, "__openat64_2");
    LOAD(close);
    LOAD(dup);
    LOAD(dup2);
    LOAD(dup3);
    LOAD(fcntl);
    LOAD(fcntl64);
    LOAD(write);
    LOAD(pwrite);
    LOAD(pwrite64);
    LOAD(writev);
    LOAD(pwritev);
    LOAD(pwritev64);
    LOAD(pwritev2);
    LOAD(pwritev64v2);
    LOAD(fsync);
    LOAD(fdatasync);
    LOAD(msync);
    LOAD(sync);
    LOAD(syncfs);
    LOAD(ftruncate);
    LOAD(ftruncate64);
    LOAD(truncate);
    LOAD(truncate64);
    LOAD(fallocate);
    LOAD(fallocate64);
    LOAD(rename);
    LOAD(renameat);
    LOAD(renameat2);
    LOAD(unlink);
    LOAD(unlinkat);
    LOAD(mkdirat);
    LOAD(link);
    LOAD(linkat);
    LOAD(mmap);
    LOAD(mmap64);
}

/* ---- small helpers (raw system calls: never re-enter the wrappers) ---- */

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if (n > (int)sizeof buf - 2)
        n = (int)sizeof buf - 2;
    buf[n++] = '\n';
    syscall(SYS_write, 2, "powerloss shim: ", 16);
    syscall(SYS_write, 2, buf, n);
    syscall(SYS_exit_group, 97);
    for (;;)
        ;
}

static void tracef(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void tracef(const char *fmt, ...)
{
    if (!trace)
        return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if (n > (int)sizeof buf - 2)
        n = (int)sizeof buf - 2;
    buf[n++] = '\n';
    syscall(SYS_write, 2, buf, n);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        die("out of memory (%zu bytes)", n);
    return p;
}

static char *xstrdup(const char *s)
{
    char *p = strdup(s);
    if (!p)
        die("out of memory");
    return p;
}

static uint64_t file_size(int fd)
{
    struct stat st;
    if (syscall(SYS_fstat, fd, &st) != 0)
        die("fstat: %s", strerror(errno));
    return (uint64_t)st.st_size;
}

static void pwrite_all(int fd, const void *buf, uint64_t len, uint64_t off)
{
    const char *p = buf;
    while (len) {
        long n = syscall(SYS_pwrite64, fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            die("pwrite during undo: %s", strerror(errno));
        p += n, len -= (uint64_t)n, off += (uint64_t)n;
    }
}

static void pread_all(int fd, void *buf, uint64_t len, uint64_t off)
{
    char *p = buf;
    while (len) {
        long n = syscall(SYS_pread64, fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            die("pread of old bytes: %s", n < 0 ? strerror(errno) : "short file");
        p += n, len -= (uint64_t)n, off += (uint64_t)n;
    }
}

static void set_size(int fd, uint64_t size)
{
    if (syscall(SYS_ftruncate, fd, (off_t)size) != 0)
        die("ftruncate during undo: %s", strerror(errno));
}

/* Absolute, normalized path of (dirfd, path). 0 on success. */
static int resolve(int dirfd, const char *path, char *out)
{
    char base[PATH_MAX], tmp[2 * PATH_MAX + 2];
    if (!path)
        return -1;
    if (path[0] == '/') {
        snprintf(tmp, sizeof tmp, "%s", path);
    } else {
        if (dirfd == AT_FDCWD) {
            if (!getcwd(base, sizeof base))
                return -1;
        } else {
            char link[64];
            snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
            ssize_t n = readlink(link, base, sizeof base - 1);
            if (n < 0)
                return -1;
            base[n] = 0;
        }
        snprintf(tmp, sizeof tmp, "%s/%s", base, path);
    }
    /* Collapse //, /./ and /x/../ */
    char *o = out;
    const char *p = tmp;
    size_t cap = PATH_MAX - 1;
    *o = 0;
    while (*p) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        const char *e = strchr(p, '/');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == 1 && p[0] == '.') {
        } else if (l == 2 && p[0] == '.' && p[1] == '.') {
            char *slash = strrchr(out, '/');
            if (slash)
                *slash = 0;
            o = out + strlen(out);
        } else {
            if ((size_t)(o - out) + l + 1 >= cap)
                return -1;
            *o++ = '/';
            memcpy(o, p, l);
            o += l;
            *o = 0;
        }
        p += l;
    }
    if (!out[0])
        strcpy(out, "/");
    return 0;
}

/* 0: not ours; 1: in the watched tree (the directory or below); 2: the
 * directory itself.  LMDB's lock files are not ours: mapped shared and
 * rebuilt at every first open, they hold no data. */
static int classify(const char *abs)
{
    if (strcmp(abs, pldir) == 0)
        return 2;
    if (strncmp(abs, pldir, pldir_len) != 0 || abs[pldir_len] != '/' || !abs[pldir_len + 1])
        return 0;
    const char *slash = strrchr(abs, '/');
    if (strcmp(slash + 1, "lock.mdb") == 0 || strncmp(slash + 1, ".pl-hidden", 10) == 0)
        return 0;
    return 1;
}

/* A path as shown in reports: relative to the watched directory. */
static const char *rel_name(const char *abs)
{
    if (strcmp(abs, pldir) == 0)
        return ".";
    if (strncmp(abs, pldir, pldir_len) == 0 && abs[pldir_len] == '/')
        return abs + pldir_len + 1;
    return abs;
}

/* The parent directory of an absolute path, into out. */
static void parent_of(const char *abs, char *out)
{
    snprintf(out, PATH_MAX, "%s", abs);
    char *slash = strrchr(out, '/');
    if (slash && slash != out)
        *slash = 0;
    else
        strcpy(out, "/");
}

static int dop_touches(const struct dirop *d, const char *dir)
{
    char p[PATH_MAX];
    parent_of(d->a, p);
    if (strcmp(p, dir) == 0)
        return 1;
    if (d->b) {
        parent_of(d->b, p);
        if (strcmp(p, dir) == 0)
            return 1;
    }
    return 0;
}

static int fd_ok(int fd)
{
    return fd >= 0 && fd < MAX_FD;
}

static int tracked(int fd)
{
    return active && fd_ok(fd) && fds[fd].tracked;
}

/* ---- inodes and their unsynced operations ---- */

static struct inode *inode_of(int fd, const char *abs)
{
    struct stat st;
    if (syscall(SYS_fstat, fd, &st) != 0)
        die("fstat of a new descriptor: %s", strerror(errno));
    struct inode *in;
    for (in = inodes; in; in = in->next)
        if (in->dev == st.st_dev && in->ino == st.st_ino)
            break;
    if (!in) {
        in = xmalloc(sizeof *in);
        memset(in, 0, sizeof *in);
        in->dev = st.st_dev;
        in->ino = st.st_ino;
        char link[64];
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        int p = (int)syscall(SYS_openat, AT_FDCWD, link, O_RDWR | O_CLOEXEC);
        if (p < 0)
            die("reopen %s read-write: %s", abs, strerror(errno));
        int hi = (int)syscall(SYS_fcntl, p, F_DUPFD_CLOEXEC, PRIV_FD_MIN);
        if (hi < 0)
            die("dup: %s", strerror(errno));
        syscall(SYS_close, p);
        in->priv = hi;
        in->next = inodes;
        inodes = in;
    }
    snprintf(in->name, sizeof in->name, "%.63s", rel_name(abs));
    return in;
}

static struct op *new_op(struct inode *in)
{
    if (in->nops == in->cap) {
        in->cap = in->cap ? in->cap * 2 : 16;
        in->ops = realloc(in->ops, in->cap * sizeof *in->ops);
        if (!in->ops)
            die("out of memory");
    }
    struct op *o = &in->ops[in->nops++];
    memset(o, 0, sizeof *o);
    return o;
}

static void free_ops(struct inode *in)
{
    for (size_t i = 0; i < in->nops; i++) {
        free(in->ops[i].old);
        free(in->ops[i].data);
    }
    in->nops = 0;
}

/* Record a truncation to size (before it is performed). */
static void record_trunc(struct inode *in, uint64_t size)
{
    struct op *o = new_op(in);
    o->kind = OP_TRUNC;
    o->off = size;
    o->old_size = file_size(in->priv);
    if (size < o->old_size) {
        o->old_len = o->old_size - size;
        o->old = xmalloc(o->old_len);
        pread_all(in->priv, o->old, o->old_len, size);
    }
    tracef("pl: trunc %s %llu -> %llu", in->name, (unsigned long long)o->old_size, (unsigned long long)size);
}

/* Undo one operation: the file goes back to what it was before it. */
static void undo_op(struct inode *in, const struct op *o)
{
    if (o->kind == OP_WRITE) {
        if (o->old_len)
            pwrite_all(in->priv, o->old, o->old_len, o->off);
        if (o->off + o->len > o->old_size)
            set_size(in->priv, o->old_size);
    } else {
        set_size(in->priv, o->old_size);
        if (o->old_len)
            pwrite_all(in->priv, o->old, o->old_len, o->off);
    }
}

/* ---- directory operations ---- */

static struct dirop *new_dop(int kind)
{
    if (ndops == capdops) {
        capdops = capdops ? capdops * 2 : 16;
        dops = realloc(dops, capdops * sizeof *dops);
        if (!dops)
            die("out of memory");
    }
    struct dirop *d = &dops[ndops++];
    memset(d, 0, sizeof *d);
    d->kind = kind;
    return d;
}

/* If abs exists, hard-link it to a fresh hidden name and return that. */
static char *hide(const char *abs)
{
    struct stat st;
    if (syscall(SYS_newfstatat, AT_FDCWD, abs, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return NULL;
    char h[PATH_MAX + 64];
    snprintf(h, sizeof h, "%s/.pl-hidden-%u-%u", pldir, (unsigned)getpid(), hidden_seq++);
    if (syscall(SYS_linkat, AT_FDCWD, abs, AT_FDCWD, h, 0) != 0)
        die("link %s -> %s: %s", abs, h, strerror(errno));
    return xstrdup(h);
}

static void drop_hidden(char *h)
{
    if (h && syscall(SYS_unlinkat, AT_FDCWD, h, 0) != 0)
        die("unlink %s: %s", h, strerror(errno));
    free(h);
}

/* The first n directory operations became durable. */
static void commit_dops(size_t n)
{
    for (size_t i = 0; i < n; i++) {
        drop_hidden(dops[i].hidden);
        free(dops[i].a);
        free(dops[i].b);
    }
    memmove(dops, dops + n, (ndops - n) * sizeof *dops);
    ndops -= n;
}

static void free_dops(int unlink_hidden)
{
    (void)unlink_hidden;
    commit_dops(ndops);
}

/* fsync of directory dir: directory operations are applied in order (as
 * by a journaling file system), so every one up to the last that touched
 * dir is durable now. */
static void sync_dir(const char *dir)
{
    size_t n = 0;
    for (size_t i = 0; i < ndops; i++)
        if (dop_touches(&dops[i], dir))
            n = i + 1;
    commit_dops(n);
}

static void undo_dop(const struct dirop *d)
{
    switch (d->kind) {
    case DOP_CREATE:
    case DOP_LINK:
        if (syscall(SYS_unlinkat, AT_FDCWD, d->a, 0) != 0 && errno != ENOENT)
            die("undo create %s: %s", d->a, strerror(errno));
        break;
    case DOP_RENAME:
        if (syscall(SYS_renameat, AT_FDCWD, d->b, AT_FDCWD, d->a) != 0)
            die("undo rename %s -> %s: %s", d->a, d->b, strerror(errno));
        if (d->hidden && syscall(SYS_renameat, AT_FDCWD, d->hidden, AT_FDCWD, d->b) != 0)
            die("undo rename: restore %s: %s", d->b, strerror(errno));
        break;
    case DOP_UNLINK:
        if (d->hidden && syscall(SYS_renameat, AT_FDCWD, d->hidden, AT_FDCWD, d->a) != 0)
            die("undo unlink %s: %s", d->a, strerror(errno));
        break;
    case DOP_MKDIR:
        if (syscall(SYS_unlinkat, AT_FDCWD, d->a, AT_REMOVEDIR) != 0 && errno == ENOTEMPTY) {
            /* only files we do not watch can be left: LMDB's lock file */
            char lk[PATH_MAX + 16];
            snprintf(lk, sizeof lk, "%s/lock.mdb", d->a);
            syscall(SYS_unlinkat, AT_FDCWD, lk, 0);
            if (syscall(SYS_unlinkat, AT_FDCWD, d->a, AT_REMOVEDIR) != 0)
                die("undo mkdir %s: %s", d->a, strerror(errno));
        }
        break;
    case DOP_RMDIR:
        if (syscall(SYS_mkdirat, AT_FDCWD, d->a, 0755) != 0)
            die("undo rmdir %s: %s", d->a, strerror(errno));
        break;
    }
}

static const char *dop_name(int kind)
{
    static const char *names[] = {"?", "create", "rename", "unlink", "link", "mkdir", "rmdir"};
    return kind >= DOP_CREATE && kind <= DOP_RMDIR ? names[kind] : "?";
}

/* ---- the power loss ---- */

static uint64_t rng_state;

static uint64_t rnd(uint64_t bound)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return bound ? z % bound : z;
}

static int rfd = -1;

static void report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void report(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if (n > (int)sizeof buf - 2)
        n = (int)sizeof buf - 2;
    buf[n++] = '\n';
    if (rfd >= 0)
        syscall(SYS_write, rfd, buf, n);
    if (trace)
        syscall(SYS_write, 2, buf, n);
}

/* Redo each block of a write (blocks of g bytes, aligned in the file) or
 * not, at random.  Returns how many were kept. */
static uint64_t scatter(struct inode *in, const struct op *o, uint64_t g)
{
    uint64_t kept = 0, end = o->off + o->len;
    for (uint64_t b = o->off; b < end;) {
        uint64_t next = (b / g + 1) * g;
        if (next > end)
            next = end;
        if (rnd(2)) {
            pwrite_all(in->priv, o->data + (b - o->off), next - b, b);
            kept++;
        }
        b = next;
    }
    return kept;
}

/* A cut point in (off, off+len) at a multiple of g, or any byte if g = 1;
 * off or off+len if there is none. */
static uint64_t cut_point(const struct op *o, uint64_t g)
{
    uint64_t end = o->off + o->len;
    uint64_t first = (o->off / g + 1) * g, last = ((end - 1) / g) * g;
    if (o->len < 2 || first > last || first >= end)
        return rnd(2) ? end : o->off;
    return first + rnd((last - first) / g + 1) * g;
}

/* Redo (or not) one operation after everything was undone. */
static void damage(struct inode *in, const struct op *o, int mode, size_t idx)
{
    if (mode == 2 && tail_only && idx < in->nops * 3 / 4)
        mode = 1; /* CAIRN_PL_TAIL: only the newest quarter is damaged */
    if (o->kind == OP_TRUNC) {
        int keep = o->durable || mode == 1 || (mode == 2 && rnd(2));
        if (keep)
            set_size(in->priv, o->off);
        report("  %s op %zu: truncate %llu -> %llu: %s", in->name, idx, (unsigned long long)o->old_size,
               (unsigned long long)o->off, keep ? "kept" : "dropped");
        return;
    }
    uint64_t end = o->off + o->len;
    int choice = o->durable  ? 0
                 : mode == 0 ? 3
                 : mode == 1 ? 0
                             : (int)rnd(10); /* 0-2 keep, 3-5 drop, 6-8 tear, 9 scatter */
    char what[96];
    if (choice <= 2) { /* keep */
        pwrite_all(in->priv, o->data, o->len, o->off);
        snprintf(what, sizeof what, "%s", o->durable ? "kept (O_DSYNC)" : "kept");
    } else if (choice <= 5) { /* drop */
        snprintf(what, sizeof what, "dropped");
    } else if (choice <= 8) { /* tear: a prefix */
        static const uint64_t gran[] = {512, 4096, 1};
        uint64_t g = gran[choice - 6];
        uint64_t c = cut_point(o, g);
        if (c > o->off)
            pwrite_all(in->priv, o->data, c - o->off, o->off);
        snprintf(what, sizeof what, "torn (%s): first %llu of %llu bytes",
                 g == 1     ? "any byte"
                 : g == 512 ? "512"
                            : "4096",
                 (unsigned long long)(c - o->off), (unsigned long long)o->len);
    } else { /* scatter */
        uint64_t g = rnd(2) ? 4096 : 512;
        uint64_t kept = scatter(in, o, g); /* the size grows to the end of the last block kept */
        snprintf(what, sizeof what, "scattered (%llu-byte blocks): %llu kept", (unsigned long long)g,
                 (unsigned long long)kept);
    }
    report("  %s op %zu: write [%llu, %llu) (size before %llu): %s", in->name, idx, (unsigned long long)o->off,
           (unsigned long long)end, (unsigned long long)o->old_size, what);
}

static void power_loss(const char *what, const char *name) __attribute__((noreturn));
static void power_loss(const char *what, const char *name)
{
    rng_state = seed * 0x9E3779B97F4A7C15ull ^ (uint64_t)crash_at * 0xD1B54A32D192ED03ull;
    int mode = seed == 0 ? 0 : seed == 1 ? 1 : 2; /* drop all, keep all, random */
    if (report_path)
        rfd = (int)syscall(SYS_openat, AT_FDCWD, report_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    size_t pending = 0;
    for (struct inode *in = inodes; in; in = in->next)
        for (size_t i = 0; i < in->nops; i++)
            pending += !in->ops[i].durable;
    report("crash at sync point %ld (%s %s), seed %llu (%s): %zu unsynced file operations, %zu directory operations",
           crash_at, what, name, (unsigned long long)seed,
           mode == 0   ? "drop all"
           : mode == 1 ? "keep all"
                       : "random",
           pending, ndops);
    report("pending %zu", pending + ndops);
    for (struct inode *in = inodes; in; in = in->next) {
        if (!in->nops)
            continue;
        for (size_t i = in->nops; i-- > 0;)
            undo_op(in, &in->ops[i]);
        for (size_t i = 0; i < in->nops; i++)
            damage(in, &in->ops[i], mode, i);
    }
    size_t keep = mode == 0 ? 0 : mode == 1 ? ndops : (size_t)rnd(ndops + 1);
    for (size_t i = ndops; i-- > keep;) {
        undo_dop(&dops[i]);
        report("  dir op %zu: %s %s%s%s: undone", i, dop_name(dops[i].kind), rel_name(dops[i].a),
               dops[i].b ? " -> " : "", dops[i].b ? rel_name(dops[i].b) : "");
        free(dops[i].hidden);
        dops[i].hidden = NULL;
    }
    for (size_t i = 0; i < keep; i++) {
        report("  dir op %zu: %s %s%s%s: kept", i, dop_name(dops[i].kind), rel_name(dops[i].a), dops[i].b ? " -> " : "",
               dops[i].b ? rel_name(dops[i].b) : "");
        drop_hidden(dops[i].hidden);
        dops[i].hidden = NULL;
    }
    report("end");
    syscall(SYS_exit_group, 99);
    for (;;)
        ;
}

/* Called with mu held, before the synchronizing operation. */
static void sync_point(const char *what, const char *name)
{
    ++nsync;
    tracef("pl: sync point %ld: %s %s", nsync, what, name);
    if (nsync == crash_at)
        power_loss(what, name);
}

/* ---- setup ---- */

static void write_count(void)
{
    if (!active || !count_path)
        return;
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%ld\n", nsync);
    int fd = (int)syscall(SYS_openat, AT_FDCWD, count_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) {
        syscall(SYS_write, fd, buf, n);
        syscall(SYS_close, fd);
    }
}

__attribute__((constructor)) static void shim_init(void)
{
    load_real();
    const char *d = getenv("CAIRN_PL_DIR");
    if (!d || !*d)
        return;
    if (resolve(AT_FDCWD, d, pldir) != 0)
        die("bad CAIRN_PL_DIR %s", d);
    pldir_len = strlen(pldir);
    const char *e = getenv("CAIRN_PL_CRASH_AT");
    crash_at = e && *e ? atol(e) : -1;
    e = getenv("CAIRN_PL_SEED");
    seed = e && *e ? strtoull(e, NULL, 0) : 0;
    count_path = getenv("CAIRN_PL_COUNT");
    report_path = getenv("CAIRN_PL_REPORT");
    e = getenv("CAIRN_PL_TRACE");
    trace = e && *e && *e != '0';
    e = getenv("CAIRN_PL_TAIL");
    tail_only = e && *e && *e != '0';
    e = getenv("CAIRN_PL_REAL_SYNC");
    pass_sync = e && *e && *e != '0';
    active = 1;
}

__attribute__((destructor)) static void shim_fini(void)
{
    if (!active)
        return;
    pthread_mutex_lock(&mu);
    write_count();
    /* A normal exit loses no power: unsynced renames simply stay. */
    free_dops(1);
    active = 0;
    pthread_mutex_unlock(&mu);
}

#define SHIM_ENSURE(name)                                                                                              \
    do {                                                                                                               \
        if (!real_##name)                                                                                              \
            load_real();                                                                                               \
    } while (0)

/* ---- open / close / dup ---- */

static int track_open(int dirfd, const char *path, int flags, mode_t mode, int *handled)
{
    char abs[PATH_MAX];
    *handled = 0;
    if (!active || resolve(dirfd, path, abs) != 0)
        return -1;
    int kind = classify(abs);
    if (!kind)
        return -1;
    *handled = 1;
    pthread_mutex_lock(&mu);
    int fd;
    struct stat st;
    int existed = syscall(SYS_newfstatat, AT_FDCWD, abs, &st, 0) == 0;
    if (kind == 2 || (existed && S_ISDIR(st.st_mode))) {
        fd = (int)syscall(SYS_openat, AT_FDCWD, abs, flags, mode);
        if (fd >= 0) {
            if (!fd_ok(fd))
                die("descriptor %d too large", fd);
            free(fds[fd].dir);
            memset(&fds[fd], 0, sizeof fds[fd]);
            fds[fd].tracked = 2;
            fds[fd].dir = xstrdup(abs);
        }
        int e = errno;
        pthread_mutex_unlock(&mu);
        errno = e;
        return fd;
    }
    int want_trunc = (flags & O_TRUNC) && (flags & O_ACCMODE) != O_RDONLY;
    int dsync = (flags & O_DSYNC) != 0;
    int real_flags = flags & ~O_TRUNC;
    if (!pass_sync)
        real_flags &= ~O_SYNC; /* clears O_DSYNC too */
    fd = (int)syscall(SYS_openat, AT_FDCWD, abs, real_flags, mode);
    if (fd < 0) {
        int e = errno;
        pthread_mutex_unlock(&mu);
        errno = e;
        return -1;
    }
    if (!fd_ok(fd))
        die("descriptor %d too large", fd);
    if (!existed && (flags & O_CREAT)) {
        struct dirop *d = new_dop(DOP_CREATE);
        d->a = xstrdup(abs);
        tracef("pl: create %s", abs);
    }
    struct inode *in = NULL;
    if (!existed || S_ISREG(st.st_mode)) {
        in = inode_of(fd, abs);
        if (want_trunc && file_size(in->priv) > 0) {
            record_trunc(in, 0);
            set_size(in->priv, 0);
        }
    }
    free(fds[fd].dir);
    memset(&fds[fd], 0, sizeof fds[fd]);
    if (!in) { /* not a regular file: nothing to model */
        pthread_mutex_unlock(&mu);
        return fd;
    }
    fds[fd].tracked = 1;
    fds[fd].ino = in;
    fds[fd].dsync = (unsigned char)dsync;
    fds[fd].append = (flags & O_APPEND) != 0;
    tracef("pl: open %s fd %d%s", abs, fd, dsync ? " O_DSYNC" : "");
    pthread_mutex_unlock(&mu);
    return fd;
}

static mode_t mode_arg(int flags, va_list ap)
{
    return (flags & O_CREAT) || (flags & __O_TMPFILE) == __O_TMPFILE ? (mode_t)va_arg(ap, int) : 0;
}

int open(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    int h, fd = track_open(AT_FDCWD, path, flags, mode, &h);
    if (h)
        return fd;
    SHIM_ENSURE(open);
    return real_open(path, flags, mode);
}

int open64(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    int h, fd = track_open(AT_FDCWD, path, flags, mode, &h);
    if (h)
        return fd;
    SHIM_ENSURE(open64);
    return real_open64(path, flags, mode);
}

int openat(int dirfd, const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    int h, fd = track_open(dirfd, path, flags, mode, &h);
    if (h)
        return fd;
    SHIM_ENSURE(openat);
    return real_openat(dirfd, path, flags, mode);
}

int openat64(int dirfd, const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    int h, fd = track_open(dirfd, path, flags, mode, &h);
    if (h)
        return fd;
    SHIM_ENSURE(openat64);
    return real_openat64(dirfd, path, flags, mode);
}

int __open_2(const char *path, int flags)
{
    int h, fd = track_open(AT_FDCWD, path, flags, 0, &h);
    if (h)
        return fd;
    SHIM_ENSURE(open_2);
    return real_open_2(path, flags);
}

int __open64_2(const char *path, int flags)
{
    int h, fd = track_open(AT_FDCWD, path, flags, 0, &h);
    if (h)
        return fd;
    SHIM_ENSURE(open64_2);
    return real_open64_2(path, flags);
}

int __openat_2(int dirfd, const char *path, int flags)
{
    int h, fd = track_open(dirfd, path, flags, 0, &h);
    if (h)
        return fd;
    SHIM_ENSURE(openat_2);
    return real_openat_2(dirfd, path, flags);
}

int __openat64_2(int dirfd, const char *path, int flags)
{
    int h, fd = track_open(dirfd, path, flags, 0, &h);
    if (h)
        return fd;
    SHIM_ENSURE(openat64_2);
    return real_openat64_2(dirfd, path, flags);
}

int creat(const char *path, mode_t mode)
{
    int h, fd = track_open(AT_FDCWD, path, O_WRONLY | O_CREAT | O_TRUNC, mode, &h);
    if (h)
        return fd;
    SHIM_ENSURE(creat);
    return real_creat(path, mode);
}

int creat64(const char *path, mode_t mode)
{
    int h, fd = track_open(AT_FDCWD, path, O_WRONLY | O_CREAT | O_TRUNC, mode, &h);
    if (h)
        return fd;
    SHIM_ENSURE(creat64);
    return real_creat64(path, mode);
}

int close(int fd)
{
    SHIM_ENSURE(close);
    if (!tracked(fd))
        return real_close(fd);
    pthread_mutex_lock(&mu);
    free(fds[fd].dir);
    memset(&fds[fd], 0, sizeof fds[fd]);
    int rc = real_close(fd);
    int e = errno;
    pthread_mutex_unlock(&mu);
    errno = e;
    return rc;
}

static void copy_fd(int from, int to, int cloexec_flags)
{
    (void)cloexec_flags;
    if (!active || !fd_ok(to))
        return;
    pthread_mutex_lock(&mu);
    free(fds[to].dir);
    if (fd_ok(from)) {
        fds[to] = fds[from];
        if (fds[to].dir)
            fds[to].dir = xstrdup(fds[to].dir);
    } else {
        memset(&fds[to], 0, sizeof fds[to]);
    }
    pthread_mutex_unlock(&mu);
}

int dup(int fd)
{
    SHIM_ENSURE(dup);
    int r = real_dup(fd);
    if (r >= 0 && tracked(fd))
        copy_fd(fd, r, 0);
    return r;
}

int dup2(int fd, int fd2)
{
    SHIM_ENSURE(dup2);
    int was = tracked(fd);
    int r = real_dup2(fd, fd2);
    if (r >= 0 && fd != fd2 && active && fd_ok(fd2)) {
        if (was)
            copy_fd(fd, fd2, 0);
        else if (fds[fd2].tracked)
            copy_fd(-1, fd2, 0);
    }
    return r;
}

int dup3(int fd, int fd2, int flags)
{
    SHIM_ENSURE(dup3);
    int was = tracked(fd);
    int r = real_dup3(fd, fd2, flags);
    if (r >= 0 && active && fd_ok(fd2)) {
        if (was)
            copy_fd(fd, fd2, 0);
        else if (fds[fd2].tracked)
            copy_fd(-1, fd2, 0);
    }
    return r;
}

static int do_fcntl(int (*real)(int, int, ...), int fd, int cmd, void *arg)
{
    int r = real(fd, cmd, arg);
    if (r >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) && tracked(fd))
        copy_fd(fd, r, 0);
    return r;
}

int fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    SHIM_ENSURE(fcntl);
    return do_fcntl(real_fcntl, fd, cmd, arg);
}

int fcntl64(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    SHIM_ENSURE(fcntl64);
    return do_fcntl(real_fcntl64 ? real_fcntl64 : real_fcntl, fd, cmd, arg);
}

/* ---- writes ---- */

/* off < 0: at the descriptor's position (write/writev). */
static ssize_t tracked_write(int fd, const struct iovec *iov, int iovcnt, off_t off, int extra_dsync, int rwf)
{
    pthread_mutex_lock(&mu);
    struct fdinfo fi = fds[fd];
    if (fi.tracked != 1 || !fi.ino) { /* closed and reused meanwhile: not ours any more */
        pthread_mutex_unlock(&mu);
        if (off >= 0)
            return syscall(SYS_pwritev2, fd, iov, iovcnt, (long)off, (long)((uint64_t)off >> 32), rwf);
        return syscall(SYS_writev, fd, iov, iovcnt);
    }
    struct inode *in = fi.ino;
    int dsync = fi.dsync || extra_dsync;
    if (dsync)
        sync_point("O_DSYNC write to", in->name);
    uint64_t len = 0;
    for (int i = 0; i < iovcnt; i++)
        len += iov[i].iov_len;
    uint64_t at;
    if (off >= 0)
        at = (uint64_t)off;
    else if (fi.append)
        at = file_size(in->priv);
    else {
        long cur = syscall(SYS_lseek, fd, 0, SEEK_CUR);
        if (cur < 0)
            die("lseek: %s", strerror(errno));
        at = (uint64_t)cur;
    }
    struct op *o = new_op(in);
    o->kind = OP_WRITE;
    o->off = at;
    o->len = len;
    o->old_size = file_size(in->priv);
    o->old_len = at < o->old_size ? (o->old_size - at < len ? o->old_size - at : len) : 0;
    o->old = xmalloc(o->old_len);
    if (o->old_len)
        pread_all(in->priv, o->old, o->old_len, at);
    o->data = xmalloc(len);
    uint64_t p = 0;
    for (int i = 0; i < iovcnt; i++) {
        memcpy(o->data + p, iov[i].iov_base, iov[i].iov_len);
        p += iov[i].iov_len;
    }
    long n;
    int wflags = rwf & ~(RWF_DSYNC | RWF_SYNC);
    if (off >= 0)
        n = syscall(SYS_pwritev2, fd, iov, iovcnt, (long)off, (long)((uint64_t)off >> 32), wflags);
    else
        n = syscall(SYS_writev, fd, iov, iovcnt);
    int e = errno;
    if (n < 0) {
        free(o->old);
        free(o->data);
        in->nops--;
    } else {
        if ((uint64_t)n < len) {
            o->len = (uint64_t)n;
            if (o->old_len > (uint64_t)n)
                o->old_len = (uint64_t)n;
        }
        o->durable = dsync;
        if (dsync && pass_sync)
            syscall(SYS_fdatasync, fd);
        tracef("pl: write %s [%llu, %llu)%s", in->name, (unsigned long long)at, (unsigned long long)(at + o->len),
               dsync ? " durable" : "");
    }
    pthread_mutex_unlock(&mu);
    errno = e;
    return n;
}

ssize_t write(int fd, const void *buf, size_t n)
{
    if (!tracked(fd)) {
        if (!real_write)
            return syscall(SYS_write, fd, buf, n);
        return real_write(fd, buf, n);
    }
    struct iovec v = {(void *)buf, n};
    return tracked_write(fd, &v, 1, -1, 0, 0);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    if (!tracked(fd)) {
        SHIM_ENSURE(pwrite);
        return real_pwrite(fd, buf, n, off);
    }
    if (off < 0) {
        errno = EINVAL;
        return -1;
    }
    struct iovec v = {(void *)buf, n};
    return tracked_write(fd, &v, 1, off, 0, 0);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
    if (!tracked(fd)) {
        SHIM_ENSURE(pwrite64);
        return real_pwrite64(fd, buf, n, off);
    }
    if (off < 0) {
        errno = EINVAL;
        return -1;
    }
    struct iovec v = {(void *)buf, n};
    return tracked_write(fd, &v, 1, off, 0, 0);
}

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
    if (!tracked(fd)) {
        SHIM_ENSURE(writev);
        return real_writev(fd, iov, cnt);
    }
    return tracked_write(fd, iov, cnt, -1, 0, 0);
}

ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
    if (!tracked(fd)) {
        SHIM_ENSURE(pwritev);
        return real_pwritev(fd, iov, cnt, off);
    }
    if (off < 0) {
        errno = EINVAL;
        return -1;
    }
    return tracked_write(fd, iov, cnt, off, 0, 0);
}

ssize_t pwritev64(int fd, const struct iovec *iov, int cnt, off_t off)
{
    if (!tracked(fd)) {
        SHIM_ENSURE(pwritev64);
        return real_pwritev64(fd, iov, cnt, off);
    }
    if (off < 0) {
        errno = EINVAL;
        return -1;
    }
    return tracked_write(fd, iov, cnt, off, 0, 0);
}

ssize_t pwritev2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
    if (!tracked(fd)) {
        SHIM_ENSURE(pwritev2);
        return real_pwritev2(fd, iov, cnt, off, flags);
    }
    return tracked_write(fd, iov, cnt, off < 0 ? -1 : off, (flags & (RWF_DSYNC | RWF_SYNC)) != 0, flags);
}

ssize_t pwritev64v2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
    if (!tracked(fd)) {
        SHIM_ENSURE(pwritev64v2);
        return real_pwritev64v2(fd, iov, cnt, off, flags);
    }
    return tracked_write(fd, iov, cnt, off < 0 ? -1 : off, (flags & (RWF_DSYNC | RWF_SYNC)) != 0, flags);
}

static int tracked_ftruncate(int fd, off_t len)
{
    pthread_mutex_lock(&mu);
    struct fdinfo fi = fds[fd];
    int rc;
    if (fi.tracked == 1 && fi.ino && len >= 0) {
        record_trunc(fi.ino, (uint64_t)len);
        rc = (int)syscall(SYS_ftruncate, fd, len);
        if (rc != 0) {
            int e = errno;
            fi.ino->nops--;
            free(fi.ino->ops[fi.ino->nops].old);
            pthread_mutex_unlock(&mu);
            errno = e;
            return rc;
        }
    } else {
        rc = (int)syscall(SYS_ftruncate, fd, len);
    }
    int e = errno;
    pthread_mutex_unlock(&mu);
    errno = e;
    return rc;
}

int ftruncate(int fd, off_t len)
{
    if (!tracked(fd)) {
        SHIM_ENSURE(ftruncate);
        return real_ftruncate(fd, len);
    }
    return tracked_ftruncate(fd, len);
}

int ftruncate64(int fd, off_t len)
{
    if (!tracked(fd)) {
        SHIM_ENSURE(ftruncate64);
        return real_ftruncate64(fd, len);
    }
    return tracked_ftruncate(fd, len);
}

static int path_truncate(const char *path, off_t len, int (*real)(const char *, off_t))
{
    char abs[PATH_MAX];
    if (!active || resolve(AT_FDCWD, path, abs) != 0 || classify(abs) != 1)
        return real(path, len);
    int fd = open(path, O_WRONLY);
    if (fd < 0)
        return -1;
    int rc = tracked_ftruncate(fd, len);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

int truncate(const char *path, off_t len)
{
    SHIM_ENSURE(truncate);
    return path_truncate(path, len, real_truncate);
}

int truncate64(const char *path, off_t len)
{
    SHIM_ENSURE(truncate64);
    return path_truncate(path, len, real_truncate64 ? real_truncate64 : real_truncate);
}

int fallocate(int fd, int mode, off_t off, off_t len)
{
    /* Reserving blocks beyond nothing (FALLOC_FL_KEEP_SIZE alone) changes
     * neither the bytes nor the size: nothing to model. */
    if (!tracked(fd) || mode == FALLOC_FL_KEEP_SIZE) {
        SHIM_ENSURE(fallocate);
        return real_fallocate(fd, mode, off, len);
    }
    die("fallocate on a watched file is not modelled");
}

int fallocate64(int fd, int mode, off_t off, off_t len)
{
    /* Reserving blocks beyond nothing (FALLOC_FL_KEEP_SIZE alone) changes
     * neither the bytes nor the size: nothing to model. */
    if (!tracked(fd) || mode == FALLOC_FL_KEEP_SIZE) {
        SHIM_ENSURE(fallocate64);
        return real_fallocate64(fd, mode, off, len);
    }
    die("fallocate on a watched file is not modelled");
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    if (tracked(fd) && (prot & PROT_WRITE) && (flags & MAP_SHARED))
        die("a writable shared mapping of a watched file is not modelled (fd %d)", fd);
    if (!real_mmap) /* before our constructor: no dlsym here (it may allocate) */
        return (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
    return real_mmap(addr, len, prot, flags, fd, off);
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    if (tracked(fd) && (prot & PROT_WRITE) && (flags & MAP_SHARED))
        die("a writable shared mapping of a watched file is not modelled (fd %d)", fd);
    if (!real_mmap64 && !real_mmap)
        return (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
    return (real_mmap64 ? real_mmap64 : real_mmap)(addr, len, prot, flags, fd, off);
}

/* ---- syncs ---- */

static int do_sync(int fd, int data_only)
{
    pthread_mutex_lock(&mu);
    struct fdinfo fi = fds[fd];
    if (fi.tracked == 1) {
        sync_point(data_only ? "fdatasync" : "fsync", fi.ino ? fi.ino->name : "?");
        if (fi.ino)
            free_ops(fi.ino);
    } else if (fi.tracked == 2) {
        sync_point(data_only ? "fdatasync" : "fsync", rel_name(fi.dir));
        sync_dir(fi.dir);
    }
    int rc = 0, e = 0;
    if (pass_sync || !fi.tracked) {
        rc = (int)syscall(data_only ? SYS_fdatasync : SYS_fsync, fd);
        e = errno;
    }
    pthread_mutex_unlock(&mu);
    errno = e;
    return rc;
}

int fsync(int fd)
{
    if (!tracked(fd)) {
        SHIM_ENSURE(fsync);
        return real_fsync(fd);
    }
    return do_sync(fd, 0);
}

int fdatasync(int fd)
{
    if (!tracked(fd)) {
        SHIM_ENSURE(fdatasync);
        return real_fdatasync(fd);
    }
    return do_sync(fd, 1);
}

static void sync_everything(const char *what)
{
    sync_point(what, "(all)");
    for (struct inode *in = inodes; in; in = in->next)
        free_ops(in);
    free_dops(1);
}

int msync(void *addr, size_t len, int flags)
{
    SHIM_ENSURE(msync);
    if (active) {
        /* Writable shared mappings of watched files are refused at mmap, so
         * this syncs nothing watched; it is still a sync point. */
        pthread_mutex_lock(&mu);
        sync_point("msync", "(mapping)");
        pthread_mutex_unlock(&mu);
    }
    return real_msync(addr, len, flags);
}

void sync(void)
{
    SHIM_ENSURE(sync);
    if (active) {
        pthread_mutex_lock(&mu);
        sync_everything("sync");
        pthread_mutex_unlock(&mu);
    }
    if (!active || pass_sync)
        real_sync();
}

int syncfs(int fd)
{
    SHIM_ENSURE(syncfs);
    if (active) {
        pthread_mutex_lock(&mu);
        sync_everything("syncfs");
        pthread_mutex_unlock(&mu);
        if (!pass_sync)
            return 0;
    }
    return real_syncfs(fd);
}

/* ---- names ---- */

static int do_renameat2(int od, const char *op, int nd, const char *np, unsigned flags)
{
    char a[PATH_MAX], b[PATH_MAX];
    int ka = 0, kb = 0;
    if (active && resolve(od, op, a) == 0 && resolve(nd, np, b) == 0) {
        ka = classify(a);
        kb = classify(b);
    }
    if (!ka && !kb) {
        if (flags) {
            SHIM_ENSURE(renameat2);
            return real_renameat2(od, op, nd, np, flags);
        }
        SHIM_ENSURE(renameat);
        return real_renameat(od, op, nd, np);
    }
    struct stat sst;
    if (ka != 1 || kb != 1 || (flags & ~RENAME_NOREPLACE) ||
        (syscall(SYS_newfstatat, AT_FDCWD, a, &sst, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(sst.st_mode)))
        die("rename %s -> %s (flags %u) is not modelled", op, np, flags);
    pthread_mutex_lock(&mu);
    char *hidden = (flags & RENAME_NOREPLACE) ? NULL : hide(b);
    struct stat old;
    if (hidden && syscall(SYS_newfstatat, AT_FDCWD, b, &old, 0) == 0) /* name the replaced inode in reports */
        for (struct inode *in = inodes; in; in = in->next)
            if (in->dev == old.st_dev && in->ino == old.st_ino)
                snprintf(in->name, sizeof in->name, "%.50s (replaced)", rel_name(b));
    int rc = (int)syscall(SYS_renameat2, AT_FDCWD, a, AT_FDCWD, b, flags);
    int e = errno;
    if (rc != 0) {
        drop_hidden(hidden);
    } else {
        struct dirop *d = new_dop(DOP_RENAME);
        d->a = xstrdup(a);
        d->b = xstrdup(b);
        d->hidden = hidden;
        tracef("pl: rename %s -> %s%s", a, b, hidden ? " (replacing)" : "");
        struct stat st;
        if (syscall(SYS_newfstatat, AT_FDCWD, b, &st, 0) == 0)
            for (struct inode *in = inodes; in; in = in->next)
                if (in->dev == st.st_dev && in->ino == st.st_ino)
                    snprintf(in->name, sizeof in->name, "%.63s", rel_name(b));
    }
    pthread_mutex_unlock(&mu);
    errno = e;
    return rc;
}

int rename(const char *a, const char *b)
{
    return do_renameat2(AT_FDCWD, a, AT_FDCWD, b, 0);
}

int renameat(int od, const char *a, int nd, const char *b)
{
    return do_renameat2(od, a, nd, b, 0);
}

int renameat2(int od, const char *a, int nd, const char *b, unsigned flags)
{
    return do_renameat2(od, a, nd, b, flags);
}

static int do_rmdir(const char *a)
{
    pthread_mutex_lock(&mu);
    int rc = (int)syscall(SYS_unlinkat, AT_FDCWD, a, AT_REMOVEDIR);
    int e = errno;
    if (rc == 0) {
        struct dirop *d = new_dop(DOP_RMDIR);
        d->a = xstrdup(a);
        tracef("pl: rmdir %s", a);
    }
    pthread_mutex_unlock(&mu);
    errno = e;
    return rc;
}

static int do_unlinkat(int dirfd, const char *path, int flags)
{
    char a[PATH_MAX];
    if (!active || resolve(dirfd, path, a) != 0 || classify(a) != 1) {
        SHIM_ENSURE(unlinkat);
        return real_unlinkat(dirfd, path, flags);
    }
    if (flags & AT_REMOVEDIR)
        return do_rmdir(a);
    pthread_mutex_lock(&mu);
    char *hidden = hide(a);
    int rc = (int)syscall(SYS_unlinkat, AT_FDCWD, a, 0);
    int e = errno;
    if (rc != 0) {
        drop_hidden(hidden);
    } else {
        struct dirop *d = new_dop(DOP_UNLINK);
        d->a = xstrdup(a);
        d->hidden = hidden;
        tracef("pl: unlink %s", a);
    }
    pthread_mutex_unlock(&mu);
    errno = e;
    return rc;
}

int unlink(const char *path)
{
    return do_unlinkat(AT_FDCWD, path, 0);
}

int rmdir(const char *path)
{
    return do_unlinkat(AT_FDCWD, path, AT_REMOVEDIR);
}

static int do_mkdirat(int dirfd, const char *path, mode_t mode)
{
    char a[PATH_MAX];
    if (!active || resolve(dirfd, path, a) != 0 || classify(a) != 1) {
        SHIM_ENSURE(mkdirat);
        return real_mkdirat(dirfd, path, mode);
    }
    pthread_mutex_lock(&mu);
    int rc = (int)syscall(SYS_mkdirat, AT_FDCWD, a, mode);
    int e = errno;
    if (rc == 0) {
        struct dirop *d = new_dop(DOP_MKDIR);
        d->a = xstrdup(a);
        tracef("pl: mkdir %s", a);
    }
    pthread_mutex_unlock(&mu);
    errno = e;
    return rc;
}

int mkdir(const char *path, mode_t mode)
{
    return do_mkdirat(AT_FDCWD, path, mode);
}

int mkdirat(int dirfd, const char *path, mode_t mode)
{
    return do_mkdirat(dirfd, path, mode);
}

int unlinkat(int dirfd, const char *path, int flags)
{
    return do_unlinkat(dirfd, path, flags);
}

static int do_linkat(int od, const char *op, int nd, const char *np, int flags)
{
    char b[PATH_MAX];
    if (!active || resolve(nd, np, b) != 0 || classify(b) != 1) {
        SHIM_ENSURE(linkat);
        return real_linkat(od, op, nd, np, flags);
    }
    pthread_mutex_lock(&mu);
    SHIM_ENSURE(linkat);
    int rc = real_linkat(od, op, nd, np, flags);
    int e = errno;
    if (rc == 0) {
        struct dirop *d = new_dop(DOP_LINK);
        d->a = xstrdup(b);
        tracef("pl: link %s", b);
    }
    pthread_mutex_unlock(&mu);
    errno = e;
    return rc;
}

int link(const char *a, const char *b)
{
    return do_linkat(AT_FDCWD, a, AT_FDCWD, b, 0);
}

int linkat(int od, const char *a, int nd, const char *b, int flags)
{
    return do_linkat(od, a, nd, b, flags);
}
