/*
 * The fusion forward pass: the study's images through the vision encoder
 * (one batch; or their states given in the study, from rf_fusion_vision over
 * several studies' images at once: the same steps after the pass), the token
 * sequence assembled from the encoders' outputs and the fusion embeddings,
 * the pre-norm blocks (rf_block_forward, with
 * attention groups for cross attention), the final LayerNorm of the CLS row
 * and the head. Every operation on activations goes through the backend;
 * only the sigmoid of the K logits is taken on the host. B variants of one
 * image (occlusion) share one sequence layout and run as a batch of B.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fusion/fusion_model.h"

#define OPS(f) ((f)->be->ops)

void rf_fusion_time_features(double days, float *x)
{
    const double two_pi = 6.283185307179586;
    double d = days > 0 ? days : 0;
    if (d > 36525)
        d = 36525; /* a century: beyond it the features say nothing new */
    x[0] = (float)(log1p(d) / log1p(3650.0));
    x[1] = (float)sin(two_pi * d / 7.0);
    x[2] = (float)cos(two_pi * d / 7.0);
    x[3] = (float)sin(two_pi * d / 30.4375);
    x[4] = (float)cos(two_pi * d / 30.4375);
    x[5] = (float)sin(two_pi * d / 365.25);
    x[6] = (float)cos(two_pi * d / 365.25);
    x[7] = (float)((d < 3650 ? d : 3650) / 3650.0);
}

void rf_fusion_pool_matrix(float *pool, int gh, int gw, int oh, int ow)
{
    memset(pool, 0, (size_t)oh * ow * gh * gw * sizeof(float));
    for (int i = 0; i < oh; i++) {
        int r0 = i * gh / oh, r1 = ((i + 1) * gh + oh - 1) / oh;
        for (int j = 0; j < ow; j++) {
            int c0 = j * gw / ow, c1 = ((j + 1) * gw + ow - 1) / ow;
            float w = 1.0f / (float)((r1 - r0) * (c1 - c0));
            float *row = pool + ((size_t)i * ow + j) * gh * gw;
            for (int r = r0; r < r1; r++)
                for (int c = c0; c < c1; c++)
                    row[r * gw + c] = w;
        }
    }
}

void rf_fusion_output_free(rf_fusion_output *out)
{
    if (!out)
        return;
    free(out->logits);
    free(out->probabilities);
    free(out->layout.text_note);
    free(out->layout.text_token);
    free(out->layout.lab_token);
    memset(out, 0, sizeof *out);
}

void rf_fusion_trace_free(rf_fusion_trace *t)
{
    if (!t)
        return;
    free(t->vision);
    free(t->vision_last_in);
    free(t->sequence);
    free(t->logits);
    free(t->probabilities);
    free(t->layout.text_note);
    free(t->layout.text_token);
    free(t->layout.lab_token);
    memset(t, 0, sizeof *t);
}

/* ---- one run ---- */

typedef struct run {
    rf_fusion *f;
    const rf_fusion_study *s;
    int B;
    int var;               /* the image index with variants, or -1 */
    const float *variants; /* [B, C, H, W] */
    int trace;

    rf_fusion_layout L;
    int inputs_used[RF_MODALITY_COUNT];
    int nimg;              /* images + priors */
    int Tv, Dv, pooled;    /* vision tokens per image, their width, tokens kept per image */
    float *vis;            /* [nimg, Tv, Dv]: every image (the variant image's slot unused) */
    const float *vis_in;   /* what the device pass takes: vis, or the study's own states (s->vision) */
    float *vis_var;        /* [B, Tv, Dv] */
    float *vis_last_in;    /* trace: [nimg, Tv, Dv] */
    float *text;           /* [count[TEXT] or 0, Dt] */
    int32_t *lab_ids;
    float *lab_feats;      /* [count[LABS], 8] */
    int nlab;              /* lab rows (0 when absent) */
    int ntext;             /* text rows (0 when absent) */

    float *logits;         /* [B, K] host */
    float *sequence;       /* trace: [T, D] host */
    rf_err *err;
} run;

static void run_free(run *r)
{
    free(r->vis);
    free(r->vis_var);
    free(r->vis_last_in);
    free(r->text);
    free(r->lab_ids);
    free(r->lab_feats);
    free(r->logits);
    free(r->sequence);
    free(r->L.text_note);
    free(r->L.text_token);
    free(r->L.lab_token);
}

