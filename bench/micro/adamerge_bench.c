/* adamerge_bench.c — seconds per layer-wise AdaMerging step, the quantity bench/pytorch/torch_adamerge.py
 * measures for the same step in PyTorch.
 *
 *   adamerge_bench --make-suite DIR --arch vision8|vitb32|vitb32full|vitb16full [--tasks K] [--seed S]
 *   adamerge_bench --suite DIR [--threads N] [--steps R] [--warmup W] [--batch 16] [--accum 2]
 *                  [--task-wise] [--lanes N] [--csv FILE] [--check-out FILE.json] [--config NAME]
 *                  [--precision f32|bf16] [--learner adamerging|tinting] [--micro M]
 *
 * --make-suite writes a synthetic suite of the given architecture in ttmerge's own formats
 * (suite.json, pretrained.safetensors = the engine's random init, finetuned/<task>.safetensors =
 * θ0 + a seeded perturbation of 10% of each tensor's RMS, heads/<task>.safetensors = random unit
 * prototypes, data/<task>/{val,test}-*.idx = seeded random pixels), so that both peers can read the
 * same checkpoints without building a real suite. Any built suite (e.g. the tiny one) works too.
 *
 * The timed step is adapt_run's (adamerge/adapt.c) with AdaMerging's defaults: merge θ = θ0 +
 * Σ_k clamp(λ_k,l) τ_k,l in place, `accum` forward+backward passes of all K task batches (batch
 * images each) concatenated into one batch, K dot products per tensor, one Adam step on λ. The
 * per-step wall time comes from the adaptation curve (adapt_point.seconds); the first `warmup`
 * steps are dropped, the median and min of the next `steps` are reported.
 *
 * --learner tinting times Model Tinting's step instead, as tint/tinting.c runs it: the engine
 * options come from tint_adapt_opts (tinting's parameters at their defaults; --batch overrides batch=32),
 * only the number of steps and the lanes are the bench's. Its step: merge θ (as above), the next
 * 32 test images of ONE task (the order of the tasks reshuffled every K steps), forward+backward of
 * them through the merged model and that task's trainable head, the pseudo-conf cross-entropy
 * against the task expert's hard labels (the labels and the expert's confidence are computed once
 * for every test image before the first step, as tinting.c does: not timed), K dot products per
 * tensor, one Adam step on λ and on that task's head. The wall time again comes from the curve.
 *
 * --micro M runs either step's images through the network M at a time (adapt_opts.micro: the same
 * gradient, activations of M images); 0, the default, all of a forward's at once.
 *
 * --check-out writes adapt_objective's loss and dL/dλ at seeded raw coefficients in
 * [-0.05, 1.05] (some outside the clamp) on the first `batch` test images of every task, which
 * torch_adamerge.py --check recomputes: the proof that both programs time the same computation.
 * Tinting's objective is the sum of its K per-task steps' losses (each on the first 32 test images
 * of its task), at seeded heads too, with dL/dhead of every task besides dL/dλ.
 */
#include <jansson.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adamerge/adapt.h"
#include "adamerge/adamerge.h"
#include "baselines/methods.h"
#include "bench/micro/bench_util.h"
#include "tint/tinting.h"
#include "core/arena.h"
#include "core/fileio.h"
#include "core/lanes.h"
#include "core/rng.h"
#include "data/idx.h"
#include "data/suite_build.h"

/* ---- synthetic suites ---- */

typedef struct synth_arch {
    const char *name;
    vit_config cfg;
    int classes, test_n, val_n;
} synth_arch;

/* vision8: the shipped suite's architecture (suites/vision8.yaml). vitb32: ViT-B/32's width, heads,
 * tokens and MLP with 2 blocks (as bench/micro/vit_bench.c), CLIP's normalised head. */
