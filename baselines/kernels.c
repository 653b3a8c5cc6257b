/* kernels.c — the generic helpers of kernels.h (the method kernels live with their methods). */
#include "baselines/kernels.h"

#include <math.h>
#include <string.h>

#include "core/cpu.h"

void kern_axpy(float *y, float a, const float *x, size_t n) {
#pragma omp parallel for schedule(static) if (n > KERN_PAR_MIN)
    for (size_t i = 0; i < n; i++) y[i] += a * x[i];
}

/* y[0..m) += x_0 + x_1 + ... per element, the K tasks in registers 16 entries at a time (AVX-512,
 * chosen at run time: core/cpu.h): y is loaded once and stored once instead of streaming through L1
 * K times, and the floats are the per-task loops' in the same order. The last m % 16 entries go
 * through the per-task loops. */
#ifdef CPU_V16
CPU_V16_TARGET
static void add_block_v16(float *restrict y, const float *const *a, const float *b, int K, size_t m) {
    size_t m16 = m - m % 16;
    for (size_t j = 0; j < m16; j += 16) {
        __m512 acc = _mm512_loadu_ps(y + j);
        if (b) {
            __m512 bj = _mm512_loadu_ps(b + j);
            for (int k = 0; k < K; k++) acc = _mm512_add_ps(acc, _mm512_sub_ps(_mm512_loadu_ps(a[k] + j), bj));
        } else {
            for (int k = 0; k < K; k++) acc = _mm512_add_ps(acc, _mm512_loadu_ps(a[k] + j));
        }
        _mm512_storeu_ps(y + j, acc);
    }
    for (int k = 0; k < K; k++)
        for (size_t i = m16; i < m; i++) y[i] += b ? a[k][i] - b[i] : a[k][i];
}
#endif

/* The same 8 entries at a time with GCC vector extensions (AVX2 at x86-64-v3, two SSE halves at
 * v2): the baseline kernel. */
typedef float kern_v8f __attribute__((vector_size(32)));
static void add_block_v8(float *restrict y, const float *const *a, const float *b, int K, size_t m) {
    size_t m8 = m - m % 8;
    for (size_t j = 0; j < m8; j += 8) {
        kern_v8f acc, x, bj;
        memcpy(&acc, y + j, sizeof acc);
        if (b) {
            memcpy(&bj, b + j, sizeof bj);
            for (int k = 0; k < K; k++) {
                memcpy(&x, a[k] + j, sizeof x);
                acc = acc + (x - bj);
            }
        } else {
            for (int k = 0; k < K; k++) {
                memcpy(&x, a[k] + j, sizeof x);
                acc = acc + x;
            }
        }
        memcpy(y + j, &acc, sizeof acc);
    }
    for (int k = 0; k < K; k++)
        for (size_t i = m8; i < m; i++) y[i] += b ? a[k][i] - b[i] : a[k][i];
}

/* Block blk (KERN_BLOCK elements) of kern_add_task_vectors (of kern_sum_task_vectors: zeroed first,
 * in L1). */
static void add_blocks(float *acc, const float *const *a, const float *b, int K, size_t n, size_t blk, bool wide,
                       bool zero_first) {
    size_t lo = blk * KERN_BLOCK, hi = lo + KERN_BLOCK < n ? lo + KERN_BLOCK : n;
    float *restrict y = acc + lo;
    if (zero_first) memset(y, 0, (hi - lo) * sizeof *y);
    const float *ab[KERN_MAX_K];
    for (int k = 0; k < K; k++) ab[k] = a[k] + lo;
#ifdef CPU_V16
    if (wide) {
        add_block_v16(y, ab, b ? b + lo : NULL, K, hi - lo);
        return;
    }
#else
    (void)wide;
#endif
    add_block_v8(y, ab, b ? b + lo : NULL, K, hi - lo);
}

void kern_add_task_vectors(float *acc, const float *const *a, const float *b, int K, size_t n) {
    size_t nb = (n + KERN_BLOCK - 1) / KERN_BLOCK;
    const bool wide = cpu_isa_level() == CPU_ISA_AVX512;
#pragma omp parallel for schedule(static) if (n * (size_t)K > KERN_PAR_MIN)
    for (size_t blk = 0; blk < nb; blk++) add_blocks(acc, a, b, K, n, blk, wide, false);
}

void kern_sum_task_vectors(float *out, const float *const *a, const float *b, int K, size_t n) {
    size_t nb = (n + KERN_BLOCK - 1) / KERN_BLOCK;
    const bool wide = cpu_isa_level() == CPU_ISA_AVX512;
#pragma omp parallel for schedule(static) if (n * (size_t)K > KERN_PAR_MIN)
    for (size_t blk = 0; blk < nb; blk++) add_blocks(out, a, b, K, n, blk, wide, true);
}

void kern_add_task_vectors_seq(float *acc, const float *const *a, const float *b, int K, size_t n) {
    const bool wide = cpu_isa_level() == CPU_ISA_AVX512;
    for (size_t blk = 0; blk < (n + KERN_BLOCK - 1) / KERN_BLOCK; blk++) add_blocks(acc, a, b, K, n, blk, wide, false);
}

size_t kern_stat_chunk_start(size_t n, int c) { return n * (size_t)c / KERN_STAT_CHUNKS; }

void kern_abs_cos_add(double *acc, const float *a, const float *b, size_t n) {
    double sa = acc[0], sb = acc[1], sab = acc[2];
    for (size_t i = 0; i < n; i++) {
        sa += (double)a[i] * a[i];
        sb += (double)b[i] * b[i];
        sab += (double)a[i] * b[i];
    }
    acc[0] = sa, acc[1] = sb, acc[2] = sab;
}

double kern_abs_cos_finish(const double *acc) {
    double sa = 0, sb = 0, sab = 0;
    for (int c = 0; c < KERN_STAT_CHUNKS; c++) sa += acc[3 * c], sb += acc[3 * c + 1], sab += acc[3 * c + 2];
    if (sa == 0 || sb == 0) return 0;
    double c = fabs(sab) / (sqrt(sa) * sqrt(sb));
    return c > 1 ? 1 : c;
}

double kern_abs_cos(const float *a, const float *b, size_t n) {
    double acc[3 * KERN_STAT_CHUNKS] = {0};
#pragma omp parallel for schedule(static) if (n > KERN_PAR_MIN)
    for (int c = 0; c < KERN_STAT_CHUNKS; c++) {
        size_t lo = kern_stat_chunk_start(n, c);
        kern_abs_cos_add(acc + 3 * c, a + lo, b + lo, kern_stat_chunk_start(n, c + 1) - lo);
    }
    return kern_abs_cos_finish(acc);
}


uint64_t kern_hash_prefix(uint64_t seed, uint64_t a, uint64_t b) {
    return kern_mix64(kern_mix64(kern_mix64(seed) ^ a) ^ b);
}

double kern_hash_u01(uint64_t seed, uint64_t a, uint64_t b, uint64_t c) {
    return kern_hash_u01_at(kern_hash_prefix(seed, a, b), c);
}

uint64_t kern_name_key(const char *name) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) h = (h ^ *p) * 0x100000001b3ull;
    return h;
}
