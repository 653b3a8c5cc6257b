/* test_baselines.c — known answers for the baseline merges' kernels (baselines/kernels.h):
 * TIES (trim with ties at the threshold, sign conflicts, majority sign, all-zero columns,
 * dis-mean/dis-sum), TALL/Consensus masks, DARE (exactness, rate, unbiasedness, determinism
 * across seeds and thread counts), TATR conflict scores and mask, LATA layer weights, and the
 * TA-style apply, and the grafting kernels (mask γ, rounding, score gradient and step, exact top-k,
 * the averaging stitch). Every expected value below is worked out by hand in the comments. */
#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "baselines/kernels.h"
#include "baselines/search.h"
#include "baselines/select.h"
#include "core/cpu.h"
#include "tests/testutil.h"

static void assert_close(const char *what, const float *got, const float *want, size_t n, double tol) {
    for (size_t i = 0; i < n; i++)
        cr_assert(fabs((double)got[i] - (double)want[i]) <= tol, "%s[%zu] = %.7g, expected %.7g", what, i,
                  (double)got[i], (double)want[i]);
}

/* ---- TIES ---- */

/* 3 tasks x 8 values, thresholds {0.3, 0.3, 0.2}:
 *            c0    c1    c2    c3   c4    c5    c6    c7
 *   tv0     .5   -.2    .1    0    .3   -.4   .05    .5      trim(.3): .5  0   0  0  .3(tie) -.4  0  .5
 *   tv1    -.3    .6    .1    0   -.3    .2    0    -.5      trim(.3): -.3(tie) .6 0 0 -.3(tie) 0 0 -.5
 *   tv2     .4    .1   -.7    0    .2   -.1    0     0       trim(.2): .4  0  -.7 0  .2(tie)  0  0  0
 *   sum     .6    .6   -.7    0    .2   -.4    0     0
 *   sign    +     +     -     0    +     -     0     0  -> balance +1+1-1+1-1 = +1: majority +
 *   elected +     +     -     +    +     -     +     +
 * disjoint: c0 keeps .5,.4 (tv1's -.3 conflicts), c4 keeps .3,.2 (drops -.3), c7 (exact cancel,
 * elected by majority) keeps .5; c3 (all zero) and c6 (trimmed) stay 0.
 *   dis-mean: .45 .6 -.7 0 .25 -.4 0 .5      dis-sum: .9 .6 -.7 0 .5 -.4 0 .5 */
static const float ties_tv[3][8] = {{0.5f, -0.2f, 0.1f, 0.0f, 0.3f, -0.4f, 0.05f, 0.5f},
                                    {-0.3f, 0.6f, 0.1f, 0.0f, -0.3f, 0.2f, 0.0f, -0.5f},
                                    {0.4f, 0.1f, -0.7f, 0.0f, 0.2f, -0.1f, 0.0f, 0.0f}};
static const float ties_thr[3] = {0.3f, 0.3f, 0.2f};

Test(ties, three_tasks_known_answer_mean) {
    const float *tv[3] = {ties_tv[0], ties_tv[1], ties_tv[2]};
    float out[8];
    cr_assert_eq(ties_merge_arrays(tv, 3, 8, ties_thr, true, out), 0);
    const float want[8] = {0.45f, 0.6f, -0.7f, 0.0f, 0.25f, -0.4f, 0.0f, 0.5f};
    assert_close("dis-mean", out, want, 8, 1e-6);
}

Test(ties, three_tasks_known_answer_sum) {
    const float *tv[3] = {ties_tv[0], ties_tv[1], ties_tv[2]};
    float out[8];
    cr_assert_eq(ties_merge_arrays(tv, 3, 8, ties_thr, false, out), 0);
    const float want[8] = {0.9f, 0.6f, -0.7f, 0.0f, 0.5f, -0.4f, 0.0f, 0.5f};
    assert_close("dis-sum", out, want, 8, 1e-6);
}

/* Flip the majority: negate every column but c7, so the balance is -1 and the exactly-cancelling
 * c7 must now keep tv1's -.5 instead of tv0's .5. */
Test(ties, majority_sign_decides_cancelled_entries) {
    float neg[3][8];
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < 8; i++) neg[k][i] = i == 7 ? ties_tv[k][i] : -ties_tv[k][i];
    const float *tv[3] = {neg[0], neg[1], neg[2]};
    float out[8];
    cr_assert_eq(ties_merge_arrays(tv, 3, 8, ties_thr, true, out), 0);
    const float want[8] = {-0.45f, -0.6f, 0.7f, 0.0f, -0.25f, 0.4f, 0.0f, -0.5f};
    assert_close("majority -", out, want, 8, 1e-6);
}

/* The pieces the streaming merge uses agree with the hand trace above. */
Test(ties, pieces_trim_count_and_sign) {
    float sum[8] = {0};
    size_t kept = 0;
    for (int k = 0; k < 3; k++) kept += ties_trim_add(sum, ties_tv[k], 8, ties_thr[k]);
    cr_assert_eq(kept, 4 + 4 + 3); /* survivors: tv0 .5 .3 -.4 .5; tv1 -.3 .6 -.3 -.5; tv2 .4 -.7 .2 */
    cr_assert_eq(ties_sign_balance(sum, 8), 1);
    int8_t sign[8];
    ties_elect(sign, sum, 8, 1);
    const int8_t want[8] = {1, 1, -1, 1, 1, -1, 1, 1};
    cr_assert_arr_eq(sign, want, 8);
}

/* topk = 37.5% of 8 keeps int(3) -> kthvalue(|tv0|, 5): sorted |tv0| = 0 .05 .1 .2 .3 .4 .5 .5 -> 0.3,
 * which ties with tv0[4] (kept). */
Test(ties, threshold_from_topk) {
    cr_assert_eq(ties_threshold_array(ties_tv[0], 8, 37.5), 0.3f);
    cr_assert_eq(ties_threshold_array(ties_tv[0], 8, 100), 0.0f);
    cr_assert_eq(ties_threshold_array(ties_tv[0], 8, 0), 0.5f); /* ties of the max */
}

/* k = 100 and one task: the merge is that task vector (mean and sum). */
Test(ties, keep_all_single_task_is_identity) {
    const size_t n = 1000;
    float *x = malloc(n * sizeof(float)), *out = malloc(n * sizeof(float));
    tu_fill_uniform(x, n, 3, -1.0f, 1.0f);
    x[10] = 0.0f;
    float thr = ties_threshold_array(x, n, 100);
    cr_assert_eq(thr, 0.0f);
    const float *tv[1] = {x};
    for (int mean = 0; mean < 2; mean++) {
        cr_assert_eq(ties_merge_arrays(tv, 1, n, &thr, mean, out), 0);
        cr_assert_arr_eq(out, x, n * sizeof(float));
    }
    free(x);
    free(out);
}

/* ---- K-way kernels: one pass over K task vectors equals K per-task passes, bit for bit ---- */

