/* awd.h — AWD's disentanglement (baselines/awd.c) for the methods built on it: `awd` (Task
 * Arithmetic on the disentangled task vectors, in awd.c) and `awd-adamerging` (layer-wise
 * AdaMerging on them, adamerge/awd_adamerging.c). The fit reads the merge context's parameters
 * (AWD_PARAMS), builds the Gram matrices of the task vectors in one streaming pass and runs the
 * iteration on δ's coefficients: δ = Σ_m b_m τ_m (per tensor with cosine=layer). */
#ifndef TT_AWD_H
#define TT_AWD_H

#include <jansson.h>

#include "baselines/kernels.h"
#include "baselines/merge.h"

/* The parameters every AWD method takes, with the paper's defaults (Sec. 4.3). */
#define AWD_PARAMS                                                                                           \
    {"alpha", "0.1", "weight of the norm term alpha*||delta|| (paper Sec. 4.3)"},                             \
        {"beta", "0.01", "step size of the gradient steps on delta (paper Sec. 4.3)"},                        \
        {"iters", "300", "gradient steps on delta, in [0, 1000000] (paper Sec. 4.3)"},                        \
        {"init", "zero", "initial delta: zero (the reimplementation) | mean (the mean task vector)"},         \
        {"cosine", "global", "cosines over the whole flattened model (global) | per tensor, averaged (layer)"}, \
        {"update", "gd", "gd = plain (sub)gradient steps (Algorithm 1) | prox = proximal step on alpha*||delta||"}

typedef struct awd_fit {
    awd_opts o;
    int init, cosine, K, groups;
    double *G, *b;    /* [groups][K*K], [groups][K] */
    double *trace;    /* L_O before each iteration and at the end [iters+1] */
    double loss_before, loss_after, norm, tau_norm_mean;
} awd_fit;

/* Read the parameters, build the Gram matrices and run the iteration: f->b is δ's coefficients. */
int awd_fit_run(merge_ctx *ctx, awd_fit *f, tt_err *err);
/* The coefficient matrix as the merged checkpoint's extra tensor ttmerge.awd_coef [groups, K]. */
int awd_fit_save_coef(merge_ctx *ctx, const awd_fit *f, tt_err *err);
/* What the optimisation did (losses, L_O curve, ‖δ‖, coefficients per task), added to rec. */
void awd_fit_record(const merge_ctx *ctx, const awd_fit *f, json_t *rec);
void awd_fit_free(awd_fit *f);

#endif
