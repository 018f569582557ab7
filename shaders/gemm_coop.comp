#version 450
// Linear layers on tensor cores (VK_NV_cooperative_matrix), fp16 precision:
//   c[m, n] = epilogue(alpha * sum_k A[m, k] W[n, k])
// A: fp32 activations, row stride a_sm (k contiguous), rounded to fp16 as
// they are staged in shared memory; W: the weight as fp16, row stride b_sn.
// Products of 16x16x16 fp16 matrices accumulate in fp32; the epilogue (bias,
// activation, residual, which may alias c) is fp32, as in gemm.comp.
//
// The host (runtime/vk_ops_gemm.c) picks this shader only where the device
// has the extension with that product size (rf_vk.has_coopmat) and where
// A's and W's rows are whole 16-byte vectors: K, a_sm and b_sn multiples of
// 8, both base addresses 16-byte aligned. M and N are free: rows past them
// load as zero and are not stored; a K tail shorter than BK loads as zero.
//
// Tiling: a BM x BN tile of c per workgroup of WM x WN subgroups (32 wide),
// each subgroup owning a (BM/WM) x (BN/WN) block as 16x16 accumulators. K
// runs in slices of BK through shared memory (rows padded by one 16-byte
// vector against bank conflicts); the next slice's global loads are issued
// into registers before the current slice's products. The epilogue goes
// through shared memory one 16x16 block at a time per subgroup, so each
// element gets its bias, activation, residual and bounds check.
// Grid: x = N tiles, y = M tiles. Variants (shaders/variants.txt) set the
// tile sizes; the defaults here are the large tile.
#extension GL_NV_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_EXT_control_flow_attributes : require
#include "common.glsl"

#ifndef BM
#define BM 128
#endif
#ifndef BN
#define BN 128
#endif
#ifndef BK
#define BK 32
#endif
#ifndef WM
#define WM 2
#endif
#ifndef WN
#define WN 4
#endif

#define NT (32 * WM * WN)    // invocations
#define CR (BM / WM / 16)    // accumulator rows per subgroup
#define CC (BN / WN / 16)    // accumulator columns per subgroup
#define KV (BK / 8)          // 16-byte vectors (8 halves) per row of a slice
#define SROW (KV + 1)        // shared row stride in vectors, padded
#define LA (BM * KV / NT)    // A vectors each invocation stages per slice
#define LB (BN * KV / NT)
#if (BM * KV) % NT != 0 || (BN * KV) % NT != 0 || WM * WN * 64 > BM * SROW || BM % (16 * WM) != 0 || BN % (16 * WN) != 0
#error "gemm_coop: tile sizes do not divide"
#endif

layout(buffer_reference, std430, buffer_reference_align = 16) buffer Vec4s { vec4 v[]; };
layout(buffer_reference, std430, buffer_reference_align = 16) buffer UVec4s { uvec4 v[]; };

// the same layout as gemm.comp's (the host fills one struct for both)
layout(push_constant) uniform Params {
    Floats c;
    Vec4s a;
    UVec4s b;
    Floats bias, res;
    int M, N, K;
    int a_sm, a_sk, b_sk, b_sn;
    int ldc, ldr;
    int a_batch, b_batch, c_batch;
    float alpha;
    int act, flags;
    int psize, img_w, img_hw, grid_w;
} p;

#define F_BIAS 1
#define F_RES 2

shared uvec4 As[BM * SROW];
shared uvec4 Bs[BN * SROW];

layout(local_size_x = NT) in;

// 8 consecutive A values from (m, k) as halves; zero outside the matrix
uvec4 load_a(int m, int k)
{
    if (m >= p.M || k >= p.K)
        return uvec4(0);
    int i = (m * p.a_sm + k) >> 2;
    f16vec4 lo = f16vec4(p.a.v[i]), hi = f16vec4(p.a.v[i + 1]);
    return uvec4(packFloat2x16(lo.xy), packFloat2x16(lo.zw), packFloat2x16(hi.xy), packFloat2x16(hi.zw));
}

uvec4 load_b(int n, int k)
{
    if (n >= p.N || k >= p.K)
        return uvec4(0);
    return p.b.v[(n * p.b_sn + k) >> 3];
}

