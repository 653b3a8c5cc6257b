/* test_lanes.c — batch-parallel forward+backward (core/lanes.h): features and gradients of 2, 3
 * and 4 lanes against one plan of the whole batch, the same bits run after run, a subset of
 * trainable tensors, accumulation across calls (lane buffers return to zero), and the policy. */
#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/lanes.h"
#include "tests/testutil.h"

/* vision8's block shape at a smaller image: every tensor kind, seconds to run */
static const vit_config cfg = {.image_size = 14, .channels = 1, .patch_size = 7, .width = 32, .layers = 2,
                               .heads = 2, .mlp_ratio = 4, .output_dim = 16, .act = OP_ACT_GELU,
                               .ln_eps = 1e-5f, .normalize_features = true, .logit_scale = 20};
#define BATCH 48 /* divisible by 1, 2, 3, 4 */

typedef struct fixture {
    dnn *d;
    vit_layout lay;
    float *theta, *images, *dfeat;
    vit_weights w;
} fixture;

static void fx_init(fixture *f) {
    tt_err e = {0};
    memset(f, 0, sizeof *f);
    cr_assert_eq(dnn_create(&f->d, &e), 0, "%s", e.msg);
    cr_assert_eq(vit_layout_init(&f->lay, &cfg, &e), 0, "%s", e.msg);
    size_t img = (size_t)cfg.channels * cfg.image_size * cfg.image_size;
    f->theta = calloc(f->lay.total, sizeof(float));
    f->images = calloc((size_t)BATCH * img, sizeof(float));
    f->dfeat = calloc((size_t)BATCH * cfg.output_dim, sizeof(float));
    cr_assert(f->theta && f->images && f->dfeat);
    vit_init_params(&cfg, &f->lay, f->theta, 3);
    tu_fill_uniform(f->images, (size_t)BATCH * img, 4, -1, 1);
    tu_fill_uniform(f->dfeat, (size_t)BATCH * cfg.output_dim, 5, -1, 1);
    cr_assert_eq(vit_weights_bind(&f->w, &f->lay, f->theta, NULL, &e), 0, "%s", e.msg);
}

static void fx_free(fixture *f) {
    vit_weights_free(&f->w);
    vit_layout_free(&f->lay);
    free(f->theta);
    free(f->images);
    free(f->dfeat);
    dnn_free(f->d);
}

/* features [BATCH, D] and gradients [lay.total] (zeroed first, then `calls` backward passes) of
 * this many lanes; trainable NULL = every tensor */
static void run(fixture *f, int lanes, const bool *trainable, int calls, float *features, float *grad) {
    tt_err e = {0};
    vit_lanes vl;
    cr_assert_eq(vit_lanes_init(&vl, f->d, &cfg, &f->lay, BATCH, lanes, trainable, &e), 0, "%s", e.msg);
    cr_assert_eq(vl.lanes, lanes);
    memset(grad, 0, f->lay.total * sizeof(float));
    vit_weights g;
    cr_assert_eq(vit_weights_bind(&g, &f->lay, grad, trainable, &e), 0, "%s", e.msg);
    vit_lanes_forward(&vl, &f->w, f->images, features);
    for (int c = 0; c < calls; c++) vit_lanes_backward(&vl, &f->w, &g, f->dfeat);
    vit_weights_free(&g);
    vit_lanes_free(&vl);
}

/* A row's features depend only on its image: lanes agree with one plan to rounding (oneDNN blocks
 * fewer rows differently). A weight gradient sums over the batch: per-lane sums added afterwards
 * round differently, by a few ulps of the sum (measured: max relative 2e-6 on the largest entries). */
Test(lanes, equal_one_plan) {
    fixture f;
    fx_init(&f);
    size_t nf = (size_t)BATCH * cfg.output_dim, ng = f.lay.total;
    float *f1 = calloc(nf, sizeof(float)), *g1 = calloc(ng, sizeof(float));
    float *fk = calloc(nf, sizeof(float)), *gk = calloc(ng, sizeof(float));
    run(&f, 1, NULL, 1, f1, g1);
    double norm = 0;
    for (size_t i = 0; i < ng; i++) norm += (double)g1[i] * g1[i];
    cr_assert(norm > 1e-6, "the gradient is not trivially zero");
    const int lane_counts[] = {2, 3, 4};
    for (size_t t = 0; t < sizeof lane_counts / sizeof lane_counts[0]; t++) {
        run(&f, lane_counts[t], NULL, 1, fk, gk);
        cr_expect(tu_allclose("features, lanes vs one plan", fk, f1, nf, 1e-6, 1e-5), "%d lanes", lane_counts[t]);
        cr_expect(tu_allclose("gradients, lanes vs one plan", gk, g1, ng, 1e-5, 1e-4), "%d lanes", lane_counts[t]);
    }
    free(f1);
    free(g1);
    free(fk);
    free(gk);
    fx_free(&f);
}

