/* checkpoint.c — see checkpoint.h. */
#include "core/checkpoint.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/version.h"

#define HEAD_SETTINGS_KEY "ttmerge.head"

int ckpt_vit_alloc(ckpt_vit *m, const vit_config *cfg, tt_err *err) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->has_projection = true;
    if (vit_layout_init(&m->lay, cfg, err)) return -1;
    m->params = tt_calloc_aligned(m->lay.total, sizeof(float), err);
    if (!m->params) {
        vit_layout_free(&m->lay);
        return -1;
    }
    return 0;
}

int ckpt_read_vit(ckpt_vit *m, const st_file *f, tt_err *err) {
    memset(m, 0, sizeof *m);
    const char *path = st_path(f);
    const char *arch = st_meta(f, "ttmerge.arch");
    if (!arch) return tt_fail(err, TT_EINPUT, "%s: no \"ttmerge.arch\" in __metadata__ (not a ttmerge ViT checkpoint)", path);
    vit_config cfg;
    if (vit_config_from_json(&cfg, arch, err)) return tt_prefix(err, "%s: ", path);
    /* Every tensor must be in the file with its shape BEFORE the flat buffer is allocated: the
     * architecture is a claim in the header, and a 400-byte file claiming a 19 GB model must be
     * bad input, not 19 GB of zeroed memory (or an out-of-memory error). */
    vit_layout lay;
    if (vit_layout_init(&lay, &cfg, err)) return tt_prefix(err, "%s: ", path);
    int rc = 0;
    for (int i = 0; i < lay.count && !rc; i++)
        rc = st_expect(f, lay.t[i].name, lay.t[i].ndim, lay.t[i].shape, NULL, err);
    vit_layout_free(&lay);
    if (rc || ckpt_vit_alloc(m, &cfg, err)) return -1;
    for (int i = 0; i < m->lay.count; i++) {
        const vit_tensor_info *t = &m->lay.t[i];
        if (st_read_f32(f, st_find(f, t->name), m->params + t->offset, err)) {
            ckpt_vit_free(m);
            return -1;
        }
    }
    return 0;
}

int ckpt_load_vit_opts(ckpt_vit *m, const char *path, const cm_opts *o, tt_err *err) {
    memset(m, 0, sizeof *m);
    cm_model cm;
    if (cm_open(&cm, path, o, err)) return -1;
    int rc = ckpt_vit_alloc(m, &cm.cfg, err);
    /* tensor by tensor: the pages of one are given back before the next is read */
    for (int l = 0; l < m->lay.count && !rc; l++) {
        rc = cm_read(&cm, l, m->params + m->lay.t[l].offset, err);
        for (int p = 0; p < 3 && cm.src[l].part[p]; p++) ts_release(cm.src[l].part[p]);
    }
    if (!rc) {
        m->format = cm.format;
        m->has_projection = cm.has_projection;
        m->hf_config = cm.hf_config;
        cm.hf_config = NULL;
    }
    cm_close(&cm);
    if (rc) ckpt_vit_free(m);
    return rc;
}

int ckpt_load_vit(ckpt_vit *m, const char *path, tt_err *err) { return ckpt_load_vit_opts(m, path, NULL, err); }

int ckpt_save_vit_as(const ckpt_vit *m, cm_format f, const char *path, size_t shard_size, const ckpt_meta *meta,
                     int n_meta, tt_err *err) {
    cm_kv *kv = calloc((size_t)n_meta + 1, sizeof *kv);
    if (!kv) return tt_fail(err, TT_ENOMEM, "%s: out of memory", path);
    for (int i = 0; i < n_meta; i++) kv[i] = (cm_kv){meta[i].key, meta[i].value};
    int rc = cm_save(f, &m->cfg, &m->lay, m->params, m->has_projection, m->hf_config, kv, n_meta, path, shard_size, err);
    free(kv);
    return rc;
}

