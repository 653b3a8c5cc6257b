/* tsv_m.c — TSV-M, Task Singular Vectors Merge (Gargiulo et al., CVPR 2025), as the official
 * compute_and_sum_svd_mem_reduction (AntoAndGar/task_singular_vectors, src/utils/TSVM_utils.py):
 *
 * every 2-D tensor (svd_tensor_selected): each task's thin SVD τ_t = U_t S_t V_tᵀ keeps its top
 * r = int(k · (1/K)) components (k = min(m, n)), placed side by side in task order into k slots
 * (U_cat [m×k], s_cat [k], V_cat [k×n]; any k − K·r trailing slots stay 0); each stack is replaced
 * by its polar factor (A·B from its own SVD), and τ_M = P_U · diag(s_cat) · P_V.
 * every other tensor: the running mean of τ_t.
 * θ = θ0 + α · τ_M, α on the official grid {0.1, ..., 3.0} by validation (the TSV evaluation code),
 * or given (`--set alpha=1`, FusionBench's default).
 *
 * float64 SVDs (svd.h says why; the official code runs them in float32 on a GPU). A task vector that is exactly 0 on a tensor contributes
 * U = I[:, :r] with s = 0, as LAPACK's SVD of a zero matrix: those columns still enter the polar
 * factor of U_cat, as they do in the official code. */
#include "baselines/methods.h"

#include <jansson.h>
#include <string.h>

#include "baselines/merge_util.h"
#include "baselines/search.h"
#include "baselines/svd.h"
#include "core/arena.h"

/* {"k=64": r, ...}: the per-task rank of each distinct matrix size k. */
static json_t *ranks_json(const merge_ctx *ctx) {
    json_t *o = json_object();
    for (int l = 0; l < ctx->pre.lay.count; l++) {
        const vit_tensor_info *t = &ctx->pre.lay.t[l];
        if (!svd_tensor_selected(t)) continue;
        int k = (int)(t->shape[0] < t->shape[1] ? t->shape[0] : t->shape[1]);
        char key[32];
        snprintf(key, sizeof key, "k=%d", k);
        json_object_set_new(o, key, json_integer(svd_rank_fraction(k, ctx->K)));
    }
    return o;
}

static int tsvm_run(merge_ctx *ctx, tt_err *err) {
    float *delta = svd_merged_delta(ctx, tsvm_layer, NULL, err);
    if (!delta) {
        return -1;
    }
    char frag[4096];
    double alpha;
    int rc = search_lambda(ctx, delta, "alpha", svd_alpha_grid, 30, &alpha, frag, sizeof frag, err);
    free(delta);
    if (rc) return -1;
    json_t *rec = json_object();
    json_object_set_new(rec, "rank_per_task", ranks_json(ctx));
    return mu_record_finish(ctx, rec, frag, err);
}

static const merge_param tsvm_params[] = {
    {"alpha", "auto", "scaling of the merged task vector; auto = grid {0.1..3.0} on validation (official)"},
    {0}};

const merge_method method_tsv_m = {
    .name = "tsv-m",
    .summary = "TSV-M: per layer, each task's top 1/K singular vectors, orthogonalised (polar), theta0 + alpha * merged",
    .needs = MERGE_NEEDS_VAL,
    .params = tsvm_params,
    .run = tsvm_run,
};