/* K task models a[k] = b + tie-heavy task vectors (exact zeros, values on the threshold, exact
 * cancellations across tasks), n not a multiple of the block size. */
enum { KW_K = 8 }; /* K = 8 has its own inlined AVX-512 kernel */
static const size_t kw_n = 40 * KERN_BLOCK + 17; /* x K above KERN_PAR_MIN: the parallel path */
static float *kw_a[KW_K], *kw_b, *kw_tv[KW_K];
static const float kw_thr[KW_K] = {0.25f, 0.5f, 0.0f, 0.125f, 0.75f, 0.375f, 0.25f, 0.625f};

static int cmp_u64(const void *x, const void *y) {
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return (a > b) - (a < b);
}

/* The kernels with an AVX-512 version run under each ISA level in turn (core/cpu.h; on a CPU
 * without AVX-512 both turns take the baseline kernels): each must match the per-task reference. */
static const cpu_isa isa_levels[2] = {CPU_ISA_AVX512, CPU_ISA_BASE};
static void isa_restore(void) { cpu_isa_cap(CPU_ISA_AVX512); }

static void kw_init(void) {
    kw_b = malloc(kw_n * sizeof(float));
    tu_fill_uniform(kw_b, kw_n, 40, -2.0f, 2.0f);
    for (int k = 0; k < KW_K; k++) {
        kw_a[k] = malloc(kw_n * sizeof(float));
        kw_tv[k] = malloc(kw_n * sizeof(float));
        tu_fill_uniform(kw_tv[k], kw_n, 41 + (uint64_t)k, -1.0f, 1.0f);
        for (size_t i = 0; i < kw_n; i++) {
            float t = roundf(kw_tv[k][i] * 8) / 8; /* multiples of 1/8: ties with every threshold */
            if (i % 11 == (size_t)k) t = 0;
            if (i % 13 == 0) t = k % 2 ? -0.5f : 0.5f; /* cancels for even K, majority decides */
            kw_a[k][i] = kw_b[i] + t;
            kw_tv[k][i] = kw_a[k][i] - kw_b[i]; /* the float task vector the kernels form */
        }
    }
}

static void kw_fini(void) {
    for (int k = 0; k < KW_K; k++) free(kw_a[k]), free(kw_tv[k]);
    free(kw_b);
}

Test(kway, add_task_vectors_equals_per_task_adds, .init = kw_init, .fini = kw_fini) {
    float *want = malloc(kw_n * sizeof(float)), *got = malloc(kw_n * sizeof(float)), *got0 = malloc(kw_n * sizeof(float));
    for (size_t i = 0; i < kw_n; i++) want[i] = got[i] = got0[i] = 0.25f * (float)(i % 7); /* += onto a start */
    for (int k = 0; k < KW_K; k++)
        for (size_t i = 0; i < kw_n; i++) want[i] += kw_a[k][i] - kw_b[i];
    for (int li = 0; li < 2; li++) {
        cpu_isa isa = isa_levels[li];
        cpu_isa_cap(isa);
        for (size_t i = 0; i < kw_n; i++) got[i] = got0[i] = 0.25f * (float)(i % 7);
        kern_add_task_vectors(got, (const float *const *)kw_a, kw_b, KW_K, kw_n); /* formed on the fly */
        kern_add_task_vectors(got0, (const float *const *)kw_tv, NULL, KW_K, kw_n); /* given */
        cr_assert_arr_eq(got, want, kw_n * sizeof(float), "%s", cpu_isa_name(isa));
        cr_assert_arr_eq(got0, want, kw_n * sizeof(float), "%s", cpu_isa_name(isa));
    }
    isa_restore();
    free(want), free(got), free(got0);
}

/* out = 0 + Σ: the floats of zeroing, then adding (garbage in out beforehand; where every task's
 * entry is −0 the sum is +0, which starting from x_0 instead of from 0 would not give). */
Test(kway, sum_task_vectors_equals_zero_then_add, .init = kw_init, .fini = kw_fini) {
    float *want = calloc(kw_n, sizeof(float)), *got = malloc(kw_n * sizeof(float));
    float *saved = malloc((size_t)KW_K * kw_n * sizeof(float));
    for (int k = 0; k < KW_K; k++) {
        memcpy(saved + (size_t)k * kw_n, kw_tv[k], kw_n * sizeof(float));
        for (size_t i = 0; i < kw_n; i += 35) kw_tv[k][i] = -0.0f;
    }
    kern_add_task_vectors(want, (const float *const *)kw_tv, NULL, KW_K, kw_n);
    for (int li = 0; li < 2; li++) {
        cpu_isa_cap(isa_levels[li]);
        for (size_t i = 0; i < kw_n; i++) got[i] = NAN;
        kern_sum_task_vectors(got, (const float *const *)kw_tv, NULL, KW_K, kw_n);
        cr_assert_arr_eq(got, want, kw_n * sizeof(float), "%s", cpu_isa_name(isa_levels[li]));
        cr_assert(!signbit(got[0]) && got[0] == 0, "a -0 sum must come out +0");
    }
    isa_restore();
    for (int k = 0; k < KW_K; k++) memcpy(kw_tv[k], saved + (size_t)k * kw_n, kw_n * sizeof(float));
    free(want), free(got), free(saved);
}

Test(kway, ties_passes_equal_per_task_kernels, .init = kw_init, .fini = kw_fini) {
    for (int withb = 0; withb < 2; withb++)
        for (int mean = 0; mean < 2; mean++) {
            /* reference: the per-task kernels */
            float *want = calloc(kw_n, sizeof(float)), *got = malloc(kw_n * sizeof(float));
            int8_t *sign = malloc(kw_n);
            uint8_t *cnt = calloc(kw_n, 1);
            size_t kept_want[KW_K];
            for (int k = 0; k < KW_K; k++) kept_want[k] = ties_trim_add(want, kw_tv[k], kw_n, kw_thr[k]);
            int64_t bal_want = ties_sign_balance(want, kw_n);
            /* the K-way trim + sum */
            uint64_t kept[KW_K] = {0};
            const float *const *a = (const float *const *)(withb ? kw_a : kw_tv);
            int64_t bal = ties_trim_sum_k(got, a, withb ? kw_b : NULL, KW_K, kw_n, kw_thr, kept);
            cr_assert_arr_eq(got, want, kw_n * sizeof(float), "trimmed sum (b=%d)", withb);
            cr_assert_eq(bal, bal_want);
            for (int k = 0; k < KW_K; k++) cr_assert_eq(kept[k], kept_want[k], "kept[%d]", k);
            /* elect + disjoint: every majority, so that the sum = 0 columns take each branch */
            for (int maj = -1; maj <= 1; maj++) {
                float *ref = calloc(kw_n, sizeof(float)), *out = malloc(kw_n * sizeof(float));
                memcpy(out, got, kw_n * sizeof(float));
                ties_elect(sign, want, kw_n, (int8_t)maj);
                memset(cnt, 0, kw_n);
                for (int k = 0; k < KW_K; k++) ties_disjoint_add(ref, cnt, sign, kw_tv[k], kw_n, kw_thr[k]);
                ties_disjoint_finish(ref, cnt, kw_n, mean);
                ties_disjoint_k(out, a, withb ? kw_b : NULL, KW_K, kw_n, kw_thr, (int8_t)maj, mean);
                cr_assert_arr_eq(out, ref, kw_n * sizeof(float), "disjoint (b=%d mean=%d majority=%d)", withb, mean, maj);
                free(ref), free(out);
            }
            free(want), free(got), free(sign), free(cnt);
        }
}

