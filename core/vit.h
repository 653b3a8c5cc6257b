/* vit.h — the pre-LN Vision Transformer of open_clip, forward and backward on oneDNN.
 *
 * Tensor names and shapes follow open_clip's VisionTransformer (no "visual." prefix), so
 * real CLIP image towers load by name (see DESIGN.md "Checkpoints"):
 *   conv1.weight [w,C,p,p]  class_embedding [w]  positional_embedding [T,w]  ln_pre.{weight,bias}
 *   transformer.resblocks.{i}.{ln_1.*, attn.in_proj_weight [3w,w], attn.in_proj_bias [3w],
 *     attn.out_proj.weight [w,w], attn.out_proj.bias, ln_2.*, mlp.c_fc.weight [m,w], mlp.c_fc.bias,
 *     mlp.c_proj.weight [w,m], mlp.c_proj.bias}
 *   ln_post.{weight,bias}  proj [w,D]
 * features = ln_post(x[cls]) @ proj. A task head maps features to logits (vit_head).
 *
 * Parameters live in ONE flat float buffer described by a vit_layout (name, shape, offset
 * per tensor, in a fixed order); gradients, task vectors and merge coefficients use the same
 * layout, so merges and optimisers are flat loops and "layer l" means "layout tensor l".
 *
 *   vit_layout lay; vit_layout_init(&lay, &cfg, &e);
 *   float *theta = calloc(lay.total, 4); vit_weights w; vit_weights_bind(&w, &lay, theta);
 *   vit_plan *p = vit_plan_create(d, &cfg, 64, &e);       // oneDNN primitives for batch 64
 *   vit_forward(p, &w, images, features);                   // images [64,C,S,S] normalised
 *   vit_backward(p, &w, &grads, dfeatures);                 // grads += dL/dtheta
 */
#ifndef TT_VIT_H
#define TT_VIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/dnn.h"
#include "core/ops.h"

typedef struct vit_config {
    int image_size;          /* S: 28 */
    int channels;            /* C: 1 */
    int patch_size;          /* p: 7 (S % p == 0) */
    int width;               /* w: 64 */
    int layers;              /* L: 4 */
    int heads;               /* H: 4 (w % H == 0) */
    float mlp_ratio;         /* 4.0: mlp width m = (int)(w * mlp_ratio) */
    int output_dim;          /* D: 64 */
    op_act_kind act;         /* OP_ACT_GELU ("gelu") or OP_ACT_QUICK_GELU ("quick_gelu") */
    float ln_eps;            /* 1e-5 */
    bool normalize_features; /* heads see f/||f|| (CLIP style) */
    float logit_scale;       /* s in logits = s * (f/||f||) . W^T + b; 1 when not normalising */
} vit_config;

#define VIT_MAX_NAME 64

typedef struct vit_tensor_info {
    char name[VIT_MAX_NAME];
    int ndim;
    int64_t shape[4];
    size_t offset; /* in floats from the start of the flat buffer (64-byte aligned) */
    size_t numel;
} vit_tensor_info;

typedef struct vit_layout {
    int count;             /* 5 + 12*L + 3 */
    vit_tensor_info *t;    /* owned */
    size_t total;          /* floats in the flat buffer, including alignment padding */
} vit_layout;

/* Checks the config (positive sizes, divisibility, limits) and fills the layout. */
int vit_config_validate(const vit_config *cfg, tt_err *err);
int vit_layout_init(vit_layout *lay, const vit_config *cfg, tt_err *err);
void vit_layout_free(vit_layout *lay);
int vit_layout_find(const vit_layout *lay, const char *name); /* index or -1 */
int vit_mlp_width(const vit_config *cfg);
int vit_tokens(const vit_config *cfg); /* (S/p)^2 + 1 */

/* config <-> JSON (the "ttmerge.arch" metadata). to_json returns a malloc'd string. */
int vit_config_from_json(vit_config *cfg, const char *json, tt_err *err);
char *vit_config_to_json(const vit_config *cfg);

/* Named pointers into a flat buffer (params, grads, ...). NULL members mean "absent"
 * (a gradient struct with NULL members skips those weight gradients). */
typedef struct vit_block_weights {
    float *ln1_g, *ln1_b, *qkv_w, *qkv_b, *out_w, *out_b;
    float *ln2_g, *ln2_b, *fc_w, *fc_b, *fc2_w, *fc2_b;
} vit_block_weights;

typedef struct vit_weights {
    float *conv1, *cls, *pos, *ln_pre_g, *ln_pre_b;
    vit_block_weights *blocks; /* [L], owned by the struct (vit_weights_free) */
    int layers;
    float *ln_post_g, *ln_post_b, *proj;
} vit_weights;

/* Point w's members into base following the layout; w->blocks is allocated (vit_weights_free).
 * trainable (optional, [lay->count]) leaves untrainable members NULL — used for gradients. */
int vit_weights_bind(vit_weights *w, const vit_layout *lay, float *base, const bool *trainable,
                     tt_err *err);
