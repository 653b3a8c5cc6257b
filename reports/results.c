/* results.c — see results.h. Reading: libcsv (strict) over the whole file, a per-record state
 * machine (header, then rows), a hash set for duplicate keys. Writing: csv_fwrite for every
 * text field, fixed-decimal numbers, fio_open_atomic/fio_commit. */
#include "reports/results.h"

#include <csv.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"

const char *const results_columns[RESULTS_NCOLS] = {
    "suite", "method", "params",  "task", "accuracy", "normalized_accuracy", "seconds",
    "peak_rss_mb", "git_revision", "threads", "seed", "status", "error"};

enum { C_SUITE, C_METHOD, C_PARAMS, C_TASK, C_ACC, C_NORM, C_SEC, C_RSS, C_GIT, C_THREADS, C_SEED, C_STATUS, C_ERROR };

#define MAX_HEADER_COLS 1024

const char *results_status_str(results_status s) { return s == RESULTS_OK ? "ok" : "failed"; }

const char *results_leaderboard_status_str(leaderboard_status s) {
    switch (s) {
    case LEADERBOARD_OK: return "ok";
    case LEADERBOARD_INCOMPLETE: return "incomplete";
    case LEADERBOARD_FAILED: return "failed";
    }
    return "?";
}

/* ---- a small hash map: up to three borrowed strings -> size_t ---------------------------- */

typedef struct hslot {
    uint64_t h;
    const char *k[3];
    size_t v;
    bool used;
} hslot;

typedef struct hmap {
    hslot *s;
    size_t cap, n; /* cap is a power of two; load kept <= 1/2 */
} hmap;

static uint64_t hkey(const char *a, const char *b, const char *c) {
    uint64_t h = 1469598103934665603ull;
    const char *k[3] = {a, b, c};
    for (int i = 0; i < 3; i++) {
        for (const unsigned char *p = (const unsigned char *)(k[i] ? k[i] : ""); *p; p++) h = (h ^ *p) * 1099511628211ull;
        h = (h ^ 0x1f) * 1099511628211ull; /* separator: ("ab","c") != ("a","bc") */
    }
    return h;
}

static bool hslot_eq(const hslot *s, uint64_t h, const char *a, const char *b, const char *c) {
    const char *k[3] = {a, b, c};
    if (s->h != h) return false;
    for (int i = 0; i < 3; i++)
        if (strcmp(s->k[i] ? s->k[i] : "", k[i] ? k[i] : "") != 0) return false;
    return true;
}

static int hmap_grow(hmap *m) {
    size_t ncap = m->cap ? m->cap * 2 : 64;
    hslot *ns = calloc(ncap, sizeof *ns);
    if (!ns) return -1;
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->s[i].used) continue;
        size_t j = m->s[i].h & (ncap - 1);
        while (ns[j].used) j = (j + 1) & (ncap - 1);
        ns[j] = m->s[i];
    }
    free(m->s);
    m->s = ns;
    m->cap = ncap;
    return 0;
}

/* Insert (a,b,c) -> v unless present. Returns 1 and *found when present, 0 when inserted,
 * -1 when out of memory. Keys are borrowed: they must outlive the map. */
static int hmap_put(hmap *m, const char *a, const char *b, const char *c, size_t v, size_t *found) {
    if ((m->n + 1) * 2 > m->cap && hmap_grow(m)) return -1;
    uint64_t h = hkey(a, b, c);
    size_t j = h & (m->cap - 1);
    while (m->s[j].used) {
        if (hslot_eq(&m->s[j], h, a, b, c)) {
            if (found) *found = m->s[j].v;
            return 1;
        }
        j = (j + 1) & (m->cap - 1);
    }
    m->s[j] = (hslot){.h = h, .k = {a, b, c}, .v = v, .used = true};
    m->n++;
    return 0;
}

static void hmap_free(hmap *m) {
    free(m->s);
    *m = (hmap){0};
}

/* ---- rows -------------------------------------------------------------------------------- */

static void row_free(results_row *r) {
    free(r->suite);
    free(r->method);
    free(r->params);
    free(r->task);
    free(r->git_revision);
    free(r->error);
    memset(r, 0, sizeof *r);
}

void results_free(results_table *t) {
    if (!t) return;
    for (size_t i = 0; i < t->n; i++) row_free(&t->rows[i]);
    free(t->rows);
    memset(t, 0, sizeof *t);
}

static bool has_ctrl(const char *s) {
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f) return true;
    return false;
}

