/* test_vit.c — whole-ViT gradients by central finite differences, frozen subsets, determinism. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "core/vit.h"
#include "tests/testutil.h"

typedef struct vit_case {
    const char *label;
    vit_config cfg;
    int batch, classes;
} vit_case;

static const vit_case cases[] = {
    {"gelu-norm", {.image_size = 8, .channels = 1, .patch_size = 4, .width = 8, .layers = 2, .heads = 2,
                   .mlp_ratio = 2, .output_dim = 6, .act = OP_ACT_GELU, .ln_eps = 1e-5f,
                   .normalize_features = true, .logit_scale = 5}, 3, 4},
    {"quick-plain", {.image_size = 6, .channels = 2, .patch_size = 3, .width = 6, .layers = 1, .heads = 3,
                     .mlp_ratio = 4, .output_dim = 5, .act = OP_ACT_QUICK_GELU, .ln_eps = 1e-5f,
                     .normalize_features = false, .logit_scale = 1}, 2, 3},
};

typedef struct fixture {
    dnn *d;
    vit_layout lay;
    float *theta, *grad, *images, *features, *dfeat, *headw, *headb, *dheadw, *dheadb, *logits, *dlogits;
    vit_weights w, g;
    vit_plan *plan;
    vit_head head;
    int *labels;
} fixture;

static void fx_init(fixture *f, const vit_case *c) {
    tt_err e = {0};
    memset(f, 0, sizeof *f);
    cr_assert_eq(dnn_create(&f->d, &e), 0, "%s", e.msg);
    cr_assert_eq(vit_layout_init(&f->lay, &c->cfg, &e), 0, "%s", e.msg);
    f->theta = calloc(f->lay.total, sizeof(float));
    f->grad = calloc(f->lay.total, sizeof(float));
    vit_init_params(&c->cfg, &f->lay, f->theta, 7);
    /* perturb LN params and biases so that no gradient is trivially structured */
    float *noise = malloc(f->lay.total * sizeof(float));
    tu_fill_uniform(noise, f->lay.total, 11, -0.2f, 0.2f);
    for (size_t i = 0; i < f->lay.total; i++) f->theta[i] += noise[i];
    free(noise);
    cr_assert_eq(vit_weights_bind(&f->w, &f->lay, f->theta, NULL, &e), 0);
    cr_assert_eq(vit_weights_bind(&f->g, &f->lay, f->grad, NULL, &e), 0);
    const vit_config *cfg = &c->cfg;
    size_t img = (size_t)c->batch * cfg->channels * cfg->image_size * cfg->image_size;
    f->images = malloc(img * sizeof(float));
    tu_fill_uniform(f->images, img, 3, -1, 1);
    size_t BD = (size_t)c->batch * cfg->output_dim, BK = (size_t)c->batch * c->classes;
    f->features = calloc(BD, sizeof(float));
    f->dfeat = calloc(BD, sizeof(float));
    f->headw = malloc((size_t)c->classes * cfg->output_dim * sizeof(float));
    tu_fill_uniform(f->headw, (size_t)c->classes * cfg->output_dim, 5, -0.5f, 0.5f);
    f->headb = malloc((size_t)c->classes * sizeof(float));
    tu_fill_uniform(f->headb, (size_t)c->classes, 6, -0.1f, 0.1f);
    f->dheadw = calloc((size_t)c->classes * cfg->output_dim, sizeof(float));
    f->dheadb = calloc((size_t)c->classes, sizeof(float));
    f->logits = calloc(BK, sizeof(float));
    f->dlogits = calloc(BK, sizeof(float));
    f->labels = calloc((size_t)c->batch, sizeof(int));
    for (int b = 0; b < c->batch; b++) f->labels[b] = b % c->classes;
    f->plan = vit_plan_create(f->d, cfg, c->batch, &e);
    cr_assert_not_null(f->plan, "%s", e.msg);
    cr_assert_eq(vit_head_init(&f->head, f->d, cfg, c->batch, c->classes, &e), 0, "%s", e.msg);
}

static void fx_free(fixture *f) {
    vit_head_free(&f->head);
    vit_plan_free(f->plan);
    vit_weights_free(&f->w);
    vit_weights_free(&f->g);
    vit_layout_free(&f->lay);
    void *bufs[] = {f->theta, f->grad, f->images, f->features, f->dfeat, f->headw, f->headb,
                    f->dheadw, f->dheadb, f->logits, f->dlogits, f->labels};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    dnn_free(f->d);
}

/* loss = mean CE(head(vit(x))); optionally accumulate gradients */
static double fx_loss(fixture *f, const vit_case *c, bool backward) {
    vit_forward(f->plan, &f->w, f->images, f->features);
    vit_head_forward(&f->head, f->logits, f->features, f->headw, f->headb);
    double loss = op_cross_entropy(c->batch, c->classes, f->dlogits, f->logits, f->labels, 1.0f);
    if (backward) {
        vit_head_backward(&f->head, f->dfeat, f->dheadw, f->dheadb, f->dlogits, f->headw);
        vit_backward(f->plan, &f->w, &f->g, f->dfeat);
    }
    return loss;
}

