/* dnn.h — the oneDNN engine/stream and the matmul primitive wrapper.
 *
 * All oneDNN calls of ttmerge live in core/dnn.c and core/ops.c (2.x C API: *_desc_init +
 * dnnl_primitive_desc_create). A primitive is planned once per shape (dnn_matmul_create)
 * and run many times with new data pointers (dnn_matmul_run only re-points memory handles
 * and executes; it never allocates).
 *
 *   dnn *d; dnn_create(&d, &e);
 *   dnn_matmul *mm = dnn_matmul_create(d, &(dnn_matmul_desc){.batch=1,.M=4,.K=8,.N=3}, &e);
 *   dnn_matmul_run(mm, A, B, NULL, C);      // C[4x3] = A[4x8] . B[8x3]
 *   dnn_matmul_free(mm); dnn_free(d);
 */
#ifndef TT_DNN_H
#define TT_DNN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <oneapi/dnnl/dnnl.h>

#include "core/err.h"

/* The precision of the matmuls planned on an engine. DNN_BF16: every matmul (and the patch
 * embedding, a matmul) reads its two inputs in bfloat16 and accumulates and writes in f32;
 * everything else (LayerNorm, softmax, GELU, residual sums, losses, optimisers) stays f32. */
typedef enum { DNN_F32 = 0, DNN_BF16 = 1 } dnn_precision;

typedef struct dnn {
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    dnn_precision precision; /* of the matmuls planned on it, from dnn_default_precision() */
    /* bf16 matmuls convert their f32 operands into this one buffer, shared by every matmul planned
     * on the engine (they run one at a time on its stream): a buffer per matmul held a bf16 copy of
     * every activation of a training plan (24 GB at ViT-B/16, 128 images). Grown at planning. */
    void *cvt_scratch;
    size_t cvt_cap;
} dnn;

/* A new engine computes at dnn_default_precision(). */
int dnn_create(dnn **out, tt_err *err);
/* Another engine (a lane's own stream) at like's precision. */
int dnn_create_like(dnn **out, const dnn *like, tt_err *err);
void dnn_free(dnn *d); /* NULL is a no-op */

/* "f32" / "bf16" <-> dnn_precision; parse returns -1 on anything else. */
int dnn_precision_parse(const char *s, dnn_precision *out);
const char *dnn_precision_name(dnn_precision p);
/* The CPU ISA oneDNN dispatches to (dnnl_get_effective_cpu_isa), e.g. "avx512_core_bf16". */
const char *dnn_isa_name(void);
/* bf16 runs only where the CPU multiplies it natively (oneDNN ISA avx512_core_bf16 or AMX); elsewhere
 * oneDNN would emulate it, slower than f32. TTMERGE_NO_BF16=1 in the environment says "not native"
 * (the tests' way to reach the fallback). */
bool dnn_bf16_native(void);
/* Set the precision of the engines created from now on (the CLI's --precision) and return the one
 * in force: DNN_F32 when bf16 is asked for but not native (the caller says so). */
dnn_precision dnn_set_default_precision(dnn_precision want);
dnn_precision dnn_default_precision(void);

