/* dataset.h — the in-memory image set that every dataset reader returns, plus small helpers
 * (allocation with limits, index subsets, a PyTorch-compatible bilinear resampler).
 *
 * Images are uint8, laid out [n, channels, height, width] (NCHW, row-major); labels are
 * int32 class ids, one per image, or NULL for an unlabeled set.
 *
 *   ds_images im = {0};
 *   tt_err e = {0};
 *   if (idx_read_images("train-images-idx3-ubyte.gz", &im, &e) != 0) { ...e.msg... }
 *   const uint8_t *img7 = ds_image(&im, 7);            // channels*height*width bytes
 *   ds_images sub = {0};
 *   int pick[] = {3, 1, 4};
 *   if (ds_subset(&im, pick, 3, &sub, &e) != 0) { ... }
 *   ds_images_free(&sub);
 *   ds_images_free(&im);
 *
 * Ownership: a ds_images owns its pixels and labels (both malloc'ed). ds_images_free
 * releases them and zeroes the struct; it is safe on a zeroed struct and twice in a row.
 * Functions that fill a ds_images (alloc, subset, the readers) start by zeroing it and leave
 * it zeroed on failure, so the caller frees only after success.
 */
#ifndef TT_DATASET_H
#define TT_DATASET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

/* Limits every reader enforces on outside files: at most 2^24 images, each of at most
 * 4096 channels / rows / columns. */
#define DS_MAX_N (1 << 24)
#define DS_MAX_DIM 4096

typedef struct ds_images {
    int n, channels, height, width;
    uint8_t *pixels;  /* [n, c, h, w] */
    int32_t *labels;  /* [n] or NULL */
} ds_images;

/* Release pixels and labels; zero the struct. */
void ds_images_free(ds_images *im);

/* Allocate zeroed pixels (and labels if with_labels) for n images of c×h×w. n may be 0
 * (an empty set, pixels still non-NULL); 0 <= n <= DS_MAX_N, 1 <= c,h,w <= DS_MAX_DIM.
 * Returns -1 with TT_EINPUT for dims out of range, TT_ENOMEM if allocation fails. */
int ds_images_alloc(ds_images *im, int n, int c, int h, int w, bool with_labels, tt_err *err);

/* Bytes in one image (c*h*w). */
size_t ds_image_size(const ds_images *im);

/* Pointer to image i (no bounds check beyond TT_ASSERT). */
uint8_t *ds_image(const ds_images *im, int i);

/* out = copy of images idx[0..k-1] of src (with labels if src has them), in that order;
 * indices may repeat. Returns -1 (TT_EINPUT) if an index is outside [0, src->n). */
int ds_subset(const ds_images *src, const int *idx, int k, ds_images *out, tt_err *err);

/* Bilinear resampling of one single-channel float image src[sh, sw] into dst[dh, dw]
 * with half-pixel centres, identical to PyTorch F.interpolate(mode='bilinear',
 * align_corners=False) without antialiasing: source coordinate
 * (d + 0.5) * (s_size / d_size) - 0.5, clamped at 0 below, neighbour index clamped at
 * s_size-1 above. The arithmetic reproduces PyTorch 1.13's CPU kernel bit for bit (float
 * weights, double accumulation). All sizes must be >= 1; src and dst must not overlap. */
void ds_resize_bilinear(const float *src, int sh, int sw, float *dst, int dh, int dw);

#endif
