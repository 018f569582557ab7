/*
 * The Vulkan backend's matrix products (linear, matmul, patch_embed; all one
 * GEMM shader, shaders/gemm.comp) against the CPU backend, itself checked
 * against double-precision references in test_ops, on random inputs:
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
 * Tolerance. Both sides compute in fp32 and differ only in the order of the
 * K-term sums (and in the last ulp of the activations' rational
 * approximations, evaluated by the same formulas). An fp32 sum of K products
 * in any order is within about sqrt(K) * EPS * S of the exact value, S =
 * sum_k |a_k b_k| (a random walk of per-add rounding errors; the worst case
 * K * EPS * S is never approached), so two orders differ by at most twice
 * that; activations have slope <= 1.13. We allow
 *     |vk - cpu| <= 4 EPS (sqrt(K) S + |bias| + |residual| + |cpu|) + 1e-6 (1 + |cpu|)
 * (EPS = 2^-23; the last term covers the activations' formulas evaluated on
 * another device). A missing or doubled product (~1e-2 here) or a wrong
 * element is orders of magnitude above it. Inputs are scaled like a trained
 * layer (weights ~ 1/sqrt(K)), and we also check the plain bound
 * |vk - cpu| <= 1e-4 (1 + |cpu|). RADFUSE_TEST_VERBOSE=1 prints the worst
 * error / tolerance ratio per operation.
 *
 * Vulkan must come up (lavapipe in CI): a missing device fails the test.
 * The test also prints an informational lavapipe/GPU timing of the ViT-B
 * qkv projection (197 x 768 -> 2304).
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
static double worst_ratio[3]; /* linear, matmul, patch_embed */
static double worst_abs[3];
static const char *op_names[3] = {"linear", "matmul", "patch_embed"};

static void *xmalloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "test_vk_gemm: out of memory\n");
        abort();
    }
    return p;
}

static float *falloc(int64_t n)
{
    return xmalloc((size_t)n * sizeof(float));
}

/* Ends a pass: submitted when the operation succeeded, dropped otherwise. */
static int finish_pass(rf_backend *be, int rc, rf_err *err)
{
    rf_err ignored;
    int rc2 = be->ops->end(be, rc == 0, rc ? &ignored : err);
    return rc ? rc : rc2;
}

/*
 * Compares n output floats: where mag[i] >= 0 (inside the output view, mag =
 * sqrt(K) S + |bias| + |residual|) within the tolerance above; where mag[i] < 0
 * (outside the view) both must equal init[i] exactly.
 */
static int compare(int op, const char *what, const float *ref, const float *got, const float *init,
                   const double *mag, int64_t n)
{
    int bad = 0;
    double ratio = 0;
    for (int64_t i = 0; i < n; i++) {
        if (mag[i] < 0) {
            if (!(ref[i] == init[i] && got[i] == init[i])) {
                if (!bad++)
                    fprintf(stderr, "%s: element %lld outside the output view changed: cpu %g vk %g, was %g\n",
                            what, (long long)i, ref[i], got[i], init[i]);
            }
            continue;
        }
        double r = fabs((double)ref[i]), e = fabs((double)got[i] - (double)ref[i]);
        double tol = 4 * EPS * (mag[i] + r) + 1e-6 * (1 + r);
        if (!(e <= tol) || !(e <= 1e-4 * (1 + r))) {
            if (!bad++)
                fprintf(stderr, "%s: element %lld: cpu %.9g vk %.9g, error %.3g, tolerance %.3g\n", what,
                        (long long)i, ref[i], got[i], e, tol);
            e = INFINITY;
        }
        if (e / tol > ratio)
            ratio = e / tol;
        if (e > worst_abs[op])
            worst_abs[op] = e;
    }
    if (ratio > worst_ratio[op])
        worst_ratio[op] = ratio;
    CHECKF(bad == 0, "%s: %d elements wrong", what, bad);
    return bad;
}

/* ---- linear -------------------------------------------------------------- */

enum { RES_NONE, RES_SEPARATE, RES_ALIAS };

