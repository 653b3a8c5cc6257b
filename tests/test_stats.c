/* test_stats.c — per-example predictions (reports/predictions.c) and the statistics computed
 * from them (reports/stats.c), on synthetic data with known answers.
 *
 * stats: the bootstrap interval of one task, of the average over tasks and of a paired
 * difference against the normal approximation (binomial SE; the paired SE from the discordant
 * pairs); the exact McNemar p-value against hand-computed binomial sums; the false-positive rate
 * of both p-values over 1,000 comparisons of two methods with the same accuracy (≈ 5% at 0.05)
 * and their power on a real difference; same seed -> same bits, another seed -> other draws;
 * tasks that do not match are refused. check --tol auto: the per-row tolerance is k·√2·SE.
 * predictions: write -> read round trip, the exact bytes of the format, and malformed files
 * (bad magic, truncated, padded, pad bits, duplicate task, bad counts) each refused on one line
 * naming the file. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "core/rng.h"
#include "reports/check.h"
#include "reports/predictions.h"
#include "reports/stats.h"
#include "tests/testutil.h"

/* A method's predictions: K tasks of n examples, example right with probability acc[t]; or, with
 * `like` and flip_p, a copy of another method's bits where each example is redrawn with
 * probability flip_p (a correlated method, as real merges are). */
static void synth(predictions *p, const char *method, int K, uint32_t n, const double *acc, uint64_t seed,
                  const predictions *like, double flip_p) {
    rng r;
    rng_init(&r, seed);
    *p = (predictions){.suite = strdup("synthetic"), .method = strdup(method), .n_tasks = K,
                       .tasks = calloc((size_t)K, sizeof(predictions_task))};
    uint8_t *c = malloc(n);
    for (int t = 0; t < K; t++) {
        for (uint32_t i = 0; i < n; i++) {
            bool redraw = !like || rng_uniform(&r) < flip_p;
            c[i] = redraw ? rng_uniform(&r) < acc[t] : (uint8_t)predictions_bit(&like->tasks[t], i);
        }
        char name[16];
        snprintf(name, sizeof name, "task%d", t);
        tt_err e = {0};
        cr_assert(predictions_task_set(&p->tasks[t], name, c, n, &e) == 0, "%s", e.msg);
    }
    free(c);
}

static stats_opts opts(const char *ref, int resamples, uint64_t seed) {
    stats_opts o = stats_defaults();
    o.ref = ref, o.resamples = resamples, o.seed = seed;
    return o;
}

/* ---- primitives ---- */

Test(stats, binomial_se_and_quantile) {
    cr_assert_float_eq(stats_binomial_se(60, 2000), 100 * sqrt(0.6 * 0.4 / 2000), 1e-12);
    cr_assert_float_eq(stats_binomial_se(100, 10), 0, 1e-12);
    cr_assert(isnan(stats_binomial_se(50, 0)));
    double v[] = {1, 2, 3, 4, 5};
    cr_assert_float_eq(stats_quantile(v, 5, 0.5), 3, 1e-12);
    cr_assert_float_eq(stats_quantile(v, 5, 0.1), 1.4, 1e-12); /* numpy.quantile([1..5], .1) */
    cr_assert_float_eq(stats_quantile(v, 5, 1), 5, 1e-12);
}

Test(stats, mcnemar_exact_matches_binomial_sums) {
    cr_assert_float_eq(stats_mcnemar_p(0, 0), 1, 1e-12);
    cr_assert_float_eq(stats_mcnemar_p(3, 3), 1, 1e-12);
    cr_assert_float_eq(stats_mcnemar_p(0, 5), 2.0 / 32, 1e-12);
    cr_assert_float_eq(stats_mcnemar_p(9, 1), 2.0 * 11 / 1024, 1e-12);
    cr_assert_float_eq(stats_mcnemar_p(1, 9), stats_mcnemar_p(9, 1), 1e-15);
    /* 60 vs 40 discordant: 2 P(X <= 40), X ~ Bin(100, 1/2) = 0.056887... (scipy.stats.binomtest) */
    cr_assert_float_eq(stats_mcnemar_p(60, 40), 0.05688793364098078, 1e-9);
    /* large counts stay finite and tiny */
    double p = stats_mcnemar_p(600000, 500000);
    cr_assert(p >= 0 && p < 1e-100, "p = %g", p);
}

