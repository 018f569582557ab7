/*
 * Preprocessing: geometry (resize, center crop or pad), then one pass per
 * output row that resamples vertically (a weighted sum of input rows),
 * horizontally (a dot product per output pixel), maps channels and
 * normalizes. Only the output window of the resized image is ever computed,
 * and no full-size intermediate exists: working memory is one input row per
 * thread, which bounds it for any input and config.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "imaging/preprocess_internal.h"
#include "runtime/threadpool.h"

/* Output rows per pool task: enough to amortize the hand-out, few enough
 * that two threads stay balanced on a 224-row output. */
#define ROWS_PER_TASK 4
/* Columns (floats) of the vertical pass's strips: ROWS_PER_TASK rows of
 * inputs span about 6 * factor + 4 * factor rows, e.g. 150 rows x 2 KiB for a
 * 15x downscale, which fits L2. A multiple of the pass's 32 lanes. */
#define VSTRIP 512

const char *rf_preprocess_filter_name(rf_preprocess_filter f)
{
    static const char *const names[] = {"lanczos3", "bicubic", "bilinear", "hamming", "box", "nearest"};
    return (unsigned)f < RF_PREPROCESS_FILTER_COUNT ? names[f] : "?";
}

void rf_preprocess_config_init(rf_preprocess_config *cfg, int height, int width, int channels)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->height = height;
    cfg->width = width;
    cfg->channels = channels;
    cfg->aspect = RF_PREPROCESS_CROP;
    cfg->filter = RF_PREPROCESS_LANCZOS3;
    cfg->center = RF_PREPROCESS_CENTER_FLOOR;
    cfg->input_scale = 1.0f;
    for (int c = 0; c < 3; c++)
        cfg->std[c] = 1.0f;
}

int rf_preprocess_config_check(const rf_preprocess_config *cfg, rf_err *err)
{
    if (!cfg)
        return rf_err_set(err, RF_EINVAL, "preprocess: no config");
    const int M = RF_PREPROCESS_MAX_SIDE;
    if (cfg->height < 1 || cfg->height > M || cfg->width < 1 || cfg->width > M)
        return rf_err_set(err, RF_EINVAL, "preprocess: output size %d x %d is outside 1..%d", cfg->height,
                          cfg->width, M);
    if (cfg->channels != 1 && cfg->channels != 3)
        return rf_err_set(err, RF_EINVAL, "preprocess: channels is %d, not 1 or 3", cfg->channels);
    if ((unsigned)cfg->aspect > RF_PREPROCESS_NONE)
        return rf_err_set(err, RF_EINVAL, "preprocess: unknown aspect mode %d", (int)cfg->aspect);
    if ((unsigned)cfg->filter >= RF_PREPROCESS_FILTER_COUNT)
        return rf_err_set(err, RF_EINVAL, "preprocess: unknown filter %d", (int)cfg->filter);
    if ((unsigned)cfg->center > RF_PREPROCESS_CENTER_ROUND)
        return rf_err_set(err, RF_EINVAL, "preprocess: unknown centering rule %d", (int)cfg->center);
    if (cfg->resize_height < 0 || cfg->resize_height > M || cfg->resize_width < 0 || cfg->resize_width > M)
        return rf_err_set(err, RF_EINVAL, "preprocess: resize size %d x %d is outside 0..%d",
                          cfg->resize_height, cfg->resize_width, M);
    if (cfg->resize_max < 0 || cfg->resize_max > M)
        return rf_err_set(err, RF_EINVAL, "preprocess: resize_max %d is outside 0..%d", cfg->resize_max, M);
    if (cfg->resize_max) {
        int rh = cfg->resize_height ? cfg->resize_height : cfg->height;
        int rw = cfg->resize_width ? cfg->resize_width : cfg->width;
        /* transformers refuses the same: the long edge could not stay longer */
        if (cfg->aspect == RF_PREPROCESS_CROP && (cfg->resize_max <= rh || cfg->resize_max <= rw))
            return rf_err_set(err, RF_EINVAL, "preprocess: resize_max %d is not larger than the resize size",
                              cfg->resize_max);
    }
    if (!isfinite(cfg->input_scale) || cfg->input_scale <= 0.0f)
        return rf_err_set(err, RF_EINVAL, "preprocess: input_scale %g is not a positive finite number",
                          (double)cfg->input_scale);
    for (int c = 0; c < cfg->channels; c++) {
        if (!isfinite(cfg->std[c]) || cfg->std[c] == 0.0f)
            return rf_err_set(err, RF_EINVAL, "preprocess: std[%d] is %g: must be finite and nonzero", c,
                              (double)cfg->std[c]);
        /* mean / std must also stay finite, else every output is inf */
        if (!isfinite(cfg->mean[c]) || !isfinite(cfg->mean[c] / cfg->std[c]) ||
            !isfinite(cfg->input_scale / cfg->std[c]))
            return rf_err_set(err, RF_EINVAL, "preprocess: mean[%d] %g / std[%d] %g is not finite", c,
                              (double)cfg->mean[c], c, (double)cfg->std[c]);
        if (!isfinite(cfg->pad_value[c]))
            return rf_err_set(err, RF_EINVAL, "preprocess: pad_value[%d] is not finite", c);
    }
    return RF_OK;
}

