/*
 * cairn.c - the `cairn` command: main, what the subcommands share,
 * and the two small ones, stat and check.
 *
 * The command is a consumer of the library: the public header and
 * inspect.h, nothing below them.  The read-only subcommands (stat, check,
 * dump) and backup read a snapshot: the LMDB snapshot plus the log replayed in
 * memory.  They take no lock and write nothing, so they work on a store
 * another process has open, and on one whose log still holds committed
 * transactions.  gc and in-place compact change the store and need it to
 * themselves; while another process has it open they exit 2 naming the
 * reason (CAIRN_BUSY).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"

/* ---- shared helpers ---- */

void cmd_error(const char *sub, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "cairn%s%s: ", sub ? " " : "", sub ? sub : "");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int cmd_exit_for(int rc)
{
    return rc == CAIRN_CORRUPT ? CMD_PROBLEMS : CMD_FAIL;
}

int cmd_snapshot(const char *sub, const char *path, struct snapshot **out)
{
    char err[600];
    int rc = snapshot_open(path, out, err, sizeof err);
    if (rc)
        cmd_error(sub, "%s", err);
    return rc;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void progress_begin(struct progress *pr, const char *label)
{
    pr->on = isatty(STDERR_FILENO) && !getenv("CAIRN_NO_PROGRESS");
    pr->label = label;
    pr->last = 0;
}

void progress_show(struct progress *pr, uint64_t done, uint64_t total)
{
    if (!pr->on)
        return;
    double t = now();
    if (t - pr->last < 0.1 && done != total)
        return;
    pr->last = t;
    int width = 30, filled = total ? (int)((double)done / (double)total * width) : 0;
    if (filled > width)
        filled = width;
    fprintf(stderr, "\r%-10s [%.*s%*s] %llu/%llu", pr->label, filled, "##############################", width - filled,
            "", (unsigned long long)done, (unsigned long long)total);
    fflush(stderr);
}

void progress_end(struct progress *pr)
{
    if (pr->on && pr->last > 0)
        fprintf(stderr, "\r\033[K");
    pr->last = 0;
}

void progress_hook(void *arg, const char *pass, uint64_t done, uint64_t total)
{
    struct progress *pr = arg;
    pr->label = pass;
    progress_show(pr, done, total);
}

struct inspect_hooks progress_hooks(struct progress *pr)
{
    return (struct inspect_hooks){.progress = progress_hook, .arg = pr};
}

void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

const char *human_bytes(uint64_t n, char buf[32])
{
    static const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)n;
    int u = 0;
    while (v >= 1024 && u < 4)
        v /= 1024, u++;
    if (u == 0)
        snprintf(buf, 32, "%llu B", (unsigned long long)n);
    else
        snprintf(buf, 32, "%.1f %s", v, unit[u]);
    return buf;
}

int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    if (!s || !*s || *s == '-')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end)
        return -1;
    *out = v;
    return 0;
}

/* ---- stat ---- */

static const char stat_usage[] = "usage: cairn stat [--json] STORE\n"
                                 "\n"
                                 "Sizes (logical and on disk), compression ratio, pages, extents, objects per\n"
                                 "type, roots, log size and last checkpoint.  Reads a snapshot: works while\n"
                                 "another process has the store open.\n"
                                 "\n"
                                 "  --json   one JSON object instead of text\n"
                                 "  --help   this text\n";

struct stat_roots {
    FILE *f;
    int json, n;
};

static int print_root(void *arg, const char *name, uint64_t v)
{
    struct stat_roots *r = arg;
    if (r->json) {
        fprintf(r->f, "%s{\"name\":", r->n ? "," : "");
        json_string(r->f, name);
        fprintf(r->f, ",\"offset\":%llu}", (unsigned long long)v);
    } else {
        fprintf(r->f, "  %-24s -> %#llx\n", name, (unsigned long long)v);
    }
    r->n++;
    return 0;
}

