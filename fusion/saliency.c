/*
 * Saliency of a fusion model (radfuse/saliency.h): the model's weights that
 * the methods differentiate through, copied to the host in double; the
 * fusion forward recomputed there from the traced sequence (and checked
 * against the model's own logits); per finding the gradient of its logit
 * with respect to the sequence, which gives the input weights, the text
 * spans and, through the image rows, the Grad-CAM of the last vision block.
 * Rollout and occlusion reuse the same trace and layout.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fusion/fusion_model.h"
#include "fusion/grad.h"
#include "radfuse/saliency.h"

/* The fusion weights on the host. */
typedef struct hfusion {
    int D, H, I, K, layers, Dv;
    double eps;
    rf_hblock *blocks;
    double *norm_g, *norm_b, *head_w, *head_b;
    double *img_w, *img_b;      /* image_proj [D, Dv], [D] */
    double *txt_b, *lab_b;      /* text_proj and lab_value biases [D] */
    double *mod;                /* [RF_MODALITY_COUNT, D] */
    double *prior_row;          /* time_embed(time features) [D], with priors */
} hfusion;

static void hfusion_free(hfusion *h)
{
    for (int i = 0; h->blocks && i < h->layers; i++)
        rf_hblock_free(&h->blocks[i]);
    free(h->blocks);
    free(h->norm_g), free(h->norm_b), free(h->head_w), free(h->head_b);
    free(h->img_w), free(h->img_b), free(h->txt_b), free(h->lab_b), free(h->mod), free(h->prior_row);
    memset(h, 0, sizeof *h);
}

static double *dcalloc(int64_t n)
{
    return calloc((size_t)(n > 0 ? n : 1), sizeof(double));
}

static int fetch_new(rf_backend *be, const rf_tensor *t, int64_t n, double **out, rf_err *err)
{
    *out = dcalloc(n);
    if (!*out)
        return rf_err_set(err, RF_ENOMEM, "saliency: out of memory for the model's weights");
    return rf_g_fetch(be, t, *out, n, err);
}

/* A linear layer's weight: refuses a weight kept only in a prepared form. */
static int fetch_weight(rf_backend *be, const rf_linear *l, const char *name, int64_t n, double **out, rf_err *err)
{
    if (!l->w.data)
        return rf_err_set(err, RF_EUNSUP,
                          "saliency: the fusion's %s weight exists only in the backend's prepared (fp16) form; "
                          "gradient saliency needs the fp32 weights (load the model at fp32 precision)",
                          name);
    return fetch_new(be, &l->w, n, out, err);
}

static int hfusion_load(rf_fusion *f, double prior_days, int priors, hfusion *h, rf_err *err)
{
    memset(h, 0, sizeof *h);
    const rf_fusion_info *in = &f->info;
    rf_backend *be = f->be;
    if (!f->cfg.pre_norm)
        return rf_err_set(err, RF_EUNSUP, "saliency: the fusion blocks are not pre-norm");
    h->D = in->hidden;
    h->H = in->heads;
    h->I = (int)f->intermediate;
    h->K = in->nlabels;
    h->layers = in->layers;
    h->Dv = in->vision.info.hidden;
    h->eps = f->cfg.eps;
    int64_t D = h->D;
    h->blocks = calloc((size_t)(h->layers > 0 ? h->layers : 1), sizeof *h->blocks);
    if (!h->blocks)
        return rf_err_set(err, RF_ENOMEM, "saliency: out of memory");
    int rc = RF_OK;
    for (int i = 0; i < h->layers && !rc; i++)
        rc = rf_hblock_from_block(be, &f->blocks[i], h->D, h->H, h->I, f->cfg.act, f->cfg.eps, &h->blocks[i], err);
    if (rc)
        return rc;
    if ((rc = fetch_new(be, &f->norm_g, D, &h->norm_g, err)) || (rc = fetch_new(be, &f->norm_b, D, &h->norm_b, err)) ||
        (rc = fetch_weight(be, &f->head, "head", (int64_t)h->K * D, &h->head_w, err)) ||
        (rc = fetch_new(be, &f->head.b, h->K, &h->head_b, err)) ||
        (rc = fetch_weight(be, &f->image_proj, "image projection", D * h->Dv, &h->img_w, err)) ||
        (rc = fetch_new(be, &f->image_proj.b, D, &h->img_b, err)) ||
        (rc = fetch_new(be, &f->lab_value.b, D, &h->lab_b, err)) ||
        (rc = fetch_new(be, &f->modality, RF_MODALITY_COUNT * D, &h->mod, err)))
        return rc;
    if (f->text_proj.w.ndim == 2 && (rc = fetch_new(be, &f->text_proj.b, D, &h->txt_b, err)))
        return rc;
    if (!h->txt_b && !(h->txt_b = dcalloc(D)))
        return rf_err_set(err, RF_ENOMEM, "saliency: out of memory");
    if (!(h->prior_row = dcalloc(D)))
        return rf_err_set(err, RF_ENOMEM, "saliency: out of memory");
    if (priors) {
        /* time_embed(features of prior_days): a constant of the prior rows */
        double *tw = NULL, *tb = NULL, tf[RF_FUSION_TIME_FEATURES];
        float tff[RF_FUSION_TIME_FEATURES];
        rf_fusion_time_features(prior_days, tff);
        for (int i = 0; i < RF_FUSION_TIME_FEATURES; i++)
            tf[i] = tff[i];
        if ((rc = fetch_weight(be, &f->time_embed, "time embedding", D * RF_FUSION_TIME_FEATURES, &tw, err))) {
            free(tw);
            return rc;
        }
        if ((rc = fetch_new(be, &f->time_embed.b, D, &tb, err))) {
            free(tw);
            free(tb);
            return rc;
        }
        rf_g_linear_forward(h->prior_row, tf, tw, tb, 1, RF_FUSION_TIME_FEATURES, (int)D);
        free(tw);
        free(tb);
    }
    return RF_OK;
}

