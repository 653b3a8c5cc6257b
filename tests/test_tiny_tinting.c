/* test_tiny_tinting.c — Model Tinting of one backbone tensor on the tiny suite, through the CLI:
 * `ttmerge merge --set layer=<tensor>` (the objective falls, one task-specific tensor per task is
 * stored, accuracy beats Task Arithmetic), `ttmerge eval` with task.<task>.<tensor> gives exactly
 * the logits of a checkpoint where that tensor is substituted by hand, the in-memory evaluation the
 * bench uses agrees with the file's, and bad layer names or bad task tensors are one-line errors. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "baselines/methods.h"
#include "tint/tinting.h"
#include "core/checkpoint.h"
#include "tests/testutil.h"

#define C_PROJ "transformer.resblocks.1.mlp.c_proj.weight"

static const char *tiny(void) {
    const char *dir = getenv("TTMERGE_TINY_SUITE");
    cr_assert_not_null(dir, "TTMERGE_TINY_SUITE is not set (run under ctest)");
    return dir;
}

/* `ttmerge ARGS >out`; returns the exit status, stderr in err. */
static int ttm(const char *args, const char *out, char *err, size_t cap) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "OMP_WAIT_POLICY=passive %s %s >%s", tu_ttmerge_bin(), args, out ? out : "/dev/null");
    return tu_run(cmd, err, cap);
}

