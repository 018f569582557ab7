/*
 * radfuse eval: how good a model directory is on a labelled dataset, the
 * library behind `radfuse eval` (docs/eval.md).
 *
 * Metrics (pure functions of scores and 0/1 labels; datasets/eval_metrics.c):
 * AUROC as the Mann-Whitney statistic with ties counted one half (what
 * sklearn's roc_auc_score computes), AUPRC as average precision (sklearn's
 * average_precision_score: the sum over distinct thresholds of the recall
 * step times the precision), a percentile bootstrap interval of AUROC
 * resampling patients (or rows) with a seeded generator, expected calibration
 * error over equal-width bins with its reliability table, and sensitivity /
 * specificity at a threshold. Checked against sklearn
 * (tests/data/make_eval_expected.py).
 *
 * The runner (datasets/eval.c) reads every row of a dataset subset through
 * the model as `radfuse read` would read the study made from the row, once
 * with every input and once with each input alone (the ablation), and
 * optionally with the findings' names masked out of the notes.
 *
 * Conventions as in runtime.h: fallible functions return 0 or an RF_E* code
 * and fill rf_err with one line; no global state; no patient identifiers in
 * messages or outputs.
 */
#ifndef RADFUSE_EVAL_H
#define RADFUSE_EVAL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "radfuse/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- metrics ------------------------------------------------------------ */

/* AUROC of scores against labels (1 positive, 0 negative; n rows). NaN when
 * either class is missing or a score is NaN. */
double rf_eval_auroc(const double *score, const int *label, size_t n);

/* Average precision (sklearn's average_precision_score). NaN without a
 * positive or with a NaN score. */
double rf_eval_auprc(const double *score, const int *label, size_t n);

/* A seeded generator (xoshiro256**, state from splitmix64 of the seed), so
 * that the same seed gives the same resamples everywhere. */
typedef struct rf_eval_rng {
    uint64_t s[4];
} rf_eval_rng;

void rf_eval_rng_seed(rf_eval_rng *r, uint64_t seed);
uint64_t rf_eval_rng_next(rf_eval_rng *r);
/* Uniform in [0, n): the high 64 bits of next * n (n >= 1). */
uint64_t rf_eval_rng_below(rf_eval_rng *r, uint64_t n);

/* A bootstrap interval and how many resamples it rests on. */
typedef struct rf_eval_ci {
    double lo, hi;  /* NaN when no resample had both classes */
    int resamples;  /* asked for */
    int used;       /* with both classes (the others are skipped) */
} rf_eval_ci;

/*
 * Percentile bootstrap interval of AUROC at level (e.g. 0.95): each of
 * resamples draws, with rf_eval_rng_below, as many groups as there are with
 * replacement and takes every row of each drawn group (group[i] >= 0 names
 * row i's group, e.g. its patient; group NULL: every row its own group, drawn
 * in row order). Resamples with one class are skipped. lo and hi are the
 * (1 - level) / 2 and (1 + level) / 2 quantiles of the AUROCs of the used
 * resamples, interpolated linearly (numpy's default percentile).
 * RF_EINVAL for bad arguments, RF_ENOMEM.
 */
int rf_eval_auroc_ci(const double *score, const int *label, const int *group, size_t n, int resamples,
                     uint64_t seed, double level, rf_eval_ci *out, rf_err *err);

/* The same for AUROC(a) - AUROC(b) of two scores of the same rows (paired:
 * each resample scores both; the same seed draws the same resamples as
 * rf_eval_auroc_ci). */
int rf_eval_auroc_diff_ci(const double *a, const double *b, const int *label, const int *group, size_t n,
                          int resamples, uint64_t seed, double level, rf_eval_ci *out, rf_err *err);

/* One bin of a reliability table: probabilities in (lo, hi] (the first bin
 * also takes 0), how many, their mean, and the fraction positive. */
typedef struct rf_eval_bin {
    double lo, hi;
    long count;
    double confidence; /* mean probability; 0 when empty */
    double accuracy;   /* fraction of positives; 0 when empty */
} rf_eval_bin;

#define RF_EVAL_BINS 10

/* Expected calibration error over RF_EVAL_BINS equal-width bins of [0, 1]
 * (edges k / 10 as numpy's linspace makes them; a probability on an edge
 * goes to the lower bin, as sklearn's calibration_curve bins):
 * sum over bins of count / n * |accuracy - confidence|. bins may be NULL;
 * else it gets RF_EVAL_BINS entries. NaN for n = 0 or a probability outside
 * [0, 1] or NaN. */
