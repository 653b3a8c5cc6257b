/* graft.c — skill localization by grafting, as a multi-task merge: Localize-and-Stitch (He et
 * al., "Localize-and-Stitch: Efficient Model Merging via Sparse Task Arithmetic", arXiv
 * 2408.13656; yifei-he/Localize-and-Stitch `localize_utils.py` (Localizer, Stitcher),
 * `vision/src/main_localize_stitch.py`, `vision/src/main_dataless_localize_stitch.py`,
 * `vision/src/vision_datasets/registry.py` create_k_shot_dataset) on top of the grafting of
 * Panigrahi et al. ("Task-Specific Skill Localization in Fine-tuned Language Models", ICML 2023;
 * abhishekpanigrahi1996/Skill-Localization-by-grafting `src/graft_trainer.py`, `Grafting.py`).
 *
 * Localize, per task t (one task's scores in memory at a time):
 *   b_t   = 1 on the top-`sparsity` fraction of |τ_t| over the whole model, else 0 (basepatch)
 *   γ(S)  = b + (1 − 2b) ⊙ σ(S − s_bias)          (σ = probability of flipping b)
 *   L(S)  = mean CE of head_t(f(x; θ0 + γ(S) ⊙ τ_t)) over the task's labeled shots
 *   ∂L/∂S = (1 − 2b) ⊙ (∂L/∂θ ⊙ τ_t) ⊙ σ'(S − s_bias)     (∂L/∂θ from one engine backward)
 *   S    ← S − lr ∂L/∂S − l1 (1 − 2b) σ'(S − s_bias)      (plain GD, one step per epoch)
 *   after every step: m = round(γ) ∈ {0,1}; keep the m with the best accuracy on the shots
 *   (ties: lower loss, then the earlier epoch).
 * Stitch: θ = θ0 + Σ_t (m_t / Σ_j m_j) ⊙ τ_t   (where masks overlap, the task vectors are averaged)
 * Dataless (localize=dataless): m_t = b_t, no data, no optimisation.
 *
 * Official choices followed: sigmoid_bias 5, 10 epochs, batch 128, l1_strength 1 (L&S script);
 * scores start at S = 0, i.e. mask logits ±s_bias (L&S; init=uniform gives Panigrahi's
 * S ~ U[0,1) with its own s_bias, 10); one plain gradient step per pass over the shots, the
 * step's gradient taken at the relaxed γ, rounding by torch.round (γ = 1/2 → 0); shots = the
 * first 64 images of each class of the TRAINING split in data order, at most 1024 per task
 * (create_k_shot_dataset reads `dataset.train_dataset` of the plain, non-"Val" dataset — not
 * the validation split); the task's own frozen zero-shot head; every backbone tensor (L&S
 * freezes only the text-side tensors, which our checkpoints do not hold); keep the best rounded
 * mask by accuracy on the data it was trained on (Panigrahi's train+val criterion with our
 * shots as both; L&S returns the last mask).
 * Deviations, and why:
 *   - lr = auto, not a fixed 1e7: the step of a score is lr·|∂L/∂θ ⊙ τ|·σ', and its scale depends
 *     on the model (measured at the first step: the 99th percentile of |∂L/∂θ ⊙ τ| is ~1e-3 on
 *     tiny and ~1e-4 on vision8, so a fixed lr that moves vision8's masks flips most of tiny's).
 *     auto = s_bias / (epochs · q), q = the top-`sparsity` quantile of |∂L/∂S| at the first step:
 *     a score with that gradient moves by s_bias (enough to flip its weight) over the run. It is
 *     still plain GD with one constant, large lr (3e4–2e5 on tiny, 3e5–3e6 on vision8); lr=1e7
 *     gives the official constant.
 *   - sparsity 1%, not the script's 1e-5 (L&S's paper/README: "1% of the total parameters"):
 *     1e-5 of our 28,704 (tiny) or 208,576 (vision8) weights is 0 or 2; 1% is 287 or 2,085 per task,
 *     the fraction L&S reports for its masks and uses for its dataless baseline.
 *   - The L1 term is the gradient of l1·Σγ (the paper's ‖γ‖₁), i.e. the commented-out line of
 *     localize_utils.py. The active line, p -= g·σ' − l1·sign(p)·σ', pushes each logit away from
 *     0: it reinforces whichever side of 1/2 a weight is on and never sparsifies a weight that
 *     is in the mask.
 *   - The loss is the mean over all shots; L&S sums the per-batch mean gradients (its counter
 *     stays at 1), which differs only when the shots exceed one batch (batch is memory here).
 *   - The basepatch holds exactly k = floor(sparsity·d) weights (ties at the threshold broken in
 *     layout order); the official `|τ| > min(topk)` keeps k − 1 and drops every tie.
 *   - The dataless script as published cannot run (it sets graft_args.sparsity_level = 0.1 while
 *     Localizer reads graft_args.sparsity); we use the same `sparsity` as the basepatch.
 * Memory: τ_t, S_t and one gradient (3 model-sized float buffers), the basepatch and K masks as
 * bytes, the task's normalised shots; the stitch streams task vectors tensor by tensor. One
 * oneDNN plan per task, built before its first step; nothing is allocated in the step loop.
 *
 * Parameters: localize = graft | dataless; sparsity = 0.01; sigmoid_bias = 5; lr = auto; epochs =
 * 10; l1 = 1; shots = 64 per class; max_shots = 1024; split = train | val; batch = 128;
 * init = zero | uniform.
 * Record, per task: shots, weights kept, basepatch and mask density, overlap (fraction of the mask that
 * another task's mask shares), grafted-alone and fine-tuned accuracy and loss on the shots, the
 * relaxed loss at the first and last step, the epoch kept, the lr; the stitched density (union).
 */
