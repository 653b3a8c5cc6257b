/* vit.c — ViT layout, weights binding, forward and backward. See vit.h. */
#include "core/vit.h"

#include <jansson.h>
#include <math.h>
#include <string.h>

#include "core/arena.h"
#include "core/rng.h"

enum { VIT_EMBED_TENSORS = 5, VIT_BLOCK_TENSORS = 12, VIT_HEAD_TENSORS = 3 };

static const char *const block_names[VIT_BLOCK_TENSORS] = {
    "ln_1.weight", "ln_1.bias", "attn.in_proj_weight", "attn.in_proj_bias",
    "attn.out_proj.weight", "attn.out_proj.bias", "ln_2.weight", "ln_2.bias",
    "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias"};

int vit_mlp_width(const vit_config *cfg) { return (int)((float)cfg->width * cfg->mlp_ratio); }
int vit_tokens(const vit_config *cfg) {
    int g = cfg->image_size / cfg->patch_size;
    return g * g + 1;
}

int vit_config_validate(const vit_config *c, tt_err *err) {
    if (c->image_size < 1 || c->image_size > 1024) return tt_fail(err, TT_EINPUT, "image_size %d out of range [1,1024]", c->image_size);
    if (c->channels < 1 || c->channels > 16) return tt_fail(err, TT_EINPUT, "channels %d out of range [1,16]", c->channels);
    if (c->patch_size < 1 || c->image_size % c->patch_size) return tt_fail(err, TT_EINPUT, "patch_size %d does not divide image_size %d", c->patch_size, c->image_size);
    if (c->width < 1 || c->width > 8192) return tt_fail(err, TT_EINPUT, "width %d out of range [1,8192]", c->width);
    if (c->layers < 0 || c->layers > 128) return tt_fail(err, TT_EINPUT, "layers %d out of range [0,128]", c->layers);
    if (c->heads < 1 || c->width % c->heads) return tt_fail(err, TT_EINPUT, "heads %d does not divide width %d", c->heads, c->width);
    if (!(c->mlp_ratio > 0 && c->mlp_ratio <= 16) || vit_mlp_width(c) < 1) return tt_fail(err, TT_EINPUT, "mlp_ratio %g out of range (0,16]", (double)c->mlp_ratio);
    if (c->output_dim < 1 || c->output_dim > 8192) return tt_fail(err, TT_EINPUT, "output_dim %d out of range [1,8192]", c->output_dim);
    if (c->act != OP_ACT_GELU && c->act != OP_ACT_QUICK_GELU) return tt_fail(err, TT_EINPUT, "unknown activation");
    if (!(c->ln_eps > 0 && c->ln_eps < 1)) return tt_fail(err, TT_EINPUT, "ln_eps %g out of range (0,1)", (double)c->ln_eps);
    if (!(c->logit_scale > 0 && c->logit_scale < 1e6)) return tt_fail(err, TT_EINPUT, "logit_scale %g out of range", (double)c->logit_scale);
    if (vit_tokens(c) > 4097) return tt_fail(err, TT_EINPUT, "too many tokens (%d)", vit_tokens(c));
    return 0;
}

static void add_tensor(vit_layout *lay, size_t *off, const char *name, int ndim, int64_t d0, int64_t d1,
                       int64_t d2, int64_t d3) {
    vit_tensor_info *t = &lay->t[lay->count++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    int64_t dims[4] = {d0, d1, d2, d3};
    t->numel = 1;
    for (int i = 0; i < 4; i++) {
        t->shape[i] = i < ndim ? dims[i] : 1;
        if (i < ndim) t->numel *= (size_t)dims[i];
    }
    t->offset = *off;
    *off += (t->numel + 15) & ~(size_t)15; /* 64-byte aligned tensors */
}

int vit_layout_init(vit_layout *lay, const vit_config *c, tt_err *err) {
    memset(lay, 0, sizeof *lay);
    if (vit_config_validate(c, err)) return -1;
    int n = VIT_EMBED_TENSORS + VIT_BLOCK_TENSORS * c->layers + VIT_HEAD_TENSORS;
    lay->t = calloc((size_t)n, sizeof *lay->t);
    if (!lay->t) return tt_fail(err, TT_ENOMEM, "out of memory (layout)");
    int64_t w = c->width, m = vit_mlp_width(c), p = c->patch_size;
    size_t off = 0;
    add_tensor(lay, &off, "conv1.weight", 4, w, c->channels, p, p);
    add_tensor(lay, &off, "class_embedding", 1, w, 0, 0, 0);
    add_tensor(lay, &off, "positional_embedding", 2, vit_tokens(c), w, 0, 0);
    add_tensor(lay, &off, "ln_pre.weight", 1, w, 0, 0, 0);
    add_tensor(lay, &off, "ln_pre.bias", 1, w, 0, 0, 0);
    const int64_t shapes[VIT_BLOCK_TENSORS][2] = {{w, 0}, {w, 0}, {3 * w, w}, {3 * w, 0}, {w, w}, {w, 0},
                                                  {w, 0}, {w, 0}, {m, w},     {m, 0},     {w, m}, {w, 0}};
    for (int i = 0; i < c->layers; i++)
        for (int j = 0; j < VIT_BLOCK_TENSORS; j++) {
            char name[VIT_MAX_NAME];
            snprintf(name, sizeof name, "transformer.resblocks.%d.%s", i, block_names[j]);
            add_tensor(lay, &off, name, shapes[j][1] ? 2 : 1, shapes[j][0], shapes[j][1], 0, 0);
        }
    add_tensor(lay, &off, "ln_post.weight", 1, w, 0, 0, 0);
    add_tensor(lay, &off, "ln_post.bias", 1, w, 0, 0, 0);
    add_tensor(lay, &off, "proj", 2, w, c->output_dim, 0, 0);
    lay->total = off;
    return 0;
}

void vit_layout_free(vit_layout *lay) {
    free(lay->t);
    memset(lay, 0, sizeof *lay);
}

int vit_layout_find(const vit_layout *lay, const char *name) {
    for (int i = 0; i < lay->count; i++)
        if (strcmp(lay->t[i].name, name) == 0) return i;
    return -1;
}

/* ---- config JSON ---- */

static int json_get_int(json_t *o, const char *key, int *out, tt_err *err) {
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v)) return tt_fail(err, TT_EINPUT, "architecture: \"%s\" must be an integer", key);
    json_int_t x = json_integer_value(v);
    if (x < -1000000 || x > 1000000) return tt_fail(err, TT_EINPUT, "architecture: \"%s\" out of range", key);
    *out = (int)x;
    return 0;
}

