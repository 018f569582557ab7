/*
 * result.json (report/result_json.c) on a realistic read (tests/report_fixture.c):
 * validated against docs/result.schema.json by python3-jsonschema
 * (tests/check_result_schema.py) with and without include_phi; its fields
 * read back and compared with the record; no patient name, ID, accession
 * number or birth date in any output file (result.json, overlays, report.html,
 * report.fhir.json) without include_phi, and present with it; non-finite
 * numbers and spans that cut a UTF-8 character refused, leaving the old file
 * in place. Also rf_result_warn, rf_result_time and rf_modality_name.
 */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "radfuse/result.h"
#include "tests/report_fixture.h"
#include "tests/testutil.h"

static char *join(const char *a, const char *b)
{
    char *p = test_xmalloc(strlen(a) + strlen(b) + 2);
    sprintf(p, "%s/%s", a, b);
    return p;
}

/* Writes every output of r into dir; 0 when all succeeded. */
static int write_all(rf_read_result *r, const char *dir)
{
    rf_err e;
    char *json = join(dir, "result.json"), *fhir = join(dir, "report.fhir.json");
    int rc = rf_result_write_overlays(r, dir, NULL, &e);
    if (!rc)
        rc = rf_result_write_json(r, json, &e);
    if (!rc)
        rc = rf_result_write_html(r, dir, &e);
    if (!rc)
        rc = rf_result_write_fhir(r, fhir, &e);
    if (rc)
        fprintf(stderr, "write_all: %s\n", e.msg);
    free(json);
    free(fhir);
    return rc;
}

static int memfind(const char *hay, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp(hay + i, needle, k) == 0)
            return 1;
    return 0;
}

/* Counts the files under dir (recursively) holding needle; *files gets the
 * number of files looked at, and *tmp the leftover temporaries. */
static int files_with(const char *dir, const char *needle, int *files, int *tmp)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1000;
    int hits = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char *p = join(dir, de->d_name);
        struct stat st;
        if (stat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
            hits += files_with(p, needle, files, tmp);
        } else {
            size_t n;
            char *data = test_read_file(p, &n);
            (*files)++;
            *tmp += strstr(de->d_name, ".tmp.") != NULL;
            if (!data || memfind(data, n, needle)) {
                hits++;
                if (test_verbose())
                    fprintf(stderr, "  %s holds %s\n", p, needle);
            }
            free(data);
        }
        free(p);
    }
    closedir(d);
    return hits;
}

static void check_schema(const char *json0, const char *json1)
{
    const char *src = getenv("RADFUSE_SOURCE");
    CHECKF(src && *src, "RADFUSE_SOURCE is not set (run through ctest)");
    if (!src)
        return;
    char script[4096], schema[4096];
    snprintf(script, sizeof script, "%s/tests/check_result_schema.py", src);
    snprintf(schema, sizeof schema, "%s/docs/result.schema.json", src);
    char *argv[] = {"/usr/bin/python3", script, schema, (char *)json0, (char *)json1, NULL};
    static char out[8192], errb[8192];
    int st = test_run(argv, out, sizeof out, errb, sizeof errb);
    CHECKF(st == 0, "schema check exited %d:\n%s%s", st, out, errb);
    CHECKF(strstr(out, "2 files") != NULL, "schema check output: %s", out);
}

