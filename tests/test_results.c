/* test_results.c — results.csv (reports/results.c), leaderboards, `ttmerge check` and
 * `ttmerge report`.
 *
 * results: round trip of every field (params with commas, quotes and a newline) and byte-exact
 * determinism; a table of malformed files, each failing with "PATH: ... <phrase>" on one line;
 * leaderboard ranking (ties by name, incomplete after ok, failed last) and its exact CSV; upsert
 * and append semantics. check: exit codes of the real binary on crafted files (within tol 0,
 * beyond 1, missing 1, failed 1, extra rows 0, bad CSV / bad usage 2). report: a crafted
 * results dir with hostile method names and curves -> report.md lines, three <svg> in
 * report.html, everything escaped, nothing external. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fileio.h"
#include "reports/check.h"
#include "reports/results.h"
#include "tests/testutil.h"

/* ---- helpers ------------------------------------------------------------------------------ */

static char g_dir[512];


static void cleanup(void) {
    if (g_dir[0]) tu_rm_tree(g_dir);
    g_dir[0] = 0;
}

static const char *fresh_dir(const char *tag) {
    const char *d = tu_tmpdir(tag);
    cr_assert(d != NULL, "mkdtemp failed");
    snprintf(g_dir, sizeof g_dir, "%s", d);
    return g_dir;
}

static void put_file(const char *path, const char *text) {
    tt_err e = {0};
    cr_assert_eq(fio_write_all(path, text, strlen(text), &e), 0, "%s", e.msg);
}

static char *slurp(const char *path) {
    char *buf = NULL;
    size_t n = 0;
    tt_err e = {0};
    cr_assert_eq(fio_read_all(path, &buf, &n, 64 << 20, &e), 0, "%s", e.msg);
    return buf;
}

