#include "data/digits_csv.h"

#include "data/idx.h"

#include <csv.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define DIGITS_PIXELS (DIGITS_SIDE * DIGITS_SIDE)
/* The real file is 0.2 MB uncompressed; anything beyond this is not the digits set. */
#define DIGITS_MAX_BYTES ((size_t)256 << 20)

typedef struct digits_state {
    const char *path;
    tt_err *err;
    bool failed;
    size_t row;      /* rows seen so far (1-based number of the current row = row + 1) */
    int field;       /* fields seen in the current row */
    uint8_t cur[DIGITS_FIELDS];
    uint8_t *raw;    /* [n, 64] values 0..16 */
    int32_t *labels; /* [n] */
    size_t n, cap;
} digits_state;

/* Decimal integer: optional sign, 1..9 digits, nothing else. */
static bool parse_int(const char *s, size_t len, long *out) {
    size_t i = 0;
    bool neg = false;
    if (i < len && (s[i] == '-' || s[i] == '+')) neg = s[i++] == '-';
    if (i == len || len - i > 9) return false;
    long v = 0;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = neg ? -v : v;
    return true;
}

static void on_field(void *s, size_t len, void *user) {
    digits_state *st = user;
    if (st->failed) return;
    int f = st->field++;
    if (f >= DIGITS_FIELDS) return;  /* reported at the end of the row */
    long v = 0;
    const char *text = s ? s : "";
    if (!parse_int(text, s ? len : 0, &v)) {
        tt_fail(st->err, TT_EINPUT, "%s: row %zu, field %d: \"%.24s\" is not an integer", st->path,
                st->row + 1, f + 1, text);
        st->failed = true;
        return;
    }
    if (f < DIGITS_PIXELS && (v < 0 || v > DIGITS_MAX_VALUE)) {
        tt_fail(st->err, TT_EINPUT, "%s: row %zu: pixel %d is %ld, outside [0, %d]", st->path,
                st->row + 1, f, v, DIGITS_MAX_VALUE);
        st->failed = true;
        return;
    }
    if (f == DIGITS_PIXELS && (v < 0 || v > 9)) {
        tt_fail(st->err, TT_EINPUT, "%s: row %zu: label is %ld, outside [0, 9]", st->path,
                st->row + 1, v);
        st->failed = true;
        return;
    }
    st->cur[f] = (uint8_t)v;
}

static void on_row(int term, void *user) {
    (void)term;
    digits_state *st = user;
    if (st->failed) return;
    st->row++;
    if (st->field != DIGITS_FIELDS) {
        tt_fail(st->err, TT_EINPUT, "%s: row %zu has %d fields, expected %d (64 pixels + label)",
                st->path, st->row, st->field, DIGITS_FIELDS);
        st->failed = true;
        return;
    }
    st->field = 0;
    if (st->n == st->cap) {
        if (st->n >= (size_t)DS_MAX_N) {
            tt_fail(st->err, TT_EINPUT, "%s: more than %d rows", st->path, DS_MAX_N);
            st->failed = true;
            return;
        }
        size_t ncap = st->cap ? st->cap * 2 : 1024;
        if (ncap > (size_t)DS_MAX_N) ncap = (size_t)DS_MAX_N;
        uint8_t *r = realloc(st->raw, ncap * DIGITS_PIXELS);
        if (r) st->raw = r;
        int32_t *l = r ? realloc(st->labels, ncap * sizeof *l) : NULL;
        if (l) st->labels = l;
        if (!r || !l) {
            tt_fail(st->err, TT_ENOMEM, "%s: out of memory at row %zu", st->path, st->row);
            st->failed = true;
            return;
        }
        st->cap = ncap;
    }
    memcpy(st->raw + st->n * DIGITS_PIXELS, st->cur, DIGITS_PIXELS);
    st->labels[st->n] = st->cur[DIGITS_PIXELS];
    st->n++;
}

void digits_resample(const uint8_t *raw, int out_size, float *scratch, uint8_t *dst) {
    if (out_size == DIGITS_SIDE) {
        /* round(x/16*255), half up, in exact integer arithmetic */
        for (int i = 0; i < DIGITS_PIXELS; i++)
            dst[i] = (uint8_t)(((unsigned)raw[i] * 255u + 8u) / 16u);
        return;
    }
    float src[DIGITS_PIXELS];
    for (int i = 0; i < DIGITS_PIXELS; i++) src[i] = (float)raw[i] / 16.0f;
    size_t m = (size_t)out_size * (size_t)out_size;
    ds_resize_bilinear(src, DIGITS_SIDE, DIGITS_SIDE, scratch, out_size, out_size);
    for (size_t i = 0; i < m; i++) {
        float v = scratch[i];
        v = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
        dst[i] = (uint8_t)floorf(v * 255.0f + 0.5f);
    }
}

int digits_read(const char *path, int out_size, ds_images *out, tt_err *err) {
    memset(out, 0, sizeof *out);
    if (out_size < 1 || out_size > DS_MAX_DIM)
        return tt_fail(err, TT_EINPUT, "%s: output size %d outside [1, %d]", path, out_size,
                       DS_MAX_DIM);
    uint8_t *text = NULL;
    size_t len = 0;
    if (idx_slurp(path, DIGITS_MAX_BYTES, &text, &len, err) != 0) return -1;
    struct csv_parser p;
    if (csv_init(&p, CSV_STRICT | CSV_APPEND_NULL) != 0) {
        free(text);
        return tt_fail(err, TT_ENOMEM, "%s: cannot initialise the CSV parser", path);
    }
    digits_state st = {.path = path, .err = err};
    float *scratch = NULL;
    int rc = -1;
    size_t used = csv_parse(&p, text, len, on_field, on_row, &st);
    if (st.failed) goto done;
    if (used != len) {
        int ce = csv_error(&p);
        tt_fail(err, ce == CSV_ENOMEM || ce == CSV_ETOOBIG ? TT_ENOMEM : TT_EINPUT,
                "%s: row %zu: CSV error: %s", path, st.row + 1, csv_strerror(ce));
        goto done;
    }
    if (csv_fini(&p, on_field, on_row, &st) != 0) {
        tt_fail(err, TT_EINPUT, "%s: row %zu: CSV error: %s", path, st.row + 1,
                csv_strerror(csv_error(&p)));
        goto done;
    }
    if (st.failed) goto done;
    if (st.n == 0) {
        tt_fail(err, TT_EINPUT, "%s: no rows", path);
        goto done;
    }
    if (ds_images_alloc(out, (int)st.n, 1, out_size, out_size, true, err) != 0) {
        tt_prefix(err, "%s: ", path);
        goto done;
    }
    size_t per = ds_image_size(out);
    scratch = malloc(per * sizeof *scratch);
    if (!scratch) {
        ds_images_free(out);
        tt_fail(err, TT_ENOMEM, "%s: out of memory for a %dx%d resampling buffer", path, out_size,
                out_size);
        goto done;
    }
    for (size_t i = 0; i < st.n; i++) {
        digits_resample(st.raw + i * DIGITS_PIXELS, out_size, scratch, out->pixels + i * per);
        out->labels[i] = st.labels[i];
    }
    rc = 0;
done:
    csv_free(&p);
    free(text);
    free(st.raw);
    free(st.labels);
    free(scratch);
    return rc;
}
