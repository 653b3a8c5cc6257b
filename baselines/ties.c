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
 * The per-task threshold is an exact streaming radix select (baselines/select.h): two passes
 * over the task vector, no sort, no copy of the model.
 *
 * Parameters: topk = 20 (percent kept per task); merge = mean (official dis-mean) | sum
 * (AdaMerging's dis-sum, λ ≈ 0.3); lambda = auto: searched on validation (average normalised
 * accuracy) over {0.1, ..., 1.5} for mean — dis-mean needs λ ≈ 1 (official README: 0.8..2.5;
 * tall_masks: 0.1..1.0) — and over {0.1, ..., 1.0} for sum.
 * Record: topk, merge, per-task kept density and threshold, the grid with its scores, λ.
 */
#include "baselines/methods.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "baselines/kernels.h"
#include "baselines/merge_util.h"
#include "baselines/select.h"
#include "core/arena.h"
#include "core/progress.h"

/* ---- kernels (kernels.h) ---- */

bool ties_threshold_rank(uint64_t d, double topk, uint64_t *rank) {
    uint64_t keep = (uint64_t)((double)d * (topk / 100.0));
    if (keep > d) keep = d;
    if (keep == d) return false;
    *rank = d - keep - 1; /* kthvalue's k = d − keep is 1-based */
    return true;
}

float ties_threshold_array(const float *tv, size_t n, double topk) {
    uint64_t rank;
    return ties_threshold_rank(n, topk, &rank) ? select_kth(tv, n, rank, true) : 0.0f;
}

size_t ties_trim_add(float *acc, const float *tv, size_t n, float thr) {
    size_t kept = 0;
#pragma omp parallel for schedule(static) reduction(+ : kept) if (n > KERN_PAR_MIN)
    for (size_t i = 0; i < n; i++)
        if (fabsf(tv[i]) >= thr && tv[i] != 0) {
            acc[i] += tv[i];
            kept++;
        }
    return kept;
}

int64_t ties_sign_balance(const float *sum, size_t n) {
    int64_t b = 0;
#pragma omp parallel for schedule(static) reduction(+ : b) if (n > KERN_PAR_MIN)
    for (size_t i = 0; i < n; i++) b += (sum[i] > 0) - (sum[i] < 0);
    return b;
}

void ties_elect(int8_t *sign, const float *sum, size_t n, int8_t majority) {
#pragma omp parallel for schedule(static) if (n > KERN_PAR_MIN)
    for (size_t i = 0; i < n; i++) sign[i] = sum[i] > 0 ? 1 : sum[i] < 0 ? -1 : majority;
}

void ties_disjoint_add(float *out, uint8_t *cnt, const int8_t *sign, const float *tv, size_t n, float thr) {
#pragma omp parallel for schedule(static) if (n > KERN_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float x = tv[i];
        /* official: sign > 0 keeps positive trimmed entries, otherwise negative ones */
        if (fabsf(x) >= thr && (sign[i] > 0 ? x > 0 : x < 0)) {
            out[i] += x;
            cnt[i]++;
        }
    }
}

void ties_disjoint_finish(float *out, const uint8_t *cnt, size_t n, bool mean) {
    if (!mean) return;
#pragma omp parallel for schedule(static) if (n > KERN_PAR_MIN)
    for (size_t i = 0; i < n; i++)
        if (cnt[i] > 1) out[i] /= (float)cnt[i];
}

static int8_t majority_of(int64_t balance) { return balance > 0 ? 1 : balance < 0 ? -1 : 0; }

int ties_merge_arrays(const float *const *tv, int K, size_t n, const float *thr, bool mean, float *out) {
    int8_t *sign = malloc(n ? n : 1);
    uint8_t *cnt = calloc(n ? n : 1, 1);
    if (!sign || !cnt) {
        free(sign);
        free(cnt);
        return -1;
    }
    memset(out, 0, n * sizeof(float));
    for (int k = 0; k < K; k++) ties_trim_add(out, tv[k], n, thr[k]);
    ties_elect(sign, out, n, majority_of(ties_sign_balance(out, n)));
    memset(out, 0, n * sizeof(float));
    for (int k = 0; k < K; k++) ties_disjoint_add(out, cnt, sign, tv[k], n, thr[k]);
    ties_disjoint_finish(out, cnt, n, mean);
    free(sign);
    free(cnt);
    return 0;
}

/* ---- streaming over the model ---- */

