/* suite.c — see suite.h. */
#include "data/suite.h"

#include <jansson.h>
#include <math.h>
#include <string.h>

#include "data/idx.h"
#include "data/suite_spec.h" /* SUITE_MAX_TASKS */

static int load_split(const suite *s, const char *task, const char *split, ds_images *out, tt_err *err) {
    char ip[1200], lp[1200];
    snprintf(ip, sizeof ip, "%s/data/%s/%s-images.idx", s->dir, task, split);
    snprintf(lp, sizeof lp, "%s/data/%s/%s-labels.idx", s->dir, task, split);
    return idx_read_pair(ip, lp, out, err);
}

int suite_load_train(const suite *s, int task, ds_images *out, tt_err *err) {
    return load_split(s, s->tasks[task].name, "train", out, err);
}

/* A path from suite.json: absolute as given (an imported suite references the user's
 * checkpoints), else relative to the suite directory. */
static void resolve(char *out, size_t cap, const char *dir, const char *p) {
    if (p[0] == '/') snprintf(out, cap, "%s", p);
    else snprintf(out, cap, "%s/%s", dir, p);
}

/* normalize.mean / .std: a number (every channel) or a list of one number per channel. */
static int read_norm(json_t *v, const char *key, int channels, float *out, const char *path, tt_err *err) {
    if (json_is_number(v)) {
        for (int c = 0; c < channels; c++) out[c] = (float)json_number_value(v);
    } else if (json_is_array(v) && json_array_size(v) == (size_t)channels) {
        for (int c = 0; c < channels; c++) {
            json_t *x = json_array_get(v, (size_t)c);
            if (!json_is_number(x)) return tt_fail(err, TT_EINPUT, "%s: normalize.%s[%d] is not a number", path, key, c);
            out[c] = (float)json_number_value(x);
        }
    } else {
        return tt_fail(err, TT_EINPUT, "%s: normalize.%s must be a number or a list of %d numbers (one per channel)", path,
                       key, channels);
    }
    for (int c = 0; c < channels; c++)
        if (!isfinite(out[c]) || (!strcmp(key, "std") && !(out[c] > 0)))
            return tt_fail(err, TT_EINPUT, "%s: normalize.%s must be %s", path, key,
                           strcmp(key, "std") ? "finite" : "positive");
    return 0;
}

static double acc_of(json_t *acc, const char *mode, const char *split) {
    json_t *m = mode ? json_object_get(acc, mode) : acc;
    json_t *v = json_object_get(m, split);
    return json_is_number(v) ? json_number_value(v) : -1;
}

