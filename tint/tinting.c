/* tinting.c — Model Tinting (Jung, Lee, Han, Hong, arXiv 2412.19098; AIM-SKKU/ModelTinting,
 * later SyMerge): layer-wise AdaMerging coefficients trained jointly with ONE task-specific
 * layer per task — the task's classification head, initialised from its zero-shot head.
 * Official choices followed: λ init 0.3 clamped to [0,1]; one Adam (lr 1e-2, betas 0.9/0.999,
 * no weight decay) for λ and the heads; batch 32 test images per task; every "epoch" visits
 * the tasks in a freshly shuffled order with one optimizer step per task (official: 500
 * epochs = 4000 steps for 8 tasks; our default is 100 epochs, see `epochs`); losses
 *   pseudo       CE against the hard labels of the task's fine-tuned expert (crosspseudo)
 *   pseudo-conf  the same, dropping samples where the merged model disagrees with the expert and
 *                is more confident (crosspseudoconf, Tinting++ / SyMerge default)
 *   entropy      the AdaMerging objective (the design card's entropy-minimising learner)
 * An empty kept set contributes no gradient (the official code would take the mean of nothing).
 * Heads of tasks without data in a step are not updated (torch >= 2 zero_grad(set_to_none)).
 * The tinted heads are stored as task.<task>.head.{weight,bias}; `ttmerge eval` applies them.
 * Open: tinting a backbone layer instead of the head (`layer=`) is not implemented yet.
 */
#include <stdio.h>
#include <string.h>

#include "adamerge/adamerge.h"
#include "baselines/methods.h"

static const merge_param tint_params[] = {
    {"lambda", "0.3", "initial coefficient (clamped to [0,1] when merging)"},
    {"epochs", "100", "rounds over the tasks (one Adam step per task per round)"},
    {"lr", "1e-2", "Adam learning rate of the coefficients and the tints"},
    {"batch", "32", "test images per task per step"},
    {"loss", "pseudo-conf", "pseudo-conf | pseudo | entropy"},
    {"layer", "head", "the tinted layer (only head is implemented)"},
    {"eval_every", "0", "record test accuracy in the curve every N steps (0 = never)"},
    ADAPT_DIVERGE_PARAM,
    {0}};

static int tint_run(merge_ctx *ctx, tt_err *err) {
    double lam, lr, diverge;
    long epochs, batch, every;
    if (adapt_diverge_param(ctx, &diverge, err) || merge_param_double(ctx, "lambda", &lam, err) || merge_param_double(ctx, "lr", &lr, err) ||
        merge_param_int(ctx, "epochs", &epochs, err) || merge_param_int(ctx, "batch", &batch, err) ||
        merge_param_int(ctx, "eval_every", &every, err))
        return -1;
    if (epochs < 0 || epochs > 100000 || batch < 1 || batch > 1024 || !(lr > 0) || every < 0)
        return tt_fail(err, TT_EINPUT, "epochs in [0,1e5], batch in [1,1024], lr > 0, eval_every >= 0");
    const char *loss = merge_param_str(ctx, "loss"), *layer = merge_param_str(ctx, "layer");
    adapt_loss kind;
    if (!strcmp(loss, "pseudo-conf")) kind = ADAPT_PSEUDO_CONF;
    else if (!strcmp(loss, "pseudo")) kind = ADAPT_PSEUDO;
    else if (!strcmp(loss, "entropy")) kind = ADAPT_ENTROPY;
    else return tt_fail(err, TT_EINPUT, "loss=%s: expected pseudo-conf, pseudo or entropy", loss);
    if (strcmp(layer, "head") != 0)
        return tt_fail(err, TT_EINPUT, "layer=%s: only the head can be tinted in this version", layer);
    adapt_opts o = {.layerwise = true, .lambda_init = (float)lam, .lr = (float)lr, .steps = (int)(epochs * ctx->K),
                    .batch = (int)batch, .accum = 1, .per_task_steps = true, .train_heads = true,
                    .lr_heads = (float)lr, .loss = kind, .eval_every = (int)every, .diverge_factor = (float)diverge};
    float *tv = adapt_task_vectors(ctx, err);
    if (!tv) return -1;
    adapt_result r;
    int rc = adamerge_finish(ctx, tv, &o, &r, err);
    free(tv);
    const int D = ctx->s->cfg.output_dim;
    for (int k = 0; !rc && k < ctx->K; k++) {
        int C = ctx->s->tasks[k].classes;
        char name[160];
        int64_t ws[2] = {C, D}, bs[1] = {C};
        float *w = malloc((size_t)C * D * sizeof(float)), *b = malloc((size_t)C * sizeof(float));
        if (!w || !b) {
            free(w);
            free(b);
            rc = tt_fail(err, TT_ENOMEM, "out of memory");
            break;
        }
        memcpy(w, r.heads[k], (size_t)C * D * sizeof(float));
        memcpy(b, r.heads[k] + (size_t)C * D, (size_t)C * sizeof(float));
        snprintf(name, sizeof name, "task.%s.head.weight", ctx->s->tasks[k].name);
        rc = merge_add_extra(ctx, name, 2, ws, w, err);
        snprintf(name, sizeof name, "task.%s.head.bias", ctx->s->tasks[k].name);
        if (!rc) rc = merge_add_extra(ctx, name, 1, bs, b, err);
        else free(b);
    }
    adapt_result_free(&r);
    return rc;
}

const merge_method method_tinting = {
    .name = "tinting",
    .summary = "Model Tinting: layer-wise coefficients + one tinted head per task, expert pseudo-labels",
    .needs = MERGE_NEEDS_UNLABELED | MERGE_NEEDS_EXPERTS,
    .params = tint_params,
    .run = tint_run,
};
