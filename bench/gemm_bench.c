/*
 * GEMM throughput benchmark (not a test): times rf_gemm_nt_packed on the
 * ViT-B/16 linear-layer shapes, rf_gemm on a 1024^3 problem and on the
 * attention shapes, and prints GFLOP/s (2*M*N*K flops per call).
 *
 *   gemm_bench [threads [seconds]]     defaults: 2 threads, 0.5 s per shape
 *
 * RADFUSE_GEMM_KERNEL=avx512|avx2|generic forces a narrower micro-kernel.
 *
 * Built with -DWITH_OPENBLAS it also times OpenBLAS's cblas_sgemm on the same
 * shapes and thread count (CMake does not link OpenBLAS; see docs/gemm.md):
 *
 *   gcc -O2 -std=gnu11 -DWITH_OPENBLAS -I include -I . \
 *       -I /usr/include/x86_64-linux-gnu/openblas-pthread \
 *       bench/gemm_bench.c runtime/cpu_gemm.c runtime/cpu_act.c runtime/threadpool.c \
 *       runtime/tensor.c -o gemm_bench_openblas -lopenblas -lpthread -lm
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/cpu_gemm.h"

#ifdef WITH_OPENBLAS
#include <cblas.h>
#endif

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float *random_matrix(int64_t n, unsigned seed)
{
    float *x = malloc((size_t)n * sizeof *x);
    if (!x)
        return NULL;
    uint32_t s = seed * 2654435761u + 1;
    for (int64_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)(s >> 8) / 16777216.0f - 0.5f;
    }
    return x;
}

/* One benchmarked operation: run(ctx) performs a single GEMM. */
typedef void (*bench_fn)(void *ctx);

/* Repeats fn for at least `seconds` after one warm-up call and returns the
 * best GFLOP/s over 5 timed batches (the best, not the mean, because other
 * load on the machine only ever slows a run down). */
static double measure(bench_fn fn, void *ctx, double flops, double seconds)
{
    fn(ctx);
    double t0 = now_s();
    int64_t reps = 0;
    do {
        fn(ctx);
        reps++;
    } while (now_s() - t0 < seconds / 5);
    double best = 0;
    for (int batch = 0; batch < 5; batch++) {
        double start = now_s();
        for (int64_t r = 0; r < reps; r++)
            fn(ctx);
        double gflops = flops * (double)reps / (now_s() - start) / 1e9;
        if (gflops > best)
            best = gflops;
    }
    return best;
}

typedef struct gemm_case {
    rf_pool *pool;
    int64_t M, N, K;
    int trans_a, trans_b;
    const float *A, *B;
    float *C;
    const rf_gemm_packed *packed;
    rf_gemm_epilogue ep;
} gemm_case;

static void run_packed(void *ctx)
{
    gemm_case *g = ctx;
    rf_gemm_nt_packed(g->pool, g->M, g->A, g->K, g->packed, g->C, g->N, &g->ep);
}

static void run_general(void *ctx)
{
    gemm_case *g = ctx;
    rf_gemm(g->pool, g->trans_a, g->trans_b, g->M, g->N, g->K, 1.0f, g->A,
            g->trans_a ? g->M : g->K, g->B, g->trans_b ? g->K : g->N, g->C, g->N);
}

#ifdef WITH_OPENBLAS
static void run_openblas(void *ctx)
{
    gemm_case *g = ctx;
    cblas_sgemm(CblasRowMajor, g->trans_a ? CblasTrans : CblasNoTrans,
                g->trans_b ? CblasTrans : CblasNoTrans, (int)g->M, (int)g->N, (int)g->K, 1.0f,
                g->A, g->trans_a ? (int)g->M : (int)g->K, g->B,
                g->trans_b ? (int)g->K : (int)g->N, 0.0f, g->C, (int)g->N);
}
#endif

