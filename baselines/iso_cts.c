/* iso_cts.c — Iso-CTS, isotropic merging in common and task-specific subspaces (Marczak et al.,
 * ICML 2025), as the official iso_cts (danielm1405/iso-merging src/utils/iso.py; FusionBench's
 * iso_utils.py is the same). Per 2-D tensor (svd_tensor_selected), k = min(m, n), f = common_space_fraction:
 *
 *   c0 = int(k·f); c = k − round((k − c0)/K)·K (Python's round: half to even); s = int((k − c)/K)
 *   U S Vᵀ = svd(Σ_t τ_t); the common subspace U_c = U[:, :c], S[:c], Vᵀ[:c]
 *   per task t: R_t = τ_t − U_c (U_cᵀ τ_t), its top s components into slots [t·s, (t+1)·s)
 *   the common block into slots [K·s, K·s + c) (all k slots are filled)
 *   U_cat, V_cat replaced by their polar factors; τ = mean(all k slot values) · P_U · P_V.
 * Every other tensor: the running mean of τ_t. θ = θ0 + α · τ, α on {0.1, ..., 3.0} by validation
 * (the official evaluation: the same grid, with early stopping after 3 points without gain; here the
 * whole grid), or given. The official code forms (U_c U_cᵀ) τ_t, an m×m product; U_c (U_cᵀ τ_t) is
 * the same matrix at a fraction of the cost.
 *
 * float64 SVDs (svd.h says why; the official code runs them in float32 on a GPU). */
#include "baselines/methods.h"

#include <jansson.h>
#include <math.h>
#include <string.h>

#include "baselines/merge_util.h"
#include "baselines/search.h"
#include "baselines/svd.h"
#include "core/arena.h"

static int isocts_run(merge_ctx *ctx, tt_err *err) {
    double fraction;
    if (mu_param_range(ctx, "common_space_fraction", 0, 1, &fraction, err)) return -1;
    /* the subspace sizes of every matrix size, checked before any SVD */
    json_t *dims = json_object();
    for (int l = 0; l < ctx->pre.lay.count; l++) {
        const vit_tensor_info *t = &ctx->pre.lay.t[l];
        if (!svd_tensor_selected(t)) continue;
        int k = (int)(t->shape[0] < t->shape[1] ? t->shape[0] : t->shape[1]), c, s;
        if (isocts_dims(k, ctx->K, fraction, &c, &s)) {
            json_decref(dims);
            return tt_fail(err, TT_EINPUT,
                           "parameter common_space_fraction=%g leaves a negative common subspace for %s (k=%d, K=%d)",
                           fraction, t->name, k, ctx->K);
        }
        char key[32];
        snprintf(key, sizeof key, "k=%d", k);
        json_object_set_new(dims, key, json_pack("{s:i,s:i}", "common", c, "per_task", s));
    }
    float *delta = svd_merged_delta(ctx, isocts_layer, &fraction, err);
    if (!delta) {
        json_decref(dims);
        return -1;
    }
    char frag[4096];
    double alpha;
    int rc = search_lambda(ctx, delta, "alpha", svd_alpha_grid, 30, &alpha, frag, sizeof frag, err);
    free(delta);
    if (rc) {
        json_decref(dims);
        return -1;
    }
    json_t *rec = json_object();
    json_object_set_new(rec, "common_space_fraction", json_real(fraction));
    json_object_set_new(rec, "subspaces", dims);
    return mu_record_finish(ctx, rec, frag, err);
}

static const merge_param isocts_params[] = {
    {"common_space_fraction", "0.8", "fraction of each layer's rank given to the common subspace (official 0.8)"},
    {"alpha", "auto", "scaling of the merged task vector; auto = grid {0.1..3.0} on validation (official)"},
    {0}};

const merge_method method_iso_cts = {
    .name = "iso-cts",
    .summary = "Iso-CTS: common + task-specific singular subspaces with a flat spectrum; theta0 + alpha * merged",
    .needs = MERGE_NEEDS_VAL,
    .params = isocts_params,
    .run = isocts_run,
};
