/*
 * Internal to radfuse eval: the split files of datasets/splits/, built into
 * the library by datasets/eval_embed_splits.cmake, so that `radfuse eval`
 * reads a layout's fixed split by default.
 */
#ifndef RADFUSE_EVAL_INTERNAL_H
#define RADFUSE_EVAL_INTERNAL_H

#include <stddef.h>

typedef struct rf_eval_builtin_split {
    const char *layout; /* rf_dataset_layout_name */
    const char *source; /* "datasets/splits/<layout>.csv" */
    const char *data;   /* the file's bytes (patientid,split) */
    size_t len;
} rf_eval_builtin_split;

/* Terminated by an entry with layout NULL. */
extern const rf_eval_builtin_split rf_eval_builtin_splits[];

/* The report tables' cells (datasets/eval_report.c): a value as %.3f, an
 * interval as lo-hi, "-" where not finite. */
struct rf_eval_ci;
void rf_eval_fmt(char *buf, size_t n, double v);
void rf_eval_fmt_ci(char *buf, size_t n, const struct rf_eval_ci *ci);

/* The saliency check of rf_eval_run (datasets/eval_saliency.c): the per-row
 * arrays for nrows rows; one used row u (dataset row) with its fused study s
 * and rendered image, counted when it has boxes and mapped when also want
 * (positive for a finding target); the figures per finding target once the
 * targets are scored (group: patient of each used row). */
struct rf_eval_result;
struct rf_eval_opts;
struct rf_eval_saliency;
struct rf_fusion;
struct rf_fusion_study;
struct rf_dataset;
struct rf_read_image;
struct rf_err;
int rf_eval_saliency_begin(struct rf_eval_result *r, const struct rf_eval_opts *o, size_t nrows, struct rf_err *err);
int rf_eval_saliency_row(struct rf_fusion *model, const struct rf_dataset *ds, const struct rf_eval_opts *o,
                         struct rf_eval_result *r, size_t u, size_t row, int want, const struct rf_fusion_study *s,
                         const struct rf_read_image *image, struct rf_err *err);
int rf_eval_saliency_score(const struct rf_dataset *ds, const struct rf_eval_opts *o, struct rf_eval_result *r,
                           const int *group, struct rf_err *err);
void rf_eval_saliency_free(struct rf_eval_saliency *s);

#endif
