/* clipmap.c — see clipmap.h. The name map is the three tables below; code only walks them. */
#define _POSIX_C_SOURCE 200809L /* strdup, mkdtemp, fsync */
#define _DEFAULT_SOURCE
#include "core/clipmap.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/arena.h"
#include "core/fileio.h"
#include "core/tensorsink.h"
#include "core/version.h"


/* ---- the name map --------------------------------------------------------------------------
 * One row per tensor of the ViT layout, in layout order (core/vit.c): ttmerge / open_clip name
 * (open_clip adds its prefix), Hugging Face name, relation. Block rows are relative to
 * "transformer.resblocks.{i}." and "vision_model.encoder.layers.{i}."; "%s" in a CM_QKV row is
 * q, k, v in turn. */
typedef struct cm_row {
    const char *ttmerge, *hf;
    cm_op op;
} cm_row;

static const cm_row embed_rows[] = {
    {"conv1.weight", "vision_model.embeddings.patch_embedding.weight", CM_COPY},
    {"class_embedding", "vision_model.embeddings.class_embedding", CM_COPY},
    {"positional_embedding", "vision_model.embeddings.position_embedding.weight", CM_COPY},
    {"ln_pre.weight", "vision_model.pre_layrnorm.weight", CM_COPY}, /* sic: HF's name */
    {"ln_pre.bias", "vision_model.pre_layrnorm.bias", CM_COPY},
};
static const cm_row block_rows[] = {
    {"ln_1.weight", "layer_norm1.weight", CM_COPY},
    {"ln_1.bias", "layer_norm1.bias", CM_COPY},
    {"attn.in_proj_weight", "self_attn.%s_proj.weight", CM_QKV},
    {"attn.in_proj_bias", "self_attn.%s_proj.bias", CM_QKV},
    {"attn.out_proj.weight", "self_attn.out_proj.weight", CM_COPY},
    {"attn.out_proj.bias", "self_attn.out_proj.bias", CM_COPY},
    {"ln_2.weight", "layer_norm2.weight", CM_COPY},
    {"ln_2.bias", "layer_norm2.bias", CM_COPY},
    {"mlp.c_fc.weight", "mlp.fc1.weight", CM_COPY},
    {"mlp.c_fc.bias", "mlp.fc1.bias", CM_COPY},
    {"mlp.c_proj.weight", "mlp.fc2.weight", CM_COPY},
    {"mlp.c_proj.bias", "mlp.fc2.bias", CM_COPY},
};
static const cm_row head_rows[] = {
    {"ln_post.weight", "vision_model.post_layernorm.weight", CM_COPY},
    {"ln_post.bias", "vision_model.post_layernorm.bias", CM_COPY},
    {"proj", "visual_projection.weight", CM_TRANSPOSE},
};
#define N_EMBED ((int)(sizeof embed_rows / sizeof *embed_rows))
#define N_BLOCK ((int)(sizeof block_rows / sizeof *block_rows))
#define N_HEAD ((int)(sizeof head_rows / sizeof *head_rows))
static const char *const OC_BLOCK = "transformer.resblocks.";
static const char *const HF_BLOCK = "vision_model.encoder.layers.";
static const char *const qkv_parts[3] = {"q", "k", "v"};

/* Tensors a layout ignores: HF's position_ids buffers and text tower; open_clip's text tower
 * (unprefixed next to "visual.", under "model." next to "model.visual."). */
static const char *const hf_ignored_prefixes[] = {"text_model.", NULL};
static const char *const hf_ignored_names[] = {"vision_model.embeddings.position_ids", "text_projection.weight",
                                               "logit_scale", NULL};
static const char *const oc_text_prefixes[] = {"transformer.", NULL};
static const char *const oc_text_names[] = {"token_embedding.weight", "positional_embedding", "ln_final.weight",
                                            "ln_final.bias", "text_projection", "logit_scale", "logit_bias",
                                            "attn_mask", "input_resolution", "context_length", "vocab_size", NULL};

const char *cm_format_name(cm_format f) {
    return f == CM_HF ? "hf" : f == CM_OPEN_CLIP ? "open_clip" : "ttmerge";
}

int cm_format_parse(const char *s, cm_format *out) {
    for (int f = CM_TTMERGE; f <= CM_HF; f++)
        if (!strcmp(s, cm_format_name((cm_format)f))) {
            *out = (cm_format)f;
            return 0;
        }
    return -1;
}

