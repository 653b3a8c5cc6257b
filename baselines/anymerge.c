/* anymerge.c — see anymerge.h. */
#define _POSIX_C_SOURCE 200809L /* opendir, strdup */
#include "baselines/anymerge.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "baselines/kernels.h"
#include "baselines/select.h"
#include "core/arena.h"
#include "core/progress.h"
#include "core/tensorset.h"
#include "core/tensorsink.h"
#include "core/version.h"

static const char *const method_names[] = {"ta", "ties", "dare", "consensus-ta", "consensus-ties", "average"};

int am_method_parse(const char *name, am_method *out) {
    for (int i = 0; i < 6; i++)
        if (!strcmp(name, method_names[i])) return *out = (am_method)i, 0;
    return -1;
}

const char *am_method_name(am_method m) { return method_names[m]; }

void am_config_init(am_config *c) {
    memset(c, 0, sizeof *c);
    c->lambda = -1;
    c->topk = 20;
    c->density = 0.5;
    c->mean = true;
    c->k = 2;
    c->tall_lambda = 0.6;
    c->out_dtype = -1;
    c->copy_files = true;
    for (int k = 0; k < AM_MAX_MODELS; k++) c->model[k].weight = 1, c->model[k].density = -1;
}

double am_default_lambda(const am_config *c) {
    bool ties_mean = (c->method == AM_TIES || (c->method == AM_DARE && c->dare_ties)) && c->mean;
    return ties_mean ? 1.0 : 0.3;
}

static int parse_number(const char *key, const char *v, double lo, double hi, double *out, tt_err *err) {
    char *end;
    double x = strtod(v, &end);
    if (end == v || *end || !isfinite(x) || x < lo || x > hi)
        return tt_fail(err, TT_EINPUT, "parameter %s=%s: expected a number in [%g, %g]", key, v, lo, hi);
    *out = x;
    return 0;
}

int am_config_set(am_config *c, const char *kv, tt_err *err) {
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv) return tt_fail(err, TT_EINPUT, "parameter '%s': expected KEY=VALUE", kv);
    char key[32];
    snprintf(key, sizeof key, "%.*s", (int)(eq - kv < 31 ? eq - kv : 31), kv);
    const char *v = eq + 1;
    double x = 0;
    if (!strcmp(key, "lambda")) return parse_number(key, v, -1e6, 1e6, &c->lambda, err);
    if (!strcmp(key, "topk")) return parse_number(key, v, 0, 100, &c->topk, err);
    if (!strcmp(key, "density")) return parse_number(key, v, 0, 1, &c->density, err);
    if (!strcmp(key, "tall_lambda")) return parse_number(key, v, 0, 1e6, &c->tall_lambda, err);
    if (!strcmp(key, "k")) {
        if (parse_number(key, v, 0, AM_MAX_MODELS + 1, &x, err)) return -1;
        if (x != floor(x)) return tt_fail(err, TT_EINPUT, "parameter k=%s: expected an integer", v);
        c->k = (int)x;
        return 0;
    }
    if (!strcmp(key, "base")) {
        if (strcmp(v, "ta") && strcmp(v, "ties")) return tt_fail(err, TT_EINPUT, "parameter base=%s: expected ta or ties", v);
        c->dare_ties = !strcmp(v, "ties");
        return 0;
    }
    if (!strcmp(key, "merge")) {
        if (strcmp(v, "mean") && strcmp(v, "sum")) return tt_fail(err, TT_EINPUT, "parameter merge=%s: expected mean or sum", v);
        c->mean = !strcmp(v, "mean");
        return 0;
    }
    return tt_fail(err, TT_EINPUT,
                   "unknown parameter '%s' (lambda, topk, density, base, merge, k, tall_lambda)", key);
}

double am_weight(const am_model *m, const char *tensor) {
    for (int r = 0; r < m->n_weight_rule; r++)
        if (strstr(tensor, m->weight_rule[r].pattern)) return m->weight_rule[r].value;
    return m->weight;
}

/* ---- the engine ---- */

