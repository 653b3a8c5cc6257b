/* dnn.c — oneDNN engine/stream and the planned matmul. See dnn.h. */
#include "core/dnn.h"

#include <stdlib.h>
#include <string.h>

#include "core/arena.h"

const char *dnn_status_str(dnnl_status_t st) {
    switch (st) {
    case dnnl_success: return "success";
    case dnnl_out_of_memory: return "out of memory";
    case dnnl_invalid_arguments: return "invalid arguments";
    case dnnl_unimplemented: return "unimplemented";
    case dnnl_iterator_ends: return "iterator ends";
    case dnnl_runtime_error: return "runtime error";
    case dnnl_not_required: return "not required";
    }
    return "unknown status";
}

/* Address space kept free below a limit before oneDNN creates a primitive. Measured (vision8's
 * architecture, batch 256, and tiny's adaptation plans): creating one primitive, with the
 * buffers planned next to it, maps at most 7 MB; 64 MB is nine times that. */
#define DNN_HEADROOM ((size_t)64 << 20)

int dnn_headroom(const char *what, tt_err *err) { return tt_address_space_check(DNN_HEADROOM, what, err); }

static dnn_precision default_precision = DNN_F32;

int dnn_precision_parse(const char *s, dnn_precision *out) {
    if (!strcmp(s, "f32")) *out = DNN_F32;
    else if (!strcmp(s, "bf16")) *out = DNN_BF16;
    else return -1;
    return 0;
}

const char *dnn_precision_name(dnn_precision p) { return p == DNN_BF16 ? "bf16" : "f32"; }

const char *dnn_isa_name(void) {
    switch (dnnl_get_effective_cpu_isa()) {
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    case dnnl_cpu_isa_avx512_mic: return "avx512_mic";
    case dnnl_cpu_isa_avx512_mic_4ops: return "avx512_mic_4ops";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    default: return "other";
    }
}

bool dnn_bf16_native(void) {
    const char *no = getenv("TTMERGE_NO_BF16");
    if (no && *no && strcmp(no, "0")) return false;
    /* the ISA values are nested bit sets: bf16 and AMX both contain avx512_core_bf16's bits */
    unsigned isa = (unsigned)dnnl_get_effective_cpu_isa(), need = (unsigned)dnnl_cpu_isa_avx512_core_bf16;
    return (isa & need) == need;
}

dnn_precision dnn_set_default_precision(dnn_precision want) {
    default_precision = want == DNN_BF16 && dnn_bf16_native() ? DNN_BF16 : DNN_F32;
    return default_precision;
}

dnn_precision dnn_default_precision(void) { return default_precision; }

void dnn_to_bf16(uint16_t *dst, const float *src, size_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) dst[i] = dnn_bf16_from_f32(src[i]);
}

int dnn_create_like(dnn **out, const dnn *like, tt_err *err) {
    if (dnn_create(out, err)) return -1;
    (*out)->precision = like->precision;
    return 0;
}

int dnn_create(dnn **out, tt_err *err) {
    *out = NULL;
    if (dnn_headroom("the oneDNN engine", err)) return -1;
    dnn *d = calloc(1, sizeof *d);
    if (!d) return tt_fail(err, TT_ENOMEM, "out of memory creating the oneDNN engine");
    dnnl_status_t st = dnnl_engine_create(&d->engine, dnnl_cpu, 0);
    if (st == dnnl_success) st = dnnl_stream_create(&d->stream, d->engine, dnnl_stream_default_flags);
    if (st != dnnl_success) {
        dnn_free(d);
        return tt_fail(err, TT_EDNN, "oneDNN: cannot create the CPU engine: %s", dnn_status_str(st));
    }
    d->precision = default_precision;
    *out = d;
    return 0;
}

void dnn_free(dnn *d) {
    if (!d) return;
    if (d->stream) dnnl_stream_destroy(d->stream);
    if (d->engine) dnnl_engine_destroy(d->engine);
    free(d->cvt_scratch);
    free(d);
}

