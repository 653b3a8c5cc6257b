/* anymerge.c — see anymerge.h. */
#define _DEFAULT_SOURCE /* with it POSIX 2008: opendir, strdup, pread */
#include "baselines/anymerge.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#ifdef __AVX2__
#include <immintrin.h>
#endif
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "baselines/kernels.h"
#include "baselines/methods.h"
#include "baselines/select.h"
#include "baselines/svd.h"
#include "core/arena.h"
#include "core/progress.h"
#include "core/tensorset.h"
#include "core/tensorsink.h"
#include "core/version.h"

/* The methods that merge each 2-D tensor whole through SVDs (svd_merge_tensors). */
static bool svd_method(am_method m) { return m == AM_TSV_M || m == AM_ISO_C || m == AM_ISO_CTS || m == AM_CART; }
/* The methods that are ta with per-tensor model weights from a statistics pass (tensor_weights). */
static bool weighted_ta(am_method m) { return m == AM_AWD || m == AM_LATA; }

/* ---- the engine ---- */

/* Where one input tensor's bytes are: read with pread, not through the mapping. Faulting in the
 * mapped pages of a warm page cache ran at ~4 GB/s on 2 threads of a VM; pread of 32-256 KB pieces
 * into a thread's buffer, then converting from cache, at ~12-16 GB/s (docs/any-model.md). */
typedef struct am_src {
    int fd;         /* -1: the data is in memory (mem), or zeros (mem NULL) */
    uint64_t off;   /* of the tensor's data in the file */
    st_dtype dtype;
    const unsigned char *mem;
} am_src;

typedef struct am_tensor {
    const ts_tensor *base;             /* files: the inputs' tensors (NULL in memory) */
    const ts_tensor *m[AM_MAX_MODELS];
    const char *name;
    size_t numel;
    size_t mem_at;    /* in memory: the tensor's place in the output */
    bool merged;      /* floating point: merged; else copied from the base */
    bool svd;         /* merged by the per-matrix SVD merge (tsv-m, iso-c, iso-cts, cart), not streamed */
    uint64_t key;     /* kern_name_key of the name (DARE's hash) */
    uint64_t gfirst;  /* first element in the concatenation of the merged tensors */
    st_dtype out;     /* the dtype written */
    float w[AM_MAX_MODELS];
    am_src src[AM_MAX_MODELS + 1]; /* [0] the base, [1 + k] model k */
} am_tensor;

typedef struct engine {
    const am_config *c;
    int K;
    ts_set *base, *set[AM_MAX_MODELS];
    int *fds[AM_MAX_MODELS + 1]; /* per input (base, models) one descriptor per shard */
    int n_fds[AM_MAX_MODELS + 1];
    am_tensor *t;
    int n;
    uint64_t d;       /* merged elements */
    size_t slice;
    size_t chunk;     /* chunk_elements(K) */
    float *fb, *tv[AM_MAX_MODELS], *out;
    uint8_t *count;
    unsigned char *obuf; /* a slice in the output dtype */
    unsigned char *raw;  /* per thread: K + 1 rows, a chunk of each input's bytes */
    const unsigned char **in; /* per thread: K + 1 pointers, the current chunk of each input */
    size_t raw_es;       /* bytes per element of a raw row: the widest merged input dtype */
    float *blk;          /* per thread: a block's scratch (block_scratch) */
    float lam;
    bool ties;        /* the method needs TIES thresholds and the majority sign */
    bool mean;        /* TIES: disjoint mean */
    float thr[AM_MAX_MODELS];
    float tatr_thr;   /* tatr: entries with Ω below it are kept */
    pcb_row pcb[AM_MAX_MODELS]; /* pcb: each model's bounds, found by pcb_bounds */
    float pcb_lam;    /* pcb: its λ (e->lam is 1: θ0 + τ_m) */
    bool pcb_scores;  /* pcb: a counting pass feeds the balancing scores (else |τ_k|) */
    float *pcb_max;   /* pcb: per thread and model, the largest score fed */
    double rho[AM_MAX_MODELS];
    int8_t majority;
    /* the fused TIES pass */
    int64_t balance;
    uint64_t *und;
    size_t und_cap, n_und;
    float *sel_work;  /* the bracketed selections' workspace while the thresholds are found */
    size_t sel_work_len; /* floats of it per selection */
    int threshold_passes; /* full passes over the inputs the thresholds took (am_stats) */
    uint64_t kept[AM_MAX_MODELS]; /* TIES: entries past the trim, counted by the f32 kernels */
    tsk_sink *sink;
    /* tensors in memory (am_merge_tau): the merged task vectors go to mem_out, no λ or base */
    const am_mem_input *mem;
    float *mem_out;
    int mem_viewing; /* the tensor whose views the sources hold, or -1 */
    bool mem_views;  /* every weight 1: the kernels read the caller's rows themselves (merge_views) */
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

/* One read-only descriptor per shard of input j (0 the base, 1 + k model k). */
static int open_shards(engine *e, int j, const ts_set *s, tt_err *err) {
    int n = ts_shard_count(s);
    if (!(e->fds[j] = malloc((size_t)(n ? n : 1) * sizeof(int)))) return tt_fail(err, TT_ENOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        const char *path = st_path(ts_shard(s, i));
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return tt_fail(err, TT_EIO, "%s: cannot open: %s%s", path, strerror(errno),
                           errno == EMFILE ? " (raise the open-file limit: ulimit -n)" : "");
        e->fds[j][e->n_fds[j]++] = fd;
    }
    return 0;
}

static am_src source_of(const engine *e, int j, const ts_set *s, const ts_tensor *t) {
    am_src src = {.fd = -1, .off = st_data_offset(t->file, t->t), .dtype = t->t->dtype};
    for (int i = 0; i < e->n_fds[j]; i++)
        if (ts_shard(s, i) == t->file) src.fd = e->fds[j][i];
    return src;
}

/* A merge holds (K + 1) x shards descriptors: take the soft open-file limit up to the hard one
 * (often 1024 of 524288), as a process that opens many files should. */
static void raise_file_limit(void) {
    struct rlimit r;
    if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
        r.rlim_cur = r.rlim_max;
        setrlimit(RLIMIT_NOFILE, &r);
    }
}

