#include "runtime/backend_check.h"

/* 3-D f32 with data, contiguous rows and no negative stride. */
static int is_rows3(const rf_tensor *t)
{
    return t && t->data && t->dtype == RF_F32 && t->ndim == 3 && t->stride[2] == 1 && t->stride[0] >= 0 &&
           t->stride[1] >= 0;
}

/* i32 [rows, cols] with data and contiguous, non-negative strides. */
static int is_mask(const rf_tensor *m, int64_t rows, int64_t cols)
{
    return m->data && m->dtype == RF_I32 && m->ndim == 2 && m->shape[0] == rows && m->shape[1] == cols &&
           m->stride[1] == 1 && m->stride[0] >= 0;
}

int rf_check_2d(const rf_tensor *t, const char *op, const char *what, rf_err *err)
{
    if (!t || !t->data || t->dtype != RF_F32 || t->ndim != 2 || (t->shape[1] > 1 && t->stride[1] != 1) ||
        t->stride[0] < t->shape[1])
        return rf_err_set(err, RF_EINVAL, "%s: %s must be a 2-D f32 tensor with contiguous rows", op, what);
    return RF_OK;
}

int rf_check_vec(const rf_tensor *t, int64_t n, const char *op, const char *what, rf_err *err)
{
    if (!t || !t->data || t->dtype != RF_F32 || rf_tensor_numel(t) != n || !rf_tensor_is_contiguous(t))
        return rf_err_set(err, RF_EINVAL, "%s: %s must be a contiguous f32 vector of %lld", op, what, (long long)n);
    return RF_OK;
}

int rf_check_softmax(const rf_tensor *y, const rf_tensor *x, const rf_tensor *mask, rf_err *err)
{
    if (!is_rows3(x) || !is_rows3(y))
        return rf_err_set(err, RF_EINVAL, "softmax: operands must be 3-D f32 with contiguous rows");
    for (int i = 0; i < 3; i++)
        if (x->shape[i] != y->shape[i])
            return rf_err_set(err, RF_EINVAL, "softmax: output shape does not match the input");
    if (mask && !is_mask(mask, x->shape[0], x->shape[2]))
        return rf_err_set(err, RF_EINVAL, "softmax: mask must be i32 [batch, columns]");
    return RF_OK;
}

int rf_check_attention(const rf_tensor *out, const rf_tensor *q, const rf_tensor *k, const rf_tensor *v,
                       const rf_tensor *key_mask, int heads, rf_err *err)
{
    const rf_tensor *ops[4] = {q, k, v, out};
    for (int i = 0; i < 4; i++) {
        if (!is_rows3(ops[i]))
            return rf_err_set(err, RF_EINVAL, "attention: operands must be 3-D f32 with contiguous rows");
        for (int d = 0; d < 3; d++)
            if (ops[i]->shape[d] != q->shape[d])
                return rf_err_set(err, RF_EINVAL, "attention: q, k, v and output shapes differ");
    }
    if (heads <= 0 || q->shape[2] % heads)
        return rf_err_set(err, RF_EINVAL, "attention: width %lld is not a multiple of %d heads", (long long)q->shape[2],
                          heads);
    if (key_mask && !is_mask(key_mask, q->shape[0], q->shape[1]))
        return rf_err_set(err, RF_EINVAL, "attention: key mask must be i32 [batch, tokens]");
    return RF_OK;
}

int rf_check_embedding(const rf_tensor *y, const rf_tensor *table, const rf_tensor *ids, rf_err *err)
{
    if (rf_check_2d(table, "embedding", "table", err) || rf_check_2d(y, "embedding", "output", err))
        return RF_EINVAL;
    if (!ids || !ids->data || ids->dtype != RF_I32 || !rf_tensor_is_contiguous(ids))
        return rf_err_set(err, RF_EINVAL, "embedding: ids must be contiguous i32");
    if (y->shape[0] != rf_tensor_numel(ids) || y->shape[1] != table->shape[1])
        return rf_err_set(err, RF_EINVAL, "embedding: output shape does not match");
    return RF_OK;
}