static int json_get_float(json_t *o, const char *key, float *out, float dflt, tt_err *err) {
    json_t *v = json_object_get(o, key);
    if (!v) { *out = dflt; return 0; }
    if (!json_is_number(v)) return tt_fail(err, TT_EINPUT, "architecture: \"%s\" must be a number", key);
    *out = (float)json_number_value(v);
    return 0;
}

int vit_config_from_json(vit_config *c, const char *text, tt_err *err) {
    memset(c, 0, sizeof *c);
    json_error_t je;
    json_t *o = json_loads(text, 0, &je);
    if (!o) return tt_fail(err, TT_EINPUT, "architecture JSON: %s (line %d)", je.text, je.line);
    int rc = -1;
    if (!json_is_object(o)) { tt_fail(err, TT_EINPUT, "architecture JSON is not an object"); goto done; }
    if (json_get_int(o, "image_size", &c->image_size, err) || json_get_int(o, "channels", &c->channels, err) ||
        json_get_int(o, "patch_size", &c->patch_size, err) || json_get_int(o, "width", &c->width, err) ||
        json_get_int(o, "layers", &c->layers, err) || json_get_int(o, "heads", &c->heads, err) ||
        json_get_int(o, "output_dim", &c->output_dim, err) ||
        json_get_float(o, "mlp_ratio", &c->mlp_ratio, 4.0f, err) ||
        json_get_float(o, "ln_eps", &c->ln_eps, 1e-5f, err) ||
        json_get_float(o, "logit_scale", &c->logit_scale, 1.0f, err))
        goto done;
    json_t *act = json_object_get(o, "act");
    const char *as = json_is_string(act) ? json_string_value(act) : act ? NULL : "gelu";
    if (as && strcmp(as, "gelu") == 0) c->act = OP_ACT_GELU;
    else if (as && strcmp(as, "quick_gelu") == 0) c->act = OP_ACT_QUICK_GELU;
    else { tt_fail(err, TT_EINPUT, "architecture: \"act\" must be \"gelu\" or \"quick_gelu\""); goto done; }
    json_t *nf = json_object_get(o, "normalize_features");
    if (nf && !json_is_boolean(nf)) { tt_fail(err, TT_EINPUT, "architecture: \"normalize_features\" must be a boolean"); goto done; }
    c->normalize_features = nf && json_is_true(nf);
    rc = vit_config_validate(c, err);
done:
    json_decref(o);
    return rc;
}

char *vit_config_to_json(const vit_config *c) {
    json_t *o = json_pack("{s:i,s:i,s:i,s:i,s:i,s:i,s:f,s:i,s:s,s:f,s:b,s:f}", "image_size", c->image_size,
                          "channels", c->channels, "patch_size", c->patch_size, "width", c->width, "layers",
                          c->layers, "heads", c->heads, "mlp_ratio", (double)c->mlp_ratio, "output_dim",
                          c->output_dim, "act", c->act == OP_ACT_GELU ? "gelu" : "quick_gelu", "ln_eps",
                          (double)c->ln_eps, "normalize_features", (int)c->normalize_features,
                          "logit_scale", (double)c->logit_scale);
    if (!o) return NULL;
    char *s = json_dumps(o, JSON_SORT_KEYS | JSON_COMPACT | JSON_REAL_PRECISION(9));
    json_decref(o);
    return s;
}

/* ---- weights ---- */

float **vit_weights_slot(vit_weights *w, int i) {
    int count = VIT_EMBED_TENSORS + VIT_BLOCK_TENSORS * w->layers + VIT_HEAD_TENSORS;
    TT_ASSERT(i >= 0 && i < count);
    /* member addresses in layout order */
    float **slots[VIT_EMBED_TENSORS + VIT_HEAD_TENSORS] = {&w->conv1, &w->cls, &w->pos, &w->ln_pre_g, &w->ln_pre_b,
                                                           &w->ln_post_g, &w->ln_post_b, &w->proj};
    if (i < VIT_EMBED_TENSORS) return slots[i];
    if (i >= count - VIT_HEAD_TENSORS) return slots[VIT_EMBED_TENSORS + i - (count - VIT_HEAD_TENSORS)];
    vit_block_weights *bw = &w->blocks[(i - VIT_EMBED_TENSORS) / VIT_BLOCK_TENSORS];
    float **bs[VIT_BLOCK_TENSORS] = {&bw->ln1_g, &bw->ln1_b, &bw->qkv_w, &bw->qkv_b, &bw->out_w, &bw->out_b,
                                     &bw->ln2_g, &bw->ln2_b, &bw->fc_w,  &bw->fc_b,  &bw->fc2_w, &bw->fc2_b};
    return bs[(i - VIT_EMBED_TENSORS) % VIT_BLOCK_TENSORS];
}

