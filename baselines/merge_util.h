/* merge_util.h — small helpers over merge_ctx shared by the baseline merges (TIES, Consensus,
 * DARE, TATR, LATA), kept out of merge.c on purpose: task-vector sources (so that one method
 * can feed another's modified task vectors, e.g. DARE -> TIES), streaming sums, single-task
 * validation accuracy, parameter checks with one-line errors, and the record JSON.
 */
#ifndef TT_MERGE_UTIL_H
#define TT_MERGE_UTIL_H

#include <jansson.h>

#include "baselines/anymerge.h"
#include "baselines/merge.h"

/* Where task vectors come from: fn fills out[numel of layout tensor l] with task k's (possibly
 * transformed) τ_k,l. A NULL source or fn means the plain τ_k,l = θ_k,l − θ0,l. */
typedef struct mu_tv_source {
    void (*fn)(const merge_ctx *ctx, int k, int l, float *out, void *user);
    void *user;
} mu_tv_source;
void mu_task_vector(const merge_ctx *ctx, const mu_tv_source *src, int k, int l, float *out);

/* The K task vectors of tensor l for the one-pass K-way kernels (baselines/kernels.h): with the plain
 * source and zero-copy views of every θ_k,l, a[k] = θ_k,l's mapped data and *b = θ0,l (nothing is
 * copied: the kernels form θ_k − θ0 on the fly); otherwise a[k] = scratch + k·mu_max_numel holds
 * τ_k,l (from src) and *b = NULL. scratch ([K × mu_max_numel]) is needed only when
 * mu_tv_need_scratch says so. */
bool mu_tv_need_scratch(const merge_ctx *ctx, const mu_tv_source *src);
void mu_tv_views(const merge_ctx *ctx, const mu_tv_source *src, int l, float *scratch, const float **a,
                 const float **b);

/* Largest tensor (floats) and the number of parameters (Σ numel, padding excluded). */
size_t mu_max_numel(const merge_ctx *ctx);
uint64_t mu_param_count(const merge_ctx *ctx);

/* The merge engine of any-model merges (baselines/anymerge.h) on the suite's tensors: c's method
 * (ta or ties; c->K and c->progress are set here from ctx) over the task vectors of src, its merged
 * task vector (no λ) into delta's tensors (layout of θ0; the padding is not written). res may be NULL. */
int mu_merge_tau(merge_ctx *ctx, const mu_tv_source *src, am_config *c, float *delta, am_tau_result *res,
                 tt_err *err);

/* delta = Σ_k τ_k over its tensors (layout of θ0; the padding is not written), each τ_k,l from src
 * added in task order, as K separate additions would: mu_merge_tau's ta. */
int mu_sum_task_vectors(merge_ctx *ctx, const mu_tv_source *src, float *delta, tt_err *err);

/* A numeric parameter that must lie in [lo, hi]; error "parameter topk=150 is out of range [0, 100]". */
int mu_param_range(const merge_ctx *ctx, const char *name, double lo, double hi, double *out, tt_err *err);
/* The same for an integer parameter ("parameter epochs=2.5 is not an integer"). */
int mu_param_int_range(const merge_ctx *ctx, const char *name, long lo, long hi, int *out, tt_err *err);
/* A parameter that must be one of n words; *idx = its position. */
int mu_param_choice(const merge_ctx *ctx, const char *name, const char *const *words, int n, int *idx, tt_err *err);

/* Task t's training sample for the data-based merges (Fisher, RegMean): min(n, |train|) images of
 * its train split drawn without replacement by a shuffle seeded with ctx->seed (FusionBench draws
 * from a shuffled DataLoader), normalised, in draw order. *images [ceil(*got/batch)·batch × image]
 * (rows past *got are zero), *idx [*got] the train indices (idx may be NULL); the caller frees both.
 * The same seed and task give the same sample to every method. */
int mu_train_sample(const merge_ctx *ctx, int t, int n, int batch, float **images, int **idx, int *got, tt_err *err);

/* {0.1, 0.2, ..., 1.5}: the λ grid for dis-mean TIES (λ ≈ 1 is its natural scale; the official
 * README recipe searches 0.8..2.5, tall_masks 0.1..1.0 — this covers both regions we can afford). */
extern const double mu_grid_ties_mean[15];

/* {"task": v[t], ...} for the record. */
json_t *mu_json_per_task(const merge_ctx *ctx, const double *v);
json_t *mu_json_per_task_int(const merge_ctx *ctx, const int *v);
/* Add the members of the fragment "\"k\":v,..." written by search_lambda to rec, then store rec
 * as the record (merge_record). Takes ownership of rec. */
int mu_record_finish(merge_ctx *ctx, json_t *rec, const char *search_fragment, tt_err *err);

#endif
