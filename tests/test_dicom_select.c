/*
 * Choosing images (imaging/select.c) on attribute sets built here, no files:
 * every rule of docs/imaging.md "Choosing images" with the decision and the
 * reason it must give, the order of the view evidence, studies that decide
 * together (unknown views, FOR PROCESSING twins, one CT/MR series), and the
 * SOP class table. The corpus cases (dicomdirtests) are in test_dicom_study.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "radfuse/study.h"
#include "tests/testutil.h"

static rf_studies S;
static int serial;

static void begin(void)
{
    rf_studies_init(&S);
    serial = 0;
}

/* An image of modality mod in study/series, with ImageType ORIGINAL\PRIMARY. */
static rf_dicom_image img(const char *study, const char *series, const char *mod)
{
    rf_dicom_image m;
    memset(&m, 0, sizeof m);
    snprintf(m.study_uid, sizeof m.study_uid, "%s", study);
    snprintf(m.series_uid, sizeof m.series_uid, "%s", series);
    snprintf(m.sop_uid, sizeof m.sop_uid, "9.%d", ++serial);
    snprintf(m.modality, sizeof m.modality, "%s", mod);
    snprintf(m.sop_class_uid, sizeof m.sop_class_uid, "%s",
             strcmp(mod, "CR") == 0   ? "1.2.840.10008.5.1.4.1.1.1"
             : strcmp(mod, "DX") == 0 ? "1.2.840.10008.5.1.4.1.1.1.1"
             : strcmp(mod, "MG") == 0 ? "1.2.840.10008.5.1.4.1.1.1.2"
             : strcmp(mod, "CT") == 0 ? "1.2.840.10008.5.1.4.1.1.2"
             : strcmp(mod, "MR") == 0 ? "1.2.840.10008.5.1.4.1.1.4"
                                      : "1.2.840.10008.5.1.4.1.1.6.1");
    snprintf(m.image_type, sizeof m.image_type, "ORIGINAL\\PRIMARY");
    m.has_pixel_data = 1;
    m.frames = 1;
    m.rows = m.columns = 8;
    return m;
}

static void add(const char *name, const rf_dicom_image *m)
{
    rf_err err;
    CHECKF(rf_studies_add(&S, name, m, NULL, &err) == 0, "%s", err.msg);
}

static void build(void)
{
    rf_err err;
    CHECKF(rf_studies_build(&S, &err) == 0, "%s", err.msg);
    for (size_t i = 0; i < S.ninst; i++)
        CHECKF(S.inst[i].reason[0], "%s: no reason", S.inst[i].name);
}

/* name was selected (or not), with a reason that starts with want. */
static void expect(const char *name, int selected, const char *want)
{
    for (size_t i = 0; i < S.ninst; i++) {
        const rf_instance *in = &S.inst[i];
        if (strcmp(in->name, name) != 0)
            continue;
        CHECKF(in->selected == selected && strncmp(in->reason, want, strlen(want)) == 0,
               "%s: selected %d '%s', want %d '%s...'", name, in->selected, in->reason, selected, want);
        return;
    }
    CHECKF(0, "%s: not in the set", name);
}

static void end(void)
{
    rf_studies_free(&S);
}

static void set(char *dst, const char *v)
{
    snprintf(dst, RF_DICOM_STR, "%s", v);
}

