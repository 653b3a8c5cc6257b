/* bench_util.h — what every microbenchmark in bench/micro/ shares (header-only: each program
 * there is one .c file): a monotonic clock, medians, the machine description (CPU model, the
 * ISA oneDNN dispatches to, load average) and the measured peak f32 FLOP/s.
 *
 * Peak f32 FLOP/s = FMA units × vector lanes × 2 × clock, *measured*: 12 independent FMA chains
 * (enough to cover the FMA latency × units of current cores) on every OpenMP thread at once, once
 * with 256-bit and once with 512-bit vectors, best of a few trials. The peak is the larger of the
 * two: on Intel server cores (2 × 512-bit FMA units) the zmm loop is 2× the ymm one; on AMD Zen 4
 * (512-bit FMAs are double-pumped 256-bit units) both are equal. The clock is whatever the core
 * sustains under that load (turbo included), so the measured peak can exceed the nominal one
 * computed from /proc/cpuinfo's "cpu MHz".
 *
 * Each thread times its loop on its own CPU clock (CLOCK_THREAD_CPUTIME_ID), and the peak is the
 * sum of the threads' rates: what the cores do while they run. Timed on the wall clock, a trial
 * of ~30 ms in which another process holds one core for a while measures up to half the peak (the
 * trial lasts as long as its slowest thread): on a shared 2-vCPU VM the wall-clock figure ranged over
 * 25-73 GFLOP/s between consecutive runs, and an evaluation then printed "162% of peak". A busy
 * machine now makes a workload's % of peak low, never the peak. bu_check_pct enforces the rest:
 * a rate above the peak, still above it when the peak is measured again, is a benchmark bug (a FLOP
 * count or the peak), and stops the program.
 */
#ifndef TT_BENCH_UTIL_H
#define TT_BENCH_UTIL_H

#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <oneapi/dnnl/dnnl.h>

#include "core/dnn.h"
#include "core/rng.h"

static inline double bu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static inline int bu_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts t[0..n) and returns the median (n >= 1). t[0] is then the minimum. */
static inline double bu_median(double *t, int n) {
    qsort(t, (size_t)n, sizeof(double), bu_cmp_double);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

/* x[i] = base[i] + scale·r (base NULL: 0; base = x adds in place), r standard normal (normal) or
 * uniform in [-1, 1) (cheaper), in chunks of 65536 with their own seeded stream: parallel, and
 * the same for every thread count. (Synthetic checkpoints: task vectors of a given size and spread.) */
static inline void bu_fill_noise(float *x, const float *base, size_t n, float scale, uint64_t seed, bool normal) {
    const size_t chunk = 1 << 16;
    size_t nc = (n + chunk - 1) / chunk;
#pragma omp parallel for schedule(static)
    for (size_t c = 0; c < nc; c++) {
        rng r;
        rng_init(&r, seed * 0x9E3779B97F4A7C15ull + c);
        size_t end = (c + 1) * chunk < n ? (c + 1) * chunk : n;
        for (size_t i = c * chunk; i < end; i++) {
            float v = normal ? (float)rng_normal(&r) : (float)(rng_u64(&r) >> 40) * 0x1.0p-23f - 1.0f;
            x[i] = (base ? base[i] : 0.0f) + scale * v;
        }
    }
}

/* ---- peak FLOP/s ---- */

/* 12 chains × 8 floats × 2 = 192 FLOP per iteration. Distinct initial values keep gcc from merging
 * chains; x = x*a + b converges (|a| < 1): no overflow, no denormals. */
__attribute__((target("avx2,fma"), noinline, unused)) static float bu_fma256(long iters, float seed) {
    const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-6f);
    __m256 x0 = _mm256_set1_ps(seed + 0.01f), x1 = _mm256_set1_ps(seed + 0.02f);
    __m256 x2 = _mm256_set1_ps(seed + 0.03f), x3 = _mm256_set1_ps(seed + 0.04f);
    __m256 x4 = _mm256_set1_ps(seed + 0.05f), x5 = _mm256_set1_ps(seed + 0.06f);
    __m256 x6 = _mm256_set1_ps(seed + 0.07f), x7 = _mm256_set1_ps(seed + 0.08f);
    __m256 x8 = _mm256_set1_ps(seed + 0.09f), x9 = _mm256_set1_ps(seed + 0.10f);
    __m256 x10 = _mm256_set1_ps(seed + 0.11f), x11 = _mm256_set1_ps(seed + 0.12f);
    for (long i = 0; i < iters; i++) {
        x0 = _mm256_fmadd_ps(x0, a, b);
        x1 = _mm256_fmadd_ps(x1, a, b);
        x2 = _mm256_fmadd_ps(x2, a, b);
        x3 = _mm256_fmadd_ps(x3, a, b);
        x4 = _mm256_fmadd_ps(x4, a, b);
        x5 = _mm256_fmadd_ps(x5, a, b);
        x6 = _mm256_fmadd_ps(x6, a, b);
        x7 = _mm256_fmadd_ps(x7, a, b);
        x8 = _mm256_fmadd_ps(x8, a, b);
        x9 = _mm256_fmadd_ps(x9, a, b);
        x10 = _mm256_fmadd_ps(x10, a, b);
        x11 = _mm256_fmadd_ps(x11, a, b);
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(x0, x1), _mm256_add_ps(x2, x3)),
                             _mm256_add_ps(_mm256_add_ps(x4, x5), _mm256_add_ps(x6, x7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(x8, x9), _mm256_add_ps(x10, x11)));
    float out[8];
    _mm256_storeu_ps(out, s);
    return out[0] + out[7];
}

