/*
 * fp16 precision (rf_backend_set_precision): the Vulkan backend stores the
 * weights of linear layers and of the patch embedding as IEEE halves and
 * accumulates in fp32 (shaders/gemm.comp built as gemm_f16w); the CPU
 * backend refuses it.
 *
 *   (a) linear in fp16 against the CPU backend's fp32 linear on the SAME
 *       weights rounded through fp16, rf_f16_to_f32(rf_f32_to_f16(w)):
 *       M in {1, 17, 197}, (K, N) not multiples of 16 or of the tile
 *       ((100, 72), (24, 40), (64, 129), (1, 5), (130, 1)) and (768, 2304),
 *       bias on/off, every activation, residual none / separate / aliasing
 *       y, padded rows; weights spanning fp16's subnormals to its largest
 *       value; a weight beyond 65504 refused at prepare (RF_EUNSUP);
 *   (b) the CPU backend refuses fp16 with RF_EUNSUP and one line (and the
 *       CLI exits 2 with one line), accepts fp32; so does a Vulkan device
 *       without fp16 (simulated by clearing has_fp16), naming the device;
 *       unknown values RF_EINVAL;
 *   (c) patch_embed in fp16 likewise against rounded weights.
 * The device holds the original fp32 weights at l->w (as a loaded model's
 * do), so reading them instead of the halves would show: (768, 2304) is
 * also compared with the CPU on the unrounded weights, which must be at
 * least 20 times farther off than the rounded ones (measured on lavapipe:
 * 4.8e-4 to 8.1e-4 against 1.7e-6 to 4.3e-6; the rounding really happens).
 *
 * Tolerance. Both sides multiply identical values (halves are exact in
 * fp32) and accumulate in fp32, so they differ only in the order of the
 * K-term sums, exactly as in test_vk_gemm, whose bound we use:
 *     |vk - cpu| <= 4 EPS (sqrt(K) S + |bias| + |residual| + |cpu|) + 1e-6 (1 + |cpu|)
 * with S = sum_k |x_k w16_k|, and also |vk - cpu| <= 1e-4 (1 + |cpu|).
 * RADFUSE_TEST_VERBOSE=1 prints the worst error / tolerance ratios.
 *
 * Vulkan must come up with fp16 support (lavapipe has shaderFloat16 and
 * storageBuffer16BitAccess): a missing device or feature fails the test.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/vk_device.h"
#include "tests/testutil.h"

#define EPS ((double)FLT_EPSILON)

static rf_backend *cpu, *vk;
static int verbose;
static double worst_ratio[2], worst_abs[2]; /* linear, patch_embed */

static void *xmalloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "test_vk_fp16: out of memory\n");
        abort();
    }
    return p;
}

static float *falloc(int64_t n)
{
    return xmalloc((size_t)n * sizeof(float));
}

static int one_line(const rf_err *e)
{
    return e->msg[0] && strchr(e->msg, '\n') == NULL;
}

/* w rounded through fp16 (nearest even), as the Vulkan backend stores it. */
static void round_f16(float *dst, const float *src, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        dst[i] = rf_f16_to_f32(rf_f32_to_f16(src[i]));
}

static int finish_pass(rf_backend *be, int rc, rf_err *err)
{
    rf_err ignored;
    int rc2 = be->ops->end(be, rc == 0, rc ? &ignored : err);
    return rc ? rc : rc2;
}

/* As test_vk_gemm: inside the view (mag >= 0) within the tolerance; outside
 * (mag < 0) both sides must have left init unchanged. Returns the worst
 * error / tolerance ratio. */
