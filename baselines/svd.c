/* svd.c — see svd.h. */
#include "baselines/svd.h"

#include <cblas.h>
#include <dlfcn.h>
#include <lapacke.h>
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/progress.h"

/* ---- LAPACKE and CBLAS, loaded on first use ----
 * Linked normally, libopenblas would initialise in every ttmerge process, and under a low address-space
 * limit (ulimit -v) its start-up buffer allocation spins instead of failing: `ttmerge --help` hung.
 * So the libraries are opened only when an SVD merge runs. */
typedef lapack_int (*gesdd_fn)(int, char, lapack_int, lapack_int, double *, lapack_int, double *, double *, lapack_int,
                               double *, lapack_int);
typedef lapack_int (*gesvdx_fn)(int, char, char, char, lapack_int, lapack_int, double *, lapack_int, double, double,
                                lapack_int, lapack_int, lapack_int *, double *, double *, lapack_int, double *,
                                lapack_int, lapack_int *);
typedef lapack_int (*gesv_fn)(int, lapack_int, lapack_int, double *, lapack_int, lapack_int *, double *, lapack_int);
/* int, the LP64 interface: OpenBLAS calls it blasint, netlib's cblas.h CBLAS_INT; either header may be installed. */
typedef void (*dgemm_fn)(enum CBLAS_ORDER, enum CBLAS_TRANSPOSE, enum CBLAS_TRANSPOSE, int, int, int,
                         double, const double *, int, const double *, int, double, double *, int);
static struct {
    gesdd_fn gesdd;
    gesvdx_fn gesvdx;
    gesv_fn gesv;
    dgemm_fn dgemm;
    void (*set_threads)(int);
    char why[256];
} lib;
static pthread_once_t lib_once = PTHREAD_ONCE_INIT;

static void lib_load(void) {
    void *lapacke = dlopen("liblapacke.so.3", RTLD_NOW | RTLD_GLOBAL);
    void *blas = dlopen("libblas.so.3", RTLD_NOW | RTLD_GLOBAL);
    if (!lapacke || !blas) {
        snprintf(lib.why, sizeof lib.why, "the SVD merges need %s (Debian: %s)",
                 lapacke ? "libblas.so.3" : "liblapacke.so.3", lapacke ? "libblas3" : "liblapacke");
        return;
    }
    lib.gesdd = (gesdd_fn)dlsym(lapacke, "LAPACKE_dgesdd");
    lib.gesvdx = (gesvdx_fn)dlsym(lapacke, "LAPACKE_dgesvdx");
    lib.gesv = (gesv_fn)dlsym(lapacke, "LAPACKE_dgesv");
    lib.dgemm = (dgemm_fn)dlsym(blas, "cblas_dgemm");
    lib.set_threads = (void (*)(int))dlsym(RTLD_DEFAULT, "openblas_set_num_threads");
    if (!lib.gesdd || !lib.gesvdx || !lib.gesv || !lib.dgemm)
        snprintf(lib.why, sizeof lib.why, "the SVD merges need LAPACKE_dgesdd, LAPACKE_dgesvdx, LAPACKE_dgesv and cblas_dgemm");
}

int svd_init(tt_err *err) {
    pthread_once(&lib_once, lib_load);
    if (lib.why[0]) return tt_fail(err, TT_EINPUT, "%s", lib.why);
    return 0;
}

const double svd_alpha_grid[30] = {0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5,
                                   1.6, 1.7, 1.8, 1.9, 2.0, 2.1, 2.2, 2.3, 2.4, 2.5, 2.6, 2.7, 2.8, 2.9, 3.0};

int svd_rank_fraction(int k, int K) { return (int)((double)k * (1.0 / (double)K)); }

static bool all_zero(const double *a, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (a[i] != 0) return false;
    return true;
}

