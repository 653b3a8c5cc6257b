/* test_select.c — the streaming radix select (baselines/select.h) against qsort: random data with
 * many ties, zeros and negative zeros, magnitudes and signed values, every rank class (min,
 * median, max), chunked feeding in a different order per pass, and 1 vs 2 threads. */
#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "baselines/kernels.h"
#include "baselines/select.h"
#include "core/cpu.h"
#include "tests/testutil.h"

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* The rank-th smallest by qsort (of |x| when absval). */
static float ref_kth(const float *x, size_t n, size_t rank, bool absval) {
    float *s = malloc(n * sizeof(float));
    cr_assert_not_null(s);
    for (size_t i = 0; i < n; i++) s[i] = absval ? fabsf(x[i]) : x[i];
    qsort(s, n, sizeof(float), cmp_float);
    float v = s[rank];
    free(s);
    return v;
}

/* n values in [-1, 1) rounded to 1/64 (many exact ties), ~10% zeros, some -0.0, a few large. */
static float *tie_heavy(size_t n, uint64_t seed) {
    float *x = malloc(n * sizeof(float));
    cr_assert_not_null(x);
    tu_fill_uniform(x, n, seed, -1.0f, 1.0f);
    for (size_t i = 0; i < n; i++) {
        x[i] = roundf(x[i] * 64.0f) / 64.0f;
        if (i % 10 == 3) x[i] = 0.0f;
        if (i % 10 == 7) x[i] = -0.0f;
        if (i % 997 == 5) x[i] = (i & 1 ? -1.0f : 1.0f) * 1e6f;
    }
    return x;
}

Test(select, matches_qsort_small_all_ranks) {
    const size_t n = 257;
    float *x = tie_heavy(n, 11);
    for (int absval = 0; absval < 2; absval++)
        for (size_t r = 0; r < n; r++) {
            float got = select_kth(x, n, r, absval), want = ref_kth(x, n, r, absval);
            cr_assert(got == want, "abs=%d rank %zu: select %g, qsort %g", absval, r, (double)got, (double)want);
        }
    free(x);
}

Test(select, extremes_and_single_value) {
    float one = -3.5f;
    cr_assert_eq(select_kth(&one, 1, 0, true), 3.5f);
    cr_assert_eq(select_kth(&one, 1, 0, false), -3.5f);
    float x[6] = {0.0f, -2.0f, 5.0f, -0.0f, 2.0f, -7.0f};
    cr_assert_eq(select_kth(x, 6, 0, false), -7.0f); /* min */
    cr_assert_eq(select_kth(x, 6, 5, false), 5.0f);  /* max */
    cr_assert_eq(select_kth(x, 6, 0, true), 0.0f);   /* |min| */
    cr_assert_eq(select_kth(x, 6, 1, true), 0.0f);   /* both zeros */
    cr_assert_eq(select_kth(x, 6, 2, true), 2.0f);   /* tie ±2 */
    cr_assert_eq(select_kth(x, 6, 3, true), 2.0f);
    cr_assert_eq(select_kth(x, 6, 5, true), 7.0f);
    float zeros[5] = {0};
    cr_assert_eq(select_kth(zeros, 5, 4, true), 0.0f);
}

/* Streamed in uneven chunks, pass 1 in reverse chunk order; large enough for the parallel path. */
Test(select, streaming_chunks_match_qsort) {
    const size_t n = 300007;
    float *x = tie_heavy(n, 12);
    const size_t cuts[] = {0, 1, 70000, 70001, 200000, n};
    const int nc = 5;
    size_t ranks[] = {0, 1, n / 10, n / 2, n - n / 5, n - 2, n - 1};
    for (int absval = 0; absval < 2; absval++)
        for (size_t ri = 0; ri < sizeof ranks / sizeof ranks[0]; ri++) {
            select_ctx s;
            tt_err e = {0};
            cr_assert_eq(select_init(&s, ranks[ri], absval, &e), 0);
            int pass = 0;
            do {
                for (int c = 0; c < nc; c++) {
                    int cc = pass ? nc - 1 - c : c;
                    select_feed(&s, x + cuts[cc], cuts[cc + 1] - cuts[cc]);
                }
                pass++;
            } while (select_next_pass(&s));
            cr_assert_eq(pass, 2);
            float want = ref_kth(x, n, ranks[ri], absval);
            cr_assert(select_value(&s) == want, "abs=%d rank %zu: %g vs %g", absval, ranks[ri],
                      (double)select_value(&s), (double)want);
            select_free(&s);
        }
    free(x);
}

