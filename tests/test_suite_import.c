/* test_suite_import.c — imported suite files (data/suite_spec.h "Imported suites"): the shipped
 * CLIP recipes parse with their task lists, ${VAR} expansion and its errors, what an imported
 * file may and may not hold, the JSON round trip, the normalisation taken from a model's
 * config (data/suite_import.h), and the published goldens (reports/golden/published/) read as
 * goldens with `average` rows — which plain results files refuse. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/clip_preprocess.h"
#include "data/suite_import.h"
#include "data/suite_spec.h"
#include "reports/results.h"
#include "tests/testutil.h"

#define SUITES_DIR TTMERGE_SOURCE_DIR "/suites"

static void write_text(const char *path, const char *s) {
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot create %s", path);
    cr_assert_eq(fwrite(s, 1, strlen(s), f), strlen(s));
    cr_assert_eq(fclose(f), 0);
}

static int load_text(const char *fname, const char *text, suite_spec *out, tt_err *e, char *path, size_t cap) {
    const char *dir = tu_tmpdir("import");
    cr_assert_not_null(dir);
    snprintf(path, cap, "%s/%s", dir, fname);
    write_text(path, text);
    return suite_spec_load(path, NULL, out, e);
}

static void expect_error(const char *fname, const char *text, const char *needle) {
    static suite_spec s;
    tt_err e = {0};
    char path[600];
    int rc = load_text(fname, text, &s, &e, path, sizeof path);
    cr_assert_eq(rc, -1, "%s: accepted, expected an error containing '%s'", fname, needle);
    cr_assert_eq(e.code, TT_EINPUT, "%s: code %d (%s)", fname, e.code, e.msg);
    cr_assert_null(strchr(e.msg, '\n'), "%s: several lines: %s", fname, e.msg);
    cr_assert_eq(strncmp(e.msg, path, strlen(path)), 0, "%s: message does not start with the path: %s", fname, e.msg);
    cr_assert_not_null(strstr(e.msg, needle), "%s: expected '%s' in: %s", fname, needle, e.msg);
}

#define TASK_OK                                                                                                        \
    "  - name: a\n"                                                                                                    \
    "    finetuned: /m/a\n"                                                                                            \
    "    head: /m/ha.safetensors\n"                                                                                    \
    "    data: {test: /d/a/test, train: /d/a/train}\n"

static void set_roots(void) {
    setenv("TTMERGE_MODELS", "/models", 1);
    setenv("TTMERGE_DATA", "/data", 1);
}

Test(suite_import, recipes_parse_with_their_tasks) {
    set_roots();
    static const struct {
        const char *name;
        int n;
        const char *last;
    } recipes[] = {{"clip-vit-b32-ta8", 8, "dtd"},
                   {"clip-vit-b16-ta8", 8, "dtd"},
                   {"clip-vit-l14-ta8", 8, "dtd"},
                   {"clip-vit-b32-tall14", 14, "cifar100"},
                   {"clip-vit-b32-tall20", 20, "rendered-sst2"}};
    for (size_t i = 0; i < sizeof recipes / sizeof *recipes; i++) {
        static suite_spec s;
        tt_err e = {0};
        cr_assert_eq(suite_spec_load(recipes[i].name, SUITES_DIR, &s, &e), 0, "%s: %s", recipes[i].name, e.msg);
        cr_assert(s.import.on);
        cr_assert_eq(s.n_tasks, recipes[i].n, "%s: %d tasks", recipes[i].name, s.n_tasks);
        cr_assert_str_eq(s.tasks[0].name, "sun397");
        cr_assert_str_eq(s.tasks[7].name, "dtd");
        cr_assert_str_eq(s.tasks[s.n_tasks - 1].name, recipes[i].last);
        cr_assert_eq(strncmp(s.import.pretrained, "/models/ViT-", 12), 0, "%s", s.import.pretrained);
        cr_assert_str_eq(s.import.tasks[0].train, "/data/sun397/train");
        cr_assert_str_eq(s.import.normalize, "model");
        cr_assert_eq(s.tasks[0].train, SUITE_IMPORT_TRAIN_DEFAULT);
        /* every published golden of a recipe reads as a golden, for that suite */
        char g[600];
        snprintf(g, sizeof g, "%s/reports/golden/published/%s.csv", TTMERGE_SOURCE_DIR, recipes[i].name);
        FILE *f = fopen(g, "rb");
        if (!f) continue; /* no sourced numbers for this recipe */
        fclose(f);
        results_table t = {0};
        cr_assert_eq(results_read_golden(g, &t, &e), 0, "%s", e.msg);
        cr_assert_gt(t.n, 0);
        size_t n_average = 0;
        for (size_t r = 0; r < t.n; r++) {
            cr_assert_str_eq(t.rows[r].suite, recipes[i].name);
            bool known = !strcmp(t.rows[r].task, "average");
            n_average += known;
            for (int k = 0; k < s.n_tasks; k++) known |= !strcmp(t.rows[r].task, s.tasks[k].name);
            cr_assert(known, "%s: task %s is not one of the recipe's", g, t.rows[r].task);
            cr_assert_not_null(strstr(t.rows[r].params, "\"source\""), "%s: row %zu names no source", g, r);
        }
        results_free(&t);
        if (n_average == 0) continue; /* per-task rows only: a plain results file as well */
        cr_assert_eq(results_read(g, &t, &e), -1, "%s: a plain results reader must refuse average rows", g);
        cr_assert_not_null(strstr(e.msg, "average"));
    }
}

