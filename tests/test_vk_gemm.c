/*
 * The Vulkan backend's matrix products (linear, matmul, patch_embed; all one
 * GEMM shader, shaders/gemm.comp) against the CPU backend, itself checked
 * against double-precision references in test_ops, on random inputs, in
 * each precision (rf_backend_set_precision; the precision is a parameter of
 * the linear and patch_embed cases):
 *   - linear: M in {1, 3, 17, 197}, (K, N) not multiples of 16 or of the
 *     64 x 64 tile, K = 1, N = 1, bias on/off, every activation, residual
 *     none / separate / aliasing y, row strides wider than the rows; also
 *     M = 256 x 197 = 50432 (a batch of 256 images) and (768, 2304);
 *   - matmul: all four transposes, batch 1 and 3 (and 66000, more than
 *     lavapipe's 65535 grid z), alpha != 1, padded rows;
 *   - patch_embed: 1 and 3 channels, non-square images, patch 14 and 16,
 *     batch 1 and 2, bias on/off, output into rows 1.. of a padded token
 *     tensor [B, 1 + Np, E + pad];
 *   - bad shapes return RF_EINVAL with a one-line message.
 * Memory outside every output view is pre-filled and must come back
 * unchanged on both backends (exact comparison).
 *
 * fp16 precision: the Vulkan backend stores the weights of linear layers and
 * of the patch embedding as IEEE halves and accumulates in fp32
 * (shaders/gemm.comp built as gemm_f16w); the CPU backend refuses it.
 *   (a) linear in fp16 against the CPU backend's fp32 linear on the SAME
 *       weights rounded through fp16, rf_f16_to_f32(rf_f32_to_f16(w)):
 *       M in {1, 17, 197}, (K, N) ((100, 72), (24, 40), (64, 129), (1, 5),
 *       (130, 1)) and (768, 2304), bias on/off, every activation, residual
 *       none / separate / aliasing y, padded rows; weights spanning fp16's
 *       subnormals to its largest value; a weight beyond 65504 refused at
 *       prepare (RF_EUNSUP);
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
 * Tolerance, the same in both precisions. Both sides compute in fp32 (in
 * fp16 they multiply identical values: halves are exact in fp32) and differ
 * only in the order of the K-term sums (and in the last ulp of the
 * activations' rational approximations, evaluated by the same formulas). An
 * fp32 sum of K products in any order is within about sqrt(K) * EPS * S of
 * the exact value, S = sum_k |a_k b_k| (a random walk of per-add rounding
 * errors; the worst case K * EPS * S is never approached), so two orders
 * differ by at most twice that; activations have slope <= 1.13. We allow
 *     |vk - cpu| <= 4 EPS (sqrt(K) S + |bias| + |residual| + |cpu|) + 1e-6 (1 + |cpu|)
 * (EPS = 2^-23; the last term covers the activations' formulas evaluated on
 * another device; in fp16 S is over the rounded weights). A missing or
 * doubled product (~1e-2 here) or a wrong element is orders of magnitude
 * above it. Inputs are scaled like a trained layer (weights ~ 1/sqrt(K)),
 * and we also check the plain bound |vk - cpu| <= 1e-4 (1 + |cpu|).
 * RADFUSE_TEST_VERBOSE=1 prints the worst error / tolerance ratio per
 * operation and precision.
 *
 * Vulkan must come up (lavapipe in CI) with fp16 support (lavapipe has
 * shaderFloat16 and storageBuffer16BitAccess): a missing device or feature
 * fails the test. The test also prints an informational lavapipe/GPU timing
 * of the ViT-B qkv projection (197 x 768 -> 2304).
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/vk_device.h"
#include "tests/testutil.h"

#define EPS ((double)FLT_EPSILON)

static rf_backend *cpu, *vk;
static int verbose;
enum { OP_LINEAR, OP_MATMUL, OP_PATCH, OPS };
static double worst_ratio[2][OPS]; /* [precision][operation] */
static double worst_abs[2][OPS];
static const char *op_names[OPS] = {"linear", "matmul", "patch_embed"};
static const char *prec_names[2] = {"fp32", "fp16"};

static int one_line(const rf_err *e)
{
    return e->msg[0] && strchr(e->msg, '\n') == NULL;
}

