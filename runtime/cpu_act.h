/*
 * Elementwise activations for the CPU backend. rf_act_row runs the vector
 * kernels of cpu_vec.c (GELU through a rational erf approximation, 6.5e-8 in
 * exact arithmetic, because erff() does not vectorize); rf_act_scalar is the
 * same functions one value at a time in double, as a reference.
 */
#ifndef RADFUSE_RUNTIME_CPU_ACT_H
#define RADFUSE_RUNTIME_CPU_ACT_H

#include <stdint.h>

#include "runtime/backend.h"

/* A short name for messages ("gelu", "gelu_tanh", ...). */
const char *rf_act_name(rf_act act);
/* x[i] = act(x[i]) for i in [0, n). */
void rf_act_row(float *x, int64_t n, rf_act act);
/* The same on one value, for reference loops. */
float rf_act_scalar(float x, rf_act act);

#endif