Test(suite_import, expands_variables_and_round_trips) {
    setenv("TTMERGE_MODELS", "/mm", 1);
    static suite_spec s, b;
    tt_err e = {0};
    char path[600];
    const char *text = "name: x\nseed: 4\nimport:\n  pretrained: ${TTMERGE_MODELS}/pre\n  preprocess: clip:224\n"
                       "  normalize: {mean: [0.1, 0.2, 0.3], std: [0.4, 0.5, 0.6]}\n  val_max: 100\n"
                       "tasks:\n  - name: a\n    finetuned: ${TTMERGE_MODELS}/a${TTMERGE_MODELS}\n"
                       "    head: {text: {classes: c.txt, templates: t.txt}}\n"
                       "    data: {test: /d/t, train: /d/tr, val: /d/v}\n    test: 50\n    train: 0\n";
    cr_assert_eq(load_text("x.yaml", text, &s, &e, path, sizeof path), 0, "%s", e.msg);
    cr_assert_str_eq(s.import.pretrained, "/mm/pre");
    cr_assert_str_eq(s.import.tasks[0].finetuned, "/mm/a/mm");
    cr_assert_str_eq(s.import.tasks[0].text_classes, "c.txt");
    cr_assert_eq(s.import.tasks[0].head[0], 0);
    cr_assert_eq(s.import.preprocess_size, 224);
    cr_assert_str_eq(s.import.normalize, "given");
    cr_assert_float_eq(s.import.std[2], 0.6f, 1e-7);
    cr_assert_eq(s.tasks[0].test, 50);
    cr_assert_eq(s.tasks[0].train, 0);
    char *json = suite_spec_to_json(&s);
    cr_assert_not_null(json);
    cr_assert_eq(load_text("x.json", json, &b, &e, path, sizeof path), 0, "%s\n%s", e.msg, json);
    cr_assert_eq(memcmp(&s, &b, sizeof s), 0, "JSON round trip differs:\n%s", json);
    free(json);
}

