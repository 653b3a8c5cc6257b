/* cmd_heads.c — `ttmerge heads --clip MODEL --classes C.txt --templates T.txt --out H.safetensors`: a CLIP
 * zero-shot head (data/zero_shot.h) as the head file `ttmerge eval --head` reads. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "core/clipmap.h"
#include "core/npy.h"
#include "core/progress.h"
#include "data/zero_shot.h"

int cmd_heads(int argc, char **argv) {
    const char *model = NULL, *classes = NULL, *templates = NULL, *out = NULL, *vocab = NULL, *batch_s = NULL,
               *act = NULL, *features_out = NULL;
    cli_common common = {0};
    cli_opt opts[] = {
        {"clip", "MODEL", "CLIP with its text tower: a Hugging Face CLIPModel (directory or file) or an open_clip "
                          "state dict (.safetensors)",
         .str = &model, .required = 1},
        {"classes", "C.txt", "class names, one a line, in label order (suites/clip/<dataset>/classnames.txt)",
         .str = &classes, .required = 1},
        {"templates", "T.txt", "prompt templates, one a line, \"{}\" where the name goes", .str = &templates,
         .required = 1},
        {"out", "H.safetensors", "the head file (head.weight [classes, D], head.bias = 0, ttmerge.head)",
         .str = &out, .required = 1},
        {"vocab", "PATH", "the tokenizer (vocab.json + merges.txt or bpe_simple_vocab_16e6.txt.gz, or their "
                          "directory); default: MODEL's directory",
         .str = &vocab},
        {"batch", "B", "prompts per text forward (default 64)", .str = &batch_s},
        {"act", "gelu|quick_gelu", "the text tower's activation when the files do not say (default quick_gelu)",
         .str = &act},
        {"features-out", "F.npy", "also write every prompt's text features [classes x templates, D] (class-major) "
                                  "as .npy",
         .str = &features_out},
        CLI_COMMON(&common),
        {0}};
    int rc = cli_parse("heads",
                       "ttmerge heads --clip MODEL --classes C.txt --templates T.txt --out H.safetensors: a CLIP\n"
                       "zero-shot head. Every template filled with every class name is encoded by the text tower,\n"
                       "L2-normalised, averaged per class and normalised again; the head file records\n"
                       "normalize_features and exp(logit_scale), so `ttmerge eval --model MODEL --head H` gives\n"
                       "CLIP's zero-shot logits. See docs/zero_shot.md.",
                       opts, argc, argv);
    if (rc) return rc > 0 ? 0 : 2;
    long batch = ZS_BATCH;
    if (batch_s && cli_int("heads", "batch", batch_s, 1, 4096, &batch)) return 2;
    zs_opts o = {.vocab = vocab, .batch = (int)batch, .act = CM_ACT_AUTO, .progress = cli_progress_enabled(&common),
                 .keep_features = features_out != NULL};
    if (act && !strcmp(act, "gelu")) o.act = OP_ACT_GELU;
    else if (act && !strcmp(act, "quick_gelu")) o.act = OP_ACT_QUICK_GELU;
    else if (act) return cli_error("heads", "--act must be gelu or quick_gelu, not '%s'", act);
    if (cli_apply_common(&common)) return 2;
    if ((rc = cli_start_threads("heads"))) return rc;
    tt_err e = {0};
    zs_head h = {0};
    double t0 = progress_now();
    if (zs_head_build_opts(model, classes, templates, &o, &h, &e) ||
        (features_out && npy_write_f32(features_out, 2, (int64_t[]){h.n_prompts, h.dim}, h.prompt_features, &e)) ||
        zs_head_save(&h, out, &e)) {
        zs_head_free(&h);
        fprintf(stderr, "ttmerge heads: %s\n", e.msg);
        return tt_exit_status(&e);
    }
    if (!common.quiet)
        fprintf(stderr, "ttmerge heads: %s: %d classes x %d dims from %d prompts, logit scale %.4g; %.2f s, "
                "text tower %.3f s (%.1f prompts/s)\n", out, h.n_classes, h.dim, h.n_prompts, (double)h.logit_scale,
                progress_now() - t0, h.encode_seconds, h.n_prompts / (h.encode_seconds > 0 ? h.encode_seconds : 1e-9));
    zs_head_free(&h);
    return 0;
}
