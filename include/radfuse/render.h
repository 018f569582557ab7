/*
 * radfuse render: from the stored values rf_dicom_read decodes to the values a
 * model or a screen wants, one frame at a time, in float32 (PS3.3 C.11 and
 * C.7.6.3 / C.7.9 for palettes).
 *
 *   modality values  stored value -> Modality LUT (Modality LUT Sequence, or
 *                    Rescale Slope/Intercept), for grayscale images; color
 *                    images give their stored values unchanged.
 *   displayed values modality value -> VOI (a window with its VOI LUT
 *                    Function, or the VOI LUT Sequence, or an automatic
 *                    window) -> [0, 1], 0 black; MONOCHROME1 inverted; padding
 *                    pixels 0. PALETTE COLOR through its palette and RGB
 *                    (YBR_* is RGB once decoded) scaled, both to [0, 1] per
 *                    channel.
 *
 * The rules, clamps and refusals are in docs/imaging.md ("Rendering"); the
 * reference they are tested against is pydicom 2.3.1's own implementation
 * (tests/data/make_render_expected.py). Conventions as in runtime.h: 0 or an
 * RF_E* code with one line in rf_err; no global state: every call stands alone
 * (a segmented palette is expanded per call; that is cheap beside a frame).
 */
#ifndef RADFUSE_RENDER_H
#define RADFUSE_RENDER_H

#include <stddef.h>
#include <stdint.h>

#include "radfuse/imaging.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Which VOI (values of interest) transformation the display render applies. */
typedef enum rf_voi_mode {
    RF_VOI_DEFAULT = 0,  /* the file's first window; else its VOI LUT; else automatic */
    RF_VOI_FILE_WINDOW,  /* the file's window number window_index (0-based) */
    RF_VOI_EXPLICIT,     /* center, width given here */
    RF_VOI_LUT,          /* the file's VOI LUT Sequence (first item) */
    RF_VOI_AUTO,         /* automatic window, whatever the file holds */
} rf_voi_mode;

/* VOI LUT Function (PS3.3 C.11.2.1.3) for windows. */
typedef enum rf_voi_function {
    RF_VOI_FN_FILE = 0,      /* the file's VOILUTFunction (LINEAR when absent) */
    RF_VOI_FN_LINEAR,        /* C.11.2.1.2.1: center - 0.5, width - 1; width >= 1 */
    RF_VOI_FN_LINEAR_EXACT,  /* C.11.2.1.3.2: width > 0 */
    RF_VOI_FN_SIGMOID,       /* C.11.2.1.3.1: width > 0 */
} rf_voi_function;

/*
 * The automatic window: the 0.5th and 99.5th percentiles (numpy's default
 * "linear" interpolation) of the frame's non-padding modality values, applied
 * as LINEAR_EXACT from the low percentile (0) to the high one (1). A frame
 * whose percentiles are equal (flat) renders 0 before MONOCHROME1 inversion.
 */
#define RF_AUTO_WINDOW_LOW_PCT 0.5
#define RF_AUTO_WINDOW_HIGH_PCT 99.5

typedef struct rf_render_opts {
    rf_voi_mode voi;
    int window_index;         /* RF_VOI_FILE_WINDOW */
    double center, width;     /* RF_VOI_EXPLICIT */
    rf_voi_function function; /* for file and explicit windows; automatic ones are LINEAR_EXACT */
} rf_render_opts;

/* What a display render did (optional output). */
typedef enum rf_voi_applied {
    RF_VOI_APPLIED_NONE = 0, /* color image: no VOI */
    RF_VOI_APPLIED_WINDOW,   /* a window from the file or the caller */
    RF_VOI_APPLIED_LUT,      /* the VOI LUT Sequence */
    RF_VOI_APPLIED_AUTO,     /* the automatic window */
} rf_voi_applied;

typedef struct rf_render_info {
    rf_voi_applied voi;
    rf_voi_function function; /* the one applied (windows only) */
    double center, width;     /* the window applied (RF_VOI_APPLIED_WINDOW / _AUTO), as given */
    double auto_low, auto_high; /* the automatic window's percentiles */
    int inverted;             /* MONOCHROME1 */
    size_t padding;           /* padding pixels in the frame */
} rf_render_info;

/* Channels of the display render: 3 for RGB, YBR_* (decoded to RGB) and
 * PALETTE COLOR, else 1. The modality render has img->out_samples channels. */
int rf_render_channels(const rf_dicom_image *img);

/*
 * Modality values of frame (0-based) into out[rows * columns * out_samples]
 * (interleaved). Grayscale: the Modality LUT Sequence when present (input
 * below the first mapped value -> first entry, above the last -> last entry),
 * else value * slope + intercept, else the stored value. Color and PALETTE
 * COLOR: the stored values as they are. mask (may be NULL) gets
 * rows * columns bytes, 1 where the pixel is padding (PixelPaddingValue, or
 * the range between it and PixelPaddingRangeLimit in either order; grayscale
 * only), else 0; padding pixels keep their modality value here.
 * Computed in double, stored as float32.
 */
int rf_render_modality(const rf_dicom_image *img, int frame, float *out, uint8_t *mask, rf_err *err);

/*
 * Displayed values of frame into out[rows * columns * rf_render_channels]
 * (interleaved), each in [0, 1]. opts may be NULL (RF_VOI_DEFAULT with the
 * file's function); VOI options do not apply to color images. mask as above;
 * padding pixels are 0 (black, after the MONOCHROME1 inversion). info may be
 * NULL.
 */
int rf_render_display(const rf_dicom_image *img, int frame, const rf_render_opts *opts, float *out, uint8_t *mask,
                      rf_render_info *info, rf_err *err);

/*
 * As rf_render_display, quantized for export: bits 8 gives uint8 values
 * floor(d * 255 + 0.5), bits 16 uint16 floor(d * 65535 + 0.5), d the
 * displayed value in [0, 1]; out is uint8_t[] or uint16_t[] (host order) of
 * rows * columns * rf_render_channels.
 */
int rf_render_display_int(const rf_dicom_image *img, int frame, const rf_render_opts *opts, int bits, void *out,
                          rf_render_info *info, rf_err *err);

/*
 * A palette (or any LUT) expanded to its entries: a plain LUT's data copied,
 * a segmented one's segments (PS3.3 C.7.9.2: discrete, linear, indirect)
 * expanded; the result has exactly lut->entries values (extra expanded values
 * are dropped, too few is an error). *out is malloc'd. Exposed for tests.
 */
int rf_render_expand_lut(const rf_dicom_lut *lut, uint16_t **out, rf_err *err);

#ifdef __cplusplus
}
#endif
#endif
