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
 *
 * Loaders (rf_dataset_open) read the published layouts of four collections
 * into rows with a common shape: an id, a patient key, the image's path,
 * view, sex and age where known, a time where known, the note and labs where
 * the collection has them, and targets (a fixed list per layout, each 1, 0 or
 * -1 for unknown or uncertain). Layouts (docs/datasets.md has the columns
 * and every mapping):
 *   covid-chestxray  COVID-19 image data collection: metadata.csv + images/
 *   chexpert         CheXpert-v1.0[-small]/{train,valid}.csv (the root may be
 *                    the folder holding CheXpert-v1.0* or that folder itself)
 *   mimic-cxr-jpg    MIMIC-CXR-JPG 2.0.0: mimic-cxr-2.0.0-{chexpert,metadata,
 *                    split}.csv[.gz] + files/pXX/pSUBJECT/sSTUDY/DICOM_ID.jpg
 *   nih-cxr14        NIH ChestX-ray14: Data_Entry_2017[_v2020].csv, images in
 *                    images/ or images_NNN/images/, train_val_list.txt and
 *                    test_list.txt
 * The CSVs are read whole at open through radfuse's strict CSV reader; images
 * are not touched until rf_dataset_image_path is asked for one.
 *
 * Splits are by patient: a patient's side comes from a keyed hash
 * (HMAC-SHA-256) of its key, so no patient is ever on two sides, optionally
 * stratified by the patient's positive finding targets; a split file
 * (patientid,split) fixes the sides for good (datasets/splits/).
 */
#ifndef RADFUSE_DATASETS_H
#define RADFUSE_DATASETS_H

#include <stddef.h>
#include <stdint.h>

#include "radfuse/labs.h"
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


/* ---- loaders ------------------------------------------------------------ */

typedef enum rf_dataset_layout {
    RF_DATASET_AUTO = 0, /* detected from the files the root holds */
    RF_DATASET_COVID,    /* "covid-chestxray" */
    RF_DATASET_CHEXPERT, /* "chexpert" */
    RF_DATASET_MIMIC,    /* "mimic-cxr-jpg" */
    RF_DATASET_NIH,      /* "nih-cxr14" */
} rf_dataset_layout;

/* The layout's name as above ("auto" for RF_DATASET_AUTO). */
const char *rf_dataset_layout_name(rf_dataset_layout layout);
/* The layout a name gives (the names above); RF_EINVAL when none. */
int rf_dataset_layout_parse(const char *name, rf_dataset_layout *out, rf_err *err);

/* Sides of a split; RF_SPLIT_NONE: not assigned (or not given by the source). */
typedef enum rf_split {
    RF_SPLIT_NONE = 0,
    RF_SPLIT_TRAIN,
    RF_SPLIT_VAL,
    RF_SPLIT_TEST,
} rf_split;
#define RF_SPLIT_COUNT 4
/* "none", "train", "val", "test". */
const char *rf_split_name(rf_split s);
/* "train", "val" (also "valid", "validate", "validation"), "test"; RF_SPLIT_NONE otherwise. */
rf_split rf_split_parse(const char *name);

/* Target values. */
#define RF_TARGET_POS 1
#define RF_TARGET_NEG 0
#define RF_TARGET_UNKNOWN (-1) /* not stated, or stated as uncertain */

/* What a row's time means. */
typedef enum rf_dataset_time {
    RF_DATASET_TIME_NONE = 0,
    RF_DATASET_TIME_OFFSET, /* covid: days from the patient's day 0 (the collection's 'offset') */
    RF_DATASET_TIME_DATE,   /* mimic: StudyDate + StudyTime (shifted by the source), days since 1970-01-01 */
    RF_DATASET_TIME_FOLLOWUP, /* nih: the patient's follow-up number (an order, not days) */
} rf_dataset_time;

/* One image of a dataset. Strings are NUL-terminated and owned by the
 * dataset; "" where the source has nothing (never NULL). */
typedef struct rf_dataset_row {
    const char *id;      /* unique in the dataset: covid filename, chexpert Path, mimic dicom_id, nih Image Index */
    const char *patient; /* covid patientid, chexpert patientNNNNN (from Path), mimic subject_id, nih Patient ID */
    const char *study;   /* chexpert patientNNNNN/studyN, mimic study_id; "" for covid and nih */
    const char *image;   /* path relative to the root, as the layout places it (not checked: rf_dataset_image_path) */
    const char *view;    /* PA, AP, LL (lateral), or "" unknown; as written in view_raw */
    const char *view_raw;
    int frontal;         /* 1 frontal (PA, AP), 0 lateral, -1 unknown */
    char sex;            /* 'M', 'F', or 0 unknown */
    double age;          /* years; < 0 unknown */
    rf_dataset_time time_kind;
    double time;         /* as time_kind says; 0 when RF_DATASET_TIME_NONE */
    const char *note;    /* covid clinical_notes (trimmed); "" elsewhere */
    int nlabs;           /* covid: lab columns with a usable value (rf_dataset_labs_csv); 0 elsewhere */
    const char *license; /* covid: the row's own license ("" when the source stated none) */
    const char *doi, *url; /* covid: the row's source */
    const int8_t *targets; /* [rf_dataset_ntargets]: RF_TARGET_POS / NEG / UNKNOWN */
    rf_split source_split; /* the split the source publishes (chexpert train/valid, mimic split.csv, nih lists), else NONE */
    long line;           /* line of the row in its CSV (1-based) */
} rf_dataset_row;