static double compare(int op, const char *what, const float *ref, const float *got, const float *init,
                      const double *mag, int64_t n, int record)
{
    int bad = 0;
    double ratio = 0;
    for (int64_t i = 0; i < n; i++) {
        if (mag[i] < 0) {
            if (record && !(ref[i] == init[i] && got[i] == init[i]) && !bad++)
                fprintf(stderr, "%s: element %lld outside the output view changed: cpu %g vk %g, was %g\n",
                        what, (long long)i, ref[i], got[i], init[i]);
            continue;
        }
        double r = fabs((double)ref[i]), e = fabs((double)got[i] - (double)ref[i]);
        double tol = 4 * EPS * (mag[i] + r) + 1e-6 * (1 + r);
        if (!(e <= tol) || !(e <= 1e-4 * (1 + r))) {
            if (record && !bad++)
                fprintf(stderr, "%s: element %lld: cpu %.9g vk %.9g, error %.3g, tolerance %.3g\n", what,
                        (long long)i, ref[i], got[i], e, tol);
            if (!(e == e))
                e = INFINITY;
        }
        if (e / tol > ratio)
            ratio = e / tol;
        if (record && e > worst_abs[op])
            worst_abs[op] = e;
    }
    if (record) {
        if (ratio > worst_ratio[op])
            worst_ratio[op] = ratio;
        CHECKF(bad == 0, "%s: %d elements wrong", what, bad);
    }
    return ratio;
}

/* ---- (a) linear ----------------------------------------------------------- */

enum { RES_NONE, RES_SEPARATE, RES_ALIAS };

/* Weights like a trained layer's (~ 1/sqrt(K)); spread = 1 also scatters
 * magnitudes from fp16's subnormals (< 6.1e-5) up to 65504. */
static void fill_weights(float *w, int64_t n, uint64_t seed, int64_t K, int spread)
{
    test_fill_random(w, n, seed, (float)(1.0 / sqrt((double)K)));
    if (spread)
        for (int64_t i = 0; i < n; i++) {
            static const float scale[] = {1e-7f, 3e-6f, 1e-4f, 1.0f, 100.0f, 1e4f};
            w[i] *= scale[i % 6];
            if (i == 7)
                w[i] = 65504.0f; /* fp16's largest */
            if (i == 8)
                w[i] = -65519.0f; /* rounds down to -65504 */
        }
}

