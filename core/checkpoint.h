/* checkpoint.h — ViT checkpoints and task heads as safetensors files (DESIGN.md "Checkpoints").
 *
 * A ViT checkpoint holds every tensor of the vit_layout under its open_clip name and the
 * architecture as JSON in __metadata__["ttmerge.arch"]; F32, F16, BF16 and F64 tensors load
 * (converted to f32). Extra tensors (heads, "task.<task>.<name>") are ignored by ckpt_load_vit.
 * ckpt_load_vit is the one way in for every checkpoint a verb accepts: it also reads Hugging Face
 * CLIP (file, directory, sharded directory) and open_clip image towers through the name map of
 * core/clipmap.h; m.format says which, and ckpt_save_vit_as writes any of them back.
 * A head file holds head.weight [classes, D] and head.bias [classes]; a zero-shot head also says how it
 * reads the features, in __metadata__["ttmerge.head"] = {"normalize_features": true, "logit_scale": s}
 * (logits = s · (f/‖f‖) @ head.weightᵀ + head.bias), which then overrides the model's settings.
 *
 *   ckpt_vit m;
 *   if (ckpt_load_vit(&m, "pretrained.safetensors", &e)) ...;   // m.params: m.lay.total floats
 *   ckpt_save_vit(&m, "copy.safetensors", NULL, 0, &e);
 *   ckpt_vit_free(&m);
 *
 * Ownership: ckpt_vit owns params and the layout (ckpt_vit_free). ckpt_head owns W and b.
 */
#ifndef TT_CHECKPOINT_H
#define TT_CHECKPOINT_H

#include "core/clipmap.h"
#include "core/safetensors.h"
#include "core/vit.h"

typedef struct ckpt_vit {
    vit_config cfg;
    vit_layout lay;
    float *params; /* [lay.total], 64-byte aligned */
    /* where it came from (ckpt_load_vit; ckpt_vit_alloc: ttmerge) */
    cm_format format;
    bool has_projection; /* false: an HF CLIPVisionModel, proj = identity */
    char *hf_config;     /* the HF config.json it came with, or NULL (owned) */
} ckpt_vit;

/* An extra tensor or metadata entry to store beside the model: F32 (data) or, with dtype ST_U8,
 * bytes (packed bit masks). */
typedef struct ckpt_extra_tensor {
    const char *name;
    int ndim;
    int64_t shape[4];
    union {
        const float *data;
        const uint8_t *bytes;
    };
    st_dtype dtype; /* ST_F32 (0) or ST_U8 */
} ckpt_extra_tensor;

typedef struct ckpt_meta {
    const char *key, *value;
} ckpt_meta;

/* Allocate a zeroed model of the given architecture. */
int ckpt_vit_alloc(ckpt_vit *m, const vit_config *cfg, tt_err *err);
int ckpt_load_vit(ckpt_vit *m, const char *path, tt_err *err);
/* The same with options (o may be NULL): --act overrides the file's activation. */
int ckpt_load_vit_opts(ckpt_vit *m, const char *path, const cm_opts *o, tt_err *err);
/* Read the ViT from an already-open file (e.g. one that also holds heads). */
int ckpt_read_vit(ckpt_vit *m, const st_file *f, tt_err *err);
/* Writes atomically; extras and meta may be NULL/0. Adds ttmerge.arch and ttmerge.version. */
int ckpt_save_vit(const ckpt_vit *m, const char *path, const ckpt_extra_tensor *extras, int n_extras,
                  const ckpt_meta *meta, int n_meta, tt_err *err);
/* Write in format f (core/clipmap.h cm_save: HF directory, open_clip or ttmerge file), with the
 * model's hf_config and has_projection; extra tensors are not written. */
int ckpt_save_vit_as(const ckpt_vit *m, cm_format f, const char *path, size_t shard_size, const ckpt_meta *meta,
                     int n_meta, tt_err *err);
