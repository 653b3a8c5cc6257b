/* merge_bench.c — memory bandwidth of the data-free merges against a STREAM-like triad, measured
 * in the same run.
 *
 *   merge_bench [--threads N] [--reps R] [--tasks K] [--arch vitb32|vision8] [--triad-mib M] [--csv FILE]
 *
 * triad      a[i] = b[i] + s·c[i] over three arrays of M MiB each (default: 4× the last-level cache
 *            from sysfs, at least 256 MiB), OpenMP static schedule, first touch by the same
 *            schedule; bytes = 3 arrays (STREAM's convention: write-allocate traffic not counted).
 * ta_sum     δ = Σ_k (θ_k − θ0): Task Arithmetic's task-vector sum (mu_sum_task_vectors, as ta.c).
 * ta_apply   θ = θ0 + λ δ (search_apply: what TA and TIES do for each λ they try).
 * ties       δ = TIES(τ_1..τ_K) at top-20%, dis-mean (ties_merged_delta_src, as ties.c): per-task
 *            exact thresholds by a streaming select (a 1/64 sample, then one counting pass),
 *            then trim + sum + elect + disjoint mean in one fused pass.
 * Rounds interleave the four (triad, ta_sum, ta_apply, ties; one warm-up round, then R timed), so
 * that a change of the machine's load hits all of them; medians over the rounds.
 * Each merge runs the library's own streaming code on a merge context whose K fine-tuned models
 * are zero-copy views into memory (what a merge of memory-mapped checkpoints in the page cache
 * sees), at ViT-B/32's full size by default (12 blocks, 87.8 M parameters, K = 8: 2.8 GB of task
 * models).
 *
 * Bytes moved are the compulsory traffic of the algorithm, N = parameters, 4 bytes each, counted
 * like the triad (reads + writes, no write-allocate):
 *   ta_sum    (K + 1)·N reads + N writes          = (K + 2)·4N
 *   ta_apply  2N reads + N writes                 = 3·4N
 *   ties      2 full passes over the K models and θ0 (the select's counting pass; the fused
 *             trim + sum + elect + disjoint merge) + the select's sample (a run of 16 values in
 *             every 1024, i.e. 2 of every 64 cache lines touched: 1/32 of a pass) + δ written
 *             once = ((2 + 1/32)(K + 1) + 1)·4N
 *             (the select's copies, ~1% of a pass, are not counted; a bracket that misses — none
 *             on this input — costs 2 passes more, and a positive majority with more exact
 *             cancellations than the fused pass lists costs 2 more, counted only in the time)
 * so GB/s / triad GB/s says how close a merge runs to the machine's bandwidth. Before timing, the
 * TA sum is checked against a naive loop (bit for bit) at 4096 seeded indices.
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "baselines/merge_util.h"
#include "baselines/ties.h"
#include "baselines/search.h"
#include "bench/micro/bench_util.h"
#include "core/arena.h"

typedef struct mb_arch {
    const char *name;
    vit_config cfg;
} mb_arch;

static const mb_arch arches[] = {
    {"vitb32", /* CLIP ViT-B/32's image tower */
     {.image_size = 224, .channels = 3, .patch_size = 32, .width = 768, .layers = 12, .heads = 12, .mlp_ratio = 4,
      .output_dim = 512, .act = OP_ACT_GELU, .ln_eps = 1e-5f, .normalize_features = true, .logit_scale = 100}},
    {"vision8",
     {.image_size = 28, .channels = 1, .patch_size = 7, .width = 64, .layers = 4, .heads = 4, .mlp_ratio = 4,
      .output_dim = 64, .act = OP_ACT_GELU, .ln_eps = 1e-5f, .normalize_features = true, .logit_scale = 20}},
};

static size_t llc_bytes(void) {
    FILE *f = fopen("/sys/devices/system/cpu/cpu0/cache/index3/size", "r");
    size_t kib = 0;
    if (f) {
        if (fscanf(f, "%zuK", &kib) != 1) kib = 0;
        fclose(f);
    }
    return kib * 1024;
}

typedef struct mb_ctx {
    int threads, reps;
    FILE *csv;
    double triad_gbs; /* median */
} mb_ctx;

static void report(mb_ctx *mc, const char *what, const char *model, int K, double *t, int reps, double bytes) {
    double med = bu_median(t, reps), mn = t[0];
    double gbs = bytes / med / 1e9;
    if (!strcmp(what, "triad")) mc->triad_gbs = gbs;
    double pct = mc->triad_gbs > 0 ? 100 * gbs / mc->triad_gbs : NAN;
    printf("%-10s %-8s %2d %3d %10.2f %10.2f %9.2f %9.2f %7.1f%%\n", what, model, K, mc->threads, med * 1e3, mn * 1e3,
           bytes / 1e9, gbs, pct);
    fflush(stdout);
    if (mc->csv)
        fprintf(mc->csv, "%s,%s,%d,%d,%.6g,%.6g,%.6g,%.6g,%.4g\n", what, model, K, mc->threads, med, mn, bytes, gbs, pct);
}

