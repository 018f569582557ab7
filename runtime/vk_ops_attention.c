/*
 * Softmax and fused attention on the Vulkan backend (shaders/softmax.comp,
 * shaders/attention.comp). Same checks and messages as the CPU backend, plus
 * the shaders' 32-bit index limit.
 */
#include "runtime/backend_check.h"
#include "runtime/vk_ops.h"

typedef struct softmax_params {
    uint64_t y, x, mask;
    int32_t R, C, x_bs, x_rs, y_bs, y_rs, m_bs, has_mask;
    float scale;
} softmax_params;
_Static_assert(sizeof(softmax_params) <= RF_VK_MAX_PUSH, "push constants");

typedef struct attention_params {
    uint64_t o, q, k, v, mask;
    int32_t T, D, QT, KT, CT, has_mask;
    int32_t q_bs, q_rs, k_bs, k_rs, v_bs, v_rs, o_bs, o_rs, m_bs;
    float scale;
} attention_params;
_Static_assert(sizeof(attention_params) <= RF_VK_MAX_PUSH, "push constants");

/* The shader's workgroup size and largest head (attention.comp sizes its
 * shared memory for these: under 32 KiB). */
#define ATTN_WG 128
#define ATTN_DMAX 256
#define ATTN_Q4_MAX 576 /* its shared arrays, in vec4 */
#define ATTN_K4_MAX 544
#define ATTN_V4_MAX 512
#define ATTN_P4_MAX 320
#define ATTN_SHARED_BYTES (16 * (ATTN_Q4_MAX + ATTN_K4_MAX + ATTN_V4_MAX + ATTN_P4_MAX + 16) + 4 * 64)

/* Elements a 3-D view spans (all strides checked non-negative): the index of
 * its last element plus one must fit the shaders' int indices. */
static int64_t span3(const rf_tensor *t)
{
    for (int d = 0; d < 3; d++)
        if (t->shape[d] == 0)
            return 0;
    return (t->shape[0] - 1) * t->stride[0] + (t->shape[1] - 1) * t->stride[1] + (t->shape[2] - 1) * t->stride[2] +
           1;
}

int rf_vk_softmax(rf_backend *be, rf_tensor *y, const rf_tensor *x, const rf_tensor *mask, float scale,
                  rf_err *err)
{
    if (rf_check_softmax(y, x, mask, err))
        return RF_EINVAL;
    int64_t B = x->shape[0], R = x->shape[1], C = x->shape[2];
    if (B == 0 || R == 0 || C == 0)
        return RF_OK;
    if (rf_vk_check_index(span3(x), "softmax", err) || rf_vk_check_index(span3(y), "softmax", err) ||
        (mask && rf_vk_check_index((B - 1) * mask->stride[0] + C, "softmax", err)))
        return RF_EUNSUP;
    softmax_params p = {.y = rf_vk_addr(y), .x = rf_vk_addr(x), .mask = mask ? rf_vk_addr(mask) : 0,
                        .R = (int32_t)R, .C = (int32_t)C, .x_bs = (int32_t)x->stride[0],
                        .x_rs = (int32_t)x->stride[1], .y_bs = (int32_t)y->stride[0], .y_rs = (int32_t)y->stride[1],
                        .m_bs = mask ? (int32_t)mask->stride[0] : 0, .has_mask = mask != NULL, .scale = scale};
    return rf_vk_dispatch(rf_vk_of(be), "softmax", &p, sizeof p, (uint32_t)R, (uint32_t)B, 1, err);
}

int rf_vk_attention(rf_backend *be, rf_tensor *out, const rf_tensor *q, const rf_tensor *k, const rf_tensor *v,
                    const rf_tensor *key_mask, int heads, float scale, rf_err *err)
{
    if (rf_check_attention(out, q, k, v, key_mask, heads, err))
        return RF_EINVAL;
    int64_t B = q->shape[0], T = q->shape[1], D = q->shape[2] / heads;
    if (D > ATTN_DMAX)
        return rf_err_set(err, RF_EUNSUP, "attention: head size %lld exceeds %d", (long long)D, ATTN_DMAX);
    if (B == 0 || T == 0 || D == 0)
        return RF_OK;
    rf_vk *vk = rf_vk_of(be);
    if (vk->props.limits.maxComputeSharedMemorySize < ATTN_SHARED_BYTES)
        return rf_err_set(err, RF_EUNSUP, "attention: %s has %u bytes of shared memory, the kernel needs %d",
                          vk->props.deviceName, vk->props.limits.maxComputeSharedMemorySize, ATTN_SHARED_BYTES);
    const rf_tensor *ops[4] = {q, k, v, out};
    for (int i = 0; i < 4; i++)
        if (rf_vk_check_index(span3(ops[i]), "attention", err))
            return RF_EUNSUP;
    if (key_mask && rf_vk_check_index((B - 1) * key_mask->stride[0] + T, "attention", err))
        return RF_EUNSUP;

    /* Tile shape (see attention.comp): CT threads across the output columns
     * (each 4 of them), QT = 4 * WG / CT query rows, KT keys per tile with
     * KT * D4 <= 2048 floats (D4: D rounded up to 4) and at most 8 scores per
     * thread. The shader's shared arrays hold the largest of these. */
    int32_t CT = 8;
    while (CT * 4 < D)
        CT *= 2;
    int32_t D4 = (int32_t)(D + 3) / 4 * 4, QT = 4 * (ATTN_WG / CT), KT = 64;
    while (KT > 8 && (KT * D4 > 2048 || QT * KT > 8 * ATTN_WG))
        KT /= 2;
    int32_t row4 = (D4 / 4) | 1; /* padded row of Q and K tiles, in vec4 */
    if (QT * row4 > ATTN_Q4_MAX || KT * row4 > ATTN_K4_MAX || KT * D4 / 4 > ATTN_V4_MAX ||
        QT * (KT / 4 + 1) > ATTN_P4_MAX)
        return rf_err_set(err, RF_EUNSUP, "attention: head size %lld does not fit the shader's tiles", (long long)D);
    int64_t qtiles = (T + QT - 1) / QT;
    attention_params p = {
        .o = rf_vk_addr(out), .q = rf_vk_addr(q), .k = rf_vk_addr(k), .v = rf_vk_addr(v),
        .mask = key_mask ? rf_vk_addr(key_mask) : 0, .T = (int32_t)T, .D = (int32_t)D, .QT = QT, .KT = KT,
        .CT = CT, .has_mask = key_mask != NULL, .q_bs = (int32_t)q->stride[0], .q_rs = (int32_t)q->stride[1],
        .k_bs = (int32_t)k->stride[0], .k_rs = (int32_t)k->stride[1], .v_bs = (int32_t)v->stride[0],
        .v_rs = (int32_t)v->stride[1], .o_bs = (int32_t)out->stride[0], .o_rs = (int32_t)out->stride[1],
        .m_bs = key_mask ? (int32_t)key_mask->stride[0] : 0, .scale = scale};
    return rf_vk_dispatch(vk, "attention", &p, sizeof p, (uint32_t)qtiles, (uint32_t)heads, (uint32_t)B, err);
}
