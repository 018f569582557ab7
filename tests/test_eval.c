/*
 * radfuse eval's metrics and runner.
 *
 * Metrics: every case of tests/data/eval_expected.json (sklearn's
 * roc_auc_score, average_precision_score, calibration_curve binning,
 * confusion_matrix, and a bootstrap with the same seeded generator written
 * again in Python, tests/data/make_eval_expected.py): AUROC and AUPRC within
 * 1e-9, ECE within 1e-12, counts exact.
 *
 * Masking: fixed sentences with the expected output.
 *
 * Images: a covid-chestxray JPEG rendered exactly as rf_read renders the
 * DICOM study `radfuse dataset study` makes of it; the same values as 8-bit
 * and 16-bit grayscale PNG and as RGB PNG; bad files named in the error.
 *
 * Runner: covid-chestxray rows (three chosen patients, through a split file)
 * through a small random model. For each row: the fused probabilities equal
 * rf_read of the row's dataset study with its note and labs; image-only
 * equals rf_read of the study alone; text-only equals a forward with only
 * note.txt's encoding; labs-only equals a forward with only labs.csv's tokens
 * at the study's time; masking changes the text-only answer where it masked
 * something. The subset, counts, metrics ranges and JSON keys are checked.
 */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_maker.h"
#include "radfuse/datasets.h"
#include "radfuse/eval.h"
#include "radfuse/fusion.h"
#include "radfuse/read.h"
#include "report/report.h"
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
    int ncases = 0, nboot = 0, nece = 0, ndiff = 0;
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
            const cJSON *jd = cJSON_GetObjectItem(c, "bootstrap_diff");
            if (jd) {
                const cJSON *jo = cJSON_GetObjectItem(jd, "other");
                double *o = test_dalloc((int64_t)n);
                for (size_t i = 0; i < n; i++)
                    o[i] = cJSON_GetArrayItem(jo, (int)i)->valuedouble;
                rc = rf_eval_auroc_diff_ci(s, o, y, g, n, R, seed, 0.95, &ci, &err);
                CHECKF(rc == 0, "%s: %s", name, err.msg);
                used = cJSON_GetObjectItem(jd, "used")->valueint;
                lo = num_or_nan(cJSON_GetObjectItem(jd, "lo"));
                hi = num_or_nan(cJSON_GetObjectItem(jd, "hi"));
                CHECKF(ci.used == used && close_or_both_nan(ci.lo, lo, 1e-9) && close_or_both_nan(ci.hi, hi, 1e-9),
                       "%s: difference interval [%.17g, %.17g] of %d, expected [%.17g, %.17g] of %d", name, ci.lo,
                       ci.hi, ci.used, lo, hi, used);
                /* a score against itself: every resample's difference is 0 */
                CHECK(rf_eval_auroc_diff_ci(s, s, y, g, n, R, seed, 0.95, &ci, &err) == 0 && ci.lo == 0 && ci.hi == 0);
                free(o);
                ndiff++;
            }
            free(g);
            nboot++;
        }
        free(s);
        free(y);
        ncases++;
    }
    cJSON_Delete(root);
    CHECK(ncases >= 12 && nboot >= 4 && nece >= 10 && ndiff == 2);

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

/* ---- masking ---- */

static void mask_case(const char *in, const char *const *extra, int nextra, const char *want, int want_count)
{
    char *out;
    size_t len;
    int count;
    rf_err err;
    int rc = rf_eval_mask_findings(in, strlen(in), extra, nextra, &out, &len, &count, &err);
    CHECK(rc == 0);
    if (rc)
        return;
    CHECKF(!strcmp(out, want) && len == strlen(want) && count == want_count, "'%s' -> '%s' (%d), expected '%s' (%d)",
           in, out, count, want, want_count);
    free(out);
}

