/* merge_util.c — see merge_util.h. */
#include "baselines/merge_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "baselines/kernels.h"
#include "baselines/methods.h"
#include "baselines/search.h"
#include "core/arena.h"
#include "core/ops.h"

const double mu_grid_ties_mean[15] = {0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5};

void mu_task_vector(const merge_ctx *ctx, const mu_tv_source *src, int k, int l, float *out) {
    if (src && src->fn) src->fn(ctx, k, l, out, src->user);
    else merge_task_vector(ctx, k, l, out);
}

size_t mu_max_numel(const merge_ctx *ctx) {
    size_t most = 0;
    for (int l = 0; l < ctx->pre.lay.count; l++)
        if (ctx->pre.lay.t[l].numel > most) most = ctx->pre.lay.t[l].numel;
    return most;
}

uint64_t mu_param_count(const merge_ctx *ctx) {
    uint64_t d = 0;
    for (int l = 0; l < ctx->pre.lay.count; l++) d += ctx->pre.lay.t[l].numel;
    return d;
}

bool mu_tv_need_scratch(const merge_ctx *ctx, const mu_tv_source *src) {
    if (src && src->fn) return true;
    for (int k = 0; k < ctx->K; k++)
        for (int l = 0; l < ctx->pre.lay.count; l++)
            if (!ctx->ft_view[k][l]) return true;
    return false;
}

void mu_tv_views(const merge_ctx *ctx, const mu_tv_source *src, int l, float *scratch, const float **a,
                 const float **b) {
    bool views = !(src && src->fn);
    for (int k = 0; k < ctx->K && views; k++) views = ctx->ft_view[k][l] != NULL;
    if (views) {
        for (int k = 0; k < ctx->K; k++) a[k] = ctx->ft_view[k][l];
        *b = ctx->pre.params + ctx->pre.lay.t[l].offset;
        return;
    }
    TT_ASSERT(scratch != NULL); /* the caller asked mu_tv_need_scratch */
    size_t most = mu_max_numel(ctx);
    for (int k = 0; k < ctx->K; k++) {
        float *out = scratch + (size_t)k * most;
        mu_task_vector(ctx, src, k, l, out);
        a[k] = out;
    }
    *b = NULL;
}

/* The engine's input over the suite's layout: tensor l's rows as mu_tv_views gives them. */
typedef struct tv_input {
    const merge_ctx *ctx;
    const mu_tv_source *src;
    float *scratch;
} tv_input;

static void tv_input_views(void *user, int l, const float **model, const float **base) {
    const tv_input *in = user;
    mu_tv_views(in->ctx, in->src, l, in->scratch, model, base);
}

int mu_merge_tau(merge_ctx *ctx, const mu_tv_source *src, am_config *c, float *delta, am_tau_result *res,
                 tt_err *err) {
    const vit_layout *lay = &ctx->pre.lay;
    size_t L = (size_t)(lay->count ? lay->count : 1);
    tv_input in = {ctx, src, NULL};
    const char **name = malloc(L * sizeof *name);
    size_t *numel = malloc(L * sizeof *numel), *offset = malloc(L * sizeof *offset);
    int rc = -1;
    if (!name || !numel || !offset) {
        tt_fail(err, TT_ENOMEM, "out of memory");
        goto done;
    }
    if (mu_tv_need_scratch(ctx, src) &&
        !(in.scratch = tt_calloc_aligned((size_t)ctx->K * mu_max_numel(ctx), sizeof(float), err)))
        goto done;
    for (int l = 0; l < lay->count; l++)
        name[l] = lay->t[l].name, numel[l] = lay->t[l].numel, offset[l] = lay->t[l].offset;
    c->K = ctx->K;
    c->progress = ctx->progress;
    am_mem_input mem = {lay->count, name, numel, offset, tv_input_views, &in};
    rc = am_merge_tau(c, &mem, delta, res, err);
done:
    free(in.scratch);
    free(name);
    free(numel);
    free(offset);
    return rc;
}

int mu_sum_task_vectors(merge_ctx *ctx, const mu_tv_source *src, float *delta, tt_err *err) {
    am_config *c = malloc(sizeof *c); /* large: the paths of AM_MAX_MODELS models */
    if (!c) return tt_fail(err, TT_ENOMEM, "out of memory");
    am_config_init(c);
    c->method = AM_TA;
    int rc = mu_merge_tau(ctx, src, c, delta, NULL, err);
    free(c);
    return rc;
}

