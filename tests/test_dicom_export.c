/*
 * `radfuse dicom export` end to end: the PNG and JPEG files it writes are read
 * back here (libpng, libjpeg-turbo) and compared with imaging/render.c's
 * output for the same frames (exactly: the export must write what the
 * renderer computes) and, independently, with pydicom's values from
 * tests/data/render (within 1 step of 8 or 16 bits: pydicom's float64 and
 * radfuse's float32 may round a value at a .5 boundary differently). Names
 * carry no PHI, rewrites replace files atomically (no temporaries left), and
 * hostile use: an --out that cannot be a directory, bad --window values,
 * usage errors (exit 1), mixed good and bad inputs (exit 2, the good ones
 * written, one stderr line naming each bad input).
 */
#include <dirent.h>
#include <math.h>
#include <png.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h> /* after stdio.h */

#include "radfuse/render.h"
#include "tests/testutil.h"

#define OUT_CAP (1 << 20)
static char out[OUT_CAP], errb[1 << 16];

static const char *source_dir(void)
{
    const char *s = getenv("RADFUSE_SOURCE");
    if (!s || !*s) {
        fprintf(stderr, "FATAL: RADFUSE_SOURCE is not set (run through ctest)\n");
        exit(1);
    }
    return s;
}

static const char *shared_file(const char *rel)
{
    static char buf[8][4096];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 4096, "%s/data/dicom/pydicom-test-files/%s", test_shared_dir(), rel);
    return p;
}

static const char *local_file(const char *name)
{
    static char buf[8][4096];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 4096, "%s/tests/data/render/%s", source_dir(), name);
    return p;
}

/* radfuse dicom export ARGS... (NULL-terminated) */
static int run(const char *first, ...)
{
    char *argv[64];
    int n = 0;
    argv[n++] = (char *)test_radfuse_bin();
    argv[n++] = "dicom";
    argv[n++] = "export";
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a && n < 63; a = va_arg(ap, const char *))
        argv[n++] = (char *)a;
    va_end(ap);
    argv[n] = NULL;
    return test_run(argv, out, OUT_CAP, errb, sizeof errb);
}

/* ---- readers ---- */

typedef struct picture {
    int w, h, ch, bits;
    uint16_t *v; /* w * h * ch samples */
} picture;

static int read_png(const char *path, picture *p)
{
    memset(p, 0, sizeof *p);
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        fclose(f);
        return -1;
    }
    png_init_io(png, f);
    png_read_png(png, info, PNG_TRANSFORM_IDENTITY, NULL);
    int ct = png_get_color_type(png, info);
    p->w = (int)png_get_image_width(png, info);
    p->h = (int)png_get_image_height(png, info);
    p->bits = png_get_bit_depth(png, info);
    p->ch = ct == PNG_COLOR_TYPE_RGB ? 3 : ct == PNG_COLOR_TYPE_GRAY ? 1 : -1;
    png_bytepp rows = png_get_rows(png, info);
    p->v = test_xmalloc((size_t)p->w * (size_t)p->h * (size_t)(p->ch > 0 ? p->ch : 1) * 2);
    for (int y = 0; y < p->h && p->ch > 0; y++)
        for (int i = 0; i < p->w * p->ch; i++)
            p->v[(size_t)y * (size_t)(p->w * p->ch) + (size_t)i] =
                p->bits == 16 ? (uint16_t)(rows[y][2 * i] << 8 | rows[y][2 * i + 1]) : rows[y][i];
    png_destroy_read_struct(&png, &info, NULL);
    fclose(f);
    return p->ch > 0 ? 0 : -1;
}

static int read_jpeg(const char *path, picture *p)
{
    memset(p, 0, sizeof *p);
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    struct jpeg_decompress_struct ci;
    struct jpeg_error_mgr jerr;
    ci.err = jpeg_std_error(&jerr); /* our own files: an error here exits the test, which fails it */
    jpeg_create_decompress(&ci);
    jpeg_stdio_src(&ci, f);
    jpeg_read_header(&ci, TRUE);
    jpeg_start_decompress(&ci);
    p->w = (int)ci.output_width;
    p->h = (int)ci.output_height;
    p->ch = ci.output_components;
    p->bits = 8;
    p->v = test_xmalloc((size_t)p->w * (size_t)p->h * (size_t)p->ch * 2);
    unsigned char *row = test_xmalloc((size_t)p->w * (size_t)p->ch);
    while (ci.output_scanline < ci.output_height) {
        size_t y = ci.output_scanline;
        jpeg_read_scanlines(&ci, &row, 1);
        for (int i = 0; i < p->w * p->ch; i++)
            p->v[y * (size_t)(p->w * p->ch) + (size_t)i] = row[i];
    }
    jpeg_finish_decompress(&ci);
    jpeg_destroy_decompress(&ci);
    free(row);
    fclose(f);
    return 0;
}

