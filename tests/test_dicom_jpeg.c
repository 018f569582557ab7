/*
 * 8-bit grayscale JPEG through libjpeg-turbo gives exactly what DCMTK's own
 * IJG codec gives (both use the accurate integer IDCT): every file of the
 * shared corpus read both ways (RF_DICOM_DCMTK_JPEG) agrees on status and
 * values, and so do real chest radiographs (shared/data/covid-chestxray,
 * 8-bit grayscale JPEGs) wrapped here into JPEG baseline DICOM objects in
 * memory, one frame, and two frames with a Basic Offset Table.
 */
#include <stdlib.h>
#include <string.h>

#include "radfuse/imaging.h"
#include "tests/testutil.h"

typedef struct wbuf {
    unsigned char *p;
    size_t n, cap;
} wbuf;

static void put(wbuf *b, const void *d, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2;
        b->p = realloc(b->p, b->cap);
        if (!b->p)
            exit(1);
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}

static void put16(wbuf *b, unsigned v)
{
    unsigned char x[2] = {(unsigned char)v, (unsigned char)(v >> 8)};
    put(b, x, 2);
}

static void put32(wbuf *b, unsigned long v)
{
    put16(b, (unsigned)(v & 0xffff));
    put16(b, (unsigned)(v >> 16));
}

/* An explicit VR little endian element with a short (2-byte) length. */
static void elem(wbuf *b, unsigned g, unsigned e, const char *vr, const void *v, size_t n)
{
    put16(b, g);
    put16(b, e);
    put(b, vr, 2);
    put16(b, (unsigned)(n + (n & 1)));
    put(b, v, n);
    if (n & 1)
        put(b, strcmp(vr, "UI") == 0 ? "\0" : " ", 1);
}

static void elem_str(wbuf *b, unsigned g, unsigned e, const char *vr, const char *s)
{
    elem(b, g, e, vr, s, strlen(s));
}

static void elem_us(wbuf *b, unsigned g, unsigned e, unsigned v)
{
    unsigned char x[2] = {(unsigned char)v, (unsigned char)(v >> 8)};
    elem(b, g, e, "US", x, 2);
}

/* Width and height from the first SOF marker; 0 unless baseline (SOF0) with one component. */
static int jpeg_gray_baseline(const unsigned char *j, size_t n, int *w, int *h)
{
    for (size_t i = 2; i + 9 < n;) {
        if (j[i] != 0xff)
            return 0;
        unsigned m = j[i + 1], len = (unsigned)j[i + 2] << 8 | j[i + 3];
        if (m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc) {
            *h = j[i + 5] << 8 | j[i + 6];
            *w = j[i + 7] << 8 | j[i + 8];
            return m == 0xc0 && j[i + 9] == 1;
        }
        i += 2 + len;
    }
    return 0;
}

/* A JPEG baseline DICOM object holding frames copies of jpeg. */
static wbuf wrap(const unsigned char *jpeg, size_t n, int w, int h, int frames)
{
    wbuf b = {0};
    unsigned char pre[128] = {0};
    put(&b, pre, 128);
    put(&b, "DICM", 4);
    elem_str(&b, 0x0002, 0x0010, "UI", "1.2.840.10008.1.2.4.50");
    elem_str(&b, 0x0008, 0x0016, "UI", "1.2.840.10008.5.1.4.1.1.7");
    elem_str(&b, 0x0008, 0x0018, "UI", "1.2.826.0.1.3680043.10.1234.1");
    elem_str(&b, 0x0008, 0x0060, "CS", "OT");
    elem_str(&b, 0x0020, 0x000d, "UI", "1.2.826.0.1.3680043.10.1234.2");
    elem_str(&b, 0x0020, 0x000e, "UI", "1.2.826.0.1.3680043.10.1234.3");
    elem_us(&b, 0x0028, 0x0002, 1);
    elem_str(&b, 0x0028, 0x0004, "CS", "MONOCHROME2");
    char nf[16];
    snprintf(nf, sizeof nf, "%d", frames);
    elem_str(&b, 0x0028, 0x0008, "IS", nf);
    elem_us(&b, 0x0028, 0x0010, (unsigned)h);
    elem_us(&b, 0x0028, 0x0011, (unsigned)w);
    elem_us(&b, 0x0028, 0x0100, 8);
    elem_us(&b, 0x0028, 0x0101, 8);
    elem_us(&b, 0x0028, 0x0102, 7);
    elem_us(&b, 0x0028, 0x0103, 0);
    put16(&b, 0x7fe0);
    put16(&b, 0x0010);
    put(&b, "OB\0\0", 4);
    put32(&b, 0xffffffffu);
    size_t item = 8 + n + (n & 1);
    put16(&b, 0xfffe); /* Basic Offset Table */
    put16(&b, 0xe000);
    put32(&b, frames > 1 ? 4ul * (unsigned long)frames : 0);
    for (int f = 0; f < frames && frames > 1; f++)
        put32(&b, (unsigned long)(f * item));
    for (int f = 0; f < frames; f++) {
        put16(&b, 0xfffe);
        put16(&b, 0xe000);
        put32(&b, (unsigned long)(n + (n & 1)));
        put(&b, jpeg, n);
        if (n & 1)
            put(&b, "\0", 1);
    }
    put16(&b, 0xfffe);
    put16(&b, 0xe0dd);
    put32(&b, 0);
    return b;
}

