/*
 * The fusion model on the CPU against an independent PyTorch reference
 * (tests/data/make_fusion_expected.py: ViT, BERT and the fusion transformer
 * written there in plain PyTorch, float64): logits and probabilities of five
 * cases (every input; image only; no image; no text; no labs) for joint and
 * cross attention within 1e-4, and the assembled sequence of the full case.
 * Also: the token layout (ranges, text cap, dropped labs, inputs used), the
 * trace agrees with the forward pass, the batched forward over image
 * variants agrees with single forwards, the same weights laid out inline,
 * in subdirectories or in shards give identical outputs, the vision states
 * of several studies' images in one pass (rf_fusion_vision) give the forward
 * the same outputs, to the bit, and the model directory's hash is the one
 * the fixture was made from.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fusion_cases.h"

static rf_fusion *load(const char *dir, rf_backend *be)
{
    rf_fusion *f = NULL;
    rf_err err;
    if (rf_fusion_load(&f, dir, be, &err)) {
        fprintf(stderr, "FATAL: %s\n", err.msg);
        exit(1);
    }
    return f;
}

static void check_layout(const fc_fixture *fx, rf_fusion *f)
{
    rf_fusion_study s;
    rf_text_encoding enc[2];
    fc_study(fx, f, 0, &s, enc);
    rf_fusion_trace t;
    rf_err err;
    int rc = rf_fusion_trace_study(f, &s, &t, &err);
    CHECKF(rc == 0, "trace: %s", err.msg);
    rf_fusion_output o;
    rc = rf_fusion_forward(f, &s, &o, &err);
    CHECKF(rc == 0, "forward: %s", err.msg);
    if (t.sequence && o.logits) {
        const rf_fusion_layout *L = &t.layout;
        /* [CLS] + 2 images x (1 + 2x2) + 1 prior x 5 + text + 3 labs (one of 4 past the table) */
        int n1 = enc[0].n, n2 = enc[1].n, take2 = 16 - n1;
        CHECKF(n1 == 14, "first note has %d content tokens, the fixture chose one of 14", n1);
        CHECK(L->image_tokens == 5 && L->grid_h == 4 && L->pool_h == 2);
        CHECK(L->start[RF_MODALITY_IMAGE] == 1 && L->count[RF_MODALITY_IMAGE] == 10);
        CHECK(L->start[RF_MODALITY_PRIOR] == 11 && L->count[RF_MODALITY_PRIOR] == 5);
        CHECK(L->start[RF_MODALITY_TEXT] == 16 && L->count[RF_MODALITY_TEXT] == 2 + 16);
        CHECK(L->start[RF_MODALITY_LABS] == 34 && L->count[RF_MODALITY_LABS] == 3);
        CHECK(L->T == 37);
        CHECK(L->text_tokens_dropped == n2 - take2);
        CHECK(L->labs_dropped == 1);
        CHECK(L->text_note[0] == 0 && L->text_token[0] == -1 && L->text_token[1] == 0);
        CHECK(L->text_note[15] == 1 && L->text_token[15] == -1 && L->text_token[17] == take2 - 1);
        CHECK(L->lab_token[0] == 0 && L->lab_token[2] == 2);
        for (int m = 0; m < RF_MODALITY_COUNT; m++)
            CHECK(t.inputs_used[m] == 1 && L->absent[m] == 0);
        /* the sequence the blocks start from, against PyTorch's */
        char name[96];
        snprintf(name, sizeof name, "%s.case0.sequence", fc_arch(f->info.cross_attention));
        const rf_st_tensor *seq = fc_tensor(fx, name);
        CHECK(seq->shape[0] == L->T && seq->shape[1] == t.hidden);
        double e = test_max_abs_diff(t.sequence, seq->data, (int64_t)L->T * t.hidden);
        CHECKF(e <= FC_TOL, "assembled sequence differs from PyTorch by %g", e);
        CHECK(test_max_abs_diff(t.logits, o.logits, o.nlabels) == 0);
        CHECK(t.nimages == 2 && t.npriors == 1 && t.vision_tokens == 17 && t.vision_hidden == 32);
        CHECK(t.vision && t.vision_last_in);
        /* the vision output is the encoder's: its CLS row feeds image row 0 */
        int differs = 0;
        for (int i = 0; i < 17 * 32; i++)
            differs |= t.vision[i] != t.vision_last_in[i];
        CHECK(differs);
    }
    rf_fusion_trace_free(&t);
    rf_fusion_output_free(&o);
    fc_study_free(enc);
}