/* select_feed_diff counts x − sub without materialising it: the same value as select_kth on the
 * differences formed in float, on the serial and the parallel path. */
Test(select, feed_diff_equals_materialised_differences) {
    const size_t n = 200003;
    float *x = tie_heavy(n, 21), *sub = tie_heavy(n, 22), *d = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) d[i] = x[i] - sub[i];
    size_t ranks[] = {0, n / 7, n / 2, n - 1};
    for (int absval = 0; absval < 2; absval++)
        for (size_t ri = 0; ri < 4; ri++) {
            select_ctx s;
            tt_err e = {0};
            cr_assert_eq(select_init(&s, ranks[ri], absval, &e), 0);
            do {
                select_feed_diff(&s, x, sub, 1000);                    /* serial path */
                select_feed_diff(&s, x + 1000, sub + 1000, n - 1000); /* parallel path */
            } while (select_next_pass(&s));
            float want = ref_kth(d, n, ranks[ri], absval);
            cr_assert(select_value(&s) == want, "abs=%d rank %zu: %g vs %g", absval, ranks[ri],
                      (double)select_value(&s), (double)want);
            select_free(&s);
        }
    free(x);
    free(sub);
    free(d);
}

Test(select, thread_count_independent) {
    const size_t n = 1 << 18;
    float *x = malloc(n * sizeof(float));
    tu_fill_uniform(x, n, 13, -2.0f, 2.0f);
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    float a = select_kth(x, n, n / 3, true);
    omp_set_num_threads(2);
    float b = select_kth(x, n, n / 3, true);
    omp_set_num_threads(saved);
    cr_assert(a == b);
    cr_assert(a == ref_kth(x, n, n / 3, true));
    free(x);
}

/* TIES's use: k = 100% keeps everything (threshold 0), k = 0% keeps only the entries tied with the
 * largest magnitude (official kthvalue(d)), k = 20% of 10 keeps ranks >= 10 - 2 (1-based 8th). */
Test(select, ties_topk_edges) {
    float x[10] = {0.5f, -0.1f, 0.0f, 0.9f, -0.9f, 0.3f, -0.2f, 0.0f, 0.7f, 0.05f};
    uint64_t rank = 77;
    cr_assert(!ties_threshold_rank(10, 100, &rank));
    cr_assert_eq(ties_threshold_array(x, 10, 100), 0.0f);
    cr_assert(ties_threshold_rank(10, 0, &rank));
    cr_assert_eq(rank, 9);
    cr_assert_eq(ties_threshold_array(x, 10, 0), 0.9f);
    cr_assert(ties_threshold_rank(10, 20, &rank));
    cr_assert_eq(rank, 7); /* kthvalue(|x|, 8) */
    /* sorted |x|: 0 0 .05 .1 .2 .3 .5 .7 .9 .9 -> 8th = 0.7 */
    cr_assert_eq(ties_threshold_array(x, 10, 20), 0.7f);
    float acc[10] = {0};
    cr_assert_eq(ties_trim_add(acc, x, 10, 0.7f), 3); /* 0.9, -0.9, 0.7: ties at the threshold kept */
}

/* ---- bracketed mode (select_init_bracket): a sample pass, one counting pass, and the two radix
 * passes only when the bracket misses or the copies overflow; always the exact value ---- */

