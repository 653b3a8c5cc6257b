/* methods.h — the data-free and data-light merge methods of baselines/, for the registry
 * (bench/registry.c), and what grafting exposes to its tests. Each method lives in the file named
 * after it: baselines/ta.c, baselines/ties.c, ... */
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
extern const merge_method method_graft;
extern const merge_method method_tsv_m;
extern const merge_method method_iso_c;
extern const merge_method method_iso_cts;
extern const merge_method method_emr;

/* EMR-Merging's per-tensor step (baselines/emr.c): from the K task vectors tau[k] [n], the unified
 * vector uni [n], the sign masks mask[k] [(n+7)/8] (packed bits, element j = bit j&7 of byte j>>3),
 * and per task mean|τ_k| (abs_tau[k]) and mean|m_k ⊙ τ_uni| (abs_kept[k]). */
int emr_tensor(const float *const *tau, int K, size_t n, float *uni, uint8_t *const *mask, double *abs_tau,
               double *abs_kept);

/* The per-tensor merges of the SVD-based methods (svd.h's svd_layer_fn): the K task vectors tau[t]
 * [m×n] of one 2-D tensor into out [m×n]. baselines/tsv_m.c, iso_c.c, iso_cts.c (user: the double
 * common_space_fraction). isocts_dims: Iso-CTS's common and per-task subspace sizes for rank k
 * (-1 when the fraction leaves a negative common subspace). */
int tsvm_layer(const float *const *tau, int K, int m, int n, float *out, const void *user, tt_err *err);
int isoc_layer(const float *const *tau, int K, int m, int n, float *out, const void *user, tt_err *err);
int isocts_layer(const float *const *tau, int K, int m, int n, float *out, const void *user, tt_err *err);
int isocts_dims(int k, int K, double fraction, int *common, int *per_task);

/* Grafting / Localize-and-Stitch (baselines/graft.c): what localising one task found. */
typedef struct graft_info {
    int shots;                    /* labeled images the mask was learned on (0: dataless) */
    uint64_t kept, basepatch;     /* weights in the rounded mask m_t, and in the basepatch b_t */
    double density;               /* kept / d (d = parameters, padding excluded) */
    double acc_graft, acc_finetuned;   /* accuracy (%) on the shots of θ0 + m_t ⊙ τ_t, and of θ_t */
    double loss_graft, loss_finetuned; /* their mean cross-entropy on the shots */
    double loss_first, loss_last; /* relaxed objective at the first and the last step */
    int best_epoch;               /* epoch (1-based) whose rounded mask was kept */
    double lr;                    /* the step size used (lr=auto: chosen at the first step) */
} graft_info;
/* Localise task t with ctx's parameters (ctx opened for method_graft): the rounded mask m_t into
 * mask [ctx->pre.lay.total] (bytes 0/1; padding 0). Uses ctx->out as scratch. */
int graft_localize(merge_ctx *ctx, int t, uint8_t *mask, graft_info *info, tt_err *err);
/* The localisation objective of task t at scores S [total]: L(S) = mean cross-entropy over the
 * task's shots of θ0 + γ(S) ⊙ τ_t, and ∂L/∂S into grad [total] (may be NULL); the basepatch b
 * into basepatch [total] (may be NULL). For gradient checks; leaves ctx->out = the relaxed graft. */
int graft_objective(merge_ctx *ctx, int t, const float *S, double *loss, float *grad, uint8_t *basepatch,
                    tt_err *err);

#endif
