/*
 * The encoder forward pass: embeddings, the block stack and the pooled
 * outputs, as a sequence of backend operations. Activations live in the
 * model's arena, sized for the input before the first operation runs.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/model.h"

#define OPS(m) ((m)->be->ops)

/* 2-D view of rows [r0, r0 + n) of a [rows, cols] tensor with row stride. */
static rf_tensor view2(const rf_tensor *t, int64_t r0, int64_t n, int64_t cols, int64_t stride)
{
    rf_tensor v = *t;
    v.ndim = 2;
    v.shape[0] = n;
    v.shape[1] = cols;
    v.stride[0] = stride;
    v.stride[1] = 1;
    v.data = (float *)t->data + r0 * stride;
    return v;
}

/* 3-D [B, T, W] view of a [B*T, row] tensor at column offset col. */
static rf_tensor view3(const rf_tensor *t, int64_t B, int64_t T, int64_t W, int64_t row, int64_t col)
{
    rf_tensor v;
    memset(&v, 0, sizeof v);
    v.dtype = RF_F32;
    v.ndim = 3;
    v.shape[0] = B;
    v.shape[1] = T;
    v.shape[2] = W;
    v.stride[0] = T * row;
    v.stride[1] = row;
    v.stride[2] = 1;
    v.data = (float *)t->data + col;
    return v;
}

/* Activation memory for B sequences of T tokens, in bytes (with alignment slack). */
static size_t activation_bytes(const rf_model *m, int64_t B, int64_t T)
{
    int64_t C = m->info.hidden, I = m->info.intermediate, N = B * T;
    int64_t floats = N * C * 3      /* x, normed, attention output */
                     + N * 3        /* inputs: ids, mask, types (or pixels, counted next) */
                     + (m->info.arch != RF_ARCH_BERT ? B * m->info.channels * (T - 1) *
                                                           (int64_t)m->info.patch_size * m->info.patch_size
                                                     : 0)
                     + N * 3 * C    /* qkv */
                     + N * I        /* mlp hidden */
                     + T * C        /* interpolated position table */
                     + N * C        /* token-type embeddings */
                     + B * C * 4 + B * (int64_t)(m->info.num_classes + 1) + T;
    return (size_t)floats * sizeof(float) + 64 * 16;
}

int rf_model_reserve(rf_model *m, int64_t B, int64_t T, rf_err *err)
{
    size_t need = activation_bytes(m, B, T);
    rf_arena_reset(&m->activations);
    if (m->activations.size >= need)
        return RF_OK;
    if (m->activations_buf)
        m->be->ops->buffer_free(m->be, m->activations_buf);
    m->activations_buf = NULL;
    rf_arena_wrap(&m->activations, NULL, 0);
    void *base;
    int rc = m->be->ops->buffer_alloc(m->be, need, &m->activations_buf, &base, err);
    if (rc)
        return rc;
    rf_arena_wrap(&m->activations, base, need);
    return RF_OK;
}

static int alloc2(rf_model *m, rf_tensor *t, int64_t rows, int64_t cols, rf_err *err)
{
    int64_t shape[2] = {rows, cols};
    *t = rf_arena_tensor(&m->activations, RF_F32, 2, shape);
    if (!t->data)
        return rf_err_set(err, RF_ENOMEM, "activation arena exhausted");
    return RF_OK;
}

/* Position embeddings of the patches for a gh x gw grid ([gh*gw, C]): the
 * stored ones, or (Dinov2) the stored grid resized bicubically as
 * transformers does. The CLS row is always the stored row 0. */
