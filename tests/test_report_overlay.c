/*
 * Overlay PNGs (report/overlay.c), decoded with libpng: one RGB file per
 * finding and used image, the image's size plus the legend strip (34 px per
 * font scale, scale cols / 400 in [1, 6]); where the map is 0 (or below the
 * floor) the pixel is the display image's gray; the peak pixel is the
 * colormap's top color over the gray at the given alpha; the legend's color
 * bar runs from the colormap's first to its last color and the title and
 * tick labels are drawn; no text chunks. The colors expected are
 * matplotlib's published viridis and inferno values (matplotlib 3.6.3,
 * _cm_listed.py) times 255, rounded, written here by hand: an independent
 * check of report/colormap_data.h.
 */
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "radfuse/result.h"
#include "report/report.h"
#include "tests/report_fixture.h"
#include "tests/testutil.h"

typedef struct decoded {
    int w, h, color_type, bit_depth, ntext;
    uint8_t *rgb;
} decoded;

/* Everything read after setjmp lives in *d or behind pointers. */
static int read_png_inner(FILE *f, png_structp png, png_infop info, decoded *d)
{
    if (setjmp(png_jmpbuf(png)))
        return -1;
    png_init_io(png, f);
    png_read_info(png, info);
    d->w = (int)png_get_image_width(png, info);
    d->h = (int)png_get_image_height(png, info);
    d->color_type = png_get_color_type(png, info);
    d->bit_depth = png_get_bit_depth(png, info);
    if (d->color_type != PNG_COLOR_TYPE_RGB || d->bit_depth != 8)
        return -1;
    d->rgb = test_xmalloc((size_t)d->w * (size_t)d->h * 3);
    for (int y = 0; y < d->h; y++)
        png_read_row(png, d->rgb + (size_t)y * (size_t)d->w * 3, NULL);
    png_read_end(png, info);
    png_textp text;
    d->ntext = 0;
    png_get_text(png, info, &text, &d->ntext);
    return 0;
}

static int read_png(const char *path, decoded *d)
{
    memset(d, 0, sizeof *d);
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    int rc = read_png_inner(f, png, info, d);
    png_destroy_read_struct(&png, &info, NULL);
    fclose(f);
    if (rc) {
        free(d->rgb);
        d->rgb = NULL;
    }
    return rc;
}

static const uint8_t *px(const decoded *d, int y, int x)
{
    return d->rgb + ((size_t)y * (size_t)d->w + (size_t)x) * 3;
}

static int near(const uint8_t *p, int r, int g, int b, int tol)
{
    return abs(p[0] - r) <= tol && abs(p[1] - g) <= tol && abs(p[2] - b) <= tol;
}

/* matplotlib's entries 0, 64, 128, 191 and 255, times 255, rounded */
static const int viridis_ref[5][4] = {
    {0, 68, 1, 84}, {64, 59, 82, 139}, {128, 33, 145, 140}, {191, 92, 200, 99}, {255, 253, 231, 37}};
static const int inferno_ref[5][4] = {
    {0, 0, 0, 4}, {64, 87, 16, 110}, {128, 188, 55, 84}, {191, 249, 140, 10}, {255, 252, 255, 164}};

static void check_tables(void)
{
    rf_colormap v, i;
    rf_err e;
    CHECK(rf_colormap_get(NULL, &v, &e) == 0 && strcmp(v.name, "viridis") == 0);
    CHECK(rf_colormap_get("inferno", &i, &e) == 0);
    for (int k = 0; k < 5; k++) {
        const uint8_t *a = rf_colormap_at(&v, (float)viridis_ref[k][0] / 255);
        const uint8_t *b = rf_colormap_at(&i, (float)inferno_ref[k][0] / 255);
        CHECKF(near(a, viridis_ref[k][1], viridis_ref[k][2], viridis_ref[k][3], 0), "viridis[%d]", viridis_ref[k][0]);
        CHECKF(near(b, inferno_ref[k][1], inferno_ref[k][2], inferno_ref[k][3], 0), "inferno[%d]", inferno_ref[k][0]);
    }
    CHECK(rf_colormap_get("jet", &v, &e) == RF_EINVAL && strstr(e.msg, "jet"));
}