#include "baselines/methods.h"

#include <math.h>
#include <string.h>

#include "baselines/kernels.h"
#include "baselines/merge_util.h"
#include "baselines/select.h"
#include "core/arena.h"
#include "core/progress.h"

/* ---- kernels (kernels.h) ---- */

static inline float sigm(float x) { return 1.0f / (1.0f + expf(-x)); }

void graft_apply(float *theta, const float *pre, const float *tv, const float *S, const uint8_t *b, size_t n,
                 float sbias, bool rounded) {
#pragma omp parallel for schedule(static) if (n > KERN_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float x = S[i] - sbias, g;
        if (rounded) g = b[i] ? (float)(x < 0) : (float)(x > 0);
        else g = b[i] ? sigm(-x) : sigm(x); /* 1 − σ(x) = σ(−x), without the cancellation */
        theta[i] = pre[i] + g * tv[i];
    }
}

void graft_score_grad(float *g, const float *tv, const float *S, const uint8_t *b, size_t n, float sbias) {
#pragma omp parallel for schedule(static) if (n > KERN_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float s = sigm(S[i] - sbias), d = s * (1.0f - s);
        g[i] = (b[i] ? -d : d) * (g[i] * tv[i]);
    }
}

void graft_step(float *S, const float *gS, const uint8_t *b, size_t n, float sbias, float lr, float l1) {
#pragma omp parallel for schedule(static) if (n > KERN_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float s = sigm(S[i] - sbias), d = s * (1.0f - s);
        S[i] -= lr * gS[i] + l1 * (b[i] ? -d : d);
    }
}

size_t graft_round(uint8_t *m, const float *S, const uint8_t *b, size_t n, float sbias) {
    size_t on = 0;
#pragma omp parallel for schedule(static) reduction(+ : on) if (n > KERN_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        m[i] = b[i] ? S[i] < sbias : S[i] > sbias;
        on += m[i];
    }
    return on;
}

