/* tensorset.h — a checkpoint's tensors by name, whether one safetensors file or many shards.
 *
 * ts_open accepts
 *   - a safetensors file;
 *   - a directory holding model.safetensors (Hugging Face), else model.safetensors.index.json
 *     (a sharded Hugging Face checkpoint), else open_clip_model.safetensors (open_clip's hub layout);
 *   - the path of a *.safetensors.index.json itself.
 * An index is {"metadata": {"total_size": N}, "weight_map": {"<tensor>": "<shard file>", ...}}; the
 * shards sit next to it. Every shard is memory-mapped and only its header is read at open (core/
 * safetensors.h validates it): the bytes of a tensor are touched when that tensor is read, so a
 * 600 MB CLIP checkpoint opens without reading its text tower. Problems are one line naming the
 * file and the tensor: a malformed index, a missing shard, an index naming a tensor its shard does
 * not hold, a tensor in two shards (or in a shard but not in the index).
 *
 *   ts_set *s;
 *   if (ts_open(&s, "clip-vit-base-patch32/", err)) return -1;
 *   const ts_tensor *t = ts_find(s, "visual_projection.weight");
 *   if (t && ts_read_f32(t, buf, err)) ...;   // F16/BF16/F64 converted exactly, one tensor at a time
 *   ts_close(s);
 *
 * Ownership: *out of ts_open is freed by ts_close (NULL is a no-op); every pointer a query returns
 * lives until ts_close. ts_index_parse's index is freed by ts_index_free.
 */
#ifndef TT_TENSORSET_H
#define TT_TENSORSET_H

#include <stdbool.h>
#include <stddef.h>

#include "core/safetensors.h"

typedef struct ts_tensor {
    const st_tensor *t;  /* name, dtype, shape, data inside its shard's mapping */
    const st_file *file; /* the shard that holds it */
} ts_tensor;

typedef struct ts_set ts_set;

int ts_open(ts_set **out, const char *path, tt_err *err);
void ts_close(ts_set *s);

/* The path given to ts_open. */
const char *ts_path(const ts_set *s);
/* The directory the path named (or the one holding the index file given), NULL when a
 * safetensors file was given: the place of config.json and open_clip_config.json. */
const char *ts_dir(const ts_set *s);
int ts_count(const ts_set *s);
/* i-th tensor over all shards, in name order (strcmp). */
const ts_tensor *ts_at(const ts_set *s, int i);
const ts_tensor *ts_find(const ts_set *s, const char *name);
/* __metadata__[key] of the first shard (in file name order) that has it, or NULL. */
const char *ts_meta(const ts_set *s, const char *key);
int ts_shard_count(const ts_set *s);
const st_file *ts_shard(const ts_set *s, int i);

/* t as f32 (F32, F16, BF16, F64; exact except F64 beyond float range). Errors name the shard
 * file and the tensor. */
int ts_read_f32(const ts_tensor *t, float *out, tt_err *err);
/* Elements [first, first + n) of t as f32: a large tensor a slice at a time. */
int ts_read_f32_range(const ts_tensor *t, size_t first, size_t n, float *out, tt_err *err);
/* Give the tensor's pages back to the kernel (they are read again from the file if needed):
 * bounded RSS when a large checkpoint is read tensor by tensor. */
void ts_release(const ts_tensor *t);
/* The same for bytes [offset, offset + nbytes) of its data (only the pages wholly inside). */
void ts_release_range(const ts_tensor *t, size_t offset, size_t nbytes);

/* ---- the index file, parsed on its own (also what the fuzz target drives) ---- */
typedef struct ts_index {
    int n;          /* weight_map entries, in the file's order */
    char **tensor;  /* [n] tensor names */
    char **shard;   /* [n] shard file names (plain names: no '/', not "." or "..", *.safetensors) */
} ts_index;
/* text[len] (need not be NUL-terminated); errors start with "PATH: ". */
int ts_index_parse(ts_index *idx, const char *text, size_t len, const char *path, tt_err *err);
void ts_index_free(ts_index *idx);

#endif
