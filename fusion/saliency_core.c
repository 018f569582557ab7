/*
 * The saliency methods' cores on plain host arrays: Grad-CAM weighting,
 * attention rollout, batched occlusion and token-to-word spans. The fusion
 * model's side (traces, host copies of its weights) is in saliency.c.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "radfuse/saliency.h"

static const char *const method_names[] = {"none", "gradcam", "rollout", "occlusion"};

const char *rf_saliency_method_name(rf_saliency_method m)
{
    return (unsigned)m < sizeof method_names / sizeof method_names[0] ? method_names[m] : "?";
}

int rf_saliency_method_parse(const char *name, rf_saliency_method *out, rf_err *err)
{
    for (size_t i = 0; name && i < sizeof method_names / sizeof method_names[0]; i++)
        if (strcmp(name, method_names[i]) == 0) {
            *out = (rf_saliency_method)i;
            return RF_OK;
        }
    return rf_err_set(err, RF_EINVAL, "saliency method '%s' is not one of none, gradcam, rollout, occlusion",
                      name ? name : "(null)");
}

void rf_saliency_opts_init(rf_saliency_opts *o)
{
    memset(o, 0, sizeof *o);
    o->method = RF_SALIENCY_GRADCAM;
    o->finding = -1;
    o->sigma = 0;
    o->occlusion_window = 1;
    o->occlusion_stride = 1;
    o->occlusion_batch = 16;
    o->max_spans = 32;
    o->min_span_weight = 0.05f;
}

/* ---- Grad-CAM ---- */

int rf_saliency_gradcam(const double *act, const double *grad, int n, int c, float *map, rf_err *err)
{
    double *alpha = calloc((size_t)(c > 0 ? c : 1), sizeof *alpha);
    if (!alpha)
        return rf_err_set(err, RF_ENOMEM, "gradcam: out of memory");
    for (int t = 0; t < n; t++)
        for (int j = 0; j < c; j++)
            alpha[j] += grad[(int64_t)t * c + j];
    for (int j = 0; j < c; j++)
        alpha[j] /= n;
    for (int t = 0; t < n; t++) {
        double s = 0;
        for (int j = 0; j < c; j++)
            s += alpha[j] * act[(int64_t)t * c + j];
        map[t] = s > 0 ? (float)s : 0.0f;
    }
    free(alpha);
    return RF_OK;
}

/* ---- attention rollout ---- */

/* A_l = 0.5 mean_h(P) + 0.5 I, rows renormalized, into a [T, T]. */
static void mixed_attention(const double *probs, int H, int T, double *a)
{
    int64_t TT = (int64_t)T * T;
    for (int64_t i = 0; i < TT; i++) {
        double s = 0;
        for (int h = 0; h < H; h++)
            s += probs[h * TT + i];
        a[i] = 0.5 * s / H;
    }
    for (int i = 0; i < T; i++) {
        double *row = a + (int64_t)i * T;
        row[i] += 0.5;
        double s = 0;
        for (int j = 0; j < T; j++)
            s += row[j];
        for (int j = 0; j < T; j++)
            row[j] /= s; /* s >= 0.5: the identity share */
    }
}

int rf_saliency_rollout(const double *const *probs, int L, int H, int T, double *out, rf_err *err)
{
    int64_t TT = (int64_t)T * T;
    double *a = malloc((size_t)TT * sizeof *a), *tmp = malloc((size_t)TT * sizeof *tmp);
    if (!a || !tmp) {
        free(a);
        free(tmp);
        return rf_err_set(err, RF_ENOMEM, "rollout: out of memory for %d tokens", T);
    }
    memset(out, 0, (size_t)TT * sizeof *out);
    for (int i = 0; i < T; i++)
        out[(int64_t)i * T + i] = 1;
    for (int l = 0; l < L; l++) {
        mixed_attention(probs[l], H, T, a);
        /* out = A_l out */
        memset(tmp, 0, (size_t)TT * sizeof *tmp);
        for (int i = 0; i < T; i++)
            for (int k = 0; k < T; k++) {
                double w = a[(int64_t)i * T + k];
                if (w == 0.0)
                    continue;
                const double *src = out + (int64_t)k * T;
                double *dst = tmp + (int64_t)i * T;
                for (int j = 0; j < T; j++)
                    dst[j] += w * src[j];
            }
        memcpy(out, tmp, (size_t)TT * sizeof *out);
    }
    free(a);
    free(tmp);
    return RF_OK;
}

