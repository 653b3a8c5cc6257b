/* test_tiny_awd.c — AWD end to end on the tiny suite (built by the ctest fixture):
 *   - the recorded L_O before/after and ‖δ‖/mean‖τ‖ equal the values recomputed naively from the
 *     checkpoints with δ = Σ_m b_m τ_m formed element by element (global and per-tensor cosines),
 *     L_O falls, and the merged model is θ0 + λ Σ_k (τ_k − δ);
 *   - the saved checkpoint's metadata carries them, the coefficients and λ;
 *   - δ = 0 settings (no iterations, β = 0, a large α with the proximal step) give `ta` bit for bit;
 *   - awd-adamerging with 0 Adam steps is `awd` at λ = 0.3 (the engine got the τ̂_k);
 *   - bad parameters give one-line errors (API and CLI), and --help lists the parameters. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "adamerge/adamerge.h"
#include "baselines/methods.h"
#include "core/safetensors.h"
#include "tests/testutil.h"

static suite S;

static void open_suite(void) { tu_open_tiny_suite(&S); }
static void close_suite(void) { suite_close(&S); }

static const ckpt_extra_tensor *find_extra(const merge_ctx *ctx, const char *name) {
    for (int i = 0; i < ctx->n_extra; i++)
        if (!strcmp(ctx->extra[i].name, name)) return &ctx->extra[i];
    return NULL;
}

/* Run m in an open context (the caller closes it). */
static void run_in(merge_ctx *ctx, const merge_method *m, const char *const *sets, int n) {
    tt_err e = {0};
    cr_assert_eq(merge_ctx_open(ctx, &S, m, sets, n, 0, &e), 0, "%s", e.msg);
    cr_assert_eq(m->run(ctx, &e), 0, "%s: %s", m->name, e.msg);
}

/* Run m; a malloc'd copy of the merged parameters. */
static float *run(const merge_method *m, const char *const *sets, int n, size_t *total) {
    merge_ctx ctx;
    run_in(&ctx, m, sets, n);
    *total = ctx.out.lay.total;
    float *out = malloc(*total * sizeof(float));
    memcpy(out, ctx.out.params, *total * sizeof(float));
    merge_ctx_close(&ctx);
    return out;
}

static double rec_real(json_t *rec, const char *key) {
    json_t *v = json_object_get(rec, key);
    cr_assert(json_is_number(v), "record has no number '%s'", key);
    return json_number_value(v);
}

/* Naive L_O of τ̂_k = τ_k − δ and ‖δ‖, mean ‖τ_k‖ (b NULL: δ = 0). δ is formed element by
 * element in double from the coefficients b [groups][K]; groups = 1 or one per tensor. */
static double naive_l_o(merge_ctx *ctx, const float *b, bool layer, double *delta_norm, double *tau_norm) {
    const vit_layout *lay = &ctx->pre.lay;
    int K = ctx->K, groups = layer ? lay->count : 1;
    double *P = calloc((size_t)groups * K * K, sizeof(double)), *T = calloc((size_t)groups * K, sizeof(double));
    double dd = 0, *tn = calloc((size_t)K, sizeof(double));
    float *tv = malloc((size_t)K * lay->total * sizeof(float));
    for (int k = 0; k < K; k++)
        for (int l = 0; l < lay->count; l++)
            merge_task_vector(ctx, k, l, tv + (size_t)k * lay->total + lay->t[l].offset);
    for (int l = 0; l < lay->count; l++) {
        int g = layer ? l : 0;
        const float *bg = b ? b + (size_t)g * K : NULL;
        for (size_t i = lay->t[l].offset; i < lay->t[l].offset + lay->t[l].numel; i++) {
            double d = 0, v[MERGE_MAX_TASKS];
            for (int m = 0; bg && m < K; m++) d += (double)bg[m] * tv[(size_t)m * lay->total + i];
            dd += d * d;
            for (int k = 0; k < K; k++) {
                double t = tv[(size_t)k * lay->total + i];
                v[k] = t - d;
                T[g * K + k] += t * t;
                tn[k] += t * t;
            }
            for (int a = 0; a < K; a++)
                for (int c = 0; c < K; c++) P[((size_t)g * K + a) * K + c] += v[a] * v[c];
        }
    }
    int active = 0;
    double sum = 0;
    for (int g = 0; g < groups; g++) {
        int nz = 0;
        for (int k = 0; k < K; k++) nz += T[g * K + k] > 0;
        if (nz < 2) continue;
        active++;
        double s = 0;
        for (int a = 0; a < K; a++)
            for (int c = 0; c < K; c++) {
                const double *Pg = P + (size_t)g * K * K;
                if (a == c || T[g * K + a] <= 0 || T[g * K + c] <= 0) continue;
                s += fabs(Pg[a * K + c]) / sqrt(Pg[a * K + a] * Pg[c * K + c]);
            }
        sum += s / ((double)K * (K - 1));
    }
    *delta_norm = sqrt(dd);
    *tau_norm = 0;
    for (int k = 0; k < K; k++) *tau_norm += sqrt(tn[k]) / K;
    free(P);
    free(T);
    free(tn);
    free(tv);
    return active ? sum / active : 0;
}

