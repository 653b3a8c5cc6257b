/* vit_bench.c — engine microbenchmark: forward and forward+backward throughput of the ViT.
 *
 *   vit_bench [--threads N] [--reps R] [--lanes N] [--csv FILE] [--configs vision8,vitb32,vitb32full] [--passes LIST]
 *             [--batches LIST] [--verbose-step] [--precision f32|bf16]
 *
 * For each config and batch the plan is created once, 3 untimed warm-up runs follow, then R timed
 * reps of each pass (median and min seconds):
 *   fwd           vit_lanes_forward (core/lanes.h: one lane per thread when the batch allows, as
 *                 AdaMerging and Tinting run it; --lanes 1 is one plan with parallel ops)
 *   fwd_bwd_all   the forward + vit_lanes_backward into a gradient struct with every tensor
 *   fwd_bwd_attn  the forward + vit_lanes_backward with only attn.in_proj_weight / attn.out_proj.weight
 *   eval          infer_features on uint8 pixels: what `ttmerge eval` and every accuracy of a merge
 *                 run (core/infer.h: normalisation, and batch-parallel lanes for narrow models)
 * FLOPs: vit_forward_flops() for a forward; backward counted as 2x forward, so a forward+backward
 * is 3x forward (for both backward passes — the attention-only pass does less real work, so its
 * GFLOP/s is an "effective" rate). Peak: the measured FMA peak of bench_util.h (the better of a 256-
 * and a 512-bit FMA loop on every OpenMP thread, in the same run), and the nominal peak = threads x
 * "cpu MHz" x 2 FMA units x lanes x 2 (512-bit lanes only when the 512-bit loop is clearly faster).
 * Everything is allocated before timing; the timed loop only calls the engine.
 */
#include <math.h>
#include <omp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/micro/bench_util.h"
#include "core/arena.h"
#include "core/infer.h"
#include "core/lanes.h"
#include "core/rng.h"
#include "core/vit.h"

#define WARMUP 3

/* ------------------------------------------------------------------ configs */

typedef struct bench_config {
    const char *name;
    vit_config cfg;
    int batches[2];
    int nbatches;
    int default_reps;
} bench_config;

static const bench_config configs[] = {
    {"vision8",
     {.image_size = 28, .channels = 1, .patch_size = 7, .width = 64, .layers = 4, .heads = 4, .mlp_ratio = 4,
      .output_dim = 64, .act = OP_ACT_GELU, .ln_eps = 1e-5f, .normalize_features = false, .logit_scale = 1},
     {128, 16}, 2, 20},
    {"vitb32",
     {.image_size = 224, .channels = 3, .patch_size = 32, .width = 768, .layers = 2, .heads = 12, .mlp_ratio = 4,
      .output_dim = 512, .act = OP_ACT_GELU, .ln_eps = 1e-5f, .normalize_features = false, .logit_scale = 1},
     {32, 0}, 1, 5},
    /* CLIP's ViT-B/32 image tower whole (12 blocks, QuickGELU): evaluation at the infer batch (a training plan
     * for its forward+backward at 256 images would need ~8.5 GB: give --passes eval) */
    {"vitb32full",
     {.image_size = 224, .channels = 3, .patch_size = 32, .width = 768, .layers = 12, .heads = 12, .mlp_ratio = 4,
      .output_dim = 512, .act = OP_ACT_QUICK_GELU, .ln_eps = 1e-5f, .normalize_features = false, .logit_scale = 1},
     {INFER_BATCH, 0}, 1, 3},
    /* ViT-B/16 likewise (197 tokens: ~4.4x ViT-B/32's FLOPs per image) */
    {"vitb16full",
     {.image_size = 224, .channels = 3, .patch_size = 16, .width = 768, .layers = 12, .heads = 12, .mlp_ratio = 4,
      .output_dim = 512, .act = OP_ACT_QUICK_GELU, .ln_eps = 1e-5f, .normalize_features = false, .logit_scale = 1},
     {INFER_BATCH, 0}, 1, 3},
};
#define NCONFIGS ((int)(sizeof configs / sizeof configs[0]))

