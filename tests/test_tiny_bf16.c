/* test_tiny_bf16.c — bf16 matmuls (dnn_precision DNN_BF16, `--precision bf16`) against f32.
 *
 * What is proven: the f32 -> bf16 rounding (nearest even, as oneDNN's); a bf16 matmul rounds its
 * inputs (error above f32's) but accumulates in f32 (exact to f32 rounding against a double
 * product of the rounded inputs); a small ViT's features and gradients within a stated tolerance of
 * f32, bit-identical between two runs; a weight changed in place between forwards is converted
 * again; a product written in bf16 is the f32 result rounded once, and bf16 inference (strided
 * attention, bf16 MLP hidden) equals the training plan's forward bit for bit; on the tiny suite, evaluation and a short AdaMerging run within a stated accuracy of f32;
 * the fallback when the CPU has no native bf16 (forced with TTMERGE_NO_BF16=1). Tests that need
 * native bf16 skip on a CPU without it. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "baselines/merge.h"
#include "bench/registry.h"
#include "core/infer.h"
#include "data/suite.h"
#include "tests/testutil.h"

#define SKIP_UNLESS_NATIVE()                                                                     \
    do {                                                                                         \
        if (!dnn_bf16_native()) cr_skip_test("no native bf16 on this CPU (oneDNN ISA %s)", dnn_isa_name()); \
    } while (0)

/* ||a - b|| / ||b|| over n values */
static double rel_l2(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    return sqrt(num / (den > 0 ? den : 1));
}

static float bf16_value(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

Test(bf16, rounding_nearest_even) {
    const uint32_t in[] = {0x3F800000u, 0x3F808000u, 0x3F818000u, 0x3F808001u, 0xC0200000u, 0x7F800000u, 0x7FC00000u,
                           0x7F7FFFFFu};
    const uint16_t want[] = {0x3F80, 0x3F80, 0x3F82, 0x3F81, 0xC020, 0x7F80, 0x7FC0, 0x7F80};
    float f[8];
    uint16_t got[8];
    memcpy(f, in, sizeof f);
    dnn_to_bf16(got, f, 8);
    for (int i = 0; i < 8; i++) cr_expect_eq(got[i], want[i], "%08x -> %04x, want %04x", in[i], got[i], want[i]);
}

/* C = A . B^T with A [M,K], B [N,K] given in f32 (A) and bf16 (B, as op_linear passes weights). */
Test(bf16, matmul_rounds_inputs_accumulates_f32) {
    SKIP_UNLESS_NATIVE();
    enum { M = 67, K = 300, N = 45 };
    dnn_set_default_precision(DNN_BF16);
    tt_err e = {0};
    dnn *d;
    cr_assert_eq(dnn_create(&d, &e), 0, "%s", e.msg);
    cr_assert_eq(d->precision, DNN_BF16);
    dnn_matmul *mm =
        dnn_matmul_create(d, &(dnn_matmul_desc){.batch = 1, .M = M, .K = K, .N = N, .trans_b = true, .b_bf16 = true}, &e);
    cr_assert_not_null(mm, "%s", e.msg);
    cr_assert(dnn_matmul_bf16(mm));
    float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * N * K), *C = malloc(sizeof(float) * M * N);
    float *exact = malloc(sizeof(float) * M * N), *rounded = malloc(sizeof(float) * M * N);
    uint16_t *A16 = malloc(2 * M * K), *B16 = malloc(2 * N * K);
    tu_fill_uniform(A, (size_t)M * K, 1, -1, 1);
    tu_fill_uniform(B, (size_t)N * K, 2, -1, 1);
    dnn_to_bf16(A16, A, (size_t)M * K);
    dnn_to_bf16(B16, B, (size_t)N * K);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0, r = 0;
            for (int k = 0; k < K; k++) {
                s += (double)A[i * K + k] * B[j * K + k];
                r += (double)bf16_value(A16[i * K + k]) * bf16_value(B16[j * K + k]);
            }
            exact[i * N + j] = (float)s;
            rounded[i * N + j] = (float)r;
        }
    dnn_matmul_run(mm, A, B16, NULL, C);
    double to_exact = rel_l2(C, exact, (size_t)M * N), to_rounded = rel_l2(C, rounded, (size_t)M * N);
    /* bf16 inputs: ~2^-9 relative per input, ~3e-3 on these products; f32 accumulation of the rounded
     * inputs: ~1e-7 (a bf16 accumulator would be ~1e-3) */
    cr_expect_lt(to_exact, 1e-2, "bf16 vs exact %.3g", to_exact);
    cr_expect_gt(to_exact, 1e-4, "bf16 vs exact %.3g: the inputs were not rounded", to_exact);
    cr_expect_lt(to_rounded, 1e-5, "bf16 vs the rounded inputs' exact product %.3g", to_rounded);
    dnn_matmul_free(mm);
    dnn_free(d);
    free(A), free(B), free(C), free(exact), free(rounded), free(A16), free(B16);
}