static void check_against_full_space(bool layer) {
    const char *sets[] = {"lambda=0.3", layer ? "cosine=layer" : "cosine=global"};
    merge_ctx ctx;
    run_in(&ctx, &method_awd, sets, 2);
    const char *what = sets[1];
    const vit_layout *lay = &ctx.pre.lay;
    int K = ctx.K;
    const ckpt_extra_tensor *coef = find_extra(&ctx, "ttmerge.awd_coef");
    cr_assert_not_null(coef, "%s: no ttmerge.awd_coef", what);
    cr_assert(coef->ndim == 2 && coef->shape[0] == (layer ? lay->count : 1) && coef->shape[1] == K, "%s: coef shape",
              what);
    json_error_t je;
    json_t *rec = json_loads(ctx.record_json, 0, &je);
    cr_assert_not_null(rec, "%s: record is not JSON: %s", what, je.text);
    double lo0 = rec_real(rec, "l_o_before"), lo1 = rec_real(rec, "l_o_after"), rel = rec_real(rec, "delta_rel_norm");
    double dn0, tn0, dn, tn;
    double want0 = naive_l_o(&ctx, NULL, layer, &dn0, &tn0), want1 = naive_l_o(&ctx, coef->data, layer, &dn, &tn);
    cr_assert(fabs(lo0 - want0) <= 1e-7 + 1e-5 * want0, "%s: L_O before %.9g, full space %.9g", what, lo0, want0);
    cr_assert(fabs(lo1 - want1) <= 1e-7 + 1e-4 * want1, "%s: L_O after %.9g, full space %.9g", what, lo1, want1);
    cr_assert(fabs(rel - dn / tn) <= 1e-5 * (dn / tn), "%s: |delta|/mean|tau| %.9g, full space %.9g", what, rel,
              dn / tn);
    cr_assert(fabs(rec_real(rec, "tau_norm_mean") - tn) <= 1e-5 * tn);
    /* L_O falls: measured 0.032 -> 0.0004 (global) and 0.24 -> 0.07 (per tensor) */
    cr_assert_lt(lo1, 0.5 * lo0, "%s: L_O %g -> %g", what, lo0, lo1);
    json_t *curve = json_object_get(rec, "l_o_curve");
    cr_assert(json_array_size(curve) == 11, "%s: l_o_curve has %zu points", what, json_array_size(curve));
    cr_assert_lt(json_number_value(json_array_get(json_array_get(curve, 1), 1)), lo0, "%s: L_O did not fall early",
                 what);
    cr_assert(rel > 1e-3 && rel < 0.5, "%s: |delta|/mean|tau| = %g", what, rel);
    cr_assert(rec_real(rec, "loss_after") < rec_real(rec, "loss_before"));
    /* the merge is θ0 + 0.3 Σ_k (τ_k − δ), formed here element by element */
    float *want = malloc(lay->total * sizeof(float)), *tv = malloc(K * sizeof(float));
    for (int l = 0; l < lay->count; l++) {
        const float *b = coef->data + (size_t)(layer ? l : 0) * K;
        const float *ft[MERGE_MAX_TASKS];
        for (int k = 0; k < K; k++) ft[k] = ctx.ft_view[k][l];
        for (size_t i = 0; i < lay->t[l].numel; i++) {
            size_t at = lay->t[l].offset + i;
            double d = 0, sum = 0;
            for (int k = 0; k < K; k++) tv[k] = ft[k][i] - ctx.pre.params[at];
            for (int m = 0; m < K; m++) d += (double)b[m] * tv[m];
            for (int k = 0; k < K; k++) sum += tv[k] - d;
            want[at] = (float)(ctx.pre.params[at] + 0.3 * sum);
        }
    }
    cr_assert(tu_allclose(what, ctx.out.params, want, lay->total, 1e-6, 1e-5),
              "%s: merge is not theta0 + 0.3 sum(tau - delta)", what);
    free(want);
    free(tv);
    json_decref(rec);
    merge_ctx_close(&ctx);
}

