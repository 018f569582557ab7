/*
 * Every operation of the CPU backend's rf_backend_ops table against plain
 * reference loops written here in double precision: linear, matmul,
 * layernorm, activation, add, scale_add, softmax, attention, patch_embed,
 * embedding and interp_bicubic, plus the shape checks of each (RF_EINVAL with
 * a one-line message, never a crash). The whole suite runs on backends with
 * pools of 1, 2 and 3 threads.
 *
 * Shapes are the awkward ones a transformer meets: token counts 1, 3, 17 and
 * 197, widths that are not multiples of the 16-float SIMD width (24, 40, 72,
 * 100), 1, 2, 3 and 12 heads, batches of 1 to 3, row strides wider than the
 * rows. Output buffers are pre-filled with a sentinel that must survive
 * everywhere outside the output view, and inputs must come back unchanged.
 *
 * Tolerances (EPS = FLT_EPSILON = 2^-23, one ulp of 1.0f). The backend
 * computes in fp32; the reference in double from the same fp32 inputs, so
 * the difference is the backend's own rounding, bounded relative to the
 * magnitude of what was summed (not of the result, which may cancel):
 *   - dot products (linear, matmul, patch_embed): an fp32 sum of K products
 *     in any order is off by about sqrt(K) * EPS * sum_k |a_k b_k|; we allow
 *     8 * EPS * (sqrt(K) * sum_k |a_k b_k| + |bias| + |result| + |residual|).
 *     A missing or doubled product (~0.25 here) is hundreds of times that.
 *   - activations: GELU and tanh use rational approximations in fp32;
 *     they must agree with libm's erf/tanh evaluated in double to 1e-6
 *     absolute plus 2 EPS relative (the fp32 rounding of outputs up to 10,
 *     half an ulp of 10 being 4.8e-7), plus EPS |x| for GELU, whose
 *     1 + erf cancels for negative x (see act_abs_tol).
 *   - elementwise add / scale_add: correctly rounded fp32 arithmetic, so
 *     within EPS of the result (plus EPS * |x*gamma| for the product).
 *   - layernorm: see layernorm_case (the rounding of the row mean to fp32 is
 *     amplified by 1/std for rows like 1000 + 0.01 noise).
 *   - softmax / attention: exp's relative error grows with the size of its
 *     argument; see those cases.
 *   - embedding and identity resizes copy values: exact.
 *
 * Set RADFUSE_TEST_VERBOSE=1 to print the worst error/tolerance ratio seen
 * per operation.
 */
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/backend.h"
#include "runtime/cpu_act.h"
#include "tests/testutil.h"

#define EPS ((double)FLT_EPSILON)
/* Marks memory outside an output view: it must come back untouched. */
#define SENTINEL 12345.0f

static rf_backend *g_be; /* the backend under test */
static int g_threads;
#define OPS (g_be->ops)

static uint64_t g_seed = 1;
static uint64_t next_seed(void)
{
    return g_seed++;
}

/* ---- allocation and views ---------------------------------------------- */

static float *fdup(const float *x, int64_t n)
{
    float *p = test_falloc(n);
    memcpy(p, x, (size_t)n * sizeof(float));
    return p;
}

/* 2-D f32 view of rows x cols with row stride ld. */
static rf_tensor v2(float *data, int64_t rows, int64_t cols, int64_t ld)
{
    int64_t shape[2] = {rows, cols};
    rf_tensor t = rf_tensor_make(RF_F32, data, 2, shape);
    t.stride[0] = ld;
    return t;
}

/* 3-D f32 view [d0, d1, d2] with strides (s0, s1, 1). */
static rf_tensor v3(float *data, int64_t d0, int64_t d1, int64_t d2, int64_t s0, int64_t s1)
{
    int64_t shape[3] = {d0, d1, d2};
    rf_tensor t = rf_tensor_make(RF_F32, data, 3, shape);
    t.stride[0] = s0;
    t.stride[1] = s1;
    return t;
}

static rf_tensor v1(float *data, int64_t n)
{
    return rf_tensor_make(RF_F32, data, 1, &n);
}

/* ---- comparison --------------------------------------------------------- */

/* Worst error / tolerance per operation, for the verbose summary. */
static struct {
    const char *op;
    double worst;
    int64_t elems;
} g_stats[16];

static void note_stat(const char *op, double ratio, int64_t n)
{
    for (size_t i = 0; i < sizeof g_stats / sizeof g_stats[0]; i++) {
        if (!g_stats[i].op)
            g_stats[i].op = op;
        if (strcmp(g_stats[i].op, op) == 0) {
            if (ratio > g_stats[i].worst)
                g_stats[i].worst = ratio;
            g_stats[i].elems += n;
            return;
        }
    }
}

/* Accumulates elementwise comparisons for one case; cmp_end is one check. */
typedef struct cmp {
    const char *op;
    char what[256];
    int64_t n, bad, worst_i;
    double worst, got, want, tol;
} cmp;

__attribute__((format(printf, 3, 4))) static void cmp_begin(cmp *c, const char *op,
                                                            const char *fmt, ...)
{
    memset(c, 0, sizeof *c);
    c->op = op;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->what, sizeof c->what, fmt, ap);
    va_end(ap);
}

static void cmp_add(cmp *c, float got, double want, double tol)
{
    double e = fabs((double)got - want);
    double r = e <= tol ? (tol > 0 ? e / tol : 0.0) : (tol > 0 && !isnan(e) ? e / tol : INFINITY);
    if (!(e <= tol))
        c->bad++;
    if (c->n == 0 || r > c->worst) {
        c->worst = r;
        c->worst_i = c->n;
        c->got = got;
        c->want = want;
        c->tol = tol;
    }
    c->n++;
}

static void cmp_end(cmp *c)
{
    note_stat(c->op, c->worst, c->n);
    CHECKF(c->n > 0 && c->bad == 0,
           "%s %s threads=%d: %lld of %lld elements out of tolerance; worst #%lld got %.9g want "
           "%.9g tol %.3g (%.3g x)",
           c->op, c->what, g_threads, (long long)c->bad, (long long)c->n, (long long)c->worst_i,
           c->got, c->want, c->tol, c->worst);
}

/* Checks that every element of buf[0, total) outside the view `out` (any
 * strides, up to 4-D) still holds SENTINEL. */
static void check_untouched(const float *buf, int64_t total, const rf_tensor *out, const char *what)
{
    char *in = test_xmalloc((size_t)total);
    memset(in, 0, (size_t)total);
    int64_t shape[4] = {1, 1, 1, 1}, stride[4] = {0, 0, 0, 0};
    for (int d = 0; d < out->ndim; d++) {
        shape[4 - out->ndim + d] = out->shape[d];
        stride[4 - out->ndim + d] = out->stride[d];
    }
    int64_t off = (const float *)out->data - buf, outside = 0;
    for (int64_t a = 0; a < shape[0]; a++)
        for (int64_t b = 0; b < shape[1]; b++)
            for (int64_t c = 0; c < shape[2]; c++)
                for (int64_t d = 0; d < shape[3]; d++) {
                    int64_t i = off + a * stride[0] + b * stride[1] + c * stride[2] + d * stride[3];
                    if (i < 0 || i >= total)
                        outside++;
                    else
                        in[i] = 1;
                }
    int64_t changed = 0;
    for (int64_t i = 0; i < total; i++)
        changed += !in[i] && buf[i] != SENTINEL;
    CHECKF(outside == 0 && changed == 0, "%s threads=%d: %lld padding elements changed", what,
           g_threads, (long long)changed);
    free(in);
}

static void check_unchanged(const float *now, const float *before, int64_t n, const char *what)
{
    CHECKF(memcmp(now, before, (size_t)n * sizeof(float)) == 0,
           "%s threads=%d: an input was modified", what, g_threads);
}

/* Expects `call` (which reports into ferr) to fail with code `want` and a
 * non-empty one-line message. */
