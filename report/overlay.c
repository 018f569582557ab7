/*
 * Overlay PNGs (rf_result_write_overlays): per finding and used image, the
 * 8-bit display image with the saliency map blended over it in a
 * perceptually uniform colormap, and below it a legend strip (color bar
 * 0..1 with ticks, the finding's name and probability) drawn with the
 * built-in bitmap font. The geometry is the display image's, so a pixel of
 * the overlay is the pixel of the DICOM image at the same (row, col).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report/report.h"
#include "runtime/fileio.h"

#define OVERLAY_NAME_MAX 96

/* The file-name form of a finding code: [A-Za-z0-9._-] kept, others '_',
 * no leading dot, at most OVERLAY_NAME_MAX bytes. */
static void name_stem(const char *code, char *out)
{
    size_t k = 0;
    for (const char *s = code; *s && k < OVERLAY_NAME_MAX; s++) {
        char c = *s;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
                 (c == '.' && k > 0);
        out[k++] = ok ? c : '_';
    }
    out[k] = 0;
}

static void fill_rect(uint8_t *rgb, int w, int h, int x0, int y0, int x1, int y1, const uint8_t c[3])
{
    x0 = x0 < 0 ? 0 : x0;
    y0 = y0 < 0 ? 0 : y0;
    x1 = x1 > w ? w : x1;
    y1 = y1 > h ? h : y1;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++)
            memcpy(rgb + ((size_t)y * (size_t)w + (size_t)x) * 3, c, 3);
}

/*
 * The legend strip, rows [top, top + 34 s) of the image: a title line at
 * 3 s, the color bar at 13 s..21 s (full colormap, left 0, right 1), tick
 * marks to 23 s and their labels at 24 s..31 s.
 */
static void draw_legend(uint8_t *rgb, int w, int h, int top, const rf_colormap *cm, const rf_result_finding *f)
{
    static const uint8_t bg[3] = {24, 24, 24}, fg[3] = {255, 255, 255};
    int s = rf_overlay_legend_scale(w);
    fill_rect(rgb, w, h, 0, top, w, h, bg);
    char title[256];
    snprintf(title, sizeof title, "%s  p=%.3f  %s (threshold %.3f)", f->display ? f->display : f->code,
             f->probability, f->positive ? "positive" : "negative", f->threshold);
    rf_font_draw(rgb, w, h, 4 * s, top + 3 * s, s, title, fg);

    int bx0 = 4 * s, bx1 = w - 4 * s;
    if (bx1 - bx0 < 16) { /* a sliver of an image: the bar takes the whole width */
        bx0 = 0;
        bx1 = w;
    }
    int span = bx1 - 1 - bx0 > 0 ? bx1 - 1 - bx0 : 1;
    for (int x = bx0; x < bx1; x++) {
        float v = (float)(x - bx0) / (float)span;
        fill_rect(rgb, w, h, x, top + 13 * s, x + 1, top + 21 * s, rf_colormap_at(cm, v > 1 ? 1 : v));
    }
    /* five ticks when their labels fit apart, else three, else the ends */
    static const char *labels5[] = {"0", "0.25", "0.5", "0.75", "1"};
    static const char *labels3[] = {"0", "0.5", "1"};
    static const char *labels2[] = {"0", "1"};
    int lw = rf_font_width("0.75", s) + 2 * s;
    const char *const *labels = labels5;
    int nl = 5;
    if (span < 4 * lw) {
        labels = span >= 2 * lw ? labels3 : labels2;
        nl = span >= 2 * lw ? 3 : 2;
    }
    for (int i = 0; i < nl; i++) {
        int x = bx0 + (int)((long)span * i / (nl - 1));
        fill_rect(rgb, w, h, x - (s - 1) / 2, top + 21 * s, x - (s - 1) / 2 + s, top + 23 * s, fg);
        int tw = rf_font_width(labels[i], s);
        int tx = x - tw / 2;
        tx = tx + tw > w ? w - tw : tx;
        tx = tx < 0 ? 0 : tx;
        rf_font_draw(rgb, w, h, tx, top + 24 * s, s, labels[i], fg);
    }
}

