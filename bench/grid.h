/* grid.h — `ttmerge bench`: run every method on a suite and keep the results.
 *
 * Each method runs in a forked child process: a crash or an error becomes a `failed` row and
 * the grid goes on (its rows have an empty accuracy); the child's peak RSS is that method's peak
 * memory. After every method its rows are merged into RESULTS/results.csv, leaderboard.csv and
 * timings.csv under RESULTS/.lock (bench/resdir.h: re-read, upsert, atomic rewrite), so benches
 * may share a directory and a killed bench resumes from the finished methods (unless fresh);
 * a directory holds one suite's results (another suite is refused). Ctrl-C lets the running method
 * finish, records it and stops. Besides the CSVs: models/<method>.safetensors, curves/<method>.csv
 * for the test-time learners, a copy of suite.json for the report, and timings.csv: where each
 * method's wall time went (load = merge_ctx_open: θ0 and the mapped experts with their NaN scan;
 * merge = the method's run, the `seconds` of results.csv; eval = the test-split evaluation;
 * save = writing models/<method>.safetensors; total = the child process, fork to exit) with its
 * peak RSS, plus a "(suite)" row for opening the suite once in the parent (reports/README.md).
 */
#ifndef TT_GRID_H
#define TT_GRID_H

#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"

typedef struct grid_opts {
    const char *suite_dir;
    const char *out_dir;
    const char *methods;   /* "all" or "a,b,c" (zeroshot and individual are reference rows) */
    const char *mode;      /* fine-tuning mode to merge, NULL = the suite's first */
    const char *const *sets; /* "method.key=value" overrides */
    int n_sets;
    uint64_t seed;
    int threads;
    bool fresh;            /* rerun every method; the first save starts the tables over */
    bool keep_models;      /* write models/<method>.safetensors */
    bool progress, quiet;
} grid_opts;

/* 0 when every method ran (failed methods are recorded as rows, not errors); -1 on an error
 * that stops the grid (bad suite, unwritable output). */
int grid_run(const grid_opts *o, int *n_failed, tt_err *err);

/* The methods of "all", in leaderboard-reading order. */
extern const char *const grid_all_methods[];
/* The methods whose results depend on the seed (NULL-terminated). */
extern const char *const grid_seeded_methods[];

#endif