/* The bracketed select of x[0..n) fed in `nc` chunks (cuts), reversed after the sample pass;
 * *passes = the passes it needed (2 = sample + bracket, 4 = with the radix fallback). */
static float bracket_kth_isa(const float *x, const float *sub, size_t n, uint64_t rank, bool absval, size_t work_len,
                             int *passes) {
    float *work = malloc(work_len * sizeof(float));
    cr_assert_not_null(work);
    select_ctx s;
    tt_err e = {0};
    cr_assert_eq(select_init_bracket(&s, rank, absval, n, work, work_len, &e), 0);
    size_t hist_floats = (size_t)s.parts * SELECT_BINS * 2 + 16;
    if (work_len >= 2 * select_bracket_work(n) + hist_floats)
        cr_assert(!s.hist_owned, "a workspace with room for the histograms: they should be in it");
    const size_t cuts[] = {0, 1, n / 3, n / 3 + 1, n - n / 4, n};
    int pass = 0;
    do {
        for (int c = 0; c < 5; c++) {
            int cc = pass ? 4 - c : c;
            select_feed_diff(&s, x + cuts[cc], sub ? sub + cuts[cc] : NULL, cuts[cc + 1] - cuts[cc]);
        }
        pass++;
    } while (select_next_pass(&s));
    cr_assert(select_done(&s));
    float v = select_value(&s);
    select_free(&s);
    free(work);
    if (passes) *passes = pass;
    return v;
}

/* The bracketed select under each ISA level (core/cpu.h: the AVX-512 bracket kernel, then the
 * baseline one): the same value and the same number of passes, which is returned. */
static float bracket_kth(const float *x, const float *sub, size_t n, uint64_t rank, bool absval, size_t work_len,
                         int *passes) {
    int p_wide = 0, p_base = 0;
    cpu_isa_cap(CPU_ISA_AVX512);
    float wide = bracket_kth_isa(x, sub, n, rank, absval, work_len, &p_wide);
    cpu_isa_cap(CPU_ISA_BASE);
    float base = bracket_kth_isa(x, sub, n, rank, absval, work_len, &p_base);
    cpu_isa_cap(CPU_ISA_AVX512);
    cr_assert(!memcmp(&wide, &base, sizeof wide), "rank %llu abs=%d: avx512 %g, base %g", (unsigned long long)rank,
              absval, (double)wide, (double)base);
    cr_assert_eq(p_wide, p_base, "rank %llu abs=%d: avx512 took %d passes, base %d", (unsigned long long)rank, absval,
                 p_wide, p_base);
    if (passes) *passes = p_wide;
    return wide;
}

/* Both kinds of sample: its values, and the histogram that large samples use (select.h), which
 * every sample of these tests is made into by select_set_sample_hist_min(0). */
#define EACH_SAMPLE_KIND(kind) \
    for (int kind = 0; kind < 2; kind++, select_set_sample_hist_min(SIZE_MAX)) \
        if (select_set_sample_hist_min(kind ? 0 : SIZE_MAX), 1)

static void check_bracket_kind(const float *x, size_t n, const char *what) {
    size_t ranks[] = {0, 1, n / 10, n / 2, n - n / 5, n - 2, n - 1};
    size_t least = select_bracket_work(n);
    cr_assert(least < SIZE_MAX, "%s: n = %zu too small for the bracketed mode", what, n);
    /* the least workspace (histograms calloc'd), and one with room for the histograms at its end */
    size_t roomy = 2 * least + (size_t)SELECT_MAX_PARTS * SELECT_BINS * 2 + 64;
    for (int w = 0; w < 2; w++) {
        for (int absval = 0; absval < 2; absval++)
            for (size_t ri = 0; ri < sizeof ranks / sizeof ranks[0]; ri++) {
                int passes = 0;
                float got = bracket_kth(x, NULL, n, ranks[ri], absval, w ? roomy : least, &passes);
                float want = ref_kth(x, n, ranks[ri], absval);
                cr_assert(got == want, "%s abs=%d rank %zu: bracket %g, qsort %g", what, absval, ranks[ri], (double)got,
                          (double)want);
                /* bit for bit what the radix select gives (-0 orders below +0 there) */
                float radix = select_kth(x, n, ranks[ri], absval);
                cr_assert(!memcmp(&got, &radix, sizeof got), "%s abs=%d rank %zu: bracket %g, radix %g", what, absval,
                          ranks[ri], (double)got, (double)radix);
                /* 2 = sample + bracket; 3 = the bracket could not be afforded (radix after the sample);
                 * 4 = the bracket missed or overflowed */
                cr_assert(passes >= 2 && passes <= 4, "%s: %d passes", what, passes);
            }
    }
}

