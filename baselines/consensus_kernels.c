/* consensus_kernels.c — the TALL-mask and Consensus kernels of kernels.h (the method:
 * consensus.c), shared by the suite's merges and the any-model engine (anymerge.c). */
#include <math.h>
#include <stdint.h>

#include "baselines/kernels.h"

static inline int tall_bit(float tv, float mtl, float lam) { return fabsf(tv) > lam * fabsf(mtl - tv); }

size_t tall_mask_add_seq(uint8_t *count, const float *tv, const float *mtl, size_t n, float lam) {
    size_t on = 0;
    for (size_t i = 0; i < n; i++) {
        int m = tall_bit(tv[i], mtl[i], lam);
        count[i] += (uint8_t)m;
        on += (size_t)m;
    }
    return on;
}

size_t tall_mask_add(uint8_t *count, const float *tv, const float *mtl, size_t n, float lam) {
    size_t on = 0;
#pragma omp parallel for schedule(static) reduction(+ : on) if (n > KERN_PAR_MIN)
    for (size_t lo = 0; lo < n; lo += KERN_BLOCK)
        on += tall_mask_add_seq(count + lo, tv + lo, mtl + lo, n - lo < KERN_BLOCK ? n - lo : KERN_BLOCK, lam);
    return on;
}

size_t tall_apply(float *out, const float *pre, const float *tv, const float *mtl, size_t n, float lam) {
    size_t on = 0;
#pragma omp parallel for schedule(static) reduction(+ : on) if (n > KERN_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        int m = tall_bit(tv[i], mtl[i], lam);
        out[i] = m ? pre[i] + mtl[i] : pre[i];
        on += (size_t)m;
    }
    return on;
}

size_t consensus_apply_seq(float *mtl, const uint8_t *count, size_t n, int k) {
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        if ((int)count[i] < k) mtl[i] = 0;
        else kept++;
    }
    return kept;
}

size_t consensus_apply(float *mtl, const uint8_t *count, size_t n, int k) {
    size_t kept = 0;
#pragma omp parallel for schedule(static) reduction(+ : kept) if (n > KERN_PAR_MIN)
    for (size_t lo = 0; lo < n; lo += KERN_BLOCK)
        kept += consensus_apply_seq(mtl + lo, count + lo, n - lo < KERN_BLOCK ? n - lo : KERN_BLOCK, k);
    return kept;
}

