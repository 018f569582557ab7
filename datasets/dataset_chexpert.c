/*
 * CheXpert (CheXpert-v1.0[-small]/train.csv, valid.csv) and MIMIC-CXR-JPG
 * 2.0.0 (mimic-cxr-2.0.0-{metadata,chexpert,split}.csv[.gz] + files/): both
 * labelled with the CheXpert labeler's 14 observations, 1.0 positive, 0.0
 * negative, -1.0 uncertain, blank not mentioned (uncertain and blank both
 * become RF_TARGET_UNKNOWN).
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/datasets_internal.h"

#define NOBS 14
/* The observations as the CSVs name them, and the targets' codes. */
static const char *const obs_columns[NOBS] = {
    "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion",
    "Edema",      "Consolidation",              "Pneumonia",    "Atelectasis",  "Pneumothorax",
    "Pleural Effusion", "Pleural Other",        "Fracture",     "Support Devices"};
static const char *const target_names[NOBS] = {
    "no_finding", "enlarged_cardiomediastinum", "cardiomegaly", "lung_opacity", "lung_lesion",
    "edema",      "consolidation",              "pneumonia",    "atelectasis",  "pneumothorax",
    "pleural_effusion", "pleural_other",        "fracture",     "support_devices"};

/* The 14 labels of the record into t; an error names the file, line and column. */
static int read_obs(const text_csv *csv, const char *file, const size_t *col, int8_t *t, rf_err *err)
{
    for (int k = 0; k < NOBS; k++)
        if (!ds_chexpert_value(ds_field(csv, col[k], NULL), &t[k]))
            return rf_err_set(err, RF_EFORMAT, "%s: line %zu: column '%s' is not 1.0, 0.0, -1.0 or blank", file,
                              csv->line, obs_columns[k]);
    return RF_OK;
}

/* ---- CheXpert ---- */

enum { X_PATH, X_SEX, X_AGE, X_FL, X_APPA, X_OBS, X_COUNT = X_OBS + NOBS };

static int load_chexpert_csv(rf_dataset *ds, const char *file, const char *prefix, rf_split split, rf_err *err)
{
    const char *names[X_COUNT] = {"Path", "Sex", "Age", "Frontal/Lateral", "AP/PA"};
    for (int k = 0; k < NOBS; k++)
        names[X_OBS + k] = obs_columns[k];
    char *data;
    size_t len;
    int rc = ds_read_csv(file, &data, &len, err);
    if (rc)
        return rc;
    text_csv csv;
    size_t col[X_COUNT], ncols;
    rc = ds_csv_open(&csv, file, data, len, names, X_COUNT, 0, col, &ncols, err);
    while (!rc) {
        bool got;
        if ((rc = ds_record(&csv, file, ncols, &got, err)) || !got)
            break;
        size_t n;
        const char *pv = ds_field(&csv, col[X_PATH], &n);
        const char *path = ds_str(ds, pv, n);
        if (!path) {
            rc = rf_err_set(err, RF_ENOMEM, "%s: out of memory", file);
            break;
        }
        /* Path names the image from the folder holding CheXpert-v1.0*; a root
         * that is that folder (prefix not empty, whatever its name) drops the
         * first part */
        const char *image = path;
        if (*prefix) {
            const char *slash = strchr(path, '/');
            image = slash ? slash + 1 : "";
        }
        const char *pat = strstr(path, "/patient");
        if (!*image || path[0] == '/' || strstr(path, "..") || !pat) {
            rc = rf_err_set(err, RF_EFORMAT, "%s: line %zu: Path is not a CheXpert image path (.../patientN/studyN/"
                                             "viewN_frontal.jpg)",
                            file, csv.line);
            break;
        }
        pat++;
        const char *s1 = strchr(pat, '/');
        const char *s2 = s1 ? strchr(s1 + 1, '/') : NULL;
        int8_t *t;
        rf_dataset_row *r = ds_add_row(ds, &t);
        const char *patient = r && s1 ? ds_str(ds, pat, (size_t)(s1 - pat)) : NULL;
        const char *study = r && s2 ? ds_str(ds, pat, (size_t)(s2 - pat)) : NULL;
        if (!r || !patient || !study) {
            rc = !r ? rf_err_set(err, RF_ENOMEM, "%s: out of memory", file)
                    : rf_err_set(err, RF_EFORMAT, "%s: line %zu: Path has no patientN/studyN/ folders", file,
                                 csv.line);
            break;
        }
        r->line = (long)csv.line;
        r->id = path;
        r->image = image;
        r->patient = patient;
        r->study = study;
        r->source_split = split;
        const char *sex = ds_field(&csv, col[X_SEX], NULL);
        r->sex = !strcmp(sex, "Male") ? 'M' : !strcmp(sex, "Female") ? 'F' : 0;
        const char *age = ds_field(&csv, col[X_AGE], NULL);
        char *end;
        double a = strtod(age, &end);
        if (*age && !*end && a >= 0 && a < 200)
            r->age = a;
        const char *fl = ds_field(&csv, col[X_FL], NULL);
        const char *appa = ds_field(&csv, col[X_APPA], &n);
        if (!(r->view_raw = ds_str(ds, appa, n))) {
            rc = rf_err_set(err, RF_ENOMEM, "%s: out of memory", file);
            break;
        }
        if (!strcmp(fl, "Frontal")) {
            r->frontal = 1;
            r->view = !strcmp(r->view_raw, "PA") ? "PA" : !strcmp(r->view_raw, "AP") ? "AP" : "";
        } else if (!strcmp(fl, "Lateral")) {
            r->frontal = 0;
            r->view = "LL";
        }
        rc = read_obs(&csv, file, col + X_OBS, t, err);
    }
    text_csv_free(&csv);
    free(data);
    return rc;
}

