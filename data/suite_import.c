/* suite_import.c — see suite_import.h. */
#include "data/suite_import.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/arena.h"
#include "core/checkpoint.h"
#include "core/clipmap.h"
#include "core/fileio.h"
#include "core/infer.h"
#include "core/progress.h"
#include "core/rng.h"
#include "core/version.h"
#include "data/clip_preprocess.h"
#include "data/idx.h"
#include "data/image_list.h"
#include "data/image_set.h"
#include "data/zero_shot.h"

enum { SPLIT_TRAIN, SPLIT_VAL, SPLIT_TEST, N_SPLITS };
static const char *const split_names[N_SPLITS] = {"train", "val", "test"};

typedef struct imp_task {
    const suite_task *task;
    const suite_import_task *files;
    imls_list list[N_SPLITS];   /* list[SPLIT_VAL] is empty when val is carved from train */
    const imls_list *from[N_SPLITS];
    int *sel[N_SPLITS], n_sel[N_SPLITS];
    ckpt_head head;
    double zs[N_SPLITS], ft[N_SPLITS];
    char finetuned[PATH_MAX];
    char data[N_SPLITS][PATH_MAX]; /* absolute paths of the lists ("" = carved) */
} imp_task;

typedef struct imp_ctx {
    const suite_spec *spec;
    const suite_build_opts *o;
    vit_config cfg;
    infer_norm norm;
    char norm_source[PATH_MAX + 32];
    char pretrained[PATH_MAX];
    imp_task tasks[SUITE_MAX_TASKS];
    double t_validate, t_data, t_eval, t_total;
} imp_ctx;

static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static int absolute(const char *path, char *out, tt_err *err) {
    if (!realpath(path, out)) return tt_fail(err, TT_EIO, "%s: %s", path, strerror(errno));
    return 0;
}

/* ---- normalisation ---- */

static int read_three(json_t *a, const char *path, const char *key, float out[3], bool positive, tt_err *err) {
    if (!json_is_array(a) || json_array_size(a) != 3)
        return tt_fail(err, TT_EINPUT, "%s: %s must be a list of 3 numbers", path, key);
    for (int c = 0; c < 3; c++) {
        json_t *x = json_array_get(a, (size_t)c);
        double v = json_is_number(x) ? json_number_value(x) : NAN;
        if (!isfinite(v) || fabs(v) > 1000 || (positive && !(v > 0)))
            return tt_fail(err, TT_EINPUT, "%s: %s[%d] is not a %snumber", path, key, c, positive ? "positive " : "");
        out[c] = (float)v;
    }
    return 0;
}

/* mean/std from FILE in dir: HF preprocessor_config.json (image_mean, image_std) or
 * open_clip_config.json (preprocess_cfg.mean, .std). 1 = no such file or keys, 0 = read. */
static int norm_from_config(const char *dir, const char *file, float mean[3], float std[3], char *source,
                            size_t cap, tt_err *err) {
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    if (access(path, F_OK) != 0) return 1;
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root) return tt_fail(err, TT_EINPUT, "%s: line %d: %s", path, je.line, je.text);
    json_t *obj = strcmp(file, "open_clip_config.json") ? root : json_object_get(root, "preprocess_cfg");
    const char *km = obj == root ? "image_mean" : "mean", *ks = obj == root ? "image_std" : "std";
    json_t *m = json_object_get(obj, km), *s = json_object_get(obj, ks);
    int rc = 1;
    if (m || s) {
        rc = read_three(m, path, km, mean, false, err) || read_three(s, path, ks, std, true, err) ? -1 : 0;
        if (!rc) snprintf(source, cap, "%s", path);
    }
    json_decref(root);
    return rc;
}

int suite_import_norm(const suite_import *im, const char *pretrained, float mean[3], float std[3], char *source,
                      size_t source_cap, tt_err *err) {
    if (!strcmp(im->normalize, "given")) {
        memcpy(mean, im->mean, 3 * sizeof(float));
        memcpy(std, im->std, 3 * sizeof(float));
        snprintf(source, source_cap, "given");
        return 0;
    }
    if (!strcmp(im->normalize, "model")) {
        char dir[PATH_MAX];
        struct stat st;
        snprintf(dir, sizeof dir, "%s", pretrained);
        if (stat(pretrained, &st) == 0 && !S_ISDIR(st.st_mode)) {
            char *slash = strrchr(dir, '/');
            if (slash) *slash = 0;
            else snprintf(dir, sizeof dir, ".");
        }
        static const char *const files[] = {"preprocessor_config.json", "open_clip_config.json"};
        for (int i = 0; i < 2; i++) {
            int rc = norm_from_config(dir, files[i], mean, std, source, source_cap, err);
            if (rc <= 0) return rc;
        }
    }
    memcpy(mean, clipp_mean, 3 * sizeof(float));
    memcpy(std, clipp_std, 3 * sizeof(float));
    snprintf(source, source_cap, "clip");
    return 0;
}

