/*
 * The tensor-core GEMM (shaders/gemm_coop.comp, VK_NV_cooperative_matrix)
 * that fp16 linears record on devices that have it, against a double
 * precision reference on the same operands rounded to fp16 (A, the
 * activations, and W, the weights: halves multiply exactly, so the
 * reference is the exact sum of the products the tensor cores form).
 *
 * Cases: M, N off the tiles (1, 17, 197, 300, 1000), K a multiple of the
 * 32-wide slice or not (24 < one slice, 136 = 4 slices + 8), ViT-B and
 * BERT shapes (768 -> 2304, 3072 -> 768), bias, every activation, residual
 * none / separate / aliasing the output, padded rows of A and C; each run
 * on every built tile variant (128x256, 64x64, 128x128, 256x256, ..., forced
 * through RADFUSE_VK_COOP_SHADER) and on the automatic choice. The output
 * is poisoned with NaN first (an element not written fails) and padding
 * columns must stay untouched. A row stride of A that is not a multiple of
 * 4 floats must fall back to gemm_f16w (fp32 activations): that case is
 * held to the fp32-activation reference and must be closer to it than to
 * the rounded one.
 *
 * Tolerance: products of halves are exact in fp32; the tensor cores add
 * them in fp32 but align and truncate (not round) within each 8-term step
 * (measured on Volta..Ampere; Hopper behaves alike), at most ~2 ulp of the
 * running sum per step, and such errors need not cancel. With S = sum_k
 * |a_k w_k| the sum is off by at most about (K / 8) * 2 EPS * S; we allow
 *     |got - ref| <= (K / 4 + 8) EPS S + 4 EPS (|bias| + |res| + |ref|) + 1e-6 (1 + |ref|)
 * (EPS = 2^-23; the last term covers the activations' rational formulas
 * against libm's). A missing, doubled or misplaced product (|a w| ~ 1e-2
 * to 1e-1 here) is 8 to 100 times larger. For K >= 768 the result must
 * also be at least twice as close to the rounded-A reference as to the
 * unrounded one: the activations really are rounded, as documented.
 *
 * Only a device with the extension can run it (lavapipe has no cooperative
 * matrices): elsewhere the test checks that the backend did not claim the
 * feature without the extension, and says that the tensor-core cases were
 * not run on that device.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/vk_device.h"
#include "tests/testutil.h"

#define EPS FLT_EPSILON

static rf_backend *cpu, *vk;

static double act_ref(double v, rf_act act)
{
    switch (act) {
    case RF_ACT_GELU_ERF: return 0.5 * v * (1 + erf(v / sqrt(2.0)));
    case RF_ACT_GELU_TANH: return 0.5 * v * (1 + tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
    case RF_ACT_TANH: return tanh(v);
    case RF_ACT_RELU: return v > 0 ? v : 0;
    default: return v;
    }
}

static float half(float v)
{
    return rf_f16_to_f32(rf_f32_to_f16(v));
}

static int has_extension(rf_vk *dev, const char *name)
{
    uint32_t n = 0;
    dev->fn.vkEnumerateDeviceExtensionProperties(dev->physical, NULL, &n, NULL);
    VkExtensionProperties *e = test_xmalloc((n ? n : 1) * sizeof *e);
    dev->fn.vkEnumerateDeviceExtensionProperties(dev->physical, NULL, &n, e);
    int found = 0;
    for (uint32_t i = 0; i < n; i++)
        found |= strcmp(e[i].extensionName, name) == 0;
    free(e);
    return found;
}

/* One linear on the Vulkan device (fp16 weights prepared from w), output
 * [M, ys] read back into out (initial contents y0). */
static void run_vk(int64_t M, int64_t K, int64_t N, int64_t xs, int64_t ys, const float *x, const float *w,
                   const float *b, const float *r, const float *y0, rf_act act, int res, float *out, const char *what)
{
    int64_t xshape[2] = {M, xs}, wshape[2] = {N, K}, bshape[1] = {N}, yshape[2] = {M, ys}, rshape[2] = {M, N};
    test_dev dx, dw, db, dy, dr;
    int fail = test_dev_alloc(vk, &dx, RF_F32, 2, xshape, x) | test_dev_alloc(vk, &dw, RF_F32, 2, wshape, w) |
               test_dev_alloc(vk, &db, RF_F32, 1, bshape, b) | test_dev_alloc(vk, &dy, RF_F32, 2, yshape, y0) |
               test_dev_alloc(vk, &dr, RF_F32, 2, rshape, r);
    CHECKF(!fail, "%s: allocation", what);
    rf_err err = {{0}};
    rf_linear l = {.w = rf_tensor_make(RF_F32, (void *)w, 2, wshape), .b = rf_tensor_make(RF_F32, (void *)b, 1, bshape)};
    int rc = vk->ops->linear_prepare(vk, &l, &err);
    CHECKF(rc == 0 && l.prepared, "%s: prepare: %s", what, err.msg);
    l.w.data = dw.t.data;
    l.b.data = db.t.data;
    rf_tensor tx = dx.t, ty = dy.t;
    tx.shape[1] = K;
    ty.shape[1] = N;
    const rf_tensor *residual = res == 0 ? NULL : res == 1 ? &dr.t : &ty;
    if (!rc && !(rc = vk->ops->begin(vk, &err)))
        rc = test_end_pass(vk, vk->ops->linear(vk, &ty, &tx, &l, act, residual, &err), &err);
    CHECKF(rc == 0, "%s: %s", what, err.msg);
    if (!rc)
        CHECK(test_dev_read(vk, &dy.t, out) == 0);
    vk->ops->linear_release(vk, &l);
    test_dev_free(vk, &dx), test_dev_free(vk, &dw), test_dev_free(vk, &db), test_dev_free(vk, &dy),
        test_dev_free(vk, &dr);
}

