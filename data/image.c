/* image.c — see image.h. Both libraries report errors by longjmp out of their error callback;
 * everything a jump could leak is reachable from a context struct that the landing code frees. */
#include "data/image.h"

#include <jpeglib.h>
#include <jerror.h> /* JWRN_JPEG_EOF */
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"

void img_rgb_free(img_rgb *im) {
    free(im->rgb);
    memset(im, 0, sizeof *im);
}

static int alloc_rgb_(img_rgb *out, long w, long h, long max_pixels, const char *name, const char *fmt,
                      tt_err *err) {
    if (w < 1 || h < 1) return tt_fail(err, TT_EINPUT, "%s: %s image of %ldx%ld pixels", name, fmt, w, h);
    if (w > max_pixels / h)
        return tt_fail(err, TT_EINPUT, "%s: %s image of %ldx%ld pixels is above the limit of %ld pixels", name,
                       fmt, w, h, max_pixels);
    out->rgb = malloc((size_t)w * (size_t)h * 3);
    if (!out->rgb) return tt_fail(err, TT_ENOMEM, "%s: out of memory for a %ldx%ld image", name, w, h);
    out->width = (int)w;
    out->height = (int)h;
    return 0;
}

/* ---- JPEG -------------------------------------------------------------------------------- */

typedef struct jpeg_ctx {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    int rows_done;          /* every scanline was read: a missing EOI no longer matters */
    int truncated;          /* the data ended early (libjpeg's JWRN_JPEG_EOF) */
    char msg[JMSG_LENGTH_MAX];
} jpeg_ctx;

static void jpeg_error_exit_(j_common_ptr cinfo) {
    jpeg_ctx *c = (jpeg_ctx *)cinfo->err;
    cinfo->err->format_message(cinfo, c->msg);
    longjmp(c->jump, 1);
}

/* Warnings (level -1) are ignored as Pillow ignores them, except the end of the data: Pillow
 * raises "image file is truncated" there, so it becomes an error. Trace messages are dropped. */
static void jpeg_emit_(j_common_ptr cinfo, int level) {
    jpeg_ctx *c = (jpeg_ctx *)cinfo->err;
    if (level != -1 || cinfo->err->msg_code != JWRN_JPEG_EOF || c->rows_done) return;
    c->truncated = 1;
    cinfo->err->format_message(cinfo, c->msg);
    longjmp(c->jump, 1);
}