static cJSON *load_json(const char *path)
{
    size_t n;
    char *text = test_read_file(path, &n);
    cJSON *j = text ? cJSON_ParseWithLength(text, n) : NULL;
    free(text);
    CHECKF(j != NULL, "%s does not parse", path);
    return j;
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double jnum(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static int jstreq(const cJSON *o, const char *k, const char *want)
{
    const char *s = jstr(o, k);
    return s && want && strcmp(s, want) == 0;
}

/* The document of the phi-0 read, field by field against the record. */
static void check_contents(const char *path, const rf_read_result *r)
{
    cJSON *j = load_json(path);
    if (!j)
        return;
    CHECK(jstreq(j, "schema_version", RF_RESULT_SCHEMA_VERSION));
    const cJSON *tool = cJSON_GetObjectItem(j, "tool");
    CHECK(jstreq(tool, "name", "radfuse") && jstreq(tool, "version", RADFUSE_VERSION));
    const cJSON *model = cJSON_GetObjectItem(j, "model");
    CHECK(jstreq(model, "sha256", r->model.sha256) && jstreq(model, "name", "cxr-fusion-small"));
    CHECK(cJSON_IsFalse(cJSON_GetObjectItem(j, "include_phi")));
    const cJSON *study = cJSON_GetObjectItem(j, "study");
    CHECK(jstreq(study, "study_instance_uid", FIX_STUDY_UID));
    CHECK(!cJSON_GetObjectItem(study, "patient") && !cJSON_GetObjectItem(study, "accession_number"));
    const cJSON *used = cJSON_GetObjectItem(j, "inputs_used");
    CHECK(cJSON_IsTrue(cJSON_GetObjectItem(used, "image")) && cJSON_IsTrue(cJSON_GetObjectItem(used, "text")) &&
          cJSON_IsTrue(cJSON_GetObjectItem(used, "labs")) && cJSON_IsFalse(cJSON_GetObjectItem(used, "prior")));

    const cJSON *images = cJSON_GetObjectItem(j, "images");
    CHECK(cJSON_GetArraySize(images) == 2);
    const cJSON *im0 = cJSON_GetArrayItem(images, 0), *im1 = cJSON_GetArrayItem(images, 1);
    CHECKF(jstreq(im0, "file", "IM0001.dcm"), "image 0 file %s", jstr(im0, "file"));
    CHECK(cJSON_IsTrue(cJSON_GetObjectItem(im0, "used")) && cJSON_IsFalse(cJSON_GetObjectItem(im1, "used")));
    CHECK(jstreq(im1, "reason", "lateral view: the model takes frontal views"));
    CHECK(jnum(im0, "rows") == r->images[0].rows && jnum(im0, "cols") == r->images[0].cols);
    CHECK(jnum(cJSON_GetObjectItem(im0, "window"), "width") == 4096 && !cJSON_GetObjectItem(im1, "window"));
    const cJSON *note = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "notes"), 0);
    CHECKF(jstreq(note, "file", "admission.txt"), "note file %s", jstr(note, "file"));
    CHECK(jnum(note, "bytes") == (double)strlen(fix_note_text));
    const cJSON *labs = cJSON_GetObjectItem(j, "labs");
    CHECK(cJSON_GetArraySize(labs) == 3);
    CHECK(jnum(cJSON_GetArrayItem(labs, 0), "value") == 87.5 && jstreq(cJSON_GetArrayItem(labs, 1), "flag", "low"));
    CHECK(!cJSON_GetObjectItem(cJSON_GetArrayItem(labs, 2), "flag"));

    const cJSON *fs = cJSON_GetObjectItem(j, "findings");
    CHECK(cJSON_GetArraySize(fs) == 3);
    double prev = 2;
    for (int i = 0; i < cJSON_GetArraySize(fs); i++) {
        const cJSON *f = cJSON_GetArrayItem(fs, i);
        const rf_result_finding *rf = NULL;
        for (size_t k = 0; k < r->nfindings; k++)
            if (jstreq(f, "code", r->findings[k].code))
                rf = &r->findings[k];
        CHECKF(rf != NULL, "finding %d code %s", i, jstr(f, "code"));
        if (!rf)
            continue;
        double p = jnum(f, "probability");
        CHECKF(p <= prev, "findings not by decreasing probability");
        prev = p;
        CHECK(p == rf->probability && jnum(f, "threshold") == rf->threshold && jnum(f, "logit") == rf->logit &&
              jnum(f, "temperature") == rf->temperature);
        CHECK(cJSON_IsBool(cJSON_GetObjectItem(f, "positive")) &&
              cJSON_IsTrue(cJSON_GetObjectItem(f, "positive")) == (rf->positive != 0));
        const cJSON *w = cJSON_GetObjectItem(f, "input_weights");
        CHECK(jnum(w, "image") == rf->input_weight[RF_MODALITY_IMAGE] &&
              jnum(w, "text") == rf->input_weight[RF_MODALITY_TEXT] && jnum(w, "prior") == 0);
        CHECK((cJSON_GetObjectItem(f, "coding") != NULL) == (rf->coding_code != NULL));
        const cJSON *ev = cJSON_GetArrayItem(cJSON_GetObjectItem(f, "image_evidence"), 0);
        const cJSON *peak = cJSON_GetObjectItem(ev, "peak");
        CHECK(jnum(peak, "row") == rf->maps[0].peak_row && jnum(peak, "col") == rf->maps[0].peak_col);
        CHECK(jnum(ev, "peak_value") == 1.0);
        char want[128];
        snprintf(want, sizeof want, "overlays/%s_0.png", rf->code);
        CHECKF(jstreq(ev, "overlay", want), "overlay %s", jstr(ev, "overlay"));
        const cJSON *te = cJSON_GetObjectItem(f, "text_evidence");
        CHECK(cJSON_GetArraySize(te) == (int)rf->nspans);
        for (int s = 0; s < cJSON_GetArraySize(te); s++) {
            const cJSON *sp = cJSON_GetArrayItem(te, s);
            size_t b = (size_t)jnum(sp, "begin"), e = (size_t)jnum(sp, "end");
            CHECK(b == rf->spans[s].begin && e == rf->spans[s].end &&
                  (float)jnum(sp, "weight") == rf->spans[s].weight);
            const char *t = jstr(sp, "text");
            CHECKF(t && strlen(t) == e - b && memcmp(t, fix_note_text + b, e - b) == 0, "span text '%s'",
                   t ? t : "(none)");
        }
    }
    const cJSON *tm = cJSON_GetObjectItem(j, "timings");
    CHECK(cJSON_GetArraySize(tm) == 6 && jstreq(cJSON_GetArrayItem(tm, 2), "stage", "vision") &&
          jnum(cJSON_GetArrayItem(tm, 2), "ms") == 210.0);
    const cJSON *wa = cJSON_GetObjectItem(j, "warnings");
    CHECK(cJSON_GetArraySize(wa) == 2 &&
          strcmp(cJSON_GetArrayItem(wa, 0)->valuestring, "image 1 skipped: lateral view") == 0);
    cJSON_Delete(j);
}