/* A foreign checkpoint (HF, open_clip) says nothing of how heads read its features: take
 * normalize_features and logit_scale from ref (a suite's architecture) so that configs compare. */
void ckpt_adopt_head_settings(ckpt_vit *m, const vit_config *ref);
void ckpt_vit_free(ckpt_vit *m);

/* NaN/Inf scan: names the first bad tensor ("PATH: tensor X holds NaN at [i]"). */
int ckpt_check_finite(const ckpt_vit *m, const char *path, tt_err *err);

typedef struct ckpt_head {
    int classes, dim;
    float *W; /* [classes, dim] */
    float *b; /* [classes] */
    bool has_settings;       /* the file's ttmerge.head: how the head reads features */
    bool normalize_features; /* when has_settings */
    float logit_scale;       /* when has_settings */
} ckpt_head;

/* Reads PREFIX"weight"/PREFIX"bias" (prefix "head." for head files, "task.T.head." for tinted
 * heads in a merged checkpoint) from f; dim must match the model's output_dim. */
int ckpt_read_head(ckpt_head *h, const st_file *f, const char *prefix, int dim, tt_err *err);
int ckpt_load_head(ckpt_head *h, const char *path, int dim, tt_err *err);
int ckpt_save_head(const ckpt_head *h, const char *path, tt_err *err);
void ckpt_head_free(ckpt_head *h);
/* A head file's settings, when it has them, replace cfg's normalize_features and logit_scale. */
void ckpt_head_apply_settings(const ckpt_head *h, vit_config *cfg);

/* Task-specific tensors of a merged checkpoint, "task.<task>.<name>" (docs/formats.md):
 *   head.weight [classes, D] / head.bias [classes]   the task's own head (Model Tinting)
 *   <tensor> (an open_clip name, same shape)          the task's own copy of that backbone tensor
 *   mask.<tensor> U8 [ceil(numel/8)] + scale F32 [1]  a masked shared delta (EMR-Merging): the task
 *                 runs with θ_l + scale · (m ⊙ δ_l), δ_l = the shared tensor "delta.<tensor>", m the
 *                 mask's bits, element j = bit (j & 7) of byte j >> 3 (numpy packbits, little order)
 *   surgery.down [r, D] + surgery.up [D, r]            a feature map (Representation Surgery): the
 *                 features z become z − up · relu(down · z) before the head
 * Among x[n] (e.g. a merge context's extras, already checked), ckpt_task_apply points w's members
 * at task's backbone copies (zero-copy: vit_weights_slot) or at its masked tensors (materialised in
 * st->scratch), *W / *b at its head, and st's surgery map at the task's (NULL when it has none);
 * they stay as they were where the task has none. Undo with vit_weights_repoint(w, &m->lay,
 * m->params, NULL). st may be NULL when x holds no masks. Returns how many tensors were applied. */
typedef struct ckpt_task_state {
    float *scratch;         /* [lay.total] the current task's masked tensors (owned; NULL: x has no masks) */
    const float *down, *up; /* the current task's surgery map (borrowed from x), or NULL */
    int rank;
} ckpt_task_state;
/* Allocates st->scratch when x holds a mask (so that applying cannot fail later). */
int ckpt_task_state_init(ckpt_task_state *st, const ckpt_vit *m, const ckpt_extra_tensor *x, int n, tt_err *err);
void ckpt_task_state_free(ckpt_task_state *st);
int ckpt_task_apply(const ckpt_vit *m, const ckpt_extra_tensor *x, int n, const char *task, vit_weights *w,
                    const float **W, const float **b, ckpt_task_state *st);
/* The surgery map in place on features [rows, dim]: z −= up · relu(down · z) (up [dim, rank], down
 * [rank, dim]), row by row in float with double accumulation. */
void ckpt_surgery_map(const float *down, const float *up, int rank, int dim, float *features, int rows);
/* infer_ctx's feature hook (core/infer.h) for a ckpt_task_state with a surgery map. */
void ckpt_surgery_hook(float *features, int rows, int dim, const void *state);

#endif
