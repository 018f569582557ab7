/*
 * report.fhir.json (report/fhir.c), parsed and checked against FHIR R4's
 * DiagnosticReport and Observation: required elements present (status,
 * code; Observation value and interpretation), status preliminary, category
 * RAD from v2-0074, the LOINC code, every result reference resolving to a
 * contained Observation and every contained resource referenced (dom-3),
 * ids of FHIR's id type, probability as a UCUM "1" quantity, POS/NEG from
 * v3-ObservationInterpretation by the threshold, the threshold as the
 * reference range, the study by its UID as an identifier, dates in FHIR's
 * format; without include_phi no Patient and no subject, with it a
 * contained Patient.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "radfuse/result.h"
#include "tests/report_fixture.h"
#include "tests/testutil.h"

#define UCUM "http://unitsofmeasure.org"
#define INTERP "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"

static const cJSON *get(const cJSON *o, const char *k)
{
    return cJSON_GetObjectItemCaseSensitive(o, k);
}

static const char *str(const cJSON *o, const char *k)
{
    const cJSON *v = get(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int streq(const cJSON *o, const char *k, const char *want)
{
    const char *s = str(o, k);
    return s && strcmp(s, want) == 0;
}

/* FHIR's id type: [A-Za-z0-9\-\.]{1,64} */
static int fhir_id(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n < 1 || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
              s[i] == '-' || s[i] == '.'))
            return 0;
    return 1;
}

/* A CodeableConcept whose first coding has system and code. */
static int has_coding(const cJSON *cc, const char *system, const char *code)
{
    const cJSON *c = cJSON_GetArrayItem(get(cc, "coding"), 0);
    return c && streq(c, "system", system) && streq(c, "code", code);
}

static int ucum_one(const cJSON *q, double value)
{
    const cJSON *v = get(q, "value");
    return cJSON_IsNumber(v) && v->valuedouble == value && streq(q, "system", UCUM) &&
           streq(q, "code", "1") && streq(q, "unit", "1");
}

static const cJSON *contained_by_id(const cJSON *dr, const char *id)
{
    const cJSON *c;
    cJSON_ArrayForEach(c, get(dr, "contained")) if (streq(c, "id", id)) return c;
    return NULL;
}

