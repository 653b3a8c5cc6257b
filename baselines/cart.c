/* cart.c — CART, Centered Arithmetic with Rank-reduced Task vectors (Choi et al., "Revisiting Weight
 * Averaging for Model Merging"), as the official StaticMergeModule._merge_weights("CART") and
 * _get_truncated_task_vectors (JH-GEECS/CART, src/merging.py; configs/CART/ViT-b-32_8_CART.yaml):
 *
 *   θ_avg = θ0 + (1/K) · Σ_t τ_t                         (every tensor)
 *   c_t   = (τ_t + θ0) − θ_avg                           (each task, centred on the weight average)
 *   attn/mlp weights (key has "attn" or "mlp", and neither "ln" nor "bias"): c̃_t = the rank-r truncation
 *         of c_t's thin SVD, r = max(1, int(rank_ratio · min(m, n))) (0.12: r = 92 for ViT-B's 768);
 *   every other tensor: c̃_t = c_t (Σ_t c_t is 0 up to rounding: the weight average)
 *   θ = θ_avg + λ · Σ_t c̃_t, λ = prior = 2.0; no search (the config fixes both).
 *
 * The element-wise steps are float32 in the official order (the centring subtracts two θ-sized
 * numbers, so its rounding is part of the result); the SVDs are float64 (svd.h says why), each
 * truncation rounded to float32 and summed in task order as the official TaskVector sum. */
#include "baselines/methods.h"

#include <jansson.h>
#include <string.h>

#include "baselines/merge_util.h"
#include "baselines/svd.h"
#include "core/arena.h"

bool cart_tensor_selected(const vit_tensor_info *t) { return cart_name_selected(t->name); }

/* c_t of layout tensor l (user: θ_avg, layout of θ0) */
static void centred_task(const merge_ctx *ctx, int l, int t, float *out, const void *user) {
    const float *avg = (const float *)user + ctx->pre.lay.t[l].offset;
    const float *pre = ctx->pre.params + ctx->pre.lay.t[l].offset;
    merge_task_vector(ctx, t, l, out);
    for (size_t i = 0; i < ctx->pre.lay.t[l].numel; i++) {
        float theta = out[i] + pre[i]; /* value + prev_origin, then − new_origin */
        out[i] = theta - avg[i];
    }
}

static int cart_run(merge_ctx *ctx, tt_err *err) {
    double ratio, lambda;
    if (mu_param_range(ctx, "rank_ratio", 0, 1, &ratio, err) || mu_param_range(ctx, "lambda", -100, 100, &lambda, err))
        return -1;
    if (ratio <= 0) /* the official 0 zeroes every task vector, the weight average itself included */
        return tt_fail(err, TT_EINPUT, "parameter rank_ratio=%g is out of range (0, 1]", ratio);
    const vit_layout *lay = &ctx->pre.lay;
    float *avg = tt_calloc_aligned(lay->total, sizeof(float), err);
    float *sum = avg ? tt_calloc_aligned(lay->total, sizeof(float), err) : NULL;
    float *scratch = sum ? tt_calloc_aligned(mu_max_numel(ctx), sizeof(float), err) : NULL;
    int rc = -1;
    if (!scratch || mu_sum_task_vectors(ctx, NULL, sum, err)) goto done;
    const float coeff = (float)(1.0 / ctx->K); /* torch: float32 tensor times a Python float */
    for (size_t i = 0; i < lay->total; i++) {
        float step = coeff * sum[i];
        avg[i] = ctx->pre.params[i] + step;
    }
    /* Σ_t c̃_t into sum: the truncated matrices in parallel, then the other tensors' plain Σ_t c_t */
    memset(sum, 0, lay->total * sizeof *sum);
    if (svd_init(err) ||
        svd_merge_selected(ctx, cart_tensor_selected, centred_task, avg, cart_layer, &ratio, sum, err))
        goto done;
    for (int l = 0; l < lay->count; l++) {
        const vit_tensor_info *t = &lay->t[l];
        if (t->ndim == 2 && cart_tensor_selected(t)) continue;
        for (int k = 0; k < ctx->K; k++) {
            centred_task(ctx, l, k, scratch, avg);
            for (size_t i = 0; i < t->numel; i++) sum[t->offset + i] += scratch[i];
        }
    }
    const float lam = (float)lambda;
    for (size_t i = 0; i < lay->total; i++) {
        float step = lam * sum[i];
        ctx->out.params[i] = avg[i] + step;
    }
    json_t *ranks = json_object();
    for (int l = 0; l < lay->count; l++) {
        const vit_tensor_info *t = &lay->t[l];
        if (t->ndim != 2 || !cart_tensor_selected(t)) continue;
        int k = (int)(t->shape[0] < t->shape[1] ? t->shape[0] : t->shape[1]);
        char key[32];
        snprintf(key, sizeof key, "k=%d", k);
        json_object_set_new(ranks, key, json_integer(cart_rank(k, ratio)));
    }
    rc = mu_record_finish(ctx, json_pack("{s:o,s:f,s:f}", "rank", ranks, "rank_ratio", ratio, "lambda", lambda), NULL,
                          err);
done:
    free(avg);
    free(sum);
    free(scratch);
    return rc;
}

static const merge_param cart_params[] = {
    {"rank_ratio", "0.12", "rank kept of each centred attn/mlp matrix, as a fraction of min(m, n) (official initial_rank_ratio)"},
    {"lambda", "2.0", "scaling of the summed low-rank centred task vectors (official prior)"},
    {0}};

const merge_method method_cart = {
    .name = "cart",
    .summary = "CART: weight average + lambda * sum of rank-reduced task vectors centred on the average",
    .needs = MERGE_NEEDS_NOTHING,
    .params = cart_params,
    .run = cart_run,
};