static void linear_case(int64_t M, int64_t K, int64_t N, int bias, rf_act act, int res, int64_t xpad, int64_t ypad,
                        int spread)
{
    static uint64_t seed = 2000;
    seed++;
    int64_t xs = K + xpad, ys = N + ypad, rs = N + 3;
    float *x = falloc(M * xs), *w = falloc(N * K), *w16 = falloc(N * K), *b = falloc(N), *y0 = falloc(M * ys);
    float *r = falloc(M * rs);
    float *outs[3] = {falloc(M * ys), falloc(M * ys), falloc(M * ys)}; /* cpu on w16, vk fp16, cpu on w */
    double *mag = xmalloc((size_t)(M * ys) * sizeof *mag);
    test_fill_random(x, M * xs, seed, 2.0f);
    fill_weights(w, N * K, seed + 1, K, spread);
    round_f16(w16, w, N * K);
    test_fill_random(b, N, seed + 2, 1.0f);
    test_fill_random(y0, M * ys, seed + 3, 1.0f);
    test_fill_random(r, M * rs, seed + 4, 1.0f);
    char what[220];
    snprintf(what, sizeof what, "fp16 linear M %lld K %lld N %lld bias %d act %d res %d xpad %lld ypad %lld%s",
             (long long)M, (long long)K, (long long)N, bias, (int)act, res, (long long)xpad, (long long)ypad,
             spread ? " spread" : "");
    int check_rounding = K >= 768; /* large enough that fp16 rounding exceeds the fp32 tolerance */
    int runs = check_rounding ? 3 : 2;
    rf_backend *bes[3] = {cpu, vk, cpu};
    const float *weights[3] = {w16, w, w};
    int64_t xshape[2] = {M, xs}, wshape[2] = {N, K}, bshape[1] = {N}, yshape[2] = {M, ys}, rshape[2] = {M, rs};
    for (int k = 0; k < runs; k++) {
        rf_backend *be = bes[k];
        test_dev dx, dw, db, dy, dr;
        int fail = test_dev_alloc(be, &dx, RF_F32, 2, xshape, x) |
                   test_dev_alloc(be, &dw, RF_F32, 2, wshape, weights[k]) |
                   test_dev_alloc(be, &db, RF_F32, 1, bshape, b) | test_dev_alloc(be, &dy, RF_F32, 2, yshape, y0) |
                   test_dev_alloc(be, &dr, RF_F32, 2, rshape, r);
        CHECKF(!fail, "%s: allocation on %s", what, rf_backend_name(be));
        /* as a model does: prepared while the weights are host memory, then
         * moved (the device keeps the original fp32 weights at l->w) */
        rf_linear l = {.w = rf_tensor_make(RF_F32, (void *)weights[k], 2, wshape)};
        if (bias)
            l.b = rf_tensor_make(RF_F32, b, 1, bshape);
        rf_err err = {{0}};
        int rc = be->ops->linear_prepare(be, &l, &err);
        CHECKF(rc == 0, "%s: prepare on %s: %s", what, rf_backend_name(be), err.msg);
        if (be == vk)
            CHECKF(l.prepared != NULL, "%s: no fp16 weight prepared", what);
        l.w.data = dw.t.data;
        if (bias)
            l.b.data = db.t.data;
        rf_tensor tx = dx.t, ty = dy.t, tr = dr.t;
        tx.shape[1] = K;
        ty.shape[1] = tr.shape[1] = N;
        const rf_tensor *residual = res == RES_NONE ? NULL : res == RES_SEPARATE ? &tr : &ty;
        if (!rc && !(rc = be->ops->begin(be, &err)))
            rc = finish_pass(be, be->ops->linear(be, &ty, &tx, &l, act, residual, &err), &err);
        CHECKF(rc == 0, "%s on %s: %s", what, rf_backend_name(be), err.msg);
        if (!rc)
            CHECK(test_dev_read(be, &dy.t, outs[k]) == 0);
        if (l.prepared)
            be->ops->linear_release(be, &l);
        CHECK(l.prepared == NULL);
        test_dev_free(be, &dx), test_dev_free(be, &dw), test_dev_free(be, &db), test_dev_free(be, &dy),
            test_dev_free(be, &dr);
    }
    double sk = sqrt((double)K);
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < ys; n++) {
            if (n >= N) {
                mag[m * ys + n] = -1;
                continue;
            }
            double s = 0;
            for (int64_t kk = 0; kk < K; kk++)
                s += fabs((double)x[m * xs + kk] * w16[n * K + kk]);
            s *= sk;
            if (bias)
                s += fabs(b[n]);
            if (res == RES_SEPARATE)
                s += fabs(r[m * rs + n]);
            if (res == RES_ALIAS)
                s += fabs(y0[m * ys + n]);
            mag[m * ys + n] = s;
        }
    compare(0, what, outs[0], outs[1], y0, mag, M * ys, 1);
    if (check_rounding) {
        /* against the unrounded weights the fp16 result must differ by more
         * than fp32 arithmetic can: the halves, not l->w, were read */
        double ratio = compare(0, what, outs[2], outs[1], y0, mag, M * ys, 0);
        double d16 = test_max_abs_diff(outs[0], outs[1], M * ys), d32 = test_max_abs_diff(outs[2], outs[1], M * ys);
        if (verbose)
            printf("%s: max abs error %.3g vs rounded weights, %.3g (%.1f x the fp32 tolerance) vs unrounded\n",
                   what, d16, d32, ratio);
        CHECKF(d32 > 20 * d16, "%s: fp16 result as close to the unrounded weights' (%.3g) as to the rounded "
                               "(%.3g): halves not used?", what, d32, d16);
    }
    free(x), free(w), free(w16), free(b), free(y0), free(r), free(mag);
    for (int k = 0; k < 3; k++)
        free(outs[k]);
}

