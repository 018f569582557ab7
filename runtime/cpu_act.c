#include <math.h>

#include "runtime/cpu_act.h"
#include "runtime/cpu_vec.h"

const char *rf_act_name(rf_act act)
{
    switch (act) {
    case RF_ACT_NONE: return "none";
    case RF_ACT_GELU_ERF: return "gelu";
    case RF_ACT_GELU_TANH: return "gelu_tanh";
    case RF_ACT_TANH: return "tanh";
    case RF_ACT_RELU: return "relu";
    }
    return "?";
}

float rf_act_scalar(float xf, rf_act act)
{
    double x = xf;
    switch (act) {
    case RF_ACT_GELU_ERF: return (float)(0.5 * x * (1.0 + erf(x / sqrt(2.0))));
    case RF_ACT_GELU_TANH:
        return (float)(0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x))));
    case RF_ACT_TANH: return (float)tanh(x);
    case RF_ACT_RELU: return xf > 0 ? xf : 0;
    case RF_ACT_NONE: break;
    }
    return xf;
}

void rf_act_row(float *x, int64_t n, rf_act act)
{
    rf_vec_select()->act_row(x, n, act);
}
