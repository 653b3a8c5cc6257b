/* adapt.h — the test-time adaptation engine shared by AdaMerging and Model Tinting.
 *
 * Learns merge coefficients λ (one per task, or one per task and tensor) — and optionally one
 * task-specific head per task ("tint") — on unlabeled test inputs:
 *   θ_l = θ0_l + Σ_k clamp(λ_k,l, 0, 1) τ_k,l
 *   loss = Σ_k w · L(head_k(f(x_k; θ)))        x_k: a batch of task k's test inputs
 *   dL/dλ_k,l = <dL/dθ_l, τ_k,l>               (one backward through the merged model)
 * with Adam on the raw λ (the clamp is applied when merging and its gradient is zero outside
 * [0,1], as torch.clamp in the official code). L is the Shannon entropy (AdaMerging) or the
 * cross-entropy against each expert's hard labels (Tinting's pseudo / pseudo-conf).
 *
 * Cost per step: one merge (K multiply-adds per weight), one forward+backward of all task
 * batches concatenated into one batch (or of one task's batch, per_task_steps), and K dot
 * products per tensor. Everything is allocated before the first step; the merged weights are
 * updated in place in ctx->out.
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
    float lr_heads;       /* 1e-2 */
    adapt_loss loss;
    int eval_every;       /* record test accuracy every N steps in the curve (0 = never) */
    float diverge_factor; /* stop when the loss exceeds factor x its first value (0 = off) */
} adapt_opts;

typedef struct adapt_point {
    int step;
    double loss, entropy, accuracy; /* accuracy < 0 when not evaluated */
    double seconds;                 /* wall time of the step: merge, forward+backward, optimizer (no evaluation) */
} adapt_point;

typedef struct adapt_result {
    float *lambda;        /* [K * n_coef] clamped coefficients (owned) */
    int n_coef;           /* tensors (layer-wise) or 1 */
    adapt_point *curve;   /* [n_curve] (owned) */
    int n_curve;
    double seconds, seconds_per_step;
    float *heads[MERGE_MAX_TASKS]; /* trained head [classes*D + classes] per task when train_heads (owned) */
} adapt_result;

/* tv: [K][ctx->pre.lay.total] task vectors to merge (τ_k, or TIES-processed τ_k). */
int adapt_run(merge_ctx *ctx, const float *tv, const adapt_opts *o, adapt_result *res, tt_err *err);
void adapt_result_free(adapt_result *r);

/* The objective at given raw coefficients lam_raw [K * n_coef] on a fixed batch (the first
 * o->batch test images of every task, o->accum times): loss and dL/dλ (grad [K * n_coef]).
 * With train_heads, the tints are heads[k] ([C*D + C]; NULL = the zero-shot heads) and
 * dL/d(tint_k) goes to head_grad[k] (may be NULL). The experts' pseudo-labels always use the
 * zero-shot heads. For gradient checks and analysis; leaves ctx->out = the merge at lam_raw. */
int adapt_objective(merge_ctx *ctx, const float *tv, const adapt_opts *o, const float *lam_raw,
                    const float *const *heads, double *loss, float *grad, float *const *head_grad, tt_err *err);

/* All K task vectors τ_k = θ_k − θ0 in one [K][total] buffer (caller frees). */
float *adapt_task_vectors(merge_ctx *ctx, tt_err *err);

/* Writes the curve as CSV (step,loss,entropy,accuracy) atomically. */
int adapt_write_curve(const adapt_result *r, const char *path, tt_err *err);

/* Record JSON of λ (per task: mean and, layer-wise, min/max) and the final loss. Caller frees. */
char *adapt_record_json(const merge_ctx *ctx, const adapt_result *r);

#endif