size_t graft_count_above(const float *tv, size_t n, float thr) {
    size_t above = 0;
#pragma omp parallel for schedule(static) reduction(+ : above) if (n > KERN_PAR_MIN)
    for (size_t i = 0; i < n; i++) above += fabsf(tv[i]) > thr;
    return above;
}

size_t graft_topk_mark(uint8_t *m, const float *tv, size_t n, float thr, uint64_t *ties_left) {
    size_t on = 0;
    for (size_t i = 0; i < n; i++) {
        float a = fabsf(tv[i]);
        m[i] = a > thr || (a == thr && *ties_left > 0);
        if (a == thr && m[i]) --*ties_left;
        on += m[i];
    }
    return on;
}

void graft_count_add(uint8_t *count, const uint8_t *m, size_t n) {
#pragma omp parallel for schedule(static) if (n > KERN_PAR_MIN)
    for (size_t i = 0; i < n; i++) count[i] += m[i];
}

size_t graft_overlap(const uint8_t *m, const uint8_t *count, size_t n) {
    size_t shared = 0;
#pragma omp parallel for schedule(static) reduction(+ : shared) if (n > KERN_PAR_MIN)
    for (size_t i = 0; i < n; i++) shared += m[i] && count[i] >= 2;
    return shared;
}

void graft_stitch_add(float *out, const float *tv, const uint8_t *m, const uint8_t *count, size_t n) {
#pragma omp parallel for schedule(static) if (n > KERN_PAR_MIN)
    for (size_t i = 0; i < n; i++)
        if (m[i]) out[i] += tv[i] / (float)count[i];
}

/* ---- parameters ---- */

typedef struct graft_opts {
    bool dataless, from_val, init_uniform, lr_auto;
    double sparsity;
    float sbias, lr, l1;
    int epochs, batch, shots, max_shots;
} graft_opts;

static int read_opts(const merge_ctx *ctx, graft_opts *o, tt_err *err) {
    static const char *const localize[] = {"graft", "dataless"}, *const split[] = {"train", "val"},
                             *const init[] = {"zero", "uniform"};
    int loc, sp, in;
    double sbias, lr = 0, l1;
    if (mu_param_choice(ctx, "localize", localize, 2, &loc, err) || mu_param_choice(ctx, "split", split, 2, &sp, err) ||
        mu_param_choice(ctx, "init", init, 2, &in, err) || mu_param_range(ctx, "sparsity", 0, 1, &o->sparsity, err) ||
        mu_param_range(ctx, "sigmoid_bias", 0, 50, &sbias, err) ||
        (!(o->lr_auto = merge_param_is_auto(ctx, "lr")) && mu_param_range(ctx, "lr", 0, 1e12, &lr, err)) ||
        mu_param_range(ctx, "l1", 0, 1e6, &l1, err) || mu_param_int_range(ctx, "epochs", 0, 100000, &o->epochs, err) ||
        mu_param_int_range(ctx, "batch", 1, 4096, &o->batch, err) ||
        mu_param_int_range(ctx, "shots", 1, 1000000, &o->shots, err) ||
        mu_param_int_range(ctx, "max_shots", 1, 1000000, &o->max_shots, err))
        return -1;
    o->dataless = loc == 1;
    o->from_val = sp == 1;
    o->init_uniform = in == 1;
    o->sbias = (float)sbias, o->lr = (float)lr, o->l1 = (float)l1;
    if (o->lr_auto && sbias == 0) return tt_fail(err, TT_EINPUT, "graft: lr=auto needs sigmoid_bias > 0");
    if (ctx->K > 255) return tt_fail(err, TT_EINPUT, "graft: at most 255 tasks (mask counts are bytes)");
    return 0;
}

/* ---- one task's localisation state ---- */

