/*
 * Resampling quality and speed (not a test): the library's separable
 * windowed-sinc resampler (Lanczos-3, Pillow's weights; bicubic for
 * reference) against a frequency-domain one built on FFTW (DCT-II of the
 * image, keep the coefficients below the new Nyquist, inverse DCT at the new
 * size; brick-wall, and with a raised-cosine taper over the top 25% of the
 * band). docs/preprocess.md has the figures and the decision.
 *
 *   resample_bench [--quick] [--reps N]   (--quick: coarser quality grids, 3 runs
 *                                          unless --reps says otherwise; default 15)
 *
 * Quality, per method (all on a downscale by 3000/224 = 13.4):
 *  - frequency response: rows of cos(2 pi f x) for 800 f from 0 to the input
 *    Nyquist; the gain is the amplitude fitted (least squares, cos + sin + DC,
 *    borders excluded) at the output frequency, folded where it aliases.
 *    passband: gain at 0.25 / 0.8 / 0.9 of the output Nyquist and the worst
 *    |1 - gain| up to 0.5 of it; aliasing energy: sum of gain^2 above the
 *    output Nyquist over the sum below (white input), in dB; peak alias: the
 *    largest gain above 1.1 x the output Nyquist.
 *  - zone plate 2048^2 -> 224^2, 0.5 + 0.5 cos(pi r^2 / 2048) (local
 *    frequency r / 2048 cycles/pixel): alias RMS where the local frequency is
 *    1.2..(input Nyquist) x the output Nyquist (ideal 0), in dB of the
 *    pattern's RMS; passband RMS error against the exact pattern where it is
 *    below 0.5 x the output Nyquist.
 *  - ringing: a step (0 to 1) at 16 sub-pixel positions; the worst overshoot
 *    and undershoot as a fraction of the step; the mean 10-90% rise in output
 *    pixels (sharpness).
 * Speed: a 2500 x 3000 image (a radiograph) to 224 x 224 and 518 x 518, 1
 * and 2 threads, the best of N runs after a warm-up (the best, not the
 * median: other load on the machine only ever slows a run down), and the
 * first call, which also computes the weights; FFTW planned with
 * FFTW_MEASURE (planning time printed, not counted).
 *
 * FFTW is a benchmark dependency only (scripts/install-deps.sh --bench); built
 * without it, only the library's resampler is measured.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "radfuse/preprocess.h"

#ifdef RF_BENCH_FFTW
#include <fftw3.h>
#endif

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void *xmalloc(size_t n)
{
#ifdef RF_BENCH_FFTW
    void *p = fftwf_malloc(n); /* aligned as FFTW's plans expect */
#else
    void *p = malloc(n);
#endif
    if (!p) {
        fprintf(stderr, "resample_bench: out of memory\n");
        exit(1);
    }
    return p;
}

static void xfree(void *p)
{
#ifdef RF_BENCH_FFTW
    fftwf_free(p);
#else
    free(p);
#endif
}

/* ---- methods: resample a single-channel h x w image to oh x ow ---- */

typedef struct method {
    const char *name;
    int kind; /* 0: library filter, 1: DCT */
    rf_preprocess_filter filter;
    double taper; /* DCT: fraction of the band under the raised-cosine roll-off */
} method;

#ifdef RF_BENCH_FFTW
/*
 * The frequency-domain resampler. DCT-II (FFTW REDFT10) implies a mirrored
 * image, so no seam appears at the borders as with a periodic FFT, and its
 * basis is sampled at pixel centers: truncating to the first ow (oh)
 * coefficients and inverting at the new size (REDFT01) samples the
 * band-limited image at the output pixel centers (m + 0.5) * w / ow - 0.5,
 * the same grid Pillow uses. Only the columns that survive the row pass are
 * transformed along the columns.
 */
typedef struct dct_ctx {
    int h, w, oh, ow;
    double taper;
    float *a, *b;
    float *scale_row, *scale_col; /* normalization and taper per coefficient */
    fftwf_plan rows_fwd, cols_fwd, cols_inv, rows_inv;
} dct_ctx;

static void dct_weights(float *s, int m, int n, double taper)
{
    for (int k = 0; k < m; k++) {
        double t = 1.0;
        double x = (double)k / m; /* fraction of the new band */
        if (taper > 0 && x > 1.0 - taper)
            t = 0.5 * (1.0 + cos(M_PI * (x - (1.0 - taper)) / taper));
        s[k] = (float)(t / (2.0 * n));
    }
}