static void mask_tests(void)
{
    mask_case("Patient with COVID-19 pneumonia and ARDS; SARS-CoV-2 PCR positive. Coronavirus.", NULL, 0,
              "Patient with [MASK] [MASK] and [MASK]; [MASK] PCR positive. [MASK].", 5);
    mask_case("covid19, Covid 19 and covid-2019 but noncovid and covidX", NULL, 0,
              "[MASK], [MASK] and [MASK] but noncovid and covidX", 3);
    mask_case("Fluid in the lungs; flu-like illness; Influenza A; E. coli and e.coli", NULL, 0,
              "Fluid in the lungs; [MASK]-like illness; [MASK] A; [MASK] and [MASK]", 4);
    mask_case("acute   respiratory distress\nsyndrome", NULL, 0, "[MASK]", 1);
    const char *extra[] = {"pleural_effusion", "Pleural effusion", "x"};
    mask_case("Left pleural effusion, Pleural-effusion; effusion alone.", extra, 3,
              "Left [MASK], [MASK]; effusion alone.", 2);
    mask_case("caf\xc3\xa9" "covid covid\xc3\xa9 covid", NULL, 0, "caf\xc3\xa9" "covid covid\xc3\xa9 [MASK]", 1);
    mask_case("", NULL, 0, "", 0);
    const char *const *terms = rf_eval_mask_terms();
    int n = 0, seen_cov = 0;
    for (; terms[n]; n++)
        seen_cov |= !strcmp(terms[n], "sars-cov-2");
    CHECK(n > 40 && seen_cov);
}

/* ---- images ---- */

static const char *covid_dir(char *buf, size_t n)
{
    snprintf(buf, n, "%s/data/covid-chestxray", test_shared_dir());
    return buf;
}

static void write_png(const char *path, const uint8_t *px, int w, int h, int channels, int bits)
{
    rf_buf b = {0};
    rf_err err;
    if (rf_png_encode(px, w, h, channels, bits, &b, &err)) {
        fprintf(stderr, "test_eval: %s\n", err.msg);
        exit(1);
    }
    test_write_file(path, b.p, b.n);
    rf_buf_free(&b);
}

