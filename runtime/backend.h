/*
 * The compute-backend interface: a table of the operations transformer
 * encoders need. The CPU backend (cpu_backend.c) implements it now; a GPU
 * backend implements the same table, so model code is written once.
 *
 * Operands are rf_tensor views. Unless an operation says otherwise, 2-D
 * operands may have any row stride but contiguous rows (stride[1] == 1), and
 * outputs may alias nothing but where stated. Every operation checks shapes
 * and returns RF_EINVAL with a message on mismatch.
 */
#ifndef RADFUSE_RUNTIME_BACKEND_H
#define RADFUSE_RUNTIME_BACKEND_H

#include "radfuse/runtime.h"

typedef enum rf_act {
    RF_ACT_NONE = 0,
    RF_ACT_GELU_ERF,  /* x * 0.5 * (1 + erf(x / sqrt 2)), "gelu" */
    RF_ACT_GELU_TANH, /* tanh approximation, "gelu_new" / "gelu_pytorch_tanh" */
    RF_ACT_TANH,
    RF_ACT_RELU,
} rf_act;

/* A linear layer y = x W^T + b with W stored [out, in] as in PyTorch. */
typedef struct rf_linear {
    rf_tensor w;    /* f32 [out, in], contiguous; data may be NULL on a backend
                     * that keeps only its prepared form (the shape stays) */
    rf_tensor b;    /* f32 [out], or data == NULL */
    void *prepared; /* backend-owned form of w (packed panels, fp16 copy), or NULL */
} rf_linear;

/* Whether a checkpoint had this (optional) layer. */
static inline int rf_linear_present(const rf_linear *l)
{
    return l->w.ndim == 2;
}

/* A block of backend memory; tensors point into it. */
typedef struct rf_buffer rf_buffer;

typedef struct rf_backend_ops {
    const char *name;
    void (*destroy)(rf_backend *be);

    /* Set when tensors' data are host pointers that callers may read and
     * write (the CPU backend); otherwise they are device addresses, reached
     * only through upload, download and the operations below. */
    int host_addressable;

    /* Memory of bytes (64-byte aligned); *data is the address tensors use. */
    int (*buffer_alloc)(rf_backend *be, size_t bytes, rf_buffer **buf, void **data, rf_err *err);
    void (*buffer_free)(rf_backend *be, rf_buffer *buf);
    /* Host memory into a contiguous tensor, outside a pass. */
    int (*upload)(rf_backend *be, const rf_tensor *dst, const void *src, rf_err *err);
    /* A contiguous tensor, or a 2-D view with a row stride, into contiguous
     * host memory, outside a pass. */
    int (*download)(rf_backend *be, void *dst, const rf_tensor *src, rf_err *err);
    /* A forward pass: operations between begin and end may be recorded and
     * run at end (submit = 1), or dropped (submit = 0, after an error). */
    int (*begin)(rf_backend *be, rf_err *err);
    int (*end)(rf_backend *be, int submit, rf_err *err);

    /* The precision of linear layers prepared from now on (see
     * rf_backend_set_precision); RF_EUNSUP with a message where unsupported. */
    int (*set_precision)(rf_backend *be, rf_precision p, rf_err *err);

    /* Prepares l->w for repeated use (packs it, or makes a half-precision
     * copy); l->prepared owns the result. Called at load while l->w and l->b
     * still hold host memory, before the weights move to the backend. */
    int (*linear_prepare)(rf_backend *be, rf_linear *l, rf_err *err);
    void (*linear_release)(rf_backend *be, rf_linear *l);

    /* y[M,N] = act(x[M,K] W^T + b) + residual[M,N]; residual may be NULL and
     * may alias y. */
    int (*linear)(rf_backend *be, rf_tensor *y, const rf_tensor *x, const rf_linear *l,
                  rf_act act, const rf_tensor *residual, rf_err *err);

    /* Batched c[b] = alpha * op(a[b]) op(b[b]) over 3-D operands, op = transpose
     * when the flag is set. */
    int (*matmul)(rf_backend *be, rf_tensor *c, const rf_tensor *a, const rf_tensor *b,
                  int trans_a, int trans_b, float alpha, rf_err *err);

    /* Row-wise LayerNorm over the last dimension of 2-D x; y may alias x. */
    int (*layernorm)(rf_backend *be, rf_tensor *y, const rf_tensor *x, const rf_tensor *gamma,
                     const rf_tensor *beta, float eps, rf_err *err);

    /* Elementwise activation of 2-D x; y may alias x. */
    int (*activation)(rf_backend *be, rf_tensor *y, const rf_tensor *x, rf_act act, rf_err *err);

    /* y = a + b for 2-D operands; b may have one row (broadcast). y may alias a. */
    int (*add)(rf_backend *be, rf_tensor *y, const rf_tensor *a, const rf_tensor *b, rf_err *err);

    /* Layer scale with residual: y = residual + x * gamma (gamma [N]); y may
     * alias residual or x. */
    int (*scale_add)(rf_backend *be, rf_tensor *y, const rf_tensor *x, const rf_tensor *gamma,
                     const rf_tensor *residual, rf_err *err);

    /* Row-wise softmax(scale * x + mask) of 3-D x [B, R, C]; mask is i32 [B, C]
     * (0 = masked key) or NULL. y may alias x. */
    int (*softmax)(rf_backend *be, rf_tensor *y, const rf_tensor *x, const rf_tensor *mask,
                   float scale, rf_err *err);

    /* Multi-head scaled-dot-product attention. q, k, v, out are [B, T, H*D]
     * (row strides allowed, so they may be views of one fused QKV tensor);
     * key_mask is i32 [B, T] with 0 for padding, or NULL. No T x T matrix is
     * materialized beyond one tile. */
    int (*attention)(rf_backend *be, rf_tensor *out, const rf_tensor *q, const rf_tensor *k,
                     const rf_tensor *v, const rf_tensor *key_mask, int heads, float scale,
                     rf_err *err);

    /* Conv with stride = kernel = patch: img f32 [B, C, H, W], proj.w [E, C*P*P];
     * y [B, (H/P)*(W/P), E] in row-major patch order (row stride allowed). */
    int (*patch_embed)(rf_backend *be, rf_tensor *y, const rf_tensor *img, const rf_linear *proj,
                       int patch, rf_err *err);

    /* y[i, :] = table[ids[i], :] for i32 ids [n]; an id outside the table is an
     * error. */
    int (*embedding)(rf_backend *be, rf_tensor *y, const rf_tensor *table, const rf_tensor *ids,
                     rf_err *err);

    /* Bicubic resize of x [C, H, W] to y [C, H2, W2] as PyTorch's
     * F.interpolate(mode="bicubic", align_corners=False) with an explicit
     * size (A = -0.75, borders clamped). Strides allowed on both. */
    int (*interp_bicubic)(rf_backend *be, rf_tensor *y, const rf_tensor *x, rf_err *err);
} rf_backend_ops;

struct rf_backend {
    const rf_backend_ops *ops;
    void *impl;
    char description[300]; /* e.g. "vulkan (NVIDIA H100)" */
    char warning[RF_ERR_MAX]; /* why another device than the one asked for runs, or "" */
};

/* The CPU backend. threads = 0 means one per online core. */
int rf_cpu_backend_create(rf_backend **out, int threads, rf_err *err);

#endif
