/*
 * Benchmark driver (not a test): times the forward pass of a checkpoint on a
 * deterministic synthetic input at the given batch sizes, on the CPU backend,
 * and prints one JSON object per batch size. With --dump, writes the input and
 * the outputs of the first batch size to a safetensors file so the peer can be
 * checked for computing the same function.
 *
 *   vit_bench DIR [--batch 1,8] [--iters N] [--threads N] [--dump FILE]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "radfuse/runtime.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Deterministic pseudo-random pixels in about [-2, 2], as normalized images are. */
static void fill_pixels(float *px, int64_t n)
{
    uint64_t s = 0x243F6A8885A308D3ull;
    for (int64_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        px[i] = (float)((double)(s >> 40) / 16777216.0 * 4.0 - 2.0);
    }
}

int main(int argc, char **argv)
{
    const char *dir = NULL, *dump = NULL, *batches = "1,8";
    int iters = 10, threads = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc)
            batches = argv[++i];
        else if (strcmp(argv[i], "--iters") == 0 && i + 1 < argc)
            iters = atoi(argv[++i]);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--dump") == 0 && i + 1 < argc)
            dump = argv[++i];
        else if (!dir)
            dir = argv[i];
        else {
            fprintf(stderr, "usage: vit_bench DIR [--batch 1,8] [--iters N] [--threads N] [--dump FILE]\n");
            return 2;
        }
    }
    if (!dir || iters < 1 || iters > 10000) {
        fprintf(stderr, "usage: vit_bench DIR [--batch 1,8] [--iters N] [--threads N] [--dump FILE]\n");
        return 2;
    }
    rf_err err;
    rf_backend *be;
    rf_model *m;
    if (rf_backend_create(&be, "cpu", threads, &err) || rf_model_load(&m, dir, be, &err)) {
        fprintf(stderr, "vit_bench: %s\n", err.msg);
        return 2;
    }
    const rf_model_info *info = rf_model_get_info(m);
    char list[256];
    snprintf(list, sizeof list, "%s", batches);
    int first = 1;
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        int batch = atoi(tok);
        if (batch < 1 || batch > 1024) {
            fprintf(stderr, "vit_bench: bad batch size '%s'\n", tok);
            return 2;
        }
        int S = info->image_size, C = info->channels;
        int64_t shape[4] = {batch, C, S, S};
        int64_t n = (int64_t)batch * C * S * S;
        float *px = malloc((size_t)n * sizeof(float));
        fill_pixels(px, n);
        rf_tensor pixels = rf_tensor_make(RF_F32, px, 4, shape);
        rf_model_inputs in = {.pixel_values = &pixels};
        rf_model_outputs out;
        if (rf_model_forward(m, &in, &out, &err)) { /* warm-up: sizes the arena, touches pages */
            fprintf(stderr, "vit_bench: %s\n", err.msg);
            return 2;
        }
        if (dump && first) {
            rf_st_out t[3] = {{"pixel_values", RF_ST_F32, 4, shape, px},
                              {"features", RF_ST_F32, 3, out.last_hidden_state.shape, out.last_hidden_state.data},
                              {"logits", RF_ST_F32, 2, out.logits.shape, out.logits.data}};
            if (rf_safetensors_write(dump, t, out.logits.data ? 3 : 2, &err)) {
                fprintf(stderr, "vit_bench: %s\n", err.msg);
                return 2;
            }
        }
        rf_model_outputs_free(&out);
        double *times = malloc((size_t)iters * sizeof(double));
        for (int it = 0; it < iters; it++) {
            double t0 = now_s();
            if (rf_model_forward(m, &in, &out, &err)) {
                fprintf(stderr, "vit_bench: %s\n", err.msg);
                return 2;
            }
            times[it] = now_s() - t0;
            rf_model_outputs_free(&out);
        }
        qsort(times, (size_t)iters, sizeof *times, cmp_double);
        printf("{\"impl\": \"radfuse\", \"batch\": %d, \"iters\": %d, \"median_ms\": %.2f, \"min_ms\": %.2f}\n",
               batch, iters, times[iters / 2] * 1e3, times[0] * 1e3);
        fflush(stdout);
        free(times);
        free(px);
        first = 0;
    }
    rf_model_free(m);
    rf_backend_destroy(be);
    return 0;
}
