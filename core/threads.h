/* threads.h — starting OpenMP's worker threads at a chosen moment.
 *
 * libgomp creates its workers at the first parallel region and exits the process (status 1)
 * when it cannot map their stacks, which under `ulimit -v` could happen anywhere later. Callers
 * start the pool first, after checking that the stacks fit, so that running out of address space
 * is an ordinary error (TT_ENOMEM) rather than an exit from inside a kernel. */
#ifndef TT_THREADS_H
#define TT_THREADS_H

#include "core/err.h"

/* Check room for the workers' stacks, then start the pool (omp_get_max_threads() threads).
 * Never before a fork whose child uses OpenMP: libgomp's pool does not survive fork (the child
 * would wait for threads it does not have). */
int tt_threads_start(tt_err *err);

#endif
