/*
 * rf_gemm_pack / rf_gemm_nt_packed / rf_gemm against a double-precision
 * triple loop, over odd shapes (1, 3, 17, 197, non-multiples of the
 * micro-tile, K spanning several cache blocks), every epilogue combination
 * (bias, each activation, residual separate or aliasing C), row strides
 * wider than the rows, and pools of 1, 2 and 3 threads. The whole suite runs
 * once per micro-kernel by setting RADFUSE_GEMM_KERNEL (generic, avx2,
 * avx512); a kernel the CPU lacks falls back to a supported one, which is
 * reported.
 *
 * Tolerance: an f32 sum of K products, accumulated in any order, has an
 * error that grows like sqrt(K) * eps * sum_k |a_k b_k| (random rounding);
 * the activation (slope <= 1.13) and the residual add contribute a few ulps
 * of the final value. Each element must satisfy
 *     |got - want| <= 8 * eps * (sqrt(K) * sum_k |a_k b_k| + |bias| + |want| + |residual|)
 * which is far below the size of any indexing error (a missing or doubled
 * product is about |a_k b_k| ~ 0.25 here, over 1000x the bound for K = 17).
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/cpu_act.h"
#include "runtime/cpu_gemm.h"
#include "tests/testutil.h"

/* Marks padding between rows: it must come back untouched. */
#define SENTINEL 12345.0f

/* sum[i*N+j] = sum_k opA(i,k) opB(k,j) and absum the same over |products|,
 * in double; opA(i,k) = trans_a ? A[k*lda+i] : A[i*lda+k], likewise B. */
static void reference_product(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                              const float *A, int64_t lda, const float *B, int64_t ldb,
                              double *sum, double *absum)
{
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double s = 0, as = 0;
            for (int64_t k = 0; k < K; k++) {
                double a = trans_a ? A[k * lda + i] : A[i * lda + k];
                double b = trans_b ? B[j * ldb + k] : B[k * ldb + j];
                s += a * b;
                as += fabs(a * b);
            }
            sum[i * N + j] = s;
            absum[i * N + j] = as;
        }
}

/*
 * Checks C (row stride ldc, padding filled with SENTINEL) against want with
 * the tolerance above; extra[i*N+j] is the |bias| + |residual| magnitude.
 * Returns the worst |error| / tolerance (<= 1 passes) and counts padding
 * elements that changed.
 */
static double worst_error_ratio(const float *C, int64_t ldc, int64_t M, int64_t N, int64_t K,
                                const double *want, const double *absum, const double *extra,
                                int64_t *padding_changed)
{
    double worst = 0;
    *padding_changed = 0;
    for (int64_t i = 0; i < M; i++) {
        for (int64_t j = 0; j < N; j++) {
            double w = want[i * N + j];
            double tol = 8.0 * FLT_EPSILON *
                             (sqrt((double)K) * absum[i * N + j] + extra[i * N + j] + fabs(w)) +
                         1e-30;
            double got = C[i * ldc + j];
            double r = fabs(got - w) / tol;
            if (!(r <= worst)) /* also catches NaN */
                worst = r != r ? INFINITY : r;
        }
        for (int64_t j = N; j < ldc; j++)
            *padding_changed += C[i * ldc + j] != SENTINEL;
    }
    return worst;
}

enum residual_mode { RES_NONE, RES_SEPARATE, RES_ALIAS_C, RES_MODES };

/*
 * One rf_gemm_nt_packed case: C[M,N] = act(A B^T + bias) + residual with
 * row strides K + pad (A), K + pad (B), N + pad (C and a separate residual).
 */