/* The listed entries recomputed one by one with a positive majority, as the merge engine does
 * (anymerge.c fix_undecided): the two passes on one element. */
static void patch_undecided(float *out, const float *const *a, const float *b, int K, bool mean, const uint64_t *und,
                            size_t n_und, uint64_t base) {
    for (size_t t = 0; t < n_und; t++) {
        size_t j = (size_t)(und[t] - base);
        const float *aj[KW_K];
        for (int k = 0; k < K; k++) aj[k] = a[k] + j;
        uint64_t kept[KW_K] = {0};
        ties_trim_sum_k(out + j, aj, b ? b + j : NULL, K, 1, kw_thr, kept);
        ties_disjoint_k(out + j, aj, b ? b + j : NULL, K, 1, kw_thr, 1, mean);
    }
}

/* The fused pass (+ the patch for a positive majority) equals trim + sum then elect + disjoint,
 * bit for bit, for every majority, with and without θ0, dis-mean and dis-sum; with 4 tasks the
 * i % 13 == 0 columns cancel exactly (±0.5), so entries await the majority and the patch runs. */
Test(kway, ties_fused_pass_equals_two_passes, .init = kw_init, .fini = kw_fini) {
    const size_t cap = kw_n;
    uint64_t *und = malloc(cap * sizeof *und);
    for (int li = 0; li < 2; li++) {
        for (int K = 4; K <= KW_K; K++)
            for (int withb = 0; withb < 2; withb++)
                for (int mean = 0; mean < 2; mean++) {
                    cpu_isa isa = isa_levels[li];
                    cpu_isa_cap(isa);
                    const float *const *a = (const float *const *)(withb ? kw_a : kw_tv);
                    const float *b = withb ? kw_b : NULL;
                    float *sum = malloc(kw_n * sizeof(float)), *fused = malloc(kw_n * sizeof(float));
                    uint64_t kept_two[KW_K] = {0}, kept_fused[KW_K] = {0};
                    int64_t bal_two = ties_trim_sum_k(sum, a, b, K, kw_n, kw_thr, kept_two);
                    size_t n_und = 0;
                    int64_t bal = ties_fused_k(fused, a, b, K, kw_n, kw_thr, mean, kept_fused, 1000, und, cap, &n_und);
                    cr_assert_eq(bal, bal_two);
                    cr_assert_arr_eq(kept_fused, kept_two, sizeof kept_two);
                    cr_assert_leq(n_und, cap);
                    if (K == 4) cr_assert_geq(n_und, kw_n / 13 / 2, "K=4: only %zu entries await the majority", n_und);
                    size_t listed_zero_sum = 0;
                    for (size_t t = 0; t < n_und; t++) {
                        cr_assert(und[t] >= 1000 && und[t] < 1000 + kw_n);
                        listed_zero_sum += sum[und[t] - 1000] == 0;
                    }
                    cr_assert_eq(listed_zero_sum, n_und, "a listed entry has a non-zero sum");
                    for (int maj = -1; maj <= 1; maj++) {
                        float *want = malloc(kw_n * sizeof(float)), *got = malloc(kw_n * sizeof(float));
                        memcpy(want, sum, kw_n * sizeof(float));
                        ties_disjoint_k(want, a, b, K, kw_n, kw_thr, (int8_t)maj, mean);
                        memcpy(got, fused, kw_n * sizeof(float));
                        if (maj > 0) patch_undecided(got, a, b, K, mean, und, n_und, 1000);
                        cr_assert_arr_eq(got, want, kw_n * sizeof(float), "%s K=%d b=%d mean=%d majority=%d",
                                         cpu_isa_name(isa), K, withb, mean, maj);
                        free(want), free(got);
                    }
                    free(sum), free(fused);
                }
    }
    isa_restore();
    free(und);
}

/* The fused pass on raw BF16 rows (the any-model engine's) equals ties_fused_k on the task vectors
 * formed as float rows, bit for bit — output, sign balance, kept counts and listed entries — under
 * each ISA level, for K = 8 (its own inlined kernel) and K = 3, unit and other weights, dis-mean and
 * dis-sum, n with a tail past the last vector; a value that is not finite makes it return false. */
