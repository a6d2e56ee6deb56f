/*
 * driver.c - cairn against its peers, same graph, same machine, one run.
 *
 *   compare [-n NODES] [-u UPDATES] [-s STEPS] [-d DATADIR] [-o RESULTSDIR]
 *           [-p PEER,PEER,...] [--seed S] [--no-drop] [--no-plot] [--keep]
 *           [--pmdk-max NODES]
 *
 * For every peer (malloc, mmap, cairn, lmdb, sqlite, pmdk) the driver runs
 * each measurement in a fresh process (this program again, see child.c),
 * dropping the page cache before every cold one when it may, and checks
 * every walk's checksum against the oracle (the walk computed from the
 * graph's definition): a peer returning wrong data stops the run with a
 * non-zero exit.  It prints one table per workload with the ratio
 * cairn/peer, writes compare.md (tables), compare.dat (every figure),
 * ratios.dat and compare.png (gnuplot, when installed) into RESULTSDIR.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "compare.h"

static const peer_ops *const all_peers[] = {&peer_malloc, &peer_mmap,   &peer_cairn,
                                            &peer_lmdb,   &peer_sqlite, &peer_pmdk};
#define NPEERS (sizeof all_peers / sizeof all_peers[0])

const peer_ops *peer_by_name(const char *name)
{
    for (size_t i = 0; i < NPEERS; i++)
        if (strcmp(all_peers[i]->name, name) == 0)
            return all_peers[i];
    return NULL;
}

/* ---- results: (peer, name) -> value ---- */

struct figure {
    int peer;
    char name[32];
    double value;
};

static struct figure figures[1024];
static int nfigures;

static void put(int peer, const char *name, double v)
{
    for (int i = 0; i < nfigures; i++)
        if (figures[i].peer == peer && strcmp(figures[i].name, name) == 0) {
            figures[i].value = v;
            return;
        }
    if (nfigures == (int)(sizeof figures / sizeof figures[0]))
        return;
    figures[nfigures].peer = peer;
    snprintf(figures[nfigures].name, sizeof figures[nfigures].name, "%s", name);
    figures[nfigures++].value = v;
}

static double get(int peer, const char *name)
{
    for (int i = 0; i < nfigures; i++)
        if (figures[i].peer == peer && strcmp(figures[i].name, name) == 0)
            return figures[i].value;
    return NAN;
}

/* ---- the run's settings ---- */

static struct {
    graph g;
    uint64_t updates, ltm_steps;
    char data[4096], results[4096];
    int drop, plot, keep;
    int selected[NPEERS];
    const char *skipped[NPEERS]; /* why a peer asked for was not run */
    uint64_t pmdk_max;
    char self[4096];
} cfg;

static walk_sum oracle_full, oracle_sample, oracle_ltm;
static int drops_ok = -1; /* -1 untried, 1 all dropped, 0 some failed */

static int peer_index(const char *name)
{
    for (size_t i = 0; i < NPEERS; i++)
        if (strcmp(all_peers[i]->name, name) == 0)
            return (int)i;
    return -1;
}

static void drop_page_cache(void)
{
    if (!cfg.drop)
        return;
    sync();
    int fd = open("/proc/sys/vm/drop_caches", O_WRONLY);
    int ok = fd >= 0 && write(fd, "3", 1) == 1;
    if (fd >= 0)
        close(fd);
    if (!ok && drops_ok != 0)
        fprintf(stderr, "compare: cannot drop the page cache (%s): cold figures are warm-cache figures\n",
                strerror(errno));
    drops_ok = ok && drops_ok != 0;
}

static _Noreturn void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "compare: FAILED: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

static void check_walk(const char *peer, const char *kind, walk_sum ws)
{
    walk_sum want = strcmp(kind, "full") == 0 ? oracle_full : strcmp(kind, "sample") == 0 ? oracle_sample : oracle_ltm;
    if (ws.hops != want.hops || ws.sum != want.sum)
        fail("%s: %s walk read wrong data: %llu hops, checksum %016llx; expected %llu hops, %016llx", peer, kind,
             (unsigned long long)ws.hops, (unsigned long long)ws.sum, (unsigned long long)want.hops,
             (unsigned long long)want.sum);
}