/* Every case of the fixture on f; returns the outputs' logits concatenated (malloc'd). */
static float *run_cases(const fc_fixture *fx, rf_fusion *f, int compare, const char *what)
{
    int K = f->info.nlabels;
    float *all = test_falloc(FC_CASES * K);
    for (int c = 0; c < FC_CASES; c++) {
        rf_fusion_study s;
        rf_text_encoding enc[2];
        fc_study(fx, f, c, &s, enc);
        rf_fusion_output o;
        rf_err err;
        int rc = rf_fusion_forward(f, &s, &o, &err);
        CHECKF(rc == 0, "%s case %d: %s", what, c, err.msg);
        if (!rc) {
            if (compare)
                fc_compare(fx, f->info.cross_attention, c, o.logits, o.probabilities, K, what);
            memcpy(all + c * K, o.logits, (size_t)K * sizeof(float));
            const int32_t *cs = fx->cases + 4 * c;
            CHECK(o.inputs_used[RF_MODALITY_IMAGE] == (cs[0] > 0));
            CHECK(o.inputs_used[RF_MODALITY_PRIOR] == (cs[1] > 0));
            CHECK(o.inputs_used[RF_MODALITY_TEXT] == (cs[2] > 0));
            CHECK(o.inputs_used[RF_MODALITY_LABS] == (cs[3] > 0));
            for (int m = 0; m < RF_MODALITY_COUNT; m++)
                CHECK(o.layout.absent[m] == !o.inputs_used[m] && (!o.layout.absent[m] || o.layout.count[m] == 1));
            for (int k = 0; k < K; k++) {
                double p = 1 / (1 + exp(-(double)o.logits[k] / f->info.labels[k].temperature));
                CHECK(fabs(p - o.probabilities[k]) < 1e-6);
            }
        }
        rf_fusion_output_free(&o);
        fc_study_free(enc);
    }
    return all;
}

