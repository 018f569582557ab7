#version 450
// y = act(a) | a + b (b one row: broadcast) | b + a * g (layer scale with residual b),
// over 2-D [rows, cols] with row strides. Grid: x over columns, y over rows.
#include "common.glsl"

layout(local_size_x = 256) in;

layout(push_constant) uniform Params {
    Floats y, a, b, g;
    int rows, cols, y_stride, a_stride, b_stride, b_rows, op, act;
} p;

void main()
{
    int c = int(gl_GlobalInvocationID.x), r = int(gl_GlobalInvocationID.y);
    if (c >= p.cols || r >= p.rows)
        return;
    float a = p.a.v[r * p.a_stride + c];
    float v;
    if (p.op == 0) {
        v = activate(a, p.act);
    } else if (p.op == 1) {
        v = a + p.b.v[(p.b_rows == 1 ? 0 : r) * p.b_stride + c];
    } else {
        v = p.b.v[r * p.b_stride + c] + a * p.g.v[c];
    }
    p.y.v[r * p.y_stride + c] = v;
}
