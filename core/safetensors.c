/* safetensors.c — see safetensors.h. The header is parsed by jansson; every number taken from
 * it is range-checked before it is used as a size or an offset (cf. redis lpValidateIntegrity,
 * stb's stbi__mul2sizes_valid). Tensor names and metadata strings stay inside the jansson tree,
 * which lives as long as the st_file. */
#define _POSIX_C_SOURCE 200809L /* mmap, fsync, strdup, O_CLOEXEC, also under -std=c11 */
#include "core/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fileio.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host (data is read and written in host order)"
#endif

struct st_file {
    char *path;               /* copy of the path given to st_open */
    const unsigned char *map; /* whole file, PROT_READ */
    size_t map_size;
    json_t *root;             /* parsed header; owns names and metadata strings */
    const json_t *meta;       /* root["__metadata__"] or NULL */
    st_tensor *t;             /* n tensors sorted by name */
    int n;
};

static const struct {
    const char *name;
    size_t size;
} dtypes_[] = {
    [ST_F32] = {"F32", 4}, [ST_F16] = {"F16", 2}, [ST_BF16] = {"BF16", 2}, [ST_F64] = {"F64", 8},
    [ST_I64] = {"I64", 8}, [ST_I32] = {"I32", 4}, [ST_I16] = {"I16", 2},  [ST_I8] = {"I8", 1},
    [ST_U8] = {"U8", 1},   [ST_BOOL] = {"BOOL", 1},
};
#define N_DTYPES ((int)(sizeof dtypes_ / sizeof dtypes_[0]))

const char *st_dtype_name(st_dtype dt) {
    return (int)dt >= 0 && (int)dt < N_DTYPES ? dtypes_[dt].name : "?";
}

size_t st_dtype_size(st_dtype dt) { return (int)dt >= 0 && (int)dt < N_DTYPES ? dtypes_[dt].size : 0; }

/* ---- message helpers ------------------------------------------------------------------- */

/* A printable, one-line, bounded copy of an untrusted string for error messages: control
 * bytes become '?', and long strings are cut (on a UTF-8 boundary) with "...". */
#define SHOW_CAP 96
static const char *show_(const char *s, char *buf) {
    const size_t keep = SHOW_CAP - 4;
    size_t n = strlen(s), m = n;
    if (n > keep) {
        m = keep;
        while (m > 0 && ((unsigned char)s[m] & 0xC0) == 0x80) m--; /* don't split a code point */
    }
    for (size_t i = 0; i < m; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    if (m < n) {
        memcpy(buf + m, "...", 3);
        m += 3;
    }
    buf[m] = 0;
    return buf;
}

static void fmt_shape_(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t k = 0;
    k += (size_t)snprintf(buf + k, cap - k, "[");
    for (int i = 0; i < ndim && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, i ? ",%" PRId64 : "%" PRId64, shape[i]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
}

/* ---- reading --------------------------------------------------------------------------- */

static int cmp_tensor_name_(const void *a, const void *b) {
    return strcmp(((const st_tensor *)a)->name, ((const st_tensor *)b)->name);
}

/* Order by begin, then end; used only for the overlap check. */
static int cmp_tensor_ptr_begin_(const void *a, const void *b) {
    const st_tensor *x = *(const st_tensor *const *)a, *y = *(const st_tensor *const *)b;
    const unsigned char *px = x->data, *py = y->data;
    if (px != py) return px < py ? -1 : 1;
    return x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes;
}

static int parse_dtype_(const char *s, st_dtype *out) {
    for (int i = 0; i < N_DTYPES; i++)
        if (strcmp(s, dtypes_[i].name) == 0) {
            *out = (st_dtype)i;
            return 0;
        }
    return -1;
}

static int check_metadata_(const char *path, const json_t *meta, tt_err *err) {
    char sb[SHOW_CAP];
    if (!json_is_object(meta)) return tt_fail(err, TT_EINPUT, "%s: __metadata__ is not a JSON object", path);
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)meta, k, v) {
        if (!json_is_string(v))
            return tt_fail(err, TT_EINPUT, "%s: __metadata__ value for key %s is not a string", path,
                           show_(k, sb));
    }
    return 0;
}

