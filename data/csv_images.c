/* csv_images.c — see csv_images.h.
 *
 * The text is fed to libcsv one line at a time so that the callbacks know the line they are
 * on (libcsv reports no positions); a row ends inside the chunk of the line that ends it. Rows
 * are turned into images as they complete, so memory is the text plus the images, never a
 * float copy of the whole file. */
#include "data/csv_images.h"

#include <csv.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/idx.h"

/* The text limit of idx_slurp, and the largest image set one file may produce. */
#define CSVIM_MAX_TEXT ((size_t)256 << 20)
#define CSVIM_MAX_IMAGES ((size_t)4 << 30)
#define CSVIM_MAX_FEATURES ((size_t)1 << 24)

typedef struct csv_state {
    const char *path;
    const csvim_opts *o;
    tt_err *err;
    bool failed;
    bool images;       /* csvim_read (else csvim_range) */
    size_t line;       /* 1-based line being parsed */
    size_t rows;       /* rows completed, the header included */
    int field;         /* fields seen in the current row */
    int ncols, label_col;
    size_t nfeat;
    float *row;        /* [nfeat] features of the current row */
    int32_t label;
    float min, max;    /* csvim_range: over every feature so far (once have_minmax) */
    bool have_minmax;
    /* csvim_read: the images so far */
    uint8_t *pixels;
    int32_t *labels;
    size_t n, cap, per;
    float *scratch;    /* [out_size^2] one resampled channel */
} csv_state;

static bool is_digit(char ch) { return ch >= '0' && ch <= '9'; }

/* [+-]digits[.digits][(e|E)[+-]digits] with at least one mantissa digit, nothing else: the
 * subset of strtod's syntax that is a plain decimal number (no inf, nan, hex or spaces). */
static bool number_syntax(const char *s, size_t len) {
    size_t i = 0, digits = 0;
    if (i < len && (s[i] == '+' || s[i] == '-')) i++;
    for (; i < len && is_digit(s[i]); i++) digits++;
    if (i < len && s[i] == '.')
        for (i++; i < len && is_digit(s[i]); i++) digits++;
    if (!digits) return false;
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < len && (s[i] == '+' || s[i] == '-')) i++;
        size_t exp_digits = 0;
        for (; i < len && is_digit(s[i]); i++) exp_digits++;
        if (!exp_digits) return false;
    }
    return i == len;
}

/* [-]digits, 1..9 digits: *v exactly. */
static bool small_integer(const char *s, size_t len, double *v) {
    size_t i = s[0] == '-' ? 1 : 0;
    if (len <= i || len - i > 9) return false;
    long x = 0;
    for (; i < len; i++) {
        if (!is_digit(s[i])) return false;
        x = x * 10 + (s[i] - '0');
    }
    *v = s[0] == '-' ? -(double)x : (double)x;
    return true;
}

