/* kernels.c — the generic helpers of kernels.h (the method kernels live with their methods). */
#include "baselines/kernels.h"

#include <math.h>

void kern_axpy(float *y, float a, const float *x, size_t n) {
#pragma omp parallel for schedule(static) if (n > KERN_PAR_MIN)
    for (size_t i = 0; i < n; i++) y[i] += a * x[i];
}

void kern_add_task_vectors(float *acc, const float *const *a, const float *b, int K, size_t n) {
    size_t nb = (n + KERN_BLOCK - 1) / KERN_BLOCK;
#pragma omp parallel for schedule(static) if (n * (size_t)K > KERN_PAR_MIN)
    for (size_t blk = 0; blk < nb; blk++) {
        size_t lo = blk * KERN_BLOCK, hi = lo + KERN_BLOCK < n ? lo + KERN_BLOCK : n;
        float *restrict y = acc + lo;
        for (int k = 0; k < K; k++) {
            const float *restrict ak = a[k] + lo;
            if (b) {
                const float *restrict bk = b + lo;
                for (size_t i = 0; i < hi - lo; i++) y[i] += ak[i] - bk[i];
            } else {
                for (size_t i = 0; i < hi - lo; i++) y[i] += ak[i];
            }
        }
    }
}

#define COS_CHUNKS 64 /* fixed, so that the summation order does not depend on the threads */

double kern_abs_cos(const float *a, const float *b, size_t n) {
    double aa[COS_CHUNKS], bb[COS_CHUNKS], ab[COS_CHUNKS];
#pragma omp parallel for schedule(static) if (n > KERN_PAR_MIN)
    for (int c = 0; c < COS_CHUNKS; c++) {
        double sa = 0, sb = 0, sab = 0;
        for (size_t i = n * (size_t)c / COS_CHUNKS; i < n * (size_t)(c + 1) / COS_CHUNKS; i++) {
            sa += (double)a[i] * a[i];
            sb += (double)b[i] * b[i];
            sab += (double)a[i] * b[i];
        }
        aa[c] = sa, bb[c] = sb, ab[c] = sab;
    }
    double sa = 0, sb = 0, sab = 0;
    for (int c = 0; c < COS_CHUNKS; c++) sa += aa[c], sb += bb[c], sab += ab[c];
    if (sa == 0 || sb == 0) return 0;
    double c = fabs(sab) / (sqrt(sa) * sqrt(sb));
    return c > 1 ? 1 : c;
}

static inline uint64_t mix64(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double kern_hash_u01(uint64_t seed, uint64_t a, uint64_t b, uint64_t c) {
    uint64_t h = mix64(mix64(mix64(mix64(seed) ^ a) ^ b) ^ c);
    return (double)(h >> 11) * 0x1.0p-53;
}
