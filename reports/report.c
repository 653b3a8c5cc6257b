/* report.c — see report.h. Layout of this file: inputs (curves, suite.json), escaping and
 * number helpers, SVG charts (axes, bars, scatter, curves), then the Markdown and HTML writers.
 * The charts are drawn straight into the output stream; sizes are in SVG user units with a
 * viewBox, so the browser scales them to the page width. */
#include "reports/report.h"

#include <csv.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/checkpoint.h"
#include "core/fileio.h"
#include "core/version.h"
#include "reports/results.h"
#include "reports/stats.h"

#define CURVE_MAX_FILE_BYTES ((size_t)256 << 20)
#define CURVE_MAX_POINTS 800 /* points drawn per polyline (evenly thinned) */

/* ---- inputs: curves ---------------------------------------------------------------------- */

typedef struct curve {
    const char *method; /* borrowed from the results table */
    size_t n;
    double *step, *loss, *entropy, *acc; /* [n]; acc NaN where empty */
} curve;

typedef struct curve_rd {
    const char *path;
    tt_err *err;
    bool failed, header_done;
    size_t record;
    int col;
    char f[4][64]; /* fields of the record; longer numbers are rejected */
    bool too_long[4];
    curve *c;
    size_t cap;
} curve_rd;

static const char *const curve_cols[4] = {"step", "loss", "entropy", "accuracy"};

static void crd_fail(curve_rd *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void crd_fail(curve_rd *s, const char *fmt, ...) {
    if (s->failed) return;
    s->failed = true;
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    tt_fail(s->err, TT_EINPUT, "%s: %s", s->path, msg);
}

static void crd_field(void *data, size_t len, void *user) {
    curve_rd *s = user;
    int c = s->col++;
    if (s->failed || c >= 4) return;
    s->too_long[c] = len >= sizeof s->f[c] || (data && memchr(data, 0, len));
    if (s->too_long[c]) len = 0;
    if (len) memcpy(s->f[c], data, len);
    s->f[c][len] = 0;
}

static void crd_row(int term, void *user) {
    curve_rd *s = user;
    (void)term;
    int ncol = s->col;
    s->col = 0;
    size_t rec = s->record++;
    if (s->failed) return;
    if (ncol != 4) {
        if (!s->header_done) crd_fail(s, "header: %d columns, expected step,loss,entropy,accuracy", ncol);
        else crd_fail(s, "record %zu: %d fields, expected 4 (step,loss,entropy,accuracy)", rec, ncol);
        return;
    }
    if (!s->header_done) {
        for (int i = 0; i < 4; i++)
            if (s->too_long[i] || strcmp(s->f[i], curve_cols[i])) {
                char b[48];
                crd_fail(s, "header: column %d is '%s', expected '%s' (step,loss,entropy,accuracy)", i + 1,
                         s->too_long[i] ? "(too long)" : results_printable(b, sizeof b, s->f[i]), curve_cols[i]);
                return;
            }
        s->header_done = true;
        return;
    }
    if (s->c->n >= REPORT_MAX_CURVE_ROWS) {
        crd_fail(s, "more than %d rows", REPORT_MAX_CURVE_ROWS);
        return;
    }
    double v[4];
    for (int i = 0; i < 4; i++) {
        if (i == 3 && !s->too_long[i] && !s->f[i][0]) {
            v[i] = NAN;
            continue;
        }
        if (s->too_long[i] || results_parse_decimal(s->f[i], &v[i])) {
            char b[48];
            crd_fail(s, "record %zu: %s: '%s' is not a plain decimal number", rec, curve_cols[i],
                     s->too_long[i] ? "(too long)" : results_printable(b, sizeof b, s->f[i]));
            return;
        }
    }
    if (!(v[0] >= 0 && v[0] <= 1e12 && v[0] == floor(v[0]))) {
        crd_fail(s, "record %zu: step: '%s' is not an integer >= 0", rec, s->f[0]);
        return;
    }
    if (!(v[2] >= 0)) {
        crd_fail(s, "record %zu: entropy: %s is negative", rec, s->f[2]);
        return;
    }
    if (!isnan(v[3]) && !(v[3] >= 0 && v[3] <= 100)) {
        crd_fail(s, "record %zu: accuracy: %s is outside [0, 100]", rec, s->f[3]);
        return;
    }
    curve *c = s->c;
    if (c->n == s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 256;
        double *p[4] = {c->step, c->loss, c->entropy, c->acc};
        for (int i = 0; i < 4; i++) {
            double *np = realloc(p[i], ncap * sizeof *np);
            if (!np) {
                s->failed = true;
                tt_fail(s->err, TT_ENOMEM, "%s: out of memory", s->path);
                return;
            }
            p[i] = np;
            if (i == 0) c->step = np;
            else if (i == 1) c->loss = np;
            else if (i == 2) c->entropy = np;
            else c->acc = np;
        }
        s->cap = ncap;
    }
    c->step[c->n] = v[0];
    c->loss[c->n] = v[1];
    c->entropy[c->n] = v[2];
    c->acc[c->n] = v[3];
    c->n++;
}

static void curve_free(curve *c) {
    free(c->step);
    free(c->loss);
    free(c->entropy);
    free(c->acc);
    memset(c, 0, sizeof *c);
}

static int curve_read(const char *path, curve *c, tt_err *err) {
    char *buf = NULL;
    size_t n = 0;
    if (fio_read_all(path, &buf, &n, CURVE_MAX_FILE_BYTES, err)) return -1;
    curve_rd s = {.path = path, .err = err, .record = 1, .c = c};
    struct csv_parser p;
    if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL)) {
        free(buf);
        return tt_fail(err, TT_ENOMEM, "%s: out of memory", path);
    }
    if (csv_parse(&p, buf, n, crd_field, crd_row, &s) != n || csv_fini(&p, crd_field, crd_row, &s))
        crd_fail(&s, "record %zu: malformed CSV (%s)", s.record, csv_strerror(csv_error(&p)));
    csv_free(&p);
    free(buf);
    if (!s.failed && !s.header_done) crd_fail(&s, "empty file (expected the header step,loss,entropy,accuracy)");
    if (s.failed) {
        curve_free(c);
        return -1;
    }
    return 0;
}

/* A method name is used as a file name only when it is plainly one: [A-Za-z0-9._+-], not
 * starting with a dot. Other names (legal in results.csv) simply have no curve. */
static bool safe_file_name(const char *s) {
    if (!*s || *s == '.' || strlen(s) > 200) return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || strchr("._+-", *s)))
            return false;
    return true;
}

/* ---- escaping and formatting ------------------------------------------------------------- */

/* HTML/SVG text and attribute values. At most max_chars characters (UTF-8 aware), then "…". */
static void esc_n(FILE *fp, const char *s, size_t max_chars) {
    size_t chars = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p & 0xC0) != 0x80 && chars++ == max_chars) {
            fputs("&#8230;", fp);
            return;
        }
        switch (*p) {
        case '&': fputs("&amp;", fp); break;
        case '<': fputs("&lt;", fp); break;
        case '>': fputs("&gt;", fp); break;
        case '"': fputs("&quot;", fp); break;
        case '\'': fputs("&#39;", fp); break;
        default:
            if (*p < 0x20 && *p != '\n' && *p != '\t') fputc(' ', fp);
            else fputc(*p, fp);
        }
    }
}

static void esc(FILE *fp, const char *s) { esc_n(fp, s, (size_t)-1); }

/* Markdown table cell: one line, table and emphasis characters escaped, no raw HTML. */
static void md(FILE *fp, const char *s) {
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '\n' || *p == '\r' || *p == '\t') fputc(' ', fp);
        else if (*p == '<') fputs("&lt;", fp);
        else if (*p == '>') fputs("&gt;", fp);
        else if (*p == '&') fputs("&amp;", fp);
        else if (strchr("\\`*_|[]", *p)) fputc('\\', fp), fputc(*p, fp);
        else if (*p < 0x20) fputc(' ', fp);
        else fputc(*p, fp);
    }
}

static size_t utf8_len(const char *s) {
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) n += (*p & 0xC0) != 0x80;
    return n;
}

/* "12.34", or "–" for NaN. */
static const char *fmt2(char *b, size_t n, double v) {
    if (isnan(v)) snprintf(b, n, "–");
    else snprintf(b, n, "%.2f", v);
    return b;
}

static const char *fmt_seconds(char *b, size_t n, double v) {
    if (isnan(v)) snprintf(b, n, "–");
    else if (v < 10) snprintf(b, n, "%.3f", v);
    else if (v < 1000) snprintf(b, n, "%.1f", v);
    else snprintf(b, n, "%.0f", v);
    return b;
}

static bool is_reference(const char *m) { return !strcmp(m, "zeroshot") || !strcmp(m, "individual"); }

/* ---- colours ----------------------------------------------------------------------------- */

/* Tableau 10 (minus its grey) plus five more, distinguishable on white; the two reference
 * methods get greys so that the merges stand out against them. */
static const char *const palette[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
                                      "#ff9da7", "#9c755f", "#17becf", "#bcbd22", "#1f3a93", "#d4a6c8", "#8cd17d"};
enum { N_PALETTE = sizeof palette / sizeof palette[0] };

typedef struct method_info {
    const char *name;  /* borrowed */
    const char *color;
    double peak_rss;   /* max over rows; NaN unknown */
    const curve *crv;  /* NULL when no curve */
} method_info;