#define EXPECT_RC(want, call)                                                                \
    do {                                                                                     \
        memset(&ferr, 0, sizeof ferr);                                                       \
        int rc_ = (call);                                                                    \
        CHECKF(rc_ == (want), "%s returned %d, expected %d (%s)", #call, rc_, (int)(want),   \
               ferr.msg);                                                                    \
        CHECKF(ferr.msg[0] != '\0' && strchr(ferr.msg, '\n') == NULL,                       \
               "%s: message '%s' is not one non-empty line", #call, ferr.msg);             \
    } while (0)

/* ---- reference activations --------------------------------------------- */

static const rf_act all_acts[] = {RF_ACT_NONE, RF_ACT_GELU_ERF, RF_ACT_GELU_TANH, RF_ACT_TANH,
                                  RF_ACT_RELU};
#define N_ACTS ((int)(sizeof all_acts / sizeof all_acts[0]))

/* The definitions, in double with libm. */
static double ref_act(double x, rf_act act)
{
    switch (act) {
    case RF_ACT_NONE: return x;
    case RF_ACT_GELU_ERF: return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
    case RF_ACT_GELU_TANH:
        return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
    case RF_ACT_TANH: return tanh(x);
    case RF_ACT_RELU: return x > 0 ? x : 0.0;
    }
    return NAN;
}

/* Absolute error allowed for the fp32 approximations of each activation. */
/* Absolute tolerance of act at input x. GELU's x/2 * (1 + erf(...)) cancels
 * for x << 0, where 1 + erf is tiny: a few ulp of 1 in fp32, scaled by |x|/2
 * (the last term; how many ulp depends on whether the compiler contracts
 * the polynomial into FMAs, e.g. not at -O0). */
static double act_abs_tol(rf_act act, double x)
{
    if (act == RF_ACT_NONE || act == RF_ACT_RELU)
        return 0.0;
    double gelu = act == RF_ACT_GELU_ERF || act == RF_ACT_GELU_TANH ? EPS * fabs(x) : 0.0;
    return 1e-6 + gelu;
}

/* ---- linear ------------------------------------------------------------- */

enum { RES_NONE, RES_SEPARATE, RES_ALIAS_Y, RES_MODES };
static const char *res_name[RES_MODES] = {"none", "separate", "alias-y"};

/* y = act(x W^T + b) + residual for x [M, K] (row stride K + 7), W [N, K],
 * over bias on/off x every act x residual none / separate / aliasing y. */
static void linear_case(int64_t M, int64_t K, int64_t N)
{
    rf_err err = {{0}};
    const int64_t ldx = K + 7, ldy = N + 5, ldr = N + 3;
    float *x = test_falloc(M * ldx), *w = test_falloc(N * K), *bias = test_falloc(N), *res = test_falloc(M * ldr);
    float *y = test_falloc(M * ldy);
    test_fill_random(x, M * ldx, next_seed(), 1.0f);
    test_fill_random(w, N * K, next_seed(), 1.0f);
    test_fill_random(bias, N, next_seed(), 1.0f);
    test_fill_random(res, M * ldr, next_seed(), 2.0f);
    float *x0 = fdup(x, M * ldx), *w0 = fdup(w, N * K), *res0 = fdup(res, M * ldr);

    double *dot = test_dalloc(M * N), *absum = test_dalloc(M * N);
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double s = 0, as = 0;
            for (int64_t k = 0; k < K; k++) {
                double p = (double)x[i * ldx + k] * (double)w[j * K + k];
                s += p;
                as += fabs(p);
            }
            dot[i * N + j] = s;
            absum[i * N + j] = as;
        }

    /* [0] without bias, [1] with; each through linear_prepare/release */
    rf_linear lin[2];
    int64_t wshape[2] = {N, K};
    int prepared[2];
    for (int hb = 0; hb < 2; hb++) {
        memset(&lin[hb], 0, sizeof lin[hb]);
        lin[hb].w = rf_tensor_make(RF_F32, w, 2, wshape);
        if (hb)
            lin[hb].b = v1(bias, N);
        int rc = OPS->linear_prepare(g_be, &lin[hb], &err);
        prepared[hb] = rc == 0 && lin[hb].prepared != NULL;
        CHECKF(prepared[hb], "linear_prepare [%lld,%lld]: %d %s", (long long)N, (long long)K, rc,
               err.msg);
    }

    for (int hb = 0; hb < 2; hb++) {
        if (!prepared[hb])
            continue;
        for (int ai = 0; ai < N_ACTS; ai++) {
            rf_act act = all_acts[ai];
            for (int rm = 0; rm < RES_MODES; rm++) {
                test_fill_const(y, M * ldy, SENTINEL);
                rf_tensor ty = v2(y, M, N, ldy), tx = v2(x, M, K, ldx), tr = v2(res, M, N, ldr);
                const rf_tensor *rp = NULL;
                if (rm == RES_SEPARATE)
                    rp = &tr;
                if (rm == RES_ALIAS_Y) {
                    for (int64_t i = 0; i < M; i++)
                        memcpy(y + i * ldy, res + i * ldr, (size_t)N * sizeof(float));
                    rp = &ty;
                }
                int rc = OPS->linear(g_be, &ty, &tx, &lin[hb], act, rp, &err);
                CHECKF(rc == 0, "linear: %s", err.msg);
                cmp c;
                cmp_begin(&c, "linear", "M=%lld K=%lld N=%lld bias=%d act=%s residual=%s",
                          (long long)M, (long long)K, (long long)N, hb, rf_act_name(act),
                          res_name[rm]);
                for (int64_t i = 0; i < M; i++)
                    for (int64_t j = 0; j < N; j++) {
                        double b = hb ? bias[j] : 0.0;
                        double pre = dot[i * N + j] + b;
                        double r = rm != RES_NONE ? res[i * ldr + j] : 0.0;
                        double want = ref_act(pre, act) + r;
                        /* the activation's slope is at most 1.13 */
                        double tol = 8 * EPS *
                                         (1.2 * (sqrt((double)K) * absum[i * N + j] + fabs(b) +
                                                 fabs(pre)) +
                                          fabs(want) + fabs(r)) +
                                     act_abs_tol(act, pre);
                        cmp_add(&c, y[i * ldy + j], want, tol);
                    }
                cmp_end(&c);
                check_untouched(y, M * ldy, &ty, "linear output padding");
            }
        }
    }
    check_unchanged(x, x0, M * ldx, "linear x");
    check_unchanged(w, w0, N * K, "linear weight");
    check_unchanged(res, res0, M * ldr, "linear residual");
    for (int hb = 0; hb < 2; hb++) {
        if (!prepared[hb])
            continue;
        OPS->linear_release(g_be, &lin[hb]);
        CHECK(lin[hb].prepared == NULL);
    }
    free(x);
    free(w);
    free(bias);
    free(res);
    free(y);
    free(x0);
    free(w0);
    free(res0);
    free(dot);
    free(absum);
}

static void linear_errors(void)
{
    rf_err ferr;
    const int64_t N = 24, K = 40, M = 3;
    float *w = test_falloc(N * K), *bias = test_falloc(N + 1), *x = test_falloc(M * (K + 1)),
          *y = test_falloc((M + 1) * (N + 1)), *r = test_falloc((M + 1) * (N + 1));
    test_fill_random(w, N * K, next_seed(), 1.0f);
    test_fill_random(bias, N + 1, next_seed(), 1.0f);
    test_fill_random(x, M * (K + 1), next_seed(), 1.0f);
    test_fill_random(r, (M + 1) * (N + 1), next_seed(), 1.0f);
    int64_t wshape[2] = {N, K};
    rf_linear lin;
    memset(&lin, 0, sizeof lin);
    lin.w = rf_tensor_make(RF_F32, w, 2, wshape);
    lin.b = v1(bias, N);

    /* unprepared weight */
    rf_tensor tx = v2(x, M, K, K), ty = v2(y, M, N, N);
    EXPECT_RC(RF_EINVAL, OPS->linear(g_be, &ty, &tx, &lin, RF_ACT_NONE, NULL, &ferr));

    /* a weight that is not 2-D cannot be prepared */
    rf_linear bad;
    memset(&bad, 0, sizeof bad);
    int64_t n1 = N * K;
    bad.w = rf_tensor_make(RF_F32, w, 1, &n1);
    EXPECT_RC(RF_EINVAL, OPS->linear_prepare(g_be, &bad, &ferr));
    CHECK(bad.prepared == NULL);

    rf_err err = {{0}};
    int rc = OPS->linear_prepare(g_be, &lin, &err);
    CHECKF(rc == 0, "linear_prepare: %s", err.msg);
    if (rc == 0) {
        rf_tensor x_k = v2(x, M, K + 1, K + 1);     /* K + 1 inputs */
        rf_tensor y_n = v2(y, M, N + 1, N + 1);     /* N + 1 outputs */
        rf_tensor y_m = v2(y, M + 1, N, N);         /* M + 1 rows */
        rf_tensor r_n = v2(r, M, N - 1, N);         /* residual too narrow */
        rf_tensor r_m = v2(r, M + 1, N, N);         /* residual too tall */
        rf_tensor r_ok = v2(r, M, N, N);
        rf_tensor x_i32 = tx;
        x_i32.dtype = RF_I32;
        rf_tensor x_col = v2(x, M, K / 2, K); /* non-unit inner stride */
        x_col.stride[1] = 2;
        rf_tensor y_null = ty;
        y_null.data = NULL;
        rf_tensor x_ld = v2(x, M, K, K - 1); /* rows overlap */
        int64_t s3[3] = {1, M, K};
        rf_tensor x_3d = rf_tensor_make(RF_F32, x, 3, s3);
        rf_linear lin_b = lin; /* bias of the wrong length */
        lin_b.b = v1(bias, N + 1);

        EXPECT_RC(RF_EINVAL, OPS->linear(g_be, &ty, &x_k, &lin, RF_ACT_NONE, NULL, &ferr));
        EXPECT_RC(RF_EINVAL, OPS->linear(g_be, &y_n, &tx, &lin, RF_ACT_NONE, NULL, &ferr));
        EXPECT_RC(RF_EINVAL, OPS->linear(g_be, &y_m, &tx, &lin, RF_ACT_NONE, NULL, &ferr));
        EXPECT_RC(RF_EINVAL, OPS->linear(g_be, &ty, &tx, &lin, RF_ACT_NONE, &r_n, &ferr));
        EXPECT_RC(RF_EINVAL, OPS->linear(g_be, &ty, &tx, &lin, RF_ACT_NONE, &r_m, &ferr));
        EXPECT_RC(RF_EINVAL, OPS->linear(g_be, &ty, &x_i32, &lin, RF_ACT_NONE, NULL, &ferr));
        EXPECT_RC(RF_EINVAL, OPS->linear(g_be, &ty, &x_col, &lin, RF_ACT_NONE, NULL, &ferr));
        EXPECT_RC(RF_EINVAL, OPS->linear(g_be, &y_null, &tx, &lin, RF_ACT_NONE, NULL, &ferr));
        EXPECT_RC(RF_EINVAL, OPS->linear(g_be, &ty, &x_ld, &lin, RF_ACT_NONE, NULL, &ferr));
        EXPECT_RC(RF_EINVAL, OPS->linear(g_be, &ty, &x_3d, &lin, RF_ACT_NONE, NULL, &ferr));
        EXPECT_RC(RF_EINVAL, OPS->linear(g_be, &ty, &tx, &lin_b, RF_ACT_NONE, &r_ok, &ferr));
        /* the valid call still works after all that */
        rc = OPS->linear(g_be, &ty, &tx, &lin, RF_ACT_RELU, &r_ok, &err);
        CHECKF(rc == 0, "linear after errors: %s", err.msg);
        OPS->linear_release(g_be, &lin);
        CHECK(lin.prepared == NULL);
    }
    free(w);
    free(bias);
    free(x);
    free(y);
    free(r);
}

static void test_linear(void)
{
    static const int64_t tokens[] = {1, 3, 17, 197};
    /* K, N; the last spans several GEMM K blocks and column tiles */
    static const int64_t kn[][2] = {{24, 40}, {100, 72}, {72, 24}, {400, 300}};
    for (size_t t = 0; t < sizeof tokens / sizeof tokens[0]; t++)
        for (size_t s = 0; s < sizeof kn / sizeof kn[0]; s++)
            linear_case(tokens[t], kn[s][0], kn[s][1]);
    linear_errors();
}

/* ---- matmul ------------------------------------------------------------- */

/* c[b] = alpha op(a[b]) op(b[b]); every operand has padded rows and a
 * padded batch stride; c's padding must survive. */
static void matmul_case(int64_t batch, int64_t M, int64_t N, int64_t K, int ta, int tb,
                        float alpha)
{
    rf_err err = {{0}};
    const int64_t ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
    const int64_t lda = ac + 3, ldb = bc + 2, ldc = N + 4;
    const int64_t sa = ar * lda + 5, sb = br * ldb + 1, sc = M * ldc + 7;
    float *a = test_falloc(batch * sa), *b = test_falloc(batch * sb), *c = test_falloc(batch * sc);
    test_fill_random(a, batch * sa, next_seed(), 1.0f);
    test_fill_random(b, batch * sb, next_seed(), 1.0f);
    float *a0 = fdup(a, batch * sa), *b0 = fdup(b, batch * sb);
    test_fill_const(c, batch * sc, SENTINEL);
    rf_tensor tA = v3(a, batch, ar, ac, sa, lda), tB = v3(b, batch, br, bc, sb, ldb),
              tC = v3(c, batch, M, N, sc, ldc);
    int rc = OPS->matmul(g_be, &tC, &tA, &tB, ta, tb, alpha, &err);
    CHECKF(rc == 0, "matmul: %s", err.msg);
    cmp cm;
    cmp_begin(&cm, "matmul", "batch=%lld M=%lld N=%lld K=%lld trans_a=%d trans_b=%d alpha=%g",
              (long long)batch, (long long)M, (long long)N, (long long)K, ta, tb, alpha);
    for (int64_t q = 0; q < batch; q++)
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                double s = 0, as = 0;
                for (int64_t k = 0; k < K; k++) {
                    double av = ta ? a[q * sa + k * lda + i] : a[q * sa + i * lda + k];
                    double bv = tb ? b[q * sb + j * ldb + k] : b[q * sb + k * ldb + j];
                    s += av * bv;
                    as += fabs(av * bv);
                }
                double want = alpha * s;
                double tol = 8 * EPS * (sqrt((double)K) * fabs(alpha) * as + fabs(want));
                cmp_add(&cm, c[q * sc + i * ldc + j], want, tol);
            }
    cmp_end(&cm);
    check_untouched(c, batch * sc, &tC, "matmul output padding");
    check_unchanged(a, a0, batch * sa, "matmul a");
    check_unchanged(b, b0, batch * sb, "matmul b");
    free(a);
    free(b);
    free(c);
    free(a0);
    free(b0);
}

