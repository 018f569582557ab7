/*
 * f32 GEMM for the CPU backend (see cpu_gemm.h for the contracts).
 *
 * Structure (GotoBLAS/BLIS style, adapted to transformer shapes):
 *
 *   C is cut into tiles (whole micro-tiles, bounded by the cache blocking
 *   below); each tile is one rf_pool task, so threads never share an output
 *   element and need no locks. The tile grid is chosen per call so that the
 *   tiles divide evenly among the threads (M = 197 on two threads must not
 *   leave one thread idle for the last tile).
 *
 *   Within a tile, K is walked in blocks of at most KC. For each K block the
 *   tile is swept micro-tile by micro-tile (MR x NR) by a register-blocked
 *   micro-kernel: MR rows of A are broadcast element by element against NR
 *   columns of packed B held in vector registers, accumulating MR x NR sums
 *   in registers over the whole K block. The loop order (micro-rows outer,
 *   B panels inner) keeps the MR x KC slice of A in L1 and the KC x NC block
 *   of B in L2.
 *
 *   B is packed into panels of NR columns: panel p holds, for k = 0..K-1,
 *   the NR values B[p*NR + j][k] contiguously (zero-padded past N), so the
 *   micro-kernel streams B with unit stride. rf_gemm_pack does this once per
 *   weight; rf_gemm packs each KC x NC block of op(B) on the fly into a
 *   stack buffer. A is read in place (row-major, any lda): a micro-kernel
 *   broadcast is a scalar load whatever the layout, and the hardware
 *   prefetcher follows MR sequential row streams, so packing A would only
 *   cost time. Only a transposed A (rf_gemm with trans_a) is first copied,
 *   MR rows at a time, into a row-major stack buffer.
 *
 *   rf_gemm_nt_packed accumulates each tile in a private stack buffer and
 *   applies the epilogue (bias, activation, residual) once per tile after
 *   the last K block. Accumulating in C directly is not possible in general:
 *   the residual may alias C, so C's old contents must survive until the
 *   activation of the complete sum has been computed.
 *
 * Kernels: AVX-512F (6 x 64), AVX2+FMA (6 x 16) and portable C (4 x 16),
 * the SIMD ones with narrower variants for the last panel of N. The widest
 * the CPU supports is chosen at run time with __builtin_cpu_supports (per
 * rf_gemm call; for packed B at pack time, since the panel width depends on
 * it, and stored with the panels). The SIMD kernels carry target attributes
 * so the file builds with plain -O2 and no -march flag. The environment
 * variable RADFUSE_GEMM_KERNEL=avx512|avx2|generic selects a narrower kernel
 * for testing and benchmarking; a kernel the CPU lacks is never selected.
 *
 * Stack: a pool task uses about 100 KiB (nt_packed) or 210 KiB (rf_gemm)
 * of its thread's stack for tile buffers, so no call allocates memory.
 */
#include <stdlib.h>
#include <string.h>

#include "runtime/cpu_act.h"
#include "runtime/cpu_gemm.h"

#if defined(__GNUC__) && defined(__x86_64__)
#define RF_GEMM_X86 1
#include <immintrin.h>
#else
#define RF_GEMM_X86 0
#endif

/* ---- micro-kernels ----------------------------------------------------- */

/*
 * A micro-kernel computes one MR x NR tile:
 *
 *   c[i][j] = alpha * sum_{k < kc} a_i[k] * b[k*NR + j]  (+ c[i][j] if accumulate)
 *
 * for i < MR, j < NR, where a_i = a + min(i, rows - 1) * lda: rows past the
 * valid `rows` (1 <= rows <= MR) re-read the last valid row, so edge tiles
 * never read outside A and the duplicated results land in rows the caller
 * discards. b is a packed panel (kc x NR, unit stride). c has row stride ldc
 * and all MR x NR elements must be writable.
 */
typedef void (*ukernel_fn)(int64_t kc, const float *a, int64_t lda, int rows, const float *b,
                           float *c, int64_t ldc, float alpha, int accumulate);

#define GEN_MR 4
#define GEN_NR 16

/* Portable kernel: the j loops have constant trip counts the compiler can
 * vectorize for whatever SIMD the baseline target has. */
