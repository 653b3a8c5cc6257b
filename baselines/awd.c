/* awd.c — AWD: Adaptive Weight Disentanglement (Xiong et al., "Multi-Task Model Merging via
 * Adaptive Weight Disentanglement", arXiv 2411.18729). The official repo (FarisXiong/AWD) holds
 * only a README, so the algorithm follows the paper's Eq. 9–11, Algorithm 1 and Sec. 4.3 as
 * quoted by the third-party reimplementation `run_awd_ortho.py` (found with the code index;
 * research/methods.md §5). Choices taken from it: δ starts at 0; the cosines are GLOBAL, over
 * the whole model flattened into one vector; plain gradient steps δ ← δ − β∇L with the
 * subgradient 0 of ‖δ‖ at δ = 0; a pair with a zero vector counts 0 but stays in the 1/(K(K−1))
 * normaliser (we also count 0 for a pair where τ_i or τ_j itself is zero); fp32 task vectors.
 * We leave out its ε = 1e-6 in the cosine's denominator, and accumulate in double.
 *
 *   τ̂_k = τ_k − δ                                   (one shared "redundant vector" δ)
 *   L   = L_O + α L_R,  L_O = 1/(K(K−1)) Σ_{i≠j} |cos(τ̂_i, τ̂_j)|,  L_R = ‖δ‖₂      (Eq. 9–11)
 *   awd:             θ = θ0 + λ Σ_k τ̂_k, λ searched on validation as `ta` does (baselines/search.c)
 *   awd-adamerging:  layer-wise AdaMerging on the τ̂_k (adamerge/awd_adamerging.c)
 * Defaults (paper Sec. 4.3 as quoted): α = 0.1, β = 0.01, 300 iterations.
 *
 * Exact reduction to K coefficients: ∇_δ |cos(τ̂_i, τ̂_j)| is a combination of τ̂_i and τ̂_j, and
 * ∇_δ ‖δ‖ = δ/‖δ‖, so from δ0 = 0 (or the mean task vector) every iterate stays in span{τ_k}:
 * δ = Σ_m b_m τ_m. With the Gram matrix G_ij = <τ_i, τ_j> (one streaming pass over the mapped
 * checkpoints, double accumulation), <τ̂_i, τ̂_j> = (e_i − b)ᵀ G (e_j − b) and the SAME plain
 * gradient iteration runs on b: ∇_δ L = Σ_m c_m τ_m and δ − β∇_δ L = Σ_m (b_m − β c_m) τ_m.
 * (It is not gradient descent on b, whose gradient G c would precondition the steps.) Cost: one
 * O(K² d) pass, then O(K²) per iteration (per tensor with cosine=layer); nothing model-sized is
 * optimised.
 * With the sum folded in, `awd` is Task Arithmetic with per-task weights 1 − K b_m.
 *
 * Parameters: alpha, beta, iters; init = zero | mean (the v2 abstract's "initialize redundant
 * vectors such that ... increased orthogonality" hints at a non-zero start; unverified);
 * cosine = global | layer (one δ coefficient vector per tensor and L_O averaged over the tensors
 * where at least two task vectors are non-zero; ‖δ‖ stays global); update = gd | prox. `prox`
 * is ours: plain gradient steps on the non-smooth ‖δ‖ do not settle at δ = 0 (a step of βα
 * overshoots through 0 and ‖δ‖ oscillates at the scale βα), the proximal step shrinks
 * δ ← max(0, 1 − βα/‖δ'‖) δ' after the L_O step and gives δ = 0 exactly once βα ≥ ‖δ'‖.
 * Record: L_O and L before/after, L_O along the iterations, ‖δ‖, mean ‖τ_k‖ and their ratio,
 * the coefficients b per task; the tensor `ttmerge.awd_coef` [groups, K] holds every b.
 */
#include "baselines/awd.h"

#include <math.h>
#include <string.h>

#include "baselines/methods.h"
#include "baselines/kernels.h"
#include "baselines/merge_util.h"
#include "baselines/search.h"
#include "core/arena.h"
#include "core/progress.h"

/* ---- the optimisation of δ on a merge context ---- */

static const char *const init_words[] = {"zero", "mean"};
static const char *const cosine_words[] = {"global", "layer"};
static const char *const update_words[] = {"gd", "prox"};


void awd_fit_free(awd_fit *f) {
    free(f->G);
    free(f->b);
    free(f->trace);
    memset(f, 0, sizeof *f);
}