static void row_fail(csv_state *st, tt_code code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void row_fail(csv_state *st, tt_code code, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    tt_fail(st->err, code, "%s: line %zu: %s", st->path, st->line, msg);
    st->failed = true;
}

static void on_field(void *s, size_t len, void *user) {
    csv_state *st = user;
    if (st->failed) return;
    int f = st->field++;
    if (f >= st->ncols) return;                  /* counted; reported at the end of the row */
    if (st->o->header && st->rows == 0) return;  /* the header's text is not read */
    const char *text = s ? s : "";
    if (!s) len = 0;
    char b[48];
    if (len > CSVIM_FIELD_MAX) {
        row_fail(st, TT_EINPUT, "column %d: a field of %zu characters (a number has at most %d)", f + 1, len,
                 CSVIM_FIELD_MAX);
        return;
    }
    /* CSV_APPEND_NULL: text[len] == 0, so strtod stops at the end of the field. Plain
     * integers (most pixel files) skip strtod: below 10^9 the value is the same, exactly. */
    char *end = NULL;
    double v = 0;
    if (small_integer(text, len, &v)) end = (char *)text + len;
    else if (number_syntax(text, len)) v = strtod(text, &end);
    if (end != text + len) {
        row_fail(st, TT_EINPUT, "column %d: \"%s\" is not a number", f + 1,
                 tt_printable(text, len, b, sizeof b));
        return;
    }
    if (!(fabs(v) <= FLT_MAX)) {
        row_fail(st, TT_EINPUT, "column %d: %s is outside the float range", f + 1,
                 tt_printable(text, len, b, sizeof b));
        return;
    }
    if (f == st->label_col) {
        if (v != floor(v)) {
            row_fail(st, TT_EINPUT, "column %d: label %s is not an integer", f + 1,
                     tt_printable(text, len, b, sizeof b));
        } else if (v < 0 || v >= st->o->classes) {
            row_fail(st, TT_EINPUT, "column %d: label %s outside [0, %d)", f + 1,
                     tt_printable(text, len, b, sizeof b), st->o->classes);
        } else {
            st->label = (int32_t)v;
        }
        return;
    }
    float x = (float)v;
    if (st->images && (x < st->o->lo || x > st->o->hi)) {
        row_fail(st, TT_EINPUT, "column %d: %s outside the range [%g, %g]", f + 1,
                 tt_printable(text, len, b, sizeof b), (double)st->o->lo, (double)st->o->hi);
        return;
    }
    if (!st->images) {
        if (!st->have_minmax || x < st->min) st->min = x;
        if (!st->have_minmax || x > st->max) st->max = x;
        st->have_minmax = true;
    }
    st->row[f < st->label_col ? f : f - 1] = x;
}

static bool grow(csv_state *st) {
    if (st->n >= (size_t)DS_MAX_N) {
        row_fail(st, TT_EINPUT, "more than %d data rows", DS_MAX_N);
        return false;
    }
    size_t ncap = st->cap ? st->cap * 2 : 1024;
    if (ncap > (size_t)DS_MAX_N) ncap = (size_t)DS_MAX_N;
    if (ncap > CSVIM_MAX_IMAGES / st->per) ncap = CSVIM_MAX_IMAGES / st->per;
    if (ncap <= st->n) {
        row_fail(st, TT_EINPUT, "the images exceed %zu GiB", CSVIM_MAX_IMAGES >> 30);
        return false;
    }
    uint8_t *px = realloc(st->pixels, ncap * st->per);
    if (px) st->pixels = px;
    int32_t *lb = px ? realloc(st->labels, ncap * sizeof *lb) : NULL;
    if (lb) st->labels = lb;
    if (!px || !lb) {
        row_fail(st, TT_ENOMEM, "out of memory for %zu images", ncap);
        return false;
    }
    st->cap = ncap;
    return true;
}

/* The completed row (st->row, st->label) as image st->n: map, resample, quantise. */
static void emit_image(csv_state *st) {
    const csvim_opts *o = st->o;
    if (st->n == st->cap && !grow(st)) return;
    size_t hw = (size_t)o->height * (size_t)o->width, m = (size_t)o->out_size * (size_t)o->out_size;
    bool resample = o->height != o->out_size || o->width != o->out_size;
    double lo = o->lo, span = (double)o->hi - (double)o->lo;
    uint8_t *dst = st->pixels + st->n * st->per;
    for (int c = 0; c < o->channels; c++) {
        float *src = st->row + (size_t)c * hw;
        for (size_t i = 0; i < hw; i++) src[i] = (float)(((double)src[i] - lo) / span);
        const float *v = src;
        if (resample) {
            ds_resize_bilinear(src, o->height, o->width, st->scratch, o->out_size, o->out_size);
            v = st->scratch;
        }
        for (size_t i = 0; i < m; i++) {
            float x = v[i];
            x = x < 0.0f ? 0.0f : x > 1.0f ? 1.0f : x;
            dst[(size_t)c * m + i] = (uint8_t)floorf(x * 255.0f + 0.5f);
        }
    }
    st->labels[st->n++] = st->label;
}

static void on_row(int term, void *user) {
    (void)term;
    csv_state *st = user;
    if (st->failed) return;
    int nf = st->field;
    st->field = 0;
    bool header = st->o->header && st->rows == 0;
    st->rows++;
    if (nf != st->ncols) {
        const csvim_opts *o = st->o;
        row_fail(st, TT_EINPUT, "%d fields%s, expected %d (%zu features of %dx%dx%d and a label)", nf,
                 header ? " in the header" : "", st->ncols, st->nfeat, o->channels, o->height, o->width);
        return;
    }
    if (header) return;
    if (st->images) emit_image(st);
    else st->n++;
}

static int check_opts(const char *path, const csvim_opts *o, bool images, tt_err *err) {
    if (o->channels < 1 || o->channels > DS_MAX_DIM || o->height < 1 || o->height > DS_MAX_DIM || o->width < 1 ||
        o->width > DS_MAX_DIM)
        return tt_fail(err, TT_EINPUT, "%s: feature shape %dx%dx%d outside [1, %d] per dimension", path, o->channels,
                       o->height, o->width, DS_MAX_DIM);
    size_t nfeat = (size_t)o->channels * (size_t)o->height * (size_t)o->width;
    if (nfeat > CSVIM_MAX_FEATURES)
        return tt_fail(err, TT_EINPUT, "%s: %zu features per row, more than %zu", path, nfeat, CSVIM_MAX_FEATURES);
    if (o->label_column < -1 || (size_t)(o->label_column + 1) > nfeat + 1)
        return tt_fail(err, TT_EINPUT, "%s: label column %d outside the %zu columns (0-based; -1 = the last)", path,
                       o->label_column, nfeat + 1);
    if (o->classes < 1 || o->classes > DS_MAX_N)
        return tt_fail(err, TT_EINPUT, "%s: classes %d outside [1, %d]", path, o->classes, DS_MAX_N);
    if (!images) return 0;
    if (!(isfinite(o->lo) && isfinite(o->hi) && o->lo < o->hi))
        return tt_fail(err, TT_EINPUT, "%s: range [%g, %g] must be finite with min < max", path, (double)o->lo,
                       (double)o->hi);
    if (o->out_size < 1 || o->out_size > DS_MAX_DIM)
        return tt_fail(err, TT_EINPUT, "%s: output size %d outside [1, %d]", path, o->out_size, DS_MAX_DIM);
    return 0;
}

/* Parse the whole file into st, which the caller has zeroed and, for images, given per and
 * scratch. */
static int scan(const char *path, const csvim_opts *o, csv_state *st, tt_err *err) {
    st->path = path;
    st->o = o;
    st->err = err;
    st->nfeat = (size_t)o->channels * (size_t)o->height * (size_t)o->width;
    st->ncols = (int)st->nfeat + 1;
    st->label_col = o->label_column < 0 ? st->ncols - 1 : o->label_column;
    st->line = 1;
    uint8_t *text = NULL;
    size_t len = 0;
    if (idx_slurp(path, CSVIM_MAX_TEXT, &text, &len, err) != 0) return -1;
    struct csv_parser p;
    if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL) != 0) {
        free(text);
        return tt_fail(err, TT_ENOMEM, "%s: cannot initialise the CSV parser", path);
    }
    st->row = malloc(st->nfeat * sizeof *st->row);
    if (!st->row) {
        tt_fail(err, TT_ENOMEM, "%s: out of memory for a row of %zu features", path, st->nfeat);
        st->failed = true;
    }
    for (size_t off = 0; off < len && !st->failed;) {
        const uint8_t *nl = memchr(text + off, '\n', len - off);
        size_t chunk = nl ? (size_t)(nl - (text + off)) + 1 : len - off;
        size_t used = csv_parse(&p, text + off, chunk, on_field, on_row, st);
        if (st->failed) break;
        if (used != chunk) {
            int ce = csv_error(&p);
            row_fail(st, ce == CSV_ENOMEM || ce == CSV_ETOOBIG ? TT_ENOMEM : TT_EINPUT,
                     "CSV error: %s (a quote inside an unquoted field, or text after a closing quote)",
                     csv_strerror(ce));
            break;
        }
        off += chunk;
        if (nl && off < len) st->line++;
    }
    if (!st->failed && csv_fini(&p, on_field, on_row, st) != 0 && !st->failed)
        row_fail(st, TT_EINPUT, "CSV error: %s (a quoted field is not closed)", csv_strerror(csv_error(&p)));
    if (!st->failed && st->n == 0) {
        if (st->rows == 0) row_fail(st, TT_EINPUT, "empty file, no data rows");
        else row_fail(st, TT_EINPUT, "only a header, no data rows");
    }
    csv_free(&p);
    free(text);
    free(st->row);
    st->row = NULL;
    return st->failed ? -1 : 0;
}

int csvim_range(const char *path, const csvim_opts *o, float *lo, float *hi, tt_err *err) {
    if (check_opts(path, o, false, err)) return -1;
    csv_state st = {0};
    if (scan(path, o, &st, err)) return -1;
    *lo = st.min;
    *hi = st.max;
    return 0;
}

int csvim_read(const char *path, const csvim_opts *o, ds_images *out, tt_err *err) {
    memset(out, 0, sizeof *out);
    if (check_opts(path, o, true, err)) return -1;
    size_t m = (size_t)o->out_size * (size_t)o->out_size;
    csv_state st = {.images = true, .per = (size_t)o->channels * m, .scratch = malloc(m * sizeof(float))};
    int rc = st.scratch ? scan(path, o, &st, err)
                        : tt_fail(err, TT_ENOMEM, "%s: out of memory for a %dx%d resampling buffer", path,
                                  o->out_size, o->out_size);
    free(st.scratch);
    if (rc) {
        free(st.pixels);
        free(st.labels);
        return -1;
    }
    out->n = (int)st.n;
    out->channels = o->channels;
    out->height = o->out_size;
    out->width = o->out_size;
    out->pixels = st.pixels;
    out->labels = st.labels;
    return 0;
}
