/* test_safetensors.c — safetensors reader/writer, atomic files (fileio) and .npy.
 *
 * round trip + determinism, a hand-built file with F16/BF16/F64 values, a table of malformed
 * files (each must fail with "PATH: <specific phrase>" on one line), fio_ failure paths, and
 * the exact bytes of a .npy header. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/npy.h"
#include "core/safetensors.h"
#include "tests/testutil.h"

/* ---- helpers ------------------------------------------------------------------------------ */

/* The test's temp dir, removed by each suite's fini (also after a failed assertion). */
static char g_dir[512];

static void fresh_dir(char *dir, size_t cap, const char *tag) {
    const char *d = tu_tmpdir(tag);
    cr_assert(d != NULL, "mkdtemp failed");
    snprintf(dir, cap, "%s", d);
    snprintf(g_dir, sizeof g_dir, "%s", d);
}


static void cleanup(void) {
    if (g_dir[0]) tu_rm_tree(g_dir);
    g_dir[0] = 0;
}

TestSuite(safetensors, .fini = cleanup);
TestSuite(fileio, .fini = cleanup);
TestSuite(npy, .fini = cleanup);

static void join(char *out, size_t cap, const char *dir, const char *name) {
    snprintf(out, cap, "%s/%s", dir, name);
}

static void write_file(const char *path, const void *buf, size_t n) {
    FILE *f = fopen(path, "wb");
    cr_assert(f != NULL, "cannot create %s", path);
    if (n) cr_assert_eq(fwrite(buf, 1, n, f), n);
    cr_assert_eq(fclose(f), 0);
}

/* u64 header length + header JSON + data_len bytes of data (values i & 0xff). */
static void write_st(const char *path, uint64_t hlen_field, const char *header, size_t header_len,
                     size_t data_len) {
    size_t n = 8 + header_len + data_len;
    unsigned char *buf = malloc(n);
    cr_assert(buf != NULL);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(hlen_field >> (8 * i));
    memcpy(buf + 8, header, header_len);
    for (size_t i = 0; i < data_len; i++) buf[8 + header_len + i] = (unsigned char)i;
    write_file(path, buf, n);
    free(buf);
}

static char *slurp(const char *path, size_t *n) {
    char *buf;
    tt_err e = {0};
    int rc = fio_read_all(path, &buf, n, 1u << 30, &e);
    cr_assert_eq(rc, 0, "%s", e.msg);
    return buf;
}

static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    cr_assert(d != NULL);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) n++;
    closedir(d);
    return n;
}

static int exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

static void assert_one_line_error(const tt_err *e, const char *path, const char *phrase, const char *label) {
    cr_assert(strstr(e->msg, path) == e->msg, "%s: message does not start with the path: %s", label, e->msg);
    cr_assert(strstr(e->msg, phrase) != NULL, "%s: message lacks \"%s\": %s", label, phrase, e->msg);
    cr_assert(strchr(e->msg, '\n') == NULL, "%s: message is not one line: %s", label, e->msg);
}

/* ---- (1) round trip ----------------------------------------------------------------------- */

