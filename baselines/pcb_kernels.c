/* pcb_kernels.c — PCB-Merging's element-wise steps of kernels.h (the method and its definition:
 * pcb.c), shared by the suite's pcb, which walks the model a tensor and a task at a time, and the
 * any-model engine (anymerge.c), which walks it a block at a time with every task's row at hand:
 * the same float operations in the same order either way. */
#include <math.h>

#include "baselines/kernels.h"

static float minmax(float v, float lo, float hi) { return hi > lo ? (v - lo) / (hi - lo) : 0.0f; }

static float sgn(float x) { return (float)((x > 0) - (x < 0)); }

static float clamp_abs(float x, const pcb_row *r) {
    float a = fabsf(x);
    return a < r->lo ? r->lo : a > r->hi ? r->hi : a;
}

void pcb_sum_n_add(float *sum_n, const float *x, const pcb_row *r, size_t n) {
    for (size_t i = 0; i < n; i++) sum_n[i] += sgn(x[i]) * minmax(clamp_abs(x[i], r), r->lo, r->hi);
}

/* intra ⊙ inter of one entry: x = τ, sum_n = Σ_j Ñ_j there; float64, rounded to float32 (the
 * official precision) so that the selection and the weighting see the same numbers */
static float balance(float x, float sum_n, const pcb_row *r, int K) {
    float mm = minmax(clamp_abs(x, r), r->lo, r->hi);
    return (float)(exp((double)K * mm * mm) * tanh((double)x * sum_n));
}

float pcb_balance(float *b, const float *x, const float *sum_n, const pcb_row *r, int K, size_t n) {
    float top = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        b[i] = balance(x[i], sum_n[i], r, K);
        if (b[i] > top) top = b[i];
    }
    return top;
}

void pcb_accumulate(double *num, double *den, const float *x, const float *sum_n, const pcb_row *r, int K, float lam,
                    size_t n) {
    for (size_t i = 0; i < n; i++) {
        float b = balance(x[i], sum_n[i], r, K);
        float sc = minmax(b < r->blo ? r->blo : b, r->blo, r->bhi);
        num[i] += (double)(sgn(x[i]) * clamp_abs(x[i], r) * lam) * sc;
        den[i] += sc;
    }
}

void pcb_finish(float *out, const double *num, const double *den, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = (float)(num[i] / (den[i] > 1e-12 ? den[i] : 1e-12));
}

bool pcb_ranks(uint64_t d, double clamp_ratio, double keep_ratio, uint64_t *r_lo, uint64_t *r_hi, uint64_t *r_b) {
    if (d < 2 || !(clamp_ratio >= 0) || !(keep_ratio > 0 && keep_ratio <= 1)) return false;
    /* Python: int(d * min_ratio) and int(d * (1 − max_ratio) − 1) */
    double hi = (double)d * (1.0 - clamp_ratio) - 1.0;
    *r_lo = (uint64_t)((double)d * clamp_ratio);
    if (!(hi >= (double)*r_lo)) return false;
    *r_hi = (uint64_t)hi;
    *r_b = (uint64_t)((double)d * (1.0 - keep_ratio));
    return true;
}
