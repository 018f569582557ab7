/*
 * report.fhir.json (rf_result_write_fhir): a FHIR R4 DiagnosticReport,
 * status preliminary, category RAD (v2-0074), code LOINC 18748-4
 * "Diagnostic imaging study" with the study description as text, and one
 * contained Observation per finding: the calibrated probability as a
 * valueQuantity in UCUM "1", POS/NEG (v3-ObservationInterpretation) by the
 * model's operating threshold, the threshold as the reference range's upper
 * bound, and the source study referenced by its StudyInstanceUID as an
 * identifier (urn:dicom:uid). A Patient is contained only with include_phi.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "report/report.h"
#include "runtime/fileio.h"

#define FHIR_UCUM "http://unitsofmeasure.org"
#define FHIR_INTERP "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
#define FHIR_V2_0074 "http://terminology.hl7.org/CodeSystem/v2-0074"
#define FHIR_OBS_CAT "http://terminology.hl7.org/CodeSystem/observation-category"
#define FHIR_LOINC "http://loinc.org"

typedef struct fctx {
    int oom;
} fctx;

static cJSON *put(fctx *c, cJSON *parent, const char *key, cJSON *item)
{
    if (!item || !parent) {
        c->oom = 1;
        cJSON_Delete(item);
        return NULL;
    }
    cJSON_bool ok = cJSON_IsArray(parent) ? cJSON_AddItemToArray(parent, item)
                                          : cJSON_AddItemToObject(parent, key, item);
    if (!ok) {
        c->oom = 1;
        cJSON_Delete(item);
        return NULL;
    }
    return item;
}

static void put_str(fctx *c, cJSON *o, const char *key, const char *v)
{
    if (v)
        put(c, o, key, cJSON_CreateString(v));
}

static cJSON *coding(fctx *c, cJSON *array, const char *system, const char *code, const char *display)
{
    cJSON *cd = put(c, array, NULL, cJSON_CreateObject());
    put_str(c, cd, "system", system);
    put_str(c, cd, "code", code);
    put_str(c, cd, "display", display);
    return cd;
}

/* A CodeableConcept {coding: [one], text} under key (or into an array). */
static void concept(fctx *c, cJSON *parent, const char *key, const char *system, const char *code,
                    const char *display, const char *text)
{
    cJSON *cc = put(c, parent, key, cJSON_CreateObject());
    if (system && code)
        coding(c, put(c, cc, "coding", cJSON_CreateArray()), system, code, display);
    put_str(c, cc, "text", text);
}

static void quantity(fctx *c, cJSON *parent, const char *key, double v)
{
    cJSON *q = put(c, parent, key, cJSON_CreateObject());
    put(c, q, "value", rf_json_num(v));
    put_str(c, q, "unit", "1");
    put_str(c, q, "system", FHIR_UCUM);
    put_str(c, q, "code", "1");
}

/* The DICOM date YYYYMMDD as a FHIR date YYYY-MM-DD, or "" when it is not
 * one. A time of day is left out: FHIR needs a time zone with it and a DICOM
 * study time has none. */
static void fhir_date(const char *dicom, char out[11])
{
    out[0] = 0;
    if (!dicom || strlen(dicom) != 8)
        return;
    for (int i = 0; i < 8; i++)
        if (!isdigit((unsigned char)dicom[i]))
            return;
    int mo = (dicom[4] - '0') * 10 + (dicom[5] - '0'), d = (dicom[6] - '0') * 10 + (dicom[7] - '0');
    if (mo < 1 || mo > 12 || d < 1 || d > 31)
        return;
    snprintf(out, 11, "%.4s-%.2s-%.2s", dicom, dicom + 4, dicom + 6);
}

static void study_ref(fctx *c, cJSON *parent, const char *key, const char *uid)
{
    cJSON *arr = put(c, parent, key, cJSON_CreateArray());
    cJSON *ref = put(c, arr, NULL, cJSON_CreateObject());
    put_str(c, ref, "type", "ImagingStudy");
    cJSON *id = put(c, ref, "identifier", cJSON_CreateObject());
    put_str(c, id, "system", "urn:dicom:uid");
    char *v = malloc(strlen(uid) + 9);
    if (!v) {
        c->oom = 1;
        return;
    }
    sprintf(v, "urn:oid:%s", uid);
    put_str(c, id, "value", v);
    free(v);
}