/* Fixed order of the lane sums: two runs give the same bits. */
Test(lanes, deterministic) {
    fixture f;
    fx_init(&f);
    size_t nf = (size_t)BATCH * cfg.output_dim, ng = f.lay.total;
    float *fa = calloc(nf, sizeof(float)), *ga = calloc(ng, sizeof(float));
    float *fb = calloc(nf, sizeof(float)), *gb = calloc(ng, sizeof(float));
    run(&f, 2, NULL, 1, fa, ga);
    run(&f, 2, NULL, 1, fb, gb);
    cr_expect(memcmp(fa, fb, nf * sizeof(float)) == 0, "features differ between runs");
    cr_expect(memcmp(ga, gb, ng * sizeof(float)) == 0, "gradients differ between runs");
    free(fa);
    free(ga);
    free(fb);
    free(gb);
    fx_free(&f);
}

/* Only the trainable tensors get gradients (the others stay exactly 0), equal to the full run's;
 * two backward calls accumulate exactly twice one call's lane sums, which needs every lane buffer
 * back at zero after the first (2x is exact in binary floating point only if both calls add the
 * same numbers: it is checked to rounding). */
Test(lanes, subset_and_accumulation) {
    fixture f;
    fx_init(&f);
    size_t nf = (size_t)BATCH * cfg.output_dim, ng = f.lay.total;
    float *feat = calloc(nf, sizeof(float)), *full = calloc(ng, sizeof(float)), *sub = calloc(ng, sizeof(float));
    bool *trainable = calloc((size_t)f.lay.count, sizeof(bool));
    int q = vit_layout_find(&f.lay, "transformer.resblocks.1.attn.in_proj_weight");
    int p = vit_layout_find(&f.lay, "proj");
    cr_assert(q >= 0 && p >= 0);
    trainable[q] = trainable[p] = true;
    run(&f, 2, NULL, 1, feat, full);
    run(&f, 2, trainable, 2, feat, sub);
    for (int i = 0; i < f.lay.count; i++) {
        const vit_tensor_info *t = &f.lay.t[i];
        if (!trainable[i]) {
            size_t nz = 0;
            for (size_t j = 0; j < t->numel; j++) nz += sub[t->offset + j] != 0;
            cr_expect_eq(nz, 0, "%s: %zu non-zero gradients of an untrainable tensor", t->name, nz);
            continue;
        }
        for (size_t j = 0; j < t->numel; j++) full[t->offset + j] *= 2;
        cr_expect(tu_allclose(t->name, sub + t->offset, full + t->offset, t->numel, 1e-6, 1e-5),
                  "two calls = 2 x one call");
    }
    free(feat);
    free(full);
    free(sub);
    free(trainable);
    fx_free(&f);
}

/* One lane per thread, for narrow models, up to VIT_LANES_MAX threads when each gets VIT_LANES_MIN_BATCH images and the
 * batch divides evenly; else one. Bad explicit counts are refused with a message. */
Test(lanes, policy) {
    int saved = omp_get_max_threads();
    omp_set_num_threads(2);
    vit_config wide = cfg;
    wide.width = 768;
    cr_expect_eq(vit_lanes_auto(&cfg, 128), 2);
    cr_expect_eq(vit_lanes_auto(&cfg, 2 * VIT_LANES_MIN_BATCH - 2), 1);
    cr_expect_eq(vit_lanes_auto(&cfg, 129), 1);
    cr_expect_eq(vit_lanes_auto(&wide, 128), 1, "wide models keep one lane");
    omp_set_num_threads(1);
    cr_expect_eq(vit_lanes_auto(&cfg, 128), 1);
    omp_set_num_threads(VIT_LANES_MAX + 1);
    cr_expect_eq(vit_lanes_auto(&cfg, 1024), 1, "a many-core machine keeps its threads inside the ops");
    omp_set_num_threads(2);
    int inside = 0;
#pragma omp parallel num_threads(2)
    {
#pragma omp single
        inside = vit_lanes_auto(&cfg, 128);
    }
    cr_expect_eq(inside, 1);
    omp_set_num_threads(saved);

    fixture f;
    fx_init(&f);
    tt_err e = {0};
    vit_lanes vl;
    cr_expect_neq(vit_lanes_init(&vl, f.d, &cfg, &f.lay, BATCH, 5, NULL, &e), 0);
    cr_expect(strstr(e.msg, "divide") != NULL, "message: %s", e.msg);
    cr_expect_neq(vit_lanes_init(&vl, f.d, &cfg, &f.lay, 64, VIT_LANES_MAX * 2, NULL, &e), 0);
    fx_free(&f);
}
