/* test_tiny_graft.c — grafting / Localize-and-Stitch on the tiny suite: ∂L/∂S against central
 * finite differences of the cross-entropy (directions over whole tensors, over the basepatch
 * and its complement, single coordinates), the dataless mask is exactly the top-k of |τ_t|
 * (checked against a sort) and the stitch equals θ0 + Σ m_t τ_t / Σ m_j recomputed here,
 * rounded masks hold only 0/1, epochs = 0 is the dataless merge, and a fixed seed gives the
 * same model twice. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <string.h>

#include "baselines/methods.h"
#include "tests/testutil.h"

static suite S;

static void open_suite(void) { tu_open_tiny_suite(&S); }
static void close_suite(void) { suite_close(&S); }

static void ctx_open(merge_ctx *ctx, const char *const *sets, int n, uint64_t seed) {
    tt_err e = {0};
    cr_assert_eq(merge_ctx_open(ctx, &S, &method_graft, sets, n, seed, &e), 0, "%s", e.msg);
}

/* Run graft with sets; returns a copy of ctx->out.params and (if rec) the record. */
static float *run(const char *const *sets, int n, uint64_t seed, char **rec) {
    merge_ctx ctx;
    tt_err e = {0};
    ctx_open(&ctx, sets, n, seed);
    cr_assert_eq(method_graft.run(&ctx, &e), 0, "%s", e.msg);
    float *out = malloc(ctx.out.lay.total * sizeof(float));
    memcpy(out, ctx.out.params, ctx.out.lay.total * sizeof(float));
    if (rec) *rec = strdup(ctx.record_json);
    merge_ctx_close(&ctx);
    return out;
}

static double objective(merge_ctx *ctx, int t, const float *s) {
    double loss;
    tt_err e = {0};
    cr_assert_eq(graft_objective(ctx, t, s, &loss, NULL, NULL, &e), 0, "%s", e.msg);
    return loss;
}

/* Central differences of L(S) along directions v: (L(S + εv) − L(S − εv)) / 2ε vs <∂L/∂S, v>.
 * S − s_bias is spread over [−3, 3] (γ between 0.05 and 0.95, σ' not tiny), 16 shots per class
 * in batches of 64 (160 shots: a padded last batch). ε = 0.05 in score units: truncation ~ε²;
 * the f32 noise of the difference is ~1e-6 (measured: the random-sign directions agree to
 * 3e-7..1.3e-6). Tolerance |analytic − fd| <= 5e-6 + 1e-2 |fd|. The aligned directions have
 * |fd| >= 2.5e-5 (5x the absolute part; most are 1e-3..1) and at least half the blind ones
 * >= 5e-5, asserted. */
Test(tiny_graft, score_gradient_matches_fd, .init = open_suite, .fini = close_suite, .timeout = 300) {
    const char *sets[] = {"sparsity=0.05", "shots=16", "batch=64"};
    merge_ctx ctx;
    ctx_open(&ctx, sets, 3, 0);
    const vit_layout *lay = &ctx.pre.lay;
    size_t total = lay->total;
    float *s = malloc(total * sizeof(float)), *grad = malloc(total * sizeof(float)), *probe = malloc(total * sizeof(float)),
          *v = calloc(total, sizeof(float));
    uint8_t *b = malloc(total);
    tt_err e = {0};
    int checked = 0, large_blind = 0;
    for (int t = 0; t < ctx.K; t += 2) { /* mnist and fmnist-rotpred (10 and 4 classes) */
        tu_fill_uniform(s, total, 11 + (uint64_t)t, 2.0f, 8.0f);
        double loss;
        cr_assert_eq(graft_objective(&ctx, t, s, &loss, grad, b, &e), 0, "%s", e.msg);
        cr_assert(isfinite(loss) && loss > 0.05 && loss < 5, "loss %g", loss);
        /* directions: on each of 8 tensors, random signs (blind to the analytic gradient) and
         * sign(grad)·U[0.5, 1) (a large derivative); the basepatch and its complement aligned the
         * same way; the largest-|grad| coordinate of each branch */
        enum { N_DIR = 20 };
        for (int dir = 0; dir < N_DIR; dir++) {
            memset(v, 0, total * sizeof(float));
            if (dir < 16) {
                const vit_tensor_info *ten = &lay->t[(dir / 2) * lay->count / 8];
                float *vt = v + ten->offset;
                tu_fill_uniform(vt, ten->numel, 100 + (uint64_t)dir, -1, 1);
                for (size_t i = 0; i < ten->numel; i++)
                    vt[i] = dir % 2 ? (grad[ten->offset + i] < 0 ? -1.f : 1.f) * (0.75f + 0.25f * vt[i])
                                    : (vt[i] < 0 ? -1.f : 1.f);
            } else if (dir < 18) {
                for (size_t i = 0; i < total; i++) v[i] = b[i] == (dir == 16) ? (grad[i] < 0 ? -1.f : 1.f) : 0.f;
            } else {
                size_t best = 0;
                for (size_t i = 0; i < total; i++)
                    if (b[i] == (dir == 18) && fabsf(grad[i]) > fabsf(grad[best])) best = i;
                cr_assert(b[best] == (dir == 18));
                v[best] = 1;
            }
            double dot = 0;
            for (size_t i = 0; i < total; i++) dot += (double)grad[i] * v[i];
            const float eps = 0.05f;
            for (size_t i = 0; i < total; i++) probe[i] = s[i] + eps * v[i];
            double lp = objective(&ctx, t, probe);
            for (size_t i = 0; i < total; i++) probe[i] = s[i] - eps * v[i];
            double lm = objective(&ctx, t, probe);
            double fd = (lp - lm) / (2 * eps);
            cr_expect(fabs(dot - fd) <= 5e-6 + 1e-2 * fabs(fd), "task %d direction %d: analytic %.6g fd %.6g", t, dir, dot, fd);
            bool blind = dir < 16 && dir % 2 == 0;
            if (!blind) cr_expect(fabs(fd) >= 2.5e-5, "task %d direction %d: fd %.3g proves little", t, dir, fd);
            else large_blind += fabs(fd) >= 5e-5;
            checked++;
        }
    }
    cr_assert_eq(checked, 40);
    cr_assert_geq(large_blind, 8, "only %d of 16 blind directions have |fd| >= 5e-5", large_blind);
    free(s);
    free(grad);
    free(probe);
    free(v);
    free(b);
    merge_ctx_close(&ctx);
}

