/* rng.h — deterministic random numbers (xoshiro256** seeded by splitmix64).
 * The same seed gives the same stream on every machine and thread count: code that
 * needs randomness in parallel derives one rng per item (rng_init(&r, seed ^ item)). */
#ifndef TT_RNG_H
#define TT_RNG_H

#include <stdint.h>

typedef struct rng { uint64_t s[4]; } rng;

void rng_init(rng *r, uint64_t seed);
uint64_t rng_u64(rng *r);
double rng_uniform(rng *r);             /* [0, 1) with 53 bits */
uint32_t rng_below(rng *r, uint32_t n); /* uniform integer in [0, n), unbiased */
double rng_normal(rng *r);              /* standard normal (Box-Muller, no cached pair) */
void rng_shuffle_int(rng *r, int *a, int n); /* Fisher-Yates */

#endif