enum { PASS_FWD, PASS_FWD_BWD_ALL, PASS_FWD_BWD_ATTN, PASS_EVAL, NPASS };
static const char *const pass_names[NPASS] = {"fwd", "fwd_bwd_all", "fwd_bwd_attn", "eval"};
static const double pass_flop_factor[NPASS] = {1, 3, 3, 1};

/* FLOPs the engine really executes for one pass (matmuls only, multiply-add = 2), following
 * vit_backward: the patch embedding has no dX, the full backward does dX and dW of every linear and
 * 2x the attention matmuls; the attention-only backward does dX of every linear in every block, dW of
 * the qkv/out projections, the attention backward and proj's dX. */
static double executed_flops(const vit_config *c, int batch, int pass) {
    double F = vit_forward_flops(c, batch);
    if (pass == PASS_FWD || pass == PASS_EVAL) return F;
    double T = vit_tokens(c), M = batch * T, W = c->width, m = vit_mlp_width(c);
    double patch = 2.0 * batch * (T - 1) * c->channels * c->patch_size * c->patch_size * W;
    double proj = 2.0 * batch * W * c->output_dim;
    double lin = 2 * M * W * 3 * W + 2 * M * W * W + 4 * M * W * m, att = 4.0 * batch * T * T * W;
    if (pass == PASS_FWD_BWD_ALL) return F + 2 * F - patch;
    double bwd = c->layers * (lin + 2 * M * W * 3 * W + 2 * M * W * W + 2 * att) + proj;
    return F + bwd;
}

typedef struct bench_ctx {
    dnn *d;
    FILE *csv;
    int threads;
    int reps_override; /* 0 = per-config default */
    int lanes;         /* forward+backward lanes; 0 = vit_lanes_auto */
    bool verbose_step; /* one extra untimed step per pass with ONEDNN verbose on */
    bool pass_on[NPASS]; /* --passes */
    int batches[2];      /* --batches: instead of every config's own (nbatches = 0: the config's) */
    int nbatches;
    double peak_measured, peak_nominal;
    int peak_width;   /* which peak peak_measured is: 0 the FMA loop's, 16 the bf16 loop's (bu_check_pct) */
    int warmup;       /* untimed runs before the timed ones (WARMUP unless --warmup) */
    const char *peer; /* the CSV's peer column: "ttmerge", or "ttmerge-bf16" with --precision bf16 */
} bench_ctx;

static void fill_uniform(float *x, size_t n, uint64_t seed, float lo, float hi) {
    rng r;
    rng_init(&r, seed);
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * (float)rng_uniform(&r);
}

typedef struct pass_io {
    vit_lanes *lanes;
    infer_ctx *ic;         /* eval */
    const uint8_t *pixels; /* eval: [batch, C, S, S] */
    int batch;
    const float *images, *dfeat;
    float *features;
} pass_io;

static void run_pass(const pass_io *io, int pass, const vit_weights *w, const vit_weights *g) {
    if (pass == PASS_EVAL) {
        infer_norm nm = infer_norm_scalar(0.5f, 0.5f, io->ic->cfg.channels);
        infer_features(io->ic, w, io->pixels, io->batch, &nm, io->features);
        return;
    }
    vit_lanes_forward(io->lanes, w, io->images, io->features);
    if (g) vit_lanes_backward(io->lanes, w, g, io->dfeat);
}

