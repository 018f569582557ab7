/* The Vulkan backend: rf_backend_ops over the device layer (vk_device.c) and
 * the kernels (vk_ops_*.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/vk_ops.h"

static int vk_buffer_alloc(rf_backend *be, size_t bytes, rf_buffer **buf, void **data, rf_err *err)
{
    rf_vk_buffer *b;
    int rc = rf_vk_buffer_create(rf_vk_of(be), bytes ? bytes : 4, 0, &b, err);
    if (rc)
        return rc;
    *buf = (rf_buffer *)b;
    *data = (void *)(uintptr_t)b->address;
    return RF_OK;
}

static void vk_buffer_free(rf_backend *be, rf_buffer *buf)
{
    rf_vk_buffer_destroy(rf_vk_of(be), (rf_vk_buffer *)buf);
}

static int vk_upload(rf_backend *be, const rf_tensor *dst, const void *src, rf_err *err)
{
    if (!dst->data || !rf_tensor_is_contiguous(dst))
        return rf_err_set(err, RF_EINVAL, "upload: destination must be contiguous");
    return rf_vk_write(rf_vk_of(be), rf_vk_addr(dst), src, (size_t)rf_tensor_numel(dst) * rf_dtype_size(dst->dtype),
                       err);
}

static int vk_download(rf_backend *be, void *dst, const rf_tensor *src, rf_err *err)
{
    size_t esz = rf_dtype_size(src->dtype);
    if (rf_tensor_is_contiguous(src)) {
        size_t n = (size_t)rf_tensor_numel(src) * esz;
        return rf_vk_read(rf_vk_of(be), dst, rf_vk_addr(src), n, n ? 1 : 0, n, err);
    }
    if (src->ndim != 2 || src->stride[1] != 1)
        return rf_err_set(err, RF_EINVAL, "download: source must be contiguous or 2-D with contiguous rows");
    return rf_vk_read(rf_vk_of(be), dst, rf_vk_addr(src), (size_t)src->shape[1] * esz, (size_t)src->shape[0],
                      (size_t)src->stride[0] * esz, err);
}

static int vk_begin(rf_backend *be, rf_err *err)
{
    return rf_vk_begin(rf_vk_of(be), err);
}

static int vk_end(rf_backend *be, int submit, rf_err *err)
{
    return rf_vk_end(rf_vk_of(be), submit, err);
}

/* FP16 needs shaderFloat16 and storageBuffer16BitAccess (enabled at device
 * creation where the device has them); it applies to linears prepared later. */
static int vk_set_precision(rf_backend *be, rf_precision p, rf_err *err)
{
    rf_vk *vk = rf_vk_of(be);
    if (p != RF_PRECISION_FP32 && p != RF_PRECISION_FP16)
        return rf_err_set(err, RF_EINVAL, "vulkan: unknown precision %d", (int)p);
    if (p == RF_PRECISION_FP16 && !vk->has_fp16)
        return rf_err_set(err, RF_EUNSUP, "vulkan device '%s' does not support fp16 precision "
                                          "(needs shaderFloat16 and storageBuffer16BitAccess)",
                          vk->props.deviceName);
    vk->precision = p;
    return RF_OK;
}

static void vk_destroy(rf_backend *be)
{
    if (!be)
        return;
    if (be->impl) {
        rf_vk_close(be->impl);
        free(be->impl);
    }
    free(be);
}

static const rf_backend_ops vk_ops = {
    .name = "vulkan",
    .destroy = vk_destroy,
    .host_addressable = 0,
    .buffer_alloc = vk_buffer_alloc,
    .buffer_free = vk_buffer_free,
    .upload = vk_upload,
    .download = vk_download,
    .begin = vk_begin,
    .end = vk_end,
    .set_precision = vk_set_precision,
    .linear_prepare = rf_vk_linear_prepare,
    .linear_release = rf_vk_linear_release,
    .linear = rf_vk_linear,
    .matmul = rf_vk_matmul,
    .layernorm = rf_vk_layernorm,
    .activation = rf_vk_activation,
    .add = rf_vk_add,
    .scale_add = rf_vk_scale_add,
    .softmax = rf_vk_softmax,
    .attention = rf_vk_attention,
    .patch_embed = rf_vk_patch_embed,
    .embedding = rf_vk_embedding,
    .interp_bicubic = rf_vk_interp_bicubic,
};

int rf_vk_backend_create(rf_backend **out, int index, int require_gpu, rf_err *err)
{
    *out = NULL;
    rf_backend *be = calloc(1, sizeof *be);
    rf_vk *vk = calloc(1, sizeof *vk);
    if (!be || !vk) {
        free(be);
        free(vk);
        return rf_err_set(err, RF_ENOMEM, "cannot allocate the Vulkan backend");
    }
    int rc = rf_vk_open(vk, index, require_gpu, err);
    if (rc) {
        free(be);
        free(vk);
        return rc;
    }
    be->ops = &vk_ops;
    be->impl = vk;
    snprintf(be->description, sizeof be->description, "vulkan (%s)", vk->props.deviceName);
    *out = be;
    return RF_OK;
}
