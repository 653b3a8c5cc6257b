/* regmean.c — RegMean, regression mean (Jin et al., "Dataless Knowledge Fusion by Merging Weights
 * of Language Models", ICLR 2023; bloomberg/dataless-model-merging), as FusionBench runs it on CLIP
 * (tanganke/fusion_bench `fusion_bench/method/regmean/regmean.py`, `clip_regmean.py`, config
 * `config/method/regmean/clip_regmean.yaml`).
 *
 * Every linear layer y = x Wᵀ + b of the blocks — attn.in_proj (one [3w,w] linear over ln_1's
 * output: HF's q/k/v projections, which all read that input), attn.out_proj, mlp.c_fc, mlp.c_proj —
 * has, per task t, the Gram matrix of its inputs over the task's N training images (shuffled; the
 * fine-tuned model θ_t runs them, no labels):
 *   G_t = XᵀX / rows,  X = every token of every image, [N·T × d_in]   (FusionBench's running mean)
 *   G̃_t = α·G_t + (1 − α)·diag(G_t)                  (off-diagonal entries scaled by α)
 *   Wᵀ = (Σ_t G̃_t)⁻¹ Σ_t G̃_t W_tᵀ                   (the least-squares merge of the K regressions)
 * Every other tensor — the linears' biases, the LayerNorms, the embeddings, conv1 (a convolution,
 * not an nn.Linear) and proj (a plain parameter in open_clip; outside the merged vision model in
 * FusionBench) — is the plain mean of θ_t.
 * The reference computes in float32 and inverts (torch.inverse); here the Grams are accumulated and
 * the system solved in float64 (LAPACK dgesv, LU with partial pivoting) without forming the
 * inverse. α < 1 keeps Σ G̃ positive definite whenever every input feature has a nonzero diagonal:
 * rank-deficient Grams (fewer token rows than features) stay solvable. A feature that is 0 on every
 * token of every task leaves a zero row and column; the solve then fails (as torch.inverse does) with
 * one line naming the tensor.
 * Memory: per layer, one task's Gram and the two sums Σ G̃ and Σ G̃ Wᵀ (float64) for all layers at
 * once (ViT-B/32: ~3 GB); one training plan of `batch` images.
 *
 * Parameters: samples = 256; batch = 32; alpha = 0.95 (reduce_non_diagonal_ratio).
 * Record: per task the images used; alpha; the layers merged by regression.
 */
#include "baselines/methods.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "baselines/merge_util.h"
#include "baselines/svd.h"
#include "core/arena.h"
#include "core/progress.h"

/* ---- the closed form (methods.h) ---- */

void regmean_reduce_offdiag(double *g, int d, double alpha) {
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++)
            if (i != j) g[(size_t)i * d + j] *= alpha;
}

int regmean_accumulate(double *S, double *R, const double *G, const float *W, int d_in, int d_out, tt_err *err) {
    double *wd = svd_alloc((size_t)d_out * d_in, err);
    if (!wd) return -1;
    svd_widen(W, (size_t)d_out * d_in, wd);
    for (size_t i = 0; i < (size_t)d_in * d_in; i++) S[i] += G[i];
    svd_gemm(false, true, d_in, d_out, d_in, 1.0, G, wd, 1.0, R); /* R += G Wᵀ */
    free(wd);
    return 0;
}

int regmean_solve(double *S, double *R, int d_in, int d_out, float *out, tt_err *err) {
    if (svd_solve(S, d_in, R, d_out, err)) return -1;
    for (int o = 0; o < d_out; o++)
        for (int i = 0; i < d_in; i++) out[(size_t)o * d_in + i] = (float)R[(size_t)i * d_out + o];
    return 0;
}

/* ---- the linear layers ---- */

int regmean_layers(const merge_ctx *ctx, regmean_layer *ls, int max, tt_err *err) {
    static const char *const names[4] = {"attn.in_proj_weight", "attn.out_proj.weight", "mlp.c_fc.weight",
                                         "mlp.c_proj.weight"};
    const vit_layout *lay = &ctx->pre.lay;
    int n = 0;
    size_t gram = 0, cross = 0;
    for (int b = 0; b < ctx->s->cfg.layers; b++)
        for (int k = 0; k < 4; k++) {
            char name[VIT_MAX_NAME];
            snprintf(name, sizeof name, "transformer.resblocks.%d.%s", b, names[k]);
            int l = vit_layout_find(lay, name);
            if (l < 0 || lay->t[l].ndim != 2 || n == max)
                return tt_fail(err, TT_EINPUT, "regmean: no 2-D tensor %s in the layout", name);
            regmean_layer *r = &ls[n++];
            r->tensor = l, r->block = b, r->which = (vit_linear)k;
            r->d_out = (int)lay->t[l].shape[0], r->d_in = (int)lay->t[l].shape[1];
            r->gram_off = gram, r->cross_off = cross;
            gram += (size_t)r->d_in * r->d_in;
            cross += (size_t)r->d_in * r->d_out;
        }
    return n;
}