static int check_study(run *r)
{
    const rf_fusion *f = r->f;
    const rf_fusion_study *s = r->s;
    const rf_fusion_info *in = &f->info;
    rf_err *err = r->err;
    if (s->nimages < 0 || s->nimages > in->max_images)
        return rf_err_set(err, RF_EINVAL, "fusion: %d images; the model takes 0 to %d", s->nimages, in->max_images);
    if (s->npriors < 0 || s->npriors > in->max_prior_images)
        return rf_err_set(err, RF_EINVAL, "fusion: %d prior images; the model takes 0 to %d", s->npriors,
                          in->max_prior_images);
    if ((s->nimages && !s->images) || (s->npriors && !s->priors) || (s->nnotes && !s->notes) ||
        (s->nlabs && !s->labs) || s->nnotes < 0)
        return rf_err_set(err, RF_EINVAL, "fusion: an input count is set without its data");
    if (s->nimages + s->npriors > 0 && (s->height < 1 || s->width < 1 || s->height > 16384 || s->width > 16384))
        return rf_err_set(err, RF_EINVAL, "fusion: image size %dx%d is out of range", s->height, s->width);
    if (s->npriors && !(s->prior_days >= 0 && s->prior_days < 1e7))
        return rf_err_set(err, RF_EINVAL, "fusion: prior_days must be a number of days >= 0");
    if (s->nnotes && !f->text)
        return rf_err_set(err, RF_EINVAL, "fusion: notes were given, but the model has no text encoder");
    for (int n = 0; n < s->nnotes; n++) {
        const rf_text_encoding *e = &s->notes[n];
        if (e->hidden != in->text.info.hidden || !e->document || (e->n > 0 && !e->tokens) || e->n < 0)
            return rf_err_set(err, RF_EINVAL, "fusion: note %d was not encoded by this model's text encoder", n);
    }
    for (size_t j = 0; j < s->nlabs; j++)
        for (int k = 0; k < RF_LAB_TOKEN_FEATURES; k++)
            if (!isfinite(s->labs[j].features[k]))
                return rf_err_set(err, RF_EINVAL, "fusion: lab token %zu has a non-finite feature %d", j, k);
    if (r->var >= 0 && (r->var >= s->nimages + s->npriors || r->B < 1 || !r->variants))
        return rf_err_set(err, RF_EINVAL, "fusion: image %d of %d to vary, with %d variants", r->var,
                          s->nimages + s->npriors, r->B);
    if (r->B < 1 || r->B > 65536)
        return rf_err_set(err, RF_EINVAL, "fusion: %d variants", r->B);
    return RF_OK;
}

/* The image size checks of the forward (and rf_fusion_vision). */
static int check_image_size(const rf_fusion *f, int height, int width, rf_err *err)
{
    const rf_model_info *vi = &f->info.vision.info;
    if (height < 1 || width < 1 || height > 16384 || width > 16384)
        return rf_err_set(err, RF_EINVAL, "fusion: image size %dx%d is out of range", height, width);
    if (vi->arch != RF_ARCH_DINOV2 && (height != vi->image_size || width != vi->image_size))
        return rf_err_set(err, RF_EINVAL, "fusion: images are %dx%d, the vision encoder takes %dx%d", height, width,
                          vi->image_size, vi->image_size);
    if (height % vi->patch_size || width % vi->patch_size)
        return rf_err_set(err, RF_EINVAL, "fusion: images of %dx%d are not a multiple of the patch size %d", height,
                          width, vi->patch_size);
    return RF_OK;
}

/* The vision encoder over n contiguous images [n, C, height, width] in one
 * pass: last_hidden_state into *out [n, Tv, Dv] (malloc'd), *tokens = Tv,
 * and with last_in the input of its last block. */
static int vision_encode(rf_fusion *f, const float *pixels, int n, int height, int width, float **out, float **last_in,
                         int *tokens, rf_err *err)
{
    const rf_model_info *vi = &f->info.vision.info;
    int64_t shape[4] = {n, vi->channels, height, width};
    rf_tensor px = rf_tensor_make(RF_F32, (void *)pixels, 4, shape);
    rf_model_inputs in = {.pixel_values = &px, .capture_blocks = last_in ? 1 : 0};
    rf_model_outputs o;
    int rc = rf_model_forward(f->vision, &in, &o, err);
    if (rc)
        return rc;
    *tokens = (int)o.last_hidden_state.shape[1];
    *out = o.last_hidden_state.data;
    o.last_hidden_state.data = NULL;
    if (last_in) {
        *last_in = o.block_inputs.data;
        o.block_inputs.data = NULL;
    }
    rf_model_outputs_free(&o);
    return RF_OK;
}