typedef struct am_tensor {
    const ts_tensor *base;
    const ts_tensor *m[AM_MAX_MODELS];
    bool merged;      /* floating point: merged; else copied from the base */
    uint64_t key;     /* kern_name_key of the name (DARE's hash) */
    uint64_t gfirst;  /* first element in the concatenation of the merged tensors */
    float w[AM_MAX_MODELS];
} am_tensor;

typedef struct engine {
    const am_config *c;
    int K;
    ts_set *base, *set[AM_MAX_MODELS];
    am_tensor *t;
    int n;
    uint64_t d;       /* merged elements */
    size_t slice;
    float *fb, *tv[AM_MAX_MODELS], *out;
    uint8_t *count;
    float lam;
    bool ties;        /* the method needs TIES thresholds and the majority sign */
    bool mean;        /* TIES: disjoint mean */
    float thr[AM_MAX_MODELS];
    double rho[AM_MAX_MODELS];
    int8_t majority;
    /* the fused TIES pass */
    int64_t balance;
    uint64_t kept[AM_MAX_MODELS];
    uint64_t *und;
    size_t und_cap, n_und;
    tsk_sink *sink;
} engine;

static bool float_dtype(st_dtype d) { return d == ST_F32 || d == ST_F16 || d == ST_BF16 || d == ST_F64; }

static void shape_str(const st_tensor *t, char *buf, size_t cap) {
    size_t o = (size_t)snprintf(buf, cap, "[");
    for (int d = 0; d < t->ndim && o < cap; d++) o += (size_t)snprintf(buf + o, cap - o, d ? ",%lld" : "%lld", (long long)t->shape[d]);
    if (o < cap) snprintf(buf + o, cap - o, "]");
}

static bool same_shape(const st_tensor *a, const st_tensor *b) {
    if (a->ndim != b->ndim) return false;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d]) return false;
    return true;
}

/* Open every input and match the models' tensors to the base's. */
static int plan(engine *e, tt_err *err) {
    const am_config *c = e->c;
    if (ts_open(&e->base, c->base, err)) return -1;
    for (int k = 0; k < e->K; k++)
        if (ts_open(&e->set[k], c->model[k].path, err)) return -1;
    e->n = ts_count(e->base);
    if (!(e->t = calloc((size_t)(e->n ? e->n : 1), sizeof *e->t))) return tt_fail(err, TT_ENOMEM, "out of memory");
    char sa[160], sb[160];
    for (int i = 0; i < e->n; i++) {
        am_tensor *t = &e->t[i];
        t->base = ts_at(e->base, i);
        t->merged = float_dtype(t->base->t->dtype);
        const char *name = t->base->t->name;
        t->key = kern_name_key(name);
        for (int k = 0; k < e->K; k++) {
            const ts_tensor *m = ts_find(e->set[k], name);
            if (!m)
                return tt_fail(err, TT_EINPUT, "tensor %s of %s is missing from %s", name, st_path(t->base->file),
                               ts_path(e->set[k]));
            if (!same_shape(m->t, t->base->t)) {
                shape_str(t->base->t, sa, sizeof sa), shape_str(m->t, sb, sizeof sb);
                return tt_fail(err, TT_EINPUT, "tensor %s has shape %s in %s but %s in %s", name, sa,
                               st_path(t->base->file), sb, st_path(m->file));
            }
            if (t->merged && !float_dtype(m->t->dtype))
                return tt_fail(err, TT_EINPUT, "tensor %s is %s in %s but %s in %s", name,
                               st_dtype_name(t->base->t->dtype), st_path(t->base->file), st_dtype_name(m->t->dtype),
                               st_path(m->file));
            t->m[k] = m;
            t->w[k] = (float)am_weight(&c->model[k], name);
        }
        if (t->merged) t->gfirst = e->d, e->d += (uint64_t)t->base->t->numel;
    }
    for (int k = 0; k < e->K; k++)
        for (int j = 0; j < ts_count(e->set[k]); j++) {
            const char *name = ts_at(e->set[k], j)->t->name;
            if (!ts_find(e->base, name))
                return tt_fail(err, TT_EINPUT, "tensor %s of %s is not in the base %s", name,
                               st_path(ts_at(e->set[k], j)->file), ts_path(e->base));
        }
    return 0;
}