/*
 * Writes the overlays of a rows x cols read with opts and checks each file.
 * top: the colormap's last color; first: its first.
 */
static void check_case(int rows, int cols, const rf_overlay_opts *opts, const int first[3], const int top[3])
{
    float alpha = opts ? opts->alpha : 0.5f, floor = opts ? opts->floor : 0.2f;
    int scale = cols / 400 < 1 ? 1 : cols / 400 > 6 ? 6 : cols / 400;
    int legend = 34 * scale;
    char dir[256];
    test_tmpdir(dir, sizeof dir);
    rf_read_result r;
    fixture_build(&r, 0, rows, cols);
    rf_err e;
    int rc = rf_result_write_overlays(&r, dir, opts, &e);
    CHECKF(rc == 0, "write_overlays: %s", e.msg);
    if (rc) {
        rf_result_free(&r);
        return;
    }
    const uint8_t *gray = r.images[0].display;
    for (size_t fi = 0; fi < r.nfindings; fi++) {
        const rf_result_finding *f = &r.findings[fi];
        const rf_result_map *m = &f->maps[0];
        char want[128], path[512];
        snprintf(want, sizeof want, "overlays/%s_0.png", f->code);
        CHECKF(m->overlay && strcmp(m->overlay, want) == 0, "overlay path %s", m->overlay ? m->overlay : "(none)");
        snprintf(path, sizeof path, "%s/%s", dir, want);
        decoded d;
        CHECKF(read_png(path, &d) == 0, "%s: not an 8-bit RGB PNG", path);
        if (!d.rgb)
            continue;
        CHECKF(d.w == cols && d.h == rows + legend, "%s: %d x %d, want %d x %d", path, d.w, d.h, cols, rows + legend);
        CHECK(d.ntext == 0);
        if (d.w != cols || d.h != rows + legend) {
            free(d.rgb);
            continue;
        }
        /* the image area: gray below the floor (and where the map is 0), colored above it */
        long zero = 0, zero_bad = 0, low_bad = 0, colored = 0;
        for (int y = 0; y < rows; y++)
            for (int x = 0; x < cols; x++) {
                size_t i = (size_t)y * (size_t)cols + (size_t)x;
                float v = m->values[i];
                const uint8_t *p = px(&d, y, x);
                int g = gray[i];
                if (v == 0) {
                    zero++;
                    zero_bad += !near(p, g, g, g, 0);
                } else if (v < floor) {
                    low_bad += !near(p, g, g, g, 0);
                } else if (v > floor + 0.1f) {
                    colored += !near(p, g, g, g, 2);
                }
            }
        CHECKF(zero > rows * cols / 4, "%ld zero pixels", zero);
        CHECKF(zero_bad == 0, "%s: %ld pixels with map 0 are not the gray image", path, zero_bad);
        CHECKF(low_bad == 0, "%s: %ld pixels below the floor are not the gray image", path, low_bad);
        CHECKF(colored > 20, "%s: only %ld pixels above the floor are colored", path, colored);
        /* the peak: the top color over gray at alpha, rounded (+-1 for the rounding of the blend) */
        int g = gray[(size_t)m->peak_row * (size_t)cols + (size_t)m->peak_col];
        const uint8_t *p = px(&d, m->peak_row, m->peak_col);
        int want_rgb[3];
        for (int k = 0; k < 3; k++)
            want_rgb[k] = (int)lround(g * (1.0 - alpha) + top[k] * (double)alpha);
        CHECKF(near(p, want_rgb[0], want_rgb[1], want_rgb[2], 1), "%s: peak (%d, %d) is %d,%d,%d, want %d,%d,%d",
               path, m->peak_row, m->peak_col, p[0], p[1], p[2], want_rgb[0], want_rgb[1], want_rgb[2]);

        /* the legend: the bar's ends, white in the title and tick-label rows, the background elsewhere */
        int bar_y = rows + 17 * scale, x0 = 4 * scale, x1 = cols - 4 * scale - 1;
        CHECKF(near(px(&d, bar_y, x0), first[0], first[1], first[2], 0), "bar start %d,%d,%d", px(&d, bar_y, x0)[0],
               px(&d, bar_y, x0)[1], px(&d, bar_y, x0)[2]);
        CHECKF(near(px(&d, bar_y, x1), top[0], top[1], top[2], 0), "bar end %d,%d,%d", px(&d, bar_y, x1)[0],
               px(&d, bar_y, x1)[1], px(&d, bar_y, x1)[2]);
        long title_white = 0, label_white = 0;
        for (int y = rows + 3 * scale; y < rows + 10 * scale; y++)
            for (int x = 0; x < cols; x++)
                title_white += near(px(&d, y, x), 255, 255, 255, 0);
        for (int y = rows + 24 * scale; y < rows + 31 * scale; y++)
            for (int x = 0; x < cols; x++)
                label_white += near(px(&d, y, x), 255, 255, 255, 0);
        CHECKF(title_white > 40 * scale * scale, "title: %ld white pixels", title_white);
        CHECKF(label_white > 10 * scale * scale, "tick labels: %ld white pixels", label_white);
        /* between the title and the bar: background */
        CHECK(near(px(&d, rows + 11 * scale, cols / 2), 24, 24, 24, 0));
        free(d.rgb);
    }
    rf_result_free(&r);
}