/* Validate one header entry and fill t (data pointer relative to the data section start). */
static int parse_entry_(const char *path, const char *name, const json_t *e, const unsigned char *data,
                        size_t data_size, st_tensor *t, tt_err *err) {
    char nb[SHOW_CAP];
    size_t name_len = strlen(name);
    if (name_len == 0) return tt_fail(err, TT_EINPUT, "%s: empty tensor name", path);
    if (name_len > ST_MAX_NAME)
        return tt_fail(err, TT_EINPUT, "%s: tensor name %s is %zu bytes, longer than the limit of %d", path,
                       show_(name, nb), name_len, ST_MAX_NAME);
    const char *nm = show_(name, nb);
    if (!json_is_object(e)) return tt_fail(err, TT_EINPUT, "%s: tensor %s: entry is not a JSON object", path, nm);
    memset(t, 0, sizeof *t);
    t->name = name;

    const char *ds = json_string_value(json_object_get(e, "dtype"));
    if (!ds) return tt_fail(err, TT_EINPUT, "%s: tensor %s: dtype missing or not a string", path, nm);
    if (parse_dtype_(ds, &t->dtype)) {
        char db[SHOW_CAP];
        return tt_fail(err, TT_EINPUT, "%s: tensor %s: unknown dtype %s", path, nm, show_(ds, db));
    }
    size_t esize = dtypes_[t->dtype].size;

    const json_t *sh = json_object_get(e, "shape");
    if (!json_is_array(sh)) return tt_fail(err, TT_EINPUT, "%s: tensor %s: shape missing or not an array", path, nm);
    size_t nd = json_array_size(sh);
    if (nd > ST_MAX_DIMS)
        return tt_fail(err, TT_EINPUT, "%s: tensor %s: shape has %zu dims, more than the limit of %d", path, nm,
                       nd, ST_MAX_DIMS);
    t->ndim = (int)nd;
    int has_zero = 0;
    for (size_t i = 0; i < nd; i++) {
        const json_t *d = json_array_get(sh, i);
        if (!json_is_integer(d))
            return tt_fail(err, TT_EINPUT, "%s: tensor %s: shape[%zu] is not an integer", path, nm, i);
        json_int_t v = json_integer_value(d);
        if (v < 0)
            return tt_fail(err, TT_EINPUT, "%s: tensor %s: shape[%zu] is %" JSON_INTEGER_FORMAT ", a negative dim",
                           path, nm, i, v);
        t->shape[i] = (int64_t)v;
        if (v == 0) has_zero = 1;
    }
    char sb[ST_MAX_DIMS * 22 + 3];
    fmt_shape_(sb, sizeof sb, t->ndim, t->shape);
    /* Element and byte counts with overflow checks; a zero dim makes the product 0 whatever
     * the other dims are. */
    int64_t numel = 1;
    if (has_zero) {
        numel = 0;
    } else {
        for (int i = 0; i < t->ndim; i++) {
            if (t->shape[i] > INT64_MAX / numel)
                return tt_fail(err, TT_EINPUT, "%s: tensor %s: element count of shape %s overflows int64", path,
                               nm, sb);
            numel *= t->shape[i];
        }
    }
    if (numel > INT64_MAX / (int64_t)esize)
        return tt_fail(err, TT_EINPUT, "%s: tensor %s: byte size of shape %s x %s overflows int64", path, nm,
                       sb, ds);
    int64_t need = numel * (int64_t)esize;
    t->numel = numel;

    const json_t *off = json_object_get(e, "data_offsets");
    const json_t *jb = json_array_get(off, 0), *je = json_array_get(off, 1);
    if (!json_is_array(off) || json_array_size(off) != 2 || !json_is_integer(jb) || !json_is_integer(je) ||
        json_integer_value(jb) < 0 || json_integer_value(je) < 0)
        return tt_fail(err, TT_EINPUT, "%s: tensor %s: data_offsets must be [begin, end] with non-negative integers",
                       path, nm);
    int64_t b = (int64_t)json_integer_value(jb), en = (int64_t)json_integer_value(je);
    if (b > en)
        return tt_fail(err, TT_EINPUT, "%s: tensor %s: data_offsets begin %" PRId64 " > end %" PRId64, path, nm, b,
                       en);
    if ((uint64_t)en > (uint64_t)data_size)
        return tt_fail(err, TT_EINPUT,
                       "%s: tensor %s: data_offsets end %" PRId64 " is past the end of the data section (%zu bytes)",
                       path, nm, en, data_size);
    if (en - b != need)
        return tt_fail(err, TT_EINPUT,
                       "%s: tensor %s: data_offsets span %" PRId64 " bytes but shape %s of %s needs %" PRId64, path,
                       nm, en - b, sb, ds, need);
    t->data = data + b;
    t->nbytes = (size_t)need;
    return 0;
}