void main()
{
    int t = int(gl_LocalInvocationID.x);
    int sg = int(gl_SubgroupID);
    int wm = sg / WN, wn = sg % WN;
    int n0 = int(gl_WorkGroupID.x) * BN, m0 = int(gl_WorkGroupID.y) * BM;

    fcoopmatNV<32, gl_ScopeSubgroup, 16, 16> acc[CR][CC];
    [[unroll]] for (int i = 0; i < CR; i++)
        [[unroll]] for (int j = 0; j < CC; j++)
            acc[i][j] = fcoopmatNV<32, gl_ScopeSubgroup, 16, 16>(0.0);

    // vector e = t + NT * i of a slice: row e / KV, 8 halves at (e % KV) * 8
    uvec4 ra[LA], rb[LB];
    [[unroll]] for (int i = 0; i < LA; i++) {
        int e = t + NT * i;
        ra[i] = load_a(m0 + e / KV, (e % KV) * 8);
    }
    [[unroll]] for (int i = 0; i < LB; i++) {
        int e = t + NT * i;
        rb[i] = load_b(n0 + e / KV, (e % KV) * 8);
    }

    for (int k0 = 0; k0 < p.K; k0 += BK) {
        barrier(); // the previous slice's products are done with As, Bs
        [[unroll]] for (int i = 0; i < LA; i++) {
            int e = t + NT * i;
            As[(e / KV) * SROW + e % KV] = ra[i];
        }
        [[unroll]] for (int i = 0; i < LB; i++) {
            int e = t + NT * i;
            Bs[(e / KV) * SROW + e % KV] = rb[i];
        }
        barrier();
        int k1 = k0 + BK;
        if (k1 < p.K) {
            [[unroll]] for (int i = 0; i < LA; i++) {
                int e = t + NT * i;
                ra[i] = load_a(m0 + e / KV, k1 + (e % KV) * 8);
            }
            [[unroll]] for (int i = 0; i < LB; i++) {
                int e = t + NT * i;
                rb[i] = load_b(n0 + e / KV, k1 + (e % KV) * 8);
            }
        }
        [[unroll]] for (int kk = 0; kk < BK / 16; kk++) {
            fcoopmatNV<16, gl_ScopeSubgroup, 16, 16> fa[CR];
            [[unroll]] for (int i = 0; i < CR; i++)
                coopMatLoadNV(fa[i], As, uint((wm * CR + i) * 16 * SROW + kk * 2), uint(SROW), false);
            [[unroll]] for (int j = 0; j < CC; j++) {
                // W's rows are B's columns: column-major 16x16 blocks of B
                fcoopmatNV<16, gl_ScopeSubgroup, 16, 16> fb;
                coopMatLoadNV(fb, Bs, uint((wn * CC + j) * 16 * SROW + kk * 2), uint(SROW), true);
                [[unroll]] for (int i = 0; i < CR; i++)
                    acc[i][j] = coopMatMulAddNV(fa[i], fb, acc[i][j]);
            }
        }
    }

    // epilogue: each subgroup's 16x16 blocks through its own 1 KiB of As
    barrier();
    uint lane = gl_SubgroupInvocationID;
    uint scratch = uint(sg) * 64; // 256 floats = 64 vectors
    [[unroll]] for (int i = 0; i < CR; i++)
        [[unroll]] for (int j = 0; j < CC; j++) {
            coopMatStoreNV(acc[i][j], As, scratch, 4u, false);
            subgroupMemoryBarrierShared();
            subgroupBarrier();
            int mb = m0 + (wm * CR + i) * 16, nb = n0 + (wn * CC + j) * 16;
            int n = nb + int(lane % 16);
            for (uint r = lane / 16; r < 16; r += 2) {
                int m = mb + int(r);
                if (m < p.M && n < p.N) {
                    uint e = r * 16 + lane % 16;
                    float v = p.alpha * uintBitsToFloat(As[scratch + e / 4][e % 4]);
                    if ((p.flags & F_BIAS) != 0)
                        v += p.bias.v[n];
                    v = activate(v, p.act);
                    if ((p.flags & F_RES) != 0)
                        v += p.res.v[m * p.ldr + n];
                    p.c.v[m * p.ldc + n] = v;
                }
            }
            subgroupBarrier(); // read before the next block overwrites
        }
}
