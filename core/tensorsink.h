/* tensorsink.h — write a checkpoint a slice at a time: safetensors shards with an index, published
 * whole or not at all.
 *
 * The sink is the writing side of a tensor set (core/tensorset.h). Every tensor's name, dtype and
 * shape are declared at tsk_open, so each shard's header (sorted, compact JSON with
 * __metadata__, padded to an 8-byte data start, as st_writer_save writes it) is final before any
 * data: the data is then written at its offsets in any order and any slicing, converted from f32
 * to the tensor's dtype (BF16 and F16 rounded to nearest, ties to even), so a model larger than
 * memory streams through. Shards are filled greedily in the order of the specs up to shard_size
 * bytes of tensor data (a larger tensor sits alone in its shard; 0 = one file), each shard's data
 * in name order (as st_writer_save writes a file, byte for byte for F32): one shard is
 * OUT/model.safetensors, several are OUT/model-0000i-of-0000N.safetensors plus
 * model.safetensors.index.json (Hugging Face's layout: {"metadata": {"total_size"}, "weight_map"}).
 * Non-tensor files (config.json, tokenizer files) join with tsk_add_file / tsk_copy_file.
 *
 * Atomic: everything goes into OUT.tmp.XXXXXX; tsk_commit checks every byte of every tensor was
 * written, fsyncs the files and the directory, and renames it to OUT (which must not exist). An
 * error or tsk_abort removes the temporary directory, so a failed or interrupted write never
 * leaves a model at OUT (a killed process leaves only OUT.tmp.XXXXXX). Errors name OUT and the
 * file: "out: model-00002-of-00003.safetensors: write failed: No space left on device".
 *
 *   tsk_sink *s;
 *   if (tsk_open(&s, "merged", spec, n, 5000000000, meta, n_meta, err)) return -1;
 *   for each tensor i, each slice: if (tsk_write_f32(s, i, first, buf, len, err)) { tsk_abort(s); ... }
 *   return tsk_commit(s, err);
 *
 * Ownership: the sink copies the specs and metadata; tsk_commit and tsk_abort free it (exactly one
 * of them, also when tsk_commit fails).
 */
#ifndef TT_TENSORSINK_H
#define TT_TENSORSINK_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/safetensors.h"

typedef struct tsk_spec {
    const char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
} tsk_spec;

typedef struct tsk_kv {
    const char *key, *value;
} tsk_kv;

typedef struct tsk_sink tsk_sink;

/* Plan the shards of spec[n] (distinct names) and create their files under OUT.tmp.XXXXXX with
 * final headers; meta[n_meta] goes into every shard's __metadata__. */
int tsk_open(tsk_sink **out, const char *dir, const tsk_spec *spec, int n, size_t shard_size, const tsk_kv *meta,
             int n_meta, tt_err *err);
/* Elements [first, first + n) of tensor i (spec order) from f32 src, converted to its dtype
 * (F32, F16, BF16; F64 exactly). */
int tsk_write_f32(tsk_sink *s, int i, size_t first, const float *src, size_t n, tt_err *err);
/* Overwrite elements already written (a second look that corrects a few values, or a pass redone). */
int tsk_rewrite_f32(tsk_sink *s, int i, size_t first, const float *src, size_t n, tt_err *err);
/* Bytes [offset, offset + nbytes) of tensor i's data as they are (any dtype). Threads may call it
 * at once for disjoint ranges (the other writers use one conversion buffer: one thread). */
int tsk_write_raw(tsk_sink *s, int i, size_t offset, const void *bytes, size_t nbytes, tt_err *err);
/* A non-tensor file NAME (plain name, no '/') in the output: given bytes, or a copy of SRC. */
int tsk_add_file(tsk_sink *s, const char *name, const void *bytes, size_t n, tt_err *err);
int tsk_copy_file(tsk_sink *s, const char *name, const char *src, tt_err *err);
/* Shards written by the plan (for messages and tests). */
int tsk_shard_count(const tsk_sink *s);
/* Check completeness, fsync, write the index, rename to OUT. Frees s. */
int tsk_commit(tsk_sink *s, tt_err *err);
/* Remove everything written; frees s (NULL is a no-op). */
void tsk_abort(tsk_sink *s);

#endif
