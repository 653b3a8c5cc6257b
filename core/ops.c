/* ops.c — forward/backward ops: matmul, layer norm, GELU and softmax forward on oneDNN
 * primitives; softmax backward, bias gradients, losses and data movement in plain C + OpenMP
 * (oneDNN 2.6 runs softmax backward and column reductions on slow reference kernels). */
#include "core/ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#define OPS_MAX_THREADS() omp_get_max_threads()
#else /* the fuzz build compiles this file without OpenMP (fuzz/CMakeLists.txt) */
#define OPS_MAX_THREADS() 1
#endif

#include "core/arena.h"

/* OpenMP regions only pay off above ~32k elements; below, the fork/join (and, on a loaded
 * machine, the spinning) costs more than the loop. */
#define OPS_PAR_MIN 32768

/* ------------------------------------------------------------------ linear */

/* Both backward matmuls have N = in, reading a row-major B (w, or the activations x) whose rows
 * are in floats apart. When that stride is a multiple of 4 KiB, the rows of every B panel fall in
 * the same L1/L2 cache sets and oneDNN's brgemm runs at ~1/3 of its speed (measured on ViT-B/32's
 * c_proj, in = 3072: 38-43 instead of 100-116 GFLOP/s on one AVX-512 core). The transposed
 * products have N = out and run at full speed; transposing their result back costs ~1/20 of the
 * matmul. Narrow layers (vision8, tiny) keep the direct form. */
static bool linear_wide_in(int in, int out) { return in >= 1024 && in % 1024 == 0 && in > out; }

/* Weights packed into oneDNN's own layout (dnn_matmul_desc.pack_b) cost one reorder of w per run
 * and save brgemm its per-row-block copies of B: on ViT-B/32's shapes (M = 6400) the forward and
 * dx matmuls ran 3-11% faster with the reorder counted. Packing also removes the 4 KiB-stride
 * slowdown above from dx, which then reads the packed w. getenv("TTMERGE_PACK") = 0 turns it
 * off, to measure it. */
#define LINEAR_PACK_MIN_WEIGHTS 65536 /* floats in w */
static bool linear_pack(int M, int in, int out) {
    static int env = -1;
    if (env < 0) {
        const char *v = getenv("TTMERGE_PACK");
        env = v && !strcmp(v, "0") ? 0 : 1;
    }
    return env && (size_t)in * out >= LINEAR_PACK_MIN_WEIGHTS && M >= out;
}

/* oneDNN's eltwise algorithm of an activation: QuickGELU x*sigmoid(1.702x) is swish with alpha = 1.702. */
static dnnl_alg_kind_t act_alg(op_act_kind kind, float *alpha) {
    *alpha = kind == OP_ACT_GELU ? 0.f : 1.702f;
    return kind == OP_ACT_GELU ? dnnl_eltwise_gelu_erf : dnnl_eltwise_swish;
}

/* backward = false plans the forward matmul alone (no backward primitives, no scratch); fuse (forward
 * only, NULL for none) its post-ops. */
static int linear_init(op_linear *op, dnn *d, int M, int in, int out, bool has_bias, bool backward,
                       const op_linear_fusion *fuse, tt_err *err) {
    memset(op, 0, sizeof *op);
    op->M = M;
    op->in = in;
    op->out = out;
    op->has_bias = has_bias;
    op->wide_in = linear_wide_in(in, out);
    /* bf16: the caller's bf16 copy of w is packed like an f32 w (brgemm's bf16 kernels read B in
     * pairs of rows: unpacked, they copy it per row block; packed, ViT-B/32's eval ran 5% faster on
     * Zen 4); its rows are 2·in bytes apart, so the 4 KiB-stride slowdown of dx does not arise at
     * in = 1024·k and dx is never transposed */
    bool bf = op->w_bf16 = d->precision == DNN_BF16;
    bool pack = op->pack_w = linear_pack(M, in, out);
    /* y[M,out] = x[M,in] . (w[out,in])^T: w seen as B [in,out] stored transposed. */
    dnn_matmul_desc fwd = {.batch = 1, .M = M, .K = in, .N = out, .trans_b = true, .bias = has_bias, .pack_b = pack,
                           .b_bf16 = bf};
    if (fuse) {
        TT_ASSERT(!backward);
        fwd.accumulate = fuse->add_to_y;
        if (fuse->act) fwd.post_eltwise = act_alg(fuse->act_kind, &fwd.post_alpha);
        fwd.a_bf16 = bf && fuse->x_bf16;
        fwd.c_bf16 = bf && fuse->y_bf16;
    }
    op->fwd = dnn_matmul_create(d, &fwd, err);
    if (!op->fwd) goto fail;
    if (!backward) return 0;
    op->dx_transposed = op->wide_in && !pack && !bf;
    if (!op->dx_transposed) /* dx[M,in] = dy[M,out] . w[out,in] */
        op->bwd_x = dnn_matmul_create(d, &(dnn_matmul_desc){.batch = 1, .M = M, .K = out, .N = in, .pack_b = pack,
                                                             .b_bf16 = bf}, err);
    else /* dx^T[in,M] = (w[out,in])^T . (dy[M,out])^T: both seen transposed */
        op->bwd_x = dnn_matmul_create(d, &(dnn_matmul_desc){.batch = 1, .M = in, .K = out, .N = M, .trans_a = true,
                                                             .trans_b = true}, err);
    if (!op->bwd_x) goto fail;
    if (!op->wide_in) /* dw[out,in] += dy^T[out,M] . x[M,in]: dy seen as A stored transposed. */
        op->bwd_w = dnn_matmul_create(d, &(dnn_matmul_desc){.batch = 1, .M = out, .K = M, .N = in,
                                                             .trans_a = true, .accumulate = true}, err);
    else /* dw^T[in,out] = (x[M,in])^T . dy[M,out], added transposed */
        op->bwd_w = dnn_matmul_create(d, &(dnn_matmul_desc){.batch = 1, .M = in, .K = M, .N = out, .trans_a = true},
                                      err);
    if (!op->bwd_w) goto fail;
    /* t holds dw^T [in, out], and dx^T [in, M] only when dx is transposed (a packed w needs no
     * transposed dx: 6400 x 3072 floats less for ViT-B/32's c_proj at batch 128) */
    size_t t_cols = op->dx_transposed && M > out ? (size_t)M : (size_t)out;
    if (op->wide_in) {
        op->t_floats = (size_t)in * t_cols;
        if (!(op->t = tt_calloc_aligned(op->t_floats, sizeof(float), err))) goto fail;
    }
    return 0;
fail:
    op_linear_free(op);
    return -1;
}