static int count_of(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

#define HEADER "suite,method,params,task,accuracy,normalized_accuracy,seconds,peak_rss_mb,git_revision,threads,seed,status,error\n"

static results_row mkrow(const char *suite, const char *method, const char *task, double acc, results_status st) {
    return (results_row){.suite = (char *)suite, .method = (char *)method, .params = "{}", .task = (char *)task,
                         .accuracy = acc, .normalized_accuracy = isnan(acc) ? NAN : acc, .seconds = 1.5, .peak_rss_mb = 100,
                         .git_revision = "abc123", .threads = 2, .seed = 7, .status = st,
                         .error = st == RESULTS_FAILED ? "boom: out of luck" : ""};
}

TestSuite(results, .fini = cleanup);
TestSuite(leaderboard, .fini = cleanup);
TestSuite(check_cli, .fini = cleanup);
TestSuite(report_cli, .fini = cleanup);

/* ---- results.csv round trip ---------------------------------------------------------------- */

Test(results, round_trip_and_bytes) {
    const char *dir = fresh_dir("results-rt");
    const char *params = "{\"lambda\":0.3,\"note\":\"a, b \\\"quoted\\\"\",\n\"x\":[1,2]}";
    results_table t = {0};
    tt_err e = {0};
    results_row r0 = mkrow("tiny", "ta", "mnist", 91.25, RESULTS_OK);
    r0.params = (char *)params;
    r0.normalized_accuracy = 95.0625;
    r0.seconds = 12.345;
    r0.peak_rss_mb = 812.5;
    r0.seed = 18446744073709551615ull;
    r0.threads = 64;
    results_row r1 = mkrow("tiny", "ta", "fashion, rotated", 0.0, RESULTS_OK);
    r1.normalized_accuracy = NAN; /* unknown -> empty cell */
    r1.seconds = NAN;
    r1.peak_rss_mb = NAN;
    results_row r2 = mkrow("tiny", "graft \"v2\"", "mnist", NAN, RESULTS_FAILED);
    r2.git_revision = "";
    cr_assert_eq(results_append_row(&t, &r0, &e), 0, "%s", e.msg);
    cr_assert_eq(results_append_row(&t, &r1, &e), 0, "%s", e.msg);
    cr_assert_eq(results_append_row(&t, &r2, &e), 0, "%s", e.msg);

    char p1[600], p2[600];
    snprintf(p1, sizeof p1, "%s/results.csv", dir);
    snprintf(p2, sizeof p2, "%s/again.csv", dir);
    cr_assert_eq(results_write(p1, &t, &e), 0, "%s", e.msg);
    char *text = slurp(p1);
    cr_assert(!strncmp(text, HEADER, strlen(HEADER)), "header: %s", text);
    cr_assert(strstr(text, "\"{\"\"lambda\"\":0.3,\"\"note\"\":\"\"a, b \\\"\"quoted\\\"\"\"\",\n\"\"x\"\":[1,2]}\"") != NULL,
              "params not quoted as expected:\n%s", text);
    cr_assert(strstr(text, ",91.2500,95.0625,12.345,812.5,\"abc123\",64,18446744073709551615,\"ok\",\"\"\n") != NULL, "%s", text);
    cr_assert(strstr(text, ",0.0000,,,,\"abc123\",2,7,\"ok\",\"\"\n") != NULL, "empty cells for NaN:\n%s", text);
    cr_assert(strstr(text, "\"graft \"\"v2\"\"\"") != NULL, "%s", text);

    results_table u = {0};
    cr_assert_eq(results_read(p1, &u, &e), 0, "%s", e.msg);
    cr_assert_eq(u.n, 3);
    cr_assert_str_eq(u.rows[0].params, params);
    cr_assert_str_eq(u.rows[0].task, "mnist");
    cr_assert_float_eq(u.rows[0].accuracy, 91.25, 1e-12);
    cr_assert_float_eq(u.rows[0].normalized_accuracy, 95.0625, 1e-12);
    cr_assert_float_eq(u.rows[0].seconds, 12.345, 1e-12);
    cr_assert_float_eq(u.rows[0].peak_rss_mb, 812.5, 1e-12);
    cr_assert_eq(u.rows[0].seed, 18446744073709551615ull);
    cr_assert_eq(u.rows[0].threads, 64);
    cr_assert_str_eq(u.rows[1].task, "fashion, rotated");
    cr_assert(isnan(u.rows[1].normalized_accuracy) && isnan(u.rows[1].seconds) && isnan(u.rows[1].peak_rss_mb));
    cr_assert_str_eq(u.rows[2].method, "graft \"v2\"");
    cr_assert_eq(u.rows[2].status, RESULTS_FAILED);
    cr_assert(isnan(u.rows[2].accuracy));
    cr_assert_str_eq(u.rows[2].error, "boom: out of luck");
    cr_assert_str_eq(u.rows[2].git_revision, "");

    /* same table -> same bytes */
    cr_assert_eq(results_write(p2, &u, &e), 0, "%s", e.msg);
    char *text2 = slurp(p2);
    cr_assert_str_eq(text, text2);
    free(text);
    free(text2);
    results_free(&t);
    results_free(&u);
    results_free(&u); /* double free is a no-op */
}

Test(results, reads_other_writers_csv) {
    /* Minimal quoting, CRLF line ends, a BOM, no final newline: all fine. */
    const char *dir = fresh_dir("results-crlf");
    char p[600];
    snprintf(p, sizeof p, "%s/r.csv", dir);
    put_file(p, "\xEF\xBB\xBFsuite,method,params,task,accuracy,normalized_accuracy,seconds,peak_rss_mb,git_revision,threads,seed,status,error\r\n"
                "tiny,ta,\"{\"\"a\"\":1}\",mnist,50,,0,,,1,0,ok,\r\n"
                "tiny,ties,{},mnist,1e1,10.5,2.5,3,rev,1,0,failed,\"it broke, badly\"");
    results_table t = {0};
    tt_err e = {0};
    cr_assert_eq(results_read(p, &t, &e), 0, "%s", e.msg);
    cr_assert_eq(t.n, 2);
    cr_assert_str_eq(t.rows[0].params, "{\"a\":1}");
    cr_assert_float_eq(t.rows[1].accuracy, 10.0, 1e-12);
    cr_assert_str_eq(t.rows[1].error, "it broke, badly");
    results_free(&t);
}

/* ---- malformed files ----------------------------------------------------------------------- */

typedef struct bad_case {
    const char *name;
    const char *text;   /* file contents (HEADER prepended when with_header) */
    int with_header;
    const char *phrase; /* must appear in the one-line error */
} bad_case;

#define ROW_OK "\"s\",\"m\",\"{}\",\"t\",50.0000,50.0000,1.000,1.0,\"r\",1,0,\"ok\",\"\"\n"

static const bad_case bad_cases[] = {
    {"empty", "", 0, "empty file"},
    {"missing column", "suite,method,params,task,accuracy,normalized_accuracy,seconds,peak_rss_mb,git_revision,threads,status,error\n", 0,
     "header: missing column 'seed'"},
    {"extra column", "suite,method,params,task,accuracy,normalized_accuracy,seconds,peak_rss_mb,git_revision,threads,seed,status,error,extra\n",
     0, "header: unexpected column 'extra' (column 14"},
    {"renamed column", "suite,method,params,task,acc,normalized_accuracy,seconds,peak_rss_mb,git_revision,threads,seed,status,error\n", 0,
     "unexpected column 'acc'"},
    {"swapped columns", "suite,method,task,params,accuracy,normalized_accuracy,seconds,peak_rss_mb,git_revision,threads,seed,status,error\n",
     0, "column 3 is 'task', expected 'params'"},
    {"duplicate column", "suite,method,params,task,accuracy,accuracy,normalized_accuracy,seconds,peak_rss_mb,git_revision,threads,seed,status,error\n",
     0, "column 'accuracy' appears twice"},
    {"too few fields", "s,m,{},t,50,50,1,1,r,1,0,ok\n", 1, "record 2: 12 fields, expected 13"},
    {"too many fields", "s,m,{},t,50,50,1,1,r,1,0,ok,,x\n", 1, "record 2: 14 fields, expected 13"},
    {"accuracy not a number", "s,m,{},t,abc,50,1,1,r,1,0,ok,\n", 1, "record 2: accuracy: 'abc' is not"},
    {"accuracy nan", "s,m,{},t,nan,50,1,1,r,1,0,ok,\n", 1, "accuracy: 'nan' is not"},
    {"accuracy inf", "s,m,{},t,50,inf,1,1,r,1,0,ok,\n", 1, "normalized_accuracy: 'inf' is not"},
    {"accuracy hex", "s,m,{},t,0x10,50,1,1,r,1,0,ok,\n", 1, "accuracy: '0x10' is not"},
    {"accuracy trailing junk", "s,m,{},t,50%,50,1,1,r,1,0,ok,\n", 1, "accuracy: '50%' is not"},
    {"dangling exponent", "s,m,{},t,5e,50,1,1,r,1,0,ok,\n", 1, "accuracy: '5e' is not"},
    {"accuracy over 100", "s,m,{},t,100.5,50,1,1,r,1,0,ok,\n", 1, "accuracy: 100.5 is outside [0, 100]"},
    {"accuracy negative", "s,m,{},t,-1,50,1,1,r,1,0,ok,\n", 1, "accuracy: -1 is outside [0, 100]"},
    {"ok without accuracy", "s,m,{},t,,50,1,1,r,1,0,ok,\n", 1, "accuracy: empty but status is ok"},
    {"failed with text accuracy", "s,m,{},t,n/a,,,,r,1,0,failed,boom\n", 1, "accuracy: 'n/a' is not"},
    {"failed with bad normalized", "s,m,{},t,,-,,,r,1,0,failed,boom\n", 1, "normalized_accuracy: '-' is not"},
    {"failed with accuracy over 100", "s,m,{},t,101,,,,r,1,0,failed,boom\n", 1, "accuracy: 101 is outside [0, 100]"},
    {"negative seconds", "s,m,{},t,50,50,-2,1,r,1,0,ok,\n", 1, "seconds: -2 is not a value in [0, 1e12]"},
    {"huge exponent", "s,m,{},t,50,50,1e999,1,r,1,0,ok,\n", 1, "seconds: '1e999' is not"},
    {"threads zero", "s,m,{},t,50,50,1,1,r,0,0,ok,\n", 1, "threads: 0 is outside [1, 65536]"},
    {"threads text", "s,m,{},t,50,50,1,1,r,two,0,ok,\n", 1, "threads: 'two' is not an integer"},
    {"seed negative", "s,m,{},t,50,50,1,1,r,1,-1,ok,\n", 1, "seed: '-1' is not an integer"},
    {"seed overflow", "s,m,{},t,50,50,1,1,r,1,18446744073709551616,ok,\n", 1, "seed: '18446744073709551616' is not an integer"},
    {"bad status", "s,m,{},t,50,50,1,1,r,1,0,okay,\n", 1, "status: 'okay' is not ok or failed"},
    {"average row", "s,m,{},average,50,50,1,1,r,1,0,ok,\n", 1, "task: 'average' is reserved"},
    {"empty method", "s,,{},t,50,50,1,1,r,1,0,ok,\n", 1, "method: empty"},
    {"newline in task", "s,m,{},\"t\nu\",50,50,1,1,r,1,0,ok,\n", 1, "task: contains a control character"},
    {"newline in error", "s,m,{},t,50,50,1,1,r,1,0,failed,\"a\nb\"\n", 1, "error: contains a control character"},
    {"duplicate row", ROW_OK ROW_OK, 1, "record 3: s/m/t appears twice (first in data row 1)"},
    {"unterminated quote", "s,m,\"{},t,50,50,1,1,r,1,0,ok,\n", 1, "malformed CSV"},
    {"quote in unquoted field", "s,m,{\"a\"},t,50,50,1,1,r,1,0,ok,\n", 1, "malformed CSV"},
    {"text after closing quote", "s,m,\"{}\"x,t,50,50,1,1,r,1,0,ok,\n", 1, "malformed CSV"},
};

Test(results, malformed_files_fail_with_one_line) {
    const char *dir = fresh_dir("results-bad");
    char p[600];
    snprintf(p, sizeof p, "%s/bad.csv", dir);
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const bad_case *bc = &bad_cases[i];
        char text[2048];
        snprintf(text, sizeof text, "%s%s", bc->with_header ? HEADER : "", bc->text);
        put_file(p, text);
        results_table t = {0};
        tt_err e = {0};
        int rc = results_read(p, &t, &e);
        cr_expect_eq(rc, -1, "case '%s': accepted", bc->name);
        if (rc != -1) continue;
        cr_expect_eq(t.n, 0, "case '%s': rows left behind", bc->name);
        cr_expect(!strncmp(e.msg, p, strlen(p)), "case '%s': message does not start with the path: %s", bc->name, e.msg);
        cr_expect(strstr(e.msg, bc->phrase) != NULL, "case '%s': message lacks '%s': %s", bc->name, bc->phrase, e.msg);
        cr_expect(strchr(e.msg, '\n') == NULL, "case '%s': message is not one line: %s", bc->name, e.msg);
        cr_expect_eq(tt_exit_status(&e), 2, "case '%s': not a bad-input error", bc->name);
    }
}

