/* cmd_eval.c — `ttmerge eval`: run a checkpoint on a suite's tasks (per-task accuracy CSV on
 * stdout), or a checkpoint + head on any IDX images; logits as .npy. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "core/arena.h"
#include "core/checkpoint.h"
#include "core/infer.h"
#include "core/npy.h"
#include "core/par.h"
#include "data/idx.h"
#include "data/suite.h"

#define EVAL_STR_(x) #x
#define EVAL_STR(x) EVAL_STR_(x) /* the default batch as the CLI's string */

typedef struct eval_args {
    const char *suite, *split, *mode;
    const char *model, *input, *labels, *head, *logits_out, *mean_s, *std_s, *batch_s, *task;
    const char *features_out, *act, *precision;
    cli_common common;
} eval_args;

/* --act: the activation of a checkpoint whose file does not say (see core/clipmap.h) */
static int eval_load_opts(const eval_args *a, cm_opts *o, tt_err *e) {
    o->act = CM_ACT_AUTO;
    if (!a->act) return 0;
    if (!strcmp(a->act, "gelu")) o->act = OP_ACT_GELU;
    else if (!strcmp(a->act, "quick_gelu")) o->act = OP_ACT_QUICK_GELU;
    else return tt_fail(e, TT_EINPUT, "--act must be gelu or quick_gelu, not '%s'", a->act);
    return 0;
}

/* --mean/--std: one value for every channel, or one per channel ("0.481,0.458,0.408"). */
typedef struct eval_norm_arg {
    int n;
    float v[INFER_MAX_CHANNELS];
} eval_norm_arg;

static int parse_norm_arg(const char *opt, const char *s, bool positive, eval_norm_arg *out) {
    out->n = 0;
    for (const char *p = s;;) {
        char *end = NULL;
        double v = strtod(p, &end);
        if (end == p || (*end && *end != ',') || !isfinite(v) || (positive && !(v > 0)) || fabs(v) > 1000)
            return cli_error("eval", "--%s: '%s' is not a %snumber or a comma-separated list of them", opt, s,
                             positive ? "positive " : "");
        if (out->n == INFER_MAX_CHANNELS) return cli_error("eval", "--%s: more than %d values", opt, INFER_MAX_CHANNELS);
        out->v[out->n++] = (float)v;
        if (!*end) return 0;
        p = end + 1;
    }
}

/* The normalisation for a model of `channels` channels: 1 value = every channel. */
static int norm_for(const eval_norm_arg *mean, const eval_norm_arg *std, int channels, infer_norm *nm, tt_err *e) {
    const eval_norm_arg *both[2] = {mean, std};
    for (int k = 0; k < 2; k++)
        if (both[k]->n != 1 && both[k]->n != channels)
            return tt_fail(e, TT_EINPUT, "--%s has %d values; the model has %d channels (give 1 or %d)",
                           k ? "std" : "mean", both[k]->n, channels, channels);
    nm->channels = channels;
    for (int c = 0; c < channels; c++) {
        nm->mean[c] = mean->v[mean->n == 1 ? 0 : c];
        nm->std[c] = std->v[std->n == 1 ? 0 : c];
    }
    return 0;
}

