/* suite_build.c — see suite_build.h. */
#include "data/suite_build.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <jansson.h>
#include <omp.h>
#include <string.h>
#include <sys/stat.h>

#include "core/arena.h"
#include "core/checkpoint.h"
#include "core/version.h"
#include "core/fileio.h"
#include "core/infer.h"
#include "core/progress.h"
#include "core/train.h"
#include "data/idx.h"
#include "data/source.h"
#include "data/transform.h"

enum { SPLIT_TRAIN, SPLIT_VAL, SPLIT_TEST, N_SPLITS };
static const char *const split_names[N_SPLITS] = {"train", "val", "test"};

typedef struct task_state {
    const suite_task *task;
    ds_images split[N_SPLITS];
    ckpt_head head;
    double zs_acc[N_SPLITS];
    double ft_acc[2][N_SPLITS]; /* [mode][split] */
    double ft_seconds[2], ft_first_loss[2], ft_last_loss[2];
} task_state;

typedef struct build_ctx {
    const suite_spec *spec;
    const suite_build_opts *o;
    dnn *d;
    source_split splits[SUITE_MAX_SOURCES];
    bool loaded[SUITE_MAX_SOURCES];
    task_state tasks[SUITE_MAX_TASKS];
    ckpt_vit pre;
    train_stats pre_stats;
    int pre_images, pre_classes, pre_steps;
    double t_data, t_pretrain, t_heads, t_finetune[2], t_total;
} build_ctx;

static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

int suite_mkdirs(const char *path, tt_err *err) {
    char buf[1024];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return tt_fail(err, TT_EINPUT, "%s: path too long", path);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == 0) {
            char c = *p;
            *p = 0;
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return tt_fail(err, TT_EIO, "%s: cannot create directory: %s", buf, strerror(errno));
            *p = c;
            if (!c) break;
        }
    }
    return 0;
}

static int source_index(const suite_spec *s, const char *name) {
    for (int i = 0; i < s->n_sources; i++)
        if (!strcmp(s->sources[i].name, name)) return i;
    return -1;
}

static int load_source(build_ctx *c, int si, tt_err *err) {
    if (c->loaded[si]) return 0;
    const suite_source *src = &c->spec->sources[si];
    const vit_config *a = &c->spec->arch;
    if (source_load_split(src, c->spec->seed, c->o->mnist_dir, a->image_size, a->channels, &c->splits[si], err))
        return -1;
    c->loaded[si] = true;
    /* idx files carry their own shape; the pool is copied image by image into the arch's */
    const ds_images *t = &c->splits[si].train;
    if (t->channels != a->channels || t->height != a->image_size || t->width != a->image_size)
        return tt_fail(err, TT_EINPUT, "source '%s': images are %dx%dx%d, but arch wants %dx%dx%d (channels x image_size^2)",
                       src->name, t->channels, t->height, t->width, a->channels, a->image_size, a->image_size);
    return 0;
}

/* ---- step 2: task data ---- */

static int write_split(const build_ctx *c, const char *task, int split, const ds_images *im, tt_err *err) {
    char dir[1024], path[1200];
    snprintf(dir, sizeof dir, "%s/data/%s", c->o->out_dir, task);
    if (suite_mkdirs(dir, err)) return -1;
    snprintf(path, sizeof path, "%s/%s-images.idx", dir, split_names[split]);
    if (idx_write_images(path, im, err)) return -1;
    snprintf(path, sizeof path, "%s/%s-labels.idx", dir, split_names[split]);
    return idx_write_labels(path, im->labels, im->n, err);
}

static int make_task_data(build_ctx *c, int ti, tt_err *err) {
    task_state *ts = &c->tasks[ti];
    const suite_task *t = ts->task;
    int si = source_index(c->spec, t->source);
    TT_ASSERT(si >= 0); /* validated by suite_spec_validate */
    if (load_source(c, si, err)) return -1;
    const source_split *sp = &c->splits[si];
    const ds_images *base[N_SPLITS] = {&sp->train, &sp->val, &sp->test};
    const int want[N_SPLITS] = {t->train, t->val, t->test};
    for (int s = 0; s < N_SPLITS; s++) {
        uint64_t seed = c->spec->seed ^ fnv1a(t->name) ^ (0x9e37ull * (uint64_t)(s + 1));
        ds_images sub = {0};
        const ds_images *in = base[s];
        if (want[s] > 0 && want[s] < in->n) {
            if (tf_subsample(in, want[s], seed, &sub, err)) return -1;
            in = &sub;
        }
        int rc = tf_apply_task(t, c->spec->sources[si].classes, in, seed, &ts->split[s], err);
        ds_images_free(&sub);
        if (rc || write_split(c, t->name, s, &ts->split[s], err)) return -1;
    }
    return 0;
}

