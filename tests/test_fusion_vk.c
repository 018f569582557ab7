/*
 * The fusion model on Vulkan (lavapipe in CI) against the CPU backend and
 * the PyTorch reference: every case of tests/data/fusion_expected.safetensors
 * for joint and cross attention (logits and probabilities within 1e-4 of
 * both), the assembled sequence of the trace, and a batched forward over
 * image variants (occlusion's path) against the CPU's.
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

int main(void)
{
    fc_fixture fx;
    fc_open(&fx);
    rf_backend *cpu, *vk;
    test_backends_create(&cpu, &vk);
    for (int cross = 0; cross < 2; cross++) {
        char dir[4096];
        fc_make_model(dir, sizeof dir, &fx, cross, cross, 0);
        rf_fusion *fc = load(dir, cpu), *fv = load(dir, vk);
        CHECK(strncmp(rf_fusion_get_info(fv)->backend, "vulkan", 6) == 0);
        int K = fc->info.nlabels;
        double worst = 0;
        for (int c = 0; c < FC_CASES; c++) {
            rf_fusion_study sc, sv;
            rf_text_encoding ec[2], ev[2];
            fc_study(&fx, fc, c, &sc, ec);
            fc_study(&fx, fv, c, &sv, ev);
            rf_fusion_output oc, ov;
            rf_err err;
            int rc = rf_fusion_forward(fc, &sc, &oc, &err);
            CHECKF(rc == 0, "cpu case %d: %s", c, err.msg);
            int rv = rf_fusion_forward(fv, &sv, &ov, &err);
            CHECKF(rv == 0, "vulkan case %d: %s", c, err.msg);
            if (!rc && !rv) {
                double e = test_max_abs_diff(oc.logits, ov.logits, K);
                double ep = test_max_abs_diff(oc.probabilities, ov.probabilities, K);
                CHECKF(e <= FC_TOL && ep <= FC_TOL, "%s case %d: vulkan differs from cpu by %g (logits), %g "
                       "(probabilities)", fc_arch(cross), c, e, ep);
                worst = fmax(worst, fmax(e, ep));
                fc_compare(&fx, cross, c, ov.logits, ov.probabilities, K, "vulkan");
                CHECK(memcmp(oc.inputs_used, ov.inputs_used, sizeof oc.inputs_used) == 0);
                CHECK(oc.layout.T == ov.layout.T);
            }
            rf_fusion_output_free(&oc);
            rf_fusion_output_free(&ov);
            fc_study_free(ec);
            fc_study_free(ev);
        }
        printf("%s: vulkan vs cpu max abs difference %.2e over %d cases\n", fc_arch(cross), worst, FC_CASES);

        /* the trace's sequence and the batched path on the device */
        rf_fusion_study s;
        rf_text_encoding enc[2];
        fc_study(&fx, fv, 0, &s, enc);
        rf_fusion_trace t;
        rf_err err;
        int rc = rf_fusion_trace_study(fv, &s, &t, &err);
        CHECKF(rc == 0, "vulkan trace: %s", err.msg);
        if (!rc) {
            char name[96];
            snprintf(name, sizeof name, "%s.case0.sequence", fc_arch(cross));
            const rf_st_tensor *seq = fc_tensor(&fx, name);
            double e = test_max_abs_diff(t.sequence, seq->data, (int64_t)t.layout.T * t.hidden);
            CHECKF(e <= FC_TOL, "vulkan sequence differs from PyTorch by %g", e);
            CHECK(t.vision_last_in != NULL);
        }
        rf_fusion_trace_free(&t);
        const int64_t per = 3 * 64 * 64;
        float *var = test_falloc(3 * per);
        for (int b = 0; b < 3; b++) {
            memcpy(var + b * per, fx.images, per * sizeof(float));
            for (int ch = 0; ch < 3; ch++) /* occlude a different 16x16 patch in each variant */
                for (int y = 16 * b; y < 16 * b + 16; y++)
                    memset(var + b * per + ch * 4096 + y * 64 + 16 * b, 0, 16 * sizeof(float));
        }
        rf_fusion_output bc, bv;
        rc = rf_fusion_forward_batch(fc, &s, 1, var, 3, &bc, &err);
        CHECKF(rc == 0, "cpu batch: %s", err.msg);
        int rv = rf_fusion_forward_batch(fv, &s, 1, var, 3, &bv, &err);
        CHECKF(rv == 0, "vulkan batch: %s", err.msg);
        if (!rc && !rv) {
            double e = test_max_abs_diff(bc.logits, bv.logits, 3 * K);
            CHECKF(e <= FC_TOL, "%s: batched vulkan differs from cpu by %g", fc_arch(cross), e);
            CHECK(test_max_abs_diff(bv.logits, bv.logits + K, K) > 1e-6);
        }
        rf_fusion_output_free(&bc);
        rf_fusion_output_free(&bv);
        free(var);
        fc_study_free(enc);
        rf_fusion_free(fc);
        rf_fusion_free(fv);
        test_model_remove(dir);
    }
    rf_backend_destroy(vk);
    rf_backend_destroy(cpu);
    fc_close(&fx);
    return test_finish("test_fusion_vk");
}
