/* anymerge.h — the data-free merges on any safetensors checkpoints, streamed in bounded memory.
 *
 * A base θ0 and K fine-tuned models θ_k (each a file or a sharded directory: core/tensorset.h)
 * with the same tensor names and shapes, any architecture; F32/F16/BF16/F64 are read as f32 a
 * slice at a time, every method's arithmetic runs in f32 on the kernels the suite's merges use
 * (baselines/kernels.h), and the result streams into a tensor sink (core/tensorsink.h) in the
 * base's dtype per tensor (or out_dtype), rounded to nearest even. Inputs are read with pread (one
 * descriptor per shard), a chunk of every input at a time per thread, and each chunk is checked,
 * merged and converted a cache-sized block at a time and written before the next: memory is K + 3
 * rows of a slice of floats, per thread a chunk of each input's bytes, plus, for the TIES methods,
 * the thresholds' workspace while they are found (select_work), and no page of a merged tensor
 * stays faulted into the process (the TIES thresholds' sample reads through the files' mappings,
 * a slice at a time, and unmaps each slice's pages after it).
 *
 * τ_k = w_k (θ_k − θ0), w_k the model's weight (1 unless given; it may depend on the tensor name:
 * the first rule whose pattern is a substring of the name). Methods (the suite's definitions,
 * docs/methods.md; here with fixed hyper-parameters instead of validation searches):
 *   ta              θ0 + λ Σ_k τ_k
 *   ties            θ0 + λ TIES(τ_1..τ_K): trim to each task's top-k% magnitudes over the WHOLE model
 *                   (exact global threshold: a streaming radix select, two passes), elect signs by
 *                   the trimmed sum (the global majority sign where it is 0), disjoint mean or sum
 *   dare            drop each τ_k entry with probability 1 − ρ_k and rescale by 1/ρ_k (a counter-based
 *                   hash of seed, model, tensor index, element), then ta or ties
 *   consensus-ta    TALL masks m_k = 1{|τ_k| > λ_t |τ_MTL − τ_k|} of τ_MTL = Σ τ_k, keep entries in
 *                   >= k masks: θ0 + λ (m ⊙ τ_MTL)
 *   consensus-ties  the same with τ_MTL = TIES (dis-sum)
 *   average         Σ_k w_k θ_k / Σ_k w_k (MergeKit's `linear`)
 *   awd             θ0 + λ Σ_k (1 − K b_k) τ_k: AWD's shared δ = Σ b_k τ_k fitted on the Gram
 *                   matrix of the τ_k (whole model, or per tensor) as the suite's awd
 *   lata            θ0 + λ Σ_k Σ_l w_k^l τ_k^l, w_k^l from |cos(τ_k^l, mean τ^l)| per tensor l as
 *                   the suite's lata (its classifier analogue: the mean task vector as direction)
 *   tatr            zero-shot TATR: Ω = Σ_k |τ_k| (Σ_j |τ_j| − |τ_k|) per entry, the top q% of Ω over
 *                   the WHOLE model masked (exact: the radix select's passes), θ0 + λ Σ_k m ⊙ τ_k
 *   cart            θ_avg + λ Σ_k c̃_k, θ_avg = θ0 + Σ τ_k / K, c_k = θ_k − θ_avg rank-reduced (top
 *                   rank_ratio of its singular values) on the 2-D tensors whose name holds "attn" or
 *                   "mlp" and neither "ln" nor "bias" (the official rule), c_k itself on the others
 *   pcb             PCB-Merging as the suite's pcb over the WHOLE model: |τ_k| clamped at its clamp
 *                   and 1 − clamp order statistics, the balancing score's top `keep` per model kept,
 *                   θ0 + Σ_k λ w_k X̂_k S_k / Σ_k S_k (λ 1.2; four order statistics per model, exact,
 *                   found as the TIES thresholds are: for |τ_k|, then for the scores)
 *   tsv-m, iso-c, iso-cts
 *                   θ0 + λ (= α) · the suite's per-matrix SVD merge (baselines/methods.h tsvm_layer,
 *                   isoc_layer, isocts_layer) on every 2-D tensor whose name has no "text_projection"
 *                   (the official rule), and on every other tensor the official mean of the τ_k
 *                   (running mean; Σ/K for iso-c). One 2-D tensor per thread at a time: its K task
 *                   vectors as floats (read by pread) and the SVD's float64 workspace are in memory.
 * Passes over the inputs: one (ta, dare+ta, consensus-ta, average) or, for the TIES methods, a
 * sample of 1/64 of the entries (through the files' mappings) and one full pass for the thresholds
 * (select.h's bracketed mode; two radix passes more where a model's bracket missed, and the radix
 * passes alone when the workspace, 34 MB per model of 0.5 G entries, 45 MB per model of 1 G, most
 * of it room for copies that stays untouched, exceeds select_work: BF16 models of ~24 GB at K = 8),
 * then the merge pass; entries whose elected sign needs the global majority, exact cancellations,
 * are rewritten after it. tatr: the radix select's counting passes of Ω (two, more only for many
 * equal values), then the merge pass; pcb: as the TIES thresholds, a sample and a counting pass for
 * the clamp bounds of |τ_k|, then for the balancing scores' threshold, then the merge pass; awd and lata: a pass streaming each tensor for their statistics (the
 * kernels' fixed chunks, one per thread), then the merge pass. The SVD merges stream their other tensors in one pass, then read
 * each 2-D tensor's models once (cart: all of them once per model, for the average; the base once
 * per model and once more for the output).
 * Tensors that are not floating point (e.g. I64 position ids) are copied from the base; an inf or
 * NaN in a merged tensor is an error naming the file, the tensor and the element.
 * Errors are one line naming the tensor and both files ("tensor X has shape [..] in B but [..] in M").
 *
 * The same engine merges tensors held in memory (am_merge_tau): the suite's merges (TA's sum and
 * TIES, and every method that feeds them modified task vectors: DARE, TATR, Consensus, CART, LATA)
 * are this case, with the λ left to the caller's validation search.
 */