int op_linear_init(op_linear *op, dnn *d, int M, int in, int out, bool has_bias, tt_err *err) {
    return linear_init(op, d, M, in, out, has_bias, true, NULL, err);
}

int op_linear_init_forward(op_linear *op, dnn *d, int M, int in, int out, bool has_bias, tt_err *err) {
    return linear_init(op, d, M, in, out, has_bias, false, NULL, err);
}

int op_linear_init_forward_fused(op_linear *op, dnn *d, int M, int in, int out, bool has_bias, op_linear_fusion fuse,
                                 tt_err *err) {
    return linear_init(op, d, M, in, out, has_bias, false, &fuse, err);
}

/* dst[c, r] (=, or += when add) of src [rows, cols], in 32 x 32 tiles. */
static void transpose_into(float *dst, const float *src, int rows, int cols, bool add) {
    enum { TILE = 32 };
    int tr = (rows + TILE - 1) / TILE, tc = (cols + TILE - 1) / TILE;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)rows * cols > OPS_PAR_MIN)
    for (int a = 0; a < tr; a++)
        for (int b = 0; b < tc; b++) {
            int r1 = (a + 1) * TILE < rows ? (a + 1) * TILE : rows, c1 = (b + 1) * TILE < cols ? (b + 1) * TILE : cols;
            for (int c = b * TILE; c < c1; c++) {
                float *d = dst + (size_t)c * rows;
                if (add)
                    for (int r = a * TILE; r < r1; r++) d[r] += src[(size_t)r * cols + c];
                else
                    for (int r = a * TILE; r < r1; r++) d[r] = src[(size_t)r * cols + c];
            }
        }
}

void op_linear_forward(op_linear *op, void *y, const void *x, const void *w, const float *b) {
    dnn_matmul_run(op->fwd, x, w, op->has_bias ? b : NULL, y);
}

void op_linear_backward(op_linear *op, float *dx, float *dw, float *db, const float *dy,
                        const float *x, const void *w) {
    TT_ASSERT(op->bwd_w != NULL); /* not planned by op_linear_init_forward */
    if (dx && !op->dx_transposed) {
        dnn_matmul_run(op->bwd_x, dy, w, NULL, dx);
    } else if (dx) {
        dnn_matmul_run(op->bwd_x, w, dy, NULL, op->t); /* t [in, M] */
        transpose_into(dx, op->t, op->in, op->M, false);
    }
    if (dw && !op->wide_in) {
        dnn_matmul_run(op->bwd_w, dy, x, NULL, dw);
    } else if (dw) {
        dnn_matmul_run(op->bwd_w, x, dy, NULL, op->t); /* t [in, out] */
        transpose_into(dw, op->t, op->in, op->out, true);
    }
    if (db && op->has_bias) op_bias_grad(db, dy, op->M, op->out);
}

void op_linear_free(op_linear *op) {
    dnn_matmul_free(op->fwd);
    dnn_matmul_free(op->bwd_x);
    dnn_matmul_free(op->bwd_w);
    free(op->t);
    memset(op, 0, sizeof *op);
}

/* ------------------------------------------------------------------ layer norm */

