/*
 * Labs and notes (radfuse/labs.h): real Synthea rows in the three formats
 * against an expected list made independently (tests/data/make_labs_cases.py:
 * its own LOINC table, UCUM's reference implementation for the values), unit
 * factors against UCUM and against a textbook SI table, and the hostile cases
 * of each format: invalid UTF-8, NUL, hostile nesting, wrong resource types,
 * broken HL7 delimiters, text values, unknown units, files over the caps.
 */
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "radfuse/labs.h"
#include "tests/testutil.h"
#include "text/labs_internal.h"

static char tmp[4096];

static bool near(double a, double b, double rel)
{
    return fabs(a - b) <= rel * fmax(fabs(a), fabs(b)) + 1e-12;
}

static bool has_flag(const rf_lab *r, const char *name)
{
    for (int b = 0; b < RF_LAB_FLAG_BITS; b++)
        if ((r->flags & (1u << b)) && !strcmp(rf_lab_flag_name(1u << b), name))
            return true;
    return false;
}

static const char *key_of(const rf_lab *r)
{
    const rf_lab_def *d = rf_lab_def_get(r->lab);
    return d ? d->key : "-";
}

/* Parses s (as a file named name) into a fresh L; returns the rc. */
static int parse(const char *name, const char *s, rf_labs *L, rf_err *err)
{
    memset(L, 0, sizeof *L);
    return rf_labs_parse(name, s, strlen(s), RF_LABS_AUTO, L, err);
}

static void expect_error(const char *name, const char *s, size_t len, const char *part)
{
    rf_labs L = {0};
    rf_err err = {{0}};
    int rc = rf_labs_parse(name, s, len, RF_LABS_AUTO, &L, &err);
    CHECKF(rc != 0, "%s should fail (%s)", name, part);
    CHECKF(strstr(err.msg, part) != NULL, "%s: error '%s' lacks '%s'", name, err.msg, part);
    CHECKF(strncmp(err.msg, name, strlen(name)) == 0, "error '%s' does not name %s", err.msg, name);
    CHECK(L.nlabs == 0 && L.nnotes == 0 && L.nissues == 0);
    rf_labs_free(&L);
}

/* For literals (which may hold NUL bytes): their length without the final NUL. */
#define EXPECT_ERROR(name, lit, part) expect_error(name, lit, sizeof(lit) - 1, part)

static bool any_issue(const rf_labs *L, const char *part)
{
    for (size_t i = 0; i < L->nissues; i++)
        if (strstr(L->issues[i].message, part) || strstr(L->issues[i].source, part))
            return true;
    return false;
}

/* ---- the table and units -------------------------------------------------------- */

static void test_table(void)
{
    int n = rf_lab_count();
    CHECK(n >= 36);
    for (int i = 0; i < n; i++) {
        const rf_lab_def *d = rf_lab_def_get(i);
        CHECK(d && d->key && d->unit);
        CHECK(rf_lab_by_key(d->key) == i);
        double out, f, off;
        rf_err err;
        /* the canonical unit is one radfuse reads, converting to itself */
        int rc = rf_lab_convert(i, 3.25, d->unit, 0, &out, &f, &off, &err);
        CHECKF(rc == 0 && out == 3.25 && f == 1 && off == 0, "%s: canonical %s: %s", d->key, d->unit, err.msg);
        CHECKF(d->pop_high >= d->pop_low, "%s", d->key);
    }
    CHECK(rf_lab_def_get(-1) == NULL && rf_lab_def_get(n) == NULL);
    CHECK(rf_lab_by_key("no such lab") == -1);
    /* ids are stable: the first ones as documented */
    CHECK(rf_lab_by_key("glucose") == 0 && rf_lab_by_key("creatinine") == 1);
    /* every LOINC code in the table carries a valid check digit and a lab */
    int lab, codes = 0;
    const char *code;
    for (size_t i = 0; (code = labs_loinc_at(i, &lab)); i++, codes++) {
        CHECKF(labs_loinc_check(code), "table code %s fails LOINC's check digit", code);
        CHECK(lab >= 0 && lab < n && rf_lab_by_loinc(code) == lab);
    }
    CHECK(codes > 80);
    CHECK(labs_loinc_check("2951-2") && labs_loinc_check("718-7") && labs_loinc_check("10839-9"));
    CHECK(!labs_loinc_check("2951-3") && !labs_loinc_check("2951") && !labs_loinc_check("A951-2"));
    CHECK(rf_lab_by_loinc("2093-3") == -1); /* cholesterol: not in the table */
    /* every key has a readable flag name and nothing else does */
    for (int b = 0; b < RF_LAB_FLAG_BITS; b++)
        CHECK(rf_lab_flag_name(1u << b) != NULL);
    CHECK(rf_lab_flag_name(1u << RF_LAB_FLAG_BITS) == NULL && rf_lab_flag_name(3) == NULL);
}

/* Factors from UCUM's reference implementation (ucum_factors.tsv). */
static void test_ucum_factors(void)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/data/labs/ucum_factors.tsv", getenv("RADFUSE_SOURCE"));
    size_t n;
    char *data = test_read_file(path, &n);
    CHECKF(data != NULL, "cannot read %s", path);
    if (!data)
        return;
    int rows = 0;
    for (char *line = strtok(data, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#')
            continue;
        char *f[9];
        int k = 0;
        for (char *p = line; k < 9; k++) {
            f[k] = p;
            char *t = strchr(p, '\t');
            if (!t) {
                k++;
                break;
            }
            *t = 0;
            p = t + 1;
        }
        CHECKF(k == 9, "bad row in ucum_factors.tsv");
        if (k != 9)
            continue;
        rows++;
        int id = rf_lab_by_key(f[0]);
        CHECKF(id >= 0, "lab %s", f[0]);
        double mm = atof(f[4]), factor = atof(f[6]), offset = atof(f[7]);
        double out, fac, off;
        rf_err err;
        int rc = rf_lab_convert(id, 1.0, f[1], atoi(f[5]) ? mm : 0, &out, &fac, &off, &err);
        CHECKF(rc == 0, "%s: %s -> %s: %s", f[0], f[1], f[3], err.msg);
        if (rc)
            continue;
        /* molar masses agree with the formulas' to 1e-5; the unit algebra exactly */
        CHECKF(near(fac, factor, 2e-5), "%s: %s -> %s: factor %.10g, UCUM %.10g", f[0], f[1], f[3], fac, factor);
        CHECKF(fabs(off - offset) < 1e-9, "%s: %s: offset %.10g, UCUM %.10g", f[0], f[1], off, offset);
    }
    CHECK(rows >= 90);
    free(data);
}

/*
 * Textbook factors, independent of UCUM: Young DS, "Implementation of SI
 * units for clinical laboratory data", Ann Intern Med 1987;106:114-129
 * (conventional -> SI: glucose 0.05551, creatinine 88.40, urea nitrogen to
 * urea 0.3570, calcium 0.2495, bilirubin 17.10, lactate 0.1110, albumin
 * 10, hemoglobin g/dL -> mmol/L 0.6206); counts 10^3/uL = 10^9/L; 98.6 degF =
 * 37 Cel; 1 kPa = 7.50062 mmHg (NIST SP 811: 1 mmHg = 133.322 Pa).
 */
static void convert_case(const char *key, double v, const char *unit, double mm, double want, double rel)
{
    double out;
    rf_err err;
    int rc = rf_lab_convert(rf_lab_by_key(key), v, unit, mm, &out, NULL, NULL, &err);
    CHECKF(rc == 0, "%s %g %s: %s", key, v, unit, err.msg);
    CHECKF(rc || near(out, want, rel), "%s %g %s gave %.8g, want %.8g", key, v, unit, out, want);
}

static void refuse_case(const char *key, const char *unit, const char *part)
{
    double out;
    rf_err err = {{0}};
    int rc = rf_lab_convert(rf_lab_by_key(key), 12345.5, unit, 0, &out, NULL, NULL, &err);
    CHECKF(rc == RF_EUNSUP, "%s in '%s' should be refused", key, unit ? unit : "(null)");
    CHECKF(strstr(err.msg, part) != NULL, "'%s' lacks '%s'", err.msg, part);
    CHECKF(!strstr(err.msg, "12345"), "the value leaked into '%s'", err.msg);
}

