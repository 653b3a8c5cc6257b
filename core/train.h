/* train.h — supervised training of a ViT + linear head on uint8 images: AdamW with linear
 * warm-up then cosine decay, shuffled mini-batches, any subset of tensors trainable.
 * Used by the suite builder for pretraining (all trainable) and fine-tuning (head frozen,
 * backbone full or attention-linear only).
 *
 *   train_opts o = {.steps = 600, .batch = 64, .lr = 2e-4f, .weight_decay = 0.1f,
 *                   .warmup = 0.1f, .seed = 1, .mean = 0.5f, .std = 0.5f};
 *   train_classifier(d, &cfg, &lay, params, W, b, classes, pixels, labels, n, &o, &stats, &e);
 * Deterministic for a fixed seed and thread count. Ownership: the caller owns every array;
 * params (and the head when train_head) are updated in place.
 */
#ifndef TT_TRAIN_H
#define TT_TRAIN_H

#include <stdbool.h>
#include <stdint.h>

#include "core/vit.h"

/* AdamW (decoupled weight decay, as torch.optim.AdamW) over a flat vector. */
typedef struct adamw {
    size_t n;
    float *m, *v; /* [n] moments, owned */
    long t;
    float beta1, beta2, eps;
} adamw;
int adamw_init(adamw *o, size_t n, tt_err *err);
void adamw_free(adamw *o);
/* Start a step (bias corrections use the step count), then update any ranges [off, off+cnt)
 * of the flat vectors p and g (base pointers; the moments use the same offsets):
 * p -= lr * (m_hat / (sqrt(v_hat) + eps) + wd * p). Ranges not updated keep their moments. */
void adamw_tick(adamw *o);
void adamw_update(adamw *o, float *p, const float *g, size_t off, size_t cnt, float lr, float wd);

/* lr at step t (0-based) of total: linear warm-up over warmup*total steps, then cosine to 0. */
float lr_warmup_cosine(float base, long t, long total, float warmup);

typedef struct train_opts {
    int steps;             /* optimizer steps (batches are drawn from shuffled epochs) */
    int batch;             /* 64 */
    float lr, weight_decay, warmup;
    uint64_t seed;
    float mean, std;       /* input normalisation */
    const bool *trainable; /* [lay->count] backbone tensors (NULL = all) */
    bool train_head;
    const char *label;     /* progress label */
    bool progress;         /* draw a progress line */
} train_opts;

typedef struct train_stats {
    double first_loss, last_loss; /* mean CE over the first / last 10% of steps */
    double seconds, images_per_s;
} train_stats;

int train_classifier(dnn *d, const vit_config *cfg, const vit_layout *lay, float *params, float *head_W,
                     float *head_b, int classes, const uint8_t *pixels, const int32_t *labels, int n,
                     const train_opts *o, train_stats *stats, tt_err *err);

#endif