#ifndef TT_ANYMERGE_H
#define TT_ANYMERGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "baselines/kernels.h"
#include "core/err.h"

#define AM_MAX_MODELS 64
#define AM_MAX_RULES 16

typedef enum am_method {
    AM_TA,
    AM_TIES,
    AM_DARE,
    AM_CONSENSUS_TA,
    AM_CONSENSUS_TIES,
    AM_AVERAGE,
    AM_TSV_M,
    AM_ISO_C,
    AM_ISO_CTS,
    AM_AWD,
    AM_LATA,
    AM_TATR,
    AM_CART,
    AM_PCB
} am_method;
/* "ta", "ties", ... -> method; -1 when unknown. */
int am_method_parse(const char *name, am_method *out);
const char *am_method_name(am_method m);
/* How many methods there are: every am_method is below it. */
int am_method_count(void);

typedef struct am_rule {
    char pattern[128]; /* a substring of the tensor name */
    double value;
} am_rule;

typedef struct am_model {
    char path[1024];
    double weight;              /* w_k (default 1) */
    double density;             /* fraction kept: ties top-k/100, dare ρ; < 0 = the method's */
    am_rule weight_rule[AM_MAX_RULES];
    int n_weight_rule;
} am_model;

typedef struct am_config {
    char base[1024];
    am_model model[AM_MAX_MODELS];
    int K;
    am_method method;
    double lambda;      /* < 0 = the method's default (am_default_lambda) */
    double topk;        /* ties, consensus-ties, dare+ties: percent kept per model (20) */
    double density;     /* dare: fraction kept (0.5) */
    bool dare_ties;     /* dare: base = ties (else ta) */
    bool mean;          /* ties: disjoint mean (else sum); consensus-ties always sums */
    int k;              /* consensus: keep entries in at least k masks (2) */
    double tall_lambda; /* consensus: TALL mask λ_t (0.6, FusionBench's) */
    double common_space_fraction; /* iso-cts: share of each matrix's rank for the common subspace (0.8) */
    awd_opts awd;       /* awd: α (norm weight, 0.1), β (step, 0.01), iterations (300), proximal steps (no) */
    bool awd_init_mean; /* awd: δ starts at the mean task vector (else 0) */
    bool awd_layer;     /* awd: cosines per tensor (else over the whole model) */
    double lata_topk;   /* lata: percent of tensors amplified per model (50) */
    double lata_gamma;  /* lata: weight of the others before normalising (0.5) */
    double tatr_q;      /* tatr: percent of the entries masked, the most conflicting (1) */
    double cart_rank_ratio; /* cart: rank kept of each attn/mlp matrix's centred task vectors (0.12) */
    double pcb_clamp;   /* pcb: fraction of |τ_k| clamped at each end (0.01) */
    double pcb_keep;    /* pcb: fraction of each model's balancing scores kept (0.05) */
    uint64_t seed;      /* dare */
    int out_dtype;      /* st_dtype of merged tensors, or -1 = each tensor's base dtype */
    size_t shard_size;  /* bytes of tensor data per output shard (0 = one file) */
    size_t slice;       /* elements per slice (0 = 1 Mi, or two chunks per thread if more) */
    size_t max_memory;  /* SVD merges: bytes the matrices merged at once may take, by estimate (0 = 3/4
                         * of the memory available at the start); one matrix runs alone if it needs more */
    bool copy_files;    /* copy the base directory's non-tensor files */
    size_t undecided_cap; /* TIES: entries awaiting the majority sign kept for the fix-up (1 Mi);
                           * past it the merge pass is redone (tests set it small, or 0) */
    size_t select_work;   /* TIES: bytes the bracketed thresholds may use for all models (0 = 1 GiB);
                           * a smaller budget than they need takes the radix passes (tests set 1) */
    void (*after_open)(void *arg); /* tests: called once every input is open, before any is read */
    void *after_open_arg;
    bool progress;
} am_config;

