/*
 * Internal to radfuse_datasets: the C boundary of the DICOM writer of
 * datasets/make_study.cpp (DCMTK), which catches every exception.
 */
#ifndef RADFUSE_DATASETS_INTERNAL_H
#define RADFUSE_DATASETS_INTERNAL_H

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

#ifdef __cplusplus
}
#endif
#endif