static const synth_arch arches[] = {
    {"vision8",
     {.image_size = 28, .channels = 1, .patch_size = 7, .width = 64, .layers = 4, .heads = 4, .mlp_ratio = 4,
      .output_dim = 64, .act = OP_ACT_GELU, .ln_eps = 1e-5f, .normalize_features = true, .logit_scale = 20},
     10, 64, 16},
    {"vitb32",
     {.image_size = 224, .channels = 3, .patch_size = 32, .width = 768, .layers = 2, .heads = 12, .mlp_ratio = 4,
      .output_dim = 512, .act = OP_ACT_GELU, .ln_eps = 1e-5f, .normalize_features = true, .logit_scale = 100},
     10, 32, 16},
    /* CLIP's ViT-B/32 and ViT-B/16 image towers whole (12 blocks, QuickGELU) */
    {"vitb32full",
     {.image_size = 224, .channels = 3, .patch_size = 32, .width = 768, .layers = 12, .heads = 12, .mlp_ratio = 4,
      .output_dim = 512, .act = OP_ACT_QUICK_GELU, .ln_eps = 1e-5f, .normalize_features = true, .logit_scale = 100},
     10, 32, 16},
    {"vitb16full",
     {.image_size = 224, .channels = 3, .patch_size = 16, .width = 768, .layers = 12, .heads = 12, .mlp_ratio = 4,
      .output_dim = 512, .act = OP_ACT_QUICK_GELU, .ln_eps = 1e-5f, .normalize_features = true, .logit_scale = 100},
     10, 32, 16},
};
#define NARCH ((int)(sizeof arches / sizeof arches[0]))

static int write_split(const char *dir, const char *task, const char *split, const vit_config *cfg, int n, int classes,
                       uint64_t seed, tt_err *err) {
    ds_images im;
    if (ds_images_alloc(&im, n, cfg->channels, cfg->image_size, cfg->image_size, true, err)) return -1;
    rng r;
    rng_init(&r, seed);
    size_t bytes = (size_t)n * ds_image_size(&im);
    for (size_t i = 0; i < bytes; i++) im.pixels[i] = (uint8_t)rng_below(&r, 256);
    for (int i = 0; i < n; i++) im.labels[i] = (int32_t)rng_below(&r, (uint32_t)classes);
    char ip[1400], lp[1400];
    snprintf(ip, sizeof ip, "%s/data/%s/%s-images.idx", dir, task, split);
    snprintf(lp, sizeof lp, "%s/data/%s/%s-labels.idx", dir, task, split);
    int rc = idx_write_images(ip, &im, err) || idx_write_labels(lp, im.labels, n, err) ? -1 : 0;
    ds_images_free(&im);
    return rc;
}