/* ---- step 1: validation ---- */

static void describe(const vit_config *c, char *b, size_t n) {
    snprintf(b, n, "image %d, patch %d, width %d, layers %d, heads %d, output %d, %s", c->image_size, c->patch_size,
             c->width, c->layers, c->heads, c->output_dim, c->act == OP_ACT_QUICK_GELU ? "quick_gelu" : "gelu");
}

/* The checkpoint's architecture; heads' settings are the import's unless the file says (ttmerge). */
static int open_arch(const imp_ctx *c, const char *path, vit_config *cfg, tt_err *err) {
    cm_model m;
    if (cm_open(&m, path, NULL, err)) return -1;
    *cfg = m.cfg;
    if (m.format != CM_TTMERGE) {
        cfg->normalize_features = c->spec->import.normalize_features;
        cfg->logit_scale = c->spec->import.logit_scale;
    }
    cm_close(&m);
    return 0;
}

/* A head from class names and templates: CLIP's zero-shot head (data/zero_shot.h) of the pretrained
 * checkpoint, which must then hold the text tower (a full CLIPModel or open_clip state dict) and its
 * tokenizer files beside it. The logit scale exp(logit_scale) is folded into the rows, as
 * task_vectors' heads hold 100 x the class embeddings, so the import's logit_scale stays 1. */
static int text_head(const imp_ctx *c, imp_task *t, tt_err *err) {
    zs_head z;
    zs_opts o = {.act = CM_ACT_AUTO, .progress = c->o->progress && !c->o->quiet};
    if (zs_head_build_opts(c->pretrained, t->files->text_classes, t->files->text_templates, &o, &z, err)) return -1;
    if (z.dim != c->cfg.output_dim) {
        int d = z.dim;
        zs_head_free(&z);
        return tt_fail(err, TT_EINPUT, "%s: text features have %d dimensions, the image features %d (task %s)",
                       c->pretrained, d, c->cfg.output_dim, t->task->name);
    }
    ckpt_head *h = &t->head;
    *h = (ckpt_head){.classes = z.n_classes, .dim = z.dim};
    h->W = tt_calloc_aligned((size_t)z.n_classes * z.dim + (size_t)z.n_classes, sizeof(float), err);
    if (!h->W) {
        zs_head_free(&z);
        return -1;
    }
    h->b = h->W + (size_t)z.n_classes * z.dim; /* one block, as ckpt_read_head: ckpt_head_free frees W */
    for (size_t i = 0; i < (size_t)z.n_classes * z.dim; i++) h->W[i] = z.logit_scale * z.weight[i];
    suite_note(c->spec, c->o->quiet,
               "task %s: zero-shot head from %d classes x %d templates in %.1fs", t->task->name, z.n_classes,
               z.n_prompts / (z.n_classes > 0 ? z.n_classes : 1), z.encode_seconds);
    zs_head_free(&z);
    return 0;
}

static int check_labels(const imls_list *l, const char *path, int classes, tt_err *err) {
    if (l->classes && l->n_classes != classes)
        return tt_fail(err, TT_EINPUT, "%s: %d classes, but the task's head has %d", path, l->n_classes, classes);
    if (!l->classes && l->n_classes > classes)
        return tt_fail(err, TT_EINPUT, "%s: label %d, but the task's head has %d classes", path, l->n_classes - 1, classes);
    return 0;
}

static int *range_idx(int n, tt_err *err) {
    int *a = malloc((size_t)(n > 0 ? n : 1) * sizeof(int));
    if (!a) {
        tt_fail(err, TT_ENOMEM, "out of memory");
        return NULL;
    }
    for (int i = 0; i < n; i++) a[i] = i;
    return a;
}

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* The first `keep` of a seeded permutation of 0..n-1, ascending (all of them, in order, when
 * keep is 0 or >= n). */
