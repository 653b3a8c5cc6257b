/* clip_text.c — see clip_text.h. */
#define _POSIX_C_SOURCE 200809L
#include "core/clip_text.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/arena.h"
#include "core/fileio.h"

enum { CT_BLOCK_TENSORS = 12 };

/* ---- names ---------------------------------------------------------------------------------- */

typedef struct ct_names {
    const char *tok, *pos, *ln_final_g, *ln_final_b, *proj, *logit_scale, *block; /* block: "...{i}." prefix */
} ct_names;

static const ct_names hf_names = {"text_model.embeddings.token_embedding.weight",
                                  "text_model.embeddings.position_embedding.weight",
                                  "text_model.final_layer_norm.weight",
                                  "text_model.final_layer_norm.bias",
                                  "text_projection.weight",
                                  "logit_scale",
                                  "text_model.encoder.layers."};
static const ct_names oc_names = {"token_embedding.weight", "positional_embedding", "ln_final.weight", "ln_final.bias",
                                  "text_projection",        "logit_scale",          "transformer.resblocks."};

static const char *show(const char *s, char *buf) { return tt_printable(s, strlen(s), buf, 96); }

static void fmt_shape(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t k = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && k < cap; i++) k += (size_t)snprintf(buf + k, cap - k, i ? ",%" PRId64 : "%" PRId64, shape[i]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
}

typedef struct ct_open_state {
    ts_set *set;
    const ct_names *n;
    char prefix[8]; /* open_clip: "" or "model." */
} ct_open_state;

/* prefix + name of the layout, in buf */
static const char *full_name(const ct_open_state *s, const char *name, char *buf, size_t cap) {
    snprintf(buf, cap, "%s%s", s->prefix, name);
    return buf;
}

/* NAME present, a float type, with the expected shape. */
static int expect(const ct_open_state *s, const char *name, int ndim, const int64_t *shape, const ts_tensor **out,
                  tt_err *err) {
    char nb[100];
    const ts_tensor *t = ts_find(s->set, name);
    *out = t;
    if (!t) return tt_fail(err, TT_EINPUT, "%s: tensor %s missing (text tower)", ts_path(s->set), show(name, nb));
    const st_tensor *st = t->t;
    if (st->dtype != ST_F32 && st->dtype != ST_F16 && st->dtype != ST_BF16 && st->dtype != ST_F64)
        return tt_fail(err, TT_EINPUT, "%s: tensor %s has dtype %s, not a float type (F32, F16, BF16, F64)",
                       st_path(t->file), show(name, nb), st_dtype_name(st->dtype));
    bool same = st->ndim == ndim;
    for (int i = 0; same && i < ndim; i++) same = st->shape[i] == shape[i];
    if (!same) {
        char have[200], want[200];
        fmt_shape(have, sizeof have, st->ndim, st->shape);
        fmt_shape(want, sizeof want, ndim, shape);
        return tt_fail(err, TT_EINPUT, "%s: tensor %s has shape %s, expected %s", st_path(t->file), show(name, nb),
                       have, want);
    }
    return 0;
}

static int read_into(const ct_open_state *s, const char *name, int ndim, const int64_t *shape, float *out,
                     tt_err *err) {
    const ts_tensor *t;
    if (expect(s, name, ndim, shape, &t, err) || ts_read_f32(t, out, err)) return -1;
    ts_release(t);
    return 0;
}

/* A 2-D tensor [r, c] of at most `max` per side, or an error naming it. */
static int matrix_shape(const ct_open_state *s, const char *name, int64_t max, int64_t *r, int64_t *c, tt_err *err) {
    char nb[100], sb[200];
    const ts_tensor *t = ts_find(s->set, name);
    if (!t) return tt_fail(err, TT_EINPUT, "%s: tensor %s missing (text tower)", ts_path(s->set), show(name, nb));
    const st_tensor *st = t->t;
    if (st->ndim != 2 || st->shape[0] < 1 || st->shape[1] < 1 || st->shape[0] > max || st->shape[1] > max) {
        fmt_shape(sb, sizeof sb, st->ndim, st->shape);
        return tt_fail(err, TT_EINPUT, "%s: tensor %s has shape %s, not a matrix of at most %" PRId64 " x %" PRId64,
                       st_path(t->file), show(name, nb), sb, max, max);
    }
    *r = st->shape[0];
    *c = st->shape[1];
    return 0;
}

