/* test_tensorsink.c — the tensor sink (core/tensorsink.h) and the f32 -> BF16/F16 roundings.
 *
 * Roundings against independent references on every class of input (ties both ways, carries into
 * the exponent, overflow, subnormals, NaN): BF16 by choosing the nearer of the two neighbours in
 * double arithmetic, F16 by the compiler's _Float16 conversion (IEEE round to nearest even). The
 * sink: slices written out of order read back through st_open and ts_open (sharded, with index),
 * a missing byte refuses the commit and leaves nothing, abort leaves nothing, OUT must be new. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdbool.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/safetensors.h"
#include "core/tensorset.h"
#include "core/tensorsink.h"
#include "tests/testutil.h"

static float u2f(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* nearest BF16 by exact comparison of the two candidates (ties: even mantissa) */
static uint16_t bf16_ref(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if (isnan(x)) return (uint16_t)((u >> 16) | 0x40);
    uint16_t lo = (uint16_t)(u >> 16), hi = (uint16_t)(lo + 1);
    double dl = fabs((double)x - (double)u2f((uint32_t)lo << 16));
    double vh = (hi & 0x7fff) == 0x7f80 ? copysign(ldexp(1.0, 128), (double)x) : (double)u2f((uint32_t)hi << 16);
    double dh = fabs(vh - (double)x); /* past the largest BF16, inf stands at 2^128 (IEEE's overflow rule) */
    if ((u & 0xffff) == 0) return lo;
    if (dl < dh) return lo;
    if (dh < dl) return hi;
    return (lo & 1) ? hi : lo;
}

static uint32_t lcg(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(*s >> 32);
}

Test(rounding, bf16_matches_nearest_even) {
    static const uint32_t edge[] = {0x3f808000u, 0x3f818000u, 0x3f807fffu, 0x3f808001u, 0x7f7fffffu, 0x7f7f8000u,
                                    0x00008000u, 0x00018000u, 0x80008000u, 0xff800000u, 0x7f800000u, 0x00000001u};
    for (size_t i = 0; i < sizeof edge / sizeof *edge; i++)
        cr_assert_eq(st_f32_to_bf16(u2f(edge[i])), bf16_ref(u2f(edge[i])), "bits %#x", edge[i]);
    cr_assert_eq(st_f32_to_bf16(u2f(0x3f808000u)), 0x3f80, "a tie goes to the even mantissa");
    cr_assert_eq(st_f32_to_bf16(u2f(0x3f818000u)), 0x3f82, "a tie goes to the even mantissa, up");
    cr_assert_eq(st_f32_to_bf16(u2f(0x7f7fffffu)), 0x7f80, "FLT_MAX rounds to inf");
    cr_assert(isnan(u2f((uint32_t)st_f32_to_bf16(NAN) << 16)));
    cr_assert(isnan(u2f((uint32_t)st_f32_to_bf16(u2f(0x7f800001u)) << 16)), "a NaN with a low payload stays NaN");
    uint64_t s = 1;
    for (int i = 0; i < 2000000; i++) {
        uint32_t u = lcg(&s);
        cr_assert_eq(st_f32_to_bf16(u2f(u)), bf16_ref(u2f(u)), "bits %#x", u);
    }
}

Test(rounding, f16_matches_the_compiler) {
    uint64_t s = 2;
    for (int i = 0; i < 2000000; i++) {
        uint32_t u = lcg(&s);
        if (i & 1) u = (u & 0x80000000u) | (0x33000000u + (u & 0x0fffffffu) % 0x14800000u); /* the half range */
        float x = u2f(u);
        volatile _Float16 h = (_Float16)x;
        uint16_t want;
        memcpy(&want, (const void *)&h, sizeof want);
        uint16_t got = st_f32_to_f16(x);
        if (isnan(x)) cr_assert((got & 0x7c00) == 0x7c00 && (got & 0x3ff), "NaN bits %#x -> %#x", u, got);
        else cr_assert_eq(got, want, "bits %#x: %#x, want %#x", u, got, want);
    }
    cr_assert_eq(st_f32_to_f16(65519.0f), 0x7bff);
    cr_assert_eq(st_f32_to_f16(65520.0f), 0x7c00, "half max + half an ulp is inf");
    cr_assert_eq(st_f32_to_f16(0x1p-25f), 0x0000, "half the smallest subnormal ties to 0");
    cr_assert_eq(st_f32_to_f16(0x1.8p-24f), 0x0002, "1.5 subnormal ulps tie to 2");
}

static char g_dir[512];
static void fini(void) { tu_rm_tree(g_dir); }

static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *de; d && (de = readdir(d));) n += de->d_name[0] != '.';
    if (d) closedir(d);
    return n;
}

static bool exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

