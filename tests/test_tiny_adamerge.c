/* test_tiny_adamerge.c — AdaMerging and Model Tinting on the tiny suite: dL/dλ (layer-wise and
 * task-wise) and the tint gradients (head, and a backbone tensor θ_l + Δ_k) against central
 * finite differences; adaptation lowers the entropy (compared with Task Arithmetic); a diverging
 * run stops and keeps its best round; micro-batched steps (chunks that split a task's batch, hold
 * one, or span two tasks) give the gradients of the whole batch, and bad micro values are one line. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "adamerge/adamerge.h"
#include "baselines/methods.h"
#include "tint/tinting.h"
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

/* The central difference of the objective in one scalar *x (a λ or a tint entry) at (lam, tints),
 * expected to match `analytic`: |analytic - fd| <= 2e-3 + 3e-2 |fd| (f32 model, loss ~ K nats).
 * Returns fd. */
static double fd_expect(env *v, const adapt_opts *o, const float *lam, const float *const *tints, float *x, float eps,
                        double analytic, const char *what) {
    float *scratch = calloc((size_t)v->ctx.K * (size_t)v->ctx.pre.lay.count, sizeof(float));
    double lp, lm;
    tt_err e = {0};
    const float keep = *x;
    *x = keep + eps;
    cr_assert_eq(adapt_objective(&v->ctx, v->tv, o, lam, tints, &lp, scratch, NULL, &e), 0, "%s", e.msg);
    *x = keep - eps;
    cr_assert_eq(adapt_objective(&v->ctx, v->tv, o, lam, tints, &lm, scratch, NULL, &e), 0, "%s", e.msg);
    *x = keep;
    free(scratch);
    double fd = (lp - lm) / (2 * eps);
    cr_expect(fabs(analytic - fd) <= 2e-3 + 3e-2 * fabs(fd), "%s: analytic %.6g fd %.6g", what, analytic, fd);
    return fd;
}

/* Central differences on a spread of coefficients; eps 2e-3 on λ in (0.2, 0.8), away from the
 * clamp (truncation ~eps^2, f32 noise in the loss ~1e-6 / eps); tolerance of fd_expect. */