static void ukernel_generic(int64_t kc, const float *a, int64_t lda, int rows, const float *b,
                            float *c, int64_t ldc, float alpha, int accumulate)
{
    const float *ap[GEN_MR];
    for (int i = 0; i < GEN_MR; i++)
        ap[i] = a + (int64_t)(i < rows ? i : rows - 1) * lda;
    /* fully unrolled so the sums can live in vector registers */
    float acc[GEN_MR][GEN_NR];
#pragma GCC unroll 64
    for (int i = 0; i < GEN_MR; i++)
#pragma GCC unroll 64
        for (int j = 0; j < GEN_NR; j++)
            acc[i][j] = 0.0f;
    for (int64_t k = 0; k < kc; k++, b += GEN_NR) {
#pragma GCC unroll 64
        for (int i = 0; i < GEN_MR; i++) {
            float ai = ap[i][k];
#pragma GCC unroll 64
            for (int j = 0; j < GEN_NR; j++)
                acc[i][j] += ai * b[j];
        }
    }
#pragma GCC unroll 64
    for (int i = 0; i < GEN_MR; i++) {
        float *ci = c + i * ldc;
#pragma GCC unroll 64
        for (int j = 0; j < GEN_NR; j++)
            ci[j] = alpha * acc[i][j] + (accumulate ? ci[j] : 0.0f);
    }
}

#if RF_GEMM_X86

/*
 * The SIMD kernels come in widths: variant v computes only the first v
 * vectors of the NR columns (b still advances by NR per k), so a panel with
 * few valid columns at the right edge of N costs v/NV of a full one. Each
 * variant is the always-inlined body with a constant vector count, which the
 * compiler fully unrolls so the sums stay in registers.
 */

#define AVX2_MR 6
#define AVX2_NV 2 /* NR = 16 = 2 ymm; 12 accumulators + 2 B + 1 broadcast of 16 ymm */

__attribute__((target("avx2,fma"), always_inline)) static inline void
avx2_body(const int nv, int64_t kc, const float *a, int64_t lda, int rows, const float *b,
          float *c, int64_t ldc, float alpha, int accumulate)
{
    const float *ap[AVX2_MR];
#pragma GCC unroll 16
    for (int i = 0; i < AVX2_MR; i++)
        ap[i] = a + (int64_t)(i < rows ? i : rows - 1) * lda;
    __m256 acc[AVX2_MR][AVX2_NV];
#pragma GCC unroll 16
    for (int i = 0; i < AVX2_MR; i++)
#pragma GCC unroll 4
        for (int j = 0; j < nv; j++)
            acc[i][j] = _mm256_setzero_ps();
    for (int64_t k = 0; k < kc; k++, b += 8 * AVX2_NV) {
        __m256 bv[AVX2_NV];
#pragma GCC unroll 4
        for (int j = 0; j < nv; j++)
            bv[j] = _mm256_loadu_ps(b + 8 * j);
#pragma GCC unroll 16
        for (int i = 0; i < AVX2_MR; i++) {
            __m256 ai = _mm256_broadcast_ss(ap[i] + k);
#pragma GCC unroll 4
            for (int j = 0; j < nv; j++)
                acc[i][j] = _mm256_fmadd_ps(ai, bv[j], acc[i][j]);
        }
    }
    __m256 va = _mm256_set1_ps(alpha);
#pragma GCC unroll 16
    for (int i = 0; i < AVX2_MR; i++) {
        float *ci = c + i * ldc;
#pragma GCC unroll 4
        for (int j = 0; j < nv; j++) {
            __m256 v = _mm256_mul_ps(va, acc[i][j]);
            if (accumulate)
                v = _mm256_add_ps(v, _mm256_loadu_ps(ci + 8 * j));
            _mm256_storeu_ps(ci + 8 * j, v);
        }
    }
}

#define AVX2_VARIANT(nv)                                                                    \
    __attribute__((target("avx2,fma"))) static void ukernel_avx2_##nv(                      \
        int64_t kc, const float *a, int64_t lda, int rows, const float *b, float *c,        \
        int64_t ldc, float alpha, int accumulate)                                           \
    {                                                                                       \
        avx2_body(nv, kc, a, lda, rows, b, c, ldc, alpha, accumulate);                      \
    }
AVX2_VARIANT(1)
AVX2_VARIANT(2)

