/*
 * render: stored values -> modality values -> displayed values (PS3.3 C.11),
 * palettes (C.7.6.3, C.7.9). The arithmetic mirrors pydicom 2.3.1's
 * pixel_data_handlers.util (apply_modality_lut, apply_windowing, apply_voi,
 * apply_color_lut, _expand_segmented_lut), the reference the tests compare
 * against, except where docs/imaging.md ("Rendering") says otherwise.
 * Everything is computed in double and stored as float32.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "radfuse/render.h"

/* ---- input checks and sample access ---- */

typedef struct frame_src {
    const uint8_t *p; /* the frame's first sample */
    size_t npix;      /* rows * columns */
    int spp;          /* samples per pixel as decoded (1 or 3) */
    int bytes;        /* 1, 2 or 4 */
    int is_signed;
} frame_src;

static int check_image(const rf_dicom_image *img, int frame, frame_src *src, rf_err *err)
{
    if (!img || !img->pixels)
        return rf_err_set(err, RF_EINVAL, "no decoded pixel values (read with RF_DICOM_PIXELS)");
    if (img->rows <= 0 || img->columns <= 0 || img->frames <= 0)
        return rf_err_set(err, RF_EINVAL, "image has %d x %d pixels and %d frames", img->columns, img->rows,
                          img->frames);
    if (img->sample_bytes != 1 && img->sample_bytes != 2 && img->sample_bytes != 4)
        return rf_err_set(err, RF_EINVAL, "decoded sample size %d is not 1, 2 or 4 bytes", img->sample_bytes);
    if (img->out_samples != 1 && img->out_samples != 3)
        return rf_err_set(err, RF_EINVAL, "decoded samples per pixel %d is not 1 or 3", img->out_samples);
    if (frame < 0 || frame >= img->frames)
        return rf_err_set(err, RF_EINVAL, "frame %d is not in [0, %d)", frame, img->frames);
    size_t npix = (size_t)img->rows * (size_t)img->columns;
    size_t fbytes = npix * (size_t)img->out_samples * (size_t)img->sample_bytes;
    if (fbytes / (size_t)img->sample_bytes / (size_t)img->out_samples != npix ||
        img->pixels_size / fbytes < (size_t)img->frames)
        return rf_err_set(err, RF_EINVAL, "decoded pixel values (%zu bytes) do not cover %d frames of %d x %d",
                          img->pixels_size, img->frames, img->columns, img->rows);
    src->p = (const uint8_t *)img->pixels + (size_t)frame * fbytes;
    src->npix = npix;
    src->spp = img->out_samples;
    src->bytes = img->sample_bytes;
    src->is_signed = img->pixel_representation == 1;
    return RF_OK;
}