Test(kway, ties_fused_bf16_equals_fused_on_formed_rows, .init = kw_init, .fini = kw_fini) {
    const size_t n = kw_n, cap = kw_n;
    uint16_t *h[KW_K];
    float *b = malloc(n * sizeof(float)), *x[KW_K];
    for (size_t i = 0; i < n; i++) { /* θ0 and θ_k truncated to BF16: the τ_k keep most of the ties */
        uint32_t u;
        memcpy(&u, &kw_b[i], sizeof u);
        u &= 0xFFFF0000u;
        memcpy(&b[i], &u, sizeof u);
    }
    for (int k = 0; k < KW_K; k++) {
        h[k] = malloc(n * sizeof(uint16_t));
        x[k] = malloc(n * sizeof(float));
        for (size_t i = 0; i < n; i++) {
            uint32_t u;
            float v = b[i] + (kw_a[k][i] - kw_b[i]);
            memcpy(&u, &v, sizeof u);
            h[k][i] = (uint16_t)(u >> 16);
        }
    }
    const float weights[KW_K] = {1.0f, 0.5f, 1.25f, 0.75f, 1.0f, 2.0f, 0.3f, 1.5f};
    uint64_t *und_want = malloc(cap * sizeof(uint64_t)), *und_got = malloc(cap * sizeof(uint64_t));
    float *want = malloc(n * sizeof(float)), *got = malloc(n * sizeof(float));
    for (int li = 0; li < 2; li++)
        for (int K = 3; K <= KW_K; K += KW_K - 3)
            for (int weighted = 0; weighted < 2; weighted++)
                for (int mean = 0; mean < 2; mean++) {
                    cpu_isa isa = isa_levels[li];
                    cpu_isa_cap(isa);
                    for (int k = 0; k < K; k++)
                        for (size_t i = 0; i < n; i++) {
                            uint32_t u = (uint32_t)h[k][i] << 16;
                            float v;
                            memcpy(&v, &u, sizeof v);
                            x[k][i] = weighted ? weights[k] * (v - b[i]) : v - b[i];
                        }
                    uint64_t kept_want[KW_K] = {0}, kept_got[KW_K] = {0};
                    size_t nu_want = 0, nu_got = 0;
                    int64_t bal_want = ties_fused_k(want, (const float *const *)x, NULL, K, n, kw_thr, mean, kept_want,
                                                    7, und_want, cap, &nu_want);
                    int64_t bal_got = 0;
                    cr_assert(ties_fused_bf16_seq(got, (const uint16_t *const *)h, b, weighted ? weights : NULL, K, n,
                                                  kw_thr, mean, kept_got, 7, und_got, cap, &nu_got, &bal_got));
                    const char *what = cpu_isa_name(isa);
                    cr_assert_arr_eq(got, want, n * sizeof(float), "%s K=%d weighted=%d mean=%d", what, K, weighted,
                                     mean);
                    cr_assert_eq(bal_got, bal_want, "%s K=%d", what, K);
                    cr_assert_arr_eq(kept_got, kept_want, sizeof kept_want, "%s K=%d", what, K);
                    cr_assert_eq(nu_got, nu_want, "%s K=%d", what, K);
                    qsort(und_want, nu_want, sizeof *und_want, cmp_u64);
                    qsort(und_got, nu_got, sizeof *und_got, cmp_u64);
                    cr_assert_arr_eq(und_got, und_want, nu_got * sizeof *und_got, "%s K=%d", what, K);
                    if (K == KW_K && !weighted && !mean) cr_assert_gt(nu_got, 0, "no entry awaited the majority");
                }
    for (int li = 0; li < 2; li++) /* an infinity, a NaN: in a vector, and in the tail */
        for (int at = 0; at < 2; at++) {
            cpu_isa_cap(isa_levels[li]);
            size_t i = at ? n - 3 : 100;
            uint16_t saved = h[5][i];
            h[5][i] = at ? 0x7FC1 : 0xFF80;
            size_t nu = 0;
            int64_t bal = 0;
            uint64_t kept[KW_K] = {0};
            cr_assert_not(ties_fused_bf16_seq(got, (const uint16_t *const *)h, b, NULL, KW_K, n, kw_thr, true, kept, 0,
                                              und_got, cap, &nu, &bal),
                          "%s: entry %zu not finite, not reported", cpu_isa_name(isa_levels[li]), i);
            h[5][i] = saved;
        }
    isa_restore();
    for (int k = 0; k < KW_K; k++) free(h[k]), free(x[k]);
    free(b), free(want), free(got), free(und_want), free(und_got);
}

/* The K-way passes give the same bits for 1 and 2 threads. */
Test(kway, thread_count_independent, .init = kw_init, .fini = kw_fini) {
    float *x1 = malloc(kw_n * sizeof(float)), *x2 = malloc(kw_n * sizeof(float));
    uint64_t k1[KW_K] = {0}, k2[KW_K] = {0};
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    int64_t b1 = ties_trim_sum_k(x1, (const float *const *)kw_a, kw_b, KW_K, kw_n, kw_thr, k1);
    ties_disjoint_k(x1, (const float *const *)kw_a, kw_b, KW_K, kw_n, kw_thr, 1, true);
    omp_set_num_threads(2);
    int64_t b2 = ties_trim_sum_k(x2, (const float *const *)kw_a, kw_b, KW_K, kw_n, kw_thr, k2);
    ties_disjoint_k(x2, (const float *const *)kw_a, kw_b, KW_K, kw_n, kw_thr, 1, true);
    omp_set_num_threads(saved);
    cr_assert_eq(b1, b2);
    cr_assert_arr_eq(k1, k2, sizeof k1);
    cr_assert_arr_eq(x1, x2, kw_n * sizeof(float));
    /* the fused pass: same bits and the same set of listed entries */
    uint64_t *u1 = malloc(kw_n * sizeof(uint64_t)), *u2 = malloc(kw_n * sizeof(uint64_t));
    size_t n1 = 0, n2 = 0;
    omp_set_num_threads(1);
    int64_t f1 = ties_fused_k(x1, (const float *const *)kw_a, kw_b, 4, kw_n, kw_thr, true, k1, 0, u1, kw_n, &n1);
    omp_set_num_threads(2);
    int64_t f2 = ties_fused_k(x2, (const float *const *)kw_a, kw_b, 4, kw_n, kw_thr, true, k2, 0, u2, kw_n, &n2);
    omp_set_num_threads(saved);
    cr_assert_eq(f1, f2);
    cr_assert_eq(n1, n2);
    cr_assert_gt(n1, 0);
    qsort(u1, n1, sizeof *u1, cmp_u64);
    qsort(u2, n2, sizeof *u2, cmp_u64);
    cr_assert_arr_eq(u1, u2, n1 * sizeof *u1);
    cr_assert_arr_eq(x1, x2, kw_n * sizeof(float));
    free(u1), free(u2);
    free(x1), free(x2);
}

/* ---- TALL masks / Consensus ---- */

/* 3 tasks x 6, τ_MTL given, λ = {0.5, 0.5, 1.0}; m_t = |tv| > λ|mtl - tv|:
 *           c0   c1   c2   c3   c4   c5
 *   tv0    1.0  0.1 -0.5  0   0.4  0.2     m0: 1>0 | .1>.45 no | .5>0 | 0>0 no | .4>.2 | .2>.3 no  -> 1 0 1 0 1 0
 *   tv1    0.2  0.1 -0.5  0  -0.4  0.3     m1: .2>.4 no | no | .5>0 | no | .4>.2 | .3>.25          -> 0 0 1 0 1 1
 *   tv2   -0.2  0.8  0.5  0   0    0.3     m2 (λ=1): .2>1.2 no | .8>.2 | .5>1 no | no | 0>0 no | .3>.5 no -> 0 1 0 0 0 0
 *   mtl    1.0  1.0 -0.5  0   0    0.8
 *   count   1    1    2   0   2    1    -> k=2 keeps c2, c4; k=1 keeps all but c3 */
static const float tall_tv[3][6] = {{1.0f, 0.1f, -0.5f, 0.0f, 0.4f, 0.2f},
                                    {0.2f, 0.1f, -0.5f, 0.0f, -0.4f, 0.3f},
                                    {-0.2f, 0.8f, 0.5f, 0.0f, 0.0f, 0.3f}};
static const float tall_mtl[6] = {1.0f, 1.0f, -0.5f, 0.0f, 0.0f, 0.8f};
static const float tall_lam[3] = {0.5f, 0.5f, 1.0f};

Test(consensus, tall_masks_known_answer) {
    const uint8_t want[3][6] = {{1, 0, 1, 0, 1, 0}, {0, 0, 1, 0, 1, 1}, {0, 1, 0, 0, 0, 0}};
    const size_t on[3] = {3, 3, 1};
    for (int t = 0; t < 3; t++) {
        uint8_t m[6] = {0};
        cr_assert_eq(tall_mask_add(m, tall_tv[t], tall_mtl, 6, tall_lam[t]), on[t]);
        cr_assert_arr_eq(m, want[t], 6, "task %d", t);
    }
}