/* A product written in bf16 (c_bf16, with the MLP's QuickGELU fused) is the f32 result rounded
 * once, to nearest even: the same bits as the f32-output matmul followed by dnn_to_bf16. A matmul
 * reading that bf16 A (a_bf16) gives the bits of the same matmul converting the f32 A itself. */
Test(bf16, matmul_bf16_output_is_the_f32_result_rounded_once) {
    SKIP_UNLESS_NATIVE();
    enum { M = 67, K = 96, N = 300, N2 = 45 };
    dnn_set_default_precision(DNN_BF16);
    tt_err e = {0};
    dnn *d;
    cr_assert_eq(dnn_create(&d, &e), 0, "%s", e.msg);
    dnn_matmul_desc fc = {.batch = 1, .M = M, .K = K, .N = N, .trans_b = true, .bias = true, .b_bf16 = true,
                          .post_eltwise = dnnl_eltwise_swish, .post_alpha = 1.702f};
    dnn_matmul *to_f32 = dnn_matmul_create(d, &fc, &e);
    cr_assert_not_null(to_f32, "%s", e.msg);
    fc.c_bf16 = true;
    dnn_matmul *to_bf16 = dnn_matmul_create(d, &fc, &e);
    cr_assert_not_null(to_bf16, "%s", e.msg);
    dnn_matmul_desc fc2 = {.batch = 1, .M = M, .K = N, .N = N2, .trans_b = true, .b_bf16 = true};
    dnn_matmul *from_f32 = dnn_matmul_create(d, &fc2, &e);
    cr_assert_not_null(from_f32, "%s", e.msg);
    fc2.a_bf16 = true;
    dnn_matmul *from_bf16 = dnn_matmul_create(d, &fc2, &e);
    cr_assert_not_null(from_bf16, "%s", e.msg);
    float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * N * K), *bias = malloc(sizeof(float) * N);
    float *B2 = malloc(sizeof(float) * N2 * N), *H = malloc(sizeof(float) * M * N);
    float *Y1 = malloc(sizeof(float) * M * N2), *Y2 = malloc(sizeof(float) * M * N2);
    uint16_t *B16 = malloc(2 * N * K), *B216 = malloc(2 * N2 * N), *H16 = malloc(2 * M * N), *Hr = malloc(2 * M * N);
    tu_fill_uniform(A, (size_t)M * K, 1, -1, 1);
    tu_fill_uniform(B, (size_t)N * K, 2, -1, 1);
    tu_fill_uniform(bias, N, 3, -1, 1);
    tu_fill_uniform(B2, (size_t)N2 * N, 4, -1, 1);
    dnn_to_bf16(B16, B, (size_t)N * K);
    dnn_to_bf16(B216, B2, (size_t)N2 * N);
    dnn_matmul_run(to_f32, A, B16, bias, H);
    dnn_matmul_run(to_bf16, A, B16, bias, H16);
    dnn_to_bf16(Hr, H, (size_t)M * N);
    cr_expect_eq(memcmp(H16, Hr, 2 * (size_t)M * N), 0, "the bf16 output is not the f32 result rounded");
    size_t odd = 0;
    for (size_t i = 0; i < (size_t)M * N; i++) odd += H16[i] & 1;
    cr_expect_gt(odd, (size_t)M * N / 4, "the output was not rounded to bf16's full precision");
    dnn_matmul_run(from_f32, H, B216, NULL, Y1);
    dnn_matmul_run(from_bf16, H16, B216, NULL, Y2);
    cr_expect_eq(memcmp(Y1, Y2, sizeof(float) * M * N2), 0, "reading the bf16 A differs from converting it");
    dnn_matmul_free(to_f32), dnn_matmul_free(to_bf16), dnn_matmul_free(from_f32), dnn_matmul_free(from_bf16);
    dnn_free(d);
    free(A), free(B), free(bias), free(B2), free(H), free(Y1), free(Y2), free(B16), free(B216), free(H16), free(Hr);
}