size_t regmean_gram_floats(const regmean_layer *ls, int n) {
    return n ? ls[n - 1].gram_off + (size_t)ls[n - 1].d_in * ls[n - 1].d_in : 0;
}

static size_t cross_floats(const regmean_layer *ls, int n) {
    return n ? ls[n - 1].cross_off + (size_t)ls[n - 1].d_in * ls[n - 1].d_out : 0;
}

/* samples and batch: shared with fisher, whose context the statistics may also run in */
static int read_sampling(const merge_ctx *ctx, int *samples, int *batch, tt_err *err) {
    return mu_param_int_range(ctx, "samples", 1, 1000000, samples, err) ||
                   mu_param_int_range(ctx, "batch", 1, 4096, batch, err)
               ? -1
               : 0;
}

int regmean_grams(merge_ctx *ctx, int t, const regmean_layer *ls, int n_layers, double *G, int *used, tt_err *err) {
    int N, B;
    if (read_sampling(ctx, &N, &B, err) || svd_init(err)) return -1;
    const vit_config *cfg = &ctx->s->cfg;
    const vit_layout *lay = &ctx->pre.lay;
    int n = 0, T = vit_tokens(cfg), Mw = vit_mlp_width(cfg), wide = Mw > cfg->width ? Mw : cfg->width;
    size_t img = (size_t)cfg->channels * cfg->image_size * cfg->image_size;
    float *images = NULL, *feat = NULL;
    double *xd = NULL;
    vit_plan *plan = NULL;
    vit_weights w = {0};
    int rc = -1;
    if (mu_train_sample(ctx, t, N, B, &images, NULL, &n, err)) goto done;
    B = n < B ? n : B; /* fewer images than a batch: one batch of exactly those */
    if (!(feat = tt_calloc_aligned((size_t)B * cfg->output_dim, sizeof(float), err)) ||
        !(xd = svd_alloc((size_t)B * T * wide, err)) || !(plan = vit_plan_create(ctx->d, cfg, B, err)) ||
        vit_weights_bind(&w, lay, ctx->out.params, NULL, err))
        goto done;
    for (int l = 0; l < lay->count; l++) { /* ctx->out = θ_t */
        float *dst = ctx->out.params + lay->t[l].offset;
        const float *src = merge_ft_tensor(ctx, t, l, dst);
        if (src != dst) memcpy(dst, src, lay->t[l].numel * sizeof(float));
    }
    memset(G, 0, regmean_gram_floats(ls, n_layers) * sizeof(double));
    for (int at = 0; at < n; at += B) {
        int nb = n - at < B ? n - at : B;
        vit_forward(plan, &w, images + (size_t)at * img, feat);
        for (int j = 0; j < n_layers; j++) {
            int rows, cols;
            const float *x = vit_plan_linear_input(plan, ls[j].block, ls[j].which, &rows, &cols);
            TT_ASSERT(cols == ls[j].d_in);
            rows = nb * T; /* the batch's real images: padded rows are not data */
            svd_widen(x, (size_t)rows * cols, xd);
            svd_gemm(true, false, cols, cols, rows, 1.0, xd, xd, 1.0, G + ls[j].gram_off);
        }
    }
    double inv = 1.0 / ((double)n * T); /* the mean over token rows */
    for (size_t i = 0; i < regmean_gram_floats(ls, n_layers); i++) G[i] *= inv;
    *used = n;
    rc = 0;
done:
    vit_plan_free(plan);
    vit_weights_free(&w);
    free(images);
    free(feat);
    free(xd);
    return rc;
}

/* ---- the method ---- */