static void test_projection(void)
{
    rf_dicom_image m;
    begin();
    /* ViewPosition first, whatever else says */
    m = img("1", "1.1", "CR"), set(m.view, "PA");
    add("pa", &m);
    m = img("1", "1.2", "CR"), set(m.view, "AP");
    snprintf(m.series_description, sizeof m.series_description, "Chest LAT"); /* disagrees: noted */
    add("ap-desc-lat", &m);
    m = img("1", "1.3", "CR"), set(m.view, "LL");
    set(m.patient_orientation, "L\\F"); /* disagrees: ViewPosition wins */
    add("ll", &m);
    m = img("1", "1.4", "CR"), set(m.view, "rl"); /* lower case written by some devices */
    add("rl", &m);
    m = img("1", "1.5", "CR"), set(m.view, "LLD");
    add("decubitus", &m);
    /* no ViewPosition: SeriesDescription words, then ImageType words, then PatientOrientation */
    m = img("1", "1.6", "CR");
    snprintf(m.series_description, sizeof m.series_description, "Thorax p.a.");
    set(m.patient_orientation, "P\\F");
    add("desc-pa", &m);
    m = img("1", "1.7", "CR");
    snprintf(m.series_description, sizeof m.series_description, "CHEST, LATERAL");
    add("desc-lat", &m);
    m = img("1", "1.8", "CR");
    snprintf(m.series_description, sizeof m.series_description, "chest pa and lat"); /* both: no evidence */
    set(m.image_type, "DERIVED\\PRIMARY\\LAT");
    add("imagetype-lat", &m);
    m = img("1", "1.9", "CR");
    set(m.patient_orientation, "L\\F");
    add("po-frontal", &m);
    m = img("1", "1.10", "CR");
    set(m.patient_orientation, "A\\FR");
    add("po-lateral", &m);
    m = img("1", "1.11", "CR");
    snprintf(m.series_description, sizeof m.series_description, "Cervical OBLI 1");
    add("desc-oblique", &m);
    m = img("1", "1.12", "CR"); /* nothing at all, and the study has frontal images */
    add("unknown", &m);
    build();
    expect("pa", 1, "frontal: ViewPosition PA");
    expect("ap-desc-lat", 1, "frontal: ViewPosition AP (SeriesDescription 'Chest LAT' suggests lateral)");
    expect("ll", 0, "lateral: ViewPosition LL");
    expect("rl", 0, "lateral: ViewPosition rl");
    expect("decubitus", 0, "not frontal: ViewPosition LLD");
    expect("desc-pa", 1, "frontal: SeriesDescription 'Thorax p.a.'");
    expect("desc-lat", 0, "lateral: SeriesDescription 'CHEST, LATERAL'");
    expect("imagetype-lat", 0, "lateral: ImageType DERIVED\\PRIMARY\\LAT");
    expect("po-frontal", 1, "frontal: PatientOrientation L\\F");
    expect("po-lateral", 0, "lateral: PatientOrientation A\\FR");
    expect("desc-oblique", 0, "oblique: SeriesDescription 'Cervical OBLI 1'");
    expect("unknown", 0, "view unknown (no ViewPosition, and no view in SeriesDescription, ImageType or "
                         "PatientOrientation): the study has frontal images");
    CHECK(S.nstudies == 1 && S.studies[0].selected == 4);
    end();

    /* the only image, view unknown: selected, and says so */
    begin();
    m = img("2", "2.1", "DX");
    add("alone", &m);
    m = img("2", "2.2", "DX"), set(m.view, "LATERAL");
    add("lateral", &m);
    build();
    expect("alone", 1, "view unknown (");
    expect("lateral", 0, "lateral: ViewPosition LATERAL");
    end();

    /* DX FOR PROCESSING: skipped when its FOR PRESENTATION twin is there */
    begin();
    m = img("3", "3.1", "DX"), set(m.view, "PA"), set(m.presentation_intent, "FOR PRESENTATION");
    add("pa-presentation", &m);
    m = img("3", "3.2", "DX"), set(m.view, "PA");
    set(m.sop_class_uid, "1.2.840.10008.5.1.4.1.1.1.1.1"); /* DX for processing, by class alone */
    add("pa-processing", &m);
    m = img("3", "3.2", "DX"), set(m.view, "AP"), set(m.presentation_intent, "FOR PROCESSING");
    add("ap-processing-alone", &m);
    build();
    expect("pa-presentation", 1, "frontal: ViewPosition PA");
    expect("pa-processing", 0, "FOR PROCESSING: its FOR PRESENTATION twin pa-presentation is used");
    expect("ap-processing-alone", 1, "frontal: ViewPosition AP; FOR PROCESSING, no FOR PRESENTATION twin");
    end();

    /* MG: the screening views, both sides; other views skipped */
    begin();
    static const char *const views[] = {"CC", "MLO", "ML", "XCCL"};
    for (int k = 0; k < 4; k++)
        for (int side = 0; side < 2; side++) {
            char name[32];
            snprintf(name, sizeof name, "%s-%c", views[k], side ? 'R' : 'L');
            m = img("4", "4.1", "MG"), set(m.view, views[k]), set(m.laterality, side ? "R" : "L");
            add(name, &m);
        }
    build();
    expect("CC-L", 1, "a standard screening view: ViewPosition CC");
    expect("MLO-R", 1, "a standard screening view: ViewPosition MLO");
    expect("ML-L", 0, "not a standard screening view: ViewPosition ML");
    expect("XCCL-R", 0, "not a standard screening view: ViewPosition XCCL");
    end();
}

