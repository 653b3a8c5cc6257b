/* cpu.c — see cpu.h. */
#include "core/cpu.h"

#include <stdlib.h>
#include <string.h>

static cpu_isa detected(void) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
        return CPU_ISA_AVX512;
#endif
    return CPU_ISA_BASE;
}

/* -1 = not yet read; every thread that races on the first call computes the same value */
static int have = -1, cap = CPU_ISA_AVX512;

cpu_isa cpu_isa_level(void) {
    if (have < 0) {
        int h = (int)detected();
        const char *env = getenv("TTMERGE_ISA");
        if (env && (!strcmp(env, "avx2") || !strcmp(env, "base"))) h = CPU_ISA_BASE;
        have = h;
    }
    return (cpu_isa)(have < cap ? have : cap);
}

cpu_isa cpu_isa_cap(cpu_isa c) {
    cpu_isa old = (cpu_isa)cap;
    cap = (int)c;
    return old;
}

const char *cpu_isa_name(cpu_isa isa) { return isa == CPU_ISA_AVX512 ? "avx512" : "base"; }