static void check_nt_packed(rf_pool *pool, int64_t M, int64_t N, int64_t K, int64_t pad,
                            int use_bias, rf_act act, enum residual_mode res_mode, uint64_t seed)
{
    const int64_t lda = K + pad, ldb = K + pad, ldc = N + pad;
    float *A = test_falloc(M * lda), *B = test_falloc(N * ldb), *bias = test_falloc(N);
    float *C = test_falloc(M * ldc), *R = test_falloc(M * ldc);
    double *sum = test_dalloc(M * N), *absum = test_dalloc(M * N);
    double *want = test_dalloc(M * N), *extra = test_dalloc(M * N);
    test_fill_random(A, M * lda, seed, 1.0f);
    test_fill_random(B, N * ldb, seed + 1, 1.0f);
    test_fill_random(bias, N, seed + 2, 1.0f);
    test_fill_random(R, M * ldc, seed + 3, 2.0f);
    for (int64_t i = 0; i < M * ldc; i++)
        C[i] = SENTINEL;
    if (res_mode == RES_ALIAS_C) /* the residual is C's old contents */
        for (int64_t i = 0; i < M; i++)
            memcpy(C + i * ldc, R + i * ldc, (size_t)N * sizeof(float));

    reference_product(0, 1, M, N, K, A, lda, B, ldb, sum, absum);
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            float pre = (float)(sum[i * N + j] + (use_bias ? bias[j] : 0.0));
            double w = rf_act_scalar(pre, act);
            double r = res_mode != RES_NONE ? R[i * ldc + j] : 0.0;
            want[i * N + j] = w + r;
            extra[i * N + j] = (use_bias ? fabs(bias[j]) : 0.0) + fabs(r);
        }

    rf_gemm_packed *packed = NULL;
    rf_err err = {{0}};
    int rc = rf_gemm_pack(&packed, B, N, K, ldb, &err);
    CHECKF(rc == 0, "pack %lldx%lld: %s", (long long)N, (long long)K, err.msg);
    if (rc == 0) {
        CHECK(rf_gemm_packed_n(packed) == N);
        CHECK(rf_gemm_packed_k(packed) == K);
        rf_gemm_epilogue ep = {
            .bias = use_bias ? bias : NULL,
            .act = act,
            .residual = res_mode == RES_SEPARATE ? R : (res_mode == RES_ALIAS_C ? C : NULL),
            .ldr = ldc,
        };
        int plain = !use_bias && act == RF_ACT_NONE && res_mode == RES_NONE;
        rf_gemm_nt_packed(pool, M, A, lda, packed, C, ldc, plain && (seed & 1) ? NULL : &ep);
        int64_t changed = 0;
        double worst = worst_error_ratio(C, ldc, M, N, K, want, absum, extra, &changed);
        CHECKF(worst <= 1.0 && changed == 0,
               "nt_packed M=%lld N=%lld K=%lld pad=%lld bias=%d act=%s residual=%d threads=%d: "
               "error %.3g x tolerance, %lld padding elements changed",
               (long long)M, (long long)N, (long long)K, (long long)pad, use_bias, rf_act_name(act),
               (int)res_mode, rf_pool_threads(pool), worst, (long long)changed);
    }
    rf_gemm_packed_free(packed);
    free(A);
    free(B);
    free(bias);
    free(C);
    free(R);
    free(sum);
    free(absum);
    free(want);
    free(extra);
}

/* One rf_gemm case: C = alpha op(A) op(B), every operand with padded rows. */
static void check_gemm(rf_pool *pool, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                       float alpha, int64_t pad, uint64_t seed)
{
    /* stored shapes: A is [M,K] or [K,M]; B is [K,N] or [N,K] */
    const int64_t a_rows = trans_a ? K : M, a_cols = trans_a ? M : K;
    const int64_t b_rows = trans_b ? N : K, b_cols = trans_b ? K : N;
    const int64_t lda = a_cols + pad, ldb = b_cols + pad, ldc = N + pad;
    float *A = test_falloc(a_rows * lda), *B = test_falloc(b_rows * ldb);
    float *C = test_falloc(M * ldc);
    double *sum = test_dalloc(M * N), *absum = test_dalloc(M * N);
    double *extra = test_dalloc(M * N);
    test_fill_random(A, a_rows * lda, seed, 1.0f);
    test_fill_random(B, b_rows * ldb, seed + 1, 1.0f);
    for (int64_t i = 0; i < M * ldc; i++)
        C[i] = SENTINEL; /* rf_gemm overwrites C; stale values must not leak in */
    reference_product(trans_a, trans_b, M, N, K, A, lda, B, ldb, sum, absum);
    for (int64_t i = 0; i < M * N; i++) {
        sum[i] *= alpha;
        absum[i] *= fabs(alpha);
        extra[i] = 0;
    }
    rf_gemm(pool, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, C, ldc);
    int64_t changed = 0;
    double worst = worst_error_ratio(C, ldc, M, N, K, sum, absum, extra, &changed);
    CHECKF(worst <= 1.0 && changed == 0,
           "gemm ta=%d tb=%d M=%lld N=%lld K=%lld alpha=%g pad=%lld threads=%d: error %.3g x "
           "tolerance, %lld padding elements changed",
           trans_a, trans_b, (long long)M, (long long)N, (long long)K, alpha, (long long)pad,
           rf_pool_threads(pool), worst, (long long)changed);
    free(A);
    free(B);
    free(C);
    free(sum);
    free(absum);
    free(extra);
}

