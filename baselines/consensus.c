/* consensus.c — TALL masks and Consensus Merging (Wang, Dimitriadis et al., "Localizing Task
 * Information for Improved Model Merging and Compression", ICML 2024). Reference:
 * nik-dim/tall_masks src/utils/tallmask_utils.py (generate_task_masks, find_optimal_mask,
 * construct_consensus_mask) and src/eval/aggregation.py. Spec: research/methods.md §3.
 *
 *   τ_MTL = Σ_t τ_t (consensus-ta; UNSCALED, as the code)  or  TIES(k=20, dis-sum) (consensus-ties)
 *   TALL mask    m_t = 1{ |τ_t| > λ_t |τ_MTL − τ_t| }                      (strict >)
 *   λ_t          per task from {0.2, 0.3, 0.4, 0.5, 0.6}: the best validation accuracy of task t
 *                for θ0 + m_t ⊙ τ_MTL (find_optimal_mask; the first λ wins ties)
 *   consensus    m = 1{ Σ_t m_t ≥ k }     (k = 2 drops "catastrophic" and "selfish" weights)
 *   θ = θ0 + α (m ⊙ τ_MTL),  α from {0.1, ..., 1.0} on validation (average normalised accuracy)
 * Official choices followed: masks from the unscaled τ_MTL; per-task λ_t by that task's own
 * validation accuracy; prun_thre_k = 2; α grid of tall_masks' eval. The masks are computed on
 * the fly tensor by tensor (never stored), so memory is one model-sized τ_MTL.
 *
 * Parameters: tall_lambda = auto (the per-task search) or one number for every task (FusionBench
 * fixes 0.6); k = 2; lambda (= α) = auto.
 * Record: base, k, per-task λ_t, its validation accuracy and mask density, the consensus
 * density, the α grid with scores and α.
 */
#include "baselines/methods.h"
#include "baselines/ties.h"

#include <math.h>
#include <string.h>

#include "baselines/kernels.h"
#include "baselines/merge_util.h"
#include "baselines/search.h"
#include "core/arena.h"
#include "core/progress.h"

/* ---- the method ---- */

static const double tall_grid[5] = {0.2, 0.3, 0.4, 0.5, 0.6};

/* Per task: λ_t (searched or given), the validation accuracy of θ0 + m_t ⊙ τ_MTL at λ_t (-1 when
 * not searched). ctx->out is used as scratch. */
static int choose_tall_lambdas(merge_ctx *ctx, const float *mtl, float *tv, double *lam, double *acc, tt_err *err) {
    const vit_layout *lay = &ctx->pre.lay;
    if (!merge_param_is_auto(ctx, "tall_lambda")) {
        double v;
        if (mu_param_range(ctx, "tall_lambda", 0, 100, &v, err)) return -1;
        for (int t = 0; t < ctx->K; t++) lam[t] = v, acc[t] = -1;
        return 0;
    }
    merge_eval ev;
    if (merge_eval_init(&ev, ctx, err)) return -1;
    progress pg;
    progress_start(&pg, "tall masks", ctx->K * 5, ctx->progress);
    for (int t = 0; t < ctx->K; t++) {
        acc[t] = -1;
        for (int g = 0; g < 5; g++) {
            for (int l = 0; l < lay->count; l++) {
                size_t off = lay->t[l].offset;
                merge_task_vector(ctx, t, l, tv);
                tall_apply(ctx->out.params + off, ctx->pre.params + off, tv, mtl + off, lay->t[l].numel,
                           (float)tall_grid[g]);
            }
            double a = merge_eval_task(&ev, ctx, t, false);
            if (a > acc[t]) acc[t] = a, lam[t] = tall_grid[g];
            progress_update(&pg, t * 5 + g + 1, "%s lambda_t=%g (%.2f%%)", ctx->s->tasks[t].name, lam[t], acc[t]);
        }
    }
    progress_end(&pg);
    merge_eval_free(&ev);
    return 0;
}

