/* test_awd.c — AWD's coefficient-space kernels (baselines/awd.c, kernels.h) against a naive
 * full-space reference written here: δ is a plain d-vector, τ̂_i = τ_i − δ is formed explicitly,
 * the cosines and the gradient of every |cos(τ̂_i, τ̂_j)| come straight from the definition
 * (pair by pair, not through the Gram matrix or the per-task weights the kernel uses).
 *   - the Gram kernel equals a naive double sum and does not depend on the thread count;
 *   - L and its closed-form gradient (coefficient form, mapped back to the full space) match the
 *     naive L and central finite differences of it, globally and per group, at δ = 0 and δ ≠ 0;
 *   - N plain (and proximal) gradient steps in coefficient space give the δ of N naive
 *     full-space steps, and the same L_O along the way;
 *   - α large: plain steps on ‖δ‖ keep overshooting through 0, the proximal step gives δ = 0;
 *   - a non-finite loss is reported. */
#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "baselines/kernels.h"
#include "tests/testutil.h"

#define K 3
#define D 50

/* Test vectors: τ_i = s + noise_i (a shared direction makes the cosines ~0.5). The grouped
 * variant has 3 groups [0,20) [20,40) [40,50); τ_0 is zero in the second and only τ_2 is
 * non-zero in the third (an inactive group). */
static float tau[K][D];
static double taud[K][D];
static const int bounds_global[2] = {0, D}, bounds_groups[4] = {0, 20, 40, D};

static void make_tau(bool edge_groups) {
    float s[D];
    tu_fill_uniform(s, D, 11, -0.4f, 0.4f);
    for (int i = 0; i < K; i++) {
        tu_fill_uniform(tau[i], D, 100 + (uint64_t)i, -0.3f, 0.3f);
        for (int x = 0; x < D; x++) tau[i][x] += s[x];
    }
    if (edge_groups) {
        for (int x = 20; x < 40; x++) tau[0][x] = 0;
        for (int x = 40; x < D; x++) tau[0][x] = tau[1][x] = 0;
    }
    for (int i = 0; i < K; i++)
        for (int x = 0; x < D; x++) taud[i][x] = tau[i][x];
}

static void gram(const int *bounds, int groups, double *G) {
    memset(G, 0, sizeof(double) * groups * K * K);
    double *scratch = malloc(awd_gram_scratch(K) * sizeof(double));
    for (int g = 0; g < groups; g++) {
        const float *p[K];
        for (int i = 0; i < K; i++) p[i] = tau[i] + bounds[g];
        awd_gram_add(G + g * K * K, p, K, (size_t)(bounds[g + 1] - bounds[g]), scratch);
    }
    free(scratch);
}

/* δ = Σ_m b_m τ_m per group */
static void coef_to_delta(const int *bounds, int groups, const double *b, double *delta) {
    for (int g = 0; g < groups; g++)
        for (int x = bounds[g]; x < bounds[g + 1]; x++) {
            delta[x] = 0;
            for (int m = 0; m < K; m++) delta[x] += b[g * K + m] * taud[m][x];
        }
}

static double dot(const double *a, const double *b, int lo, int hi) {
    double s = 0;
    for (int x = lo; x < hi; x++) s += a[x] * b[x];
    return s;
}

