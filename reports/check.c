/* check.c — see check.h. Tables are small (goldens hold hundreds of rows), so lookups are
 * linear scans over the results; the whole check is O(golden × results). */
#include "reports/check.h"

#include <math.h>
#include <string.h>

#include "reports/stats.h"

static int push(check_report *r, check_item it, tt_err *err) {
    if (r->n == r->cap) {
        size_t ncap = r->cap ? r->cap * 2 : 32;
        check_item *ni = realloc(r->items, ncap * sizeof *ni);
        if (!ni) return tt_fail(err, TT_ENOMEM, "check: out of memory");
        r->items = ni;
        r->cap = ncap;
    }
    r->items[r->n++] = it;
    return 0;
}

static bool same_method(const results_row *a, const results_row *b) {
    return !strcmp(a->suite, b->suite) && !strcmp(a->method, b->method);
}

/* True when row i is the first row of its suite × method in t. */
static bool first_of_method(const results_table *t, size_t i) {
    for (size_t j = 0; j < i; j++)
        if (same_method(&t->rows[j], &t->rows[i])) return false;
    return true;
}

static bool is_average(const results_row *g) { return !strcmp(g->task, "average"); }

/* The results' mean accuracy over every task of g's suite × method: NaN when the method is
 * absent or a row failed. *n_tasks = its rows. */
static double results_average(const results_table *res, const results_row *g, size_t *n_tasks) {
    double sum = 0;
    size_t n = 0;
    bool ok = true;
    for (size_t j = 0; j < res->n; j++) {
        const results_row *q = &res->rows[j];
        if (!same_method(q, g)) continue;
        n++;
        if (q->status != RESULTS_OK) ok = false;
        else sum += q->accuracy;
    }
    *n_tasks = n;
    return n && ok ? sum / (double)n : NAN;
}

int check_compare(const results_table *golden, const results_table *res, double tol, check_report *out, tt_err *err) {
    return check_compare_auto(golden, res, tol, NULL, out, err);
}

/* The allowed move of one golden row: tol, or k standard errors of a two-sample difference. */
static double row_tol(const check_report *r, const check_noise *noise, const results_row *g) {
    if (!noise) return r->tol;
    uint32_t n = noise->count(noise->ctx, g->suite, g->task);
    return n ? noise->k * M_SQRT2 * stats_binomial_se(g->accuracy, n) : NAN;
}

int check_compare_auto(const results_table *golden, const results_table *res, double tol, const check_noise *noise,
                       check_report *out, tt_err *err) {
    memset(out, 0, sizeof *out);
    out->tol = tol;
    out->k = noise ? noise->k : 0;
    out->golden_rows = golden->n;
    out->results_rows = res->n;
    const double nan = NAN;

    /* drift and missing, in golden order */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < golden->n; i++) {
            const results_row *g = &golden->rows[i];
            if (g->status != RESULTS_OK) {
                if (pass == 0) out->known_failures++;
                continue;
            }
            if (is_average(g)) { /* a published mean: the results' mean over the suite's tasks */
                if (pass == 1) continue;
                size_t n_tasks;
                double ra = results_average(res, g, &n_tasks), d = ra - g->accuracy;
                bool drift = !(fabs(d) <= tol);
                out->averages++;
                if (drift) out->averages_drifted++;
                if (push(out, (check_item){CHECK_AVERAGE, g->suite, g->method, NULL, g->accuracy, ra, d, drift, n_tasks, NULL, tol}, err))
                    goto fail;
                continue;
            }
            long k = results_find(res, g->suite, g->method, g->task);
            if (pass == 0) {
                out->compared++;
                if (k < 0 || res->rows[k].status != RESULTS_OK) continue;
                double d = res->rows[k].accuracy - g->accuracy, rt = row_tol(out, noise, g);
                if (!(fabs(d) <= rt)) { /* an unknown count (NaN) cannot pass */
                    out->drifted++;
                    if (push(out, (check_item){CHECK_DRIFT, g->suite, g->method, g->task, g->accuracy, res->rows[k].accuracy, d, true, 0, NULL, rt}, err)) goto fail;
                } else {
                    out->within++;
                }
            } else if (k < 0) {
                out->missing++;
                if (push(out, (check_item){CHECK_MISSING, g->suite, g->method, g->task, g->accuracy, nan, nan, true, 0, NULL, nan}, err)) goto fail;
            }
        }
    }
    /* failed methods, in results order; a row the golden records as failed is a known failure */
    for (size_t i = 0; i < res->n; i++) {
        const results_row *r = &res->rows[i];
        if (!first_of_method(res, i)) continue;
        size_t n_failed = 0;
        const char *first_error = NULL;
        for (size_t j = i; j < res->n; j++) {
            const results_row *q = &res->rows[j];
            if (!same_method(q, r) || q->status != RESULTS_FAILED) continue;
            long gk = results_find(golden, q->suite, q->method, q->task);
            if (gk >= 0 && golden->rows[gk].status == RESULTS_FAILED) continue;
            if (!n_failed++) first_error = q->error;
        }
        if (n_failed) {
            out->failed_methods++;
            if (push(out, (check_item){CHECK_FAILED, r->suite, r->method, NULL, nan, nan, nan, true, n_failed, first_error, nan}, err)) goto fail;
        }
    }
    /* extra rows */
    for (size_t i = 0; i < res->n; i++) {
        const results_row *r = &res->rows[i];
        if (results_find(golden, r->suite, r->method, r->task) >= 0) continue;
        out->extra++;
        if (push(out, (check_item){CHECK_EXTRA, r->suite, r->method, r->task, nan, r->status == RESULTS_OK ? r->accuracy : nan, nan, false, 0, NULL, nan}, err)) goto fail;
    }
    /* per-method averages over the golden's ok tasks */
    for (size_t i = 0; i < golden->n; i++) {
        const results_row *g = &golden->rows[i];
        if (!first_of_method(golden, i)) continue;
        double sg = 0, sr = 0, tol2 = 0;
        size_t n = 0;
        bool comparable = true;
        for (size_t j = i; j < golden->n; j++) {
            const results_row *q = &golden->rows[j];
            if (!same_method(q, g) || q->status != RESULTS_OK || is_average(q)) continue;
            long k = results_find(res, q->suite, q->method, q->task);
            sg += q->accuracy;
            double rt = row_tol(out, noise, q);
            tol2 += rt * rt;
            n++;
            if (k < 0 || res->rows[k].status != RESULTS_OK) comparable = false;
            else sr += res->rows[k].accuracy;
        }
        if (!n) continue;
        /* auto: the average of independent tasks has sqrt(sum se^2) / n as its standard error */
        double ga = sg / (double)n, ra = comparable ? sr / (double)n : nan, d = ra - ga;
        double at = noise ? sqrt(tol2) / (double)n : tol;
        bool drift = !comparable || !(fabs(d) <= at);
        out->averages++;
        if (drift) out->averages_drifted++;
        if (push(out, (check_item){CHECK_AVERAGE, g->suite, g->method, NULL, ga, ra, d, drift, n, NULL, at}, err)) goto fail;
    }
    return 0;
