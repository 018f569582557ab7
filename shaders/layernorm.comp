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
    float s = 0.0;
    for (int c = t; c < p.cols; c += 256)
        s += p.x.v[xo + c];
    float mean = reduce_sum(s) / float(p.cols);
    float q = 0.0;
    for (int c = t; c < p.cols; c += 256) {
        float d = p.x.v[xo + c] - mean;
        q += d * d;
    }
    float inv = inversesqrt(reduce_sum(q) / float(p.cols) + p.eps);
    for (int c = t; c < p.cols; c += 256)
        p.y.v[yo + c] = (p.x.v[xo + c] - mean) * inv * p.gamma.v[c] + p.beta.v[c];
}
