/* safetensors.h — read (zero-copy, validated) and write (atomic, deterministic) .safetensors.
 *
 * Format (https://github.com/huggingface/safetensors): u64 little-endian header length N,
 * N bytes of JSON {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__":
 * {string: string}}, then the data section; offsets are relative to the data section.
 *
 * Reading: st_open mmaps the file read-only and validates the whole header before returning
 * (sizes, dtypes, shapes with overflow checks, offsets inside the data section, no overlaps,
 * no duplicates, string-only metadata), so a st_file that opened is safe to index. Files are
 * treated as hostile: any problem is a -1 with "PATH: problem" in err, never a crash.
 * (A file truncated by another process *after* st_open can still raise SIGBUS: mmap's rule.)
 * Writing: st_writer collects F32 (and U8) tensors by pointer, st_writer_save writes them sorted by name
 * with a compact, key-sorted JSON header padded with spaces so the data section starts 8-byte
 * aligned. Same inputs give byte-identical files. Little-endian hosts only.
 *
 *   st_file *f; const st_tensor *t;
 *   if (st_open(&f, "pre.safetensors", err)) return -1;
 *   int64_t want[2] = {768, 512};
 *   if (st_expect(f, "proj", 2, want, &t, err) || st_read_f32(f, t, buf, err)) { st_close(f); return -1; }
 *   st_close(f);
 *
 * Ownership: st_open's *out is freed with st_close (NULL is a no-op). Every pointer a query
 * returns (st_tensor, its name and data, st_meta strings, st_path, st_f32_view) points into
 * the st_file and is valid until st_close; never free it. st_writer_create's writer is freed
 * with st_writer_free. The writer copies names and metadata strings but NOT tensor data: the
 * caller keeps each `data` array alive and unchanged until st_writer_save returns.
 */
#ifndef TT_SAFETENSORS_H
#define TT_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define ST_MAX_DIMS 8
#define ST_MAX_NAME 1024               /* bytes of UTF-8 in a tensor name */
#define ST_MAX_HEADER 100000000ull     /* 100 MB, as the reference implementation */

typedef enum st_dtype {
    ST_F32,
    ST_F16,
    ST_BF16,
    ST_F64,
    ST_I64,
    ST_I32,
    ST_I16,
    ST_I8,
    ST_U8,
    ST_BOOL,
} st_dtype;

/* "F32", "BF16", ... (static strings). */
const char *st_dtype_name(st_dtype dt);
/* Bytes per element: 4, 2, 2, 8, 8, 4, 2, 1, 1, 1. */
size_t st_dtype_size(st_dtype dt);

typedef struct st_tensor {
    const char *name;            /* UTF-8, unique in the file, e.g. "transformer.resblocks.0.ln_1.weight" */
    st_dtype dtype;
    int ndim;                    /* 0 (scalar) .. ST_MAX_DIMS */
    int64_t shape[ST_MAX_DIMS];  /* row-major dims; entries past ndim are 0 */
    int64_t numel;               /* product of shape (1 for a scalar) */
    const void *data;            /* nbytes bytes inside the mapping; may be unaligned */
    size_t nbytes;               /* numel * st_dtype_size(dtype) */
} st_tensor;

typedef struct st_file st_file;

/* Map and validate PATH. On failure *out is NULL and err says "PATH: problem". */
int st_open(st_file **out, const char *path, tt_err *err);
void st_close(st_file *f);

const char *st_path(const st_file *f);
int st_count(const st_file *f);
/* i-th tensor in name order (strcmp), 0 <= i < st_count. */
const st_tensor *st_at(const st_file *f, int i);
/* Binary search by name; NULL if absent. */
const st_tensor *st_find(const st_file *f, const char *name);
/* __metadata__[key], or NULL if absent. */
const char *st_meta(const st_file *f, const char *key);
/* The i-th __metadata__ key (jansson's order), or NULL when i is past the last. */
const char *st_meta_key(const st_file *f, int i);

/* Convert t (F32, F16, BF16 or F64) into out[t->numel] floats. Other dtypes: -1. F64 values
 * beyond float range become +-inf. */
int st_read_f32(const st_file *f, const st_tensor *t, float *out, tt_err *err);
/* Elements [first, first + n) of t as f32 (the conversions of st_read_f32): a large tensor read a
 * slice at a time. A range past the tensor is an error. */
int st_read_f32_range(const st_file *f, const st_tensor *t, size_t first, size_t n, float *out, tt_err *err);
/* n values of dtype d at src (any alignment) as f32: st_read_f32's conversions, for bytes read
 * some other way (pread). Other dtypes: -1. */
int st_dtype_to_f32(st_dtype d, const void *src, float *out, size_t n);
/* Where t's data starts in f's file (bytes from the file's start): for reading it with pread. */
size_t st_data_offset(const st_file *f, const st_tensor *t);
/* f32 -> BF16 / F16 bits, rounded to nearest, ties to even (IEEE's default); NaN stays a quiet
 * NaN; F16: overflow (|x| >= 65520) gives inf, small values become subnormals or zero. */
uint16_t st_f32_to_bf16(float x);
uint16_t st_f32_to_f16(float x);
/* n floats into dst as F32, BF16, F16 or F64 (the roundings above; F64 exact): the bulk form,
 * whose loops the compiler vectorises (a call per element cost a merge 11% of its time).
 * Other dtypes: -1, nothing written. */
int st_f32_to_dtype(st_dtype d, const float *src, void *dst, size_t n);
/* Zero-copy view when t is F32 and its data is 4-byte aligned, else NULL. */
const float *st_f32_view(const st_tensor *t);
/* Find NAME and check its shape: "PATH: tensor NAME missing" or "PATH: tensor NAME has shape
 * [64,1,7,7], expected [64,3,7,7]". *out (optional) receives the tensor. */
int st_expect(const st_file *f, const char *name, int ndim, const int64_t *shape, const st_tensor **out,
              tt_err *err);

typedef struct st_writer st_writer;

/* NULL (and err set) only when out of memory. */
st_writer *st_writer_create(tt_err *err);
/* Queue an F32 tensor of shape[ndim]; data holds numel floats (may be NULL when numel is 0).
 * Rejects bad names, ndim outside 0..8, negative dims and sizes that overflow. Duplicate
 * names are reported by st_writer_save. */
int st_writer_add(st_writer *w, const char *name, int ndim, const int64_t *shape, const float *data,
                  tt_err *err);
/* The same for a U8 tensor (data holds numel bytes): packed bit masks (docs/formats.md). */
int st_writer_add_u8(st_writer *w, const char *name, int ndim, const int64_t *shape, const uint8_t *data,
                     tt_err *err);
/* Set __metadata__[key] = value (copied; a later call with the same key replaces it). */
int st_writer_meta(st_writer *w, const char *key, const char *value, tt_err *err);
/* Write all queued tensors to PATH atomically (PATH.tmp.PID, fsync, rename). Can be called
 * more than once. */
int st_writer_save(st_writer *w, const char *path, tt_err *err);
void st_writer_free(st_writer *w);

#endif
