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

int tsvm_layer(const float *const *tau, int K, int m, int n, float *out, const void *user, tt_err *err) {
    (void)user;
    const int k = m < n ? m : n, r = svd_rank_fraction(k, K);
    const size_t mn = (size_t)m * n;
    memset(out, 0, mn * sizeof *out);
    if (r == 0) return 0; /* every slot empty: P_U · 0 · P_V */
    double *a = svd_alloc(mn, err);
    double *u = a ? svd_alloc((size_t)m * k, err) : NULL;
    double *s = u ? svd_alloc((size_t)k, err) : NULL;
    double *vt = s ? svd_alloc((size_t)k * n, err) : NULL;
    double *ucat = vt ? svd_alloc((size_t)m * k, err) : NULL;
    double *scat = ucat ? svd_alloc((size_t)k, err) : NULL;
    double *vcat = scat ? svd_alloc((size_t)k * n, err) : NULL;
    int rc = -1;
    if (!vcat) goto done;
    bool any = false;
    for (int t = 0; t < K; t++) {
        svd_widen(tau[t], mn, a);
        if (svd_top(a, m, n, r, u, s, vt, err)) goto done; /* only the top r are kept */
        for (int i = 0; i < m; i++) memcpy(ucat + (size_t)i * k + (size_t)t * r, u + (size_t)i * r, r * sizeof *u);
        memcpy(scat + (size_t)t * r, s, r * sizeof *s);
        memcpy(vcat + (size_t)t * r * n, vt, (size_t)r * n * sizeof *vt);
        for (int j = 0; j < r; j++) any |= s[j] != 0;
    }
    if (any) {
        /* u and vt are free: they have the shapes of the two polar factors */
        if (svd_polar(ucat, m, k, u, err) || svd_polar(vcat, k, n, vt, err) ||
            svd_reconstruct(u, scat, vt, m, k, n, out, err))
            goto done;
    }
    rc = 0;
done:
    free(a);
    free(u);
    free(s);
    free(vt);
    free(ucat);
    free(scat);
    free(vcat);
    return rc;
}

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
