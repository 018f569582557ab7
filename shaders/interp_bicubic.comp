#version 450
// Bicubic resize of x [C, H, W] to y [C, H2, W2], both with arbitrary
// (non-negative) strides, as PyTorch's F.interpolate(mode="bicubic",
// align_corners=False) with an explicit size: source = (dst + 0.5) * in / out
// - 0.5 (not clamped), cubic convolution with A = -0.75, taps clamped to the
// border. The source position is split exactly in integers: with
// num = (2 dst + 1) in - out and den = 2 out, source = num / den, so the tap
// index is floor(num / den) and the fraction (num mod den) / den.
// One invocation per output element, in a grid-stride loop; c_inner orders
// the elements channel-fastest (for channels-last views) so neighbouring
// invocations touch neighbouring memory.
#include "common.glsl"

layout(local_size_x = 256) in;

layout(push_constant) uniform Params {
    Floats y, x;
    int C, H, W, H2, W2;
    int xs0, xs1, xs2, ys0, ys1, ys2;
    int c_inner, total;
} p;

// PyTorch's cubic convolution weights for fraction t in [0, 1), factored so
// that fp32 evaluation does not cancel: the textbook Horner forms sum terms up
// to 8|A| into weights near 0. With u = 1 - t:
//   w0 = A t u^2, w1 = u (1 + t - (A + 2) t^2), w2 = t (1 + u - (A + 2) u^2), w3 = A u t^2.
void cubic_weights(float t, out float w[4])
{
    const float A = -0.75;
    float u = 1.0 - t;
    w[0] = A * t * u * u;
    w[1] = u * (1.0 + t - (A + 2.0) * t * t);
    w[2] = t * (1.0 + u - (A + 2.0) * u * u);
    w[3] = A * u * t * t;
}

// floor(((2 o + 1) n_in - n_out) / (2 n_out)) and the fraction
int source_index(int o, int n_in, int n_out, out float frac)
{
    int num = (2 * o + 1) * n_in - n_out, den = 2 * n_out;
    int i = num >= 0 ? num / den : -((den - 1 - num) / den);
    frac = float(num - i * den) / float(den);
    return i;
}

void main()
{
    const int step = int(gl_NumWorkGroups.x) * 256;
    for (int e = int(gl_GlobalInvocationID.x); e < p.total; e += step) {
        int c, oy, ox;
        if (p.c_inner != 0) {
            c = e % p.C;
            int rest = e / p.C;
            ox = rest % p.W2;
            oy = rest / p.W2;
        } else {
            ox = e % p.W2;
            int rest = e / p.W2;
            oy = rest % p.H2;
            c = rest / p.H2;
        }
        float ty, tx, wy[4], wx[4];
        int iy = source_index(oy, p.H, p.H2, ty), ix = source_index(ox, p.W, p.W2, tx);
        cubic_weights(ty, wy);
        cubic_weights(tx, wx);
        int xo = c * p.xs0;
        float acc = 0.0;
        for (int a = 0; a < 4; a++) {
            int yy = clamp(iy - 1 + a, 0, p.H - 1);
            float row = 0.0;
            for (int bb = 0; bb < 4; bb++) {
                int xx = clamp(ix - 1 + bb, 0, p.W - 1);
                row += wx[bb] * p.x.v[xo + yy * p.xs1 + xx * p.xs2];
            }
            acc += wy[a] * row;
        }
        p.y.v[c * p.ys0 + oy * p.ys1 + ox * p.ys2] = acc;
    }
}