static void image_tests(const char *tmp)
{
    char data[4096], study[4200], jpg[8400];
    covid_dir(data, sizeof data);
    rf_dataset_study_info info;
    rf_err err;
    snprintf(study, sizeof study, "%s/img-study", tmp);
    if (rf_dataset_study(data, 174, NULL, study, &info, &err)) {
        fprintf(stderr, "test_eval: %s\n", err.msg);
        exit(1);
    }
    /* the row's JPEG, as the dataset study names it in ATTRIBUTION.txt */
    char attr[4400];
    snprintf(attr, sizeof attr, "%s/ATTRIBUTION.txt", study);
    char *a = test_read_file(attr, NULL);
    CHECK(a && !strncmp(a, "Image: ", 7));
    if (!a)
        return;
    a[strcspn(a, "\n")] = 0;
    snprintf(jpg, sizeof jpg, "%s/images/%s", data, a + 7);
    free(a);

    rf_read_image im;
    int rc = rf_eval_image_load(jpg, &im, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc)
        return;
    CHECK(im.rows == info.rows && im.cols == info.cols && im.channels == 1);

    /* what rf_read renders from the study's DICOM image */
    char dcm[4400];
    snprintf(dcm, sizeof dcm, "%s/%s", study, info.dicom);
    const char *paths[] = {dcm};
    rf_read_image_rules rules = {4, 0, NULL};
    rf_read_result r;
    memset(&r, 0, sizeof r);
    rf_read_images imgs = {0};
    rc = rf_read_study_images(paths, 1, NULL, 0, &rules, 0, &r, &imgs, &err);
    CHECKF(rc == 0 && imgs.count == 1, "%s", rc ? err.msg : "count");
    if (!rc && imgs.count == 1) {
        const rf_read_image *ri = &imgs.images[0];
        CHECK(ri->rows == im.rows && ri->cols == im.cols && ri->channels == 1);
        if (ri->rows == im.rows && ri->cols == im.cols)
            CHECKF(!memcmp(ri->pixels, im.pixels, (size_t)im.rows * (size_t)im.cols * sizeof(float)),
                   "JPEG rendered unlike its DICOM study: max diff %g",
                   test_max_abs_diff(ri->pixels, im.pixels, (int64_t)im.rows * im.cols));
    }
    rf_read_images_free(&imgs);
    rf_result_free(&r);
    free(im.pixels);

    /* the same values as PNG: 8-bit gray (v / 255), 16-bit gray (v * 257 /
     * 65535, the same to float rounding), RGB (each channel v / 255) */
    int w = 97, h = 61;
    uint8_t *g8 = test_xmalloc((size_t)w * h), *g16 = test_xmalloc((size_t)w * h * 2), *rgb = test_xmalloc((size_t)w * h * 3);
    for (int i = 0; i < w * h; i++) {
        uint8_t v = (uint8_t)((i * 37 + (i / w) * 11) % 256);
        g8[i] = v;
        g16[2 * i] = v, g16[2 * i + 1] = v; /* big-endian v * 257 */
        rgb[3 * i] = v, rgb[3 * i + 1] = (uint8_t)(255 - v), rgb[3 * i + 2] = (uint8_t)(v / 2);
    }
    char p8[4200], p16[4200], prgb[4200], pbad[4200], pmissing[4200];
    snprintf(p8, sizeof p8, "%s/g8.png", tmp);
    snprintf(p16, sizeof p16, "%s/g16.png", tmp);
    snprintf(prgb, sizeof prgb, "%s/rgb.png", tmp);
    write_png(p8, g8, w, h, 1, 8);
    write_png(p16, g16, w, h, 1, 16);
    write_png(prgb, rgb, w, h, 3, 8);
    rf_read_image i8, i16, irgb;
    CHECK(rf_eval_image_load(p8, &i8, &err) == 0 && i8.channels == 1 && i8.rows == h && i8.cols == w);
    CHECK(rf_eval_image_load(p16, &i16, &err) == 0 && i16.channels == 1 && i16.rows == h && i16.cols == w);
    CHECK(rf_eval_image_load(prgb, &irgb, &err) == 0 && irgb.channels == 3);
    if (i8.pixels && i16.pixels) {
        double d = test_max_abs_diff(i8.pixels, i16.pixels, (int64_t)w * h);
        CHECKF(d < 1e-6, "8-bit and 16-bit PNG differ by %g", d);
        int ok = 1; /* the study maker's identity window: v / 255 */
        for (int i = 0; i < w * h; i++)
            ok &= fabsf(i8.pixels[i] - g8[i] / 255.0f) < 1e-6f;
        CHECK(ok);
    }
    if (irgb.pixels) {
        int ok = 1;
        for (int i = 0; i < w * h * 3; i++)
            ok &= fabsf(irgb.pixels[i] - rgb[i] / 255.0f) < 1e-6f;
        CHECK(ok);
    }
    free(i8.pixels);
    free(i16.pixels);
    free(irgb.pixels);
    free(g8);
    free(g16);
    free(rgb);
    snprintf(pbad, sizeof pbad, "%s/bad.jpg", tmp);
    test_write_file(pbad, "\xff\xd8\xff\xe0garbage", 11);
    CHECK(rf_eval_image_load(pbad, &im, &err) == RF_EFORMAT && strstr(err.msg, pbad) && strstr(err.msg, "JPEG"));
    test_write_file(pbad, "GIF89a....", 10);
    CHECK(rf_eval_image_load(pbad, &im, &err) == RF_EFORMAT && strstr(err.msg, "neither a JPEG nor a PNG"));
    snprintf(pmissing, sizeof pmissing, "%s/missing.png", tmp);
    CHECK(rf_eval_image_load(pmissing, &im, &err) != 0 && strstr(err.msg, pmissing));
    free(im.pixels);
}

/* ---- the runner ---- */

/* COVID-19 with a note and five labs; COVID-19 with a note; COVID-19 with
 * neither; no finding with a note; Klebsiella with a note and labs */
static const long ROWS[] = {174, 0, 20, 248, 336};
#define NROWS (sizeof ROWS / sizeof *ROWS)

static double finding_prob(const rf_read_result *r, const char *code)
{
    for (size_t k = 0; k < r->nfindings; k++)
        if (!strcmp(r->findings[k].code, code))
            return r->findings[k].probability;
    return NAN;
}

/* One forward with only the given inputs. */
static void forward_only(rf_fusion *m, const rf_text_encoding *note, const rf_lab_token *labs, size_t nlabs,
                         float *probs)
{
    const rf_fusion_info *info = rf_fusion_get_info(m);
    rf_fusion_study s = {.height = info->preprocess.height, .width = info->preprocess.width};
    s.notes = note;
    s.nnotes = note ? 1 : 0;
    s.labs = labs;
    s.nlabs = nlabs;
    rf_fusion_output fo;
    rf_err err;
    int rc = rf_fusion_forward(m, &s, &fo, &err);
    CHECKF(rc == 0, "%s", err.msg);
    for (int k = 0; k < info->nlabels; k++)
        probs[k] = rc ? NAN : fo.probabilities[k];
    rf_fusion_output_free(&fo);
}