/* Python's round(): half to even. */
static int round_half_even(double v)
{
    double r = floor(v);
    double d = v - r;
    if (d > 0.5 || (d == 0.5 && fmod(r, 2.0) != 0.0))
        r += 1.0;
    return (int)r;
}

static int floor_div2(int d)
{
    return d >= 0 ? d / 2 : -((-d + 1) / 2);
}

/* Offset of the resized image's first pixel in an output of size out. */
static int center_offset(rf_preprocess_center rule, int resized, int out)
{
    int d = resized - out;
    if (rule == RF_PREPROCESS_CENTER_FLOOR)
        return -floor_div2(d);
    if (d >= 0)
        return -round_half_even(d / 2.0);
    return (out - resized) / 2;
}

int rf_preprocess_geometry(const rf_preprocess_config *cfg, int in_h, int in_w, rf_preprocess_geom *g,
                           rf_err *err)
{
    int rc = rf_preprocess_config_check(cfg, err);
    if (rc)
        return rc;
    const int MI = RF_PREPROCESS_MAX_INPUT_SIDE;
    if (in_h < 1 || in_h > MI || in_w < 1 || in_w > MI)
        return rf_err_set(err, RF_EINVAL, "preprocess: input size %d x %d is outside 1..%d", in_h, in_w, MI);
    int RH = cfg->resize_height ? cfg->resize_height : cfg->height;
    int RW = cfg->resize_width ? cfg->resize_width : cfg->width;
    int rh, rw;
    switch (cfg->aspect) {
    case RF_PREPROCESS_STRETCH:
        rh = RH;
        rw = RW;
        break;
    case RF_PREPROCESS_NONE:
        rh = in_h;
        rw = in_w;
        break;
    case RF_PREPROCESS_CROP:
        if (RH == RW) {
            /* transformers' get_resize_output_image_size and torchvision's
             * Resize(int): int(S * long / short), in double as Python does */
            int shortest = in_w <= in_h ? in_w : in_h, longest = in_w <= in_h ? in_h : in_w;
            int new_short = RH;
            int new_long = (int)((double)RH * longest / shortest);
            if (cfg->resize_max && new_long > cfg->resize_max) {
                new_short = (int)((double)cfg->resize_max * new_short / new_long);
                new_long = cfg->resize_max;
            }
            rh = in_w <= in_h ? new_long : new_short;
            rw = in_w <= in_h ? new_short : new_long;
        } else {
            /* timm's ResizeKeepRatio(longest=0): the smaller ratio */
            double ratio = fmin((double)in_h / RH, (double)in_w / RW);
            rh = round_half_even(in_h / ratio);
            rw = round_half_even(in_w / ratio);
        }
        break;
    default: /* RF_PREPROCESS_PAD: timm's ResizeKeepRatio(longest=1) */
    {
        double ratio = fmax((double)in_h / RH, (double)in_w / RW);
        rh = round_half_even(in_h / ratio);
        rw = round_half_even(in_w / ratio);
        break;
    }
    }
    g->resized_h = rh < 1 ? 1 : rh;
    g->resized_w = rw < 1 ? 1 : rw;
    g->top = center_offset(cfg->center, g->resized_h, cfg->height);
    g->left = center_offset(cfg->center, g->resized_w, cfg->width);
    return RF_OK;
}

