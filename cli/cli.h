/* cli.h — the small option parser and conventions shared by every ttmerge verb.
 *
 * A verb declares a table of options; cli_parse fills the bound variables, handles --help
 * (prints usage, returns 1), and reports bad usage as ONE line on stderr (returns -1, the
 * verb exits 2). Every verb accepts --threads N, --seed S and --quiet (cli_common).
 *
 *   const char *model = NULL; int quiet = 0;
 *   cli_opt opts[] = {{"model", "M.safetensors", "checkpoint to evaluate", .str = &model, .required = 1},
 *                     CLI_COMMON(&common), {0}};
 *   int rc = cli_parse("eval", "evaluate a checkpoint", opts, argc, argv);
 */
#ifndef TT_CLI_H
#define TT_CLI_H

#include <stdbool.h>

#include "core/err.h"

#define CLI_MAX_LIST 64

typedef struct cli_list {
    int n;
    const char *v[CLI_MAX_LIST];
} cli_list;

typedef struct cli_opt {
    const char *name;  /* long name without "--" */
    const char *arg;   /* metavariable ("N", "FILE"); NULL for a flag */
    const char *help;
    const char **str;  /* string option */
    int *flag;         /* flag (set to 1) */
    cli_list *list;    /* repeatable string option (--set k=v ...) */
    int required;
} cli_opt;

typedef struct cli_common {
    const char *threads; /* NULL = all cores */
    const char *seed;    /* NULL = verb default */
    int quiet;
} cli_common;

#define CLI_COMMON(c)                                                                            \
    {"threads", "N", "OpenMP/oneDNN threads (default: all cores)", .str = &(c)->threads},        \
        {"seed", "S", "random seed", .str = &(c)->seed},                                          \
        {"quiet", NULL, "no progress output", .flag = &(c)->quiet}

/* --precision for the verbs that evaluate or adapt (eval, bench, merge): core/dnn.h DNN_BF16. */
#define CLI_PRECISION(s)                                                                            \
    {"precision", "f32|bf16", "matmul inputs in bf16 with f32 accumulation, where the CPU has native bf16 " \
                              "(default f32)", .str = (s)}
/* Apply --precision (NULL = f32): -1 on a bad value (message printed). bf16 on a CPU without native
 * bf16 prints one line saying so and computes in f32. */
int cli_apply_precision(const char *verb, const char *precision);

/* 0 = parsed, 1 = help printed (exit 0), -1 = bad usage (message printed, exit 2). */
int cli_parse(const char *verb, const char *summary, const cli_opt *opts, int argc, char **argv);
/* Apply --threads (omp_set_num_threads). -1 on a bad value (message printed). */
int cli_apply_common(const cli_common *c);
/* Start the OpenMP workers for a verb's main (core/threads.h): 0, or 3 with "ttmerge VERB: out of memory: ..." printed. After
 * cli_apply_common; bench starts the threads in each method's child instead. */
int cli_start_threads(const char *verb);
/* Parse helpers: print "ttmerge VERB: --name: ..." and return -1 on bad values. */
int cli_int(const char *verb, const char *name, const char *s, long lo, long hi, long *out);
int cli_float(const char *verb, const char *name, const char *s, double *out);
/* One-line error for main(): "ttmerge VERB: message" and return 2. */
int cli_error(const char *verb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* True when progress lines should be drawn (stderr is a terminal, not --quiet, not CI). */
bool cli_progress_enabled(const cli_common *c);

#endif
