/* tinting.h — Model Tinting (tint/tinting.c), for the registry. */
#ifndef TT_TINTING_H
#define TT_TINTING_H

#include "baselines/merge.h"

extern const merge_method method_tinting;

#endif