Test(safetensors, round_trip_and_determinism) {
    char dir[512], p1[600], p2[600];
    fresh_dir(dir, sizeof dir, "st-rt");
    join(p1, sizeof p1, dir, "a.safetensors");
    join(p2, sizeof p2, dir, "b.safetensors");

    float w[12], b[5], s[1] = {42.5f};
    tu_fill_uniform(w, 12, 1, -1.0f, 1.0f);
    tu_fill_uniform(b, 5, 2, -3.0f, 3.0f);
    const int64_t ws[2] = {3, 4}, bs[1] = {5};
    tt_err e = {0};

    st_writer *wr = st_writer_create(&e);
    cr_assert(wr != NULL);
    cr_assert_eq(st_writer_add(wr, "layer.weight", 2, ws, w, &e), 0, "%s", e.msg);
    cr_assert_eq(st_writer_add(wr, "bias", 1, bs, b, &e), 0, "%s", e.msg);
    cr_assert_eq(st_writer_add(wr, "scalar", 0, NULL, s, &e), 0, "%s", e.msg);
    cr_assert_eq(st_writer_meta(wr, "ttmerge.arch", "{\"width\": 8, \"act\": \"gelu\"}", &e), 0, "%s", e.msg);
    cr_assert_eq(st_writer_meta(wr, "method", "ties", &e), 0);
    cr_assert_eq(st_writer_save(wr, p1, &e), 0, "%s", e.msg);
    st_writer_free(wr);

    /* Same content added in another order must give the same bytes. */
    wr = st_writer_create(&e);
    cr_assert_eq(st_writer_meta(wr, "method", "placeholder", &e), 0);
    cr_assert_eq(st_writer_add(wr, "scalar", 0, NULL, s, &e), 0);
    cr_assert_eq(st_writer_meta(wr, "ttmerge.arch", "{\"width\": 8, \"act\": \"gelu\"}", &e), 0);
    cr_assert_eq(st_writer_add(wr, "bias", 1, bs, b, &e), 0);
    cr_assert_eq(st_writer_add(wr, "layer.weight", 2, ws, w, &e), 0);
    cr_assert_eq(st_writer_meta(wr, "method", "ties", &e), 0); /* replaces */
    cr_assert_eq(st_writer_save(wr, p2, &e), 0, "%s", e.msg);
    st_writer_free(wr);

    size_t n1, n2;
    char *b1 = slurp(p1, &n1), *b2 = slurp(p2, &n2);
    cr_assert_eq(n1, n2);
    cr_assert(memcmp(b1, b2, n1) == 0, "files differ");
    /* layout: 8-byte aligned data section, data = 4 * (12 + 5 + 1) bytes at the end */
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | (unsigned char)b1[i];
    cr_assert_eq(hlen % 8, 0);
    cr_assert_eq(n1, 8 + hlen + 4 * 18);
    cr_assert_eq(b1[8], '{');
    /* data in name order: bias, layer.weight, scalar */
    cr_assert(memcmp(b1 + 8 + hlen, b, sizeof b) == 0);
    cr_assert(memcmp(b1 + 8 + hlen + sizeof b, w, sizeof w) == 0);
    cr_assert(memcmp(b1 + 8 + hlen + sizeof b + sizeof w, s, sizeof s) == 0);
    free(b1);
    free(b2);
    cr_assert_eq(count_entries(dir), 2, "temp files left behind");

    st_file *f = NULL;
    cr_assert_eq(st_open(&f, p1, &e), 0, "%s", e.msg);
    cr_assert_str_eq(st_path(f), p1);
    cr_assert_eq(st_count(f), 3);
    cr_assert_str_eq(st_at(f, 0)->name, "bias");
    cr_assert_str_eq(st_at(f, 1)->name, "layer.weight");
    cr_assert_str_eq(st_at(f, 2)->name, "scalar");
    const st_tensor *t = st_find(f, "layer.weight");
    cr_assert(t != NULL);
    cr_assert_eq(t->dtype, ST_F32);
    cr_assert_eq(t->ndim, 2);
    cr_assert_eq(t->shape[0], 3);
    cr_assert_eq(t->shape[1], 4);
    cr_assert_eq(t->numel, 12);
    cr_assert_eq(t->nbytes, 48);
    const float *v = st_f32_view(t);
    cr_assert(v != NULL, "aligned F32 should have a zero-copy view");
    cr_assert(memcmp(v, w, sizeof w) == 0);
    float got[12];
    cr_assert_eq(st_read_f32(f, t, got, &e), 0);
    cr_assert(memcmp(got, w, sizeof w) == 0);
    t = st_find(f, "scalar");
    cr_assert(t && t->ndim == 0 && t->numel == 1);
    cr_assert_eq(st_read_f32(f, t, got, &e), 0);
    cr_assert_eq(got[0], 42.5f);
    t = st_find(f, "bias");
    cr_assert(t && t->ndim == 1 && t->shape[0] == 5);
    cr_assert_eq(st_read_f32(f, t, got, &e), 0);
    cr_assert(memcmp(got, b, sizeof b) == 0);
    cr_assert_null(st_find(f, "nope"));
    cr_assert_null(st_find(f, "bia"));
    cr_assert_str_eq(st_meta(f, "method"), "ties");
    cr_assert_str_eq(st_meta(f, "ttmerge.arch"), "{\"width\": 8, \"act\": \"gelu\"}");
    cr_assert_null(st_meta(f, "missing"));

    /* st_expect */
    const int64_t good[2] = {3, 4}, bad[2] = {3, 5};
    t = NULL;
    cr_assert_eq(st_expect(f, "layer.weight", 2, good, &t, &e), 0);
    cr_assert(t == st_find(f, "layer.weight"));
    cr_assert_eq(st_expect(f, "layer.weight", 2, bad, &t, &e), -1);
    cr_assert_null(t);
    cr_assert(strstr(e.msg, "tensor layer.weight has shape [3,4], expected [3,5]"), "%s", e.msg);
    assert_one_line_error(&e, p1, "expected", "expect");
    cr_assert_eq(st_expect(f, "bias", 2, good, NULL, &e), -1);
    cr_assert(strstr(e.msg, "tensor bias has shape [5], expected [3,4]"), "%s", e.msg);
    cr_assert_eq(st_expect(f, "proj", 2, good, NULL, &e), -1);
    assert_one_line_error(&e, p1, "tensor proj missing", "missing");
    st_close(f);
    st_close(NULL);
}

