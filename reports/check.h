/* check.h — golden regression check: compare a results table with a golden one (`ttmerge check`).
 *
 * For every ok row of the golden (suite × method × task) the results must hold an ok row whose
 * accuracy is within tol accuracy points. Findings:
 *   drift   |got - golden| > tol                                  -> failure
 *   missing the golden's row is not in the results                 -> failure
 *   failed  a method with a failed row in the results (unless the golden records that same
 *           row as failed too: a known failure is skipped, not compared)         -> failure
 *   extra   a results row the golden does not have                 -> reported, not a failure
 *   average per golden method: mean accuracy over the golden's ok tasks vs the results' mean
 *           over the same tasks; beyond tol -> failure ("n/a" when a task is missing/failed).
 *
 *   check_report r = {0};
 *   if (check_compare(&golden, &results, 1.0, &r, &e)) ...;          // only fails on OOM
 *   check_print(stdout, &r, "golden.csv", "out/results.csv", true);
 *   int status = check_passed(&r) ? 0 : 1;
 *   check_free(&r);
 *
 * Ownership: the report borrows strings from both tables (keep them alive until check_free);
 * it owns its item array.
 */
#ifndef TT_CHECK_H
#define TT_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/err.h"
#include "reports/results.h"

typedef enum check_kind {
    CHECK_DRIFT,   /* one row beyond tol */
    CHECK_MISSING, /* one golden row absent from the results */
    CHECK_FAILED,  /* one method (suite × method) with failed rows */
    CHECK_EXTRA,   /* one results row absent from the golden */
    CHECK_AVERAGE, /* one golden method's average (always listed; .drift says beyond tol) */
} check_kind;

typedef struct check_item {
    check_kind kind;
    const char *suite, *method, *task; /* borrowed; task is NULL for CHECK_FAILED/CHECK_AVERAGE */
    double golden, got, delta;         /* accuracy points; NaN where not applicable */
    bool drift;                        /* CHECK_AVERAGE: beyond tol (or not comparable) */
    size_t n_rows;                     /* CHECK_FAILED: failed rows of the method */
    const char *error;                 /* CHECK_FAILED: first failed row's message (borrowed) */
    double tol;                        /* CHECK_DRIFT / CHECK_AVERAGE: the tolerance applied (points) */
} check_item;

typedef struct check_report {
    double tol;
    double k; /* > 0: tolerances were k standard errors (check_compare_auto), tol unused */
    check_item *items; /* [n], grouped by kind in the order above */
    size_t n, cap;
    size_t golden_rows, results_rows;
    size_t compared;       /* golden ok rows looked for */
    size_t within;         /* ... found ok and within tol */
    size_t drifted, missing, failed_methods, extra, averages, averages_drifted;
    size_t known_failures; /* golden rows that are failed themselves (not compared) */
} check_report;

/* Fill *out (zeroed first). Fails only when out of memory. tol must be >= 0. */
int check_compare(const results_table *golden, const results_table *results, double tol, check_report *out, tt_err *err);

/* Tolerances that know the noise (`ttmerge check --tol auto`): a row may move by
 * k · sqrt(2) · sqrt(p (100 − p) / n) points — k standard errors of the difference of two
 * independent evaluations on n test examples at the golden's accuracy p — and a method's average
 * by sqrt(sum of its rows' tolerances²) / tasks. count returns the test examples of a suite's
 * task (0 = unknown: such a row cannot pass). */
typedef struct check_noise {
    double k;
    uint32_t (*count)(void *ctx, const char *suite, const char *task);
    void *ctx;
} check_noise;

/* check_compare with per-row tolerances from noise (NULL: the fixed tol). */
int check_compare_auto(const results_table *golden, const results_table *results, double tol, const check_noise *noise,
                       check_report *out, tt_err *err);

/* True when no suite of the golden appears in the results (a golden for another suite: nothing
 * to compare). The suite names of each table, comma-separated, go to gs / rs (truncated to cap). */
bool check_suites_disjoint(const results_table *golden, const results_table *results, char *gs, char *rs, size_t cap);

/* No drift, nothing missing, no failed method, no drifting average. */
bool check_passed(const check_report *r);

/* Human-readable tables and a final PASS/FAIL line. verbose=false prints only the problems
 * and the verdict. */
void check_print(FILE *fp, const check_report *r, const char *golden_path, const char *results_path, bool verbose);

void check_free(check_report *r);

#endif
