/* registry.c — see registry.h. Adding a method = one line here. */
#include "bench/registry.h"

#include <string.h>

#include "adamerge/adamerge.h"
#include "baselines/methods.h"
#include "bench/surgery.h"
#include "tint/tinting.h"

static const merge_method *const registry[] = {
    &method_zeroshot,
    &method_ta,
    &method_ties,
    &method_consensus_ta,
    &method_consensus_ties,
    &method_tatr,
    &method_dare,
    &method_lata,
    &method_awd,
    &method_graft,
    &method_adamerging_task,
    &method_adamerging,
    &method_adamerging_pp,
    &method_awd_adamerging,
    &method_tinting,
    &method_tsv_m,
    &method_iso_c,
    &method_iso_cts,
    &method_emr,
    &method_surgery,
    &method_fisher,
    &method_regmean,
    &method_wudi,
    &method_cart,
    &method_pcb,
};

int merge_count(void) { return (int)(sizeof registry / sizeof registry[0]); }
const merge_method *merge_at(int i) { return i >= 0 && i < merge_count() ? registry[i] : NULL; }

const merge_method *merge_find(const char *name) {
    for (int i = 0; i < merge_count(); i++)
        if (!strcmp(registry[i]->name, name)) return registry[i];
    return NULL;
}
