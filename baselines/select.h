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
 */
#ifndef TT_SELECT_H
#define TT_SELECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define SELECT_BINS 65536
#define SELECT_MAX_PARTS 8 /* per-thread partial histograms fed in parallel */

typedef struct select_ctx {
    bool absval;       /* order |x| (true) or x */
    int pass;          /* 0, 1, then 2 = done */
    uint64_t rank;     /* wanted rank (0-based, ascending); within the chosen bin during pass 1 */
    uint64_t fed;      /* values fed during pass 0 */
    uint32_t hi, key;  /* chosen high 16 bits; the final key */
    int parts;
    uint64_t *hist;    /* [parts][SELECT_BINS], owned */
} select_ctx;

int select_init(select_ctx *s, uint64_t rank, bool absval, tt_err *err);
void select_free(select_ctx *s);
/* Count x[0..n) into the current pass (OpenMP-parallel for large n). */
void select_feed(select_ctx *s, const float *x, size_t n);
/* Count the values x[i] − sub[i] (computed in float, as a task vector θ_k − θ0 is), without
 * materialising them; sub = NULL is select_feed. */
void select_feed_diff(select_ctx *s, const float *x, const float *sub, size_t n);
/* The same for ns selections at once (all in the same pass): s[j] counts x[j][i] − sub[i]. One
 * parallel region walks the n values in blocks and feeds every selection a block at a time, so
 * sub is read once from memory and stays in cache while the ns streams x[j] go by. */
void select_feed_diff_multi(select_ctx *s, int ns, const float *const *x, const float *sub, size_t n);
/* End the current pass; true = feed the same values once more. Asserts rank < values fed. */
bool select_next_pass(select_ctx *s);
/* The rank-th smallest value (|value| when absval) once select_next_pass returned false. */
float select_value(const select_ctx *s);

/* One-shot on an array (n > rank). Returns NAN if memory runs out. */
float select_kth(const float *x, size_t n, uint64_t rank, bool absval);

#endif