void vit_weights_free(vit_weights *w);
/* The member of w that points at layout tensor i (0 <= i < 5 + 12L + 3): re-pointing one member
 * substitutes one tensor (a task-specific copy) without copying or allocating. */
float **vit_weights_slot(vit_weights *w, int i);
/* Point every member of an already bound w into base again (as vit_weights_bind; no allocation). */
void vit_weights_repoint(vit_weights *w, const vit_layout *lay, float *base, const bool *trainable);

/* open_clip-style random init (normal std w^-0.5 for embeddings, attn std w^-0.5, fc std
 * (2w)^-0.5, LN = 1/0, biases 0), deterministic for the seed. */
void vit_init_params(const vit_config *cfg, const vit_layout *lay, float *params, uint64_t seed);

/* ---- the planned network for a fixed batch ---- */
typedef struct vit_plan vit_plan;
vit_plan *vit_plan_create(dnn *d, const vit_config *cfg, int batch, tt_err *err);
/* A plan for forward only (evaluation): the same matmuls, with the residual sums and the MLP
 * activation fused into them as oneDNN post-ops (the same arithmetic: the same bits as
 * vit_plan_create's forward, tests/test_infer_plan.c), and no activation kept for backward: one
 * residual stream and one block's scratch serve every layer (ViT-B/32 at 224 px, 256 images: ~0.5 GB
 * instead of ~8.5 GB). vit_backward must not be called on it. */
vit_plan *vit_plan_create_inference(dnn *d, const vit_config *cfg, int batch, tt_err *err);
void vit_plan_free(vit_plan *p);
int vit_plan_batch(const vit_plan *p);
/* A plan made on a DNN_BF16 engine computes its matmuls in bf16. vit_forward then first converts
 * the weight matrices it reads (conv1, every block's four, proj) into the plan's bf16 copies, once
 * per forward (vit_backward reads the same copies), i.e. once per step of a test-time learner after
 * its weight update. vit_plan_reuse_weights(p, true) says the next vit_forward's weights hold the
 * same values as the last one's (evaluation of many batches with one model): only matrices whose
 * pointers changed are converted again; (p, false) takes that back. No effect on an f32 plan. */
bool vit_plan_bf16(const vit_plan *p);
void vit_plan_reuse_weights(vit_plan *p, bool reuse);
/* Bytes of activations and scratch the plan holds (its buffers and its ops' scratch; not oneDNN's
 * primitives, packed weights or scratchpads). */
size_t vit_plan_workspace_bytes(const vit_plan *p);
/* images [B,C,S,S] (already normalised) -> features [B,D]. A training plan saves activations for
 * backward. */
void vit_forward(vit_plan *p, const vit_weights *w, const float *images, float *features);
/* Accumulates dL/dtheta into grad's non-NULL members, given dL/dfeatures [B,D]. Must follow
 * the vit_forward of the same batch on a plan from vit_plan_create. Stops propagating below the
 * lowest trainable tensor. */
void vit_backward(vit_plan *p, const vit_weights *w, const vit_weights *grad, const float *dfeatures);
/* The four linear layers of a block, by the input they read. */
typedef enum vit_linear {
    VIT_LIN_QKV,  /* attn.in_proj_weight [3w,w]: reads ln_1(x) [M, w] */
    VIT_LIN_OUT,  /* attn.out_proj.weight [w,w]: reads the attention output [M, w] */
    VIT_LIN_FC,   /* mlp.c_fc.weight [m,w]: reads ln_2(x) [M, w] */
    VIT_LIN_FC2,  /* mlp.c_proj.weight [w,m]: reads act(c_fc(.)) [M, m] */
} vit_linear;
/* The input of linear layer `which` of block `block` as the last vit_forward of a training plan
 * saved it: [rows = B*T, *cols] row-major, image b's tokens at rows [b*T, (b+1)*T). Owned by the
 * plan, valid until its next forward. For statistics of the activations (RegMean's Gram matrices). */
const float *vit_plan_linear_input(const vit_plan *p, int block, vit_linear which, int *rows, int *cols);
/* Floating-point operations of one forward (multiply-add = 2), for throughput reports. */
double vit_forward_flops(const vit_config *cfg, int batch);

/* ---- a task head: logits [B,K] = s * n(f) . W^T + b, n = L2 normalisation or identity ---- */
typedef struct vit_head {
    int B, D, K;
    bool normalize;
    float scale;
    op_linear lin;
    float *fn, *norm, *dfn; /* [B,D], [B], [B,D] scratch */
    uint16_t *w16;          /* [K,D] bf16 copy of W on a bf16 engine, converted at each call (W is small
                             * and a test-time learner may train it) */
} vit_head;
int vit_head_init(vit_head *h, dnn *d, const vit_config *cfg, int batch, int classes, tt_err *err);
void vit_head_forward(vit_head *h, float *logits, const float *features, const float *W, const float *b);
/* dfeatures [B,D] (=, may be NULL), dW [K,D] / db [K] (+=, may be NULL). */
void vit_head_backward(vit_head *h, float *dfeatures, float *dW, float *db, const float *dlogits,
                       const float *W);
void vit_head_free(vit_head *h);

#endif
