/*
 * signal.c - the SIGSEGV/SIGBUS handler and the registry of open stores.
 *
 * The handler is installed when a store or an LMDB environment opens
 * (again if someone replaced it since), and stays (removing it while another thread may be inside it
 * is not safe).  A fault whose address lies in no open store, or in a store
 * opened by another process (a forked child), is passed to the handler
 * that was installed before ours, or given the default action, so an
 * application's own crash still crashes as before.
 *
 * RUNS IN A SIGNAL HANDLER: only atomics, write(2), getpid, sigaction and
 * the fault path (fault.c).  Never malloc or stdio.
 *
 * Closing races the handler: close clears the registry slot, then waits
 * until no handler is inside that slot (active[] counts them), so the
 * pager is never freed under a running handler.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>
#include <unistd.h>

#include "pager.h"

#define MAX_STORES 64

static struct pager *_Atomic registry[MAX_STORES];
static _Atomic int active[MAX_STORES];
/* The handlers we chain to.  install_one() writes a new pair into the
 * unused half and then publishes it with one atomic store, so a handler
 * running on another thread never reads a half-written sigaction. */
static struct sigaction previous[2][2]; /* [generation][0 = SIGSEGV, 1 = SIGBUS] */
static _Atomic int previous_gen;

/* A handler we chained to may chain back to us (it was installed after us
 * and saved ours as its previous, then a later open put ours on top):
 * the thread remembers which fault it is passing on, and a second arrival
 * of the same fault takes the default action instead of going round. */
static __thread uintptr_t chaining_addr __attribute__((tls_model("initial-exec")));
static __thread int chaining_sig __attribute__((tls_model("initial-exec")));

/* Was the faulting access a write?  The page-fault error code says so. */
static int fault_is_write(const ucontext_t *uc, int sig, const siginfo_t *si, struct pager *p)
{
#if defined(__x86_64__)
    (void)sig, (void)si, (void)p;
    return (uc->uc_mcontext.gregs[REG_ERR] & 2) != 0;
#elif defined(__aarch64__)
    const unsigned char *ctx = (const unsigned char *)uc->uc_mcontext.__reserved;
    for (;;) {
        const struct _aarch64_ctx *h = (const struct _aarch64_ctx *)ctx;
        if (h->magic == 0 || h->size == 0)
            break;
        if (h->magic == ESR_MAGIC)
            return (((const struct esr_context *)h)->esr & (1u << 6)) != 0; /* WnR */
        ctx += h->size;
    }
    (void)sig, (void)si, (void)p;
    return 0;
#else
    /* Without an error code: under mprotect an access violation on a
     * published extent can only be a write. */
    uint64_t e = ((uintptr_t)si->si_addr - (uintptr_t)p->base) / PAGE_BYTES / PAGES_PER_EXTENT;
    (void)uc;
    return sig == SIGSEGV && si->si_code == SEGV_ACCERR && XS_STATE(atomic_load(&p->ext_state[e])) == XS_RESIDENT;
#endif
}

/* Async-signal-safe formatting for the messages below. */
static size_t put_str(char *buf, size_t at, size_t cap, const char *s)
{
    while (*s && at + 1 < cap)
        buf[at++] = *s++;
    return at;
}

static size_t put_hex(char *buf, size_t at, size_t cap, uint64_t v)
{
    char tmp[19] = "0x";
    int i = 18;
    tmp[i] = 0;
    do {
        tmp[--i] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v && i > 2);
    at = put_str(buf, at, cap, "0x");
    return put_str(buf, at, cap, tmp + i);
}

/* A fault that cannot be served and has no fault_error callback: say why
 * on stderr and abort.  cairn_strerror (errcode.c) is signal-safe. */
static void die(struct pager *p, uintptr_t addr, int rc)
{
    char msg[512];
    size_t at = put_str(msg, 0, sizeof msg, "cairn: ");
    if (rc == CAIRN_READONLY) {
        at = put_str(msg, at, sizeof msg, "write to ");
        at = put_hex(msg, at, sizeof msg, addr);
        at = put_str(msg, at, sizeof msg, " outside a transaction (store ");
    } else {
        at = put_str(msg, at, sizeof msg, "cannot load page ");
        at = put_hex(msg, at, sizeof msg, (addr - (uintptr_t)p->base) / PAGE_BYTES);
        at = put_str(msg, at, sizeof msg, " at ");
        at = put_hex(msg, at, sizeof msg, addr);
        at = put_str(msg, at, sizeof msg, ": ");
        at = put_str(msg, at, sizeof msg, cairn_strerror(rc));
        at = put_str(msg, at, sizeof msg, " (store ");
    }
    at = put_str(msg, at, sizeof msg, p->name);
    at = put_str(msg, at, sizeof msg, ")\n");
    ssize_t w = write(2, msg, at);
    (void)w;
    abort();
}

