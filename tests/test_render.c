/*
 * imaging/render.c against pydicom 2.3.1's own implementation: every case of
 * tests/data/render/cases.txt (made by tests/data/make_render_expected.py from
 * shared corpus files and small synthetic ones) rendered here and compared
 * value by value. Then hostile attributes built by hand: each must give a
 * clear error or the documented clamp, never undefined behaviour (the
 * sanitizer build runs the same test).
 *
 * Tolerance: pydicom computes in float64, radfuse in double stored as float32,
 * so a value may differ from pydicom's (rounded to float32 by the script) by
 * the float32 rounding of both: |got - want| <= max(1e-7, 4.8e-7 * |want|)
 * (4 float32 ulps). Frame means (over every pixel, not just the kept ones)
 * within 1e-6 * max(1, |mean|).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "radfuse/render.h"
#include "tests/testutil.h"

static const char *source_dir(void)
{
    const char *s = getenv("RADFUSE_SOURCE");
    if (!s || !*s) {
        fprintf(stderr, "FATAL: RADFUSE_SOURCE is not set (run through ctest)\n");
        exit(1);
    }
    return s;
}

static int parse_voi(const char *spec, rf_render_opts *o)
{
    memset(o, 0, sizeof *o);
    if (strcmp(spec, "default") == 0 || strcmp(spec, "-") == 0)
        o->voi = RF_VOI_DEFAULT;
    else if (strcmp(spec, "auto") == 0)
        o->voi = RF_VOI_AUTO;
    else if (strcmp(spec, "lut") == 0)
        o->voi = RF_VOI_LUT;
    else if (strncmp(spec, "window:", 7) == 0) {
        o->voi = RF_VOI_FILE_WINDOW;
        o->window_index = atoi(spec + 7);
    } else if (sscanf(spec, "explicit:%lf,%lf", &o->center, &o->width) == 2)
        o->voi = RF_VOI_EXPLICIT;
    else
        return -1;
    return 0;
}

static int near_value(double got, double want)
{
    double tol = fmax(1e-7, 4.8e-7 * fabs(want));
    return fabs(got - want) <= tol;
}

static int ncases;

static void run_case(char *line)
{
    char name[128], src[512], what[32], voi[64], means[256];
    int frame, stride;
    long npad;
    if (sscanf(line, "%127s %511s %d %31s %63s %d %ld %255s", name, src, &frame, what, voi, &stride, &npad, means) !=
        8) {
        CHECKF(0, "bad line in cases.txt: %s", line);
        return;
    }
    char path[4096], f32[4096];
    if (strncmp(src, "shared:", 7) == 0)
        snprintf(path, sizeof path, "%s/data/dicom/%s", test_shared_dir(), src + 7);
    else
        snprintf(path, sizeof path, "%s/tests/data/render/%s", source_dir(), src + 6);
    snprintf(f32, sizeof f32, "%s/tests/data/render/%s.f32", source_dir(), name);
    rf_dicom_image img;
    rf_err err;
    if (rf_dicom_read(path, RF_DICOM_PIXELS, &img, &err)) {
        CHECKF(0, "%s: %s", name, err.msg);
        return;
    }
    int display = strcmp(what, "display") == 0;
    int ch = display ? rf_render_channels(&img) : img.out_samples;
    size_t npix = (size_t)img.rows * (size_t)img.columns;
    float *out = test_falloc((int64_t)(npix * (size_t)ch));
    uint8_t *mask = test_xmalloc(npix);
    rf_render_opts o;
    rf_render_info info;
    CHECKF(parse_voi(voi, &o) == 0, "%s: bad VOI '%s'", name, voi);
    int rc = display ? rf_render_display(&img, frame, &o, out, mask, &info, &err)
                     : rf_render_modality(&img, frame, out, mask, &err);
    CHECKF(rc == 0, "%s: %s", name, rc ? err.msg : "");
    size_t nkept;
    double worst = 0;
    float *want = (float *)test_read_file(f32, &nkept);
    CHECKF(want != NULL, "%s: cannot read %s", name, f32);
    if (rc == 0 && want) {
        nkept /= sizeof(float);
        size_t kr = ((size_t)img.rows + (size_t)stride - 1) / (size_t)stride;
        size_t kc = ((size_t)img.columns + (size_t)stride - 1) / (size_t)stride;
        CHECKF(nkept == kr * kc * (size_t)ch, "%s: %zu expected values for %zu x %zu x %d", name, nkept, kr, kc, ch);
        int bad = 0;
        for (size_t r = 0, k = 0; r < (size_t)img.rows && k < nkept; r += (size_t)stride)
            for (size_t c = 0; c < (size_t)img.columns && k < nkept; c += (size_t)stride)
                for (int s = 0; s < ch; s++, k++) {
                    double g = out[(r * (size_t)img.columns + c) * (size_t)ch + (size_t)s], w = want[k];
                    worst = fmax(worst, fabs(g - w));
                    if (!near_value(g, w) && bad++ < 3)
                        fprintf(stderr, "%s: [%zu,%zu,%d] radfuse %.9g, pydicom %.9g\n", name, r, c, s, g, w);
                }
        CHECKF(bad == 0, "%s: %d values off (max abs diff %g)", name, bad, worst);
        char *p = means;
        for (int s = 0; s < ch; s++) {
            double m = strtod(p, &p), sum = 0;
            if (*p == ',')
                p++;
            for (size_t i = 0; i < npix; i++)
                sum += out[i * (size_t)ch + (size_t)s];
            double got = sum / (double)npix;
            CHECKF(fabs(got - m) <= 1e-6 * fmax(1, fabs(m)), "%s: channel %d mean %.9g, pydicom %.9g", name, s, got,
                   m);
        }
        long np = 0;
        for (size_t i = 0; i < npix; i++) {
            np += mask[i];
            if (display && mask[i])
                CHECKF(out[i] == 0, "%s: padding pixel %zu is %g, not 0", name, i, out[i]);
        }
        CHECKF(np == npad, "%s: %ld padding pixels, pydicom %ld", name, np, npad);
        if (display) {
            CHECKF(info.padding == (size_t)npad, "%s: info.padding %zu", name, info.padding);
            /* the quantized renders are exactly the documented rounding of this one */
            uint8_t *q8 = test_xmalloc(npix * (size_t)ch);
            uint16_t *q16 = test_xmalloc(npix * (size_t)ch * 2);
            CHECK(rf_render_display_int(&img, frame, &o, 8, q8, NULL, &err) == 0);
            CHECK(rf_render_display_int(&img, frame, &o, 16, q16, NULL, &err) == 0);
            int qbad = 0;
            for (size_t i = 0; i < npix * (size_t)ch; i++) {
                double d = out[i];
                qbad += q8[i] != (uint8_t)floor(d * 255 + 0.5) || q16[i] != (uint16_t)floor(d * 65535 + 0.5);
            }
            CHECKF(qbad == 0, "%s: %d quantized values differ from the float render", name, qbad);
            free(q8);
            free(q16);
        }
    }
    if (test_verbose())
        fprintf(stderr, "%s: max abs diff %g\n", name, worst);
    free(want);
    free(out);
    free(mask);
    rf_dicom_image_free(&img);
    ncases++;
}