/* A weight beyond fp16's range is refused at prepare, with one line. */
static void out_of_range(void)
{
    float w[6] = {0.5f, -1.0f, 2.0f, 70000.0f, 0.25f, 1.0f};
    int64_t shape[2] = {2, 3};
    rf_linear l = {.w = rf_tensor_make(RF_F32, w, 2, shape)};
    rf_err err = {{0}};
    int rc = vk->ops->linear_prepare(vk, &l, &err);
    CHECKF(rc == RF_EUNSUP && one_line(&err) && strstr(err.msg, "[1, 0]"), "prepare of 70000: %d: %s", rc,
           err.msg);
    CHECK(l.prepared == NULL);
    if (verbose)
        printf("out of range: %s\n", err.msg);
}

/* ---- (c) patch_embed ----------------------------------------------------- */

static void patch_case(int64_t B, int64_t C, int64_t H, int64_t W, int P, int64_t E, int bias, int64_t pad)
{
    static uint64_t seed = 7000;
    seed++;
    int64_t gh = H / P, gw = W / P, np = gh * gw, kdim = C * P * P, es = E + pad, tokens = 1 + np;
    int64_t ni = B * C * H * W, ny = B * tokens * es;
    float *img = falloc(ni), *w = falloc(E * kdim), *w16 = falloc(E * kdim), *b = falloc(E), *y0 = falloc(ny);
    float *outs[2] = {falloc(ny), falloc(ny)};
    double *mag = xmalloc((size_t)ny * sizeof *mag);
    test_fill_random(img, ni, seed, 2.0f);
    test_fill_random(w, E * kdim, seed + 1, (float)(1.0 / sqrt((double)kdim)));
    round_f16(w16, w, E * kdim);
    test_fill_random(b, E, seed + 2, 1.0f);
    test_fill_random(y0, ny, seed + 3, 1.0f);
    char what[200];
    snprintf(what, sizeof what, "fp16 patch_embed B %lld C %lld %lldx%lld patch %d E %lld bias %d pad %lld",
             (long long)B, (long long)C, (long long)H, (long long)W, P, (long long)E, bias, (long long)pad);
    rf_backend *bes[2] = {cpu, vk};
    const float *weights[2] = {w16, w};
    int64_t ishape[4] = {B, C, H, W}, wshape[2] = {E, kdim}, bshape[1] = {E}, yshape[3] = {B, tokens, es};
    for (int i = 0; i < 2; i++) {
        rf_backend *be = bes[i];
        test_dev di, dw, db, dy;
        int fail = test_dev_alloc(be, &di, RF_F32, 4, ishape, img) |
                   test_dev_alloc(be, &dw, RF_F32, 2, wshape, weights[i]) |
                   test_dev_alloc(be, &db, RF_F32, 1, bshape, b) | test_dev_alloc(be, &dy, RF_F32, 3, yshape, y0);
        CHECKF(!fail, "%s: allocation on %s", what, rf_backend_name(be));
        rf_linear l = {.w = rf_tensor_make(RF_F32, (void *)weights[i], 2, wshape)};
        if (bias)
            l.b = rf_tensor_make(RF_F32, b, 1, bshape);
        rf_err err = {{0}};
        int rc = be->ops->linear_prepare(be, &l, &err);
        CHECKF(rc == 0, "%s: prepare on %s: %s", what, rf_backend_name(be), err.msg);
        if (be == vk)
            CHECKF(l.prepared != NULL, "%s: no fp16 weight prepared", what);
        l.w.data = dw.t.data;
        if (bias)
            l.b.data = db.t.data;
        rf_tensor ty = rf_tensor_slice(&dy.t, 1, 1, tokens);
        ty.shape[2] = E;
        if (!rc && !(rc = be->ops->begin(be, &err)))
            rc = finish_pass(be, be->ops->patch_embed(be, &ty, &di.t, &l, P, &err), &err);
        CHECKF(rc == 0, "%s on %s: %s", what, rf_backend_name(be), err.msg);
        if (!rc) {
            rf_tensor flat = rf_tensor_make(RF_F32, dy.t.data, 1, &ny);
            CHECK(test_dev_read(be, &flat, outs[i]) == 0);
        }
        if (l.prepared)
            be->ops->linear_release(be, &l);
        test_dev_free(be, &di), test_dev_free(be, &dw), test_dev_free(be, &db), test_dev_free(be, &dy);
    }
    double sk = sqrt((double)kdim);
    for (int64_t z = 0; z < B; z++)
        for (int64_t t = 0; t < tokens; t++)
            for (int64_t e = 0; e < es; e++) {
                double s = -1;
                if (t > 0 && e < E) {
                    int64_t py = (t - 1) / gw, px = (t - 1) % gw;
                    s = 0;
                    for (int64_t c = 0; c < C; c++)
                        for (int ky = 0; ky < P; ky++)
                            for (int kx = 0; kx < P; kx++) {
                                double v = img[((z * C + c) * H + py * P + ky) * W + px * P + kx];
                                s += fabs(v * w16[e * kdim + (c * P + ky) * P + kx]);
                            }
                    s = s * sk + (bias ? fabs(b[e]) : 0);
                }
                mag[(z * tokens + t) * es + e] = s;
            }
    compare(1, what, outs[0], outs[1], y0, mag, ny, 1);
    free(img), free(w), free(w16), free(b), free(y0), free(outs[0]), free(outs[1]), free(mag);
}

