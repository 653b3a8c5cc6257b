/* cmd_init.c — `ttmerge init`: write a randomly initialised ViT checkpoint (and a head). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "core/arena.h"
#include "core/checkpoint.h"
#include "core/fileio.h"
#include "core/rng.h"

/* --arch accepts inline JSON or a file holding it. */
static int read_arch(const char *arg, vit_config *cfg, tt_err *err) {
    if (arg[0] == '{') return vit_config_from_json(cfg, arg, err);
    char *text;
    size_t n;
    if (fio_read_all(arg, &text, &n, 1 << 20, err)) return -1;
    int rc = vit_config_from_json(cfg, text, err);
    free(text);
    if (rc) tt_prefix(err, "%s: ", arg);
    return rc;
}

int cmd_init(int argc, char **argv) {
    const char *arch = NULL, *out = NULL, *head_out = NULL, *classes_s = "10";
    cli_common common = {0};
    cli_opt opts[] = {
        {"arch", "JSON|FILE", "architecture (keys as in ttmerge.arch)", .str = &arch, .required = 1},
        {"out", "M.safetensors", "output checkpoint", .str = &out, .required = 1},
        {"head-out", "H.safetensors", "also write a random head", .str = &head_out},
        {"classes", "K", "classes of the head (default 10)", .str = &classes_s},
        CLI_COMMON(&common),
        {0}};
    int rc = cli_parse("init", "Write a randomly initialised ViT checkpoint (open_clip names and init).", opts, argc, argv);
    if (rc) return rc > 0 ? 0 : 2;
    long seed = 0, classes;
    if ((common.seed && cli_int("init", "seed", common.seed, 0, 1L << 62, &seed)) ||
        cli_int("init", "classes", classes_s, 1, 100000, &classes) || cli_apply_common(&common))
        return 2;
    if ((rc = cli_start_threads("init"))) return rc;
    tt_err e = {0};
    vit_config cfg;
    ckpt_vit m;
    if (read_arch(arch, &cfg, &e) || ckpt_vit_alloc(&m, &cfg, &e)) return cli_error("init", "%s", e.msg);
    vit_init_params(&cfg, &m.lay, m.params, (uint64_t)seed);
    char seed_s[32];
    snprintf(seed_s, sizeof seed_s, "%ld", seed);
    ckpt_meta meta[] = {{"ttmerge.init_seed", seed_s}};
    rc = ckpt_save_vit(&m, out, NULL, 0, meta, 1, &e);
    if (!rc && head_out) {
        ckpt_head h = {.classes = (int)classes, .dim = cfg.output_dim};
        h.W = tt_calloc_aligned((size_t)classes * cfg.output_dim + (size_t)classes, sizeof(float), &e);
        if (!h.W) rc = -1;
        else {
            h.b = h.W + (size_t)classes * cfg.output_dim;
            rng r;
            rng_init(&r, (uint64_t)seed ^ 0x68656164ull);
            for (size_t i = 0; i < (size_t)classes * cfg.output_dim; i++) h.W[i] = (float)(0.1 * rng_normal(&r));
            rc = ckpt_save_head(&h, head_out, &e);
            ckpt_head_free(&h);
        }
    }
    ckpt_vit_free(&m);
    if (rc) return fprintf(stderr, "ttmerge init: %s\n", e.msg), tt_exit_status(&e);
    return 0;
}