/* ---- checks ---- */

/* Does the picture hold exactly what rf_render_display_int gives for frame? */
static void check_same_as_render(const char *dicom, int frame, const rf_render_opts *o, const char *png_path, int bits)
{
    rf_dicom_image img;
    rf_err err;
    picture p;
    if (rf_dicom_read(dicom, RF_DICOM_PIXELS, &img, &err)) {
        CHECKF(0, "%s", err.msg);
        return;
    }
    int ch = rf_render_channels(&img);
    size_t n = (size_t)img.rows * (size_t)img.columns * (size_t)ch;
    void *want = test_xmalloc(n * 2);
    CHECK(rf_render_display_int(&img, frame, o, bits, want, NULL, &err) == 0);
    CHECKF(read_png(png_path, &p) == 0, "cannot read %s", png_path);
    CHECKF(p.w == img.columns && p.h == img.rows && p.ch == ch && p.bits == bits, "%s: %dx%dx%d %d-bit", png_path,
           p.w, p.h, p.ch, p.bits);
    if (p.v && p.w == img.columns && p.h == img.rows && p.ch == ch) {
        size_t bad = 0;
        for (size_t i = 0; i < n; i++)
            bad += p.v[i] != (bits == 8 ? ((uint8_t *)want)[i] : ((uint16_t *)want)[i]);
        CHECKF(bad == 0, "%s: %zu samples differ from the render", png_path, bad);
    }
    free(p.v);
    free(want);
    rf_dicom_image_free(&img);
}

/* Against pydicom's values (tests/data/render/NAME.f32, kept every stride pixels). */
static void check_against_pydicom(const char *png_path, const char *name, int stride)
{
    char f32[4096];
    size_t nkept;
    snprintf(f32, sizeof f32, "%s/tests/data/render/%s.f32", source_dir(), name);
    float *want = (float *)test_read_file(f32, &nkept);
    picture p;
    CHECKF(want && read_png(png_path, &p) == 0, "%s / %s", png_path, f32);
    if (!want || !p.v) {
        free(want);
        return;
    }
    nkept /= sizeof(float);
    double full = p.bits == 16 ? 65535 : 255;
    size_t k = 0, bad = 0;
    for (int y = 0; y < p.h; y += stride)
        for (int x = 0; x < p.w; x += stride)
            for (int c = 0; c < p.ch && k < nkept; c++, k++) {
                double w = want[k] * full, g = p.v[((size_t)y * (size_t)p.w + (size_t)x) * (size_t)p.ch + (size_t)c];
                if (fabs(g - w) > 1.0 && bad++ < 3)
                    fprintf(stderr, "%s [%d,%d,%d]: %g, pydicom %g\n", png_path, y, x, c, g, w);
            }
    CHECKF(k == nkept, "%s: compared %zu of %zu values", name, k, nkept);
    CHECKF(bad == 0, "%s: %zu samples more than 1 step from pydicom", png_path, bad);
    free(p.v);
    free(want);
}

