/* tinting.h — Model Tinting (tint/tinting.c), for the registry and the step benchmark. */
#ifndef TT_TINTING_H
#define TT_TINTING_H

#include "adamerge/adapt.h"
#include "baselines/merge.h"

extern const merge_method method_tinting;

/* The engine options of a Tinting run from ctx's resolved parameters (ctx opened with
 * method_tinting): what tint_run hands adapt_run, so that bench/micro/adamerge_bench.c times the
 * very same step. TT_EINPUT on a bad parameter value (an unknown `layer` lists the valid names). */
int tint_adapt_opts(merge_ctx *ctx, adapt_opts *o, tt_err *err);

#endif