/* B variants of one image against single forwards on the same inputs. */
static void check_batch(const fc_fixture *fx, rf_fusion *f)
{
    rf_fusion_study s;
    rf_text_encoding enc[2];
    fc_study(fx, f, 0, &s, enc);
    int K = f->info.nlabels;
    const int64_t per = 3 * 64 * 64;
    /* variants of image 0: itself, image 1, the prior image, a blacked-out half */
    float *var = test_falloc(4 * per);
    memcpy(var, fx->images, per * sizeof(float));
    memcpy(var + per, fx->images + per, per * sizeof(float));
    memcpy(var + 2 * per, fx->prior, per * sizeof(float));
    memcpy(var + 3 * per, fx->images, per * sizeof(float));
    for (int ch = 0; ch < 3; ch++)
        for (int y = 0; y < 32; y++)
            memset(var + 3 * per + ch * 4096 + y * 64, 0, 64 * sizeof(float));
    rf_fusion_output ob;
    rf_err err;
    int rc = rf_fusion_forward_batch(f, &s, 0, var, 4, &ob, &err);
    CHECKF(rc == 0, "batch: %s", err.msg);
    float *imgs = test_falloc(2 * per);
    for (int b = 0; !rc && b < 4; b++) {
        rf_fusion_study s2 = s;
        memcpy(imgs, var + b * per, per * sizeof(float));
        memcpy(imgs + per, fx->images + per, per * sizeof(float));
        s2.images = imgs;
        rf_fusion_output o;
        CHECK(rf_fusion_forward(f, &s2, &o, &err) == 0);
        double e = test_max_abs_diff(o.logits, ob.logits + b * K, K);
        CHECKF(e <= 1e-5, "batch variant %d differs from its single forward by %g", b, e);
        e = test_max_abs_diff(o.probabilities, ob.probabilities + b * K, K);
        CHECK(e <= 1e-5);
        rf_fusion_output_free(&o);
    }
    CHECK(!rc && ob.batch == 4 && ob.layout.T == 37);
    /* masking half the image changes the answer */
    CHECK(!rc && test_max_abs_diff(ob.logits, ob.logits + 3 * K, K) > 1e-4);
    rf_fusion_output_free(&ob);
    /* variants of the prior image (index nimages + 0) */
    rc = rf_fusion_forward_batch(f, &s, 2, var, 2, &ob, &err);
    CHECKF(rc == 0, "batch prior: %s", err.msg);
    if (!rc) {
        rf_fusion_output o;
        CHECK(rf_fusion_forward(f, &s, &o, &err) == 0);
        double e = test_max_abs_diff(o.logits, ob.logits, K);
        /* variant 0 of the prior is image 0, not the prior: it must differ; the study itself is variant 2 of case */
        CHECK(e > 1e-6);
        rf_fusion_study s2 = s;
        s2.priors = fx->images;
        rf_fusion_output o2;
        CHECK(rf_fusion_forward(f, &s2, &o2, &err) == 0);
        CHECK(test_max_abs_diff(o2.logits, ob.logits, K) <= 1e-5);
        rf_fusion_output_free(&o);
        rf_fusion_output_free(&o2);
    }
    rf_fusion_output_free(&ob);
    /* bad arguments */
    CHECK(rf_fusion_forward_batch(f, &s, 3, var, 2, &ob, &err) == RF_EINVAL);
    CHECK(strchr(err.msg, '\n') == NULL);
    rf_fusion_output_free(&ob);
    free(imgs);
    free(var);
    fc_study_free(enc);
}

/* rf_fusion_vision over the images of several studies in one pass, and the
 * forward, the trace and the variants' forward from a study's slice of it:
 * the same outputs as the forward that runs the encoder itself. */
static void check_vision_states(const fc_fixture *fx, rf_fusion *f)
{
    rf_fusion_study s;
    rf_text_encoding enc[2];
    fc_study(fx, f, 0, &s, enc);
    int K = f->info.nlabels;
    const int64_t per = 3 * 64 * 64;
    /* "another study" (the prior, image 1) first, then this study's images and prior */
    const float *imgs[5] = {fx->prior, fx->images + per, fx->images, fx->images + per, fx->prior};
    float *states = NULL;
    int tokens = 0;
    rf_err err;
    int rc = rf_fusion_vision(f, imgs, 5, 64, 64, &states, &tokens, &err);
    CHECKF(rc == 0, "vision: %s", err.msg);
    CHECK(tokens == 17);
    rf_fusion_output ref, o;
    CHECK(rf_fusion_forward(f, &s, &ref, &err) == 0);
    if (!rc) {
        rf_fusion_study sv = s;
        sv.vision = states + 2 * 17 * 32;
        CHECKF(rf_fusion_forward(f, &sv, &o, &err) == 0, "forward from states: %s", err.msg);
        CHECKF(test_max_abs_diff(o.logits, ref.logits, K) == 0, "forward from states differs by %g",
               test_max_abs_diff(o.logits, ref.logits, K));
        CHECK(o.layout.T == ref.layout.T && o.inputs_used[RF_MODALITY_PRIOR] == 1);
        rf_fusion_output_free(&o);
        /* the trace takes them too (no last block input then) */
        rf_fusion_trace t;
        CHECK(rf_fusion_trace_study(f, &sv, &t, &err) == 0);
        CHECK(t.vision && !t.vision_last_in && test_max_abs_diff(t.logits, ref.logits, K) == 0);
        CHECK(t.vision && test_max_abs_diff(t.vision, sv.vision, 3 * 17 * 32) == 0);
        rf_fusion_trace_free(&t);
        /* variants of image 0 with the others' states given */
        rf_fusion_output b1, b2;
        CHECK(rf_fusion_forward_batch(f, &s, 0, fx->images + per, 1, &b1, &err) == 0);
        CHECK(rf_fusion_forward_batch(f, &sv, 0, fx->images + per, 1, &b2, &err) == 0);
        CHECK(b1.logits && b2.logits && test_max_abs_diff(b1.logits, b2.logits, K) == 0);
        rf_fusion_output_free(&b1);
        rf_fusion_output_free(&b2);
    }
    rf_fusion_output_free(&ref);
    free(states);
    /* bad arguments: a size the encoder does not take, missing pixels, none */
    CHECK(rf_fusion_vision(f, imgs, 1, 32, 32, &states, &tokens, &err) == RF_EINVAL && !states);
    const float *none[1] = {NULL};
    CHECK(rf_fusion_vision(f, none, 1, 64, 64, &states, &tokens, &err) == RF_EINVAL && !states);
    CHECK(rf_fusion_vision(f, NULL, 0, 64, 64, &states, &tokens, &err) == 0 && !states && tokens == 0);
    fc_study_free(enc);
}

