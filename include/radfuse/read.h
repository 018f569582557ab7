/*
 * radfuse read: a study-level read, the library behind `radfuse read` (and
 * `radfuse batch`): a DICOM study (files, trees, DICOMDIR, zip), optionally a
 * prior study, notes and labs, through a fusion model (fusion.h) into an
 * rf_read_result (result.h) with calibrated probabilities and, when asked,
 * saliency evidence. Writing the outputs is the writers' job (result.h).
 *
 * What is fatal and what is a warning (docs/read.md): no usable image in the
 * study, several studies in the input without a choice, a model that cannot
 * take the study's images are errors; an unreadable note or lab file, a file
 * of the study that cannot be decoded, a lab that cannot be used are warnings
 * in the result, and the read goes on without that input.
 *
 * Conventions as in runtime.h: 0 or an RF_E* code with one line in rf_err
 * naming the input; no global state; no PHI in messages or warnings.
 */
#ifndef RADFUSE_READ_H
#define RADFUSE_READ_H

#include <stddef.h>

#include "radfuse/imaging.h"
#include "radfuse/labs.h"
#include "radfuse/result.h"

#ifdef __cplusplus
extern "C" {
#endif

struct rf_fusion;

typedef struct rf_read_request {
    const char *const *study;   /* paths of the study: files, directory trees, DICOMDIR, zip */
    int nstudy;
    const char *study_uid;      /* which study when the paths hold several; NULL: there must be one */
    const char *const *prior;   /* paths of a prior study, or NULL */
    int nprior;
    const char *const *notes;   /* plain-text notes or reports (rf_note_read_file) */
    int nnotes;
    const char *const *labs;    /* lab files: CSV, HL7 v2 or FHIR JSON (by content) */
    int nlabs;
    const char *saliency;       /* "gradcam", "rollout", "occlusion" or "none"; NULL: "none" */
    int include_phi;            /* copy patient identifiers and full paths into the result */
    const char *precision;      /* recorded in the result: "fp32" (NULL) or "fp16" */
    int threads;                /* decoding and preprocessing threads; 0: one per core */
} rf_read_request;

/* ---- the study's images (fusion/read_study.c) ---- */

/* An image a model will see: displayed values as `dicom export` renders
 * them (file window, else the automatic one), before preprocessing. */
typedef struct rf_read_image {
    size_t result_image;        /* index into rf_read_result.images */
    float *pixels;              /* rows * cols * channels, interleaved, in [0, 1] */
    int rows, cols, channels;
} rf_read_image;

typedef struct rf_read_images {
    rf_read_image *images;
    size_t count;
    /* the study's PatientID, to tell a prior of another patient; PHI: for
     * comparison only, never written or printed */
    char patient_id[RF_DICOM_TEXT];
} rf_read_images;

/* What a model takes: at most max_images images, of the DICOM modalities
 * listed (nmodalities 0: any). */
typedef struct rf_read_image_rules {
    int max_images;
    int nmodalities;
    const char (*modalities)[17];
} rf_read_image_rules;

/*
 * Reads the study (prior = 0) or the prior study (prior = 1) from paths:
 * groups the instances by study, picks study_uid (or the only study),
 * selects images by the imaging rules (study.h), skips those of a modality
 * the model does not read, decodes and renders at most max_images of them
 * (the rest are skipped with that reason), and
 * appends every instance to r->images (used or skipped, with the reason)
 * and the study's attributes to r->study (the current study only; patient
 * fields only with include_phi). Files that cannot be read become skipped
 * entries and a warning. Fails when nothing of the study can be used.
 */
int rf_read_study_images(const char *const *paths, int npaths, const char *study_uid, int prior,
                         const rf_read_image_rules *rules, int include_phi, rf_read_result *r, rf_read_images *out,
                         rf_err *err);
void rf_read_images_free(rf_read_images *imgs);

/* ---- the model's inputs as rf_read makes them (fusion/read.c; also radfuse eval) ---- */

/* Rendered images through the model's preprocessing (info.preprocess) into
 * one malloc'd [n, C, H, W] array (*out NULL when n is 0); threads as in
 * rf_read_request. */
int rf_read_preprocess(const struct rf_fusion *model, const rf_read_image *images, size_t n, int threads,
                       float **out, rf_err *err);

/* 1 when rf_read gives the note text (len bytes, NUL-terminated) to the text
 * encoder: not when it is empty or only white space. */
int rf_read_note_usable(const char *text, size_t len);

/* The study's time that lab results are taken against: DICOM StudyDate
 * (YYYYMMDD) and StudyTime (HHMMSS[.f], or NULL) as an rf_time; -1 when the
 * date is missing or invalid. */
int rf_read_study_time(const char *study_date, const char *study_time, rf_time *t);

/* The saliency rf_read computes for the study s made of images[0..n) (maps
 * on their original grids): rf_saliency_run with the default options and
 * method (rf_saliency_method), into *out (free it with
 * rf_saliency_result_free, also after a failure). radfuse eval calls it so
 * that its maps are the read's. */
struct rf_fusion_study;
struct rf_saliency_result;
int rf_read_saliency(struct rf_fusion *model, int method, const struct rf_fusion_study *s,
                     const rf_read_image *images, size_t n, struct rf_saliency_result *out, rf_err *err);

/* ---- the whole read (fusion/read.c) ---- */

/*
 * Reads the study, the prior, the notes and the labs of req, runs model and
 * the saliency method, and fills *out (zeroed first; free it with
 * rf_result_free, also after a failure). Writes nothing to disk.
 */
int rf_read(struct rf_fusion *model, const rf_read_request *req, rf_read_result *out, rf_err *err);

#ifdef __cplusplus
}
#endif
#endif
