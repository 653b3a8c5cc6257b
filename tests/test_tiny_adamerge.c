/* test_tiny_adamerge.c — AdaMerging and Model Tinting on the tiny suite: dL/dλ (layer-wise and
 * task-wise) and the tint gradients against central finite differences; adaptation lowers the
 * entropy and beats Task Arithmetic. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "adamerge/adamerge.h"
#include "baselines/methods.h"
#include "tests/testutil.h"

typedef struct env {
    suite s;
    merge_ctx ctx;
    float *tv;
} env;

static void env_open(env *v, const merge_method *m, const char *const *sets, int n_sets) {
    tt_err e = {0};
    tu_open_tiny_suite(&v->s);
    cr_assert_eq(merge_ctx_open(&v->ctx, &v->s, m, sets, n_sets, 0, &e), 0, "%s", e.msg);
    v->tv = adapt_task_vectors(&v->ctx, &e);
    cr_assert_not_null(v->tv, "%s", e.msg);
}

static void env_close(env *v) {
    free(v->tv);
    merge_ctx_close(&v->ctx);
    suite_close(&v->s);
}

/* Central differences on a spread of coefficients; eps 2e-3 on λ in (0.2, 0.8), away from the
 * clamp (truncation ~eps^2, f32 noise in the loss ~1e-6 / eps). Tolerance
 * |analytic - fd| <= 2e-3 + 3e-2 |fd| (f32 model, loss ~ K nats). */
static void check_lambda_grads(bool layerwise) {
    env v;
    env_open(&v, &method_adamerging, NULL, 0);
    adapt_opts o = {.layerwise = layerwise, .batch = 8, .accum = 1, .loss = ADAPT_ENTROPY};
    int n = v.ctx.K * (layerwise ? v.ctx.pre.lay.count : 1);
    float *lam = malloc((size_t)n * sizeof(float)), *grad = calloc((size_t)n, sizeof(float)),
          *scratch = calloc((size_t)n, sizeof(float));
    tu_fill_uniform(lam, (size_t)n, 42, 0.2f, 0.8f);
    double loss, lp, lm;
    tt_err e = {0};
    cr_assert_eq(adapt_objective(&v.ctx, v.tv, &o, lam, NULL, &loss, grad, NULL, &e), 0, "%s", e.msg);
    cr_assert(isfinite(loss) && loss > 0, "loss %g", loss);
    int checked = 0, nonzero = 0;
    for (int c = 0; c < n; c += (n > 12 ? n / 12 : 1)) {
        const float eps = 2e-3f, keep = lam[c];
        lam[c] = keep + eps;
        cr_assert_eq(adapt_objective(&v.ctx, v.tv, &o, lam, NULL, &lp, scratch, NULL, &e), 0);
        lam[c] = keep - eps;
        cr_assert_eq(adapt_objective(&v.ctx, v.tv, &o, lam, NULL, &lm, scratch, NULL, &e), 0);
        lam[c] = keep;
        double fd = (lp - lm) / (2 * eps);
        cr_expect(fabs(grad[c] - fd) <= 2e-3 + 3e-2 * fabs(fd), "λ[%d]: analytic %.6g fd %.6g", c, (double)grad[c], fd);
        checked++;
        nonzero += fabs(fd) > 1e-3;
    }
    cr_assert_geq(checked, layerwise ? 12 : 3);
    cr_assert_gt(nonzero, 0, "every checked gradient is ~0: the check proves nothing");
    free(lam);
    free(grad);
    free(scratch);
    env_close(&v);
}

Test(adamerge, layerwise_lambda_gradient_matches_fd, .timeout = 300) { check_lambda_grads(true); }
Test(adamerge, taskwise_lambda_gradient_matches_fd, .timeout = 300) { check_lambda_grads(false); }

/* Tinting: the head gradient (pseudo-label CE, per-task steps) against finite differences on
 * a few entries of every task's zero-shot head (the tint starts from it). */