/* Open every input and match the models' tensors to the base's. */
static int plan(engine *e, tt_err *err) {
    const am_config *c = e->c;
    raise_file_limit();
    if (ts_open(&e->base, c->base, err) || open_shards(e, 0, e->base, err)) return -1;
    for (int k = 0; k < e->K; k++)
        if (ts_open(&e->set[k], c->model[k].path, err) || open_shards(e, 1 + k, e->set[k], err)) return -1;
    e->n = ts_count(e->base);
    if (!(e->t = calloc((size_t)(e->n ? e->n : 1), sizeof *e->t))) return tt_fail(err, TT_ENOMEM, "out of memory");
    char sa[160], sb[160];
    for (int i = 0; i < e->n; i++) {
        am_tensor *t = &e->t[i];
        t->base = ts_at(e->base, i);
        t->merged = float_dtype(t->base->t->dtype);
        const char *name = t->name = t->base->t->name;
        t->numel = (size_t)t->base->t->numel;
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
            t->src[1 + k] = source_of(e, 1 + k, e->set[k], m);
        }
        t->svd = t->merged && svd_method(c->method) && t->base->t->ndim == 2 &&
                 (c->method == AM_CART ? cart_name_selected(name) : !strstr(name, "text_projection"));
        if (t->merged) {
            t->gfirst = e->d, e->d += (uint64_t)t->numel;
            for (int j = 0; j <= e->K; j++) {
                size_t es = st_dtype_size(j ? t->m[j - 1]->t->dtype : t->base->t->dtype);
                if (es > e->raw_es) e->raw_es = es;
            }
        }
        t->out = t->merged && c->out_dtype >= 0 ? (st_dtype)c->out_dtype : t->base->t->dtype;
        t->src[0] = source_of(e, 0, e->base, t->base);
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

/* Index of the first inf or NaN in x[0..n), or n (on this thread: called per chunk). */
static size_t first_nonfinite(const float *x, size_t n) {
    uint32_t any = 0;
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

/* Input j of t (0 the base, 1 + k model k) for a message: its file, or its place in memory. */
static const char *input_name(const am_tensor *t, int j, char *buf, size_t cap) {
    const ts_tensor *in = j == 0 ? t->base : t->m[j - 1];
    if (in) return st_path(in->file);
    if (j == 0) return "the base (in memory)";
    snprintf(buf, cap, "model %d (in memory)", j - 1);
    return buf;
}

static int check_finite(const char *input, const char *tensor, const float *x, size_t first, size_t n,
                        tt_err *err) {
    size_t j = first_nonfinite(x, n);
    if (j == n) return 0;
    return tt_fail(err, TT_EINPUT, "%s: tensor %s: element %zu is %g (merges need finite values)", input, tensor,
                   first + j, (double)x[j]);
}

/* A chunk: the elements one thread carries through every stage of a merge (read, check, τ,
 * merge, output conversion) while they sit in its cache, K + 3 rows of floats in at most
 * AM_CHUNK_BYTES (L2 + its share of L3 on current x86), a power of two of at most AM_CHUNK_MAX
 * elements. Each stage over a whole slice in turn went through memory between stages; smaller
 * chunks mean smaller preads, whose per-call cost showed: on 2 threads of a Zen 5 VM, 8 x 0.93 GB
 * BF16 merged by ta in 3.3 s with 8 Ki-element chunks, 2.6 s with 32 Ki, 2.3 s with 128 Ki (medians). */
#define AM_CHUNK_BYTES ((size_t)6 << 20)
#define AM_CHUNK_MAX ((size_t)1 << 17)

static size_t chunk_elements(int K) {
    size_t c = AM_CHUNK_MAX;
    while (c > KERN_BLOCK && c * (size_t)(K + 3) * sizeof(float) > AM_CHUNK_BYTES) c /= 2;
    return c;
}

/* The bytes of elements [at, at + n) of a source tensor into dst. False with *why set (an errno,
 * or 0: the file ended) when the read fails. */
static bool read_bytes(const am_src *s, size_t at, size_t n, unsigned char *dst, int *why) {
    size_t es = st_dtype_size(s->dtype), len = n * es;
    if (s->fd < 0) {
        if (s->mem) memcpy(dst, s->mem + at * es, len);
        else memset(dst, 0, len);
        return true;
    }
    for (size_t got = 0; got < len;) {
        ssize_t r = pread(s->fd, dst + got, len - got, (off_t)(s->off + at * es + got));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            *why = r < 0 ? errno : 0;
            return false;
        }
        got += (size_t)r;
    }
    return true;
}

/* Elements [at, at + n) of a source tensor as f32 into out (F32 read straight into it, other
 * dtypes through raw: n x the dtype's size). Merged tensors are float: plan checked. */
static bool read_f32(const am_src *s, size_t at, size_t n, float *out, unsigned char *raw, int *why) {
    if (s->dtype == ST_F32) return read_bytes(s, at, n, (unsigned char *)out, why);
    if (!read_bytes(s, at, n, raw, why)) return false;
    st_dtype_to_f32(s->dtype, raw, out, n);
    return true;
}

static bool nonfinite_bits(uint32_t u) { return (u & 0x7f800000u) == 0x7f800000u; }

/* τ = w (θ − b) into x from θ's values as form_rows left them (raw for BF16 and F32, x for the
 * other dtypes); false when a θ value is not finite. BF16 and F32 in one pass (convert, check,
 * subtract: the floats of the separate steps); the others convert, then check and subtract in one. */
static bool task_vector_from(st_dtype d, const unsigned char *raw, const float *b, float w, float *x, size_t n) {
    uint32_t bad = 0;
    if (d == ST_F32) { /* raw: a row in memory, maybe not 4-byte aligned (a file's data offset) */
        for (size_t j = 0; j < n; j++) {
            uint32_t u;
            float v;
            memcpy(&u, raw + 4 * j, sizeof u);
            memcpy(&v, &u, sizeof v);
            bad |= nonfinite_bits(u);
            x[j] = w == 1.0f ? v - b[j] : w * (v - b[j]);
        }
        return !bad;
    }
    if (d == ST_BF16) {
        const uint16_t *h = (const uint16_t *)raw; /* raw is aligned: raw_row */
        if (w == 1.0f)
            for (size_t j = 0; j < n; j++) {
                uint32_t u = (uint32_t)h[j] << 16;
                float v;
                memcpy(&v, &u, sizeof v);
                bad |= nonfinite_bits(u);
                x[j] = v - b[j];
            }
        else
            for (size_t j = 0; j < n; j++) {
                uint32_t u = (uint32_t)h[j] << 16;
                float v;
                memcpy(&v, &u, sizeof v);
                bad |= nonfinite_bits(u);
                x[j] = w * (v - b[j]);
            }
        return !bad;
    }
    for (size_t j = 0; j < n; j++) {
        uint32_t u;
        memcpy(&u, &x[j], sizeof u);
        bad |= nonfinite_bits(u);
        x[j] = w == 1.0f ? x[j] - b[j] : w * (x[j] - b[j]);
    }
    return !bad;
}

/* Row j (0 the base, 1 + k model k) of this thread's input bytes (the calling thread's outside a
 * parallel region): room for a chunk of any merged input. */
static unsigned char *raw_row(const engine *e, int j) {
    return e->raw + ((size_t)omp_get_thread_num() * (size_t)(e->K + 1) + (size_t)j) * e->chunk * e->raw_es;
}

/* This thread's current chunk of input j: its raw row, or the caller's memory itself. */
static const unsigned char **input_row(const engine *e, int j) {
    return &e->in[(size_t)omp_get_thread_num() * (size_t)(e->K + 1) + (size_t)j];
}

/* Elements [at, at + m) of input j of t as this thread's chunk of it: read into its raw row (a file,
 * or zeros), or pointed at in the caller's memory (no copy). False when a read fails. */
static bool read_input(const engine *e, const am_tensor *t, int j, size_t at, size_t m) {
    const am_src *s = &t->src[j];
    if (s->fd < 0 && s->mem) {
        *input_row(e, j) = s->mem + at * st_dtype_size(s->dtype);
        return true;
    }
    int why;
    *input_row(e, j) = raw_row(e, j);
    return read_bytes(s, at, m, raw_row(e, j), &why);
}

/* The bytes of elements [at, at + m) of t in every input as this thread's chunk of each. */
static bool read_raw(const engine *e, const am_tensor *t, size_t at, size_t m) {
    for (int j = 0; j <= e->K; j++)
        if (!read_input(e, t, j, at, m)) return false;
    return true;
}

/* Entries [o, o + n) of the base's raw row as θ0 into fb. False when a value is not finite. */
static bool form_base(const engine *e, const am_tensor *t, size_t o, size_t n, float *fb) {
    const am_src *b = &t->src[0];
    st_dtype_to_f32(b->dtype, *input_row(e, 0) + o * st_dtype_size(b->dtype), fb, n);
    return first_nonfinite(fb, n) == n;
}

/* Entries [o, o + n) of model k's raw row (element `at` of t) as τ_k (θ_k for average) into x,
 * fb holding θ0. False when a value is not finite. */
static bool form_model(const engine *e, const am_tensor *t, int k, size_t o, size_t n, size_t at, const float *fb,
                       float *x) {
    const am_src *s = &t->src[1 + k];
    const unsigned char *r = *input_row(e, 1 + k) + o * st_dtype_size(s->dtype);
    if (e->c->method == AM_AVERAGE) {
        st_dtype_to_f32(s->dtype, r, x, n);
        return first_nonfinite(x, n) == n;
    }
    if (s->dtype != ST_BF16 && s->dtype != ST_F32) st_dtype_to_f32(s->dtype, r, x, n); /* else below */
    /* pcb: w_k scales the model's λ (pcb_accumulate), not τ_k, whose order statistics PCB takes */
    if (!task_vector_from(s->dtype, r, fb, e->c->method == AM_PCB ? 1.0f : t->w[k], x, n)) return false;
    if (e->c->method == AM_DARE) dare_apply_at_seq(x, n, e->rho[k], e->c->seed, k, t->key, at);
    return true;
}

/* Entries [o, o + n) of the raw rows (element `at` of t) as θ0 into fb and τ_k (θ_k for average)
 * into tv[k]. False when a value is not finite: load_failure says which. */
static bool form_rows(const engine *e, const am_tensor *t, size_t o, size_t n, size_t at, float *fb,
                      float *const *tv) {
    if (!form_base(e, t, o, n, fb)) return false;
    for (int k = 0; k < e->K; k++)
        if (!form_model(e, t, k, o, n, at, fb, tv[k])) return false;
    return true;
}

/* Chunk [c, c + m) of the slice that starts at element `first`: θ0 into fb, τ_k (θ_k for average)
 * into tv[k] of the slice buffers. False when a read fails or a value is not finite. */
static bool load_chunk(engine *e, const am_tensor *t, size_t first, size_t c, size_t m) {
    float *tv[AM_MAX_MODELS];
    for (int k = 0; k < e->K; k++) tv[k] = e->tv[k] + c;
    return read_raw(e, t, first + c, m) && form_rows(e, t, 0, m, first + c, e->fb + c, tv);
}

/* A block: the elements a thread carries from its raw rows through τ_k, the merge and the output
 * conversion in K + 2 rows of floats that stay in its L1/L2 cache. With the rows of a whole chunk
 * (K + 3 of 128 Ki floats, from L3 or memory) the stores of τ_k were most of the merge's time. */
#define AM_BLOCK KERN_BLOCK

typedef struct block_scratch {
    float *fb, *out, *tv[AM_MAX_MODELS];
    uint8_t *count;
} block_scratch;

static size_t block_floats(int K) { return (size_t)(K + 2) * AM_BLOCK + AM_BLOCK / sizeof(float); }

static block_scratch thread_block(const engine *e) {
    float *p = e->blk + (size_t)omp_get_thread_num() * block_floats(e->K);
    block_scratch b = {.fb = p, .out = p + AM_BLOCK};
    for (int k = 0; k < e->K; k++) b.tv[k] = p + (size_t)(2 + k) * AM_BLOCK;
    b.count = (uint8_t *)(p + (size_t)(e->K + 2) * AM_BLOCK);
    return b;
}

/* Read and check one input's slice on this thread a block at a time, with the message of a
 * failure. */
static int read_checked(engine *e, const am_tensor *t, int j, size_t first, size_t n, tt_err *err) {
    char buf[64];
    const char *in = input_name(t, j, buf, sizeof buf);
    float *x = thread_block(e).out;
    int why = 0;
    for (size_t c = 0; c < n; c += AM_BLOCK) {
        size_t m = n - c < AM_BLOCK ? n - c : AM_BLOCK;
        if (!read_f32(&t->src[j], first + c, m, x, raw_row(e, 0), &why))
            return tt_fail(err, TT_EIO, "%s: tensor %s: read failed: %s", in, t->name,
                           why ? strerror(why) : "the file ended early (was it truncated while merging?)");
        if (check_finite(in, t->name, x, first + c, m, err)) return -1;
    }
    return 0;
}

/* The error of a slice that load_chunk refused: the base, then the models in order, read again
 * on this thread: the first bad element of the first bad file is named. */
static int load_failure(engine *e, const am_tensor *t, size_t first, size_t n, tt_err *err) {
    if (read_checked(e, t, 0, first, n, err)) return -1;
    for (int k = 0; k < e->K; k++)
        if (read_checked(e, t, 1 + k, first, n, err)) return -1;
    char buf[64];
    return tt_fail(err, TT_EINTERNAL, "%s: tensor %s: a read failed once", input_name(t, 0, buf, sizeof buf), t->name);
}

/* TATR's conflict of entries [0, n) of the K rows x (zero-shot: g_k = |τ_k|): with A = 0 + |τ_0| +
 * ... + |τ_{K−1}|, Ω = 0 + a_0 (A − a_0) + ... with a_k = |τ_k|, each sum in task order: the floats of
 * the suite's abs_add and tatr_omega_add over whole tensors. n <= AM_BLOCK. */
static void tatr_omega(float *omega, const float *const *x, int K, size_t n) {
    float A[AM_BLOCK];
    memset(A, 0, n * sizeof *A);
    memset(omega, 0, n * sizeof *omega);
    for (int k = 0; k < K; k++)
        for (size_t j = 0; j < n; j++) A[j] += fabsf(x[k][j]);
    for (int k = 0; k < K; k++)
        for (size_t j = 0; j < n; j++) {
            float a = fabsf(x[k][j]);
            omega[j] += a * (A[j] - a);
        }
}

/* The TIES merge of tv[k][0, n) (elements [at, at + n) of t) into out: fused (majority not yet
 * known; undecided entries listed, the sign balance added to *balance) or with the known majority. */
static void ties_range(engine *e, const am_tensor *t, const float *const *tv, float *out, size_t at, size_t n,
                       bool fused, bool mean, int64_t *balance) {
    if (fused) { /* the first merge of these entries: their kept counts */
        uint64_t kept[AM_MAX_MODELS] = {0};
        *balance += ties_fused_k(out, tv, NULL, e->K, n, e->thr, mean, kept, t->gfirst + at, e->und, e->und_cap,
                                 &e->n_und);
        for (int k = 0; k < e->K; k++)
            if (kept[k]) __atomic_fetch_add(&e->kept[k], kept[k], __ATOMIC_RELAXED);
    } else {
        uint64_t kept[AM_MAX_MODELS] = {0};
        ties_trim_sum_k(out, tv, NULL, e->K, n, e->thr, kept);
        ties_disjoint_k(out, tv, NULL, e->K, n, e->thr, e->majority, mean);
    }
}

/* pcb's Σ_j Ñ_j of entries [o, o + n) of the task vectors tv into sum_n (0 + Ñ_0 + Ñ_1 + ...). */
static void pcb_sum_n(const engine *e, const float *const *tv, size_t o, float *sum_n, size_t n) {
    memset(sum_n, 0, n * sizeof *sum_n);
    for (int k = 0; k < e->K; k++) pcb_sum_n_add(sum_n, tv[k] + o, &e->pcb[k], n);
}

/* The merged task vector of tv[k][0, n) (elements [at, at + n) of t) into out (count: the
 * consensus masks' scratch); for average the merged θ itself. Element-wise; the fused TIES pass
 * (majority not yet known) adds its sign balance to *balance. Parallel inside for large n. */
static void merge_tv(engine *e, const am_tensor *t, size_t at, const float *const *tv, float *out, uint8_t *count,
                     size_t n, bool fused, int64_t *balance) {
    switch (e->c->method) {
    case AM_AVERAGE: {
        double wsum = 0;
        for (int k = 0; k < e->K; k++) wsum += t->w[k];
        float inv = (float)(1.0 / wsum);
        memset(out, 0, n * sizeof *out);
        for (int k = 0; k < e->K; k++) {
            float w = t->w[k];
            const float *x = tv[k];
            for (size_t j = 0; j < n; j++) out[j] += w * x[j];
        }
        for (size_t j = 0; j < n; j++) out[j] *= inv;
        return;
    }
    case AM_TA:
    case AM_AWD: /* ta with the weights of tensor_weights */
    case AM_LATA:
        memset(out, 0, n * sizeof *out);
        kern_add_task_vectors_seq(out, tv, NULL, e->K, n);
        return;
    case AM_CART: /* merge_range's cart_range, which needs θ0 */
        return;
    case AM_TATR: { /* ta of the masked τ_k: the sum, or +0 where Ω is at or past the threshold */
        memset(out, 0, n * sizeof *out);
        kern_add_task_vectors_seq(out, tv, NULL, e->K, n);
        float omega[AM_BLOCK];
        for (size_t o = 0; o < n; o += AM_BLOCK) {
            size_t m = n - o < AM_BLOCK ? n - o : AM_BLOCK;
            const float *x[AM_MAX_MODELS];
            for (int k = 0; k < e->K; k++) x[k] = tv[k] + o;
            tatr_omega(omega, x, e->K, m);
            for (size_t j = 0; j < m; j++)
                if (!(omega[j] < e->tatr_thr)) out[o + j] = 0;
        }
        return;
    }
    case AM_PCB: { /* a block at a time: Σ_j Ñ_j, then the tasks' weighted sum */
        float sum_n[AM_BLOCK];
        double num[AM_BLOCK], den[AM_BLOCK];
        for (size_t o = 0; o < n; o += AM_BLOCK) {
            size_t m = n - o < AM_BLOCK ? n - o : AM_BLOCK;
            pcb_sum_n(e, tv, o, sum_n, m);
            memset(num, 0, m * sizeof *num);
            memset(den, 0, m * sizeof *den);
            for (int k = 0; k < e->K; k++)
                pcb_accumulate(num, den, tv[k] + o, sum_n, &e->pcb[k], e->K, e->pcb_lam * t->w[k], m);
            pcb_finish(out + o, num, den, m);
        }
        return;
    }
    case AM_DARE:
        if (e->ties) ties_range(e, t, tv, out, at, n, fused, e->mean, balance);
        else memset(out, 0, n * sizeof *out), kern_add_task_vectors_seq(out, tv, NULL, e->K, n);
        return;
    case AM_TIES:
        ties_range(e, t, tv, out, at, n, fused, e->mean, balance);
        return;
    case AM_TSV_M:
    case AM_ISO_CTS: /* the tensors the SVD merge leaves: the official running mean of the τ_k */
        memcpy(out, tv[0], n * sizeof *out);
        for (int k = 1; k < e->K; k++) {
            const float *x = tv[k];
            float div = (float)(k + 1);
            for (size_t j = 0; j < n; j++) out[j] += (x[j] - out[j]) / div;
        }
        return;
    case AM_ISO_C: /* the same as the official iso_c: (0 + τ_0 + ... + τ_{K−1}) / K */
        memset(out, 0, n * sizeof *out);
        kern_add_task_vectors_seq(out, tv, NULL, e->K, n);
        for (size_t j = 0; j < n; j++) out[j] /= (float)e->K;
        return;
    case AM_CONSENSUS_TA:
    case AM_CONSENSUS_TIES: {
        if (e->ties) ties_range(e, t, tv, out, at, n, fused, false, balance);
        else memset(out, 0, n * sizeof *out), kern_add_task_vectors_seq(out, tv, NULL, e->K, n);
        memset(count, 0, n);
        for (int k = 0; k < e->K; k++) tall_mask_add_seq(count, tv[k], out, n, (float)e->c->tall_lambda);
        consensus_apply_seq(out, count, n, e->c->k);
        return;
    }
    }
}

/* out = θ0 + λ out over [0, n) (not for average, whose out is θ, nor in memory: the task vector). */
static void add_base(const engine *e, const float *fb, float *out, size_t n) {
    if (e->mem) return;
    float l = e->lam;
    for (size_t j = 0; j < n; j++) out[j] = fb[j] + l * out[j];
}

/* CART's weight average θ_avg = θ0 + (1/K)·(0 + τ_0 + ... + τ_{K−1}) of entries [0, n) into avg (θ0 in
 * fb, τ_k in tv[k]): the floats of the suite's cart (its sum, then the float 1/K times it, then θ0 +). */
static void cart_average(const engine *e, const float *fb, const float *const *tv, float *avg, size_t n) {
    const float coeff = (float)(1.0 / e->K);
    for (size_t j = 0; j < n; j++) {
        float s = 0;
        for (int k = 0; k < e->K; k++) s += tv[k][j];
        float step = coeff * s;
        avg[j] = fb[j] + step;
    }
}

/* CART on the tensors it does not rank-reduce: θ_avg + λ Σ_k c_k with c_k = (τ_k + θ0) − θ_avg (the
 * suite's order of operations) into out. */
static void cart_range(const engine *e, const float *fb, const float *const *tv, float *out, size_t n) {
    cart_average(e, fb, tv, out, n);
    for (size_t j = 0; j < n; j++) {
        float avg = out[j], c = 0;
        for (int k = 0; k < e->K; k++) {
            float theta = tv[k][j] + fb[j];
            c += theta - avg;
        }
        float step = e->lam * c;
        out[j] = avg + step;
    }
}

/* The merged θ of rows [0, n) on this thread; the fused TIES pass when balance is not NULL. */
static void merge_range(engine *e, const am_tensor *t, size_t at, const float *fb, const float *const *tv,
                        float *out, uint8_t *count, size_t n, int64_t *balance) {
    if (e->c->method == AM_CART) {
        cart_range(e, fb, tv, out, n);
        return;
    }
    merge_tv(e, t, at, tv, out, count, n, balance != NULL, balance);
    if (e->c->method != AM_AVERAGE) add_base(e, fb, out, n);
}


typedef float v8f __attribute__((vector_size(32)));
typedef uint32_t v8u __attribute__((vector_size(32)));
typedef uint16_t v8h __attribute__((vector_size(16)));

/* Eight BF16 values at h as floats into *f (not returned: a 32-byte vector return is an ABI
 * question at x86-64-v2); *bad gets a lane's bits where one is not finite. */
static inline void bf16x8(const uint16_t *h, v8u *bad, v8f *f) {
    v8u u;
#ifdef __AVX2__ /* one widening load; GCC builds the generic form from two 128-bit halves */
    __m256i w = _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)h)), 16);
    memcpy(&u, &w, sizeof u);