static const cm_row *row_of(const vit_layout *lay, int l, int *block) {
    int L = (lay->count - N_EMBED - N_HEAD) / N_BLOCK;
    *block = -1;
    if (l < N_EMBED) return &embed_rows[l];
    if (l >= N_EMBED + N_BLOCK * L) return &head_rows[l - N_EMBED - N_BLOCK * L];
    *block = (l - N_EMBED) / N_BLOCK;
    return &block_rows[(l - N_EMBED) % N_BLOCK];
}

cm_op cm_name(cm_format f, const char *prefix, const vit_layout *lay, int l, int part, bool has_projection,
              char *buf, size_t cap) {
    int b;
    const cm_row *r = row_of(lay, l, &b);
    if (f != CM_HF) {
        snprintf(buf, cap, "%s%s", f == CM_OPEN_CLIP ? prefix : "", lay->t[l].name);
        return CM_COPY;
    }
    if (r->op == CM_TRANSPOSE && !has_projection) {
        buf[0] = 0;
        return CM_IDENTITY;
    }
    char rel[96];
    const char *mark = strstr(r->hf, "%s"); /* q, k or v in place of "%s" */
    if (mark) snprintf(rel, sizeof rel, "%.*s%s%s", (int)(mark - r->hf), r->hf, qkv_parts[part < 0 || part > 2 ? 0 : part], mark + 2);
    else snprintf(rel, sizeof rel, "%s", r->hf);
    if (b >= 0) snprintf(buf, cap, "%s%d.%s", HF_BLOCK, b, rel);
    else snprintf(buf, cap, "%s", rel);
    return r->op;
}

cm_op cm_block_name(cm_format f, const char *block, int j, int part, char *buf, size_t cap) {
    TT_ASSERT(j >= 0 && j < N_BLOCK);
    const cm_row *r = &block_rows[j];
    if (f != CM_HF) {
        snprintf(buf, cap, "%s%s", block, r->ttmerge);
        return CM_COPY;
    }
    const char *mark = strstr(r->hf, "%s");
    if (mark)
        snprintf(buf, cap, "%s%.*s%s%s", block, (int)(mark - r->hf), r->hf, qkv_parts[part < 0 || part > 2 ? 0 : part],
                 mark + 2);
    else snprintf(buf, cap, "%s%s", block, r->hf);
    return r->op;
}

/* ---- small JSON helpers ---- */

static const char *show(const char *s, char *buf) { return tt_printable(s, strlen(s), buf, 96); }

static int get_int(const json_t *o, const char *key, int dflt, int *out, const char *path, tt_err *err) {
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) {
        *out = dflt;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 1000000)
        return tt_fail(err, TT_EINPUT, "%s: \"%s\" must be an integer in [1, 1000000]", path, key);
    *out = (int)json_integer_value(v);
    return 0;
}

static int parse_act(const char *s, int *act) {
    if (!strcmp(s, "quick_gelu")) *act = OP_ACT_QUICK_GELU;
    else if (!strcmp(s, "gelu")) *act = OP_ACT_GELU;
    else return -1;
    return 0;
}

