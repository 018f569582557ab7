/*
 * radfuse studies: instances (read by rf_dicom_read or rf_inputs_read)
 * grouped into Study -> Series -> Instance by their UIDs, ordered, with
 * duplicates found, and the images a model should see chosen by a rule set
 * per modality, with a reason for every choice and every skip.
 *
 * Ordering (docs/imaging.md, "Studies and ordering"): studies by StudyDate,
 * StudyTime, then UID; series by SeriesNumber (absent last), then UID;
 * instances by InstanceNumber (absent last), then position along the slice
 * normal (row cosines x column cosines, dot ImagePositionPatient; absent
 * last), then SOPInstanceUID, then name: the same order whatever order the
 * instances were added in.
 *
 * Selection (docs/imaging.md, "Choosing images"): rules that skip any modality's
 * non-images, secondary captures, localizers and derived secondary images,
 * then a table of per-modality rules: CR/DX frontal views (evidence in order:
 * ViewPosition, SeriesDescription words, ImageType words, PatientOrientation),
 * MG the CC and MLO views, CT/MR one series per study (axial, then ORIGINAL,
 * then most slices). No rules, no selection: other modalities are listed, not
 * chosen.
 */
#ifndef RADFUSE_STUDY_H
#define RADFUSE_STUDY_H

#include <stddef.h>

#include "radfuse/imaging.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RF_REASON 320

typedef struct rf_instance {
    char *name;            /* display name (owned copy) */
    rf_dicom_image attrs;  /* the attributes; pixels and LUTs are not kept */
    char pixel_sha256[65]; /* "" when not known */
    /* filled by rf_studies_build */
    size_t study, series;  /* indices into studies[] and series[] */
    long duplicate_of;     /* -1, or the instance listed in this one's place (same SOPInstanceUID) */
    long duplicates;       /* how many copies point here */
    int selected;          /* chosen for a model */
    char reason[RF_REASON]; /* why chosen or skipped: always set */
} rf_instance;

typedef struct rf_series {
    char uid[RF_DICOM_STR];
    char modality[RF_DICOM_STR];
    char description[RF_DICOM_TEXT];
    int number, has_number;
    size_t study;
    size_t *order;         /* instance indices in order; duplicates left out */
    size_t count;
    long frames;           /* frames of those instances */
    long selected;         /* instances selected */
    char note[RF_REASON];  /* series-level decision (CT, MR); "" when none */
} rf_series;

typedef struct rf_study {
    char uid[RF_DICOM_STR];
    char description[RF_DICOM_TEXT];
    char date[RF_DICOM_STR], time[RF_DICOM_STR];
    char modalities[RF_DICOM_STR]; /* distinct Modality values, sorted, space-separated */
    size_t *series;        /* series indices in order */
    size_t nseries;
    long instances, frames; /* duplicates not counted */
    long selected, selected_frames;
    long duplicates;       /* copies left out */
} rf_study;

typedef struct rf_studies {
    rf_instance *inst;
    size_t ninst, cap;
    rf_series *series;
    size_t nseries;
    rf_study *studies;
    size_t nstudies;
    size_t *study_order;   /* study indices in order */
} rf_studies;

void rf_studies_init(rf_studies *s);

/*
 * Adds one instance (its attributes are copied; pixel and LUT pointers are
 * not). sha256 may be NULL. Fails with RF_EFORMAT, one line starting with
 * name, when StudyInstanceUID, SeriesInstanceUID or SOPInstanceUID is
 * missing: such an instance cannot be placed and is the caller's error.
 */
int rf_studies_add(rf_studies *s, const char *name, const rf_dicom_image *attrs, const char *sha256, rf_err *err);

/* Groups, orders, finds duplicates and selects (rf_select_studies). Call once, after the last add. */
int rf_studies_build(rf_studies *s, rf_err *err);

void rf_studies_free(rf_studies *s);

/* ---- selection (imaging/select.c) ---- */

/* Sets selected and reason of every instance that is not a duplicate; called by rf_studies_build. */
void rf_select_studies(rf_studies *s);

/*
 * What a SOP class is when it is not an image a model can take: "structured
 * report", "key object selection", "presentation state", "waveform",
 * "encapsulated document", "radiotherapy object", "raw data", "DICOMDIR"...;
 * NULL for image storage classes and for unknown or empty UIDs. An instance of
 * such a class may lack Pixel Data (it is listed, not an error).
 */
const char *rf_sop_class_non_image(const char *sop_class_uid);

/* 1 for the secondary capture classes (1.2.840.10008.5.1.4.1.1.7 and its sub-classes). */
int rf_sop_class_secondary_capture(const char *sop_class_uid);

#ifdef __cplusplus
}
#endif
#endif
