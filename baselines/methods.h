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
extern const merge_method method_fisher;
extern const merge_method method_regmean;
extern const merge_method method_wudi;
extern const merge_method method_cart;
extern const merge_method method_pcb;

/* The per-tensor merges of the SVD-based methods (svd.h's svd_layer_fn): the K task vectors tau[t]
 * [m×n] of one 2-D tensor into out [m×n]: baselines/svd_layers.c (iso-cts' user: the double
 * common_space_fraction), used by tsv_m.c, iso_c.c, iso_cts.c and the any-model engine. isocts_dims: Iso-CTS's common and per-task subspace sizes for rank k
 * (-1 when the fraction leaves a negative common subspace). */
int tsvm_layer(const float *const *tau, int K, int m, int n, float *out, const void *user, tt_err *err);
int isoc_layer(const float *const *tau, int K, int m, int n, float *out, const void *user, tt_err *err);
int isocts_layer(const float *const *tau, int K, int m, int n, float *out, const void *user, tt_err *err);
int isocts_dims(int k, int K, double fraction, int *common, int *per_task);

/* WUDI (baselines/wudi.c): its matrices (the four weight matrices of each block), and the per-matrix
 * optimisation as an svd_layer_fn (user: wudi_opts). */
typedef struct wudi_opts {
    int iters;
    double lr;
} wudi_opts;
bool wudi_tensor_selected(const vit_tensor_info *t);
int wudi_layer(const float *const *tau, int K, int m, int n, float *out, const void *user, tt_err *err);

/* CART (baselines/cart.c): its matrices (attn/mlp weights), and the per-matrix sum of the rank-r
 * truncations of the K centred task vectors c_t (tau[t] here) as an svd_layer_fn (user: the double
 * rank ratio). cart_rank: the official max(1, int(ratio · k)). */
bool cart_tensor_selected(const vit_tensor_info *t);
/* The same rule on a name: it holds "attn" or "mlp", and neither "ln" nor "bias" (svd_layers.c). */
bool cart_name_selected(const char *name);
int cart_layer(const float *const *centred, int K, int m, int n, float *out, const void *user, tt_err *err);
int cart_rank(int k, double ratio);

/* PCB (baselines/pcb.c) on K task vectors flattened into one [K × d] array (task t at x + t·d): the
 * merged vector into out [d]. For known-answer tests; the method streams the model instead. */
typedef struct pcb_opts {
    double lambda, clamp_ratio, keep_ratio;
} pcb_opts;
int pcb_flat(const float *x, int K, size_t d, const pcb_opts *o, float *out, tt_err *err);

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

/* Fisher merging (baselines/fisher.c). fisher_dlogits: ∂/∂z of Σ_c sqrt(p_c)·log p_c (sqrt(p) held
 * constant) for rows of logits [rows×C]. fisher_diag: task t's diagonal Fisher F [total] (layout of
 * θ0; padding 0) with ctx's parameters, on the images it draws (*used of them); uses ctx->out as
 * scratch (left = θ_t). */
void fisher_dlogits(const float *logits, int rows, int C, float *dlogits);
int fisher_diag(merge_ctx *ctx, int t, float *F, int *used, tt_err *err);

/* RegMean (baselines/regmean.c): the linear layers it merges by regression, in layout order. */
typedef struct regmean_layer {
    int tensor;              /* layout index of the weight [d_out, d_in] */
    int block;
    vit_linear which;        /* whose saved input is X */
    int d_in, d_out;
    size_t gram_off;         /* offset of its [d_in × d_in] Gram in a regmean_gram_floats buffer */
    size_t cross_off;        /* offset of its [d_in × d_out] Σ G̃ Wᵀ */
} regmean_layer;
/* Fill ls (at most max): the number of layers, or -1. */
int regmean_layers(const merge_ctx *ctx, regmean_layer *ls, int max, tt_err *err);
size_t regmean_gram_floats(const regmean_layer *ls, int n);
/* Task t's Gram matrices G = XᵀX / rows (float64, every layer of ls) of θ_t on the images it draws
 * (*used of them), with ctx's samples and batch (a fisher context serves too); uses ctx->out as scratch (left = θ_t). */
int regmean_grams(merge_ctx *ctx, int t, const regmean_layer *ls, int n_layers, double *G, int *used, tt_err *err);
/* The closed form on plain arrays (float64): g [d×d] off-diagonals *= alpha; S += G, R [d_in×d_out] +=
 * G Wᵀ (W [d_out×d_in]); out [d_out×d_in] = ((S⁻¹ R))ᵀ, S and R overwritten (fails when S is singular).
 * The two last need svd_init. */
void regmean_reduce_offdiag(double *g, int d, double alpha);
int regmean_accumulate(double *S, double *R, const double *G, const float *W, int d_in, int d_out, tt_err *err);
int regmean_solve(double *S, double *R, int d_in, int d_out, float *out, tt_err *err);

#endif
