/* merge.h — the one interface every merge method implements, and the context it runs in.
 *
 * A method is a `merge_method` value: a name, what data it needs, its parameter table and a
 * run function. The registry (bench/registry.h) lists them all; the CLI, the bench grid
 * and the reports find methods only through it and treat them alike.
 *
 * A method sees θ0 (the pretrained model) and the K fine-tuned checkpoints (memory-mapped:
 * task vectors τ_k = θ_k − θ0 are formed tensor by tensor, never K whole models in memory),
 * and — only when it declares the need — the suite's labeled validation split or its
 * unlabeled test inputs. It writes the merged backbone into ctx->out (same layout as θ0),
 * may add task-specific tensors ("task.<task>.<name>") and records what it chose
 * (merge_record) for the checkpoint's metadata.
 *
 *   const merge_method *m = merge_find("ties");
 *   merge_ctx ctx; merge_ctx_open(&ctx, &suite, &params, &e);  // loads θ0, maps θ_k
 *   m->run(&ctx, &e);                                          // fills ctx.out
 *   merge_ctx_save(&ctx, m, "merged.safetensors", &e);
 */
#ifndef TT_MERGE_H
#define TT_MERGE_H

#include <stdbool.h>

#include "core/checkpoint.h"
#include "core/infer.h"
#include "data/suite.h"

enum merge_needs {
    MERGE_NEEDS_NOTHING = 0,
    MERGE_NEEDS_VAL = 1 << 0,       /* labeled validation split (λ search, masks) */
    MERGE_NEEDS_UNLABELED = 1 << 1, /* unlabeled test inputs (test-time adaptation) */
    MERGE_NEEDS_EXPERTS = 1 << 2,   /* runs the fine-tuned experts at merge time (pseudo-labels) */
    MERGE_NEEDS_TRAIN = 1 << 3,     /* a few labeled training exemplars */
    MERGE_NEEDS_TRAIN_INPUTS = 1 << 4, /* training images, labels not read (Fisher, RegMean statistics) */
};

typedef struct merge_param {
    const char *name;   /* "lambda" */
    const char *dflt;   /* "0.3", or "auto" = searched on the validation split */
    const char *help;
} merge_param;

#define MERGE_MAX_PARAMS 24
#define MERGE_MAX_TASKS 64
#define MERGE_MAX_EXTRA 4096 /* EMR: a mask per task and tensor */

/* --set key=value pairs after defaults are applied; every value as given (string). */
typedef struct merge_params {
    int n;
    char key[MERGE_MAX_PARAMS][32];
    char value[MERGE_MAX_PARAMS][64];
} merge_params;

typedef struct merge_ctx {
    const suite *s;
    int K;                        /* tasks */
    ckpt_vit pre;                 /* θ0 (owned) */
    cm_model *ft[MERGE_MAX_TASKS]; /* θ_k, memory-mapped, any checkpoint format (owned) */
    const float *ft_view[MERGE_MAX_TASKS][512]; /* per tensor: zero-copy F32 views (NULL: convert) */
    ckpt_vit out;                 /* the merged model (owned), starts as a copy of θ0 */
    merge_params params;          /* resolved parameters (defaults + --set) */
    dnn *d;                       /* oneDNN engine for methods that evaluate or adapt */
    uint64_t seed;
    bool progress, quiet;
    /* outputs besides `out` */
    char *record_json;            /* JSON object with what the method chose (merge_record) */
    ckpt_extra_tensor extra[MERGE_MAX_EXTRA];
    void *extra_owned[MERGE_MAX_EXTRA];
    int n_extra;
    char curve_csv[1024];         /* input: where an adaptive method writes its curve ("" = nowhere) */
    cm_format out_format;         /* merge_ctx_save's layout: θ0's (set by merge_ctx_open), or as the caller says */
    /* the method registry (bench/registry.h merge_find), set by the caller that has it: a method
     * that runs another by name (surgery's base) finds it here; NULL = none */
    const struct merge_method *(*find_method)(const char *name);
} merge_ctx;

typedef struct merge_method {
    const char *name;
    const char *summary;
    unsigned needs;               /* merge_needs bits */
    const merge_param *params;    /* terminated by {0} */
    int (*run)(merge_ctx *ctx, tt_err *err);
} merge_method;