int svd_thin(double *a, int m, int n, double *u, double *s, double *vt, tt_err *err) {
    const int k = m < n ? m : n;
    if (all_zero(a, (size_t)m * n)) {
        memset(u, 0, (size_t)m * k * sizeof *u);
        memset(vt, 0, (size_t)k * n * sizeof *vt);
        for (int i = 0; i < k; i++) {
            u[(size_t)i * k + i] = 1;
            vt[(size_t)i * n + i] = 1;
            s[i] = 0;
        }
        return 0;
    }
    /* a row-major [m×n] is aᵀ column-major [n×m]: its left factor (n×k, ld n) is our vt, its right
     * factor (k×m, ld k) our u, both already row-major */
    lapack_int info = lib.gesdd(LAPACK_COL_MAJOR, 'S', n, m, a, n, s, vt, n, u, k);
    if (info == LAPACK_WORK_MEMORY_ERROR) return tt_fail(err, TT_ENOMEM, "out of memory (SVD of %dx%d)", m, n);
    if (info > 0) return tt_fail(err, TT_ENUMERIC, "SVD of a %dx%d matrix did not converge", m, n);
    if (info < 0) return tt_fail(err, TT_EINTERNAL, "dgesdd: argument %d is invalid", (int)-info);
    return 0;
}

int svd_top(double *a, int m, int n, int r, double *u, double *s, double *vt, tt_err *err) {
    const int k = m < n ? m : n;
    TT_ASSERT(r >= 1 && r <= k);
    if (all_zero(a, (size_t)m * n)) {
        memset(u, 0, (size_t)m * r * sizeof *u);
        memset(vt, 0, (size_t)r * n * sizeof *vt);
        for (int i = 0; i < r; i++) {
            u[(size_t)i * r + i] = 1;
            vt[(size_t)i * n + i] = 1;
        }
        memset(s, 0, (size_t)k * sizeof *s);
        return 0;
    }
    lapack_int *superb = malloc((size_t)12 * k * sizeof *superb), ns = 0;
    if (!superb) return tt_fail(err, TT_ENOMEM, "out of memory (SVD of %dx%d)", m, n);
    /* on aᵀ as in svd_thin: its left vectors (n×r, ld n) are our vt, its right ones (r×m, ld r) our u */
    lapack_int info = lib.gesvdx(LAPACK_COL_MAJOR, 'V', 'V', 'I', n, m, a, n, 0, 0, 1, r, &ns, s, vt, n, u, r,
                                      superb);
    free(superb);
    if (info == LAPACK_WORK_MEMORY_ERROR) return tt_fail(err, TT_ENOMEM, "out of memory (SVD of %dx%d)", m, n);
    if (info > 0 || ns != r) return tt_fail(err, TT_ENUMERIC, "SVD of a %dx%d matrix did not converge", m, n);
    if (info < 0) return tt_fail(err, TT_EINTERNAL, "dgesvdx: argument %d is invalid", (int)-info);
    return 0;
}

int svd_solve(double *a, int n, double *b, int nrhs, tt_err *err) {
    if (n == 0 || nrhs == 0) return 0;
    lapack_int *ipiv = malloc((size_t)n * sizeof *ipiv);
    if (!ipiv) return tt_fail(err, TT_ENOMEM, "out of memory");
    lapack_int info = lib.gesv(LAPACK_ROW_MAJOR, n, nrhs, a, n, ipiv, b, nrhs);
    free(ipiv);
    if (info > 0) return tt_fail(err, TT_ENUMERIC, "the %dx%d system is singular (pivot %d is 0)", n, n, (int)info);
    if (info < 0) return tt_fail(err, TT_EINPUT, "LAPACKE_dgesv: argument %d is invalid", (int)-info);
    return 0;
}

double *svd_alloc(size_t n, tt_err *err) { return tt_calloc_aligned(n ? n : 1, sizeof(double), err); }

void svd_widen(const float *src, size_t n, double *dst) {
    for (size_t i = 0; i < n; i++) dst[i] = src[i];
}

int svd_polar(double *a, int m, int n, double *p, tt_err *err) {
    const int k = m < n ? m : n;
    double *u = svd_alloc((size_t)m * k, err);
    double *s = u ? svd_alloc((size_t)k, err) : NULL;
    double *vt = s ? svd_alloc((size_t)k * n, err) : NULL;
    int rc = -1;
    if (vt && !svd_thin(a, m, n, u, s, vt, err)) {
        svd_gemm(false, false, m, n, k, 1.0, u, vt, 0.0, p);
        rc = 0;
    }
    free(u);
    free(s);
    free(vt);
    return rc;
}