static int bench_one(bench_ctx *bx, const bench_config *bc, int batch) {
    const vit_config *cfg = &bc->cfg;
    tt_err e = {0};
    vit_layout lay;
    if (vit_layout_init(&lay, cfg, &e)) {
        fprintf(stderr, "vit_bench: %s: %s\n", bc->name, e.msg);
        return -1;
    }
    size_t img = (size_t)batch * cfg->channels * cfg->image_size * cfg->image_size;
    size_t BD = (size_t)batch * cfg->output_dim;
    /* the training plans and gradients only when a pass needs them (eval runs on infer's inference plans) */
    bool train = bx->pass_on[PASS_FWD] || bx->pass_on[PASS_FWD_BWD_ALL] || bx->pass_on[PASS_FWD_BWD_ATTN];
    size_t grad_floats = train ? lay.total : 1;
    float *theta = tt_calloc_aligned(lay.total, sizeof(float), &e);
    float *grad_all = tt_calloc_aligned(grad_floats, sizeof(float), &e);
    float *grad_attn = tt_calloc_aligned(grad_floats, sizeof(float), &e);
    float *images = tt_calloc_aligned(img, sizeof(float), &e);
    float *features = tt_calloc_aligned(BD, sizeof(float), &e);
    float *dfeat = tt_calloc_aligned(BD, sizeof(float), &e);
    bool *attn_only = calloc((size_t)lay.count, sizeof(bool));
    vit_weights w = {0}, g_all = {0}, g_attn = {0};
    vit_lanes lanes = {0};
    infer_ctx ic = {0};
    uint8_t *pixels = malloc(img);
    int rc = -1;
    if (!theta || !grad_all || !grad_attn || !images || !features || !dfeat || !attn_only || !pixels) {
        fprintf(stderr, "vit_bench: out of memory\n");
        goto done;
    }
    vit_init_params(cfg, &lay, theta, 1);
    fill_uniform(images, img, 2, -1, 1);
    for (size_t i = 0; i < img; i++) pixels[i] = (uint8_t)lrintf((images[i] + 1) * 127.5f); /* the same images */
    for (size_t i = 0; i < BD; i++) dfeat[i] = 1.0f; /* loss = sum(features), as in torch_vit.py */
    for (int t = 0; t < lay.count; t++)
        attn_only[t] = strstr(lay.t[t].name, "attn.in_proj_weight") || strstr(lay.t[t].name, "attn.out_proj.weight");
    if (vit_weights_bind(&w, &lay, theta, NULL, &e) ||
        (train && (vit_weights_bind(&g_all, &lay, grad_all, NULL, &e) ||
                   vit_weights_bind(&g_attn, &lay, grad_attn, attn_only, &e)))) {
        fprintf(stderr, "vit_bench: %s: %s\n", bc->name, e.msg);
        goto done;
    }
    if (train && vit_lanes_init(&lanes, bx->d, cfg, &lay, batch, bx->lanes, NULL, &e)) {
        fprintf(stderr, "vit_bench: %s batch %d: %s\n", bc->name, batch, e.msg);
        goto done;
    }
    if (bx->pass_on[PASS_EVAL] && infer_init(&ic, bx->d, cfg, batch, &e)) {
        fprintf(stderr, "vit_bench: %s batch %d: %s\n", bc->name, batch, e.msg);
        goto done;
    }
    if (train)
        printf("# %s batch %d: forward+backward on %d lane(s) of %d images\n", bc->name, batch, lanes.lanes,
               lanes.lane_batch);
    if (bx->pass_on[PASS_EVAL]) printf("# %s batch %d: eval on %d lane(s) of %d images\n", bc->name, batch, ic.lanes, ic.lane_batch);
    pass_io io = {.lanes = &lanes, .ic = &ic, .pixels = pixels, .batch = batch, .images = images, .dfeat = dfeat,
                  .features = features};
    int reps = bx->reps_override > 0 ? bx->reps_override : bc->default_reps;
    double *times = calloc((size_t)reps, sizeof(double));
    if (!times) goto done;
    double fwd_flops = vit_forward_flops(cfg, batch);
    const vit_weights *grads[NPASS] = {NULL, &g_all, &g_attn, NULL};
    for (int ps = 0; ps < NPASS; ps++) {
        if (!bx->pass_on[ps]) continue;
        for (int i = 0; i < bx->warmup; i++) run_pass(&io, ps, &w, grads[ps]);
        for (int i = 0; i < reps; i++) {
            double t0 = bu_now();
            run_pass(&io, ps, &w, grads[ps]);
            times[i] = bu_now() - t0;
        }
        if (bx->verbose_step) {
            fflush(stdout);
            printf("# verbose-step begin %s %d %s\n", bc->name, batch, pass_names[ps]);
            fflush(stdout);
            dnnl_set_verbose(1);
            double t0 = bu_now();
            run_pass(&io, ps, &w, grads[ps]);
            double t = bu_now() - t0;
            dnnl_set_verbose(0);
            fflush(stdout);
            printf("# verbose-step end %s %d %s wall_ms=%.3f\n", bc->name, batch, pass_names[ps], t * 1e3);
            fflush(stdout);
        }
        double med = bu_median(times, reps), mn = times[0];
        double gflops = pass_flop_factor[ps] * fwd_flops / med / 1e9;
        double xgflops = executed_flops(cfg, batch, ps) / med / 1e9;
        char what[96];
        snprintf(what, sizeof what, "%s batch %d %s (%d threads)", bc->name, batch, pass_names[ps], bx->threads);
        bu_check_pct("vit_bench", what, gflops, &bx->peak_measured, bx->threads, bx->peak_width);
        bu_check_pct("vit_bench", what, xgflops, &bx->peak_measured, bx->threads, bx->peak_width);
        double pct = 100.0 * gflops / bx->peak_measured;
        double pct_nom = 100.0 * gflops / bx->peak_nominal;
        printf("%-8s %5d %3d  %-13s %10.3f %10.3f %10.1f %8.2f %6.1f%% %6.1f%% %8.2f %6.1f%%\n", bc->name, batch,
               bx->threads, pass_names[ps], med * 1e3, mn * 1e3, batch / med, gflops, pct, pct_nom, xgflops,
               100.0 * xgflops / bx->peak_measured);
        fflush(stdout);
        if (bx->csv)
            fprintf(bx->csv, "%s,%d,%d,%s,%.6g,%.6g,%.6g,%.6g,%.4g,%s\n", bc->name, batch, bx->threads,
                    pass_names[ps], med, mn, batch / med, gflops, pct, bx->peer);
    }
    free(times);
    /* keep the results observable (and sanity-check them) */
    float chk = 0;
    for (size_t i = 0; i < BD; i++) chk += features[i];
    if (!isfinite(chk)) {
        fprintf(stderr, "vit_bench: %s: non-finite features\n", bc->name);
        goto done;
    }
    rc = 0;
done:
    infer_free(&ic);
    free(pixels);
    vit_lanes_free(&lanes);
    vit_weights_free(&w);
    vit_weights_free(&g_all);
    vit_weights_free(&g_attn);
    vit_layout_free(&lay);
    free(theta);
    free(grad_all);
    free(grad_attn);
    free(images);
    free(features);
    free(dfeat);
    free(attn_only);
    return rc;
}

