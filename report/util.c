/*
 * The writers' shared parts (report/report.h): byte buffer, base64, PNG
 * encoding in memory, paths and the order of findings.
 */
#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "report/report.h"

/* ---- byte buffer ---- */

static int buf_reserve(rf_buf *b, size_t more)
{
    if (b->oom)
        return -1;
    if (more <= b->cap - b->n)
        return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->n < more) {
        if (cap > ((size_t)-1) / 2) {
            b->oom = 1;
            return -1;
        }
        cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

void rf_buf_put(rf_buf *b, const void *data, size_t n)
{
    if (n == 0 || buf_reserve(b, n))
        return;
    memcpy(b->p + b->n, data, n);
    b->n += n;
}

void rf_buf_puts(rf_buf *b, const char *s)
{
    rf_buf_put(b, s, strlen(s));
}

void rf_buf_printf(rf_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || buf_reserve(b, (size_t)n + 1))
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)n;
}

void rf_buf_base64(rf_buf *b, const void *data, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (buf_reserve(b, (n + 2) / 3 * 4))
        return;
    const uint8_t *s = data;
    char *o = b->p + b->n;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        *o++ = tab[v >> 18];
        *o++ = tab[(v >> 12) & 63];
        *o++ = tab[(v >> 6) & 63];
        *o++ = tab[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0);
        *o++ = tab[v >> 18];
        *o++ = tab[(v >> 12) & 63];
        *o++ = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    b->n = (size_t)(o - b->p);
}

void rf_buf_free(rf_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* ---- JSON numbers ---- */

cJSON *rf_json_num(double v)
{
    char s[40];
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(s, sizeof s, "%.*g", digits, v);
        if (strtod(s, NULL) == v)
            break;
    }
    return cJSON_CreateRaw(s);
}

cJSON *rf_json_numf(float v)
{
    char s[32];
    for (int digits = 6; digits <= 9; digits++) {
        snprintf(s, sizeof s, "%.*g", digits, (double)v);
        if (strtof(s, NULL) == v)
            break;
    }
    return cJSON_CreateRaw(s);
}

/* ---- PNG ---- */

typedef struct png_ctx {
    rf_buf *out;
    char msg[200];
} png_ctx;

static void png_write_cb(png_structp png, png_bytep data, png_size_t len)
{
    png_ctx *c = png_get_io_ptr(png);
    rf_buf_put(c->out, data, len);
    if (c->out->oom)
        png_error(png, "out of memory");
}

static void png_flush_cb(png_structp png)
{
    (void)png;
}

static void png_error_cb(png_structp png, png_const_charp msg)
{
    png_ctx *c = png_get_error_ptr(png);
    snprintf(c->msg, sizeof c->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_warning_cb(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg; /* libpng's warnings are not ours to print */
}

/* setjmp lives here; what the error path reads lives in *c, outside this frame. */
static int png_encode_inner(png_ctx *c, png_structp png, png_infop info, const uint8_t *px, int w, int h, int ch,
                            int bits)
{
    if (setjmp(png_jmpbuf(png)))
        return -1;
    static const int types[5] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB,
                                 PNG_COLOR_TYPE_RGB_ALPHA};
    png_set_write_fn(png, c, png_write_cb, png_flush_cb);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, bits, types[ch], PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    size_t stride = (size_t)w * (size_t)ch * (size_t)(bits / 8);
    for (int y = 0; y < h; y++)
        png_write_row(png, px + (size_t)y * stride);
    png_write_end(png, NULL);
    return 0;
}

int rf_png_encode(const uint8_t *px, int w, int h, int channels, int bits, rf_buf *out, rf_err *err)
{
    out->n = 0;
    out->oom = 0;
    if (w <= 0 || h <= 0 || channels < 1 || channels > 4 || (bits != 8 && bits != 16))
        return rf_err_set(err, RF_EINVAL, "PNG encoding: bad image %d x %d x %d, %d bits", w, h, channels, bits);
    png_ctx c = {out, ""};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &c, png_error_cb, png_warning_cb);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_write_struct(&png, &info);
        return rf_err_set(err, RF_ENOMEM, "libpng could not start");
    }
    int rc = png_encode_inner(&c, png, info, px, w, h, channels, bits);
    png_destroy_write_struct(&png, &info);
    if (rc)
        return rf_err_set(err, out->oom ? RF_ENOMEM : RF_EIO, "PNG encoding failed: %s", c.msg);
    return RF_OK;
}

/* ---- paths and order ---- */

const char *rf_path_base(const char *path)
{
    if (!path)
        return NULL;
    size_t end = strlen(path);
    while (end > 1 && path[end - 1] == '/')
        end--; /* "a/dir/" -> "dir/": the last component, its trailing slash kept */
    size_t start = end;
    while (start > 0 && path[start - 1] != '/')
        start--;
    return start < end ? path + start : path;
}

const char *rf_result_shown_path(const rf_read_result *r, const char *path)
{
    return r->include_phi ? path : rf_path_base(path);
}

size_t *rf_result_order(const rf_read_result *r)
{
    size_t *ix = malloc((r->nfindings ? r->nfindings : 1) * sizeof *ix);
    if (!ix)
        return NULL;
    for (size_t i = 0; i < r->nfindings; i++)
        ix[i] = i;
    /* insertion sort: stable, and a model has a handful of findings */
    for (size_t i = 1; i < r->nfindings; i++) {
        size_t v = ix[i], j = i;
        while (j > 0 && r->findings[ix[j - 1]].probability < r->findings[v].probability) {
            ix[j] = ix[j - 1];
            j--;
        }
        ix[j] = v;
    }
    return ix;
}

int rf_mkdir_p1(const char *dir, rf_err *err)
{
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return rf_err_set(err, RF_EIO, "%s: cannot create the directory: %s", dir, strerror(errno));
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return rf_err_set(err, RF_EIO, "%s: not a directory", dir);
    return RF_OK;
}