static void matmul_errors(void)
{
    rf_err ferr;
    float *a = test_falloc(2 * 17 * 24), *b = test_falloc(2 * 24 * 40), *c = test_falloc(2 * 17 * 40);
    test_fill_random(a, 2 * 17 * 24, next_seed(), 1.0f);
    test_fill_random(b, 2 * 24 * 40, next_seed(), 1.0f);
    rf_tensor A = v3(a, 2, 17, 24, 17 * 24, 24), B = v3(b, 2, 24, 40, 24 * 40, 40),
              C = v3(c, 2, 17, 40, 17 * 40, 40);
    rf_tensor B_k = v3(b, 2, 23, 40, 24 * 40, 40);     /* inner dims differ */
    rf_tensor B_batch = v3(b, 1, 24, 40, 24 * 40, 40); /* batch differs */
    rf_tensor C_n = v3(c, 2, 17, 39, 17 * 40, 40);     /* wrong columns */
    rf_tensor C_m = v3(c, 2, 16, 40, 17 * 40, 40);     /* wrong rows */
    rf_tensor A_2d = v2(a, 17, 24, 24);
    rf_tensor A_i32 = A;
    A_i32.dtype = RF_I32;
    EXPECT_RC(RF_EINVAL, OPS->matmul(g_be, &C, &A, &B_k, 0, 0, 1.0f, &ferr));
    EXPECT_RC(RF_EINVAL, OPS->matmul(g_be, &C, &A, &B_batch, 0, 0, 1.0f, &ferr));
    EXPECT_RC(RF_EINVAL, OPS->matmul(g_be, &C_n, &A, &B, 0, 0, 1.0f, &ferr));
    EXPECT_RC(RF_EINVAL, OPS->matmul(g_be, &C_m, &A, &B, 0, 0, 1.0f, &ferr));
    EXPECT_RC(RF_EINVAL, OPS->matmul(g_be, &C, &A_2d, &B, 0, 0, 1.0f, &ferr));
    EXPECT_RC(RF_EINVAL, OPS->matmul(g_be, &C, &A_i32, &B, 0, 0, 1.0f, &ferr));
    /* transposing A makes it [24, 17]: no longer matches B's 24 rows */
    EXPECT_RC(RF_EINVAL, OPS->matmul(g_be, &C, &A, &B, 1, 0, 1.0f, &ferr));
    rf_err err = {{0}};
    int rc = OPS->matmul(g_be, &C, &A, &B, 0, 0, 1.0f, &err);
    CHECKF(rc == 0, "matmul after errors: %s", err.msg);
    free(a);
    free(b);
    free(c);
}

static void test_matmul(void)
{
    static const int64_t shapes[][4] = {
        /* batch, M, N, K */
        {3, 1, 1, 1}, {2, 3, 24, 17}, {3, 17, 40, 100}, {1, 197, 17, 24}, {2, 197, 197, 6},
        {2, 17, 197, 72}, {2, 40, 24, 400},
    };
    static const float alphas[] = {1.0f, -0.375f};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (size_t al = 0; al < 2; al++)
                    matmul_case(shapes[s][0], shapes[s][1], shapes[s][2], shapes[s][3], ta, tb,
                                alphas[al]);
    matmul_errors();
}

/* ---- layernorm ---------------------------------------------------------- */

/*
 * Row kinds, picked per row: 0: 1000 + U(-0.01, 0.01) (mean/std ~ 1.7e5);
 * 1: U(-3, 3); 2: -500 + U(-1, 1); 3: constant 1000.25 (variance 0: the
 * output is beta exactly, for any eps).
 *
 * Tolerance: the backend rounds the row mean to fp32 (at most half an ulp,
 * EPS/2 * |mean|) before subtracting; that shift is multiplied by
 * gamma / sqrt(var + eps), which for kind 0 is ~170 x gamma. The remaining
 * steps are a few fp32 roundings of the result. So
 *     |got - want| <= EPS * |gamma| * |mean| * inv
 *                     + 4 * EPS * (|gamma| * |x - mean| * inv + |beta| + |want|).
 * For a constant row the mean is exact (1000.25 * n is exact in fp32 for
 * these n), so the first term is dropped: the result must be beta.
 */
static void layernorm_case(int64_t rows, int64_t n, float eps, int alias, int shift)
{
    rf_err err = {{0}};
    const int64_t ldx = n + 3, ldy = alias ? ldx : n + 6;
    float *x = test_falloc(rows * ldx), *g = test_falloc(n), *bt = test_falloc(n);
    float *y = alias ? x : test_falloc(rows * ldy);
    test_fill_random(x, rows * ldx, next_seed(), 1.0f);
    test_fill_random(g, n, next_seed(), 0.5f);
    for (int64_t i = 0; i < n; i++)
        g[i] += 1.0f;
    test_fill_random(bt, n, next_seed(), 0.5f);
    int *kind = test_xmalloc((size_t)rows * sizeof(int));
    for (int64_t r = 0; r < rows; r++) {
        float *xr = x + r * ldx;
        kind[r] = (int)((r + shift) % 4);
        for (int64_t i = 0; i < n; i++) {
            switch (kind[r]) {
            case 0: xr[i] = 1000.0f + 0.01f * xr[i]; break;
            case 1: xr[i] = 3.0f * xr[i]; break;
            case 2: xr[i] = -500.0f + xr[i]; break;
            default: xr[i] = 1000.25f; break;
            }
        }
    }
    float *x0 = fdup(x, rows * ldx);
    if (!alias)
        test_fill_const(y, rows * ldy, SENTINEL);
    rf_tensor tx = v2(x, rows, n, ldx), ty = v2(y, rows, n, ldy), tg = v1(g, n), tb = v1(bt, n);
    int rc = OPS->layernorm(g_be, &ty, &tx, &tg, &tb, eps, &err);
    CHECKF(rc == 0, "layernorm: %s", err.msg);
    cmp c;
    cmp_begin(&c, "layernorm", "rows=%lld n=%lld eps=%g alias=%d", (long long)rows, (long long)n,
              eps, alias);
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x0 + r * ldx;
        double mean = 0, var = 0;
        for (int64_t i = 0; i < n; i++)
            mean += xr[i];
        mean /= (double)n;
        for (int64_t i = 0; i < n; i++)
            var += (xr[i] - mean) * (xr[i] - mean);
        var /= (double)n;
        double inv = 1.0 / sqrt(var + (double)eps);
        for (int64_t i = 0; i < n; i++) {
            double want = (xr[i] - mean) * inv * g[i] + bt[i];
            double tol = 4 * EPS * (fabs(g[i]) * fabs(xr[i] - mean) * inv + fabs(bt[i]) + fabs(want));
            if (kind[r] != 3)
                tol += EPS * fabs(g[i]) * fabs(mean) * inv;
            cmp_add(&c, y[r * ldy + i], want, tol);
        }
    }
    cmp_end(&c);
    if (!alias) {
        check_untouched(y, rows * ldy, &ty, "layernorm output padding");
        check_unchanged(x, x0, rows * ldx, "layernorm x");
    } else {
        /* the padding between x's rows is input memory outside the view */
        int64_t changed = 0;
        for (int64_t r = 0; r < rows; r++)
            for (int64_t i = n; i < ldx; i++)
                changed += x[r * ldx + i] != x0[r * ldx + i];
        CHECKF(changed == 0, "layernorm in place: %lld padding elements changed",
               (long long)changed);
    }
    free(kind);
    free(x);
    free(x0);
    free(g);
    free(bt);
    if (!alias)
        free(y);
}

static void layernorm_errors(void)
{
    rf_err ferr;
    float *x = test_falloc(17 * 40), *y = test_falloc(18 * 41), *g = test_falloc(41), *b = test_falloc(41);
    test_fill_random(x, 17 * 40, next_seed(), 1.0f);
    test_fill_random(g, 41, next_seed(), 1.0f);
    test_fill_random(b, 41, next_seed(), 1.0f);
    rf_tensor tx = v2(x, 17, 40, 40), ty = v2(y, 17, 40, 40), tg = v1(g, 40), tb = v1(b, 40);
    rf_tensor y_n = v2(y, 17, 41, 41), y_m = v2(y, 18, 40, 40), g_n = v1(g, 41), b_n = v1(b, 39);
    rf_tensor x_3d = v3(x, 1, 17, 40, 17 * 40, 40);
    rf_tensor g_2d = v2(g, 2, 20, 20); /* 2 x 21 = 42 values where 40 are needed */
    g_2d.shape[1] = 21;
    EXPECT_RC(RF_EINVAL, OPS->layernorm(g_be, &y_n, &tx, &tg, &tb, 1e-6f, &ferr));
    EXPECT_RC(RF_EINVAL, OPS->layernorm(g_be, &y_m, &tx, &tg, &tb, 1e-6f, &ferr));
    EXPECT_RC(RF_EINVAL, OPS->layernorm(g_be, &ty, &tx, &g_n, &tb, 1e-6f, &ferr));
    EXPECT_RC(RF_EINVAL, OPS->layernorm(g_be, &ty, &tx, &tg, &b_n, 1e-6f, &ferr));
    EXPECT_RC(RF_EINVAL, OPS->layernorm(g_be, &ty, &x_3d, &tg, &tb, 1e-6f, &ferr));
    EXPECT_RC(RF_EINVAL, OPS->layernorm(g_be, &ty, &tx, &g_2d, &tb, 1e-6f, &ferr));
    free(x);
    free(y);
    free(g);
    free(b);
}

static void test_layernorm(void)
{
    static const int64_t tokens[] = {1, 3, 17, 197};
    static const int64_t widths[] = {24, 40, 72, 100};
    static const float epss[] = {1e-6f, 1e-12f};
    int shift = 0;
    for (size_t t = 0; t < 4; t++)
        for (size_t w = 0; w < 4; w++)
            for (size_t e = 0; e < 2; e++)
                for (int alias = 0; alias < 2; alias++)
                    layernorm_case(tokens[t], widths[w], epss[e], alias, shift++);
    layernorm_errors();
}

/* ---- activation --------------------------------------------------------- */