/* Make the engine's conversion scratch hold at least bytes (contents are not kept). */
static int cvt_reserve(dnn *d, size_t bytes, tt_err *err) {
    if (bytes <= d->cvt_cap) return 0;
    void *p = tt_calloc_aligned(bytes, 1, err);
    if (!p) return -1;
    free(d->cvt_scratch);
    d->cvt_scratch = p;
    d->cvt_cap = bytes;
    return 0;
}

int dnn_memory_plain(dnnl_memory_t *out, dnn *d, int ndims, const dnnl_dim_t *dims, tt_err *err) {
    static const dnnl_format_tag_t tags[] = {dnnl_format_tag_undef, dnnl_a, dnnl_ab, dnnl_abc, dnnl_abcd};
    TT_ASSERT(ndims >= 1 && ndims <= 4);
    dnnl_memory_desc_t md;
    DNN_TRY(dnnl_memory_desc_init_by_tag(&md, ndims, dims, dnnl_f32, tags[ndims]));
    DNN_TRY(dnnl_memory_create(out, &md, d->engine, DNNL_MEMORY_NONE));
    return 0;
}

void dnn_exec(dnn *d, dnnl_primitive_t p, int nargs, const dnnl_exec_arg_t *args) {
    DNN_RUN(dnnl_primitive_execute(p, d->stream, nargs, args));
    DNN_RUN(dnnl_stream_wait(d->stream));
}

struct dnn_matmul {
    dnn *d;
    dnn_matmul_desc desc;
    dnnl_primitive_t prim;
    dnnl_memory_t m_a, m_b, m_bias, m_c;
    dnnl_exec_arg_t args[4];
    int nargs;
    /* pack_b with a layout other than the plain one: m_b_packed (allocated once) is what the
     * matmul reads, filled from m_b by the reorder before every run */
    dnnl_primitive_t pack;
    dnnl_memory_t m_b_packed;
    dnnl_exec_arg_t pack_args[2];
    /* bf16: operand i (0 = A, 1 = B) given in f32 is reordered from m_a / m_b into m_cvt[i] before
     * every run; m_cvt[i] points into the engine's shared scratch at cvt_off[i] (set at each run:
     * the scratch may have grown since this matmul was planned) */
    bool bf16;
    dnnl_primitive_t cvt[2];
    dnnl_memory_t m_cvt[2];
    size_t cvt_off[2], cvt_end;
    dnnl_exec_arg_t cvt_args[2][2];
    char impl[64];
};

/* A [batch, rows, cols] view of a buffer stored [batch, rows, cols] (or transposed); ndims 2
 * drops the batch (which must be 1). */
static int matrix_md_typed(dnnl_memory_desc_t *md, dnnl_data_type_t dt, int ndims, int batch, int rows, int cols,
                           int trans, tt_err *err) {
    dnnl_dims_t dims = {batch, rows, cols};
    dnnl_dims_t strides;
    strides[0] = (dnnl_dim_t)rows * cols;
    if (trans) { strides[1] = 1; strides[2] = rows; }  /* stored [cols, rows] */
    else { strides[1] = cols; strides[2] = 1; }
    int drop = 3 - ndims;
    DNN_TRY(dnnl_memory_desc_init_by_strides(md, ndims, dims + drop, dt, strides + drop));
    return 0;
}

static int matrix_md(dnnl_memory_desc_t *md, int ndims, int batch, int rows, int cols, int trans, tt_err *err) {
    return matrix_md_typed(md, dnnl_f32, ndims, batch, rows, cols, trans, err);
}

/* The reorder of an f32 operand (user) into the bf16 layout the matmul chose, and its place in the
 * engine's scratch (after the other operand's, 4 KiB aligned). */