static int patch_positions(rf_model *m, int64_t gh, int64_t gw, int64_t H, int64_t W, rf_tensor *pos,
                           rf_err *err)
{
    int64_t C = m->info.hidden;
    if (gh == m->grid_h && gw == m->grid_w && (H == W || !m->interpolate_pos)) {
        *pos = view2(&m->pos, 1, gh * gw, C, C);
        return RF_OK;
    }
    if (!m->interpolate_pos)
        return rf_err_set(err, RF_EINVAL, "input %lldx%lld does not match the model's image size %d",
                          (long long)H, (long long)W, m->info.image_size);
    int rc = alloc2(m, pos, gh * gw, C, err);
    if (rc)
        return rc;
    /* [grid*grid, C] rows read as a channels-first [C, grid_h, grid_w] image */
    rf_tensor src = {.dtype = RF_F32, .ndim = 3, .shape = {C, m->grid_h, m->grid_w},
                     .stride = {1, (int64_t)m->grid_w * C, C}, .data = (float *)m->pos.data + C};
    rf_tensor dst = {.dtype = RF_F32, .ndim = 3, .shape = {C, gh, gw}, .stride = {1, gw * C, C},
                     .data = pos->data};
    return OPS(m)->interp_bicubic(m->be, &dst, &src, err);
}

/* A copy of host tensor t in the activation arena. */
static int upload_input(rf_model *m, const rf_tensor *t, rf_tensor *dev, rf_err *err)
{
    *dev = rf_arena_tensor(&m->activations, t->dtype, t->ndim, t->shape);
    if (!dev->data)
        return rf_err_set(err, RF_ENOMEM, "activation arena exhausted");
    return OPS(m)->upload(m->be, dev, t->data, err);
}

/* One pass's sizes and its inputs, copied into the activation arena. */
typedef struct pass {
    int64_t B, T;
    int64_t H, W, gh, gw; /* vision */
    rf_tensor pixels, ids, types, mask; /* absent ones have data == NULL */
    /* block inputs asked for by rf_model_inputs.capture_blocks: blocks
     * capture_from.. are copied into capture [(layers - from) * B * T, C]
     * (adding the zero row [1, C]: the backends have no copy) */
    int capture_from;
    rf_tensor capture, zero_row;
} pass;

static int prepare_vision(rf_model *m, const rf_tensor *px, pass *p, rf_err *err)
{
    if (px->dtype != RF_F32 || px->ndim != 4 || !rf_tensor_is_contiguous(px))
        return rf_err_set(err, RF_EINVAL, "pixel_values must be a contiguous f32 [batch, channels, height, width]");
    int64_t Cin = px->shape[1];
    int P = m->info.patch_size;
    p->B = px->shape[0];
    p->H = px->shape[2];
    p->W = px->shape[3];
    if (p->B < 1 || Cin != m->info.channels)
        return rf_err_set(err, RF_EINVAL, "pixel_values has %lld channels, the model expects %d",
                          (long long)Cin, m->info.channels);
    if (p->H < P || p->W < P || p->H % P || p->W % P)
        return rf_err_set(err, RF_EINVAL, "image %lldx%lld is not a multiple of the patch size %d",
                          (long long)p->H, (long long)p->W, P);
    p->gh = p->H / P;
    p->gw = p->W / P;
    p->T = 1 + p->gh * p->gw;
    if (p->T > (1 << 20))
        return rf_err_set(err, RF_EINVAL, "image %lldx%lld gives too many patches", (long long)p->H,
                          (long long)p->W);
    int rc = rf_model_reserve(m, p->B, p->T, err);
    return rc ? rc : upload_input(m, px, &p->pixels, err);
}

static int check_ids(const rf_tensor *t, const char *name, int64_t B, int64_t T, rf_err *err)
{
    if (t->dtype != RF_I32 || t->ndim != 2 || !rf_tensor_is_contiguous(t) ||
        (B >= 0 && (t->shape[0] != B || t->shape[1] != T)))
        return rf_err_set(err, RF_EINVAL, "%s must be a contiguous i32 [batch, tokens]%s", name,
                          B >= 0 ? " matching input_ids" : "");
    return RF_OK;
}

/* Every id in [0, limit), else an error naming the first one outside. */
static int check_range(const rf_tensor *t, const char *name, int64_t limit, rf_err *err)
{
    const int32_t *v = t->data;
    int64_t T = t->shape[1];
    for (int64_t i = 0; i < rf_tensor_numel(t); i++)
        if (v[i] < 0 || v[i] >= limit)
            return rf_err_set(err, RF_EINVAL, "%s value %d at [%lld, %lld] is outside [0, %lld)", name, v[i],
                              (long long)(i / T), (long long)(i % T), (long long)limit);
    return RF_OK;
}