/* Times one shape; packed != 0 uses rf_gemm_nt_packed (B given as [N, K]). */
static int bench_shape(rf_pool *pool, const char *label, int64_t M, int64_t N, int64_t K,
                       int trans_a, int trans_b, int packed, double seconds)
{
    gemm_case g = {.pool = pool, .M = M, .N = N, .K = K, .trans_a = trans_a,
                   .trans_b = trans_b};
    float *A = random_matrix(M * K, 1), *B = random_matrix(N * K, 2);
    float *C = malloc((size_t)(M * N) * sizeof *C);
    rf_gemm_packed *pk = NULL;
    rf_err err;
    int rc = 0;
    if (!A || !B || !C) {
        fprintf(stderr, "gemm_bench: out of memory\n");
        rc = 1;
        goto out;
    }
    g.A = A;
    g.B = B;
    g.C = C;
    if (packed && rf_gemm_pack(&pk, B, N, K, K, &err) != 0) {
        fprintf(stderr, "gemm_bench: %s\n", err.msg);
        rc = 1;
        goto out;
    }
    g.packed = pk;
    double flops = 2.0 * (double)M * (double)N * (double)K;
    double own = measure(packed ? run_packed : run_general, &g, flops, seconds);
    printf("%-28s %5lld %5lld %5lld %9.1f", label, (long long)M, (long long)N, (long long)K, own);
#ifdef WITH_OPENBLAS
    double ob = measure(run_openblas, &g, flops, seconds);
    printf(" %9.1f %6.2fx", ob, own / ob);
#endif
    printf("\n");
    fflush(stdout);
out:
    rf_gemm_packed_free(pk);
    free(A);
    free(B);
    free(C);
    return rc;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    double seconds = argc > 2 ? atof(argv[2]) : 0.5;
    if (threads < 1 || seconds <= 0) {
        fprintf(stderr, "usage: gemm_bench [threads [seconds]]\n");
        return 2;
    }
    rf_pool *pool = NULL;
    rf_err err;
    if (rf_pool_create(&pool, threads, &err) != 0) {
        fprintf(stderr, "gemm_bench: %s\n", err.msg);
        return 1;
    }
#ifdef WITH_OPENBLAS
    openblas_set_num_threads(threads);
    printf("threads %d, kernel %s, OpenBLAS %s\n", threads,
           getenv("RADFUSE_GEMM_KERNEL") ? getenv("RADFUSE_GEMM_KERNEL") : "auto",
           openblas_get_config());
    printf("%-28s %5s %5s %5s %9s %9s %7s\n", "case", "M", "N", "K", "radfuse", "openblas",
           "ratio");
#else
    printf("threads %d, kernel %s\n", threads,
           getenv("RADFUSE_GEMM_KERNEL") ? getenv("RADFUSE_GEMM_KERNEL") : "auto");
    printf("%-28s %5s %5s %5s %9s\n", "case", "M", "N", "K", "GFLOP/s");
#endif
    static const struct {
        const char *label;
        int64_t N, K;
    } vit[] = {
        {"nt_packed qkv", 2304, 768},
        {"nt_packed attn-out", 768, 768},
        {"nt_packed mlp-up", 3072, 768},
        {"nt_packed mlp-down", 768, 3072},
    };
    static const int64_t tokens[] = {197, 1576};
    int rc = 0;
    for (size_t t = 0; t < sizeof tokens / sizeof tokens[0]; t++)
        for (size_t i = 0; i < sizeof vit / sizeof vit[0]; i++)
            rc |= bench_shape(pool, vit[i].label, tokens[t], vit[i].N, vit[i].K, 0, 1, 1,
                              seconds);
    rc |= bench_shape(pool, "nt_packed square", 1024, 1024, 1024, 0, 1, 1, seconds);
    rc |= bench_shape(pool, "gemm NN square", 1024, 1024, 1024, 0, 0, 0, seconds);
    rc |= bench_shape(pool, "gemm NT square", 1024, 1024, 1024, 0, 1, 0, seconds);
    rc |= bench_shape(pool, "gemm NT scores (q k^T)", 197, 197, 64, 0, 1, 0, seconds);
    rc |= bench_shape(pool, "gemm NN context (p v)", 197, 64, 197, 0, 0, 0, seconds);
    rf_pool_destroy(pool);
    return rc;
}