typedef struct ctx {
    const char *dir;
    const results_table *t;
    method_info *methods; /* every method of the table, first-appearance order */
    size_t n_methods;
    curve *curves;
    size_t n_curves;
    json_t *suite_json; /* NULL when absent or unreadable */
    char suite_note[600];
    const char **suites;
    long n_suites;
    /* intervals and paired differences (reports/stats.h) of the one suite, when RESULTS_DIR has
     * predictions/; sb.n_methods == 0 otherwise */
    predictions *preds;
    int n_preds;
    stats_board sb;
    const results_table *pub; /* report_opts.published, or NULL */
    const char *pub_path;
} ctx;

static const stats_method *stats_of(const ctx *c, const char *method) {
    for (int i = 0; i < c->sb.n_methods; i++)
        if (!strcmp(c->sb.m[i].method, method)) return &c->sb.m[i];
    return NULL;
}

/* The paired interval vs the reference excludes 0: +1 above, -1 below, 0 not shown (or no stats). */
static int significance(const ctx *c, const char *method) {
    const stats_method *sm = stats_of(c, method);
    if (!sm || c->sb.ref < 0 || !strcmp(method, c->sb.m[c->sb.ref].method)) return 0;
    return sm->avg.diff_low > 0 ? 1 : sm->avg.diff_high < 0 ? -1 : 0;
}

static const char *ref_name(const ctx *c) { return c->sb.ref >= 0 ? c->sb.m[c->sb.ref].method : NULL; }

static const method_info *method_of(const ctx *c, const char *name) {
    for (size_t i = 0; i < c->n_methods; i++)
        if (!strcmp(c->methods[i].name, name)) return &c->methods[i];
    return NULL;
}

/* ---- SVG: axes --------------------------------------------------------------------------- */

typedef struct axis {
    double lo, hi;   /* data range shown */
    bool log;        /* log10 scale (lo > 0) */
    double p0, p1;   /* pixel positions of lo and hi */
} axis;

static double ax(const axis *a, double v) {
    double t;
    if (a->log) t = (log10(v) - log10(a->lo)) / (log10(a->hi) - log10(a->lo));
    else t = (v - a->lo) / (a->hi - a->lo);
    return a->p0 + t * (a->p1 - a->p0);
}

/* 1, 2, 5 × 10^k closest above range/target. */
static double nice_step(double range, int target) {
    double raw = range / target, mag = pow(10, floor(log10(raw))), f = raw / mag;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
}

/* Widen [lo, hi] to multiples of a nice step; returns the step. */
static double nice_range(double *lo, double *hi, int target) {
    if (!(*hi > *lo)) *hi = *lo + 1;
    double step = nice_step(*hi - *lo, target);
    *lo = floor(*lo / step + 1e-9) * step;
    *hi = ceil(*hi / step - 1e-9) * step;
    return step;
}

static int decimals_for(double step) {
    int d = 0;
    while (d < 6 && fabs(step * pow(10, d) - round(step * pow(10, d))) > 1e-6) d++;
    return d;
}

static void fmt_tick(char *b, size_t n, double v, int dec) {
    if (fabs(v) < 1e-12) v = 0;
    snprintf(b, n, "%.*f", dec, v);
}

/* Horizontal grid + y tick labels for a linear axis, and the y axis title (rotated). */
static void svg_y_axis(FILE *fp, const axis *y, double step, double x0, double x1, const char *title) {
    int dec = decimals_for(step);
    for (double v = y->lo; v <= y->hi + step * 1e-6; v += step) {
        double py = ax(y, v);
        char b[32];
        fmt_tick(b, sizeof b, v, dec);
        fprintf(fp, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>\n", x0, py, x1, py);
        fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" class=\"tick\" text-anchor=\"end\">%s</text>\n", x0 - 6, py + 4, b);
    }
    double mid = (y->p0 + y->p1) / 2;
    fprintf(fp, "<text transform=\"translate(%.1f,%.1f) rotate(-90)\" class=\"axis-title\" text-anchor=\"middle\">%s</text>\n",
            x0 - 44, mid, title);
    fprintf(fp, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"axis\"/>\n", x0, y->p0, x0, y->p1);
}

/* Legend: swatches + names, wrapped into rows across [x0, x1]; returns the height used. */
static double svg_legend(FILE *fp, const ctx *c, const char *const *names, size_t n, bool lines, double x0, double x1,
                         double y0, bool draw) {
    double x = x0, y = y0 + 12, row_h = 20;
    for (size_t i = 0; i < n; i++) {
        const method_info *m = method_of(c, names[i]);
        double w = 22 + 7.0 * (double)(utf8_len(names[i]) > 28 ? 29 : utf8_len(names[i])) + 18;
        if (x + w > x1 && x > x0) {
            x = x0;
            y += row_h;
        }
        if (draw) {
            if (lines)
                fprintf(fp, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"3\"/>\n", x,
                        y - 4, x + 16, y - 4, m->color);
            else
                fprintf(fp, "<rect x=\"%.1f\" y=\"%.1f\" width=\"14\" height=\"12\" fill=\"%s\"/>\n", x, y - 11, m->color);
            fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" class=\"legend\">", x + 20, y);
            esc_n(fp, names[i], 28);
            fputs("</text>\n", fp);
        }
        x += w;
    }
    return n ? y - y0 + 10 : 0;
}

/* Vertical grid lines and labels at every step of a linear x axis. */
static void svg_x_ticks(FILE *fp, const axis *x, double step, const axis *y) {
    int dec = decimals_for(step);
    for (double v = x->lo; v <= x->hi + step * 1e-6; v += step) {
        char b[32];
        fmt_tick(b, sizeof b, v, dec);
        double px = ax(x, v);
        fprintf(fp, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>\n", px, y->p1, px, y->p0);
        fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" class=\"tick\" text-anchor=\"middle\">%s</text>\n", px, y->p0 + 18, b);
    }
}

static void svg_open(FILE *fp, double w, double h, const char *label) {
    fprintf(fp, "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %.0f %.0f\" width=\"%.0f\" height=\"%.0f\" role=\"img\" aria-label=\"",
            w, h, w, h);
    esc(fp, label);
    fputs("\">\n<rect x=\"0\" y=\"0\" width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n", fp);
}

/* ---- chart 1: per-task accuracy, grouped bars --------------------------------------------- */

