/*
 * Saliency maps onto the original pixel grid: the inverse of the
 * preprocessing geometry, bilinear reading of the map, Gaussian smoothing by
 * FFT (FFTW, single precision) and normalization.
 */
#include <fftw3.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "radfuse/saliency.h"

/* Bilinear sample positions along one side: original index i -> map cells
 * (*lo, *hi) and the weight of hi, or *inside = 0 where the crop cut it. */
typedef struct axis_sample {
    int lo, hi, inside;
    float t;
} axis_sample;

static void axis(axis_sample *s, int n_orig, int resized, int offset, int n_in, int cells)
{
    double cell = (double)n_in / cells;
    for (int i = 0; i < n_orig; i++) {
        double u = (i + 0.5) * resized / (double)n_orig + offset; /* input coordinate */
        s[i].inside = u >= 0 && u < n_in;
        double g = u / cell - 0.5; /* cell coordinate: cell centres at integers */
        if (g < 0)
            g = 0;
        if (g > cells - 1)
            g = cells - 1;
        int lo = (int)floor(g);
        if (lo > cells - 1)
            lo = cells - 1;
        s[i].lo = lo;
        s[i].hi = lo + 1 < cells ? lo + 1 : lo;
        s[i].t = (float)(g - lo);
    }
}

int rf_saliency_to_original(const float *map, int mh, int mw, int in_h, int in_w, const rf_preprocess_geom *g,
                            int rows, int cols, float *out, rf_err *err)
{
    if (mh < 1 || mw < 1 || in_h < mh || in_w < mw || rows < 1 || cols < 1 || g->resized_h < 1 || g->resized_w < 1)
        return rf_err_set(err, RF_EINVAL,
                          "saliency map: a %dx%d map over a %dx%d input cannot be placed on a %dx%d image (resized "
                          "%dx%d)",
                          mh, mw, in_h, in_w, rows, cols, g->resized_h, g->resized_w);
    axis_sample *ys = malloc((size_t)rows * sizeof *ys), *xs = malloc((size_t)cols * sizeof *xs);
    if (!ys || !xs) {
        free(ys);
        free(xs);
        return rf_err_set(err, RF_ENOMEM, "saliency map: out of memory for a %dx%d image", rows, cols);
    }
    axis(ys, rows, g->resized_h, g->top, in_h, mh);
    axis(xs, cols, g->resized_w, g->left, in_w, mw);
    for (int r = 0; r < rows; r++) {
        float *o = out + (size_t)r * cols;
        const axis_sample *y = &ys[r];
        const float *r0 = map + (size_t)y->lo * mw, *r1 = map + (size_t)y->hi * mw;
        for (int c = 0; c < cols; c++) {
            const axis_sample *x = &xs[c];
            if (!y->inside || !x->inside) {
                o[c] = 0;
                continue;
            }
            float top = r0[x->lo] + (r0[x->hi] - r0[x->lo]) * x->t;
            float bot = r1[x->lo] + (r1[x->hi] - r1[x->lo]) * x->t;
            o[c] = top + (bot - top) * y->t;
        }
    }
    free(ys);
    free(xs);
    return RF_OK;
}

/* The smallest n' >= n whose only prime factors are 2, 3, 5 and 7 (sizes
 * FFTW's codelets handle without a generic prime-size pass). */
static int fft_size(int n)
{
    for (int m = n;; m++) {
        int k = m;
        int primes[4] = {2, 3, 5, 7};
        for (int i = 0; i < 4; i++)
            while (k % primes[i] == 0)
                k /= primes[i];
        if (k == 1)
            return m;
    }
}

/* The 1-D kernel's transform on n points: real, as the kernel is even. */
static void kernel_dft(const double *g, int R, int n, int nf, double *K)
{
    for (int f = 0; f < nf; f++) {
        double s = g[0];
        for (int k = 1; k <= R; k++)
            s += 2 * g[k] * cos(2 * M_PI * (double)f * k / n);
        K[f] = s;
    }
}

/* The kernel mass inside [0, n) around each index: what zero padding lost. */
static void kernel_mass(const double *g, int R, int n, double *w)
{
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int k = -R; k <= R; k++)
            if (i + k >= 0 && i + k < n)
                s += g[k < 0 ? -k : k];
        w[i] = s;
    }
}