/* MemAvailable from /proc/meminfo, bytes (0 if unknown). */
static size_t mem_available(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    size_t kib = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %zu kB", &kib) == 1) break;
    if (f) fclose(f);
    return kib * 1024;
}

static double triad_once(float *a, const float *b, const float *c, size_t n) {
    const float s = 3;
    double t0 = bu_now();
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) a[i] = b[i] + s * c[i];
    return bu_now() - t0;
}

/* Every round runs the triad and each merge once, so that a change in the machine's load hits
 * them alike (the machine may be shared); round 0 is a warm-up. */
static int run(mb_ctx *mc, const mb_arch *arch, int K, size_t triad_mib) {
    tt_err e = {0};
    suite s = {.n_tasks = K};
    snprintf(s.name, sizeof s.name, "synth-%s", arch->name);
    s.cfg = arch->cfg;
    s.tasks = calloc((size_t)K, sizeof *s.tasks);
    merge_ctx ctx = {0};
    size_t tn = triad_mib * 1024 * 1024 / sizeof(float);
    float *ft = NULL, *delta = NULL, *ta = NULL, *tb = NULL, *tc = NULL;
    enum { TRIAD, TA_SUM, TA_APPLY, TIES, NK };
    static const char *const names[NK] = {"triad", "ta_sum", "ta_apply", "ties"};
    double *t[NK] = {0};
    int rc = -1;
    for (int k = 0; k < NK; k++) t[k] = calloc((size_t)mc->reps, sizeof(double));
    if (!s.tasks || !t[0] || !t[1] || !t[2] || !t[3]) goto oom;
    for (int k = 0; k < K; k++) snprintf(s.tasks[k].name, sizeof s.tasks[k].name, "task%d", k);
    ctx.s = &s;
    ctx.K = K;
    if (ckpt_vit_alloc(&ctx.pre, &arch->cfg, &e) || ckpt_vit_alloc(&ctx.out, &arch->cfg, &e)) goto fail;
    const vit_layout *lay = &ctx.pre.lay;
    size_t total = lay->total;
    uint64_t N = mu_param_count(&ctx);
    double need = 4.0 * ((double)(K + 1) * total + 3.0 * tn), avail = (double)mem_available();
    printf("# memory: %.2f GB needed (%d task models + delta, 3 triad arrays of %zu MiB), %.2f GB available\n", need / 1e9,
           K, triad_mib, avail / 1e9);
    if (avail > 0 && need > avail - 1e9) {
        tt_fail(&e, TT_ENOMEM, "needs %.1f GB but only %.1f GB are available: lower --tasks or --triad-mib", need / 1e9,
                avail / 1e9);
        goto fail;
    }
    ft = tt_calloc_aligned((size_t)K * total, sizeof(float), &e);
    delta = tt_calloc_aligned(total, sizeof(float), &e);
    ta = tt_calloc_aligned(tn, sizeof(float), &e);
    tb = tt_calloc_aligned(tn, sizeof(float), &e);
    tc = tt_calloc_aligned(tn, sizeof(float), &e);
    if (!ft || !delta || !ta || !tb || !tc) goto fail;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < tn; i++) ta[i] = 0, tb[i] = 1, tc[i] = 2; /* first touch as the triad's schedule */
    double t0 = bu_now();
    /* θ0 ~ U(-0.05, 0.05), θ_k = θ0 + U(-1e-3, 1e-3): task vectors ~50x smaller than the weights */
    bu_fill_noise(ctx.pre.params, NULL, total, 0.05f, 1, false);
    for (int k = 0; k < K; k++) bu_fill_noise(ft + (size_t)k * total, ctx.pre.params, total, 1e-3f, 100 + (uint64_t)k, false);
    for (int k = 0; k < K; k++)
        for (int l = 0; l < lay->count; l++) ctx.ft_view[k][l] = ft + (size_t)k * total + lay->t[l].offset;
    printf("# model %s: %d tensors, %llu parameters (%.1f MB each), K = %d (%.2f GB of task models); generated in %.1f s\n",
           arch->name, lay->count, (unsigned long long)N, 4e-6 * N, K, 4e-9 * N * K, bu_now() - t0);
    fflush(stdout);

    /* correctness: the streamed TA sum equals the naive left-to-right sum, bit for bit */
    if (mu_sum_task_vectors(&ctx, NULL, delta, &e)) goto fail;
    rng r;
    rng_init(&r, 7);
    for (int i = 0; i < 4096; i++) {
        int l = (int)rng_below(&r, (uint32_t)lay->count);
        size_t off = lay->t[l].offset + rng_below(&r, (uint32_t)lay->t[l].numel);
        float v = 0;
        for (int k = 0; k < K; k++) v += ft[(size_t)k * total + off] - ctx.pre.params[off];
        if (memcmp(&v, &delta[off], sizeof v)) {
            tt_fail(&e, TT_EINTERNAL, "TA sum differs from the naive sum at %zu (%.9g vs %.9g)", off, delta[off], v);
            goto fail;
        }
    }
    for (int rep = -1; rep < mc->reps; rep++) {
        double tt[NK];
        tt[TRIAD] = triad_once(ta, tb, tc, tn);
        memset(delta, 0, total * sizeof(float));
        double t1 = bu_now();
        if (mu_sum_task_vectors(&ctx, NULL, delta, &e)) goto fail;
        tt[TA_SUM] = bu_now() - t1;
        t1 = bu_now();
        search_apply(&ctx, delta, 0.3);
        tt[TA_APPLY] = bu_now() - t1;
        t1 = bu_now();
        if (ties_merged_delta_src(&ctx, NULL, 20, true, delta, NULL, NULL, &e)) goto fail;
        tt[TIES] = bu_now() - t1;
        for (int k = 0; rep >= 0 && k < NK; k++) t[k][rep] = tt[k];
    }
    if (ta[tn / 2] != 7.0f) {
        tt_fail(&e, TT_EINTERNAL, "the triad gave a wrong result");
        goto fail;
    }
    double bytesN = 4.0 * (double)N;
    const double bytes[NK] = {3.0 * tn * sizeof(float), (K + 2) * bytesN, 3 * bytesN, ((2.0 + 1.0 / 32) * (K + 1) + 1) * bytesN};
    for (int k = 0; k < NK; k++) report(mc, names[k], k == TRIAD ? "-" : arch->name, k == TRIAD ? 0 : K, t[k], mc->reps, bytes[k]);
    rc = 0;
    goto done;