/* A DICOM person name (family^given^middle^prefix^suffix, the first of
 * its '='-separated representations) as a HumanName: family, given names
 * and a text in reading order. */
static void add_name(fctx *c, cJSON *patient, const char *pn)
{
    char comp[5][128] = {"", "", "", "", ""};
    int k = 0;
    size_t len = 0;
    for (const char *s = pn; *s && *s != '=' && k < 5; s++) {
        if (*s == '^') {
            k++;
            len = 0;
        } else if (len + 1 < sizeof comp[0]) {
            comp[k][len++] = *s;
            comp[k][len] = 0;
        }
    }
    cJSON *n = put(c, put(c, patient, "name", cJSON_CreateArray()), NULL, cJSON_CreateObject());
    if (*comp[0])
        put_str(c, n, "family", comp[0]);
    if (*comp[1] || *comp[2]) {
        cJSON *given = put(c, n, "given", cJSON_CreateArray());
        for (int i = 1; i <= 2; i++)
            if (*comp[i])
                put(c, given, NULL, cJSON_CreateString(comp[i]));
    }
    char text[5 * 130] = "";
    static const int order[5] = {3, 1, 2, 0, 4}; /* prefix given middle family suffix */
    for (int i = 0; i < 5; i++)
        if (*comp[order[i]]) {
            if (*text)
                strcat(text, " ");
            strcat(text, comp[order[i]]);
        }
    put_str(c, n, "text", *text ? text : pn);
}

static void add_patient(fctx *c, cJSON *contained, const rf_read_result *r)
{
    cJSON *p = put(c, contained, NULL, cJSON_CreateObject());
    put_str(c, p, "resourceType", "Patient");
    put_str(c, p, "id", "patient");
    if (r->study.patient_id) {
        cJSON *ids = put(c, p, "identifier", cJSON_CreateArray());
        cJSON *id = put(c, ids, NULL, cJSON_CreateObject());
        put_str(c, id, "value", r->study.patient_id);
    }
    if (r->study.patient_name)
        add_name(c, p, r->study.patient_name);
    const char *sex = r->study.patient_sex;
    if (sex && *sex)
        put_str(c, p, "gender", sex[0] == 'M' ? "male" : sex[0] == 'F' ? "female" : sex[0] == 'O' ? "other"
                                                                                                  : "unknown");
    char bd[11];
    fhir_date(r->study.patient_birth_date, bd);
    if (*bd)
        put_str(c, p, "birthDate", bd);
}

static void add_observation(fctx *c, cJSON *contained, const rf_read_result *r, const rf_result_finding *f,
                            size_t k, const char *date, int subject)
{
    cJSON *o = put(c, contained, NULL, cJSON_CreateObject());
    char id[32];
    snprintf(id, sizeof id, "finding-%zu", k);
    put_str(c, o, "resourceType", "Observation");
    put_str(c, o, "id", id);
    put_str(c, o, "status", "preliminary");
    cJSON *cat = put(c, o, "category", cJSON_CreateArray());
    concept(c, cat, NULL, FHIR_OBS_CAT, "imaging", "Imaging", NULL);
    const char *display = f->display ? f->display : f->code;
    concept(c, o, "code", f->coding_system && f->coding_code ? f->coding_system : NULL, f->coding_code, display,
            display);
    if (subject)
        put_str(c, put(c, o, "subject", cJSON_CreateObject()), "reference", "#patient");
    if (*date)
        put_str(c, o, "effectiveDateTime", date);
    quantity(c, o, "valueQuantity", f->probability);
    cJSON *interp = put(c, o, "interpretation", cJSON_CreateArray());
    concept(c, interp, NULL, FHIR_INTERP, f->positive ? "POS" : "NEG", f->positive ? "Positive" : "Negative", NULL);
    char note[160];
    snprintf(note, sizeof note, "calibrated probability; positive at or above the operating threshold %.6g",
             f->threshold);
    cJSON *rr = put(c, put(c, o, "referenceRange", cJSON_CreateArray()), NULL, cJSON_CreateObject());
    quantity(c, rr, "low", 0);
    quantity(c, rr, "high", f->threshold);
    put_str(c, rr, "text", note);
    if (r->study.study_instance_uid)
        study_ref(c, o, "derivedFrom", r->study.study_instance_uid);
}