static void usage(FILE *f) {
    fprintf(f, "usage: vit_bench [--threads N] [--reps R] [--lanes N] [--csv FILE] [--configs LIST] [--passes LIST]\n"
               "                 [--batches LIST] [--verbose-step] [--precision f32|bf16] [--warmup W]\n"
               "  --threads N   OpenMP threads (default: OMP_NUM_THREADS or all CPUs)\n"
               "  --reps R      timed reps per pass (default: 20 for vision8, 5 for vitb32, 3 for vitb32full)\n"
               "  --lanes N     forward+backward lanes (default 0: one per thread when the batch allows)\n"
               "  --csv FILE    also write config,batch,threads,pass,median_s,min_s,images_per_s,gflops,\n"
               "                pct_peak_measured,peer\n"
               "  --configs L   comma-separated subset of: vision8, vitb32, vitb32full, vitb16full (default: vision8,vitb32)\n"
               "  --precision P f32 (default) or bf16 (matmul inputs in bf16; CSV peer ttmerge-bf16, %%peak of the bf16 peak)\n"
               "  --passes L    comma-separated subset of: fwd, fwd_bwd_all, fwd_bwd_attn, eval (default: all)\n"
               "  --batches L   one or two comma-separated batch sizes for every config (default: vision8 128,16;\n"
               "                vitb32 32; vitb32full 256, the infer batch)\n"
               "  --verbose-step  after each pass, run one more (untimed) step with oneDNN verbose on\n"
               "                (the ONEDNN_VERBOSE=1 exec lines of exactly one step, between '# verbose-step' marks)\n");
}