/* The row-level rules shared by the reader and the appenders. On failure writes the column
 * and problem into why and returns -1. Appended rows may carry control characters in `error`
 * (a crash message with a newline or tab): row_copy turns them into spaces rather than refusing
 * to record a failure; a file holding them is refused. */
static int row_check(const results_row *r, bool from_file, bool allow_average, char *why, size_t cap) {
    const struct {
        int col;
        const char *v;
        bool nonempty;
    } text[] = {{C_SUITE, r->suite, true}, {C_METHOD, r->method, true}, {C_TASK, r->task, true},
                {C_GIT, r->git_revision, false}, {C_ERROR, r->error, false}};
    for (size_t i = 0; i < sizeof text / sizeof text[0]; i++) {
        const char *v = text[i].v ? text[i].v : "";
        if (text[i].nonempty && !*v) return snprintf(why, cap, "%s: empty", results_columns[text[i].col]), -1;
        if (has_ctrl(v) && (from_file || text[i].col != C_ERROR))
            return snprintf(why, cap, "%s: contains a control character (must be one line)", results_columns[text[i].col]), -1;
    }
    if (!allow_average && !strcmp(r->task, "average"))
        return snprintf(why, cap, "task: 'average' is reserved (averages are computed, not stored)"), -1;
    if (r->status != RESULTS_OK && r->status != RESULTS_FAILED) return snprintf(why, cap, "status: invalid"), -1;
    if (r->status == RESULTS_OK && isnan(r->accuracy))
        return snprintf(why, cap, "accuracy: empty but status is ok"), -1;
    if (!isnan(r->accuracy) && !(r->accuracy >= 0 && r->accuracy <= 100))
        return snprintf(why, cap, "accuracy: %g is outside [0, 100]", r->accuracy), -1;
    const struct {
        int col;
        double v;
    } nonneg[] = {{C_NORM, r->normalized_accuracy}, {C_SEC, r->seconds}, {C_RSS, r->peak_rss_mb}};
    for (size_t i = 0; i < sizeof nonneg / sizeof nonneg[0]; i++) {
        double v = nonneg[i].v;
        if (!isnan(v) && !(v >= 0 && v <= 1e12))
            return snprintf(why, cap, "%s: %g is not a value in [0, 1e12]", results_columns[nonneg[i].col], v), -1;
    }
    if (r->threads < 1 || r->threads > 65536) return snprintf(why, cap, "threads: %d is outside [1, 65536]", r->threads), -1;
    return 0;
}

static char *dup_or_empty(const char *s) { return strdup(s ? s : ""); }

static int row_copy(results_row *dst, const results_row *src) {
    *dst = *src;
    dst->suite = dup_or_empty(src->suite);
    dst->method = dup_or_empty(src->method);
    dst->params = dup_or_empty(src->params);
    dst->task = dup_or_empty(src->task);
    dst->git_revision = dup_or_empty(src->git_revision);
    dst->error = dup_or_empty(src->error);
    if (!dst->suite || !dst->method || !dst->params || !dst->task || !dst->git_revision || !dst->error) {
        row_free(dst);
        return -1;
    }
    for (unsigned char *p = (unsigned char *)dst->error; *p; p++)
        if (*p < 0x20 || *p == 0x7f) *p = ' ';
    return 0;
}

static int reserve(results_table *t, size_t need) {
    if (need <= t->cap) return 0;
    size_t ncap = t->cap ? t->cap : 16;
    while (ncap < need) ncap *= 2;
    results_row *nr = realloc(t->rows, ncap * sizeof *nr);
    if (!nr) return -1;
    t->rows = nr;
    t->cap = ncap;
    return 0;
}

long results_find(const results_table *t, const char *suite, const char *method, const char *task) {
    for (size_t i = 0; i < t->n; i++) {
        const results_row *r = &t->rows[i];
        if (!strcmp(r->suite, suite) && !strcmp(r->method, method) && !strcmp(r->task, task)) return (long)i;
    }
    return -1;
}

/* "suite/method/task" for messages, one line whatever the strings hold. */
static const char *key_str(char *b, size_t cap, const results_row *r) {
    char s[64], m[64], t[64];
    snprintf(b, cap, "%s/%s/%s", results_printable(s, sizeof s, r->suite), results_printable(m, sizeof m, r->method),
             results_printable(t, sizeof t, r->task));
    return b;
}

