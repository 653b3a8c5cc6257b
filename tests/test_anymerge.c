/* test_anymerge.c — the any-model merge engine (baselines/anymerge.h) where the shell tests cannot
 * aim: an input truncated after the merge opened and mapped it, before any of its data is read.
 *
 * The TIES methods' threshold sample and the merge pass both read with pread, where the read comes
 * up short: in either pass that must be one error naming the shard ("the file ended early"), a
 * failed run, and nothing at OUT nor a temporary directory beside it. The truncation runs from the
 * engine's after_open hook, so the test is deterministic (tests/anymerge.sh races a truncation
 * against a running merge).
 *
 * The TIES thresholds' passes: one counting pass after the sample; where a model's bracket misses
 * (a task vector whose sampled entries are not like the others), two radix passes more for it; the
 * radix passes alone when the workspace is over budget — the same output bytes every way.
 *
 * The engine on tensors in memory (am_merge_tau, the suite's merges): the arrays' reference bit for
 * bit on every path, the output's gaps untouched, one-line errors. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "baselines/anymerge.h"
#include "baselines/kernels.h"
#include "baselines/select.h"
#include "core/safetensors.h"
#include "tests/testutil.h"

/* 300 K entries: above the size where the thresholds sample (select.h), in three tensors. */
static const int64_t shapes[3][2] = {{300, 500}, {500, 300}, {1000, 1}};

/* What a model file holds: uniform values in [-1, 1); zeros; or a model whose sampled entries
 * (select_in_sample of the stream index, tensors sorted by name as st_writer stores them) are 100
 * times larger than its other values in [0.5, 1) — over a zero base the sample then puts the top-20%
 * threshold among the large ones, far from the true one. */
typedef enum model_kind { UNIFORM, ZERO, SKEWED } model_kind;

static void write_model_kind(const char *path, unsigned seed, model_kind kind) {
    tt_err e = {0};
    st_writer *w = st_writer_create(&e);
    cr_assert_not_null(w);
    float *data[3];
    size_t g = 0;
    for (int i = 0; i < 3; i++) {
        size_t n = (size_t)(shapes[i][0] * shapes[i][1]);
        data[i] = calloc(n, sizeof(float));
        if (kind != ZERO)
            tu_fill_uniform(data[i], n, seed * 3 + (unsigned)i, kind == SKEWED ? 0.5f : -1.0f, 1.0f);
        for (size_t j = 0; j < n; j++, g++)
            if (kind == SKEWED && select_in_sample(g)) data[i][j] *= 100.0f;
        char name[32];
        snprintf(name, sizeof name, "layer%d.weight", i);
        cr_assert_eq(st_writer_add(w, name, 2, shapes[i], data[i], &e), 0, "%s", e.msg);
    }
    cr_assert_eq(st_writer_save(w, path, &e), 0, "%s", e.msg);
    st_writer_free(w);
    for (int i = 0; i < 3; i++) free(data[i]);
}

static void write_model(const char *path, unsigned seed) { write_model_kind(path, seed, UNIFORM); }

static unsigned char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*len ? *len : 1);
    cr_assert_eq(fread(b, 1, *len, f), *len);
    fclose(f);
    return b;
}

/* Bytes of the file's header (8-byte length + JSON): truncating there keeps it valid. */
static long header_bytes(const char *path) {
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    unsigned char b[8];
    cr_assert_eq(fread(b, 1, 8, f), 8);
    fclose(f);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | b[i];
    return (long)(8 + n);
}

typedef struct cut {
    const char *path;
    long size;
} cut;

static void truncate_input(void *arg) {
    const cut *c = arg;
    cr_assert_eq(truncate(c->path, c->size), 0);
}

/* Nothing in dir starts with `prefix` (no OUT, no OUT.tmp.*). */
static void assert_no_output(const char *dir, const char *prefix) {
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    for (struct dirent *de; (de = readdir(d));)
        cr_assert(strncmp(de->d_name, prefix, strlen(prefix)) != 0, "left behind: %s/%s", dir, de->d_name);
    closedir(d);
}

/* A config merging dir/m0 and dir/m1 over dir/base (.safetensors) with `method`. */
static am_config two_models(const char *dir, const char *method) {
    am_config c;
    am_config_init(&c);
    snprintf(c.base, sizeof c.base, "%s/base.safetensors", dir);
    snprintf(c.model[0].path, sizeof c.model[0].path, "%s/m0.safetensors", dir);
    snprintf(c.model[1].path, sizeof c.model[1].path, "%s/m1.safetensors", dir);
    c.K = 2;
    cr_assert_eq(am_method_parse(method, &c.method), 0);
    return c;
}

