/*
 * The cases of tests/data/fusion_expected.safetensors (made by
 * tests/data/make_fusion_expected.py) as fusion studies, for test_fusion.c
 * and test_fusion_vk.c: the inputs, the notes encoded by the model under
 * test, and the expected outputs. Header-only: each test includes it once.
 */
#ifndef RADFUSE_TESTS_FUSION_CASES_H
#define RADFUSE_TESTS_FUSION_CASES_H

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "radfuse/fusion.h"
#include "tests/model_maker.h"
#include "tests/testutil.h"

#define FC_SEED 7
#define FC_CASES 5
#define FC_TOL 1e-4

typedef struct fc_fixture {
    rf_safetensors *st;
    const float *images, *prior, *lab_features;
    const int32_t *lab_ids, *note_cases, *cases; /* cases [FC_CASES, 4]: images, priors, notes, labs */
    double prior_days;
    char *notes[2];
    rf_lab_token labs[4];
} fc_fixture;

static const rf_st_tensor *fc_tensor(const fc_fixture *fx, const char *name)
{
    const rf_st_tensor *t = rf_safetensors_find(fx->st, name);
    if (!t) {
        fprintf(stderr, "FATAL: fixture has no '%s' (run tests/data/make_fusion_expected.py)\n", name);
        exit(1);
    }
    return t;
}

/* The note texts of cases_pub.jsonl by line number. */
static char *fc_case_text(int line)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/fixtures/tokenizer/cases_pub.jsonl", test_shared_dir());
    size_t n;
    char *all = test_read_file(path, &n);
    if (!all) {
        fprintf(stderr, "FATAL: cannot read %s\n", path);
        exit(1);
    }
    char *p = all;
    for (int i = 0; i < line && p; i++) {
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    char *end = p ? strchr(p, '\n') : NULL;
    if (end)
        *end = 0;
    cJSON *j = p ? cJSON_Parse(p) : NULL;
    const cJSON *text = cJSON_GetObjectItem(j, "text");
    char *out = cJSON_IsString(text) ? strdup(text->valuestring) : NULL;
    cJSON_Delete(j);
    free(all);
    if (!out) {
        fprintf(stderr, "FATAL: %s line %d has no text\n", path, line);
        exit(1);
    }
    return out;
}

static void fc_open(fc_fixture *fx)
{
    memset(fx, 0, sizeof *fx);
    char path[4300];
    const char *src = getenv("RADFUSE_SOURCE");
    snprintf(path, sizeof path, "%s/tests/data/fusion_expected.safetensors", src && *src ? src : ".");
    rf_err err;
    if (rf_safetensors_open(&fx->st, path, &err)) {
        fprintf(stderr, "FATAL: %s\n", err.msg);
        exit(1);
    }
    fx->images = fc_tensor(fx, "images")->data;
    fx->prior = fc_tensor(fx, "prior")->data;
    fx->lab_features = fc_tensor(fx, "lab_features")->data;
    fx->lab_ids = fc_tensor(fx, "lab_ids")->data;
    fx->note_cases = fc_tensor(fx, "note_cases")->data;
    fx->cases = fc_tensor(fx, "cases")->data;
    fx->prior_days = *(const float *)fc_tensor(fx, "prior_days")->data;
    for (int i = 0; i < 2; i++)
        fx->notes[i] = fc_case_text(fx->note_cases[i]);
    for (int i = 0; i < 4; i++) {
        fx->labs[i].lab = fx->lab_ids[i];
        memcpy(fx->labs[i].features, fx->lab_features + 8 * i, sizeof fx->labs[i].features);
        fx->labs[i].record = (size_t)i;
    }
}

static void fc_close(fc_fixture *fx)
{
    free(fx->notes[0]);
    free(fx->notes[1]);
    rf_safetensors_close(fx->st);
}

/* The fixture's model (cross or joint) as a directory under a fresh tmpdir;
 * its hash must be the one the fixture was made from. */
static const char *fc_make_model(char *buf, size_t n, const fc_fixture *fx, int cross, int inline_sections,
                                 int shards)
{
    rf_fusion_random_opts o;
    test_model_defaults(&o);
    o.seed = FC_SEED;
    o.cross_attention = cross;
    o.inline_sections = inline_sections;
    o.shards = shards;
    test_make_model_tmp(buf, n, &o);
    (void)fx;
    return buf;
}

static const char *fc_arch(int cross)
{
    return cross ? "fusion_tiny_cross" : "fusion_tiny";
}

/* Case c of the fixture as a study; notes encoded by f into enc[2]. */
static void fc_study(const fc_fixture *fx, rf_fusion *f, int c, rf_fusion_study *s, rf_text_encoding *enc)
{
    const int32_t *cs = fx->cases + 4 * c;
    memset(s, 0, sizeof *s);
    memset(enc, 0, 2 * sizeof *enc);
    s->height = s->width = 64;
    s->images = cs[0] ? fx->images : NULL;
    s->nimages = cs[0];
    s->priors = cs[1] ? fx->prior : NULL;
    s->npriors = cs[1];
    s->prior_days = fx->prior_days;
    for (int i = 0; i < cs[2]; i++) {
        rf_err err;
        if (rf_fusion_encode_note(f, fx->notes[i], strlen(fx->notes[i]), &enc[i], &err)) {
            fprintf(stderr, "FATAL: note %d: %s\n", i, err.msg);
            exit(1);
        }
    }
    s->notes = cs[2] ? enc : NULL;
    s->nnotes = cs[2];
    s->labs = cs[3] ? fx->labs : NULL;
    s->nlabs = (size_t)cs[3];
}

static void fc_study_free(rf_text_encoding *enc)
{
    rf_text_encoding_free(&enc[0]);
    rf_text_encoding_free(&enc[1]);
}

/* Compares an output with the fixture's case; returns the max error of the probabilities. */
static double fc_compare(const fc_fixture *fx, int cross, int c, const float *logits, const float *probs, int K,
                         const char *what)
{
    char name[128];
    snprintf(name, sizeof name, "%s.case%d.logits", fc_arch(cross), c);
    const rf_st_tensor *tl = fc_tensor(fx, name);
    snprintf(name, sizeof name, "%s.case%d.probabilities", fc_arch(cross), c);
    const rf_st_tensor *tp = fc_tensor(fx, name);
    CHECKF(tl->shape[0] == K, "%s: fixture has %lld labels, the model %d", what, (long long)tl->shape[0], K);
    double el = test_max_abs_diff(logits, tl->data, K), ep = test_max_abs_diff(probs, tp->data, K);
    CHECKF(el <= FC_TOL, "%s %s case %d: logits differ from PyTorch by %g", what, fc_arch(cross), c, el);
    CHECKF(ep <= FC_TOL, "%s %s case %d: probabilities differ from PyTorch by %g", what, fc_arch(cross), c, ep);
    if (test_verbose())
        printf("%s %s case %d: max error logits %.2e probabilities %.2e\n", what, fc_arch(cross), c, el, ep);
    return el > ep ? el : ep;
}

#endif
