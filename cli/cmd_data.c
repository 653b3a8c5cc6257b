/* cmd_data.c — `ttmerge data prepare`: an image folder (ImageFolder layout) or a CSV manifest
 * -> CLIP-preprocessed float32 tensors [n, 3, S, S] as .npy, labels as int64 .npy, and
 * optionally the uint8 crops [n, S, S, 3] the tensors were computed from.
 *
 * Images are decoded and preprocessed in parallel (OpenMP over a batch of images), written in
 * list order: the output is identical for any thread count. The tensors are streamed to a
 * temporary file whose header is rewritten at the end (images skipped with --skip-bad change
 * the first dimension), then renamed into place; a failed run leaves no output. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "core/fileio.h"
#include "core/npy.h"
#include "core/progress.h"
#include "data/clip_preprocess.h"
#include "data/image.h"
#include "data/image_list.h"

#define DATA_BATCH 64 /* images decoded in parallel between two writes */

typedef struct prep_args {
    const char *input, *preprocess, *out, *labels_out, *pixels_out, *split;
    int skip_bad;
    cli_common common;
} prep_args;

/* "clip" or "clip:SIZE" -> size. */
static int parse_preprocess(const char *s, int *size) {
    if (!strcmp(s, "clip")) {
        *size = CLIPP_DEFAULT_SIZE;
        return 0;
    }
    if (strncmp(s, "clip:", 5)) return cli_error("data prepare", "--preprocess: '%s' is not clip or clip:SIZE", s);
    long v;
    if (cli_int("data prepare", "preprocess", s + 5, 1, CLIPP_MAX_SIZE, &v)) return 2;
    *size = (int)v;
    return 0;
}

/* An output .npy streamed through a temporary file; the header is written twice. */
typedef struct npy_stream {
    fio_file f;
    const char *descr;
    int64_t shape[4];
    int ndim;
    size_t header_len;
} npy_stream;

static int stream_open(npy_stream *s, const char *path, const char *descr, int ndim, const int64_t *shape,
                       tt_err *e) {
    memset(s, 0, sizeof *s);
    s->descr = descr;
    s->ndim = ndim;
    memcpy(s->shape, shape, sizeof(int64_t) * (size_t)ndim);
    char hdr[256];
    s->header_len = npy_header(hdr, sizeof hdr, descr, ndim, shape, 0);
    TT_ASSERT(s->header_len > 0);
    if (fio_open_atomic(&s->f, path, e)) return -1;
    if (fio_write(&s->f, hdr, s->header_len, e)) {
        fio_abort(&s->f);
        return -1;
    }
    return 0;
}

/* Rewrite the header with n rows (same length: fewer rows never need more digits), commit. */
static int stream_commit(npy_stream *s, int64_t n, tt_err *e) {
    s->shape[0] = n;
    char hdr[256];
    size_t hl = npy_header(hdr, sizeof hdr, s->descr, s->ndim, s->shape, s->header_len);
    TT_ASSERT(hl == s->header_len);
    if (fseek(s->f.fp, 0, SEEK_SET) != 0 || fio_write(&s->f, hdr, hl, e)) {
        if (!e->msg[0]) tt_fail(e, TT_EIO, "%s: seek failed", s->f.path);
        fio_abort(&s->f);
        return -1;
    }
    return fio_commit(&s->f, e);
}

typedef struct slot {
    int ok;
    tt_err err;
} slot;