int results_append_row(results_table *t, const results_row *r, tt_err *err) {
    char why[256], key[200];
    if (!r->suite || !r->method || !r->task) return tt_fail(err, TT_EINTERNAL, "results: row without suite/method/task");
    if (row_check(r, false, false, why, sizeof why)) return tt_fail(err, TT_EINPUT, "results row %s: %s", key_str(key, sizeof key, r), why);
    if (results_find(t, r->suite, r->method, r->task) >= 0)
        return tt_fail(err, TT_EINPUT, "results row %s: already in the table (use upsert)", key_str(key, sizeof key, r));
    if (reserve(t, t->n + 1) || row_copy(&t->rows[t->n], r)) return tt_fail(err, TT_ENOMEM, "results: out of memory");
    t->n++;
    return 0;
}

int results_upsert(results_table *t, const results_row *rows, size_t n, tt_err *err) {
    if (n == 0) return tt_fail(err, TT_EINTERNAL, "results_upsert: no rows");
    char why[256], key[200], key0[200];
    for (size_t i = 0; i < n; i++) {
        const results_row *r = &rows[i];
        if (!r->suite || !r->method || !r->task) return tt_fail(err, TT_EINTERNAL, "results: row without suite/method/task");
        if (row_check(r, false, false, why, sizeof why)) return tt_fail(err, TT_EINPUT, "results row %s: %s", key_str(key, sizeof key, r), why);
        if (strcmp(r->suite, rows[0].suite) || strcmp(r->method, rows[0].method))
            return tt_fail(err, TT_EINTERNAL, "results_upsert: rows %s and %s of different methods in one call",
                           key_str(key0, sizeof key0, &rows[0]), key_str(key, sizeof key, r));
        for (size_t j = 0; j < i; j++)
            if (!strcmp(rows[j].task, r->task))
                return tt_fail(err, TT_EINPUT, "results row %s: task given twice", key_str(key, sizeof key, r));
    }
    const char *suite = rows[0].suite, *method = rows[0].method;
    size_t removed = 0;
    for (size_t i = 0; i < t->n; i++)
        if (!strcmp(t->rows[i].suite, suite) && !strcmp(t->rows[i].method, method)) removed++;
    size_t nn = t->n - removed + n;
    results_row *copies = calloc(n, sizeof *copies), *nr = calloc(nn ? nn : 1, sizeof *nr);
    size_t made = 0;
    for (; copies && made < n; made++)
        if (row_copy(&copies[made], &rows[made])) break;
    if (!copies || !nr || made < n) {
        for (size_t i = 0; copies && i < made; i++) row_free(&copies[i]);
        free(copies);
        free(nr);
        return tt_fail(err, TT_ENOMEM, "results: out of memory");
    }
    /* From here on nothing can fail. */
    size_t k = 0;
    bool placed = false;
    for (size_t i = 0; i < t->n; i++) {
        results_row *r = &t->rows[i];
        if (!strcmp(r->suite, suite) && !strcmp(r->method, method)) {
            if (!placed) {
                memcpy(nr + k, copies, n * sizeof *copies);
                k += n;
                placed = true;
            }
            row_free(r);
        } else {
            nr[k++] = *r;
        }
    }
    if (!placed) {
        memcpy(nr + k, copies, n * sizeof *copies);
        k += n;
    }
    TT_ASSERT(k == nn);
    free(copies);
    free(t->rows);
    t->rows = nr;
    t->n = nn;
    t->cap = nn ? nn : 1;
    return 0;
}

long results_suites(const results_table *t, const char ***suites, tt_err *err) {
    *suites = NULL;
    hmap m = {0};
    const char **out = malloc((t->n ? t->n : 1) * sizeof *out);
    long n = 0;
    if (!out) return tt_fail(err, TT_ENOMEM, "results: out of memory");
    for (size_t i = 0; i < t->n; i++) {
        int rc = hmap_put(&m, t->rows[i].suite, NULL, NULL, (size_t)n, NULL);
        if (rc < 0) {
            free(out);
            hmap_free(&m);
            return tt_fail(err, TT_ENOMEM, "results: out of memory");
        }
        if (rc == 0) out[n++] = t->rows[i].suite;
    }
    hmap_free(&m);
    *suites = out;
    return n;
}

/* ---- reading ----------------------------------------------------------------------------- */

typedef struct rd_state {
    const char *path;
    results_table *t;
    tt_err *err;
    bool failed;
    bool header_done;
    size_t record;               /* 1-based number of the record being parsed */
    int col;                     /* fields seen so far in this record */
    char *f[RESULTS_NCOLS];      /* this record's fields (owned until moved into a row) */
    char *hdr[MAX_HEADER_COLS];  /* header names (owned) */
    hmap keys;                   /* suite × method × task already read */
    bool allow_average;          /* a golden: `average` rows are published means */
} rd_state;