static void truncated_after_open(const char *method) {
    char dir[] = "/tmp/ttm_anymerge_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char base[256], m0[256], m1[256], out[256];
    snprintf(base, sizeof base, "%s/base.safetensors", dir);
    snprintf(m0, sizeof m0, "%s/m0.safetensors", dir);
    snprintf(m1, sizeof m1, "%s/m1.safetensors", dir);
    snprintf(out, sizeof out, "%s/merged", dir);
    write_model(base, 1), write_model(m0, 2), write_model(m1, 3);

    am_config c = two_models(dir, method);
    cut cu = {.path = m1, .size = header_bytes(m1)};
    c.after_open = truncate_input;
    c.after_open_arg = &cu;
    tt_err e = {0};
    cr_assert_neq(am_run(&c, out, NULL, &e), 0, "%s: a merge of a truncated input succeeded", method);
    cr_assert(strstr(e.msg, m1) && strstr(e.msg, "ended early"), "%s: %s", method, e.msg);
    cr_assert_null(strchr(e.msg, '\n'), "%s: not one line: %s", method, e.msg);
    assert_no_output(dir, "merged");
    unlink(base), unlink(m0), unlink(m1), rmdir(dir);
}

/* The TIES thresholds' sample pass (its runs read with pread: the first read comes up short). */
Test(anymerge, truncated_input_while_sampling_is_an_error) { truncated_after_open("ties"); }

/* The merge pass (pread comes up short). */
Test(anymerge, truncated_input_while_merging_is_an_error) { truncated_after_open("ta"); }

/* ties of models in dir (base, m0, m1) into dir/NAME with a workspace budget (0 = the default); the
 * thresholds' passes are returned. */
static int ties_passes(const char *dir, const char *name, size_t select_work) {
    am_config c = two_models(dir, "ties");
    c.select_work = select_work;
    char out[300];
    snprintf(out, sizeof out, "%s/%s", dir, name);
    am_stats st;
    tt_err e = {0};
    cr_assert_eq(am_run(&c, out, &st, &e), 0, "%s", e.msg);
    return st.threshold_passes;
}

static void assert_same_file(const char *a, const char *b) {
    size_t la, lb;
    unsigned char *x = slurp(a, &la), *y = slurp(b, &lb);
    cr_assert(la == lb && memcmp(x, y, la) == 0, "%s and %s differ", a, b);
    free(x), free(y);
}