double rf_eval_ece(const double *prob, const int *label, size_t n, rf_eval_bin *bins);

/* Counts at a threshold: positive call when prob >= threshold. */
typedef struct rf_eval_confusion {
    long tp, fp, tn, fn;
    double sensitivity; /* tp / (tp + fn); NaN without positives */
    double specificity; /* tn / (tn + fp); NaN without negatives */
} rf_eval_confusion;

void rf_eval_confusion_at(const double *prob, const int *label, size_t n, double threshold, rf_eval_confusion *out);

/* ---- the runner ------------------------------------------------------------ */

struct rf_fusion;
struct rf_dataset;

/* The input sets a row is read with: every input, each input alone (the
 * others given as the model's absent tokens), and with --mask-findings every
 * input and the note alone with the findings' names masked. */
typedef enum rf_eval_input {
    RF_EVAL_FUSED = 0,
    RF_EVAL_IMAGE,
    RF_EVAL_TEXT,
    RF_EVAL_LABS,
    RF_EVAL_FUSED_MASKED,
    RF_EVAL_TEXT_MASKED,
    RF_EVAL_INPUT_COUNT
} rf_eval_input;

/* "fused", "image", "text", "labs", "fused_masked", "text_masked". */
const char *rf_eval_input_name(rf_eval_input in);

/*
 * A dataset image file (JPEG or PNG, told by its signature) rendered as
 * `radfuse read` renders the same samples stored as a DICOM image (what
 * `radfuse dataset study` writes): grayscale x as x / (2^bits - 1) (the
 * study maker's identity window), color over its range; out->pixels is
 * malloc'd (free it), in [0, 1].
 * Errors name the file: missing, over 64 MiB, neither format, undecodable.
 */
struct rf_read_image;
int rf_eval_image_load(const char *path, struct rf_read_image *out, rf_err *err);

/*
 * The note with the findings' names replaced by "[MASK]": case-insensitive
 * whole-word matches (a space in a term matches any run of white space, the
 * longest term wins) of the fixed diagnosis terms docs/eval.md lists (covid,
 * covid-19, sars-cov-2, coronavirus, pneumonia, ards, the pathogens of the
 * covid-chestxray findings, ...) and of extra[nextra] (rf_eval_run passes
 * the codes and display names of the model's labels for the dataset's
 * finding targets; terms shorter than 2 bytes are ignored). *out is
 * malloc'd and NUL-terminated;
 * *masked (may be NULL) gets the number of replacements.
 */
int rf_eval_mask_findings(const char *text, size_t len, const char *const *extra, int nextra, char **out,
                          size_t *out_len, int *masked, rf_err *err);
/* The fixed terms, NULL-terminated. */
const char *const *rf_eval_mask_terms(void);

typedef struct rf_eval_opts {
    const char *split_file;  /* patientid,split CSV (datasets.h); NULL: the layout's split file of
                                datasets/splits/ as built in (covid-chestxray), else the source's
                                published split where the layout has one, else rf_dataset_split's
                                default */
    int subset;              /* rf_split: RF_SPLIT_VAL, RF_SPLIT_TEST, RF_SPLIT_TRAIN, or RF_SPLIT_NONE for every row */
    long limit;              /* the first limit rows of the subset (dataset order); 0: all */
    int bootstrap;           /* resamples of the intervals; 0: no intervals */
    uint64_t seed;
    int mask_findings;       /* also read with the findings' names masked out of the notes */
    int threads;             /* preprocessing threads; 0: one per core */
    /* saliency against lung boxes (datasets/eval_saliency.c): the method
     * (rf_saliency_method; 0: none) and the boxes; rows positive for a
     * finding target and with boxes get the maps `radfuse read` makes */
    int saliency;
    const struct rf_eval_boxes *boxes;
    /* called after every row (may be NULL): rows done of total */
    void (*progress)(void *ctx, size_t done, size_t total);
    void *progress_ctx;
} rf_eval_opts;

/* Defaults: the val subset, no limit, 1000 resamples, seed 1, no masking. */
void rf_eval_opts_init(rf_eval_opts *o);

/* One evaluated target (a dataset target the model has a label for, with
 * both classes among the evaluated rows; unknown rows left out). */
