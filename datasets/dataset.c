/*
 * The dataset loaders' common part (radfuse/datasets.h): layout detection,
 * rows and their strings, patients, CSV helpers (gzip through zlib, headers
 * by column name), image paths and the covid rows' labs. The layouts are in
 * dataset_covid.c, dataset_chexpert.c (CheXpert and MIMIC-CXR-JPG, which
 * share CheXpert's labeler) and dataset_nih.c.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <zlib.h>

#include "datasets/datasets_internal.h"
#include "radfuse/labs.h"
#include "runtime/fileio.h"

/* ---- names ---- */

static const char *const layout_names[] = {"auto", "covid-chestxray", "chexpert", "mimic-cxr-jpg", "nih-cxr14"};

const char *rf_dataset_layout_name(rf_dataset_layout layout)
{
    return (unsigned)layout < sizeof layout_names / sizeof *layout_names ? layout_names[layout] : "unknown";
}

int rf_dataset_layout_parse(const char *name, rf_dataset_layout *out, rf_err *err)
{
    for (size_t i = 0; name && i < sizeof layout_names / sizeof *layout_names; i++)
        if (!strcmp(name, layout_names[i])) {
            *out = (rf_dataset_layout)i;
            return RF_OK;
        }
    return rf_err_set(err, RF_EINVAL,
                      "unknown dataset layout '%.64s' (auto, covid-chestxray, chexpert, mimic-cxr-jpg, nih-cxr14)",
                      name ? name : "");
}

const char *rf_split_name(rf_split s)
{
    static const char *const names[] = {"none", "train", "val", "test"};
    return (unsigned)s < RF_SPLIT_COUNT ? names[s] : "none";
}

rf_split rf_split_parse(const char *name)
{
    if (!name)
        return RF_SPLIT_NONE;
    if (!strcmp(name, "train"))
        return RF_SPLIT_TRAIN;
    if (!strcmp(name, "val") || !strcmp(name, "valid") || !strcmp(name, "validate") || !strcmp(name, "validation"))
        return RF_SPLIT_VAL;
    if (!strcmp(name, "test"))
        return RF_SPLIT_TEST;
    return RF_SPLIT_NONE;
}

/* ---- strings and rows ---- */

const char *ds_str(rf_dataset *ds, const char *s, size_t n)
{
    while (n && isspace((unsigned char)*s))
        s++, n--;
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    if (!n)
        return "";
    ds_block *b = ds->arena;
    if (!b || b->cap - b->used < n + 1) {
        size_t cap = n + 1 > ((size_t)1 << 16) ? n + 1 : ((size_t)1 << 16);
        ds_block *nb = malloc(sizeof *nb + cap);
        if (!nb)
            return NULL;
        nb->next = b, nb->used = 0, nb->cap = cap;
        ds->arena = b = nb;
    }
    char *p = b->data + b->used;
    memcpy(p, s, n);
    p[n] = 0;
    b->used += n + 1;
    return p;
}

rf_dataset_row *ds_add_row(rf_dataset *ds, int8_t **targets)
{
    if (ds->nrows == ds->cap_rows) {
        size_t cap = ds->cap_rows ? ds->cap_rows * 2 : 1024;
        rf_dataset_row *r = realloc(ds->rows, cap * sizeof *r);
        if (!r)
            return NULL;
        ds->rows = r;
        int8_t *t = realloc(ds->targets, cap * (size_t)ds->ntargets);
        if (!t)
            return NULL;
        ds->targets = t;
        if (ds->layout == RF_DATASET_COVID) {
            const char **l = realloc(ds->labvals, cap * DS_COVID_NLABS * sizeof *l);
            if (!l)
                return NULL;
            ds->labvals = l;
        }
        ds->cap_rows = cap;
    }
    rf_dataset_row *r = &ds->rows[ds->nrows];
    *r = (rf_dataset_row){.id = "", .patient = "", .study = "", .image = "", .view = "", .view_raw = "",
                          .frontal = -1, .age = -1, .note = "", .license = "", .doi = "", .url = ""};
    int8_t *t = ds->targets + ds->nrows * (size_t)ds->ntargets;
    memset(t, RF_TARGET_UNKNOWN, (size_t)ds->ntargets);
    if (ds->labvals)
        for (int k = 0; k < DS_COVID_NLABS; k++)
            ds->labvals[ds->nrows * DS_COVID_NLABS + k] = "";
    *targets = t;
    ds->nrows++;
    return r;
}

/* ---- CSV helpers ---- */

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