static void test_cases(void)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/data/render/cases.txt", source_dir());
    size_t n;
    char *text = test_read_file(path, &n);
    CHECKF(text != NULL, "cannot read %s", path);
    if (!text)
        return;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
        if (line[0] != '#' && line[0])
            run_case(line);
    free(text);
    CHECKF(ncases >= 45, "only %d cases ran", ncases);
}

/* ---- hostile attributes, on images built by hand ---- */

/* A rows x cols x frames grayscale image of 16-bit stored values v[i] = f(i). */
static void make_gray(rf_dicom_image *img, int rows, int cols, int frames, int is_signed, const char *pi)
{
    memset(img, 0, sizeof *img);
    img->rows = rows;
    img->columns = cols;
    img->frames = frames;
    img->bits_allocated = 16;
    img->bits_stored = 16;
    img->pixel_representation = is_signed;
    img->samples_per_pixel = img->out_samples = 1;
    img->sample_bytes = 2;
    img->has_pixel_data = 1;
    snprintf(img->photometric, sizeof img->photometric, "%s", pi);
    img->pixels_size = (size_t)rows * (size_t)cols * (size_t)frames * 2;
    uint16_t *p = test_xmalloc(img->pixels_size);
    for (size_t i = 0; i < img->pixels_size / 2; i++)
        p[i] = (uint16_t)(i * 37 % 1000);
    img->pixels = p;
    img->display.rescale_slope = 1;
}

