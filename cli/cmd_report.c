/* cmd_report.c — `ttmerge report RESULTS_DIR`: write RESULTS_DIR/report.md and a
 * self-contained RESULTS_DIR/report.html from RESULTS_DIR/results.csv (+ curves/, suite.json
 * when present); see reports/report.h. Exit 2 on bad usage or a malformed input file. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "reports/report.h"

#define MAX_ARGS 256

/* cli_parse takes options only: take the one positional argument out first (skipping the
 * values of options that take one, so `--threads 2 DIR` works). */
static int split_positional(const cli_opt *opts, int argc, char **argv, char **rest, int *n_rest, const char **pos) {
    *n_rest = 0;
    *pos = NULL;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (*n_rest >= MAX_ARGS) return cli_error("report", "too many arguments");
        if (!strncmp(a, "--", 2) && a[2]) {
            rest[(*n_rest)++] = argv[i];
            if (strchr(a, '=')) continue;
            for (const cli_opt *o = opts; o->name; o++)
                if (!strcmp(o->name, a + 2) && o->arg && i + 1 < argc) {
                    if (*n_rest >= MAX_ARGS) return cli_error("report", "too many arguments");
                    rest[(*n_rest)++] = argv[++i];
                    break;
                }
        } else if (!strcmp(a, "-h")) {
            rest[(*n_rest)++] = argv[i];
        } else if (*pos) {
            return cli_error("report", "unexpected argument '%s' (one RESULTS_DIR; see --help)", a);
        } else {
            *pos = a;
        }
    }
    return 0;
}

int cmd_report(int argc, char **argv) {
    cli_common common = {0};
    cli_opt opts[] = {CLI_COMMON(&common), {0}};
    char *rest[MAX_ARGS];
    int n_rest;
    const char *dir;
    if (split_positional(opts, argc, argv, rest, &n_rest, &dir)) return 2;
    int rc = cli_parse("report",
                       "ttmerge report RESULTS_DIR: read RESULTS_DIR/results.csv (and curves/<method>.csv, suite.json\n"
                       "when present) and write RESULTS_DIR/report.md and a self-contained RESULTS_DIR/report.html\n"
                       "(tables and inline SVG charts; no scripts, no network).",
                       opts, n_rest, rest);
    if (rc) return rc > 0 ? 0 : 2;
    if (!dir) return cli_error("report", "missing RESULTS_DIR (see --help)");
    tt_err e = {0};
    report_opts ro = {.warn = stderr};
    if (report_write(dir, &ro, &e)) {
        fprintf(stderr, "ttmerge report: %s\n", e.msg);
        return tt_exit_status(&e);
    }
    if (!common.quiet) printf("wrote %s/report.md and %s/report.html\n", dir, dir);
    return 0;
}