static const int64_t small_m[] = {1, 3, 17, 197};
static const int64_t small_n[] = {1, 3, 17, 64, 100, 197};
static const int64_t small_k[] = {1, 3, 17, 100, 300, 769};
#define COUNT(a) ((int64_t)(sizeof(a) / sizeof((a)[0])))

/* Every small shape once, rotating epilogue, stride padding and pool so all
 * combinations of each with the shapes' edge cases come up. */
static void nt_packed_shapes(rf_pool **pools, int npools, uint64_t seed)
{
    int64_t n = 0;
    for (int64_t mi = 0; mi < COUNT(small_m); mi++)
        for (int64_t ni = 0; ni < COUNT(small_n); ni++)
            for (int64_t ki = 0; ki < COUNT(small_k); ki++, n++) {
                int64_t M = small_m[mi], N = small_n[ni], K = small_k[ki];
                if (M * N * K > 3000000)
                    continue; /* the large shapes have their own cases */
                check_nt_packed(pools[n % npools], M, N, K, (n % 3 == 0) ? 0 : 5 + n % 11,
                                (int)(n % 2), (rf_act)(n % 5), (enum residual_mode)(n % 3),
                                seed + (uint64_t)n);
            }
}

/* Every epilogue combination on shapes with edge tiles in both directions
 * and several K blocks. */
static void nt_packed_epilogues(rf_pool **pools, int npools, uint64_t seed)
{
    int64_t n = 0;
    for (int bias = 0; bias < 2; bias++)
        for (int act = RF_ACT_NONE; act <= RF_ACT_RELU; act++)
            for (int res = RES_NONE; res < RES_MODES; res++, n++) {
                check_nt_packed(pools[n % npools], 37, 83, 401, 3, bias, (rf_act)act,
                                (enum residual_mode)res, seed + (uint64_t)n);
                check_nt_packed(pools[(n + 1) % npools], 5, 130, 9, 0, bias, (rf_act)act,
                                (enum residual_mode)res, seed + 100 + (uint64_t)n);
            }
}

static void gemm_shapes(rf_pool **pools, int npools, uint64_t seed)
{
    static const float alphas[] = {1.0f, 0.125f, -2.0f};
    int64_t n = 0;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (int64_t mi = 0; mi < COUNT(small_m); mi++)
                for (int64_t ni = 0; ni < COUNT(small_n); ni++)
                    for (int64_t ki = 0; ki < COUNT(small_k); ki++, n++) {
                        int64_t M = small_m[mi], N = small_n[ni], K = small_k[ki];
                        if (M * N * K > 3000000)
                            continue;
                        check_gemm(pools[n % npools], ta, tb, M, N, K, alphas[n % 3],
                                   (n % 4 == 0) ? 0 : 1 + n % 13, seed + (uint64_t)n);
                    }
}

/* ViT-B sized problems: several tiles per thread, several K blocks. Run
 * for every kernel, rotating the pool. */
static void large_shapes(rf_pool *pool, uint64_t seed)
{
    check_nt_packed(pool, 197, 768, 768, 0, 1, RF_ACT_NONE, RES_ALIAS_C, seed + 1);
    check_gemm(pool, 0, 1, 197, 197, 64, 0.125f, 2 * 64 * 3, seed + 2); /* q k^T, fused qkv */
    check_gemm(pool, 0, 0, 197, 64, 197, 1.0f, 3, seed + 3);            /* p v */
}

/* Bigger K and N than the kernel loops above, once with the default kernel. */
static void larger_shapes_once(rf_pool **pools, uint64_t seed)
{
    check_nt_packed(pools[2], 197, 1000, 768, 16, 1, RF_ACT_GELU_ERF, RES_NONE, seed + 1);
    check_nt_packed(pools[1], 100, 300, 3072, 0, 1, RF_ACT_NONE, RES_SEPARATE, seed + 2);
    check_gemm(pools[1], 1, 0, 300, 500, 700, 1.0f, 1, seed + 3);
    check_gemm(pools[2], 0, 0, 256, 512, 1024, 0.5f, 0, seed + 4);
}

/* Packed B is tied to the kernel it was packed for: switching the kernel
 * between pack and use must still give right answers. */
