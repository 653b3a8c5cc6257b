/* cmd_merge.c — `ttmerge merge`: run one merge method on a suite and write the checkpoint; or, with
 * --base/--models (or --config FILE.yaml), merge any safetensors checkpoints (baselines/anymerge.h). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "baselines/anymerge.h"
#include "baselines/merge.h"
#include "baselines/merge_config.h"
#include "baselines/select.h"
#include "bench/registry.h"
#include "cli/cli.h"
#include "cli/commands.h"
#include "core/par.h"
#include "core/progress.h"

static void list_methods(void) {
    printf("methods:\n");
    for (int i = 0; i < merge_count(); i++) printf("  %-16s %s\n", merge_at(i)->name, merge_at(i)->summary);
}

static void method_help(const merge_method *m) {
    static const char *const needs[] = {"labeled validation split", "unlabeled test inputs", "the fine-tuned experts",
                                        "labeled training exemplars", "training images (their labels are not read)"};
    printf("method %s: %s\nneeds: ", m->name, m->summary);
    if (!m->needs) printf("nothing beyond the checkpoints");
    for (int b = 0, first = 1; b < 5; b++)
        if (m->needs & (1u << b)) printf("%s%s", first ? "" : ", ", needs[b]), first = 0;
    printf("\nparameters (--set key=value):\n");
    for (const merge_param *p = m->params; p && p->name; p++) printf("  %-12s default %-8s %s\n", p->name, p->dflt, p->help);
}

static int split_models(am_config *c, const char *list) {
    const char *p = list;
    while (*p) {
        const char *q = strchr(p, ',');
        size_t l = q ? (size_t)(q - p) : strlen(p);
        if (c->K == AM_MAX_MODELS) return cli_error("merge", "--models: at most %d models", AM_MAX_MODELS);
        if (!l || l >= sizeof c->model[0].path) return cli_error("merge", "--models: an empty or too long path in '%s'", list);
        snprintf(c->model[c->K++].path, sizeof c->model[0].path, "%.*s", (int)l, p);
        p += l + (q ? 1 : 0);
    }
    return c->K ? 0 : cli_error("merge", "--models: no path given");
}

/* ttmerge merge --base B --models M1,M2 --method ta --out DIR, or --config FILE.yaml */
static int merge_any(int argc, char **argv) {
    const char *base = NULL, *models = NULL, *method = NULL, *out = NULL, *dtype = NULL, *shard = NULL, *config = NULL, *slice = NULL;
    const char *max_memory = NULL;
    cli_list sets = {0};
    cli_common common = {0};
    cli_opt opts[] = {
        {"base", "PATH", "base model: a .safetensors file or a (sharded) Hugging Face directory", .str = &base},
        {"models", "P1,P2,...", "the fine-tuned models (same tensor names and shapes as the base)", .str = &models},
        {"method", "NAME", "ta, ties, dare, consensus-ta, consensus-ties, average, tsv-m, iso-c, iso-cts, cart, pcb, awd, lata "
         "or tatr",
         .str = &method},
        {"set", "KEY=VALUE", "the method's parameters (docs/any-model.md), e.g. lambda=0.3", .list = &sets},
        {"config", "FILE.yaml", "a MergeKit-style configuration (docs/any-model.md)", .str = &config},
        {"out", "DIR", "output directory (new; written atomically)", .str = &out},
        {"dtype", "f32|f16|bf16", "dtype of merged tensors (default: the base's)", .str = &dtype},
        {"shard-size", "SIZE", "at most this much tensor data per shard, e.g. 5GB (default: one file)", .str = &shard},
        {"slice", "N", "elements per slice of a tensor (default 1048576; memory ~ (models + 2) x 4N bytes)",
         .str = &slice},
        {"max-memory", "SIZE", "SVD merges: as many matrices at once as fit in SIZE, e.g. 16GB (default: 3/4 of "
         "the available memory)", .str = &max_memory},
        CLI_COMMON(&common),
        {0}};
    int rc = cli_parse("merge",
                       "ttmerge merge --base B --models M1,M2,... --method NAME --out DIR: merge any safetensors "
                       "checkpoints\nin bounded memory (or --config FILE.yaml). See docs/any-model.md.",
                       opts, argc, argv);
    if (rc) return rc > 0 ? 0 : 2;
    static am_config c; /* large: the models' paths and rules */
    am_config_init(&c);
    tt_err e = {0};
    if (config) {
        if (base || models || method)
            return cli_error("merge", "--config gives base, models and method: not also --base/--models/--method");
        if (mc_load(&c, config, &e)) return fprintf(stderr, "ttmerge merge: %s\n", e.msg), 2;
    } else {
        if (!base || !models || !method) return cli_error("merge", "--base, --models and --method are required (or --config)");
        snprintf(c.base, sizeof c.base, "%s", base);
        if (split_models(&c, models)) return 2;
        if (am_method_parse(method, &c.method))
            return cli_error("merge", "unknown method '%s' for --base/--models (ta, ties, dare, consensus-ta, "
                                      "consensus-ties, average, tsv-m, iso-c, iso-cts, cart, pcb, awd, lata, tatr)", method);
    }
    if (!out) return cli_error("merge", "--out is required");
    for (int i = 0; i < sets.n; i++)
        if (am_config_set(&c, sets.v[i], &e)) return cli_error("merge", "%s", e.msg);
    if (dtype) {
        if (!strcmp(dtype, "f32")) c.out_dtype = ST_F32;
        else if (!strcmp(dtype, "f16")) c.out_dtype = ST_F16;
        else if (!strcmp(dtype, "bf16")) c.out_dtype = ST_BF16;
        else return cli_error("merge", "--dtype must be f32, f16 or bf16, not '%s'", dtype);
    }
    if (shard && mc_parse_size(shard, &c.shard_size)) return cli_error("merge", "--shard-size: '%s' is not a size like 5GB", shard);
    if (max_memory && (mc_parse_size(max_memory, &c.max_memory) || c.max_memory == 0))
        return cli_error("merge", "--max-memory: '%s' is not a size like 16GB", max_memory);
    long n_slice = 0;
    if (slice && cli_int("merge", "slice", slice, 1, 1L << 30, &n_slice)) return 2;
    c.slice = (size_t)n_slice;
    long seed = 0;
    if (common.seed) {
        if (cli_int("merge", "seed", common.seed, 0, 1L << 62, &seed)) return 2;
        c.seed = (uint64_t)seed;
    }
    if (cli_apply_common(&common) || (rc = cli_start_threads("merge"))) return rc ? rc : 2;
    c.progress = cli_progress_enabled(&common);
    const char *cap = getenv("TTMERGE_UNDECIDED_CAP"); /* tests: the TIES fix-up's overflow path */
    if (cap) c.undecided_cap = (size_t)strtoull(cap, NULL, 10);
    const char *work = getenv("TTMERGE_SELECT_WORK"); /* tests: the TIES thresholds' radix passes */
    if (work) c.select_work = (size_t)strtoull(work, NULL, 10);
    const char *hist = getenv("TTMERGE_SAMPLE_HIST"); /* tests: the sample as a histogram from this size */
    if (hist) select_set_sample_hist_min((size_t)strtoull(hist, NULL, 10));
    signal(SIGXFSZ, SIG_IGN); /* a file-size limit is a write error (EFBIG) naming the file, not a kill */
    am_stats st;
    double t0 = progress_now();
    if (am_run(&c, out, &st, &e)) return fprintf(stderr, "ttmerge merge: %s\n", e.msg), tt_exit_status(&e);
    char svd[48] = "";
    if (st.svd_tensors) snprintf(svd, sizeof svd, "%llu through SVDs, ", (unsigned long long)st.svd_tensors);
    if (!common.quiet)
        fprintf(stderr,
                "ttmerge merge: %s of %d models, %llu tensors merged (%s%llu elements), %llu copied, in %.2fs "
                "(%.2fs of it syncing the output to disk) -> %s\n",
                am_method_name(c.method), c.K, (unsigned long long)st.merged, svd, (unsigned long long)st.elements,
                (unsigned long long)st.copied, progress_now() - t0, st.sync_seconds, out);
    return 0;
}

