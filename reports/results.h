/* results.h — the results table (results.csv) and the leaderboard computed from it.
 *
 * results.csv is tidy: one row per suite × method × task, with exactly this header
 *   suite,method,params,task,accuracy,normalized_accuracy,seconds,peak_rss_mb,git_revision,threads,seed,status,error
 * (full contract in reports/README.md). Averages are never stored: task "average" is refused
 * and leaderboards compute them. Text fields are always quoted (csv_fwrite), numbers are bare
 * with fixed decimals, so the same table always gives the same bytes.
 *
 *   results_table t = {0};
 *   tt_err e = {0};
 *   if (results_read("out/results.csv", &t, &e)) { fprintf(stderr, "ttmerge: %s\n", e.msg); ... }
 *   results_row r = {.suite = "tiny", .method = "ta", .params = "{\"lambda\":0.3}", .task = "mnist",
 *                    .accuracy = 91.25, .normalized_accuracy = 95.0, .seconds = 1.5, .peak_rss_mb = 80,
 *                    .git_revision = "b970e6d", .threads = 2, .seed = 0, .status = RESULTS_OK, .error = ""};
 *   results_upsert(&t, &r, 1, &e);                // replaces every row of tiny × ta (resume)
 *   results_write("out/results.csv", &t, &e);     // atomic
 *   leaderboard lb = {0};
 *   results_leaderboard(&t, &lb, &e) || results_write_leaderboard("out/leaderboard.csv", &lb, &e);
 *   results_leaderboard_free(&lb);
 *   results_free(&t);
 *
 * Ownership: a results_table owns its rows and every string in them (results_free). Functions
 * that add rows (append, upsert) deep-copy the caller's strings; the caller keeps its own.
 * A leaderboard owns its strings and arrays (results_leaderboard_free). results_free and
 * results_leaderboard_free accept a zeroed or already freed value.
 * Reading untrusted files: header checked column by column, every number validated, at most
 * RESULTS_MAX_ROWS rows and RESULTS_MAX_FIELD bytes per field; errors are one line
 * "PATH: record N: column: problem" (record 1 is the header; a record is a line unless a
 * quoted field holds a newline).
 */
#ifndef TT_RESULTS_H
#define TT_RESULTS_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define RESULTS_NCOLS 13
#define RESULTS_MAX_ROWS 1000000
#define RESULTS_MAX_FIELD 65536                  /* bytes per field */
#define RESULTS_MAX_FILE_BYTES ((size_t)512 << 20) /* results.csv larger than this is refused */

/* The header, in order: results_columns[0] = "suite" ... [12] = "error". */
extern const char *const results_columns[RESULTS_NCOLS];

typedef enum results_status { RESULTS_OK = 0, RESULTS_FAILED = 1 } results_status;

/* One row. Numbers that may be unknown are NaN in memory and an empty cell in the file. */
typedef struct results_row {
    char *suite;                /* "tiny"; non-empty, no control characters */
    char *method;               /* "ta"; non-empty, no control characters */
    char *params;               /* JSON of the parameters used: "{\"lambda\":0.3}"; any text */
    char *task;                 /* "mnist"; non-empty, no control characters, never "average" */
    double accuracy;            /* % in [0, 100], 4 decimals in the file; required when status ok */
    double normalized_accuracy; /* % (merged / individual × 100), >= 0; NaN = unknown */
    double seconds;             /* wall time of the method's merge/adaptation, >= 0; NaN = unknown */
    double peak_rss_mb;         /* peak resident memory, >= 0; NaN = unknown */
    char *git_revision;         /* "b970e6d-dirty"; may be empty */
    int threads;                /* >= 1 */
    uint64_t seed;              /* >= 0 */
    results_status status;      /* "ok" | "failed" in the file */
    char *error;                /* "" or a one-line message */
} results_row;

typedef struct results_table {
    results_row *rows; /* [n], in file order */
    size_t n, cap;
} results_table;

/* Read PATH into *t (which must be zeroed or freed; on failure it is left empty). */
int results_read(const char *path, results_table *t, tt_err *err);

/* A golden (`ttmerge check --golden`, `report --published`): results_read, and rows whose task
 * is `average` are accepted too — a published mean over the suite's tasks, for papers that give
 * no per-task numbers (reports/golden/published/). */
int results_read_golden(const char *path, results_table *t, tt_err *err);

/* Atomically write *t to PATH (header + rows in table order). */
int results_write(const char *path, const results_table *t, tt_err *err);