void svd_gemm(bool ta, bool tb, int M, int N, int K, double alpha, const double *a, const double *b, double beta,
              double *c) {
    if (M == 0 || N == 0) return;
    if (K == 0) {
        for (size_t i = 0; i < (size_t)M * N; i++) c[i] = beta == 0 ? 0 : beta * c[i];
        return;
    }
    lib.dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, a,
                ta ? M : K, b, tb ? K : N, beta, c, N);
}

int svd_reconstruct(double *pu, const double *s, const double *pv, int m, int k, int n, float *out, tt_err *err) {
    double *prod = svd_alloc((size_t)m * n, err);
    if (!prod) return -1;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < k; j++) pu[(size_t)i * k + j] *= s[j];
    svd_gemm(false, false, m, n, k, 1.0, pu, pv, 0.0, prod);
    for (size_t i = 0; i < (size_t)m * n; i++) out[i] = (float)prod[i];
    free(prod);
    return 0;
}

/* ---- matrices in parallel ---- */

/* OpenBLAS runs each call on its own thread pool; svd_merge_layers already runs one tensor per thread,
 * so each call gets one thread (also the same bits at any thread count). Other LAPACKs: left alone. */
static void blas_one_thread(void) {
    if (lib.set_threads) lib.set_threads(1);
}

int svd_run_jobs(int n_jobs, const svd_job *jobs, int K, svd_tau_get get, const void *src, svd_layer_fn fn,
                 const void *user, bool show_progress, tt_err *err) {
    size_t most = 0;
    for (int i = 0; i < n_jobs; i++)
        if ((size_t)jobs[i].m * jobs[i].n > most) most = (size_t)jobs[i].m * jobs[i].n;
    if (svd_init(err)) return -1;
    blas_one_thread();
    /* the largest matrices first, so that the last ones to start are short */
    int *order = malloc((size_t)(n_jobs ? n_jobs : 1) * sizeof *order);
    if (!order) return tt_fail(err, TT_ENOMEM, "out of memory");
    for (int i = 0; i < n_jobs; i++) order[i] = i;
    for (int i = 1; i < n_jobs; i++)
        for (int j = i; j > 0 && (size_t)jobs[order[j]].m * jobs[order[j]].n >
                                     (size_t)jobs[order[j - 1]].m * jobs[order[j - 1]].n; j--) {
            int x = order[j];
            order[j] = order[j - 1];
            order[j - 1] = x;
        }
    volatile int failed = 0;
    tt_err first = {0};
    progress pg;
    progress_start(&pg, "svd layers", n_jobs, show_progress);
    int done = 0, T = omp_get_max_threads();
    /* no thread without a job: each holds room for K task vectors of the largest matrix */
#pragma omp parallel num_threads(n_jobs < T ? (n_jobs > 0 ? n_jobs : 1) : T)
    {
        tt_err e = {0};
        float *tau = tt_calloc_aligned((size_t)K * (most ? most : 1), sizeof(float), &e);
        if (!tau) {
#pragma omp critical(svd_run_err)
            if (!failed) {
                failed = 1;
                first = e;
            }
        }
#pragma omp for schedule(dynamic, 1)
        for (int i = 0; i < n_jobs; i++) {
            if (failed || !tau) continue;
            const svd_job *j = &jobs[order[i]];
            const float *views[MERGE_MAX_TASKS];
            for (int t = 0; t < K; t++) {
                get(src, order[i], t, tau + (size_t)t * most);
                views[t] = tau + (size_t)t * most;
            }
            if (fn(views, K, j->m, j->n, j->out, user, &e)) {
#pragma omp critical(svd_run_err)
                if (!failed) {
                    failed = 1;
                    first = e;
                    tt_prefix(&first, "%s: ", j->name);
                }
            }
#pragma omp critical(svd_run_progress)
            progress_update(&pg, ++done, "%s", j->name);
        }
        free(tau);
    }
    progress_end(&pg);
    free(order);
    if (failed) {
        if (err) *err = first;
        return -1;
    }
    return 0;
}