/* Run one phase in a fresh process; collect its figures, check its walks. */
static void run_child(int pi, const char *phase, uint64_t a1, uint64_t a2)
{
    const peer_ops *P = all_peers[pi];
    char n[24], seed[24], s1[24], s2[24], dir[4200];
    snprintf(n, sizeof n, "%llu", (unsigned long long)cfg.g.n);
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)cfg.g.seed);
    snprintf(s1, sizeof s1, "%llu", (unsigned long long)a1);
    snprintf(s2, sizeof s2, "%llu", (unsigned long long)a2);
    snprintf(dir, sizeof dir, "%s/%s", cfg.data, P->name);
    int fds[2];
    if (pipe(fds) != 0)
        fail("pipe: %s", strerror(errno));
    fflush(stdout);
    double t0 = now_s();
    pid_t pid = fork();
    if (pid < 0)
        fail("fork: %s", strerror(errno));
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 1);
        close(fds[1]);
        execl(cfg.self, cfg.self, "--child", phase, P->name, n, seed, dir, s1, s2, (char *)NULL);
        perror("exec");
        _exit(127);
    }
    close(fds[1]);
    FILE *f = fdopen(fds[0], "r");
    char line[256];
    int walks = 0;
    while (fgets(line, sizeof line, f)) {
        char name[32];
        double v;
        unsigned long long hops, sum;
        if (sscanf(line, "R %31s %lf", name, &v) == 2) {
            put(pi, name, v);
        } else if (sscanf(line, "C %31s %llu %llu", name, &hops, &sum) == 3) {
            check_walk(P->name, name, (walk_sum){hops, sum});
            walks++;
        }
    }
    fclose(f);
    int status;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail("%s: phase %s: child %s %d", P->name, phase, WIFEXITED(status) ? "exited with" : "killed by signal",
             WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    printf("  %-7s %-7s %-6s done in %6.2f s (%d walk%s verified)\n", P->name, phase,
           strcmp(phase, "cold") == 0 ? s1 : "", now_s() - t0, walks, walks == 1 ? "" : "s");
}

static void run_peer(int pi)
{
    const peer_ops *P = all_peers[pi];
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/%s", cfg.data, P->name);
    if (!P->persistent) {
        run_child(pi, "build", 0, cfg.ltm_steps);
        return;
    }
    run_child(pi, "build", 0, 0);
    for (int T = 1; T <= MAX_THREADS; T *= 2) {
        drop_page_cache();
        run_child(pi, "cold", (uint64_t)T, 0);
    }
    drop_page_cache();
    run_child(pi, "sample", 0, 0);
    /* Larger than memory, before the updates so every peer walks what it
     * built.  Only cairn's budget is enforced (see the note in the table). */
    uint64_t budget = 0;
    if (strcmp(P->name, "cairn") == 0) {
        budget = (uint64_t)get(pi, "cairn_pages") * 4096 / 8;
        put(pi, "ltm_budget", (double)budget);
    }
    drop_page_cache();
    run_child(pi, "ltm", budget, cfg.ltm_steps);
    if (P->updates)
        run_child(pi, "update", cfg.updates, 0);
    if (!cfg.keep) {
        char cmd[4400];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "compare: could not remove %s\n", dir);
    }
}

/* ---- the machine ---- */

static char machine[2048];
static char cmdline[1024];

static void describe_machine(void)
{
    char cpu[256] = "unknown CPU", line[512];
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "model name", 10) == 0) {
            char *c = strchr(line, ':');
            if (c) {
                snprintf(cpu, sizeof cpu, "%s", c + 2);
                cpu[strcspn(cpu, "\n")] = 0;
            }
            break;
        }
    if (f)
        fclose(f);
    long mem_kb = 0;
    f = fopen("/proc/meminfo", "r");
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "MemTotal: %ld kB", &mem_kb) == 1)
            break;
    if (f)
        fclose(f);
    double load[3] = {0, 0, 0};
    f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf %lf %lf", &load[0], &load[1], &load[2]) != 3)
            load[0] = load[1] = load[2] = 0;
        fclose(f);
    }
    struct utsname u;
    uname(&u);
    /* The file system holding the data: the longest mount point above it. */
    char fs[128] = "unknown", dev[256] = "", best[1024] = "";
    f = fopen("/proc/mounts", "r");
    char mdev[256], mpoint[1024], mtype[128];
    while (f && fscanf(f, "%255s %1023s %127s %*[^\n]", mdev, mpoint, mtype) == 3) {
        size_t l = strlen(mpoint);
        if (strncmp(cfg.data, mpoint, l) == 0 && (cfg.data[l] == '/' || cfg.data[l] == 0 || l == 1) &&
            l >= strlen(best)) {
            snprintf(best, sizeof best, "%s", mpoint);
            snprintf(fs, sizeof fs, "%s", mtype);
            snprintf(dev, sizeof dev, "%s", mdev);
        }
    }
    if (f)
        fclose(f);
    snprintf(machine, sizeof machine,
             "%s; %ld CPUs online; %.1f GiB RAM; Linux %s %s; data on %s (%s, mounted at %s); "
             "load average at start %.2f %.2f %.2f",
             cpu, sysconf(_SC_NPROCESSORS_ONLN), mem_kb / 1048576.0, u.release, u.machine, fs, dev, best, load[0],
             load[1], load[2]);
}

