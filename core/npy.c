/* npy.c — see npy.h. Format: numpy/lib/format.py (NEP 1); header dict as numpy writes it. */
#include "core/npy.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "npy.c assumes a little-endian host"
#endif

#define NPY_ALIGN 64
#define NPY_MAX_HEADER (1u << 20) /* a dict for <= 8 dims is < 300 bytes; bound hostile files */

/* prod(shape) with overflow checks against SIZE_MAX/4 (bytes must fit size_t). */
static int numel_(int ndim, const int64_t *shape, size_t *out) {
    size_t n = 1;
    int zero = 0;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return -1;
        if (shape[i] == 0) zero = 1;
    }
    for (int i = 0; !zero && i < ndim; i++) {
        if ((uint64_t)shape[i] > (SIZE_MAX / sizeof(float)) / n) return -1;
        n *= (size_t)shape[i];
    }
    *out = zero ? 0 : n;
    return 0;
}

size_t npy_header(char *buf, size_t cap, const char *descr, int ndim, const int64_t *shape, size_t min_len) {
    if (ndim < 0 || ndim > NPY_MAX_DIMS) return 0;
    /* 10-byte prefix + dict + spaces + '\n' = a multiple of 64 (and at least min_len) */
    char dict[512];
    int k = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
    for (int i = 0; i < ndim; i++)
        k += snprintf(dict + k, sizeof dict - (size_t)k, i ? ", %" PRId64 : "%" PRId64, shape[i]);
    k += snprintf(dict + k, sizeof dict - (size_t)k, ndim == 1 ? ",), }" : "), }");
    if (k <= 0 || (size_t)k >= sizeof dict) return 0;
    size_t total = (10 + (size_t)k + 1 + NPY_ALIGN - 1) / NPY_ALIGN * NPY_ALIGN;
    if (min_len > total) total = (min_len + NPY_ALIGN - 1) / NPY_ALIGN * NPY_ALIGN;
    size_t hlen = total - 10;
    if (total > cap || hlen > 0xffff) return 0;
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hlen & 0xff),
                             (unsigned char)(hlen >> 8)};
    memcpy(buf, pre, sizeof pre);
    memcpy(buf + 10, dict, (size_t)k);
    memset(buf + 10 + k, ' ', hlen - 1 - (size_t)k);
    buf[total - 1] = '\n';
    return total;
}

static int write_(const char *path, const char *descr, size_t elem, int ndim, const int64_t *shape, const void *data,
                  tt_err *err) {
    if (ndim < 0 || ndim > NPY_MAX_DIMS)
        return tt_fail(err, TT_EINPUT, "%s: cannot write %d dims (0..%d)", path, ndim, NPY_MAX_DIMS);
    size_t n;
    if (numel_(ndim, shape, &n) || (n && n > SIZE_MAX / elem))
        return tt_fail(err, TT_EINPUT, "%s: bad or overflowing shape", path);
    char hdr[1024];
    size_t hl = npy_header(hdr, sizeof hdr, descr, ndim, shape, 0);
    TT_ASSERT(hl > 0);
    fio_file f;
    if (fio_open_atomic(&f, path, err)) return -1;
    if (fio_write(&f, hdr, hl, err) || fio_write(&f, data, n * elem, err)) {
        fio_abort(&f);
        return -1;
    }
    return fio_commit(&f, err);
}

int npy_write_f32(const char *path, int ndim, const int64_t *shape, const float *data, tt_err *err) {
    return write_(path, "<f4", sizeof(float), ndim, shape, data, err);
}

int npy_write_i64(const char *path, int ndim, const int64_t *shape, const int64_t *data, tt_err *err) {
    return write_(path, "<i8", sizeof(int64_t), ndim, shape, data, err);
}

/* ---- reading: a small parser for the literal numpy writes ------------------------------- */

typedef struct hdr_parse {
    const char *p, *end;
} hdr_parse;

static void skip_ws_(hdr_parse *h) {
    while (h->p < h->end && isspace((unsigned char)*h->p)) h->p++;
}

static int eat_(hdr_parse *h, char c) {
    skip_ws_(h);
    if (h->p < h->end && *h->p == c) {
        h->p++;
        return 1;
    }
    return 0;
}

/* A quoted string ('x' or "x", no escapes) into buf. */
static int str_(hdr_parse *h, char *buf, size_t cap) {
    skip_ws_(h);
    if (h->p >= h->end || (*h->p != '\'' && *h->p != '"')) return -1;
    char q = *h->p++;
    size_t n = 0;
    while (h->p < h->end && *h->p != q) {
        if (*h->p == '\\' || n + 1 >= cap) return -1;
        buf[n++] = *h->p++;
    }
    if (h->p >= h->end) return -1;
    h->p++;
    buf[n] = 0;
    return 0;
}

static int word_(hdr_parse *h, const char *w) {
    skip_ws_(h);
    size_t n = strlen(w);
    if ((size_t)(h->end - h->p) < n || memcmp(h->p, w, n) != 0) return 0;
    h->p += n;
    return 1;
}

