/* surgery.c — see surgery.h. */
#include "tint/surgery.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/arena.h"
#include "core/rng.h"
#include "core/train.h"

#define SURGERY_MAX_RANK 1024          /* ckpt_surgery_map's bound */
#define SURGERY_BATCHES_PER_SHUFFLE 2  /* the official loop breaks after its second batch */

double surgery_loss_grad(const float *down, const float *up, int rank, int D, const float *z, const float *f,
                         int B, float *g_down, float *g_up) {
    double *gd = calloc((size_t)rank * D + (size_t)D * rank + 2 * (size_t)rank + D, sizeof(double));
    TT_ASSERT(gd != NULL && rank <= SURGERY_MAX_RANK);
    double *gu = gd + (size_t)rank * D, *h = gu + (size_t)D * rank, *da = h + rank, *e = da + rank;
    double loss = 0, scale = 1.0 / ((double)B * D);
    for (int b = 0; b < B; b++) {
        const float *zb = z + (size_t)b * D, *fb = f + (size_t)b * D;
        for (int k = 0; k < rank; k++) {
            double s = 0;
            for (int j = 0; j < D; j++) s += (double)down[(size_t)k * D + j] * zb[j];
            h[k] = s;
        }
        for (int j = 0; j < D; j++) {
            double u = 0;
            for (int k = 0; k < rank; k++) u += (double)up[(size_t)j * rank + k] * (h[k] > 0 ? h[k] : 0);
            double r = zb[j] - u - fb[j];
            loss += fabs(r) * scale;
            e[j] = (r > 0 ? 1.0 : r < 0 ? -1.0 : 0.0) * scale; /* dL/dz'_j */
        }
        /* z' = z − up·a: dL/d(up) = −e aᵀ, dL/da = −upᵀ e, dL/dh = dL/da where h > 0, dL/d(down) = dh zᵀ */
        for (int k = 0; k < rank; k++) da[k] = 0;
        for (int j = 0; j < D; j++)
            for (int k = 0; k < rank; k++) {
                double a = h[k] > 0 ? h[k] : 0;
                gu[(size_t)j * rank + k] -= e[j] * a;
                da[k] -= (double)up[(size_t)j * rank + k] * e[j];
            }
        for (int k = 0; k < rank; k++) {
            if (!(h[k] > 0)) continue;
            for (int j = 0; j < D; j++) gd[(size_t)k * D + j] += da[k] * zb[j];
        }
    }
    for (size_t i = 0; i < (size_t)rank * D; i++) {
        g_down[i] = (float)gd[i];
        g_up[i] = (float)gu[i];
    }
    free(gd);
    return loss;
}

/* Features [n, D] of the images of task k under weights w (no head, no surgery). */
static void features_of(infer_ctx *ic, const vit_weights *w, const ds_images *im, const suite *s, float *out) {
    infer_features(ic, w, im->pixels, im->n, &s->norm, out);
}

/* Train task k's map on merged features z and expert features f [n, D]; params = down [r, D] then up
 * [D, r]. */
static void fit_task(const surgery_opts *o, int D, const float *z, const float *f, int n, uint64_t seed, float *params,
                     adamw *opt, float *grad, float *zb, float *fb, uint32_t *perm, double *first, double *last) {
    const int r = o->rank, B = o->batch < n ? o->batch : n;
    float *down = params, *up = params + (size_t)r * D;
    rng g;
    rng_init(&g, seed);
    double bound = 1.0 / sqrt((double)D); /* kaiming_uniform_(a=√5) on fan_in D */
    for (size_t i = 0; i < (size_t)r * D; i++) down[i] = (float)((2 * rng_uniform(&g) - 1) * bound);
    memset(up, 0, (size_t)D * r * sizeof(float));
    memset(opt->m, 0, 2 * opt->n * sizeof(float));
    opt->t = 0;
    for (int i = 0; i < n; i++) perm[i] = (uint32_t)i;
    double round_loss = 0;
    *first = *last = 0;
    for (int s = 0; s < o->steps; s++) {
        int slot = s % SURGERY_BATCHES_PER_SHUFFLE;
        if (slot == 0) { /* a fresh shuffle: only its first batches are drawn (partial Fisher-Yates) */
            int need = B * SURGERY_BATCHES_PER_SHUFFLE < n ? B * SURGERY_BATCHES_PER_SHUFFLE : n;
            for (int i = 0; i < need; i++) {
                uint32_t j = (uint32_t)i + rng_below(&g, (uint32_t)(n - i)), t = perm[i];
                perm[i] = perm[j];
                perm[j] = t;
            }
        }
        for (int b = 0; b < B; b++) {
            int row = (int)perm[((size_t)slot * B + b) % (size_t)n];
            memcpy(zb + (size_t)b * D, z + (size_t)row * D, D * sizeof(float));
            memcpy(fb + (size_t)b * D, f + (size_t)row * D, D * sizeof(float));
        }
        double loss = surgery_loss_grad(down, up, r, D, zb, fb, B, grad, grad + (size_t)r * D);
        adamw_tick(opt);
        adamw_update(opt, params, grad, 0, opt->n, o->lr, 0.0f);
        round_loss += loss;
        if (slot == SURGERY_BATCHES_PER_SHUFFLE - 1 || s == o->steps - 1) {
            double mean = round_loss / (slot + 1);
            if (s < SURGERY_BATCHES_PER_SHUFFLE) *first = mean;
            *last = mean;
            round_loss = 0;
        }
    }
}