int cm_hf_config_parse(cm_hf_vision *v, const char *text, size_t len, const char *path, tt_err *err) {
    char b[100];
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) return tt_fail(err, TT_EINPUT, "%s: not valid JSON: %s (line %d)", path, show(je.text, b), je.line);
    int rc = -1;
    json_t *vc = NULL;
    if (!json_is_object(root)) {
        tt_fail(err, TT_EINPUT, "%s: config is not a JSON object", path);
        goto done;
    }
    const char *mt = json_string_value(json_object_get(root, "model_type"));
    if (json_object_get(root, "model_type") && (!mt || (strcmp(mt, "clip") && strcmp(mt, "clip_vision_model")))) {
        tt_fail(err, TT_EINPUT, "%s: model_type %s is not clip or clip_vision_model", path, mt ? show(mt, b) : "(not a string)");
        goto done;
    }
    const json_t *top_vc = json_object_get(root, "vision_config"), *legacy = json_object_get(root, "vision_config_dict");
    bool full = top_vc || legacy || (mt && !strcmp(mt, "clip"));
    if ((top_vc && !json_is_object(top_vc)) || (legacy && !json_is_object(legacy) && !json_is_null(legacy))) {
        tt_fail(err, TT_EINPUT, "%s: vision_config is not an object", path);
        goto done;
    }
    /* CLIPConfig: vision_config, updated by the legacy vision_config_dict; else the file is a
     * CLIPVisionConfig itself */
    vc = full ? json_object() : json_incref(root);
    if (!vc || (full && top_vc && json_object_update(vc, (json_t *)top_vc)) ||
        (full && json_is_object(legacy) && json_object_update(vc, (json_t *)legacy))) {
        tt_fail(err, TT_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    memset(v, 0, sizeof *v);
    if (get_int(vc, "hidden_size", 768, &v->hidden_size, path, err) ||
        get_int(vc, "intermediate_size", 3072, &v->intermediate_size, path, err) ||
        get_int(vc, "num_hidden_layers", 12, &v->layers, path, err) ||
        get_int(vc, "num_attention_heads", 12, &v->heads, path, err) ||
        get_int(vc, "num_channels", 3, &v->channels, path, err) ||
        get_int(vc, "image_size", 224, &v->image_size, path, err) ||
        get_int(vc, "patch_size", 32, &v->patch_size, path, err) ||
        get_int(full ? root : vc, "projection_dim", 512, &v->projection_dim, path, err))
        goto done;
    const json_t *act = json_object_get(vc, "hidden_act"), *eps = json_object_get(vc, "layer_norm_eps");
    v->act = OP_ACT_QUICK_GELU;
    if (act && (!json_is_string(act) || parse_act(json_string_value(act), &v->act))) {
        tt_fail(err, TT_EINPUT, "%s: hidden_act %s is not supported (quick_gelu or gelu)", path,
                json_is_string(act) ? show(json_string_value(act), b) : "(not a string)");
        goto done;
    }
    v->ln_eps = 1e-5f;
    if (eps) {
        double e = json_is_number(eps) ? json_number_value(eps) : -1;
        if (!(e > 0 && e < 1) || !((float)e > 0)) { /* in float too: 1e-61 would become 0 */
            tt_fail(err, TT_EINPUT, "%s: layer_norm_eps must be a number in (0, 1) that a float holds", path);
            goto done;
        }
        v->ln_eps = (float)e;
    }
    rc = 0;
done:
    json_decref(vc);
    json_decref(root);
    return rc;
}

int cm_open_clip_config_parse(int *act, int *head_width, const char *text, size_t len, const char *path,
                              tt_err *err) {
    char b[100];
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) return tt_fail(err, TT_EINPUT, "%s: not valid JSON: %s (line %d)", path, show(je.text, b), je.line);
    int rc = -1;
    const json_t *mc = json_object_get(root, "model_cfg"), *vc = json_object_get(mc, "vision_cfg");
    const json_t *qg = json_object_get(mc, "quick_gelu");
    if (!json_is_object(root) || !json_is_object(mc) || (vc && !json_is_object(vc))) {
        tt_fail(err, TT_EINPUT, "%s: no \"model_cfg\" object (with a \"vision_cfg\" object)", path);
        goto done;
    }
    if (qg && !json_is_boolean(qg)) {
        tt_fail(err, TT_EINPUT, "%s: model_cfg.quick_gelu must be a boolean", path);
        goto done;
    }
    *act = qg && json_is_true(qg) ? OP_ACT_QUICK_GELU : OP_ACT_GELU;
    if (get_int(vc, "head_width", 64, head_width, path, err)) goto done;
    rc = 0;
done:
    json_decref(root);
    return rc;
}

/* ---- opening ---- */

static bool in_list(const char *name, const char *const *names, const char *const *prefixes, const char *outer) {
    size_t ol = strlen(outer);
    if (strncmp(name, outer, ol)) return false;
    name += ol;
    for (int i = 0; names && names[i]; i++)
        if (!strcmp(name, names[i])) return true;
    for (int i = 0; prefixes && prefixes[i]; i++)
        if (!strncmp(name, prefixes[i], strlen(prefixes[i]))) return true;
    return false;
}

int cm_count_blocks(const ts_set *s, const char *block) {
    int L = 0;
    size_t bl = strlen(block);
    for (int i = 0; i < ts_count(s); i++) {
        const char *n = ts_at(s, i)->t->name;
        if (strncmp(n, block, bl)) continue;
        const char *p = n + bl;
        int v = 0, digits = 0;
        while (*p >= '0' && *p <= '9' && digits < 5) v = v * 10 + (*p++ - '0'), digits++;
        if (digits && *p == '.' && v < 4096 && v + 1 > L) L = v + 1;
    }
    return L;
}

static const st_tensor *find_t(const ts_set *s, const char *name) {
    const ts_tensor *t = ts_find(s, name);
    return t ? t->t : NULL;
}

