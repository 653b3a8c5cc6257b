/* tatr.c — TATR: Task Arithmetic in Trust Region (Sun et al., "Task Arithmetic in Trust Region:
 * A Training-Free Model Merging Approach to Navigate Knowledge Conflicts", arXiv 2501.15065,
 * 2025). No official code exists; the formula follows FusionBench (tanganke/fusion_bench)
 * fusion_bench/method/trust_region/clip_task_arithmetic.py and docs/algorithms/trust_region.md,
 * without its bug (research/methods.md §4: the per-task gradients there overwrite each other,
 * so Ω ≡ 0 and the "merge" is the pretrained model).
 *
 *   g_i = (1/N) Σ_n |∇θ CE(f(x_n; θ0), y_n)|   (task i's head; per-sample |grad|, not |mean grad|)
 *         or g_i = |τ_i| (zero-shot TATR, the default: no data)
 *   Ω   = Σ_i Σ_{j≠i} g_i ⊙ |τ_j| = Σ_i g_i ⊙ (A − |τ_i|),   A = Σ_j |τ_j|      (global over all tensors)
 *   thr = sorted(Ω)[int((100 − q)/100 · d)]       (q = 1: the top 1% most conflicting coordinates)
 *   m   = 1{Ω < thr}
 *   θ = θ0 + λ Σ_t m ⊙ τ_t   (base=ta), or TIES on the m ⊙ τ_t (base=ties, the paper's
 *        "TATR & Ties-Merging" combination)
 * Choices: the exemplars are the first N labeled images of each task's VALIDATION split (the
 * suite's labeled merge-time data; FusionBench draws 128 training images); gradients are taken at
 * θ0 with batch 1, every backbone tensor; the quantile is an exact streaming select
 * (baselines/select.h), no sort.
 * Memory: A and Ω (two model-sized buffers; A is reused for the merged vector), plus two more
 * (Σ|grad| and one sample's grad) when exemplars > 0.
 *
 * Parameters: exemplars = 0 (zero-shot; N > 0 = gradient variant with N samples per task);
 * q = 1 (percent of coordinates masked); base/topk/merge (see merge_util.h); lambda = auto
 * ({0.1..1.0} on validation; {0.1..1.5} for ties+mean).
 * Record: exemplars used per task, q, the threshold, the mask density, base, grid and λ.
 */
#include "baselines/methods.h"

#include <math.h>
#include <string.h>

#include "baselines/kernels.h"
#include "baselines/base_merge.h"
#include "baselines/merge_util.h"
#include "baselines/select.h"
#include "core/arena.h"
#include "core/progress.h"

static void abs_add(float *acc, const float *x, size_t n) {
#pragma omp parallel for schedule(static) if (n > KERN_PAR_MIN)
    for (size_t i = 0; i < n; i++) acc[i] += fabsf(x[i]);
}

/* ---- g_i from labeled exemplars: mean per-sample |∇θ CE| at θ0 ---- */

typedef struct grad_state {
    vit_plan *plan;      /* batch 1 */
    vit_weights w0, gw;  /* θ0; one sample's gradient */
    float *gs, *img, *feat, *dfeat, *logits, *dlogits;
} grad_state;

static void grad_state_free(grad_state *s) {
    vit_plan_free(s->plan);
    vit_weights_free(&s->w0);
    vit_weights_free(&s->gw);
    void *bufs[] = {s->gs, s->img, s->feat, s->dfeat, s->logits, s->dlogits};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    memset(s, 0, sizeof *s);
}

static int grad_state_init(grad_state *s, merge_ctx *ctx, tt_err *err) {
    memset(s, 0, sizeof *s);
    const vit_config *cfg = &ctx->s->cfg;
    int most = 1;
    for (int t = 0; t < ctx->K; t++) most = ctx->s->tasks[t].classes > most ? ctx->s->tasks[t].classes : most;
    size_t img = (size_t)cfg->channels * cfg->image_size * cfg->image_size;
    s->plan = vit_plan_create(ctx->d, cfg, 1, err);
    if (!s->plan || !(s->gs = tt_calloc_aligned(ctx->pre.lay.total, sizeof(float), err)) ||
        !(s->img = tt_calloc_aligned(img, sizeof(float), err)) ||
        !(s->feat = tt_calloc_aligned((size_t)cfg->output_dim, sizeof(float), err)) ||
        !(s->dfeat = tt_calloc_aligned((size_t)cfg->output_dim, sizeof(float), err)) ||
        !(s->logits = tt_calloc_aligned((size_t)most, sizeof(float), err)) ||
        !(s->dlogits = tt_calloc_aligned((size_t)most, sizeof(float), err)) ||
        vit_weights_bind(&s->w0, &ctx->pre.lay, ctx->pre.params, NULL, err) ||
        vit_weights_bind(&s->gw, &ctx->pre.lay, s->gs, NULL, err)) {
        grad_state_free(s);
        return -1;
    }
    return 0;
}

