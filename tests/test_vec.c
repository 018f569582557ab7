/*
 * The vector kernels of cpu_vec.c in each compiled copy (x86-64-v4, -v3,
 * baseline) the CPU can run, against double-precision references: every
 * activation over a dense grid, and attention tiles with padding, masks and
 * head sizes that are not multiples of the vector width. The backend tests
 * (test_ops) see only the copy the CPU picks; this keeps the others honest.
 *
 * Tolerances: activations 1e-6 + 2 eps |y| absolute (fp32 rounding of
 * rational approximations good to 6.5e-8 / 2.8e-7); attention 8 eps
 * (sqrt(D) |s| + sqrt(T) + 4) sum p|v|, the dot-product bound of test_ops.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/cpu_act.h"
#include "runtime/cpu_vec.h"
#include "tests/testutil.h"

#define EPS 1.1920929e-7

static void check_acts(const rf_vec_kernels *k)
{
    const rf_act acts[] = {RF_ACT_NONE, RF_ACT_GELU_ERF, RF_ACT_GELU_TANH, RF_ACT_TANH, RF_ACT_RELU};
    const int64_t n = 40001; /* not a multiple of the vector width: the tail runs too */
    float *x = test_falloc(n), *y = test_falloc(n);
    for (size_t a = 0; a < sizeof acts / sizeof acts[0]; a++) {
        for (int64_t i = 0; i < n; i++)
            x[i] = y[i] = -12.0f + 24.0f * (float)i / (float)(n - 1);
        k->act_row(y, n, acts[a]);
        int bad = 0;
        double worst = 0;
        for (int64_t i = 0; i < n; i++) {
            double want = rf_act_scalar(x[i], acts[a]);
            double err = fabs(y[i] - want), tol = 1e-6 + 2 * EPS * fabs(want);
            if (!(err <= tol))
                bad++;
            if (err / tol > worst)
                worst = err / tol;
        }
        CHECKF(bad == 0, "%s act %d: %d of %lld out of tolerance (worst %.2f x)", k->isa, (int)acts[a], bad,
               (long long)n, worst);
    }
    free(x);
    free(y);
}

/* Naive attention for one head in double: softmax(q k^T * scale + mask) v. */
static void attention_ref(const float *q, const float *kk, const float *v, int64_t stride, int64_t T, int64_t qn,
                          int64_t D, const int32_t *mask, float scale, double *out, double *bound)
{
    double *p = test_dalloc(T);
    for (int64_t i = 0; i < qn; i++) {
        double mx = -INFINITY, sum = 0, maxabs_s = 0;
        for (int64_t j = 0; j < T; j++) {
            double s = 0;
            for (int64_t d = 0; d < D; d++)
                s += (double)q[i * stride + d] * kk[j * stride + d];
            s *= scale;
            maxabs_s = fmax(maxabs_s, fabs(s));
            p[j] = (!mask || mask[j]) ? s : -INFINITY;
            mx = fmax(mx, p[j]);
        }
        for (int64_t j = 0; j < T; j++) {
            p[j] = mx == -INFINITY ? 0 : exp(p[j] - mx);
            sum += p[j];
        }
        for (int64_t d = 0; d < D; d++) {
            double o = 0, pv = 0;
            for (int64_t j = 0; j < T; j++) {
                o += p[j] * v[j * stride + d];
                pv += p[j] * fabs(v[j * stride + d]);
            }
            out[i * D + d] = sum > 0 ? o / sum : 0;
            bound[i * D + d] = 8 * EPS * (sqrt((double)D) * maxabs_s + sqrt((double)T) + 4) *
                               (sum > 0 ? pv / sum : 0);
        }
    }
    free(p);
}

static void check_attention(const rf_vec_kernels *k)
{
    const int64_t Ts[] = {1, 3, 17, 65, 197};
    const int64_t Ds[] = {8, 40, 64, 100};
    for (size_t ti = 0; ti < sizeof Ts / sizeof Ts[0]; ti++)
        for (size_t di = 0; di < sizeof Ds / sizeof Ds[0]; di++)
            for (int masked = 0; masked < 2; masked++) {
                int64_t T = Ts[ti], D = Ds[di], stride = 3 * D + 5;
                float *buf = test_falloc(T * stride);
                test_fill_random(buf, T * stride, (uint64_t)(T * 131 + D * 7 + masked), 2.0f);
                int32_t *mask = test_ialloc(T);
                for (int64_t j = 0; j < T; j++)
                    mask[j] = !masked || (j % 5 != 2 && j < T - T / 4) || j == 0;
                int64_t qn = T < RF_ATTN_QT ? T : RF_ATTN_QT;
                float *out = test_falloc(qn * D);
                double *want = test_dalloc(qn * D), *tol = test_dalloc(qn * D);
                float scale = 1.0f / sqrtf((float)D);
                rf_attn_tile t = {.q = buf, .k = buf + D, .v = buf + 2 * D, .out = out, .q_stride = stride,
                                  .k_stride = stride, .v_stride = stride, .out_stride = D, .T = T, .D = D, .qn = qn,
                                  .key_mask = masked ? mask : NULL, .scale = scale};
                k->attention_tile(&t);
                attention_ref(buf, buf + D, buf + 2 * D, stride, T, qn, D, masked ? mask : NULL, scale, want, tol);
                int bad = 0;
                for (int64_t i = 0; i < qn * D; i++)
                    bad += !(fabs(out[i] - want[i]) <= tol[i] + 1e-7);
                CHECKF(bad == 0, "%s attention T=%lld D=%lld masked=%d: %d values out of tolerance", k->isa,
                       (long long)T, (long long)D, masked, bad);
                free(buf);
                free(mask);
                free(out);
                free(want);
                free(tol);
            }
}

int main(void)
{
    const rf_vec_kernels *tables[3];
    int n = 0;
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
        tables[n++] = &rf_vec_kernels_v4;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        tables[n++] = &rf_vec_kernels_v3;
#endif
    tables[n++] = &rf_vec_kernels_base;
    CHECK(rf_vec_select() == tables[0]);
    for (int i = 0; i < n; i++) {
        printf("kernels %s\n", tables[i]->isa);
        check_acts(tables[i]);
        check_attention(tables[i]);
    }
    return test_finish("test_vec");
}