static int same_both_ways(const void *data, size_t n, const char *name, int *ok)
{
    rf_dicom_image a, b;
    rf_err ea, eb;
    int ra = rf_dicom_read_memory(data, n, name, RF_DICOM_PIXELS, &a, &ea);
    int rb = rf_dicom_read_memory(data, n, name, RF_DICOM_PIXELS | RF_DICOM_DCMTK_JPEG, &b, &eb);
    int same = (ra == 0) == (rb == 0);
    if (ra == 0 && rb == 0) {
        char ha[65], hb[65];
        rf_dicom_pixel_sha256(&a, ha);
        rf_dicom_pixel_sha256(&b, hb);
        same = strcmp(ha, hb) == 0 && a.pixels_size == b.pixels_size;
        *ok += 1;
    }
    if (!same)
        fprintf(stderr, "%s: libjpeg-turbo %s, DCMTK %s\n", name, ra ? ea.msg : "ok", rb ? eb.msg : "ok");
    rf_dicom_image_free(&a);
    rf_dicom_image_free(&b);
    return same;
}

int main(void)
{
    char dir[4096];
    rf_err err;
    /* the corpus, both ways */
    snprintf(dir, sizeof dir, "%s/data/dicom", test_shared_dir());
    const char *roots[] = {dir};
    char **paths;
    size_t n;
    CHECK(rf_collect_files(roots, 1, &paths, &n, &err) == 0);
    int ok = 0;
    for (size_t i = 0; i < n; i++) {
        size_t size;
        char *data = test_read_file(paths[i], &size);
        CHECKF(data && same_both_ways(data, size, paths[i], &ok), "%s", paths[i]);
        free(data);
    }
    rf_paths_free(paths, n);
    CHECKF(ok >= 85, "%d corpus files read", ok);

    /* real radiographs as JPEG baseline DICOM, one frame and two */
    int wrapped = 0;
    ok = 0;
    snprintf(dir, sizeof dir, "%s/data/covid-chestxray/images", test_shared_dir());
    const char *img_roots[] = {dir};
    char **imgs;
    size_t nimg;
    CHECK(rf_collect_files(img_roots, 1, &imgs, &nimg, &err) == 0);
    for (size_t i = 0; i < nimg && wrapped < 24; i++) {
        size_t size;
        unsigned char *jpeg = (unsigned char *)test_read_file(imgs[i], &size);
        int w, h;
        if (jpeg && jpeg_gray_baseline(jpeg, size, &w, &h)) {
            for (int frames = 1; frames <= 2; frames++) {
                wbuf b = wrap(jpeg, size, w, h, frames);
                CHECKF(same_both_ways(b.p, b.n, imgs[i], &ok), "%s (%d frames)", imgs[i], frames);
                free(b.p);
            }
            wrapped++;
        }
        free(jpeg);
    }
    rf_paths_free(imgs, nimg);
    CHECKF(wrapped >= 20 && ok == 2 * wrapped, "%d radiographs wrapped, %d read both ways", wrapped, ok);
    return test_finish("test_dicom_jpeg");
}