static cJSON *build(fctx *c, const rf_read_result *r)
{
    cJSON *dr = cJSON_CreateObject();
    if (!dr) {
        c->oom = 1;
        return NULL;
    }
    put_str(c, dr, "resourceType", "DiagnosticReport");
    put_str(c, dr, "id", "radfuse-read");
    char date[11];
    fhir_date(r->study.study_date, date);
    int subject = r->include_phi && (r->study.patient_id || r->study.patient_name);
    size_t *order = rf_result_order(r);
    if (!order) {
        c->oom = 1;
        return dr;
    }
    cJSON *contained = put(c, dr, "contained", cJSON_CreateArray());
    if (subject)
        add_patient(c, contained, r);
    for (size_t i = 0; i < r->nfindings; i++)
        add_observation(c, contained, r, &r->findings[order[i]], i, date, subject);
    put_str(c, dr, "status", "preliminary");
    cJSON *cat = put(c, dr, "category", cJSON_CreateArray());
    concept(c, cat, NULL, FHIR_V2_0074, "RAD", "Radiology", NULL);
    const char *desc = r->study.study_description && *r->study.study_description ? r->study.study_description
                                                                                  : "Diagnostic imaging study";
    concept(c, dr, "code", FHIR_LOINC, "18748-4", "Diagnostic imaging study", desc);
    if (subject)
        put_str(c, put(c, dr, "subject", cJSON_CreateObject()), "reference", "#patient");
    if (*date)
        put_str(c, dr, "effectiveDateTime", date);
    if (r->created && strlen(r->created) >= 20 && r->created[strlen(r->created) - 1] == 'Z')
        put_str(c, dr, "issued", r->created);
    cJSON *res = put(c, dr, "result", cJSON_CreateArray());
    for (size_t i = 0; i < r->nfindings; i++) {
        char ref[40];
        snprintf(ref, sizeof ref, "#finding-%zu", i);
        put_str(c, put(c, res, NULL, cJSON_CreateObject()), "reference", ref);
    }
    if (r->study.study_instance_uid)
        study_ref(c, dr, "imagingStudy", r->study.study_instance_uid);

    rf_buf con = {0};
    rf_buf_printf(&con, "Automated read by radfuse %s", r->tool_version ? r->tool_version : RADFUSE_VERSION);
    if (r->model.name)
        rf_buf_printf(&con, " (model %s%s%s)", r->model.name, r->model.version ? " " : "",
                      r->model.version ? r->model.version : "");
    rf_buf_puts(&con, ". ");
    for (size_t i = 0; i < r->nfindings; i++) {
        const rf_result_finding *f = &r->findings[order[i]];
        rf_buf_printf(&con, "%s%s: probability %.3f, %s (threshold %.3f)", i ? "; " : "",
                      f->display ? f->display : f->code, f->probability, f->positive ? "positive" : "negative",
                      f->threshold);
    }
    rf_buf_puts(&con, r->nfindings ? ". " : "No findings. ");
    rf_buf_puts(&con, "Research use only, not a medical device; to be confirmed by a radiologist.");
    rf_buf_put(&con, "", 1);
    if (con.oom)
        c->oom = 1;
    else
        put_str(c, dr, "conclusion", con.p);
    rf_buf_free(&con);
    free(order);
    return dr;
}

int rf_result_write_fhir(const rf_read_result *r, const char *path, rf_err *err)
{
    int rc = rf_result_check(r, path, err);
    if (rc)
        return rc;
    fctx c = {0};
    cJSON *dr = build(&c, r);
    char *text = c.oom ? NULL : cJSON_Print(dr);
    cJSON_Delete(dr);
    if (!text)
        return rf_err_set(err, RF_ENOMEM, "%s: out of memory", path);
    size_t n = strlen(text);
    text[n] = '\n';
    rc = rf_write_file_atomic(path, text, n + 1, err);
    free(text);
    return rc;
}