static int awd_fit_params(const merge_ctx *ctx, awd_fit *f, tt_err *err) {
    memset(f, 0, sizeof *f);
    long iters;
    int update;
    if (mu_param_range(ctx, "alpha", 0, 1e12, &f->o.alpha, err) ||
        mu_param_range(ctx, "beta", 0, 1e12, &f->o.beta, err) || merge_param_int(ctx, "iters", &iters, err) ||
        mu_param_choice(ctx, "init", init_words, 2, &f->init, err) ||
        mu_param_choice(ctx, "cosine", cosine_words, 2, &f->cosine, err) ||
        mu_param_choice(ctx, "update", update_words, 2, &update, err))
        return -1;
    if (iters < 0 || iters > 1000000)
        return tt_fail(err, TT_EINPUT, "parameter iters=%ld is out of range [0, 1000000]", iters);
    f->o.iters = (int)iters;
    f->o.prox = update == 1;
    return 0;
}

/* The Gram matrices: one streaming pass, tensor by tensor, all K task vectors of a tensor at once. */
static int awd_gram(merge_ctx *ctx, awd_fit *f, tt_err *err) {
    const vit_layout *lay = &ctx->pre.lay;
    int K = ctx->K;
    size_t most = mu_max_numel(ctx);
    float *tv = tt_calloc_aligned((size_t)K * most, sizeof(float), err);
    double *scratch = tv ? malloc(awd_gram_scratch(K) * sizeof(double)) : NULL;
    if (tv && !scratch) tt_fail(err, TT_ENOMEM, "out of memory");
    if (!scratch) {
        free(tv);
        return -1;
    }
    const float *ptr[MERGE_MAX_TASKS];
    for (int k = 0; k < K; k++) ptr[k] = tv + (size_t)k * most;
    progress pg;
    progress_start(&pg, "awd gram", lay->count, ctx->progress);
    for (int l = 0; l < lay->count; l++) {
        for (int k = 0; k < K; k++) merge_task_vector(ctx, k, l, tv + (size_t)k * most);
        awd_gram_add(f->G + (size_t)(f->cosine ? l : 0) * K * K, ptr, K, lay->t[l].numel, scratch);
        progress_update(&pg, l + 1, "%s", lay->t[l].name);
    }
    progress_end(&pg);
    free(tv);
    free(scratch);
    return 0;
}

/* Read the parameters, build the Gram matrices and run the iteration: f->b is δ's coefficients. */
int awd_fit_run(merge_ctx *ctx, awd_fit *f, tt_err *err) {
    if (awd_fit_params(ctx, f, err)) return -1;
    int K = f->K = ctx->K;
    f->groups = f->cosine ? ctx->pre.lay.count : 1;
    f->G = calloc((size_t)f->groups * K * K, sizeof(double));
    f->b = calloc((size_t)f->groups * K, sizeof(double));
    f->trace = calloc((size_t)f->o.iters + 1, sizeof(double));
    if (!f->G || !f->b || !f->trace) return tt_fail(err, TT_ENOMEM, "out of memory");
    if (awd_gram(ctx, f, err)) return -1;
    for (int i = 0; i < f->groups * K; i++) f->b[i] = f->init ? 1.0 / K : 0;
    f->loss_before = awd_objective(f->G, f->groups, K, f->b, f->o.alpha, true, NULL, NULL, NULL);
    int rc = awd_descend(f->G, f->groups, K, &f->o, f->b, f->trace);
    if (rc < 0) return tt_fail(err, TT_ENOMEM, "out of memory");
    if (rc > 0)
        return tt_fail(err, TT_ENUMERIC, "awd: the loss became non-finite at iteration %d; try a smaller beta", rc - 1);
    f->loss_after = awd_objective(f->G, f->groups, K, f->b, f->o.alpha, true, NULL, &f->norm, NULL);
    for (int k = 0; k < K; k++) {
        double sq = 0;
        for (int g = 0; g < f->groups; g++) sq += f->G[(size_t)g * K * K + k * K + k];
        f->tau_norm_mean += sqrt(sq) / K;
    }
    return 0;
}