static void chart_bars(FILE *fp, const ctx *c, const leaderboard *lb) {
    /* Methods drawn: all but failed ones, in first-appearance order (stable colours). */
    const char **names = malloc((size_t)(lb->n_rows ? lb->n_rows : 1) * sizeof *names);
    const leaderboard_row **rows = malloc((size_t)(lb->n_rows ? lb->n_rows : 1) * sizeof *rows);
    size_t m = 0;
    if (!names || !rows) goto done;
    for (size_t k = 0; k < c->n_methods; k++)
        for (int r = 0; r < lb->n_rows; r++)
            if (!strcmp(lb->rows[r].method, c->methods[k].name) && lb->rows[r].status != LEADERBOARD_FAILED &&
                lb->rows[r].n_ok_tasks > 0) {
                names[m] = lb->rows[r].method;
                rows[m++] = &lb->rows[r];
            }
    int groups = lb->n_tasks + 1; /* tasks, then the average */
    double left = 70, right = 20, W = 1100, group_w = (W - left - right) / groups;
    if (m && (group_w - 14) / (double)m < 3) { /* many bars: widen the chart rather than draw slivers */
        group_w = 14 + 3.0 * (double)m;
        W = left + right + group_w * groups;
    }
    double bar_w = m ? fmin(18, (group_w - 14) / (double)m) : 10, pad = (group_w - bar_w * (double)m) / 2;
    size_t maxc = (size_t)fmax(4, (group_w - 4) / 7.2);
    bool rotate = false;
    for (int g = 0; g < lb->n_tasks; g++) rotate |= utf8_len(lb->tasks[g]) > maxc;
    double legend_h = svg_legend(fp, c, names, m, false, left, W - right, 0, false);
    double top = 16 + legend_h + 10, plot_h = 340, H = top + plot_h + (rotate ? 96 : 56);
    /* y range: from 0, or zoomed when every value is high (differences of a point matter) */
    double lo = 100, hi = 0;
    for (size_t i = 0; i < m; i++) {
        for (int t = 0; t < lb->n_tasks; t++)
            if (!isnan(rows[i]->task_accuracy[t])) lo = fmin(lo, rows[i]->task_accuracy[t]), hi = fmax(hi, rows[i]->task_accuracy[t]);
        if (!isnan(rows[i]->avg_accuracy)) lo = fmin(lo, rows[i]->avg_accuracy);
    }
    double ylo = lo > 40 && lo <= hi ? floor((lo - 5) / 10) * 10 : 0;
    axis y = {.lo = ylo, .hi = 100, .p0 = top + plot_h, .p1 = top};
    double step = ylo > 0 ? (100 - ylo > 40 ? 10 : 5) : 10;
    svg_open(fp, W, H, "accuracy per task and method");
    svg_legend(fp, c, names, m, false, left, W - right, 10, true);
    svg_y_axis(fp, &y, step, left, W - right, "accuracy (%)");
    for (int g = 0; g < groups; g++) {
        double g0 = left + g * group_w, gx = g0 + pad;
        bool avg = g == lb->n_tasks;
        if (avg) /* a light band marks the average group */
            fprintf(fp, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#efefef\"/>\n", g0 + 2, top,
                    group_w - 4, plot_h);
        for (size_t i = 0; i < m; i++) {
            double v = avg ? rows[i]->avg_accuracy : rows[i]->task_accuracy[g];
            if (isnan(v)) continue;
            double py = ax(&y, fmax(v, ylo)), x = gx + (double)i * bar_w;
            fprintf(fp, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"><title>", x, py,
                    bar_w - (bar_w > 5 ? 1 : 0.3), y.p0 - py, method_of(c, names[i])->color);
            esc(fp, names[i]);
            fputs(" · ", fp);
            esc(fp, avg ? "average" : lb->tasks[g]);
            const stats_method *sm = stats_of(c, names[i]);
            const stats_cell *sc = !sm ? NULL : avg ? &sm->avg : &sm->task[g];
            if (sc) fprintf(fp, " (%.0f%% interval %.2f–%.2f)", 100 * c->sb.opts.level, sc->ci_low, sc->ci_high);
            fprintf(fp, ": %.2f%%</title></rect>\n", v);
            if (sc && bar_w >= 2) { /* the bootstrap interval as an error bar */
                double cx = x + (bar_w - (bar_w > 5 ? 1 : 0.3)) / 2, e0 = ax(&y, fmax(sc->ci_low, y.lo)), e1 = ax(&y, fmin(sc->ci_high, 100));
                double cap = fmin(3, bar_w / 2 - 0.5);
                fprintf(fp, "<path d=\"M%.1f %.1fV%.1fM%.1f %.1fH%.1fM%.1f %.1fH%.1f\" class=\"err\"/>\n", cx, e0, e1, cx - cap,
                        e0, cx + cap, cx - cap, e1, cx + cap);
            }
            int sig = avg ? significance(c, names[i]) : 0;
            if (sig) /* above (▲) or below (▼) the reference, the paired interval excluding 0 */
                fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" class=\"sig\" text-anchor=\"middle\">%s</text>\n",
                        x + bar_w / 2, ax(&y, fmin(sc ? sc->ci_high : v, 100)) - 3, sig > 0 ? "▲" : "▼");
        }
        double cx = g0 + group_w / 2, ly = top + plot_h + 18;
        const char *label = avg ? "average" : lb->tasks[g];
        if (rotate) {
            fprintf(fp, "<text transform=\"translate(%.1f,%.1f) rotate(-30)\" class=\"tick%s\" text-anchor=\"end\">", cx + 4, ly - 2,
                    avg ? " bold" : "");
            esc_n(fp, label, 24);
        } else {
            fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" class=\"tick%s\" text-anchor=\"middle\">", cx, ly, avg ? " bold" : "");
            esc_n(fp, label, maxc);
        }
        fputs("</text>\n", fp);
    }
    fprintf(fp, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"axis\"/>\n", left, y.p0, W - right, y.p0);
    fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" class=\"axis-title\" text-anchor=\"middle\">task</text>\n", (left + W - right) / 2, H - 8);
    fputs("</svg>\n", fp);
done:
    free(names);
    free(rows);
}

/* ---- chart 2: average accuracy vs seconds -------------------------------------------------- */

typedef struct pt {
    double x, y, px, py; /* data and pixel position */
    double lx0, ly, lw;  /* label: left edge, baseline, estimated width */
    bool left;           /* label on the left of the point */
    const char *name;
    bool at_floor; /* seconds below the axis minimum (e.g. 0 s): drawn at the left edge */
} pt;

static void chart_scatter(FILE *fp, const ctx *c, const leaderboard *lb) {
    pt *p = calloc((size_t)(lb->n_rows ? lb->n_rows : 1), sizeof *p);
    if (!p) return;
    size_t n = 0;
    double xmin = INFINITY, xmax = 0, xpos = INFINITY, ymin = 100, ymax = 0;
    for (int r = 0; r < lb->n_rows; r++) {
        const leaderboard_row *row = &lb->rows[r];
        if (row->status == LEADERBOARD_FAILED || isnan(row->avg_accuracy) || isnan(row->seconds)) continue;
        p[n++] = (pt){.x = row->seconds, .y = row->avg_accuracy, .name = row->method};
        xmin = fmin(xmin, row->seconds);
        xmax = fmax(xmax, row->seconds);
        if (row->seconds > 0) xpos = fmin(xpos, row->seconds);
        ymin = fmin(ymin, row->avg_accuracy);
        ymax = fmax(ymax, row->avg_accuracy);
    }
    double left = 80, right = 190, top = 20, plot_w = 820, plot_h = 380, W = left + plot_w + right, H = top + plot_h + 62;
    axis x = {.p0 = left, .p1 = left + plot_w}, y = {.p0 = top + plot_h, .p1 = top};
    bool log_x = n > 0 && isfinite(xpos) && xmax / xpos > 30;
    if (log_x) {
        x.log = true;
        x.lo = pow(10, floor(log10(xpos)));
        x.hi = pow(10, ceil(log10(xmax)));
        if (x.hi <= x.lo) x.hi = x.lo * 10;
    } else {
        x.lo = 0;
        x.hi = n ? xmax * 1.05 : 1;
    }
    double xstep = log_x ? 0 : nice_range(&x.lo, &x.hi, 8);
    y.lo = n ? ymin - 0.08 * (ymax - ymin + 1) : 0;
    y.hi = n ? ymax + 0.08 * (ymax - ymin + 1) : 100;
    y.lo = fmax(0, y.lo);
    y.hi = fmin(100, y.hi);
    double ystep = nice_range(&y.lo, &y.hi, 6);
    svg_open(fp, W, H, "average accuracy against merge/adaptation time");
    svg_y_axis(fp, &y, ystep, left, left + plot_w, "average accuracy (%)");
    /* x ticks */
    if (log_x) {
        for (double d = x.lo; d <= x.hi * 1.0001; d *= 10) {
            for (int k = 1; k < 10; k++) {
                double v = d * k;
                if (v > x.hi * 1.0001) break;
                double px = ax(&x, v);
                fprintf(fp, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"%s\"/>\n", px, y.p1, px, y.p0,
                        k == 1 ? "grid" : "grid minor");
                if (k == 1) {
                    char b[32];
                    if (v >= 1) snprintf(b, sizeof b, "%.0f", v);
                    else snprintf(b, sizeof b, "%.*f", (int)ceil(-log10(v) - 1e-9), v);
                    fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" class=\"tick\" text-anchor=\"middle\">%s</text>\n", px, y.p0 + 18, b);
                }
            }
        }
    } else {
        svg_x_ticks(fp, &x, xstep, &y);
    }
    fprintf(fp, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"axis\"/>\n", left, y.p0, left + plot_w, y.p0);
    fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" class=\"axis-title\" text-anchor=\"middle\">seconds of merging / adaptation%s</text>\n",
            left + plot_w / 2, H - 12, log_x ? " (log scale)" : "");
    /* Points first, then each label (best method first) at the candidate spot — right or left
     * of its point, level or a line or two up/down — that overlaps the least with points and
     * labels already placed; a thin leader joins a label moved off its point's line. */
    for (size_t i = 0; i < n; i++) {
        p[i].at_floor = log_x && p[i].x < x.lo;
        p[i].px = ax(&x, p[i].at_floor ? x.lo : p[i].x);
        p[i].py = ax(&y, p[i].y);
        p[i].lw = 7.0 * (double)(utf8_len(p[i].name) > 28 ? 29 : utf8_len(p[i].name)) + (p[i].at_floor ? 42 : 0);
    }
    static const double cand[][2] = {{1, 0}, {-1, 0}, {1, -1}, {1, 1}, {-1, -1}, {-1, 1}, {1, -2}, {1, 2}, {-1, -2}, {-1, 2}, {1, -3}, {1, 3}};
    for (size_t i = 0; i < n; i++) {
        double best = INFINITY;
        for (size_t k = 0; k < sizeof cand / sizeof cand[0]; k++) {
            double side = cand[k][0], ly = p[i].py + 4 + cand[k][1] * 15;
            double bx0 = side > 0 ? p[i].px + 11 : p[i].px - 11 - p[i].lw, bx1 = bx0 + p[i].lw, by0 = ly - 11, by1 = ly + 3;
            double cost = k * 0.5; /* prefer earlier candidates */
            if (bx0 < left || bx1 > W - 4 || by0 < 2 || by1 > y.p0 - 2) cost += 1e5;
            for (size_t j = 0; j < n; j++) {
                double ox = fmin(bx1, p[j].px + 7) - fmax(bx0, p[j].px - 7), oy = fmin(by1, p[j].py + 7) - fmax(by0, p[j].py - 7);
                if (ox > 0 && oy > 0) cost += 4 * ox * oy;
                if (j >= i) continue;
                double qx0 = p[j].lx0, qx1 = p[j].lx0 + p[j].lw, qy0 = p[j].ly - 11, qy1 = p[j].ly + 3;
                ox = fmin(bx1, qx1) - fmax(bx0, qx0);
                oy = fmin(by1, qy1) - fmax(by0, qy0);
                if (ox > 0 && oy > 0) cost += 4 * ox * oy;
            }
            if (cost < best) best = cost, p[i].ly = ly, p[i].lx0 = bx0, p[i].left = side < 0;
        }
    }
    for (size_t i = 0; i < n; i++) {
        const method_info *m = method_of(c, p[i].name);
        bool ref = is_reference(p[i].name);
        fprintf(fp, "<g><title>");
        esc(fp, p[i].name);
        fprintf(fp, ": %.2f%% in %.3f s</title>", p[i].y, p[i].x);
        if (fabs(p[i].ly - 4 - p[i].py) > 3) {
            double ex = p[i].left ? p[i].lx0 + p[i].lw + 1 : p[i].lx0 - 1;
            fprintf(fp, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#888\" stroke-width=\"0.8\"/>", p[i].px,
                    p[i].py, ex, p[i].ly - 4);
        }
        if (ref)
            fprintf(fp, "<rect x=\"%.1f\" y=\"%.1f\" width=\"11\" height=\"11\" fill=\"%s\" stroke=\"#222\" stroke-width=\"1\"/>",
                    p[i].px - 5.5, p[i].py - 5.5, m->color);
        else
            fprintf(fp, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"6.5\" fill=\"%s\" stroke=\"#222\" stroke-width=\"1\"/>", p[i].px, p[i].py,
                    m->color);
        fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" class=\"label\">", p[i].lx0, p[i].ly);
        esc_n(fp, p[i].name, 28);
        if (p[i].at_floor) fputs(p[i].x == 0 ? " (0 s)" : " (&lt; axis min)", fp);
        fputs("</text></g>\n", fp);
    }
    fputs("</svg>\n", fp);
    free(p);
}