static int shape_(hdr_parse *h, int *ndim, int64_t *shape) {
    if (!eat_(h, '(')) return -1;
    int nd = 0;
    for (;;) {
        if (eat_(h, ')')) break;
        if (nd == NPY_MAX_DIMS) return -1;
        skip_ws_(h);
        int64_t v = 0;
        int digits = 0;
        while (h->p < h->end && isdigit((unsigned char)*h->p)) {
            int d = *h->p++ - '0';
            if (v > (INT64_MAX - d) / 10) return -1;
            v = v * 10 + d;
            digits++;
        }
        if (!digits) return -1;
        while (word_(h, "L")) {} /* python 2 longs */
        shape[nd++] = v;
        if (eat_(h, ',')) continue;
        if (!eat_(h, ')')) return -1;
        break;
    }
    *ndim = nd;
    return 0;
}

static int parse_dict_(const char *s, size_t len, int *ndim, int64_t *shape, const char **why) {
    hdr_parse h = {s, s + len};
    int got_descr = 0, got_order = 0, got_shape = 0;
    char key[32], val[32];
    *why = "header is not a Python dict literal";
    if (!eat_(&h, '{')) return -1;
    while (!eat_(&h, '}')) {
        if (str_(&h, key, sizeof key) || !eat_(&h, ':')) return -1;
        if (strcmp(key, "descr") == 0) {
            if (str_(&h, val, sizeof val)) return -1;
            if (strcmp(val, "<f4") != 0) {
                *why = "dtype is not '<f4' (little-endian float32)";
                return -1;
            }
            got_descr = 1;
        } else if (strcmp(key, "fortran_order") == 0) {
            if (word_(&h, "True")) {
                *why = "fortran_order arrays are not supported";
                return -1;
            }
            if (!word_(&h, "False")) return -1;
            got_order = 1;
        } else if (strcmp(key, "shape") == 0) {
            if (shape_(&h, ndim, shape)) {
                *why = "bad shape (at most 8 non-negative dims)";
                return -1;
            }
            got_shape = 1;
        } else {
            *why = "unexpected key in header dict";
            return -1;
        }
        if (!eat_(&h, ',')) {
            if (!eat_(&h, '}')) return -1;
            break;
        }
    }
    skip_ws_(&h);
    if (h.p != h.end) return -1;
    if (!got_descr || !got_order || !got_shape) {
        *why = "header dict lacks descr, fortran_order or shape";
        return -1;
    }
    return 0;
}

int npy_read_f32(const char *path, int *ndim, int64_t shape[NPY_MAX_DIMS], float **data, tt_err *err) {
    *data = NULL;
    *ndim = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) return tt_fail(err, TT_EIO, "%s: cannot open: %s", path, strerror(errno));
    unsigned char pre[12];
    char *hdr = NULL;
    float *x = NULL;
    size_t hlen;
    if (fread(pre, 1, 10, fp) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0) {
        tt_fail(err, TT_EINPUT, "%s: not a .npy file (bad magic)", path);
        goto fail;
    }
    if (pre[6] == 1) {
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8;
    } else if (pre[6] == 2 || pre[6] == 3) {
        if (fread(pre + 10, 1, 2, fp) != 2) {
            tt_fail(err, TT_EINPUT, "%s: truncated header", path);
            goto fail;
        }
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
    } else {
        tt_fail(err, TT_EINPUT, "%s: unsupported .npy version %d.%d", path, pre[6], pre[7]);
        goto fail;
    }
    if (hlen > NPY_MAX_HEADER) {
        tt_fail(err, TT_EINPUT, "%s: header length %zu is over the limit", path, hlen);
        goto fail;
    }
    hdr = malloc(hlen + 1);
    if (!hdr) {
        tt_fail(err, TT_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    if (fread(hdr, 1, hlen, fp) != hlen) {
        tt_fail(err, TT_EINPUT, "%s: truncated header", path);
        goto fail;
    }
    const char *why;
    if (parse_dict_(hdr, hlen, ndim, shape, &why)) {
        tt_fail(err, TT_EINPUT, "%s: %s", path, why);
        goto fail;
    }
    size_t n;
    if (numel_(*ndim, shape, &n)) {
        tt_fail(err, TT_EINPUT, "%s: shape overflows", path);
        goto fail;
    }
    x = malloc(n ? n * sizeof(float) : 1);
    if (!x) {
        tt_fail(err, TT_ENOMEM, "%s: out of memory for %zu floats", path, n);
        goto fail;
    }
    if (fread(x, sizeof(float), n, fp) != n) {
        tt_fail(err, TT_EINPUT, "%s: data is shorter than the shape says", path);
        goto fail;
    }
    if (fgetc(fp) != EOF) {
        tt_fail(err, TT_EINPUT, "%s: data is longer than the shape says", path);
        goto fail;
    }
    free(hdr);
    fclose(fp);
    *data = x;
    return 0;
fail:
    free(hdr);
    free(x);
    fclose(fp);
    *ndim = 0;
    return -1;
}
