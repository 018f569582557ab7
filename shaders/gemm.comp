#version 450
// One GEMM for linear, matmul and patch_embed, per batch z:
//   c[z][m, n] = epilogue(alpha * sum_k A(z, m, k) B(z, k, n))
// with A(z, m, k) = a[z * a_batch + m * a_sm + k * a_sk] (or, in patch mode,
// the im2col of an NCHW image read in place) and B(z, k, n) = b[z * b_batch
// + k * b_sk + n * b_sn]: any strides, so every transpose is a stride swap.
// Epilogue: + bias[n], activate(), + res[m * ldr + n] (res may alias c: each
// element is read and written by the same invocation).
//
// Tiling: a BM x BN (64 x 64) tile of c per workgroup of 256 invocations,
// each owning a TM x TN (4 x 4) micro-tile: rows 4 * (ty + TY * g) + 0..3,
// columns 4 * (tx + TX * h) + 0..3, so its operands are whole vec4s of
// shared memory (A's broadcast to the invocations of one row, B's
// consecutive across a row: no bank conflicts). K runs in slices of BK (16)
// staged in shared memory; the next slice's global loads are issued into
// registers before the current slice's products. Loads map invocations
// along whichever of A's (B's) dimensions is contiguous, so global reads are
// coalesced for both transposes. Out-of-range elements load as 0 and are
// not stored, so any M, N, K >= 0 works (edge tiles included).
// Grid: x = M tiles, y = N tiles, z = batch (the host splits larger grids).
//
// B_F16 (variant gemm_f16w, shaders/variants.txt): b holds IEEE halves (a
// linear layer's weight stored in fp16); each element is widened to fp32 as
// it is loaded, so shared memory, products, accumulation and the epilogue
// are fp32 as in the plain build. Needs shaderFloat16 and 16-bit storage.
#ifdef B_F16
#extension GL_EXT_shader_16bit_storage : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#endif
#include "common.glsl"

#ifdef B_F16
layout(buffer_reference, std430, buffer_reference_align = 2) buffer Halfs { float16_t v[]; };
#define BFloats Halfs
#else
#define BFloats Floats
#endif

layout(push_constant) uniform Params {
    Floats c, a;
    BFloats b;
    Floats bias, res;
    int M, N, K;
    int a_sm, a_sk, b_sk, b_sn;
    int ldc, ldr;
    int a_batch, b_batch, c_batch;
    float alpha;
    int act, flags;
    // patch mode: A(m, k) with m = (py, px) over a grid_w-wide patch grid and
    // k = (ch, ky, kx), reading a[ch * img_hw + (py*P + ky) * img_w + px*P + kx]
    int psize, img_w, img_hw, grid_w;
} p;

#define F_BIAS 1
#define F_RES 2
#define F_A_MCONTIG 4 // A's m-dimension is contiguous: map invocations along m
#define F_B_NCONTIG 8 // B's n-dimension is contiguous: map invocations along n
#define F_PATCH 16    // A is the im2col of an image

#define BM 64
#define BN 64
#define BK 16
#define TM 4 // rows per invocation (a multiple of 4)
#define TN 4 // columns per invocation (a multiple of 4)
#define TX (BN / TN)
#define TY (BM / TM)
#define WG (TX * TY)
#define LA (BM * BK / WG) // elements of each slice of A (B) each invocation loads
#define LB (BN * BK / WG)

// [k][m / 4] and [k][n / 4]; one vec4 column of padding spreads the
// k-major stores of the k-contiguous loads over more banks
shared vec4 As[BK][BM / 4 + 1];
shared vec4 Bs[BK][BN / 4 + 1];

float load_a(int abase, int m, int k)
{
    if (m >= p.M || k >= p.K)
        return 0.0;
    if ((p.flags & F_PATCH) != 0) {
        int pp = p.psize * p.psize;
        int ch = k / pp, r = k - ch * pp;
        int ky = r / p.psize, kx = r - ky * p.psize;
        int py = m / p.grid_w, px = m - py * p.grid_w;
        return p.a.v[abase + ch * p.img_hw + (py * p.psize + ky) * p.img_w + px * p.psize + kx];
    }
    return p.a.v[abase + m * p.a_sm + k * p.a_sk];
}