typedef struct localizer {
    merge_ctx *ctx;
    graft_opts o;
    int t, C, N, B;        /* task, classes, shots, planned batch */
    size_t total, img;
    float *tv, *S, *g;     /* [total]: τ_t, scores, ∂L/∂θ (then ∂L/∂S in place) */
    uint8_t *b;            /* [total] basepatch */
    uint64_t basepatch;    /* Σ b */
    float *images;         /* [ceil(N/B)·B, img] normalised shots, zero-padded */
    int32_t *labels;       /* [N] */
    vit_plan *plan;
    vit_head head;
    bool head_ok;
    vit_weights w, gw;     /* bound to ctx->out.params and g */
    float *feat, *dfeat, *logits, *dlogits;
} localizer;

static void localizer_free(localizer *L) {
    vit_plan_free(L->plan);
    if (L->head_ok) vit_head_free(&L->head);
    vit_weights_free(&L->w);
    vit_weights_free(&L->gw);
    void *bufs[] = {L->tv, L->S, L->g, L->b, L->images, L->labels, L->feat, L->dfeat, L->logits, L->dlogits};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    memset(L, 0, sizeof *L);
}

/* b = the top k = floor(sparsity·d) of |τ_t| over every tensor (exactly k: ties in layout order). */
static int make_basepatch(localizer *L, tt_err *err) {
    const vit_layout *lay = &L->ctx->pre.lay;
    uint64_t d = mu_param_count(L->ctx), k = (uint64_t)floor(L->o.sparsity * (double)d);
    if (k == 0)
        return tt_fail(err, TT_EINPUT, "parameter sparsity=%s keeps no weight of %llu (need sparsity >= %.3g)",
                       merge_param_str(L->ctx, "sparsity"), (unsigned long long)d, 1.0 / (double)d);
    select_ctx sel;
    if (select_init(&sel, d - k, true, err)) return -1; /* ascending rank d − k = the k-th largest */
    do
        for (int l = 0; l < lay->count; l++) select_feed(&sel, L->tv + lay->t[l].offset, lay->t[l].numel);
    while (select_next_pass(&sel));
    float thr = select_value(&sel);
    select_free(&sel);
    uint64_t above = 0;
    for (int l = 0; l < lay->count; l++) above += graft_count_above(L->tv + lay->t[l].offset, lay->t[l].numel, thr);
    uint64_t ties = k - above;
    L->basepatch = 0;
    for (int l = 0; l < lay->count; l++)
        L->basepatch += graft_topk_mark(L->b + lay->t[l].offset, L->tv + lay->t[l].offset, lay->t[l].numel, thr, &ties);
    TT_ASSERT(L->basepatch == k);
    return 0;
}

/* The first o.shots images of each class of the chosen split, in data order, at most max_shots. */
static int load_shots(localizer *L, tt_err *err) {
    merge_ctx *ctx = L->ctx;
    const suite_task_info *ti = &ctx->s->tasks[L->t];
    ds_images train = {0};
    const ds_images *im = &ti->val;
    if (!L->o.from_val) {
        if (suite_load_train(ctx->s, L->t, &train, err)) return -1;
        im = &train;
    }
    int rc = -1, *per_class = calloc((size_t)L->C, sizeof(int)), *idx = malloc(((size_t)im->n + 1) * sizeof(int));
    if (!per_class || !idx) {
        tt_fail(err, TT_ENOMEM, "out of memory");
        goto done;
    }
    int n = 0;
    for (int i = 0; i < im->n && n < L->o.max_shots; i++) {
        int y = im->labels[i];
        if (y < 0 || y >= L->C) {
            tt_fail(err, TT_EINPUT, "%s/data/%s: %s label %d at [%d] is outside [0, %d)", ctx->s->dir, ti->name,
                    L->o.from_val ? "val" : "train", y, i, L->C);
            goto done;
        }
        if (per_class[y] < L->o.shots) per_class[y]++, idx[n++] = i;
    }
    if (n == 0) {
        tt_fail(err, TT_EINPUT, "graft: task %s has no %s images for its shots", ti->name, L->o.from_val ? "val" : "train");
        goto done;
    }
    L->N = n;
    L->B = n < L->o.batch ? n : L->o.batch;
    size_t padded = ((size_t)n + L->B - 1) / L->B * L->B;
    L->images = tt_calloc_aligned(padded * L->img, sizeof(float), err);
    L->labels = tt_calloc_aligned((size_t)n, sizeof(int32_t), err);
    if (!L->images || !L->labels) goto done;
    for (int j = 0; j < n; j++) {
        infer_normalize(L->images + (size_t)j * L->img, im->pixels + (size_t)idx[j] * L->img, 1, 1, L->img, ctx->s->mean,
                        ctx->s->std);
        L->labels[j] = im->labels[idx[j]];
    }
    rc = 0;
done:
    free(per_class);
    free(idx);
    ds_images_free(&train);
    return rc;
}

