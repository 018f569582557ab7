/* The quadrant model and its weight editor: see quadrant_model.h. */
#define _XOPEN_SOURCE 700
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fusion/fusion_model.h"
#include "tests/model_maker.h"
#include "tests/quadrant_model.h"
#include "tests/testutil.h"

void qm_load(qm_weights *w, const char *dir)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    rf_safetensors *st;
    rf_err err;
    if (rf_safetensors_open(&st, path, &err)) {
        fprintf(stderr, "FATAL: %s\n", err.msg);
        exit(1);
    }
    memset(w, 0, sizeof *w);
    for (size_t i = 0; i < rf_safetensors_count(st); i++) {
        const rf_st_tensor *t = rf_safetensors_at(st, i);
        if (t->dtype != RF_ST_F32 || w->n == 512) {
            fprintf(stderr, "FATAL: %s: tensor %s is not f32\n", path, t->name);
            exit(1);
        }
        int k = w->n++;
        w->names[k] = strdup(t->name);
        w->ndim[k] = t->ndim;
        w->numel[k] = 1;
        for (int d = 0; d < t->ndim; d++) {
            w->shape[k][d] = t->shape[d];
            w->numel[k] *= t->shape[d];
        }
        w->data[k] = test_falloc(w->numel[k]);
        memcpy(w->data[k], t->data, t->nbytes);
    }
    rf_safetensors_close(st);
}

float *qm_w(qm_weights *w, const char *name, int64_t numel)
{
    for (int i = 0; i < w->n; i++)
        if (strcmp(w->names[i], name) == 0) {
            if (w->numel[i] != numel) {
                fprintf(stderr, "FATAL: %s has %lld elements, not %lld\n", name, (long long)w->numel[i],
                        (long long)numel);
                exit(1);
            }
            return w->data[i];
        }
    fprintf(stderr, "FATAL: no tensor %s\n", name);
    exit(1);
}

void qm_zero(qm_weights *w, const char *name, int64_t numel)
{
    memset(qm_w(w, name, numel), 0, (size_t)numel * sizeof(float));
}

void qm_fill(qm_weights *w, const char *name, int64_t numel, float v)
{
    test_fill_const(qm_w(w, name, numel), numel, v);
}

void qm_save(qm_weights *w, const char *dir)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    rf_st_out *outs = calloc((size_t)w->n, sizeof *outs);
    for (int i = 0; i < w->n; i++)
        outs[i] = (rf_st_out){w->names[i], RF_ST_F32, w->ndim[i], w->shape[i], w->data[i]};
    rf_err err;
    if (rf_safetensors_write(path, outs, (size_t)w->n, &err)) {
        fprintf(stderr, "FATAL: %s\n", err.msg);
        exit(1);
    }
    free(outs);
    for (int i = 0; i < w->n; i++) {
        free(w->names[i]);
        free(w->data[i]);
    }
}

void qm_base_vector(float *x, float v)
{
    for (int c = 0; c < 32; c++)
        x[c] = c < 4 ? 0.0f : (c % 2 ? v : -v);
}

void qm_fusion_reader(qm_weights *w, int key_ch, int val_ch, float score)
{
    char n[128];
    float *qkv = qm_w(w, "fusion.blocks.0.attn.qkv.weight", 96 * QM_DF), *qb = qm_w(w, "fusion.blocks.0.attn.qkv.bias", 96);
    memset(qkv, 0, sizeof(float) * 96 * QM_DF);
    memset(qb, 0, sizeof(float) * 96);
    for (int h = 0; h < 2; h++) {
        qb[h * 16] = score; /* q: a constant */
        qkv[(32 + h * 16) * QM_DF + key_ch] = 1.0f; /* k: the key channel */
        qkv[(64 + h * 16) * QM_DF + val_ch] = 1.0f; /* v: the value channel */
    }
    float *proj = qm_w(w, "fusion.blocks.0.attn.proj.weight", QM_DF * QM_DF);
    memset(proj, 0, sizeof(float) * QM_DF * QM_DF);
    proj[2 * QM_DF + 0] = 1.0f; /* head 0's first dimension into channel 2 */
    qm_zero(w, "fusion.blocks.0.attn.proj.bias", QM_DF);
    for (int b = 0; b < 2; b++) {
        snprintf(n, sizeof n, "fusion.blocks.%d.mlp.fc2.weight", b);
        qm_zero(w, n, QM_DF * QM_IF);
        snprintf(n, sizeof n, "fusion.blocks.%d.mlp.fc2.bias", b);
        qm_zero(w, n, QM_DF);
        snprintf(n, sizeof n, "fusion.blocks.%d.norm1.weight", b);
        qm_fill(w, n, QM_DF, 1.0f);
        snprintf(n, sizeof n, "fusion.blocks.%d.norm1.bias", b);
        qm_zero(w, n, QM_DF);
    }
    qm_zero(w, "fusion.blocks.1.attn.proj.weight", QM_DF * QM_DF);
    qm_zero(w, "fusion.blocks.1.attn.proj.bias", QM_DF);
    qm_fill(w, "fusion.norm.weight", QM_DF, 1.0f);
    qm_zero(w, "fusion.norm.bias", QM_DF);
    qm_zero(w, "fusion.modality_embed", 4 * QM_DF);
    float bn[32];
    qm_base_vector(bn, 1.0f);
    memcpy(qm_w(w, "fusion.cls_token", QM_DF), bn, sizeof bn);
    float *absent = qm_w(w, "fusion.absent_embed", 4 * QM_DF);
    for (int m = 0; m < 4; m++)
        memcpy(absent + m * QM_DF, bn, sizeof bn);
}