static int *pick(int n, int keep, uint64_t seed, int *n_out, tt_err *err) {
    int *a = range_idx(n, err);
    if (!a) return NULL;
    if (keep > 0 && keep < n) {
        rng r;
        rng_init(&r, seed);
        rng_shuffle_int(&r, a, n);
        qsort(a, (size_t)keep, sizeof *a, cmp_int);
        n = keep;
    }
    *n_out = n;
    return a;
}

/* val carved from train: a seeded permutation; val = its first n_val, the kept train images
 * the next `keep` (0 = all the rest), each ascending. */
static int carve(imp_task *t, int n_val, int keep, uint64_t seed, tt_err *err) {
    int n = t->list[SPLIT_TRAIN].n;
    int *perm = range_idx(n, err);
    if (!perm) return -1;
    rng r;
    rng_init(&r, seed);
    rng_shuffle_int(&r, perm, n);
    int rest = n - n_val, n_tr = keep > 0 && keep < rest ? keep : rest;
    t->sel[SPLIT_VAL] = malloc((size_t)n_val * sizeof(int));
    t->sel[SPLIT_TRAIN] = malloc((size_t)(n_tr > 0 ? n_tr : 1) * sizeof(int));
    if (!t->sel[SPLIT_VAL] || !t->sel[SPLIT_TRAIN]) {
        free(perm);
        return tt_fail(err, TT_ENOMEM, "out of memory");
    }
    memcpy(t->sel[SPLIT_VAL], perm, (size_t)n_val * sizeof(int));
    memcpy(t->sel[SPLIT_TRAIN], perm + n_val, (size_t)n_tr * sizeof(int));
    qsort(t->sel[SPLIT_VAL], (size_t)n_val, sizeof(int), cmp_int);
    qsort(t->sel[SPLIT_TRAIN], (size_t)n_tr, sizeof(int), cmp_int);
    t->n_sel[SPLIT_VAL] = n_val;
    t->n_sel[SPLIT_TRAIN] = n_tr;
    free(perm);
    return 0;
}

static int validate_task(imp_ctx *c, imp_task *t, tt_err *err) {
    const suite_import *im = &c->spec->import;
    const char *nm = t->task->name;
    vit_config cfg;
    if (open_arch(c, t->files->finetuned, &cfg, err)) return -1;
    if (memcmp(&cfg, &c->cfg, sizeof cfg) != 0) {
        char a[160], b[160];
        describe(&cfg, a, sizeof a);
        describe(&c->cfg, b, sizeof b);
        return tt_fail(err, TT_EINPUT, "%s: architecture (%s) differs from the pretrained model's (%s) (task %s)",
                       t->files->finetuned, a, b, nm);
    }
    if (absolute(t->files->finetuned, t->finetuned, err)) return -1;
    const char *head_src = t->files->head[0] ? t->files->head : t->files->text_classes;
    if (t->files->head[0] ? ckpt_load_head(&t->head, t->files->head, c->cfg.output_dim, err) : text_head(c, t, err))
        return -1;
    if (t->head.classes < 2)
        return tt_fail(err, TT_EINPUT, "%s: %d class; a task needs at least 2", head_src, t->head.classes);
    if (t->task->classes && t->task->classes != t->head.classes)
        return tt_fail(err, TT_EINPUT, "%s: %d classes, but task %s says classes: %d", head_src, t->head.classes, nm,
                       t->task->classes);
    const char *paths[N_SPLITS] = {t->files->train, t->files->val, t->files->test};
    for (int s = 0; s < N_SPLITS; s++) {
        if (!paths[s][0]) continue;
        if (imls_open(paths[s], NULL, &t->list[s], err)) return -1;
        if (check_labels(&t->list[s], paths[s], t->head.classes, err) || absolute(paths[s], t->data[s], err)) return -1;
        t->from[s] = &t->list[s];
    }
    uint64_t seed = c->spec->seed ^ fnv1a(nm);
    t->sel[SPLIT_TEST] = pick(t->list[SPLIT_TEST].n, t->task->test, seed ^ 0x7465737400ull, &t->n_sel[SPLIT_TEST], err);
    if (!t->sel[SPLIT_TEST]) return -1;
    int n_train = t->list[SPLIT_TRAIN].n;
    if (t->from[SPLIT_VAL]) {
        t->sel[SPLIT_VAL] = pick(t->list[SPLIT_VAL].n, t->task->val, seed ^ 0x76616c00ull, &t->n_sel[SPLIT_VAL], err);
        t->sel[SPLIT_TRAIN] = pick(n_train, t->task->train, seed ^ 0x747261696eull, &t->n_sel[SPLIT_TRAIN], err);
        if (!t->sel[SPLIT_VAL] || !t->sel[SPLIT_TRAIN]) return -1;
    } else {
        int n_val = t->task->val > 0 ? t->task->val : (int)fmin(floor(im->val_fraction * n_train), im->val_max);
        if (n_val < 1 || n_val >= n_train)
            return tt_fail(err, TT_EINPUT, "%s: %d training images cannot give %d validation images and keep some to train",
                           t->files->train, n_train, n_val < 1 ? 1 : n_val);
        t->from[SPLIT_VAL] = &t->list[SPLIT_TRAIN];
        if (carve(t, n_val, t->task->train, seed ^ 0x6361727665ull, err)) return -1;
    }
    for (int s = 0; s < N_SPLITS; s++) /* every file that will be decoded can be read */
        for (int i = 0; i < t->n_sel[s]; i++) {
            const char *p = t->from[s]->paths[t->sel[s][i]];
            if (access(p, R_OK) != 0) return tt_fail(err, TT_EIO, "%s: %s (task %s)", p, strerror(errno), nm);
        }
    return 0;
}