/* ---- configuration files -------------------------------------------------------------------- */

static int read_optional(const char *dir, const char *name, char *path, size_t cap, char **text, size_t *len,
                         tt_err *err) {
    struct stat sb;
    snprintf(path, cap, "%s/%s", dir, name);
    *text = NULL;
    if (stat(path, &sb) != 0) return 0; /* absent: the shapes' defaults */
    return fio_read_all(path, text, len, 1u << 20, err);
}

static int json_positive_int(const json_t *o, const char *key, int *out, const char *path, tt_err *err) {
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 1000000)
        return tt_fail(err, TT_EINPUT, "%s: \"%s\" must be an integer in [1, 1000000]", path, key);
    *out = (int)json_integer_value(v);
    return 0;
}

/* config.json text_config (legacy text_config_dict): hidden_act, layer_norm_eps, num_attention_heads. */
int ct_hf_text_config_parse(ct_config *c, const char *text, size_t len, const char *path, tt_err *err) {
    json_error_t je;
    char b[100];
    json_t *root = json_loadb(text, len, 0, &je);
    if (!root) return tt_fail(err, TT_EINPUT, "%s: not valid JSON: %s (line %d)", path, show(je.text, b), je.line);
    int rc = -1;
    const json_t *tc = json_object_get(root, "text_config");
    if (!tc || json_is_null(tc)) tc = json_object_get(root, "text_config_dict");
    if (!json_is_object(root) || (tc && !json_is_null(tc) && !json_is_object(tc))) {
        tt_fail(err, TT_EINPUT, "%s: text_config is not an object", path);
        goto done;
    }
    if (!json_is_object(tc)) { /* CLIPTextConfig's defaults */
        rc = 0;
        goto done;
    }
    if (json_positive_int(tc, "num_attention_heads", &c->heads, path, err)) goto done;
    const json_t *act = json_object_get(tc, "hidden_act"), *eps = json_object_get(tc, "layer_norm_eps");
    if (act) {
        const char *a = json_string_value(act);
        if (a && !strcmp(a, "quick_gelu")) c->act = OP_ACT_QUICK_GELU;
        else if (a && !strcmp(a, "gelu")) c->act = OP_ACT_GELU;
        else {
            tt_fail(err, TT_EINPUT, "%s: text_config.hidden_act %s is not supported (quick_gelu or gelu)", path,
                    a ? show(a, b) : "(not a string)");
            goto done;
        }
    }
    if (eps) {
        double e = json_is_number(eps) ? json_number_value(eps) : -1;
        if (!(e > 0 && e < 1) || !((float)e > 0)) {
            tt_fail(err, TT_EINPUT, "%s: text_config.layer_norm_eps must be a number in (0, 1) that a float holds", path);
            goto done;
        }
        c->ln_eps = (float)e;
    }
    rc = 0;
done:
    json_decref(root);
    return rc;
}

/* open_clip_config.json: model_cfg.quick_gelu (default false), model_cfg.text_cfg.heads. */
int ct_open_clip_text_config_parse(ct_config *c, const char *text, size_t len, const char *path, tt_err *err) {
    json_error_t je;
    char b[100];
    json_t *root = json_loadb(text, len, 0, &je);
    if (!root) return tt_fail(err, TT_EINPUT, "%s: not valid JSON: %s (line %d)", path, show(je.text, b), je.line);
    int rc = -1;
    const json_t *mc = json_object_get(root, "model_cfg"), *tc = json_object_get(mc, "text_cfg");
    const json_t *qg = json_object_get(mc, "quick_gelu");
    if (!json_is_object(mc) || (tc && !json_is_object(tc)) || (qg && !json_is_boolean(qg))) {
        tt_fail(err, TT_EINPUT, "%s: needs a \"model_cfg\" object (text_cfg an object, quick_gelu a boolean)", path);
        goto done;
    }
    c->act = qg && json_is_true(qg) ? OP_ACT_QUICK_GELU : OP_ACT_GELU;
    if (tc && json_positive_int(tc, "heads", &c->heads, path, err)) goto done;
    rc = 0;
done:
    json_decref(root);
    return rc;
}

/* ---- opening -------------------------------------------------------------------------------- */