static void test_textbook(void)
{
    convert_case("glucose", 100, "mg/dL", 0, 5.551, 1e-3);
    convert_case("creatinine", 1.0, "mg/dL", 0, 88.40, 1e-3);
    convert_case("urea", 10, "mg/dL", 28.014, 3.570, 1e-3);
    convert_case("calcium", 10, "mg/dL", 0, 2.495, 1e-3);
    convert_case("bilirubin", 1.0, "mg/dL", 0, 17.10, 1e-3);
    convert_case("lactate", 10, "mg/dL", 0, 1.110, 1e-3);
    convert_case("albumin", 4.0, "g/dL", 0, 40, 1e-12);
    convert_case("hemoglobin", 8.7, "mmol/L", 0, 8.7 / 0.6206 * 10, 1e-3); /* 8.7 mmol/L = 14.0 g/dL */
    convert_case("wbc", 7.4, "10^3/uL", 0, 7.4, 1e-12);
    convert_case("wbc", 7400, "/uL", 0, 7.4, 1e-12);
    convert_case("wbc", 7400, "cells/mm3", 0, 7.4, 1e-12);
    convert_case("platelets", 250, "K/uL", 0, 250, 1e-12);
    convert_case("temperature", 98.6, "[degF]", 0, 37.0, 1e-9);
    convert_case("temperature", 32, "\xc2\xb0" "F", 0, 0.0, 1e-9);
    convert_case("temperature", 37.2, "Cel", 0, 37.2, 1e-12);
    convert_case("po2", 10, "kPa", 0, 75.0062, 1e-5);
    convert_case("sodium", 140, "mEq/L", 0, 140, 1e-12);
    convert_case("calcium", 5, "mEq/L", 0, 2.5, 1e-12);
    convert_case("d_dimer_feu", 500, "ng/mL FEU", 0, 0.5, 1e-12);
    convert_case("d_dimer_ddu", 250, "ng/mL DDU", 0, 0.25, 1e-12);
    convert_case("inr", 1.1, "", 0, 1.1, 1e-12); /* INR and pH take no unit */
    convert_case("ph", 7.4, NULL, 0, 7.4, 1e-12);
    convert_case("hematocrit", 0.42, "L/L", 0, 42, 1e-12);
    convert_case("heart_rate", 72, "{beats}/min", 0, 72, 1e-12);
    convert_case("creatinine", 97, "\xce\xbcmol/L", 0, 97, 1e-12); /* Greek mu */

    refuse_case("glucose", "furlongs", "not one radfuse knows");
    refuse_case("wbc", "mg/dL", "cannot be converted to 10*9/L");
    refuse_case("crp", "mmol/L", "cannot be converted"); /* no molar mass for a protein of many forms */
    refuse_case("albumin", "meq/L", "cannot be converted");
    refuse_case("d_dimer_feu", "ng/mL DDU", "cannot be converted"); /* FEU and DDU are never mixed */
    refuse_case("neutrophils", "%", "cannot be converted");
    refuse_case("glucose", "", "no unit given");
    refuse_case("spo2", NULL, "no unit given");
    refuse_case("glucose", "mg/dL{", "not one radfuse knows");
    refuse_case("glucose", "mg/dLmg/dLmg/dLmg/dLmg/dLmg/dLmg/dLmg/dLmg/dLmg/dLmg/dLmg/dLmg/dL", "not one");
    /* case matters where it means something else: G/L is giga per litre, g/L grams */
    refuse_case("wbc", "g/L", "cannot be converted");
    convert_case("wbc", 6.1, "G/L", 0, 6.1, 1e-12);
    {
        double out;
        rf_err err;
        CHECK(rf_lab_convert(-1, 1, "mg/dL", 0, &out, NULL, NULL, &err) == RF_EINVAL);
        CHECK(rf_lab_convert(rf_lab_count(), 1, "mg/dL", 0, &out, NULL, NULL, &err) == RF_EINVAL);
    }
}

/* ---- times ------------------------------------------------------------------------ */

static void time_case(const char *s, bool ok, const char *formatted)
{
    rf_time t;
    int rc = rf_time_parse_iso(s, strlen(s), &t);
    CHECKF((rc == 0) == ok, "'%s' should %s", s, ok ? "parse" : "fail");
    if (rc == 0 && formatted) {
        char buf[48];
        rf_time_format(&t, buf, sizeof buf);
        CHECKF(!strcmp(buf, formatted), "'%s' formats as '%s', want '%s'", s, buf, formatted);
    }
}

static void test_times(void)
{
    time_case("2020", true, "2020");
    time_case("2020-03", true, "2020-03");
    time_case("2020-03-04", true, "2020-03-04");
    time_case("2020-03-04T10:00", true, "2020-03-04T10:00");
    time_case("2020-03-04 10:00:05", true, "2020-03-04T10:00:05");
    time_case("2020-03-04T10:00:05.250+01:00", true, "2020-03-04T10:00:05.250+01:00");
    time_case("2021-08-23T03:26:50Z", true, "2021-08-23T03:26:50Z");
    time_case("2020-03-04T10:00:00-0530", true, "2020-03-04T10:00:00-05:30");
    time_case("2020-02-29", true, NULL);
    time_case("2019-02-29", false, NULL);
    time_case("2020-02-30", false, NULL);
    time_case("2020-13-01", false, NULL);
    time_case("2020-03-04T24:00", false, NULL);
    time_case("2020-03-04T10:60", false, NULL);
    time_case("2020-03-04T10:00:00+15:00", false, NULL);
    time_case("2020-03-04T10:00:00+01:", false, NULL);
    time_case("2020-03-04Z", false, NULL);
    time_case("March 4, 2020", false, NULL);
    time_case("", false, NULL);
    time_case("20200304", false, NULL);
    rf_time t;
    CHECK(rf_time_parse_hl7("20200304113000.1234-0500", 24, &t) == 0 && t.precision == RF_TIME_SECOND &&
          t.has_tz && t.tz_minutes == -300 && t.frac_digits == 4 && t.nanos == 123400000);
    CHECK(rf_time_parse_hl7("2020030411", 10, &t) == 0 && t.precision == RF_TIME_HOUR && !t.has_tz);
    CHECK(rf_time_parse_hl7("202003041", 9, &t) != 0);
    CHECK(rf_time_parse_hl7("20200230", 8, &t) != 0);
    CHECK(rf_time_parse_hl7("20200304+05", 11, &t) != 0);
    bool zoned;
    CHECK(rf_time_parse_iso("1970-01-01T00:00:00Z", 20, &t) == 0 && rf_time_unix(&t, &zoned) == 0 && zoned);
    CHECK(rf_time_parse_iso("2020-03-04T10:00:00+01:00", 25, &t) == 0 && rf_time_unix(&t, &zoned) == 1583312400);
    CHECK(rf_time_parse_iso("2020-03-04", 10, &t) == 0 && rf_time_unix(&t, &zoned) == 1583280000 && !zoned);
}

/* ---- Synthea rows in the three formats ------------------------------------------------- */

typedef struct expected {
    char code[16], value[64], unit[32], lab[32], canon[32], norm[32], flags[64];
} expected;

static int load_expected(expected *e, int cap)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/data/labs/synthea_expected.tsv", getenv("RADFUSE_SOURCE"));
    size_t n;
    char *data = test_read_file(path, &n);
    CHECKF(data != NULL, "cannot read %s", path);
    if (!data)
        return 0;
    int k = 0;
    for (char *line = strtok(data, "\n"); line && k < cap; line = strtok(NULL, "\n")) {
        if (line[0] == '#')
            continue;
        int row;
        int got = sscanf(line, "%d\t%15[^\t]\t%63[^\t]\t%31[^\t]\t%31[^\t]\t%31[^\t]\t%31[^\t]\t%63s", &row, e[k].code,
                         e[k].value, e[k].unit, e[k].lab, e[k].canon, e[k].norm, e[k].flags);
        CHECKF(got == 8 && row == k + 1, "bad expected row %d", k + 1);
        k++;
    }
    free(data);
    return k;
}