static void rd_fail(rd_state *s, tt_code code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void rd_fail(rd_state *s, tt_code code, const char *fmt, ...) {
    if (s->failed) return;
    s->failed = true;
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    tt_fail(s->err, code, "%s: %s", s->path, msg);
}

char *results_printable(char *dst, size_t cap, const char *src) {
    if (!cap) return dst;
    size_t n = strlen(src), k = 0;
    bool cut = n > cap - 1;
    size_t keep = cut ? (cap > 4 ? cap - 4 : 0) : n;
    while (cut && keep > 0 && ((unsigned char)src[keep] & 0xC0) == 0x80) keep--; /* not inside a UTF-8 sequence */
    for (; k < keep; k++) {
        unsigned char ch = (unsigned char)src[k];
        dst[k] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
    }
    if (cut && cap > 4) memcpy(dst + k, "...", 3), k += 3;
    dst[k] = 0;
    return dst;
}

static void rd_clear_fields(rd_state *s) {
    for (int i = 0; i < RESULTS_NCOLS; i++) {
        free(s->f[i]);
        s->f[i] = NULL;
    }
    for (int i = 0; i < MAX_HEADER_COLS && s->hdr[i]; i++) {
        free(s->hdr[i]);
        s->hdr[i] = NULL;
    }
    s->col = 0;
}

static void rd_field(void *data, size_t len, void *user) {
    rd_state *s = user;
    if (s->failed) return;
    const char *p = data ? (const char *)data : "";
    int c = s->col++;
    if (len > RESULTS_MAX_FIELD) {
        rd_fail(s, TT_EINPUT, "record %zu: field %d is longer than %d bytes", s->record, c + 1, RESULTS_MAX_FIELD);
        return;
    }
    if (memchr(p, 0, len)) {
        rd_fail(s, TT_EINPUT, "record %zu: field %d contains a NUL byte", s->record, c + 1);
        return;
    }
    char **slot = NULL;
    if (!s->header_done) {
        if (c >= MAX_HEADER_COLS) {
            rd_fail(s, TT_EINPUT, "header: more than %d columns", MAX_HEADER_COLS);
            return;
        }
        slot = &s->hdr[c];
    } else if (c < RESULTS_NCOLS) {
        slot = &s->f[c];
    } else {
        return; /* counted; reported at the end of the record */
    }
    *slot = malloc(len + 1);
    if (!*slot) {
        rd_fail(s, TT_ENOMEM, "out of memory");
        return;
    }
    memcpy(*slot, p, len);
    (*slot)[len] = 0;
}

static int col_index(const char *name) {
    for (int i = 0; i < RESULTS_NCOLS; i++)
        if (!strcmp(name, results_columns[i])) return i;
    return -1;
}

/* Header errors name the column: missing, unexpected, duplicated or out of order. */
static void rd_header(rd_state *s) {
    int n = s->col;
    for (int i = 0; i < n; i++) {
        if (col_index(s->hdr[i]) < 0) {
            char b[64];
            rd_fail(s, TT_EINPUT, "header: unexpected column '%s' (column %d; expected %s,...,%s)",
                    results_printable(b, sizeof b, s->hdr[i]), i + 1, results_columns[0], results_columns[RESULTS_NCOLS - 1]);
            return;
        }
        for (int j = 0; j < i; j++)
            if (!strcmp(s->hdr[i], s->hdr[j])) {
                rd_fail(s, TT_EINPUT, "header: column '%s' appears twice (columns %d and %d)", s->hdr[i], j + 1, i + 1);
                return;
            }
    }
    for (int k = 0; k < RESULTS_NCOLS; k++) {
        bool found = false;
        for (int i = 0; i < n && !found; i++) found = !strcmp(s->hdr[i], results_columns[k]);
        if (!found) {
            rd_fail(s, TT_EINPUT, "header: missing column '%s'", results_columns[k]);
            return;
        }
    }
    for (int k = 0; k < RESULTS_NCOLS; k++)
        if (strcmp(s->hdr[k], results_columns[k])) {
            rd_fail(s, TT_EINPUT, "header: column %d is '%s', expected '%s' (columns must be in the documented order)", k + 1,
                    s->hdr[k], results_columns[k]); /* a known column name: printable */
            return;
        }
}

/* A plain decimal: -?digits[.digits][(e|E)[+-]digits]. No spaces, hex, inf or nan. */
static bool is_decimal(const char *p) {
    if (*p == '-' || *p == '+') p++;
    const char *d = p;
    while (*p >= '0' && *p <= '9') p++;
    bool any = p > d;
    if (*p == '.') {
        p++;
        const char *f = p;
        while (*p >= '0' && *p <= '9') p++;
        any = any || p > f;
    }
    if (!any) return false;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '-' || *p == '+') p++;
        const char *x = p;
        while (*p >= '0' && *p <= '9') p++;
        if (p == x) return false;
    }
    return *p == 0;
}