static int localizer_init(localizer *L, merge_ctx *ctx, int t, bool with_data, tt_err *err) {
    memset(L, 0, sizeof *L);
    L->ctx = ctx;
    L->t = t;
    if (read_opts(ctx, &L->o, err)) return -1;
    const vit_config *cfg = &ctx->s->cfg;
    const vit_layout *lay = &ctx->pre.lay;
    L->C = ctx->s->tasks[t].classes;
    L->total = lay->total;
    L->img = (size_t)cfg->channels * cfg->image_size * cfg->image_size;
    if (!(L->tv = tt_calloc_aligned(L->total, sizeof(float), err)) ||
        !(L->S = tt_calloc_aligned(L->total, sizeof(float), err)) ||
        !(L->b = tt_calloc_aligned(L->total, sizeof(uint8_t), err)))
        return -1;
    for (int l = 0; l < lay->count; l++) merge_task_vector(ctx, t, l, L->tv + lay->t[l].offset);
    if (make_basepatch(L, err)) return -1;
    if (L->o.init_uniform) /* counter-based: independent of the thread count */
        for (size_t i = 0; i < L->total; i++) L->S[i] = (float)kern_hash_u01(ctx->seed, 0x67726166u, (uint64_t)t, i);
    if (!with_data) return 0;
    int D = cfg->output_dim;
    if (load_shots(L, err) || !(L->g = tt_calloc_aligned(L->total, sizeof(float), err)) ||
        !(L->feat = tt_calloc_aligned((size_t)L->B * D, sizeof(float), err)) ||
        !(L->dfeat = tt_calloc_aligned((size_t)L->B * D, sizeof(float), err)) ||
        !(L->logits = tt_calloc_aligned((size_t)L->B * L->C, sizeof(float), err)) ||
        !(L->dlogits = tt_calloc_aligned((size_t)L->B * L->C, sizeof(float), err)) ||
        !(L->plan = vit_plan_create(ctx->d, cfg, L->B, err)) ||
        vit_head_init(&L->head, ctx->d, cfg, L->B, L->C, err))
        return -1;
    L->head_ok = true;
    if (vit_weights_bind(&L->w, lay, ctx->out.params, NULL, err) || vit_weights_bind(&L->gw, lay, L->g, NULL, err))
        return -1;
    return 0;
}