static int make_suite(const char *dir, const synth_arch *a, int K, uint64_t seed, tt_err *err) {
    const vit_config *cfg = &a->cfg;
    char path[1400];
    ckpt_vit m;
    if (ckpt_vit_alloc(&m, cfg, err)) return -1;
    int rc = -1;
    float *theta0 = tt_calloc_aligned(m.lay.total, sizeof(float), err);
    json_t *root = json_object(), *tasks = json_array();
    if (!theta0 || suite_mkdirs(dir, err)) goto done;
    snprintf(path, sizeof path, "%s/finetuned", dir);
    if (suite_mkdirs(path, err)) goto done;
    snprintf(path, sizeof path, "%s/heads", dir);
    if (suite_mkdirs(path, err)) goto done;
    vit_init_params(cfg, &m.lay, theta0, seed);
    memcpy(m.params, theta0, m.lay.total * sizeof(float));
    snprintf(path, sizeof path, "%s/pretrained.safetensors", dir);
    if (ckpt_save_vit(&m, path, NULL, 0, NULL, 0, err)) goto done;
    for (int k = 0; k < K; k++) {
        char task[32];
        snprintf(task, sizeof task, "task%d", k);
        /* θ_k = θ0 + 10% of each tensor's RMS (0.01 for all-zero tensors: biases, LN shifts) of noise */
        memcpy(m.params, theta0, m.lay.total * sizeof(float));
        for (int l = 0; l < m.lay.count; l++) {
            const vit_tensor_info *t = &m.lay.t[l];
            double ss = 0;
            for (size_t i = 0; i < t->numel; i++) ss += (double)theta0[t->offset + i] * theta0[t->offset + i];
            float rms = (float)sqrt(ss / (double)t->numel);
            bu_fill_noise(m.params + t->offset, m.params + t->offset, t->numel, rms > 0 ? 0.1f * rms : 0.01f,
                          seed * 7919 + (uint64_t)k * 131 + (uint64_t)l, true);
        }
        snprintf(path, sizeof path, "%s/finetuned/%s.safetensors", dir, task);
        if (ckpt_save_vit(&m, path, NULL, 0, NULL, 0, err)) goto done;
        /* head: unit-norm random prototypes (the shape of the suite builder's zero-shot heads) */
        ckpt_head h = {.classes = a->classes, .dim = cfg->output_dim};
        /* one block, W then b, as ckpt_load_head lays a head out (ckpt_head_free frees W only) */
        h.W = calloc((size_t)a->classes * (cfg->output_dim + 1), sizeof(float));
        h.b = h.W ? h.W + (size_t)a->classes * cfg->output_dim : NULL;
        if (!h.W) {
            ckpt_head_free(&h);
            tt_fail(err, TT_ENOMEM, "out of memory");
            goto done;
        }
        bu_fill_noise(h.W, NULL, (size_t)a->classes * cfg->output_dim, 1.0f, seed * 104729 + (uint64_t)k, true);
        for (int c = 0; c < a->classes; c++) {
            double nn = 0;
            for (int d = 0; d < cfg->output_dim; d++) nn += (double)h.W[c * cfg->output_dim + d] * h.W[c * cfg->output_dim + d];
            for (int d = 0; d < cfg->output_dim; d++) h.W[c * cfg->output_dim + d] /= (float)sqrt(nn);
        }
        snprintf(path, sizeof path, "%s/heads/%s.safetensors", dir, task);
        int hrc = ckpt_save_head(&h, path, err);
        ckpt_head_free(&h);
        if (hrc) goto done;
        snprintf(path, sizeof path, "%s/data/%s", dir, task);
        if (suite_mkdirs(path, err) ||
            write_split(dir, task, "val", cfg, a->val_n, a->classes, seed * 31 + (uint64_t)k * 2, err) ||
            write_split(dir, task, "test", cfg, a->test_n, a->classes, seed * 31 + (uint64_t)k * 2 + 1, err))
            goto done;
        char hp[64], fp[64];
        snprintf(hp, sizeof hp, "heads/%s.safetensors", task);
        snprintf(fp, sizeof fp, "finetuned/%s.safetensors", task);
        json_array_append_new(tasks, json_pack("{s:s,s:i,s:s,s:{s:s}}", "name", task, "classes", a->classes, "head", hp,
                                               "finetuned", "full", fp));
    }
    char *arch_s = vit_config_to_json(cfg);
    json_t *arch = arch_s ? json_loads(arch_s, 0, NULL) : NULL;
    free(arch_s);
    char name[64];
    snprintf(name, sizeof name, "synth-%s", a->name);
    json_object_set_new(root, "format", json_integer(1));
    json_object_set_new(root, "name", json_string(name));
    json_object_set_new(root, "synthetic", json_true());
    json_object_set_new(root, "arch", arch ? arch : json_null());
    json_object_set_new(root, "normalize", json_pack("{s:f,s:f}", "mean", 0.5, "std", 0.5));
    json_object_set_new(root, "finetune_modes", json_pack("[s]", "full"));
    json_object_set_new(root, "pretrained", json_string("pretrained.safetensors"));
    json_object_set_new(root, "tasks", tasks);
    tasks = NULL;
    char *text = json_dumps(root, JSON_INDENT(1));
    snprintf(path, sizeof path, "%s/suite.json", dir);
    rc = text ? fio_write_all(path, text, strlen(text), err) : tt_fail(err, TT_ENOMEM, "out of memory");
    free(text);
done:
    json_decref(tasks);
    json_decref(root);
    free(theta0);
    ckpt_vit_free(&m);
    return rc;
}

/* ---- the timed step and the objective check ---- */

typedef struct run_opts {
    const char *suite_dir, *csv, *check_out, *config;
    dnn_precision precision;
    int threads, steps, warmup, batch, accum, lanes, micro;
    bool layerwise;
    bool tinting;   /* --learner tinting: Model Tinting's step instead of AdaMerging's */
    bool batch_set; /* --batch given (Tinting: overrides its batch=32) */
} run_opts;

static json_t *matrix_json(const float *x, int K, int n) {
    json_t *rows = json_array();
    for (int k = 0; k < K; k++) {
        json_t *row = json_array();
        for (int c = 0; c < n; c++) json_array_append_new(row, json_real(x[(size_t)k * n + c]));
        json_array_append_new(rows, row);
    }
    return rows;
}

/* the names tinting's `loss` parameter takes */
static const char *const loss_names[] = {[ADAPT_ENTROPY] = "entropy", [ADAPT_PSEUDO] = "pseudo",
                                         [ADAPT_PSEUDO_CONF] = "pseudo-conf"};