static rf_dicom_lut make_lut(int entries, int32_t first, int bits, int segmented, const uint16_t *data, int count)
{
    rf_dicom_lut l = {entries, first, bits, segmented, count, NULL};
    l.data = test_xmalloc((size_t)(count ? count : 1) * sizeof *l.data);
    if (count)
        memcpy(l.data, data, (size_t)count * sizeof *l.data);
    return l;
}

static int display(const rf_dicom_image *img, const rf_render_opts *o, float *out, rf_err *err)
{
    return rf_render_display(img, 0, o, out, NULL, NULL, err);
}

static void test_hostile_windows(void)
{
    rf_dicom_image img;
    make_gray(&img, 8, 8, 2, 0, "MONOCHROME2");
    float out[64 * 3];
    rf_err err;
    rf_render_opts o = {RF_VOI_EXPLICIT, 0, 100, 0, RF_VOI_FN_FILE};
    CHECK(display(&img, &o, out, &err) == RF_EINVAL && strstr(err.msg, "width"));
    o.width = 0.5; /* LINEAR needs >= 1 */
    CHECK(display(&img, &o, out, &err) == RF_EINVAL);
    o.function = RF_VOI_FN_LINEAR_EXACT; /* > 0 is enough */
    CHECK(display(&img, &o, out, &err) == 0);
    o.width = -3;
    o.function = RF_VOI_FN_SIGMOID;
    CHECK(display(&img, &o, out, &err) == RF_EINVAL);
    o.width = NAN;
    CHECK(display(&img, &o, out, &err) == RF_EINVAL && strstr(err.msg, "finite"));
    o.width = 10;
    o.center = INFINITY;
    CHECK(display(&img, &o, out, &err) == RF_EINVAL);
    o.center = 500;
    o.function = (rf_voi_function)99;
    CHECK(display(&img, &o, out, &err) == RF_EINVAL);
    /* width exactly 1 with LINEAR: a threshold at center - 0.5 */
    o.function = RF_VOI_FN_LINEAR;
    o.width = 1;
    CHECK(display(&img, &o, out, &err) == 0);
    int thr = 1;
    for (int i = 0; i < 64; i++)
        thr &= out[i] == (((uint16_t *)img.pixels)[i] > 499.5 ? 1.0f : 0.0f);
    CHECK(thr);
    /* file windows: width 0 in the file, index past the count, unknown function */
    img.display.nwindows = 1;
    img.display.window_center[0] = 100;
    img.display.window_width[0] = 0;
    CHECK(display(&img, NULL, out, &err) == RF_EINVAL);
    rf_render_opts w = {RF_VOI_FILE_WINDOW, 1, 0, 0, RF_VOI_FN_FILE};
    CHECK(display(&img, &w, out, &err) == RF_EINVAL && strstr(err.msg, "window 1"));
    w.window_index = -1;
    CHECK(display(&img, &w, out, &err) == RF_EINVAL);
    img.display.window_width[0] = 50;
    snprintf(img.display.voi_lut_function, sizeof img.display.voi_lut_function, "CUBIC");
    CHECK(display(&img, NULL, out, &err) == RF_EUNSUP && strstr(err.msg, "CUBIC"));
    snprintf(img.display.voi_lut_function, sizeof img.display.voi_lut_function, "linear_exact ");
    CHECK(display(&img, NULL, out, &err) == 0);
    /* a VOI LUT asked for and absent; a bad mode */
    rf_render_opts l = {RF_VOI_LUT, 0, 0, 0, RF_VOI_FN_FILE};
    CHECK(display(&img, &l, out, &err) == RF_EINVAL);
    l.voi = (rf_voi_mode)42;
    CHECK(display(&img, &l, out, &err) == RF_EINVAL);
    /* frames out of range, no pixels, a lying size */
    CHECK(rf_render_display(&img, 2, NULL, out, NULL, NULL, &err) == RF_EINVAL);
    CHECK(rf_render_display(&img, -1, NULL, out, NULL, NULL, &err) == RF_EINVAL);
    CHECK(rf_render_modality(&img, 1, out, NULL, &err) == 0);
    size_t keep = img.pixels_size;
    img.pixels_size = keep - 1;
    CHECK(rf_render_modality(&img, 1, out, NULL, &err) == RF_EINVAL);
    img.pixels_size = keep;
    img.sample_bytes = 3;
    CHECK(rf_render_modality(&img, 0, out, NULL, &err) == RF_EINVAL);
    img.sample_bytes = 2;
    CHECK(rf_render_display_int(&img, 0, NULL, 12, out, NULL, &err) == RF_EINVAL);
    CHECK(rf_render_display(NULL, 0, NULL, out, NULL, NULL, &err) == RF_EINVAL);
    rf_dicom_image_free(&img);
}

