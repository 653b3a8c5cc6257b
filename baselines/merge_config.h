/* merge_config.h — `ttmerge merge --config FILE.yaml`: a MergeKit-style merge configuration.
 *
 *   merge_method: ties            # ties | task_arithmetic | dare_ties | dare_linear | linear
 *                                 # (MergeKit's names) or ta | dare | consensus-ta | consensus-ties | average
 *   base_model: path/to/base      # a .safetensors file or a (sharded) Hugging Face directory
 *   models:                       # 1..64; an entry naming the base model itself is skipped
 *     - model: path/to/ft1
 *       parameters:
 *         weight: 0.7             # w_k, or a list of {filter: SUBSTRING, value: W} (first match;
 *                                 # an entry without filter is the default)
 *         density: 0.5            # fraction kept: TIES top-k (global) / DARE keep probability
 *   parameters:                   # method-wide: lambda, topk, density, k, tall_lambda, merge
 *     lambda: 1.0                 # (mean|sum), weight and density (defaults of every model)
 *   dtype: bfloat16               # output dtype (float32|float16|bfloat16) when out_dtype is absent
 *   out_dtype: bfloat16           # output dtype (arithmetic is float32 whatever is said)
 *   out_shard_size: 5GB           # ttmerge's: tensor bytes per output shard (default one file)
 *   seed: 0                       # ttmerge's: DARE's random masks
 * λ defaults to 1.0 here (MergeKit's), not to ttmerge's method defaults. MergeKit keys this engine
 * cannot honour (slices, tokenizer_source, gradients as lists of numbers, ...) are errors, as are
 * unknown and repeated keys: one line "FILE: line N: problem".
 *
 * Ownership: the config is plain values; mc_parse does not initialise it (call am_config_init).
 */
#ifndef TT_MERGE_CONFIG_H
#define TT_MERGE_CONFIG_H

#include <stddef.h>

#include "baselines/anymerge.h"
#include "core/err.h"

/* Parse text[len] (file_label names it in errors) into c (already initialised). */
int mc_parse(am_config *c, const char *text, size_t len, const char *file_label, tt_err *err);
/* Read PATH and parse it; relative model paths stay relative to the working directory, as MergeKit. */
int mc_load(am_config *c, const char *path, tt_err *err);
/* "5GB", "500MB", "1.5GiB", "123" -> bytes (GB = 10^9, Hugging Face's max_shard_size). */
int mc_parse_size(const char *s, size_t *out);

#endif