static int dct_init(dct_ctx *d, int h, int w, int oh, int ow, double taper, int threads, unsigned flags,
                    const float *in_example, float *out_example)
{
    memset(d, 0, sizeof *d);
    d->h = h, d->w = w, d->oh = oh, d->ow = ow, d->taper = taper;
    d->a = xmalloc((size_t)h * w * sizeof(float));
    d->b = xmalloc((size_t)h * ow * sizeof(float));
    d->scale_row = xmalloc((size_t)ow * sizeof(float));
    d->scale_col = xmalloc((size_t)oh * sizeof(float));
    dct_weights(d->scale_row, ow, w, taper);
    dct_weights(d->scale_col, oh, h, taper);
    fftwf_plan_with_nthreads(threads);
    const fftwf_r2r_kind fwd = FFTW_REDFT10, inv = FFTW_REDFT01;
    /* planning may overwrite its arrays: plan on scratch, execute on the caller's */
    float *scratch_in = xmalloc((size_t)h * w * sizeof(float));
    float *scratch_out = xmalloc((size_t)oh * ow * sizeof(float));
    d->rows_fwd = fftwf_plan_many_r2r(1, &w, h, scratch_in, NULL, 1, w, d->a, NULL, 1, w, &fwd, flags);
    d->cols_fwd = fftwf_plan_many_r2r(1, &h, ow, d->a, NULL, w, 1, d->b, NULL, ow, 1, &fwd, flags);
    d->cols_inv = fftwf_plan_many_r2r(1, &oh, ow, d->b, NULL, ow, 1, d->b, NULL, ow, 1, &inv, flags);
    d->rows_inv = fftwf_plan_many_r2r(1, &ow, oh, d->b, NULL, 1, ow, scratch_out, NULL, 1, ow, &inv, flags);
    int ok = d->rows_fwd && d->cols_fwd && d->cols_inv && d->rows_inv &&
             fftwf_alignment_of((float *)in_example) == fftwf_alignment_of(scratch_in) &&
             fftwf_alignment_of(out_example) == fftwf_alignment_of(scratch_out);
    xfree(scratch_in);
    xfree(scratch_out);
    return ok ? 0 : -1;
}

static void dct_run(dct_ctx *d, const float *in, float *out)
{
    fftwf_execute_r2r(d->rows_fwd, (float *)in, d->a);
    fftwf_execute_r2r(d->cols_fwd, d->a, d->b);
    for (int k = 0; k < d->oh; k++) {
        float *row = d->b + (size_t)k * d->ow;
        float sc = d->scale_col[k];
        for (int j = 0; j < d->ow; j++)
            row[j] *= sc * d->scale_row[j];
    }
    fftwf_execute_r2r(d->cols_inv, d->b, d->b);
    fftwf_execute_r2r(d->rows_inv, d->b, out);
}

static void dct_free(dct_ctx *d)
{
    fftwf_plan p[] = {d->rows_fwd, d->cols_fwd, d->cols_inv, d->rows_inv};
    for (int i = 0; i < 4; i++)
        if (p[i])
            fftwf_destroy_plan(p[i]);
    xfree(d->a);
    xfree(d->b);
    xfree(d->scale_row);
    xfree(d->scale_col);
}
#endif

/* One resample for the quality measurements (speed is measured separately). */
static void resample(const method *m, const float *in, int h, int w, float *out, int oh, int ow)
{
    if (m->kind == 0) {
        rf_err e;
        if (rf_preprocess_resample(in, h, w, 1, out, oh, ow, m->filter, &e)) {
            fprintf(stderr, "resample_bench: %s\n", e.msg);
            exit(1);
        }
        return;
    }
#ifdef RF_BENCH_FFTW
    dct_ctx d;
    if (dct_init(&d, h, w, oh, ow, m->taper, 1, FFTW_ESTIMATE, in, out)) {
        fprintf(stderr, "resample_bench: FFTW planning failed\n");
        exit(1);
    }
    dct_run(&d, in, out);
    dct_free(&d);
#endif
}

/* ---- quality ---- */

#define QN 3000 /* input width for the 1-D measurements */
#define QM 224
#define QROWS 4

/* Least-squares amplitude of a sinusoid of frequency g (cycles per sample)
 * in y[m0..m1), with a free phase and DC. */