static int prepare_text(rf_model *m, const rf_model_inputs *in, pass *p, rf_err *err)
{
    const rf_tensor *ids = in->input_ids;
    int rc = check_ids(ids, "input_ids", -1, -1, err);
    if (rc)
        return rc;
    p->B = ids->shape[0];
    p->T = ids->shape[1];
    if (p->B < 1 || p->T < 1)
        return rf_err_set(err, RF_EINVAL, "input_ids is empty");
    if (p->T > m->info.max_positions)
        return rf_err_set(err, RF_EINVAL, "%lld tokens exceed the model's %d positions", (long long)p->T,
                          m->info.max_positions);
    if ((in->attention_mask && (rc = check_ids(in->attention_mask, "attention_mask", p->B, p->T, err))) ||
        (in->token_type_ids && (rc = check_ids(in->token_type_ids, "token_type_ids", p->B, p->T, err))))
        return rc;
    /* ids are checked on the host: a device cannot report which one was bad */
    if ((rc = check_range(ids, "input_ids", m->info.vocab_size, err)) ||
        (in->token_type_ids && (rc = check_range(in->token_type_ids, "token_type_ids", m->type_emb.shape[0], err))))
        return rc;
    if ((rc = rf_model_reserve(m, p->B, p->T, err)) || (rc = upload_input(m, ids, &p->ids, err)) ||
        (in->token_type_ids && (rc = upload_input(m, in->token_type_ids, &p->types, err))) ||
        (in->attention_mask && (rc = upload_input(m, in->attention_mask, &p->mask, err))))
        return rc;
    return RF_OK;
}

/* x [B*T, C] = [CLS; patch embeddings] + position embeddings. */
static int vision_embed(rf_model *m, const pass *p, rf_tensor *x, rf_err *err)
{
    int64_t B = p->B, T = p->T, C = m->info.hidden;
    rf_tensor posr = {0};
    int rc = alloc2(m, x, B * T, C, err);
    if (!rc)
        rc = patch_positions(m, p->gh, p->gw, p->H, p->W, &posr, err);
    if (rc)
        return rc;
    rf_tensor patches = view3(x, B, T - 1, C, C, C);
    patches.stride[0] = T * C; /* rows 1..T-1 of each sequence */
    if ((rc = OPS(m)->patch_embed(m->be, &patches, &p->pixels, &m->patch, m->info.patch_size, err)))
        return rc;
    rf_tensor cls = view2(&m->cls, 0, 1, C, C), pos0 = view2(&m->pos, 0, 1, C, C);
    for (int64_t b = 0; b < B; b++) {
        rf_tensor row0 = view2(x, b * T, 1, C, C), rest = view2(x, b * T + 1, T - 1, C, C);
        if ((rc = OPS(m)->add(m->be, &row0, &cls, &pos0, err)) ||
            (rc = OPS(m)->add(m->be, &rest, &rest, &posr, err)))
            return rc;
    }
    return RF_OK;
}

/* x [B*T, C] = LayerNorm(word + position + token type embeddings). */
static int text_embed(rf_model *m, const pass *p, rf_tensor *x, rf_err *err)
{
    int64_t B = p->B, T = p->T, C = m->info.hidden, n = B * T;
    rf_tensor types;
    int rc;
    if ((rc = alloc2(m, x, n, C, err)) || (rc = alloc2(m, &types, n, C, err)))
        return rc;
    rf_tensor flat_ids = rf_tensor_make(RF_I32, p->ids.data, 1, &n);
    if ((rc = OPS(m)->embedding(m->be, x, &m->word_emb, &flat_ids, err)))
        return rc;
    if (p->types.data) {
        rf_tensor flat_tt = rf_tensor_make(RF_I32, p->types.data, 1, &n);
        if ((rc = OPS(m)->embedding(m->be, &types, &m->type_emb, &flat_tt, err)) ||
            (rc = OPS(m)->add(m->be, x, x, &types, err)))
            return rc;
    } else {
        rf_tensor t0 = view2(&m->type_emb, 0, 1, C, C);
        if ((rc = OPS(m)->add(m->be, x, x, &t0, err)))
            return rc;
    }
    rf_tensor pos = view2(&m->pos_emb, 0, T, C, C);
    for (int64_t b = 0; b < B; b++) {
        rf_tensor xb = view2(x, b * T, T, C, C);
        if ((rc = OPS(m)->add(m->be, &xb, &xb, &pos, err)))
            return rc;
    }
    return OPS(m)->layernorm(m->be, x, x, &m->emb_ln_g, &m->emb_ln_b, m->eps, err);
}

