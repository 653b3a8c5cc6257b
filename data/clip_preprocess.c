/* clip_preprocess.c — see clip_preprocess.h. The resampler follows the algorithm of Pillow's
 * src/libImaging/Resample.c (precompute_coeffs, normalize_coeffs_8bpc, the 8bpc passes and
 * ImagingResampleInner); every double and integer operation is kept in Pillow's order, since
 * a reordered sum can move a coefficient by one unit of 2^-22 and a pixel by one level. */
#include "data/clip_preprocess.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const float clipp_mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
const float clipp_std[3] = {0.26862954f, 0.26130258f, 0.27577711f};

#define PREC_BITS 22 /* Pillow's PRECISION_BITS */

static double bicubic_(double x) {
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

/* Taps of output indices [o0, o0 + cnt) of a resample from in_size to out_size. */
typedef struct taps {
    int ksize;
    int *first, *count; /* [cnt] */
    int32_t *k;         /* [cnt, ksize] fixed point */
} taps;

static void taps_free_(taps *t) {
    free(t->first);
    free(t->count);
    free(t->k);
    memset(t, 0, sizeof *t);
}

static int taps_make_(int in_size, int out_size, int o0, int cnt, taps *t, tt_err *err) {
    memset(t, 0, sizeof *t);
    /* Pillow's box is float: (double)(in1 - in0) with in0 = 0, in1 = (float)in_size. */
    double scale = (double)(float)in_size / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 2.0 * filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    double inv_filterscale = 1.0 / filterscale;
    t->ksize = ksize;
    t->first = malloc(sizeof(int) * (size_t)cnt);
    t->count = malloc(sizeof(int) * (size_t)cnt);
    t->k = calloc((size_t)cnt * (size_t)ksize, sizeof(int32_t));
    double *w = malloc(sizeof(double) * (size_t)ksize);
    if (!t->first || !t->count || !t->k || !w) {
        free(w);
        taps_free_(t);
        return tt_fail(err, TT_ENOMEM, "out of memory for resampling taps");
    }
    for (int i = 0; i < cnt; i++) {
        int xx = o0 + i;
        double center = (xx + 0.5) * scale;
        int xmin = (int)(center - support + 0.5); /* C truncation, as Pillow */
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        int n = xmax - xmin;
        if (n > ksize) n = ksize; /* cannot happen: support * 2 + 1 taps at most */
        double ww = 0.0;
        for (int x = 0; x < n; x++) {
            w[x] = bicubic_((x + xmin - center + 0.5) * inv_filterscale);
            ww += w[x];
        }
        if (ww != 0.0)
            for (int x = 0; x < n; x++) w[x] /= ww;
        int32_t *k = t->k + (size_t)i * ksize;
        for (int x = 0; x < n; x++)
            k[x] = w[x] < 0 ? (int32_t)(-0.5 + w[x] * (1 << PREC_BITS)) : (int32_t)(0.5 + w[x] * (1 << PREC_BITS));
        t->first[i] = xmin;
        t->count[i] = n;
    }
    free(w);
    return 0;
}

static inline uint8_t clip8_(int32_t acc) {
    int32_t v = acc >> PREC_BITS; /* arithmetic shift: floor, as Pillow's lookup table index */
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* Horizontal pass over rows [r0, r0 + nr) of src (w wide) into tmp (nr x cw RGB). */
static void pass_h_(const uint8_t *src, int w, int r0, int nr, const taps *t, int cw, uint8_t *tmp) {
    for (int r = 0; r < nr; r++) {
        const uint8_t *in = src + (size_t)(r0 + r) * w * 3;
        uint8_t *out = tmp + (size_t)r * cw * 3;
        for (int i = 0; i < cw; i++) {
            const int32_t *k = t->k + (size_t)i * t->ksize;
            const uint8_t *p = in + (size_t)t->first[i] * 3;
            int32_t s0 = 1 << (PREC_BITS - 1), s1 = s0, s2 = s0;
            for (int x = 0; x < t->count[i]; x++) {
                s0 += p[3 * x] * k[x];
                s1 += p[3 * x + 1] * k[x];
                s2 += p[3 * x + 2] * k[x];
            }
            out[3 * i] = clip8_(s0), out[3 * i + 1] = clip8_(s1), out[3 * i + 2] = clip8_(s2);
        }
    }
}

/* Vertical pass: output row j reads rows first[j]-base .. of tmp (rowlen bytes each). */
static void pass_v_(const uint8_t *tmp, size_t rowlen, int base, const taps *t, int ch, int32_t *acc,
                    uint8_t *dst) {
    for (int j = 0; j < ch; j++) {
        const int32_t *k = t->k + (size_t)j * t->ksize;
        for (size_t b = 0; b < rowlen; b++) acc[b] = 1 << (PREC_BITS - 1);
        for (int y = 0; y < t->count[j]; y++) {
            const uint8_t *in = tmp + (size_t)(t->first[j] - base + y) * rowlen;
            int32_t ky = k[y];
            for (size_t b = 0; b < rowlen; b++) acc[b] += in[b] * ky;
        }
        uint8_t *out = dst + (size_t)j * rowlen;
        for (size_t b = 0; b < rowlen; b++) out[b] = clip8_(acc[b]);
    }
}

int clipp_resize_window(const uint8_t *src, int w, int h, int ow, int oh, int x0, int y0, int cw, int ch,
                        uint8_t *dst, tt_err *err) {
    TT_ASSERT(x0 >= 0 && y0 >= 0 && cw >= 1 && ch >= 1 && x0 + cw <= ow && y0 + ch <= oh);
    int need_h = ow != w, need_v = oh != h;
    taps tv = {0}, th = {0};
    uint8_t *tmp = NULL;
    int32_t *acc = NULL;
    int rc = -1;
    size_t rowlen = (size_t)cw * 3;
    /* Rows of the source the window's vertical taps read (all of them when oh == h: then the
     * window rows themselves). */
    int r0 = y0, nr = ch;
    if (need_v) {
        if (taps_make_(h, oh, y0, ch, &tv, err)) goto done;
        r0 = tv.first[0];
        nr = tv.first[ch - 1] + tv.count[ch - 1] - r0;
    }
    const uint8_t *rows; /* nr rows of cw RGB pixels: source rows r0.. after the horizontal pass */
    if (need_h) {
        if (taps_make_(w, ow, x0, cw, &th, err)) goto done;
        tmp = malloc(rowlen * (size_t)nr);
        if (!tmp) {
            tt_fail(err, TT_ENOMEM, "out of memory for a %dx%d resample", cw, nr);
            goto done;
        }
        pass_h_(src, w, r0, nr, &th, cw, tmp);
        rows = tmp;
    } else if (cw == w) {
        rows = src + (size_t)r0 * rowlen;
    } else { /* same width, narrower window: copy the window's columns */
        tmp = malloc(rowlen * (size_t)nr);
        if (!tmp) {
            tt_fail(err, TT_ENOMEM, "out of memory for a %dx%d crop", cw, nr);
            goto done;
        }
        for (int r = 0; r < nr; r++) memcpy(tmp + (size_t)r * rowlen, src + ((size_t)(r0 + r) * w + x0) * 3, rowlen);
        rows = tmp;
    }
    if (need_v) {
        acc = malloc(sizeof(int32_t) * rowlen);
        if (!acc) {
            tt_fail(err, TT_ENOMEM, "out of memory for a resample");
            goto done;
        }
        pass_v_(rows, rowlen, r0, &tv, ch, acc, dst);
    } else {
        memcpy(dst, rows, rowlen * (size_t)ch);
    }
    rc = 0;
done:
    free(acc);
    free(tmp);
    taps_free_(&tv);
    taps_free_(&th);
    return rc;
}

/* Python's round(d / 2.0) for an integer d >= 0: halves go to the even neighbour. */
static int half_even_(int d) {
    int q = d / 2;
    return (d % 2 == 0 || q % 2 == 0) ? q : q + 1;
}

int clipp_geometry(int w, int h, int size, clipp_geom *g, tt_err *err) {
    int shorter = w <= h ? w : h, longer = w <= h ? h : w;
    double nl = (double)((long long)size * longer) / (double)shorter;
    if (nl > (double)(1 << 30))
        return tt_fail(err, TT_EINPUT, "a %dx%d image resized to a shorter side of %d is too long", w, h, size);
    int new_long = (int)nl;
    g->resized_w = w <= h ? size : new_long;
    g->resized_h = w <= h ? new_long : size;
    g->left = half_even_(g->resized_w - size);
    g->top = half_even_(g->resized_h - size);
    return 0;
}

int clipp_resize_crop(const img_rgb *im, int size, uint8_t *out, tt_err *err) {
    clipp_geom g = {0};
    if (clipp_geometry(im->width, im->height, size, &g, err)) return -1;
    return clipp_resize_window(im->rgb, im->width, im->height, g.resized_w, g.resized_h, g.left, g.top, size,
                               size, out, err);
}

void clipp_normalize(const uint8_t *hwc, int size, float *chw) {
    float lut[3][256];
    for (int c = 0; c < 3; c++)
        for (int v = 0; v < 256; v++) lut[c][v] = ((float)v / 255.0f - clipp_mean[c]) / clipp_std[c];
    size_t plane = (size_t)size * size;
    for (size_t p = 0; p < plane; p++) {
        chw[p] = lut[0][hwc[3 * p]];
        chw[plane + p] = lut[1][hwc[3 * p + 1]];
        chw[2 * plane + p] = lut[2][hwc[3 * p + 2]];
    }
}