/* y = act(x) over x in [-10, 10]: kind 0 is an even grid of rows * n points
 * (endpoints included), kind 1 uniform random values. */
static void activation_case(int64_t rows, int64_t n, int kind, int alias)
{
    rf_err err = {{0}};
    const int64_t ldx = n + 5, ldy = alias ? ldx : n + 9;
    float *x = test_falloc(rows * ldx), *y = alias ? x : test_falloc(rows * ldy);
    test_fill_random(x, rows * ldx, next_seed(), 10.0f);
    if (kind == 0)
        for (int64_t r = 0; r < rows; r++)
            for (int64_t i = 0; i < n; i++)
                x[r * ldx + i] = (float)(-10.0 + 20.0 * (double)(r * n + i) / (double)(rows * n - 1));
    float *x0 = fdup(x, rows * ldx);
    for (int ai = 0; ai < N_ACTS; ai++) {
        rf_act act = all_acts[ai];
        if (alias)
            memcpy(x, x0, (size_t)(rows * ldx) * sizeof(float));
        else
            test_fill_const(y, rows * ldy, SENTINEL);
        rf_tensor tx = v2(x, rows, n, ldx), ty = v2(y, rows, n, ldy);
        int rc = OPS->activation(g_be, &ty, &tx, act, &err);
        CHECKF(rc == 0, "activation: %s", err.msg);
        cmp c;
        cmp_begin(&c, "activation", "%s rows=%lld n=%lld %s alias=%d", rf_act_name(act),
                  (long long)rows, (long long)n, kind ? "random" : "grid", alias);
        for (int64_t r = 0; r < rows; r++)
            for (int64_t i = 0; i < n; i++) {
                double want = ref_act(x0[r * ldx + i], act);
                double tol = act_abs_tol(act, x0[r * ldx + i]) + 2 * EPS * fabs(want);
                cmp_add(&c, y[r * ldy + i], want, tol);
            }
        cmp_end(&c);
        if (!alias) {
            check_untouched(y, rows * ldy, &ty, "activation output padding");
            check_unchanged(x, x0, rows * ldx, "activation x");
        }
    }
    free(x0);
    free(x);
    if (!alias)
        free(y);
}

/* Points that matter: zero, tiny, where approximations switch regime. */
static void activation_points(void)
{
    static const float pts[] = {0.0f,   1e-6f,   -1e-6f, 1e-3f,  -1e-3f, 0.5f,  -0.5f,
                                1.0f,   -1.0f,   2.5f,   -2.5f,  3.0f,   -3.0f, 4.0f,
                                -4.0f,  5.6568f, -5.6568f, 5.66f, -5.66f, 6.0f, -6.0f,
                                8.0f,   -8.0f,   9.99f,  -9.99f, 10.0f,  -10.0f,
                                /* where a pure-fp32 evaluation of the rational
                                 * erf was 1.1-1.24e-6 off GELU (dense scan) */
                                -5.54703f, -5.5372701f, -5.5977273f, 5.59227f, 4.62978f};
    const int64_t n = (int64_t)(sizeof pts / sizeof pts[0]);
    rf_err err = {{0}};
    float *x = fdup(pts, n), *y = test_falloc(n);
    for (int ai = 0; ai < N_ACTS; ai++) {
        rf_act act = all_acts[ai];
        rf_tensor tx = v2(x, 1, n, n), ty = v2(y, 1, n, n);
        int rc = OPS->activation(g_be, &ty, &tx, act, &err);
        CHECKF(rc == 0, "activation: %s", err.msg);
        cmp c;
        cmp_begin(&c, "activation", "%s special points", rf_act_name(act));
        for (int64_t i = 0; i < n; i++) {
            double want = ref_act(pts[i], act);
            cmp_add(&c, y[i], want, act_abs_tol(act, pts[i]) + 2 * EPS * fabs(want));
        }
        cmp_end(&c);
        /* exact properties: relu and identity are exact, every act maps 0 to 0 */
        if (act == RF_ACT_RELU || act == RF_ACT_NONE)
            for (int64_t i = 0; i < n; i++)
                CHECKF(y[i] == (float)ref_act(pts[i], act), "%s(%g) = %g", rf_act_name(act),
                       (double)pts[i], (double)y[i]);
        CHECKF(y[0] == 0.0f, "%s(0) = %g", rf_act_name(act), (double)y[0]);
    }
    free(x);
    free(y);
}

static void activation_errors(void)
{
    rf_err ferr;
    float *x = test_falloc(17 * 40), *y = test_falloc(18 * 41);
    test_fill_random(x, 17 * 40, next_seed(), 1.0f);
    rf_tensor tx = v2(x, 17, 40, 40), y_n = v2(y, 17, 41, 41), y_m = v2(y, 18, 40, 40);
    rf_tensor x_3d = v3(x, 1, 17, 40, 17 * 40, 40), y_ok = v2(y, 17, 40, 40);
    rf_tensor x_col = tx;
    x_col.stride[1] = 2;
    x_col.shape[1] = 20;
    rf_tensor y_col = v2(y, 17, 20, 20);
    EXPECT_RC(RF_EINVAL, OPS->activation(g_be, &y_n, &tx, RF_ACT_GELU_ERF, &ferr));
    EXPECT_RC(RF_EINVAL, OPS->activation(g_be, &y_m, &tx, RF_ACT_GELU_ERF, &ferr));
    EXPECT_RC(RF_EINVAL, OPS->activation(g_be, &y_ok, &x_3d, RF_ACT_GELU_ERF, &ferr));
    EXPECT_RC(RF_EINVAL, OPS->activation(g_be, &y_col, &x_col, RF_ACT_GELU_ERF, &ferr));
    free(x);
    free(y);
}

static void test_activation(void)
{
    for (int alias = 0; alias < 2; alias++) {
        activation_case(197, 1000, 0, alias); /* 197000 grid points, step ~1e-4 */
        activation_case(197, 72, 1, alias);
        activation_case(3, 24, 1, alias);
    }
    activation_points();
    activation_errors();
}

/* ---- add and scale_add -------------------------------------------------- */

/* y = a + b; b has one row when bcast. Correctly rounded fp32 addition is
 * within EPS/2 of the exact sum; we allow EPS. */
static void add_case(int64_t rows, int64_t n, int bcast, int alias)
{
    rf_err err = {{0}};
    const int64_t lda = n + 2, ldb = n + 5, ldy = alias ? lda : n + 1, brows = bcast ? 1 : rows;
    float *a = test_falloc(rows * lda), *b = test_falloc(brows * ldb), *y = alias ? a : test_falloc(rows * ldy);
    test_fill_random(a, rows * lda, next_seed(), 3.0f);
    test_fill_random(b, brows * ldb, next_seed(), 3.0f);
    float *a0 = fdup(a, rows * lda), *b0 = fdup(b, brows * ldb);
    if (!alias)
        test_fill_const(y, rows * ldy, SENTINEL);
    rf_tensor ta = v2(a, rows, n, lda), tb = v2(b, brows, n, ldb), ty = v2(y, rows, n, ldy);
    int rc = OPS->add(g_be, &ty, &ta, &tb, &err);
    CHECKF(rc == 0, "add: %s", err.msg);
    cmp c;
    cmp_begin(&c, "add", "rows=%lld n=%lld broadcast=%d alias=%d", (long long)rows, (long long)n,
              bcast, alias);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t i = 0; i < n; i++) {
            double want = (double)a0[r * lda + i] + (double)b0[(bcast ? 0 : r) * ldb + i];
            cmp_add(&c, y[r * ldy + i], want, EPS * fabs(want));
        }
    cmp_end(&c);
    check_unchanged(b, b0, brows * ldb, "add b");
    if (!alias) {
        check_untouched(y, rows * ldy, &ty, "add output padding");
        check_unchanged(a, a0, rows * lda, "add a");
    }
    free(a);
    free(b);
    free(a0);
    free(b0);
    if (!alias)
        free(y);
}

/* y = residual + x * gamma with y separate (0), aliasing residual (1) or
 * aliasing x (2). Two fp32 roundings (or one with FMA): within
 * EPS * (|want| + |x * gamma|). */
static void scale_add_case(int64_t rows, int64_t n, int mode)
{
    rf_err err = {{0}};
    const int64_t ld = n + 3, ldy = n + 1;
    float *x = test_falloc(rows * ld), *res = test_falloc(rows * ld), *g = test_falloc(n);
    test_fill_random(x, rows * ld, next_seed(), 3.0f);
    test_fill_random(res, rows * ld, next_seed(), 3.0f);
    test_fill_random(g, n, next_seed(), 1.0f);
    float *x0 = fdup(x, rows * ld), *r0 = fdup(res, rows * ld);
    float *ybuf = mode == 0 ? test_falloc(rows * ldy) : NULL;
    float *y = mode == 0 ? ybuf : (mode == 1 ? res : x);
    int64_t yld = mode == 0 ? ldy : ld;
    if (ybuf)
        test_fill_const(ybuf, rows * ldy, SENTINEL);
    rf_tensor tx = v2(x, rows, n, ld), tr = v2(res, rows, n, ld), ty = v2(y, rows, n, yld),
              tg = v1(g, n);
    int rc = OPS->scale_add(g_be, &ty, &tx, &tg, &tr, &err);
    CHECKF(rc == 0, "scale_add: %s", err.msg);
    static const char *modes[] = {"separate", "alias-residual", "alias-x"};
    cmp c;
    cmp_begin(&c, "scale_add", "rows=%lld n=%lld y=%s", (long long)rows, (long long)n,
              modes[mode]);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t i = 0; i < n; i++) {
            double p = (double)x0[r * ld + i] * (double)g[i];
            double want = (double)r0[r * ld + i] + p;
            cmp_add(&c, y[r * yld + i], want, EPS * (fabs(want) + fabs(p)));
        }
    cmp_end(&c);
    if (mode != 2)
        check_unchanged(x, x0, rows * ld, "scale_add x");
    if (mode != 1)
        check_unchanged(res, r0, rows * ld, "scale_add residual");
    if (ybuf)
        check_untouched(ybuf, rows * ldy, &ty, "scale_add output padding");
    free(x);
    free(res);
    free(g);
    free(x0);
    free(r0);
    free(ybuf);
}