Test(consensus, consensus_mask_k2_and_k1) {
    uint8_t count[6] = {0};
    for (int t = 0; t < 3; t++) tall_mask_add(count, tall_tv[t], tall_mtl, 6, tall_lam[t]);
    const uint8_t want_count[6] = {1, 1, 2, 0, 2, 1};
    cr_assert_arr_eq(count, want_count, 6);
    float m2[6], m1[6];
    memcpy(m2, tall_mtl, sizeof m2);
    memcpy(m1, tall_mtl, sizeof m1);
    cr_assert_eq(consensus_apply(m2, count, 6, 2), 2);
    const float want2[6] = {0, 0, -0.5f, 0, 0, 0};
    assert_close("k=2", m2, want2, 6, 0);
    cr_assert_eq(consensus_apply(m1, count, 6, 1), 5);
    const float want1[6] = {1.0f, 1.0f, -0.5f, 0, 0, 0.8f};
    assert_close("k=1", m1, want1, 6, 0);
    float m0[6];
    memcpy(m0, tall_mtl, sizeof m0);
    cr_assert_eq(consensus_apply(m0, count, 6, 0), 6); /* k = 0: plain τ_MTL */
    assert_close("k=0", m0, tall_mtl, 6, 0);
}

/* θ̂_0 = θ0 + m0 ⊙ mtl with θ0 = 10: 11, 10, 9.5, 10, 10, 10. */
Test(consensus, tall_compressed_model) {
    const float pre[6] = {10, 10, 10, 10, 10, 10};
    float out[6];
    cr_assert_eq(tall_apply(out, pre, tall_tv[0], tall_mtl, 6, 0.5f), 3);
    const float want[6] = {11.0f, 10.0f, 9.5f, 10.0f, 10.0f, 10.0f};
    assert_close("tall_apply", out, want, 6, 0);
}

/* ---- DARE ---- */

Test(dare, density_one_is_exact) {
    const size_t n = 5000;
    float *x = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float));
    tu_fill_uniform(x, n, 4, -1.0f, 1.0f);
    memcpy(y, x, n * sizeof(float));
    cr_assert_eq(dare_apply(y, n, 1.0, 42, 0, 0), n);
    cr_assert_arr_eq(y, x, n * sizeof(float));
    cr_assert_eq(dare_apply(y, n, 0.0, 42, 0, 0), 0);
    for (size_t i = 0; i < n; i++) cr_assert_eq(y[i], 0.0f);
    free(x);
    free(y);
}

/* density 0.5 over 1e5 ones: about half kept (±5%), the kept ones rescaled to exactly 2. */
Test(dare, half_density_rate_and_rescale) {
    const size_t n = 100000;
    float *x = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = 1.0f;
    size_t kept = dare_apply(x, n, 0.5, 7, 3, 5);
    cr_assert(kept > 45000 && kept < 55000, "kept %zu of %zu", kept, n);
    size_t twos = 0;
    for (size_t i = 0; i < n; i++) {
        cr_assert(x[i] == 0.0f || x[i] == 2.0f, "x[%zu] = %g", i, (double)x[i]);
        twos += x[i] == 2.0f;
    }
    cr_assert_eq(twos, kept);
    free(x);
}

/* Unbiased: averaged over 2000 seeds, each of 64 elements is its τ within 15% (the standard error
 * of one element is |τ|·sqrt((1/ρ - 1)/2000) = 2.2% at ρ = 0.5: a 6.7σ bound); the grand mean
 * within 1%. A biased rescale (say 1/ρ²) fails both. */
Test(dare, unbiased_over_seeds) {
    enum { N = 64, S = 2000 };
    float tau[N], x[N];
    double mean[N] = {0};
    tu_fill_uniform(tau, N, 5, 0.5f, 2.0f);
    for (int s = 0; s < S; s++) {
        memcpy(x, tau, sizeof x);
        dare_apply(x, N, 0.5, (uint64_t)s, 1, 2);
        for (int i = 0; i < N; i++) mean[i] += x[i] / (double)S;
    }
    double got = 0, want = 0;
    for (int i = 0; i < N; i++) {
        cr_assert(fabs(mean[i] - tau[i]) <= 0.15 * tau[i], "E[x[%d]] = %g, tau %g", i, mean[i], (double)tau[i]);
        got += mean[i];
        want += tau[i];
    }
    cr_assert(fabs(got / want - 1) < 0.01, "grand mean ratio %g", got / want);
}

Test(dare, deterministic_by_seed_task_tensor_and_threads) {
    const size_t n = 200000; /* above the parallel threshold */
    float *x = malloc(n * sizeof(float)), *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float));
    tu_fill_uniform(x, n, 6, -1.0f, 1.0f);
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    memcpy(a, x, n * sizeof(float));
    dare_apply(a, n, 0.3, 99, 2, 7);
    omp_set_num_threads(2);
    memcpy(b, x, n * sizeof(float));
    dare_apply(b, n, 0.3, 99, 2, 7);
    omp_set_num_threads(saved);
    cr_assert_arr_eq(a, b, n * sizeof(float), "1 vs 2 threads differ");
    memcpy(b, x, n * sizeof(float));
    dare_apply(b, n, 0.3, 99, 2, 7);
    cr_assert_arr_eq(a, b, n * sizeof(float), "same seed differs");
    /* another seed, task or tensor draws another mask */
    const int variants[3][3] = {{100, 2, 7}, {99, 3, 7}, {99, 2, 8}};
    for (int v = 0; v < 3; v++) {
        memcpy(b, x, n * sizeof(float));
        dare_apply(b, n, 0.3, (uint64_t)variants[v][0], variants[v][1], variants[v][2]);
        cr_assert(memcmp(a, b, n * sizeof(float)) != 0, "variant %d equals the base mask", v);
    }
    free(x);
    free(a);
    free(b);
}

/* The vectorised keep test and rescale against the definition, one element at a time: entry i of
 * a tensor is kept iff kern_hash_u01_at(prefix, first + i) < ρ, then divided by ρ (in float). At a
 * power-of-two ρ (the multiply by 1/ρ), other ρ (the division), odd lengths and offsets (the
 * scalar tail, counters that are not multiples of 8, counters past 2^32), under each ISA level,
 * bit for bit, and the count. */