Test(anymerge, ties_thresholds_bracketed_missed_and_radix_agree) {
    char dir[] = "/tmp/ttm_anymerge_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char p[300], q[300];
    snprintf(p, sizeof p, "%s/base.safetensors", dir), write_model_kind(p, 0, ZERO);
    snprintf(p, sizeof p, "%s/m0.safetensors", dir), write_model(p, 2);
    snprintf(p, sizeof p, "%s/m1.safetensors", dir), write_model(p, 3);
    cr_assert_eq(ties_passes(dir, "bracketed", 0), 1, "a sample like the data: one counting pass");
    cr_assert_eq(ties_passes(dir, "radix", 1), 2, "no workspace: the two radix passes");
    snprintf(p, sizeof p, "%s/bracketed/model.safetensors", dir);
    snprintf(q, sizeof q, "%s/radix/model.safetensors", dir);
    assert_same_file(p, q);
    /* the sample as a histogram (large models' kind, select.h), one selection per thread */
    select_set_sample_hist_min(0);
    cr_assert_eq(ties_passes(dir, "histogram", 0), 1, "a histogram of the sample: one counting pass");
    select_set_sample_hist_min(SIZE_MAX);
    snprintf(p, sizeof p, "%s/histogram/model.safetensors", dir);
    assert_same_file(p, q);
    /* model 1 skewed at the sampled places: its bracket misses, model 0's holds */
    snprintf(p, sizeof p, "%s/m1.safetensors", dir), write_model_kind(p, 3, SKEWED);
    cr_assert_eq(ties_passes(dir, "missed", 0), 3, "a missed bracket: the counting pass and two radix passes");
    cr_assert_eq(ties_passes(dir, "radix2", 1), 2);
    snprintf(p, sizeof p, "%s/missed/model.safetensors", dir);
    snprintf(q, sizeof q, "%s/radix2/model.safetensors", dir);
    assert_same_file(p, q);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

/* ---- the engine on tensors in memory (am_merge_tau: the suite's merges) ----
 * Three tensors of K = 3 models at gaps in one output buffer, against the arrays' reference
 * (ties_threshold_array, ties_merge_arrays, the sums in model order) bit for bit: with unit weights
 * (the kernels read the rows themselves), with a weight rule (rows formed per block, as from files),
 * with task vectors given (no base), the fix-up from the list and from a second merge pass, the
 * thresholds bracketed and radix. Every 13th entry cancels exactly (+4.5, −4.5 and a trimmed
 * value) and most sums are positive, so those entries wait for the majority sign. */
#define MM_K 3
#define MM_T 3
static const char *const mm_name[MM_T] = {"a.weight", "b.weight", "c.bias"};
static const size_t mm_numel[MM_T] = {5000, 70001, 3};
static const size_t mm_offset[MM_T] = {16, 5100, 75200}; /* gaps the merge must not write */
#define MM_OUT 75300

typedef struct mm_input {
    float *base, *model[MM_K]; /* flat: the tensors one after another */
    bool no_base;              /* the model rows are task vectors; views give base = NULL */
} mm_input;

static size_t mm_first(int i) {
    size_t f = 0;
    for (int j = 0; j < i; j++) f += mm_numel[j];
    return f;
}

static void mm_views(void *user, int i, const float **model, const float **base) {
    const mm_input *in = user;
    size_t f = mm_first(i);
    for (int k = 0; k < MM_K; k++) model[k] = in->model[k] + f;
    *base = in->no_base ? NULL : in->base + f;
}

static void mm_fill(mm_input *in, size_t d) {
    in->base = malloc(d * sizeof(float));
    for (int k = 0; k < MM_K; k++) in->model[k] = malloc(d * sizeof(float));
    uint64_t x = 12345;
    for (size_t i = 0; i < d; i++) {
        float b = (float)((int)(i % 97) - 48) / 64.0f; /* exact in float: differences are exact */
        in->base[i] = b;
        for (int k = 0; k < MM_K; k++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            float t = (float)((int)(x >> 40) % 4096) / 1024.0f; /* [-4, 4) in steps of 1/1024 */
            if (k == 0) t = fabsf(t) + 0.25f;                  /* mostly positive sums */
            if (i % 13 == 0) t = k == 0 ? 4.5f : k == 1 ? -4.5f : 1.0f / 1024.0f; /* kept, kept, trimmed */
            in->model[k][i] = b + t;
        }
    }
}

/* τ_k as the engine forms it (w (θ_k − θ0), or θ_k − θ0 when w = 1) for every element. */
static void mm_task_vectors(const mm_input *in, const float *w_a, float **tv, size_t d) {
    for (int k = 0; k < MM_K; k++) {
        tv[k] = malloc(d * sizeof(float));
        for (int i = 0; i < MM_T; i++)
            for (size_t j = mm_first(i); j < mm_first(i) + mm_numel[i]; j++) {
                float w = i == 0 ? w_a[k] : 1.0f, v = in->model[k][j] - (in->no_base ? 0.0f : in->base[j]);
                tv[k][j] = w == 1.0f ? v : w * (in->model[k][j] - in->base[j]);
            }
    }
}

static void mm_run(am_method method, const mm_input *in, const float *w_a, size_t undecided_cap, size_t select_work,
                   size_t slice, const char *what) {
    size_t d = mm_first(MM_T);
    float *tv[MM_K], thr[MM_K], *want = malloc(d * sizeof(float));
    mm_task_vectors(in, w_a, tv, d);
    uint64_t kept[MM_K] = {0};
    if (method == AM_TIES) {
        for (int k = 0; k < MM_K; k++) {
            thr[k] = ties_threshold_array(tv[k], d, 20);
            for (size_t j = 0; j < d; j++) kept[k] += tv[k][j] != 0 && fabsf(tv[k][j]) >= thr[k];
        }
        cr_assert_eq(ties_merge_arrays((const float *const *)tv, MM_K, d, thr, true, want), 0);
    } else {
        for (size_t j = 0; j < d; j++) {
            want[j] = 0;
            for (int k = 0; k < MM_K; k++) want[j] += tv[k][j];
        }
    }
    am_config *c = malloc(sizeof *c);
    am_config_init(c);
    c->K = MM_K;
    c->method = method;
    c->undecided_cap = undecided_cap;
    c->select_work = select_work;
    c->slice = slice;
    for (int k = 0; k < MM_K; k++)
        if (w_a[k] != 1.0f) {
            snprintf(c->model[k].weight_rule[0].pattern, sizeof c->model[k].weight_rule[0].pattern, "a.");
            c->model[k].weight_rule[0].value = w_a[k];
            c->model[k].n_weight_rule = 1;
        }
    am_mem_input mem = {MM_T, mm_name, mm_numel, mm_offset, mm_views, (void *)in};
    float *out = malloc(MM_OUT * sizeof(float));
    for (size_t j = 0; j < MM_OUT; j++) out[j] = -7.0f;
    am_tau_result r;
    tt_err e = {0};
    cr_assert_eq(am_merge_tau(c, &mem, out, &r, &e), 0, "%s: %s", what, e.msg);
    cr_assert_eq(r.elements, d);
    size_t listed = 0;
    for (int i = 0; i < MM_T; i++)
        for (size_t j = 0; j < mm_numel[i]; j++) {
            size_t g = mm_first(i) + j;
            cr_assert(memcmp(&out[mm_offset[i] + j], &want[g], sizeof(float)) == 0, "%s: %s[%zu] = %.9g, want %.9g",
                      what, mm_name[i], j, (double)out[mm_offset[i] + j], (double)want[g]);
            listed += g % 13 == 0 && want[g] == 4.5f; /* the positive majority's */
        }
    for (size_t j = 0; j < MM_OUT; j++) {
        bool inside = false;
        for (int i = 0; i < MM_T; i++) inside |= j >= mm_offset[i] && j < mm_offset[i] + mm_numel[i];
        if (!inside) cr_assert_eq(out[j], -7.0f, "%s: the gap at %zu was written", what, j);
    }
    if (method == AM_TIES) {
        cr_assert(listed > d / 13 / 2, "%s: the exact cancellations lost their point (%zu)", what, listed);
        for (int k = 0; k < MM_K; k++) {
            cr_assert_eq(r.thr[k], thr[k], "%s: threshold %d", what, k);
            cr_assert_eq(r.kept[k], kept[k], "%s: kept %d", what, k);
        }
    }
    for (int k = 0; k < MM_K; k++) free(tv[k]);
    free(want), free(out), free(c);
}

static void mm_free(mm_input *in) {
    free(in->base);
    for (int k = 0; k < MM_K; k++) free(in->model[k]);
}

Test(anymerge, memory_ta_and_ties_equal_the_arrays_reference) {
    size_t d = mm_first(MM_T);
    mm_input in = {0};
    mm_fill(&in, d);
    const float unit[MM_K] = {1, 1, 1}, weighted[MM_K] = {0.5f, 1, 0.25f};
    const size_t dflt = (size_t)1 << 20;
    mm_run(AM_TA, &in, unit, dflt, 0, 0, "ta, unit weights");
    mm_run(AM_TA, &in, weighted, dflt, 0, 777, "ta, a weight rule");
    mm_run(AM_TIES, &in, unit, dflt, 0, 0, "ties, unit weights");
    mm_run(AM_TIES, &in, unit, 0, 0, 0, "ties, unit weights, no room for the list");
    mm_run(AM_TIES, &in, unit, dflt, 1, 0, "ties, unit weights, radix thresholds");
    mm_run(AM_TIES, &in, weighted, dflt, 0, 777, "ties, a weight rule");
    mm_run(AM_TIES, &in, weighted, 5, 1, 777, "ties, a weight rule, the list overflowing, radix");
    /* task vectors given: θ_k − θ0 precomputed, no base */
    mm_input tvin = {.no_base = true};
    tvin.base = calloc(d, sizeof(float));
    for (int k = 0; k < MM_K; k++) {
        tvin.model[k] = malloc(d * sizeof(float));
        for (size_t j = 0; j < d; j++) tvin.model[k][j] = in.model[k][j] - in.base[j];
    }
    mm_run(AM_TA, &tvin, unit, dflt, 0, 0, "ta, task vectors given");
    mm_run(AM_TIES, &tvin, unit, dflt, 0, 0, "ties, task vectors given");
    mm_free(&tvin), mm_free(&in);
}

/* A non-finite value where the engine forms the rows is an error naming the model and the tensor;
 * only ta and ties run in memory. */
Test(anymerge, memory_errors_are_one_line) {
    size_t d = mm_first(MM_T);
    mm_input in = {0};
    mm_fill(&in, d);
    in.model[1][mm_first(1) + 4321] = NAN;
    am_config *c = malloc(sizeof *c);
    am_config_init(c);
    c->K = MM_K;
    c->method = AM_TIES;
    c->model[2].weight = 0.5; /* rows formed by the engine: checked */
    am_mem_input mem = {MM_T, mm_name, mm_numel, mm_offset, mm_views, &in};
    float *out = malloc(MM_OUT * sizeof(float));
    tt_err e = {0};
    cr_assert_neq(am_merge_tau(c, &mem, out, NULL, &e), 0);
    cr_assert(strstr(e.msg, "model 1 (in memory)") && strstr(e.msg, "b.weight") && strstr(e.msg, "element 4321"),
              "%s", e.msg);
    cr_assert_null(strchr(e.msg, '\n'));
    c->method = AM_CONSENSUS_TA;
    cr_assert_neq(am_merge_tau(c, &mem, out, NULL, &e), 0);
    cr_assert(strstr(e.msg, "only ta and ties"), "%s", e.msg);
    free(out), free(c);
    mm_free(&in);
}
