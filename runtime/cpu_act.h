/*
 * Elementwise activations for the CPU backend, written as branch-free loops
 * the compiler vectorizes. GELU uses a rational erf approximation (max error
 * 6.5e-8 against libm's erf on [-8, 8]) because erff() does not vectorize.
 */
#ifndef RADFUSE_RUNTIME_CPU_ACT_H
#define RADFUSE_RUNTIME_CPU_ACT_H

#include <stdint.h>

#include "runtime/backend.h"

/* x[i] = act(x[i]) for i in [0, n). */
void rf_act_row(float *x, int64_t n, rf_act act);
/* The same on one value, for reference loops. */
float rf_act_scalar(float x, rf_act act);

#endif
