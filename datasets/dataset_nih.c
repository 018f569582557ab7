/*
 * NIH ChestX-ray14: Data_Entry_2017_v2020.csv (or Data_Entry_2017.csv), one
 * row per image with 'Finding Labels' of the 14 findings joined by '|' or
 * "No Finding"; the images in images/ or the published archives' folders
 * images_001/images/ ... images_012/images/; train_val_list.txt and
 * test_list.txt, when present, give the published split.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "datasets/datasets_internal.h"
#include "runtime/fileio.h"

#define NFIND 15
static const char *const labels[NFIND] = {"Atelectasis", "Cardiomegaly", "Effusion", "Infiltration",
                                          "Mass",        "Nodule",       "Pneumonia", "Pneumothorax",
                                          "Consolidation", "Edema",      "Emphysema", "Fibrosis",
                                          "Pleural_Thickening", "Hernia", "No Finding"};
static const char *const target_names[NFIND] = {"atelectasis", "cardiomegaly", "effusion", "infiltration",
                                                "mass",        "nodule",       "pneumonia", "pneumothorax",
                                                "consolidation", "edema",      "emphysema", "fibrosis",
                                                "pleural_thickening", "hernia", "no_finding"};

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* The image names of a list file (one per line), sorted; none when absent. */
static int read_list(rf_dataset *ds, const char *name, const char ***out, size_t *count, rf_err *err)
{
    *out = NULL;
    *count = 0;
    char file[4096];
    snprintf(file, sizeof file, "%s/%s", ds->root, name);
    if (!ds_exists(file))
        return RF_OK;
    char *data;
    size_t len;
    int rc = rf_read_file(file, DS_CSV_MAX, &data, &len, err);
    if (rc)
        return rc;
    size_t n = 0, cap = 0;
    const char **a = NULL;
    for (size_t pos = 0; pos < len && !rc;) {
        size_t end = pos;
        while (end < len && data[end] != '\n')
            end++;
        size_t m = end - pos;
        const char *s = data + pos;
        if (memchr(s, 0, m))
            rc = rf_err_set(err, RF_EFORMAT, "%s: holds a NUL byte; not a list of image names", file);
        else if (m) {
            if (n == cap) {
                cap = cap ? cap * 2 : 4096;
                const char **b = realloc(a, cap * sizeof *b);
                if (!b) {
                    rc = rf_err_set(err, RF_ENOMEM, "%s: out of memory", file);
                    break;
                }
                a = b;
            }
            if (!(a[n] = ds_str(ds, s, m)))
                rc = rf_err_set(err, RF_ENOMEM, "%s: out of memory", file);
            else if (*a[n])
                n++;
        }
        pos = end + 1;
    }
    free(data);
    if (rc) {
        free(a);
        return rc;
    }
    if (n)
        qsort(a, n, sizeof *a, cmp_str);
    *out = a;
    *count = n;
    return RF_OK;
}

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int add_dir(rf_dataset *ds, const char *rel, rf_err *err)
{
    char **d = realloc(ds->image_dirs, (ds->nimage_dirs + 1) * sizeof *d);
    if (!d)
        return rf_err_set(err, RF_ENOMEM, "out of memory");
    ds->image_dirs = d;
    if (!(d[ds->nimage_dirs] = strdup(rel)))
        return rf_err_set(err, RF_ENOMEM, "out of memory");
    ds->nimage_dirs++;
    return RF_OK;
}

