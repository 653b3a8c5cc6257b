/* select.h — the exact k-th smallest value of a stream of floats, without sorting or copying.
 *
 * Merges need global order statistics over a whole model (TIES keeps each task vector's top
 * k% magnitudes, TATR drops the top 1% of a conflict score). The values are formed tensor by
 * tensor and never live in one array, so this is a streaming radix select on the float bit
 * patterns: an order-preserving 32-bit key per value (|x|'s bits for magnitudes; the usual
 * sign-flip transform for signed values), then
 *   pass 0: a 65536-bin histogram of the key's high 16 bits over all values -> the bin that
 *           holds the wanted rank;
 *   pass 1: a 65536-bin histogram of the low 16 bits of the values in that bin -> the key.
 * The result is exact (it is one of the values fed), integer counting makes it independent of
 * the thread count, and memory is a few histograms whatever the stream's length.
 *
 *   select_ctx s;
 *   select_init(&s, rank, true, &e);                 // rank-th smallest |x|, 0-based
 *   do { for each chunk: select_feed(&s, x, n); } while (select_next_pass(&s));
 *   float thr = select_value(&s);  select_free(&s);
 * Every pass must feed exactly the same values (in any order, in any chunking). Values must be
 * finite (NaN has no place in an order). Ownership: the context owns its histograms.
 *
 * Bracketed mode (select_init_bracket), for a caller that knows n, the values fed per pass, and
 * has a workspace: one full pass instead of two, with the same exact result.
 *   pass 0 (sample):  reads only a fixed, spread sample — one run of SELECT_SAMPLE_RUN values at a
 *                     hashed offset in every SELECT_SAMPLE_STRIDE values of the stream (1/64 of
 *                     the values, in runs long enough to read with one pread each) — into the
 *                     workspace; two order statistics of the sample give keys lo <= hi that
 *                     bracket the wanted rank with a wide statistical margin, widened by the runs'
 *                     design effect (neighbours in a run are alike: measured on the runs the
 *                     sample keeps; select_ctx.deff) (a large sample is counted in a histogram
 *                     instead, plus the values of ~1024 pilot runs, and lo, hi are the smallest
 *                     and largest key of the bins that hold those two ranks: a bracket at most a
 *                     bin wider at each end);
 *   pass 1 (bracket): counts the keys < lo and <= hi (two vectorised compares a value) and copies
 *                     the few values strictly inside (lo, hi) into the workspace; the rank then
 *                     falls on lo, on hi, or inside, where an exact select of the copies (in
 *                     memory, a few hundred thousand values) finishes.
 * Ties at lo or hi are counted, not copied, so heavy ties (all values equal, many zeros) cost
 * nothing. When the sample misses (the rank lies outside [lo, hi]) or the copies overflow the
 * workspace, the context falls back to the two radix passes above: the caller's do/while loop
 * simply feeds two passes more. The result never depends on the sample, only the speed does. The
 * sample position is the value's index in the stream (counted over the feeds of a pass), so it is
 * deterministic for a fixed chunking.
 */
#ifndef TT_SELECT_H
#define TT_SELECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define SELECT_BINS 65536
#define SELECT_MAX_PARTS 8 /* per-thread partial histograms fed in parallel */

#define SELECT_SAMPLE_STRIDE 16384
#define SELECT_SAMPLE_RUN 256
#define SELECT_SAMPLE_MIN 1024 /* fewer sampled values: straight to the radix passes */
/* A large sample is kept as a histogram of its keys' high 20 bits (4096 keys a bin: 1/2048 of a
 * float's value) with each bin's smallest and largest key, 8 MiB whatever the stream's length,
 * instead of its values (4 bytes a sampled value: 62 MB for a stream of 1 G values). */
#define SELECT_SAMPLE_SHIFT 12
#define SELECT_SAMPLE_BINS ((size_t)1 << (32 - SELECT_SAMPLE_SHIFT))
/* Floats past each part's cand_cap copies: a 16-wide store of copies at any position < cand_cap
 * (so up to cand_cap + 15 copies are kept), and a 16-float sink at cand_cap + 16 for the stores
 * made once the part is full (their copies are counted, not kept). */
#define SELECT_CAND_SPARE 32
#define SELECT_CAND_SINK 16

/* What the current pass does with the values fed. */
enum { SELECT_SAMPLE, SELECT_BRACKET, SELECT_HI, SELECT_LO, SELECT_DONE };