typedef struct rf_dataset rf_dataset;

/*
 * Reads the dataset at root in layout (RF_DATASET_AUTO: detected; more than
 * one layout there, or none, is RF_EINVAL naming what was looked for). Every
 * CSV row becomes a row; a malformed file (missing column, bad quoting, a
 * field over the caps, invalid UTF-8, a bad label value) is one error line
 * naming the file and line. Free with rf_dataset_free.
 */
int rf_dataset_open(rf_dataset **out, const char *root, rf_dataset_layout layout, rf_err *err);
void rf_dataset_free(rf_dataset *ds);

rf_dataset_layout rf_dataset_get_layout(const rf_dataset *ds);
const char *rf_dataset_root(const rf_dataset *ds);
size_t rf_dataset_count(const rf_dataset *ds);
/* Row i (< count), or NULL. Rows keep the order of the source's CSV. */
const rf_dataset_row *rf_dataset_get(const rf_dataset *ds, size_t i);
/* Distinct patient keys. */
size_t rf_dataset_patient_count(const rf_dataset *ds);
/* Patient p (< patient_count; keys sorted by strcmp), and the patient of row i. */
const char *rf_dataset_patient(const rf_dataset *ds, size_t p);
size_t rf_dataset_row_patient(const rf_dataset *ds, size_t i);
/* Rows the loader left out (covid: rows whose modality is not X-ray), and
 * rows whose labels it could not map (covid: a finding term not in its
 * table; their finding targets are unknown). */
size_t rf_dataset_skipped_rows(const rf_dataset *ds);
size_t rf_dataset_unmapped_rows(const rf_dataset *ds);

/* The layout's targets: count, names (stable codes: "covid19", "no_finding",
 * "survival", "pleural_effusion", ...), and how many of the first are
 * finding targets (the rest are outcomes: covid only). */
int rf_dataset_ntargets(const rf_dataset *ds);
const char *rf_dataset_target_name(const rf_dataset *ds, int k);
int rf_dataset_nfinding_targets(const rf_dataset *ds);
/* The index of a target by name, or -1. */
int rf_dataset_target_index(const rf_dataset *ds, const char *name);

/*
 * The image of row i as a path (root/image; for nih the images folder that
 * holds it), checked to exist now: RF_EIO naming the path and the row's CSV
 * line when it does not. buf gets the path (cap >= 4096 always suffices).
 */
int rf_dataset_image_path(const rf_dataset *ds, size_t i, char *buf, size_t cap, rf_err *err);

/*
 * The labs of row i in the lab CSV format of radfuse/labs.h (code,name,value,
 * unit,low,high,time; LOINC codes, UCUM units, timed at RF_DATASET_BASE_DATE
 * plus the row's offset), the same text rf_dataset_study writes as labs.csv:
 * *csv is malloc'd and NUL-terminated; *nlabs rows (0: header only). skipped
 * (may be NULL, cap bytes) gets the lab values left out and why.
 */
int rf_dataset_labs_csv(const rf_dataset *ds, size_t i, char **csv, size_t *len, int *nlabs, char *skipped,
                        size_t cap, rf_err *err);
/* The same labs appended to out through rf_labs_parse (source "<id>:labs"). */
int rf_dataset_labs(const rf_dataset *ds, size_t i, rf_labs *out, rf_err *err);

/* ---- patient-level splits -------------------------------------------------- */

#define RF_SPLIT_DEFAULT_KEY "radfuse-split-1"

typedef struct rf_split_opts {
    double train, val, test; /* fractions (>= 0, sum > 0; normalized); all 0: 0.70 / 0.15 / 0.15 */
    const char *key;         /* HMAC key; NULL: RF_SPLIT_DEFAULT_KEY */
    int stratify;            /* 1: within each group of patients with the same positive finding
                                targets, patients sorted by hash and cut at the fractions (rounded);
                                0: each patient by its own hash against the fractions */
} rf_split_opts;

/* The patient's hash in [0, 1): the first 8 bytes of HMAC-SHA-256(key,
 * patient) as a big-endian integer / 2^64. */
double rf_split_hash(const char *key, const char *patient);

/*
 * The side of every row (out[count]) by patient. With split_file (CSV with
 * header patientid,split; sides train/val/test): the file's sides; a patient
 * of the dataset missing from the file is RF_EINVAL (naming the file and how
 * many are missing, never a key). Without: from opts (NULL: defaults).
 */
int rf_dataset_split(const rf_dataset *ds, const char *split_file, const rf_split_opts *opts, rf_split *out,
                     rf_err *err);

/* Writes the split of ds by opts as a split file (patientid,split, one line
 * per patient, sorted by key), atomically. */
int rf_dataset_split_write(const rf_dataset *ds, const rf_split_opts *opts, const char *path, rf_err *err);

#ifdef __cplusplus
}
#endif
#endif