static void check_rows(const char *what, const rf_labs *L, const expected *e, int n)
{
    CHECKF((int)L->nlabs >= n, "%s: %zu labs, want at least %d", what, L->nlabs, n);
    for (int i = 0; i < n && i < (int)L->nlabs; i++) {
        const rf_lab *r = &L->labs[i];
        CHECKF(r->code && !strcmp(r->code, e[i].code), "%s row %d: code %s, want %s", what, i + 1, r->code,
               e[i].code);
        CHECKF(!strcmp(key_of(r), e[i].lab), "%s row %d (%s): lab %s, want %s", what, i + 1, e[i].code, key_of(r),
               e[i].lab);
        if (strcmp(e[i].norm, "-")) {
            CHECKF(r->has_norm && r->unit && !strcmp(r->unit, e[i].canon), "%s row %d (%s): not normalized to %s",
                   what, i + 1, e[i].code, e[i].canon);
            CHECKF(near(r->value_norm, atof(e[i].norm), 1e-9), "%s row %d (%s): %.12g, UCUM %s", what, i + 1,
                   e[i].code, r->value_norm, e[i].norm);
            /* no range in Synthea: z from the table's interval, flags from it too */
            CHECK(r->z_source == RF_Z_POPULATION && has_flag(r, "missing-range"));
            CHECK(!has_flag(r, "unknown-unit") && !has_flag(r, "unit-unconvertible"));
        } else {
            CHECKF(!r->has_norm, "%s row %d (%s): normalized without an expected value", what, i + 1, e[i].code);
        }
        for (char *fl = (char *)e[i].flags; strcmp(e[i].flags, "-") && *fl;) {
            char one[32];
            size_t k = strcspn(fl, ",");
            snprintf(one, sizeof one, "%.*s", (int)k, fl);
            CHECKF(has_flag(r, one), "%s row %d (%s): flag %s missing", what, i + 1, e[i].code, one);
            fl += k + (fl[k] == ',');
        }
        CHECKF(r->value_raw && !strcmp(r->value_raw, e[i].value) ? true : (r->has_value && near(r->value, atof(e[i].value), 1e-12)),
               "%s row %d: value '%s', want %s", what, i + 1, r->value_raw, e[i].value);
        /* every Synthea time is a UTC date-time */
        CHECKF(r->time.precision == RF_TIME_SECOND && r->time.has_tz && r->time.tz_minutes == 0,
               "%s row %d: time '%s' not parsed", what, i + 1, r->time_raw);
    }
}

static void test_synthea(void)
{
    expected e[64];
    int n = load_expected(e, 64);
    CHECK(n >= 50);
    const char *src = getenv("RADFUSE_SOURCE");
    char path[4096];
    rf_err err;

    rf_labs L = {0};
    snprintf(path, sizeof path, "%s/tests/data/labs/synthea.csv", src);
    CHECKF(rf_labs_read_file(path, RF_LABS_AUTO, &L, &err) == 0, "%s", err.msg);
    CHECK((int)L.nlabs == n && L.nnotes == 0 && L.nissues == 0);
    check_rows("csv", &L, e, n);
    CHECK(strstr(L.labs[0].source, "synthea.csv:2") != NULL); /* the header is line 1 */
    rf_labs_free(&L);

    snprintf(path, sizeof path, "%s/tests/data/labs/synthea.hl7", src);
    CHECKF(rf_labs_read_file(path, RF_LABS_AUTO, &L, &err) == 0, "%s", err.msg);
    CHECK((int)L.nlabs == n && L.nnotes == 0 && L.nissues == 0);
    check_rows("hl7", &L, e, n);
    CHECK(L.nlabs && strstr(L.labs[0].source, "segment 4 (OBX)") && !strcmp(L.labs[0].status, "F"));
    rf_labs_free(&L);

    snprintf(path, sizeof path, "%s/tests/data/labs/synthea_fhir.json", src);
    CHECKF(rf_labs_read_file(path, RF_LABS_AUTO, &L, &err) == 0, "%s", err.msg);
    check_rows("fhir", &L, e, n);
    /* the blood pressure panel: two labs from its components, none for the panel */
    CHECKF((int)L.nlabs == n + 2, "fhir: %zu labs", L.nlabs);
    if ((int)L.nlabs == n + 2) {
        const rf_lab *s = &L.labs[n], *d = &L.labs[n + 1];
        CHECK(!strcmp(key_of(s), "sbp") && !strcmp(key_of(d), "dbp"));
        CHECK(strstr(s->source, "entry[53].resource.component[0]") && strstr(d->source, "component[1]"));
        CHECK(s->has_norm && !strcmp(s->unit, "mm[Hg]") && s->time.precision == RF_TIME_SECOND);
        CHECK(!strcmp(s->status, "final"));
    }
    CHECK(L.nnotes == 2);
    if (L.nnotes == 2) {
        CHECK(!strcmp(L.notes[0].kind, "DocumentReference") && !strcmp(L.notes[0].title, "Radiology report"));
        CHECK(strstr(L.notes[0].text, "right lower lobe pneumonia") && L.notes[0].len == strlen(L.notes[0].text));
        CHECK(L.notes[0].time.precision == RF_TIME_SECOND && strstr(L.notes[0].source, "content[0]"));
        CHECK(!strcmp(L.notes[1].kind, "DiagnosticReport") && !strcmp(L.notes[1].text, "Right lower lobe pneumonia."));
        CHECK(!strcmp(L.notes[1].title, "XR chest"));
    }
    /* the PDF by URL and the Patient are issues, and reading went on */
    CHECK(L.nissues == 2 && any_issue(&L, "content[1]") && any_issue(&L, "a Patient resource is not"));
    rf_labs_free(&L);
}

/* Hannover's labs come without units (and some CRPs as "-inf"): identified by name, never normalized. */
static void test_hannover(void)
{
    static const char *const names[][2] = {{"CRP", "crp"}, {"D-dimer", "d_dimer"}, {"LDH", "ldh"},
                                           {"Lymphocytes", "lymphocytes"}, {"Neutrophils", "neutrophils"},
                                           {"pCO2", "pco2"}, {"pO2", "po2"}, {"Factor XII", "-"}};
    char path[4096];
    rf_labs L = {0};
    rf_err err;
    snprintf(path, sizeof path, "%s/tests/data/labs/hannover.csv", getenv("RADFUSE_SOURCE"));
    CHECKF(rf_labs_read_file(path, RF_LABS_AUTO, &L, &err) == 0, "%s", err.msg);
    CHECK(L.nlabs == 60 && L.nissues == 0);
    int unknown = 0, infinite = 0;
    for (size_t i = 0; i < L.nlabs; i++) {
        const rf_lab *r = &L.labs[i];
        const char *want = NULL;
        for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
            if (!strcmp(r->name, names[k][0]))
                want = names[k][1];
        CHECKF(want && !strcmp(key_of(r), want), "%s: %s", r->source, key_of(r));
        CHECK(!r->has_norm && r->z_source == RF_Z_NONE && !(r->flags & (RF_LAB_LOW | RF_LAB_HIGH)));
        if (!strcmp(r->value_raw, "-inf")) { /* in the data: not a number radfuse accepts */
            infinite++;
            CHECK(!r->has_value && has_flag(r, "text-value"));
            continue;
        }
        CHECK(r->has_value);
        if (r->lab >= 0)
            CHECK(has_flag(r, "missing-unit") && has_flag(r, "by-name"));
        else {
            unknown++;
            CHECK(has_flag(r, "unknown-lab") && !has_flag(r, "missing-unit"));
        }
    }
    CHECK(unknown > 0 && infinite > 0);
    rf_labs_free(&L);
}

/* ---- CSV ------------------------------------------------------------------------------ */

static const rf_lab *lab_at(const rf_labs *L, size_t i)
{
    static const rf_lab none = {.lab = -1};
    CHECKF(i < L->nlabs, "lab %zu of %zu", i, L->nlabs);
    return i < L->nlabs ? &L->labs[i] : &none;
}

