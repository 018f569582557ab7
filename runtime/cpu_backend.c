/*
 * The CPU backend: every operation of rf_backend_ops on host memory, split
 * over a thread pool. Matrix products go through cpu_gemm.c; the loops here
 * are written so the compiler vectorizes them (contiguous inner loops, no
 * reductions that need reassociation on the hot paths).
 *
 * A backend runs one operation at a time; its scratch buffer is sized at
 * creation, so no operation allocates.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/backend.h"
#include "runtime/backend_check.h"
#include "runtime/cpu_act.h"
#include "runtime/cpu_gemm.h"
#include "runtime/cpu_vec.h"
#include "runtime/threadpool.h"

#define SCRATCH_FLOATS (1 << 18) /* 1 MiB: im2col staging for patch embedding */

typedef struct cpu_backend {
    rf_pool *pool;
    float *scratch;
} cpu_backend;

static cpu_backend *cpu(rf_backend *be)
{
    return be->impl;
}

/* ---- shape checks ---- */

#define check_2d rf_check_2d
#define check_vec rf_check_vec

#define ROW(t, i) ((float *)(t)->data + (int64_t)(i) * (t)->stride[0])
#define CROW(t, i) ((const float *)(t)->data + (int64_t)(i) * (t)->stride[0])

/* Splits rows into about 4 tasks per thread, at least 8 rows each. */
static int64_t row_tasks(rf_pool *pool, int64_t rows, int64_t *per)
{
    int64_t want = (int64_t)rf_pool_threads(pool) * 4;
    int64_t chunk = (rows + want - 1) / want;
    if (chunk < 8)
        chunk = 8;
    *per = chunk;
    return (rows + chunk - 1) / chunk;
}

/* ---- linear ---- */

static int cpu_linear_prepare(rf_backend *be, rf_linear *l, rf_err *err)
{
    if (check_2d(&l->w, "linear", "weight", err))
        return RF_EINVAL;
    rf_gemm_packed *p;
    int rc = rf_gemm_pack(&p, l->w.data, l->w.shape[0], l->w.shape[1], l->w.stride[0], err);
    if (rc)
        return rc;
    l->prepared = p;
    return RF_OK;
}

static void cpu_linear_release(rf_backend *be, rf_linear *l)
{
    rf_gemm_packed_free(l->prepared);
    l->prepared = NULL;
}

static int cpu_linear(rf_backend *be, rf_tensor *y, const rf_tensor *x, const rf_linear *l,
                      rf_act act, const rf_tensor *residual, rf_err *err)
{
    if (check_2d(x, "linear", "input", err) || check_2d(y, "linear", "output", err))
        return RF_EINVAL;
    if (!l->prepared)
        return rf_err_set(err, RF_EINVAL, "linear: weight was not prepared");
    int64_t n = rf_gemm_packed_n(l->prepared), k = rf_gemm_packed_k(l->prepared);
    if (x->shape[1] != k || y->shape[0] != x->shape[0] || y->shape[1] != n)
        return rf_err_set(err, RF_EINVAL, "linear: shapes [%lld,%lld] x [%lld,%lld]^T -> [%lld,%lld] do not match",
                          (long long)x->shape[0], (long long)x->shape[1], (long long)n,
                          (long long)k, (long long)y->shape[0], (long long)y->shape[1]);
    rf_gemm_epilogue ep = {.act = act};
    if (l->b.data) {
        if (check_vec(&l->b, n, "linear", "bias", err))
            return RF_EINVAL;
        ep.bias = l->b.data;
    }
    if (residual) {
        if (check_2d(residual, "linear", "residual", err))
            return RF_EINVAL;
        if (residual->shape[0] != y->shape[0] || residual->shape[1] != n)
            return rf_err_set(err, RF_EINVAL, "linear: residual shape does not match the output");
        ep.residual = residual->data;
        ep.ldr = residual->stride[0];
    }
    rf_gemm_nt_packed(cpu(be)->pool, x->shape[0], x->data, x->stride[0], l->prepared, y->data,
                      y->stride[0], &ep);
    return RF_OK;
}

