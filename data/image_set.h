/* image_set.h — an image folder or manifest (image_list.h) decoded (image.h) and resized +
 * center-cropped as CLIP's transform does (clip_preprocess.h), kept as uint8 pixels: the
 * suite source of kind images (source.h) reads its data through this, so every image is
 * decoded once and the suite stores the preprocessed pixels.
 *
 *   ds_images im = {0};
 *   if (imset_load("data/eurosat/train", 224, &im, err)) ...;
 *   // im: n images of 3 x 224 x 224 uint8 (CHW: the NCHW layout of ds_images), labels from
 *   // the folder's class order or the manifest; pixel [c][y][x] is the crop's RGB value
 *   ds_images_free(&im);
 *
 * Images are decoded in parallel (OpenMP); the result does not depend on the thread count.
 * The first image that cannot be read fails the load with its one-line message. Limits: at most
 * DS_MAX_N images, size in [1, DS_MAX_DIM]. Ownership: as every ds_images reader (dataset.h):
 * the caller frees with ds_images_free; left zeroed on failure.
 */
#ifndef TT_IMAGE_SET_H
#define TT_IMAGE_SET_H

#include "core/err.h"
#include "data/dataset.h"
#include "data/image_list.h"

#include <stdbool.h>

int imset_load(const char *path, int size, ds_images *out, tt_err *err);

/* Images idx[0..n) of an opened list (image_list.h), in that order, with their labels, into
 * `channels` planes: 3 = RGB; 1 = the red plane, which for a greyscale file is its grey value
 * (Pillow's convert("RGB") copies it to the three planes; convert("L") of that gives it back).
 * label names the progress line (images, rate, ETA) drawn when progress is true. */
int imset_load_list(const imls_list *l, const int *idx, int n, int size, int channels, const char *label,
                    bool progress, ds_images *out, tt_err *err);

#endif