int op_layernorm_init(op_layernorm *op, dnn *d, int M, int C, float eps, tt_err *err) {
    memset(op, 0, sizeof *op);
    if (dnn_headroom("a oneDNN layer norm", err)) return -1;
    op->M = M;
    op->C = C;
    op->eps = eps;
    op->d = d;
    dnnl_memory_desc_t data_md, stat_md, c_md;
    dnnl_dims_t dims = {M, C}, cdims = {C};
    DNN_TRY(dnnl_memory_desc_init_by_tag(&data_md, 2, dims, dnnl_f32, dnnl_ab));
    DNN_TRY(dnnl_memory_desc_init_by_tag(&c_md, 1, cdims, dnnl_f32, dnnl_a));
    unsigned flags = dnnl_use_scale | dnnl_use_shift;

    dnnl_layer_normalization_desc_t fd, bd;
    dnnl_primitive_desc_t fpd = NULL, bpd = NULL;
    DNN_TRY(dnnl_layer_normalization_forward_desc_init(&fd, dnnl_forward_training, &data_md, NULL, eps, flags));
    DNN_TRY(dnnl_primitive_desc_create(&fpd, &fd, NULL, d->engine, NULL));
    stat_md = *dnnl_primitive_desc_query_md(fpd, dnnl_query_exec_arg_md, DNNL_ARG_MEAN);
    dnnl_status_t st = dnnl_primitive_create(&op->fwd, fpd);
    if (st == dnnl_success)
        st = dnnl_layer_normalization_backward_desc_init(&bd, dnnl_backward, &data_md, &data_md, NULL, eps, flags);
    if (st == dnnl_success) st = dnnl_primitive_desc_create(&bpd, &bd, NULL, d->engine, fpd);
    if (st == dnnl_success) st = dnnl_primitive_create(&op->bwd, bpd);
    dnnl_primitive_desc_destroy(fpd);
    if (bpd) dnnl_primitive_desc_destroy(bpd);
    if (st != dnnl_success) {
        op_layernorm_free(op);
        return tt_fail(err, TT_EDNN, "oneDNN: layer norm [%d,%d]: %s", M, C, dnn_status_str(st));
    }
    dnnl_memory_t *data_mems[] = {&op->m_x, &op->m_y, &op->m_dy, &op->m_dx};
    for (size_t i = 0; i < 4; i++) DNN_TRY(dnnl_memory_create(data_mems[i], &data_md, d->engine, DNNL_MEMORY_NONE));
    dnnl_memory_t *c_mems[] = {&op->m_g, &op->m_b, &op->m_dg, &op->m_db};
    for (size_t i = 0; i < 4; i++) DNN_TRY(dnnl_memory_create(c_mems[i], &c_md, d->engine, DNNL_MEMORY_NONE));
    DNN_TRY(dnnl_memory_create(&op->m_mean, &stat_md, d->engine, DNNL_MEMORY_NONE));
    DNN_TRY(dnnl_memory_create(&op->m_var, &stat_md, d->engine, DNNL_MEMORY_NONE));
    /* scratch: dg/db (oneDNN overwrites, we accumulate) and dx when the caller passes NULL */
    op->dg_tmp = tt_calloc_aligned((size_t)2 * C + (size_t)M * C, sizeof(float), err);
    if (!op->dg_tmp) {
        op_layernorm_free(op);
        return -1;
    }
    op->db_tmp = op->dg_tmp + C;
    return 0;
}

void op_layernorm_forward(op_layernorm *op, float *y, float *mean, float *var, const float *x,
                          const float *g, const float *b) {
    DNN_RUN(dnnl_memory_set_data_handle(op->m_x, (void *)x));
    DNN_RUN(dnnl_memory_set_data_handle(op->m_y, y));
    DNN_RUN(dnnl_memory_set_data_handle(op->m_mean, mean));
    DNN_RUN(dnnl_memory_set_data_handle(op->m_var, var));
    DNN_RUN(dnnl_memory_set_data_handle(op->m_g, (void *)g));
    DNN_RUN(dnnl_memory_set_data_handle(op->m_b, (void *)b));
    dnnl_exec_arg_t args[] = {{DNNL_ARG_SRC, op->m_x},   {DNNL_ARG_DST, op->m_y},
                              {DNNL_ARG_MEAN, op->m_mean}, {DNNL_ARG_VARIANCE, op->m_var},
                              {DNNL_ARG_SCALE, op->m_g}, {DNNL_ARG_SHIFT, op->m_b}};
    dnn_exec(op->d, op->fwd, 6, args);
}

void op_layernorm_backward(op_layernorm *op, float *dx, float *dg, float *db, const float *dy,
                           const float *x, const float *mean, const float *var, const float *g) {
    float *dx_out = dx ? dx : op->db_tmp + op->C;
    DNN_RUN(dnnl_memory_set_data_handle(op->m_x, (void *)x));
    DNN_RUN(dnnl_memory_set_data_handle(op->m_dy, (void *)dy));
    DNN_RUN(dnnl_memory_set_data_handle(op->m_dx, dx_out));
    DNN_RUN(dnnl_memory_set_data_handle(op->m_mean, (void *)mean));
    DNN_RUN(dnnl_memory_set_data_handle(op->m_var, (void *)var));
    DNN_RUN(dnnl_memory_set_data_handle(op->m_g, (void *)g));
    DNN_RUN(dnnl_memory_set_data_handle(op->m_b, (void *)g)); /* SHIFT is counted as an input but never read */
    DNN_RUN(dnnl_memory_set_data_handle(op->m_dg, op->dg_tmp));
    DNN_RUN(dnnl_memory_set_data_handle(op->m_db, op->db_tmp));
    dnnl_exec_arg_t args[] = {{DNNL_ARG_SRC, op->m_x},          {DNNL_ARG_MEAN, op->m_mean},
                              {DNNL_ARG_VARIANCE, op->m_var},     {DNNL_ARG_DIFF_DST, op->m_dy},
                              {DNNL_ARG_SCALE, op->m_g},          {DNNL_ARG_SHIFT, op->m_b},
                              {DNNL_ARG_DIFF_SRC, op->m_dx},      {DNNL_ARG_DIFF_SCALE, op->m_dg},
                              {DNNL_ARG_DIFF_SHIFT, op->m_db}};
    dnn_exec(op->d, op->bwd, 9, args);
    if (dg) op_add_inplace(dg, op->dg_tmp, (size_t)op->C);
    if (db) op_add_inplace(db, op->db_tmp, (size_t)op->C);
}