/* ---- chart 3: entropy vs step, one panel per learner ------------------------------------ */

/* Centred moving average of v[n] over `window` logged points (cut at the ends: the first point
 * averages itself and the window/2 after it),
 * into out[n]. Learners that cycle through the tasks (Tinting adapts one task's batch per step)
 * jump between the tasks' entropies every step; the average over a window of many steps shows
 * the trend the raw line hides. */
static void moving_average(const double *v, size_t n, size_t window, double *out) {
    double *pre = malloc((n + 1) * sizeof *pre);
    if (!pre) {
        memcpy(out, v, n * sizeof *v);
        return;
    }
    pre[0] = 0;
    for (size_t i = 0; i < n; i++) pre[i + 1] = pre[i] + v[i];
    size_t h = window / 2;
    for (size_t i = 0; i < n; i++) { /* near the ends the window is cut, not shrunk to one point */
        size_t lo = i > h ? i - h : 0, hi = i + h < n ? i + h : n - 1;
        out[i] = (pre[hi + 1] - pre[lo]) / (double)(hi - lo + 1);
    }
    free(pre);
}

static size_t smoothing_window(size_t n) {
    size_t w = n / 15;
    if (w < 5) w = 5;
    if (w > 201) w = 201;
    return w | 1;
}

static void polyline(FILE *fp, const axis *x, const axis *y, const double *xs, const double *ys, size_t n, const char *cls,
                     const char *color) {
    size_t stride = n > CURVE_MAX_POINTS ? (n + CURVE_MAX_POINTS - 1) / CURVE_MAX_POINTS : 1;
    fprintf(fp, "<polyline class=\"%s\" stroke=\"%s\" points=\"", cls, color);
    for (size_t i = 0; i < n; i += stride) fprintf(fp, "%.1f,%.1f ", ax(x, xs[i]), ax(y, ys[i]));
    if ((n - 1) % stride) fprintf(fp, "%.1f,%.1f", ax(x, xs[n - 1]), ax(y, ys[n - 1]));
    fputs("\"/>\n", fp);
}

/* One panel: entropy (raw faint, moving average bold) against step on the panel's own scale,
 * and accuracy (right axis, %) at the steps where the curve records it. */
static void curve_panel(FILE *fp, const method_info *mi, double px, double py, double pw, double ph) {
    const curve *cv = mi->crv;
    double *sm = malloc(cv->n * sizeof *sm);
    if (!sm) return;
    size_t win = smoothing_window(cv->n);
    moving_average(cv->entropy, cv->n, win, sm);
    double xmax = 0, ymax = 0;
    size_t n_acc = 0;
    for (size_t i = 0; i < cv->n; i++) {
        xmax = fmax(xmax, cv->step[i]), ymax = fmax(ymax, cv->entropy[i]);
        n_acc += !isnan(cv->acc[i]);
    }
    double left = px + 58, right = px + pw - (n_acc ? 66 : 14), top = py + 24, bottom = py + ph - 38;
    axis x = {.lo = 0, .hi = xmax > 0 ? xmax : 1, .p0 = left, .p1 = right};
    axis y = {.lo = 0, .hi = ymax > 0 ? ymax : 1, .p0 = bottom, .p1 = top};
    double xstep = nice_range(&x.lo, &x.hi, 5), ystep = nice_range(&y.lo, &y.hi, 4);
    fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" class=\"panel-title\">", left, py + 14);
    esc_n(fp, mi->name, 40);
    fprintf(fp, "</text>\n<text x=\"%.1f\" y=\"%.1f\" class=\"tick\" text-anchor=\"end\">entropy %.3f → %.3f (average of %zu)</text>\n",
            right, py + 14, sm[0], sm[cv->n - 1], win);
    svg_y_axis(fp, &y, ystep, left, right, "entropy (nats)");
    svg_x_ticks(fp, &x, xstep, &y);
    fprintf(fp, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"axis\"/>\n", left, y.p0, right, y.p0);
    fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" class=\"tick\" text-anchor=\"middle\">step</text>\n", (left + right) / 2, py + ph - 6);
    polyline(fp, &x, &y, cv->step, cv->entropy, cv->n, "raw", mi->color);
    fprintf(fp, "<g><title>");
    esc(fp, mi->name);
    fprintf(fp, ": entropy, moving average over %zu logged steps (raw: faint)</title>\n", win);
    polyline(fp, &x, &y, cv->step, sm, cv->n, "smooth", mi->color);
    fputs("</g>\n", fp);
    if (n_acc) {
        axis ya = {.lo = 0, .hi = 100, .p0 = bottom, .p1 = top};
        for (int v = 0; v <= 100; v += 25)
            fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" class=\"tick\">%d</text>\n", right + 5, ax(&ya, v) + 4, v);
        fprintf(fp, "<text transform=\"translate(%.1f,%.1f) rotate(90)\" class=\"tick\" text-anchor=\"middle\">accuracy (%%, ◆)</text>\n",
                right + 34, (top + bottom) / 2);
        for (size_t i = 0; i < cv->n; i++)
            if (!isnan(cv->acc[i]))
                fprintf(fp, "<path d=\"M%.1f %.1fl4 4l-4 4l-4 -4z\" fill=\"#222\" transform=\"translate(0,-4)\"><title>step %.0f: %.2f%%</title></path>\n",
                        ax(&x, cv->step[i]), ax(&ya, cv->acc[i]), cv->step[i], cv->acc[i]);
    }
    free(sm);
}

static void chart_curves(FILE *fp, const ctx *c, const leaderboard *lb) {
    const char **names = malloc((size_t)(lb->n_rows ? lb->n_rows : 1) * sizeof *names);
    if (!names) return;
    size_t m = 0;
    for (size_t k = 0; k < c->n_methods; k++) {
        const method_info *mi = &c->methods[k];
        if (!mi->crv || !mi->crv->n) continue;
        bool in_suite = false;
        for (int r = 0; r < lb->n_rows && !in_suite; r++) in_suite = !strcmp(lb->rows[r].method, mi->name);
        if (in_suite) names[m++] = mi->name;
    }
    /* small multiples: each learner on its own scale, two panels a row */
    const int cols = m > 1 ? 2 : 1;
    const double W = 1100, pw = W / cols, ph = 250;
    size_t rows = (m + (size_t)cols - 1) / (size_t)cols;
    svg_open(fp, W, ph * (double)rows + 8, "prediction entropy during test-time adaptation, one panel per method");
    for (size_t k = 0; k < m; k++)
        curve_panel(fp, method_of(c, names[k]), (double)(k % (size_t)cols) * pw, 4 + (double)(k / (size_t)cols) * ph, pw, ph);
    fputs("</svg>\n", fp);
    free(names);
}

/* ---- suite.json (optional) --------------------------------------------------------------- */

static void load_suite_json(ctx *c, const report_opts *o) {
    char path[4200];
    snprintf(path, sizeof path, "%s/suite.json", c->dir);
    struct stat st;
    if (stat(path, &st) != 0) return;
    json_error_t je;
    json_t *root = S_ISREG(st.st_mode) && st.st_size < (16 << 20) ? json_load_file(path, JSON_REJECT_DUPLICATES, &je) : NULL;
    if (!root || !json_is_object(root)) {
        snprintf(c->suite_note, sizeof c->suite_note, "%.300s: ignored (%.200s)", path,
                 !root ? (S_ISREG(st.st_mode) && st.st_size < (16 << 20) ? je.text : "not a regular file under 16 MiB") : "not a JSON object");
        if (o && o->warn) fprintf(o->warn, "ttmerge report: warning: %s\n", c->suite_note);
        json_decref(root);
        return;
    }
    c->suite_json = root;
}

static const char *jstr(json_t *o, const char *k) {
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : NULL;
}