#else
    v8h x;
    memcpy(&x, h, sizeof x);
    u = __builtin_convertvector(x, v8u) << 16;
#endif
    const v8u exp = {0x7f800000u, 0x7f800000u, 0x7f800000u, 0x7f800000u,
                     0x7f800000u, 0x7f800000u, 0x7f800000u, 0x7f800000u};
    *bad |= (v8u)((u & exp) == exp);
    memcpy(f, &u, sizeof *f);
}

typedef int32_t v8i __attribute__((vector_size(32)));

/* τ of sixteen BF16 entries at h against θ0 in *b0, *b1: w (θ − θ0), or θ − θ0 when `unit`. (The
 * 32-byte vectors go by pointer here and below: by value they are an ABI question at x86-64-v2.) */
static inline void tau16(const uint16_t *h, const v8f *b0, const v8f *b1, float w, bool unit, v8u *bad, v8f *x0,
                         v8f *x1) {
    bf16x8(h, bad, x0);
    bf16x8(h + 8, bad, x1);
    *x0 = *x0 - *b0, *x1 = *x1 - *b1;
    if (!unit) *x0 = w * *x0, *x1 = w * *x1;
}

/* |x| of eight floats (clearing the sign bit: fabsf's result). */
#define ABS8(x) ((v8f)((v8u)(x) & 0x7fffffffu))

/* ta, or consensus-ta, where the base and every model are BF16: out = θ0 + λ Σ_k w_k (θ_k − θ0)
 * over raw entries [o, o + n) with the sum in registers, two vectors at a time, instead of K rows
 * of τ_k stored and summed again (form_rows + merge_range: the same floats in the same order,
 * 0 + τ_0 + τ_1 + ...). consensus-ta forms each τ_k again to count its TALL mask,
 * |τ_k| > λ_t |Σ − τ_k| (tall_mask_add_seq's floats), and zeroes the sum where fewer than k masks
 * hold (consensus_apply_seq), before θ0 is added. fb: θ0 of the block. False when a value is not
 * finite. */
