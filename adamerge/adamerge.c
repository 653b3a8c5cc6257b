/* adamerge.c — AdaMerging (Yang et al., ICLR 2024; EnnengYang/AdaMerging):
 *   adamerging-task   θ = θ0 + Σ_k λ_k τ_k          (main_task_wise_adamerging.py)
 *   adamerging        θ_l = θ0_l + Σ_k λ_k,l τ_k,l  (main_layer_wise_adamerging.py; l = every tensor)
 * λ learned by minimising the entropy of each task's predictions on its unlabeled test inputs.
 * Official choices followed: λ init 0.3 ("prior"), Adam lr 1e-3, betas (0.9, 0.999), no weight
 * decay, 500 steps, λ clamped to [0,1] when merging (the raw value is the Adam parameter), and
 * one step = for every task two batches of 16 test images, loss = Σ over tasks and batches of
 * the batch-mean entropy. We run all task batches of a step as ONE concatenated forward/backward
 * through the merged model (same gradient, bigger matmuls), or in chunks of `micro` images to bound
 * the activations kept for the backward. Engine: adamerge/adapt.c.
 *   adamerging++      layer-wise on TIES-processed task vectors (main_layer_wise_adamergingpp.py):
 *                     each τ_k keeps its top-k% magnitudes over the whole model (k = 20) where its
 *                     sign agrees with the elected sign — the official ties_merging_split's
 *                     "selected entries" — and the coefficients are learned on those.
 */
#include "adamerge/adamerge.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "baselines/ties.h"

static const merge_param ada_params[] = {ADA_PARAMS, {0}};

/* Read the shared parameters into adapt options. */
int adamerge_opts(merge_ctx *ctx, adapt_opts *o, tt_err *err) {
    double lam, lr, diverge;
    long steps, batch, accum, micro, every;
    if (adapt_diverge_param(ctx, &diverge, err) || merge_param_double(ctx, "lambda", &lam, err) ||
        merge_param_double(ctx, "lr", &lr, err) ||
        merge_param_int(ctx, "steps", &steps, err) || merge_param_int(ctx, "batch", &batch, err) ||
        merge_param_int(ctx, "accum", &accum, err) || merge_param_int(ctx, "micro", &micro, err) ||
        merge_param_int(ctx, "eval_every", &every, err))
        return -1;
    if (steps < 0 || steps > 1000000 || batch < 1 || batch > 1024 || accum < 1 || accum > 64 || micro < 0 ||
        micro > 65536 || !(lr > 0) || every < 0)
        return tt_fail(err, TT_EINPUT, "steps in [0,1e6], batch in [1,1024], accum in [1,64], micro in [0,65536], "
                       "lr > 0, eval_every >= 0");
    *o = (adapt_opts){.lambda_init = (float)lam, .lr = (float)lr, .steps = (int)steps, .batch = (int)batch,
                      .accum = (int)accum, .micro = (int)micro, .eval_every = (int)every, .loss = ADAPT_ENTROPY,
                      .diverge_factor = (float)diverge};
    return 0;
}

/* Run the engine on tv, then store λ, the curve and the record. Shared with tinting. */
int adamerge_finish(merge_ctx *ctx, const float *tv, const adapt_opts *o, adapt_result *r, tt_err *err) {
    if (adapt_run(ctx, tv, o, r, err)) return -1;
    if (r->stop.stopped) { /* not an error: the checkpoint keeps the best coefficients; say so */
        char msg[512];
        adapt_stop_message(r, msg, sizeof msg);
        fprintf(stderr, "ttmerge: warning: %s\n", msg);
    }
    float *lam = malloc((size_t)ctx->K * r->n_coef * sizeof(float));
    if (!lam) return tt_fail(err, TT_ENOMEM, "out of memory");
    memcpy(lam, r->lambda, (size_t)ctx->K * r->n_coef * sizeof(float));
    int64_t shape[2] = {ctx->K, r->n_coef};
    if (merge_add_extra(ctx, "ttmerge.lambda", 2, shape, lam, err)) return -1;
    if (ctx->curve_csv[0] && adapt_write_curve(r, ctx->curve_csv, err)) return -1;
    char *rec = adapt_record_json(ctx, r);
    if (!rec) return tt_fail(err, TT_ENOMEM, "out of memory");
    int rc = merge_record(ctx, rec, err);
    free(rec);
    return rc;
}

static int ada_run(merge_ctx *ctx, bool layerwise, tt_err *err) {
    adapt_opts o;
    if (adamerge_opts(ctx, &o, err)) return -1;
    o.layerwise = layerwise;
    float *tv = adapt_task_vectors(ctx, err);
    if (!tv) return -1;
    adapt_result r;
    int rc = adamerge_finish(ctx, tv, &o, &r, err);
    adapt_result_free(&r);
    free(tv);
    return rc;
}

static int ada_pp_run(merge_ctx *ctx, tt_err *err) {
    adapt_opts o;
    double topk;
    if (adamerge_opts(ctx, &o, err) || merge_param_double(ctx, "topk", &topk, err)) return -1;
    if (!(topk > 0 && topk <= 100)) return tt_fail(err, TT_EINPUT, "topk=%g: expected a percentage in (0, 100]", topk);
    o.layerwise = true;
    float *tv = adapt_task_vectors(ctx, err);
    if (!tv) return -1;
    adapt_result r = {0};
    int rc = ties_split_in_place(&ctx->pre.lay, ctx->K, tv, topk, err);
    if (!rc) rc = adamerge_finish(ctx, tv, &o, &r, err);
    adapt_result_free(&r);
    free(tv);
    return rc;
}

static int ada_task_run(merge_ctx *ctx, tt_err *err) { return ada_run(ctx, false, err); }
static int ada_layer_run(merge_ctx *ctx, tt_err *err) { return ada_run(ctx, true, err); }

const merge_method method_adamerging_task = {
    .name = "adamerging-task",
    .summary = "AdaMerging, task-wise: one coefficient per task learned by entropy minimisation",
    .needs = MERGE_NEEDS_UNLABELED,
    .params = ada_params,
    .run = ada_task_run,
};

static const merge_param ada_pp_params[] = {
    ADA_PARAMS,
    {"topk", "20", "TIES: percent of each task vector's entries kept (by magnitude, whole model)"},
    {0}};

const merge_method method_adamerging_pp = {
    .name = "adamerging++",
    .summary = "AdaMerging++, layer-wise on TIES-trimmed, sign-elected task vectors",
    .needs = MERGE_NEEDS_UNLABELED,
    .params = ada_pp_params,
    .run = ada_pp_run,
};

const merge_method method_adamerging = {
    .name = "adamerging",
    .summary = "AdaMerging, layer-wise: one coefficient per task and tensor learned by entropy minimisation",
    .needs = MERGE_NEEDS_UNLABELED,
    .params = ada_params,
    .run = ada_layer_run,
};