int main(void)
{
    check_tables();
    static const int vfirst[3] = {68, 1, 84}, vtop[3] = {253, 231, 37};
    static const int ifirst[3] = {0, 0, 4}, itop[3] = {252, 255, 164};
    check_case(96, 80, NULL, vfirst, vtop); /* viridis, alpha 0.5, floor 0.2 */
    rf_overlay_opts inferno = {"inferno", 0.8f, 0.0f};
    check_case(600, 840, &inferno, ifirst, itop); /* legend scale 2 */
    rf_overlay_opts opaque = {"viridis", 1.0f, 0.5f};
    check_case(40, 1700, &opaque, vfirst, vtop); /* a wide strip: scale 4, the legend taller than the image */

    /* refusals */
    char dir[256];
    test_tmpdir(dir, sizeof dir);
    rf_read_result r;
    fixture_build(&r, 0, 32, 32);
    rf_err e;
    rf_overlay_opts bad = {"viridis", 1.5f, 0.2f};
    CHECK(rf_result_write_overlays(&r, dir, &bad, &e) == RF_EINVAL && strstr(e.msg, "alpha"));
    bad = (rf_overlay_opts){"magma", 0.5f, 0.2f};
    CHECK(rf_result_write_overlays(&r, dir, &bad, &e) == RF_EINVAL && strstr(e.msg, "magma"));
    r.findings[1].maps[0].values[7] = 1.5f;
    CHECK(rf_result_write_overlays(&r, dir, NULL, &e) == RF_EINVAL && strstr(e.msg, "pneumonia"));
    r.findings[1].maps[0].values[7] = 0;
    free(r.findings[2].code);
    r.findings[2].code = fix_strdup("covid19"); /* two findings, one file name */
    CHECK(rf_result_write_overlays(&r, dir, NULL, &e) == RF_EINVAL && strstr(e.msg, "share"));
    free(r.findings[2].code);
    r.findings[2].code = fix_strdup("../x y");
    CHECKF(rf_result_write_overlays(&r, dir, NULL, &e) == 0, "%s", e.msg);
    CHECKF(r.findings[2].maps[0].overlay && strcmp(r.findings[2].maps[0].overlay, "overlays/_._x_y_0.png") == 0,
           "sanitized name %s", r.findings[2].maps[0].overlay);
    rf_result_free(&r);
    return test_finish("test_report_overlay");
}
