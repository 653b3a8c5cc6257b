/* infer.h — batched inference of a ViT + head over uint8 images (eval, λ search, suite build).
 *
 * Pixels are stored as uint8 [n, C, S, S] (exactly what the suite's IDX files hold) and are
 * normalised on the fly, per channel c: x = (p/255 - mean[c]) / std[c] (infer_norm; a scalar
 * mean/std is the same value in every channel). The last partial batch is zero-padded so
 * that one planned batch size serves any n.
 *
 *   infer_ctx ic; infer_init(&ic, d, &cfg, INFER_BATCH, &e);
 *   infer_norm nm = infer_norm_scalar(0.5f, 0.5f, cfg.channels);
 *   infer_logits(&ic, &w, head_W, head_b, classes, pixels, n, &nm, logits);  // [n, classes]
 *   infer_free(&ic);
 * Ownership: the caller owns every array passed in; infer_ctx owns its plans, engines (but the
 * caller's d) and scratch. Results are deterministic for a fixed thread count (the lane split
 * depends on it).
 */
#ifndef TT_INFER_H
#define TT_INFER_H

#include <stdint.h>

#include "core/lanes.h"
#include "core/vit.h"

/* One planned head per distinct class count (a suite has at most 64 tasks). */
#define INFER_MAX_HEADS 64
/* Batch-parallel lanes: a small model's ops are too small to split between threads (vision8's
 * forward ran no faster on 2 threads than on 1: OpenMP barriers and per-op fork/join dominate),
 * so for models up to INFER_LANE_MAX_WIDTH wide each thread runs the whole forward of its own
 * slice of the batch, single-threaded, on its own plan and oneDNN stream. Wider models use one
 * lane whose ops are parallel inside. */
#define INFER_MAX_LANES 8
#define INFER_LANE_MAX_WIDTH VIT_LANES_MAX_WIDTH
#define INFER_LANE_MIN_BATCH 16 /* images per lane at least */
/* The batch every evaluation in ttmerge runs at (merges' accuracies, `ttmerge eval`'s default, the
 * suite builder, AdaMerging's pseudo-labels): large enough that a wide model's matmuls are near
 * their best (ViT-B/32 shapes: 81% of peak at 256 images, 75% at 32, on a quiet AVX-512 machine).
 * Evaluation runs on inference plans (vit_plan_create_inference), which keep no activations: ViT-B/32
 * at 224 px needs ~347 MB of workspace at 256 images (9.6 GB peak RSS for `ttmerge eval` on the
 * training plan). bench/micro/vit_bench times `eval` at it. */
#define INFER_BATCH 256
/* For a wide model (infer_tail_plans), the last partial pass of a call runs on a plan of its images
 * rounded up to a multiple of INFER_TAIL_QUANTUM, not zero-padded to the full batch (288 images cost
 * 320, not 512). Its logits equal the zero-padded pass's up to rounding: a matmul computes the rows
 * at the edge of its blocking in another order (4.8e-7 of the largest logit at ViT-B/32 on AVX2;
 * tests/test_infer_plan.c bounds it at 1e-5), so at a fixed thread count an image's logits depend
 * on n mod the batch, as they depend on --batch. Narrow models keep zero-padding: their passes are
 * cheap. */
#define INFER_TAIL_QUANTUM 32
bool infer_tail_plans(const vit_config *cfg); /* width > INFER_LANE_MAX_WIDTH */

/* Input normalisation, per channel (at most VIT's 16 channels). */
#define INFER_MAX_CHANNELS 16
typedef struct infer_norm {
    int channels;
    float mean[INFER_MAX_CHANNELS], std[INFER_MAX_CHANNELS];
} infer_norm;
/* The same mean and std in each of `channels` channels. */
infer_norm infer_norm_scalar(float mean, float std, int channels);