static int validate(imp_ctx *c, tt_err *err) {
    const suite_import *im = &c->spec->import;
    if (open_arch(c, im->pretrained, &c->cfg, err) || absolute(im->pretrained, c->pretrained, err)) return -1;
    int size = im->preprocess_size ? im->preprocess_size : c->cfg.image_size;
    if (size != c->cfg.image_size)
        return tt_fail(err, TT_EINPUT, "%s: preprocess clip:%d, but the model takes %dx%d images", im->pretrained, size,
                       c->cfg.image_size, c->cfg.image_size);
    if (c->cfg.channels != 3 && c->cfg.channels != 1)
        return tt_fail(err, TT_EINPUT, "%s: %d input channels; images give 3 (RGB) or 1 (grey)", im->pretrained,
                       c->cfg.channels);
    float mean[3], std[3];
    if (suite_import_norm(im, im->pretrained, mean, std, c->norm_source, sizeof c->norm_source, err)) return -1;
    c->norm.channels = c->cfg.channels;
    for (int ch = 0; ch < c->cfg.channels; ch++) c->norm.mean[ch] = mean[ch], c->norm.std[ch] = std[ch];
    for (int i = 0; i < c->spec->n_tasks; i++) {
        imp_task *t = &c->tasks[i];
        t->task = &c->spec->tasks[i];
        t->files = &im->tasks[i];
        if (validate_task(c, t, err)) return -1;
    }
    return 0;
}

/* ---- steps 2 and 3: data, heads, accuracies ---- */

static int eval_split(infer_ctx *ic, const vit_weights *w, const imp_task *t, const infer_norm *nm, const ds_images *im,
                      double *acc, tt_err *err) {
    float *logits = tt_calloc_aligned((size_t)im->n * t->head.classes, sizeof(float), err);
    if (!logits || infer_logits(ic, w, t->head.W, t->head.b, t->head.classes, im->pixels, im->n, nm, logits, err)) {
        free(logits);
        return -1;
    }
    *acc = infer_accuracy(logits, im->labels, im->n, t->head.classes);
    free(logits);
    return 0;
}

/* accuracies of model m on the val and test splits */
static int eval_model(imp_ctx *c, infer_ctx *ic, const ckpt_vit *m, const imp_task *t, ds_images split[N_SPLITS],
                      double acc[N_SPLITS], tt_err *err) {
    vit_weights w;
    if (vit_weights_bind(&w, &m->lay, m->params, NULL, err)) return -1;
    int rc = eval_split(ic, &w, t, &c->norm, &split[SPLIT_VAL], &acc[SPLIT_VAL], err) ||
                     eval_split(ic, &w, t, &c->norm, &split[SPLIT_TEST], &acc[SPLIT_TEST], err)
                 ? -1
                 : 0;
    vit_weights_free(&w);
    return rc;
}