int surgery_fit(merge_ctx *ctx, const surgery_opts *o, surgery_info *info, tt_err *err) {
    const suite *s = ctx->s;
    const vit_layout *lay = &ctx->out.lay;
    const int D = s->cfg.output_dim, r = o->rank;
    if (r < 1 || r > SURGERY_MAX_RANK || o->batch < 1 || o->steps < 0 || !(o->lr > 0))
        return tt_fail(err, TT_EINPUT, "surgery: rank in [1, %d], batch >= 1, steps >= 0, lr > 0", SURGERY_MAX_RANK);
    int most = 1;
    for (int k = 0; k < ctx->K; k++) most = s->tasks[k].test.n > most ? s->tasks[k].test.n : most;
    infer_ctx ic = {0};
    vit_weights w = {0};
    ckpt_task_state st = {0};
    adamw opt = {0};
    size_t np = 2 * (size_t)r * D;
    float *expert = tt_calloc_aligned(lay->total, sizeof(float), err);
    float *z = tt_calloc_aligned((size_t)most * D, sizeof(float), err);
    float *f = tt_calloc_aligned((size_t)most * D, sizeof(float), err);
    float *zb = tt_calloc_aligned((size_t)o->batch * D, sizeof(float), err);
    float *fb = tt_calloc_aligned((size_t)o->batch * D, sizeof(float), err);
    float *grad = tt_calloc_aligned(np, sizeof(float), err);
    uint32_t *perm = calloc((size_t)most, sizeof *perm);
    int rc = -1;
    if (!expert || !z || !f || !zb || !fb || !grad || (!perm && tt_fail(err, TT_ENOMEM, "out of memory")) ||
        infer_init(&ic, ctx->d, &s->cfg, INFER_BATCH, err) || vit_weights_bind(&w, lay, ctx->out.params, NULL, err) ||
        ckpt_task_state_init(&st, &ctx->out, ctx->extra, ctx->n_extra, err) || adamw_init(&opt, np, err))
        goto done;
    int n_base_extra = ctx->n_extra; /* the base's task tensors: each task's merged features use them */
    for (int k = 0; k < ctx->K; k++) {
        const suite_task_info *ti = &s->tasks[k];
        const float *W = NULL, *b = NULL;
        bool swapped = ckpt_task_apply(&ctx->out, ctx->extra, n_base_extra, ti->name, &w, &W, &b, &st) > 0;
        features_of(&ic, &w, &ti->test, s, z);
        if (swapped) vit_weights_repoint(&w, lay, ctx->out.params, NULL);
        for (int l = 0; l < lay->count; l++) {
            const vit_tensor_info *t = &lay->t[l];
            const float *src = merge_ft_tensor(ctx, k, l, expert + t->offset);
            if (src != expert + t->offset) memcpy(expert + t->offset, src, t->numel * sizeof(float));
        }
        vit_weights_repoint(&w, lay, expert, NULL);
        features_of(&ic, &w, &ti->test, s, f);
        vit_weights_repoint(&w, lay, ctx->out.params, NULL);
        float *params = malloc(np * sizeof(float));
        if (!params) {
            tt_fail(err, TT_ENOMEM, "out of memory");
            goto done;
        }
        fit_task(o, D, z, f, ti->test.n, ctx->seed ^ (0x5ec0de00ull + (uint64_t)k), params, &opt, grad, zb, fb, perm,
                 &info->first_loss[k], &info->last_loss[k]);
        float *up = malloc((size_t)D * r * sizeof(float));
        if (!up) {
            free(params);
            tt_fail(err, TT_ENOMEM, "out of memory");
            goto done;
        }
        memcpy(up, params + (size_t)r * D, (size_t)D * r * sizeof(float));
        char name[160];
        snprintf(name, sizeof name, "task.%s.surgery.down", ti->name);
        if (merge_add_extra(ctx, name, 2, (int64_t[]){r, D}, params, err)) {
            free(up);
            goto done;
        }
        snprintf(name, sizeof name, "task.%s.surgery.up", ti->name);
        if (merge_add_extra(ctx, name, 2, (int64_t[]){D, r}, up, err)) goto done;
    }
    rc = 0;
done:
    adamw_free(&opt);
    ckpt_task_state_free(&st);
    vit_weights_free(&w);
    infer_free(&ic);
    free(expert);
    free(z);
    free(f);
    free(zb);
    free(fb);
    free(grad);
    free(perm);
    return rc;
}
