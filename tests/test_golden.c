/* test_golden.c — the C ViT against PyTorch (tests/golden/make_vit_golden.py, float64 reference
 * stored as F32): features, logits, both losses and every parameter gradient. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "core/checkpoint.h"
#include "tests/testutil.h"

typedef struct golden {
    st_file *f;
    ckpt_vit m;
    ckpt_head head;
    int B;
    float *images, *labels_f, *features, *logits, *dlogits, *dfeat, *grad, *dW, *db;
    int *labels;
} golden;

static float *read_tensor(const st_file *f, const char *name, size_t expect_numel) {
    const st_tensor *t = st_find(f, name);
    cr_assert_not_null(t, "golden tensor %s missing", name);
    if (expect_numel) cr_assert_eq((size_t)t->numel, expect_numel, "%s numel", name);
    float *x = malloc((size_t)t->numel * sizeof(float));
    tt_err e = {0};
    cr_assert_eq(st_read_f32(f, t, x, &e), 0, "%s", e.msg);
    return x;
}

static void golden_open(golden *g, const char *file) {
    char path[1024];
    tt_err e = {0};
    memset(g, 0, sizeof *g);
    snprintf(path, sizeof path, "%s/tests/golden/%s", TTMERGE_SOURCE_DIR, file);
    cr_assert_eq(st_open(&g->f, path, &e), 0, "%s", e.msg);
    cr_assert_eq(ckpt_read_vit(&g->m, g->f, &e), 0, "%s", e.msg);
    cr_assert_eq(ckpt_read_head(&g->head, g->f, "head.", g->m.cfg.output_dim, &e), 0, "%s", e.msg);
    g->B = atoi(st_meta(g->f, "golden.batch"));
    cr_assert_gt(g->B, 0);
    const vit_config *c = &g->m.cfg;
    g->images = read_tensor(g->f, "golden.input", (size_t)g->B * c->channels * c->image_size * c->image_size);
    g->labels_f = read_tensor(g->f, "golden.labels", (size_t)g->B);
    g->labels = malloc((size_t)g->B * sizeof(int));
    for (int b = 0; b < g->B; b++) g->labels[b] = (int)g->labels_f[b];
    size_t BD = (size_t)g->B * c->output_dim, BK = (size_t)g->B * g->head.classes;
    g->features = calloc(BD, sizeof(float));
    g->dfeat = calloc(BD, sizeof(float));
    g->logits = calloc(BK, sizeof(float));
    g->dlogits = calloc(BK, sizeof(float));
    g->grad = calloc(g->m.lay.total, sizeof(float));
    g->dW = calloc((size_t)g->head.classes * c->output_dim, sizeof(float));
    g->db = calloc((size_t)g->head.classes, sizeof(float));
}

static void golden_close(golden *g) {
    void *bufs[] = {g->images, g->labels_f, g->labels, g->features, g->dfeat, g->logits,
                    g->dlogits, g->grad, g->dW, g->db};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    ckpt_head_free(&g->head);
    ckpt_vit_free(&g->m);
    st_close(g->f);
}

/* Forward, the chosen loss, backward; then compare against golden.<loss>. and golden.grad_<loss>.*
 * Tolerances: features/logits 2e-5 abs + 1e-4 rel; gradients 1e-5 abs + 1e-3 rel (f32 vs f64). */
static void check_against_golden(const char *file, bool entropy) {
    golden g;
    golden_open(&g, file);
    tt_err e = {0};
    dnn *d;
    cr_assert_eq(dnn_create(&d, &e), 0);
    vit_plan *plan = vit_plan_create(d, &g.m.cfg, g.B, &e);
    cr_assert_not_null(plan, "%s", e.msg);
    vit_head head;
    cr_assert_eq(vit_head_init(&head, d, &g.m.cfg, g.B, g.head.classes, &e), 0, "%s", e.msg);
    vit_weights w, gw;
    cr_assert_eq(vit_weights_bind(&w, &g.m.lay, g.m.params, NULL, &e), 0);
    cr_assert_eq(vit_weights_bind(&gw, &g.m.lay, g.grad, NULL, &e), 0);

    vit_forward(plan, &w, g.images, g.features);
    vit_head_forward(&head, g.logits, g.features, g.head.W, g.head.b);
    float *want = read_tensor(g.f, "golden.features", 0);
    cr_expect(tu_allclose("features", g.features, want, (size_t)g.B * g.m.cfg.output_dim, 2e-5, 1e-4), "%s", file);
    free(want);
    want = read_tensor(g.f, "golden.logits", 0);
    cr_expect(tu_allclose("logits", g.logits, want, (size_t)g.B * g.head.classes, 2e-5, 1e-4), "%s", file);
    free(want);

    double loss = entropy ? op_entropy(g.B, g.head.classes, g.dlogits, g.logits, 1.0f)
                          : op_cross_entropy(g.B, g.head.classes, g.dlogits, g.logits, g.labels, 1.0f);
    want = read_tensor(g.f, entropy ? "golden.loss_entropy" : "golden.loss_ce", 1);
    cr_expect(fabs(loss - want[0]) <= 1e-5 + 1e-5 * fabs(want[0]), "%s loss %.8f want %.8f", file, loss, (double)want[0]);
    free(want);

    vit_head_backward(&head, g.dfeat, g.dW, g.db, g.dlogits, g.head.W);
    vit_backward(plan, &w, &gw, g.dfeat);
    const char *kind = entropy ? "entropy" : "ce";
    char name[256];
    for (int i = 0; i < g.m.lay.count; i++) {
        const vit_tensor_info *t = &g.m.lay.t[i];
        snprintf(name, sizeof name, "golden.grad_%s.%s", kind, t->name);
        want = read_tensor(g.f, name, t->numel);
        cr_expect(tu_allclose(name, g.grad + t->offset, want, t->numel, 1e-5, 1e-3), "%s", file);
        free(want);
    }
    snprintf(name, sizeof name, "golden.grad_%s.head.weight", kind);
    want = read_tensor(g.f, name, 0);
    cr_expect(tu_allclose(name, g.dW, want, (size_t)g.head.classes * g.m.cfg.output_dim, 1e-5, 1e-3));
    free(want);
    snprintf(name, sizeof name, "golden.grad_%s.head.bias", kind);
    want = read_tensor(g.f, name, 0);
    cr_expect(tu_allclose(name, g.db, want, (size_t)g.head.classes, 1e-5, 1e-3));
    free(want);

    vit_weights_free(&w);
    vit_weights_free(&gw);
    vit_head_free(&head);
    vit_plan_free(plan);
    dnn_free(d);
    golden_close(&g);
}

Test(golden, gelu_normalized_cross_entropy) { check_against_golden("vit_gelu.safetensors", false); }
Test(golden, gelu_normalized_entropy) { check_against_golden("vit_gelu.safetensors", true); }
Test(golden, quickgelu_plain_cross_entropy) { check_against_golden("vit_quickgelu.safetensors", false); }
Test(golden, quickgelu_plain_entropy) { check_against_golden("vit_quickgelu.safetensors", true); }