/* Validate the parsed header and build f->t. */
static int load_header_(st_file *f, const unsigned char *data, size_t data_size, tt_err *err) {
    const char *path = f->path;
    if (!json_is_object(f->root)) return tt_fail(err, TT_EINPUT, "%s: header is not a JSON object", path);
    size_t total = json_object_size(f->root);
    const json_t *meta = json_object_get(f->root, "__metadata__");
    size_t n = total - (meta ? 1 : 0);
    if (n > (size_t)INT32_MAX) return tt_fail(err, TT_EINPUT, "%s: too many tensors (%zu)", path, n);
    if (meta) {
        if (check_metadata_(path, meta, err)) return -1;
        f->meta = meta;
    }
    f->t = calloc(n ? n : 1, sizeof *f->t);
    if (!f->t) return tt_fail(err, TT_ENOMEM, "%s: out of memory for %zu tensor records", path, n);
    size_t i = 0;
    const char *key;
    json_t *val;
    json_object_foreach(f->root, key, val) {
        if (strcmp(key, "__metadata__") == 0) continue;
        TT_ASSERT(i < n);
        if (parse_entry_(path, key, val, data, data_size, &f->t[i], err)) return -1;
        i++;
    }
    TT_ASSERT(i == n);
    f->n = (int)n;
    qsort(f->t, n, sizeof *f->t, cmp_tensor_name_);
    char b1[SHOW_CAP], b2[SHOW_CAP];
    for (size_t k = 1; k < n; k++) /* jansson rejects duplicate keys; this guards the invariant */
        if (strcmp(f->t[k - 1].name, f->t[k].name) == 0)
            return tt_fail(err, TT_EINPUT, "%s: duplicate tensor name %s", path, show_(f->t[k].name, b1));

    /* Non-empty byte ranges must not overlap: sort by start and compare each with the
     * furthest end seen so far. */
    if (n > 1) {
        const st_tensor **by = malloc(n * sizeof *by);
        if (!by) return tt_fail(err, TT_ENOMEM, "%s: out of memory", path);
        for (size_t k = 0; k < n; k++) by[k] = &f->t[k];
        qsort(by, n, sizeof *by, cmp_tensor_ptr_begin_);
        const st_tensor *far = NULL;
        const unsigned char *far_end = NULL;
        for (size_t k = 0; k < n; k++) {
            const st_tensor *t = by[k];
            if (t->nbytes == 0) continue;
            const unsigned char *beg = t->data;
            if (far && beg < far_end) {
                int rc = tt_fail(err, TT_EINPUT, "%s: tensors %s and %s overlap in the data section", path,
                                 show_(far->name, b1), show_(t->name, b2));
                free(by);
                return rc;
            }
            if (!far || beg + t->nbytes > far_end) {
                far = t;
                far_end = beg + t->nbytes;
            }
        }
        free(by);
    }
    return 0;
}

