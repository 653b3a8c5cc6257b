/* adamerge.h — pieces of AdaMerging that Tinting reuses. */
#ifndef TT_ADAMERGE_H
#define TT_ADAMERGE_H

#include "adamerge/adapt.h"

/* Read lambda/steps/lr/batch/accum/eval_every/diverge into o (entropy loss, task-wise). */
int adamerge_opts(merge_ctx *ctx, adapt_opts *o, tt_err *err);
/* Run the engine on tv; store ttmerge.lambda [K, n_coef], the curve (if ctx->curve_csv) and
 * the record. r is filled (caller frees with adapt_result_free). A run that diverged is kept
 * (best coefficients, "stopped_early" in the record) with a one-line warning on stderr. */
int adamerge_finish(merge_ctx *ctx, const float *tv, const adapt_opts *o, adapt_result *r, tt_err *err);

#endif
