/*
 * The Vulkan backend's operations, one group per file (vk_ops_*.c), each a
 * host function that checks its operands and records one or more dispatches
 * of a shader in shaders/. Tensors hold device addresses (rf_vk_addr).
 *
 * Push-constant structs mirror the shaders' `Params` blocks in std430
 * layout: buffer references are 8-byte addresses first, then 4-byte
 * scalars; each struct is checked against RF_VK_MAX_PUSH at compile time.
 */
#ifndef RADFUSE_RUNTIME_VK_OPS_H
#define RADFUSE_RUNTIME_VK_OPS_H

#include <stdint.h>

#include "runtime/vk_device.h"

static inline rf_vk *rf_vk_of(rf_backend *be)
{
    return be->impl;
}

static inline uint64_t rf_vk_addr(const rf_tensor *t)
{
    return (uint64_t)(uintptr_t)t->data;
}

/* Shared operand checks (message set, RF_EINVAL on failure). */
int rf_vk_check_2d(const rf_tensor *t, const char *op, const char *what, rf_err *err);
int rf_vk_check_vec(const rf_tensor *t, int64_t n, const char *op, const char *what, rf_err *err);
/* Element counts and strides must fit the shaders' 32-bit indices. */
int rf_vk_check_index(int64_t elements, const char *op, rf_err *err);

/* vk_ops_elementwise.c */
int rf_vk_layernorm(rf_backend *be, rf_tensor *y, const rf_tensor *x, const rf_tensor *gamma, const rf_tensor *beta,
                    float eps, rf_err *err);
int rf_vk_activation(rf_backend *be, rf_tensor *y, const rf_tensor *x, rf_act act, rf_err *err);
int rf_vk_add(rf_backend *be, rf_tensor *y, const rf_tensor *a, const rf_tensor *b, rf_err *err);
int rf_vk_scale_add(rf_backend *be, rf_tensor *y, const rf_tensor *x, const rf_tensor *gamma,
                    const rf_tensor *residual, rf_err *err);

/* vk_ops_gemm.c */
int rf_vk_linear_prepare(rf_backend *be, rf_linear *l, rf_err *err);
void rf_vk_linear_release(rf_backend *be, rf_linear *l);
int rf_vk_linear(rf_backend *be, rf_tensor *y, const rf_tensor *x, const rf_linear *l, rf_act act,
                 const rf_tensor *residual, rf_err *err);
int rf_vk_matmul(rf_backend *be, rf_tensor *c, const rf_tensor *a, const rf_tensor *b, int trans_a, int trans_b,
                 float alpha, rf_err *err);
int rf_vk_patch_embed(rf_backend *be, rf_tensor *y, const rf_tensor *img, const rf_linear *proj, int patch,
                      rf_err *err);

/* vk_ops_attention.c */
int rf_vk_softmax(rf_backend *be, rf_tensor *y, const rf_tensor *x, const rf_tensor *mask, float scale,
                  rf_err *err);
int rf_vk_attention(rf_backend *be, rf_tensor *out, const rf_tensor *q, const rf_tensor *k, const rf_tensor *v,
                    const rf_tensor *key_mask, int heads, float scale, rf_err *err);

/* vk_ops_gather.c */
int rf_vk_embedding(rf_backend *be, rf_tensor *y, const rf_tensor *table, const rf_tensor *ids, rf_err *err);
int rf_vk_interp_bicubic(rf_backend *be, rf_tensor *y, const rf_tensor *x, rf_err *err);

#endif
