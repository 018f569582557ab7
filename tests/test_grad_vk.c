/*
 * The host block forward of fusion/grad.c against the encoder the backends
 * run, and the encoder's block-input capture (rf_model_inputs.capture_blocks)
 * that saliency starts from, on the CPU backend and on Vulkan (lavapipe in
 * CI).
 *
 * For each vision fixture of shared/fixtures/reference (Dinov2 with layer
 * scale, HF ViT, timm ViT) and each backend: one pass captures the input of
 * every block; each block's weights are read back to the host
 * (rf_hblock_from_block: direct on the CPU backend, downloaded from Vulkan),
 * and the host forward of block i from captured input i must give captured
 * input i + 1, and of the last block, after the final LayerNorm, the
 * encoder's last_hidden_state: max abs difference <= 1e-4 (the encoder runs
 * in fp32, the host in double). Capturing must not change the outputs, a
 * capture of the last block alone must equal the last slice of the full
 * one, and a linear layer kept only in the backend's fp16 form must give
 * RF_EUNSUP with a message saying so.
 *
 * Then the saliency of a random fusion model (an image and a note) on both
 * backends: the weights the gradient methods read back from Vulkan, its
 * vision captures and its batched occlusion passes must give the CPU's
 * maps (max abs difference <= 1e-3 on maps normalized to [0, 1]), input
 * weights (1e-4) and span weights (1e-3); on a Vulkan model loaded with
 * fp16 weights, Grad-CAM is refused with one line saying why (where the
 * device has fp16 at all).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fusion/fusion_model.h"
#include "fusion/grad.h"
#include "radfuse/saliency.h"
#include "runtime/model.h"
#include "tests/model_maker.h"
#include "tests/testutil.h"

int rf_vk_backend_create(rf_backend **out, int device, int threads, rf_err *err);

#define TOL 1e-4

static double g_worst;

static void check_fixture(rf_backend *be, const char *fixture)
{
    char dir[4200], path[4300];
    snprintf(dir, sizeof dir, "%s/fixtures/reference/%s", test_shared_dir(), fixture);
    rf_err err;
    rf_model *m;
    if (rf_model_load(&m, dir, be, &err)) {
        fprintf(stderr, "FATAL: %s\n", err.msg);
        exit(1);
    }
    snprintf(path, sizeof path, "%s/io.safetensors", dir);
    rf_safetensors *io;
    if (rf_safetensors_open(&io, path, &err)) {
        fprintf(stderr, "FATAL: %s\n", err.msg);
        exit(1);
    }
    const rf_st_tensor *px = rf_safetensors_find(io, "pixel_values");
    CHECK(px && px->dtype == RF_ST_F32 && px->ndim == 4);
    int64_t shape[4] = {px->shape[0], px->shape[1], px->shape[2], px->shape[3]};
    float *pixels = test_falloc(shape[0] * shape[1] * shape[2] * shape[3]);
    memcpy(pixels, px->data, px->nbytes);
    rf_tensor pt = rf_tensor_make(RF_F32, pixels, 4, shape);

    const rf_model_info *info = rf_model_get_info(m);
    int L = info->layers, C = info->hidden;
    rf_model_inputs in = {.pixel_values = &pt};
    rf_model_outputs plain, full, last;
    CHECK(rf_model_forward(m, &in, &plain, &err) == 0);
    in.capture_blocks = L + 3; /* more than there are: all */
    CHECK(rf_model_forward(m, &in, &full, &err) == 0);
    in.capture_blocks = 1;
    CHECK(rf_model_forward(m, &in, &last, &err) == 0);
    CHECK(plain.block_inputs.data == NULL);
    int64_t B = full.last_hidden_state.shape[0], T = full.last_hidden_state.shape[1];
    CHECK(full.block_inputs.ndim == 4 && full.block_inputs.shape[0] == L && full.block_inputs.shape[1] == B &&
          full.block_inputs.shape[2] == T && full.block_inputs.shape[3] == C);
    CHECK(last.block_inputs.ndim == 4 && last.block_inputs.shape[0] == 1);
    int64_t per = B * T * C;
    CHECKF(test_max_abs_diff(plain.last_hidden_state.data, full.last_hidden_state.data, per) == 0.0,
           "%s: capture changed last_hidden_state", fixture);
    CHECKF(test_max_abs_diff((float *)full.block_inputs.data + (int64_t)(L - 1) * per, last.block_inputs.data, per) ==
               0.0,
           "%s: the last block's capture differs between a full and a single capture", fixture);

    double worst = 0;
    double *x = test_dalloc(T * C), *y = test_dalloc(T * C), *fg = test_dalloc(C), *fb = test_dalloc(C);
    for (int i = 0; i < L; i++) {
        rf_hblock hb;
        int rc = rf_hblock_from_block(be, &m->blocks[i], C, info->heads, info->intermediate, m->act, m->eps, &hb, &err);
        CHECKF(rc == 0, "%s: block %d to host: %s", fixture, i, err.msg);
        if (rc)
            continue;
        rf_hblock_cache cache;
        CHECK(rf_hblock_cache_alloc(&cache, &hb, (int)T, &err) == 0);
        for (int64_t b = 0; b < B; b++) {
            const float *src = (const float *)full.block_inputs.data + ((int64_t)i * B + b) * T * C;
            for (int64_t k = 0; k < T * C; k++)
                x[k] = src[k];
            rf_hblock_forward(&hb, &cache, x, NULL, NULL, (int)T, y);
            const float *want;
            if (i + 1 < L) {
                want = (const float *)full.block_inputs.data + ((int64_t)(i + 1) * B + b) * T * C;
            } else {
                CHECK(rf_g_fetch(be, &m->final_ln_g, fg, C, &err) == 0);
                CHECK(rf_g_fetch(be, &m->final_ln_b, fb, C, &err) == 0);
                rf_g_layernorm_forward(y, NULL, NULL, y, fg, fb, m->eps, (int)T, C);
                want = (const float *)full.last_hidden_state.data + b * T * C;
            }
            for (int64_t k = 0; k < T * C; k++)
                worst = fmax(worst, fabs(y[k] - want[k]));
        }
        rf_hblock_cache_free(&cache);
        rf_hblock_free(&hb);
    }
    CHECKF(worst <= TOL, "%s on %s: host block forward differs by %g", fixture, rf_backend_name(be), worst);
    printf("%-9s %-40s host forward vs backend: max abs %.3g\n", fixture, rf_backend_name(be), worst);
    if (worst > g_worst)
        g_worst = worst;

    /* a weight that exists only in a prepared fp16 form */
    rf_block fake = m->blocks[0];
    int half;
    fake.fc1.w.data = NULL;
    fake.fc1.prepared = &half;
    rf_hblock hb;
    int rc = rf_hblock_from_block(be, &fake, C, info->heads, info->intermediate, m->act, m->eps, &hb, &err);
    CHECKF(rc == RF_EUNSUP && strstr(err.msg, "fp16") && strstr(err.msg, "fc1"), "prepared-only weight: %d %s", rc,
           err.msg);

    free(x), free(y), free(fg), free(fb), free(pixels);
    rf_model_outputs_free(&plain);
    rf_model_outputs_free(&full);
    rf_model_outputs_free(&last);
    rf_safetensors_close(io);
    rf_model_free(m);
}

