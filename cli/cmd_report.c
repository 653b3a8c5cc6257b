/* cmd_report.c — `ttmerge report RESULTS_DIR [--ref M --resamples B --seed S]`: write
 * RESULTS_DIR/report.md and a self-contained RESULTS_DIR/report.html from RESULTS_DIR/results.csv
 * (+ curves/, suite.json, predictions/ when present; see reports/report.h), recomputing
 * leaderboard.csv and stats.csv from predictions/. `ttmerge report DIR1 DIR2 ... --out DIR`: mean ±
 * sd over several runs (reports/across.h). Exit 2 on bad usage or a malformed input file. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "reports/across.h"
#include "reports/report.h"
#include "reports/results.h"
#include "reports/stats.h"

#define MAX_ARGS 256
#define MAX_DIRS 64

/* cli_parse takes options only: take the positional arguments out first (skipping the values of
 * options that take one, so `--threads 2 DIR` works). */
static int split_positional(const cli_opt *opts, int argc, char **argv, char **rest, int *n_rest, const char **pos, int *n_pos) {
    *n_rest = 0;
    *n_pos = 0;
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
        } else if (*n_pos >= MAX_DIRS) {
            return cli_error("report", "more than %d RESULTS_DIRs", MAX_DIRS);
        } else {
            pos[(*n_pos)++] = a;
        }
    }
    return 0;
}

/* leaderboard.csv and stats.csv again with these statistics options, when the directory has
 * predictions/ and one suite (what a bench writes). */
static int refresh_stats(const char *dir, const stats_opts *so, tt_err *e) {
    char path[4200];
    struct stat st;
    snprintf(path, sizeof path, "%s/predictions", dir);
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) return 0;
    snprintf(path, sizeof path, "%s/results.csv", dir);
    results_table t = {0};
    const char **suites = NULL;
    long ns = 0;
    int rc = results_read(path, &t, e) || (ns = results_suites(&t, &suites, e)) < 0 ? -1 : 0;
    if (!rc && ns == 1) rc = stats_dir_write(dir, &t, suites[0], so, e);
    free(suites);
    results_free(&t);
    return rc;
}

int cmd_report(int argc, char **argv) {
    cli_common common = {0};
    const char *out = NULL, *ref = "ta", *resamples_s = "1000", *published = NULL;
    cli_opt opts[] = {
        {"out", "DIR", "with several RESULTS_DIRs: where across.csv and report.md go", .str = &out},
        {"ref", "METHOD", "reference for paired differences (default ta; \"\" for none)", .str = &ref},
        {"published", "G.csv", "a published golden (reports/golden/published/RECIPE.csv): the papers' numbers beside ours",
         .str = &published},
        {"resamples", "B", "bootstrap resamples (default 1000; --seed seeds them, default 0)", .str = &resamples_s},
        CLI_COMMON(&common),
        {0}};
    char *rest[MAX_ARGS];
    const char *dirs[MAX_DIRS];
    int n_rest, n_dirs;
    if (split_positional(opts, argc, argv, rest, &n_rest, dirs, &n_dirs)) return 2;
    int rc = cli_parse("report",
                       "ttmerge report RESULTS_DIR: read RESULTS_DIR/results.csv (and curves/<method>.csv, suite.json,\n"
                       "predictions/ when present) and write RESULTS_DIR/report.md and a self-contained report.html\n"
                       "(tables and inline SVG charts; no scripts, no network); with predictions/, leaderboard.csv and\n"
                       "stats.csv are recomputed with --ref/--resamples/--seed (bootstrap intervals, paired differences).\n"
                       "ttmerge report DIR1 DIR2 ... --out DIR: mean ± sd over several runs (e.g. suite seeds) in\n"
                       "DIR/across.csv and DIR/report.md.",
                       opts, n_rest, rest);
    if (rc) return rc > 0 ? 0 : 2;
    if (!n_dirs) return cli_error("report", "missing RESULTS_DIR (see --help)");
    long resamples, seed = 0;
    if (cli_int("report", "resamples", resamples_s, 1, STATS_MAX_RESAMPLES, &resamples) ||
        (common.seed && cli_int("report", "seed", common.seed, 0, 1L << 62, &seed)))
        return 2;
    stats_opts so = stats_defaults();
    so.ref = ref;
    so.resamples = (int)resamples;
    so.seed = (uint64_t)seed;
    tt_err e = {0};
    if (n_dirs > 1 || out) {
        if (!out) return cli_error("report", "several RESULTS_DIRs need --out DIR");
        if (mkdir(out, 0777) != 0 && errno != EEXIST) return cli_error("report", "%s: cannot create: %s", out, strerror(errno));
        if (across_write(dirs, n_dirs, out, &so, &e)) {
            fprintf(stderr, "ttmerge report: %s\n", e.msg);
            return tt_exit_status(&e);
        }
        if (!common.quiet) printf("wrote %s/across.csv and %s/report.md (%d runs)\n", out, out, n_dirs);
        return 0;
    }
    report_opts ro = {.warn = stderr, .stats = &so, .published = published};
    if (refresh_stats(dirs[0], &so, &e) || report_write(dirs[0], &ro, &e)) {
        fprintf(stderr, "ttmerge report: %s\n", e.msg);
        return tt_exit_status(&e);
    }
    if (!common.quiet) printf("wrote %s/report.md and %s/report.html\n", dirs[0], dirs[0]);
    return 0;
}
