/*
 * radfuse datasets: public chest radiograph collections as radfuse inputs.
 *
 * rf_dataset_study turns one row of the COVID-19 image data collection
 * (metadata.csv + images/, as in ../shared/data/covid-chestxray) into what
 * `radfuse read` takes: a one-image DICOM study, the row's clinical note and
 * its labs, with the row's license and source beside them:
 *
 *   OUT/study/<row>.dcm  CR, 8-bit MONOCHROME2, uncompressed explicit VR
 *                        little endian: the JPEG's decoded values unchanged
 *                        (libjpeg-turbo, accurate integer IDCT); patient
 *                        module from the row with the pseudonymous PatientID
 *                        "COVID-<patientid>"; StudyDate RF_DATASET_BASE_DATE
 *                        plus the row's offset in days; ViewPosition from
 *                        'view' (PA, AP, AP Supine -> AP, L -> LL); UIDs
 *                        2.25.<128 bits of SHA-256 of the image's file name>,
 *                        so that rebuilding gives identical bytes.
 *   OUT/note.txt         "Date: <study date>" and the clinical_notes text
 *                        (rf_note_parse's convention); absent when the row
 *                        has no note.
 *   OUT/labs.csv         the row's temperature, pO2_saturation and leukocyte,
 *                        neutrophil and lymphocyte counts in the lab CSV
 *                        format (radfuse/labs.h) with LOINC codes and UCUM
 *                        units, timed at the study date; absent when the row
 *                        has none. A pO2_saturation above 100 cannot be a
 *                        saturation in % (the column mixes in pO2 in mm Hg)
 *                        and is left out, with a note in `skipped`.
 *   OUT/ATTRIBUTION.txt  the image's source, license, DOI and URL.
 *
 * Every file is written atomically. Errors (no metadata.csv, a row out of
 * range, an unknown image, a missing or unreadable JPEG) are one line naming
 * the file and the problem.
 */
#ifndef RADFUSE_DATASETS_H
#define RADFUSE_DATASETS_H

#include <stddef.h>

#include "radfuse/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RF_DATASET_BASE_DATE "20200101" /* day 0 of the rows' offsets */

/* What rf_dataset_study wrote; paths are relative to the output directory. */
typedef struct rf_dataset_study_info {
    long row;                  /* 0-based data row of metadata.csv (the header is not a row) */
    char dicom[64];            /* "study/<row>.dcm" */
    char modality[8];          /* "CR" */
    char view[16];             /* ViewPosition written: PA, AP, LL, or "" */
    int rows, cols;
    int has_note;              /* note.txt written */
    int nlabs;                 /* lab rows in labs.csv (0: no labs.csv) */
    char study_date[9];        /* YYYYMMDD */
    char skipped[512];         /* lab values left out and why ("" when none) */
} rf_dataset_study_info;

/*
 * The study of one row of data_dir/metadata.csv, chosen by row (0-based,
 * >= 0) or, when row < 0, by image (the 'filename' column, a base name), into
 * outdir (created when missing, with its study/ folder). info may be NULL.
 */
int rf_dataset_study(const char *data_dir, long row, const char *image, const char *outdir,
                     rf_dataset_study_info *info, rf_err *err);

#ifdef __cplusplus
}
#endif
#endif