void vit_weights_repoint(vit_weights *w, const vit_layout *lay, float *base, const bool *trainable) {
    TT_ASSERT(lay->count == VIT_EMBED_TENSORS + VIT_BLOCK_TENSORS * w->layers + VIT_HEAD_TENSORS);
    for (int i = 0; i < lay->count; i++)
        *vit_weights_slot(w, i) = (!trainable || trainable[i]) ? base + lay->t[i].offset : NULL;
}

int vit_weights_bind(vit_weights *w, const vit_layout *lay, float *base, const bool *trainable, tt_err *err) {
    memset(w, 0, sizeof *w);
    int L = (lay->count - VIT_EMBED_TENSORS - VIT_HEAD_TENSORS) / VIT_BLOCK_TENSORS;
    w->layers = L;
    w->blocks = calloc(L > 0 ? (size_t)L : 1, sizeof *w->blocks);
    if (!w->blocks) return tt_fail(err, TT_ENOMEM, "out of memory (weights)");
    vit_weights_repoint(w, lay, base, trainable);
    return 0;
}

void vit_weights_free(vit_weights *w) {
    free(w->blocks);
    memset(w, 0, sizeof *w);
}

void vit_init_params(const vit_config *c, const vit_layout *lay, float *params, uint64_t seed) {
    memset(params, 0, lay->total * sizeof(float));
    double w = c->width, L = c->layers > 0 ? c->layers : 1;
    double attn_std = pow(w, -0.5), proj_std = pow(w, -0.5) * pow(2 * L, -0.5), fc_std = pow(2 * w, -0.5);
    for (int i = 0; i < lay->count; i++) {
        const vit_tensor_info *t = &lay->t[i];
        float *p = params + t->offset;
        const char *n = t->name;
        const char *leaf = strrchr(n, '.') ? strrchr(n, '.') + 1 : n;
        double std = 0;
        if (strstr(n, "ln_") && strcmp(leaf, "weight") == 0) {
            for (size_t k = 0; k < t->numel; k++) p[k] = 1.0f;
            continue;
        }
        if (strcmp(n, "conv1.weight") == 0) std = pow((double)(t->numel / t->shape[0]), -0.5);
        else if (!strcmp(n, "class_embedding") || !strcmp(n, "positional_embedding") || !strcmp(n, "proj")) std = attn_std;
        else if (strstr(n, "in_proj_weight")) std = attn_std;
        else if (strstr(n, "out_proj.weight") || strstr(n, "c_proj.weight")) std = proj_std;
        else if (strstr(n, "c_fc.weight")) std = fc_std;
        if (std == 0) continue; /* biases and LN shifts stay 0 */
        rng r;
        rng_init(&r, seed * 1000003ull + (uint64_t)i);
        for (size_t k = 0; k < t->numel; k++) p[k] = (float)(std * rng_normal(&r));
    }
}

/* ---- plan ---- */

struct vit_plan {
    vit_config cfg;
    int B, T, P, M, W, Mw, D, Cpp, L;
    bool training; /* false: an inference plan (vit_plan_create_inference) */
    dnn *d;
    op_linear patch, qkv, out, fc, fc2;
    op_layernorm ln_tok, ln_cls;
    op_attention attn;
    op_act act;
    dnn_matmul *proj_fwd, *proj_dx, *proj_dw;
    arena mem;
    /* activations saved by forward ([rows, cols]); an inference plan points every layer's entry
     * at one shared set (inference_layout) */
    float *patches;              /* [B*P, Cpp] */
    float *emb;                  /* [B*P, W] */
    float *x_embed;              /* [M, W] cls + patches + pos */
    float *pre_mean, *pre_var;   /* [M] */
    float **res;                 /* [L+1][M, W]; res[0] = ln_pre(x_embed) */
    float **ln1, **ln1_mean, **ln1_var, **qkvs, **probs, **att, **mid, **ln2, **ln2_mean, **ln2_var, **fcs, **acts;
    float *branch;               /* [M, W] */
    float *cls, *post, *post_mean, *post_var; /* [B, W], [B] */
    /* backward scratch */
    float *d_res, *d_tmp, *d_ln, *d_att, *d_qkv, *d_fc, *d_act, *d_cls, *d_post, *d_patch;
    /* bf16 plans: the bf16 copies of the weight matrices (W16_* order), each with the f32 array it
     * was converted from by the last vit_forward */
    bool bf16, w16_reuse;
    int n16;
    uint16_t *w16;         /* one buffer, n16 matrices */
    uint16_t **w16_at;     /* [n16] */
    size_t *w16_n;         /* [n16] elements */
    const float **w16_src; /* [n16] */
};

/* The weight matrices of a bf16 plan: conv1, proj, then per block qkv, out, fc, fc2. */
enum { W16_CONV1 = 0, W16_PROJ = 1, W16_BLOCKS = 2, W16_PER_BLOCK = 4 };
static int w16_index(int block, int k) { return W16_BLOCKS + W16_PER_BLOCK * block + k; }