Test(results, nul_byte_and_long_field) {
    const char *dir = fresh_dir("results-nul");
    char p[600];
    snprintf(p, sizeof p, "%s/r.csv", dir);
    char text[256];
    int n = snprintf(text, sizeof text, HEADER "s,m,{},t,50,50,1,1,r,1,0,ok,\n");
    text[strlen(HEADER) + 5] = 0; /* a NUL inside params */
    tt_err e = {0};
    cr_assert_eq(fio_write_all(p, text, (size_t)n, &e), 0);
    results_table t = {0};
    cr_assert_eq(results_read(p, &t, &e), -1);
    cr_assert(strstr(e.msg, "contains a NUL byte"), "%s", e.msg);

    size_t big = RESULTS_MAX_FIELD + 10;
    char *buf = malloc(strlen(HEADER) + big + 64);
    cr_assert(buf);
    strcpy(buf, HEADER "s,m,\"");
    size_t k = strlen(buf);
    memset(buf + k, 'x', big);
    strcpy(buf + k + big, "\",t,50,50,1,1,r,1,0,ok,\n");
    put_file(p, buf);
    free(buf);
    cr_assert_eq(results_read(p, &t, &e), -1);
    cr_assert(strstr(e.msg, "record 2: field 3 is longer than 65536 bytes"), "%s", e.msg);

    char missing[600];
    snprintf(missing, sizeof missing, "%s/nope.csv", dir);
    cr_assert_eq(results_read(missing, &t, &e), -1);
    cr_assert(!strncmp(e.msg, missing, strlen(missing)), "%s", e.msg);
    cr_assert_eq(results_read(dir, &t, &e), -1); /* a directory */
}

Test(results, header_only_is_an_empty_table) {
    const char *dir = fresh_dir("results-empty");
    char p[600];
    snprintf(p, sizeof p, "%s/r.csv", dir);
    put_file(p, HEADER);
    results_table t = {0};
    tt_err e = {0};
    cr_assert_eq(results_read(p, &t, &e), 0, "%s", e.msg);
    cr_assert_eq(t.n, 0);
    results_free(&t);
}

/* ---- append / upsert --------------------------------------------------------------------- */

Test(results, append_refuses_duplicates_and_bad_rows) {
    results_table t = {0};
    tt_err e = {0};
    results_row r = mkrow("s", "ta", "mnist", 50, RESULTS_OK);
    cr_assert_eq(results_append_row(&t, &r, &e), 0, "%s", e.msg);
    cr_assert_eq(results_append_row(&t, &r, &e), -1);
    cr_assert(strstr(e.msg, "already in the table"), "%s", e.msg);
    results_row avg = mkrow("s", "ta", "average", 50, RESULTS_OK);
    cr_assert_eq(results_append_row(&t, &avg, &e), -1);
    cr_assert(strstr(e.msg, "reserved"), "%s", e.msg);
    results_row bad = mkrow("s", "ta", "fashion", 150, RESULTS_OK);
    cr_assert_eq(results_append_row(&t, &bad, &e), -1);
    results_row nl = mkrow("s", "ta\n", "fashion", 50, RESULTS_OK);
    cr_assert_eq(results_append_row(&t, &nl, &e), -1);
    cr_assert(strstr(e.msg, "method: contains a control character") && !strchr(e.msg, '\n'), "%s", e.msg);
    cr_assert_eq(t.n, 1);
    /* a crash message with a newline or tab is recorded, flattened to one line */
    results_row crash = mkrow("s", "tatr", "mnist", NAN, RESULTS_FAILED);
    crash.error = "killed\n\tby signal 9";
    cr_assert_eq(results_append_row(&t, &crash, &e), 0, "%s", e.msg);
    cr_assert_str_eq(t.rows[1].error, "killed  by signal 9");
    results_free(&t);
}

