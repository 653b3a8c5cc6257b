/* test_infer_plan.c — the inference plan (vit_plan_create_inference) that evaluation runs on:
 * its logits and features are bit-for-bit those of the training plan's forward, through
 * infer_ctx with and without lanes, at 1 and 2 threads, on the tiny suite's shape and on a
 * ViT-B/32-wide 2-layer model; and its workspace is one block's worth, whatever the depth (a
 * bound computed from the shapes, which the training plan exceeds). */
#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/infer.h"
#include "tests/testutil.h"

/* the tiny suite's architecture (suites/tiny.yaml) */
static const vit_config tiny = {.image_size = 28, .channels = 1, .patch_size = 7, .width = 32, .layers = 2,
                                .heads = 2, .mlp_ratio = 4, .output_dim = 32, .act = OP_ACT_GELU,
                                .ln_eps = 1e-5f, .normalize_features = true, .logit_scale = 20};
/* ViT-B/32 at 224 px (CLIP's image tower), 2 of its 12 blocks */
static const vit_config b32 = {.image_size = 224, .channels = 3, .patch_size = 32, .width = 768, .layers = 2,
                               .heads = 12, .mlp_ratio = 4, .output_dim = 512, .act = OP_ACT_QUICK_GELU,
                               .ln_eps = 1e-5f, .normalize_features = true, .logit_scale = 100};
#define CLASSES 10
#define MEAN 0.48f
#define STD 0.27f

typedef struct model {
    dnn *d;
    vit_layout lay;
    float *theta, *head_W, *head_b;
    vit_weights w;
} model;

/* Random weights: open_clip's init plus noise on every tensor, so that biases and LN shifts are
 * not zero and LN gains not one. */
static void model_init(model *m, const vit_config *cfg) {
    tt_err e = {0};
    memset(m, 0, sizeof *m);
    cr_assert_eq(dnn_create(&m->d, &e), 0, "%s", e.msg);
    cr_assert_eq(vit_layout_init(&m->lay, cfg, &e), 0, "%s", e.msg);
    m->theta = calloc(m->lay.total, sizeof(float));
    float *noise = calloc(m->lay.total, sizeof(float));
    m->head_W = calloc((size_t)CLASSES * cfg->output_dim, sizeof(float));
    m->head_b = calloc(CLASSES, sizeof(float));
    cr_assert(m->theta && noise && m->head_W && m->head_b);
    vit_init_params(cfg, &m->lay, m->theta, 11);
    tu_fill_uniform(noise, m->lay.total, 12, -0.02f, 0.02f);
    for (size_t i = 0; i < m->lay.total; i++) m->theta[i] += noise[i];
    free(noise);
    tu_fill_uniform(m->head_W, (size_t)CLASSES * cfg->output_dim, 13, -1, 1);
    tu_fill_uniform(m->head_b, CLASSES, 14, -0.1f, 0.1f);
    cr_assert_eq(vit_weights_bind(&m->w, &m->lay, m->theta, NULL, &e), 0, "%s", e.msg);
}

static void model_free(model *m) {
    vit_weights_free(&m->w);
    vit_layout_free(&m->lay);
    free(m->theta);
    free(m->head_W);
    free(m->head_b);
    dnn_free(m->d);
}

static uint8_t *random_pixels(const vit_config *cfg, int n) {
    size_t total = (size_t)n * cfg->channels * cfg->image_size * cfg->image_size;
    uint8_t *px = malloc(total);
    cr_assert(px);
    for (size_t i = 0; i < total; i++) px[i] = (uint8_t)((i * 2654435761u + 977u) >> 24);
    return px;
}

/* One pass of k images on training plans: vit_lanes `vl` (planned for its batch) and a head per lane,
 * normalised with infer_normalize and zero-padded to the batch; logits [k, CLASSES], features [k, D]. */