Test(safetensors, writer_exact_header) {
    char dir[512], p[600];
    fresh_dir(dir, sizeof dir, "st-hdr");
    join(p, sizeof p, dir, "one.safetensors");
    const float x[2] = {1.0f, -2.0f};
    const int64_t sh[1] = {2}, zsh[2] = {0, 3};
    tt_err e = {0};
    st_writer *w = st_writer_create(&e);
    cr_assert_eq(st_writer_add(w, "w", 1, sh, x, &e), 0);
    cr_assert_eq(st_writer_add(w, "empty", 2, zsh, NULL, &e), 0, "%s", e.msg);
    cr_assert_eq(st_writer_meta(w, "k", "v\xc3\xbc", &e), 0);
    cr_assert_eq(st_writer_save(w, p, &e), 0, "%s", e.msg);
    st_writer_free(w);
    const char *want = "{\"__metadata__\":{\"k\":\"v\xc3\xbc\"},"
                       "\"empty\":{\"data_offsets\":[0,0],\"dtype\":\"F32\",\"shape\":[0,3]},"
                       "\"w\":{\"data_offsets\":[0,8],\"dtype\":\"F32\",\"shape\":[2]}}";
    size_t wl = strlen(want), padded = (wl + 7) / 8 * 8, n;
    char *buf = slurp(p, &n);
    cr_assert_eq(n, 8 + padded + 8);
    cr_assert_eq((unsigned char)buf[0], padded);
    for (int i = 1; i < 8; i++) cr_assert_eq(buf[i], 0);
    cr_assert(memcmp(buf + 8, want, wl) == 0, "header: %.*s", (int)padded, buf + 8);
    for (size_t i = wl; i < padded; i++) cr_assert_eq(buf[8 + i], ' ');
    cr_assert(memcmp(buf + 8 + padded, x, 8) == 0);
    free(buf);

    st_file *f;
    cr_assert_eq(st_open(&f, p, &e), 0, "%s", e.msg);
    const st_tensor *t = st_find(f, "empty");
    cr_assert(t && t->numel == 0 && t->nbytes == 0 && t->ndim == 2 && t->shape[1] == 3);
    cr_assert_str_eq(st_meta(f, "k"), "v\xc3\xbc");
    st_close(f);
}

Test(safetensors, writer_rejects_bad_input) {
    char dir[512], p[600];
    fresh_dir(dir, sizeof dir, "st-wbad");
    join(p, sizeof p, dir, "dup.safetensors");
    float x[4] = {0};
    int64_t sh[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1}, neg[1] = {-1}, big[2] = {INT64_MAX / 2, 3};
    tt_err e = {0};
    st_writer *w = st_writer_create(&e);
    cr_assert_eq(st_writer_add(w, "", 1, sh, x, &e), -1);
    cr_assert_eq(st_writer_add(w, "__metadata__", 1, sh, x, &e), -1);
    cr_assert_eq(st_writer_add(w, "bad\xff", 1, sh, x, &e), -1);
    cr_assert_eq(st_writer_add(w, "nine", 9, sh, x, &e), -1);
    cr_assert(strstr(e.msg, "ndim 9"), "%s", e.msg);
    cr_assert_eq(st_writer_add(w, "neg", 1, neg, x, &e), -1);
    cr_assert(strstr(e.msg, "negative"), "%s", e.msg);
    cr_assert_eq(st_writer_add(w, "big", 2, big, x, &e), -1);
    cr_assert(strstr(e.msg, "overflows"), "%s", e.msg);
    cr_assert_eq(st_writer_add(w, "null", 1, sh, NULL, &e), -1);
    cr_assert_eq(st_writer_meta(w, "k", "bad\xff", &e), -1);
    cr_assert_eq(st_writer_add(w, "a", 1, sh, x, &e), 0);
    cr_assert_eq(st_writer_add(w, "a", 1, sh, x, &e), 0);
    cr_assert_eq(st_writer_save(w, p, &e), -1);
    assert_one_line_error(&e, p, "duplicate tensor name a", "writer dup");
    cr_assert(!exists(p));
    cr_assert_eq(count_entries(dir), 0);
    st_writer_free(w);
    st_writer_free(NULL);
}

/* ---- (2) compatibility: a file built by hand, as another writer would ------------------- */