static void check_bracket(const float *x, size_t n, const char *what) {
    EACH_SAMPLE_KIND(kind) check_bracket_kind(x, n, what);
}

Test(select_bracket, tie_heavy_zeros_negative_zeros) {
    const size_t n = 300007;
    float *x = tie_heavy(n, 31);
    check_bracket(x, n, "tie_heavy");
    free(x);
}

Test(select_bracket, uniform_takes_one_counting_pass) {
    const size_t n = 1 << 20;
    float *x = malloc(n * sizeof(float));
    tu_fill_uniform(x, n, 32, -1e-3f, 1e-3f);
    check_bracket(x, n, "uniform");
    EACH_SAMPLE_KIND(kind) {
        int passes = 0;
        float got = bracket_kth(x, NULL, n, n - n / 5, true, select_bracket_work(n), &passes);
        cr_assert(got == ref_kth(x, n, n - n / 5, true));
        cr_assert_eq(passes, 2, "sample kind %d", kind); /* no fallback on noise */
    }
    free(x);
}

/* Task vectors of BF16 models, θ_k − θ0 with both rounded to BF16: few distinct magnitudes, each
 * repeated thousands of times, so the wanted rank lies inside a run of equal values. The sample's
 * bracket ends on such values, which are counted rather than copied: one counting pass, with
 * either kind of sample (a histogram bracket ending inside a bin would copy the whole run and
 * overflow). */
static float bf16_round(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    u = (u + 0x7FFFu + ((u >> 16) & 1u)) & 0xFFFF0000u;
    memcpy(&x, &u, sizeof x);
    return x;
}

Test(select_bracket, runs_of_equal_values_take_one_counting_pass) {
    const size_t n = 1 << 21;
    float *b = malloc(n * sizeof(float)), *x = malloc(n * sizeof(float));
    tu_fill_uniform(b, n, 60, 0.035f, 0.06f); /* one binade: BF16 steps of 2^-12 */
    tu_fill_uniform(x, n, 61, -0.0004f, 0.0004f); /* |τ| in {0, 1, 2} steps: the rank in a run of ~1 M */
    for (size_t i = 0; i < n; i++) {
        b[i] = bf16_round(b[i]);
        x[i] = bf16_round(b[i] + x[i]);
    }
    float *d = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) d[i] = x[i] - b[i];
    EACH_SAMPLE_KIND(kind) {
        int passes = 0;
        float got = bracket_kth(x, b, n, n - n / 5, true, select_bracket_work(n), &passes);
        cr_assert(got == ref_kth(d, n, n - n / 5, true));
        cr_assert_eq(passes, 2, "sample kind %d: %d passes", kind, passes);
    }
    /* three values whose keys are not multiples of a histogram bin: the bracket must end on the
     * value itself, not on its bin's edges */
    for (size_t i = 0; i < n; i++) x[i] = 0.3f * (float)(1 + i % 3);
    /* inside the run of 0.9; the last 0.3 and the first 0.6 (the bracket's ends in two runs) */
    const size_t ranks[] = {n - n / 5, (n + 2) / 3 - 1, (n + 2) / 3};
    EACH_SAMPLE_KIND(kind)
    for (int ri = 0; ri < 3; ri++) {
        int passes = 0;
        float got = bracket_kth(x, NULL, n, ranks[ri], true, select_bracket_work(n), &passes);
        cr_assert(got == ref_kth(x, n, ranks[ri], true));
        cr_assert_eq(passes, 2, "three values, rank %zu, sample kind %d: %d passes", ranks[ri], kind, passes);
    }
    free(b);
    free(x);
    free(d);
}

