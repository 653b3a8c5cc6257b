/* kernels.h — the per-element cores of the baseline merges as pure functions on plain arrays.
 *
 * The merge engine (anymerge.h: the any-model merges, and the suite's TA sum and TIES) and the
 * method files (consensus.c, dare.c, tatr.c, lata.c, awd.c) call these on each tensor's task
 * vectors; the tests call them on small hand-checked arrays. The TIES, DARE, Consensus, AWD, LATA
 * and TATR kernels live in ties_kernels.c, dare_kernels.c, consensus_kernels.c, awd_kernels.c,
 * lata_kernels.c and tatr_kernels.c (apart from their methods, which call the engine, which calls
 * these kernels), the others in the file of their method; the generic helpers at the top in
 * kernels.c. Loops are OpenMP-parallel for large n and give
 * the same result for every thread count.
 */
#ifndef TT_KERNELS_H
#define TT_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Loops over fewer elements than this run on one thread (a parallel region would cost more). */
#define KERN_PAR_MIN 65536
/* Kernels with a _seq form: the same loop on the calling thread, for callers that are already
 * parallel over chunks (any-model merges carry a cache-sized chunk through every stage). Even an
 * OpenMP region whose if() is false allocates a team per call: per 4096-element chunk that was
 * most of a merge's time. The parallel form is the _seq one over blocks: the same results. */

/* ---- generic (kernels.c) ---- */
/* y += a x */
void kern_axpy(float *y, float a, const float *x, size_t n);
/* |cos(a, b)| accumulated in double over a fixed chunking (thread-count independent); 0 when
 * either vector is zero. */
double kern_abs_cos(const float *a, const float *b, size_t n);
/* The fixed chunking of the statistics reductions (kern_abs_cos, awd_gram_add): chunk c of n values
 * starts at kern_stat_chunk_start(n, c), its sums run in order within it (AWD's in blocks of
 * KERN_STAT_BLOCK from its start) and the chunks' sums are added in chunk order. A caller that
 * streams a tensor gets the same bits by feeding each chunk's values in order to the _add/_block
 * parts below (one chunk per thread) and finishing once. */
#define KERN_STAT_CHUNKS 64
#define KERN_STAT_BLOCK 1024 /* values per task per inner block of AWD's Gram sums: K blocks stay in L1 */
size_t kern_stat_chunk_start(size_t n, int c);
/* acc[0..3) += Σ a², Σ b², Σ ab over n values in order (double): one chunk's part of kern_abs_cos. */
void kern_abs_cos_add(double *acc, const float *a, const float *b, size_t n);
/* |cos| from the KERN_STAT_CHUNKS chunks' sums acc[3c .. 3c + 3). */
double kern_abs_cos_finish(const double *acc);
/* A uniform double in [0, 1) that depends only on its four inputs (splitmix64 finaliser of a
 * combined key): counter-based randomness, independent of order and thread count. */
double kern_hash_u01(uint64_t seed, uint64_t a, uint64_t b, uint64_t c);
/* The same number in two steps, for loops over c: kern_hash_u01(seed, a, b, c) ==
 * kern_hash_u01_at(kern_hash_prefix(seed, a, b), c), the prefix computed once. */
