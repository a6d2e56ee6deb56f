/*
 * cmd_compact.c - `cairn compact`: rewrite a store recompressed, into DEST
 * or in place (store/compact.c says how and what a crash leaves).
 */
#include <getopt.h>
#include <string.h>

#include "cmd.h"

static const char compact_usage[] = "usage: cairn compact [--level N] [--dict-estimate] STORE [DEST]\n"
                                    "\n"
                                    "Rewrite STORE with every extent recompressed at zstd level N (default 19)\n"
                                    "into a fresh LMDB file, the log folded in.  With DEST (a new or empty\n"
                                    "directory), STORE is only read and may be open elsewhere.  Without DEST,\n"
                                    "STORE is replaced in place and must not be open anywhere (exit 2 if it is).\n"
                                    "\n"
                                    "  --level N         zstd level, 1..22 (checkpoints write level 1 unless the\n"
                                    "                    application sets compression_level)\n"
                                    "  --dict-estimate   only measure: train a zstd dictionary on half the\n"
                                    "                    extents, compress the other half with and without it,\n"
                                    "                    print the ratios.  Writes nothing.\n"
                                    "  --help            this text\n";

int cmd_compact(int argc, char **argv)
{
    static const struct option opts[] = {{"level", required_argument, 0, 'l'},
                                         {"dict-estimate", no_argument, 0, 'd'},
                                         {"help", no_argument, 0, 'h'},
                                         {0}};
    uint64_t level = 19;
    int estimate = 0, c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'l' && parse_u64(optarg, &level) == 0 && level >= 1 && level <= 22)
            continue;
        else if (c == 'd')
            estimate = 1;
        else if (c == 'h')
            return fputs(compact_usage, stdout), CMD_OK;
        else
            return fputs(compact_usage, stderr), CMD_FAIL;
    }
    int nargs = argc - optind;
    if (nargs < 1 || nargs > 2 || (estimate && nargs != 1))
        return fputs(compact_usage, stderr), CMD_FAIL;
    const char *src = argv[optind], *dest = nargs == 2 ? argv[optind + 1] : NULL;
    char err[600];
    int rc;
    if (estimate) {
        struct snapshot *sn;
        if ((rc = cmd_snapshot("compact", src, &sn)) != 0)
            return cmd_exit_for(rc);
        struct dict_estimate de;
        rc = compact_dict_estimate(sn, (int)level, &de);
        snapshot_close(sn);
        if (rc) {
            cmd_error("compact", "%s: %s", src, cairn_strerror(rc));
            return cmd_exit_for(rc);
        }
        if (de.dict_bytes == 0 && de.trained_extents < 4) {
            printf("dictionary estimate: too few non-empty extents (%zu) to train and measure\n",
                   de.trained_extents + de.measured_extents);
        } else if (de.dict_bytes == 0) {
            printf("dictionary estimate: training failed: %s\n", de.why);
        } else {
            printf("dictionary estimate (nothing written: the format has no dictionary yet)\n");
            printf("  trained on %zu extents (%zu pages), measured on %zu other extents (%.1f MiB)\n",
                   de.trained_extents, de.trained_pages, de.measured_extents, (double)de.measured_raw / 1048576);
            printf("  dictionary %zu bytes\n", de.dict_bytes);
            printf("  %-28s ratio %6.2f\n", "level 1 (checkpoint default)", de.ratio[0]);
            printf("  level %-2d                     ratio %6.2f\n", (int)level, de.ratio[1]);
            printf("  %-28s ratio %6.2f\n", "level 1 + dictionary", de.ratio[2]);
            printf("  level %-2d + dictionary        ratio %6.2f\n", (int)level, de.ratio[3]);
        }
        return CMD_OK;
    }

    struct compact_result res;
    struct progress pr;
    progress_begin(&pr, "compact");
    struct inspect_hooks hooks = progress_hooks(&pr);
    rc = compact_store(src, dest, (int)level, &hooks, &res, err, sizeof err);
    progress_end(&pr);
    if (rc) {
        cmd_error("compact", "%s", err);
        return cmd_exit_for(rc);
    }
    const char *out = dest ? dest : src;
    char b1[32], b2[32], b3[32], b4[32];
    printf("%s -> %s: %llu extents at level %llu (%llu all-zero dropped), %s raw -> %s, ratio %.2f\n", src, out,
           (unsigned long long)res.extents, (unsigned long long)level, (unsigned long long)res.zero_dropped,
           human_bytes(res.raw, b1), human_bytes(res.zbytes, b2),
           res.zbytes ? (double)res.raw / (double)res.zbytes : 0.0);
    printf("on disk %s -> %s (data.mdb + wal)\n", human_bytes(res.bytes_before, b3), human_bytes(res.bytes_after, b4));
    return CMD_OK;
}