static void print_holders(const struct holders *h, int json)
{
    if (json) {
        printf(",\"holders\":{\"writer_pid\":");
        if (h->writer_pid)
            printf("%ld", h->writer_pid);
        else
            printf("null");
        printf(",\"readers\":[");
        for (size_t i = 0; i < h->n_readers; i++)
            printf("%s{\"pid\":%ld,\"txnid\":%llu,\"commits_behind\":%llu}", i ? "," : "", h->readers[i].pid,
                   (unsigned long long)h->readers[i].txnid, (unsigned long long)h->readers[i].behind);
        printf("],\"readers_not_listed\":%zu}", h->more_readers);
        return;
    }
    if (h->writer_pid)
        printf("held by      writer pid %ld\n", h->writer_pid);
    else
        printf("held by      no writer\n");
    for (size_t i = 0; i < h->n_readers; i++)
        printf("             reader pid %ld, snapshot %llu LMDB commits behind\n", h->readers[i].pid,
               (unsigned long long)h->readers[i].behind);
    if (h->more_readers)
        printf("             and %zu more readers\n", h->more_readers);
}

static void print_stat(const char *path, const struct snapshot_info *in, const struct store_stat *st, struct walk *w,
                       const struct holders *h, int json)
{
    char id[33];
    for (int i = 0; i < 16; i++)
        snprintf(id + 2 * i, 3, "%02x", in->store_id[i]);
    uint64_t raw = st->extents_stored * in->extent_pages * in->page_bytes;
    double ratio = st->compressed_bytes ? (double)raw / (double)st->compressed_bytes : 0;
    time_t data_mtime = (time_t)st->data_mdb_mtime;
    char b1[32], b2[32], b3[32], b4[32];
    if (json) {
        printf("{\"path\":");
        json_string(stdout, path);
        printf(",\"store_id\":\"%s\",\"format\":%d,\"page_size\":%llu,\"extent_pages\":%llu", id, in->format,
               (unsigned long long)in->page_bytes, (unsigned long long)in->extent_pages);
        printf(",\"pages\":{\"range\":%llu,\"data_start\":%llu,\"allocated\":%llu,\"free_runs\":%llu,"
               "\"free_pages\":%llu}",
               (unsigned long long)in->pages, (unsigned long long)st->data_start, (unsigned long long)st->allocated,
               (unsigned long long)st->free_runs, (unsigned long long)st->free_pages);
        printf(",\"logical_bytes\":%llu,\"live_objects\":%llu,\"live_bytes\":%llu",
               (unsigned long long)(st->allocated * in->page_bytes), (unsigned long long)st->live_objects,
               (unsigned long long)st->live_bytes);
        printf(",\"on_disk\":{\"data_mdb\":%llu,\"wal\":%llu}", (unsigned long long)st->data_mdb_bytes,
               (unsigned long long)in->log_bytes);
        printf(",\"extents\":{\"stored\":%llu,\"compressed_bytes\":%llu,\"raw_bytes\":%llu,\"ratio\":%.3f,"
               "\"changed_by_log\":%llu}",
               (unsigned long long)st->extents_stored, (unsigned long long)st->compressed_bytes,
               (unsigned long long)raw, ratio, (unsigned long long)in->extents_changed_by_log);
        printf(",\"types\":[");
        for (size_t i = 0; i < st->n_types; i++) {
            const struct stat_type *t = &st->types[i];
            printf("%s{\"id\":%u,\"name\":", i ? "," : "", t->id);
            json_string(stdout, t->name);
            printf(",\"size\":%llu,\"pointers\":%u,\"objects\":%llu,\"bytes\":%llu}", (unsigned long long)t->size,
                   t->pointers, (unsigned long long)t->objects, (unsigned long long)t->bytes);
        }
        printf("],\"untyped_small\":[");
        for (size_t k = 0; k < st->n_untyped; k++)
            printf("%s{\"class\":%u,\"objects\":%llu}", k ? "," : "", st->untyped[k].class_bytes,
                   (unsigned long long)st->untyped[k].objects);
        printf("],\"roots\":[");
        struct stat_roots r = {stdout, 1, 0};
        walk_roots(w, print_root, &r);
        printf("],\"log\":{\"bytes\":%llu,\"generation\":%llu,\"start_lsn\":%llu,\"transactions\":%llu,"
               "\"last_lsn\":%llu}",
               (unsigned long long)in->log_bytes, (unsigned long long)in->log_generation,
               (unsigned long long)in->log_start_lsn, (unsigned long long)in->log_txns,
               (unsigned long long)in->last_lsn);
        printf(",\"checkpoint\":{\"lsn\":%llu,\"data_mdb_mtime\":%lld}", (unsigned long long)in->ckpt_lsn,
               (long long)data_mtime);
        print_holders(h, 1);
        printf("}\n");
        return;
    }
    char when[64];
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", localtime(&data_mtime));
    printf("store        %s\n", path);
    printf("store id     %s (format %d)\n", id, in->format);
    printf("logical      %s in %llu pages allocated (of %llu in the range; %llu free in %llu runs)\n",
           human_bytes(st->allocated * in->page_bytes, b1), (unsigned long long)st->allocated,
           (unsigned long long)in->pages, (unsigned long long)st->free_pages, (unsigned long long)st->free_runs);
    printf("live         %llu objects, %s\n", (unsigned long long)st->live_objects, human_bytes(st->live_bytes, b2));
    printf("on disk      %s (data.mdb %s, wal %s)\n", human_bytes(st->data_mdb_bytes + in->log_bytes, b3),
           human_bytes(st->data_mdb_bytes, b1), human_bytes(in->log_bytes, b4));
    printf("extents      %llu stored, %s raw -> %s compressed, ratio %.2f; %llu changed by the log\n",
           (unsigned long long)st->extents_stored, human_bytes(raw, b1), human_bytes(st->compressed_bytes, b2), ratio,
           (unsigned long long)in->extents_changed_by_log);
    printf("types        %-24s %12s %12s\n", "name", "objects", "bytes");
    for (size_t i = 0; i < st->n_types; i++)
        printf("             %-24s %12llu %12llu\n", st->types[i].name, (unsigned long long)st->types[i].objects,
               (unsigned long long)st->types[i].bytes);
    for (size_t k = 0; k < st->n_untyped; k++)
        printf("             %-24s %12llu %12llu\n", "(small, type unknown)",
               (unsigned long long)st->untyped[k].objects, (unsigned long long)st->untyped[k].bytes);
    printf("roots\n");
    struct stat_roots r = {stdout, 0, 0};
    walk_roots(w, print_root, &r);
    if (r.n == 0)
        printf("  (none)\n");
    printf("log          %s, generation %llu, %llu committed transactions after the checkpoint\n",
           human_bytes(in->log_bytes, b1), (unsigned long long)in->log_generation, (unsigned long long)in->log_txns);
    printf("checkpoint   LSN %llu (data.mdb written %s); last committed LSN %llu\n", (unsigned long long)in->ckpt_lsn,
           when, (unsigned long long)in->last_lsn);
    print_holders(h, 0);
}

