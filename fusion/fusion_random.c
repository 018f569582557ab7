/*
 * Small model directories with deterministic random weights, for tests and
 * demos: a tiny ViT (Hugging Face ViTModel or timm names), a tiny BERT over a
 * given WordPiece vocabulary, a fusion transformer and 1-16 labels, laid out
 * with encoder subdirectories or inline sections (same weights either way,
 * so both layouts must give the same outputs).
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fusion/fusion_model.h"
#include "runtime/fileio.h"

#define MAX_TENSORS 512

/* sizes of the tiny encoders and fusion */
enum { E_V = 32, L_V = 2, H_V = 2, I_V = 64, PATCH = 16, E_T = 32, L_T = 2, H_T = 2, I_T = 64, POS_T = 64,
       D_F = 32, L_F = 2, H_F = 2, I_F = 64 };

void rf_fusion_random_defaults(rf_fusion_random_opts *o)
{
    memset(o, 0, sizeof *o);
    o->seed = 1;
    o->with_text = 1;
    o->image_size = 64;
    o->pool_grid = 2;
    o->max_text_tokens = 16;
    o->nlabels = 5;
}

typedef struct wset {
    rf_st_out items[MAX_TENSORS];
    int64_t shapes[MAX_TENSORS][4];
    float *data[MAX_TENSORS];
    int section[MAX_TENSORS]; /* 0 vision, 1 text, 2 fusion */
    int n;
    uint64_t s;
    int failed;
} wset;

/* Uniform in [-a, a] (xorshift64*). */
static float uni(wset *w, float a)
{
    w->s ^= w->s >> 12;
    w->s ^= w->s << 25;
    w->s ^= w->s >> 27;
    uint64_t v = w->s * 0x2545F4914F6CDD1Dull;
    return (2.0f * (float)(v >> 40) / 16777216.0f - 1.0f) * a;
}

/* A tensor named prefix+name of values base + uniform(a). */
static void add(wset *w, int section, const char *prefix, const char *name, int ndim, int64_t d0, int64_t d1,
                int64_t d2, int64_t d3, float base, float a)
{
    if (w->failed || w->n == MAX_TENSORS) {
        w->failed = 1;
        return;
    }
    int64_t dims[4] = {d0, d1, d2, d3};
    size_t count = 1;
    for (int i = 0; i < ndim; i++) {
        w->shapes[w->n][i] = dims[i];
        count *= (size_t)dims[i];
    }
    float *p = malloc(count * sizeof(float));
    char full[256];
    snprintf(full, sizeof full, "%s%s", prefix, name);
    char *nm = strdup(full);
    if (!p || !nm) {
        free(p);
        free(nm);
        w->failed = 1;
        return;
    }
    for (size_t i = 0; i < count; i++)
        p[i] = base + (a > 0 ? uni(w, a) : 0);
    w->items[w->n] = (rf_st_out){nm, RF_ST_F32, ndim, w->shapes[w->n], p};
    w->data[w->n] = p;
    w->section[w->n] = section;
    w->n++;
}

static void add_linear(wset *w, int sec, const char *prefix, const char *name, int64_t out, int64_t in, float a)
{
    char n[200];
    snprintf(n, sizeof n, "%s.weight", name);
    add(w, sec, prefix, n, 2, out, in, 0, 0, 0, a);
    snprintf(n, sizeof n, "%s.bias", name);
    add(w, sec, prefix, n, 1, out, 0, 0, 0, 0, 0.1f);
}

static void add_norm(wset *w, int sec, const char *prefix, const char *name, int64_t n)
{
    char s[200];
    snprintf(s, sizeof s, "%s.weight", name);
    add(w, sec, prefix, s, 1, n, 0, 0, 0, 1.0f, 0.2f);
    snprintf(s, sizeof s, "%s.bias", name);
    add(w, sec, prefix, s, 1, n, 0, 0, 0, 0, 0.1f);
}

static void wset_free(wset *w)
{
    for (int i = 0; i < w->n; i++) {
        free((char *)w->items[i].name);
        free(w->data[i]);
    }
}

