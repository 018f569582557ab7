/*
 * Host forward and backward passes in double precision (fusion/grad.h).
 * Each backward is the chain rule of its forward written out; the comments
 * give the formula, the loops follow it.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fusion/grad.h"

/* ---- linear ---- */

void rf_g_linear_forward(double *y, const double *x, const double *w, const double *b, int M, int K, int N)
{
    /* four rows of x per pass over W, so each weight row is read from memory
     * once per four outputs */
    int m = 0;
    for (; m + 4 <= M; m += 4) {
        const double *x0 = x + (int64_t)m * K, *x1 = x0 + K, *x2 = x1 + K, *x3 = x2 + K;
        for (int n = 0; n < N; n++) {
            const double *wn = w + (int64_t)n * K;
            double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            for (int k = 0; k < K; k++) {
                s0 += x0[k] * wn[k];
                s1 += x1[k] * wn[k];
                s2 += x2[k] * wn[k];
                s3 += x3[k] * wn[k];
            }
            double bn = b ? b[n] : 0.0;
            y[(int64_t)m * N + n] = s0 + bn;
            y[(int64_t)(m + 1) * N + n] = s1 + bn;
            y[(int64_t)(m + 2) * N + n] = s2 + bn;
            y[(int64_t)(m + 3) * N + n] = s3 + bn;
        }
    }
    for (; m < M; m++) {
        const double *xm = x + (int64_t)m * K;
        for (int n = 0; n < N; n++) {
            const double *wn = w + (int64_t)n * K;
            double s = 0;
            for (int k = 0; k < K; k++)
                s += xm[k] * wn[k];
            y[(int64_t)m * N + n] = s + (b ? b[n] : 0.0);
        }
    }
}

void rf_g_linear_backward(double *dx, double *dw, double *db, const double *dy, const double *x, const double *w,
                          int M, int K, int N)
{
    if (dx) {
        /* dx[m, :] += sum_n dy[m, n] W[n, :], eight rows per pass over W */
        for (int m0 = 0; m0 < M; m0 += 8) {
            int m1 = m0 + 8 < M ? m0 + 8 : M;
            for (int n = 0; n < N; n++) {
                const double *wn = w + (int64_t)n * K;
                for (int m = m0; m < m1; m++) {
                    double g = dy[(int64_t)m * N + n];
                    if (g == 0.0)
                        continue;
                    double *dxm = dx + (int64_t)m * K;
                    for (int k = 0; k < K; k++)
                        dxm[k] += g * wn[k];
                }
            }
        }
    }
    if (dw || db) {
        for (int n = 0; n < N; n++) {
            double *dwn = dw ? dw + (int64_t)n * K : NULL;
            double sb = 0;
            for (int m = 0; m < M; m++) {
                double g = dy[(int64_t)m * N + n];
                sb += g;
                if (dwn && g != 0.0) {
                    const double *xm = x + (int64_t)m * K;
                    for (int k = 0; k < K; k++)
                        dwn[k] += g * xm[k];
                }
            }
            if (db)
                db[n] += sb;
        }
    }
}

/* ---- layernorm ---- */

void rf_g_layernorm_forward(double *y, double *mean, double *rstd, const double *x, const double *g,
                            const double *b, double eps, int M, int C)
{
    for (int m = 0; m < M; m++) {
        const double *xm = x + (int64_t)m * C;
        double mu = 0, var = 0;
        for (int c = 0; c < C; c++)
            mu += xm[c];
        mu /= C;
        for (int c = 0; c < C; c++)
            var += (xm[c] - mu) * (xm[c] - mu);
        double rs = 1.0 / sqrt(var / C + eps);
        for (int c = 0; c < C; c++)
            y[(int64_t)m * C + c] = (xm[c] - mu) * rs * g[c] + (b ? b[c] : 0.0);
        if (mean)
            mean[m] = mu;
        if (rstd)
            rstd[m] = rs;
    }
}

