/* test_infer.c — batched inference (core/infer.h): the batch-parallel lanes give the logits and
 * features of one lane, which are those of a direct vit_forward + head on hand-normalised
 * images; partial passes and empty lanes; the lane policy. */
#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/infer.h"
#include "tests/testutil.h"

/* vision8's shape at a smaller image: narrow enough for lanes */
static const vit_config narrow = {.image_size = 14, .channels = 1, .patch_size = 7, .width = 32, .layers = 2,
                                  .heads = 2, .mlp_ratio = 4, .output_dim = 16, .act = OP_ACT_GELU,
                                  .ln_eps = 1e-5f, .normalize_features = true, .logit_scale = 20};
#define CLASSES 7
#define N_IMG 203 /* not a multiple of any batch below: a partial last pass */

typedef struct fixture {
    dnn *d;
    vit_layout lay;
    float *theta, *head_W, *head_b;
    vit_weights w;
    uint8_t *pixels;
    size_t img;
} fixture;

static void fx_init(fixture *f, const vit_config *cfg) {
    tt_err e = {0};
    memset(f, 0, sizeof *f);
    cr_assert_eq(dnn_create(&f->d, &e), 0, "%s", e.msg);
    cr_assert_eq(vit_layout_init(&f->lay, cfg, &e), 0, "%s", e.msg);
    f->theta = calloc(f->lay.total, sizeof(float));
    f->head_W = calloc((size_t)CLASSES * cfg->output_dim, sizeof(float));
    f->head_b = calloc(CLASSES, sizeof(float));
    f->img = (size_t)cfg->channels * cfg->image_size * cfg->image_size;
    f->pixels = malloc((size_t)N_IMG * f->img);
    cr_assert(f->theta && f->head_W && f->head_b && f->pixels);
    vit_init_params(cfg, &f->lay, f->theta, 7);
    tu_fill_uniform(f->head_W, (size_t)CLASSES * cfg->output_dim, 8, -1, 1);
    tu_fill_uniform(f->head_b, CLASSES, 9, -0.1f, 0.1f);
    for (size_t i = 0; i < (size_t)N_IMG * f->img; i++) f->pixels[i] = (uint8_t)((i * 2654435761u) >> 24);
    cr_assert_eq(vit_weights_bind(&f->w, &f->lay, f->theta, NULL, &e), 0, "%s", e.msg);
}

static void fx_free(fixture *f) {
    vit_weights_free(&f->w);
    vit_layout_free(&f->lay);
    free(f->theta);
    free(f->head_W);
    free(f->head_b);
    free(f->pixels);
    dnn_free(f->d);
}

/* logits [N_IMG, CLASSES] and features [N_IMG, D] through an infer_ctx with this many lanes */
static void run_lanes(fixture *f, const vit_config *cfg, int batch, int lanes, float *logits, float *features,
                      int *lanes_used) {
    tt_err e = {0};
    infer_ctx ic;
    cr_assert_eq(infer_init_lanes(&ic, f->d, cfg, batch, lanes, &e), 0, "%s", e.msg);
    *lanes_used = ic.lanes;
    const infer_norm nm = infer_norm_scalar(0.5f, 0.5f, cfg->channels);
    cr_assert_eq(infer_logits(&ic, &f->w, f->head_W, f->head_b, CLASSES, f->pixels, N_IMG, &nm, logits, &e),
                 0, "%s", e.msg);
    infer_features(&ic, &f->w, f->pixels, N_IMG, &nm, features);
    infer_free(&ic);
}

/* Every lane count (including lanes left empty by the last partial pass: batch 64 over 3 lanes of
 * 22 leaves 203 − 192 = 11 images for lane 0 only) gives the logits of one lane. A row's result
 * depends only on its own image, so the lanes' smaller GEMMs must agree to rounding (not to the
 * bit: oneDNN blocks a GEMM of fewer rows differently; measured max differences are a few ulps). */
Test(infer, lanes_equal_one_lane) {
    fixture f;
    fx_init(&f, &narrow);
    size_t nl = (size_t)N_IMG * CLASSES, nf = (size_t)N_IMG * narrow.output_dim;
    float *l1 = calloc(nl, sizeof(float)), *f1 = calloc(nf, sizeof(float));
    float *lk = calloc(nl, sizeof(float)), *fk = calloc(nf, sizeof(float));
    int used;
    run_lanes(&f, &narrow, 64, 1, l1, f1, &used);
    cr_assert_eq(used, 1);
    const int lane_counts[] = {2, 3, 8};
    for (size_t t = 0; t < sizeof lane_counts / sizeof lane_counts[0]; t++) {
        memset(lk, 0, nl * sizeof(float));
        memset(fk, 0, nf * sizeof(float));
        run_lanes(&f, &narrow, 64, lane_counts[t], lk, fk, &used);
        cr_assert_eq(used, lane_counts[t]);
        cr_expect(tu_allclose("logits, lanes vs one lane", lk, l1, nl, 1e-5, 1e-5), "%d lanes", used);
        cr_expect(tu_allclose("features, lanes vs one lane", fk, f1, nf, 1e-6, 1e-5), "%d lanes", used);
    }
    free(l1);
    free(f1);
    free(lk);
    free(fk);
    fx_free(&f);
}