/* Index of the first inf or NaN in x[0..n), or n. */
static size_t first_nonfinite(const float *x, size_t n) {
    uint32_t any = 0;
#pragma omp parallel for schedule(static) reduction(| : any) if (n > KERN_PAR_MIN)
    for (size_t j = 0; j < n; j++) {
        uint32_t u;
        memcpy(&u, &x[j], sizeof u);
        any |= (u & 0x7f800000u) == 0x7f800000u;
    }
    if (!any) return n;
    size_t j = 0;
    while (j < n && isfinite(x[j])) j++;
    return j;
}

static int check_finite(const ts_tensor *t, const float *x, size_t first, size_t n, tt_err *err) {
    size_t j = first_nonfinite(x, n);
    if (j == n) return 0;
    return tt_fail(err, TT_EINPUT, "%s: tensor %s: element %zu is %g (merges need finite values)", st_path(t->file),
                   t->t->name, first + j, (double)x[j]);
}

/* τ_k = w_k (θ_k − θ0) in place over slice [first, first + n) (then DARE's drop and rescale). */
static void task_vector_slice(engine *e, const am_tensor *t, int k, size_t first, size_t n) {
    float *x = e->tv[k], w = t->w[k];
    const float *b = e->fb;
    if (w == 1.0f) {
#pragma omp parallel for schedule(static) if (n > KERN_PAR_MIN)
        for (size_t j = 0; j < n; j++) x[j] = x[j] - b[j];
    } else {
#pragma omp parallel for schedule(static) if (n > KERN_PAR_MIN)
        for (size_t j = 0; j < n; j++) x[j] = w * (x[j] - b[j]);
    }
    if (e->c->method == AM_DARE) dare_apply_at(x, n, e->rho[k], e->c->seed, k, t->key, first);
}

/* Read slice [first, first + n) of tensor t: θ0 into fb, τ_k (or θ_k for average) into tv[k].
 * The K models are read on the threads, one model each: converting from the file's dtype and the
 * first touch of the mapped pages were one thread's work and most of a merge's time. Each model's
 * numbers are the same whichever thread reads it; the first failing model (lowest k) is reported,
 * read again on this thread for its message. */
static int load_slice(engine *e, const am_tensor *t, size_t first, size_t n, tt_err *err) {
    if (ts_read_f32_range(t->base, first, n, e->fb, err) || check_finite(t->base, e->fb, first, n, err)) return -1;
    bool failed[AM_MAX_MODELS] = {false};
#pragma omp parallel for schedule(dynamic, 1) if (n > KERN_PAR_MIN)
    for (int k = 0; k < e->K; k++) {
        tt_err ignored;
        if (ts_read_f32_range(t->m[k], first, n, e->tv[k], &ignored) || first_nonfinite(e->tv[k], n) != n) {
            failed[k] = true;
            continue;
        }
        if (e->c->method != AM_AVERAGE) task_vector_slice(e, t, k, first, n);
    }
    for (int k = 0; k < e->K; k++)
        if (failed[k]) {
            if (ts_read_f32_range(t->m[k], first, n, e->tv[k], err) || check_finite(t->m[k], e->tv[k], first, n, err))
                return -1;
            return tt_fail(err, TT_EINTERNAL, "%s: tensor %s: a read failed once", st_path(t->m[k]->file), t->base->t->name);
        }
    return 0;
}

static void release_slice(engine *e, const am_tensor *t, size_t first, size_t n) {
    ts_release_range(t->base, first * st_dtype_size(t->base->t->dtype), n * st_dtype_size(t->base->t->dtype));
    for (int k = 0; k < e->K; k++) {
        size_t es = st_dtype_size(t->m[k]->t->dtype);
        ts_release_range(t->m[k], first * es, n * es);
    }
}

/* The TIES merge of the slice's τ into out: fused (majority not yet known; undecided entries
 * listed) or with the known majority. */