/* ---- the fusion forward and backward on the host ---- */

typedef struct hpass {
    int T;
    int32_t *group;          /* cross attention groups, or NULL */
    rf_hblock_cache *caches; /* [layers] */
    double *x;               /* [layers + 1, T, D]: the input of every block, then the output */
    double mean, rstd, *normed; /* final norm of the CLS row */
    double *logits;          /* [K] */
} hpass;

static void hpass_free(hpass *p, int layers)
{
    for (int i = 0; p->caches && i < layers; i++)
        rf_hblock_cache_free(&p->caches[i]);
    free(p->caches);
    free(p->group);
    free(p->x);
    free(p->normed);
    free(p->logits);
    memset(p, 0, sizeof *p);
}

static int hpass_run(const hfusion *h, const rf_fusion *f, const rf_fusion_trace *tr, hpass *p, rf_err *err)
{
    memset(p, 0, sizeof *p);
    const rf_fusion_layout *L = &tr->layout;
    int T = L->T, D = h->D;
    p->T = T;
    p->caches = calloc((size_t)(h->layers > 0 ? h->layers : 1), sizeof *p->caches);
    p->x = dcalloc((int64_t)(h->layers + 1) * T * D);
    p->normed = dcalloc(D);
    p->logits = dcalloc(h->K);
    if (!p->caches || !p->x || !p->normed || !p->logits)
        return rf_err_set(err, RF_ENOMEM, "saliency: out of memory for a sequence of %d tokens", T);
    if (f->info.cross_attention) {
        /* as fusion_forward.c groups them: text rows among themselves, lab rows too */
        if (!(p->group = calloc((size_t)T, sizeof *p->group)))
            return rf_err_set(err, RF_ENOMEM, "saliency: out of memory");
        for (int r = 0; r < L->count[RF_MODALITY_TEXT]; r++)
            p->group[L->start[RF_MODALITY_TEXT] + r] = 1;
        for (int r = 0; r < L->count[RF_MODALITY_LABS]; r++)
            p->group[L->start[RF_MODALITY_LABS] + r] = 2;
    }
    for (int64_t i = 0; i < (int64_t)T * D; i++)
        p->x[i] = tr->sequence[i];
    for (int l = 0; l < h->layers; l++) {
        int rc = rf_hblock_cache_alloc(&p->caches[l], &h->blocks[l], T, err);
        if (rc)
            return rc;
        rf_hblock_forward(&h->blocks[l], &p->caches[l], p->x + (int64_t)l * T * D, NULL, p->group, T,
                          p->x + (int64_t)(l + 1) * T * D);
    }
    const double *cls = p->x + (int64_t)h->layers * T * D; /* row 0 of the output */
    rf_g_layernorm_forward(p->normed, &p->mean, &p->rstd, cls, h->norm_g, h->norm_b, h->eps, 1, D);
    rf_g_linear_forward(p->logits, p->normed, h->head_w, h->head_b, 1, D, h->K);
    /* the host recomputation must be the model: a mismatch means an
     * architecture this code does not follow, and wrong evidence */
    for (int k = 0; k < h->K; k++) {
        double want = tr->logits[k];
        if (!(fabs(p->logits[k] - want) <= 1e-3 * (1 + fabs(want))))
            return rf_err_set(err, RF_EUNSUP,
                              "saliency: the host recomputation of the fusion gives logit %.6g for finding %d, the "
                              "model %.6g",
                              p->logits[k], k, want);
    }
    return RF_OK;
}