Test(safetensors, hand_built_f16_bf16_f64) {
    char dir[512], p[600];
    fresh_dir(dir, sizeof dir, "st-compat");
    join(p, sizeof p, dir, "hand.safetensors");
    /* F16: 1, -2, 0.5, 65504, 2^-24 (smallest subnormal), -0, inf, NaN */
    const uint16_t h[8] = {0x3C00, 0xC000, 0x3800, 0x7BFF, 0x0001, 0x8000, 0x7C00, 0x7E00};
    /* BF16: 1, -2, 3.140625, 2^-133 (subnormal), -inf */
    const uint16_t bf[5] = {0x3F80, 0xC000, 0x4049, 0x0001, 0xFF80};
    const double d[3] = {1.5, -1e300, 0.1};
    const float f32[3] = {0.25f, -7.0f, 1e-3f};
    const int32_t i32[2] = {7, -9};
    /* header of odd length: the data section (and the F32 tensor) is not 4-byte aligned */
    char hdr[1024];
    int hl = snprintf(hdr, sizeof hdr,
                      "{\"__metadata__\": {\"format\": \"pt\"},"
                      " \"half\": {\"dtype\": \"F16\", \"shape\": [2, 4], \"data_offsets\": [0, 16]},"
                      " \"brain\": {\"dtype\": \"BF16\", \"shape\": [5], \"data_offsets\": [16, 26]},"
                      " \"dbl\": {\"dtype\": \"F64\", \"shape\": [3], \"data_offsets\": [26, 50]},"
                      " \"sp\\u00fc\": {\"dtype\": \"F32\", \"shape\": [3, 1], \"data_offsets\": [50, 62]},"
                      " \"ints\": {\"dtype\": \"I32\", \"shape\": [2], \"data_offsets\": [62, 70]},"
                      " \"none\": {\"dtype\": \"BOOL\", \"shape\": [0], \"data_offsets\": [70, 70]}}");
    if (hl % 2 == 0) hdr[hl++] = ' ';
    unsigned char buf[2048];
    size_t n = 0;
    for (int i = 0; i < 8; i++) buf[n++] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(buf + n, hdr, (size_t)hl);
    n += (size_t)hl;
    memcpy(buf + n, h, sizeof h), n += sizeof h;
    memcpy(buf + n, bf, sizeof bf), n += sizeof bf;
    memcpy(buf + n, d, sizeof d), n += sizeof d;
    memcpy(buf + n, f32, sizeof f32), n += sizeof f32;
    memcpy(buf + n, i32, sizeof i32), n += sizeof i32;
    write_file(p, buf, n);

    tt_err e = {0};
    st_file *f;
    cr_assert_eq(st_open(&f, p, &e), 0, "%s", e.msg);
    cr_assert_eq(st_count(f), 6);
    cr_assert_str_eq(st_meta(f, "format"), "pt");
    float out[8];

    const st_tensor *t = st_find(f, "half");
    cr_assert(t && t->dtype == ST_F16 && t->numel == 8 && t->nbytes == 16);
    cr_assert_null(st_f32_view(t));
    cr_assert_eq(st_read_f32(f, t, out, &e), 0);
    cr_assert_eq(out[0], 1.0f);
    cr_assert_eq(out[1], -2.0f);
    cr_assert_eq(out[2], 0.5f);
    cr_assert_eq(out[3], 65504.0f);
    cr_assert_eq(out[4], ldexpf(1.0f, -24));
    cr_assert(out[5] == 0.0f && signbit(out[5]));
    cr_assert(isinf(out[6]) && out[6] > 0);
    cr_assert(isnan(out[7]));

    t = st_find(f, "brain");
    cr_assert(t && t->dtype == ST_BF16 && t->numel == 5);
    cr_assert_eq(st_read_f32(f, t, out, &e), 0);
    cr_assert_eq(out[0], 1.0f);
    cr_assert_eq(out[1], -2.0f);
    cr_assert_eq(out[2], 3.140625f);
    cr_assert_eq(out[3], ldexpf(1.0f, -133));
    cr_assert(isinf(out[4]) && out[4] < 0);

    t = st_find(f, "dbl");
    cr_assert(t && t->dtype == ST_F64);
    cr_assert_eq(st_read_f32(f, t, out, &e), 0);
    cr_assert_eq(out[0], 1.5f);
    cr_assert(isinf(out[1]) && out[1] < 0);
    cr_assert_eq(out[2], 0.1f);

    t = st_find(f, "sp\xc3\xbc"); /* "\u00fc" decoded to UTF-8 */
    cr_assert(t && t->dtype == ST_F32 && t->ndim == 2 && t->shape[0] == 3 && t->shape[1] == 1);
    cr_assert(((uintptr_t)t->data & 3) != 0, "test setup: data should be unaligned");
    cr_assert_null(st_f32_view(t), "unaligned F32 must not be viewed in place");
    cr_assert_eq(st_read_f32(f, t, out, &e), 0);
    cr_assert(memcmp(out, f32, sizeof f32) == 0);

    t = st_find(f, "ints");
    cr_assert(t && t->dtype == ST_I32 && t->nbytes == 8);
    cr_assert(memcmp(t->data, i32, 8) == 0);
    cr_assert_eq(st_read_f32(f, t, out, &e), -1);
    assert_one_line_error(&e, p, "tensor ints has dtype I32", "read I32");

    t = st_find(f, "none");
    cr_assert(t && t->dtype == ST_BOOL && t->numel == 0);
    st_close(f);
}

