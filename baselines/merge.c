/* merge.c — the merge context: parameters, θ0 and the mapped θ_k, saving, validation eval. */
#include "baselines/merge.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"

/* ---- parameters ---- */

static int params_set(merge_params *p, const char *key, const char *value, tt_err *err) {
    for (int i = 0; i < p->n; i++)
        if (!strcmp(p->key[i], key)) {
            snprintf(p->value[i], sizeof p->value[i], "%s", value);
            return 0;
        }
    if (p->n >= MERGE_MAX_PARAMS) return tt_fail(err, TT_EINPUT, "too many parameters");
    if (strlen(key) >= sizeof p->key[0] || strlen(value) >= sizeof p->value[0])
        return tt_fail(err, TT_EINPUT, "parameter %s=%s is too long", key, value);
    snprintf(p->key[p->n], sizeof p->key[0], "%s", key);
    snprintf(p->value[p->n], sizeof p->value[0], "%s", value);
    p->n++;
    return 0;
}

const char *merge_param_str(const merge_ctx *ctx, const char *name) {
    for (int i = 0; i < ctx->params.n; i++)
        if (!strcmp(ctx->params.key[i], name)) return ctx->params.value[i];
    return NULL;
}

bool merge_param_is_auto(const merge_ctx *ctx, const char *name) {
    const char *v = merge_param_str(ctx, name);
    return v && !strcmp(v, "auto");
}

int merge_param_double(const merge_ctx *ctx, const char *name, double *out, tt_err *err) {
    const char *v = merge_param_str(ctx, name);
    TT_ASSERT(v != NULL); /* a method asked for a parameter it did not declare */
    char *end;
    double x = strtod(v, &end);
    if (end == v || *end || !isfinite(x)) return tt_fail(err, TT_EINPUT, "parameter %s=%s is not a number", name, v);
    *out = x;
    return 0;
}

int merge_param_int(const merge_ctx *ctx, const char *name, long *out, tt_err *err) {
    const char *v = merge_param_str(ctx, name);
    TT_ASSERT(v != NULL);
    char *end;
    long x = strtol(v, &end, 10);
    if (end == v || *end) return tt_fail(err, TT_EINPUT, "parameter %s=%s is not an integer", name, v);
    *out = x;
    return 0;
}

int merge_params_resolve(merge_params *p, const merge_method *m, const char *const *sets, int n_sets, tt_err *err) {
    memset(p, 0, sizeof *p);
    for (const merge_param *d = m->params; d && d->name; d++)
        if (params_set(p, d->name, d->dflt, err)) return -1;
    for (int i = 0; i < n_sets; i++) {
        const char *eq = strchr(sets[i], '=');
        if (!eq || eq == sets[i]) return tt_fail(err, TT_EINPUT, "--set %s: expected key=value", sets[i]);
        char key[64];
        snprintf(key, sizeof key, "%.*s", (int)(eq - sets[i]), sets[i]);
        bool known = false;
        for (int j = 0; j < p->n && !known; j++) known = !strcmp(p->key[j], key);
        if (!known)
            return tt_fail(err, TT_EINPUT, "method %s has no parameter '%s' (see ttmerge merge --method %s --help)",
                           m->name, key, m->name);
        if (params_set(p, key, eq + 1, err)) return -1;
    }
    return 0;
}

/* ---- context ---- */