int ds_read_csv(const char *path, char **data, size_t *len, rf_err *err)
{
    if (!ends_with(path, ".gz"))
        return rf_read_file(path, DS_CSV_MAX, data, len, err);
    gzFile gz = gzopen(path, "rb");
    if (!gz)
        return rf_err_set(err, RF_EIO, "%s: cannot open: %s", path, strerror(errno ? errno : ENOENT));
    size_t cap = (size_t)1 << 20, n = 0;
    char *p = malloc(cap + 1);
    int rc = p ? RF_OK : rf_err_set(err, RF_ENOMEM, "%s: out of memory", path);
    while (!rc) {
        if (n == cap) {
            if (cap >= DS_CSV_MAX) {
                rc = rf_err_set(err, RF_ENOMEM, "%s: more than %zu MiB once decompressed", path, DS_CSV_MAX >> 20);
                break;
            }
            char *q = realloc(p, cap * 2 + 1);
            if (!q) {
                rc = rf_err_set(err, RF_ENOMEM, "%s: out of memory", path);
                break;
            }
            p = q, cap *= 2;
        }
        size_t want = cap - n > ((size_t)1 << 30) ? ((size_t)1 << 30) : cap - n;
        int got = gzread(gz, p + n, (unsigned)want);
        if (got < 0) {
            int zerr;
            const char *msg = gzerror(gz, &zerr);
            rc = rf_err_set(err, RF_EFORMAT, "%s: not a readable gzip file: %s", path, msg ? msg : "error");
            break;
        }
        if (got == 0)
            break;
        n += (size_t)got;
    }
    gzclose(gz);
    if (rc) {
        free(p);
        return rc;
    }
    p[n] = 0;
    *data = p;
    *len = n;
    return RF_OK;
}

int ds_header(text_csv *csv, const char *file, const char *const *names, int n, unsigned long long optional,
              size_t *idx, size_t *ncols, rf_err *err)
{
    bool got;
    int rc = text_csv_read(csv, &got, err);
    if (rc)
        return rc;
    if (!got)
        return rf_err_set(err, RF_EFORMAT, "%s: empty; the file starts with a header naming its columns", file);
    for (int k = 0; k < n; k++) {
        idx[k] = (size_t)-1;
        for (size_t i = 0; i < csv->nfields; i++) {
            size_t len;
            const char *f = text_csv_field(csv, i, &len);
            while (len && isspace((unsigned char)f[len - 1]))
                len--;
            if (strlen(names[k]) == len && !memcmp(f, names[k], len)) {
                idx[k] = i;
                break;
            }
        }
        if (idx[k] == (size_t)-1 && !(optional >> k & 1))
            return rf_err_set(err, RF_EFORMAT, "%s: the header has no column '%s'", file, names[k]);
    }
    *ncols = csv->nfields;
    return RF_OK;
}

rf_dataset_row *ds_add_image_row(rf_dataset *ds, int8_t **targets, long line, const char *image)
{
    rf_dataset_row *r = ds_add_row(ds, targets);
    const char *img = r ? ds_str(ds, image, strlen(image)) : NULL;
    if (!img)
        return NULL;
    r->line = line;
    r->image = img;
    return r;
}

int ds_csv_open(text_csv *csv, const char *file, const char *data, size_t len, const char *const *names, int n,
                unsigned long long optional, size_t *idx, size_t *ncols, rf_err *err)
{
    text_csv_opts opts = {.skip_blank = true};
    text_csv_init(csv, file, data, len, &opts);
    return ds_header(csv, file, names, n, optional, idx, ncols, err);
}

int ds_record(text_csv *csv, const char *file, size_t ncols, bool *got, rf_err *err)
{
    int rc = text_csv_read(csv, got, err);
    if (rc || !*got)
        return rc;
    if (csv->nfields != ncols)
        return rf_err_set(err, RF_EFORMAT, "%s: line %zu: %zu fields where the header has %zu", file, csv->line,
                          csv->nfields, ncols);
    return RF_OK;
}

int ds_record_strs(rf_dataset *ds, text_csv *csv, const char *file, size_t ncols, const size_t *col, int n,
                   const char **f, bool *got, rf_err *err)
{
    int rc = ds_record(csv, file, ncols, got, err);
    if (rc || !*got)
        return rc;
    for (int k = 0; k < n; k++) {
        size_t len;
        const char *v = ds_field(csv, col[k], &len);
        if (!(f[k] = ds_str(ds, v, len)))
            return rf_err_set(err, RF_ENOMEM, "%s: out of memory", file);
    }
    return RF_OK;
}

