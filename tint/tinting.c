/* tinting.c — Model Tinting (Jung, Lee, Han, Hong, arXiv 2412.19098; AIM-SKKU/ModelTinting,
 * later SyMerge): layer-wise AdaMerging coefficients trained jointly with ONE task-specific
 * layer per task — by default the task's classification head, initialised from its zero-shot
 * head (the official code path), or any one backbone tensor (`layer=`, below).
 * Official choices followed: λ init 0.3 clamped to [0,1]; one Adam (lr 1e-2, betas 0.9/0.999,
 * no weight decay) for λ and the tints; batch 32 test images per task; every "epoch" visits
 * the tasks in a freshly shuffled order with one optimizer step per task (official: 500
 * epochs = 4000 steps for 8 tasks; our default is 100 epochs, see `epochs`); losses
 *   pseudo       CE against the hard labels of the task's fine-tuned expert (crosspseudo)
 *   pseudo-conf  the same, dropping samples where the merged model disagrees with the expert and
 *                is more confident (crosspseudoconf, Tinting++ / SyMerge default)
 *   entropy      the AdaMerging objective (the design card's entropy-minimising learner)
 * An empty kept set contributes no gradient (the official code would take the mean of nothing).
 * Tints of tasks without data in a step are not updated (torch >= 2 zero_grad(set_to_none)).
 *
 * The tinted layer (`layer=`): the paper says any single layer can be tinted; the official code
 * path is the head (`--classifier_train`; its `--trainlayer` is parsed but unused).
 *   layer=head   (default) per task a trainable head, from the zero-shot head; stored as
 *                task.<task>.head.{weight,bias}.
 *   layer=NAME   one backbone tensor: its open_clip name (transformer.resblocks.1.mlp.c_proj.weight,
 *                ln_post.weight, proj, ...) or the shorthand blockN.<name> that drops attn./mlp.;
 *                either may drop a final .weight (block1.c_proj, block0.in_proj_weight, ln_post,
 *                conv1). Task t runs with θ_l^(t) = θ_l + Δ_t: θ_l the merged tensor (its
 *                λ_·,l still learned), Δ_t trainable from 0 in the same Adam, dL/dΔ_t =
 *                dL/dθ_l^(t) from the backward of task t's batch (the per-task steps make this
 *                one forward per task). The heads stay the zero-shot heads in this mode. The
 *                final θ_l^(t) is stored as task.<task>.<open_clip name> beside the merged θ_l;
 *                `ttmerge eval` runs task t with it (ckpt_task_apply). The record names the tensor.
 */
#include "tint/tinting.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "adamerge/adamerge.h"

static const merge_param tint_params[] = {
    {"lambda", "0.3", "initial coefficient (clamped to [0,1] when merging)"},
    {"epochs", "100", "rounds over the tasks (one Adam step per task per round)"},
    {"lr", "1e-2", "Adam learning rate of the coefficients and the tints"},
    {"batch", "32", "test images per task per step"},
    {"micro", "0", "images per forward+backward: less memory, same gradient (0 = batch; must divide it)"},
    {"loss", "pseudo-conf", "pseudo-conf | pseudo | entropy"},
    {"layer", "head", "the tinted layer: head, or one backbone tensor (open_clip name or blockN.<name>, e.g. block1.c_proj)"},
    {"eval_every", "0", "record test accuracy in the curve every N steps (0 = never)"},
    ADAPT_DIVERGE_PARAM,
    {0}};

/* open_clip name -> shorthand: transformer.resblocks.N.[attn.|mlp.]X -> blockN.X */
static void shorthand(char *out, size_t cap, const char *full) {
    int b, at = 0;
    if (sscanf(full, "transformer.resblocks.%d.%n", &b, &at) == 1 && at > 0) {
        const char *rest = full + at;
        if (!strncmp(rest, "attn.", 5) || !strncmp(rest, "mlp.", 4)) rest = strchr(rest, '.') + 1;
        snprintf(out, cap, "block%d.%s", b, rest);
    } else {
        snprintf(out, cap, "%s", full);
    }
}

