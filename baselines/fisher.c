/* fisher.c — Fisher merging (Matena & Raffel, "Merging Models with Fisher-Weighted Averaging",
 * NeurIPS 2022), as FusionBench runs it on CLIP (tanganke/fusion_bench
 * `fusion_bench/method/fisher_merging/clip_fisher_merging.py` + `fisher_merging.py`, config
 * `config/method/fisher_merging/clip_fisher_merging.yaml`; the code descends from
 * yule-BUAA/MergeLM).
 *
 * Statistics, per task t, on the fine-tuned model θ_t with its task's zero-shot head:
 *   for each batch of `batch` images of the task's TRAIN split (N = `samples` images, shuffled):
 *     p = softmax(logits), loss = Σ_batch Σ_c sqrt(p_c)·log p_c   (sqrt(p) is a constant)
 *     F_t += (∂loss/∂θ)²
 *   F_t /= N
 * No labels are used. The reference weights log p_c by sqrt(p_c) so that squaring gives p_c, but it
 * squares a SUM: the gradient of the whole batch, over every class, is squared, so cross terms
 * between classes and between the images of a batch stay in. It is neither the empirical Fisher
 * (∇log p_y)² nor the expected one Σ_c p_c (∇log p_c)²; we compute exactly the reference's
 * estimator (batch = 1 removes the cross terms between images, not those between classes).
 * Merge, on the full parameters, every backbone tensor:
 *   F̃_t = F_t + eps,  u_t = 1 / (‖F_t‖₂ + eps)  (‖·‖ over the whole model; normalize=false: u_t = 1)
 *   θ = Σ_t u_t F̃_t θ_t / Σ_t u_t F̃_t
 * (the reference normalises u_t to sum 1 and multiplies by 1/K: both cancel in the ratio). A weight
 * no task's gradient reaches (F_t = 0 for all t) gets Σ u_t θ_t / Σ u_t — the norm-weighted mean.
 * Deviations: the projection `proj` is merged by its Fisher like every tensor (FusionBench keeps
 * HF's visual_projection outside the merged vision model, frozen); exactly N images are used (the
 * reference stops at the first multiple of the batch >= N); the merge is computed in float64
 * (the reference: float32).
 * Memory: three model-sized buffers besides θ0 and the output: F_t and the gradient (float), the
 * numerator and the denominator (double); tasks are processed one at a time.
 *
 * Parameters: samples = 256; batch = 32; eps = 1e-6; normalize = true.
 * Record: per task the images used, ‖F_t‖₂ and the normalised weight u_t / Σ u.
 */
#include "baselines/methods.h"

#include <math.h>
#include <string.h>

#include "baselines/merge_util.h"
#include "core/arena.h"
#include "core/progress.h"

/* ∂/∂z of Σ_c sqrt(p_c)·log p_c with sqrt(p) held constant: sqrt(p_j) − p_j·Σ_c sqrt(p_c). */
void fisher_dlogits(const float *logits, int rows, int C, float *dlogits) {
    for (int r = 0; r < rows; r++) {
        const float *z = logits + (size_t)r * C;
        float *dz = dlogits + (size_t)r * C;
        double mx = z[0], se = 0, ss = 0;
        for (int c = 1; c < C; c++) mx = fmax(mx, z[c]);
        for (int c = 0; c < C; c++) se += exp(z[c] - mx);
        for (int c = 0; c < C; c++) ss += sqrt(exp(z[c] - mx) / se);
        for (int c = 0; c < C; c++) {
            double p = exp(z[c] - mx) / se;
            dz[c] = (float)(sqrt(p) - p * ss);
        }
    }
}

static int read_opts(const merge_ctx *ctx, int *samples, int *batch, double *eps, bool *normalize, tt_err *err) {
    static const char *const yesno[] = {"false", "true"};
    int norm;
    if (mu_param_int_range(ctx, "samples", 1, 1000000, samples, err) ||
        mu_param_int_range(ctx, "batch", 1, 4096, batch, err) || mu_param_range(ctx, "eps", 0, 1, eps, err) ||
        mu_param_choice(ctx, "normalize", yesno, 2, &norm, err))
        return -1;
    *normalize = norm == 1;
    return 0;
}