Test(results, upsert_replaces_in_place) {
    results_table t = {0};
    tt_err e = {0};
    const char *tasks[] = {"a", "b"};
    for (int i = 0; i < 2; i++) {
        results_row r = mkrow("s", "zeroshot", tasks[i], 40, RESULTS_OK);
        cr_assert_eq(results_append_row(&t, &r, &e), 0, "%s", e.msg);
    }
    for (int i = 0; i < 2; i++) {
        results_row r = mkrow("s", "ta", tasks[i], NAN, RESULTS_FAILED);
        cr_assert_eq(results_append_row(&t, &r, &e), 0, "%s", e.msg);
    }
    results_row other = mkrow("other", "ta", "a", 10, RESULTS_OK); /* same method, other suite: untouched */
    cr_assert_eq(results_append_row(&t, &other, &e), 0, "%s", e.msg);
    cr_assert_eq(t.n, 5);

    /* re-run ta on s: three tasks now, all ok; they take ta's old place */
    results_row redo[3] = {mkrow("s", "ta", "a", 70, RESULTS_OK), mkrow("s", "ta", "b", 71, RESULTS_OK), mkrow("s", "ta", "c", 72, RESULTS_OK)};
    cr_assert_eq(results_upsert(&t, redo, 3, &e), 0, "%s", e.msg);
    cr_assert_eq(t.n, 6);
    const char *want[][3] = {{"s", "zeroshot", "a"}, {"s", "zeroshot", "b"}, {"s", "ta", "a"}, {"s", "ta", "b"}, {"s", "ta", "c"}, {"other", "ta", "a"}};
    for (int i = 0; i < 6; i++) {
        cr_assert_str_eq(t.rows[i].suite, want[i][0], "row %d", i);
        cr_assert_str_eq(t.rows[i].method, want[i][1], "row %d", i);
        cr_assert_str_eq(t.rows[i].task, want[i][2], "row %d", i);
    }
    cr_assert_eq(t.rows[2].status, RESULTS_OK);
    cr_assert_float_eq(t.rows[4].accuracy, 72, 1e-12);
    cr_assert_float_eq(t.rows[5].accuracy, 10, 1e-12);

    /* a new method goes at the end */
    results_row fresh = mkrow("s", "ties", "a", 60, RESULTS_OK);
    cr_assert_eq(results_upsert(&t, &fresh, 1, &e), 0, "%s", e.msg);
    cr_assert_eq(t.n, 7);
    cr_assert_str_eq(t.rows[6].method, "ties");

    /* refused upserts leave the table unchanged */
    results_row mixed[2] = {mkrow("s", "ta", "a", 1, RESULTS_OK), mkrow("s", "ties", "b", 1, RESULTS_OK)};
    cr_assert_eq(results_upsert(&t, mixed, 2, &e), -1);
    results_row twice[2] = {mkrow("s", "ta", "a", 1, RESULTS_OK), mkrow("s", "ta", "a", 2, RESULTS_OK)};
    cr_assert_eq(results_upsert(&t, twice, 2, &e), -1);
    results_row invalid[2] = {mkrow("s", "ta", "a", 1, RESULTS_OK), mkrow("s", "ta", "b", 101, RESULTS_OK)};
    cr_assert_eq(results_upsert(&t, invalid, 2, &e), -1);
    cr_assert_eq(t.n, 7);
    cr_assert_float_eq(t.rows[2].accuracy, 70, 1e-12);
    results_free(&t);
}

/* ---- leaderboard ------------------------------------------------------------------------- */

Test(leaderboard, ranking_ties_and_failures) {
    const char *dir = fresh_dir("leaderboard");
    results_table t = {0};
    tt_err e = {0};
    struct {
        const char *method, *task;
        double acc;
        results_status st;
    } rows[] = {
        {"zeroshot", "mnist", 40, RESULTS_OK},  {"zeroshot", "fashion", 30, RESULTS_OK},
        {"beta", "mnist", 80, RESULTS_OK},      {"beta", "fashion", 70, RESULTS_OK},   /* avg 75 */
        {"alpha", "mnist", 70, RESULTS_OK},     {"alpha", "fashion", 80, RESULTS_OK},  /* avg 75: tie, alpha first */
        {"crash", "mnist", 99, RESULTS_OK},     {"crash", "fashion", NAN, RESULTS_FAILED}, /* failed: last */
        {"half", "mnist", 95, RESULTS_OK},                                              /* incomplete: after ok */
        {"best", "fashion", 90, RESULTS_OK},    {"best", "mnist", 88, RESULTS_OK},      /* avg 89 */
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        results_row r = mkrow("s", rows[i].method, rows[i].task, rows[i].acc, rows[i].st);
        r.seconds = (double)i;
        cr_assert_eq(results_append_row(&t, &r, &e), 0, "%s", e.msg);
    }
    leaderboard lb = {0};
    cr_assert_eq(results_leaderboard(&t, &lb, &e), 0, "%s", e.msg);
    cr_assert_eq(lb.n_tasks, 2);
    cr_assert_str_eq(lb.tasks[0], "mnist");
    cr_assert_str_eq(lb.tasks[1], "fashion");
    const char *order[] = {"best", "alpha", "beta", "zeroshot", "half", "crash"};
    cr_assert_eq(lb.n_rows, 6);
    for (int i = 0; i < 6; i++) {
        cr_assert_str_eq(lb.rows[i].method, order[i], "rank %d", i + 1);
        cr_assert_eq(lb.rows[i].rank, i + 1);
    }
    cr_assert_eq(lb.rows[4].status, LEADERBOARD_INCOMPLETE);
    cr_assert_eq(lb.rows[5].status, LEADERBOARD_FAILED);
    cr_assert_str_eq(lb.rows[5].error, "boom: out of luck");
    cr_assert_float_eq(lb.rows[5].avg_accuracy, 99, 1e-12); /* over its ok tasks */
    cr_assert_float_eq(lb.rows[0].seconds, 10, 1e-12);      /* max over the method's rows */

    char p[600];
    snprintf(p, sizeof p, "%s/leaderboard.csv", dir);
    cr_assert_eq(results_write_leaderboard(p, &lb, &e), 0, "%s", e.msg);
    char *text = slurp(p);
    const char *want =
        "rank,method,avg_accuracy,avg_normalized_accuracy,mnist,fashion,seconds,status\n"
        "1,\"best\",89.0000,89.0000,88.0000,90.0000,10.000,\"ok\"\n"
        "2,\"alpha\",75.0000,75.0000,70.0000,80.0000,5.000,\"ok\"\n"
        "3,\"beta\",75.0000,75.0000,80.0000,70.0000,3.000,\"ok\"\n"
        "4,\"zeroshot\",35.0000,35.0000,40.0000,30.0000,1.000,\"ok\"\n"
        "5,\"half\",95.0000,95.0000,95.0000,,8.000,\"incomplete\"\n"
        "6,\"crash\",99.0000,99.0000,99.0000,,7.000,\"failed\"\n";
    cr_assert_str_eq(text, want);
    free(text);
    results_leaderboard_free(&lb);

    /* two suites: the plain call refuses, the per-suite call works */
    results_row o = mkrow("other", "ta", "x", 10, RESULTS_OK);
    cr_assert_eq(results_append_row(&t, &o, &e), 0);
    cr_assert_eq(results_leaderboard(&t, &lb, &e), -1);
    cr_assert(strstr(e.msg, "2 suites"), "%s", e.msg);
    cr_assert_eq(results_leaderboard_for(&t, "other", &lb, &e), 0, "%s", e.msg);
    cr_assert_eq(lb.n_rows, 1);
    cr_assert_eq(lb.n_tasks, 1);
    results_leaderboard_free(&lb);
    results_free(&t);
}

