/* iso_c.c — Iso-C, isotropic merging in the common subspace (Marczak et al., ICML 2025), as the
 * official iso_c (danielm1405/iso-merging src/utils/iso.py; FusionBench's iso_utils.py is the same):
 *
 * every 2-D tensor (svd_tensor_selected): M = Σ_t τ_t (the code forms it as (Σ_t τ_t / K) · K),
 * M = U S Vᵀ, τ = mean(S) · U Vᵀ (the mean over all min(m, n) singular values);
 * every other tensor: the mean of τ_t as Σ_t τ_t / K in float32, as the code.
 * θ = θ0 + α · τ, α on {0.1, ..., 3.0} by validation (the official evaluation searches this grid,
 * with early stopping after 3 points without gain; here the whole grid is evaluated), or given
 * (`--set alpha=1.5`, FusionBench's documented value).
 *
 * float64 SVD (svd.h says why; the official code runs it in float32 on a GPU). When M is rank-deficient, U Vᵀ on its null space is not
 * unique (any implementation's choice); real task vectors are of full rank. */
#include "baselines/methods.h"

#include <jansson.h>
#include <string.h>

#include "baselines/merge_util.h"
#include "baselines/search.h"
#include "baselines/svd.h"
#include "core/arena.h"

/* out = Σ_t tau[t] / K (Python's sum over the list: 0 + τ_0 + τ_1 + ..., then the division). */
static void task_mean(const float *const *tau, int K, size_t n, float *out) {
    memset(out, 0, n * sizeof *out);
    for (int t = 0; t < K; t++)
        for (size_t i = 0; i < n; i++) out[i] += tau[t][i];
    for (size_t i = 0; i < n; i++) out[i] /= (float)K;
}

static int isoc_run(merge_ctx *ctx, tt_err *err) {
    float *delta = svd_merged_delta(ctx, isoc_layer, NULL, err);
    if (!delta) {
        return -1;
    }
    /* the official iso_c averages the other tensors as Σ/K, not as a running mean */
    float *scratch = tt_calloc_aligned((size_t)ctx->K * mu_max_numel(ctx), sizeof(float), err);
    if (!scratch) {
        free(delta);
        return -1;
    }
    size_t most = mu_max_numel(ctx);
    for (int l = 0; l < ctx->pre.lay.count; l++) {
        const vit_tensor_info *t = &ctx->pre.lay.t[l];
        if (svd_tensor_selected(t)) continue;
        const float *views[MERGE_MAX_TASKS];
        for (int k = 0; k < ctx->K; k++) {
            merge_task_vector(ctx, k, l, scratch + (size_t)k * most);
            views[k] = scratch + (size_t)k * most;
        }
        task_mean(views, ctx->K, t->numel, delta + t->offset);
    }
    free(scratch);
    char frag[4096];
    double alpha;
    int rc = search_lambda(ctx, delta, "alpha", svd_alpha_grid, 30, &alpha, frag, sizeof frag, err);
    free(delta);
    if (rc) return -1;
    return mu_record_finish(ctx, json_object(), frag, err);
}

static const merge_param isoc_params[] = {
    {"alpha", "auto", "scaling of the merged task vector; auto = grid {0.1..3.0} on validation (official)"},
    {0}};

const merge_method method_iso_c = {
    .name = "iso-c",
    .summary = "Iso-C: per layer, the SVD of the summed task vectors with a flat (mean) spectrum; theta0 + alpha * merged",
    .needs = MERGE_NEEDS_VAL,
    .params = isoc_params,
    .run = isoc_run,
};