static void test_csv(void)
{
    rf_labs L;
    rf_err err;
    const char *csv =
        "\xef\xbb\xbfTime,Code,Name,Value,Unit,Low,High,Comment\r\n"
        "2020-03-04T10:00:00+01:00,2345-7,Glucose,95,mg/dL,70,99,fasting\r\n"
        "2020-03-04,,CRP,<0.1,mg/L,0,5,\r\n"
        ",,Potassium,pending,mmol/L,3.5,5.0,\r\n"
        ",,Sodium,see note,mmol/L,,,\r\n"
        ",,WBC,,10*3/uL,,,\r\n"
        ",2951-2,Sodium,140,furlongs,135,145,\r\n"
        ",6690-2,WBC,12,mg/dL,4.5,11,\r\n"
        ",2345-8,Glucose,5,mmol/L,,,\r\n"
        ",,Neutrophils,62,%,40,70,\r\n"
        ",,D-dimer,800,ng/mL DDU,0,250,\r\n"
        ",,Platelets,\"1,200\",10*3/uL,,,\r\n"
        ",,CRP,10,mg/L,,5,\r\n"
        ",,Hemoglobin,>=20,g/dL,12,16,\r\n"
        ",,Troponin,12,ng/L,,,\r\n"
        "yesterday,,Glucose,5.5,mmol/L,low,high,\r\n"
        "2020-02-30,,Glucose,5.5,mmol/L,,,\r\n"
        "\"\",\"8310-5\",\"Body temperature\",\"101.3\",\"[degF]\",\"\",\"\",\"\"\r\n"
        ",,pH,7.31,,7.35,7.45,\r\n"
        ",,\"Sodium, \"\"whole blood\"\"\",138,mmol/L,,,\r\n"
        "only,three,fields\r\n"
        ",,Albumin,3.1,g/dL,5,3.5,\r\n";
    int rc = parse("t.csv", csv, &L, &err);
    CHECKF(rc == 0, "%s", err.msg);
    /* columns in any order and case; the extra one is an issue; the short row too */
    CHECK(L.nissues == 2 && any_issue(&L, "'Comment') is not a lab column") && any_issue(&L, "t.csv:21"));
    CHECK(L.nlabs == 20);
    const rf_lab *r = lab_at(&L, 0);
    CHECK(!strcmp(key_of(r), "glucose") && !strcmp(r->loinc, "2345-7") && !strcmp(r->source, "t.csv:2"));
    CHECK(r->has_norm && near(r->value_norm, 95 / 18.0156, 1e-4) && !strcmp(r->unit, "mmol/L"));
    CHECK(r->z_source == RF_Z_RECORD && near(r->z, (95 - 84.5) / 14.5, 1e-9) && r->flags == 0);
    CHECK(r->has_norm_low && near(r->low_norm, 70 / 18.0156, 1e-4) && r->time.tz_minutes == 60);
    r = lab_at(&L, 1); /* "<0.1": comparator and bound, flagged */
    CHECK(!strcmp(key_of(r), "crp") && r->has_value && r->value == 0.1 && r->cmp == RF_CMP_LT);
    CHECK(has_flag(r, "censored") && has_flag(r, "by-name") && !has_flag(r, "low") && !strcmp(r->value_raw, "<0.1"));
    r = lab_at(&L, 2);
    CHECK(!r->has_value && has_flag(r, "text-value") && !strcmp(r->value_raw, "pending") && r->z_source == RF_Z_NONE);
    r = lab_at(&L, 3);
    CHECK(has_flag(r, "text-value") && !strcmp(r->value_raw, "see note"));
    r = lab_at(&L, 4);
    CHECK(has_flag(r, "no-value") && !has_flag(r, "text-value"));
    r = lab_at(&L, 5); /* unknown unit: kept, flagged, not normalized; the range in that unit still judges */
    CHECK(has_flag(r, "unknown-unit") && !r->has_norm && !strcmp(r->unit_raw, "furlongs"));
    CHECK(r->z_source == RF_Z_RECORD && near(r->z, 0, 1e-12));
    r = lab_at(&L, 6);
    CHECK(has_flag(r, "unit-unconvertible") && !r->has_norm && has_flag(r, "high") && r->z_source == RF_Z_RECORD);
    r = lab_at(&L, 7); /* a wrong check digit is not LOINC, and no name is guessed instead */
    CHECK(has_flag(r, "bad-code") && has_flag(r, "unknown-lab") && !r->loinc && r->lab < 0);
    r = lab_at(&L, 8); /* "Neutrophils" in %: the unit picks the twin */
    CHECK(!strcmp(key_of(r), "neutrophils_pct") && r->has_norm && r->value_norm == 62);
    r = lab_at(&L, 9);
    CHECK(!strcmp(key_of(r), "d_dimer_ddu") && near(r->value_norm, 0.8, 1e-12) && has_flag(r, "high"));
    r = lab_at(&L, 10); /* thousands separators are not guessed */
    CHECK(has_flag(r, "text-value") && !r->has_value && !strcmp(r->value_raw, "1,200"));
    r = lab_at(&L, 11); /* an upper limit alone: the range starts at 0 */
    CHECK(r->has_high && !r->has_low && has_flag(r, "high") && near(r->z, (10 - 2.5) / 2.5, 1e-12));
    r = lab_at(&L, 12); /* ">=20" g/dL against 12-16: surely high */
    CHECK(r->cmp == RF_CMP_GE && has_flag(r, "high") && has_flag(r, "censored") && near(r->value_norm, 200, 1e-12));
    r = lab_at(&L, 13); /* "Troponin" alone could be I or T */
    CHECK(r->lab < 0 && has_flag(r, "unknown-lab") && !has_flag(r, "unknown-unit"));
    r = lab_at(&L, 14);
    CHECK(has_flag(r, "range-unparsed") && has_flag(r, "bad-time") && !r->has_low && r->range_raw &&
          !strcmp(r->time_raw, "yesterday") && r->z_source == RF_Z_POPULATION);
    r = lab_at(&L, 15);
    CHECK(has_flag(r, "bad-time") && r->time.precision == RF_TIME_NONE);
    r = lab_at(&L, 16);
    CHECK(!strcmp(key_of(r), "temperature") && near(r->value_norm, 38.5, 1e-9) && has_flag(r, "high"));
    r = lab_at(&L, 17); /* pH needs no unit */
    CHECK(!strcmp(key_of(r), "ph") && r->has_norm && has_flag(r, "low") && !has_flag(r, "missing-unit"));
    r = lab_at(&L, 18);
    CHECK(!strcmp(r->name, "Sodium, \"whole blood\"") && r->lab < 0);
    r = lab_at(&L, 19); /* 5-3.5 is no range */
    CHECK(has_flag(r, "range-unparsed") && r->z_source == RF_Z_POPULATION);
    rf_labs_free(&L);

    /* a failed file leaves what was read before untouched */
    CHECK(parse("a.csv", "code,name,value,unit,low,high,time\n,Glucose,5,mmol/L,,,\n", &L, &err) == 0);
    CHECK(L.nlabs == 1);
    const char *bad = "code,name,value,unit,low,high,time\n,Glucose,5,mmol/L,,,\n,Glucose,\"5,mmol/L,,,\n";
    CHECK(rf_labs_parse("b.csv", bad, strlen(bad), RF_LABS_AUTO, &L, &err) == RF_EFORMAT);
    CHECK(L.nlabs == 1 && strstr(err.msg, "b.csv: line 3: quoted field not closed"));
    rf_labs_free(&L);

    EXPECT_ERROR("h1.csv", "code,name,value,unit,low,high\n1,2,3,4,5,6\n", "no column 'time'");
    EXPECT_ERROR("h2.csv", "code,name,value,unit,low,high,time,Code\n", "'code' appears twice");
    EXPECT_ERROR("h3.csv", "", "empty");
    EXPECT_ERROR("u.csv", "code,name,value,unit,low,high,time\n,Glucose,5\xff,mmol/L,,,\n", "line 2: invalid UTF-8");
    EXPECT_ERROR("n.csv", "code,name,value,unit,low,high,time\n,Glucose,5\0,mmol/L,,,\n", "line 2: NUL byte");
    EXPECT_ERROR("q.csv", "code,name,value,unit,low,high,time\n,Glu\"cose,5,mmol/L,,,\n", "line 2: quote inside");
    {
        /* a 2 MiB field: over the CSV reader's record cap */
        size_t n = (size_t)2 << 20;
        char *big = test_xmalloc(n + 64);
        int k = snprintf(big, 64, "code,name,value,unit,low,high,time\n,Glucose,");
        memset(big + k, '7', n);
        memcpy(big + k + n, ",mmol/L,,,\n", 12);
        expect_error("big.csv", big, strlen(big), "line 2: record longer than");
        free(big);
    }
}

