/*
 * Benchmark corpus tool (not a test): turns a real 8-bit chest radiograph
 * (binary PGM) into a detector-sized image as a CR/DX modality stores it, so
 * that decode benchmarks see realistic sizes and compression ratios. The
 * shared data holds radiographs of at most 1024 px, while operators' files are
 * 2000-3000 px with 12 stored bits: the image is smoothed (the sources are
 * JPEG: their 8x8 block edges would otherwise be magnified), upsampled with a
 * Catmull-Rom cubic to a long side of LONG pixels, widened to 12 bits, and
 * given signal-dependent (quantum-like) Gaussian noise. Without the noise an
 * upsampled image compresses far better than any real acquisition.
 *
 *   cxr_synth IN.pgm OUT.raw [--long 3000] [--bits 12|8] [--noise K] [--seed S]
 *
 * Writes the stored values (12 bits: 16-bit little-endian words 0..4095; 8:
 * bytes) and prints "ROWS COLUMNS" on stdout for the caller's DICOM header.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int read_pgm(const char *path, int *w, int *h, uint8_t **px)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    int maxv = 0, c;
    char magic[3] = {0};
    if (fscanf(f, "%2s", magic) != 1 || strcmp(magic, "P5") != 0) {
        fclose(f);
        return -1;
    }
    int vals[3];
    for (int k = 0; k < 3; k++) {
        /* PGM headers may carry comment lines between the numbers */
        while ((c = fgetc(f)) == '#' || c == ' ' || c == '\n' || c == '\r' || c == '\t')
            if (c == '#')
                while ((c = fgetc(f)) != '\n' && c != EOF)
                    ;
        ungetc(c, f);
        if (fscanf(f, "%d", &vals[k]) != 1) {
            fclose(f);
            return -1;
        }
    }
    *w = vals[0], *h = vals[1], maxv = vals[2];
    fgetc(f); /* the single whitespace before the raster */
    if (*w < 2 || *h < 2 || maxv != 255) {
        fclose(f);
        return -1;
    }
    size_t n = (size_t)*w * (size_t)*h;
    *px = malloc(n);
    int ok = *px && fread(*px, 1, n, f) == n;
    fclose(f);
    return ok ? 0 : -1;
}

static uint64_t rng_state;

static double uniform01(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return ((double)(rng_state >> 11) + 0.5) / 9007199254740992.0;
}

static double gauss(void)
{
    return sqrt(-2.0 * log(uniform01())) * cos(6.283185307179586 * uniform01());
}

static void cubic_weights(double t, double w[4])
{
    double t2 = t * t, t3 = t2 * t;
    w[0] = -0.5 * t3 + t2 - 0.5 * t;
    w[1] = 1.5 * t3 - 2.5 * t2 + 1.0;
    w[2] = -1.5 * t3 + 2.0 * t2 + 0.5 * t;
    w[3] = 0.5 * t3 - 0.5 * t2;
}

