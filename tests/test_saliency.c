/*
 * Saliency maps and method cores on plain arrays (include/radfuse/saliency.h):
 *  - FFT smoothing against a direct spatial convolution in double with the
 *    same truncated, normalized kernel and border normalization: max abs
 *    error <= 2e-6 on maps in [0, 1] (float FFTs; measured value printed);
 *  - the placement back on the original grid for a crop case and a pad case
 *    (rf_preprocess_geometry), against the formula evaluated independently
 *    on a map that is linear in the cell coordinates (bilinear reading
 *    reproduces it exactly), and end to end: a bright dot in an original
 *    image, preprocessed by rf_preprocess_image, found back within 1.5
 *    original pixels (resize factor 2.8);
 *  - normalization (negatives to 0, max 1, first peak in row-major order);
 *  - Grad-CAM weighting against a hand computation;
 *  - rollout: rows sum to 1 (1e-12), the vector form equals the CLS row of
 *    the full product, identity attention leaves the CLS row on itself (the
 *    patch part uniformly 0), uniform attention (a block whose q and k
 *    weights are zero) gives a uniform patch map;
 *  - occlusion through a scoring callback that reads only the top-left
 *    quadrant (a second label: the bottom-right one): >= 90% of the map's
 *    positive mass there (85% for 3-patch windows every 2 patches, which
 *    straddle the quadrant's edge), batches of at most the asked size
 *    covering every window once;
 *  - text spans: WordPiece pieces merged per word, normalized to a top
 *    |weight| of 1, sorted, filtered.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fusion/grad.h"
#include "radfuse/preprocess.h"
#include "radfuse/saliency.h"
#include "tests/testutil.h"

/* ---- smoothing ---- */

static void direct_smooth(const float *in, int rows, int cols, double sigma, double *out)
{
    int R = (int)ceil(4 * sigma);
    double *g = test_dalloc(R + 1), sum = 0;
    for (int k = 0; k <= R; k++) {
        g[k] = exp(-0.5 * k * k / (sigma * sigma));
        sum += k ? 2 * g[k] : g[k];
    }
    for (int k = 0; k <= R; k++)
        g[k] /= sum;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            double s = 0, m = 0;
            for (int dy = -R; dy <= R; dy++) {
                int y = r + dy;
                if (y < 0 || y >= rows)
                    continue;
                for (int dx = -R; dx <= R; dx++) {
                    int x = c + dx;
                    if (x < 0 || x >= cols)
                        continue;
                    double w = g[abs(dy)] * g[abs(dx)];
                    s += w * in[(size_t)y * cols + x];
                    m += w;
                }
            }
            out[(size_t)r * cols + c] = s / m;
        }
    free(g);
}

static double g_smooth_worst;

static void check_smooth(int rows, int cols, float sigma, uint64_t seed)
{
    float *img = test_falloc((int64_t)rows * cols);
    test_fill_random(img, (int64_t)rows * cols, seed, 0.5f);
    for (int64_t i = 0; i < (int64_t)rows * cols; i++)
        img[i] += 0.5f; /* [0, 1] */
    img[0] = 1.0f;      /* a corner peak: the border normalization matters there */
    double *want = test_dalloc((int64_t)rows * cols);
    direct_smooth(img, rows, cols, sigma, want);
    rf_err err;
    CHECK(rf_saliency_smooth(img, rows, cols, sigma, &err) == 0);
    double e = 0;
    for (int64_t i = 0; i < (int64_t)rows * cols; i++)
        e = fmax(e, fabs(img[i] - want[i]));
    CHECKF(e <= 2e-6, "smooth %dx%d sigma %g: max error %g", rows, cols, (double)sigma, e);
    g_smooth_worst = fmax(g_smooth_worst, e);
    free(img);
    free(want);
}

static void check_smooth_constant(void)
{
    /* a constant stays constant up to the border: nothing darkens */
    float img[30 * 17];
    for (int i = 0; i < 30 * 17; i++)
        img[i] = 0.75f;
    rf_err err;
    CHECK(rf_saliency_smooth(img, 30, 17, 3.0f, &err) == 0);
    double e = 0;
    for (int i = 0; i < 30 * 17; i++)
        e = fmax(e, fabs(img[i] - 0.75));
    CHECKF(e < 1e-6, "constant map changed by %g", e);
    /* sigma <= 0: untouched */
    img[5] = 0.25f;
    CHECK(rf_saliency_smooth(img, 30, 17, 0.0f, &err) == 0 && img[5] == 0.25f);
}