static void linear_case(int64_t M, int64_t K, int64_t N, int bias, rf_act act, int res, int64_t xpad, int64_t ypad)
{
    static uint64_t seed = 1000;
    seed++;
    int64_t xs = K + xpad, ys = N + ypad, rs = N + 3;
    float *x = falloc(M * xs), *w = falloc(N * K), *b = falloc(N), *y0 = falloc(M * ys), *r = falloc(M * rs);
    float *outs[2] = {falloc(M * ys), falloc(M * ys)};
    double *mag = xmalloc((size_t)(M * ys) * sizeof *mag);
    test_fill_random(x, M * xs, seed, 2.0f);
    test_fill_random(w, N * K, seed + 1, (float)(1.0 / sqrt((double)K)));
    test_fill_random(b, N, seed + 2, 1.0f);
    test_fill_random(y0, M * ys, seed + 3, 1.0f);
    test_fill_random(r, M * rs, seed + 4, 1.0f);
    char what[200];
    snprintf(what, sizeof what, "linear M %lld K %lld N %lld bias %d act %d res %d xpad %lld ypad %lld",
             (long long)M, (long long)K, (long long)N, bias, (int)act, res, (long long)xpad, (long long)ypad);
    rf_backend *bes[2] = {cpu, vk};
    int64_t xshape[2] = {M, xs}, wshape[2] = {N, K}, bshape[1] = {N}, yshape[2] = {M, ys}, rshape[2] = {M, rs};
    for (int k = 0; k < 2; k++) {
        rf_backend *be = bes[k];
        test_dev dx, dw, db, dy, dr;
        int fail = test_dev_alloc(be, &dx, RF_F32, 2, xshape, x) | test_dev_alloc(be, &dw, RF_F32, 2, wshape, w) |
                   test_dev_alloc(be, &db, RF_F32, 1, bshape, b) | test_dev_alloc(be, &dy, RF_F32, 2, yshape, y0) |
                   test_dev_alloc(be, &dr, RF_F32, 2, rshape, r);
        CHECKF(!fail, "%s: allocation on %s", what, rf_backend_name(be));
        /* as a model does: prepared while the weights are host memory, then moved */
        rf_linear l = {.w = rf_tensor_make(RF_F32, w, 2, wshape)};
        if (bias)
            l.b = rf_tensor_make(RF_F32, b, 1, bshape);
        rf_err err = {{0}};
        int rc = be->ops->linear_prepare(be, &l, &err);
        CHECKF(rc == 0, "%s: prepare on %s: %s", what, rf_backend_name(be), err.msg);
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
                s += fabs((double)x[m * xs + kk] * w[n * K + kk]);
            s *= sk;
            if (bias)
                s += fabs(b[n]);
            if (res == RES_SEPARATE)
                s += fabs(r[m * rs + n]);
            if (res == RES_ALIAS)
                s += fabs(y0[m * ys + n]);
            mag[m * ys + n] = s;
        }
    compare(0, what, outs[0], outs[1], y0, mag, M * ys);
    free(x), free(w), free(b), free(y0), free(r), free(outs[0]), free(outs[1]), free(mag);
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
    float *a = falloc(na), *b = falloc(nb), *c0 = falloc(nc);
    float *outs[2] = {falloc(nc), falloc(nc)};
    double *mag = xmalloc((size_t)nc * sizeof *mag);
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
            rc = finish_pass(be, be->ops->matmul(be, &tc, &ta_, &tb_, ta, tb, alpha, &err), &err);
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
    compare(1, what, outs[0], outs[1], c0, mag, nc);
    free(a), free(b), free(c0), free(outs[0]), free(outs[1]), free(mag);
}

/* ---- patch_embed --------------------------------------------------------- */