Test(tinting, head_gradient_matches_fd, .timeout = 300) {
    env v;
    env_open(&v, &method_tinting, NULL, 0);
    adapt_opts o = {.layerwise = true, .batch = 8, .accum = 1, .per_task_steps = true, .train_heads = true,
                    .loss = ADAPT_PSEUDO};
    int n = v.ctx.K * v.ctx.pre.lay.count, D = v.s.cfg.output_dim;
    float *lam = malloc((size_t)n * sizeof(float)), *grad = calloc((size_t)n, sizeof(float));
    tu_fill_uniform(lam, (size_t)n, 7, 0.2f, 0.8f);
    /* tints = the zero-shot heads, perturbed: W then b, [C*D + C] per task */
    float *hg[MERGE_MAX_TASKS] = {0}, *tint[MERGE_MAX_TASKS] = {0};
    for (int k = 0; k < v.ctx.K; k++) {
        size_t hn = (size_t)v.s.tasks[k].classes * (D + 1);
        hg[k] = calloc(hn, sizeof(float));
        tint[k] = malloc(hn * sizeof(float));
        tu_fill_uniform(tint[k], hn, 100 + (uint64_t)k, -0.05f, 0.05f);
        for (size_t i = 0; i < (size_t)v.s.tasks[k].classes * D; i++) tint[k][i] += v.s.tasks[k].head.W[i];
    }
    double loss, lp, lm;
    tt_err e = {0};
    cr_assert_eq(adapt_objective(&v.ctx, v.tv, &o, lam, (const float *const *)tint, &loss, grad, hg, &e), 0, "%s", e.msg);
    cr_assert(isfinite(loss) && loss > 0 && loss < 100, "tinting loss %g", loss);
    for (int k = 0; k < v.ctx.K; k++) {
        float *W = tint[k];
        size_t nw = (size_t)v.s.tasks[k].classes * (D + 1); /* weights and biases */
        for (size_t i = 0; i < nw; i += nw / 6) {
            const float eps = 1e-2f, keep = W[i];
            W[i] = keep + eps;
            cr_assert_eq(adapt_objective(&v.ctx, v.tv, &o, lam, (const float *const *)tint, &lp, grad, NULL, &e), 0);
            W[i] = keep - eps;
            cr_assert_eq(adapt_objective(&v.ctx, v.tv, &o, lam, (const float *const *)tint, &lm, grad, NULL, &e), 0);
            W[i] = keep;
            double fd = (lp - lm) / (2 * eps);
            cr_expect(fabs(hg[k][i] - fd) <= 2e-3 + 3e-2 * fabs(fd), "task %d head[%zu]: analytic %.6g fd %.6g", k, i,
                      (double)hg[k][i], fd);
        }
    }
    for (int k = 0; k < v.ctx.K; k++) { /* every objective call reads all the tints */
        free(hg[k]);
        free(tint[k]);
    }
    free(lam);
    free(grad);
    env_close(&v);
}

/* Adaptation lowers the mean entropy of the test predictions (the objective it optimises).
 * Whether that beats Task Arithmetic is a property of the suite, not of the optimiser: on tiny
 * and vision8 as built today it does not (entropy and accuracy are anti-correlated, see the
 * README, "AdaMerging on our suites"), so the comparison is printed, not asserted. */
Test(adamerge, adaptation_lowers_entropy, .timeout = 600) {
    tt_err e = {0};
    env v;
    env_open(&v, &method_ta, NULL, 0);
    cr_assert_eq(method_ta.run(&v.ctx, &e), 0, "%s", e.msg);
    merge_eval ev;
    cr_assert_eq(merge_eval_init(&ev, &v.ctx, &e), 0);
    double ta = merge_eval_tasks(&ev, &v.ctx, true, NULL, NULL);
    merge_eval_free(&ev);
    env_close(&v);

    const char *sets[] = {"steps=150"};
    env_open(&v, &method_adamerging, sets, 1);
    adapt_opts o;
    cr_assert_eq(adamerge_opts(&v.ctx, &o, &e), 0, "%s", e.msg);
    o.layerwise = true;
    adapt_result r;
    cr_assert_eq(adapt_run(&v.ctx, v.tv, &o, &r, &e), 0, "%s", e.msg);
    double first = 0, last = 0;
    for (int i = 0; i < 10; i++) {
        first += r.curve[i].entropy / 10;
        last += r.curve[r.n_curve - 1 - i].entropy / 10;
    }
    cr_expect_lt(last, 0.98 * first, "entropy %.4f -> %.4f", first, last);
    cr_assert_eq(merge_eval_init(&ev, &v.ctx, &e), 0);
    double ada = merge_eval_tasks(&ev, &v.ctx, true, NULL, NULL);
    merge_eval_free(&ev);
    fprintf(stderr, "tiny: TA %.2f, AdaMerging %.2f (entropy %.3f -> %.3f)\n", ta, ada, first, last);
    adapt_result_free(&r);
    env_close(&v);
}
