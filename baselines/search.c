/* search.c — see search.h. */
#include "baselines/search.h"

#include <stdio.h>
#include <string.h>

#include "core/progress.h"

const double search_grid_default[10] = {0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0};

void search_apply(merge_ctx *ctx, const float *delta, double lam) {
    const float *pre = ctx->pre.params;
    float *out = ctx->out.params, l = (float)lam;
    size_t n = ctx->pre.lay.total;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = pre[i] + l * delta[i];
}

int search_lambda(merge_ctx *ctx, const float *delta, const char *name, const double *grid, int n, double *chosen,
                  char *rec, size_t cap, tt_err *err) {
    if (!merge_param_is_auto(ctx, name)) {
        double lam;
        if (merge_param_double(ctx, name, &lam, err)) return -1;
        search_apply(ctx, delta, lam);
        *chosen = lam;
        snprintf(rec, cap, "\"%s\":%g", name, lam);
        return 0;
    }
    merge_eval ev;
    if (merge_eval_init(&ev, ctx, err)) return -1;
    double best = -1, best_lam = grid[0];
    size_t used = (size_t)snprintf(rec, cap, "\"grid\":[");
    progress pg;
    progress_start(&pg, "lambda search", n, ctx->progress);
    for (int i = 0; i < n; i++) {
        search_apply(ctx, delta, grid[i]);
        double norm;
        merge_eval_tasks(&ev, ctx, false, NULL, &norm);
        if (used < cap) used += (size_t)snprintf(rec + used, cap - used, "%s[%g,%.4f]", i ? "," : "", grid[i], norm);
        if (norm > best) {
            best = norm;
            best_lam = grid[i];
        }
        progress_update(&pg, i + 1, "best %s=%g (%.2f)", name, best_lam, best);
    }
    progress_end(&pg);
    merge_eval_free(&ev);
    search_apply(ctx, delta, best_lam);
    if (used < cap) snprintf(rec + used, cap - used, "],\"%s\":%g,\"val_norm\":%.4f", name, best_lam, best);
    *chosen = best_lam;
    return 0;
}