/* Mean CE and accuracy (%) of ctx->out on the shots; with backward, ∂(mean CE)/∂θ into L->g. */
static double shots_pass(localizer *L, bool backward, double *acc) {
    const suite_task_info *ti = &L->ctx->s->tasks[L->t];
    int C = L->C, B = L->B;
    if (backward) memset(L->g, 0, L->total * sizeof(float));
    double loss = 0;
    long correct = 0;
    for (int at = 0; at < L->N; at += B) {
        int nb = L->N - at < B ? L->N - at : B;
        vit_plan_reuse_weights(L->plan, at > 0); /* one model per pass: a bf16 plan converts it once */
        vit_forward(L->plan, &L->w, L->images + (size_t)at * L->img, L->feat);
        vit_head_forward(&L->head, L->logits, L->feat, ti->head.W, ti->head.b);
        for (int r = 0; r < nb; r++) {
            const float *z = L->logits + (size_t)r * C;
            int am = 0;
            for (int c = 1; c < C; c++)
                if (z[c] > z[am]) am = c;
            correct += am == L->labels[at + r];
        }
        /* weight nb/N: Σ over batches of the batch means = the mean over all shots */
        loss += op_cross_entropy(nb, C, backward ? L->dlogits : NULL, L->logits, L->labels + at, (float)nb / (float)L->N);
        if (!backward) continue;
        memset(L->dlogits + (size_t)nb * C, 0, (size_t)(B - nb) * C * sizeof(float)); /* padded rows */
        vit_head_backward(&L->head, L->dfeat, NULL, NULL, L->dlogits, ti->head.W);
        vit_backward(L->plan, &L->w, &L->gw, L->dfeat);
    }
    if (acc) *acc = 100.0 * (double)correct / L->N;
    return loss;
}

/* L(S) at the relaxed γ, and ∂L/∂S into L->g. */
static double objective(localizer *L) {
    merge_ctx *ctx = L->ctx;
    graft_apply(ctx->out.params, ctx->pre.params, L->tv, L->S, L->b, L->total, L->o.sbias, false);
    double loss = shots_pass(L, true, NULL);
    graft_score_grad(L->g, L->tv, L->S, L->b, L->total, L->o.sbias);
    return loss;
}

static uint64_t mask_count(const merge_ctx *ctx, const uint8_t *m) {
    uint64_t on = 0;
    for (int l = 0; l < ctx->pre.lay.count; l++)
        for (size_t i = 0; i < ctx->pre.lay.t[l].numel; i++) on += m[ctx->pre.lay.t[l].offset + i];
    return on;
}

/* lr = auto: s_bias / (epochs · q), q = the top-`sparsity` quantile of |∂L/∂S| at the first step
 * (the k-th largest, k = the basepatch size): a score with that gradient would move by s_bias —
 * enough to flip its weight — over the run at its initial rate. Plain GD with a constant lr, like
 * the official 1e7, but scaled to the model instead of fixed. */
static int auto_lr(localizer *L, float *lr, tt_err *err) {
    const vit_layout *lay = &L->ctx->pre.lay;
    select_ctx sel;
    if (select_init(&sel, mu_param_count(L->ctx) - L->basepatch, true, err)) return -1;
    do
        for (int l = 0; l < lay->count; l++) select_feed(&sel, L->g + lay->t[l].offset, lay->t[l].numel);
    while (select_next_pass(&sel));
    float q = select_value(&sel);
    select_free(&sel);
    if (!(q > 0))
        return tt_fail(err, TT_ENUMERIC, "graft: task %s: the gradient of the scores is 0 at its top-sparsity quantile; "
                       "set lr", L->ctx->s->tasks[L->t].name);
    *lr = L->o.sbias / ((float)L->o.epochs * q);
    return 0;
}

