/*
 * radfuse preprocessing: a rendered image (float32, H x W x C interleaved,
 * C = 1 or 3, values in [0, 1]) to a model's input tensor (float32, CHW at the
 * model's size): anti-aliased resampling, aspect handling (center crop, pad to
 * the model's shape, or stretch), gray <-> RGB, and normalization by the
 * model's mean and std, configured by hand or from a Hugging Face
 * preprocessor_config.json or a timm pretrained_cfg.
 *
 * Resampling is separable convolution with Pillow's filters and Pillow's
 * arithmetic (the kernel's support grows with the downscale factor, so a
 * downscale is low-passed to the new Nyquist); results equal Pillow's
 * Image.resize on mode 'F' images to float rounding. docs/preprocess.md has
 * the measurement that chose this over a frequency-domain (FFTW) resampler.
 *
 * Conventions as in runtime.h: fallible functions return 0 or an RF_E* code
 * and fill rf_err with one line naming the input (the config file and key,
 * where there is one) and the problem; nothing calls exit() or keeps global
 * state.
 */
#ifndef RADFUSE_PREPROCESS_H
#define RADFUSE_PREPROCESS_H

#include "radfuse/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Resampling filters: Pillow's, with Pillow's supports (in input pixels at
 * scale 1; multiplied by the downscale factor when shrinking). */
typedef enum rf_preprocess_filter {
    RF_PREPROCESS_LANCZOS3 = 0, /* sinc windowed by sinc, support 3 (Pillow LANCZOS) */
    RF_PREPROCESS_BICUBIC,      /* cubic convolution a = -0.5, support 2 (Pillow BICUBIC) */
    RF_PREPROCESS_BILINEAR,     /* triangle, support 1 (Pillow BILINEAR) */
    RF_PREPROCESS_HAMMING,      /* Hamming-windowed sinc, support 1 (Pillow HAMMING) */
    RF_PREPROCESS_BOX,          /* box, support 0.5: area average when shrinking (Pillow BOX) */
    RF_PREPROCESS_NEAREST,      /* nearest neighbour, not anti-aliased (Pillow NEAREST) */
    RF_PREPROCESS_FILTER_COUNT
} rf_preprocess_filter;

/* How the image's aspect ratio meets the model's. Each mode first resamples
 * the image to a "resized" size, then takes the output window from its center
 * (cropping where it is larger, padding with pad_value where it is smaller). */
typedef enum rf_preprocess_aspect {
    /* shortest edge to the resize size (aspect kept), then center crop: HF
     * {shortest_edge} + crop_size, timm crop_mode "center" (crop_pct) */
    RF_PREPROCESS_CROP = 0,
    /* longest edge to fit the resize size (aspect kept), then pad: letterbox,
     * timm crop_mode "border" */
    RF_PREPROCESS_PAD,
    /* both edges to the resize size (aspect changed): HF {height, width},
     * timm crop_mode "squash" */
    RF_PREPROCESS_STRETCH,
    /* no resampling, only the center crop or pad: HF do_resize = false */
    RF_PREPROCESS_NONE,
} rf_preprocess_aspect;

/* Where an odd remainder goes when centering (libraries differ by a pixel). */
typedef enum rf_preprocess_center {
    /* crop offset floor((resized - out) / 2), also when negative (padding):
     * transformers' center_crop */
    RF_PREPROCESS_CENTER_FLOOR = 0,
    /* crop offset round-half-even((resized - out) / 2) and padding
     * floor((out - resized) / 2) before the image: torchvision's CenterCrop
     * and timm's CenterCropOrPad, as timm's eval transforms use them */
    RF_PREPROCESS_CENTER_ROUND,
} rf_preprocess_center;

#define RF_PREPROCESS_MAX_SIDE 8192        /* output, resize and resize_max sides */
#define RF_PREPROCESS_MAX_INPUT_SIDE 65535 /* input sides (DICOM's Rows/Columns limit) */

/*
 * What a model wants. Output element (c, y, x) is
 *   (v * input_scale - mean[c]) / std[c]
 * where v is the resampled input (gray replicated to 3 channels, or RGB
 * reduced to gray with ITU-R 601 luma, 0.299 R + 0.587 G + 0.114 B, as
 * Pillow's convert("L") does) or, outside the resized image, pad_value[c].
 */
typedef struct rf_preprocess_config {
    int height, width;  /* output size, 1..RF_PREPROCESS_MAX_SIDE */
    int channels;       /* output channels: 1 or 3 */
    rf_preprocess_aspect aspect;
    /* the size the aspect mode resizes towards; 0 = height / width. CROP with
     * resize_height == resize_width == S scales the shortest edge to S and the
     * other to floor(S * long / short) (transformers, torchvision); with
     * unequal sizes it scales by min(in_h / resize_height, in_w /
     * resize_width) and rounds half to even (timm's ResizeKeepRatio). PAD
     * scales by the max of those ratios, rounding the same way. */
    int resize_height, resize_width;
    /* CROP only: when the long edge would exceed this, it becomes this and the
     * short edge floor(resize_max * short / long) (transformers'
     * longest_edge); 0 = no limit */
    int resize_max;
    rf_preprocess_filter filter;
    rf_preprocess_center center;
    float pad_value[3];  /* per output channel, in input units (0 = black) */
    /* factor on the [0, 1] input before mean/std: 1 when mean/std are in
     * [0, 1] units, 255 when they are in 8-bit units */
    float input_scale;
    float mean[3], std[3]; /* per output channel; std finite and nonzero */
} rf_preprocess_config;

