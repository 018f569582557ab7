#version 450
// Fused multi-head attention, softmax(scale * Q K^T + mask) V, in one pass
// with an online softmax: no T x T matrix exists beyond one QT x KT tile in
// shared memory. One workgroup per (query tile, head, batch): grid x over
// query tiles, y over heads, z over the batch.
//
// The host picks the tile shape from the head size D (vk_ops_attention.c):
//   CT = threads across the output columns, each owning 4 adjacent columns:
//        a power of two >= D / 4, at least 8;
//   QT = 4 * WG / CT query rows (each thread owns 4 rows), so QT * D <= 16 WG;
//   KT = keys per tile, a power of two with KT * D4 <= 2048 and at most 8
//        scores per thread (QT * KT <= 8 WG);
// where D4 is D rounded up to a multiple of 4. Tiles are held as vec4 along
// the head dimension (zero-padded past D), rows padded to an odd number of
// vec4 so that neighbouring rows fall in different banks. Per key tile:
//   1. K and V rows k0..k0+KT into shared memory, zeros past T, and which
//      keys are live (inside T and not masked);
//   2. scores S = (scale * Q) K^T: each thread 8 rows x 1 key (or fewer rows
//      for wide heads), 4 products per shared-memory read;
//   3. online softmax: thread r (< QT) owns row r's running max m and
//      denominator l; it turns its score row into p = exp(s - m_new) (0 for
//      dead keys) and publishes corr = exp(m_old - m_new);
//   4. acc = acc * corr + P V: each thread a 4 x 4 block of the QT x D output
//      (rows ar + RT*i, columns 4*ac .. 4*ac+3) in registers, 4 keys per step.
// At the end out = acc / l, and 0 where no key was live (a fully masked row).
// No infinities anywhere: the max is taken over live keys only, and dead
// keys' exponents are clamped to <= 0 before they are zeroed.
#include "common.glsl"

#define WG 128
// shared-memory capacity in vec4, the maxima over D = 1..256 of the shapes
// above (7936 floats with corr and live: 31 KiB of lavapipe's 32)
#define Q4_MAX 576 // QT * (D4 / 4 + 1)
#define K4_MAX 544 // KT * (D4 / 4 + 1)
#define V4_MAX 512 // KT * D4 / 4
#define P4_MAX 320 // QT * (KT / 4 + 1)
#define ROWS_MAX 64
#define KEYS_MAX 64

layout(local_size_x = WG) in;

layout(push_constant) uniform Params {
    Floats o, q, k, v;
    Ints mask;
    int T, D, QT, KT, CT, has_mask;
    int q_bs, q_rs, k_bs, k_rs, v_bs, v_rs, o_bs, o_rs, m_bs;
    float scale;
} p;

shared vec4 qs[Q4_MAX];      // [QT][QS]: scale * q
shared vec4 ks[K4_MAX];      // [KT][KS]
shared vec4 vs[V4_MAX];      // [KT][VS]
shared vec4 ps[P4_MAX];      // [QT][PS]: scores, then probabilities
shared float corr[ROWS_MAX]; // per row: this tile's rescale of acc; at the end 1 / l
shared vec4 live[KEYS_MAX / 4]; // per key of the tile: 1 inside T and not masked, else 0

// 4 floats of row base from column d, zeros at and past D
vec4 load4(Floats buf, int base, int d, int D)
{
    if (d + 3 < D)
        return vec4(buf.v[base + d], buf.v[base + d + 1], buf.v[base + d + 2], buf.v[base + d + 3]);
    vec4 x = vec4(0.0);
    for (int c = 0; c < 3; c++)
        if (d + c < D)
            x[c] = buf.v[base + d + c];
    return x;
}

