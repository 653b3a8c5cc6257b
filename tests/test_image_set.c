/* test_image_set.c — image folders and manifests as data (data/image_list.h, data/image_set.h)
 * and as suite sources of kind images (data/suite_spec.h, data/source.h).
 *
 * The pixels themselves are proven equal to Pillow + torchvision by tests/image_equivalence.py;
 * here the order (ImageFolder's), the labels, the CHW layout, the thread independence, the
 * errors and the suite-file plumbing are checked, on the tiny images of fuzz/corpus/image. */
#include <criterion/criterion.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/clip_preprocess.h"
#include "data/image.h"
#include "data/image_list.h"
#include "data/image_set.h"
#include "data/source.h"
#include "data/suite_spec.h"
#include "tests/testutil.h"

#define CORPUS TTMERGE_SOURCE_DIR "/fuzz/corpus/image/"

static void copy_file(const char *from, const char *to) {
    char *buf = NULL;
    FILE *f = fopen(from, "rb");
    cr_assert_not_null(f, "cannot open %s", from);
    cr_assert_eq(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    rewind(f);
    buf = malloc((size_t)n + 1);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    FILE *g = fopen(to, "wb");
    cr_assert_not_null(g, "cannot create %s", to);
    cr_assert_eq(fwrite(buf, 1, (size_t)n, g), (size_t)n);
    cr_assert_eq(fclose(g), 0);
    free(buf);
}

/* ROOT/b/{cmyk.jpg, palette.PNG, notes.txt, sub/rgba.png}, ROOT/a/{rgb.png, grey.jpg}, ROOT/x.jpg
 * (a file at the top: not a class). In ImageFolder order: */
static const char *ORDER[5] = {"a/grey.jpg", "a/rgb.png", "b/cmyk.jpg", "b/palette.PNG", "b/sub/rgba.png"};
static const char *SOURCE_OF[5] = {"grey.jpg", "rgb.png", "cmyk.jpg", "palette.png", "rgba.png"};
static const int LABEL_OF[5] = {0, 0, 1, 1, 1};

static const char *make_folder(void) {
    static char root[600]; /* tu_tmpdir's buffer is reused by its next call */
    snprintf(root, sizeof root, "%s", tu_tmpdir("imgfolder"));
    char p[700], q[700];
    static const char *dirs[] = {"a", "b", "b/sub"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", root, dirs[i]);
        cr_assert_eq(mkdir(p, 0755), 0, "mkdir %s", p);
    }
    for (int i = 4; i >= 0; i--) { /* created out of order on purpose */
        snprintf(p, sizeof p, "%s%s", CORPUS, SOURCE_OF[i]);
        snprintf(q, sizeof q, "%s/%s", root, ORDER[i]);
        copy_file(p, q);
    }
    snprintf(p, sizeof p, "%s/b/notes.txt", root);
    copy_file(CORPUS "rgb.png", p); /* right bytes, wrong extension: not listed */
    snprintf(p, sizeof p, "%s/x.jpg", root);
    copy_file(CORPUS "grey.jpg", p);
    return root;
}

/* What image i must hold at size S: the library's decode + resize + crop, transposed to CHW. */
static void expected_chw(const char *path, int size, uint8_t *chw) {
    img_rgb im = {0};
    tt_err e = {0};
    cr_assert_eq(img_read_file(path, IMG_MAX_PIXELS, &im, &e), 0, "%s", e.msg);
    uint8_t *hwc = malloc((size_t)size * size * 3);
    cr_assert_eq(clipp_resize_crop(&im, size, hwc, &e), 0, "%s", e.msg);
    for (int p = 0; p < size * size; p++)
        for (int c = 0; c < 3; c++) chw[c * size * size + p] = hwc[3 * p + c];
    free(hwc);
    img_rgb_free(&im);
}

Test(image_list, folder_order_labels_and_classes_are_imagefolders) {
    const char *root = make_folder();
    imls_list l = {0};
    tt_err e = {0};
    cr_assert_eq(imls_open(root, NULL, &l, &e), 0, "%s", e.msg);
    cr_assert_eq(l.n, 5);
    cr_assert_eq(l.n_classes, 2);
    cr_assert_str_eq(l.classes[0], "a");
    cr_assert_str_eq(l.classes[1], "b");
    for (int i = 0; i < 5; i++) {
        char want[700];
        snprintf(want, sizeof want, "%s/%s", root, ORDER[i]);
        cr_assert_str_eq(l.paths[i], want);
        cr_assert_eq(l.labels[i], LABEL_OF[i]);
    }
    imls_free(&l);
}

Test(image_set, pixels_are_chw_crops_in_order_for_any_thread_count) {
    const char *root = make_folder();
    ds_images one = {0}, two = {0};
    tt_err e = {0};
    omp_set_num_threads(1);
    cr_assert_eq(imset_load(root, 12, &one, &e), 0, "%s", e.msg);
    omp_set_num_threads(2);
    cr_assert_eq(imset_load(root, 12, &two, &e), 0, "%s", e.msg);
    cr_assert_eq(one.n, 5);
    cr_assert_eq(one.channels, 3);
    cr_assert_eq(one.height, 12);
    cr_assert_eq(one.width, 12);
    cr_assert_eq(memcmp(one.pixels, two.pixels, 5 * ds_image_size(&one)), 0, "1 and 2 threads differ");
    uint8_t want[3 * 12 * 12];
    for (int i = 0; i < 5; i++) {
        char p[700];
        snprintf(p, sizeof p, "%s/%s", root, ORDER[i]);
        expected_chw(p, 12, want);
        cr_assert_eq(memcmp(ds_image(&one, i), want, sizeof want), 0, "image %d (%s) differs", i, ORDER[i]);
        cr_assert_eq(one.labels[i], LABEL_OF[i]);
    }
    ds_images_free(&one);
    ds_images_free(&two);
}

Test(image_set, manifest_with_class_names_and_split) {
    const char *root = make_folder();
    char man[700];
    snprintf(man, sizeof man, "%s/m.csv", root);
    FILE *f = fopen(man, "w");
    cr_assert_not_null(f);
    fprintf(f, "path,label,split\nb/cmyk.jpg,zebra,train\na/rgb.png,ant,test\n\"a/grey.jpg\",zebra,train\n");
    fclose(f);
    imls_list l = {0};
    tt_err e = {0};
    cr_assert_eq(imls_manifest(man, "train", &l, &e), 0, "%s", e.msg);
    cr_assert_eq(l.n, 2);
    cr_assert_eq(l.n_classes, 2); /* ant = 0, zebra = 1 over all rows */
    cr_assert_eq(l.labels[0], 1);
    cr_assert_eq(l.labels[1], 1);
    char want[700];
    snprintf(want, sizeof want, "%s/a/grey.jpg", root);
    cr_assert_str_eq(l.paths[1], want);
    imls_free(&l);
    cr_assert_eq(imls_manifest(man, "val", &l, &e), -1);
    cr_assert_not_null(strstr(e.msg, "no row of split 'val'"), "%s", e.msg);
}

Test(image_set, a_truncated_image_fails_the_load_naming_it) {
    const char *root = make_folder();
    char p[700];
    snprintf(p, sizeof p, "%s/b/zz.jpg", root);
    copy_file(CORPUS "rgb_q75_truncated.jpg", p);
    ds_images im = {0};
    tt_err e = {0};
    cr_assert_eq(imset_load(root, 8, &im, &e), -1);
    cr_assert_null(im.pixels);
    cr_assert_eq(e.code, TT_EINPUT);
    cr_assert_eq(strncmp(e.msg, p, strlen(p)), 0, "%s", e.msg);
    cr_assert_not_null(strstr(e.msg, "truncated JPEG"), "%s", e.msg);
    cr_assert_null(strchr(e.msg, '\n'));
}

Test(image_set, empty_class_and_no_class_are_errors) {
    const char *root = make_folder();
    char p[700];
    snprintf(p, sizeof p, "%s/c", root);
    cr_assert_eq(mkdir(p, 0755), 0);
    imls_list l = {0};
    tt_err e = {0};
    cr_assert_eq(imls_folder(root, &l, &e), -1);
    cr_assert_not_null(strstr(e.msg, "/c: class directory without any image file"), "%s", e.msg);
    cr_assert_eq(imls_folder(p, &l, &e), -1);
    cr_assert_not_null(strstr(e.msg, "no class directories"), "%s", e.msg);
}

/* ---------------------------------------------------------------- suite source kind images */

static int load_spec(const char *text, suite_spec *s, tt_err *e) {
    const char *dir = tu_tmpdir("imgspec");
    char path[700];
    snprintf(path, sizeof path, "%s/s.yaml", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
    return suite_spec_load(path, NULL, s, e);
}

#define ARCH3 "arch: {image_size: 12, channels: 3, patch_size: 4, width: 16, heads: 2, output_dim: 8}\n"

Test(image_set, suite_source_kind_images_parses_loads_and_splits) {
    const char *root = make_folder();
    char text[2000];
    snprintf(text, sizeof text,
             "sources:\n  - {name: pics, kind: images, path: %s, classes: 2, pool: 1, train: 2, val: 1, test: 1}\n" ARCH3
             "tasks: [{name: pics, source: pics}]\n",
             root);
    suite_spec s, back;
    tt_err e = {0};
    cr_assert_eq(load_spec(text, &s, &e), 0, "%s", e.msg);
    cr_assert_str_eq(s.sources[0].kind, "images");
    cr_assert_str_eq(s.sources[0].path, root);
    cr_assert(!source_has_test_file(&s.sources[0]));
    char *json = suite_spec_to_json(&s);
    cr_assert_not_null(json);
    cr_assert_eq(load_spec(json, &back, &e), 0, "%s\n%s", e.msg, json);
    cr_assert_eq(memcmp(&s, &back, sizeof s), 0, "JSON round trip differs:\n%s", json);
    free(json);

    source_split sp = {0};
    cr_assert_eq(source_load_split(&s.sources[0], s.seed, NULL, 12, 3, &sp, &e), 0, "%s", e.msg);
    cr_assert_eq(sp.pool.n + sp.train.n + sp.val.n + sp.test.n, 5);
    cr_assert_eq(sp.train.channels, 3);
    cr_assert_eq(sp.train.height, 12);
    /* every split image is the folder's image at its index */
    uint8_t want[3 * 12 * 12];
    for (int i = 0; i < sp.train.n; i++) {
        char p[700];
        snprintf(p, sizeof p, "%s/%s", root, ORDER[sp.train_idx[i]]);
        expected_chw(p, 12, want);
        cr_assert_eq(memcmp(ds_image(&sp.train, i), want, sizeof want), 0, "train image %d", i);
        cr_assert_eq(sp.train.labels[i], LABEL_OF[sp.train_idx[i]]);
    }
    source_split_free(&sp);
}

Test(image_set, suite_source_kind_images_errors) {
    suite_spec s;
    tt_err e = {0};
    cr_assert_eq(load_spec("sources:\n  - {name: p, kind: images, path: /x, classes: 2, pool: 0, train: 1, val: 1, "
                           "test: 1}\ntasks: [{name: p, source: p}]\n",
                           &s, &e),
                 -1);
    cr_assert_not_null(strstr(e.msg, "arch.channels must be 3"), "%s", e.msg);
    cr_assert_eq(load_spec("sources:\n  - {name: p, kind: images, classes: 2, pool: 0, train: 1, val: 1, test: 1}\n" ARCH3
                           "tasks: [{name: p, source: p}]\n",
                           &s, &e),
                 -1);
    cr_assert_not_null(strstr(e.msg, "kind images needs path"), "%s", e.msg);
    cr_assert_eq(load_spec("sources:\n  - {name: p, kind: images, path: /x, shape: [2, 2], classes: 2, pool: 0, "
                           "train: 1, val: 1, test: 1}\n" ARCH3 "tasks: [{name: p, source: p}]\n",
                           &s, &e),
                 -1);
    cr_assert_not_null(strstr(e.msg, "'shape' is only for kind csv"), "%s", e.msg);
    cr_assert_eq(load_spec("sources:\n  - {name: p, kind: images, path: /x, pool: 0, train: 1, val: 1, test: 1}\n" ARCH3
                           "tasks: [{name: p, source: p}]\n",
                           &s, &e),
                 -1);
    cr_assert_not_null(strstr(e.msg, "(kind images) needs 'classes'"), "%s", e.msg);
    cr_assert_eq(load_spec("sources:\n  - {name: fashion-mnist, path: /x}\n"
                           "tasks: [{name: p, source: fashion-mnist}]\n",
                           &s, &e),
                 -1);
    cr_assert_not_null(strstr(e.msg, "'path' is only for kinds csv and images"), "%s", e.msg);
}