static void elementwise_errors(void)
{
    rf_err ferr;
    float *a = test_falloc(18 * 41), *b = test_falloc(18 * 41), *y = test_falloc(18 * 41), *g = test_falloc(41);
    test_fill_random(a, 18 * 41, next_seed(), 1.0f);
    test_fill_random(b, 18 * 41, next_seed(), 1.0f);
    test_fill_random(g, 41, next_seed(), 1.0f);
    rf_tensor ta = v2(a, 17, 40, 40), ty = v2(y, 17, 40, 40), tg = v1(g, 40);
    rf_tensor b_ok = v2(b, 17, 40, 40);
    rf_tensor b_rows = v2(b, 2, 40, 40);  /* neither 1 nor 17 rows */
    rf_tensor b_cols = v2(b, 1, 41, 41);  /* broadcast row of the wrong width */
    rf_tensor y_rows = v2(y, 18, 40, 40);
    rf_tensor g_n = v1(g, 41);
    rf_tensor r_rows = v2(b, 16, 40, 40);
    rf_tensor a_3d = v3(a, 1, 17, 40, 17 * 40, 40);
    EXPECT_RC(RF_EINVAL, OPS->add(g_be, &ty, &ta, &b_rows, &ferr));
    EXPECT_RC(RF_EINVAL, OPS->add(g_be, &ty, &ta, &b_cols, &ferr));
    EXPECT_RC(RF_EINVAL, OPS->add(g_be, &y_rows, &ta, &b_ok, &ferr));
    EXPECT_RC(RF_EINVAL, OPS->add(g_be, &ty, &a_3d, &b_ok, &ferr));
    EXPECT_RC(RF_EINVAL, OPS->scale_add(g_be, &ty, &ta, &g_n, &b_ok, &ferr));
    EXPECT_RC(RF_EINVAL, OPS->scale_add(g_be, &ty, &ta, &tg, &r_rows, &ferr));
    EXPECT_RC(RF_EINVAL, OPS->scale_add(g_be, &y_rows, &ta, &tg, &b_ok, &ferr));
    EXPECT_RC(RF_EINVAL, OPS->scale_add(g_be, &ty, &a_3d, &tg, &b_ok, &ferr));
    free(a);
    free(b);
    free(y);
    free(g);
}

static void test_add(void)
{
    static const int64_t tokens[] = {1, 3, 17, 197};
    static const int64_t widths[] = {24, 100};
    for (size_t t = 0; t < 4; t++)
        for (size_t w = 0; w < 2; w++) {
            for (int bcast = 0; bcast < 2; bcast++)
                for (int alias = 0; alias < 2; alias++)
                    add_case(tokens[t], widths[w], bcast, alias);
            for (int mode = 0; mode < 3; mode++)
                scale_add_case(tokens[t], widths[w], mode);
        }
    elementwise_errors();
}

/* ---- softmax ------------------------------------------------------------ */

/*
 * y = softmax(scale * x) over the last dimension of x [B, R, C], with an
 * optional i32 key mask [B, C]: batch b % 3 == 0 masks random keys (about a
 * quarter, key 0 always kept), b % 3 == 1 masks a padding tail, b % 3 == 2
 * masks everything (the row must come back all zeros).
 *
 * Tolerance: with s = scale * x and m the row max, exp(s - m) has relative
 * error about EPS * (|s| + |s - m|) from rounding its argument, plus an ulp
 * of its own; normalizing adds a few ulps. We allow, relative to the value,
 *     8 * EPS * (2 + |s| + |s - m|).
 * Masked entries must be exactly 0. x spans [-100, 100] in some cases, so
 * a softmax without max subtraction overflows (expf overflows past 88.7).
 */
static void softmax_case(int64_t B, int64_t R, int64_t C, int masked, float scale, float xscale,
                         int alias)
{
    rf_err err = {{0}};
    const int64_t s1 = C + 3, s0 = R * s1 + 2;
    const int64_t t1 = alias ? s1 : C + 1, t0 = alias ? s0 : R * t1 + 4;
    float *x = test_falloc(B * s0), *y = alias ? x : test_falloc(B * t0);
    test_fill_random(x, B * s0, next_seed(), xscale);
    float *x0 = fdup(x, B * s0);
    int32_t *mask = test_softmax_mask(B, C, next_seed());
    if (!alias)
        test_fill_const(y, B * t0, SENTINEL);
    int64_t mshape[2] = {B, C};
    rf_tensor tm = rf_tensor_make(RF_I32, mask, 2, mshape);
    rf_tensor tx = v3(x, B, R, C, s0, s1), ty = v3(y, B, R, C, t0, t1);
    int rc = OPS->softmax(g_be, &ty, &tx, masked ? &tm : NULL, scale, &err);
    CHECKF(rc == 0, "softmax: %s", err.msg);
    cmp c;
    cmp_begin(&c, "softmax", "B=%lld R=%lld C=%lld mask=%d scale=%g range=%g alias=%d",
              (long long)B, (long long)R, (long long)C, masked, scale, xscale, alias);
    int64_t nonzero_masked = 0;
    for (int64_t b = 0; b < B; b++)
        for (int64_t r = 0; r < R; r++) {
            const float *xr = x0 + b * s0 + r * s1;
            const float *yr = y + b * t0 + r * t1;
            const int32_t *mk = masked ? mask + b * C : NULL;
            double m = -INFINITY, sum = 0;
            for (int64_t j = 0; j < C; j++)
                if (!mk || mk[j])
                    m = fmax(m, (double)scale * xr[j]);
            for (int64_t j = 0; j < C; j++)
                if (!mk || mk[j])
                    sum += exp((double)scale * xr[j] - m);
            for (int64_t j = 0; j < C; j++) {
                if (mk && !mk[j]) {
                    nonzero_masked += yr[j] != 0.0f;
                    continue;
                }
                double s = (double)scale * xr[j];
                double want = exp(s - m) / sum;
                /* (plus 1e-36: exp(s - m) < 2^-149 is 0 in fp32) */
                cmp_add(&c, yr[j], want, 8 * EPS * (2 + fabs(s) + fabs(s - m)) * want + 1e-36);
            }
        }
    cmp_end(&c);
    CHECKF(nonzero_masked == 0, "softmax %s: %lld masked entries are not 0", c.what,
           (long long)nonzero_masked);
    if (!alias) {
        check_untouched(y, B * t0, &ty, "softmax output padding");
        check_unchanged(x, x0, B * s0, "softmax x");
    }
    free(x);
    free(x0);
    free(mask);
    if (!alias)
        free(y);
}

static void softmax_errors(void)
{
    rf_err ferr;
    float *x = test_falloc(2 * 3 * 17), *y = test_falloc(2 * 3 * 18);
    int32_t mask[2 * 18];
    for (int i = 0; i < 2 * 18; i++)
        mask[i] = 1;
    test_fill_random(x, 2 * 3 * 17, next_seed(), 1.0f);
    rf_tensor tx = v3(x, 2, 3, 17, 51, 17), ty = v3(y, 2, 3, 17, 51, 17);
    rf_tensor y_c = v3(y, 2, 3, 18, 54, 18), y_r = v3(y, 2, 4, 17, 68, 17),
              y_b = v3(y, 1, 3, 17, 51, 17);
    int64_t ms[2] = {2, 18}, mb[2] = {1, 17}, mok[2] = {2, 17};
    rf_tensor m_c = rf_tensor_make(RF_I32, mask, 2, ms);  /* wrong key count */
    rf_tensor m_b = rf_tensor_make(RF_I32, mask, 2, mb);  /* wrong batch */
    rf_tensor m_f = rf_tensor_make(RF_F32, mask, 2, mok); /* wrong dtype */
    rf_tensor x_2d = v2(x, 6, 17, 17), y_2d = v2(y, 6, 17, 17);
    EXPECT_RC(RF_EINVAL, OPS->softmax(g_be, &y_c, &tx, NULL, 1.0f, &ferr));
    EXPECT_RC(RF_EINVAL, OPS->softmax(g_be, &y_r, &tx, NULL, 1.0f, &ferr));
    EXPECT_RC(RF_EINVAL, OPS->softmax(g_be, &y_b, &tx, NULL, 1.0f, &ferr));
    EXPECT_RC(RF_EINVAL, OPS->softmax(g_be, &ty, &tx, &m_c, 1.0f, &ferr));
    EXPECT_RC(RF_EINVAL, OPS->softmax(g_be, &ty, &tx, &m_b, 1.0f, &ferr));
    EXPECT_RC(RF_EINVAL, OPS->softmax(g_be, &ty, &tx, &m_f, 1.0f, &ferr));
    EXPECT_RC(RF_EINVAL, OPS->softmax(g_be, &y_2d, &x_2d, NULL, 1.0f, &ferr));
    free(x);
    free(y);
}

static void test_softmax(void)
{
    static const int64_t cols[] = {1, 3, 17, 197};
    test_softmax_grid(cols, sizeof cols / sizeof cols[0], softmax_case);
    softmax_errors();
}

/* ---- attention ---------------------------------------------------------- */

/*
 * Multi-head attention with q, k, v read as views of one fused [B, T, 3*H*D]
 * buffer (row stride 3*H*D, or wider), exactly as a transformer's QKV
 * projection lays them out, against a naive per-head softmax(Q K^T * scale) V
 * in double. With a mask: batch 0 pads a tail (a third of the keys), batch 1
 * pads the front (up to 70 keys: whole 64-key tiles are fully masked), batch
 * 2 masks every key (the output rows must be zeros, the convention softmax
 * documents; never NaN).
 *
 * Tolerance per output element, relative to pabs = sum_j p_j |v_j|: each
 * score is an fp32 dot product of D terms (error ~ sqrt(D) * EPS * S with S
 * = scale * sum_d |q_d k_d|, the largest over the keys), which becomes a
 * relative error of the weights; summing T weighted values and the online
 * softmax's rescaling add a few ulps each:
 *     8 * EPS * (sqrt(D) * S + sqrt(T) + 4) * pabs.
 * Using a wrong head, key or value row is off by ~0.1 or more.
 */