/* ---- tables ---- */

enum col_kind { VAL, RATIO };

struct col {
    const char *label;
    const char *key;
    double scale;
    const char *fmt;
    enum col_kind kind;
};

static FILE *md;

static void out(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    if (md) {
        va_start(ap, fmt);
        vfprintf(md, fmt, ap);
        va_end(ap);
    }
}

static void cell(double v, const char *fmt)
{
    if (isnan(v)) {
        out(" | -");
        return;
    }
    char b[64];
    snprintf(b, sizeof b, fmt, v);
    out(" | %s", b);
}

static void table(const char *title, const char *note, const struct col *cols, int ncols)
{
    int ci = peer_index("cairn");
    out("\n### %s\n\n", title);
    if (note)
        out("%s\n\n", note);
    out("| peer");
    for (int c = 0; c < ncols; c++)
        out(" | %s", cols[c].label);
    out(" |\n|---");
    for (int c = 0; c < ncols; c++)
        out("|---:");
    out("|\n");
    for (size_t p = 0; p < NPEERS; p++) {
        if (!cfg.selected[p])
            continue;
        out("| %s", all_peers[p]->name);
        for (int c = 0; c < ncols; c++) {
            double v = get((int)p, cols[c].key);
            if (cols[c].kind == RATIO)
                v = (int)p == ci ? NAN : get(ci, cols[c].key) / v;
            cell(v * cols[c].scale, cols[c].fmt);
        }
        out(" |\n");
    }
}

static void derive(void)
{
    for (size_t p = 0; p < NPEERS; p++) {
        double d = get((int)p, "disk_bytes");
        if (!isnan(d))
            put((int)p, "disk_per_node", d / cfg.g.n);
        double w1 = get((int)p, "warm_T1"), w4 = get((int)p, "warm_T4");
        double c1 = get((int)p, "cold_T1"), c4 = get((int)p, "cold_T4");
        if (!isnan(w1))
            put((int)p, "warm_ns", 1e9 / w1);
        if (!isnan(w4))
            put((int)p, "warm_scale", w4 / w1);
        if (!isnan(c4))
            put((int)p, "cold_scale", c4 / c1);
    }
}

static const char *verdict(double v, double limit, int at_least)
{
    if (isnan(v))
        return "not measured";
    return (at_least ? v >= limit : v <= limit) ? "met" : "**not met**";
}

static void targets(void)
{
    int c = peer_index("cairn"), m = peer_index("malloc"), r = peer_index("mmap"), l = peer_index("lmdb"),
        s = peer_index("sqlite");
    struct {
        const char *what;
        double v, limit;
        int at_least;
        const char *fmt;
    } t[] = {
        {"warm walk within 5% of malloc (cairn/malloc)", get(c, "warm_T1") / get(m, "warm_T1"), 0.95, 1, "%.2f"},
        {"cold walk at least 3x LMDB (cairn/lmdb)", get(c, "cold_T1") / get(l, "cold_T1"), 3, 1, "%.2f"},
        {"cold walk within 3x raw mmap (cairn/mmap)", get(c, "cold_T1") / get(r, "cold_T1"), 1.0 / 3, 1, "%.2f"},
        {"durable updates at least 1.5x LMDB (cairn/lmdb)", get(c, "upd_rate") / get(l, "upd_rate"), 1.5, 1, "%.2f"},
        {"durable updates at least SQLite (cairn/sqlite)", get(c, "upd_rate") / get(s, "upd_rate"), 1, 1, "%.2f"},
        {"log bytes per 8-byte update at most 256", get(c, "upd_log_per"), 256, 0, "%.0f"},
        {"bytes on disk at most half LMDB's (cairn/lmdb)", get(c, "disk_bytes") / get(l, "disk_bytes"), 0.5, 0, "%.2f"},
        {"bulk load at least LMDB's rate (cairn/lmdb)", get(c, "load_rate") / get(l, "load_rate"), 1, 1, "%.2f"},
    };
    out("\n### Targets\n\n| target | measured | |\n|---|---:|---|\n");
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        out("| %s", t[i].what);
        cell(t[i].v, t[i].fmt);
        out(" | %s |\n", verdict(t[i].v, t[i].limit, t[i].at_least));
    }
}