static void ties_slice(engine *e, const am_tensor *t, size_t first, size_t n, bool fused, bool mean) {
    const float *const *tv = (const float *const *)e->tv;
    if (fused) {
        e->balance += ties_fused_k(e->out, tv, NULL, e->K, n, e->thr, mean, e->kept, t->gfirst + first, e->und,
                                   e->und_cap, &e->n_und);
    } else {
        uint64_t kept[AM_MAX_MODELS] = {0};
        ties_trim_sum_k(e->out, tv, NULL, e->K, n, e->thr, kept);
        ties_disjoint_k(e->out, tv, NULL, e->K, n, e->thr, e->majority, mean);
    }
}

/* The merged slice into out (θ), from load_slice's buffers. */
static void merge_slice(engine *e, const am_tensor *t, size_t first, size_t n, bool fused) {
    float *out = e->out;
    const float *fb = e->fb;
    const float *const *tv = (const float *const *)e->tv;
    switch (e->c->method) {
    case AM_AVERAGE: {
        double wsum = 0;
        for (int k = 0; k < e->K; k++) wsum += t->w[k];
        float inv = (float)(1.0 / wsum);
        memset(out, 0, n * sizeof *out);
        for (int k = 0; k < e->K; k++) {
            float w = t->w[k];
            const float *x = tv[k];
#pragma omp parallel for schedule(static) if (n > KERN_PAR_MIN)
            for (size_t j = 0; j < n; j++) out[j] += w * x[j];
        }
#pragma omp parallel for schedule(static) if (n > KERN_PAR_MIN)
        for (size_t j = 0; j < n; j++) out[j] *= inv;
        return;
    }
    case AM_TA:
        memset(out, 0, n * sizeof *out);
        kern_add_task_vectors(out, tv, NULL, e->K, n);
        break;
    case AM_DARE:
        if (e->ties) ties_slice(e, t, first, n, fused, e->mean);
        else memset(out, 0, n * sizeof *out), kern_add_task_vectors(out, tv, NULL, e->K, n);
        break;
    case AM_TIES:
        ties_slice(e, t, first, n, fused, e->mean);
        break;
    case AM_CONSENSUS_TA:
    case AM_CONSENSUS_TIES:
        if (e->ties) ties_slice(e, t, first, n, fused, false);
        else memset(out, 0, n * sizeof *out), kern_add_task_vectors(out, tv, NULL, e->K, n);
        memset(e->count, 0, n);
        for (int k = 0; k < e->K; k++) tall_mask_add(e->count, tv[k], out, n, (float)e->c->tall_lambda);
        consensus_apply(out, e->count, n, e->c->k);
        break;
    }
    float l = e->lam;
#pragma omp parallel for schedule(static) if (n > KERN_PAR_MIN)
    for (size_t j = 0; j < n; j++) out[j] = fb[j] + l * out[j];
}

typedef enum pass_kind { PASS_SELECT, PASS_MERGE, PASS_REMERGE } pass_kind;

/* One pass over every merged tensor, a slice at a time. */
static int stream(engine *e, pass_kind kind, select_ctx *sel, const int *sel_task, int ns, tt_err *err) {
    for (int i = 0; i < e->n; i++) {
        const am_tensor *t = &e->t[i];
        if (!t->merged) continue;
        size_t numel = (size_t)t->base->t->numel;
        for (size_t first = 0; first < numel || (first == 0 && numel == 0); first += e->slice) {
            size_t n = numel - first < e->slice ? numel - first : e->slice;
            if (load_slice(e, t, first, n, err)) return -1;
            if (kind == PASS_SELECT) {
                const float *x[AM_MAX_MODELS];
                for (int j = 0; j < ns; j++) x[j] = e->tv[sel_task[j]];
                select_feed_diff_multi(sel, ns, x, NULL, n);
            } else {
                merge_slice(e, t, first, n, kind == PASS_MERGE && e->ties);
                int rc = kind == PASS_MERGE ? tsk_write_f32(e->sink, i, first, e->out, n, err)
                                            : tsk_rewrite_f32(e->sink, i, first, e->out, n, err);
                if (rc) return -1;
            }
            release_slice(e, t, first, n);
            if (numel == 0) break;
        }
        ts_release(t->base);
        for (int k = 0; k < e->K; k++) ts_release(t->m[k]);
    }
    return 0;
}