/* ctx->out = θ_t (every tensor; padding stays as θ0's, zero). */
static void load_finetuned(merge_ctx *ctx, int t) {
    const vit_layout *lay = &ctx->pre.lay;
    for (int l = 0; l < lay->count; l++) {
        float *dst = ctx->out.params + lay->t[l].offset;
        const float *src = merge_ft_tensor(ctx, t, l, dst);
        if (src != dst) memcpy(dst, src, lay->t[l].numel * sizeof(float));
    }
}

int fisher_diag(merge_ctx *ctx, int t, float *F, int *used, tt_err *err) {
    int N, B;
    double eps;
    bool normalize;
    if (read_opts(ctx, &N, &B, &eps, &normalize, err)) return -1;
    const vit_config *cfg = &ctx->s->cfg;
    const vit_layout *lay = &ctx->pre.lay;
    const ckpt_head *head = &ctx->s->tasks[t].head;
    int C = ctx->s->tasks[t].classes, D = cfg->output_dim, n = 0;
    size_t img = (size_t)cfg->channels * cfg->image_size * cfg->image_size, total = lay->total;
    float *images = NULL, *g = NULL, *feat = NULL, *dfeat = NULL, *logits = NULL, *dlogits = NULL;
    vit_plan *plan = NULL;
    vit_head h;
    bool head_ok = false;
    vit_weights w = {0}, gw = {0};
    int rc = -1;
    if (mu_train_sample(ctx, t, N, B, &images, NULL, &n, err)) goto done;
    B = n < B ? n : B; /* fewer images than a batch: one batch of exactly those */
    if (!(g = tt_calloc_aligned(total, sizeof(float), err)) ||
        !(feat = tt_calloc_aligned((size_t)B * D, sizeof(float), err)) ||
        !(dfeat = tt_calloc_aligned((size_t)B * D, sizeof(float), err)) ||
        !(logits = tt_calloc_aligned((size_t)B * C, sizeof(float), err)) ||
        !(dlogits = tt_calloc_aligned((size_t)B * C, sizeof(float), err)) ||
        !(plan = vit_plan_create(ctx->d, cfg, B, err)) || vit_head_init(&h, ctx->d, cfg, B, C, err))
        goto done;
    head_ok = true;
    if (vit_weights_bind(&w, lay, ctx->out.params, NULL, err) || vit_weights_bind(&gw, lay, g, NULL, err)) goto done;
    load_finetuned(ctx, t);
    memset(F, 0, total * sizeof(float));
    for (int at = 0; at < n; at += B) {
        int nb = n - at < B ? n - at : B;
        memset(g, 0, total * sizeof(float));
        vit_forward(plan, &w, images + (size_t)at * img, feat);
        vit_head_forward(&h, logits, feat, head->W, head->b);
        memset(dlogits, 0, (size_t)B * C * sizeof(float)); /* padded rows contribute nothing */
        fisher_dlogits(logits, nb, C, dlogits);
        vit_head_backward(&h, dfeat, NULL, NULL, dlogits, head->W);
        vit_backward(plan, &w, &gw, dfeat);
#pragma omp parallel for schedule(static) if (total > 65536)
        for (size_t i = 0; i < total; i++) F[i] += g[i] * g[i];
    }
    float inv = 1.0f / (float)n;
#pragma omp parallel for schedule(static) if (total > 65536)
    for (size_t i = 0; i < total; i++) F[i] *= inv;
    *used = n;
    rc = 0;
done:
    vit_plan_free(plan);
    if (head_ok) vit_head_free(&h);
    vit_weights_free(&w);
    vit_weights_free(&gw);
    free(images);
    free(g);
    free(feat);
    free(dfeat);
    free(logits);
    free(dlogits);
    return rc;
}

