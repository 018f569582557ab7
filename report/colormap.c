/*
 * Perceptually uniform colormaps for saliency overlays: matplotlib's viridis
 * (the default) and inferno, 256 entries each (report/colormap_data.h, made
 * by report/make_colormaps.py from matplotlib's published data), and the
 * blend of a map over the gray image.
 */
#include <math.h>
#include <string.h>

#include "report/colormap_data.h"
#include "report/report.h"

int rf_colormap_get(const char *name, rf_colormap *cm, rf_err *err)
{
    const float(*tab)[3];
    if (!name || strcmp(name, "viridis") == 0) {
        tab = rf_cm_viridis;
        cm->name = "viridis";
    } else if (strcmp(name, "inferno") == 0) {
        tab = rf_cm_inferno;
        cm->name = "inferno";
    } else {
        return rf_err_set(err, RF_EINVAL, "unknown colormap '%s' (viridis or inferno)", name);
    }
    for (int i = 0; i < 256; i++)
        for (int c = 0; c < 3; c++)
            cm->rgb[i][c] = (uint8_t)lrintf(tab[i][c] * 255.0f);
    return RF_OK;
}

const uint8_t *rf_colormap_at(const rf_colormap *cm, float v)
{
    long i = lrintf(v * 255.0f);
    return cm->rgb[i < 0 ? 0 : i > 255 ? 255 : i];
}

int rf_overlay_legend_scale(int cols)
{
    int s = cols / 400;
    return s < 1 ? 1 : s > 6 ? 6 : s;
}

int rf_overlay_legend_height(int cols)
{
    return 34 * rf_overlay_legend_scale(cols);
}

void rf_overlay_blend(uint8_t gray, float v, const rf_colormap *cm, float alpha, float floor, uint8_t rgb[3])
{
    if (!(v >= floor) || !(alpha > 0)) {
        rgb[0] = rgb[1] = rgb[2] = gray;
        return;
    }
    float a = floor < 1 ? alpha * (v - floor) / (1 - floor) : alpha;
    a = a < 0 ? 0 : a > 1 ? 1 : a;
    const uint8_t *c = rf_colormap_at(cm, v);
    for (int k = 0; k < 3; k++) {
        float o = (float)gray * (1 - a) + (float)c[k] * a;
        rgb[k] = (uint8_t)lrintf(o < 0 ? 0 : o > 255 ? 255 : o);
    }
}