void op_layernorm_free(op_layernorm *op) {
    if (op->fwd) dnnl_primitive_destroy(op->fwd);
    if (op->bwd) dnnl_primitive_destroy(op->bwd);
    dnnl_memory_t mems[] = {op->m_x, op->m_y, op->m_mean, op->m_var, op->m_g,
                            op->m_b, op->m_dy, op->m_dx,  op->m_dg,  op->m_db};
    for (size_t i = 0; i < sizeof mems / sizeof mems[0]; i++)
        if (mems[i]) dnnl_memory_destroy(mems[i]);
    free(op->dg_tmp);
    memset(op, 0, sizeof *op);
}

/* ------------------------------------------------------------------ activations */

int op_act_init(op_act *op, dnn *d, size_t n, op_act_kind kind, tt_err *err) {
    memset(op, 0, sizeof *op);
    if (dnn_headroom("a oneDNN activation", err)) return -1;
    op->n = n;
    op->kind = kind;
    op->d = d;
    float alpha;
    dnnl_alg_kind_t alg = act_alg(kind, &alpha);
    dnnl_memory_desc_t md;
    dnnl_dims_t dims = {(dnnl_dim_t)n};
    DNN_TRY(dnnl_memory_desc_init_by_tag(&md, 1, dims, dnnl_f32, dnnl_a));
    dnnl_eltwise_desc_t fd, bd;
    dnnl_primitive_desc_t fpd = NULL, bpd = NULL;
    DNN_TRY(dnnl_eltwise_forward_desc_init(&fd, dnnl_forward_training, alg, &md, alpha, 0.f));
    DNN_TRY(dnnl_primitive_desc_create(&fpd, &fd, NULL, d->engine, NULL));
    dnnl_status_t st = dnnl_primitive_create(&op->fwd, fpd);
    if (st == dnnl_success) st = dnnl_eltwise_backward_desc_init(&bd, alg, &md, &md, alpha, 0.f);
    if (st == dnnl_success) st = dnnl_primitive_desc_create(&bpd, &bd, NULL, d->engine, fpd);
    if (st == dnnl_success) st = dnnl_primitive_create(&op->bwd, bpd);
    dnnl_primitive_desc_destroy(fpd);
    if (bpd) dnnl_primitive_desc_destroy(bpd);
    if (st != dnnl_success) {
        op_act_free(op);
        return tt_fail(err, TT_EDNN, "oneDNN: activation [%zu]: %s", n, dnn_status_str(st));
    }
    dnnl_memory_t *mems[] = {&op->m_x, &op->m_y, &op->m_dy, &op->m_dx};
    for (size_t i = 0; i < 4; i++) DNN_TRY(dnnl_memory_create(mems[i], &md, d->engine, DNNL_MEMORY_NONE));
    return 0;
}

void op_act_forward(op_act *op, float *y, const float *x) {
    DNN_RUN(dnnl_memory_set_data_handle(op->m_x, (void *)x));
    DNN_RUN(dnnl_memory_set_data_handle(op->m_y, y));
    dnnl_exec_arg_t args[] = {{DNNL_ARG_SRC, op->m_x}, {DNNL_ARG_DST, op->m_y}};
    dnn_exec(op->d, op->fwd, 2, args);
}

void op_act_backward(op_act *op, float *dx, const float *dy, const float *x) {
    DNN_RUN(dnnl_memory_set_data_handle(op->m_x, (void *)x));
    DNN_RUN(dnnl_memory_set_data_handle(op->m_dy, (void *)dy));
    DNN_RUN(dnnl_memory_set_data_handle(op->m_dx, dx));
    dnnl_exec_arg_t args[] = {{DNNL_ARG_SRC, op->m_x}, {DNNL_ARG_DIFF_DST, op->m_dy},
                              {DNNL_ARG_DIFF_SRC, op->m_dx}};
    dnn_exec(op->d, op->bwd, 3, args);
}

void op_act_free(op_act *op) {
    if (op->fwd) dnnl_primitive_destroy(op->fwd);
    if (op->bwd) dnnl_primitive_destroy(op->bwd);
    dnnl_memory_t mems[] = {op->m_x, op->m_y, op->m_dy, op->m_dx};
    for (size_t i = 0; i < 4; i++)
        if (mems[i]) dnnl_memory_destroy(mems[i]);
    memset(op, 0, sizeof *op);
}

/* ------------------------------------------------------------------ softmax */