static int prepare(const prep_args *a, int size, tt_err *e) {
    imls_list l = {0};
    npy_stream xs = {0}, ps = {0};
    int have_x = 0, have_p = 0, rc = -1;
    size_t npx = (size_t)size * size * 3;
    uint8_t *px = NULL;
    float *x = NULL;
    slot *slots = NULL;
    int64_t *labels = NULL;
    if (imls_open(a->input, a->split, &l, e)) return -1;
    px = malloc(npx * DATA_BATCH);
    x = malloc(npx * sizeof(float) * DATA_BATCH);
    slots = calloc(DATA_BATCH, sizeof *slots);
    labels = malloc(sizeof *labels * (size_t)l.n);
    if (!px || !x || !slots || !labels) {
        tt_fail(e, TT_ENOMEM, "out of memory");
        goto done;
    }
    int64_t xshape[4] = {l.n, 3, size, size}, pshape[4] = {l.n, size, size, 3};
    if (stream_open(&xs, a->out, "<f4", 4, xshape, e)) goto done;
    have_x = 1;
    if (a->pixels_out) {
        if (stream_open(&ps, a->pixels_out, "|u1", 4, pshape, e)) goto done;
        have_p = 1;
    }
    progress pr;
    progress_start(&pr, "data prepare", l.n, cli_progress_enabled(&a->common));
    int kept = 0, skipped = 0;
    for (int b0 = 0; b0 < l.n; b0 += DATA_BATCH) {
        int nb = l.n - b0 < DATA_BATCH ? l.n - b0 : DATA_BATCH;
#pragma omp parallel for schedule(dynamic, 1)
        for (int i = 0; i < nb; i++) {
            slot *s = &slots[i];
            img_rgb im = {0};
            memset(&s->err, 0, sizeof s->err);
            s->ok = !img_read_file(l.paths[b0 + i], IMG_MAX_PIXELS, &im, &s->err) &&
                    !clipp_resize_crop(&im, size, px + npx * (size_t)i, &s->err);
            if (s->ok) clipp_normalize(px + npx * (size_t)i, size, x + npx * (size_t)i);
            img_rgb_free(&im);
        }
        for (int i = 0; i < nb; i++) {
            slot *s = &slots[i];
            if (!s->ok) {
                /* A resample's out-of-memory message lacks the file name. */
                if (strncmp(s->err.msg, l.paths[b0 + i], strlen(l.paths[b0 + i])))
                    tt_prefix(&s->err, "%s: ", l.paths[b0 + i]);
                if (!a->skip_bad || s->err.code == TT_ENOMEM) {
                    progress_end(&pr);
                    *e = s->err;
                    goto done;
                }
                fprintf(stderr, "ttmerge data prepare: skipped %s\n", s->err.msg);
                skipped++;
                continue;
            }
            if (fio_write(&xs.f, x + npx * (size_t)i, npx * sizeof(float), e) ||
                (have_p && fio_write(&ps.f, px + npx * (size_t)i, npx, e))) {
                progress_end(&pr);
                goto done;
            }
            labels[kept++] = l.labels[b0 + i];
        }
        progress_update(&pr, b0 + nb, "%d skipped", skipped);
    }
    double secs = progress_end(&pr);
    if (!kept) {
        tt_fail(e, TT_EINPUT, "%s: none of the %d images could be read", a->input, l.n);
        goto done;
    }
    have_x = 0;
    if (stream_commit(&xs, kept, e)) goto done;
    if (have_p) {
        have_p = 0;
        if (stream_commit(&ps, kept, e)) goto done;
    }
    if (a->labels_out) {
        int64_t lshape[1] = {kept};
        if (npy_write_i64(a->labels_out, 1, lshape, labels, e)) goto done;
    }
    if (skipped)
        fprintf(stderr, "ttmerge data prepare: skipped %d of %d images (unreadable or corrupt, listed above)\n",
                skipped, l.n);
    if (!a->common.quiet)
        fprintf(stderr, "ttmerge data prepare: %d images, %d classes -> %s [%d,3,%d,%d] float32 in %.1f s (%.0f images/s)\n",
                kept, l.n_classes, a->out, kept, size, size, secs, secs > 0 ? kept / secs : 0.0);
    rc = 0;
done:
    if (have_x) fio_abort(&xs.f);
    if (have_p) fio_abort(&ps.f);
    free(px);
    free(x);
    free(slots);
    free(labels);
    imls_free(&l);
    return rc;
}

int cmd_data(int argc, char **argv) {
    if (argc < 1 || (strcmp(argv[0], "prepare") && strcmp(argv[0], "--help") && strcmp(argv[0], "-h")))
        return cli_error("data", "usage: ttmerge data prepare --input FOLDER|MANIFEST --preprocess clip[:SIZE] --out X.npy");
    prep_args a = {.preprocess = "clip"};
    cli_opt opts[] = {
        {"input", "FOLDER|MANIFEST", "image folder ROOT/<class>/<image> (ImageFolder order) or CSV path,label[,split]",
         .str = &a.input, .required = 1},
        {"preprocess", "clip[:SIZE]", "CLIP's eval transform at SIZE (default clip = clip:224)", .str = &a.preprocess},
        {"out", "X.npy", "float32 tensors [n,3,S,S]", .str = &a.out, .required = 1},
        {"labels-out", "L.npy", "int64 labels [n]", .str = &a.labels_out},
        {"pixels-out", "P.npy", "uint8 resized + cropped pixels [n,S,S,3] (before ToTensor)", .str = &a.pixels_out},
        {"split", "NAME", "manifest rows whose split column is NAME", .str = &a.split},
        {"skip-bad", NULL, "skip unreadable or corrupt images (each one reported, count at the end)", .flag = &a.skip_bad},
        CLI_COMMON(&a.common),
        {0}};
    int skip = strcmp(argv[0], "prepare") ? 0 : 1; /* `ttmerge data --help` shows prepare's help */
    int rc = cli_parse("data prepare",
                       "Decode JPEG/PNG images and apply CLIP's preprocessing exactly as Pillow + torchvision do.",
                       opts, argc - skip, argv + skip);
    if (rc) return rc > 0 ? 0 : 2;
    int size = CLIPP_DEFAULT_SIZE;
    if ((rc = parse_preprocess(a.preprocess, &size))) return rc;
    if (cli_apply_common(&a.common)) return 2;
    if ((rc = cli_start_threads("data prepare"))) return rc;
    tt_err e = {0};
    if (prepare(&a, size, &e)) {
        fprintf(stderr, "ttmerge data prepare: %s\n", e.msg);
        return tt_exit_status(&e);
    }
    return 0;
}