fail:
    check_free(out);
    return -1;
}

/* The distinct suite names of t, comma-separated, into buf (cap bytes). */
static void suite_names(const results_table *t, char *buf, size_t cap) {
    size_t len = 0;
    buf[0] = 0;
    for (size_t i = 0; i < t->n; i++) {
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++) seen = !strcmp(t->rows[j].suite, t->rows[i].suite);
        if (seen) continue;
        int w = snprintf(buf + len, cap - len, "%s%s", len ? ", " : "", t->rows[i].suite);
        if (w < 0 || (size_t)w >= cap - len) return; /* truncated: enough to name them */
        len += (size_t)w;
    }
}

bool check_suites_disjoint(const results_table *golden, const results_table *results, char *gs, char *rs, size_t cap) {
    suite_names(golden, gs, cap);
    suite_names(results, rs, cap);
    for (size_t i = 0; i < golden->n; i++)
        for (size_t j = 0; j < results->n; j++)
            if (!strcmp(golden->rows[i].suite, results->rows[j].suite)) return false;
    return true;
}

bool check_passed(const check_report *r) {
    return r->drifted == 0 && r->missing == 0 && r->failed_methods == 0 && r->averages_drifted == 0;
}

void check_free(check_report *r) {
    if (!r) return;
    free(r->items);
    memset(r, 0, sizeof *r);
}

/* ---- printing ---------------------------------------------------------------------------- */

static int maxw(const check_report *r, check_kind kind, int which, int floor_w) {
    size_t w = (size_t)floor_w;
    for (size_t i = 0; i < r->n; i++) {
        const check_item *it = &r->items[i];
        if (it->kind != kind) continue;
        const char *s = which == 0 ? it->suite : which == 1 ? it->method : it->task;
        if (s && strlen(s) > w) w = strlen(s);
    }
    return w > 40 ? 40 : (int)w;
}

static void num(char *b, size_t n, double v, bool sign) {
    if (isnan(v)) snprintf(b, n, "n/a");
    else snprintf(b, n, sign ? "%+.4f" : "%.4f", v);
}

