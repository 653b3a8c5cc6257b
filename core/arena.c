#include "core/arena.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define ARENA_ALIGN 64

static size_t round_up(size_t n) { return (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1); }

int arena_alloc(arena *a, tt_err *err) {
    size_t cap = round_up(a->used ? a->used : ARENA_ALIGN);
    void *p = NULL;
    if (posix_memalign(&p, ARENA_ALIGN, cap) != 0)
        return tt_fail(err, TT_ENOMEM, "out of memory allocating %zu bytes", cap);
    memset(p, 0, cap);
    a->base = p;
    a->cap = cap;
    a->used = 0;
    return 0;
}

void *arena_bytes(arena *a, size_t n) {
    size_t start = a->used;
    a->used += round_up(n);
    if (!a->base) return NULL;
    TT_ASSERT(a->used <= a->cap);
    return a->base + start;
}

float *arena_floats(arena *a, size_t n) {
    TT_ASSERT(n <= SIZE_MAX / sizeof(float));
    return arena_bytes(a, n * sizeof(float));
}

void arena_free(arena *a) {
    free(a->base);
    a->base = NULL;
    a->cap = a->used = 0;
}

void *tt_calloc_aligned(size_t n, size_t sz, tt_err *err) {
    if (sz && n > (SIZE_MAX - ARENA_ALIGN) / sz) {
        tt_fail(err, TT_ENOMEM, "allocation of %zu x %zu bytes overflows", n, sz);
        return NULL;
    }
    size_t bytes = round_up(n * sz > 0 ? n * sz : 1);
    void *p = NULL;
    if (posix_memalign(&p, ARENA_ALIGN, bytes) != 0) {
        tt_fail(err, TT_ENOMEM, "out of memory allocating %zu bytes", bytes);
        return NULL;
    }
    memset(p, 0, bytes);
    return p;
}

int tt_address_space_check(size_t need, const char *what, tt_err *err) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return 0;
    FILE *f = fopen("/proc/self/statm", "r"); /* first field: mapped pages */
    unsigned long long pages = 0;
    int known = f && fscanf(f, "%llu", &pages) == 1;
    if (f) fclose(f);
    if (!known) return 0; /* cannot tell: let the allocation try */
    unsigned long long used = pages * (unsigned long long)sysconf(_SC_PAGESIZE), limit = rl.rlim_cur;
    if (used < limit && need <= limit - used) return 0;
    return tt_fail(err, TT_ENOMEM, "out of memory: %s needs ~%zu MB of address space, the limit (ulimit -v) leaves %llu MB",
                   what, (need + (1u << 20) - 1) >> 20, used < limit ? (limit - used) >> 20 : 0);
}
