/* across.h — `ttmerge report DIR1 DIR2 ... --out DIR`: one leaderboard over several results
 * directories of the same benchmark (typically suites built with `suite build --seed S`), with each
 * method's mean ± sd over the runs and, when the runs kept predictions, its paired difference with
 * the reference in each run and how many runs show it (the interval excludes 0).
 *
 * Writes, atomically: DIR/across.csv
 *   method,runs,avg_accuracy_mean,avg_accuracy_sd,<task>_mean...,ref,diff_vs_ref_mean,diff_vs_ref_sd,runs_above_ref,runs_below_ref
 * and DIR/report.md (the same table, readable). Rows by mean average accuracy, descending.
 */
#ifndef TT_ACROSS_H
#define TT_ACROSS_H

#include "core/err.h"
#include "reports/stats.h"

int across_write(const char *const *dirs, int n_dirs, const char *out_dir, const stats_opts *o, tt_err *err);

#endif