static void fmt_shape(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t k = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && k < cap; i++) k += (size_t)snprintf(buf + k, cap - k, i ? ",%" PRId64 : "%" PRId64, shape[i]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
}

/* NAME present, a float dtype, with the expected shape; st_expect's wording. */
static int expect(const ts_set *s, const char *name, int ndim, const int64_t *shape, const ts_tensor **out, tt_err *err) {
    char nb[100];
    const ts_tensor *t = ts_find(s, name);
    *out = t;
    if (!t) return tt_fail(err, TT_EINPUT, "%s: tensor %s missing", ts_path(s), show(name, nb));
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
        return tt_fail(err, TT_EINPUT, "%s: tensor %s has shape %s, expected %s", st_path(t->file), show(name, nb), have, want);
    }
    return 0;
}

static int read_text(const char *dir, const char *name, char **text, size_t *len, tt_err *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    struct stat sb;
    *text = NULL;
    if (stat(path, &sb) != 0) return 0; /* absent: not an error */
    return fio_read_all(path, text, len, 1u << 20, err);
}

/* The architecture of a foreign layout from its shapes, then refined by the files that say more. */
static int derive_config(cm_model *m, const cm_opts *o, tt_err *err) {
    const ts_set *s = m->set;
    const char *path = ts_path(s);
    char name[256], sb[200];
    bool hf = m->format == CM_HF;
    const char *P = m->prefix;
    /* patch conv [w, C, p, p] */
    snprintf(name, sizeof name, "%s%s", hf ? "" : P, hf ? embed_rows[0].hf : embed_rows[0].ttmerge);
    const st_tensor *conv = find_t(s, name);
    if (!conv || conv->ndim != 4 || conv->shape[2] != conv->shape[3] || conv->shape[0] < 1 || conv->shape[0] > 8192 ||
        conv->shape[1] < 1 || conv->shape[1] > 16 || conv->shape[2] < 1 || conv->shape[2] > 1024) {
        if (conv) fmt_shape(sb, sizeof sb, conv->ndim, conv->shape);
        return tt_fail(err, TT_EINPUT, "%s: tensor %s %s%s", path, name, conv ? "has shape " : "missing",
                       conv ? sb : "");
    }
    vit_config c = {.width = (int)conv->shape[0], .channels = (int)conv->shape[1], .patch_size = (int)conv->shape[2],
                    .mlp_ratio = 4.0f, .ln_eps = 1e-5f, .act = OP_ACT_QUICK_GELU, .logit_scale = 1.0f};
    /* positions [T, w], T = g² + 1 */
    snprintf(name, sizeof name, "%s%s", hf ? "" : P, hf ? embed_rows[2].hf : embed_rows[2].ttmerge);
    const st_tensor *pos = find_t(s, name);
    int64_t g = 0;
    if (pos && pos->ndim == 2 && pos->shape[0] >= 2 && pos->shape[0] <= 4097) {
        g = (int64_t)llround(sqrt((double)(pos->shape[0] - 1)));
        if (g * g != pos->shape[0] - 1) g = 0;
    }
    if (!g) {
        if (pos) fmt_shape(sb, sizeof sb, pos->ndim, pos->shape);
        return tt_fail(err, TT_EINPUT, "%s: tensor %s %s%s (want [grid²+1, width])", path, name,
                       pos ? "has shape " : "missing", pos ? sb : "");
    }
    c.image_size = (int)g * c.patch_size;
    char block[64];
    snprintf(block, sizeof block, "%s%s", hf ? "" : P, hf ? HF_BLOCK : OC_BLOCK);
    c.layers = cm_count_blocks(s, block);
    int mlp = 4 * c.width;
    if (c.layers > 0) {
        snprintf(name, sizeof name, "%s0.%s", block, hf ? "mlp.fc1.weight" : "mlp.c_fc.weight");
        const st_tensor *fc = find_t(s, name);
        if (!fc || fc->ndim != 2 || fc->shape[0] < 1 || fc->shape[0] > 16 * (int64_t)c.width)
            return tt_fail(err, TT_EINPUT, "%s: tensor %s %s", path, name, fc ? "has a bad shape" : "missing");
        mlp = (int)fc->shape[0];
        c.mlp_ratio = (float)mlp / (float)c.width;
        if (vit_mlp_width(&c) != mlp)
            return tt_fail(err, TT_EINPUT, "%s: MLP width %d is not width %d times a float ratio", path, mlp, c.width);
    }
    /* projection: proj [w, D] / visual_projection.weight [D, w] / none (HF CLIPVisionModel) */
    snprintf(name, sizeof name, "%s%s", hf ? "" : P, hf ? head_rows[2].hf : head_rows[2].ttmerge);
    const st_tensor *pj = find_t(s, name);
    m->has_projection = pj != NULL;
    if (!pj && !hf) return tt_fail(err, TT_EINPUT, "%s: tensor %s missing", path, name);
    c.output_dim = !pj ? c.width : pj->ndim == 2 ? (int)pj->shape[hf ? 0 : 1] : 0;
    if (c.output_dim < 1 || c.output_dim > 8192)
        return tt_fail(err, TT_EINPUT, "%s: tensor %s is not a [%s] matrix", path, name, hf ? "out, width" : "width, out");
    c.heads = c.width % 64 ? 0 : c.width / 64;

    /* what the files say beyond the shapes */
    const char *dir = ts_dir(s), *arch = ts_meta(s, "ttmerge.arch");
    char *text = NULL;
    size_t len = 0;
    if (hf && dir) {
        if (read_text(dir, "config.json", &text, &len, err)) return -1;
        if (text) {
            char cpath[4096];
            snprintf(cpath, sizeof cpath, "%s/config.json", dir);
            cm_hf_vision v;
            int rc = cm_hf_config_parse(&v, text, len, cpath, err);
            const char *what = NULL;
            int said = 0, have = 0;
            if (!rc) {
                if (v.hidden_size != c.width) what = "hidden_size", said = v.hidden_size, have = c.width;
                else if (v.intermediate_size != mlp) what = "intermediate_size", said = v.intermediate_size, have = mlp;
                else if (v.layers != c.layers) what = "num_hidden_layers", said = v.layers, have = c.layers;
                else if (v.patch_size != c.patch_size) what = "patch_size", said = v.patch_size, have = c.patch_size;
                else if (v.image_size != c.image_size) what = "image_size", said = v.image_size, have = c.image_size;
                else if (v.channels != c.channels) what = "num_channels", said = v.channels, have = c.channels;
                else if (m->has_projection && v.projection_dim != c.output_dim)
                    what = "projection_dim", said = v.projection_dim, have = c.output_dim;
                if (what) rc = tt_fail(err, TT_EINPUT, "%s: %s is %d but the tensors say %d", cpath, what, said, have);
            }
            if (rc) {
                free(text);
                return -1;
            }
            c.heads = v.heads;
            c.act = v.act;
            c.ln_eps = v.ln_eps;
            m->hf_config = text; /* kept: an HF output copies it */
            text = NULL;
        }
    } else if (!hf && dir) {
        if (read_text(dir, "open_clip_config.json", &text, &len, err)) return -1;
        if (text) {
            char cpath[4096];
            snprintf(cpath, sizeof cpath, "%s/open_clip_config.json", dir);
            int act, hw;
            int rc = cm_open_clip_config_parse(&act, &hw, text, len, cpath, err);
            free(text);
            text = NULL;
            if (rc) return -1;
            c.act = act;
            c.heads = c.width % hw ? 0 : c.width / hw;
        }
    }
    if (!m->hf_config && ts_meta(s, "ttmerge.hf_config") && !(m->hf_config = strdup(ts_meta(s, "ttmerge.hf_config"))))
        return tt_fail(err, TT_ENOMEM, "%s: out of memory", path);
    if (arch) { /* ttmerge wrote this file: its architecture, checked against the shapes */
        vit_config a;
        if (vit_config_from_json(&a, arch, err)) return tt_prefix(err, "%s: ttmerge.arch: ", path);
        if (a.width != c.width || a.channels != c.channels || a.patch_size != c.patch_size ||
            a.image_size != c.image_size || a.layers != c.layers || a.output_dim != c.output_dim ||
            vit_mlp_width(&a) != mlp)
            return tt_fail(err, TT_EINPUT, "%s: ttmerge.arch in __metadata__ does not match the tensors' shapes", path);
        c = a;
    }
    if (o && o->act != CM_ACT_AUTO) c.act = (op_act_kind)o->act;
    if (c.heads < 1)
        return tt_fail(err, TT_EINPUT, "%s: width %d is not a multiple of 64: give the head count in config.json "
                       "(num_attention_heads) or open_clip_config.json (vision_cfg.head_width)", path, c.width);
    if (vit_config_validate(&c, err)) return tt_prefix(err, "%s: ", path);
    m->cfg = c;
    return 0;
}

