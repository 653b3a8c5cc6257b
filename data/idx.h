/* idx.h — read and write IDX files (the MNIST / Fashion-MNIST container), uint8 only.
 *
 * Format: a big-endian header — two zero bytes, the element type (0x08 = unsigned byte;
 * others are rejected by name), the number of dimensions — then one big-endian u32 per
 * dimension, then the elements row-major. Images are magic 0x00000803 [n, h, w] (channels
 * = 1) or 0x00000804 [n, c, h, w]; labels are 0x00000801 [n].
 *
 * Readers accept raw or gzip-compressed files (detected by the 1f 8b magic, inflated with
 * zlib; the gzip stream must end cleanly — a cut anywhere, even inside the 8-byte trailer, is
 * an error — concatenated members are fine, other bytes after the stream are not). They
 * check the header (type, 1..4 dimensions, each > 0, n <= DS_MAX_N, other dims <= DS_MAX_DIM,
 * product overflow), that the data is complete ("expected 47040000 bytes of pixels, got
 * 1234") and that nothing follows it. Memory grows with the bytes actually present, so a lying header cannot force a huge
 * allocation. Errors: -1 and "PATH: problem" in err (TT_EINPUT bad content, TT_EIO cannot
 * open/read, TT_ENOMEM).
 *
 * Writers produce raw (uncompressed) files atomically: PATH.tmp.PID is written, flushed,
 * fsync'ed and closed with checks, then renamed over PATH; on any failure the temporary is
 * removed and PATH is untouched. Images with 1 channel are written as 0x803 [n, h, w], others
 * as 0x804 [n, c, h, w]. Labels must lie in [0, 255].
 *
 *   ds_images im = {0};
 *   tt_err e = {0};
 *   if (idx_read_pair("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", &im, &e))
 *       fprintf(stderr, "ttmerge: %s\n", e.msg);
 *   else if (idx_write_images("out/test-images.idx", &im, &e) ||
 *            idx_write_labels("out/test-labels.idx", im.labels, im.n, &e)) ...;
 *   ds_images_free(&im);
 *
 * Ownership: idx_read_images/idx_read_pair fill a ds_images the caller frees with
 * ds_images_free; idx_read_labels returns a malloc'ed array the caller free()s;
 * idx_read_u8 fills an idx_u8 freed with idx_u8_free; idx_slurp returns a malloc'ed buffer
 * the caller free()s. Nothing is allocated on failure.
 */
#ifndef TT_IDX_H
#define TT_IDX_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "data/dataset.h"

#define IDX_MAX_DIMS 4

/* A whole uint8 IDX tensor. */
typedef struct idx_u8 {
    int ndims;                    /* 1..IDX_MAX_DIMS */
    uint32_t dims[IDX_MAX_DIMS];  /* dims[0] <= DS_MAX_N, the others <= DS_MAX_DIM */
    size_t size;                  /* product of dims = bytes in data */
    uint8_t *data;                /* malloc'ed */
} idx_u8;

/* Any uint8 IDX file with 1..4 dimensions. */
int idx_read_u8(const char *path, idx_u8 *out, tt_err *err);
void idx_u8_free(idx_u8 *t);

/* Images (3-D or 4-D); out->labels is NULL. */
int idx_read_images(const char *path, ds_images *out, tt_err *err);

/* Labels (1-D); *labels is a malloc'ed int32 array of *n values in [0, 255]. */
int idx_read_labels(const char *path, int32_t **labels, int *n, tt_err *err);

/* Images plus their labels; the two counts must match. */
int idx_read_pair(const char *images_path, const char *labels_path, ds_images *out, tt_err *err);

/* A whole raw-or-gzip file, decompressed, with the same stream checks as the IDX readers
 * (used by the digits CSV reader). *data is malloc'ed (not NUL-terminated); more than
 * max_bytes of content is an error (TT_EINPUT "larger than the limit"). */
int idx_slurp(const char *path, size_t max_bytes, uint8_t **data, size_t *n, tt_err *err);

/* Atomic raw writers. im->n must be >= 1 (IDX dims are positive). */
int idx_write_images(const char *path, const ds_images *im, tt_err *err);
int idx_write_labels(const char *path, const int32_t *labels, int n, tt_err *err);

#endif
