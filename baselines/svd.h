/* svd.h — thin SVDs of layer matrices (LAPACK dgesdd through LAPACKE, products with cblas_dgemm)
 * and the per-tensor driver the SVD-based merges share (TSV-M, Iso-C, Iso-CTS).
 *
 * Precision: float64 inside a tensor's merge (task vectors in and the merged tensor out are float32).
 * The official code runs torch.linalg.svd in float32 on a GPU. LAPACK's float32 SVD (sgesdd) on this
 * CPU leaves backward errors of ~1e-6 (orthogonality of U ~2e-6 for a 48×16 matrix, 25x numpy's),
 * which TSV-M's two orthogonalisations amplify past 1e-5 (a hand-made 14×10 case: 1.5e-5 from the
 * float64 result). In float64 the merge is the exact one to ~1e-12 for any library and thread count;
 * the SVDs cost ~1.7x their float32 time.
 *
 * Matrices are row-major (the layout of a θ tensor [m, n]); k = min(m, n). dgesdd is called in
 * column-major mode on the same buffer, that is on the transpose, so nothing is copied: the
 * factors of aᵀ = V Σ Uᵀ are read back as U and Vᵀ of a.
 *
 * Threads: svd_merge_layers runs tensors in parallel, one per OpenMP thread, and asks OpenBLAS
 * (when it is the LAPACK in use) for one thread per call; each tensor's result is then computed
 * by one thread in a fixed order, so the merge has the same bits whatever the thread count.
 *
 *   double *u = ..., *s = ..., *vt = ...;             // [m*k], [k], [k*n]
 *   if (svd_thin(a, m, n, u, s, vt, err)) return -1;  // a is overwritten
 */
#ifndef TT_SVD_H
#define TT_SVD_H

#include <stdbool.h>

#include "baselines/merge.h"

/* Open LAPACKE and CBLAS (once; the functions below need it, svd_run_jobs and svd_merge_layers call
 * it). Fails with one line naming the missing library. */
int svd_init(tt_err *err);

/* Economy SVD of a [m×n] (overwritten): u [m×k], s [k] (descending), vt [k×n]. An all-zero a gives
 * u = I[:, :k], s = 0, vt = I[:k, :] (what LAPACK returns; fixed here, because the polar factors
 * of TSV-M and Iso-CTS see these vectors). Fails only when LAPACK does not converge or memory runs out. */
int svd_thin(double *a, int m, int n, double *u, double *s, double *vt, tt_err *err);

/* The r leading singular triplets only (1 <= r <= k; LAPACK dgesvdx, 1.5-3x faster than the whole
 * SVD for r <= k/8): u [m×r], s [k] (s[0..r) filled, the rest is workspace), vt [r×n]. An all-zero a
 * gives the same identity vectors as svd_thin. */
int svd_top(double *a, int m, int n, int r, double *u, double *s, double *vt, tt_err *err);

/* The orthogonal polar factor p [m×n] = A·B of a [m×n] (overwritten) from its thin SVD a = A·Σ·B:
 * the official "orthogonalise U and V" step of TSV-M and Iso-CTS. */
int svd_polar(double *a, int m, int n, double *p, tt_err *err);

/* c [M×N] = alpha · op(a) · op(b) + beta · c, row-major, op = transpose when t* is set. */
void svd_gemm(bool ta, bool tb, int M, int N, int K, double alpha, const double *a, const double *b, double beta,
              double *c);

/* Solve a x = b in place (LAPACK dgesv: LU with partial pivoting): a [n×n] is overwritten by its
 * factors, b [n×nrhs] by x. Fails (TT_ENUMERIC) when a pivot is exactly 0. RegMean's closed form. */
int svd_solve(double *a, int n, double *b, int nrhs, tt_err *err);

/* out [m×n] = pu [m×k] · diag(s) · pv [k×n], rounded to float32 (pu is overwritten by pu·diag(s)). */
int svd_reconstruct(double *pu, const double *s, const double *pv, int m, int k, int n, float *out, tt_err *err);

/* Allocation helpers for the layer functions: NULL (and err set) when out of memory. */
double *svd_alloc(size_t n, tt_err *err);
/* dst [n] = (double) src [n] */
void svd_widen(const float *src, size_t n, double *dst);

/* Python's int(k * (1.0 / K)): the per-task rank of TSV-M. */
int svd_rank_fraction(int k, int K);

/* ---- over a merge_ctx (svd_merge.c: the suite's methods; the rest of this header is svd.c) ----
 * A merged 2-D tensor from the K task vectors of one tensor (tau[t] is [m×n], read-only):
 * out [m×n] is overwritten. Called for several tensors at once, from different threads. */
typedef int (*svd_layer_fn)(const float *const *tau, int K, int m, int n, float *out, const void *user,
                            tt_err *err);

/* fn over n_jobs matrices in parallel, one per OpenMP thread (largest first, single-threaded BLAS in
 * each): job i is [m×n] and writes out; get(src, i, t, buf) fills task t's matrix of job i (from several
 * threads at once). On failure, err names the job. */
typedef struct svd_job {
    int m, n;
    float *out;
    const char *name;
} svd_job;
typedef void (*svd_tau_get)(const void *src, int job, int t, float *out);
int svd_run_jobs(int n_jobs, const svd_job *jobs, int K, svd_tau_get get, const void *src, svd_layer_fn fn,
                 const void *user, bool show_progress, tt_err *err);

/* Which tensors get fn: every 2-D tensor (the official rule: `len(shape) == 2 and "text_projection"
 * not in key`; ttmerge's layout has no text tower). For ViT: positional_embedding, each block's
 * attn.in_proj_weight (the fused [3w, w] QKV, as open_clip's state dict holds it), attn.out_proj.weight,
 * mlp.c_fc.weight, mlp.c_proj.weight, and proj. */
bool svd_tensor_selected(const vit_tensor_info *t);

/* fn on the 2-D tensors that `selected` accepts, in parallel as svd_run_jobs, each writing its slice of
 * delta (layout of θ0); every other tensor of delta is left as it is. get(ctx, l, t, out, get_user)
 * gives task t's matrix of layout tensor l (NULL: the plain τ_t): WUDI and CART, whose tensor rules
 * and inputs differ from the SVD merges'. */
typedef void (*svd_ctx_get)(const merge_ctx *ctx, int l, int t, float *out, const void *user);
int svd_merge_selected(merge_ctx *ctx, bool (*selected)(const vit_tensor_info *), svd_ctx_get get,
                       const void *get_user, svd_layer_fn fn, const void *user, float *delta, tt_err *err);

/* delta (layout of θ0, overwritten) = fn on every selected tensor, and the running mean of τ_t
 * (mean += (τ_t − mean) / (t+1), in task order, fp32, as the official code) on every other one. */
int svd_merge_layers(merge_ctx *ctx, svd_layer_fn fn, const void *user, float *delta, tt_err *err);
/* The same into a new delta (tt_calloc_aligned; the caller frees it), or NULL with err set: the
 * first step of every SVD merge. */
float *svd_merged_delta(merge_ctx *ctx, svd_layer_fn fn, const void *user, tt_err *err);

/* {0.1, 0.2, ..., 3.0}: np.linspace(0, 3, 31)[1:], the α grid of the TSV and Iso evaluation code. */
extern const double svd_alpha_grid[30];

#endif