static int w16_alloc(vit_plan *p, tt_err *err) {
    p->n16 = W16_BLOCKS + W16_PER_BLOCK * p->L;
    size_t n = (size_t)p->n16;
    p->w16_at = calloc(n, sizeof *p->w16_at);
    p->w16_n = calloc(n, sizeof *p->w16_n);
    p->w16_src = calloc(n, sizeof *p->w16_src);
    if (!p->w16_at || !p->w16_n || !p->w16_src) return tt_fail(err, TT_ENOMEM, "out of memory (bf16 weights)");
    size_t W = (size_t)p->W, Mw = (size_t)p->Mw, total = 0;
    p->w16_n[W16_CONV1] = W * (size_t)p->Cpp;
    p->w16_n[W16_PROJ] = W * (size_t)p->D;
    for (int i = 0; i < p->L; i++) {
        p->w16_n[w16_index(i, 0)] = 3 * W * W;
        p->w16_n[w16_index(i, 1)] = W * W;
        p->w16_n[w16_index(i, 2)] = Mw * W;
        p->w16_n[w16_index(i, 3)] = W * Mw;
    }
    for (int j = 0; j < p->n16; j++) total += (p->w16_n[j] + 31) & ~(size_t)31; /* 64-byte starts */
    p->w16 = tt_calloc_aligned(total, sizeof(uint16_t), err);
    if (!p->w16) return -1;
    for (int j = 0, at = 0; j < p->n16; j++) {
        p->w16_at[j] = p->w16 + at;
        at += (int)((p->w16_n[j] + 31) & ~(size_t)31);
    }
    return 0;
}

static void w16_free(vit_plan *p) {
    free(p->w16);
    free(p->w16_at);
    free(p->w16_n);
    free(p->w16_src);
}

/* The f32 source of weight matrix j in w. */
static const float *w16_source(const vit_weights *w, int j) {
    if (j == W16_CONV1) return w->conv1;
    if (j == W16_PROJ) return w->proj;
    const vit_block_weights *b = &w->blocks[(j - W16_BLOCKS) / W16_PER_BLOCK];
    const float *m[W16_PER_BLOCK] = {b->qkv_w, b->out_w, b->fc_w, b->fc2_w};
    return m[(j - W16_BLOCKS) % W16_PER_BLOCK];
}

/* Convert w's matrices into the plan's bf16 copies (all of them, or the re-pointed ones only). */
static void w16_sync(vit_plan *p, const vit_weights *w) {
    for (int j = 0; j < p->n16; j++) {
        const float *src = w16_source(w, j);
        if (p->w16_reuse && src == p->w16_src[j]) continue;
        dnn_to_bf16(p->w16_at[j], src, p->w16_n[j]);
        p->w16_src[j] = src;
    }
    p->w16_reuse = false;
}

/* What a matmul reads for weight matrix j: f32 as given, or its bf16 copy (made from the same array
 * by the forward of this step). */
static const void *wmat(const vit_plan *p, const vit_weights *w, int j) {
    const float *src = w16_source(w, j);
    if (!p->bf16) return src;
    TT_ASSERT(src == p->w16_src[j]);
    return p->w16_at[j];
}

bool vit_plan_bf16(const vit_plan *p) { return p->bf16; }
void vit_plan_reuse_weights(vit_plan *p, bool reuse) { p->w16_reuse = reuse; }

static void plan_layout(vit_plan *p, arena *a) {
    size_t M = (size_t)p->M, W = (size_t)p->W, Mw = (size_t)p->Mw, B = (size_t)p->B;
    p->patches = arena_floats(a, (size_t)p->B * p->P * p->Cpp);
    p->emb = arena_floats(a, (size_t)p->B * p->P * W);
    p->x_embed = arena_floats(a, M * W);
    p->pre_mean = arena_floats(a, M);
    p->pre_var = arena_floats(a, M);
    float ***lists[] = {&p->res, &p->ln1, &p->ln1_mean, &p->ln1_var, &p->qkvs, &p->probs, &p->att,
                        &p->mid, &p->ln2, &p->ln2_mean, &p->ln2_var, &p->fcs, &p->acts};
    for (size_t k = 0; k < sizeof lists / sizeof lists[0]; k++)
        *lists[k] = arena_bytes(a, sizeof(float *) * (size_t)(p->L + 1));
    for (int i = 0; i <= p->L; i++) {
        float *r = arena_floats(a, M * W);
        if (a->base) p->res[i] = r;
        if (i == p->L) break;
        float *v[12] = {arena_floats(a, M * W), arena_floats(a, M), arena_floats(a, M), arena_floats(a, M * 3 * W),
                        arena_floats(a, B * (size_t)p->cfg.heads * p->T * p->T), arena_floats(a, M * W),
                        arena_floats(a, M * W), arena_floats(a, M * W), arena_floats(a, M), arena_floats(a, M),
                        arena_floats(a, M * Mw), arena_floats(a, M * Mw)};
        if (!a->base) continue;
        p->ln1[i] = v[0]; p->ln1_mean[i] = v[1]; p->ln1_var[i] = v[2]; p->qkvs[i] = v[3]; p->probs[i] = v[4];
        p->att[i] = v[5]; p->mid[i] = v[6]; p->ln2[i] = v[7]; p->ln2_mean[i] = v[8]; p->ln2_var[i] = v[9];
        p->fcs[i] = v[10]; p->acts[i] = v[11];
    }
    p->branch = arena_floats(a, M * W);
    p->cls = arena_floats(a, B * W);
    p->post = arena_floats(a, B * W);
    p->post_mean = arena_floats(a, B);
    p->post_var = arena_floats(a, B);
    p->d_res = arena_floats(a, M * W);
    p->d_tmp = arena_floats(a, M * W);
    p->d_ln = arena_floats(a, M * W);
    p->d_att = arena_floats(a, M * W);
    p->d_qkv = arena_floats(a, M * 3 * W);
    p->d_fc = arena_floats(a, M * Mw);
    p->d_act = arena_floats(a, M * Mw);
    p->d_cls = arena_floats(a, B * W);
    p->d_post = arena_floats(a, B * W);
    p->d_patch = arena_floats(a, (size_t)p->B * p->P * W);
}