static void check_lambda_grads(bool layerwise) {
    env v;
    env_open(&v, &method_adamerging, NULL, 0);
    adapt_opts o = {.layerwise = layerwise, .batch = 8, .accum = 1, .loss = ADAPT_ENTROPY};
    int n = v.ctx.K * (layerwise ? v.ctx.pre.lay.count : 1);
    float *lam = malloc((size_t)n * sizeof(float)), *grad = calloc((size_t)n, sizeof(float));
    tu_fill_uniform(lam, (size_t)n, 42, 0.2f, 0.8f);
    double loss;
    tt_err e = {0};
    cr_assert_eq(adapt_objective(&v.ctx, v.tv, &o, lam, NULL, &loss, grad, NULL, &e), 0, "%s", e.msg);
    cr_assert(isfinite(loss) && loss > 0, "loss %g", loss);
    int checked = 0, nonzero = 0;
    for (int c = 0; c < n; c += (n > 12 ? n / 12 : 1)) {
        char what[32];
        snprintf(what, sizeof what, "λ[%d]", c);
        nonzero += fabs(fd_expect(&v, &o, lam, NULL, &lam[c], 2e-3f, grad[c], what)) > 1e-3;
        checked++;
    }
    cr_assert_geq(checked, layerwise ? 12 : 3);
    cr_assert_gt(nonzero, 0, "every checked gradient is ~0: the check proves nothing");
    free(lam);
    free(grad);
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
    double loss;
    tt_err e = {0};
    cr_assert_eq(adapt_objective(&v.ctx, v.tv, &o, lam, (const float *const *)tint, &loss, grad, hg, &e), 0, "%s", e.msg);
    cr_assert(isfinite(loss) && loss > 0 && loss < 100, "tinting loss %g", loss);
    for (int k = 0; k < v.ctx.K; k++) {
        size_t nw = (size_t)v.s.tasks[k].classes * (D + 1); /* weights and biases */
        for (size_t i = 0; i < nw; i += nw / 6) {
            char what[48];
            snprintf(what, sizeof what, "task %d head[%zu]", k, i);
            fd_expect(&v, &o, lam, (const float *const *)tint, &tint[k][i], 1e-2f, hg[k][i], what);
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

/* Tinting a backbone tensor l: task k runs with θ_l + Δ_k. dL/dΔ_k on a few entries of every
 * task's Δ_k, and dL/dλ_k,l of the tinted tensor (it acts through θ_l under Δ_k) and of a spread of
 * other tensors, against central differences at Δ_k != 0 (pseudo-label CE, per-task steps).
 * eps 1e-2 on Δ (entries ~0.1), 2e-3 on λ; tolerance of fd_expect. */
static void check_tensor_tint(const char *name, int per_task) {
    env v;
    env_open(&v, &method_tinting, NULL, 0);
    const vit_layout *lay = &v.ctx.pre.lay;
    int l = vit_layout_find(lay, name);
    cr_assert_geq(l, 0, "no tensor %s", name);
    adapt_opts o = {.layerwise = true, .batch = 8, .accum = 1, .per_task_steps = true, .train_tensor = true,
                    .tensor = l, .loss = ADAPT_PSEUDO};
    int n = v.ctx.K * lay->count;
    size_t numel = lay->t[l].numel;
    float *lam = malloc((size_t)n * sizeof(float)), *grad = calloc((size_t)n, sizeof(float));
    tu_fill_uniform(lam, (size_t)n, 11, 0.2f, 0.8f);
    float *dg[MERGE_MAX_TASKS] = {0}, *delta[MERGE_MAX_TASKS] = {0};
    for (int k = 0; k < v.ctx.K; k++) {
        dg[k] = calloc(numel, sizeof(float));
        delta[k] = malloc(numel * sizeof(float));
        tu_fill_uniform(delta[k], numel, 200 + (uint64_t)k, -0.05f, 0.05f);
    }
    const float *const *tints = (const float *const *)delta;
    double loss;
    tt_err e = {0};
    cr_assert_eq(adapt_objective(&v.ctx, v.tv, &o, lam, tints, &loss, grad, dg, &e), 0, "%s", e.msg);
    cr_assert(isfinite(loss) && loss > 0 && loss < 100, "loss %g", loss);
    int nonzero = 0;
    char what[96];
    for (int k = 0; k < v.ctx.K; k++)
        for (size_t i = 0; i < numel; i += (numel + per_task - 1) / per_task) {
            snprintf(what, sizeof what, "%s task %d Δ[%zu]", name, k, i);
            nonzero += fabs(fd_expect(&v, &o, lam, tints, &delta[k][i], 1e-2f, dg[k][i], what)) > 1e-3;
        }
    cr_assert_gt(nonzero, 0, "every checked Δ gradient is ~0: the check proves nothing");
    int coef[MERGE_MAX_TASKS + 3], nc = 0;
    for (int k = 0; k < v.ctx.K; k++) coef[nc++] = k * lay->count + l; /* the tinted tensor's own λ */
    for (int c = 1; c < n && nc < v.ctx.K + 3; c += n / 3) coef[nc++] = c;
    for (int j = 0; j < nc; j++) {
        snprintf(what, sizeof what, "%s λ[%d]", name, coef[j]);
        fd_expect(&v, &o, lam, tints, &lam[coef[j]], 2e-3f, grad[coef[j]], what);
    }
    for (int k = 0; k < v.ctx.K; k++) {
        free(dg[k]);
        free(delta[k]);
    }
    free(lam);
    free(grad);
    env_close(&v);
}

Test(tinting, tensor_gradient_matches_fd_c_proj, .timeout = 600) {
    check_tensor_tint("transformer.resblocks.1.mlp.c_proj.weight", 5);
}
Test(tinting, tensor_gradient_matches_fd_ln_post_proj, .timeout = 600) {
    check_tensor_tint("ln_post.weight", 3);
    check_tensor_tint("proj", 3);
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

/* ---- divergence: stop, keep the best round, say so ---- */

/* Model Tinting's options (per-task rounds of K steps, heads trained) at a given lr. */
static adapt_opts tint_opts(float lr, int epochs, int K) {
    return (adapt_opts){.layerwise = true, .lambda_init = 0.3f, .lr = lr, .steps = epochs * K, .batch = 32,
                        .accum = 1, .per_task_steps = true, .train_heads = true, .lr_tint = lr,
                        .loss = ADAPT_PSEUDO_CONF, .diverge_factor = 10};
}

/* lr 1 makes tinting improve for a few rounds, then blow up (round loss > 10x the first). The
 * run must stop there and keep the coefficients and tints of its lowest-loss round — which a
 * run of exactly kept_step steps reproduces bit for bit (same seed: same batches and order). */
Test(adapt, divergence_keeps_the_best_round, .timeout = 300) {
    env v;
    env_open(&v, &method_tinting, NULL, 0);
    const int K = v.ctx.K;
    adapt_opts o = tint_opts(1.0f, 30, K);
    adapt_result r;
    tt_err e = {0};
    cr_assert_eq(adapt_run(&v.ctx, v.tv, &o, &r, &e), 0, "%s", e.msg);
    const adapt_stop *st = &r.stop;
    cr_assert(st->stopped, "lr 1 did not diverge in %d steps: the test needs a larger lr", o.steps);
    cr_expect(strstr(st->why, "x the first round's") != NULL, "%s", st->why);
    cr_expect_eq(r.n_curve, st->step, "the curve must end before the step that diverged");
    cr_assert_gt(st->kept_step, 0, "kept the initial coefficients: pick an lr that improves before diverging");
    cr_expect_eq(st->kept_step % K, 0, "a round starts every %d steps", K);
    /* kept_loss is the smallest complete round's loss before the stop, summed from the curve */
    double best = INFINITY;
    int best_start = -1;
    for (int s0 = 0; s0 + K <= r.n_curve; s0 += K) {
        double sum = 0;
        for (int j = 0; j < K; j++) sum += r.curve[s0 + j].loss;
        if (sum < best) best = sum, best_start = s0;
    }
    cr_expect_eq(best_start, st->kept_step);
    cr_expect(fabs(best - st->kept_loss) <= 1e-9 * fabs(best), "kept loss %.9g, curve says %.9g", st->kept_loss, best);
    const float *params = v.ctx.out.params;
    size_t total = v.ctx.out.lay.total;
    float *kept_out = malloc(total * sizeof(float));
    memcpy(kept_out, params, total * sizeof(float));

    adapt_opts o2 = o;
    o2.steps = st->kept_step;
    o2.diverge_factor = 0;
    adapt_result r2;
    cr_assert_eq(adapt_run(&v.ctx, v.tv, &o2, &r2, &e), 0, "%s", e.msg);
    cr_assert(!r2.stop.stopped);
    int n = K * r.n_coef, D = v.s.cfg.output_dim;
    cr_expect_eq(memcmp(r.lambda, r2.lambda, (size_t)n * sizeof(float)), 0, "kept λ differ from step %d's", st->kept_step);
    for (int k = 0; k < K; k++) {
        size_t hn = (size_t)v.s.tasks[k].classes * (D + 1);
        cr_expect_eq(memcmp(r.tints[k], r2.tints[k], hn * sizeof(float)), 0, "task %d: kept tint differs", k);
    }
    cr_expect_eq(memcmp(kept_out, v.ctx.out.params, total * sizeof(float)), 0, "merged weights differ");
    free(kept_out);
    adapt_result_free(&r);
    adapt_result_free(&r2);
    env_close(&v);
}

/* lr 1e38 overflows the tints: a non-finite loss stops the run; what is kept is finite. */
Test(adapt, non_finite_loss_stops_with_finite_coefficients, .timeout = 300) {
    env v;
    env_open(&v, &method_tinting, NULL, 0);
    adapt_opts o = tint_opts(1e38f, 10, v.ctx.K);
    adapt_result r;
    tt_err e = {0};
    cr_assert_eq(adapt_run(&v.ctx, v.tv, &o, &r, &e), 0, "%s", e.msg);
    cr_assert(r.stop.stopped);
    cr_expect(strstr(r.stop.why, "not finite") != NULL, "%s", r.stop.why);
    cr_expect(!isfinite(r.stop.loss));
    for (int c = 0; c < v.ctx.K * r.n_coef; c++) cr_assert(isfinite(r.lambda[c]) && r.lambda[c] >= 0 && r.lambda[c] <= 1);
    for (int k = 0; k < v.ctx.K; k++)
        for (size_t i = 0; i < (size_t)v.s.tasks[k].classes * (v.s.cfg.output_dim + 1); i++)
            cr_assert(isfinite(r.tints[k][i]), "task %d tint [%zu] = %g", k, i, (double)r.tints[k][i]);
    for (size_t i = 0; i < v.ctx.out.lay.total; i++) cr_assert(isfinite(v.ctx.out.params[i]));
    char msg[512];
    adapt_stop_message(&r, msg, sizeof msg);
    cr_expect(strstr(msg, "diverged at step") && strstr(msg, "kept") && !strchr(msg, '\n'), "%s", msg);
    adapt_result_free(&r);
    env_close(&v);
}

/* AdaMerging through the CLI: a huge lr throws every λ to the clamp edges on the first step and
 * the entropy rises; with diverge=1.05 the run stops, exits 0 with one warning line, and the
 * checkpoint holds the initial λ = 0.3 and records where it stopped. */
Test(adapt, adamerging_divergence_through_the_cli, .timeout = 300) {
    const char *dir = tu_tmpdir("adapt-div");
    cr_assert_not_null(dir);
    char out[600], cmd[2048], err[4096];
    snprintf(out, sizeof out, "%s/ada.safetensors", dir);
    snprintf(cmd, sizeof cmd, "%s merge --suite %s --method adamerging-task --set lr=1e3 --set diverge=1.05 "
             "--set steps=60 --out %s --quiet", tu_ttmerge_bin(), getenv("TTMERGE_TINY_SUITE"), out);
    cr_assert_eq(tu_run(cmd, err, sizeof err), 0, "%s", err);
    cr_expect(strstr(err, "ttmerge: warning: adaptation diverged at step") != NULL, "stderr: %s", err);
    cr_expect(strstr(err, "kept the coefficients of step 0") != NULL, "stderr: %s", err);
    cr_expect_eq(strchr(err, '\n'), err + strlen(err) - 1, "one line on stderr: %s", err);
    st_file *f;
    tt_err e = {0};
    cr_assert_eq(st_open(&f, out, &e), 0, "%s", e.msg);
    const char *rec = st_meta(f, "ttmerge.record");
    cr_assert_not_null(rec);
    cr_expect(strstr(rec, "\"stopped_early\":{\"step\":") != NULL, "record: %s", rec);
    const st_tensor *lam = st_find(f, "ttmerge.lambda");
    cr_assert_not_null(lam);
    float l[MERGE_MAX_TASKS];
    cr_assert_leq(lam->numel, MERGE_MAX_TASKS);
    cr_assert_eq(st_read_f32(f, lam, l, &e), 0, "%s", e.msg);
    for (int64_t k = 0; k < lam->numel; k++) cr_expect_eq(l[k], 0.3f, "λ[%ld] = %g", (long)k, (double)l[k]);
    st_close(f);
    snprintf(cmd, sizeof cmd, "%s merge --suite %s --method adamerging --set diverge=0.5 --out %s/x.safetensors",
             tu_ttmerge_bin(), getenv("TTMERGE_TINY_SUITE"), dir);
    cr_expect_eq(tu_run(cmd, err, sizeof err), 2);
    cr_expect(strstr(err, "diverge=0.5: expected 0 (off) or a factor > 1") != NULL, "stderr: %s", err);
    tu_rm_tree(dir);
}

/* ---- micro-batched steps (adapt_opts.micro) ----
 *
 * |micro - whole| <= MICRO_TOL * max |whole| over each gradient (measured: <= 8e-7, f32 rounding of
 * sums taken in another order), and the loss within MICRO_TOL relative. */
#define MICRO_TOL 1e-5

/* One case: the engine's options (micro = 0 is the reference) and the micro values to compare. */
typedef struct micro_case {
    const char *name;
    const merge_method *method; /* tinting: the experts' pseudo-labels are loaded */
    adapt_opts o;
    const char *tensor;         /* train_tensor: its name */
    int micro[3];               /* 0-terminated */
} micro_case;

/* tiny: 3 tasks. Joint batches of 3 x 8 = 24: micro 4 splits every task's batch, 8 holds one,
 * 12 spans two (task 0 and half of task 1, then the rest of task 1 and task 2). Per-task batches
 * of 16: micro 4 and 8 split it; pseudo-conf then scales after the last chunk. */
static const micro_case cases[] = {
    {"adamerging layer-wise, entropy, accum 2", &method_adamerging,
     {.layerwise = true, .batch = 8, .accum = 2, .loss = ADAPT_ENTROPY}, NULL, {4, 8, 12}},
    {"adamerging task-wise, entropy", &method_adamerging, {.batch = 8, .accum = 1, .loss = ADAPT_ENTROPY}, NULL,
     {4, 12}},
    {"joint pseudo", &method_tinting, {.layerwise = true, .batch = 8, .accum = 1, .loss = ADAPT_PSEUDO}, NULL,
     {4, 12}},
    {"joint pseudo-conf, whole task batches", &method_tinting,
     {.layerwise = true, .batch = 8, .accum = 1, .loss = ADAPT_PSEUDO_CONF}, NULL, {8}},
    {"tinting heads, pseudo-conf", &method_tinting,
     {.layerwise = true, .batch = 16, .accum = 1, .per_task_steps = true, .train_heads = true,
      .loss = ADAPT_PSEUDO_CONF},
     NULL, {4, 8}},
    {"tinting heads, entropy", &method_tinting,
     {.layerwise = true, .batch = 16, .accum = 1, .per_task_steps = true, .train_heads = true, .loss = ADAPT_ENTROPY},
     NULL, {8}},
    {"tinting c_proj, pseudo-conf", &method_tinting,
     {.layerwise = true, .batch = 16, .accum = 1, .per_task_steps = true, .train_tensor = true,
      .loss = ADAPT_PSEUDO_CONF},
     "transformer.resblocks.1.mlp.c_proj.weight", {4, 8}},
};

static double max_abs(const float *x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fabs(x[i]) > m ? fabs(x[i]) : m;
    return m;
}

/* got vs want within MICRO_TOL of max |want|; returns the measured max |diff| / max |want| */
static double expect_close(const char *what, const float *got, const float *want, size_t n) {
    double scale = max_abs(want, n), worst = 0;
    cr_assert_gt(scale, 0, "%s: the reference gradient is all zero: the check proves nothing", what);
    for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs((double)got[i] - want[i]) / scale);
    cr_expect_leq(worst, MICRO_TOL, "%s: max |diff| / max |g| = %.3g > %g", what, worst, MICRO_TOL);
    return worst;
}

static void run_case(const micro_case *c) {
    env v;
    env_open(&v, c->method, NULL, 0);
    adapt_opts o = c->o;
    const vit_layout *lay = &v.ctx.pre.lay;
    if (c->tensor) o.tensor = vit_layout_find(lay, c->tensor);
    cr_assert_geq(o.tensor, 0);
    const int K = v.ctx.K, D = v.s.cfg.output_dim, n = K * (o.layerwise ? lay->count : 1);
    float *lam = malloc((size_t)n * sizeof(float)), *g0 = calloc((size_t)n, sizeof(float)),
          *g = calloc((size_t)n, sizeof(float));
    tu_fill_uniform(lam, (size_t)n, 5, -0.05f, 1.05f); /* some outside the clamp */
    bool tint = o.train_heads || o.train_tensor;
    float *tints[MERGE_MAX_TASKS] = {0}, *tg0[MERGE_MAX_TASKS] = {0}, *tg[MERGE_MAX_TASKS] = {0};
    size_t tn[MERGE_MAX_TASKS] = {0};
    for (int k = 0; k < K && tint; k++) { /* the zero-shot head or Δ = 0, perturbed */
        const suite_task_info *ti = &v.s.tasks[k];
        tn[k] = o.train_heads ? (size_t)ti->classes * (D + 1) : lay->t[o.tensor].numel;
        tints[k] = malloc(tn[k] * sizeof(float));
        tg0[k] = calloc(tn[k], sizeof(float));
        tg[k] = calloc(tn[k], sizeof(float));
        tu_fill_uniform(tints[k], tn[k], 300 + (uint64_t)k, -0.05f, 0.05f);
        for (size_t i = 0; o.train_heads && i < (size_t)ti->classes * D; i++) tints[k][i] += ti->head.W[i];
    }
    const float *const *tp = tint ? (const float *const *)tints : NULL;
    double loss0, loss;
    tt_err e = {0};
    cr_assert_eq(adapt_objective(&v.ctx, v.tv, &o, lam, tp, &loss0, g0, tint ? tg0 : NULL, &e), 0, "%s", e.msg);
    cr_assert(isfinite(loss0) && loss0 > 0, "%s: loss %g", c->name, loss0);
    for (int i = 0; i < 3 && c->micro[i]; i++) {
        o.micro = c->micro[i];
        memset(g, 0, (size_t)n * sizeof(float));
        cr_assert_eq(adapt_objective(&v.ctx, v.tv, &o, lam, tp, &loss, g, tint ? tg : NULL, &e), 0, "%s micro=%d: %s",
                     c->name, o.micro, e.msg);
        char what[160];
        snprintf(what, sizeof what, "%s, micro=%d", c->name, o.micro);
        double rel = fabs(loss - loss0) / fabs(loss0);
        cr_expect_leq(rel, MICRO_TOL, "%s: loss %.9g vs %.9g", what, loss, loss0);
        double worst = expect_close(what, g, g0, (size_t)n), tworst = 0;
        for (int k = 0; k < K && tint; k++) {
            char tw[200];
            snprintf(tw, sizeof tw, "%s: task %d's tint gradient", what, k);
            tworst = fmax(tworst, expect_close(tw, tg[k], tg0[k], tn[k]));
            memset(tg[k], 0, tn[k] * sizeof(float));
        }
        fprintf(stderr, "%s: loss rel %.2g, dL/dlambda %.2g, tints %.2g (of max |g|)\n", what, rel, worst, tworst);
    }
    for (int k = 0; k < K; k++) {
        free(tints[k]);
        free(tg0[k]);
        free(tg[k]);
    }
    free(lam);
    free(g0);
    free(g);
    env_close(&v);
}

Test(micro, objective_equals_whole_batch, .timeout = 300) {
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(&cases[i]);
}

/* Runs of a few steps: two with the same micro are bit-identical (λ, curve); against micro = 0
 * the coefficients differ by rounding only (Adam lr 1e-3, 6 steps: |Δλ| <= 1e-5). */
static void micro_run(env *v, adapt_opts o, int micro, adapt_result *r) {
    tt_err e = {0};
    o.micro = micro;
    cr_assert_eq(adapt_run(&v->ctx, v->tv, &o, r, &e), 0, "micro=%d: %s", micro, e.msg);
    cr_assert_eq(r->n_curve, o.steps);
}

Test(micro, runs_are_deterministic_and_follow_the_whole_batch, .timeout = 300) {
    env v;
    env_open(&v, &method_adamerging, NULL, 0);
    adapt_opts o = {.layerwise = true, .lambda_init = 0.3f, .lr = 1e-3f, .steps = 6, .batch = 8, .accum = 2,
                    .loss = ADAPT_ENTROPY};
    adapt_result a, b, whole;
    micro_run(&v, o, 12, &a);
    micro_run(&v, o, 12, &b);
    micro_run(&v, o, 0, &whole);
    size_t n = (size_t)v.ctx.K * a.n_coef;
    cr_expect_eq(memcmp(a.lambda, b.lambda, n * sizeof(float)), 0, "two runs with micro=12 differ");
    double dl = 0;
    for (int i = 0; i < a.n_curve; i++) cr_expect_eq(a.curve[i].loss, b.curve[i].loss, "step %d's loss differs", i);
    for (size_t i = 0; i < n; i++) dl = fmax(dl, fabs((double)a.lambda[i] - whole.lambda[i]));
    cr_expect_leq(dl, 1e-5, "micro=12 vs whole batch after %d steps: max |dlambda| %.3g", o.steps, dl);
    fprintf(stderr, "6 steps, micro=12 vs 0: max |dlambda| %.2g\n", dl);
    adapt_result_free(&a);
    adapt_result_free(&b);
    adapt_result_free(&whole);
    env_close(&v);

    /* Tinting's heads, a split batch under pseudo-conf: two runs bit-identical */
    env_open(&v, &method_tinting, NULL, 0);
    adapt_opts t = tint_opts(1e-2f, 2, v.ctx.K);
    micro_run(&v, t, 8, &a);
    micro_run(&v, t, 8, &b);
    cr_expect_eq(memcmp(a.lambda, b.lambda, (size_t)v.ctx.K * a.n_coef * sizeof(float)), 0);
    for (int k = 0; k < v.ctx.K; k++) {
        size_t hn = (size_t)v.s.tasks[k].classes * (v.s.cfg.output_dim + 1);
        cr_expect_eq(memcmp(a.tints[k], b.tints[k], hn * sizeof(float)), 0, "task %d's head differs", k);
    }
    adapt_result_free(&a);
    adapt_result_free(&b);
    env_close(&v);
}

/* What micro cannot be: one line each, through the engine and through `merge --set`. */
Test(micro, bad_values_are_one_line_errors, .timeout = 120) {
    env v;
    env_open(&v, &method_tinting, NULL, 0);
    struct {
        adapt_opts o;
        const char *msg;
    } bad[] = {
        {{.layerwise = true, .batch = 8, .accum = 1, .loss = ADAPT_ENTROPY, .micro = 5},
         "micro=5 does not divide the 24 images of a forward (batch x tasks)"},
        {{.layerwise = true, .batch = 8, .accum = 1, .loss = ADAPT_PSEUDO_CONF, .micro = 4},
         "micro=4 splits a task's batch of 8: with the pseudo-conf loss only in per-task steps"},
        {{.layerwise = true, .batch = 8, .accum = 1, .loss = ADAPT_ENTROPY, .micro = -1}, "micro >= 0"},
    };
    float lam[4096], g[4096];
    cr_assert_leq((size_t)v.ctx.K * v.ctx.pre.lay.count, sizeof lam / sizeof lam[0]);
    for (size_t i = 0; i < sizeof lam / sizeof lam[0]; i++) lam[i] = 0.3f;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        double loss;
        tt_err e = {0};
        cr_expect_neq(adapt_objective(&v.ctx, v.tv, &bad[i].o, lam, NULL, &loss, g, NULL, &e), 0);
        cr_expect_eq(e.code, TT_EINPUT);
        cr_expect(strstr(e.msg, bad[i].msg) != NULL, "got '%s', expected '%s'", e.msg, bad[i].msg);
        cr_expect(strchr(e.msg, '\n') == NULL, "more than one line: %s", e.msg);
    }
    env_close(&v);
    char cmd[2048], err[1024] = "";
    snprintf(cmd, sizeof cmd,
             "OMP_WAIT_POLICY=passive %s merge --suite %s --method adamerging --set steps=1 --set micro=7 "
             "--out %s/m.safetensors --quiet",
             tu_ttmerge_bin(), getenv("TTMERGE_TINY_SUITE"), tu_tmpdir("micro_cli"));
    cr_expect_eq(tu_run(cmd, err, sizeof err), 2, "%s", err);
    cr_expect(strstr(err, "micro=7 does not divide the 48 images of a forward (batch x tasks)") != NULL, "%s", err);
}
