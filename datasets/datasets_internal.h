/*
 * Internal to radfuse_datasets: the C boundary of the DICOM writer of
 * datasets/make_study.cpp (DCMTK), which catches every exception.
 */
#ifndef RADFUSE_DATASETS_INTERNAL_H
#define RADFUSE_DATASETS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "radfuse/runtime.h"

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

#ifdef __cplusplus
}
#endif
#endif