/* task k's head [C*D + C] as {"weight": [[C x D]], "bias": [C]} */
static json_t *head_json(const float *h, int C, int D) {
    json_t *bias = json_array();
    for (int c = 0; c < C; c++) json_array_append_new(bias, json_real(h[(size_t)C * D + c]));
    return json_pack("{s:o,s:o}", "weight", matrix_json(h, C, D), "bias", bias);
}

/* The objective at seeded raw coefficients in [-0.05, 1.05] (some outside the clamp): loss and
 * dL/dλ; with trained heads (Tinting) also at seeded heads (the zero-shot head + uniform noise of
 * ±0.02, so that a step that used the zero-shot head instead of its tint would not pass) and
 * dL/dhead of every task. */
static int write_check(merge_ctx *ctx, const float *tv, const adapt_opts *o, const char *learner, const char *path,
                       tt_err *err) {
    int K = ctx->K, n_coef = o->layerwise ? ctx->pre.lay.count : 1, D = ctx->s->cfg.output_dim;
    float *lam = malloc((size_t)K * n_coef * sizeof(float)), *grad = calloc((size_t)K * n_coef, sizeof(float));
    float *heads[MERGE_MAX_TASKS] = {0}, *head_grad[MERGE_MAX_TASKS] = {0};
    int rc = -1;
    if (!lam || !grad) {
        tt_fail(err, TT_ENOMEM, "out of memory");
        goto done;
    }
    rng r;
    rng_init(&r, 12345);
    for (int c = 0; c < K * n_coef; c++) lam[c] = (float)(-0.05 + 1.1 * rng_uniform(&r));
    for (int k = 0; k < K && o->train_heads; k++) {
        const suite_task_info *ti = &ctx->s->tasks[k];
        size_t n = (size_t)ti->classes * D + (size_t)ti->classes;
        heads[k] = malloc(n * sizeof(float));
        head_grad[k] = calloc(n, sizeof(float));
        if (!heads[k] || !head_grad[k]) {
            tt_fail(err, TT_ENOMEM, "out of memory");
            goto done;
        }
        memcpy(heads[k], ti->head.W, (size_t)ti->classes * D * sizeof(float));
        memcpy(heads[k] + (size_t)ti->classes * D, ti->head.b, (size_t)ti->classes * sizeof(float));
        for (size_t i = 0; i < n; i++) heads[k][i] += (float)(0.02 * (2 * rng_uniform(&r) - 1));
    }
    double loss;
    double t0 = bu_now();
    if (adapt_objective(ctx, tv, o, lam, o->train_heads ? (const float *const *)heads : NULL, &loss, grad,
                        o->train_heads ? head_grad : NULL, err))
        goto done;
    printf("check: adapt_objective at seeded %s: loss %.8g (%.3f s incl. planning)\n",
           o->train_heads ? "lambda and heads" : "lambda", loss, bu_now() - t0);
    json_t *names = json_array();
    for (int l = 0; l < ctx->pre.lay.count && o->layerwise; l++) json_array_append_new(names, json_string(ctx->pre.lay.t[l].name));
    json_t *root = json_pack("{s:s,s:s,s:s,s:i,s:i,s:i,s:b,s:b,s:o,s:f,s:o,s:o}", "suite", ctx->s->dir, "learner", learner,
                             "loss_kind", loss_names[o->loss], "batch", o->batch, "accum", o->accum, "micro", o->micro,
                             "layerwise", o->layerwise, "per_task_steps", o->per_task_steps, "tensors", names, "loss", loss,
                             "lambda_raw", matrix_json(lam, K, n_coef), "grad", matrix_json(grad, K, n_coef));
    if (o->train_heads) {
        json_t *hs = json_array(), *hg = json_array();
        for (int k = 0; k < K; k++) {
            int C = ctx->s->tasks[k].classes;
            json_array_append_new(hs, head_json(heads[k], C, D));
            json_array_append_new(hg, head_json(head_grad[k], C, D));
        }
        json_object_set_new(root, "heads", hs);
        json_object_set_new(root, "head_grad", hg);
    }
    char *text = json_dumps(root, JSON_INDENT(1) | JSON_REAL_PRECISION(9));
    json_decref(root);
    rc = text ? fio_write_all(path, text, strlen(text), err) : tt_fail(err, TT_ENOMEM, "out of memory");
    free(text);
done:
    for (int k = 0; k < K; k++) {
        free(heads[k]);
        free(head_grad[k]);
    }
    free(lam);
    free(grad);
    return rc;
}