int suite_open(suite *s, const char *dir, const char *mode, tt_err *err) {
    memset(s, 0, sizeof *s);
    snprintf(s->dir, sizeof s->dir, "%s", dir);
    char path[1200];
    snprintf(path, sizeof path, "%s/suite.json", dir);
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root) return tt_fail(err, TT_EINPUT, "%s: %s (is this a built suite? run `ttmerge suite build`)", path, je.text);
    int rc = -1;
    json_t *name = json_object_get(root, "name"), *arch = json_object_get(root, "arch"),
           *norm = json_object_get(root, "normalize"), *tasks = json_object_get(root, "tasks"),
           *modes = json_object_get(root, "finetune_modes");
    if (!json_is_string(name) || !json_is_object(arch) || !json_is_object(norm) || !json_is_array(tasks) ||
        !json_is_array(modes) || json_array_size(modes) == 0 || json_array_size(tasks) == 0) {
        tt_fail(err, TT_EINPUT, "%s: missing or malformed name/arch/normalize/tasks/finetune_modes", path);
        goto done;
    }
    if (json_array_size(tasks) > SUITE_MAX_TASKS) {
        tt_fail(err, TT_EINPUT, "%s: %zu tasks, at most %d", path, json_array_size(tasks), SUITE_MAX_TASKS);
        goto done;
    }
    snprintf(s->name, sizeof s->name, "%s", json_string_value(name));
    const char *m0 = json_string_value(json_array_get(modes, 0));
    if (!mode) mode = m0 ? m0 : "full";
    bool found = false;
    for (size_t i = 0; i < json_array_size(modes); i++) {
        const char *mi = json_string_value(json_array_get(modes, i));
        if (mi && !strcmp(mi, mode)) found = true;
    }
    if (!found) {
        tt_fail(err, TT_EINPUT, "%s: the suite was not fine-tuned in mode '%s'", path, mode);
        goto done;
    }
    snprintf(s->mode, sizeof s->mode, "%s", mode);
    char *arch_text = json_dumps(arch, JSON_COMPACT);
    int arc = vit_config_from_json(&s->cfg, arch_text ? arch_text : "", err);
    free(arch_text);
    if (arc) {
        tt_prefix(err, "%s: ", path);
        goto done;
    }
    s->norm.channels = s->cfg.channels;
    if (read_norm(json_object_get(norm, "mean"), "mean", s->cfg.channels, s->norm.mean, path, err) ||
        read_norm(json_object_get(norm, "std"), "std", s->cfg.channels, s->norm.std, path, err))
        goto done;
    const char *pre = json_string_value(json_object_get(root, "pretrained"));
    resolve(s->pretrained, sizeof s->pretrained, dir, pre ? pre : "pretrained.safetensors");
    s->n_tasks = (int)json_array_size(tasks);
    s->tasks = calloc((size_t)s->n_tasks, sizeof *s->tasks);
    if (!s->tasks) {
        tt_fail(err, TT_ENOMEM, "out of memory");
        goto done;
    }
    for (int t = 0; t < s->n_tasks; t++) {
        suite_task_info *ti = &s->tasks[t];
        json_t *jt = json_array_get(tasks, (size_t)t);
        const char *tn = json_string_value(json_object_get(jt, "name"));
        const char *hp = json_string_value(json_object_get(jt, "head"));
        const char *fp = json_string_value(json_object_get(json_object_get(jt, "finetuned"), mode));
        if (!tn || !hp || !fp || strlen(tn) >= sizeof ti->name || strchr(tn, '/')) {
            tt_fail(err, TT_EINPUT, "%s: task %d: missing or bad name/head/finetuned", path, t);
            goto done;
        }
        snprintf(ti->name, sizeof ti->name, "%s", tn);
        resolve(ti->finetuned, sizeof ti->finetuned, dir, fp);
        char head_path[1200];
        snprintf(head_path, sizeof head_path, "%s/%s", dir, hp);
        if (ckpt_load_head(&ti->head, head_path, s->cfg.output_dim, err)) goto done;
        ti->classes = ti->head.classes;
        if (ti->classes < 2) { /* accuracy would be 100% and every entropy 0: nothing to merge for */
            tt_fail(err, TT_EINPUT, "%s: task %s has %d class; a task needs at least 2", head_path, tn, ti->classes);
            goto done;
        }
        json_t *acc = json_object_get(jt, "accuracy");
        ti->zeroshot_val = acc_of(json_object_get(acc, "zeroshot"), NULL, "val");
        ti->zeroshot_test = acc_of(json_object_get(acc, "zeroshot"), NULL, "test");
        ti->finetuned_val = acc_of(json_object_get(acc, "finetuned"), mode, "val");
        ti->finetuned_test = acc_of(json_object_get(acc, "finetuned"), mode, "test");
        if (load_split(s, tn, "val", &ti->val, err) || load_split(s, tn, "test", &ti->test, err)) goto done;
        const ds_images *sets[2] = {&ti->val, &ti->test};
        for (int k = 0; k < 2; k++) {
            const ds_images *im = sets[k];
            if (im->channels != s->cfg.channels || im->height != s->cfg.image_size || im->width != s->cfg.image_size) {
                tt_fail(err, TT_EINPUT, "%s: task %s: images do not match the architecture", path, tn);
                goto done;
            }
            for (int i = 0; i < im->n; i++)
                if (im->labels[i] < 0 || im->labels[i] >= ti->classes) {
                    tt_fail(err, TT_EINPUT, "%s/data/%s: label %d outside the head's %d classes", dir, tn, im->labels[i],
                            ti->classes);
                    goto done;
                }
        }
    }
    rc = 0;
done:
    json_decref(root);
    if (rc) suite_close(s);
    return rc;
}

void suite_close(suite *s) {
    for (int t = 0; s->tasks && t < s->n_tasks; t++) {
        ds_images_free(&s->tasks[t].val);
        ds_images_free(&s->tasks[t].test);
        ckpt_head_free(&s->tasks[t].head);
    }
    free(s->tasks);
    memset(s, 0, sizeof *s);
}

int suite_find_task(const suite *s, const char *name) {
    for (int t = 0; t < s->n_tasks; t++)
        if (!strcmp(s->tasks[t].name, name)) return t;
    return -1;
}
