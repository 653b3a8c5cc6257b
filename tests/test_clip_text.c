/* test_clip_text.c — the pieces of CLIP's text tower and zero-shot heads that a whole-model test
 * reaches only indirectly: causal attention against a naive masked softmax, the pooled position,
 * the class-name / template files. The whole tower is checked against PyTorch by
 * tests/clip_text_check.py (ctest clip_text). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/clip_text.h"
#include "core/dnn.h"
#include "core/ops.h"
#include "data/prompt_files.h"
#include "testutil.h"

/* out [B*T, W]: per head, softmax over keys j <= i of q_i.k_j / sqrt(hd), times v (double) */
static void naive_causal(int B, int T, int W, int H, float *out, const float *qkv) {
    int hd = W / H;
    double *p = malloc((size_t)T * sizeof *p);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < T; i++) {
                const float *q = qkv + ((size_t)b * T + i) * 3 * W + h * hd;
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j <= i; j++) {
                    const float *k = qkv + ((size_t)b * T + j) * 3 * W + W + h * hd;
                    double s = 0;
                    for (int c = 0; c < hd; c++) s += (double)q[c] * k[c];
                    p[j] = s / sqrt((double)hd);
                    if (p[j] > mx) mx = p[j];
                }
                for (int j = 0; j <= i; j++) sum += p[j] = exp(p[j] - mx);
                for (int c = 0; c < hd; c++) {
                    double o = 0;
                    for (int j = 0; j <= i; j++) o += p[j] / sum * qkv[((size_t)b * T + j) * 3 * W + 2 * W + h * hd + c];
                    out[((size_t)b * T + i) * W + h * hd + c] = (float)o;
                }
            }
    free(p);
}

Test(clip_text, causal_attention_matches_naive_masked_softmax) {
    const int B = 3, T = 9, W = 32, H = 4;
    dnn *d = NULL;
    tt_err e = {0};
    cr_assert_eq(dnn_create(&d, &e), 0, "%s", e.msg);
    op_attention a;
    cr_assert_eq(op_attention_init_forward(&a, d, B, T, W, H, &e), 0, "%s", e.msg);
    op_attention_set_causal(&a, true);
    size_t n = (size_t)B * T;
    float *qkv = malloc(n * 3 * W * sizeof(float)), *out = malloc(n * W * sizeof(float));
    float *want = malloc(n * W * sizeof(float)), *probs = malloc((size_t)B * H * T * T * sizeof(float));
    tu_fill_uniform(qkv, n * 3 * W, 7, -2.f, 2.f);
    op_attention_forward(&a, out, probs, qkv);
    naive_causal(B, T, W, H, want, qkv);
    cr_expect(tu_allclose("causal attention", out, want, n * W, 1e-5, 1e-4));
    for (int bh = 0; bh < B * H; bh++) /* nothing above the diagonal, rows sum to 1 */
        for (int i = 0; i < T; i++) {
            double s = 0;
            for (int j = 0; j < T; j++) {
                float pr = probs[((size_t)bh * T + i) * T + j];
                if (j > i) cr_expect_eq(pr, 0.0f, "probability above the diagonal at [%d,%d,%d]", bh, i, j);
                s += pr;
            }
            cr_expect(fabs(s - 1) < 1e-5, "row %d of head %d sums to %g", i, bh, s);
        }
    /* and the mask matters: the unmasked op differs */
    op_attention_set_causal(&a, false);
    op_attention_forward(&a, out, probs, qkv);
    cr_expect(tu_max_rel_err(out, want, n * W, 1e-5, 1e-4) > 1, "the unmasked attention should differ");
    free(qkv);
    free(out);
    free(want);
    free(probs);
    op_attention_free(&a);
    dnn_free(d);
}

Test(clip_text, pooled_position_is_the_first_largest_id) {
    const int32_t oc[] = {49406, 320, 1125, 49407, 0, 0};       /* open_clip: pad 0 */
    const int32_t hf[] = {49406, 320, 49407, 49407, 49407, 49407}; /* HF: pad = eot */
    const int32_t one[] = {5};
    cr_expect_eq(ct_eot_position(oc, 6), 3);
    cr_expect_eq(ct_eot_position(hf, 6), 2);
    cr_expect_eq(ct_eot_position(one, 1), 0);
}

static int parse(pf_lines *l, const char *text, bool templates, tt_err *e) {
    memset(e, 0, sizeof *e);
    return pf_lines_parse(l, text, strlen(text), "f.txt", templates, e);
}

Test(clip_text, prompt_files) {
    pf_lines l;
    tt_err e;
    cr_assert_eq(parse(&l, "a photo of a {}.\r\nitap of a {}\n", true, &e), 0, "%s", e.msg);
    cr_expect_eq(l.n, 2);
    cr_expect_str_eq(l.v[0], "a photo of a {}.");
    char *s = pf_fill(l.v[1], "cat");
    cr_expect_str_eq(s, "itap of a cat");
    free(s);
    pf_lines_free(&l);
    cr_assert_eq(parse(&l, "abbey\nalley", false, &e), 0, "%s", e.msg);
    cr_expect_eq(l.n, 2);
    pf_lines_free(&l);
    const struct {
        const char *text, *msg;
        bool templates;
    } bad[] = {{"", "f.txt: no class names", false},
               {"a\n\nb\n", "f.txt:2: empty line", false},
               {"a {}\nno mark\n", "f.txt:2: a template needs exactly one \"{}\" (found none)", true},
               {"{} and {}\n", "f.txt:1: a template needs exactly one \"{}\" (found two)", true}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cr_expect_neq(parse(&l, bad[i].text, bad[i].templates, &e), 0, "case %zu accepted", i);
        cr_expect(strstr(e.msg, bad[i].msg) != NULL, "case %zu: '%s' lacks '%s'", i, e.msg, bad[i].msg);
        cr_expect(l.n == 0 && l.v == NULL);
    }
}
