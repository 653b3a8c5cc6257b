/* tatr_kernels.c — TATR's kernels of kernels.h (the method: tatr.c): the conflict Ω, its
 * threshold's rank and the mask, shared by the suite's tatr and the any-model engine (anymerge.c). */
#include <math.h>

#include "baselines/kernels.h"

void tatr_omega_add(float *omega, const float *g, const float *abs_sum, const float *tv, size_t n) {
#pragma omp parallel for schedule(static) if (n > KERN_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float a = fabsf(tv[i]);
        omega[i] += (g ? g[i] : a) * (abs_sum[i] - a);
    }
}

bool tatr_threshold_rank(uint64_t d, double q, uint64_t *rank) {
    uint64_t r = (uint64_t)((double)d * ((100.0 - q) / 100.0));
    if (r >= d) return false;
    *rank = r;
    return true;
}

size_t tatr_mask(float *x, const float *omega, size_t n, float thr) {
    size_t kept = 0;
#pragma omp parallel for schedule(static) reduction(+ : kept) if (n > KERN_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        if (omega[i] < thr) kept++;
        else x[i] = 0;
    }
    return kept;
}