/* dseq [T, D] = d logit_k / d sequence. */
static int hpass_backward(const hfusion *h, const hpass *p, int k, double *dseq, rf_err *err)
{
    int T = p->T, D = h->D;
    int64_t TD = (int64_t)T * D;
    double *dy = dcalloc(TD), *dx = dcalloc(TD), *dn = dcalloc(D);
    int rc = RF_OK;
    if (!dy || !dx || !dn) {
        rc = rf_err_set(err, RF_ENOMEM, "saliency: out of memory for the gradients");
        goto done;
    }
    /* logit_k = head_w[k] . norm(x_L[0]) + b_k */
    for (int c = 0; c < D; c++)
        dn[c] = h->head_w[(int64_t)k * D + c];
    double mean = p->mean, rstd = p->rstd;
    rf_g_layernorm_backward(dy, NULL, NULL, dn, p->x + (int64_t)h->layers * TD, &mean, &rstd, h->norm_g, 1, D);
    for (int l = h->layers - 1; l >= 0; l--) {
        memset(dx, 0, (size_t)TD * sizeof *dx);
        if ((rc = rf_hblock_backward(&h->blocks[l], &p->caches[l], dy, dx, NULL, err)))
            goto done;
        double *t = dy;
        dy = dx;
        dx = t;
    }
    memcpy(dseq, dy, (size_t)TD * sizeof *dseq);
done:
    free(dy);
    free(dx);
    free(dn);
    return rc;
}

/* Gradient x input of each sequence row, the input being what the row's
 * projection took (vision features, text states, lab code and values): the
 * row minus its constant offsets (projection bias, modality and time
 * embeddings), since for y = W x + b, dy . W x = dx . x. Absent rows and
 * the CLS row get 0. attr [T]. */
static void row_attributions(const hfusion *h, const rf_fusion_trace *tr, const double *dseq, double *attr)
{
    const rf_fusion_layout *L = &tr->layout;
    int D = h->D;
    for (int r = 0; r < L->T; r++)
        attr[r] = 0;
    for (int m = 0; m < RF_MODALITY_COUNT; m++) {
        if (L->absent[m])
            continue;
        const double *bias = m == RF_MODALITY_TEXT ? h->txt_b : m == RF_MODALITY_LABS ? h->lab_b : h->img_b;
        const double *mod = h->mod + (int64_t)m * D;
        for (int r = L->start[m]; r < L->start[m] + L->count[m]; r++) {
            const float *row = tr->sequence + (int64_t)r * D;
            const double *g = dseq + (int64_t)r * D;
            double s = 0;
            for (int c = 0; c < D; c++) {
                double in = row[c] - bias[c] - mod[c] - (m == RF_MODALITY_PRIOR ? h->prior_row[c] : 0.0);
                s += g[c] * in;
            }
            attr[r] = s;
        }
    }
}

static void input_weights(const rf_fusion_trace *tr, const double *attr, double *w)
{
    const rf_fusion_layout *L = &tr->layout;
    double total = 0;
    for (int m = 0; m < RF_MODALITY_COUNT; m++) {
        w[m] = 0;
        if (L->absent[m])
            continue;
        for (int r = L->start[m]; r < L->start[m] + L->count[m]; r++)
            w[m] += fabs(attr[r]);
        total += w[m];
    }
    for (int m = 0; m < RF_MODALITY_COUNT; m++)
        w[m] = total > 0 ? w[m] / total : 0;
}