Test(tiny_awd, l_o_falls_and_matches_full_space_global, .init = open_suite, .fini = close_suite) {
    check_against_full_space(false);
}

Test(tiny_awd, l_o_falls_and_matches_full_space_per_tensor, .init = open_suite, .fini = close_suite) {
    check_against_full_space(true);
}

Test(tiny_awd, checkpoint_metadata_records_the_fit, .init = open_suite, .fini = close_suite) {
    merge_ctx ctx;
    run_in(&ctx, &method_awd, NULL, 0); /* λ searched */
    char path[1100];
    snprintf(path, sizeof path, "%s/awd.safetensors", tu_tmpdir("awd_meta"));
    tt_err e = {0};
    cr_assert_eq(merge_ctx_save(&ctx, &method_awd, path, &e), 0, "%s", e.msg);
    merge_ctx_close(&ctx);
    st_file *f;
    cr_assert_eq(st_open(&f, path, &e), 0, "%s", e.msg);
    const char *method = st_meta(f, "ttmerge.method"), *text = st_meta(f, "ttmerge.record");
    cr_assert(method && !strcmp(method, "awd"));
    json_error_t je;
    json_t *rec = text ? json_loads(text, 0, &je) : NULL;
    cr_assert_not_null(rec, "no JSON record");
    const char *keys[] = {"l_o_before", "l_o_after", "delta_rel_norm", "delta_norm", "lambda", "val_norm"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) rec_real(rec, keys[i]);
    double lam = rec_real(rec, "lambda");
    cr_assert(lam >= 0.1 - 1e-9 && lam <= 1 + 1e-9, "lambda %g is not on the grid", lam);
    json_t *c = json_object_get(rec, "coef");
    for (int k = 0; k < S.n_tasks; k++)
        cr_assert(json_is_number(json_object_get(c, S.tasks[k].name)), "coef has no task %s: %s", S.tasks[k].name,
                  text);
    cr_assert(json_array_size(json_object_get(rec, "grid")) == 10, "no lambda grid: %s", text);
    cr_assert_not_null(st_find(f, "ttmerge.awd_coef"));
    json_decref(rec);
    st_close(f);
}