/* "ViT: width 64, 2 layers, 4 heads, patch 4, image 28×28×1" from the arch object. */
static void arch_summary(json_t *arch, char *b, size_t n) {
    b[0] = 0;
    if (!json_is_object(arch)) return;
    json_int_t w = json_integer_value(json_object_get(arch, "width")), l = json_integer_value(json_object_get(arch, "layers")),
               h = json_integer_value(json_object_get(arch, "heads")), p = json_integer_value(json_object_get(arch, "patch_size")),
               s = json_integer_value(json_object_get(arch, "image_size")), ch = json_integer_value(json_object_get(arch, "channels"));
    snprintf(b, n, "ViT: width %lld, %lld layers, %lld heads, patch %lld, image %lld×%lld×%lld", (long long)w, (long long)l,
             (long long)h, (long long)p, (long long)s, (long long)s, (long long)ch);
}

/* Per task of the manifest: zero-shot and fine-tuned test accuracy (first fine-tuning mode). */
typedef void (*suite_task_fn)(FILE *fp, const char *task, double zs, double ft, bool first);

static int suite_tasks(const ctx *c, FILE *fp, suite_task_fn fn) {
    json_t *tasks = json_object_get(c->suite_json, "tasks");
    const char *mode = json_string_value(json_array_get(json_object_get(c->suite_json, "finetune_modes"), 0));
    int shown = 0;
    for (size_t i = 0; i < json_array_size(tasks) && i < 256; i++) {
        json_t *t = json_array_get(tasks, i), *acc = json_object_get(t, "accuracy");
        const char *name = jstr(t, "name");
        if (!name) continue;
        json_t *zs = json_object_get(json_object_get(acc, "zeroshot"), "test");
        json_t *ft = json_object_get(json_object_get(json_object_get(acc, "finetuned"), mode ? mode : "full"), "test");
        fn(fp, name, json_is_number(zs) ? json_number_value(zs) : NAN, json_is_number(ft) ? json_number_value(ft) : NAN, shown++ == 0);
    }
    return shown;
}

/* ---- shared facts ------------------------------------------------------------------------ */

static void list_distinct(FILE *fp, const results_table *t, const char *suite, int which, void (*out)(FILE *, const char *)) {
    /* which: 0 git revision, 1 threads, 2 seed — small sets, linear scans */
    size_t shown = 0;
    for (size_t i = 0; i < t->n && shown < 8; i++) {
        const results_row *r = &t->rows[i];
        if (strcmp(r->suite, suite)) continue;
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++) {
            const results_row *q = &t->rows[j];
            if (strcmp(q->suite, suite)) continue;
            seen = which == 0 ? !strcmp(q->git_revision, r->git_revision) : which == 1 ? q->threads == r->threads : q->seed == r->seed;
        }
        if (seen) continue;
        if (shown++) fputs(", ", fp);
        char b[32];
        if (which == 0) out(fp, *r->git_revision ? r->git_revision : "(none)");
        else {
            if (which == 1) snprintf(b, sizeof b, "%d", r->threads);
            else snprintf(b, sizeof b, "%llu", (unsigned long long)r->seed);
            out(fp, b);
        }
    }
    if (shown >= 8) fputs(", …", fp);
}

/* Best value per column among the merging methods (references excluded), for bold cells. */
static double best_of(const leaderboard *lb, int task /* -1: average */, bool normalized) {
    double best = NAN;
    for (int r = 0; r < lb->n_rows; r++) {
        const leaderboard_row *row = &lb->rows[r];
        if (is_reference(row->method)) continue;
        double v = task < 0 ? (normalized ? row->avg_normalized_accuracy : row->avg_accuracy)
                            : (normalized ? row->task_normalized[task] : row->task_accuracy[task]);
        if (!isnan(v) && (isnan(best) || v > best)) best = v;
    }
    return best;
}

/* "[61.2, 62.9]", "+1.10 [+0.42, +1.80] ▲", "0.0010" for one leaderboard row. */
static void stats_text(const ctx *c, const char *method, char *ci, char *diff, char *p, size_t cap) {
    const stats_method *sm = stats_of(c, method);
    ci[0] = diff[0] = p[0] = 0;
    if (!sm) {
        snprintf(ci, cap, "–"), snprintf(diff, cap, "–"), snprintf(p, cap, "–");
        return;
    }
    snprintf(ci, cap, "[%.2f, %.2f]", sm->avg.ci_low, sm->avg.ci_high);
    if (c->sb.ref < 0) return;
    int sig = significance(c, method);
    if (!strcmp(method, ref_name(c))) snprintf(diff, cap, "(reference)"), snprintf(p, cap, "–");
    else {
        snprintf(diff, cap, "%+.2f [%+.2f, %+.2f]%s", sm->avg.diff, sm->avg.diff_low, sm->avg.diff_high,
                 sig > 0 ? " ▲" : sig < 0 ? " ▼" : "");
        snprintf(p, cap, sm->avg.p < 0.0001 ? "%.1e" : "%.4f", sm->avg.p);
    }
}

static void html_stats_cells(FILE *fp, const ctx *c, const char *method) {
    char ci[96], diff[96], p[32];
    stats_text(c, method, ci, diff, p, sizeof ci);
    fprintf(fp, "<td>%s</td>", ci);
    if (c->sb.ref >= 0) fprintf(fp, "<td>%s</td><td>%s</td>", diff, p);
}

/* The statistics note, Markdown or HTML list item. */
static void notes_stats(FILE *fp, const ctx *c, bool html) {
    fprintf(fp, "%sIntervals: %.0f%% percentile bootstrap over test examples (%d resamples, seed %llu; each task's examples "
                "resampled independently, every method on the same draws, from <code>predictions/</code>). ",
            html ? "<li>" : "- ", 100 * c->sb.opts.level, c->sb.opts.resamples, (unsigned long long)c->sb.opts.seed);
    if (c->sb.ref >= 0)
        fprintf(fp, "Δ is the paired difference of average accuracy with %s; p is the paired bootstrap's two-sided p-value; "
                    "▲/▼ mark a difference whose interval excludes 0 (per-task exact McNemar p-values are in <code>stats.csv</code>).",
                ref_name(c));
    fputs(html ? "</li>\n" : "\n", fp);
}

/* ---- Markdown ---------------------------------------------------------------------------- */

static void md_suite_task(FILE *fp, const char *task, double zs, double ft, bool first) {
    char a[32], b[32];
    if (first) fputs("| task | zero-shot (%) | fine-tuned (%) |\n|---|---:|---:|\n", fp);
    fputs("| ", fp);
    md(fp, task);
    fprintf(fp, " | %s | %s |\n", fmt2(a, sizeof a, zs), fmt2(b, sizeof b, ft));
}

static void md_per_task(FILE *fp, const leaderboard *lb, bool normalized) {
    fputs("| method |", fp);
    for (int t = 0; t < lb->n_tasks; t++) fputc(' ', fp), md(fp, lb->tasks[t]), fputs(" |", fp);
    fputs(" average |\n|---|", fp);
    for (int t = 0; t <= lb->n_tasks; t++) fputs("---:|", fp);
    fputc('\n', fp);
    for (int r = 0; r < lb->n_rows; r++) {
        const leaderboard_row *row = &lb->rows[r];
        fputs("| ", fp);
        md(fp, row->method);
        fputs(" |", fp);
        char b[32];
        for (int t = 0; t <= lb->n_tasks; t++) {
            double v = t < lb->n_tasks ? (normalized ? row->task_normalized[t] : row->task_accuracy[t])
                                       : (normalized ? row->avg_normalized_accuracy : row->avg_accuracy);
            double best = best_of(lb, t < lb->n_tasks ? t : -1, normalized);
            bool bold = !isnan(v) && v == best && !is_reference(row->method);
            fprintf(fp, " %s%s%s |", bold ? "**" : "", fmt2(b, sizeof b, v), bold ? "**" : "");
        }
        fputc('\n', fp);
    }
}

static void md_out(FILE *fp, const char *s) { md(fp, s); }

/* The source of a published row: params' "source" when params is JSON with one, else params. */
static const char *pub_source(const results_row *g, char *b, size_t cap) {
    json_t *j = json_loads(g->params, 0, NULL);
    const char *src = j ? json_string_value(json_object_get(j, "source")) : NULL;
    snprintf(b, cap, "%s", src ? src : g->params);
    json_decref(j);
    return b;
}

/* Ours beside the papers': per method of the published golden (for this suite), our average over
 * the suite's tasks, the published average (its `average` row, else the mean of its task rows,
 * marked with their count when the paper gives fewer tasks than we ran), the difference, and
 * the published per-task numbers next to ours. */