static int eval_run(const eval_args *a, const eval_norm_arg *mean, const eval_norm_arg *std, int batch, tt_err *e) {
    ckpt_vit m = {0};
    ckpt_head h = {0};
    ds_images im = {0};
    int32_t *labels = NULL;
    int n_labels = 0, rc = -1;
    dnn *d = NULL;
    infer_ctx ic = {0};
    vit_weights w = {0};
    float *logits = NULL, *features = NULL;
    cm_opts lo;
    /* features alone need no head */
    bool want_head = a->head || a->labels || a->logits_out || !a->features_out;

    infer_norm nm;
    if (eval_load_opts(a, &lo, e) || ckpt_load_vit_opts(&m, a->model, &lo, e) || ckpt_check_finite(&m, a->model, e) ||
        norm_for(mean, std, m.cfg.channels, &nm, e))
        goto done;
    if (want_head && ckpt_load_head(&h, a->head ? a->head : a->model, m.cfg.output_dim, e)) goto done;
    ckpt_head_apply_settings(&h, &m.cfg); /* a zero-shot head: CLIP's normalised, scaled logits */
    if (idx_read_images(a->input, &im, e)) goto done;
    if (im.channels != m.cfg.channels || im.height != m.cfg.image_size || im.width != m.cfg.image_size) {
        tt_fail(e, TT_EINPUT, "%s: images are %dx%dx%d, the model expects %dx%dx%d", a->input, im.channels,
                im.height, im.width, m.cfg.channels, m.cfg.image_size, m.cfg.image_size);
        goto done;
    }
    if (a->labels) {
        if (idx_read_labels(a->labels, &labels, &n_labels, e)) goto done;
        if (n_labels != im.n) {
            tt_fail(e, TT_EINPUT, "%s: %d labels for %d images", a->labels, n_labels, im.n);
            goto done;
        }
        for (int i = 0; i < n_labels; i++)
            if (labels[i] < 0 || labels[i] >= h.classes) {
                tt_fail(e, TT_EINPUT, "%s: label %d at [%d] outside the head's %d classes", a->labels, labels[i], i, h.classes);
                goto done;
            }
    }
    if (dnn_create(&d, e) || infer_init(&ic, d, &m.cfg, batch < im.n ? batch : im.n, e) ||
        vit_weights_bind(&w, &m.lay, m.params, NULL, e))
        goto done;
    if (a->features_out) { /* the image features, before any head: ln_post(x[cls]) @ proj */
        int64_t shape[2] = {im.n, m.cfg.output_dim};
        features = tt_calloc_aligned((size_t)im.n * m.cfg.output_dim, sizeof(float), e);
        if (!features) goto done;
        infer_features(&ic, &w, im.pixels, im.n, &nm, features);
        if (npy_write_f32(a->features_out, 2, shape, features, e)) goto done;
    }
    if (!want_head) {
        rc = 0;
        goto done;
    }
    logits = tt_calloc_aligned((size_t)im.n * h.classes, sizeof(float), e);
    if (!logits || infer_logits(&ic, &w, h.W, h.b, h.classes, im.pixels, im.n, &nm, logits, e)) goto done;
    if (a->logits_out) {
        int64_t shape[2] = {im.n, h.classes};
        if (npy_write_f32(a->logits_out, 2, shape, logits, e)) goto done;
    }
    if (labels) {
        printf("task,n,accuracy\n%s,%d,%.4f\n", a->task ? a->task : "input", im.n,
               infer_accuracy(logits, labels, im.n, h.classes));
    }
    rc = 0;
done:
    vit_weights_free(&w);
    infer_free(&ic);
    dnn_free(d);
    free(logits);
    free(features);
    free(labels);
    ds_images_free(&im);
    ckpt_head_free(&h);
    ckpt_vit_free(&m);
    return rc;
}

/* Every task-specific tensor "task.<task>.<name>" of the model file f and every shared delta
 * "delta.<tensor>", checked against the suite and the architecture (see ckpt_task_apply) and read
 * (f32, or the bytes of a U8 mask) into x[*n] (owned; free_extras). */
static void free_extras(ckpt_extra_tensor *x, int n) {
    for (int i = 0; x && i < n; i++) {
        free((char *)x[i].name);
        free((void *)x[i].data);
    }
    free(x);
}

/* The partner a tensor needs in the file, "" when none: a head's other half, a mask's delta and
 * scale, a surgery map's other half. */
static int check_partners(const st_file *f, const char *task, const char *rest, tt_err *e) {
    char need[2][ST_MAX_NAME + 64] = {"", ""};
    if (!strcmp(rest, "head.weight")) snprintf(need[0], sizeof need[0], "task.%s.head.bias", task);
    else if (!strcmp(rest, "head.bias")) snprintf(need[0], sizeof need[0], "task.%s.head.weight", task);
    else if (!strcmp(rest, "surgery.down")) snprintf(need[0], sizeof need[0], "task.%s.surgery.up", task);
    else if (!strcmp(rest, "surgery.up")) snprintf(need[0], sizeof need[0], "task.%s.surgery.down", task);
    else if (!strncmp(rest, "mask.", 5)) {
        snprintf(need[0], sizeof need[0], "delta.%s", rest + 5);
        snprintf(need[1], sizeof need[1], "task.%s.scale", task);
    }
    for (int i = 0; i < 2; i++)
        if (need[i][0] && !st_find(f, need[i]))
            return tt_fail(e, TT_EINPUT, "%s: tensor task.%s.%s without %s", st_path(f), task, rest, need[i]);
    return 0;
}