static void test_hostile_modality(void)
{
    rf_dicom_image img;
    make_gray(&img, 4, 4, 1, 1, "MONOCHROME2");
    float out[16];
    rf_err err;
    img.display.has_rescale = 1;
    img.display.rescale_slope = NAN;
    CHECK(rf_render_modality(&img, 0, out, NULL, &err) == RF_EFORMAT && strstr(err.msg, "finite"));
    CHECK(display(&img, NULL, out, &err) == RF_EFORMAT);
    img.display.rescale_slope = 1;
    img.display.rescale_intercept = -INFINITY;
    CHECK(rf_render_modality(&img, 0, out, NULL, &err) == RF_EFORMAT);
    img.display.rescale_intercept = 0;
    /* Modality LUT with 0 entries, with fewer values than entries, segmented */
    uint16_t d[4] = {10, 20, 30, 40};
    img.display.modality_lut = make_lut(0, 0, 16, 0, d, 4);
    CHECK(rf_render_modality(&img, 0, out, NULL, &err) == RF_EFORMAT);
    img.display.modality_lut.entries = 8;
    CHECK(rf_render_modality(&img, 0, out, NULL, &err) == RF_EFORMAT);
    img.display.modality_lut.entries = 4;
    img.display.modality_lut.segmented = 1;
    CHECK(rf_render_modality(&img, 0, out, NULL, &err) == RF_EFORMAT);
    /* a sound one: out-of-range inputs clamp to the first / last entry */
    img.display.modality_lut.segmented = 0;
    img.display.modality_lut.first = 100;
    CHECK(rf_render_modality(&img, 0, out, NULL, &err) == 0);
    int ok = 1;
    for (int i = 0; i < 16; i++) {
        int s = ((int16_t *)img.pixels)[i];
        float want = s < 100 ? 10 : s >= 103 ? 40 : d[s - 100];
        ok &= out[i] == want;
    }
    CHECK(ok);
    /* the VOI LUT: 8-bit descriptor over 16-bit values scales by 65535 */
    uint16_t v[3] = {0, 30000, 65535};
    img.display.voi_lut = make_lut(3, 0, 8, 0, v, 3);
    rf_render_opts l = {RF_VOI_LUT, 0, 0, 0, RF_VOI_FN_FILE};
    CHECK(display(&img, &l, out, &err) == 0);
    CHECK(out[0] == 1.0f); /* stored values >= 2: last entry */
    img.display.voi_lut.data_count = 2;
    CHECK(display(&img, &l, out, &err) == RF_EFORMAT);
    rf_dicom_image_free(&img);
}