void rf_g_layernorm_backward(double *dx, double *dg, double *db, const double *dy, const double *x,
                             const double *mean, const double *rstd, const double *g, int M, int C)
{
    /* with n = (x - mean) rstd and dn = dy g:
     *   dx = rstd (dn - mean(dn) - n mean(dn n)) */
    for (int m = 0; m < M; m++) {
        const double *xm = x + (int64_t)m * C, *dym = dy + (int64_t)m * C;
        double mu = mean[m], rs = rstd[m];
        double mdn = 0, mdnn = 0;
        for (int c = 0; c < C; c++) {
            double n = (xm[c] - mu) * rs, dn = dym[c] * g[c];
            mdn += dn;
            mdnn += dn * n;
            if (dg)
                dg[c] += dym[c] * n;
            if (db)
                db[c] += dym[c];
        }
        mdn /= C;
        mdnn /= C;
        if (dx)
            for (int c = 0; c < C; c++) {
                double n = (xm[c] - mu) * rs;
                dx[(int64_t)m * C + c] += rs * (dym[c] * g[c] - mdn - n * mdnn);
            }
    }
}

/* ---- activations ---- */

#define SQRT_2_OVER_PI 0.79788456080286535588
#define GELU_TANH_C 0.044715

void rf_g_act_forward(double *y, const double *x, int64_t n, rf_act act)
{
    for (int64_t i = 0; i < n; i++) {
        double v = x[i];
        switch (act) {
        case RF_ACT_GELU_ERF: y[i] = 0.5 * v * (1.0 + erf(v * M_SQRT1_2)); break;
        case RF_ACT_GELU_TANH:
            y[i] = 0.5 * v * (1.0 + tanh(SQRT_2_OVER_PI * (v + GELU_TANH_C * v * v * v)));
            break;
        case RF_ACT_TANH: y[i] = tanh(v); break;
        case RF_ACT_RELU: y[i] = v > 0 ? v : 0; break;
        default: y[i] = v; break;
        }
    }
}

void rf_g_act_backward(double *dx, const double *dy, const double *x, int64_t n, rf_act act)
{
    for (int64_t i = 0; i < n; i++) {
        double v = x[i], d;
        switch (act) {
        case RF_ACT_GELU_ERF:
            /* Phi(v) + v phi(v) */
            d = 0.5 * (1.0 + erf(v * M_SQRT1_2)) + v * exp(-0.5 * v * v) * (0.5 * M_2_SQRTPI * M_SQRT1_2);
            break;
        case RF_ACT_GELU_TANH: {
            double u = SQRT_2_OVER_PI * (v + GELU_TANH_C * v * v * v), t = tanh(u);
            d = 0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_TANH_C * v * v);
            break;
        }
        case RF_ACT_TANH: {
            double t = tanh(v);
            d = 1.0 - t * t;
            break;
        }
        case RF_ACT_RELU: d = v > 0 ? 1.0 : 0.0; break;
        default: d = 1.0; break;
        }
        dx[i] += dy[i] * d;
    }
}

/* ---- softmax ---- */

void rf_g_softmax_forward(double *y, const double *x, const int32_t *mask, double scale, int R, int C)
{
    for (int r = 0; r < R; r++) {
        const double *xr = x + (int64_t)r * C;
        double *yr = y + (int64_t)r * C;
        double mx = -INFINITY;
        for (int c = 0; c < C; c++)
            if ((!mask || mask[c]) && scale * xr[c] > mx)
                mx = scale * xr[c];
        double sum = 0;
        for (int c = 0; c < C; c++) {
            yr[c] = (!mask || mask[c]) ? exp(scale * xr[c] - mx) : 0.0;
            sum += yr[c];
        }
        double inv = sum > 0 ? 1.0 / sum : 0.0; /* a fully masked row stays 0 */
        for (int c = 0; c < C; c++)
            yr[c] *= inv;
    }
}

void rf_g_softmax_backward(double *dx, const double *dy, const double *y, double scale, int R, int C)
{
    for (int r = 0; r < R; r++) {
        const double *yr = y + (int64_t)r * C, *dyr = dy + (int64_t)r * C;
        double dot = 0;
        for (int c = 0; c < C; c++)
            dot += dyr[c] * yr[c];
        for (int c = 0; c < C; c++)
            dx[(int64_t)r * C + c] += scale * yr[c] * (dyr[c] - dot);
    }
}

/* ---- attention ---- */

/* Whether query i may attend to key j. */
static int allowed(const int32_t *mask, const int32_t *group, int i, int j)
{
    return (!mask || mask[j]) && (!group || !group[i] || group[i] == group[j]);
}