static void default_action(int sig, siginfo_t *si)
{
    /* Restore it; a real fault re-executes and kills the process with the
     * right signal, a sent one is raised again. */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigaction(sig, &dfl, NULL);
    if (si->si_code <= 0)
        raise(sig);
}

static void chain(int sig, siginfo_t *si, void *uc)
{
    uintptr_t addr = (uintptr_t)si->si_addr;
    if (chaining_sig == sig && chaining_addr == addr) {
        chaining_sig = 0;
        default_action(sig, si);
        return;
    }
    const struct sigaction *old = &previous[atomic_load(&previous_gen)][sig == SIGBUS];
    if ((old->sa_flags & SA_SIGINFO) && old->sa_sigaction) {
        chaining_sig = sig, chaining_addr = addr;
        old->sa_sigaction(sig, si, uc);
        chaining_sig = 0;
        return;
    }
    if (old->sa_handler != SIG_DFL && old->sa_handler != SIG_IGN) {
        chaining_sig = sig, chaining_addr = addr;
        old->sa_handler(sig);
        chaining_sig = 0;
        return;
    }
    default_action(sig, si);
}

/* The handler. Async-signal-safe throughout. */
static void on_fault(int sig, siginfo_t *si, void *ucv)
{
    int saved_errno = errno;
    uintptr_t addr = (uintptr_t)si->si_addr;
    for (int i = 0; i < MAX_STORES; i++) {
        struct pager *p = atomic_load_explicit(&registry[i], memory_order_acquire);
        if (!p || addr < (uintptr_t)p->base || addr >= (uintptr_t)p->base + p->bytes)
            continue;
        atomic_fetch_add_explicit(&active[i], 1, memory_order_acq_rel);
        if (atomic_load_explicit(&registry[i], memory_order_acquire) != p || p->pid != getpid()) {
            /* Unregistered meanwhile, or a parent's store seen in a forked
             * child (its entry was copied with our memory): a store this
             * process opened since may lie at that very address, so keep
             * looking rather than stop at the first range that matches. */
            atomic_fetch_sub_explicit(&active[i], 1, memory_order_release);
            continue;
        }
        int rc = fault_handle(p, addr, fault_is_write(ucv, sig, si, p));
        atomic_fetch_sub_explicit(&active[i], 1, memory_order_release);
        if (rc) {
            if (rc != CAIRN_READONLY && p->fault_error)
                p->fault_error(p->store, (void *)addr, rc, p->fault_error_arg);
            die(p, addr, rc);
        }
        errno = saved_errno;
        return;
    }
    /* Not a store's page: a damaged data.mdb inside a guarded LMDB call
     * returns there as MDB_CORRUPTED (lmdb_guard.c); anything else is
     * somebody else's fault. */
    lmdb_guard_trap();
    errno = saved_errno;
    chain(sig, si, ucv);
}

/*
 * Install on_fault for one signal unless it is installed already.  Called
 * at every store open, not once: a program (or a test framework) that
 * replaced our handler after an earlier open gets it back, and its handler
 * becomes the one we chain to.  A program that installs its own handler
 * while a store is open must chain to the previous one itself.
 */
static int install_one(int sig, struct sigaction *prev)
{
    struct sigaction cur, sa;
    if (sigaction(sig, NULL, &cur) != 0)
        return errno;
    if ((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == on_fault) {
        *prev = previous[atomic_load(&previous_gen)][sig == SIGBUS];
        return 0;
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    /* SA_NODEFER: the fault path reads LMDB inside this handler, and a
     * fault there must reach the handler again (lmdb_guard_trap), not kill
     * the process because the signal is blocked. */
    sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    *prev = cur;
    if (sigaction(sig, &sa, NULL) != 0)
        return errno;
    return 0;
}

static pthread_mutex_t install_mutex = PTHREAD_MUTEX_INITIALIZER;

int signal_install(void)
{
    pthread_mutex_lock(&install_mutex);
    int next = !atomic_load(&previous_gen);
    int rc = install_one(SIGSEGV, &previous[next][0]);
    if (rc == 0)
        rc = install_one(SIGBUS, &previous[next][1]);
    if (rc == 0)
        atomic_store(&previous_gen, next);
    pthread_mutex_unlock(&install_mutex);
    return rc;
}

int signal_register(struct pager *p)
{
    int rc = signal_install();
    if (rc)
        return rc;
    for (int i = 0; i < MAX_STORES; i++) {
        struct pager *expect = NULL;
        if (atomic_compare_exchange_strong(&registry[i], &expect, p))
            return 0;
    }
    return CAIRN_BUSY;
}

void signal_unregister(struct pager *p)
{
    for (int i = 0; i < MAX_STORES; i++) {
        if (atomic_load(&registry[i]) != p)
            continue;
        atomic_store(&registry[i], NULL);
        unsigned spins = 0;
        while (atomic_load(&active[i]))
            fault_relax(&spins);
    }
}
