/*
 * Operand checks of the backend contract (runtime/backend.h), shared by every
 * backend so each operation accepts and refuses the same tensors everywhere.
 * Each returns RF_OK or RF_EINVAL with a one-line message naming the
 * operation. Backends add only their own limits (head size, index width).
 */
#ifndef RADFUSE_RUNTIME_BACKEND_CHECK_H
#define RADFUSE_RUNTIME_BACKEND_CHECK_H

#include "radfuse/runtime.h"

/* A 2-D f32 tensor with data, contiguous rows, row stride >= width. */
int rf_check_2d(const rf_tensor *t, const char *op, const char *what, rf_err *err);
/* A contiguous f32 vector of n elements with data. */
int rf_check_vec(const rf_tensor *t, int64_t n, const char *op, const char *what, rf_err *err);
/* softmax: x, y 3-D f32 of one shape with contiguous rows; mask i32 [B, C] or NULL. */
int rf_check_softmax(const rf_tensor *y, const rf_tensor *x, const rf_tensor *mask, rf_err *err);
/* attention: q, k, v, out 3-D f32 of one shape [B, T, H*D] with contiguous
 * rows, width a multiple of heads; key_mask i32 [B, T] or NULL. */
int rf_check_attention(const rf_tensor *out, const rf_tensor *q, const rf_tensor *k, const rf_tensor *v,
                       const rf_tensor *key_mask, int heads, rf_err *err);

/* embedding: table and y 2-D f32, ids contiguous i32 with one output row
 * each, y as wide as the table. */
int rf_check_embedding(const rf_tensor *y, const rf_tensor *table, const rf_tensor *ids, rf_err *err);

#endif