void rf_g_attention_forward(double *out, double *probs, const double *q, const double *k, const double *v, int ld,
                            const int32_t *mask, const int32_t *group, int T, int H, int D, double scale)
{
    int HD = H * D;
    for (int h = 0; h < H; h++) {
        for (int i = 0; i < T; i++) {
            const double *qi = q + (int64_t)i * ld + h * D;
            double *p = probs + ((int64_t)h * T + i) * T;
            /* scores of the allowed keys, then their softmax in place */
            double mx = -INFINITY;
            for (int j = 0; j < T; j++) {
                if (!allowed(mask, group, i, j)) {
                    p[j] = 0;
                    continue;
                }
                const double *kj = k + (int64_t)j * ld + h * D;
                double d = 0;
                for (int e = 0; e < D; e++)
                    d += qi[e] * kj[e];
                p[j] = scale * d;
                if (p[j] > mx)
                    mx = p[j];
            }
            double sum = 0;
            for (int j = 0; j < T; j++)
                if (allowed(mask, group, i, j)) {
                    p[j] = exp(p[j] - mx);
                    sum += p[j];
                }
            double inv = sum > 0 ? 1.0 / sum : 0.0; /* no key at all: a zero row */
            double *oi = out + (int64_t)i * HD + h * D;
            for (int e = 0; e < D; e++)
                oi[e] = 0;
            for (int j = 0; j < T; j++) {
                p[j] *= inv;
                if (p[j] == 0.0)
                    continue;
                const double *vj = v + (int64_t)j * ld + h * D;
                for (int e = 0; e < D; e++)
                    oi[e] += p[j] * vj[e];
            }
        }
    }
}

int rf_g_attention_backward(double *dq, double *dk, double *dv, int ld, const double *dout, const double *probs,
                            const double *q, const double *k, const double *v, int T, int H, int D, double scale,
                            rf_err *err)
{
    /* out_i = sum_j p_ij v_j, p_i = softmax(scale q_i . k_j):
     *   dv_j += p_ij dout_i;  dp_ij = dout_i . v_j;
     *   ds_ij = p_ij (dp_ij - sum_j p_ij dp_ij);
     *   dq_i += scale sum_j ds_ij k_j;  dk_j += scale ds_ij q_i */
    int HD = H * D;
    double *dp = malloc((size_t)T * sizeof(double));
    if (!dp)
        return rf_err_set(err, RF_ENOMEM, "attention backward: cannot allocate %d scores", T);
    for (int h = 0; h < H; h++) {
        for (int i = 0; i < T; i++) {
            const double *p = probs + ((int64_t)h * T + i) * T;
            const double *doi = dout + (int64_t)i * HD + h * D;
            double dot = 0;
            for (int j = 0; j < T; j++) {
                double d = 0;
                if (p[j] != 0.0) {
                    const double *vj = v + (int64_t)j * ld + h * D;
                    for (int e = 0; e < D; e++)
                        d += doi[e] * vj[e];
                    if (dv) {
                        double *dvj = dv + (int64_t)j * ld + h * D;
                        for (int e = 0; e < D; e++)
                            dvj[e] += p[j] * doi[e];
                    }
                }
                dp[j] = d;
                dot += p[j] * d;
            }
            const double *qi = q + (int64_t)i * ld + h * D;
            double *dqi = dq ? dq + (int64_t)i * ld + h * D : NULL;
            for (int j = 0; j < T; j++) {
                double ds = scale * p[j] * (dp[j] - dot);
                if (ds == 0.0)
                    continue;
                const double *kj = k + (int64_t)j * ld + h * D;
                if (dqi)
                    for (int e = 0; e < D; e++)
                        dqi[e] += ds * kj[e];
                if (dk) {
                    double *dkj = dk + (int64_t)j * ld + h * D;
                    for (int e = 0; e < D; e++)
                        dkj[e] += ds * qi[e];
                }
            }
        }
    }
    free(dp);
    return RF_OK;
}

/* ---- residual, layer scale, pooling, head ---- */

void rf_g_add_forward(double *y, const double *a, const double *b, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = a[i] + b[i];
}

void rf_g_add_backward(double *da, double *db, const double *dy, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        if (da)
            da[i] += dy[i];
        if (db)
            db[i] += dy[i];
    }
}

void rf_g_scale_forward(double *y, const double *x, const double *gamma, int M, int C)
{
    for (int m = 0; m < M; m++)
        for (int c = 0; c < C; c++)
            y[(int64_t)m * C + c] = x[(int64_t)m * C + c] * gamma[c];
}