/* One lane is exactly vit_forward + vit_head_forward on the images normalised by hand. */
Test(infer, one_lane_is_the_direct_forward) {
    fixture f;
    fx_init(&f, &narrow);
    tt_err e = {0};
    const int B = 32;
    float *images = calloc((size_t)B * f.img, sizeof(float)), *feat = calloc((size_t)B * narrow.output_dim, sizeof(float));
    float *want = calloc((size_t)B * CLASSES, sizeof(float)), *got = calloc((size_t)N_IMG * CLASSES, sizeof(float));
    float *gotf = calloc((size_t)N_IMG * narrow.output_dim, sizeof(float));
    for (size_t i = 0; i < (size_t)B * f.img; i++) images[i] = ((float)f.pixels[i] / 255.0f - 0.5f) / 0.5f;
    vit_plan *plan = vit_plan_create(f.d, &narrow, B, &e);
    cr_assert(plan, "%s", e.msg);
    vit_head h;
    cr_assert_eq(vit_head_init(&h, f.d, &narrow, B, CLASSES, &e), 0, "%s", e.msg);
    vit_forward(plan, &f.w, images, feat);
    vit_head_forward(&h, want, feat, f.head_W, f.head_b);
    int used;
    run_lanes(&f, &narrow, B, 1, got, gotf, &used);
    /* (p/255 − 0.5)/0.5 by hand vs p·a + b in infer_normalize: equal to a few ulps */
    cr_expect(tu_allclose("logits of the first batch", got, want, (size_t)B * CLASSES, 1e-5, 1e-5));
    cr_expect(tu_allclose("features of the first batch", gotf, feat, (size_t)B * narrow.output_dim, 1e-6, 1e-5));
    vit_head_free(&h);
    vit_plan_free(plan);
    free(images);
    free(feat);
    free(want);
    free(got);
    free(gotf);
    fx_free(&f);
}

/* The policy: one lane per thread for narrow models when the batch allows INFER_LANE_MIN_BATCH
 * images each; one lane for wide models, small batches, one thread, or inside a parallel region. */
Test(infer, lane_policy) {
    vit_config wide = narrow;
    wide.width = 768;
    int saved = omp_get_max_threads();
    omp_set_num_threads(2);
    cr_expect_eq(infer_auto_lanes(&narrow, 256), 2);
    cr_expect_eq(infer_auto_lanes(&narrow, 2 * INFER_LANE_MIN_BATCH - 1), 1);
    cr_expect_eq(infer_auto_lanes(&wide, 256), 1);
    omp_set_num_threads(1);
    cr_expect_eq(infer_auto_lanes(&narrow, 256), 1);
    omp_set_num_threads(16);
    cr_expect_eq(infer_auto_lanes(&narrow, 256), INFER_MAX_LANES);
    int inside = 0;
    omp_set_num_threads(2);
#pragma omp parallel num_threads(2)
    {
#pragma omp master
        inside = infer_auto_lanes(&narrow, 256);
    }
    cr_expect_eq(inside, 1);
    omp_set_num_threads(saved);
}

/* Per-channel normalisation: every element against (p/255 - mean[c]) / std[c] computed by hand in
 * double, channel c = (element / plane) % C; padding rows are zero; a scalar norm is the same
 * arithmetic in every channel (so the goldens of single-value suites keep their bits). */
Test(infer, normalize_per_channel) {
    enum { C = 3, S = 5, N = 4, BATCH = 6 };
    const size_t img = (size_t)C * S * S;
    uint8_t px[N * C * S * S];
    for (size_t i = 0; i < sizeof px; i++) px[i] = (uint8_t)(i * 37 + 11);
    infer_norm nm = {.channels = C, .mean = {0.48145466f, 0.4578275f, 0.40821073f},
                     .std = {0.26862954f, 0.26130258f, 0.27577711f}};
    float *dst = malloc(BATCH * img * sizeof(float));
    for (size_t i = 0; i < BATCH * img; i++) dst[i] = 1e9f;
    infer_normalize(dst, px, N, BATCH, img, &nm);
    for (size_t i = 0; i < (size_t)N * img; i++) {
        int c = (int)((i / (S * S)) % C);
        double want = (px[i] / 255.0 - nm.mean[c]) / nm.std[c];
        cr_assert(fabs(dst[i] - want) <= 1e-5 * (1 + fabs(want)), "element %zu (channel %d): %g vs %g", i, c, dst[i], want);
    }
    for (size_t i = (size_t)N * img; i < BATCH * img; i++) cr_assert_eq(dst[i], 0.0f, "padding at %zu", i);
    infer_norm one = infer_norm_scalar(0.5f, 0.5f, C);
    float *d1 = malloc(img * sizeof(float));
    infer_normalize(d1, px, 1, 1, img, &one);
    for (size_t i = 0; i < img; i++) cr_assert_eq(d1[i], (float)px[i] * (1.0f / (255.0f * 0.5f)) + (-0.5f / 0.5f));
    free(d1);
    free(dst);
}