/* Each model's global trim threshold: the exact order statistic of |τ_k| over all merged elements
 * (ties_threshold_rank's rank), two radix passes for all models together. */
static int thresholds(engine *e, double topk, tt_err *err) {
    select_ctx sel[AM_MAX_MODELS];
    int task[AM_MAX_MODELS], ns = 0, rc = 0;
    for (int k = 0; k < e->K; k++) {
        double tk = e->c->model[k].density >= 0 && e->c->method != AM_DARE ? 100.0 * e->c->model[k].density : topk;
        uint64_t rank;
        e->thr[k] = 0;
        if (!ties_threshold_rank(e->d, tk, &rank)) continue;
        if (select_init(&sel[ns], rank, true, err)) {
            while (ns--) select_free(&sel[ns]);
            return -1;
        }
        task[ns++] = k;
    }
    bool more = ns > 0;
    while (more && !rc) {
        rc = stream(e, PASS_SELECT, sel, task, ns, err);
        more = false;
        for (int j = 0; j < ns && !rc; j++)
            if (!select_done(&sel[j])) more |= select_next_pass(&sel[j]);
    }
    for (int j = 0; j < ns; j++) {
        if (!rc) e->thr[task[j]] = select_value(&sel[j]);
        select_free(&sel[j]);
    }
    return rc;
}

static int cmp_u64(const void *x, const void *y) {
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return (a > b) - (a < b);
}

/* After the fused pass: the entries it listed, recomputed one by one with the positive majority
 * and rewritten (or the whole pass again when the list overflowed). */
static int fix_undecided(engine *e, tt_err *err) {
    e->majority = e->balance > 0 ? 1 : e->balance < 0 ? -1 : 0;
    if (e->majority <= 0 || e->n_und == 0) return 0;
    if (e->n_und > e->und_cap) return stream(e, PASS_REMERGE, NULL, NULL, 0, err);
    qsort(e->und, e->n_und, sizeof *e->und, cmp_u64);
    int i = 0;
    for (size_t u = 0; u < e->n_und; u++) {
        uint64_t g = e->und[u];
        while (!e->t[i].merged || g >= e->t[i].gfirst + (uint64_t)e->t[i].base->t->numel) i++;
        const am_tensor *t = &e->t[i];
        size_t first = (size_t)(g - t->gfirst);
        if (load_slice(e, t, first, 1, err)) return -1;
        merge_slice(e, t, first, 1, false);
        if (tsk_rewrite_f32(e->sink, i, first, e->out, 1, err)) return -1;
    }
    return 0;
}

/* Tensors that are not merged, and the base directory's other files. */
static int copy_rest(engine *e, tt_err *err) {
    for (int i = 0; i < e->n; i++) {
        const st_tensor *b = e->t[i].base->t;
        if (!e->t[i].merged && tsk_write_raw(e->sink, i, 0, b->data, b->nbytes, err)) return -1;
    }
    const char *dir = ts_dir(e->base);
    if (!dir || !e->c->copy_files) return 0;
    DIR *d = opendir(dir);
    if (!d) return 0;
    int rc = 0;
    char path[4096];
    for (struct dirent *de; !rc && (de = readdir(d));) {
        const char *nm = de->d_name;
        size_t l = strlen(nm);
        if (nm[0] == '.' || (l > 12 && !strcmp(nm + l - 12, ".safetensors")) ||
            (l > 23 && !strcmp(nm + l - 23, ".safetensors.index.json")))
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, nm);
        struct stat sb;
        if (stat(path, &sb) || !S_ISREG(sb.st_mode)) continue;
        rc = tsk_copy_file(e->sink, nm, path, err);
    }
    closedir(d);
    return rc;
}