static int detect(ct_open_state *s, ct_model *m, tt_err *err) {
    if (ts_find(s->set, hf_names.tok)) {
        m->format = CM_HF;
        s->n = &hf_names;
    } else if (ts_find(s->set, oc_names.tok)) {
        m->format = CM_OPEN_CLIP;
        s->n = &oc_names;
    } else if (ts_find(s->set, "model.token_embedding.weight")) {
        m->format = CM_OPEN_CLIP;
        s->n = &oc_names;
        strcpy(s->prefix, "model.");
    } else {
        return tt_fail(err, TT_EINPUT, "%s: no CLIP text tower: neither %s (Hugging Face CLIPModel) nor %s "
                       "(open_clip) is in it", ts_path(s->set), hf_names.tok, oc_names.tok);
    }
    return 0;
}

/* The architecture from the shapes, then the configuration files. */
static int derive_config(ct_open_state *s, ct_model *m, const ct_opts *o, tt_err *err) {
    char name[256];
    const char *path = ts_path(s->set);
    int64_t V, w, T, w2, a, b;
    if (matrix_shape(s, full_name(s, s->n->tok, name, sizeof name), 1 << 22, &V, &w, err)) return -1;
    if (matrix_shape(s, full_name(s, s->n->pos, name, sizeof name), 1 << 22, &T, &w2, err)) return -1;
    if (w2 != w || w > 8192 || T > 4096)
        return tt_fail(err, TT_EINPUT, "%s: %s is [%" PRId64 ", %" PRId64 "]: want [context <= 4096, width %" PRId64
                       " <= 8192]", path, name, T, w2, w);
    ct_config c = {.vocab = (int)V, .context = (int)T, .width = (int)w, .act = OP_ACT_QUICK_GELU, .ln_eps = 1e-5f};
    char block[64];
    snprintf(block, sizeof block, "%s%s", s->prefix, s->n->block);
    c.layers = cm_count_blocks(s->set, block);
    c.mlp = 4 * c.width;
    if (c.layers > 0) {
        char fc[64];
        cm_block_name(m->format, "", 8, 0, fc, sizeof fc); /* mlp.c_fc.weight / mlp.fc1.weight */
        snprintf(name, sizeof name, "%s0.%s", block, fc);
        if (matrix_shape(s, name, 16 * w, &a, &b, err)) return -1;
        c.mlp = (int)a;
    }
    if (matrix_shape(s, full_name(s, s->n->proj, name, sizeof name), 8192, &a, &b, err)) return -1;
    c.output_dim = (int)(m->format == CM_HF ? a : b);
    c.heads = c.width % 64 ? 0 : c.width / 64;
    const char *dir = ts_dir(s->set);
    if (dir) {
        char cpath[4096], *text;
        size_t len;
        bool hf = m->format == CM_HF;
        if (read_optional(dir, hf ? "config.json" : "open_clip_config.json", cpath, sizeof cpath, &text, &len, err))
            return -1;
        if (text) {
            int rc = hf ? ct_hf_text_config_parse(&c, text, len, cpath, err)
                        : ct_open_clip_text_config_parse(&c, text, len, cpath, err);
            free(text);
            if (rc) return -1;
        }
    }
    if (o && o->act != CM_ACT_AUTO) c.act = (op_act_kind)o->act;
    if (c.heads < 1 || c.width % c.heads)
        return tt_fail(err, TT_EINPUT, "%s: text width %d is not a multiple of the head count (%d): give it in "
                       "config.json (text_config.num_attention_heads) or open_clip_config.json (text_cfg.heads)",
                       path, c.width, c.heads);
    m->cfg = c;
    return 0;
}