static void attention_case(int64_t B, int64_t T, int heads, int64_t D, int masked, int64_t qkv_pad,
                           int64_t out_pad)
{
    rf_err err = {{0}};
    const int64_t HD = heads * D, ld = 3 * HD + qkv_pad, old = HD + out_pad;
    float *qkv = test_falloc(B * T * ld), *out = test_falloc(B * T * old);
    test_fill_random(qkv, B * T * ld, next_seed(), 1.5f);
    float *qkv0 = fdup(qkv, B * T * ld);
    test_fill_const(out, B * T * old, SENTINEL);
    int32_t *mask = test_ialloc(B * T);
    test_attention_mask(mask, B, T, masked);
    int64_t mshape[2] = {B, T};
    rf_tensor tm = rf_tensor_make(RF_I32, mask, 2, mshape);
    rf_tensor tq = v3(qkv, B, T, HD, T * ld, ld), tk = v3(qkv + HD, B, T, HD, T * ld, ld),
              tv = v3(qkv + 2 * HD, B, T, HD, T * ld, ld), to = v3(out, B, T, HD, T * old, old);
    const float scale = (float)(1.0 / sqrt((double)D));
    int rc = OPS->attention(g_be, &to, &tq, &tk, &tv, masked ? &tm : NULL, heads, scale, &err);
    CHECKF(rc == 0, "attention: %s", err.msg);

    cmp c;
    cmp_begin(&c, "attention", "B=%lld T=%lld heads=%d D=%lld mask=%d qkv_pad=%lld out_pad=%lld",
              (long long)B, (long long)T, heads, (long long)D, masked, (long long)qkv_pad,
              (long long)out_pad);
    double *p = test_dalloc(T);
    int64_t nonzero_masked_rows = 0;
    for (int64_t b = 0; b < B; b++)
        for (int h = 0; h < heads; h++)
            for (int64_t i = 0; i < T; i++) {
                const float *q = qkv + (b * T + i) * ld + h * D;
                const float *o = out + (b * T + i) * old + h * D;
                double m = -INFINITY, smax = 0, sum = 0;
                for (int64_t j = 0; j < T; j++) {
                    const float *k = qkv + (b * T + j) * ld + HD + h * D;
                    double s = 0, sa = 0;
                    for (int64_t d = 0; d < D; d++) {
                        s += (double)q[d] * k[d];
                        sa += fabs((double)q[d] * k[d]);
                    }
                    p[j] = s * scale;
                    smax = fmax(smax, sa * scale);
                    if (mask[b * T + j])
                        m = fmax(m, p[j]);
                }
                if (m == -INFINITY) { /* every key masked */
                    for (int64_t d = 0; d < D; d++)
                        nonzero_masked_rows += o[d] != 0.0f;
                    continue;
                }
                for (int64_t j = 0; j < T; j++) {
                    p[j] = mask[b * T + j] ? exp(p[j] - m) : 0.0;
                    sum += p[j];
                }
                for (int64_t d = 0; d < D; d++) {
                    double want = 0, pabs = 0;
                    for (int64_t j = 0; j < T; j++) {
                        double v = qkv[(b * T + j) * ld + 2 * HD + h * D + d];
                        want += p[j] / sum * v;
                        pabs += p[j] / sum * fabs(v);
                    }
                    double tol = 8 * EPS * (sqrt((double)D) * smax + sqrt((double)T) + 4) * pabs;
                    cmp_add(&c, o[d], want, tol);
                }
            }
    cmp_end(&c);
    CHECKF(nonzero_masked_rows == 0, "attention %s: %lld outputs of fully masked rows are not 0",
           c.what, (long long)nonzero_masked_rows);
    check_untouched(out, B * T * old, &to, "attention output padding");
    check_unchanged(qkv, qkv0, B * T * ld, "attention qkv");
    free(p);
    free(qkv);
    free(qkv0);
    free(out);
    free(mask);
}

static void attention_errors(void)
{
    rf_err ferr;
    const int64_t B = 2, T = 17, HD = 24;
    float *qkv = test_falloc(B * T * 3 * HD), *out = test_falloc(B * (T + 1) * (HD + 1));
    test_fill_random(qkv, B * T * 3 * HD, next_seed(), 1.0f);
    int32_t *mask = test_ialloc(B * (T + 1));
    for (int64_t i = 0; i < B * (T + 1); i++)
        mask[i] = 1;
    const int64_t ld = 3 * HD;
    rf_tensor q = v3(qkv, B, T, HD, T * ld, ld), k = v3(qkv + HD, B, T, HD, T * ld, ld),
              v = v3(qkv + 2 * HD, B, T, HD, T * ld, ld), o = v3(out, B, T, HD, T * HD, HD);
    rf_tensor k_t = v3(qkv + HD, B, T - 1, HD, T * ld, ld); /* fewer keys */
    rf_tensor v_w = v3(qkv + 2 * HD, B, T, HD - 1, T * ld, ld);
    rf_tensor o_b = v3(out, 1, T, HD, T * HD, HD);
    rf_tensor q_2d = v2(qkv, B * T, HD, ld);
    int64_t mt[2] = {B, T + 1}, mb[2] = {B + 1, T - 6}, mok[2] = {B, T};
    rf_tensor m_t = rf_tensor_make(RF_I32, mask, 2, mt);
    rf_tensor m_b = rf_tensor_make(RF_I32, mask, 2, mb);
    rf_tensor m_f = rf_tensor_make(RF_F32, mask, 2, mok);
    EXPECT_RC(RF_EINVAL, OPS->attention(g_be, &o, &q, &k, &v, NULL, 5, 0.5f, &ferr)); /* 24 % 5 */
    EXPECT_RC(RF_EINVAL, OPS->attention(g_be, &o, &q, &k, &v, NULL, 0, 0.5f, &ferr));
    EXPECT_RC(RF_EINVAL, OPS->attention(g_be, &o, &q, &k_t, &v, NULL, 2, 0.5f, &ferr));
    EXPECT_RC(RF_EINVAL, OPS->attention(g_be, &o, &q, &k, &v_w, NULL, 2, 0.5f, &ferr));
    EXPECT_RC(RF_EINVAL, OPS->attention(g_be, &o_b, &q, &k, &v, NULL, 2, 0.5f, &ferr));
    EXPECT_RC(RF_EINVAL, OPS->attention(g_be, &o, &q_2d, &k, &v, NULL, 2, 0.5f, &ferr));
    EXPECT_RC(RF_EINVAL, OPS->attention(g_be, &o, &q, &k, &v, &m_t, 2, 0.5f, &ferr));
    EXPECT_RC(RF_EINVAL, OPS->attention(g_be, &o, &q, &k, &v, &m_b, 2, 0.5f, &ferr));
    EXPECT_RC(RF_EINVAL, OPS->attention(g_be, &o, &q, &k, &v, &m_f, 2, 0.5f, &ferr));
    free(qkv);
    free(out);
    free(mask);

    /* a head wider than the backend supports is refused, not overrun */
    const int64_t wide = 600;
    float *big = test_falloc(wide * 2), *bo = test_falloc(wide * 2);
    test_fill_random(big, wide * 2, next_seed(), 1.0f);
    rf_tensor bq = v3(big, 1, 2, wide, 2 * wide, wide), bout = v3(bo, 1, 2, wide, 2 * wide, wide);
    memset(&ferr, 0, sizeof ferr);
    int rc = OPS->attention(g_be, &bout, &bq, &bq, &bq, NULL, 1, 0.1f, &ferr);
    if (rc == 0) {
        /* supported after all: then it must be right (softmax over 2 keys) */
        cmp c;
        cmp_begin(&c, "attention", "single head of %lld", (long long)wide);
        for (int64_t i = 0; i < 2; i++) {
            double s[2];
            for (int64_t j = 0; j < 2; j++) {
                double acc = 0;
                for (int64_t d = 0; d < wide; d++)
                    acc += (double)big[i * wide + d] * big[j * wide + d];
                s[j] = 0.1 * acc;
            }
            double m = fmax(s[0], s[1]), e0 = exp(s[0] - m), e1 = exp(s[1] - m);
            for (int64_t d = 0; d < wide; d++) {
                double want = (e0 * big[d] + e1 * big[wide + d]) / (e0 + e1);
                cmp_add(&c, bo[i * wide + d], want, 1e-4 * (1 + fabs(want)));
            }
        }
        cmp_end(&c);
    } else {
        CHECKF(ferr.msg[0] != '\0' && strchr(ferr.msg, '\n') == NULL,
               "attention head of %lld: rc %d, message '%s'", (long long)wide, rc, ferr.msg);
    }
    free(big);
    free(bo);
}

static void test_attention(void)
{
    /* 65: one past a 64-key tile and two 32-query tiles */
    static const int64_t tokens[] = {1, 3, 17, 65, 197};
    static const struct {
        int heads;
        int64_t D;
    } hd[] = {{1, 100}, {2, 20}, {3, 8}, {12, 6}, {3, 64}};
    for (size_t t = 0; t < sizeof tokens / sizeof tokens[0]; t++)
        for (size_t h = 0; h < sizeof hd / sizeof hd[0]; h++) {
            /* padding of the fused rows and the output rows varies by case */
            int64_t qkv_pad = h == 1 ? 5 : 0, out_pad = h % 2 ? 0 : 3;
            attention_case(t % 2 ? 2 : 1, tokens[t], hd[h].heads, hd[h].D, 0, qkv_pad, out_pad);
            attention_case(3, tokens[t], hd[h].heads, hd[h].D, 1, qkv_pad, out_pad);
        }
    attention_errors();
}

/* ---- patch embedding ---------------------------------------------------- */

/*
 * Conv2d with stride = kernel = P of img [B, C, H, W] by weight [E, C, P, P]
 * (flattened to [E, C*P*P]) plus bias, written into a strided view [B, Np, E]
 * of a token buffer [B, 1 + Np, E + 3] (row 0 of each batch is the CLS slot
 * and must survive). Tolerance as for linear with K = C*P*P.
 */
static void patch_embed_case(int64_t B, int64_t C, int64_t H, int64_t W, int P, int64_t E,
                             int use_bias)
{
    rf_err err = {{0}};
    const int64_t gh = H / P, gw = W / P, Np = gh * gw, Kd = C * P * P, erow = E + 3;
    float *img = test_falloc(B * C * H * W), *w = test_falloc(E * Kd), *bias = test_falloc(E);
    float *tok = test_falloc(B * (1 + Np) * erow);
    test_fill_random(img, B * C * H * W, next_seed(), 1.0f);
    test_fill_random(w, E * Kd, next_seed(), 0.5f);
    test_fill_random(bias, E, next_seed(), 1.0f);
    float *img0 = fdup(img, B * C * H * W);
    test_fill_const(tok, B * (1 + Np) * erow, SENTINEL);
    int64_t ishape[4] = {B, C, H, W}, wshape[2] = {E, Kd};
    rf_tensor timg = rf_tensor_make(RF_F32, img, 4, ishape);
    rf_tensor ty = v3(tok + erow, B, Np, E, (1 + Np) * erow, erow);
    rf_linear proj;
    memset(&proj, 0, sizeof proj);
    proj.w = rf_tensor_make(RF_F32, w, 2, wshape);
    if (use_bias)
        proj.b = v1(bias, E);
    int rc = OPS->linear_prepare(g_be, &proj, &err);
    CHECKF(rc == 0, "patch_embed prepare: %s", err.msg);
    if (rc == 0) {
        rc = OPS->patch_embed(g_be, &ty, &timg, &proj, P, &err);
        CHECKF(rc == 0, "patch_embed: %s", err.msg);
        cmp c;
        cmp_begin(&c, "patch_embed", "B=%lld C=%lld %lldx%lld patch=%d E=%lld bias=%d",
                  (long long)B, (long long)C, (long long)H, (long long)W, P, (long long)E,
                  use_bias);
        for (int64_t b = 0; b < B; b++)
            for (int64_t py = 0; py < gh; py++)
                for (int64_t px = 0; px < gw; px++)
                    for (int64_t e = 0; e < E; e++) {
                        double s = use_bias ? bias[e] : 0.0, as = 0;
                        for (int64_t ch = 0; ch < C; ch++)
                            for (int ky = 0; ky < P; ky++)
                                for (int kx = 0; kx < P; kx++) {
                                    double pv = (double)w[e * Kd + (ch * P + ky) * P + kx] *
                                                img[((b * C + ch) * H + py * P + ky) * W +
                                                    px * P + kx];
                                    s += pv;
                                    as += fabs(pv);
                                }
                        double tol = 8 * EPS *
                                     (sqrt((double)Kd) * as + (use_bias ? fabs(bias[e]) : 0) +
                                      fabs(s));
                        cmp_add(&c, tok[(b * (1 + Np) + 1 + py * gw + px) * erow + e], s, tol);
                    }
        cmp_end(&c);
        check_untouched(tok, B * (1 + Np) * erow, &ty, "patch_embed token buffer");
        check_unchanged(img, img0, B * C * H * W, "patch_embed image");
        OPS->linear_release(g_be, &proj);
    }
    free(img);
    free(img0);
    free(w);
    free(bias);
    free(tok);
}