/* `name` is `full`, or `full` without its final ".weight" */
static bool names(const char *name, size_t n, const char *full) {
    return !strcmp(name, full) || (!strncmp(full, name, n) && !strcmp(full + n, ".weight"));
}

/* The layout tensor `name` means (open_clip name or shorthand, either without .weight), or -1. */
static int find_layer(const vit_layout *lay, const char *name) {
    size_t n = strlen(name);
    for (int l = 0; l < lay->count; l++) {
        char sh[VIT_MAX_NAME + 16];
        shorthand(sh, sizeof sh, lay->t[l].name);
        if (names(name, n, lay->t[l].name) || names(name, n, sh)) return l;
    }
    return -1;
}

/* Layout names [from, to) with `skip` leading characters cut, a weight/bias pair as X{weight,bias}. */
static size_t list_names(char *out, size_t cap, size_t n, const vit_layout *lay, int from, int to, size_t skip) {
    for (int i = from; i < to && n < cap; i++) {
        const char *a = lay->t[i].name + skip, *b = i + 1 < to ? lay->t[i + 1].name + skip : "";
        size_t la = strlen(a), stem = la >= 6 ? la - 6 : 0;
        bool pair = la >= 6 && !strcmp(a + stem, "weight") && strlen(b) == stem + 4 && !strncmp(a, b, stem) &&
                    !strcmp(b + stem, "bias");
        n += (size_t)snprintf(out + n, cap - n, "%s%.*s%s", i > from ? ", " : "", (int)(pair ? stem : la), a,
                              pair ? "{weight,bias}" : "");
        i += pair;
    }
    return n;
}

/* "layer=X: ..." listing every valid name compactly (blocks as transformer.resblocks.{0..L-1}.{...}). */
static int bad_layer(const merge_ctx *ctx, const char *layer, tt_err *err) {
    const vit_layout *lay = &ctx->out.lay;
    const char *blk = "transformer.resblocks.";
    int first = 0, per = 0, L = ctx->s->cfg.layers;
    while (first < lay->count && strncmp(lay->t[first].name, blk, strlen(blk))) first++;
    while (first + per < lay->count && !strncmp(lay->t[first + per].name, "transformer.resblocks.0.", 24)) per++;
    char names[400];
    size_t n = list_names(names, sizeof names, 0, lay, 0, first, 0);
    if (L > 0 && n < sizeof names) {
        n += (size_t)snprintf(names + n, sizeof names - n, ", %s{0..%d}.{", blk, L - 1);
        n = list_names(names, sizeof names, n, lay, first, first + per, 24);
        if (n < sizeof names) n += (size_t)snprintf(names + n, sizeof names - n, "}");
    }
    if (n < sizeof names) n += (size_t)snprintf(names + n, sizeof names - n, ", ");
    if (n < sizeof names) list_names(names, sizeof names, n, lay, first + per * L, lay->count, 0);
    return tt_fail(err, TT_EINPUT,
                   "layer=%s: no such tensor; expected head, one of %s, or the shorthand blockN.<name> without "
                   "attn./mlp. and .weight (e.g. block%d.c_proj)",
                   layer, names, L > 0 ? L - 1 : 0);
}

/* The record of the engine + the tinted layer's name. */
static int record_layer(merge_ctx *ctx, const char *name, tt_err *err) {
    json_t *rec = json_loads(ctx->record_json ? ctx->record_json : "{}", 0, NULL);
    if (!rec) return tt_fail(err, TT_EINTERNAL, "tinting: the record is not JSON");
    json_object_set_new(rec, "tinted", json_string(name));
    char *text = json_dumps(rec, JSON_COMPACT | JSON_REAL_PRECISION(9));
    json_decref(rec);
    int rc = text ? merge_record(ctx, text, err) : tt_fail(err, TT_ENOMEM, "out of memory");
    free(text);
    return rc;
}

