/* adapt.c — see adapt.h. */
#include "adamerge/adapt.h"

#include <math.h>
#include <string.h>

#include "core/arena.h"
#include "core/fileio.h"
#include "core/lanes.h"
#include "core/par.h"
#include "core/progress.h"
#include "core/rng.h"
#include "core/train.h"

typedef struct task_stream {   /* shuffled, endlessly cycling indices into a task's test split */
    int *order, n, pos;
} task_stream;

typedef struct adapt_state {
    merge_ctx *ctx;
    const adapt_opts *o;
    const float *tv;
    int K, L, n_coef, plan_batch;
    int chunk;                 /* images per forward+backward: o->micro, or the whole plan_batch */
    int part;                  /* images per head call: gcd(chunk, batch), so that no part straddles two tasks */
    int rank, ranks, local;    /* data parallel (core/par.h): this rank runs images [rank*local, +local) of a chunk */
    size_t total, img;
    float *lam_raw;            /* [K * n_coef] Adam parameters (unclamped) */
    float *lam_grad;
    adamw lam_opt, tint_opt[MERGE_MAX_TASKS];
    float *tint[MERGE_MAX_TASKS], *tint_grad[MERGE_MAX_TASKS]; /* the head, or Δ_k of the tinted tensor */
    float *theta_k;            /* [numel] θ_l + Δ_k of the task that runs (train_tensor) */
    /* divergence: the coefficients (and tints) at the start of the current round and of the
     * best round so far, [K * n_coef] and one tint's size per task */
    float *round_lam, *best_lam;
    float *round_tint[MERGE_MAX_TASKS], *best_tint[MERGE_MAX_TASKS];
    vit_lanes lanes;           /* forward+backward of a chunk, one lane per thread */
    vit_head head[MERGE_MAX_TASKS];
    vit_weights w, g;
    float *grad;               /* [total] dL/dθ of one forward_backward call, summed over its chunks */
    float *images, *features, *dfeat; /* [chunk * img], [chunk * D], [chunk * D] */
    float *logits, *dlogits;   /* [part * classes] */
    float *head_grad;          /* [classes*D + classes] a head's unscaled gradient (pseudo-conf, part < batch) */
    double *dot_part;          /* [chunks of the largest tensor][K] partial dot products */
    task_stream stream[MERGE_MAX_TASKS];
    int32_t *pseudo[MERGE_MAX_TASKS]; /* expert hard labels per test image */
    float *pseudo_conf[MERGE_MAX_TASKS];
    int *batch_idx;            /* [plan_batch] test indices of the current batch, all chunks */
    rng r;
} adapt_state;

static float clamp01(float x) { return x < 0 ? 0 : x > 1 ? 1 : x; }
static int gcd(int a, int b) { return b ? gcd(b, a % b) : a; }
/* pseudo-conf on parts of a task's batch: gradients are scaled after the last part (loss_and_grad) */
static bool deferred(const adapt_state *s) { return s->o->loss == ADAPT_PSEUDO_CONF && s->part < s->o->batch; }
static bool has_tint(const adapt_opts *o) { return o->train_heads || o->train_tensor; }
static const float *head_W(const adapt_state *s, int k) {
    return s->o->train_heads ? s->tint[k] : s->ctx->s->tasks[k].head.W;
}
static const float *head_b(const adapt_state *s, int k) {
    const suite_task_info *ti = &s->ctx->s->tasks[k];
    return s->o->train_heads ? s->tint[k] + (size_t)ti->classes * s->ctx->s->cfg.output_dim : ti->head.b;
}

/* train_tensor: w (bound to ctx->out) runs task k with θ_l + Δ_k in place of the merged θ_l —
 * one member re-pointed at theta_k; tensor_out points it back. */
static void tensor_in(adapt_state *s, vit_weights *w, int k) {
    const vit_tensor_info *t = &s->ctx->out.lay.t[s->o->tensor];
    const float *merged = s->ctx->out.params + t->offset, *delta = s->tint[k];
    float *out = s->theta_k;
#pragma omp parallel for schedule(static) if (t->numel > 16384)
    for (size_t i = 0; i < t->numel; i++) out[i] = merged[i] + delta[i];
    *vit_weights_slot(w, s->o->tensor) = out;
}
static void tensor_out(adapt_state *s, vit_weights *w) {
    *vit_weights_slot(w, s->o->tensor) = s->ctx->out.params + s->ctx->out.lay.t[s->o->tensor].offset;
}