static int text_spans(const rf_fusion *f, const rf_fusion_study *s, const rf_fusion_trace *tr, const double *attr,
                      const rf_saliency_opts *o, rf_saliency_finding *out, rf_err *err)
{
    const rf_fusion_layout *L = &tr->layout;
    if (L->absent[RF_MODALITY_TEXT] || !L->text_token)
        return RF_OK;
    int n = L->count[RF_MODALITY_TEXT], k = 0;
    double *a = dcalloc(n);
    int *note = calloc((size_t)n, sizeof *note);
    int32_t *bs = calloc((size_t)n, sizeof *bs), *be = calloc((size_t)n, sizeof *be);
    uint8_t *cont = calloc((size_t)n, 1);
    int rc = RF_OK;
    if (!a || !note || !bs || !be || !cont) {
        rc = rf_err_set(err, RF_ENOMEM, "saliency: out of memory for text spans");
        goto done;
    }
    for (int j = 0; j < n; j++) {
        int t = L->text_token[j], nn = L->text_note[j];
        if (t < 0 || nn < 0 || nn >= s->nnotes || t >= s->notes[nn].n)
            continue; /* a note's document vector: no span of its own */
        const rf_text_encoding *e = &s->notes[nn];
        const char *tok = f->vocab ? rf_vocab_token(f->vocab, e->ids[t]) : NULL;
        a[k] = attr[L->start[RF_MODALITY_TEXT] + j];
        note[k] = nn;
        bs[k] = e->byte_start[t];
        be[k] = e->byte_end[t];
        cont[k] = tok && strncmp(tok, "##", 2) == 0;
        k++;
    }
    rc = rf_saliency_text_spans(a, note, bs, be, cont, k, o->max_spans, o->min_span_weight, &out->spans, &out->nspans,
                                err);
done:
    free(a), free(note), free(bs), free(be), free(cont);
    return rc;
}

/* ---- the vision side ---- */

/* The last vision block and final norm on the host, run on one image's
 * captured block input, ready for backward passes. */
typedef struct hvision {
    rf_hblock blk;
    rf_hblock_cache cache;
    double *fg, *fb;        /* final norm, or NULL when the encoder has none */
    double *y, *mean, *rstd; /* block output [Tv, Dv] and its norm's statistics */
    int Tv, Dv;
} hvision;

static void hvision_free(hvision *v)
{
    rf_hblock_free(&v->blk);
    rf_hblock_cache_free(&v->cache);
    free(v->fg), free(v->fb), free(v->y), free(v->mean), free(v->rstd);
    memset(v, 0, sizeof *v);
}

static int hvision_load(rf_fusion *f, hvision *v, int Tv, rf_err *err)
{
    memset(v, 0, sizeof *v);
    rf_model *m = f->vision;
    const rf_model_info *mi = &m->info;
    if (!m->pre_norm)
        return rf_err_set(err, RF_EUNSUP, "saliency: the vision encoder is not pre-norm");
    v->Tv = Tv;
    v->Dv = mi->hidden;
    int rc = rf_hblock_from_block(m->be, &m->blocks[mi->layers - 1], mi->hidden, mi->heads, mi->intermediate, m->act,
                                  m->eps, &v->blk, err);
    if (rc || (rc = rf_hblock_cache_alloc(&v->cache, &v->blk, Tv, err)))
        return rc;
    v->y = dcalloc((int64_t)Tv * v->Dv);
    v->mean = dcalloc(Tv);
    v->rstd = dcalloc(Tv);
    if (!v->y || !v->mean || !v->rstd)
        return rf_err_set(err, RF_ENOMEM, "saliency: out of memory for the vision block");
    if (m->final_ln_g.data && ((rc = fetch_new(m->be, &m->final_ln_g, v->Dv, &v->fg, err)) ||
                               (rc = fetch_new(m->be, &m->final_ln_b, v->Dv, &v->fb, err))))
        return rc;
    return RF_OK;
}

/* Forward of image i's last block from its captured input; checked
 * against the encoder's own output. */