/* ---- FHIR -------------------------------------------------------------------------------- */

static void test_fhir(void)
{
    rf_labs L;
    rf_err err;
    const char *obs =
        "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"coding\":[{\"system\":\"urn:local\","
        "\"code\":\"GLU\"},{\"system\":\"http://loinc.org\",\"code\":\"2345-7\",\"display\":\"Glucose\"}]},"
        "\"effectivePeriod\":{\"start\":\"2020-03-04T10:00:00+01:00\"},"
        "\"valueQuantity\":{\"value\":6.1,\"unit\":\"mmol/l\",\"system\":\"http://unitsofmeasure.org\",\"code\":\"mmol/L\"},"
        "\"interpretation\":[{\"coding\":[{\"code\":\"H\"}]}],"
        "\"referenceRange\":[{\"low\":{\"value\":70,\"code\":\"mg/dL\",\"system\":\"http://unitsofmeasure.org\"},"
        "\"high\":{\"value\":99,\"code\":\"mg/dL\",\"system\":\"http://unitsofmeasure.org\"}}]}";
    CHECKF(parse("o.json", obs, &L, &err) == 0, "%s", err.msg);
    const rf_lab *r = lab_at(&L, 0);
    /* the LOINC coding is chosen over the local one; the range's unit differs from the value's */
    CHECK(!strcmp(r->loinc, "2345-7") && !strcmp(r->system, "http://loinc.org") && !strcmp(r->source, "o.json: Observation"));
    CHECK(!strcmp(r->unit_raw, "mmol/L") && !strcmp(r->range_unit, "mg/dL"));
    CHECK(r->has_norm_high && near(r->high_norm, 99 / 18.0156, 1e-4) && has_flag(r, "high"));
    CHECK(!has_flag(r, "flag-conflict") && has_flag(r, "abnormal") && !strcmp(r->source_flags, "H"));
    CHECK(r->time.precision == RF_TIME_SECOND && r->time.tz_minutes == 60);
    rf_labs_free(&L);

    const char *bundle =
        "{\"resourceType\":\"Bundle\",\"entry\":["
        "{\"resource\":{\"resourceType\":\"Observation\",\"code\":{\"text\":\"CRP\"},\"valueString\":\"<0.1\"}},"
        "{\"resource\":{\"resourceType\":\"Observation\",\"code\":{\"text\":\"Potassium\"},\"valueString\":\"pending\","
        "\"status\":\"registered\"}},"
        "{\"resource\":{\"resourceType\":\"Observation\",\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"2823-3\"}]},"
        "\"dataAbsentReason\":{\"coding\":[{\"code\":\"not-performed\"}]}}},"
        "{\"resource\":{\"resourceType\":\"Observation\",\"code\":{\"text\":\"Sodium\"},"
        "\"valueQuantity\":{\"value\":\"141\",\"unit\":\"mmol/L\"}}},"
        "{\"resource\":{\"resourceType\":\"Observation\",\"code\":{\"text\":\"Sodium\"},"
        "\"valueQuantity\":{\"value\":1e999,\"unit\":\"mmol/L\"}}},"
        "{\"resource\":{\"resourceType\":\"Observation\",\"code\":{\"text\":\"Potassium\"},"
        "\"valueQuantity\":{\"value\":2.1,\"comparator\":\"<\",\"unit\":\"mmol/L\"},"
        "\"interpretation\":[{\"coding\":[{\"code\":\"LL\"}]}],\"referenceRange\":[{\"text\":\"3.5 - 5.0\"}]}},"
        "{\"resource\":{\"resourceType\":\"Observation\",\"code\":{\"text\":\"WBC\"},"
        "\"valueQuantity\":{\"value\":7.0,\"unit\":\"10*3/uL\"},\"interpretation\":[{\"coding\":[{\"code\":\"H\"}]}],"
        "\"referenceRange\":[{\"low\":{\"value\":4.5},\"high\":{\"value\":11}}]}},"
        "{\"resource\":{\"resourceType\":\"Observation\",\"code\":{\"text\":\"Lymphocytes\"},"
        "\"valueQuantity\":{\"value\":0.6,\"unit\":\"10*3/uL\"},\"interpretation\":[{\"coding\":[{\"code\":\"L\"}]}]}},"
        "{\"resource\":{\"resourceType\":\"Observation\",\"code\":{\"text\":\"Culture\"},"
        "\"valueCodeableConcept\":{\"coding\":[{\"display\":\"No growth\"}]}}},"
        "{\"resource\":{\"resourceType\":\"Observation\",\"code\":{\"text\":\"panel\"},\"hasMember\":[{\"reference\":\"Observation/1\"}]}},"
        "{\"resource\":{\"resourceType\":\"Patient\"}},"
        "{\"resource\":{\"resourceType\":\"Encounter\"}},"
        "{\"resource\":{\"status\":\"final\"}},"
        "{\"fullUrl\":\"urn:x\"},"
        "{\"resource\":\"Observation\"},"
        "{\"resource\":{\"resourceType\":\"DiagnosticReport\",\"code\":{\"text\":\"CT chest\"},\"issued\":\"2020-03-05T08:00:00Z\","
        "\"presentedForm\":[{\"contentType\":\"text/plain\",\"data\":\"R3JvdW5kLWdsYXNzIG9wYWNpdGllcy4=\"},"
        "{\"contentType\":\"text/plain; charset=ISO-8859-1\",\"data\":\"QQ==\"},"
        "{\"contentType\":\"text/plain\",\"data\":\"not base64!\"},"
        "{\"contentType\":\"text/plain\",\"data\":\"/w==\"},"
        "{\"contentType\":\"text/plain\",\"data\":\"QQBC\"},"
        "{\"contentType\":\"text/html\",\"data\":\"QQ==\"},"
        "{\"data\":\"QQ==\"}],"
        "\"contained\":[{\"resourceType\":\"Observation\",\"code\":{\"text\":\"LDH\"},\"valueQuantity\":{\"value\":300,\"unit\":\"U/L\"}}]}},"
        "{\"resource\":{\"resourceType\":\"DocumentReference\",\"content\":[{\"attachment\":{\"url\":\"http://x/y\"}}]}},"
        "{\"resource\":{\"resourceType\":\"Bundle\",\"entry\":[{\"resource\":{\"resourceType\":\"Observation\","
        "\"code\":{\"text\":\"Temp\"},\"valueQuantity\":{\"value\":38.2,\"unit\":\"Cel\"}}}]}}"
        "]}";
    CHECKF(parse("b.json", bundle, &L, &err) == 0, "%s", err.msg);
    CHECKF(L.nlabs == 11, "%zu labs", L.nlabs);
    r = lab_at(&L, 0);
    CHECK(!strcmp(key_of(r), "crp") && r->cmp == RF_CMP_LT && r->value == 0.1 && has_flag(r, "censored"));
    CHECK(!strcmp(r->source, "b.json: Bundle.entry[0].resource"));
    r = lab_at(&L, 1);
    CHECK(has_flag(r, "text-value") && !strcmp(r->status, "registered"));
    r = lab_at(&L, 2);
    CHECK(has_flag(r, "no-value") && !strcmp(r->value_raw, "dataAbsentReason: not-performed") && !r->has_value);
    r = lab_at(&L, 3); /* a number as a JSON string: read, and an issue says so */
    CHECK(r->has_value && r->value == 141 && any_issue(&L, "valueQuantity.value is a string"));
    r = lab_at(&L, 4); /* 1e999: not finite, kept as text */
    CHECK(!r->has_value && has_flag(r, "text-value") && any_issue(&L, "not a finite number"));
    r = lab_at(&L, 5); /* "<2.1" against 3.5-5.0 from the range's text: surely low; LL is critical */
    CHECK(r->cmp == RF_CMP_LT && has_flag(r, "low") && has_flag(r, "critical") && r->has_low && r->low == 3.5);
    r = lab_at(&L, 6); /* H from the source, within 4.5-11 by the range: a conflict */
    CHECK(has_flag(r, "flag-conflict") && !has_flag(r, "high") && has_flag(r, "abnormal"));
    r = lab_at(&L, 7); /* no range: the source's L, and z from the table */
    CHECK(has_flag(r, "low") && r->z_source == RF_Z_POPULATION && has_flag(r, "missing-range"));
    r = lab_at(&L, 8);
    CHECK(has_flag(r, "text-value") && !strcmp(r->value_raw, "No growth"));
    r = lab_at(&L, 9); /* contained in the DiagnosticReport */
    CHECK(!strcmp(key_of(r), "ldh") && strstr(r->source, "entry[15].resource.contained[0]"));
    r = lab_at(&L, 10); /* in a Bundle in the Bundle */
    CHECK(!strcmp(key_of(r), "temperature") && strstr(r->source, "entry[17].resource.entry[0].resource"));
    CHECKF(L.nnotes == 1, "%zu notes", L.nnotes);
    if (L.nnotes == 1) {
        CHECK(!strcmp(L.notes[0].text, "Ground-glass opacities.") && !strcmp(L.notes[0].title, "CT chest"));
        CHECK(strstr(L.notes[0].source, "presentedForm[0]") && L.notes[0].time.precision == RF_TIME_SECOND);
    }
    CHECK(any_issue(&L, "hasMember") && any_issue(&L, "a Patient resource"));
    CHECK(any_issue(&L, "a Encounter resource") && any_issue(&L, "no resourceType") &&
          any_issue(&L, "entry without a resource") && any_issue(&L, "not a JSON object"));
    CHECK(any_issue(&L, "only UTF-8 text") && any_issue(&L, "not valid base64") && any_issue(&L, "not valid UTF-8") &&
          any_issue(&L, "holds a NUL") && any_issue(&L, "'text/html' is not text/plain") &&
          any_issue(&L, "without contentType") && any_issue(&L, "by reference only"));
    rf_labs_free(&L);

    /* hostile JSON */
    {
        size_t depth = 100000, n = 2 * depth + 128;
        char *deep = test_xmalloc(n);
        size_t k = (size_t)snprintf(deep, n, "{\"resourceType\":\"Observation\",\"extension\":");
        for (size_t i = 0; i < depth; i++)
            deep[k++] = '[';
        for (size_t i = 0; i < depth; i++)
            deep[k++] = ']';
        deep[k++] = '}';
        expect_error("deep.json", deep, k, "nested deeper than 64 levels");
        /* objects nested as deep */
        char *objs = test_xmalloc(5 * depth);
        for (size_t i = 0; i < depth; i++)
            memcpy(objs + 5 * i, "{\"a\":", 5);
        expect_error("deep2.json", objs, 5 * depth, "line 1: JSON nested deeper than 64 levels");
        free(objs);
        /* 60 levels is fine: brackets inside strings do not count */
        k = (size_t)snprintf(deep, n, "{\"resourceType\":\"Observation\",\"code\":{\"text\":\"[[[[{{{{\"},\"extension\":");
        for (size_t i = 0; i < 60; i++)
            deep[k++] = '[';
        for (size_t i = 0; i < 60; i++)
            deep[k++] = ']';
        deep[k++] = '}';
        rf_labs D = {0};
        CHECKF(rf_labs_parse("ok.json", deep, k, RF_LABS_AUTO, &D, &err) == 0, "%s", err.msg);
        CHECK(D.nlabs == 1);
        rf_labs_free(&D);
        free(deep);
    }
    {
        /* a flat array of 4,000,001 numbers: refused before cJSON allocates a node for each */
        size_t n = 2 * (size_t)RF_LABS_JSON_VALUES + 64;
        char *flat = test_xmalloc(n + 64);
        size_t k = (size_t)snprintf(flat, 64, "{\"resourceType\":\"Observation\",\"x\":[");
        for (size_t i = 0; i < RF_LABS_JSON_VALUES; i++)
            flat[k++] = '0', flat[k++] = ',';
        flat[k++] = '0', flat[k++] = ']', flat[k++] = '}';
        expect_error("flat.json", flat, k, "more than 4000000 JSON values");
        free(flat);
        /* a million interpretation codes are joined in linear time */
        size_t codes = 1000000;
        char *many = test_xmalloc(codes * 13 + 256);
        k = (size_t)snprintf(many, 256, "{\"resourceType\":\"Observation\",\"valueString\":\"1\",\"interpretation\":"
                                        "[{\"coding\":[");
        for (size_t i = 0; i < codes; i++)
            k += (size_t)sprintf(many + k, "%s{\"code\":\"H\"}", i ? "," : "");
        k += (size_t)sprintf(many + k, "]}]}");
        rf_labs D = {0};
        CHECKF(rf_labs_parse("many.json", many, k, RF_LABS_AUTO, &D, &err) == 0, "%s", err.msg);
        CHECK(D.nlabs == 1 && D.labs[0].source_flags && strlen(D.labs[0].source_flags) == 2 * codes - 1);
        rf_labs_free(&D);
        free(many);
    }
    EXPECT_ERROR("bad.json", "{\"resourceType\":\"Observation\",\n\"code\":}", "line 2: not valid JSON");
    EXPECT_ERROR("tail.json", "{\"resourceType\":\"Patient\"}\n{}", "line 2: data after the JSON value");
    EXPECT_ERROR("arr.json", "[{\"resourceType\":\"Patient\"}]", "not a FHIR resource");
    EXPECT_ERROR("nort.json", "{\"status\":\"final\"}", "not a FHIR resource");
    EXPECT_ERROR("u.json", "{\"resourceType\":\"Observation\",\"code\":{\"text\":\"\xc0\xaf\"}}", "invalid UTF-8");
    EXPECT_ERROR("z.json", "{\"resourceType\":\"Observation\",\"code\":{\"text\":\"a\\u0000b\"}}", "escaped NUL");
    EXPECT_ERROR("nul.json", "{\"resourceType\":\"Observation\"}\0", "NUL byte");
    {
        /* a note over 4 MiB, as base64: skipped with an issue, not read */
        size_t raw = RF_NOTE_MAX + 3, b64 = raw / 3 * 4;
        char *doc = test_xmalloc(b64 + 256);
        size_t k = (size_t)snprintf(doc, 256,
                                    "{\"resourceType\":\"DocumentReference\",\"content\":[{\"attachment\":{"
                                    "\"contentType\":\"text/plain\",\"data\":\"");
        memset(doc + k, 'Q', b64);
        k += b64;
        k += (size_t)snprintf(doc + k, 64, "\"}}]}");
        rf_labs D = {0};
        CHECKF(rf_labs_parse("bignote.json", doc, k, RF_LABS_AUTO, &D, &err) == 0, "%s", err.msg);
        CHECK(D.nnotes == 0 && any_issue(&D, "larger than"));
        rf_labs_free(&D);
        free(doc);
    }
    /* base64 rules */
    {
        char *out;
        size_t n;
        CHECK(labs_base64_decode("TWFu", 4, 100, &out, &n) == 0 && n == 3 && !memcmp(out, "Man", 3));
        free(out);
        CHECK(labs_base64_decode("TW\r\nE=", 6, 100, &out, &n) == 0 && n == 2 && !memcmp(out, "Ma", 2));
        free(out);
        CHECK(labs_base64_decode("TQ==", 4, 100, &out, &n) == 0 && n == 1);
        free(out);
        CHECK(labs_base64_decode("TQ=", 3, 100, &out, &n) == -1);
        CHECK(labs_base64_decode("T===", 4, 100, &out, &n) == -1);
        CHECK(labs_base64_decode("TQ=a", 4, 100, &out, &n) == -1);
        CHECK(labs_base64_decode("=QQQ", 4, 100, &out, &n) == -1);
        CHECK(labs_base64_decode("TWFuTWFu", 8, 5, &out, &n) == -3);
    }
}