#define AVX512_MR 6
#define AVX512_NV 4 /* NR = 64 = 4 zmm; 24 accumulators + 4 B + 1 broadcast of 32 zmm */

__attribute__((target("avx512f"), always_inline)) static inline void
avx512_body(const int nv, int64_t kc, const float *a, int64_t lda, int rows, const float *b,
            float *c, int64_t ldc, float alpha, int accumulate)
{
    const float *ap[AVX512_MR];
#pragma GCC unroll 16
    for (int i = 0; i < AVX512_MR; i++)
        ap[i] = a + (int64_t)(i < rows ? i : rows - 1) * lda;
    __m512 acc[AVX512_MR][AVX512_NV];
#pragma GCC unroll 16
    for (int i = 0; i < AVX512_MR; i++)
#pragma GCC unroll 4
        for (int j = 0; j < nv; j++)
            acc[i][j] = _mm512_setzero_ps();
    for (int64_t k = 0; k < kc; k++, b += 16 * AVX512_NV) {
        __m512 bv[AVX512_NV];
#pragma GCC unroll 4
        for (int j = 0; j < nv; j++)
            bv[j] = _mm512_loadu_ps(b + 16 * j);
#pragma GCC unroll 16
        for (int i = 0; i < AVX512_MR; i++) {
            __m512 ai = _mm512_set1_ps(ap[i][k]);
#pragma GCC unroll 4
            for (int j = 0; j < nv; j++)
                acc[i][j] = _mm512_fmadd_ps(ai, bv[j], acc[i][j]);
        }
    }
    __m512 va = _mm512_set1_ps(alpha);
#pragma GCC unroll 16
    for (int i = 0; i < AVX512_MR; i++) {
        float *ci = c + i * ldc;
#pragma GCC unroll 4
        for (int j = 0; j < nv; j++) {
            __m512 v = _mm512_mul_ps(va, acc[i][j]);
            if (accumulate)
                v = _mm512_add_ps(v, _mm512_loadu_ps(ci + 16 * j));
            _mm512_storeu_ps(ci + 16 * j, v);
        }
    }
}

#define AVX512_VARIANT(nv)                                                                  \
    __attribute__((target("avx512f"))) static void ukernel_avx512_##nv(                     \
        int64_t kc, const float *a, int64_t lda, int rows, const float *b, float *c,        \
        int64_t ldc, float alpha, int accumulate)                                           \
    {                                                                                       \
        avx512_body(nv, kc, a, lda, rows, b, c, ldc, alpha, accumulate);                    \
    }
AVX512_VARIANT(1)
AVX512_VARIANT(2)
AVX512_VARIANT(3)
AVX512_VARIANT(4)

#endif /* RF_GEMM_X86 */

/* ---- kernel table and selection ----------------------------------------- */

typedef enum gemm_kernel_id {
    KERNEL_GENERIC = 0,
    KERNEL_AVX2,
    KERNEL_AVX512,
    KERNEL_COUNT
} gemm_kernel_id;

/* A micro-kernel family with its shape and the cache blocking tuned for it. */
typedef struct gemm_kernel {
    const char *name;
    int mr, nr; /* micro-tile */
    int lanes;  /* width step of the variants: fn[v - 1] computes v * lanes columns */
    ukernel_fn fn[4];
} gemm_kernel;

static const gemm_kernel kernels[KERNEL_COUNT] = {
    [KERNEL_GENERIC] = {"generic", GEN_MR, GEN_NR, GEN_NR, {ukernel_generic}},
#if RF_GEMM_X86
    [KERNEL_AVX2] = {"avx2", AVX2_MR, 8 * AVX2_NV, 8, {ukernel_avx2_1, ukernel_avx2_2}},
    [KERNEL_AVX512] = {"avx512", AVX512_MR, 16 * AVX512_NV, 16,
                       {ukernel_avx512_1, ukernel_avx512_2, ukernel_avx512_3, ukernel_avx512_4}},
#endif
};

/* Largest micro-tile over all kernels, for the edge buffer. */
#define MAX_MR 8
#define MAX_NR 64
#if RF_GEMM_X86
_Static_assert(AVX512_MR <= MAX_MR && 16 * AVX512_NV <= MAX_NR, "edge buffer too small");
_Static_assert(AVX2_MR <= MAX_MR && 8 * AVX2_NV <= MAX_NR, "edge buffer too small");
#endif
_Static_assert(GEN_MR <= MAX_MR && GEN_NR <= MAX_NR, "edge buffer too small");

