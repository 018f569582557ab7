/*
 * radfuse result: what a study-level read (`radfuse read`) found, as one
 * in-memory record that every writer consumes: result.json
 * (docs/result-schema.md), the overlay PNGs, report.html, report.fhir.json
 * and the DICOM objects (Secondary Captures and a Comprehensive SR).
 *
 * Ownership: every pointer in an rf_read_result is malloc'd and owned by it;
 * rf_result_free releases all of it. Strings are UTF-8 and NUL-terminated;
 * a NULL string means "not known" and writers leave the field out (JSON) or
 * empty (DICOM). Patient identifiers are only filled when the caller asked
 * for them (include_phi); writers never add any on their own.
 *
 * Conventions as in runtime.h: fallible functions return 0 or an RF_E* code
 * and fill rf_err with one line naming the file and the problem; files are
 * written atomically (temp file, fsync, rename); no global state.
 */
#ifndef RADFUSE_RESULT_H
#define RADFUSE_RESULT_H

#include <stddef.h>
#include <stdint.h>

#include "radfuse/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The version of result.json's schema (docs/result-schema.md): major.minor,
 * minor for added optional fields, major for anything a reader must know. */
#define RF_RESULT_SCHEMA_VERSION "1.0"

/* The kinds of input (modalities) a fusion model takes; names "image",
 * "text", "labs", "prior". (Not dicom_input.h's rf_input_kind, which says
 * what a DICOM input item is.) */
typedef enum rf_modality {
    RF_MODALITY_IMAGE = 0,
    RF_MODALITY_TEXT,
    RF_MODALITY_LABS,
    RF_MODALITY_PRIOR,
    RF_MODALITY_COUNT
} rf_modality;

/* "image", "text", "labs", "prior"; "?" out of range. */
const char *rf_modality_name(rf_modality k);

/* One image instance (frame) of the study or of the prior study: used by the
 * model, or skipped with the reason. */
typedef struct rf_result_image {
    char *path;                /* the file it was read from, as shown in outputs: as given with
                                * include_phi, else its base name (paths may hold names) */
    char *source;              /* the file as given, to read it again (the DICOM writer copies its
                                * patient and study modules); never written to any output */
    void *source_data;         /* for a zip entry (which has no file to open): its bytes, read
                                * again from memory; NULL for files */
    size_t source_size;
    int frame;                 /* 0-based */
    char *sop_instance_uid, *sop_class_uid, *series_instance_uid, *study_instance_uid;
    char *modality, *view;     /* e.g. "DX", "PA" */
    int used;                  /* 1: given to the model */
    int prior;                 /* 1: from the prior study */
    char *reason;              /* why used or skipped: always set */
    int rows, cols;            /* the original pixel grid */
    /* The image as displayed (the same windowing as `dicom export`), 8-bit
     * gray, rows * cols; NULL for skipped images. Overlays are drawn on it. */
    uint8_t *display;
    /* The window used for display, for the DICOM Secondary Capture's
     * description: center and width in modality units (0, 0 when automatic). */
    double window_center, window_width;
} rf_result_image;

/* A saliency map of one finding on one used image, on the image's original
 * pixel grid (same geometry as rf_result_image.display). */
typedef struct rf_result_map {
    size_t image;              /* index into rf_read_result.images */
    float *values;             /* rows * cols, in [0, 1], max 1 (an all-zero map is allowed) */
    int peak_row, peak_col;    /* where values is largest (first in row-major order on ties) */
    char *overlay;             /* PNG path relative to the output directory, set by the overlay writer */
    char *dicom;               /* Secondary Capture path relative to the output directory, set by the DICOM writer */
    char *sop_instance_uid;    /* that Secondary Capture's SOPInstanceUID, set by the DICOM writer */
} rf_result_map;

/* A span of a note that drove a finding. */
typedef struct rf_result_span {
    size_t note;               /* index into rf_read_result.notes */
    size_t begin, end;         /* byte offsets into that note's text, begin < end */
    float weight;              /* attribution in [-1, 1]: positive raised the finding's probability;
                                * the span with the largest |weight| of a finding has |weight| = 1 */
} rf_result_span;

typedef struct rf_result_finding {
    char *code;                /* the model's finding code (labels.json), e.g. "covid19" */
    char *display;             /* its display name, e.g. "COVID-19" */
    char *coding_system, *coding_code; /* an external code (e.g. SNOMED CT URI and code), or NULL */
    double logit;              /* the head's raw output */
    double temperature;        /* calibration: probability = sigmoid(logit / temperature) */
    double probability;
    double threshold;          /* the operating threshold stored in the model */
    int positive;              /* probability >= threshold */
    /* Share of the attribution carried by each input kind (sums to 1 over
     * the kinds used; 0 for kinds not used or when no saliency was run). */
    double input_weight[RF_MODALITY_COUNT];
    rf_result_map *maps;       /* one per used image, in images[] order; NULL when no saliency */
    size_t nmaps;
    rf_result_span *spans;     /* by decreasing |weight|; NULL when no text or no saliency */
    size_t nspans;
} rf_result_finding;