void ckpt_adopt_head_settings(ckpt_vit *m, const vit_config *ref) {
    if (m->format == CM_TTMERGE) return; /* its own ttmerge.arch says */
    m->cfg.normalize_features = ref->normalize_features;
    m->cfg.logit_scale = ref->logit_scale;
}

int ckpt_save_vit(const ckpt_vit *m, const char *path, const ckpt_extra_tensor *extras, int n_extras,
                  const ckpt_meta *meta, int n_meta, tt_err *err) {
    st_writer *w = st_writer_create(err);
    if (!w) return -1;
    int rc = 0;
    for (int i = 0; i < m->lay.count && !rc; i++) {
        const vit_tensor_info *t = &m->lay.t[i];
        rc = st_writer_add(w, t->name, t->ndim, t->shape, m->params + t->offset, err);
    }
    for (int i = 0; i < n_extras && !rc; i++)
        rc = extras[i].dtype == ST_U8
                 ? st_writer_add_u8(w, extras[i].name, extras[i].ndim, extras[i].shape, extras[i].bytes, err)
                 : st_writer_add(w, extras[i].name, extras[i].ndim, extras[i].shape, extras[i].data, err);
    char *arch = vit_config_to_json(&m->cfg);
    if (!arch && !rc) rc = tt_fail(err, TT_ENOMEM, "out of memory (arch JSON)");
    if (!rc) rc = st_writer_meta(w, "ttmerge.arch", arch, err);
    if (!rc) rc = st_writer_meta(w, "ttmerge.version", ttmerge_version(), err);
    for (int i = 0; i < n_meta && !rc; i++) rc = st_writer_meta(w, meta[i].key, meta[i].value, err);
    if (!rc) rc = st_writer_save(w, path, err);
    free(arch);
    st_writer_free(w);
    return rc;
}

void ckpt_vit_free(ckpt_vit *m) {
    free(m->params);
    free(m->hf_config);
    vit_layout_free(&m->lay);
    memset(m, 0, sizeof *m);
}

int ckpt_check_finite(const ckpt_vit *m, const char *path, tt_err *err) {
    for (int i = 0; i < m->lay.count; i++) {
        const vit_tensor_info *t = &m->lay.t[i];
        const float *p = m->params + t->offset;
        for (size_t k = 0; k < t->numel; k++)
            if (!isfinite(p[k]))
                return tt_fail(err, TT_ENUMERIC, "%s: tensor %s holds %s at [%zu]", path, t->name,
                               isnan(p[k]) ? "NaN" : "Inf", k);
    }
    return 0;
}

int ckpt_read_head(ckpt_head *h, const st_file *f, const char *prefix, int dim, tt_err *err) {
    memset(h, 0, sizeof *h);
    char wname[256], bname[256];
    snprintf(wname, sizeof wname, "%sweight", prefix);
    snprintf(bname, sizeof bname, "%sbias", prefix);
    const st_tensor *tw = st_find(f, wname), *tb;
    if (!tw) return tt_fail(err, TT_EINPUT, "%s: tensor %s missing", st_path(f), wname);
    if (tw->ndim != 2 || tw->shape[1] != dim || tw->shape[0] < 1 || tw->shape[0] > 100000)
        return tt_fail(err, TT_EINPUT, "%s: tensor %s must have shape [classes, %d]", st_path(f), wname, dim);
    int64_t bshape[1] = {tw->shape[0]};
    if (st_expect(f, bname, 1, bshape, &tb, err)) return -1;
    h->classes = (int)tw->shape[0];
    h->dim = dim;
    h->W = tt_calloc_aligned((size_t)h->classes * (size_t)dim + (size_t)h->classes, sizeof(float), err);
    if (!h->W) return -1;
    h->b = h->W + (size_t)h->classes * dim;
    if (st_read_f32(f, tw, h->W, err) || st_read_f32(f, tb, h->b, err)) {
        ckpt_head_free(h);
        return -1;
    }
    return 0;
}