int merge_ctx_open(merge_ctx *ctx, const suite *s, const merge_method *m, const char *const *sets, int n_sets,
                   uint64_t seed, tt_err *err) {
    memset(ctx, 0, sizeof *ctx);
    ctx->s = s;
    ctx->K = s->n_tasks;
    ctx->seed = seed;
    if (ctx->K > MERGE_MAX_TASKS) return tt_fail(err, TT_EINPUT, "%s: %d tasks (at most %d)", s->dir, ctx->K, MERGE_MAX_TASKS);
    if (merge_params_resolve(&ctx->params, m, sets, n_sets, err)) return -1;
    if (ckpt_load_vit(&ctx->pre, s->pretrained, err) || ckpt_check_finite(&ctx->pre, s->pretrained, err)) goto fail;
    if (ctx->pre.lay.count > 512) {
        tt_fail(err, TT_EINPUT, "%s: %d tensors (at most 512)", s->pretrained, ctx->pre.lay.count);
        goto fail;
    }
    ckpt_adopt_head_settings(&ctx->pre, &s->cfg);
    if (memcmp(&ctx->pre.cfg, &s->cfg, sizeof s->cfg) != 0) {
        tt_fail(err, TT_EINPUT, "%s: architecture differs from %s/suite.json", s->pretrained, s->dir);
        goto fail;
    }
    for (int k = 0; k < ctx->K; k++) {
        const char *path = s->tasks[k].finetuned;
        cm_model *ft = ctx->ft[k] = calloc(1, sizeof *ctx->ft[k]);
        if (!ft) {
            tt_fail(err, TT_ENOMEM, "out of memory");
            goto fail;
        }
        if (cm_open(ft, path, NULL, err)) goto fail;
        if (ft->format != CM_TTMERGE) { /* heads' settings are the suite's, as for θ0 */
            ft->cfg.normalize_features = s->cfg.normalize_features;
            ft->cfg.logit_scale = s->cfg.logit_scale;
        }
        if (memcmp(&ft->cfg, &s->cfg, sizeof ft->cfg) != 0) {
            tt_fail(err, TT_EINPUT, "%s: architecture differs from the pretrained model's", path);
            goto fail;
        }
        for (int l = 0; l < ctx->pre.lay.count; l++) {
            const vit_tensor_info *t = &ctx->pre.lay.t[l];
            const float *v = cm_view(ft, l);
            ctx->ft_view[k][l] = v;
            /* NaN/Inf anywhere in an expert poisons every merge: name it now */
            float *tmp = v ? NULL : malloc(t->numel * sizeof(float));
            if (!v && (!tmp || cm_read(ft, l, tmp, err))) {
                free(tmp);
                if (!tmp) tt_fail(err, TT_ENOMEM, "out of memory");
                goto fail;
            }
            const float *x = v ? v : tmp;
            for (size_t i = 0; i < t->numel; i++)
                if (!isfinite(x[i])) {
                    free(tmp);
                    tt_fail(err, TT_ENUMERIC, "%s: tensor %s holds %s at [%zu] (task %s)", path, t->name,
                            isnan(x[i]) ? "NaN" : "Inf", i, s->tasks[k].name);
                    goto fail;
                }
            free(tmp);
        }
    }
    ctx->out_format = ctx->pre.format;
    if (ckpt_vit_alloc(&ctx->out, &s->cfg, err)) goto fail;
    memcpy(ctx->out.params, ctx->pre.params, ctx->pre.lay.total * sizeof(float));
    if (dnn_create(&ctx->d, err)) goto fail;
    return 0;
fail:
    merge_ctx_close(ctx);
    return -1;
}

void merge_ctx_close(merge_ctx *ctx) {
    ckpt_vit_free(&ctx->pre);
    ckpt_vit_free(&ctx->out);
    for (int k = 0; k < MERGE_MAX_TASKS; k++)
        if (ctx->ft[k]) {
            cm_close(ctx->ft[k]);
            free(ctx->ft[k]);
        }
    for (int i = 0; i < ctx->n_extra; i++) {
        free(ctx->extra_owned[i]);
        free((char *)ctx->extra[i].name);
    }
    free(ctx->record_json);
    dnn_free(ctx->d);
    memset(ctx, 0, sizeof *ctx);
}

const float *merge_ft_tensor(const merge_ctx *ctx, int k, int l, float *scratch) {
    if (ctx->ft_view[k][l]) return ctx->ft_view[k][l];
    tt_err e;
    TT_ASSERT(cm_read(ctx->ft[k], l, scratch, &e) == 0); /* validated at open (a transpose may need memory) */
    return scratch;
}