Test(select_bracket, all_equal_and_all_zero) {
    const size_t n = 200003;
    float *x = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = -0.25f;
    check_bracket(x, n, "all -0.25");
    for (size_t i = 0; i < n; i++) x[i] = i % 3 ? 0.0f : -0.0f;
    check_bracket(x, n, "zeros");
    /* two values only: every bracket key is one of them */
    for (size_t i = 0; i < n; i++) x[i] = i % 5 == 0 ? 2.0f : -1.0f;
    check_bracket(x, n, "two values");
    free(x);
}

Test(select_bracket, denormals_and_mixed_scales) {
    const size_t n = 250001;
    float *x = malloc(n * sizeof(float));
    tu_fill_uniform(x, n, 33, -1.0f, 1.0f);
    for (size_t i = 0; i < n; i++) {
        if (i % 4 == 1) x[i] *= 1e-39f; /* denormal */
        if (i % 4 == 2) x[i] *= 1e20f;
        if (i % 11 == 0) x[i] = i & 1 ? 1.4e-45f : -1.4e-45f; /* the smallest denormal, tied */
    }
    check_bracket(x, n, "denormals");
    free(x);
}

/* NaN is outside the contract, but its bit pattern orders it above +inf in both modes: the
 * bracketed mode returns what the radix select returns. */
Test(select_bracket, nan_as_radix) {
    const size_t n = 200000;
    float *x = malloc(n * sizeof(float));
    tu_fill_uniform(x, n, 34, -1.0f, 1.0f);
    for (size_t i = 0; i < n; i += 7) x[i] = NAN;
    size_t ranks[] = {0, n / 2, n - n / 10, n - 1};
    EACH_SAMPLE_KIND(kind)
    for (int absval = 0; absval < 2; absval++)
        for (size_t ri = 0; ri < 4; ri++) {
            float got = bracket_kth(x, NULL, n, ranks[ri], absval, select_bracket_work(n), NULL);
            float want = select_kth(x, n, ranks[ri], absval);
            cr_assert(!memcmp(&got, &want, sizeof got), "abs=%d rank %zu", absval, ranks[ri]);
        }
    free(x);
}

Test(select_bracket, diff_equals_materialised_differences) {
    const size_t n = 300001;
    float *x = tie_heavy(n, 35), *sub = tie_heavy(n, 36), *d = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) d[i] = x[i] - sub[i];
    size_t ranks[] = {0, n / 7, n / 2, n - n / 5, n - 1};
    EACH_SAMPLE_KIND(kind)
    for (int absval = 0; absval < 2; absval++)
        for (size_t ri = 0; ri < 5; ri++) {
            float got = bracket_kth(x, sub, n, ranks[ri], absval, select_bracket_work(n), NULL);
            cr_assert(got == ref_kth(d, n, ranks[ri], absval), "abs=%d rank %zu", absval, ranks[ri]);
        }
    free(x);
    free(sub);
    free(d);
}

/* Inputs the sample misrepresents: the sampled values are small and the others large (the rank
 * lies above the bracket), or the others crowd the bracket's inside past the workspace (the
 * copies overflow). Both fall back to the radix passes and stay exact. */
