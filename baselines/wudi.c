/* wudi.c — WUDI-Merging, "Whoever Started the Interference Should End It" (Cheng et al., ICML 2025),
 * as the official get_redundant_task_vector (nathanielyvo/WUDI-Merging, vit/wudi_main.py):
 *
 * the four weight matrices of every block (attn.in_proj_weight, attn.out_proj.weight, mlp.c_fc.weight,
 * mlp.c_proj.weight): the merged τ_m starts at Σ_t τ_t and takes `iters` steps of Adam (lr 1e-5,
 * betas (0.9, 0.999), eps 1e-8, no weight decay; torch.optim.Adam's update) on
 *     L(τ_m) = Σ_t ‖(τ_m − τ_t) τ_tᵀ‖_F² / ‖τ_t‖_F²        (a plain sum over tasks)
 * full batch, one optimiser per matrix; the result is the unconverged Adam iterate, not the minimiser.
 * every other tensor (biases, LayerNorms, embeddings, conv1, proj): no entry in the merged vector,
 * so it stays at θ0. θ = θ0 + 1 · τ_m (no scaling search).
 *
 * The gradient 2 Σ_t (τ_m − τ_t) τ_tᵀ τ_t / n_t is computed as 2 (D A + C) with D = τ_m − S (S = Σ_t τ_t,
 * the start) and the constants A = Σ_t τ_tᵀ τ_t / n_t [n×n], C = Σ_t (S − τ_t) τ_tᵀ τ_t / n_t [m×n] (the
 * gradient at the start): one m×n×n product per step instead of 2K. Forming it around the start keeps
 * an exactly-zero gradient exactly zero (K = 1: S − τ_1 = 0), as autograd's form does; where the
 * gradient is far below eps, Adam acts as plain gradient descent with step lr/eps = 1e3, and rounding
 * noise in τ_m A − B would grow into steps of lr. float64 throughout (the official code runs float32 on a GPU; svd.h says why float64: here
 * the known-answer test then agrees to ~1e-12 instead of sitting at float32's noise).
 * A task vector that is 0 on a matrix has n_t = 0 (0/0 in the official code, NaN): it is left out of
 * that matrix's loss. */
#include "baselines/methods.h"

#include <jansson.h>
#include <math.h>
#include <string.h>

#include "baselines/merge_util.h"
#include "baselines/search.h"
#include "baselines/svd.h"
#include "core/arena.h"

bool wudi_tensor_selected(const vit_tensor_info *t) {
    static const char *const keys[] = {"attn.in_proj_weight", "attn.out_proj.weight", "mlp.c_fc.weight",
                                       "mlp.c_proj.weight"};
    if (t->ndim != 2) return false;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (strstr(t->name, keys[i])) return true;
    return false;
}

int wudi_layer(const float *const *tau, int K, int m, int n, float *out, const void *user, tt_err *err) {
    const wudi_opts *o = user;
    const size_t mn = (size_t)m * n, nn = (size_t)n * n;
    double *sum = svd_alloc(mn, err);                /* S = Σ_t τ_t, the starting point */
    double *d = sum ? svd_alloc(mn, err) : NULL;     /* D = τ_m − S */
    double *a = d ? svd_alloc(nn, err) : NULL;       /* A */
    double *c = a ? svd_alloc(mn, err) : NULL;       /* C */
    double *g = c ? svd_alloc(mn, err) : NULL;       /* the gradient; S − τ_t in the set-up */
    double *w = g ? svd_alloc(mn, err) : NULL;       /* τ_t */
    double *gt = w ? svd_alloc(nn, err) : NULL;      /* τ_tᵀ τ_t */
    double *m1 = gt ? svd_alloc(mn, err) : NULL;     /* Adam's first moment */
    double *m2 = m1 ? svd_alloc(mn, err) : NULL;     /* and second */
    int rc = -1;
    if (!m2) goto done;
    for (int t = 0; t < K; t++)
        for (size_t i = 0; i < mn; i++) sum[i] += tau[t][i];
    for (int t = 0; t < K; t++) {
        double norm2 = 0;
        for (size_t i = 0; i < mn; i++) {
            w[i] = tau[t][i];
            g[i] = sum[i] - w[i];
            norm2 += w[i] * w[i];
        }
        if (norm2 == 0) continue; /* no loss term (see the top) */
        svd_gemm(true, false, n, n, m, 1.0, w, w, 0.0, gt);
        for (size_t i = 0; i < nn; i++) a[i] += gt[i] / norm2;
        svd_gemm(false, false, m, n, n, 1.0 / norm2, g, gt, 1.0, c);
    }
    const double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
    for (int step = 1; step <= o->iters; step++) {
        memcpy(g, c, mn * sizeof *g);
        svd_gemm(false, false, m, n, n, 2.0, d, a, 2.0, g); /* g = 2 (D A + C) */
        const double bc1 = 1 - pow(beta1, step), bc2 = 1 - pow(beta2, step);
        const double step_size = o->lr / bc1, bc2_sqrt = sqrt(bc2);
        for (size_t i = 0; i < mn; i++) {
            m1[i] += (g[i] - m1[i]) * (1 - beta1); /* torch: exp_avg.lerp_(grad, 1 − β1) */
            m2[i] = m2[i] * beta2 + (1 - beta2) * g[i] * g[i];
            d[i] -= step_size * (m1[i] / (sqrt(m2[i]) / bc2_sqrt + eps));
        }
    }
    for (size_t i = 0; i < mn; i++) out[i] = (float)(sum[i] + d[i]);
    rc = 0;
done:
    free(sum);
    free(d);
    free(a);
    free(c);
    free(g);
    free(w);
    free(gt);
    free(m1);
    free(m2);
    return rc;
}

static int wudi_run(merge_ctx *ctx, tt_err *err) {
    wudi_opts o;
    if (mu_param_int_range(ctx, "iters", 0, 1000000, &o.iters, err) ||
        mu_param_range(ctx, "lr", 0, 1, &o.lr, err))
        return -1;
    float *delta = tt_calloc_aligned(ctx->pre.lay.total, sizeof(float), err);
    if (!delta) return -1;
    if (svd_init(err) || svd_merge_selected(ctx, wudi_tensor_selected, NULL, NULL, wudi_layer, &o, delta, err)) {
        free(delta);
        return -1;
    }
    int optimised = 0;
    for (int l = 0; l < ctx->pre.lay.count; l++) optimised += wudi_tensor_selected(&ctx->pre.lay.t[l]);
    search_apply(ctx, delta, 1.0); /* θ0 + 1 · τ_m (τ_m = 0 off the block matrices) */
    free(delta);
    return mu_record_finish(ctx, json_pack("{s:i,s:i,s:f}", "optimised_tensors", optimised, "iters", o.iters, "lr", o.lr),
                            NULL, err);
}

static const merge_param wudi_params[] = {
    {"iters", "300", "Adam steps per matrix (official vit/args.py --iter; FusionBench's config: 400)"},
    {"lr", "1e-5", "Adam learning rate (official)"},
    {0}};

const merge_method method_wudi = {
    .name = "wudi",
    .summary = "WUDI: per block matrix, Adam on sum_t ||(tau_m - tau_t) tau_t^T||^2 / ||tau_t||^2 from the sum; "
               "theta0 + tau_m",
    .needs = MERGE_NEEDS_NOTHING,
    .params = wudi_params,
    .run = wudi_run,
};