static void check_phi_json(const char *path)
{
    cJSON *j = load_json(path);
    if (!j)
        return;
    const cJSON *study = cJSON_GetObjectItem(j, "study");
    const cJSON *pat = cJSON_GetObjectItem(study, "patient");
    CHECK(cJSON_IsTrue(cJSON_GetObjectItem(j, "include_phi")));
    CHECK(jstreq(pat, "id", FIX_PATIENT_ID) && jstreq(pat, "name", FIX_PATIENT_NAME) &&
          jstreq(study, "accession_number", FIX_ACCESSION));
    CHECK(jstreq(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "images"), 0), "file", FIX_IMAGE_DIR "IM0001.dcm"));
    cJSON_Delete(j);
}

static const char *const phi_strings[] = {FIX_PATIENT_NAME, FIX_PATIENT_ID, FIX_ACCESSION, FIX_BIRTH_DATE,
                                          "DOE_JANE"};

/* A write refused: rc, the message names what, and the old file is intact. */
static void check_refused(rf_read_result *r, const char *dir, const char *what)
{
    char *path = join(dir, "result.json");
    size_t n0, n1;
    char *before = test_read_file(path, &n0);
    rf_err e = {""};
    int rc = rf_result_write_json(r, path, &e);
    CHECKF(rc == RF_EINVAL, "%s: rc %d", what, rc);
    CHECKF(strstr(e.msg, what) != NULL && strstr(e.msg, "result.json") != NULL, "message: %s", e.msg);
    char *after = test_read_file(path, &n1);
    CHECK(before && after && n0 == n1 && memcmp(before, after, n0) == 0);
    int files = 0, tmp = 0;
    files_with(dir, "\x01never", &files, &tmp);
    CHECK(tmp == 0);
    rf_err e2 = {""};
    char *fhir = join(dir, "report.fhir.json");
    CHECKF(rf_result_write_fhir(r, fhir, &e2) == RF_EINVAL && strstr(e2.msg, what), "fhir: %s", e2.msg);
    CHECKF(rf_result_write_html(r, dir, &e2) == RF_EINVAL && strstr(e2.msg, what), "html: %s", e2.msg);
    free(fhir);
    free(before);
    free(after);
    free(path);
}