int rf_block_forward(rf_backend *be, const rf_block *blk, const rf_block_cfg *cfg, rf_tensor *x, int64_t B,
                     int64_t T, const rf_tensor *mask, const rf_attn_group *groups, int ngroups,
                     const rf_block_scratch *s, rf_err *err)
{
    const rf_backend_ops *o = be->ops;
    int64_t C = cfg->hidden;
    rf_tensor normed = s->normed, qkv = s->qkv, att = s->att, hidden = s->hidden;
    int rc;
    const rf_tensor *in = x;
    if (cfg->pre_norm) {
        if ((rc = o->layernorm(be, &normed, x, &blk->ln1_g, &blk->ln1_b, cfg->eps, err)))
            return rc;
        in = &normed;
    }
    rf_tensor q = view3(&qkv, B, T, C, 3 * C, 0), k = view3(&qkv, B, T, C, 3 * C, C),
              v = view3(&qkv, B, T, C, 3 * C, 2 * C), a3 = view3(&att, B, T, C, C, 0);
    float scale = 1.0f / sqrtf((float)(C / cfg->heads));
    if ((rc = o->linear(be, &qkv, in, &blk->qkv, RF_ACT_NONE, NULL, err)) ||
        (rc = o->attention(be, &a3, &q, &k, &v, mask, cfg->heads, scale, err)))
        return rc;
    /* rows of a group attend only among themselves: their outputs of the full
     * attention above are overwritten by attention over the group's rows */
    for (int g = 0; g < ngroups; g++) {
        int64_t r0 = groups[g].begin, n = groups[g].end - groups[g].begin;
        if (r0 < 0 || n < 1 || r0 + n > T || mask)
            return rf_err_set(err, RF_EINVAL, "block: attention group [%lld, %lld) outside [0, %lld) or masked",
                              (long long)r0, (long long)(r0 + n), (long long)T);
        rf_tensor gq = q, gk = k, gv = v, ga = a3;
        rf_tensor *views[4] = {&gq, &gk, &gv, &ga};
        for (int i = 0; i < 4; i++) {
            views[i]->shape[1] = n;
            views[i]->data = (float *)views[i]->data + r0 * views[i]->stride[1];
        }
        if ((rc = o->attention(be, &ga, &gq, &gk, &gv, NULL, cfg->heads, scale, err)))
            return rc;
    }
    /* attention projection + residual, with layer scale when present */
    if (blk->ls1.data) {
        if ((rc = o->linear(be, &normed, &att, &blk->proj, RF_ACT_NONE, NULL, err)) ||
            (rc = o->scale_add(be, x, &normed, &blk->ls1, x, err)))
            return rc;
    } else if ((rc = o->linear(be, x, &att, &blk->proj, RF_ACT_NONE, x, err))) {
        return rc;
    }
    if (cfg->pre_norm) {
        if ((rc = o->layernorm(be, &normed, x, &blk->ln2_g, &blk->ln2_b, cfg->eps, err)))
            return rc;
        in = &normed;
    } else {
        if ((rc = o->layernorm(be, x, x, &blk->ln1_g, &blk->ln1_b, cfg->eps, err)))
            return rc;
        in = x;
    }
    if ((rc = o->linear(be, &hidden, in, &blk->fc1, cfg->act, NULL, err)))
        return rc;
    if (blk->ls2.data) {
        if ((rc = o->linear(be, &normed, &hidden, &blk->fc2, RF_ACT_NONE, NULL, err)) ||
            (rc = o->scale_add(be, x, &normed, &blk->ls2, x, err)))
            return rc;
    } else if ((rc = o->linear(be, x, &hidden, &blk->fc2, RF_ACT_NONE, x, err))) {
        return rc;
    }
    if (!cfg->pre_norm)
        rc = o->layernorm(be, x, x, &blk->ln2_g, &blk->ln2_b, cfg->eps, err);
    return rc;
}