Test(tiny_awd, zero_delta_settings_are_task_arithmetic, .init = open_suite, .fini = close_suite) {
    const char *ta_set[] = {"lambda=0.3"};
    size_t n;
    float *ta = run(&method_ta, ta_set, 1, &n);
    const char *cases[][3] = {
        {"lambda=0.3", "iters=0", "update=gd"},
        {"lambda=0.3", "beta=0", "update=gd"},
        {"lambda=0.3", "alpha=1e6", "update=prox"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        float *out = run(&method_awd, cases[c], 3, &n);
        cr_assert_arr_eq(out, ta, n * sizeof(float), "awd %s %s differs from ta", cases[c][1], cases[c][2]);
        free(out);
    }
    float *awd = run(&method_awd, ta_set, 1, &n); /* and the default does change the merge */
    cr_assert(memcmp(awd, ta, n * sizeof(float)) != 0, "awd with the defaults equals ta");
    free(awd);
    free(ta);
}

Test(tiny_awd, adamerging_at_step_zero_is_awd_ta, .init = open_suite, .fini = close_suite) {
    const char *ada_sets[] = {"steps=0", "lambda=0.3"}, *ta_sets[] = {"lambda=0.3"};
    size_t n;
    float *awd = run(&method_awd, ta_sets, 1, &n);
    merge_ctx ctx;
    run_in(&ctx, &method_awd_adamerging, ada_sets, 2);
    cr_assert(tu_allclose("awd-adamerging steps=0", ctx.out.params, awd, n, 1e-6, 1e-5));
    cr_assert_not_null(find_extra(&ctx, "ttmerge.lambda"));
    cr_assert_not_null(find_extra(&ctx, "ttmerge.awd_coef"));
    cr_assert(strstr(ctx.record_json, "\"l_o_after\"") && strstr(ctx.record_json, "\"steps\":0"), "record: %s",
              ctx.record_json);
    merge_ctx_close(&ctx);
    free(awd);
}

Test(tiny_awd, bad_parameters_give_one_line_errors, .init = open_suite, .fini = close_suite) {
    struct {
        const merge_method *m;
        const char *set, *msg;
    } cases[] = {
        {&method_awd, "alpha=-1", "parameter alpha=-1 is out of range [0, 1e+12]"},
        {&method_awd, "beta=-0.5", "parameter beta=-0.5 is out of range"},
        {&method_awd, "iters=-1", "parameter iters=-1 is out of range [0, 1000000]"},
        {&method_awd, "iters=1000001", "parameter iters=1000001 is out of range [0, 1000000]"},
        {&method_awd, "iters=ten", "parameter iters=ten is not an integer"},
        {&method_awd, "init=random", "parameter init=random: expected zero|mean"},
        {&method_awd, "cosine=pairwise", "parameter cosine=pairwise: expected global|layer"},
        {&method_awd, "update=adam", "parameter update=adam: expected gd|prox"},
        {&method_awd_adamerging, "alpha=nan", "parameter alpha=nan is not a number"},
        {&method_awd_adamerging, "steps=-1", "steps in [0,1e6]"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        merge_ctx ctx;
        tt_err e = {0};
        cr_assert_eq(merge_ctx_open(&ctx, &S, cases[c].m, &cases[c].set, 1, 0, &e), 0, "%s", e.msg);
        cr_assert_neq(cases[c].m->run(&ctx, &e), 0, "%s accepted", cases[c].set);
        cr_assert(strstr(e.msg, cases[c].msg) && !strchr(e.msg, '\n'), "%s: '%s'", cases[c].set, e.msg);
        merge_ctx_close(&ctx);
    }
    /* the CLI: exit 2, one line naming the parameter, no output */
    char cmd[3000], err[1024], out[1100];
    snprintf(out, sizeof out, "%s/x.safetensors", tu_tmpdir("awd_cli"));
    snprintf(cmd, sizeof cmd, "%s merge --suite %s --method awd --set alpha=-1 --out %s --quiet", tu_ttmerge_bin(),
             S.dir, out);
    cr_assert_eq(tu_run(cmd, err, sizeof err), 2, "stderr: %s", err);
    cr_assert(strstr(err, "alpha=-1") && strchr(err, '\n') == err + strlen(err) - 1, "stderr: '%s'", err);
    struct stat st;
    cr_assert_neq(stat(out, &st), 0, "a failed merge wrote %s", out);
    snprintf(cmd, sizeof cmd, "%s merge --method awd --help | grep -q 'update .*default gd'", tu_ttmerge_bin());
    cr_assert_eq(tu_run(cmd, NULL, 0), 0, "--help does not list the parameters");
}
