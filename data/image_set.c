/* image_set.c — see image_set.h. */
#include "data/image_set.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/progress.h"
#include "data/clip_preprocess.h"
#include "data/image.h"
#include "data/image_list.h"

/* Decode + resize + crop one file into dst (channels x size x size, CHW: the first `channels`
 * of R, G, B); hwc is scratch. */
static int load_one_c(const char *path, int size, int channels, uint8_t *hwc, uint8_t *dst, tt_err *err) {
    img_rgb im = {0};
    int rc = img_read_file(path, IMG_MAX_PIXELS, &im, err) || clipp_resize_crop(&im, size, hwc, err) ? -1 : 0;
    img_rgb_free(&im);
    if (rc) {
        if (strncmp(err->msg, path, strlen(path))) tt_prefix(err, "%s: ", path);
        return -1;
    }
    size_t plane = (size_t)size * size;
    for (size_t p = 0; p < plane; p++)
        for (int c = 0; c < channels; c++) dst[c * plane + p] = hwc[3 * p + c];
    return 0;
}

static int load_one_(const char *path, int size, uint8_t *hwc, uint8_t *dst, tt_err *err) {
    return load_one_c(path, size, 3, hwc, dst, err);
}

int imset_load(const char *path, int size, ds_images *out, tt_err *err) {
    memset(out, 0, sizeof *out);
    imls_list l = {0};
    if (imls_open(path, NULL, &l, err)) return -1;
    if (l.n > DS_MAX_N) {
        imls_free(&l);
        return tt_fail(err, TT_EINPUT, "%s: %d images, more than %d", path, l.n, DS_MAX_N);
    }
    if (ds_images_alloc(out, l.n, 3, size, size, true, err)) {
        imls_free(&l);
        return -1;
    }
    size_t npx = (size_t)size * size * 3;
    int first_bad = l.n; /* the lowest failing index reports, for a deterministic message */
    tt_err bad = {0};
#pragma omp parallel
    {
        uint8_t *hwc = malloc(npx);
        tt_err e = {0};
#pragma omp for schedule(dynamic, 4)
        for (int i = 0; i < l.n; i++) {
            int rc = hwc ? load_one_(l.paths[i], size, hwc, ds_image(out, i), &e)
                         : tt_fail(&e, TT_ENOMEM, "%s: out of memory", l.paths[i]);
            out->labels[i] = l.labels[i];
            if (rc) {
#pragma omp critical(imset_bad)
                if (i < first_bad) first_bad = i, bad = e;
            }
        }
        free(hwc);
    }
    imls_free(&l);
    if (first_bad < out->n) {
        ds_images_free(out);
        *err = bad;
        return -1;
    }
    return 0;
}

int imset_load_list(const imls_list *l, const int *idx, int n, int size, int channels, const char *label,
                    bool progress_on, ds_images *out, tt_err *err) {
    memset(out, 0, sizeof *out);
    if (channels != 1 && channels != 3) return tt_fail(err, TT_EINPUT, "%s: images have 1 or 3 channels, not %d", label, channels);
    if (ds_images_alloc(out, n, channels, size, size, true, err)) return -1;
    size_t npx = (size_t)size * size * 3;
    int first_bad = n, done = 0;
    tt_err bad = {0};
    progress pr;
    progress_start(&pr, label, n, progress_on);
#pragma omp parallel
    {
        uint8_t *hwc = malloc(npx);
        tt_err e = {0};
#pragma omp for schedule(dynamic, 4)
        for (int i = 0; i < n; i++) {
            const char *path = l->paths[idx[i]];
            int rc = hwc ? load_one_c(path, size, channels, hwc, ds_image(out, i), &e)
                         : tt_fail(&e, TT_ENOMEM, "%s: out of memory", path);
            out->labels[i] = l->labels[idx[i]];
            if (rc) {
#pragma omp critical(imset_bad)
                if (i < first_bad) first_bad = i, bad = e;
            }
            int now;
#pragma omp atomic capture
            now = ++done;
            if (omp_get_thread_num() == 0) progress_update(&pr, now, "images");
        }
        free(hwc);
    }
    progress_end(&pr);
    if (first_bad < n) {
        ds_images_free(out);
        *err = bad;
        return -1;
    }
    return 0;
}
