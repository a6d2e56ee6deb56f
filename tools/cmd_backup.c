/*
 * cmd_backup.c - `cairn backup STORE DEST`: a consistent copy, also while
 * another process has STORE open and commits (store/backup.c says how).
 */
#include <getopt.h>
#include <string.h>

#include "cmd.h"

static const char backup_usage[] = "usage: cairn backup [--check] STORE DEST\n"
                                   "\n"
                                   "Copy STORE to the new directory DEST (missing or empty): the LMDB snapshot\n"
                                   "plus the part of the log that continues it.  Works while another process has\n"
                                   "STORE open and commits; DEST holds the state after some committed transaction.\n"
                                   "\n"
                                   "  --check   run the integrity check on DEST afterwards (exit 1 on problems)\n"
                                   "  --help    this text\n";

int cmd_backup(int argc, char **argv)
{
    static const struct option opts[] = {{"check", no_argument, 0, 'c'}, {"help", no_argument, 0, 'h'}, {0}};
    int check = 0, c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'c')
            check = 1;
        else if (c == 'h')
            return fputs(backup_usage, stdout), CMD_OK;
        else
            return fputs(backup_usage, stderr), CMD_FAIL;
    }
    if (optind != argc - 2)
        return fputs(backup_usage, stderr), CMD_FAIL;
    const char *src = argv[optind], *dest = argv[optind + 1];

    char err[600];
    struct backup_result res;
    struct progress pr;
    progress_begin(&pr, "backup");
    struct inspect_hooks hooks = progress_hooks(&pr);
    int rc = backup_store(src, dest, &hooks, &res, err, sizeof err);
    progress_end(&pr);
    if (rc) {
        cmd_error("backup", "%s", err);
        return cmd_exit_for(rc);
    }

    /* The copy must open: catalog, log header, replay. */
    struct snapshot *sn;
    int result = CMD_OK;
    rc = cmd_snapshot("backup", dest, &sn);
    if (rc)
        return cmd_exit_for(rc);
    struct snapshot_info in;
    snapshot_info(sn, &in);
    printf("%s -> %s: checkpoint LSN %llu, log %llu bytes (%llu transactions after it), %d retries\n", src, dest,
           (unsigned long long)in.ckpt_lsn, (unsigned long long)res.log_bytes, (unsigned long long)in.log_txns,
           res.retries);
    if (check) {
        cairn_check_report r;
        rc = check_snapshot(sn, &r, NULL);
        printf("%s: %s%s\n", dest, rc == 0 ? "clean" : "PROBLEMS: ", rc == 0 ? "" : r.first_problem);
        result = rc == 0 ? CMD_OK : cmd_exit_for(rc);
    }
    snapshot_close(sn);
    return result;
}