void *ds_grow(void *a, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return a;
    size_t c = *cap ? *cap * 2 : 4096;
    void *b = realloc(a, c * size);
    if (b)
        *cap = c;
    return b;
}

const char *ds_field(const text_csv *csv, size_t idx, size_t *len)
{
    if (idx == (size_t)-1) {
        if (len)
            *len = 0;
        return "";
    }
    return text_csv_field(csv, idx, len);
}

bool ds_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

bool ds_chexpert_value(const char *s, int8_t *out)
{
    while (isspace((unsigned char)*s))
        s++;
    if (!*s) {
        *out = RF_TARGET_UNKNOWN;
        return true;
    }
    char *end;
    double v = strtod(s, &end);
    while (isspace((unsigned char)*end))
        end++;
    if (*end)
        return false;
    if (v == 1)
        *out = RF_TARGET_POS;
    else if (v == 0)
        *out = RF_TARGET_NEG;
    else if (v == -1)
        *out = RF_TARGET_UNKNOWN; /* uncertain */
    else
        return false;
    return true;
}

/* ---- open ---- */

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* The patients: sorted distinct keys and each row's index among them. */
static int index_patients(rf_dataset *ds, rf_err *err)
{
    if (!ds->nrows)
        return RF_OK;
    const char **keys = malloc(ds->nrows * sizeof *keys);
    ds->row_patient = malloc(ds->nrows * sizeof *ds->row_patient);
    if (!keys || !ds->row_patient) {
        free(keys);
        return rf_err_set(err, RF_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < ds->nrows; i++)
        keys[i] = ds->rows[i].patient;
    qsort(keys, ds->nrows, sizeof *keys, cmp_str);
    size_t n = 0;
    for (size_t i = 0; i < ds->nrows; i++)
        if (!n || strcmp(keys[n - 1], keys[i]))
            keys[n++] = keys[i];
    ds->patients = keys;
    ds->npatients = n;
    for (size_t i = 0; i < ds->nrows; i++) {
        const char **hit = bsearch(&ds->rows[i].patient, keys, n, sizeof *keys, cmp_str);
        ds->row_patient[i] = (size_t)(hit - keys);
    }
    return RF_OK;
}

/* Where CheXpert's CSVs are: root itself (a CheXpert-v1.0* folder) or one
 * CheXpert-v1.0* folder in it. *prefix gets the part of the CSVs' Path
 * values that root already is ("CheXpert-v1.0-small/" when root is that
 * folder, "" when root holds it). */
static int find_chexpert(const char *root, char *dir, size_t cap, char *prefix, size_t pcap)
{
    static const char *const names[] = {"CheXpert-v1.0-small", "CheXpert-v1.0"};
    char path[4096];
    const char *base = strrchr(root, '/');
    base = base && base[1] ? base + 1 : root;
    for (int i = 0; i < 2; i++) {
        if (!strncmp(base, names[i], strlen(names[i])) && strlen(base) - strlen(names[i]) <= 1) {
            snprintf(path, sizeof path, "%s/train.csv", root);
            char path2[4096];
            snprintf(path2, sizeof path2, "%s/valid.csv", root);
            if (ds_exists(path) || ds_exists(path2)) {
                snprintf(dir, cap, "%s", root);
                snprintf(prefix, pcap, "%s/", names[i]);
                return 1;
            }
        }
    }
    int found = 0;
    for (int i = 0; i < 2; i++) {
        char a[4096], b[4096];
        snprintf(a, sizeof a, "%s/%s/train.csv", root, names[i]);
        snprintf(b, sizeof b, "%s/%s/valid.csv", root, names[i]);
        if (ds_exists(a) || ds_exists(b)) {
            if (!found) {
                snprintf(dir, cap, "%s/%s", root, names[i]);
                prefix[0] = 0;
            }
            found++;
        }
    }
    return found;
}

static bool has_any(const char *root, const char *const *names, int n)
{
    char path[4096];
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s", root, names[i]);
        if (ds_exists(path))
            return true;
    }
    return false;
}

static const char *const mimic_files[] = {"mimic-cxr-2.0.0-metadata.csv", "mimic-cxr-2.0.0-metadata.csv.gz"};
static const char *const nih_files[] = {"Data_Entry_2017_v2020.csv", "Data_Entry_2017.csv"};