/* __metadata__["ttmerge.head"] = {"normalize_features": bool, "logit_scale": number in (0, 1e6)} */
static int read_head_settings(ckpt_head *h, const st_file *f, tt_err *err) {
    const char *text = st_meta(f, HEAD_SETTINGS_KEY);
    if (!text) return 0;
    json_error_t je;
    json_t *o = json_loads(text, 0, &je);
    const json_t *nf = json_object_get(o, "normalize_features"), *ls = json_object_get(o, "logit_scale");
    double s = json_is_number(ls) ? json_number_value(ls) : -1;
    int rc = 0;
    if (!json_is_object(o) || !json_is_boolean(nf) || !(s > 0 && s < 1e6))
        rc = tt_fail(err, TT_EINPUT, "%s: __metadata__ %s must be {\"normalize_features\": true|false, "
                     "\"logit_scale\": a number in (0, 1e6)}", st_path(f), HEAD_SETTINGS_KEY);
    else {
        h->has_settings = true;
        h->normalize_features = json_is_true(nf);
        h->logit_scale = (float)s;
    }
    json_decref(o);
    return rc;
}

int ckpt_load_head(ckpt_head *h, const char *path, int dim, tt_err *err) {
    st_file *f;
    memset(h, 0, sizeof *h);
    if (st_open(&f, path, err)) return -1;
    int rc = ckpt_read_head(h, f, "head.", dim, err);
    if (!rc && read_head_settings(h, f, err)) {
        ckpt_head_free(h);
        rc = -1;
    }
    st_close(f);
    return rc;
}

void ckpt_head_apply_settings(const ckpt_head *h, vit_config *cfg) {
    if (!h->has_settings) return;
    cfg->normalize_features = h->normalize_features;
    cfg->logit_scale = h->logit_scale;
}

int ckpt_save_head(const ckpt_head *h, const char *path, tt_err *err) {
    st_writer *w = st_writer_create(err);
    if (!w) return -1;
    int64_t ws[2] = {h->classes, h->dim}, bs[1] = {h->classes};
    int rc = st_writer_add(w, "head.weight", 2, ws, h->W, err);
    if (!rc) rc = st_writer_add(w, "head.bias", 1, bs, h->b, err);
    if (!rc) rc = st_writer_meta(w, "ttmerge.version", ttmerge_version(), err);
    if (!rc && h->has_settings) {
        char settings[128];
        snprintf(settings, sizeof settings, "{\"logit_scale\":%.9g,\"normalize_features\":%s}", (double)h->logit_scale,
                 h->normalize_features ? "true" : "false");
        rc = st_writer_meta(w, HEAD_SETTINGS_KEY, settings, err);
    }
    if (!rc) rc = st_writer_save(w, path, err);
    st_writer_free(w);
    return rc;
}

void ckpt_head_free(ckpt_head *h) {
    free(h->W);
    memset(h, 0, sizeof *h);
}

/* The extra named PREFIX + rest (PREFIX may be "task.T." pieces), or NULL. */
static const ckpt_extra_tensor *find_extra(const ckpt_extra_tensor *x, int n, const char *a, const char *b,
                                           const char *c) {
    size_t la = strlen(a), lb = strlen(b);
    for (int i = 0; i < n; i++) {
        const char *nm = x[i].name;
        if (!strncmp(nm, a, la) && !strncmp(nm + la, b, lb) && !strcmp(nm + la + lb, c)) return &x[i];
    }
    return NULL;
}

int ckpt_task_state_init(ckpt_task_state *st, const ckpt_vit *m, const ckpt_extra_tensor *x, int n, tt_err *err) {
    memset(st, 0, sizeof *st);
    for (int i = 0; i < n; i++)
        if (x[i].dtype == ST_U8) {
            st->scratch = tt_calloc_aligned(m->lay.total, sizeof(float), err);
            return st->scratch ? 0 : -1;
        }
    return 0;
}

void ckpt_task_state_free(ckpt_task_state *st) {
    free(st->scratch);
    memset(st, 0, sizeof *st);
}

