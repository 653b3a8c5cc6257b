/* adapt.h — the test-time adaptation engine shared by AdaMerging and Model Tinting.
 *
 * Learns merge coefficients λ (one per task, or one per task and tensor) — and optionally one
 * task-specific layer per task ("tint": its head, or a copy of one backbone tensor) — on
 * unlabeled test inputs:
 *   θ_l = θ0_l + Σ_k clamp(λ_k,l, 0, 1) τ_k,l
 *   loss = Σ_k w · L(head_k(f(x_k; θ)))        x_k: a batch of task k's test inputs
 *   dL/dλ_k,l = <dL/dθ_l, τ_k,l>               (one backward through the merged model)
 * A tinted backbone tensor l runs task k with θ_l^(k) = θ_l + Δ_k (Δ_k trainable, from 0), so
 * dL/dΔ_k = dL/dθ_l^(k) and λ_·,l still acts through θ_l; the heads are the zero-shot ones.
 * with Adam on the raw λ (the clamp is applied when merging and its gradient is zero outside
 * [0,1], as torch.clamp in the official code). L is the Shannon entropy (AdaMerging) or the
 * cross-entropy against each expert's hard labels (Tinting's pseudo / pseudo-conf).
 *
 * Cost per step: one merge (K multiply-adds per weight), one forward+backward of all task
 * batches concatenated into one batch (or of one task's batch, per_task_steps), and K dot
 * products per tensor. Everything is allocated before the first step; the merged weights are
 * updated in place in ctx->out.
 * Memory: the training plan keeps every block's activations of the images it runs at once (24 GB
 * for 128 images at ViT-B/16). micro = m runs them m at a time — forward, heads, loss and backward
 * of each chunk, the chunks' gradients summed — for the same gradient up to rounding (the loss is a
 * sum of per-image terms) and activations of m images.
 */
#ifndef TT_ADAPT_H
#define TT_ADAPT_H

#include "baselines/merge.h"

typedef enum adapt_loss { ADAPT_ENTROPY, ADAPT_PSEUDO, ADAPT_PSEUDO_CONF } adapt_loss;

typedef struct adapt_opts {
    bool layerwise;       /* λ per task and tensor (else one per task) */
    float lambda_init;    /* 0.3 */
    float lr;             /* Adam lr of λ: 1e-3 (AdaMerging), 1e-2 (Tinting) */
    int steps;            /* optimizer steps */
    int batch;            /* images per task per forward: 16 */
    int accum;            /* forwards per task per step (AdaMerging: 2 batches of 16) */
    bool per_task_steps;  /* Tinting: one step per task batch, task order shuffled every round */
    bool train_heads;     /* Tinting: heads are trainable (initialised from the zero-shot heads) */
    bool train_tensor;    /* Tinting of a backbone tensor (needs per_task_steps; not with train_heads) */
    int tensor;           /* its layout index l: task k runs with θ_l + Δ_k */
    float lr_tint;        /* Adam lr of the tints (heads or Δ_k): 1e-2 */
    adapt_loss loss;
    int eval_every;       /* record test accuracy every N steps in the curve (0 = never) */
    float diverge_factor; /* stop when a round's loss exceeds factor x the first round's (0 = off) */
    int lanes;            /* forward+backward lanes (core/lanes.h) of a chunk; 0 = vit_lanes_auto */
    /* images per forward+backward (16), 0 = all of a forward's (batch x K, or batch per_task_steps).
     * Must divide that number, and split evenly over the MPI ranks. A chunk may hold several tasks'
     * batches or a slice of one; splitting a task's batch under ADAPT_PSEUDO_CONF (whose mean is over
     * the kept images of the whole batch) needs per_task_steps. */
    int micro;
} adapt_opts;

typedef struct adapt_point {
    int step;
    double loss, entropy, accuracy; /* accuracy < 0 when not evaluated */
    double seconds;                 /* wall time of the step: merge, forward+backward, optimizer (no evaluation) */
} adapt_point;