typedef struct rf_result_note {
    char *path;                /* as given (same PHI rule as images) */
    char *kind;                /* "note" or "report" */
    char *text;                /* the text the model read (UTF-8), for evidence spans */
    size_t len;                /* bytes of text */
    int used;
} rf_result_note;

typedef struct rf_result_lab {
    char *name;                /* display name from the lab table, e.g. "C-reactive protein" */
    char *loinc;               /* or NULL */
    double value;              /* in unit */
    char *unit;                /* UCUM */
    char *flag;                /* "low", "high", "critical", or NULL */
    double weight;             /* attribution in [-1, 1] for the top finding's sake, 0 when none */
} rf_result_lab;

typedef struct rf_result_timing {
    char *stage;               /* "decode", "preprocess", "vision", "text", "fusion", "saliency", "write" */
    double ms;
} rf_result_timing;

typedef struct rf_read_result {
    char *tool_version;        /* RADFUSE_VERSION */
    char *created;             /* ISO 8601 UTC time of the read */

    struct {
        char *dir;             /* as given */
        char *name, *version;  /* from config.json */
        char *sha256;          /* over config.json, labels.json and every weight file, in a fixed order */
        char *backend;         /* rf_backend_name, e.g. "cpu" or "vulkan (llvmpipe ...)" */
        char *precision;       /* "fp32" or "fp16" */
    } model;

    char *saliency;            /* "gradcam", "rollout", "occlusion" or "none" */

    struct {
        char *study_instance_uid;
        char *study_date, *study_time, *study_description, *modalities;
        char *prior_study_instance_uid; /* or NULL */
        char *prior_study_date;         /* DA of the prior, or NULL */
        /* PHI: filled only when include_phi */
        char *accession_number, *patient_id, *patient_name, *patient_birth_date, *patient_sex;
    } study;
    int include_phi;

    rf_result_image *images;
    size_t nimages;
    rf_result_note *notes;
    size_t nnotes;
    rf_result_lab *labs;
    size_t nlabs;
    int inputs_used[RF_MODALITY_COUNT]; /* 1 where the model had that input, 0 where its "absent" token stood in */

    rf_result_finding *findings; /* by decreasing probability */
    size_t nfindings;

    rf_result_timing *timings;
    size_t ntimings;
    char **warnings;           /* one line each, no PHI */
    size_t nwarnings;
} rf_read_result;

/* Releases everything r owns and zeroes it. */
void rf_result_free(rf_read_result *r);

/* Appends a warning line (printf format); RF_ENOMEM when out of memory. */
int rf_result_warn(rf_read_result *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends a timing. */
int rf_result_time(rf_read_result *r, const char *stage, double ms);

/* ---- writers (report/) ---- */

/* DIR/result.json (the schema of docs/result-schema.md). */
int rf_result_write_json(const rf_read_result *r, const char *path, rf_err *err);

/* result.json's text in memory (*out malloc'd, *len bytes, NUL-terminated). */
int rf_result_json(const rf_read_result *r, char **out, size_t *len, rf_err *err);

typedef struct rf_overlay_opts {
    const char *colormap;      /* "viridis" (default when NULL) or "inferno" */
    float alpha;               /* opacity of the map at value 1, in [0, 1]; 0.5 default */
    float floor;               /* map values below this are transparent; 0.2 default */
} rf_overlay_opts;

/* One PNG per finding and used image under OUTDIR/overlays/ (created), named
 * <finding code>_<image index>.png; sets each map's overlay path. */
int rf_result_write_overlays(rf_read_result *r, const char *outdir, const rf_overlay_opts *opts, rf_err *err);

/* OUTDIR/report.html: one self-contained page (images inlined, no network). */
int rf_result_write_html(const rf_read_result *r, const char *outdir, rf_err *err);

/* A FHIR R4 DiagnosticReport with one contained Observation per finding. */
int rf_result_write_fhir(const rf_read_result *r, const char *path, rf_err *err);

/* OUTDIR/dicom/: a Secondary Capture per map and a Comprehensive SR of the
 * findings, in new series of the source study, referencing the source
 * images (read again from their paths for the patient and study modules). */
int rf_result_write_dicom(rf_read_result *r, const char *outdir, rf_err *err);

#ifdef __cplusplus
}
#endif
#endif