/* ---- (b) refusals ------------------------------------------------------- */

static void refusals(void)
{
    rf_err err = {{0}};
    int rc = rf_backend_set_precision(cpu, RF_PRECISION_FP16, &err);
    CHECKF(rc == RF_EUNSUP && one_line(&err), "cpu fp16: %d: %s", rc, err.msg);
    printf("cpu refuses fp16: %s\n", err.msg);
    memset(&err, 0, sizeof err);
    CHECKF(rf_backend_set_precision(cpu, RF_PRECISION_FP32, &err) == 0, "cpu fp32: %s", err.msg);
    memset(&err, 0, sizeof err);
    rc = rf_backend_set_precision(cpu, (rf_precision)7, &err);
    CHECKF(rc == RF_EINVAL && one_line(&err), "cpu precision 7: %d: %s", rc, err.msg);
    memset(&err, 0, sizeof err);
    rc = rf_backend_set_precision(vk, (rf_precision)-1, &err);
    CHECKF(rc == RF_EINVAL && one_line(&err), "vulkan precision -1: %d: %s", rc, err.msg);

    /* a Vulkan device without shaderFloat16 / 16-bit storage (simulated):
     * RF_EUNSUP naming the device, and the setting unchanged */
    rf_vk *dev = vk->impl;
    int had = dev->has_fp16;
    dev->has_fp16 = 0;
    dev->precision = RF_PRECISION_FP32;
    memset(&err, 0, sizeof err);
    rc = rf_backend_set_precision(vk, RF_PRECISION_FP16, &err);
    CHECKF(rc == RF_EUNSUP && one_line(&err) && strstr(err.msg, dev->props.deviceName),
           "vulkan without fp16: %d: %s", rc, err.msg);
    CHECK(dev->precision == RF_PRECISION_FP32);
    printf("vulkan without fp16 refuses: %s\n", err.msg);
    dev->has_fp16 = had;

    /* fp32 on Vulkan: nothing prepared, the weight read in place */
    CHECK(rf_backend_set_precision(vk, RF_PRECISION_FP32, &err) == 0);
    float w[6] = {1, 2, 3, 4, 5, 6};
    int64_t shape[2] = {2, 3};
    rf_linear l = {.w = rf_tensor_make(RF_F32, w, 2, shape)};
    CHECK(vk->ops->linear_prepare(vk, &l, &err) == 0 && l.prepared == NULL);
    CHECK(rf_backend_set_precision(vk, RF_PRECISION_FP16, &err) == 0);

    /* the CLI: exit 2 and one line */
    char dir[4096], io[4200];
    snprintf(dir, sizeof dir, "%s/fixtures/reference/bert", test_shared_dir());
    snprintf(io, sizeof io, "%s/io.safetensors", dir);
    char *argv[] = {(char *)test_radfuse_bin(), "model", "run", dir, "--input", io, "--output",
                    "/nonexistent/out.safetensors", "--device", "cpu", "--precision", "fp16", NULL};
    char errbuf[2048];
    int status = test_run(argv, NULL, 0, errbuf, sizeof errbuf);
    CHECKF(status == 2 && test_count_lines(errbuf) == 1 && strstr(errbuf, "fp16"),
           "cli --device cpu --precision fp16: exit %d: %s", status, errbuf);
    argv[11] = "fp8";
    status = test_run(argv, NULL, 0, errbuf, sizeof errbuf);
    CHECKF(status == 2 && test_count_lines(errbuf) == 1 && strstr(errbuf, "fp8"),
           "cli --precision fp8: exit %d: %s", status, errbuf);
}

