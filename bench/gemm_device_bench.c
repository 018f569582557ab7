/*
 * Benchmark driver (not a test): C[M,N] = A[M,K] W[N,K]^T through a
 * backend's linear operation, REPS products recorded in one pass, timed
 * wall-clock around the pass (upload excluded), best of ITERS passes.
 * Prints one JSON object: TFLOP/s counted as 2*M*N*K per product.
 *
 *   gemm_device_bench [--device vulkan] [--precision fp32|fp16] [--size 4096] [--reps 20] [--iters 5]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/backend.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int die(const char *msg)
{
    fprintf(stderr, "gemm_device_bench: %s\n", msg);
    return 2;
}

int main(int argc, char **argv)
{
    const char *device = "vulkan", *precision = "fp32";
    int size = 4096, reps = 20, iters = 5;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--device") == 0)
            device = argv[i + 1];
        else if (strcmp(argv[i], "--size") == 0)
            size = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--reps") == 0)
            reps = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--iters") == 0)
            iters = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--precision") == 0)
            precision = argv[i + 1];
        else
            return die("usage: gemm_device_bench [--device D] [--precision fp32|fp16] [--size N] [--reps R] [--iters I]");
    }
    if (size < 1 || size > 65536 || reps < 1 || iters < 1)
        return die("bad arguments");
    rf_err err;
    rf_backend *be;
    if (rf_backend_create(&be, device, 0, &err))
        return die(err.msg);
    if (rf_backend_warning(be))
        return die(rf_backend_warning(be));
    if (rf_backend_set_precision(be, strcmp(precision, "fp16") == 0 ? RF_PRECISION_FP16 : RF_PRECISION_FP32, &err))
        return die(err.msg);
    const rf_backend_ops *o = be->ops;
    int64_t n = size, shape[2] = {n, n}, bshape[1] = {n};
    size_t bytes = (size_t)(n * n) * sizeof(float);
    float *host = malloc(bytes), *hbias = calloc((size_t)n, sizeof(float));
    if (!host || !hbias)
        return die("out of memory");
    for (int64_t i = 0; i < n * n; i++)
        host[i] = (float)((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
    /* weights are prepared from host memory, as a model load does */
    rf_linear l = {.w = rf_tensor_make(RF_F32, host, 2, shape), .b = rf_tensor_make(RF_F32, hbias, 1, bshape)};
    if (o->linear_prepare(be, &l, &err))
        return die(err.msg);
    rf_buffer *bufs[4];
    void *addr[4];
    for (int i = 0; i < 4; i++)
        if (o->buffer_alloc(be, i == 3 ? (size_t)n * sizeof(float) : bytes, &bufs[i], &addr[i], &err))
            return die(err.msg);
    rf_tensor a = rf_tensor_make(RF_F32, addr[0], 2, shape), c = rf_tensor_make(RF_F32, addr[2], 2, shape);
    rf_tensor w = rf_tensor_make(RF_F32, addr[1], 2, shape), b = rf_tensor_make(RF_F32, addr[3], 1, bshape);
    if (o->upload(be, &a, host, &err) || o->upload(be, &w, host, &err) || o->upload(be, &b, hbias, &err))
        return die(err.msg);
    l.w = w;
    l.b = b;
    double best = 1e30;
    for (int it = 0; it < iters + 1; it++) { /* the first pass builds pipelines */
        double t0 = now_s();
        if (o->begin(be, &err))
            return die(err.msg);
        for (int r = 0; r < reps; r++)
            if (o->linear(be, &c, &a, &l, RF_ACT_NONE, NULL, &err))
                return die(err.msg);
        if (o->end(be, 1, &err))
            return die(err.msg);
        double t = now_s() - t0;
        if (it > 0 && t < best)
            best = t;
    }
    double flops = 2.0 * (double)n * n * n * reps;
    printf("{\"impl\": \"radfuse\", \"device\": \"%s\", \"precision\": \"%s\", \"gemm\": %d, \"reps\": %d, "
           "\"ms_per_product\": %.3f, \"tflops\": %.2f}\n",
           rf_backend_name(be), precision, size, reps, best / reps * 1e3, flops / best / 1e12);
    o->linear_release(be, &l);
    for (int i = 0; i < 4; i++)
        o->buffer_free(be, bufs[i]);
    free(host);
    free(hbias);
    rf_backend_destroy(be);
    return 0;
}
