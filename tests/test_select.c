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