/* ---- geometry ---- */

/* The input coordinate of an original pixel, and the clamped cell coordinate. */
static double cell_coord(int i, int n_orig, int resized, int offset, int n_in, int cells, int *inside)
{
    double u = (i + 0.5) * resized / n_orig + offset;
    *inside = u >= 0 && u < n_in;
    double g = u / ((double)n_in / cells) - 0.5;
    return g < 0 ? 0 : g > cells - 1 ? cells - 1 : g;
}

static void check_geometry(rf_preprocess_aspect aspect, int rows, int cols, int want_rh, int want_rw, int want_top,
                           int want_left)
{
    rf_preprocess_config cfg;
    rf_preprocess_config_init(&cfg, 32, 32, 1);
    cfg.aspect = aspect;
    rf_preprocess_geom g;
    rf_err err;
    CHECK(rf_preprocess_geometry(&cfg, rows, cols, &g, &err) == 0);
    CHECKF(g.resized_h == want_rh && g.resized_w == want_rw && g.top == want_top && g.left == want_left,
           "geometry %dx%d: resized %dx%d at (%d, %d)", rows, cols, g.resized_h, g.resized_w, g.top, g.left);
    /* a 2x2 patch grid (patch 16) holding 3 + 2 i - 0.5 j */
    float map[4];
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++)
            map[i * 2 + j] = 3.0f + 2.0f * i - 0.5f * j;
    float *out = test_falloc((int64_t)rows * cols);
    CHECK(rf_saliency_to_original(map, 2, 2, 32, 32, &g, rows, cols, out, &err) == 0);
    double e = 0;
    int outside = 0;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            int iy, ix;
            double gy = cell_coord(r, rows, g.resized_h, g.top, 32, 2, &iy);
            double gx = cell_coord(c, cols, g.resized_w, g.left, 32, 2, &ix);
            double want = iy && ix ? 3.0 + 2.0 * gy - 0.5 * gx : 0.0;
            outside += !(iy && ix);
            e = fmax(e, fabs(out[(size_t)r * cols + c] - want));
        }
    CHECKF(e < 1e-5, "to_original %dx%d: max error %g", rows, cols, e);
    if (aspect == RF_PREPROCESS_CROP)
        CHECKF(outside > 0, "the crop case cut nothing away");
    else
        CHECKF(outside == 0, "the pad case lost %d pixels", outside);
    /* an input pixel map (one cell per pixel) of a constant is that constant inside */
    float *px = test_falloc(32 * 32);
    test_fill_const(px, 32 * 32, 0.5f);
    CHECK(rf_saliency_to_original(px, 32, 32, 32, 32, &g, rows, cols, out, &err) == 0);
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            int iy, ix;
            cell_coord(r, rows, g.resized_h, g.top, 32, 32, &iy);
            cell_coord(c, cols, g.resized_w, g.left, 32, 32, &ix);
            if (iy && ix)
                CHECK(out[(size_t)r * cols + c] == 0.5f);
        }
    free(px);
    free(out);
}

/* A dot in the original image, through the real preprocessing, and back. */
static void check_dot_roundtrip(rf_preprocess_aspect aspect, int rows, int cols, int dot_r, int dot_c)
{
    rf_preprocess_config cfg;
    rf_preprocess_config_init(&cfg, 32, 32, 1);
    cfg.aspect = aspect;
    cfg.filter = RF_PREPROCESS_BILINEAR;
    float *img = test_falloc((int64_t)rows * cols);
    test_fill_const(img, (int64_t)rows * cols, 0.0f);
    for (int r = dot_r - 3; r <= dot_r + 3; r++)
        for (int c = dot_c - 3; c <= dot_c + 3; c++)
            img[(size_t)r * cols + c] = 1.0f;
    float input[32 * 32];
    rf_err err;
    CHECK(rf_preprocess_image(&cfg, img, rows, cols, 1, input, &err) == 0);
    rf_preprocess_geom g;
    CHECK(rf_preprocess_geometry(&cfg, rows, cols, &g, &err) == 0);
    float *out = test_falloc((int64_t)rows * cols);
    CHECK(rf_saliency_to_original(input, 32, 32, 32, 32, &g, rows, cols, out, &err) == 0);
    int pr, pc;
    rf_saliency_normalize(out, rows, cols, &pr, &pc);
    /* the centroid of the top of the map, which a plateau's first maximum is not */
    double sr = 0, sc = 0, sw = 0;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            double w = out[(size_t)r * cols + c];
            if (w > 0.5) {
                sr += w * r;
                sc += w * c;
                sw += w;
            }
        }
    CHECKF(sw > 0 && fabs(sr / sw - dot_r) <= 1.5 && fabs(sc / sw - dot_c) <= 1.5,
           "dot at (%d, %d) of %dx%d came back at (%.2f, %.2f)", dot_r, dot_c, rows, cols, sr / sw, sc / sw);
    CHECKF(abs(pr - dot_r) <= 4 && abs(pc - dot_c) <= 4, "peak (%d, %d) for a dot at (%d, %d)", pr, pc, dot_r,
           dot_c);
    free(img);
    free(out);
}

