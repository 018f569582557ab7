/*
 * Host forward and backward passes of the transformer pieces that saliency
 * differentiates through: linear, LayerNorm, GELU (erf and tanh), softmax,
 * multi-head attention with a key mask, residual add, layer scale, average
 * pooling of patch tokens to a grid, and the sigmoid/temperature head; and a
 * pre-norm block built from them that keeps what its backward needs.
 *
 * Plain loops over contiguous row-major arrays, one sequence at a time, in
 * double precision: saliency runs a handful of passes, and double keeps the
 * finite-difference checks (tests/test_grad.c) meaningful. Backward functions
 * accumulate (+=) into their gradient outputs, as in llm.c, so a tensor that
 * feeds two places (a residual) sums both; callers zero them first. Any
 * gradient output may be NULL when it is not wanted.
 */
#ifndef RADFUSE_FUSION_GRAD_H
#define RADFUSE_FUSION_GRAD_H

#include <stdint.h>

#include "radfuse/runtime.h"
#include "runtime/model.h"

/* y[M, N] = x[M, K] W^T + b; W [N, K] as PyTorch stores it; b may be NULL. */
void rf_g_linear_forward(double *y, const double *x, const double *w, const double *b, int M, int K, int N);
/* dx[M, K] += dy W;  dw[N, K] += dy^T x;  db[N] += column sums of dy. */
void rf_g_linear_backward(double *dx, double *dw, double *db, const double *dy, const double *x, const double *w,
                          int M, int K, int N);

/* Row-wise LayerNorm of x [M, C]; mean and rstd [M] are kept for the backward
 * (either may be NULL when there is none). Variance is the biased one, as
 * PyTorch computes it. */
void rf_g_layernorm_forward(double *y, double *mean, double *rstd, const double *x, const double *g,
                            const double *b, double eps, int M, int C);
void rf_g_layernorm_backward(double *dx, double *dg, double *db, const double *dy, const double *x,
                             const double *mean, const double *rstd, const double *g, int M, int C);

/* Elementwise activation (RF_ACT_NONE, GELU erf / tanh, tanh, ReLU) and its
 * backward from the pre-activation input x. */
void rf_g_act_forward(double *y, const double *x, int64_t n, rf_act act);
void rf_g_act_backward(double *dx, const double *dy, const double *x, int64_t n, rf_act act);

/* Row-wise y = softmax(scale * x) over the columns where mask is nonzero
 * (mask [C] or NULL); masked columns and fully masked rows get 0, as the
 * backends give. x [R, C]. */
void rf_g_softmax_forward(double *y, const double *x, const int32_t *mask, double scale, int R, int C);
/* dx += scale * y * (dy - sum(dy * y)) per row. */
void rf_g_softmax_backward(double *dx, const double *dy, const double *y, double scale, int R, int C);

/*
 * Multi-head attention over one sequence of T tokens and H heads of width D:
 * q, k, v are [T, H*D] with row stride ld (views of one fused [T, 3HD] array
 * have ld = 3HD), out is [T, H*D] contiguous, probs [H, T, T] keeps the
 * attention weights softmax(scale q k^T) over the keys j query i may see:
 * mask[j] nonzero (mask NULL: all) and, where group (NULL: none) gives query
 * i a nonzero group, only keys of that group (the fusion's cross attention:
 * text rows see text rows). A query that sees no key gets a zero row. The
 * backward accumulates into dq, dk, dv with the same ld.
 */
void rf_g_attention_forward(double *out, double *probs, const double *q, const double *k, const double *v, int ld,
                            const int32_t *mask, const int32_t *group, int T, int H, int D, double scale);
int rf_g_attention_backward(double *dq, double *dk, double *dv, int ld, const double *dout, const double *probs,
                            const double *q, const double *k, const double *v, int T, int H, int D, double scale,
                            rf_err *err);

/* y = a + b (n elements) and its backward: da += dy, db += dy. */
void rf_g_add_forward(double *y, const double *a, const double *b, int64_t n);
void rf_g_add_backward(double *da, double *db, const double *dy, int64_t n);

/* Layer scale y[M, C] = x * gamma[C]; dx += dy * gamma, dgamma += sum_rows dy * x. */
void rf_g_scale_forward(double *y, const double *x, const double *gamma, int M, int C);
void rf_g_scale_backward(double *dx, double *dgamma, const double *dy, const double *x, const double *gamma, int M,
                         int C);