/* g = (1/N) Σ_n |∇θ CE| over the first N validation images of task t; *used = N. */
static int exemplar_grads(merge_ctx *ctx, grad_state *s, int t, long want, float *g, int *used, progress *pg,
                          long *step, tt_err *err) {
    const suite_task_info *ti = &ctx->s->tasks[t];
    const vit_config *cfg = &ctx->s->cfg;
    size_t img = (size_t)cfg->channels * cfg->image_size * cfg->image_size, total = ctx->pre.lay.total;
    int n = want < ti->val.n ? (int)want : ti->val.n;
    if (n < 1) return tt_fail(err, TT_EINPUT, "TATR: task %s has no validation images for exemplars", ti->name);
    vit_head h;
    if (vit_head_init(&h, ctx->d, cfg, 1, ti->classes, err)) return -1;
    memset(g, 0, total * sizeof(float));
    for (int j = 0; j < n; j++) {
        int y = ti->val.labels[j];
        infer_normalize(s->img, ti->val.pixels + (size_t)j * img, 1, 1, img, &ctx->s->norm);
        vit_plan_reuse_weights(s->plan, j > 0); /* θ0 throughout: a bf16 plan converts it once per task */
        vit_forward(s->plan, &s->w0, s->img, s->feat);
        vit_head_forward(&h, s->logits, s->feat, ti->head.W, ti->head.b);
        op_cross_entropy(1, ti->classes, s->dlogits, s->logits, &y, 1.0f);
        vit_head_backward(&h, s->dfeat, NULL, NULL, s->dlogits, ti->head.W);
        memset(s->gs, 0, total * sizeof(float));
        vit_backward(s->plan, &s->w0, &s->gw, s->dfeat);
        abs_add(g, s->gs, total);
        progress_update(pg, ++*step, "gradients %s", ti->name);
    }
    vit_head_free(&h);
    float inv = 1.0f / (float)n;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < total; i++) g[i] *= inv;
    *used = n;
    return 0;
}

/* Ω into omega (zeroed by the caller), given A = Σ_j |τ_j|. */
static int compute_omega(merge_ctx *ctx, long exemplars, const float *A, float *omega, float *tv, int *used,
                         tt_err *err) {
    const vit_layout *lay = &ctx->pre.lay;
    grad_state gs = {0};
    float *g = NULL;
    if (exemplars > 0 &&
        (grad_state_init(&gs, ctx, err) || !(g = tt_calloc_aligned(lay->total, sizeof(float), err)))) {
        grad_state_free(&gs);
        return -1;
    }
    progress pg;
    long step = 0;
    progress_start(&pg, "tatr", exemplars > 0 ? ctx->K * exemplars : ctx->K, ctx->progress);
    int rc = 0;
    for (int i = 0; i < ctx->K && !rc; i++) {
        int n = 0;
        if (g && (rc = exemplar_grads(ctx, &gs, i, exemplars, g, &n, &pg, &step, err))) break;
        used[i] = n;
        for (int l = 0; l < lay->count; l++) {
            size_t off = lay->t[l].offset;
            merge_task_vector(ctx, i, l, tv);
            tatr_omega_add(omega + off, g ? g + off : NULL, A + off, tv, lay->t[l].numel);
        }
        if (!g) progress_update(&pg, ++step, "conflicts %s", ctx->s->tasks[i].name);
    }
    progress_end(&pg);
    free(g);
    grad_state_free(&gs);
    return rc ? -1 : 0;
}