/* The weights: one buffer, tensors 64-byte aligned, in the order read. */
static int read_weights(ct_open_state *s, ct_model *m, tt_err *err) {
    const ct_config *c = &m->cfg;
    int64_t V = c->vocab, T = c->context, w = c->width, f = c->mlp, D = c->output_dim;
    char name[256], block[64];
    arena a = {0};
    for (int pass = 0; pass < 2; pass++) { /* count, then place */
        m->tok = arena_floats(&a, (size_t)(V * w));
        m->pos = arena_floats(&a, (size_t)(T * w));
        for (int i = 0; i < c->layers; i++) {
            vit_block_weights *bw = pass ? &m->blocks[i] : &(vit_block_weights){0};
            float **slot[CT_BLOCK_TENSORS] = {&bw->ln1_g, &bw->ln1_b, &bw->qkv_w, &bw->qkv_b, &bw->out_w, &bw->out_b,
                                              &bw->ln2_g, &bw->ln2_b, &bw->fc_w,  &bw->fc_b,  &bw->fc2_w, &bw->fc2_b};
            const int64_t numel[CT_BLOCK_TENSORS] = {w, w, 3 * w * w, 3 * w, w * w, w, w, w, f * w, f, w * f, w};
            for (int j = 0; j < CT_BLOCK_TENSORS; j++) *slot[j] = arena_floats(&a, (size_t)numel[j]);
        }
        m->ln_final_g = arena_floats(&a, (size_t)w);
        m->ln_final_b = arena_floats(&a, (size_t)w);
        m->proj = arena_floats(&a, (size_t)(D * w));
        if (pass == 0) {
            if (arena_alloc(&a, err)) return tt_prefix(err, "%s: ", ts_path(s->set));
            m->buf = (float *)a.base; /* ct_close frees it */
        }
    }
    const int64_t s_tok[2] = {V, w}, s_pos[2] = {T, w}, s_w[1] = {w};
    if (read_into(s, full_name(s, s->n->tok, name, sizeof name), 2, s_tok, m->tok, err) ||
        read_into(s, full_name(s, s->n->pos, name, sizeof name), 2, s_pos, m->pos, err) ||
        read_into(s, full_name(s, s->n->ln_final_g, name, sizeof name), 1, s_w, m->ln_final_g, err) ||
        read_into(s, full_name(s, s->n->ln_final_b, name, sizeof name), 1, s_w, m->ln_final_b, err))
        return -1;
    for (int i = 0; i < c->layers; i++) {
        vit_block_weights *bw = &m->blocks[i];
        float *dst[CT_BLOCK_TENSORS] = {bw->ln1_g, bw->ln1_b, bw->qkv_w, bw->qkv_b, bw->out_w, bw->out_b,
                                        bw->ln2_g, bw->ln2_b, bw->fc_w,  bw->fc_b,  bw->fc2_w, bw->fc2_b};
        const int64_t shapes[CT_BLOCK_TENSORS][2] = {{w, 0}, {w, 0}, {3 * w, w}, {3 * w, 0}, {w, w}, {w, 0},
                                                     {w, 0}, {w, 0}, {f, w},     {f, 0},     {w, f}, {w, 0}};
        snprintf(block, sizeof block, "%s%s%d.", s->prefix, s->n->block, i);
        for (int j = 0; j < CT_BLOCK_TENSORS; j++) {
            int ndim = shapes[j][1] ? 2 : 1;
            int64_t shape[2] = {shapes[j][0], shapes[j][1]};
            cm_op op = cm_block_name(m->format, block, j, 0, name, sizeof name);
            if (op != CM_QKV) {
                if (read_into(s, name, ndim, shape, dst[j], err)) return -1;
                continue;
            }
            shape[0] /= 3; /* q, k, v: consecutive row blocks of in_proj */
            size_t part = (size_t)(shape[0] * (ndim == 2 ? shape[1] : 1));
            for (int p = 0; p < 3; p++) {
                cm_block_name(m->format, block, j, p, name, sizeof name);
                if (read_into(s, name, ndim, shape, dst[j] + (size_t)p * part, err)) return -1;
            }
        }
    }
    full_name(s, s->n->proj, name, sizeof name);
    if (m->format == CM_HF) {
        const int64_t sp[2] = {D, w};
        if (read_into(s, name, 2, sp, m->proj, err)) return -1;
    } else { /* open_clip's [w, D], used as x @ W: transposed to [D, w] */
        const int64_t sp[2] = {w, D};
        float *tmp = malloc((size_t)(w * D) * sizeof *tmp);
        if (!tmp) return tt_fail(err, TT_ENOMEM, "%s: out of memory", ts_path(s->set));
        int rc = read_into(s, name, 2, sp, tmp, err);
        for (int64_t i = 0; !rc && i < w; i++)
            for (int64_t j = 0; j < D; j++) m->proj[j * w + i] = tmp[i * D + j];
        free(tmp);
        if (rc) return -1;
    }
    const ts_tensor *ls = ts_find(s->set, full_name(s, s->n->logit_scale, name, sizeof name));
    if (ls) {
        char nb[100];
        if (ls->t->numel != 1 || ls->t->ndim > 1)
            return tt_fail(err, TT_EINPUT, "%s: tensor %s is not a scalar", st_path(ls->file), show(name, nb));
        const int64_t one[1] = {1};
        if (read_into(s, name, ls->t->ndim, one, &m->logit_scale, err)) return -1;
        m->has_logit_scale = true;
    }
    return 0;
}