static int write_one(const rf_read_result *r, const rf_result_finding *f, const rf_result_map *map,
                     const rf_colormap *cm, float alpha, float floor, const char *path, rf_err *err)
{
    const rf_result_image *im = &r->images[map->image];
    int w = im->cols, rows = im->rows, h = rows + rf_overlay_legend_height(w);
    uint8_t *rgb = malloc((size_t)w * (size_t)h * 3);
    if (!rgb)
        return rf_err_set(err, RF_ENOMEM, "%s: out of memory for a %d x %d overlay", path, w, h);
    size_t n = (size_t)w * (size_t)rows;
    for (size_t i = 0; i < n; i++)
        rf_overlay_blend(im->display[i], map->values[i], cm, alpha, floor, rgb + 3 * i);
    draw_legend(rgb, w, h, rows, cm, f);
    rf_buf png = {0};
    rf_err e;
    int rc = rf_png_encode(rgb, w, h, 3, 8, &png, &e);
    free(rgb);
    if (rc)
        rc = rf_err_set(err, rc, "%s: %s", path, e.msg);
    else
        rc = rf_write_file_atomic(path, png.p, png.n, err);
    rf_buf_free(&png);
    return rc;
}

int rf_result_write_overlays(rf_read_result *r, const char *outdir, const rf_overlay_opts *opts, rf_err *err)
{
    rf_overlay_opts o = {NULL, 0.5f, 0.2f};
    if (opts)
        o = *opts;
    if (!(o.alpha >= 0 && o.alpha <= 1) || !(o.floor >= 0 && o.floor < 1))
        return rf_err_set(err, RF_EINVAL, "overlays: alpha %g must be in [0, 1] and floor %g in [0, 1)",
                          (double)o.alpha, (double)o.floor);
    rf_colormap cm;
    int rc = rf_colormap_get(o.colormap, &cm, err);
    if (rc)
        return rc;
    size_t dlen = strlen(outdir);
    char *dir = malloc(dlen + 16), *path = malloc(dlen + OVERLAY_NAME_MAX + 64);
    if (!dir || !path) {
        free(dir);
        free(path);
        return rf_err_set(err, RF_ENOMEM, "%s: out of memory", outdir);
    }
    snprintf(dir, dlen + 16, "%s/overlays", outdir);
    rc = rf_result_check(r, dir, err);
    int any = 0;
    for (size_t i = 0; i < r->nfindings; i++)
        any |= r->findings[i].nmaps > 0;
    if (!rc && any)
        rc = rf_mkdir_p1(dir, err);
    /* two codes that differ only in characters a file name cannot hold would
     * share a file: refuse rather than overwrite one finding with another */
    for (size_t i = 0; !rc && i < r->nfindings; i++) {
        char a[OVERLAY_NAME_MAX + 1], b[OVERLAY_NAME_MAX + 1];
        name_stem(r->findings[i].code, a);
        for (size_t j = 0; !rc && j < i; j++) {
            name_stem(r->findings[j].code, b);
            if (strcmp(a, b) == 0 && r->findings[i].nmaps && r->findings[j].nmaps)
                rc = rf_err_set(err, RF_EINVAL, "%s: findings %zu and %zu (%s, %s) would share the overlay name %s",
                                dir, j, i, r->findings[j].code, r->findings[i].code, a);
        }
    }
    for (size_t i = 0; !rc && i < r->nfindings; i++) {
        rf_result_finding *f = &r->findings[i];
        char stem[OVERLAY_NAME_MAX + 1];
        name_stem(f->code, stem);
        for (size_t m = 0; !rc && m < f->nmaps; m++) {
            rf_result_map *map = &f->maps[m];
            char rel[OVERLAY_NAME_MAX + 48];
            snprintf(rel, sizeof rel, "overlays/%s_%zu.png", stem, map->image);
            snprintf(path, dlen + OVERLAY_NAME_MAX + 64, "%s/%s", outdir, rel);
            rc = write_one(r, f, map, &cm, o.alpha, o.floor, path, err);
            if (!rc) {
                char *s = strdup(rel);
                if (!s) {
                    rc = rf_err_set(err, RF_ENOMEM, "%s: out of memory", path);
                    break;
                }
                free(map->overlay);
                map->overlay = s;
            }
        }
    }
    free(dir);
    free(path);
    return rc;
}