/*
 * Cache blocking (the same for all kernels; a sweep of MC 48..192, NC
 * 128..512, KC 192..512 on Zen 5 moved nt_packed by less than the run-to-run
 * noise, see docs/gemm.md). KC x NR of B (64 KiB at NR = 64) streams from L2
 * per micro-kernel call while MR x KC of A (6 KiB) stays in L1.
 *
 * rf_gemm_nt_packed: tiles of at most NT_MC x NT_NC, each accumulated in a
 * stack buffer (96 KiB); B, already packed, is read in place.
 * rf_gemm: tiles of at most GEN_MAX_ROWS x GEN_NC; each K block of op(B)
 * (GEN_KC x GEN_NC, 192 KiB of stack) is packed once per tile and reused by
 * all its rows, so tall tiles amortize the packing.
 */
#define NT_MC 96
#define NT_NC 256
#define NT_KC 256
#define GEN_MAX_ROWS 1024
#define GEN_NC 192
#define GEN_KC 256
_Static_assert(NT_MC % 12 == 0 && NT_NC % MAX_NR == 0 && GEN_NC % MAX_NR == 0,
               "tiles must hold whole micro-tiles of every kernel");

/* The variant covering the first `cols` (1..nr) columns of a panel. */
static inline ukernel_fn kernel_for_width(const gemm_kernel *kern, int64_t cols, int64_t *width)
{
    int64_t v = (cols + kern->lanes - 1) / kern->lanes;
    *width = v * kern->lanes;
    return kern->fn[v - 1];
}

static int kernel_supported(gemm_kernel_id id)
{
    switch (id) {
    case KERNEL_GENERIC: return 1;
#if RF_GEMM_X86
    case KERNEL_AVX2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case KERNEL_AVX512: return __builtin_cpu_supports("avx512f");
#else
    case KERNEL_AVX2:
    case KERNEL_AVX512: return 0;
#endif
    case KERNEL_COUNT: break;
    }
    return 0;
}

/*
 * The widest kernel the CPU supports, or the one RADFUSE_GEMM_KERNEL names
 * if the CPU supports it (a test hook; an unknown or unsupported name falls
 * back to the widest supported). Cheap enough to call per GEMM: the cpu
 * feature bits are cached by libgcc and getenv is a short scan.
 */
static gemm_kernel_id select_kernel(void)
{
    const char *want = getenv("RADFUSE_GEMM_KERNEL");
    if (want && *want) {
        for (int id = 0; id < KERNEL_COUNT; id++)
            if (kernels[id].name && strcmp(want, kernels[id].name) == 0 &&
                kernel_supported((gemm_kernel_id)id))
                return (gemm_kernel_id)id;
    }
    for (int id = KERNEL_COUNT - 1; id > 0; id--)
        if (kernel_supported((gemm_kernel_id)id))
            return (gemm_kernel_id)id;
    return KERNEL_GENERIC;
}

/* ---- tiling ------------------------------------------------------------ */

static inline int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

static inline int64_t ceil_div(int64_t a, int64_t b)
{
    return (a + b - 1) / b;
}

/* How C is cut into pool tasks: tiles of rows x cols (multiples of MR and NR
 * except at the edges), tm tiles down and tn across. */
typedef struct tiling {
    int64_t rows, cols;
    int64_t tm, tn;
} tiling;

/*
 * Picks the tile grid with the smallest estimated completion time: tasks
 * are handed out dynamically, so with T threads and n equal tiles the time
 * is about ceil(n / T) tiles' work. A tile's work is rows*cols multiply-adds
 * per k plus a per-tile overhead proportional to rows + cols (streaming its
 * A rows and B panels), which favours big tiles when the balance is equal.
 * Only tiles of at most max_rows x max_cols (multiples of MR and NR) are
 * considered.
 */