/* ---- intervals against the normal approximation ---- */

Test(stats, bootstrap_interval_matches_normal_approximation) {
    const double acc[4] = {0.6, 0.8, 0.45, 0.9};
    predictions p[2];
    synth(&p[0], "ta", 4, 2000, acc, 11, NULL, 0);
    synth(&p[1], "other", 4, 2000, acc, 12, &p[0], 0.3);
    stats_opts o = opts("ta", 4000, 7);
    stats_board b;
    tt_err e = {0};
    cr_assert(stats_compute(p, 2, &o, &b, &e) == 0, "%s", e.msg);
    const double z = 1.959963984540054;
    for (int i = 0; i < 2; i++) {
        double se2 = 0;
        for (int t = 0; t < 4; t++) {
            const stats_cell *c = &b.m[i].task[t];
            double se = stats_binomial_se(c->acc, 2000);
            cr_assert_float_eq(c->se, se, 1e-12);
            /* percentile endpoints of 4000 resamples: Monte Carlo error ~0.05 SE, lattice 0.05 points */
            cr_assert(fabs(c->ci_low - (c->acc - z * se)) < 0.15 * se + 0.05, "%s task %d low %.3f vs %.3f", b.m[i].method, t,
                      c->ci_low, c->acc - z * se);
            cr_assert(fabs(c->ci_high - (c->acc + z * se)) < 0.15 * se + 0.05, "%s task %d high %.3f vs %.3f", b.m[i].method,
                      t, c->ci_high, c->acc + z * se);
            se2 += se * se;
        }
        double se_avg = sqrt(se2) / 4;
        cr_assert_float_eq(b.m[i].avg.se, se_avg, 1e-12);
        cr_assert(fabs(b.m[i].avg.ci_low - (b.m[i].avg.acc - z * se_avg)) < 0.15 * se_avg, "avg low");
        cr_assert(fabs(b.m[i].avg.ci_high - (b.m[i].avg.acc + z * se_avg)) < 0.15 * se_avg, "avg high");
    }
    /* the paired difference: SE from the discordant pairs, much smaller than the unpaired one */
    double var_sum = 0, diff_sum = 0;
    for (int t = 0; t < 4; t++) {
        long only_a = 0, only_r = 0;
        for (uint32_t j = 0; j < 2000; j++) {
            int a = predictions_bit(&p[1].tasks[t], j), r = predictions_bit(&p[0].tasks[t], j);
            only_a += a && !r, only_r += r && !a;
        }
        double d = (double)(only_a - only_r) / 2000, q = (double)(only_a + only_r) / 2000;
        var_sum += (q - d * d) / 2000;
        diff_sum += 100 * d;
        cr_assert_float_eq(b.m[1].task[t].diff, 100 * d, 1e-9);
        cr_assert_float_eq(b.m[1].task[t].p, stats_mcnemar_p(only_a, only_r), 1e-15);
    }
    double dse = 100 * sqrt(var_sum) / 4, dmean = diff_sum / 4;
    cr_assert_float_eq(b.m[1].avg.diff, dmean, 1e-9);
    cr_assert(fabs(b.m[1].avg.diff_low - (dmean - z * dse)) < 0.15 * dse, "diff low %.3f vs %.3f", b.m[1].avg.diff_low, dmean - z * dse);
    cr_assert(fabs(b.m[1].avg.diff_high - (dmean + z * dse)) < 0.15 * dse, "diff high %.3f vs %.3f", b.m[1].avg.diff_high, dmean + z * dse);
    cr_assert(dse < 0.8 * sqrt(2) * b.m[1].avg.se, "paired SE %.3f not below the unpaired %.3f", dse, sqrt(2) * b.m[1].avg.se);
    /* the reference against itself */
    cr_assert(b.m[0].avg.diff == 0 && b.m[0].avg.diff_low == 0 && b.m[0].avg.diff_high == 0 && b.m[0].avg.p == 1);
    stats_free(&b);
    predictions_free(&p[0]);
    predictions_free(&p[1]);
}