/* ---- step 3: pretraining ---- */

static int pretrain(build_ctx *c, tt_err *err) {
    const suite_spec *s = c->spec;
    int total = 0, offset = 0, rc = -1;
    for (int k = 0; k < s->n_pretrain_sources; k++) {
        int si = source_index(s, s->pretrain_sources[k]);
        TT_ASSERT(si >= 0);
        if (load_source(c, si, err)) return -1;
        total += c->splits[si].pool.n;
    }
    ds_images pool = {0};
    if (total < s->pretrain.batch)
        return tt_fail(err, TT_EINPUT, "suite %s: the pretraining pool has %d images, fewer than a batch", s->name, total);
    if (ds_images_alloc(&pool, total, s->arch.channels, s->arch.image_size, s->arch.image_size, true, err)) return -1;
    size_t img = (size_t)s->arch.channels * s->arch.image_size * s->arch.image_size;
    int at = 0;
    for (int k = 0; k < s->n_pretrain_sources; k++) {
        int si = source_index(s, s->pretrain_sources[k]);
        const ds_images *p = &c->splits[si].pool;
        memcpy(pool.pixels + (size_t)at * img, p->pixels, (size_t)p->n * img);
        for (int i = 0; i < p->n; i++) pool.labels[at + i] = p->labels[i] + offset;
        at += p->n;
        offset += s->sources[si].classes;
    }
    c->pre_images = total;
    c->pre_classes = offset;
    c->pre_steps = s->pretrain.steps > 0 ? s->pretrain.steps : s->pretrain.epochs * (total / s->pretrain.batch);
    /* The temporary head is a plain linear layer on raw features (discarded afterwards). */
    vit_config cfg = s->arch;
    cfg.normalize_features = false;
    float *hw = NULL;
    if (ckpt_vit_alloc(&c->pre, &s->arch, err)) goto done;
    vit_init_params(&s->arch, &c->pre.lay, c->pre.params, s->seed);
    hw = tt_calloc_aligned((size_t)offset * (cfg.output_dim + 1), sizeof(float), err);
    if (!hw) goto done;
    train_opts o = {.steps = c->pre_steps, .batch = s->pretrain.batch, .lr = s->pretrain.lr,
                    .weight_decay = s->pretrain.weight_decay, .warmup = s->pretrain.warmup,
                    .seed = s->seed ^ 0x70726574ull, .mean = s->norm_mean, .std = s->norm_std,
                    .train_head = true, .label = "pretrain", .progress = c->o->progress};
    rc = train_classifier(c->d, &cfg, &c->pre.lay, c->pre.params, hw, hw + (size_t)offset * cfg.output_dim, offset,
                          pool.pixels, pool.labels, pool.n, &o, &c->pre_stats, err);
done:
    free(hw);
    ds_images_free(&pool);
    return rc;
}

/* ---- step 4: heads ---- */

