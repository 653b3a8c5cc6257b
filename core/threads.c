/* threads.c — see threads.h. */
#include "core/threads.h"

#include <malloc.h>
#include <omp.h>
#include <stddef.h>
#include <sys/resource.h>

#include "core/arena.h"

int tt_threads_start(tt_err *err) {
    int workers = omp_get_max_threads() - 1;
    if (workers < 1) return 0;
    struct rlimit rl; /* a worker's stack: the stack limit, or glibc's default when unlimited */
    size_t stack = (size_t)32 << 20;
    if (getrlimit(RLIMIT_STACK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < ((rlim_t)1 << 30))
        stack = (size_t)rl.rlim_cur;
    if (tt_address_space_check((size_t)workers * stack + ((size_t)16 << 20), "starting the threads", err)) return -1;
    /* Under an address-space limit (ulimit -v), one malloc arena: glibc gives a thread that finds
     * the main arena busy an arena of its own, 64 MB of address space reserved, at random; that
     * reservation made oneDNN's JIT run out of address space (a crash inside the library, past
     * dnn_headroom's check) in ~5% of runs near the limit, and 0 of 132 with one arena. */
    if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) mallopt(M_ARENA_MAX, 1);
    int started = 0; /* a region with a body: GCC drops an empty one */
#pragma omp parallel reduction(+ : started)
    started++;
    (void)started;
    return 0;
}