int rf_saliency_rollout_step(const double *probs, int H, int T, double *v, rf_err *err)
{
    double *a = malloc((size_t)T * T * sizeof *a), *u = calloc((size_t)T, sizeof *u);
    if (!a || !u) {
        free(a);
        free(u);
        return rf_err_set(err, RF_ENOMEM, "rollout: out of memory for %d tokens", T);
    }
    mixed_attention(probs, H, T, a);
    for (int i = 0; i < T; i++) {
        double wi = v[i];
        if (wi == 0.0)
            continue;
        const double *row = a + (int64_t)i * T;
        for (int j = 0; j < T; j++)
            u[j] += wi * row[j];
    }
    memcpy(v, u, (size_t)T * sizeof *v);
    free(a);
    free(u);
    return RF_OK;
}

int rf_saliency_rollout_row(const double *const *probs, int L, int H, int T, const double *w, double *out,
                            rf_err *err)
{
    /* w^T A_L ... A_1: from the last layer down, a vector at a time */
    memcpy(out, w, (size_t)T * sizeof *out);
    for (int l = L - 1; l >= 0; l--) {
        int rc = rf_saliency_rollout_step(probs[l], H, T, out, err);
        if (rc)
            return rc;
    }
    return RF_OK;
}

/* ---- occlusion ---- */

/* Window starts along a side of n patches: every stride, the last moved
 * back to end at the edge. Returns the count. */
static int window_starts(int n, int w, int stride, int *starts)
{
    int k = 0;
    for (int s = 0;; s += stride) {
        if (s + w >= n) {
            starts[k++] = n - w;
            return k;
        }
        starts[k++] = s;
    }
}

int rf_saliency_occlusion(const float *image, int C, int H, int W, int patch, int window, int stride, int batch,
                          int nlabels, const float *base, rf_saliency_score_fn score, void *ctx, float *maps,
                          rf_err *err)
{
    if (C < 1 || patch < 1 || H < patch || W < patch || H % patch || W % patch || window < 1 || stride < 1 ||
        batch < 1 || nlabels < 1)
        return rf_err_set(err, RF_EINVAL,
                          "occlusion: a %dx%d image with patch %d, window %d, stride %d, batch %d cannot be occluded",
                          H, W, patch, window, stride, batch);
    int gh = H / patch, gw = W / patch;
    int wy = window < gh ? window : gh, wx = window < gw ? window : gw;
    int64_t plane = (int64_t)H * W, img = plane * C;
    int *ys = malloc((size_t)gh * sizeof *ys), *xs = malloc((size_t)gw * sizeof *xs);
    float *var = malloc((size_t)(batch * img) * sizeof *var), *probs = malloc((size_t)batch * nlabels * sizeof *probs);
    float *mean = malloc((size_t)C * sizeof *mean);
    double *sum = calloc((size_t)nlabels * gh * gw, sizeof *sum);
    int *count = calloc((size_t)gh * gw, sizeof *count);
    int rc = RF_OK;
    if (!ys || !xs || !var || !probs || !mean || !sum || !count) {
        rc = rf_err_set(err, RF_ENOMEM, "occlusion: out of memory for a batch of %d %dx%d images", batch, H, W);
        goto done;
    }
    for (int c = 0; c < C; c++) {
        double s = 0;
        for (int64_t i = 0; i < plane; i++)
            s += image[c * plane + i];
        mean[c] = (float)(s / plane);
    }
    int ny = window_starts(gh, wy, stride, ys), nx = window_starts(gw, wx, stride, xs);
    int total = ny * nx;
    for (int w0 = 0; w0 < total && !rc; w0 += batch) {
        int B = total - w0 < batch ? total - w0 : batch;
        for (int b = 0; b < B; b++) {
            float *v = var + b * img;
            memcpy(v, image, (size_t)img * sizeof *v);
            int y0 = ys[(w0 + b) / nx] * patch, x0 = xs[(w0 + b) % nx] * patch;
            for (int c = 0; c < C; c++)
                for (int y = y0; y < y0 + wy * patch; y++)
                    for (int x = x0; x < x0 + wx * patch; x++)
                        v[c * plane + (int64_t)y * W + x] = mean[c];
        }
        if ((rc = score(ctx, var, B, probs, err)))
            break;
        for (int b = 0; b < B; b++) {
            int py = ys[(w0 + b) / nx], px = xs[(w0 + b) % nx];
            for (int y = py; y < py + wy; y++)
                for (int x = px; x < px + wx; x++) {
                    count[y * gw + x]++;
                    for (int k = 0; k < nlabels; k++)
                        sum[((int64_t)k * gh + y) * gw + x] += (double)base[k] - probs[b * nlabels + k];
                }
        }
    }
    if (!rc)
        for (int k = 0; k < nlabels; k++)
            for (int i = 0; i < gh * gw; i++)
                maps[(int64_t)k * gh * gw + i] = (float)(sum[(int64_t)k * gh * gw + i] / count[i]);
done:
    free(ys);
    free(xs);
    free(var);
    free(probs);
    free(mean);
    free(sum);
    free(count);
    return rc;
}