static int prototype_head(build_ctx *c, infer_ctx *ic, const vit_weights *w, task_state *ts, tt_err *err) {
    const ds_images *tr = &ts->split[SPLIT_TRAIN];
    int D = c->spec->arch.output_dim, K = ts->task->classes;
    float *f = tt_calloc_aligned((size_t)tr->n * D, sizeof(float), err);
    ts->head = (ckpt_head){.classes = K, .dim = D};
    ts->head.W = tt_calloc_aligned((size_t)K * D + (size_t)K, sizeof(float), err);
    if (!f || !ts->head.W) {
        free(f);
        return -1;
    }
    ts->head.b = ts->head.W + (size_t)K * D;
    infer_norm nm = infer_norm_scalar(c->spec->norm_mean, c->spec->norm_std, c->spec->arch.channels);
    infer_features(ic, w, tr->pixels, tr->n, &nm, f);
    for (int i = 0; i < tr->n; i++) {
        float *fi = f + (size_t)i * D;
        double nn = 0;
        for (int j = 0; j < D; j++) nn += (double)fi[j] * fi[j];
        float inv = nn > 0 ? (float)(1.0 / sqrt(nn)) : 0.f;
        float *row = ts->head.W + (size_t)tr->labels[i] * D;
        for (int j = 0; j < D; j++) row[j] += fi[j] * inv;
    }
    for (int k = 0; k < K; k++) { /* a class absent from the train split keeps a zero row */
        float *row = ts->head.W + (size_t)k * D;
        double nn = 0;
        for (int j = 0; j < D; j++) nn += (double)row[j] * row[j];
        if (nn > 0)
            for (int j = 0; j < D; j++) row[j] = (float)(row[j] / sqrt(nn));
    }
    free(f);
    return 0;
}

static int logreg_head(build_ctx *c, task_state *ts, tt_err *err) {
    int D = c->spec->arch.output_dim, K = ts->task->classes;
    ts->head = (ckpt_head){.classes = K, .dim = D};
    ts->head.W = tt_calloc_aligned((size_t)K * D + (size_t)K, sizeof(float), err);
    if (!ts->head.W) return -1;
    ts->head.b = ts->head.W + (size_t)K * D;
    bool *frozen = calloc((size_t)c->pre.lay.count, sizeof(bool));
    if (!frozen) return tt_fail(err, TT_ENOMEM, "out of memory");
    const ds_images *tr = &ts->split[SPLIT_TRAIN];
    int batch = tr->n < 128 ? tr->n : 128;
    train_opts o = {.steps = 10 * (tr->n / batch), .batch = batch, .lr = 1e-2f, .weight_decay = 0,
                    .warmup = 0.05f, .seed = c->spec->seed ^ fnv1a(ts->task->name), .mean = c->spec->norm_mean,
                    .std = c->spec->norm_std, .trainable = frozen, .train_head = true, .label = ts->task->name,
                    .progress = c->o->progress};
    int rc = train_classifier(c->d, &c->spec->arch, &c->pre.lay, c->pre.params, ts->head.W, ts->head.b, K, tr->pixels,
                              tr->labels, tr->n, &o, NULL, err);
    free(frozen);
    return rc;
}

static int evaluate(build_ctx *c, infer_ctx *ic, const vit_weights *w, task_state *ts, double acc[N_SPLITS], tt_err *err) {
    const infer_norm nm = infer_norm_scalar(c->spec->norm_mean, c->spec->norm_std, c->spec->arch.channels);
    for (int s = SPLIT_VAL; s < N_SPLITS; s++) {
        const ds_images *im = &ts->split[s];
        float *logits = tt_calloc_aligned((size_t)im->n * ts->head.classes, sizeof(float), err);
        if (!logits || infer_logits(ic, w, ts->head.W, ts->head.b, ts->head.classes, im->pixels, im->n, &nm,
                                    logits, err)) {
            free(logits);
            return -1;
        }
        acc[s] = infer_accuracy(logits, im->labels, im->n, ts->head.classes);
        free(logits);
    }
    return 0;
}

/* ---- step 5: fine-tuning ---- */

static void finetuned_path(char *buf, size_t n, const build_ctx *c, int mode, const char *task) {
    if (mode == 0) snprintf(buf, n, "%s/finetuned/%s.safetensors", c->o->out_dir, task);
    else snprintf(buf, n, "%s/finetuned-%s/%s.safetensors", c->o->out_dir, c->spec->finetune_modes[mode], task);
}