/* An inference plan's buffers: every layer's pointers the same. In a block, x = res is updated in
 * place (mid = res + attention branch, then res = mid + MLP branch: out and fc2 add into res inside
 * their matmuls, the same sums); ln1, the attention output and ln2 share one [M, W] buffer (each is
 * spent by the next matmul before the following one is written); qkv and the MLP hidden share one
 * `wide` buffer (fc writes act(.) there directly). The embedding stage borrows the same buffers
 * (patches in wide, emb in branch, x_embed in ln) before block 0. */
static void inference_layout(vit_plan *p, arena *a) {
    size_t M = (size_t)p->M, W = (size_t)p->W, Mw = (size_t)p->Mw, B = (size_t)p->B;
    size_t patches = B * (size_t)p->P * (size_t)p->Cpp, wide = M * 3 * W;
    if (M * Mw > wide) wide = M * Mw;
    if (patches > wide) wide = patches;
    float *res = arena_floats(a, M * W), *ln = arena_floats(a, M * W), *branch = arena_floats(a, M * W);
    /* the softmax runs in place on the attention's own scores buffer (ViT-B/16 at 256 images: 477 MB) */
    float *wbuf = arena_floats(a, wide), *probs = p->attn.scores;
    float *mean = arena_floats(a, M), *var = arena_floats(a, M);
    float ***lists[] = {&p->res, &p->ln1, &p->ln1_mean, &p->ln1_var, &p->qkvs, &p->probs, &p->att,
                        &p->mid, &p->ln2, &p->ln2_mean, &p->ln2_var, &p->fcs, &p->acts};
    for (size_t k = 0; k < sizeof lists / sizeof lists[0]; k++)
        *lists[k] = arena_bytes(a, sizeof(float *) * (size_t)(p->L + 1));
    p->cls = arena_floats(a, B * W);
    p->post = arena_floats(a, B * W);
    p->post_mean = arena_floats(a, B);
    p->post_var = arena_floats(a, B);
    if (!a->base) return;
    p->patches = wbuf;
    p->emb = branch;
    p->x_embed = ln;
    p->pre_mean = mean;
    p->pre_var = var;
    p->branch = branch;
    for (int i = 0; i <= p->L; i++) {
        p->res[i] = p->mid[i] = res;
        p->ln1[i] = p->att[i] = p->ln2[i] = ln;
        p->ln1_mean[i] = p->ln2_mean[i] = mean;
        p->ln1_var[i] = p->ln2_var[i] = var;
        p->qkvs[i] = p->fcs[i] = p->acts[i] = wbuf;
        p->probs[i] = probs;
    }
}

static vit_plan *plan_create(dnn *d, const vit_config *cfg, int batch, bool training, tt_err *err) {
    if (vit_config_validate(cfg, err)) return NULL;
    if (batch < 1 || batch > 65536) {
        tt_fail(err, TT_EINPUT, "batch %d out of range", batch);
        return NULL;
    }
    vit_plan *p = calloc(1, sizeof *p);
    if (!p) {
        tt_fail(err, TT_ENOMEM, "out of memory (plan)");
        return NULL;
    }
    p->cfg = *cfg;
    p->d = d;
    p->training = training;
    p->bf16 = d->precision == DNN_BF16;
    p->B = batch;
    p->T = vit_tokens(cfg);
    p->P = p->T - 1;
    p->M = batch * p->T;
    p->W = cfg->width;
    p->Mw = vit_mlp_width(cfg);
    p->D = cfg->output_dim;
    p->Cpp = cfg->channels * cfg->patch_size * cfg->patch_size;
    p->L = cfg->layers;
    /* an inference plan has the same forward primitives, and none for backward */
    int (*linear_init)(op_linear *, dnn *, int, int, int, bool, tt_err *) =
        training ? op_linear_init : op_linear_init_forward;
    int rc = linear_init(&p->patch, d, batch * p->P, p->Cpp, p->W, false, err);
    if (!rc) rc = op_layernorm_init(&p->ln_tok, d, p->M, p->W, cfg->ln_eps, err);
    if (!rc) rc = op_layernorm_init(&p->ln_cls, d, batch, p->W, cfg->ln_eps, err);
    if (!rc && p->L > 0) {
        rc = linear_init(&p->qkv, d, p->M, p->W, 3 * p->W, true, err);
        if (!rc)
            rc = training ? op_attention_init(&p->attn, d, batch, p->T, p->W, cfg->heads, err)
                          : op_attention_init_forward(&p->attn, d, batch, p->T, p->W, cfg->heads, err);
        if (training) {
            if (!rc) rc = op_linear_init(&p->out, d, p->M, p->W, p->W, true, err);
            if (!rc) rc = op_linear_init(&p->fc, d, p->M, p->W, p->Mw, true, err);
            if (!rc) rc = op_act_init(&p->act, d, (size_t)p->M * p->Mw, cfg->act, err);
            if (!rc) rc = op_linear_init(&p->fc2, d, p->M, p->Mw, p->W, true, err);
        } else { /* the residual sums and the activation run inside the matmuls (vit_forward) */
            /* bf16: fc writes the MLP hidden in bf16 and fc2 reads it so */
            op_linear_fusion residual = {.add_to_y = true}, act = {.act = true, .act_kind = cfg->act, .y_bf16 = true},
                             residual_bf16_in = {.add_to_y = true, .x_bf16 = true};
            if (!rc) rc = op_linear_init_forward_fused(&p->out, d, p->M, p->W, p->W, true, residual, err);
            if (!rc) rc = op_linear_init_forward_fused(&p->fc, d, p->M, p->W, p->Mw, true, act, err);
            if (!rc) rc = op_linear_init_forward_fused(&p->fc2, d, p->M, p->Mw, p->W, true, residual_bf16_in, err);
        }
    }
    bool bf = p->bf16;
    if (!rc && !training) {
        p->proj_fwd = dnn_matmul_create(d, &(dnn_matmul_desc){.batch = 1, .M = batch, .K = p->W, .N = p->D, .b_bf16 = bf}, err);
        rc = p->proj_fwd ? 0 : -1;
    } else if (!rc) {
        p->proj_fwd = dnn_matmul_create(d, &(dnn_matmul_desc){.batch = 1, .M = batch, .K = p->W, .N = p->D, .b_bf16 = bf}, err);
        if (p->proj_fwd)
            p->proj_dx = dnn_matmul_create(d, &(dnn_matmul_desc){.batch = 1, .M = batch, .K = p->D, .N = p->W, .trans_b = true,
                                                                  .b_bf16 = bf}, err);
        if (p->proj_dx)
            p->proj_dw = dnn_matmul_create(d, &(dnn_matmul_desc){.batch = 1, .M = p->W, .K = batch, .N = p->D, .trans_a = true, .accumulate = true}, err);
        rc = p->proj_dw ? 0 : -1;
    }
    if (!rc && bf) rc = w16_alloc(p, err);
    if (!rc) {
        void (*layout)(vit_plan *, arena *) = training ? plan_layout : inference_layout;
        layout(p, &p->mem);
        rc = arena_alloc(&p->mem, err);
        if (!rc) layout(p, &p->mem);
    }
    if (rc) {
        vit_plan_free(p);
        return NULL;
    }
    return p;
}

