/*
 * The host backward passes of fusion/grad.c against central finite
 * differences, everything in double precision.
 *
 * For an operation y = f(inputs) a random projection r gives the scalar
 * L = sum_i r_i y_i; the backward run with dy = r must give dL/dinput, and
 * for every element e of every input (all of them: the shapes are small)
 *   numeric = (L(e + h) - L(e - h)) / (2 h),  h = 1e-5,
 * must agree with it: |analytic - numeric| <= TOL * max(1, |numeric|), TOL =
 * 1e-6. The truncation error h^2 f''' / 6 is about 1e-10 and the rounding
 * error about 1e-16 |L| / h, 1e-10 here; a wrong term in a backward (a
 * missing 1/C, a transposed index, a dropped mask) is off by 1e-2 or more.
 *
 * Covered: linear (dx, dW, db; row counts around the 4- and 8-row tiles),
 * LayerNorm (dx, dgamma, dbeta), GELU erf and tanh, tanh, ReLU, softmax (with
 * scale, a key mask and a fully masked row), multi-head attention (dq, dk, dv
 * from one fused qkv array, with and without a key mask, with attention
 * groups as the fusion's cross attention has them), residual add,
 * layer scale, adaptive average pooling of a patch grid, the
 * sigmoid/temperature head, and whole pre-norm blocks (dx and every weight
 * gradient, with and without layer scale, both GELUs, with a key mask).
 * Set RADFUSE_TEST_VERBOSE=1 for the worst error per operation.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fusion/grad.h"
#include "tests/testutil.h"

#define H_STEP 1e-5
#define TOL 1e-6

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;

static double urand(void) /* in [-1, 1) */
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (double)(g_rng >> 11) / (double)(1ull << 52) - 1.0;
}

static double *drand(int64_t n, double scale)
{
    double *x = test_dalloc(n);
    for (int64_t i = 0; i < n; i++)
        x[i] = scale * urand();
    return x;
}

static double *dzeros(int64_t n)
{
    double *x = test_dalloc(n);
    memset(x, 0, (size_t)(n > 0 ? n : 1) * sizeof(double));
    return x;
}

/* ---- the checker ---- */

typedef double loss_fn(void *ctx);

static double g_worst;

/* Compares grad[0..n) with central differences of f in every element of x. */
static void fd_check(const char *what, loss_fn *f, void *ctx, double *x, const double *grad, int64_t n)
{
    double worst = 0;
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        double keep = x[i];
        x[i] = keep + H_STEP;
        double lp = f(ctx);
        x[i] = keep - H_STEP;
        double lm = f(ctx);
        x[i] = keep;
        double num = (lp - lm) / (2 * H_STEP);
        double e = fabs(num - grad[i]) / fmax(1.0, fabs(num));
        if (e > worst)
            worst = e;
        if (!(e <= TOL)) {
            if (bad++ < 3)
                fprintf(stderr, "%s: element %lld: analytic %.10g, numeric %.10g\n", what, (long long)i, grad[i], num);
        }
    }
    CHECKF(bad == 0, "%s: %lld of %lld gradients off (worst %.3g)", what, (long long)bad, (long long)n, worst);
    if (worst > g_worst)
        g_worst = worst;
    if (test_verbose())
        printf("%-40s n=%-6lld worst %.3g\n", what, (long long)n, worst);
}

