/* cmd_check.c — `ttmerge check --golden G.csv --results R.csv [--tol POINTS]`: golden
 * regression check of a results.csv (reports/check.h). Exit 0 when every golden row is present,
 * ok and within tol accuracy points (default 1.0) and so is every method average; 1 on drift,
 * a missing row or a failed method; 2 on bad usage, an unreadable/malformed file, or a golden
 * whose suites the results do not hold at all (one line: the two are for different suites). */
#include <math.h>
#include <stdio.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "reports/check.h"
#include "reports/results.h"

int cmd_check(int argc, char **argv) {
    const char *golden_path = NULL, *results_path = NULL, *tol_s = "1.0";
    cli_common common = {0};
    cli_opt opts[] = {
        {"golden", "G.csv", "golden results.csv (e.g. reports/golden/SUITE.csv)", .str = &golden_path, .required = 1},
        {"results", "R.csv", "results.csv to check", .str = &results_path, .required = 1},
        {"tol", "POINTS", "allowed |accuracy - golden| in accuracy points (default 1.0)", .str = &tol_s},
        CLI_COMMON(&common),
        {0}};
    int rc = cli_parse("check",
                       "Compare a results.csv with a golden one: exit 1 when an accuracy moved beyond --tol points,\n"
                       "a golden row is missing, a method failed, or a per-method average moved; extra rows are\n"
                       "reported but allowed. --quiet prints only the problems and the verdict.",
                       opts, argc, argv);
    if (rc) return rc > 0 ? 0 : 2;
    double tol;
    if (cli_float("check", "tol", tol_s, &tol)) return 2;
    if (!(tol >= 0) || !isfinite(tol)) return cli_error("check", "--tol: '%s' must be a finite number >= 0", tol_s);
    tt_err e = {0};
    results_table golden = {0}, res = {0};
    check_report r = {0};
    int status = 2;
    if (results_read(golden_path, &golden, &e) || results_read(results_path, &res, &e)) {
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
    if (check_compare(&golden, &res, tol, &r, &e)) {
        fprintf(stderr, "ttmerge check: %s\n", e.msg);
        status = tt_exit_status(&e);
        goto done;
    }
    check_print(stdout, &r, golden_path, results_path, !common.quiet);
    fflush(stdout);
    status = check_passed(&r) ? 0 : 1;
done:
    check_free(&r);
    results_free(&golden);
    results_free(&res);
    return status;
}