static void check_normalize(void)
{
    float m[6] = {-1.0f, 2.0f, 4.0f, 1.0f, 4.0f, NAN};
    int pr, pc;
    rf_saliency_normalize(m, 2, 3, &pr, &pc);
    CHECK(pr == 0 && pc == 2);
    CHECK(m[0] == 0 && m[1] == 0.5f && m[2] == 1.0f && m[3] == 0.25f && m[4] == 1.0f && m[5] == 0);
    float z[4] = {0, -1, 0, 0};
    rf_saliency_normalize(z, 2, 2, &pr, &pc);
    CHECK(pr == 0 && pc == 0 && z[0] == 0 && z[1] == 0);
}

/* ---- Grad-CAM ---- */

static void check_gradcam(void)
{
    /* 3 tokens, 2 channels: alpha = mean grad = (1, -0.5) */
    double act[6] = {1, 0, 0, 1, 2, 1}, grad[6] = {3, 0, 0, -1, 0, -0.5};
    float map[3];
    rf_err err;
    CHECK(rf_saliency_gradcam(act, grad, 3, 2, map, &err) == 0);
    CHECK(fabsf(map[0] - 1.0f) < 1e-7f && map[1] == 0.0f && fabsf(map[2] - 1.5f) < 1e-7f);
}

/* ---- rollout ---- */

static void random_probs(double *p, int H, int T, const int32_t *mask, uint64_t seed)
{
    float *x = test_falloc((int64_t)H * T * T);
    test_fill_random(x, (int64_t)H * T * T, seed, 3.0f);
    double *xd = test_dalloc((int64_t)H * T * T);
    for (int64_t i = 0; i < (int64_t)H * T * T; i++)
        xd[i] = x[i];
    rf_g_softmax_forward(p, xd, mask, 1.0, H * T, T);
    free(x);
    free(xd);
}

static void check_rollout(void)
{
    enum { L = 3, H = 2, T = 10 };
    double *p[L];
    int32_t mask[T];
    for (int t = 0; t < T; t++)
        mask[t] = t != 4;
    for (int l = 0; l < L; l++) {
        p[l] = test_dalloc(H * T * T);
        random_probs(p[l], H, T, l == 1 ? mask : NULL, 100 + l);
    }
    double *R = test_dalloc(T * T), row[T], e0[T] = {1};
    rf_err err;
    CHECK(rf_saliency_rollout((const double *const *)p, L, H, T, R, &err) == 0);
    double e = 0;
    for (int i = 0; i < T; i++) {
        double s = 0;
        for (int j = 0; j < T; j++) {
            s += R[i * T + j];
            CHECK(R[i * T + j] >= 0);
        }
        e = fmax(e, fabs(s - 1));
    }
    CHECKF(e < 1e-12, "rollout rows sum to 1 within %g", e);
    CHECK(rf_saliency_rollout_row((const double *const *)p, L, H, T, e0, row, &err) == 0);
    e = 0;
    for (int j = 0; j < T; j++)
        e = fmax(e, fabs(row[j] - R[j]));
    CHECKF(e < 1e-14, "rollout row vs full product: %g", e);

    /* identity attention: the CLS row stays on the CLS token, patches all 0 */
    for (int l = 0; l < L; l++) {
        memset(p[l], 0, sizeof(double) * H * T * T);
        for (int h = 0; h < H; h++)
            for (int i = 0; i < T; i++)
                p[l][(h * T + i) * T + i] = 1;
    }
    CHECK(rf_saliency_rollout_row((const double *const *)p, L, H, T, e0, row, &err) == 0);
    CHECK(fabs(row[0] - 1) < 1e-15);
    for (int j = 1; j < T; j++)
        CHECK(row[j] == 0.0);

    /* a block whose q and k weights are zero attends uniformly: a uniform patch map */
    rf_hblock b;
    CHECK(rf_hblock_alloc(&b, 8, 2, 16, RF_ACT_GELU_ERF, 1e-6, 0, &err) == 0);
    for (int i = 0; i < 8; i++)
        b.ln1_g[i] = 1;
    for (int i = 0; i < 8 * 8; i++)
        b.qkv_w[2 * 64 + i] = (i % 9 == 0); /* v = identity; q = k = 0 */
    double *x = test_dalloc(T * 8);
    for (int i = 0; i < T * 8; i++)
        x[i] = sin(i * 0.37);
    for (int l = 0; l < L; l++)
        CHECK(rf_hblock_attention_probs(&b, x, NULL, NULL, T, p[l], &err) == 0);
    CHECK(rf_saliency_rollout_row((const double *const *)p, L, H, T, e0, row, &err) == 0);
    double lo = 1, hi = 0;
    for (int j = 1; j < T; j++)
        lo = fmin(lo, row[j]), hi = fmax(hi, row[j]);
    CHECKF(lo > 0.01 && hi - lo < 1e-14, "uniform attention: patch map from %g to %g", lo, hi);
    rf_hblock_free(&b);
    free(x);
    free(R);
    for (int l = 0; l < L; l++)
        free(p[l]);
}