static void write_published(FILE *fp, const ctx *c, const leaderboard *lb, bool html) {
    const results_table *g = c->pub;
    bool any = false;
    for (size_t i = 0; i < g->n; i++) {
        const results_row *r = &g->rows[i];
        if (strcmp(r->suite, lb->suite) || r->status != RESULTS_OK) continue;
        bool first = true;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(g->rows[j].suite, r->suite) && !strcmp(g->rows[j].method, r->method)) first = false;
        if (!first) continue;
        if (!any) {
            if (html) {
                fputs("<h3>Published</h3>\n<p class=\"meta\">From <code>", fp);
                esc(fp, c->pub_path);
                fputs("</code>: the papers' numbers on this benchmark beside ours (other checkpoints and data "
                      "copies: compare with care).</p>\n<div class=\"wide\"><table><tr><th class=\"l\">method</th>"
                      "<th>ours avg</th><th>published avg</th><th>Δ</th><th class=\"l\">per task: ours / published</th>"
                      "<th class=\"l\">source</th></tr>\n", fp);
            } else {
                fputs("\n### Published\n\nFrom `", fp);
                md(fp, c->pub_path);
                fputs("`: the papers' numbers on this benchmark beside ours (other checkpoints and data copies: compare "
                      "with care).\n\n| method | ours avg | published avg | Δ | per task: ours / published | source |\n"
                      "|---|---:|---:|---:|---|---|\n", fp);
            }
            any = true;
        }
        double pub_avg = NAN, sum = 0;
        int n_task = 0;
        char per[2048] = "", b[64], src[512];
        size_t used = 0;
        for (size_t j = i; j < g->n; j++) {
            const results_row *q = &g->rows[j];
            if (strcmp(q->suite, r->suite) || strcmp(q->method, r->method) || q->status != RESULTS_OK) continue;
            if (!strcmp(q->task, "average")) {
                pub_avg = q->accuracy;
                continue;
            }
            sum += q->accuracy;
            n_task++;
            double ours = NAN;
            for (int t = 0; t < lb->n_tasks; t++)
                if (!strcmp(lb->tasks[t], q->task))
                    for (int k = 0; k < lb->n_rows; k++)
                        if (!strcmp(lb->rows[k].method, q->method)) ours = lb->rows[k].task_accuracy[t];
            char o[32];
            int w = snprintf(per + used, sizeof per - used, "%s%s %s / %.1f", n_task > 1 ? ", " : "", q->task,
                             isnan(ours) ? "—" : (snprintf(o, sizeof o, "%.1f", ours), o), q->accuracy);
            if (w > 0 && (size_t)w < sizeof per - used) used += (size_t)w;
        }
        char pa[64];
        if (!isnan(pub_avg)) snprintf(pa, sizeof pa, "%.1f", pub_avg);
        else if (n_task == lb->n_tasks) snprintf(pa, sizeof pa, "%.1f", pub_avg = sum / n_task);
        else if (n_task) snprintf(pa, sizeof pa, "(%.1f over %d tasks)", sum / n_task, n_task);
        else snprintf(pa, sizeof pa, "—");
        double ours = NAN;
        for (int k = 0; k < lb->n_rows; k++)
            if (!strcmp(lb->rows[k].method, r->method)) ours = lb->rows[k].avg_accuracy;
        char oa[32], d[32];
        fmt2(oa, sizeof oa, ours);
        if (!isnan(ours) && !isnan(pub_avg)) snprintf(d, sizeof d, "%+.1f", ours - pub_avg);
        else snprintf(d, sizeof d, "—");
        pub_source(r, src, sizeof src);
        if (html) {
            fputs("<tr><td class=\"l\">", fp);
            esc(fp, r->method);
            fprintf(fp, "</td><td>%s</td><td>", oa);
            esc(fp, pa);
            fprintf(fp, "</td><td>%s</td><td class=\"l\">", d);
            esc(fp, per);
            fputs("</td><td class=\"l\">", fp);
            esc(fp, src);
            fputs("</td></tr>\n", fp);
        } else {
            fputs("| ", fp);
            md(fp, r->method);
            fprintf(fp, " | %s | ", oa);
            md(fp, pa);
            fprintf(fp, " | %s | ", d);
            md(fp, per);
            fputs(" | ", fp);
            md(fp, src);
            fputs(" |\n", fp);
        }
        (void)b;
    }
    if (any && html) fputs("</table></div>\n", fp);
}

static void write_md(FILE *fp, const ctx *c, leaderboard *lbs) {
    fputs("# ttmerge report", fp);
    if (c->n_suites == 1) fputs(": ", fp), md(fp, c->suites[0]);
    fprintf(fp, "\n\nFrom `results.csv` (%zu rows). Generated by ttmerge %s (%s).\n", c->t->n, ttmerge_version(), ttmerge_git_rev());
    if (c->suite_json || c->suite_note[0]) {
        fputs("\n## Suite\n\n", fp);
        if (c->suite_json) {
            char arch[256];
            arch_summary(json_object_get(c->suite_json, "arch"), arch, sizeof arch);
            const char *name = jstr(c->suite_json, "name");
            fputs("Suite `suite.json`: ", fp);
            md(fp, name ? name : "(unnamed)");
            if (arch[0]) fputs(" — ", fp), md(fp, arch);
            fputs(".\n\n", fp);
            suite_tasks(c, fp, md_suite_task);
        } else {
            fputs("Note: ", fp);
            md(fp, c->suite_note);
            fputc('\n', fp);
        }
    }
    for (long s = 0; s < c->n_suites; s++) {
        const leaderboard *lb = &lbs[s];
        const char *h = c->n_suites > 1 ? "###" : "##";
        if (c->n_suites > 1) fputs("\n## Suite ", fp), md(fp, lb->suite), fputc('\n', fp);
        fprintf(fp, "\n%s Leaderboard\n\n", h);
        fputs("Git revision: ", fp);
        list_distinct(fp, c->t, lb->suite, 0, md_out);
        fputs("; threads: ", fp);
        list_distinct(fp, c->t, lb->suite, 1, md_out);
        fputs("; seeds: ", fp);
        list_distinct(fp, c->t, lb->suite, 2, md_out);
        fprintf(fp, "; %d methods, %d tasks.\n\n", lb->n_rows, lb->n_tasks);
        fputs("| rank | method | avg accuracy (%) |", fp);
        if (c->sb.n_methods) {
            fprintf(fp, " %.0f%% interval |", 100 * c->sb.opts.level);
            if (ref_name(c)) fputs(" Δ vs ", fp), md(fp, ref_name(c)), fprintf(fp, " (%.0f%% interval) | p |", 100 * c->sb.opts.level);
        }
        fprintf(fp, " avg normalized (%%) | seconds | peak RSS (MB) | status |\n|---:|---|---:|%s---:|---:|---:|---|\n",
                !c->sb.n_methods ? "" : ref_name(c) ? "---:|---:|---:|" : "---:|");
        for (int r = 0; r < lb->n_rows; r++) {
            const leaderboard_row *row = &lb->rows[r];
            char a[32], b[32], sec[32], rss[32];
            const method_info *mi = method_of(c, row->method);
            fprintf(fp, "| %d | ", row->rank);
            md(fp, row->method);
            fprintf(fp, " | %s |", fmt2(a, sizeof a, row->avg_accuracy));
            if (c->sb.n_methods) {
                char ci[96], diff[96], p[32];
                stats_text(c, row->method, ci, diff, p, sizeof ci);
                fprintf(fp, " %s |", ci);
                if (ref_name(c)) fprintf(fp, " %s | %s |", diff, p);
            }
            fprintf(fp, " %s | %s | %s | %s |\n", fmt2(b, sizeof b, row->avg_normalized_accuracy), fmt_seconds(sec, sizeof sec, row->seconds),
                    mi && !isnan(mi->peak_rss) ? (snprintf(rss, sizeof rss, "%.0f", mi->peak_rss), rss) : "–",
                    results_leaderboard_status_str(row->status));
        }
        fprintf(fp, "\n%s Accuracy per task (%%)\n\n", h);
        md_per_task(fp, lb, false);
        fprintf(fp, "\n%s Normalized accuracy per task (%%)\n\n", h);
        md_per_task(fp, lb, true);
        bool any_failed = false;
        for (int r = 0; r < lb->n_rows; r++) any_failed |= lb->rows[r].status != LEADERBOARD_OK;
        if (any_failed) {
            fprintf(fp, "\n%s Failed or incomplete methods\n\n", h);
            for (int r = 0; r < lb->n_rows; r++) {
                const leaderboard_row *row = &lb->rows[r];
                if (row->status == LEADERBOARD_OK) continue;
                fputs("- ", fp);
                md(fp, row->method);
                fprintf(fp, " (%s, %d of %d tasks ok)", results_leaderboard_status_str(row->status), row->n_ok_tasks, lb->n_tasks);
                if (*row->error) fputs(": ", fp), md(fp, row->error);
                fputc('\n', fp);
            }
        }
        bool any_curve = false;
        for (int r = 0; r < lb->n_rows; r++) {
            const method_info *mi = method_of(c, lb->rows[r].method);
            if (!mi || !mi->crv || !mi->crv->n) continue;
            if (!any_curve) fprintf(fp, "\n%s Adaptation curves\n\n| method | steps logged | entropy first | entropy last |\n|---|---:|---:|---:|\n", h);
            any_curve = true;
            fputs("| ", fp);
            md(fp, mi->name);
            fprintf(fp, " | %zu | %.4f | %.4f |\n", mi->crv->n, mi->crv->entropy[0], mi->crv->entropy[mi->crv->n - 1]);
        }
        if (c->pub) write_published(fp, c, lb, false);
        fprintf(fp, "\n%s Parameters\n\n| method | params |\n|---|---|\n", h);
        for (int r = 0; r < lb->n_rows; r++) {
            fputs("| ", fp);
            md(fp, lb->rows[r].method);
            fputs(" | ", fp);
            md(fp, lb->rows[r].params);
            fputs(" |\n", fp);
        }
    }
    fputs("\n## Notes\n\n"
          "- Accuracy is top-1 accuracy (%) on each task's test split.\n"
          "- Normalized accuracy = accuracy of the merged model on a task / accuracy of that task's individual "
          "fine-tuned model, in % (the `individual` method is 100 by definition).\n"
          "- Averages are means over tasks computed from `results.csv` (they are not stored there); a failed "
          "method's average covers only its tasks that succeeded.\n"
          "- Seconds = wall time of the method's merge or test-time adaptation; peak RSS = largest resident set seen.\n"
          "- Bold = best merging method per column (`zeroshot` and `individual` are references and excluded).\n", fp);
    if (c->sb.n_methods) notes_stats(fp, c, false);
}

