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

int isocts_dims(int k, int K, double fraction, int *common, int *per_task) {
    int c0 = (int)((double)k * fraction);
    int tot = (int)rint((double)(k - c0) / (double)K) * K;
    int c = k - tot;
    if (c < 0) return -1;
    *common = c;
    *per_task = (int)((double)(k - c) / (double)K);
    return 0;
}

int isocts_layer(const float *const *tau, int K, int m, int n, float *out, const void *user, tt_err *err) {
    const double fraction = *(const double *)user;
    const int k = m < n ? m : n;
    const size_t mn = (size_t)m * n;
    int c, s_t;
    if (isocts_dims(k, K, fraction, &c, &s_t))
        return tt_fail(err, TT_EINPUT, "common_space_fraction=%g leaves a negative common subspace for k=%d, K=%d",
                       fraction, k, K);
    double *a = svd_alloc(mn, err);
    double *w = a ? svd_alloc(mn, err) : NULL;
    double *u = w ? svd_alloc((size_t)m * k, err) : NULL;
    double *s = u ? svd_alloc((size_t)k, err) : NULL;
    double *vt = s ? svd_alloc((size_t)k * n, err) : NULL;
    double *ucat = vt ? svd_alloc((size_t)m * k, err) : NULL;
    double *scat = ucat ? svd_alloc((size_t)k, err) : NULL;
    double *vcat = scat ? svd_alloc((size_t)k * n, err) : NULL;
    double *uc = vcat ? svd_alloc((size_t)m * c, err) : NULL;
    double *proj = uc ? svd_alloc((size_t)c * n, err) : NULL;
    int rc = -1;
    if (!proj) goto done;
    /* the common subspace, from the SVD of the sum */
    for (int t = 0; t < K; t++)
        for (size_t i = 0; i < mn; i++) a[i] += tau[t][i];
    if (svd_thin(a, m, n, u, s, vt, err)) goto done;
    const size_t cb = (size_t)K * s_t; /* the common block's first slot */
    for (int i = 0; i < m; i++) {
        memcpy(uc + (size_t)i * c, u + (size_t)i * k, c * sizeof *u);
        memcpy(ucat + (size_t)i * k + cb, u + (size_t)i * k, c * sizeof *u);
    }
    memcpy(scat + cb, s, c * sizeof *s);
    memcpy(vcat + cb * n, vt, (size_t)c * n * sizeof *vt);
    /* each task's own directions, outside the common left subspace */
    for (int t = 0; t < K; t++) {
        svd_widen(tau[t], mn, w);
        memcpy(a, w, mn * sizeof *a);
        if (c > 0) {
            svd_gemm(true, false, c, n, m, 1.0, uc, w, 0.0, proj); /* U_cᵀ τ_t */
            svd_gemm(false, false, m, n, c, -1.0, uc, proj, 1.0, a); /* τ_t − U_c (U_cᵀ τ_t) */
        }
        if (s_t == 0) continue;
        if (svd_top(a, m, n, s_t, u, s, vt, err)) goto done; /* only the top s_t are kept */
        for (int i = 0; i < m; i++)
            memcpy(ucat + (size_t)i * k + (size_t)t * s_t, u + (size_t)i * s_t, s_t * sizeof *u);
        memcpy(scat + (size_t)t * s_t, s, s_t * sizeof *s);
        memcpy(vcat + (size_t)t * s_t * n, vt, (size_t)s_t * n * sizeof *vt);
    }
    double sum = 0;
    for (int j = 0; j < k; j++) sum += scat[j];
    if (svd_polar(ucat, m, k, u, err) || svd_polar(vcat, k, n, vt, err)) goto done;
    for (int j = 0; j < k; j++) s[j] = sum / k;
    rc = svd_reconstruct(u, s, vt, m, k, n, out, err);
done:
    free(a);
    free(w);
    free(u);
    free(s);
    free(vt);
    free(ucat);
    free(scat);
    free(vcat);
    free(uc);
    free(proj);
    return rc;
}

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
