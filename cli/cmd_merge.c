/* cmd_merge.c — `ttmerge merge`: run one merge method on a suite and write the checkpoint. */
#include <stdio.h>
#include <string.h>

#include "baselines/merge.h"
#include "bench/registry.h"
#include "cli/cli.h"
#include "cli/commands.h"
#include "core/progress.h"

static void list_methods(void) {
    printf("methods:\n");
    for (int i = 0; i < merge_count(); i++) printf("  %-16s %s\n", merge_at(i)->name, merge_at(i)->summary);
}

static void method_help(const merge_method *m) {
    static const char *const needs[] = {"labeled validation split", "unlabeled test inputs", "the fine-tuned experts",
                                        "labeled training exemplars"};
    printf("method %s: %s\nneeds: ", m->name, m->summary);
    if (!m->needs) printf("nothing beyond the checkpoints");
    for (int b = 0, first = 1; b < 4; b++)
        if (m->needs & (1u << b)) printf("%s%s", first ? "" : ", ", needs[b]), first = 0;
    printf("\nparameters (--set key=value):\n");
    for (const merge_param *p = m->params; p && p->name; p++) printf("  %-12s default %-8s %s\n", p->name, p->dflt, p->help);
}

int cmd_merge(int argc, char **argv) {
    const char *suite_dir = NULL, *method = NULL, *out = NULL, *mode = NULL, *format = NULL, *precision = NULL;
    int list = 0, help = 0;
    cli_list sets = {0};
    cli_common common = {0};
    cli_opt opts[] = {
        {"suite", "DIR", "built suite directory", .str = &suite_dir},
        {"method", "NAME", "merge method (--list shows them)", .str = &method},
        {"set", "KEY=VALUE", "method parameter", .list = &sets},
        {"out", "M.safetensors", "output checkpoint (a new directory for --format hf)", .str = &out},
        {"format", "hf|open_clip|ttmerge", "output layout (default: the pretrained checkpoint's)", .str = &format},
        {"mode", "full|attn-linear", "which fine-tuned checkpoints to merge (default: the first built)", .str = &mode},
        {"list", NULL, "list the methods", .flag = &list},
        {"method-help", NULL, "describe --method and its parameters", .flag = &help},
        CLI_PRECISION(&precision),
        CLI_COMMON(&common),
        {0}};
    /* `--method X --help` describes the method rather than the verb */
    for (int i = 0; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--method"))
            for (int j = 0; j < argc; j++)
                if (!strcmp(argv[j], "--help")) {
                    const merge_method *m = merge_find(argv[i + 1]);
                    if (!m) return cli_error("merge", "unknown method '%s' (see --list)", argv[i + 1]);
                    method_help(m);
                    return 0;
                }
    int rc = cli_parse("merge", "Merge the suite's fine-tuned models with one method.", opts, argc, argv);
    if (rc) return rc > 0 ? 0 : 2;
    if (list) {
        list_methods();
        return 0;
    }
    if (!method) return cli_error("merge", "--method is required (see --list)");
    const merge_method *m = merge_find(method);
    if (!m) return cli_error("merge", "unknown method '%s' (see --list)", method);
    if (help) {
        method_help(m);
        return 0;
    }
    if (!suite_dir || !out) return cli_error("merge", "--suite and --out are required");
    cm_format fmt = CM_TTMERGE;
    if (format && cm_format_parse(format, &fmt)) return cli_error("merge", "--format must be hf, open_clip or ttmerge");
    long seed = 0;
    if ((common.seed && cli_int("merge", "seed", common.seed, 0, 1L << 62, &seed)) || cli_apply_common(&common) ||
        cli_apply_precision("merge", precision))
        return 2;
    if ((rc = cli_start_threads("merge"))) return rc;
    tt_err e = {0};
    suite s;
    merge_ctx ctx;
    if (suite_open(&s, suite_dir, mode, &e)) return fprintf(stderr, "ttmerge merge: %s\n", e.msg), tt_exit_status(&e);
    double t0 = progress_now();
    rc = merge_ctx_open(&ctx, &s, m, sets.v, sets.n, (uint64_t)seed, &e);
    ctx.find_method = merge_find;
    if (!rc) {
        ctx.progress = cli_progress_enabled(&common);
        ctx.quiet = common.quiet;
        snprintf(ctx.curve_csv, sizeof ctx.curve_csv, "%s.curve.csv", out); /* written by adaptive methods */
        if (format) ctx.out_format = fmt;
        rc = m->run(&ctx, &e);
        if (!rc) rc = merge_ctx_save(&ctx, m, out, &e);
        if (!rc && !common.quiet)
            fprintf(stderr, "ttmerge merge: %s on %s (%d tasks) in %.1fs -> %s %s\n", m->name, s.name, ctx.K,
                    progress_now() - t0, out, ctx.record_json ? ctx.record_json : "");
        merge_ctx_close(&ctx);
    }
    suite_close(&s);
    if (rc) return fprintf(stderr, "ttmerge merge: %s\n", e.msg), tt_exit_status(&e);
    return 0;
}