static int detect(cm_model *m, tt_err *err) {
    const ts_set *s = m->set;
    char nb[100];
    bool arch = ts_meta(s, "ttmerge.arch") != NULL;
    if (ts_find(s, embed_rows[0].hf)) {
        m->format = CM_HF;
    } else if (ts_find(s, "visual.conv1.weight")) {
        m->format = CM_OPEN_CLIP;
        strcpy(m->prefix, "visual.");
    } else if (ts_find(s, "model.visual.conv1.weight")) {
        m->format = CM_OPEN_CLIP;
        strcpy(m->prefix, "model.visual.");
    } else if (arch) {
        m->format = CM_TTMERGE;
    } else if (ts_find(s, "conv1.weight")) {
        m->format = CM_OPEN_CLIP;
    } else {
        if (!ts_count(s)) return tt_fail(err, TT_EINPUT, "%s: holds no tensors", ts_path(s));
        return tt_fail(err, TT_EINPUT, "%s: not a CLIP image tower: tensor %s fits none of ttmerge's names "
                       "(with \"ttmerge.arch\" metadata), open_clip's (visual.conv1.weight, ...) or Hugging Face "
                       "CLIP's (vision_model.embeddings.patch_embedding.weight, ...)",
                       ts_path(s), show(ts_at(s, 0)->t->name, nb));
    }
    return 0;
}

