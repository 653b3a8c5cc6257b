/* arena.h — one allocation per family of buffers (params, grads, activations).
 *
 * Measure, then allocate: run the layout code once on a counting arena (base NULL),
 * allocate exactly arena.used bytes, run the same layout code again to hand out pointers.
 * Every block is 64-byte aligned. Nothing is freed individually; arena_free releases all.
 *
 *   arena a = {0};
 *   layout(&a);                    // counting pass: pointers are NULL, a.used grows
 *   if (arena_alloc(&a, e)) ...;   // one zeroed allocation of a.used bytes
 *   layout(&a);                    // real pass: same calls, real pointers
 */
#ifndef TT_ARENA_H
#define TT_ARENA_H

#include <stddef.h>

#include "core/err.h"

typedef struct arena {
    char *base;   /* NULL while counting */
    size_t cap;   /* bytes allocated */
    size_t used;  /* bytes handed out (or counted) */
} arena;

/* Allocate cap = used bytes (zeroed) and rewind to 0. Returns -1 (TT_ENOMEM) on failure. */
int arena_alloc(arena *a, tt_err *err);
/* n floats, 64-byte aligned; NULL in counting mode. Aborts if a real arena overflows
 * (layout passes must match — a bug, not an input problem). */
float *arena_floats(arena *a, size_t n);
void *arena_bytes(arena *a, size_t n);
void arena_free(arena *a);

/* Aligned, zeroed, overflow-checked allocation of n elements of size sz (free with free()). */
void *tt_calloc_aligned(size_t n, size_t sz, tt_err *err);

/* Fail with TT_ENOMEM "out of memory: WHAT needs ~N MB of address space, the limit (ulimit -v)
 * leaves M MB" unless `need` bytes fit under the address-space limit (RLIMIT_AS). For the
 * allocations that do not fail cleanly when they run out — oneDNN's JIT code buffers (see
 * dnn.h) and libgomp's thread stacks (libgomp exits; core/threads.h) — checked before they are made. */
int tt_address_space_check(size_t need, const char *what, tt_err *err);

#endif