int main(void)
{
    rf_err err;
    const char *v = getenv("RADFUSE_TEST_VERBOSE");
    verbose = v && *v && strcmp(v, "0") != 0;
    if (rf_backend_create(&cpu, "cpu", 2, &err)) {
        fprintf(stderr, "FATAL: cpu backend: %s\n", err.msg);
        return 1;
    }
    if (rf_vk_backend_create(&vk, -1, 0, &err)) {
        fprintf(stderr, "FATAL: the Vulkan backend could not be created (install lavapipe): %s\n", err.msg);
        rf_backend_destroy(cpu);
        return 1;
    }
    rf_vk *dev = vk->impl;
    printf("vulkan device: %s, has_fp16 %d\n", rf_backend_name(vk), dev->has_fp16);
    if (rf_backend_set_precision(vk, RF_PRECISION_FP16, &err)) {
        fprintf(stderr, "FATAL: %s\n", err.msg);
        rf_backend_destroy(vk);
        rf_backend_destroy(cpu);
        return 1;
    }

    refusals();

    /* linear */
    const int64_t Ms[] = {1, 17, 197};
    const int64_t KN[][2] = {{100, 72}, {24, 40}, {64, 129}, {1, 5}, {130, 1}};
    const rf_act acts[] = {RF_ACT_NONE, RF_ACT_GELU_ERF, RF_ACT_GELU_TANH, RF_ACT_TANH, RF_ACT_RELU};
    int variant = 0;
    for (size_t mi = 0; mi < 3; mi++)
        for (size_t s = 0; s < sizeof KN / sizeof KN[0]; s++)
            for (int bias = 0; bias <= 1; bias++)
                for (size_t a = 0; a < 5; a++)
                    for (int res = RES_NONE; res <= RES_ALIAS; res++) {
                        variant++;
                        linear_case(Ms[mi], KN[s][0], KN[s][1], bias, acts[a], res, variant % 3 ? 0 : 5,
                                    variant % 2 ? 0 : 3, 0);
                    }
    for (size_t mi = 0; mi < 3; mi++) /* ViT-B qkv */
        for (int res = RES_NONE; res <= RES_ALIAS; res += 2) {
            linear_case(Ms[mi], 768, 2304, 1, RF_ACT_NONE, res, 0, 0, 0);
            linear_case(Ms[mi], 768, 2304, 1, RF_ACT_GELU_ERF, res, 7, 5, 0);
        }
    for (size_t mi = 0; mi < 3; mi++) /* subnormal to largest halves */
        linear_case(Ms[mi], 100, 72, 1, RF_ACT_NONE, RES_SEPARATE, 0, 0, 1);
    out_of_range();

    /* patch_embed */
    for (int bias = 0; bias <= 1; bias++) {
        patch_case(1, 1, 28, 42, 14, 24, bias, 0);
        patch_case(2, 3, 42, 28, 14, 40, bias, 3);
        patch_case(1, 3, 32, 48, 16, 100, bias, 5);
        patch_case(2, 3, 224, 224, 16, 64, bias, 1);
    }

    if (verbose)
        printf("linear       worst error/tolerance %.3f, worst abs error %.3g\n"
               "patch_embed  worst error/tolerance %.3f, worst abs error %.3g\n",
               worst_ratio[0], worst_abs[0], worst_ratio[1], worst_abs[1]);
    rf_backend_destroy(vk);
    rf_backend_destroy(cpu);
    return test_finish("test_vk_fp16");
}