int st_open(st_file **out, const char *path, tt_err *err) {
    *out = NULL;
    st_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        return tt_fail(err, TT_ENOMEM, "%s: out of memory", path);
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* NONBLOCK: a FIFO must not hang us */
    if (fd < 0) {
        tt_fail(err, TT_EIO, "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    struct stat sbuf;
    if (fstat(fd, &sbuf) != 0 || !S_ISREG(sbuf.st_mode)) {
        tt_fail(err, TT_EINPUT, "%s: not a regular file", path);
        close(fd);
        goto fail;
    }
    if (sbuf.st_size < 8) {
        tt_fail(err, TT_EINPUT, "%s: file is %lld bytes, too small for a safetensors header (8-byte length + JSON)",
                path, (long long)sbuf.st_size);
        close(fd);
        goto fail;
    }
    if ((uint64_t)sbuf.st_size > SIZE_MAX) {
        tt_fail(err, TT_EINPUT, "%s: file too large to map", path);
        close(fd);
        goto fail;
    }
    size_t size = (size_t)sbuf.st_size;
    void *m = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int map_errno = errno;
    close(fd);
    if (m == MAP_FAILED) {
        tt_fail(err, TT_EIO, "%s: mmap failed: %s", path, strerror(map_errno));
        goto fail;
    }
    f->map = m;
    f->map_size = size;

    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | f->map[i];
    if (hlen > ST_MAX_HEADER) {
        tt_fail(err, TT_EINPUT, "%s: header length %" PRIu64 " is over the limit of %llu bytes", path, hlen,
                ST_MAX_HEADER);
        goto fail;
    }
    if (hlen > size - 8) {
        tt_fail(err, TT_EINPUT, "%s: header length %" PRIu64 " exceeds file size (%zu bytes after the length)",
                path, hlen, size - 8);
        goto fail;
    }
    json_error_t jerr;
    f->root = json_loadb((const char *)f->map + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!f->root) {
        char tb[SHOW_CAP];
        enum json_error_code code = json_error_code(&jerr);
        show_(jerr.text, tb);
        if (code == json_error_duplicate_key)
            tt_fail(err, TT_EINPUT, "%s: header has a duplicate key (tensor names and metadata keys must be unique): %s", path, tb);
        else if (code == json_error_out_of_memory)
            tt_fail(err, TT_ENOMEM, "%s: out of memory parsing the header", path);
        else
            tt_fail(err, TT_EINPUT, "%s: header is not valid JSON: %s (header byte %d)", path, tb, jerr.position);
        goto fail;
    }
    size_t data_start = 8 + (size_t)hlen;
    if (load_header_(f, f->map + data_start, size - data_start, err)) goto fail;
    *out = f;
    return 0;
fail:
    st_close(f);
    return -1;
}

void st_close(st_file *f) {
    if (!f) return;
    if (f->map) munmap((void *)f->map, f->map_size);
    json_decref(f->root);
    free(f->t);
    free(f->path);
    free(f);
}

const char *st_path(const st_file *f) { return f->path; }
int st_count(const st_file *f) { return f->n; }

const st_tensor *st_at(const st_file *f, int i) {
    TT_ASSERT(i >= 0 && i < f->n);
    return &f->t[i];
}

static int cmp_key_tensor_(const void *key, const void *t) {
    return strcmp((const char *)key, ((const st_tensor *)t)->name);
}

const st_tensor *st_find(const st_file *f, const char *name) {
    if (f->n == 0) return NULL;
    return bsearch(name, f->t, (size_t)f->n, sizeof *f->t, cmp_key_tensor_);
}

const char *st_meta(const st_file *f, const char *key) {
    return f->meta ? json_string_value(json_object_get(f->meta, key)) : NULL;
}

const char *st_meta_key(const st_file *f, int i) {
    if (!f->meta || i < 0) return NULL;
    int k = 0;
    for (void *it = json_object_iter((json_t *)f->meta); it; it = json_object_iter_next((json_t *)f->meta, it), k++)
        if (k == i) return json_object_iter_key(it);
    return NULL;
}

/* IEEE half -> float, exact for every input (subnormals, inf, NaN payloads). */
static float f16_to_f32_(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t ex = (h >> 10) & 0x1fu, man = h & 0x3ffu, u;
    if (ex == 0) {
        float v = (float)man * 0x1p-24f; /* zero or subnormal: man * 2^-24, exact */
        return sign ? -v : v;
    }
    if (ex == 31)
        u = sign | 0x7f800000u | (man << 13);
    else
        u = sign | ((ex + 112u) << 23) | (man << 13);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

int st_dtype_to_f32(st_dtype d, const void *src, float *out, size_t n) {
    const unsigned char *p = src;
    switch (d) {
    case ST_F32:
        if (n) memcpy(out, p, n * sizeof(float));
        return 0;
    case ST_F16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            out[i] = f16_to_f32_(h);
        }
        return 0;
    case ST_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            uint32_t u = (uint32_t)h << 16;
            memcpy(&out[i], &u, sizeof u);
        }
        return 0;
    case ST_F64:
        for (size_t i = 0; i < n; i++) {
            double v;
            memcpy(&v, p + 8 * i, 8);
            /* out-of-range double -> float conversion is undefined in ISO C: saturate to inf */
            out[i] = v > FLT_MAX ? INFINITY : v < -FLT_MAX ? -INFINITY : (float)v;
        }
        return 0;
    default:
        return -1;
    }
}

int st_read_f32_range(const st_file *f, const st_tensor *t, size_t first, size_t n, float *out, tt_err *err) {
    char nb[SHOW_CAP];
    if (first > (size_t)t->numel || n > (size_t)t->numel - first)
        return tt_fail(err, TT_EINPUT, "%s: tensor %s: elements [%zu, %zu) are past its %lld",
                       f ? f->path : "(safetensors)", show_(t->name, nb), first, first + n, (long long)t->numel);
    const unsigned char *p = (const unsigned char *)t->data + first * st_dtype_size(t->dtype);
    if (st_dtype_to_f32(t->dtype, p, out, n))
        return tt_fail(err, TT_EINPUT, "%s: tensor %s has dtype %s, which cannot be read as f32",
                       f ? f->path : "(safetensors)", show_(t->name, nb), st_dtype_name(t->dtype));
    return 0;
}

size_t st_data_offset(const st_file *f, const st_tensor *t) { return (size_t)((const unsigned char *)t->data - f->map); }

int st_read_f32(const st_file *f, const st_tensor *t, float *out, tt_err *err) {
    return st_read_f32_range(f, t, 0, (size_t)t->numel, out, err);
}

/* The roundings as static inline functions, so that the bulk loops below inline and vectorise them. */
static inline uint16_t f32_to_bf16_(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u); /* NaN stays a (quiet) NaN */
    u += 0x7fffu + ((u >> 16) & 1u);                                            /* to nearest, ties to even */
    return (uint16_t)(u >> 16);
}