/* ---- batched matmul ---- */

static int cpu_matmul(rf_backend *be, rf_tensor *c, const rf_tensor *a, const rf_tensor *b,
                      int trans_a, int trans_b, float alpha, rf_err *err)
{
    const rf_tensor *ops[3] = {a, b, c};
    for (int i = 0; i < 3; i++)
        if (!ops[i] || !ops[i]->data || ops[i]->dtype != RF_F32 || ops[i]->ndim != 3 ||
            (ops[i]->shape[2] > 1 && ops[i]->stride[2] != 1))
            return rf_err_set(err, RF_EINVAL, "matmul: operands must be 3-D f32 with contiguous rows");
    int64_t batch = c->shape[0];
    int64_t m = trans_a ? a->shape[2] : a->shape[1];
    int64_t k = trans_a ? a->shape[1] : a->shape[2];
    int64_t kb = trans_b ? b->shape[2] : b->shape[1];
    int64_t n = trans_b ? b->shape[1] : b->shape[2];
    if (a->shape[0] != batch || b->shape[0] != batch || k != kb || c->shape[1] != m ||
        c->shape[2] != n)
        return rf_err_set(err, RF_EINVAL, "matmul: shapes do not match");
    for (int64_t i = 0; i < batch; i++)
        rf_gemm(cpu(be)->pool, trans_a, trans_b, m, n, k, alpha,
                (const float *)a->data + i * a->stride[0], a->stride[1],
                (const float *)b->data + i * b->stride[0], b->stride[1],
                (float *)c->data + i * c->stride[0], c->stride[1]);
    return RF_OK;
}

/* ---- layernorm ---- */

typedef struct {
    const rf_tensor *x, *y;
    const float *gamma, *beta;
    float eps;
    int64_t per;
} layernorm_job;

static void layernorm_task(void *ctx, int64_t task, int thread)
{
    const layernorm_job *j = ctx;
    int64_t n = j->x->shape[1];
    int64_t end = (task + 1) * j->per;
    if (end > j->x->shape[0])
        end = j->x->shape[0];
    for (int64_t r = task * j->per; r < end; r++) {
        const float *x = CROW(j->x, r);
        float *y = ROW(j->y, r);
        /* two passes in double: LayerNorm feeds every block, and the single
         * pass E[x^2] - E[x]^2 loses digits for large activations */
        double sum = 0;
        for (int64_t i = 0; i < n; i++)
            sum += x[i];
        double mean = sum / (double)n;
        double var = 0;
        for (int64_t i = 0; i < n; i++)
            var += (x[i] - mean) * (x[i] - mean);
        float inv = (float)(1.0 / sqrt(var / (double)n + j->eps));
        float fmean = (float)mean;
        for (int64_t i = 0; i < n; i++)
            y[i] = (x[i] - fmean) * inv * j->gamma[i] + j->beta[i];
    }
}

static int cpu_layernorm(rf_backend *be, rf_tensor *y, const rf_tensor *x, const rf_tensor *gamma,
                         const rf_tensor *beta, float eps, rf_err *err)
{
    if (check_2d(x, "layernorm", "input", err) || check_2d(y, "layernorm", "output", err))
        return RF_EINVAL;
    int64_t n = x->shape[1];
    if (y->shape[0] != x->shape[0] || y->shape[1] != n)
        return rf_err_set(err, RF_EINVAL, "layernorm: output shape does not match the input");
    if (check_vec(gamma, n, "layernorm", "gamma", err) || check_vec(beta, n, "layernorm", "beta", err))
        return RF_EINVAL;
    layernorm_job j = {x, y, gamma->data, beta->data, eps, 0};
    int64_t tasks = row_tasks(cpu(be)->pool, x->shape[0], &j.per);
    rf_pool_run(cpu(be)->pool, tasks, layernorm_task, &j);
    return RF_OK;
}