/* ---- HL7 ----------------------------------------------------------------------------------- */

static void test_hl7(void)
{
    rf_labs L;
    rf_err err;
    const char *msg =
        "MSH|^~\\&|LAB|H|RAD|H|20200304120000||ORU^R01^ORU_R01|1|P|2.5.1\r"
        "PID|1||X\r"
        "OBR|1|||CMP^Panel^L|||20200304110000+0100\r"
        "OBX|1|NM|2345-7^Glucose \\T\\ sugar^LN||182|mg/dL^^UCUM|70-99|H|||F|||20200304113000+0100\r"
        "OBX|2|SN|1988-5^CRP^LN||<^0.1|mg/L|<5|N|||F\r"
        "OBX|3|SN|X1^Titer^L||^1^:^128\r"
        "OBX|4|ST|2823-3^Potassium^LN||pending|mmol/L|3.5-5.0||||I\r"
        "OBX|5|NM|6690-2^WBC^LN||2.1|10*3/uL|4.5-11.0|LL~A|||F\r"
        "OBX|6|NM|777-3^Plt^LN||250~260|K/uL|150-400\r"
        "OBX|7|CWE|X2^Culture^L||NG^No growth^L\r"
        "OBX|8|NM|LOC1^Sodium^99LOC^2951-2^Sodium^LN||140|mmol/L|>135|H\r"
        "OBX|9|NM|2744-1^pH^LN||7.31||7.35-7.45\r"
        "OBX|10|NM|8310-5^Temp^LN||38.2|Cel||||||||2020030499\r"
        "OBX|11|ST|X3^Comment^L||a \\F\\ b \\S\\ c \\R\\ d \\E\\ e \\X4142\\ f\\.br\\g \\H\\bold\\N\\\r"
        "OBX|12|ST|X4^Odd^L||x \\Zlocal\\ y\r"
        "OBX|13|ST|X5^Cut^L||x \\F y\r"
        "OBX|14|ST|X6^Nul^L||x \\X00\\ y\r"
        "OBX|15|TX|18782-3^Impression^LN||Line one\\.br\\Line two~Second paragraph||||||F\r"
        "NTE|1||Specimen \\T\\ label checked\r"
        "OBX|16|NM|9279-1^RR^LN||-\r";
    CHECKF(parse("m.hl7", msg, &L, &err) == 0, "%s", err.msg);
    CHECKF(L.nlabs == 15 && L.nnotes == 2, "%zu labs, %zu notes", L.nlabs, L.nnotes);
    const rf_lab *r = lab_at(&L, 0);
    CHECK(!strcmp(r->name, "Glucose & sugar") && !strcmp(r->unit_raw, "mg/dL") && !strcmp(r->system, "LN"));
    CHECK(has_flag(r, "high") && !has_flag(r, "flag-conflict") && r->time.tz_minutes == 60 && r->time.hour == 11 &&
          r->time.minute == 30);
    CHECK(!strcmp(r->source, "m.hl7: segment 4 (OBX)"));
    r = lab_at(&L, 1); /* SN "<^0.1", OBX-7 "<5": an upper limit */
    CHECK(r->cmp == RF_CMP_LT && r->value == 0.1 && r->has_high && !r->has_low && r->high == 5);
    CHECK(!has_flag(r, "flag-conflict") && r->time.hour == 11 && r->time.minute == 0); /* OBR-7 */
    r = lab_at(&L, 2);
    CHECK(has_flag(r, "text-value") && !strcmp(r->value_raw, "1:128") && !r->has_value);
    r = lab_at(&L, 3);
    CHECK(has_flag(r, "text-value") && !strcmp(r->status, "I") && r->has_low && r->low == 3.5);
    r = lab_at(&L, 4);
    CHECK(has_flag(r, "critical") && has_flag(r, "low") && !strcmp(r->source_flags, "LL~A"));
    r = lab_at(&L, 5);
    CHECK(has_flag(r, "repeated") && r->value == 250 && r->has_norm);
    r = lab_at(&L, 6);
    CHECK(has_flag(r, "text-value") && !strcmp(r->value_raw, "No growth"));
    r = lab_at(&L, 7); /* LOINC from the alternate identifier; ">135" a lower limit */
    CHECK(!strcmp(r->loinc, "2951-2") && !strcmp(key_of(r), "sodium") && r->has_low && !r->has_high);
    CHECK(!has_flag(r, "by-name"));
    r = lab_at(&L, 8);
    CHECK(!strcmp(key_of(r), "ph") && has_flag(r, "low") && r->has_norm);
    r = lab_at(&L, 9);
    CHECK(has_flag(r, "bad-time") && !strcmp(r->time_raw, "2020030499"));
    r = lab_at(&L, 10);
    CHECK(!strcmp(r->value_raw, "a | b ^ c ~ d \\ e AB f\ng bold"));
    r = lab_at(&L, 11); /* not understood: kept as written, with an issue */
    CHECK(!strcmp(r->value_raw, "x \\Zlocal\\ y") && any_issue(&L, "OBX-5: escape sequence"));
    r = lab_at(&L, 12);
    CHECK(!strcmp(r->value_raw, "x \\F y"));
    r = lab_at(&L, 13);
    CHECK(!strcmp(r->value_raw, "x \\X00\\ y"));
    r = lab_at(&L, 14);
    CHECK(has_flag(r, "text-value") && !strcmp(r->value_raw, "-"));
    if (L.nnotes == 2) {
        CHECK(!strcmp(L.notes[0].text, "Line one\nLine two\nSecond paragraph") && !strcmp(L.notes[0].kind, "OBX"));
        CHECK(!strcmp(L.notes[0].title, "Impression") && strstr(L.notes[0].source, "segment 18 (OBX)"));
        CHECK(!strcmp(L.notes[1].text, "Specimen & label checked") && !strcmp(L.notes[1].kind, "NTE"));
    }
    CHECK(L.nissues == 3);
    rf_labs_free(&L);

    /* other delimiters, read from MSH; LF line ends; a second message of another type */
    const char *odd =
        "MSH#$%!@&#A#B#C#D#20200304##ORU$R01#2#P#2.7\n"
        "OBX#1#NM#718-7$Hgb$LN##13.5#g/dL#12-16##\n"
        "OBX#2#ST#X$Note$L##50!R! rate !P! x \\ y$z\r\n"
        "\r\n"
        "MSH|^~\\&|A|B|C|D|20200304||ADT^A01|3|P|2.5\r"
        "OBX|1|NM|718-7^Hgb^LN||9|g/dL\r";
    CHECKF(parse("odd.hl7", odd, &L, &err) == 0, "%s", err.msg);
    CHECK(L.nlabs == 2 && any_issue(&L, "message type 'ADT^A01' (MSH-9) is not ORU^R01"));
    r = lab_at(&L, 0);
    CHECK(!strcmp(key_of(r), "hemoglobin") && near(r->value_norm, 135, 1e-12) && r->has_low);
    r = lab_at(&L, 1); /* escape '!': !R! the repetition '%', !P! the truncation '&'; '\\' is plain text */
    CHECK(!strcmp(r->value_raw, "50% rate & x \\ y$z"));
    rf_labs_free(&L);

    {
        /* a TX value of a million repetitions becomes one note, in linear time */
        size_t reps = 1000000;
        char *m = test_xmalloc(2 * reps + 128);
        size_t k = (size_t)snprintf(m, 128, "MSH|^~\\&|A|B|C|D|2020||ORU^R01|1|P|2.5\rOBX|1|TX|X^Y^L||");
        for (size_t i = 0; i < reps; i++)
            m[k++] = 'a', m[k++] = '~';
        m[k++] = '\r';
        rf_labs D = {0};
        CHECKF(rf_labs_parse("reps.hl7", m, k, RF_LABS_AUTO, &D, &err) == 0, "%s", err.msg);
        CHECK(D.nnotes == 1 && D.notes[0].len == 2 * reps);
        rf_labs_free(&D);
        free(m);
    }

    /* broken delimiters and other hostile messages: errors naming the segment */
    EXPECT_ERROR("b1.hl7", "MSH|^~\\|A\rOBX|1\r", "segment 1 (MSH): MSH-2 must be 4 or 5");
    EXPECT_ERROR("b2.hl7", "MSH|^~^&|A\r", "MSH-2 must be 4 or 5 distinct");
    EXPECT_ERROR("b3.hl7", "MSHA^~\\&A\r", "MSH-1, the field separator");
    EXPECT_ERROR("b4.hl7", "MSH|^~\\&|A\rOBX|1|NM\rOBX;2;NM\r", "segment 3: does not start with a segment ID");
    EXPECT_ERROR("b5.hl7", "MSH|^~\\&|A\rOBX|1|NM|x||1\rthe value continued\r", "segment 3: does not start");
    EXPECT_ERROR("b6.hl7", "MSH|^~\\&|A\rPID^1\r", "segment 2: does not start");
    EXPECT_ERROR("b7.hl7", "MSH|^~\\&\r", "segment 1 (MSH)");
    EXPECT_ERROR("b8.hl7", "MSH|^~\\&|A\rOBX|1|ST|X||a\xff\r", "segment 2: invalid UTF-8");
    EXPECT_ERROR("b9.hl7", "MSH|^~\\&|A\nOBX|1|ST|X||a\0\n", "segment 2: NUL byte");
    /* "MSH" at the start is what makes it HL7; a PID first is not a message */
    CHECK(rf_labs_detect("PID|1\r", 6) == RF_LABS_CSV);
    {
        rf_labs D = {0};
        CHECK(rf_labs_parse("p.hl7", "PID|1\rMSH|^~\\&|A\r", 17, RF_LABS_HL7, &D, &err) == RF_EFORMAT);
        CHECK(strstr(err.msg, "segment 1 ('PID'): a message starts with MSH") != NULL);
        rf_labs_free(&D);
    }
}