void rf_g_scale_backward(double *dx, double *dgamma, const double *dy, const double *x, const double *gamma, int M,
                         int C)
{
    for (int m = 0; m < M; m++)
        for (int c = 0; c < C; c++) {
            int64_t i = (int64_t)m * C + c;
            if (dx)
                dx[i] += dy[i] * gamma[c];
            if (dgamma)
                dgamma[c] += dy[i] * x[i];
        }
}

/* Adaptive pooling window [*lo, *hi) of cell i of n over a side of len. */
static void pool_window(int i, int n, int len, int *lo, int *hi)
{
    *lo = (int)(((int64_t)i * len) / n);
    *hi = (int)(((int64_t)(i + 1) * len + n - 1) / n);
}

void rf_g_pool_forward(double *y, const double *x, int gh, int gw, int oh, int ow, int C)
{
    for (int oy = 0; oy < oh; oy++) {
        int y0, y1;
        pool_window(oy, oh, gh, &y0, &y1);
        for (int ox = 0; ox < ow; ox++) {
            int x0, x1;
            pool_window(ox, ow, gw, &x0, &x1);
            double *yo = y + ((int64_t)oy * ow + ox) * C;
            double inv = 1.0 / ((y1 - y0) * (x1 - x0));
            for (int c = 0; c < C; c++)
                yo[c] = 0;
            for (int r = y0; r < y1; r++)
                for (int q = x0; q < x1; q++)
                    for (int c = 0; c < C; c++)
                        yo[c] += x[((int64_t)r * gw + q) * C + c] * inv;
        }
    }
}

void rf_g_pool_backward(double *dx, const double *dy, int gh, int gw, int oh, int ow, int C)
{
    for (int oy = 0; oy < oh; oy++) {
        int y0, y1;
        pool_window(oy, oh, gh, &y0, &y1);
        for (int ox = 0; ox < ow; ox++) {
            int x0, x1;
            pool_window(ox, ow, gw, &x0, &x1);
            const double *dyo = dy + ((int64_t)oy * ow + ox) * C;
            double inv = 1.0 / ((y1 - y0) * (x1 - x0));
            for (int r = y0; r < y1; r++)
                for (int q = x0; q < x1; q++)
                    for (int c = 0; c < C; c++)
                        dx[((int64_t)r * gw + q) * C + c] += dyo[c] * inv;
        }
    }
}

double rf_g_sigmoid_temp(double z, double temperature)
{
    double u = z / temperature;
    /* the form that does not overflow exp for either sign */
    if (u >= 0)
        return 1.0 / (1.0 + exp(-u));
    double e = exp(u);
    return e / (1.0 + e);
}

double rf_g_sigmoid_temp_grad(double z, double temperature)
{
    double p = rf_g_sigmoid_temp(z, temperature);
    return p * (1.0 - p) / temperature;
}

/* ---- the block ---- */

static double *dalloc(int64_t n)
{
    return calloc((size_t)(n > 0 ? n : 1), sizeof(double));
}

int rf_hblock_alloc(rf_hblock *b, int C, int heads, int I, rf_act act, double eps, int layer_scale, rf_err *err)
{
    memset(b, 0, sizeof *b);
    if (C < 1 || heads < 1 || C % heads || I < 1)
        return rf_err_set(err, RF_EINVAL, "block: width %d, %d heads, hidden %d do not make a block", C, heads, I);
    b->C = C;
    b->heads = heads;
    b->I = I;
    b->act = act;
    b->eps = eps;
    int64_t c = C, i = I;
    b->qkv_w = dalloc(3 * c * c);
    b->qkv_b = dalloc(3 * c);
    b->proj_w = dalloc(c * c);
    b->proj_b = dalloc(c);
    b->fc1_w = dalloc(i * c);
    b->fc1_b = dalloc(i);
    b->fc2_w = dalloc(c * i);
    b->fc2_b = dalloc(c);
    b->ln1_g = dalloc(c);
    b->ln1_b = dalloc(c);
    b->ln2_g = dalloc(c);
    b->ln2_b = dalloc(c);
    int ok = b->qkv_w && b->qkv_b && b->proj_w && b->proj_b && b->fc1_w && b->fc1_b && b->fc2_w && b->fc2_b &&
             b->ln1_g && b->ln1_b && b->ln2_g && b->ln2_b;
    if (layer_scale) {
        b->ls1 = dalloc(c);
        b->ls2 = dalloc(c);
        ok = ok && b->ls1 && b->ls2;
    }
    if (!ok) {
        rf_hblock_free(b);
        return rf_err_set(err, RF_ENOMEM, "block: cannot allocate host weights (width %d, hidden %d)", C, I);
    }
    return RF_OK;
}