void qm_head(qm_weights *w, int K, const float *gain, const float *bias)
{
    float *hw = qm_w(w, "fusion.head.weight", K * QM_DF);
    memset(hw, 0, sizeof(float) * K * QM_DF);
    for (int k = 0; k < K; k++)
        hw[k * QM_DF + 2] = gain[k];
    memcpy(qm_w(w, "fusion.head.bias", K), bias, sizeof(float) * K);
    qm_fill(w, "fusion.head.temperature", K, 1.0f);
}

void test_make_quadrant_model(const char *dir)
{
    rf_fusion_random_opts o;
    test_model_defaults(&o);
    o.inline_sections = 1;
    o.with_text = 0;
    o.pool_grid = 2;
    o.image_size = 64;
    o.nlabels = 2;
    test_make_model(dir, &o);
    qm_weights w;
    qm_load(&w, dir);
    /* vision: channel 0 = the patch's mean value, channel 1 = 1 on the
     * top-left quadrant's patches (position embedding), the base vector on
     * every token; blocks that add nothing */
    float *pw = qm_w(&w, "vision.embeddings.patch_embeddings.projection.weight", QM_DV * 3 * 16 * 16);
    memset(pw, 0, sizeof(float) * QM_DV * 3 * 16 * 16);
    for (int i = 0; i < 3 * 16 * 16; i++)
        pw[i] = 1.0f / (3 * 16 * 16);
    float *pb = qm_w(&w, "vision.embeddings.patch_embeddings.projection.bias", QM_DV);
    qm_base_vector(pb, QM_BASE);
    qm_base_vector(qm_w(&w, "vision.embeddings.cls_token", QM_DV), QM_BASE);
    float *pos = qm_w(&w, "vision.embeddings.position_embeddings", (1 + QM_NPATCH) * QM_DV);
    memset(pos, 0, sizeof(float) * (1 + QM_NPATCH) * QM_DV);
    for (int p = 0; p < QM_NPATCH; p++)
        if (p / QM_GRID < QM_GRID / 2 && p % QM_GRID < QM_GRID / 2)
            pos[(1 + p) * QM_DV + 1] = 1.0f;
    char n[128];
    for (int l = 0; l < 2; l++) {
        snprintf(n, sizeof n, "vision.encoder.layer.%d.attention.output.dense.weight", l);
        qm_zero(&w, n, QM_DV * QM_DV);
        snprintf(n, sizeof n, "vision.encoder.layer.%d.attention.output.dense.bias", l);
        qm_zero(&w, n, QM_DV);
        snprintf(n, sizeof n, "vision.encoder.layer.%d.output.dense.weight", l);
        qm_zero(&w, n, QM_DV * QM_IV);
        snprintf(n, sizeof n, "vision.encoder.layer.%d.output.dense.bias", l);
        qm_zero(&w, n, QM_DV);
    }
    qm_fill(&w, "vision.layernorm.weight", QM_DV, 1.0f);
    qm_zero(&w, "vision.layernorm.bias", QM_DV);
    /* fusion: vision tokens as they are; the CLS reads the marked cell's brightness */
    float *ip = qm_w(&w, "fusion.image_proj.weight", QM_DF * QM_DV);
    memset(ip, 0, sizeof(float) * QM_DF * QM_DV);
    for (int c = 0; c < QM_DF; c++)
        ip[c * QM_DV + c] = 1.0f;
    qm_zero(&w, "fusion.image_proj.bias", QM_DF);
    qm_fusion_reader(&w, 1, 0, QM_SCORE);
    float gain[2] = {40.0f, 25.0f}, bias[2] = {-7.0f, -5.0f};
    qm_head(&w, 2, gain, bias);
    qm_save(&w, dir);
}