/* ---- context ---- */
/* Resolve params (defaults of m + "k=v" strings; unknown keys are errors), load θ0 and map
 * every task's fine-tuned checkpoint (checked: same architecture, finite values). */
int merge_ctx_open(merge_ctx *ctx, const suite *s, const merge_method *m, const char *const *sets, int n_sets,
                   uint64_t seed, tt_err *err);
void merge_ctx_close(merge_ctx *ctx);
/* Write ctx->out (+ extras) with metadata ttmerge.method, ttmerge.params (JSON of every
 * parameter used), ttmerge.record (what the method chose), ttmerge.suite. Atomic. In
 * ctx->out_format: ttmerge (a file), open_clip (a file) or hf (a new directory, with θ0's
 * config.json when it had one); task-specific tensors exist only in the ttmerge layout, so a
 * method that stores some cannot be written in another (an error). */
int merge_ctx_save(const merge_ctx *ctx, const merge_method *m, const char *path, tt_err *err);

/* m's parameters: its defaults, then "k=v" strings (unknown keys are errors). merge_ctx_open uses it;
 * a method that runs another (surgery's base) resolves the other's with it. */
int merge_params_resolve(merge_params *p, const merge_method *m, const char *const *sets, int n_sets, tt_err *err);
/* JSON object of every parameter used (strings) plus the seed; caller frees. */
char *merge_params_json(const merge_ctx *ctx);
/* Parameter lookup (after merge_ctx_open every declared parameter has a value). */
const char *merge_param_str(const merge_ctx *ctx, const char *name);
int merge_param_double(const merge_ctx *ctx, const char *name, double *out, tt_err *err);
int merge_param_int(const merge_ctx *ctx, const char *name, long *out, tt_err *err);
bool merge_param_is_auto(const merge_ctx *ctx, const char *name);

/* θ_k's tensor l as f32: a zero-copy view, or converted into scratch (numel floats). */
const float *merge_ft_tensor(const merge_ctx *ctx, int k, int l, float *scratch);
/* τ_k,l = θ_k,l − θ0,l into out [numel]. */
void merge_task_vector(const merge_ctx *ctx, int k, int l, float *out);

/* Replace the record JSON (copied). */
int merge_record(merge_ctx *ctx, const char *json, tt_err *err);
/* Add an owned extra tensor (the context frees data). */
int merge_add_extra(merge_ctx *ctx, const char *name, int ndim, const int64_t *shape, float *data, tt_err *err);
/* The same for a U8 tensor (packed bit masks, docs/formats.md). */
int merge_add_extra_u8(merge_ctx *ctx, const char *name, int ndim, const int64_t *shape, uint8_t *data, tt_err *err);

/* ---- evaluation helpers for methods that pick hyper-parameters on validation data ---- */
typedef struct merge_eval {
    infer_ctx ic;
    float *logits;     /* scratch: max split size x max classes */
    vit_weights w;     /* bound to ctx->out.params */
    ckpt_task_state st; /* a task's masked tensors and surgery map (ckpt_task_apply) */
} merge_eval;
int merge_eval_init(merge_eval *ev, merge_ctx *ctx, tt_err *err);
void merge_eval_free(merge_eval *ev);
/* Accuracy (%) of ctx->out on every task's val (or test) split; acc[K] (may be NULL); returns
 * the mean over tasks of acc / fine-tuned acc (normalised, %) in *norm (may be NULL) and the
 * mean accuracy. */
double merge_eval_tasks(merge_eval *ev, merge_ctx *ctx, bool test, double *acc, double *norm);
/* Accuracy (%) of task t on its val (or test) split. Both evaluate each task with what the method
 * stored for it among ctx->extra (task.<task>.head.*: its tinted head; task.<task>.<tensor>: its
 * own copy of that backbone tensor; masks of a shared delta; a surgery map: see ckpt_task_apply),
 * else ctx->out and the zero-shot head. merge_eval_init must come after the method stored them.
 * Under MPI every rank calls them: the split is sharded (infer_accuracy_sharded) and ev->logits
 * holds the whole split's logits on rank 0 only. */
double merge_eval_task(merge_eval *ev, merge_ctx *ctx, int t, bool test);

#endif