static int clampi(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: cxr_synth IN.pgm OUT.raw [--long 3000] [--bits 12|8] [--noise K] [--seed S]\n");
        return 2;
    }
    int longside = 3000, bits = 12;
    double noise = 0.07;
    uint64_t seed = 1;
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--long") == 0 && i + 1 < argc)
            longside = atoi(argv[++i]);
        else if (strcmp(argv[i], "--bits") == 0 && i + 1 < argc)
            bits = atoi(argv[++i]);
        else if (strcmp(argv[i], "--noise") == 0 && i + 1 < argc)
            noise = atof(argv[++i]);
        else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc)
            seed = strtoull(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "cxr_synth: unknown argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if ((bits != 12 && bits != 8) || longside < 16 || longside > 16384) {
        fprintf(stderr, "cxr_synth: --bits must be 12 or 8, --long 16..16384\n");
        return 2;
    }
    int sw, sh;
    uint8_t *src;
    if (read_pgm(argv[1], &sw, &sh, &src) != 0) {
        fprintf(stderr, "cxr_synth: %s: not an 8-bit binary PGM\n", argv[1]);
        return 1;
    }
    /* [1 2 1]/4 in both directions: enough to hide the source's block edges */
    float *sm = malloc((size_t)sw * sh * sizeof *sm), *tmp = malloc((size_t)sw * sh * sizeof *tmp);
    if (!sm || !tmp)
        return 1;
    for (int y = 0; y < sh; y++)
        for (int x = 0; x < sw; x++)
            tmp[(size_t)y * sw + x] = 0.25f * src[(size_t)y * sw + clampi(x - 1, 0, sw - 1)] +
                                      0.5f * src[(size_t)y * sw + x] +
                                      0.25f * src[(size_t)y * sw + clampi(x + 1, 0, sw - 1)];
    for (int y = 0; y < sh; y++)
        for (int x = 0; x < sw; x++)
            sm[(size_t)y * sw + x] = 0.25f * tmp[(size_t)clampi(y - 1, 0, sh - 1) * sw + x] +
                                     0.5f * tmp[(size_t)y * sw + x] +
                                     0.25f * tmp[(size_t)clampi(y + 1, 0, sh - 1) * sw + x];
    double scale = (double)longside / (sw > sh ? sw : sh);
    int dw = (int)lround(sw * scale), dh = (int)lround(sh * scale);
    dw += dw & 1; /* even sizes, as detectors have */
    dh += dh & 1;
    int bpp = bits == 12 ? 2 : 1;
    uint8_t *out = malloc((size_t)dw * dh * bpp);
    if (!out)
        return 1;
    rng_state = 0x9E3779B97F4A7C15ull ^ (seed * 0xD1B54A32D192ED03ull);
    if (!rng_state)
        rng_state = 1;
    double maxv = bits == 12 ? 4095.0 : 255.0, gain = bits == 12 ? 4095.0 / 255.0 : 1.0;
    for (int y = 0; y < dh; y++) {
        double sy = (y + 0.5) / scale - 0.5;
        int iy = (int)floor(sy);
        double wy[4];
        cubic_weights(sy - iy, wy);
        for (int x = 0; x < dw; x++) {
            double sx = (x + 0.5) / scale - 0.5;
            int ix = (int)floor(sx);
            double wx[4], v = 0;
            cubic_weights(sx - ix, wx);
            for (int j = 0; j < 4; j++) {
                const float *row = sm + (size_t)clampi(iy - 1 + j, 0, sh - 1) * sw;
                double r = 0;
                for (int i = 0; i < 4; i++)
                    r += wx[i] * row[clampi(ix - 1 + i, 0, sw - 1)];
                v += wy[j] * r;
            }
            v *= gain;
            /* quantum noise grows with the square root of the dose; K is
             * in units of the 12-bit scale, also for 8-bit output */
            double sigma = noise * sqrt(v * (bits == 12 ? 1.0 : 16.0)) + 0.5;
            v += sigma * gauss() / (bits == 12 ? 1.0 : 16.0);
            long q = lround(v);
            q = q < 0 ? 0 : q > (long)maxv ? (long)maxv : q;
            size_t k = (size_t)y * dw + x;
            if (bpp == 2) {
                out[2 * k] = (uint8_t)q;
                out[2 * k + 1] = (uint8_t)(q >> 8);
            } else {
                out[k] = (uint8_t)q;
            }
        }
    }
    FILE *f = fopen(argv[2], "wb");
    if (!f || fwrite(out, 1, (size_t)dw * dh * bpp, f) != (size_t)dw * dh * bpp || fclose(f) != 0) {
        fprintf(stderr, "cxr_synth: %s: cannot write\n", argv[2]);
        return 1;
    }
    printf("%d %d\n", dh, dw);
    free(src);
    free(sm);
    free(tmp);
    free(out);
    return 0;
}