/* ---- the preprocessor ---- */

struct rf_preprocessor {
    rf_preprocess_config cfg;
    rf_pool *pool; /* NULL: one thread */
    int threads;
    preprocess_axis vax, hax; /* kept across runs of the same input size */
    float *scratch;
    size_t scratch_per_thread; /* floats */
};

int rf_preprocess_create(rf_preprocessor **out, const rf_preprocess_config *cfg, int threads, rf_err *err)
{
    *out = NULL;
    int rc = rf_preprocess_config_check(cfg, err);
    if (rc)
        return rc;
    if (threads < 0 || threads > 1024)
        return rf_err_set(err, RF_EINVAL, "preprocess: threads %d is outside 0..1024", threads);
    rf_preprocessor *p = calloc(1, sizeof *p);
    if (!p)
        return rf_err_set(err, RF_ENOMEM, "preprocess: out of memory");
    p->cfg = *cfg;
    p->threads = threads == 0 ? rf_cpu_count() : threads;
    if (p->threads < 1)
        p->threads = 1;
    if (p->threads > 1) {
        rc = rf_pool_create(&p->pool, p->threads, err);
        if (rc) {
            free(p);
            return rc;
        }
    }
    *out = p;
    return RF_OK;
}

void rf_preprocess_destroy(rf_preprocessor *p)
{
    if (!p)
        return;
    if (p->pool)
        rf_pool_destroy(p->pool);
    preprocess_axis_free(&p->vax);
    preprocess_axis_free(&p->hax);
    free(p->scratch);
    free(p);
}

typedef struct run_ctx {
    const rf_preprocessor *p;
    const float *in;
    int in_w, in_c;
    float *out;
    int y0, ny;      /* output rows holding resized rows */
    int x0, nx;      /* output columns holding resized columns */
    int top;         /* output row of resized row 0 */
    float a[3], b[3]; /* out = v * a + b */
    float pad[3];    /* normalized pad values */
} run_ctx;