oom:
    tt_fail(&e, TT_ENOMEM, "out of memory");
fail:
    fprintf(stderr, "merge_bench: %s\n", e.msg);
done:
    ckpt_vit_free(&ctx.pre);
    ckpt_vit_free(&ctx.out);
    free(ft), free(delta), free(ta), free(tb), free(tc);
    for (int k = 0; k < NK; k++) free(t[k]);
    free(s.tasks);
    return rc;
}

static void usage(FILE *f) {
    fprintf(f, "usage: merge_bench [--threads N] [--reps R] [--tasks K] [--arch vitb32|vision8] [--triad-mib M] [--csv FILE]\n"
               "  --reps R       timed reps per kernel after one warm-up (default 5)\n"
               "  --tasks K      task models merged (default 8)\n"
               "  --arch A       vitb32 = CLIP ViT-B/32's size, 87.8 M parameters (default); vision8 (208 k)\n"
               "  --triad-mib M  MiB per triad array (default: 4x the last-level cache, at least 256)\n"
               "  --csv FILE     kernel,model,tasks,threads,median_s,min_s,bytes,gb_per_s,pct_triad\n");
}

int main(int argc, char **argv) {
    int threads = 0, reps = 5, K = 8;
    long triad_mib = 0;
    const char *csv_path = NULL, *arch_name = "vitb32";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!v) {
            usage(stderr);
            return 2;
        }
        if (!strcmp(a, "--threads")) threads = atoi(v);
        else if (!strcmp(a, "--reps")) reps = atoi(v);
        else if (!strcmp(a, "--tasks")) K = atoi(v);
        else if (!strcmp(a, "--triad-mib")) triad_mib = atol(v);
        else if (!strcmp(a, "--csv")) csv_path = v;
        else if (!strcmp(a, "--arch")) arch_name = v;
        else {
            fprintf(stderr, "merge_bench: bad argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
        i++;
    }
    if (threads < 0 || reps < 1 || K < 1 || K > MERGE_MAX_TASKS || triad_mib < 0) {
        fprintf(stderr, "merge_bench: --threads >= 1, --reps >= 1, --tasks in [1, %d], --triad-mib >= 1\n", MERGE_MAX_TASKS);
        return 2;
    }
    const mb_arch *arch = NULL;
    for (size_t k = 0; k < sizeof arches / sizeof arches[0]; k++)
        if (!strcmp(arches[k].name, arch_name)) arch = &arches[k];
    if (!arch) {
        fprintf(stderr, "merge_bench: --arch must be vitb32 or vision8\n");
        return 2;
    }
    if (threads > 0) omp_set_num_threads(threads);
    mb_ctx mc = {.threads = omp_get_max_threads(), .reps = reps};
    size_t llc = llc_bytes();
    if (!triad_mib) {
        triad_mib = (long)(4 * llc / (1024 * 1024));
        if (triad_mib < 256) triad_mib = 256;
    }
    bu_print_loadavg("at start");
    bu_print_machine(mc.threads);
    printf("# llc_bytes=%zu triad_array_mib=%ld\n", llc, triad_mib);
    if (csv_path) {
        mc.csv = fopen(csv_path, "w");
        if (!mc.csv) {
            perror(csv_path);
            return 2;
        }
        fprintf(mc.csv, "kernel,model,tasks,threads,median_s,min_s,bytes,gb_per_s,pct_triad\n");
    }
    printf("%-10s %-8s %2s %3s %10s %10s %9s %9s %8s\n", "kernel", "model", "K", "thr", "median_ms", "min_ms", "GB", "GB/s",
           "%triad");
    int rc = run(&mc, arch, K, (size_t)triad_mib);
    bu_print_loadavg("at end");
    if (mc.csv && fclose(mc.csv)) {
        perror(csv_path);
        rc = 1;
    }
    return rc ? 1 : 0;
}
