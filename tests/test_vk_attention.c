/*
 * Softmax, fused attention, embedding gather and bicubic resize of the Vulkan
 * backend against the CPU backend (itself checked against double-precision
 * references in test_ops), on random inputs. Vulkan must come up (lavapipe in
 * CI): a missing device fails the test, it never skips.
 *
 * Attention: q, k, v are views of one fused [B, T, 3*H*D] buffer (row stride
 * 3*H*D, or wider), the output a view with padded rows whose padding must
 * survive; T in {1, 3, 17, 65, 197}, (heads, head size) in (1,100), (2,20),
 * (3,8), (12,64), B 1 and 2, and the tile-shape edges (1,6), (4,33), (2,128),
 * (1,256); no mask, and masks where sequence b pads its tail (b % 3 == 0),
 * its front (b % 3 == 1: with T = 65 and 197 whole key tiles are masked
 * before the first live key) or every key (b % 3 == 2: the output rows must
 * be exactly 0). Inputs of range 3 and 12 make scores of tens to hundreds,
 * past expf's range: the running max and the rescaling must be right.
 *
 * Tolerances (EPS = FLT_EPSILON). Both backends compute in fp32 with the same
 * formulas in a different order, so the difference is the sum of two fp32
 * roundings, measured against the magnitude of what was summed:
 *   - attention: an output is a convex combination of v values, so errors
 *     are measured against vmax = max |v|. Summation of T weighted values and
 *     the online rescaling give a few ulps (1e-5 is > 40 EPS: the "about
 *     1e-5 relative" budget). A score is a D-term dot product off by about
 *     sqrt(D) EPS S, where S = scale * max_j sum_d |q_d k_d|, and exp's
 *     relative error grows with its argument (Vulkan allows 3 + 2|x| ulp,
 *     |x| <= 2S): both become relative errors of the weights, so we allow
 *         (1e-5 + 16 EPS (sqrt(D) + 4) S) * vmax.
 *     A wrong head, key or value row is off by ~0.1 * vmax.
 *   - softmax: with s = scale * x and m the row max, relative to the value
 *     16 EPS (2 + |s| + |s - m|) (twice test_ops' bound: two backends).
 *     Masked entries and fully masked rows must be exactly 0 on both.
 *   - embedding and identity resizes copy values: exact.
 *   - bicubic: 16 taps whose weights sum to 1 (sum |w| <= 1.6). The CPU
 *     evaluates them in double; the shader in fp32, from the exact fraction
 *     and in factored forms without cancellation (a few ulps each), and sums
 *     16 products: 16 EPS * max |x|. (The textbook Horner forms in fp32 are
 *     off by ~10 EPS * max |x|: terms up to 6 cancel into weights near 0.)
 *
 * Seen on lavapipe (worst error / tolerance): attention 0.008 (~1e-7 vmax)
 * for inputs in [-1, 1] and 0.001 (~6e-6 vmax) for range 12, softmax 0.11,
 * bicubic 0.17. RADFUSE_TEST_VERBOSE=1 prints the ratio per case.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/vk_device.h"
#include "tests/testutil.h"

#define EPS ((double)FLT_EPSILON)
#define SENTINEL 12345.0f

static rf_backend *cpu, *vk;
static int verbose;
static uint64_t seed = 1;

/* A 3-D view at offset elements (float or i32) into base: a host pointer or a
 * device address, the arithmetic is the same. */
static rf_tensor view3(void *base, int64_t offset, int64_t d0, int64_t d1, int64_t d2, int64_t s0, int64_t s1,
                       int64_t s2)
{
    rf_tensor t = {.dtype = RF_F32, .ndim = 3, .shape = {d0, d1, d2}, .stride = {s0, s1, s2},
                   .data = (void *)((uintptr_t)base + (uintptr_t)(offset * 4))};
    return t;
}

static rf_tensor mask2(void *base, int64_t B, int64_t T)
{
    int64_t shape[2] = {B, T};
    return rf_tensor_make(RF_I32, base, 2, shape);
}

/* A flat device buffer of n elements (f32 or i32) holding host data (or not). */
static test_dev dev_flat(rf_dtype dt, int64_t n, const void *host)
{
    test_dev d;
    int64_t shape[1] = {n};
    if (test_dev_alloc(vk, &d, dt, 1, shape, host)) {
        fprintf(stderr, "FATAL: cannot allocate %lld elements on %s\n", (long long)n, rf_backend_name(vk));
        exit(1);
    }
    return d;
}