static void reference_pass(vit_lanes *vl, vit_head *heads, model *m, const vit_config *cfg, int batch, int lanes,
                           const uint8_t *pixels, int k, float *images, float *feat, float *z, float *logits,
                           float *features) {
    size_t img = (size_t)cfg->channels * cfg->image_size * cfg->image_size;
    int lb = batch / lanes, D = cfg->output_dim;
    infer_norm nm = infer_norm_scalar(MEAN, STD, cfg->channels);
    infer_normalize(images, pixels, k, batch, img, &nm);
    vit_lanes_forward(vl, &m->w, images, feat);
    if (lanes == 1) {
        vit_head_forward(&heads[0], z, feat, m->head_W, m->head_b);
    } else {
#pragma omp parallel for schedule(static, 1) num_threads(lanes)
        for (int l = 0; l < lanes; l++)
            vit_head_forward(&heads[l], z + (size_t)l * lb * CLASSES, feat + (size_t)l * lb * D, m->head_W, m->head_b);
    }
    memcpy(logits, z, (size_t)k * CLASSES * sizeof(float));
    memcpy(features, feat, (size_t)k * D * sizeof(float));
}

static void reference_plan(vit_lanes *vl, vit_head *heads, model *m, const vit_config *cfg, int batch, int lanes) {
    tt_err e = {0};
    cr_assert_eq(vit_lanes_init(vl, m->d, cfg, &m->lay, batch, lanes, NULL, &e), 0, "%s", e.msg);
    for (int l = 0; l < lanes; l++) {
        int t = vit_lanes_planning_begin(lanes);
        int rc = vit_head_init(&heads[l], vl->d[l], cfg, batch / lanes, CLASSES, &e);
        vit_lanes_planning_end(t);
        cr_assert_eq(rc, 0, "%s", e.msg);
    }
}

static void reference_plan_free(vit_lanes *vl, vit_head *heads, int lanes) {
    for (int l = 0; l < lanes; l++) vit_head_free(&heads[l]);
    vit_lanes_free(vl);
}

/* The same evaluation as infer_logits/infer_features with `lanes` lanes of batch/lanes images, on
 * TRAINING plans, pass by pass as infer runs them: a last partial pass zero-padded to the batch, or,
 * where infer runs it on a tail plan (a wide model on one lane), on a training plan of the tail's
 * size. padded_logits (may be NULL) gets the zero-padded pass's logits in every case. */
static void reference(model *m, const vit_config *cfg, int batch, int lanes, const uint8_t *pixels, int n,
                      float *logits, float *features, float *padded_logits) {
    vit_lanes vl;
    vit_head heads[VIT_LANES_MAX];
    reference_plan(&vl, heads, m, cfg, batch, lanes);
    size_t img = (size_t)cfg->channels * cfg->image_size * cfg->image_size;
    int D = cfg->output_dim;
    float *images = malloc((size_t)batch * img * sizeof(float)), *feat = malloc((size_t)batch * D * sizeof(float));
    float *z = malloc((size_t)batch * CLASSES * sizeof(float)), *scratch = malloc((size_t)batch * D * sizeof(float));
    cr_assert(images && feat && z && scratch);
    for (int i0 = 0; i0 < n; i0 += batch) {
        int k = n - i0 < batch ? n - i0 : batch;
        const uint8_t *px = pixels + (size_t)i0 * img;
        float *lo = logits + (size_t)i0 * CLASSES, *fe = features + (size_t)i0 * D;
        int tail = (k + INFER_TAIL_QUANTUM - 1) / INFER_TAIL_QUANTUM * INFER_TAIL_QUANTUM;
        bool on_tail = lanes == 1 && infer_tail_plans(cfg) && tail < batch;
        float *padded = padded_logits ? padded_logits + (size_t)i0 * CLASSES : lo;
        reference_pass(&vl, heads, m, cfg, batch, lanes, px, k, images, feat, z, padded, on_tail ? scratch : fe);
        if (!on_tail) {
            if (padded != lo) memcpy(lo, padded, (size_t)k * CLASSES * sizeof(float));
            continue;
        }
        vit_lanes tl;
        vit_head th[1];
        reference_plan(&tl, th, m, cfg, tail, 1);
        reference_pass(&tl, th, m, cfg, tail, 1, px, k, images, feat, z, lo, fe);
        reference_plan_free(&tl, th, 1);
    }
    reference_plan_free(&vl, heads, lanes);
    free(images);
    free(feat);
    free(z);
    free(scratch);
}