static int make_task(imp_ctx *c, infer_ctx *ic, const ckpt_vit *pre, imp_task *t, tt_err *err) {
    const char *nm = t->task->name;
    char dir[PATH_MAX], path[PATH_MAX + 64], label[128];
    snprintf(dir, sizeof dir, "%s/data/%s", c->o->out_dir, nm);
    if (suite_mkdirs(dir, err)) return -1;
    ds_images split[N_SPLITS] = {{0}};
    ckpt_vit ft = {0};
    int rc = -1;
    double t0 = progress_now();
    for (int s = 0; s < N_SPLITS; s++) {
        snprintf(label, sizeof label, "decode %s %s", nm, split_names[s]);
        if (imset_load_list(t->from[s], t->sel[s], t->n_sel[s], c->cfg.image_size, c->cfg.channels, label,
                            c->o->progress, &split[s], err))
            goto done;
        snprintf(path, sizeof path, "%s/%s-images.idx", dir, split_names[s]);
        if (idx_write_images(path, &split[s], err)) goto done;
        snprintf(path, sizeof path, "%s/%s-labels.idx", dir, split_names[s]);
        if (idx_write_labels(path, split[s].labels, split[s].n, err)) goto done;
    }
    double td = progress_now() - t0;
    c->t_data += td;
    snprintf(path, sizeof path, "%s/heads/%s.safetensors", c->o->out_dir, nm);
    if (ckpt_save_head(&t->head, path, err)) goto done;
    t0 = progress_now();
    if (eval_model(c, ic, pre, t, split, t->zs, err) || ckpt_load_vit(&ft, t->finetuned, err) ||
        ckpt_check_finite(&ft, t->finetuned, err) || eval_model(c, ic, &ft, t, split, t->ft, err))
        goto done;
    c->t_eval += progress_now() - t0;
    int n_img = split[0].n + split[1].n + split[2].n;
    suite_note(c->spec, c->o->quiet,
               "%-16s %d/%d/%d images (train/val/test) in %.1fs (%.1f ms each); zero-shot test %5.1f, fine-tuned test %5.1f",
               nm, split[SPLIT_TRAIN].n, split[SPLIT_VAL].n, split[SPLIT_TEST].n, td, n_img ? 1e3 * td / n_img : 0.0,
               t->zs[SPLIT_TEST], t->ft[SPLIT_TEST]);
    rc = 0;
done:
    ckpt_vit_free(&ft);
    for (int s = 0; s < N_SPLITS; s++) ds_images_free(&split[s]);
    return rc;
}

/* ---- step 4: manifest ---- */

static json_t *acc_json(const double acc[N_SPLITS]) {
    return json_pack("{s:f,s:f}", "val", acc[SPLIT_VAL], "test", acc[SPLIT_TEST]);
}

static json_t *norm_list(const float *v, int n) {
    json_t *a = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(a, json_real((double)v[i]));
    return a;
}

