/* Matrix products on the Vulkan backend (to be written: see issue 3). */
#include "runtime/vk_ops.h"

int rf_vk_linear_prepare(rf_backend *be, rf_linear *l, rf_err *err)
{
    return RF_OK;
}

void rf_vk_linear_release(rf_backend *be, rf_linear *l)
{
}

int rf_vk_linear(rf_backend *be, rf_tensor *y, const rf_tensor *x, const rf_linear *l, rf_act act,
                 const rf_tensor *residual, rf_err *err)
{
    return rf_err_set(err, RF_EUNSUP, "vulkan: linear is not implemented yet");
}

int rf_vk_matmul(rf_backend *be, rf_tensor *c, const rf_tensor *a, const rf_tensor *b, int trans_a, int trans_b,
                 float alpha, rf_err *err)
{
    return rf_err_set(err, RF_EUNSUP, "vulkan: matmul is not implemented yet");
}

int rf_vk_patch_embed(rf_backend *be, rf_tensor *y, const rf_tensor *img, const rf_linear *proj, int patch,
                      rf_err *err)
{
    return rf_err_set(err, RF_EUNSUP, "vulkan: patch_embed is not implemented yet");
}