static void run_rows(void *vctx, int64_t task, int thread)
{
    const run_ctx *c = vctx;
    const rf_preprocessor *p = c->p;
    const rf_preprocess_config *cfg = &p->cfg;
    const int H = cfg->height, W = cfg->width, OC = cfg->channels;
    const int in_w = c->in_w, in_c = c->in_c, len = in_w * in_c;
    const size_t stride = (size_t)len;
    float *tmp = p->scratch + (size_t)thread * p->scratch_per_thread; /* ROWS_PER_TASK rows of len */
    float *planes = tmp + (size_t)ROWS_PER_TASK * len;               /* in_c == 3: R, G, B rows */
    float *h = planes + (in_c == 3 ? len : 0);                        /* in_c rows of nx */
    const preprocess_axis *va = &p->vax, *ha = &p->hax;

    int yb = c->y0 + (int)task * ROWS_PER_TASK;
    int ye = yb + ROWS_PER_TASK < c->y0 + c->ny ? yb + ROWS_PER_TASK : c->y0 + c->ny;
    /* The vertical pass of the task's rows, one column strip at a time: the
     * rows overlap in most of their inputs, so a strip of those inputs stays
     * in L2 across the task's rows instead of being streamed once per row. */
    const float *rows[ROWS_PER_TASK];
    for (int y = yb; y < ye; y++) {
        int i = y - c->top - va->first;
        /* an unchanged row is used in place */
        rows[y - yb] = va->n[i] == 1 && va->w[(size_t)i * va->taps] == 1.0f ? c->in + (size_t)va->start[i] * stride
                                                                             : NULL;
    }
    for (int x0 = 0; x0 < len; x0 += VSTRIP) {
        int n = len - x0 < VSTRIP ? len - x0 : VSTRIP;
        for (int y = yb; y < ye; y++) {
            int i = y - c->top - va->first;
            if (!rows[y - yb])
                preprocess_vpass(c->in + x0, stride, va->start[i], va->n[i], va->w + (size_t)i * va->taps, n,
                                 tmp + (size_t)(y - yb) * len + x0);
        }
    }
    for (int y = yb; y < ye; y++) {
        const float *row = rows[y - yb] ? rows[y - yb] : tmp + (size_t)(y - yb) * len;
        if (in_c == 1) {
            preprocess_hpass(row, ha, h);
        } else {
            for (int x = 0; x < in_w; x++) {
                planes[x] = row[3 * x];
                planes[in_w + x] = row[3 * x + 1];
                planes[2 * in_w + x] = row[3 * x + 2];
            }
            for (int ch = 0; ch < 3; ch++)
                preprocess_hpass(planes + (size_t)ch * in_w, ha, h + (size_t)ch * c->nx);
        }
        for (int oc = 0; oc < OC; oc++) {
            float *o = c->out + ((size_t)oc * H + y) * W;
            const float a = c->a[oc], b = c->b[oc];
            for (int x = 0; x < c->x0; x++)
                o[x] = c->pad[oc];
            float *ow = o + c->x0;
            if (in_c == OC || in_c == 1) {
                const float *hv = h + (size_t)(in_c == 1 ? 0 : oc) * c->nx;
                for (int x = 0; x < c->nx; x++)
                    ow[x] = hv[x] * a + b;
            } else { /* RGB to gray: ITU-R 601 luma, as Pillow's convert("L") */
                const float *r = h, *g = h + c->nx, *bl = h + 2 * (size_t)c->nx;
                for (int x = 0; x < c->nx; x++)
                    ow[x] = (0.299f * r[x] + 0.587f * g[x] + 0.114f * bl[x]) * a + b;
            }
            for (int x = c->x0 + c->nx; x < W; x++)
                o[x] = c->pad[oc];
        }
    }
}

