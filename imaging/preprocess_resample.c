/*
 * Separable resampling with Pillow's filters and Pillow's weight arithmetic
 * (libImaging/Resample.c, precompute_coeffs): weights in double, normalized
 * to sum 1 per output, then stored as float for the two passes.
 *
 * The passes are shaped for SIMD without -ffast-math: the vertical pass is a
 * sum of scaled input rows (independent lanes along x, no reassociation
 * needed), the horizontal pass a dot product over a zero-padded, fixed-length
 * window with 8 partial sums.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "imaging/preprocess_internal.h"

/* Pillow's filters, term for term, so the weights agree to the last bit of
 * double before they are rounded to float. */
static double box_filter(double x)
{
    return x > -0.5 && x <= 0.5 ? 1.0 : 0.0;
}

static double bilinear_filter(double x)
{
    x = fabs(x);
    return x < 1.0 ? 1.0 - x : 0.0;
}

static double hamming_filter(double x)
{
    x = fabs(x);
    if (x == 0.0)
        return 1.0;
    if (x >= 1.0)
        return 0.0;
    x = x * M_PI;
    return sin(x) / x * (0.54 + 0.46 * cos(x));
}

static double bicubic_filter(double x)
{
    const double a = -0.5;
    x = fabs(x);
    if (x < 1.0)
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0)
        return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

static double sinc_filter(double x)
{
    if (x == 0.0)
        return 1.0;
    x = x * M_PI;
    return sin(x) / x;
}

static double lanczos_filter(double x)
{
    if (-3.0 <= x && x < 3.0)
        return sinc_filter(x) * sinc_filter(x / 3);
    return 0.0;
}

typedef struct {
    double (*fn)(double);
    double support;
} filter_def;

static const filter_def filters[] = {
    [RF_PREPROCESS_LANCZOS3] = {lanczos_filter, 3.0},
    [RF_PREPROCESS_BICUBIC] = {bicubic_filter, 2.0},
    [RF_PREPROCESS_BILINEAR] = {bilinear_filter, 1.0},
    [RF_PREPROCESS_HAMMING] = {hamming_filter, 1.0},
    [RF_PREPROCESS_BOX] = {box_filter, 0.5},
};

void preprocess_axis_free(preprocess_axis *a)
{
    free(a->start);
    free(a->n);
    free(a->w);
    memset(a, 0, sizeof *a);
}

int preprocess_axis_matches(const preprocess_axis *a, int in_size, int out_size, int first, int count,
                            rf_preprocess_filter filter, int pad8)
{
    return a->w && a->in_size == in_size && a->out_size == out_size && a->first == first &&
           a->count == count && a->filter == filter && a->pad8 == pad8;
}

static int alloc_axis(preprocess_axis *a, int taps, rf_err *err)
{
    a->taps = taps;
    a->start = malloc((size_t)a->count * sizeof *a->start);
    a->n = malloc((size_t)a->count * sizeof *a->n);
    a->w = calloc((size_t)a->count * (size_t)taps, sizeof *a->w);
    if (!a->start || !a->n || !a->w) {
        preprocess_axis_free(a);
        return rf_err_set(err, RF_ENOMEM, "preprocess: cannot allocate resampling weights (%d x %d)",
                          a->count, taps);
    }
    return RF_OK;
}