/* ---- text spans ---- */

typedef struct word {
    int note;
    int32_t begin, end;
    double w;
    int order;
} word;

static int by_weight(const void *a, const void *b)
{
    const word *x = a, *y = b;
    double ax = fabs(x->w), ay = fabs(y->w);
    if (ax != ay)
        return ax > ay ? -1 : 1;
    return x->order - y->order;
}

int rf_saliency_text_spans(const double *attr, const int *note, const int32_t *bstart, const int32_t *bend,
                           const uint8_t *cont, int n, int max_spans, float min_weight, rf_result_span **out,
                           size_t *nout, rf_err *err)
{
    *out = NULL;
    *nout = 0;
    if (n < 1 || max_spans < 1)
        return RF_OK;
    word *words = malloc((size_t)n * sizeof *words);
    if (!words)
        return rf_err_set(err, RF_ENOMEM, "text spans: out of memory for %d tokens", n);
    int nw = 0;
    for (int i = 0; i < n; i++) {
        if (bstart[i] >= bend[i] || bstart[i] < 0)
            continue; /* no text behind it */
        if (cont[i] && nw > 0 && words[nw - 1].note == note[i]) {
            word *w = &words[nw - 1];
            if (bstart[i] < w->begin)
                w->begin = bstart[i];
            if (bend[i] > w->end)
                w->end = bend[i];
            w->w += attr[i];
            continue;
        }
        words[nw] = (word){note[i], bstart[i], bend[i], attr[i], nw};
        nw++;
    }
    double mx = 0;
    for (int i = 0; i < nw; i++)
        mx = fmax(mx, fabs(words[i].w));
    if (!(mx > 0)) {
        free(words);
        return RF_OK;
    }
    for (int i = 0; i < nw; i++)
        words[i].w /= mx;
    qsort(words, (size_t)nw, sizeof *words, by_weight);
    int keep = 0;
    while (keep < nw && keep < max_spans && fabs(words[keep].w) >= min_weight)
        keep++;
    if (keep) {
        *out = malloc((size_t)keep * sizeof **out);
        if (!*out) {
            free(words);
            return rf_err_set(err, RF_ENOMEM, "text spans: out of memory");
        }
        for (int i = 0; i < keep; i++)
            (*out)[i] = (rf_result_span){.note = (size_t)words[i].note, .begin = (size_t)words[i].begin,
                                         .end = (size_t)words[i].end, .weight = (float)words[i].w};
        *nout = (size_t)keep;
    }
    free(words);
    return RF_OK;
}
