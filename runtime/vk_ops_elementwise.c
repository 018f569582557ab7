/* LayerNorm and the elementwise operations on the Vulkan backend. */
#include "runtime/backend_check.h"
#include "runtime/vk_ops.h"

typedef struct elementwise_params {
    uint64_t y, a, b, g;
    int32_t rows, cols, y_stride, a_stride, b_stride, b_rows, op, act;
} elementwise_params;
_Static_assert(sizeof(elementwise_params) <= RF_VK_MAX_PUSH, "push constants");

typedef struct layernorm_params {
    uint64_t y, x, gamma, beta;
    int32_t rows, cols, x_stride, y_stride;
    float eps;
} layernorm_params;
_Static_assert(sizeof(layernorm_params) <= RF_VK_MAX_PUSH, "push constants");

int rf_vk_check_2d(const rf_tensor *t, const char *op, const char *what, rf_err *err)
{
    int rc = rf_check_2d(t, op, what, err);
    return rc ? rc : rf_vk_check_index(t->shape[0] * t->stride[0], op, err);
}

int rf_vk_check_vec(const rf_tensor *t, int64_t n, const char *op, const char *what, rf_err *err)
{
    return rf_check_vec(t, n, op, what, err);
}

int rf_vk_check_index(int64_t elements, const char *op, rf_err *err)
{
    if (elements < 0 || elements > INT32_MAX)
        return rf_err_set(err, RF_EUNSUP, "%s: %lld elements exceed the shaders' 32-bit indexing", op,
                          (long long)elements);
    return RF_OK;
}

static int run_elementwise(rf_backend *be, const rf_tensor *y, const rf_tensor *a, const rf_tensor *b,
                           const rf_tensor *g, int op, rf_act act, rf_err *err)
{
    elementwise_params p = {
        .y = rf_vk_addr(y), .a = rf_vk_addr(a), .b = b ? rf_vk_addr(b) : 0, .g = g ? rf_vk_addr(g) : 0,
        .rows = (int32_t)y->shape[0], .cols = (int32_t)y->shape[1], .y_stride = (int32_t)y->stride[0],
        .a_stride = (int32_t)a->stride[0], .b_stride = b ? (int32_t)b->stride[0] : 0,
        .b_rows = b ? (int32_t)b->shape[0] : 0, .op = op, .act = (int32_t)act};
    return rf_vk_dispatch(rf_vk_of(be), "elementwise", &p, sizeof p, (uint32_t)((y->shape[1] + 255) / 256),
                          (uint32_t)y->shape[0], 1, err);
}

static int same_shape_2d(const rf_tensor *a, const rf_tensor *b)
{
    return a->shape[0] == b->shape[0] && a->shape[1] == b->shape[1];
}

int rf_vk_activation(rf_backend *be, rf_tensor *y, const rf_tensor *x, rf_act act, rf_err *err)
{
    if (rf_vk_check_2d(x, "activation", "input", err) || rf_vk_check_2d(y, "activation", "output", err))
        return RF_EINVAL;
    if (!same_shape_2d(x, y))
        return rf_err_set(err, RF_EINVAL, "activation: output shape does not match the input");
    return run_elementwise(be, y, x, NULL, NULL, 0, act, err);
}

int rf_vk_add(rf_backend *be, rf_tensor *y, const rf_tensor *a, const rf_tensor *b, rf_err *err)
{
    if (rf_vk_check_2d(a, "add", "a", err) || rf_vk_check_2d(b, "add", "b", err) ||
        rf_vk_check_2d(y, "add", "output", err))
        return RF_EINVAL;
    if (!same_shape_2d(a, y) || b->shape[1] != a->shape[1] || (b->shape[0] != 1 && b->shape[0] != a->shape[0]))
        return rf_err_set(err, RF_EINVAL, "add: shapes do not match");
    return run_elementwise(be, y, a, b, NULL, 1, RF_ACT_NONE, err);
}

int rf_vk_scale_add(rf_backend *be, rf_tensor *y, const rf_tensor *x, const rf_tensor *gamma,
                    const rf_tensor *residual, rf_err *err)
{
    if (rf_vk_check_2d(x, "scale_add", "x", err) || rf_vk_check_2d(residual, "scale_add", "residual", err) ||
        rf_vk_check_2d(y, "scale_add", "output", err))
        return RF_EINVAL;
    if (!same_shape_2d(x, y) || !same_shape_2d(residual, y))
        return rf_err_set(err, RF_EINVAL, "scale_add: shapes do not match");
    if (rf_vk_check_vec(gamma, x->shape[1], "scale_add", "gamma", err))
        return RF_EINVAL;
    return run_elementwise(be, y, x, residual, gamma, 2, RF_ACT_NONE, err);
}

int rf_vk_layernorm(rf_backend *be, rf_tensor *y, const rf_tensor *x, const rf_tensor *gamma, const rf_tensor *beta,
                    float eps, rf_err *err)
{
    if (rf_vk_check_2d(x, "layernorm", "input", err) || rf_vk_check_2d(y, "layernorm", "output", err))
        return RF_EINVAL;
    int64_t n = x->shape[1];
    if (!same_shape_2d(x, y))
        return rf_err_set(err, RF_EINVAL, "layernorm: output shape does not match the input");
    if (rf_vk_check_vec(gamma, n, "layernorm", "gamma", err) || rf_vk_check_vec(beta, n, "layernorm", "beta", err))
        return RF_EINVAL;
    layernorm_params p = {.y = rf_vk_addr(y), .x = rf_vk_addr(x), .gamma = rf_vk_addr(gamma),
                          .beta = rf_vk_addr(beta), .rows = (int32_t)x->shape[0], .cols = (int32_t)n,
                          .x_stride = (int32_t)x->stride[0], .y_stride = (int32_t)y->stride[0], .eps = eps};
    return rf_vk_dispatch(rf_vk_of(be), "layernorm", &p, sizeof p, (uint32_t)x->shape[0], 1, 1, err);
}