/* infer_logits and infer_features (inference plans) against the reference (training plans), bit
 * for bit, at 1 and 2 threads, with one lane and with two. */
static void check_bits(const vit_config *cfg, int batch, int n) {
    model m;
    model_init(&m, cfg);
    uint8_t *pixels = random_pixels(cfg, n);
    size_t nl = (size_t)n * CLASSES, nf = (size_t)n * cfg->output_dim;
    float *want_l = calloc(nl, sizeof(float)), *want_f = calloc(nf, sizeof(float));
    float *got_l = calloc(nl, sizeof(float)), *got_f = calloc(nf, sizeof(float)), *padded_l = calloc(nl, sizeof(float));
    cr_assert(want_l && want_f && got_l && got_f && padded_l);
    int saved = omp_get_max_threads();
    const int threads[] = {1, 2}, lane_counts[] = {1, 2};
    for (int ti = 0; ti < 2; ti++)
        for (int li = 0; li < 2; li++) {
            int lanes = lane_counts[li];
            if (lanes > threads[ti]) continue; /* a lane per thread */
            omp_set_num_threads(threads[ti]);
            reference(&m, cfg, batch, lanes, pixels, n, want_l, want_f, padded_l);
            tt_err e = {0};
            infer_ctx ic;
            const infer_norm nm = infer_norm_scalar(MEAN, STD, cfg->channels);
            cr_assert_eq(infer_init_lanes(&ic, m.d, cfg, batch, lanes, &e), 0, "%s", e.msg);
            cr_assert_eq(ic.lanes, lanes);
            memset(got_l, 0xff, nl * sizeof(float));
            memset(got_f, 0xff, nf * sizeof(float));
            cr_assert_eq(infer_logits(&ic, &m.w, m.head_W, m.head_b, CLASSES, pixels, n, &nm, got_l, &e), 0,
                         "%s", e.msg);
            infer_features(&ic, &m.w, pixels, n, &nm, got_f);
            infer_free(&ic);
            cr_expect(memcmp(got_l, want_l, nl * sizeof(float)) == 0,
                      "width %d: logits differ from the training plan's (%d threads, %d lanes)", cfg->width,
                      threads[ti], lanes);
            cr_expect(memcmp(got_f, want_f, nf * sizeof(float)) == 0,
                      "width %d: features differ from the training plan's (%d threads, %d lanes)", cfg->width,
                      threads[ti], lanes);
            /* a tail plan's logits against the zero-padded pass's: the same up to rounding (a matmul's
             * rows at another place in its blocking; 4.8e-7 of the largest measured at ViT-B/32) */
            float top = 0, worst = 0;
            for (size_t i = 0; i < nl; i++) {
                float a = fabsf(padded_l[i]), d = fabsf(got_l[i] - padded_l[i]);
                top = a > top ? a : top;
                worst = d > worst ? d : worst;
            }
            cr_expect_leq(worst, 1e-5f * top, "width %d: tail logits differ from the padded pass's by %g (of %g)",
                          cfg->width, worst, top);
        }
    omp_set_num_threads(saved);
    free(want_l);
    free(want_f);
    free(got_l);
    free(got_f);
    free(padded_l);
    free(pixels);
    model_free(&m);
}

/* 150 images at batch 64: two full passes and a partial one (22 images, zero-padded: a narrow model
 * has no tail plan; on two lanes, the second lane empty). */
Test(infer_plan, tiny_bits_equal_training_plan) { check_bits(&tiny, 64, 150); }

