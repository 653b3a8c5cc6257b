/* surgery.h — Representation Surgery's learner (Yang et al., ICML 2024; EnnengYang/RepresentationSurgery,
 * src/merging_model.py + main_TaskArithmetic_with_surgery.py): per task a feature map trained on
 * unlabeled test inputs so that the merged model's features match the task's fine-tuned expert's.
 *
 *   z' = z − up · relu(down · z)       z: the merged model's features [D] (before the head)
 *   down [r, D] kaiming_uniform(a=√5) = U(−1/√D, 1/√D), up [D, r] zeros, r = 16
 *   L  = mean |z' − f_k(x)|            L1 over batch × D, f_k the frozen expert's features
 *   Adam (lr 1e-3, betas 0.9/0.999, eps 1e-8, no weight decay), batch 16; the official loop runs
 *   500 iterations, each taking 2 batches of a freshly shuffled test set per task, one step each:
 *   1000 steps per task. Each task's map sees only its task's batches, and Adam skips parameters
 *   without a gradient (torch >= 2's zero_grad(set_to_none)), so the tasks train independently.
 * The merged encoder is frozen: its features and the expert's are computed once per test image
 * and the steps run on them (the same values the official loop recomputes every step).
 * The maps are stored as task.<task>.surgery.down / .up and applied by `eval` and `bench`
 * (ckpt_task_apply, core/checkpoint.h).
 */
#ifndef TT_SURGERY_H
#define TT_SURGERY_H

#include "baselines/merge.h"

typedef struct surgery_opts {
    int rank;   /* 16 */
    float lr;   /* 1e-3 */
    int steps;  /* Adam steps per task: 1000 */
    int batch;  /* 16 */
} surgery_opts;

/* The L1 objective of one batch: z, f [B, D], down [r, D], up [D, r]; returns the loss and writes
 * dL/d(down) into g_down [r, D] and dL/d(up) into g_up [D, r] (the subgradient torch takes: sign(0)
 * = 0, relu'(0) = 0). Double accumulation. */
double surgery_loss_grad(const float *down, const float *up, int rank, int D, const float *z, const float *f,
                         int B, float *g_down, float *g_up);

/* What training found per task (the first and the last round's mean loss). */
typedef struct surgery_info {
    double first_loss[MERGE_MAX_TASKS], last_loss[MERGE_MAX_TASKS];
} surgery_info;

/* Train one map per task on top of ctx's current merge (ctx->out and the task-specific tensors the
 * base method stored) and add them to ctx's extras. Seeded by ctx->seed. */
int surgery_fit(merge_ctx *ctx, const surgery_opts *o, surgery_info *info, tt_err *err);

#endif
