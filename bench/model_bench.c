/*
 * Benchmark driver (not a test): times the forward pass of a checkpoint on a
 * deterministic synthetic input (an image of the model's size, or T tokens
 * for a text model) at the given batch sizes, on the chosen device, and
 * prints one JSON object per batch size with the median and best time and
 * the throughput. With --dump, writes the input and the outputs of the first
 * batch size to a safetensors file so a peer can be checked for computing
 * the same function.
 *
 *   model_bench DIR [--batch 1,8] [--iters N] [--device D] [--precision fp32|fp16]
 *               [--threads N] [--tokens T] [--dump FILE]
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
    const char *dir = NULL, *dump = NULL, *batches = "1,8", *device = "cpu", *precision = "fp32";
    int iters = 10, threads = 0, tokens = 128;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc)
            batches = argv[++i];
        else if (strcmp(argv[i], "--iters") == 0 && i + 1 < argc)
            iters = atoi(argv[++i]);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--dump") == 0 && i + 1 < argc)
            dump = argv[++i];
        else if (strcmp(argv[i], "--device") == 0 && i + 1 < argc)
            device = argv[++i];
        else if (strcmp(argv[i], "--tokens") == 0 && i + 1 < argc)
            tokens = atoi(argv[++i]);
        else if (strcmp(argv[i], "--precision") == 0 && i + 1 < argc)
            precision = argv[++i];
        else if (!dir)
            dir = argv[i];
        else {
            fprintf(stderr, "usage: model_bench DIR [--batch 1,8] [--iters N] [--device D] [--precision fp32|fp16] [--threads N] [--tokens T] [--dump FILE]\n");
            return 2;
        }
    }
    if (!dir || iters < 1 || iters > 10000) {
        fprintf(stderr, "usage: model_bench DIR [--batch 1,8] [--iters N] [--device D] [--precision fp32|fp16] [--threads N] [--tokens T] [--dump FILE]\n");
        return 2;
    }
    rf_err err;
    rf_backend *be;
    rf_model *m;
    rf_precision prec = strcmp(precision, "fp16") == 0 ? RF_PRECISION_FP16 : RF_PRECISION_FP32;
    if (rf_backend_create(&be, device, threads, &err) || rf_backend_set_precision(be, prec, &err) ||
        rf_model_load(&m, dir, be, &err)) {
        fprintf(stderr, "model_bench: %s\n", err.msg);
        return 2;
    }
    if (rf_backend_warning(be)) {
        fprintf(stderr, "model_bench: %s\n", rf_backend_warning(be));
        return 2; /* timing the fallback would be timing the wrong device */
    }
    const rf_model_info *info = rf_model_get_info(m);
    char list[256];
    snprintf(list, sizeof list, "%s", batches);
    int first = 1;
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        int batch = atoi(tok);
        if (batch < 1 || batch > 1024) {
            fprintf(stderr, "model_bench: bad batch size '%s'\n", tok);
            return 2;
        }
        int text = info->arch == RF_ARCH_BERT;
        int S = info->image_size, C = info->channels;
        int64_t shape[4] = {batch, C, S, S}, ids_shape[2] = {batch, tokens};
        int64_t n = text ? (int64_t)batch * tokens : (int64_t)batch * C * S * S;
        float *px = malloc((size_t)n * sizeof(float));
        int32_t *ids = malloc((size_t)n * sizeof(int32_t));
        fill_pixels(px, n);
        for (int64_t i = 0; i < n; i++) /* deterministic ids spread over the vocabulary */
            ids[i] = (int32_t)((i * 7919 + 13) % (info->vocab_size > 0 ? info->vocab_size : 1));
        rf_tensor pixels = rf_tensor_make(RF_F32, px, 4, shape), id_tensor = rf_tensor_make(RF_I32, ids, 2, ids_shape);
        rf_model_inputs in = {0};
        if (text)
            in.input_ids = &id_tensor;
        else
            in.pixel_values = &pixels;
        rf_model_outputs out;
        if (rf_model_forward(m, &in, &out, &err)) { /* warm-up: sizes the arena, touches pages */
            fprintf(stderr, "model_bench: %s\n", err.msg);
            return 2;
        }
        if (dump && first) {
            rf_st_out t[3] = {text ? (rf_st_out){"input_ids", RF_ST_I32, 2, ids_shape, ids}
                                   : (rf_st_out){"pixel_values", RF_ST_F32, 4, shape, px},
                              {"features", RF_ST_F32, 3, out.last_hidden_state.shape, out.last_hidden_state.data},
                              {"logits", RF_ST_F32, 2, out.logits.shape, out.logits.data}};
            if (rf_safetensors_write(dump, t, out.logits.data ? 3 : 2, &err)) {
                fprintf(stderr, "model_bench: %s\n", err.msg);
                return 2;
            }
        }
        rf_model_outputs_free(&out);
        double *times = malloc((size_t)iters * sizeof(double));
        for (int it = 0; it < iters; it++) {
            double t0 = now_s();
            if (rf_model_forward(m, &in, &out, &err)) {
                fprintf(stderr, "model_bench: %s\n", err.msg);
                return 2;
            }
            times[it] = now_s() - t0;
            rf_model_outputs_free(&out);
        }
        qsort(times, (size_t)iters, sizeof *times, cmp_double);
        printf("{\"impl\": \"radfuse\", \"device\": \"%s\", \"precision\": \"%s\", \"arch\": \"%s\", "
               "\"batch\": %d, \"iters\": %d, \"median_ms\": %.3f, \"min_ms\": %.3f, \"per_second\": %.1f}\n",
               rf_backend_name(be), precision, rf_arch_name(info->arch), batch, iters, times[iters / 2] * 1e3,
               times[0] * 1e3, batch / times[iters / 2]);
        fflush(stdout);
        free(times);
        free(px);
        free(ids);
        first = 0;
    }
    rf_model_free(m);
    rf_backend_destroy(be);
    return 0;
}