static int finetune(build_ctx *c, int mode, task_state *ts, infer_ctx *ic, tt_err *err) {
    const suite_spec *s = c->spec;
    const char *mname = s->finetune_modes[mode];
    bool attn_linear = !strcmp(mname, "attn-linear");
    ckpt_vit ft;
    if (ckpt_vit_alloc(&ft, &s->arch, err)) return -1;
    memcpy(ft.params, c->pre.params, c->pre.lay.total * sizeof(float));
    bool *trainable = calloc((size_t)ft.lay.count, sizeof(bool));
    vit_weights w = {0};
    int rc = -1;
    if (!trainable) {
        tt_fail(err, TT_ENOMEM, "out of memory");
        goto done;
    }
    /* attn-linear (Jin et al.): only the attention in/out projection weights; biases frozen */
    for (int k = 0; k < ft.lay.count; k++)
        trainable[k] = !attn_linear || strstr(ft.lay.t[k].name, "attn.in_proj_weight") ||
                       strstr(ft.lay.t[k].name, "attn.out_proj.weight");
    const ds_images *tr = &ts->split[SPLIT_TRAIN];
    char label[128];
    snprintf(label, sizeof label, "finetune %s (%s)", ts->task->name, mname);
    train_opts o = {.steps = s->finetune.steps, .batch = s->finetune.batch,
                    .lr = attn_linear ? s->attn_linear_lr : s->finetune.lr, .weight_decay = s->finetune.weight_decay,
                    .warmup = s->finetune.warmup, .seed = s->seed ^ fnv1a(ts->task->name) ^ (uint64_t)(mode + 17),
                    .mean = s->norm_mean, .std = s->norm_std, .trainable = trainable, .train_head = false,
                    .label = label, .progress = c->o->progress};
    train_stats st;
    if (train_classifier(c->d, &s->arch, &ft.lay, ft.params, ts->head.W, ts->head.b, ts->task->classes, tr->pixels,
                         tr->labels, tr->n, &o, &st, err))
        goto done;
    ts->ft_seconds[mode] = st.seconds;
    ts->ft_first_loss[mode] = st.first_loss;
    ts->ft_last_loss[mode] = st.last_loss;
    if (vit_weights_bind(&w, &ft.lay, ft.params, NULL, err) || evaluate(c, ic, &w, ts, ts->ft_acc[mode], err)) goto done;
    char path[1200], dir[1200], seed[32];
    finetuned_path(path, sizeof path, c, mode, ts->task->name);
    snprintf(dir, sizeof dir, "%s", path);
    *strrchr(dir, '/') = 0;
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)o.seed);
    ckpt_meta meta[] = {{"ttmerge.task", ts->task->name}, {"ttmerge.finetune_mode", mname}, {"ttmerge.seed", seed},
                        {"ttmerge.suite", s->name}};
    if (suite_mkdirs(dir, err) || ckpt_save_vit(&ft, path, NULL, 0, meta, 4, err)) goto done;
    rc = 0;
done:
    vit_weights_free(&w);
    free(trainable);
    ckpt_vit_free(&ft);
    return rc;
}

/* ---- step 6: manifest ---- */

static json_t *acc_json(const double acc[N_SPLITS]) {
    return json_pack("{s:f,s:f}", "val", acc[SPLIT_VAL], "test", acc[SPLIT_TEST]);
}

