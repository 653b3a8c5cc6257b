/* dare.c — DARE: Drop And REscale (Yu et al., "Language Models are Super Mario: Absorbing
 * Abilities from Homologous Models as a Free Lunch", ICML 2024). Reference: yule-BUAA/MergeLM
 * model_merging_methods/mask_weights_utils.py (mask_input_with_mask_rate, "random" strategy,
 * use_rescale). Spec: research/methods.md §11.
 *
 *   τ̃_k = m_k ⊙ τ_k / ρ,   m_k[i] ~ Bernoulli(ρ)   (ρ = density = 1 − p, p the drop rate of the paper)
 *   θ = θ0 + λ Σ_k τ̃_k       (base=ta), or TIES on the τ̃_k (base=ties: trim/elect/disjoint merge)
 * Parameter naming: the paper's and MergeLM's weight_mask_rate p is the fraction DROPPED; this
 * suite's shared name `density` is the fraction KEPT, so density = 1 − p (FusionBench's ViT
 * default sparsity 0.5 is density 0.5). density 0 zeroes every task vector (no rescale, as
 * MergeLM's p = 1).
 * Randomness is counter-based: m_k[i] = 1{ u(seed, k, key(tensor name), i) < ρ } with u a
 * splitmix64 hash (kern_hash_u01) and key the name's FNV-1a hash, so the masks do not depend on
 * the order of evaluation, the thread count or the order of tensors in a file, every pass that
 * re-streams τ_k (TIES streams it several times) sees the same mask, and `ttmerge merge --base
 * --models` (anymerge.c) draws the same masks on the same checkpoints.
 * The seed is the run's --seed.
 *
 * Parameters: density = 0.5; base = ta | ties; topk = 20 and merge = mean (base=ties only);
 * lambda = auto: {0.1..1.0} (ta, ties+sum) or {0.1..1.5} (ties+mean) on validation.
 * Record: density, base, per-task fraction kept, the grid with scores and λ.
 */
#include "baselines/methods.h"

#include <string.h>

#include "baselines/base_merge.h"
#include "baselines/kernels.h"
#include "baselines/merge_util.h"
#include "core/arena.h"

/* The DARE'd task vectors as a source for the TA sum or TIES. kept[k·L + l] is overwritten (not
 * added) on every visit, so it is right however often a tensor is re-streamed. */
typedef struct dare_source {
    double density;
    uint64_t *kept;
} dare_source;

static void dare_tv(const merge_ctx *ctx, int k, int l, float *out, void *user) {
    dare_source *ds = user;
    merge_task_vector(ctx, k, l, out);
    ds->kept[(size_t)k * ctx->pre.lay.count + l] =
        dare_apply(out, ctx->pre.lay.t[l].numel, ds->density, ctx->seed, k, kern_name_key(ctx->pre.lay.t[l].name));
}

static int dare_run(merge_ctx *ctx, tt_err *err) {
    double density;
    base_merge base;
    if (mu_param_range(ctx, "density", 0, 1, &density, err) || base_merge_params(ctx, &base, err)) return -1;
    int L = ctx->pre.lay.count;
    dare_source ds = {.density = density, .kept = calloc((size_t)ctx->K * L, sizeof(uint64_t))};
    mu_tv_source src = {dare_tv, &ds};
    float *delta = ds.kept ? tt_calloc_aligned(ctx->pre.lay.total, sizeof(float), err) : NULL;
    char frag[2048];
    double lam;
    int rc = -1;
    if (!ds.kept) tt_fail(err, TT_ENOMEM, "out of memory");
    if (!delta || base_merge_run(ctx, &base, &src, delta, err) ||
        base_merge_search(ctx, &base, delta, &lam, frag, sizeof frag, err))
        goto done;
    double kept[MERGE_MAX_TASKS], d = (double)mu_param_count(ctx);
    for (int k = 0; k < ctx->K; k++) {
        uint64_t s = 0;
        for (int l = 0; l < L; l++) s += ds.kept[(size_t)k * L + l];
        kept[k] = (double)s / d;
    }
    json_t *rec = json_object();
    json_object_set_new(rec, "density", json_real(density));
    base_merge_record(rec, &base);
    json_object_set_new(rec, "kept", mu_json_per_task(ctx, kept));
    rc = mu_record_finish(ctx, rec, frag, err);
done:
    free(delta);
    free(ds.kept);
    return rc;
}

static const merge_param dare_params[] = {
    {"density", "0.5", "fraction of each task vector KEPT (= 1 - drop rate p); kept entries scaled by 1/density"},
    BASE_MERGE_PARAMS,
    {"lambda", "auto", "scaling; auto = grid {0.1..1.0} ({0.1..1.5} for ties+mean) on validation"},
    {0}};

const merge_method method_dare = {
    .name = "dare",
    .summary = "DARE: random drop (1-density) and rescale each task vector, then TA (or TIES)",
    .needs = MERGE_NEEDS_VAL,
    .params = dare_params,
    .run = dare_run,
};