/* Append a deep copy of *r. Refuses an invalid row or one whose suite × method × task is
 * already in the table (use results_upsert to replace). */
int results_append_row(results_table *t, const results_row *r, tt_err *err);

/* Replace every row of one suite × method with deep copies of rows[0..n) (all of that same
 * suite and method, distinct tasks). The new rows take the place of the first old row of that
 * method, or go at the end when the method is new — so re-running a method keeps the table's
 * order. On failure *t is unchanged. */
int results_upsert(results_table *t, const results_row *rows, size_t n, tt_err *err);

/* Index of the row with this suite × method × task, or -1 (linear scan). */
long results_find(const results_table *t, const char *suite, const char *method, const char *task);

/* Distinct suites in order of first appearance: *suites is a malloc'd array of pointers
 * borrowed from t (free only the array). Returns the count, or -1 (out of memory). */
long results_suites(const results_table *t, const char ***suites, tt_err *err);

/* "ok" / "failed". */
const char *results_status_str(results_status s);

/* Copy src into dst[cap] for an error message: control characters become '?', and a long
 * string is cut (at a UTF-8 boundary) with "..." — so an echoed field keeps the message on
 * one line. Returns dst. */
char *results_printable(char *dst, size_t cap, const char *src);

/* Parse a plain decimal (-?digits[.digits][e[+-]digits]; no spaces, hex, inf or nan) into a
 * finite double. Returns 0, or -1 when s is not one. Shared with the curve reader. */
int results_parse_decimal(const char *s, double *out);

void results_free(results_table *t);

/* ---- leaderboard ------------------------------------------------------------------------ */

typedef enum leaderboard_status {
    LEADERBOARD_OK = 0,         /* every task present and ok */
    LEADERBOARD_INCOMPLETE = 1, /* no failed row, but some task of the suite is missing */
    LEADERBOARD_FAILED = 2,     /* at least one row failed */
} leaderboard_status;

typedef struct leaderboard_row {
    int rank;                       /* 1-based, strictly increasing down the table */
    char *method;
    double avg_accuracy;            /* mean over the method's ok tasks; NaN when none */
    double avg_normalized_accuracy; /* mean over ok tasks with a known value; NaN when none */
    double *task_accuracy;          /* [n_tasks], NaN where missing or failed */
    double *task_normalized;        /* [n_tasks], NaN where missing, failed or unknown */
    double seconds;                 /* max over the method's rows; NaN when unknown */
    char *params;                   /* params of the method's first row */
    int n_ok_tasks;
    leaderboard_status status;
    char *error;                    /* first failed row's error ("" when none) */
} leaderboard_row;

typedef struct leaderboard {
    char *suite;
    char **tasks; /* [n_tasks], order of first appearance in the results */
    int n_tasks;
    leaderboard_row *rows; /* [n_rows], ranked */
    int n_rows;
} leaderboard;

/* Leaderboard of the table's only suite (an error when it holds several; an empty table
 * gives an empty leaderboard). Ranking: ok methods by average accuracy descending, then
 * incomplete ones likewise, then failed ones; ties broken by method name (strcmp). */
int results_leaderboard(const results_table *t, leaderboard *lb, tt_err *err);
/* The same for one named suite of a multi-suite table. */
int results_leaderboard_for(const results_table *t, const char *suite, leaderboard *lb, tt_err *err);

/* Atomically write leaderboard.csv:
 *   rank,method,avg_accuracy,avg_normalized_accuracy,<task...>,seconds,status */
int results_write_leaderboard(const char *path, const leaderboard *lb, tt_err *err);

/* Columns appended after `status` (reports/stats.h adds intervals and paired differences):
 * cell (row m, column c) is text[m * n_cols + c] when text and that entry are non-NULL, else
 * values[m * n_cols + c] with decimals[c] decimals (NaN: empty). Rows in the leaderboard's order. */
typedef struct leaderboard_extra {
    int n_cols;
    const char *const *names;  /* [n_cols] */
    const int *decimals;       /* [n_cols] */
    const double *values;      /* [n_rows * n_cols] */
    const char *const *text;   /* [n_rows * n_cols] or NULL */
} leaderboard_extra;

/* results_write_leaderboard plus the extra columns (x may be NULL). */
int results_write_leaderboard_ext(const char *path, const leaderboard *lb, const leaderboard_extra *x, tt_err *err);

/* "ok" / "incomplete" / "failed". */
const char *results_leaderboard_status_str(leaderboard_status s);

void results_leaderboard_free(leaderboard *lb);

#endif