static void test_skips(void)
{
    rf_dicom_image m;
    begin();
    m = img("5", "5.1", "CR"), set(m.view, "PA"), set(m.image_type, "ORIGINAL\\PRIMARY\\LOCALIZER");
    add("localizer", &m);
    m = img("5", "5.2", "CR"), set(m.view, "PA"), set(m.sop_class_uid, "1.2.840.10008.5.1.4.1.1.7");
    add("sc", &m);
    m = img("5", "5.3", "CR"), set(m.view, "PA"), set(m.sop_class_uid, "1.2.840.10008.5.1.4.1.1.7.4");
    add("sc-multiframe", &m);
    m = img("5", "5.4", "CR"), set(m.view, "PA"), set(m.conversion_type, "WSD");
    add("conversion", &m);
    m = img("5", "5.5", "SR"), set(m.sop_class_uid, "1.2.840.10008.5.1.4.1.1.88.22"), m.has_pixel_data = 0;
    add("sr", &m);
    m = img("5", "5.6", "PR"), set(m.sop_class_uid, "1.2.840.10008.5.1.4.1.1.11.1"), m.has_pixel_data = 0;
    add("pr", &m);
    m = img("5", "5.7", "KO"), set(m.sop_class_uid, "1.2.840.10008.5.1.4.1.1.88.59"), m.has_pixel_data = 0;
    add("ko", &m);
    m = img("5", "5.8", "CR"), set(m.view, "PA"), set(m.image_type, "DERIVED\\SECONDARY\\SCREEN SAVE");
    add("screen-save", &m);
    m = img("5", "5.9", "US");
    add("us", &m);
    m = img("5", "5.10", "");
    add("no-modality", &m);
    m = img("5", "5.11", "CR"), set(m.view, "PA");
    snprintf(m.series_description, sizeof m.series_description, "Scout view");
    add("scout-desc", &m);
    m = img("5", "5.12", "CR"), set(m.view, "AP"), set(m.image_type, "DERIVED\\PRIMARY"); /* processed CR: fine */
    add("derived-primary", &m);
    m = img("5", "5.13", "CR"), set(m.view, "AP");
    set(m.sop_class_uid, "1.2.840.10008.5.1.4.1.1.77.1.4"); /* VL photographic: not a capture */
    add("vl", &m);
    build();
    expect("localizer", 0, "localizer (ImageType ORIGINAL\\PRIMARY\\LOCALIZER)");
    expect("sc", 0, "secondary capture (SOP class 1.2.840.10008.5.1.4.1.1.7)");
    expect("sc-multiframe", 0, "secondary capture (SOP class 1.2.840.10008.5.1.4.1.1.7.4)");
    expect("conversion", 0, "secondary capture (ConversionType WSD)");
    expect("sr", 0, "not an image: structured report (SOP class 1.2.840.10008.5.1.4.1.1.88.22)");
    expect("pr", 0, "not an image: presentation state");
    expect("ko", 0, "not an image: key object selection");
    expect("screen-save", 0, "derived secondary image (ImageType DERIVED\\SECONDARY\\SCREEN SAVE)");
    expect("us", 0, "no selection rules for modality US");
    expect("no-modality", 0, "no Modality");
    expect("scout-desc", 0, "localizer (SeriesDescription 'Scout view')");
    expect("derived-primary", 1, "frontal: ViewPosition AP");
    expect("vl", 1, "frontal: ViewPosition AP");
    end();

    /* the SOP class table: exact classes and sub-trees, not prefixes of other numbers */
    CHECK(rf_sop_class_secondary_capture("1.2.840.10008.5.1.4.1.1.7"));
    CHECK(rf_sop_class_secondary_capture("1.2.840.10008.5.1.4.1.1.7.2"));
    CHECK(!rf_sop_class_secondary_capture("1.2.840.10008.5.1.4.1.1.77.1.1"));
    CHECK(!rf_sop_class_secondary_capture(""));
    CHECK(rf_sop_class_non_image("1.2.840.10008.5.1.4.1.1.88.11") != NULL);
    CHECK(rf_sop_class_non_image("1.2.840.10008.5.1.4.1.1.9.1.1") != NULL);
    CHECK(rf_sop_class_non_image("1.2.840.10008.5.1.4.1.1.481.5") != NULL);
    CHECK(rf_sop_class_non_image("1.2.840.10008.1.3.10") != NULL);
    CHECK(rf_sop_class_non_image("1.2.840.10008.5.1.4.1.1.2") == NULL);
    CHECK(rf_sop_class_non_image("1.2.840.10008.5.1.4.1.1.481.1") == NULL); /* RT image: an image */
    CHECK(rf_sop_class_non_image("1.2.840.10008.5.1.4.1.1.99") == NULL);   /* not under ...1.1.9 */
    CHECK(rf_sop_class_non_image("1.2.840.10008.5.1.4.1.1.881") == NULL);  /* not under ...1.1.88 */
    CHECK(rf_sop_class_non_image(NULL) == NULL && rf_sop_class_non_image("") == NULL);
}