/* ---- p-values: false positives at the nominal level, power on a real difference ---- */

static void rates(double acc_a, double acc_b, int comparisons, double *boot_rate, double *mcnemar_rate) {
    const double aa[2] = {acc_a, acc_a}, ab[2] = {acc_b, acc_b};
    int boot = 0, mcn = 0;
    for (int k = 0; k < comparisons; k++) {
        predictions p[2];
        synth(&p[0], "ref", 2, 200, aa, 1000 + (uint64_t)k, NULL, 0);
        synth(&p[1], "m", 2, 200, ab, 900000 + (uint64_t)k, &p[0], 0.5);
        stats_opts o = opts("ref", 399, (uint64_t)k);
        stats_board b;
        tt_err e = {0};
        cr_assert(stats_compute(p, 2, &o, &b, &e) == 0, "%s", e.msg);
        boot += b.m[1].avg.p < 0.05;
        mcn += b.m[1].task[0].p < 0.05;
        stats_free(&b);
        predictions_free(&p[0]);
        predictions_free(&p[1]);
    }
    *boot_rate = (double)boot / comparisons;
    *mcnemar_rate = (double)mcn / comparisons;
}

Test(stats, false_positive_rate_is_nominal, .timeout = 60) {
    double boot, mcn;
    /* two methods with the same accuracy (70%), correlated like merges (half the examples shared) */
    rates(0.7, 0.7, 1000, &boot, &mcn);
    fprintf(stderr, "false positives at p < 0.05 over 1000 comparisons: paired bootstrap %.1f%%, exact McNemar %.1f%%\n",
            100 * boot, 100 * mcn);
    /* 1,000 comparisons: a 5% rate has a binomial sd of 0.69 points; 3.5-7.0% is ±2 sd.
     * The exact McNemar test is conservative (discrete): at most the level, not far below. */
    cr_assert(boot >= 0.035 && boot <= 0.07, "paired bootstrap: %.1f%% false positives at p < 0.05", 100 * boot);
    cr_assert(mcn >= 0.015 && mcn <= 0.06, "exact McNemar: %.1f%% false positives at p < 0.05", 100 * mcn);
}

Test(stats, p_values_have_power, .timeout = 60) {
    double boot, mcn;
    /* 50% vs 80% with half the examples shared: a 15-point difference on 2 x 200 examples */
    rates(0.5, 0.8, 200, &boot, &mcn);
    fprintf(stderr, "power at a 15-point difference: paired bootstrap %.1f%%, exact McNemar (one task) %.1f%%\n", 100 * boot, 100 * mcn);
    cr_assert(boot > 0.95, "paired bootstrap found only %.0f%% of real differences", 100 * boot);
    cr_assert(mcn > 0.8, "McNemar found only %.0f%% of real differences", 100 * mcn);
}

/* ---- determinism ---- */

Test(stats, deterministic_for_a_seed) {
    const double acc[3] = {0.5, 0.7, 0.9};
    predictions p[3];
    synth(&p[0], "ta", 3, 300, acc, 1, NULL, 0);
    synth(&p[1], "a", 3, 300, acc, 2, &p[0], 0.4);
    synth(&p[2], "b", 3, 300, acc, 3, NULL, 0);
    stats_board x, y, z;
    tt_err e = {0};
    stats_opts o = opts("ta", 500, 42), o2 = opts("ta", 500, 43);
    cr_assert(stats_compute(p, 3, &o, &x, &e) == 0 && stats_compute(p, 3, &o, &y, &e) == 0 &&
              stats_compute(p, 3, &o2, &z, &e) == 0, "%s", e.msg);
    bool other_draws = false;
    for (int i = 0; i < 3; i++) {
        for (int t = 0; t < 3; t++) {
            cr_assert(!memcmp(&x.m[i].task[t], &y.m[i].task[t], sizeof(stats_cell)), "same seed, other numbers");
            other_draws |= x.m[i].task[t].ci_low != z.m[i].task[t].ci_low || x.m[i].task[t].ci_high != z.m[i].task[t].ci_high;
        }
        cr_assert(!memcmp(&x.m[i].avg, &y.m[i].avg, sizeof(stats_cell)));
    }
    cr_assert(other_draws, "seed 43 drew the same resamples as seed 42");
    stats_free(&x), stats_free(&y), stats_free(&z);
    for (int i = 0; i < 3; i++) predictions_free(&p[i]);
}