static void patch_embed_errors(void)
{
    rf_err ferr;
    rf_err err = {{0}};
    const int64_t B = 2, C = 3, H = 8, W = 12, E = 24;
    const int P = 4;
    const int64_t Np = (H / P) * (W / P), Kd = C * P * P;
    float *img = test_falloc(B * C * H * W), *w = test_falloc(E * (Kd + 1)), *bias = test_falloc(E + 1);
    float *y = test_falloc(B * (Np + 1) * (E + 1));
    test_fill_random(img, B * C * H * W, next_seed(), 1.0f);
    test_fill_random(w, E * (Kd + 1), next_seed(), 1.0f);
    test_fill_random(bias, E + 1, next_seed(), 1.0f);
    int64_t ishape[4] = {B, C, H, W}, wshape[2] = {E, Kd}, wshape2[2] = {E, Kd + 1};
    rf_tensor timg = rf_tensor_make(RF_F32, img, 4, ishape);
    rf_tensor ty = v3(y, B, Np, E, Np * E, E);
    rf_linear proj, proj_k;
    memset(&proj, 0, sizeof proj);
    memset(&proj_k, 0, sizeof proj_k);
    proj.w = rf_tensor_make(RF_F32, w, 2, wshape);
    proj.b = v1(bias, E);
    proj_k.w = rf_tensor_make(RF_F32, w, 2, wshape2);

    EXPECT_RC(RF_EINVAL, OPS->patch_embed(g_be, &ty, &timg, &proj, P, &ferr)); /* unprepared */
    int rc = OPS->linear_prepare(g_be, &proj, &err);
    CHECKF(rc == 0, "prepare: %s", err.msg);
    int rc2 = OPS->linear_prepare(g_be, &proj_k, &err);
    CHECKF(rc2 == 0, "prepare: %s", err.msg);
    if (rc == 0 && rc2 == 0) {
        int64_t s_3d[3] = {B * C, H, W};
        int64_t sh_odd[4] = {B, C, H - 1, W}; /* 7 rows: not a multiple of 4 */
        rf_tensor img_odd = rf_tensor_make(RF_F32, img, 4, sh_odd);
        rf_tensor img_3d = rf_tensor_make(RF_F32, img, 3, s_3d);
        rf_tensor img_nc = timg; /* non-contiguous */
        img_nc.stride[2] = W + 1;
        img_nc.shape[0] = 1;
        img_nc.stride[1] = (W + 1) * H;
        img_nc.stride[0] = C * (W + 1) * H;
        rf_tensor y_np = v3(y, B, Np + 1, E, (Np + 1) * E, E);
        rf_tensor y_e = v3(y, B, Np, E + 1, Np * (E + 1), E + 1);
        rf_tensor y_b = v3(y, B - 1, Np, E, Np * E, E);
        rf_tensor y_2d = v2(y, B * Np, E, E);
        /* biases of the wrong length; the short one is allocated exactly, so
         * reading E values from it would be a heap overflow under ASan */
        float *short_bias = test_falloc(E - 1);
        test_fill_random(short_bias, E - 1, next_seed(), 1.0f);
        rf_linear proj_b = proj, proj_s = proj;
        proj_b.b = v1(bias, E + 1);
        proj_s.b = v1(short_bias, E - 1);
        rf_tensor y_null = ty;
        y_null.data = NULL;
        EXPECT_RC(RF_EINVAL, OPS->patch_embed(g_be, &ty, &img_odd, &proj, P, &ferr));
        EXPECT_RC(RF_EINVAL, OPS->patch_embed(g_be, &ty, &timg, &proj, 0, &ferr));
        EXPECT_RC(RF_EINVAL, OPS->patch_embed(g_be, &ty, &timg, &proj, 5, &ferr));
        EXPECT_RC(RF_EINVAL, OPS->patch_embed(g_be, &ty, &img_3d, &proj, P, &ferr));
        EXPECT_RC(RF_EINVAL, OPS->patch_embed(g_be, &ty, &img_nc, &proj, P, &ferr));
        EXPECT_RC(RF_EINVAL, OPS->patch_embed(g_be, &ty, &timg, &proj_k, P, &ferr));
        EXPECT_RC(RF_EINVAL, OPS->patch_embed(g_be, &y_np, &timg, &proj, P, &ferr));
        EXPECT_RC(RF_EINVAL, OPS->patch_embed(g_be, &y_e, &timg, &proj, P, &ferr));
        EXPECT_RC(RF_EINVAL, OPS->patch_embed(g_be, &y_b, &timg, &proj, P, &ferr));
        EXPECT_RC(RF_EINVAL, OPS->patch_embed(g_be, &y_2d, &timg, &proj, P, &ferr));
        EXPECT_RC(RF_EINVAL, OPS->patch_embed(g_be, &ty, &timg, &proj_b, P, &ferr));
        EXPECT_RC(RF_EINVAL, OPS->patch_embed(g_be, &ty, &timg, &proj_s, P, &ferr));
        EXPECT_RC(RF_EINVAL, OPS->patch_embed(g_be, &y_null, &timg, &proj, P, &ferr));
        free(short_bias);
        rc = OPS->patch_embed(g_be, &ty, &timg, &proj, P, &err);
        CHECKF(rc == 0, "patch_embed after errors: %s", err.msg);
    }
    if (rc == 0)
        OPS->linear_release(g_be, &proj);
    if (rc2 == 0)
        OPS->linear_release(g_be, &proj_k);
    free(img);
    free(w);
    free(bias);
    free(y);
}

static void test_patch_embed(void)
{
    patch_embed_case(1, 1, 8, 12, 4, 24, 1);     /* one channel, non-square */
    patch_embed_case(2, 3, 28, 14, 7, 40, 0);    /* taller than wide, no bias */
    patch_embed_case(2, 3, 14, 14, 14, 100, 1);  /* a single patch */
    patch_embed_case(2, 3, 32, 48, 16, 72, 1);   /* ViT-B/16 patch size */
    patch_embed_case(1, 3, 288, 320, 32, 24, 1); /* 90 patches of 3072 values: staged in chunks */
    patch_embed_errors();
}

/* ---- embedding ---------------------------------------------------------- */

static void embedding_case(int64_t n, int64_t V, int64_t E)
{
    rf_err err = {{0}};
    const int64_t ldt = E + 5, ldy = E + 2;
    float *table = test_falloc(V * ldt), *y = test_falloc(n * ldy);
    test_fill_random(table, V * ldt, next_seed(), 1.0f);
    test_fill_const(y, n * ldy, SENTINEL);
    int32_t *ids = test_ialloc(n);
    float *r = test_falloc(n);
    test_fill_random(r, n, next_seed(), 1.0f);
    for (int64_t i = 0; i < n; i++)
        ids[i] = (int32_t)((r[i] + 1.0f) * 0.5f * (float)(V - 1) + 0.5f);
    ids[0] = (int32_t)(V - 1);
    if (n > 1)
        ids[n - 1] = 0;
    if (n > 2)
        ids[1] = ids[2]; /* a repeated id */
    rf_tensor tt = v2(table, V, E, ldt), ty = v2(y, n, E, ldy);
    rf_tensor ti = rf_tensor_make(RF_I32, ids, 1, &n);
    int rc = OPS->embedding(g_be, &ty, &tt, &ti, &err);
    CHECKF(rc == 0, "embedding: %s", err.msg);
    int64_t wrong = 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t e = 0; e < E; e++)
            wrong += y[i * ldy + e] != table[ids[i] * ldt + e];
    CHECKF(wrong == 0, "embedding n=%lld V=%lld E=%lld threads=%d: %lld values differ",
           (long long)n, (long long)V, (long long)E, g_threads, (long long)wrong);
    check_untouched(y, n * ldy, &ty, "embedding output padding");
    note_stat("embedding", wrong ? INFINITY : 0.0, n * E);
    free(table);
    free(y);
    free(ids);
    free(r);
}

static void embedding_errors(void)
{
    rf_err ferr;
    const int64_t V = 50, E = 40, n = 3;
    float *table = test_falloc(V * E), *y = test_falloc((n + 1) * (E + 1));
    test_fill_random(table, V * E, next_seed(), 1.0f);
    int32_t ids[3] = {1, 2, 3};
    rf_tensor tt = v2(table, V, E, E), ty = v2(y, n, E, E);
    int64_t nn = n;
    rf_tensor ti = rf_tensor_make(RF_I32, ids, 1, &nn);
    ids[1] = (int32_t)V; /* one past the end */
    EXPECT_RC(RF_EINVAL, OPS->embedding(g_be, &ty, &tt, &ti, &ferr));
    ids[1] = -1;
    EXPECT_RC(RF_EINVAL, OPS->embedding(g_be, &ty, &tt, &ti, &ferr));
    ids[1] = INT32_MAX;
    EXPECT_RC(RF_EINVAL, OPS->embedding(g_be, &ty, &tt, &ti, &ferr));
    ids[1] = 2;
    rf_tensor y_n = v2(y, n + 1, E, E), y_e = v2(y, n, E + 1, E + 1);
    rf_tensor ti_f = ti;
    ti_f.dtype = RF_F32;
    EXPECT_RC(RF_EINVAL, OPS->embedding(g_be, &y_n, &tt, &ti, &ferr));
    EXPECT_RC(RF_EINVAL, OPS->embedding(g_be, &y_e, &tt, &ti, &ferr));
    EXPECT_RC(RF_EINVAL, OPS->embedding(g_be, &ty, &tt, &ti_f, &ferr));
    rf_err err = {{0}};
    int rc = OPS->embedding(g_be, &ty, &tt, &ti, &err);
    CHECKF(rc == 0, "embedding after errors: %s", err.msg);
    free(table);
    free(y);
}

static void test_embedding(void)
{
    static const int64_t tokens[] = {1, 3, 17, 197};
    for (size_t t = 0; t < 4; t++)
        embedding_case(tokens[t], 50, t % 2 ? 40 : 100);
    embedding_errors();
}

/* ---- bicubic interpolation ---------------------------------------------- */

/* Keys' cubic convolution kernel with A = -0.75, as a function of distance. */
static double keys_kernel(double d)
{
    const double A = -0.75;
    d = fabs(d);
    if (d <= 1.0)
        return ((A + 2.0) * d - (A + 3.0)) * d * d + 1.0;
    if (d < 2.0)
        return A * d * d * d - 5.0 * A * d * d + 8.0 * A * d - 4.0 * A;
    return 0.0;
}