int main(int argc, char **argv) {
    int threads = 0, reps = 0, lanes = 0, warmup = WARMUP;
    bool verbose_step = false;
    const char *csv_path = NULL, *config_list = "vision8,vitb32", *pass_list = "fwd,fwd_bwd_all,fwd_bwd_attn,eval";
    const char *batch_list = NULL, *precision = "f32";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_val = i + 1 < argc;
        if (!strcmp(a, "--threads") && has_val) threads = atoi(argv[++i]);
        else if (!strcmp(a, "--reps") && has_val) reps = atoi(argv[++i]);
        else if (!strcmp(a, "--lanes") && has_val) lanes = atoi(argv[++i]);
        else if (!strcmp(a, "--csv") && has_val) csv_path = argv[++i];
        else if (!strcmp(a, "--configs") && has_val) config_list = argv[++i];
        else if (!strcmp(a, "--passes") && has_val) pass_list = argv[++i];
        else if (!strcmp(a, "--batches") && has_val) batch_list = argv[++i];
        else if (!strcmp(a, "--precision") && has_val) precision = argv[++i];
        else if (!strcmp(a, "--warmup") && has_val) warmup = atoi(argv[++i]);
        else if (!strcmp(a, "--verbose-step")) verbose_step = true;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "vit_bench: bad argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (threads < 0 || reps < 0 || lanes < 0 || lanes > VIT_LANES_MAX) {
        fprintf(stderr, "vit_bench: --threads and --reps must be positive, --lanes in [0, %d]\n", VIT_LANES_MAX);
        return 2;
    }
    bool want[NCONFIGS] = {0};
    {
        char buf[256];
        snprintf(buf, sizeof buf, "%s", config_list);
        for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
            int k = 0;
            while (k < NCONFIGS && strcmp(configs[k].name, tok)) k++;
            if (k == NCONFIGS) {
                fprintf(stderr, "vit_bench: unknown config '%s' (vision8, vitb32, vitb32full, vitb16full)\n", tok);
                return 2;
            }
            want[k] = true;
        }
    }
    bool pass_on[NPASS] = {0};
    {
        char buf[256];
        snprintf(buf, sizeof buf, "%s", pass_list);
        for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
            int k = 0;
            while (k < NPASS && strcmp(pass_names[k], tok)) k++;
            if (k == NPASS) {
                fprintf(stderr, "vit_bench: unknown pass '%s' (fwd, fwd_bwd_all, fwd_bwd_attn, eval)\n", tok);
                return 2;
            }
            pass_on[k] = true;
        }
    }
    dnn_precision prec;
    if (dnn_precision_parse(precision, &prec)) {
        fprintf(stderr, "vit_bench: --precision must be f32 or bf16\n");
        return 2;
    }
    if (dnn_set_default_precision(prec) != prec) {
        fprintf(stderr, "vit_bench: --precision bf16: no native bf16 on this CPU (oneDNN ISA %s)\n", dnn_isa_name());
        return 2;
    }
    bench_ctx bx = {.reps_override = reps, .lanes = lanes, .verbose_step = verbose_step, .warmup = warmup < 0 ? 0 : warmup,
                    .peer = prec == DNN_BF16 ? "ttmerge-bf16" : "ttmerge"};
    memcpy(bx.pass_on, pass_on, sizeof pass_on);
    if (batch_list) {
        char buf[256], *end;
        snprintf(buf, sizeof buf, "%s", batch_list);
        for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
            long b = strtol(tok, &end, 10);
            if (*end || b < 1 || b > 4096 || bx.nbatches == 2) {
                fprintf(stderr, "vit_bench: --batches wants one or two sizes in [1, 4096], got '%s'\n", batch_list);
                return 2;
            }
            bx.batches[bx.nbatches++] = (int)b;
        }
    }
    if (threads > 0) omp_set_num_threads(threads);
    bx.threads = threads = omp_get_max_threads();
    char model[256];
    double mhz = bu_cpuinfo(model, sizeof model);
    bu_peak pk = bu_measure_peak(threads, 5);
    /* nominal: 2 FMA units per core at the nominal clock, 512 bits wide only when 512-bit FMAs run
     * clearly faster than 256-bit ones (Zen 4 splits a 512-bit FMA into two 256-bit halves: both
     * loops measure the same there, and its datapath is 2 x 256 bits = 32 FLOP/cycle) */
    double flop_per_cycle = pk.gflops512 > 1.3 * pk.gflops256 ? 64 : 32;
    bx.peak_nominal = threads * mhz * 1e-3 * flop_per_cycle;
    bx.peak_measured = pk.gflops;
    if (prec == DNN_BF16) { /* a bf16 matmul's % of peak is of the bf16 dot-product peak */
        double w16;
        double g16 = bu_peak_gflops_width(threads, 5, 16, &w16);
        printf("peak bf16: measured %.1f GFLOP/s (12-chain vdpbf16ps loop on each thread's CPU clock; wall clock %.1f);"
               " every %%peak below is of it\n", g16, w16);
        bx.peak_measured = g16;
        bx.peak_width = 16;
        bx.peak_nominal = 2 * bx.peak_nominal;
    }
    printf("# precision=%s\n", dnn_precision_name(prec));
    bu_print_loadavg("at start");
    bu_print_machine(threads);
    printf("peak f32: measured %.1f GFLOP/s (12-chain FMA loop on each thread's CPU clock, %d-bit vectors; 256-bit %.1f,"
           " 512-bit %.1f; %d thread%s; on the wall clock %.1f), nominal %.1f GFLOP/s (%d x %.3f GHz x %.0f FLOP/cycle)\n",
           bx.peak_measured, pk.width, pk.gflops256, pk.gflops512, threads, threads == 1 ? "" : "s", pk.wall_gflops,
           bx.peak_nominal, threads, mhz * 1e-3, flop_per_cycle);
    if (bx.peak_measured > 1.02 * bx.peak_nominal)
        printf("peak f32: measured above nominal: the cores run at about %.2f GHz, above the \"cpu MHz\" the VM reports;"
               " every %%peak below is of the measured peak\n",
               bx.peak_measured / (threads * flop_per_cycle));
    printf("# peak_measured_gflops=%.3f peak_nominal_gflops=%.3f threads=%d\n", bx.peak_measured, bx.peak_nominal,
           threads);
    printf("FLOPs: forward = vit_forward_flops(); backward counted as 2x forward, so fwd+bwd = 3x forward\n"
           "(also for fwd_bwd_attn, which skips the MLP/LN/bias/embedding weight gradients: an effective rate).\n");
    printf("%%peak: of the measured FMA peak; %%nomin: of the nominal peak; xGFLOP/s, x%%peak: the matmul FLOPs the\n"
           "engine really executes (no patch-embedding dX; attention-only skips most weight gradients).\n"
           "A %%peak or x%%peak above 100 stops the run (bu_check_pct: a benchmark bug).\n");
    printf("warm-up %d, then median/min of %s reps per pass\n\n", bx.warmup,
           reps ? "--reps" : "20 (vision8) / 5 (vitb32) / 3 (vitb32full)");
    printf("%-8s %5s %3s  %-13s %10s %10s %10s %8s %7s %7s %8s %7s\n", "config", "batch", "thr", "pass",
           "median_ms", "min_ms", "images/s", "GFLOP/s", "%peak", "%nomin", "xGFLOP/s", "x%peak");

    tt_err e = {0};
    if (dnn_create(&bx.d, &e)) {
        fprintf(stderr, "vit_bench: %s\n", e.msg);
        return 3;
    }
    if (csv_path) {
        bx.csv = fopen(csv_path, "w");
        if (!bx.csv) {
            perror(csv_path);
            dnn_free(bx.d);
            return 2;
        }
        fprintf(bx.csv, "config,batch,threads,pass,median_s,min_s,images_per_s,gflops,pct_peak_measured,peer\n");
    }
    int rc = 0;
    for (int k = 0; k < NCONFIGS && !rc; k++) {
        if (!want[k]) continue;
        const int *batches = bx.nbatches ? bx.batches : configs[k].batches;
        int nb = bx.nbatches ? bx.nbatches : configs[k].nbatches;
        for (int b = 0; b < nb && !rc; b++) rc = bench_one(&bx, &configs[k], batches[b]);
    }
    bu_print_loadavg("at end");
    if (bx.csv && fclose(bx.csv)) {
        perror(csv_path);
        rc = -1;
    }
    dnn_free(bx.d);
    return rc ? 1 : 0;
}
