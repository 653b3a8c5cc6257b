/* ties.c — TIES-Merging (Yadav et al., "TIES-Merging: Resolving Interference When Merging
 * Models", NeurIPS 2023). Reference: prateeky2806/ties-merging src/utils/merge_utils.py
 * (topk_values_mask, resolve_sign, disjoint_merge; same code in EnnengYang/AdaMerging
 * src/ties_merging_utils.py). Spec: research/methods.md §2.
 *
 *   trim:    τ̂_k = τ_k ⊙ 1{|τ_k| ≥ thr_k},  thr_k = kthvalue(|τ_k|, d − int(d·k/100)) over the
 *            WHOLE model (d = every parameter of every tensor), ties at thr_k kept
 *   elect:   s = sign(Σ_k τ̂_k); where s = 0, s = sign(Σ_i s_i) (the official "majority" rule)
 *   merge:   τ_m[i] = Σ_{k: τ̂_k[i] has sign s[i]} τ̂_k[i] / max(1, #those)     (dis-mean)
 *            or without the division                                           (dis-sum)
 *   θ = θ0 + λ τ_m
 * Official choices followed: global (not per-tensor) trim with kthvalue's rank and ≥; the
 * magnitude-weighted ("mass") sign vote; the majority sign for s = 0 — and, as in the code,
 * where even that is 0 only negative entries are kept; dis-mean by default. topk = 100 keeps
 * everything (the official kthvalue(0) would fail); topk = 0 keeps only the entries tied with
 * the largest magnitude (kthvalue(d), as the code).
 * The merge runs on the engine of the any-model merges (baselines/anymerge.h, `ttmerge merge
 * --base --models`), the same passes and kernels (ties_kernels.c): the per-task threshold is an
 * exact streaming select (baselines/select.h, bracketed mode): a sample pass (1/64 of the values)
 * and one full pass over the task vectors (all K tasks in the same passes), no sort, no copy of
 * the model; then one fused merge pass.
 *
 * Parameters: topk = 20 (percent kept per task); merge = mean (official dis-mean) | sum
 * (AdaMerging's dis-sum, λ ≈ 0.3); lambda = auto: searched on validation (average normalised
 * accuracy) over {0.1, ..., 1.5} for mean — dis-mean needs λ ≈ 1 (official README: 0.8..2.5;
 * tall_masks: 0.1..1.0) — and over {0.1, ..., 1.0} for sum.
 * Record: topk, merge, per-task kept density and threshold, the grid with its scores, λ.
 */
#include "baselines/ties.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "baselines/kernels.h"
#include "baselines/merge_util.h"
#include "baselines/methods.h"
#include "baselines/search.h"
#include "baselines/select.h"
#include "core/arena.h"

/* ---- over the model: the merge engine (baselines/anymerge.h) on the suite's tensors ----
 * A sample of 1/64 of the entries and one counting pass find all K trim thresholds together
 * (select.h's bracketed mode), then one fused pass of trim + sum + elect + disjoint merge, the
 * entries that await the global majority sign (exact cancellations) fixed after it: the any-model
 * merge's passes, with task vectors formed from the mapped checkpoints (mu_tv_views). */

static size_t undecided_cap_override = SIZE_MAX;
void ties_set_undecided_cap(size_t cap) { undecided_cap_override = cap; }

int ties_merged_delta_src(merge_ctx *ctx, const mu_tv_source *src, double topk, bool mean, float *delta,
                          double *density_out, float *thr_out, tt_err *err) {
    if (topk < 0 || topk > 100) return tt_fail(err, TT_EINPUT, "TIES: topk=%g is out of range [0, 100]", topk);
    am_config *c = malloc(sizeof *c); /* large: the paths of AM_MAX_MODELS models */
    if (!c) return tt_fail(err, TT_ENOMEM, "out of memory");
    am_config_init(c);
    c->method = AM_TIES;
    c->topk = topk;
    c->mean = mean;
    if (undecided_cap_override != SIZE_MAX) c->undecided_cap = undecided_cap_override;
    am_tau_result r;
    int rc = mu_merge_tau(ctx, src, c, delta, &r, err);
    free(c);
    if (rc) return -1;
    double d = (double)r.elements;
    for (int k = 0; k < ctx->K; k++) {
        if (density_out) density_out[k] = d > 0 ? (double)r.kept[k] / d : 0;
        if (thr_out) thr_out[k] = r.thr[k];
    }
    return 0;
}