static inline uint16_t f32_to_f16_(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu)); /* NaN: quiet, payload kept */
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* >= 65520 (half max + half ulp): inf */
    if (a < 0x38800000u) {                                    /* below 2^-14: a subnormal half (or 0) */
        /* the value in units of 2^-24, rounded to nearest even: exact in float arithmetic */
        float v;
        memcpy(&v, &a, sizeof v);
        float q = v * 0x1p24f; /* exact: a power-of-two scaling of a float below 2^-14 */
        float r = nearbyintf(q); /* the current rounding mode: to nearest, ties to even */
        return (uint16_t)(sign | (uint16_t)r);
    }
    /* normal: drop 13 mantissa bits, to nearest even; a carry into the exponent is right */
    uint32_t h = ((a - 0x38000000u) + 0xfffu + ((a >> 13) & 1u)) >> 13;
    return (uint16_t)(sign | h);
}

uint16_t st_f32_to_bf16(float x) { return f32_to_bf16_(x); }
uint16_t st_f32_to_f16(float x) { return f32_to_f16_(x); }

int st_f32_to_dtype(st_dtype d, const float *src, void *dst, size_t n) {
    switch (d) {
    case ST_F32:
        if (n) memcpy(dst, src, n * sizeof(float));
        return 0;
    case ST_BF16: {
        uint16_t *h = dst;
        for (size_t i = 0; i < n; i++) h[i] = f32_to_bf16_(src[i]);
        return 0;
    }
    case ST_F16: {
        uint16_t *h = dst;
        for (size_t i = 0; i < n; i++) h[i] = f32_to_f16_(src[i]);
        return 0;
    }
    case ST_F64: {
        double *o = dst;
        for (size_t i = 0; i < n; i++) o[i] = src[i];
        return 0;
    }
    default:
        return -1;
    }
}

const float *st_f32_view(const st_tensor *t) {
    if (t->dtype != ST_F32 || ((uintptr_t)t->data & (sizeof(float) - 1)) != 0) return NULL;
    return t->data;
}

int st_expect(const st_file *f, const char *name, int ndim, const int64_t *shape, const st_tensor **out,
              tt_err *err) {
    char nb[SHOW_CAP];
    if (out) *out = NULL;
    const st_tensor *t = st_find(f, name);
    if (!t) return tt_fail(err, TT_EINPUT, "%s: tensor %s missing", f->path, show_(name, nb));
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++) same = t->shape[i] == shape[i];
    if (!same) {
        char have[ST_MAX_DIMS * 22 + 3], want[ST_MAX_DIMS * 22 + 3];
        fmt_shape_(have, sizeof have, t->ndim, t->shape);
        fmt_shape_(want, sizeof want, ndim > ST_MAX_DIMS ? ST_MAX_DIMS : ndim, shape);
        return tt_fail(err, TT_EINPUT, "%s: tensor %s has shape %s, expected %s", f->path, show_(name, nb), have,
                       want);
    }
    if (out) *out = t;
    return 0;
}