int tint_adapt_opts(merge_ctx *ctx, adapt_opts *o, tt_err *err) {
    double lam, lr, diverge;
    long epochs, batch, micro, every;
    if (adapt_diverge_param(ctx, &diverge, err) || merge_param_double(ctx, "lambda", &lam, err) || merge_param_double(ctx, "lr", &lr, err) ||
        merge_param_int(ctx, "epochs", &epochs, err) || merge_param_int(ctx, "batch", &batch, err) ||
        merge_param_int(ctx, "micro", &micro, err) || merge_param_int(ctx, "eval_every", &every, err))
        return -1;
    if (epochs < 0 || epochs > 100000 || batch < 1 || batch > 1024 || micro < 0 || micro > 1024 || !(lr > 0) ||
        every < 0)
        return tt_fail(err, TT_EINPUT,
                       "epochs in [0,1e5], batch in [1,1024], micro in [0,1024], lr > 0, eval_every >= 0");
    const char *loss = merge_param_str(ctx, "loss"), *layer = merge_param_str(ctx, "layer");
    adapt_loss kind;
    if (!strcmp(loss, "pseudo-conf")) kind = ADAPT_PSEUDO_CONF;
    else if (!strcmp(loss, "pseudo")) kind = ADAPT_PSEUDO;
    else if (!strcmp(loss, "entropy")) kind = ADAPT_ENTROPY;
    else return tt_fail(err, TT_EINPUT, "loss=%s: expected pseudo-conf, pseudo or entropy", loss);
    bool head = !strcmp(layer, "head");
    int l = head ? -1 : find_layer(&ctx->out.lay, layer);
    if (!head && l < 0) return bad_layer(ctx, layer, err);
    *o = (adapt_opts){.layerwise = true, .lambda_init = (float)lam, .lr = (float)lr, .steps = (int)(epochs * ctx->K),
                      .batch = (int)batch, .accum = 1, .per_task_steps = true, .train_heads = head,
                      .train_tensor = !head, .tensor = l, .lr_tint = (float)lr, .loss = kind, .eval_every = (int)every,
                      .diverge_factor = (float)diverge, .micro = (int)micro};
    return 0;
}

static int tint_run(merge_ctx *ctx, tt_err *err) {
    adapt_opts o;
    if (tint_adapt_opts(ctx, &o, err)) return -1;
    bool head = o.train_heads;
    int l = o.tensor;
    float *tv = adapt_task_vectors(ctx, err);
    if (!tv) return -1;
    adapt_result r;
    int rc = adamerge_finish(ctx, tv, &o, &r, err);
    free(tv);
    const int D = ctx->s->cfg.output_dim;
    if (!rc) rc = record_layer(ctx, head ? "head" : ctx->out.lay.t[l].name, err);
    for (int k = 0; !rc && k < ctx->K; k++) { /* the context owns the tints from here */
        const char *task = ctx->s->tasks[k].name;
        char name[160];
        float *tint = r.tints[k];
        r.tints[k] = NULL;
        if (!head) {
            const vit_tensor_info *t = &ctx->out.lay.t[l];
            snprintf(name, sizeof name, "task.%s.%s", task, t->name);
            rc = merge_add_extra(ctx, name, t->ndim, t->shape, tint, err);
            continue;
        }
        int C = ctx->s->tasks[k].classes;
        int64_t ws[2] = {C, D}, bs[1] = {C};
        float *b = malloc((size_t)C * sizeof(float));
        if (!b) {
            free(tint);
            rc = tt_fail(err, TT_ENOMEM, "out of memory");
            break;
        }
        memcpy(b, tint + (size_t)C * D, (size_t)C * sizeof(float)); /* W is the first C*D floats of the tint */
        snprintf(name, sizeof name, "task.%s.head.weight", task);
        rc = merge_add_extra(ctx, name, 2, ws, tint, err);
        snprintf(name, sizeof name, "task.%s.head.bias", task);
        if (!rc) rc = merge_add_extra(ctx, name, 1, bs, b, err);
        else free(b);
    }
    adapt_result_free(&r);
    return rc;
}

const merge_method method_tinting = {
    .name = "tinting",
    .summary = "Model Tinting: layer-wise coefficients + one tinted layer (head or a backbone tensor) per task, expert pseudo-labels",
    .needs = MERGE_NEEDS_UNLABELED | MERGE_NEEDS_EXPERTS,
    .params = tint_params,
    .run = tint_run,
};