Test(leaderboard, task_names_needing_quotes) {
    const char *dir = fresh_dir("leaderboard-q");
    results_table t = {0};
    tt_err e = {0};
    results_row r = mkrow("s", "m", "a,b \"c\"", 50, RESULTS_OK);
    cr_assert_eq(results_append_row(&t, &r, &e), 0);
    leaderboard lb = {0};
    cr_assert_eq(results_leaderboard(&t, &lb, &e), 0);
    char p[600];
    snprintf(p, sizeof p, "%s/lb.csv", dir);
    cr_assert_eq(results_write_leaderboard(p, &lb, &e), 0);
    char *text = slurp(p);
    cr_assert_str_eq(text, "rank,method,avg_accuracy,avg_normalized_accuracy,\"a,b \"\"c\"\"\",seconds,status\n"
                           "1,\"m\",50.0000,50.0000,50.0000,1.500,\"ok\"\n");
    free(text);
    results_leaderboard_free(&lb);
    results_free(&t);
}

/* ---- check: the library and the real binary ------------------------------------------------ */

static const char *golden_csv = HEADER
    "\"s\",\"ta\",\"{}\",\"mnist\",80.0000,90.0000,1.000,10.0,\"r\",1,0,\"ok\",\"\"\n"
    "\"s\",\"ta\",\"{}\",\"fashion\",70.0000,80.0000,1.000,10.0,\"r\",1,0,\"ok\",\"\"\n"
    "\"s\",\"ties\",\"{}\",\"mnist\",60.0000,70.0000,1.000,10.0,\"r\",1,0,\"ok\",\"\"\n"
    "\"s\",\"ties\",\"{}\",\"fashion\",50.0000,60.0000,1.000,10.0,\"r\",1,0,\"ok\",\"\"\n";

/* The golden's rows with accuracies moved by the given deltas (ta/mnist, ta/fashion, ties/mnist,
 * ties/fashion), plus optional extra text. */
static void write_results(const char *path, const double d[4], const char *extra, const char *ties_fashion_status) {
    char text[4096], last[256] = "";
    if (ties_fashion_status && !strcmp(ties_fashion_status, "failed"))
        snprintf(last, sizeof last, "\"s\",\"ties\",\"{}\",\"fashion\",,,1,10,\"r\",1,0,\"failed\",\"ties: NaN in task vector\"\n");
    else if (ties_fashion_status)
        snprintf(last, sizeof last, "\"s\",\"ties\",\"{}\",\"fashion\",%.4f,60,1,10,\"r\",1,0,\"ok\",\"\"\n", 50 + d[3]);
    snprintf(text, sizeof text,
             HEADER "\"s\",\"ta\",\"{}\",\"mnist\",%.4f,90,1,10,\"r\",1,0,\"ok\",\"\"\n"
                    "\"s\",\"ta\",\"{}\",\"fashion\",%.4f,80,1,10,\"r\",1,0,\"ok\",\"\"\n"
                    "\"s\",\"ties\",\"{}\",\"mnist\",%.4f,70,1,10,\"r\",1,0,\"ok\",\"\"\n%s%s",
             80 + d[0], 70 + d[1], 60 + d[2], last, extra ? extra : "");
    put_file(path, text);
}

static int run_check(const char *golden, const char *results, const char *extra_args, const char *out, char *err, size_t cap) {
    char cmd[3000];
    snprintf(cmd, sizeof cmd, "%s check --golden %s --results %s %s >%s", tu_ttmerge_bin(), golden, results,
             extra_args ? extra_args : "", out);
    return tu_run(cmd, err, cap);
}