int rf_saliency_smooth(float *img, int rows, int cols, float sigma, rf_err *err)
{
    if (!(sigma > 0))
        return RF_OK;
    if (rows < 1 || cols < 1)
        return rf_err_set(err, RF_EINVAL, "saliency smoothing: empty %dx%d image", rows, cols);
    if (!(sigma < 4096))
        return rf_err_set(err, RF_EINVAL, "saliency smoothing: sigma %g is too large", (double)sigma);
    int R = (int)ceil(4.0 * sigma);
    /* n + R points: the kernel's tail past either edge lands in zeros, never
     * on the other edge; and at least 2R + 1 so its two halves do not meet */
    int ny = fft_size(rows + R > 2 * R + 1 ? rows + R : 2 * R + 1);
    int nx = fft_size(cols + R > 2 * R + 1 ? cols + R : 2 * R + 1);
    int nxf = nx / 2 + 1;
    double *g = malloc((size_t)(R + 1) * sizeof *g);
    double *ky = malloc((size_t)ny * sizeof *ky), *kx = malloc((size_t)nxf * sizeof *kx);
    double *wy = malloc((size_t)rows * sizeof *wy), *wx = malloc((size_t)cols * sizeof *wx);
    float *in = fftwf_alloc_real((size_t)ny * nx);
    fftwf_complex *spec = fftwf_alloc_complex((size_t)ny * nxf);
    fftwf_plan fwd = NULL, inv = NULL;
    int rc = RF_OK;
    if (!g || !ky || !kx || !wy || !wx || !in || !spec) {
        rc = rf_err_set(err, RF_ENOMEM, "saliency smoothing: out of memory for a %dx%d image", rows, cols);
        goto done;
    }
    double sum = 0;
    for (int k = 0; k <= R; k++) {
        g[k] = exp(-0.5 * (double)k * k / ((double)sigma * sigma));
        sum += k ? 2 * g[k] : g[k];
    }
    for (int k = 0; k <= R; k++)
        g[k] /= sum;
    kernel_dft(g, R, ny, ny, ky);
    kernel_dft(g, R, nx, nxf, kx);
    kernel_mass(g, R, rows, wy);
    kernel_mass(g, R, cols, wx);

    /* FFTW_ESTIMATE plans without touching the arrays; the planner is not
     * thread safe (see saliency.h) */
    fwd = fftwf_plan_dft_r2c_2d(ny, nx, in, spec, FFTW_ESTIMATE);
    inv = fftwf_plan_dft_c2r_2d(ny, nx, spec, in, FFTW_ESTIMATE);
    if (!fwd || !inv) {
        rc = rf_err_set(err, RF_ENOMEM, "saliency smoothing: FFTW could not plan a %dx%d transform", ny, nx);
        goto done;
    }
    memset(in, 0, (size_t)ny * nx * sizeof *in);
    for (int r = 0; r < rows; r++)
        memcpy(in + (size_t)r * nx, img + (size_t)r * cols, (size_t)cols * sizeof *in);
    fftwf_execute(fwd);
    double norm = 1.0 / ((double)ny * nx); /* FFTW's transforms are unnormalized */
    for (int fy = 0; fy < ny; fy++)
        for (int fx = 0; fx < nxf; fx++) {
            float k = (float)(ky[fy] * kx[fx] * norm);
            spec[(size_t)fy * nxf + fx][0] *= k;
            spec[(size_t)fy * nxf + fx][1] *= k;
        }
    fftwf_execute(inv);
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++)
            img[(size_t)r * cols + c] = (float)(in[(size_t)r * nx + c] / (wy[r] * wx[c]));
done:
    if (fwd)
        fftwf_destroy_plan(fwd);
    if (inv)
        fftwf_destroy_plan(inv);
    /* the planner remembers what it planned; leave nothing behind */
    fftwf_forget_wisdom();
    fftwf_free(in);
    fftwf_free(spec);
    free(g);
    free(ky);
    free(kx);
    free(wy);
    free(wx);
    return rc;
}

void rf_saliency_normalize(float *img, int rows, int cols, int *peak_row, int *peak_col)
{
    size_t n = (size_t)rows * cols, best = 0;
    float mx = 0;
    for (size_t i = 0; i < n; i++) {
        if (!(img[i] > 0)) /* negatives and NaN */
            img[i] = 0;
        if (img[i] > mx) {
            mx = img[i];
            best = i;
        }
    }
    if (mx > 0) {
        float inv = 1.0f / mx;
        for (size_t i = 0; i < n; i++)
            img[i] = i == best ? 1.0f : fminf(img[i] * inv, 1.0f);
    }
    *peak_row = cols ? (int)(best / (size_t)cols) : 0;
    *peak_col = cols ? (int)(best % (size_t)cols) : 0;
}