int cmd_merge(int argc, char **argv) {
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--base") || !strcmp(argv[i], "--models") || !strcmp(argv[i], "--config"))
            return merge_any(argc, argv);
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
    int rc = cli_parse("merge",
                       "Merge the suite's fine-tuned models with one method.\nAny safetensors models instead: "
                       "--base B --models M1,M2,... or --config FILE.yaml\n(ttmerge merge --base x --help; "
                       "docs/any-model.md).",
                       opts, argc, argv);
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
        /* under mpirun every rank runs the method (the learners and the evaluations share the work,
         * docs/mpi.md) and holds the same result; rank 0 writes it */
        bool lead = par_rank() == 0;
        if (lead) snprintf(ctx.curve_csv, sizeof ctx.curve_csv, "%s.curve.csv", out); /* written by adaptive methods */
        if (format) ctx.out_format = fmt;
        par_stats_reset();
        rc = m->run(&ctx, &e);
        par_stats comm;
        par_stats_get(&comm);
        if (!rc && lead) rc = merge_ctx_save(&ctx, m, out, &e);
        if (!rc && par_size() > 1 && !common.quiet)
            fprintf(stderr, "ttmerge merge: rank %d of %d: %llu MPI calls, %.3f MB sent, %.3fs in MPI\n", par_rank(),
                    par_size(), (unsigned long long)comm.calls, (double)comm.bytes / 1e6, comm.seconds);
        if (!rc && lead && !common.quiet)
            fprintf(stderr, "ttmerge merge: %s on %s (%d tasks) in %.1fs -> %s %s\n", m->name, s.name, ctx.K,
                    progress_now() - t0, out, ctx.record_json ? ctx.record_json : "");
        merge_ctx_close(&ctx);
    }
    suite_close(&s);
    if (rc) return fprintf(stderr, "ttmerge merge: %s\n", e.msg), tt_exit_status(&e);
    return 0;
}