int cm_open(cm_model *m, const char *path, const cm_opts *o, tt_err *err) {
    memset(m, 0, sizeof *m);
    char name[256], nb[100];
    bool *used = NULL;
    if (ts_open(&m->set, path, err) || detect(m, err)) goto fail;
    if (m->format == CM_TTMERGE) {
        /* ttmerge's own file: exactly the checks ckpt_read_vit makes (core/checkpoint.c) */
        if (vit_config_from_json(&m->cfg, ts_meta(m->set, "ttmerge.arch"), err)) {
            tt_prefix(err, "%s: ", path);
            goto fail;
        }
        if (o && o->act != CM_ACT_AUTO) m->cfg.act = (op_act_kind)o->act;
        m->has_projection = true;
        const char *hc = ts_meta(m->set, "ttmerge.hf_config");
        if (hc && !(m->hf_config = strdup(hc))) {
            tt_fail(err, TT_ENOMEM, "%s: out of memory", path);
            goto fail;
        }
    } else if (derive_config(m, o, err)) {
        goto fail;
    }
    if (vit_layout_init(&m->lay, &m->cfg, err)) {
        tt_prefix(err, "%s: ", path);
        goto fail;
    }
    m->src = calloc((size_t)m->lay.count, sizeof *m->src);
    used = calloc((size_t)ts_count(m->set) + 1, sizeof *used);
    if (!m->src || !used) {
        tt_fail(err, TT_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    for (int l = 0; l < m->lay.count; l++) {
        const vit_tensor_info *t = &m->lay.t[l];
        cm_source *src = &m->src[l];
        src->op = cm_name(m->format, m->prefix, &m->lay, l, 0, m->has_projection, name, sizeof name);
        int parts = src->op == CM_QKV ? 3 : src->op == CM_IDENTITY ? 0 : 1;
        for (int p = 0; p < parts; p++) {
            cm_name(m->format, m->prefix, &m->lay, l, p, m->has_projection, name, sizeof name);
            int64_t shape[4] = {t->shape[0], t->shape[1], t->shape[2], t->shape[3]};
            if (src->op == CM_QKV) shape[0] /= 3;
            if (src->op == CM_TRANSPOSE) shape[0] = t->shape[1], shape[1] = t->shape[0];
            if (expect(m->set, name, t->ndim, shape, &src->part[p], err)) goto fail;
            used[src->part[p] - ts_at(m->set, 0)] = true;
        }
    }
    if (m->format != CM_TTMERGE) { /* every other tensor must be one the layout ignores */
        const char *outer = !strcmp(m->prefix, "model.visual.") ? "model." : "";
        for (int i = 0; i < ts_count(m->set); i++) {
            const char *n = ts_at(m->set, i)->t->name;
            bool ok = used[i] || (m->format == CM_HF ? in_list(n, hf_ignored_names, hf_ignored_prefixes, "")
                                                     : m->prefix[0] && strncmp(n, m->prefix, strlen(m->prefix)) &&
                                                           in_list(n, oc_text_names, oc_text_prefixes, outer));
            if (!ok) {
                tt_fail(err, TT_EINPUT, "%s: tensor %s does not fit the %s layout detected (%d layers, width %d)",
                        path, show(n, nb), m->format == CM_HF ? "Hugging Face CLIP" : "open_clip", m->cfg.layers,
                        m->cfg.width);
                goto fail;
            }
        }
    }
    free(used);
    return 0;
fail:
    free(used);
    cm_close(m);
    return -1;
}

void cm_close(cm_model *m) {
    ts_close(m->set);
    vit_layout_free(&m->lay);
    free(m->src);
    free(m->hf_config);
    memset(m, 0, sizeof *m);
}

const float *cm_view(const cm_model *m, int l) {
    const cm_source *s = &m->src[l];
    return s->op == CM_COPY ? st_f32_view(s->part[0]->t) : NULL;
}

int cm_read(const cm_model *m, int l, float *out, tt_err *err) {
    const cm_source *s = &m->src[l];
    const vit_tensor_info *t = &m->lay.t[l];
    switch (s->op) {
    case CM_COPY:
        return ts_read_f32(s->part[0], out, err);
    case CM_QKV: /* q, k, v are consecutive row blocks of in_proj (rows of the weight, spans of the bias) */
        for (int p = 0; p < 3; p++)
            if (ts_read_f32(s->part[p], out + (size_t)p * (t->numel / 3), err)) return -1;
        return 0;
    case CM_TRANSPOSE: {
        size_t w = (size_t)t->shape[0], d = (size_t)t->shape[1];
        float *tmp = malloc(w * d * sizeof *tmp);
        if (!tmp) return tt_fail(err, TT_ENOMEM, "%s: out of memory", ts_path(m->set));
        int rc = ts_read_f32(s->part[0], tmp, err); /* [d, w] */
        for (size_t i = 0; !rc && i < w; i++)
            for (size_t j = 0; j < d; j++) out[i * d + j] = tmp[j * w + i];
        free(tmp);
        return rc;
    }
    case CM_IDENTITY: {
        size_t w = (size_t)t->shape[0];
        memset(out, 0, t->numel * sizeof *out);
        for (size_t i = 0; i < w; i++) out[i * w + i] = 1.0f;
        return 0;
    }
    }
    return tt_fail(err, TT_EINTERNAL, "unknown name map relation");
}

/* ---- writing ---- */

typedef struct out_tensor {
    char name[256];
    int ndim;
    int64_t shape[4];
    const float *data;
    size_t nbytes;
} out_tensor;

static char *generated_hf_config(const vit_config *c, bool has_projection) {
    json_t *o = json_pack("{s:[s],s:s,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:s,s:f,s:s}", "architectures",
                          has_projection ? "CLIPVisionModelWithProjection" : "CLIPVisionModel", "model_type",
                          "clip_vision_model", "hidden_size", c->width, "intermediate_size", vit_mlp_width(c),
                          "projection_dim", c->output_dim, "num_hidden_layers", c->layers, "num_attention_heads",
                          c->heads, "num_channels", c->channels, "image_size", c->image_size, "patch_size",
                          c->patch_size, "hidden_act", c->act == OP_ACT_GELU ? "gelu" : "quick_gelu",
                          "layer_norm_eps", (double)c->ln_eps, "torch_dtype", "float32");
    if (!o) return NULL;
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(9));
    json_decref(o);
    return s;
}

static int save_file(const out_tensor *t, int n, const cm_kv *meta, int n_meta, const char *path, tt_err *err) {
    st_writer *w = st_writer_create(err);
    if (!w) return -1;
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) rc = st_writer_add(w, t[i].name, t[i].ndim, t[i].shape, t[i].data, err);
    for (int i = 0; i < n_meta && !rc; i++) rc = st_writer_meta(w, meta[i].key, meta[i].value, err);
    if (!rc) rc = st_writer_save(w, path, err);
    st_writer_free(w);
    return rc;
}

