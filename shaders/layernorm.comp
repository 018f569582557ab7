#version 450
// Row-wise LayerNorm: one workgroup per row, two passes (mean, then variance
// about the mean) with a shared-memory tree reduction.
#include "common.glsl"

layout(local_size_x = 256) in;

layout(push_constant) uniform Params {
    Floats y, x, gamma, beta;
    int rows, cols, x_stride, y_stride;
    float eps;
} p;

shared float partial[256];

float reduce_sum(float v)
{
    uint t = gl_LocalInvocationID.x;
    partial[t] = v;
    barrier();
    for (uint s = 128; s > 0; s >>= 1) {
        if (t < s)
            partial[t] += partial[t + s];
        barrier();
    }
    float total = partial[0];
    barrier();
    return total;
}

void main()
{
    int r = int(gl_WorkGroupID.x);
    int t = int(gl_LocalInvocationID.x);
    int xo = r * p.x_stride, yo = r * p.y_stride;
    // the sum is taken about the row's first value: for rows with a large
    // mean (activations around 100) the plain fp32 sum's rounding, which
    // depends on the reduction order, would move the mean by ~1e-5
    float x0 = p.cols > 0 ? p.x.v[xo] : 0.0;
    float s = 0.0;
    for (int c = t; c < p.cols; c += 256)
        s += p.x.v[xo + c] - x0;
    float mean = x0 + reduce_sum(s) / float(p.cols);
    float q = 0.0;
    for (int c = t; c < p.cols; c += 256) {
        float d = p.x.v[xo + c] - mean;
        q += d * d;
    }
    float var = reduce_sum(q) / float(p.cols) + p.eps;
    float inv = inversesqrt(var);
    inv = inv * (1.5 - 0.5 * var * inv * inv); // one Newton step: GPUs' inversesqrt is approximate

    for (int c = t; c < p.cols; c += 256)
        p.y.v[yo + c] = (p.x.v[xo + c] - mean) * inv * p.gamma.v[c] + p.beta.v[c];
}