/* Average pooling of a gh x gw grid of tokens x [gh*gw, C] (row-major patch
 * order) to oh x ow cells y [oh*ow, C], with PyTorch's adaptive_avg_pool2d
 * windows: cell i covers rows floor(i gh / oh) .. ceil((i+1) gh / oh) - 1
 * (the same for columns). oh <= gh, ow <= gw. */
void rf_g_pool_forward(double *y, const double *x, int gh, int gw, int oh, int ow, int C);
void rf_g_pool_backward(double *dx, const double *dy, int gh, int gw, int oh, int ow, int C);

/* The calibrated head: p = sigmoid(z / temperature); dp/dz = p (1 - p) / temperature. */
double rf_g_sigmoid_temp(double z, double temperature);
double rf_g_sigmoid_temp_grad(double z, double temperature);

/* ---- a pre-norm transformer block on the host ---- */

/*
 *   x1 = x + ls1 * proj(attn(ln1(x)));  y = x1 + ls2 * fc2(act(fc1(ln2(x1))))
 * the block of model.h (runtime/model.h: rf_block) with its weights in host
 * memory as double. Biases and layer scales may be NULL (absent).
 */
typedef struct rf_hblock {
    int C, heads, I;
    rf_act act;
    double eps;
    double *qkv_w, *qkv_b;   /* [3C, C], [3C] */
    double *proj_w, *proj_b; /* [C, C], [C] */
    double *fc1_w, *fc1_b;   /* [I, C], [I] */
    double *fc2_w, *fc2_b;   /* [C, I], [C] */
    double *ln1_g, *ln1_b, *ln2_g, *ln2_b; /* [C] */
    double *ls1, *ls2;       /* [C] or NULL */
} rf_hblock;

/* Allocates every array of b for C, heads, I (zeroed; ls1/ls2 only when
 * layer_scale, biases always). */
int rf_hblock_alloc(rf_hblock *b, int C, int heads, int I, rf_act act, double eps, int layer_scale, rf_err *err);
void rf_hblock_free(rf_hblock *b);

/* A block's weights from backend memory: read directly where the backend's
 * tensors are host pointers (CPU), downloaded otherwise (Vulkan). RF_EUNSUP
 * when a linear layer is kept only in the backend's prepared form (fp16
 * weights), whose fp32 values no longer exist. */
int rf_hblock_from_block(rf_backend *be, const rf_block *src, int C, int heads, int I, rf_act act, float eps,
                         rf_hblock *dst, rf_err *err);

/* One tensor (f32, any shape, contiguous or a 2-D row-strided view) of
 * backend memory into n doubles of host memory; NULL data gives zeros. */
int rf_g_fetch(rf_backend *be, const rf_tensor *t, double *dst, int64_t n, rf_err *err);

/* What the backward of one block needs from its forward, for T tokens. */
typedef struct rf_hblock_cache {
    int T;
    double *x;                       /* input [T, C] */
    double *ln1, *ln1_mean, *ln1_rstd;
    double *qkv;                     /* [T, 3C] */
    double *probs;                   /* [H, T, T] */
    double *att;                     /* [T, C] attention output, before proj */
    double *proj;                    /* [T, C] proj output, before layer scale */
    double *x1;                      /* [T, C] after the first residual */
    double *ln2, *ln2_mean, *ln2_rstd;
    double *pre, *hid;               /* [T, I] fc1 output, after the activation */
    double *fc2;                     /* [T, C] fc2 output, before layer scale */
} rf_hblock_cache;

int rf_hblock_cache_alloc(rf_hblock_cache *c, const rf_hblock *b, int T, rf_err *err);
void rf_hblock_cache_free(rf_hblock_cache *c);

/* y [T, C] = block(x [T, C]) with key mask [T] and attention groups [T]
 * (either NULL: none; see rf_g_attention_forward); fills cache (allocated
 * for T). */
void rf_hblock_forward(const rf_hblock *b, rf_hblock_cache *c, const double *x, const int32_t *mask,
                       const int32_t *group, int T, double *y);
/* dx [T, C] += d block / d x applied to dy; g (NULL: not wanted) receives
 * the weight gradients, accumulated, in arrays shaped as b's. Allocates its
 * scratch; RF_ENOMEM when it cannot. */
int rf_hblock_backward(const rf_hblock *b, const rf_hblock_cache *c, const double *dy, double *dx, rf_hblock *g,
                       rf_err *err);

/* The attention weights [H, T, T] of a block alone: ln1, qkv and the masked
 * softmax (attention rollout needs no more). */
int rf_hblock_attention_probs(const rf_hblock *b, const double *x, const int32_t *mask, const int32_t *group, int T,
                              double *probs, rf_err *err);

#endif
