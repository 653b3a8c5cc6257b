/* train.c — see train.h. */
#include "core/train.h"

#include <math.h>
#include <string.h>

#include "core/arena.h"
#include "core/infer.h"
#include "core/progress.h"
#include "core/rng.h"

int adamw_init(adamw *o, size_t n, tt_err *err) {
    memset(o, 0, sizeof *o);
    o->n = n;
    o->beta1 = 0.9f;
    o->beta2 = 0.999f;
    o->eps = 1e-8f;
    o->m = tt_calloc_aligned(2 * n, sizeof(float), err);
    if (!o->m) return -1;
    o->v = o->m + n;
    return 0;
}

void adamw_free(adamw *o) {
    free(o->m);
    memset(o, 0, sizeof *o);
}

void adamw_tick(adamw *o) { o->t++; }

void adamw_update(adamw *o, float *p, const float *g, size_t off, size_t cnt, float lr, float wd) {
    TT_ASSERT(off + cnt <= o->n && o->t > 0);
    float b1 = o->beta1, b2 = o->beta2;
    float c1 = 1.0f / (1.0f - powf(b1, (float)o->t)), c2 = 1.0f / (1.0f - powf(b2, (float)o->t));
    float *m = o->m + off, *v = o->v + off;
    p += off; /* p, g and the moments share one layout: the range is the same in all four */
    g += off;
#pragma omp parallel for schedule(static) if (cnt > 65536)
    for (size_t i = 0; i < cnt; i++) {
        m[i] = b1 * m[i] + (1 - b1) * g[i];
        v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
        p[i] -= lr * (m[i] * c1 / (sqrtf(v[i] * c2) + o->eps) + wd * p[i]);
    }
}

float lr_warmup_cosine(float base, long t, long total, float warmup) {
    long warm = (long)(warmup * (float)total);
    if (t < warm) return base * (float)(t + 1) / (float)warm;
    if (total <= warm) return base;
    double x = (double)(t - warm) / (double)(total - warm);
    return (float)(base * 0.5 * (1.0 + cos(M_PI * x)));
}

typedef struct trainer {
    vit_plan *plan;
    vit_head head;
    vit_weights w, g;
    float *grads, *hgrad, *images, *features, *dfeat, *logits, *dlogits;
    int *order, *ybatch;
    adamw opt, hopt;
} trainer;

static void trainer_free(trainer *t) {
    vit_plan_free(t->plan);
    vit_head_free(&t->head);
    vit_weights_free(&t->w);
    vit_weights_free(&t->g);
    void *bufs[] = {t->grads, t->hgrad, t->images, t->features, t->dfeat, t->logits, t->dlogits, t->order, t->ybatch};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    adamw_free(&t->opt);
    adamw_free(&t->hopt);
}