/* The Vulkan backend's precision for the linears prepared from now on. */
static void set_vk_precision(rf_precision prec)
{
    rf_err err = {{0}};
    if (rf_backend_set_precision(vk, prec, &err)) {
        fprintf(stderr, "FATAL: %s\n", err.msg);
        exit(1);
    }
}

/*
 * Compares n output floats: where mag[i] >= 0 (inside the output view, mag =
 * sqrt(K) S + |bias| + |residual|) within the tolerance above; where mag[i] < 0
 * (outside the view) both must equal init[i] exactly. With record, counts one
 * check and notes the worst ratio for the summary of (prec, op); without, only
 * measures. Returns the worst error / tolerance ratio.
 */
static double compare(rf_precision prec, int op, const char *what, const float *ref, const float *got,
                      const float *init, const double *mag, int64_t n, int record)
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
        if (record && e > worst_abs[prec][op])
            worst_abs[prec][op] = e;
    }
    if (record) {
        if (ratio > worst_ratio[prec][op])
            worst_ratio[prec][op] = ratio;
        CHECKF(bad == 0, "%s: %d elements wrong", what, bad);
    }
    return ratio;
}

/* ---- weights: prepared as a model does ------------------------------------ */

/* w rounded through fp16 (nearest even), as the Vulkan backend stores it. */
static void round_f16(float *dst, const float *src, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        dst[i] = rf_f16_to_f32(rf_f32_to_f16(src[i]));
}

/* The weights the CPU reference multiplies by: w itself in fp32, a copy
 * rounded through fp16 in fp16 (malloc'd either way). */
static float *reference_weights(rf_precision prec, const float *w, int64_t n)
{
    float *ref = test_falloc(n);
    if (prec == RF_PRECISION_FP16)
        round_f16(ref, w, n);
    else
        memcpy(ref, w, (size_t)n * sizeof *ref);
    return ref;
}

/*
 * As a model does: l prepared on be while its weights w [shape] (and bias b
 * [shape[0]] when bias) are host memory, then moved to the device copies dw,
 * db (the device keeps the original fp32 weights at l->w). In fp16 the
 * Vulkan backend must have prepared its half copy. Returns prepare's status.
 */
static int prepare_layer(rf_backend *be, rf_precision prec, rf_linear *l, const float *w, const int64_t shape[2],
                         int bias, const float *b, const test_dev *dw, const test_dev *db, rf_err *err,
                         const char *what)
{
    *l = (rf_linear){.w = rf_tensor_make(RF_F32, (void *)w, 2, shape)};
    if (bias)
        l->b = rf_tensor_make(RF_F32, (void *)b, 1, shape);
    int rc = be->ops->linear_prepare(be, l, err);
    CHECKF(rc == 0, "%s: prepare on %s: %s", what, rf_backend_name(be), err->msg);
    if (prec == RF_PRECISION_FP16 && be == vk)
        CHECKF(l->prepared != NULL, "%s: no fp16 weight prepared", what);
    l->w.data = dw->t.data;
    if (bias)
        l->b.data = db->t.data;
    return rc;
}

/* ---- linear -------------------------------------------------------------- */

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