/* images[0..n) (each [C, height, width]) gathered into one pass of vision_encode. */
static int vision_images(rf_fusion *f, const float *const *images, int n, int height, int width, float **out,
                         float **last_in, int *tokens, rf_err *err)
{
    size_t per = (size_t)f->info.vision.info.channels * height * width;
    float *px = malloc((size_t)n * per * sizeof(float));
    if (!px)
        return rf_err_set(err, RF_ENOMEM, "fusion: out of memory for %d images", n);
    for (int i = 0; i < n; i++)
        memcpy(px + (size_t)i * per, images[i], per * sizeof(float));
    int rc = vision_encode(f, px, n, height, width, out, last_in, tokens, err);
    free(px);
    return rc;
}

int rf_fusion_vision(rf_fusion *f, const float *const *images, int n, int height, int width, float **states,
                     int *tokens, rf_err *err)
{
    *states = NULL;
    *tokens = 0;
    if (n < 0 || (n > 0 && !images))
        return rf_err_set(err, RF_EINVAL, "fusion: %d images without their pixels", n);
    if (n == 0)
        return RF_OK;
    for (int i = 0; i < n; i++)
        if (!images[i])
            return rf_err_set(err, RF_EINVAL, "fusion: image %d has no pixels", i);
    int rc = check_image_size(f, height, width, err);
    return rc ? rc : vision_images(f, images, n, height, width, states, NULL, tokens, err);
}

const float *rf_fusion_study_image(const rf_fusion *f, const rf_fusion_study *s, int i)
{
    size_t per = (size_t)f->info.vision.info.channels * s->height * s->width;
    return i < s->nimages ? s->images + (size_t)i * per : s->priors + (size_t)(i - s->nimages) * per;
}

/* The vision tokens of every image (the variant image excepted: its slot is
 * unused) from the study's states or one pass of the encoder over its images
 * and priors, and the variants' in a second pass. */
static int run_vision(run *r)
{
    const rf_fusion_study *s = r->s;
    const rf_model_info *vi = &r->f->info.vision.info;
    r->nimg = s->nimages + s->npriors;
    r->Dv = vi->hidden;
    int rc = r->nimg ? check_image_size(r->f, s->height, s->width, r->err) : RF_OK;
    if (rc)
        return rc;
    r->L.grid_h = r->nimg ? s->height / vi->patch_size : 0;
    r->L.grid_w = r->nimg ? s->width / vi->patch_size : 0;
    int grid_tokens = 1 + r->L.grid_h * r->L.grid_w;
    if (r->nimg && s->vision) {
        r->Tv = grid_tokens;
        r->vis_in = s->vision;
    } else if (r->nimg) {
        const float **imgs = malloc((size_t)r->nimg * sizeof *imgs);
        if (!imgs)
            return rf_err_set(r->err, RF_ENOMEM, "fusion: out of memory");
        int n = 0;
        for (int i = 0; i < r->nimg; i++)
            if (i != r->var)
                imgs[n++] = rf_fusion_study_image(r->f, s, i);
        float *shared = NULL;
        rc = n ? vision_images(r->f, imgs, n, s->height, s->width, &shared, r->trace ? &r->vis_last_in : NULL, &r->Tv,
                               r->err)
               : RF_OK;
        free(imgs);
        if (rc)
            return rc;
        if (r->var < 0 || !n) {
            r->vis = shared;
        } else {
            /* spread into image order, leaving the variant's slot empty */
            size_t tok = (size_t)r->Tv * r->Dv;
            r->vis = calloc((size_t)r->nimg * tok, sizeof(float));
            if (!r->vis) {
                free(shared);
                return rf_err_set(r->err, RF_ENOMEM, "fusion: out of memory");
            }
            for (int i = 0, k = 0; i < r->nimg; i++)
                if (i != r->var)
                    memcpy(r->vis + (size_t)i * tok, shared + (size_t)k++ * tok, tok * sizeof(float));
            free(shared);
        }
    }
    if (r->var >= 0) {
        int Tv = 0;
        if ((rc = vision_encode(r->f, r->variants, r->B, s->height, s->width, &r->vis_var, NULL, &Tv, r->err)))
            return rc;
        if (r->Tv && Tv != r->Tv)
            return rf_err_set(r->err, RF_EINVAL, "fusion: vision token counts differ between passes");
        r->Tv = Tv;
        if (!r->vis && !r->vis_in) {
            r->vis = calloc((size_t)r->Tv * r->Dv, sizeof(float));
            if (!r->vis)
                return rf_err_set(r->err, RF_ENOMEM, "fusion: out of memory");
        }
    }
    if (!r->vis_in)
        r->vis_in = r->vis;
    if (r->nimg && r->Tv != grid_tokens)
        return rf_err_set(r->err, RF_EUNSUP, "fusion: the vision encoder gives %d tokens for a %dx%d patch grid", r->Tv,
                          r->L.grid_h, r->L.grid_w);
    return RF_OK;
}