Test(check_cli, exit_codes) {
    const char *dir = fresh_dir("check");
    char g[600], r[600], out[600], err[2048];
    snprintf(g, sizeof g, "%s/golden.csv", dir);
    snprintf(r, sizeof r, "%s/results.csv", dir);
    snprintf(out, sizeof out, "%s/out.txt", dir);
    put_file(g, golden_csv);

    const double zero[4] = {0, 0, 0, 0}, small[4] = {0.9, -0.99, 0.5, -1.0}, big[4] = {0, -1.5, 0, 0};
    /* identical */
    write_results(r, zero, NULL, "ok");
    cr_assert_eq(run_check(g, r, NULL, out, err, sizeof err), 0, "stderr: %s", err);
    char *o = slurp(out);
    cr_assert(strstr(o, "PASS: 4 rows and 2 method averages within 1.00 points"), "%s", o);
    free(o);
    /* within the default tolerance (|delta| <= 1.0) */
    write_results(r, small, NULL, "ok");
    cr_assert_eq(run_check(g, r, NULL, out, err, sizeof err), 0, "stderr: %s", err);
    /* beyond it: exit 1, the row printed with golden, got and delta */
    write_results(r, big, NULL, "ok");
    cr_assert_eq(run_check(g, r, NULL, out, err, sizeof err), 1, "stderr: %s", err);
    o = slurp(out);
    cr_assert(strstr(o, "accuracy moved by more than 1.00 points (1)"), "%s", o);
    cr_assert(strstr(o, "fashion     70.0000     68.5000     -1.5000"), "%s", o);
    cr_assert(strstr(o, "FAIL: 1 drifted"), "%s", o);
    free(o);
    /* ... but within a wider --tol */
    cr_assert_eq(run_check(g, r, "--tol 2", out, err, sizeof err), 0, "stderr: %s", err);
    cr_assert_eq(run_check(g, r, "--tol=1.5", out, err, sizeof err), 0, "stderr: %s", err);
    /* a missing row */
    write_results(r, zero, NULL, NULL);
    cr_assert_eq(run_check(g, r, NULL, out, err, sizeof err), 1, "stderr: %s", err);
    o = slurp(out);
    cr_assert(strstr(o, "golden rows missing from the results (1)"), "%s", o);
    cr_assert(strstr(o, "missing"), "%s", o);
    free(o);
    /* a failed method */
    write_results(r, zero, NULL, "failed");
    cr_assert_eq(run_check(g, r, NULL, out, err, sizeof err), 1, "stderr: %s", err);
    o = slurp(out);
    cr_assert(strstr(o, "methods with failed rows (1)"), "%s", o);
    cr_assert(strstr(o, "ties: NaN in task vector"), "%s", o);
    free(o);
    /* extra rows: reported, not a failure */
    write_results(r, zero, "\"s\",\"dare\",\"{}\",\"mnist\",55,60,1,10,\"r\",1,0,\"ok\",\"\"\n", "ok");
    cr_assert_eq(run_check(g, r, NULL, out, err, sizeof err), 0, "stderr: %s", err);
    o = slurp(out);
    cr_assert(strstr(o, "rows not in the golden (reported, not a failure) (1)"), "%s", o);
    cr_assert(strstr(o, "(1 extra rows)"), "%s", o);
    free(o);
    /* a failed method the golden does not know is still a failure (not just an extra row) */
    write_results(r, zero, "\"s\",\"awd\",\"{}\",\"mnist\",,,1,10,\"r\",1,0,\"failed\",\"awd: diverged\"\n", "ok");
    cr_assert_eq(run_check(g, r, NULL, out, err, sizeof err), 1, "stderr: %s", err);
    o = slurp(out);
    cr_assert(strstr(o, "methods with failed rows (1)") && strstr(o, "awd: diverged"), "%s", o);
    cr_assert(strstr(o, "FAIL: 0 drifted, 0 missing, 1 failed method(s), 0 average(s)"), "%s", o);
    free(o);
    /* --quiet on a pass prints only the verdict */
    write_results(r, zero, "\"s\",\"dare\",\"{}\",\"mnist\",55,60,1,10,\"r\",1,0,\"ok\",\"\"\n", "ok");
    cr_assert_eq(run_check(g, r, "--quiet", out, err, sizeof err), 0, "stderr: %s", err);
    o = slurp(out);
    cr_assert(!strstr(o, "golden ") && strstr(o, "PASS"), "%s", o);
    free(o);
}

Test(check_cli, bad_input_is_exit_2) {
    const char *dir = fresh_dir("check-bad");
    char g[600], r[600], out[600], err[2048];
    snprintf(g, sizeof g, "%s/golden.csv", dir);
    snprintf(r, sizeof r, "%s/results.csv", dir);
    snprintf(out, sizeof out, "%s/out.txt", dir);
    put_file(g, golden_csv);
    put_file(r, HEADER "s,ta,{},mnist,80,90,1,10,r,1,0,ok,\n\"s\",\"ta\",\"{}\"oops,fashion\n");
    cr_assert_eq(run_check(g, r, NULL, out, err, sizeof err), 2);
    cr_assert(strstr(err, "ttmerge check: ") == err && strstr(err, r) && strstr(err, "malformed CSV"), "%s", err);
    cr_assert_eq(count_of(err, "\n"), 1, "not one line: %s", err);

    put_file(r, "suite,method\n");
    cr_assert_eq(run_check(g, r, NULL, out, err, sizeof err), 2);
    cr_assert(strstr(err, "missing column 'params'"), "%s", err);

    char nope[600];
    snprintf(nope, sizeof nope, "%s/nope.csv", dir);
    cr_assert_eq(run_check(g, nope, NULL, out, err, sizeof err), 2);
    cr_assert(strstr(err, nope), "%s", err);

    put_file(r, golden_csv);
    cr_assert_eq(run_check(g, r, "--tol -1", out, err, sizeof err), 2, "%s", err);
    cr_assert_eq(run_check(g, r, "--tol abc", out, err, sizeof err), 2, "%s", err);
    cr_assert_eq(run_check(g, r, "--bogus", out, err, sizeof err), 2, "%s", err);
    put_file(g, HEADER);
    cr_assert_eq(run_check(g, r, NULL, out, err, sizeof err), 2, "%s", err);
    cr_assert(strstr(err, "the golden has no rows"), "%s", err);
    char cmd[2400];
    snprintf(cmd, sizeof cmd, "%s check --results %s >%s", tu_ttmerge_bin(), r, out);
    cr_assert_eq(tu_run(cmd, err, sizeof err), 2);
    cr_assert(strstr(err, "--golden is required"), "%s", err);
}

Test(check_cli, library_findings) {
    /* A known failure in the golden is not a failure; averages compare over golden tasks only. */
    results_table g = {0}, r = {0};
    tt_err e = {0};
    results_row rows[] = {mkrow("s", "ta", "a", 80, RESULTS_OK), mkrow("s", "ta", "b", 60, RESULTS_OK),
                          mkrow("s", "bad", "a", NAN, RESULTS_FAILED)};
    for (int i = 0; i < 3; i++) cr_assert_eq(results_append_row(&g, &rows[i], &e), 0);
    results_row got[] = {mkrow("s", "ta", "a", 80.6, RESULTS_OK), mkrow("s", "ta", "b", 59.5, RESULTS_OK),
                         mkrow("s", "ta", "c", 10, RESULTS_OK), mkrow("s", "bad", "a", NAN, RESULTS_FAILED)};
    for (int i = 0; i < 4; i++) cr_assert_eq(results_append_row(&r, &got[i], &e), 0);
    check_report rep = {0};
    cr_assert_eq(check_compare(&g, &r, 1.0, &rep, &e), 0);
    cr_assert(check_passed(&rep));
    cr_assert_eq(rep.known_failures, 1);
    cr_assert_eq(rep.extra, 1);
    cr_assert_eq(rep.averages, 1);
    bool saw_avg = false;
    for (size_t i = 0; i < rep.n; i++)
        if (rep.items[i].kind == CHECK_AVERAGE) {
            saw_avg = true;
            cr_assert_float_eq(rep.items[i].golden, 70, 1e-9);
            cr_assert_float_eq(rep.items[i].got, 70.05, 1e-9); /* c (10%) is not in the golden */
        }
    cr_assert(saw_avg);
    check_free(&rep);
    cr_assert_eq(check_compare(&g, &r, 0.5, &rep, &e), 0);
    cr_assert(!check_passed(&rep));
    cr_assert_eq(rep.drifted, 1); /* a: +0.6 */
    check_free(&rep);
    results_free(&g);
    results_free(&r);
}

