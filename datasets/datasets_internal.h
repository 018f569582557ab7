/*
 * Internal to radfuse_datasets: the C boundary of the DICOM writer of
 * datasets/make_study.cpp (DCMTK), which catches every exception; the
 * collection's lab conversion shared by the study maker and the loader; the
 * loaders' dataset structure and CSV helpers; libjpeg's error catching for
 * the JPEG decoders.
 */
#ifndef RADFUSE_DATASETS_INTERNAL_H
#define RADFUSE_DATASETS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "radfuse/datasets.h"
#include "radfuse/runtime.h"
#include "text/csv.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A one-frame 8-bit MONOCHROME2 Computed Radiography image. Empty strings
 * are written as empty type 2 attributes (or left out where type 3). */
typedef struct ds_cr_spec {
    const char *path;     /* written atomically */
    const uint8_t *pixels;
    int rows, cols;
    const char *patient_id, *patient_name, *patient_sex, *patient_age;
    const char *study_uid, *series_uid, *sop_uid;
    const char *study_date, *study_time;
    const char *view_position, *body_part;
    const char *study_description, *series_description, *derivation;
} ds_cr_spec;

int ds_write_cr(const ds_cr_spec *s, rf_err *err);

/* ---- the collection's lab columns (datasets/covid_labs.c) ---- */

#define DS_COVID_NLABS 5
#define DS_COVID_LAB_PO2 1 /* pO2_saturation: values above 100 are pO2 in mm Hg, left out */
/* temperature, pO2_saturation, leukocyte_count, neutrophil_count, lymphocyte_count */
extern const char *const ds_covid_lab_columns[DS_COVID_NLABS];

/*
 * The lab CSV text (code,name,value,unit,low,high,time; LOINC codes, UCUM
 * units) of the values vals (trimmed, "" when absent, in the order of
 * ds_covid_lab_columns), timed at iso_date: *out malloc'd, NUL-terminated;
 * *nlabs rows. Values that are not numbers or not a saturation are left out
 * and named with the reason in skipped (cap bytes; may be NULL).
 */
int ds_covid_labs_csv(const char *const vals[DS_COVID_NLABS], const char *iso_date, char **out, size_t *len,
                      int *nlabs, char *skipped, size_t cap, rf_err *err);

/* YYYYMMDD of RF_DATASET_BASE_DATE plus days (|days| <= 36500). */
void ds_study_date(long days, char out[9]);

/* ---- JPEG decoding (datasets/jpeg_catch.c; where jpeglib.h is included first) ---- */
#if !defined(__cplusplus) && defined(JPEG_LIB_VERSION)
#include <setjmp.h>

/* libjpeg's fatal errors end in a longjmp to jb with the message in msg;
 * its warnings are dropped. The decoder calls setjmp(f->jb) itself, after
 * ds_jpeg_catch and before any other libjpeg call. */
typedef struct ds_jpeg_fail {
    struct jpeg_error_mgr mgr;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
} ds_jpeg_fail;

void ds_jpeg_catch(struct jpeg_decompress_struct *cinfo, ds_jpeg_fail *f);
#endif

/* ---- loaders (datasets/dataset*.c; C only) ---- */
#ifndef __cplusplus

#define DS_CSV_MAX ((size_t)1 << 30) /* one CSV of a layout, after decompression */

typedef struct ds_block {
    struct ds_block *next;
    size_t used, cap;
    char data[];
} ds_block;

struct rf_dataset {
    rf_dataset_layout layout;
    char *root;
    rf_dataset_row *rows;
    size_t nrows, cap_rows;
    int8_t *targets; /* [nrows][ntargets]; rows point in once loading is done */
    const char *const *target_names;
    int ntargets, nfinding;
    const char **labvals; /* covid: [nrows][DS_COVID_NLABS], trimmed, "" when absent */
    ds_block *arena;      /* every string of the rows */
    const char **patients; /* sorted distinct patient keys */
    size_t npatients;
    size_t *row_patient; /* [nrows]: index into patients */
    char **image_dirs;   /* nih: folders under root that may hold an image, in the order tried */
    size_t nimage_dirs;
    size_t skipped, unmapped;
};

/* A copy of s[0..n) with surrounding white space trimmed, in the arena; NULL when out of memory. */
const char *ds_str(rf_dataset *ds, const char *s, size_t n);
/* A new row (strings "", targets unknown, age -1, frontal -1) and its targets; NULL when out of memory. */
rf_dataset_row *ds_add_row(rf_dataset *ds, int8_t **targets);
/* ds_add_row for the record at line whose image is image (copied into the arena); NULL when out of memory. */
rf_dataset_row *ds_add_image_row(rf_dataset *ds, int8_t **targets, long line, const char *image);
/* A whole CSV file, gunzipped when its name ends in .gz; at most DS_CSV_MAX bytes. */
int ds_read_csv(const char *path, char **data, size_t *len, rf_err *err);
/* Reads the header of csv and finds the n columns names (exact names); a
 * missing column is an error naming file and column, unless bit k of
 * optional is set (then idx[k] = (size_t)-1). *ncols gets the header's width. */
int ds_header(text_csv *csv, const char *file, const char *const *names, int n, unsigned long long optional,
              size_t *idx, size_t *ncols, rf_err *err);
/* text_csv_init on file's text data[0..len) (blank lines skipped), then ds_header. */
int ds_csv_open(text_csv *csv, const char *file, const char *data, size_t len, const char *const *names, int n,
                unsigned long long optional, size_t *idx, size_t *ncols, rf_err *err);
/* Reads the next record and checks it has ncols fields; *got false at the end. */
int ds_record(text_csv *csv, const char *file, size_t ncols, bool *got, rf_err *err);
/* ds_record, then fields col[0..n) of the record as ds_str copies in f[0..n). */
int ds_record_strs(rf_dataset *ds, text_csv *csv, const char *file, size_t ncols, const size_t *col, int n,
                   const char **f, bool *got, rf_err *err);
/* a with room for element n (elements of size bytes; *cap doubles from 4096):
 * a itself or its realloc; NULL (a untouched) when out of memory. */
void *ds_grow(void *a, size_t *cap, size_t n, size_t size);
/* Field idx of the record (trimmed copy in the arena is ds_str's job): "" for (size_t)-1. */
const char *ds_field(const text_csv *csv, size_t idx, size_t *len);
/* Whether path exists (any kind of file). */
bool ds_exists(const char *path);
/* A 1 / 0 / -1 label as CheXpert writes them ("1.0", "0", "-1.0", ""); false when none of those. */
bool ds_chexpert_value(const char *s, int8_t *out);

int ds_load_covid(rf_dataset *ds, rf_err *err);
int ds_load_chexpert(rf_dataset *ds, const char *csv_dir, const char *prefix, rf_err *err);
int ds_load_mimic(rf_dataset *ds, rf_err *err);
int ds_load_nih(rf_dataset *ds, rf_err *err);
#endif

#ifdef __cplusplus
}
#endif
#endif