/* mtl = m_cons ⊙ τ_MTL, tensor by tensor; density[t] = fraction of m_t, *kept = of m_cons. */
static int apply_consensus(merge_ctx *ctx, float *mtl, float *tv, const double *lam, int k, double *density,
                           double *kept, tt_err *err) {
    const vit_layout *lay = &ctx->pre.lay;
    uint8_t *count = tt_calloc_aligned(mu_max_numel(ctx), 1, err);
    if (!count) return -1;
    uint64_t on[MERGE_MAX_TASKS] = {0}, cons = 0;
    for (int l = 0; l < lay->count; l++) {
        size_t n = lay->t[l].numel;
        float *m = mtl + lay->t[l].offset;
        memset(count, 0, n);
        for (int t = 0; t < ctx->K; t++) {
            merge_task_vector(ctx, t, l, tv);
            on[t] += tall_mask_add(count, tv, m, n, (float)lam[t]);
        }
        cons += consensus_apply(m, count, n, k);
    }
    double d = (double)mu_param_count(ctx);
    for (int t = 0; t < ctx->K; t++) density[t] = (double)on[t] / d;
    *kept = (double)cons / d;
    free(count);
    return 0;
}

static int consensus_run(merge_ctx *ctx, bool ties_base, tt_err *err) {
    long k;
    if (merge_param_int(ctx, "k", &k, err)) return -1;
    if (k < 0 || k > MERGE_MAX_TASKS + 1)
        return tt_fail(err, TT_EINPUT, "parameter k=%ld is out of range [0, %d]", k, MERGE_MAX_TASKS + 1);
    float *mtl = tt_calloc_aligned(ctx->pre.lay.total, sizeof(float), err);
    float *tv = mtl ? tt_calloc_aligned(mu_max_numel(ctx), sizeof(float), err) : NULL;
    double lam[MERGE_MAX_TASKS], acc[MERGE_MAX_TASKS], density[MERGE_MAX_TASKS], kept, alpha;
    char frag[2048];
    int rc = -1;
    if (!tv) goto done;
    if (ties_base ? ties_merged_delta(ctx, 20, false, mtl, NULL, err) : mu_sum_task_vectors(ctx, NULL, mtl, err))
        goto done;
    if (choose_tall_lambdas(ctx, mtl, tv, lam, acc, err) ||
        apply_consensus(ctx, mtl, tv, lam, (int)k, density, &kept, err) ||
        search_lambda(ctx, mtl, "lambda", search_grid_default, 10, &alpha, frag, sizeof frag, err))
        goto done;
    json_t *rec = json_object();
    json_object_set_new(rec, "base", json_string(ties_base ? "ties(k=20,dis-sum)" : "ta(sum)"));
    json_object_set_new(rec, "k", json_integer(k));
    json_object_set_new(rec, "tall_lambda", mu_json_per_task(ctx, lam));
    if (merge_param_is_auto(ctx, "tall_lambda")) json_object_set_new(rec, "tall_val_acc", mu_json_per_task(ctx, acc));
    json_object_set_new(rec, "mask_density", mu_json_per_task(ctx, density));
    json_object_set_new(rec, "consensus_density", json_real(kept));
    rc = mu_record_finish(ctx, rec, frag, err);
done:
    free(mtl);
    free(tv);
    return rc;
}

static int consensus_ta_run(merge_ctx *ctx, tt_err *err) { return consensus_run(ctx, false, err); }
static int consensus_ties_run(merge_ctx *ctx, tt_err *err) { return consensus_run(ctx, true, err); }

static const merge_param consensus_params[] = {
    {"tall_lambda", "auto", "TALL mask lambda_t; auto = per task from {0.2..0.6} by its validation accuracy"},
    {"k", "2", "consensus: keep weights used by at least k tasks' TALL masks"},
    {"lambda", "auto", "scaling alpha of the masked vector; auto = grid {0.1..1.0} on validation"},
    {0}};

const merge_method method_consensus_ta = {
    .name = "consensus-ta",
    .summary = "Consensus Merging over Task Arithmetic: TALL masks, keep weights >= k tasks use",
    .needs = MERGE_NEEDS_VAL,
    .params = consensus_params,
    .run = consensus_ta_run,
};

const merge_method method_consensus_ties = {
    .name = "consensus-ties",
    .summary = "Consensus Merging over TIES (k=20, dis-sum): TALL masks, keep weights >= k tasks use",
    .needs = MERGE_NEEDS_VAL,
    .params = consensus_params,
    .run = consensus_ties_run,
};