static void vision_weights(wset *w, const char *px, int timm, int img)
{
    int64_t T = (img / PATCH) * (img / PATCH) + 1;
    const float a = 0.25f;
    if (timm) {
        add(w, 0, px, "cls_token", 3, 1, 1, E_V, 0, 0, 0.5f);
        add(w, 0, px, "pos_embed", 3, 1, T, E_V, 0, 0, 0.5f);
        add(w, 0, px, "patch_embed.proj.weight", 4, E_V, 3, PATCH, PATCH, 0, 0.05f);
        add(w, 0, px, "patch_embed.proj.bias", 1, E_V, 0, 0, 0, 0, 0.1f);
    } else {
        add(w, 0, px, "embeddings.cls_token", 3, 1, 1, E_V, 0, 0, 0.5f);
        add(w, 0, px, "embeddings.position_embeddings", 3, 1, T, E_V, 0, 0, 0.5f);
        add(w, 0, px, "embeddings.patch_embeddings.projection.weight", 4, E_V, 3, PATCH, PATCH, 0, 0.05f);
        add(w, 0, px, "embeddings.patch_embeddings.projection.bias", 1, E_V, 0, 0, 0, 0, 0.1f);
    }
    for (int l = 0; l < L_V; l++) {
        char n[160];
        if (timm) {
#define TN(fmt) (snprintf(n, sizeof n, fmt, l), n)
            add_norm(w, 0, px, TN("blocks.%d.norm1"), E_V);
            add_linear(w, 0, px, TN("blocks.%d.attn.qkv"), 3 * E_V, E_V, a);
            add_linear(w, 0, px, TN("blocks.%d.attn.proj"), E_V, E_V, a);
            add_norm(w, 0, px, TN("blocks.%d.norm2"), E_V);
            add_linear(w, 0, px, TN("blocks.%d.mlp.fc1"), I_V, E_V, a);
            add_linear(w, 0, px, TN("blocks.%d.mlp.fc2"), E_V, I_V, a);
        } else {
            add_linear(w, 0, px, TN("encoder.layer.%d.attention.attention.query"), E_V, E_V, a);
            add_linear(w, 0, px, TN("encoder.layer.%d.attention.attention.key"), E_V, E_V, a);
            add_linear(w, 0, px, TN("encoder.layer.%d.attention.attention.value"), E_V, E_V, a);
            add_linear(w, 0, px, TN("encoder.layer.%d.attention.output.dense"), E_V, E_V, a);
            add_norm(w, 0, px, TN("encoder.layer.%d.layernorm_before"), E_V);
            add_norm(w, 0, px, TN("encoder.layer.%d.layernorm_after"), E_V);
            add_linear(w, 0, px, TN("encoder.layer.%d.intermediate.dense"), I_V, E_V, a);
            add_linear(w, 0, px, TN("encoder.layer.%d.output.dense"), E_V, I_V, a);
#undef TN
        }
    }
    add_norm(w, 0, px, timm ? "norm" : "layernorm", E_V);
    if (!timm)
        add_linear(w, 0, px, "pooler.dense", E_V, E_V, a);
}

static void text_weights(wset *w, const char *px, int vocab)
{
    const float a = 0.25f;
    add(w, 1, px, "embeddings.word_embeddings.weight", 2, vocab, E_T, 0, 0, 0, 0.5f);
    add(w, 1, px, "embeddings.position_embeddings.weight", 2, POS_T, E_T, 0, 0, 0, 0.5f);
    add(w, 1, px, "embeddings.token_type_embeddings.weight", 2, 2, E_T, 0, 0, 0, 0.5f);
    add_norm(w, 1, px, "embeddings.LayerNorm", E_T);
    for (int l = 0; l < L_T; l++) {
        char n[160];
#define TN(fmt) (snprintf(n, sizeof n, fmt, l), n)
        add_linear(w, 1, px, TN("encoder.layer.%d.attention.self.query"), E_T, E_T, a);
        add_linear(w, 1, px, TN("encoder.layer.%d.attention.self.key"), E_T, E_T, a);
        add_linear(w, 1, px, TN("encoder.layer.%d.attention.self.value"), E_T, E_T, a);
        add_linear(w, 1, px, TN("encoder.layer.%d.attention.output.dense"), E_T, E_T, a);
        add_norm(w, 1, px, TN("encoder.layer.%d.attention.output.LayerNorm"), E_T);
        add_linear(w, 1, px, TN("encoder.layer.%d.intermediate.dense"), I_T, E_T, a);
        add_linear(w, 1, px, TN("encoder.layer.%d.output.dense"), E_T, I_T, a);
        add_norm(w, 1, px, TN("encoder.layer.%d.output.LayerNorm"), E_T);
#undef TN
    }
    add_linear(w, 1, px, "pooler.dense", E_T, E_T, a);
}