/* Sample i (pixel * spp + channel) as the signed or unsigned value it is. */
static inline int64_t sample(const frame_src *s, size_t i)
{
    const uint8_t *q = s->p + i * (size_t)s->bytes;
    switch (s->bytes) {
    case 1:
        return s->is_signed ? (int64_t)(int8_t)q[0] : (int64_t)q[0];
    case 2: {
        uint16_t v = (uint16_t)(q[0] | (unsigned)q[1] << 8);
        return s->is_signed ? (int64_t)(int16_t)v : (int64_t)v;
    }
    default: {
        uint32_t v = (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 | (uint32_t)q[3] << 24;
        return s->is_signed ? (int64_t)(int32_t)v : (int64_t)v;
    }
    }
}

typedef enum { KIND_GRAY, KIND_GRAY_INVERTED, KIND_PALETTE, KIND_RGB } image_kind;

static int same_word(const char *a, const char *b)
{
    while (*a == ' ')
        a++;
    size_t n = strlen(a);
    while (n && a[n - 1] == ' ')
        n--;
    return n == strlen(b) && strncasecmp(a, b, n) == 0;
}

static image_kind kind_of(const rf_dicom_image *img)
{
    if (img->out_samples == 3)
        return KIND_RGB;
    if (same_word(img->photometric, "PALETTE COLOR"))
        return KIND_PALETTE;
    if (same_word(img->photometric, "MONOCHROME1"))
        return KIND_GRAY_INVERTED;
    return KIND_GRAY;
}

int rf_render_channels(const rf_dicom_image *img)
{
    image_kind k = kind_of(img);
    return k == KIND_RGB || k == KIND_PALETTE ? 3 : 1;
}

/* ---- padding ---- */

typedef struct padding {
    int on;
    int64_t lo, hi;
} padding;

static padding padding_of(const rf_dicom_image *img)
{
    padding p = {0, 0, 0};
    const rf_dicom_display *d = &img->display;
    image_kind k = kind_of(img);
    if (!d->has_padding || (k != KIND_GRAY && k != KIND_GRAY_INVERTED))
        return p;
    p.on = 1;
    p.lo = p.hi = d->padding_value;
    if (d->has_padding_limit) {
        /* PS3.3 C.7.5.1.1.2: the range between the two, whichever is larger */
        if (d->padding_limit < p.lo)
            p.lo = d->padding_limit;
        else
            p.hi = d->padding_limit;
    }
    return p;
}

static inline int is_padding(const padding *p, int64_t s)
{
    return p->on && s >= p->lo && s <= p->hi;
}

/* ---- modality ---- */

typedef struct modality {
    const rf_dicom_lut *lut; /* Modality LUT, or NULL */
    double slope, intercept; /* else these (1, 0 when absent) */
} modality;

static int lut_usable(const rf_dicom_lut *lut, const char *what, rf_err *err)
{
    if (lut->entries <= 0 || lut->entries > 65536 || lut->segmented || lut->data_count < lut->entries)
        return rf_err_set(err, RF_EFORMAT, "%s has %d entries for %d values%s", what, lut->entries,
                          lut->data_count, lut->segmented ? " (segmented)" : "");
    return RF_OK;
}

static int modality_of(const rf_dicom_image *img, modality *m, rf_err *err)
{
    const rf_dicom_display *d = &img->display;
    m->lut = NULL;
    m->slope = 1;
    m->intercept = 0;
    image_kind k = kind_of(img);
    if (k != KIND_GRAY && k != KIND_GRAY_INVERTED)
        return RF_OK;
    if (d->modality_lut.data) {
        int rc = lut_usable(&d->modality_lut, "Modality LUT", err);
        if (rc)
            return rc;
        m->lut = &d->modality_lut;
        return RF_OK;
    }
    if (d->has_rescale) {
        if (!isfinite(d->rescale_slope) || !isfinite(d->rescale_intercept))
            return rf_err_set(err, RF_EFORMAT, "RescaleSlope %g / RescaleIntercept %g is not a finite number",
                              d->rescale_slope, d->rescale_intercept);
        m->slope = d->rescale_slope;
        m->intercept = d->rescale_intercept;
    }
    return RF_OK;
}

/* Index into a LUT: below the first mapped value -> 0, past the end -> last. */
static inline int lut_index(const rf_dicom_lut *lut, double x)
{
    if (!(x >= (double)lut->first))
        return 0;
    double i = floor(x - (double)lut->first);
    return i >= (double)(lut->entries - 1) ? lut->entries - 1 : (int)i;
}

static inline double modality_value(const modality *m, int64_t s)
{
    if (m->lut)
        return m->lut->data[lut_index(m->lut, (double)s)];
    return (double)s * m->slope + m->intercept;
}

int rf_render_modality(const rf_dicom_image *img, int frame, float *out, uint8_t *mask, rf_err *err)
{
    frame_src src;
    modality m;
    int rc = check_image(img, frame, &src, err);
    if (!rc)
        rc = modality_of(img, &m, err);
    if (rc)
        return rc;
    padding pad = padding_of(img);
    size_t n = src.npix * (size_t)src.spp;
    for (size_t i = 0; i < n; i++)
        out[i] = (float)modality_value(&m, sample(&src, i));
    if (mask)
        for (size_t i = 0; i < src.npix; i++)
            mask[i] = src.spp == 1 && is_padding(&pad, sample(&src, i));
    return RF_OK;
}

/* ---- segmented palettes (PS3.3 C.7.9.2) ---- */

#define SEG_MAX_VISITS (1 << 20) /* segments expanded in all, indirect copies included */

typedef struct seg_ctx {
    const uint16_t *e; /* segment entries, widened */
    size_t n;
    uint16_t *out;
    size_t outn, want;
    long visits;
    int bytes; /* 8-bit entries: offsets in indirect segments are 4 entries */
    int big_endian;
    rf_err *err;
} seg_ctx;

/* Expands segments from entry off, at most max_segments of them (0: all),
 * until want values are out. depth 1 is inside an indirect segment. */
static int seg_expand(seg_ctx *c, size_t off, long max_segments, int depth)
{
    long done = 0;
    while (off + 1 < c->n && c->outn < c->want) {
        if (++c->visits > SEG_MAX_VISITS)
            return rf_err_set(c->err, RF_EFORMAT, "segmented LUT: more than %d segments to expand", SEG_MAX_VISITS);
        unsigned op = c->e[off], len = c->e[off + 1];
        size_t at = off;
        off += 2;
        if (op == 0) { /* discrete: len values */
            if (len > c->n - off)
                return rf_err_set(c->err, RF_EFORMAT, "segmented LUT: discrete segment at %zu runs past the data", at);
            for (unsigned i = 0; i < len && c->outn < c->want; i++)
                c->out[c->outn++] = c->e[off + i];
            off += len;
        } else if (op == 1) { /* linear: from the previous value to y1 in len steps */
            if (off >= c->n)
                return rf_err_set(c->err, RF_EFORMAT, "segmented LUT: linear segment at %zu runs past the data", at);
            if (c->outn == 0)
                return rf_err_set(c->err, RF_EFORMAT, "segmented LUT: the first segment is linear");
            double y0 = c->out[c->outn - 1], y1 = c->e[off++];
            if (y0 == y1 || len == 1) {
                for (unsigned i = 0; i < len && c->outn < c->want; i++)
                    c->out[c->outn++] = (uint16_t)y1;
            } else if (len > 1) {
                /* numpy.linspace(y0 + step, y1, len) rounded half to even, as pydicom */
                double step = (y1 - y0) / len, start = y0 + step;
                double d = (y1 - start) / (len - 1);
                for (unsigned i = 0; i < len && c->outn < c->want; i++) {
                    double v = i + 1 == len ? y1 : (double)i * d + start;
                    v = nearbyint(v);
                    c->out[c->outn++] = (uint16_t)(v < 0 ? 0 : v > 65535 ? 65535 : v);
                }
            }
        } else if (op == 2) { /* indirect: len segments copied from a byte offset */
            if (c->outn == 0)
                return rf_err_set(c->err, RF_EFORMAT, "segmented LUT: the first segment is indirect");
            if (depth > 0)
                return rf_err_set(c->err, RF_EFORMAT, "segmented LUT: indirect segment at %zu inside an indirect copy",
                                  at);
            size_t words = c->bytes == 1 ? 4 : 2;
            if (words > c->n - off)
                return rf_err_set(c->err, RF_EFORMAT, "segmented LUT: indirect segment at %zu runs past the data", at);
            uint32_t byte_off;
            const uint16_t *o = c->e + off;
            if (c->bytes == 2)
                byte_off = (uint32_t)o[0] | (uint32_t)o[1] << 16;
            else if (!c->big_endian)
                byte_off = (uint32_t)o[0] | (uint32_t)o[1] << 8 | (uint32_t)o[2] << 16 | (uint32_t)o[3] << 24;
            else
                byte_off = (uint32_t)o[1] | (uint32_t)o[0] << 8 | (uint32_t)o[3] << 16 | (uint32_t)o[2] << 24;
            off += words;
            if (byte_off % (uint32_t)c->bytes || byte_off / (uint32_t)c->bytes >= c->n)
                return rf_err_set(c->err, RF_EFORMAT, "segmented LUT: indirect segment at %zu points to byte %u, "
                                  "outside the data", at, byte_off);
            if (len) {
                int rc = seg_expand(c, byte_off / (uint32_t)c->bytes, (long)len, depth + 1);
                if (rc)
                    return rc;
            }
        } else {
            return rf_err_set(c->err, RF_EFORMAT, "segmented LUT: unknown segment type %u at %zu", op, at);
        }
        if (max_segments && ++done == max_segments)
            break;
    }
    return RF_OK;
}

static int expand_lut(const rf_dicom_lut *lut, int big_endian, uint16_t **out, rf_err *err)
{
    *out = NULL;
    if (!lut->data || lut->entries <= 0 || lut->entries > 65536 || lut->data_count <= 0)
        return rf_err_set(err, RF_EFORMAT, "LUT has %d entries and %d values", lut->entries, lut->data_count);
    uint16_t *v = malloc((size_t)lut->entries * sizeof *v);
    if (!v)
        return rf_err_set(err, RF_ENOMEM, "out of memory for a LUT of %d entries", lut->entries);
    if (!lut->segmented) {
        if (lut->data_count < lut->entries) {
            free(v);
            return rf_err_set(err, RF_EFORMAT, "LUT has %d entries but %d values", lut->entries, lut->data_count);
        }
        memcpy(v, lut->data, (size_t)lut->entries * sizeof *v);
        *out = v;
        return RF_OK;
    }
    /* 8-bit entries: the segment words are bytes in stream order (low byte
     * first in little-endian files), as pydicom and PS3.6's palettes have them */
    seg_ctx c = {0};
    uint16_t *bytes = NULL;
    c.bytes = lut->bits <= 8 ? 1 : 2;
    c.big_endian = big_endian;
    if (c.bytes == 1) {
        bytes = malloc((size_t)lut->data_count * 2 * sizeof *bytes);
        if (!bytes) {
            free(v);
            return rf_err_set(err, RF_ENOMEM, "out of memory for a segmented LUT");
        }
        for (int i = 0; i < lut->data_count; i++) {
            uint16_t w = lut->data[i];
            bytes[2 * i] = big_endian ? w >> 8 : w & 0xff;
            bytes[2 * i + 1] = big_endian ? w & 0xff : w >> 8;
        }
        c.e = bytes;
        c.n = (size_t)lut->data_count * 2;
    } else {
        c.e = lut->data;
        c.n = (size_t)lut->data_count;
    }
    c.out = v;
    c.want = (size_t)lut->entries;
    c.err = err;
    int rc = seg_expand(&c, 0, 0, 0);
    free(bytes);
    if (!rc && c.outn < c.want)
        rc = rf_err_set(err, RF_EFORMAT, "segmented LUT expands to %zu values, its descriptor says %d", c.outn,
                        lut->entries);
    if (rc) {
        free(v);
        return rc;
    }
    *out = v;
    return RF_OK;
}

int rf_render_expand_lut(const rf_dicom_lut *lut, uint16_t **out, rf_err *err)
{
    return expand_lut(lut, 0, out, err);
}

/* What a LUT's largest entry stands for: 2^bits - 1, or 65535 when an entry
 * exceeds that (8-bit descriptors over 16-bit data, a common mistake). */
static double lut_scale(const uint16_t *v, int n, int bits)
{
    double full = bits >= 1 && bits <= 16 ? (double)((1u << bits) - 1) : 65535.0;
    for (int i = 0; i < n; i++)
        if (v[i] > full)
            return 65535.0;
    return full;
}

/* ---- VOI ---- */

typedef struct voi {
    rf_voi_applied kind;
    rf_voi_function fn;
    double center, width; /* as given */
    double lo, hi;        /* automatic */
    const rf_dicom_lut *lut;
    double lut_scale;
} voi;

static int function_of(const rf_dicom_image *img, rf_voi_function f, rf_voi_function *out, rf_err *err)
{
    if (f == RF_VOI_FN_LINEAR || f == RF_VOI_FN_LINEAR_EXACT || f == RF_VOI_FN_SIGMOID) {
        *out = f;
        return RF_OK;
    }
    if (f != RF_VOI_FN_FILE)
        return rf_err_set(err, RF_EINVAL, "VOI LUT function %d is not one of rf_voi_function", (int)f);
    const char *s = img->display.voi_lut_function;
    if (same_word(s, "") || same_word(s, "LINEAR"))
        *out = RF_VOI_FN_LINEAR;
    else if (same_word(s, "LINEAR_EXACT"))
        *out = RF_VOI_FN_LINEAR_EXACT;
    else if (same_word(s, "SIGMOID"))
        *out = RF_VOI_FN_SIGMOID;
    else
        return rf_err_set(err, RF_EUNSUP, "VOILUTFunction '%s' is not LINEAR, LINEAR_EXACT or SIGMOID", s);
    return RF_OK;
}

static int check_window(double center, double width, rf_voi_function fn, rf_err *err)
{
    if (!isfinite(center) || !isfinite(width))
        return rf_err_set(err, RF_EINVAL, "window center %g / width %g is not a finite number", center, width);
    if (fn == RF_VOI_FN_LINEAR && !(width >= 1))
        return rf_err_set(err, RF_EINVAL, "window width %g is less than 1 (LINEAR)", width);
    if (fn != RF_VOI_FN_LINEAR && !(width > 0))
        return rf_err_set(err, RF_EINVAL, "window width %g is not positive (%s)", width,
                          fn == RF_VOI_FN_SIGMOID ? "SIGMOID" : "LINEAR_EXACT");
    return RF_OK;
}

typedef struct valcount {
    double v;
    uint64_t n;
} valcount;

static int cmp_valcount(const void *a, const void *b)
{
    double x = ((const valcount *)a)->v, y = ((const valcount *)b)->v;
    return (x > y) - (x < y);
}

/* The k-th smallest (0-based) of the sorted (value, count) runs. */
static double kth(const valcount *vc, size_t nvc, uint64_t k)
{
    uint64_t seen = 0;
    for (size_t i = 0; i < nvc; i++) {
        seen += vc[i].n;
        if (k < seen)
            return vc[i].v;
    }
    return vc[nvc - 1].v;
}

/* numpy.percentile(a, p) with the default "linear" method (numpy 1.24's
 * virtual index and _lerp arithmetic), over n sorted values given as runs. */
static double percentile(const valcount *vc, size_t nvc, uint64_t n, double p)
{
    double q = p / 100;
    double virt = (double)n * q + (1 + q * (1 - 1 - 1)) - 1;
    double prev = floor(virt);
    if (prev < 0)
        prev = 0;
    if (prev > (double)(n - 1))
        prev = (double)(n - 1);
    double t = virt - prev;
    uint64_t i0 = (uint64_t)prev, i1 = i0 + 1 < n ? i0 + 1 : n - 1;
    double a = kth(vc, nvc, i0), b = kth(vc, nvc, i1);
    if (t <= 0)
        return a;
    double diff = b - a;
    return t >= 0.5 ? b - diff * (1 - t) : a + diff * t;
}

/* The automatic window's percentiles over the frame's non-padding modality
 * values. Up to 16-bit samples: a histogram of stored values (exact, 512 KiB
 * whatever the frame size); 32-bit: the values sorted. */
static int auto_window(const frame_src *src, const modality *m, const padding *pad, double *lo, double *hi,
                       rf_err *err)
{
    valcount *vc = NULL;
    size_t nvc = 0;
    uint64_t n = 0;
    if (src->bytes <= 2) {
        size_t bins = src->bytes == 1 ? 256 : 65536;
        int64_t base = src->is_signed ? (int64_t)bins / 2 : 0;
        uint64_t *hist = calloc(bins, sizeof *hist);
        if (!hist)
            return rf_err_set(err, RF_ENOMEM, "out of memory for a histogram");
        for (size_t i = 0; i < src->npix; i++) {
            int64_t s = sample(src, i);
            if (!is_padding(pad, s))
                hist[(size_t)(s + base)]++;
        }
        vc = malloc(bins * sizeof *vc);
        if (!vc) {
            free(hist);
            return rf_err_set(err, RF_ENOMEM, "out of memory for a histogram");
        }
        for (size_t b = 0; b < bins; b++)
            if (hist[b]) {
                vc[nvc].v = modality_value(m, (int64_t)b - base);
                vc[nvc++].n = hist[b];
                n += hist[b];
            }
        free(hist);
    } else {
        vc = malloc((src->npix ? src->npix : 1) * sizeof *vc);
        if (!vc)
            return rf_err_set(err, RF_ENOMEM, "out of memory for %zu values", src->npix);
        for (size_t i = 0; i < src->npix; i++) {
            int64_t s = sample(src, i);
            if (!is_padding(pad, s)) {
                vc[nvc].v = modality_value(m, s);
                vc[nvc++].n = 1;
            }
        }
        n = nvc;
    }
    if (n == 0) {
        *lo = *hi = 0;
    } else {
        /* sorting the runs by modality value also handles negative slopes and non-monotonic LUTs */
        qsort(vc, nvc, sizeof *vc, cmp_valcount);
        *lo = percentile(vc, nvc, n, RF_AUTO_WINDOW_LOW_PCT);
        *hi = percentile(vc, nvc, n, RF_AUTO_WINDOW_HIGH_PCT);
    }
    free(vc);
    return RF_OK;
}

static int voi_of(const rf_dicom_image *img, const rf_render_opts *o, const frame_src *src, const modality *m,
                  const padding *pad, voi *v, rf_err *err)
{
    const rf_dicom_display *d = &img->display;
    rf_render_opts def = {RF_VOI_DEFAULT, 0, 0, 0, RF_VOI_FN_FILE};
    if (!o)
        o = &def;
    memset(v, 0, sizeof *v);
    rf_voi_mode mode = o->voi;
    int index = 0;
    switch (mode) {
    case RF_VOI_DEFAULT:
        mode = d->nwindows > 0 ? RF_VOI_FILE_WINDOW : d->voi_lut.data ? RF_VOI_LUT : RF_VOI_AUTO;
        break;
    case RF_VOI_FILE_WINDOW:
        index = o->window_index;
        if (index < 0 || index >= d->nwindows)
            return rf_err_set(err, RF_EINVAL, "window %d asked for; the file has %d", index, d->nwindows);
        break;
    case RF_VOI_EXPLICIT:
    case RF_VOI_AUTO:
        break;
    case RF_VOI_LUT:
        if (!d->voi_lut.data)
            return rf_err_set(err, RF_EINVAL, "VOI LUT asked for; the file has none");
        break;
    default:
        return rf_err_set(err, RF_EINVAL, "VOI mode %d is not one of rf_voi_mode", (int)mode);
    }
    if (mode == RF_VOI_FILE_WINDOW || mode == RF_VOI_EXPLICIT) {
        v->kind = RF_VOI_APPLIED_WINDOW;
        v->center = mode == RF_VOI_EXPLICIT ? o->center : d->window_center[index];
        v->width = mode == RF_VOI_EXPLICIT ? o->width : d->window_width[index];
        int rc = function_of(img, o->function, &v->fn, err);
        if (!rc)
            rc = check_window(v->center, v->width, v->fn, err);
        return rc;
    }
    if (mode == RF_VOI_LUT) {
        int rc = lut_usable(&d->voi_lut, "VOI LUT", err);
        if (rc)
            return rc;
        v->kind = RF_VOI_APPLIED_LUT;
        v->lut = &d->voi_lut;
        v->lut_scale = lut_scale(d->voi_lut.data, d->voi_lut.entries, d->voi_lut.bits);
        return RF_OK;
    }
    v->kind = RF_VOI_APPLIED_AUTO;
    v->fn = RF_VOI_FN_LINEAR_EXACT;
    int rc = auto_window(src, m, pad, &v->lo, &v->hi, err);
    v->center = (v->lo + v->hi) / 2;
    v->width = v->hi - v->lo;
    return rc;
}

/* Modality value -> [0, 1], as pydicom's apply_windowing / apply_voi with
 * its output range mapped to [0, 1]. */
static inline double voi_apply(const voi *v, double x)
{
    switch (v->kind) {
    case RF_VOI_APPLIED_LUT:
        return v->lut->data[lut_index(v->lut, x)] / v->lut_scale;
    case RF_VOI_APPLIED_AUTO:
        if (!(v->hi > v->lo) || x <= v->lo)
            return 0;
        if (x >= v->hi)
            return 1;
        return (x - v->lo) / (v->hi - v->lo);
    default:
        break;
    }
    double c = v->center, w = v->width;
    if (v->fn == RF_VOI_FN_SIGMOID)
        return 1 / (1 + exp(-4 * (x - c) / w));
    if (v->fn == RF_VOI_FN_LINEAR) {
        c -= 0.5;
        w -= 1;
    }
    if (x <= c - w / 2)
        return 0;
    if (x > c + w / 2)
        return 1;
    return (x - c) / w + 0.5;
}

/* ---- display ---- */

static int render_palette(const rf_dicom_image *img, const frame_src *src, float *out, rf_err *err)
{
    int big_endian = strcmp(img->transfer_syntax, "1.2.840.10008.1.2.2") == 0;
    static const char *const names[3] = {"red", "green", "blue"};
    uint16_t *pal[3] = {NULL, NULL, NULL};
    double scale[3];
    int rc = RF_OK;
    for (int k = 0; k < 3 && !rc; k++) {
        const rf_dicom_lut *l = &img->display.palette[k];
        if (!l->data) {
            rc = rf_err_set(err, RF_EFORMAT, "PALETTE COLOR without a %s palette", names[k]);
            break;
        }
        rc = expand_lut(l, big_endian, &pal[k], err);
        if (rc && err) {
            char msg[RF_ERR_MAX];
            snprintf(msg, sizeof msg, "%s", err->msg);
            rf_err_set(err, rc, "%s palette: %s", names[k], msg);
        } else if (!rc) {
            scale[k] = lut_scale(pal[k], l->entries, l->bits);
        }
    }
    if (!rc) {
        for (size_t i = 0; i < src->npix; i++) {
            double s = (double)sample(src, i);
            for (int k = 0; k < 3; k++) {
                const rf_dicom_lut *l = &img->display.palette[k];
                out[3 * i + (size_t)k] = (float)(pal[k][lut_index(l, s)] / scale[k]);
            }
        }
    }
    for (int k = 0; k < 3; k++)
        free(pal[k]);
    return rc;
}

int rf_render_display(const rf_dicom_image *img, int frame, const rf_render_opts *opts, float *out, uint8_t *mask,
                      rf_render_info *info, rf_err *err)
{
    frame_src src;
    modality m;
    int rc = check_image(img, frame, &src, err);
    if (!rc)
        rc = modality_of(img, &m, err);
    if (rc)
        return rc;
    image_kind kind = kind_of(img);
    rf_render_info inf;
    memset(&inf, 0, sizeof inf);
    if (mask)
        memset(mask, 0, src.npix);
    if (kind == KIND_RGB) {
        /* stored values over their range (YBR_* arrive as RGB) */
        double full = img->bits_stored >= 1 && img->bits_stored <= 32 ? ldexp(1, img->bits_stored) - 1
                                                                        : ldexp(1, 8 * src.bytes) - 1;
        size_t n = src.npix * 3;
        for (size_t i = 0; i < n; i++) {
            double v = (double)sample(&src, i) / full;
            out[i] = (float)(v < 0 ? 0 : v > 1 ? 1 : v);
        }
    } else if (kind == KIND_PALETTE) {
        rc = render_palette(img, &src, out, err);
    } else {
        padding pad = padding_of(img);
        voi v;
        rc = voi_of(img, opts, &src, &m, &pad, &v, err);
        if (rc)
            return rc;
        int inv = kind == KIND_GRAY_INVERTED;
        for (size_t i = 0; i < src.npix; i++) {
            int64_t s = sample(&src, i);
            if (is_padding(&pad, s)) {
                out[i] = 0;
                inf.padding++;
                if (mask)
                    mask[i] = 1;
                continue;
            }
            double y = voi_apply(&v, modality_value(&m, s));
            out[i] = (float)(inv ? 1 - y : y);
        }
        inf.voi = v.kind;
        inf.function = v.kind == RF_VOI_APPLIED_LUT ? RF_VOI_FN_FILE : v.fn;
        inf.center = v.center;
        inf.width = v.width;
        inf.auto_low = v.lo;
        inf.auto_high = v.hi;
        inf.inverted = inv;
    }
    if (!rc && info)
        *info = inf;
    return rc;
}

int rf_render_display_int(const rf_dicom_image *img, int frame, const rf_render_opts *opts, int bits, void *out,
                          rf_render_info *info, rf_err *err)
{
    if (bits != 8 && bits != 16)
        return rf_err_set(err, RF_EINVAL, "output bits %d is not 8 or 16", bits);
    frame_src src;
    int rc = check_image(img, frame, &src, err);
    if (rc)
        return rc;
    size_t n = src.npix * (size_t)rf_render_channels(img);
    float *f = malloc(n * sizeof *f);
    if (!f)
        return rf_err_set(err, RF_ENOMEM, "out of memory for a frame of %zu values", n);
    rc = rf_render_display(img, frame, opts, f, NULL, info, err);
    if (!rc) {
        double full = bits == 8 ? 255.0 : 65535.0;
        for (size_t i = 0; i < n; i++) {
            double d = f[i];
            d = d > 0 ? (d < 1 ? d : 1) : 0; /* NaN -> 0 */
            unsigned q = (unsigned)floor(d * full + 0.5);
            if (bits == 8)
                ((uint8_t *)out)[i] = (uint8_t)q;
            else
                ((uint16_t *)out)[i] = (uint16_t)q;
        }
    }
    free(f);
    return rc;
}
