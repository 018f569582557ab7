#include "tests/report_fixture.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/testutil.h"

const char fix_note_text[] =
    "HISTORY: 72-year-old woman with fever (38.9 \xC2\xB0" "C) and dry cough for 5 days.\n"
    "FINDINGS: Bilateral patchy ground-glass opacities, peripheral and basal.\n"
    "No pleural effusion. SpO2 88% on room air.\n"
    "RT-PCR positive for SARS-CoV-2.\n";

char *fix_strdup(const char *s)
{
    if (!s)
        return NULL;
    char *d = test_xmalloc(strlen(s) + 1);
    strcpy(d, s);
    return d;
}

/* A smooth blob at (r0, c0) of radius rad, max 1, exactly 0 beyond 2 rad. */
static void blob_map(rf_result_map *m, size_t image, int rows, int cols, double r0, double c0, double rad)
{
    m->image = image;
    m->values = test_xmalloc((size_t)rows * (size_t)cols * sizeof(float));
    float best = -1;
    for (int y = 0; y < rows; y++)
        for (int x = 0; x < cols; x++) {
            double d2 = ((y - r0) * (y - r0) + (x - c0) * (x - c0)) / (rad * rad);
            float v = d2 > 4 ? 0.0f : (float)exp(-d2);
            m->values[(size_t)y * (size_t)cols + (size_t)x] = v;
            if (v > best) {
                best = v;
                m->peak_row = y;
                m->peak_col = x;
            }
        }
    for (size_t i = 0; i < (size_t)rows * (size_t)cols; i++)
        m->values[i] /= best; /* max exactly 1 at the peak */
}

static void span(rf_result_finding *f, const char *phrase, float weight)
{
    const char *at = strstr(fix_note_text, phrase);
    if (!at) {
        fprintf(stderr, "fixture: '%s' not in the note\n", phrase);
        exit(1);
    }
    rf_result_span *s = &f->spans[f->nspans++];
    s->note = 0;
    s->begin = (size_t)(at - fix_note_text);
    s->end = s->begin + strlen(phrase);
    s->weight = weight;
}

static void finding(rf_result_finding *f, const char *code, const char *display, const char *sys, const char *sc,
                    double logit, double temp, double threshold, const double w[4])
{
    f->code = fix_strdup(code);
    f->display = fix_strdup(display);
    f->coding_system = fix_strdup(sys);
    f->coding_code = fix_strdup(sc);
    f->logit = logit;
    f->temperature = temp;
    f->probability = 1 / (1 + exp(-logit / temp));
    f->threshold = threshold;
    f->positive = f->probability >= threshold;
    memcpy(f->input_weight, w, sizeof f->input_weight);
    f->spans = test_xmalloc(4 * sizeof *f->spans);
}