static void print_kind(FILE *fp, const check_report *r, check_kind kind, const char *title, size_t count) {
    if (!count) return;
    int ws = maxw(r, kind, 0, 5), wm = maxw(r, kind, 1, 6), wt = maxw(r, kind, 2, 4);
    fprintf(fp, "\n%s (%zu):\n", title, count);
    switch (kind) {
    case CHECK_DRIFT:
    case CHECK_MISSING:
        fprintf(fp, "  %-*s  %-*s  %-*s  %10s  %10s  %10s%s\n", ws, "suite", wm, "method", wt, "task", "golden", "got", "delta",
                r->k > 0 && kind == CHECK_DRIFT ? "         tol" : "");
        break;
    case CHECK_EXTRA: fprintf(fp, "  %-*s  %-*s  %-*s  %10s\n", ws, "suite", wm, "method", wt, "task", "accuracy"); break;
    case CHECK_FAILED: fprintf(fp, "  %-*s  %-*s  %6s  %s\n", ws, "suite", wm, "method", "rows", "first error"); break;
    case CHECK_AVERAGE:
        fprintf(fp, "  %-*s  %-*s  %6s  %10s  %10s  %10s%s\n", ws, "suite", wm, "method", "tasks", "golden", "got", "delta",
                r->k > 0 ? "         tol" : "");
        break;
    }
    for (size_t i = 0; i < r->n; i++) {
        const check_item *it = &r->items[i];
        if (it->kind != kind) continue;
        char g[32], o[32], d[32], tl[32] = "";
        if (r->k > 0 && (kind == CHECK_DRIFT || kind == CHECK_AVERAGE)) {
            tl[0] = ' ', tl[1] = ' ';
            num(tl + 2, sizeof tl - 2, it->tol, false);
        }
        num(g, sizeof g, it->golden, false);
        num(o, sizeof o, it->got, false);
        num(d, sizeof d, it->delta, true);
        switch (kind) {
        case CHECK_DRIFT:
        case CHECK_MISSING:
            fprintf(fp, "  %-*.40s  %-*.40s  %-*.40s  %10s  %10s  %10s%10s\n", ws, it->suite, wm, it->method, wt, it->task, g,
                    kind == CHECK_MISSING ? "missing" : o, d, tl);
            break;
        case CHECK_EXTRA: fprintf(fp, "  %-*.40s  %-*.40s  %-*.40s  %10s\n", ws, it->suite, wm, it->method, wt, it->task, o); break;
        case CHECK_FAILED:
            fprintf(fp, "  %-*.40s  %-*.40s  %6zu  %.200s\n", ws, it->suite, wm, it->method, it->n_rows,
                    it->error && *it->error ? it->error : "(no message)");
            break;
        case CHECK_AVERAGE:
            fprintf(fp, "  %-*.40s  %-*.40s  %6zu  %10s  %10s  %10s%10s%s\n", ws, it->suite, wm, it->method, it->n_rows, g, o, d,
                    tl, it->drift ? (isnan(it->got) ? "  NOT COMPARABLE" : "  DRIFT") : "");
            break;
        }
    }
}

void check_print(FILE *fp, const check_report *r, const char *golden_path, const char *results_path, bool verbose) {
    char tol_text[160];
    if (r->k > 0)
        snprintf(tol_text, sizeof tol_text, "%g standard errors of a two-sample difference (sqrt(2) x the row's binomial SE)", r->k);
    else
        snprintf(tol_text, sizeof tol_text, "%.2f points", r->tol);
    if (verbose)
        fprintf(fp, "golden  %s (%zu rows)\nresults %s (%zu rows)\ntolerance %s%s\n", golden_path, r->golden_rows,
                results_path, r->results_rows, tol_text, r->k > 0 ? "" : " of accuracy");
    char title[224];
    snprintf(title, sizeof title, "accuracy moved by more than %s", tol_text);
    print_kind(fp, r, CHECK_DRIFT, title, r->drifted);
    print_kind(fp, r, CHECK_MISSING, "golden rows missing from the results", r->missing);
    print_kind(fp, r, CHECK_FAILED, "methods with failed rows", r->failed_methods);
    if (verbose) print_kind(fp, r, CHECK_EXTRA, "rows not in the golden (reported, not a failure)", r->extra);
    if (verbose || r->averages_drifted)
        print_kind(fp, r, CHECK_AVERAGE, "per-method average accuracy over the golden's tasks", r->averages);
    if (verbose && r->known_failures)
        fprintf(fp, "\n%zu golden row(s) record a failed method: not compared\n", r->known_failures);
    if (check_passed(r)) {
        fprintf(fp, "\nPASS: %zu rows and %zu method averages within %s", r->within, r->averages, tol_text);
        if (r->extra) fprintf(fp, " (%zu extra rows)", r->extra);
        fputc('\n', fp);
    } else {
        fprintf(fp, "\nFAIL: %zu drifted, %zu missing, %zu failed method(s), %zu average(s) drifted or not comparable; %zu of %zu rows within %s\n",
                r->drifted, r->missing, r->failed_methods, r->averages_drifted, r->within, r->compared, tol_text);
    }
}