/* The layout of the sequence and the host-side inputs of text and labs. */
static int build_layout(run *r)
{
    rf_fusion *f = r->f;
    const rf_fusion_study *s = r->s;
    rf_fusion_layout *L = &r->L;
    int g = f->info.image_pool_grid;
    L->pool_h = g && g < L->grid_h ? g : L->grid_h;
    L->pool_w = g && g < L->grid_w ? g : L->grid_w;
    L->image_tokens = r->nimg ? 1 + L->pool_h * L->pool_w : 0;
    r->pooled = L->image_tokens;
    /* text rows: per note its document, then content tokens while the cap lasts */
    int budget = f->info.max_text_tokens, rows = 0;
    for (int n = 0; n < s->nnotes; n++) {
        int take = s->notes[n].n < budget ? s->notes[n].n : budget;
        budget -= take;
        rows += 1 + take;
        L->text_tokens_dropped += s->notes[n].n - take;
    }
    r->ntext = rows;
    int Dt = f->text ? f->info.text.info.hidden : 0;
    if (rows) {
        L->text_note = malloc((size_t)rows * sizeof(int));
        L->text_token = malloc((size_t)rows * sizeof(int));
        r->text = malloc((size_t)rows * Dt * sizeof(float));
        if (!L->text_note || !L->text_token || !r->text)
            return rf_err_set(r->err, RF_ENOMEM, "fusion: out of memory");
        budget = f->info.max_text_tokens;
        int j = 0;
        for (int n = 0; n < s->nnotes; n++) {
            const rf_text_encoding *e = &s->notes[n];
            int take = e->n < budget ? e->n : budget;
            budget -= take;
            L->text_note[j] = n;
            L->text_token[j] = -1;
            memcpy(r->text + (size_t)j++ * Dt, e->document, (size_t)Dt * sizeof(float));
            for (int t = 0; t < take; t++) {
                L->text_note[j] = n;
                L->text_token[j] = t;
                memcpy(r->text + (size_t)j++ * Dt, e->tokens + (size_t)t * Dt, (size_t)Dt * sizeof(float));
            }
        }
    }
    /* lab rows: the tokens whose lab the model's code table has */
    int nl = 0;
    for (size_t j = 0; j < s->nlabs; j++)
        nl += s->labs[j].lab >= 0 && s->labs[j].lab < f->info.lab_codes;
    L->labs_dropped = (int)s->nlabs - nl;
    r->nlab = nl;
    if (nl) {
        L->lab_token = malloc((size_t)nl * sizeof(int));
        r->lab_ids = malloc((size_t)nl * sizeof(int32_t));
        r->lab_feats = malloc((size_t)nl * RF_LAB_TOKEN_FEATURES * sizeof(float));
        if (!L->lab_token || !r->lab_ids || !r->lab_feats)
            return rf_err_set(r->err, RF_ENOMEM, "fusion: out of memory");
        int k = 0;
        for (size_t j = 0; j < s->nlabs; j++)
            if (s->labs[j].lab >= 0 && s->labs[j].lab < f->info.lab_codes) {
                L->lab_token[k] = (int)j;
                r->lab_ids[k] = s->labs[j].lab;
                memcpy(r->lab_feats + (size_t)k * RF_LAB_TOKEN_FEATURES, s->labs[j].features,
                       sizeof s->labs[j].features);
                k++;
            }
    }
    int counts[RF_MODALITY_COUNT];
    counts[RF_MODALITY_IMAGE] = s->nimages * L->image_tokens;
    counts[RF_MODALITY_PRIOR] = s->npriors * L->image_tokens;
    counts[RF_MODALITY_TEXT] = r->ntext;
    counts[RF_MODALITY_LABS] = r->nlab;
    const rf_modality order[RF_MODALITY_COUNT] = {RF_MODALITY_IMAGE, RF_MODALITY_PRIOR, RF_MODALITY_TEXT,
                                                  RF_MODALITY_LABS};
    int row = 1;
    for (int i = 0; i < RF_MODALITY_COUNT; i++) {
        rf_modality m = order[i];
        r->inputs_used[m] = counts[m] > 0;
        L->absent[m] = counts[m] == 0;
        L->start[m] = row;
        L->count[m] = counts[m] ? counts[m] : 1;
        row += L->count[m];
    }
    L->T = row;
    return RF_OK;
}

