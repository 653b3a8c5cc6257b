/* digits_csv.h — read the UCI / sklearn 8×8 handwritten digits (digits.csv.gz).
 *
 * python3-sklearn ships /usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz:
 * gzipped CSV, no header, 1797 rows of 65 integers — 64 pixels in [0, 16] (8×8, row-major)
 * then the label in [0, 9]. It is read by the generic CSV reader (csv_images.h) with shape
 * 1×8×8, the label in the last column, range [0, 16] and 10 classes, so a suite source of
 * kind csv with those options gives the same bytes. Plain CSV is read too; errors are the
 * reader's ("FILE: line N: problem").
 *
 * Each image is resampled for the suite: x/16 -> bilinear to out_size×out_size with
 * half-pixel centres (PyTorch F.interpolate(mode='bilinear', align_corners=False), see
 * ds_resize_bilinear) -> clamp to [0, 1] -> floor(v*255 + 0.5). out_size = 8 gives
 * round(x/16*255) without resampling.
 *
 *   ds_images im = {0};
 *   tt_err e = {0};
 *   if (digits_read(".../sklearn/datasets/data/digits.csv.gz", 28, &im, &e) != 0)
 *       fprintf(stderr, "ttmerge: %s\n", e.msg);
 *   // im: n = 1797, 1×28×28, labels 0..9
 *   ds_images_free(&im);
 *
 * Ownership: digits_read fills a ds_images the caller frees with ds_images_free (nothing is
 * allocated on failure).
 */
#ifndef TT_DIGITS_CSV_H
#define TT_DIGITS_CSV_H

#include "core/err.h"
#include "data/csv_images.h"
#include "data/dataset.h"

#define DIGITS_SIDE 8
#define DIGITS_MAX_VALUE 16

/* The csv_images options of the digits file for images of out_size×out_size. */
csvim_opts digits_opts(int out_size);

/* Read every row; out_size in [1, DS_MAX_DIM]. */
int digits_read(const char *path, int out_size, ds_images *out, tt_err *err);

#endif
