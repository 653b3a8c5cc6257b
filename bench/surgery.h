/* surgery.h — the `surgery` method (bench/surgery.c): Representation Surgery on any base merge. */
#ifndef TT_BENCH_SURGERY_H
#define TT_BENCH_SURGERY_H

#include "baselines/merge.h"

extern const merge_method method_surgery;

#endif