int op_softmax_init(op_softmax *op, dnn *d, int rows, int cols, tt_err *err) {
    memset(op, 0, sizeof *op);
    if (dnn_headroom("a oneDNN softmax", err)) return -1;
    op->rows = rows;
    op->cols = cols;
    op->d = d;
    dnnl_memory_desc_t md;
    dnnl_dims_t dims = {rows, cols};
    DNN_TRY(dnnl_memory_desc_init_by_tag(&md, 2, dims, dnnl_f32, dnnl_ab));
    dnnl_softmax_desc_t sd;
    dnnl_primitive_desc_t pd;
    DNN_TRY(dnnl_softmax_forward_desc_init(&sd, dnnl_forward_training, &md, 1));
    DNN_TRY(dnnl_primitive_desc_create(&pd, &sd, NULL, d->engine, NULL));
    dnnl_status_t st = dnnl_primitive_create(&op->fwd, pd);
    dnnl_primitive_desc_destroy(pd);
    if (st != dnnl_success) return tt_fail(err, TT_EDNN, "oneDNN: softmax: %s", dnn_status_str(st));
    DNN_TRY(dnnl_memory_create(&op->m_x, &md, d->engine, DNNL_MEMORY_NONE));
    DNN_TRY(dnnl_memory_create(&op->m_y, &md, d->engine, DNNL_MEMORY_NONE));
    return 0;
}

void op_softmax_forward(op_softmax *op, float *y, const float *x) {
    DNN_RUN(dnnl_memory_set_data_handle(op->m_x, (void *)x));
    DNN_RUN(dnnl_memory_set_data_handle(op->m_y, y));
    dnnl_exec_arg_t args[] = {{DNNL_ARG_SRC, op->m_x}, {DNNL_ARG_DST, op->m_y}};
    dnn_exec(op->d, op->fwd, 2, args);
}

void op_softmax_backward(int rows, int cols, float *dx, const float *dy, const float *y) {
#pragma omp parallel for schedule(static) if ((size_t)rows * cols > OPS_PAR_MIN)
    for (int r = 0; r < rows; r++) {
        const float *yr = y + (size_t)r * cols, *dyr = dy + (size_t)r * cols;
        float *dxr = dx + (size_t)r * cols;
        float dot = 0.f;
        for (int c = 0; c < cols; c++) dot += dyr[c] * yr[c];
        for (int c = 0; c < cols; c++) dxr[c] = yr[c] * (dyr[c] - dot);
    }
}

void op_softmax_free(op_softmax *op) {
    if (op->fwd) dnnl_primitive_destroy(op->fwd);
    if (op->m_x) dnnl_memory_destroy(op->m_x);
    if (op->m_y) dnnl_memory_destroy(op->m_y);
    memset(op, 0, sizeof *op);
}

void op_log_softmax(int rows, int cols, float *y, const float *x) {
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * cols;
        float *yr = y + (size_t)r * cols;
        float mx = xr[0];
        for (int c = 1; c < cols; c++) mx = xr[c] > mx ? xr[c] : mx;
        double s = 0;
        for (int c = 0; c < cols; c++) s += exp((double)(xr[c] - mx));
        float lse = mx + (float)log(s);
        for (int c = 0; c < cols; c++) yr[c] = xr[c] - lse;
    }
}

/* ------------------------------------------------------------------ attention */

/* The forward-only attention reads k and v in place from the qkv rows and writes each head's output
 * into its columns of the output rows (strided 4-D matmuls): no head-major copies of k, v and the
 * output (for ViT-B/32 at 256 images, 3 x 39 MB written and read per block), only q scaled into
 * scratch rows (the same products as the copies: q * scale, then the same matmuls). */
static int attention_init_forward_strided(op_attention *op, dnn *d, tt_err *err) {
    int B = op->B, T = op->T, W = op->W, H = op->H, hd = op->hd, BH = B * H;
    dnnl_dim_t tW = (dnnl_dim_t)T * W, t3W = 3 * tW, TT = (dnnl_dim_t)T * T;
    /* scores[b,h] [T,T] = q[b,h] [T,hd] . k[b,h]^T: q from the scaled rows [B*T, W], k^T from qkv + W */
    op->qk = dnn_matmul_create(d, &(dnn_matmul_desc){.batch = BH, .M = T, .K = hd, .N = T, .heads = H,
                                                      .a_strides = {tW, hd, W, 1}, .b_strides = {t3W, hd, 1, 3 * W},
                                                      .c_strides = {H * TT, TT, T, 1}}, err);
    /* out[b, t, h*hd + j] = (p[b,h] [T,T] . v[b,h] [T,hd]) [t, j], v from qkv + 2W */
    if (op->qk)
        op->pv = dnn_matmul_create(d, &(dnn_matmul_desc){.batch = BH, .M = T, .K = T, .N = hd, .heads = H,
                                                          .a_strides = {H * TT, TT, T, 1}, .b_strides = {t3W, hd, 3 * W, 1},
                                                          .c_strides = {tW, hd, W, 1}}, err);
    if (!op->pv || op_softmax_init(&op->softmax, d, BH * T, T, err) != 0) return -1;
    op->strided = true;
    op->scratch_floats = (size_t)B * tW + (size_t)BH * TT;
    if (!(op->q = tt_calloc_aligned(op->scratch_floats, sizeof(float), err))) return -1;
    op->scores = op->q + (size_t)B * tW;
    return 0;
}

/* backward = false plans the forward alone (attention_init_forward_strided, either precision). With
 * backward: head-major copies of q, k, v and d(out), which the backward's products read again; on a
 * bf16 engine the copies are written in bf16 (each the f32 value rounded once, the bits the matmuls'
 * own conversions gave) and the matmuls read them as they are (op->bf16). */