int ties_merged_delta(merge_ctx *ctx, double topk, bool mean, float *delta, double *density_out, tt_err *err) {
    return ties_merged_delta_src(ctx, NULL, topk, mean, delta, density_out, NULL, err);
}

/* ---- the per-task selected entries (AdaMerging++) ---- */

int ties_split_in_place(const vit_layout *lay, int K, float *tv, double topk, tt_err *err) {
    size_t total = lay->total;
    uint64_t d = 0;
    for (int l = 0; l < lay->count; l++) d += lay->t[l].numel;
    float *sum = tt_calloc_aligned(total, sizeof(float), err);
    int8_t *sign = tt_calloc_aligned(total, 1, err);
    float thr[MERGE_MAX_TASKS];
    int rc = -1;
    if (!sum || !sign) goto done;
    for (int k = 0; k < K; k++) {
        const float *tk = tv + (size_t)k * total;
        uint64_t rank;
        thr[k] = 0;
        if (ties_threshold_rank(d, topk, &rank)) { /* exact k-th magnitude over the real entries only */
            select_ctx sel;
            if (select_init(&sel, rank, true, err)) goto done;
            do {
                for (int l = 0; l < lay->count; l++) select_feed(&sel, tk + lay->t[l].offset, lay->t[l].numel);
            } while (select_next_pass(&sel));
            thr[k] = select_value(&sel);
            select_free(&sel);
        }
        ties_trim_add(sum, tk, total, thr[k]);
    }
    long votes = 0;
    for (size_t i = 0; i < total; i++) votes += (sum[i] > 0) - (sum[i] < 0);
    ties_elect(sign, sum, total, votes >= 0 ? 1 : -1);
    for (int k = 0; k < K; k++) {
        float *tk = tv + (size_t)k * total;
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < total; i++) {
            bool agree = (tk[i] > 0 && sign[i] > 0) || (tk[i] < 0 && sign[i] < 0);
            if (!(fabsf(tk[i]) >= thr[k] && agree)) tk[i] = 0;
        }
    }
    rc = 0;
done:
    free(sum);
    free(sign);
    return rc;
}


/* ---- the method ---- */

static int ties_run(merge_ctx *ctx, tt_err *err) {
    static const char *const merge_words[] = {"mean", "sum"};
    double topk;
    int merge;
    if (mu_param_range(ctx, "topk", 0, 100, &topk, err) || mu_param_choice(ctx, "merge", merge_words, 2, &merge, err))
        return -1;
    bool mean = merge == 0;
    float *delta = tt_calloc_aligned(ctx->pre.lay.total, sizeof(float), err);
    double density[MERGE_MAX_TASKS], thr[MERGE_MAX_TASKS], lam;
    float thrf[MERGE_MAX_TASKS];
    char frag[2048];
    int rc = !delta || ties_merged_delta_src(ctx, NULL, topk, mean, delta, density, thrf, err) ||
             (mean ? search_lambda(ctx, delta, "lambda", mu_grid_ties_mean, 15, &lam, frag, sizeof frag, err)
                   : search_lambda(ctx, delta, "lambda", search_grid_default, 10, &lam, frag, sizeof frag, err));
    free(delta);
    if (rc) return -1;
    for (int k = 0; k < ctx->K; k++) thr[k] = thrf[k];
    json_t *rec = json_object();
    json_object_set_new(rec, "topk", json_real(topk));
    json_object_set_new(rec, "merge", json_string(merge_words[merge]));
    json_object_set_new(rec, "density", mu_json_per_task(ctx, density));
    json_object_set_new(rec, "threshold", mu_json_per_task(ctx, thr));
    return mu_record_finish(ctx, rec, frag, err);
}

static const merge_param ties_params[] = {
    {"topk", "20", "percent of each task vector kept (largest |tau| over the whole model)"},
    {"merge", "mean", "disjoint merge: mean (official dis-mean) | sum (AdaMerging's dis-sum)"},
    {"lambda", "auto", "scaling; auto = grid {0.1..1.5} (mean) or {0.1..1.0} (sum) on validation"},
    {0}};

const merge_method method_ties = {
    .name = "ties",
    .summary = "TIES-Merging: trim top-k%, elect sign, disjoint mean; theta0 + lambda * merged",
    .needs = MERGE_NEEDS_VAL,
    .params = ties_params,
    .run = ties_run,
};