/* A small ViT of ViT-B's proportions (3 channels, QuickGELU, normalised features). */
static const vit_config small = {.image_size = 32, .channels = 3, .patch_size = 8, .width = 96, .layers = 3,
                                 .heads = 3, .mlp_ratio = 4, .output_dim = 32, .act = OP_ACT_QUICK_GELU,
                                 .ln_eps = 1e-5f, .normalize_features = true, .logit_scale = 100};
enum { SB = 24 };

typedef struct vit_run {
    float *feat, *grad; /* [SB, D], gradient of sum(features .* u) [lay.total] */
} vit_run;

static void vit_once(dnn_precision prec, const float *theta, const vit_layout *lay, const float *images,
                     const float *u, vit_run *out) {
    tt_err e = {0};
    dnn_set_default_precision(prec);
    dnn *d;
    cr_assert_eq(dnn_create(&d, &e), 0, "%s", e.msg);
    vit_plan *p = vit_plan_create(d, &small, SB, &e);
    cr_assert_not_null(p, "%s", e.msg);
    cr_assert_eq(vit_plan_bf16(p), prec == DNN_BF16);
    vit_weights w, g;
    out->feat = calloc((size_t)SB * small.output_dim, sizeof(float));
    out->grad = calloc(lay->total, sizeof(float));
    cr_assert_eq(vit_weights_bind(&w, lay, (float *)theta, NULL, &e), 0, "%s", e.msg);
    cr_assert_eq(vit_weights_bind(&g, lay, out->grad, NULL, &e), 0, "%s", e.msg);
    vit_forward(p, &w, images, out->feat);
    vit_backward(p, &w, &g, u);
    vit_weights_free(&w);
    vit_weights_free(&g);
    vit_plan_free(p);
    dnn_free(d);
}

static void small_setup(vit_layout *lay, float **theta, float **images, float **u) {
    tt_err e = {0};
    cr_assert_eq(vit_layout_init(lay, &small, &e), 0, "%s", e.msg);
    *theta = calloc(lay->total, sizeof(float));
    vit_init_params(&small, lay, *theta, 11);
    size_t img = (size_t)SB * small.channels * small.image_size * small.image_size;
    *images = malloc(img * sizeof(float));
    tu_fill_uniform(*images, img, 12, -1, 1);
    *u = malloc(sizeof(float) * SB * small.output_dim);
    tu_fill_uniform(*u, (size_t)SB * small.output_dim, 13, -1, 1);
}

/* The small ViT's weights bound, with its images, on an engine whose plans are bf16. */
typedef struct small_bf16 {
    vit_layout lay;
    float *theta, *images, *u;
    dnn *d;
    vit_weights w;
} small_bf16;

static void small_bf16_open(small_bf16 *s) {
    tt_err e = {0};
    small_setup(&s->lay, &s->theta, &s->images, &s->u);
    dnn_set_default_precision(DNN_BF16);
    cr_assert_eq(dnn_create(&s->d, &e), 0, "%s", e.msg);
    cr_assert_eq(s->d->precision, DNN_BF16);
    cr_assert_eq(vit_weights_bind(&s->w, &s->lay, s->theta, NULL, &e), 0, "%s", e.msg);
}

static void small_bf16_close(small_bf16 *s) {
    vit_weights_free(&s->w);
    dnn_free(s->d);
    free(s->theta), free(s->images), free(s->u);
    vit_layout_free(&s->lay);
}

/* Tolerances: features within 2% (L2) of f32, every weight gradient within 5%; measured here
 * ~0.3% and ~1%. Two bf16 runs: the same bits. */
