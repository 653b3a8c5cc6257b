/* lata.c — LATA: Layer-Aware Task Arithmetic, OUR CLASSIFIER ANALOGUE (not the paper's recipe).
 *
 * The paper (Chen et al., "Layer-Aware Task Arithmetic: Disentangling Task-Specific and
 * Instruction-Following Knowledge", arXiv 2502.20186, EMNLP Findings 2025; no code released)
 * works on LLMs: it measures each layer's alignment with an INSTRUCTION vector
 * τ_ins = θ_instruct − θ_base and attenuates the instruction-aligned layers. An image classifier
 * suite has no instruction-tuned model, so — as proposed in research/methods.md §8, option (a) —
 * the shared, task-agnostic direction is the mean task vector instead:
 *
 *   v^l     = mean_t τ_t^l                            (l = one layout tensor, "layer")
 *   c_t^l   = |cos(τ_t^l, v^l)|                        (0 when either is zero)
 *   w_t^l   = 1 for the ceil(L·topk/100) layers with the largest 1 − c_t^l (the most task-specific,
 *             ties to the lower index), gamma for the others; then w_t /= mean_l w_t^l
 *   θ = θ0 + λ Σ_t Σ_l w_t^l τ_t^l
 * The weighting function (top-k% → 1, else γ) is the paper's described selection; its exact form
 * is unverified there. Because mean_l w = 1, λ lives on Task Arithmetic's scale.
 * Memory: one model-sized buffer (v, then reused for the merged vector).
 *
 * Parameters: topk = 50 (percent of layers amplified per task); gamma = 0.5 (weight of the other
 * layers before normalisation, in [0, 1]); lambda = auto ({0.1..1.0} on validation).
 * Record: per task the normalised weights (high, low), the amplified layer count and the mean
 * |cos| with v; the grid with scores and λ.
 */
#include "baselines/methods.h"

#include <math.h>
#include <string.h>

#include "baselines/kernels.h"
#include "baselines/merge_util.h"
#include "baselines/search.h"
#include "core/arena.h"

/* ---- the method ---- */

static int lata_run(merge_ctx *ctx, tt_err *err) {
    const vit_layout *lay = &ctx->pre.lay;
    int K = ctx->K, L = lay->count;
    double topk, gamma, lam;
    if (mu_param_range(ctx, "topk", 0, 100, &topk, err) || mu_param_range(ctx, "gamma", 0, 1, &gamma, err)) return -1;
    float *v = tt_calloc_aligned(lay->total, sizeof(float), err);
    float *tv = v ? tt_calloc_aligned(mu_max_numel(ctx), sizeof(float), err) : NULL;
    double *score = tv ? calloc((size_t)K * L, sizeof(double)) : NULL;
    float *w = score ? calloc((size_t)K * L, sizeof(float)) : NULL;
    double w_hi[MERGE_MAX_TASKS], w_lo[MERGE_MAX_TASKS], cos_mean[MERGE_MAX_TASKS];
    int amplified[MERGE_MAX_TASKS];
    char frag[2048];
    int rc = -1;
    if (tv && !w) tt_fail(err, TT_ENOMEM, "out of memory");
    if (!w || mu_sum_task_vectors(ctx, NULL, v, err)) goto done;
    float inv = 1.0f / (float)K;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < lay->total; i++) v[i] *= inv; /* v = mean_t τ_t */
    for (int t = 0; t < K; t++) {
        cos_mean[t] = 0;
        for (int l = 0; l < L; l++) {
            merge_task_vector(ctx, t, l, tv);
            double c = kern_abs_cos(tv, v + lay->t[l].offset, lay->t[l].numel);
            score[(size_t)t * L + l] = 1 - c;
            cos_mean[t] += c / L;
        }
        amplified[t] = lata_weights(score + (size_t)t * L, L, topk, gamma, w + (size_t)t * L);
        w_hi[t] = w_lo[t] = w[(size_t)t * L];
        for (int l = 0; l < L; l++) {
            w_hi[t] = fmax(w_hi[t], w[(size_t)t * L + l]);
            w_lo[t] = fmin(w_lo[t], w[(size_t)t * L + l]);
        }
    }
    float *delta = v; /* v is no longer needed */
    memset(delta, 0, lay->total * sizeof(float));
    for (int l = 0; l < L; l++)
        for (int t = 0; t < K; t++) {
            merge_task_vector(ctx, t, l, tv);
            kern_axpy(delta + lay->t[l].offset, w[(size_t)t * L + l], tv, lay->t[l].numel);
        }
    if (search_lambda(ctx, delta, "lambda", search_grid_default, 10, &lam, frag, sizeof frag, err)) goto done;
    json_t *rec = json_object();
    json_object_set_new(rec, "direction", json_string("mean task vector (classifier analogue)"));
    json_object_set_new(rec, "topk", json_real(topk));
    json_object_set_new(rec, "gamma", json_real(gamma));
    json_object_set_new(rec, "amplified_layers", mu_json_per_task_int(ctx, amplified));
    json_object_set_new(rec, "w_high", mu_json_per_task(ctx, w_hi));
    json_object_set_new(rec, "w_low", mu_json_per_task(ctx, w_lo));
    json_object_set_new(rec, "mean_abs_cos", mu_json_per_task(ctx, cos_mean));
    rc = mu_record_finish(ctx, rec, frag, err);
done:
    free(v);
    free(tv);
    free(score);
    free(w);
    return rc;
}

static const merge_param lata_params[] = {
    {"topk", "50", "percent of layers (per task) with the lowest |cos| to the mean task vector kept at weight 1"},
    {"gamma", "0.5", "weight of the other layers (before normalising to mean 1), in [0, 1]"},
    {"lambda", "auto", "scaling; auto = grid {0.1..1.0} on validation"},
    {0}};

const merge_method method_lata = {
    .name = "lata",
    .summary = "Layer-Aware Task Arithmetic (classifier analogue): amplify layers least aligned with the mean tau",
    .needs = MERGE_NEEDS_VAL,
    .params = lata_params,
    .run = lata_run,
};