void merge_task_vector(const merge_ctx *ctx, int k, int l, float *out) {
    const vit_tensor_info *t = &ctx->pre.lay.t[l];
    const float *ft = merge_ft_tensor(ctx, k, l, out);
    const float *pre = ctx->pre.params + t->offset;
#pragma omp parallel for schedule(static) if (t->numel > 65536)
    for (size_t i = 0; i < t->numel; i++) out[i] = ft[i] - pre[i];
}

int merge_record(merge_ctx *ctx, const char *json, tt_err *err) {
    char *copy = strdup(json);
    if (!copy) return tt_fail(err, TT_ENOMEM, "out of memory");
    free(ctx->record_json);
    ctx->record_json = copy;
    return 0;
}

static int add_extra(merge_ctx *ctx, const char *name, int ndim, const int64_t *shape, void *data, st_dtype dt,
                     tt_err *err) {
    if (ctx->n_extra >= MERGE_MAX_EXTRA || ndim > 4) {
        free(data);
        return tt_fail(err, TT_EINTERNAL, "too many extra tensors");
    }
    ckpt_extra_tensor *x = &ctx->extra[ctx->n_extra];
    memset(x, 0, sizeof *x);
    x->name = strdup(name);
    x->ndim = ndim;
    for (int i = 0; i < ndim; i++) x->shape[i] = shape[i];
    x->dtype = dt;
    if (dt == ST_U8) x->bytes = data;
    else x->data = data;
    ctx->extra_owned[ctx->n_extra++] = data;
    return x->name ? 0 : tt_fail(err, TT_ENOMEM, "out of memory");
}

int merge_add_extra(merge_ctx *ctx, const char *name, int ndim, const int64_t *shape, float *data, tt_err *err) {
    return add_extra(ctx, name, ndim, shape, data, ST_F32, err);
}

int merge_add_extra_u8(merge_ctx *ctx, const char *name, int ndim, const int64_t *shape, uint8_t *data, tt_err *err) {
    return add_extra(ctx, name, ndim, shape, data, ST_U8, err);
}

char *merge_params_json(const merge_ctx *ctx) {
    json_t *params = json_object();
    for (int i = 0; i < ctx->params.n; i++) json_object_set_new(params, ctx->params.key[i], json_string(ctx->params.value[i]));
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)ctx->seed);
    json_object_set_new(params, "seed", json_string(seed));
    /* bf16 evaluations and adaptations are another configuration of the method (f32 rows stay as they were) */
    if (ctx->d && ctx->d->precision == DNN_BF16) json_object_set_new(params, "precision", json_string("bf16"));
    char *text = json_dumps(params, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(params);
    return text;
}

int merge_ctx_save(const merge_ctx *ctx, const merge_method *m, const char *path, tt_err *err) {
    char *ptext = merge_params_json(ctx);
    if (!ptext) return tt_fail(err, TT_ENOMEM, "out of memory");
    ckpt_meta meta[] = {{"ttmerge.method", m->name},
                        {"ttmerge.params", ptext},
                        {"ttmerge.record", ctx->record_json ? ctx->record_json : "{}"},
                        {"ttmerge.suite", ctx->s->name},
                        {"ttmerge.finetune_mode", ctx->s->mode}};
    int rc = ckpt_check_finite(&ctx->out, path, err);
    if (!rc && ctx->out_format == CM_TTMERGE) {
        rc = ckpt_save_vit(&ctx->out, path, ctx->extra, ctx->n_extra, meta, 5, err);
    } else if (!rc && ctx->n_extra) {
        rc = tt_fail(err, TT_EINPUT, "%s: method %s stores %d task-specific tensors (%s, ...), which only the ttmerge "
                     "format holds (--format ttmerge)", path, m->name, ctx->n_extra, ctx->extra[0].name);
    } else if (!rc) {
        ckpt_vit as_pre = ctx->out; /* the merged values, written as θ0 came: its projection and config.json */
        as_pre.has_projection = ctx->pre.has_projection;
        as_pre.hf_config = ctx->pre.hf_config;
        rc = ckpt_save_vit_as(&as_pre, ctx->out_format, path, 0, meta, 5, err);
    }
    free(ptext);
    return rc;
}