static int cmp_cstr(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The folders that may hold images: images/, then images_NNN/images/ and
 * images_NNN/ in name order. */
static int find_image_dirs(rf_dataset *ds, rf_err *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/images", ds->root);
    int rc = add_dir(ds, "images", err);
    DIR *dir = opendir(ds->root);
    if (!dir || rc) {
        if (dir)
            closedir(dir);
        return rc;
    }
    size_t first = ds->nimage_dirs;
    struct dirent *e;
    while (!rc && (e = readdir(dir))) {
        if (strncmp(e->d_name, "images_", 7) || strlen(e->d_name) > 64)
            continue;
        char sub[300];
        snprintf(path, sizeof path, "%s/%s/images", ds->root, e->d_name);
        if (is_dir(path)) {
            snprintf(sub, sizeof sub, "%s/images", e->d_name);
            rc = add_dir(ds, sub, err);
        }
        snprintf(path, sizeof path, "%s/%s", ds->root, e->d_name);
        if (!rc && is_dir(path))
            rc = add_dir(ds, e->d_name, err);
    }
    closedir(dir);
    if (!rc && ds->nimage_dirs > first)
        qsort(ds->image_dirs + first, ds->nimage_dirs - first, sizeof *ds->image_dirs, cmp_cstr);
    return rc;
}

enum { N_INDEX, N_LABELS, N_FOLLOWUP, N_PATIENT, N_AGE, N_GENDER, N_VIEW, N_COUNT };

int ds_load_nih(rf_dataset *ds, rf_err *err)
{
    ds->target_names = target_names;
    ds->ntargets = ds->nfinding = NFIND;
    char file[4096];
    snprintf(file, sizeof file, "%s/Data_Entry_2017_v2020.csv", ds->root);
    if (!ds_exists(file))
        snprintf(file, sizeof file, "%s/Data_Entry_2017.csv", ds->root);
    const char **trainval = NULL, **test = NULL;
    size_t ntrainval = 0, ntest = 0;
    char *data = NULL;
    size_t len;
    int rc = read_list(ds, "train_val_list.txt", &trainval, &ntrainval, err);
    if (!rc)
        rc = read_list(ds, "test_list.txt", &test, &ntest, err);
    if (!rc)
        rc = find_image_dirs(ds, err);
    if (!rc)
        rc = ds_read_csv(file, &data, &len, err);
    if (rc) {
        free(trainval);
        free(test);
        return rc;
    }
    static const char *const names[N_COUNT] = {"Image Index", "Finding Labels", "Follow-up #",   "Patient ID",
                                               "Patient Age", "Patient Gender", "View Position"};
    text_csv csv;
    size_t col[N_COUNT], ncols;
    rc = ds_csv_open(&csv, file, data, len, names, N_COUNT, 0, col, &ncols, err);
    while (!rc) {
        bool got;
        const char *f[N_COUNT];
        if ((rc = ds_record_strs(ds, &csv, file, ncols, col, N_COUNT, f, &got, err)) || !got)
            break;
        if (!*f[N_INDEX] || strchr(f[N_INDEX], '/') || f[N_INDEX][0] == '.' || !*f[N_PATIENT]) {
            rc = rf_err_set(err, RF_EFORMAT, "%s: line %zu: no usable Image Index or Patient ID", file, csv.line);
            break;
        }
        int8_t *t;
        char image[256];
        snprintf(image, sizeof image, "images/%.200s", f[N_INDEX]);
        rf_dataset_row *r = ds_add_image_row(ds, &t, (long)csv.line, image);
        if (!r) {
            rc = rf_err_set(err, RF_ENOMEM, "%s: out of memory", file);
            break;
        }
        r->id = f[N_INDEX];
        r->patient = f[N_PATIENT];
        r->view_raw = f[N_VIEW];
        r->view = !strcmp(f[N_VIEW], "PA") ? "PA" : !strcmp(f[N_VIEW], "AP") ? "AP" : "";
        r->frontal = *r->view ? 1 : -1;
        r->sex = !strcmp(f[N_GENDER], "M") ? 'M' : !strcmp(f[N_GENDER], "F") ? 'F' : 0;
        /* ages are whole years ("58"); older copies write "058Y" (also M, W, D) */
        char *end;
        long a = strtol(f[N_AGE], &end, 10);
        if (end != f[N_AGE] && a >= 0) {
            double age = *end == 0 || (end[0] == 'Y' && !end[1]) ? (double)a
                         : end[0] == 'M' && !end[1]                ? a / 12.0
                         : end[0] == 'W' && !end[1]                ? a / 52.1775
                         : end[0] == 'D' && !end[1]                ? a / 365.25
                                                                   : -1;
            if (age >= 0 && age < 130) /* a few published ages (over 400) are errors */
                r->age = age;
        }
        long fu = strtol(f[N_FOLLOWUP], &end, 10);
        if (*f[N_FOLLOWUP] && !*end && fu >= 0) {
            r->time_kind = RF_DATASET_TIME_FOLLOWUP;
            r->time = (double)fu;
        }
        for (int k = 0; k < NFIND; k++)
            t[k] = RF_TARGET_NEG;
        const char *p = f[N_LABELS];
        if (!*p) {
            rc = rf_err_set(err, RF_EFORMAT, "%s: line %zu: no Finding Labels (\"No Finding\" when none)", file,
                            csv.line);
            break;
        }
        while (*p && !rc) {
            size_t n = strcspn(p, "|");
            int k = 0;
            while (k < NFIND && !(strlen(labels[k]) == n && !memcmp(labels[k], p, n)))
                k++;
            if (k == NFIND)
                rc = rf_err_set(err, RF_EFORMAT,
                                "%s: line %zu: Finding Labels holds '%.*s', not one of ChestX-ray14's 14 findings "
                                "or No Finding",
                                file, csv.line, (int)(n > 40 ? 40 : n), p);
            else
                t[k] = RF_TARGET_POS;
            p += n;
            if (*p)
                p++;
        }
        if (!rc && t[NFIND - 1] == RF_TARGET_POS)
            for (int k = 0; k < NFIND - 1; k++)
                if (t[k] == RF_TARGET_POS)
                    rc = rf_err_set(err, RF_EFORMAT, "%s: line %zu: Finding Labels has No Finding with a finding",
                                    file, csv.line);
        if (ntrainval && bsearch(&r->id, trainval, ntrainval, sizeof *trainval, cmp_str))
            r->source_split = RF_SPLIT_TRAIN; /* train_val_list: train and validation together */
        else if (ntest && bsearch(&r->id, test, ntest, sizeof *test, cmp_str))
            r->source_split = RF_SPLIT_TEST;
    }
    text_csv_free(&csv);
    free(data);
    free(trainval);
    free(test);
    return rc;
}