Test(dare, matches_the_definition_elementwise) {
    const size_t n = 4099;
    float *x = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float));
    tu_fill_uniform(x, n, 8, -1.0f, 1.0f);
    const double rhos[] = {0.5, 0.125, 0.3, 0.9, 1.0 / 3.0};
    const size_t firsts[] = {0, 5, (size_t)1 << 33};
    for (int isa = 0; isa < 2; isa++) { /* the AVX-512 kernel where the CPU has it, then the AVX2/generic one */
        cpu_isa_cap(isa ? CPU_ISA_BASE : CPU_ISA_AVX512);
        for (size_t r = 0; r < sizeof rhos / sizeof *rhos; r++)
            for (size_t f = 0; f < 3; f++) {
                memcpy(y, x, n * sizeof(float));
                size_t kept = dare_apply_at_seq(y, n, rhos[r], 11, 4, 77, firsts[f]), want = 0;
                uint64_t prefix = kern_hash_prefix(11, 4, 77);
                for (size_t i = 0; i < n; i++) {
                    bool keep = kern_hash_u01_at(prefix, firsts[f] + i) < rhos[r];
                    float e = keep ? x[i] / (float)rhos[r] : 0.0f;
                    want += keep;
                    cr_assert(memcmp(&e, &y[i], sizeof e) == 0, "rho %g first %zu: y[%zu] = %a, want %a", rhos[r],
                              firsts[f], i, (double)y[i], (double)e);
                }
                cr_assert_eq(kept, want, "rho %g first %zu", rhos[r], firsts[f]);
            }
    }
    cpu_isa_cap(CPU_ISA_AVX512);
    free(x);
    free(y);
}

/* The any-model engine's one-pass DARE over raw BF16 rows equals forming τ as a float row
 * (w (θ − θ0), or θ − θ0 at w = 1), dare_apply_at_seq on it and adding the row, bit for bit: each
 * ISA level, power-of-two and other densities, density 0 and 1, unit and other weights, offsets
 * (counters past 2^32), a tail past the last vector, and a sum holding −0 (a dropped entry adds +0).
 * A value of θ that is not finite, in a vector or in the tail, makes it return false. */
Test(dare, add_bf16_equals_formed_row_masked_and_added) {
    const size_t n = 4099;
    uint16_t *h = malloc(n * sizeof *h);
    float *b = malloc(n * sizeof(float)), *acc0 = malloc(n * sizeof(float)), *acc = malloc(n * sizeof(float));
    float *row = malloc(n * sizeof(float)), *v = malloc(n * sizeof(float));
    tu_fill_uniform(v, n, 21, -1.0f, 1.0f);
    tu_fill_uniform(b, n, 22, -1.0f, 1.0f);
    tu_fill_uniform(acc0, n, 23, -2.0f, 2.0f);
    for (size_t i = 0; i < n; i += 7) acc0[i] = -0.0f;
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &v[i], sizeof u);
        h[i] = (uint16_t)(u >> 16);
        u = (uint32_t)h[i] << 16;
        memcpy(&v[i], &u, sizeof u); /* θ as the kernel reads it */
    }
    const double rhos[] = {0.5, 0.3, 1.0 / 3.0, 1.0, 0.0};
    const float ws[] = {1.0f, 0.7f};
    const size_t firsts[] = {0, 5, (size_t)1 << 33};
    for (int isa = 0; isa < 2; isa++) {
        cpu_isa_cap(isa ? CPU_ISA_BASE : CPU_ISA_AVX512);
        for (size_t r = 0; r < sizeof rhos / sizeof *rhos; r++)
            for (int wi = 0; wi < 2; wi++)
                for (size_t f = 0; f < 3; f++) {
                    float w = ws[wi];
                    for (size_t i = 0; i < n; i++) row[i] = w == 1.0f ? v[i] - b[i] : w * (v[i] - b[i]);
                    dare_apply_at_seq(row, n, rhos[r], 11, 4, 77, firsts[f]);
                    memcpy(acc, acc0, n * sizeof(float));
                    cr_assert(dare_add_bf16_seq(acc, h, b, w, n, rhos[r], 11, 4, 77, firsts[f]));
                    for (size_t i = 0; i < n; i++) {
                        float e = acc0[i] + row[i];
                        cr_assert(memcmp(&e, &acc[i], sizeof e) == 0, "%s rho %g w %g first %zu: acc[%zu] = %a, want %a",
                                  cpu_isa_name(isa ? CPU_ISA_BASE : CPU_ISA_AVX512), rhos[r], (double)w, firsts[f], i,
                                  (double)acc[i], (double)e);
                    }
                }
        const size_t at[] = {100, n - 2}; /* in a vector; in the tail */
        for (int a = 0; a < 2; a++) {
            uint16_t keep = h[at[a]];
            h[at[a]] = 0x7f80; /* +inf */
            memcpy(acc, acc0, n * sizeof(float));
            cr_assert_not(dare_add_bf16_seq(acc, h, b, 1.0f, n, 0.5, 11, 4, 77, 0), "inf at %zu", at[a]);
            h[at[a]] = 0xffc1; /* a NaN */
            cr_assert_not(dare_add_bf16_seq(acc, h, b, 1.0f, n, 0.5, 11, 4, 77, 0), "NaN at %zu", at[a]);
            h[at[a]] = keep;
        }
    }
    cpu_isa_cap(CPU_ISA_AVX512);
    free(h), free(b), free(acc0), free(acc), free(row), free(v);
}

/* ---- TATR ---- */

/* 3 tasks x 4:  tv0 = 1 0 2 -1,  tv1 = 1 1 0 1,  tv2 = -1 0 0 2,  A = Σ|τ| = 3 1 2 4.
 * Zero-shot Ω = Σ_i |τ_i|(A - |τ_i|) (= A² - Σ τ²):
 *   c0: 1·2 + 1·2 + 1·2 = 6   c1: 0 + 1·0 + 0 = 0   c2: 2·0 + 0 + 0 = 0   c3: 1·3 + 1·3 + 2·2 = 10
 * q = 25%: threshold sorted(Ω)[int(4·.75)] = [0 0 6 10][3] = 10, mask Ω < 10 = 1 1 1 0;
 * masked Σ τ = (1 1 2 2) ⊙ mask = 1 1 2 0.  q = 50%: threshold [2] = 6, mask 0 1 1 0 (6 is not < 6). */
static const float tatr_tv[3][4] = {{1, 0, 2, -1}, {1, 1, 0, 1}, {-1, 0, 0, 2}};

static void tatr_abs_sum(float A[4]) {
    memset(A, 0, 4 * sizeof(float));
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < 4; i++) A[i] += fabsf(tatr_tv[k][i]);
}