/* Worst |got - ref| / tolerance over the output view; padding must equal y0.
 * ref and mag (S per element) as described above. */
static double compare(const char *what, const double *ref, const double *mag, const double *side, const float *got,
                      const float *y0, int64_t M, int64_t N, int64_t ys, int64_t K, double *max_abs, int record)
{
    double worst = 0;
    int bad = 0;
    *max_abs = 0;
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < ys; n++) {
            int64_t i = m * ys + n;
            if (n >= N) {
                if (record && memcmp(&got[i], &y0[i], sizeof(float)) != 0 && !bad++)
                    fprintf(stderr, "%s: padding [%lld, %lld] changed\n", what, (long long)m, (long long)n);
                continue;
            }
            double rv = ref[m * N + n], e = fabs((double)got[i] - rv);
            double tol = ((double)K / 4 + 8) * EPS * mag[m * N + n] + 4 * EPS * (side[m * N + n] + fabs(rv)) +
                         1e-6 * (1 + fabs(rv));
            if (!(e <= tol)) {
                if (record && !bad++)
                    fprintf(stderr, "%s: [%lld, %lld]: got %.9g want %.9g, error %.3g > tolerance %.3g\n", what,
                            (long long)m, (long long)n, got[i], rv, e, tol);
                if (e != e)
                    e = INFINITY;
            }
            if (e / tol > worst)
                worst = e / tol;
            if (e > *max_abs)
                *max_abs = e;
        }
    if (record)
        CHECKF(bad == 0, "%s: %d elements wrong (worst error / tolerance %.3g)", what, bad, worst);
    return worst;
}

/* References: out = act(A W^T + bias) + res in double, with A rounded to
 * fp16 (round_a) or not; W always rounded. mag = S, side = |bias| + |res|. */
static void reference(int64_t M, int64_t K, int64_t N, int64_t xs, int64_t ys, const float *x, const float *w,
                      const float *b, const float *r, const float *y0, rf_act act, int res, int round_a, double *out,
                      double *mag, double *side)
{
    float *a = test_falloc(K), *wh = test_falloc(N * K);
    for (int64_t i = 0; i < N * K; i++)
        wh[i] = half(w[i]);
    for (int64_t m = 0; m < M; m++) {
        for (int64_t k = 0; k < K; k++)
            a[k] = round_a ? half(x[m * xs + k]) : x[m * xs + k];
        for (int64_t n = 0; n < N; n++) {
            double s = 0, sa = 0;
            const float *wr = wh + n * K;
            for (int64_t k = 0; k < K; k++) {
                double p = (double)a[k] * wr[k];
                s += p;
                sa += fabs(p);
            }
            double rv = res == 1 ? r[m * N + n] : res == 2 ? y0[m * ys + n] : 0;
            out[m * N + n] = act_ref(s + b[n], act) + rv;
            mag[m * N + n] = sa;
            side[m * N + n] = fabs(b[n]) + fabs(rv);
        }
    }
    free(a), free(wh);
}

