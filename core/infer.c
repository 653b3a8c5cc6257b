/* infer.c — see infer.h. */
#include "core/infer.h"

#include <string.h>

#include "core/arena.h"

int infer_init(infer_ctx *ic, dnn *d, const vit_config *cfg, int batch, tt_err *err) {
    memset(ic, 0, sizeof *ic);
    ic->d = d;
    ic->cfg = *cfg;
    ic->batch = batch;
    ic->plan = vit_plan_create(d, cfg, batch, err);
    if (!ic->plan) return -1;
    size_t img = (size_t)cfg->channels * cfg->image_size * cfg->image_size;
    ic->images = tt_calloc_aligned((size_t)batch * img, sizeof(float), err);
    ic->features = ic->images ? tt_calloc_aligned((size_t)batch * cfg->output_dim, sizeof(float), err) : NULL;
    if (!ic->features) {
        infer_free(ic);
        return -1;
    }
    return 0;
}

void infer_free(infer_ctx *ic) {
    vit_plan_free(ic->plan);
    for (int i = 0; i < ic->n_heads; i++) vit_head_free(&ic->heads[i]);
    free(ic->images);
    free(ic->features);
    free(ic->logits);
    memset(ic, 0, sizeof *ic);
}

void infer_normalize(float *dst, const uint8_t *pixels, int n_img, int batch, size_t img_size, float mean,
                     float std) {
    float a = 1.0f / (255.0f * std), b = -mean / std;
    size_t n = (size_t)n_img * img_size;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) dst[i] = (float)pixels[i] * a + b;
    memset(dst + n, 0, ((size_t)batch * img_size - n) * sizeof(float));
}

void infer_features(infer_ctx *ic, const vit_weights *w, const uint8_t *pixels, int n, float mean, float std,
                    float *features) {
    size_t img = (size_t)ic->cfg.channels * ic->cfg.image_size * ic->cfg.image_size;
    int D = ic->cfg.output_dim;
    for (int i0 = 0; i0 < n; i0 += ic->batch) {
        int k = n - i0 < ic->batch ? n - i0 : ic->batch;
        infer_normalize(ic->images, pixels + (size_t)i0 * img, k, ic->batch, img, mean, std);
        vit_forward(ic->plan, w, ic->images, ic->features);
        memcpy(features + (size_t)i0 * D, ic->features, (size_t)k * D * sizeof(float));
    }
}

/* The head planned for this class count (planned now if new), or NULL with err set. */
static vit_head *ensure_head(infer_ctx *ic, int classes, tt_err *err) {
    for (int i = 0; i < ic->n_heads; i++)
        if (ic->head_classes[i] == classes) return &ic->heads[i];
    if (ic->n_heads == INFER_MAX_HEADS) {
        tt_fail(err, TT_EINTERNAL, "more than %d distinct class counts", INFER_MAX_HEADS);
        return NULL;
    }
    if (classes > ic->logits_classes) {
        float *l = tt_calloc_aligned((size_t)ic->batch * classes, sizeof(float), err);
        if (!l) return NULL;
        free(ic->logits);
        ic->logits = l;
        ic->logits_classes = classes;
    }
    vit_head *h = &ic->heads[ic->n_heads];
    if (vit_head_init(h, ic->d, &ic->cfg, ic->batch, classes, err)) return NULL;
    ic->head_classes[ic->n_heads++] = classes;
    return h;
}

int infer_plan_heads(infer_ctx *ic, const int *classes, int n, tt_err *err) {
    for (int i = 0; i < n; i++)
        if (!ensure_head(ic, classes[i], err)) return -1;
    return 0;
}

int infer_logits(infer_ctx *ic, const vit_weights *w, const float *head_W, const float *head_b, int classes,
                 const uint8_t *pixels, int n, float mean, float std, float *logits, tt_err *err) {
    vit_head *h = ensure_head(ic, classes, err);
    if (!h) return -1;
    size_t img = (size_t)ic->cfg.channels * ic->cfg.image_size * ic->cfg.image_size;
    for (int i0 = 0; i0 < n; i0 += ic->batch) {
        int k = n - i0 < ic->batch ? n - i0 : ic->batch;
        infer_normalize(ic->images, pixels + (size_t)i0 * img, k, ic->batch, img, mean, std);
        vit_forward(ic->plan, w, ic->images, ic->features);
        vit_head_forward(h, ic->logits, ic->features, head_W, head_b);
        memcpy(logits + (size_t)i0 * classes, ic->logits, (size_t)k * classes * sizeof(float));
    }
    return 0;
}

double infer_accuracy(const float *logits, const int32_t *labels, int n, int classes) {
    if (n <= 0) return 0;
    int correct = 0;
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * classes;
        int best = 0;
        for (int c = 1; c < classes; c++)
            if (z[c] > z[best]) best = c;
        correct += best == labels[i];
    }
    return 100.0 * correct / n;
}