Test(tatr, zero_shot_omega_and_mask) {
    float A[4], omega[4] = {0};
    tatr_abs_sum(A);
    for (int k = 0; k < 3; k++) tatr_omega_add(omega, NULL, A, tatr_tv[k], 4);
    const float want_omega[4] = {6, 0, 0, 10};
    assert_close("omega", omega, want_omega, 4, 0);

    uint64_t rank;
    cr_assert(tatr_threshold_rank(4, 25, &rank));
    cr_assert_eq(rank, 3);
    float thr = select_kth(omega, 4, rank, false);
    cr_assert_eq(thr, 10.0f);
    float sum[4] = {1, 1, 2, 2};
    cr_assert_eq(tatr_mask(sum, omega, 4, thr), 3);
    const float want_sum[4] = {1, 1, 2, 0};
    assert_close("masked sum", sum, want_sum, 4, 0);

    cr_assert(tatr_threshold_rank(4, 50, &rank));
    thr = select_kth(omega, 4, rank, false);
    cr_assert_eq(thr, 6.0f);
    float sum2[4] = {1, 1, 2, 2};
    cr_assert_eq(tatr_mask(sum2, omega, 4, thr), 2);
    const float want2[4] = {0, 1, 2, 0};
    assert_close("q=50", sum2, want2, 4, 0);
    cr_assert(!tatr_threshold_rank(4, 0, &rank)); /* q = 0 masks nothing */
}

/* Gradient variant: g0 = 1 1 1 1, g1 = 0, g2 = 2 0 0 0:
 * Ω = g0 ⊙ (A - |τ0|) + g2 ⊙ (A - |τ2|) = (2 1 0 3) + (2·2 0 0 0) = 6 1 0 3. */
Test(tatr, gradient_omega) {
    float A[4], omega[4] = {0};
    tatr_abs_sum(A);
    const float g[3][4] = {{1, 1, 1, 1}, {0, 0, 0, 0}, {2, 0, 0, 0}};
    for (int k = 0; k < 3; k++) tatr_omega_add(omega, g[k], A, tatr_tv[k], 4);
    const float want[4] = {6, 1, 0, 3};
    assert_close("omega", omega, want, 4, 0);
}

/* ---- LATA ---- */

/* 2 tasks x 3 layers of 2 values:
 *   τ0: l1 = (1,0)  l2 = (1,1)  l3 = (0,1)       τ1: l1 = (2,0)  l2 = (0,1)  l3 = (1,1)
 *   v = mean: l1 = (1.5,0)  l2 = (.5,1)  l3 = (.5,1)
 *   |cos| τ0: l1 1, l2 1.5/(√2·√1.25) = .9487, l3 1/√1.25 = .8944 -> scores 0 .0513 .1056
 *   |cos| τ1: l1 1, l2 .8944, l3 .9487                             -> scores 0 .1056 .0513
 * topk 33%: ceil(.99) = 1 layer at 1, the others γ = .5; mean (1 + .5·2)/3 = 2/3 ->
 *   w0 = (.75 .75 1.5), w1 = (.75 1.5 .75);  Σ_t Σ_l w τ: l1 = .75(1,0)+.75(2,0) = (2.25, 0),
 *   l2 = .75(1,1) + 1.5(0,1) = (.75, 2.25), l3 = 1.5(0,1) + .75(1,1) = (.75, 2.25).
 * topk 50%: ceil(1.5) = 2 layers; mean (2 + .5)/3 -> hi 1.2, lo .6: w0 = w1 = (.6 1.2 1.2). */
Test(lata, two_tasks_three_layers) {
    const float tau[2][3][2] = {{{1, 0}, {1, 1}, {0, 1}}, {{2, 0}, {0, 1}, {1, 1}}};
    float v[3][2];
    for (int l = 0; l < 3; l++)
        for (int i = 0; i < 2; i++) v[l][i] = (tau[0][l][i] + tau[1][l][i]) / 2;
    double score[2][3];
    for (int t = 0; t < 2; t++)
        for (int l = 0; l < 3; l++) score[t][l] = 1 - kern_abs_cos(tau[t][l], v[l], 2);
    cr_assert_float_eq(score[0][0], 0.0, 1e-12);
    cr_assert_float_eq(score[0][1], 1 - 1.5 / (sqrt(2.0) * sqrt(1.25)), 1e-7);
    cr_assert_float_eq(score[0][2], 1 - 1 / sqrt(1.25), 1e-7);

    float w[2][3];
    cr_assert_eq(lata_weights(score[0], 3, 33, 0.5, w[0]), 1);
    cr_assert_eq(lata_weights(score[1], 3, 33, 0.5, w[1]), 1);
    const float want0[3] = {0.75f, 0.75f, 1.5f}, want1[3] = {0.75f, 1.5f, 0.75f};
    assert_close("w0", w[0], want0, 3, 1e-6);
    assert_close("w1", w[1], want1, 3, 1e-6);
    float delta[3][2] = {{0}};
    for (int t = 0; t < 2; t++)
        for (int l = 0; l < 3; l++) kern_axpy(delta[l], w[t][l], tau[t][l], 2);
    const float want_delta[6] = {2.25f, 0, 0.75f, 2.25f, 0.75f, 2.25f};
    assert_close("delta", &delta[0][0], want_delta, 6, 1e-6);

    cr_assert_eq(lata_weights(score[0], 3, 50, 0.5, w[0]), 2);
    const float want50[3] = {0.6f, 1.2f, 1.2f};
    assert_close("w0 topk50", w[0], want50, 3, 1e-6);
    /* γ = 1 or topk = 100: plain Task Arithmetic (all weights 1) */
    cr_assert_eq(lata_weights(score[1], 3, 100, 0.5, w[1]), 3);
    const float ones[3] = {1, 1, 1};
    assert_close("topk100", w[1], ones, 3, 1e-7);
    lata_weights(score[1], 3, 33, 1.0, w[1]);
    assert_close("gamma1", w[1], ones, 3, 1e-7);
}

/* Equal scores break ties toward the lower layer index. */
Test(lata, ties_go_to_lower_index) {
    const double s[4] = {0.2, 0.5, 0.5, 0.5};
    float w[4];
    cr_assert_eq(lata_weights(s, 4, 50, 0.0, w), 2); /* layers 1, 2 amplified; mean = 2/4 */
    const float want[4] = {0, 2, 2, 0};
    assert_close("w", w, want, 4, 0);
}

Test(lata, abs_cos_properties) {
    const float a[3] = {1, 2, 3}, b[3] = {-2, -4, -6}, z[3] = {0, 0, 0}, c[3] = {3, 0, -1};
    cr_assert_float_eq(kern_abs_cos(a, b, 3), 1.0, 1e-12); /* antiparallel: |cos| = 1 */
    cr_assert_eq(kern_abs_cos(a, z, 3), 0.0);
    cr_assert_float_eq(kern_abs_cos(a, c, 3), 0.0, 1e-12); /* orthogonal */
}

/* ---- Grafting / Localize-and-Stitch ---- */

/* Stitch of 3 tasks x 6 weights with overlapping masks, θ0 = (.5 0 0 1 2 -1):
 *         c0   c1   c2   c3   c4   c5
 *   tv0    1    2    3    4    5    6     m0: 1 1 0 1 0 0
 *   tv1   10   20   30   40   50   60     m1: 1 0 1 1 0 0
 *   tv2   -4    8   12  -16  100    7     m2: 0 0 1 1 0 1
 *   count  2    1    2    3    0    1
 *   Σ m τ / count: 11/2 = 5.5, 2, 42/2 = 21, (4 + 40 − 16)/3 = 28/3, 0 (c4: unmasked 100 ignored), 7
 *   θ = 6  2  21  31/3  2  6
 * overlap (weights of m_t that another mask holds): m0 {c0,c3} 2/3, m1 {c0,c2,c3} 3/3, m2 {c2,c3} 2/3. */