static double dot(const double *a, const double *b, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

/* ---- linear ---- */

typedef struct {
    int M, K, N;
    double *x, *w, *b, *r, *y;
} lin_ctx;

static double lin_loss(void *p)
{
    lin_ctx *c = p;
    rf_g_linear_forward(c->y, c->x, c->w, c->b, c->M, c->K, c->N);
    return dot(c->y, c->r, (int64_t)c->M * c->N);
}

static void check_linear(int M, int K, int N, int bias)
{
    lin_ctx c = {M, K, N, drand((int64_t)M * K, 1), drand((int64_t)N * K, 1), bias ? drand(N, 1) : NULL,
                 drand((int64_t)M * N, 1), dzeros((int64_t)M * N)};
    double *dx = dzeros((int64_t)M * K), *dw = dzeros((int64_t)N * K), *db = dzeros(N);
    rf_g_linear_backward(dx, dw, db, c.r, c.x, c.w, M, K, N);
    char name[96];
    snprintf(name, sizeof name, "linear %dx%d->%d dx", M, K, N);
    fd_check(name, lin_loss, &c, c.x, dx, (int64_t)M * K);
    snprintf(name, sizeof name, "linear %dx%d->%d dW", M, K, N);
    fd_check(name, lin_loss, &c, c.w, dw, (int64_t)N * K);
    if (bias) {
        snprintf(name, sizeof name, "linear %dx%d->%d db", M, K, N);
        fd_check(name, lin_loss, &c, c.b, db, N);
    }
    /* accumulation: a second backward into the same arrays doubles them */
    double *dx2 = dzeros((int64_t)M * K);
    memcpy(dx2, dx, (size_t)M * K * sizeof(double));
    rf_g_linear_backward(dx2, NULL, NULL, c.r, c.x, c.w, M, K, N);
    double e = 0;
    for (int64_t i = 0; i < (int64_t)M * K; i++)
        e = fmax(e, fabs(dx2[i] - 2 * dx[i]));
    CHECKF(e < 1e-12, "linear backward accumulates (%g)", e);
    free(c.x), free(c.w), free(c.b), free(c.r), free(c.y), free(dx), free(dw), free(db), free(dx2);
}

/* ---- layernorm ---- */

typedef struct {
    int M, C;
    double *x, *g, *b, *r, *y;
} ln_ctx;

static double ln_loss(void *p)
{
    ln_ctx *c = p;
    rf_g_layernorm_forward(c->y, NULL, NULL, c->x, c->g, c->b, 1e-5, c->M, c->C);
    return dot(c->y, c->r, (int64_t)c->M * c->C);
}

static void check_layernorm(int M, int C, double offset)
{
    ln_ctx c = {M, C, drand((int64_t)M * C, 2), drand(C, 1), drand(C, 1), drand((int64_t)M * C, 1),
                dzeros((int64_t)M * C)};
    for (int64_t i = 0; i < (int64_t)M * C; i++)
        c.x[i] += offset;
    double *mean = dzeros(M), *rstd = dzeros(M);
    rf_g_layernorm_forward(c.y, mean, rstd, c.x, c.g, c.b, 1e-5, M, C);
    double *dx = dzeros((int64_t)M * C), *dg = dzeros(C), *db = dzeros(C);
    rf_g_layernorm_backward(dx, dg, db, c.r, c.x, mean, rstd, c.g, M, C);
    char name[96];
    snprintf(name, sizeof name, "layernorm %dx%d dx", M, C);
    fd_check(name, ln_loss, &c, c.x, dx, (int64_t)M * C);
    snprintf(name, sizeof name, "layernorm %dx%d dgamma", M, C);
    fd_check(name, ln_loss, &c, c.g, dg, C);
    snprintf(name, sizeof name, "layernorm %dx%d dbeta", M, C);
    fd_check(name, ln_loss, &c, c.b, db, C);
    free(c.x), free(c.g), free(c.b), free(c.r), free(c.y), free(mean), free(rstd), free(dx), free(dg), free(db);
}

/* ---- activations ---- */

typedef struct {
    int64_t n;
    rf_act act;
    double *x, *r, *y;
} act_ctx;

static double act_loss(void *p)
{
    act_ctx *c = p;
    rf_g_act_forward(c->y, c->x, c->n, c->act);
    return dot(c->y, c->r, c->n);
}

static void check_act(rf_act act, const char *name)
{
    act_ctx c = {300, act, drand(300, 6), drand(300, 1), dzeros(300)};
    for (int64_t i = 0; i < c.n; i++)
        if (fabs(c.x[i]) < 1e-3) /* ReLU has no derivative at 0 */
            c.x[i] = 0.5;
    double *dx = dzeros(c.n);
    rf_g_act_backward(dx, c.r, c.x, c.n, act);
    fd_check(name, act_loss, &c, c.x, dx, c.n);
    /* the forward against the definitions at a few points */
    double xs[3] = {-1.5, 0.3, 2.0}, ys[3];
    rf_g_act_forward(ys, xs, 3, act);
    for (int i = 0; i < 3; i++) {
        double v = xs[i], want = act == RF_ACT_GELU_ERF    ? 0.5 * v * (1 + erf(v / sqrt(2.0)))
                                 : act == RF_ACT_GELU_TANH ? 0.5 * v * (1 + tanh(sqrt(2 / M_PI) * (v + 0.044715 * v * v * v)))
                                 : act == RF_ACT_TANH      ? tanh(v)
                                                           : fmax(v, 0);
        CHECKF(fabs(ys[i] - want) < 1e-15, "%s(%g) = %.17g, want %.17g", name, v, ys[i], want);
    }
    free(c.x), free(c.r), free(c.y), free(dx);
}

/* ---- softmax ---- */

typedef struct {
    int R, C;
    const int32_t *mask;
    double scale;
    double *x, *r, *y;
} sm_ctx;

static double sm_loss(void *p)
{
    sm_ctx *c = p;
    rf_g_softmax_forward(c->y, c->x, c->mask, c->scale, c->R, c->C);
    return dot(c->y, c->r, (int64_t)c->R * c->C);
}

static void check_softmax(int R, int C, int masked, int all_masked)
{
    int32_t *mask = NULL;
    if (masked) {
        mask = test_ialloc(C);
        for (int c = 0; c < C; c++)
            mask[c] = all_masked ? 0 : (c % 3 != 1);
    }
    sm_ctx c = {R, C, mask, 0.7, drand((int64_t)R * C, 4), drand((int64_t)R * C, 1), dzeros((int64_t)R * C)};
    rf_g_softmax_forward(c.y, c.x, mask, c.scale, R, C);
    /* rows sum to 1 (0 when every key is masked), masked entries are 0 */
    for (int r = 0; r < R; r++) {
        double s = 0;
        for (int k = 0; k < C; k++) {
            s += c.y[(int64_t)r * C + k];
            if (mask && !mask[k])
                CHECK(c.y[(int64_t)r * C + k] == 0.0);
        }
        CHECKF(fabs(s - (all_masked ? 0.0 : 1.0)) < 1e-14, "softmax row sum %.17g", s);
    }
    double *dx = dzeros((int64_t)R * C);
    rf_g_softmax_backward(dx, c.r, c.y, c.scale, R, C);
    char name[96];
    snprintf(name, sizeof name, "softmax %dx%d%s", R, C, all_masked ? " all masked" : masked ? " masked" : "");
    fd_check(name, sm_loss, &c, c.x, dx, (int64_t)R * C);
    free(mask), free(c.x), free(c.r), free(c.y), free(dx);
}

/* ---- attention ---- */

typedef struct {
    int T, H, D;
    const int32_t *mask, *group;
    double *qkv, *r, *out, *probs;
} att_ctx;

static double att_loss(void *p)
{
    att_ctx *c = p;
    int HD = c->H * c->D;
    rf_g_attention_forward(c->out, c->probs, c->qkv, c->qkv + HD, c->qkv + 2 * HD, 3 * HD, c->mask, c->group, c->T,
                           c->H, c->D, 1.0 / sqrt((double)c->D));
    return dot(c->out, c->r, (int64_t)c->T * HD);
}

/* masked: 1 pads the tail; 2 puts the rows in groups instead (the fusion's
 * cross attention: rows 1..T/2 see only each other, the last third only
 * each other, the rest everything) */
static void check_attention(int T, int H, int D, int masked)
{
    int HD = H * D;
    int32_t *mask = NULL, *group = NULL;
    if (masked == 1) {
        mask = test_ialloc(T);
        for (int t = 0; t < T; t++)
            mask[t] = t < T - T / 3; /* padding at the tail, as batches have it */
    } else if (masked == 2) {
        group = test_ialloc(T);
        for (int t = 0; t < T; t++)
            group[t] = t >= 1 && t <= T / 2 ? 1 : t >= T - T / 3 ? 2 : 0;
    }
    att_ctx c = {T, H, D, mask, group, drand((int64_t)T * 3 * HD, 1.5), drand((int64_t)T * HD, 1), dzeros((int64_t)T * HD),
                 dzeros((int64_t)H * T * T)};
    att_loss(&c);
    double *dqkv = dzeros((int64_t)T * 3 * HD);
    rf_err err;
    int rc = rf_g_attention_backward(dqkv, dqkv + HD, dqkv + 2 * HD, 3 * HD, c.r, c.probs, c.qkv, c.qkv + HD,
                                     c.qkv + 2 * HD, T, H, D, 1.0 / sqrt((double)D), &err);
    CHECK(rc == 0);
    char name[96];
    snprintf(name, sizeof name, "attention T=%d H=%d D=%d%s dqkv", T, H, D,
             masked == 1 ? " masked" : masked == 2 ? " groups" : "");
    fd_check(name, att_loss, &c, c.qkv, dqkv, (int64_t)T * 3 * HD);
    /* padded keys and keys outside a query's group get no weight; the rest sum to 1 */
    for (int h = 0; h < H; h++)
        for (int i = 0; i < T; i++) {
            double s = 0;
            for (int j = 0; j < T; j++) {
                double pij = c.probs[((int64_t)h * T + i) * T + j];
                s += pij;
                if ((mask && !mask[j]) || (group && group[i] && group[i] != group[j]))
                    CHECK(pij == 0.0);
            }
            CHECK(fabs(s - 1) < 1e-14);
        }
    free(mask), free(group), free(c.qkv), free(c.r), free(c.out), free(c.probs), free(dqkv);
}

/* ---- add, layer scale, pooling ---- */

typedef struct {
    int M, C;
    double *x, *g, *r, *y;
} sc_ctx;

static double sc_loss(void *p)
{
    sc_ctx *c = p;
    rf_g_scale_forward(c->y, c->x, c->g, c->M, c->C);
    return dot(c->y, c->r, (int64_t)c->M * c->C);
}

static double add_loss(void *p)
{
    sc_ctx *c = p; /* x and g are the two [M, C] operands here */
    rf_g_add_forward(c->y, c->x, c->g, (int64_t)c->M * c->C);
    return dot(c->y, c->r, (int64_t)c->M * c->C);
}

static void check_scale_add(int M, int C)
{
    sc_ctx c = {M, C, drand((int64_t)M * C, 1), drand(C, 1), drand((int64_t)M * C, 1), dzeros((int64_t)M * C)};
    double *dx = dzeros((int64_t)M * C), *dg = dzeros(C);
    rf_g_scale_backward(dx, dg, c.r, c.x, c.g, M, C);
    fd_check("layer scale dx", sc_loss, &c, c.x, dx, (int64_t)M * C);
    fd_check("layer scale dgamma", sc_loss, &c, c.g, dg, C);
    free(c.g);
    c.g = drand((int64_t)M * C, 1);
    double *da = dzeros((int64_t)M * C), *db = dzeros((int64_t)M * C);
    rf_g_add_backward(da, db, c.r, (int64_t)M * C);
    fd_check("residual add da", add_loss, &c, c.x, da, (int64_t)M * C);
    fd_check("residual add db", add_loss, &c, c.g, db, (int64_t)M * C);
    free(c.x), free(c.g), free(c.r), free(c.y), free(dx), free(dg), free(da), free(db);
}

typedef struct {
    int gh, gw, oh, ow, C;
    double *x, *r, *y;
} pool_ctx;

static double pool_loss(void *p)
{
    pool_ctx *c = p;
    rf_g_pool_forward(c->y, c->x, c->gh, c->gw, c->oh, c->ow, c->C);
    return dot(c->y, c->r, (int64_t)c->oh * c->ow * c->C);
}

static void check_pool(int gh, int gw, int oh, int ow, int C)
{
    int64_t nin = (int64_t)gh * gw * C, nout = (int64_t)oh * ow * C;
    pool_ctx c = {gh, gw, oh, ow, C, drand(nin, 1), drand(nout, 1), dzeros(nout)};
    double *dx = dzeros(nin);
    rf_g_pool_backward(dx, c.r, gh, gw, oh, ow, C);
    char name[96];
    snprintf(name, sizeof name, "pool %dx%d->%dx%d", gh, gw, oh, ow);
    fd_check(name, pool_loss, &c, c.x, dx, nin);
    /* a constant grid pools to the same constant */
    for (int64_t i = 0; i < nin; i++)
        c.x[i] = 3.25;
    pool_loss(&c);
    for (int64_t i = 0; i < nout; i++)
        CHECK(fabs(c.y[i] - 3.25) < 1e-14);
    free(c.x), free(c.r), free(c.y), free(dx);
}

/* the known case: 4x4 -> 2x2 is the mean of each 2x2 quarter; 5 -> 2 overlaps
 * at the middle row as PyTorch's adaptive pooling does (rows 0-2 and 2-4) */
static void check_pool_windows(void)
{
    double x[5 * 1], y[2];
    for (int i = 0; i < 5; i++)
        x[i] = i;
    rf_g_pool_forward(y, x, 5, 1, 2, 1, 1);
    CHECKF(fabs(y[0] - 1.0) < 1e-15 && fabs(y[1] - 3.0) < 1e-15, "pool 5->2: %g %g", y[0], y[1]);
}

typedef struct {
    double z, t;
} head_ctx;

static double head_loss(void *p)
{
    head_ctx *c = p;
    return rf_g_sigmoid_temp(c->z, c->t);
}

static void check_head(void)
{
    double zs[] = {-40, -3, -0.2, 0, 0.7, 5, 40}, ts[] = {0.5, 1.0, 1.7};
    for (size_t i = 0; i < sizeof zs / sizeof zs[0]; i++)
        for (size_t j = 0; j < sizeof ts / sizeof ts[0]; j++) {
            head_ctx c = {zs[i], ts[j]};
            double g = rf_g_sigmoid_temp_grad(c.z, c.t);
            fd_check("sigmoid/temperature head", head_loss, &c, &c.z, &g, 1);
            double p = rf_g_sigmoid_temp(c.z, c.t);
            CHECK(p >= 0 && p <= 1 && isfinite(p));
        }
    CHECK(fabs(rf_g_sigmoid_temp(1.0, 2.0) - 1.0 / (1.0 + exp(-0.5))) < 1e-16);
}

/* ---- whole blocks ---- */

typedef struct {
    rf_hblock *b;
    rf_hblock_cache *cache;
    const int32_t *mask, *group;
    int T;
    double *x, *r, *y;
} blk_ctx;

static double blk_loss(void *p)
{
    blk_ctx *c = p;
    rf_hblock_forward(c->b, c->cache, c->x, c->mask, c->group, c->T, c->y);
    return dot(c->y, c->r, (int64_t)c->T * c->b->C);
}

static void fill(double *x, int64_t n, double scale, double offset)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = offset + scale * urand();
}