/* ---- elementwise ---- */

typedef struct {
    const rf_tensor *y, *a, *b, *gamma;
    rf_act act;
    int kind; /* 0 activation, 1 add, 2 scale_add */
    int64_t per;
} elementwise_job;

static void elementwise_task(void *ctx, int64_t task, int thread)
{
    const elementwise_job *j = ctx;
    int64_t n = j->y->shape[1];
    int64_t end = (task + 1) * j->per;
    if (end > j->y->shape[0])
        end = j->y->shape[0];
    for (int64_t r = task * j->per; r < end; r++) {
        float *y = ROW(j->y, r);
        const float *a = CROW(j->a, r);
        if (j->kind == 0) {
            if (y != a)
                memmove(y, a, (size_t)n * sizeof *y);
            rf_act_row(y, n, j->act);
        } else if (j->kind == 1) {
            const float *b = CROW(j->b, j->b->shape[0] == 1 ? 0 : r);
            for (int64_t i = 0; i < n; i++)
                y[i] = a[i] + b[i];
        } else {
            const float *res = CROW(j->b, r);
            const float *g = j->gamma->data;
            for (int64_t i = 0; i < n; i++)
                y[i] = res[i] + a[i] * g[i];
        }
    }
}

static int run_elementwise(rf_backend *be, elementwise_job *j)
{
    int64_t tasks = row_tasks(cpu(be)->pool, j->y->shape[0], &j->per);
    rf_pool_run(cpu(be)->pool, tasks, elementwise_task, j);
    return RF_OK;
}

static int same_shape_2d(const rf_tensor *a, const rf_tensor *b)
{
    return a->shape[0] == b->shape[0] && a->shape[1] == b->shape[1];
}

static int cpu_activation(rf_backend *be, rf_tensor *y, const rf_tensor *x, rf_act act, rf_err *err)
{
    if (check_2d(x, "activation", "input", err) || check_2d(y, "activation", "output", err))
        return RF_EINVAL;
    if (!same_shape_2d(x, y))
        return rf_err_set(err, RF_EINVAL, "activation: output shape does not match the input");
    elementwise_job j = {.y = y, .a = x, .act = act, .kind = 0};
    return run_elementwise(be, &j);
}

static int cpu_add(rf_backend *be, rf_tensor *y, const rf_tensor *a, const rf_tensor *b, rf_err *err)
{
    if (check_2d(a, "add", "a", err) || check_2d(b, "add", "b", err) || check_2d(y, "add", "output", err))
        return RF_EINVAL;
    if (!same_shape_2d(a, y) || b->shape[1] != a->shape[1] ||
        (b->shape[0] != 1 && b->shape[0] != a->shape[0]))
        return rf_err_set(err, RF_EINVAL, "add: shapes do not match");
    elementwise_job j = {.y = y, .a = a, .b = b, .kind = 1};
    return run_elementwise(be, &j);
}

static int cpu_scale_add(rf_backend *be, rf_tensor *y, const rf_tensor *x, const rf_tensor *gamma,
                         const rf_tensor *residual, rf_err *err)
{
    if (check_2d(x, "scale_add", "x", err) || check_2d(residual, "scale_add", "residual", err) ||
        check_2d(y, "scale_add", "output", err))
        return RF_EINVAL;
    if (!same_shape_2d(x, y) || !same_shape_2d(residual, y))
        return rf_err_set(err, RF_EINVAL, "scale_add: shapes do not match");
    if (check_vec(gamma, x->shape[1], "scale_add", "gamma", err))
        return RF_EINVAL;
    elementwise_job j = {.y = y, .a = x, .b = residual, .gamma = gamma, .kind = 2};
    return run_elementwise(be, &j);
}

/* ---- softmax ---- */

typedef struct {
    const rf_tensor *y, *x, *mask;
    float scale;
} softmax_job;

