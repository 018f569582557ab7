/*
 * Matrix products on the Vulkan backend: linear, matmul and patch_embed all
 * record shaders/gemm.comp, one tiled fp32 GEMM with arbitrary element
 * strides for both operands (transposes are stride swaps), a batch index on
 * the grid's z, and a fused epilogue (alpha, bias, activation, residual).
 * patch_embed reads the image through the im2col index mapping inside the
 * shader, so it needs no scratch memory.
 *
 * In fp32 precision weights are used in place at their device address:
 * linear_prepare only checks the weight and leaves l->prepared NULL (the
 * model relocates l->w to the device before any linear runs). In fp16
 * precision (rf_backend_set_precision) linear_prepare rounds the host weight
 * to IEEE halves (nearest even) into a device buffer of its own, which
 * l->prepared owns; linear and patch_embed then record the gemm_f16w variant
 * of the shader, which reads B as halves and widens each to fp32 as it loads
 * it (bias, accumulation, activation and residual stay fp32). Which shader
 * runs follows l->prepared, not the current precision setting.
 *
 * On devices with tensor cores through VK_NV_cooperative_matrix
 * (rf_vk.has_coopmat), fp16 linears whose rows are whole 16-byte vectors
 * record gemm_coop instead (shaders/gemm_coop.comp): the activations are
 * rounded to fp16 too, as they enter the 16x16x16 products, which still
 * accumulate in fp32. 128x256 tiles where the grid has enough of them to
 * fill the device, else gemm_coop_s's 64x64. RADFUSE_VK_COOP_SHADER names
 * another built variant (for tuning on a GPU).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/vk_ops.h"

/* l->prepared in fp16 precision: the weight [n, k] as contiguous halves. */
typedef struct half_weight {
    rf_vk_buffer *buf;
    int64_t n, k;
} half_weight;

typedef struct gemm_params {
    uint64_t c, a, b, bias, res;
    int32_t M, N, K;
    int32_t a_sm, a_sk, b_sk, b_sn;
    int32_t ldc, ldr;
    int32_t a_batch, b_batch, c_batch;
    float alpha;
    int32_t act, flags;
    int32_t psize, img_w, img_hw, grid_w;
} gemm_params;
_Static_assert(sizeof(gemm_params) <= RF_VK_MAX_PUSH, "push constants");

/* gemm.comp's flags and its BM x BN tile */
#define F_BIAS 1
#define F_RES 2
#define F_A_MCONTIG 4
#define F_B_NCONTIG 8
#define F_PATCH 16
#define TILE_M 64
#define TILE_N 64

static int64_t tiles(int64_t n, int64_t tile)
{
    return (n + tile - 1) / tile;
}

/* The shader for B held as f32 (gemm) or as halves (gemm_f16w), and the
 * size of B's elements, for address arithmetic. */
typedef struct gemm_kind {
    const char *shader;
    int b_bytes;
} gemm_kind;

static const gemm_kind GEMM_F32 = {"gemm", 4}, GEMM_F16W = {"gemm_f16w", 2};

/* Records p over batch batches, splitting the M tiles and the batch into
 * dispatches the device's grid limits allow (base addresses move instead). */