int results_parse_decimal(const char *s, double *out) {
    if (!is_decimal(s)) return -1;
    double v = strtod(s, NULL);
    if (!isfinite(v)) return -1;
    *out = v;
    return 0;
}

static bool rd_number(rd_state *s, int col, bool allow_empty, double *out) {
    const char *v = s->f[col];
    if (!*v && allow_empty) {
        *out = NAN;
        return true;
    }
    if (results_parse_decimal(v, out)) {
        char b[48];
        rd_fail(s, TT_EINPUT, "record %zu: %s: '%s' is not a %snumber", s->record, results_columns[col], results_printable(b, sizeof b, v),
                allow_empty ? "number or empty; it must be a plain decimal " : "plain decimal ");
        return false;
    }
    return true;
}

static bool rd_uint(rd_state *s, int col, uint64_t max, uint64_t *out) {
    const char *v = s->f[col];
    uint64_t x = 0;
    bool ok = *v != 0 && strlen(v) <= 20;
    for (const char *p = v; ok && *p; p++) {
        if (*p < '0' || *p > '9') ok = false;
        else if (x > (UINT64_MAX - (uint64_t)(*p - '0')) / 10) ok = false;
        else x = x * 10 + (uint64_t)(*p - '0');
    }
    if (!ok || x > max) {
        char b[48];
        rd_fail(s, TT_EINPUT, "record %zu: %s: '%s' is not an integer in [0, %llu]", s->record, results_columns[col], results_printable(b, sizeof b, v),
                (unsigned long long)max);
        return false;
    }
    *out = x;
    return true;
}

static void rd_row(int term, void *user) {
    rd_state *s = user;
    (void)term;
    if (s->failed) return;
    if (!s->header_done) {
        rd_header(s);
        s->header_done = true;
        rd_clear_fields(s);
        s->record++;
        return;
    }
    if (s->col != RESULTS_NCOLS) {
        rd_fail(s, TT_EINPUT, "record %zu: %d fields, expected %d", s->record, s->col, RESULTS_NCOLS);
        return;
    }
    if (s->t->n >= RESULTS_MAX_ROWS) {
        rd_fail(s, TT_EINPUT, "more than %d rows", RESULTS_MAX_ROWS);
        return;
    }
    results_row r = {0};
    uint64_t threads = 0, seed = 0;
    if (!rd_number(s, C_ACC, true, &r.accuracy) || !rd_number(s, C_NORM, true, &r.normalized_accuracy) ||
        !rd_number(s, C_SEC, true, &r.seconds) || !rd_number(s, C_RSS, true, &r.peak_rss_mb) ||
        !rd_uint(s, C_THREADS, 65536, &threads) || !rd_uint(s, C_SEED, UINT64_MAX, &seed))
        return;
    const char *st = s->f[C_STATUS];
    if (!strcmp(st, "ok")) r.status = RESULTS_OK;
    else if (!strcmp(st, "failed")) r.status = RESULTS_FAILED;
    else {
        char b[48];
        rd_fail(s, TT_EINPUT, "record %zu: status: '%s' is not ok or failed", s->record, results_printable(b, sizeof b, st));
        return;
    }
    r.threads = (int)threads;
    r.seed = seed;
    r.suite = s->f[C_SUITE];
    r.method = s->f[C_METHOD];
    r.params = s->f[C_PARAMS];
    r.task = s->f[C_TASK];
    r.git_revision = s->f[C_GIT];
    r.error = s->f[C_ERROR];
    char why[256];
    if (row_check(&r, true, s->allow_average, why, sizeof why)) {
        rd_fail(s, TT_EINPUT, "record %zu: %s", s->record, why);
        return;
    }
    if (reserve(s->t, s->t->n + 1)) {
        rd_fail(s, TT_ENOMEM, "out of memory");
        return;
    }
    size_t first = 0;
    int rc = hmap_put(&s->keys, r.suite, r.method, r.task, s->t->n, &first);
    if (rc < 0) {
        rd_fail(s, TT_ENOMEM, "out of memory");
        return;
    }
    if (rc == 1) {
        rd_fail(s, TT_EINPUT, "record %zu: %.60s/%.60s/%.60s appears twice (first in data row %zu)", s->record, r.suite,
                r.method, r.task, first + 1);
        return;
    }
    /* The row takes the strings over; the hash keys point at them and stay valid. */
    s->t->rows[s->t->n++] = r;
    s->f[C_SUITE] = s->f[C_METHOD] = s->f[C_PARAMS] = s->f[C_TASK] = s->f[C_GIT] = s->f[C_ERROR] = NULL;
    rd_clear_fields(s);
    s->record++;
}