/* The same on 512-bit vectors: 384 FLOP per iteration. */
__attribute__((target("avx512f"), noinline, unused)) static float bu_fma512(long iters, float seed) {
    const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-6f);
    __m512 x[12];
    for (int j = 0; j < 12; j++) x[j] = _mm512_set1_ps(seed + 0.01f * (float)(j + 1));
    for (long i = 0; i < iters; i++) {
        x[0] = _mm512_fmadd_ps(x[0], a, b);
        x[1] = _mm512_fmadd_ps(x[1], a, b);
        x[2] = _mm512_fmadd_ps(x[2], a, b);
        x[3] = _mm512_fmadd_ps(x[3], a, b);
        x[4] = _mm512_fmadd_ps(x[4], a, b);
        x[5] = _mm512_fmadd_ps(x[5], a, b);
        x[6] = _mm512_fmadd_ps(x[6], a, b);
        x[7] = _mm512_fmadd_ps(x[7], a, b);
        x[8] = _mm512_fmadd_ps(x[8], a, b);
        x[9] = _mm512_fmadd_ps(x[9], a, b);
        x[10] = _mm512_fmadd_ps(x[10], a, b);
        x[11] = _mm512_fmadd_ps(x[11], a, b);
    }
    __m512 t = x[0];
    for (int j = 1; j < 12; j++) t = _mm512_add_ps(t, x[j]);
    return _mm512_reduce_add_ps(t);
}

/* bf16 dot products (AVX512_BF16 vdpbf16ps: 16 lanes x 2 products x 2 FLOP): 768 FLOP per iteration of
 * 12 chains, the peak of a bf16 matmul with f32 accumulation (oneDNN's avx512_core_bf16 brgemm). */
__attribute__((target("avx512f,avx512bf16"), noinline, unused)) static float bu_dpbf16(long iters, float seed) {
    const __m512bh a = (__m512bh)_mm512_set1_epi16(0x3f7f), b = (__m512bh)_mm512_set1_epi16(0x3500);
    __m512 x[12];
    for (int j = 0; j < 12; j++) x[j] = _mm512_set1_ps(seed + 0.01f * (float)(j + 1));
    for (long i = 0; i < iters; i++)
        for (int j = 0; j < 12; j++) x[j] = _mm512_dpbf16_ps(x[j], a, b);
    __m512 t = x[0];
    for (int j = 1; j < 12; j++) t = _mm512_add_ps(t, x[j]);
    return _mm512_reduce_add_ps(t);
}

static volatile float bu_sink;

static inline double bu_thread_cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#define BU_MAX_PEAK_THREADS 1024

/* Best of `trials` runs of the width-bit kernel (256 or 512; 16: the bf16 dot-product loop) on every
 * thread at once, GFLOP/s over all threads; NAN when the CPU lacks the ISA. ~3.8 GFLOP per thread per trial. A trial's rate is
 * the sum of its threads' rates on their CPU clocks, scaled down when there are more threads than
 * CPUs (they then share cores); *wall (optional) gets the best wall-clock rate, for comparison. */