/* Divergence: a non-finite loss, or a round's loss above diverge_factor x the first round's
 * (a round = one step, or K per-task steps, so that rounds compare like with like). The run
 * then stops and keeps the coefficients (and tints) of the round with the lowest loss so far —
 * the ones in effect when that round started; the initial ones when no round completed. */
typedef struct adapt_stop {
    bool stopped;         /* the run stopped early */
    int step;             /* the step whose loss diverged */
    double loss;          /* that loss (may be NaN/Inf) */
    int kept_step;        /* first step of the kept round (0 with kept_loss < 0: the initial coefficients) */
    double kept_loss;     /* its round loss; -1 when no round completed */
    char why[160];        /* "loss nan is not finite", "loss 812 > 10 x the first round's 3.1" */
} adapt_stop;

typedef struct adapt_result {
    float *lambda;        /* [K * n_coef] clamped coefficients (owned) */
    int n_coef;           /* tensors (layer-wise) or 1 */
    adapt_point *curve;   /* [n_curve] (owned) */
    int n_curve;
    double seconds, seconds_per_step;
    /* per task, when a tint is trained (owned): the head [classes*D + classes] (train_heads) or the
     * final task-specific tensor θ_l + Δ_k [numel] (train_tensor) */
    float *tints[MERGE_MAX_TASKS];
    adapt_stop stop;      /* why and where the run stopped early (stop.stopped) */
} adapt_result;

/* The `diverge` parameter every learner declares, and its reader (0, or a factor > 1). */
#define ADAPT_DIVERGE_PARAM                                                                          \
    {"diverge", "10", "stop when a round's loss exceeds this x the first round's, keeping the best "  \
                      "coefficients so far (0: only on a non-finite loss)"}
int adapt_diverge_param(const merge_ctx *ctx, double *out, tt_err *err);

/* tv: [K][ctx->pre.lay.total] task vectors to merge (τ_k, or TIES-processed τ_k). A run that
 * diverges is not an error: it returns 0 with res->stop filled and ctx->out merged with the kept
 * coefficients; the curve ends at the last step before the divergence. */
int adapt_run(merge_ctx *ctx, const float *tv, const adapt_opts *o, adapt_result *res, tt_err *err);
void adapt_result_free(adapt_result *r);

/* The objective at given raw coefficients lam_raw [K * n_coef] on a fixed batch (the first
 * o->batch test images of every task, o->accum times): loss and dL/dλ (grad [K * n_coef]).
 * With a trained tint, tints[k] is task k's (train_heads: its head [C*D + C]; train_tensor: Δ_k
 * [numel]; NULL = the start: the zero-shot head, Δ = 0) and dL/d(tint_k) goes to tint_grad[k]
 * (may be NULL). The experts' pseudo-labels always use the zero-shot heads. For gradient checks
 * and analysis; leaves ctx->out = the merge at lam_raw. */
int adapt_objective(merge_ctx *ctx, const float *tv, const adapt_opts *o, const float *lam_raw,
                    const float *const *tints, double *loss, float *grad, float *const *tint_grad, tt_err *err);

/* All K task vectors τ_k = θ_k − θ0 in one [K][total] buffer (caller frees). */
float *adapt_task_vectors(merge_ctx *ctx, tt_err *err);

/* Writes the curve as CSV (step,loss,entropy,accuracy) atomically. */
int adapt_write_curve(const adapt_result *r, const char *path, tt_err *err);

/* One line saying where the run diverged and what was kept ("" when it did not stop early). */
void adapt_stop_message(const adapt_result *r, char *buf, size_t cap);

/* Record JSON of λ (per task: mean and, layer-wise, min/max), the final loss and, after a
 * divergence, "stopped_early": {step, reason, kept_step, kept_loss}. Caller frees. */
char *adapt_record_json(const merge_ctx *ctx, const adapt_result *r);

#endif