static void check_block(int C, int H, int I, int T, int layer_scale, rf_act act, int masked)
{
    rf_err err;
    rf_hblock b, g;
    CHECK(rf_hblock_alloc(&b, C, H, I, act, 1e-6, layer_scale, &err) == 0);
    CHECK(rf_hblock_alloc(&g, C, H, I, act, 1e-6, layer_scale, &err) == 0);
    int64_t c = C, i = I;
    fill(b.qkv_w, 3 * c * c, 0.5, 0), fill(b.qkv_b, 3 * c, 0.1, 0), fill(b.proj_w, c * c, 0.3, 0);
    fill(b.proj_b, c, 0.1, 0), fill(b.fc1_w, i * c, 0.3, 0), fill(b.fc1_b, i, 0.1, 0);
    fill(b.fc2_w, c * i, 0.3, 0), fill(b.fc2_b, c, 0.1, 0);
    fill(b.ln1_g, c, 0.2, 1), fill(b.ln1_b, c, 0.1, 0), fill(b.ln2_g, c, 0.2, 1), fill(b.ln2_b, c, 0.1, 0);
    if (layer_scale)
        fill(b.ls1, c, 0.3, 0.5), fill(b.ls2, c, 0.3, 0.5);
    int32_t *mask = NULL, *group = NULL;
    if (masked == 1) {
        mask = test_ialloc(T);
        for (int t = 0; t < T; t++)
            mask[t] = t < T - 2;
    } else if (masked == 2) {
        group = test_ialloc(T);
        for (int t = 0; t < T; t++)
            group[t] = t >= T / 2 ? 1 : 0;
    }
    rf_hblock_cache cache;
    CHECK(rf_hblock_cache_alloc(&cache, &b, T, &err) == 0);
    blk_ctx ctx = {&b, &cache, mask, group, T, drand((int64_t)T * C, 1.5), drand((int64_t)T * C, 1), dzeros((int64_t)T * C)};
    blk_loss(&ctx);
    double *dx = dzeros((int64_t)T * C);
    CHECK(rf_hblock_backward(&b, &cache, ctx.r, dx, &g, &err) == 0);
    char name[128];
    snprintf(name, sizeof name, "block C=%d H=%d I=%d T=%d%s%s%s", C, H, I, T, layer_scale ? " ls" : "",
             act == RF_ACT_GELU_TANH ? " tanh" : "", masked == 1 ? " masked" : masked == 2 ? " groups" : "");
    char n2[160];
    snprintf(n2, sizeof n2, "%s dx", name);
    fd_check(n2, blk_loss, &ctx, ctx.x, dx, (int64_t)T * C);
    struct {
        const char *what;
        double *w, *gw;
        int64_t n;
    } params[] = {
        {"qkv.w", b.qkv_w, g.qkv_w, 3 * c * c}, {"qkv.b", b.qkv_b, g.qkv_b, 3 * c},
        {"proj.w", b.proj_w, g.proj_w, c * c},   {"proj.b", b.proj_b, g.proj_b, c},
        {"fc1.w", b.fc1_w, g.fc1_w, i * c},      {"fc1.b", b.fc1_b, g.fc1_b, i},
        {"fc2.w", b.fc2_w, g.fc2_w, c * i},      {"fc2.b", b.fc2_b, g.fc2_b, c},
        {"ln1.g", b.ln1_g, g.ln1_g, c},          {"ln1.b", b.ln1_b, g.ln1_b, c},
        {"ln2.g", b.ln2_g, g.ln2_g, c},          {"ln2.b", b.ln2_b, g.ln2_b, c},
        {"ls1", b.ls1, g.ls1, layer_scale ? c : 0}, {"ls2", b.ls2, g.ls2, layer_scale ? c : 0},
    };
    for (size_t k = 0; k < sizeof params / sizeof params[0]; k++) {
        if (!params[k].n)
            continue;
        snprintf(n2, sizeof n2, "%s d%s", name, params[k].what);
        fd_check(n2, blk_loss, &ctx, params[k].w, params[k].gw, params[k].n);
    }
    /* the attention the block used is what rf_hblock_attention_probs gives */
    double *probs = dzeros((int64_t)H * T * T);
    CHECK(rf_hblock_attention_probs(&b, ctx.x, mask, group, T, probs, &err) == 0);
    blk_loss(&ctx);
    double e = 0;
    for (int64_t k = 0; k < (int64_t)H * T * T; k++)
        e = fmax(e, fabs(probs[k] - cache.probs[k]));
    CHECKF(e == 0.0, "attention probs differ by %g", e);
    free(probs), free(mask), free(group), free(ctx.x), free(ctx.r), free(ctx.y), free(dx);
    rf_hblock_cache_free(&cache);
    rf_hblock_free(&b);
    rf_hblock_free(&g);
}