int ds_load_chexpert(rf_dataset *ds, const char *csv_dir, const char *prefix, rf_err *err)
{
    ds->target_names = target_names;
    ds->ntargets = ds->nfinding = NOBS;
    static const struct {
        const char *name;
        rf_split split;
    } files[] = {{"train.csv", RF_SPLIT_TRAIN}, {"valid.csv", RF_SPLIT_VAL}};
    int rc = RF_OK;
    for (int i = 0; !rc && i < 2; i++) {
        char file[4096];
        snprintf(file, sizeof file, "%s/%s", csv_dir, files[i].name);
        if (ds_exists(file))
            rc = load_chexpert_csv(ds, file, prefix, files[i].split, err);
    }
    return rc;
}

/* ---- MIMIC-CXR-JPG ---- */

/* The .csv when present, else the .csv.gz the project publishes. */
static bool mimic_file(const rf_dataset *ds, const char *what, char *out, size_t cap)
{
    snprintf(out, cap, "%s/mimic-cxr-2.0.0-%s.csv", ds->root, what);
    if (ds_exists(out))
        return true;
    snprintf(out, cap, "%s/mimic-cxr-2.0.0-%s.csv.gz", ds->root, what);
    return ds_exists(out);
}

typedef struct study_labels {
    unsigned long long study;
    int8_t t[NOBS];
} study_labels;

typedef struct dicom_split {
    const char *dicom;
    rf_split split;
} dicom_split;

static int cmp_study(const void *a, const void *b)
{
    unsigned long long x = ((const study_labels *)a)->study, y = ((const study_labels *)b)->study;
    return x < y ? -1 : x > y;
}

static int cmp_dicom(const void *a, const void *b)
{
    return strcmp(((const dicom_split *)a)->dicom, ((const dicom_split *)b)->dicom);
}

static bool all_digits(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s))
            return false;
    return true;
}

/* Days since 1970-01-01 of a proleptic Gregorian date. */
static long days_from_civil(long y, unsigned m, unsigned d)
{
    y -= m <= 2;
    long era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? (unsigned)-3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (long)doe - 719468;
}

/* The end of reading a table of n elements into a: the CSV and its text
 * freed, a freed too when rc is an error, else sorted by cmp. Returns rc. */
static int end_table(text_csv *csv, char *data, int rc, void *a, size_t n, size_t size,
                     int (*cmp)(const void *, const void *))
{
    text_csv_free(csv);
    free(data);
    if (rc) {
        free(a);
        return rc;
    }
    if (n)
        qsort(a, n, size, cmp);
    return RF_OK;
}

