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

#ifdef __cplusplus
}
#endif
#endif