static tiling choose_tiling(const gemm_kernel *kern, int64_t M, int64_t N, int threads,
                            int64_t max_rows, int64_t max_cols)
{
    const int64_t mp = ceil_div(M, kern->mr), np = ceil_div(N, kern->nr);
    const int64_t mb_min = ceil_div(mp, max_rows / kern->mr);
    const int64_t nb_min = ceil_div(np, max_cols / kern->nr);
    const int64_t overhead = 16; /* per row or column of a tile, in multiply-adds */
    tiling best = {0, 0, 0, 0};
    double best_cost = 0;
    /* more splits than 4 per thread past the minimum never improve balance enough */
    const int64_t span = 4 * (int64_t)threads;
    for (int64_t mb = mb_min; mb <= min64(mp, mb_min + span); mb++) {
        int64_t rp = ceil_div(mp, mb); /* micro-rows per tile */
        int64_t tm = ceil_div(mp, rp);
        if (tm != mb)
            continue; /* same grid as a smaller mb */
        for (int64_t nb = nb_min; nb <= min64(np, nb_min + span); nb++) {
            int64_t cp = ceil_div(np, nb);
            int64_t tn = ceil_div(np, cp);
            if (tn != nb)
                continue;
            int64_t rows = rp * kern->mr, cols = cp * kern->nr;
            /* the largest tile's computed width: narrow kernel variants
             * shorten the last panel when one tile spans all of N */
            int64_t width = min64(cols, ceil_div(N, kern->lanes) * kern->lanes);
            double rounds = (double)ceil_div(tm * tn, threads);
            double cost = rounds * ((double)rows * (double)width +
                                    (double)overhead * (double)(rows + width));
            if (best.tm == 0 || cost < best_cost) {
                best_cost = cost;
                best = (tiling){rows, cols, tm, tn};
            }
        }
    }
    return best;
}

/* K blocks of nearly equal size, each at most kc_max: avoids a sliver block. */
static int64_t choose_kc(int64_t K, int64_t kc_max)
{
    return ceil_div(K, ceil_div(K, kc_max));
}

/* ---- packing ----------------------------------------------------------- */

#if RF_GEMM_X86
/*
 * The transposing case of pack_panels for full 8 x 8 blocks: rows i0..i0+7
 * of src (unit stride along k) become, for each k, 8 consecutive floats of
 * dst. An in-register 8 x 8 transpose moves 64 values with 8 loads, 24
 * shuffles and 8 stores, where scalar code needs 64 loads and 64 stores;
 * this matters because rf_gemm packs op(B) on every call (B^T in q k^T).
 * Packs columns [0, kc8) of rows [0, w8); both are multiples of 8.
 */
__attribute__((target("avx2"))) static void pack_transpose_avx2(float *dst, const float *src,
                                                                int64_t rs, int64_t w8,
                                                                int64_t kc8, int width)
{
    for (int64_t i0 = 0; i0 < w8; i0 += 8) {
        const float *s = src + i0 * rs;
        for (int64_t k = 0; k < kc8; k += 8) {
            __m256 r0 = _mm256_loadu_ps(s + 0 * rs + k), r1 = _mm256_loadu_ps(s + 1 * rs + k);
            __m256 r2 = _mm256_loadu_ps(s + 2 * rs + k), r3 = _mm256_loadu_ps(s + 3 * rs + k);
            __m256 r4 = _mm256_loadu_ps(s + 4 * rs + k), r5 = _mm256_loadu_ps(s + 5 * rs + k);
            __m256 r6 = _mm256_loadu_ps(s + 6 * rs + k), r7 = _mm256_loadu_ps(s + 7 * rs + k);
            __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
            __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
            __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
            __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
            __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
            __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
            __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
            __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
            float *d = dst + k * width + i0;
            _mm256_storeu_ps(d + 0 * width, _mm256_permute2f128_ps(u0, u4, 0x20));
            _mm256_storeu_ps(d + 1 * width, _mm256_permute2f128_ps(u1, u5, 0x20));
            _mm256_storeu_ps(d + 2 * width, _mm256_permute2f128_ps(u2, u6, 0x20));
            _mm256_storeu_ps(d + 3 * width, _mm256_permute2f128_ps(u3, u7, 0x20));
            _mm256_storeu_ps(d + 4 * width, _mm256_permute2f128_ps(u0, u4, 0x31));
            _mm256_storeu_ps(d + 5 * width, _mm256_permute2f128_ps(u1, u5, 0x31));
            _mm256_storeu_ps(d + 6 * width, _mm256_permute2f128_ps(u2, u6, 0x31));
            _mm256_storeu_ps(d + 7 * width, _mm256_permute2f128_ps(u3, u7, 0x31));
        }
    }
}
#endif