static inline double bu_peak_gflops_width(int threads, int trials, int width, double *wall) {
    if (wall) *wall = NAN;
    if (width == 256 && (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma"))) return NAN;
    if (width == 512 && !__builtin_cpu_supports("avx512f")) return NAN;
    if (width == 16 && !dnn_bf16_native()) return NAN;
    if (threads > BU_MAX_PEAK_THREADS) threads = BU_MAX_PEAK_THREADS;
    const long iters = (width == 256 ? 20L : width == 512 ? 10L : 5L) * 1000 * 1000;
    const double flop = (double)iters * (width == 256 ? 192.0 : width == 512 ? 384.0 : 768.0);
    static double rate[BU_MAX_PEAK_THREADS];
    double best = 0, best_wall = 0, share = threads > omp_get_num_procs() ? (double)omp_get_num_procs() / threads : 1;
    for (int tr = 0; tr < trials; tr++) {
        double t0 = 0, t1 = 0;
        float acc = 0;
        int ran = 1;
#pragma omp parallel num_threads(threads) reduction(+ : acc)
        {
#pragma omp single
            ran = omp_get_num_threads();
#pragma omp master
            t0 = bu_now();
            float seed = (float)omp_get_thread_num() * 0.5f + (float)tr;
            double c0 = bu_thread_cpu_now();
            acc += width == 256 ? bu_fma256(iters, seed) : width == 512 ? bu_fma512(iters, seed) : bu_dpbf16(iters, seed);
            rate[omp_get_thread_num()] = flop / (bu_thread_cpu_now() - c0);
#pragma omp barrier
#pragma omp master
            t1 = bu_now();
        }
        bu_sink = acc;
        double g = 0;
        for (int i = 0; i < ran; i++) g += rate[i];
        g *= share / 1e9;
        if (g > best) best = g;
        double gw = ran * flop / (t1 - t0) / 1e9;
        if (gw > best_wall) best_wall = gw;
    }
    if (wall) *wall = best_wall;
    return best;
}

typedef struct bu_peak {
    double gflops;           /* max over the widths */
    double gflops256, gflops512;
    int width;               /* the width that gave it */
    double wall_gflops;      /* the same loops timed on the wall clock (lower when the cores are shared) */
} bu_peak;

static inline bu_peak bu_measure_peak(int threads, int trials) {
    double w256, w512;
    bu_peak p = {.gflops256 = bu_peak_gflops_width(threads, trials, 256, &w256),
                 .gflops512 = bu_peak_gflops_width(threads, trials, 512, &w512)};
    p.width = !isnan(p.gflops512) && !(p.gflops512 < p.gflops256) ? 512 : 256;
    p.gflops = p.width == 512 ? p.gflops512 : p.gflops256;
    p.wall_gflops = p.width == 512 ? w512 : w256;
    return p;
}

/* The guard on every "% of peak" a benchmark prints: a rate above the measured peak cannot happen,
 * so either the FLOP count of `what` or the peak is wrong. The peak is a few ~30 ms loops, the
 * workload seconds or minutes: on a VM whose host takes cycles from it for a while (thread CPU time
 * counts them: a Zen 4 VM measured 192 GFLOP/s before a step and 235 before the next), the loops can
 * catch a slow moment the workload averages out. So a rate above the peak first re-measures it
 * (width 0: the FMA peak, 16: the bf16 dot-product peak; best of 10 trials) and *peak_gflops takes
 * the larger, with one line saying so; a rate still above it prints one line on stderr naming it a
 * benchmark bug, and exits with status 70 (the run stops: run_all.sh runs under set -e). */
static inline void bu_check_pct(const char *prog, const char *what, double gflops, double *peak_gflops, int threads,
                                int width) {
    if (!(gflops > *peak_gflops)) return;
    double again = width == 16 ? bu_peak_gflops_width(threads, 10, 16, NULL) : bu_measure_peak(threads, 10).gflops;
    if (again > *peak_gflops) {
        printf("# peak re-measured: %.1f GFLOP/s (the first measurement, %.1f, was below %s at %.1f: a slow moment)\n",
               again, *peak_gflops, what, gflops);
        *peak_gflops = again;
    }
    double pct = 100.0 * gflops / *peak_gflops;
    if (!(pct > 100.0)) return;
    fflush(stdout);
    fprintf(stderr,
            "%s: benchmark bug: %s runs at %.1f GFLOP/s = %.0f%% of the measured peak (%.1f GFLOP/s): its FLOP "
            "count or the peak is wrong\n",
            prog, what, gflops, pct, *peak_gflops);
    exit(70);
}

/* ---- the machine ---- */

/* "model name" and "cpu MHz" of the first processor in /proc/cpuinfo (mhz 0 if absent). */
static inline double bu_cpuinfo(char *model, size_t model_len) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    double mhz = 0;
    snprintf(model, model_len, "unknown");
    if (!f) return 0;
    char line[512];
    bool have_model = false;
    while (fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (!colon) continue;
        if (mhz == 0 && strncmp(line, "cpu MHz", 7) == 0) mhz = atof(colon + 1);
        if (!have_model && strncmp(line, "model name", 10) == 0) {
            char *v = colon + 1;
            while (*v == ' ' || *v == '\t') v++;
            v[strcspn(v, "\n")] = 0;
            snprintf(model, model_len, "%s", v);
            have_model = true;
        }
    }
    fclose(f);
    return mhz;
}

/* The ISA oneDNN dispatches its JIT kernels to (dnnl_get_effective_cpu_isa). */
static inline const char *bu_dnnl_isa(void) {
    switch (dnnl_get_effective_cpu_isa()) {
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    default: return "other";
    }
}

static inline void bu_print_loadavg(const char *when) {
    FILE *f = fopen("/proc/loadavg", "r");
    char buf[128] = "?";
    if (f) {
        if (!fgets(buf, sizeof buf, f)) snprintf(buf, sizeof buf, "?");
        fclose(f);
    }
    buf[strcspn(buf, "\n")] = 0;
    printf("# load average %s: %s\n", when, buf);
}

/* One line with everything that says which machine a number came from (also as "# key=value"). */
static inline void bu_print_machine(int threads) {
    char model[256];
    double mhz = bu_cpuinfo(model, sizeof model);
    const dnnl_version_t *v = dnnl_version();
    printf("cpu: %s, %d online CPUs, cpu MHz %.1f; threads %d; oneDNN %d.%d.%d isa %s\n", model, omp_get_num_procs(),
           mhz, threads, v->major, v->minor, v->patch, bu_dnnl_isa());
    printf("# cpu_model=%s\n# dnnl_isa=%s\n", model, bu_dnnl_isa());
}

#endif