static int read_task_tensors(const suite *s, const ckpt_vit *m, const st_file *f, ckpt_extra_tensor **out, int *n,
                             tt_err *e) {
    const char *path = st_path(f);
    *out = calloc((size_t)st_count(f) + 1, sizeof **out);
    *n = 0;
    if (!*out) return tt_fail(e, TT_ENOMEM, "out of memory");
    for (int i = 0; i < st_count(f); i++) {
        const st_tensor *t = st_at(f, i);
        bool shared = !strncmp(t->name, "delta.", 6);
        if (strncmp(t->name, "task.", 5) && !shared) continue;
        char task[64] = "";
        const char *rest;
        if (shared) {
            rest = t->name + 6;
        } else {
            const char *dot = strchr(t->name + 5, '.');
            int k = -1;
            if (dot && dot - (t->name + 5) < (int)sizeof task) {
                snprintf(task, sizeof task, "%.*s", (int)(dot - (t->name + 5)), t->name + 5);
                k = suite_find_task(s, task);
            }
            if (k < 0) return tt_fail(e, TT_EINPUT, "%s: tensor %s names no task of suite %s", path, t->name, s->name);
            rest = dot + 1;
        }
        int64_t shape[4] = {0};
        int ndim;
        st_dtype dt = ST_F32;
        int k = shared ? -1 : suite_find_task(s, task);
        int l = vit_layout_find(&m->lay, shared ? rest : !strncmp(rest, "mask.", 5) ? rest + 5 : rest);
        if (shared || !strncmp(rest, "mask.", 5)) {
            if (l < 0)
                return tt_fail(e, TT_EINPUT, "%s: tensor %s: '%s' is not a tensor of the architecture", path, t->name,
                               shared ? rest : rest + 5);
            if (shared) {
                ndim = m->lay.t[l].ndim;
                memcpy(shape, m->lay.t[l].shape, sizeof shape);
            } else {
                ndim = 1;
                shape[0] = (int64_t)((m->lay.t[l].numel + 7) / 8);
                dt = ST_U8;
            }
        } else if (!strcmp(rest, "head.weight") || !strcmp(rest, "head.bias")) { /* a tinted head: both tensors */
            bool weight = rest[5] == 'w';
            ndim = weight ? 2 : 1;
            shape[0] = s->tasks[k].classes;
            shape[1] = m->cfg.output_dim;
        } else if (!strcmp(rest, "scale")) {
            ndim = 1;
            shape[0] = 1;
        } else if (!strcmp(rest, "surgery.down") || !strcmp(rest, "surgery.up")) {
            bool down = rest[8] == 'd';
            int64_t r = t->ndim == 2 ? t->shape[down ? 0 : 1] : 0;
            if (r < 1 || r > 1024)
                return tt_fail(e, TT_EINPUT, "%s: tensor %s: expected a 2-D map of rank 1..1024", path, t->name);
            char other[160];
            snprintf(other, sizeof other, "task.%s.surgery.%s", task, down ? "up" : "down");
            const st_tensor *o = st_find(f, other);
            if (o && (o->ndim != 2 || o->shape[down ? 1 : 0] != r))
                return tt_fail(e, TT_EINPUT, "%s: tensors %s and %s disagree on the rank", path, t->name, other);
            ndim = 2;
            shape[0] = down ? r : m->cfg.output_dim;
            shape[1] = down ? m->cfg.output_dim : r;
        } else if (l >= 0) {
            ndim = m->lay.t[l].ndim;
            memcpy(shape, m->lay.t[l].shape, sizeof shape);
        } else {
            return tt_fail(e, TT_EINPUT, "%s: tensor %s: '%s' is neither head.weight/head.bias, scale, mask.<tensor>, "
                           "surgery.down/up nor a tensor of the architecture (open_clip names, e.g. "
                           "transformer.resblocks.0.mlp.c_proj.weight)", path, t->name, rest);
        }
        if (st_expect(f, t->name, ndim, shape, NULL, e)) return -1;
        if (t->dtype != dt && (dt == ST_U8 || t->dtype == ST_U8 || t->dtype == ST_BOOL || t->dtype >= ST_I64))
            return tt_fail(e, TT_EINPUT, "%s: tensor %s is %s, expected %s", path, t->name, st_dtype_name(t->dtype),
                           st_dtype_name(dt));
        if (!shared && check_partners(f, task, rest, e)) return -1;
        ckpt_extra_tensor *x = &(*out)[(*n)++];
        void *data = tt_calloc_aligned((size_t)t->numel, dt == ST_U8 ? 1 : sizeof(float), e);
        x->data = data;
        x->dtype = dt;
        x->name = strdup(t->name);
        x->ndim = ndim;
        memcpy(x->shape, shape, sizeof shape);
        if (!data || !x->name) return tt_fail(e, TT_ENOMEM, "out of memory");
        if (dt == ST_U8) {
            memcpy(data, t->data, t->nbytes);
            continue;
        }
        if (st_read_f32(f, t, data, e)) return -1;
        const float *v = data;
        for (int64_t j = 0; j < t->numel; j++)
            if (!isfinite(v[j]))
                return tt_fail(e, TT_ENUMERIC, "%s: tensor %s holds %s at [%lld]", path, t->name,
                               isnan(v[j]) ? "NaN" : "Inf", (long long)j);
    }
    return 0;
}

