#version 450
// Embedding gather: y[i, :] = table[ids[i], :] for contiguous i32 ids [n].
// One workgroup per output row (grid x, looping when n exceeds the grid), the
// row's columns across the invocations. ids are on the device, so the host
// cannot check them: an id outside [0, rows) gives a row of zeros, never a
// read outside the table (the host checks ids before upload).
#include "common.glsl"

layout(local_size_x = 256) in;

layout(push_constant) uniform Params {
    Floats y, table;
    Ints ids;
    int n, cols, rows, y_stride, t_stride;
} p;

void main()
{
    const int t = int(gl_LocalInvocationID.x);
    for (int i = int(gl_WorkGroupID.x); i < p.n; i += int(gl_NumWorkGroups.x)) {
        int id = p.ids.v[i];
        bool ok = id >= 0 && id < p.rows;
        int yo = i * p.y_stride, to = ok ? id * p.t_stride : 0;
        for (int c = t; c < p.cols; c += 256)
            p.y.v[yo + c] = ok ? p.table.v[to + c] : 0.0;
    }
}