static void softmax_task(void *ctx, int64_t task, int thread)
{
    const softmax_job *j = ctx;
    int64_t rows = j->x->shape[1], cols = j->x->shape[2];
    int64_t b = task / rows, r = task % rows;
    const float *x = (const float *)j->x->data + b * j->x->stride[0] + r * j->x->stride[1];
    float *y = (float *)j->y->data + b * j->y->stride[0] + r * j->y->stride[1];
    const int32_t *mask = j->mask ? (const int32_t *)j->mask->data + b * j->mask->stride[0] : NULL;
    float mx = -INFINITY;
    for (int64_t i = 0; i < cols; i++)
        if ((!mask || mask[i]) && j->scale * x[i] > mx)
            mx = j->scale * x[i];
    double sum = 0;
    for (int64_t i = 0; i < cols; i++) {
        float e = (!mask || mask[i]) ? expf(j->scale * x[i] - mx) : 0.0f;
        y[i] = e;
        sum += e;
    }
    /* a fully masked row has no defined softmax; give zeros, not NaN */
    float inv = sum > 0 ? (float)(1.0 / sum) : 0.0f;
    for (int64_t i = 0; i < cols; i++)
        y[i] *= inv;
}

static int cpu_softmax(rf_backend *be, rf_tensor *y, const rf_tensor *x, const rf_tensor *mask,
                       float scale, rf_err *err)
{
    int rc = rf_check_softmax(y, x, mask, err);
    if (rc)
        return rc;
    softmax_job j = {y, x, mask, scale};
    rf_pool_run(cpu(be)->pool, x->shape[0] * x->shape[1], softmax_task, &j);
    return RF_OK;
}

/* ---- fused attention ---- */

typedef struct {
    const rf_tensor *out, *q, *k, *v, *mask;
    int heads;
    int64_t head_dim, qtiles;
    float scale;
    const rf_vec_kernels *kernels;
} attention_job;

static void attention_task(void *ctx, int64_t task, int thread)
{
    const attention_job *j = ctx;
    int64_t D = j->head_dim;
    int64_t qt = task % j->qtiles;
    int64_t h = (task / j->qtiles) % j->heads;
    int64_t b = task / j->qtiles / j->heads;
    int64_t q0 = qt * RF_ATTN_QT, T = j->q->shape[1];
#define HEAD(t, row) ((float *)(t)->data + b * (t)->stride[0] + (row) * (t)->stride[1] + h * D)
    rf_attn_tile tile = {
        .q = HEAD(j->q, q0), .k = HEAD(j->k, 0), .v = HEAD(j->v, 0), .out = HEAD(j->out, q0),
        .q_stride = j->q->stride[1], .k_stride = j->k->stride[1], .v_stride = j->v->stride[1],
        .out_stride = j->out->stride[1], .T = T, .D = D,
        .qn = T - q0 < RF_ATTN_QT ? T - q0 : RF_ATTN_QT,
        .key_mask = j->mask ? (const int32_t *)j->mask->data + b * j->mask->stride[0] : NULL,
        .scale = j->scale,
    };
#undef HEAD
    j->kernels->attention_tile(&tile);
}

static int cpu_attention(rf_backend *be, rf_tensor *out, const rf_tensor *q, const rf_tensor *k,
                         const rf_tensor *v, const rf_tensor *key_mask, int heads, float scale,
                         rf_err *err)
{
    int rc = rf_check_attention(out, q, k, v, key_mask, heads, err);
    if (rc)
        return rc;
    int64_t head_dim = q->shape[2] / heads;
    if (head_dim > RF_ATTN_DMAX)
        return rf_err_set(err, RF_EUNSUP, "attention: head size %lld exceeds %d", (long long)head_dim,
                          RF_ATTN_DMAX);
    attention_job j = {out, q, k, v, key_mask, heads, head_dim, (q->shape[1] + RF_ATTN_QT - 1) / RF_ATTN_QT,
                       scale, rf_vec_select()};
    rf_pool_run(cpu(be)->pool, q->shape[0] * heads * j.qtiles, attention_task, &j);
    return RF_OK;
}

