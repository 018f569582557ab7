/*
 * The fusion model as plain structs (internal): what fusion_load.c fills from
 * a model directory and fusion_forward.c runs, and what the saliency code
 * (fusion/saliency*.c, fusion/grad*.c) reads to recompute the fusion forward
 * pass on the host.
 *
 * Tensor names in the model directory's safetensors, shapes with D the fusion
 * width, Dv / Dt the vision / text encoders' widths, L the lab table rows, K
 * the findings, F = RF_LAB_TOKEN_FEATURES = RF_FUSION_TIME_FEATURES = 8:
 *   fusion.cls_token               [D]      (stored [D], [1, D] or [1, 1, D])
 *   fusion.modality_embed          [4, D]   rows in rf_modality order: image, text, labs, prior
 *   fusion.absent_embed            [4, D]   the absent token of each modality, same order
 *   fusion.image_proj.weight/bias  [D, Dv], [D]
 *   fusion.text_proj.weight/bias   [D, Dt], [D]   (only with a text encoder)
 *   fusion.time_embed.weight/bias  [D, 8], [D]
 *   fusion.lab_code.weight         [L, D]
 *   fusion.lab_value.weight/bias   [D, 8], [D]
 *   fusion.blocks.N.norm1.weight/bias, .attn.qkv.weight/bias [3D, D],
 *   fusion.blocks.N.attn.proj.weight/bias, .norm2.weight/bias,
 *   fusion.blocks.N.mlp.fc1.weight/bias [I, D], .mlp.fc2.weight/bias [D, I]
 *   fusion.norm.weight/bias        [D]
 *   fusion.head.weight/bias        [K, D], [K]
 *   fusion.head.temperature        [K]
 * Biases of the linear layers are optional (absent: zero).
 *
 * The sequence (rf_fusion_layout in fusion.h says where each range sits):
 *   row 0            cls_token
 *   image rows       image_proj(vision tokens) + modality_embed[image]
 *   prior rows       image_proj(vision tokens) + modality_embed[prior] + time_embed(time features)
 *   text rows        text_proj(text states)  + modality_embed[text]
 *   lab rows         lab_code[lab] + lab_value(features) + modality_embed[labs]
 *   absent modality  absent_embed[m] alone (one row)
 * then for each block (pre-norm, as rf_block_forward runs it):
 *   x += proj(attn(norm1(x)));  x += fc2(act(fc1(norm2(x))))
 * with joint attention (every row attends to every row) or cross attention
 * (rows of the text range attend only to text rows, rows of the lab range
 * only to lab rows, all other rows to every row); then
 *   logits = head(norm(x[0])),  probability = sigmoid(logit / temperature).
 * Vision tokens: the vision encoder's last_hidden_state per image; its CLS
 * row, then the patch rows average-pooled to pool_h x pool_w cells with
 * PyTorch's adaptive_avg_pool2d windows (cell i of a side covers patches
 * floor(i * n / g) .. ceil((i + 1) * n / g) - 1), the pooling as a product
 * with the matrix pool [pool_h * pool_w, grid_h * grid_w].
 */
#ifndef RADFUSE_FUSION_MODEL_H
#define RADFUSE_FUSION_MODEL_H

#include "radfuse/fusion.h"
#include "runtime/backend.h"
#include "runtime/model.h"

#define RF_FUSION_MAX_FILES 600

struct rf_fusion {
    rf_fusion_info info;
    rf_backend *be;

    rf_model *vision;  /* the vision encoder */
    rf_model *text;    /* the text encoder, or NULL */
    rf_vocab *vocab;   /* with the text encoder */

    rf_block_cfg cfg;  /* D, heads, pre-norm, act, eps of the fusion blocks */
    int64_t intermediate;

    rf_tensor cls;          /* [D] */
    rf_tensor modality;     /* [RF_MODALITY_COUNT, D] */
    rf_tensor absent;       /* [RF_MODALITY_COUNT, D] */
    rf_linear image_proj;   /* [D, Dv] */
    rf_linear text_proj;    /* [D, Dt]; w.ndim == 0 without a text encoder */
    rf_linear time_embed;   /* [D, 8] */
    rf_tensor lab_code;     /* [L, D] */
    rf_linear lab_value;    /* [D, 8] */
    rf_block *blocks;       /* [layers]; ls1 / ls2 absent */
    rf_tensor norm_g, norm_b;
    rf_linear head;         /* [K, D] */
    float *temperature;     /* [K], host memory (the probabilities are taken on the host) */

    /* every fusion weight, f32, in backend memory after load */
    rf_arena weights;
    rf_buffer *weights_buf;
    rf_arena activations;
    rf_buffer *activations_buf;

    /* storage behind info's strings and arrays */
    char *dir, *name, *version, *format, *hidden_act, *vision_source, *text_source;
    char *preprocess_path, *vocab_path, *model_card;
    rf_fusion_label *labels;
    rf_fusion_file *files;
    int nfiles;
};

/* Calls fn on every fusion weight tensor (absent ones included). */
void rf_fusion_for_each_weight(rf_fusion *f, void (*fn)(rf_tensor *t, void *ctx), void *ctx);

/* The pooling matrix [oh * ow, gh * gw] of adaptive average pooling, row-major
 * into pool (host memory). */
void rf_fusion_pool_matrix(float *pool, int gh, int gw, int oh, int ow);

/* ---- the generator of small random models (fusion_random.c) ---- */

typedef struct rf_fusion_random_opts {
    unsigned long seed;
    int inline_sections;   /* 1: encoder configs inline, weights under vision./text. in the
                            * directory's safetensors; 0: vision/ and text/ subdirectories */
    int timm_vision;       /* vision encoder as timm vit_* (else HF ViTModel) */
    int cross_attention;
    int with_text;         /* a text encoder (BERT over vocab_path) */
    const char *vocab_path; /* WordPiece vocabulary for the text encoder (copied into the model) */
    int image_size;        /* 64 or 96 (patch 16) */
    int pool_grid;         /* image_pool_grid */
    int max_text_tokens;
    int nlabels;           /* 1..16 */
    int shards;            /* 0/1: one model.safetensors; >1: that many shards with an index */
} rf_fusion_random_opts;

/* Defaults: seed 1, subdirectories, HF ViT 64x64 patch 16, joint, text
 * encoder, pool grid 2, 16 text tokens, 5 labels, one weight file. */
void rf_fusion_random_defaults(rf_fusion_random_opts *o);

/* Writes a complete model directory (config.json, weights, labels.json,
 * vocab.txt, preprocessor_config.json, MODEL_CARD.md) with deterministic
 * random weights; dir is created when missing. */
int rf_fusion_write_random(const char *dir, const rf_fusion_random_opts *o, rf_err *err);

#endif