float load_b(int bbase, int k, int n)
{
    if (k >= p.K || n >= p.N)
        return 0.0;
    return float(p.b.v[bbase + k * p.b_sk + n * p.b_sn]);
}

layout(local_size_x = WG) in;

void main()
{
    int t = int(gl_LocalInvocationID.x);
    int tx = t % TX, ty = t / TX;
    int m0 = int(gl_WorkGroupID.x) * BM, n0 = int(gl_WorkGroupID.y) * BN;
    int z = int(gl_WorkGroupID.z);
    int abase = z * p.a_batch, bbase = z * p.b_batch;
    bool a_mc = (p.flags & F_A_MCONTIG) != 0, b_nc = (p.flags & F_B_NCONTIG) != 0;

    // element e = t + WG * i of a slice, numbered along the operand's
    // contiguous dimension so that neighbouring invocations read neighbours
    float ra[LA], rb[LB];
    int am[LA], ak[LA], bn[LB], bk[LB];
    for (int i = 0; i < LA; i++) {
        int e = t + WG * i;
        am[i] = a_mc ? e % BM : e / BK;
        ak[i] = a_mc ? e / BM : e % BK;
        ra[i] = load_a(abase, m0 + am[i], ak[i]);
    }
    for (int i = 0; i < LB; i++) {
        int e = t + WG * i;
        bn[i] = b_nc ? e % BN : e / BK;
        bk[i] = b_nc ? e / BN : e % BK;
        rb[i] = load_b(bbase, bk[i], n0 + bn[i]);
    }

    vec4 acc[TM][TN / 4];
    for (int i = 0; i < TM; i++)
        for (int j = 0; j < TN / 4; j++)
            acc[i][j] = vec4(0.0);
    for (int k0 = 0; k0 < p.K; k0 += BK) {
        for (int i = 0; i < LA; i++)
            As[ak[i]][am[i] >> 2][am[i] & 3] = ra[i];
        for (int i = 0; i < LB; i++)
            Bs[bk[i]][bn[i] >> 2][bn[i] & 3] = rb[i];
        barrier();
        int k1 = k0 + BK;
        if (k1 < p.K) {
            for (int i = 0; i < LA; i++)
                ra[i] = load_a(abase, m0 + am[i], k1 + ak[i]);
            for (int i = 0; i < LB; i++)
                rb[i] = load_b(bbase, k1 + bk[i], n0 + bn[i]);
        }
        for (int kk = 0; kk < BK; kk++) {
            vec4 av[TM / 4], bv[TN / 4];
            for (int g = 0; g < TM / 4; g++)
                av[g] = As[kk][ty + TY * g];
            for (int h = 0; h < TN / 4; h++)
                bv[h] = Bs[kk][tx + TX * h];
            for (int g = 0; g < TM / 4; g++)
                for (int h = 0; h < TN / 4; h++) {
                    acc[4 * g + 0][h] += av[g].x * bv[h];
                    acc[4 * g + 1][h] += av[g].y * bv[h];
                    acc[4 * g + 2][h] += av[g].z * bv[h];
                    acc[4 * g + 3][h] += av[g].w * bv[h];
                }
        }
        barrier();
    }

    int cbase = z * p.c_batch;
    for (int g = 0; g < TM / 4; g++)
        for (int i = 0; i < 4; i++) {
            int m = m0 + 4 * (ty + TY * g) + i;
            if (m >= p.M)
                continue;
            for (int h = 0; h < TN / 4; h++)
                for (int j = 0; j < 4; j++) {
                    int n = n0 + 4 * (tx + TX * h) + j;
                    if (n >= p.N)
                        continue;
                    float v = p.alpha * acc[4 * g + i][h][j];
                    if ((p.flags & F_BIAS) != 0)
                        v += p.bias.v[n];
                    v = activate(v, p.act);
                    if ((p.flags & F_RES) != 0)
                        v += p.res.v[m * p.ldr + n];
                    p.c.v[cbase + m * p.ldc + n] = v;
                }
        }
}