int main(void)
{
    int lin[][3] = {{1, 1, 1}, {3, 5, 7}, {4, 8, 3}, {9, 16, 4}, {13, 7, 10}};
    for (size_t i = 0; i < sizeof lin / sizeof lin[0]; i++) {
        check_linear(lin[i][0], lin[i][1], lin[i][2], 1);
        check_linear(lin[i][0], lin[i][1], lin[i][2], 0);
    }
    check_layernorm(1, 2, 0);
    check_layernorm(3, 7, 0);
    check_layernorm(5, 64, 10.0);
    check_act(RF_ACT_GELU_ERF, "gelu (erf)");
    check_act(RF_ACT_GELU_TANH, "gelu (tanh)");
    check_act(RF_ACT_TANH, "tanh");
    check_act(RF_ACT_RELU, "relu");
    check_softmax(1, 1, 0, 0);
    check_softmax(4, 7, 0, 0);
    check_softmax(3, 33, 1, 0);
    check_softmax(2, 5, 1, 1);
    int att[][3] = {{1, 1, 1}, {5, 2, 3}, {9, 3, 4}, {17, 4, 8}};
    for (size_t i = 0; i < sizeof att / sizeof att[0]; i++) {
        check_attention(att[i][0], att[i][1], att[i][2], 0);
        if (att[i][0] > 2) {
            check_attention(att[i][0], att[i][1], att[i][2], 1);
            check_attention(att[i][0], att[i][1], att[i][2], 2);
        }
    }
    check_scale_add(4, 6);
    check_pool(4, 4, 2, 2, 3);
    check_pool(5, 7, 2, 3, 2);
    check_pool(6, 6, 6, 6, 1);
    check_pool(7, 5, 3, 1, 2);
    check_pool_windows();
    check_head();
    check_block(8, 2, 16, 5, 0, RF_ACT_GELU_ERF, 0);
    check_block(8, 2, 16, 6, 1, RF_ACT_GELU_TANH, 1);
    check_block(12, 3, 20, 9, 1, RF_ACT_GELU_ERF, 1);
    check_block(8, 2, 12, 7, 0, RF_ACT_GELU_ERF, 2);
    printf("worst |analytic - numeric| / max(1, |numeric|): %.3g (tolerance %g)\n", g_worst, TOL);
    return test_finish("test_grad");
}