static int run_gemm(rf_vk *vk, gemm_params p, int64_t batch, gemm_kind kind, rf_err *err)
{
    if (p.M == 0 || p.N == 0 || batch == 0)
        return RF_OK;
    if (p.a_sk != 1 && p.a_sm == 1 && !(p.flags & F_PATCH))
        p.flags |= F_A_MCONTIG;
    if (p.b_sk != 1 && p.b_sn == 1)
        p.flags |= F_B_NCONTIG;
    const uint32_t *limit = vk->props.limits.maxComputeWorkGroupCount;
    int64_t mt = tiles(p.M, TILE_M), nt = tiles(p.N, TILE_N);
    if (nt > limit[1])
        return rf_err_set(err, RF_EUNSUP, "vulkan: GEMM with %d columns exceeds the device's grid", p.N);
    int64_t m_step = (p.flags & F_PATCH) ? mt : limit[0]; /* patch mode indexes rows itself */
    for (int64_t z0 = 0; z0 < batch; z0 += limit[2]) {
        int64_t zn = batch - z0 < limit[2] ? batch - z0 : limit[2];
        for (int64_t t0 = 0; t0 < mt; t0 += m_step) {
            int64_t tn = mt - t0 < m_step ? mt - t0 : m_step;
            int64_t m0 = t0 * TILE_M;
            gemm_params q = p;
            q.M = (int32_t)(p.M - m0 < tn * TILE_M ? p.M - m0 : tn * TILE_M);
            q.a += 4 * (uint64_t)(z0 * p.a_batch + (p.flags & F_PATCH ? 0 : m0 * p.a_sm));
            q.b += (uint64_t)kind.b_bytes * (uint64_t)(z0 * p.b_batch);
            q.c += 4 * (uint64_t)(z0 * p.c_batch + m0 * p.ldc);
            if (p.flags & F_RES)
                q.res += 4 * (uint64_t)(m0 * p.ldr);
            int rc = rf_vk_dispatch(vk, kind.shader, &q, sizeof q, (uint32_t)tn, (uint32_t)nt, (uint32_t)zn, err);
            if (rc)
                return rc;
        }
    }
    return RF_OK;
}

/* gemm_coop's variants: name, tile (both shaders' grids are x = N tiles, y = M tiles) */
typedef struct coop_kind {
    const char *shader;
    int bm, bn;
} coop_kind;

static const coop_kind COOP_KINDS[] = {
    {"gemm_coop_n256", 128, 256}, /* large grids */
    {"gemm_coop_s", 64, 64},      /* small grids */
    /* others, used only when RADFUSE_VK_COOP_SHADER names them (tuning) */
    {"gemm_coop", 128, 128},
    {"gemm_coop_256", 256, 256},
    {"gemm_coop_n256t", 128, 256},
    {"gemm_coop_m64n256", 64, 256},
};

/* A large-tile grid with fewer workgroups than this leaves SMs idle (132 on
 * an H100): use the small tile. */
#define COOP_MIN_GROUPS 256

/* Records p (a linear with fp16 weights) on tensor cores if the device and
 * the operands allow: *done = 1 when recorded. */
static int run_coop(rf_vk *vk, const gemm_params *p, int *done, rf_err *err)
{
    *done = 0;
    if (!vk->has_coopmat || p->flags & F_PATCH || p->a_sk != 1 || p->b_sk != 1 || p->K % 8 || p->a_sm % 4 ||
        p->b_sn % 8 || p->a % 16 || p->b % 16 || p->M == 0 || p->N == 0)
        return RF_OK;
    const coop_kind *k = &COOP_KINDS[0];
    if (tiles(p->M, k->bm) * tiles(p->N, k->bn) < COOP_MIN_GROUPS)
        k = &COOP_KINDS[1];
    const char *force = getenv("RADFUSE_VK_COOP_SHADER");
    for (size_t i = 0; force && i < sizeof COOP_KINDS / sizeof COOP_KINDS[0]; i++)
        if (strcmp(force, COOP_KINDS[i].shader) == 0)
            k = &COOP_KINDS[i];
    int64_t nt = tiles(p->N, k->bn), mt = tiles(p->M, k->bm);
    const uint32_t *limit = vk->props.limits.maxComputeWorkGroupCount;
    if (nt > limit[0] || mt > limit[1])
        return RF_OK;
    *done = 1;
    return rf_vk_dispatch(vk, k->shader, p, sizeof *p, (uint32_t)nt, (uint32_t)mt, 1, err);
}

/* ---- linear ---- */