Test(select_bracket, sample_miss_and_overflow_fall_back) {
    const size_t n = 1 << 19;
    float *x = malloc(n * sizeof(float));
    EACH_SAMPLE_KIND(kind) {
        tu_fill_uniform(x, n, 37, 0.0f, 1.0f);
        for (size_t i = 0; i < n; i++)
            if (!select_in_sample(i)) x[i] += 2.0f;
        int passes = 0;
        float got = bracket_kth(x, NULL, n, n / 2, true, select_bracket_work(n), &passes);
        cr_assert(got == ref_kth(x, n, n / 2, true));
        cr_assert_eq(passes, 4, "miss (sample kind %d): %d passes", kind, passes);
        tu_fill_uniform(x, n, 38, 0.0f, 1.0f);
        for (size_t i = 0; i < n; i++)
            if (!select_in_sample(i)) x[i] = 0.5f + (x[i] - 0.5f) * 1e-3f; /* distinct, all near the median */
        got = bracket_kth(x, NULL, n, n / 2, true, select_bracket_work(n), &passes);
        cr_assert(got == ref_kth(x, n, n / 2, true));
        cr_assert_eq(passes, 4, "overflow (sample kind %d): %d passes", kind, passes);
    }
    free(x);
}

/* The bracketed select of x[0..n) fed whole each pass, with the design effect its sample measured
 * (select_ctx.deff); *passes as bracket_kth_isa. */
static float bracket_kth_deff(const float *x, size_t n, uint64_t rank, size_t work_len, double *deff, int *passes) {
    float *work = malloc(work_len * sizeof(float));
    cr_assert_not_null(work);
    select_ctx s;
    tt_err e = {0};
    cr_assert_eq(select_init_bracket(&s, rank, true, n, work, work_len, &e), 0);
    int pass = 0;
    do {
        select_feed(&s, x, n);
        if (pass++ == 0) *deff = 0;
    } while (select_next_pass(&s));
    *deff = s.deff;
    float v = select_value(&s);
    select_free(&s);
    free(work);
    *passes = pass;
    return v;
}

/* Runs whose values are alike (blocks of 1024 sharing a scale between 1 and 10^4, as rows of a
 * weight matrix do): the sample measures a large design effect and widens its bracket, which then
 * holds the rank (one counting pass) where a margin for independent values (deff 1) misses it. Noise
 * measures about 1. */
Test(select_bracket, runs_alike_widen_the_bracket) {
    const size_t n = (size_t)1 << 21, block = 1024;
    float *x = malloc(n * sizeof(float)), *u = malloc(n / block * sizeof(float));
    cr_assert(x && u);
    tu_fill_uniform(x, n, 41, -1.0f, 1.0f);
    tu_fill_uniform(u, n / block, 42, 0.0f, 4.0f);
    for (size_t i = 0; i < n; i++) x[i] *= powf(10.0f, u[i / block]);
    size_t rank = n - n / 5;
    size_t roomy = 2 * select_bracket_work(n) + 2 * n; /* room for every copy: the margin is not narrowed */
    float want = ref_kth(x, n, rank, true);
    EACH_SAMPLE_KIND(kind) {
        double deff = 0;
        int passes = 0;
        float got = bracket_kth_deff(x, n, rank, roomy, &deff, &passes);
        cr_assert(got == want, "sample kind %d: %g, qsort %g", kind, (double)got, (double)want);
        cr_assert(deff > 20, "sample kind %d: design effect %g", kind, deff);
        cr_assert_eq(passes, 2, "sample kind %d: %d passes (deff %g)", kind, passes, deff);
    }
    tu_fill_uniform(x, n, 43, -1.0f, 1.0f);
    want = ref_kth(x, n, rank, true);
    EACH_SAMPLE_KIND(kind) {
        double deff = 0;
        int passes = 0;
        float got = bracket_kth_deff(x, n, rank, roomy, &deff, &passes);
        cr_assert(got == want);
        cr_assert(deff >= 1 && deff < 2.5, "noise, sample kind %d: design effect %g", kind, deff);
        cr_assert_eq(passes, 2);
    }
    free(x);
    free(u);
}