static int regmean_run(merge_ctx *ctx, tt_err *err) {
    const vit_layout *lay = &ctx->pre.lay;
    int N, B;
    double alpha;
    if (read_sampling(ctx, &N, &B, err) || mu_param_range(ctx, "alpha", 0, 1, &alpha, err) || svd_init(err)) return -1;
    regmean_layer ls[4 * 64];
    int n_layers = regmean_layers(ctx, ls, 4 * 64, err);
    if (n_layers < 0) return -1;
    size_t ng = regmean_gram_floats(ls, n_layers), nc = cross_floats(ls, n_layers);
    double *G = svd_alloc(ng, err), *S = G ? svd_alloc(ng, err) : NULL, *R = S ? svd_alloc(nc, err) : NULL;
    double *mean = R ? svd_alloc(lay->total, err) : NULL;
    float *scratch = mean ? tt_calloc_aligned(mu_max_numel(ctx), sizeof(float), err) : NULL;
    bool *linear = scratch ? calloc((size_t)lay->count, sizeof(bool)) : NULL;
    int used[MERGE_MAX_TASKS], rc = -1;
    if (scratch && !linear) tt_fail(err, TT_ENOMEM, "out of memory");
    if (!linear) goto done;
    for (int j = 0; j < n_layers; j++) linear[ls[j].tensor] = true;
    progress pg;
    progress_start(&pg, "regmean", ctx->K, ctx->progress);
    for (int t = 0; t < ctx->K; t++) {
        if (regmean_grams(ctx, t, ls, n_layers, G, &used[t], err)) {
            progress_end(&pg);
            goto done;
        }
        for (int j = 0; j < n_layers; j++) {
            double *g = G + ls[j].gram_off;
            regmean_reduce_offdiag(g, ls[j].d_in, alpha);
            const float *W = merge_ft_tensor(ctx, t, ls[j].tensor, scratch);
            if (regmean_accumulate(S + ls[j].gram_off, R + ls[j].cross_off, g, W, ls[j].d_in, ls[j].d_out, err)) {
                progress_end(&pg);
                goto done;
            }
        }
        for (int l = 0; l < lay->count; l++) { /* the plain mean of everything else */
            if (linear[l]) continue;
            const float *th = merge_ft_tensor(ctx, t, l, scratch);
            double *m = mean + lay->t[l].offset;
            for (size_t i = 0; i < lay->t[l].numel; i++) m[i] += th[i];
        }
        progress_update(&pg, t + 1, "%s: %d images", ctx->s->tasks[t].name, used[t]);
    }
    progress_end(&pg);
    memcpy(ctx->out.params, ctx->pre.params, lay->total * sizeof(float));
    for (int l = 0; l < lay->count; l++) {
        if (linear[l]) continue;
        for (size_t i = 0; i < lay->t[l].numel; i++)
            ctx->out.params[lay->t[l].offset + i] = (float)(mean[lay->t[l].offset + i] / ctx->K);
    }
    for (int j = 0; j < n_layers; j++) {
        const regmean_layer *r = &ls[j];
        if (regmean_solve(S + r->gram_off, R + r->cross_off, r->d_in, r->d_out,
                          ctx->out.params + lay->t[r->tensor].offset, err)) {
            tt_prefix(err, "regmean: %s: the summed Gram matrix (an input feature that is 0 on every token of every "
                      "task makes it singular): ", lay->t[r->tensor].name);
            goto done;
        }
    }
    json_t *rec = json_object();
    json_object_set_new(rec, "samples", mu_json_per_task_int(ctx, used));
    json_object_set_new(rec, "alpha", json_real(alpha));
    json_object_set_new(rec, "regression_layers", json_integer(n_layers));
    rc = mu_record_finish(ctx, rec, NULL, err);
done:
    free(G);
    free(S);
    free(R);
    free(mean);
    free(scratch);
    free(linear);
    return rc;
}

static const merge_param regmean_params[] = {
    {"samples", "256", "training images per task for the Gram matrices (drawn by the seed; num_regmean_examples)"},
    {"batch", "32", "images per forward (memory only: the Gram is the mean over all token rows)"},
    {"alpha", "0.95", "scale of the Gram matrices' off-diagonal entries, in [0, 1] (reduce_non_diagonal_ratio)"},
    {0}};

const merge_method method_regmean = {
    .name = "regmean",
    .summary = "RegMean: each linear layer solves the least-squares merge over the experts' input Gram matrices",
    .needs = MERGE_NEEDS_TRAIN_INPUTS,
    .params = regmean_params,
    .run = regmean_run,
};