/* θ = θ0 + Σ_k clamp(λ) τ_k, tensor by tensor */
static void merge_weights(adapt_state *s) {
    const vit_layout *lay = &s->ctx->pre.lay;
    float *out = s->ctx->out.params;
    const float *pre = s->ctx->pre.params;
    for (int l = 0; l < s->L; l++) {
        const vit_tensor_info *t = &lay->t[l];
        float lam[MERGE_MAX_TASKS];
        for (int k = 0; k < s->K; k++) lam[k] = clamp01(s->lam_raw[k * s->n_coef + (s->n_coef > 1 ? l : 0)]);
        size_t off = t->offset, n = t->numel;
#pragma omp parallel for schedule(static) if (n > 16384)
        for (size_t i = 0; i < n; i++) {
            float v = pre[off + i];
            for (int k = 0; k < s->K; k++) v += lam[k] * s->tv[(size_t)k * s->total + off + i];
            out[off + i] = v;
        }
    }
}

/* dL/dλ_k,l += <grad_l, τ_k,l> where the clamp passes the gradient (0 <= raw <= 1).
 * One pass over grad_l for all K tasks, in fixed chunks of DOT_CHUNK with 8 double accumulators
 * each (independent lanes, so the loop vectorises), chunk partials summed in order: the same bits
 * for every thread count. */