Test(sink, slices_out_of_order_read_back_sharded, .fini = fini) {
    snprintf(g_dir, sizeof g_dir, "%s", tu_tmpdir("sink"));
    char out[600];
    snprintf(out, sizeof out, "%s/m", g_dir);
    tsk_spec spec[3] = {{"b.w", ST_BF16, 2, {100, 10}}, {"a.w", ST_F32, 1, {1000}}, {"c.w", ST_F16, 1, {3000}}};
    tsk_kv meta[] = {{"format", "pt"}};
    tsk_sink *s;
    tt_err e = {0};
    cr_assert_eq(tsk_open(&s, out, spec, 3, 4000, meta, 1, &e), 0, "%s", e.msg);
    cr_assert_eq(tsk_shard_count(s), 3, "2000 + 4000 + 6000 bytes at 4000 a shard");
    float *x = malloc(3000 * sizeof *x);
    for (int i = 0; i < 3000; i++) x[i] = 0.001f * (float)i - 1.0f;
    for (int t = 2; t >= 0; t--) { /* last tensor first, slices back to front */
        size_t n = (size_t)(t == 0 ? 1000 : t == 1 ? 1000 : 3000);
        for (size_t first = n; first > 0;) {
            size_t len = first >= 333 ? 333 : first;
            first -= len;
            cr_assert_eq(tsk_write_f32(s, t, first, x + first, len, &e), 0, "%s", e.msg);
        }
    }
    cr_assert_eq(tsk_commit(s, &e), 0, "%s", e.msg);
    ts_set *set;
    cr_assert_eq(ts_open(&set, out, &e), 0, "%s", e.msg);
    cr_assert_eq(ts_count(set), 3);
    cr_assert_eq(ts_shard_count(set), 3);
    float *y = malloc(3000 * sizeof *y);
    const char *names[3] = {"b.w", "a.w", "c.w"};
    for (int t = 0; t < 3; t++) {
        const ts_tensor *tt = ts_find(set, names[t]);
        cr_assert(tt && tt->t->dtype == spec[t].dtype);
        cr_assert_eq(ts_read_f32(tt, y, &e), 0, "%s", e.msg);
        for (int64_t i = 0; i < tt->t->numel; i++) {
            float want = t == 1 ? x[i] : t == 0 ? u2f((uint32_t)st_f32_to_bf16(x[i]) << 16) : (float)(_Float16)x[i];
            cr_assert_eq(y[i], want, "%s[%lld]", names[t], (long long)i);
        }
    }
    cr_assert_str_eq(ts_meta(set, "format"), "pt");
    ts_close(set);
    free(x);
    free(y);
    cr_assert_eq(tsk_open(&s, out, spec, 3, 0, NULL, 0, &e), -1, "an existing OUT is refused");
    cr_assert(strstr(e.msg, "already exists"), "%s", e.msg);
}

Test(sink, incomplete_or_aborted_leaves_nothing, .fini = fini) {
    snprintf(g_dir, sizeof g_dir, "%s", tu_tmpdir("sink"));
    char out[600];
    snprintf(out, sizeof out, "%s/m", g_dir);
    tsk_spec spec[1] = {{"w", ST_BF16, 1, {64}}};
    float x[64] = {0};
    tsk_sink *s;
    tt_err e = {0};
    cr_assert_eq(tsk_open(&s, out, spec, 1, 0, NULL, 0, &e), 0, "%s", e.msg);
    cr_assert_eq(tsk_write_f32(s, 0, 0, x, 63, &e), 0, "%s", e.msg);
    cr_assert_eq(tsk_write_f32(s, 0, 60, x, 5, &e), -1, "a slice past the tensor is refused");
    cr_assert_eq(tsk_commit(s, &e), -1, "a missing element refuses the commit");
    cr_assert(strstr(e.msg, "126 of its 128 bytes written"), "%s", e.msg);
    cr_assert(!exists(out));
    cr_assert_eq(count_entries(g_dir), 0, "the temporary directory is gone");
    cr_assert_eq(tsk_open(&s, out, spec, 1, 0, NULL, 0, &e), 0, "%s", e.msg);
    cr_assert_eq(tsk_add_file(s, "config.json", "{}", 2, &e), 0, "%s", e.msg);
    tsk_abort(s);
    cr_assert_eq(count_entries(g_dir), 0, "abort removes everything");
    tsk_spec dup[2] = {{"w", ST_F32, 0, {0}}, {"w", ST_F32, 0, {0}}};
    cr_assert_eq(tsk_open(&s, out, dup, 2, 0, NULL, 0, &e), -1);
    cr_assert(strstr(e.msg, "given twice"), "%s", e.msg);
    cr_assert_eq(count_entries(g_dir), 0);
}
