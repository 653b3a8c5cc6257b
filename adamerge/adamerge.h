/* adamerge.h — the AdaMerging methods (adamerge/adamerge.c, adamerge/awd_adamerging.c) and the
 * pieces of them that Tinting reuses. */
#ifndef TT_ADAMERGE_H
#define TT_ADAMERGE_H

#include "adamerge/adapt.h"

extern const merge_method method_adamerging_task;
extern const merge_method method_adamerging;    /* layer-wise */
extern const merge_method method_adamerging_pp;
extern const merge_method method_awd_adamerging;

/* The parameters every AdaMerging variant shares (read by adamerge_opts). */
#define ADA_PARAMS                                                                                 \
    {"lambda", "0.3", "initial coefficient (clamped to [0,1] when merging)"},                      \
        {"steps", "500", "Adam steps"}, {"lr", "1e-3", "Adam learning rate of the coefficients"},  \
        {"batch", "16", "test images per task per forward"},                                       \
        {"accum", "2", "forwards per task per step (official: 2 batches of 16)"},                  \
        {"micro", "0",                                                                             \
         "images per forward+backward: less memory, same gradient (0 = batch x tasks; must divide it)"}, \
        {"eval_every", "0", "record test accuracy in the curve every N steps (0 = never)"},        \
        ADAPT_DIVERGE_PARAM

/* Read lambda/steps/lr/batch/accum/micro/eval_every/diverge into o (entropy loss, task-wise). */
int adamerge_opts(merge_ctx *ctx, adapt_opts *o, tt_err *err);
/* Run the engine on tv; store ttmerge.lambda [K, n_coef], the curve (if ctx->curve_csv) and
 * the record. r is filled (caller frees with adapt_result_free). A run that diverged is kept
 * (best coefficients, "stopped_early" in the record) with a one-line warning on stderr. */
int adamerge_finish(merge_ctx *ctx, const float *tv, const adapt_opts *o, adapt_result *r, tt_err *err);

#endif