int main(void)
{
    fc_fixture fx;
    fc_open(&fx);
    rf_backend *cpu;
    rf_err err;
    if (rf_backend_create(&cpu, "cpu", 2, &err)) {
        fprintf(stderr, "FATAL: %s\n", err.msg);
        return 1;
    }
    for (int cross = 0; cross < 2; cross++) {
        char sub[4096], inl[4096], shard[4096];
        fc_make_model(sub, sizeof sub, &fx, cross, 0, 0);
        fc_make_model(inl, sizeof inl, &fx, cross, 1, 0);
        fc_make_model(shard, sizeof shard, &fx, cross, 1, 3);
        rf_fusion *f = load(sub, cpu);
        const rf_fusion_info *in = rf_fusion_get_info(f);
        char key[64];
        snprintf(key, sizeof key, "%s.sha256", fc_arch(cross));
        const char *want = rf_safetensors_metadata(fx.st, key);
        CHECKF(want && strcmp(want, in->sha256) == 0,
               "%s: model hash %s, the fixture was made from %s: the generator changed, run "
               "tests/data/make_fusion_expected.py again", fc_arch(cross), in->sha256, want ? want : "?");
        CHECK(in->cross_attention == cross && in->nlabels == 5 && in->vision.present && in->text.present);
        CHECK(strcmp(in->vision.source, "vision/") == 0 && in->has_preprocess_file);
        CHECK(in->nfiles == 9 && strcmp(in->files[0].name, "config.json") == 0 &&
              strcmp(in->files[1].name, "labels.json") == 0);
        float *a = run_cases(&fx, f, 1, "subdirectories");
        check_layout(&fx, f);
        if (!cross)
            check_batch(&fx, f);
        check_vision_states(&fx, f);
        rf_fusion_free(f);

        /* the same weights, inline and in shards: the same outputs, to the bit */
        const char *dirs[2] = {inl, shard};
        for (int d = 0; d < 2; d++) {
            f = load(dirs[d], cpu);
            CHECK(strcmp(rf_fusion_get_info(f)->vision.source, "inline") == 0);
            CHECK(rf_fusion_get_info(f)->nfiles == (d ? 7 : 5));
            float *b = run_cases(&fx, f, 0, d ? "shards" : "inline");
            double e = test_max_abs_diff(a, b, FC_CASES * 5);
            CHECKF(e == 0, "%s %s: outputs differ from the subdirectory layout by %g", fc_arch(cross),
                   d ? "shards" : "inline", e);
            free(b);
            rf_fusion_free(f);
        }
        free(a);
        test_model_remove(sub);
        test_model_remove(inl);
        test_model_remove(shard);
    }
    rf_backend_destroy(cpu);
    fc_close(&fx);
    return test_finish("test_fusion");
}