Test(suite_import, bad_files) {
    set_roots();
    unsetenv("TTMERGE_NOPE");
    expect_error("v.yaml", "import:\n  pretrained: ${TTMERGE_NOPE}/p\ntasks:\n" TASK_OK, "${TTMERGE_NOPE} is not set");
    expect_error("u.yaml", "import:\n  pretrained: ${TTMERGE_MODELS/p\ntasks:\n" TASK_OK, "without a closing");
    expect_error("a.yaml", "import: {pretrained: /p}\narch: {width: 64}\ntasks:\n" TASK_OK, "'arch' belongs to a trained suite");
    expect_error("s.yaml", "import: {pretrained: /p}\ntasks:\n" TASK_OK "    source: mnist\n", "has no source");
    expect_error("t.yaml", "import: {pretrained: /p}\ntasks:\n" TASK_OK "    transforms: [invert]\n", "no transforms");
    expect_error("m.yaml", "import: {pretrained: /p}\ntasks:\n  - name: a\n    finetuned: /f\n    head: /h\n"
                           "    data: {test: /t}\n", "needs data.train");
    expect_error("h.yaml", "import: {pretrained: /p}\ntasks:\n  - name: a\n    finetuned: /f\n"
                           "    data: {test: /t, train: /r}\n", "needs head");
    expect_error("n.yaml", "import: {pretrained: /p, normalize: imagenet}\ntasks:\n" TASK_OK, "import.normalize must be");
    expect_error("c.yaml", "import: {pretrained: /p, normalize: {mean: [0.5, 0.5], std: [1, 1, 1]}}\ntasks:\n" TASK_OK,
                 "list of 3 numbers");
    expect_error("p.yaml", "import: {pretrained: /p, preprocess: clip:0}\ntasks:\n" TASK_OK, "clip:SIZE");
    expect_error("f.yaml", "import: {pretrained: /p, val_fraction: 1.5}\ntasks:\n" TASK_OK, "val_fraction");
    expect_error("q.yaml", "import: {preprocess: clip}\ntasks:\n" TASK_OK, "import needs the pretrained");
    expect_error("k.yaml", "name: k\nsources: [{name: mnist}]\ntasks:\n  - {name: a, source: mnist, finetuned: /f}\n",
                 "is for imported suites");
    expect_error("x.yaml", "import: {pretrained: /p}\ntasks:\n" TASK_OK "    head2: /h\n", "unknown key 'head2'");
}

/* normalize: model reads the checkpoint's own config, HF's first, then open_clip's; else CLIP's */
Test(suite_import, normalisation_from_the_model_config) {
    const char *dir = tu_tmpdir("norm");
    char p[600], src[700];
    suite_import im = {.on = true};
    snprintf(im.normalize, sizeof im.normalize, "model");
    float mean[3], std[3];
    tt_err e = {0};
    cr_assert_eq(suite_import_norm(&im, dir, mean, std, src, sizeof src, &e), 0, "%s", e.msg);
    cr_assert_str_eq(src, "clip");
    cr_assert_eq(memcmp(mean, clipp_mean, sizeof mean), 0);
    snprintf(p, sizeof p, "%s/open_clip_config.json", dir);
    write_text(p, "{\"model_cfg\": {}, \"preprocess_cfg\": {\"mean\": [0.5, 0.5, 0.5], \"std\": [0.25, 0.5, 1]}}");
    cr_assert_eq(suite_import_norm(&im, dir, mean, std, src, sizeof src, &e), 0, "%s", e.msg);
    cr_assert_eq(std[0], 0.25f);
    cr_assert_eq(std[2], 1.0f);
    snprintf(p, sizeof p, "%s/preprocessor_config.json", dir);
    write_text(p, "{\"image_mean\": [0.1, 0.2, 0.3], \"image_std\": [0.3, 0.2, 0.1]}");
    snprintf(p, sizeof p, "%s/model.safetensors", dir); /* a file: its directory's configs */
    write_text(p, "x");
    cr_assert_eq(suite_import_norm(&im, p, mean, std, src, sizeof src, &e), 0, "%s", e.msg);
    cr_assert_eq(mean[1], 0.2f);
    cr_assert_not_null(strstr(src, "preprocessor_config.json"));
    snprintf(p, sizeof p, "%s/preprocessor_config.json", dir);
    write_text(p, "{\"image_mean\": [0.1, 0.2], \"image_std\": [0.3, 0.2, 0.1]}");
    cr_assert_eq(suite_import_norm(&im, dir, mean, std, src, sizeof src, &e), -1);
    cr_assert_not_null(strstr(e.msg, "image_mean must be a list of 3 numbers"), "%s", e.msg);
    snprintf(im.normalize, sizeof im.normalize, "clip");
    cr_assert_eq(suite_import_norm(&im, dir, mean, std, src, sizeof src, &e), 0);
    cr_assert_eq(memcmp(std, clipp_std, sizeof std), 0);
}