static int cvt_plan(dnn_matmul *mm, int i, const dnnl_memory_desc_t *user, const dnnl_memory_desc_t *bf, tt_err *err) {
    dnnl_primitive_desc_t rpd;
    DNN_TRY(dnnl_reorder_primitive_desc_create(&rpd, user, mm->d->engine, bf, mm->d->engine, NULL));
    dnnl_status_t st = dnnl_primitive_create(&mm->cvt[i], rpd);
    dnnl_primitive_desc_destroy(rpd);
    if (st != dnnl_success) return tt_fail(err, TT_EDNN, "oneDNN: bf16 reorder primitive: %s", dnn_status_str(st));
    DNN_TRY(dnnl_memory_create(&mm->m_cvt[i], bf, mm->d->engine, DNNL_MEMORY_NONE));
    mm->cvt_off[i] = mm->cvt_end;
    mm->cvt_end += (dnnl_memory_desc_get_size(bf) + 4095) & ~(size_t)4095;
    return cvt_reserve(mm->d, mm->cvt_end, err);
}

/* The reorder of B from its plain layout into the matmul's, and the packed buffer. */
static int pack_plan(dnn_matmul *mm, const dnnl_memory_desc_t *plain, const dnnl_memory_desc_t *packed, tt_err *err) {
    dnnl_primitive_desc_t rpd;
    DNN_TRY(dnnl_reorder_primitive_desc_create(&rpd, plain, mm->d->engine, packed, mm->d->engine, NULL));
    dnnl_status_t st = dnnl_primitive_create(&mm->pack, rpd);
    dnnl_primitive_desc_destroy(rpd);
    if (st != dnnl_success) return tt_fail(err, TT_EDNN, "oneDNN: reorder primitive: %s", dnn_status_str(st));
    DNN_TRY(dnnl_memory_create(&mm->m_b_packed, packed, mm->d->engine, DNNL_MEMORY_ALLOCATE));
    return 0;
}

