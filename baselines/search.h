/* search.h — choosing a scalar coefficient on the validation split, shared by TA, TIES,
 * Consensus, TATR, DARE and friends: θ(λ) = θ0 + λ·Δ, λ from a grid, the winner by average
 * normalised validation accuracy (the criterion of tall_masks and tangent_task_arithmetic).
 */
#ifndef TT_SEARCH_H
#define TT_SEARCH_H

#include "baselines/merge.h"

/* The official grid {0.1, 0.2, ..., 1.0} of tall_masks' eval. */
extern const double search_grid_default[10];

/* Set ctx->out = θ0 + lam · delta (delta has the layout of θ0, total floats). */
void search_apply(merge_ctx *ctx, const float *delta, double lam);

/* Evaluate every λ in grid (n values) on validation, leave ctx->out at the best, write a JSON
 * record fragment "\"lambda\":x,\"val_norm\":y,\"grid\":[...]" into rec (cap bytes) and
 * return the chosen λ. If the parameter `name` is not "auto", uses its value and does not search. */
int search_lambda(merge_ctx *ctx, const float *delta, const char *name, const double *grid, int n, double *chosen,
                  char *rec, size_t cap, tt_err *err);

#endif