/*
 * Packs a rows x kc block into panels of `width` rows: panel p holds, for k
 * in [0, kc), the values src[(p*width + i)*rs + k*cs] for i < width
 * contiguously (zero past `rows`), i.e. dst[p*kc*width + k*width + i].
 * Used for B (rows = columns of op(B)), so the micro-kernel streams it.
 */
static void pack_panels(float *dst, const float *src, int64_t rs, int64_t cs, int64_t rows,
                        int64_t kc, int width)
{
#if RF_GEMM_X86
    const int transpose_simd = cs == 1 && __builtin_cpu_supports("avx2");
#endif
    for (int64_t p0 = 0; p0 < rows; p0 += width, dst += kc * width) {
        int64_t w = min64(width, rows - p0);
        const float *s = src + p0 * rs;
        if (rs == 1) {
            /* op(B) rows are contiguous along the panel: one copy per k */
            for (int64_t k = 0; k < kc; k++)
                memcpy(dst + k * width, s + k * cs, (size_t)w * sizeof(float));
        } else if (cs == 1) {
            /* contiguous along k: transpose, in 8 x 8 blocks where possible */
            int64_t w8 = 0, kc8 = 0;
#if RF_GEMM_X86
            if (transpose_simd) {
                w8 = w & ~(int64_t)7;
                kc8 = kc & ~(int64_t)7;
                pack_transpose_avx2(dst, s, rs, w8, kc8, width);
            }
#endif
            for (int64_t i = 0; i < w; i++)
                for (int64_t k = i < w8 ? kc8 : 0; k < kc; k++)
                    dst[k * width + i] = s[i * rs + k];
        } else {
            for (int64_t k = 0; k < kc; k++)
                for (int64_t i = 0; i < w; i++)
                    dst[k * width + i] = s[i * rs + k * cs];
        }
        for (int64_t k = 0; w < width && k < kc; k++)
            for (int64_t i = w; i < width; i++)
                dst[k * width + i] = 0.0f;
    }
}

/* ---- packed B ---------------------------------------------------------- */

struct rf_gemm_packed {
    int64_t n, k;
    gemm_kernel_id kernel; /* the panel width data was packed for */
    float *data;           /* ceil(n / nr) panels of k x nr floats */
};

int rf_gemm_pack(rf_gemm_packed **out, const float *B, int64_t N, int64_t K, int64_t ldb,
                 rf_err *err)
{
    *out = NULL;
    if (!B || N < 1 || K < 1 || ldb < K)
        return rf_err_set(err, RF_EINVAL,
                          "gemm pack: bad operand (N %lld, K %lld, ldb %lld)", (long long)N,
                          (long long)K, (long long)ldb);
    gemm_kernel_id id = select_kernel();
    const int64_t nr = kernels[id].nr;
    const int64_t panels = ceil_div(N, nr);
    if (panels > INT64_MAX / nr / K || panels * nr * K > (int64_t)(SIZE_MAX / sizeof(float)) - 64)
        return rf_err_set(err, RF_ENOMEM, "gemm pack: %lld x %lld matrix is too large",
                          (long long)N, (long long)K);
    size_t bytes = (size_t)(panels * nr * K) * sizeof(float);
    bytes = (bytes + 63) & ~(size_t)63; /* aligned_alloc wants a multiple of the alignment */
    rf_gemm_packed *p = calloc(1, sizeof *p);
    float *data = aligned_alloc(64, bytes);
    if (!p || !data) {
        free(p);
        free(data);
        return rf_err_set(err, RF_ENOMEM, "gemm pack: cannot allocate %zu bytes", bytes);
    }
    pack_panels(data, B, ldb, 1, N, K, (int)nr);
    p->n = N;
    p->k = K;
    p->kernel = id;
    p->data = data;
    *out = p;
    return RF_OK;
}

void rf_gemm_packed_free(rf_gemm_packed *p)
{
    if (!p)
        return;
    free(p->data);
    free(p);
}

int64_t rf_gemm_packed_n(const rf_gemm_packed *p)
{
    return p->n;
}

int64_t rf_gemm_packed_k(const rf_gemm_packed *p)
{
    return p->k;
}

