/* npy.h — NumPy .npy files of float32, C order (e.g. `ttmerge eval --logits-out F.npy`).
 *
 * npy_write_f32 writes format version 1.0: "\x93NUMPY", 1, 0, u16 little-endian header
 * length, the dict "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }" padded with
 * spaces and ended by '\n' so the data starts at a multiple of 64 bytes, then the raw floats.
 * The file is written atomically (core/fileio.h). npy_read_f32 reads back exactly that kind of
 * array ('<f4', C order; versions 1.0-3.0) and rejects anything else with "PATH: problem".
 *
 *   int64_t shape[2] = {n_images, n_classes};
 *   if (npy_write_f32("logits.npy", 2, shape, logits, err)) return -1;
 *   float *x; int nd; int64_t sh[NPY_MAX_DIMS];
 *   if (npy_read_f32("logits.npy", &nd, sh, &x, err)) return -1;
 *   ... free(x);
 *
 * Ownership: npy_write_f32 only reads data. npy_read_f32's *data is malloc'd; the caller
 * frees it with free() (NULL on failure).
 */
#ifndef TT_NPY_H
#define TT_NPY_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define NPY_MAX_DIMS 8

/* data holds prod(shape) floats in C order; ndim 0 writes a scalar. */
int npy_write_f32(const char *path, int ndim, const int64_t *shape, const float *data, tt_err *err);

/* int64 ('<i8', numpy's default integer): class labels as numpy and PyTorch users expect. */
int npy_write_i64(const char *path, int ndim, const int64_t *shape, const int64_t *data, tt_err *err);

/* For writers that stream the data themselves: the complete header (magic, version 1.0, length,
 * dict, spaces, '\n') of a `descr` array ("<f4", "<i8", "|u1") of the given shape, padded so the
 * data starts at a multiple of 64 bytes, and at least min_len bytes (rounded up to 64): a header
 * rewritten later with a smaller first dimension then keeps its length. Returns its length,
 * 0 when it does not fit buf[cap] or ndim is out of range. */
size_t npy_header(char *buf, size_t cap, const char *descr, int ndim, const int64_t *shape, size_t min_len);

/* Read a '<f4' C-order array: *ndim dims into shape[NPY_MAX_DIMS], values into *data. */
int npy_read_f32(const char *path, int *ndim, int64_t shape[NPY_MAX_DIMS], float **data, tt_err *err);

#endif