static int cmd_stat(int argc, char **argv)
{
    static const struct option opts[] = {{"json", no_argument, 0, 'j'}, {"help", no_argument, 0, 'h'}, {0}};
    int json = 0, c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'j')
            json = 1;
        else if (c == 'h')
            return fputs(stat_usage, stdout), CMD_OK;
        else
            return fputs(stat_usage, stderr), CMD_FAIL;
    }
    if (optind != argc - 1)
        return fputs(stat_usage, stderr), CMD_FAIL;
    const char *path = argv[optind];
    struct snapshot *sn;
    int rc = cmd_snapshot("stat", path, &sn);
    if (rc)
        return cmd_exit_for(rc);
    struct snapshot_info in;
    snapshot_info(sn, &in);
    struct store_stat st;
    struct progress pr;
    progress_begin(&pr, "stat");
    struct inspect_hooks hooks = progress_hooks(&pr);
    rc = inspect_stat(sn, &st, &hooks);
    progress_end(&pr);
    struct walk *w = NULL;
    if (rc == 0)
        rc = walk_open(sn, &w);
    if (rc) {
        cmd_error("stat", "%s", snapshot_errmsg(sn)[0] ? snapshot_errmsg(sn) : cairn_strerror(rc));
        inspect_stat_free(&st);
        snapshot_close(sn);
        return cmd_exit_for(rc);
    }
    struct holders h;
    if (snapshot_holders(sn, &h) != 0)
        memset(&h, 0, sizeof h); /* LMDB's reader table unreadable: say nothing of readers */
    print_stat(path, &in, &st, w, &h, json);
    inspect_stat_free(&st);
    walk_close(w);
    snapshot_close(sn);
    return CMD_OK;
}