typedef struct rf_eval_target {
    char *name;              /* the dataset's target name */
    int dataset_target, label; /* indices into the dataset's targets and the model's labels */
    int finding;             /* 1 a finding target, 0 an outcome */
    long n, positives;
    double auroc, auprc, ece; /* of the fused input */
    rf_eval_ci ci;           /* of the fused AUROC */
    rf_eval_bin bins[RF_EVAL_BINS];
    double threshold;        /* the model's stored threshold */
    rf_eval_confusion at_threshold;
    double ablation[RF_EVAL_INPUT_COUNT]; /* AUROC per input set (NaN for sets not read) */
    rf_eval_ci ablation_ci[RF_EVAL_INPUT_COUNT];
    /* fused AUROC minus each set's, with its paired bootstrap interval (the
     * same patient resamples score both; NaN for fused itself and sets not read) */
    double fused_minus[RF_EVAL_INPUT_COUNT];
    rf_eval_ci fused_minus_ci[RF_EVAL_INPUT_COUNT];
} rf_eval_target;

/* A dataset target not evaluated, and why. */
typedef struct rf_eval_skipped {
    char *name;
    char *reason;
} rf_eval_skipped;

/* A row left out: its image could not be had. */
typedef struct rf_eval_failure {
    char *id;                /* the dataset's row id (an image name, never a patient key) */
    long line;               /* CSV line */
    char *error;             /* the reason, without the path */
} rf_eval_failure;

/* ---- saliency against lung boxes (datasets/eval_saliency.c) ---- */

/* A box in an image's pixels: columns [x, x + w), rows [y, y + h). */
typedef struct rf_eval_box {
    double x, y, w, h;
} rf_eval_box;

typedef struct rf_eval_boxes_image {
    char *file_name;
    int width, height;       /* the grid the boxes are given on */
    rf_eval_box *boxes;
    int nboxes;
} rf_eval_boxes_image;

typedef struct rf_eval_boxes {
    rf_eval_boxes_image *images; /* sorted by file_name; those without a box are dropped */
    size_t count;
} rf_eval_boxes;

/*
 * Boxes of a COCO json file (images: id, file_name, width, height;
 * annotations: image_id, bbox [x, y, w, h]; every category counts, e.g. the
 * right and the left lung). Refused with one line naming the file: not a
 * JSON object (or text after it), over 64 MiB, a missing or mistyped field,
 * a width or height not in [1, 65535], a box not of four finite numbers with
 * w, h >= 0, an annotation of an unknown image, two images of one id or one
 * file name, a file name with a '/' or a control byte.
 */
int rf_eval_boxes_load(const char *path, rf_eval_boxes *out, rf_err *err);
int rf_eval_boxes_parse(const char *name, const char *text, size_t len, rf_eval_boxes *out, rf_err *err);
void rf_eval_boxes_free(rf_eval_boxes *b);
/* The image of that file name, or NULL. */
const rf_eval_boxes_image *rf_eval_boxes_find(const rf_eval_boxes *b, const char *file_name);

/*
 * The union of an image's boxes on a rows x cols grid: mask[r * cols + c]
 * is 1 when the pixel's centre (c + 0.5, r + 0.5), taken to the boxes' grid
 * (scaled by width / cols and height / rows), lies in a box. Returns the
 * number of pixels inside. (Integer boxes on their own grid: a box covers
 * w * h pixels.)
 */
size_t rf_eval_boxes_mask(const rf_eval_boxes_image *im, int rows, int cols, unsigned char *mask);

/*
 * The fraction of a map's mass inside mask (sum of values inside over the
 * sum of all values, negatives as 0; NaN for an all-zero map), and whether
 * its peak lies inside (*hit).
 */
double rf_eval_mass_inside(const float *map, const unsigned char *mask, int rows, int cols, int peak_row,
                           int peak_col, int *hit);

/* Percentile bootstrap interval of the mean of v (n rows) resampling
 * groups as rf_eval_auroc_ci does (the same draws for the same seed and
 * groups); used counts the resamples (all). */
int rf_eval_mean_ci(const double *v, const int *group, size_t n, int resamples, uint64_t seed, double level,
                    rf_eval_ci *out, rf_err *err);

/* One finding target's saliency figures over its positive rows with boxes
 * (rows with an all-zero map are counted in empty and left out). */
typedef struct rf_eval_saliency_target {
    char *name;
    int label;
    long n, empty;
    long patients;                       /* distinct patients of the n rows */
    double mass_inside, uniform_mass;    /* means over the rows */
    double pointing, uniform_pointing;   /* hit rate; the box area fraction */
    rf_eval_ci mass_ci, pointing_ci;     /* bootstrap by patient */
    double excess;                       /* mass_inside - uniform_mass */
    rf_eval_ci excess_ci;                /* paired: the same resamples */
} rf_eval_saliency_target;