uint64_t kern_hash_prefix(uint64_t seed, uint64_t a, uint64_t b);
static inline uint64_t kern_mix64(uint64_t z) { /* splitmix64's finaliser */
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static inline double kern_hash_u01_at(uint64_t prefix, uint64_t c) {
    return (double)(kern_mix64(prefix ^ c) >> 11) * 0x1.0p-53;
}
/* A 64-bit key of a tensor's name (FNV-1a): randomness keyed by name is the same whatever order a
 * checkpoint stores its tensors in, so a suite merge and an any-model merge of the same files draw
 * the same numbers. */
uint64_t kern_name_key(const char *name);

/* ---- K-way kernels: one pass over the K task vectors of one tensor ----
 * x_k[i] = a[k][i] − b[i] (a[k] = θ_k, b = θ0: the task vector formed on the fly, in float, exactly
 * as merge_task_vector does), or x_k[i] = a[k][i] when b is NULL. The loops run over blocks of
 * KERN_BLOCK elements with the task loop inside, so each element's result is the same floats in
 * the same order as K separate per-task passes (bit for bit), while θ_k is read once, θ0 once per
 * block from L1, and nothing is written but the output. */
#define KERN_BLOCK 2048
#define KERN_MAX_K 64 /* tasks (= MERGE_MAX_TASKS) */
/* acc[i] += x_0[i] + x_1[i] + ... + x_{K-1}[i], left to right. */
void kern_add_task_vectors(float *acc, const float *const *a, const float *b, int K, size_t n);
/* out[i] = 0 + x_0[i] + ... + x_{K-1}[i] (the floats of zeroing out, then kern_add_task_vectors),
 * each block zeroed in L1 instead of in a pass of its own. */
void kern_sum_task_vectors(float *out, const float *const *a, const float *b, int K, size_t n);
void kern_add_task_vectors_seq(float *acc, const float *const *a, const float *b, int K, size_t n);

/* ---- TIES (ties_kernels.c) ---- */
/* The 0-based ascending rank of |τ| at which the official code thresholds to keep the top k%
 * of d values: k' = int(d·k/100), kthvalue(|τ|, d − k'). Returns false when d − k' = 0
 * (k = 100: keep everything, threshold 0). */
bool ties_threshold_rank(uint64_t d, double topk, uint64_t *rank);
/* The trim threshold of one task vector held in one array (select_kth on |tv|; 0 if keep all). */
float ties_threshold_array(const float *tv, size_t n, double topk);
/* acc += trim(tv) = tv·1{|tv| ≥ thr}; returns how many non-zero entries were kept. */
size_t ties_trim_add(float *acc, const float *tv, size_t n, float thr);
/* Σ_i sign(sum[i]) (the official "majority" sign of s = 0 entries is the sign of this). */
int64_t ties_sign_balance(const float *sum, size_t n);
/* sign[i] = sign(sum[i]), or majority (±1, or 0) where sum[i] = 0. */
void ties_elect(int8_t *sign, const float *sum, size_t n, int8_t majority);
/* Disjoint merge, one task at a time: where trim(tv) is non-zero and has the elected sign,
 * out += tv and cnt += 1. */
void ties_disjoint_add(float *out, uint8_t *cnt, const int8_t *sign, const float *tv, size_t n, float thr);
/* dis-mean: out /= max(1, cnt) (mean); dis-sum: unchanged. */
void ties_disjoint_finish(float *out, const uint8_t *cnt, size_t n, bool mean);
/* K-way TIES passes (see "K-way kernels" above for a, b). Trim + sum: sum[i] = Σ_k trim(x_k)[i]
 * (task order, from 0; the floats of K ties_trim_add calls), kept[k] += entries of x_k kept; returns
 * Σ_i sign(sum[i]) (ties_sign_balance of the result). */
int64_t ties_trim_sum_k(float *sum, const float *const *a, const float *b, int K, size_t n, const float *thr,
                        uint64_t *kept);
/* Elect + disjoint merge: out holds the trimmed sum on entry and the merge on return — the floats of
 * ties_elect, then K ties_disjoint_add and ties_disjoint_finish, without the sign and count arrays. */
void ties_disjoint_k(float *out, const float *const *a, const float *b, int K, size_t n, const float *thr,
                     int8_t majority, bool mean);
/* Trim + sum + elect + disjoint merge in one pass, before the majority is known: out = the merge
 * ties_trim_sum_k + ties_disjoint_k give for any majority <= 0; returns the sign balance and adds
 * kept as ties_trim_sum_k. The entries whose result depends on the majority (trimmed sum exactly 0
 * with kept values, i.e. exact cancellations) are appended as base + i to und[0..cap) in any order,
 * *n_und counting all of them (> cap: some were not stored). */
int64_t ties_fused_k(float *out, const float *const *a, const float *b, int K, size_t n, const float *thr, bool mean,
                     uint64_t *kept, uint64_t base, uint64_t *und, size_t cap, size_t *n_und);
/* The same fused pass on the calling thread over raw BF16 rows: x_k = w_k (h_k − b) with h_k's
 * values as floats and b = θ0 in float (w NULL: x_k = h_k − b), the floats of forming those task
 * vectors as float rows and ties_fused_k on them (b = NULL); the sign balance is added to *balance,
 * the kept counts to kept unless it is NULL (not counting is faster). Returns false when a value of some h_k is not finite (out then holds garbage). */
bool ties_fused_bf16_seq(float *out, const uint16_t *const *h, const float *b, const float *w, int K, size_t n,
                         const float *thr, bool mean, uint64_t *kept, uint64_t base, uint64_t *und, size_t cap,
                         size_t *n_und, int64_t *balance);
/* Append entry i to ties_fused_k's list of entries awaiting the majority (for a caller's own fused
 * kernel): from any thread, in any order; *n_und counts on past cap. */
void ties_list_undecided(uint64_t *und, size_t cap, size_t *n_und, uint64_t i);
/* Tests only: the number of listed entries the suite's TIES merge keeps (am_config.undecided_cap;
 * SIZE_MAX = the default); past it the merge pass runs again with the majority known. */
void ties_set_undecided_cap(size_t cap);
/* The whole TIES merge of K task vectors tv[k][0..n) with thresholds thr[k] (trim, elect with
 * the majority rule over these n values, disjoint mean or sum) into out[n]. Returns -1 if
 * scratch memory runs out. */
int ties_merge_arrays(const float *const *tv, int K, size_t n, const float *thr, bool mean, float *out);

/* ---- TALL masks / Consensus (consensus_kernels.c) ---- */
/* count[i] += m[i] = 1{|tv[i]| > lam·|mtl[i] − tv[i]|}; returns Σ m. With count zeroed this
 * writes the TALL mask of one task. */
size_t tall_mask_add(uint8_t *count, const float *tv, const float *mtl, size_t n, float lam);
size_t tall_mask_add_seq(uint8_t *count, const float *tv, const float *mtl, size_t n, float lam);
/* out = pre + m ⊙ mtl (the TALL-compressed model of one task); returns Σ m. */
size_t tall_apply(float *out, const float *pre, const float *tv, const float *mtl, size_t n, float lam);
/* mtl[i] = 0 where count[i] < k (consensus mask); returns the entries kept. */
size_t consensus_apply(float *mtl, const uint8_t *count, size_t n, int k);
size_t consensus_apply_seq(float *mtl, const uint8_t *count, size_t n, int k);

/* ---- DARE (dare_kernels.c) ---- */
/* Drop-and-rescale in place: tv[i] kept with probability density (hash of seed, task, the
 * tensor's name key kern_name_key, i) and divided by density; density 0 zeroes tv. Returns the
 * entries kept. */
size_t dare_apply(float *tv, size_t n, double density, uint64_t seed, int task, uint64_t tensor_key);
/* The same for elements [first, first + n) of the tensor (tv holds those n): a tensor in slices. */
size_t dare_apply_at(float *tv, size_t n, double density, uint64_t seed, int task, uint64_t tensor_key, size_t first);
size_t dare_apply_at_seq(float *tv, size_t n, double density, uint64_t seed, int task, uint64_t tensor_key,
                         size_t first);
/* acc[j] += the DARE'd τ of element first + j, formed from raw BF16 values h against θ0 = b:
 * τ = h − b (w (h − b) when w ≠ 1), kept by dare_apply_at_seq's decision for `task` and divided by
 * density, +0 where dropped — the floats of forming τ as a row, dare_apply_at_seq on it and adding
 * the row to acc, in one pass. False when a value of h is not finite (acc then holds garbage). */
bool dare_add_bf16_seq(float *acc, const uint16_t *h, const float *b, float w, size_t n, double density, uint64_t seed,
                       int task, uint64_t tensor_key, size_t first);

/* ---- PCB (pcb_kernels.c) ---- */
/* A task's bounds: the clamp of |τ| and, of the balancing score, the 95% order statistic and the max. */
typedef struct pcb_row {
    float lo, hi;
    float blo, bhi;
} pcb_row;
/* sum_n[i] += Ñ(x[i]) = sign(x) · minmax(clamp(|x|)) (add the tasks in task order to 0: Σ_j Ñ_j). */
void pcb_sum_n_add(float *sum_n, const float *x, const pcb_row *r, size_t n);
/* b[i] = the balancing score intra ⊙ inter of task row x (lo, hi of r) given Σ_j Ñ_j; returns the
 * largest b[i] (-inf for n = 0). b may be x. */
float pcb_balance(float *b, const float *x, const float *sum_n, const pcb_row *r, int K, size_t n);
/* num[i] += λ X̂[i] S[i] (double), den[i] += S[i] for task row x (all four bounds of r). */
void pcb_accumulate(double *num, double *den, const float *x, const float *sum_n, const pcb_row *r, int K, float lam,
                    size_t n);
/* out[i] = num[i] / max(den[i], 1e-12): τ_m. */
void pcb_finish(float *out, const double *num, const double *den, size_t n);
/* The ranks of the clamp bounds and of the score threshold over d entries per task (Python's int()
 * of the official expressions); false when the ratios leave no values between the bounds. */
bool pcb_ranks(uint64_t d, double clamp_ratio, double keep_ratio, uint64_t *r_lo, uint64_t *r_hi, uint64_t *r_b);

/* ---- TATR (tatr_kernels.c) ---- */
/* omega += g ⊙ (abs_sum − |tv|), where abs_sum = Σ_j |τ_j| and tv = τ_i: the j ≠ i terms of
 * Ω = Σ_i Σ_{j≠i} g_i ⊙ |τ_j|. g = NULL is the zero-shot proxy g = |tv|. */
void tatr_omega_add(float *omega, const float *g, const float *abs_sum, const float *tv, size_t n);
/* The 0-based rank of the threshold sorted(Ω)[int((100 − q)/100 · d)]; false when that is ≥ d
 * (q = 0: nothing masked). */
bool tatr_threshold_rank(uint64_t d, double q, uint64_t *rank);
/* x[i] = 0 where omega[i] ≥ thr (outside the trust region); returns the entries kept. */
size_t tatr_mask(float *x, const float *omega, size_t n, float thr);

/* ---- LATA (lata_kernels.c) ---- */
/* Layer weights of one task from its scores s_l = 1 − |cos(τ^l, v^l)|: the ceil(L·topk/100)
 * highest-scoring layers (ties: lower index first) get 1, the others gamma, then w /= mean(w).
 * Returns the number of amplified layers. */
int lata_weights(const double *score, int L, double topk, double gamma, float *w);

/* ---- AWD (awd_kernels.c) ----
 * δ = Σ_m b_m τ_m lives in span{τ_k}, so the whole optimisation runs on K coefficients per group
 * given the group's Gram matrix G (K×K, G_ij = <τ_i, τ_j>): a group is the whole model
 * (cosine=global) or one tensor (cosine=layer). G: [groups][K*K], b: [groups][K]. */
/* Doubles of scratch awd_gram_add needs for K task vectors. */
size_t awd_gram_scratch(int K);
/* G[i*K+j] += <tv_i, tv_j> over n values, accumulated in double over a fixed blocking (thread-count
 * independent); G stays symmetric. */
void awd_gram_add(double *G, const float *const *tv, int K, size_t n, double *scratch);
/* Its parts for a caller that streams (KERN_STAT_CHUNKS above): acc (one chunk's K(K+1)/2 pair sums,
 * i <= j in row order) += the pair sums of one block of n <= KERN_STAT_BLOCK values; then G += the
 * chunks' sums of scratch in chunk order, made symmetric. */
void awd_gram_block(double *acc, const float *const *tv, int K, size_t n);
void awd_gram_finish(double *G, const double *scratch, int K);
/* L = L_O + alpha·‖δ‖ at coefficients b, with
 *   L_O = mean over active groups of 1/(K(K−1)) Σ_{i≠j} |cos(τ_i − δ, τ_j − δ)|
 * (a group is active when at least two task vectors are non-zero in it; a pair counts 0 when
 * τ_i or τ_j is zero in the group, or τ̂_i or τ̂_j is). Returns L; *l_o = L_O and *norm = ‖δ‖
 * (either may be NULL). coef [groups*K] (may be NULL) gets ∇_δ L in coefficient form:
 * ∇_δ L = Σ_m coef_m τ_m per group; the L_R term uses the subgradient 0 at δ = 0.
 * with_norm = false leaves the α‖δ‖ term out of L and coef. */
double awd_objective(const double *G, int groups, int K, const double *b, double alpha, bool with_norm, double *l_o,
                     double *norm, double *coef);
typedef struct awd_opts {
    double alpha, beta; /* α (norm weight), β (step size) */
    int iters;
    bool prox;          /* proximal step for α‖δ‖ (shrink) instead of a plain (sub)gradient step */
} awd_opts;
/* iters steps from b (in: the initial coefficients, out: the final ones):
 *   gd:   b ← b − β coef(b)                                      (Algorithm 1: δ ← δ − β∇_δ L)
 *   prox: b' = b − β coef_O(b);  b ← max(0, 1 − βα/‖δ(b')‖) b'   (exact prox of βα‖·‖)
 * l_o_trace [iters+1] (may be NULL) gets L_O before every step and at the end. Returns 0; −1
 * when out of memory; t + 1 when L became non-finite at step t (b is then not usable). */
int awd_descend(const double *G, int groups, int K, const awd_opts *o, double *b, double *l_o_trace);
/* ---- Grafting / Localize-and-Stitch (graft.c) ----
 * Scores S parametrise the mask as γ = b + (1 − 2b) σ(S − s_bias), b ∈ {0,1} the basepatch:
 * σ is the probability of flipping b. */
/* theta = pre + γ ⊙ tv, with γ rounded to {0,1} when `rounded` (graft_round's rule). */
void graft_apply(float *theta, const float *pre, const float *tv, const float *S, const uint8_t *b, size_t n,
                 float sbias, bool rounded);
/* In place: g ← ∂L/∂S = (1 − 2b) ⊙ (g ⊙ tv) ⊙ σ'(S − s_bias), given g = ∂L/∂θ at θ = pre + γ ⊙ tv. */
void graft_score_grad(float *g, const float *tv, const float *S, const uint8_t *b, size_t n, float sbias);
/* One plain gradient step: S ← S − lr·gS − l1·(1 − 2b)σ'(S − s_bias) (the second term is
 * ∂(l1·Σγ)/∂S: a true L1 penalty on γ, not scaled by lr). */
void graft_step(float *S, const float *gS, const uint8_t *b, size_t n, float sbias, float lr, float l1);
/* m = round(γ) ∈ {0,1}: 1 iff γ > 1/2 exactly, i.e. (b = 0 and S > s_bias) or (b = 1 and
 * S < s_bias); γ = 1/2 rounds to 0 (torch.round, half to even). Returns Σ m. */
size_t graft_round(uint8_t *m, const float *S, const uint8_t *b, size_t n, float sbias);
/* Entries with |tv| > thr. */
size_t graft_count_above(const float *tv, size_t n, float thr);
/* m[i] = 1{|tv| > thr}, plus the first *ties_left entries with |tv| = thr (decremented), in
 * index order: with thr the k-th largest |τ| and *ties_left = k − (entries above thr), chunks
 * fed in layout order mark exactly the top k. Returns the entries marked. Sequential. */
size_t graft_topk_mark(uint8_t *m, const float *tv, size_t n, float thr, uint64_t *ties_left);
/* count += m (how many tasks' masks hold each weight; at most 255 tasks). */
void graft_count_add(uint8_t *count, const uint8_t *m, size_t n);
/* Entries of m that some other task's mask holds too: Σ 1{m = 1 and count ≥ 2}. */
size_t graft_overlap(const uint8_t *m, const uint8_t *count, size_t n);
/* Stitch one task: out += m ⊙ tv / count (overlapping masks are averaged; count ≥ 1 where m = 1). */
void graft_stitch_add(float *out, const float *tv, const uint8_t *m, const uint8_t *count, size_t n);

#endif