static void print_tables(void)
{
    char head[512];
    snprintf(head, sizeof head,
             "%llu nodes (%.1f MB in the native layout), seed %llu; %llu updates; %llu random-walk steps larger "
             "than memory",
             (unsigned long long)cfg.g.n, g_logical_bytes(&cfg.g) / 1e6, (unsigned long long)cfg.g.seed,
             (unsigned long long)cfg.updates, (unsigned long long)cfg.ltm_steps);
    out("## cairn against its peers\n\n%s.\n\nMachine: %s.\n\nPage cache before cold runs: %s.\n", head, machine,
        !cfg.drop       ? "not dropped (--no-drop)"
        : drops_ok == 1 ? "dropped (echo 3 > /proc/sys/vm/drop_caches)"
                        : "NOT dropped (no permission): cold figures are warm-cache figures");
    out("\nCommand: `%s`\n", cmdline);
    out("\nRatios are cairn/peer: above 1 cairn is faster (rates) or bigger (bytes); every figure is from one run.\n");

    struct col load[] = {
        {"nodes/s", "load_rate", 1, "%.0f", VAL},
        {"MB/s", "load_mbs", 1, "%.1f", VAL},
        {"peak RSS MiB", "load_rss_kb", 1.0 / 1024, "%.0f", VAL},
        {"on disk MiB", "disk_bytes", 1.0 / 1048576, "%.1f", VAL},
        {"disk bytes/node", "disk_per_node", 1, "%.0f", VAL},
        {"written MiB", "load_written", 1.0 / 1048576, "%.0f", VAL},
        {"cairn/peer rate", "load_rate", 1, "%.2f", RATIO},
        {"cairn/peer disk", "disk_bytes", 1, "%.2f", RATIO},
    };
    table("1. Bulk load (build the graph, make it durable, close)", NULL, load, 8);
    struct col cold[] = {
        {"full walk hops/s", "cold_T1", 1, "%.0f", VAL},          {"full walk s", "cold_s_T1", 1, "%.2f", VAL},
        {"1% sample steps/s", "sample_rate", 1, "%.0f", VAL},     {"sample s", "sample_s", 1, "%.3f", VAL},
        {"peak RSS MiB", "cold_rss_kb", 1.0 / 1024, "%.0f", VAL}, {"cairn/peer full", "cold_T1", 1, "%.2f", RATIO},
        {"cairn/peer sample", "sample_rate", 1, "%.2f", RATIO},
    };
    table("2. Cold walk (fresh process, page cache dropped; time includes opening the store)", NULL, cold, 7);
    struct col warm[] = {
        {"hops/s", "warm_T1", 1, "%.0f", VAL},
        {"ns/hop", "warm_ns", 1, "%.1f", VAL},
        {"cairn/peer", "warm_T1", 1, "%.2f", RATIO},
    };
    table("3. Warm walk (everything resident; best of up to 3)", NULL, warm, 3);
    struct col upd[] = {
        {"updates/s", "upd_rate", 1, "%.0f", VAL},
        {"written bytes/update", "upd_written_per", 1, "%.0f", VAL},
        {"log bytes/update", "upd_log_per", 1, "%.0f", VAL},
        {"peak RSS MiB", "upd_rss_kb", 1.0 / 1024, "%.0f", VAL},
        {"cairn/peer rate", "upd_rate", 1, "%.2f", RATIO},
    };
    table("4. Small durable updates (8-byte counter += 1, one synced transaction each)",
          "Written bytes: what the process sent to storage (/proc/self/io write_bytes, page granular). Log bytes: "
          "cairn's log growth; SQLite's WAL frames appended (page + 24 bytes each).",
          upd, 5);
    struct col ltm[] = {
        {"budget MiB", "ltm_budget", 1.0 / 1048576, "%.1f", VAL},
        {"steps/s", "ltm_rate", 1, "%.0f", VAL},
        {"peak RSS MiB", "ltm_rss_kb", 1.0 / 1024, "%.0f", VAL},
        {"cairn/peer", "ltm_rate", 1, "%.2f", RATIO},
    };
    table("5. Larger than memory (random walk from a cold start, store 8x the cache budget)",
          "Only cairn's budget is enforced (cache_bytes = its store's pages / 8). The other peers read through the "
          "page cache, which this benchmark does not limit (that needs a memory cgroup): their figures are what they "
          "do with all the memory the machine has, an upper bound.",
          ltm, 4);
    struct col thr[] = {
        {"cold T1", "cold_T1", 1, "%.0f", VAL},
        {"cold T2", "cold_T2", 1, "%.0f", VAL},
        {"cold T4", "cold_T4", 1, "%.0f", VAL},
        {"warm T1", "warm_T1", 1, "%.0f", VAL},
        {"warm T2", "warm_T2", 1, "%.0f", VAL},
        {"warm T4", "warm_T4", 1, "%.0f", VAL},
        {"cold T4/T1", "cold_scale", 1, "%.2f", VAL},
        {"warm T4/T1", "warm_scale", 1, "%.2f", VAL},
        {"cairn/peer cold T4", "cold_T4", 1, "%.2f", RATIO},
        {"cairn/peer warm T4", "warm_T4", 1, "%.2f", RATIO},
    };
    table("6. Threads (full walk split among 1, 2, 4 threads; hops/s)", NULL, thr, 10);
    targets();
    out("\n### Peers\n\n");
    for (size_t p = 0; p < NPEERS; p++)
        if (cfg.selected[p])
            out("* **%s**: %s.\n", all_peers[p]->name, all_peers[p]->note);
        else if (cfg.skipped[p])
            out("* **%s**: not run: %s.\n", all_peers[p]->name, cfg.skipped[p]);
}