/* The labels of every study (mimic-cxr-2.0.0-chexpert.csv), sorted by study. */
static int read_mimic_labels(rf_dataset *ds, study_labels **out, size_t *count, rf_err *err)
{
    char file[4096];
    if (!mimic_file(ds, "chexpert", file, sizeof file))
        return rf_err_set(err, RF_EIO, "%s: no mimic-cxr-2.0.0-chexpert.csv[.gz] (the study labels)", ds->root);
    const char *names[2 + NOBS] = {"subject_id", "study_id"};
    for (int k = 0; k < NOBS; k++)
        names[2 + k] = obs_columns[k];
    char *data;
    size_t len;
    int rc = ds_read_csv(file, &data, &len, err);
    if (rc)
        return rc;
    text_csv csv;
    size_t col[2 + NOBS], ncols, n = 0, cap = 0;
    study_labels *a = NULL;
    rc = ds_csv_open(&csv, file, data, len, names, 2 + NOBS, 0, col, &ncols, err);
    while (!rc) {
        bool got;
        if ((rc = ds_record(&csv, file, ncols, &got, err)) || !got)
            break;
        const char *study = ds_field(&csv, col[1], NULL);
        if (!all_digits(study) || strlen(study) > 18) {
            rc = rf_err_set(err, RF_EFORMAT, "%s: line %zu: study_id is not a number", file, csv.line);
            break;
        }
        study_labels *b = ds_grow(a, &cap, n, sizeof *a);
        if (!b) {
            rc = rf_err_set(err, RF_ENOMEM, "%s: out of memory", file);
            break;
        }
        a = b;
        a[n].study = strtoull(study, NULL, 10);
        if ((rc = read_obs(&csv, file, col + 2, a[n].t, err)))
            break;
        n++;
    }
    if ((rc = end_table(&csv, data, rc, a, n, sizeof *a, cmp_study)))
        return rc;
    *out = a;
    *count = n;
    return RF_OK;
}

/* The published split of every image (mimic-cxr-2.0.0-split.csv), sorted by dicom_id; none when absent. */
static int read_mimic_split(rf_dataset *ds, dicom_split **out, size_t *count, rf_err *err)
{
    *out = NULL;
    *count = 0;
    char file[4096];
    if (!mimic_file(ds, "split", file, sizeof file))
        return RF_OK;
    static const char *const names[] = {"dicom_id", "split"};
    char *data;
    size_t len;
    int rc = ds_read_csv(file, &data, &len, err);
    if (rc)
        return rc;
    text_csv csv;
    size_t col[2], ncols, n = 0, cap = 0;
    dicom_split *a = NULL;
    rc = ds_csv_open(&csv, file, data, len, names, 2, 0, col, &ncols, err);
    while (!rc) {
        bool got;
        if ((rc = ds_record(&csv, file, ncols, &got, err)) || !got)
            break;
        const char *split = ds_field(&csv, col[1], NULL);
        rf_split s = rf_split_parse(split);
        if (s == RF_SPLIT_NONE) {
            rc = rf_err_set(err, RF_EFORMAT, "%s: line %zu: split is not train, validate or test", file, csv.line);
            break;
        }
        dicom_split *b = ds_grow(a, &cap, n, sizeof *a);
        if (!b) {
            rc = rf_err_set(err, RF_ENOMEM, "%s: out of memory", file);
            break;
        }
        a = b;
        size_t dn;
        const char *d = ds_field(&csv, col[0], &dn);
        if (!(a[n].dicom = ds_str(ds, d, dn))) {
            rc = rf_err_set(err, RF_ENOMEM, "%s: out of memory", file);
            break;
        }
        a[n++].split = s;
    }
    if ((rc = end_table(&csv, data, rc, a, n, sizeof *a, cmp_dicom)))
        return rc;
    *out = a;
    *count = n;
    return RF_OK;
}

enum { M_DICOM, M_SUBJECT, M_STUDY, M_VIEW, M_DATE, M_TIME, M_COUNT };