static void test_auto_and_padding(void)
{
    rf_dicom_image img;
    make_gray(&img, 10, 10, 1, 0, "MONOCHROME1");
    uint16_t *p = img.pixels;
    for (int i = 0; i < 100; i++)
        p[i] = (uint16_t)i;
    float out[100];
    uint8_t mask[100];
    rf_render_info info;
    rf_err err;
    /* padding 90..99 given in reverse order; percentiles of 0..89 */
    img.display.has_padding = img.display.has_padding_limit = 1;
    img.display.padding_value = 99;
    img.display.padding_limit = 90;
    CHECK(rf_render_display(&img, 0, NULL, out, mask, &info, &err) == 0);
    CHECK(info.voi == RF_VOI_APPLIED_AUTO && info.inverted && info.padding == 10);
    /* numpy.percentile(range(90), [0.5, 99.5]) = 0.445, 88.555 */
    CHECKF(fabs(info.auto_low - 0.445) < 1e-9 && fabs(info.auto_high - 88.555) < 1e-9, "%.17g %.17g",
           info.auto_low, info.auto_high);
    CHECK(out[0] == 1.0f && out[89] == 0.0f && out[95] == 0.0f && mask[95] == 1 && mask[5] == 0);
    /* a flat frame renders 0 before inversion: 1 for MONOCHROME1 */
    for (int i = 0; i < 100; i++)
        p[i] = 7;
    img.display.has_padding = 0;
    CHECK(rf_render_display(&img, 0, NULL, out, mask, &info, &err) == 0);
    CHECK(out[0] == 1.0f && out[99] == 1.0f);
    /* every pixel padding: nothing to take percentiles of, all 0 (padding) */
    img.display.has_padding = 1;
    img.display.padding_value = 7;
    img.display.has_padding_limit = 0;
    CHECK(rf_render_display(&img, 0, NULL, out, mask, &info, &err) == 0);
    CHECK(out[0] == 0.0f && info.padding == 100);
    /* negative slope: the percentiles are still low < high */
    for (int i = 0; i < 100; i++)
        p[i] = (uint16_t)i;
    img.display.has_padding = 0;
    img.display.has_rescale = 1;
    img.display.rescale_slope = -2;
    snprintf(img.photometric, sizeof img.photometric, "MONOCHROME2");
    CHECK(rf_render_display(&img, 0, NULL, out, mask, &info, &err) == 0);
    CHECK(info.auto_low < info.auto_high && out[0] == 1.0f && out[99] == 0.0f);
    rf_dicom_image_free(&img);
}

static void make_palette(rf_dicom_image *img, int entries, int32_t first, int bits, int segmented,
                         const uint16_t *data, int count)
{
    make_gray(img, 4, 4, 1, 0, "PALETTE COLOR");
    for (int k = 0; k < 3; k++)
        img->display.palette[k] = make_lut(entries, first, bits, segmented, data, count);
}