/* ---- data files and the plot ---- */

static void write_data(void)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/compare.dat", cfg.results);
    FILE *f = fopen(path, "w");
    if (!f)
        fail("%s: %s", path, strerror(errno));
    fprintf(f, "# peer figure value   (nodes %llu, seed %llu)\n", (unsigned long long)cfg.g.n,
            (unsigned long long)cfg.g.seed);
    for (int i = 0; i < nfigures; i++)
        fprintf(f, "%s %s %.6g\n", all_peers[figures[i].peer]->name, figures[i].name, figures[i].value);
    fclose(f);

    /* Ratios cairn/peer per workload, one column per peer, for the plot. */
    static const struct {
        const char *label, *key;
    } rows[] = {{"bulk-load", "load_rate"},    {"cold-walk", "cold_T1"},     {"cold-1%", "sample_rate"},
                {"warm-walk", "warm_T1"},      {"updates", "upd_rate"},      {"larger-than-mem", "ltm_rate"},
                {"cold-4-threads", "cold_T4"}, {"warm-4-threads", "warm_T4"}};
    int ci = peer_index("cairn");
    snprintf(path, sizeof path, "%s/ratios.dat", cfg.results);
    f = fopen(path, "w");
    if (!f)
        fail("%s: %s", path, strerror(errno));
    fprintf(f, "workload");
    for (size_t p = 0; p < NPEERS; p++)
        if ((int)p != ci && cfg.selected[p])
            fprintf(f, " %s", all_peers[p]->name);
    fprintf(f, "\n");
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        fprintf(f, "%s", rows[r].label);
        for (size_t p = 0; p < NPEERS; p++)
            if ((int)p != ci && cfg.selected[p]) {
                double v = get(ci, rows[r].key) / get((int)p, rows[r].key);
                if (isnan(v) || isinf(v))
                    fprintf(f, " NaN");
                else
                    fprintf(f, " %.4g", v);
            }
        fprintf(f, "\n");
    }
    fclose(f);
}

/* gnuplot runs in the results directory, so the script and the plot name
 * no path of this machine. */