Test(bf16, small_vit_close_to_f32_and_deterministic) {
    SKIP_UNLESS_NATIVE();
    vit_layout lay;
    float *theta, *images, *u;
    small_setup(&lay, &theta, &images, &u);
    vit_run f, b1, b2;
    vit_once(DNN_F32, theta, &lay, images, u, &f);
    vit_once(DNN_BF16, theta, &lay, images, u, &b1);
    vit_once(DNN_BF16, theta, &lay, images, u, &b2);
    size_t nf = (size_t)SB * small.output_dim;
    double ef = rel_l2(b1.feat, f.feat, nf);
    cr_expect_lt(ef, 2e-2, "features: bf16 vs f32 %.3g", ef);
    cr_expect_gt(ef, 0, "bf16 features equal f32's: not computed in bf16");
    for (int i = 0; i < lay.count; i++) {
        const vit_tensor_info *t = &lay.t[i];
        double eg = rel_l2(b1.grad + t->offset, f.grad + t->offset, t->numel);
        cr_expect_lt(eg, 5e-2, "gradient of %s: bf16 vs f32 %.3g", t->name, eg);
    }
    cr_expect_eq(memcmp(b1.feat, b2.feat, nf * sizeof(float)), 0, "two bf16 forwards differ");
    cr_expect_eq(memcmp(b1.grad, b2.grad, lay.total * sizeof(float)), 0, "two bf16 backwards differ");
    fprintf(stderr, "small ViT bf16 vs f32: features %.3g\n", ef);
    free(f.feat), free(f.grad), free(b1.feat), free(b1.grad), free(b2.feat), free(b2.grad);
    free(theta), free(images), free(u);
    vit_layout_free(&lay);
}

/* The inference plan (attention reading q, k, v in place through strided bf16 matmuls, the MLP
 * hidden written and read in bf16) gives the training plan's forward (head-major copies, the
 * hidden in f32 converted by the next matmul) bit for bit: every bf16 operand is the same f32
 * value rounded once, and the products run in the same order. */
Test(bf16, inference_plan_equals_the_training_forward) {
    SKIP_UNLESS_NATIVE();
    small_bf16 s;
    small_bf16_open(&s);
    tt_err e = {0};
    vit_plan *train = vit_plan_create(s.d, &small, SB, &e), *infer = vit_plan_create_inference(s.d, &small, SB, &e);
    cr_assert(train && infer, "%s", e.msg);
    size_t nf = (size_t)SB * small.output_dim;
    float *ft = calloc(nf, 4), *fi = calloc(nf, 4);
    vit_forward(train, &s.w, s.images, ft);
    vit_forward(infer, &s.w, s.images, fi);
    cr_expect_eq(memcmp(ft, fi, nf * sizeof(float)), 0, "bf16 inference differs from the training forward by %.3g",
                 rel_l2(fi, ft, nf));
    vit_plan_free(train);
    vit_plan_free(infer);
    free(ft), free(fi);
    small_bf16_close(&s);
}

/* A weight changed in place between two forwards (a learner's merged-weight update) is converted
 * again: the second forward equals a fresh plan's. vit_plan_reuse_weights(p, true) keeps the old
 * copy (the evaluation loop's promise that nothing changed): then it equals the first forward. */
Test(bf16, weights_updated_in_place_are_converted_again) {
    SKIP_UNLESS_NATIVE();
    small_bf16 s;
    small_bf16_open(&s);
    tt_err e = {0};
    vit_plan *p = vit_plan_create_inference(s.d, &small, SB, &e);
    cr_assert_not_null(p, "%s", e.msg);
    size_t nf = (size_t)SB * small.output_dim;
    float *f1 = calloc(nf, 4), *f2 = calloc(nf, 4), *f3 = calloc(nf, 4);
    vit_forward(p, &s.w, s.images, f1);
    int fc = vit_layout_find(&s.lay, "transformer.resblocks.1.mlp.c_fc.weight");
    cr_assert_geq(fc, 0);
    for (size_t i = 0; i < s.lay.t[fc].numel; i++) s.theta[s.lay.t[fc].offset + i] *= 1.5f;
    vit_plan_reuse_weights(p, true);
    vit_forward(p, &s.w, s.images, f3); /* promised unchanged: the old bf16 copy */
    cr_expect_eq(memcmp(f1, f3, nf * sizeof(float)), 0, "reuse_weights converted again");
    vit_forward(p, &s.w, s.images, f2); /* the default: converted again */
    vit_plan *fresh = vit_plan_create_inference(s.d, &small, SB, &e);
    cr_assert_not_null(fresh, "%s", e.msg);
    vit_forward(fresh, &s.w, s.images, f3);
    cr_expect_eq(memcmp(f2, f3, nf * sizeof(float)), 0, "the updated weight was not converted again");
    cr_expect_neq(memcmp(f1, f2, nf * sizeof(float)), 0);
    vit_plan_free(fresh);
    vit_plan_free(p);
    free(f1), free(f2), free(f3);
    small_bf16_close(&s);
}