static void linear_case(rf_precision prec, int64_t M, int64_t K, int64_t N, int bias, rf_act act, int res,
                        int64_t xpad, int64_t ypad, int spread)
{
    static uint64_t seeds[2] = {1000, 2000}; /* per precision */
    uint64_t seed = ++seeds[prec];
    set_vk_precision(prec);
    int fp16 = prec == RF_PRECISION_FP16;
    int64_t xs = K + xpad, ys = N + ypad, rs = N + 3;
    float *x = test_falloc(M * xs), *w = test_falloc(N * K), *b = test_falloc(N), *y0 = test_falloc(M * ys);
    float *r = test_falloc(M * rs);
    float *outs[3] = {test_falloc(M * ys), test_falloc(M * ys), test_falloc(M * ys)}; /* cpu on wref, vk, cpu on w */
    double *mag = test_dalloc(M * ys);
    test_fill_random(x, M * xs, seed, 2.0f);
    fill_weights(w, N * K, seed + 1, K, spread);
    float *wref = reference_weights(prec, w, N * K);
    test_fill_random(b, N, seed + 2, 1.0f);
    test_fill_random(y0, M * ys, seed + 3, 1.0f);
    test_fill_random(r, M * rs, seed + 4, 1.0f);
    char what[220];
    snprintf(what, sizeof what, "%slinear M %lld K %lld N %lld bias %d act %d res %d xpad %lld ypad %lld%s",
             fp16 ? "fp16 " : "", (long long)M, (long long)K, (long long)N, bias, (int)act, res, (long long)xpad,
             (long long)ypad, spread ? " spread" : "");
    /* in fp16, large enough that fp16 rounding exceeds the fp32 tolerance */
    int check_rounding = fp16 && K >= 768;
    int runs = check_rounding ? 3 : 2;
    rf_backend *bes[3] = {cpu, vk, cpu};
    const float *weights[3] = {wref, w, w};
    int64_t xshape[2] = {M, xs}, wshape[2] = {N, K}, bshape[1] = {N}, yshape[2] = {M, ys}, rshape[2] = {M, rs};
    for (int k = 0; k < runs; k++) {
        rf_backend *be = bes[k];
        test_dev dx, dw, db, dy, dr;
        int fail = test_dev_alloc(be, &dx, RF_F32, 2, xshape, x) |
                   test_dev_alloc(be, &dw, RF_F32, 2, wshape, weights[k]) |
                   test_dev_alloc(be, &db, RF_F32, 1, bshape, b) | test_dev_alloc(be, &dy, RF_F32, 2, yshape, y0) |
                   test_dev_alloc(be, &dr, RF_F32, 2, rshape, r);
        CHECKF(!fail, "%s: allocation on %s", what, rf_backend_name(be));
        rf_linear l;
        rf_err err = {{0}};
        int rc = prepare_layer(be, prec, &l, weights[k], wshape, bias, b, &dw, &db, &err, what);
        rf_tensor tx = dx.t, ty = dy.t, tr = dr.t;
        tx.shape[1] = K;
        ty.shape[1] = tr.shape[1] = N;
        const rf_tensor *residual = res == RES_NONE ? NULL : res == RES_SEPARATE ? &tr : &ty;
        if (!rc && !(rc = be->ops->begin(be, &err)))
            rc = test_end_pass(be, be->ops->linear(be, &ty, &tx, &l, act, residual, &err), &err);
        CHECKF(rc == 0, "%s on %s: %s", what, rf_backend_name(be), err.msg);
        if (!rc)
            CHECK(test_dev_read(be, &dy.t, outs[k]) == 0);
        if (l.prepared)
            be->ops->linear_release(be, &l);
        if (fp16)
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
                s += fabs((double)x[m * xs + kk] * wref[n * K + kk]);
            s *= sk;
            if (bias)
                s += fabs(b[n]);
            if (res == RES_SEPARATE)
                s += fabs(r[m * rs + n]);
            if (res == RES_ALIAS)
                s += fabs(y0[m * ys + n]);
            mag[m * ys + n] = s;
        }
    compare(prec, OP_LINEAR, what, outs[0], outs[1], y0, mag, M * ys, 1);
    if (check_rounding) {
        /* against the unrounded weights the fp16 result must differ by more
         * than fp32 arithmetic can: the halves, not l->w, were read */
        double ratio = compare(prec, OP_LINEAR, what, outs[2], outs[1], y0, mag, M * ys, 0);
        double d16 = test_max_abs_diff(outs[0], outs[1], M * ys), d32 = test_max_abs_diff(outs[2], outs[1], M * ys);
        if (verbose)
            printf("%s: max abs error %.3g vs rounded weights, %.3g (%.1f x the fp32 tolerance) vs unrounded\n",
                   what, d16, d32, ratio);
        CHECKF(d32 > 20 * d16, "%s: fp16 result as close to the unrounded weights' (%.3g) as to the rounded "
                               "(%.3g): halves not used?", what, d32, d16);
    }
    free(x), free(w), free(wref), free(b), free(y0), free(r), free(mag);
    for (int k = 0; k < 3; k++)
        free(outs[k]);
}

/* Every (M, (K, N), bias, activation, residual) of the lists, padding rows
 * in some variants. */