static bool ta_bf16_block(const engine *e, const am_tensor *t, size_t o, size_t n, bool consensus, float *fb,
                          float *out) {
    const uint16_t *h[AM_MAX_MODELS];
    for (int k = 0; k < e->K; k++) h[k] = (const uint16_t *)*input_row(e, 1 + k) + o;
    st_dtype_to_f32(ST_BF16, *input_row(e, 0) + 2 * o, fb, n);
    if (first_nonfinite(fb, n) != n) return false;
    const float lam = e->lam;
    bool unit = true; /* every w_k = 1: no multiply (1 · x is x, so the other case may multiply all) */
    for (int k = 0; k < e->K; k++) unit &= t->w[k] == 1.0f;
    const float tl = (float)e->c->tall_lambda;
    const int kk = e->c->k;
    v8u bad = {0};
    size_t n16 = n - n % 16, j = 0;
    for (; j < n16; j += 16) {
        v8f b0, b1, a0 = {0}, a1 = {0};
        memcpy(&b0, fb + j, sizeof b0);
        memcpy(&b1, fb + j + 8, sizeof b1);
        for (int k = 0; k < e->K; k++) {
            v8f x0, x1;
            tau16(h[k] + j, &b0, &b1, t->w[k], unit, &bad, &x0, &x1);
            a0 = a0 + x0, a1 = a1 + x1;
        }
        if (consensus) {
            v8i c0 = {0}, c1 = {0};
            for (int k = 0; k < e->K; k++) {
                v8f x0, x1;
                tau16(h[k] + j, &b0, &b1, t->w[k], unit, &bad, &x0, &x1);
                c0 -= ABS8(x0) > tl * ABS8(a0 - x0); /* a compare is -1 where it holds */
                c1 -= ABS8(x1) > tl * ABS8(a1 - x1);
            }
            a0 = (v8f)((v8i)a0 & (c0 >= kk)), a1 = (v8f)((v8i)a1 & (c1 >= kk));
        }
        a0 = b0 + lam * a0, a1 = b1 + lam * a1;
        memcpy(out + j, &a0, sizeof a0);
        memcpy(out + j + 8, &a1, sizeof a1);
    }
    uint32_t any = 0;
    for (int l = 0; l < 8; l++) any |= bad[l];
    for (; j < n; j++) {
        float a = 0, x[AM_MAX_MODELS];
        for (int k = 0; k < e->K; k++) {
            uint32_t u = (uint32_t)h[k][j] << 16;
            float v;
            memcpy(&v, &u, sizeof v);
            any |= nonfinite_bits(u);
            x[k] = t->w[k] == 1.0f ? v - fb[j] : t->w[k] * (v - fb[j]);
            a = a + x[k];
        }
        if (consensus) {
            int c = 0;
            for (int k = 0; k < e->K; k++) c += fabsf(x[k]) > tl * fabsf(a - x[k]);
            if (c < kk) a = 0;
        }
        out[j] = fb[j] + lam * a;
    }
    return !any;
}

/* dare (over ta) where the base and every model are BF16: each model's τ_k formed, dropped or
 * rescaled and added to the sum in one pass (dare_add_bf16_seq), instead of a row of τ_k stored,
 * masked in place and summed again: the floats of form_rows + merge_range. False when a value is
 * not finite. */
static bool dare_bf16_block(const engine *e, const am_tensor *t, size_t o, size_t n, size_t at, float *fb, float *out) {
    st_dtype_to_f32(ST_BF16, *input_row(e, 0) + 2 * o, fb, n);
    if (first_nonfinite(fb, n) != n) return false;
    memset(out, 0, n * sizeof *out);
    for (int k = 0; k < e->K; k++) {
        const uint16_t *h = (const uint16_t *)*input_row(e, 1 + k) + o;
        if (!dare_add_bf16_seq(out, h, fb, t->w[k], n, e->rho[k], e->c->seed, k, t->key, at)) return false;
    }
    add_base(e, fb, out, n);
    return true;
}

/* ties where the base and every model are BF16: the fused TIES pass on the raw rows
 * (ties_fused_bf16_seq: each τ_k formed in registers once, instead of K rows of τ_k stored and
 * read twice; the floats of form_rows + merge_range), then θ0 + λ · merged into out. The entries
 * whose sign waits for the majority are listed in e->und and the sign balance is added to
 * *balance. False when a value is not finite. */
static bool ties_bf16_block(engine *e, const am_tensor *t, size_t o, size_t n, size_t at, const block_scratch *b,
                            int64_t *balance) {
    const uint16_t *h[AM_MAX_MODELS];
    for (int k = 0; k < e->K; k++) h[k] = (const uint16_t *)*input_row(e, 1 + k) + o;
    st_dtype_to_f32(ST_BF16, *input_row(e, 0) + 2 * o, b->fb, n);
    if (first_nonfinite(b->fb, n) != n) return false;
    bool unit = true;
    for (int k = 0; k < e->K; k++) unit &= t->w[k] == 1.0f;
    /* kept: not counted (only the suite's records need it, and they merge in memory) */
    if (!ties_fused_bf16_seq(b->out, h, b->fb, unit ? NULL : t->w, e->K, n, e->thr, e->mean, NULL, t->gfirst + at,
                             e->und, e->und_cap, &e->n_und, balance))
        return false;
    add_base(e, b->fb, b->out, n);
    return true;
}

/* Elements [at, at + m) of t in memory with unit weights (mem_views): the K-way kernels on the
 * caller's rows as they are, on the threads a block at a time (static schedule), τ_k = θ_k − θ0
 * formed inside them, the merged task vector written into the output. A row per τ_k formed first
 * read each input 8 KB at a time, which the hardware prefetcher followed at half the bandwidth
 * (ViT-B/32 at K = 8, the suite's TA sum: 2.2x the time), and chunks per thread left one waiting
 * at the end of each slice. */
static void merge_views(engine *e, const am_tensor *t, size_t at, size_t m, int64_t *balance) {
    const float *a[AM_MAX_MODELS], *b = t->src[0].mem ? (const float *)t->src[0].mem + at : NULL;
    for (int k = 0; k < e->K; k++) a[k] = (const float *)t->src[1 + k].mem + at;
    float *out = e->mem_out + t->mem_at + at;
    if (!e->ties) {
        kern_sum_task_vectors(out, a, b, e->K, m);
        return;
    }
    uint64_t kept[AM_MAX_MODELS] = {0};
    *balance += ties_fused_k(out, a, b, e->K, m, e->thr, e->mean, kept, t->gfirst + at, e->und, e->und_cap, &e->n_und);
    for (int k = 0; k < e->K; k++)
        if (kept[k]) __atomic_fetch_add(&e->kept[k], kept[k], __ATOMIC_RELAXED);
}

/* Chunk [c, c + m) of the slice at `first` of tensor t: read into the raw rows, merged a block at a
 * time (the TIES methods by the fused pass, their sign balance added to *balance), converted into
 * obuf (in memory: written into the output, f32). False when a read fails or a value is not finite. */
static bool merge_chunk(engine *e, const am_tensor *t, size_t first, size_t c, size_t m, int64_t *balance) {
    if (!read_raw(e, t, first + c, m)) return false;
    block_scratch b = thread_block(e);
    size_t es = st_dtype_size(t->out);
    unsigned char *ob = e->mem ? (unsigned char *)(e->mem_out + t->mem_at + first) : e->obuf;
    bool consensus = e->c->method == AM_CONSENSUS_TA, bf16 = !e->mem; /* the BF16 kernels add θ0 */
    for (int j = 0; j <= e->K; j++) bf16 &= t->src[j].dtype == ST_BF16;
    bool ta_bf16 = bf16 && (e->c->method == AM_TA || weighted_ta(e->c->method) || consensus), ties_bf16 = bf16 && e->c->method == AM_TIES;
    bool dare_bf16 = bf16 && e->c->method == AM_DARE && !e->ties;
    for (size_t o = 0; o < m; o += AM_BLOCK) {
        size_t n = m - o < AM_BLOCK ? m - o : AM_BLOCK, at = first + c + o;
        if (ta_bf16) {
            if (!ta_bf16_block(e, t, o, n, consensus, b.fb, b.out)) return false;
        } else if (ties_bf16) {
            if (!ties_bf16_block(e, t, o, n, at, &b, balance)) return false;
        } else if (dare_bf16) {
            if (!dare_bf16_block(e, t, o, n, at, b.fb, b.out)) return false;
        } else {
            if (!form_rows(e, t, o, n, at, b.fb, b.tv)) return false;
            merge_range(e, t, at, b.fb, (const float *const *)b.tv, b.out, b.count, n, e->ties ? balance : NULL);
        }
        st_f32_to_dtype(t->out, b.out, ob + (c + o) * es, n);
    }
    return true;
}

/* Chunk [c, c + m) of the slice at `first` of tensor t, for a counting pass of the thresholds:
 * read into the raw rows, then a block at a time θ0, and each τ_k formed into one row and fed to
 * its selection's part `part` at once, so that the block's rows stay in the L1 cache (the K rows
 * of a block formed first, then fed, went through L2). False when a read fails or a value is not
 * finite. */
static bool count_chunk(engine *e, const am_tensor *t, size_t first, size_t c, size_t m, select_ctx *sel,
                        const int *sel_task, int ns, int part) {
    if (!read_raw(e, t, first + c, m)) return false;
    block_scratch b = thread_block(e);
    for (size_t o = 0; o < m; o += AM_BLOCK) {
        size_t n = m - o < AM_BLOCK ? m - o : AM_BLOCK;
        if (e->c->method == AM_PCB && e->pcb_scores) { /* each model's balancing scores, into fb */
            if (!form_rows(e, t, o, n, first + c + o, b.fb, b.tv)) return false;
            pcb_sum_n(e, (const float *const *)b.tv, 0, b.out, n);
            float *top = e->pcb_max + (size_t)omp_get_thread_num() * (size_t)e->K;
            for (int j = 0; j < ns; j++) {
                int k = sel_task[j];
                float most = pcb_balance(b.fb, b.tv[k], b.out, &e->pcb[k], e->K, n);
                top[k] = most > top[k] ? most : top[k];
                const float *x = b.fb;
                select_count_part(&sel[j], 1, part, &x, n);
            }
            continue;
        }
        if (e->c->method == AM_TATR) { /* one selection, of Ω */
            if (!form_rows(e, t, o, n, first + c + o, b.fb, b.tv)) return false;
            tatr_omega(b.out, (const float *const *)b.tv, e->K, n);
            const float *x = b.out;
            select_count_part(&sel[0], 1, part, &x, n);
            continue;
        }
        if (!form_base(e, t, o, n, b.fb)) return false;
        for (int k = 0, j = 0; k < e->K; k++) {
            if (!form_model(e, t, k, o, n, first + c + o, b.fb, b.out)) return false;
            for (const float *x = b.out; j < ns && sel_task[j] == k;) /* pcb: two per model */
                select_count_part(&sel[j++], 1, part, &x, n);
        }
    }
    return true;
}

typedef enum pass_kind { PASS_SAMPLE, PASS_SELECT, PASS_MERGE, PASS_REMERGE } pass_kind;

/* ---- the sample pass: the 1/64 of the values a bracketed selection samples, a run of
 * SELECT_SAMPLE_RUN values (512 bytes of BF16) in every SELECT_SAMPLE_STRIDE, read with a pread each
 * (~1 µs a run): 0.17 s for 8 BF16 models of 0.5 GB on 2 threads, where runs of 16 values in every
 * 1024 read through the files' mappings touched every page (0.43-0.53 s, 0.4 s of it mapping and
 * unmapping them) ---- */

/* pcb's balancing scores of len <= SELECT_SAMPLE_RUN entries in place of their task vectors tv[k]
 * (a sample pass of the scores: count_chunk forms them for the counting passes). */
static void pcb_scores_in_place(const engine *e, float *const *tv, size_t len) {
    float sum_n[SELECT_SAMPLE_RUN];
    pcb_sum_n(e, (const float *const *)tv, 0, sum_n, len);
    for (int k = 0; k < e->K; k++) pcb_balance(tv[k], tv[k], sum_n, &e->pcb[k], e->K, len);
}

/* Stripes [s0, s1) of the stream's sample that fall in the slice at `first` of t (n elements): their
 * runs read into this thread's raw rows, τ_k formed into the slice's rows at the same places (the
 * other places are not read by the sample pass). False when a read fails or a value is not finite. */