/* The naive objective and its gradient in the full space (grad may be NULL). */
static double naive_loss(const int *bounds, int groups, const double *delta, double alpha, bool with_norm,
                         double *lo_out, double *grad) {
    double v[K][D], nd = sqrt(dot(delta, delta, 0, D)), lo = 0;
    for (int i = 0; i < K; i++)
        for (int x = 0; x < D; x++) v[i][x] = taud[i][x] - delta[x];
    int active = 0;
    bool nz[8][K];
    for (int g = 0; g < groups; g++) {
        int cnt = 0;
        for (int i = 0; i < K; i++) cnt += nz[g][i] = dot(taud[i], taud[i], bounds[g], bounds[g + 1]) > 0;
        active += cnt >= 2;
    }
    if (grad) memset(grad, 0, D * sizeof(double));
    for (int g = 0; g < groups; g++) {
        int a = bounds[g], e = bounds[g + 1], cnt = 0;
        for (int i = 0; i < K; i++) cnt += nz[g][i];
        if (cnt < 2) continue;
        double w = 1.0 / ((double)K * (K - 1) * active); /* weight of each ordered pair */
        for (int i = 0; i < K; i++)
            for (int j = i + 1; j < K; j++) {
                if (!nz[g][i] || !nz[g][j]) continue;
                double ni = sqrt(dot(v[i], v[i], a, e)), nj = sqrt(dot(v[j], v[j], a, e));
                if (ni == 0 || nj == 0) continue;
                double c = dot(v[i], v[j], a, e) / (ni * nj), s = c > 0 ? 1 : c < 0 ? -1 : 0;
                lo += 2 * w * fabs(c); /* (i,j) and (j,i) */
                if (grad) /* d|c|/dδ = s (−(v_i + v_j)/(n_i n_j) + c (v_i/n_i² + v_j/n_j²)), twice */
                    for (int x = a; x < e; x++)
                        grad[x] += 2 * w * s *
                                   (-(v[i][x] + v[j][x]) / (ni * nj) + c * (v[i][x] / (ni * ni) + v[j][x] / (nj * nj)));
            }
    }
    if (grad && with_norm && nd > 0)
        for (int x = 0; x < D; x++) grad[x] += alpha * delta[x] / nd;
    if (lo_out) *lo_out = lo;
    return lo + (with_norm ? alpha * nd : 0);
}

static double rel_diff(const double *a, const double *b, int n) {
    double num = 0, den = 0;
    for (int i = 0; i < n; i++) num += (a[i] - b[i]) * (a[i] - b[i]), den += b[i] * b[i];
    return sqrt(num) / (den > 0 ? sqrt(den) : 1);
}

Test(awd, gram_equals_naive_sum_and_ignores_threads) {
    const size_t sizes[] = {1, 7, 1000, 70001};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        size_t n = sizes[si];
        float *v[4];
        for (int i = 0; i < 4; i++) {
            v[i] = malloc(n * sizeof(float));
            tu_fill_uniform(v[i], n, 7 + (uint64_t)i, -1, 1);
        }
        double G1[16] = {0}, G2[16] = {0}, *scratch = malloc(awd_gram_scratch(4) * sizeof(double));
        int threads = omp_get_max_threads();
        omp_set_num_threads(1);
        awd_gram_add(G1, (const float *const *)v, 4, n, scratch);
        omp_set_num_threads(2);
        awd_gram_add(G2, (const float *const *)v, 4, n, scratch);
        omp_set_num_threads(threads);
        cr_assert_arr_eq(G1, G2, sizeof G1, "n=%zu: the Gram matrix depends on the thread count", n);
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++) {
                double want = 0;
                for (size_t x = 0; x < n; x++) want += (double)v[i][x] * v[j][x];
                cr_assert(fabs(G1[i * 4 + j] - want) <= 1e-12 * (1 + fabs(want)),
                          "n=%zu G[%d][%d] = %.17g, naive %.17g", n, i, j, G1[i * 4 + j], want);
            }
        /* it accumulates */
        awd_gram_add(G1, (const float *const *)v, 4, n, scratch);
        cr_assert(fabs(G1[1] - 2 * G2[1]) <= 1e-12 * (1 + fabs(G2[1])));
        for (int i = 0; i < 4; i++) free(v[i]);
        free(scratch);
    }
}

/* L and ∇_δ L = Σ_m coef_m τ_m against the naive L and central differences of it over every one
 * of the D coordinates of δ (double; h = 1e-6: truncation ~1e-12, rounding ~1e-10). */