Test(safetensors, empty_tensor_inside_another_is_not_overlap) {
    char dir[512], p[600];
    fresh_dir(dir, sizeof dir, "st-empty");
    join(p, sizeof p, dir, "e.safetensors");
    const char *h = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                    "\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]}}";
    write_st(p, strlen(h), h, strlen(h), 8);
    tt_err e = {0};
    st_file *f;
    cr_assert_eq(st_open(&f, p, &e), 0, "%s", e.msg);
    cr_assert_eq(st_count(f), 2);
    st_close(f);
}

/* ---- (3) malformed files ------------------------------------------------------------------ */

typedef struct bad_case {
    const char *name;
    const char *header; /* NULL: raw bytes below */
    size_t data_len;
    const char *phrase; /* must appear in the message */
    /* raw cases */
    int raw_len;        /* >= 0: write raw_len bytes of 'x' */
    int64_t hlen_field; /* != 0: header length field to write instead of strlen(header) */
} bad_case;

#define HDR1(dt, shape, offs) "{\"t\":{\"dtype\":" dt ",\"shape\":" shape ",\"data_offsets\":" offs "}}"

static const bad_case bad_cases[] = {
    {"empty", NULL, 0, "0 bytes, too small", 0, 0},
    {"five_bytes", NULL, 0, "5 bytes, too small", 5, 0},
    {"hlen_past_eof", "{}", 0, "header length 1000 exceeds file size", -1, 1000},
    {"hlen_huge", "{}      ", 0, "header length 9223372036854775808 is over the limit", -1, INT64_MIN},
    {"hlen_zero", "", 0, "not valid JSON", -1, 0},
    {"not_json", "{not json", 0, "header is not valid JSON", -1, 0},
    {"trailing_garbage", "{} x", 0, "header is not valid JSON", -1, 0},
    {"json_array", "[1,2,3]", 0, "header is not a JSON object", -1, 0},
    {"entry_not_object", "{\"t\":3}", 0, "tensor t: entry is not a JSON object", -1, 0},
    {"missing_dtype", "{\"t\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "tensor t: dtype missing", -1, 0},
    {"dtype_number", HDR1("4", "[1]", "[0,4]"), 4, "tensor t: dtype missing or not a string", -1, 0},
    {"dtype_f99", HDR1("\"F99\"", "[1]", "[0,4]"), 4, "tensor t: unknown dtype F99", -1, 0},
    {"shape_missing", "{\"t\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "shape missing", -1, 0},
    {"shape_negative", HDR1("\"F32\"", "[2,-3]", "[0,4]"), 4, "shape[1] is -3, a negative dim", -1, 0},
    {"shape_real", HDR1("\"F32\"", "[1.5]", "[0,4]"), 4, "shape[0] is not an integer", -1, 0},
    {"shape_overflow", HDR1("\"F32\"", "[1099511627776,1099511627776]", "[0,4]"), 4,
     "element count of shape [1099511627776,1099511627776] overflows int64", -1, 0},
    {"bytes_overflow", HDR1("\"F64\"", "[2305843009213693952]", "[0,8]"), 8, "byte size", -1, 0},
    {"nine_dims", HDR1("\"F32\"", "[1,1,1,1,1,1,1,1,1]", "[0,4]"), 4, "shape has 9 dims", -1, 0},
    {"offsets_short", HDR1("\"F32\"", "[1]", "[0]"), 4, "data_offsets must be [begin, end]", -1, 0},
    {"offsets_negative", HDR1("\"F32\"", "[1]", "[-4,0]"), 4, "data_offsets must be", -1, 0},
    {"offsets_huge", HDR1("\"F32\"", "[1]", "[0,99999999999999999999]"), 4, "not valid JSON", -1, 0},
    {"end_past_data", HDR1("\"F32\"", "[2]", "[0,8]"), 4, "end 8 is past the end of the data section (4 bytes)", -1,
     0},
    {"end_max", HDR1("\"F32\"", "[2]", "[9223372036854775799,9223372036854775807]"), 8,
     "past the end of the data section", -1, 0},
    {"begin_gt_end", HDR1("\"F32\"", "[1]", "[8,4]"), 8, "data_offsets begin 8 > end 4", -1, 0},
    {"nbytes_mismatch", HDR1("\"F32\"", "[2,3]", "[0,20]"), 24, "span 20 bytes but shape [2,3] of F32 needs 24", -1,
     0},
    {"overlap",
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
     "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
     12, "tensors a and b overlap", -1, 0},
    {"overlap_contained",
     "{\"big\":{\"dtype\":\"U8\",\"shape\":[16],\"data_offsets\":[0,16]},"
     "\"c\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[10,12]},"
     "\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[2,4]}}",
     16, "overlap", -1, 0},
    {"same_range",
     "{\"a\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[0,4]},"
     "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
     4, "overlap", -1, 0},
    {"duplicate_name",
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
     "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
     8, "duplicate key (tensor names and metadata keys must be unique)", -1, 0},
    {"meta_not_string", "{\"__metadata__\":{\"ok\":\"x\",\"k\":1}}", 0, "__metadata__ value for key k is not a string",
     -1, 0},
    {"meta_not_object", "{\"__metadata__\":[\"k\"]}", 0, "__metadata__ is not a JSON object", -1, 0},
    {"empty_name", "{\"\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "empty tensor name", -1, 0},
    {"nul_in_name", "{\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
     "not valid JSON", -1, 0},
    {"bad_utf8_name", "{\"a\xff\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "not valid JSON", -1,
     0},
    {"control_char_in_header", "{\"a\":\n\x01}", 0, "not valid JSON", -1, 0},
};

static void check_bad(const char *dir, const bad_case *c) {
    char p[600];
    snprintf(p, sizeof p, "%s/%s.safetensors", dir, c->name);
    if (!c->header) {
        char raw[16];
        memset(raw, 'x', sizeof raw);
        write_file(p, raw, (size_t)c->raw_len);
    } else {
        size_t hl = strlen(c->header);
        write_st(p, c->hlen_field ? (uint64_t)c->hlen_field : hl, c->header, hl, c->data_len);
    }
    tt_err e = {0};
    st_file *f = (st_file *)&e; /* must be reset to NULL */
    int rc = st_open(&f, p, &e);
    cr_assert_eq(rc, -1, "%s: st_open accepted a malformed file", c->name);
    cr_assert_null(f, "%s: *out not NULL on failure", c->name);
    cr_assert(e.code == TT_EINPUT, "%s: code %d", c->name, (int)e.code);
    assert_one_line_error(&e, p, c->phrase, c->name);
}

Test(safetensors, malformed_files_fail_cleanly) {
    char dir[512];
    fresh_dir(dir, sizeof dir, "st-bad");
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) check_bad(dir, &bad_cases[i]);
}

Test(safetensors, long_or_deep_headers) {
    char dir[512], p[600];
    fresh_dir(dir, sizeof dir, "st-long");
    tt_err e = {0};
    st_file *f;
    /* name of 1025 bytes; the message shows it shortened */
    size_t cap = 2048;
    char *h = malloc(cap);
    cr_assert(h);
    memset(h, 0, cap);
    strcpy(h, "{\"");
    memset(h + 2, 'n', 1025);
    strcat(h, "\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}");
    join(p, sizeof p, dir, "longname.safetensors");
    write_st(p, strlen(h), h, strlen(h), 4);
    cr_assert_eq(st_open(&f, p, &e), -1);
    assert_one_line_error(&e, p, "is 1025 bytes, longer than the limit of 1024", "long name");
    cr_assert(strstr(e.msg, "..."), "%s", e.msg);
    /* exactly 1024 is fine */
    memmove(h + 2, h + 3, strlen(h + 3) + 1);
    write_st(p, strlen(h), h, strlen(h), 4);
    cr_assert_eq(st_open(&f, p, &e), 0, "%s", e.msg);
    cr_assert_eq(strlen(st_at(f, 0)->name), 1024);
    st_close(f);
    free(h);

    /* 100000 nested arrays: jansson's depth limit, not a stack overflow */
    size_t depth = 100000;
    h = malloc(2 * depth + 1);
    cr_assert(h);
    memset(h, '[', depth);
    memset(h + depth, ']', depth);
    h[2 * depth] = 0;
    join(p, sizeof p, dir, "deep.safetensors");
    write_st(p, 2 * depth, h, 2 * depth, 0);
    cr_assert_eq(st_open(&f, p, &e), -1);
    assert_one_line_error(&e, p, "not valid JSON", "deep");
    free(h);

    join(p, sizeof p, dir, "missing.safetensors");
    cr_assert_eq(st_open(&f, p, &e), -1);
    assert_one_line_error(&e, p, "cannot open", "missing");
    cr_assert_eq(e.code, TT_EIO);
    cr_assert_eq(st_open(&f, dir, &e), -1);
    assert_one_line_error(&e, dir, "not a regular file", "directory");
}

/* ---- (4) atomic files --------------------------------------------------------------------- */

Test(fileio, write_into_missing_directory_fails_cleanly) {
    char dir[512], p[700];
    fresh_dir(dir, sizeof dir, "fio-missing");
    snprintf(p, sizeof p, "%s/no/such/dir/out.bin", dir);
    tt_err e = {0};
    cr_assert_eq(fio_write_all(p, "abc", 3, &e), -1);
    assert_one_line_error(&e, p, "No such file or directory", "fio_write_all");
    cr_assert_eq(e.code, TT_EIO);
    cr_assert(!exists(p));
    cr_assert_eq(count_entries(dir), 0);

    st_writer *w = st_writer_create(&e);
    const float x[1] = {1};
    const int64_t sh[1] = {1};
    cr_assert_eq(st_writer_add(w, "x", 1, sh, x, &e), 0);
    cr_assert_eq(st_writer_save(w, p, &e), -1);
    assert_one_line_error(&e, p, "cannot create temp file", "st_writer_save");
    st_writer_free(w);

    cr_assert_eq(npy_write_f32(p, 1, sh, x, &e), -1);
    assert_one_line_error(&e, p, "No such file or directory", "npy_write_f32");
    cr_assert_eq(count_entries(dir), 0);
}

Test(fileio, abort_and_commit) {
    char dir[512], p[600];
    fresh_dir(dir, sizeof dir, "fio-abort");
    join(p, sizeof p, dir, "out.txt");
    tt_err e = {0};
    cr_assert_eq(fio_write_all(p, "old\n", 4, &e), 0, "%s", e.msg);

    fio_file f;
    cr_assert_eq(fio_open_atomic(&f, p, &e), 0, "%s", e.msg);
    cr_assert(strstr(f.tmp, ".tmp.") != NULL);
    cr_assert_eq(fio_write(&f, "new contents\n", 13, &e), 0);
    cr_assert(exists(f.tmp));
    cr_assert_eq(count_entries(dir), 2);
    fio_abort(&f);
    cr_assert_null(f.fp);
    fio_abort(&f); /* twice is harmless */
    cr_assert_eq(count_entries(dir), 1, "temp file left behind");
    size_t n;
    char *b = slurp(p, &n);
    cr_assert_eq(n, 4);
    cr_assert_str_eq(b, "old\n"); /* fio_read_all NUL-terminates */
    free(b);

    cr_assert_eq(fio_open_atomic(&f, p, &e), 0);
    fprintf(f.fp, "new %d\n", 7);
    b = slurp(p, &n); /* not visible before commit */
    cr_assert_str_eq(b, "old\n");
    free(b);
    cr_assert_eq(fio_commit(&f, &e), 0, "%s", e.msg);
    b = slurp(p, &n);
    cr_assert_str_eq(b, "new 7\n");
    free(b);
    cr_assert_eq(count_entries(dir), 1);
}

Test(fileio, commit_failure_and_read_limits) {
    char dir[512], p[600];
    fresh_dir(dir, sizeof dir, "fio-fail");
    /* rename over a non-empty directory fails: the error names the path, the temp is removed */
    join(p, sizeof p, dir, "isdir");
    cr_assert_eq(mkdir(p, 0755), 0);
    char inner[700];
    snprintf(inner, sizeof inner, "%s/keep", p);
    write_file(inner, "k", 1);
    tt_err e = {0};
    cr_assert_eq(fio_write_all(p, "abc", 3, &e), -1);
    assert_one_line_error(&e, p, "rename failed", "rename");
    cr_assert_eq(count_entries(dir), 1);

    join(p, sizeof p, dir, "ten.bin");
    cr_assert_eq(fio_write_all(p, "0123456789", 10, &e), 0);
    char *b;
    size_t n;
    cr_assert_eq(fio_read_all(p, &b, &n, 9, &e), -1);
    assert_one_line_error(&e, p, "file is 10 bytes, larger than the limit of 9", "limit");
    cr_assert_null(b);
    cr_assert_eq(fio_read_all(p, &b, &n, 10, &e), 0);
    cr_assert_eq(n, 10);
    cr_assert(memcmp(b, "0123456789", 11) == 0);
    free(b);
    join(p, sizeof p, dir, "absent.bin");
    cr_assert_eq(fio_read_all(p, &b, &n, 10, &e), -1);
    assert_one_line_error(&e, p, "cannot open", "absent");
}

/* ---- (5) .npy ----------------------------------------------------------------------------- */

Test(npy, header_bytes_and_round_trip) {
    char dir[512], p[600];
    fresh_dir(dir, sizeof dir, "npy");
    join(p, sizeof p, dir, "x.npy");
    const float x[6] = {1, 2, 3, -4.5f, 5, 6e-7f};
    const int64_t sh[2] = {2, 3};
    tt_err e = {0};
    cr_assert_eq(npy_write_f32(p, 2, sh, x, &e), 0, "%s", e.msg);
    size_t n;
    char *b = slurp(p, &n);
    const char *dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
    size_t dl = strlen(dict);
    size_t total = 128; /* 10 + 59 + 1 (newline) = 70, rounded up to a multiple of 64 */
    cr_assert_eq(dl, 59);
    cr_assert_eq(n, total + sizeof x);
    cr_assert(memcmp(b, "\x93NUMPY\x01\x00", 8) == 0);
    cr_assert_eq((unsigned char)b[8], total - 10);
    cr_assert_eq((unsigned char)b[9], 0);
    cr_assert(memcmp(b + 10, dict, dl) == 0, "%.*s", (int)dl, b + 10);
    for (size_t i = 10 + dl; i < total - 1; i++) cr_assert_eq(b[i], ' ', "byte %zu", i);
    cr_assert_eq(b[total - 1], '\n');
    cr_assert(memcmp(b + total, x, sizeof x) == 0);
    free(b);

    int nd;
    int64_t rs[NPY_MAX_DIMS];
    float *y;
    cr_assert_eq(npy_read_f32(p, &nd, rs, &y, &e), 0, "%s", e.msg);
    cr_assert_eq(nd, 2);
    cr_assert(rs[0] == 2 && rs[1] == 3);
    cr_assert(memcmp(y, x, sizeof x) == 0);
    free(y);

    /* 1-D uses Python's one-tuple "(5,)"; a scalar "()" */
    const int64_t s1[1] = {5};
    float five[5] = {0, 1, 2, 3, 4};
    cr_assert_eq(npy_write_f32(p, 1, s1, five, &e), 0);
    b = slurp(p, &n);
    cr_assert(strstr(b + 10, "'shape': (5,), }") != NULL);
    cr_assert_eq(n, 128 + sizeof five); /* 10 + 57 + 1 = 68 -> 128 */
    free(b);
    cr_assert_eq(npy_read_f32(p, &nd, rs, &y, &e), 0, "%s", e.msg);
    cr_assert(nd == 1 && rs[0] == 5 && y[4] == 4.0f);
    free(y);
    cr_assert_eq(npy_write_f32(p, 0, NULL, x, &e), 0);
    b = slurp(p, &n);
    cr_assert(strstr(b + 10, "'shape': (), }") != NULL);
    free(b);
    cr_assert_eq(npy_read_f32(p, &nd, rs, &y, &e), 0, "%s", e.msg);
    cr_assert(nd == 0 && y[0] == 1.0f);
    free(y);
    cr_assert_eq(count_entries(dir), 1);
}

Test(npy, reader_rejects_other_arrays) {
    char dir[512], p[600];
    fresh_dir(dir, sizeof dir, "npy-bad");
    join(p, sizeof p, dir, "bad.npy");
    static const struct {
        const char *dict, *phrase;
        size_t data;
    } cases[] = {
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", "'<f4'", 16},
        {"{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", "fortran_order", 16},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", "shorter", 20},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", "longer", 28},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", "bad shape", 0},
        {"{'descr': '<f4', 'shape': (1,), }", "lacks", 4},
        {"[1, 2]", "not a Python dict", 0},
    };
    tt_err e = {0};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[256] = {0};
        size_t dl = strlen(cases[i].dict);
        memcpy(buf, "\x93NUMPY\x01\x00", 8);
        buf[8] = (char)(dl + 1);
        memcpy(buf + 10, cases[i].dict, dl);
        buf[10 + dl] = '\n';
        write_file(p, buf, 10 + dl + 1 + cases[i].data);
        int nd;
        int64_t sh[NPY_MAX_DIMS];
        float *y = (float *)&e;
        cr_assert_eq(npy_read_f32(p, &nd, sh, &y, &e), -1, "case %zu accepted", i);
        cr_assert_null(y);
        assert_one_line_error(&e, p, cases[i].phrase, cases[i].dict);
    }
    write_file(p, "PK\x03\x04", 4);
    int nd;
    int64_t sh[NPY_MAX_DIMS];
    float *y;
    cr_assert_eq(npy_read_f32(p, &nd, sh, &y, &e), -1);
    assert_one_line_error(&e, p, "bad magic", "magic");
}