static bool sample_stripes(engine *e, const am_tensor *t, size_t first, size_t n, uint64_t s0, uint64_t s1) {
    const uint64_t g0 = t->gfirst + first, g1 = g0 + n;
    for (uint64_t s = s0; s < s1; s++) {
        uint64_t a = select_sample_start(s), b = a + SELECT_SAMPLE_RUN;
        a = a > g0 ? a : g0, b = b < g1 ? b : g1;
        if (a >= b) continue;
        size_t at = (size_t)(a - t->gfirst), len = (size_t)(b - a), off = at - first;
        float *tv[AM_MAX_MODELS];
        for (int k = 0; k < e->K; k++) tv[k] = e->tv[k] + off;
        if (!read_raw(e, t, at, len) || !form_rows(e, t, 0, len, at, e->fb + off, tv)) return false;
        if (e->pcb_scores) pcb_scores_in_place(e, tv, len);
    }
    return true;
}

/* The slice rows of θ0, τ_k and the merge (the sample pass and the TIES fix-ups use them),
 * allocated when first needed: a merge pass alone never touches them. */
static int slice_rows(engine *e, tt_err *err) {
    if (e->fb) return 0;
    if (!(e->fb = tt_calloc_aligned(e->slice, sizeof(float), err)) ||
        !(e->out = tt_calloc_aligned(e->slice, sizeof(float), err)) ||
        !(e->count = tt_calloc_aligned(e->slice, 1, err)))
        return -1;
    for (int k = 0; k < e->K; k++)
        if (!(e->tv[k] = tt_calloc_aligned(e->slice, sizeof(float), err))) return -1;
    return 0;
}

/* One slice of the sample pass: the sampled places of τ_k, then fed (select_feed_diff_multi reads
 * only those). */
static int sample_slice(engine *e, int i, select_ctx *sel, const int *sel_task, int ns, size_t first, size_t n,
                        tt_err *err) {
    const am_tensor *t = &e->t[i];
    if (n == 0) return 0;
    const float *x[AM_MAX_MODELS];
    if (e->mem_views) { /* θ_k − θ0 formed by the select at the sampled places only */
        for (int j = 0; j < ns; j++) x[j] = (const float *)t->src[1 + sel_task[j]].mem + first;
        select_feed_diff_multi(sel, ns, x, t->src[0].mem ? (const float *)t->src[0].mem + first : NULL, n);
        return 0;
    }
    if (slice_rows(e, err)) return -1;
    const uint64_t g0 = t->gfirst + first, s0 = g0 / SELECT_SAMPLE_STRIDE,
                   s1 = (g0 + n - 1) / SELECT_SAMPLE_STRIDE + 1;
    bool bad = false;
#pragma omp parallel if (s1 - s0 >= 4)
    {
        uint64_t T = (uint64_t)omp_get_num_threads(), id = (uint64_t)omp_get_thread_num(), m = s1 - s0;
        if (!sample_stripes(e, t, first, n, s0 + m * id / T, s0 + m * (id + 1) / T))
#pragma omp atomic write
            bad = true;
    }
    if (bad) return load_failure(e, t, first, n, err);
    for (int j = 0; j < ns; j++) x[j] = e->tv[sel_task[j]];
    select_feed_diff_multi(sel, ns, x, NULL, n);
    return 0;
}

/* This thread's contiguous run [*lo, *hi) of a slice of n elements in chunks of C. */
static void thread_run(size_t n, size_t C, size_t *lo, size_t *hi) {
    size_t chunks = (n + C - 1) / C, T = (size_t)omp_get_num_threads(), id = (size_t)omp_get_thread_num();
    *lo = chunks * id / T * C;
    *hi = chunks * (id + 1) / T * C < n ? chunks * (id + 1) / T * C : n;
}

/* Entries [c, c + m) of obuf (tensor i's output dtype) written at element first + c. False on a
 * write error, which goes to *err if it is the slice's first (*failed). */
static bool emit_chunk(engine *e, int i, size_t first, size_t c, size_t m, bool *failed, tt_err *err) {
    if (e->mem) return true; /* merge_chunk wrote it in place */
    size_t es = st_dtype_size(e->t[i].out);
    unsigned char *o = e->obuf + c * es;
    tt_err werr;
    if (!tsk_write_raw(e->sink, i, (first + c) * es, o, m * es, &werr)) return true;
#pragma omp critical(am_write_error)
    {
        if (!*failed) *err = werr;
        *failed = true;
    }
    return false;
}

/* Elements [first, first + n) of tensor i's output written again from x (f32). */
static int rewrite_f32(engine *e, int i, size_t first, const float *x, size_t n, tt_err *err) {
    if (!e->mem) return tsk_rewrite_f32(e->sink, i, first, x, n, err);
    memcpy(e->mem_out + e->t[i].mem_at + first, x, n * sizeof *x);
    return 0;
}

/* One slice, elements [first, first + n) of t, on the threads a chunk at a time, each thread a
 * contiguous run of chunks, every chunk carried through its stages in cache a block at a time:
 * the merge pass reads, merges, converts to the output dtype and writes each chunk (so the slice
 * goes through memory once and one thread's write overlaps the other's work; the fused TIES pass
 * lists its undecided entries in any order, and each thread sums its sign balance); a counting
 * pass of the thresholds feeds each block to the thread's part of the selections. The sample pass
 * reads only the sampled runs (sample_slice); the TIES remerge (the majority known, after the
 * undecided list overflowed) reads the whole slice, merges it and rewrites it. */
static int slice_pass(engine *e, int i, pass_kind kind, select_ctx *sel, const int *sel_task, int ns, size_t first,
                      size_t n, tt_err *err) {
    if (kind == PASS_SAMPLE) return sample_slice(e, i, sel, sel_task, ns, first, n, err);
    if (kind == PASS_REMERGE && slice_rows(e, err)) return -1;
    const am_tensor *t = &e->t[i];
    if (kind == PASS_MERGE && e->mem_views) {
        int64_t balance = 0;
        merge_views(e, t, first, n, &balance);
        e->balance += balance;
        return 0;
    }
    if (kind == PASS_SELECT && e->mem_views) { /* θ_k − θ0 formed by the select as it counts */
        const float *x[AM_MAX_MODELS];
        for (int j = 0; j < ns; j++) x[j] = (const float *)t->src[1 + sel_task[j]].mem + first;
        select_feed_diff_multi(sel, ns, x, t->src[0].mem ? (const float *)t->src[0].mem + first : NULL, n);
        return 0;
    }
    const bool merging = kind == PASS_MERGE, counting = kind == PASS_SELECT;
    const size_t C = e->chunk;
    bool bad = false, write_failed = false;
    /* a counting pass: one selection part per thread */
    int threads = counting ? sel[0].parts : omp_get_max_threads();
    if (counting) select_count_begin(sel, ns, n);
#pragma omp parallel if (n > C) num_threads(threads)
    {
        size_t lo, hi;
        thread_run(n, C, &lo, &hi);
        bool ok = true, written = true;
        int64_t balance = 0;
        for (size_t c = lo; c < hi && ok && written; c += C) {
            size_t m = hi - c < C ? hi - c : C;
            if (counting) ok = count_chunk(e, t, first, c, m, sel, sel_task, ns, omp_get_thread_num());
            else if (merging) ok = merge_chunk(e, t, first, c, m, &balance);
            else ok = load_chunk(e, t, first, c, m);
            if (ok && merging) written = emit_chunk(e, i, first, c, m, &write_failed, err);
        }
#pragma omp atomic update
        e->balance += balance;
        if (!ok)
#pragma omp atomic write
            bad = true;
    }
    if (bad) return load_failure(e, t, first, n, err);
    if (write_failed) return -1;
    if (counting || merging) return 0;
    /* the remerge of a TIES method, the majority known: over the slice, rewritten in place */
    int64_t ignored = 0;
    merge_tv(e, t, first, (const float *const *)e->tv, e->out, e->count, n, false, &ignored);
#pragma omp parallel for schedule(static) if (n > KERN_PAR_MIN)
    for (size_t c = 0; c < n; c += C) add_base(e, e->fb + c, e->out + c, n - c < C ? n - c : C);
    return rewrite_f32(e, i, first, e->out, n, err);
}

/* In memory: tensor i's rows from the caller, now (a transformed source forms them on the call). */
static void view_tensor(engine *e, int i) {
    if (!e->mem || e->mem_viewing == i) return;
    const float *model[AM_MAX_MODELS], *base;
    e->mem->views(e->mem->user, i, model, &base);
    e->t[i].src[0].mem = (const unsigned char *)base; /* NULL: zeros */
    for (int k = 0; k < e->K; k++) e->t[i].src[1 + k].mem = (const unsigned char *)model[k];
    e->mem_viewing = i;
}

/* One pass over every merged tensor, a slice at a time. */
static int stream(engine *e, pass_kind kind, select_ctx *sel, const int *sel_task, int ns, tt_err *err) {
    for (int i = 0; i < e->n; i++) {
        const am_tensor *t = &e->t[i];
        if (!t->merged || t->svd) continue; /* the SVD merges' matrices: svd_merge_tensors */
        view_tensor(e, i);
        size_t numel = t->numel;
        for (size_t first = 0; first < numel || (first == 0 && numel == 0); first += e->slice) {
            size_t n = numel - first < e->slice ? numel - first : e->slice;
            if (slice_pass(e, i, kind, sel, sel_task, ns, first, n, err)) return -1;
            if (numel == 0) break;
        }
    }
    return 0;
}

/* Workspace of the bracketed selections (select.h) for all models together, at most, unless the
 * config says: past it (more than ~1.4 G merged entries at K = 8, BF16 models of ~2.8 GB) the
 * thresholds take the two radix passes instead. */
#define AM_SELECT_WORK_BYTES ((size_t)1 << 30)

/* Room for n bracketed selections over the e->d merged entries in e->sel_work when it fits the
 * budget (select_work, else AM_SELECT_WORK_BYTES); else none, and the selections take the radix
 * mode. calloc, not zeroed by hand: the pages of the copies' room that the selections never reach
 * (most of it: the room is three times the copies expected) stay out of the process' memory. */
static void select_workspace(engine *e, int n) {
    size_t work_len = select_bracket_work(e->d), budget = e->c->select_work ? e->c->select_work : AM_SELECT_WORK_BYTES;
    e->sel_work = NULL;
    e->sel_work_len = work_len;
    if (n > 0 && work_len != SIZE_MAX && work_len <= budget / sizeof(float) / (size_t)n)
        e->sel_work = calloc(work_len * (size_t)n, sizeof(float)); /* NULL: radix */
}

static void select_workspace_free(engine *e) {
    free(e->sel_work);
    e->sel_work = NULL;
}

/* Selection s of the rank-th value over the merged entries: bracketed in slot `slot` of the
 * workspace when there is one, else radix. */