static int read_table(const char *path, bool allow_average, results_table *t, tt_err *err);

int results_read(const char *path, results_table *t, tt_err *err) { return read_table(path, false, t, err); }

int results_read_golden(const char *path, results_table *t, tt_err *err) { return read_table(path, true, t, err); }

static int read_table(const char *path, bool allow_average, results_table *t, tt_err *err) {
    memset(t, 0, sizeof *t);
    char *buf = NULL;
    size_t n = 0;
    if (fio_read_all(path, &buf, &n, RESULTS_MAX_FILE_BYTES, err)) return -1;
    rd_state s = {.path = path, .t = t, .err = err, .record = 1, .allow_average = allow_average};
    struct csv_parser p;
    if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL) != 0) {
        free(buf);
        return tt_fail(err, TT_ENOMEM, "%s: out of memory", path);
    }
    size_t off = (n >= 3 && !memcmp(buf, "\xEF\xBB\xBF", 3)) ? 3 : 0; /* a UTF-8 BOM (spreadsheets) */
    if (csv_parse(&p, buf + off, n - off, rd_field, rd_row, &s) != n - off || csv_fini(&p, rd_field, rd_row, &s) != 0) {
        int ce = csv_error(&p);
        if (ce == CSV_ENOMEM || ce == CSV_ETOOBIG) rd_fail(&s, TT_ENOMEM, "out of memory");
        else rd_fail(&s, TT_EINPUT, "record %zu: malformed CSV (%s: a quote inside an unquoted field, text after a closing quote, or an unterminated quoted field)",
                     s.record, csv_strerror(ce));
    }
    csv_free(&p);
    free(buf);
    if (!s.failed && !s.header_done)
        rd_fail(&s, TT_EINPUT, "empty file (expected the header %s,%s,...)", results_columns[0], results_columns[1]);
    rd_clear_fields(&s);
    hmap_free(&s.keys);
    if (s.failed) {
        results_free(t);
        return -1;
    }
    return 0;
}

/* ---- writing ----------------------------------------------------------------------------- */

static void put_text(FILE *fp, const char *s) {
    s = s ? s : "";
    csv_fwrite(fp, s, strlen(s));
}

/* Fixed decimals; NaN -> empty cell; -0 -> 0. */
static void put_num(FILE *fp, double v, int decimals) {
    if (isnan(v)) return;
    if (v == 0) v = 0;
    char b[64];
    snprintf(b, sizeof b, "%.*f", decimals, v);
    if (!strncmp(b, "-0", 2) && strspn(b + 2, ".0") == strlen(b + 2)) memmove(b, b + 1, strlen(b)); /* "-0.0000" */
    fputs(b, fp);
}

int results_write(const char *path, const results_table *t, tt_err *err) {
    fio_file f;
    if (fio_open_atomic(&f, path, err)) return -1;
    FILE *fp = f.fp;
    for (int c = 0; c < RESULTS_NCOLS; c++) fprintf(fp, "%s%s", c ? "," : "", results_columns[c]);
    fputc('\n', fp);
    for (size_t i = 0; i < t->n; i++) {
        const results_row *r = &t->rows[i];
        put_text(fp, r->suite), fputc(',', fp);
        put_text(fp, r->method), fputc(',', fp);
        put_text(fp, r->params), fputc(',', fp);
        put_text(fp, r->task), fputc(',', fp);
        put_num(fp, r->accuracy, 4), fputc(',', fp);
        put_num(fp, r->normalized_accuracy, 4), fputc(',', fp);
        put_num(fp, r->seconds, 3), fputc(',', fp);
        put_num(fp, r->peak_rss_mb, 1), fputc(',', fp);
        put_text(fp, r->git_revision), fputc(',', fp);
        fprintf(fp, "%d,%llu,", r->threads, (unsigned long long)r->seed);
        put_text(fp, results_status_str(r->status)), fputc(',', fp);
        put_text(fp, r->error), fputc('\n', fp);
    }
    return fio_commit(&f, err);
}

