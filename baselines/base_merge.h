/* base_merge.h — the base merge that plug-in methods (DARE, TATR) feed their modified task
 * vectors to: Task Arithmetic's sum or TIES (baselines/ties.h), then the λ search that suits it. */
#ifndef TT_BASE_MERGE_H
#define TT_BASE_MERGE_H

#include <jansson.h>

#include "baselines/merge_util.h"

/* Parameters (put BASE_MERGE_PARAMS in the method's table): base = ta | ties, topk, merge. */
#define BASE_MERGE_PARAMS                                                                              \
    {"base", "ta", "merge the modified task vectors with: ta (sum) | ties"},                          \
        {"topk", "20", "base=ties: percent of each task vector kept"},                                \
        {"merge", "mean", "base=ties: disjoint mean (lambda grid 0.1..1.5) | sum (0.1..1.0)"}
typedef struct base_merge {
    bool ties;   /* base=ties (else the TA sum) */
    double topk; /* base=ties */
    bool mean;   /* base=ties: dis-mean (else dis-sum) */
} base_merge;
int base_merge_params(const merge_ctx *ctx, base_merge *b, tt_err *err);
/* delta = Σ_k src τ_k (ta) or TIES of them (delta fully overwritten). */
int base_merge_run(merge_ctx *ctx, const base_merge *b, const mu_tv_source *src, float *delta, tt_err *err);
/* search_lambda on the grid that suits the base ({0.1..1.5} for TIES dis-mean, else {0.1..1.0}). */
int base_merge_search(merge_ctx *ctx, const base_merge *b, const float *delta, double *lam, char *frag, size_t cap,
                   tt_err *err);
/* base (and topk, merge for ties) into the record. */
void base_merge_record(json_t *rec, const base_merge *b);

#endif
