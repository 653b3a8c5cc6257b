/* csv_images.h — numeric CSV files (one example per row: features plus an integer label) as
 * uint8 images: suite sources of kind csv (source.h) and sklearn's digits (digits_csv.h) are
 * read through this one reader.
 *
 * File: plain text or gzip (detected by the 1f 8b magic; decompression and its checks are
 * idx_slurp's, data/idx.h), at most 256 MiB of text. Parsed with libcsv (CSV_STRICT |
 * CSV_STRICT_FINI): comma-separated, RFC 4180 quotes, spaces and tabs around unquoted fields
 * trimmed, LF or CRLF line ends; blank lines are skipped. With `header` the first row is
 * skipped (it must still have the right number of fields). Every other row has exactly F + 1
 * fields: F = channels*height*width features and, at label_column, the label.
 *   feature  a decimal number [+-]digits[.digits][(e|E)[+-]digits] (".5" too; no inf, nan or
 *            hex), at most 64 characters, read with strtod and rounded to float (as suite files
 *            read their floats), which must lie in [lo, hi]. Order: channel-major, then
 *            row-major within a channel (CHW, as IDX).
 *   label    a number with an integer value (3, 3.0) in [0, classes).
 *
 * Each row becomes one channels×out_size×out_size image; per channel:
 *   v = (x - lo) / (hi - lo)                  in double, rounded to float
 *   -> bilinear to out_size×out_size with half-pixel centres, PyTorch F.interpolate(
 *      mode='bilinear', align_corners=False) bit for bit (ds_resize_bilinear; skipped when
 *      height = width = out_size; a non-square shape is stretched to the square)
 *   -> clamp to [0, 1] -> floor(v*255 + 0.5)  in float
 *
 *   csvim_opts o = {.channels = 1, .height = 8, .width = 8, .label_column = -1,
 *                   .lo = 0, .hi = 16, .classes = 10, .out_size = 28};
 *   ds_images im = {0};
 *   tt_err e = {0};
 *   if (csvim_read("digits.csv.gz", &o, &im, &e)) fprintf(stderr, "ttmerge: %s\n", e.msg);
 *   ds_images_free(&im);
 *
 * Errors: -1 and one line "FILE: line N: problem" in err, N the 1-based line of the file on
 * which the problem shows (counting '\n'), e.g.
 *   d.csv: line 7: 64 fields, expected 65 (64 features of 1x8x8 and a label)
 *   d.csv: line 3: column 5: "0.5x" is not a number
 *   d.csv: line 9: column 65: label 10 outside [0, 10)
 *   d.csv: line 2: column 6: 17 outside the range [0, 16]
 *   d.csv: line 1: empty file, no data rows
 * TT_EINPUT for bad content or options, TT_EIO when the file cannot be opened or read,
 * TT_ENOMEM. The images of one file are at most 4 GiB.
 *
 * Ownership: csvim_read fills a ds_images the caller frees with ds_images_free (left zeroed,
 * nothing allocated, on failure). */
#ifndef TT_CSV_IMAGES_H
#define TT_CSV_IMAGES_H

#include <stdbool.h>

#include "core/err.h"
#include "data/dataset.h"

/* Longest field read as a number. */
#define CSVIM_FIELD_MAX 64

typedef struct csvim_opts {
    int channels, height, width; /* shape of the features, each in [1, DS_MAX_DIM], F <= 2^24 */
    int label_column;            /* 0-based column of the label, or -1 = the last */
    bool header;                 /* skip the first row */
    float lo, hi;                /* range of the features (finite, lo < hi); csvim_range ignores it */
    int classes;                 /* labels in [0, classes); classes in [1, 2^24] */
    int out_size;                /* output side in [1, DS_MAX_DIM] (csvim_range ignores it) */
} csvim_opts;

/* Read every data row as an image with its label. */
int csvim_read(const char *path, const csvim_opts *o, ds_images *out, tt_err *err);

/* Check every row as csvim_read does, except the range, and give the smallest and largest
 * feature of the file (for a range computed from the data). */
int csvim_range(const char *path, const csvim_opts *o, float *lo, float *hi, tt_err *err);

#endif