typedef struct select_ctx {
    bool absval;       /* order |x| (true) or x */
    int pass;          /* SELECT_*: radix mode starts at SELECT_HI, bracketed mode at SELECT_SAMPLE */
    uint64_t want;     /* wanted rank (0-based, ascending) */
    uint64_t rank;     /* the rank within what the current pass looks at (the chosen bin in SELECT_LO) */
    uint64_t fed;      /* values fed during the first pass */
    uint32_t hi, key;  /* chosen high 16 bits; the final key */
    int parts;
    bool wide;         /* the AVX-512 kernels (core/cpu.h), fixed at init */
    uint64_t *hist;    /* [parts][SELECT_BINS]: owned, or at the end of a bracketed mode's workspace */
    bool hist_owned;
    /* bracketed mode (not owned: the caller's workspace) */
    uint64_t n;        /* values every pass feeds */
    float *sample;     /* [nsample]: the sampled values, or NULL for a large sample: */
    uint64_t *sbin;    /* [SELECT_SAMPLE_BINS]: its keys by key >> SELECT_SAMPLE_SHIFT, a word per bin
                        * (select.c: sample_bin) */
    size_t nsample;
    float *pilot;      /* a histogram's pilot runs, one in pilot_every (select.c), values as sampled */
    uint64_t pilot_every;
    double deff;       /* the design effect the bracket was widened by (select.c: design_effect) */
    float *cand;       /* [parts][cand_stride]: values strictly inside (blo, bhi), thread p's at p·cand_stride */
    size_t cand_cap;   /* copies a part keeps; its region has SELECT_CAND_SPARE floats more */
    size_t cand_stride;
    uint32_t blo, bhi; /* bracket keys */
    /* per part: keys < blo, keys <= bhi, keys == blo, keys == bhi, keys inside, copies made */
    uint64_t cnt[SELECT_MAX_PARTS][6];
    /* per part, the AVX-512 kernel's 16 lane counters of keys < blo, <= blo, < bhi, <= bhi (a lane
     * sees at most n / 16 values of a pass, so n < 2^36 keeps them exact) */
    uint32_t lane[SELECT_MAX_PARTS][4][16];
} select_ctx;

int select_init(select_ctx *s, uint64_t rank, bool absval, tt_err *err);
/* Bracketed mode: every pass will feed exactly n values; work[0..work_len) is scratch that the
 * context uses until select_free (not owned). A workspace smaller than select_bracket_work(n)
 * (or a small n) leaves the context in the radix mode. */
int select_init_bracket(select_ctx *s, uint64_t rank, bool absval, uint64_t n, float *work, size_t work_len,
                        tt_err *err);
/* Whether the bracketed mode samples the i-th value of the stream (for tests that build inputs
 * the sample misrepresents). */
bool select_in_sample(uint64_t i);
/* Floats of workspace below which select_init_bracket stays radix: the sample (its values, or for
 * a large one its histogram: 2 x SELECT_SAMPLE_BINS) plus room for the copies the margin lets
 * through (about 1% of n for n = 88 M, 0.1% for n = 8 G: the margin grows as the root of n). */
size_t select_bracket_work(uint64_t n);
/* Tests only: samples of more than `nsample` values are kept as the histogram (default: those
 * whose values would take more room than it); SIZE_MAX restores the default. */
void select_set_sample_hist_min(size_t nsample);
void select_free(select_ctx *s);
/* Count x[0..n) into the current pass (OpenMP-parallel for large n). */
void select_feed(select_ctx *s, const float *x, size_t n);
/* Count the values x[i] − sub[i] (computed in float, as a task vector θ_k − θ0 is), without
 * materialising them; sub = NULL is select_feed. */
void select_feed_diff(select_ctx *s, const float *x, const float *sub, size_t n);
/* The same for ns selections at once: s[j] counts x[j][i] − sub[i] (a finished selection,
 * select_done, is skipped: in the bracketed mode some may need the radix passes and others not). One
 * parallel region walks the n values in blocks and feeds every selection a block at a time, so
 * sub is read once from memory and stays in cache while the ns streams x[j] go by. */
void select_feed_diff_multi(select_ctx *s, int ns, const float *const *x, const float *sub, size_t n);
/* The first stream index of stripe `stripe`'s sampled run (SELECT_SAMPLE_RUN values, cut at the
 * stream's end): a caller that can fetch values one by one fills only these for a sample pass. */
uint64_t select_sample_start(uint64_t stripe);
/* A caller's own parallel feed of a counting pass (not the sample pass), for values it forms a
 * cache-sized block at a time: select_count_begin(s, ns, n) once for the n values per selection
 * that follow, then select_count_part(s, ns, p, x, m) from the caller's threads for consecutive
 * blocks, each thread with its own part p < s[0].parts (no two threads at once on one part), the
 * blocks of a part in stream order. x[j] feeds s[j] (finished selections skipped). The counts and
 * the result are those of select_feed_diff_multi; which part saw a value decides only whether a
 * bracket's copies overflow (then the radix passes follow, and the value is the same). */
void select_count_begin(select_ctx *s, int ns, size_t n);
void select_count_part(select_ctx *s, int ns, int part, const float *const *x, size_t m);
/* End the current pass; true = feed the same values once more. Asserts rank < values fed. */
bool select_next_pass(select_ctx *s);
/* select_next_pass returned false: the value is known, feed no more. */
bool select_done(const select_ctx *s);
/* The rank-th smallest value (|value| when absval) once select_next_pass returned false. */
float select_value(const select_ctx *s);

/* One-shot on an array (n > rank). Returns NAN if memory runs out. */
float select_kth(const float *x, size_t n, uint64_t rank, bool absval);

#endif