/* f32 -> bf16, round to nearest even (as oneDNN's reorders), NaN stays NaN; OpenMP over n. */
void dnn_to_bf16(uint16_t *dst, const float *src, size_t n);
/* One value of the same rounding (for loops that convert as they copy). */
static inline uint16_t dnn_bf16_from_f32(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/* Check a dnnl call inside a function returning int with a tt_err *err in scope. */
#define DNN_TRY(call)                                                                     \
    do {                                                                                  \
        dnnl_status_t st_ = (call);                                                       \
        if (st_ != dnnl_success)                                                          \
            return tt_fail(err, TT_EDNN, "oneDNN: %s failed: %s", #call, dnn_status_str(st_)); \
    } while (0)
/* Execution errors after a successful plan are bugs (shapes were validated at plan time),
 * except running out of memory (a scratchpad allocation): one line and exit status 3. */
#define DNN_RUN(call)                                                                     \
    do {                                                                                  \
        dnnl_status_t st_ = (call);                                                       \
        if (st_ == dnnl_out_of_memory) {                                                  \
            fprintf(stderr, "ttmerge: out of memory (oneDNN, %s)\n", #call);              \
            exit(3);                                                                      \
        }                                                                                 \
        if (st_ != dnnl_success) {                                                        \
            fprintf(stderr, "ttmerge: internal error: %s: %s at %s:%d\n", #call,          \
                    dnn_status_str(st_), __FILE__, __LINE__);                             \
            abort();                                                                      \
        }                                                                                 \
    } while (0)

const char *dnn_status_str(dnnl_status_t st);

/* Called before every primitive is created. oneDNN 2.6 JIT-compiles kernels into mmap'd code
 * buffers, and its code generator (Xbyak, built without exceptions) writes through a NULL buffer
 * when that mmap fails: under an address-space limit (ulimit -v) primitive creation would
 * segfault instead of returning dnnl_out_of_memory. So we check the headroom first: -1 with a
 * TT_ENOMEM "out of memory: ..." when the limit leaves too little (what: "a oneDNN matmul"). */
int dnn_headroom(const char *what, tt_err *err);

/* C[b] = op(A[b]) . op(B[b]) (+ bias) (+ C[b] if accumulate), for b < batch, all row-major.
 *   A: [batch, M, K], or stored [batch, K, M] when trans_a;
 *   B: [batch, K, N], or stored [batch, N, K] when trans_b; b_broadcast: B is one [K,N] for all b;
 *   bias: [N] broadcast over rows; C: [batch, M, N]. */
typedef struct dnn_matmul_desc {
    int batch, M, K, N;
    bool trans_a, trans_b;
    bool b_broadcast;
    bool bias;
    bool accumulate; /* C += A.B (oneDNN sum post-op) */
    /* then an elementwise function of the result, fused into the matmul (oneDNN eltwise post-op):
     * dnnl_alg_kind_undef (0) = none, else e.g. dnnl_eltwise_swish with post_alpha 1.702 (QuickGELU) */
    dnnl_alg_kind_t post_eltwise;
    float post_alpha;
    bool pack_b;     /* let oneDNN pick B's layout; each run reorders B into it first (for weights:
                      * a 768x3072 f32 matmul on M = 6400 rows ran 4-10% faster on packed B with the
                      * reorder counted, since brgemm otherwise copies B blocks for every row block);
                      * a bf16 matmul packs a caller's bf16 B the same way) */
    /* On a DNN_BF16 engine: the caller passes A (B) already in bf16, laid out as the f32 operand
     * would be (a weight converted once, dnn_to_bf16). Every other operand is passed in f32 and
     * converted into the matmul's own bf16 buffer by a oneDNN reorder at each run. Ignored in f32. */
    bool a_bf16, b_bf16;
    /* On a DNN_BF16 engine: C is written in bf16 (rounded once, after the post-ops); for a product
     * whose only reader is another bf16 matmul, which then takes it with a_bf16 instead of
     * converting it. Ignored in f32; not with accumulate. */
    bool c_bf16;
    /* Strided 4-D operands (heads > 0, attention reading the heads in place from token rows): the
     * batch is [batch / heads, heads], and A [.., M, K], B [.., K, N], C [.., M, N] are views with the
     * given strides in elements, {outer, head, row, col} (a transposed operand is a swap of the last
     * two); trans_*, b_broadcast and bias must be off. */
    int heads;
    dnnl_dims_t a_strides, b_strides, c_strides;
} dnn_matmul_desc;

typedef struct dnn_matmul dnn_matmul;
dnn_matmul *dnn_matmul_create(dnn *d, const dnn_matmul_desc *desc, tt_err *err);
/* A, B and C are float arrays, or uint16_t bf16 arrays where the desc says a_bf16 / b_bf16 / c_bf16
 * on a bf16 engine (dnn_matmul_bf16). */
void dnn_matmul_run(dnn_matmul *mm, const void *A, const void *B, const float *bias, void *C);
bool dnn_matmul_bf16(const dnn_matmul *mm); /* planned on a DNN_BF16 engine */
const char *dnn_matmul_impl(const dnn_matmul *mm); /* oneDNN's implementation name, e.g. "gemm:jit" */
bool dnn_matmul_packed(const dnn_matmul *mm);      /* pack_b, and oneDNN chose a layout other than B's own */
void dnn_matmul_free(dnn_matmul *mm);

/* Memory object wrapping a plain f32 buffer of the given dims (row-major); data set per run. */
int dnn_memory_plain(dnnl_memory_t *out, dnn *d, int ndims, const dnnl_dim_t *dims, tt_err *err);
void dnn_exec(dnn *d, dnnl_primitive_t p, int nargs, const dnnl_exec_arg_t *args);

#endif