int graft_localize(merge_ctx *ctx, int t, uint8_t *mask, graft_info *info, tt_err *err) {
    memset(info, 0, sizeof *info);
    graft_opts o;
    if (read_opts(ctx, &o, err)) return -1;
    localizer L;
    int rc = -1;
    if (localizer_init(&L, ctx, t, !o.dataless, err)) goto done;
    double d = (double)mu_param_count(ctx);
    info->basepatch = L.basepatch;
    memcpy(mask, L.b, L.total);
    if (o.dataless) {
        info->kept = L.basepatch;
        info->density = (double)info->kept / d;
        rc = 0;
        goto done;
    }
    info->shots = L.N;
    /* the expert θ_t = θ0 + τ_t on the same shots, for comparison */
    for (size_t i = 0; i < L.total; i++) ctx->out.params[i] = ctx->pre.params[i] + L.tv[i];
    info->loss_finetuned = shots_pass(&L, false, &info->acc_finetuned);
    graft_apply(ctx->out.params, ctx->pre.params, L.tv, L.S, L.b, L.total, o.sbias, true);
    info->loss_graft = shots_pass(&L, false, &info->acc_graft); /* epochs = 0: the basepatch itself */
    double best_acc = -1, best_loss = INFINITY;
    for (int e = 0; e < o.epochs; e++) {
        double loss = objective(&L);
        if (!isfinite(loss)) {
            tt_fail(err, TT_ENUMERIC, "graft: task %s: loss is %g at epoch %d; try a smaller lr", ctx->s->tasks[t].name,
                    loss, e + 1);
            goto done;
        }
        if (e == 0) info->loss_first = loss;
        info->loss_last = loss;
        if (e == 0 && o.lr_auto && auto_lr(&L, &o.lr, err)) goto done;
        info->lr = o.lr;
        graft_step(L.S, L.g, L.b, L.total, o.sbias, o.lr, o.l1);
        graft_apply(ctx->out.params, ctx->pre.params, L.tv, L.S, L.b, L.total, o.sbias, true);
        double acc, rl = shots_pass(&L, false, &acc);
        if (acc > best_acc || (acc == best_acc && rl < best_loss)) {
            best_acc = acc, best_loss = rl;
            for (int l = 0; l < ctx->pre.lay.count; l++) { /* tensor entries only: padding stays 0 */
                size_t off = ctx->pre.lay.t[l].offset;
                graft_round(mask + off, L.S + off, L.b + off, ctx->pre.lay.t[l].numel, o.sbias);
            }
            info->acc_graft = acc, info->loss_graft = rl, info->best_epoch = e + 1;
        }
    }
    info->kept = mask_count(ctx, mask);
    info->density = (double)info->kept / d;
    rc = 0;
done:
    localizer_free(&L);
    return rc;
}

int graft_objective(merge_ctx *ctx, int t, const float *S, double *loss, float *grad, uint8_t *basepatch,
                    tt_err *err) {
    localizer L;
    int rc = -1;
    if (localizer_init(&L, ctx, t, true, err)) goto done;
    memcpy(L.S, S, L.total * sizeof(float));
    *loss = objective(&L);
    if (grad) memcpy(grad, L.g, L.total * sizeof(float));
    if (basepatch) memcpy(basepatch, L.b, L.total);
    rc = 0;
done:
    localizer_free(&L);
    return rc;
}

/* ---- the method ---- */

