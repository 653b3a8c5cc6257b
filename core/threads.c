/* threads.c — see threads.h. */
#include "core/threads.h"

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
    int started = 0; /* a region with a body: GCC drops an empty one */
#pragma omp parallel reduction(+ : started)
    started++;
    (void)started;
    return 0;
}