static int select_start(engine *e, select_ctx *s, uint64_t rank, bool absval, size_t slot, tt_err *err) {
    if (!e->sel_work) return select_init(s, rank, absval, err);
    return select_init_bracket(s, rank, absval, e->d, e->sel_work + slot * e->sel_work_len, e->sel_work_len, err);
}

/* The passes of selections sel[0..ns) (model task[j]) until every one is done, their values into
 * v: in the bracketed mode the sample pass and one counting pass, two radix passes more where a
 * bracket missed; in the radix mode two counting passes. */
static int select_passes(engine *e, select_ctx *sel, const int *task, int ns, float *v, tt_err *err) {
    bool more = ns > 0, sampling = more && !select_done(&sel[0]) && sel[0].pass == SELECT_SAMPLE;
    int rc = 0;
    while (more && !rc) {
        rc = stream(e, sampling ? PASS_SAMPLE : PASS_SELECT, sel, task, ns, err);
        e->threshold_passes += !sampling;
        sampling = false; /* only the first pass samples (select.h) */
        more = false;
        for (int j = 0; j < ns && !rc; j++)
            if (!select_done(&sel[j])) more |= select_next_pass(&sel[j]);
    }
    for (int j = 0; j < ns && !rc; j++) v[j] = select_value(&sel[j]);
    return rc;
}

/* Each model's global trim threshold: the exact order statistic of |τ_k| over all merged elements
 * (ties_threshold_rank's rank), for all models together. In the bracketed mode when its workspace
 * fits the budget: a pass over a 1/64 sample, then one counting pass (two radix passes more only
 * for a model whose bracket missed); else the two radix passes. Either is exact. */
static int thresholds(engine *e, double topk, tt_err *err) {
    select_ctx sel[AM_MAX_MODELS];
    int task[AM_MAX_MODELS], ns = 0, rc = 0;
    float v[AM_MAX_MODELS];
    select_workspace(e, e->K);
    for (int k = 0; k < e->K; k++) {
        double tk = e->c->model[k].density >= 0 && e->c->method != AM_DARE ? 100.0 * e->c->model[k].density : topk;
        uint64_t rank;
        e->thr[k] = 0;
        if (!ties_threshold_rank(e->d, tk, &rank)) continue;
        if (select_start(e, &sel[ns], rank, true, (size_t)ns, err)) {
            while (ns--) select_free(&sel[ns]);
            select_workspace_free(e);
            return -1;
        }
        task[ns++] = k;
    }
    rc = select_passes(e, sel, task, ns, v, err);
    for (int j = 0; j < ns; j++) {
        if (!rc) e->thr[task[j]] = v[j];
        select_free(&sel[j]);
    }
    select_workspace_free(e);
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
    if (slice_rows(e, err)) return -1;
    qsort(e->und, e->n_und, sizeof *e->und, cmp_u64);
    int i = 0;
    for (size_t u = 0; u < e->n_und; u++) {
        uint64_t g = e->und[u];
        while (!e->t[i].merged || g >= e->t[i].gfirst + (uint64_t)e->t[i].numel) i++;
        view_tensor(e, i);
        const am_tensor *t = &e->t[i];
        size_t first = (size_t)(g - t->gfirst);
        if (!load_chunk(e, t, first, 0, 1)) return load_failure(e, t, first, 1, err);
        merge_range(e, t, first, e->fb, (const float *const *)e->tv, e->out, e->count, 1, NULL);
        if (rewrite_f32(e, i, first, e->out, 1, err)) return -1;
    }
    return 0;
}

/* ---- pcb: each model's four order statistics over the whole model ---- */

/* PCB's bounds of every model, exact over all merged entries: the clamp bounds of |τ_k| (the order
 * statistics at pcb_ranks' r_lo and r_hi), then, those known, of its balancing score the order
 * statistic at r_b and the largest value (seen by the counting passes). Each stage a sample and a
 * counting pass (bracketed selections), or two counting passes (radix). */
static int pcb_bounds(engine *e, tt_err *err) {
    const am_config *c = e->c;
    const int K = e->K, T = omp_get_max_threads();
    uint64_t r_lo, r_hi, r_b;
    if (!pcb_ranks(e->d, c->pcb_clamp, c->pcb_keep, &r_lo, &r_hi, &r_b))
        return tt_fail(err, TT_EINPUT, "pcb: parameter clamp=%g leaves no entries between the two clamp bounds of "
                                       "%llu merged entries", c->pcb_clamp, (unsigned long long)e->d);
    select_ctx *sel = calloc((size_t)(2 * K), sizeof *sel);
    int task[2 * AM_MAX_MODELS], ns = 0, rc = -1;
    float v[2 * AM_MAX_MODELS];
    e->pcb_max = malloc((size_t)T * (size_t)K * sizeof *e->pcb_max);
    if (!sel || !e->pcb_max) {
        tt_fail(err, TT_ENOMEM, "out of memory");
        goto done;
    }
    select_workspace(e, 2 * K);
    for (int k = 0; k < K; k++)
        for (int end = 0; end < 2; end++, ns++) {
            task[ns] = k;
            if (select_start(e, &sel[ns], end ? r_hi : r_lo, true, (size_t)ns, err)) goto done;
        }
    if (select_passes(e, sel, task, ns, v, err)) goto done;
    for (int k = 0; k < K; k++) e->pcb[k].lo = v[2 * k], e->pcb[k].hi = v[2 * k + 1];
    while (ns) select_free(&sel[--ns]);
    select_workspace_free(e);
    for (size_t i = 0; i < (size_t)T * (size_t)K; i++) e->pcb_max[i] = -INFINITY;
    select_workspace(e, K);
    for (int k = 0; k < K; k++, ns++) {
        task[ns] = k;
        if (select_start(e, &sel[ns], r_b, false, (size_t)ns, err)) goto done;
    }
    e->pcb_scores = true;
    if (select_passes(e, sel, task, ns, v, err)) goto done;
    for (int k = 0; k < K; k++) {
        e->pcb[k].blo = v[k];
        e->pcb[k].bhi = -INFINITY;
        for (int i = 0; i < T; i++) e->pcb[k].bhi = fmaxf(e->pcb[k].bhi, e->pcb_max[(size_t)i * (size_t)K + (size_t)k]);
    }
    rc = 0;
done:
    e->pcb_scores = false;
    while (sel && ns) select_free(&sel[--ns]);
    select_workspace_free(e);
    free(sel);
    free(e->pcb_max);
    e->pcb_max = NULL;
    return rc;
}

/* ---- tatr: the threshold of Ω over the whole model ---- */

/* TATR's threshold (the suite's: the rank int(d (100 − q)/100) of Ω ascending, exact; +inf when
 * nothing is masked) by the radix select's counting passes over the inputs, Ω formed per block. */
static int tatr_threshold(engine *e, tt_err *err) {
    uint64_t rank;
    e->tatr_thr = INFINITY;
    if (!tatr_threshold_rank(e->d, e->c->tatr_q, &rank)) return 0;
    select_ctx sel;
    if (select_init(&sel, rank, false, err)) return -1;
    int task = 0, rc = select_passes(e, &sel, &task, 1, &e->tatr_thr, err);
    select_free(&sel);
    return rc;
}

/* ---- awd and lata: ta with model weights per tensor from the task vectors' statistics ---- */

/* The error of tensor i whose read failed or held a value that is not finite: the first bad file,
 * named; an internal error if every file reads well now. */
static int tensor_read_error(engine *e, int i, tt_err *err) {
    for (int j = 0; j <= e->K; j++)
        if (read_checked(e, &e->t[i], j, 0, e->t[i].numel, err)) return -1;
    return tt_fail(err, TT_EINTERNAL, "tensor %s: a read failed once", e->t[i].name);
}

/* The statistics of merged tensor i that awd and lata need, streamed: AWD's Gram pair sums into
 * gram ([KERN_STAT_CHUNKS][K(K+1)/2], may be NULL) or LATA's alignment sums of each τ_k with the
 * mean task vector into cos ([K][KERN_STAT_CHUNKS][3], may be NULL). The kernels' fixed chunks go
 * one per thread (static schedule), each read a chunk-sized piece at a time and formed a
 * KERN_STAT_BLOCK at a time in the thread's block rows: the sums run in the kernels' order (the
 * suite's bits, which holds the task vectors whole) with a block of each input in memory. */
static int tensor_stats(engine *e, int i, double *gram, double *cos, tt_err *err) {
    const am_tensor *t = &e->t[i];
    const int K = e->K;
    const size_t pairs = (size_t)K * (size_t)(K + 1) / 2;
    /* elements per read: a chunk, or less under a small --slice; a multiple of KERN_STAT_BLOCK, so
     * that AWD's blocks fall where the kernel puts them */
    size_t step = e->slice < e->chunk ? e->slice : e->chunk;
    step = step < KERN_STAT_BLOCK ? KERN_STAT_BLOCK : step - step % KERN_STAT_BLOCK;
    const float inv = 1.0f / (float)K;
    int failed = 0;
    if (gram) memset(gram, 0, KERN_STAT_CHUNKS * pairs * sizeof *gram);
    if (cos) memset(cos, 0, (size_t)K * KERN_STAT_CHUNKS * 3 * sizeof *cos);
#pragma omp parallel for schedule(static) if (t->numel > step)
    for (int c = 0; c < KERN_STAT_CHUNKS; c++) {
        block_scratch b = thread_block(e);
        const size_t hi = kern_stat_chunk_start(t->numel, c + 1);
        for (size_t at = kern_stat_chunk_start(t->numel, c); at < hi; at += step) {
            size_t m = hi - at < step ? hi - at : step;
            bool ok = !__atomic_load_n(&failed, __ATOMIC_RELAXED) && read_raw(e, t, at, m);
            for (size_t o = 0; ok && o < m; o += KERN_STAT_BLOCK) {
                size_t n = m - o < KERN_STAT_BLOCK ? m - o : KERN_STAT_BLOCK;
                if (!(ok = form_rows(e, t, o, n, at + o, b.fb, b.tv))) break;
                if (gram) awd_gram_block(gram + (size_t)c * pairs, (const float *const *)b.tv, K, n);
                if (!cos) continue;
                memset(b.out, 0, n * sizeof *b.out); /* the mean task vector: 0 + τ_0 + ... then / K */
                kern_add_task_vectors_seq(b.out, (const float *const *)b.tv, NULL, K, n);
                for (size_t j = 0; j < n; j++) b.out[j] *= inv;
                for (int k = 0; k < K; k++) kern_abs_cos_add(cos + ((size_t)k * KERN_STAT_CHUNKS + (size_t)c) * 3, b.tv[k], b.out, n);
            }
            if (!ok) {
                __atomic_store_n(&failed, 1, __ATOMIC_RELAXED);
                break;
            }
        }
    }
    return failed ? tensor_read_error(e, i, err) : 0;
}

/* AWD's coefficients b [groups][K] (the suite's awd_fit_run): the Gram matrices of the τ_k, whole
 * model or per merged tensor (cosine=layer), accumulated tensor by tensor in the base's order, then
 * the iteration on b from 0 (or 1/K: init=mean). */