/* thr = the trim threshold of task k over every tensor (two streaming passes). */
static int task_threshold(merge_ctx *ctx, const mu_tv_source *src, int k, double topk, float *tv, float *thr,
                          tt_err *err) {
    uint64_t rank;
    if (!ties_threshold_rank(mu_param_count(ctx), topk, &rank)) {
        *thr = 0;
        return 0;
    }
    select_ctx sel;
    if (select_init(&sel, rank, true, err)) return -1;
    do
        for (int l = 0; l < ctx->pre.lay.count; l++) {
            mu_task_vector(ctx, src, k, l, tv);
            select_feed(&sel, tv, ctx->pre.lay.t[l].numel);
        }
    while (select_next_pass(&sel));
    *thr = select_value(&sel);
    select_free(&sel);
    return 0;
}

int ties_merged_delta_src(merge_ctx *ctx, const mu_tv_source *src, double topk, bool mean, float *delta,
                          double *density_out, float *thr_out, tt_err *err) {
    const vit_layout *lay = &ctx->pre.lay;
    if (topk < 0 || topk > 100) return tt_fail(err, TT_EINPUT, "TIES: topk=%g is out of range [0, 100]", topk);
    size_t most = mu_max_numel(ctx);
    float *tv = tt_calloc_aligned(most, sizeof(float), err);
    int8_t *sign = tv ? tt_calloc_aligned(most, 1, err) : NULL;
    uint8_t *cnt = sign ? tt_calloc_aligned(most, 1, err) : NULL;
    float thr[MERGE_MAX_TASKS];
    uint64_t kept[MERGE_MAX_TASKS] = {0};
    int rc = -1;
    if (!cnt) goto done;
    progress pg;
    progress_start(&pg, "ties", ctx->K + 2, ctx->progress);
    for (int k = 0; k < ctx->K; k++) {
        if (task_threshold(ctx, src, k, topk, tv, &thr[k], err)) {
            progress_end(&pg);
            goto done;
        }
        progress_update(&pg, k + 1, "threshold %s", ctx->s->tasks[k].name);
    }
    /* trim + sum, and the global sign balance of the sum for the majority rule */
    memset(delta, 0, lay->total * sizeof(float));
    int64_t balance = 0;
    for (int l = 0; l < lay->count; l++) {
        float *d = delta + lay->t[l].offset;
        for (int k = 0; k < ctx->K; k++) {
            mu_task_vector(ctx, src, k, l, tv);
            kept[k] += ties_trim_add(d, tv, lay->t[l].numel, thr[k]);
        }
        balance += ties_sign_balance(d, lay->t[l].numel);
    }
    progress_update(&pg, ctx->K + 1, "elect");
    /* elect from the sum (read before it is overwritten), then the disjoint merge */
    int8_t majority = majority_of(balance);
    for (int l = 0; l < lay->count; l++) {
        size_t n = lay->t[l].numel;
        float *d = delta + lay->t[l].offset;
        ties_elect(sign, d, n, majority);
        memset(d, 0, n * sizeof(float));
        memset(cnt, 0, n);
        for (int k = 0; k < ctx->K; k++) {
            mu_task_vector(ctx, src, k, l, tv);
            ties_disjoint_add(d, cnt, sign, tv, n, thr[k]);
        }
        ties_disjoint_finish(d, cnt, n, mean);
    }
    progress_end(&pg);
    double dtot = (double)mu_param_count(ctx);
    for (int k = 0; k < ctx->K; k++) {
        if (density_out) density_out[k] = dtot > 0 ? (double)kept[k] / dtot : 0;
        if (thr_out) thr_out[k] = thr[k];
    }
    rc = 0;
done:
    free(tv);
    free(sign);
    free(cnt);
    return rc;
}

int ties_merged_delta(merge_ctx *ctx, double topk, bool mean, float *delta, double *density_out, tt_err *err) {
    return ties_merged_delta_src(ctx, NULL, topk, mean, delta, density_out, NULL, err);
}

/* ---- the method ---- */

static int ties_run(merge_ctx *ctx, tt_err *err) {
    /* TIES is its own base: the shared base parameters minus "base" */
    static const char *const merge_words[] = {"mean", "sum"};
    mu_base b = {.ties = true};
    int merge;
    if (mu_param_range(ctx, "topk", 0, 100, &b.topk, err) || mu_param_choice(ctx, "merge", merge_words, 2, &merge, err))
        return -1;
    b.mean = merge == 0;
    float *delta = tt_calloc_aligned(ctx->pre.lay.total, sizeof(float), err);
    double density[MERGE_MAX_TASKS], thr[MERGE_MAX_TASKS], lam;
    float thrf[MERGE_MAX_TASKS];
    char frag[2048];
    int rc = !delta || ties_merged_delta_src(ctx, NULL, b.topk, b.mean, delta, density, thrf, err) ||
             mu_base_search(ctx, &b, delta, &lam, frag, sizeof frag, err);
    free(delta);
    if (rc) return -1;
    for (int k = 0; k < ctx->K; k++) thr[k] = thrf[k];
    json_t *rec = json_object();
    json_object_set_new(rec, "topk", json_real(b.topk));
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