static void test_palettes(void)
{
    rf_dicom_image img;
    float out[16 * 3];
    rf_err err;
    /* index clamping: stored values 0..999 through 2 entries starting at 500 */
    uint16_t two[2] = {0, 255};
    make_palette(&img, 2, 500, 8, 0, two, 2);
    CHECK(display(&img, NULL, out, &err) == 0);
    int ok = 1;
    for (int i = 0; i < 16; i++)
        ok &= out[3 * i] == (((uint16_t *)img.pixels)[i] >= 501 ? 1.0f : 0.0f);
    CHECK(ok);
    /* a missing channel */
    free(img.display.palette[2].data);
    img.display.palette[2].data = NULL;
    CHECK(display(&img, NULL, out, &err) == RF_EFORMAT && strstr(err.msg, "blue"));
    rf_dicom_image_free(&img);

    /* segmented, 16-bit: an indirect segment at a nonzero byte offset
     * (PS3.3 C.7.9.2.3: bytes, so word 4 is byte 8) */
    uint16_t seg[] = {0, 2, 100, 200, /* discrete at word 0 */
                      0, 1, 7,        /* discrete at word 4 (byte 8) */
                      2, 1, 8, 0,     /* indirect: 1 segment from byte 8 */
                      1, 2, 9};       /* linear 7 -> 9 in 2 */
    uint16_t *e;
    rf_dicom_lut l = make_lut(6, 0, 16, 1, seg, (int)(sizeof seg / sizeof seg[0]));
    CHECK(rf_render_expand_lut(&l, &e, &err) == 0);
    static const uint16_t want6[6] = {100, 200, 7, 7, 8, 9};
    CHECK(e && memcmp(e, want6, sizeof want6) == 0);
    free(e);
    /* too few values for the descriptor */
    l.entries = 7;
    CHECK(rf_render_expand_lut(&l, &e, &err) == RF_EFORMAT && e == NULL);
    free(l.data);

    static const struct {
        const char *what;
        uint16_t data[8];
        int count;
    } bad[] = {
        {"first linear", {1, 3, 100}, 3},
        {"first indirect", {2, 1, 0, 0}, 4},
        {"unknown type", {0, 1, 5, 3, 1, 1}, 6},
        {"discrete overrun", {0, 9, 1, 2}, 4},
        {"linear overrun", {0, 1, 5, 1, 4}, 5},
        {"indirect overrun", {0, 1, 5, 2, 1, 0}, 6},
        {"indirect outside", {0, 1, 5, 2, 1, 200, 0}, 7},
        {"indirect odd byte", {0, 1, 5, 2, 1, 1, 0}, 7},
        {"nested indirect", {0, 1, 5, 2, 1, 6, 0, 0}, 7},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rf_dicom_lut b = make_lut(300, 0, 16, 1, bad[i].data, bad[i].count);
        int rc = rf_render_expand_lut(&b, &e, &err);
        CHECKF(rc == RF_EFORMAT && e == NULL, "%s: rc %d", bad[i].what, rc);
        free(b.data);
    }
    /* a nested indirect: the segment at byte 12 is itself indirect */
    uint16_t nest[] = {0, 1, 5, 2, 1, 12, 0, 2, 1, 0, 0, 0};
    rf_dicom_lut n = make_lut(10, 0, 16, 1, nest, 12);
    n.data[5] = 14; /* byte 14 = word 7: the second indirect */
    CHECK(rf_render_expand_lut(&n, &e, &err) == RF_EFORMAT && strstr(err.msg, "inside"));
    free(n.data);
    /* a million zero-length segments: bounded work, then an error */
    int count = (1 << 21) + 64;
    uint16_t *zeros = test_xmalloc((size_t)count * sizeof *zeros);
    memset(zeros, 0, (size_t)count * sizeof *zeros);
    zeros[0] = 0, zeros[1] = 1, zeros[2] = 5, zeros[3] = 0;
    rf_dicom_lut z = {256, 0, 16, 1, count, zeros};
    CHECK(rf_render_expand_lut(&z, &e, &err) == RF_EFORMAT);
    free(zeros);
    /* a palette image whose segments are bad: the error names the channel */
    uint16_t one[3] = {1, 3, 100};
    make_palette(&img, 4, 0, 16, 1, one, 3);
    CHECK(display(&img, NULL, out, &err) == RF_EFORMAT && strstr(err.msg, "red palette"));
    rf_dicom_image_free(&img);
}

int main(void)
{
    test_cases();
    test_hostile_windows();
    test_hostile_modality();
    test_auto_and_padding();
    test_palettes();
    return test_finish("test_render");
}