vit_plan *vit_plan_create(dnn *d, const vit_config *cfg, int batch, tt_err *err) {
    return plan_create(d, cfg, batch, true, err);
}

vit_plan *vit_plan_create_inference(dnn *d, const vit_config *cfg, int batch, tt_err *err) {
    return plan_create(d, cfg, batch, false, err);
}

size_t vit_plan_workspace_bytes(const vit_plan *p) {
    size_t floats = p->attn.scratch_floats + p->patch.t_floats + p->qkv.t_floats + p->out.t_floats +
                    p->fc.t_floats + p->fc2.t_floats;
    size_t w16 = 0;
    for (int j = 0; j < p->n16; j++) w16 += p->w16_n[j] * sizeof(uint16_t);
    return p->mem.cap + floats * sizeof(float) + w16;
}

void vit_plan_free(vit_plan *p) {
    if (!p) return;
    op_linear_free(&p->patch);
    op_linear_free(&p->qkv);
    op_linear_free(&p->out);
    op_linear_free(&p->fc);
    op_linear_free(&p->fc2);
    op_layernorm_free(&p->ln_tok);
    op_layernorm_free(&p->ln_cls);
    op_attention_free(&p->attn);
    op_act_free(&p->act);
    dnn_matmul_free(p->proj_fwd);
    dnn_matmul_free(p->proj_dx);
    dnn_matmul_free(p->proj_dw);
    arena_free(&p->mem);
    w16_free(p);
    free(p);
}

int vit_plan_batch(const vit_plan *p) { return p->B; }

void vit_forward(vit_plan *p, const vit_weights *w, const float *images, float *features) {
    const vit_config *c = &p->cfg;
    int B = p->B, T = p->T, P = p->P, W = p->W;
    if (p->bf16) w16_sync(p, w);
    op_patchify(p->patches, images, B, c->channels, c->image_size, c->patch_size);
    op_linear_forward(&p->patch, p->emb, p->patches, wmat(p, w, W16_CONV1), NULL);
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * T * W > 32768)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            float *x = p->x_embed + ((size_t)b * T + t) * W;
            const float *src = t == 0 ? w->cls : p->emb + ((size_t)b * P + t - 1) * W;
            const float *pos = w->pos + (size_t)t * W;
            for (int j = 0; j < W; j++) x[j] = src[j] + pos[j];
        }
    op_layernorm_forward(&p->ln_tok, p->res[0], p->pre_mean, p->pre_var, p->x_embed, w->ln_pre_g, w->ln_pre_b);
    size_t MW = (size_t)p->M * W;
    for (int i = 0; i < p->L; i++) {
        const vit_block_weights *bw = &w->blocks[i];
        op_layernorm_forward(&p->ln_tok, p->ln1[i], p->ln1_mean[i], p->ln1_var[i], p->res[i], bw->ln1_g, bw->ln1_b);
        op_linear_forward(&p->qkv, p->qkvs[i], p->ln1[i], wmat(p, w, w16_index(i, 0)), bw->qkv_b);
        op_attention_forward(&p->attn, p->att[i], p->probs[i], p->qkvs[i]);
        if (p->training) { /* mid = res + out(att); res' = mid + fc2(act(fc(ln2(mid)))), every step saved */
            op_linear_forward(&p->out, p->branch, p->att[i], wmat(p, w, w16_index(i, 1)), bw->out_b);
            op_add(p->mid[i], p->res[i], p->branch, MW);
            op_layernorm_forward(&p->ln_tok, p->ln2[i], p->ln2_mean[i], p->ln2_var[i], p->mid[i], bw->ln2_g, bw->ln2_b);
            op_linear_forward(&p->fc, p->fcs[i], p->ln2[i], wmat(p, w, w16_index(i, 2)), bw->fc_b);
            op_act_forward(&p->act, p->acts[i], p->fcs[i]);
            op_linear_forward(&p->fc2, p->branch, p->acts[i], wmat(p, w, w16_index(i, 3)), bw->fc2_b);
            op_add(p->res[i + 1], p->mid[i], p->branch, MW);
        } else { /* the same sums, fused: out and fc2 add into the stream res (= mid), fc applies act */
            op_linear_forward(&p->out, p->res[i], p->att[i], wmat(p, w, w16_index(i, 1)), bw->out_b);
            op_layernorm_forward(&p->ln_tok, p->ln2[i], p->ln2_mean[i], p->ln2_var[i], p->res[i], bw->ln2_g, bw->ln2_b);
            op_linear_forward(&p->fc, p->acts[i], p->ln2[i], wmat(p, w, w16_index(i, 2)), bw->fc_b);
            op_linear_forward(&p->fc2, p->res[i], p->acts[i], wmat(p, w, w16_index(i, 3)), bw->fc2_b);
        }
    }
    for (int b = 0; b < B; b++)
        memcpy(p->cls + (size_t)b * W, p->res[p->L] + (size_t)b * T * W, (size_t)W * sizeof(float));
    op_layernorm_forward(&p->ln_cls, p->post, p->post_mean, p->post_var, p->cls, w->ln_post_g, w->ln_post_b);
    dnn_matmul_run(p->proj_fwd, p->post, wmat(p, w, W16_PROJ), NULL, features);
}