/* ---- C = epilogue(A B^T) with packed B ---------------------------------- */

typedef struct nt_job {
    const gemm_kernel *kern;
    tiling t;
    int64_t M, N, K, kc;
    const float *A;
    int64_t lda;
    const float *Bp;
    float *C;
    int64_t ldc;
    const float *bias;
    rf_act act;
    const float *res;
    int64_t ldr;
} nt_job;

static void nt_task(void *ctx, int64_t task, int thread)
{
    (void)thread;
    const nt_job *job = ctx;
    const gemm_kernel *kern = job->kern;
    const int64_t mr = kern->mr, nr = kern->nr;
    const int64_t m0 = (task % job->t.tm) * job->t.rows;
    const int64_t n0 = (task / job->t.tm) * job->t.cols;
    const int64_t rows = min64(job->t.rows, job->M - m0);
    const int64_t cols = min64(job->t.cols, job->N - n0);
    const int64_t ld = ceil_div(cols, nr) * nr; /* acc row stride: whole panels */

    /* The tile's sums; rows are padded to MR and columns to NR because the
     * micro-kernel always writes whole micro-tiles. */
    _Alignas(64) float acc[NT_MC * NT_NC];

    for (int64_t k0 = 0; k0 < job->K; k0 += job->kc) {
        const int64_t kc = min64(job->kc, job->K - k0);
        const float *bblock = job->Bp + (n0 / nr) * job->K * nr + k0 * nr;
        for (int64_t i = 0; i < rows; i += mr) {
            const float *a = job->A + (m0 + i) * job->lda + k0;
            const int valid = (int)min64(mr, rows - i);
            for (int64_t j = 0; j < cols; j += nr) {
                int64_t width;
                ukernel_fn fn = kernel_for_width(kern, min64(nr, cols - j), &width);
                fn(kc, a, job->lda, valid, bblock + j * job->K, acc + i * ld + j, ld, 1.0f,
                   k0 > 0);
            }
        }
    }

    for (int64_t i = 0; i < rows; i++) {
        float *sum = acc + i * ld;
        float *c = job->C + (m0 + i) * job->ldc + n0;
        if (job->bias) {
            const float *bias = job->bias + n0;
            for (int64_t j = 0; j < cols; j++)
                sum[j] += bias[j];
        }
        if (job->act != RF_ACT_NONE)
            rf_act_row(sum, cols, job->act);
        if (job->res) {
            /* read before write per element, so res == C is fine */
            const float *r = job->res + (m0 + i) * job->ldr + n0;
            for (int64_t j = 0; j < cols; j++)
                c[j] = sum[j] + r[j];
        } else {
            memcpy(c, sum, (size_t)cols * sizeof(float));
        }
    }
}

void rf_gemm_nt_packed(rf_pool *pool, int64_t M, const float *A, int64_t lda,
                       const rf_gemm_packed *B, float *C, int64_t ldc,
                       const rf_gemm_epilogue *ep)
{
    if (M < 1)
        return;
    const gemm_kernel *kern = &kernels[B->kernel];
    nt_job job = {
        .kern = kern,
        .t = choose_tiling(kern, M, B->n, rf_pool_threads(pool), NT_MC, NT_NC),
        .M = M,
        .N = B->n,
        .K = B->k,
        .kc = choose_kc(B->k, NT_KC),
        .A = A,
        .lda = lda,
        .Bp = B->data,
        .C = C,
        .ldc = ldc,
        .bias = ep ? ep->bias : NULL,
        .act = ep ? ep->act : RF_ACT_NONE,
        .res = ep ? ep->residual : NULL,
        .ldr = ep ? ep->ldr : 0,
    };
    rf_pool_run(pool, job.t.tm * job.t.tn, nt_task, &job);
}

/* ---- general C = alpha op(A) op(B) -------------------------------------- */

typedef struct gen_job {
    const gemm_kernel *kern;
    tiling t;
    int trans_a, trans_b;
    int64_t M, N, K, kc;
    float alpha;
    const float *A;
    int64_t lda;
    const float *B;
    int64_t ldb;
    float *C;
    int64_t ldc;
} gen_job;