static int write_manifest(imp_ctx *c, tt_err *err) {
    const suite_spec *s = c->spec;
    char *arch_s = vit_config_to_json(&c->cfg), *spec_s = suite_spec_to_json(s);
    json_t *arch = arch_s ? json_loads(arch_s, 0, NULL) : NULL, *spec = spec_s ? json_loads(spec_s, 0, NULL) : NULL;
    free(arch_s);
    free(spec_s);
    json_t *root = json_object(), *tasks = json_array();
    double zs_avg = 0, ft_avg = 0;
    for (int i = 0; i < s->n_tasks; i++) {
        const imp_task *t = &c->tasks[i];
        char head[200];
        snprintf(head, sizeof head, "heads/%s.safetensors", t->task->name);
        json_t *data = json_object();
        for (int k = 0; k < N_SPLITS; k++)
            json_object_set_new(data, split_names[k], t->data[k][0] ? json_string(t->data[k]) : json_null());
        json_object_set_new(data, "val_from_train", json_boolean(!t->data[SPLIT_VAL][0]));
        json_array_append_new(
            tasks, json_pack("{s:s,s:i,s:{s:i,s:i,s:i},s:s,s:{s:s},s:o,s:{s:o,s:{s:o}}}", "name", t->task->name,
                             "classes", t->head.classes, "splits", "train", t->n_sel[SPLIT_TRAIN], "val",
                             t->n_sel[SPLIT_VAL], "test", t->n_sel[SPLIT_TEST], "head", head, "finetuned", "full",
                             t->finetuned, "data", data, "accuracy", "zeroshot", acc_json(t->zs), "finetuned", "full",
                             acc_json(t->ft)));
        zs_avg += t->zs[SPLIT_TEST] / s->n_tasks;
        ft_avg += t->ft[SPLIT_TEST] / s->n_tasks;
    }
    char pp[32];
    snprintf(pp, sizeof pp, "clip:%d", c->cfg.image_size);
    json_object_set_new(root, "format", json_integer(1));
    json_object_set_new(root, "name", json_string(s->name));
    json_object_set_new(root, "imported", json_true());
    json_object_set_new(root, "ttmerge_version", json_string(ttmerge_version()));
    json_object_set_new(root, "git", json_string(ttmerge_git_rev()));
    json_object_set_new(root, "seed", json_integer((json_int_t)s->seed));
    json_object_set_new(root, "threads", json_integer(omp_get_max_threads()));
    json_object_set_new(root, "arch", arch ? arch : json_null());
    json_object_set_new(root, "normalize", json_pack("{s:o,s:o,s:s}", "mean", norm_list(c->norm.mean, c->norm.channels),
                                                     "std", norm_list(c->norm.std, c->norm.channels), "source",
                                                     c->norm_source));
    json_object_set_new(root, "preprocess", json_string(pp));
    json_object_set_new(root, "finetune_modes", json_pack("[s]", "full"));
    json_object_set_new(root, "pretrained", json_string(c->pretrained));
    json_object_set_new(root, "tasks", tasks);
    json_object_set_new(root, "summary", json_pack("{s:f,s:{s:f}}", "zeroshot_test_avg", zs_avg, "finetuned_test_avg",
                                                   "full", ft_avg));
    json_object_set_new(root, "timing", json_pack("{s:f,s:f,s:f,s:f}", "validate_s", c->t_validate, "data_s", c->t_data,
                                                  "eval_s", c->t_eval, "total_s", c->t_total));
    json_object_set_new(root, "spec", spec ? spec : json_null());
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
    json_decref(root);
    if (!text) return tt_fail(err, TT_ENOMEM, "out of memory (suite.json)");
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/suite.json", c->o->out_dir);
    size_t n = strlen(text);
    text[n] = '\n';
    int rc = fio_write_all(path, text, n + 1, err);
    free(text);
    return rc;
}

/* ---- the build ---- */

int suite_import_build(const suite_spec *spec, const suite_build_opts *o, tt_err *err) {
    imp_ctx *c = calloc(1, sizeof *c);
    if (!c) return tt_fail(err, TT_ENOMEM, "out of memory");
    c->spec = spec;
    c->o = o;
    int rc = -1;
    double t0 = progress_now();
    dnn *d = NULL;
    infer_ctx ic = {0};
    ckpt_vit pre = {0};
    char path[PATH_MAX + 16];
    if (validate(c, err)) goto done;
    c->t_validate = progress_now() - t0;
    suite_note(c->spec, c->o->quiet,
               "%d tasks validated in %.1fs: one architecture, heads match their labels, %s normalisation", spec->n_tasks,
               c->t_validate, c->norm_source);
    if (suite_mkdirs(o->out_dir, err)) goto done;
    snprintf(path, sizeof path, "%s/suite.json", o->out_dir);
    remove(path); /* a stale manifest must not describe a half-rebuilt directory */
    snprintf(path, sizeof path, "%s/heads", o->out_dir);
    if (suite_mkdirs(path, err) || dnn_create(&d, err) || infer_init(&ic, d, &c->cfg, INFER_BATCH, err) ||
        ckpt_load_vit(&pre, c->pretrained, err) || ckpt_check_finite(&pre, c->pretrained, err))
        goto done;
    ckpt_adopt_head_settings(&pre, &c->cfg);
    for (int i = 0; i < spec->n_tasks; i++)
        if (make_task(c, &ic, &pre, &c->tasks[i], err)) goto done;
    c->t_total = progress_now() - t0;
    if (write_manifest(c, err)) goto done;
    suite_note(c->spec, c->o->quiet,
               "imported in %.1fs (decoding %.1fs, evaluation %.1fs) -> %s/suite.json", c->t_total, c->t_data, c->t_eval,
               o->out_dir);
    rc = 0;
done:
    ckpt_vit_free(&pre);
    infer_free(&ic);
    dnn_free(d);
    for (int i = 0; i < spec->n_tasks; i++) {
        imp_task *t = &c->tasks[i];
        for (int s = 0; s < N_SPLITS; s++) {
            imls_free(&t->list[s]);
            free(t->sel[s]);
        }
        ckpt_head_free(&t->head);
    }
    free(c);
    return rc;
}