/* ---- HTML -------------------------------------------------------------------------------- */

static const char css[] =
    "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'Helvetica Neue',Arial,sans-serif;color:#1d1d1f;"
    "max-width:1180px;margin:24px auto;padding:0 16px;line-height:1.45}"
    "h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.3em;margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:.2em}"
    "h3{font-size:1.08em;margin-top:1.4em}.meta{color:#555;font-size:.92em}"
    "table{border-collapse:collapse;margin:.6em 0 1em;font-size:.9em;font-variant-numeric:tabular-nums}"
    "th,td{border-bottom:1px solid #e3e3e3;padding:4px 10px;text-align:right;white-space:nowrap}"
    "th{background:#f6f6f6;border-bottom:2px solid #bbb}td.l,th.l{text-align:left}"
    "td.l{white-space:normal;max-width:26em;overflow-wrap:anywhere}td.m{white-space:nowrap}.wide{overflow-x:auto}"
    "tr.ref td{color:#666;font-style:italic}tr.failed td{color:#b3261e}td.b{font-weight:700}"
    ".sw{display:inline-block;width:10px;height:10px;margin-right:6px;border-radius:2px;vertical-align:baseline}"
    "figure{margin:1em 0 1.6em}figcaption{color:#444;font-size:.9em;margin-top:.3em}"
    "svg{width:100%;height:auto;display:block}"
    "svg text{font-family:system-ui,-apple-system,'Segoe UI',Roboto,Arial,sans-serif}"
    "svg .tick{font-size:12px;fill:#444}svg .bold{font-weight:700}svg .legend{font-size:12.5px;fill:#222}"
    "svg .label{font-size:12.5px;fill:#222}svg .axis-title{font-size:13px;fill:#222}"
    "svg .err{stroke:#222;stroke-width:1;fill:none}svg .sig{font-size:9px;fill:#222}"
    "svg .raw{stroke-width:1;opacity:.22;fill:none}svg .smooth{stroke-width:2.4;fill:none;stroke-linejoin:round}"
    "svg .panel-title{font-size:13px;font-weight:600;fill:#222}"
    "svg .grid{stroke:#e6e6e6;stroke-width:1}svg .minor{stroke:#f3f3f3}svg .axis{stroke:#444;stroke-width:1.2}"
    "code{background:#f4f4f4;padding:1px 4px;border-radius:3px;font-size:.88em;white-space:pre-wrap}"
    ".note{background:#fff8e1;border-left:3px solid #f0b400;padding:6px 10px}";

static void html_out(FILE *fp, const char *s) { esc(fp, s); }

static void html_suite_task(FILE *fp, const char *task, double zs, double ft, bool first) {
    char a[32], b[32];
    if (first) fputs("<div class=\"wide\"><table><tr><th class=\"l\">task</th><th>zero-shot (%)</th><th>fine-tuned (%)</th></tr>\n", fp);
    fputs("<tr><td class=\"l\">", fp);
    esc(fp, task);
    fprintf(fp, "</td><td>%s</td><td>%s</td></tr>\n", fmt2(a, sizeof a, zs), fmt2(b, sizeof b, ft));
}

static void html_method_cell(FILE *fp, const ctx *c, const char *method) {
    const method_info *mi = method_of(c, method);
    fprintf(fp, "<td class=\"l m\"><span class=\"sw\" style=\"background:%s\"></span>", mi ? mi->color : "#000");
    esc(fp, method);
    fputs("</td>", fp);
}

static const char *row_class(const leaderboard_row *row) {
    return row->status == LEADERBOARD_FAILED ? " class=\"failed\"" : is_reference(row->method) ? " class=\"ref\"" : "";
}

static void html_per_task(FILE *fp, const ctx *c, const leaderboard *lb, bool normalized) {
    fputs("<div class=\"wide\"><table><tr><th class=\"l\">method</th>", fp);
    for (int t = 0; t < lb->n_tasks; t++) fputs("<th>", fp), esc(fp, lb->tasks[t]), fputs("</th>", fp);
    fputs("<th>average</th></tr>\n", fp);
    for (int r = 0; r < lb->n_rows; r++) {
        const leaderboard_row *row = &lb->rows[r];
        fprintf(fp, "<tr%s>", row_class(row));
        html_method_cell(fp, c, row->method);
        char b[32];
        for (int t = 0; t <= lb->n_tasks; t++) {
            double v = t < lb->n_tasks ? (normalized ? row->task_normalized[t] : row->task_accuracy[t])
                                       : (normalized ? row->avg_normalized_accuracy : row->avg_accuracy);
            bool bold = !isnan(v) && v == best_of(lb, t < lb->n_tasks ? t : -1, normalized) && !is_reference(row->method);
            fprintf(fp, "<td%s>%s</td>", bold ? " class=\"b\"" : "", fmt2(b, sizeof b, v));
        }
        fputs("</tr>\n", fp);
    }
    fputs("</table></div>\n", fp);
}

