/* fuzz_merge_config.c — libFuzzer target for `ttmerge merge --config` files (baselines/merge_config.c).
 *
 * Each input is parsed from memory with mc_parse under the label "config.yaml" (the file read is
 * fio_read_all, fuzzed elsewhere). Contract checked:
 *   - a rejected input leaves one non-empty line that starts with "config.yaml: ";
 *   - an accepted one names a base and 1..AM_MAX_MODELS models (none of them the base), a known
 *     method, and only values in range: finite weights, densities in [0, 1] (or the unset -1),
 *     topk in [0, 100], at most AM_MAX_RULES weight rules with non-empty patterns.
 *
 * Without libFuzzer, fuzz/replay_main.c runs the target once per file named on the command line.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "baselines/merge_config.h"
#include "core/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static am_config c;
    memset(&c, 0, sizeof c);
    c.lambda = -1, c.topk = 20, c.density = 0.5, c.k = 2, c.tall_lambda = 0.6, c.out_dtype = -1;
    for (int k = 0; k < AM_MAX_MODELS; k++) c.model[k].weight = 1, c.model[k].density = -1;
    tt_err e = {0};
    if (mc_parse(&c, (const char *)data, size, "config.yaml", &e) != 0) {
        if (e.msg[0] == 0 || strchr(e.msg, '\n') || strncmp(e.msg, "config.yaml: ", 13) != 0) abort();
        return 0;
    }
    if (!c.base[0] || c.K < 1 || c.K > AM_MAX_MODELS || (int)c.method < 0 || (int)c.method >= am_method_count())
        abort();
    if (!isfinite(c.lambda) || c.topk < 0 || c.topk > 100 || c.k < 0 || c.k > AM_MAX_MODELS + 1) abort();
    if (c.out_dtype != -1 && c.out_dtype != ST_F32 && c.out_dtype != ST_F16 && c.out_dtype != ST_BF16) abort();
    for (int k = 0; k < c.K; k++) {
        const am_model *m = &c.model[k];
        if (!m->path[0] || !strcmp(m->path, c.base) || !isfinite(m->weight)) abort();
        if (m->density != -1 && (m->density < 0 || m->density > 1)) abort();
        if (m->n_weight_rule < 0 || m->n_weight_rule > AM_MAX_RULES) abort();
        for (int r = 0; r < m->n_weight_rule; r++)
            if (!m->weight_rule[r].pattern[0] || !isfinite(m->weight_rule[r].value)) abort();
    }
    return 0;
}