/*
 * One tile of C = alpha op(A) op(B): for each K block, packs op(B)'s KC x
 * cols block once (it then stays in L2) and sweeps the tile's micro-rows
 * over it. The first K block stores into C, later ones add (alpha is applied
 * per block, which is exact up to rounding: alpha*s1 + alpha*s2).
 */
static void gen_task(void *ctx, int64_t task, int thread)
{
    (void)thread;
    const gen_job *job = ctx;
    const gemm_kernel *kern = job->kern;
    const int64_t mr = kern->mr, nr = kern->nr;
    const int64_t m0 = (task % job->t.tm) * job->t.rows;
    const int64_t n0 = (task / job->t.tm) * job->t.cols;
    const int64_t rows = min64(job->t.rows, job->M - m0);
    const int64_t cols = min64(job->t.cols, job->N - n0);

    _Alignas(64) float bpack[GEN_KC * GEN_NC];
    _Alignas(64) float edge[MAX_MR * MAX_NR];
    /* MR rows of op(A) when A is transposed, made row-major for the kernel */
    _Alignas(64) float apanel[MAX_MR * GEN_KC];

    for (int64_t k0 = 0; k0 < job->K; k0 += job->kc) {
        const int64_t kc = min64(job->kc, job->K - k0);
        const int accumulate = k0 > 0;
        /* op(B)[k][n] = trans_b ? B[n][k] : B[k][n]; panels run along n */
        const float *bsrc = job->trans_b ? job->B + n0 * job->ldb + k0
                                         : job->B + k0 * job->ldb + n0;
        pack_panels(bpack, bsrc, job->trans_b ? job->ldb : 1, job->trans_b ? 1 : job->ldb,
                    cols, kc, (int)nr);
        for (int64_t i = 0; i < rows; i += mr) {
            const int valid = (int)min64(mr, rows - i);
            const float *a;
            int64_t lda;
            if (job->trans_a) {
                /* op(A)[m][k] = A[k][m]: each k gives `valid` contiguous values */
                const float *src = job->A + k0 * job->lda + m0 + i;
                for (int64_t k = 0; k < kc; k++)
                    for (int64_t ii = 0; ii < valid; ii++)
                        apanel[ii * kc + k] = src[k * job->lda + ii];
                a = apanel;
                lda = kc;
            } else {
                a = job->A + (m0 + i) * job->lda + k0;
                lda = job->lda;
            }
            for (int64_t j = 0; j < cols; j += nr) {
                const int64_t vcols = min64(nr, cols - j);
                float *c = job->C + (m0 + i) * job->ldc + n0 + j;
                const float *b = bpack + j * kc;
                int64_t width;
                ukernel_fn fn = kernel_for_width(kern, vcols, &width);
                if (valid == mr && vcols == width) {
                    fn(kc, a, lda, valid, b, c, job->ldc, job->alpha, accumulate);
                    continue;
                }
                /* edge: C has no room for the whole micro-tile */
                fn(kc, a, lda, valid, b, edge, nr, job->alpha, 0);
                for (int64_t ii = 0; ii < valid; ii++)
                    for (int64_t jj = 0; jj < vcols; jj++)
                        c[ii * job->ldc + jj] =
                            edge[ii * nr + jj] + (accumulate ? c[ii * job->ldc + jj] : 0.0f);
            }
        }
    }
}

void rf_gemm(rf_pool *pool, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
             float alpha, const float *A, int64_t lda, const float *B, int64_t ldb, float *C,
             int64_t ldc)
{
    if (M < 1 || N < 1)
        return;
    if (K < 1) {
        for (int64_t i = 0; i < M; i++)
            memset(C + i * ldc, 0, (size_t)N * sizeof(float));
        return;
    }
    const gemm_kernel *kern = &kernels[select_kernel()];
    gen_job job = {
        .kern = kern,
        .t = choose_tiling(kern, M, N, rf_pool_threads(pool), GEN_MAX_ROWS, GEN_NC),
        .trans_a = trans_a,
        .trans_b = trans_b,
        .M = M,
        .N = N,
        .K = K,
        .kc = choose_kc(K, GEN_KC),
        .alpha = alpha,
        .A = A,
        .lda = lda,
        .B = B,
        .ldb = ldb,
        .C = C,
        .ldc = ldc,
    };
    rf_pool_run(pool, job.t.tm * job.t.tn, gen_task, &job);
}