/* Central differences on up to 6 coordinates of every tensor.
 * Tolerance: |analytic - fd| <= 2e-3 + 3e-2 |fd| (f32 forward, eps 1e-2: truncation ~eps^2). */
Test(vit, gradients_match_finite_differences) {
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const vit_case *c = &cases[ci];
        fixture f;
        fx_init(&f, c);
        fx_loss(&f, c, true);
        const float eps = 1e-2f;
        int checked = 0;
        for (int t = 0; t < f.lay.count; t++) {
            const vit_tensor_info *ti = &f.lay.t[t];
            for (int s = 0; s < 6 && s < (int)ti->numel; s++) {
                size_t k = ti->offset + ((size_t)s * 7919u) % ti->numel;
                float keep = f.theta[k];
                f.theta[k] = keep + eps;
                double lp = fx_loss(&f, c, false);
                f.theta[k] = keep - eps;
                double lm = fx_loss(&f, c, false);
                f.theta[k] = keep;
                double fd = (lp - lm) / (2 * eps), an = f.grad[k];
                cr_expect(fabs(an - fd) <= 2e-3 + 3e-2 * fabs(fd), "%s: %s[%zu]: analytic %.6g fd %.6g", c->label,
                          ti->name, k - ti->offset, an, fd);
                checked++;
            }
        }
        cr_assert_gt(checked, 40);
        fx_free(&f);
    }
}

/* Freezing: with only the attention in/out projections trainable, their gradients equal the
 * full backward's and no other tensor is touched. */
Test(vit, frozen_subset_gives_same_gradients) {
    const vit_case *c = &cases[0];
    fixture f;
    fx_init(&f, c);
    fx_loss(&f, c, true);
    float *full = malloc(f.lay.total * sizeof(float));
    memcpy(full, f.grad, f.lay.total * sizeof(float));
    bool *train = calloc((size_t)f.lay.count, sizeof(bool));
    for (int t = 0; t < f.lay.count; t++)
        train[t] = strstr(f.lay.t[t].name, "in_proj_weight") || strstr(f.lay.t[t].name, "out_proj.weight");
    vit_weights part;
    tt_err e = {0};
    float *grad2 = calloc(f.lay.total, sizeof(float));
    cr_assert_eq(vit_weights_bind(&part, &f.lay, grad2, train, &e), 0);
    vit_forward(f.plan, &f.w, f.images, f.features);
    vit_head_forward(&f.head, f.logits, f.features, f.headw, f.headb);
    op_cross_entropy(c->batch, c->classes, f.dlogits, f.logits, f.labels, 1.0f);
    vit_head_backward(&f.head, f.dfeat, NULL, NULL, f.dlogits, f.headw);
    vit_backward(f.plan, &f.w, &part, f.dfeat);
    for (int t = 0; t < f.lay.count; t++) {
        const vit_tensor_info *ti = &f.lay.t[t];
        for (size_t k = ti->offset; k < ti->offset + ti->numel; k++) {
            if (train[t]) cr_assert_float_eq(grad2[k], full[k], 1e-6, "%s", ti->name);
            else cr_assert_eq(grad2[k], 0.0f, "%s was written although frozen", ti->name);
        }
    }
    vit_weights_free(&part);
    free(train);
    free(grad2);
    free(full);
    fx_free(&f);
}

/* Two runs with the same inputs give bit-identical features (fixed thread count). */
Test(vit, forward_is_deterministic) {
    const vit_case *c = &cases[0];
    fixture f;
    fx_init(&f, c);
    size_t BD = (size_t)c->batch * c->cfg.output_dim;
    vit_forward(f.plan, &f.w, f.images, f.features);
    float *first = malloc(BD * sizeof(float));
    memcpy(first, f.features, BD * sizeof(float));
    vit_forward(f.plan, &f.w, f.images, f.features);
    cr_assert_eq(memcmp(first, f.features, BD * sizeof(float)), 0);
    free(first);
    fx_free(&f);
}

Test(vit, config_json_round_trip_and_errors) {
    tt_err e = {0};
    char *js = vit_config_to_json(&cases[0].cfg);
    cr_assert_not_null(js);
    vit_config back;
    cr_assert_eq(vit_config_from_json(&back, js, &e), 0, "%s", e.msg);
    cr_assert_eq(back.width, 8);
    cr_assert_eq(back.act, OP_ACT_GELU);
    cr_assert(back.normalize_features);
    cr_assert_float_eq(back.logit_scale, 5.0f, 1e-6);
    free(js);
    cr_assert_eq(vit_config_from_json(&back, "{\"image_size\":8}", &e), -1);
    cr_assert(strstr(e.msg, "channels") != NULL, "%s", e.msg);
    cr_assert_eq(vit_config_from_json(&back, "[1,2]", &e), -1);
    const char *bad_heads = "{\"image_size\":8,\"channels\":1,\"patch_size\":4,\"width\":10,\"layers\":1,"
                            "\"heads\":3,\"output_dim\":4}";
    cr_assert_eq(vit_config_from_json(&back, bad_heads, &e), -1);
    cr_assert(strstr(e.msg, "heads") != NULL, "%s", e.msg);
}
