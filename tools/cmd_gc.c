/*
 * cmd_gc.c - `cairn gc`: free every object no root reaches (store/gc.c).
 * The store is opened normally (so it must not be open elsewhere) and
 * checked first: on a damaged store gc refuses.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"

static const char gc_usage[] = "usage: cairn gc [--dry-run] [--list] [--json] STORE\n"
                               "\n"
                               "Free every object that no root reaches through pointer fields, in one\n"
                               "transaction.  Runs the integrity check first and refuses (exit 1) if it\n"
                               "finds problems.  Needs the store to itself (exit 2 if it is open elsewhere).\n"
                               "\n"
                               "  --dry-run   report what would be freed, change nothing\n"
                               "  --list      print each unreachable object: offset, type, size\n"
                               "  --json      one JSON object instead of text (the list goes in it)\n"
                               "  --help      this text\n";

int cmd_gc(int argc, char **argv)
{
    static const struct option opts[] = {{"dry-run", no_argument, 0, 'n'},
                                         {"list", no_argument, 0, 'l'},
                                         {"json", no_argument, 0, 'j'},
                                         {"help", no_argument, 0, 'h'},
                                         {0}};
    int dry = 0, list = 0, json = 0, c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'n')
            dry = 1;
        else if (c == 'l')
            list = 1;
        else if (c == 'j')
            json = 1;
        else if (c == 'h')
            return fputs(gc_usage, stdout), CMD_OK;
        else
            return fputs(gc_usage, stderr), CMD_FAIL;
    }
    if (optind != argc - 1)
        return fputs(gc_usage, stderr), CMD_FAIL;
    const char *path = argv[optind];
    /* cairn_open would create a missing store: look first. */
    char *data;
    if (asprintf(&data, "%s/data.mdb", path) < 0)
        return CMD_FAIL;
    int exists = access(data, R_OK | W_OK) == 0;
    int err = errno;
    free(data);
    if (!exists) {
        cmd_error("gc", "%s/data.mdb: %s (not a cairn store?)", path, strerror(err));
        return CMD_FAIL;
    }
    cairn_store *s;
    int rc = cairn_open(path, NULL, &s);
    if (rc) {
        cmd_error("gc", "%s: cannot open: %s%s%s", path, cairn_strerror(rc),
                  rc == CAIRN_BUSY ? " (open in another process; gc needs it to itself)" : "",
                  rc == CAIRN_CORRUPT ? " (run cairn check)" : "");
        return cmd_exit_for(rc);
    }
    cairn_check_report r;
    rc = cairn_check(s, &r);
    if (rc) {
        if (rc == CAIRN_CORRUPT)
            cmd_error("gc", "%s: refusing: the check found %llu problems, first: %s", path,
                      (unsigned long long)r.problems, r.first_problem);
        else
            cmd_error("gc", "%s: the check could not run: %s", path, cairn_strerror(rc));
        cairn_close(s);
        return cmd_exit_for(rc);
    }
    if (json) {
        printf("{\"path\":");
        json_string(stdout, path);
        printf(",\"unreachable\":[");
    }
    char msg[600];
    struct gc_report g;
    struct progress pr;
    progress_begin(&pr, "mark");
    struct inspect_hooks hooks = progress_hooks(&pr);
    rc = gc_store(s, dry, &g, &hooks, msg, sizeof msg);
    progress_end(&pr);
    for (size_t i = 0; list && i < g.n_unreachable; i++) {
        const struct gc_object *o = &g.unreachable[i];
        if (json) {
            printf("%s{\"offset\":%llu,\"type\":", i ? "," : "", (unsigned long long)o->off);
            if (o->type)
                json_string(stdout, o->type);
            else
                printf("null");
            printf(",\"size\":%llu}", (unsigned long long)o->bytes);
        } else {
            printf("unreachable %#llx %s %llu\n", (unsigned long long)o->off, o->type ? o->type : "?",
                   (unsigned long long)o->bytes);
        }
    }
    if (rc) {
        cmd_error("gc", "%s: %s", path, msg);
        cairn_close(s);
        gc_report_free(&g);
        return CMD_FAIL;
    }
    rc = cairn_close(s);
    if (rc)
        cmd_error("gc", "%s: closing (checkpoint): %s; the log holds the change", path, cairn_strerror(rc));
    char b1[32], b2[32];
    if (json)
        printf("],\"dry_run\":%s,\"reachable_objects\":%llu,\"reachable_bytes\":%llu,\"unreachable_objects\":%zu,"
               "\"unreachable_bytes\":%llu}\n",
               dry ? "true" : "false", (unsigned long long)g.reachable_objects, (unsigned long long)g.reachable_bytes,
               g.n_unreachable, (unsigned long long)g.unreachable_bytes);
    else
        printf("%s: %llu objects reachable (%s); %zu unreachable (%s) %s\n", path,
               (unsigned long long)g.reachable_objects, human_bytes(g.reachable_bytes, b1), g.n_unreachable,
               human_bytes(g.unreachable_bytes, b2), dry ? "would be freed (dry run)" : "freed");
    gc_report_free(&g);
    return CMD_OK;
}