static void linear_grid(rf_precision prec, const int64_t *Ms, size_t nm, const int64_t (*KN)[2], size_t nkn)
{
    const rf_act acts[] = {RF_ACT_NONE, RF_ACT_GELU_ERF, RF_ACT_GELU_TANH, RF_ACT_TANH, RF_ACT_RELU};
    int variant = 0;
    for (size_t mi = 0; mi < nm; mi++)
        for (size_t s = 0; s < nkn; s++)
            for (int bias = 0; bias <= 1; bias++)
                for (size_t a = 0; a < 5; a++)
                    for (int res = RES_NONE; res <= RES_ALIAS; res++) {
                        variant++;
                        linear_case(prec, Ms[mi], KN[s][0], KN[s][1], bias, acts[a], res, variant % 3 ? 0 : 5,
                                    variant % 2 ? 0 : 3, 0);
                    }
}

/* ViT-B qkv (768 -> 2304) for each M of the list. */
static void linear_qkv(rf_precision prec, const int64_t *Ms, size_t nm)
{
    for (size_t mi = 0; mi < nm; mi++)
        for (int res = RES_NONE; res <= RES_ALIAS; res += 2) {
            linear_case(prec, Ms[mi], 768, 2304, 1, RF_ACT_NONE, res, 0, 0, 0);
            linear_case(prec, Ms[mi], 768, 2304, 1, RF_ACT_GELU_ERF, res, 7, 5, 0);
        }
}

/* A weight beyond fp16's range is refused at prepare, with one line. */
static void out_of_range(void)
{
    set_vk_precision(RF_PRECISION_FP16);
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

/* ---- matmul -------------------------------------------------------------- */

static void matmul_case(int64_t batch, int64_t m, int64_t k, int64_t n, int ta, int tb, float alpha, int64_t pad)
{
    static uint64_t seed = 5000;
    seed++;
    /* op(a) [m, k], op(b) [k, n]; stored a [batch, ar, ac], b [batch, br, bc] with rows padded */
    int64_t ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
    int64_t as = ac + pad, bs = bc + pad, cs = n + pad;
    int64_t na = batch * ar * as, nb = batch * br * bs, nc = batch * m * cs;
    float *a = test_falloc(na), *b = test_falloc(nb), *c0 = test_falloc(nc);
    float *outs[2] = {test_falloc(nc), test_falloc(nc)};
    double *mag = test_dalloc(nc);
    test_fill_random(a, na, seed, 1.0f);
    test_fill_random(b, nb, seed + 1, 1.0f);
    test_fill_random(c0, nc, seed + 2, 1.0f);
    char what[200];
    snprintf(what, sizeof what, "matmul batch %lld m %lld k %lld n %lld ta %d tb %d alpha %g pad %lld",
             (long long)batch, (long long)m, (long long)k, (long long)n, ta, tb, alpha, (long long)pad);
    rf_backend *bes[2] = {cpu, vk};
    int64_t ashape[3] = {batch, ar, as}, bshape[3] = {batch, br, bs}, cshape[3] = {batch, m, cs};
    for (int i = 0; i < 2; i++) {
        rf_backend *be = bes[i];
        test_dev da, db, dc;
        int fail = test_dev_alloc(be, &da, RF_F32, 3, ashape, a) | test_dev_alloc(be, &db, RF_F32, 3, bshape, b) |
                   test_dev_alloc(be, &dc, RF_F32, 3, cshape, c0);
        CHECKF(!fail, "%s: allocation on %s", what, rf_backend_name(be));
        rf_tensor ta_ = da.t, tb_ = db.t, tc = dc.t;
        ta_.shape[2] = ac;
        tb_.shape[2] = bc;
        tc.shape[2] = n;
        rf_err err = {{0}};
        int rc = be->ops->begin(be, &err);
        if (!rc)
            rc = test_end_pass(be, be->ops->matmul(be, &tc, &ta_, &tb_, ta, tb, alpha, &err), &err);
        CHECKF(rc == 0, "%s on %s: %s", what, rf_backend_name(be), err.msg);
        if (!rc) {
            rf_tensor flat = rf_tensor_make(RF_F32, dc.t.data, 1, &nc);
            CHECK(test_dev_read(be, &flat, outs[i]) == 0);
        }
        test_dev_free(be, &da), test_dev_free(be, &db), test_dev_free(be, &dc);
    }
    double sk = sqrt((double)k);
    for (int64_t z = 0; z < batch; z++)
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < cs; j++) {
                double s = -1;
                if (j < n) {
                    s = 0;
                    for (int64_t kk = 0; kk < k; kk++) {
                        double av = a[z * ar * as + (ta ? kk * as + i : i * as + kk)];
                        double bv = b[z * br * bs + (tb ? j * bs + kk : kk * bs + j)];
                        s += fabs(av * bv);
                    }
                    s *= sk * fabs(alpha);
                }
                mag[(z * m + i) * cs + j] = s;
            }
    compare(RF_PRECISION_FP32, OP_MATMUL, what, outs[0], outs[1], c0, mag, nc, 1);
    free(a), free(b), free(c0), free(outs[0]), free(outs[1]), free(mag);
}