Test(stats, refuses_mismatched_tasks) {
    const double acc[2] = {0.5, 0.5};
    predictions p[2];
    synth(&p[0], "ta", 2, 100, acc, 1, NULL, 0);
    synth(&p[1], "a", 2, 101, acc, 2, NULL, 0);
    stats_opts o = opts("ta", 10, 0);
    stats_board b;
    tt_err e = {0};
    cr_assert(stats_compute(p, 2, &o, &b, &e) != 0);
    cr_assert(strstr(e.msg, "task 1") && strstr(e.msg, "101"), "%s", e.msg);
    predictions_free(&p[0]);
    predictions_free(&p[1]);
}

/* ---- check --tol auto ---- */

static uint32_t n2000(void *ctx, const char *suite, const char *task) {
    (void)ctx, (void)suite;
    return strcmp(task, "unknown") ? 2000 : 0;
}

Test(stats, check_auto_tolerance_is_k_sqrt2_se) {
    results_table g = {0}, r = {0};
    tt_err e = {0};
    double tol = 4 * sqrt(2) * stats_binomial_se(60, 2000); /* 6.197 points */
    const char *tasks[] = {"a", "b", "unknown"};
    double got[] = {60 + tol - 0.01, 60 - tol - 0.01, 60};
    for (int i = 0; i < 3; i++) {
        results_row row = {.suite = "s", .method = "m", .params = "{}", .task = (char *)tasks[i], .accuracy = 60,
                           .normalized_accuracy = NAN, .seconds = NAN, .peak_rss_mb = NAN, .git_revision = "",
                           .threads = 1, .seed = 0, .status = RESULTS_OK, .error = ""};
        cr_assert(results_append_row(&g, &row, &e) == 0, "%s", e.msg);
        row.accuracy = got[i];
        cr_assert(results_append_row(&r, &row, &e) == 0, "%s", e.msg);
    }
    check_noise noise = {.k = 4, .count = n2000};
    check_report rep;
    cr_assert(check_compare_auto(&g, &r, 0, &noise, &rep, &e) == 0);
    cr_assert_eq(rep.drifted, 2, "a is within, b beyond, the row without a count cannot pass");
    cr_assert_eq(rep.within, 1);
    cr_assert(!strcmp(rep.items[0].task, "b") && fabs(rep.items[0].tol - tol) < 1e-9);
    cr_assert(!strcmp(rep.items[1].task, "unknown") && isnan(rep.items[1].tol));
    check_free(&rep);
    results_free(&g);
    results_free(&r);
}

/* ---- the predictions file ---- */

static char g_dir[512];
static void cleanup(void) {
    if (g_dir[0]) tu_rm_tree(g_dir);
    g_dir[0] = 0;
}