/* ---- writing --------------------------------------------------------------------------- */

typedef struct st_wentry {
    char *name; /* owned copy */
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const void *data; /* borrowed until save */
    size_t nbytes;
    st_dtype dtype;   /* ST_F32 or ST_U8 */
} st_wentry;

struct st_writer {
    st_wentry *e;
    int n, cap;
    json_t *meta; /* object of string -> string */
};

st_writer *st_writer_create(tt_err *err) {
    st_writer *w = calloc(1, sizeof *w);
    if (w) w->meta = json_object();
    if (!w || !w->meta) {
        free(w);
        tt_fail(err, TT_ENOMEM, "safetensors writer: out of memory");
        return NULL;
    }
    return w;
}

void st_writer_free(st_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) free(w->e[i].name);
    free(w->e);
    json_decref(w->meta);
    free(w);
}

/* Non-empty, bounded, valid UTF-8 (jansson refuses invalid UTF-8 strings). */
static int valid_utf8_(const char *s) {
    json_t *j = json_string(s);
    json_decref(j);
    return j != NULL;
}

static int writer_add_(st_writer *w, const char *name, int ndim, const int64_t *shape, const void *data,
                       st_dtype dtype, tt_err *err) {
    char nb[SHOW_CAP];
    if (!name || !*name) return tt_fail(err, TT_EINPUT, "safetensors writer: empty tensor name");
    const char *nm = show_(name, nb);
    size_t len = strlen(name);
    if (len > ST_MAX_NAME)
        return tt_fail(err, TT_EINPUT, "safetensors writer: tensor name %s is %zu bytes, longer than %d", nm, len,
                       ST_MAX_NAME);
    if (strcmp(name, "__metadata__") == 0 || !valid_utf8_(name))
        return tt_fail(err, TT_EINPUT, "safetensors writer: invalid tensor name %s", nm);
    if (ndim < 0 || ndim > ST_MAX_DIMS)
        return tt_fail(err, TT_EINPUT, "safetensors writer: tensor %s: ndim %d outside 0..%d", nm, ndim,
                       ST_MAX_DIMS);
    st_wentry e = {.ndim = ndim, .data = data, .dtype = dtype};
    size_t elem = st_dtype_size(dtype);
    int has_zero = 0;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return tt_fail(err, TT_EINPUT, "safetensors writer: tensor %s: shape[%d] is %" PRId64 ", a negative dim",
                           nm, i, shape[i]);
        e.shape[i] = shape[i];
        if (!shape[i]) has_zero = 1;
    }
    int64_t numel = has_zero ? 0 : 1;
    for (int i = 0; !has_zero && i < ndim; i++) {
        if (shape[i] > INT64_MAX / numel) goto overflow;
        numel *= shape[i];
    }
    if ((uint64_t)numel > SIZE_MAX / elem || numel > INT64_MAX / (int64_t)elem) goto overflow;
    e.nbytes = (size_t)numel * elem;
    if (e.nbytes && !data) return tt_fail(err, TT_EINPUT, "safetensors writer: tensor %s: data is NULL", nm);
    if (w->n == w->cap) {
        int cap = w->cap ? 2 * w->cap : 64;
        st_wentry *ne = cap > w->cap ? realloc(w->e, (size_t)cap * sizeof *ne) : NULL;
        if (!ne) return tt_fail(err, TT_ENOMEM, "safetensors writer: out of memory");
        w->e = ne;
        w->cap = cap;
    }
    if (!(e.name = strdup(name))) return tt_fail(err, TT_ENOMEM, "safetensors writer: out of memory");
    w->e[w->n++] = e;
    return 0;
overflow:
    return tt_fail(err, TT_EINPUT, "safetensors writer: tensor %s: size overflows", nm);
}

int st_writer_add(st_writer *w, const char *name, int ndim, const int64_t *shape, const float *data,
                  tt_err *err) {
    return writer_add_(w, name, ndim, shape, data, ST_F32, err);
}