#define DOT_CHUNK 4096
static double dot8(const float *restrict g, const float *restrict t, size_t n) {
    double acc[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += (double)g[i + j] * t[i + j];
    for (; i < n; i++) acc[0] += (double)g[i] * t[i];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

static void coefficient_grads(adapt_state *s) {
    const vit_layout *lay = &s->ctx->pre.lay;
    int K = s->K;
    for (int l = 0; l < s->L; l++) {
        const vit_tensor_info *t = &lay->t[l];
        const float *gl = s->grad + t->offset;
        size_t n = t->numel, nc = (n + DOT_CHUNK - 1) / DOT_CHUNK;
#pragma omp parallel for schedule(static) if (n * (size_t)K > 65536)
        for (size_t c = 0; c < nc; c++) {
            size_t lo = c * DOT_CHUNK, hi = lo + DOT_CHUNK < n ? lo + DOT_CHUNK : n;
            for (int k = 0; k < K; k++)
                s->dot_part[c * (size_t)K + (size_t)k] = dot8(gl + lo, s->tv + (size_t)k * s->total + t->offset + lo, hi - lo);
        }
        for (int k = 0; k < K; k++) {
            double dot = 0;
            for (size_t c = 0; c < nc; c++) dot += s->dot_part[c * (size_t)K + (size_t)k];
            int ci = k * s->n_coef + (s->n_coef > 1 ? l : 0);
            float raw = s->lam_raw[ci];
            if (raw >= 0 && raw <= 1) s->lam_grad[ci] += (float)dot;
        }
    }
}

static void stream_next(adapt_state *s, int k, int count, int *out) {
    task_stream *ts = &s->stream[k];
    for (int i = 0; i < count; i++) {
        if (ts->pos >= ts->n) {
            rng_shuffle_int(&s->r, ts->order, ts->n);
            ts->pos = 0;
        }
        out[i] = ts->order[ts->pos++];
    }
}

/* The loss of n images idx of task k's batch of B (the whole batch, or a part of it when
 * micro-batching) and dL/dlogits; the mean entropy of the n images, weighted n/B, via *ent.
 * Entropy (AdaMerging) and pseudo are batch means: every image's term is scaled by 1/B, known
 * beforehand, so parts add up to the batch. Pseudo-conf is the CE against the expert's hard labels
 * over the kept samples — a sample is kept when the merged model agrees with the expert, or
 * disagrees but is not more confident than the expert — and its mean divides by the number kept in
 * the whole batch, which a part cannot know: a part (n < B) returns its terms unscaled (weight 1
 * per kept image) and adds its kept count to *kept; the caller divides once the batch is complete. */
static double loss_and_grad(adapt_state *s, int k, const int *idx, int n, int B, float *dlogits, const float *logits,
                            double *ent, int *kept) {
    int C = s->ctx->s->tasks[k].classes;
    float share = (float)n / (float)B; /* 1 for a whole batch */
    *ent = op_entropy(n, C, NULL, logits, share);
    if (s->o->loss == ADAPT_ENTROPY) return op_entropy(n, C, dlogits, logits, share);
    int here = 0;
    bool keep[1024];
    TT_ASSERT(n <= 1024);
    for (int b = 0; b < n; b++) {
        const float *z = logits + (size_t)b * C;
        int am = 0;
        for (int c = 1; c < C; c++)
            if (z[c] > z[am]) am = c;
        double mx = z[am], se = 0;
        for (int c = 0; c < C; c++) se += exp((double)z[c] - mx);
        double pm = 1.0 / se; /* max softmax probability of the merged model */
        int y = s->pseudo[k][idx[b]];
        keep[b] = s->o->loss == ADAPT_PSEUDO || am == y || s->pseudo_conf[k][idx[b]] >= pm;
        here += keep[b];
    }
    *kept += here;
    memset(dlogits, 0, (size_t)n * C * sizeof(float));
    if (!here) return 0; /* the official code has no guard: an empty mean would be NaN */
    /* pseudo keeps every image: its mean is over B; pseudo-conf's over the kept, or deferred */
    float w = s->o->loss == ADAPT_PSEUDO ? 1.0f / (float)B : n == B ? 1.0f / (float)here : 1.0f;
    double loss = 0;
    for (int b = 0; b < n; b++) {
        if (!keep[b]) continue;
        int y = s->pseudo[k][idx[b]];
        loss += op_cross_entropy(1, C, dlogits + (size_t)b * C, logits + (size_t)b * C, &y, w);
    }
    return loss;
}

/* hard labels and confidence of expert k (with its zero-shot head) on task k's test split */
static int expert_labels(adapt_state *s, infer_ctx *ic, int k, tt_err *err) {
    merge_ctx *ctx = s->ctx;
    const suite_task_info *ti = &ctx->s->tasks[k];
    ckpt_vit ex;
    if (ckpt_load_vit(&ex, ti->finetuned, err)) return -1;
    vit_weights w;
    float *logits = malloc((size_t)ti->test.n * ti->classes * sizeof(float));
    s->pseudo[k] = malloc((size_t)ti->test.n * sizeof(int32_t));
    s->pseudo_conf[k] = malloc((size_t)ti->test.n * sizeof(float));
    int rc = -1;
    if (!logits || !s->pseudo[k] || !s->pseudo_conf[k]) {
        tt_fail(err, TT_ENOMEM, "out of memory");
    } else if (!vit_weights_bind(&w, &ex.lay, ex.params, NULL, err)) {
        rc = infer_logits(ic, &w, ti->head.W, ti->head.b, ti->classes, ti->test.pixels, ti->test.n, &ctx->s->norm, logits, err);
        vit_weights_free(&w);
        for (int i = 0; !rc && i < ti->test.n; i++) {
            const float *z = logits + (size_t)i * ti->classes;
            int am = 0;
            for (int c = 1; c < ti->classes; c++)
                if (z[c] > z[am]) am = c;
            double se = 0;
            for (int c = 0; c < ti->classes; c++) se += exp((double)z[c] - z[am]);
            s->pseudo[k][i] = am;
            s->pseudo_conf[k][i] = (float)(1.0 / se);
        }
    }
    free(logits);
    ckpt_vit_free(&ex);
    return rc;
}

static void state_free(adapt_state *s) {
    vit_lanes_free(&s->lanes);
    for (int k = 0; k < s->K; k++) {
        vit_head_free(&s->head[k]);
        adamw_free(&s->tint_opt[k]);
        free(s->tint[k]);
        free(s->tint_grad[k]);
        free(s->round_tint[k]);
        free(s->best_tint[k]);
        free(s->stream[k].order);
        free(s->pseudo[k]);
        free(s->pseudo_conf[k]);
    }
    vit_weights_free(&s->w);
    vit_weights_free(&s->g);
    adamw_free(&s->lam_opt);
    void *bufs[] = {s->theta_k, s->lam_raw, s->lam_grad, s->round_lam, s->best_lam, s->grad,     s->images,
                    s->features, s->dfeat, s->logits, s->dlogits, s->head_grad, s->batch_idx, s->dot_part};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
}

static int state_init(adapt_state *s, merge_ctx *ctx, const float *tv, const adapt_opts *o, tt_err *err) {
    memset(s, 0, sizeof *s);
    s->ctx = ctx;
    s->o = o;
    s->tv = tv;
    s->K = ctx->K;
    s->L = ctx->pre.lay.count;
    s->n_coef = o->layerwise ? s->L : 1;
    s->total = ctx->pre.lay.total;
    const vit_config *cfg = &ctx->s->cfg;
    s->img = (size_t)cfg->channels * cfg->image_size * cfg->image_size;
    s->plan_batch = o->per_task_steps ? o->batch : o->batch * s->K;
    s->rank = par_rank();
    s->ranks = par_size();
    int D = cfg->output_dim, maxC = 0;
    if (o->batch < 1 || o->batch > 1024 || o->steps < 0 || o->accum < 1 || o->micro < 0)
        return tt_fail(err, TT_EINPUT, "batch must be in [1,1024], steps >= 0, accum >= 1, micro >= 0");
    s->chunk = o->micro ? o->micro : s->plan_batch;
    if (s->plan_batch % s->chunk)
        return tt_fail(err, TT_EINPUT, "micro=%d does not divide the %d images of a forward (%s)", o->micro,
                       s->plan_batch, o->per_task_steps ? "batch" : "batch x tasks");
    s->part = gcd(s->chunk, o->batch);
    /* pseudo-conf scales a task's gradient once its batch is complete: one task per forward_backward */
    if (o->loss == ADAPT_PSEUDO_CONF && s->part < o->batch && !o->per_task_steps)
        return tt_fail(err, TT_EINPUT, "micro=%d splits a task's batch of %d: with the pseudo-conf loss only in "
                       "per-task steps", o->micro, o->batch);
    if (s->chunk % s->ranks)
        return tt_fail(err, TT_EINPUT, "a %s of %d images does not split evenly over %d MPI ranks",
                       o->micro ? "micro-batch" : "batch", s->chunk, s->ranks);
    s->local = s->chunk / s->ranks;
    /* a task-specific tensor needs one task per forward */
    if (o->train_tensor && (o->train_heads || !o->per_task_steps || o->tensor < 0 || o->tensor >= s->L))
        return tt_fail(err, TT_EINPUT, "a tinted tensor needs per-task steps, no tinted heads and a valid tensor index");
    for (int k = 0; k < s->K; k++) maxC = ctx->s->tasks[k].classes > maxC ? ctx->s->tasks[k].classes : maxC;
    rng_init(&s->r, ctx->seed ^ 0x6164616dull);
    s->lam_raw = tt_calloc_aligned((size_t)s->K * s->n_coef, sizeof(float), err);
    s->lam_grad = tt_calloc_aligned((size_t)s->K * s->n_coef, sizeof(float), err);
    s->round_lam = tt_calloc_aligned((size_t)s->K * s->n_coef, sizeof(float), err);
    s->best_lam = tt_calloc_aligned((size_t)s->K * s->n_coef, sizeof(float), err);
    s->grad = tt_calloc_aligned(s->total, sizeof(float), err);
    s->images = tt_calloc_aligned((size_t)s->chunk * s->img, sizeof(float), err);
    s->features = tt_calloc_aligned((size_t)s->chunk * D, sizeof(float), err);
    s->dfeat = tt_calloc_aligned((size_t)s->chunk * D, sizeof(float), err);
    s->logits = tt_calloc_aligned((size_t)s->part * maxC, sizeof(float), err);
    s->dlogits = tt_calloc_aligned((size_t)s->part * maxC, sizeof(float), err);
    s->batch_idx = tt_calloc_aligned((size_t)s->plan_batch, sizeof(int), err);
    size_t most = 0;
    for (int l = 0; l < s->L; l++) most = ctx->pre.lay.t[l].numel > most ? ctx->pre.lay.t[l].numel : most;
    s->dot_part = tt_calloc_aligned((most + DOT_CHUNK - 1) / DOT_CHUNK * (size_t)s->K, sizeof(double), err);
    if (!s->lam_raw || !s->lam_grad || !s->round_lam || !s->best_lam || !s->grad || !s->images || !s->features ||
        !s->dfeat || !s->logits || !s->dlogits || !s->batch_idx || !s->dot_part)
        return -1;
    if (deferred(s) && o->train_heads &&
        !(s->head_grad = tt_calloc_aligned((size_t)maxC * (D + 1), sizeof(float), err)))
        return -1;
    for (int c = 0; c < s->K * s->n_coef; c++) s->lam_raw[c] = o->lambda_init;
    if (adamw_init(&s->lam_opt, (size_t)s->K * s->n_coef, err)) return -1;
    if (vit_lanes_init(&s->lanes, ctx->d, cfg, &ctx->out.lay, s->local, o->lanes, NULL, err) ||
        vit_weights_bind(&s->w, &ctx->out.lay, ctx->out.params, NULL, err) ||
        vit_weights_bind(&s->g, &ctx->out.lay, s->grad, NULL, err))
        return -1;
    for (int k = 0; k < s->K; k++) {
        const suite_task_info *ti = &ctx->s->tasks[k];
        if (ti->test.n < 1) return tt_fail(err, TT_EINPUT, "task %s has no test inputs", ti->name);
        if (vit_head_init(&s->head[k], ctx->d, cfg, s->part, ti->classes, err)) return -1;
        task_stream *ts = &s->stream[k];
        ts->n = ti->test.n;
        ts->pos = ts->n;
        ts->order = malloc((size_t)ts->n * sizeof(int));
        if (!ts->order) return tt_fail(err, TT_ENOMEM, "out of memory");
        for (int i = 0; i < ts->n; i++) ts->order[i] = i;
        if (has_tint(o)) { /* the head from the zero-shot head, or Δ_k = 0 */
            size_t n = o->train_heads ? (size_t)ti->classes * D + (size_t)ti->classes : ctx->out.lay.t[o->tensor].numel;
            s->tint[k] = tt_calloc_aligned(n, sizeof(float), err);
            s->tint_grad[k] = tt_calloc_aligned(n, sizeof(float), err);
            s->round_tint[k] = tt_calloc_aligned(n, sizeof(float), err);
            s->best_tint[k] = tt_calloc_aligned(n, sizeof(float), err);
            if (!s->tint[k] || !s->tint_grad[k] || !s->round_tint[k] || !s->best_tint[k] ||
                adamw_init(&s->tint_opt[k], n, err))
                return -1;
            if (o->train_heads) {
                memcpy(s->tint[k], ti->head.W, (size_t)ti->classes * D * sizeof(float));
                memcpy(s->tint[k] + (size_t)ti->classes * D, ti->head.b, (size_t)ti->classes * sizeof(float));
            }
        }
    }
    if (o->train_tensor && !(s->theta_k = tt_calloc_aligned(ctx->out.lay.t[o->tensor].numel, sizeof(float), err)))
        return -1;
    if (o->loss != ADAPT_ENTROPY) {
        infer_ctx ic;
        if (infer_init(&ic, ctx->d, cfg, INFER_BATCH, err)) return -1;
        for (int k = 0; k < s->K; k++)
            if (expert_labels(s, &ic, k, err)) {
                infer_free(&ic);
                return -1;
            }
        infer_free(&ic);
    }
    return 0;
}

/* y *= a */
static void scale_inplace(float *y, float a, size_t n) {
#pragma omp parallel for schedule(static) if (n > 16384)
    for (size_t i = 0; i < n; i++) y[i] *= a;
}

/* One forward+backward over the tasks in `tasks` (n of them), each with o->batch images.
 * Accumulates λ gradients (and head gradients); returns the loss, entropy sum via *ent.
 * reuse: the merged weights are those of the last call (a bf16 plan need not convert them again).
 * Micro-batching: the batch runs through the network in chunks of s->chunk images, each chunk's
 * forward, heads, loss and backward before the next, the parameter gradients of the chunks summed
 * in s->grad; since every image's loss term depends on its own logits only (loss_and_grad), this is
 * the gradient of the whole batch, added in another order. Without micro one chunk is the batch.
 * Data parallel over R ranks: every rank draws the same batch (the same rng), runs the network on
 * its contiguous slice of each chunk — exactly what lane `rank` of R lanes runs in one process — and
 * the slices' features are gathered, so that every rank computes the heads, the loss and
 * dL/dfeatures of the whole chunk; the parameter gradients of the slices are summed in rank order
 * (par_sum_f32, the lanes' order). Every rank then holds the same gradients and takes the same Adam
 * step. */
static double forward_backward(adapt_state *s, const int *tasks, int n, bool reuse, double *ent) {
    int B = s->o->batch, D = s->ctx->s->cfg.output_dim, P = s->chunk;
    size_t mine = (size_t)s->rank * s->local; /* this rank's slice within a chunk */
    for (int j = 0; j < n; j++) stream_next(s, tasks[j], B, s->batch_idx + (size_t)j * B);
    /* a per-task plan is planned for exactly one task's batch; the joint plan for all K */
    TT_ASSERT(n * B == s->plan_batch);
    if (s->o->train_tensor) tensor_in(s, &s->w, tasks[0]); /* n == 1: per-task steps */
    const bool defer = deferred(s); /* n == 1 then too (state_init) */
    float *head_acc = defer ? s->head_grad : NULL;
    if (head_acc) memset(head_acc, 0, (size_t)s->ctx->s->tasks[tasks[0]].classes * (D + 1) * sizeof(float));
    memset(s->grad, 0, s->total * sizeof(float));
    double loss = 0;
    int kept = 0;
    *ent = 0;
    for (int c0 = 0; c0 < s->plan_batch; c0 += P) {
        for (size_t i = 0; i < (size_t)s->local; i++) {
            size_t at = (size_t)c0 + mine + i; /* position in the batch: task at / B, its image at % B */
            const ds_images *im = &s->ctx->s->tasks[tasks[at / (size_t)B]].test;
            infer_normalize(s->images + (mine + i) * s->img, im->pixels + (size_t)s->batch_idx[at] * s->img, 1, 1,
                            s->img, &s->ctx->s->norm);
        }
        vit_lanes_reuse_weights(&s->lanes, reuse || c0 > 0);
        vit_lanes_forward(&s->lanes, &s->w, s->images + mine * s->img, s->features + mine * (size_t)D);
        par_allgather_f32(s->features, (size_t)s->local * D);
        for (int p = 0; p < P; p += s->part) { /* a task's batch, or a slice of one */
            int at = c0 + p, k = tasks[at / B], C = s->ctx->s->tasks[k].classes;
            float *f = s->features + (size_t)p * D, *df = s->dfeat + (size_t)p * D;
            vit_head_forward(&s->head[k], s->logits, f, head_W(s, k), head_b(s, k));
            double e;
            /* weight 1: the official loss is the plain sum over tasks and batches of the batch-mean entropy */
            loss += loss_and_grad(s, k, s->batch_idx + at, s->part, B, s->dlogits, s->logits, &e, &kept);
            *ent += e;
            float *gw = head_acc ? head_acc : s->o->train_heads ? s->tint_grad[k] : NULL;
            vit_head_backward(&s->head[k], df, gw, gw ? gw + (size_t)C * D : NULL, s->dlogits, head_W(s, k));
        }
        vit_lanes_backward(&s->lanes, &s->w, &s->g, s->dfeat + mine * (size_t)D);
    }
    par_sum_f32(s->grad, s->total);
    if (defer) { /* the mean over the images kept in the whole batch (none kept: no gradient) */
        float inv = kept ? 1.0f / (float)kept : 0.0f;
        loss *= inv;
        scale_inplace(s->grad, inv, s->total);
        if (head_acc) {
            size_t hn = (size_t)s->ctx->s->tasks[tasks[0]].classes * (D + 1);
            scale_inplace(head_acc, inv, hn);
            op_add_inplace(s->tint_grad[tasks[0]], head_acc, hn);
        }
    }
    coefficient_grads(s);
    if (s->o->train_tensor) { /* dL/dΔ_k = dL/dθ_l^(k) */
        const vit_tensor_info *t = &s->ctx->out.lay.t[s->o->tensor];
        op_add_inplace(s->tint_grad[tasks[0]], s->grad + t->offset, t->numel);
        tensor_out(s, &s->w);
    }
    return loss;
}

static void optimizer_step(adapt_state *s, const int *tasks, int n) {
    adamw_tick(&s->lam_opt);
    adamw_update(&s->lam_opt, s->lam_raw, s->lam_grad, 0, (size_t)s->K * s->n_coef, s->o->lr, 0.0f);
    memset(s->lam_grad, 0, (size_t)s->K * s->n_coef * sizeof(float));
    if (!has_tint(s->o)) return;
    for (int j = 0; j < n; j++) { /* only the tints that saw data this step */
        int k = tasks[j];
        adamw *h = &s->tint_opt[k];
        adamw_tick(h);
        adamw_update(h, s->tint[k], s->tint_grad[k], 0, h->n, s->o->lr_tint, 0.0f);
        memset(s->tint_grad[k], 0, h->n * sizeof(float));
    }
}

/* Copy the coefficients (and tints) from one slot to another: lam/tint -> round -> best, and
 * best -> lam/tint when a divergent run falls back. */
static void copy_coefs(const adapt_state *s, float *dst_lam, float *const *dst_tint, const float *src_lam,
                       float *const *src_tint) {
    memcpy(dst_lam, src_lam, (size_t)s->K * s->n_coef * sizeof(float));
    if (has_tint(s->o))
        for (int k = 0; k < s->K; k++) memcpy(dst_tint[k], src_tint[k], s->tint_opt[k].n * sizeof(float));
}

static void stop_early(adapt_stop *st, int step, double loss, const char *why) {
    st->stopped = true;
    st->step = step;
    st->loss = loss;
    snprintf(st->why, sizeof st->why, "%s", why);
}

static double test_accuracy(adapt_state *s, merge_eval *ev) {
    double sum = 0;
    for (int k = 0; k < s->K; k++) {
        const suite_task_info *ti = &s->ctx->s->tasks[k];
        tt_err e;
        if (s->o->train_tensor) tensor_in(s, &ev->w, k);
        double acc; /* sharded over the MPI ranks when there are several: the same accuracy */
        TT_ASSERT(infer_accuracy_sharded(&ev->ic, &ev->w, head_W(s, k), head_b(s, k), ti->classes, ti->test.pixels,
                                         ti->test.labels, ti->test.n, &s->ctx->s->norm, ev->logits, &acc,
                                         &e) == 0);
        if (s->o->train_tensor) tensor_out(s, &ev->w);
        sum += acc;
    }
    return sum / s->K;
}

int adapt_run(merge_ctx *ctx, const float *tv, const adapt_opts *o, adapt_result *res, tt_err *err) {
    memset(res, 0, sizeof *res);
    adapt_state s;
    merge_eval ev = {0};
    int rc = -1;
    if (state_init(&s, ctx, tv, o, err)) goto done;
    res->n_coef = s.n_coef;
    res->curve = calloc((size_t)o->steps + 2, sizeof *res->curve);
    if (!res->curve || (o->eval_every > 0 && merge_eval_init(&ev, ctx, err))) goto done;
    int order[MERGE_MAX_TASKS];
    for (int k = 0; k < s.K; k++) order[k] = k;
    progress pg;
    progress_start(&pg, has_tint(o) ? "tinting" : "adamerging", o->steps, ctx->progress);
    /* divergence bookkeeping per round (one step, or K per-task steps: one per task) */
    const int round_len = o->per_task_steps ? s.K : 1;
    double first_round = 0, round_loss = 0, best_loss = INFINITY;
    int round_start = 0;
    adapt_stop *st = &res->stop;
    st->kept_loss = -1;
    copy_coefs(&s, s.best_lam, s.best_tint, s.lam_raw, s.tint); /* no round yet: the initial ones */
    for (int step = 0; step < o->steps; step++) {
        double t_step = progress_now();
        if (step % round_len == 0) {
            copy_coefs(&s, s.round_lam, s.round_tint, s.lam_raw, s.tint);
            round_start = step;
            round_loss = 0;
        }
        merge_weights(&s);
        double loss = 0, ent = 0, e;
        int n_tasks;
        const int *tasks;
        if (o->per_task_steps) { /* one task per step; task order reshuffled every K steps */
            if (step % s.K == 0) rng_shuffle_int(&s.r, order, s.K);
            tasks = &order[step % s.K];
            n_tasks = 1;
        } else {
            tasks = order;
            n_tasks = s.K;
        }
        for (int a = 0; a < o->accum; a++) {
            /* the merged weights change once per step: a bf16 plan converts them for the first forward
             * only (a trained backbone tensor is swapped in per forward: converted every time) */
            loss += forward_backward(&s, tasks, n_tasks, a > 0 && !o->train_tensor, &e);
            ent += e / (n_tasks * o->accum);
        }
        char why[160];
        if (!isfinite(loss)) {
            snprintf(why, sizeof why, "loss %g is not finite", loss);
            stop_early(st, step, loss, why);
            break;
        }
        round_loss += loss;
        if ((step + 1) % round_len == 0) { /* a round ends: compare it with the first and the best */
            if (round_start == 0) {
                first_round = round_loss;
            } else if (o->diverge_factor > 0 && first_round > 0 && round_loss > o->diverge_factor * first_round) {
                snprintf(why, sizeof why, "loss %g > %g x the first round's %g", round_loss, (double)o->diverge_factor,
                         first_round);
                stop_early(st, step, round_loss, why);
                break;
            }
            if (round_loss < best_loss) {
                best_loss = round_loss;
                st->kept_step = round_start;
                st->kept_loss = round_loss;
                copy_coefs(&s, s.best_lam, s.best_tint, s.round_lam, s.round_tint);
            }
        }
        optimizer_step(&s, tasks, n_tasks);
        adapt_point *pt = &res->curve[res->n_curve++];
        pt->seconds = progress_now() - t_step;
        pt->step = step;
        pt->loss = loss;
        pt->entropy = ent;
        pt->accuracy = -1;
        if (o->eval_every > 0 && (step + 1) % o->eval_every == 0) {
            merge_weights(&s);
            pt->accuracy = test_accuracy(&s, &ev);
        }
        progress_update(&pg, step + 1, "loss %.4f entropy %.4f", loss, ent);
    }
    res->seconds = progress_end(&pg);
    res->seconds_per_step = res->n_curve > 0 ? res->seconds / res->n_curve : 0;
    if (st->stopped) copy_coefs(&s, s.lam_raw, s.tint, s.best_lam, s.best_tint);
    merge_weights(&s); /* ctx->out = the final merge (or the kept one after a divergence) */
    res->lambda = malloc((size_t)s.K * s.n_coef * sizeof(float));
    if (!res->lambda) {
        tt_fail(err, TT_ENOMEM, "out of memory");
        goto done;
    }
    for (int c = 0; c < s.K * s.n_coef; c++) res->lambda[c] = clamp01(s.lam_raw[c]);
    for (int k = 0; k < s.K && has_tint(o); k++) {
        if (o->train_tensor) { /* Δ_k becomes the final θ_l + Δ_k */
            const vit_tensor_info *t = &ctx->out.lay.t[o->tensor];
            op_add_inplace(s.tint[k], ctx->out.params + t->offset, t->numel);
        }
        res->tints[k] = s.tint[k];
        s.tint[k] = NULL;
    }
    rc = 0;
done:
    merge_eval_free(&ev);
    state_free(&s);
    if (rc) adapt_result_free(res);
    return rc;
}

int adapt_objective(merge_ctx *ctx, const float *tv, const adapt_opts *o, const float *lam_raw,
                    const float *const *tints, double *loss, float *grad, float *const *tint_grad, tt_err *err) {
    adapt_state s;
    int rc = -1;
    if (state_init(&s, ctx, tv, o, err)) goto done;
    memcpy(s.lam_raw, lam_raw, (size_t)s.K * s.n_coef * sizeof(float));
    if (has_tint(o) && tints)
        for (int k = 0; k < s.K; k++)
            if (tints[k]) memcpy(s.tint[k], tints[k], s.tint_opt[k].n * sizeof(float));
    merge_weights(&s);
    int order[MERGE_MAX_TASKS];
    for (int k = 0; k < s.K; k++) order[k] = k;
    int n_tasks = o->per_task_steps ? 1 : s.K;
    *loss = 0;
    for (int a = 0; a < o->accum; a++) {
        for (int k = 0; k < s.K; k++) s.stream[k].pos = 0; /* identity order: the first images */
        double e;
        for (int j = 0; j < s.K; j += n_tasks) *loss += forward_backward(&s, order + j, n_tasks, false, &e);
    }
    memcpy(grad, s.lam_grad, (size_t)s.K * s.n_coef * sizeof(float));
    if (has_tint(o) && tint_grad)
        for (int k = 0; k < s.K; k++)
            if (tint_grad[k]) memcpy(tint_grad[k], s.tint_grad[k], s.tint_opt[k].n * sizeof(float));
    rc = 0;
done:
    state_free(&s);
    return rc;
}

void adapt_result_free(adapt_result *r) {
    free(r->lambda);
    free(r->curve);
    for (int k = 0; k < MERGE_MAX_TASKS; k++) free(r->tints[k]);
    memset(r, 0, sizeof *r);
}

float *adapt_task_vectors(merge_ctx *ctx, tt_err *err) {
    size_t total = ctx->pre.lay.total;
    float *tv = tt_calloc_aligned((size_t)ctx->K * total, sizeof(float), err);
    if (!tv) return NULL;
    for (int k = 0; k < ctx->K; k++)
        for (int l = 0; l < ctx->pre.lay.count; l++)
            merge_task_vector(ctx, k, l, tv + (size_t)k * total + ctx->pre.lay.t[l].offset);
    return tv;
}

int adapt_write_curve(const adapt_result *r, const char *path, tt_err *err) {
    fio_file f;
    if (fio_open_atomic(&f, path, err)) return -1;
    fprintf(f.fp, "step,loss,entropy,accuracy\n");
    for (int i = 0; i < r->n_curve; i++) {
        const adapt_point *p = &r->curve[i];
        if (p->accuracy >= 0) fprintf(f.fp, "%d,%.6f,%.6f,%.4f\n", p->step, p->loss, p->entropy, p->accuracy);
        else fprintf(f.fp, "%d,%.6f,%.6f,\n", p->step, p->loss, p->entropy);
    }
    return fio_commit(&f, err);
}

int adapt_diverge_param(const merge_ctx *ctx, double *out, tt_err *err) {
    if (merge_param_double(ctx, "diverge", out, err)) return -1;
    if (!(*out == 0 || (*out > 1 && *out < 1e30)))
        return tt_fail(err, TT_EINPUT, "diverge=%g: expected 0 (off) or a factor > 1", *out);
    return 0;
}

void adapt_stop_message(const adapt_result *r, char *buf, size_t cap) {
    const adapt_stop *st = &r->stop;
    if (!st->stopped) {
        if (cap) buf[0] = 0;
        return;
    }
    char kept[96];
    if (st->kept_loss < 0) snprintf(kept, sizeof kept, "the initial coefficients");
    else snprintf(kept, sizeof kept, "the coefficients of step %d (round loss %.6g)", st->kept_step, st->kept_loss);
    snprintf(buf, cap, "adaptation diverged at step %d (%s): stopped early, kept %s; a smaller lr may help", st->step,
             st->why, kept);
}

char *adapt_record_json(const merge_ctx *ctx, const adapt_result *r) {
    size_t cap = 512 + (size_t)ctx->K * 160;
    char *s = malloc(cap);
    if (!s) return NULL;
    size_t n = (size_t)snprintf(s, cap, "{\"steps\":%d,\"seconds\":%.3f,\"seconds_per_step\":%.5f,\"final_loss\":%.6f,\"lambda\":{",
                                r->n_curve, r->seconds, r->seconds_per_step, r->n_curve ? r->curve[r->n_curve - 1].loss : 0);
    for (int k = 0; k < ctx->K && n < cap; k++) {
        double mean = 0, mn = 1, mx = 0;
        for (int c = 0; c < r->n_coef; c++) {
            double v = r->lambda[k * r->n_coef + c];
            mean += v / r->n_coef;
            mn = v < mn ? v : mn;
            mx = v > mx ? v : mx;
        }
        n += (size_t)snprintf(s + n, cap - n, "%s\"%s\":{\"mean\":%.4f,\"min\":%.4f,\"max\":%.4f}", k ? "," : "",
                              ctx->s->tasks[k].name, mean, mn, mx);
    }
    if (n < cap) n += (size_t)snprintf(s + n, cap - n, "}");
    const adapt_stop *st = &r->stop;
    if (st->stopped && n < cap) { /* why holds no quotes or backslashes: plain JSON string */
        n += (size_t)snprintf(s + n, cap - n, ",\"stopped_early\":{\"step\":%d,\"reason\":\"%s\",\"kept_step\":%d,",
                              st->step, st->why, st->kept_step);
        if (n < cap && st->kept_loss >= 0) n += (size_t)snprintf(s + n, cap - n, "\"kept_loss\":%.6f}", st->kept_loss);
        else if (n < cap) n += (size_t)snprintf(s + n, cap - n, "\"kept_loss\":null}");
    }
    if (n < cap) snprintf(s + n, cap - n, "}");
    return s;
}
