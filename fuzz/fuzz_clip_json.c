/* fuzz_clip_json.c — libFuzzer target for the JSON files beside a CLIP checkpoint: the sharded
 * index (ts_index_parse, core/tensorset.c), Hugging Face config.json (cm_hf_config_parse) and
 * open_clip_config.json (cm_open_clip_config_parse, core/clipmap.c), and the same two files as the
 * text tower reads them (ct_hf_text_config_parse, ct_open_clip_text_config_parse, core/clip_text.c).
 * Every input goes to all five.
 *
 * Contract beyond "no crash, no sanitizer report, no leak": a rejection is one non-empty line that
 * starts with the path; an accepted index has n > 0 entries with non-empty tensor names and plain
 * *.safetensors shard names; an accepted config has sizes in [1, 1000000], a known activation and
 * 0 < ln_eps < 1.
 *
 * libFuzzer build and timed runs: fuzz/CMakeLists.txt, fuzz/README.md; ctest replays the seed
 * corpus fuzz/corpus/clip_json/ with fuzz/replay_main.c (fuzz_clip_json_corpus).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/clip_text.h"
#include "core/clipmap.h"
#include "core/tensorset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void rejected(const tt_err *e, const char *path) {
    if (e->msg[0] == 0 || strchr(e->msg, '\n') || strncmp(e->msg, path, strlen(path)) != 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *text = (const char *)data;
    tt_err e = {0};
    ts_index idx;
    if (ts_index_parse(&idx, text, size, "index.json", &e)) {
        rejected(&e, "index.json");
        if (idx.n != 0 || idx.tensor || idx.shard) abort();
    } else {
        if (idx.n <= 0) abort();
        for (int i = 0; i < idx.n; i++) {
            size_t n = strlen(idx.shard[i]);
            if (!idx.tensor[i][0] || strchr(idx.shard[i], '/') || n <= 12 || strcmp(idx.shard[i] + n - 12, ".safetensors"))
                abort();
        }
        ts_index_free(&idx);
    }
    memset(&e, 0, sizeof e);
    cm_hf_vision v;
    if (cm_hf_config_parse(&v, text, size, "config.json", &e)) {
        rejected(&e, "config.json");
    } else {
        const int sizes[] = {v.hidden_size, v.intermediate_size, v.projection_dim, v.layers, v.heads,
                             v.channels, v.image_size, v.patch_size};
        for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
            if (sizes[i] < 1 || sizes[i] > 1000000) abort();
        if ((v.act != OP_ACT_GELU && v.act != OP_ACT_QUICK_GELU) || !(v.ln_eps > 0 && v.ln_eps < 1)) abort();
    }
    memset(&e, 0, sizeof e);
    int act, hw;
    if (cm_open_clip_config_parse(&act, &hw, text, size, "open_clip_config.json", &e)) rejected(&e, "open_clip_config.json");
    else if ((act != OP_ACT_GELU && act != OP_ACT_QUICK_GELU) || hw < 1 || hw > 1000000) abort();
    for (int oc = 0; oc < 2; oc++) { /* the text tower's reading: only what the file says changes */
        memset(&e, 0, sizeof e);
        ct_config c = {.heads = 8, .act = OP_ACT_QUICK_GELU, .ln_eps = 1e-5f};
        const char *path = oc ? "open_clip_config.json" : "config.json";
        int rc = oc ? ct_open_clip_text_config_parse(&c, text, size, path, &e)
                    : ct_hf_text_config_parse(&c, text, size, path, &e);
        if (rc) rejected(&e, path);
        else if (c.heads < 1 || c.heads > 1000000 || (c.act != OP_ACT_GELU && c.act != OP_ACT_QUICK_GELU) ||
                 !(c.ln_eps > 0 && c.ln_eps < 1))
            abort();
    }
    return 0;
}
