/* report.h — `ttmerge report RESULTS_DIR`: report.md and a self-contained report.html.
 *
 * Reads RESULTS_DIR/results.csv (required), RESULTS_DIR/curves/<method>.csv (optional, one per
 * test-time method: step,loss,entropy,accuracy) and RESULTS_DIR/suite.json (optional copy of
 * the suite manifest: name, architecture, zero-shot and fine-tuned accuracies). Writes, each
 * atomically:
 *   report.md    leaderboard, accuracy and normalized accuracy per task, failures, notes
 *   report.html  the same tables plus inline SVG charts drawn here: per-task accuracy as
 *                grouped bars, average accuracy vs seconds (log-x when the range is wide),
 *                entropy vs step per test-time method (when curves exist). Inline CSS, no
 *                script, no network; every string that came from a file is HTML-escaped.
 * A table with several suites gets one section per suite. Only files of the results
 * directory are read (reports/ reads results files only; see DESIGN.md).
 *
 *   tt_err e = {0};
 *   if (report_write("out/tiny", &e)) { fprintf(stderr, "ttmerge report: %s\n", e.msg); return tt_exit_status(&e); }
 *
 * Problems with the optional suite.json are warnings (report_opts.warn, one line each) and a
 * note in the report; a malformed results.csv or curve file is an error naming the file.
 */
#ifndef TT_REPORT_H
#define TT_REPORT_H

#include <stdio.h>

#include "core/err.h"
#include "reports/stats.h"

#define REPORT_MAX_CURVE_ROWS 1000000

typedef struct report_opts {
    FILE *warn;               /* where warnings go (NULL: nowhere) */
    const stats_opts *stats;  /* intervals from RESULTS_DIR/predictions/ (NULL: stats_defaults()) */
    const char *published;    /* a published golden (results_read_golden) shown beside ours, or NULL */
} report_opts;

/* Write DIR/report.md and DIR/report.html. opts may be NULL. */
int report_write(const char *dir, const report_opts *opts, tt_err *err);

#endif