static int cmp_desc(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

/* Dataless: m_t = the top floor(s·d) |τ_t| (the sorted threshold; ties are improbable and
 * asserted absent at the threshold), exact density, overlap from the masks, and the stitch. */
Test(tiny_graft, dataless_is_top_k_and_stitch_averages, .init = open_suite, .fini = close_suite) {
    const char *sets[] = {"localize=dataless", "sparsity=0.03"};
    char *rec;
    float *out = run(sets, 2, 0, &rec);
    merge_ctx ctx;
    ctx_open(&ctx, sets, 2, 0);
    const vit_layout *lay = &ctx.pre.lay;
    size_t total = lay->total, d = 0;
    for (int l = 0; l < lay->count; l++) d += lay->t[l].numel;
    size_t k = (size_t)floor(0.03 * (double)d);
    float *tv = calloc((size_t)ctx.K * total, sizeof(float)), *mag = malloc(d * sizeof(float));
    uint8_t *m = calloc((size_t)ctx.K * total, 1), *cnt = calloc(total, 1);
    json_error_t je;
    json_t *r = json_loads(rec, 0, &je), *tasks = json_object_get(r, "tasks");
    cr_assert_not_null(tasks, "record: %s", rec);
    for (int t = 0; t < ctx.K; t++) {
        float *tt = tv + (size_t)t * total;
        size_t at = 0;
        for (int l = 0; l < lay->count; l++) {
            merge_task_vector(&ctx, t, l, tt + lay->t[l].offset);
            for (size_t i = 0; i < lay->t[l].numel; i++) mag[at++] = fabsf(tt[lay->t[l].offset + i]);
        }
        qsort(mag, d, sizeof(float), cmp_desc);
        cr_assert_gt(mag[k - 1], mag[k], "task %d: a tie at the threshold; this check assumes none", t);
        size_t on = 0;
        for (int l = 0; l < lay->count; l++)
            for (size_t i = 0; i < lay->t[l].numel; i++) {
                size_t j = lay->t[l].offset + i;
                m[(size_t)t * total + j] = fabsf(tt[j]) >= mag[k - 1];
                on += m[(size_t)t * total + j];
                cnt[j] += m[(size_t)t * total + j];
            }
        cr_assert_eq(on, k);
        json_t *tr = json_object_get(tasks, S.tasks[t].name);
        cr_assert_eq(json_integer_value(json_object_get(tr, "kept")), (json_int_t)k, "%s", rec);
        cr_assert_float_eq(json_real_value(json_object_get(tr, "density")), (double)k / (double)d, 1e-6 * k / d, "%s", rec);
    }
    for (int t = 0; t < ctx.K; t++) {
        size_t shared = 0;
        for (size_t j = 0; j < total; j++) shared += m[(size_t)t * total + j] && cnt[j] > 1;
        json_t *tr = json_object_get(tasks, S.tasks[t].name);
        cr_assert_float_eq(json_real_value(json_object_get(tr, "overlap")), (double)shared / (double)k, 1e-6, "%s", rec);
        cr_assert_gt(shared, 0);
    }
    size_t overlapping = 0;
    for (size_t j = 0; j < total; j++) {
        double want = ctx.pre.params[j];
        for (int t = 0; t < ctx.K; t++)
            if (m[(size_t)t * total + j]) want += (double)tv[(size_t)t * total + j] / cnt[j];
        cr_assert(fabs(out[j] - want) <= 1e-6 * (1 + fabs(want)), "[%zu]: %.8g, expected %.8g", j, (double)out[j], want);
        overlapping += cnt[j] > 1;
    }
    cr_assert_gt(overlapping, 0, "no two masks overlap: the averaging is untested");
    json_decref(r);
    free(rec);
    free(out);
    free(tv);
    free(mag);
    free(m);
    free(cnt);
    merge_ctx_close(&ctx);
}

/* The learned masks hold only 0/1 (padding 0), their recorded densities match them, and the
 * optimisation moves them off the basepatch; with epochs = 0 the graft is the basepatch, so
 * the merge equals the dataless one bit for bit. */
Test(tiny_graft, rounded_masks_and_zero_epochs, .init = open_suite, .fini = close_suite, .timeout = 120) {
    merge_ctx ctx;
    ctx_open(&ctx, NULL, 0, 0); /* the defaults: lr = auto */
    const vit_layout *lay = &ctx.pre.lay;
    size_t total = lay->total, d = 0;
    for (int l = 0; l < lay->count; l++) d += lay->t[l].numel;
    uint8_t *mask = malloc(total);
    tt_err e = {0};
    int moved = 0;
    for (int t = 0; t < ctx.K; t++) {
        graft_info info;
        memset(mask, 7, total);
        cr_assert_eq(graft_localize(&ctx, t, mask, &info, &e), 0, "%s", e.msg);
        size_t on = 0, in_tensors = 0;
        for (size_t j = 0; j < total; j++) {
            cr_assert(mask[j] == 0 || mask[j] == 1, "task %d mask[%zu] = %d", t, j, mask[j]);
            on += mask[j];
        }
        for (int l = 0; l < lay->count; l++)
            for (size_t i = 0; i < lay->t[l].numel; i++) in_tensors += mask[lay->t[l].offset + i];
        cr_assert_eq(on, in_tensors, "task %d: padding joined the mask", t);
        cr_assert_eq(info.kept, on);
        cr_assert_float_eq(info.density, (double)on / (double)d, 1e-12);
        cr_assert_eq(info.basepatch, (uint64_t)floor(0.01 * (double)d));
        cr_assert(info.best_epoch >= 1 && info.best_epoch <= 10);
        cr_assert(info.lr > 1e3 && info.lr < 1e8, "task %d: auto lr %g", t, info.lr);
        cr_assert(info.loss_last < info.loss_first, "task %d: relaxed loss %g -> %g", t, info.loss_first, info.loss_last);
        moved += info.kept != info.basepatch;
    }
    cr_assert_gt(moved, 0, "no mask moved off the basepatch");
    free(mask);
    merge_ctx_close(&ctx);

    const char *zero[] = {"epochs=0", "sparsity=0.02"}, *dataless[] = {"localize=dataless", "sparsity=0.02"};
    float *a = run(zero, 2, 0, NULL), *b = run(dataless, 2, 0, NULL);
    cr_assert_arr_eq(a, b, total * sizeof(float), "epochs=0 differs from the dataless merge");
    free(a);
    free(b);
}

Test(tiny_graft, same_seed_same_model, .init = open_suite, .fini = close_suite, .timeout = 120) {
    const char *sets[] = {"init=uniform", "sigmoid_bias=10", "epochs=4"};
    char *ra, *rb;
    float *a = run(sets, 3, 5, &ra), *b = run(sets, 3, 5, &rb);
    json_error_t je;
    json_t *r = json_loads(ra, 0, &je), *tasks = json_object_get(r, "tasks"), *tr;
    const char *name;
    int moved = 0;
    json_object_foreach(tasks, name, tr) moved += json_real_value(json_object_get(tr, "density")) !=
                                                  json_real_value(json_object_get(tr, "basepatch_density"));
    cr_assert_gt(moved, 0, "no mask moved: %s", ra);
    json_decref(r);
    vit_layout lay;
    tt_err e;
    cr_assert_eq(vit_layout_init(&lay, &S.cfg, &e), 0);
    cr_assert_arr_eq(a, b, lay.total * sizeof(float));
    char *sa = strstr(ra, "\"localize_seconds\""), *sb = strstr(rb, "\"localize_seconds\"");
    cr_assert(sa && sb);
    *sa = *sb = 0; /* everything but the timing */
    cr_assert_str_eq(ra, rb);
    cr_assert(strstr(ra, "\"shots_acc_graft\"") && strstr(ra, "\"overlap\"") && strstr(ra, "\"rounded_loss\"") &&
                  strstr(ra, "\"stitched_density\""),
              "record: %s", ra);
    vit_layout_free(&lay);
    free(a);
    free(b);
    free(ra);
    free(rb);
}

Test(tiny_graft, bad_parameters_are_one_line_errors, .init = open_suite, .fini = close_suite) {
    const char *cases[][2] = {{"sparsity=1e-9", "keeps no weight"}, {"localize=magic", "expected graft|dataless"},
                              {"epochs=2.5", "not an integer"},    {"split=test", "expected train|val"},
                              {"sparsity=2", "out of range"}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        merge_ctx ctx;
        tt_err e = {0};
        ctx_open(&ctx, cases[c], 1, 0);
        cr_assert_neq(method_graft.run(&ctx, &e), 0, "%s accepted", cases[c][0]);
        cr_assert(strstr(e.msg, cases[c][1]) && !strchr(e.msg, '\n'), "%s: '%s'", cases[c][0], e.msg);
        merge_ctx_close(&ctx);
    }
}
