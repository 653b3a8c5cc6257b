/* par.h — the one door to MPI: ranks, rank-ordered sums, and the grid's messages.
 *
 * ttmerge built with -DTTMERGE_MPI=ON and started by mpirun runs as R cooperating ranks; built
 * without MPI, or started without mpirun, everything here is the single-process no-op (rank 0 of
 * 1), so callers never #ifdef. MPI is initialised only when a launcher's environment is present
 * (OMPI_COMM_WORLD_SIZE, PMIX_RANK, PMI_SIZE): a plain `ttmerge eval` never touches MPI.
 *
 * Errors: MPI_COMM_WORLD gets MPI_ERRORS_RETURN, so a failed call comes back here; a failed
 * collective or message (a lost peer) aborts the whole job with one line on stderr naming the
 * call (par_fatal -> MPI_Abort): a half-finished collective cannot be resumed, and an abort never
 * leaves a rank waiting forever. Open MPI's mpirun itself ends the job when a rank dies.
 *
 * Determinism: par_sum_f32 adds the ranks' buffers in rank order, ((b0 + b1) + b2) + ..., on
 * every rank, whatever the MPI library's own reduction order — the same bits as one process
 * adding R lanes' gradients in lane order (core/lanes.h).
 *
 * A forked child (the grid runs each method in one) must call par_detach() first: it is then a
 * process of its own, rank 0 of 1, and never touches its parent's MPI state.
 */
#ifndef TT_PAR_H
#define TT_PAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Initialise MPI when launched by mpirun (else nothing); returns 0, or 3 after printing why.
 * Call once per process, and par_finalize(exit status) at the end: a rank that fails (status
 * 2 or 3: bad input, an internal error) with peers ends the job (MPI_Abort with that status),
 * since its peers may be waiting for it in a collective; status 1 (a failed method in `bench`,
 * which rank 0 shares with every rank) finalises normally. */
int par_init(int *argc, char ***argv);
void par_finalize(int status);
/* Built with MPI support (whether or not this run uses it). */
bool par_built(void);
int par_rank(void);
int par_size(void);
/* In a forked child: this process is alone from now on (rank 0 of 1). */
void par_detach(void);
/* One line on stderr ("ttmerge: rank R: ...") and end every rank (MPI_Abort), or exit(3) alone. */
void par_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* Collectives (every rank calls them, in the same order; no-ops with one rank). */
void par_sum_f32(float *buf, size_t n);                  /* rank-ordered sum, result on every rank */
void par_sum_i64(int64_t *buf, size_t n);                /* integer sums (exact in any order) */
void par_allgather_f32(float *buf, size_t per_rank);     /* rank r's slice [r*per_rank, +per_rank) to all */
void par_gatherv_f32(float *buf, const size_t *counts);  /* slices of counts[r] floats, in rank order, to rank 0 */
void par_bcast(void *buf, size_t bytes, int root);
void par_barrier(void);
/* The contiguous share of n items that rank r of R takes: [*lo, *hi). */
void par_share(size_t n, int r, int R, size_t *lo, size_t *hi);

/* Point to point (the grid's queue): blocking send/receive of a byte message; par_poll returns
 * true and fills *src and *bytes when a message with this tag is waiting (from any rank). */
void par_send(const void *buf, size_t bytes, int dst, int tag);
void par_recv(void *buf, size_t bytes, int src, int tag);
bool par_poll(int tag, int *src, size_t *bytes);

/* Communication accounting of this process since par_stats_reset: calls, bytes sent (each
 * collective's payload as this rank contributes it) and seconds inside MPI. */
typedef struct par_stats {
    uint64_t calls, bytes;
    double seconds;
} par_stats;
void par_stats_get(par_stats *s);
void par_stats_reset(void);

#endif