/* ---- check ---- */

static const char check_usage[] = "usage: cairn check [--json] [--max-problems N] STORE\n"
                                  "\n"
                                  "Verify the committed state: every extent decodes and matches its checksum,\n"
                                  "allocator metadata agrees with itself, typed objects match the catalog,\n"
                                  "every pointer and root is NULL or points into a live object.  Reads a\n"
                                  "snapshot: works while another process has the store open.\n"
                                  "\n"
                                  "  --json             one JSON object instead of text\n"
                                  "  --max-problems N   list at most N problems (default 100; all are counted)\n"
                                  "  --help             this text\n"
                                  "\n"
                                  "Exit: 0 clean, 1 problems found (listed), 2 could not run.\n";

struct check_out {
    int json;
    uint64_t listed, max;
    struct progress pr;
};

static void check_problem(void *arg, const char *msg)
{
    struct check_out *o = arg;
    if (o->listed++ >= o->max)
        return;
    progress_end(&o->pr);
    if (o->json) {
        printf("%s", o->listed > 1 ? "," : "");
        json_string(stdout, msg);
    } else {
        printf("problem: %s\n", msg);
    }
}

static void check_progress(void *arg, const char *pass, uint64_t done, uint64_t total)
{
    struct check_out *o = arg;
    o->pr.label = pass;
    progress_show(&o->pr, done, total);
}