static int matmul_plan(dnn_matmul *mm, tt_err *err) {
    const dnn_matmul_desc *s = &mm->desc;
    if (dnn_headroom("a oneDNN matmul", err)) return -1;
    /* one matrix product is planned 2-D: oneDNN 2.6 picks a blocked layout for "any" B only
     * then (3-D "any" came back plain abc, i.e. no packing) */
    int nd = s->batch == 1 && !s->b_broadcast ? 2 : 3;
    dnnl_memory_desc_t a_md, b_md, c_md, bias_md;
    /* a bf16 matmul reads a given bf16 operand in place, and an f32 one through its reorder into
     * the layout oneDNN picks ("any") */
    bool bf = mm->bf16, a_given = bf && s->a_bf16, b_given = bf && s->b_bf16;
    dnnl_data_type_t a_dt = a_given ? dnnl_bf16 : dnnl_f32, b_dt = b_given ? dnnl_bf16 : dnnl_f32,
                     c_dt = bf && s->c_bf16 ? dnnl_bf16 : dnnl_f32;
    TT_ASSERT(!(bf && s->c_bf16 && s->accumulate));
    if (s->heads > 0) {
        TT_ASSERT(s->batch % s->heads == 0 && !s->trans_a && !s->trans_b && !s->b_broadcast && !s->bias);
        dnnl_dim_t outer = s->batch / s->heads;
        dnnl_dims_t ad = {outer, s->heads, s->M, s->K}, bd = {outer, s->heads, s->K, s->N},
                    cd = {outer, s->heads, s->M, s->N};
        DNN_TRY(dnnl_memory_desc_init_by_strides(&a_md, 4, ad, a_dt, s->a_strides));
        DNN_TRY(dnnl_memory_desc_init_by_strides(&b_md, 4, bd, b_dt, s->b_strides));
        DNN_TRY(dnnl_memory_desc_init_by_strides(&c_md, 4, cd, c_dt, s->c_strides));
    } else {
        if (matrix_md_typed(&a_md, a_dt, nd, s->batch, s->M, s->K, s->trans_a, err)) return -1;
        if (matrix_md_typed(&b_md, b_dt, nd, s->b_broadcast ? 1 : s->batch, s->K, s->N, s->trans_b, err)) return -1;
        if (matrix_md_typed(&c_md, c_dt, nd, s->batch, s->M, s->N, 0, err)) return -1;
        if (s->bias && matrix_md(&bias_md, nd, 1, 1, s->N, 0, err)) return -1;
    }

    dnnl_memory_desc_t a_any = a_md, b_any = b_md;
    bool pack = s->pack_b && (!bf || b_given);
    if (pack || (bf && !b_given))
        DNN_TRY(dnnl_memory_desc_init_by_tag(&b_any, b_md.ndims, b_md.dims, bf ? dnnl_bf16 : dnnl_f32, dnnl_format_tag_any));
    if (bf && !a_given) DNN_TRY(dnnl_memory_desc_init_by_tag(&a_any, a_md.ndims, a_md.dims, dnnl_bf16, dnnl_format_tag_any));
    dnnl_matmul_desc_t op;
    DNN_TRY(dnnl_matmul_desc_init(&op, &a_any, &b_any, s->bias ? &bias_md : NULL, &c_md));
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    if (s->accumulate || s->post_eltwise != dnnl_alg_kind_undef) {
        DNN_TRY(dnnl_primitive_attr_create(&attr));
        DNN_TRY(dnnl_post_ops_create(&po));
        if (s->accumulate) DNN_TRY(dnnl_post_ops_append_sum(po, 1.0f));
        if (s->post_eltwise != dnnl_alg_kind_undef)
            DNN_TRY(dnnl_post_ops_append_eltwise(po, 1.0f, s->post_eltwise, s->post_alpha, 0.f));
        DNN_TRY(dnnl_primitive_attr_set_post_ops(attr, po));
    }
    dnnl_primitive_desc_t pd;
    dnnl_status_t st = dnnl_primitive_desc_create(&pd, &op, attr, mm->d->engine, NULL);
    if (po) dnnl_post_ops_destroy(po);
    if (attr) dnnl_primitive_attr_destroy(attr);
    if (st != dnnl_success)
        return tt_fail(err, TT_EDNN, "oneDNN: matmul %dx%dx%dx%d has no implementation: %s", s->batch,
                       s->M, s->K, s->N, dnn_status_str(st));
    const char *impl = NULL;
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    snprintf(mm->impl, sizeof mm->impl, "%s", impl ? impl : "?");
    const dnnl_memory_desc_t *b_packed = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    if (pack && !dnnl_memory_desc_equal(b_packed, &b_md)) {
        if (pack_plan(mm, &b_md, b_packed, err)) {
            dnnl_primitive_desc_destroy(pd);
            return -1;
        }
    }
    if ((bf && !a_given && cvt_plan(mm, 0, &a_md, dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0), err)) ||
        (bf && !b_given && cvt_plan(mm, 1, &b_md, b_packed, err))) {
        dnnl_primitive_desc_destroy(pd);
        return -1;
    }
    st = dnnl_primitive_create(&mm->prim, pd);
    dnnl_primitive_desc_destroy(pd);
    if (st != dnnl_success)
        return tt_fail(err, TT_EDNN, "oneDNN: matmul primitive: %s", dnn_status_str(st));

    DNN_TRY(dnnl_memory_create(&mm->m_a, &a_md, mm->d->engine, DNNL_MEMORY_NONE));
    DNN_TRY(dnnl_memory_create(&mm->m_b, &b_md, mm->d->engine, DNNL_MEMORY_NONE));
    DNN_TRY(dnnl_memory_create(&mm->m_c, &c_md, mm->d->engine, DNNL_MEMORY_NONE));
    mm->args[0] = (dnnl_exec_arg_t){DNNL_ARG_SRC, mm->cvt[0] ? mm->m_cvt[0] : mm->m_a};
    mm->args[1] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, mm->pack ? mm->m_b_packed : mm->cvt[1] ? mm->m_cvt[1] : mm->m_b};
    mm->cvt_args[0][0] = (dnnl_exec_arg_t){DNNL_ARG_FROM, mm->m_a};
    mm->cvt_args[0][1] = (dnnl_exec_arg_t){DNNL_ARG_TO, mm->m_cvt[0]};
    mm->cvt_args[1][0] = (dnnl_exec_arg_t){DNNL_ARG_FROM, mm->m_b};
    mm->cvt_args[1][1] = (dnnl_exec_arg_t){DNNL_ARG_TO, mm->m_cvt[1]};
    mm->pack_args[0] = (dnnl_exec_arg_t){DNNL_ARG_FROM, mm->m_b};
    mm->pack_args[1] = (dnnl_exec_arg_t){DNNL_ARG_TO, mm->m_b_packed};
    mm->args[2] = (dnnl_exec_arg_t){DNNL_ARG_DST, mm->m_c};
    mm->nargs = 3;
    if (s->bias) {
        DNN_TRY(dnnl_memory_create(&mm->m_bias, &bias_md, mm->d->engine, DNNL_MEMORY_NONE));
        mm->args[mm->nargs++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, mm->m_bias};
    }
    return 0;
}