/* ---- the device pass ---- */

static int reserve(rf_fusion *f, size_t need, rf_err *err)
{
    rf_arena_reset(&f->activations);
    if (f->activations.size >= need)
        return RF_OK;
    if (f->activations_buf)
        f->be->ops->buffer_free(f->be, f->activations_buf);
    f->activations_buf = NULL;
    rf_arena_wrap(&f->activations, NULL, 0);
    void *base;
    int rc = f->be->ops->buffer_alloc(f->be, need, &f->activations_buf, &base, err);
    if (rc)
        return rc;
    rf_arena_wrap(&f->activations, base, need);
    return RF_OK;
}

static int alloc(rf_fusion *f, rf_tensor *t, rf_dtype dt, int64_t rows, int64_t cols, rf_err *err)
{
    int64_t shape[2] = {rows, cols};
    *t = rf_arena_tensor(&f->activations, dt, 2, shape);
    if (!t->data)
        return rf_err_set(err, RF_ENOMEM, "fusion: activation arena exhausted");
    return RF_OK;
}

static int upload(rf_fusion *f, rf_tensor *t, rf_dtype dt, int64_t rows, int64_t cols, const void *host,
                  rf_err *err)
{
    int rc = alloc(f, t, dt, rows, cols, err);
    return rc ? rc : f->be->ops->upload(f->be, t, host, err);
}

/* Rows [r0, r0 + n) of a [rows, cols] contiguous tensor. */
static rf_tensor rows_of(const rf_tensor *t, int64_t r0, int64_t n)
{
    rf_tensor v = *t;
    v.ndim = 2;
    v.shape[0] = n;
    v.data = (float *)t->data + r0 * t->stride[0];
    return v;
}

typedef struct dev {
    rf_tensor x, vis, vis_var, pool, pooled, text, lab_ids, lab_feats, tfeat, trow, prior_bias, zero, clsn, logits;
    rf_block_scratch s;
} dev;

/* The projected tokens of one image (vision tokens tok [Tv, Dv]) into rows
 * dst [pooled, D], plus the bias row. */
static int image_rows(run *r, dev *d, const float *tok_dev, rf_tensor *dst, const rf_tensor *bias)
{
    rf_fusion *f = r->f;
    const rf_backend_ops *o = OPS(f);
    rf_err *err = r->err;
    int64_t Tv = r->Tv, Dv = r->Dv;
    int rc;
    rf_tensor tok = {.dtype = RF_F32, .ndim = 2, .shape = {Tv, Dv}, .stride = {Dv, 1}, .data = (void *)tok_dev};
    const rf_tensor *src = &tok;
    if (d->pool.data) {
        rf_tensor a = {.dtype = RF_F32, .ndim = 3, .shape = {1, r->pooled, Tv}, .stride = {r->pooled * Tv, Tv, 1},
                       .data = d->pool.data};
        rf_tensor b = {.dtype = RF_F32, .ndim = 3, .shape = {1, Tv, Dv}, .stride = {Tv * Dv, Dv, 1},
                       .data = (void *)tok_dev};
        rf_tensor c = {.dtype = RF_F32, .ndim = 3, .shape = {1, r->pooled, Dv}, .stride = {r->pooled * Dv, Dv, 1},
                       .data = d->pooled.data};
        if ((rc = o->matmul(f->be, &c, &a, &b, 0, 0, 1.0f, err)))
            return rc;
        src = &d->pooled;
    }
    if ((rc = o->linear(f->be, dst, src, &f->image_proj, RF_ACT_NONE, NULL, err)))
        return rc;
    return o->add(f->be, dst, dst, bias, err);
}