static void plot(void)
{
    int ncols = 0, ci = peer_index("cairn");
    for (size_t p = 0; p < NPEERS; p++)
        ncols += cfg.selected[p] && (int)p != ci;
    double lo = 1, hi = 1;
    for (int i = 0; i < nfigures; i++) {
        static const char *keys[] = {"load_rate", "cold_T1",  "sample_rate", "warm_T1",
                                     "upd_rate",  "ltm_rate", "cold_T4",     "warm_T4"};
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
            if (figures[i].peer != ci && strcmp(figures[i].name, keys[k]) == 0) {
                double v = get(ci, keys[k]) / figures[i].value;
                if (isfinite(v) && v > 0) {
                    lo = v < lo ? v : lo;
                    hi = v > hi ? v : hi;
                }
            }
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/compare.gp", cfg.results);
    FILE *f = fopen(path, "w");
    if (!f)
        fail("%s: %s", path, strerror(errno));
    fprintf(f,
            "set terminal pngcairo size 1100,560 noenhanced\n"
            "set output 'compare.png'\n"
            "set title 'cairn / peer, %llu nodes (above 1: cairn faster)'\n"
            "set style data histograms\nset style histogram clustered gap 1\n"
            "set style fill solid 0.8 border -1\nset boxwidth 0.9\n"
            "set logscale y 10\nset yrange [%g:%g]\nset grid ytics\nset key outside right top\n"
            "set xtics rotate by -25\nset datafile missing 'NaN'\nset ylabel 'ratio cairn/peer (log scale)'\n"
            "plot for [i=2:%d] 'ratios.dat' using i:xtic(1) title columnheader(i), 1 with lines lc "
            "rgb 'black' dt 2 notitle\n",
            (unsigned long long)cfg.g.n, lo / 2, hi * 2, ncols + 1);
    fclose(f);
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "cd '%s' && gnuplot compare.gp 2>&1", cfg.results);
    if (system(cmd) != 0)
        fprintf(stderr, "compare: gnuplot failed or is not installed; no plot\n");
    else
        printf("plot: %s/compare.png\n", cfg.results);
}