static int graft_run(merge_ctx *ctx, tt_err *err) {
    const vit_layout *lay = &ctx->pre.lay;
    size_t total = lay->total;
    graft_opts o;
    if (read_opts(ctx, &o, err)) return -1;
    uint8_t *masks = tt_calloc_aligned((size_t)ctx->K * total, 1, err);
    uint8_t *count = masks ? tt_calloc_aligned(total, 1, err) : NULL;
    float *tv = count ? tt_calloc_aligned(mu_max_numel(ctx), sizeof(float), err) : NULL;
    graft_info info[MERGE_MAX_TASKS];
    int rc = -1;
    if (!tv) goto done;
    progress pg;
    progress_start(&pg, o.dataless ? "graft (dataless)" : "graft", ctx->K, ctx->progress);
    for (int t = 0; t < ctx->K; t++) {
        if (graft_localize(ctx, t, masks + (size_t)t * total, &info[t], err)) {
            progress_end(&pg);
            goto done;
        }
        graft_count_add(count, masks + (size_t)t * total, total);
        progress_update(&pg, t + 1, "%s: %.2f%% of the weights", ctx->s->tasks[t].name, 100 * info[t].density);
    }
    double seconds = progress_end(&pg);
    /* stitch: θ = θ0 + Σ_t m_t ⊙ τ_t / Σ_j m_j, streamed tensor by tensor */
    memcpy(ctx->out.params, ctx->pre.params, total * sizeof(float));
    for (int l = 0; l < lay->count; l++) {
        size_t off = lay->t[l].offset, n = lay->t[l].numel;
        for (int t = 0; t < ctx->K; t++) {
            merge_task_vector(ctx, t, l, tv);
            graft_stitch_add(ctx->out.params + off, tv, masks + (size_t)t * total + off, count + off, n);
        }
    }
    double d = (double)mu_param_count(ctx);
    uint64_t uni = 0;
    for (int l = 0; l < lay->count; l++)
        for (size_t i = 0; i < lay->t[l].numel; i++) uni += count[lay->t[l].offset + i] > 0;
    json_t *rec = json_object(), *tasks = json_object();
    json_object_set_new(rec, "localize", json_string(o.dataless ? "dataless" : "graft"));
    for (int t = 0; t < ctx->K; t++) {
        const graft_info *in = &info[t];
        uint64_t shared = graft_overlap(masks + (size_t)t * total, count, total);
        json_t *r = json_object();
        json_object_set_new(r, "kept", json_integer((json_int_t)in->kept));
        json_object_set_new(r, "density", json_real(in->density));
        json_object_set_new(r, "basepatch_density", json_real((double)in->basepatch / d));
        json_object_set_new(r, "overlap", json_real(in->kept ? (double)shared / (double)in->kept : 0));
        if (!o.dataless) {
            json_object_set_new(r, "shots", json_integer(in->shots));
            json_object_set_new(r, "shots_acc_graft", json_real(in->acc_graft));
            json_object_set_new(r, "shots_acc_finetuned", json_real(in->acc_finetuned));
            json_object_set_new(r, "rounded_loss", json_real(in->loss_graft));
            json_object_set_new(r, "finetuned_loss", json_real(in->loss_finetuned));
            json_object_set_new(r, "relaxed_loss_first", json_real(in->loss_first));
            json_object_set_new(r, "relaxed_loss_last", json_real(in->loss_last));
            json_object_set_new(r, "best_epoch", json_integer(in->best_epoch));
            json_object_set_new(r, "lr", json_real(in->lr));
        }
        json_object_set_new(tasks, ctx->s->tasks[t].name, r);
    }
    json_object_set_new(rec, "tasks", tasks);
    json_object_set_new(rec, "stitched_density", json_real((double)uni / d));
    json_object_set_new(rec, "localize_seconds", json_real(seconds));
    rc = mu_record_finish(ctx, rec, NULL, err);
done:
    free(masks);
    free(count);
    free(tv);
    return rc;
}

static const merge_param graft_params[] = {
    {"localize", "graft", "graft (learn each task's mask on labeled shots) | dataless (mask = basepatch, no data)"},
    {"sparsity", "0.01", "fraction of the weights in the basepatch: the top |tau| over the whole model"},
    {"sigmoid_bias", "5", "s_bias in gamma = b + (1-2b) sigmoid(S - s_bias)"},
    {"lr", "auto", "plain gradient-descent step on the scores S; auto = s_bias / (epochs * top-sparsity quantile of |dL/dS|)"},
    {"epochs", "10", "gradient steps, one per pass over the shots"},
    {"l1", "1", "L1 penalty on the mask (not scaled by lr)"},
    {"shots", "64", "labeled images per class"},
    {"max_shots", "1024", "at most this many shots per task"},
    {"split", "train", "where the shots come from: train | val"},
    {"batch", "128", "images per forward/backward (memory only: the loss is the mean over all shots)"},
    {"init", "zero", "scores at start: zero (Localize-and-Stitch) | uniform (U[0,1), Panigrahi et al.)"},
    {0}};

const merge_method method_graft = {
    .name = "graft",
    .summary = "Localize-and-Stitch: learn a sparse mask per task by grafting, stitch the masked task vectors",
    .needs = MERGE_NEEDS_TRAIN,
    .params = graft_params,
    .run = graft_run,
};