const float *vit_plan_linear_input(const vit_plan *p, int block, vit_linear which, int *rows, int *cols) {
    TT_ASSERT(p->training && block >= 0 && block < p->L); /* an inference plan reuses one set of buffers */
    *rows = p->M;
    *cols = which == VIT_LIN_FC2 ? p->Mw : p->W;
    switch (which) {
    case VIT_LIN_QKV: return p->ln1[block];
    case VIT_LIN_OUT: return p->att[block];
    case VIT_LIN_FC: return p->ln2[block];
    case VIT_LIN_FC2: return p->acts[block];
    }
    return NULL;
}

static bool block_trainable(const vit_block_weights *g) {
    const float *const m[] = {g->ln1_g, g->ln1_b, g->qkv_w, g->qkv_b, g->out_w, g->out_b,
                              g->ln2_g, g->ln2_b, g->fc_w,  g->fc_b,  g->fc2_w, g->fc2_b};
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
        if (m[i]) return true;
    return false;
}

void vit_backward(vit_plan *p, const vit_weights *w, const vit_weights *g, const float *dfeatures) {
    TT_ASSERT(p->training); /* an inference plan keeps no activations */
    int B = p->B, T = p->T, P = p->P, W = p->W;
    size_t MW = (size_t)p->M * W;
    /* lowest part that needs gradients: -1 = embeddings, L = only ln_post/proj */
    bool embed = g->conv1 || g->cls || g->pos || g->ln_pre_g || g->ln_pre_b;
    int lo = p->L;
    for (int i = p->L - 1; i >= 0; i--)
        if (block_trainable(&g->blocks[i])) lo = i;
    if (embed) lo = -1;

    if (g->proj) dnn_matmul_run(p->proj_dw, p->post, dfeatures, NULL, g->proj);
    if (lo == p->L && !g->ln_post_g && !g->ln_post_b) return;
    dnn_matmul_run(p->proj_dx, dfeatures, wmat(p, w, W16_PROJ), NULL, p->d_post);
    op_layernorm_backward(&p->ln_cls, lo == p->L ? NULL : p->d_cls, g->ln_post_g, g->ln_post_b, p->d_post,
                          p->cls, p->post_mean, p->post_var, w->ln_post_g);
    if (lo == p->L) return;
    memset(p->d_res, 0, MW * sizeof(float));
    for (int b = 0; b < B; b++)
        memcpy(p->d_res + (size_t)b * T * W, p->d_cls + (size_t)b * W, (size_t)W * sizeof(float));

    for (int i = p->L - 1; i >= (lo < 0 ? 0 : lo); i--) {
        const vit_block_weights *bw = &w->blocks[i], *bg = &g->blocks[i];
        /* MLP branch: res[i+1] = mid + fc2(act(fc(ln2(mid)))) */
        op_linear_backward(&p->fc2, p->d_act, bg->fc2_w, bg->fc2_b, p->d_res, p->acts[i], wmat(p, w, w16_index(i, 3)));
        op_act_backward(&p->act, p->d_fc, p->d_act, p->fcs[i]);
        op_linear_backward(&p->fc, p->d_ln, bg->fc_w, bg->fc_b, p->d_fc, p->ln2[i], wmat(p, w, w16_index(i, 2)));
        op_layernorm_backward(&p->ln_tok, p->d_tmp, bg->ln2_g, bg->ln2_b, p->d_ln, p->mid[i], p->ln2_mean[i],
                              p->ln2_var[i], bw->ln2_g);
        op_add_inplace(p->d_res, p->d_tmp, MW); /* d mid */
        /* attention branch: mid = res[i] + out(attn(qkv(ln1(res[i])))) */
        op_linear_backward(&p->out, p->d_att, bg->out_w, bg->out_b, p->d_res, p->att[i], wmat(p, w, w16_index(i, 1)));
        op_attention_backward(&p->attn, p->d_qkv, p->d_att, p->qkvs[i], p->probs[i]);
        op_linear_backward(&p->qkv, p->d_ln, bg->qkv_w, bg->qkv_b, p->d_qkv, p->ln1[i], wmat(p, w, w16_index(i, 0)));
        bool last = i == lo;
        op_layernorm_backward(&p->ln_tok, last ? NULL : p->d_tmp, bg->ln1_g, bg->ln1_b, p->d_ln, p->res[i],
                              p->ln1_mean[i], p->ln1_var[i], bw->ln1_g);
        if (last) return;
        op_add_inplace(p->d_res, p->d_tmp, MW); /* d res[i] */
    }
    /* embeddings: res[0] = ln_pre(x_embed) */
    op_layernorm_backward(&p->ln_tok, p->d_tmp, g->ln_pre_g, g->ln_pre_b, p->d_res, p->x_embed, p->pre_mean,
                          p->pre_var, w->ln_pre_g);
    if (g->cls || g->pos) {
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) {
                const float *d = p->d_tmp + ((size_t)b * T + t) * W;
                if (g->pos) op_add_inplace(g->pos + (size_t)t * W, d, (size_t)W);
                if (g->cls && t == 0) op_add_inplace(g->cls, d, (size_t)W);
            }
    }
    if (g->conv1) {
        for (int b = 0; b < B; b++)
            memcpy(p->d_patch + (size_t)b * P * W, p->d_tmp + ((size_t)b * T + 1) * W, (size_t)P * W * sizeof(float));
        op_linear_backward(&p->patch, NULL, g->conv1, NULL, p->d_patch, p->patches, wmat(p, w, W16_CONV1));
    }
}