void rf_hblock_free(rf_hblock *b)
{
    double *all[] = {b->qkv_w, b->qkv_b, b->proj_w, b->proj_b, b->fc1_w, b->fc1_b, b->fc2_w,
                     b->fc2_b, b->ln1_g, b->ln1_b, b->ln2_g, b->ln2_b, b->ls1, b->ls2};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        free(all[i]);
    memset(b, 0, sizeof *b);
}

int rf_g_fetch(rf_backend *be, const rf_tensor *t, double *dst, int64_t n, rf_err *err)
{
    if (!t->data) {
        memset(dst, 0, (size_t)n * sizeof(double));
        return RF_OK;
    }
    if (t->dtype != RF_F32)
        return rf_err_set(err, RF_EUNSUP, "host copy: tensor is %s, not f32", rf_dtype_name(t->dtype));
    if (rf_tensor_numel(t) != n)
        return rf_err_set(err, RF_EINVAL, "host copy: tensor has %lld elements, %lld expected",
                          (long long)rf_tensor_numel(t), (long long)n);
    int contiguous = rf_tensor_is_contiguous(t);
    if (be->ops->host_addressable && contiguous) {
        const float *src = t->data;
        for (int64_t i = 0; i < n; i++)
            dst[i] = src[i];
        return RF_OK;
    }
    float *tmp = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    if (!tmp)
        return rf_err_set(err, RF_ENOMEM, "host copy: cannot allocate %lld floats", (long long)n);
    int rc = be->ops->download(be, tmp, t, err);
    if (!rc)
        for (int64_t i = 0; i < n; i++)
            dst[i] = tmp[i];
    free(tmp);
    return rc;
}

/* A linear layer's weight and bias into host arrays of [out, in]. */
static int fetch_linear(rf_backend *be, const rf_linear *l, int out, int in, double *w, double *b, const char *name,
                        rf_err *err)
{
    if (l->w.ndim != 2 || l->w.shape[0] != out || l->w.shape[1] != in)
        return rf_err_set(err, RF_EINVAL, "block: %s weight is not [%d, %d]", name, out, in);
    if (!l->w.data)
        return rf_err_set(err, RF_EUNSUP,
                          "block: the %s weight exists only in the backend's prepared (fp16) form; gradient "
                          "saliency needs the fp32 weights (load the model at fp32 precision)",
                          name);
    int rc = rf_g_fetch(be, &l->w, w, (int64_t)out * in, err);
    return rc ? rc : rf_g_fetch(be, &l->b, b, out, err);
}

int rf_hblock_from_block(rf_backend *be, const rf_block *src, int C, int heads, int I, rf_act act, float eps,
                         rf_hblock *dst, rf_err *err)
{
    int rc = rf_hblock_alloc(dst, C, heads, I, act, eps, src->ls1.data != NULL, err);
    if (rc)
        return rc;
    if ((rc = fetch_linear(be, &src->qkv, 3 * C, C, dst->qkv_w, dst->qkv_b, "qkv", err)) ||
        (rc = fetch_linear(be, &src->proj, C, C, dst->proj_w, dst->proj_b, "attention output", err)) ||
        (rc = fetch_linear(be, &src->fc1, I, C, dst->fc1_w, dst->fc1_b, "fc1", err)) ||
        (rc = fetch_linear(be, &src->fc2, C, I, dst->fc2_w, dst->fc2_b, "fc2", err)) ||
        (rc = rf_g_fetch(be, &src->ln1_g, dst->ln1_g, C, err)) ||
        (rc = rf_g_fetch(be, &src->ln1_b, dst->ln1_b, C, err)) ||
        (rc = rf_g_fetch(be, &src->ln2_g, dst->ln2_g, C, err)) ||
        (rc = rf_g_fetch(be, &src->ln2_b, dst->ln2_b, C, err)) ||
        (dst->ls1 && (rc = rf_g_fetch(be, &src->ls1, dst->ls1, C, err))) ||
        (dst->ls2 && (rc = rf_g_fetch(be, &src->ls2, dst->ls2, C, err))))
        rf_hblock_free(dst);
    return rc;
}