static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = calloc((size_t)len + 1, 1);
    cr_assert_eq(fread(buf, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    if (n) *n = (size_t)len;
    return buf;
}

/* accuracy column of the CSV row `task` (or "average") of `ttmerge eval --suite` output */
static double csv_accuracy(const char *csv_path, const char *task) {
    char *text = slurp(csv_path, NULL);
    char key[96];
    snprintf(key, sizeof key, "\n%s,", task);
    const char *row = strstr(text, key);
    cr_assert_not_null(row, "no row %s in %s:\n%s", task, csv_path, text);
    const char *p = row + 1;
    for (int comma = 0; comma < 3; p++) comma += *p == ',';
    double acc = strtod(p, NULL);
    free(text);
    return acc;
}

static void merge(const char *dir, const char *method, const char *sets, const char *out) {
    char args[2048], err[4096];
    snprintf(args, sizeof args, "merge --suite %s --method %s %s --out %s/%s --quiet", tiny(), method, sets, dir, out);
    cr_assert_eq(ttm(args, NULL, err, sizeof err), 0, "ttmerge %s: %s", args, err);
}

static void eval(const char *model, const char *task, const char *csv, const char *logits) {
    char args[2048], err[4096], extra[1024] = "";
    if (task) snprintf(extra, sizeof extra, "--task %s --logits-out %s", task, logits);
    snprintf(args, sizeof args, "eval --suite %s --model %s %s", tiny(), model, extra);
    cr_assert_eq(ttm(args, csv, err, sizeof err), 0, "ttmerge %s: %s", args, err);
}

Test(tinting_layer, merge_and_eval_end_to_end, .timeout = 300) {
    const char *d = tu_tmpdir("tint-e2e");
    merge(d, "tinting", "--set layer=block1.c_proj", "tint.safetensors");
    merge(d, "ta", "", "ta.safetensors");
    char path[1024], csv[1024];
    /* the objective (pseudo-conf CE, one task batch per step) falls: first 10 rounds vs last 10 */
    snprintf(path, sizeof path, "%s/tint.safetensors.curve.csv", d);
    char *curve = slurp(path, NULL);
    double loss[400];
    int n = 0;
    for (char *line = strchr(curve, '\n'); line && line[1] && n < 400; line = strchr(line + 1, '\n'))
        loss[n++] = strtod(strchr(line, ',') + 1, NULL);
    free(curve);
    cr_assert_eq(n, 300, "100 rounds x 3 tasks, got %d steps", n);
    double first = 0, last = 0;
    for (int i = 0; i < 30; i++) {
        first += loss[i] / 30;
        last += loss[n - 1 - i] / 30;
    }
    cr_expect_lt(last, 0.8 * first, "objective %.4f -> %.4f", first, last);

    /* one final task-specific tensor per task, different from the merged one; no tinted heads */
    snprintf(path, sizeof path, "%s/tint.safetensors", d);
    st_file *f;
    tt_err e = {0};
    cr_assert_eq(st_open(&f, path, &e), 0, "%s", e.msg);
    cr_assert(strstr(st_meta(f, "ttmerge.record"), "\"tinted\":\"" C_PROJ "\""), "%s", st_meta(f, "ttmerge.record"));
    suite s;
    cr_assert_eq(suite_open(&s, tiny(), NULL, &e), 0, "%s", e.msg);
    const st_tensor *merged = st_find(f, C_PROJ);
    for (int k = 0; k < s.n_tasks; k++) {
        char name[160];
        snprintf(name, sizeof name, "task.%s." C_PROJ, s.tasks[k].name);
        const st_tensor *t = st_find(f, name);
        cr_assert(t && t->ndim == 2 && t->shape[0] == 32 && t->shape[1] == 128, "%s missing or misshapen", name);
        const float *a = st_f32_view(t), *b = st_f32_view(merged);
        double diff = 0;
        for (int64_t i = 0; i < t->numel; i++) diff = fmax(diff, fabs((double)a[i] - b[i]));
        cr_expect_gt(diff, 1e-3, "%s equals the merged tensor (max |Δ| %g)", name, diff);
        snprintf(name, sizeof name, "task.%s.head.weight", s.tasks[k].name);
        cr_expect_null(st_find(f, name), "%s: the heads stay the zero-shot heads", name);
    }
    st_close(f);

    snprintf(csv, sizeof csv, "%s/tint.csv", d);
    eval(path, NULL, csv, NULL);
    double tint = csv_accuracy(csv, "average");
    snprintf(path, sizeof path, "%s/ta.safetensors", d);
    snprintf(csv, sizeof csv, "%s/ta.csv", d);
    eval(path, NULL, csv, NULL);
    double ta = csv_accuracy(csv, "average");
    fprintf(stderr, "tiny: TA %.2f, tinting layer=block1.c_proj %.2f\n", ta, tint);
    cr_expect_gt(tint, ta + 3, "tinting %.2f does not beat TA %.2f", tint, ta);
    suite_close(&s);
    tu_rm_tree(d);
}

/* A checkpoint whose tensor C_PROJ is task k's task.<task>.C_PROJ, without any task tensors. */
static void save_substituted(const char *from, const char *task, const char *to) {
    st_file *f;
    ckpt_vit m;
    tt_err e = {0};
    cr_assert_eq(st_open(&f, from, &e), 0, "%s", e.msg);
    cr_assert_eq(ckpt_read_vit(&m, f, &e), 0, "%s", e.msg);
    if (task) {
        char name[160];
        snprintf(name, sizeof name, "task.%s." C_PROJ, task);
        const st_tensor *t = st_find(f, name);
        cr_assert_not_null(t);
        int l = vit_layout_find(&m.lay, C_PROJ);
        cr_assert_eq(st_read_f32(f, t, m.params + m.lay.t[l].offset, &e), 0, "%s", e.msg);
    }
    cr_assert_eq(ckpt_save_vit(&m, to, NULL, 0, NULL, 0, &e), 0, "%s", e.msg);
    ckpt_vit_free(&m);
    st_close(f);
}

Test(tinting_layer, task_tensor_equals_hand_substitution, .timeout = 300) {
    const char *d = tu_tmpdir("tint-exact");
    /* in process, as the bench runs it: merge_eval_tasks with the context's task tensors */
    suite s;
    merge_ctx ctx;
    tt_err e = {0};
    const char *sets[] = {"layer=" C_PROJ, "epochs=10"};
    cr_assert_eq(suite_open(&s, tiny(), NULL, &e), 0, "%s", e.msg);
    cr_assert_eq(merge_ctx_open(&ctx, &s, &method_tinting, sets, 2, 0, &e), 0, "%s", e.msg);
    cr_assert_eq(method_tinting.run(&ctx, &e), 0, "%s", e.msg);
    char model[1024], plain[1024], hand[1024], csv[1024], a[1024], b[1024], c[1024];
    snprintf(model, sizeof model, "%s/tint.safetensors", d);
    cr_assert_eq(merge_ctx_save(&ctx, &method_tinting, model, &e), 0, "%s", e.msg);
    merge_eval ev;
    double acc[MERGE_MAX_TASKS];
    cr_assert_eq(merge_eval_init(&ev, &ctx, &e), 0, "%s", e.msg);
    merge_eval_tasks(&ev, &ctx, true, acc, NULL);
    merge_eval_free(&ev);
    merge_ctx_close(&ctx);

    snprintf(plain, sizeof plain, "%s/plain.safetensors", d);
    save_substituted(model, NULL, plain);
    int changed = 0;
    for (int k = 0; k < s.n_tasks; k++) {
        const char *task = s.tasks[k].name;
        snprintf(hand, sizeof hand, "%s/hand-%s.safetensors", d, task);
        save_substituted(model, task, hand);
        snprintf(csv, sizeof csv, "%s/%s.csv", d, task);
        snprintf(a, sizeof a, "%s/a-%s.npy", d, task);
        snprintf(b, sizeof b, "%s/b-%s.npy", d, task);
        snprintf(c, sizeof c, "%s/c-%s.npy", d, task);
        eval(model, task, csv, a);
        double file_acc = csv_accuracy(csv, task);
        eval(hand, task, csv, b);
        eval(plain, task, csv, c);
        size_t na, nb, nc;
        char *la = slurp(a, &na), *lb = slurp(b, &nb), *lc = slurp(c, &nc);
        cr_assert_eq(na, nb);
        cr_expect(memcmp(la, lb, na) == 0, "task %s: logits with task.%s.%s differ from the hand-substituted model", task,
                  task, C_PROJ);
        changed += nc == na && memcmp(la, lc, na) != 0;
        cr_expect(fabs(file_acc - acc[k]) < 1e-3, "task %s: ttmerge eval %.4f, in-memory eval %.4f", task, file_acc, acc[k]);
        free(la);
        free(lb);
        free(lc);
    }
    cr_expect_eq(changed, s.n_tasks, "the task tensors changed the logits of only %d tasks", changed);
    suite_close(&s);
    tu_rm_tree(d);
}

static void expect_one_line_error(const char *args, int want_status, const char *must_contain, const char *names) {
    char err[4096];
    int st = ttm(args, NULL, err, sizeof err);
    cr_expect_eq(st, want_status, "`ttmerge %s` exited %d, want %d; stderr: %s", args, st, want_status, err);
    int lines = 0;
    for (const char *p = err; *p; p++) lines += *p == '\n';
    cr_expect_eq(lines, 1, "`ttmerge %s` printed %d lines: %s", args, lines, err);
    cr_expect(strstr(err, must_contain), "`ttmerge %s`: '%s' not in: %s", args, must_contain, err);
    if (names) cr_expect(strstr(err, names), "`ttmerge %s`: the error does not name %s: %s", args, names, err);
}

Test(tinting_layer, bad_layer_name_is_one_line_error, .timeout = 120) {
    const char *d = tu_tmpdir("tint-badlayer");
    const char *bad[] = {"block2.c_proj", "transformer.resblocks.1.mlp.c_proj.weigth", "heads", "mlp.c_proj"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char args[2048], out[1024];
        snprintf(out, sizeof out, "%s/x.safetensors", d);
        snprintf(args, sizeof args, "merge --suite %s --method tinting --set layer=%s --out %s", tiny(), bad[i], out);
        char want[128];
        snprintf(want, sizeof want, "layer=%s: no such tensor", bad[i]);
        expect_one_line_error(args, 2, want, "transformer.resblocks.{0..1}.{ln_1.{weight,bias}");
        expect_one_line_error(args, 2, "block1.c_proj", NULL);
        struct stat st;
        cr_expect_neq(stat(out, &st), 0, "an output was written for layer=%s", bad[i]);
    }
    tu_rm_tree(d);
}

/* The pretrained model + one or two extra tensors, evaluated: a one-line error naming the file. */
static void expect_bad_extra(const char *d, const char *file, const ckpt_extra_tensor *x, int n, int status,
                             const char *phrase) {
    ckpt_vit m;
    tt_err e = {0};
    char pre[1024], path[1024], args[2048];
    snprintf(pre, sizeof pre, "%s/pretrained.safetensors", tiny());
    snprintf(path, sizeof path, "%s/%s", d, file);
    cr_assert_eq(ckpt_load_vit(&m, pre, &e), 0, "%s", e.msg);
    cr_assert_eq(ckpt_save_vit(&m, path, x, n, NULL, 0, &e), 0, "%s", e.msg);
    ckpt_vit_free(&m);
    snprintf(args, sizeof args, "eval --suite %s --model %s", tiny(), path);
    expect_one_line_error(args, status, phrase, path);
}

Test(tinting_layer, bad_task_tensors_are_one_line_errors, .timeout = 120) {
    const char *d = tu_tmpdir("tint-badtensor");
    static float data[32 * 128], nan_data[32 * 32];
    nan_data[17] = NAN;
    ckpt_extra_tensor x[][2] = {
        {{"task.mnist.transformer.resblocks.7.mlp.c_proj.weight", 2, {32, 128}, {data}, ST_F32}},
        {{"task.mnist." C_PROJ, 2, {128, 32}, {data}, ST_F32}},
        {{"task.mnist.proj", 1, {32}, {data}, ST_F32}},
        {{"task.nosuch.proj", 2, {32, 32}, {data}, ST_F32}},
        {{"task.mnist.head.weight", 2, {10, 32}, {data}, ST_F32}},
        {{"task.mnist.head.weight", 2, {5, 32}, {data}, ST_F32}, {"task.mnist.head.bias", 1, {5}, {data}, ST_F32}},
        {{"task.mnist.proj", 2, {32, 32}, {nan_data}, ST_F32}},
    };
    struct {
        int n, status;
        const char *phrase;
    } want[] = {
        {1, 2, "'transformer.resblocks.7.mlp.c_proj.weight' is neither head.weight/head.bias, scale, mask.<tensor>, surgery.down/up nor a tensor of the architecture"},
        {1, 2, "tensor task.mnist." C_PROJ " has shape [128,32], expected [32,128]"},
        {1, 2, "tensor task.mnist.proj has shape [32], expected [32,32]"},
        {1, 2, "tensor task.nosuch.proj names no task of suite tiny"},
        {1, 2, "tensor task.mnist.head.weight without task.mnist.head.bias"},
        {2, 2, "tensor task.mnist.head.bias has shape [5], expected [10]"},
        {1, 3, "tensor task.mnist.proj holds NaN at [17]"},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        char file[64];
        snprintf(file, sizeof file, "bad%zu.safetensors", i);
        expect_bad_extra(d, file, x[i], want[i].n, want[i].status, want[i].phrase);
    }
    tu_rm_tree(d);
}