double vit_forward_flops(const vit_config *c, int batch) {
    double T = vit_tokens(c), M = batch * T, W = c->width, m = vit_mlp_width(c);
    double P = T - 1, Cpp = (double)c->channels * c->patch_size * c->patch_size;
    double block = 2 * M * W * 3 * W + 2 * M * W * W + 4 * M * W * m + 4.0 * batch * T * T * W;
    return 2 * batch * P * Cpp * W + c->layers * block + 2.0 * batch * W * c->output_dim;
}

/* ---- head ---- */

int vit_head_init(vit_head *h, dnn *d, const vit_config *cfg, int batch, int classes, tt_err *err) {
    memset(h, 0, sizeof *h);
    if (classes < 1 || classes > 100000) return tt_fail(err, TT_EINPUT, "head with %d classes", classes);
    h->B = batch;
    h->D = cfg->output_dim;
    h->K = classes;
    h->normalize = cfg->normalize_features;
    h->scale = cfg->normalize_features ? cfg->logit_scale : 1.0f;
    if (op_linear_init(&h->lin, d, batch, h->D, classes, false, err)) return -1;
    size_t BD = (size_t)batch * h->D;
    h->fn = tt_calloc_aligned(2 * BD + (size_t)batch + (size_t)batch * classes, sizeof(float), err);
    if (h->fn && h->lin.w_bf16) h->w16 = tt_calloc_aligned((size_t)classes * h->D, sizeof(uint16_t), err);
    if (!h->fn || (h->lin.w_bf16 && !h->w16)) {
        vit_head_free(h);
        return -1;
    }
    h->dfn = h->fn + BD;
    h->norm = h->dfn + BD;
    return 0;
}

static float *head_dlogits_scratch(vit_head *h) { return h->norm + h->B; }

/* W as the head's matmuls read it: f32, or converted into w16 now. */
static const void *head_weights(vit_head *h, const float *W) {
    if (!h->lin.w_bf16) return W;
    dnn_to_bf16(h->w16, W, (size_t)h->K * h->D);
    return h->w16;
}

void vit_head_forward(vit_head *h, float *logits, const float *features, const float *W, const float *b) {
    const float *f = features;
    if (h->normalize) {
        op_l2norm_forward(h->B, h->D, h->fn, h->norm, features);
        f = h->fn;
    } else {
        memcpy(h->fn, features, (size_t)h->B * h->D * sizeof(float));
    }
    op_linear_forward(&h->lin, logits, f, head_weights(h, W), NULL);
    for (int i = 0; i < h->B; i++)
        for (int k = 0; k < h->K; k++) {
            float *z = &logits[(size_t)i * h->K + k];
            *z = h->scale * *z + (b ? b[k] : 0.f);
        }
}

void vit_head_backward(vit_head *h, float *dfeatures, float *dW, float *db, const float *dlogits, const float *W) {
    float *dz = head_dlogits_scratch(h);
    size_t BK = (size_t)h->B * h->K;
    for (size_t i = 0; i < BK; i++) dz[i] = h->scale * dlogits[i];
    if (db) op_bias_grad(db, dlogits, h->B, h->K);
    op_linear_backward(&h->lin, dfeatures ? h->dfn : NULL, dW, NULL, dz, h->fn, dfeatures ? head_weights(h, W) : W);
    if (!dfeatures) return;
    if (h->normalize) op_l2norm_backward(h->B, h->D, dfeatures, h->dfn, h->fn, h->norm);
    else memcpy(dfeatures, h->dfn, (size_t)h->B * h->D * sizeof(float));
}

void vit_head_free(vit_head *h) {
    op_linear_free(&h->lin);
    free(h->fn);
    free(h->w16);
    memset(h, 0, sizeof *h);
}
