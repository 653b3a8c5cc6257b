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
#include <oneapi/dnnl/dnnl.h>

#include "core/err.h"

typedef struct dnn {
    dnnl_engine_t engine;
    dnnl_stream_t stream;
} dnn;

int dnn_create(dnn **out, tt_err *err);
void dnn_free(dnn *d); /* NULL is a no-op */

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
    bool pack_b;     /* let oneDNN pick B's layout; each run reorders B into it first (for weights:
                      * a 768x3072 f32 matmul on M = 6400 rows ran 4-10% faster on packed B with the
                      * reorder counted, since brgemm otherwise copies B blocks for every row block) */
} dnn_matmul_desc;

typedef struct dnn_matmul dnn_matmul;
dnn_matmul *dnn_matmul_create(dnn *d, const dnn_matmul_desc *desc, tt_err *err);
void dnn_matmul_run(dnn_matmul *mm, const float *A, const float *B, const float *bias, float *C);
const char *dnn_matmul_impl(const dnn_matmul *mm); /* oneDNN's implementation name, e.g. "gemm:jit" */
bool dnn_matmul_packed(const dnn_matmul *mm);      /* pack_b, and oneDNN chose a layout other than B's own */
void dnn_matmul_free(dnn_matmul *mm);

/* Memory object wrapping a plain f32 buffer of the given dims (row-major); data set per run. */
int dnn_memory_plain(dnnl_memory_t *out, dnn *d, int ndims, const dnnl_dim_t *dims, tt_err *err);
void dnn_exec(dnn *d, dnnl_primitive_t p, int nargs, const dnnl_exec_arg_t *args);

#endif