/* l->w (host memory at this point) as halves in a device buffer of its own. */
static int prepare_half(rf_vk *vk, rf_linear *l, rf_err *err)
{
    int64_t n = l->w.shape[0], k = l->w.shape[1];
    int rc = rf_vk_check_index(n * k, "linear", err);
    if (rc)
        return rc;
    size_t bytes = (size_t)(n * k) * sizeof(uint16_t);
    uint16_t *h = malloc(bytes ? bytes : 2);
    if (!h)
        return rf_err_set(err, RF_ENOMEM, "linear: cannot allocate a [%lld, %lld] fp16 weight", (long long)n,
                          (long long)k);
    const float *w = l->w.data;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < k; j++) {
            float v = w[i * l->w.stride[0] + j];
            uint16_t x = rf_f32_to_f16(v);
            if ((x & 0x7c00) == 0x7c00 && isfinite(v)) {
                free(h);
                return rf_err_set(err, RF_EUNSUP, "linear: weight [%lld, %lld] = %g is outside fp16's range "
                                                  "(|w| <= 65504); use fp32 precision", (long long)i, (long long)j,
                                  (double)v);
            }
            h[i * k + j] = x;
        }
    half_weight *hw = calloc(1, sizeof *hw);
    if (!hw) {
        free(h);
        return rf_err_set(err, RF_ENOMEM, "linear: out of memory");
    }
    hw->n = n, hw->k = k;
    rc = rf_vk_buffer_create(vk, bytes ? bytes : 4, 0, &hw->buf, err);
    if (!rc && bytes)
        rc = rf_vk_write(vk, hw->buf->address, h, bytes, err);
    free(h);
    if (rc) {
        if (hw->buf)
            rf_vk_buffer_destroy(vk, hw->buf);
        free(hw);
        return rc;
    }
    l->prepared = hw;
    return RF_OK;
}

int rf_vk_linear_prepare(rf_backend *be, rf_linear *l, rf_err *err)
{
    if (rf_vk_check_2d(&l->w, "linear", "weight", err))
        return RF_EINVAL;
    l->prepared = NULL; /* fp32: the weight is read in place */
    rf_vk *vk = rf_vk_of(be);
    return vk->precision == RF_PRECISION_FP16 ? prepare_half(vk, l, err) : RF_OK;
}

void rf_vk_linear_release(rf_backend *be, rf_linear *l)
{
    half_weight *hw = l->prepared;
    if (hw) {
        rf_vk_buffer_destroy(rf_vk_of(be), hw->buf);
        free(hw);
    }
    l->prepared = NULL;
}

/* Points p's B at l's weight: the fp16 copy where prepared, else l->w. */
static int weight_operand(const rf_linear *l, const char *op, gemm_params *p, gemm_kind *kind, rf_err *err)
{
    const half_weight *hw = l->prepared;
    if (!hw) {
        p->b = rf_vk_addr(&l->w);
        p->b_sn = (int32_t)l->w.stride[0];
        *kind = GEMM_F32;
        return RF_OK;
    }
    if (hw->n != l->w.shape[0] || hw->k != l->w.shape[1])
        return rf_err_set(err, RF_EINVAL, "%s: prepared fp16 weight [%lld, %lld] does not match the weight's "
                                          "shape [%lld, %lld]", op, (long long)hw->n, (long long)hw->k,
                          (long long)l->w.shape[0], (long long)l->w.shape[1]);
    p->b = hw->buf->address;
    p->b_sn = (int32_t)hw->k;
    *kind = GEMM_F16W;
    return RF_OK;
}

/* The weight's shape must be a 2-D [out, in]; its fp32 data may be gone
 * (NULL) once an fp16 copy is prepared: the model does not keep both. */
static int check_weight(const rf_linear *l, const char *op, rf_err *err)
{
    if (l->prepared) {
        if (l->w.ndim != 2 || l->w.shape[0] < 1 || l->w.shape[1] < 1)
            return rf_err_set(err, RF_EINVAL, "%s: weight must be 2-D", op);
        return RF_OK;
    }
    return rf_vk_check_2d(&l->w, op, "weight", err);
}