typedef struct rf_eval_saliency {
    int method;              /* rf_saliency_method; 0: not asked */
    size_t rows_with_boxes;  /* used rows with boxes */
    size_t rows_mapped;      /* of those, positive for a finding target: the maps made */
    size_t rows_rescaled;    /* boxes given on another grid than the image's */
    /* per used row (r->rows_used): the uniform share (NaN: no map made), and
     * per label the mass inside and the peak's hit (NaN / -1: none) */
    double *uniform;
    double *mass;
    signed char *hit;
    int ntargets;
    rf_eval_saliency_target *targets;
    rf_eval_saliency_target overall; /* every (target, row) pair pooled */
    double seconds;
} rf_eval_saliency;

typedef struct rf_eval_result {
    char *layout;            /* the dataset's layout name */
    char *split;             /* where the subset's sides came from: "file" (split_file), the built-in
                                file ("datasets/splits/covid-chestxray.csv"), "source", "hash", or
                                "all" (no subset) */
    int subset;              /* rf_split */
    size_t rows_total;       /* rows of the dataset */
    size_t rows_subset;      /* rows of the subset (before the limit) */
    size_t rows_read;        /* rows tried (after the limit) */
    size_t rows_used;        /* rows read through the model */
    size_t patients;         /* distinct patients among the used rows */
    size_t image_failures;   /* rows left out because their image failed */
    size_t nfailures;
    rf_eval_failure *failures;
    size_t note_failures;    /* notes that could not be read (rows read without a note) */
    size_t lab_failures;     /* rows whose labs could not be read (read without labs) */
    size_t with_note, with_labs; /* used rows with a usable note / with lab tokens */
    size_t masked_terms;     /* replacements made by masking, over every note */
    int bootstrap;
    uint64_t seed;
    int mask_findings;
    int ntargets;
    rf_eval_target *targets;
    int nskipped;
    rf_eval_skipped *skipped;
    double macro[RF_EVAL_INPUT_COUNT]; /* mean AUROC over the evaluated targets (NaN: none, or not read) */
    double macro_findings[RF_EVAL_INPUT_COUNT]; /* the same over the finding targets only */
    /* per used row: its dataset row, and probabilities [RF_EVAL_INPUT_COUNT][nlabels] */
    int nlabels;
    size_t *row;
    float *prob;
    double seconds;          /* wall time of the reading */
    rf_eval_saliency saliency; /* with opts->saliency */
} rf_eval_result;

/*
 * Reads the subset of ds (opts; NULL: defaults) through model: each row's
 * image file (rf_eval_image_load), note (rf_note_parse, then the text
 * encoder when rf_read_note_usable) and labs (rf_dataset_labs, lab tokens
 * against the row's study time as `radfuse read` of its dataset study takes
 * them) preprocessed as rf_read does (rf_read_preprocess), and
 * rf_fusion_forward once per input set; then the metrics per target. A
 * row whose image cannot be had is counted and listed, not fatal.
 * Fails on a bad split file or subset, or when no row could be read.
 * *out is zeroed first; free it with rf_eval_result_free, also on failure.
 */
int rf_eval_run(struct rf_fusion *model, const struct rf_dataset *ds, const rf_eval_opts *opts, rf_eval_result *out,
                rf_err *err);
void rf_eval_result_free(rf_eval_result *r);

/* The result as one JSON object (docs/eval.md; malloc'd, NUL-terminated). */
char *rf_eval_json(const rf_eval_result *r, const struct rf_fusion *model);
/* Every used row's probabilities as CSV, one line per row and input set
 * read: "id,input,<label code>..." (ids are the dataset's row ids, image
 * names, never patient keys). Malloc'd, NUL-terminated; NULL when out of
 * memory. */
char *rf_eval_predictions_csv(const rf_eval_result *r, const struct rf_fusion *model, const struct rf_dataset *ds);
/* The readable tables. */
void rf_eval_print(const rf_eval_result *r, const struct rf_fusion *model, FILE *f);

/* rf_eval_json's object (json) with "saliency" added (docs/eval.md);
 * malloc'd, NULL when out of memory or json is not an object. */
char *rf_eval_saliency_json(const rf_eval_result *r, const char *json);
/* The saliency table. */
void rf_eval_saliency_print(const rf_eval_result *r, FILE *f);

#ifdef __cplusplus
}
#endif
#endif
