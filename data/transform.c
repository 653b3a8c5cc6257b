/* transform.c — see transform.h. */
#include "data/transform.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"

static uint64_t mix64(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t fnv1a_cont(uint64_t h, const char *s) {
    for (; s && *s; s++) h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
    return h;
}

uint64_t tf_seed(uint64_t seed, const char *task, const char *split) {
    uint64_t h = fnv1a_cont(0xcbf29ce484222325ull, task);
    h = fnv1a_cont((h ^ '/') * 0x100000001b3ull, split);
    return mix64(seed ^ mix64(h));
}

/* The rng of image i: hashed, so that neighbouring indices and seeds give unrelated streams
 * (rng_init(s) and rng_init(s + golden) would share three of four state words). */
static void image_rng(rng *r, uint64_t seed, int i) { rng_init(r, mix64(mix64(seed) ^ (uint64_t)(uint32_t)i)); }

/* dst = src rotated q quarter turns clockwise (q in 0..3); one h×w plane, square for odd q. */
static void rot_quarter(const uint8_t *src, uint8_t *dst, int h, int w, int q) {
    for (int i = 0; i < h; i++)
        for (int j = 0; j < w; j++) {
            int si, sj;
            switch (q & 3) {
            case 1: si = h - 1 - j, sj = i; break;     /* numpy.rot90(x, k=-1) */
            case 2: si = h - 1 - i, sj = w - 1 - j; break;
            case 3: si = j, sj = w - 1 - i; break;     /* numpy.rot90(x, k=1) */
            default: si = i, sj = j; break;
            }
            dst[(size_t)i * w + j] = src[(size_t)si * w + sj];
        }
}

static void flip(const uint8_t *src, uint8_t *dst, int h, int w, bool horizontal) {
    for (int i = 0; i < h; i++)
        for (int j = 0; j < w; j++)
            dst[(size_t)i * w + j] = horizontal ? src[(size_t)i * w + (w - 1 - j)] : src[(size_t)(h - 1 - i) * w + j];
}

static uint8_t round_u8(double v) {
    if (!(v > 0)) return 0; /* also NaN */
    if (v >= 255) return 255;
    return (uint8_t)floor(v + 0.5);
}

static void rotate_bilinear(const uint8_t *src, uint8_t *dst, int h, int w, double degrees) {
    double a = fmod(degrees, 360.0);
    if (a < 0) a += 360.0;
    double c, s;
    if (a == 0) c = 1, s = 0;
    else if (a == 90) c = 0, s = 1;
    else if (a == 180) c = -1, s = 0;
    else if (a == 270) c = 0, s = -1;
    else c = cos(a * (M_PI / 180.0)), s = sin(a * (M_PI / 180.0));
    double cy = (h - 1) * 0.5, cx = (w - 1) * 0.5;
    for (int i = 0; i < h; i++)
        for (int j = 0; j < w; j++) {
            double dy = i - cy, dx = j - cx;
            double sy = cy + dy * c - dx * s, sx = cx + dx * c + dy * s;
            double fy0 = floor(sy), fx0 = floor(sx);
            double fy = sy - fy0, fx = sx - fx0, v = 0;
            for (int dyi = 0; dyi < 2; dyi++)
                for (int dxi = 0; dxi < 2; dxi++) {
                    double yy = fy0 + dyi, xx = fx0 + dxi;
                    double wgt = (dyi ? fy : 1 - fy) * (dxi ? fx : 1 - fx);
                    if (wgt == 0 || yy < 0 || yy > h - 1 || xx < 0 || xx > w - 1) continue;
                    v += wgt * src[(size_t)yy * w + (size_t)xx];
                }
            dst[(size_t)i * w + j] = round_u8(v);
        }
}

/* One image (all channels) through the transforms; tmp holds one plane. */
static void apply_image(const suite_task *t, uint8_t *img, uint8_t *tmp, int C, int H, int W, uint64_t seed, int index,
                        int32_t *label) {
    size_t plane = (size_t)H * W;
    rng r;
    image_rng(&r, seed, index);
    for (int k = 0; k < t->n_tf; k++) {
        const suite_transform *tf = &t->tf[k];
        int q = -1;
        switch (tf->kind) {
        case SUITE_TF_INVERT:
            for (size_t p = 0; p < plane * C; p++) img[p] = (uint8_t)(255 - img[p]);
            break;
        case SUITE_TF_NOISE: {
            double sd = (double)tf->param * 255.0;
            for (size_t p = 0; p < plane * C; p++) img[p] = round_u8(img[p] + sd * rng_normal(&r));
            break;
        }
        case SUITE_TF_ROT90: q = 1; break;
        case SUITE_TF_ROT180: q = 2; break;
        case SUITE_TF_ROT270: q = 3; break;
        case SUITE_TF_ROTPRED:
            q = (int)rng_below(&r, 4);
            *label = q;
            break;
        case SUITE_TF_HFLIP:
        case SUITE_TF_VFLIP:
        case SUITE_TF_ROTATE:
            for (int ch = 0; ch < C; ch++) {
                uint8_t *pl = img + ch * plane;
                memcpy(tmp, pl, plane);
                if (tf->kind == SUITE_TF_ROTATE) rotate_bilinear(tmp, pl, H, W, (double)tf->param);
                else flip(tmp, pl, H, W, tf->kind == SUITE_TF_HFLIP);
            }
            break;
        }
        if (q > 0)
            for (int ch = 0; ch < C; ch++) {
                uint8_t *pl = img + ch * plane;
                memcpy(tmp, pl, plane);
                rot_quarter(tmp, pl, H, W, q);
            }
    }
}

int tf_apply_task(const suite_task *task, int source_classes, const ds_images *in, uint64_t seed, ds_images *out,
                  tt_err *err) {
    memset(out, 0, sizeof *out);
    const char *nm = task->name;
    if (!in->labels) return tt_fail(err, TT_EINPUT, "task '%s': the images have no labels", nm);
    if (task->n_tf < 0 || task->n_tf > SUITE_MAX_TRANSFORMS)
        return tt_fail(err, TT_EINPUT, "task '%s': %d transforms", nm, task->n_tf);
    bool rotpred = false;
    for (int k = 0; k < task->n_tf; k++) {
        const suite_transform *tf = &task->tf[k];
        if ((unsigned)tf->kind > SUITE_TF_ROTPRED)
            return tt_fail(err, TT_EINPUT, "task '%s': unknown transform kind %d", nm, (int)tf->kind);
        if (!isfinite(tf->param) || (tf->kind == SUITE_TF_NOISE && tf->param < 0))
            return tt_fail(err, TT_EINPUT, "task '%s': bad %s parameter %g", nm, suite_tf_name(tf->kind),
                           (double)tf->param);
        bool quarter = tf->kind == SUITE_TF_ROT90 || tf->kind == SUITE_TF_ROT270 || tf->kind == SUITE_TF_ROTPRED;
        if (quarter && in->height != in->width)
            return tt_fail(err, TT_EINPUT, "task '%s': %s needs square images, not %dx%d", nm, suite_tf_name(tf->kind),
                           in->height, in->width);
        rotpred |= tf->kind == SUITE_TF_ROTPRED;
    }
    if (source_classes < 1) return tt_fail(err, TT_EINPUT, "task '%s': source classes %d", nm, source_classes);
    int group = 1;
    if (task->labels == SUITE_LABELS_COARSE) {
        if (task->classes < 1 || source_classes % task->classes)
            return tt_fail(err, TT_EINPUT, "task '%s': coarse classes %d do not divide the source's %d", nm,
                           task->classes, source_classes);
        group = source_classes / task->classes;
    } else if (task->labels != SUITE_LABELS_IDENTITY && task->labels != SUITE_LABELS_PARITY) {
        return tt_fail(err, TT_EINPUT, "task '%s': unknown label map %d", nm, (int)task->labels);
    }
    if (rotpred && task->labels != SUITE_LABELS_IDENTITY)
        return tt_fail(err, TT_EINPUT, "task '%s': rotpred needs labels identity", nm);
    for (int i = 0; i < in->n; i++)
        if (in->labels[i] < 0 || in->labels[i] >= source_classes)
            return tt_fail(err, TT_EINPUT, "task '%s': label %d of image %d outside [0, %d)", nm, (int)in->labels[i], i,
                           source_classes);
    if (ds_images_alloc(out, in->n, in->channels, in->height, in->width, true, err)) return -1;
    size_t per = ds_image_size(in);
    if (in->n > 0) {
        memcpy(out->pixels, in->pixels, per * (size_t)in->n);
        memcpy(out->labels, in->labels, sizeof *out->labels * (size_t)in->n);
    }
    int failed = 0;
    const int n = in->n, C = in->channels, H = in->height, W = in->width;
    if (task->n_tf > 0) {
#pragma omp parallel
        {
            uint8_t *tmp = malloc((size_t)H * W);
            if (!tmp) {
#pragma omp atomic write
                failed = 1;
            }
#pragma omp for schedule(static)
            for (int i = 0; i < n; i++)
                if (tmp) apply_image(task, out->pixels + per * (size_t)i, tmp, C, H, W, seed, i, &out->labels[i]);
            free(tmp);
        }
    }
    if (failed) {
        ds_images_free(out);
        return tt_fail(err, TT_ENOMEM, "task '%s': out of memory", nm);
    }
    if (!rotpred && task->labels != SUITE_LABELS_IDENTITY)
        for (int i = 0; i < n; i++)
            out->labels[i] = task->labels == SUITE_LABELS_PARITY ? out->labels[i] % 2 : out->labels[i] / group;
    return 0;
}

int tf_subsample(const ds_images *in, int k, uint64_t seed, ds_images *out, tt_err *err) {
    memset(out, 0, sizeof *out);
    if (k < 0 || k > in->n) return tt_fail(err, TT_EINPUT, "subsample of %d from %d images", k, in->n);
    int *p = malloc((size_t)(in->n > 0 ? in->n : 1) * sizeof *p);
    if (!p) return tt_fail(err, TT_ENOMEM, "out of memory (subsample)");
    for (int i = 0; i < in->n; i++) p[i] = i;
    rng r;
    rng_init(&r, mix64(seed ^ 0x53554253414d504cull)); /* "SUBSAMPL" */
    rng_shuffle_int(&r, p, in->n);
    int rc = ds_subset(in, p, k, out, err);
    free(p);
    return rc;
}
