/*
 * A dataset's image file (JPEG through libjpeg-turbo, PNG through libpng)
 * rendered as `radfuse read` renders the same values stored as DICOM by
 * `radfuse dataset study`: the decoded samples become an rf_dicom_image
 * (MONOCHROME2 for grayscale with the identity window the study maker writes,
 * center 2^(bits-1) and width 2^bits, so a value x displays as x / (2^bits - 1);
 * RGB for color) and go through rf_render_display with the read's options.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <png.h>

#include "datasets/datasets_internal.h"
#include "radfuse/eval.h"
#include "radfuse/read.h"
#include "radfuse/render.h"
#include "runtime/fileio.h"

#define IMAGE_MAX ((size_t)64 << 20)
#define SIDE_MAX 65535

/* ---- JPEG ---- */

static int decode_jpeg(const char *path, const char *data, size_t len, rf_dicom_image *img, rf_err *err)
{
    struct jpeg_decompress_struct cinfo;
    ds_jpeg_fail jf;
    /* volatile: changed between setjmp and a longjmp back to it */
    uint8_t *volatile out = NULL;
    ds_jpeg_catch(&cinfo, &jf);
    if (setjmp(jf.jb)) {
        jpeg_destroy_decompress(&cinfo);
        free(out);
        return rf_err_set(err, RF_EFORMAT, "%s: not a JPEG image radfuse can decode: %s", path, jf.msg);
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, (const unsigned char *)data, (unsigned long)len);
    jpeg_read_header(&cinfo, TRUE);
    int gray = cinfo.num_components == 1;
    if (!gray && cinfo.num_components != 3) {
        int nc = cinfo.num_components;
        jpeg_destroy_decompress(&cinfo);
        return rf_err_set(err, RF_EUNSUP, "%s: a %d-component JPEG (grayscale or color only)", path, nc);
    }
    cinfo.out_color_space = gray ? JCS_GRAYSCALE : JCS_RGB;
    /* the accurate integer IDCT: the values `radfuse dataset study` stores */
    cinfo.dct_method = JDCT_ISLOW;
    jpeg_start_decompress(&cinfo);
    size_t w = cinfo.output_width, h = cinfo.output_height, c = (size_t)cinfo.output_components;
    if (w == 0 || h == 0 || w > SIDE_MAX || h > SIDE_MAX) {
        jpeg_destroy_decompress(&cinfo);
        return rf_err_set(err, RF_EUNSUP, "%s: image size %zux%zu", path, w, h);
    }
    out = malloc(w * h * c);
    if (!out) {
        jpeg_destroy_decompress(&cinfo);
        return rf_err_set(err, RF_ENOMEM, "%s: out of memory", path);
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW line = out + (size_t)cinfo.output_scanline * w * c;
        jpeg_read_scanlines(&cinfo, &line, 1);
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    img->pixels = out;
    img->rows = (int)h;
    img->columns = (int)w;
    img->out_samples = img->samples_per_pixel = (int)c;
    img->bits_allocated = img->bits_stored = 8;
    img->sample_bytes = 1;
    return RF_OK;
}

/* ---- PNG ---- */

typedef struct png_src {
    const uint8_t *p;
    size_t n, at;
} png_src;

static void png_read_mem(png_structp png, png_bytep out, png_size_t n)
{
    png_src *s = png_get_io_ptr(png);
    if (n > s->n - s->at)
        png_error(png, "truncated");
    memcpy(out, s->p + s->at, n);
    s->at += n;
}

typedef struct png_fail {
    jmp_buf jb;
    char msg[200];
} png_fail;

static void on_png_error(png_structp png, png_const_charp msg)
{
    png_fail *f = png_get_error_ptr(png);
    snprintf(f->msg, sizeof f->msg, "%s", msg);
    longjmp(f->jb, 1);
}

static void on_png_warning(png_structp png, png_const_charp msg) { (void)png, (void)msg; }

static int decode_png(const char *path, const char *data, size_t len, rf_dicom_image *img, rf_err *err)
{
    png_fail pf;
    png_src src = {(const uint8_t *)data, len, 0};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &pf, on_png_error, on_png_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    uint8_t *volatile out = NULL;
    png_bytep *volatile rowp = NULL;
    if (!png || !info) {
        png_destroy_read_struct(png ? &png : NULL, NULL, NULL);
        return rf_err_set(err, RF_ENOMEM, "%s: out of memory", path);
    }
    if (setjmp(pf.jb)) {
        png_destroy_read_struct(&png, &info, NULL);
        free(out);
        free(rowp);
        return rf_err_set(err, RF_EFORMAT, "%s: not a PNG image radfuse can decode: %s", path, pf.msg);
    }
    png_set_read_fn(png, &src, png_read_mem);
    png_set_user_limits(png, SIDE_MAX, SIDE_MAX);
    png_read_info(png, info);
    int type = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
    /* samples as stored: palettes expanded to RGB, low bit depths to 8, alpha
     * dropped (no compositing: a radiograph has no meaningful alpha), 16-bit
     * kept and swapped to little-endian as DICOM's decoded values are */
    if (type == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(png);
    if (type == PNG_COLOR_TYPE_GRAY && depth < 8)
        png_set_expand_gray_1_2_4_to_8(png);
    if (png_get_valid(png, info, PNG_INFO_tRNS))
        png_set_tRNS_to_alpha(png);
    png_set_strip_alpha(png);
    if (depth == 16)
        png_set_swap(png);
    png_read_update_info(png, info);
    size_t w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    int c = png_get_channels(png, info), bytes = png_get_bit_depth(png, info) == 16 ? 2 : 1;
    if (c != 1 && c != 3)
        png_error(png, "unexpected channel count");
    size_t stride = png_get_rowbytes(png, info);
    if (stride != w * (size_t)c * (size_t)bytes)
        png_error(png, "unexpected row size");
    out = malloc(stride * h);
    rowp = malloc(h * sizeof *rowp);
    if (!out || !rowp)
        png_error(png, "out of memory");
    for (size_t y = 0; y < h; y++)
        rowp[y] = out + y * stride;
    png_read_image(png, rowp);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    free(rowp);
    img->pixels = out;
    img->rows = (int)h;
    img->columns = (int)w;
    img->out_samples = img->samples_per_pixel = c;
    img->bits_allocated = img->bits_stored = 8 * bytes;
    img->sample_bytes = bytes;
    return RF_OK;
}

int rf_eval_image_load(const char *path, rf_read_image *out, rf_err *err)
{
    memset(out, 0, sizeof *out);
    char *data = NULL;
    size_t len = 0;
    int rc = rf_read_file(path, IMAGE_MAX, &data, &len, err);
    if (rc)
        return rc;
    rf_dicom_image img;
    memset(&img, 0, sizeof img);
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (len >= 3 && (uint8_t)data[0] == 0xff && (uint8_t)data[1] == 0xd8 && (uint8_t)data[2] == 0xff)
        rc = decode_jpeg(path, data, len, &img, err);
    else if (len >= 8 && memcmp(data, png_sig, 8) == 0)
        rc = decode_png(path, data, len, &img, err);
    else
        rc = rf_err_set(err, RF_EFORMAT, "%s: neither a JPEG nor a PNG image", path);
    free(data);
    if (rc)
        return rc;
    img.frames = 1;
    img.has_pixel_data = 1;
    img.high_bit = img.bits_stored - 1;
    img.display.rescale_slope = 1;
    snprintf(img.photometric, sizeof img.photometric, "%s", img.out_samples == 3 ? "RGB" : "MONOCHROME2");
    if (img.out_samples == 1) {
        /* datasets/make_study.cpp's window: LINEAR (x - (c - 0.5)) / (w - 1) + 0.5 = x / (2^bits - 1) */
        img.display.nwindows = 1;
        img.display.window_center[0] = (double)(1 << (img.bits_stored - 1));
        img.display.window_width[0] = (double)(1 << img.bits_stored);
    }
    img.pixels_size = (size_t)img.rows * (size_t)img.columns * (size_t)img.out_samples * (size_t)img.sample_bytes;
    size_t n = (size_t)img.rows * (size_t)img.columns * (size_t)img.out_samples;
    float *px = malloc(n * sizeof *px);
    if (!px) {
        free(img.pixels);
        return rf_err_set(err, RF_ENOMEM, "%s: out of memory rendering a %dx%d image", path, img.rows, img.columns);
    }
    /* the options read_study.c renders with (NULL: the file's window) */
    rf_err e;
    rc = rf_render_display(&img, 0, NULL, px, NULL, NULL, &e);
    free(img.pixels);
    if (rc) {
        free(px);
        return rf_err_set(err, rc, "%s: %s", path, e.msg);
    }
    out->pixels = px;
    out->rows = img.rows;
    out->cols = img.columns;
    out->channels = img.out_samples;
    return RF_OK;
}