static void usage(void)
{
    fprintf(stderr, "usage: compare [-n NODES] [-u UPDATES] [-s STEPS] [-d DATADIR] [-o RESULTSDIR]\n"
                    "               [-p PEER,...] [--seed S] [--no-drop] [--no-plot] [--keep] [--pmdk-max NODES]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--child") == 0)
        return child_main(argc, argv);

    for (int i = 0, at = 0; i < argc && at < (int)sizeof cmdline - 1; i++)
        at += snprintf(cmdline + at, sizeof cmdline - (size_t)at, "%s%s", i ? " " : "", i ? argv[i] : "compare");
    cfg.g.n = 2000000;
    cfg.g.seed = 20240611;
    cfg.updates = 0;
    cfg.ltm_steps = 0;
    cfg.drop = 1;
    cfg.plot = 1;
    cfg.pmdk_max = 200000;
    snprintf(cfg.results, sizeof cfg.results, "results");
    const char *peers = NULL, *data = NULL;
    static const struct option longs[] = {
        {"seed", required_argument, NULL, 'S'},     {"no-drop", no_argument, NULL, 'D'},
        {"no-plot", no_argument, NULL, 'P'},        {"keep", no_argument, NULL, 'K'},
        {"pmdk-max", required_argument, NULL, 'M'}, {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "n:u:s:d:o:p:", longs, NULL)) != -1) {
        switch (c) {
        case 'n':
            cfg.g.n = strtoull(optarg, NULL, 10);
            break;
        case 'u':
            cfg.updates = strtoull(optarg, NULL, 10);
            break;
        case 's':
            cfg.ltm_steps = strtoull(optarg, NULL, 10);
            break;
        case 'd':
            data = optarg;
            break;
        case 'o':
            snprintf(cfg.results, sizeof cfg.results, "%s", optarg);
            break;
        case 'p':
            peers = optarg;
            break;
        case 'S':
            cfg.g.seed = strtoull(optarg, NULL, 10);
            break;
        case 'D':
            cfg.drop = 0;
            break;
        case 'P':
            cfg.plot = 0;
            break;
        case 'K':
            cfg.keep = 1;
            break;
        case 'M':
            cfg.pmdk_max = strtoull(optarg, NULL, 10);
            break;
        default:
            usage();
        }
    }
    if (cfg.g.n < 16)
        fail("at least 16 nodes");
    if (!cfg.updates)
        cfg.updates = cfg.g.n >= 100000 ? 1000 : 50;
    if (!cfg.ltm_steps)
        cfg.ltm_steps = cfg.g.n / 20 > 1000 ? cfg.g.n / 20 : 1000;
    for (size_t p = 0; p < NPEERS; p++)
        cfg.selected[p] = peers == NULL;
    if (peers) {
        char buf[256];
        snprintf(buf, sizeof buf, "%s", peers);
        for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
            int i = peer_index(tok);
            if (i < 0)
                fail("unknown peer %s", tok);
            cfg.selected[i] = 1;
        }
    }
    /* The oracle is checked against everyone; cairn is what is compared. */
    cfg.selected[peer_index("cairn")] = 1;
    int pm = peer_index("pmdk");
    if (cfg.selected[pm] && cfg.g.n > cfg.pmdk_max) {
        cfg.selected[pm] = 0;
        static char why[160];
        snprintf(why, sizeof why,
                 "%llu nodes is above --pmdk-max %llu (its bulk load runs at about a thousand nodes/s on a "
                 "file system: one msync per flush)",
                 (unsigned long long)cfg.g.n, (unsigned long long)cfg.pmdk_max);
        cfg.skipped[pm] = why;
    }

    ssize_t sl = readlink("/proc/self/exe", cfg.self, sizeof cfg.self - 1);
    if (sl <= 0)
        fail("readlink /proc/self/exe: %s", strerror(errno));
    cfg.self[sl] = 0;
    /* libpmem must flush with msync here: the pool is an ordinary file. */
    setenv("PMEM_IS_PMEM_FORCE", "0", 1);

    char tmpl[4096];
    if (data) {
        snprintf(tmpl, sizeof tmpl, "%s/cairn-compare-XXXXXX", data);
    } else {
        const char *t = getenv("TMPDIR");
        snprintf(tmpl, sizeof tmpl, "%s/cairn-compare-XXXXXX", t ? t : "/var/tmp");
    }
    if (!mkdtemp(tmpl))
        fail("mkdtemp %s: %s", tmpl, strerror(errno));
    if (!realpath(tmpl, cfg.data))
        fail("realpath: %s", strerror(errno));
    if (mkdir(cfg.results, 0755) != 0 && errno != EEXIST)
        fail("mkdir %s: %s", cfg.results, strerror(errno));
    char res[4096];
    if (!realpath(cfg.results, res))
        fail("realpath: %s", strerror(errno));
    snprintf(cfg.results, sizeof cfg.results, "%s", res);
    describe_machine();
    printf("compare: %llu nodes, data in %s\n%s\n", (unsigned long long)cfg.g.n, cfg.data, machine);

    double t0 = now_s();
    oracle_full = oracle_walk_full(&cfg.g, 0, 1);
    for (int T = 2; T <= MAX_THREADS; T *= 2) {
        walk_sum s = {0, 0};
        for (int p = 0; p < T; p++) {
            walk_sum w = oracle_walk_full(&cfg.g, p, T);
            s.hops += w.hops;
            s.sum += w.sum;
        }
        if (s.hops != oracle_full.hops || s.sum != oracle_full.sum)
            fail("the oracle's walk split among %d threads disagrees with itself", T);
    }
    oracle_sample = oracle_walk_random(&cfg.g, cfg.g.seed ^ SEED_SAMPLE, cfg.g.n / 100);
    oracle_ltm = oracle_walk_random(&cfg.g, cfg.g.seed ^ SEED_LTM, cfg.ltm_steps);
    printf("oracle: full walk %llu hops, computed in %.2f s\n", (unsigned long long)oracle_full.hops, now_s() - t0);

    for (size_t p = 0; p < NPEERS; p++)
        if (cfg.selected[p])
            run_peer((int)p);
    derive();

    char path[4200];
    snprintf(path, sizeof path, "%s/compare.md", cfg.results);
    md = fopen(path, "w");
    if (!md)
        fail("%s: %s", path, strerror(errno));
    print_tables();
    fclose(md);
    md = NULL;
    write_data();
    if (cfg.plot)
        plot();
    printf("\ntables: %s/compare.md\ndata: %s/compare.dat\n", cfg.results, cfg.results);
    if (!cfg.keep)
        rmdir(cfg.data);
    printf("compare: every walk of every peer verified against the oracle\n");
    return 0;
}