static int hvision_run(hvision *v, const rf_fusion_trace *tr, int i, double *out, rf_err *err)
{
    int64_t n = (int64_t)v->Tv * v->Dv;
    const float *in = tr->vision_last_in + i * n;
    double *x = dcalloc(n);
    if (!x)
        return rf_err_set(err, RF_ENOMEM, "saliency: out of memory");
    for (int64_t k = 0; k < n; k++)
        x[k] = in[k];
    rf_hblock_forward(&v->blk, &v->cache, x, NULL, NULL, v->Tv, v->y);
    free(x);
    if (v->fg)
        rf_g_layernorm_forward(out, v->mean, v->rstd, v->y, v->fg, v->fb, v->blk.eps, v->Tv, v->Dv);
    else
        memcpy(out, v->y, (size_t)n * sizeof *out);
    const float *want = tr->vision + i * n;
    double worst = 0, scale = 0;
    for (int64_t k = 0; k < n; k++) {
        worst = fmax(worst, fabs(out[k] - want[k]));
        scale = fmax(scale, fabs(want[k]));
    }
    if (!(worst <= 1e-3 * (1 + scale)))
        return rf_err_set(err, RF_EUNSUP,
                          "saliency: the host recomputation of the vision encoder's last block differs from the "
                          "encoder by %.3g",
                          worst);
    return RF_OK;
}

/* d logit / d (input of the last vision block) of image i, from the
 * sequence gradient dseq: image rows -> projection -> pooling -> final
 * norm -> last block. dvis [Tv, Dv]. */
static int vision_grad(const hfusion *h, const hvision *v, const rf_fusion_trace *tr, int i, const double *dseq,
                       double *dvis, rf_err *err)
{
    const rf_fusion_layout *L = &tr->layout;
    int Tv = v->Tv, Dv = v->Dv, P = L->image_tokens, D = h->D;
    int64_t n = (int64_t)Tv * Dv;
    double *dpool = dcalloc((int64_t)P * Dv), *dtok = dcalloc(n), *dy = dcalloc(n);
    int rc = RF_OK;
    if (!dpool || !dtok || !dy) {
        rc = rf_err_set(err, RF_ENOMEM, "saliency: out of memory");
        goto done;
    }
    const double *drows = dseq + (int64_t)(L->start[RF_MODALITY_IMAGE] + i * P) * D;
    rf_g_linear_backward(dpool, NULL, NULL, drows, NULL, h->img_w, P, Dv, D);
    /* row 0 is the vision CLS token as it is; the rest pooled patch cells */
    memcpy(dtok, dpool, (size_t)Dv * sizeof *dtok);
    if (P == Tv)
        memcpy(dtok + Dv, dpool + Dv, (size_t)(Tv - 1) * Dv * sizeof *dtok);
    else
        rf_g_pool_backward(dtok + Dv, dpool + Dv, L->grid_h, L->grid_w, L->pool_h, L->pool_w, Dv);
    if (v->fg)
        rf_g_layernorm_backward(dy, NULL, NULL, dtok, v->y, v->mean, v->rstd, v->fg, Tv, Dv);
    else
        memcpy(dy, dtok, (size_t)n * sizeof *dy);
    memset(dvis, 0, (size_t)n * sizeof *dvis);
    rc = rf_hblock_backward(&v->blk, &v->cache, dy, dvis, NULL, err);
done:
    free(dpool), free(dtok), free(dy);
    return rc;
}

/* ---- maps on the original grid ---- */

static int place_map(const rf_fusion *f, const rf_fusion_study *s, const float *grid, int gh, int gw, int image,
                     int rows, int cols, float sigma, rf_result_map *out, rf_err *err)
{
    memset(out, 0, sizeof *out);
    out->image = (size_t)image;
    rf_preprocess_geom g;
    int rc = rf_preprocess_geometry(&f->info.preprocess, rows, cols, &g, err);
    if (rc)
        return rc;
    out->values = malloc((size_t)rows * cols * sizeof(float));
    if (!out->values)
        return rf_err_set(err, RF_ENOMEM, "saliency: out of memory for a %dx%d map", rows, cols);
    if ((rc = rf_saliency_to_original(grid, gh, gw, s->height, s->width, &g, rows, cols, out->values, err)))
        return rc;
    if (sigma == 0) /* half a patch's footprint on the original image */
        sigma = 0.5f * (float)s->height / gh * (float)rows / (float)g.resized_h;
    if (sigma > 0 && (rc = rf_saliency_smooth(out->values, rows, cols, sigma, err)))
        return rc;
    rf_saliency_normalize(out->values, rows, cols, &out->peak_row, &out->peak_col);
    return RF_OK;
}