/* Too small a stream or workspace: the radix mode (2 passes), same value. */
Test(select_bracket, small_stays_radix) {
    const size_t n = 5000; /* fewer than SELECT_SAMPLE_MIN sampled values */
    float *x = tie_heavy(n, 39);
    cr_assert_eq(select_bracket_work(n), SIZE_MAX);
    int passes = 0;
    float got = bracket_kth(x, NULL, n, n / 3, true, 1 << 16, &passes);
    cr_assert(got == ref_kth(x, n, n / 3, true));
    cr_assert_eq(passes, 2);
    free(x);
    const size_t m = 1 << 18;
    x = tie_heavy(m, 40);
    got = bracket_kth(x, NULL, m, m / 3, true, select_bracket_work(m) - 1, &passes);
    cr_assert(got == ref_kth(x, m, m / 3, true));
    free(x);
}

Test(select_bracket, thread_count_independent) {
    const size_t n = 1 << 20;
    float *x = malloc(n * sizeof(float));
    tu_fill_uniform(x, n, 41, -2.0f, 2.0f);
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    float a = bracket_kth(x, NULL, n, n / 3, true, select_bracket_work(n), NULL);
    omp_set_num_threads(2);
    float b = bracket_kth(x, NULL, n, n / 3, true, select_bracket_work(n), NULL);
    omp_set_num_threads(saved);
    cr_assert(a == b && a == ref_kth(x, n, n / 3, true));
    free(x);
}

/* TIES's loop: several selections fed together by select_feed_diff_multi, one of them on an input
 * its sample misses — it takes the radix passes while the others are done and skipped. */
Test(select_bracket, multi_with_one_fallback) {
    const size_t n = 1 << 19, cut = 100000;
    const int ns = 3;
    float *x[3], *sub = malloc(n * sizeof(float)), *d = malloc(n * sizeof(float));
    tu_fill_uniform(sub, n, 50, -0.5f, 0.5f);
    for (int j = 0; j < ns; j++) {
        x[j] = malloc(n * sizeof(float));
        tu_fill_uniform(x[j], n, 51 + (uint64_t)j, -1.0f, 1.0f);
    }
    for (size_t i = 0; i < n; i++)
        if (!select_in_sample(i)) x[1][i] += 3.0f; /* |x − sub| of the unsampled values is larger */
    EACH_SAMPLE_KIND(kind) {
    size_t wl = select_bracket_work(n);
    float *work = malloc((size_t)ns * wl * sizeof(float));
    for (int li = 0; li < 2; li++) { /* the AVX-512 bracket kernel, then the baseline one */
    cpu_isa_cap(li ? CPU_ISA_BASE : CPU_ISA_AVX512);
    select_ctx s[3];
    tt_err e = {0};
    for (int j = 0; j < ns; j++) cr_assert_eq(select_init_bracket(&s[j], n / 2 + (size_t)j, true, n, work + j * wl, wl, &e), 0);
    bool more;
    int passes = 0;
    do {
        const float *xa[3] = {x[0], x[1], x[2]}, *xb[3] = {x[0] + cut, x[1] + cut, x[2] + cut};
        select_feed_diff_multi(s, ns, xa, sub, cut);
        select_feed_diff_multi(s, ns, xb, sub + cut, n - cut);
        more = false;
        for (int j = 0; j < ns; j++)
            if (!select_done(&s[j])) more |= select_next_pass(&s[j]);
        passes++;
    } while (more);
    cr_assert_eq(passes, 4);
    for (int j = 0; j < ns; j++) {
        for (size_t i = 0; i < n; i++) d[i] = x[j][i] - sub[i];
        float want = ref_kth(d, n, n / 2 + (size_t)j, true);
        cr_assert(select_value(&s[j]) == want, "%s selection %d: %g vs %g", cpu_isa_name(cpu_isa_level()), j,
                  (double)select_value(&s[j]), (double)want);
        select_free(&s[j]);
    }
    }
    cpu_isa_cap(CPU_ISA_AVX512);
    free(work);
    }
    for (int j = 0; j < ns; j++) free(x[j]);
    free(sub);
    free(d);
}