static int open_sink(engine *e, const char *out, tt_err *err) {
    const am_config *c = e->c;
    tsk_spec *spec = calloc((size_t)(e->n ? e->n : 1), sizeof *spec);
    if (!spec) return tt_fail(err, TT_ENOMEM, "out of memory");
    for (int i = 0; i < e->n; i++) {
        const st_tensor *b = e->t[i].base->t;
        spec[i].name = b->name;
        spec[i].dtype = e->t[i].merged && c->out_dtype >= 0 ? (st_dtype)c->out_dtype : b->dtype;
        spec[i].ndim = b->ndim;
        memcpy(spec[i].shape, b->shape, sizeof spec[i].shape);
    }
    char params[512];
    snprintf(params, sizeof params,
             "{\"lambda\":%.9g,\"topk\":%.9g,\"density\":%.9g,\"base\":\"%s\",\"merge\":\"%s\",\"k\":%d,"
             "\"tall_lambda\":%.9g,\"seed\":%llu,\"models\":%d}",
             (double)e->lam, c->topk, c->density, c->dare_ties ? "ties" : "ta", c->mean ? "mean" : "sum", c->k,
             c->tall_lambda, (unsigned long long)c->seed, e->K);
    tsk_kv meta[] = {{"format", "pt"},
                     {"ttmerge.method", am_method_name(c->method)},
                     {"ttmerge.params", params},
                     {"ttmerge.version", ttmerge_version()}};
    int rc = tsk_open(&e->sink, out, spec, e->n, c->shard_size, meta, 4, err);
    free(spec);
    return rc;
}

static void engine_free(engine *e) {
    ts_close(e->base);
    for (int k = 0; k < e->K; k++) ts_close(e->set[k]), free(e->tv[k]);
    free(e->t);
    free(e->fb);
    free(e->out);
    free(e->count);
    free(e->und);
}

int am_run(const am_config *c, const char *out, uint64_t stats[3], tt_err *err) {
    if (c->K < 1 || c->K > AM_MAX_MODELS)
        return tt_fail(err, TT_EINPUT, "%d models given: between 1 and %d are merged", c->K, AM_MAX_MODELS);
    engine e = {.c = c, .K = c->K};
    e.slice = c->slice ? c->slice : (size_t)1 << 20;
    e.lam = (float)(c->lambda >= 0 ? c->lambda : am_default_lambda(c));
    e.ties = c->method == AM_TIES || c->method == AM_CONSENSUS_TIES || (c->method == AM_DARE && c->dare_ties);
    e.mean = c->mean;
    for (int k = 0; k < e.K; k++) e.rho[k] = c->model[k].density >= 0 ? c->model[k].density : c->density;
    int rc = -1;
    if (plan(&e, err)) goto done;
    if (!(e.fb = tt_calloc_aligned(e.slice, sizeof(float), err)) ||
        !(e.out = tt_calloc_aligned(e.slice, sizeof(float), err)) || !(e.count = tt_calloc_aligned(e.slice, 1, err)))
        goto done;
    for (int k = 0; k < e.K; k++)
        if (!(e.tv[k] = tt_calloc_aligned(e.slice, sizeof(float), err))) goto done;
    progress pg;
    progress_start(&pg, am_method_name(c->method), e.ties ? 4 : 2, c->progress);
    if (e.ties) {
        e.und_cap = c->undecided_cap ? c->undecided_cap : (size_t)1 << 20;
        if (!(e.und = malloc(e.und_cap * sizeof *e.und))) {
            tt_fail(err, TT_ENOMEM, "out of memory");
            progress_end(&pg);
            goto done;
        }
        if (thresholds(&e, c->topk, err)) {
            progress_end(&pg);
            goto done;
        }
        progress_update(&pg, 2, "thresholds");
    }
    if (open_sink(&e, out, err) || copy_rest(&e, err) || stream(&e, PASS_MERGE, NULL, NULL, 0, err) ||
        (e.ties && fix_undecided(&e, err))) {
        tsk_abort(e.sink);
        progress_end(&pg);
        goto done;
    }
    progress_update(&pg, e.ties ? 4 : 2, "written");
    progress_end(&pg);
    rc = tsk_commit(e.sink, err);
    if (!rc && stats) {
        stats[0] = stats[1] = 0, stats[2] = e.d;
        for (int i = 0; i < e.n; i++) stats[e.t[i].merged ? 0 : 1]++;
    }
done:
    engine_free(&e);
    return rc;
}