/* The HF directory through a tensor sink (core/tensorsink.h): shards (or one file), index,
 * config.json, in a temporary directory renamed to out at the end. */
static int save_hf_dir(const out_tensor *t, int n, const cm_kv *meta, int n_meta, const char *config, const char *out,
                       size_t shard_size, tt_err *err) {
    tsk_spec *spec = calloc((size_t)(n ? n : 1), sizeof *spec);
    tsk_kv *kv = calloc((size_t)(n_meta ? n_meta : 1), sizeof *kv);
    if (!spec || !kv) {
        free(spec);
        free(kv);
        return tt_fail(err, TT_ENOMEM, "%s: out of memory", out);
    }
    for (int i = 0; i < n; i++) {
        spec[i] = (tsk_spec){.name = t[i].name, .dtype = ST_F32, .ndim = t[i].ndim};
        memcpy(spec[i].shape, t[i].shape, sizeof t[i].shape);
    }
    for (int i = 0; i < n_meta; i++) kv[i] = (tsk_kv){meta[i].key, meta[i].value};
    tsk_sink *s;
    int rc = tsk_open(&s, out, spec, n, shard_size, kv, n_meta, err);
    free(spec);
    free(kv);
    if (rc) return -1;
    for (int i = 0; i < n && !rc; i++) rc = tsk_write_f32(s, i, 0, t[i].data, t[i].nbytes / sizeof(float), err);
    if (!rc) rc = tsk_add_file(s, "config.json", config, strlen(config), err);
    if (rc) {
        tsk_abort(s);
        return -1;
    }
    return tsk_commit(s, err);
}