static int run(const run_opts *ro, tt_err *err) {
    suite s;
    if (suite_open(&s, ro->suite_dir, NULL, err)) return -1;
    merge_ctx ctx;
    char batch_set[32];
    const char *sets[1] = {batch_set};
    snprintf(batch_set, sizeof batch_set, "batch=%d", ro->batch);
    if (merge_ctx_open(&ctx, &s, ro->tinting ? &method_tinting : &method_adamerging, sets,
                       ro->tinting && ro->batch_set ? 1 : 0, 0, err)) {
        suite_close(&s);
        return -1;
    }
    int rc = -1;
    float *tv = adapt_task_vectors(&ctx, err);
    adapt_result res = {0};
    FILE *csv = NULL;
    double *t = NULL;
    if (!tv) goto done;
    const vit_config *cfg = &s.cfg;
    adapt_opts o = {.layerwise = ro->layerwise, .lambda_init = 0.3f, .lr = 1e-3f, .steps = ro->warmup + ro->steps,
                    .batch = ro->batch, .accum = ro->accum, .loss = ADAPT_ENTROPY, .lanes = ro->lanes,
                    .micro = ro->micro};
    if (ro->tinting) { /* tinting.c's own options at its defaults; only the run's length, lanes and micro differ */
        if (tint_adapt_opts(&ctx, &o, err)) goto done;
        o.steps = ro->warmup + ro->steps;
        o.eval_every = 0;
        o.lanes = ro->lanes;
        o.micro = ro->micro;
    }
    const char *pass = ro->tinting ? "tinting_step" : "adamerging_step";
    const int step_images = o.per_task_steps ? o.batch : ctx.K * o.batch; /* images per forward */
    const int chunk = o.micro ? o.micro : step_images;                    /* images per plan */
    bu_peak pk = bu_measure_peak(ro->threads, 3);
    if (ro->precision == DNN_BF16) { /* a bf16 step's % of peak is of the bf16 dot-product peak */
        double w16;
        pk.gflops = bu_peak_gflops_width(ro->threads, 3, 16, &w16);
        printf("peak bf16: measured %.1f GFLOP/s (vdpbf16ps loop; wall clock %.1f)\n", pk.gflops, w16);
    }
    printf("# precision=%s\n", dnn_precision_name(ro->precision));
    bu_print_loadavg("at start");
    bu_print_machine(ro->threads);
    printf("# peak_measured_gflops=%.3f threads=%d\n", pk.gflops, ro->threads);
    uint64_t params = 0;
    for (int l = 0; l < ctx.pre.lay.count; l++) params += ctx.pre.lay.t[l].numel;
    if (ro->tinting)
        printf("suite %s (%s): K=%d tasks, %d tensors, %llu parameters; step = merge + fwd+bwd of one task's %d images "
               "(%s CE on the expert's labels, computed before the first step) + K dots per tensor + Adam on lambda "
               "and the task's head\n",
               s.name, s.dir, ctx.K, ctx.pre.lay.count, (unsigned long long)params, o.batch,
               loss_names[o.loss]);
    else
        printf("suite %s (%s): K=%d tasks, %d tensors, %llu parameters; step = merge + %d x fwd+bwd of %d x %d images + "
               "%d x K dots per tensor + Adam (%s)\n",
               s.name, s.dir, ctx.K, ctx.pre.lay.count, (unsigned long long)params, o.accum, ctx.K, o.batch, o.accum,
               o.layerwise ? "layer-wise" : "task-wise");
    printf("# micro=%d lanes=%d (forward+backward lanes of %d images)\n", o.micro,
           ro->lanes ? ro->lanes : vit_lanes_auto(&ctx.s->cfg, chunk), chunk);
    if (ro->check_out && write_check(&ctx, tv, &o, ro->tinting ? "tinting" : "adamerging", ro->check_out, err)) goto done;
    if (adapt_run(&ctx, tv, &o, &res, err)) goto done;
    if (res.stop.stopped) { /* fewer steps than asked: nothing to time */
        char why[512];
        adapt_stop_message(&res, why, sizeof why);
        tt_fail(err, TT_EINPUT, "%s", why);
        goto done;
    }
    t = malloc((size_t)ro->steps * sizeof(double));
    if (!t) {
        tt_fail(err, TT_ENOMEM, "out of memory");
        goto done;
    }
    printf("# step_seconds:"); /* every timed step, in order: run_all.sh pools them over rounds */
    for (int i = 0; i < ro->steps; i++) {
        t[i] = res.curve[ro->warmup + i].seconds;
        printf(" %.6f", t[i]);
    }
    printf("\n");
    double med = bu_median(t, ro->steps), mn = t[0];
    int images = step_images * o.accum;
    /* FLOPs of the ViT forward+backward only (3x forward); the merge and dots are memory-bound */
    double gflops = 3.0 * o.accum * vit_forward_flops(cfg, step_images) / med / 1e9;
    const char *config = ro->config ? ro->config : s.name;
    char what[96];
    snprintf(what, sizeof what, "%s %s (%d threads)", config, pass, ro->threads);
    bu_check_pct("adamerge_bench", what, gflops, &pk.gflops, ro->threads, ro->precision == DNN_BF16 ? 16 : 0);
    printf("%-14s %5s %3s  %-16s %10s %10s %10s %8s %7s\n", "config", "batch", "thr", "pass", "median_ms", "min_ms",
           "images/s", "GFLOP/s", "%peak");
    printf("%-14s %5d %3d  %-16s %10.3f %10.3f %10.1f %8.2f %6.1f%%\n", config, step_images, ro->threads,
           pass, med * 1e3, mn * 1e3, images / med, gflops, 100 * gflops / pk.gflops);
    printf("loss: first %.6f, last %.6f (entropy %.6f -> %.6f)\n", res.curve[0].loss, res.curve[res.n_curve - 1].loss,
           res.curve[0].entropy, res.curve[res.n_curve - 1].entropy);
    bu_print_loadavg("at end");
    if (ro->csv) {
        csv = fopen(ro->csv, "w");
        if (!csv) {
            tt_fail(err, TT_EIO, "%s: cannot write", ro->csv);
            goto done;
        }
        fprintf(csv, "config,batch,threads,pass,median_s,min_s,images_per_s,gflops,pct_peak_measured,peer\n");
        fprintf(csv, "%s,%d,%d,%s,%.6g,%.6g,%.6g,%.6g,%.4g,%s\n", config, step_images, ro->threads, pass,
                med, mn, images / med, gflops, 100 * gflops / pk.gflops, ro->precision == DNN_BF16 ? "ttmerge-bf16" : "ttmerge");
        if (fclose(csv)) {
            csv = NULL;
            tt_fail(err, TT_EIO, "%s: write failed", ro->csv);
            goto done;
        }
        csv = NULL;
    }
    rc = 0;
done:
    if (csv) fclose(csv);
    free(t);
    adapt_result_free(&res);
    free(tv);
    merge_ctx_close(&ctx);
    suite_close(&s);
    return rc;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: adamerge_bench --make-suite DIR --arch vision8|vitb32|vitb32full|vitb16full [--tasks K] [--seed S]\n"
            "       adamerge_bench --suite DIR [--threads N] [--steps R] [--warmup W] [--batch B] [--accum A]\n"
            "                      [--task-wise] [--lanes N] [--csv FILE] [--check-out FILE.json] [--config NAME]\n"
            "                      [--precision f32|bf16] [--learner adamerging|tinting] [--micro M]\n"
            "  --learner L    whose step: adamerging (default) or tinting (tint/tinting.c at its defaults: one task's\n"
            "                 batch of 32, pseudo-conf loss, Adam on lambda and that task's head; no --accum, --task-wise)\n"
            "  --steps R      timed steps (default 10); --warmup W untimed first steps (default 2)\n"
            "  --batch/--accum  test images per task per forward / forwards per step (AdaMerging: 16 / 2; Tinting: 32 / 1)\n"
            "  --lanes N      forward+backward lanes (core/lanes.h; default 0: one per thread when the batch allows)\n"
            "  --micro M      images per forward+backward (the learners' micro; default 0: all of a forward's)\n"
            "  --check-out F  write adapt_objective's loss and dL/dlambda (Tinting: and dL/dhead) at seeded coefficients\n"
            "                 (for torch_adamerge.py --check)\n"
            "  --config NAME  the config column of the CSV (default: the suite's name)\n");
}