Test(graft, stitch_averages_overlaps) {
    const float tv[3][6] = {{1, 2, 3, 4, 5, 6}, {10, 20, 30, 40, 50, 60}, {-4, 8, 12, -16, 100, 7}};
    const uint8_t m[3][6] = {{1, 1, 0, 1, 0, 0}, {1, 0, 1, 1, 0, 0}, {0, 0, 1, 1, 0, 1}};
    float out[6] = {0.5f, 0, 0, 1, 2, -1};
    uint8_t count[6] = {0};
    for (int t = 0; t < 3; t++) graft_count_add(count, m[t], 6);
    const uint8_t want_count[6] = {2, 1, 2, 3, 0, 1};
    cr_assert_arr_eq(count, want_count, 6);
    for (int t = 0; t < 3; t++) graft_stitch_add(out, tv[t], m[t], count, 6);
    const float want[6] = {6, 2, 21, 31.0f / 3.0f, 2, 6};
    assert_close("stitch", out, want, 6, 2e-6);
    cr_assert_eq(out[0], 6.0f); /* the exact cases are exact */
    cr_assert_eq(out[4], 2.0f);
    const size_t shared[3] = {2, 3, 2};
    for (int t = 0; t < 3; t++) cr_assert_eq(graft_overlap(m[t], count, 6), shared[t], "task %d", t);
}

/* s_bias = 5, ln 3 = 1.0986: σ(0) = 1/2, σ(ln 3) = 3/4, σ(−ln 3) = 1/4; σ'(0) = 1/4,
 * σ'(±ln 3) = 3/16.
 *   S        5     5     5+ln3  5+ln3  5−ln3  -100   100   100
 *   b        0     1     0      1      1      0      0     1
 *   γ        .5    .5    .75    .25    .75    0      1     0
 *   round    0     0     1      0      1      0      1     0      (γ = 1/2 → 0, as torch.round)
 * With θ0 = 1 and τ = 2 everywhere: θ = 1 + 2γ = 2 2 2.5 1.5 2.5 1 3 1 (rounded: 1 1 3 1 3 1 3 1).
 * ∂L/∂S for ∂L/∂θ = 1 ... 8: (1 − 2b)σ'·g·τ = .5 −1 1.125 −1.5 −1.875 0 0 0 (σ'(±105) underflows
 * to 0 in f32: such scores no longer move).
 * Step with lr = 2, l1 = 1: S − 2 gS − (1 − 2b)σ': 5 − 1 − .25 = 3.75, 5 + 2 + .25 = 7.25, ... */
Test(graft, gamma_rounding_gradient_and_step) {
    const float l3 = logf(3.0f), sb = 5;
    float S[8] = {5, 5, 5 + l3, 5 + l3, 5 - l3, -100, 100, 100};
    const uint8_t b[8] = {0, 1, 0, 1, 1, 0, 0, 1};
    float pre[8], tv[8], theta[8], g[8];
    for (int i = 0; i < 8; i++) pre[i] = 1, tv[i] = 2, g[i] = (float)(i + 1);
    graft_apply(theta, pre, tv, S, b, 8, sb, false);
    const float want_relaxed[8] = {2, 2, 2.5f, 1.5f, 2.5f, 1, 3, 1};
    assert_close("relaxed", theta, want_relaxed, 8, 2e-6);
    graft_apply(theta, pre, tv, S, b, 8, sb, true);
    const float want_rounded[8] = {1, 1, 3, 1, 3, 1, 3, 1};
    assert_close("rounded", theta, want_rounded, 8, 0);
    uint8_t m[8];
    cr_assert_eq(graft_round(m, S, b, 8, sb), 3);
    const uint8_t want_m[8] = {0, 0, 1, 0, 1, 0, 1, 0};
    cr_assert_arr_eq(m, want_m, 8);
    graft_score_grad(g, tv, S, b, 8, sb);
    const float want_g[8] = {0.5f, -1, 1.125f, -1.5f, -1.875f, 0, 0, 0};
    assert_close("dL/dS", g, want_g, 8, 2e-6);
    graft_step(S, g, b, 8, sb, 2, 1);
    const float want_S[8] = {3.75f, 7.25f, 5 + l3 - 2.25f - 0.1875f, 5 + l3 + 3 + 0.1875f, 5 - l3 + 3.75f + 0.1875f,
                             -100, 100, 100};
    assert_close("S", S, want_S, 8, 4e-6);
}

/* Top-3 of |τ| = .5 .3 .3 .1 .5 .3: the 3rd largest is .3, two values lie above it, so one of the
 * three ties is kept, the first in index order: m = 1 1 0 0 1 0. Fed in two chunks (as tensors
 * are), the tie counter carries over and gives the same mask. */
Test(graft, topk_mask_is_exact_with_ties) {
    const float tv[6] = {0.5f, -0.3f, 0.3f, 0.1f, -0.5f, 0.3f};
    const uint8_t want[6] = {1, 1, 0, 0, 1, 0};
    cr_assert_eq(graft_count_above(tv, 6, 0.3f), 2);
    uint8_t m[6];
    uint64_t ties = 3 - 2;
    cr_assert_eq(graft_topk_mark(m, tv, 6, 0.3f, &ties), 3);
    cr_assert_arr_eq(m, want, 6);
    cr_assert_eq(ties, 0);
    ties = 1;
    memset(m, 9, 6);
    size_t on = graft_topk_mark(m, tv, 1, 0.3f, &ties);
    on += graft_topk_mark(m + 1, tv + 1, 5, 0.3f, &ties);
    cr_assert_eq(on, 3);
    cr_assert_arr_eq(m, want, 6);
}

/* ---- TA-style apply ---- */

Test(apply, lambda_zero_gives_theta0) {
    const size_t n = 1000;
    float *pre = malloc(n * sizeof(float)), *delta = malloc(n * sizeof(float)), *out = malloc(n * sizeof(float));
    tu_fill_uniform(pre, n, 8, -1.0f, 1.0f);
    tu_fill_uniform(delta, n, 9, -5.0f, 5.0f);
    merge_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.pre.params = pre;
    ctx.pre.lay.total = n;
    ctx.out.params = out;
    search_apply(&ctx, delta, 0.0);
    cr_assert_arr_eq(out, pre, n * sizeof(float));
    search_apply(&ctx, delta, 0.5);
    for (size_t i = 0; i < n; i++) cr_assert_eq(out[i], pre[i] + 0.5f * delta[i]);
    free(pre);
    free(delta);
    free(out);
}
