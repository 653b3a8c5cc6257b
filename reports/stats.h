/* stats.h — how much a leaderboard knows: intervals and paired comparisons from the per-example
 * predictions (reports/predictions.h), computed after the fact without re-running anything.
 *
 * Per method, per task and for the average over tasks:
 *   se            binomial standard error of the accuracy, sqrt(p (1 - p) / n) in points (the
 *                 average's: sqrt(sum se_t^2) / K, tasks being independent samples)
 *   ci_low/high   percentile interval of a bootstrap over test examples (level 95% by default):
 *                 each resample draws every task's n examples with replacement, independently
 *                 per task; the average's interval is the average of the resampled tasks
 *   diff          accuracy minus the reference method's (default `ta`), paired: both methods are
 *                 scored on the same resampled examples, so the interval is of the difference
 *   p             two-sided p-value of "no difference": per task the exact McNemar test (binomial
 *                 test on the examples exactly one of the two got right); for the average the
 *                 paired bootstrap, twice the share of resampled differences on the far side of
 *                 zero, (2 min(#<=0, #>=0) + 1) / (B + 1) capped at 1 — so p < 0.05 goes with a
 *                 95% interval that excludes 0
 * Every method is resampled with the same draws (one stream per task from the seed), so the
 * numbers are deterministic for a seed and resample count, and all pairs are paired.
 *
 *   stats_opts o = stats_defaults();           // ref "ta", 1000 resamples, seed 0, 95%
 *   stats_board b = {0};
 *   if (stats_compute(preds, n, &o, &b, &e)) ...;
 *   b.m[i].avg.ci_low ...
 *   stats_free(&b);
 *
 * For a results directory (RESULTS/predictions/<method>.bits next to results.csv), see
 * stats_dir_* below. Ownership: a stats_board owns its arrays and borrows the method and task
 * names from the predictions it was computed from (keep them alive).
 */
#ifndef TT_STATS_H
#define TT_STATS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/err.h"
#include "reports/predictions.h"
#include "reports/results.h"

#define STATS_DEFAULT_RESAMPLES 1000
#define STATS_MAX_RESAMPLES 1000000

typedef struct stats_opts {
    const char *ref; /* reference method for differences; NULL, "" or absent: none */
    int resamples;   /* bootstrap resamples B >= 1 */
    uint64_t seed;   /* bootstrap seed */
    double level;    /* interval level in (0, 1), 0.95 */
} stats_opts;

stats_opts stats_defaults(void);

typedef struct stats_cell {
    uint32_t n;                   /* examples (the average: over all tasks) */
    double acc, se, ci_low, ci_high;   /* accuracy %, its SE and interval in points */
    double diff, diff_low, diff_high;  /* vs the reference, points; NaN without one */
    double p;                          /* two-sided p-value of diff; NaN without a reference */
} stats_cell;

typedef struct stats_method {
    const char *method; /* borrowed */
    stats_cell *task;   /* [n_tasks] */
    stats_cell avg;
} stats_method;

typedef struct stats_board {
    int n_tasks, n_methods;
    const char **tasks;   /* [n_tasks], borrowed */
    stats_method *m;      /* [n_methods], in the order given */
    int ref;              /* index of the reference among m, -1 when none */
    stats_opts opts;
} stats_board;

/* ---- primitives (exposed for the tests) ---- */

/* Binomial SE of an accuracy in points: sqrt(acc (100 - acc) / n). NaN when n == 0. */
double stats_binomial_se(double acc_pct, double n);
/* Exact two-sided McNemar p-value for b and c discordant pairs: min(1, 2 P(X <= min(b, c)))
 * with X ~ Binomial(b + c, 1/2); 1 when b + c == 0. */
double stats_mcnemar_p(long b, long c);
/* Quantile q in [0, 1] of sorted v[n] (linear interpolation, numpy's default). */
double stats_quantile(const double *sorted, int n, double q);

/* Intervals and differences of n methods' predictions (same tasks, same counts, same order —
 * else an error naming the method that differs). */
int stats_compute(const predictions *p, int n, const stats_opts *o, stats_board *out, tt_err *err);
void stats_free(stats_board *b);

/* ---- a results directory ---- */

/* The leaderboard's columns added after `status` (names, for docs and tests). */
extern const char *const stats_leaderboard_columns[];

/* Load DIR/predictions/<method>.bits of every leaderboard method that has one (*n loaded, in
 * leaderboard order; a missing file is skipped, a malformed one or one that disagrees with the
 * leaderboard's accuracies is an error naming it). */
int stats_dir_load(const char *dir, const leaderboard *lb, predictions **p, int *n, tt_err *err);

/* Write DIR/leaderboard.csv (the leaderboard of `suite` with the interval columns, and the
 * across-seed columns when DIR/seeds/<S>/results.csv exist) and DIR/stats.csv (one row per method
 * × task and per method's average), both atomically. Methods without predictions get empty
 * cells. */
int stats_dir_write(const char *dir, const results_table *t, const char *suite, const stats_opts *o, tt_err *err);

/* `ttmerge check --order "A>B"`: A's average accuracy above B's with the paired interval of A − B
 * excluding 0. Prints one line per claim to fp; *held is false when any claim fails. */
int stats_check_order(const char *dir, const char *claims, const stats_opts *o, FILE *fp, bool *held, tt_err *err);

/* ---- test counts for `ttmerge check --tol auto` ---- */

typedef struct stats_counts {
    int n;
    char **suite, **task; /* [n] */
    uint32_t *count;      /* [n] test examples */
    char source[4400];    /* where they came from, for the printout */
} stats_counts;

/* The test examples of every task, from the first source that has them: the predictions files
 * next to results_path (DIR/predictions/<method>.bits), DIR/suite.json (splits.test per task), or the
 * golden's own predictions (G.csv -> G.predictions/<method>.bits). Fails (one line) when none does. */
int stats_counts_load(const char *results_path, const char *golden_path, stats_counts *c, tt_err *err);
/* For check_noise.count: 0 when unknown. */
uint32_t stats_counts_get(void *counts, const char *suite, const char *task);
void stats_counts_free(stats_counts *c);

#endif