/* ---- patch embedding ---- */

static int cpu_patch_embed(rf_backend *be, rf_tensor *y, const rf_tensor *img, const rf_linear *proj,
                           int patch, rf_err *err)
{
    if (!img || !img->data || img->dtype != RF_F32 || img->ndim != 4 || !rf_tensor_is_contiguous(img))
        return rf_err_set(err, RF_EINVAL, "patch_embed: image must be a contiguous f32 [B, C, H, W]");
    int64_t B = img->shape[0], C = img->shape[1], H = img->shape[2], W = img->shape[3];
    if (patch <= 0 || H % patch || W % patch || H < patch || W < patch)
        return rf_err_set(err, RF_EINVAL, "patch_embed: image %lldx%lld is not a multiple of patch %d",
                          (long long)H, (long long)W, patch);
    int64_t gh = H / patch, gw = W / patch, kdim = C * patch * patch;
    if (!proj->prepared || rf_gemm_packed_k(proj->prepared) != kdim)
        return rf_err_set(err, RF_EINVAL, "patch_embed: projection expects %lld inputs, image patches have %lld",
                          proj->prepared ? (long long)rf_gemm_packed_k(proj->prepared) : 0LL,
                          (long long)kdim);
    int64_t E = rf_gemm_packed_n(proj->prepared);
    if (!y || !y->data || y->dtype != RF_F32 || y->ndim != 3 || y->shape[0] != B ||
        y->shape[1] != gh * gw || y->shape[2] != E || y->stride[2] != 1)
        return rf_err_set(err, RF_EINVAL, "patch_embed: output must be f32 [%lld, %lld, %lld]",
                          (long long)B, (long long)(gh * gw), (long long)E);
    if (proj->b.data && check_vec(&proj->b, E, "patch_embed", "bias", err))
        return RF_EINVAL;
    int64_t chunk = SCRATCH_FLOATS / kdim;
    if (chunk < 1)
        return rf_err_set(err, RF_EUNSUP, "patch_embed: patch of %lld values exceeds the staging buffer",
                          (long long)kdim);
    float *cols = cpu(be)->scratch;
    rf_gemm_epilogue ep = {.bias = proj->b.data};
    const float *px = img->data;
    for (int64_t b = 0; b < B; b++) {
        for (int64_t p0 = 0; p0 < gh * gw; p0 += chunk) {
            int64_t pn = gh * gw - p0 < chunk ? gh * gw - p0 : chunk;
            /* im2col in the weight's (c, ky, kx) order */
            for (int64_t p = 0; p < pn; p++) {
                int64_t py = (p0 + p) / gw, pxi = (p0 + p) % gw;
                float *dst = cols + p * kdim;
                for (int64_t c = 0; c < C; c++)
                    for (int ky = 0; ky < patch; ky++) {
                        const float *src = px + ((b * C + c) * H + py * patch + ky) * W + pxi * patch;
                        memcpy(dst, src, (size_t)patch * sizeof(float));
                        dst += patch;
                    }
            }
            float *out = (float *)y->data + b * y->stride[0] + p0 * y->stride[1];
            rf_gemm_nt_packed(cpu(be)->pool, pn, cols, kdim, proj->prepared, out, y->stride[1], &ep);
        }
    }
    return RF_OK;
}

/* ---- embedding gather ---- */

static int cpu_embedding(rf_backend *be, rf_tensor *y, const rf_tensor *table, const rf_tensor *ids,
                         rf_err *err)
{
    if (rf_check_embedding(y, table, ids, err))
        return RF_EINVAL;
    int64_t n = rf_tensor_numel(ids);
    const int32_t *id = ids->data;
    for (int64_t i = 0; i < n; i++)
        if (id[i] < 0 || id[i] >= table->shape[0])
            return rf_err_set(err, RF_EINVAL, "embedding: id %d at position %lld is outside the table of %lld rows",
                              id[i], (long long)i, (long long)table->shape[0]);
    for (int64_t i = 0; i < n; i++)
        memcpy(ROW(y, i), CROW(table, id[i]), (size_t)table->shape[1] * sizeof(float));
    return RF_OK;
}

