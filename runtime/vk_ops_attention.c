/* Softmax and fused attention on the Vulkan backend (to be written: see issue 3). */
#include "runtime/vk_ops.h"

int rf_vk_softmax(rf_backend *be, rf_tensor *y, const rf_tensor *x, const rf_tensor *mask, float scale,
                  rf_err *err)
{
    return rf_err_set(err, RF_EUNSUP, "vulkan: softmax is not implemented yet");
}

int rf_vk_attention(rf_backend *be, rf_tensor *out, const rf_tensor *q, const rf_tensor *k, const rf_tensor *v,
                    const rf_tensor *key_mask, int heads, float scale, rf_err *err)
{
    return rf_err_set(err, RF_EUNSUP, "vulkan: attention is not implemented yet");
}
