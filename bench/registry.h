/* registry.h — every merge method, by name: the data-free ones (baselines/), the test-time
 * learners (adamerge/, tint/). The CLI and the bench grid find methods only through it and treat
 * them alike; it lives above every method folder so that no method depends on another's layer.
 *
 *   const merge_method *m = merge_find("ties");
 */
#ifndef TT_REGISTRY_H
#define TT_REGISTRY_H

#include "baselines/merge.h"

const merge_method *merge_find(const char *name);
int merge_count(void);
const merge_method *merge_at(int i); /* 0 <= i < merge_count(), in the listing's order */

#endif
