#version 450
// Row-wise softmax(scale * x + mask) over 3-D x [B, R, C] with row strides;
// mask is i32 [B, C] (0 = masked) when has_mask. One workgroup per row: grid x
// over rows, y over the batch. Masked entries are exactly 0 and a fully masked
// row is all zeros (dead entries never enter exp). y may alias x: every
// element is read and rewritten by the same invocation, after the max pass.
#include "common.glsl"

layout(local_size_x = 256) in;

layout(push_constant) uniform Params {
    Floats y, x;
    Ints mask;
    int R, C, x_bs, x_rs, y_bs, y_rs, m_bs, has_mask;
    float scale;
} p;

shared float partial[256];
shared int any_live[256];

void main()
{
    const int r = int(gl_WorkGroupID.x), b = int(gl_WorkGroupID.y);
    const int t = int(gl_LocalInvocationID.x);
    const int xo = b * p.x_bs + r * p.x_rs, yo = b * p.y_bs + r * p.y_rs, mo = b * p.m_bs;

    // row max over live entries
    float mx = 0.0;
    int has = 0;
    for (int c = t; c < p.C; c += 256)
        if (p.has_mask == 0 || p.mask.v[mo + c] != 0) {
            float s = p.scale * p.x.v[xo + c];
            mx = has != 0 ? max(mx, s) : s;
            has = 1;
        }
    partial[t] = mx;
    any_live[t] = has;
    barrier();
    for (int s = 128; s > 0; s >>= 1) {
        if (t < s && any_live[t + s] != 0) {
            partial[t] = any_live[t] != 0 ? max(partial[t], partial[t + s]) : partial[t + s];
            any_live[t] = 1;
        }
        barrier();
    }
    mx = partial[0];
    has = any_live[0];
    barrier();

    // exponentials (0 where masked) and their sum
    float sum = 0.0;
    for (int c = t; c < p.C; c += 256) {
        float e = 0.0;
        if (has != 0 && (p.has_mask == 0 || p.mask.v[mo + c] != 0))
            e = exp(p.scale * p.x.v[xo + c] - mx);
        p.y.v[yo + c] = e;
        sum += e;
    }
    partial[t] = sum;
    barrier();
    for (int s = 128; s > 0; s >>= 1) {
        if (t < s)
            partial[t] += partial[t + s];
        barrier();
    }
    float total = partial[0];
    float inv = total > 0.0 ? 1.0 / total : 0.0;
    for (int c = t; c < p.C; c += 256)
        p.y.v[yo + c] *= inv;
}