static int attention_init(op_attention *op, dnn *d, int B, int T, int W, int H, bool backward, tt_err *err) {
    memset(op, 0, sizeof *op);
    if (H < 1 || W % H != 0) return tt_fail(err, TT_EINPUT, "width %d is not a multiple of heads %d", W, H);
    op->B = B;
    op->T = T;
    op->W = W;
    op->H = H;
    op->hd = W / H;
    if (!backward) {
        if (attention_init_forward_strided(op, d, err) == 0) return 0;
        op_attention_free(op);
        return -1;
    }
    int BH = B * H, hd = op->hd;
    bool bf = op->bf16 = d->precision == DNN_BF16;
    /* scores[T,T] = q[T,hd] . k^T (k stored [T,hd] = [N,K]) */
    op->qk = dnn_matmul_create(d, &(dnn_matmul_desc){.batch = BH, .M = T, .K = hd, .N = T, .trans_b = true,
                                                      .a_bf16 = bf, .b_bf16 = bf}, err);
    /* o[T,hd] = p[T,T] . v[T,hd] */
    if (op->qk)
        op->pv = dnn_matmul_create(d, &(dnn_matmul_desc){.batch = BH, .M = T, .K = T, .N = hd, .b_bf16 = bf}, err);
    /* dp[T,T] = do[T,hd] . v^T */
    if (op->pv)
        op->d_p = dnn_matmul_create(d, &(dnn_matmul_desc){.batch = BH, .M = T, .K = hd, .N = T, .trans_b = true,
                                                           .a_bf16 = bf, .b_bf16 = bf}, err);
    /* dv[T,hd] = p^T . do (p stored [K=T, M=T]) */
    if (op->d_p)
        op->d_v = dnn_matmul_create(d, &(dnn_matmul_desc){.batch = BH, .M = T, .K = T, .N = hd, .trans_a = true,
                                                           .b_bf16 = bf}, err);
    /* dq[T,hd] = ds[T,T] . k[T,hd] */
    if (op->d_v)
        op->d_q = dnn_matmul_create(d, &(dnn_matmul_desc){.batch = BH, .M = T, .K = T, .N = hd, .b_bf16 = bf}, err);
    /* dk[T,hd] = ds^T . q */
    if (op->d_q)
        op->d_k = dnn_matmul_create(d, &(dnn_matmul_desc){.batch = BH, .M = T, .K = T, .N = hd, .trans_a = true,
                                                           .b_bf16 = bf}, err);
    if (!op->d_k || op_softmax_init(&op->softmax, d, BH * T, T, err) != 0) {
        op_attention_free(op);
        return -1;
    }
    size_t head = (size_t)BH * T * hd, sc = (size_t)BH * T * T;
    op->scratch_floats = 7 * head + 2 * sc;
    float *buf = tt_calloc_aligned(op->scratch_floats, sizeof(float), err);
    if (!buf) {
        op_attention_free(op);
        return -1;
    }
    op->q = buf;
    op->k = op->q + head;
    op->v = op->k + head;
    op->o = op->v + head;
    op->dq = op->o + head;
    op->dk = op->dq + head;
    op->dv = op->dk + head;
    op->scores = op->dv + head;
    op->dscores = op->scores + sc;
    return 0;
}

int op_attention_init(op_attention *op, dnn *d, int B, int T, int W, int H, tt_err *err) {
    return attention_init(op, d, B, T, W, H, true, err);
}

int op_attention_init_forward(op_attention *op, dnn *d, int B, int T, int W, int H, tt_err *err) {
    return attention_init(op, d, B, T, W, H, false, err);
}

/* qkv [B*T, 3W] -> q (scaled by `scale`), k, v [B*H, T, hd]; in bf16 (op->bf16) the same values
 * rounded once (the buffers then hold uint16_t). Written head by head: each (b, h) block [T, hd] is
 * contiguous in the copies. */
static void attention_split_heads(const op_attention *op, const float *qkv, float scale) {
    int B = op->B, T = op->T, W = op->W, H = op->H, hd = op->hd;
    bool bf = op->bf16;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * T * W > OPS_PAR_MIN / 3)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < T; t++) {
                const float *row = qkv + ((size_t)b * T + t) * 3 * W + h * hd;
                size_t dst = (((size_t)b * H + h) * T + t) * hd;
                if (bf) {
                    uint16_t *q = (uint16_t *)op->q + dst, *k = (uint16_t *)op->k + dst, *v = (uint16_t *)op->v + dst;
                    for (int j = 0; j < hd; j++) {
                        q[j] = dnn_bf16_from_f32(row[j] * scale);
                        k[j] = dnn_bf16_from_f32(row[W + j]);
                        v[j] = dnn_bf16_from_f32(row[2 * W + j]);
                    }
                } else {
                    for (int j = 0; j < hd; j++) {
                        op->q[dst + j] = row[j] * scale;
                        op->k[dst + j] = row[W + j];
                        op->v[dst + j] = row[2 * W + j];
                    }
                }
            }
}

