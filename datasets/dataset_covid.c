/*
 * The COVID-19 image data collection (metadata.csv + images/): rows, notes,
 * labs and the finding column as multi-label targets. The mapping of every
 * finding term is the table below; docs/datasets.md gives it with reasons.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/datasets_internal.h"
#include "runtime/fileio.h"

enum { T_COVID19, T_VIRAL, T_BACTERIAL, T_FUNGAL, T_PNEUMONIA, T_ARDS, T_NO_FINDING, NFINDING };

static const char *const target_names[] = {"covid19",  "viral", "bacterial", "fungal",   "pneumonia",
                                           "ards",     "no_finding", "survival", "intubated", "went_icu",
                                           "needed_supplemental_O2"};
#define NTARGETS ((int)(sizeof target_names / sizeof *target_names))

/* What each finding term says of the finding targets: 1, 0, or -1 (says
 * nothing). A finding of several terms (separated by ',' or '/': "COVID-19,
 * ARDS" of the June 2020 snapshot, "Pneumonia/Viral/COVID-19" of later ones)
 * is positive where any term is, else negative where any term is, else
 * unknown. "pneumonia" is any infectious pneumonia; ARDS is taken as absent
 * unless named. */
static const struct {
    const char *term;
    int8_t t[NFINDING]; /* covid19 viral bacterial fungal pneumonia ards no_finding */
} terms[] = {
    {"COVID-19", {1, 1, 0, 0, 1, 0, 0}},
    {"SARS", {0, 1, 0, 0, 1, 0, 0}},
    {"MERS-CoV", {0, 1, 0, 0, 1, 0, 0}},
    {"MERS", {0, 1, 0, 0, 1, 0, 0}},
    {"Influenza", {0, 1, 0, 0, 1, 0, 0}},
    {"Varicella", {0, 1, 0, 0, 1, 0, 0}},
    {"Herpes", {0, 1, 0, 0, 1, 0, 0}},
    {"Viral", {-1, 1, 0, 0, 1, 0, 0}},
    {"Bacterial", {0, 0, 1, 0, 1, 0, 0}},
    {"Klebsiella", {0, 0, 1, 0, 1, 0, 0}},
    {"Streptococcus", {0, 0, 1, 0, 1, 0, 0}},
    {"Staphylococcus", {0, 0, 1, 0, 1, 0, 0}},
    {"E.Coli", {0, 0, 1, 0, 1, 0, 0}},
    {"Legionella", {0, 0, 1, 0, 1, 0, 0}},
    {"Mycoplasma", {0, 0, 1, 0, 1, 0, 0}},
    {"Mycoplasma Bacterial Pneumonia", {0, 0, 1, 0, 1, 0, 0}},
    {"Chlamydophila", {0, 0, 1, 0, 1, 0, 0}},
    {"Nocardia", {0, 0, 1, 0, 1, 0, 0}},
    {"Fungal", {0, 0, 0, 1, 1, 0, 0}},
    {"Pneumocystis", {0, 0, 0, 1, 1, 0, 0}},
    {"Aspergillosis", {0, 0, 0, 1, 1, 0, 0}},
    {"Pneumonia", {-1, -1, -1, -1, 1, 0, 0}},
    {"ARDS", {-1, -1, -1, -1, -1, 1, 0}},
    {"Lipoid", {0, 0, 0, 0, 0, 0, 0}}, /* lipoid pneumonia: not infectious */
    {"No Finding", {0, 0, 0, 0, 0, 0, 1}},
};

/* Maps finding into t[NFINDING]; false when a term is not in the table or
 * there is none (then t stays unknown). */
static bool map_finding(const char *finding, int8_t *t)
{
    bool pos[NFINDING] = {0}, neg[NFINDING] = {0};
    int nterms = 0;
    const char *p = finding;
    while (*p) {
        size_t n = strcspn(p, ",/");
        const char *s = p;
        size_t m = n;
        while (m && (*s == ' ' || *s == '\t'))
            s++, m--;
        while (m && (s[m - 1] == ' ' || s[m - 1] == '\t'))
            m--;
        if (m) {
            size_t k = 0, nt = sizeof terms / sizeof *terms;
            while (k < nt && !(strlen(terms[k].term) == m && !memcmp(terms[k].term, s, m)))
                k++;
            if (k == nt)
                return false;
            for (int j = 0; j < NFINDING; j++) {
                pos[j] |= terms[k].t[j] == 1;
                neg[j] |= terms[k].t[j] == 0;
            }
            nterms++;
        }
        p += n;
        if (*p)
            p++;
    }
    if (!nterms)
        return false;
    for (int j = 0; j < NFINDING; j++)
        t[j] = pos[j] ? RF_TARGET_POS : neg[j] ? RF_TARGET_NEG : RF_TARGET_UNKNOWN;
    return true;
}

static int8_t yes_no(const char *s)
{
    return !strcmp(s, "Y") ? RF_TARGET_POS : !strcmp(s, "N") ? RF_TARGET_NEG : RF_TARGET_UNKNOWN;
}

