/*
 * The attributes rf_dicom_read hands back beyond the pixels, against values
 * pydicom 2.3.1 reads from the same files (written down here, not computed by
 * radfuse): text converted to UTF-8 from every character set of pydicom's
 * charset corpus, geometry, rescale, windows and padding. And reading from
 * memory (rf_dicom_read_memory) gives exactly what reading the file gives,
 * for every file of the shared corpus, ok or not.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "radfuse/imaging.h"
#include "tests/testutil.h"

static const struct {
    const char *file, *name;
} patient_names[] = {
    {"chrArab.dcm", "قباني^لنزار"},
    {"chrFren.dcm", "Buc^Jérôme"},
    {"chrFrenMulti.dcm", "Buc^Jérôme"},
    {"chrGerm.dcm", "Äneas^Rüdiger"},
    {"chrGreek.dcm", "Διονυσιος"},
    {"chrH31.dcm", "Yamada^Tarou=山田^太郎=やまだ^たろう"},
    {"chrH32.dcm", "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう"},
    {"chrHbrw.dcm", "שרון^דבורה"},
    {"chrI2.dcm", "Hong^Gildong=洪^吉洞=홍^길동"},
    {"chrJapMulti.dcm", "やまだ^たろう"},
    {"chrJapMultiExplicitIR6.dcm", "やまだ^たろう"},
    {"chrKoreanMulti.dcm", "김희중"},
    {"chrRuss.dcm", "Люкceмбypг"},
    {"chrX1.dcm", "Wang^XiaoDong=王^小東"},
    {"chrX2.dcm", "Wang^XiaoDong=王^小东"},
};

static int read_shared(const char *rel, int flags, rf_dicom_image *img)
{
    char path[4096];
    rf_err err;
    snprintf(path, sizeof path, "%s/data/dicom/%s", test_shared_dir(), rel);
    int rc = rf_dicom_read(path, flags, img, &err);
    if (rc)
        fprintf(stderr, "%s\n", err.msg);
    return rc;
}

static void test_charsets(void)
{
    for (size_t i = 0; i < sizeof patient_names / sizeof patient_names[0]; i++) {
        char rel[256];
        rf_dicom_image img;
        snprintf(rel, sizeof rel, "pydicom-charset-files/%s", patient_names[i].file);
        /* some have no pixel data: listed, not decoded */
        CHECKF(read_shared(rel, RF_DICOM_NO_PIXELS_OK, &img) == 0, "%s", rel);
        CHECKF(img.charset_ok, "%s: charset '%s' not converted", rel, img.charset);
        CHECKF(strcmp(img.patient_name, patient_names[i].name) == 0, "%s: '%s', pydicom '%s'", rel,
               img.patient_name, patient_names[i].name);
        rf_dicom_image_free(&img);
    }
}

static int near(double a, double b)
{
    return fabs(a - b) <= 1e-9 * (1 + fabs(b));
}

static void test_geometry_and_display(void)
{
    rf_dicom_image img;
    CHECK(read_shared("pydicom-test-files/CT_small.dcm", RF_DICOM_ATTRS, &img) == 0);
    CHECK(img.display.has_rescale && near(img.display.rescale_slope, 1) && near(img.display.rescale_intercept, -1024));
    CHECK(img.display.has_padding && img.display.padding_value == -2000 && !img.display.has_padding_limit);
    CHECK(img.display.nwindows == 0);
    CHECK(img.has_position && near(img.position[0], -158.135803) && near(img.position[1], -179.035797) &&
          near(img.position[2], -75.699997));
    CHECK(img.has_orientation && near(img.orientation[0], 1) && near(img.orientation[4], 1) &&
          near(img.orientation[5], 0));
    CHECK(img.has_spacing && near(img.spacing[0], 0.661468) && near(img.spacing[1], 0.661468));
    CHECK(img.has_series_number && img.series_number == 1);
    CHECKF(strcmp(img.image_type, "ORIGINAL\\PRIMARY\\AXIAL") == 0, "%s", img.image_type);
    CHECKF(strcmp(img.study_description, "e+1") == 0, "%s", img.study_description);
    rf_dicom_image_free(&img);

    CHECK(read_shared("pydicom-test-files/J2K_pixelrep_mismatch.dcm", RF_DICOM_ATTRS, &img) == 0);
    CHECK(img.display.nwindows == 3);
    CHECK(near(img.display.window_center[2], 40) && near(img.display.window_width[2], 200) &&
          near(img.display.window_width[0], 100));
    CHECK(near(img.orientation[4], 0.9272) && near(img.orientation[5], -0.3746));
    CHECK(strcmp(img.body_part, "HEAD") == 0 && strcmp(img.series_description, "Lv2") == 0);
    CHECKF(strcmp(img.patient_orientation, "L\\PF") == 0, "%s", img.patient_orientation);
    CHECK(img.series_number == 4);
    rf_dicom_image_free(&img);

    /* CR: no position; ImagerPixelSpacing stands in for PixelSpacing */
    CHECK(read_shared("pydicom-test-files/dicomdirtests/77654033/CR1/6154", RF_DICOM_ATTRS, &img) == 0);
    CHECK(near(img.display.rescale_slope, 0.684) && near(img.display.rescale_intercept, 200));
    CHECK(img.display.nwindows == 1 && near(img.display.window_center[0], 1600) &&
          near(img.display.window_width[0], 2800));
    CHECK(!img.has_position && !img.has_orientation && img.has_spacing && near(img.spacing[0], 0.1));
    CHECK(strcmp(img.view, "LL") == 0 && strcmp(img.modality, "CR") == 0 && strcmp(img.body_part, "CSPINE") == 0);
    CHECK(strcmp(img.series_description, "Cervical LAT") == 0);
    CHECK(strcmp(img.image_type, "DERIVED\\PRIMARY") == 0);
    CHECK(strcmp(img.photometric, "MONOCHROME1") == 0);
    rf_dicom_image_free(&img);

    /* MR: windows without rescale */
    CHECK(read_shared("pydicom-test-files/MR_small.dcm", RF_DICOM_ATTRS, &img) == 0);
    CHECK(!img.display.has_rescale && near(img.display.rescale_slope, 1) && near(img.display.rescale_intercept, 0));
    CHECK(img.display.nwindows == 1 && near(img.display.window_center[0], 600) &&
          near(img.display.window_width[0], 1600));
    CHECK(!img.display.modality_lut.data && !img.display.voi_lut.data && !img.display.palette[0].data);
    rf_dicom_image_free(&img);
}