/* Per task of the suite: the model with what it stores for the task (task.<task>.head.*: a tinted
 * head, task.<task>.<tensor>: its own copy of a backbone tensor, masks of a shared delta, a surgery
 * map; ckpt_task_apply), else the
 * task's zero-shot head, on the task's test (or val) split. */
static int eval_suite(const eval_args *a, int batch, tt_err *e) {
    suite s = {0};
    ckpt_vit m = {0};
    st_file *f = NULL;
    dnn *d = NULL;
    infer_ctx ic = {0};
    vit_weights w = {0};
    float *logits = NULL;
    ckpt_extra_tensor *x = NULL; /* the model's task.<task>.* and delta.* tensors */
    ckpt_task_state st = {0};
    int nx = 0, rc = -1;
    bool test = !a->split || !strcmp(a->split, "test");
    if (a->split && strcmp(a->split, "test") && strcmp(a->split, "val")) {
        tt_fail(e, TT_EINPUT, "--split must be test or val, not '%s'", a->split);
        return -1;
    }
    cm_opts lo;
    if (eval_load_opts(a, &lo, e) || suite_open(&s, a->suite, a->mode, e) || ckpt_load_vit_opts(&m, a->model, &lo, e) ||
        ckpt_check_finite(&m, a->model, e))
        goto done;
    ckpt_adopt_head_settings(&m, &s.cfg);
    /* only ttmerge's own files hold task-specific tensors */
    struct stat sb;
    if (m.format == CM_TTMERGE && stat(a->model, &sb) == 0 && S_ISREG(sb.st_mode) && st_open(&f, a->model, e)) goto done;
    if (memcmp(&m.cfg, &s.cfg, sizeof m.cfg) != 0) {
        tt_fail(e, TT_EINPUT, "%s: architecture differs from the suite's (%s/suite.json)", a->model, a->suite);
        goto done;
    }
    if (f && (read_task_tensors(&s, &m, f, &x, &nx, e) || ckpt_task_state_init(&st, &m, x, nx, e))) goto done;
    int only = -1;
    if (a->task && (only = suite_find_task(&s, a->task)) < 0) {
        tt_fail(e, TT_EINPUT, "%s: no task '%s' in the suite", a->suite, a->task);
        goto done;
    }
    if (a->logits_out && only < 0 && s.n_tasks > 1) {
        tt_fail(e, TT_EINPUT, "--logits-out needs --task when the suite has several tasks");
        goto done;
    }
    if (dnn_create(&d, e) || infer_init(&ic, d, &m.cfg, batch, e) || vit_weights_bind(&w, &m.lay, m.params, NULL, e))
        goto done;
    bool lead = par_rank() == 0; /* the one rank that prints and writes */
    if (lead) printf("task,split,n,accuracy,zeroshot,finetuned,normalized\n");
    double sum = 0, sum_norm = 0;
    int counted = 0;
    for (int t = 0; t < s.n_tasks; t++) {
        if (only >= 0 && t != only) continue;
        suite_task_info *ti = &s.tasks[t];
        const ds_images *im = test ? &ti->test : &ti->val;
        const float *W = ti->head.W, *b = ti->head.b;
        bool swapped = ckpt_task_apply(&m, x, nx, ti->name, &w, &W, &b, &st) > 0;
        ic.feature_hook = st.down ? ckpt_surgery_hook : NULL;
        ic.feature_user = &st;
        free(logits);
        logits = malloc((size_t)im->n * ti->classes * sizeof(float));
        double acc = 0; /* sharded over the MPI ranks when there are several; rank 0 prints */
        int lrc = logits ? infer_accuracy_sharded(&ic, &w, W, b, ti->classes, im->pixels, im->labels, im->n, &s.norm,
                                                  logits, &acc, e)
                         : tt_fail(e, TT_ENOMEM, "out of memory");
        if (swapped) vit_weights_repoint(&w, &m.lay, m.params, NULL);
        if (lrc) goto done;
        double ft = test ? ti->finetuned_test : ti->finetuned_val, zs = test ? ti->zeroshot_test : ti->zeroshot_val;
        double norm = ft > 0 ? 100.0 * acc / ft : 0;
        if (lead) printf("%s,%s,%d,%.4f,%.4f,%.4f,%.4f\n", ti->name, test ? "test" : "val", im->n, acc, zs, ft, norm);
        sum += acc;
        sum_norm += norm;
        counted++;
        if (a->logits_out && lead) {
            int64_t shape[2] = {im->n, ti->classes};
            if (npy_write_f32(a->logits_out, 2, shape, logits, e)) goto done;
        }
    }
    if (counted > 1 && lead) printf("average,%s,,%.4f,,,%.4f\n", test ? "test" : "val", sum / counted, sum_norm / counted);
    rc = 0;
done:
    free_extras(x, nx);
    ckpt_task_state_free(&st);
    free(logits);
    vit_weights_free(&w);
    infer_free(&ic);
    dnn_free(d);
    ckpt_vit_free(&m);
    st_close(f);
    suite_close(&s);
    return rc;
}