int rf_vk_linear(rf_backend *be, rf_tensor *y, const rf_tensor *x, const rf_linear *l, rf_act act,
                 const rf_tensor *residual, rf_err *err)
{
    int rc;
    if ((rc = rf_vk_check_2d(x, "linear", "input", err)) || (rc = rf_vk_check_2d(y, "linear", "output", err)) ||
        (rc = check_weight(l, "linear", err)))
        return rc;
    int64_t n = l->w.shape[0], k = l->w.shape[1];
    if (x->shape[1] != k || y->shape[0] != x->shape[0] || y->shape[1] != n)
        return rf_err_set(err, RF_EINVAL, "linear: shapes [%lld,%lld] x [%lld,%lld]^T -> [%lld,%lld] do not match",
                          (long long)x->shape[0], (long long)x->shape[1], (long long)n, (long long)k,
                          (long long)y->shape[0], (long long)y->shape[1]);
    if ((unsigned)act > RF_ACT_RELU)
        return rf_err_set(err, RF_EINVAL, "linear: unknown activation %d", (int)act);
    gemm_params p = {.c = rf_vk_addr(y), .a = rf_vk_addr(x), .M = (int32_t)x->shape[0], .N = (int32_t)n,
                     .K = (int32_t)k, .a_sm = (int32_t)x->stride[0], .a_sk = 1, .b_sk = 1,
                     .ldc = (int32_t)y->stride[0], .alpha = 1.0f, .act = (int32_t)act};
    gemm_kind kind = GEMM_F32;
    if ((rc = weight_operand(l, "linear", &p, &kind, err)))
        return rc;
    if (l->b.data) {
        if ((rc = rf_vk_check_vec(&l->b, n, "linear", "bias", err)))
            return rc;
        p.bias = rf_vk_addr(&l->b);
        p.flags |= F_BIAS;
    }
    if (residual) {
        if ((rc = rf_vk_check_2d(residual, "linear", "residual", err)))
            return rc;
        if (residual->shape[0] != y->shape[0] || residual->shape[1] != n)
            return rf_err_set(err, RF_EINVAL, "linear: residual shape does not match the output");
        p.res = rf_vk_addr(residual);
        p.ldr = (int32_t)residual->stride[0];
        p.flags |= F_RES;
    }
    if (kind.b_bytes == 2) {
        int done = 0;
        rc = run_coop(rf_vk_of(be), &p, &done, err);
        if (rc || done)
            return rc;
    }
    return run_gemm(rf_vk_of(be), p, 1, kind, err);
}

/* ---- batched matmul ---- */

/* A 3-D operand whose largest element offset fits the shader's int. */
static int check_3d(const rf_tensor *t, rf_err *err)
{
    if (!t || !t->data || t->dtype != RF_F32 || t->ndim != 3 || (t->shape[2] > 1 && t->stride[2] != 1))
        return rf_err_set(err, RF_EINVAL, "matmul: operands must be 3-D f32 with contiguous rows");
    int64_t span = 1;
    for (int d = 0; d < 3; d++) {
        if (t->shape[d] > 1 && (t->stride[d] < 0 || t->stride[d] > INT32_MAX))
            return rf_err_set(err, RF_EUNSUP, "matmul: stride %lld is not supported", (long long)t->stride[d]);
        if (t->shape[d] > 0)
            span += (t->shape[d] - 1) * t->stride[d];
    }
    return rf_vk_check_index(span, "matmul", err);
}

/* A stride as the shader's int: 0 where the extent makes it irrelevant. */
static int32_t stride32(const rf_tensor *t, int d)
{
    return t->shape[d] > 1 ? (int32_t)t->stride[d] : 0;
}