static void write_html(FILE *fp, const ctx *c, leaderboard *lbs) {
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>ttmerge report", fp);
    if (c->n_suites == 1) fputs(": ", fp), esc(fp, c->suites[0]);
    fprintf(fp, "</title>\n<style>%s</style></head><body>\n<h1>ttmerge report", css);
    if (c->n_suites == 1) fputs(": ", fp), esc(fp, c->suites[0]);
    fprintf(fp, "</h1>\n<p class=\"meta\">From <code>results.csv</code> (%zu rows). Generated by ttmerge %s (%s).</p>\n", c->t->n,
            ttmerge_version(), ttmerge_git_rev());
    if (c->suite_json) {
        char arch[256];
        arch_summary(json_object_get(c->suite_json, "arch"), arch, sizeof arch);
        const char *name = jstr(c->suite_json, "name");
        fputs("<h2>Suite</h2>\n<p><code>suite.json</code>: ", fp);
        esc(fp, name ? name : "(unnamed)");
        if (arch[0]) fputs(" — ", fp), esc(fp, arch);
        fputs("</p>\n", fp);
        if (suite_tasks(c, fp, html_suite_task)) fputs("</table></div>\n", fp);
    } else if (c->suite_note[0]) {
        fputs("<p class=\"note\">", fp);
        esc(fp, c->suite_note);
        fputs("</p>\n", fp);
    }
    int fig = 0;
    for (long s = 0; s < c->n_suites; s++) {
        const leaderboard *lb = &lbs[s];
        const char *h = c->n_suites > 1 ? "h3" : "h2";
        if (c->n_suites > 1) fputs("<h2>Suite ", fp), esc(fp, lb->suite), fputs("</h2>\n", fp);
        fprintf(fp, "<%s>Leaderboard</%s>\n<p class=\"meta\">Git revision: ", h, h);
        list_distinct(fp, c->t, lb->suite, 0, html_out);
        fputs("; threads: ", fp);
        list_distinct(fp, c->t, lb->suite, 1, html_out);
        fputs("; seeds: ", fp);
        list_distinct(fp, c->t, lb->suite, 2, html_out);
        fprintf(fp, "; %d methods, %d tasks.</p>\n", lb->n_rows, lb->n_tasks);
        fputs("<div class=\"wide\"><table><tr><th>rank</th><th class=\"l\">method</th><th>avg accuracy (%)</th>", fp);
        if (c->sb.n_methods) {
            fprintf(fp, "<th>%.0f%% interval</th>", 100 * c->sb.opts.level);
            if (ref_name(c)) fputs("<th>Δ vs ", fp), esc(fp, ref_name(c)), fprintf(fp, " (%.0f%% interval)</th><th>p</th>", 100 * c->sb.opts.level);
        }
        fputs("<th>avg normalized (%)</th><th>seconds</th><th>peak RSS (MB)</th><th class=\"l\">status</th></tr>\n", fp);
        double best = best_of(lb, -1, false), best_n = best_of(lb, -1, true);
        for (int r = 0; r < lb->n_rows; r++) {
            const leaderboard_row *row = &lb->rows[r];
            const method_info *mi = method_of(c, row->method);
            char a[32], b[32], sec[32], rss[32] = "–";
            if (mi && !isnan(mi->peak_rss)) snprintf(rss, sizeof rss, "%.0f", mi->peak_rss);
            bool ref = is_reference(row->method);
            fprintf(fp, "<tr%s><td>%d</td>", row_class(row), row->rank);
            html_method_cell(fp, c, row->method);
            fprintf(fp, "<td%s>%s</td>", !ref && row->avg_accuracy == best ? " class=\"b\"" : "", fmt2(a, sizeof a, row->avg_accuracy));
            if (c->sb.n_methods) html_stats_cells(fp, c, row->method);
            fprintf(fp, "<td%s>%s</td><td>%s</td><td>%s</td><td class=\"l\">%s</td></tr>\n",
                    !ref && row->avg_normalized_accuracy == best_n ? " class=\"b\"" : "",
                    fmt2(b, sizeof b, row->avg_normalized_accuracy), fmt_seconds(sec, sizeof sec, row->seconds), rss,
                    results_leaderboard_status_str(row->status));
        }
        fputs("</table></div>\n", fp);
        for (int r = 0; r < lb->n_rows; r++) {
            const leaderboard_row *row = &lb->rows[r];
            if (row->status == LEADERBOARD_OK) continue;
            fputs("<p class=\"note\"><b>", fp);
            esc(fp, row->method);
            fprintf(fp, "</b> %s (%d of %d tasks ok)", results_leaderboard_status_str(row->status), row->n_ok_tasks, lb->n_tasks);
            if (*row->error) fputs(": ", fp), esc(fp, row->error);
            fputs("</p>\n", fp);
        }

        fprintf(fp, "<%s>Accuracy per task</%s>\n<figure>\n", h, h);
        chart_bars(fp, c, lb);
        fprintf(fp, "<figcaption>Figure %d. Test accuracy (%%) per task and method; the shaded group is the average over "
                    "tasks. Methods in order of first appearance in results.csv; grey bars are the references "
                    "(zeroshot, individual). Hover a bar for its value.", ++fig);
        if (c->sb.n_methods) {
            fprintf(fp, " Error bars: %.0f%% bootstrap intervals over test examples.", 100 * c->sb.opts.level);
            if (ref_name(c)) fputs(" ▲/▼ over an average bar: above/below ", fp), esc(fp, ref_name(c)), fputs(" with a paired interval that excludes 0.", fp);
        }
        fputs("</figcaption>\n</figure>\n", fp);
        html_per_task(fp, c, lb, false);

        fprintf(fp, "<%s>Accuracy against cost</%s>\n<figure>\n", h, h);
        chart_scatter(fp, c, lb);
        fprintf(fp, "<figcaption>Figure %d. Average accuracy over tasks against the wall time of the merge or test-time "
                    "adaptation; squares are the references. Failed methods are not drawn.</figcaption>\n</figure>\n", ++fig);

        bool any_curve = false;
        for (int r = 0; r < lb->n_rows && !any_curve; r++) {
            const method_info *mi = method_of(c, lb->rows[r].method);
            any_curve = mi && mi->crv && mi->crv->n;
        }
        if (any_curve) {
            fprintf(fp, "<%s>Test-time adaptation</%s>\n<figure>\n", h, h);
            chart_curves(fp, c, lb);
            fprintf(fp, "<figcaption>Figure %d. Mean prediction entropy on the unlabeled test inputs during adaptation "
                        "(from <code>curves/&lt;method&gt;.csv</code>), one panel and scale per method: the faint line is every "
                        "logged step, the bold one its centred moving average (Tinting adapts one task's batch per step, so "
                        "its raw entropy jumps between the tasks'); diamonds are accuracy where the curve records it."
                        "</figcaption>\n</figure>\n", ++fig);
        }

        fprintf(fp, "<%s>Normalized accuracy per task</%s>\n", h, h);
        html_per_task(fp, c, lb, true);
        fprintf(fp, "<%s>Parameters</%s>\n<div class=\"wide\"><table><tr><th class=\"l\">method</th><th class=\"l\">params</th></tr>\n", h, h);
        for (int r = 0; r < lb->n_rows; r++) {
            fputs("<tr>", fp);
            html_method_cell(fp, c, lb->rows[r].method);
            fputs("<td class=\"l\"><code>", fp);
            esc(fp, lb->rows[r].params);
            fputs("</code></td></tr>\n", fp);
        }
        fputs("</table></div>\n", fp);
        if (c->pub) write_published(fp, c, lb, true);
    }
    fputs("<h2>Notes</h2>\n<ul>\n"
          "<li>Accuracy is top-1 accuracy (%) on each task's test split.</li>\n"
          "<li>Normalized accuracy = accuracy of the merged model on a task / accuracy of that task's individual "
          "fine-tuned model, in % (the <code>individual</code> method is 100 by definition).</li>\n"
          "<li>Averages are means over tasks computed from <code>results.csv</code> (not stored there); a failed "
          "method's average covers only its tasks that succeeded.</li>\n"
          "<li>Seconds = wall time of the method's merge or test-time adaptation; peak RSS = largest resident set seen.</li>\n"
          "<li>Bold = best merging method per column (<code>zeroshot</code> and <code>individual</code> are references and "
          "excluded).</li>\n", fp);
    if (c->sb.n_methods) notes_stats(fp, c, true);
    fputs("</ul>\n</body></html>\n", fp);
}

/* ---- driver ------------------------------------------------------------------------------ */

static int load_curves(ctx *c, tt_err *err) {
    c->curves = calloc(c->n_methods ? c->n_methods : 1, sizeof *c->curves);
    if (!c->curves) return tt_fail(err, TT_ENOMEM, "report: out of memory");
    for (size_t k = 0; k < c->n_methods; k++) {
        method_info *m = &c->methods[k];
        if (!safe_file_name(m->name)) continue;
        char path[4400];
        snprintf(path, sizeof path, "%s/curves/%s.csv", c->dir, m->name);
        struct stat st;
        if (stat(path, &st) != 0) {
            if (errno == ENOENT || errno == ENOTDIR) continue;
            return tt_fail(err, TT_EIO, "%s: %s", path, strerror(errno));
        }
        curve *cv = &c->curves[c->n_curves];
        cv->method = m->name;
        if (curve_read(path, cv, err)) return -1;
        c->n_curves++;
        m->crv = cv;
    }
    return 0;
}

int report_write(const char *dir, const report_opts *opts, tt_err *err) {
    if (strlen(dir) > 4000) return tt_fail(err, TT_EINPUT, "%.60s...: path too long", dir);
    char path[4200];
    snprintf(path, sizeof path, "%s/results.csv", dir);
    results_table t = {0};
    results_table pub = {0};
    ctx c = {.dir = dir, .t = &t};
    leaderboard *lbs = NULL;
    int rc = -1;
    if (opts && opts->published) {
        if (results_read_golden(opts->published, &pub, err)) return -1;
        c.pub = &pub;
        c.pub_path = opts->published;
    }
    if (results_read(path, &t, err)) {
        results_free(&pub);
        return -1;
    }
    if (t.n == 0) {
        tt_fail(err, TT_EINPUT, "%s: no result rows (nothing to report)", path);
        goto done;
    }
    c.methods = calloc(t.n, sizeof *c.methods);
    if (!c.methods) goto oom;
    for (size_t i = 0; i < t.n; i++) {
        const results_row *r = &t.rows[i];
        method_info *m = (method_info *)method_of(&c, r->method);
        if (!m) {
            m = &c.methods[c.n_methods];
            m->name = r->method;
            m->peak_rss = NAN;
            size_t plain = 0; /* palette index: count of non-reference methods before this one */
            for (size_t k = 0; k < c.n_methods; k++) plain += !is_reference(c.methods[k].name);
            m->color = !strcmp(r->method, "zeroshot") ? "#a0a0a0" : !strcmp(r->method, "individual") ? "#4a4a4a" : palette[plain % N_PALETTE];
            c.n_methods++;
        }
        if (!isnan(r->peak_rss_mb) && (isnan(m->peak_rss) || r->peak_rss_mb > m->peak_rss)) m->peak_rss = r->peak_rss_mb;
    }
    if (load_curves(&c, err)) goto done;
    load_suite_json(&c, opts);
    c.n_suites = results_suites(&t, &c.suites, err);
    if (c.n_suites < 0) goto done;
    lbs = calloc((size_t)c.n_suites, sizeof *lbs);
    if (!lbs) goto oom;
    for (long s = 0; s < c.n_suites; s++)
        if (results_leaderboard_for(&t, c.suites[s], &lbs[s], err)) goto done;
    if (c.n_suites == 1) { /* predictions/ belongs to the one suite a bench wrote */
        stats_opts so = opts && opts->stats ? *opts->stats : stats_defaults();
        if (stats_dir_load(dir, &lbs[0], &c.preds, &c.n_preds, err) || stats_compute(c.preds, c.n_preds, &so, &c.sb, err))
            goto done;
    }

    fio_file f;
    snprintf(path, sizeof path, "%s/report.md", dir);
    if (fio_open_atomic(&f, path, err)) goto done;
    write_md(f.fp, &c, lbs);
    if (fio_commit(&f, err)) goto done;
    snprintf(path, sizeof path, "%s/report.html", dir);
    if (fio_open_atomic(&f, path, err)) goto done;
    write_html(f.fp, &c, lbs);
    if (fio_commit(&f, err)) goto done;
    rc = 0;
    goto done;
oom:
    tt_fail(err, TT_ENOMEM, "report: out of memory");
done:
    for (long s = 0; lbs && s < c.n_suites; s++) results_leaderboard_free(&lbs[s]);
    free(lbs);
    for (size_t i = 0; i < c.n_curves; i++) curve_free(&c.curves[i]);
    free(c.curves);
    free(c.methods);
    free(c.suites);
    stats_free(&c.sb);
    for (int i = 0; i < c.n_preds; i++) predictions_free(&c.preds[i]);
    free(c.preds);
    json_decref(c.suite_json);
    results_free(&t);
    results_free(&pub);
    return rc;
}