Test(predictions, round_trip_and_exact_bytes, .fini = cleanup) {
    snprintf(g_dir, sizeof g_dir, "%s", tu_tmpdir("pred"));
    char path[600];
    snprintf(path, sizeof path, "%s/ta.bits", g_dir);
    uint8_t c1[10] = {1, 0, 1, 1, 0, 0, 0, 0, 1, 1}, c2[3] = {0, 0, 1};
    predictions p = {.suite = "tiny", .method = "ta", .seed = 7, .n_tasks = 2, .tasks = calloc(2, sizeof(predictions_task))};
    tt_err e = {0};
    cr_assert(predictions_task_set(&p.tasks[0], "mnist", c1, 10, &e) == 0 &&
              predictions_task_set(&p.tasks[1], "a b", c2, 3, &e) == 0);
    cr_assert(predictions_write(path, &p, &e) == 0, "%s", e.msg);
    char *buf;
    size_t n;
    cr_assert(fio_read_all(path, &buf, &n, 1 << 20, &e) == 0);
    const char want[] = "ttmerge-predictions 1\nsuite tiny\nmethod ta\nseed 7\ntasks 2\ntask 10 mnist\ntask 3 a b\n\n"
                        "\x0d\x03\x04";
    cr_assert_eq(n, sizeof want - 1);
    cr_assert(!memcmp(buf, want, n), "bytes differ from the documented format");
    free(buf);
    predictions q;
    cr_assert(predictions_read(path, &q, &e) == 0, "%s", e.msg);
    cr_assert(!strcmp(q.suite, "tiny") && !strcmp(q.method, "ta") && q.seed == 7 && q.n_tasks == 2);
    cr_assert(!strcmp(q.tasks[1].name, "a b") && q.tasks[0].n == 10 && q.tasks[1].n == 3);
    for (uint32_t i = 0; i < 10; i++) cr_assert_eq(predictions_bit(&q.tasks[0], i), c1[i]);
    cr_assert_eq(predictions_correct(&q.tasks[0]), 5);
    cr_assert_eq(predictions_correct(&q.tasks[1]), 1);
    predictions_free(&q);
    for (int t = 0; t < 2; t++) free(p.tasks[t].name), free(p.tasks[t].bits);
    free(p.tasks);
}

Test(predictions, malformed_files_refused_on_one_line) {
    const char hdr[] = "ttmerge-predictions 1\nsuite s\nmethod m\nseed 0\ntasks 1\ntask 3 x\n\n";
    struct {
        const char *what;
        const char *bytes;
        size_t n;
        const char *phrase;
    } cases[] = {
        {"empty", "", 0, "header ends early"},
        {"magic", "ttmerge-predictions 2\n", 22, "not a predictions file"},
        {"binary", "\x89PNG\r\n\x1a\n", 8, "not a predictions file"},
        {"truncated", hdr, sizeof hdr - 1, "0 bytes after the header"},
        {"padded", "ttmerge-predictions 1\nsuite s\nmethod m\nseed 0\ntasks 1\ntask 3 x\n\n\x01\x00", sizeof hdr + 1, "2 bytes after"},
        {"pad bits", "ttmerge-predictions 1\nsuite s\nmethod m\nseed 0\ntasks 1\ntask 3 x\n\n\x09", sizeof hdr, "pad bits"},
        {"dup", "ttmerge-predictions 1\nsuite s\nmethod m\nseed 0\ntasks 2\ntask 1 x\ntask 1 x\n\n\x01\x01", 75, "twice"},
        {"count", "ttmerge-predictions 1\nsuite s\nmethod m\nseed 0\ntasks 1\ntask 99999999999 x\n\n", 76, "task COUNT NAME"},
        {"zero tasks", "ttmerge-predictions 1\nsuite s\nmethod m\nseed 0\ntasks 0\n\n", 56, "tasks: not an integer"},
        {"seed", "ttmerge-predictions 1\nsuite s\nmethod m\nseed -1\ntasks 1\ntask 1 x\n\n\x01", 67, "seed"},
        {"no blank", "ttmerge-predictions 1\nsuite s\nmethod m\nseed 0\ntasks 1\ntask 1 x\nx\n\x01", 67, "blank line"},
        {"control", "ttmerge-predictions 1\nsuite s\x01\nmethod m\nseed 0\ntasks 1\ntask 1 x\n\n\x01", 67, "control characters"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        predictions p;
        tt_err e = {0};
        int rc = predictions_parse("f.bits", (const uint8_t *)cases[i].bytes, cases[i].n, &p, &e);
        cr_assert(rc != 0, "%s: accepted", cases[i].what);
        cr_assert(!strchr(e.msg, '\n'), "%s: message spans lines: %s", cases[i].what, e.msg);
        cr_assert(!strncmp(e.msg, "f.bits: ", 8), "%s: message does not name the file: %s", cases[i].what, e.msg);
        cr_assert(strstr(e.msg, cases[i].phrase), "%s: '%s' lacks '%s'", cases[i].what, e.msg, cases[i].phrase);
        cr_assert(p.tasks == NULL && p.suite == NULL, "%s: not left empty", cases[i].what);
    }
}