int train_classifier(dnn *d, const vit_config *cfg, const vit_layout *lay, float *params, float *head_W,
                     float *head_b, int classes, const uint8_t *pixels, const int32_t *labels, int n,
                     const train_opts *o, train_stats *stats, tt_err *err) {
    if (n < o->batch || o->batch < 1 || o->steps < 1)
        return tt_fail(err, TT_EINPUT, "training set of %d images is smaller than the batch %d", n, o->batch);
    for (int i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= classes)
            return tt_fail(err, TT_EINPUT, "label %d at [%d] outside [0,%d)", labels[i], i, classes);
    trainer t = {0};
    int B = o->batch, D = cfg->output_dim, rc = -1;
    size_t img = (size_t)cfg->channels * cfg->image_size * cfg->image_size, hsize = (size_t)classes * D + (size_t)classes;
    const infer_norm nm = infer_norm_scalar(o->mean, o->std, cfg->channels);
    /* one plan, not core/lanes: 2 lanes built the tiny suite 19% faster, but the fine-tuned
     * checkpoints then differ by rounding, and a vision8 suite built that way moved AdaMerging's
     * per-task accuracies by up to 6.5 points (its mean by -1.6, below consensus-ta): the goldens
     * and the asserted ordering hold for the suite's exact bits only; measured on vision8) */
    t.plan = vit_plan_create(d, cfg, B, err);
    if (!t.plan || vit_head_init(&t.head, d, cfg, B, classes, err)) goto done;
    t.grads = tt_calloc_aligned(lay->total, sizeof(float), err);
    t.hgrad = tt_calloc_aligned(hsize, sizeof(float), err);
    t.images = tt_calloc_aligned((size_t)B * img, sizeof(float), err);
    t.features = tt_calloc_aligned((size_t)B * D, sizeof(float), err);
    t.dfeat = tt_calloc_aligned((size_t)B * D, sizeof(float), err);
    t.logits = tt_calloc_aligned((size_t)B * classes, sizeof(float), err);
    t.dlogits = tt_calloc_aligned((size_t)B * classes, sizeof(float), err);
    t.order = tt_calloc_aligned((size_t)n, sizeof(int), err);
    t.ybatch = tt_calloc_aligned((size_t)B, sizeof(int), err);
    if (!t.ybatch || !t.order || !t.dlogits || !t.logits || !t.dfeat || !t.features || !t.images || !t.hgrad || !t.grads)
        goto done;
    if (vit_weights_bind(&t.w, lay, params, NULL, err) || vit_weights_bind(&t.g, lay, t.grads, o->trainable, err) ||
        adamw_init(&t.opt, lay->total, err) || adamw_init(&t.hopt, hsize, err))
        goto done;
    /* the head's W and b are optimised as one vector: copy in, update, copy out */
    float *hparams = tt_calloc_aligned(hsize, sizeof(float), err);
    if (!hparams) goto done;
    memcpy(hparams, head_W, (size_t)classes * D * sizeof(float));
    memcpy(hparams + (size_t)classes * D, head_b, (size_t)classes * sizeof(float));

    rng r;
    rng_init(&r, o->seed);
    for (int i = 0; i < n; i++) t.order[i] = i;
    int pos = n; /* forces a shuffle on the first batch */
    progress pg;
    progress_start(&pg, o->label ? o->label : "train", o->steps, o->progress);
    long tail = o->steps / 10 > 0 ? o->steps / 10 : 1;
    double first = 0, last = 0;
    for (int step = 0; step < o->steps; step++) {
        if (pos + B > n) {
            rng_shuffle_int(&r, t.order, n);
            pos = 0;
        }
        for (int b = 0; b < B; b++) {
            int i = t.order[pos + b];
            infer_normalize(t.images + (size_t)b * img, pixels + (size_t)i * img, 1, 1, img, &nm);
            t.ybatch[b] = labels[i];
        }
        pos += B;
        vit_forward(t.plan, &t.w, t.images, t.features);
        vit_head_forward(&t.head, t.logits, t.features, hparams, hparams + (size_t)classes * D);
        double loss = op_cross_entropy(B, classes, t.dlogits, t.logits, t.ybatch, 1.0f);
        if (!isfinite(loss)) {
            free(hparams);
            tt_fail(err, TT_ENUMERIC, "%s: loss became %g at step %d (lr %g too high?)", o->label ? o->label : "train",
                    loss, step, (double)o->lr);
            goto done;
        }
        if (step < tail) first += loss / (double)tail;
        if (step >= o->steps - tail) last += loss / (double)tail;
        memset(t.grads, 0, lay->total * sizeof(float));
        memset(t.hgrad, 0, hsize * sizeof(float));
        vit_head_backward(&t.head, t.dfeat, o->train_head ? t.hgrad : NULL,
                          o->train_head ? t.hgrad + (size_t)classes * D : NULL, t.dlogits, hparams);
        vit_backward(t.plan, &t.w, &t.g, t.dfeat);
        float lr = lr_warmup_cosine(o->lr, step, o->steps, o->warmup);
        adamw_tick(&t.opt);
        for (int k = 0; k < lay->count; k++)
            if (!o->trainable || o->trainable[k])
                adamw_update(&t.opt, params, t.grads, lay->t[k].offset, lay->t[k].numel, lr, o->weight_decay);
        if (o->train_head) {
            adamw_tick(&t.hopt);
            adamw_update(&t.hopt, hparams, t.hgrad, 0, hsize, lr, o->weight_decay);
        }
        progress_update(&pg, step + 1, "loss %.4f", loss);
    }
    double secs = progress_end(&pg);
    if (o->train_head) {
        memcpy(head_W, hparams, (size_t)classes * D * sizeof(float));
        memcpy(head_b, hparams + (size_t)classes * D, (size_t)classes * sizeof(float));
    }
    free(hparams);
    if (stats) {
        stats->first_loss = first;
        stats->last_loss = last;
        stats->seconds = secs;
        stats->images_per_s = secs > 0 ? (double)o->steps * B / secs : 0;
    }
    rc = 0;
done:
    trainer_free(&t);
    return rc;
}