/* 84 images at batch 64: a pass planned whole (M = 3200 rows: every weight matmul packed) and in two
 * lanes of 32 (1600 rows: qkv and c_fc unpacked), then 20 images on one lane's tail plan of 32 (the
 * reference pads them to 64). */
Test(infer_plan, vitb32_width_bits_equal_training_plan, .timeout = 600) { check_bits(&b32, 64, 84); }

/* What the inference plan may hold, in floats, from the shapes: the residual stream, one [M, W]
 * buffer for the LN outputs and the attention output, the branch output, one wide buffer (qkv, the
 * MLP hidden, or the patches); the attention's scaled q rows and its scores (the softmax runs in
 * place: no probs buffer, and k, v are read in place from qkv); the LN statistics, cls/ln_post rows;
 * and 64-byte alignment plus the per-layer pointer lists (13 pointers a layer). Nothing here grows
 * with the depth but the pointers. */
static size_t bound_bytes(const vit_config *c, int B) {
    size_t T = (size_t)vit_tokens(c), P = T - 1, M = (size_t)B * T, W = (size_t)c->width;
    size_t Mw = (size_t)vit_mlp_width(c), Cpp = (size_t)c->channels * c->patch_size * c->patch_size;
    size_t S = (size_t)B * c->heads * T * T;
    size_t wide = 3 * M * W;
    if (M * Mw > wide) wide = M * Mw;
    if ((size_t)B * P * Cpp > wide) wide = (size_t)B * P * Cpp;
    size_t floats = 3 * M * W + wide + (M * W + S) + 2 * M + 2 * (size_t)B * W + 2 * (size_t)B;
    return floats * sizeof(float) + 32 * 64 + 13 * sizeof(float *) * (size_t)(c->layers + 1);
}

static size_t workspace(const vit_config *cfg, int batch, bool training) {
    tt_err e = {0};
    dnn *d;
    cr_assert_eq(dnn_create(&d, &e), 0, "%s", e.msg);
    vit_plan *p = training ? vit_plan_create(d, cfg, batch, &e) : vit_plan_create_inference(d, cfg, batch, &e);
    cr_assert(p, "%s", e.msg);
    size_t bytes = vit_plan_workspace_bytes(p);
    vit_plan_free(p);
    dnn_free(d);
    return bytes;
}

/* Below the bound, at any depth; the training plan (which keeps every layer's activations) above
 * it, so that a plan keeping activations again would fail here. */
Test(infer_plan, workspace_is_one_block) {
    vit_config deep = tiny;
    deep.layers = 8;
    size_t inf2 = workspace(&tiny, 64, false), inf8 = workspace(&deep, 64, false);
    cr_expect_leq(inf2, bound_bytes(&tiny, 64), "tiny, 2 layers: %zu bytes", inf2);
    cr_expect_leq(inf8, bound_bytes(&deep, 64), "tiny, 8 layers: %zu bytes", inf8);
    cr_expect_gt(workspace(&tiny, 64, true), bound_bytes(&tiny, 64), "the bound does not tell a training plan");
    cr_expect_gt(workspace(&b32, 16, true), bound_bytes(&b32, 16), "the bound does not tell a training plan");
}

/* The real shape: ViT-B/32 at 224 px, 12 blocks, the infer batch (planned, not run). */
Test(infer_plan, vitb32_workspace_at_infer_batch) {
    vit_config full = b32;
    full.layers = 12;
    size_t bytes = workspace(&full, INFER_BATCH, false), bound = bound_bytes(&full, INFER_BATCH);
    cr_expect_leq(bytes, bound, "ViT-B/32, %d images: %zu bytes > bound %zu", INFER_BATCH, bytes, bound);
    cr_log_info("ViT-B/32 at %d images: inference workspace %.0f MB (bound %.0f MB)\n", INFER_BATCH,
                (double)bytes / 1e6, (double)bound / 1e6);
}
