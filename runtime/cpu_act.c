#include <math.h>

#include "runtime/cpu_act.h"
#include "runtime/cpu_vec.h"

/* erf on [-4, 4] as an odd/even rational polynomial; saturates outside.
 * Evaluated in double: the approximant is good to 6.5e-8, but its 13
 * roundings in fp32 cost up to ~4e-7 near |x| = 3.6 (7 ulps of erf), which
 * GELU multiplies by x / 2. */
static inline float erf_approx(float xf)
{
    double x = xf < -4.0f ? -4.0f : (xf > 4.0f ? 4.0f : xf);
    double x2 = x * x;
    double p = -2.72614225801306e-10;
    p = p * x2 + 2.77068142495902e-08;
    p = p * x2 + -2.10102402082508e-06;
    p = p * x2 + -5.69250639462346e-05;
    p = p * x2 + -7.34990630326855e-04;
    p = p * x2 + -2.95459980854025e-03;
    p = p * x2 + -1.60960333262415e-02;
    p = p * x;
    double q = -1.45660718464996e-05;
    q = q * x2 + -2.13374055278905e-04;
    q = q * x2 + -1.68282697438203e-03;
    q = q * x2 + -7.37332916720468e-03;
    q = q * x2 + -1.42647390514189e-02;
    return (float)(p / q);
}

/* tanh via exp on a clamped argument: tanh(x) = 1 - 2 / (exp(2x) + 1). */
static inline float tanh_approx(float x)
{
    x = x < -10.0f ? -10.0f : (x > 10.0f ? 10.0f : x);
    return 1.0f - 2.0f / (expf(2.0f * x) + 1.0f);
}

static inline float gelu_erf(float x)
{
    return 0.5f * x * (1.0f + erf_approx(x * 0.70710678118654752f));
}

static inline float gelu_tanh(float x)
{
    const float k = 0.7978845608028654f; /* sqrt(2 / pi) */
    return 0.5f * x * (1.0f + tanh_approx(k * (x + 0.044715f * x * x * x)));
}

float rf_act_scalar(float x, rf_act act)
{
    switch (act) {
    case RF_ACT_GELU_ERF: return gelu_erf(x);
    case RF_ACT_GELU_TANH: return gelu_tanh(x);
    case RF_ACT_TANH: return tanh_approx(x);
    case RF_ACT_RELU: return x > 0 ? x : 0;
    case RF_ACT_NONE: break;
    }
    return x;
}

void rf_act_row(float *x, int64_t n, rf_act act)
{
    rf_vec_select()->act_row(x, n, act);
}
