/* emr.c — EMR-Merging (Huang et al., NeurIPS 2024; harveyhuang18/EMR_Merging, main_emr_merging.py
 * emr_merge; FusionBench's emr_merging is the same): Elect, Mask & Rescale. Per tensor l, over
 * every float tensor of the model (the official TaskVector keeps all of them, not only linear weights):
 *   flag_l   = +1 where Σ_k τ_k,l > 0, else −1 (a sum of exactly 0 elects −1, as the official
 *              `(mean > 0) * 2 − 1`; the sum is taken in double, its sign is the mean's)
 *   m_k,l    = (τ_k,l · flag_l) > 0                    task k agrees with the elected sign
 *   τ_uni,l  = flag_l · max_k |m_k,l ⊙ τ_k,l|          the unified task vector
 *   λ_k      = Σ_l mean|τ_k,l| / Σ_l mean|m_k,l ⊙ τ_uni,l|   (a sum of per-tensor means, as the
 *              official code: tensor sizes do not weigh)
 * Task k runs with θ0 + λ_k (m_k ⊙ τ_uni); the task is known at inference (the official protocol
 * evaluates each test set with its own mask). No data, no hyper-parameter.
 * Deviation: a task whose denominator is 0 (an all-zero task vector, or one that agrees with the
 * elected sign nowhere) gets λ_k = 0, i.e. θ0, where the official code divides 0 by 0 (NaN).
 *
 * Stored compactly (docs/formats.md): the backbone is θ0; τ_uni once as delta.<tensor> (F32); per
 * task and tensor the mask as packed bits task.<task>.mask.<tensor> (U8, 1 bit per weight) and λ_k
 * as task.<task>.scale. `eval` and `bench` rebuild each task's weights from them (ckpt_task_apply):
 * 2 + K/32 floats per weight instead of K + 1 for the experts.
 */
#include "baselines/methods.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "baselines/merge_util.h"
#include "core/arena.h"

int emr_tensor(const float *const *tau, int K, size_t n, float *uni, uint8_t *const *mask, double *abs_tau,
               double *abs_kept) {
    for (int k = 0; k < K; k++) {
        memset(mask[k], 0, (n + 7) / 8);
        abs_tau[k] = abs_kept[k] = 0;
    }
    /* bytes of 8 elements per iteration: every mask byte is written by one thread */
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t b = 0; b < (n + 7) / 8; b++) {
        for (size_t j = b * 8; j < n && j < b * 8 + 8; j++) {
            double sum = 0;
            for (int k = 0; k < K; k++) sum += tau[k][j];
            float flag = sum > 0 ? 1.0f : -1.0f, most = 0;
            for (int k = 0; k < K; k++) {
                float v = tau[k][j] * flag;
                if (v > 0) {
                    mask[k][b] |= (uint8_t)(1u << (j & 7));
                    if (v > most) most = v;
                }
            }
            uni[j] = flag * most;
        }
    }
    for (int k = 0; k < K; k++) {
        double a = 0, m = 0;
#pragma omp parallel for schedule(static) reduction(+ : a, m) if (n > 65536)
        for (size_t j = 0; j < n; j++) {
            a += fabsf(tau[k][j]);
            if ((mask[k][j >> 3] >> (j & 7)) & 1) m += fabsf(uni[j]);
        }
        abs_tau[k] = n ? a / (double)n : 0;
        abs_kept[k] = n ? m / (double)n : 0;
    }
    return 0;
}

static int emr_run(merge_ctx *ctx, tt_err *err) {
    const vit_layout *lay = &ctx->pre.lay;
    const int K = ctx->K;
    size_t most = mu_max_numel(ctx);
    float *scratch = tt_calloc_aligned((size_t)K * most, sizeof(float), err);
    if (!scratch) return -1;
    double num[MERGE_MAX_TASKS] = {0}, den[MERGE_MAX_TASKS] = {0};
    int rc = 0;
    uint64_t mask_bytes = 0;
    for (int l = 0; l < lay->count && !rc; l++) {
        const vit_tensor_info *t = &lay->t[l];
        const float *tau[MERGE_MAX_TASKS];
        uint8_t *mask[MERGE_MAX_TASKS] = {0};
        for (int k = 0; k < K; k++) {
            merge_task_vector(ctx, k, l, scratch + (size_t)k * most);
            tau[k] = scratch + (size_t)k * most;
        }
        float *uni = tt_calloc_aligned(t->numel ? t->numel : 1, sizeof(float), err);
        rc = uni ? 0 : -1;
        for (int k = 0; k < K && !rc; k++)
            if (!(mask[k] = calloc((t->numel + 7) / 8 + 1, 1))) rc = tt_fail(err, TT_ENOMEM, "out of memory");
        double a[MERGE_MAX_TASKS], m[MERGE_MAX_TASKS];
        if (!rc) emr_tensor(tau, K, t->numel, uni, mask, a, m);
        for (int k = 0; k < K && !rc; k++) num[k] += a[k], den[k] += m[k];
        char name[VIT_MAX_NAME + 96];
        snprintf(name, sizeof name, "delta.%s", t->name);
        if (!rc) rc = merge_add_extra(ctx, name, t->ndim, t->shape, uni, err);
        else free(uni);
        for (int k = 0; k < K; k++) {
            if (rc) {
                free(mask[k]);
                continue;
            }
            int64_t shape[1] = {(int64_t)((t->numel + 7) / 8)};
            snprintf(name, sizeof name, "task.%s.mask.%s", ctx->s->tasks[k].name, t->name);
            rc = merge_add_extra_u8(ctx, name, 1, shape, mask[k], err);
            mask_bytes += (uint64_t)shape[0];
        }
    }
    free(scratch);
    double lam[MERGE_MAX_TASKS];
    for (int k = 0; k < K && !rc; k++) {
        lam[k] = den[k] > 0 ? num[k] / den[k] : 0;
        float *s = malloc(sizeof(float));
        if (!s) return tt_fail(err, TT_ENOMEM, "out of memory");
        s[0] = (float)lam[k];
        char name[96];
        int64_t shape[1] = {1};
        snprintf(name, sizeof name, "task.%s.scale", ctx->s->tasks[k].name);
        rc = merge_add_extra(ctx, name, 1, shape, s, err);
    }
    if (rc) return -1;
    json_t *rec = json_object();
    json_object_set_new(rec, "rescalers", mu_json_per_task(ctx, lam));
    json_object_set_new(rec, "mask_bytes", json_integer((json_int_t)mask_bytes));
    json_object_set_new(rec, "parameters", json_integer((json_int_t)mu_param_count(ctx)));
    return mu_record_finish(ctx, rec, NULL, err);
}

const merge_method method_emr = {
    .name = "emr",
    .summary = "EMR-Merging: elected unified task vector + per-task sign masks (1 bit per weight) and rescalers",
    .needs = MERGE_NEEDS_NOTHING,
    .params = (const merge_param[]){{0}},
    .run = emr_run,
};