int ckpt_task_apply(const ckpt_vit *m, const ckpt_extra_tensor *x, int n, const char *task, vit_weights *w,
                    const float **W, const float **b, ckpt_task_state *st) {
    size_t tl = strlen(task);
    int used = 0;
    if (st) st->down = st->up = NULL;
    char prefix[96];
    snprintf(prefix, sizeof prefix, "task.%s.", task);
    for (int i = 0; i < n; i++) {
        const char *name = x[i].name;
        if (strncmp(name, "task.", 5) || strncmp(name + 5, task, tl) || name[5 + tl] != '.') continue;
        const char *rest = name + 6 + tl;
        if (!strcmp(rest, "head.weight")) *W = x[i].data;
        else if (!strcmp(rest, "head.bias")) *b = x[i].data;
        else if (!strcmp(rest, "scale") || !strcmp(rest, "surgery.up")) continue; /* read with their partners */
        else if (!strcmp(rest, "surgery.down")) {
            const ckpt_extra_tensor *up = find_extra(x, n, prefix, "surgery.up", "");
            TT_ASSERT(st != NULL && up != NULL && x[i].ndim == 2); /* checked by the callers */
            st->down = x[i].data;
            st->up = up->data;
            st->rank = (int)x[i].shape[0];
        } else if (!strncmp(rest, "mask.", 5)) {
            int l = vit_layout_find(&m->lay, rest + 5);
            const ckpt_extra_tensor *delta = find_extra(x, n, "delta.", rest + 5, "");
            const ckpt_extra_tensor *scale = find_extra(x, n, prefix, "scale", "");
            TT_ASSERT(l >= 0 && st != NULL && st->scratch != NULL && delta != NULL && scale != NULL &&
                      x[i].dtype == ST_U8);
            const vit_tensor_info *t = &m->lay.t[l];
            const float *base = m->params + t->offset, *d = delta->data;
            const uint8_t *bits = x[i].bytes;
            float lam = scale->data[0], *out = st->scratch + t->offset;
            /* official order: θ0 + (τ_uni · mask) · λ */
#pragma omp parallel for schedule(static) if (t->numel > 65536)
            for (size_t j = 0; j < t->numel; j++) out[j] = base[j] + ((bits[j >> 3] >> (j & 7)) & 1 ? d[j] * lam : 0.0f);
            *vit_weights_slot(w, l) = out;
        } else {
            int l = vit_layout_find(&m->lay, rest);
            /* the callers check names and shapes (files) or wrote them (methods) */
            TT_ASSERT(l >= 0 && x[i].ndim == m->lay.t[l].ndim);
            for (int d = 0; d < x[i].ndim; d++) TT_ASSERT(x[i].shape[d] == m->lay.t[l].shape[d]);
            *vit_weights_slot(w, l) = (float *)x[i].data; /* read-only: the forward never writes weights */
        }
        used++;
    }
    return used;
}

void ckpt_surgery_map(const float *down, const float *up, int rank, int dim, float *features, int rows) {
    for (int r = 0; r < rows; r++) {
        float *z = features + (size_t)r * dim;
        float a[1024];
        TT_ASSERT(rank <= 1024); /* checked by the callers */
        for (int k = 0; k < rank; k++) {
            double h = 0;
            for (int j = 0; j < dim; j++) h += (double)down[(size_t)k * dim + j] * z[j];
            a[k] = h > 0 ? (float)h : 0.0f;
        }
        for (int j = 0; j < dim; j++) {
            double u = 0;
            for (int k = 0; k < rank; k++) u += (double)up[(size_t)j * rank + k] * a[k];
            z[j] = (float)(z[j] - u);
        }
    }
}

void ckpt_surgery_hook(float *features, int rows, int dim, const void *state) {
    const ckpt_task_state *st = state;
    if (st && st->down) ckpt_surgery_map(st->down, st->up, st->rank, dim, features, rows);
}