/* The coefficient matrix as the extra tensor ttmerge.awd_coef [groups, K]. */
int awd_fit_save_coef(merge_ctx *ctx, const awd_fit *f, tt_err *err) {
    size_t n = (size_t)f->groups * f->K;
    float *c = malloc(n * sizeof(float));
    if (!c) return tt_fail(err, TT_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) c[i] = (float)f->b[i];
    int64_t shape[2] = {f->groups, f->K};
    return merge_add_extra(ctx, "ttmerge.awd_coef", 2, shape, c, err);
}

/* What the optimisation did, added to rec. */
void awd_fit_record(const merge_ctx *ctx, const awd_fit *f, json_t *rec) {
    json_object_set_new(rec, "cosine", json_string(cosine_words[f->cosine]));
    json_object_set_new(rec, "init", json_string(init_words[f->init]));
    json_object_set_new(rec, "update", json_string(update_words[f->o.prox]));
    json_object_set_new(rec, "iters", json_integer(f->o.iters));
    json_object_set_new(rec, "l_o_before", json_real(f->trace[0]));
    json_object_set_new(rec, "l_o_after", json_real(f->trace[f->o.iters]));
    json_object_set_new(rec, "loss_before", json_real(f->loss_before));
    json_object_set_new(rec, "loss_after", json_real(f->loss_after));
    json_t *curve = json_array(); /* [iteration, L_O] at 11 evenly spaced iterations */
    for (int i = 0; i <= 10; i++) {
        int t = (int)((long)f->o.iters * i / 10);
        if (i && t == (int)((long)f->o.iters * (i - 1) / 10)) continue;
        json_array_append_new(curve, json_pack("[i,f]", t, f->trace[t]));
    }
    json_object_set_new(rec, "l_o_curve", curve);
    json_object_set_new(rec, "delta_norm", json_real(f->norm));
    json_object_set_new(rec, "tau_norm_mean", json_real(f->tau_norm_mean));
    json_object_set_new(rec, "delta_rel_norm", json_real(f->tau_norm_mean > 0 ? f->norm / f->tau_norm_mean : 0));
    double coef[MERGE_MAX_TASKS]; /* per task; cosine=layer: the mean over the tensors */
    for (int k = 0; k < f->K; k++) {
        coef[k] = 0;
        for (int g = 0; g < f->groups; g++) coef[k] += f->b[(size_t)g * f->K + k] / f->groups;
    }
    json_object_set_new(rec, "coef", mu_json_per_task(ctx, coef));
}

/* ---- awd: Task Arithmetic on the disentangled task vectors ---- */

static int awd_ta_run(merge_ctx *ctx, tt_err *err) {
    const vit_layout *lay = &ctx->pre.lay;
    awd_fit f = {0};
    float *delta = NULL, *tv = NULL;
    char frag[2048];
    double lam;
    int rc = -1;
    if (awd_fit_run(ctx, &f, err) || awd_fit_save_coef(ctx, &f, err)) goto done;
    delta = tt_calloc_aligned(lay->total, sizeof(float), err);
    tv = delta ? tt_calloc_aligned(mu_max_numel(ctx), sizeof(float), err) : NULL;
    if (!tv) goto done;
    /* Σ_k τ̂_k = Σ_m (1 − K b_m) τ_m; b = 0 adds exactly the τ_m, in TA's order */
    for (int l = 0; l < lay->count; l++) {
        const double *b = f.b + (size_t)(f.cosine ? l : 0) * ctx->K;
        for (int k = 0; k < ctx->K; k++) {
            merge_task_vector(ctx, k, l, tv);
            kern_axpy(delta + lay->t[l].offset, (float)(1 - ctx->K * b[k]), tv, lay->t[l].numel);
        }
    }
    if (search_lambda(ctx, delta, "lambda", search_grid_default, 10, &lam, frag, sizeof frag, err)) goto done;
    json_t *rec = json_object();
    awd_fit_record(ctx, &f, rec);
    rc = mu_record_finish(ctx, rec, frag, err);
done:
    awd_fit_free(&f);
    free(delta);
    free(tv);
    return rc;
}

/* ---- the methods ---- */

static const merge_param awd_params[] = {
    AWD_PARAMS, {"lambda", "auto", "scaling coefficient; auto = grid {0.1..1.0} on validation (as ta)"}, {0}};

const merge_method method_awd = {
    .name = "awd",
    .summary = "Adaptive Weight Disentanglement: subtract a shared delta that decorrelates the task vectors, then TA",
    .needs = MERGE_NEEDS_VAL,
    .params = awd_params,
    .run = awd_ta_run,
};