int rf_hblock_cache_alloc(rf_hblock_cache *c, const rf_hblock *b, int T, rf_err *err)
{
    memset(c, 0, sizeof *c);
    int64_t t = T, C = b->C, I = b->I, H = b->heads;
    c->T = T;
    c->x = dalloc(t * C);
    c->ln1 = dalloc(t * C);
    c->ln1_mean = dalloc(t);
    c->ln1_rstd = dalloc(t);
    c->qkv = dalloc(t * 3 * C);
    c->probs = dalloc(H * t * t);
    c->att = dalloc(t * C);
    c->proj = dalloc(t * C);
    c->x1 = dalloc(t * C);
    c->ln2 = dalloc(t * C);
    c->ln2_mean = dalloc(t);
    c->ln2_rstd = dalloc(t);
    c->pre = dalloc(t * I);
    c->hid = dalloc(t * I);
    c->fc2 = dalloc(t * C);
    if (!(c->x && c->ln1 && c->ln1_mean && c->ln1_rstd && c->qkv && c->probs && c->att && c->proj && c->x1 &&
          c->ln2 && c->ln2_mean && c->ln2_rstd && c->pre && c->hid && c->fc2)) {
        rf_hblock_cache_free(c);
        return rf_err_set(err, RF_ENOMEM, "block: cannot allocate the activations of %d tokens", T);
    }
    return RF_OK;
}

void rf_hblock_cache_free(rf_hblock_cache *c)
{
    double *all[] = {c->x,   c->ln1,      c->ln1_mean, c->ln1_rstd, c->qkv, c->probs, c->att, c->proj,
                     c->x1,  c->ln2,      c->ln2_mean, c->ln2_rstd, c->pre, c->hid,   c->fc2};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        free(all[i]);
    memset(c, 0, sizeof *c);
}

void rf_hblock_forward(const rf_hblock *b, rf_hblock_cache *c, const double *x, const int32_t *mask,
                       const int32_t *group, int T, double *y)
{
    int C = b->C, H = b->heads, D = C / H, I = b->I;
    int64_t TC = (int64_t)T * C;
    memcpy(c->x, x, (size_t)TC * sizeof(double));
    rf_g_layernorm_forward(c->ln1, c->ln1_mean, c->ln1_rstd, x, b->ln1_g, b->ln1_b, b->eps, T, C);
    rf_g_linear_forward(c->qkv, c->ln1, b->qkv_w, b->qkv_b, T, C, 3 * C);
    rf_g_attention_forward(c->att, c->probs, c->qkv, c->qkv + C, c->qkv + 2 * C, 3 * C, mask, group, T, H, D,
                           1.0 / sqrt((double)D));
    rf_g_linear_forward(c->proj, c->att, b->proj_w, b->proj_b, T, C, C);
    if (b->ls1)
        rf_g_scale_forward(c->x1, c->proj, b->ls1, T, C);
    else
        memcpy(c->x1, c->proj, (size_t)TC * sizeof(double));
    rf_g_add_forward(c->x1, c->x1, x, TC);
    rf_g_layernorm_forward(c->ln2, c->ln2_mean, c->ln2_rstd, c->x1, b->ln2_g, b->ln2_b, b->eps, T, C);
    rf_g_linear_forward(c->pre, c->ln2, b->fc1_w, b->fc1_b, T, C, I);
    rf_g_act_forward(c->hid, c->pre, (int64_t)T * I, b->act);
    rf_g_linear_forward(c->fc2, c->hid, b->fc2_w, b->fc2_b, T, I, C);
    if (b->ls2)
        rf_g_scale_forward(y, c->fc2, b->ls2, T, C);
    else
        memcpy(y, c->fc2, (size_t)TC * sizeof(double));
    rf_g_add_forward(y, y, c->x1, TC);
}