static int parse_int(const char *flag, const char *v, int lo, int hi, int *out) {
    char *end;
    long x = strtol(v, &end, 10);
    if (end == v || *end || x < lo || x > hi) {
        fprintf(stderr, "adamerge_bench: %s %s: expected an integer in [%d, %d]\n", flag, v, lo, hi);
        return -1;
    }
    *out = (int)x;
    return 0;
}

int main(int argc, char **argv) {
    run_opts ro = {.steps = 10, .warmup = 2, .batch = 16, .accum = 2, .layerwise = true};
    const char *make = NULL, *arch = NULL;
    int tasks = 8, seed = 1;
    bool accum_set = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--task-wise")) ro.layerwise = false;
        else if (!v) bad = 1;
        else if (!strcmp(a, "--make-suite")) make = v;
        else if (!strcmp(a, "--arch")) arch = v;
        else if (!strcmp(a, "--suite")) ro.suite_dir = v;
        else if (!strcmp(a, "--csv")) ro.csv = v;
        else if (!strcmp(a, "--check-out")) ro.check_out = v;
        else if (!strcmp(a, "--learner")) {
            ro.tinting = !strcmp(v, "tinting");
            if (!ro.tinting && strcmp(v, "adamerging")) {
                fprintf(stderr, "adamerge_bench: --learner %s: expected adamerging or tinting\n", v);
                bad = 2;
            }
        }
        else if (!strcmp(a, "--config")) ro.config = v;
        else if (!strcmp(a, "--precision")) bad = dnn_precision_parse(v, &ro.precision) ? 1 : 0;
        else if (!strcmp(a, "--tasks")) bad = parse_int(a, v, 1, MERGE_MAX_TASKS, &tasks);
        else if (!strcmp(a, "--seed")) bad = parse_int(a, v, 0, 1 << 30, &seed);
        else if (!strcmp(a, "--threads")) bad = parse_int(a, v, 1, 4096, &ro.threads);
        else if (!strcmp(a, "--steps")) bad = parse_int(a, v, 1, 100000, &ro.steps);
        else if (!strcmp(a, "--warmup")) bad = parse_int(a, v, 0, 100000, &ro.warmup);
        else if (!strcmp(a, "--batch")) {
            bad = parse_int(a, v, 1, 1024, &ro.batch);
            ro.batch_set = true;
        } else if (!strcmp(a, "--accum")) {
            bad = parse_int(a, v, 1, 64, &ro.accum);
            accum_set = true;
        }
        else if (!strcmp(a, "--lanes")) bad = parse_int(a, v, 0, VIT_LANES_MAX, &ro.lanes);
        else if (!strcmp(a, "--micro")) bad = parse_int(a, v, 0, 65536, &ro.micro);
        else bad = 1;
        if (bad) {
            if (bad == 1) fprintf(stderr, "adamerge_bench: bad argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
        if (strcmp(a, "--task-wise")) i++;
    }
    if (ro.tinting && (accum_set || !ro.layerwise)) {
        fprintf(stderr, "adamerge_bench: --accum and --task-wise are AdaMerging's (Tinting: one layer-wise step per batch)\n");
        return 2;
    }
    if (ro.threads > 0) omp_set_num_threads(ro.threads);
    ro.threads = omp_get_max_threads();
    if (dnn_set_default_precision(ro.precision) != ro.precision) {
        fprintf(stderr, "adamerge_bench: --precision bf16: no native bf16 on this CPU (oneDNN ISA %s)\n", dnn_isa_name());
        return 2;
    }
    tt_err e = {0};
    if (make) {
        int k = 0;
        while (arch && k < NARCH && strcmp(arches[k].name, arch)) k++;
        if (!arch || k == NARCH) {
            fprintf(stderr, "adamerge_bench: --arch must be vision8, vitb32, vitb32full or vitb16full\n");
            return 2;
        }
        double t0 = bu_now();
        if (make_suite(make, &arches[k], tasks, (uint64_t)seed, &e)) {
            fprintf(stderr, "adamerge_bench: %s\n", e.msg);
            return e.code == TT_EINPUT ? 2 : 3;
        }
        printf("wrote synthetic %s suite (%d tasks) to %s in %.1f s\n", arch, tasks, make, bu_now() - t0);
        return 0;
    }
    if (!ro.suite_dir) {
        usage(stderr);
        return 2;
    }
    if (run(&ro, &e)) {
        fprintf(stderr, "adamerge_bench: %s\n", e.msg);
        return e.code == TT_EINPUT ? 2 : 3;
    }
    return 0;
}
