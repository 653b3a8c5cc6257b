/* cpu.h — which vector instruction sets ttmerge's own kernels may use, decided at run time.
 *
 * The build targets a baseline ISA (-march, TTMERGE_MARCH: x86-64-v3 or v2) that every machine it
 * runs on has. A few memory-streaming kernels (the TIES select and merge) also carry an AVX-512
 * version, compiled with a function-level target attribute and chosen here when the CPU reports
 * AVX-512 F/BW/DQ/VL. Both versions give the same bits (integer compares and counts, and the same
 * float operations in the same order), so the choice changes speed only. TTMERGE_ISA=avx2 in the
 * environment (or cpu_isa_cap, for tests) keeps the baseline kernels: to compare the two, or under a
 * tool that cannot run AVX-512 (valgrind). */
#ifndef TT_CPU_H
#define TT_CPU_H

typedef enum { CPU_ISA_BASE = 0, CPU_ISA_AVX512 = 1 } cpu_isa;

/* Where the compiler can build AVX-512 functions whatever -march is: CPU_V16 is defined, and a
 * function marked CPU_V16_TARGET may use the <immintrin.h> AVX-512 intrinsics — called only when
 * cpu_isa_level() == CPU_ISA_AVX512. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define CPU_V16 1
#define CPU_V16_TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,popcnt")))
#endif

/* The widest kernels to run: what the CPU has, capped by TTMERGE_ISA and cpu_isa_cap. */
cpu_isa cpu_isa_level(void);
/* Tests only: cap the level (CPU_ISA_AVX512 = no cap); returns the previous cap. */
cpu_isa cpu_isa_cap(cpu_isa cap);
/* "avx512" or "base" (for logs and benchmark headers). */
const char *cpu_isa_name(cpu_isa isa);

#endif