int rf_hblock_backward(const rf_hblock *b, const rf_hblock_cache *c, const double *dy, double *dx, rf_hblock *g,
                       rf_err *err)
{
    int T = c->T, C = b->C, H = b->heads, D = C / H, I = b->I;
    int64_t TC = (int64_t)T * C;
    double *dx1 = dalloc(TC), *dbranch = dalloc(TC), *dln = dalloc(TC), *dhid = dalloc((int64_t)T * I),
           *dpre = dalloc((int64_t)T * I), *datt = dalloc(TC), *dqkv = dalloc(3 * TC);
    int rc = RF_OK;
    if (!dx1 || !dbranch || !dln || !dhid || !dpre || !datt || !dqkv) {
        rc = rf_err_set(err, RF_ENOMEM, "block backward: cannot allocate the gradients of %d tokens", T);
        goto done;
    }
    /* y = x1 + ls2 * fc2(act(fc1(ln2(x1)))) */
    rf_g_add_backward(dx1, NULL, dy, TC);
    if (b->ls2)
        rf_g_scale_backward(dbranch, g ? g->ls2 : NULL, dy, c->fc2, b->ls2, T, C);
    else
        memcpy(dbranch, dy, (size_t)TC * sizeof(double));
    rf_g_linear_backward(dhid, g ? g->fc2_w : NULL, g ? g->fc2_b : NULL, dbranch, c->hid, b->fc2_w, T, I, C);
    rf_g_act_backward(dpre, dhid, c->pre, (int64_t)T * I, b->act);
    rf_g_linear_backward(dln, g ? g->fc1_w : NULL, g ? g->fc1_b : NULL, dpre, c->ln2, b->fc1_w, T, C, I);
    rf_g_layernorm_backward(dx1, g ? g->ln2_g : NULL, g ? g->ln2_b : NULL, dln, c->x1, c->ln2_mean, c->ln2_rstd,
                            b->ln2_g, T, C);
    /* x1 = x + ls1 * proj(attn(ln1(x))) */
    rf_g_add_backward(dx, NULL, dx1, TC);
    memset(dbranch, 0, (size_t)TC * sizeof(double));
    if (b->ls1)
        rf_g_scale_backward(dbranch, g ? g->ls1 : NULL, dx1, c->proj, b->ls1, T, C);
    else
        memcpy(dbranch, dx1, (size_t)TC * sizeof(double));
    rf_g_linear_backward(datt, g ? g->proj_w : NULL, g ? g->proj_b : NULL, dbranch, c->att, b->proj_w, T, C, C);
    if ((rc = rf_g_attention_backward(dqkv, dqkv + C, dqkv + 2 * C, 3 * C, datt, c->probs, c->qkv, c->qkv + C,
                                      c->qkv + 2 * C, T, H, D, 1.0 / sqrt((double)D), err)))
        goto done;
    memset(dln, 0, (size_t)TC * sizeof(double));
    rf_g_linear_backward(dln, g ? g->qkv_w : NULL, g ? g->qkv_b : NULL, dqkv, c->ln1, b->qkv_w, T, C, 3 * C);
    rf_g_layernorm_backward(dx, g ? g->ln1_g : NULL, g ? g->ln1_b : NULL, dln, c->x, c->ln1_mean, c->ln1_rstd,
                            b->ln1_g, T, C);
done:
    free(dx1);
    free(dbranch);
    free(dln);
    free(dhid);
    free(dpre);
    free(datt);
    free(dqkv);
    return rc;
}

int rf_hblock_attention_probs(const rf_hblock *b, const double *x, const int32_t *mask, const int32_t *group, int T,
                              double *probs, rf_err *err)
{
    int C = b->C, H = b->heads, D = C / H;
    double *ln = dalloc((int64_t)T * C), *qkv = dalloc((int64_t)T * 3 * C), *out = dalloc((int64_t)T * C);
    int rc = RF_OK;
    if (!ln || !qkv || !out) {
        rc = rf_err_set(err, RF_ENOMEM, "attention: cannot allocate the activations of %d tokens", T);
    } else {
        rf_g_layernorm_forward(ln, NULL, NULL, x, b->ln1_g, b->ln1_b, b->eps, T, C);
        rf_g_linear_forward(qkv, ln, b->qkv_w, b->qkv_b, T, C, 3 * C);
        rf_g_attention_forward(out, probs, qkv, qkv + C, qkv + 2 * C, 3 * C, mask, group, T, H, D,
                               1.0 / sqrt((double)D));
    }
    free(ln);
    free(qkv);
    free(out);
    return rc;
}