static int awd_coefficients(engine *e, int groups, double *b, tt_err *err) {
    const int K = e->K;
    double *G = calloc((size_t)groups * K * K, sizeof *G), *scratch = malloc(awd_gram_scratch(K) * sizeof *scratch);
    int rc = -1;
    if (!G || !scratch) {
        tt_fail(err, TT_ENOMEM, "out of memory");
        goto done;
    }
    for (int i = 0, g = 0; i < e->n; i++) {
        if (!e->t[i].merged) continue;
        if (tensor_stats(e, i, scratch, NULL, err)) goto done;
        awd_gram_finish(G + (size_t)(e->c->awd_layer ? g++ : 0) * K * K, scratch, K);
    }
    for (int i = 0; i < groups * K; i++) b[i] = e->c->awd_init_mean ? 1.0 / K : 0;
    int r = awd_descend(G, groups, K, &e->c->awd, b, NULL);
    if (r < 0) tt_fail(err, TT_ENOMEM, "out of memory");
    else if (r > 0) tt_fail(err, TT_ENUMERIC, "awd: the loss became non-finite at iteration %d; try a smaller beta", r - 1);
    else rc = 0;
done:
    free(G);
    free(scratch);
    return rc;
}

/* LATA's weights w [K][L] of the L merged tensors (the suite's lata): per tensor the mean task vector
 * v = (0 + τ_0 + ... + τ_{K−1}) · (1/K), each model's score 1 − |cos(τ_k, v)|, then per model the
 * ceil(L·topk/100) highest-scoring tensors weighted 1 and the others gamma, normalised to mean 1. */
static int lata_tensor_weights(engine *e, int L, float *w, tt_err *err) {
    const int K = e->K;
    double *score = malloc((size_t)K * (L ? L : 1) * sizeof *score);
    double *cos = malloc((size_t)K * KERN_STAT_CHUNKS * 3 * sizeof *cos);
    int rc = -1;
    if (!score || !cos) {
        tt_fail(err, TT_ENOMEM, "out of memory");
        goto done;
    }
    for (int i = 0, l = 0; i < e->n; i++) {
        if (!e->t[i].merged) continue;
        if (tensor_stats(e, i, NULL, cos, err)) goto done;
        for (int k = 0; k < K; k++)
            score[(size_t)k * L + l] = 1 - kern_abs_cos_finish(cos + (size_t)k * KERN_STAT_CHUNKS * 3);
        l++;
    }
    for (int k = 0; k < K; k++) lata_weights(score + (size_t)k * L, L, e->c->lata_topk, e->c->lata_gamma, w + (size_t)k * L);
    rc = 0;
done:
    free(score);
    free(cos);
    return rc;
}

/* awd and lata: every merged tensor's model weights t->w[k] multiplied by the method's, found from
 * every tensor's statistics (tensor_stats: the one pass before the merge, streamed). The merge pass
 * is then ta's. */
static int tensor_weights(engine *e, tt_err *err) {
    const int K = e->K;
    int L = 0;
    for (int i = 0; i < e->n; i++) L += e->t[i].merged;
    int groups = e->c->awd_layer ? L : 1, rc = -1;
    double *b = NULL;
    float *w = NULL;
    if (e->c->method == AM_AWD) {
        if (!(b = malloc((size_t)groups * K * sizeof *b))) {
            tt_fail(err, TT_ENOMEM, "out of memory");
            goto done;
        }
        if (awd_coefficients(e, groups, b, err)) goto done;
    } else {
        if (!(w = malloc((size_t)K * (L ? L : 1) * sizeof *w))) {
            tt_fail(err, TT_ENOMEM, "out of memory");
            goto done;
        }
        if (lata_tensor_weights(e, L, w, err)) goto done;
    }
    for (int i = 0, l = 0; i < e->n; i++) {
        am_tensor *t = &e->t[i];
        if (!t->merged) continue;
        for (int k = 0; k < K; k++) {
            double m = b ? 1 - K * b[(size_t)(groups > 1 ? l : 0) * K + k] : w[(size_t)k * L + l];
            /* (float) of the suite's coefficient: with unit model weights the suite's exact floats */
            t->w[k] = t->w[k] == 1.0f ? (float)m : (float)(t->w[k] * (double)(float)m);
        }
        l++;
    }
    rc = 0;
done:
    free(b);
    free(w);
    return rc;
}

/* ---- the SVD merges (tsv-m, iso-c, iso-cts, cart): each 2-D tensor whole, one per thread ---- */

/* Iso-CTS' subspaces must exist for every matrix: checked before anything is read. */
static int svd_check(const engine *e, tt_err *err) {
    for (int i = 0; i < e->n; i++) {
        const st_tensor *b = e->t[i].base->t;
        if (!e->t[i].svd) continue;
        if (b->shape[0] > INT32_MAX || b->shape[1] > INT32_MAX)
            return tt_fail(err, TT_EINPUT, "tensor %s of %s: a side of %lld x %lld is too long for the SVD merges",
                           b->name, st_path(e->t[i].base->file), (long long)b->shape[0], (long long)b->shape[1]);
        int k = (int)(b->shape[0] < b->shape[1] ? b->shape[0] : b->shape[1]), c, s;
        if (e->c->method == AM_ISO_CTS && isocts_dims(k, e->K, e->c->common_space_fraction, &c, &s))
            return tt_fail(err, TT_EINPUT,
                           "parameter common_space_fraction=%g leaves a negative common subspace for tensor %s "
                           "(k=%d, K=%d)",
                           e->c->common_space_fraction, b->name, k, e->K);
    }
    return 0;
}

typedef struct svd_source {
    engine *e;
    const int *tensor; /* the batch's tensors, by job */
    int *failed;       /* set when a read failed or a value was not finite */
} svd_source;

/* Model k's τ of the batch's job into out (numel floats): the base and the model read a block at a
 * time into this thread's rows and formed as the merge pass forms them (form_base, form_model). On
 * a failure *failed is set (the caller names it) and out is zeroed. */
static void svd_tau(const void *src, int job, int k, float *out) {
    const svd_source *s = src;
    engine *e = s->e;
    const am_tensor *t = &e->t[s->tensor[job]];
    block_scratch b = thread_block(e);
    float *fb = b.fb;
    for (size_t at = 0; at < t->numel; at += AM_BLOCK) {
        size_t n = t->numel - at < AM_BLOCK ? t->numel - at : AM_BLOCK;
        if (e->c->method == AM_CART) { /* c_k = (τ_k + θ0) − θ_avg: every model read for the average */
            if (!read_raw(e, t, at, n) || !form_rows(e, t, 0, n, at, fb, b.tv)) {
                __atomic_store_n(s->failed, 1, __ATOMIC_RELAXED);
                memset(out, 0, t->numel * sizeof *out);
                return;
            }
            cart_average(e, fb, (const float *const *)b.tv, b.out, n);
            for (size_t j = 0; j < n; j++) {
                float theta = b.tv[k][j] + fb[j];
                out[at + j] = theta - b.out[j];
            }
            continue;
        }
        if (!read_input(e, t, 0, at, n) || !form_base(e, t, 0, n, fb) || !read_input(e, t, 1 + k, at, n) ||
            !form_model(e, t, k, 0, n, at, fb, out + at)) {
            __atomic_store_n(s->failed, 1, __ATOMIC_RELAXED);
            memset(out, 0, t->numel * sizeof *out);
            return;
        }
    }
}

/* θ0 + λ · merged (cart: θ_avg + λ · merged) of tensor i in its output dtype, written a slice at a
 * time (on this thread). */
static int svd_emit(engine *e, int i, float *merged, tt_err *err) {
    const am_tensor *t = &e->t[i];
    size_t es = st_dtype_size(t->out);
    block_scratch b = thread_block(e);
    float *fb = b.fb;
    for (size_t first = 0; first < t->numel; first += e->slice) {
        size_t m = t->numel - first < e->slice ? t->numel - first : e->slice;
        for (size_t o = 0; o < m; o += AM_BLOCK) {
            size_t n = m - o < AM_BLOCK ? m - o : AM_BLOCK, at = first + o;
            if (e->c->method == AM_CART) {
                if (!read_raw(e, t, at, n) || !form_rows(e, t, 0, n, at, fb, b.tv)) return load_failure(e, t, at, n, err);
                cart_average(e, fb, (const float *const *)b.tv, b.out, n);
                for (size_t j = 0; j < n; j++) {
                    float step = e->lam * merged[at + j];
                    merged[at + j] = b.out[j] + step;
                }
            } else {
                if (!read_input(e, t, 0, at, n) || !form_base(e, t, 0, n, fb)) return load_failure(e, t, at, n, err);
                add_base(e, fb, merged + at, n);
            }
            st_f32_to_dtype(t->out, merged + at, e->obuf + o * es, n);
        }
        if (tsk_write_raw(e->sink, i, first * es, e->obuf, m * es, err)) return -1;
    }
    return 0;
}

/* Bytes one thread's SVD merge of an m x n matrix takes at K models, by estimate: its K task vectors
 * and the merged matrix as F32, the method's float64 copies and factors and LAPACK's workspace, as
 * a·mn + b·k² (k = min(m, n)) with a and b fitted to the peak RSS of one-matrix merges (1024 x 1024,
 * 2752 x 1024 and 1024 x 2752 at K = 8) and rounded up. It predicts 91 and 69 bytes per entry for
 * TSV-M and Iso-C on 11,008 x 4,096, where 87 and 65 were measured. */
static double svd_job_bytes(am_method mt, int K, size_t m, size_t n) {
    double k = (double)(m < n ? m : n), mn = (double)m * (double)n, a = 36, b = 72; /* tsv-m */
    if (mt == AM_ISO_C) a = 28, b = 32;
    else if (mt == AM_ISO_CTS) a = 54, b = 68;
    else if (mt == AM_CART) a = 72, b = 16;
    return (4.0 * K + a) * mn + b * k * k;
}

/* What the process takes beside the SVD jobs' estimates: the engine's buffers and the BLAS's
 * per-thread buffers (peak RSS less the jobs' estimate: ~100 MB on matrices of 512 columns, ~220 MB
 * for Iso-C alone on 11,008 x 4,096, 2 threads), rounded up. */
#define SVD_FIXED_BYTES (256.0 * 1024 * 1024)

/* What the SVD merges' matrices in flight may take: c->max_memory, else 3/4 of the memory the
 * kernel reports available now (no limit when it does not say), less SVD_FIXED_BYTES. */
static double svd_budget(const am_config *c) {
    double total = INFINITY;
    if (c->max_memory) {
        total = (double)c->max_memory;
    } else {
        FILE *f = fopen("/proc/meminfo", "r");
        char line[128];
        unsigned long long kb = 0;
        while (f && fgets(line, sizeof line, f))
            if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) break;
        if (f) fclose(f);
        if (kb) total = 0.75 * 1024.0 * (double)kb;
    }
    return total > SVD_FIXED_BYTES ? total - SVD_FIXED_BYTES : 0; /* 0: one matrix at a time */
}