static void check_report(const char *path, const rf_read_result *r)
{
    size_t n;
    char *text = test_read_file(path, &n);
    cJSON *dr = text ? cJSON_ParseWithLength(text, n) : NULL;
    CHECKF(dr != NULL, "%s does not parse", path);
    if (!dr) {
        free(text);
        return;
    }
    CHECK(streq(dr, "resourceType", "DiagnosticReport") && fhir_id(str(dr, "id")));
    CHECK(streq(dr, "status", "preliminary"));
    CHECK(has_coding(cJSON_GetArrayItem(get(dr, "category"), 0), "http://terminology.hl7.org/CodeSystem/v2-0074",
                     "RAD"));
    CHECK(has_coding(get(dr, "code"), "http://loinc.org", "18748-4"));
    CHECK(streq(get(dr, "code"), "text", "CHEST PA AND LATERAL"));
    CHECK(streq(dr, "effectiveDateTime", "2020-03-15"));
    CHECK(streq(dr, "issued", "2026-11-23T08:15:02Z"));
    const char *conclusion = str(dr, "conclusion");
    CHECK(conclusion && strstr(conclusion, "COVID-19: probability 0.891, positive") &&
          strstr(conclusion, "not a medical device"));
    const cJSON *study = get(cJSON_GetArrayItem(get(dr, "imagingStudy"), 0), "identifier");
    CHECK(streq(study, "system", "urn:dicom:uid") && streq(study, "value", "urn:oid:" FIX_STUDY_UID));

    /* every result resolves to a contained Observation, in order of probability */
    const cJSON *results = get(dr, "result");
    CHECK(cJSON_GetArraySize(results) == (int)r->nfindings);
    int referenced = 0;
    double prev = 2;
    for (int i = 0; i < cJSON_GetArraySize(results); i++) {
        const char *ref = str(cJSON_GetArrayItem(results, i), "reference");
        CHECKF(ref && ref[0] == '#', "result %d reference %s", i, ref ? ref : "(none)");
        const cJSON *obs = ref ? contained_by_id(dr, ref + 1) : NULL;
        CHECKF(obs && streq(obs, "resourceType", "Observation"), "result %d (%s) is not a contained Observation", i,
               ref ? ref : "");
        if (!obs)
            continue;
        referenced++;
        CHECK(fhir_id(str(obs, "id")) && streq(obs, "status", "preliminary"));
        const cJSON *code = get(obs, "code");
        const char *display = str(code, "text");
        const rf_result_finding *f = NULL;
        for (size_t k = 0; k < r->nfindings; k++)
            if (display && strcmp(display, r->findings[k].display) == 0)
                f = &r->findings[k];
        CHECKF(f != NULL, "observation %d code text %s", i, display ? display : "(none)");
        if (!f)
            continue;
        CHECK(f->probability <= prev);
        prev = f->probability;
        if (f->coding_code)
            CHECK(has_coding(code, f->coding_system, f->coding_code));
        else
            CHECK(get(code, "coding") == NULL);
        CHECK(ucum_one(get(obs, "valueQuantity"), f->probability));
        const char *want = f->probability >= f->threshold ? "POS" : "NEG";
        CHECKF(has_coding(cJSON_GetArrayItem(get(obs, "interpretation"), 0), INTERP, want), "%s: want %s", f->code,
               want);
        const cJSON *rr = cJSON_GetArrayItem(get(obs, "referenceRange"), 0);
        CHECK(ucum_one(get(rr, "high"), f->threshold) && ucum_one(get(rr, "low"), 0));
        const cJSON *from = get(cJSON_GetArrayItem(get(obs, "derivedFrom"), 0), "identifier");
        CHECK(streq(from, "system", "urn:dicom:uid") && streq(from, "value", "urn:oid:" FIX_STUDY_UID));
        CHECK(streq(obs, "effectiveDateTime", "2020-03-15"));
        CHECK(get(obs, "contained") == NULL && get(obs, "text") == NULL); /* contained resources hold neither */
        if (r->include_phi)
            CHECK(streq(get(obs, "subject"), "reference", "#patient"));
        else
            CHECK(get(obs, "subject") == NULL);
    }
    CHECK(referenced == (int)r->nfindings);

    /* every contained resource is referenced: the Observations by result,
     * the Patient (only with include_phi) by subject */
    const cJSON *c;
    int patients = 0;
    cJSON_ArrayForEach(c, get(dr, "contained"))
    {
        if (streq(c, "resourceType", "Patient")) {
            patients++;
            CHECK(streq(c, "id", "patient"));
            CHECK(streq(cJSON_GetArrayItem(get(c, "identifier"), 0), "value", FIX_PATIENT_ID));
            const cJSON *name = cJSON_GetArrayItem(get(c, "name"), 0);
            CHECK(streq(name, "family", "DOE") && streq(name, "text", "JANE DOE"));
            CHECK(cJSON_IsString(cJSON_GetArrayItem(get(name, "given"), 0)) &&
                  strcmp(cJSON_GetArrayItem(get(name, "given"), 0)->valuestring, "JANE") == 0);
            CHECK(streq(c, "gender", "female") && streq(c, "birthDate", "1958-02-14"));
        } else {
            CHECK(streq(c, "resourceType", "Observation"));
        }
    }
    CHECK(cJSON_GetArraySize(get(dr, "contained")) == (int)r->nfindings + patients);
    if (r->include_phi) {
        CHECK(patients == 1 && streq(get(dr, "subject"), "reference", "#patient"));
    } else {
        CHECK(patients == 0 && get(dr, "subject") == NULL);
        CHECK(!strstr(text, FIX_PATIENT_ID) && !strstr(text, "DOE") && !strstr(text, "JANE") && !strstr(text, FIX_ACCESSION) &&
              !strstr(text, FIX_BIRTH_DATE) && !strstr(text, "1958-02-14"));
    }
    cJSON_Delete(dr);
    free(text);
}

int main(void)
{
    char dir[256], path[512];
    test_tmpdir(dir, sizeof dir);
    for (int phi = 0; phi <= 1; phi++) {
        rf_read_result r;
        fixture_build(&r, phi, 48, 40);
        snprintf(path, sizeof path, "%s/report%d.fhir.json", dir, phi);
        rf_err e;
        int rc = rf_result_write_fhir(&r, path, &e);
        CHECKF(rc == 0, "write_fhir: %s", e.msg);
        if (!rc)
            check_report(path, &r);
        rf_result_free(&r);
    }
    /* a study without date or description: neither made up */
    rf_read_result r;
    fixture_build(&r, 0, 16, 16);
    free(r.study.study_date);
    free(r.study.study_description);
    r.study.study_date = fix_strdup("2020"); /* not a full DICOM date */
    r.study.study_description = NULL;
    snprintf(path, sizeof path, "%s/bare.fhir.json", dir);
    rf_err e;
    CHECK(rf_result_write_fhir(&r, path, &e) == 0);
    size_t n;
    char *text = test_read_file(path, &n);
    cJSON *dr = text ? cJSON_Parse(text) : NULL;
    CHECK(dr && get(dr, "effectiveDateTime") == NULL && streq(get(dr, "code"), "text", "Diagnostic imaging study"));
    cJSON_Delete(dr);
    free(text);
    rf_result_free(&r);
    return test_finish("test_report_fhir");
}