static double fit_amplitude(const float *y, int m0, int m1, double g)
{
    double S[3][3] = {{0}}, r[3] = {0};
    for (int m = m0; m < m1; m++) {
        double t = 2 * M_PI * g * (m + 0.5);
        double basis[3] = {cos(t), sin(t), 1.0};
        for (int i = 0; i < 3; i++) {
            r[i] += basis[i] * y[m];
            for (int j = 0; j < 3; j++)
                S[i][j] += basis[i] * basis[j];
        }
    }
    /* 3x3 solve by Gaussian elimination (well conditioned for g in [0.01, 0.49]) */
    for (int i = 0; i < 3; i++)
        for (int k = i + 1; k < 3; k++) {
            double f = S[k][i] / S[i][i];
            for (int j = i; j < 3; j++)
                S[k][j] -= f * S[i][j];
            r[k] -= f * r[i];
        }
    double x[3];
    for (int i = 2; i >= 0; i--) {
        double s = r[i];
        for (int j = i + 1; j < 3; j++)
            s -= S[i][j] * x[j];
        x[i] = s / S[i][i];
    }
    return hypot(x[0], x[1]);
}

typedef struct quality {
    double g25, g80, g90, ripple, alias_db, alias_peak;
    double zp_alias_db, zp_pass;
    double over, under, rise;
} quality;

static void measure_response(const method *m, quality *q, int nfreq)
{
    float *in = xmalloc((size_t)QROWS * QN * sizeof(float));
    float *out = xmalloc((size_t)QROWS * QM * sizeof(float));
    const double ratio = (double)QN / QM;
    const int m0 = QM / 10, m1 = QM - QM / 10;
    double pass = 0, stop = 0, ripple = 0, peak = 0;
    /* output frequencies (cycles per output pixel) up to the input Nyquist */
    const double fo_max = 0.5 * ratio;
    for (int i = 0; i < nfreq; i++) {
        double fo = fo_max * (i + 0.5) / nfreq;
        double g = fo - floor(fo);
        if (g > 0.5)
            g = 1.0 - g;
        if (g < 0.01 || g > 0.49)
            continue;
        double fi = fo / ratio; /* cycles per input pixel */
        for (int x = 0; x < QN; x++) {
            float v = (float)cos(2 * M_PI * fi * (x + 0.5) + 0.3);
            for (int r = 0; r < QROWS; r++)
                in[(size_t)r * QN + x] = v;
        }
        resample(m, in, QROWS, QN, out, QROWS, QM);
        double a = fit_amplitude(out + QM, m0, m1, g); /* row 1: rows are identical */
        if (fo < 0.5) {
            pass += a * a;
            if (fo <= 0.25)
                ripple = fmax(ripple, fabs(1.0 - a));
        } else {
            stop += a * a;
            if (fo >= 0.55)
                peak = fmax(peak, a);
        }
    }
    q->ripple = ripple;
    q->alias_db = 10 * log10(stop / pass);
    q->alias_peak = peak;
    /* gains at fixed fractions of the output Nyquist */
    const double at[3] = {0.125, 0.4, 0.45};
    double *dst[3] = {&q->g25, &q->g80, &q->g90};
    for (int k = 0; k < 3; k++) {
        double fi = at[k] / ratio;
        for (int x = 0; x < QN; x++) {
            float v = (float)cos(2 * M_PI * fi * (x + 0.5) + 0.3);
            for (int r = 0; r < QROWS; r++)
                in[(size_t)r * QN + x] = v;
        }
        resample(m, in, QROWS, QN, out, QROWS, QM);
        *dst[k] = fit_amplitude(out + QM, m0, m1, at[k]);
    }
    /* ringing: a step, at 16 positions across one output pixel (the sampled
     * overshoot depends on where the edge falls between output samples);
     * the worst over- and undershoot, and the mean 10-90% rise */
    q->over = q->under = 0;
    double rise = 0;
    int nrise = 0;
    for (int phase = 0; phase < 16; phase++) {
        const double edge = QN / 2 + 0.37 + phase * ratio / 16;
        for (int x = 0; x < QN; x++)
            for (int r = 0; r < QROWS; r++)
                in[(size_t)r * QN + x] = x + 0.5 > edge ? 1.0f : 0.0f;
        resample(m, in, QROWS, QN, out, QROWS, QM);
        const float *y = out + QM;
        for (int i = m0; i < m1; i++) {
            q->over = fmax(q->over, y[i] - 1.0);
            q->under = fmax(q->under, -y[i]);
        }
        /* 10% and 90% crossings, linearly interpolated */
        double c10 = -1, c90 = -1;
        for (int i = m0; i + 1 < m1; i++) {
            if (c10 < 0 && y[i] < 0.1 && y[i + 1] >= 0.1)
                c10 = i + (0.1 - y[i]) / (y[i + 1] - y[i]);
            if (c90 < 0 && y[i] < 0.9 && y[i + 1] >= 0.9)
                c90 = i + (0.9 - y[i]) / (y[i + 1] - y[i]);
        }
        if (c10 >= 0 && c90 >= 0)
            rise += c90 - c10, nrise++;
    }
    q->rise = nrise ? rise / nrise : NAN;
    xfree(in);
    xfree(out);
}