int rf_preprocess_run(rf_preprocessor *p, const float *in, int in_h, int in_w, int in_c, float *out,
                      rf_err *err)
{
    if (!p || !in || !out)
        return rf_err_set(err, RF_EINVAL, "preprocess: NULL preprocessor, input or output");
    if (in_c != 1 && in_c != 3)
        return rf_err_set(err, RF_EINVAL, "preprocess: input has %d channels, not 1 or 3", in_c);
    rf_preprocess_geom g;
    int rc = rf_preprocess_geometry(&p->cfg, in_h, in_w, &g, err);
    if (rc)
        return rc;
    if ((uint64_t)in_h * (uint64_t)in_w * (uint64_t)in_c > ((uint64_t)1 << 31))
        return rf_err_set(err, RF_EINVAL, "preprocess: input %d x %d x %d has more than 2^31 samples", in_h,
                          in_w, in_c);
    const rf_preprocess_config *cfg = &p->cfg;
    const int H = cfg->height, W = cfg->width, OC = cfg->channels;

    run_ctx c = {.p = p, .in = in, .in_w = in_w, .in_c = in_c, .out = out, .top = g.top};
    c.y0 = g.top > 0 ? g.top : 0;
    int y1 = g.top + g.resized_h < H ? g.top + g.resized_h : H;
    c.x0 = g.left > 0 ? g.left : 0;
    int x1 = g.left + g.resized_w < W ? g.left + g.resized_w : W;
    c.ny = y1 > c.y0 ? y1 - c.y0 : 0;
    c.nx = x1 > c.x0 ? x1 - c.x0 : 0;
    for (int oc = 0; oc < OC; oc++) {
        c.a[oc] = cfg->input_scale / cfg->std[oc];
        c.b[oc] = -cfg->mean[oc] / cfg->std[oc];
        c.pad[oc] = cfg->pad_value[oc] * c.a[oc] + c.b[oc];
    }
    /* rows outside the image (all padding), and the whole output when the
     * image lands entirely outside it (a tiny image padded far away) */
    for (int oc = 0; oc < OC; oc++)
        for (int y = 0; y < H; y++)
            if (y < c.y0 || y >= c.y0 + c.ny || c.nx == 0) {
                float *o = out + ((size_t)oc * H + y) * W;
                for (int x = 0; x < W; x++)
                    o[x] = c.pad[oc];
            }
    if (c.ny == 0 || c.nx == 0)
        return RF_OK;

    rf_preprocess_filter f = cfg->aspect == RF_PREPROCESS_NONE ? RF_PREPROCESS_NEAREST : cfg->filter;
    int first_y = c.y0 - g.top, first_x = c.x0 - g.left;
    if (!preprocess_axis_matches(&p->vax, in_h, g.resized_h, first_y, c.ny, f, 0)) {
        rc = preprocess_axis_build(&p->vax, in_h, g.resized_h, first_y, c.ny, f, 0, err);
        if (rc)
            return rc;
    }
    if (!preprocess_axis_matches(&p->hax, in_w, g.resized_w, first_x, c.nx, f, 1)) {
        rc = preprocess_axis_build(&p->hax, in_w, g.resized_w, first_x, c.nx, f, 1, err);
        if (rc)
            return rc;
    }
    /* per thread: the vertical sums (ROWS_PER_TASK input rows), the planes
     * of one when RGB, and the horizontal results */
    size_t len = (size_t)in_w * in_c;
    size_t need = ROWS_PER_TASK * len + (in_c == 3 ? len : 0) + (size_t)in_c * c.nx;
    need = (need + 15) & ~(size_t)15; /* threads' rows on separate cache lines */
    if (need > p->scratch_per_thread) {
        float *s = malloc(need * (size_t)p->threads * sizeof *s);
        if (!s)
            return rf_err_set(err, RF_ENOMEM, "preprocess: cannot allocate %zu bytes of working memory",
                              need * (size_t)p->threads * sizeof *s);
        free(p->scratch);
        p->scratch = s;
        p->scratch_per_thread = need;
    }
    int64_t tasks = (c.ny + ROWS_PER_TASK - 1) / ROWS_PER_TASK;
    if (p->pool && tasks > 1) {
        rf_pool_run(p->pool, tasks, run_rows, &c);
    } else {
        for (int64_t t = 0; t < tasks; t++)
            run_rows(&c, t, 0);
    }
    return RF_OK;
}

int rf_preprocess_image(const rf_preprocess_config *cfg, const float *in, int in_h, int in_w, int in_c,
                        float *out, rf_err *err)
{
    rf_preprocessor *p;
    int rc = rf_preprocess_create(&p, cfg, 1, err);
    if (rc)
        return rc;
    rc = rf_preprocess_run(p, in, in_h, in_w, in_c, out, err);
    rf_preprocess_destroy(p);
    return rc;
}

int rf_preprocess_resample(const float *in, int in_h, int in_w, int c, float *out, int out_h, int out_w,
                           rf_preprocess_filter filter, rf_err *err)
{
    if (c != 1 && c != 3)
        return rf_err_set(err, RF_EINVAL, "preprocess: %d channels, not 1 or 3", c);
    rf_preprocess_config cfg;
    rf_preprocess_config_init(&cfg, out_h, out_w, c);
    cfg.aspect = RF_PREPROCESS_STRETCH;
    cfg.filter = filter;
    return rf_preprocess_image(&cfg, in, in_h, in_w, c, out, err);
}
