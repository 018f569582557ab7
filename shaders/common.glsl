// Shared by every kernel: tensors are reached through buffer device
// addresses passed in push constants (no descriptor sets), and activations
// are the same rational approximations the CPU backend uses.
#extension GL_EXT_buffer_reference : require
#extension GL_EXT_buffer_reference2 : require

layout(buffer_reference, std430, buffer_reference_align = 4) buffer Floats { float v[]; };
layout(buffer_reference, std430, buffer_reference_align = 4) buffer Ints { int v[]; };

#define ACT_NONE 0
#define ACT_GELU_ERF 1
#define ACT_GELU_TANH 2
#define ACT_TANH 3
#define ACT_RELU 4

float erf_approx(float x)
{
    x = clamp(x, -4.0, 4.0);
    float x2 = x * x;
    float p = -2.72614225801306e-10;
    p = p * x2 + 2.77068142495902e-08;
    p = p * x2 + -2.10102402082508e-06;
    p = p * x2 + -5.69250639462346e-05;
    p = p * x2 + -7.34990630326855e-04;
    p = p * x2 + -2.95459980854025e-03;
    p = p * x2 + -1.60960333262415e-02;
    p = p * x;
    float q = -1.45660718464996e-05;
    q = q * x2 + -2.13374055278905e-04;
    q = q * x2 + -1.68282697438203e-03;
    q = q * x2 + -7.37332916720468e-03;
    q = q * x2 + -1.42647390514189e-02;
    return p / q;
}

float tanh_approx(float x)
{
    if (abs(x) > 7.90531110763549805)
        return sign(x);
    float x2 = x * x;
    float p = -2.76076847742355e-16;
    p = p * x2 + 2.00018790482477e-13;
    p = p * x2 + -8.60467152213735e-11;
    p = p * x2 + 5.12229709037114e-08;
    p = p * x2 + 1.48572235717979e-05;
    p = p * x2 + 6.37261928875436e-04;
    p = p * x2 + 4.89352455891786e-03;
    p = p * x;
    float q = 1.19825839466702e-06;
    q = q * x2 + 1.18534705686654e-04;
    q = q * x2 + 2.26843463243900e-03;
    q = q * x2 + 4.89352518554385e-03;
    return p / q;
}

float activate(float x, int act)
{
    if (act == ACT_GELU_ERF)
        return 0.5 * x * (1.0 + erf_approx(x * 0.70710678118654752));
    if (act == ACT_GELU_TANH)
        return 0.5 * x * (1.0 + tanh_approx(0.7978845608028654 * (x + 0.044715 * x * x * x)));
    if (act == ACT_TANH)
        return tanh_approx(x);
    if (act == ACT_RELU)
        return max(x, 0.0);
    return x;
}