static void check_row(rf_fusion *m, const rf_eval_result *r, size_t u, long row, const char *tmp)
{
    const rf_fusion_info *info = rf_fusion_get_info(m);
    char data[4096], dir[4200], dcm[4400], note[4400], labs[4400];
    covid_dir(data, sizeof data);
    snprintf(dir, sizeof dir, "%s/row%ld", tmp, row);
    rf_dataset_study_info si;
    rf_err err;
    if (rf_dataset_study(data, row, NULL, dir, &si, &err)) {
        CHECKF(0, "%s", err.msg);
        return;
    }
    snprintf(dcm, sizeof dcm, "%s/%s", dir, si.dicom);
    snprintf(note, sizeof note, "%s/note.txt", dir);
    snprintf(labs, sizeof labs, "%s/labs.csv", dir);
    const char *study[] = {dcm}, *notes[] = {note}, *labfiles[] = {labs};
    const float *p = r->prob + u * RF_EVAL_INPUT_COUNT * (size_t)r->nlabels;
    int K = r->nlabels;

    rf_read_request full = {.study = study, .nstudy = 1, .notes = notes, .nnotes = si.has_note, .labs = labfiles,
                            .nlabs = si.nlabs > 0, .saliency = "none"};
    rf_read_request alone = {.study = study, .nstudy = 1, .saliency = "none"};
    rf_read_result rr;
    int rc = rf_read(m, &full, &rr, &err);
    CHECKF(rc == 0, "row %ld: %s", row, err.msg);
    double dmax = 0;
    for (int k = 0; !rc && k < K; k++)
        dmax = fmax(dmax, fabs(finding_prob(&rr, info->labels[k].code) - p[RF_EVAL_FUSED * K + k]));
    CHECKF(!rc && dmax < 1e-6, "row %ld: fused differs from radfuse read by %g", row, dmax);
    CHECK(rc || rr.inputs_used[RF_MODALITY_TEXT] == si.has_note);
    CHECK(rc || rr.inputs_used[RF_MODALITY_LABS] == (si.nlabs > 0));
    rf_result_free(&rr);
    rc = rf_read(m, &alone, &rr, &err);
    dmax = 0;
    for (int k = 0; !rc && k < K; k++)
        dmax = fmax(dmax, fabs(finding_prob(&rr, info->labels[k].code) - p[RF_EVAL_IMAGE * K + k]));
    CHECKF(!rc && dmax < 1e-6, "row %ld: image-only differs from a read of the image alone by %g", row, dmax);
    rf_result_free(&rr);

    /* text alone: note.txt as rf_read reads it */
    float *q = test_falloc(K);
    rf_labs nl = {0};
    rf_text_encoding enc;
    int have_note = si.has_note && rf_note_read_file(note, "note", &nl, &err) == 0;
    CHECK(have_note == si.has_note);
    if (have_note) {
        CHECK(rf_fusion_encode_note(m, nl.notes[0].text, nl.notes[0].len, &enc, &err) == 0);
        forward_only(m, &enc, NULL, 0, q);
        rf_text_encoding_free(&enc);
    } else {
        forward_only(m, NULL, NULL, 0, q);
    }
    CHECKF(test_max_abs_diff(q, p + RF_EVAL_TEXT * K, K) < 1e-6, "row %ld: text-only differs by %g", row,
           test_max_abs_diff(q, p + RF_EVAL_TEXT * K, K));
    if (r->mask_findings && have_note) {
        char *masked;
        size_t ml;
        int count;
        CHECK(rf_eval_mask_findings(nl.notes[0].text, nl.notes[0].len, NULL, 0, &masked, &ml, &count, &err) == 0);
        if (count)
            CHECKF(test_max_abs_diff(p + RF_EVAL_TEXT_MASKED * K, p + RF_EVAL_TEXT * K, K) > 1e-7,
                   "row %ld: masking %d terms changed nothing", row, count);
        free(masked);
    }
    rf_labs_free(&nl);

    /* labs alone: labs.csv's tokens at the study's date, 12:00 */
    rf_labs ll = {0};
    rf_lab_token *tok = NULL;
    size_t ntok = 0;
    if (si.nlabs) {
        rf_time ref;
        CHECK(rf_labs_read_file(labs, RF_LABS_AUTO, &ll, &err) == 0);
        CHECK(rf_read_study_time(si.study_date, "120000", &ref) == 0);
        CHECK(rf_lab_tokens(&ll, &ref, &tok, &ntok, &err) == 0);
        CHECK(ntok > 0);
    }
    forward_only(m, NULL, tok, ntok, q);
    CHECKF(test_max_abs_diff(q, p + RF_EVAL_LABS * K, K) < 1e-6, "row %ld: labs-only differs by %g", row,
           test_max_abs_diff(q, p + RF_EVAL_LABS * K, K));
    free(tok);
    rf_labs_free(&ll);
    free(q);
}