/* Where a pass leaves its results: views into the activation arena. */
typedef struct results {
    rf_tensor hidden, pooled, logits; /* absent ones have data == NULL */
} results;

/* Every operation of one pass, from embeddings to pooled outputs. */
static int run_pass(rf_model *m, const pass *p, results *r, rf_err *err)
{
    const rf_backend_ops *o = OPS(m);
    int64_t B = p->B, T = p->T, C = m->info.hidden, N = B * T;
    rf_tensor x, normed, qkv, att, hidden, tmp;
    int rc = m->info.arch == RF_ARCH_BERT ? text_embed(m, p, &x, err) : vision_embed(m, p, &x, err);
    if (rc || (rc = alloc2(m, &normed, N, C, err)) || (rc = alloc2(m, &qkv, N, 3 * C, err)) ||
        (rc = alloc2(m, &att, N, C, err)) || (rc = alloc2(m, &hidden, N, m->info.intermediate, err)) ||
        (rc = alloc2(m, &tmp, B, C, err)))
        return rc;
    const rf_tensor *mask = p->mask.data ? &p->mask : NULL;
    rf_block_cfg cfg = {.hidden = C, .heads = m->info.heads, .pre_norm = m->pre_norm, .act = m->act, .eps = m->eps};
    rf_block_scratch s = {.normed = normed, .qkv = qkv, .att = att, .hidden = hidden};
    for (int i = 0; i < m->info.layers; i++) {
        if (p->capture.data && i >= p->capture_from) {
            rf_tensor dst = view2(&p->capture, (i - p->capture_from) * N, N, C, C);
            if ((rc = o->add(m->be, &dst, &x, &p->zero_row, err)))
                return rc;
        }
        if ((rc = rf_block_forward(m->be, &m->blocks[i], &cfg, &x, B, T, mask, NULL, 0, &s, err)))
            return rc;
    }
    if (m->final_ln_g.data && (rc = o->layernorm(m->be, &x, &x, &m->final_ln_g, &m->final_ln_b, m->eps, err)))
        return rc;
    r->hidden = x;
    /* the CLS row of every sequence, as a [B, C] view with stride T*C */
    rf_tensor cls = view2(&x, 0, B, C, T * C);
    if (m->pooler_is_cls) {
        r->pooled = cls;
    } else if (rf_linear_present(&m->pooler)) {
        if ((rc = alloc2(m, &r->pooled, B, C, err)) ||
            (rc = o->linear(m->be, &r->pooled, &cls, &m->pooler, RF_ACT_TANH, NULL, err)))
            return rc;
    }
    if (!rf_linear_present(&m->head))
        return RF_OK;
    rf_tensor feat = cls;
    if (m->pool_avg) {
        /* mean of the patch tokens: ones[1, T-1] x tokens[T-1, C] / (T-1) */
        rf_tensor avg;
        if ((rc = alloc2(m, &avg, B, C, err)))
            return rc;
        for (int64_t b = 0; b < B; b++) {
            rf_tensor tok = view3(&x, 1, T - 1, C, C, (b * T + 1) * C);
            rf_tensor dst = view3(&avg, 1, 1, C, C, b * C);
            if ((rc = o->matmul(m->be, &dst, &m->pool_ones, &tok, 0, 0, 1.0f / (float)(T - 1), err)))
                return rc;
        }
        feat = avg;
    }
    if (m->fc_norm_g.data) {
        if ((rc = o->layernorm(m->be, &tmp, &feat, &m->fc_norm_g, &m->fc_norm_b, m->eps, err)))
            return rc;
        feat = tmp;
    }
    if ((rc = alloc2(m, &r->logits, B, m->info.num_classes, err)))
        return rc;
    return o->linear(m->be, &r->logits, &feat, &m->head, RF_ACT_NONE, NULL, err);
}

