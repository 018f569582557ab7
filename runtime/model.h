/*
 * The transformer encoder as plain structs: every architecture radfuse runs
 * (Dinov2, HF ViT, BERT, timm ViT) is one stack of blocks with a few
 * switches, filled by model_load.c from checkpoint tensors and run by
 * encoder.c through a backend.
 */
#ifndef RADFUSE_RUNTIME_MODEL_H
#define RADFUSE_RUNTIME_MODEL_H

#include "radfuse/runtime.h"
#include "runtime/backend.h"

/* One encoder block. Pre-norm (ViT family):
 *   x += ls1 * proj(attn(ln1(x)));  x += ls2 * fc2(act(fc1(ln2(x))))
 * Post-norm (BERT):
 *   x = ln1(x + proj(attn(x)));     x = ln2(x + fc2(act(fc1(x))))
 * ls1/ls2 (layer scale) are absent (data == NULL) when the checkpoint has none. */
typedef struct rf_block {
    rf_linear qkv; /* q, k, v fused: w [3C, C] */
    rf_linear proj;
    rf_linear fc1, fc2;
    rf_tensor ln1_g, ln1_b, ln2_g, ln2_b;
    rf_tensor ls1, ls2;
} rf_block;

struct rf_model {
    rf_model_info info;
    rf_backend *be;
    int pre_norm;
    rf_act act;
    float eps;

    /* vision embeddings */
    rf_linear patch;     /* w [E, C*P*P] */
    rf_tensor cls;       /* [E] */
    rf_tensor pos;       /* [1 + grid_h*grid_w, E] */
    int grid_h, grid_w;  /* the position table's patch grid */
    int interpolate_pos; /* Dinov2: resize the table to any input size */

    /* text embeddings */
    rf_tensor word_emb, pos_emb, type_emb; /* [V, E], [P, E], [types, E] */
    rf_tensor emb_ln_g, emb_ln_b;

    rf_block *blocks;
    rf_tensor final_ln_g, final_ln_b; /* absent for BERT */
    rf_linear pooler;                 /* tanh(dense(CLS)); w.data NULL if none */
    int pooler_is_cls;                /* Dinov2: pooler_output = final CLS */

    /* timm classifier */
    int pool_avg; /* global_pool "avg" (mean of patch tokens) instead of CLS */
    rf_tensor fc_norm_g, fc_norm_b;
    rf_linear head;

    char *weight_files[256]; /* paths, for checksums */
    int nweight_files;

    rf_tensor pool_ones; /* timm avg pooling: ones[grid_h * grid_w] */

    rf_arena weights;     /* every weight, f32, sized at load */
    rf_arena activations; /* forward-pass scratch, sized before each pass */
    rf_buffer *weights_buf, *activations_buf; /* backend memory under the arenas */
};

/* Calls fn on every weight tensor of the model (absent ones included). */
void rf_model_for_each_weight(rf_model *m, void (*fn)(rf_tensor *t, void *ctx), void *ctx);

/* Empties the activation arena and makes it hold a pass over B sequences of
 * T tokens; it only grows (once) when the input is larger than any before. */
int rf_model_reserve(rf_model *m, int64_t B, int64_t T, rf_err *err);

/* Frees the block array, releases backend weights and both arenas. */
void rf_model_release(rf_model *m);

#endif
