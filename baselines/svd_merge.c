/* svd_merge.c — the SVD merges' driver over a merge context (svd.h, "over a merge_ctx"): which
 * tensors, their task vectors from the context, the running mean of the others. Apart from svd.c,
 * which the any-model engine also calls, because it needs the suite's context. */
#include <stdlib.h>
#include <string.h>

#include "baselines/merge_util.h"
#include "baselines/svd.h"
#include "core/arena.h"

bool svd_tensor_selected(const vit_tensor_info *t) { return t->ndim == 2 && !strstr(t->name, "text_projection"); }

static void running_mean(const merge_ctx *ctx, int l, float *scratch, float *out) {
    size_t n = ctx->pre.lay.t[l].numel;
    merge_task_vector(ctx, 0, l, out);
    for (int t = 1; t < ctx->K; t++) {
        merge_task_vector(ctx, t, l, scratch);
        float div = (float)(t + 1);
        for (size_t i = 0; i < n; i++) out[i] += (scratch[i] - out[i]) / div;
    }
}

typedef struct ctx_src {
    const merge_ctx *ctx;
    const int *layer; /* job -> layout tensor */
    svd_ctx_get get;  /* NULL: the plain task vectors */
    const void *get_user;
} ctx_src;

static void ctx_tau(const void *src, int job, int t, float *out) {
    const ctx_src *c = src;
    if (c->get) c->get(c->ctx, c->layer[job], t, out, c->get_user);
    else merge_task_vector(c->ctx, t, c->layer[job], out);
}

int svd_merge_selected(merge_ctx *ctx, bool (*selected)(const vit_tensor_info *), svd_ctx_get get,
                       const void *get_user, svd_layer_fn fn, const void *user, float *delta, tt_err *err) {
    const vit_layout *lay = &ctx->pre.lay;
    svd_job *jobs = calloc((size_t)lay->count, sizeof *jobs);
    int *layer = calloc((size_t)lay->count, sizeof *layer);
    int n = 0, rc = -1;
    if (!jobs || !layer) {
        tt_fail(err, TT_ENOMEM, "out of memory");
        goto done;
    }
    for (int l = 0; l < lay->count; l++) {
        const vit_tensor_info *t = &lay->t[l];
        if (t->ndim != 2 || !selected(t)) continue;
        jobs[n] = (svd_job){(int)t->shape[0], (int)t->shape[1], delta + t->offset, t->name};
        layer[n++] = l;
    }
    ctx_src src = {ctx, layer, get, get_user};
    rc = svd_run_jobs(n, jobs, ctx->K, ctx_tau, &src, fn, user, ctx->progress, err);
done:
    free(jobs);
    free(layer);
    return rc;
}

int svd_merge_layers(merge_ctx *ctx, svd_layer_fn fn, const void *user, float *delta, tt_err *err) {
    const vit_layout *lay = &ctx->pre.lay;
    memset(delta, 0, lay->total * sizeof(float));
    svd_job *jobs = calloc((size_t)lay->count, sizeof *jobs);
    int *layer = calloc((size_t)lay->count, sizeof *layer);
    float *scratch = tt_calloc_aligned(mu_max_numel(ctx), sizeof(float), err);
    int n = 0, rc = -1;
    if (!scratch) goto done;
    if (!jobs || !layer) {
        tt_fail(err, TT_ENOMEM, "out of memory");
        goto done;
    }
    for (int l = 0; l < lay->count; l++) {
        const vit_tensor_info *t = &lay->t[l];
        if (!svd_tensor_selected(t)) continue;
        jobs[n] = (svd_job){(int)t->shape[0], (int)t->shape[1], delta + t->offset, t->name};
        layer[n++] = l;
    }
    ctx_src src = {ctx, layer, NULL, NULL};
    if (svd_run_jobs(n, jobs, ctx->K, ctx_tau, &src, fn, user, ctx->progress, err)) goto done;
    for (int l = 0; l < lay->count; l++)
        if (!svd_tensor_selected(&lay->t[l])) running_mean(ctx, l, scratch, delta + lay->t[l].offset);
    rc = 0;
done:
    free(jobs);
    free(layer);
    free(scratch);
    return rc;
}

float *svd_merged_delta(merge_ctx *ctx, svd_layer_fn fn, const void *user, tt_err *err) {
    float *delta = tt_calloc_aligned(ctx->pre.lay.total, sizeof(float), err);
    if (delta && svd_merge_layers(ctx, fn, user, delta, err)) {
        free(delta);
        return NULL;
    }
    return delta;
}