/* Pillow stores libjpeg's CMYK inverted ("CMYK;I") and converts with cmyk2rgb. */
static void cmyk_row_to_rgb_(const uint8_t *cmyk, int w, uint8_t *rgb) {
    for (int x = 0; x < w; x++) {
        int nk = cmyk[4 * x + 3]; /* inverted k = 255 - stored */
        for (int ch = 0; ch < 3; ch++) {
            int c = 255 - cmyk[4 * x + ch];
            int t = c * nk + 128;
            int v = nk - (((t >> 8) + t) >> 8);
            rgb[3 * x + ch] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    }
}

static int decode_jpeg_(const uint8_t *buf, size_t n, const char *name, long max_pixels, img_rgb *out,
                        tt_err *err) {
    struct jpeg_decompress_struct cinfo;
    jpeg_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    uint8_t *volatile row = NULL; /* CMYK/grey scanline; volatile: freed after a longjmp */
    cinfo.err = jpeg_std_error(&ctx.pub);
    ctx.pub.error_exit = jpeg_error_exit_;
    ctx.pub.emit_message = jpeg_emit_;
    if (setjmp(ctx.jump)) {
        jpeg_destroy_decompress(&cinfo);
        free(row);
        img_rgb_free(out);
        return tt_fail(err, TT_EINPUT, "%s: %s JPEG (%s)", name, ctx.truncated ? "truncated" : "corrupt", ctx.msg);
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, buf, (unsigned long)n);
    jpeg_read_header(&cinfo, TRUE);
    int comps = cinfo.num_components;
    if (comps == 1) cinfo.out_color_space = JCS_GRAYSCALE;
    else if (comps == 3) cinfo.out_color_space = JCS_RGB;
    else if (comps == 4) cinfo.out_color_space = JCS_CMYK;
    else {
        jpeg_destroy_decompress(&cinfo);
        return tt_fail(err, TT_EINPUT, "%s: JPEG with %d components (1, 3 or 4 are readable)", name, comps);
    }
    if (alloc_rgb_(out, (long)cinfo.image_width, (long)cinfo.image_height, max_pixels, name, "JPEG", err)) {
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    jpeg_start_decompress(&cinfo);
    int w = out->width;
    if (comps != 3) {
        row = malloc((size_t)w * (size_t)comps);
        if (!row) {
            jpeg_destroy_decompress(&cinfo);
            img_rgb_free(out);
            return tt_fail(err, TT_ENOMEM, "%s: out of memory", name);
        }
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        uint8_t *dst = out->rgb + (size_t)cinfo.output_scanline * (size_t)w * 3;
        JSAMPROW r = comps == 3 ? dst : row;
        if (jpeg_read_scanlines(&cinfo, &r, 1) != 1) continue; /* cannot happen with a memory source */
        if (comps == 1)
            for (int x = 0; x < w; x++) dst[3 * x] = dst[3 * x + 1] = dst[3 * x + 2] = row[x];
        else if (comps == 4)
            cmyk_row_to_rgb_(row, w, dst);
    }
    ctx.rows_done = 1;
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    free(row);
    return 0;
}

/* ---- PNG --------------------------------------------------------------------------------- */

typedef struct png_ctx {
    const uint8_t *buf;
    size_t n, pos;
    char msg[256];
    uint8_t *raw;     /* decoded rows before the RGB conversion */
    png_bytep *rows;
    long rows_expected, rows_seen; /* rows (of all Adam7 passes) to decode, decoded so far */
    int depth, color_type;
    uint8_t pal[256][3];
} png_ctx;

/* Called by libpng once per decoded row, before the row is stored: counts them. */
static void png_count_row_(png_structp png, png_row_infop info, png_bytep data) {
    (void)info, (void)data;
    ((png_ctx *)png_get_error_ptr(png))->rows_seen++;
}

/* Rows libpng decodes: the image's height, or with Adam7 the rows of every non-empty pass. */
static long png_rows_expected_(png_uint_32 w, png_uint_32 h, int interlace) {
    if (interlace == PNG_INTERLACE_NONE) return (long)h;
    long n = 0;
    for (int p = 0; p < 7; p++)
        if (PNG_PASS_COLS(w, p) > 0 && PNG_PASS_ROWS(h, p) > 0) n += (long)PNG_PASS_ROWS(h, p);
    return n;
}

static void png_read_mem_(png_structp png, png_bytep data, png_size_t len) {
    png_ctx *c = png_get_io_ptr(png);
    if (len > c->n - c->pos) png_error(png, "truncated PNG file");
    memcpy(data, c->buf + c->pos, len);
    c->pos += len;
}

static void png_error_(png_structp png, png_const_charp msg) {
    png_ctx *c = png_get_error_ptr(png);
    snprintf(c->msg, sizeof c->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_warning_(png_structp png, png_const_charp msg) { (void)png, (void)msg; }

/* One decoded row (png_set_packing: one byte per sample below 8 bits) to RGB, as Pillow's
 * unpackers and convert("RGB") do. */
static void png_row_to_rgb_(const uint8_t *src, int w, int color_type, int depth, const uint8_t pal[256][3],
                            uint8_t *dst) {
    int bps = depth == 16 ? 2 : 1; /* bytes per sample */
    int spp = color_type == PNG_COLOR_TYPE_GRAY         ? 1
              : color_type == PNG_COLOR_TYPE_GRAY_ALPHA ? 2
              : color_type == PNG_COLOR_TYPE_RGB        ? 3
              : color_type == PNG_COLOR_TYPE_RGB_ALPHA  ? 4
                                                        : 1;
    const int step = bps * spp;
    for (int x = 0; x < w; x++) {
        const uint8_t *p = src + (size_t)x * step;
        uint8_t r, g, b;
        if (color_type == PNG_COLOR_TYPE_PALETTE) {
            r = pal[p[0]][0], g = pal[p[0]][1], b = pal[p[0]][2];
        } else if (color_type == PNG_COLOR_TYPE_GRAY) {
            int v = depth == 16   ? ((p[0] << 8 | p[1]) > 255 ? 255 : p[1]) /* mode I, clipped */
                    : depth == 8 ? p[0]
                    : depth == 4 ? p[0] * 17
                    : depth == 2 ? p[0] * 85
                                 : p[0] * 255;
            r = g = b = (uint8_t)v;
        } else if (color_type == PNG_COLOR_TYPE_GRAY_ALPHA) {
            r = g = b = p[0]; /* high byte at 16 bits */
        } else {
            r = p[0], g = p[bps], b = p[2 * bps];
        }
        dst[3 * x] = r, dst[3 * x + 1] = g, dst[3 * x + 2] = b;
    }
}

static int decode_png_(const uint8_t *buf, size_t n, const char *name, long max_pixels, img_rgb *out,
                       tt_err *err) {
    /* Everything read after a longjmp lives in ctx (memory), not in registers. */
    png_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.buf = buf, ctx.n = n;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, png_error_, png_warning_);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return tt_fail(err, TT_ENOMEM, "%s: out of memory", name);
    }
    if (setjmp(png_jmpbuf(png))) {
        if (ctx.rows_expected > 0 && ctx.rows_seen == ctx.rows_expected)
            goto convert; /* every row is in: what failed is the tail (zlib checksum, CRC, IEND),
                           * which Pillow never reads either */
        png_destroy_read_struct(&png, &info, NULL);
        free(ctx.raw);
        free(ctx.rows);
        img_rgb_free(out);
        return tt_fail(err, TT_EINPUT, "%s: %s PNG (%s)", name,
                       strstr(ctx.msg, "truncated") ? "truncated" : "corrupt", ctx.msg);
    }
    png_set_read_fn(png, &ctx, png_read_mem_);
    png_set_user_limits(png, 0x7fffffff, 0x7fffffff); /* max_pixels below is the limit */
    /* Pillow checks the CRC of every chunk before the image data, ancillary ones included. */
    png_set_crc_action(png, PNG_CRC_DEFAULT, PNG_CRC_ERROR_QUIT);
    png_read_info(png, info);
    png_uint_32 w, h;
    int interlace;
    png_get_IHDR(png, info, &w, &h, &ctx.depth, &ctx.color_type, &interlace, NULL, NULL);
    for (int i = 0; i < 256; i++) ctx.pal[i][0] = ctx.pal[i][1] = ctx.pal[i][2] = (uint8_t)i; /* Pillow's default */
    if (ctx.color_type == PNG_COLOR_TYPE_PALETTE) {
        png_colorp plte = NULL;
        int np = 0;
        if (!png_get_PLTE(png, info, &plte, &np) || np < 1) png_error(png, "palette image without PLTE");
        for (int i = 0; i < np && i < 256; i++)
            ctx.pal[i][0] = plte[i].red, ctx.pal[i][1] = plte[i].green, ctx.pal[i][2] = plte[i].blue;
    }
    if (ctx.depth < 8) png_set_packing(png);
    if (interlace != PNG_INTERLACE_NONE) png_set_interlace_handling(png);
    png_set_read_user_transform_fn(png, png_count_row_);
    png_read_update_info(png, info);
    if (alloc_rgb_(out, (long)w, (long)h, max_pixels, name, "PNG", err)) {
        png_destroy_read_struct(&png, &info, NULL);
        return -1;
    }
    size_t rowbytes = png_get_rowbytes(png, info);
    ctx.raw = malloc(rowbytes * h);
    ctx.rows = malloc(sizeof *ctx.rows * h);
    if (!ctx.raw || !ctx.rows) {
        png_destroy_read_struct(&png, &info, NULL);
        free(ctx.raw);
        free(ctx.rows);
        img_rgb_free(out);
        return tt_fail(err, TT_ENOMEM, "%s: out of memory for a %lux%lu image", name, (unsigned long)w,
                       (unsigned long)h);
    }
    for (png_uint_32 y = 0; y < h; y++) ctx.rows[y] = ctx.raw + rowbytes * y;
    /* From here on the image data chunks' CRCs are not checked, as Pillow does not check them. */
    png_set_crc_action(png, PNG_CRC_QUIET_USE, PNG_CRC_QUIET_USE);
    ctx.rows_expected = png_rows_expected_(w, h, interlace);
    png_read_image(png, ctx.rows);
convert:
    for (int y = 0; y < out->height; y++)
        png_row_to_rgb_(ctx.rows[y], out->width, ctx.color_type, ctx.depth, (const uint8_t(*)[3])ctx.pal,
                        out->rgb + (size_t)y * out->width * 3);
    png_destroy_read_struct(&png, &info, NULL);
    free(ctx.raw);
    free(ctx.rows);
    return 0;
}

/* ---- entry points ------------------------------------------------------------------------ */

int img_decode(const uint8_t *buf, size_t n, const char *name, long max_pixels, img_rgb *out, tt_err *err) {
    memset(out, 0, sizeof *out);
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (n >= 3 && buf[0] == 0xff && buf[1] == 0xd8 && buf[2] == 0xff)
        return decode_jpeg_(buf, n, name, max_pixels, out, err);
    if (n >= 8 && !memcmp(buf, png_sig, 8)) return decode_png_(buf, n, name, max_pixels, out, err);
    return tt_fail(err, TT_EINPUT, "%s: not a JPEG or PNG file", name);
}

int img_read_file(const char *path, long max_pixels, img_rgb *out, tt_err *err) {
    memset(out, 0, sizeof *out);
    char *buf = NULL;
    size_t n = 0;
    if (fio_read_all(path, &buf, &n, IMG_MAX_FILE_BYTES, err)) return -1;
    int rc = img_decode((const uint8_t *)buf, n, path, max_pixels, out, err);
    free(buf);
    return rc;
}
