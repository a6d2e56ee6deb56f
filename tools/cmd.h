/*
 * cmd.h - what the subcommands of the `cairn` command share: exit codes,
 * messages, the progress bar, JSON output.  One file per larger
 * subcommand (cmd_*.c); main and the small ones are in cairn_cmd.c.
 */
#ifndef CAIRN_CMD_H
#define CAIRN_CMD_H

#include <stdint.h>
#include <stdio.h>

#include "../store/inspect.h"

/* Exit codes, documented in `cairn --help` and docs/TOOLS.md. */
#define CMD_OK 0
#define CMD_PROBLEMS 1 /* the store has problems (check), gc refused on them */
#define CMD_FAIL 2     /* could not run: bad arguments, cannot open, I/O */

/* "cairn SUB: message" on stderr. */
void cmd_error(const char *sub, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Exit code for a failed snapshot_open/cairn_open: CAIRN_CORRUPT means
 * the store was found and is damaged (1), anything else could not run (2). */
int cmd_exit_for(int rc);

/* Open a snapshot of path; prints the reason on failure. */
int cmd_snapshot(const char *sub, const char *path, struct snapshot **out);

/* A progress bar on stderr when it is a terminal; nothing otherwise. */
struct progress {
    int on;
    const char *label;
    double last;
};
void progress_begin(struct progress *pr, const char *label);
void progress_show(struct progress *pr, uint64_t done, uint64_t total);
void progress_end(struct progress *pr);
/* inspect_hooks.progress for a struct progress: the pass names the bar. */
void progress_hook(void *arg, const char *pass, uint64_t done, uint64_t total);
/* The hooks that draw pr. */
struct inspect_hooks progress_hooks(struct progress *pr);

/* JSON string, quoted and escaped. */
void json_string(FILE *f, const char *s);
/* "12.3 MiB" into buf. */
const char *human_bytes(uint64_t n, char buf[32]);

/* Parse a non-negative decimal; 0 on success. */
int parse_u64(const char *s, uint64_t *out);

int cmd_dump(int argc, char **argv);
int cmd_gc(int argc, char **argv);
int cmd_backup(int argc, char **argv);
int cmd_compact(int argc, char **argv);

#endif