/* ---- the tiny suite ---- */

/* Per-task test accuracies and logits of the pretrained model (zeroshot) at this precision. */
static double tiny_eval(dnn_precision prec, double *acc, float **logits0, int *n0) {
    suite s;
    tu_open_tiny_suite(&s);
    dnn_set_default_precision(prec);
    merge_ctx ctx;
    tt_err e = {0};
    const merge_method *m = merge_find("zeroshot");
    cr_assert_not_null(m);
    cr_assert_eq(merge_ctx_open(&ctx, &s, m, NULL, 0, 0, &e), 0, "%s", e.msg);
    cr_assert_eq(ctx.d->precision, prec);
    cr_assert_eq(m->run(&ctx, &e), 0, "%s", e.msg);
    merge_eval ev;
    cr_assert_eq(merge_eval_init(&ev, &ctx, &e), 0, "%s", e.msg);
    double avg = merge_eval_tasks(&ev, &ctx, true, acc, NULL);
    merge_eval_task(&ev, &ctx, 0, true); /* leaves task 0's test logits in ev.logits */
    *n0 = s.tasks[0].test.n * s.tasks[0].classes;
    *logits0 = malloc(sizeof(float) * (size_t)*n0);
    memcpy(*logits0, ev.logits, sizeof(float) * (size_t)*n0);
    merge_eval_free(&ev);
    merge_ctx_close(&ctx);
    suite_close(&s);
    return avg;
}

/* Evaluation: each task's accuracy within 1 point of f32 (a few hundred test images: one point is a
 * handful of flipped predictions), the logits within 2% (L2). */
Test(tiny_bf16, eval_close_to_f32, .timeout = 300) {
    SKIP_UNLESS_NATIVE();
    double a32[64], a16[64];
    float *l32, *l16;
    int n;
    double avg32 = tiny_eval(DNN_F32, a32, &l32, &n), avg16 = tiny_eval(DNN_BF16, a16, &l16, &n);
    suite s;
    tu_open_tiny_suite(&s);
    for (int t = 0; t < s.n_tasks; t++)
        cr_expect_leq(fabs(a16[t] - a32[t]), 1.0, "%s: bf16 %.2f vs f32 %.2f", s.tasks[t].name, a16[t], a32[t]);
    double el = rel_l2(l16, l32, (size_t)n);
    cr_expect_lt(el, 2e-2, "task 0 logits: bf16 vs f32 %.3g", el);
    cr_expect_gt(el, 0, "bf16 logits equal f32's");
    fprintf(stderr, "tiny zeroshot: f32 %.2f, bf16 %.2f, logits %.3g\n", avg32, avg16, el);
    suite_close(&s);
    free(l32), free(l16);
}

/* A short layer-wise AdaMerging run: average accuracy within 2 points of f32 (the λ trajectories
 * differ by rounding), the precision recorded in the parameters, and a rerun gives the same bits. */
static double tiny_adamerging(dnn_precision prec, char **params, float **theta, size_t *n) {
    suite s;
    tu_open_tiny_suite(&s);
    dnn_set_default_precision(prec);
    merge_ctx ctx;
    tt_err e = {0};
    const merge_method *m = merge_find("adamerging");
    const char *sets[] = {"steps=30"};
    cr_assert_eq(merge_ctx_open(&ctx, &s, m, sets, 1, 0, &e), 0, "%s", e.msg);
    cr_assert_eq(m->run(&ctx, &e), 0, "%s", e.msg);
    merge_eval ev;
    cr_assert_eq(merge_eval_init(&ev, &ctx, &e), 0, "%s", e.msg);
    double avg = merge_eval_tasks(&ev, &ctx, true, NULL, NULL);
    merge_eval_free(&ev);
    *params = merge_params_json(&ctx);
    *n = ctx.out.lay.total;
    *theta = malloc(*n * sizeof(float));
    memcpy(*theta, ctx.out.params, *n * sizeof(float));
    merge_ctx_close(&ctx);
    suite_close(&s);
    return avg;
}