int rf_dataset_open(rf_dataset **out, const char *root, rf_dataset_layout layout, rf_err *err)
{
    *out = NULL;
    if (!root || !*root)
        return rf_err_set(err, RF_EINVAL, "rf_dataset_open: no dataset directory");
    if ((unsigned)layout > RF_DATASET_NIH)
        return rf_err_set(err, RF_EINVAL, "rf_dataset_open: unknown layout %d", (int)layout);
    struct stat st;
    if (stat(root, &st) != 0)
        return rf_err_set(err, RF_EIO, "%s: cannot open the dataset: %s", root, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return rf_err_set(err, RF_EIO, "%s: not a directory", root);
    char cx_dir[4096], cx_prefix[64];
    int ncx = find_chexpert(root, cx_dir, sizeof cx_dir, cx_prefix, sizeof cx_prefix);
    if (layout == RF_DATASET_AUTO) {
        static const char *const covid_files[] = {"metadata.csv"};
        bool is[5] = {false, has_any(root, covid_files, 1), ncx > 0, has_any(root, mimic_files, 2),
                      has_any(root, nih_files, 2)};
        int n = 0;
        for (int i = 1; i < 5; i++)
            if (is[i]) {
                if (n++)
                    return rf_err_set(err, RF_EINVAL,
                                      "%s: holds the files of more than one layout (%s and %s); name one with "
                                      "--layout",
                                      root, rf_dataset_layout_name(layout), rf_dataset_layout_name(i));
                layout = (rf_dataset_layout)i;
            }
        if (!n)
            return rf_err_set(err, RF_EINVAL,
                              "%s: no known dataset layout (looked for metadata.csv, CheXpert-v1.0[-small]/"
                              "{train,valid}.csv, mimic-cxr-2.0.0-metadata.csv[.gz], Data_Entry_2017[_v2020].csv)",
                              root);
    }
    rf_dataset *ds = calloc(1, sizeof *ds);
    if (!ds || !(ds->root = strdup(root))) {
        free(ds);
        return rf_err_set(err, RF_ENOMEM, "out of memory");
    }
    size_t rl = strlen(ds->root);
    while (rl > 1 && ds->root[rl - 1] == '/')
        ds->root[--rl] = 0;
    ds->layout = layout;
    int rc;
    switch (layout) {
    case RF_DATASET_COVID:
        rc = ds_load_covid(ds, err);
        break;
    case RF_DATASET_CHEXPERT:
        if (ncx > 1)
            rc = rf_err_set(err, RF_EINVAL,
                            "%s: holds both CheXpert-v1.0 and CheXpert-v1.0-small; open the one wanted", root);
        else if (!ncx) {
            /* named explicitly: a renamed CheXpert-v1.0* folder holding the CSVs */
            static const char *const csvs[] = {"train.csv", "valid.csv"};
            if (has_any(root, csvs, 2))
                rc = ds_load_chexpert(ds, ds->root, "renamed/", err);
            else
                rc = rf_err_set(err, RF_EINVAL,
                                "%s: no CheXpert train.csv or valid.csv here or in CheXpert-v1.0[-small]/", root);
        } else
            rc = ds_load_chexpert(ds, cx_dir, cx_prefix, err);
        break;
    case RF_DATASET_MIMIC:
        rc = ds_load_mimic(ds, err);
        break;
    default:
        rc = ds_load_nih(ds, err);
        break;
    }
    if (!rc)
        rc = index_patients(ds, err);
    if (rc) {
        rf_dataset_free(ds);
        return rc;
    }
    for (size_t i = 0; i < ds->nrows; i++)
        ds->rows[i].targets = ds->targets + i * (size_t)ds->ntargets;
    *out = ds;
    return RF_OK;
}

void rf_dataset_free(rf_dataset *ds)
{
    if (!ds)
        return;
    for (ds_block *b = ds->arena, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    for (size_t i = 0; i < ds->nimage_dirs; i++)
        free(ds->image_dirs[i]);
    free(ds->image_dirs);
    free(ds->rows);
    free(ds->targets);
    free(ds->labvals);
    free(ds->patients);
    free(ds->row_patient);
    free(ds->root);
    free(ds);
}

/* ---- accessors ---- */

rf_dataset_layout rf_dataset_get_layout(const rf_dataset *ds) { return ds->layout; }
const char *rf_dataset_root(const rf_dataset *ds) { return ds->root; }
size_t rf_dataset_count(const rf_dataset *ds) { return ds->nrows; }
const rf_dataset_row *rf_dataset_get(const rf_dataset *ds, size_t i) { return i < ds->nrows ? &ds->rows[i] : NULL; }
size_t rf_dataset_patient_count(const rf_dataset *ds) { return ds->npatients; }
size_t rf_dataset_skipped_rows(const rf_dataset *ds) { return ds->skipped; }
size_t rf_dataset_unmapped_rows(const rf_dataset *ds) { return ds->unmapped; }
int rf_dataset_ntargets(const rf_dataset *ds) { return ds->ntargets; }
int rf_dataset_nfinding_targets(const rf_dataset *ds) { return ds->nfinding; }

const char *rf_dataset_target_name(const rf_dataset *ds, int k)
{
    return k >= 0 && k < ds->ntargets ? ds->target_names[k] : NULL;
}

int rf_dataset_target_index(const rf_dataset *ds, const char *name)
{
    for (int k = 0; name && k < ds->ntargets; k++)
        if (!strcmp(ds->target_names[k], name))
            return k;
    return -1;
}

size_t rf_dataset_row_patient(const rf_dataset *ds, size_t i) { return i < ds->nrows ? ds->row_patient[i] : (size_t)-1; }

const char *rf_dataset_patient(const rf_dataset *ds, size_t p) { return p < ds->npatients ? ds->patients[p] : NULL; }

/* ---- images ---- */

int rf_dataset_image_path(const rf_dataset *ds, size_t i, char *buf, size_t cap, rf_err *err)
{
    if (!buf || cap == 0)
        return rf_err_set(err, RF_EINVAL, "%s: no buffer for the image path", ds->root);
    if (i >= ds->nrows)
        return rf_err_set(err, RF_EINVAL, "%s: no row %zu (the dataset has %zu)", ds->root, i, ds->nrows);
    const rf_dataset_row *r = &ds->rows[i];
    if (ds->nimage_dirs) {
        /* nih: the image may be in any of the images folders */
        const char *name = strrchr(r->image, '/');
        name = name ? name + 1 : r->image;
        for (size_t d = 0; d < ds->nimage_dirs; d++) {
            if ((size_t)snprintf(buf, cap, "%s/%s/%s", ds->root, ds->image_dirs[d], name) >= cap)
                return rf_err_set(err, RF_EINVAL, "%s: row %zu: image path too long", ds->root, i);
            if (ds_exists(buf))
                return RF_OK;
        }
        snprintf(buf, cap, "%s/%s", ds->root, r->image);
        return rf_err_set(err, RF_EIO, "%s: image '%s' of line %ld is in none of the %zu images folders", ds->root,
                          name, r->line, ds->nimage_dirs);
    }
    if ((size_t)snprintf(buf, cap, "%s/%s", ds->root, r->image) >= cap)
        return rf_err_set(err, RF_EINVAL, "%s: row %zu: image path too long", ds->root, i);
    struct stat st;
    if (stat(buf, &st) != 0)
        return rf_err_set(err, RF_EIO, "%s: image of line %ld not found: %s", buf, r->line, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return rf_err_set(err, RF_EIO, "%s: image of line %ld is not a regular file", buf, r->line);
    return RF_OK;
}

/* ---- labs ---- */

int rf_dataset_labs_csv(const rf_dataset *ds, size_t i, char **csv, size_t *len, int *nlabs, char *skipped,
                        size_t cap, rf_err *err)
{
    *csv = NULL;
    *len = 0;
    *nlabs = 0;
    if (i >= ds->nrows)
        return rf_err_set(err, RF_EINVAL, "%s: no row %zu (the dataset has %zu)", ds->root, i, ds->nrows);
    const char *none[DS_COVID_NLABS] = {"", "", "", "", ""};
    const char *const *vals = ds->labvals ? ds->labvals + i * DS_COVID_NLABS : none;
    const rf_dataset_row *r = &ds->rows[i];
    char date[9], iso[11];
    ds_study_date(r->time_kind == RF_DATASET_TIME_OFFSET ? (long)r->time : 0, date);
    snprintf(iso, sizeof iso, "%.4s-%.2s-%.2s", date, date + 4, date + 6);
    return ds_covid_labs_csv(vals, iso, csv, len, nlabs, skipped, cap, err);
}

int rf_dataset_labs(const rf_dataset *ds, size_t i, rf_labs *out, rf_err *err)
{
    char *csv;
    size_t len;
    int n;
    int rc = rf_dataset_labs_csv(ds, i, &csv, &len, &n, NULL, 0, err);
    if (rc)
        return rc;
    if (n) {
        char name[600];
        snprintf(name, sizeof name, "%.500s:labs", ds->rows[i].id);
        rc = rf_labs_parse(name, csv, len, RF_LABS_CSV, out, err);
    }
    free(csv);
    return rc;
}