/* ---- occlusion's scoring callback ---- */

typedef struct occ_ctx {
    rf_fusion *f;
    const rf_fusion_study *s;
    int image;
} occ_ctx;

static int occ_score(void *ctx, const float *variants, int B, float *probs, rf_err *err)
{
    occ_ctx *c = ctx;
    rf_fusion_output out;
    int rc = rf_fusion_forward_batch(c->f, c->s, c->image, variants, B, &out, err);
    if (!rc)
        memcpy(probs, out.probabilities, (size_t)B * out.nlabels * sizeof *probs);
    rf_fusion_output_free(&out);
    return rc;
}

/* ---- the entry point ---- */

void rf_saliency_result_free(rf_saliency_result *r)
{
    for (int i = 0; r->findings && i < r->nfindings; i++) {
        rf_saliency_finding *fi = &r->findings[i];
        for (size_t j = 0; fi->maps && j < fi->nmaps; j++) {
            free(fi->maps[j].values);
            free(fi->maps[j].overlay);
            free(fi->maps[j].dicom);
            free(fi->maps[j].sop_instance_uid);
        }
        free(fi->maps);
        free(fi->spans);
        free(fi->text_attr);
    }
    free(r->findings);
    memset(r, 0, sizeof *r);
}

/* Rollout's patch map of image i: the fusion CLS row's rollout w_f over the
 * sequence, carried to the vision tokens through the pooling, then through
 * the vision blocks (each block's attention recomputed on the host from its
 * captured input, from the last block down). */
static int rollout_map(rf_fusion *f, const rf_fusion_study *s, const rf_fusion_trace *tr, const double *wf, int i,
                       float *grid, rf_err *err)
{
    const rf_fusion_layout *L = &tr->layout;
    rf_model *m = f->vision;
    const rf_model_info *mi = &m->info;
    int Tv = tr->vision_tokens, Dv = tr->vision_hidden, P = L->image_tokens, nl = mi->layers;
    int64_t per = (int64_t)mi->channels * s->height * s->width, shape[4] = {1, mi->channels, s->height, s->width};
    rf_tensor px = rf_tensor_make(RF_F32, (void *)(s->images + i * per), 4, shape);
    rf_model_inputs in = {.pixel_values = &px, .capture_blocks = nl};
    rf_model_outputs o;
    int rc = rf_model_forward(m, &in, &o, err);
    if (rc)
        return rc;
    double *w = dcalloc(Tv), *x = dcalloc((int64_t)Tv * Dv), *probs = dcalloc((int64_t)mi->heads * Tv * Tv);
    float *pool = NULL;
    if (!w || !x || !probs) {
        rc = rf_err_set(err, RF_ENOMEM, "saliency: out of memory for rollout");
        goto done;
    }
    const double *wr = wf + L->start[RF_MODALITY_IMAGE] + i * P;
    w[0] = wr[0];
    if (P == Tv) {
        for (int t = 1; t < Tv; t++)
            w[t] = wr[t];
    } else {
        int cells = L->grid_h * L->grid_w;
        if (!(pool = malloc((size_t)(P - 1) * cells * sizeof *pool))) {
            rc = rf_err_set(err, RF_ENOMEM, "saliency: out of memory for rollout");
            goto done;
        }
        rf_fusion_pool_matrix(pool, L->grid_h, L->grid_w, L->pool_h, L->pool_w);
        for (int q = 1; q < P; q++)
            for (int t = 0; t < cells; t++)
                w[1 + t] += wr[q] * pool[(int64_t)(q - 1) * cells + t];
    }
    for (int l = nl - 1; l >= 0 && !rc; l--) {
        rf_hblock b;
        if ((rc = rf_hblock_from_block(m->be, &m->blocks[l], mi->hidden, mi->heads, mi->intermediate, m->act, m->eps,
                                       &b, err)))
            break;
        const float *src = (const float *)o.block_inputs.data + (int64_t)l * Tv * Dv;
        for (int64_t k = 0; k < (int64_t)Tv * Dv; k++)
            x[k] = src[k];
        rc = rf_hblock_attention_probs(&b, x, NULL, NULL, Tv, probs, err);
        rf_hblock_free(&b);
        if (!rc)
            rc = rf_saliency_rollout_step(probs, mi->heads, Tv, w, err);
    }
    if (!rc)
        for (int t = 1; t < Tv; t++)
            grid[t - 1] = (float)w[t];
done:
    free(w), free(x), free(probs), free(pool);
    rf_model_outputs_free(&o);
    return rc;
}

