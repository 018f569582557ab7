/*
 * Internals shared by the result writers (the report/ sources): a growable byte
 * buffer, PNG encoding to memory (libpng), base64, the colormaps, the
 * bitmap font of the overlay legends, and the checks every writer runs on a
 * result before writing anything (finite numbers, indices and spans in
 * range), so that a bad result is refused with one line instead of written.
 */
#ifndef RADFUSE_REPORT_REPORT_H
#define RADFUSE_REPORT_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "radfuse/result.h"

/* ---- byte buffer ---- */

/* Appends never fail loudly: the first failed allocation sets oom, later
 * appends do nothing, and the writer checks oom once at the end. */
typedef struct rf_buf {
    char *p;
    size_t n, cap;
    int oom;
} rf_buf;

void rf_buf_put(rf_buf *b, const void *data, size_t n);
void rf_buf_puts(rf_buf *b, const char *s);
void rf_buf_printf(rf_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* data as base64 (RFC 4648, padded, no line breaks). */
void rf_buf_base64(rf_buf *b, const void *data, size_t n);
void rf_buf_free(rf_buf *b);

/* ---- JSON numbers ---- */

/* A cJSON number node that reads back as exactly v (the shortest of 15, 16
 * and 17 significant digits that does; cJSON's own printing stops at 15
 * when the difference is within an epsilon), or at float precision for
 * rf_json_numf. v must be finite. NULL when out of memory. */
struct cJSON;
struct cJSON *rf_json_num(double v);
struct cJSON *rf_json_numf(float v);

/* ---- PNG ---- */

/* A PNG (channels 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA) of w x h pixels,
 * rows packed, 8 or 16 bits per sample (16: big-endian, as PNG stores them),
 * into out (reset first); no text chunks or other metadata. */
int rf_png_encode(const uint8_t *px, int w, int h, int channels, int bits, rf_buf *out, rf_err *err);

/* ---- colormaps ---- */

typedef struct rf_colormap {
    const char *name;
    uint8_t rgb[256][3]; /* matplotlib's table, each channel round(255 * value) */
} rf_colormap;

/* "viridis" (also for NULL) or "inferno"; RF_EINVAL for others. */
int rf_colormap_get(const char *name, rf_colormap *cm, rf_err *err);
/* The entry for v in [0, 1]: index round(255 * v). */
const uint8_t *rf_colormap_at(const rf_colormap *cm, float v);

/* ---- overlays ---- */

/* The legend strip below each overlay image: 34 pixels tall per font scale,
 * the scale being cols / 400 clamped to [1, 6] (docs/result-schema.md). */
int rf_overlay_legend_scale(int cols);
int rf_overlay_legend_height(int cols);
/* The blend of one pixel: gray where v < floor, else the colormap entry of v
 * over gray at opacity alpha * (v - floor) / (1 - floor), rounded. */
void rf_overlay_blend(uint8_t gray, float v, const rf_colormap *cm, float alpha, float floor, uint8_t rgb[3]);

/* ---- bitmap font (5 x 7 glyphs in 6 x 8 cells, printable ASCII) ---- */

#define RF_FONT_W 6 /* cell width, one column of spacing included */
#define RF_FONT_H 7

/* Draws text at (x, y) (top left) scaled by s into an RGB image of w x h,
 * clipped to it; bytes outside printable ASCII are drawn as '?' (one per
 * UTF-8 character). Returns the width drawn in pixels. */
int rf_font_draw(uint8_t *rgb, int w, int h, int x, int y, int s, const char *text, const uint8_t color[3]);
/* The width rf_font_draw would draw. */
int rf_font_width(const char *text, int s);

/* ---- checks ---- */

/* Every number finite and in range (probabilities, thresholds, weights, map
 * values), every index in range, images with maps used and displayed, spans
 * inside their note and on UTF-8 character boundaries. what names the output
 * in the error ("result.json: finding 2 (covid19): probability is nan"). */
int rf_result_check(const rf_read_result *r, const char *what, rf_err *err);

/* The last component of a path ("a/b/c.dcm" -> "c.dcm"). */
const char *rf_path_base(const char *path);
/* The path as outputs may show it: as given with include_phi, else its base name. */
const char *rf_result_shown_path(const rf_read_result *r, const char *path);

/* The indices of r's findings by decreasing probability (ties: as stored);
 * malloc'd, NULL when out of memory (or no findings: check nfindings). */
size_t *rf_result_order(const rf_read_result *r);

/* mkdir that succeeds when the directory exists. */
int rf_mkdir_p1(const char *dir, rf_err *err);

#endif
