/* main.c — the ttmerge command line: dispatch to one function per verb (cli/cmd_*.c). */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "core/checkpoint.h"
#include "core/par.h"
#include "core/version.h"

typedef struct verb {
    const char *name;
    int (*run)(int argc, char **argv); /* NULL: not available in this build yet */
    const char *summary;
} verb;

static const verb verbs[] = {
    {"suite", cmd_suite, "build NAME|FILE.yaml --out DIR: data, pretrained model, probe heads, fine-tuned models"},
    {"init", cmd_init, "--arch JSON|FILE --out M.safetensors: a randomly initialised ViT (and head)"},
    {"eval", cmd_eval, "--model M --input IMAGES.idx --head H [--labels L.idx] [--logits-out F.npy]"},
    {"merge", cmd_merge, "--suite DIR --method NAME [--set k=v ...] --out M.safetensors"},
    {"bench", cmd_bench, "--suite DIR [--methods a,b|all] --out RESULTS_DIR"},
    {"report", cmd_report, "RESULTS_DIR: report.md + report.html"},
    {"convert", cmd_convert, "IN --to hf|open_clip|ttmerge --out OUT: CLIP checkpoint layouts (docs/checkpoints.md)"},
    {"data", cmd_data, "prepare --input FOLDER|MANIFEST --preprocess clip[:SIZE] --out X.npy: images -> tensors"},
    {"check", cmd_check, "--golden G.csv --results R.csv [--tol POINTS]: exit 1 on accuracy drift"},
    {"heads", cmd_heads, "--clip MODEL --classes C.txt --templates T.txt --out H.safetensors: CLIP zero-shot head"},
    {"tokenize", cmd_tokenize, "--vocab PATH --text S|--input FILE: CLIP token ids, one line per string"},
};
enum { N_VERBS = sizeof verbs / sizeof verbs[0] };

static void usage(FILE *out) {
    fprintf(out, "ttmerge %s (%s) — model merging and test-time adaptation on oneDNN\n\n"
                 "usage: ttmerge VERB [options]     (ttmerge VERB --help for a verb's options)\n\nverbs:\n",
            ttmerge_version(), ttmerge_git_rev());
    for (int i = 0; i < N_VERBS; i++)
        fprintf(out, "  %-7s %s%s\n", verbs[i].name, verbs[i].summary, verbs[i].run ? "" : "  [not yet available]");
    fprintf(out, "\nCommon options: --threads N, --seed S, --quiet. Exit status: 0 ok, 1 failed check,\n"
                 "2 bad usage or input, 3 internal or resource error.\n");
}

static int run_verb(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("ttmerge %s (%s)\n", ttmerge_version(), ttmerge_git_rev());
        return 0;
    }
    for (int i = 0; i < N_VERBS; i++) {
        if (strcmp(argv[1], verbs[i].name) != 0) continue;
        if (par_size() > 1 && strcmp(argv[1], "bench") && strcmp(argv[1], "merge") && strcmp(argv[1], "eval")) {
            /* every rank would do the whole work and write the same files */
            if (par_rank() == 0) fprintf(stderr, "ttmerge %s: runs as one process; start it without mpirun\n", argv[1]);
            return 2;
        }
        if (!verbs[i].run) {
            fprintf(stderr, "ttmerge: '%s' is not available in this build yet\n", argv[1]);
            return 2;
        }
        return verbs[i].run(argc - 2, argv + 2);
    }
    fprintf(stderr, "ttmerge: unknown verb '%s' (see ttmerge --help)\n", argv[1]);
    return 2;
}

/* Under mpirun (an MPI build) every rank runs the same verb; the verbs that know ranks share the
 * work (docs/mpi.md), rank 0 writes the outputs. */
int main(int argc, char **argv) {
    int rc = par_init(&argc, &argv);
    if (rc) return rc;
    rc = run_verb(argc, argv);
    par_finalize(rc);
    return rc;
}