Test(tiny_bf16, adamerging_close_to_f32_and_deterministic, .timeout = 600) {
    SKIP_UNLESS_NATIVE();
    char *p32, *p16, *p16b;
    float *t32, *t16, *t16b;
    size_t n;
    double a32 = tiny_adamerging(DNN_F32, &p32, &t32, &n);
    double a16 = tiny_adamerging(DNN_BF16, &p16, &t16, &n);
    double a16b = tiny_adamerging(DNN_BF16, &p16b, &t16b, &n);
    cr_expect_leq(fabs(a16 - a32), 2.0, "adamerging: bf16 %.2f vs f32 %.2f", a16, a32);
    cr_expect_null(strstr(p32, "precision"), "%s", p32);
    cr_expect_not_null(strstr(p16, "\"precision\":\"bf16\""), "%s", p16);
    cr_expect_eq(a16, a16b);
    cr_expect_eq(memcmp(t16, t16b, n * sizeof(float)), 0, "two bf16 AdaMerging runs differ");
    fprintf(stderr, "tiny adamerging (30 steps): f32 %.2f, bf16 %.2f\n", a32, a16);
    free(p32), free(p16), free(p16b), free(t32), free(t16), free(t16b);
}

/* ---- the fallback, and the option ---- */

Test(bf16, no_native_bf16_falls_back_to_f32) {
    setenv("TTMERGE_NO_BF16", "1", 1);
    cr_expect_not(dnn_bf16_native());
    cr_expect_eq(dnn_set_default_precision(DNN_BF16), DNN_F32);
    tt_err e = {0};
    dnn *d;
    cr_assert_eq(dnn_create(&d, &e), 0, "%s", e.msg);
    cr_expect_eq(d->precision, DNN_F32);
    dnn_free(d);
    unsetenv("TTMERGE_NO_BF16");
}

/* The CLI says so in one line and computes exactly what f32 computes; a bad value is exit 2. */
Test(tiny_bf16, cli_fallback_message_and_f32_output, .timeout = 300) {
    suite s;
    tu_open_tiny_suite(&s);
    const char *dir = tu_tmpdir("bf16_cli");
    char cmd[4096], err[4096];
    snprintf(cmd, sizeof cmd, "OMP_WAIT_POLICY=passive %s eval --suite %s --model %s --precision f32 > %s/f32.csv",
             tu_ttmerge_bin(), s.dir, s.pretrained, dir);
    cr_assert_eq(tu_run(cmd, err, sizeof err), 0, "%s", err);
    snprintf(cmd, sizeof cmd,
             "TTMERGE_NO_BF16=1 OMP_WAIT_POLICY=passive %s eval --suite %s --model %s --precision bf16 > %s/fb.csv",
             tu_ttmerge_bin(), s.dir, s.pretrained, dir);
    cr_assert_eq(tu_run(cmd, err, sizeof err), 0, "%s", err);
    cr_expect_not_null(strstr(err, "no native bf16"), "stderr: %s", err);
    cr_expect_not_null(strstr(err, "computing in f32"), "stderr: %s", err);
    cr_expect_null(strchr(strchr(err, '\n') ? strchr(err, '\n') + 1 : "", '\n'), "more than one line: %s", err);
    snprintf(cmd, sizeof cmd, "cmp -s %s/f32.csv %s/fb.csv", dir, dir);
    cr_expect_eq(tu_run(cmd, NULL, 0), 0, "the fallback's output differs from f32's");
    snprintf(cmd, sizeof cmd, "%s eval --suite %s --model %s --precision fp8", tu_ttmerge_bin(), s.dir, s.pretrained);
    cr_expect_eq(tu_run(cmd, err, sizeof err), 2);
    cr_expect_not_null(strstr(err, "--precision"), "stderr: %s", err);
    tu_rm_tree(dir);
    suite_close(&s);
}