int cm_save(cm_format f, const vit_config *cfg, const vit_layout *lay, const float *params, bool has_projection,
            const char *hf_config, const cm_kv *meta, int n_meta, const char *out, size_t shard_size, tt_err *err) {
    int n = 0, rc = -1;
    out_tensor *t = calloc((size_t)lay->count * 3 + 1, sizeof *t);
    cm_kv *kv = calloc((size_t)n_meta + 4, sizeof *kv);
    float *transposed = NULL;
    char *arch = vit_config_to_json(cfg), *config = NULL;
    if (!t || !kv || !arch) {
        tt_fail(err, TT_ENOMEM, "%s: out of memory", out);
        goto done;
    }
    for (int l = 0; l < lay->count; l++) {
        const vit_tensor_info *ti = &lay->t[l];
        const float *data = params + ti->offset;
        cm_op op = cm_name(f, f == CM_OPEN_CLIP ? "visual." : "", lay, l, 0, has_projection, t[n].name, sizeof t[n].name);
        if (op == CM_IDENTITY) continue; /* a CLIPVisionModel stays without projection */
        int parts = op == CM_QKV ? 3 : 1;
        for (int p = 0; p < parts; p++) {
            out_tensor *o = &t[n++];
            cm_name(f, "visual.", lay, l, p, has_projection, o->name, sizeof o->name);
            o->ndim = ti->ndim;
            memcpy(o->shape, ti->shape, sizeof o->shape);
            o->data = data;
            if (op == CM_QKV) { /* q, k, v: consecutive row blocks, zero-copy */
                o->shape[0] /= 3;
                o->data = data + (size_t)p * (ti->numel / 3);
            } else if (op == CM_TRANSPOSE) {
                size_t w = (size_t)ti->shape[0], d = (size_t)ti->shape[1];
                transposed = malloc(w * d * sizeof *transposed);
                if (!transposed) {
                    tt_fail(err, TT_ENOMEM, "%s: out of memory", out);
                    goto done;
                }
                for (size_t j = 0; j < d; j++)
                    for (size_t i = 0; i < w; i++) transposed[j * w + i] = data[i * d + j];
                o->shape[0] = (int64_t)d;
                o->shape[1] = (int64_t)w;
                o->data = transposed;
            }
            o->nbytes = (size_t)(ti->numel / (size_t)parts) * sizeof(float);
        }
    }
    int k = 0;
    if (f != CM_TTMERGE) kv[k++] = (cm_kv){"format", "pt"}; /* transformers refuses safetensors without it */
    kv[k++] = (cm_kv){"ttmerge.arch", arch};
    kv[k++] = (cm_kv){"ttmerge.version", ttmerge_version()};
    if (f != CM_HF && hf_config) kv[k++] = (cm_kv){"ttmerge.hf_config", hf_config}; /* HF → open_clip → HF keeps it */
    for (int i = 0; i < n_meta; i++) kv[k++] = meta[i];
    if (f == CM_HF) {
        config = hf_config ? strdup(hf_config) : generated_hf_config(cfg, has_projection);
        if (!config) {
            tt_fail(err, TT_ENOMEM, "%s: out of memory", out);
            goto done;
        }
        rc = save_hf_dir(t, n, kv, k, config, out, shard_size, err);
    } else {
        rc = save_file(t, n, kv, k, out, err);
    }
done:
    free(config);
    free(arch);
    free(transposed);
    free(kv);
    free(t);
    return rc;
}
