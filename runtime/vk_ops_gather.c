/* Embedding gather and bicubic resize on the Vulkan backend (to be written: see issue 3). */
#include "runtime/vk_ops.h"

int rf_vk_embedding(rf_backend *be, rf_tensor *y, const rf_tensor *table, const rf_tensor *ids, rf_err *err)
{
    return rf_err_set(err, RF_EUNSUP, "vulkan: embedding is not implemented yet");
}

int rf_vk_interp_bicubic(rf_backend *be, rf_tensor *y, const rf_tensor *x, rf_err *err)
{
    return rf_err_set(err, RF_EUNSUP, "vulkan: interp_bicubic is not implemented yet");
}