/* ---- validation / test evaluation ---- */

int merge_eval_init(merge_eval *ev, merge_ctx *ctx, tt_err *err) {
    memset(ev, 0, sizeof *ev);
    size_t most = 0;
    for (int t = 0; t < ctx->K; t++) {
        const suite_task_info *ti = &ctx->s->tasks[t];
        size_t a = (size_t)ti->val.n * ti->classes, b = (size_t)ti->test.n * ti->classes;
        most = a > most ? a : most;
        most = b > most ? b : most;
    }
    int classes[MERGE_MAX_TASKS];
    for (int t = 0; t < ctx->K; t++) classes[t] = ctx->s->tasks[t].classes;
    ev->logits = tt_calloc_aligned(most, sizeof(float), err);
    /* every head planned here: evaluating later cannot fail (merge_eval_tasks asserts it) */
    if (!ev->logits || infer_init(&ev->ic, ctx->d, &ctx->s->cfg, INFER_BATCH, err) ||
        infer_plan_heads(&ev->ic, classes, ctx->K, err) ||
        vit_weights_bind(&ev->w, &ctx->out.lay, ctx->out.params, NULL, err) ||
        ckpt_task_state_init(&ev->st, &ctx->out, ctx->extra, ctx->n_extra, err)) {
        merge_eval_free(ev);
        return -1;
    }
    return 0;
}

void merge_eval_free(merge_eval *ev) {
    infer_free(&ev->ic);
    vit_weights_free(&ev->w);
    ckpt_task_state_free(&ev->st);
    free(ev->logits);
    memset(ev, 0, sizeof *ev);
}

double merge_eval_task(merge_eval *ev, merge_ctx *ctx, int t, bool test) {
    const suite *s = ctx->s;
    const suite_task_info *ti = &s->tasks[t];
    const ds_images *im = test ? &ti->test : &ti->val;
    const float *W = ti->head.W, *b = ti->head.b;
    bool swapped = ckpt_task_apply(&ctx->out, ctx->extra, ctx->n_extra, ti->name, &ev->w, &W, &b, &ev->st) > 0;
    tt_err e;
    ev->ic.feature_hook = ev->st.down ? ckpt_surgery_hook : NULL;
    ev->ic.feature_user = &ev->st;
    /* every head was planned by merge_eval_init's callers before; a failure here is a bug */
    /* sharded over the MPI ranks when there are several (core/par.h): the same accuracy */
    double acc;
    TT_ASSERT(infer_accuracy_sharded(&ev->ic, &ev->w, W, b, ti->classes, im->pixels, im->labels, im->n, &s->norm,
                                     ev->logits, &acc, &e) == 0);
    ev->ic.feature_hook = NULL;
    if (swapped) vit_weights_repoint(&ev->w, &ctx->out.lay, ctx->out.params, NULL);
    return acc;
}

double merge_eval_tasks(merge_eval *ev, merge_ctx *ctx, bool test, double *acc, double *norm) {
    double sum = 0, sum_norm = 0;
    for (int t = 0; t < ctx->K; t++) {
        const suite_task_info *ti = &ctx->s->tasks[t];
        double a = merge_eval_task(ev, ctx, t, test);
        double ft = test ? ti->finetuned_test : ti->finetuned_val;
        if (acc) acc[t] = a;
        sum += a;
        sum_norm += ft > 0 ? 100.0 * a / ft : 0;
    }
    if (norm) *norm = sum_norm / ctx->K;
    return sum / ctx->K;
}