static void fusion_weights(wset *w, int with_text, int K)
{
    const char *px = "fusion.";
    const float a = 0.3f;
    add(w, 2, px, "cls_token", 3, 1, 1, D_F, 0, 0, 0.5f);
    add(w, 2, px, "modality_embed", 2, RF_MODALITY_COUNT, D_F, 0, 0, 0, 0.5f);
    add(w, 2, px, "absent_embed", 2, RF_MODALITY_COUNT, D_F, 0, 0, 0, 0.5f);
    add_linear(w, 2, px, "image_proj", D_F, E_V, a);
    if (with_text)
        add_linear(w, 2, px, "text_proj", D_F, E_T, a);
    add_linear(w, 2, px, "time_embed", D_F, RF_FUSION_TIME_FEATURES, 0.5f);
    add(w, 2, px, "lab_code.weight", 2, rf_lab_count(), D_F, 0, 0, 0, 0.5f);
    add_linear(w, 2, px, "lab_value", D_F, RF_LAB_TOKEN_FEATURES, 0.5f);
    for (int l = 0; l < L_F; l++) {
        char n[160];
#define TN(fmt) (snprintf(n, sizeof n, fmt, l), n)
        add_norm(w, 2, px, TN("blocks.%d.norm1"), D_F);
        add_linear(w, 2, px, TN("blocks.%d.attn.qkv"), 3 * D_F, D_F, a);
        add_linear(w, 2, px, TN("blocks.%d.attn.proj"), D_F, D_F, a);
        add_norm(w, 2, px, TN("blocks.%d.norm2"), D_F);
        add_linear(w, 2, px, TN("blocks.%d.mlp.fc1"), I_F, D_F, a);
        add_linear(w, 2, px, TN("blocks.%d.mlp.fc2"), D_F, I_F, a);
#undef TN
    }
    add_norm(w, 2, px, "norm", D_F);
    add_linear(w, 2, px, "head", K, D_F, 0.5f);
    add(w, 2, px, "head.temperature", 1, K, 0, 0, 0, 1.0f, 0.5f);
}

/* ---- files ---- */

static int write_json(const char *path, cJSON *c, rf_err *err)
{
    char *text = c ? cJSON_Print(c) : NULL;
    cJSON_Delete(c);
    if (!text)
        return rf_err_set(err, RF_ENOMEM, "cannot format %s", path);
    size_t n = strlen(text);
    char *withnl = realloc(text, n + 2);
    if (!withnl) {
        free(text);
        return rf_err_set(err, RF_ENOMEM, "cannot format %s", path);
    }
    withnl[n] = '\n';
    int rc = rf_write_file_atomic(path, withnl, n + 1, err);
    free(withnl);
    return rc;
}

/* Writes the tensors of the given sections (bit mask) as DIR/model.safetensors,
 * or as shards with an index. */
static int write_weights(const char *dir, wset *w, int sections, int shards, rf_err *err)
{
    rf_st_out *sel = malloc(MAX_TENSORS * sizeof *sel);
    if (!sel)
        return rf_err_set(err, RF_ENOMEM, "out of memory");
    int n = 0;
    for (int i = 0; i < w->n; i++)
        if (sections & (1 << w->section[i]))
            sel[n++] = w->items[i];
    char path[4200];
    int rc = RF_OK;
    if (shards <= 1) {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        rc = rf_safetensors_write(path, sel, (size_t)n, err);
        free(sel);
        return rc;
    }
    cJSON *idx = cJSON_CreateObject();
    cJSON *map = cJSON_AddObjectToObject(idx, "weight_map");
    cJSON_AddObjectToObject(idx, "metadata");
    int per = (n + shards - 1) / shards;
    for (int s = 0; s < shards && !rc; s++) {
        int b = s * per, e = b + per < n ? b + per : n;
        char name[64];
        snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", s + 1, shards);
        snprintf(path, sizeof path, "%s/%s", dir, name);
        rc = rf_safetensors_write(path, sel + b, (size_t)(e > b ? e - b : 0), err);
        for (int i = b; i < e; i++)
            cJSON_AddStringToObject(map, sel[i].name, name);
    }
    free(sel);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    if (rc) {
        cJSON_Delete(idx);
        return rc;
    }
    return write_json(path, idx, err);
}