/* Memory and file reads agree on every file: status, attributes, pixels. */
static void test_memory_matches_file(void)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/data/dicom", test_shared_dir());
    const char *roots[] = {dir};
    char **paths;
    size_t n;
    rf_err err;
    CHECK(rf_collect_files(roots, 1, &paths, &n, &err) == 0);
    CHECKF(n >= 180, "%zu files", n);
    int both_ok = 0;
    for (size_t i = 0; i < n; i++) {
        size_t size;
        char *data = test_read_file(paths[i], &size);
        CHECKF(data != NULL, "%s", paths[i]);
        if (!data)
            continue;
        rf_dicom_image a, b;
        rf_err ea, eb;
        int ra = rf_dicom_read(paths[i], RF_DICOM_PIXELS, &a, &ea);
        int rb = rf_dicom_read_memory(data, size, paths[i], RF_DICOM_PIXELS, &b, &eb);
        CHECKF((ra == 0) == (rb == 0), "%s: file %s, memory %s", paths[i], ra ? ea.msg : "ok", rb ? eb.msg : "ok");
        if (ra == 0 && rb == 0) {
            both_ok++;
            char ha[65], hb[65];
            rf_dicom_pixel_sha256(&a, ha);
            rf_dicom_pixel_sha256(&b, hb);
            CHECKF(strcmp(ha, hb) == 0, "%s: pixels differ", paths[i]);
            CHECK(strcmp(a.sop_uid, b.sop_uid) == 0 && strcmp(a.transfer_syntax, b.transfer_syntax) == 0);
            CHECK(strcmp(a.patient_name, b.patient_name) == 0 && a.frames == b.frames);
        }
        rf_dicom_image_free(&a);
        rf_dicom_image_free(&b);
        free(data);
    }
    CHECKF(both_ok >= 85, "%d files read both ways", both_ok);
    rf_paths_free(paths, n);

    /* empty and tiny buffers */
    rf_dicom_image img;
    CHECK(rf_dicom_read_memory(NULL, 0, "empty", RF_DICOM_ATTRS, &img, &err) == RF_EFORMAT);
    CHECK(strstr(err.msg, "empty:") == err.msg);
    CHECK(rf_dicom_read_memory("DICM", 4, NULL, RF_DICOM_ATTRS, &img, &err) != 0);

    /* without pixel data: an error, unless asked to list it */
    char path[4096];
    snprintf(path, sizeof path, "%s/data/dicom/pydicom-test-files/test-SR.dcm", test_shared_dir());
    CHECK(rf_dicom_read(path, RF_DICOM_ATTRS, &img, &err) == RF_EFORMAT && strstr(err.msg, "no pixel data"));
    CHECK(rf_dicom_read(path, RF_DICOM_NO_PIXELS_OK, &img, &err) == 0);
    CHECK(!img.has_pixel_data && strcmp(img.modality, "SR") == 0 && img.sop_uid[0]);
    rf_dicom_image_free(&img);
}

int main(void)
{
    test_charsets();
    test_geometry_and_display();
    test_memory_matches_file();
    return test_finish("test_dicom_attrs");
}