/* ---- occlusion ---- */

typedef struct quad_model {
    int C, H, W, calls, max_b, windows;
} quad_model;

/* A "model" that reads only the top-left quadrant: p = sigmoid(4 * mean
 * of channel 0 there); the second label reads the bottom-right one. */
static int quad_score(void *ctx, const float *v, int B, float *probs, rf_err *err)
{
    quad_model *q = ctx;
    q->calls++;
    q->windows += B;
    if (B > q->max_b)
        q->max_b = B;
    for (int b = 0; b < B; b++) {
        const float *img = v + (int64_t)b * q->C * q->H * q->W;
        double s1 = 0, s2 = 0;
        for (int y = 0; y < q->H / 2; y++)
            for (int x = 0; x < q->W / 2; x++) {
                s1 += img[y * q->W + x];
                s2 += img[(y + q->H / 2) * q->W + x + q->W / 2];
            }
        double n = (q->H / 2) * (q->W / 2);
        probs[2 * b] = (float)(1 / (1 + exp(-4 * s1 / n)));
        probs[2 * b + 1] = (float)(1 / (1 + exp(-4 * s2 / n)));
    }
    return RF_OK;
}

/* Windows wider than a patch also cover cells next to the quadrant, which
 * share their drop; a side of 16 patches keeps that band under 10%. */
static void check_occlusion(int window, int stride, int batch, double min_frac)
{
    enum { C = 2, P = 8 };
    int H = window > 1 ? 128 : 64, W = H;
    float *img = test_falloc(C * H * W);
    test_fill_random(img, (int64_t)C * H * W, 7, 0.2f);
    for (int y = 0; y < H; y++) /* bright content in both quadrants read */
        for (int x = 0; x < W; x++)
            if ((y < H / 2) == (x < W / 2))
                img[y * W + x] += 1.0f;
    quad_model q = {C, H, W, 0, 0, 0};
    float base[2];
    rf_err err;
    CHECK(quad_score(&q, img, 1, base, &err) == 0);
    q.calls = q.windows = 0;
    int gh = H / P, gw = W / P;
    float *maps = test_falloc(2 * gh * gw);
    CHECK(rf_saliency_occlusion(img, C, H, W, P, window, stride, batch, 2, base, quad_score, &q, maps, &err) == 0);
    int per_side = 0;
    for (int s = 0;; s += stride) {
        per_side++;
        if (s + window >= gh)
            break;
    }
    CHECKF(q.windows == per_side * per_side && q.max_b <= batch && q.calls == (q.windows + batch - 1) / batch,
           "occlusion: %d windows in %d calls (max batch %d)", q.windows, q.calls, q.max_b);
    for (int k = 0; k < 2; k++) {
        double in = 0, all = 0;
        for (int y = 0; y < gh; y++)
            for (int x = 0; x < gw; x++) {
                double v = fmax(0, maps[k * gh * gw + y * gw + x]);
                all += v;
                if (k == 0 ? (y < gh / 2 && x < gw / 2) : (y >= gh / 2 && x >= gw / 2))
                    in += v;
            }
        CHECKF(all > 0 && in / all >= min_frac, "occlusion window %d stride %d label %d: %.3f of the mass in its quadrant",
               window, stride, k, all > 0 ? in / all : 0.0);
    }
    free(img);
    free(maps);
}

