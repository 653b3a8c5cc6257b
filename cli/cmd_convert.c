/* cmd_convert.c — `ttmerge convert IN --to hf|open_clip|ttmerge --out OUT`: a CLIP image tower
 * from any layout ttmerge reads (core/clipmap.h) into any it writes, tensor values unchanged
 * (F16/BF16 become their exact F32 values). The input's ttmerge.* metadata (method, params, ...)
 * comes along; task-specific tensors of a merged ttmerge file do not (no other layout holds them). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "core/checkpoint.h"

/* Metadata entries the writer sets itself. */
static bool writer_owned(const char *key) {
    return !strcmp(key, "format") || !strcmp(key, "ttmerge.arch") || !strcmp(key, "ttmerge.version") ||
           !strcmp(key, "ttmerge.hf_config");
}

static int convert(const char *in, cm_format to, const char *out, size_t shard_size, const cm_opts *o, tt_err *e) {
    cm_model cm;
    ckpt_vit m = {0};
    cm_kv meta[64];
    int n_meta = 0, rc = -1;
    if (cm_open(&cm, in, o, e)) return -1;
    if (ckpt_vit_alloc(&m, &cm.cfg, e)) goto done;
    for (int l = 0; l < m.lay.count; l++)
        if (cm_read(&cm, l, m.params + m.lay.t[l].offset, e)) goto done;
    const st_file *first = ts_shard(cm.set, 0);
    for (int i = 0; st_meta_key(first, i) && n_meta < 64; i++) {
        const char *k = st_meta_key(first, i);
        if (!strncmp(k, "ttmerge.", 8) && !writer_owned(k)) meta[n_meta++] = (cm_kv){k, st_meta(first, k)};
    }
    rc = cm_save(to, &cm.cfg, &cm.lay, m.params, cm.has_projection, cm.hf_config, meta, n_meta, out, shard_size, e);
done:
    ckpt_vit_free(&m);
    cm_close(&cm);
    return rc;
}

int cmd_convert(int argc, char **argv) {
    const char *in = NULL, *to = NULL, *out = NULL, *shard_s = NULL, *act = NULL;
    cli_common common = {0};
    cli_opt opts[] = {
        {"in", "IN", "input checkpoint (or give it first, without --in)", .str = &in},
        {"to", "hf|open_clip|ttmerge", "output layout", .str = &to, .required = 1},
        {"out", "OUT", "output: a new directory (hf) or a .safetensors file", .str = &out, .required = 1},
        {"shard-size", "BYTES", "hf: at most this many tensor bytes per shard (default: one file)", .str = &shard_s},
        {"act", "gelu|quick_gelu", "activation of an input that does not say (open_clip files; default quick_gelu)",
         .str = &act},
        CLI_COMMON(&common),
        {0}};
    if (argc > 0 && argv[0][0] != '-') { /* ttmerge convert IN --to ... */
        in = argv[0];
        argc--;
        argv++;
    }
    const char *given_in = in;
    int rc = cli_parse("convert",
                       "ttmerge convert IN --to hf|open_clip|ttmerge --out OUT: rewrite a CLIP image tower (Hugging "
                       "Face, open_clip or ttmerge;\nfile, directory or sharded directory) in another layout, "
                       "values unchanged. See docs/checkpoints.md.",
                       opts, argc, argv);
    if (rc) return rc > 0 ? 0 : 2;
    if (given_in && in != given_in) return cli_error("convert", "give IN once (first, or as --in)");
    if (!in) return cli_error("convert", "missing IN (see --help)");
    cm_format f;
    if (cm_format_parse(to, &f)) return cli_error("convert", "--to must be hf, open_clip or ttmerge, not '%s'", to);
    long shard = 0;
    if (shard_s && cli_int("convert", "shard-size", shard_s, 1, 1L << 50, &shard)) return 2;
    if (shard_s && f != CM_HF) return cli_error("convert", "--shard-size applies to --to hf only");
    cm_opts o = {CM_ACT_AUTO};
    if (act && !strcmp(act, "gelu")) o.act = OP_ACT_GELU;
    else if (act && !strcmp(act, "quick_gelu")) o.act = OP_ACT_QUICK_GELU;
    else if (act) return cli_error("convert", "--act must be gelu or quick_gelu, not '%s'", act);
    if (cli_apply_common(&common)) return 2;
    tt_err e = {0};
    if (convert(in, f, out, (size_t)shard, &o, &e)) {
        fprintf(stderr, "ttmerge convert: %s\n", e.msg);
        return tt_exit_status(&e);
    }
    if (!common.quiet) fprintf(stderr, "ttmerge convert: %s -> %s (%s)\n", in, out, cm_format_name(f));
    return 0;
}
