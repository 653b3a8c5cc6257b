/* clipmap.h — CLIP image towers in three layouts, seen as ttmerge's one ViT layout.
 *
 * A name map (a table, docs/checkpoints.md prints it whole) relates every tensor of the ViT
 * layout (core/vit.h: open_clip's VisionTransformer names without prefix) to its name in
 *   - ttmerge's own files: the same names, architecture in __metadata__["ttmerge.arch"];
 *   - open_clip / OpenAI state dicts: the same names under "visual." or "model.visual." (or none);
 *   - Hugging Face CLIP (CLIPModel, CLIPVisionModel, CLIPVisionModelWithProjection):
 *     vision_model.embeddings.patch_embedding.weight, ...encoder.layers.{i}.self_attn.{q,k,v}_proj.*
 *     (the rows of open_clip's fused in_proj [3w, w] = concat(q, k, v)), visual_projection.weight
 *     = projᵀ. A CLIPVisionModel has no projection: proj is the identity (output_dim = width), so
 *     the features are its pooler output.
 * Text towers (text_model.*, open_clip's unprefixed token_embedding/transformer/ln_final/...),
 * logit_scale and HF's position_ids buffers are ignored; any other tensor that fits no name of the
 * detected layout is an error naming it.
 *
 * Architecture: ttmerge.arch when the metadata has it; else Hugging Face config.json (vision_config
 * keys, hidden_act quick_gelu|gelu, layer_norm_eps) or open_clip_config.json (quick_gelu,
 * vision_cfg.head_width) when a directory is given; else the shapes: width, channels and patch from
 * the patch conv, image size from the position count, layers from the block names, MLP width,
 * output_dim from the projection, heads = width/64 (open_clip's head_width default for ViTs),
 * ln_eps 1e-5, act quick_gelu (OpenAI's CLIP weights and HF's CLIPVisionConfig default; open_clip's
 * own trainings use gelu: say --act gelu). cm_opts.act overrides every source.
 *
 *   cm_model m;
 *   if (cm_open(&m, "clip-vit-base-patch32/", NULL, err)) return -1;
 *   for (int l = 0; l < m.lay.count; l++) cm_read(&m, l, params + m.lay.t[l].offset, err);
 *   cm_close(&m);
 *
 * Ownership: cm_model owns its tensor set, layout, sources and hf_config (cm_close).
 */
#ifndef TT_CLIPMAP_H
#define TT_CLIPMAP_H

#include <stdbool.h>

#include "core/tensorset.h"
#include "core/vit.h"

typedef enum cm_format { CM_TTMERGE = 0, CM_OPEN_CLIP = 1, CM_HF = 2 } cm_format;
const char *cm_format_name(cm_format f); /* "ttmerge", "open_clip", "hf" */
int cm_format_parse(const char *s, cm_format *out);

#define CM_ACT_AUTO (-1)
typedef struct cm_opts {
    int act; /* CM_ACT_AUTO or an op_act_kind that overrides the file */
} cm_opts;

typedef enum cm_op {
    CM_COPY,      /* the same tensor */
    CM_TRANSPOSE, /* HF visual_projection.weight [D, w] = proj [w, D]ᵀ */
    CM_QKV,       /* in_proj_{weight,bias} = concat(q, k, v) of three HF tensors */
    CM_IDENTITY,  /* proj of a CLIPVisionModel (no projection): I [w, w] */
} cm_op;

typedef struct cm_source {
    cm_op op;
    const ts_tensor *part[3]; /* 1 (COPY, TRANSPOSE), 3 (QKV), 0 (IDENTITY) */
} cm_source;

typedef struct cm_model {
    ts_set *set;
    cm_format format;
    char prefix[16];     /* open_clip: "visual.", "model.visual." or "" */
    vit_config cfg;
    vit_layout lay;
    cm_source *src;      /* [lay.count] */
    bool has_projection; /* false: HF CLIPVisionModel, proj = identity */
    char *hf_config;     /* config.json text of an HF input, or metadata ttmerge.hf_config; or NULL */
} cm_model;

int cm_open(cm_model *m, const char *path, const cm_opts *o, tt_err *err);
void cm_close(cm_model *m);
/* Layout tensor l in f32 into out [numel]. */
int cm_read(const cm_model *m, int l, float *out, tt_err *err);
/* A zero-copy view of layout tensor l (F32, aligned, same name and shape), else NULL. */
const float *cm_view(const cm_model *m, int l);

/* Name of layout tensor l (of part 0..2 when CM_QKV) in format f; the op relating them. */
cm_op cm_name(cm_format f, const char *prefix, const vit_layout *lay, int l, int part, bool has_projection,
              char *buf, size_t cap);

/* Name of tensor j (0..11, core/vit.h's block order: ln_1.weight ... mlp.c_proj.bias) of a pre-LN
 * block whose tensors start with `block` ("transformer.resblocks.3.", "text_model.encoder.layers.3."),
 * in format f (part 0..2 = q, k, v when CM_QKV). The same rows as the image tower's blocks: the text
 * tower (core/clip_text.h) reads its blocks through them. */
cm_op cm_block_name(cm_format f, const char *block, int j, int part, char *buf, size_t cap);

/* ---- configuration files, parsed on their own (the fuzz target drives these) ---- */
typedef struct cm_hf_vision {
    int hidden_size, intermediate_size, projection_dim, layers, heads, channels, image_size, patch_size;
    int act;      /* op_act_kind */
    float ln_eps;
} cm_hf_vision;
/* Hugging Face config.json of a CLIPModel (vision_config, legacy vision_config_dict) or of a
 * CLIPVisionModel[WithProjection]; CLIPVisionConfig's defaults for absent keys. */
/* Block count of a tensor set from names "<block>{i}.<rest>": 1 + the largest i (digits only,
 * < 4096); 0 when none. Shared by the image and text towers' readers. */
int cm_count_blocks(const ts_set *s, const char *block);
int cm_hf_config_parse(cm_hf_vision *v, const char *text, size_t len, const char *path, tt_err *err);
/* open_clip_config.json: model_cfg.quick_gelu (default false) and vision_cfg.head_width (64). */
int cm_open_clip_config_parse(int *act, int *head_width, const char *text, size_t len, const char *path,
                              tt_err *err);

/* ---- writing ---- */
typedef struct cm_kv {
    const char *key, *value;
} cm_kv;
/* Write params (laid out by lay for cfg) in format f to OUT: HF = a new directory with
 * config.json (hf_config verbatim when given, else generated) and model.safetensors, or shards of
 * at most shard_size bytes of tensor data (0 = one file) plus model.safetensors.index.json;
 * open_clip and ttmerge = one .safetensors file ("visual." names / bare names). Every safetensors
 * file carries ttmerge.arch, ttmerge.version and meta[n_meta] in __metadata__ (HF and open_clip
 * also "format": "pt", which transformers requires). Atomic: files go to a temporary name (a
 * directory: OUT.tmp.XXXXXX) renamed at the end; an existing directory OUT is an error. */
int cm_save(cm_format f, const vit_config *cfg, const vit_layout *lay, const float *params, bool has_projection,
            const char *hf_config, const cm_kv *meta, int n_meta, const char *out, size_t shard_size,
            tt_err *err);

#endif