static void coop_case(int64_t M, int64_t K, int64_t N, rf_act act, int res, int64_t xpad, int64_t ypad)
{
    static uint64_t seed = 500;
    seed += 10;
    int64_t xs = K + xpad, ys = N + ypad;
    float *x = test_falloc(M * xs), *w = test_falloc(N * K), *b = test_falloc(N), *r = test_falloc(M * N);
    float *y0 = test_falloc(M * ys), *got = test_falloc(M * ys);
    double *ref = test_dalloc(M * N), *mag = test_dalloc(M * N), *side = test_dalloc(M * N);
    test_fill_random(x, M * xs, seed, 2.0f);
    test_fill_random(w, N * K, seed + 1, (float)(1.0 / sqrt((double)K)));
    test_fill_random(b, N, seed + 2, 1.0f);
    test_fill_random(r, M * N, seed + 3, 1.0f);
    test_fill_random(y0, M * ys, seed + 4, 1.0f);
    if (res != 2) /* poison the output view: an element not written stays NaN */
        for (int64_t m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++)
                y0[m * ys + n] = NAN;
    char what[200];
    int coop = xs % 4 == 0; /* a row stride off 16 bytes falls back to gemm_f16w */
    reference(M, K, N, xs, ys, x, w, b, r, y0, act, res, coop, ref, mag, side);
    const char *shaders[] = {"", "gemm_coop_n256", "gemm_coop_s", "gemm_coop", "gemm_coop_256", "gemm_coop_n256t",
                             "gemm_coop_m64n256"};
    for (int s = 0; s < (coop ? (int)(sizeof shaders / sizeof shaders[0]) : 1); s++) {
        snprintf(what, sizeof what, "linear M %lld K %lld N %lld act %d res %d xpad %lld ypad %lld shader %s",
                 (long long)M, (long long)K, (long long)N, (int)act, res, (long long)xpad, (long long)ypad,
                 s ? shaders[s] : "(auto)");
        if (s)
            setenv("RADFUSE_VK_COOP_SHADER", shaders[s], 1);
        else
            unsetenv("RADFUSE_VK_COOP_SHADER");
        run_vk(M, K, N, xs, ys, x, w, b, r, y0, act, res, got, what);
        double max_abs, ratio = compare(what, ref, mag, side, got, y0, M, N, ys, K, &max_abs, 1);
        if (K >= 768 || !coop) {
            /* the other reference: activations unrounded (rounded, for the fallback) */
            double *other = test_dalloc(M * N), *mag2 = test_dalloc(M * N), *side2 = test_dalloc(M * N);
            reference(M, K, N, xs, ys, x, w, b, r, y0, act, res, !coop, other, mag2, side2);
            double max_other;
            compare(what, other, mag2, side2, got, y0, M, N, ys, K, &max_other, 0);
            printf("%s: max abs error %.3g (%.2f of the tolerance); %.3g against activations %s\n", what, max_abs,
                   ratio, max_other, coop ? "not rounded" : "rounded");
            CHECKF(max_other > 2 * max_abs, "%s: as close to activations %s (%.3g) as to the reference (%.3g)", what,
                   coop ? "not rounded" : "rounded", max_other, max_abs);
            free(other), free(mag2), free(side2);
        } else {
            printf("%s: max abs error %.3g (%.2f of the tolerance)\n", what, max_abs, ratio);
        }
    }
    unsetenv("RADFUSE_VK_COOP_SHADER");
    free(x), free(w), free(b), free(r), free(y0), free(got), free(ref), free(mag), free(side);
}

int main(void)
{
    test_backends_create(&cpu, &vk);
    rf_vk *dev = vk->impl;
    int ext = has_extension(dev, VK_NV_COOPERATIVE_MATRIX_EXTENSION_NAME);
    printf("vulkan device %s: VK_NV_cooperative_matrix %s, subgroup %u, has_coopmat %d\n", dev->props.deviceName,
           ext ? "present" : "absent", dev->subgroup_size, dev->has_coopmat);
    /* the backend never claims tensor cores the driver does not offer */
    CHECKF(ext || !dev->has_coopmat, "has_coopmat set without %s", VK_NV_COOPERATIVE_MATRIX_EXTENSION_NAME);
    const char *off = getenv("RADFUSE_VK_COOPMAT");
    CHECKF(!(off && strcmp(off, "0") == 0) || !dev->has_coopmat, "RADFUSE_VK_COOPMAT=0 did not turn it off");
    if (!dev->has_coopmat) {
        printf("test_vk_coopmat: tensor-core cases NOT RUN: '%s' has no usable VK_NV_cooperative_matrix "
               "(16x16x16 fp16 -> fp32, 32-wide subgroups); they run on a GPU that has it (bench/gpu-tests.sh)\n",
               dev->props.deviceName);
        rf_backend_destroy(vk);
        rf_backend_destroy(cpu);
        return test_finish("test_vk_coopmat");
    }
    rf_err err = {{0}};
    CHECKF(rf_backend_set_precision(vk, RF_PRECISION_FP16, &err) == 0, "fp16: %s", err.msg);
    coop_case(1, 768, 2304, RF_ACT_GELU_ERF, 0, 0, 0);
    coop_case(17, 24, 40, RF_ACT_RELU, 1, 0, 0);
    coop_case(197, 768, 2304, RF_ACT_NONE, 2, 0, 0);
    coop_case(197, 3072, 768, RF_ACT_NONE, 1, 0, 5);
    coop_case(300, 136, 200, RF_ACT_GELU_TANH, 1, 8, 3);
    coop_case(300, 136, 200, RF_ACT_TANH, 2, 4, 0);
    coop_case(1000, 768, 3072, RF_ACT_GELU_ERF, 0, 0, 0);
    coop_case(197, 768, 768, RF_ACT_NONE, 1, 3, 0); /* falls back: rows of A not 16-byte multiples */
    rf_backend_destroy(vk);
    rf_backend_destroy(cpu);
    return test_finish("test_vk_coopmat");
}