/* Defaults for everything but paths and method. */
void am_config_init(am_config *c);
/* λ the method uses when c->lambda < 0: 0.3 (ta, dare, consensus, ties+sum), 1.0 (ties+mean, tsv-m:
 * FusionBench's α), 1.5 (iso-c, iso-cts: FusionBench's documented α), 2.0 (cart: the official prior),
 * 1.2 (pcb: the official vision script's). */
double am_default_lambda(const am_config *c);
/* Apply "key=value" (lambda — alpha is its synonym except for awd, whose alpha is the norm weight
 * —, topk (lata's own for lata), density, base, merge, k, tall_lambda, common_space_fraction,
 * beta, iters, init, cosine, update, gamma, q, rank_ratio, clamp, keep): the --set of the CLI; c->method must be set
 * first. */
int am_config_set(am_config *c, const char *kv, tt_err *err);
typedef struct am_stats {
    uint64_t merged, copied; /* tensors */
    uint64_t elements;       /* merged elements */
    uint64_t svd_tensors;    /* tsv-m, iso-c, iso-cts: the 2-D tensors merged through SVDs */
    double sync_seconds;     /* of the run, making the output durable (fsync) before publishing it */
    int threshold_passes;    /* TIES: full passes over the inputs for the thresholds (1 bracketed, 2 radix,
                              * 3 when a bracket missed), the sample not counted */
} am_stats;

/* Merge into the new directory OUT (atomic: nothing at OUT on failure). stats may be NULL. */
int am_run(const am_config *c, const char *out, am_stats *stats, tt_err *err);

/* ---- the engine on tensors in memory ----
 * n tensors of F32 values, each asked for when the engine reaches it, in any pass: views(user, i,
 * model, &base) sets model[k] to tensor i of θ_k and *base to θ0's, or *base = NULL when the model
 * rows are task vectors already (a transformed source: DARE's, TATR's). The pointers stay valid
 * until the next call. */
typedef struct am_mem_input {
    int n;
    const char *const *name; /* for errors */
    const size_t *numel;
    const size_t *offset;    /* of tensor i in the output */
    void (*views)(void *user, int i, const float **model, const float **base);
    void *user;
} am_mem_input;

typedef struct am_tau_result {
    uint64_t elements;            /* Σ numel */
    float thr[AM_MAX_MODELS];     /* TIES: model k's trim threshold (0 when every entry is kept) */
    uint64_t kept[AM_MAX_MODELS]; /* TIES: the nonzero entries of τ_k at or past it */
    int threshold_passes;         /* as am_stats */
} am_tau_result;

/* The merged task vector of c->method (AM_TA: Σ_k τ_k, each added in model order; AM_TIES: with
 * c->topk, c->mean), τ_k = w_k (θ_k − θ0) with the models' weights and densities as am_run's,
 * without λ or θ0, into out[offset[i] .. + numel[i]) for every tensor (nothing else of out is
 * written). The passes, the kernels and the thresholds of am_run; c->progress, undecided_cap and
 * select_work apply; the paths are not used. */
int am_merge_tau(const am_config *c, const am_mem_input *in, float *out, am_tau_result *res, tt_err *err);

/* The weight of model k for a tensor name (its rules, else its weight). */
double am_weight(const am_model *m, const char *tensor);

#endif