static int device_pass(run *r)
{
    rf_fusion *f = r->f;
    rf_backend *be = f->be;
    const rf_backend_ops *o = be->ops;
    rf_err *err = r->err;
    const rf_fusion_layout *L = &r->L;
    int64_t B = r->B, T = L->T, D = f->info.hidden, I = f->intermediate, K = f->info.nlabels, N = B * T;
    int64_t Dt = f->text ? f->info.text.info.hidden : 1, Tv = r->Tv, Dv = r->Dv, P = r->pooled;
    int64_t nvis = r->nimg ? r->nimg : 0, nvar = r->var >= 0 ? B : 0;
    int64_t floats = N * D * 3 + N * 3 * D + N * I + (nvis + nvar) * Tv * Dv + P * Tv + P * Dv +
                     (int64_t)r->ntext * Dt + (int64_t)r->nlab * (RF_LAB_TOKEN_FEATURES + 1) + 8 + 3 * D +
                     B * D + B * K;
    int rc = reserve(f, (size_t)floats * sizeof(float) + 64 * 40, err);
    if (rc)
        return rc;
    dev d;
    memset(&d, 0, sizeof d);
    float *zeros = calloc((size_t)D, sizeof(float));
    if (!zeros)
        return rf_err_set(err, RF_ENOMEM, "fusion: out of memory");
    rc = upload(f, &d.zero, RF_F32, 1, D, zeros, err);
    free(zeros);
    if (rc || (rc = alloc(f, &d.x, RF_F32, N, D, err)) || (rc = alloc(f, &d.s.normed, RF_F32, N, D, err)) ||
        (rc = alloc(f, &d.s.qkv, RF_F32, N, 3 * D, err)) || (rc = alloc(f, &d.s.att, RF_F32, N, D, err)) ||
        (rc = alloc(f, &d.s.hidden, RF_F32, N, I, err)) || (rc = alloc(f, &d.clsn, RF_F32, B, D, err)) ||
        (rc = alloc(f, &d.logits, RF_F32, B, K, err)))
        return rc;
    if (nvis && (rc = upload(f, &d.vis, RF_F32, nvis * Tv, Dv, r->vis_in, err)))
        return rc;
    if (nvar && (rc = upload(f, &d.vis_var, RF_F32, nvar * Tv, Dv, r->vis_var, err)))
        return rc;
    if (nvis && P != Tv) {
        float *pool = calloc((size_t)(P * Tv), sizeof(float));
        if (!pool)
            return rf_err_set(err, RF_ENOMEM, "fusion: out of memory");
        pool[0] = 1.0f; /* the vision CLS token is kept as it is */
        float *cells = malloc((size_t)((P - 1) * (Tv - 1)) * sizeof(float));
        if (!cells) {
            free(pool);
            return rf_err_set(err, RF_ENOMEM, "fusion: out of memory");
        }
        rf_fusion_pool_matrix(cells, L->grid_h, L->grid_w, L->pool_h, L->pool_w);
        for (int64_t i = 1; i < P; i++)
            memcpy(pool + i * Tv + 1, cells + (i - 1) * (Tv - 1), (size_t)(Tv - 1) * sizeof(float));
        free(cells);
        rc = upload(f, &d.pool, RF_F32, P, Tv, pool, err);
        free(pool);
        if (rc || (rc = alloc(f, &d.pooled, RF_F32, P, Dv, err)))
            return rc;
    }
    if (r->ntext && (rc = upload(f, &d.text, RF_F32, r->ntext, Dt, r->text, err)))
        return rc;
    if (r->nlab) {
        int64_t n = r->nlab;
        if ((rc = upload(f, &d.lab_ids, RF_I32, 1, n, r->lab_ids, err)) ||
            (rc = upload(f, &d.lab_feats, RF_F32, n, RF_LAB_TOKEN_FEATURES, r->lab_feats, err)))
            return rc;
        d.lab_ids = rf_tensor_make(RF_I32, d.lab_ids.data, 1, &n);
    }
    if (r->s->npriors) {
        float tf[RF_FUSION_TIME_FEATURES];
        rf_fusion_time_features(r->s->prior_days, tf);
        if ((rc = upload(f, &d.tfeat, RF_F32, 1, RF_FUSION_TIME_FEATURES, tf, err)) ||
            (rc = alloc(f, &d.trow, RF_F32, 1, D, err)) || (rc = alloc(f, &d.prior_bias, RF_F32, 1, D, err)))
            return rc;
    }

    if ((rc = o->begin(be, err)))
        return rc;
    rf_tensor mod[RF_MODALITY_COUNT], absent[RF_MODALITY_COUNT];
    for (int m = 0; m < RF_MODALITY_COUNT; m++) {
        mod[m] = rows_of(&f->modality, m, 1);
        absent[m] = rows_of(&f->absent, m, 1);
    }
    rf_tensor cls = f->cls;
    cls.ndim = 2;
    cls.shape[0] = 1;
    cls.shape[1] = D;
    cls.stride[0] = D;
    cls.stride[1] = 1;
    /* sequence 0: everything, then copied to the other variants */
    rf_tensor x0 = rows_of(&d.x, 0, T);
    rf_tensor row0 = rows_of(&x0, 0, 1);
    if ((rc = o->add(be, &row0, &cls, &d.zero, err)))
        goto fail;
    if (r->s->npriors &&
        ((rc = o->linear(be, &d.trow, &d.tfeat, &f->time_embed, RF_ACT_NONE, NULL, err)) ||
         (rc = o->add(be, &d.prior_bias, &d.trow, &mod[RF_MODALITY_PRIOR], err))))
        goto fail;
    for (int i = 0; i < r->nimg; i++) {
        if (i == r->var)
            continue;
        int prior = i >= r->s->nimages;
        int64_t r0 = prior ? L->start[RF_MODALITY_PRIOR] + (i - r->s->nimages) * P : L->start[RF_MODALITY_IMAGE] + i * P;
        rf_tensor dst = rows_of(&x0, r0, P);
        if ((rc = image_rows(r, &d, (float *)d.vis.data + (int64_t)i * Tv * Dv, &dst,
                             prior ? &d.prior_bias : &mod[RF_MODALITY_IMAGE])))
            goto fail;
    }
    if (r->ntext) {
        rf_tensor dst = rows_of(&x0, L->start[RF_MODALITY_TEXT], r->ntext);
        if ((rc = o->linear(be, &dst, &d.text, &f->text_proj, RF_ACT_NONE, NULL, err)) ||
            (rc = o->add(be, &dst, &dst, &mod[RF_MODALITY_TEXT], err)))
            goto fail;
    }
    if (r->nlab) {
        rf_tensor dst = rows_of(&x0, L->start[RF_MODALITY_LABS], r->nlab);
        if ((rc = o->embedding(be, &dst, &f->lab_code, &d.lab_ids, err)) ||
            (rc = o->linear(be, &dst, &d.lab_feats, &f->lab_value, RF_ACT_NONE, &dst, err)) ||
            (rc = o->add(be, &dst, &dst, &mod[RF_MODALITY_LABS], err)))
            goto fail;
    }
    for (int m = 0; m < RF_MODALITY_COUNT; m++)
        if (L->absent[m]) {
            rf_tensor dst = rows_of(&x0, L->start[m], 1);
            if ((rc = o->add(be, &dst, &absent[m], &d.zero, err)))
                goto fail;
        }
    for (int64_t b = 1; b < B; b++) {
        rf_tensor xb = rows_of(&d.x, b * T, T);
        if ((rc = o->add(be, &xb, &x0, &d.zero, err)))
            goto fail;
    }
    if (r->var >= 0) {
        int prior = r->var >= r->s->nimages;
        int64_t r0 = prior ? L->start[RF_MODALITY_PRIOR] + (r->var - r->s->nimages) * P
                           : L->start[RF_MODALITY_IMAGE] + r->var * P;
        for (int64_t b = 0; b < B; b++) {
            rf_tensor dst = rows_of(&d.x, b * T + r0, P);
            if ((rc = image_rows(r, &d, (float *)d.vis_var.data + b * Tv * Dv, &dst,
                                 prior ? &d.prior_bias : &mod[RF_MODALITY_IMAGE])))
                goto fail;
        }
    }
    if (r->trace) {
        /* the assembled sequence, before the first block */
        if ((rc = o->end(be, 1, err)))
            return rc;
        r->sequence = malloc((size_t)(T * D) * sizeof(float));
        if (!r->sequence)
            return rf_err_set(err, RF_ENOMEM, "fusion: out of memory");
        if ((rc = o->download(be, r->sequence, &x0, err)) || (rc = o->begin(be, err)))
            return rc;
    }
    rf_attn_group groups[2];
    int ngroups = 0;
    if (f->info.cross_attention) {
        groups[ngroups++] = (rf_attn_group){L->start[RF_MODALITY_TEXT], L->start[RF_MODALITY_TEXT] + L->count[RF_MODALITY_TEXT]};
        groups[ngroups++] = (rf_attn_group){L->start[RF_MODALITY_LABS], L->start[RF_MODALITY_LABS] + L->count[RF_MODALITY_LABS]};
    }
    for (int i = 0; i < f->info.layers; i++)
        if ((rc = rf_block_forward(be, &f->blocks[i], &f->cfg, &d.x, B, T, NULL, groups, ngroups, &d.s, err)))
            goto fail;
    rf_tensor clsrows = d.x;
    clsrows.shape[0] = B;
    clsrows.stride[0] = T * D;
    if ((rc = o->layernorm(be, &d.clsn, &clsrows, &f->norm_g, &f->norm_b, f->cfg.eps, err)) ||
        (rc = o->linear(be, &d.logits, &d.clsn, &f->head, RF_ACT_NONE, NULL, err)))
        goto fail;
    if ((rc = o->end(be, 1, err)))
        return rc;
    r->logits = malloc((size_t)(B * K) * sizeof(float));
    if (!r->logits)
        return rf_err_set(err, RF_ENOMEM, "fusion: out of memory");
    return o->download(be, r->logits, &d.logits, err);
fail:
    o->end(be, 0, NULL);
    return rc;
}