typedef struct infer_lane {
    dnn *d;                          /* lane 0: the caller's engine; the others own theirs */
    vit_plan *plan;                  /* planned for lane_batch images */
    vit_head heads[INFER_MAX_HEADS]; /* heads[i] has head_classes[i] classes */
    float *images;                   /* [lane_batch, C, S, S] */
    float *features;                 /* [lane_batch, D] */
    float *logits;                   /* [lane_batch, logits_classes] */
} infer_lane;

typedef struct infer_ctx {
    dnn *d;
    vit_config cfg;
    int batch;      /* images per pass of all lanes together */
    int lanes;      /* 1..INFER_MAX_LANES */
    int lane_batch; /* ceil(batch / lanes) */
    infer_lane lane[INFER_MAX_LANES];
    int head_classes[INFER_MAX_HEADS]; /* planned once per class count, on first use */
    int n_heads;
    int logits_classes; /* the largest class count planned */
    /* wide models: the plan of the last partial pass (tail_batch images, a multiple of
     * INFER_TAIL_QUANTUM below batch), planned on first use and kept while that size recurs */
    vit_plan *tail;
    int tail_batch;
    /* optional: applied in place to every lane's features [rows, D] before the head (infer_logits
     * only), e.g. a task's surgery map (ckpt_surgery_hook); must be thread-safe across lanes */
    void (*feature_hook)(float *features, int rows, int dim, const void *user);
    const void *feature_user;
} infer_ctx;

/* lanes = 0: the policy above (one lane per OpenMP thread for narrow models, batch allowing). */
int infer_init_lanes(infer_ctx *ic, dnn *d, const vit_config *cfg, int batch, int lanes, tt_err *err);
/* The lane count infer_init picks for this model and batch with the current OpenMP threads. */
int infer_auto_lanes(const vit_config *cfg, int batch);
int infer_init(infer_ctx *ic, dnn *d, const vit_config *cfg, int batch, tt_err *err);
void infer_free(infer_ctx *ic);
/* Plan the heads for these class counts now, so that infer_logits cannot fail later (it plans
 * a head on first use otherwise: oneDNN primitives and memory, which can run out). */
int infer_plan_heads(infer_ctx *ic, const int *classes, int n, tt_err *err);

/* Normalise pixels [n_img, C, S, S] into dst [batch, C, S, S], zero-padding rows past n_img;
 * img_size = C·S·S with C = nm->channels. Per element: p · (1/(255·std[c])) + (−mean[c]/std[c]). */
void infer_normalize(float *dst, const uint8_t *pixels, int n_img, int batch, size_t img_size, const infer_norm *nm);

/* features [n, D]. */
void infer_features(infer_ctx *ic, const vit_weights *w, const uint8_t *pixels, int n, const infer_norm *nm,
                    float *features);
/* logits [n, classes] = head(features(pixels)). Returns -1 only if the head cannot be planned
 * (never after infer_plan_heads with this class count). */
int infer_logits(infer_ctx *ic, const vit_weights *w, const float *head_W, const float *head_b, int classes,
                 const uint8_t *pixels, int n, const infer_norm *nm, float *logits, tt_err *err);

/* Top-1 accuracy (%) of logits [n, classes] against labels [n]. */
double infer_accuracy(const float *logits, const int32_t *labels, int n, int classes);

/* infer_logits + infer_accuracy sharded over the MPI ranks (core/par.h; one rank: exactly those
 * two): rank r runs its contiguous share of the n images, the correct counts are summed over the
 * ranks and the logits [n, classes] gathered in order on rank 0 (another rank holds only its own
 * share, at its offset). *acc is the same on every rank; the logits equal one process's up to
 * rounding (an image's place in a pass can change its last bits where oneDNN's GEMM computes edge
 * rows in another order: AVX2's gemm:jit; docs/mpi.md), so *acc equals one process's unless two
 * classes tie to that precision. Every rank must call it; a rank's failure fails all of them (the
 * others say so). */
int infer_accuracy_sharded(infer_ctx *ic, const vit_weights *w, const float *head_W, const float *head_b, int classes,
                           const uint8_t *pixels, const int32_t *labels, int n, const infer_norm *nm,
                           float *logits, double *acc, tt_err *err);

#endif
