/*
 * Vector kernels, compiled once per instruction set (see CMakeLists.txt:
 * RF_VEC_SUFFIX names the copy). Loops are plain C the compiler vectorizes
 * for the target; where a blend is needed (clamps, exp's exponent bits) the
 * code uses GCC vector types, which lower to the target's widest registers.
 */
#include <math.h>
#include <string.h>

#include "runtime/cpu_vec.h"

#ifndef RF_VEC_SUFFIX
#error "compile cpu_vec.c with -DRF_VEC_SUFFIX=v4|v3|base"
#endif
#define CAT2(a, b) a##b
#define CAT(a, b) CAT2(a, b)
#define NAME(n) CAT(n, CAT(_, RF_VEC_SUFFIX))
#define STR2(x) #x
#define STR(x) STR2(x)

#define W 16
typedef float vf __attribute__((vector_size(4 * W)));
typedef int32_t vi __attribute__((vector_size(4 * W)));

static inline vf splat(float x)
{
    return (vf){0} + x;
}

static inline vf select_v(vi mask, vf a, vf b)
{
    return (vf)((mask & (vi)a) | (~mask & (vi)b));
}

static inline vf clamp_v(vf x, float lo, float hi)
{
    x = select_v(x < lo, splat(lo), x);
    return select_v(x > hi, splat(hi), x);
}

/* e^x: Cody-Waite reduction by ln 2, degree-6 polynomial on [-ln2/2, ln2/2],
 * exponent built from the integer bits; max relative error ~2 ulp on
 * [-87.3, 88.3]. Below, 0 (so masked scores of -inf weigh exactly nothing);
 * above, clamped where fp32 would overflow anyway. */
static inline vf exp_v(vf x)
{
    const float magic = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    vi underflow = x < -87.3f;
    x = clamp_v(x, -87.3f, 88.3f);
    vf t = x * 1.44269504088896341f + magic;
    vf k = t - magic;
    vf r = x - k * 0.693359375f + k * 2.12194440e-4f;
    vf p = splat(1.9875691500e-4f);
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    vi ki = (vi)t - (vi)splat(magic);
    return select_v(underflow, splat(0.0f), p * (vf)((ki + 127) << 23));
}

/* erf on [-4, 4] (saturating outside): rational approximation, 6.5e-8 in
 * exact arithmetic; fp32 evaluation adds a few ulp. */
static inline vf erf_v(vf x)
{
    x = clamp_v(x, -4.0f, 4.0f);
    vf x2 = x * x;
    vf p = splat(-2.72614225801306e-10f);
    p = p * x2 + 2.77068142495902e-08f;
    p = p * x2 + -2.10102402082508e-06f;
    p = p * x2 + -5.69250639462346e-05f;
    p = p * x2 + -7.34990630326855e-04f;
    p = p * x2 + -2.95459980854025e-03f;
    p = p * x2 + -1.60960333262415e-02f;
    p = p * x;
    vf q = splat(-1.45660718464996e-05f);
    q = q * x2 + -2.13374055278905e-04f;
    q = q * x2 + -1.68282697438203e-03f;
    q = q * x2 + -7.37332916720468e-03f;
    q = q * x2 + -1.42647390514189e-02f;
    return p / q;
}

/* tanh as an odd/even rational function on [-7.9, 7.9] (saturating outside):
 * 2.8e-7 relative error, including near 0 where 1 - 2 / (e^2x + 1) cancels. */
static inline vf tanh_v(vf x)
{
    /* beyond the range, exactly +-1 (as fp32 tanh is from 9.01 on), so that
     * 1 + tanh in GELU gives 0 rather than the approximant's last 2.7e-7 */
    vi big = x > 7.90531110763549805f, small = x < -7.90531110763549805f;
    x = clamp_v(x, -7.90531110763549805f, 7.90531110763549805f);
    vf x2 = x * x;
    vf p = splat(-2.76076847742355e-16f);
    p = p * x2 + 2.00018790482477e-13f;
    p = p * x2 + -8.60467152213735e-11f;
    p = p * x2 + 5.12229709037114e-08f;
    p = p * x2 + 1.48572235717979e-05f;
    p = p * x2 + 6.37261928875436e-04f;
    p = p * x2 + 4.89352455891786e-03f;
    p = p * x;
    vf q = splat(1.19825839466702e-06f);
    q = q * x2 + 1.18534705686654e-04f;
    q = q * x2 + 2.26843463243900e-03f;
    q = q * x2 + 4.89352518554385e-03f;
    return select_v(big, splat(1.0f), select_v(small, splat(-1.0f), p / q));
}