static int fisher_run(merge_ctx *ctx, tt_err *err) {
    const vit_layout *lay = &ctx->pre.lay;
    size_t total = lay->total;
    int N, B;
    double eps;
    bool normalize;
    if (read_opts(ctx, &N, &B, &eps, &normalize, err)) return -1;
    float *F = tt_calloc_aligned(total, sizeof(float), err);
    float *scratch = F ? tt_calloc_aligned(mu_max_numel(ctx), sizeof(float), err) : NULL;
    double *num = scratch ? tt_calloc_aligned(total, sizeof(double), err) : NULL;
    double *den = num ? tt_calloc_aligned(total, sizeof(double), err) : NULL;
    double norm[MERGE_MAX_TASKS], u[MERGE_MAX_TASKS], wsum = 0;
    int used[MERGE_MAX_TASKS];
    int rc = -1;
    if (!den) goto done;
    progress pg;
    progress_start(&pg, "fisher", ctx->K, ctx->progress);
    for (int t = 0; t < ctx->K; t++) {
        if (fisher_diag(ctx, t, F, &used[t], err)) {
            progress_end(&pg);
            goto done;
        }
        double ss = 0;
        for (int l = 0; l < lay->count; l++)
            for (size_t i = 0; i < lay->t[l].numel; i++) {
                double f = F[lay->t[l].offset + i];
                ss += f * f;
            }
        norm[t] = sqrt(ss);
        u[t] = normalize ? 1.0 / (norm[t] + eps) : 1.0;
        if (!isfinite(u[t]) || !isfinite(norm[t])) {
            progress_end(&pg);
            tt_fail(err, TT_ENUMERIC, "fisher: task %s: the Fisher norm is %g; set eps > 0", ctx->s->tasks[t].name, norm[t]);
            goto done;
        }
        wsum += u[t];
        for (int l = 0; l < lay->count; l++) {
            size_t off = lay->t[l].offset, n = lay->t[l].numel;
            const float *th = merge_ft_tensor(ctx, t, l, scratch);
            const float *f = F + off;
            double *nu = num + off, *de = den + off, ut = u[t];
#pragma omp parallel for schedule(static) if (n > 65536)
            for (size_t i = 0; i < n; i++) {
                double wf = ut * ((double)f[i] + eps);
                nu[i] += wf * th[i];
                de[i] += wf;
            }
        }
        progress_update(&pg, t + 1, "%s: |F| %.3g", ctx->s->tasks[t].name, norm[t]);
    }
    progress_end(&pg);
    memcpy(ctx->out.params, ctx->pre.params, total * sizeof(float));
    for (int l = 0; l < lay->count; l++) {
        size_t off = lay->t[l].offset;
        for (size_t i = 0; i < lay->t[l].numel; i++) {
            double d = den[off + i];
            if (!(d > 0)) { /* eps = 0 and no gradient reached this weight: the weighted mean */
                tt_fail(err, TT_ENUMERIC, "fisher: tensor %s has zero Fisher information in every task; set eps > 0",
                        lay->t[l].name);
                goto done;
            }
            ctx->out.params[off + i] = (float)(num[off + i] / d);
        }
    }
    double weight[MERGE_MAX_TASKS];
    for (int t = 0; t < ctx->K; t++) weight[t] = u[t] / wsum;
    json_t *rec = json_object();
    json_object_set_new(rec, "samples", mu_json_per_task_int(ctx, used));
    json_object_set_new(rec, "fisher_norm", mu_json_per_task(ctx, norm));
    json_object_set_new(rec, "weight", mu_json_per_task(ctx, weight));
    rc = mu_record_finish(ctx, rec, NULL, err);
done:
    free(F);
    free(scratch);
    free(num);
    free(den);
    return rc;
}

static const merge_param fisher_params[] = {
    {"samples", "256", "training images per task for the Fisher (drawn by the seed; FusionBench num_fisher_examples)"},
    {"batch", "32", "images per squared gradient: the batch's summed gradient is squared (1: no cross terms between images)"},
    {"eps", "1e-6", "added to every Fisher entry and to each task's Fisher norm (minimal_fisher_weight)"},
    {"normalize", "true", "weight each task by 1/(|F_t|_2 + eps) (normalize_fisher_weight): true | false"},
    {0}};

const merge_method method_fisher = {
    .name = "fisher",
    .summary = "Fisher merging: per-weight average weighted by each expert's diagonal Fisher on its training images",
    .needs = MERGE_NEEDS_TRAIN_INPUTS,
    .params = fisher_params,
    .run = fisher_run,
};