static int execute(run *r)
{
    int rc = check_study(r);
    if (!rc)
        rc = run_vision(r);
    if (!rc)
        rc = build_layout(r);
    if (!rc)
        rc = device_pass(r);
    return rc;
}

static float *probabilities(const rf_fusion *f, const float *logits, int B)
{
    int K = f->info.nlabels;
    float *p = malloc((size_t)B * K * sizeof(float));
    if (!p)
        return NULL;
    for (int b = 0; b < B; b++)
        for (int k = 0; k < K; k++) {
            double z = (double)logits[b * K + k] / f->temperature[k];
            p[b * K + k] = (float)(1.0 / (1.0 + exp(-z)));
        }
    return p;
}

/* One pass of B sequences (var, variants: rf_fusion_forward_batch's image
 * and variants, or -1 and NULL; trace: keep what rf_fusion_trace_study
 * returns); on success the results that an output and a trace share are
 * moved into *probs, *logits, *nlabels, inputs_used and *layout. */
static int run_pass(run *r, rf_fusion *f, const rf_fusion_study *s, int var, const float *variants, int B, int trace,
                    float **probs, float **logits, int *nlabels, int *inputs_used, rf_fusion_layout *layout,
                    rf_err *err)
{
    memset(r, 0, sizeof *r);
    r->f = f;
    r->s = s;
    r->B = B;
    r->var = var;
    r->variants = variants;
    r->trace = trace;
    r->err = err;
    int rc = execute(r);
    if (!rc && !(*probs = probabilities(f, r->logits, B)))
        rc = rf_err_set(err, RF_ENOMEM, "fusion: out of memory");
    if (!rc) {
        *nlabels = f->info.nlabels;
        *logits = r->logits;
        r->logits = NULL;
        memcpy(inputs_used, r->inputs_used, sizeof r->inputs_used);
        *layout = r->L;
        memset(&r->L, 0, sizeof r->L);
    }
    return rc;
}

