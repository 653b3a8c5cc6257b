/* ta.c — Task Arithmetic (Ilharco et al., ICLR 2023): θ = θ0 + λ Σ_k τ_k, one λ for all
 * tasks and tensors, chosen on the validation split from {0.1, ..., 1.0} (tall_masks' grid and
 * criterion, average normalised accuracy) unless given (`--set lambda=0.3`, AdaMerging's default). */
#include "baselines/methods.h"

#include <stdio.h>

#include "baselines/merge_util.h"
#include "baselines/search.h"
#include "core/arena.h"

static int ta_run(merge_ctx *ctx, tt_err *err) {
    float *delta = tt_calloc_aligned(ctx->pre.lay.total, sizeof(float), err);
    if (!delta || mu_sum_task_vectors(ctx, NULL, delta, err)) {
        free(delta);
        return -1;
    }
    char rec[2048];
    double lam;
    int rc = search_lambda(ctx, delta, "lambda", search_grid_default, 10, &lam, rec, sizeof rec, err);
    free(delta);
    if (rc) return -1;
    char json[2100];
    snprintf(json, sizeof json, "{%s}", rec);
    return merge_record(ctx, json, err);
}

static const merge_param ta_params[] = {
    {"lambda", "auto", "scaling coefficient; auto = grid {0.1..1.0} on validation (normalised accuracy)"},
    {0}};

const merge_method method_ta = {
    .name = "ta",
    .summary = "Task Arithmetic: theta0 + lambda * sum of task vectors",
    .needs = MERGE_NEEDS_VAL,
    .params = ta_params,
    .run = ta_run,
};

/* zeroshot: the pretrained model itself (with each task's zero-shot head). */
static int zeroshot_run(merge_ctx *ctx, tt_err *err) { return merge_record(ctx, "{}", err); }

const merge_method method_zeroshot = {
    .name = "zeroshot",
    .summary = "the pretrained model with each task's zero-shot (probe) head",
    .needs = MERGE_NEEDS_NOTHING,
    .params = (const merge_param[]){{0}},
    .run = zeroshot_run,
};