static cJSON *vision_config(int timm, int img)
{
    cJSON *c = cJSON_CreateObject();
    if (timm) {
        char arch[64];
        snprintf(arch, sizeof arch, "vit_tiny_patch%d_%d", PATCH, img);
        cJSON_AddStringToObject(c, "architecture", arch);
        cJSON_AddNumberToObject(c, "num_classes", 0);
        cJSON_AddStringToObject(c, "global_pool", "token");
        cJSON_AddNumberToObject(c, "img_size", img);
        cJSON_AddNumberToObject(c, "patch_size", PATCH);
        cJSON_AddNumberToObject(c, "in_chans", 3);
        cJSON_AddNumberToObject(c, "embed_dim", E_V);
        cJSON_AddNumberToObject(c, "depth", L_V);
        cJSON_AddNumberToObject(c, "num_heads", H_V);
        cJSON_AddNumberToObject(c, "norm_eps", 1e-6);
    } else {
        cJSON_AddStringToObject(c, "model_type", "vit");
        cJSON_AddNumberToObject(c, "hidden_size", E_V);
        cJSON_AddNumberToObject(c, "num_hidden_layers", L_V);
        cJSON_AddNumberToObject(c, "num_attention_heads", H_V);
        cJSON_AddNumberToObject(c, "intermediate_size", I_V);
        cJSON_AddStringToObject(c, "hidden_act", "gelu");
        cJSON_AddNumberToObject(c, "layer_norm_eps", 1e-12);
        cJSON_AddNumberToObject(c, "image_size", img);
        cJSON_AddNumberToObject(c, "patch_size", PATCH);
        cJSON_AddNumberToObject(c, "num_channels", 3);
    }
    return c;
}

static cJSON *text_config(int vocab)
{
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "model_type", "bert");
    cJSON_AddNumberToObject(c, "vocab_size", vocab);
    cJSON_AddNumberToObject(c, "hidden_size", E_T);
    cJSON_AddNumberToObject(c, "num_hidden_layers", L_T);
    cJSON_AddNumberToObject(c, "num_attention_heads", H_T);
    cJSON_AddNumberToObject(c, "intermediate_size", I_T);
    cJSON_AddNumberToObject(c, "max_position_embeddings", POS_T);
    cJSON_AddNumberToObject(c, "type_vocab_size", 2);
    cJSON_AddStringToObject(c, "hidden_act", "gelu");
    cJSON_AddNumberToObject(c, "layer_norm_eps", 1e-12);
    return c;
}

static cJSON *preprocess_config(int img)
{
    cJSON *c = cJSON_CreateObject();
    cJSON_AddBoolToObject(c, "do_resize", 1);
    cJSON *size = cJSON_AddObjectToObject(c, "size");
    cJSON_AddNumberToObject(size, "height", img);
    cJSON_AddNumberToObject(size, "width", img);
    cJSON_AddNumberToObject(c, "resample", 2);
    cJSON_AddBoolToObject(c, "do_rescale", 1);
    cJSON_AddNumberToObject(c, "rescale_factor", 1.0 / 255.0);
    cJSON_AddBoolToObject(c, "do_normalize", 1);
    const double half[3] = {0.5, 0.5, 0.5};
    cJSON_AddItemToObject(c, "image_mean", cJSON_CreateDoubleArray(half, 3));
    cJSON_AddItemToObject(c, "image_std", cJSON_CreateDoubleArray(half, 3));
    return c;
}

static const struct {
    const char *code, *display, *system, *system_code;
    double threshold;
} label_table[16] = {
    {"covid19", "COVID-19", "http://snomed.info/sct", "840539006", 0.5},
    {"pneumonia", "Pneumonia", "http://snomed.info/sct", "233604007", 0.4},
    {"effusion", "Pleural effusion", "http://snomed.info/sct", "60046008", 0.35},
    {"cardiomegaly", "Cardiomegaly", "http://snomed.info/sct", "8186001", 0.45},
    {"edema", "Pulmonary edema", NULL, NULL, 0.3},
    {"atelectasis", "Atelectasis", NULL, NULL, 0.55},
    {"pneumothorax", "Pneumothorax", NULL, NULL, 0.25},
    {"consolidation", "Consolidation", NULL, NULL, 0.5},
    {"nodule", "Lung nodule", NULL, NULL, 0.6},
    {"fracture", "Rib fracture", NULL, NULL, 0.5},
    {"emphysema", "Emphysema", NULL, NULL, 0.5},
    {"fibrosis", "Fibrosis", NULL, NULL, 0.5},
    {"hernia", "Hiatal hernia", NULL, NULL, 0.5},
    {"mass", "Mass", NULL, NULL, 0.5},
    {"infiltration", "Infiltration", NULL, NULL, 0.5},
    {"normal", "No finding", NULL, NULL, 0.5},
};