int st_writer_add_u8(st_writer *w, const char *name, int ndim, const int64_t *shape, const uint8_t *data,
                     tt_err *err) {
    return writer_add_(w, name, ndim, shape, data, ST_U8, err);
}

int st_writer_meta(st_writer *w, const char *key, const char *value, tt_err *err) {
    char kb[SHOW_CAP];
    if (!key || !value) return tt_fail(err, TT_EINPUT, "safetensors writer: NULL metadata key or value");
    json_t *v = json_string(value);
    if (!v) return tt_fail(err, TT_EINPUT, "safetensors writer: metadata %s: value is not valid UTF-8", show_(key, kb));
    if (json_object_set_new(w->meta, key, v) != 0) /* steals v even on failure */
        return tt_fail(err, TT_EINPUT, "safetensors writer: metadata key %s is not valid UTF-8", show_(key, kb));
    return 0;
}

static int cmp_wentry_(const void *a, const void *b) {
    return strcmp(((const st_wentry *)a)->name, ((const st_wentry *)b)->name);
}

/* Build the compact, key-sorted header JSON (malloc'd) for the sorted entries. */
static char *build_header_(const st_writer *w, const char *path, tt_err *err) {
    json_t *root = json_object();
    if (!root) goto oom;
    uint64_t off = 0;
    for (int i = 0; i < w->n; i++) {
        const st_wentry *e = &w->e[i];
        if (e->nbytes > INT64_MAX - off) {
            json_decref(root);
            tt_fail(err, TT_EINPUT, "%s: total tensor bytes overflow", path);
            return NULL;
        }
        json_t *shape = json_array();
        int bad = !shape;
        for (int d = 0; !bad && d < e->ndim; d++) bad = json_array_append_new(shape, json_integer(e->shape[d]));
        if (bad) {
            json_decref(shape);
            json_decref(root);
            goto oom;
        }
        /* "o" steals shape, also on failure (jansson >= 2.11) */
        json_t *ent = json_pack("{s:s, s:o, s:[I,I]}", "dtype", st_dtype_name(e->dtype), "shape", shape, "data_offsets",
                                (json_int_t)off, (json_int_t)(off + e->nbytes));
        if (!ent || json_object_set_new(root, e->name, ent)) {
            json_decref(root);
            goto oom;
        }
        off += e->nbytes;
    }
    if (json_object_size(w->meta) && json_object_set(root, "__metadata__", w->meta)) {
        json_decref(root);
        goto oom;
    }
    char *s = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(root);
    if (!s) goto oom;
    return s;
oom:
    tt_fail(err, TT_ENOMEM, "%s: out of memory building the header", path);
    return NULL;
}

int st_writer_save(st_writer *w, const char *path, tt_err *err) {
    char nb[SHOW_CAP];
    qsort(w->e, (size_t)w->n, sizeof *w->e, cmp_wentry_);
    for (int i = 1; i < w->n; i++)
        if (strcmp(w->e[i - 1].name, w->e[i].name) == 0)
            return tt_fail(err, TT_EINPUT, "%s: duplicate tensor name %s", path, show_(w->e[i].name, nb));
    char *hdr = build_header_(w, path, err);
    if (!hdr) return -1;
    size_t hlen = strlen(hdr);
    size_t pad = (8 - hlen % 8) % 8; /* data section starts at 8 + hlen + pad, a multiple of 8 */
    if (hlen + pad > ST_MAX_HEADER) {
        free(hdr);
        return tt_fail(err, TT_EINPUT, "%s: header would be %zu bytes, over the limit of %llu", path, hlen + pad,
                       ST_MAX_HEADER);
    }
    unsigned char len8[8];
    uint64_t total = hlen + pad;
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)(total >> (8 * i));
    static const char spaces[] = "        ";

    fio_file fo;
    if (fio_open_atomic(&fo, path, err)) {
        free(hdr);
        return -1;
    }
    int rc = fio_write(&fo, len8, 8, err) || fio_write(&fo, hdr, hlen, err) || fio_write(&fo, spaces, pad, err);
    free(hdr);
    for (int i = 0; !rc && i < w->n; i++) rc = fio_write(&fo, w->e[i].data, w->e[i].nbytes, err);
    if (rc) {
        fio_abort(&fo);
        return -1;
    }
    return fio_commit(&fo, err);
}
