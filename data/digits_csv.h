/* digits_csv.h — read the UCI / sklearn 8×8 handwritten digits (digits.csv.gz).
 *
 * python3-sklearn ships /usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz:
 * gzipped CSV, no header, 1797 rows of 65 integers — 64 pixels in [0, 16] (8×8, row-major)
 * then the label in [0, 9]. Plain (uncompressed) CSV is read too; decompression and its
 * checks are idx_slurp's (data/idx.h), at most 256 MiB of text.
 * Parsed with libcsv (CSV_STRICT | CSV_APPEND_NULL); every row must have exactly 65 integer
 * fields in range, otherwise -1 with "FILE: row R: problem" in err (TT_EINPUT; TT_EIO when the
 * file cannot be opened or read; TT_ENOMEM).
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
 * allocated on failure). digits_resample writes into the caller's buffers.
 */
#ifndef TT_DIGITS_CSV_H
#define TT_DIGITS_CSV_H

#include <stdint.h>

#include "core/err.h"
#include "data/dataset.h"

#define DIGITS_SIDE 8
#define DIGITS_FIELDS (DIGITS_SIDE * DIGITS_SIDE + 1)
#define DIGITS_MAX_VALUE 16

/* Read every row; out_size in [1, DS_MAX_DIM]. */
int digits_read(const char *path, int out_size, ds_images *out, tt_err *err);

/* One image: raw[64] values in [0, 16] -> dst[out_size*out_size] uint8 as described above.
 * scratch holds out_size*out_size floats (unused, may be NULL, when out_size == 8). */
void digits_resample(const uint8_t *raw, int out_size, float *scratch, uint8_t *dst);

#endif