/* ---- notes ------------------------------------------------------------------------------------ */

static void test_notes(void)
{
    rf_labs L = {0};
    rf_err err;
    const char *note = "\xef\xbb\xbf" "Date: 2020-03-04T09:30:00+01:00\r\nCough and fever.\nSpO2 91%.\n";
    CHECK(rf_note_parse("n1.txt", note, strlen(note), "note", &L, &err) == 0);
    CHECK(L.nnotes == 1 && !strcmp(L.notes[0].text, "Cough and fever.\nSpO2 91%.\n"));
    CHECK(L.notes[0].time.precision == RF_TIME_SECOND && L.notes[0].time.tz_minutes == 60);
    CHECK(!strcmp(L.notes[0].kind, "note") && !strcmp(L.notes[0].source, "n1.txt") && L.notes[0].flags == 0);
    const char *undated = "Date: the day before\nText.";
    CHECK(rf_note_parse("n2.txt", undated, strlen(undated), "report", &L, &err) == 0);
    CHECK(L.nnotes == 2 && !strcmp(L.notes[1].text, undated) && (L.notes[1].flags & RF_LAB_BAD_TIME));
    CHECK(L.notes[1].time.precision == RF_TIME_NONE && !strcmp(L.notes[1].kind, "report"));
    CHECK(rf_note_parse("n3.txt", "DATE:2021-01-02", 15, NULL, &L, &err) == 0);
    CHECK(L.nnotes == 3 && L.notes[2].len == 0 && L.notes[2].time.day == 2);
    CHECK(rf_note_parse("n4.txt", "No date line.\nDate: 2020-01-01\n", 31, NULL, &L, &err) == 0);
    CHECK(L.nnotes == 4 && L.notes[3].time.precision == RF_TIME_NONE && L.notes[3].len == 31);

    CHECK(rf_note_parse("bad.txt", "ok\nthen \xed\xa0\x80", 11, NULL, &L, &err) == RF_EFORMAT);
    CHECK(strstr(err.msg, "bad.txt: invalid UTF-8 at byte 8 (line 2)") != NULL);
    CHECK(rf_note_parse("nul.txt", "a\nb\0c", 5, NULL, &L, &err) == RF_EFORMAT);
    CHECK(strstr(err.msg, "nul.txt: NUL byte at offset 3 (line 2)") != NULL);
    {
        size_t n = RF_NOTE_MAX + 1;
        char *big = test_xmalloc(n);
        memset(big, 'a', n);
        CHECK(rf_note_parse("big.txt", big, n, NULL, &L, &err) == RF_EFORMAT && strstr(err.msg, "more than"));
        free(big);
    }
    CHECK(L.nnotes == 4);
    rf_labs_free(&L);
}

