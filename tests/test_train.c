/* test_train.c — AdamW known answers, the warm-up/cosine schedule, and a short real training run. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "core/train.h"
#include "data/idx.h"
#include "tests/testutil.h"

/* One AdamW step from zero moments: m = (1-b1) g, v = (1-b2) g^2, bias-corrected m_hat = g,
 * v_hat = g^2, so p' = p - lr (g/(|g|+eps) + wd p) = p - lr (sign(g) + wd p). */
Test(train, adamw_first_step_known_answer) {
    adamw o;
    tt_err e = {0};
    cr_assert_eq(adamw_init(&o, 3, &e), 0);
    float p[3] = {1.0f, -2.0f, 0.5f}, g[3] = {0.3f, -4.0f, 0.0f};
    adamw_tick(&o);
    adamw_update(&o, p, g, 0, 3, 0.1f, 0.01f);
    cr_assert_float_eq(p[0], 1.0f - 0.1f * (1.0f + 0.01f * 1.0f), 1e-6);
    cr_assert_float_eq(p[1], -2.0f - 0.1f * (-1.0f + 0.01f * -2.0f), 1e-6);
    cr_assert_float_eq(p[2], 0.5f - 0.1f * (0.0f + 0.01f * 0.5f), 1e-6);
    /* second step with the same gradient: m_hat = g, v_hat = g^2 again */
    float before = p[0];
    adamw_tick(&o);
    adamw_update(&o, p, g, 0, 3, 0.1f, 0.0f);
    cr_assert_float_eq(p[0], before - 0.1f, 1e-5);
    adamw_free(&o);
}

/* A range update touches exactly [off, off+cnt) of p, with g read at the same offsets
 * (regression: the moments were offset but p and g were not). */
Test(train, adamw_range_update_uses_the_same_offsets) {
    adamw o;
    tt_err e = {0};
    cr_assert_eq(adamw_init(&o, 8, &e), 0);
    float p[8] = {1, 1, 1, 1, 1, 1, 1, 1}, g[8] = {0, 0, 0, 0, 0, 2.0f, -3.0f, 0};
    adamw_tick(&o);
    adamw_update(&o, p, g, 5, 2, 0.1f, 0.0f);
    for (int i = 0; i < 8; i++) {
        float want = i == 5 ? 0.9f : i == 6 ? 1.1f : 1.0f; /* first step moves by lr * sign(g) */
        cr_assert_float_eq(p[i], want, 1e-6, "p[%d] = %g, want %g", i, (double)p[i], (double)want);
    }
    cr_assert_float_eq(o.m[5], 0.1f * 2.0f, 1e-7);
    cr_assert_float_eq(o.m[0], 0.0f, 0);
    adamw_free(&o);
}

Test(train, warmup_cosine_schedule) {
    /* 100 steps, 10% warm-up: step 0 -> base/10, step 9 -> base, then cosine to ~0 */
    cr_assert_float_eq(lr_warmup_cosine(1.0f, 0, 100, 0.1f), 0.1f, 1e-6);
    cr_assert_float_eq(lr_warmup_cosine(1.0f, 9, 100, 0.1f), 1.0f, 1e-6);
    cr_assert_float_eq(lr_warmup_cosine(1.0f, 10, 100, 0.1f), 1.0f, 1e-6);
    cr_assert_float_eq(lr_warmup_cosine(1.0f, 55, 100, 0.1f), 0.5f, 1e-6);
    cr_assert_lt(lr_warmup_cosine(1.0f, 99, 100, 0.1f), 0.001f);
}

/* 300 AdamW steps (batch 32) on 512 Fashion-MNIST images: the CE loss must fall well below chance
 * (ln 10 = 2.30) and two runs with the same seed give identical weights. */
Test(train, real_data_loss_falls_and_is_deterministic, .timeout = 120) {
    tt_err e = {0};
    ds_images im = {0};
    const char *dir = "/usr/share/datasets/fashion-mnist";
    char ip[256], lp[256];
    snprintf(ip, sizeof ip, "%s/t10k-images-idx3-ubyte.gz", dir);
    snprintf(lp, sizeof lp, "%s/t10k-labels-idx1-ubyte.gz", dir);
    cr_assert_eq(idx_read_pair(ip, lp, &im, &e), 0, "%s", e.msg);
    vit_config cfg = {.image_size = 28, .channels = 1, .patch_size = 7, .width = 32, .layers = 2, .heads = 2,
                      .mlp_ratio = 2, .output_dim = 32, .act = OP_ACT_GELU, .ln_eps = 1e-5f,
                      .normalize_features = false, .logit_scale = 1};
    vit_layout lay;
    cr_assert_eq(vit_layout_init(&lay, &cfg, &e), 0);
    dnn *d;
    cr_assert_eq(dnn_create(&d, &e), 0);
    float *params[2], *W[2], *b[2];
    train_stats st[2];
    for (int run = 0; run < 2; run++) {
        params[run] = calloc(lay.total, sizeof(float));
        vit_init_params(&cfg, &lay, params[run], 1);
        W[run] = calloc(10 * 32, sizeof(float));
        b[run] = calloc(10, sizeof(float));
        train_opts o = {.steps = 300, .batch = 32, .lr = 1e-3f, .weight_decay = 0.05f, .warmup = 0.1f,
                        .seed = 5, .mean = 0.5f, .std = 0.5f, .train_head = true};
        cr_assert_eq(train_classifier(d, &cfg, &lay, params[run], W[run], b[run], 10, im.pixels, im.labels, 512, &o,
                                      &st[run], &e), 0, "%s", e.msg);
    }
    /* every tensor trained (not only the first ones of the flat buffer) */
    float *init = calloc(lay.total, sizeof(float));
    vit_init_params(&cfg, &lay, init, 1);
    for (int t = 0; t < lay.count; t++) {
        const vit_tensor_info *ti = &lay.t[t];
        cr_expect_neq(memcmp(init + ti->offset, params[0] + ti->offset, ti->numel * sizeof(float)), 0,
                      "tensor %s did not change during training", ti->name);
    }
    free(init);
    cr_expect_gt(st[0].first_loss, 1.9, "first loss %.3f", st[0].first_loss);
    cr_expect_lt(st[0].last_loss, 1.5, "last loss %.3f (first %.3f)", st[0].last_loss, st[0].first_loss);
    cr_expect_eq(memcmp(params[0], params[1], lay.total * sizeof(float)), 0, "training is not deterministic");
    cr_expect_eq(memcmp(W[0], W[1], 320 * sizeof(float)), 0);
    for (int run = 0; run < 2; run++) {
        free(params[run]);
        free(W[run]);
        free(b[run]);
    }
    vit_layout_free(&lay);
    dnn_free(d);
    ds_images_free(&im);
}