static void slices(const char *study, const char *series, const char *mod, int n, const double o[6],
                   const char *image_type, int number, const char *desc)
{
    for (int k = 0; k < n; k++) {
        rf_dicom_image m = img(study, series, mod);
        memcpy(m.orientation, o, sizeof m.orientation);
        m.has_orientation = m.has_position = 1;
        m.position[2] = 2.0 * k;
        set(m.image_type, image_type);
        m.has_series_number = 1;
        m.series_number = number;
        snprintf(m.series_description, sizeof m.series_description, "%s", desc);
        char name[64];
        snprintf(name, sizeof name, "%s-%s-%02d", study, series, k);
        add(name, &m);
    }
}

static void test_series(void)
{
    static const double axial[6] = {1, 0, 0, 0, 1, 0}, coronal[6] = {1, 0, 0, 0, 0, -1},
                        sagittal[6] = {0, 1, 0, 0, 0, -1};
    double t = 0.35; /* a 20 degree gantry tilt is still axial */
    double tilted[6] = {1, 0, 0, 0, cos(t), -sin(t)};
    begin();
    slices("6", "6.1", "CT", 2, axial, "ORIGINAL\\PRIMARY\\LOCALIZER", 1, "Topogram");
    slices("6", "6.2", "CT", 3, axial, "ORIGINAL\\PRIMARY\\AXIAL", 2, "Head 5mm");
    slices("6", "6.3", "CT", 10, tilted, "ORIGINAL\\PRIMARY\\AXIAL", 3, "Head 1mm");
    slices("6", "6.4", "CT", 20, coronal, "DERIVED\\PRIMARY\\REFORMATTED", 4, "Cor MPR");
    slices("6", "6.5", "CT", 30, axial, "DERIVED\\PRIMARY\\AXIAL", 5, "Axial derived");
    rf_dicom_image dose = img("6", "6.9", "SR");
    set(dose.sop_class_uid, "1.2.840.10008.5.1.4.1.1.88.67"), dose.has_pixel_data = 0;
    add("dose-report", &dose);
    /* a second study: nothing axial; the ORIGINAL series with most slices */
    slices("7", "7.1", "MR", 12, sagittal, "ORIGINAL\\PRIMARY\\M", 1, "T1 SAG");
    slices("7", "7.2", "MR", 15, coronal, "ORIGINAL\\PRIMARY\\M", 2, "T2 COR");
    slices("7", "7.3", "MR", 40, coronal, "DERIVED\\SECONDARY\\MIP", 3, "MIP");
    /* a third: two equal series, the lower SeriesNumber wins the tie */
    slices("8", "8.2", "CT", 4, axial, "ORIGINAL\\PRIMARY\\AXIAL", 7, "B");
    slices("8", "8.1", "CT", 4, axial, "ORIGINAL\\PRIMARY\\AXIAL", 6, "A");
    build();
    expect("6-6.1-00", 0, "localizer (ImageType ORIGINAL\\PRIMARY\\LOCALIZER)");
    expect("6-6.2-01", 0, "series #2 'Head 5mm' (axial, ORIGINAL, 3 slices) not chosen: series #3 'Head 1mm'");
    expect("6-6.3-09", 1, "series #3 'Head 1mm' (axial, ORIGINAL, 10 slices) chosen: the best of 4 candidate series");
    expect("6-6.4-00", 0, "series #4 'Cor MPR' (coronal, not ORIGINAL, 20 slices) not chosen");
    expect("6-6.5-00", 0, "series #5 'Axial derived' (axial, not ORIGINAL, 30 slices) not chosen");
    expect("dose-report", 0, "not an image: structured report");
    expect("7-7.2-00", 1, "series #2 'T2 COR' (coronal, ORIGINAL, 15 slices) chosen");
    expect("7-7.1-00", 0, "series #1 'T1 SAG' (sagittal, ORIGINAL, 12 slices) not chosen");
    expect("7-7.3-00", 0, "derived secondary image");
    expect("8-8.1-00", 1, "series #6 'A'");
    expect("8-8.2-00", 0, "series #7 'B'");
    for (size_t q = 0; q < S.nstudies; q++) {
        const rf_study *st = &S.studies[q];
        long want = strcmp(st->uid, "6") == 0 ? 10 : strcmp(st->uid, "7") == 0 ? 15 : 4;
        CHECKF(st->selected == want, "study %s: %ld selected, want %ld", st->uid, st->selected, want);
    }
    /* the chosen series carries the decision too */
    for (size_t j = 0; j < S.nseries; j++)
        if (strcmp(S.series[j].uid, "6.3") == 0)
            CHECKF(strstr(S.series[j].note, "chosen for CT"), "note: %s", S.series[j].note);
    end();
}

int main(void)
{
    test_projection();
    test_skips();
    test_series();
    return test_finish("test_dicom_select");
}