int rf_vk_matmul(rf_backend *be, rf_tensor *c, const rf_tensor *a, const rf_tensor *b, int trans_a, int trans_b,
                 float alpha, rf_err *err)
{
    int rc;
    if ((rc = check_3d(a, err)) || (rc = check_3d(b, err)) || (rc = check_3d(c, err)))
        return rc;
    int64_t batch = c->shape[0];
    int64_t m = trans_a ? a->shape[2] : a->shape[1];
    int64_t k = trans_a ? a->shape[1] : a->shape[2];
    int64_t kb = trans_b ? b->shape[2] : b->shape[1];
    int64_t n = trans_b ? b->shape[1] : b->shape[2];
    if (a->shape[0] != batch || b->shape[0] != batch || k != kb || c->shape[1] != m || c->shape[2] != n)
        return rf_err_set(err, RF_EINVAL, "matmul: shapes do not match");
    int32_t lda = stride32(a, 1), ldb = stride32(b, 1);
    gemm_params p = {.c = rf_vk_addr(c), .a = rf_vk_addr(a), .b = rf_vk_addr(b), .M = (int32_t)m, .N = (int32_t)n,
                     .K = (int32_t)k, .a_sm = trans_a ? 1 : lda, .a_sk = trans_a ? lda : 1,
                     .b_sk = trans_b ? 1 : ldb, .b_sn = trans_b ? ldb : 1, .ldc = stride32(c, 1),
                     .a_batch = stride32(a, 0), .b_batch = stride32(b, 0), .c_batch = stride32(c, 0),
                     .alpha = alpha, .act = RF_ACT_NONE};
    return run_gemm(rf_vk_of(be), p, batch, GEMM_F32, err);
}

/* ---- patch embedding ---- */

int rf_vk_patch_embed(rf_backend *be, rf_tensor *y, const rf_tensor *img, const rf_linear *proj, int patch,
                      rf_err *err)
{
    if (!img || !img->data || img->dtype != RF_F32 || img->ndim != 4 || !rf_tensor_is_contiguous(img))
        return rf_err_set(err, RF_EINVAL, "patch_embed: image must be a contiguous f32 [B, C, H, W]");
    int64_t B = img->shape[0], C = img->shape[1], H = img->shape[2], W = img->shape[3];
    if (patch <= 0 || H % patch || W % patch || H < patch || W < patch)
        return rf_err_set(err, RF_EINVAL, "patch_embed: image %lldx%lld is not a multiple of patch %d",
                          (long long)H, (long long)W, patch);
    int rc;
    if ((rc = check_weight(proj, "patch_embed", err)) ||
        (rc = rf_vk_check_index(rf_tensor_numel(img), "patch_embed", err)))
        return rc;
    int64_t gh = H / patch, gw = W / patch, np = gh * gw, kdim = C * patch * patch, E = proj->w.shape[0];
    if (proj->w.shape[1] != kdim)
        return rf_err_set(err, RF_EINVAL, "patch_embed: projection expects %lld inputs, image patches have %lld",
                          (long long)proj->w.shape[1], (long long)kdim);
    /* rows and batches of the output must not overlap (the shader writes them in parallel) */
    if (!y || !y->data || y->dtype != RF_F32 || y->ndim != 3 || y->shape[0] != B || y->shape[1] != np ||
        y->shape[2] != E || (E > 1 && y->stride[2] != 1) || (np > 1 && y->stride[1] < E) ||
        (B > 1 && y->stride[0] < (np - 1) * y->stride[1] + E))
        return rf_err_set(err, RF_EINVAL, "patch_embed: output must be f32 [%lld, %lld, %lld] with rows apart",
                          (long long)B, (long long)np, (long long)E);
    if ((rc = rf_vk_check_index((B - 1) * y->stride[0] + (np - 1) * y->stride[1] + E, "patch_embed", err)))
        return rc;
    gemm_params p = {.c = rf_vk_addr(y), .a = rf_vk_addr(img), .M = (int32_t)np,
                     .N = (int32_t)E, .K = (int32_t)kdim, .b_sk = 1,
                     .ldc = stride32(y, 1), .a_batch = (int32_t)(C * H * W), .c_batch = stride32(y, 0),
                     .alpha = 1.0f, .act = RF_ACT_NONE, .flags = F_PATCH, .psize = patch, .img_w = (int32_t)W,
                     .img_hw = (int32_t)(H * W), .grid_w = (int32_t)gw};
    gemm_kind kind = GEMM_F32;
    if ((rc = weight_operand(proj, "patch_embed", &p, &kind, err)))
        return rc;
    if (proj->b.data) {
        if ((rc = rf_vk_check_vec(&proj->b, E, "patch_embed", "bias", err)))
            return rc;
        p.bias = rf_vk_addr(&proj->b);
        p.flags |= F_BIAS;
    }
    return run_gemm(rf_vk_of(be), p, B, kind, err);
}