static void runner_tests(const char *tmp)
{
    char data[4096], mdir[4096], split[4200];
    covid_dir(data, sizeof data);
    rf_err err;
    rf_dataset *ds;
    if (rf_dataset_open(&ds, data, RF_DATASET_COVID, &err)) {
        fprintf(stderr, "test_eval: %s\n", err.msg);
        exit(1);
    }
    /* a split file: the three rows' patients are the test side, everyone else train */
    size_t N = rf_dataset_count(ds);
    const char *pat[NROWS];
    for (size_t j = 0; j < NROWS; j++)
        pat[j] = rf_dataset_get(ds, (size_t)ROWS[j])->patient;
    snprintf(split, sizeof split, "%s/split.csv", tmp);
    FILE *f = fopen(split, "w");
    fprintf(f, "patientid,split\n");
    size_t expect = 0;
    for (size_t i = 0; i < N; i++) {
        const char *p = rf_dataset_get(ds, i)->patient;
        int test = 0, first = 1;
        for (size_t j = 0; j < NROWS; j++)
            test |= !strcmp(p, pat[j]);
        for (size_t k = 0; k < i && first; k++)
            first = strcmp(rf_dataset_get(ds, k)->patient, p) != 0;
        expect += test;
        if (first)
            fprintf(f, "%s,%s\n", p, test ? "test" : "train");
    }
    fclose(f);

    test_make_model_tmp(mdir, sizeof mdir, NULL);
    rf_backend *be;
    rf_fusion *m;
    if (rf_backend_create(&be, "cpu", 2, &err) || rf_fusion_load(&m, mdir, be, &err)) {
        fprintf(stderr, "test_eval: %s\n", err.msg);
        exit(1);
    }
    rf_eval_opts o;
    rf_eval_opts_init(&o);
    o.split_file = split;
    o.subset = RF_SPLIT_TEST;
    o.bootstrap = 100;
    o.mask_findings = 1;
    rf_eval_result r;
    int rc = rf_eval_run(m, ds, &o, &r, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (!rc) {
        CHECKF(r.rows_subset == expect && r.rows_read == expect && r.rows_used == expect,
               "%zu/%zu/%zu rows, expected %zu", r.rows_subset, r.rows_read, r.rows_used, expect);
        CHECK(r.patients == NROWS && r.image_failures == 0 && !strcmp(r.split, "file"));
        CHECK(r.masked_terms > 0 && r.with_note >= 2 && r.with_labs >= 1);
        int checked = 0;
        for (size_t u = 0; u < r.rows_used; u++)
            for (size_t j = 0; j < NROWS; j++)
                if ((long)r.row[u] == ROWS[j]) {
                    check_row(m, &r, u, ROWS[j], tmp);
                    checked++;
                }
        CHECK(checked == (int)NROWS);
        /* per target: counts over the rows' own targets, metrics in range */
        for (int k = 0; k < r.ntargets; k++) {
            const rf_eval_target *t = &r.targets[k];
            long n = 0, pos = 0;
            for (size_t u = 0; u < r.rows_used; u++) {
                int v = rf_dataset_get(ds, r.row[u])->targets[t->dataset_target];
                n += v != RF_TARGET_UNKNOWN;
                pos += v == RF_TARGET_POS;
            }
            CHECK(t->n == n && t->positives == pos && pos > 0 && pos < n);
            for (int s = 0; s < RF_EVAL_INPUT_COUNT; s++)
                CHECK(t->ablation[s] >= 0 && t->ablation[s] <= 1);
            CHECK(t->auroc == t->ablation[RF_EVAL_FUSED] && t->ece >= 0 && t->ece <= 1);
            CHECK(isnan(t->fused_minus[RF_EVAL_FUSED]));
            for (int s = 1; s < RF_EVAL_INPUT_COUNT; s++)
                CHECK(fabs(t->fused_minus[s] - (t->auroc - t->ablation[s])) < 1e-12 &&
                      t->fused_minus_ci[s].lo <= t->fused_minus_ci[s].hi && t->fused_minus_ci[s].used > 0);
            CHECK(t->ci.used > 0 && t->ci.lo <= t->ci.hi);
            CHECK(t->at_threshold.tp + t->at_threshold.fn == pos);
        }
        char *json = rf_eval_json(&r, m);
        cJSON *root = cJSON_Parse(json);
        free(json);
        CHECK(root != NULL);
        const cJSON *targets = cJSON_GetObjectItem(root, "targets"), *macro = cJSON_GetObjectItem(root, "macro_auroc");
        CHECK(cJSON_GetArraySize(targets) == r.ntargets);
        const char *sets[] = {"image", "text", "labs", "fused", "fused_masked", "text_masked"};
        for (int i = 0; i < 6; i++)
            CHECK(cJSON_IsNumber(cJSON_GetObjectItem(macro, sets[i])));
        const cJSON *t;
        cJSON_ArrayForEach(t, targets)
        {
            const char *keys[] = {"n", "positives", "auroc", "ece"};
            for (int i = 0; i < 4; i++)
                CHECK(cJSON_IsNumber(cJSON_GetObjectItem(t, keys[i])));
            CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(t, "auroc_ci")) == 2);
            for (int i = 0; i < 4; i++)
                CHECK(cJSON_IsNumber(cJSON_GetObjectItem(cJSON_GetObjectItem(t, "ablation"), sets[i])));
        }
        cJSON_Delete(root);
    }
    rf_eval_result_free(&r);

    /* no split file: the covid-chestxray split built in from datasets/splits/, the
     * same rows as that file given */
    {
        rf_eval_opts d;
        rf_eval_opts_init(&d);
        d.bootstrap = 0;
        d.limit = 5;
        char file[4200];
        const char *src = getenv("RADFUSE_SOURCE");
        snprintf(file, sizeof file, "%s/datasets/splits/covid-chestxray.csv", src ? src : ".");
        rf_eval_result a, b;
        int ra = rf_eval_run(m, ds, &d, &a, &err);
        CHECKF(ra == 0, "%s", err.msg);
        d.split_file = file;
        int rb = rf_eval_run(m, ds, &d, &b, &err);
        CHECKF(rb == 0, "%s", err.msg);
        if (!ra && !rb) {
            CHECKF(!strcmp(a.split, "datasets/splits/covid-chestxray.csv"), "%s", a.split);
            CHECK(!strcmp(b.split, "file") && a.rows_subset == b.rows_subset && a.rows_used == b.rows_used);
            CHECK(a.rows_subset > 0 && !memcmp(a.row, b.row, a.rows_used * sizeof *a.row));
        }
        rf_eval_result_free(&a);
        rf_eval_result_free(&b);
    }

    /* no rows in the subset, and a split file that misses patients */
    o.subset = RF_SPLIT_VAL;
    rc = rf_eval_run(m, ds, &o, &r, &err);
    CHECKF(rc == RF_EINVAL && strstr(err.msg, "no rows in the val subset"), "%s", err.msg);
    rf_eval_result_free(&r);
    f = fopen(split, "w");
    fprintf(f, "patientid,split\n%s,test\n", pat[0]);
    fclose(f);
    rc = rf_eval_run(m, ds, &o, &r, &err);
    CHECKF(rc != 0 && strstr(err.msg, split), "%s", err.msg);
    rf_eval_result_free(&r);

    rf_fusion_free(m);
    rf_backend_destroy(be);
    rf_dataset_free(ds);
    test_model_remove(mdir);
}

int main(void)
{
    char tmp[4096];
    test_tmpdir(tmp, sizeof tmp);
    metrics_tests();
    mask_tests();
    image_tests(tmp);
    runner_tests(tmp);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0)
        fprintf(stderr, "test_eval: could not remove %s\n", tmp);
    return test_finish("test_eval");
}