static inline vf act_v(vf x, rf_act act)
{
    switch (act) {
    case RF_ACT_GELU_ERF:
        return 0.5f * x * (1.0f + erf_v(x * 0.70710678118654752f));
    case RF_ACT_GELU_TANH:
        return 0.5f * x * (1.0f + tanh_v(0.7978845608028654f * (x + 0.044715f * x * x * x)));
    case RF_ACT_TANH:
        return tanh_v(x);
    case RF_ACT_RELU:
        return select_v(x > 0.0f, x, splat(0.0f));
    case RF_ACT_NONE:
        break;
    }
    return x;
}

static void act_row(float *x, int64_t n, rf_act act)
{
    if (act == RF_ACT_NONE)
        return;
    int64_t i = 0;
    for (; i + W <= n; i += W) {
        vf v;
        memcpy(&v, x + i, sizeof v);
        v = act_v(v, act);
        memcpy(x + i, &v, sizeof v);
    }
    if (i < n) {
        vf v = splat(0.0f);
        memcpy(&v, x + i, (size_t)(n - i) * sizeof(float));
        v = act_v(v, act);
        memcpy(x + i, &v, (size_t)(n - i) * sizeof(float));
    }
}

static inline vf load_v(const float *p)
{
    vf v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void store_v(float *p, vf v)
{
    memcpy(p, &v, sizeof v);
}

static inline float hmax_v(vf v)
{
    float m = v[0];
    for (int i = 1; i < W; i++)
        m = v[i] > m ? v[i] : m;
    return m;
}

static inline float hsum_v(vf v)
{
    float s = 0;
    for (int i = 0; i < W; i++)
        s += v[i];
    return s;
}

#define KV (RF_ATTN_KT / W) /* vectors across a key tile */
#define RB 4                /* query rows per register block */
#define CV 2                /* vectors across a column chunk of the output */

/*
 * Streams key tiles of RF_ATTN_KT with an online softmax (running max m and
 * denominator l per query row), so only a QT x KT score tile exists. Q (scaled)
 * and each K^T and V tile are copied into zero-padded local tiles, so both
 * products run as register-blocked loops of fixed shape: scores as RB rows x
 * KT keys, context as RB rows x CV*W columns.
 */
static void attention_tile(const rf_attn_tile *t)
{
    const int64_t D = t->D, qn = t->qn;
    const int64_t Dp = (D + CV * W - 1) / (CV * W) * (CV * W); /* padded head size */
    const int64_t qp = (qn + RB - 1) / RB * RB;                 /* padded query rows */
    float qs[RF_ATTN_QT][RF_ATTN_DMAX] __attribute__((aligned(64)));
    float kt[RF_ATTN_DMAX][RF_ATTN_KT] __attribute__((aligned(64)));
    float vt[RF_ATTN_KT][RF_ATTN_DMAX] __attribute__((aligned(64)));
    float s[RF_ATTN_QT][RF_ATTN_KT] __attribute__((aligned(64)));
    float acc[RF_ATTN_QT][RF_ATTN_DMAX] __attribute__((aligned(64)));
    float bias[RF_ATTN_KT] __attribute__((aligned(64)));
    float m[RF_ATTN_QT], l[RF_ATTN_QT], corr[RF_ATTN_QT];

    for (int64_t i = 0; i < qp; i++) {
        m[i] = -INFINITY;
        l[i] = 0;
        memset(acc[i], 0, (size_t)Dp * sizeof(float));
        memset(qs[i], 0, (size_t)Dp * sizeof(float));
        if (i < qn)
            for (int64_t d = 0; d < D; d++)
                qs[i][d] = t->q[i * t->q_stride + d] * t->scale;
    }
    for (int64_t k0 = 0; k0 < t->T; k0 += RF_ATTN_KT) {
        int64_t kn = t->T - k0 < RF_ATTN_KT ? t->T - k0 : RF_ATTN_KT;
        for (int64_t c = 0; c < RF_ATTN_KT; c++) {
            int live = c < kn && (!t->key_mask || t->key_mask[k0 + c]);
            bias[c] = live ? 0.0f : -INFINITY;
            const float *kr = t->k + (k0 + c) * t->k_stride;
            const float *vr = t->v + (k0 + c) * t->v_stride;
            for (int64_t d = 0; d < Dp; d++) {
                int in = c < kn && d < D;
                kt[d][c] = in ? kr[d] : 0.0f;
                vt[c][d] = in ? vr[d] : 0.0f;
            }
        }
        /* scores, RB rows at a time */
        for (int64_t i0 = 0; i0 < qp; i0 += RB) {
            vf sc[RB][KV];
            for (int r = 0; r < RB; r++)
                for (int v = 0; v < KV; v++)
                    sc[r][v] = load_v(bias + v * W);
            for (int64_t d = 0; d < D; d++) {
                vf kv[KV];
                for (int v = 0; v < KV; v++)
                    kv[v] = load_v(&kt[d][v * W]);
                for (int r = 0; r < RB; r++) {
                    vf qv = splat(qs[i0 + r][d]);
                    for (int v = 0; v < KV; v++)
                        sc[r][v] += qv * kv[v];
                }
            }
            for (int r = 0; r < RB; r++)
                for (int v = 0; v < KV; v++)
                    store_v(&s[i0 + r][v * W], sc[r][v]);
        }
        /* online softmax per row */
        for (int64_t i = 0; i < qp; i++) {
            vf mv = splat(m[i]);
            for (int v = 0; v < KV; v++) {
                vf x = load_v(&s[i][v * W]);
                mv = select_v(x > mv, x, mv);
            }
            float mx = hmax_v(mv);
            if (mx == -INFINITY) { /* every key so far masked: nothing to add */
                corr[i] = 1.0f;
                for (int v = 0; v < KV; v++)
                    store_v(&s[i][v * W], splat(0.0f));
                continue;
            }
            corr[i] = m[i] == -INFINITY ? 0.0f : expf(m[i] - mx);
            vf sum = splat(0.0f);
            for (int v = 0; v < KV; v++) {
                vf e = exp_v(load_v(&s[i][v * W]) - mx);
                store_v(&s[i][v * W], e);
                sum += e;
            }
            l[i] = l[i] * corr[i] + hsum_v(sum);
            m[i] = mx;
        }
        /* context: acc = acc * corr + P V, RB rows x CV vectors at a time */
        for (int64_t i0 = 0; i0 < qp; i0 += RB)
            for (int64_t c0 = 0; c0 < Dp; c0 += CV * W) {
                vf o[RB][CV];
                for (int r = 0; r < RB; r++)
                    for (int v = 0; v < CV; v++)
                        o[r][v] = load_v(&acc[i0 + r][c0 + v * W]) * corr[i0 + r];
                for (int64_t c = 0; c < kn; c++) {
                    vf vv[CV];
                    for (int v = 0; v < CV; v++)
                        vv[v] = load_v(&vt[c][c0 + v * W]);
                    for (int r = 0; r < RB; r++) {
                        vf p = splat(s[i0 + r][c]);
                        for (int v = 0; v < CV; v++)
                            o[r][v] += p * vv[v];
                    }
                }
                for (int r = 0; r < RB; r++)
                    for (int v = 0; v < CV; v++)
                        store_v(&acc[i0 + r][c0 + v * W], o[r][v]);
            }
    }
    for (int64_t i = 0; i < qn; i++) {
        float *o = t->out + i * t->out_stride;
        float inv = l[i] > 0 ? 1.0f / l[i] : 0.0f;
        for (int64_t d = 0; d < D; d++)
            o[d] = acc[i][d] * inv;
    }
}

const rf_vec_kernels NAME(rf_vec_kernels) = {
    .isa = STR(RF_VEC_SUFFIX),
    .act_row = act_row,
    .attention_tile = attention_tile,
};