/* heads [B*H, T, hd] -> rows [B*T, ld] at column offset col0 (each head at col0 + h*hd), times scale */
static void attention_merge_heads(const op_attention *op, float *rows, int ld, int col0, const float *heads,
                                  float scale) {
    int B = op->B, T = op->T, H = op->H, hd = op->hd;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * T * H * hd > OPS_PAR_MIN)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            float *row = rows + ((size_t)b * T + t) * ld + col0;
            for (int h = 0; h < H; h++) {
                const float *src = heads + (((size_t)b * H + h) * T + t) * hd;
                for (int j = 0; j < hd; j++) row[h * hd + j] = src[j] * scale;
            }
        }
}

void op_attention_set_causal(op_attention *op, bool causal) { op->causal = causal; }

/* scores [B*H, T, T]: -inf above the diagonal */
static void attention_mask_causal(const op_attention *op) {
    int BH = op->B * op->H, T = op->T;
#pragma omp parallel for schedule(static) if ((size_t)BH * T * T > OPS_PAR_MIN)
    for (int bh = 0; bh < BH; bh++)
        for (int i = 0; i < T - 1; i++) {
            float *row = op->scores + ((size_t)bh * T + i) * T;
            for (int j = i + 1; j < T; j++) row[j] = -INFINITY;
        }
}

/* q of qkv [B*T, 3W] times scale into rows [B*T, W] (op->q) */
static void attention_scale_q(const op_attention *op, const float *qkv, float scale) {
    size_t rows = (size_t)op->B * op->T;
    int W = op->W;
#pragma omp parallel for schedule(static) if (rows * W > OPS_PAR_MIN)
    for (size_t r = 0; r < rows; r++) {
        const float *src = qkv + r * 3 * W;
        float *dst = op->q + r * W;
        for (int j = 0; j < W; j++) dst[j] = src[j] * scale;
    }
}

void op_attention_forward(op_attention *op, float *out, float *probs, const float *qkv) {
    float scale = 1.0f / sqrtf((float)op->hd);
    if (op->strided) {
        attention_scale_q(op, qkv, scale);
        dnn_matmul_run(op->qk, op->q, qkv + op->W, NULL, op->scores);
        if (op->causal) attention_mask_causal(op);
        op_softmax_forward(&op->softmax, probs, op->scores);
        dnn_matmul_run(op->pv, probs, qkv + 2 * op->W, NULL, out);
        return;
    }
    attention_split_heads(op, qkv, scale);
    dnn_matmul_run(op->qk, op->q, op->k, NULL, op->scores);
    if (op->causal) attention_mask_causal(op);
    op_softmax_forward(&op->softmax, probs, op->scores);
    dnn_matmul_run(op->pv, probs, op->v, NULL, op->o);
    attention_merge_heads(op, out, op->W, 0, op->o, 1.0f);
}

/* dout [B*T, W] -> per-head layout, the inverse of attention_merge_heads */
static void attention_split_grad(const op_attention *op, float *heads, const float *dout) {
    int B = op->B, T = op->T, W = op->W, H = op->H, hd = op->hd;
    bool bf = op->bf16;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * T * W > OPS_PAR_MIN)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < T; t++) {
                const float *row = dout + ((size_t)b * T + t) * W + h * hd;
                size_t dst = (((size_t)b * H + h) * T + t) * hd;
                if (bf)
                    for (int j = 0; j < hd; j++) ((uint16_t *)heads)[dst + j] = dnn_bf16_from_f32(row[j]);
                else
                    memcpy(heads + dst, row, (size_t)hd * sizeof(float));
            }
}

void op_attention_backward(op_attention *op, float *dqkv, const float *dout, const float *qkv,
                           const float *probs) {
    TT_ASSERT(op->d_k != NULL); /* not planned by op_attention_init_forward */
    float scale = 1.0f / sqrtf((float)op->hd);
    int rows = op->B * op->H * op->T;
    attention_split_heads(op, qkv, scale);           /* q (scaled), k, v */
    attention_split_grad(op, op->o, dout);           /* o := d(out) per head */
    dnn_matmul_run(op->d_p, op->o, op->v, NULL, op->dscores);  /* dp = do . v^T */
    dnn_matmul_run(op->d_v, probs, op->o, NULL, op->dv);       /* dv = p^T . do */
    op_softmax_backward(rows, op->T, op->scores, op->dscores, probs); /* ds (scores buffer) */
    dnn_matmul_run(op->d_q, op->scores, op->k, NULL, op->dq);  /* d(q*scale) = ds . k */
    dnn_matmul_run(op->d_k, op->scores, op->q, NULL, op->dk);  /* dk = ds^T . (q*scale) */
    attention_merge_heads(op, dqkv, 3 * op->W, 0, op->dq, scale);
    attention_merge_heads(op, dqkv, 3 * op->W, op->W, op->dk, 1.0f);
    attention_merge_heads(op, dqkv, 3 * op->W, 2 * op->W, op->dv, 1.0f);
}

void op_attention_free(op_attention *op) {
    dnn_matmul_free(op->qk);
    dnn_matmul_free(op->pv);
    dnn_matmul_free(op->d_p);
    dnn_matmul_free(op->d_v);
    dnn_matmul_free(op->d_q);
    dnn_matmul_free(op->d_k);
    op_softmax_free(&op->softmax);
    free(op->q);
    memset(op, 0, sizeof *op);
}

/* ------------------------------------------------------------------ elementwise, plain C */