/* ---- report ------------------------------------------------------------------------------ */

static void make_results_dir(const char *dir, bool curves) {
    char p[700];
    snprintf(p, sizeof p, "%s/results.csv", dir);
    put_file(p, HEADER
             "\"tiny\",\"zeroshot\",\"{}\",\"mnist\",40.0000,42.0000,0.000,50.0,\"rev1\",2,0,\"ok\",\"\"\n"
             "\"tiny\",\"zeroshot\",\"{}\",\"fash<ion>\",30.0000,33.0000,0.000,50.0,\"rev1\",2,0,\"ok\",\"\"\n"
             "\"tiny\",\"individual\",\"{}\",\"mnist\",95.0000,100.0000,0.000,60.0,\"rev1\",2,0,\"ok\",\"\"\n"
             "\"tiny\",\"individual\",\"{}\",\"fash<ion>\",90.0000,100.0000,0.000,60.0,\"rev1\",2,0,\"ok\",\"\"\n"
             "\"tiny\",\"ta\",\"{\"\"lambda\"\":0.3}\",\"mnist\",80.0000,84.2105,1.250,70.0,\"rev1\",2,0,\"ok\",\"\"\n"
             "\"tiny\",\"ta\",\"{\"\"lambda\"\":0.3}\",\"fash<ion>\",70.0000,77.7778,1.250,70.0,\"rev1\",2,0,\"ok\",\"\"\n"
             "\"tiny\",\"<b>evil</b>&co\",\"{\"\"x\"\":\"\"<script>alert(1)</script>\"\"}\",\"mnist\",60.0000,63.1579,2.000,70.0,\"rev1\",2,0,\"ok\",\"\"\n"
             "\"tiny\",\"<b>evil</b>&co\",\"{}\",\"fash<ion>\",65.0000,72.2222,2.000,70.0,\"rev1\",2,0,\"ok\",\"\"\n"
             "\"tiny\",\"adamerging\",\"{\"\"steps\"\":100}\",\"mnist\",88.0000,92.6316,120.500,300.0,\"rev1\",2,0,\"ok\",\"\"\n"
             "\"tiny\",\"adamerging\",\"{\"\"steps\"\":100}\",\"fash<ion>\",82.0000,91.1111,120.500,300.0,\"rev1\",2,0,\"ok\",\"\"\n"
             "\"tiny\",\"ties\",\"{}\",\"mnist\",,,3.000,70.0,\"rev1\",2,0,\"failed\",\"ties: <NaN> in task vector\"\n"
             "\"tiny\",\"ties\",\"{}\",\"fash<ion>\",,,3.000,70.0,\"rev1\",2,0,\"failed\",\"ties: <NaN> in task vector\"\n");
    if (!curves) return;
    snprintf(p, sizeof p, "%s/curves", dir);
    cr_assert_eq(mkdir(p, 0755), 0);
    snprintf(p, sizeof p, "%s/curves/adamerging.csv", dir);
    put_file(p, "step,loss,entropy,accuracy\n0,1.9,1.9,70\n10,1.2,1.2,\n20,0.8,0.8,\n30,0.6,0.6,85\n");
}

Test(report_cli, markdown_and_html) {
    const char *dir = fresh_dir("report");
    make_results_dir(dir, true);
    char cmd[3000], err[2048], p[700];
    snprintf(cmd, sizeof cmd, "%s report %s --quiet", tu_ttmerge_bin(), dir);
    cr_assert_eq(tu_run(cmd, err, sizeof err), 0, "stderr: %s", err);

    snprintf(p, sizeof p, "%s/report.md", dir);
    char *md = slurp(p);
    cr_assert(strstr(md, "# ttmerge report: tiny\n"), "%s", md);
    cr_assert(strstr(md, "| rank | method | avg accuracy (%) | avg normalized (%) | seconds | peak RSS (MB) | status |\n"), "%s", md);
    cr_assert(strstr(md, "| 1 | individual | 92.50 | 100.00 | 0.000 | 60 | ok |\n"), "%s", md);
    cr_assert(strstr(md, "| 2 | adamerging | 85.00 | 91.87 | 120.5 | 300 | ok |\n"), "%s", md);
    cr_assert(strstr(md, "| 3 | ta | 75.00 | 80.99 | 1.250 | 70 | ok |\n"), "%s", md);
    cr_assert(strstr(md, "| 4 | &lt;b&gt;evil&lt;/b&gt;&amp;co | 62.50 | 67.69 | 2.000 | 70 | ok |\n"), "%s", md);
    cr_assert(strstr(md, "| 5 | zeroshot | 35.00 | 37.50 | 0.000 | 50 | ok |\n"), "%s", md);
    cr_assert(strstr(md, "| 6 | ties | – | – | 3.000 | 70 | failed |\n"), "%s", md);
    cr_assert(strstr(md, "| method | mnist | fash&lt;ion&gt; | average |\n"), "%s", md);
    cr_assert(strstr(md, "| adamerging | **88.00** | **82.00** | **85.00** |\n"), "%s", md);
    cr_assert(strstr(md, "Normalized accuracy = accuracy of the merged model on a task / accuracy of that task's individual"), "%s", md);
    cr_assert(strstr(md, "| adamerging | 4 | 1.9000 | 0.6000 |\n"), "%s", md);
    cr_assert(!strstr(md, "<b>") && !strstr(md, "<script"), "%s", md);
    free(md);

    snprintf(p, sizeof p, "%s/report.html", dir);
    char *html = slurp(p);
    cr_assert(!strncmp(html, "<!DOCTYPE html>", 15));
    cr_assert_eq(count_of(html, "<svg"), 3, "expected bars, scatter and curves");
    cr_assert_eq(count_of(html, "</svg>"), 3);
    cr_assert(strstr(html, "&lt;b&gt;evil&lt;/b&gt;&amp;co"), "method name not escaped");
    cr_assert(strstr(html, "fash&lt;ion&gt;"), "task name not escaped");
    cr_assert(strstr(html, "&lt;script&gt;alert(1)&lt;/script&gt;"), "params not escaped");
    cr_assert(strstr(html, "ties: &lt;NaN&gt; in task vector"), "error not escaped");
    cr_assert(!strstr(html, "<b>evil") && !strstr(html, "<script") && !strstr(html, "<ion>"), "raw text from the CSV");
    cr_assert(!strstr(html, "src=") && !strstr(html, "href=") && !strstr(html, "@import") && !strstr(html, "url("),
              "external references");
    cr_assert(strstr(html, "<polyline"), "no adaptation curve");
    cr_assert(strstr(html, "(log scale)"), "0.0 .. 120 s should give a log x axis");
    cr_assert(strstr(html, "</html>\n"));
    free(html);
}