static int count_lines_with(const char *text, const char *needle)
{
    int n = 0;
    for (const char *s = text; (s = strstr(s, needle)); s++)
        n++;
    return n;
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Every name in dir is [0-9._]+ then .png or .jpg (no PHI), and no temporaries are left. */
static int names_ok(const char *dir, int *count)
{
    DIR *d = opendir(dir);
    int ok = 1;
    *count = 0;
    if (!d)
        return 0;
    for (struct dirent *e; (e = readdir(d));) {
        const char *s = e->d_name;
        size_t n = strlen(s);
        if (strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
            continue;
        (*count)++;
        size_t stem = 0;
        while (stem < n && strchr("0123456789._", s[stem]))
            stem++;
        if (n < 5 || (strcmp(s + n - 4, ".png") && strcmp(s + n - 4, ".jpg")) || stem < n - 4 ||
            strstr(s, ".tmp.")) {
            fprintf(stderr, "%s: unexpected name %s\n", dir, s);
            ok = 0;
        }
    }
    closedir(d);
    return ok;
}

#define SOP_CT "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322"
#define SOP_MR "1.3.6.1.4.1.5962.1.1.4.1.1.20040826185059.5457"
#define SOP_RGB2 "1.2.826.0.1.3680043.8.498.49043964482360854182530167603505525116"

static void test_png8(const char *tmp)
{
    char dir[4200], path[4400];
    snprintf(dir, sizeof dir, "%s/png8", tmp);
    const char *ct = shared_file("CT_small.dcm"), *mr = shared_file("MR_small.dcm");
    const char *cr = shared_file("dicomdirtests/77654033/CR1/6154"), *rgb = shared_file("SC_rgb_rle_16bit_2frame.dcm");
    const char *pal = local_file("palseg8.dcm"), *sig = local_file("signed12.dcm");
    int rc = run(ct, mr, cr, rgb, pal, sig, "--out", dir, NULL);
    CHECKF(rc == 0, "exit %d: %s", rc, errb);
    CHECKF(test_count_lines(out) == 9, "stdout lists %d files:\n%s", test_count_lines(out), out);
    CHECKF(errb[0] == 0, "stderr not empty without -v: %s", errb);
    int count;
    CHECK(names_ok(dir, &count) && count == 9);
    rf_render_opts def = {RF_VOI_DEFAULT, 0, 0, 0, RF_VOI_FN_FILE};
    snprintf(path, sizeof path, "%s/" SOP_CT ".png", dir);
    check_same_as_render(ct, 0, &def, path, 8);
    check_against_pydicom(path, "ct_auto", 4);
    snprintf(path, sizeof path, "%s/" SOP_MR ".png", dir);
    check_same_as_render(mr, 0, &def, path, 8);
    check_against_pydicom(path, "mr_window", 2);
    snprintf(path, sizeof path, "%s/" SOP_RGB2 "_2.png", dir);
    check_same_as_render(rgb, 1, &def, path, 8);
    check_against_pydicom(path, "rgb16_f1", 4);
    /* the synthetic ones: read for their UIDs */
    const char *locals[2] = {pal, sig};
    for (int k = 0; k < 2; k++) {
        rf_dicom_image img;
        rf_err err;
        CHECK(rf_dicom_read(locals[k], RF_DICOM_ATTRS, &img, &err) == 0);
        for (int f = 0; f < img.frames; f++) {
            if (img.frames > 1)
                snprintf(path, sizeof path, "%s/%s_%d.png", dir, img.sop_uid, f + 1);
            else
                snprintf(path, sizeof path, "%s/%s.png", dir, img.sop_uid);
            check_same_as_render(locals[k], f, &def, path, 8);
        }
        if (k == 0)
            check_against_pydicom(path, "palseg8", 1);
        else
            check_against_pydicom(path, "signed12_auto_f2", 1); /* frame 3 of 3: auto */
        rf_dicom_image_free(&img);
    }
    /* MONOCHROME1 */
    rf_dicom_image img;
    rf_err err;
    CHECK(rf_dicom_read(cr, RF_DICOM_ATTRS, &img, &err) == 0);
    snprintf(path, sizeof path, "%s/%s.png", dir, img.sop_uid);
    check_same_as_render(cr, 0, &def, path, 8);
    check_against_pydicom(path, "cr_mono1", 1);
    rf_dicom_image_free(&img);

    /* again into the same directory: every file replaced, none left over */
    snprintf(path, sizeof path, "%s/" SOP_CT ".png", dir);
    test_write_file(path, "not a png", 9);
    rc = run(ct, mr, cr, rgb, pal, sig, "--out", dir, NULL);
    CHECKF(rc == 0, "exit %d: %s", rc, errb);
    CHECK(names_ok(dir, &count) && count == 9);
    check_same_as_render(ct, 0, &def, path, 8);
}

static void test_png16_and_windows(const char *tmp)
{
    char dir[4200], path[4400];
    const char *ct = shared_file("CT_small.dcm"), *mr = shared_file("MR_small.dcm");
    snprintf(dir, sizeof dir, "%s/png16", tmp);
    int rc = run(mr, "--out", dir, "--16bit", NULL);
    CHECKF(rc == 0, "exit %d: %s", rc, errb);
    rf_render_opts def = {RF_VOI_DEFAULT, 0, 0, 0, RF_VOI_FN_FILE};
    snprintf(path, sizeof path, "%s/" SOP_MR ".png", dir);
    check_same_as_render(mr, 0, &def, path, 16);
    check_against_pydicom(path, "mr_window", 2);

    snprintf(dir, sizeof dir, "%s/explicit", tmp);
    rc = run(ct, "--window", "40,400", "--out", dir, NULL);
    CHECKF(rc == 0, "exit %d: %s", rc, errb);
    rf_render_opts ex = {RF_VOI_EXPLICIT, 0, 40, 400, RF_VOI_FN_FILE};
    snprintf(path, sizeof path, "%s/" SOP_CT ".png", dir);
    check_same_as_render(ct, 0, &ex, path, 8);
    check_against_pydicom(path, "ct_explicit", 4);

    snprintf(dir, sizeof dir, "%s/auto", tmp);
    rc = run(mr, "--window", "auto", "--out", dir, "--16bit", "-v", NULL);
    CHECKF(rc == 0, "exit %d: %s", rc, errb);
    CHECKF(strstr(errb, "auto window") != NULL, "-v names the window: %s", errb);
    rf_render_opts au = {RF_VOI_AUTO, 0, 0, 0, RF_VOI_FN_FILE};
    snprintf(path, sizeof path, "%s/" SOP_MR ".png", dir);
    check_same_as_render(mr, 0, &au, path, 16);
    check_against_pydicom(path, "mr_auto", 2);
}

static void test_jpeg(const char *tmp)
{
    char dir[4200], path[4400];
    const char *mr = shared_file("MR_small.dcm"), *ybr = shared_file("SC_ybr_full_422_uncompressed.dcm");
    snprintf(dir, sizeof dir, "%s/jpeg", tmp);
    int rc = run(mr, ybr, "--jpeg", "--quality", "95", "--out", dir, NULL);
    CHECKF(rc == 0, "exit %d: %s", rc, errb);
    int count;
    CHECK(names_ok(dir, &count) && count == 2);
    const char *inputs[2] = {mr, ybr};
    for (int k = 0; k < 2; k++) {
        rf_dicom_image img;
        rf_err err;
        picture p;
        CHECK(rf_dicom_read(inputs[k], RF_DICOM_PIXELS, &img, &err) == 0);
        snprintf(path, sizeof path, "%s/%s.jpg", dir, img.sop_uid);
        CHECKF(read_jpeg(path, &p) == 0, "cannot read %s", path);
        int ch = rf_render_channels(&img);
        CHECK(p.w == img.columns && p.h == img.rows && p.ch == ch);
        size_t n = (size_t)img.rows * (size_t)img.columns * (size_t)ch;
        uint8_t *want = test_xmalloc(n);
        CHECK(rf_render_display_int(&img, 0, NULL, 8, want, NULL, &err) == 0);
        if (p.v && p.w == img.columns && p.h == img.rows && p.ch == ch) {
            double sum = 0;
            for (size_t i = 0; i < n; i++)
                sum += fabs((double)p.v[i] - want[i]);
            /* lossy at quality 95: a mean error of a few steps at most */
            CHECKF(sum / (double)n < 3.0, "%s: mean abs error %g", path, sum / (double)n);
        }
        free(want);
        free(p.v);
        rf_dicom_image_free(&img);
    }
}

static void test_hostile(const char *tmp)
{
    char dir[4200], file[4200], sub[4400], path[4400];
    const char *ct = shared_file("CT_small.dcm");
    snprintf(dir, sizeof dir, "%s/hostile", tmp);
    /* usage errors: exit 1, nothing written */
    static const char *bad_windows[] = {"abc", "40", "40,0", "40,-5", "40,nan", ",", "40,inf", "40,10x", ""};
    for (size_t i = 0; i < sizeof bad_windows / sizeof bad_windows[0]; i++) {
        int rc = run(ct, "--out", dir, "--window", bad_windows[i], NULL);
        CHECKF(rc == 1 && strstr(errb, "--window"), "--window '%s': exit %d: %s", bad_windows[i], rc, errb);
    }
    CHECK(run(ct, "--out", dir, "--window", NULL) == 1);
    CHECK(run(ct, "--out", dir, "--jpeg", "--16bit", NULL) == 1 && strstr(errb, "16bit"));
    CHECK(run(ct, "--out", dir, "--jpeg", "--png", NULL) == 1);
    CHECK(run(ct, "--out", dir, "--jpeg", "--quality", "0", NULL) == 1);
    CHECK(run(ct, "--out", dir, "--jpeg", "--quality", "101", NULL) == 1);
    CHECK(run(ct, "--out", dir, "--quality", "50", NULL) == 1);
    CHECK(run(ct, NULL) == 1 && strstr(errb, "--out"));
    CHECK(run("--out", dir, NULL) == 1);
    CHECK(run(ct, "--out", NULL) == 1);
    CHECK(run(ct, "--out", dir, "--bogus", NULL) == 1);
    struct stat st;
    CHECK(stat(dir, &st) != 0); /* nothing created by usage errors */

    /* an --out that cannot be a directory: exit 2, one line */
    snprintf(file, sizeof file, "%s/plainfile", tmp);
    test_write_file(file, "x", 1);
    int rc = run(ct, "--out", file, NULL);
    CHECKF(rc == 2 && test_count_lines(errb) == 1 && strstr(errb, file), "exit %d: %s", rc, errb);
    snprintf(sub, sizeof sub, "%s/sub", file);
    rc = run(ct, "--out", sub, NULL);
    CHECKF(rc == 2 && test_count_lines(errb) == 1 && strstr(errb, sub), "exit %d: %s", rc, errb);

    /* mixed inputs: good files are written, each bad one is one line naming it */
    char junk[4200], missing[4200];
    snprintf(junk, sizeof junk, "%s/junk.dcm", tmp);
    snprintf(missing, sizeof missing, "%s/missing.dcm", tmp);
    test_write_file(junk, "this is not DICOM at all", 24);
    const char *badwin = local_file("badwindow.dcm"), *mr = shared_file("MR_small.dcm");
    rc = run(junk, ct, missing, badwin, mr, "--out", dir, NULL);
    CHECKF(rc == 2, "exit %d", rc);
    CHECKF(count_lines_with(errb, junk) == 1 && count_lines_with(errb, missing) == 1 &&
               count_lines_with(errb, badwin) == 1 && strstr(errb, "3 of 5 inputs failed") &&
               test_count_lines(errb) == 4,
           "stderr:\n%s", errb);
    CHECKF(strstr(errb, "width") != NULL, "the window error says why: %s", errb);
    snprintf(path, sizeof path, "%s/" SOP_CT ".png", dir);
    CHECK(file_exists(path));
    snprintf(path, sizeof path, "%s/" SOP_MR ".png", dir);
    CHECK(file_exists(path));
    CHECK(test_count_lines(out) == 2);
    /* the bad window is fine with --window auto */
    rc = run(badwin, "--out", dir, "--window", "auto", NULL);
    CHECKF(rc == 0, "exit %d: %s", rc, errb);
    /* an encoder's refusal (JPEG stops at 65500 columns) is that input's error; PNG takes it */
    const char *wide = local_file("wide.dcm");
    rc = run(wide, "--jpeg", "--out", dir, NULL);
    CHECKF(rc == 2 && count_lines_with(errb, wide) == 1 && strstr(errb, "JPEG encoding failed"), "exit %d: %s", rc,
           errb);
    rc = run(wide, "--out", dir, NULL);
    CHECKF(rc == 0 && test_count_lines(out) == 1, "exit %d: %s", rc, errb);
    /* nothing found */
    char empty[4200];
    snprintf(empty, sizeof empty, "%s/emptydir", tmp);
    mkdir(empty, 0777);
    CHECK(run(empty, "--out", dir, NULL) == 2);
}

int main(void)
{
    char tmp[256];
    test_tmpdir(tmp, sizeof tmp);
    test_png8(tmp);
    test_png16_and_windows(tmp);
    test_jpeg(tmp);
    test_hostile(tmp);
    return test_finish("test_dicom_export");
}