void main()
{
    const int t = int(gl_LocalInvocationID.x);
    const int b = int(gl_WorkGroupID.z), h = int(gl_WorkGroupID.y);
    const int T = p.T, D = p.D, QT = p.QT, KT = p.KT, CT = p.CT;
    const int q0 = int(gl_WorkGroupID.x) * QT, qn = min(QT, T - q0), hd = h * D;
    const int D4 = (D + 3) / 4;   // vec4 per row
    const int QS = D4 | 1, KS = D4 | 1, VS = D4, PS = KT / 4 + 1;

    // Tiles of [rows][D4] vec4 are filled by element e = t + WG * n, that is
    // (row, c4); stepping e by WG steps row by WG / D4 and c4 by WG % D4.
    const int step_r = WG / D4, step_c = WG - step_r * D4, r_first = t / D4, c_first = t - r_first * D4;

    // the query tile, pre-scaled as the CPU backend does; zero rows past T
    for (int r = r_first, c4 = c_first; r < QT;) {
        vec4 x = vec4(0.0);
        if (r < qn)
            x = load4(p.q, b * p.q_bs + (q0 + r) * p.q_rs + hd, 4 * c4, D) * p.scale;
        qs[r * QS + c4] = x;
        r += step_r;
        c4 += step_c;
        if (c4 >= D4) {
            c4 -= D4;
            r++;
        }
    }

    // row state, owned by thread t for row t < QT
    float m = 0.0, l = 0.0;
    bool started = false;

    // scores: rows sr + SR*i, key sk; SN rows per thread (8 for D <= 64)
    const int sk = t % KT, sr = t / KT, SR = WG / KT, SN = (QT * KT + WG - 1) / WG;
    int srow[8];
    for (int i = 0; i < 8; i++)
        srow[i] = min(sr + SR * i, QT - 1) * QS;

    // output block: rows ar + RT*i (clamped into the tile: extra rows are
    // computed but not stored), columns 4*ac .. 4*ac+3
    const int ac = t % CT, ar = t / CT, RT = WG / CT, vc = min(ac, D4 - 1);
    int prow[4];
    vec4 acc[4];
    for (int i = 0; i < 4; i++) {
        prow[i] = min(ar + RT * i, QT - 1) * PS;
        acc[i] = vec4(0.0);
    }

    for (int k0 = 0; k0 < T; k0 += KT) {
        const int kn = min(KT, T - k0);
        // 1. stage K and V; zeros past T keep 0 * garbage out of the sums
        for (int j = r_first, c4 = c_first; j < KT;) {
            vec4 kx = vec4(0.0), vx = vec4(0.0);
            if (j < kn) {
                kx = load4(p.k, b * p.k_bs + (k0 + j) * p.k_rs + hd, 4 * c4, D);
                vx = load4(p.v, b * p.v_bs + (k0 + j) * p.v_rs + hd, 4 * c4, D);
            }
            ks[j * KS + c4] = kx;
            vs[j * VS + c4] = vx;
            j += step_r;
            c4 += step_c;
            if (c4 >= D4) {
                c4 -= D4;
                j++;
            }
        }
        if (t < KT)
            live[t >> 2][t & 3] = (t < kn && (p.has_mask == 0 || p.mask.v[b * p.m_bs + k0 + t] != 0)) ? 1.0 : 0.0;
        barrier();

        // 2. scores, summed over d in order as the CPU backend does
        const int ko = sk * KS;
        if (SN == 8) { // QT * KT == 8 WG: every row of srow is real
            float s[8];
            for (int i = 0; i < 8; i++)
                s[i] = 0.0;
            for (int c4 = 0; c4 < D4; c4++) {
                vec4 kv = ks[ko + c4];
                for (int i = 0; i < 8; i++) {
                    vec4 qv = qs[srow[i] + c4];
                    s[i] += qv.x * kv.x;
                    s[i] += qv.y * kv.y;
                    s[i] += qv.z * kv.z;
                    s[i] += qv.w * kv.w;
                }
            }
            for (int i = 0; i < 8; i++) {
                int e = (sr + SR * i) * PS * 4 + sk;
                ps[e >> 2][e & 3] = s[i];
            }
        } else { // wide heads: fewer scores than 8 per thread
            for (int i = 0; i < SN; i++) {
                int r = sr + SR * i;
                if (r >= QT)
                    break;
                float s = 0.0;
                for (int c4 = 0; c4 < D4; c4++) {
                    vec4 kv = ks[ko + c4], qv = qs[r * QS + c4];
                    s += qv.x * kv.x;
                    s += qv.y * kv.y;
                    s += qv.z * kv.z;
                    s += qv.w * kv.w;
                }
                int e = r * PS * 4 + sk;
                ps[e >> 2][e & 3] = s;
            }
        }
        barrier();

        // 3. online softmax, one thread per query row, 4 keys at a time
        if (t < QT) {
            const int ro = t * PS;
            bool any = started;
            float mx = m;
            for (int j4 = 0; j4 < KT / 4; j4++) {
                vec4 x = ps[ro + j4], lv = live[j4];
                for (int c = 0; c < 4; c++)
                    if (lv[c] != 0.0) {
                        mx = any ? max(mx, x[c]) : x[c];
                        any = true;
                    }
            }
            float c = 1.0;
            if (!any) { // no live key so far: nothing to add
                for (int j4 = 0; j4 < KT / 4; j4++)
                    ps[ro + j4] = vec4(0.0);
            } else {
                c = started ? exp(m - mx) : 0.0;
                float sum = 0.0;
                for (int j4 = 0; j4 < KT / 4; j4++) {
                    // live scores are <= mx; dead ones (perhaps larger) are
                    // clamped so that exp stays finite, then zeroed
                    vec4 e = exp(min(ps[ro + j4] - mx, vec4(0.0))) * live[j4];
                    ps[ro + j4] = e;
                    sum += e.x;
                    sum += e.y;
                    sum += e.z;
                    sum += e.w;
                }
                l = l * c + sum;
                m = mx;
                started = true;
            }
            corr[t] = c;
        }
        barrier();

        // 4. acc = acc * corr + P V, 4 keys at a time (P and V are 0 past kn)
        for (int i = 0; i < 4; i++)
            acc[i] *= corr[min(ar + RT * i, QT - 1)];
        for (int j4 = 0; j4 < (kn + 3) / 4; j4++) {
            int vo = 4 * j4 * VS + vc;
            vec4 v0 = vs[vo], v1 = vs[vo + VS], v2 = vs[vo + 2 * VS], v3 = vs[vo + 3 * VS];
            for (int i = 0; i < 4; i++) {
                vec4 pp = ps[prow[i] + j4];
                acc[i] += pp.x * v0;
                acc[i] += pp.y * v1;
                acc[i] += pp.z * v2;
                acc[i] += pp.w * v3;
            }
        }
        barrier(); // the next tile overwrites K, V and P
    }

    if (t < QT)
        corr[t] = l > 0.0 ? 1.0 / l : 0.0;
    barrier();
    for (int i = 0; i < 4; i++) {
        int r = ar + RT * i;
        if (r >= qn)
            continue;
        float inv = corr[r];
        int ob = b * p.o_bs + (q0 + r) * p.o_rs + hd;
        for (int c = 0; c < 4; c++)
            if (4 * ac + c < D)
                p.o.v[ob + 4 * ac + c] = acc[i][c] * inv;
    }
}