void op_add(float *y, const float *a, const float *b, size_t n) {
#pragma omp parallel for schedule(static) if (n > OPS_PAR_MIN)
    for (size_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

void op_add_inplace(float *y, const float *a, size_t n) {
#pragma omp parallel for schedule(static) if (n > OPS_PAR_MIN)
    for (size_t i = 0; i < n; i++) y[i] += a[i];
}

void op_patchify(float *patches, const float *images, int B, int C, int S, int p) {
    int g = S / p, P = g * g, cols = C * p * p;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * P * cols > OPS_PAR_MIN)
    for (int b = 0; b < B; b++)
        for (int gy = 0; gy < g; gy++)
            for (int gx = 0; gx < g; gx++) {
                float *row = patches + ((size_t)b * P + (size_t)gy * g + gx) * cols;
                for (int c = 0; c < C; c++)
                    for (int ky = 0; ky < p; ky++) {
                        const float *src = images + (((size_t)b * C + c) * S + (size_t)gy * p + ky) * S + (size_t)gx * p;
                        memcpy(row + (c * p + ky) * p, src, (size_t)p * sizeof(float));
                    }
            }
}

/* Column sums in blocks of BIAS_BLOCK columns, each block summed row by row by one thread: every
 * db[j] is the same sequential sum of its column (the same bits for any block width and thread
 * count). Wide blocks read 512 contiguous bytes per row: 16-column blocks touched one cache line
 * per 12 KB row and missed the TLB on nearly every row (ViT-B/32's c_fc, M = 6400, N = 3072: 5.4
 * ms; 2.1 ms in 128-column blocks on 2 threads). Narrow layers keep 16-column blocks, so that
 * their few columns still split across the threads. */
#define BIAS_BLOCK 128
void op_bias_grad(float *db, const float *dy, int M, int N) {
    int bw = N >= 2 * BIAS_BLOCK * OPS_MAX_THREADS() ? BIAS_BLOCK : 16, nb = (N + bw - 1) / bw;
#pragma omp parallel for schedule(static) if ((size_t)M * N > OPS_PAR_MIN)
    for (int blk = 0; blk < nb; blk++) {
        int j0 = blk * bw, w = j0 + bw < N ? bw : N - j0;
        float acc[BIAS_BLOCK] = {0};
        for (int i = 0; i < M; i++) {
            const float *r = dy + (size_t)i * N + j0;
            for (int j = 0; j < w; j++) acc[j] += r[j];
        }
        for (int j = 0; j < w; j++) db[j0 + j] += acc[j];
    }
}

void op_l2norm_forward(int rows, int cols, float *y, float *norm, const float *x) {
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * cols;
        double s = 0;
        for (int c = 0; c < cols; c++) s += (double)xr[c] * xr[c];
        float n = (float)sqrt(s);
        if (n < 1e-12f) n = 1e-12f;
        norm[r] = n;
        for (int c = 0; c < cols; c++) y[(size_t)r * cols + c] = xr[c] / n;
    }
}

void op_l2norm_backward(int rows, int cols, float *dx, const float *dy, const float *y,
                        const float *norm) {
    for (int r = 0; r < rows; r++) {
        const float *yr = y + (size_t)r * cols, *dyr = dy + (size_t)r * cols;
        double dot = 0;
        for (int c = 0; c < cols; c++) dot += (double)yr[c] * dyr[c];
        for (int c = 0; c < cols; c++) dx[(size_t)r * cols + c] = (dyr[c] - yr[c] * (float)dot) / norm[r];
    }
}

/* ------------------------------------------------------------------ losses */

double op_cross_entropy(int B, int C, float *dlogits, const float *logits, const int *labels,
                        float weight) {
    double total = 0;
    for (int b = 0; b < B; b++) {
        const float *z = logits + (size_t)b * C;
        float mx = z[0];
        for (int c = 1; c < C; c++) mx = z[c] > mx ? z[c] : mx;
        double s = 0;
        for (int c = 0; c < C; c++) s += exp((double)(z[c] - mx));
        double lse = mx + log(s);
        total += lse - z[labels[b]];
        if (dlogits)
            for (int c = 0; c < C; c++) {
                double p = exp(z[c] - lse);
                dlogits[(size_t)b * C + c] = (float)(weight * (p - (c == labels[b])) / B);
            }
    }
    return weight * total / B;
}

double op_entropy(int B, int C, float *dlogits, const float *logits, float weight) {
    double total = 0;
    for (int b = 0; b < B; b++) {
        const float *z = logits + (size_t)b * C;
        float mx = z[0];
        for (int c = 1; c < C; c++) mx = z[c] > mx ? z[c] : mx;
        double s = 0;
        for (int c = 0; c < C; c++) s += exp((double)(z[c] - mx));
        double lse = mx + log(s), h = 0;
        for (int c = 0; c < C; c++) {
            double logp = z[c] - lse;
            h -= exp(logp) * logp;
        }
        total += h;
        /* dH/dz_j = -p_j (log p_j + H) */
        if (dlogits)
            for (int c = 0; c < C; c++) {
                double logp = z[c] - lse;
                dlogits[(size_t)b * C + c] = (float)(-weight * exp(logp) * (logp + h) / B);
            }
    }
    return weight * total / B;
}