int mu_param_range(const merge_ctx *ctx, const char *name, double lo, double hi, double *out, tt_err *err) {
    if (merge_param_double(ctx, name, out, err)) return -1;
    if (*out < lo || *out > hi)
        return tt_fail(err, TT_EINPUT, "parameter %s=%s is out of range [%g, %g]", name, merge_param_str(ctx, name),
                       lo, hi);
    return 0;
}

int mu_param_int_range(const merge_ctx *ctx, const char *name, long lo, long hi, int *out, tt_err *err) {
    long v;
    if (merge_param_int(ctx, name, &v, err)) return -1;
    if (v < lo || v > hi)
        return tt_fail(err, TT_EINPUT, "parameter %s=%ld is out of range [%ld, %ld]", name, v, lo, hi);
    *out = (int)v;
    return 0;
}

int mu_param_choice(const merge_ctx *ctx, const char *name, const char *const *words, int n, int *idx, tt_err *err) {
    const char *v = merge_param_str(ctx, name);
    TT_ASSERT(v != NULL);
    for (int i = 0; i < n; i++)
        if (!strcmp(v, words[i])) {
            *idx = i;
            return 0;
        }
    char list[256];
    size_t used = 0;
    for (int i = 0; i < n && used < sizeof list; i++)
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? "|" : "", words[i]);
    return tt_fail(err, TT_EINPUT, "parameter %s=%s: expected %s", name, v, list);
}

json_t *mu_json_per_task(const merge_ctx *ctx, const double *v) {
    json_t *o = json_object();
    for (int t = 0; t < ctx->K; t++) json_object_set_new(o, ctx->s->tasks[t].name, json_real(v[t]));
    return o;
}

json_t *mu_json_per_task_int(const merge_ctx *ctx, const int *v) {
    json_t *o = json_object();
    for (int t = 0; t < ctx->K; t++) json_object_set_new(o, ctx->s->tasks[t].name, json_integer(v[t]));
    return o;
}

int mu_record_finish(merge_ctx *ctx, json_t *rec, const char *search_fragment, tt_err *err) {
    if (search_fragment && *search_fragment) {
        size_t n = strlen(search_fragment) + 3;
        char *wrapped = malloc(n);
        json_t *frag = NULL;
        json_error_t je = {0};
        if (wrapped) {
            snprintf(wrapped, n, "{%s}", search_fragment);
            frag = json_loads(wrapped, 0, &je);
            free(wrapped);
        }
        if (!frag) {
            json_decref(rec);
            return tt_fail(err, TT_EINTERNAL, "record fragment is not JSON: %s", je.text);
        }
        json_object_update(rec, frag);
        json_decref(frag);
    }
    char *text = json_dumps(rec, JSON_COMPACT | JSON_REAL_PRECISION(6));
    json_decref(rec);
    int rc = text ? merge_record(ctx, text, err) : tt_fail(err, TT_ENOMEM, "out of memory");
    free(text);
    return rc;
}


int mu_train_sample(const merge_ctx *ctx, int t, int n, int batch, float **images, int **idx, int *got, tt_err *err) {
    const suite *s = ctx->s;
    const vit_config *cfg = &s->cfg;
    size_t img = (size_t)cfg->channels * cfg->image_size * cfg->image_size;
    ds_images train = {0};
    *images = NULL;
    if (idx) *idx = NULL;
    if (suite_load_train(s, t, &train, err)) return -1;
    int rc = -1, *perm = malloc(((size_t)train.n + 1) * sizeof(int));
    if (!perm) {
        tt_fail(err, TT_ENOMEM, "out of memory");
        goto done;
    }
    if (train.n == 0) {
        tt_fail(err, TT_EINPUT, "%s/data/%s: the train split is empty", s->dir, s->tasks[t].name);
        goto done;
    }
    /* Fisher-Yates with counter-based draws: the same permutation for every thread count */
    for (int i = 0; i < train.n; i++) perm[i] = i;
    for (int i = train.n - 1; i > 0; i--) {
        int j = (int)(kern_hash_u01(ctx->seed, 0x73616d70u, (uint64_t)t, (uint64_t)i) * (i + 1));
        int tmp = perm[i];
        perm[i] = perm[j], perm[j] = tmp;
    }
    *got = n < train.n ? n : train.n;
    size_t padded = ((size_t)*got + batch - 1) / batch * batch;
    if (!(*images = tt_calloc_aligned(padded * img, sizeof(float), err))) goto done;
    for (int j = 0; j < *got; j++)
        infer_normalize(*images + (size_t)j * img, train.pixels + (size_t)perm[j] * img, 1, 1, img, &s->norm);
    if (idx) {
        *idx = perm, perm = NULL;
    }
    rc = 0;
done:
    if (rc) free(*images), *images = NULL;
    free(perm);
    ds_images_free(&train);
    return rc;
}