static void dev_read(test_dev *d, void *host)
{
    CHECK(test_dev_read(vk, &d->t, host) == 0);
}

/* Worst error / tolerance ratio of a case; NaN counts as infinitely bad. */
typedef struct worst {
    double ratio, got, want;
    int64_t at;
} worst;

static void note(worst *w, int64_t at, double got, double want, double tol)
{
    double r = fabs(got - want) / tol;
    if (r != r)
        r = INFINITY;
    if (r > w->ratio) {
        *w = (worst){r, got, want, at};
    }
}

static void report(const worst *w, const char *what)
{
    CHECKF(w->ratio <= 1.0, "%s: error %.3g x tolerance at %lld (vulkan %.9g, cpu %.9g)", what, w->ratio,
           (long long)w->at, w->got, w->want);
    if (verbose)
        printf("  %-60s worst error/tolerance %.3g\n", what, w->ratio);
}

/* Records one operation in a pass of its own on be. */
#define RUN(be, call)                                                                                        \
    do {                                                                                                     \
        rf_err err_ = {{0}};                                                                                 \
        int rc_ = (be)->ops->begin((be), &err_);                                                             \
        if (!rc_) {                                                                                          \
            rf_err *err = &err_;                                                                             \
            rc_ = test_end_pass((be), (call), &err_);                                                        \
        }                                                                                                    \
        CHECKF(rc_ == 0, "%s: %s: %s", rf_backend_name(be), #call, err_.msg);                               \
    } while (0)

/* ---- attention ---------------------------------------------------------- */

static void attention_case(int64_t B, int64_t T, int heads, int64_t D, int masked, int64_t qkv_pad, int64_t out_pad,
                           float range)
{
    char what[160];
    snprintf(what, sizeof what, "attention B=%lld T=%lld heads=%d D=%lld mask=%d pads=%lld,%lld range=%g",
             (long long)B, (long long)T, heads, (long long)D, masked, (long long)qkv_pad, (long long)out_pad,
             range);
    const int64_t HD = heads * D, ld = 3 * HD + qkv_pad, old = HD + out_pad;
    const int64_t nqkv = B * T * ld, nout = B * T * old;
    float *qkv = test_falloc(nqkv), *back = test_falloc(nqkv);
    float *out_cpu = test_falloc(nout), *out_vk = test_falloc(nout);
    int32_t *mask = test_ialloc(B * T);
    test_fill_random(qkv, nqkv, seed++, range);
    test_attention_mask(mask, B, T, masked);
    test_fill_const(out_cpu, nout, SENTINEL);
    test_fill_const(out_vk, nout, SENTINEL);
    const float scale = (float)(1.0 / sqrt((double)D));

    /* CPU: host memory */
    rf_tensor cq = view3(qkv, 0, B, T, HD, T * ld, ld, 1), ck = view3(qkv, HD, B, T, HD, T * ld, ld, 1),
              cv = view3(qkv, 2 * HD, B, T, HD, T * ld, ld, 1), co = view3(out_cpu, 0, B, T, HD, T * old, old, 1),
              cm = mask2(mask, B, T);
    RUN(cpu, cpu->ops->attention(cpu, &co, &cq, &ck, &cv, masked ? &cm : NULL, heads, scale, err));

    /* Vulkan: the same views of device buffers */
    test_dev dqkv = dev_flat(RF_F32, nqkv, qkv), dout = dev_flat(RF_F32, nout, out_vk),
             dmask = dev_flat(RF_I32, B * T, mask);
    void *a = dqkv.t.data;
    rf_tensor vq = view3(a, 0, B, T, HD, T * ld, ld, 1), vk_ = view3(a, HD, B, T, HD, T * ld, ld, 1),
              vv = view3(a, 2 * HD, B, T, HD, T * ld, ld, 1), vo = view3(dout.t.data, 0, B, T, HD, T * old, old, 1),
              vm = mask2(dmask.t.data, B, T);
    RUN(vk, vk->ops->attention(vk, &vo, &vq, &vk_, &vv, masked ? &vm : NULL, heads, scale, err));
    dev_read(&dout, out_vk);
    dev_read(&dqkv, back);
    CHECKF(memcmp(back, qkv, (size_t)nqkv * sizeof *qkv) == 0, "%s: q, k, v changed", what);

    worst w = {0};
    int64_t bad_masked = 0, bad_pad = 0;
    for (int64_t b = 0; b < B; b++)
        for (int h = 0; h < heads; h++) {
            double vmax = 0;
            for (int64_t j = 0; j < T; j++)
                for (int64_t d = 0; d < D; d++)
                    vmax = fmax(vmax, fabs(qkv[(b * T + j) * ld + 2 * HD + h * D + d]));
            int any_live = 0;
            for (int64_t j = 0; j < T; j++)
                any_live |= !masked || mask[b * T + j] != 0;
            for (int64_t i = 0; i < T; i++) {
                const float *q = qkv + (b * T + i) * ld + h * D;
                double S = 0;
                for (int64_t j = 0; j < T; j++) {
                    const float *k = qkv + (b * T + j) * ld + HD + h * D;
                    double sa = 0;
                    for (int64_t d = 0; d < D; d++)
                        sa += fabs((double)q[d] * k[d]);
                    S = fmax(S, sa * scale);
                }
                double tol = (1e-5 + 16 * EPS * (sqrt((double)D) + 4) * S) * vmax;
                for (int64_t d = 0; d < D; d++) {
                    int64_t at = (b * T + i) * old + h * D + d;
                    if (!any_live)
                        bad_masked += out_vk[at] != 0.0f || out_cpu[at] != 0.0f;
                    else
                        note(&w, at, out_vk[at], out_cpu[at], tol);
                }
            }
        }
    for (int64_t r = 0; r < B * T; r++)
        for (int64_t c = HD; c < old; c++)
            bad_pad += out_vk[r * old + c] != SENTINEL;
    report(&w, what);
    CHECKF(bad_masked == 0, "%s: %lld outputs of fully masked rows are not 0", what, (long long)bad_masked);
    CHECKF(bad_pad == 0, "%s: %lld padding values overwritten", what, (long long)bad_pad);
    test_dev_free(vk, &dqkv);
    test_dev_free(vk, &dout);
    test_dev_free(vk, &dmask);
    free(qkv), free(out_cpu), free(out_vk), free(back), free(mask);
}

static void test_attention(void)
{
    static const int64_t Ts[] = {1, 3, 17, 65, 197};
    static const struct {
        int heads;
        int64_t D;
    } hd[] = {{1, 100}, {2, 20}, {3, 8}, {12, 64}};
    for (size_t ti = 0; ti < 5; ti++)
        for (size_t hi = 0; hi < 4; hi++)
            for (int64_t B = 1; B <= 2; B++) {
                attention_case(B, Ts[ti], hd[hi].heads, hd[hi].D, 0, 0, 0, 1.0f);
                attention_case(B, Ts[ti], hd[hi].heads, hd[hi].D, 1, 0, 0, 1.0f);
            }
    /* every mask kind in one batch, padded rows, large scores (online rescaling) */
    for (size_t ti = 0; ti < 5; ti++)
        for (size_t hi = 0; hi < 4; hi++)
            attention_case(3, Ts[ti], hd[hi].heads, hd[hi].D, 1, 5, 3, 3.0f);
    /* head sizes at the edges of the tile shapes */
    attention_case(2, 65, 1, 6, 1, 0, 1, 1.0f);
    attention_case(3, 33, 2, 128, 1, 2, 0, 1.0f);
    attention_case(2, 70, 1, 256, 1, 0, 0, 2.0f);
    attention_case(1, 40, 4, 33, 0, 1, 0, 1.0f);
    /* scores past expf's range (|s| ~ 100): without the running max it overflows */
    attention_case(3, 65, 2, 64, 1, 0, 0, 12.0f);
    attention_case(1, 197, 1, 64, 0, 0, 0, 12.0f);
}

/* ---- softmax ------------------------------------------------------------ */

static void softmax_case(int64_t B, int64_t R, int64_t C, int masked, float scale, float range, int alias)
{
    char what[160];
    snprintf(what, sizeof what, "softmax B=%lld R=%lld C=%lld mask=%d scale=%g range=%g alias=%d", (long long)B,
             (long long)R, (long long)C, masked, scale, range, alias);
    const int64_t s1 = C + 3, s0 = R * s1 + 2, t1 = alias ? s1 : C + 1, t0 = alias ? s0 : R * t1 + 4;
    float *x = test_falloc(B * s0);
    float *y_cpu = test_falloc(alias ? B * s0 : B * t0), *y_vk = test_falloc(alias ? B * s0 : B * t0);
    test_fill_random(x, B * s0, seed++, range);
    int32_t *mask = test_softmax_mask(B, C, seed++);
    int64_t ny = alias ? B * s0 : B * t0;
    if (alias) {
        memcpy(y_cpu, x, (size_t)ny * sizeof *x);
    } else {
        test_fill_const(y_cpu, ny, SENTINEL);
    }
    test_fill_const(y_vk, ny, SENTINEL);

    rf_tensor cx = view3(alias ? y_cpu : x, 0, B, R, C, s0, s1, 1), cy = view3(y_cpu, 0, B, R, C, t0, t1, 1);
    rf_tensor cm = mask2(mask, B, C);
    RUN(cpu, cpu->ops->softmax(cpu, &cy, &cx, masked ? &cm : NULL, scale, err));

    test_dev dx = dev_flat(RF_F32, B * s0, x), dy = dev_flat(RF_F32, ny, y_vk), dm = dev_flat(RF_I32, B * C, mask);
    rf_tensor vx = view3(dx.t.data, 0, B, R, C, s0, s1, 1),
              vy = alias ? vx : view3(dy.t.data, 0, B, R, C, t0, t1, 1), vm = mask2(dm.t.data, B, C);
    RUN(vk, vk->ops->softmax(vk, &vy, &vx, masked ? &vm : NULL, scale, err));
    dev_read(alias ? &dx : &dy, y_vk);

    worst w = {0};
    int64_t bad_masked = 0, bad_pad = 0;
    for (int64_t b = 0; b < B; b++)
        for (int64_t r = 0; r < R; r++) {
            const float *xr = x + b * s0 + r * s1;
            const int32_t *mk = masked ? mask + b * C : NULL;
            double m = -INFINITY;
            for (int64_t j = 0; j < C; j++)
                if (!mk || mk[j])
                    m = fmax(m, (double)scale * xr[j]);
            for (int64_t j = 0; j < C; j++) {
                int64_t at = b * t0 + r * t1 + j;
                if (mk && !mk[j]) {
                    bad_masked += y_vk[at] != 0.0f || y_cpu[at] != 0.0f;
                    continue;
                }
                double s = (double)scale * xr[j];
                note(&w, at, y_vk[at], y_cpu[at], 16 * EPS * (2 + fabs(s) + fabs(s - m)) * y_cpu[at] + 1e-37);
            }
        }
    if (!alias) { /* everything outside the view keeps its sentinel */
        for (int64_t i = 0; i < ny; i++) {
            int64_t b = i / t0, rest = i % t0, r = rest / t1, c = rest % t1;
            if (b >= B || r >= R || c >= C)
                bad_pad += y_vk[i] != SENTINEL;
        }
        float *xb = test_falloc(B * s0);
        dev_read(&dx, xb);
        CHECKF(memcmp(xb, x, (size_t)(B * s0) * sizeof *x) == 0, "%s: x changed", what);
        free(xb);
    }
    report(&w, what);
    CHECKF(bad_masked == 0, "%s: %lld masked entries are not 0", what, (long long)bad_masked);
    CHECKF(bad_pad == 0, "%s: %lld values outside the output view overwritten", what, (long long)bad_pad);
    test_dev_free(vk, &dx);
    test_dev_free(vk, &dy);
    test_dev_free(vk, &dm);
    free(x), free(y_cpu), free(y_vk), free(mask);
}

static void test_softmax(void)
{
    static const int64_t cols[] = {1, 3, 17, 197, 600};
    test_softmax_grid(cols, sizeof cols / sizeof cols[0], softmax_case);
}

/* ---- embedding ---------------------------------------------------------- */

static void embedding_case(int64_t rows, int64_t cols, int64_t n, int64_t pad)
{
    char what[120];
    snprintf(what, sizeof what, "embedding rows=%lld cols=%lld n=%lld pad=%lld", (long long)rows, (long long)cols,
             (long long)n, (long long)pad);
    const int64_t ts = cols + pad, ys = cols + 2;
    float *table = test_falloc(rows * ts), *y_cpu = test_falloc(n * ys), *y_vk = test_falloc(n * ys);
    int32_t *ids = test_ialloc(n);
    test_fill_random(table, rows * ts, seed++, 2.0f);
    for (int64_t i = 0; i < n; i++)
        ids[i] = (int32_t)((i * 7919 + 3) % rows); /* repeats when n > rows */
    if (n > 1)
        ids[n - 1] = (int32_t)(rows - 1);
    test_fill_const(y_cpu, n * ys, SENTINEL);
    test_fill_const(y_vk, n * ys, SENTINEL);
    int64_t tshape[2] = {rows, cols}, yshape[2] = {n, cols}, ishape[1] = {n};
    rf_tensor ct = rf_tensor_make(RF_F32, table, 2, tshape), cy = rf_tensor_make(RF_F32, y_cpu, 2, yshape),
              ci = rf_tensor_make(RF_I32, ids, 1, ishape);
    ct.stride[0] = ts;
    cy.stride[0] = ys;
    RUN(cpu, cpu->ops->embedding(cpu, &cy, &ct, &ci, err));
    test_dev dt = dev_flat(RF_F32, rows * ts, table), dy = dev_flat(RF_F32, n * ys, y_vk),
             di = dev_flat(RF_I32, n, ids);
    rf_tensor vt = ct, vy = cy, vi = ci;
    vt.data = dt.t.data;
    vy.data = dy.t.data;
    vi.data = di.t.data;
    RUN(vk, vk->ops->embedding(vk, &vy, &vt, &vi, err));
    dev_read(&dy, y_vk);
    CHECKF(memcmp(y_vk, y_cpu, (size_t)(n * ys) * sizeof *y_vk) == 0, "%s: differs from the CPU backend", what);
    if (verbose)
        printf("  %-60s exact\n", what);
    test_dev_free(vk, &dt);
    test_dev_free(vk, &dy);
    test_dev_free(vk, &di);
    free(table), free(y_cpu), free(y_vk), free(ids);
}

/* Ids outside the table cannot be checked on the device: they give zero rows
 * and nothing outside the table is read. */
static void embedding_out_of_range(void)
{
    const int64_t rows = 5, cols = 3, n = 4;
    float table[15], y[12];
    test_fill_random(table, 15, seed++, 1.0f);
    int32_t ids[4] = {2, -1, 5, 4};
    int64_t tshape[2] = {rows, cols}, yshape[2] = {n, cols}, ishape[1] = {n};
    test_dev dt = dev_flat(RF_F32, rows * cols, table), dy = dev_flat(RF_F32, n * cols, NULL),
             di = dev_flat(RF_I32, n, ids);
    rf_tensor vt = rf_tensor_make(RF_F32, dt.t.data, 2, tshape), vy = rf_tensor_make(RF_F32, dy.t.data, 2, yshape),
              vi = rf_tensor_make(RF_I32, di.t.data, 1, ishape);
    RUN(vk, vk->ops->embedding(vk, &vy, &vt, &vi, err));
    dev_read(&dy, y);
    int ok = 1;
    for (int c = 0; c < cols; c++)
        ok &= y[c] == table[2 * cols + c] && y[cols + c] == 0.0f && y[2 * cols + c] == 0.0f &&
              y[3 * cols + c] == table[4 * cols + c];
    CHECKF(ok, "embedding: out-of-range ids must give zero rows");
    test_dev_free(vk, &dt);
    test_dev_free(vk, &dy);
    test_dev_free(vk, &di);
}

/* ---- bicubic interpolation ---------------------------------------------- */

/* x [C, H, W] at x_off with strides xs -> y [C, H2, W2] with strides ys. */
static void interp_case(const char *name, int64_t C, int64_t H, int64_t W, int64_t H2, int64_t W2, int64_t x_off,
                        const int64_t xs[3], const int64_t ys[3])
{
    char what[160];
    snprintf(what, sizeof what, "interp_bicubic %s C=%lld %lldx%lld -> %lldx%lld", name, (long long)C, (long long)H,
             (long long)W, (long long)H2, (long long)W2);
    int64_t nx = x_off + (C - 1) * xs[0] + (H - 1) * xs[1] + (W - 1) * xs[2] + 1;
    int64_t ny = (C - 1) * ys[0] + (H2 - 1) * ys[1] + (W2 - 1) * ys[2] + 1;
    float *x = test_falloc(nx), *y_cpu = test_falloc(ny), *y_vk = test_falloc(ny);
    test_fill_random(x, nx, seed++, 3.0f);
    test_fill_const(y_cpu, ny, SENTINEL);
    test_fill_const(y_vk, ny, SENTINEL);
    double xmax = 0;
    for (int64_t i = 0; i < nx; i++)
        xmax = fmax(xmax, fabs(x[i]));
    rf_tensor cx = view3(x, x_off, C, H, W, xs[0], xs[1], xs[2]), cy = view3(y_cpu, 0, C, H2, W2, ys[0], ys[1], ys[2]);
    RUN(cpu, cpu->ops->interp_bicubic(cpu, &cy, &cx, err));
    test_dev dx = dev_flat(RF_F32, nx, x), dy = dev_flat(RF_F32, ny, y_vk);
    rf_tensor vx = view3(dx.t.data, x_off, C, H, W, xs[0], xs[1], xs[2]),
              vy = view3(dy.t.data, 0, C, H2, W2, ys[0], ys[1], ys[2]);
    RUN(vk, vk->ops->interp_bicubic(vk, &vy, &vx, err));
    dev_read(&dy, y_vk);
    const double tol = (H == H2 && W == W2) ? 0.0 : 16 * EPS * xmax;
    worst w = {0};
    int64_t bad = 0;
    for (int64_t i = 0; i < ny; i++) {
        if (y_cpu[i] == SENTINEL) /* outside the view (the random data never hits it) */
            bad += y_vk[i] != SENTINEL;
        else if (tol == 0.0)
            bad += y_vk[i] != y_cpu[i];
        else
            note(&w, i, y_vk[i], y_cpu[i], tol);
    }
    report(&w, what);
    CHECKF(bad == 0, "%s: %lld values differ (exact copies or untouched padding expected)", what, (long long)bad);
    test_dev_free(vk, &dx);
    test_dev_free(vk, &dy);
    free(x), free(y_cpu), free(y_vk);
}

static void test_interp(void)
{
    /* channels-first, contiguous */
    {
        int64_t xs[3] = {16, 4, 1}, ys[3] = {30, 5, 1};
        interp_case("4x4->6x5", 3, 4, 4, 6, 5, 0, xs, ys);
    }
    {
        int64_t xs[3] = {49, 7, 1}, ys[3] = {12, 4, 1};
        interp_case("7x7->3x4", 2, 7, 7, 3, 4, 0, xs, ys);
    }
    {
        int64_t xs[3] = {30, 6, 1}, ys[3] = {31, 6, 1}; /* identity into a padded output */
        interp_case("identity", 3, 5, 6, 5, 6, 0, xs, ys);
    }
    {
        int64_t xs[3] = {15, 1, 5}, ys[3] = {1, 9 * 4, 4}; /* odd strides both sides */
        interp_case("strided 5x3->9x7", 3, 5, 3, 9, 7, 0, xs, ys);
    }
    /* the encoder's position embeddings: [grid*grid, C] rows after the CLS row
     * read as channels-first [C, grid_h, grid_w], written the same way */
    {
        const int64_t C = 64, gh = 4, gw = 4, oh = 6, ow = 5;
        int64_t xs[3] = {1, gw * C, C}, ys[3] = {1, ow * C, C};
        interp_case("channels-last pos", C, gh, gw, oh, ow, C, xs, ys);
    }
    {
        const int64_t C = 64, g = 37, o = 16;
        int64_t xs[3] = {1, g * C, C}, ys[3] = {1, o * C, C};
        interp_case("channels-last pos down", C, g, g, o, o, C, xs, ys);
    }
    {
        int64_t xs[3] = {1, 1, 1}, ys[3] = {4, 2, 1};
        interp_case("1x1->2x2", 1, 1, 1, 2, 2, 0, xs, ys);
    }
}

/* ---- shape errors --------------------------------------------------------- */

#define EXPECT_RC(want, call)                                                                                 \
    do {                                                                                                      \
        memset(&err, 0, sizeof err);                                                                          \
        int rc_ = (call);                                                                                     \
        CHECKF(rc_ == (want) && err.msg[0] && !strchr(err.msg, '\n'), "%s returned %d (%s), expected %d",     \
               #call, rc_, err.msg, (want));                                                                  \
    } while (0)

static void test_errors(void)
{
    rf_err err;
    const int64_t B = 2, T = 17, HD = 24, ld = 3 * HD;
    test_dev buf = dev_flat(RF_F32, 4096, NULL), ib = dev_flat(RF_I32, 256, NULL);
    void *a = buf.t.data, *ia = ib.t.data;
    CHECK(vk->ops->begin(vk, &err) == 0);

    /* attention */
    rf_tensor q = view3(a, 0, B, T, HD, T * ld, ld, 1), k = view3(a, HD, B, T, HD, T * ld, ld, 1),
              v = view3(a, 2 * HD, B, T, HD, T * ld, ld, 1), o = view3(a, 0, B, T, HD, T * HD, HD, 1);
    rf_tensor k_t = view3(a, HD, B, T - 1, HD, T * ld, ld, 1), v_w = view3(a, 2 * HD, B, T, HD - 1, T * ld, ld, 1),
              o_b = view3(a, 0, 1, T, HD, T * HD, HD, 1), q_strided = view3(a, 0, B, T, HD, T * ld, ld, 2);
    rf_tensor q_2d = q;
    q_2d.ndim = 2;
    rf_tensor m_t = mask2(ia, B, T + 1), m_b = mask2(ia, B + 1, T), m_f = mask2(ia, B, T);
    m_f.dtype = RF_F32;
    EXPECT_RC(RF_EINVAL, vk->ops->attention(vk, &o, &q, &k, &v, NULL, 5, 0.5f, &err)); /* 24 % 5 */
    EXPECT_RC(RF_EINVAL, vk->ops->attention(vk, &o, &q, &k, &v, NULL, 0, 0.5f, &err));
    EXPECT_RC(RF_EINVAL, vk->ops->attention(vk, &o, &q, &k_t, &v, NULL, 2, 0.5f, &err));
    EXPECT_RC(RF_EINVAL, vk->ops->attention(vk, &o, &q, &k, &v_w, NULL, 2, 0.5f, &err));
    EXPECT_RC(RF_EINVAL, vk->ops->attention(vk, &o_b, &q, &k, &v, NULL, 2, 0.5f, &err));
    EXPECT_RC(RF_EINVAL, vk->ops->attention(vk, &o, &q_2d, &k, &v, NULL, 2, 0.5f, &err));
    EXPECT_RC(RF_EINVAL, vk->ops->attention(vk, &o, &q_strided, &k, &v, NULL, 2, 0.5f, &err));
    EXPECT_RC(RF_EINVAL, vk->ops->attention(vk, &o, &q, &k, &v, &m_t, 2, 0.5f, &err));
    EXPECT_RC(RF_EINVAL, vk->ops->attention(vk, &o, &q, &k, &v, &m_b, 2, 0.5f, &err));
    EXPECT_RC(RF_EINVAL, vk->ops->attention(vk, &o, &q, &k, &v, &m_f, 2, 0.5f, &err));
    /* a head wider than the shader's shared-memory tiles is refused, like the CPU's */
    rf_tensor wide = view3(a, 0, 1, 2, 600, 1200, 600, 1);
    EXPECT_RC(RF_EUNSUP, vk->ops->attention(vk, &wide, &wide, &wide, &wide, NULL, 1, 0.1f, &err));

    /* softmax */
    rf_tensor x = view3(a, 0, 2, 3, 17, 51, 17, 1), y = x;
    rf_tensor y_c = view3(a, 0, 2, 3, 18, 54, 18, 1), y_r = view3(a, 0, 2, 4, 17, 68, 17, 1),
              y_bt = view3(a, 0, 1, 3, 17, 51, 17, 1), x_s = view3(a, 0, 2, 3, 17, 102, 34, 2);
    rf_tensor sm_c = mask2(ia, 2, 18), sm_b = mask2(ia, 1, 17), sm_f = mask2(ia, 2, 17), x_2d = x;
    sm_f.dtype = RF_F32;
    x_2d.ndim = 2;
    EXPECT_RC(RF_EINVAL, vk->ops->softmax(vk, &y_c, &x, NULL, 1.0f, &err));
    EXPECT_RC(RF_EINVAL, vk->ops->softmax(vk, &y_r, &x, NULL, 1.0f, &err));
    EXPECT_RC(RF_EINVAL, vk->ops->softmax(vk, &y_bt, &x, NULL, 1.0f, &err));
    EXPECT_RC(RF_EINVAL, vk->ops->softmax(vk, &y, &x, &sm_c, 1.0f, &err));
    EXPECT_RC(RF_EINVAL, vk->ops->softmax(vk, &y, &x, &sm_b, 1.0f, &err));
    EXPECT_RC(RF_EINVAL, vk->ops->softmax(vk, &y, &x, &sm_f, 1.0f, &err));
    EXPECT_RC(RF_EINVAL, vk->ops->softmax(vk, &x_2d, &x_2d, NULL, 1.0f, &err));
    EXPECT_RC(RF_EINVAL, vk->ops->softmax(vk, &x_s, &x_s, NULL, 1.0f, &err));

    /* embedding */
    int64_t ts[2] = {10, 8}, ys2[2] = {4, 8}, yw[2] = {4, 9}, yn[2] = {5, 8}, is[1] = {4}, is2[2] = {2, 2};
    rf_tensor table = rf_tensor_make(RF_F32, a, 2, ts), ey = rf_tensor_make(RF_F32, a, 2, ys2),
              ey_w = rf_tensor_make(RF_F32, a, 2, yw), ey_n = rf_tensor_make(RF_F32, a, 2, yn),
              ids = rf_tensor_make(RF_I32, ia, 1, is), ids_f = rf_tensor_make(RF_F32, ia, 1, is),
              ids_s = rf_tensor_make(RF_I32, ia, 2, is2), table_3d = x;
    ids_s.stride[0] = 3; /* not contiguous */
    EXPECT_RC(RF_EINVAL, vk->ops->embedding(vk, &ey_w, &table, &ids, &err));
    EXPECT_RC(RF_EINVAL, vk->ops->embedding(vk, &ey_n, &table, &ids, &err));
    EXPECT_RC(RF_EINVAL, vk->ops->embedding(vk, &ey, &table, &ids_f, &err));
    EXPECT_RC(RF_EINVAL, vk->ops->embedding(vk, &ey, &table, &ids_s, &err));
    EXPECT_RC(RF_EINVAL, vk->ops->embedding(vk, &ey, &table_3d, &ids, &err));

    /* interp_bicubic */
    rf_tensor ix = view3(a, 0, 3, 4, 4, 16, 4, 1), iy = view3(a, 0, 3, 6, 5, 30, 5, 1),
              iy_c = view3(a, 0, 2, 6, 5, 30, 5, 1), iy_e = view3(a, 0, 3, 0, 5, 30, 5, 1), ix_2d = ix;
    ix_2d.ndim = 2;
    EXPECT_RC(RF_EINVAL, vk->ops->interp_bicubic(vk, &iy_c, &ix, &err));
    EXPECT_RC(RF_EINVAL, vk->ops->interp_bicubic(vk, &iy_e, &ix, &err));
    EXPECT_RC(RF_EINVAL, vk->ops->interp_bicubic(vk, &iy, &ix_2d, &err));

    CHECK(vk->ops->end(vk, 0, &err) == 0);
    test_dev_free(vk, &buf);
    test_dev_free(vk, &ib);
}

/* Several operations in one pass, each reading what the previous wrote. */
static void test_chain(void)
{
    const int64_t B = 2, T = 9, H = 2, D = 16, HD = H * D, ld = 3 * HD;
    float *qkv = test_falloc(B * T * ld), *out_cpu = test_falloc(B * T * HD), *out_vk = test_falloc(B * T * HD);
    test_fill_random(qkv, B * T * ld, seed++, 1.0f);
    /* CPU: attention, then softmax over the output in place */
    rf_tensor cq = view3(qkv, 0, B, T, HD, T * ld, ld, 1), ck = view3(qkv, HD, B, T, HD, T * ld, ld, 1),
              cv = view3(qkv, 2 * HD, B, T, HD, T * ld, ld, 1), co = view3(out_cpu, 0, B, T, HD, T * HD, HD, 1);
    RUN(cpu, cpu->ops->attention(cpu, &co, &cq, &ck, &cv, NULL, (int)H, 0.25f, err) ||
                 cpu->ops->softmax(cpu, &co, &co, NULL, 3.0f, err));
    test_dev dqkv = dev_flat(RF_F32, B * T * ld, qkv), dout = dev_flat(RF_F32, B * T * HD, NULL);
    void *a = dqkv.t.data;
    rf_tensor vq = view3(a, 0, B, T, HD, T * ld, ld, 1), vk_ = view3(a, HD, B, T, HD, T * ld, ld, 1),
              vv = view3(a, 2 * HD, B, T, HD, T * ld, ld, 1), vo = view3(dout.t.data, 0, B, T, HD, T * HD, HD, 1);
    RUN(vk, vk->ops->attention(vk, &vo, &vq, &vk_, &vv, NULL, (int)H, 0.25f, err) ||
                vk->ops->softmax(vk, &vo, &vo, NULL, 3.0f, err));
    dev_read(&dout, out_vk);
    worst w = {0};
    for (int64_t i = 0; i < B * T * HD; i++)
        note(&w, i, out_vk[i], out_cpu[i], 1e-5 * fabs(out_cpu[i]));
    report(&w, "attention then softmax in one pass");
    test_dev_free(vk, &dqkv);
    test_dev_free(vk, &dout);
    free(qkv), free(out_cpu), free(out_vk);
}

int main(void)
{
    verbose = test_verbose();
    test_backends_create(&cpu, &vk);
    test_attention();
    test_softmax();
    for (int64_t rows = 1; rows <= 300; rows *= 7)
        for (int64_t cols = 1; cols <= 800; cols = cols * 9 + 3)
            embedding_case(rows, cols, rows * 2 + 1, cols % 3);
    embedding_out_of_range();
    test_interp();
    test_errors();
    test_chain();
    rf_backend_destroy(vk);
    rf_backend_destroy(cpu);
    return test_finish("test_vk_attention");
}
