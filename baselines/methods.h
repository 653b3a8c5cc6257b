/* methods.h — every merge method value, for the registry (baselines/registry.c). Each method
 * lives in the file named after it: baselines/ta.c, baselines/ties.c, adamerge/adamerge.c, ... */
#ifndef TT_METHODS_H
#define TT_METHODS_H

#include "baselines/merge.h"

extern const merge_method method_zeroshot;
extern const merge_method method_ta;
extern const merge_method method_ties;
extern const merge_method method_consensus_ta;
extern const merge_method method_consensus_ties;
extern const merge_method method_tatr;
extern const merge_method method_dare;
extern const merge_method method_lata;
extern const merge_method method_awd;
extern const merge_method method_adamerging_task;
extern const merge_method method_adamerging;
extern const merge_method method_adamerging_pp;
extern const merge_method method_awd_adamerging;
extern const merge_method method_tinting;

/* TIES (trim top-k% per task globally, elect sign, disjoint mean|sum) of the task vectors into delta
 * (layout of θ0, overwritten); density_out [K] (may be NULL) = kept fraction per task. baselines/ties.c */
int ties_merged_delta(merge_ctx *ctx, double topk, bool mean, float *delta, double *density_out, tt_err *err);

#endif