static void saliency_both(rf_backend *cpu, rf_backend *vk)
{
    char dir[256];
    test_make_model_tmp(dir, sizeof dir, NULL);
    rf_fusion *f[2];
    rf_err err;
    rf_backend *bes[2] = {cpu, vk};
    for (int b = 0; b < 2; b++)
        if (rf_fusion_load(&f[b], dir, bes[b], &err)) {
            fprintf(stderr, "FATAL: %s\n", err.msg);
            exit(1);
        }
    const char *note = "Patchy opacities in both lower lobes, consistent with pneumonia.";
    rf_text_encoding enc[2];
    float *img = test_falloc(3 * 64 * 64);
    test_fill_random(img, 3 * 64 * 64, 5, 1.0f);
    int rows[1] = {90}, cols[1] = {70};
    rf_saliency_method methods[3] = {RF_SALIENCY_GRADCAM, RF_SALIENCY_ROLLOUT, RF_SALIENCY_OCCLUSION};
    for (int b = 0; b < 2; b++)
        CHECK(rf_fusion_encode_note(f[b], note, strlen(note), &enc[b], &err) == 0);
    for (int mi = 0; mi < 3; mi++) {
        rf_saliency_result r[2];
        for (int b = 0; b < 2; b++) {
            rf_fusion_study s = {.height = 64, .width = 64, .images = img, .nimages = 1, .notes = &enc[b], .nnotes = 1};
            rf_saliency_opts o;
            rf_saliency_opts_init(&o);
            o.method = methods[mi];
            int rc = rf_saliency_run(f[b], &s, rows, cols, &o, &r[b], &err);
            CHECKF(rc == 0, "%s on %s: %s", rf_saliency_method_name(o.method), rf_backend_name(bes[b]), err.msg);
        }
        double dmap = 0, dw = 0, dspan = 0;
        int same = r[0].nfindings == r[1].nfindings;
        for (int k = 0; same && k < r[0].nfindings; k++) {
            rf_saliency_finding *a = &r[0].findings[k], *c = &r[1].findings[k];
            same = a->nmaps == 1 && c->nmaps == 1 && a->nspans == c->nspans;
            if (!same)
                break;
            dmap = fmax(dmap, test_max_abs_diff(a->maps[0].values, c->maps[0].values, rows[0] * cols[0]));
            for (int m = 0; m < RF_MODALITY_COUNT; m++)
                dw = fmax(dw, fabs(a->input_weight[m] - c->input_weight[m]));
            for (size_t j = 0; j < a->nspans; j++)
                dspan = fmax(dspan, fabs(a->spans[j].weight - c->spans[j].weight));
        }
        CHECKF(same, "%s: CPU and Vulkan give different numbers of maps or spans", rf_saliency_method_name(methods[mi]));
        CHECKF(dmap <= 1e-3 && dw <= 1e-4 && dspan <= 1e-3, "%s: CPU vs Vulkan maps %g, input weights %g, spans %g",
               rf_saliency_method_name(methods[mi]), dmap, dw, dspan);
        printf("saliency %-9s CPU vs Vulkan: maps %.3g, input weights %.3g, span weights %.3g\n",
               rf_saliency_method_name(methods[mi]), dmap, dw, dspan);
        rf_saliency_result_free(&r[0]);
        rf_saliency_result_free(&r[1]);
    }
    for (int b = 0; b < 2; b++) {
        rf_text_encoding_free(&enc[b]);
        rf_fusion_free(f[b]);
    }
    /* fp16 weights exist only in their prepared form: gradients are refused */
    rf_backend *vk16;
    if (rf_backend_create(&vk16, "vulkan", 0, &err) == 0) {
        if (rf_backend_set_precision(vk16, RF_PRECISION_FP16, &err) == 0) {
            rf_fusion *h;
            CHECK(rf_fusion_load(&h, dir, vk16, &err) == 0);
            rf_fusion_study s = {.height = 64, .width = 64, .images = img, .nimages = 1};
            rf_saliency_opts o;
            rf_saliency_opts_init(&o);
            rf_saliency_result r;
            int rc = rf_saliency_run(h, &s, rows, cols, &o, &r, &err);
            CHECKF(rc == RF_EUNSUP && strstr(err.msg, "fp16"), "fp16 model: %d %s", rc, err.msg);
            rf_saliency_result_free(&r);
            rf_fusion_free(h);
        } else {
            printf("vulkan device has no fp16 weights (%s): the fp16 refusal is checked on a block above\n", err.msg);
        }
        rf_backend_destroy(vk16);
    }
    free(img);
}

int main(void)
{
    rf_backend *cpu, *vk;
    test_backends_create(&cpu, &vk);
    const char *fixtures[] = {"dinov2", "hf_vit", "timm_vit"};
    for (size_t i = 0; i < sizeof fixtures / sizeof fixtures[0]; i++) {
        check_fixture(cpu, fixtures[i]);
        check_fixture(vk, fixtures[i]);
    }
    printf("worst host-vs-backend difference %.3g (tolerance %g)\n", g_worst, TOL);
    saliency_both(cpu, vk);
    rf_backend_destroy(vk);
    rf_backend_destroy(cpu);
    return test_finish("test_grad_vk");
}
