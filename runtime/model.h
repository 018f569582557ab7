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

/* How the blocks of a stack run. */
typedef struct rf_block_cfg {
    int64_t hidden;
    int heads;
    int pre_norm;
    rf_act act;
    float eps;
} rf_block_cfg;

/* Scratch for a block over N rows: normed [N, C], qkv [N, 3C], att [N, C],
 * hidden [N, intermediate]. */
typedef struct rf_block_scratch {
    rf_tensor normed, qkv, att, hidden;
} rf_block_scratch;

/* Rows [begin, end) of every sequence that attend only among themselves. */
typedef struct rf_attn_group {
    int64_t begin, end;
} rf_attn_group;

/*
 * One block over x [B*T, C] in place, through the backend. Every row attends
 * to every key of its sequence (key_mask [B, T] or NULL), except the rows of
 * the groups, which attend only to the keys of their own group (their rows
 * of the full attention are recomputed over the group; no key mask then).
 */
int rf_block_forward(rf_backend *be, const rf_block *blk, const rf_block_cfg *cfg, rf_tensor *x, int64_t B,
                     int64_t T, const rf_tensor *key_mask, const rf_attn_group *groups, int ngroups,
                     const rf_block_scratch *s, rf_err *err);

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

/* Where a model comes from: a config object, names for messages, a set of
 * open weight files (shared with other sections of a model directory) and the
 * prefix its tensors carry in them ("" for a plain checkpoint, "vision." for
 * a section of a model directory). Only tensors under the prefix are counted
 * and bound. */
struct cJSON;
typedef struct rf_model_source {
    const struct cJSON *config;
    const char *config_name;  /* names the config in messages: "DIR/config.json" or "DIR/config.json: vision" */
    const char *weights_name; /* names the weights in messages (missing tensors): DIR */
    rf_safetensors *const *files;
    int nfiles;
    const char *prefix;
} rf_model_source;

/* rf_model_load from a source; the files stay open and the caller's. */
int rf_model_load_source(rf_model **out, const rf_model_source *src, rf_backend *be, rf_err *err);

/* Opens DIR/model.safetensors, or every shard DIR/model.safetensors.index.json
 * names (at most max), into files[0 .. *nfiles). On failure none stays open. */
int rf_weights_open(const char *dir, rf_safetensors **files, int max, int *nfiles, rf_err *err);

/* Calls fn on every weight tensor of the model (absent ones included). */
void rf_model_for_each_weight(rf_model *m, void (*fn)(rf_tensor *t, void *ctx), void *ctx);

/* Calls fn on every weight tensor of owner (rf_model_for_each_weight's shape). */
typedef void (*rf_weight_walk)(void *owner, void (*fn)(rf_tensor *t, void *ctx), void *ctx);

/* Moves every weight walk visits (those with data; linear weights a backend
 * keeps only in its prepared form have data NULL by then) into one backend
 * buffer (*buf) in one upload, points the tensors there, and makes *weights
 * an arena over that buffer. For backends that are not host addressable;
 * what names the model in errors. */
int rf_weights_upload(rf_backend *be, rf_weight_walk walk, void *owner, rf_arena *weights, rf_buffer **buf,
                      const char *what, rf_err *err);

/* Empties the activation arena and makes it hold a pass over B sequences of
 * T tokens; it only grows (once) when the input is larger than any before. */
int rf_model_reserve(rf_model *m, int64_t B, int64_t T, rf_err *err);

/* Frees the block array, releases backend weights and both arenas. */
void rf_model_release(rf_model *m);

#endif