static void pack_then_switch_kernel(rf_pool *pool)
{
    const int64_t M = 19, N = 77, K = 131;
    float *A = test_falloc(M * K), *B = test_falloc(N * K), *C = test_falloc(M * N);
    double *sum = test_dalloc(M * N), *absum = test_dalloc(M * N);
    double *extra = test_dalloc(M * N);
    test_fill_random(A, M * K, 77, 1.0f);
    test_fill_random(B, N * K, 78, 1.0f);
    reference_product(0, 1, M, N, K, A, K, B, K, sum, absum);
    for (int64_t i = 0; i < M * N; i++)
        extra[i] = 0;
    static const char *const names[] = {"avx512", "avx2", "generic"};
    for (int p = 0; p < 3; p++) {
        setenv("RADFUSE_GEMM_KERNEL", names[p], 1);
        rf_gemm_packed *packed = NULL;
        rf_err err = {{0}};
        int rc = rf_gemm_pack(&packed, B, N, K, K, &err);
        CHECKF(rc == 0, "pack: %s", err.msg);
        for (int u = 0; rc == 0 && u < 3; u++) {
            setenv("RADFUSE_GEMM_KERNEL", names[u], 1);
            rf_gemm_nt_packed(pool, M, A, K, packed, C, N, NULL);
            int64_t changed = 0;
            double worst = worst_error_ratio(C, N, M, N, K, sum, absum, extra, &changed);
            CHECKF(worst <= 1.0, "packed under %s, used under %s: error %.3g x tolerance",
                   names[p], names[u], worst);
        }
        rf_gemm_packed_free(packed);
    }
    unsetenv("RADFUSE_GEMM_KERNEL");
    free(A);
    free(B);
    free(C);
    free(sum);
    free(absum);
    free(extra);
}

static void bad_arguments(void)
{
    float b[4] = {1, 2, 3, 4};
    rf_gemm_packed *packed = (rf_gemm_packed *)b; /* must be reset to NULL */
    rf_err err = {{0}};
    CHECK(rf_gemm_pack(&packed, b, 0, 2, 2, &err) == RF_EINVAL && packed == NULL);
    CHECK(err.msg[0] != '\0');
    CHECK(rf_gemm_pack(&packed, b, 2, 0, 2, &err) == RF_EINVAL && packed == NULL);
    CHECK(rf_gemm_pack(&packed, b, 2, 2, 1, &err) == RF_EINVAL && packed == NULL);
    CHECK(rf_gemm_pack(&packed, NULL, 2, 2, 2, &err) == RF_EINVAL && packed == NULL);
    rf_gemm_packed_free(NULL);

    /* M = 0 is a no-op; K = 0 gives zeros (the empty sum) */
    float c[4] = {7, 7, 7, 7};
    CHECK(rf_gemm_pack(&packed, b, 2, 2, 2, &err) == 0);
    rf_gemm_nt_packed(NULL, 0, b, 2, packed, c, 2, NULL);
    CHECK(c[0] == 7 && c[3] == 7);
    rf_gemm_packed_free(packed);
    rf_gemm(NULL, 0, 0, 2, 2, 0, 1.0f, b, 2, b, 2, c, 2);
    CHECK(c[0] == 0 && c[1] == 0 && c[2] == 0 && c[3] == 0);
}

/* Whether the CPU can run a kernel (so the suite says what it exercised). */
static int cpu_has(const char *kernel)
{
#if defined(__GNUC__) && defined(__x86_64__)
    if (strcmp(kernel, "avx512") == 0)
        return __builtin_cpu_supports("avx512f");
    if (strcmp(kernel, "avx2") == 0)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    return strcmp(kernel, "generic") == 0;
}

int main(void)
{
    rf_pool *pools[3] = {NULL, NULL, NULL};
    rf_err err = {{0}};
    for (int i = 0; i < 3; i++) {
        if (rf_pool_create(&pools[i], i + 1, &err) != 0) {
            fprintf(stderr, "test_gemm: %s\n", err.msg);
            return 1;
        }
    }

    static const char *const kernels[] = {"generic", "avx2", "avx512"};
    for (int k = 0; k < 3; k++) {
        printf("kernel %s%s\n", kernels[k],
               cpu_has(kernels[k]) ? "" : " (not supported by this CPU: falls back)");
        setenv("RADFUSE_GEMM_KERNEL", kernels[k], 1);
        nt_packed_shapes(pools, 3, 1000 * (uint64_t)k);
        nt_packed_epilogues(pools, 3, 2000 + 1000 * (uint64_t)k);
        gemm_shapes(pools, 3, 3000 + 1000 * (uint64_t)k);
        large_shapes(pools[k], 4000 + 1000 * (uint64_t)k);
    }
    unsetenv("RADFUSE_GEMM_KERNEL");
    larger_shapes_once(pools, 8000);
    pack_then_switch_kernel(pools[1]);
    bad_arguments();

    for (int i = 0; i < 3; i++)
        rf_pool_destroy(pools[i]);
    return test_finish("test_gemm");
}