static int write_manifest(build_ctx *c, tt_err *err) {
    const suite_spec *s = c->spec;
    json_t *root = json_object(), *tasks = json_array(), *modes = json_array();
    char *arch_s = vit_config_to_json(&s->arch), *spec_s = suite_spec_to_json(s);
    json_t *arch = arch_s ? json_loads(arch_s, 0, NULL) : NULL, *spec = spec_s ? json_loads(spec_s, 0, NULL) : NULL;
    free(arch_s);
    free(spec_s);
    double zs_avg = 0, ft_avg[2] = {0};
    for (int m = 0; m < s->n_finetune_modes; m++) json_array_append_new(modes, json_string(s->finetune_modes[m]));
    for (int t = 0; t < s->n_tasks; t++) {
        const task_state *ts = &c->tasks[t];
        json_t *ft = json_object(), *ftacc = json_object(), *ftsec = json_object();
        for (int m = 0; m < s->n_finetune_modes; m++) {
            char path[1200];
            finetuned_path(path, sizeof path, c, m, ts->task->name);
            json_object_set_new(ft, s->finetune_modes[m], json_string(path + strlen(c->o->out_dir) + 1));
            json_object_set_new(ftacc, s->finetune_modes[m], acc_json(ts->ft_acc[m]));
            json_object_set_new(ftsec, s->finetune_modes[m],
                                json_pack("{s:f,s:f,s:f}", "seconds", ts->ft_seconds[m], "first_loss",
                                          ts->ft_first_loss[m], "last_loss", ts->ft_last_loss[m]));
            ft_avg[m] += ts->ft_acc[m][SPLIT_TEST] / s->n_tasks;
        }
        zs_avg += ts->zs_acc[SPLIT_TEST] / s->n_tasks;
        char head[200];
        snprintf(head, sizeof head, "heads/%s.safetensors", ts->task->name);
        json_array_append_new(
            tasks, json_pack("{s:s,s:s,s:i,s:{s:i,s:i,s:i},s:s,s:o,s:{s:o,s:o},s:o}", "name", ts->task->name, "source",
                             ts->task->source, "classes", ts->task->classes, "splits", "train",
                             ts->split[SPLIT_TRAIN].n, "val", ts->split[SPLIT_VAL].n, "test", ts->split[SPLIT_TEST].n,
                             "head", head, "finetuned", ft, "accuracy", "zeroshot", acc_json(ts->zs_acc), "finetuned",
                             ftacc, "finetune", ftsec));
    }
    json_t *ftavg = json_object();
    for (int m = 0; m < s->n_finetune_modes; m++) json_object_set_new(ftavg, s->finetune_modes[m], json_real(ft_avg[m]));
    json_t *ftt = json_object();
    for (int m = 0; m < s->n_finetune_modes; m++) json_object_set_new(ftt, s->finetune_modes[m], json_real(c->t_finetune[m]));
    json_object_set_new(root, "format", json_integer(1));
    json_object_set_new(root, "name", json_string(s->name));
    json_object_set_new(root, "ttmerge_version", json_string(ttmerge_version()));
    json_object_set_new(root, "git", json_string(ttmerge_git_rev()));
    json_object_set_new(root, "seed", json_integer((json_int_t)s->seed));
    json_object_set_new(root, "threads", json_integer(omp_get_max_threads()));
    json_object_set_new(root, "arch", arch ? arch : json_null());
    json_object_set_new(root, "normalize", json_pack("{s:f,s:f}", "mean", (double)s->norm_mean, "std", (double)s->norm_std));
    json_object_set_new(root, "finetune_modes", modes);
    json_object_set_new(root, "pretrained", json_string("pretrained.safetensors"));
    json_object_set_new(root, "tasks", tasks);
    json_object_set_new(root, "summary", json_pack("{s:f,s:o}", "zeroshot_test_avg", zs_avg, "finetuned_test_avg", ftavg));
    json_object_set_new(root, "pretrain", json_pack("{s:i,s:i,s:i,s:f,s:f,s:f}", "images", c->pre_images, "classes",
                                                   c->pre_classes, "steps", c->pre_steps, "first_loss",
                                                   c->pre_stats.first_loss, "last_loss", c->pre_stats.last_loss,
                                                   "images_per_s", c->pre_stats.images_per_s));
    json_object_set_new(root, "timing", json_pack("{s:f,s:f,s:f,s:o,s:f}", "data_s", c->t_data, "pretrain_s",
                                                 c->t_pretrain, "heads_s", c->t_heads, "finetune_s", ftt, "total_s",
                                                 c->t_total));
    json_object_set_new(root, "spec", spec ? spec : json_null());
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    json_decref(root);
    if (!text) return tt_fail(err, TT_ENOMEM, "out of memory (suite.json)");
    char path[1100];
    snprintf(path, sizeof path, "%s/suite.json", c->o->out_dir);
    size_t n = strlen(text);
    text[n] = '\n'; /* replace the NUL: the file ends with a newline */
    int rc = fio_write_all(path, text, n + 1, err);
    free(text);
    return rc;
}

/* ---- the build ---- */