int ct_open(ct_model *m, const char *path, const ct_opts *o, tt_err *err) {
    memset(m, 0, sizeof *m);
    ct_open_state s = {0};
    if (ts_open(&s.set, path, err) || detect(&s, m, err) || derive_config(&s, m, o, err)) goto fail;
    m->blocks = calloc((size_t)(m->cfg.layers > 0 ? m->cfg.layers : 1), sizeof *m->blocks);
    if (!m->blocks) {
        tt_fail(err, TT_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    if (read_weights(&s, m, err)) goto fail;
    ts_close(s.set);
    return 0;
fail:
    ts_close(s.set);
    ct_close(m);
    return -1;
}

void ct_close(ct_model *m) {
    free(m->buf);
    free(m->blocks);
    memset(m, 0, sizeof *m);
}

int ct_eot_position(const int32_t *ids, int n) {
    int best = 0;
    for (int t = 1; t < n; t++)
        if (ids[t] > ids[best]) best = t;
    return best;
}

/* ---- the forward ---------------------------------------------------------------------------- */

struct ct_plan {
    ct_config cfg;
    int B, T, M, W, F, D, L;
    op_linear qkv, out, fc, fc2, proj;
    op_layernorm ln_tok, ln_pool;
    op_attention attn;
    arena mem;
    /* one block's buffers, reused by every layer (as vit.c's inference plan) */
    float *res, *ln, *wide, *probs, *mean, *var; /* [M,W] x2, [M, max(3W, F)], [B*H,T,T], [M] x2 */
    float *pooled, *pooled_ln, *pmean, *pvar;             /* [B, W] x2, [B] x2 */
};

static void plan_layout(ct_plan *p, arena *a) {
    size_t M = (size_t)p->M, W = (size_t)p->W, wide = M * 3 * W;
    if (M * (size_t)p->F > wide) wide = M * (size_t)p->F;
    p->res = arena_floats(a, M * W);
    p->ln = arena_floats(a, M * W);
    p->wide = arena_floats(a, wide);
    p->probs = p->attn.scores; /* the softmax runs in place on the attention's scores */
    p->mean = arena_floats(a, M);
    p->var = arena_floats(a, M);
    p->pooled = arena_floats(a, (size_t)p->B * W);
    p->pooled_ln = arena_floats(a, (size_t)p->B * W);
    p->pmean = arena_floats(a, (size_t)p->B);
    p->pvar = arena_floats(a, (size_t)p->B);
}

ct_plan *ct_plan_create(dnn *d, const ct_config *cfg, int batch, int tokens, tt_err *err) {
    if (batch < 1 || batch > 65536 || tokens < 1 || tokens > cfg->context) {
        tt_fail(err, TT_EINPUT, "text plan: batch %d or tokens %d out of range (context %d)", batch, tokens,
                cfg->context);
        return NULL;
    }
    ct_plan *p = calloc(1, sizeof *p);
    if (!p) {
        tt_fail(err, TT_ENOMEM, "out of memory (text plan)");
        return NULL;
    }
    p->cfg = *cfg;
    p->B = batch;
    p->T = tokens;
    p->M = batch * tokens;
    p->W = cfg->width;
    p->F = cfg->mlp;
    p->D = cfg->output_dim;
    p->L = cfg->layers;
    int rc = op_layernorm_init(&p->ln_tok, d, p->M, p->W, cfg->ln_eps, err);
    if (!rc) rc = op_layernorm_init(&p->ln_pool, d, batch, p->W, cfg->ln_eps, err);
    if (!rc) rc = op_linear_init_forward(&p->proj, d, batch, p->W, p->D, false, err);
    if (!rc && p->L > 0) {
        rc = op_linear_init_forward(&p->qkv, d, p->M, p->W, 3 * p->W, true, err);
        if (!rc) rc = op_attention_init_forward(&p->attn, d, batch, p->T, p->W, cfg->heads, err);
        if (!rc) op_attention_set_causal(&p->attn, true);
        /* the residual sums and the activation run inside the matmuls, as in vit.c's inference plan */
        op_linear_fusion residual = {.add_to_y = true}, act = {.act = true, .act_kind = cfg->act};
        if (!rc) rc = op_linear_init_forward_fused(&p->out, d, p->M, p->W, p->W, true, residual, err);
        if (!rc) rc = op_linear_init_forward_fused(&p->fc, d, p->M, p->W, p->F, true, act, err);
        if (!rc) rc = op_linear_init_forward_fused(&p->fc2, d, p->M, p->F, p->W, true, residual, err);
    }
    if (!rc) {
        plan_layout(p, &p->mem);
        rc = arena_alloc(&p->mem, err);
        if (!rc) plan_layout(p, &p->mem);
    }
    if (rc) {
        ct_plan_free(p);
        return NULL;
    }
    return p;
}

void ct_plan_free(ct_plan *p) {
    if (!p) return;
    op_linear_free(&p->qkv);
    op_linear_free(&p->out);
    op_linear_free(&p->fc);
    op_linear_free(&p->fc2);
    op_linear_free(&p->proj);
    op_layernorm_free(&p->ln_tok);
    op_layernorm_free(&p->ln_pool);
    op_attention_free(&p->attn);
    arena_free(&p->mem);
    free(p);
}

int ct_plan_batch(const ct_plan *p) { return p->B; }
int ct_plan_tokens(const ct_plan *p) { return p->T; }

void ct_forward(ct_plan *p, const ct_model *m, const int32_t *ids, float *features) {
    int B = p->B, T = p->T, W = p->W;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * T * W > 32768)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            int32_t id = ids[(size_t)b * T + t];
            TT_ASSERT(id >= 0 && id < m->cfg.vocab);
            const float *e = m->tok + (size_t)id * W, *pos = m->pos + (size_t)t * W;
            float *x = p->res + ((size_t)b * T + t) * W;
            for (int j = 0; j < W; j++) x[j] = e[j] + pos[j];
        }
    /* x is updated in place: res += attention branch, then res += MLP branch (inside out's and fc2's
     * matmuls) */
    for (int i = 0; i < p->L; i++) {
        const vit_block_weights *bw = &m->blocks[i];
        op_layernorm_forward(&p->ln_tok, p->ln, p->mean, p->var, p->res, bw->ln1_g, bw->ln1_b);
        op_linear_forward(&p->qkv, p->wide, p->ln, bw->qkv_w, bw->qkv_b);
        op_attention_forward(&p->attn, p->ln, p->probs, p->wide);
        op_linear_forward(&p->out, p->res, p->ln, bw->out_w, bw->out_b);
        op_layernorm_forward(&p->ln_tok, p->ln, p->mean, p->var, p->res, bw->ln2_g, bw->ln2_b);
        op_linear_forward(&p->fc, p->wide, p->ln, bw->fc_w, bw->fc_b);
        op_linear_forward(&p->fc2, p->res, p->wide, bw->fc2_w, bw->fc2_b);
    }
    /* ln_final is per token: normalising the pooled rows alone gives the same rows */
    for (int b = 0; b < B; b++) {
        int t = ct_eot_position(ids + (size_t)b * T, T);
        memcpy(p->pooled + (size_t)b * W, p->res + ((size_t)b * T + t) * W, (size_t)W * sizeof(float));
    }
    op_layernorm_forward(&p->ln_pool, p->pooled_ln, p->pmean, p->pvar, p->pooled, m->ln_final_g, m->ln_final_b);
    op_linear_forward(&p->proj, features, p->pooled_ln, m->proj, NULL);
}

double ct_forward_flops(const ct_config *c, int batch, int tokens) {
    double M = (double)batch * tokens, W = c->width, F = c->mlp;
    double block = 2 * M * W * 3 * W + 2 * M * W * W + 4 * M * W * F + 4.0 * batch * tokens * (double)tokens * W;
    return c->layers * block + 2.0 * batch * W * c->output_dim;
}