dnn_matmul *dnn_matmul_create(dnn *d, const dnn_matmul_desc *desc, tt_err *err) {
    if (desc->batch < 1 || desc->M < 1 || desc->K < 1 || desc->N < 1) {
        tt_fail(err, TT_EINTERNAL, "matmul with empty shape %dx%dx%dx%d", desc->batch, desc->M,
                desc->K, desc->N);
        return NULL;
    }
    dnn_matmul *mm = calloc(1, sizeof *mm);
    if (!mm) {
        tt_fail(err, TT_ENOMEM, "out of memory planning a matmul");
        return NULL;
    }
    mm->d = d;
    mm->desc = *desc;
    mm->bf16 = d->precision == DNN_BF16;
    if (matmul_plan(mm, err) != 0) {
        dnn_matmul_free(mm);
        return NULL;
    }
    return mm;
}

void dnn_matmul_run(dnn_matmul *mm, const void *A, const void *B, const float *bias, void *C) {
    /* oneDNN takes non-const handles; it does not write SRC/WEIGHTS/BIAS. */
    DNN_RUN(dnnl_memory_set_data_handle(mm->m_a, (void *)A));
    DNN_RUN(dnnl_memory_set_data_handle(mm->m_b, (void *)B));
    DNN_RUN(dnnl_memory_set_data_handle(mm->m_c, C));
    if (mm->desc.bias) {
        TT_ASSERT(bias != NULL);
        DNN_RUN(dnnl_memory_set_data_handle(mm->m_bias, (void *)bias));
    }
    if (mm->pack) dnn_exec(mm->d, mm->pack, 2, mm->pack_args);
    for (int i = 0; i < 2; i++)
        if (mm->cvt[i]) {
            DNN_RUN(dnnl_memory_set_data_handle(mm->m_cvt[i], (char *)mm->d->cvt_scratch + mm->cvt_off[i]));
            dnn_exec(mm->d, mm->cvt[i], 2, mm->cvt_args[i]);
        }
    dnn_exec(mm->d, mm->prim, mm->nargs, mm->args);
}

const char *dnn_matmul_impl(const dnn_matmul *mm) { return mm->impl; }
bool dnn_matmul_packed(const dnn_matmul *mm) { return mm->pack != NULL; }
bool dnn_matmul_bf16(const dnn_matmul *mm) { return mm->bf16; }

void dnn_matmul_free(dnn_matmul *mm) {
    if (!mm) return;
    if (mm->prim) dnnl_primitive_destroy(mm->prim);
    if (mm->pack) dnnl_primitive_destroy(mm->pack);
    if (mm->m_b_packed) dnnl_memory_destroy(mm->m_b_packed);
    for (int i = 0; i < 2; i++) {
        if (mm->cvt[i]) dnnl_primitive_destroy(mm->cvt[i]);
        if (mm->m_cvt[i]) dnnl_memory_destroy(mm->m_cvt[i]);
    }
    if (mm->m_a) dnnl_memory_destroy(mm->m_a);
    if (mm->m_b) dnnl_memory_destroy(mm->m_b);
    if (mm->m_bias) dnnl_memory_destroy(mm->m_bias);
    if (mm->m_c) dnnl_memory_destroy(mm->m_c);
    free(mm);
}
