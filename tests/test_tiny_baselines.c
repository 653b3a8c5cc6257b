/* test_tiny_baselines.c — the baseline merges end to end on the tiny suite (built by the ctest
 * fixture): the streaming TIES (global radix-select threshold over every tensor) equals the
 * array kernel on the flattened model; every method with λ = 0 returns θ0; the degenerate
 * settings reduce to Task Arithmetic exactly (Consensus k = 0, TATR q = 0, DARE density 1,
 * LATA γ = 1); DARE is deterministic for a seed; the per-task TALL λ search runs and records. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "baselines/kernels.h"
#include "baselines/methods.h"
#include "baselines/ties.h"
#include "tests/testutil.h"

static suite S;

static void open_suite(void) { tu_open_tiny_suite(&S); }
static void close_suite(void) { suite_close(&S); }

/* Run method m with the given --set strings; returns ctx->out.params (malloc'd copy) and the
 * record (malloc'd) when rec is non-NULL. */
static float *run(const merge_method *m, const char *const *sets, int n, char **rec) {
    merge_ctx ctx;
    tt_err e = {0};
    cr_assert_eq(merge_ctx_open(&ctx, &S, m, sets, n, 7, &e), 0, "%s", e.msg);
    cr_assert_eq(m->run(&ctx, &e), 0, "%s: %s", m->name, e.msg);
    size_t total = ctx.out.lay.total;
    float *out = malloc(total * sizeof(float));
    memcpy(out, ctx.out.params, total * sizeof(float));
    for (size_t i = 0; i < total; i++) cr_assert(isfinite(out[i]), "%s: non-finite output at %zu", m->name, i);
    if (rec) *rec = strdup(ctx.record_json ? ctx.record_json : "");
    merge_ctx_close(&ctx);
    return out;
}

static size_t model_floats(void) {
    vit_layout lay;
    tt_err e;
    cr_assert_eq(vit_layout_init(&lay, &S.cfg, &e), 0);
    size_t n = lay.total;
    vit_layout_free(&lay);
    return n;
}

Test(tiny_baselines, ties_streaming_equals_flat_arrays, .init = open_suite, .fini = close_suite) {
    merge_ctx ctx;
    tt_err e = {0};
    cr_assert_eq(merge_ctx_open(&ctx, &S, &method_ties, NULL, 0, 0, &e), 0, "%s", e.msg);
    const vit_layout *lay = &ctx.pre.lay;
    int K = ctx.K;
    size_t d = 0;
    for (int l = 0; l < lay->count; l++) d += lay->t[l].numel;
    float *flat[MERGE_MAX_TASKS], thr[MERGE_MAX_TASKS];
    for (int k = 0; k < K; k++) {
        flat[k] = malloc(d * sizeof(float));
        for (int l = 0, at = 0; l < lay->count; at += (int)lay->t[l].numel, l++)
            merge_task_vector(&ctx, k, l, flat[k] + at);
        thr[k] = ties_threshold_array(flat[k], d, 20);
    }
    for (int mean = 0; mean < 2; mean++) {
        float *want = malloc(d * sizeof(float)), *delta = malloc(lay->total * sizeof(float));
        cr_assert_eq(ties_merge_arrays((const float *const *)flat, K, d, thr, mean, want), 0);
        double density[MERGE_MAX_TASKS];
        /* mean = 1 with no room for entries awaiting the majority: the two-pass fallback (same bits) */
        ties_set_undecided_cap(mean ? 0 : SIZE_MAX);
        cr_assert_eq(ties_merged_delta(&ctx, 20, mean, delta, density, &e), 0, "%s", e.msg);
        ties_set_undecided_cap(SIZE_MAX);
        size_t nonzero = 0;
        for (int l = 0, at = 0; l < lay->count; at += (int)lay->t[l].numel, l++)
            for (size_t i = 0; i < lay->t[l].numel; i++) {
                cr_assert_eq(delta[lay->t[l].offset + i], want[at + i], "mean=%d %s[%zu]", mean, lay->t[l].name, i);
                nonzero += want[at + i] != 0;
            }
        cr_assert_gt(nonzero, 0);
        for (int k = 0; k < K; k++) {
            size_t kept = 0;
            for (size_t i = 0; i < d; i++) kept += fabsf(flat[k][i]) >= thr[k] && flat[k][i] != 0;
            cr_assert_float_eq(density[k], (double)kept / (double)d, 1e-12);
        }
        free(want);
        free(delta);
    }
    for (int k = 0; k < K; k++) free(flat[k]);
    merge_ctx_close(&ctx);
}