int preprocess_axis_build(preprocess_axis *a, int in_size, int out_size, int first, int count,
                          rf_preprocess_filter filter, int pad8, rf_err *err)
{
    preprocess_axis_free(a);
    if (in_size < 1 || out_size < 1 || first < 0 || count < 1 || first + count > out_size ||
        (unsigned)filter >= RF_PREPROCESS_FILTER_COUNT)
        return rf_err_set(err, RF_EINVAL, "preprocess: bad resampling axis (%d -> %d, outputs %d..%d)",
                          in_size, out_size, first, first + count);
    a->in_size = in_size;
    a->out_size = out_size;
    a->first = first;
    a->count = count;
    a->filter = filter;
    a->pad8 = pad8;

    double scale = (double)in_size / out_size;
    if (in_size == out_size || filter == RF_PREPROCESS_NEAREST) {
        int rc = alloc_axis(a, 1, err);
        if (rc)
            return rc;
        /* Pillow copies an unchanged axis; its nearest neighbour steps the
         * source position by repeated addition (ImagingScaleAffine), which we
         * repeat so the truncation lands on the same pixel. */
        double pos = scale * 0.5;
        for (int i = 0; i < first + count; i++, pos += scale) {
            if (i < first)
                continue;
            int src = i;
            if (in_size != out_size) {
                src = (int)pos;
                src = src < 0 ? 0 : src >= in_size ? in_size - 1 : src;
            }
            a->start[i - first] = src;
            a->n[i - first] = 1;
            a->w[i - first] = 1.0f;
        }
        return RF_OK;
    }

    const filter_def *f = &filters[filter];
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = f->support * filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    int taps = ksize;
    if (pad8)
        taps = (ksize + 7) / 8 * 8;
    if (taps > in_size)
        taps = in_size;
    int rc = alloc_axis(a, taps, err);
    if (rc)
        return rc;
    double *k = malloc((size_t)ksize * sizeof *k);
    if (!k) {
        preprocess_axis_free(a);
        return rf_err_set(err, RF_ENOMEM, "preprocess: cannot allocate resampling weights");
    }
    double ss = 1.0 / filterscale;
    for (int i = 0; i < count; i++) {
        double center = (first + i + 0.5) * scale;
        /* (int) truncates as Pillow's does; negative values are clamped anyway */
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0)
            xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size)
            xmax = in_size;
        xmax -= xmin;
        double ww = 0.0;
        for (int x = 0; x < xmax; x++) {
            k[x] = f->fn((x + xmin - center + 0.5) * ss);
            ww += k[x];
        }
        int s = xmin;
        if (pad8 && s + taps > in_size)
            s = in_size - taps;
        float *w = a->w + (size_t)i * taps;
        for (int x = 0; x < xmax; x++)
            w[xmin - s + x] = (float)(ww != 0.0 ? k[x] / ww : k[x]);
        a->start[i] = s;
        a->n[i] = pad8 ? taps : xmax;
    }
    free(k);
    return RF_OK;
}

/* 32 lanes: four AVX2 or eight SSE registers of accumulators, so each input
 * row is streamed once per output row without spilling the sums. */
#define VLANES 32

/* The two passes are compiled for AVX2 + FMA as well as the baseline and
 * chosen at load time (an ifunc), as the runtime's kernels are; the rest of
 * the library stays baseline x86-64. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__ELF__)
#define PREPROCESS_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define PREPROCESS_CLONES
#endif

PREPROCESS_CLONES
void preprocess_vpass(const float *src, size_t stride, int start, int n, const float *w, int len, float *dst)
{
    const float *base = src + (size_t)start * stride;
    int x = 0;
    for (; x + VLANES <= len; x += VLANES) {
        float acc[VLANES];
        const float *r = base + x;
        for (int j = 0; j < VLANES; j++)
            acc[j] = w[0] * r[j];
        for (int k = 1; k < n; k++) {
            const float *rk = base + (size_t)k * stride + x;
            float wk = w[k];
            for (int j = 0; j < VLANES; j++)
                acc[j] += wk * rk[j];
        }
        memcpy(dst + x, acc, sizeof acc);
    }
    for (; x < len; x++) {
        float acc = w[0] * base[x];
        for (int k = 1; k < n; k++)
            acc += w[k] * base[(size_t)k * stride + x];
        dst[x] = acc;
    }
}

PREPROCESS_CLONES
void preprocess_hpass(const float *src, const preprocess_axis *a, float *dst)
{
    const int taps = a->taps;
    if (taps == 1) {
        for (int i = 0; i < a->count; i++)
            dst[i] = a->w[i] * src[a->start[i]];
        return;
    }
    for (int i = 0; i < a->count; i++) {
        const float *s = src + a->start[i];
        const float *w = a->w + (size_t)i * taps;
        float acc[8] = {0};
        int j = 0;
        for (; j + 8 <= taps; j += 8)
            for (int l = 0; l < 8; l++)
                acc[l] += w[j + l] * s[j + l];
        float tail = 0.0f;
        for (; j < taps; j++)
            tail += w[j] * s[j];
        dst[i] = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail;
    }
}