/* ---- bicubic interpolation ---- */

/* PyTorch's cubic convolution weights (A = -0.75) for fractional offset t. */
static void cubic_weights(double t, double w[4])
{
    const double A = -0.75;
    double x;
    x = t + 1;
    w[0] = ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
    x = t;
    w[1] = ((A + 2) * x - (A + 3)) * x * x + 1;
    x = 1 - t;
    w[2] = ((A + 2) * x - (A + 3)) * x * x + 1;
    x = 2 - t;
    w[3] = ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
}

static int64_t clampi(int64_t v, int64_t lo, int64_t hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

static int cpu_interp_bicubic(rf_backend *be, rf_tensor *y, const rf_tensor *x, rf_err *err)
{
    if (!x || !y || !x->data || !y->data || x->dtype != RF_F32 || y->dtype != RF_F32 ||
        x->ndim != 3 || y->ndim != 3 || x->shape[0] != y->shape[0])
        return rf_err_set(err, RF_EINVAL, "interp_bicubic: operands must be f32 [C, H, W] with equal C");
    int64_t C = x->shape[0], H = x->shape[1], W = x->shape[2];
    int64_t H2 = y->shape[1], W2 = y->shape[2];
    if (H < 1 || W < 1 || H2 < 1 || W2 < 1)
        return rf_err_set(err, RF_EINVAL, "interp_bicubic: empty image");
    /* align_corners=False with an explicit output size: scale = in / out,
     * source = (dst + 0.5) * scale - 0.5, not clamped for cubic */
    double sh = (double)H / (double)H2, sw = (double)W / (double)W2;
    const float *xs = x->data;
    float *ys = y->data;
    for (int64_t oy = 0; oy < H2; oy++) {
        double ry = (oy + 0.5) * sh - 0.5;
        int64_t iy = (int64_t)floor(ry);
        double wy[4];
        cubic_weights(ry - (double)iy, wy);
        for (int64_t ox = 0; ox < W2; ox++) {
            double rx = (ox + 0.5) * sw - 0.5;
            int64_t ix = (int64_t)floor(rx);
            double wx[4];
            cubic_weights(rx - (double)ix, wx);
            for (int64_t c = 0; c < C; c++) {
                double acc = 0;
                for (int a = 0; a < 4; a++) {
                    int64_t yy = clampi(iy - 1 + a, 0, H - 1);
                    double row = 0;
                    for (int bb = 0; bb < 4; bb++) {
                        int64_t xx = clampi(ix - 1 + bb, 0, W - 1);
                        row += wx[bb] * xs[c * x->stride[0] + yy * x->stride[1] + xx * x->stride[2]];
                    }
                    acc += wy[a] * row;
                }
                ys[c * y->stride[0] + oy * y->stride[1] + ox * y->stride[2]] = (float)acc;
            }
        }
    }
    return RF_OK;
}

/* ---- memory and passes: host memory, operations run as they are called ---- */

static int cpu_buffer_alloc(rf_backend *be, size_t bytes, rf_buffer **buf, void **data, rf_err *err)
{
    void *p = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    if (!p)
        return rf_err_set(err, RF_ENOMEM, "cannot allocate %zu bytes", bytes);
    *buf = p;
    *data = p;
    return RF_OK;
}

static void cpu_buffer_free(rf_backend *be, rf_buffer *buf)
{
    free(buf);
}

static int cpu_upload(rf_backend *be, const rf_tensor *dst, const void *src, rf_err *err)
{
    if (!dst->data || !rf_tensor_is_contiguous(dst))
        return rf_err_set(err, RF_EINVAL, "upload: destination must be contiguous");
    memcpy(dst->data, src, (size_t)rf_tensor_numel(dst) * rf_dtype_size(dst->dtype));
    return RF_OK;
}

static int cpu_download(rf_backend *be, void *dst, const rf_tensor *src, rf_err *err)
{
    size_t esz = rf_dtype_size(src->dtype);
    if (rf_tensor_is_contiguous(src)) {
        memcpy(dst, src->data, (size_t)rf_tensor_numel(src) * esz);
        return RF_OK;
    }
    if (src->ndim != 2 || src->stride[1] != 1)
        return rf_err_set(err, RF_EINVAL, "download: source must be contiguous or 2-D with contiguous rows");
    for (int64_t r = 0; r < src->shape[0]; r++)
        memcpy((char *)dst + (size_t)(r * src->shape[1]) * esz, (const char *)src->data + (size_t)(r * src->stride[0]) * esz,
               (size_t)src->shape[1] * esz);
    return RF_OK;
}

static int cpu_begin(rf_backend *be, rf_err *err)
{
    return RF_OK;
}

static int cpu_end(rf_backend *be, int submit, rf_err *err)
{
    return RF_OK;
}

/* The CPU backend computes in fp32 only (its packed panels are fp32). */
static int cpu_set_precision(rf_backend *be, rf_precision p, rf_err *err)
{
    if (p == RF_PRECISION_FP32)
        return RF_OK;
    if (p == RF_PRECISION_FP16)
        return rf_err_set(err, RF_EUNSUP, "the CPU backend does not support fp16 precision (fp32 only); "
                                          "fp16 needs a Vulkan device");
    return rf_err_set(err, RF_EINVAL, "cpu: unknown precision %d", (int)p);
}

/* ---- lifetime ---- */

static void cpu_destroy(rf_backend *be)
{
    if (!be)
        return;
    cpu_backend *c = be->impl;
    if (c) {
        rf_pool_destroy(c->pool);
        free(c->scratch);
        free(c);
    }
    free(be);
}

static const rf_backend_ops cpu_ops = {
    .name = "cpu",
    .destroy = cpu_destroy,
    .host_addressable = 1,
    .buffer_alloc = cpu_buffer_alloc,
    .buffer_free = cpu_buffer_free,
    .upload = cpu_upload,
    .download = cpu_download,
    .begin = cpu_begin,
    .end = cpu_end,
    .set_precision = cpu_set_precision,
    .linear_prepare = cpu_linear_prepare,
    .linear_release = cpu_linear_release,
    .linear = cpu_linear,
    .matmul = cpu_matmul,
    .layernorm = cpu_layernorm,
    .activation = cpu_activation,
    .add = cpu_add,
    .scale_add = cpu_scale_add,
    .softmax = cpu_softmax,
    .attention = cpu_attention,
    .patch_embed = cpu_patch_embed,
    .embedding = cpu_embedding,
    .interp_bicubic = cpu_interp_bicubic,
};

int rf_cpu_backend_create(rf_backend **out, int threads, rf_err *err)
{
    *out = NULL;
    rf_backend *be = calloc(1, sizeof *be);
    cpu_backend *c = calloc(1, sizeof *c);
    if (!be || !c) {
        free(be);
        free(c);
        return rf_err_set(err, RF_ENOMEM, "cannot allocate the CPU backend");
    }
    be->ops = &cpu_ops;
    be->impl = c;
    c->scratch = aligned_alloc(64, SCRATCH_FLOATS * sizeof(float));
    if (!c->scratch) {
        cpu_destroy(be);
        return rf_err_set(err, RF_ENOMEM, "cannot allocate the CPU backend's scratch buffer");
    }
    int rc = rf_pool_create(&c->pool, threads, err);
    if (rc) {
        cpu_destroy(be);
        return rc;
    }
    snprintf(be->description, sizeof be->description, "cpu (%d threads)", rf_pool_threads(c->pool));
    *out = be;
    return RF_OK;
}
