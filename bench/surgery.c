/* surgery.c — the `surgery` method: Representation Surgery (tint/surgery.h) on top of any registered
 * merge. It runs the base method (`base=`, with its own parameters from `base_set=`) in the same
 * context, then trains one feature map per task on that merge's features and stores the maps beside
 * whatever the base stored. It finds its base through the registry the caller put in the context
 * (ctx->find_method), so any registered merge can be the base.
 * Official base: Task Arithmetic with λ = 0.3 (merging_cofficient.py's prior), hence base_set=auto.
 */
#include "bench/surgery.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "baselines/merge_util.h"
#include "tint/surgery.h"

static const merge_param surgery_params[] = {
    {"base", "ta", "the merge the maps are trained on: any method of `ttmerge merge --list` but surgery"},
    {"base_set", "auto", "the base's parameters, k=v;k=v (auto: lambda=0.3 for base=ta as the official code, "
                         "the base's own defaults otherwise)"},
    {"rank", "16", "rank r of each task's map z - up relu(down z)"},
    {"lr", "1e-3", "Adam learning rate"},
    {"steps", "1000", "Adam steps per task (official: 500 iterations x 2 batches)"},
    {"batch", "16", "test images per step"},
    {0}};

/* The base's "k=v" strings from base_set (split at ';', written into buf). */
static int split_sets(const char *base, const char *spec, char *buf, size_t cap, const char **sets, int *n) {
    *n = 0;
    if (!strcmp(spec, "auto")) spec = !strcmp(base, "ta") ? "lambda=0.3" : "";
    snprintf(buf, cap, "%s", spec);
    for (char *tok = strtok(buf, ";"); tok && *n < MERGE_MAX_PARAMS; tok = strtok(NULL, ";"))
        if (*tok) sets[(*n)++] = tok;
    return 0;
}

static int surgery_run(merge_ctx *ctx, tt_err *err) {
    const char *base_name = merge_param_str(ctx, "base");
    const merge_method *base = ctx->find_method ? ctx->find_method(base_name) : NULL;
    if (!base || !strcmp(base_name, "surgery"))
        return tt_fail(err, TT_EINPUT, "base=%s: expected a merge method other than surgery (ttmerge merge --list)",
                       base_name);
    surgery_opts o;
    double lr;
    if (mu_param_int_range(ctx, "rank", 1, 1024, &o.rank, err) || mu_param_int_range(ctx, "steps", 0, 10000000, &o.steps, err) ||
        mu_param_int_range(ctx, "batch", 1, 4096, &o.batch, err) || mu_param_range(ctx, "lr", 1e-12, 10, &lr, err))
        return -1;
    o.lr = (float)lr;
    char buf[80];
    const char *sets[MERGE_MAX_PARAMS];
    int n_sets;
    split_sets(base_name, merge_param_str(ctx, "base_set"), buf, sizeof buf, sets, &n_sets);
    merge_params own = ctx->params, theirs;
    if (merge_params_resolve(&theirs, base, sets, n_sets, err)) return -1;
    ctx->params = theirs; /* the base reads its parameters from the context */
    char *base_params = merge_params_json(ctx);
    int rc = base->run(ctx, err);
    ctx->params = own;
    json_t *rec = json_object();
    json_t *base_rec = ctx->record_json ? json_loads(ctx->record_json, 0, NULL) : NULL;
    json_object_set_new(rec, "base", json_string(base_name));
    json_object_set_new(rec, "base_params", base_params ? json_loads(base_params, 0, NULL) : json_null());
    json_object_set_new(rec, "base_record", base_rec ? base_rec : json_object());
    free(base_params);
    surgery_info info = {0};
    if (rc || surgery_fit(ctx, &o, &info, err)) {
        json_decref(rec);
        return -1;
    }
    json_object_set_new(rec, "loss_first", mu_json_per_task(ctx, info.first_loss));
    json_object_set_new(rec, "loss_last", mu_json_per_task(ctx, info.last_loss));
    return mu_record_finish(ctx, rec, NULL, err);
}

const merge_method method_surgery = {
    .name = "surgery",
    .summary = "Representation Surgery: a base merge + per-task feature maps z - up relu(down z) matching each expert's "
               "features (L1) on unlabeled test inputs",
    .needs = MERGE_NEEDS_UNLABELED | MERGE_NEEDS_EXPERTS,
    .params = surgery_params,
    .run = surgery_run,
};