enum {
    C_PATIENTID, C_OFFSET, C_SEX, C_AGE, C_FINDING, C_SURVIVAL, C_INTUBATED, C_WENT_ICU, C_O2, C_TEMPERATURE, C_PO2,
    C_LEUKOCYTES, C_NEUTROPHILS, C_LYMPHOCYTES, C_VIEW, C_FOLDER, C_FILENAME, C_DOI, C_URL, C_LICENSE, C_NOTES,
    C_MODALITY, C_COUNT
};
static const char *const columns[C_COUNT] = {
    "patientid",        "offset",           "sex",      "age",           "finding",        "survival",
    "intubated",        "went_icu",         "needed_supplemental_O2", "temperature", "pO2_saturation",
    "leukocyte_count",  "neutrophil_count", "lymphocyte_count", "view", "folder",       "filename",
    "doi",              "url",              "license",  "clinical_notes", "modality"};

int ds_load_covid(rf_dataset *ds, rf_err *err)
{
    ds->target_names = target_names;
    ds->ntargets = NTARGETS;
    ds->nfinding = NFINDING;
    char file[4096];
    snprintf(file, sizeof file, "%s/metadata.csv", ds->root);
    char *data;
    size_t len;
    int rc = ds_read_csv(file, &data, &len, err);
    if (rc)
        return rc;
    text_csv csv;
    size_t col[C_COUNT], ncols;
    rc = ds_csv_open(&csv, file, data, len, columns, C_COUNT, 1ull << C_MODALITY, col, &ncols, err);
    while (!rc) {
        bool got;
        const char *f[C_COUNT];
        if ((rc = ds_record_strs(ds, &csv, file, ncols, col, C_COUNT, f, &got, err)) || !got)
            break;
        if (*f[C_MODALITY] && strcmp(f[C_MODALITY], "X-ray")) {
            ds->skipped++; /* CT rows of the full collection: not chest radiographs */
            continue;
        }
        if (!*f[C_PATIENTID]) {
            rc = rf_err_set(err, RF_EFORMAT, "%s: line %zu: no patientid", file, csv.line);
            break;
        }
        if (!*f[C_FILENAME] || strchr(f[C_FILENAME], '/') || strchr(f[C_FOLDER], '/') ||
            !strcmp(f[C_FILENAME], "..") || !strcmp(f[C_FILENAME], ".") || !strcmp(f[C_FOLDER], "..")) {
            rc = rf_err_set(err, RF_EFORMAT, "%s: line %zu: no usable file name", file, csv.line);
            break;
        }
        int8_t *t;
        char image[4096];
        snprintf(image, sizeof image, "%s/%s", *f[C_FOLDER] ? f[C_FOLDER] : "images", f[C_FILENAME]);
        rf_dataset_row *r = ds_add_image_row(ds, &t, (long)csv.line, image);
        if (!r) {
            rc = rf_err_set(err, RF_ENOMEM, "%s: out of memory", file);
            break;
        }
        r->id = f[C_FILENAME];
        r->patient = f[C_PATIENTID];
        r->view_raw = f[C_VIEW];
        const char *v = f[C_VIEW];
        r->view = !strcmp(v, "PA") ? "PA" : !strncmp(v, "AP", 2) ? "AP" : !strcmp(v, "L") ? "LL" : "";
        r->frontal = *r->view ? strcmp(r->view, "LL") != 0 : -1;
        r->sex = !strcmp(f[C_SEX], "M") ? 'M' : !strcmp(f[C_SEX], "F") ? 'F' : 0;
        if (*f[C_AGE]) {
            char *end;
            double a = strtod(f[C_AGE], &end);
            if (!*end && a >= 0 && a < 200)
                r->age = a;
        }
        if (*f[C_OFFSET]) {
            char *end;
            long o = strtol(f[C_OFFSET], &end, 10);
            if (*end || o < -36500 || o > 36500) {
                rc = rf_err_set(err, RF_EFORMAT, "%s: line %zu: offset is not a whole number of days", file,
                                csv.line);
                break;
            }
            r->time_kind = RF_DATASET_TIME_OFFSET;
            r->time = (double)o;
        }
        r->note = f[C_NOTES];
        r->license = f[C_LICENSE];
        r->doi = f[C_DOI];
        r->url = f[C_URL];
        const char **lv = ds->labvals + (ds->nrows - 1) * DS_COVID_NLABS;
        for (int k = 0; k < DS_COVID_NLABS; k++)
            lv[k] = f[C_TEMPERATURE + k];
        char *labs;
        size_t labs_len;
        if ((rc = ds_covid_labs_csv(lv, "2020-01-01", &labs, &labs_len, &r->nlabs, NULL, 0, err)))
            break;
        free(labs);
        if (!map_finding(f[C_FINDING], t))
            ds->unmapped++;
        t[NFINDING + 0] = yes_no(f[C_SURVIVAL]);
        t[NFINDING + 1] = yes_no(f[C_INTUBATED]);
        t[NFINDING + 2] = yes_no(f[C_WENT_ICU]);
        t[NFINDING + 3] = yes_no(f[C_O2]);
    }
    text_csv_free(&csv);
    free(data);
    return rc;
}