/* Defaults: height x width, channels, CROP to the output size, Lanczos-3,
 * FLOOR centering, pad 0, input_scale 1, mean 0, std 1. */
void rf_preprocess_config_init(rf_preprocess_config *cfg, int height, int width, int channels);

/* RF_EINVAL with one line naming the first field out of range (sizes, enums,
 * channels, a std that is zero or not finite, non-finite means, pad values or
 * input_scale). Every other function checks the config this way first. */
int rf_preprocess_config_check(const rf_preprocess_config *cfg, rf_err *err);

/*
 * Fills cfg from a JSON file: a Hugging Face preprocessor_config.json (keys
 * size {height, width} | {shortest_edge[, longest_edge]} | integer,
 * crop_size, do_center_crop, do_resize, resample, do_rescale,
 * rescale_factor, do_normalize, image_mean, image_std), or a timm
 * pretrained_cfg, bare or inside a config.json's "pretrained_cfg" (keys
 * input_size [C, H, W], crop_pct, crop_mode center | squash | border,
 * interpolation, mean, std). Which one is decided by the keys present
 * (input_size or pretrained_cfg: timm; else HF). Missing optional keys take
 * the libraries' defaults (docs/preprocess.md lists them); a key of the wrong
 * type or range, a required key missing, an unsupported combination (a
 * shortest-edge resize without a crop, whose output size would depend on the
 * image) or a file over 1 MiB fails with one line naming path and key. cfg is
 * untouched on failure.
 */
int rf_preprocess_config_load(const char *path, rf_preprocess_config *cfg, rf_err *err);

/* Where an input image lands in the output: it is resampled to resized_h x
 * resized_w, and its pixel (0, 0) lands at output (top, left); negative
 * offsets crop, positive ones pad. */
typedef struct rf_preprocess_geom {
    int resized_h, resized_w;
    int top, left;
} rf_preprocess_geom;

/* The geometry cfg gives an in_h x in_w image (sides 1..RF_PREPROCESS_MAX_INPUT_SIDE);
 * RF_EINVAL when the config or the sizes are out of range. */
int rf_preprocess_geometry(const rf_preprocess_config *cfg, int in_h, int in_w, rf_preprocess_geom *g,
                           rf_err *err);

/* A reusable preprocessor: the config, a thread pool, and the resampling
 * weights of the last input size (so a series of same-size images computes
 * them once). Not safe to run from two threads at once. */
typedef struct rf_preprocessor rf_preprocessor;

/* threads: 0 = one per core, 1 = the calling thread only. */
int rf_preprocess_create(rf_preprocessor **out, const rf_preprocess_config *cfg, int threads, rf_err *err);
void rf_preprocess_destroy(rf_preprocessor *p);

/*
 * in: in_h x in_w x in_c floats (in_c 1 or 3, interleaved, row-major, sides
 * 1..RF_PREPROCESS_MAX_INPUT_SIDE, at most 2^31 samples); out:
 * channels x height x width floats, written completely. Values are not
 * clamped (Lanczos and bicubic overshoot a little at edges, as in Pillow);
 * NaN or infinite inputs spread to the outputs their kernels touch.
 * RF_EINVAL for bad arguments, RF_ENOMEM when working memory cannot be had
 * (five input rows, 5 * in_w * in_c floats, per thread, plus the weight
 * tables, about 6 * (in_h + in_w) + 8 * (height + width) floats).
 */
int rf_preprocess_run(rf_preprocessor *p, const float *in, int in_h, int in_w, int in_c, float *out,
                      rf_err *err);

/* rf_preprocess_create + run + destroy on the calling thread. */
int rf_preprocess_image(const rf_preprocess_config *cfg, const float *in, int in_h, int in_w, int in_c,
                        float *out, rf_err *err);

/*
 * Only the resampling: in (in_h x in_w x c interleaved) to out (c planes of
 * out_h x out_w), exactly what Pillow's Image.resize((out_w, out_h), filter)
 * computes on each channel as a mode 'F' image, to float rounding. Sides in
 * 1..RF_PREPROCESS_MAX_INPUT_SIDE (out_h, out_w: ..RF_PREPROCESS_MAX_SIDE).
 */
int rf_preprocess_resample(const float *in, int in_h, int in_w, int c, float *out, int out_h, int out_w,
                           rf_preprocess_filter filter, rf_err *err);

/* "lanczos3", "bicubic", ...; "?" for values out of range. */
const char *rf_preprocess_filter_name(rf_preprocess_filter f);

#ifdef __cplusplus
}
#endif
#endif
