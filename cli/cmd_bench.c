/* cmd_bench.c — `ttmerge bench --suite DIR [--methods a,b|all] --out RESULTS_DIR [--seeds 0,1,2]`.
 * With --seeds, the first seed is the run in RESULTS_DIR; every further seed S reruns the methods
 * that use the seed (grid_seeded_methods) in RESULTS_DIR/seeds/S/, and RESULTS_DIR/leaderboard.csv
 * gains each method's mean and sd of the average accuracy over the seeds (reports/stats.h). */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "core/par.h"
#include "bench/grid.h"
#include "reports/results.h"
#include "reports/stats.h"

#define MAX_SEEDS 64

static bool seeded(const char *m) {
    for (int i = 0; grid_seeded_methods[i]; i++)
        if (!strcmp(grid_seeded_methods[i], m)) return true;
    return false;
}

/* The seeded methods among "all" or "a,b,c", comma-joined into buf ("" when none). */
static void seeded_subset(const char *methods, char *buf, size_t cap) {
    buf[0] = 0;
    char list[2048];
    snprintf(list, sizeof list, "%s", !strcmp(methods, "all") ? "" : methods);
    if (!strcmp(methods, "all")) {
        for (int i = 0; grid_seeded_methods[i]; i++)
            snprintf(buf + strlen(buf), cap - strlen(buf), "%s%s", buf[0] ? "," : "", grid_seeded_methods[i]);
        return;
    }
    char *save = NULL;
    for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save))
        if (seeded(t)) snprintf(buf + strlen(buf), cap - strlen(buf), "%s%s", buf[0] ? "," : "", t);
}

/* RESULTS_DIR/leaderboard.csv again, now that RESULTS_DIR/seeds/ holds the other seeds' runs. */
static int refresh_leaderboard(const char *out, tt_err *e) {
    char path[4200];
    snprintf(path, sizeof path, "%s/results.csv", out);
    results_table t = {0};
    const char **suites = NULL;
    long ns;
    int rc = -1;
    if (results_read(path, &t, e) || (ns = results_suites(&t, &suites, e)) < 0) goto done;
    stats_opts so = stats_defaults();
    rc = ns ? stats_dir_write(out, &t, suites[0], &so, e) : 0;
done:
    free(suites);
    results_free(&t);
    return rc;
}

int cmd_bench(int argc, char **argv) {
    const char *suite_dir = NULL, *out = NULL, *methods = "all", *mode = NULL, *seeds_s = NULL, *precision = NULL;
    int fresh = 0, no_models = 0;
    cli_list sets = {0};
    cli_common common = {0};
    cli_opt opts[] = {
        {"suite", "DIR", "built suite directory", .str = &suite_dir, .required = 1},
        {"out", "RESULTS_DIR", "results directory (created; resumed if it holds results.csv)", .str = &out, .required = 1},
        {"methods", "a,b,c|all", "methods to run (default all; zeroshot and individual are references)", .str = &methods},
        {"set", "METHOD.KEY=VALUE", "a method parameter, e.g. ta.lambda=0.3", .list = &sets},
        {"mode", "full|attn-linear", "which fine-tuned checkpoints to merge (default: the first built)", .str = &mode},
        {"fresh", NULL, "ignore finished rows of an earlier run", .flag = &fresh},
        {"no-models", NULL, "do not keep models/<method>.safetensors", .flag = &no_models},
        {"seeds", "S0,S1,...", "run at S0, then repeat the seeded methods at S1... in RESULTS_DIR/seeds/S (mean, sd)", .str = &seeds_s},
        CLI_PRECISION(&precision),
        CLI_COMMON(&common),
        {0}};
    int rc = cli_parse("bench", "Run every method on a suite: results.csv, leaderboard.csv, curves/, models/.", opts, argc, argv);
    if (rc) return rc > 0 ? 0 : 2;
    long seed = 0;
    if ((common.seed && cli_int("bench", "seed", common.seed, 0, 1L << 62, &seed)) || cli_apply_common(&common) ||
        cli_apply_precision("bench", precision))
        return 2;
    long seeds[MAX_SEEDS];
    int n_seeds = 1;
    seeds[0] = seed;
    if (seeds_s) {
        if (common.seed) return cli_error("bench", "give --seed or --seeds, not both");
        char buf[1024], *save = NULL;
        snprintf(buf, sizeof buf, "%s", seeds_s);
        n_seeds = 0;
        for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            if (n_seeds == MAX_SEEDS) return cli_error("bench", "--seeds: more than %d seeds", MAX_SEEDS);
            if (cli_int("bench", "seeds", t, 0, 1L << 62, &seeds[n_seeds])) return 2;
            for (int i = 0; i < n_seeds; i++)
                if (seeds[i] == seeds[n_seeds]) return cli_error("bench", "--seeds: %ld appears twice", seeds[i]);
            n_seeds++;
        }
        if (!n_seeds) return cli_error("bench", "--seeds: empty list");
    }
    grid_opts o = {.suite_dir = suite_dir, .out_dir = out, .methods = methods, .mode = mode, .sets = sets.v,
                   .n_sets = sets.n, .seed = (uint64_t)seeds[0], .threads = omp_get_max_threads(), .fresh = fresh != 0,
                   .keep_models = !no_models, .progress = cli_progress_enabled(&common), .quiet = common.quiet != 0};
    tt_err e = {0};
    int failed = 0, failed_s = 0;
    if (grid_run(&o, &failed, &e)) return fprintf(stderr, "ttmerge bench: %s\n", e.msg), tt_exit_status(&e);
    char subset[1024], sub_out[4200];
    seeded_subset(methods, subset, sizeof subset);
    for (int i = 1; i < n_seeds && subset[0]; i++) {
        snprintf(sub_out, sizeof sub_out, "%s/seeds/%ld", out, seeds[i]);
        grid_opts os = o;
        os.out_dir = sub_out, os.methods = subset, os.seed = (uint64_t)seeds[i], os.keep_models = false;
        if (!common.quiet && par_rank() == 0) fprintf(stderr, "ttmerge bench: seed %ld: %s in %s\n", seeds[i], subset, sub_out);
        if (grid_run(&os, &failed_s, &e)) return fprintf(stderr, "ttmerge bench: %s\n", e.msg), tt_exit_status(&e);
        failed += failed_s;
    }
    if (par_rank() > 0) return failed ? 1 : 0; /* rank 0 alone writes and reports (docs/mpi.md) */
    if (n_seeds > 1 && refresh_leaderboard(out, &e)) return fprintf(stderr, "ttmerge bench: %s\n", e.msg), tt_exit_status(&e);
    if (!common.quiet) fprintf(stderr, "ttmerge bench: results in %s/results.csv and %s/leaderboard.csv\n", out, out);
    return failed ? 1 : 0;
}