/* ---- text spans ---- */

static void check_text_spans(void)
{
    /* "fever and pneumonia, cough": fever | and | pneum ##onia | , | cough;
     * the last token is in a second note */
    double attr[] = {0.2, -0.05, 0.5, 0.3, 0.01, -0.4};
    int note[] = {0, 0, 0, 0, 0, 1};
    int32_t bs[] = {0, 6, 10, 15, 19, 0}, be[] = {5, 9, 15, 19, 20, 5};
    uint8_t cont[] = {0, 0, 0, 1, 0, 0};
    rf_result_span *s;
    size_t n;
    rf_err err;
    CHECK(rf_saliency_text_spans(attr, note, bs, be, cont, 6, 10, 0.05f, &s, &n, &err) == 0);
    /* pneumonia 0.8 -> 1; cough -0.4 -> -0.5; fever 0.25; and -0.0625; "," dropped */
    CHECKF(n == 4, "%zu spans", n);
    if (n == 4) {
        CHECK(s[0].note == 0 && s[0].begin == 10 && s[0].end == 19 && fabsf(s[0].weight - 1.0f) < 1e-6f);
        CHECK(s[1].note == 1 && s[1].begin == 0 && s[1].end == 5 && fabsf(s[1].weight + 0.5f) < 1e-6f);
        CHECK(s[2].begin == 0 && s[2].end == 5 && fabsf(s[2].weight - 0.25f) < 1e-6f);
        CHECK(s[3].begin == 6 && fabsf(s[3].weight + 0.0625f) < 1e-6f);
    }
    free(s);
    CHECK(rf_saliency_text_spans(attr, note, bs, be, cont, 6, 2, 0.05f, &s, &n, &err) == 0 && n == 2);
    free(s);
    double zero[6] = {0};
    CHECK(rf_saliency_text_spans(zero, note, bs, be, cont, 6, 10, 0.05f, &s, &n, &err) == 0 && n == 0 && !s);
}

static void check_methods(void)
{
    rf_saliency_method m;
    rf_err err;
    CHECK(rf_saliency_method_parse("rollout", &m, &err) == 0 && m == RF_SALIENCY_ROLLOUT);
    CHECK(rf_saliency_method_parse("gradcam", &m, &err) == 0 && m == RF_SALIENCY_GRADCAM);
    CHECK(rf_saliency_method_parse("lime", &m, &err) == RF_EINVAL && strstr(err.msg, "occlusion"));
    CHECK(strcmp(rf_saliency_method_name(RF_SALIENCY_OCCLUSION), "occlusion") == 0);
}

int main(void)
{
    check_smooth(37, 53, 2.5f, 1);
    check_smooth(64, 64, 6.0f, 2);
    check_smooth(5, 200, 3.0f, 3);
    check_smooth(1, 1, 1.0f, 4);
    check_smooth(120, 90, 0.7f, 5);
    check_smooth_constant();
    printf("FFT smoothing vs direct convolution: max abs error %.3g\n", g_smooth_worst);
    /* crop: 40x60 -> shortest edge 32 -> 32x48, 8 columns cut each side */
    check_geometry(RF_PREPROCESS_CROP, 40, 60, 32, 48, 0, -8);
    /* pad: 40x20 -> longest edge 32 -> 32x16, 8 columns of padding each side */
    check_geometry(RF_PREPROCESS_PAD, 40, 20, 32, 16, 0, 8);
    check_dot_roundtrip(RF_PREPROCESS_CROP, 90, 130, 60, 70);
    check_dot_roundtrip(RF_PREPROCESS_PAD, 90, 45, 25, 30);
    check_dot_roundtrip(RF_PREPROCESS_STRETCH, 70, 50, 40, 12);
    check_normalize();
    check_gradcam();
    check_rollout();
    check_occlusion(1, 1, 16, 0.9);
    check_occlusion(2, 1, 5, 0.9);
    check_occlusion(2, 2, 4, 0.9);
    /* windows of 3 every 2 straddle the quadrant's edge: measured 0.89 */
    check_occlusion(3, 2, 4, 0.85);
    check_text_spans();
    check_methods();
    return test_finish("test_saliency");
}