static void check_gradient(bool edge, const int *bounds, int groups, const double *b, bool with_norm) {
    make_tau(edge);
    double G[3 * K * K], coef[3 * K], delta[D], want_grad[D], got_grad[D], lo, naive_lo;
    const double alpha = 0.7; /* large enough that the norm term matters */
    gram(bounds, groups, G);
    double L = awd_objective(G, groups, K, b, alpha, with_norm, &lo, NULL, coef);
    coef_to_delta(bounds, groups, b, delta);
    double want = naive_loss(bounds, groups, delta, alpha, with_norm, &naive_lo, want_grad);
    cr_assert(fabs(L - want) <= 1e-12 * fabs(want) && fabs(lo - naive_lo) <= 1e-12, "L %.17g naive %.17g", L, want);
    cr_assert_gt(naive_lo, 0.05, "test vectors are too orthogonal to test anything (L_O %g)", naive_lo);
    coef_to_delta(bounds, groups, coef, got_grad);
    cr_assert_lt(rel_diff(got_grad, want_grad, D), 1e-10, "closed form vs naive analytic gradient");
    int nonzero = 0;
    for (int x = 0; x < D; x++) {
        const double h = 1e-6, keep = delta[x];
        delta[x] = keep + h;
        double lp = naive_loss(bounds, groups, delta, alpha, with_norm, NULL, NULL);
        delta[x] = keep - h;
        double lm = naive_loss(bounds, groups, delta, alpha, with_norm, NULL, NULL);
        delta[x] = keep;
        double fd = (lp - lm) / (2 * h);
        cr_assert(fabs(got_grad[x] - fd) <= 1e-7 + 1e-6 * fabs(fd), "dL/ddelta[%d]: closed form %.10g, fd %.10g", x,
                  got_grad[x], fd);
        nonzero += fabs(fd) > 1e-3;
    }
    cr_assert_gt(nonzero, D / 2, "the gradient is mostly zero: the check would prove nothing");
    /* and the chain rule into coefficient space: dL/db = G coef */
    double bb[3 * K];
    memcpy(bb, b, sizeof(double) * groups * K);
    for (int c = 0; c < groups * K; c++) {
        int g = c / K, m = c % K;
        double want_db = 0;
        for (int j = 0; j < K; j++) want_db += G[g * K * K + m * K + j] * coef[g * K + j];
        const double h = 1e-7, keep = bb[c];
        bb[c] = keep + h;
        double lp = awd_objective(G, groups, K, bb, alpha, with_norm, NULL, NULL, NULL);
        bb[c] = keep - h;
        double lm = awd_objective(G, groups, K, bb, alpha, with_norm, NULL, NULL, NULL);
        bb[c] = keep;
        double fd = (lp - lm) / (2 * h);
        cr_assert(fabs(want_db - fd) <= 1e-6 + 1e-5 * fabs(fd), "dL/db[%d]: G coef %.10g, fd %.10g", c, want_db, fd);
    }
}

Test(awd, gradient_matches_finite_differences_global) {
    const double b[K] = {0.21, -0.13, 0.34};
    check_gradient(false, bounds_global, 1, b, true);
}

Test(awd, gradient_matches_finite_differences_per_group) {
    const double b[3 * K] = {0.21, -0.13, 0.34, 0.05, 0.4, -0.2, 0.3, 0.1, 0.25};
    check_gradient(true, bounds_groups, 3, b, true);
}

/* δ = 0: ‖δ‖ is not differentiable, so check L_O's gradient alone there (the iteration's first step). */
Test(awd, gradient_at_zero_delta) {
    const double b[3 * K] = {0};
    check_gradient(false, bounds_global, 1, b, false);
    check_gradient(true, bounds_groups, 3, b, false);
}