Test(report_cli, without_curves_and_bad_inputs) {
    const char *dir = fresh_dir("report-nc");
    char cmd[3000], err[2048], p[700];
    snprintf(cmd, sizeof cmd, "%s report %s", tu_ttmerge_bin(), dir);
    cr_assert_eq(tu_run(cmd, err, sizeof err), 2, "no results.csv");
    cr_assert(strstr(err, "results.csv: cannot open"), "%s", err);

    make_results_dir(dir, false);
    snprintf(p, sizeof p, "%s/suite.json", dir);
    put_file(p, "{\"name\": \"tiny\", \"arch\": {\"width\": 32, \"layers\": 2, \"heads\": 2, \"patch_size\": 7, \"image_size\": 28, "
                "\"channels\": 1}, \"finetune_modes\": [\"full\"], \"tasks\": [{\"name\": \"mnist\", \"accuracy\": "
                "{\"zeroshot\": {\"test\": 40.5}, \"finetuned\": {\"full\": {\"test\": 95.25}}}}]}");
    snprintf(cmd, sizeof cmd, "%s report --threads 1 %s >/dev/null", tu_ttmerge_bin(), dir);
    cr_assert_eq(tu_run(cmd, err, sizeof err), 0, "stderr: %s", err);
    snprintf(p, sizeof p, "%s/report.html", dir);
    char *html = slurp(p);
    cr_assert_eq(count_of(html, "<svg"), 2, "no curves: bars and scatter only");
    cr_assert(strstr(html, "ViT: width 32, 2 layers, 2 heads, patch 7, image 28×28×1"), "suite.json not shown");
    free(html);
    snprintf(p, sizeof p, "%s/report.md", dir);
    char *md = slurp(p);
    cr_assert(strstr(md, "| mnist | 40.50 | 95.25 |\n"), "%s", md);
    free(md);

    /* a broken suite.json is a warning, not an error */
    snprintf(p, sizeof p, "%s/suite.json", dir);
    put_file(p, "{not json");
    snprintf(cmd, sizeof cmd, "%s report %s >/dev/null", tu_ttmerge_bin(), dir);
    cr_assert_eq(tu_run(cmd, err, sizeof err), 0, "stderr: %s", err);
    cr_assert(strstr(err, "warning:") && strstr(err, "suite.json"), "%s", err);

    /* a malformed curve is an error naming the file; the old report stays intact */
    snprintf(p, sizeof p, "%s/curves", dir);
    cr_assert_eq(mkdir(p, 0755), 0);
    snprintf(p, sizeof p, "%s/curves/adamerging.csv", dir);
    put_file(p, "step,loss,entropy,accuracy\n0,1.0,abc,\n");
    cr_assert_eq(tu_run(cmd, err, sizeof err), 2);
    cr_assert(strstr(err, "curves/adamerging.csv: record 2: entropy: 'abc'"), "%s", err);
    put_file(p, "step,loss,entropy\n0,1.0,1.0\n");
    cr_assert_eq(tu_run(cmd, err, sizeof err), 2);
    cr_assert(strstr(err, "header: 3 columns"), "%s", err);
    snprintf(p, sizeof p, "%s/report.md", dir);
    md = slurp(p);
    cr_assert(strstr(md, "# ttmerge report: tiny"));
    free(md);

    /* usage */
    snprintf(cmd, sizeof cmd, "%s report", tu_ttmerge_bin());
    cr_assert_eq(tu_run(cmd, err, sizeof err), 2);
    cr_assert(strstr(err, "missing RESULTS_DIR"), "%s", err);
    snprintf(cmd, sizeof cmd, "%s report %s %s", tu_ttmerge_bin(), dir, dir);
    cr_assert_eq(tu_run(cmd, err, sizeof err), 2);
    snprintf(cmd, sizeof cmd, "%s report --help >/dev/null", tu_ttmerge_bin());
    cr_assert_eq(tu_run(cmd, err, sizeof err), 0);

    /* header-only results: nothing to report */
    snprintf(p, sizeof p, "%s/results.csv", dir);
    put_file(p, HEADER);
    snprintf(cmd, sizeof cmd, "%s report %s", tu_ttmerge_bin(), dir);
    cr_assert_eq(tu_run(cmd, err, sizeof err), 2);
    cr_assert(strstr(err, "no result rows"), "%s", err);
}

Test(report_cli, two_suites_get_two_sections) {
    const char *dir = fresh_dir("report-2s");
    char p[700], cmd[3000], err[2048];
    snprintf(p, sizeof p, "%s/results.csv", dir);
    put_file(p, HEADER "a,ta,{},t1,50,,1,,r,1,0,ok,\nb,ta,{},t2,60,,1,,r,1,0,ok,\n");
    snprintf(cmd, sizeof cmd, "%s report %s --quiet", tu_ttmerge_bin(), dir);
    cr_assert_eq(tu_run(cmd, err, sizeof err), 0, "%s", err);
    snprintf(p, sizeof p, "%s/report.md", dir);
    char *md = slurp(p);
    cr_assert(strstr(md, "## Suite a\n") && strstr(md, "## Suite b\n"), "%s", md);
    free(md);
}