void fixture_build(rf_read_result *r, int include_phi, int rows, int cols)
{
    memset(r, 0, sizeof *r);
    r->tool_version = fix_strdup(RADFUSE_VERSION);
    r->created = fix_strdup("2026-11-23T08:15:02Z");
    r->model.dir = fix_strdup("/opt/models/cxr-fusion-small");
    r->model.name = fix_strdup("cxr-fusion-small");
    r->model.version = fix_strdup("0.3.1");
    r->model.sha256 = fix_strdup("9f2c4be01d7a55c3e8f0b6a41d2e97c3a8b5f06e1c4d29a7b3e8f51c0a6d4e27");
    r->model.backend = fix_strdup("cpu");
    r->model.precision = fix_strdup("fp32");
    r->saliency = fix_strdup("gradcam");
    r->study.study_instance_uid = fix_strdup(FIX_STUDY_UID);
    r->study.study_date = fix_strdup("20200315");
    r->study.study_time = fix_strdup("101500");
    r->study.study_description = fix_strdup("CHEST PA AND LATERAL");
    r->study.modalities = fix_strdup("DX");
    r->study.accession_number = fix_strdup(FIX_ACCESSION);
    r->study.patient_id = fix_strdup(FIX_PATIENT_ID);
    r->study.patient_name = fix_strdup(FIX_PATIENT_NAME);
    r->study.patient_birth_date = fix_strdup(FIX_BIRTH_DATE);
    r->study.patient_sex = fix_strdup("F");
    r->include_phi = include_phi;

    r->nimages = 2;
    r->images = test_xmalloc(2 * sizeof *r->images);
    memset(r->images, 0, 2 * sizeof *r->images);
    const char *views[2] = {"PA", "LL"};
    for (int i = 0; i < 2; i++) {
        rf_result_image *im = &r->images[i];
        char path[256], uid[96];
        snprintf(path, sizeof path, FIX_IMAGE_DIR "IM%04d.dcm", i + 1);
        im->path = fix_strdup(path);
        snprintf(uid, sizeof uid, FIX_STUDY_UID ".2.%d", i + 1);
        im->sop_instance_uid = fix_strdup(uid);
        im->sop_class_uid = fix_strdup("1.2.840.10008.5.1.4.1.1.1.1");
        snprintf(uid, sizeof uid, FIX_STUDY_UID ".1.%d", i + 1);
        im->series_instance_uid = fix_strdup(uid);
        im->study_instance_uid = fix_strdup(FIX_STUDY_UID);
        im->modality = fix_strdup("DX");
        im->view = fix_strdup(views[i]);
        im->rows = rows;
        im->cols = cols;
    }
    r->images[0].used = 1;
    r->images[0].reason = fix_strdup("frontal view (PA)");
    r->images[0].window_center = 2048;
    r->images[0].window_width = 4096;
    r->images[1].reason = fix_strdup("lateral view: the model takes frontal views");
    uint8_t *d = test_xmalloc((size_t)rows * (size_t)cols);
    for (int y = 0; y < rows; y++)
        for (int x = 0; x < cols; x++) /* a gradient with a brighter disc: no two neighbours alike */
            d[(size_t)y * (size_t)cols + (size_t)x] =
                (uint8_t)(30 + (150 * x) / cols + (60 * y) / rows +
                          ((x - cols / 2) * (x - cols / 2) + (y - rows / 3) * (y - rows / 3) < rows * cols / 40 ? 10
                                                                                                             : 0));
    r->images[0].display = d;

    r->nnotes = 1;
    r->notes = test_xmalloc(sizeof *r->notes);
    r->notes[0].path = fix_strdup("/data/notes/" FIX_PATIENT_ID "_DOE_JANE/admission.txt");
    r->notes[0].kind = fix_strdup("note");
    r->notes[0].text = fix_strdup(fix_note_text);
    r->notes[0].len = strlen(fix_note_text);
    r->notes[0].used = 1;

    r->nlabs = 3;
    r->labs = test_xmalloc(3 * sizeof *r->labs);
    memset(r->labs, 0, 3 * sizeof *r->labs);
    const struct {
        const char *name, *loinc, *unit, *flag;
        double value, weight;
    } labs[3] = {{"C-reactive protein", "1988-5", "mg/L", "high", 87.5, 0.41},
                 {"Lymphocytes", "731-0", "10*3/uL", "low", 0.62, 0.22},
                 {"D-dimer", "48065-7", "ng/mL{FEU}", NULL, 410, -0.05}};
    for (int i = 0; i < 3; i++) {
        r->labs[i].name = fix_strdup(labs[i].name);
        r->labs[i].loinc = fix_strdup(labs[i].loinc);
        r->labs[i].unit = fix_strdup(labs[i].unit);
        r->labs[i].flag = fix_strdup(labs[i].flag);
        r->labs[i].value = labs[i].value;
        r->labs[i].weight = labs[i].weight;
    }
    r->inputs_used[RF_MODALITY_IMAGE] = 1;
    r->inputs_used[RF_MODALITY_TEXT] = 1;
    r->inputs_used[RF_MODALITY_LABS] = 1;

    r->nfindings = 3;
    r->findings = test_xmalloc(3 * sizeof *r->findings);
    memset(r->findings, 0, 3 * sizeof *r->findings);
    static const double w0[4] = {0.55, 0.30, 0.15, 0}, w1[4] = {0.70, 0.20, 0.10, 0}, w2[4] = {0.80, 0.18, 0.02, 0};
    finding(&r->findings[0], "covid19", "COVID-19", "http://snomed.info/sct", "840539006", 2.31, 1.1, 0.5, w0);
    finding(&r->findings[1], "pneumonia", "Pneumonia", "http://snomed.info/sct", "233604007", 0.62, 1.05, 0.55, w1);
    finding(&r->findings[2], "pleural_effusion", "Pleural effusion", NULL, NULL, -2.2, 0.9, 0.4, w2);
    span(&r->findings[0], "ground-glass opacities", 1.0f);
    span(&r->findings[0], "RT-PCR positive for SARS-CoV-2", 0.83f);
    span(&r->findings[0], "(38.9 \xC2\xB0" "C)", 0.35f);
    span(&r->findings[1], "patchy ground-glass opacities", 1.0f);
    span(&r->findings[1], "fever", 0.4f);
    span(&r->findings[2], "No pleural effusion", -1.0f);
    const double centers[3][2] = {{0.35, 0.3}, {0.6, 0.7}, {0.8, 0.5}};
    for (int i = 0; i < 3; i++) {
        rf_result_finding *f = &r->findings[i];
        f->nmaps = 1;
        f->maps = test_xmalloc(sizeof *f->maps);
        memset(f->maps, 0, sizeof *f->maps);
        blob_map(&f->maps[0], 0, rows, cols, centers[i][0] * rows, centers[i][1] * cols, 0.12 * cols);
    }

    const char *stages[] = {"decode", "preprocess", "vision", "text", "fusion", "saliency"};
    const double ms[] = {12.5, 3.25, 210.0, 45.75, 4.0, 380.5};
    for (int i = 0; i < 6; i++)
        if (rf_result_time(r, stages[i], ms[i]))
            exit(1);
    if (rf_result_warn(r, "image %d skipped: %s", 1, "lateral view") ||
        rf_result_warn(r, "lab 'ferritin': unit 'ng/dL' is not in the lab table; left out"))
        exit(1);
}