Test(tiny_baselines, lambda_zero_is_theta0, .init = open_suite, .fini = close_suite) {
    const char *l0[] = {"lambda=0", "tall_lambda=0.4"};
    float *zs = run(&method_zeroshot, NULL, 0, NULL);
    const merge_method *ms[] = {&method_ties, &method_dare, &method_tatr, &method_lata};
    size_t n = model_floats();
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
        float *out = run(ms[i], l0, 1, NULL);
        cr_assert_arr_eq(out, zs, n * sizeof(float), "%s with lambda=0 is not theta0", ms[i]->name);
        free(out);
    }
    float *out = run(&method_consensus_ties, l0, 2, NULL);
    cr_assert_arr_eq(out, zs, n * sizeof(float), "consensus-ties with lambda=0 is not theta0");
    free(out);
    free(zs);
}

Test(tiny_baselines, degenerate_settings_are_task_arithmetic, .init = open_suite, .fini = close_suite) {
    const char *ta_set[] = {"lambda=0.3"};
    float *ta = run(&method_ta, ta_set, 1, NULL);
    size_t n = model_floats();
    struct {
        const merge_method *m;
        const char *sets[3];
        int n;
    } cases[] = {
        {&method_consensus_ta, {"lambda=0.3", "k=0", "tall_lambda=0.5"}, 3},
        {&method_tatr, {"lambda=0.3", "q=0"}, 2},
        {&method_dare, {"lambda=0.3", "density=1"}, 2},
        {&method_lata, {"lambda=0.3", "gamma=1"}, 2},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        float *out = run(cases[c].m, cases[c].sets, cases[c].n, NULL);
        cr_assert_arr_eq(out, ta, n * sizeof(float), "%s (%s) differs from TA", cases[c].m->name, cases[c].sets[1]);
        free(out);
    }
    /* DARE density 1 on the TIES base feeds TIES through a transforming source (the K task vectors
     * of a tensor materialised in scratch) — the same bits as TIES on the mapped checkpoints */
    const char *ties_set[] = {"lambda=0.3"}, *dare_ties[] = {"lambda=0.3", "density=1", "base=ties"};
    float *ties = run(&method_ties, ties_set, 1, NULL), *dt = run(&method_dare, dare_ties, 3, NULL);
    cr_assert_arr_eq(dt, ties, n * sizeof(float), "dare density=1 base=ties differs from TIES");
    free(ties);
    free(dt);
    /* and the real settings do change the merge */
    const char *dare_half[] = {"lambda=0.3", "density=0.5"};
    float *dh = run(&method_dare, dare_half, 2, NULL);
    cr_assert(memcmp(dh, ta, n * sizeof(float)) != 0, "dare density=0.5 equals TA");
    free(dh);
    free(ta);
}

Test(tiny_baselines, dare_same_seed_same_model, .init = open_suite, .fini = close_suite) {
    const char *sets[] = {"lambda=0.5", "density=0.3", "base=ties"};
    float *a = run(&method_dare, sets, 3, NULL), *b = run(&method_dare, sets, 3, NULL);
    cr_assert_arr_eq(a, b, model_floats() * sizeof(float));
    free(a);
    free(b);
}

/* The per-task TALL λ search and the records. */
Test(tiny_baselines, records_what_was_chosen, .init = open_suite, .fini = close_suite) {
    const char *sets[] = {"lambda=0.3"};
    char *rec;
    free(run(&method_consensus_ta, sets, 1, &rec));
    cr_assert(strstr(rec, "\"tall_lambda\":{") && strstr(rec, "\"tall_val_acc\":{") && strstr(rec, "\"consensus_density\""),
              "consensus record: %s", rec);
    cr_assert(strstr(rec, S.tasks[0].name), "record names the tasks: %s", rec);
    free(rec);
    free(run(&method_ties, sets, 1, &rec));
    cr_assert(strstr(rec, "\"density\":{") && strstr(rec, "\"threshold\":{") && strstr(rec, "\"lambda\":0.3"),
              "ties record: %s", rec);
    free(rec);
    const char *tatr_sets[] = {"lambda=0.3", "exemplars=4"};
    free(run(&method_tatr, tatr_sets, 2, &rec));
    cr_assert(strstr(rec, "\"variant\":\"gradient\"") && strstr(rec, "\"mask_density\""), "tatr record: %s", rec);
    free(rec);
}