static void measure_zone_plate(const method *m, quality *q, int S, int M)
{
    float *in = xmalloc((size_t)S * S * sizeof(float));
    float *out = xmalloc((size_t)M * M * sizeof(float));
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            double dx = x + 0.5 - S / 2.0, dy = y + 0.5 - S / 2.0;
            in[(size_t)y * S + x] = (float)(0.5 + 0.5 * cos(M_PI * (dx * dx + dy * dy) / S));
        }
    resample(m, in, S, S, out, M, M);
    const double nyq_out = 0.5 * M / S; /* cycles per input pixel */
    double alias = 0, pass = 0;
    int na = 0, np = 0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < M; j++) {
            double cy = (i + 0.5) * S / M - S / 2.0, cx = (j + 0.5) * S / M - S / 2.0;
            double r2 = cx * cx + cy * cy, r = sqrt(r2);
            double f = r / S; /* local frequency */
            double v = out[(size_t)i * M + j];
            if (f >= 1.2 * nyq_out && r <= S / 2.0 - 2.0 * S / M) {
                alias += (v - 0.5) * (v - 0.5);
                na++;
            } else if (f <= 0.5 * nyq_out) {
                double ideal = 0.5 + 0.5 * cos(M_PI * r2 / S);
                pass += (v - ideal) * (v - ideal);
                np++;
            }
        }
    q->zp_alias_db = 20 * log10(sqrt(alias / na) / (0.5 / sqrt(2.0)));
    q->zp_pass = sqrt(pass / np);
    xfree(in);
    xfree(out);
}

/* ---- speed ---- */

static double best(const double *t, int n)
{
    double b = t[0];
    for (int i = 1; i < n; i++)
        b = fmin(b, t[i]);
    return b;
}

static void speed(const float *img, int H, int W, int reps)
{
    const int sizes[] = {224, 518};
    double *t = malloc((size_t)reps * sizeof *t);
    printf("\nspeed: %d x %d gray -> S x S (whole image, stretched), best of %d runs, ms\n", H, W, reps);
    printf("%-28s %5s %8s %8s %12s\n", "method", "S", "1 thread", "2 threads", "first call");
    for (int si = 0; si < 2; si++) {
        int S = sizes[si];
        float *out = xmalloc((size_t)S * S * sizeof(float));
        float *lanczos = xmalloc((size_t)S * S * sizeof(float));
        const rf_preprocess_filter fl[] = {RF_PREPROCESS_LANCZOS3, RF_PREPROCESS_BICUBIC};
        for (int fi = 0; fi < 2; fi++) {
            double med[2], first = 0;
            for (int threads = 1; threads <= 2; threads++) {
                rf_preprocess_config cfg;
                rf_preprocess_config_init(&cfg, S, S, 1);
                cfg.aspect = RF_PREPROCESS_STRETCH;
                cfg.filter = fl[fi];
                rf_preprocessor *p;
                rf_err e;
                if (rf_preprocess_create(&p, &cfg, threads, &e)) {
                    fprintf(stderr, "resample_bench: %s\n", e.msg);
                    exit(1);
                }
                double t0 = now_s();
                rf_preprocess_run(p, img, H, W, 1, out, &e); /* computes the weights */
                if (threads == 1)
                    first = 1e3 * (now_s() - t0);
                for (int r = 0; r < reps; r++) {
                    t0 = now_s();
                    rf_preprocess_run(p, img, H, W, 1, out, &e);
                    t[r] = 1e3 * (now_s() - t0);
                }
                med[threads - 1] = best(t, reps);
                if (fi == 0)
                    memcpy(lanczos, out, (size_t)S * S * sizeof(float));
                rf_preprocess_destroy(p);
            }
            printf("%-28s %5d %8.2f %8.2f %12.2f\n", fi == 0 ? "lanczos3 separable (library)" : "bicubic separable (library)",
                   S, med[0], med[1], first);
        }
#ifdef RF_BENCH_FFTW
        double med[2], plan_s[2], agree = 0;
        for (int threads = 1; threads <= 2; threads++) {
            dct_ctx d;
            double t0 = now_s();
            if (dct_init(&d, H, W, S, S, 0.0, threads, FFTW_MEASURE, img, out)) {
                fprintf(stderr, "resample_bench: FFTW planning failed\n");
                exit(1);
            }
            plan_s[threads - 1] = now_s() - t0;
            dct_run(&d, img, out);
            for (int r = 0; r < reps; r++) {
                t0 = now_s();
                dct_run(&d, img, out);
                t[r] = 1e3 * (now_s() - t0);
            }
            med[threads - 1] = best(t, reps);
            dct_free(&d);
        }
        /* both sample the same grid: on this smooth image they differ only
         * by the filters' passband and the noise they let through */
        for (size_t i = 0; i < (size_t)S * S; i++)
            agree = fmax(agree, fabs(out[i] - lanczos[i]));
        printf("%-28s %5d %8.2f %8.2f   (planning %.1f s, %.1f s; max |DCT - lanczos3| %.4f)\n",
               "DCT low-pass (FFTW)", S, med[0], med[1], plan_s[0], plan_s[1], agree);
#endif
        xfree(out);
        xfree(lanczos);
    }
    free(t);
}