/* ---- patch_embed --------------------------------------------------------- */

static void patch_case(rf_precision prec, int64_t B, int64_t C, int64_t H, int64_t W, int P, int64_t E, int bias,
                       int64_t pad)
{
    static uint64_t seeds[2] = {9000, 7000}; /* per precision */
    uint64_t seed = ++seeds[prec];
    set_vk_precision(prec);
    int64_t gh = H / P, gw = W / P, np = gh * gw, kdim = C * P * P, es = E + pad, tokens = 1 + np;
    int64_t ni = B * C * H * W, ny = B * tokens * es;
    float *img = test_falloc(ni), *w = test_falloc(E * kdim), *b = test_falloc(E), *y0 = test_falloc(ny);
    float *outs[2] = {test_falloc(ny), test_falloc(ny)};
    double *mag = test_dalloc(ny);
    test_fill_random(img, ni, seed, 2.0f);
    test_fill_random(w, E * kdim, seed + 1, (float)(1.0 / sqrt((double)kdim)));
    float *wref = reference_weights(prec, w, E * kdim);
    test_fill_random(b, E, seed + 2, 1.0f);
    test_fill_random(y0, ny, seed + 3, 1.0f);
    char what[200];
    snprintf(what, sizeof what, "%spatch_embed B %lld C %lld %lldx%lld patch %d E %lld bias %d pad %lld",
             prec == RF_PRECISION_FP16 ? "fp16 " : "", (long long)B, (long long)C, (long long)H, (long long)W, P,
             (long long)E, bias, (long long)pad);
    rf_backend *bes[2] = {cpu, vk};
    const float *weights[2] = {wref, w};
    int64_t ishape[4] = {B, C, H, W}, wshape[2] = {E, kdim}, bshape[1] = {E}, yshape[3] = {B, tokens, es};
    for (int i = 0; i < 2; i++) {
        rf_backend *be = bes[i];
        test_dev di, dw, db, dy;
        int fail = test_dev_alloc(be, &di, RF_F32, 4, ishape, img) |
                   test_dev_alloc(be, &dw, RF_F32, 2, wshape, weights[i]) |
                   test_dev_alloc(be, &db, RF_F32, 1, bshape, b) | test_dev_alloc(be, &dy, RF_F32, 3, yshape, y0);
        CHECKF(!fail, "%s: allocation on %s", what, rf_backend_name(be));
        rf_linear l;
        rf_err err = {{0}};
        int rc = prepare_layer(be, prec, &l, weights[i], wshape, bias, b, &dw, &db, &err, what);
        /* the patch tokens: rows 1.. of [B, 1 + Np, E] inside rows of E + pad */
        rf_tensor ty = rf_tensor_slice(&dy.t, 1, 1, tokens);
        ty.shape[2] = E;
        if (!rc && !(rc = be->ops->begin(be, &err)))
            rc = test_end_pass(be, be->ops->patch_embed(be, &ty, &di.t, &l, P, &err), &err);
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
                                s += fabs(v * wref[e * kdim + (c * P + ky) * P + kx]);
                            }
                    s = s * sk + (bias ? fabs(b[e]) : 0);
                }
                mag[(z * tokens + t) * es + e] = s;
            }
    compare(prec, OP_PATCH, what, outs[0], outs[1], y0, mag, ny, 1);
    free(img), free(w), free(wref), free(b), free(y0), free(outs[0]), free(outs[1]), free(mag);
}