int ds_load_mimic(rf_dataset *ds, rf_err *err)
{
    ds->target_names = target_names;
    ds->ntargets = ds->nfinding = NOBS;
    study_labels *labels = NULL;
    dicom_split *splits = NULL;
    size_t nlabels = 0, nsplits = 0;
    char *data = NULL;
    char file[4096];
    int rc = read_mimic_labels(ds, &labels, &nlabels, err);
    if (!rc)
        rc = read_mimic_split(ds, &splits, &nsplits, err);
    if (!rc && !mimic_file(ds, "metadata", file, sizeof file))
        rc = rf_err_set(err, RF_EIO, "%s: no mimic-cxr-2.0.0-metadata.csv[.gz]", ds->root);
    size_t len;
    if (!rc)
        rc = ds_read_csv(file, &data, &len, err);
    if (rc) {
        free(labels);
        free(splits);
        return rc;
    }
    static const char *const names[M_COUNT] = {"dicom_id", "subject_id", "study_id", "ViewPosition", "StudyDate",
                                               "StudyTime"};
    text_csv csv;
    size_t col[M_COUNT], ncols;
    rc = ds_csv_open(&csv, file, data, len, names, M_COUNT, (1ull << M_VIEW) | (1ull << M_DATE) | (1ull << M_TIME),
                     col, &ncols, err);
    while (!rc) {
        bool got;
        const char *f[M_COUNT];
        if ((rc = ds_record_strs(ds, &csv, file, ncols, col, M_COUNT, f, &got, err)) || !got)
            break;
        if (!all_digits(f[M_SUBJECT]) || strlen(f[M_SUBJECT]) < 2 || !all_digits(f[M_STUDY]) ||
            strlen(f[M_STUDY]) > 18 || !*f[M_DICOM] || strchr(f[M_DICOM], '/') || f[M_DICOM][0] == '.') {
            rc = rf_err_set(err, RF_EFORMAT,
                            "%s: line %zu: dicom_id, subject_id and study_id do not name an image "
                            "(files/pXX/pSUBJECT/sSTUDY/DICOM.jpg)",
                            file, csv.line);
            break;
        }
        int8_t *t;
        char image[512];
        snprintf(image, sizeof image, "files/p%.2s/p%s/s%s/%s.jpg", f[M_SUBJECT], f[M_SUBJECT], f[M_STUDY],
                 f[M_DICOM]);
        rf_dataset_row *r = ds_add_image_row(ds, &t, (long)csv.line, image);
        if (!r) {
            rc = rf_err_set(err, RF_ENOMEM, "%s: out of memory", file);
            break;
        }
        r->id = f[M_DICOM];
        r->patient = f[M_SUBJECT];
        r->study = f[M_STUDY];
        r->view_raw = f[M_VIEW];
        const char *v = f[M_VIEW];
        if (!strncmp(v, "PA", 2) || !strncmp(v, "AP", 2)) {
            r->frontal = 1;
            r->view = !strncmp(v, "PA", 2) ? "PA" : "AP";
        } else if (!strcmp(v, "LATERAL") || !strcmp(v, "LL") || !strcmp(v, "LAO") || !strcmp(v, "RAO")) {
            /* LAO / RAO: obliques, read as lateral-like (not frontal) */
            r->frontal = 0;
            r->view = !strcmp(v, "LATERAL") || !strcmp(v, "LL") ? "LL" : "";
        }
        const char *d = f[M_DATE];
        if (strlen(d) == 8 && all_digits(d)) {
            long y = (d[0] - '0') * 1000 + (d[1] - '0') * 100 + (d[2] - '0') * 10 + (d[3] - '0');
            unsigned m = (unsigned)((d[4] - '0') * 10 + (d[5] - '0')), day = (unsigned)((d[6] - '0') * 10 + (d[7] - '0'));
            if (m >= 1 && m <= 12 && day >= 1 && day <= 31) {
                double secs = 0;
                char *end;
                /* StudyTime is HHMMSS.fff stored as a number (leading zeros dropped) */
                double tm = *f[M_TIME] ? strtod(f[M_TIME], &end) : 0;
                if (*f[M_TIME] && !*end && tm >= 0 && tm < 240000) {
                    int hh = (int)(tm / 10000), mm = (int)(tm / 100) % 100;
                    secs = hh * 3600.0 + mm * 60.0 + (tm - hh * 10000.0 - mm * 100.0);
                }
                r->time_kind = RF_DATASET_TIME_DATE;
                r->time = (double)days_from_civil(y, m, day) + secs / 86400.0;
            }
        }
        study_labels key = {.study = strtoull(f[M_STUDY], NULL, 10)};
        const study_labels *hit = nlabels ? bsearch(&key, labels, nlabels, sizeof *labels, cmp_study) : NULL;
        if (hit)
            memcpy(t, hit->t, NOBS);
        else
            ds->unmapped++; /* a study the labeler did not label: targets unknown */
        if (nsplits) {
            dicom_split dk = {.dicom = r->id};
            const dicom_split *s = bsearch(&dk, splits, nsplits, sizeof *splits, cmp_dicom);
            if (s)
                r->source_split = s->split;
        }
    }
    text_csv_free(&csv);
    free(data);
    free(labels);
    free(splits);
    return rc;
}