int main(int argc, char **argv)
{
    int quick = 0, reps = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            quick = 1;
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
            reps = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: resample_bench [--quick] [--reps N]\n");
            return 2;
        }
    }
    if (reps < 1)
        reps = quick ? 3 : 15;
#ifdef RF_BENCH_FFTW
    fftwf_init_threads();
#endif
    method methods[] = {
        {"lanczos3 separable", 0, RF_PREPROCESS_LANCZOS3, 0},
        {"bicubic separable", 0, RF_PREPROCESS_BICUBIC, 0},
#ifdef RF_BENCH_FFTW
        {"DCT brick-wall (FFTW)", 1, 0, 0.0},
        {"DCT 25% cosine taper", 1, 0, 0.25},
#endif
    };
    int nm = (int)(sizeof methods / sizeof methods[0]);
#ifndef RF_BENCH_FFTW
    printf("(built without FFTW: scripts/install-deps.sh --bench, then reconfigure)\n");
#endif
    int nfreq = quick ? 200 : 800;
    printf("quality, downscale %d -> %d (x%.1f); zone plate 2048^2 -> 224^2\n", QN, QM, (double)QN / QM);
    printf("%-22s %7s %7s %7s %8s %9s %8s %9s %8s %6s %6s %6s\n", "method", "g@.25N", "g@.8N", "g@.9N", "ripple",
           "alias dB", "alias pk", "ZP alias", "ZP pass", "over", "under", "rise");
    for (int i = 0; i < nm; i++) {
        quality q;
        measure_response(&methods[i], &q, nfreq);
        measure_zone_plate(&methods[i], &q, quick ? 1024 : 2048, quick ? 112 : 224);
        printf("%-22s %7.4f %7.4f %7.4f %8.5f %9.1f %8.4f %9.1f %8.5f %5.1f%% %5.1f%% %6.2f\n", methods[i].name, q.g25,
               q.g80, q.g90, q.ripple, q.alias_db, q.alias_peak, q.zp_alias_db, q.zp_pass, 100 * q.over,
               100 * q.under, q.rise);
    }

    /* a radiograph-sized image: smooth anatomy-like content plus noise */
    const int H = 2500, W = 3000;
    float *img = xmalloc((size_t)H * W * sizeof(float));
    uint32_t s = 12345;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            s = s * 1664525u + 1013904223u;
            double v = 0.5 + 0.3 * sin(x * 0.003) * cos(y * 0.002) + 0.05 * ((s >> 8) / 16777216.0 - 0.5);
            img[(size_t)y * W + x] = (float)v;
        }
    speed(img, H, W, reps);
    xfree(img);
#ifdef RF_BENCH_FFTW
    fftwf_cleanup_threads();
#endif
    return 0;
}