/* The naive full-space iteration (plain or proximal), starting from δ0 = Σ b0_m τ_m. */
static void naive_descend(const int *bounds, int groups, const awd_opts *o, double *delta, double *trace) {
    double g[D];
    for (int t = 0; t <= o->iters; t++) {
        naive_loss(bounds, groups, delta, o->alpha, !o->prox, &trace[t], g);
        if (t == o->iters) break;
        for (int x = 0; x < D; x++) delta[x] -= o->beta * g[x];
        if (o->prox) {
            double r = sqrt(dot(delta, delta, 0, D)), f = r > o->beta * o->alpha ? 1 - o->beta * o->alpha / r : 0;
            for (int x = 0; x < D; x++) delta[x] *= f;
        }
    }
}

Test(awd, coefficient_iteration_equals_full_space_iteration) {
    for (int edge = 0; edge < 2; edge++)
        for (int prox = 0; prox < 2; prox++)
            for (int init = 0; init < 2; init++) {
                const int *bounds = edge ? bounds_groups : bounds_global;
                int groups = edge ? 3 : 1;
                make_tau(edge);
                double G[3 * K * K], b[3 * K], delta[D], want[D], trace[301], want_trace[301];
                gram(bounds, groups, G);
                for (int c = 0; c < groups * K; c++) b[c] = init ? 1.0 / K : 0;
                awd_opts o = {.alpha = 0.1, .beta = 0.01, .iters = 300, .prox = prox};
                coef_to_delta(bounds, groups, b, want);
                cr_assert_eq(awd_descend(G, groups, K, &o, b, trace), 0);
                naive_descend(bounds, groups, &o, want, want_trace);
                coef_to_delta(bounds, groups, b, delta);
                const char *what = edge ? "groups" : "global";
                cr_assert_lt(rel_diff(delta, want, D), 1e-5,
                             "%s prox=%d init=%d: delta differs from the naive iteration", what, prox, init);
                for (int t = 0; t <= 300; t++)
                    cr_assert(fabs(trace[t] - want_trace[t]) <= 1e-7, "%s prox=%d init=%d: L_O[%d] %.10g naive %.10g",
                              what, prox, init, t, trace[t], want_trace[t]);
                /* the iteration did something: L_O fell and δ is not small */
                cr_assert_lt(trace[300], 0.8 * trace[0], "%s prox=%d init=%d: L_O %g -> %g", what, prox, init, trace[0],
                             trace[300]);
                cr_assert_gt(sqrt(dot(delta, delta, 0, D)), 0.05);
            }
}

/* α = 1000, β = 0.01 (βα = 10, far above ‖τ‖ ≈ 2): a plain step on ‖δ‖ moves δ by 10 whatever its
 * size, so ‖δ‖ alternates between ~0 and ~10 instead of settling; the proximal step gives 0. */
Test(awd, large_alpha_plain_steps_overshoot_prox_gives_zero) {
    make_tau(false);
    double G[K * K];
    gram(bounds_global, 1, G);
    double most = 0;
    for (int iters = 20; iters <= 21; iters++) {
        double b[K] = {0}, nd;
        awd_opts o = {.alpha = 1000, .beta = 0.01, .iters = iters};
        cr_assert_eq(awd_descend(G, 1, K, &o, b, NULL), 0);
        awd_objective(G, 1, K, b, o.alpha, true, NULL, &nd, NULL);
        most = fmax(most, nd);
        o.prox = true;
        memset(b, 0, sizeof b);
        cr_assert_eq(awd_descend(G, 1, K, &o, b, NULL), 0);
        for (int m = 0; m < K; m++) cr_assert_eq(b[m], 0.0, "prox: b[%d] = %g", m, b[m]);
    }
    cr_assert_gt(most, 5, "plain steps settled at |delta| = %g", most);
}

Test(awd, non_finite_loss_is_reported) {
    make_tau(false);
    double G[K * K], b[K] = {0};
    gram(bounds_global, 1, G);
    awd_opts o = {.alpha = 0.1, .beta = 1e200, .iters = 5};
    int rc = awd_descend(G, 1, K, &o, b, NULL);
    cr_assert(rc >= 2 && rc <= 6, "rc = %d", rc);
}