static int forward(rf_fusion *f, const rf_fusion_study *s, int var, const float *variants, int B,
                   rf_fusion_output *out, rf_err *err)
{
    memset(out, 0, sizeof *out);
    run r;
    int rc = run_pass(&r, f, s, var, variants, B, 0, &out->probabilities, &out->logits, &out->nlabels,
                      out->inputs_used, &out->layout, err);
    if (!rc)
        out->batch = B;
    run_free(&r);
    if (rc)
        rf_fusion_output_free(out);
    return rc;
}

int rf_fusion_forward(rf_fusion *f, const rf_fusion_study *s, rf_fusion_output *out, rf_err *err)
{
    return forward(f, s, -1, NULL, 1, out, err);
}

int rf_fusion_forward_batch(rf_fusion *f, const rf_fusion_study *s, int image, const float *variants, int B,
                            rf_fusion_output *out, rf_err *err)
{
    memset(out, 0, sizeof *out);
    if (image < 0 || !variants)
        return rf_err_set(err, RF_EINVAL, "fusion: a batch needs an image index and its variants");
    return forward(f, s, image, variants, B, out, err);
}

int rf_fusion_trace_study(rf_fusion *f, const rf_fusion_study *s, rf_fusion_trace *out, rf_err *err)
{
    memset(out, 0, sizeof *out);
    run r;
    int rc = run_pass(&r, f, s, -1, NULL, 1, 1, &out->probabilities, &out->logits, &out->nlabels, out->inputs_used,
                      &out->layout, err);
    if (!rc) {
        out->nimages = s->nimages;
        out->npriors = s->npriors;
        out->vision_tokens = r.Tv;
        out->vision_hidden = r.Dv;
        if (r.vis_in && r.vis_in != r.vis) {
            /* the study's own states (s->vision): the encoder did not run */
            size_t n = (size_t)r.nimg * r.Tv * r.Dv;
            if (!(r.vis = malloc(n * sizeof(float))))
                rc = rf_err_set(err, RF_ENOMEM, "fusion: out of memory");
            else
                memcpy(r.vis, r.vis_in, n * sizeof(float));
        }
        out->vision = r.vis;
        out->vision_last_in = r.vis_last_in;
        r.vis = r.vis_last_in = NULL;
        out->hidden = f->info.hidden;
        out->sequence = r.sequence;
        r.sequence = NULL;
    }
    run_free(&r);
    if (rc)
        rf_fusion_trace_free(out);
    return rc;
}
