/* ties.h — TIES-Merging's pieces that other methods reuse (baselines/ties.c): the merged
 * task vector (DARE's and TATR's base=ties, Consensus-TIES' multi-task vector) and the
 * per-task selected entries (AdaMerging++). */
#ifndef TT_TIES_H
#define TT_TIES_H

#include "baselines/merge_util.h"

/* TIES (trim top-k% per task globally, elect sign, disjoint mean|sum) of the task vectors into delta
 * (layout of θ0: its tensors overwritten, the padding not written), on the merge engine
 * (mu_merge_tau); density_out [K] (may be NULL) = kept fraction per task. */
int ties_merged_delta(merge_ctx *ctx, double topk, bool mean, float *delta, double *density_out, tt_err *err);

/* The same over an arbitrary task-vector source. density_out [K] (may be NULL) gets each task's kept fraction, thr_out
 * [K] (may be NULL) its trim threshold. */
int ties_merged_delta_src(merge_ctx *ctx, const mu_tv_source *src, double topk, bool mean, float *delta,
                          double *density_out, float *thr_out, tt_err *err);

/* The official ties_merging_split's "selected entries", for AdaMerging++: each of the K task
 * vectors in tv [K][lay->total] keeps, in place, its top-k% magnitudes over the whole model
 * where its sign agrees with the elected sign; everything else becomes 0. */
int ties_split_in_place(const vit_layout *lay, int K, float *tv, double topk, tt_err *err);

#endif