/* Taps and weights along one axis for output index o of out, input of in,
 * as PyTorch's upsample_bicubic2d with align_corners=False and an explicit
 * size: src = (o + 0.5) * in / out - 0.5, taps floor(src) - 1 .. + 2 with
 * weights of their distance to src, indices clamped to [0, in - 1]. */
static void bicubic_taps(int64_t o, int64_t in, int64_t out, int64_t idx[4], double wt[4])
{
    double src = ((double)o + 0.5) * (double)in / (double)out - 0.5;
    int64_t f = (int64_t)floor(src);
    for (int t = 0; t < 4; t++) {
        int64_t i = f - 1 + t;
        wt[t] = keys_kernel(src - (double)i);
        idx[t] = i < 0 ? 0 : (i > in - 1 ? in - 1 : i);
    }
}

/* x and y views are given; both buffers are checked against the reference
 * and for untouched padding. Tolerance: 4 * EPS * sum |w x| (a sum of 16
 * weighted fp32 values); exact for an identity resize. */
static void interp_check(rf_tensor *ty, const rf_tensor *tx, float *ybuf, int64_t ytotal,
                         const float *xbuf, int64_t xtotal, const char *what)
{
    rf_err err = {{0}};
    float *x0 = fdup(xbuf, xtotal);
    test_fill_const(ybuf, ytotal, SENTINEL);
    int rc = OPS->interp_bicubic(g_be, ty, tx, &err);
    CHECKF(rc == 0, "interp_bicubic %s: %s", what, err.msg);
    const int64_t C = tx->shape[0], H = tx->shape[1], W = tx->shape[2];
    const int64_t H2 = ty->shape[1], W2 = ty->shape[2];
    const float *xs = tx->data;
    const float *ys = ty->data;
    const int identity = H == H2 && W == W2;
    cmp c;
    cmp_begin(&c, "interp_bicubic", "%s C=%lld %lldx%lld -> %lldx%lld", what, (long long)C,
              (long long)H, (long long)W, (long long)H2, (long long)W2);
    for (int64_t ch = 0; ch < C; ch++)
        for (int64_t oy = 0; oy < H2; oy++) {
            int64_t iy[4];
            double wy[4];
            bicubic_taps(oy, H, H2, iy, wy);
            for (int64_t ox = 0; ox < W2; ox++) {
                int64_t ix[4];
                double wx[4];
                bicubic_taps(ox, W, W2, ix, wx);
                double want = 0, mag = 0;
                for (int a = 0; a < 4; a++)
                    for (int b = 0; b < 4; b++) {
                        double v = xs[ch * tx->stride[0] + iy[a] * tx->stride[1] +
                                      ix[b] * tx->stride[2]];
                        want += wy[a] * wx[b] * v;
                        mag += fabs(wy[a] * wx[b] * v);
                    }
                float got = ys[ch * ty->stride[0] + oy * ty->stride[1] + ox * ty->stride[2]];
                if (identity) {
                    float src = xs[ch * tx->stride[0] + oy * tx->stride[1] + ox * tx->stride[2]];
                    cmp_add(&c, got, src, 0.0);
                } else {
                    cmp_add(&c, got, want, 4 * EPS * mag);
                }
            }
        }
    cmp_end(&c);
    check_untouched(ybuf, ytotal, ty, "interp_bicubic output padding");
    check_unchanged(xbuf, x0, xtotal, "interp_bicubic input");
    free(x0);
}

/* Contiguous [C, H, W] -> [C, H2, W2]. */
static void interp_plain(int64_t C, int64_t H, int64_t W, int64_t H2, int64_t W2)
{
    float *x = test_falloc(C * H * W), *y = test_falloc(C * H2 * W2);
    test_fill_random(x, C * H * W, next_seed(), 2.0f);
    int64_t xs[3] = {C, H, W}, ys[3] = {C, H2, W2};
    rf_tensor tx = rf_tensor_make(RF_F32, x, 3, xs), ty = rf_tensor_make(RF_F32, y, 3, ys);
    interp_check(&ty, &tx, y, C * H2 * W2, x, C * H * W, "contiguous");
    free(x);
    free(y);
}

/*
 * The position-embedding use: a table [1 + H*W, E] (row 0 the CLS position)
 * whose grid rows are viewed channels-last as [E, H, W] with strides
 * (1, W*E, E), resized into the same layout [1 + H2*W2, E] of another table.
 */
static void interp_pos_embed(int64_t E, int64_t H, int64_t W, int64_t H2, int64_t W2)
{
    const int64_t xt = (1 + H * W) * E, yt = (1 + H2 * W2) * E;
    float *x = test_falloc(xt), *y = test_falloc(yt);
    test_fill_random(x, xt, next_seed(), 1.0f);
    rf_tensor tx = v3(x + E, E, H, W, 1, W * E), ty = v3(y + E, E, H2, W2, 1, W2 * E);
    tx.stride[2] = E;
    ty.stride[2] = E;
    interp_check(&ty, &tx, y, yt, x, xt, "pos-embed view");
    free(x);
    free(y);
}

static void interp_errors(void)
{
    rf_err ferr;
    float *x = test_falloc(3 * 4 * 4), *y = test_falloc(3 * 6 * 5);
    test_fill_random(x, 3 * 4 * 4, next_seed(), 1.0f);
    int64_t xs[3] = {3, 4, 4}, yc[3] = {2, 6, 5}, ye[3] = {3, 0, 5}, x2[2] = {12, 4};
    rf_tensor tx = rf_tensor_make(RF_F32, x, 3, xs);
    rf_tensor y_c = rf_tensor_make(RF_F32, y, 3, yc);
    rf_tensor y_e = rf_tensor_make(RF_F32, y, 3, ye);
    rf_tensor x_2d = rf_tensor_make(RF_F32, x, 2, x2);
    rf_tensor y_i = rf_tensor_make(RF_I32, y, 3, xs);
    EXPECT_RC(RF_EINVAL, OPS->interp_bicubic(g_be, &y_c, &tx, &ferr));
    EXPECT_RC(RF_EINVAL, OPS->interp_bicubic(g_be, &y_e, &tx, &ferr));
    EXPECT_RC(RF_EINVAL, OPS->interp_bicubic(g_be, &y_c, &x_2d, &ferr));
    EXPECT_RC(RF_EINVAL, OPS->interp_bicubic(g_be, &y_i, &tx, &ferr));
    free(x);
    free(y);
}

/* Fixed numbers, independent of both implementations: a 1-D ramp 0, 1, 2, 3
 * resized to 8 (scale 1/2: src = o/2 - 1/4) has exact dyadic values, worked
 * out with rational arithmetic from the A = -0.75 kernel; e.g. output 0 has
 * src = -0.25, taps -2..1 clamped to 0, 0, 0, 1, weight of the last tap
 * W(1.25) = -27/256. The ramp is preserved away from the borders
 * (outputs 3, 4 = 83/64, 109/64, i.e. linear plus the cubic's overshoot). A
 * constant image stays constant (the weights sum to 1). */
static void interp_known_values(void)
{
    rf_err err = {{0}};
    float x[4] = {0, 1, 2, 3}, y[8];
    int64_t xs[3] = {1, 1, 4}, ys[3] = {1, 1, 8};
    rf_tensor tx = rf_tensor_make(RF_F32, x, 3, xs), ty = rf_tensor_make(RF_F32, y, 3, ys);
    int rc = OPS->interp_bicubic(g_be, &ty, &tx, &err);
    CHECKF(rc == 0, "interp ramp: %s", err.msg);
    static const double want[8] = {-27 / 256.0, 49 / 256.0,  171 / 256.0, 83 / 64.0,
                                   109 / 64.0,  597 / 256.0, 719 / 256.0, 795 / 256.0};
    cmp c;
    cmp_begin(&c, "interp_bicubic", "ramp 4 -> 8 (exact values)");
    for (int i = 0; i < 8; i++)
        cmp_add(&c, y[i], want[i], 4 * EPS * 4);
    cmp_end(&c);

    float k[2 * 3 * 5], o[2 * 7 * 2];
    test_fill_const(k, 15, 0.75f);
    test_fill_const(k + 15, 15, -2.5f);
    int64_t ks[3] = {2, 3, 5}, os[3] = {2, 7, 2};
    rf_tensor tk = rf_tensor_make(RF_F32, k, 3, ks), to = rf_tensor_make(RF_F32, o, 3, os);
    rc = OPS->interp_bicubic(g_be, &to, &tk, &err);
    CHECKF(rc == 0, "interp constant: %s", err.msg);
    cmp_begin(&c, "interp_bicubic", "constant image");
    for (int i = 0; i < 28; i++)
        cmp_add(&c, o[i], i < 14 ? 0.75 : -2.5, 4 * EPS * 2.5 * 2);
    cmp_end(&c);
}

static void test_interp(void)
{
    interp_plain(1, 4, 4, 6, 5);   /* upsample */
    interp_plain(3, 7, 7, 3, 4);   /* downsample */
    interp_plain(3, 5, 6, 5, 6);   /* identity: exact */
    interp_plain(2, 1, 1, 3, 2);   /* single pixel */
    interp_plain(1, 17, 3, 40, 9); /* strong upsample, thin */
    interp_pos_embed(40, 4, 4, 7, 6);
    interp_pos_embed(24, 14, 14, 16, 16);
    interp_pos_embed(24, 16, 16, 11, 13);
    interp_pos_embed(24, 5, 5, 5, 5); /* identity through strided views */
    interp_known_values();
    interp_errors();
}

/* ---- main --------------------------------------------------------------- */

int main(void)
{
    rf_err ferr;
    rf_backend *none = NULL;
    EXPECT_RC(RF_EUNSUP, rf_backend_create(&none, "no-such-device", 1, &ferr));
    CHECK(none == NULL);

    static const int thread_counts[] = {1, 2, 3};
    for (size_t t = 0; t < sizeof thread_counts / sizeof thread_counts[0]; t++) {
        rf_err err = {{0}};
        g_threads = thread_counts[t];
        int rc = rf_backend_create(&g_be, "cpu", g_threads, &err);
        CHECKF(rc == 0 && g_be, "rf_backend_create(cpu, %d): %s", g_threads, err.msg);
        if (rc)
            continue;
        CHECK(strncmp(rf_backend_name(g_be), "cpu", 3) == 0);
        test_linear();
        test_matmul();
        test_layernorm();
        test_activation();
        test_add();
        test_softmax();
        test_attention();
        test_patch_embed();
        test_embedding();
        test_interp();
        rf_backend_destroy(g_be);
        g_be = NULL;
    }

    const char *verbose = getenv("RADFUSE_TEST_VERBOSE");
    if (verbose && *verbose && strcmp(verbose, "0") != 0)
        for (size_t i = 0; i < sizeof g_stats / sizeof g_stats[0] && g_stats[i].op; i++)
            printf("  %-15s worst error/tolerance %.3g over %lld elements\n", g_stats[i].op,
                   g_stats[i].worst, (long long)g_stats[i].elems);
    return test_finish("test_ops");
}