/* ---- files over the caps, and the CLI --------------------------------------------------------------- */

static void make_sparse(const char *path, off_t size)
{
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
    CHECK(fd >= 0 && ftruncate(fd, size) == 0);
    if (fd >= 0)
        close(fd);
}

static void test_files(void)
{
    char path[4200];
    rf_labs L = {0};
    rf_err err;
    snprintf(path, sizeof path, "%s/huge.txt", tmp);
    make_sparse(path, (off_t)100 << 20); /* a 100 MB note, without writing 100 MB */
    CHECK(rf_note_read_file(path, "note", &L, &err) == RF_EFORMAT && strstr(err.msg, "larger than"));
    CHECK(rf_labs_read_file(path, RF_LABS_AUTO, &L, &err) == RF_EFORMAT && strstr(err.msg, "larger than"));
    CHECK(strstr(err.msg, "huge.txt") != NULL);
    CHECK(rf_labs_read_file("/nonexistent/labs.csv", RF_LABS_AUTO, &L, &err) == RF_EIO);
    CHECK(L.nlabs == 0 && L.nnotes == 0);
    rf_labs_free(&L);
}

static void test_cli(void)
{
    static char out[1 << 20], errb[1 << 16];
    char csv[4200], bad[4200];
    snprintf(csv, sizeof csv, "%s/tests/data/labs/synthea.csv", getenv("RADFUSE_SOURCE"));
    snprintf(bad, sizeof bad, "%s/bad.hl7", tmp);
    test_write_file(bad, "MSH|^~|A\r", 9);
    char *json_argv[] = {(char *)test_radfuse_bin(), "text", "labs", "--json", csv, NULL};
    int rc = test_run(json_argv, out, sizeof out, errb, sizeof errb);
    CHECKF(rc == 0, "text labs --json: %d: %s", rc, errb);
    int lines = 0, labs = 0;
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n"), lines++) {
        cJSON *o = cJSON_Parse(line);
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "type");
        labs += cJSON_IsString(t) && !strcmp(t->valuestring, "lab");
        CHECK(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(o, "flags")));
        cJSON_Delete(o);
    }
    CHECK(lines == 53 && labs == 53);
    /* one bad file among good ones: exit 2, one line naming it, the good file still listed */
    char *argv2[] = {(char *)test_radfuse_bin(), "text", "labs", bad, csv, NULL};
    rc = test_run(argv2, out, sizeof out, errb, sizeof errb);
    CHECK(rc == 2 && test_count_lines(errb) == 1 && strstr(errb, "bad.hl7: segment 1 (MSH)"));
    CHECK(test_count_lines(out) == 54 && strstr(out, "glucose\t2339-0"));
    char *argv3[] = {(char *)test_radfuse_bin(), "text", "labs", NULL};
    CHECK(test_run(argv3, out, sizeof out, errb, sizeof errb) == 2 && strstr(errb, "expected FILE"));
}

int main(void)
{
    test_tmpdir(tmp, sizeof tmp);
    test_table();
    test_ucum_factors();
    test_textbook();
    test_times();
    test_synthea();
    test_hannover();
    test_csv();
    test_fhir();
    test_hl7();
    test_notes();
    test_files();
    test_cli();
    return test_finish("test_labs");
}