int cmd_eval(int argc, char **argv) {
    eval_args a = {.mean_s = "0.5", .std_s = "0.5", .batch_s = EVAL_STR(INFER_BATCH)};
    cli_opt opts[] = {
        {"suite", "DIR", "evaluate on the suite's tasks (per-task CSV)", .str = &a.suite},
        {"model", "M", "ViT checkpoint: ttmerge, open_clip or Hugging Face CLIP (file or directory)", .str = &a.model, .required = 1},
        {"split", "test|val", "suite split (default test)", .str = &a.split},
        {"mode", "full|attn-linear", "suite fine-tuning mode for normalisation (default: the first built)", .str = &a.mode},
        {"input", "IMAGES.idx", "images (IDX u8 [n,h,w] or [n,c,h,w], raw or .gz) instead of --suite", .str = &a.input},
        {"head", "H.safetensors", "head file (default: head.* inside the model file)", .str = &a.head},
        {"labels", "LABELS.idx", "labels: print accuracy as CSV", .str = &a.labels},
        {"logits-out", "F.npy", "write logits [n, classes] as .npy", .str = &a.logits_out},
        {"task", "NAME", "task name for the CSV row", .str = &a.task},
        {"mean", "M[,M,...]", "input normalisation mean, one value or one per channel (default 0.5)", .str = &a.mean_s},
        {"std", "S[,S,...]", "input normalisation std, one value or one per channel (default 0.5)", .str = &a.std_s},
        {"batch", "N", "batch size (default " EVAL_STR(INFER_BATCH) ")", .str = &a.batch_s},
        {"features-out", "F.npy", "write the image features [n, output_dim] (before any head) as .npy", .str = &a.features_out},
        {"act", "gelu|quick_gelu", "activation of a checkpoint that does not say (open_clip files; default quick_gelu)", .str = &a.act},
        CLI_PRECISION(&a.precision),
        CLI_COMMON(&a.common),
        {0}};
    int rc = cli_parse("eval", "Evaluate a checkpoint on a suite's tasks, or on IDX images: x = (pixel/255 - mean[c])/std[c].",
                       opts, argc, argv);
    if (rc) return rc > 0 ? 0 : 2;
    if (!a.suite == !a.input) return cli_error("eval", "give exactly one of --suite DIR or --input IMAGES.idx");
    eval_norm_arg mean, std;
    long batch;
    if (parse_norm_arg("mean", a.mean_s, false, &mean) || parse_norm_arg("std", a.std_s, true, &std) ||
        cli_int("eval", "batch", a.batch_s, 1, 4096, &batch) || cli_apply_common(&a.common) ||
        cli_apply_precision("eval", a.precision))
        return 2;
    if ((rc = cli_start_threads("eval"))) return rc;
    tt_err e = {0};
    if (a.suite ? eval_suite(&a, (int)batch, &e) : eval_run(&a, &mean, &std, (int)batch, &e)) {
        fprintf(stderr, "ttmerge eval: %s\n", e.msg);
        return tt_exit_status(&e);
    }
    return 0;
}