static int copy_file(const char *from, const char *to, rf_err *err)
{
    char *data = NULL;
    size_t n = 0;
    int rc = rf_read_file(from, 64u << 20, &data, &n, err);
    if (!rc)
        rc = rf_write_file_atomic(to, data, n, err);
    free(data);
    return rc;
}

static int count_lines(const char *path, int *n, rf_err *err)
{
    char *data = NULL;
    size_t len = 0;
    int rc = rf_read_file(path, 64u << 20, &data, &len, err);
    if (rc)
        return rc;
    int lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += data[i] == '\n';
    if (len && data[len - 1] != '\n')
        lines++;
    free(data);
    *n = lines;
    return RF_OK;
}

int rf_fusion_write_random(const char *dir, const rf_fusion_random_opts *o, rf_err *err)
{
    if (strlen(dir) > 4000)
        return rf_err_set(err, RF_EINVAL, "random model: directory name too long");
    if (o->image_size != 64 && o->image_size != 96)
        return rf_err_set(err, RF_EINVAL, "random model: image size %d (64 or 96)", o->image_size);
    if (o->nlabels < 1 || o->nlabels > 16)
        return rf_err_set(err, RF_EINVAL, "random model: %d labels (1 to 16)", o->nlabels);
    if (o->with_text && !o->vocab_path)
        return rf_err_set(err, RF_EINVAL, "random model: a text encoder needs a vocabulary file");
    if (o->pool_grid < 0 || o->pool_grid > o->image_size / PATCH)
        return rf_err_set(err, RF_EINVAL, "random model: pool grid %d", o->pool_grid);
    int vocab = 0, rc = rf_mkdirs(dir, 0755, err);
    if (!rc && o->with_text)
        rc = count_lines(o->vocab_path, &vocab, err);
    if (rc)
        return rc;
    wset *w = calloc(1, sizeof *w);
    if (!w)
        return rf_err_set(err, RF_ENOMEM, "out of memory");
    w->s = 0x9E3779B97F4A7C15ull ^ ((uint64_t)o->seed * 0xBF58476D1CE4E5B9ull) ^ 1;
    const char *vpx = o->inline_sections ? "vision." : "", *tpx = o->inline_sections ? "text." : "";
    vision_weights(w, vpx, o->timm_vision, o->image_size);
    if (o->with_text)
        text_weights(w, tpx, vocab);
    fusion_weights(w, o->with_text, o->nlabels);
    if (w->failed) {
        wset_free(w);
        free(w);
        return rf_err_set(err, RF_ENOMEM, "random model: out of memory");
    }
    char path[4400], sub[4200];
    cJSON *cfg = cJSON_CreateObject();
    cJSON_AddStringToObject(cfg, "format", RF_FUSION_FORMAT);
    cJSON_AddStringToObject(cfg, "name", o->cross_attention ? "fusion_tiny_cross" : "fusion_tiny");
    cJSON_AddStringToObject(cfg, "version", "0.1.0");
    if (o->inline_sections) {
        cJSON_AddItemToObject(cfg, "vision", vision_config(o->timm_vision, o->image_size));
        if (o->with_text)
            cJSON_AddItemToObject(cfg, "text", text_config(vocab));
        rc = write_weights(dir, w, 7, o->shards, err);
        snprintf(path, sizeof path, "%s/preprocessor_config.json", dir);
        if (!rc)
            rc = write_json(path, preprocess_config(o->image_size), err);
        snprintf(path, sizeof path, "%s/vocab.txt", dir);
        if (!rc && o->with_text)
            rc = copy_file(o->vocab_path, path, err);
    } else {
        cJSON *v = cJSON_AddObjectToObject(cfg, "vision");
        cJSON_AddStringToObject(v, "path", "vision");
        snprintf(sub, sizeof sub, "%s/vision", dir);
        rc = rf_mkdirs(sub, 0755, err);
        snprintf(path, sizeof path, "%s/config.json", sub);
        if (!rc)
            rc = write_json(path, vision_config(o->timm_vision, o->image_size), err);
        if (!rc)
            rc = write_weights(sub, w, 1, 0, err);
        snprintf(path, sizeof path, "%s/preprocessor_config.json", sub);
        if (!rc)
            rc = write_json(path, preprocess_config(o->image_size), err);
        if (!rc && o->with_text) {
            cJSON *t = cJSON_AddObjectToObject(cfg, "text");
            cJSON_AddStringToObject(t, "path", "text");
            snprintf(sub, sizeof sub, "%s/text", dir);
            rc = rf_mkdirs(sub, 0755, err);
            snprintf(path, sizeof path, "%s/config.json", sub);
            if (!rc)
                rc = write_json(path, text_config(vocab), err);
            if (!rc)
                rc = write_weights(sub, w, 2, 0, err);
            snprintf(path, sizeof path, "%s/vocab.txt", sub);
            if (!rc)
                rc = copy_file(o->vocab_path, path, err);
        }
        if (!rc)
            rc = write_weights(dir, w, 4, o->shards, err);
    }
    wset_free(w);
    free(w);
    cJSON *fz = cJSON_AddObjectToObject(cfg, "fusion");
    cJSON_AddNumberToObject(fz, "hidden_size", D_F);
    cJSON_AddNumberToObject(fz, "num_hidden_layers", L_F);
    cJSON_AddNumberToObject(fz, "num_attention_heads", H_F);
    cJSON_AddNumberToObject(fz, "intermediate_size", I_F);
    cJSON_AddStringToObject(fz, "hidden_act", "gelu");
    cJSON_AddNumberToObject(fz, "layer_norm_eps", 1e-6);
    cJSON_AddStringToObject(fz, "attention", o->cross_attention ? "cross" : "joint");
    cJSON_AddNumberToObject(fz, "image_pool_grid", o->pool_grid);
    cJSON_AddNumberToObject(fz, "max_text_tokens", o->max_text_tokens);
    cJSON_AddNumberToObject(fz, "max_images", 4);
    cJSON_AddNumberToObject(fz, "max_prior_images", 2);
    const char *mods[] = {"CR", "DX"};
    cJSON_AddItemToObject(fz, "image_modalities", cJSON_CreateStringArray(mods, 2));
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (rc) {
        cJSON_Delete(cfg);
        return rc;
    }
    if ((rc = write_json(path, cfg, err)))
        return rc;
    cJSON *labels = cJSON_CreateArray();
    for (int k = 0; k < o->nlabels; k++) {
        cJSON *l = cJSON_CreateObject();
        cJSON_AddStringToObject(l, "code", label_table[k].code);
        cJSON_AddStringToObject(l, "display", label_table[k].display);
        cJSON_AddNumberToObject(l, "threshold", label_table[k].threshold);
        if (label_table[k].system) {
            cJSON_AddStringToObject(l, "system", label_table[k].system);
            cJSON_AddStringToObject(l, "system_code", label_table[k].system_code);
        }
        cJSON_AddItemToArray(labels, l);
    }
    snprintf(path, sizeof path, "%s/labels.json", dir);
    if ((rc = write_json(path, labels, err)))
        return rc;
    char card[1024];
    int n = snprintf(card, sizeof card,
                     "# %s\n\nA tiny fusion model with random weights (seed %lu), made by radfuse for tests and "
                     "demos.\nIts probabilities mean nothing: it was never trained.\n\n- vision: %s, %dx%d, patch %d\n"
                     "- text: %s\n- fusion: %d layers, width %d, %s attention\n",
                     o->cross_attention ? "fusion_tiny_cross" : "fusion_tiny", o->seed,
                     o->timm_vision ? "timm ViT" : "ViTModel", o->image_size, o->image_size, PATCH,
                     o->with_text ? "BertModel" : "none", L_F, D_F, o->cross_attention ? "cross" : "joint");
    snprintf(path, sizeof path, "%s/MODEL_CARD.md", dir);
    return rf_write_file_atomic(path, card, (size_t)n, err);
}