/* Every 2-D tensor of an SVD merge: in batches of at most one tensor per thread, the largest first,
 * as many as fit in the budget by estimate (svd_job_bytes; one alone when it needs more)
 * (svd_run_jobs: each thread reads its tensor's K task vectors and runs the per-matrix merge with a
 * one-threaded BLAS, so the bits do not depend on the batches), then each batch's θ0 + λ · merged
 * written; *done counts the matrices, pg shows them. Memory: per thread in the batch K task vectors
 * of its matrix and the SVDs' float64 workspace, and the batch's merged matrices. */
static int svd_merge_tensors(engine *e, progress *pg, int *done, tt_err *err) {
    int n = 0, T = omp_get_max_threads(), rc = -1;
    int *idx = malloc((size_t)(e->n ? e->n : 1) * sizeof *idx);
    svd_job *jobs = malloc((size_t)T * sizeof *jobs);
    float **out = calloc((size_t)T, sizeof *out);
    if (!idx || !jobs || !out) {
        tt_fail(err, TT_ENOMEM, "out of memory");
        goto done;
    }
    for (int i = 0; i < e->n; i++)
        if (e->t[i].svd) idx[n++] = i;
    for (int i = 1; i < n; i++) /* the largest first (insertion sort: a model has at most thousands) */
        for (int j = i; j > 0 && e->t[idx[j]].numel > e->t[idx[j - 1]].numel; j--) {
            int x = idx[j];
            idx[j] = idx[j - 1], idx[j - 1] = x;
        }
    am_method mt = e->c->method;
    svd_layer_fn fn = mt == AM_TSV_M ? tsvm_layer : mt == AM_ISO_C ? isoc_layer : mt == AM_CART ? cart_layer : isocts_layer;
    const double param = mt == AM_CART ? e->c->cart_rank_ratio : e->c->common_space_fraction;
    const double budget = svd_budget(e->c);
    for (int b = 0, nb; b < n; b += nb) {
        int failed = 0;
        double need = 0;
        for (nb = 0; b + nb < n && nb < T; nb++) {
            const st_tensor *bt = e->t[idx[b + nb]].base->t;
            need += svd_job_bytes(mt, e->K, (size_t)bt->shape[0], (size_t)bt->shape[1]);
            if (nb > 0 && need > budget) break;
        }
        for (int j = 0; j < nb; j++) {
            const am_tensor *t = &e->t[idx[b + j]];
            if (!(out[j] = tt_calloc_aligned(t->numel, sizeof(float), err))) goto done;
            jobs[j] = (svd_job){(int)t->base->t->shape[0], (int)t->base->t->shape[1], out[j], t->name};
        }
        svd_source src = {e, idx + b, &failed};
        if (svd_run_jobs(nb, jobs, e->K, svd_tau, &src, fn, &param, false, err)) goto done;
        if (failed) { /* name the first bad file of the batch */
            for (int j = 0; j < nb; j++)
                if (tensor_read_error(e, idx[b + j], err) && err->code != TT_EINTERNAL) break;
            goto done;
        }
        for (int j = 0; j < nb; j++) {
            if (svd_emit(e, idx[b + j], out[j], err)) goto done;
            free(out[j]);
            out[j] = NULL;
        }
        *done += nb;
        progress_update(pg, 1 + *done, "%d of %d matrices", *done, n);
    }
    rc = 0;
done:
    for (int j = 0; out && j < T; j++) free(out[j]);
    free(out);
    free(jobs);
    free(idx);
    return rc;
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
        spec[i].dtype = e->t[i].out;
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
    for (int j = 0; j <= e->K; j++) {
        for (int i = 0; i < e->n_fds[j]; i++) close(e->fds[j][i]);
        free(e->fds[j]);
    }
    free(e->raw);
    free(e->in);
    free(e->blk);
    free(e->t);
    free(e->fb);
    free(e->out);
    free(e->count);
    free(e->obuf);
    free(e->und);
    free(e->sel_work);
}

/* The settings every run derives from the config. */
static void engine_start(engine *e, const am_config *c) {
    *e = (engine){.c = c, .K = c->K, .mem_viewing = -1};
    e->chunk = chunk_elements(e->K);
    /* at least two chunks per thread, so that every thread has work in a slice */
    size_t per_threads = 2 * (size_t)omp_get_max_threads() * e->chunk;
    e->slice = c->slice ? c->slice : per_threads > ((size_t)1 << 20) ? per_threads : (size_t)1 << 20;
    e->lam = (float)(c->lambda >= 0 ? c->lambda : am_default_lambda(c));
    if (c->method == AM_PCB) e->pcb_lam = e->lam, e->lam = 1; /* θ0 + τ_m: λ is inside PCB's sum */
    e->ties = c->method == AM_TIES || c->method == AM_CONSENSUS_TIES || (c->method == AM_DARE && c->dare_ties);
    e->mean = c->mean;
    for (int k = 0; k < e->K; k++) e->rho[k] = c->model[k].density >= 0 ? c->model[k].density : c->density;
}

/* The output slice, the threads' chunk and block rows, the TIES list (once plan knows raw_es); the
 * slice rows of the inputs come later, if needed (slice_rows). */
static int engine_buffers(engine *e, tt_err *err) {
    size_t T = (size_t)omp_get_max_threads();
    if ((!e->mem && !(e->obuf = tt_calloc_aligned(e->slice, sizeof(double), err))) ||
        !(e->raw = tt_calloc_aligned(T * (size_t)(e->K + 1) * e->chunk, e->raw_es, err)) ||
        !(e->in = tt_calloc_aligned(T * (size_t)(e->K + 1), sizeof *e->in, err)) ||
        !(e->blk = tt_calloc_aligned(T * block_floats(e->K), sizeof(float), err)))
        return -1;
    if (!e->ties) return 0;
    e->und_cap = e->c->undecided_cap;
    if (!(e->und = malloc((e->und_cap ? e->und_cap : 1) * sizeof *e->und)))
        return tt_fail(err, TT_ENOMEM, "out of memory (TIES: %zu undecided-entry slots)", e->und_cap);
    return 0;
}

int am_run(const am_config *c, const char *out, am_stats *stats, tt_err *err) {
    if (c->K < 1 || c->K > AM_MAX_MODELS)
        return tt_fail(err, TT_EINPUT, "%d models given: between 1 and %d are merged", c->K, AM_MAX_MODELS);
    engine e;
    engine_start(&e, c);
    int rc = -1;
    if (plan(&e, err)) goto done;
    if (c->after_open) c->after_open(c->after_open_arg);
    if (engine_buffers(&e, err)) goto done;
    int svd_n = 0, svd_done = 0; /* the SVD merges' matrices: a step each */
    for (int i = 0; i < e.n; i++) svd_n += e.t[i].svd;
    const int steps = e.ties ? 4 : 2 + svd_n;
    progress pg;
    progress_start(&pg, am_method_name(c->method), steps, c->progress);
    if (e.ties) {
        if (thresholds(&e, c->topk, err)) {
            progress_end(&pg);
            goto done;
        }
        progress_update(&pg, 2, "thresholds");
    }
    bool svd = svd_method(c->method);
    if ((svd && svd_check(&e, err)) || (weighted_ta(c->method) && tensor_weights(&e, err)) ||
        (c->method == AM_TATR && tatr_threshold(&e, err)) || (c->method == AM_PCB && pcb_bounds(&e, err)) ||
        open_sink(&e, out, err) || copy_rest(&e, err) ||
        stream(&e, PASS_MERGE, NULL, NULL, 0, err) || (e.ties && fix_undecided(&e, err)) ||
        (svd && svd_merge_tensors(&e, &pg, &svd_done, err))) {
        tsk_abort(e.sink);
        progress_end(&pg);
        goto done;
    }
    progress_update(&pg, steps, "written");
    progress_end(&pg);
    double t_sync = progress_now();
    rc = tsk_commit(e.sink, err);
    if (!rc && stats) {
        *stats = (am_stats){.elements = e.d, .sync_seconds = progress_now() - t_sync,
                            .threshold_passes = e.threshold_passes, .svd_tensors = (uint64_t)svd_done};
        for (int i = 0; i < e.n; i++) {
            if (e.t[i].merged) stats->merged++;
            else stats->copied++;
        }
    }
done:
    engine_free(&e);
    return rc;
}

/* ---- tensors in memory ---- */

/* The tensors of a memory input: every one merged, F32 in and out, read by view_tensor's pointers. */
static int plan_memory(engine *e, const am_mem_input *in, tt_err *err) {
    e->n = in->n;
    e->raw_es = sizeof(float);
    if (!(e->t = calloc((size_t)(e->n ? e->n : 1), sizeof *e->t))) return tt_fail(err, TT_ENOMEM, "out of memory");
    for (int i = 0; i < e->n; i++) {
        am_tensor *t = &e->t[i];
        t->name = in->name[i];
        t->numel = in->numel[i];
        t->mem_at = in->offset[i];
        t->merged = true;
        t->key = kern_name_key(t->name);
        t->gfirst = e->d, e->d += (uint64_t)t->numel;
        t->out = ST_F32;
        for (int j = 0; j <= e->K; j++) t->src[j] = (am_src){.fd = -1, .dtype = ST_F32};
        for (int k = 0; k < e->K; k++) t->w[k] = (float)am_weight(&e->c->model[k], t->name);
    }
    e->mem_views = true;
    for (int i = 0; i < e->n; i++)
        for (int k = 0; k < e->K; k++) e->mem_views &= e->t[i].w[k] == 1.0f;
    return 0;
}

int am_merge_tau(const am_config *c, const am_mem_input *in, float *out, am_tau_result *res, tt_err *err) {
    if (c->K < 1 || c->K > AM_MAX_MODELS)
        return tt_fail(err, TT_EINPUT, "%d models given: between 1 and %d are merged", c->K, AM_MAX_MODELS);
    if (c->method != AM_TA && c->method != AM_TIES)
        return tt_fail(err, TT_EINPUT, "%s: only ta and ties merge tensors in memory", am_method_name(c->method));
    engine e;
    engine_start(&e, c);
    e.mem = in, e.mem_out = out;
    int rc = -1;
    if (plan_memory(&e, in, err) || engine_buffers(&e, err)) goto done;
    progress pg;
    progress_start(&pg, am_method_name(c->method), e.ties ? 3 : 1, c->progress);
    if (e.ties && thresholds(&e, c->topk, err)) {
        progress_end(&pg);
        goto done;
    }
    if (e.ties) progress_update(&pg, 2, "merge");
    rc = stream(&e, PASS_MERGE, NULL, NULL, 0, err) || (e.ties && fix_undecided(&e, err)) ? -1 : 0;
    progress_end(&pg);
    if (!rc && res) {
        *res = (am_tau_result){.elements = e.d, .threshold_passes = e.threshold_passes};
        for (int k = 0; k < e.K; k++) res->thr[k] = e.thr[k], res->kept[k] = e.kept[k];
    }
done:
    engine_free(&e);
    return rc;
}
