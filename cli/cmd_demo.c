/*
 * radfuse demo: a self-contained look at the runtime. Writes a ViT-B/16
 * checkpoint with random weights of the real shapes, loads it as any
 * checkpoint is loaded, runs it on a synthetic image and prints what came out
 * and how long it took.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli/cli.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* A smooth synthetic "radiograph": two bright lung-shaped ellipses on a dark
 * field, normalized as ImageNet-trained ViTs expect. */
static void synthetic_image(float *px, int batch, int size)
{
    const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    for (int b = 0; b < batch; b++)
        for (int y = 0; y < size; y++)
            for (int x = 0; x < size; x++) {
                float u = (float)x / size - 0.5f, v = (float)y / size - 0.5f;
                float l = (u + 0.2f) * (u + 0.2f) / 0.02f + v * v / 0.1f;
                float r = (u - 0.2f) * (u - 0.2f) / 0.02f + v * v / 0.1f;
                float val = 0.15f + 0.6f * (expf(-l * l) + expf(-r * r)) + 0.02f * (float)b;
                for (int c = 0; c < 3; c++)
                    px[((b * 3 + c) * size + y) * size + x] = (val - mean[c]) / std[c];
            }
}

int cli_demo(int argc, char **argv)
{
    const char *dir = "radfuse-demo-vit-b16";
    long batch = 1, threads = 0;
    for (int i = 0; i < argc; i++) {
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--dir") == 0 && next)
            dir = argv[++i];
        else if (strcmp(argv[i], "--batch") == 0) {
            if (cli_parse_int("--batch", next, 1, 256, &batch))
                return CLI_EXIT_FAIL;
            i++;
        } else if (strcmp(argv[i], "--threads") == 0) {
            if (cli_parse_int("--threads", next, 1, 1024, &threads))
                return CLI_EXIT_FAIL;
            i++;
        } else
            return cli_fail("demo: unknown option or missing value '%s'", argv[i]);
    }
    rf_err err;
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    struct stat sb;
    double t0 = now_ms();
    if (stat(path, &sb) != 0) {
        printf("writing a ViT-B/16 checkpoint with random weights to %s/ ...\n", dir);
        if (cli_write_random_model("vit_base_patch16_224", dir, 0, &err))
            return cli_fail("%s", err.msg);
    }
    rf_backend *be;
    if (cli_backend(&be, NULL, threads))
        return CLI_EXIT_FAIL;
    rf_model *m;
    double t1 = now_ms();
    if (rf_model_load(&m, dir, be, &err)) {
        rf_backend_destroy(be);
        return cli_fail("%s", err.msg);
    }
    double t2 = now_ms();
    const rf_model_info *in = rf_model_get_info(m);
    printf("model     %s: %d layers, hidden %d, %d heads, %.1fM parameters (loaded in %.0f ms)\n",
           rf_arch_name(in->arch), in->layers, in->hidden, in->heads, in->param_count / 1e6, t2 - t1);
    int size = in->image_size;
    int64_t shape[4] = {batch, 3, size, size};
    float *px = malloc((size_t)(batch * 3 * size * size) * sizeof(float));
    if (!px) {
        rf_model_free(m);
        rf_backend_destroy(be);
        return cli_fail("cannot allocate the input image");
    }
    synthetic_image(px, (int)batch, size);
    rf_tensor pixels = rf_tensor_make(RF_F32, px, 4, shape);
    rf_model_inputs inputs = {.pixel_values = &pixels};
    rf_model_outputs out;
    double best = 1e30;
    int rc = 0;
    for (int it = 0; it < 3 && !rc; it++) {
        double s = now_ms();
        rc = rf_model_forward(m, &inputs, &out, &err);
        double e = now_ms() - s;
        if (e < best)
            best = e;
        if (!rc && it < 2)
            rf_model_outputs_free(&out);
    }
    if (!rc) {
        const rf_tensor *h = &out.last_hidden_state;
        int64_t n = rf_tensor_numel(h);
        double sum = 0, sq = 0;
        for (int64_t i = 0; i < n; i++) {
            float v = ((float *)h->data)[i];
            sum += v;
            sq += (double)v * v;
        }
        double mean = sum / (double)n;
        printf("input     synthetic %ldx3x%dx%d image, device %s\n", batch, size, size, rf_backend_name(be));
        printf("features  [%lld, %lld, %lld], mean %.4f, std %.4f\n", (long long)h->shape[0],
               (long long)h->shape[1], (long long)h->shape[2], mean, sqrt(sq / (double)n - mean * mean));
        const float *logits = out.logits.data;
        int top = 0;
        for (int c = 1; c < in->num_classes; c++)
            if (logits[c] > logits[top])
                top = c;
        printf("logits    [%ld, %d], top class %d (%.4f) - random weights, so no meaning\n", batch,
               in->num_classes, top, logits[top]);
        printf("time      %.1f ms per forward pass (best of 3, batch %ld); %.1f s in all\n", best, batch,
               (now_ms() - t0) / 1e3);
        rf_model_outputs_free(&out);
    }
    free(px);
    rf_model_free(m);
    rf_backend_destroy(be);
    return rc ? cli_fail("%s", err.msg) : CLI_EXIT_OK;
}
