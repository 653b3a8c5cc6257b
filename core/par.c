/* par.c — see par.h. */
#include "core/par.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef TTMERGE_MPI
#include <mpi.h>
#endif

static int g_rank = 0, g_size = 1;
static bool g_active; /* MPI_Init ran in this process and par_detach did not follow */
static par_stats g_stats;

bool par_built(void) {
#ifdef TTMERGE_MPI
    return true;
#else
    return false;
#endif
}
int par_rank(void) { return g_rank; }
int par_size(void) { return g_size; }

void par_detach(void) {
    g_active = false;
    g_rank = 0;
    g_size = 1;
}

void par_share(size_t n, int r, int R, size_t *lo, size_t *hi) {
    *lo = n * (size_t)r / (size_t)R;
    *hi = n * (size_t)(r + 1) / (size_t)R;
}

void par_stats_get(par_stats *s) { *s = g_stats; }
void par_stats_reset(void) { memset(&g_stats, 0, sizeof g_stats); }

void par_fatal(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "ttmerge: rank %d of %d: ", g_rank, g_size);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fflush(stderr);
#ifdef TTMERGE_MPI
    if (g_active) MPI_Abort(MPI_COMM_WORLD, 3);
#endif
    exit(3);
}

#ifndef TTMERGE_MPI

int par_init(int *argc, char ***argv) {
    (void)argc, (void)argv;
    return 0;
}
void par_finalize(int status) { (void)status; }
void par_sum_f32(float *buf, size_t n) { (void)buf, (void)n; }
void par_sum_i64(int64_t *buf, size_t n) { (void)buf, (void)n; }
void par_allgather_f32(float *buf, size_t per_rank) { (void)buf, (void)per_rank; }
void par_gatherv_f32(float *buf, const size_t *counts) { (void)buf, (void)counts; }
void par_bcast(void *buf, size_t bytes, int root) { (void)buf, (void)bytes, (void)root; }
void par_barrier(void) {}
void par_send(const void *buf, size_t bytes, int dst, int tag) {
    (void)buf, (void)bytes, (void)tag;
    par_fatal("par_send to rank %d without MPI", dst);
}
void par_recv(void *buf, size_t bytes, int src, int tag) {
    (void)buf, (void)bytes, (void)tag;
    par_fatal("par_recv from rank %d without MPI", src);
}
bool par_poll(int tag, int *src, size_t *bytes) {
    (void)tag, (void)src, (void)bytes;
    return false;
}

#else

/* MPI counts are int: move large buffers in pieces of at most this many elements */
#define PAR_PIECE ((size_t)1 << 28)

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void check(int rc, const char *call) {
    if (rc == MPI_SUCCESS) return;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    par_fatal("%s failed: %s (a peer rank was lost?)", call, msg);
}

static void account(double t0, size_t bytes) {
    g_stats.calls++;
    g_stats.bytes += bytes;
    g_stats.seconds += now() - t0;
}

int par_init(int *argc, char ***argv) {
    if (!getenv("OMPI_COMM_WORLD_SIZE") && !getenv("PMIX_RANK") && !getenv("PMI_SIZE")) return 0;
    int provided = 0;
    /* FUNNELED: only the main thread calls MPI; OpenMP threads compute between the calls */
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "ttmerge: MPI_Init_thread failed\n");
        return 3;
    }
    g_active = true;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    return 0;
}

void par_finalize(int status) {
    if (!g_active) return;
    if (status >= 2 && g_size > 1) { /* 1 (a failed method or check) is every rank's outcome alike */
        fflush(NULL);
        MPI_Abort(MPI_COMM_WORLD, status);
    }
    g_active = false;
    MPI_Finalize();
}

