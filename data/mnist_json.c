#include "data/mnist_json.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int mnistjson_read_file(const char *path, uint8_t **pixels, int *n, tt_err *err) {
    *pixels = NULL;
    *n = 0;
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root) {
        enum json_error_code c = json_error_code(&jerr);
        if (c == json_error_cannot_open_file) return tt_fail(err, TT_EIO, "%s: %s", path, jerr.text);
        if (c == json_error_out_of_memory) return tt_fail(err, TT_ENOMEM, "%s: out of memory", path);
        return tt_fail(err, TT_EINPUT, "%s: invalid JSON at line %d, column %d: %s", path,
                       jerr.line, jerr.column, jerr.text);
    }
    int rc = -1;
    uint8_t *px = NULL;
    if (!json_is_object(root)) {
        tt_fail(err, TT_EINPUT, "%s: expected a JSON object {\"data\": [...]} at the top level",
                path);
        goto done;
    }
    json_t *data = json_object_get(root, "data");
    if (!data) {
        tt_fail(err, TT_EINPUT, "%s: no \"data\" member in the top-level object", path);
        goto done;
    }
    if (!json_is_array(data)) {
        tt_fail(err, TT_EINPUT, "%s: \"data\" is not an array", path);
        goto done;
    }
    size_t len = json_array_size(data);
    if (len == 0 || len % MNISTJSON_PIXELS != 0) {
        tt_fail(err, TT_EINPUT,
                "%s: \"data\" has %zu values, not a positive multiple of %d (28x28 per sample)",
                path, len, MNISTJSON_PIXELS);
        goto done;
    }
    size_t count = len / MNISTJSON_PIXELS;
    if (count > (size_t)DS_MAX_N) {
        tt_fail(err, TT_EINPUT, "%s: %zu samples exceed the limit %d", path, count, DS_MAX_N);
        goto done;
    }
    px = malloc(len);
    if (!px) {
        tt_fail(err, TT_ENOMEM, "%s: out of memory for %zu pixels", path, len);
        goto done;
    }
    for (size_t i = 0; i < len; i++) {
        json_t *v = json_array_get(data, i);
        if (!json_is_number(v)) {
            tt_fail(err, TT_EINPUT, "%s: data[%zu] (sample %zu, pixel %zu) is not a number", path,
                    i, i / MNISTJSON_PIXELS, i % MNISTJSON_PIXELS);
            goto done;
        }
        double x = json_number_value(v);
        if (!(x >= 0.0 && x <= 1.0)) {
            tt_fail(err, TT_EINPUT,
                    "%s: data[%zu] (sample %zu, pixel %zu) is %g, outside [0, 1]", path, i,
                    i / MNISTJSON_PIXELS, i % MNISTJSON_PIXELS, x);
            goto done;
        }
        px[i] = (uint8_t)floor(x * 255.0 + 0.5);
    }
    *pixels = px;
    *n = (int)count;
    px = NULL;
    rc = 0;
done:
    free(px);
    json_decref(root);
    return rc;
}

int mnistjson_read_dir(const char *digits_dir, ds_images *out, tt_err *err) {
    memset(out, 0, sizeof *out);
    uint8_t *px[10] = {0};
    int cnt[10] = {0};
    int rc = -1;
    size_t total = 0;
    for (int d = 0; d < 10; d++) {
        char path[4096];
        int m = snprintf(path, sizeof path, "%s/%d.json", digits_dir, d);
        if (m < 0 || (size_t)m >= sizeof path) {
            tt_fail(err, TT_EINPUT, "%s: directory path too long", digits_dir);
            goto done;
        }
        if (mnistjson_read_file(path, &px[d], &cnt[d], err) != 0) goto done;
        total += (size_t)cnt[d];
    }
    if (total > (size_t)DS_MAX_N) {
        tt_fail(err, TT_EINPUT, "%s: %zu samples exceed the limit %d", digits_dir, total, DS_MAX_N);
        goto done;
    }
    if (ds_images_alloc(out, (int)total, 1, MNISTJSON_SIDE, MNISTJSON_SIDE, true, err) != 0) {
        tt_prefix(err, "%s: ", digits_dir);
        goto done;
    }
    size_t at = 0;
    for (int d = 0; d < 10; d++) {
        memcpy(out->pixels + at * MNISTJSON_PIXELS, px[d], (size_t)cnt[d] * MNISTJSON_PIXELS);
        for (int i = 0; i < cnt[d]; i++) out->labels[at + (size_t)i] = d;
        at += (size_t)cnt[d];
    }
    rc = 0;
done:
    for (int d = 0; d < 10; d++) free(px[d]);
    return rc;
}
