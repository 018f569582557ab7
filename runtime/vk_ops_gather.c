/*
 * Embedding gather and bicubic resize on the Vulkan backend
 * (shaders/embedding.comp, shaders/interp_bicubic.comp).
 *
 * Embedding ids live on the device, so unlike the CPU backend this operation
 * cannot see them to reject one outside the table: the shader writes a row of
 * zeros for such an id and never reads outside the table. Callers check ids
 * on the host before upload (the encoder does).
 */
#include "runtime/backend_check.h"
#include "runtime/vk_ops.h"

typedef struct embedding_params {
    uint64_t y, table, ids;
    int32_t n, cols, rows, y_stride, t_stride;
} embedding_params;
_Static_assert(sizeof(embedding_params) <= RF_VK_MAX_PUSH, "push constants");

typedef struct interp_params {
    uint64_t y, x;
    int32_t C, H, W, H2, W2;
    int32_t xs0, xs1, xs2, ys0, ys1, ys2;
    int32_t c_inner, total;
} interp_params;
_Static_assert(sizeof(interp_params) <= RF_VK_MAX_PUSH, "push constants");

#define MAX_GROUPS 65535u /* the guaranteed minimum of maxComputeWorkGroupCount */

int rf_vk_embedding(rf_backend *be, rf_tensor *y, const rf_tensor *table, const rf_tensor *ids, rf_err *err)
{
    /* the contract's checks, then this backend's 32-bit indexing */
    if (rf_check_embedding(y, table, ids, err) || rf_vk_check_2d(table, "embedding", "table", err) ||
        rf_vk_check_2d(y, "embedding", "output", err))
        return RF_EINVAL;
    int64_t n = rf_tensor_numel(ids);
    if (n == 0 || table->shape[1] == 0)
        return RF_OK;
    if (table->shape[0] == 0) /* every id would be out of range */
        return rf_err_set(err, RF_EINVAL, "embedding: the table has no rows");
    if (rf_vk_check_index(n, "embedding", err))
        return RF_EUNSUP;
    embedding_params p = {.y = rf_vk_addr(y), .table = rf_vk_addr(table), .ids = rf_vk_addr(ids),
                          .n = (int32_t)n, .cols = (int32_t)table->shape[1], .rows = (int32_t)table->shape[0],
                          .y_stride = (int32_t)y->stride[0], .t_stride = (int32_t)table->stride[0]};
    uint32_t groups = n < (int64_t)MAX_GROUPS ? (uint32_t)n : MAX_GROUPS;
    return rf_vk_dispatch(rf_vk_of(be), "embedding", &p, sizeof p, groups, 1, 1, err);
}

int rf_vk_interp_bicubic(rf_backend *be, rf_tensor *y, const rf_tensor *x, rf_err *err)
{
    if (!x || !y || !x->data || !y->data || x->dtype != RF_F32 || y->dtype != RF_F32 || x->ndim != 3 ||
        y->ndim != 3 || x->shape[0] != y->shape[0])
        return rf_err_set(err, RF_EINVAL, "interp_bicubic: operands must be f32 [C, H, W] with equal C");
    int64_t C = x->shape[0], H = x->shape[1], W = x->shape[2];
    int64_t H2 = y->shape[1], W2 = y->shape[2];
    if (H < 1 || W < 1 || H2 < 1 || W2 < 1)
        return rf_err_set(err, RF_EINVAL, "interp_bicubic: empty image");
    if (C == 0)
        return RF_OK;
    for (int d = 0; d < 3; d++)
        if (x->stride[d] < 0 || y->stride[d] < 0)
            return rf_err_set(err, RF_EINVAL, "interp_bicubic: negative strides are not supported");
    int64_t xspan = (C - 1) * x->stride[0] + (H - 1) * x->stride[1] + (W - 1) * x->stride[2] + 1;
    int64_t yspan = (C - 1) * y->stride[0] + (H2 - 1) * y->stride[1] + (W2 - 1) * y->stride[2] + 1;
    /* the shader splits source positions in int: (2 * H2 + 1) * H must fit */
    int64_t srcpos = (2 * H2 + 1) * H > (2 * W2 + 1) * W ? (2 * H2 + 1) * H : (2 * W2 + 1) * W;
    if (rf_vk_check_index(xspan, "interp_bicubic", err) || rf_vk_check_index(yspan, "interp_bicubic", err) ||
        rf_vk_check_index(C * H2 * W2, "interp_bicubic", err) || rf_vk_check_index(srcpos, "interp_bicubic", err))
        return RF_EUNSUP;
    int64_t total = C * H2 * W2, groups = (total + 255) / 256;
    interp_params p = {.y = rf_vk_addr(y), .x = rf_vk_addr(x), .C = (int32_t)C, .H = (int32_t)H, .W = (int32_t)W,
                       .H2 = (int32_t)H2, .W2 = (int32_t)W2, .xs0 = (int32_t)x->stride[0],
                       .xs1 = (int32_t)x->stride[1], .xs2 = (int32_t)x->stride[2], .ys0 = (int32_t)y->stride[0],
                       .ys1 = (int32_t)y->stride[1], .ys2 = (int32_t)y->stride[2],
                       /* channel-fastest order when channels are the output's innermost dimension */
                       .c_inner = y->stride[0] < y->stride[2], .total = (int32_t)total};
    return rf_vk_dispatch(rf_vk_of(be), "interp_bicubic", &p, sizeof p,
                          groups < (int64_t)MAX_GROUPS ? (uint32_t)groups : MAX_GROUPS, 1, 1, err);
}