/* The masked task vectors m ⊙ τ_k as a source; kept[l] (overwritten per visit) counts m. */
typedef struct mask_source {
    const float *omega;
    float thr;
    uint64_t *kept;
} mask_source;

static void masked_tv(const merge_ctx *ctx, int k, int l, float *out, void *user) {
    mask_source *ms = user;
    merge_task_vector(ctx, k, l, out);
    ms->kept[l] = tatr_mask(out, ms->omega + ctx->pre.lay.t[l].offset, ctx->pre.lay.t[l].numel, ms->thr);
}

static int tatr_run(merge_ctx *ctx, tt_err *err) {
    const vit_layout *lay = &ctx->pre.lay;
    long exemplars;
    double q;
    base_merge base;
    if (merge_param_int(ctx, "exemplars", &exemplars, err) || mu_param_range(ctx, "q", 0, 100, &q, err) ||
        base_merge_params(ctx, &base, err))
        return -1;
    if (exemplars < 0 || exemplars > 1000000)
        return tt_fail(err, TT_EINPUT, "parameter exemplars=%ld is out of range [0, 1000000]", exemplars);
    float *A = tt_calloc_aligned(lay->total, sizeof(float), err);
    float *omega = A ? tt_calloc_aligned(lay->total, sizeof(float), err) : NULL;
    float *tv = omega ? tt_calloc_aligned(mu_max_numel(ctx), sizeof(float), err) : NULL;
    uint64_t kept[512] = {0};
    int used[MERGE_MAX_TASKS];
    double lam;
    char frag[2048];
    int rc = -1;
    if (!tv) goto done;
    for (int l = 0; l < lay->count; l++)
        for (int k = 0; k < ctx->K; k++) {
            merge_task_vector(ctx, k, l, tv);
            abs_add(A + lay->t[l].offset, tv, lay->t[l].numel);
        }
    if (compute_omega(ctx, exemplars, A, omega, tv, used, err)) goto done;
    uint64_t rank;
    float thr = INFINITY; /* q = 0: nothing masked */
    if (tatr_threshold_rank(mu_param_count(ctx), q, &rank)) {
        select_ctx sel;
        if (select_init(&sel, rank, false, err)) goto done;
        do
            for (int l = 0; l < lay->count; l++) select_feed(&sel, omega + lay->t[l].offset, lay->t[l].numel);
        while (select_next_pass(&sel));
        thr = select_value(&sel);
        select_free(&sel);
    }
    mask_source ms = {omega, thr, kept};
    mu_tv_source src = {masked_tv, &ms};
    float *delta = A; /* A is no longer needed */
    if (base_merge_run(ctx, &base, &src, delta, err) || base_merge_search(ctx, &base, delta, &lam, frag, sizeof frag, err))
        goto done;
    uint64_t on = 0;
    for (int l = 0; l < lay->count; l++) on += kept[l];
    json_t *rec = json_object();
    json_object_set_new(rec, "variant", json_string(exemplars > 0 ? "gradient" : "zero-shot"));
    if (exemplars > 0) json_object_set_new(rec, "exemplars", mu_json_per_task_int(ctx, used));
    json_object_set_new(rec, "q", json_real(q));
    if (isfinite(thr)) json_object_set_new(rec, "threshold", json_real(thr));
    json_object_set_new(rec, "mask_density", json_real((double)on / (double)mu_param_count(ctx)));
    base_merge_record(rec, &base);
    rc = mu_record_finish(ctx, rec, frag, err);
done:
    free(A);
    free(omega);
    free(tv);
    return rc;
}

static const merge_param tatr_params[] = {
    {"exemplars", "0", "labeled validation images per task for the gradients; 0 = zero-shot (g = |tau|)"},
    {"q", "1", "percent of coordinates masked (largest conflict Omega)"},
    BASE_MERGE_PARAMS,
    {"lambda", "auto", "scaling; auto = grid {0.1..1.0} ({0.1..1.5} for ties+mean) on validation"},
    {0}};

const merge_method method_tatr = {
    .name = "tatr",
    .summary = "Task Arithmetic in Trust Region: mask the top-q% conflict coordinates, then TA (or TIES)",
    .needs = MERGE_NEEDS_VAL,
    .params = tatr_params,
    .run = tatr_run,
};
