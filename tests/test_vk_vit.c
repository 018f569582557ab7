/*
 * A full-size ViT-B/16 (timm vit_base_patch16_224, random weights of the real
 * shapes from `radfuse model random`) on one 224x224 image, on the CPU and on
 * the Vulkan backend (lavapipe in CI), through the radfuse command.
 * Tolerance: features (after the final LayerNorm, std ~1) and logits within
 * 1e-4 absolute, the fixtures' bound: 12 blocks of fp32 whose GEMMs reduce
 * K = 768..3072 terms in different orders on each side; measured 7.4e-6.
 */
#include <stdlib.h>
#include <string.h>

#include "tests/testutil.h"

#define TOLERANCE 1e-4

static double diff(const rf_safetensors *a, const rf_safetensors *b, const char *name)
{
    const rf_st_tensor *x = rf_safetensors_find(a, name), *y = rf_safetensors_find(b, name);
    if (!x || !y || x->nbytes != y->nbytes)
        return 1e30;
    float *p = malloc(x->nbytes), *q = malloc(y->nbytes);
    memcpy(p, x->data, x->nbytes);
    memcpy(q, y->data, y->nbytes);
    double d = test_max_abs_diff(p, q, (int64_t)(x->nbytes / 4));
    free(p);
    free(q);
    return d;
}

int main(void)
{
    char tmp[64], model[200], input[200], out_cpu[200], out_vk[200];
    test_tmpdir(tmp, sizeof tmp);
    snprintf(model, sizeof model, "%s/vit-b16", tmp);
    snprintf(input, sizeof input, "%s/in.safetensors", tmp);
    snprintf(out_cpu, sizeof out_cpu, "%s/cpu.safetensors", tmp);
    snprintf(out_vk, sizeof out_vk, "%s/vk.safetensors", tmp);
    const char *bin = test_radfuse_bin();
    char errbuf[4096];
    char *make_model[] = {(char *)bin, "model", "random", "--arch", "vit_base_patch16_224", "--out", model, NULL};
    int status = test_run(make_model, NULL, 0, errbuf, sizeof errbuf);
    CHECKF(status == 0, "model random: %s", errbuf);

    int64_t shape[4] = {1, 3, 224, 224}, n = 3 * 224 * 224;
    float *px = malloc((size_t)n * sizeof *px);
    test_fill_random(px, n, 2024, 2.0f);
    rf_st_out in = {"pixel_values", RF_ST_F32, 4, shape, px};
    rf_err err;
    CHECKF(rf_safetensors_write(input, &in, 1, &err) == 0, "%s", err.msg);
    free(px);

    const char *devices[2] = {"cpu", "vulkan"};
    const char *outs[2] = {out_cpu, out_vk};
    for (int d = 0; d < 2; d++) {
        char *run[] = {(char *)bin, "model", "run", model, "--input", input, "--output", (char *)outs[d],
                       "--device", (char *)devices[d], NULL};
        status = test_run(run, NULL, 0, errbuf, sizeof errbuf);
        CHECKF(status == 0 && errbuf[0] == 0, "model run on %s: exit %d: %s", devices[d], status, errbuf);
    }
    rf_safetensors *a = NULL, *b = NULL;
    if (rf_safetensors_open(&a, out_cpu, &err) == 0 && rf_safetensors_open(&b, out_vk, &err) == 0) {
        double df = diff(a, b, "features"), dl = diff(a, b, "logits");
        printf("ViT-B/16 224x224, cpu vs vulkan: features max abs %.3g, logits max abs %.3g\n", df, dl);
        CHECKF(df <= TOLERANCE, "features differ by %g", df);
        CHECKF(dl <= TOLERANCE, "logits differ by %g", dl);
    } else {
        CHECKF(0, "%s", err.msg);
    }
    rf_safetensors_close(a);
    rf_safetensors_close(b);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    CHECK(system(cmd) == 0);
    return test_finish("test_vk_vit");
}