/* A 2-D device view into a new malloc'd host tensor of the given shape. */
static int download(rf_model *m, const rf_tensor *src, int ndim, const int64_t *shape, rf_tensor *out,
                    rf_err *err)
{
    float *data = malloc((size_t)(src->shape[0] * src->shape[1]) * sizeof(float));
    if (!data)
        return rf_err_set(err, RF_ENOMEM, "cannot allocate an output tensor");
    int rc = OPS(m)->download(m->be, data, src, err);
    if (rc) {
        free(data);
        return rc;
    }
    *out = rf_tensor_make(RF_F32, data, ndim, shape);
    return RF_OK;
}

int rf_model_forward(rf_model *m, const rf_model_inputs *in, rf_model_outputs *out, rf_err *err)
{
    memset(out, 0, sizeof *out);
    int vision = m->info.arch != RF_ARCH_BERT;
    if (vision && !in->pixel_values)
        return rf_err_set(err, RF_EINVAL, "%s needs pixel_values", rf_arch_name(m->info.arch));
    if (!vision && !in->input_ids)
        return rf_err_set(err, RF_EINVAL, "%s needs input_ids", rf_arch_name(m->info.arch));
    pass p;
    memset(&p, 0, sizeof p);
    int rc = vision ? prepare_vision(m, in->pixel_values, &p, err) : prepare_text(m, in, &p, err);
    if (rc)
        return rc;
    /* captured block inputs live in a buffer of their own, outside the
     * arena, so that passes without capture need no more memory */
    rf_buffer *capture_buf = NULL;
    int ncap = in->capture_blocks < m->info.layers ? in->capture_blocks : m->info.layers;
    int64_t C = m->info.hidden;
    if (ncap > 0) {
        int64_t rows = (int64_t)ncap * p.B * p.T, zshape[2] = {1, C}, cshape[2] = {rows, C};
        void *base;
        float *zeros = calloc((size_t)C, sizeof(float));
        if (!zeros)
            return rf_err_set(err, RF_ENOMEM, "cannot allocate the block capture");
        rc = OPS(m)->buffer_alloc(m->be, (size_t)((rows + 1) * C) * sizeof(float) + 128, &capture_buf, &base, err);
        if (!rc) {
            p.zero_row = rf_tensor_make(RF_F32, base, 2, zshape);
            /* rows start 64-byte aligned, as arena tensors do */
            p.capture = rf_tensor_make(RF_F32, (uint8_t *)base + ((C * sizeof(float) + 63) & ~(size_t)63), 2,
                                       cshape);
            p.capture_from = m->info.layers - ncap;
            rc = OPS(m)->upload(m->be, &p.zero_row, zeros, err);
        }
        free(zeros);
    }
    if (rc || (rc = OPS(m)->begin(m->be, err))) {
        if (capture_buf)
            OPS(m)->buffer_free(m->be, capture_buf);
        return rc;
    }
    results r;
    memset(&r, 0, sizeof r);
    rc = run_pass(m, &p, &r, err);
    if (rc) {
        OPS(m)->end(m->be, 0, NULL);
        if (capture_buf)
            OPS(m)->buffer_free(m->be, capture_buf);
        return rc;
    }
    if ((rc = OPS(m)->end(m->be, 1, err))) {
        if (capture_buf)
            OPS(m)->buffer_free(m->be, capture_buf);
        return rc;
    }
    if (capture_buf) {
        int64_t cshape4[4] = {ncap, p.B, p.T, C};
        rc = download(m, &p.capture, 4, cshape4, &out->block_inputs, err);
        OPS(m)->buffer_free(m->be, capture_buf);
        if (rc)
            return rc;
    }
    int64_t hshape[3] = {p.B, p.T, C}, pshape[2] = {p.B, C},
            lshape[2] = {p.B, m->info.num_classes};
    rc = download(m, &r.hidden, 3, hshape, &out->last_hidden_state, err);
    if (!rc && r.pooled.data)
        rc = download(m, &r.pooled, 2, pshape, &out->pooler_output, err);
    if (!rc && r.logits.data)
        rc = download(m, &r.logits, 2, lshape, &out->logits, err);
    if (rc)
        rf_model_outputs_free(out);
    return rc;
}

void rf_model_outputs_free(rf_model_outputs *out)
{
    free(out->last_hidden_state.data);
    free(out->pooler_output.data);
    free(out->logits.data);
    free(out->block_inputs.data);
    memset(out, 0, sizeof *out);
}
