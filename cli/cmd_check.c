/* cmd_check.c — `ttmerge check --golden G.csv --results R.csv [--tol POINTS|auto]` and
 * `ttmerge check --results R.csv --order "A>B,..."`: golden regression check of a results.csv
 * (reports/check.h), and ordering claims with evidence from the per-example predictions
 * (reports/stats.h). Exit 0 when every golden row is present, ok and within tol (default 1.0
 * points; auto: k standard errors) and so is every method average, and every claimed ordering
 * holds; 1 on drift, a missing row, a failed method or an ordering not shown; 2 on bad usage, an
 * unreadable/malformed file, or a golden whose suites the results do not hold at all. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "reports/check.h"
#include "reports/results.h"
#include "reports/stats.h"

#define CHECK_DEFAULT_K 4.0

static int check_golden(const char *golden_path, const char *results_path, const char *tol_s, const char *k_s, bool quiet) {
    double tol = 0, k = 0;
    bool auto_tol = !strcmp(tol_s, "auto");
    if (auto_tol) {
        if (cli_float("check", "k", k_s, &k)) return 2;
        if (!(k > 0) || !isfinite(k)) return cli_error("check", "--k: '%s' must be a finite number > 0", k_s);
    } else {
        if (cli_float("check", "tol", tol_s, &tol)) return 2;
        if (!(tol >= 0) || !isfinite(tol)) return cli_error("check", "--tol: '%s' must be a finite number >= 0 or auto", tol_s);
    }
    tt_err e = {0};
    results_table golden = {0}, res = {0};
    check_report r = {0};
    stats_counts counts = {0};
    int status = 2;
    if (results_read_golden(golden_path, &golden, &e) || results_read(results_path, &res, &e)) {
        fprintf(stderr, "ttmerge check: %s\n", e.msg);
        status = tt_exit_status(&e);
        goto done;
    }
    if (golden.n == 0) {
        status = cli_error("check", "%s: the golden has no rows (nothing to check against)", golden_path);
        goto done;
    }
    char gs[256], rs[256];
    if (res.n && check_suites_disjoint(&golden, &res, gs, rs, sizeof gs)) {
        status = cli_error("check", "%s is for suite %s, but %s holds suite %s: nothing to compare (use that suite's golden)",
                           golden_path, gs, results_path, rs);
        goto done;
    }
    check_noise noise = {.k = k, .count = stats_counts_get, .ctx = &counts};
    if ((auto_tol && stats_counts_load(results_path, golden_path, &counts, &e)) ||
        check_compare_auto(&golden, &res, tol, auto_tol ? &noise : NULL, &r, &e)) {
        fprintf(stderr, "ttmerge check: %s\n", e.msg);
        status = tt_exit_status(&e);
        goto done;
    }
    if (auto_tol && !quiet) printf("test counts from %s\n", counts.source);
    check_print(stdout, &r, golden_path, results_path, !quiet);
    fflush(stdout);
    status = check_passed(&r) ? 0 : 1;
done:
    stats_counts_free(&counts);
    check_free(&r);
    results_free(&golden);
    results_free(&res);
    return status;
}

static int check_order(const char *results_path, const char *claims, const char *resamples_s, const char *seed_s) {
    stats_opts so = stats_defaults();
    long resamples, seed = 0;
    if (cli_int("check", "resamples", resamples_s, 1, STATS_MAX_RESAMPLES, &resamples) ||
        (seed_s && cli_int("check", "seed", seed_s, 0, 1L << 62, &seed)))
        return 2;
    so.resamples = (int)resamples;
    so.seed = (uint64_t)seed;
    char dir[4096];
    const char *slash = strrchr(results_path, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else snprintf(dir, sizeof dir, "%.*s", slash == results_path ? 1 : (int)(slash - results_path), results_path);
    if (strcmp(slash ? slash + 1 : results_path, "results.csv"))
        return cli_error("check", "--order: --results must name a RESULTS_DIR/results.csv (the predictions are read next to it)");
    tt_err e = {0};
    bool held;
    if (stats_check_order(dir, claims, &so, stdout, &held, &e)) {
        fflush(stdout);
        fprintf(stderr, "ttmerge check: %s\n", e.msg);
        return tt_exit_status(&e);
    }
    fflush(stdout);
    return held ? 0 : 1;
}

int cmd_check(int argc, char **argv) {
    const char *golden_path = NULL, *results_path = NULL, *tol_s = "1.0", *k_s = "4", *order = NULL, *resamples_s = "1000";
    cli_common common = {0};
    cli_opt opts[] = {
        {"golden", "G.csv", "golden results.csv (e.g. reports/golden/SUITE.csv)", .str = &golden_path},
        {"results", "R.csv", "results.csv to check", .str = &results_path, .required = 1},
        {"tol", "POINTS|auto", "allowed |accuracy - golden| in points (default 1.0); auto: k standard errors per row", .str = &tol_s},
        {"k", "K", "with --tol auto: standard errors of a two-sample difference allowed (default 4)", .str = &k_s},
        {"order", "A>B,...", "claims that A's average beats B's: each holds when the paired interval excludes 0", .str = &order},
        {"resamples", "B", "with --order: bootstrap resamples (default 1000; --seed seeds them)", .str = &resamples_s},
        CLI_COMMON(&common),
        {0}};
    int rc = cli_parse("check",
                       "Compare a results.csv with a golden one: exit 1 when an accuracy moved beyond --tol points\n"
                       "(or, with --tol auto, beyond k standard errors of the row), a golden row is missing, a method\n"
                       "failed, or a per-method average moved; extra rows are reported but allowed. --order checks\n"
                       "orderings with the predictions next to R.csv (exit 1 when one is not shown). --quiet prints\n"
                       "only the problems and the verdict.",
                       opts, argc, argv);
    if (rc) return rc > 0 ? 0 : 2;
    if (!golden_path && !order) return cli_error("check", "--golden is required unless --order is given (see --help)");
    int status = 0;
    if (golden_path) status = check_golden(golden_path, results_path, tol_s, k_s, common.quiet != 0);
    if (status != 2 && order) {
        int os = check_order(results_path, order, resamples_s, common.seed);
        status = os == 2 || status == 0 ? (os > status ? os : status) : status;
    }
    return status;
}