int main(void)
{
    char d0[256], d1[256];
    test_tmpdir(d0, sizeof d0);
    test_tmpdir(d1, sizeof d1);
    rf_read_result r0, r1;
    fixture_build(&r0, 0, 96, 80);
    fixture_build(&r1, 1, 96, 80);
    CHECK(write_all(&r0, d0) == 0);
    CHECK(write_all(&r1, d1) == 0);
    char *j0 = join(d0, "result.json"), *j1 = join(d1, "result.json");
    check_schema(j0, j1);
    check_contents(j0, &r0);
    check_phi_json(j1);
    {
        char *mem;
        size_t len, flen;
        rf_err e;
        char *file = test_read_file(j0, &flen);
        CHECK(rf_result_json(&r0, &mem, &len, &e) == 0);
        CHECK(file && mem && len == flen && memcmp(mem, file, len) == 0 && mem[len] == 0 && mem[len - 1] == '\n');
        free(mem);
        free(file);
    }

    /* no patient identifier in any output without include_phi; with it, in
     * the JSON, the page and the FHIR report (the positive control) */
    for (size_t i = 0; i < sizeof phi_strings / sizeof *phi_strings; i++) {
        int files = 0, tmp = 0;
        int hits = files_with(d0, phi_strings[i], &files, &tmp);
        CHECKF(hits == 0, "%s found in %d output files without include_phi", phi_strings[i], hits);
        CHECKF(files == 6 && tmp == 0, "%d files, %d temporaries", files, tmp); /* 3 overlays, json, html, fhir */
    }
    int files = 0, tmp = 0;
    CHECKF(files_with(d1, FIX_PATIENT_ID, &files, &tmp) >= 3, "patient ID missing with include_phi");
    files = tmp = 0;
    CHECKF(files_with(d1, FIX_PATIENT_NAME, &files, &tmp) >= 2, "patient name missing with include_phi");
    files = tmp = 0;
    CHECKF(files_with(d1, "JANE DOE", &files, &tmp) == 1, "patient name missing in the FHIR report with include_phi");

    /* refusals: NaN, infinity, a map value out of range, a span inside a character */
    r0.findings[1].probability = NAN;
    check_refused(&r0, d0, "probability");
    r0.findings[1].probability = 0.6;
    r0.findings[2].logit = INFINITY;
    check_refused(&r0, d0, "logit");
    r0.findings[2].logit = -2.2;
    r0.timings[3].ms = NAN;
    check_refused(&r0, d0, "timing 3");
    r0.timings[3].ms = 45.75;
    r0.findings[0].maps[0].values[5] = NAN;
    check_refused(&r0, d0, "map 0 value");
    r0.findings[0].maps[0].values[5] = 0;
    size_t deg = (size_t)(strstr(fix_note_text, "\xC2\xB0") - fix_note_text);
    rf_result_span keep = r0.findings[0].spans[2];
    r0.findings[0].spans[2].begin = deg + 1; /* between the two bytes of the degree sign */
    check_refused(&r0, d0, "UTF-8");
    r0.findings[0].spans[2] = keep;
    r0.labs[0].value = -INFINITY;
    check_refused(&r0, d0, "lab 0");
    r0.labs[0].value = 87.5;
    rf_err e;
    CHECK(rf_result_write_json(&r0, j0, &e) == 0); /* back to good */

    /* the record's helpers */
    CHECK(strcmp(rf_modality_name(RF_MODALITY_LABS), "labs") == 0 && strcmp(rf_modality_name(RF_MODALITY_COUNT), "?") == 0);
    size_t nw = r0.nwarnings, nt = r0.ntimings;
    CHECK(rf_result_warn(&r0, "%d of %s", 3, "x") == 0 && r0.nwarnings == nw + 1 &&
          strcmp(r0.warnings[nw], "3 of x") == 0);
    CHECK(rf_result_time(&r0, "write", 1.5) == 0 && r0.ntimings == nt + 1 && r0.timings[nt].ms == 1.5 &&
          strcmp(r0.timings[nt].stage, "write") == 0);
    rf_result_free(&r0);
    CHECK(r0.findings == NULL && r0.nfindings == 0 && r0.warnings == NULL);
    rf_result_free(&r0); /* twice is harmless */
    rf_result_free(&r1);
    free(j0);
    free(j1);
    return test_finish("test_report_json");
}