/* The patch_embed cases, each with and without bias; the one marked
 * fp32_only runs in fp32 alone. */
static void patch_grid(rf_precision prec)
{
    static const struct {
        int64_t B, C, H, W;
        int P;
        int64_t E, pad;
        int fp32_only;
    } cases[] = {
        {1, 1, 28, 42, 14, 24, 0, 0},   {2, 3, 42, 28, 14, 40, 3, 0},     {1, 3, 32, 48, 16, 100, 5, 0},
        {2, 1, 16, 16, 16, 72, 0, 1}, {2, 3, 224, 224, 16, 64, 1, 0},
    };
    for (int bias = 0; bias <= 1; bias++)
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            if (!(cases[i].fp32_only && prec != RF_PRECISION_FP32))
                patch_case(prec, cases[i].B, cases[i].C, cases[i].H, cases[i].W, cases[i].P, cases[i].E, bias,
                           cases[i].pad);
}

/* ---- shape errors ------------------------------------------------------- */

static void bad_shapes(void)
{
    rf_err err = {{0}};
    test_dev x, w, b, y, img, a3, b3, c3;
    int64_t xs[2] = {5, 24}, ws[2] = {40, 24}, bs[1] = {40}, ys[2] = {5, 40}, is[4] = {1, 3, 28, 28};
    int64_t s3a[3] = {2, 5, 24}, s3b[3] = {2, 24, 7}, s3c[3] = {2, 5, 7};
    int fail = test_dev_alloc(vk, &x, RF_F32, 2, xs, NULL) | test_dev_alloc(vk, &w, RF_F32, 2, ws, NULL) |
               test_dev_alloc(vk, &b, RF_F32, 1, bs, NULL) | test_dev_alloc(vk, &y, RF_F32, 2, ys, NULL) |
               test_dev_alloc(vk, &img, RF_F32, 4, is, NULL) | test_dev_alloc(vk, &a3, RF_F32, 3, s3a, NULL) |
               test_dev_alloc(vk, &b3, RF_F32, 3, s3b, NULL) | test_dev_alloc(vk, &c3, RF_F32, 3, s3c, NULL);
    CHECK(!fail);
    rf_linear l = {.w = w.t, .b = b.t};
    CHECK(vk->ops->begin(vk, &err) == 0);
#define EXPECT_EINVAL(call)                                                                   \
    do {                                                                                      \
        memset(&err, 0, sizeof err);                                                          \
        int rc_ = (call);                                                                     \
        CHECKF(rc_ == RF_EINVAL && one_line(&err), "%s returned %d: %s", #call, rc_, err.msg); \
    } while (0)
    rf_tensor t;
    /* linear: K mismatch, output shape, bias length, residual shape, 1-D input, i32 */
    t = x.t, t.shape[1] = 20;
    EXPECT_EINVAL(vk->ops->linear(vk, &y.t, &t, &l, RF_ACT_NONE, NULL, &err));
    t = y.t, t.shape[1] = 39;
    EXPECT_EINVAL(vk->ops->linear(vk, &t, &x.t, &l, RF_ACT_NONE, NULL, &err));
    t = y.t, t.shape[0] = 4;
    EXPECT_EINVAL(vk->ops->linear(vk, &t, &x.t, &l, RF_ACT_NONE, NULL, &err));
    rf_linear lb = l;
    lb.b.shape[0] = 39;
    EXPECT_EINVAL(vk->ops->linear(vk, &y.t, &x.t, &lb, RF_ACT_NONE, NULL, &err));
    t = y.t, t.shape[0] = 4;
    EXPECT_EINVAL(vk->ops->linear(vk, &y.t, &x.t, &l, RF_ACT_NONE, &t, &err));
    t = x.t, t.ndim = 1, t.shape[0] = 24;
    EXPECT_EINVAL(vk->ops->linear(vk, &y.t, &t, &l, RF_ACT_NONE, NULL, &err));
    t = x.t, t.dtype = RF_I32;
    EXPECT_EINVAL(vk->ops->linear(vk, &y.t, &t, &l, RF_ACT_NONE, NULL, &err));
    t = x.t, t.stride[0] = 10; /* rows overlapping */
    EXPECT_EINVAL(vk->ops->linear(vk, &y.t, &t, &l, RF_ACT_NONE, NULL, &err));
    /* matmul: k mismatch, output shape, batch, 2-D operand */
    EXPECT_EINVAL(vk->ops->matmul(vk, &c3.t, &a3.t, &b3.t, 0, 1, 1.0f, &err));
    EXPECT_EINVAL(vk->ops->matmul(vk, &c3.t, &a3.t, &b3.t, 1, 0, 1.0f, &err));
    t = c3.t, t.shape[2] = 6;
    EXPECT_EINVAL(vk->ops->matmul(vk, &t, &a3.t, &b3.t, 0, 0, 1.0f, &err));
    t = c3.t, t.shape[0] = 1;
    EXPECT_EINVAL(vk->ops->matmul(vk, &t, &a3.t, &b3.t, 0, 0, 1.0f, &err));
    t = a3.t, t.ndim = 2, t.shape[0] = 5, t.shape[1] = 24, t.stride[0] = 24, t.stride[1] = 1;
    EXPECT_EINVAL(vk->ops->matmul(vk, &c3.t, &t, &b3.t, 0, 0, 1.0f, &err));
    /* patch_embed: size not a multiple of the patch, projection width, output shape */
    int64_t pws[2] = {40, 3 * 14 * 14}, pys[3] = {1, 4, 40};
    rf_linear pl = {.w = rf_tensor_make(RF_F32, w.t.data, 2, pws)}; /* never read: refused first */
    rf_tensor py = rf_tensor_make(RF_F32, y.t.data, 3, pys);
    EXPECT_EINVAL(vk->ops->patch_embed(vk, &py, &img.t, &pl, 16, &err));
    pl.w.shape[1] = 3 * 14 * 14 - 1;
    EXPECT_EINVAL(vk->ops->patch_embed(vk, &py, &img.t, &pl, 14, &err));
    pl.w.shape[1] = 3 * 14 * 14;
    py.shape[1] = 3;
    EXPECT_EINVAL(vk->ops->patch_embed(vk, &py, &img.t, &pl, 14, &err));
    py.shape[1] = 4, py.shape[2] = 41;
    EXPECT_EINVAL(vk->ops->patch_embed(vk, &py, &img.t, &pl, 14, &err));
    EXPECT_EINVAL(vk->ops->patch_embed(vk, &py, &img.t, &pl, 0, &err));
    CHECK(vk->ops->end(vk, 0, &err) == 0);
#undef EXPECT_EINVAL
    test_dev_free(vk, &x), test_dev_free(vk, &w), test_dev_free(vk, &b), test_dev_free(vk, &y);
    test_dev_free(vk, &img), test_dev_free(vk, &a3), test_dev_free(vk, &b3), test_dev_free(vk, &c3);
}

/* ---- informational timing ------------------------------------------------ */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void timing(int64_t M, int64_t K, int64_t N, int reps)
{
    int64_t xshape[2] = {M, K}, wshape[2] = {N, K}, bshape[1] = {N}, yshape[2] = {M, N};
    float *w = test_falloc(N * K), *x = test_falloc(M * K), *b = test_falloc(N);
    test_fill_random(w, N * K, 1, 0.05f);
    test_fill_random(x, M * K, 2, 1.0f);
    test_fill_random(b, N, 3, 1.0f);
    test_dev dx, dw, db, dy;
    int fail = test_dev_alloc(vk, &dx, RF_F32, 2, xshape, x) | test_dev_alloc(vk, &dw, RF_F32, 2, wshape, w) |
               test_dev_alloc(vk, &db, RF_F32, 1, bshape, b) | test_dev_alloc(vk, &dy, RF_F32, 2, yshape, NULL);
    CHECK(!fail);
    rf_linear l = {.w = dw.t, .b = db.t};
    rf_err err = {{0}};
    double best = INFINITY;
    for (int r = 0; r <= reps; r++) { /* the first run builds the pipeline */
        double t0 = now_s();
        int rc = vk->ops->begin(vk, &err);
        if (!rc)
            rc = test_end_pass(vk, vk->ops->linear(vk, &dy.t, &dx.t, &l, RF_ACT_GELU_ERF, NULL, &err), &err);
        double t = now_s() - t0;
        CHECKF(rc == 0, "timing: %s", err.msg);
        if (r > 0 && t < best)
            best = t;
    }
    printf("linear %lldx%lld -> %lld (bias, gelu) on %s: %.2f ms per pass, %.1f GFLOP/s (informational)\n",
           (long long)M, (long long)K, (long long)N, rf_backend_name(vk), best * 1e3, 2e-9 * M * N * K / best);
    test_dev_free(vk, &dx), test_dev_free(vk, &dw), test_dev_free(vk, &db), test_dev_free(vk, &dy);
    free(w), free(x), free(b);
}

/* ---- fp16 refusals --------------------------------------------------------- */

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
    verbose = test_verbose();
    test_backends_create(&cpu, &vk);

    /* fp32 */
    const int64_t Ms[] = {1, 3, 17, 197}, qkv_Ms[] = {1, 197};
    const int64_t KN[][2] = {{24, 40}, {100, 72}, {16, 64}, {1, 5}, {130, 1}, {64, 129}};
    linear_grid(RF_PRECISION_FP32, Ms, 4, KN, sizeof KN / sizeof KN[0]);
    linear_qkv(RF_PRECISION_FP32, qkv_Ms, 2);
    linear_case(RF_PRECISION_FP32, 256 * 197, 40, 24, 1, RF_ACT_GELU_TANH, RES_SEPARATE, 3, 1,
                0); /* a batch of 256 images */

    const int64_t mkn[][3] = {{1, 1, 1}, {3, 17, 5}, {17, 64, 24}, {197, 64, 197}, {65, 33, 129}, {5, 200, 3}};
    for (size_t s = 0; s < sizeof mkn / sizeof mkn[0]; s++)
        for (int ta = 0; ta <= 1; ta++)
            for (int tb = 0; tb <= 1; tb++)
                for (int64_t batch = 1; batch <= 3; batch += 2) {
                    matmul_case(batch, mkn[s][0], mkn[s][1], mkn[s][2], ta, tb, 0.125f, (s + ta) % 2 ? 0 : 3);
                    if (s == 1)
                        matmul_case(batch, mkn[s][0], mkn[s][1], mkn[s][2], ta, tb, 1.0f, 0);
                }
    matmul_case(66000, 2, 3, 2, 0, 1, 0.5f, 1); /* more batches than lavapipe's grid has in z */

    patch_grid(RF_PRECISION_FP32);
    bad_shapes();
    timing(197, 768, 2304, 3);

    /* fp16: the same linear and patch_embed cases on fewer shapes */
    rf_vk *dev = vk->impl;
    printf("vulkan has_fp16 %d\n", dev->has_fp16);
    set_vk_precision(RF_PRECISION_FP16);
    refusals();
    const int64_t Ms16[] = {1, 17, 197};
    const int64_t KN16[][2] = {{100, 72}, {24, 40}, {64, 129}, {1, 5}, {130, 1}};
    linear_grid(RF_PRECISION_FP16, Ms16, 3, KN16, sizeof KN16 / sizeof KN16[0]);
    linear_qkv(RF_PRECISION_FP16, Ms16, 3);
    for (size_t mi = 0; mi < 3; mi++) /* subnormal to largest halves */
        linear_case(RF_PRECISION_FP16, Ms16[mi], 100, 72, 1, RF_ACT_NONE, RES_SEPARATE, 0, 0, 1);
    out_of_range();
    patch_grid(RF_PRECISION_FP16);

    if (verbose)
        for (int p = 0; p < 2; p++)
            for (int op = 0; op < OPS; op++)
                if (!(p == RF_PRECISION_FP16 && op == OP_MATMUL))
                    printf("%s %-12s worst error/tolerance %.3f, worst abs error %.3g\n", prec_names[p], op_names[op],
                           worst_ratio[p][op], worst_abs[p][op]);
    rf_backend_destroy(vk);
    rf_backend_destroy(cpu);
    return test_finish("test_vk_gemm");
}
