/*
 * f32 matrix multiplication for the CPU backend.
 *
 * rf_gemm_nt_packed computes C[M,N] = act(A[M,K] B[N,K]^T + bias) + residual
 * with B packed once (weights are packed at model load). rf_gemm computes a
 * plain C = alpha op(A) op(B) for operands that change every call. Both split
 * work over the pool and pick the widest SIMD kernel the CPU supports at run
 * time (AVX-512, AVX2+FMA, portable C).
 */
#ifndef RADFUSE_RUNTIME_CPU_GEMM_H
#define RADFUSE_RUNTIME_CPU_GEMM_H

#include <stdint.h>

#include "runtime/backend.h"
#include "runtime/threadpool.h"

typedef struct rf_gemm_packed rf_gemm_packed;

/* Packs B [N, K] (row stride ldb) for rf_gemm_nt_packed. */
int rf_gemm_pack(rf_gemm_packed **out, const float *B, int64_t N, int64_t K, int64_t ldb,
                 rf_err *err);
void rf_gemm_packed_free(rf_gemm_packed *p);
int64_t rf_gemm_packed_n(const rf_gemm_packed *p);
int64_t rf_gemm_packed_k(const rf_gemm_packed *p);

typedef struct rf_gemm_epilogue {
    const float *bias;     /* [N] or NULL */
    rf_act act;            /* applied after the bias */
    const float *residual; /* [M, N] with row stride ldr, added last; may alias C */
    int64_t ldr;
} rf_gemm_epilogue;

/* C (row stride ldc) = epilogue(A (row stride lda) * B^T). ep may be NULL. */
void rf_gemm_nt_packed(rf_pool *pool, int64_t M, const float *A, int64_t lda,
                       const rf_gemm_packed *B, float *C, int64_t ldc,
                       const rf_gemm_epilogue *ep);

/* C[M,N] = alpha * op(A) op(B), op(A) is [M,K], op(B) is [K,N]; row-major with
 * leading dimensions lda, ldb, ldc. C must not alias A or B. */
void rf_gemm(rf_pool *pool, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
             float alpha, const float *A, int64_t lda, const float *B, int64_t ldb, float *C,
             int64_t ldc);

#endif