/* ---- leaderboard ------------------------------------------------------------------------- */

void results_leaderboard_free(leaderboard *lb) {
    if (!lb) return;
    for (int i = 0; i < lb->n_rows; i++) {
        leaderboard_row *r = &lb->rows[i];
        free(r->method);
        free(r->params);
        free(r->error);
        free(r->task_accuracy);
        free(r->task_normalized);
    }
    free(lb->rows);
    for (int i = 0; i < lb->n_tasks; i++) free(lb->tasks[i]);
    free(lb->tasks);
    free(lb->suite);
    memset(lb, 0, sizeof *lb);
}

static int lb_cmp(const void *pa, const void *pb) {
    const leaderboard_row *a = pa, *b = pb;
    if (a->status != b->status) return a->status < b->status ? -1 : 1;
    if (a->status != LEADERBOARD_FAILED) {
        bool na = isnan(a->avg_accuracy), nb = isnan(b->avg_accuracy);
        if (na != nb) return na ? 1 : -1;
        if (!na && a->avg_accuracy != b->avg_accuracy) return a->avg_accuracy > b->avg_accuracy ? -1 : 1;
    }
    return strcmp(a->method, b->method);
}

int results_leaderboard_for(const results_table *t, const char *suite, leaderboard *lb, tt_err *err) {
    memset(lb, 0, sizeof *lb);
    hmap tasks = {0}, methods = {0};
    size_t n_rows_suite = 0;
    for (size_t i = 0; i < t->n; i++) n_rows_suite += !strcmp(t->rows[i].suite, suite);
    size_t cap = n_rows_suite ? n_rows_suite : 1;
    /* Upper bounds: at most one task and one method per row. */
    lb->suite = strdup(suite);
    lb->tasks = calloc(cap, sizeof *lb->tasks);
    lb->rows = calloc(cap, sizeof *lb->rows);
    size_t *row_task = calloc(cap, sizeof *row_task), *row_method = calloc(cap, sizeof *row_method);
    const results_row **rows = calloc(cap, sizeof *rows);
    if (!lb->suite || !lb->tasks || !lb->rows || !row_task || !row_method || !rows) goto oom;
    size_t k = 0;
    for (size_t i = 0; i < t->n; i++) {
        const results_row *r = &t->rows[i];
        if (strcmp(r->suite, suite)) continue;
        rows[k] = r;
        size_t idx;
        int rc = hmap_put(&tasks, r->task, NULL, NULL, (size_t)lb->n_tasks, &idx);
        if (rc < 0) goto oom;
        if (rc == 0) {
            idx = (size_t)lb->n_tasks;
            if (!(lb->tasks[lb->n_tasks++] = strdup(r->task))) goto oom;
        }
        row_task[k] = idx;
        rc = hmap_put(&methods, r->method, NULL, NULL, (size_t)lb->n_rows, &idx);
        if (rc < 0) goto oom;
        if (rc == 0) {
            idx = (size_t)lb->n_rows;
            leaderboard_row *m = &lb->rows[lb->n_rows++];
            m->seconds = NAN;
            if (!(m->method = strdup(r->method)) || !(m->params = strdup(r->params)) || !(m->error = strdup(""))) goto oom;
        }
        row_method[k] = idx;
        k++;
    }
    for (int m = 0; m < lb->n_rows; m++) {
        leaderboard_row *row = &lb->rows[m];
        row->task_accuracy = malloc((size_t)(lb->n_tasks ? lb->n_tasks : 1) * sizeof(double));
        row->task_normalized = malloc((size_t)(lb->n_tasks ? lb->n_tasks : 1) * sizeof(double));
        if (!row->task_accuracy || !row->task_normalized) goto oom;
        for (int j = 0; j < lb->n_tasks; j++) row->task_accuracy[j] = row->task_normalized[j] = NAN;
    }
    for (size_t i = 0; i < k; i++) {
        const results_row *r = rows[i];
        leaderboard_row *row = &lb->rows[row_method[i]];
        if (!isnan(r->seconds) && (isnan(row->seconds) || r->seconds > row->seconds)) row->seconds = r->seconds;
        if (r->status == RESULTS_FAILED) {
            if (row->status != LEADERBOARD_FAILED) {
                row->status = LEADERBOARD_FAILED;
                char *e = strdup(r->error);
                if (!e) goto oom;
                free(row->error);
                row->error = e;
            }
            continue;
        }
        row->task_accuracy[row_task[i]] = r->accuracy;
        row->task_normalized[row_task[i]] = r->normalized_accuracy;
    }
    for (int m = 0; m < lb->n_rows; m++) {
        leaderboard_row *row = &lb->rows[m];
        double sa = 0, sn = 0;
        int na = 0, nn = 0;
        for (int j = 0; j < lb->n_tasks; j++) {
            if (!isnan(row->task_accuracy[j])) sa += row->task_accuracy[j], na++;
            if (!isnan(row->task_normalized[j])) sn += row->task_normalized[j], nn++;
        }
        row->n_ok_tasks = na;
        row->avg_accuracy = na ? sa / na : NAN;
        row->avg_normalized_accuracy = nn ? sn / nn : NAN;
        if (row->status != LEADERBOARD_FAILED) row->status = na == lb->n_tasks ? LEADERBOARD_OK : LEADERBOARD_INCOMPLETE;
    }
    qsort(lb->rows, (size_t)lb->n_rows, sizeof *lb->rows, lb_cmp);
    for (int m = 0; m < lb->n_rows; m++) lb->rows[m].rank = m + 1;
    hmap_free(&tasks);
    hmap_free(&methods);
    free(row_task);
    free(row_method);
    free(rows);
    return 0;
oom:
    hmap_free(&tasks);
    hmap_free(&methods);
    free(row_task);
    free(row_method);
    free(rows);
    results_leaderboard_free(lb);
    return tt_fail(err, TT_ENOMEM, "leaderboard: out of memory");
}