static int cmd_check(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, 0, 'j'}, {"max-problems", required_argument, 0, 'm'}, {"help", no_argument, 0, 'h'}, {0}};
    struct check_out out = {.max = 100};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'j')
            out.json = 1;
        else if (c == 'm' && parse_u64(optarg, &out.max) == 0)
            continue;
        else if (c == 'h')
            return fputs(check_usage, stdout), CMD_OK;
        else
            return fputs(check_usage, stderr), CMD_FAIL;
    }
    if (optind != argc - 1)
        return fputs(check_usage, stderr), CMD_FAIL;
    const char *path = argv[optind];
    struct snapshot *sn;
    char err[600];
    int rc = snapshot_open(path, &sn, err, sizeof err);
    if (rc == CAIRN_CORRUPT) {
        /* Found, but damaged before any page could be read. */
        if (out.json) {
            printf("{\"path\":");
            json_string(stdout, path);
            printf(",\"clean\":false,\"problems\":1,\"listed\":[");
            json_string(stdout, err);
            printf("]}\n");
        } else {
            printf("problem: %s\n%s: 1 problem\n", err, path);
        }
        return CMD_PROBLEMS;
    }
    if (rc) {
        cmd_error("check", "%s", err);
        return CMD_FAIL;
    }
    cairn_check_report r;
    struct inspect_hooks hooks = {check_problem, check_progress, &out};
    progress_begin(&out.pr, "check");
    if (out.json) {
        printf("{\"path\":");
        json_string(stdout, path);
        printf(",\"listed\":[");
    }
    rc = check_snapshot(sn, &r, &hooks);
    progress_end(&out.pr);
    struct snapshot_info in;
    snapshot_info(sn, &in);
    if (rc && rc != CAIRN_CORRUPT) {
        if (out.json)
            printf("],\"error\":\"%s\"}\n", cairn_strerror(rc));
        cmd_error("check", "%s: the check stopped: %s", path, cairn_strerror(rc));
        snapshot_close(sn);
        return CMD_FAIL;
    }
    if (out.json) {
        printf("],\"clean\":%s,\"extents\":%llu,\"pages\":%llu,\"objects\":%llu,\"pointers\":%llu,"
               "\"problems\":%llu,\"corrupt_extents\":%llu,\"bad_pointers\":%llu,\"alloc_errors\":%llu,"
               "\"type_errors\":%llu,\"log_transactions\":%llu}\n",
               r.problems ? "false" : "true", (unsigned long long)r.extents_checked,
               (unsigned long long)r.pages_checked, (unsigned long long)r.objects, (unsigned long long)r.pointers,
               (unsigned long long)r.problems, (unsigned long long)r.corrupt_extents,
               (unsigned long long)r.bad_pointers, (unsigned long long)r.alloc_errors,
               (unsigned long long)r.type_errors, (unsigned long long)in.log_txns);
    } else {
        if (r.problems > out.max)
            printf("... %llu more problems not listed\n", (unsigned long long)(r.problems - out.max));
        printf("%s: %s\n", path, r.problems ? "PROBLEMS FOUND" : "clean");
        printf("  %llu extents, %llu object pages, %llu objects, %llu pointers checked"
               " (%llu log transactions replayed)\n",
               (unsigned long long)r.extents_checked, (unsigned long long)r.pages_checked,
               (unsigned long long)r.objects, (unsigned long long)r.pointers, (unsigned long long)in.log_txns);
        if (r.problems)
            printf("  %llu problems: %llu corrupt extents, %llu bad pointers, %llu allocator, %llu type\n",
                   (unsigned long long)r.problems, (unsigned long long)r.corrupt_extents,
                   (unsigned long long)r.bad_pointers, (unsigned long long)r.alloc_errors,
                   (unsigned long long)r.type_errors);
    }
    snapshot_close(sn);
    return r.problems ? CMD_PROBLEMS : CMD_OK;
}

/* ---- main ---- */

static const char usage[] = "usage: cairn SUBCOMMAND [OPTIONS] STORE ...\n"
                            "\n"
                            "Inspect and maintain a cairn store (a directory).  Any store can be walked\n"
                            "without the application's types: pointer locations are stored with the pages.\n"
                            "\n"
                            "  stat STORE               sizes, compression, pages, types, roots, log, checkpoint\n"
                            "  check STORE              integrity check\n"
                            "  dump STORE               objects as JSON lines (offsets, types, words, pointers)\n"
                            "  backup STORE DEST        consistent copy, also while STORE is open elsewhere\n"
                            "  compact STORE [DEST]     rewrite recompressed, freed space dropped\n"
                            "  gc STORE                 free objects unreachable from every root\n"
                            "\n"
                            "`cairn SUBCOMMAND --help` describes each.  stat, check, dump, backup and\n"
                            "compact to DEST read a snapshot and work while another process has STORE\n"
                            "open; gc and in-place compact need STORE to themselves.\n"
                            "\n"
                            "Exit status:\n"
                            "  0  success (check: the store is clean)\n"
                            "  1  problems found in the store (check lists them; gc and compact refuse)\n"
                            "  2  could not run: bad arguments, store missing or busy, I/O error\n"
                            "\n"
                            "A progress bar is drawn on stderr when it is a terminal.\n";

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return CMD_FAIL;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0 || strcmp(sub, "help") == 0) {
        fputs(usage, stdout);
        return CMD_OK;
    }
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } subs[] = {{"stat", cmd_stat},     {"check", cmd_check}, {"dump", cmd_dump},
                {"backup", cmd_backup}, {"gc", cmd_gc},       {"compact", cmd_compact}};
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
        if (strcmp(sub, subs[i].name) == 0) {
            optind = 1;
            return subs[i].fn(argc - 1, argv + 1);
        }
    }
    cmd_error(NULL, "unknown subcommand \"%s\"", sub);
    fputs(usage, stderr);
    return CMD_FAIL;
}
