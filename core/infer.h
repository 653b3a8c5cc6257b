/* infer.h — batched inference of a ViT + head over uint8 images (eval, λ search, suite build).
 *
 * Pixels are stored as uint8 [n, C, S, S] (exactly what the suite's IDX files hold) and are
 * normalised on the fly: x = (p/255 - mean) / std. The last partial batch is zero-padded so
 * that one planned batch size serves any n.
 *
 *   infer_ctx ic; infer_init(&ic, d, &cfg, 256, &e);
 *   infer_logits(&ic, &w, head_W, head_b, classes, pixels, n, 0.5f, 0.5f, logits);  // [n, classes]
 *   infer_free(&ic);
 * Ownership: the caller owns every array passed in; infer_ctx owns its plan and scratch.
 */
#ifndef TT_INFER_H
#define TT_INFER_H

#include <stdint.h>

#include "core/vit.h"

/* One planned head per distinct class count (a suite has at most 64 tasks). */
#define INFER_MAX_HEADS 64

typedef struct infer_ctx {
    dnn *d;
    vit_config cfg;
    int batch;
    vit_plan *plan;
    vit_head heads[INFER_MAX_HEADS]; /* planned once per class count, on first use */
    int head_classes[INFER_MAX_HEADS];
    int n_heads;
    float *images;      /* [batch, C, S, S] */
    float *features;    /* [batch, D] */
    float *logits;      /* [batch, logits_classes] */
    int logits_classes; /* the largest class count planned */
} infer_ctx;

int infer_init(infer_ctx *ic, dnn *d, const vit_config *cfg, int batch, tt_err *err);
void infer_free(infer_ctx *ic);
/* Plan the heads for these class counts now, so that infer_logits cannot fail later (it plans
 * a head on first use otherwise: oneDNN primitives and memory, which can run out). */
int infer_plan_heads(infer_ctx *ic, const int *classes, int n, tt_err *err);

/* Normalise pixels [n_img, C, S, S] into dst [batch, C, S, S], zero-padding rows past n_img. */
void infer_normalize(float *dst, const uint8_t *pixels, int n_img, int batch, size_t img_size, float mean,
                     float std);

/* features [n, D]. */
void infer_features(infer_ctx *ic, const vit_weights *w, const uint8_t *pixels, int n, float mean,
                    float std, float *features);
/* logits [n, classes] = head(features(pixels)). Returns -1 only if the head cannot be planned
 * (never after infer_plan_heads with this class count). */
int infer_logits(infer_ctx *ic, const vit_weights *w, const float *head_W, const float *head_b, int classes,
                 const uint8_t *pixels, int n, float mean, float std, float *logits, tt_err *err);

/* Top-1 accuracy (%) of logits [n, classes] against labels [n]. */
double infer_accuracy(const float *logits, const int32_t *labels, int n, int classes);

#endif