int rf_saliency_run(rf_fusion *f, const rf_fusion_study *s, const int *rows, const int *cols,
                    const rf_saliency_opts *o, rf_saliency_result *out, rf_err *err)
{
    memset(out, 0, sizeof *out);
    rf_saliency_opts defaults;
    if (!o) {
        rf_saliency_opts_init(&defaults);
        o = &defaults;
    }
    const rf_fusion_info *info = &f->info;
    int K = info->nlabels;
    if (o->finding < -1 || o->finding >= K)
        return rf_err_set(err, RF_EINVAL, "saliency: finding %d is not one of the model's %d", o->finding, K);
    if ((unsigned)o->method > RF_SALIENCY_OCCLUSION)
        return rf_err_set(err, RF_EINVAL, "saliency: unknown method %d", (int)o->method);
    for (int i = 0; i < s->nimages; i++)
        if (!rows || !cols || rows[i] < 1 || cols[i] < 1)
            return rf_err_set(err, RF_EINVAL, "saliency: image %d has no original size", i);
    int first = o->finding < 0 ? 0 : o->finding, nf = o->finding < 0 ? K : 1;
    out->findings = calloc((size_t)nf, sizeof *out->findings);
    if (!out->findings)
        return rf_err_set(err, RF_ENOMEM, "saliency: out of memory");
    out->nfindings = nf;

    rf_fusion_trace tr;
    hfusion h;
    hpass p;
    hvision v;
    memset(&h, 0, sizeof h);
    memset(&p, 0, sizeof p);
    memset(&v, 0, sizeof v);
    double *dseq = NULL, *attr = NULL, *dvis = NULL, *vout = NULL, *act = NULL, *wf = NULL;
    float *grid = NULL, *occ = NULL;
    /* Grad-CAM differentiates through the vision encoder's last block: its
     * input comes only from a pass of the encoder, not from given states */
    rf_fusion_study own = *s;
    if (o->method == RF_SALIENCY_GRADCAM)
        own.vision = NULL;
    int rc = rf_fusion_trace_study(f, &own, &tr, err);
    if (rc)
        goto done;
    const rf_fusion_layout *L = &tr.layout;
    int T = L->T, D = info->hidden, gh = L->grid_h, gw = L->grid_w, Tv = tr.vision_tokens, Dv = tr.vision_hidden;
    if ((rc = hfusion_load(f, s->prior_days, s->npriors, &h, err)) || (rc = hpass_run(&h, f, &tr, &p, err)))
        goto done;
    dseq = dcalloc((int64_t)nf * T * D);
    attr = dcalloc(T);
    grid = malloc((size_t)(gh * gw > 0 ? gh * gw : 1) * sizeof *grid);
    if (!dseq || !attr || !grid) {
        rc = rf_err_set(err, RF_ENOMEM, "saliency: out of memory");
        goto done;
    }
    /* per finding: the sequence gradient, input weights and text spans */
    for (int j = 0; j < nf && !rc; j++) {
        rf_saliency_finding *fi = &out->findings[j];
        fi->label = first + j;
        fi->logit = tr.logits[first + j];
        fi->probability = tr.probabilities[first + j];
        double *d = dseq + (int64_t)j * T * D;
        if ((rc = hpass_backward(&h, &p, first + j, d, err)))
            break;
        row_attributions(&h, &tr, d, attr);
        input_weights(&tr, attr, fi->input_weight);
        if (!L->absent[RF_MODALITY_TEXT]) {
            int n = L->count[RF_MODALITY_TEXT];
            if (!(fi->text_attr = malloc((size_t)n * sizeof *fi->text_attr))) {
                rc = rf_err_set(err, RF_ENOMEM, "saliency: out of memory");
                break;
            }
            memcpy(fi->text_attr, attr + L->start[RF_MODALITY_TEXT], (size_t)n * sizeof *fi->text_attr);
            fi->ntext_attr = n;
        }
        rc = text_spans(f, s, &tr, attr, o, fi, err);
        if (!rc && o->method != RF_SALIENCY_NONE && s->nimages > 0) {
            fi->maps = calloc((size_t)s->nimages, sizeof *fi->maps);
            fi->nmaps = (size_t)s->nimages;
            if (!fi->maps)
                rc = rf_err_set(err, RF_ENOMEM, "saliency: out of memory");
        }
    }
    if (rc || o->method == RF_SALIENCY_NONE || s->nimages == 0)
        goto done;

    if (o->method == RF_SALIENCY_GRADCAM) {
        dvis = dcalloc((int64_t)Tv * Dv);
        vout = dcalloc((int64_t)Tv * Dv);
        act = dcalloc((int64_t)Tv * Dv);
        if (!dvis || !vout || !act) {
            rc = rf_err_set(err, RF_ENOMEM, "saliency: out of memory");
            goto done;
        }
        if ((rc = hvision_load(f, &v, Tv, err)))
            goto done;
        for (int i = 0; i < s->nimages && !rc; i++) {
            if ((rc = hvision_run(&v, &tr, i, vout, err)))
                break;
            const float *in = tr.vision_last_in + (int64_t)i * Tv * Dv;
            for (int64_t k = 0; k < (int64_t)Tv * Dv; k++)
                act[k] = in[k];
            for (int j = 0; j < nf && !rc; j++) {
                if ((rc = vision_grad(&h, &v, &tr, i, dseq + (int64_t)j * T * D, dvis, err)) ||
                    (rc = rf_saliency_gradcam(act + Dv, dvis + Dv, Tv - 1, Dv, grid, err)))
                    break;
                rc = place_map(f, s, grid, gh, gw, i, rows[i], cols[i], o->sigma, &out->findings[j].maps[i], err);
            }
        }
    } else if (o->method == RF_SALIENCY_ROLLOUT) {
        /* the fusion CLS row's rollout over the sequence, the same for every finding */
        const double **fprobs = calloc((size_t)(h.layers > 0 ? h.layers : 1), sizeof *fprobs);
        wf = dcalloc(T);
        if (!fprobs || !wf) {
            free(fprobs);
            rc = rf_err_set(err, RF_ENOMEM, "saliency: out of memory");
            goto done;
        }
        for (int l = 0; l < h.layers; l++)
            fprobs[l] = p.caches[l].probs;
        double *e0 = dcalloc(T);
        if (!e0)
            rc = rf_err_set(err, RF_ENOMEM, "saliency: out of memory");
        else {
            e0[0] = 1;
            rc = rf_saliency_rollout_row(fprobs, h.layers, h.H, T, e0, wf, err);
        }
        free(e0);
        free(fprobs);
        for (int i = 0; i < s->nimages && !rc; i++) {
            if ((rc = rollout_map(f, s, &tr, wf, i, grid, err)))
                break;
            for (int j = 0; j < nf && !rc; j++)
                rc = place_map(f, s, grid, gh, gw, i, rows[i], cols[i], o->sigma, &out->findings[j].maps[i], err);
        }
    } else {
        int P = info->vision.info.patch_size;
        occ = malloc((size_t)K * gh * gw * sizeof *occ);
        if (!occ) {
            rc = rf_err_set(err, RF_ENOMEM, "saliency: out of memory");
            goto done;
        }
        int64_t per = (int64_t)info->vision.info.channels * s->height * s->width;
        for (int i = 0; i < s->nimages && !rc; i++) {
            occ_ctx c = {f, s, i};
            if ((rc = rf_saliency_occlusion(s->images + i * per, info->vision.info.channels, s->height, s->width, P,
                                            o->occlusion_window, o->occlusion_stride, o->occlusion_batch, K,
                                            tr.probabilities, occ_score, &c, occ, err)))
                break;
            for (int j = 0; j < nf && !rc; j++)
                rc = place_map(f, s, occ + (int64_t)(first + j) * gh * gw, gh, gw, i, rows[i], cols[i], o->sigma,
                               &out->findings[j].maps[i], err);
        }
    }
done:
    free(dseq), free(attr), free(dvis), free(vout), free(act), free(wf), free(grid), free(occ);
    hvision_free(&v);
    hpass_free(&p, h.layers);
    hfusion_free(&h);
    rf_fusion_trace_free(&tr);
    return rc;
}