int results_leaderboard(const results_table *t, leaderboard *lb, tt_err *err) {
    memset(lb, 0, sizeof *lb);
    const char **suites = NULL;
    long ns = results_suites(t, &suites, err);
    if (ns < 0) return -1;
    if (ns > 1) {
        tt_fail(err, TT_EINPUT, "results hold %ld suites ('%s', '%s'%s); a leaderboard covers one suite", ns, suites[0],
                suites[1], ns > 2 ? ", ..." : "");
        free(suites);
        return -1;
    }
    int rc = results_leaderboard_for(t, ns ? suites[0] : "", lb, err);
    free(suites);
    return rc;
}

/* Header cells: bare when safe, else quoted (a task name may hold a comma or a quote). */
static void put_header_cell(FILE *fp, const char *s) {
    if (strpbrk(s, ",\"\r\n") || s[0] == ' ' || (*s && s[strlen(s) - 1] == ' ')) put_text(fp, s);
    else fputs(s, fp);
}

int results_write_leaderboard(const char *path, const leaderboard *lb, tt_err *err) {
    return results_write_leaderboard_ext(path, lb, NULL, err);
}

int results_write_leaderboard_ext(const char *path, const leaderboard *lb, const leaderboard_extra *x, tt_err *err) {
    fio_file f;
    if (fio_open_atomic(&f, path, err)) return -1;
    FILE *fp = f.fp;
    fputs("rank,method,avg_accuracy,avg_normalized_accuracy", fp);
    for (int j = 0; j < lb->n_tasks; j++) {
        fputc(',', fp);
        put_header_cell(fp, lb->tasks[j]);
    }
    fputs(",seconds,status", fp);
    for (int c = 0; x && c < x->n_cols; c++) fputc(',', fp), put_header_cell(fp, x->names[c]);
    fputc('\n', fp);
    for (int m = 0; m < lb->n_rows; m++) {
        const leaderboard_row *r = &lb->rows[m];
        fprintf(fp, "%d,", r->rank);
        put_text(fp, r->method), fputc(',', fp);
        put_num(fp, r->avg_accuracy, 4), fputc(',', fp);
        put_num(fp, r->avg_normalized_accuracy, 4), fputc(',', fp);
        for (int j = 0; j < lb->n_tasks; j++) put_num(fp, r->task_accuracy[j], 4), fputc(',', fp);
        put_num(fp, r->seconds, 3), fputc(',', fp);
        put_text(fp, results_leaderboard_status_str(r->status));
        for (int c = 0; x && c < x->n_cols; c++) {
            fputc(',', fp);
            const char *text = x->text ? x->text[(size_t)m * x->n_cols + c] : NULL;
            if (text) put_text(fp, text);
            else put_num(fp, x->values[(size_t)m * x->n_cols + c], x->decimals[c]);
        }
        fputc('\n', fp);
    }
    return fio_commit(&f, err);
}
