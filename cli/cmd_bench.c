/* cmd_bench.c — `ttmerge bench --suite DIR [--methods a,b|all] --out RESULTS_DIR`. */
#include <omp.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "bench/grid.h"

int cmd_bench(int argc, char **argv) {
    const char *suite_dir = NULL, *out = NULL, *methods = "all", *mode = NULL;
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
        CLI_COMMON(&common),
        {0}};
    int rc = cli_parse("bench", "Run every method on a suite: results.csv, leaderboard.csv, curves/, models/.", opts, argc, argv);
    if (rc) return rc > 0 ? 0 : 2;
    long seed = 0;
    if ((common.seed && cli_int("bench", "seed", common.seed, 0, 1L << 62, &seed)) || cli_apply_common(&common)) return 2;
    grid_opts o = {.suite_dir = suite_dir, .out_dir = out, .methods = methods, .mode = mode, .sets = sets.v,
                   .n_sets = sets.n, .seed = (uint64_t)seed, .threads = omp_get_max_threads(), .fresh = fresh != 0,
                   .keep_models = !no_models, .progress = cli_progress_enabled(&common), .quiet = common.quiet != 0};
    tt_err e = {0};
    int failed = 0;
    if (grid_run(&o, &failed, &e)) return fprintf(stderr, "ttmerge bench: %s\n", e.msg), tt_exit_status(&e);
    if (!common.quiet) fprintf(stderr, "ttmerge bench: results in %s/results.csv and %s/leaderboard.csv\n", out, out);
    return failed ? 1 : 0;
}