static void patch_case(int64_t B, int64_t C, int64_t H, int64_t W, int P, int64_t E, int bias, int64_t pad)
{
    static uint64_t seed = 9000;
    seed++;
    int64_t gh = H / P, gw = W / P, np = gh * gw, kdim = C * P * P, es = E + pad, tokens = 1 + np;
    int64_t ni = B * C * H * W, ny = B * tokens * es;
    float *img = falloc(ni), *w = falloc(E * kdim), *b = falloc(E), *y0 = falloc(ny);
    float *outs[2] = {falloc(ny), falloc(ny)};
    double *mag = xmalloc((size_t)ny * sizeof *mag);
    test_fill_random(img, ni, seed, 2.0f);
    test_fill_random(w, E * kdim, seed + 1, (float)(1.0 / sqrt((double)kdim)));
    test_fill_random(b, E, seed + 2, 1.0f);
    test_fill_random(y0, ny, seed + 3, 1.0f);
    char what[200];
    snprintf(what, sizeof what, "patch_embed B %lld C %lld %lldx%lld patch %d E %lld bias %d pad %lld", (long long)B,
             (long long)C, (long long)H, (long long)W, P, (long long)E, bias, (long long)pad);
    rf_backend *bes[2] = {cpu, vk};
    int64_t ishape[4] = {B, C, H, W}, wshape[2] = {E, kdim}, bshape[1] = {E}, yshape[3] = {B, tokens, es};
    for (int i = 0; i < 2; i++) {
        rf_backend *be = bes[i];
        test_dev di, dw, db, dy;
        int fail = test_dev_alloc(be, &di, RF_F32, 4, ishape, img) | test_dev_alloc(be, &dw, RF_F32, 2, wshape, w) |
                   test_dev_alloc(be, &db, RF_F32, 1, bshape, b) | test_dev_alloc(be, &dy, RF_F32, 3, yshape, y0);
        CHECKF(!fail, "%s: allocation on %s", what, rf_backend_name(be));
        rf_linear l = {.w = rf_tensor_make(RF_F32, w, 2, wshape)};
        if (bias)
            l.b = rf_tensor_make(RF_F32, b, 1, bshape);
        rf_err err = {{0}};
        int rc = be->ops->linear_prepare(be, &l, &err);
        CHECKF(rc == 0, "%s: prepare on %s: %s", what, rf_backend_name(be), err.msg);
        l.w.data = dw.t.data;
        if (bias)
            l.b.data = db.t.data;
        /* the patch tokens: rows 1.. of [B, 1 + Np, E] inside rows of E + pad */
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
                                s += fabs(v * w[e * kdim + (c * P + ky) * P + kx]);
                            }
                    s = s * sk + (bias ? fabs(b[e]) : 0);
                }
                mag[(z * tokens + t) * es + e] = s;
            }
    compare(2, what, outs[0], outs[1], y0, mag, ny);
    free(img), free(w), free(b), free(y0), free(outs[0]), free(outs[1]), free(mag);
}

/* ---- shape errors ------------------------------------------------------- */

static int one_line(const rf_err *e)
{
    return e->msg[0] && strchr(e->msg, '\n') == NULL;
}

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
    float *w = falloc(N * K), *x = falloc(M * K), *b = falloc(N);
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
            rc = finish_pass(vk, vk->ops->linear(vk, &dy.t, &dx.t, &l, RF_ACT_GELU_ERF, NULL, &err), &err);
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
    printf("vulkan device: %s\n", rf_backend_name(vk));

    /* linear */
    const int64_t Ms[] = {1, 3, 17, 197};
    const int64_t KN[][2] = {{24, 40}, {100, 72}, {16, 64}, {1, 5}, {130, 1}, {64, 129}};
    const rf_act acts[] = {RF_ACT_NONE, RF_ACT_GELU_ERF, RF_ACT_GELU_TANH, RF_ACT_TANH, RF_ACT_RELU};
    int variant = 0;
    for (size_t mi = 0; mi < 4; mi++)
        for (size_t s = 0; s < sizeof KN / sizeof KN[0]; s++)
            for (int bias = 0; bias <= 1; bias++)
                for (size_t a = 0; a < 5; a++)
                    for (int res = RES_NONE; res <= RES_ALIAS; res++) {
                        variant++;
                        linear_case(Ms[mi], KN[s][0], KN[s][1], bias, acts[a], res, variant % 3 ? 0 : 5,
                                    variant % 2 ? 0 : 3);
                    }
    for (size_t mi = 0; mi < 4; mi += 3) /* ViT-B qkv: M 1 and 197 */
        for (int res = RES_NONE; res <= RES_ALIAS; res += 2) {
            linear_case(Ms[mi], 768, 2304, 1, RF_ACT_NONE, res, 0, 0);
            linear_case(Ms[mi], 768, 2304, 1, RF_ACT_GELU_ERF, res, 7, 5);
        }
    linear_case(256 * 197, 40, 24, 1, RF_ACT_GELU_TANH, RES_SEPARATE, 3, 1); /* a batch of 256 images */

    /* matmul */
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

    /* patch_embed */
    for (int bias = 0; bias <= 1; bias++) {
        patch_case(1, 1, 28, 42, 14, 24, bias, 0);
        patch_case(2, 3, 42, 28, 14, 40, bias, 3);
        patch_case(1, 3, 32, 48, 16, 100, bias, 5);
        patch_case(2, 1, 16, 16, 16, 72, bias, 0);
        patch_case(2, 3, 224, 224, 16, 64, bias, 1);
    }

    bad_shapes();
    timing(197, 768, 2304, 3);

    if (verbose)
        for (int i = 0; i < 3; i++)
            printf("%-12s worst error/tolerance %.3f, worst abs error %.3g\n", op_names[i], worst_ratio[i],
                   worst_abs[i]);
    rf_backend_destroy(vk);
    rf_backend_destroy(cpu);
    return test_finish("test_vk_gemm");
}