int suite_build(const suite_spec *spec, const suite_build_opts *o, tt_err *err) {
    if (spec->import.on) return tt_fail(err, TT_EINPUT, "suite %s imports its models: build it with suite_import_build", spec->name);
    build_ctx *c = calloc(1, sizeof *c);
    if (!c) return tt_fail(err, TT_ENOMEM, "out of memory");
    c->spec = spec;
    c->o = o;
    int rc = -1;
    double t0 = progress_now(), t;
    infer_ctx ic = {0};
    vit_weights w = {0};
    char path[1100];
    /* every source first: bad data fails the build before anything is written */
    for (int i = 0; i < spec->n_sources; i++)
        if (load_source(c, i, err)) goto done;
    if (suite_mkdirs(o->out_dir, err) || dnn_create(&c->d, err)) goto done;
    /* a stale manifest must not describe a half-rebuilt directory */
    snprintf(path, sizeof path, "%s/suite.json", o->out_dir);
    remove(path);

    t = progress_now();
    for (int i = 0; i < spec->n_tasks; i++) {
        c->tasks[i].task = &spec->tasks[i];
        if (make_task_data(c, i, err)) goto done;
    }
    c->t_data = progress_now() - t;
    suite_note(c->spec, c->o->quiet, "data for %d tasks in %.1fs", spec->n_tasks, c->t_data);

    t = progress_now();
    if (pretrain(c, err)) goto done;
    c->t_pretrain = progress_now() - t;
    suite_note(c->spec, c->o->quiet,
               "pretrained on %d images (%d classes, %d steps) in %.1fs, loss %.3f -> %.3f, %.0f img/s", c->pre_images,
               c->pre_classes, c->pre_steps, c->t_pretrain, c->pre_stats.first_loss, c->pre_stats.last_loss,
               c->pre_stats.images_per_s);
    snprintf(path, sizeof path, "%s/pretrained.safetensors", o->out_dir);
    ckpt_meta meta[] = {{"ttmerge.suite", spec->name}};
    if (ckpt_save_vit(&c->pre, path, NULL, 0, meta, 1, err)) goto done;

    t = progress_now();
    snprintf(path, sizeof path, "%s/heads", o->out_dir);
    if (suite_mkdirs(path, err) || infer_init(&ic, c->d, &spec->arch, INFER_BATCH, err) ||
        vit_weights_bind(&w, &c->pre.lay, c->pre.params, NULL, err))
        goto done;
    for (int i = 0; i < spec->n_tasks; i++) {
        task_state *ts = &c->tasks[i];
        int hrc = !strcmp(spec->heads, "logreg") ? logreg_head(c, ts, err) : prototype_head(c, &ic, &w, ts, err);
        if (hrc || evaluate(c, &ic, &w, ts, ts->zs_acc, err)) goto done;
        snprintf(path, sizeof path, "%s/heads/%s.safetensors", o->out_dir, ts->task->name);
        if (ckpt_save_head(&ts->head, path, err)) goto done;
        suite_note(c->spec, c->o->quiet,
                   "zero-shot %-16s val %5.1f  test %5.1f", ts->task->name, ts->zs_acc[SPLIT_VAL], ts->zs_acc[SPLIT_TEST]);
    }
    c->t_heads = progress_now() - t;

    for (int m = 0; m < spec->n_finetune_modes; m++) {
        t = progress_now();
        for (int i = 0; i < spec->n_tasks; i++) {
            task_state *ts = &c->tasks[i];
            if (finetune(c, m, ts, &ic, err)) goto done;
            suite_note(c->spec, c->o->quiet,
                       "fine-tuned %-16s (%s) val %5.1f  test %5.1f  in %.1fs", ts->task->name, spec->finetune_modes[m],
                       ts->ft_acc[m][SPLIT_VAL], ts->ft_acc[m][SPLIT_TEST], ts->ft_seconds[m]);
        }
        c->t_finetune[m] = progress_now() - t;
    }
    c->t_total = progress_now() - t0;
    if (write_manifest(c, err)) goto done;
    suite_note(c->spec, c->o->quiet, "built in %.1fs -> %s/suite.json", c->t_total, o->out_dir);
    rc = 0;
done:
    vit_weights_free(&w);
    infer_free(&ic);
    for (int i = 0; i < spec->n_tasks; i++) {
        for (int s = 0; s < N_SPLITS; s++) ds_images_free(&c->tasks[i].split[s]);
        ckpt_head_free(&c->tasks[i].head);
    }
    for (int i = 0; i < SUITE_MAX_SOURCES; i++)
        if (c->loaded[i]) source_split_free(&c->splits[i]);
    ckpt_vit_free(&c->pre);
    dnn_free(c->d);
    free(c);
    return rc;
}
