/* base_merge.c — see base_merge.h. */
#include "baselines/base_merge.h"

#include <string.h>

#include "baselines/search.h"
#include "baselines/ties.h"

static const char *const base_words[] = {"ta", "ties"};
static const char *const merge_words[] = {"mean", "sum"};

int base_merge_params(const merge_ctx *ctx, base_merge *b, tt_err *err) {
    int base, merge;
    if (mu_param_choice(ctx, "base", base_words, 2, &base, err) || mu_param_range(ctx, "topk", 0, 100, &b->topk, err) ||
        mu_param_choice(ctx, "merge", merge_words, 2, &merge, err))
        return -1;
    b->ties = base == 1;
    b->mean = merge == 0;
    return 0;
}

int base_merge_run(merge_ctx *ctx, const base_merge *b, const mu_tv_source *src, float *delta, tt_err *err) {
    if (b->ties) return ties_merged_delta_src(ctx, src, b->topk, b->mean, delta, NULL, NULL, err);
    memset(delta, 0, ctx->pre.lay.total * sizeof(float));
    return mu_sum_task_vectors(ctx, src, delta, err);
}

int base_merge_search(merge_ctx *ctx, const base_merge *b, const float *delta, double *lam, char *frag, size_t cap,
                   tt_err *err) {
    if (b->ties && b->mean) return search_lambda(ctx, delta, "lambda", mu_grid_ties_mean, 15, lam, frag, cap, err);
    return search_lambda(ctx, delta, "lambda", search_grid_default, 10, lam, frag, cap, err);
}

void base_merge_record(json_t *rec, const base_merge *b) {
    json_object_set_new(rec, "base", json_string(b->ties ? "ties" : "ta"));
    if (!b->ties) return;
    json_object_set_new(rec, "topk", json_real(b->topk));
    json_object_set_new(rec, "merge", json_string(b->mean ? "mean" : "sum"));
}
