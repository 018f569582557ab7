/* Internals of the preprocessing module shared by its files (not public). */
#ifndef RADFUSE_IMAGING_PREPROCESS_INTERNAL_H
#define RADFUSE_IMAGING_PREPROCESS_INTERNAL_H

#include "radfuse/preprocess.h"

/*
 * Resampling weights along one axis, for the outputs [first, first + count)
 * of an in_size -> out_size resize. Output i reads taps consecutive inputs
 * from start[i] with weights w[i * taps ...]; n[i] (<= taps) of them, from
 * start[i], are nonzero when the table was built without padding. Tables
 * built with pad8 have taps rounded up to a multiple of 8 (or in_size, if
 * smaller) and start moved so every read stays inside the input, so the dot
 * product needs no bounds checks or remainder loop.
 */
typedef struct preprocess_axis {
    int in_size, out_size, first, count;
    rf_preprocess_filter filter;
    int pad8;
    int taps;
    int *start;
    int *n;
    float *w;
} preprocess_axis;

int preprocess_axis_build(preprocess_axis *a, int in_size, int out_size, int first, int count,
                          rf_preprocess_filter filter, int pad8, rf_err *err);
void preprocess_axis_free(preprocess_axis *a);
/* Whether a already holds the table these arguments would build. */
int preprocess_axis_matches(const preprocess_axis *a, int in_size, int out_size, int first, int count,
                            rf_preprocess_filter filter, int pad8);

/* dst[0..len) = sum over k < n of w[k] * (src + (start + k) * stride)[0..len) */
void preprocess_vpass(const float *src, size_t stride, int start, int n, const float *w, int len, float *dst);
/* dst[i] = dot(w[i], src[start[i] ..]) for the outputs of a (pad8 table) */
void preprocess_hpass(const float *src, const preprocess_axis *a, float *dst);

#endif
