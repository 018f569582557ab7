/*
 * radfuse eval's metrics and runner.
 *
 * Metrics: every case of tests/data/eval_expected.json (sklearn's
 * roc_auc_score, average_precision_score, calibration_curve binning,
 * confusion_matrix, and a bootstrap with the same seeded generator written
 * again in Python, tests/data/make_eval_expected.py): AUROC and AUPRC within
 * 1e-9, ECE within 1e-12, counts exact.
 *
 * Runner: covid-chestxray rows through a small random model (see
 * runner_tests below).
 */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "radfuse/eval.h"
#include "testutil.h"

static double num_or_nan(const cJSON *o)
{
    return cJSON_IsNumber(o) ? o->valuedouble : NAN;
}

static int close_or_both_nan(double a, double b, double tol)
{
    return (isnan(a) && isnan(b)) || fabs(a - b) <= tol;
}

static void metrics_tests(void)
{
    char path[4096];
    const char *src = getenv("RADFUSE_SOURCE");
    snprintf(path, sizeof path, "%s/tests/data/eval_expected.json", src ? src : ".");
    size_t len;
    char *text = test_read_file(path, &len);
    CHECKF(text != NULL, "%s: cannot read (run tests/data/make_eval_expected.py)", path);
    if (!text)
        return;
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    CHECK(root != NULL);
    const cJSON *cases = cJSON_GetObjectItem(root, "cases");
    int ncases = 0, nboot = 0, nece = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases)
    {
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
        const cJSON *js = cJSON_GetObjectItem(c, "score"), *jy = cJSON_GetObjectItem(c, "label");
        size_t n = (size_t)cJSON_GetArraySize(js);
        double *s = test_dalloc((int64_t)n);
        int *y = test_xmalloc(n * sizeof *y);
        for (size_t i = 0; i < n; i++) {
            s[i] = cJSON_GetArrayItem(js, (int)i)->valuedouble;
            y[i] = cJSON_GetArrayItem(jy, (int)i)->valueint;
        }
        double a = rf_eval_auroc(s, y, n), ea = num_or_nan(cJSON_GetObjectItem(c, "auroc"));
        CHECKF(close_or_both_nan(a, ea, 1e-9), "%s: AUROC %.17g, sklearn %.17g", name, a, ea);
        double p = rf_eval_auprc(s, y, n), ep = num_or_nan(cJSON_GetObjectItem(c, "auprc"));
        CHECKF(close_or_both_nan(p, ep, 1e-9), "%s: AUPRC %.17g, sklearn %.17g", name, p, ep);

        const cJSON *je = cJSON_GetObjectItem(c, "ece");
        if (je) {
            rf_eval_bin bins[RF_EVAL_BINS];
            double e = rf_eval_ece(s, y, n, bins);
            CHECKF(fabs(e - je->valuedouble) <= 1e-12, "%s: ECE %.17g, expected %.17g", name, e, je->valuedouble);
            const cJSON *jb = cJSON_GetObjectItem(c, "bins");
            long total = 0;
            for (int k = 0; k < RF_EVAL_BINS; k++) {
                long cnt = (long)cJSON_GetArrayItem(cJSON_GetObjectItem(jb, "count"), k)->valuedouble;
                double conf = cJSON_GetArrayItem(cJSON_GetObjectItem(jb, "confidence"), k)->valuedouble;
                double acc = cJSON_GetArrayItem(cJSON_GetObjectItem(jb, "accuracy"), k)->valuedouble;
                CHECKF(bins[k].count == cnt, "%s: bin %d holds %ld, expected %ld", name, k, bins[k].count, cnt);
                CHECKF(fabs(bins[k].confidence - conf) <= 1e-12 && fabs(bins[k].accuracy - acc) <= 1e-12,
                       "%s: bin %d confidence %g accuracy %g, expected %g %g", name, k, bins[k].confidence,
                       bins[k].accuracy, conf, acc);
                CHECK(fabs(bins[k].lo - k / 10.0) < 1e-15 && fabs(bins[k].hi - (k + 1) / 10.0) < 1e-15);
                total += bins[k].count;
            }
            CHECK(total == (long)n);
            nece++;

            const cJSON *jc = cJSON_GetObjectItem(c, "confusion");
            rf_eval_confusion cm;
            rf_eval_confusion_at(s, y, n, cJSON_GetObjectItem(jc, "threshold")->valuedouble, &cm);
            long tp = cJSON_GetObjectItem(jc, "tp")->valueint, fp = cJSON_GetObjectItem(jc, "fp")->valueint;
            long tn = cJSON_GetObjectItem(jc, "tn")->valueint, fn = cJSON_GetObjectItem(jc, "fn")->valueint;
            CHECKF(cm.tp == tp && cm.fp == fp && cm.tn == tn && cm.fn == fn,
                   "%s: tp %ld fp %ld tn %ld fn %ld, expected %ld %ld %ld %ld", name, cm.tp, cm.fp, cm.tn, cm.fn, tp, fp,
                   tn, fn);
            CHECK(tp + fn == 0 ? isnan(cm.sensitivity) : cm.sensitivity == (double)tp / (double)(tp + fn));
            CHECK(tn + fp == 0 ? isnan(cm.specificity) : cm.specificity == (double)tn / (double)(tn + fp));
        }

        const cJSON *jboot = cJSON_GetObjectItem(c, "bootstrap");
        if (jboot) {
            const cJSON *jg = cJSON_GetObjectItem(jboot, "groups");
            int *g = NULL;
            if (cJSON_IsArray(jg)) {
                g = test_xmalloc(n * sizeof *g);
                for (size_t i = 0; i < n; i++)
                    g[i] = cJSON_GetArrayItem(jg, (int)i)->valueint;
            }
            rf_eval_ci ci;
            rf_err err;
            int R = cJSON_GetObjectItem(jboot, "resamples")->valueint;
            uint64_t seed = (uint64_t)cJSON_GetObjectItem(jboot, "seed")->valuedouble;
            int rc = rf_eval_auroc_ci(s, y, g, n, R, seed, 0.95, &ci, &err);
            CHECKF(rc == 0, "%s: %s", name, err.msg);
            int used = cJSON_GetObjectItem(jboot, "used")->valueint;
            double lo = num_or_nan(cJSON_GetObjectItem(jboot, "lo")), hi = num_or_nan(cJSON_GetObjectItem(jboot, "hi"));
            CHECKF(ci.used == used && ci.resamples == R, "%s: %d of %d resamples used, expected %d", name, ci.used, R,
                   used);
            CHECKF(close_or_both_nan(ci.lo, lo, 1e-9) && close_or_both_nan(ci.hi, hi, 1e-9),
                   "%s: interval [%.17g, %.17g], expected [%.17g, %.17g]", name, ci.lo, ci.hi, lo, hi);
            if (!isnan(a))
                CHECK(ci.lo <= ci.hi);
            free(g);
            nboot++;
        }
        free(s);
        free(y);
        ncases++;
    }
    cJSON_Delete(root);
    CHECK(ncases >= 12 && nboot >= 4 && nece >= 10);

    /* refusals and NaN scores */
    double s3[3] = {0.1, NAN, 0.3};
    int y3[3] = {0, 1, 1};
    rf_eval_ci ci;
    rf_err err;
    CHECK(isnan(rf_eval_auroc(s3, y3, 3)) && isnan(rf_eval_auprc(s3, y3, 3)));
    CHECK(rf_eval_auroc_ci(s3, y3, NULL, 3, 10, 1, 0.95, &ci, &err) == RF_EINVAL);
    CHECK(strstr(err.msg, "row 1") != NULL);
    s3[1] = 0.2;
    CHECK(rf_eval_auroc_ci(s3, y3, NULL, 3, 0, 1, 0.95, &ci, &err) == RF_EINVAL);
    CHECK(rf_eval_auroc_ci(s3, y3, NULL, 3, 10, 1, 1.0, &ci, &err) == RF_EINVAL);
    double bad[2] = {0.5, 1.5};
    CHECK(isnan(rf_eval_ece(bad, y3, 2, NULL)));
    CHECK(isnan(rf_eval_ece(bad, y3, 0, NULL)));
    /* the same seed gives the same interval; another seed another one */
    double s8[8] = {0.1, 0.4, 0.35, 0.8, 0.7, 0.2, 0.9, 0.5};
    int y8[8] = {0, 0, 1, 1, 1, 0, 1, 0};
    rf_eval_ci c1, c2, c3;
    CHECK(rf_eval_auroc_ci(s8, y8, NULL, 8, 100, 9, 0.95, &c1, &err) == 0);
    CHECK(rf_eval_auroc_ci(s8, y8, NULL, 8, 100, 9, 0.95, &c2, &err) == 0);
    CHECK(rf_eval_auroc_ci(s8, y8, NULL, 8, 100, 10, 0.95, &c3, &err) == 0);
    CHECK(c1.lo == c2.lo && c1.hi == c2.hi && c1.used == c2.used);
    CHECK(c1.lo != c3.lo || c1.hi != c3.hi || c1.used != c3.used);
}

int main(void)
{
    metrics_tests();
    return test_finish("test_eval");
}