void par_sum_f32(float *buf, size_t n) {
    if (g_size < 2 || !g_active) return;
    double t0 = now();
    float *part = g_rank > 0 ? malloc((n ? n : 1) * sizeof(float)) : NULL;
    if (g_rank > 0 && !part) par_fatal("out of memory for a %zu-float sum", n);
    /* a chain in rank order: rank r receives b0 + ... + b(r-1), adds its own and passes it on;
     * the last rank then holds the sum and broadcasts it */
    for (size_t off = 0; off < n; off += PAR_PIECE) {
        int c = (int)(n - off < PAR_PIECE ? n - off : PAR_PIECE);
        if (g_rank > 0) {
            check(MPI_Recv(part, c, MPI_FLOAT, g_rank - 1, 101, MPI_COMM_WORLD, MPI_STATUS_IGNORE), "MPI_Recv (sum)");
            for (int i = 0; i < c; i++) buf[off + (size_t)i] = part[i] + buf[off + (size_t)i];
        }
        if (g_rank + 1 < g_size) check(MPI_Send(buf + off, c, MPI_FLOAT, g_rank + 1, 101, MPI_COMM_WORLD), "MPI_Send (sum)");
        check(MPI_Bcast(buf + off, c, MPI_FLOAT, g_size - 1, MPI_COMM_WORLD), "MPI_Bcast (sum)");
    }
    free(part);
    account(t0, n * sizeof(float));
}

void par_sum_i64(int64_t *buf, size_t n) {
    if (g_size < 2 || !g_active) return;
    double t0 = now();
    check(MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");
    account(t0, n * sizeof(int64_t));
}

void par_allgather_f32(float *buf, size_t per_rank) {
    if (g_size < 2 || !g_active) return;
    if (per_rank > PAR_PIECE) par_fatal("allgather of %zu floats per rank is too large", per_rank);
    double t0 = now();
    check(MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, (int)per_rank, MPI_FLOAT, MPI_COMM_WORLD),
          "MPI_Allgather");
    account(t0, per_rank * sizeof(float));
}

void par_gatherv_f32(float *buf, const size_t *counts) {
    if (g_size < 2 || !g_active) return;
    double t0 = now();
    int *cnt = malloc((size_t)g_size * sizeof(int)), *disp = malloc((size_t)g_size * sizeof(int));
    if (!cnt || !disp) par_fatal("out of memory");
    size_t off = 0;
    for (int r = 0; r < g_size; r++) {
        if (counts[r] > PAR_PIECE || off > PAR_PIECE) par_fatal("gather of %zu floats is too large", counts[r] + off);
        cnt[r] = (int)counts[r];
        disp[r] = (int)off;
        off += counts[r];
    }
    if (g_rank == 0)
        check(MPI_Gatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, cnt, disp, MPI_FLOAT, 0, MPI_COMM_WORLD), "MPI_Gatherv");
    else
        check(MPI_Gatherv(buf + disp[g_rank], cnt[g_rank], MPI_FLOAT, NULL, NULL, NULL, MPI_FLOAT, 0, MPI_COMM_WORLD),
              "MPI_Gatherv");
    account(t0, counts[g_rank] * sizeof(float));
    free(cnt);
    free(disp);
}

void par_bcast(void *buf, size_t bytes, int root) {
    if (g_size < 2 || !g_active) return;
    double t0 = now();
    for (size_t off = 0; off < bytes; off += PAR_PIECE) {
        int c = (int)(bytes - off < PAR_PIECE ? bytes - off : PAR_PIECE);
        check(MPI_Bcast((char *)buf + off, c, MPI_BYTE, root, MPI_COMM_WORLD), "MPI_Bcast");
    }
    account(t0, bytes);
}

void par_barrier(void) {
    if (g_size < 2 || !g_active) return;
    check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier");
}

void par_send(const void *buf, size_t bytes, int dst, int tag) {
    if (!g_active) par_fatal("par_send to rank %d outside MPI", dst);
    if (bytes > PAR_PIECE) par_fatal("a %zu-byte message is too large", bytes);
    double t0 = now();
    check(MPI_Send(buf, (int)bytes, MPI_BYTE, dst, tag, MPI_COMM_WORLD), "MPI_Send");
    account(t0, bytes);
}

void par_recv(void *buf, size_t bytes, int src, int tag) {
    if (!g_active) par_fatal("par_recv from rank %d outside MPI", src);
    double t0 = now();
    check(MPI_Recv(buf, (int)bytes, MPI_BYTE, src, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE), "MPI_Recv");
    account(t0, 0);
}

bool par_poll(int tag, int *src, size_t *bytes) {
    if (!g_active) return false;
    int flag = 0, count = 0;
    MPI_Status st;
    check(MPI_Iprobe(MPI_ANY_SOURCE, tag, MPI_COMM_WORLD, &flag, &st), "MPI_Iprobe");
    if (!flag) return false;
    MPI_Get_count(&st, MPI_BYTE, &count);
    *src = st.MPI_SOURCE;
    *bytes = (size_t)count;
    return true;
}

#endif
