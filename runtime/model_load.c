/*
 * Model loading: config.json (through cJSON) picks the architecture, then
 * every tensor is bound by the name its checkpoint stores it under. Names are
 * data, one table per architecture, with '|'-separated alternatives for the
 * spellings different library versions use; a checkpoint saved from a
 * task model ("vit.", "bert.", "dinov2." prefixes) binds the same way.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "runtime/fileio.h"
#include "runtime/model.h"

#define CONFIG_MAX_BYTES (16 << 20)
#define MAX_SHARDS 256

/* ---- per-architecture tensor names (without .weight / .bias) ---- */

typedef struct arch_names {
    const char *anchor;   /* a tensor every checkpoint of the family has */
    const char *prefixes; /* prefixes a task model adds */
    const char *cls, *pos, *patch;
    const char *word, *posemb, *type, *emb_ln;
    const char *q, *k, *v, *qkv, *proj, *ln1, *ln2, *fc1, *fc2, *ls1, *ls2;
    const char *final_ln, *pooler, *fc_norm, *head;
    const char *unsupported; /* tensors whose presence means a variant we do not run */
} arch_names;

static const arch_names dinov2_names = {
    .anchor = "embeddings.cls_token",
    .prefixes = "|dinov2.|model.",
    .cls = "embeddings.cls_token",
    .pos = "embeddings.position_embeddings",
    .patch = "embeddings.patch_embeddings.projection",
    .q = "encoder.layer.%d.attention.attention.query|layers.%d.attention.q_proj",
    .k = "encoder.layer.%d.attention.attention.key|layers.%d.attention.k_proj",
    .v = "encoder.layer.%d.attention.attention.value|layers.%d.attention.v_proj",
    .proj = "encoder.layer.%d.attention.output.dense|layers.%d.attention.o_proj",
    .ln1 = "encoder.layer.%d.norm1|layers.%d.norm1",
    .ln2 = "encoder.layer.%d.norm2|layers.%d.norm2",
    .fc1 = "encoder.layer.%d.mlp.fc1|layers.%d.mlp.fc1",
    .fc2 = "encoder.layer.%d.mlp.fc2|layers.%d.mlp.fc2",
    .ls1 = "encoder.layer.%d.layer_scale1.lambda1|layers.%d.layer_scale1.lambda1",
    .ls2 = "encoder.layer.%d.layer_scale2.lambda1|layers.%d.layer_scale2.lambda1",
    .final_ln = "layernorm",
    .unsupported = "encoder.layer.0.mlp.weights_in|embeddings.register_tokens",
};

static const arch_names hf_vit_names = {
    .anchor = "embeddings.cls_token",
    .prefixes = "|vit.|model.",
    .cls = "embeddings.cls_token",
    .pos = "embeddings.position_embeddings",
    .patch = "embeddings.patch_embeddings.projection",
    .q = "layers.%d.attention.q_proj|encoder.layer.%d.attention.attention.query",
    .k = "layers.%d.attention.k_proj|encoder.layer.%d.attention.attention.key",
    .v = "layers.%d.attention.v_proj|encoder.layer.%d.attention.attention.value",
    .proj = "layers.%d.attention.o_proj|encoder.layer.%d.attention.output.dense",
    .ln1 = "layers.%d.layernorm_before|encoder.layer.%d.layernorm_before",
    .ln2 = "layers.%d.layernorm_after|encoder.layer.%d.layernorm_after",
    .fc1 = "layers.%d.mlp.fc1|encoder.layer.%d.intermediate.dense",
    .fc2 = "layers.%d.mlp.fc2|encoder.layer.%d.output.dense",
    .final_ln = "layernorm",
    .pooler = "pooler.dense",
};

static const arch_names bert_names = {
    .anchor = "embeddings.word_embeddings.weight",
    .prefixes = "|bert.|model.",
    .word = "embeddings.word_embeddings",
    .posemb = "embeddings.position_embeddings",
    .type = "embeddings.token_type_embeddings",
    .emb_ln = "embeddings.LayerNorm",
    .q = "encoder.layer.%d.attention.self.query",
    .k = "encoder.layer.%d.attention.self.key",
    .v = "encoder.layer.%d.attention.self.value",
    .proj = "encoder.layer.%d.attention.output.dense",
    .ln1 = "encoder.layer.%d.attention.output.LayerNorm",
    .fc1 = "encoder.layer.%d.intermediate.dense",
    .fc2 = "encoder.layer.%d.output.dense",
    .ln2 = "encoder.layer.%d.output.LayerNorm",
    .pooler = "pooler.dense",
};

static const arch_names timm_vit_names = {
    .anchor = "patch_embed.proj.weight",
    .prefixes = "|model.|module.",
    .cls = "cls_token",
    .pos = "pos_embed",
    .patch = "patch_embed.proj",
    .qkv = "blocks.%d.attn.qkv",
    .proj = "blocks.%d.attn.proj",
    .ln1 = "blocks.%d.norm1",
    .ln2 = "blocks.%d.norm2",
    .fc1 = "blocks.%d.mlp.fc1",
    .fc2 = "blocks.%d.mlp.fc2",
    .ls1 = "blocks.%d.ls1.gamma",
    .ls2 = "blocks.%d.ls2.gamma",
    .final_ln = "norm",
    .fc_norm = "fc_norm",
    .head = "head",
    .unsupported = "norm_pre.weight|reg_token|blocks.0.attn.q_norm.weight|attn_pool.latent",
};

const char *rf_arch_name(rf_arch a)
{
    switch (a) {
    case RF_ARCH_DINOV2: return "Dinov2Model";
    case RF_ARCH_HF_VIT: return "ViTModel";
    case RF_ARCH_BERT: return "BertModel";
    case RF_ARCH_TIMM_VIT: return "timm VisionTransformer";
    }
    return "?";
}

/* ---- the loader's state ---- */

typedef struct loader {
    const char *dir; /* names the weights in messages */
    rf_safetensors *const *files;
    int nfiles;
    const char *outer;  /* the section's prefix in a shared weight set ("vision."), or "" */
    char prefix[96];    /* outer + the task model's prefix */
    rf_model *m;
    rf_err *err;
} loader;

static const rf_st_tensor *find_exact(const loader *L, const char *name)
{
    for (int i = 0; i < L->nfiles; i++) {
        const rf_st_tensor *t = rf_safetensors_find(L->files[i], name);
        if (t)
            return t;
    }
    return NULL;
}

/*
 * Finds the tensor for pattern (alternatives separated by '|', each may hold
 * one %d for the layer) followed by suffix, under the checkpoint's prefix.
 */
static const rf_st_tensor *find(const loader *L, const char *pattern, int layer, const char *suffix)
{
    if (!pattern)
        return NULL;
    const char *p = pattern;
    while (*p) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        char alt[256], name[512];
        if (len < sizeof alt) {
            memcpy(alt, p, len);
            alt[len] = 0;
            char body[300];
            /* the format string is a table literal with at most one %d */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
            snprintf(body, sizeof body, alt, layer);
#pragma GCC diagnostic pop
            snprintf(name, sizeof name, "%s%s%s", L->prefix, body, suffix);
            const rf_st_tensor *t = find_exact(L, name);
            if (t)
                return t;
        }
        p += len + (bar ? 1 : 0);
    }
    return NULL;
}

/* The first alternative of pattern, for error messages. */
static void first_name(char *out, size_t n, const loader *L, const char *pattern, int layer,
                       const char *suffix)
{
    char alt[256];
    const char *bar = strchr(pattern, '|');
    size_t len = bar ? (size_t)(bar - pattern) : strlen(pattern);
    if (len >= sizeof alt)
        len = sizeof alt - 1;
    memcpy(alt, pattern, len);
    alt[len] = 0;
    char body[300];
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    snprintf(body, sizeof body, alt, layer);
#pragma GCC diagnostic pop
    snprintf(out, n, "%s%s%s", L->prefix, body, suffix);
}

/* Path of the weight file that holds t, for messages. */
static const char *file_of(const loader *L, const rf_st_tensor *t)
{
    for (int i = 0; i < L->nfiles; i++)
        if (rf_safetensors_find(L->files[i], t->name) == t)
            return rf_safetensors_path(L->files[i]);
    return L->dir;
}

/* Stored shape with leading 1s dropped, so [1, 1, E] matches [E]. */
static int squeezed(const rf_st_tensor *t, int64_t *dims)
{
    int start = 0;
    while (start < t->ndim - 1 && t->shape[start] == 1)
        start++;
    int n = 0;
    for (int i = start; i < t->ndim; i++)
        dims[n++] = t->shape[i];
    return n;
}

static void shape_str(char *out, size_t n, int ndim, const int64_t *dims)
{
    size_t used = (size_t)snprintf(out, n, "[");
    for (int i = 0; i < ndim && used < n; i++)
        used += (size_t)snprintf(out + used, n - used, "%s%lld", i ? ", " : "", (long long)dims[i]);
    if (used < n)
        snprintf(out + used, n - used, "]");
}

/*
 * Checks that stored tensor t has the given shape (leading 1s ignored; any
 * want[i] of -1 takes the stored size) and fills shape. Returns nonzero with
 * a message naming the tensor otherwise.
 */
static int check_shape(loader *L, const rf_st_tensor *t, int ndim, const int64_t *want, int64_t *shape)
{
    int64_t dims[8];
    int n = squeezed(t, dims);
    int ok = n == ndim;
    for (int i = 0; ok && i < ndim; i++) {
        shape[i] = want[i] < 0 ? dims[i] : want[i];
        ok = dims[i] == shape[i];
    }
    if (ok)
        return RF_OK;
    char have[128], exp[128];
    shape_str(have, sizeof have, t->ndim, t->shape);
    shape_str(exp, sizeof exp, ndim, want);
    return rf_err_set(L->err, RF_EFORMAT, "%s: tensor '%s' has shape %s, the config implies %s",
                      file_of(L, t), t->name, have, exp);
}

/* Converts count elements of stored tensor t to f32 at out. Only float
 * dtypes are weights; non-finite values are rejected. */
static int convert_into(loader *L, float *out, const rf_st_tensor *t, int64_t count)
{
    const uint8_t *src = t->data;
    switch (t->dtype) {
    case RF_ST_F32:
        memcpy(out, src, (size_t)count * 4);
        break;
    case RF_ST_F16:
    case RF_ST_BF16:
        for (int64_t i = 0; i < count; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            out[i] = t->dtype == RF_ST_F16 ? rf_f16_to_f32(h) : rf_bf16_to_f32(h);
        }
        break;
    case RF_ST_F64:
        for (int64_t i = 0; i < count; i++) {
            double d;
            memcpy(&d, src + 8 * i, 8);
            out[i] = (float)d;
        }
        break;
    default:
        return rf_err_set(L->err, RF_EUNSUP, "%s: tensor '%s' has dtype %s; weights must be F32, F16, BF16 or F64",
                          file_of(L, t), t->name, rf_st_dtype_name(t->dtype));
    }
    for (int64_t i = 0; i < count; i++)
        if (!isfinite(out[i]))
            return rf_err_set(L->err, RF_EFORMAT, "%s: tensor '%s' holds a non-finite value at element %lld",
                              file_of(L, t), t->name, (long long)i);
    L->m->info.param_count += count;
    return RF_OK;
}

/* Converts a stored tensor to a new f32 tensor in the weight arena. */
static int convert(loader *L, rf_tensor *dst, const rf_st_tensor *t, int ndim, const int64_t *want)
{
    int64_t shape[RF_MAX_DIMS];
    int rc = check_shape(L, t, ndim, want, shape);
    if (rc)
        return rc;
    *dst = rf_arena_tensor(&L->m->weights, RF_F32, ndim, shape);
    if (!dst->data)
        return rf_err_set(L->err, RF_ENOMEM, "%s: weight arena exhausted at '%s'", L->dir, t->name);
    return convert_into(L, dst->data, t, rf_tensor_numel(dst));
}

/* The tensor for pattern+suffix, or an error naming it when missing. */
static int require(loader *L, const rf_st_tensor **t, const char *pattern, int layer, const char *suffix)
{
    *t = find(L, pattern, layer, suffix);
    if (*t)
        return RF_OK;
    char name[512];
    first_name(name, sizeof name, L, pattern ? pattern : "?", layer, suffix);
    return rf_err_set(L->err, RF_EFORMAT, "%s: missing tensor '%s'", L->dir, name);
}

/* Binds pattern+suffix into dst; a missing tensor is an error when required. */
static int bind(loader *L, rf_tensor *dst, const char *pattern, int layer, const char *suffix,
                int required, int ndim, int64_t d0, int64_t d1)
{
    memset(dst, 0, sizeof *dst);
    const rf_st_tensor *t = find(L, pattern, layer, suffix);
    if (!t && !required)
        return RF_OK;
    int rc = require(L, &t, pattern, layer, suffix);
    if (rc)
        return rc;
    int64_t want[2] = {d0, d1};
    return convert(L, dst, t, ndim, want);
}

/* LayerNorm parameters: ".weight"/".bias", or the older ".gamma"/".beta". */
static int bind_norm(loader *L, rf_tensor *g, rf_tensor *b, const char *pattern, int layer,
                     int required, int64_t n)
{
    const char *gs = find(L, pattern, layer, ".weight") ? ".weight" : ".gamma";
    const char *bs = find(L, pattern, layer, ".bias") ? ".bias" : ".beta";
    int rc = bind(L, g, pattern, layer, gs, required, 1, n, 0);
    if (!rc && g->data)
        rc = bind(L, b, pattern, layer, bs, 1, 1, n, 0);
    return rc;
}

static int bind_linear(loader *L, rf_linear *l, const char *pattern, int layer, int required,
                       int64_t out, int64_t in)
{
    memset(l, 0, sizeof *l);
    int rc = bind(L, &l->w, pattern, layer, ".weight", required, 2, out, in);
    if (!rc && l->w.data)
        rc = bind(L, &l->b, pattern, layer, ".bias", 0, 1, l->w.shape[0], 0);
    return rc;
}

/* q, k, v as stored separately, converted into one fused [3C, C] weight. */
static int bind_qkv(loader *L, rf_linear *qkv, const arch_names *nm, int layer, int64_t C)
{
    memset(qkv, 0, sizeof *qkv);
    if (nm->qkv)
        return bind_linear(L, qkv, nm->qkv, layer, 1, 3 * C, C);
    const char *pats[3] = {nm->q, nm->k, nm->v};
    const rf_st_tensor *w[3], *b[3];
    int64_t wshape[2] = {C, C}, bshape[1] = {C}, shape[2];
    int has_bias = 1;
    for (int i = 0; i < 3; i++) {
        int rc = require(L, &w[i], pats[i], layer, ".weight");
        if (!rc)
            rc = check_shape(L, w[i], 2, wshape, shape);
        b[i] = find(L, pats[i], layer, ".bias");
        if (!rc && b[i])
            rc = check_shape(L, b[i], 1, bshape, shape);
        if (rc)
            return rc;
        has_bias &= b[i] != NULL;
    }
    int64_t fw[2] = {3 * C, C}, fb[1] = {3 * C};
    qkv->w = rf_arena_tensor(&L->m->weights, RF_F32, 2, fw);
    if (has_bias)
        qkv->b = rf_arena_tensor(&L->m->weights, RF_F32, 1, fb);
    if (!qkv->w.data || (has_bias && !qkv->b.data))
        return rf_err_set(L->err, RF_ENOMEM, "%s: weight arena exhausted", L->dir);
    for (int i = 0; i < 3; i++) {
        int rc = convert_into(L, (float *)qkv->w.data + i * C * C, w[i], C * C);
        if (!rc && has_bias)
            rc = convert_into(L, (float *)qkv->b.data + i * C, b[i], C);
        if (rc)
            return rc;
    }
    return RF_OK;
}

/* ---- config.json ---- */

typedef struct config {
    cJSON *root;
    const char *path;
    rf_err *err;
} config;

static int cfg_load(config *c, const char *path, rf_err *err)
{
    c->root = NULL;
    c->path = path;
    c->err = err;
    return rf_json_read_object(path, CONFIG_MAX_BYTES, &c->root, err);
}

/* An integer key in [lo, hi]; absent keys take def, or fail when required. */
static int cfg_int(config *c, const char *key, int required, long def, long lo, long hi, int *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->root, key);
    if (!v || cJSON_IsNull(v)) {
        if (required)
            return rf_err_set(c->err, RF_EFORMAT, "%s: missing key '%s'", c->path, key);
        *out = (int)def;
        return RF_OK;
    }
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!(d >= (double)lo && d <= (double)hi) || d != floor(d))
        return rf_err_set(c->err, RF_EFORMAT, "%s: key '%s' must be an integer in [%ld, %ld]", c->path,
                          key, lo, hi);
    *out = (int)d;
    return RF_OK;
}

static int cfg_double(config *c, const char *key, double def, double lo, double hi, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->root, key);
    if (!v || cJSON_IsNull(v)) {
        *out = def;
        return RF_OK;
    }
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= lo && v->valuedouble <= hi))
        return rf_err_set(c->err, RF_EFORMAT, "%s: key '%s' must be a number in [%g, %g]", c->path, key,
                          lo, hi);
    *out = v->valuedouble;
    return RF_OK;
}

/* A string key, or def when absent; a non-string value is an error. */
static int cfg_string(config *c, const char *key, const char *def, const char **out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->root, key);
    if (!v || cJSON_IsNull(v)) {
        *out = def;
        return RF_OK;
    }
    if (!cJSON_IsString(v))
        return rf_err_set(c->err, RF_EFORMAT, "%s: key '%s' must be a string", c->path, key);
    *out = v->valuestring;
    return RF_OK;
}

static int parse_act(config *c, const char *name, rf_act *act)
{
    static const struct {
        const char *name;
        rf_act act;
    } acts[] = {
        {"gelu", RF_ACT_GELU_ERF},       {"gelu_new", RF_ACT_GELU_TANH},
        {"gelu_pytorch_tanh", RF_ACT_GELU_TANH}, {"gelu_fast", RF_ACT_GELU_TANH},
        {"relu", RF_ACT_RELU},
    };
    for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++)
        if (strcmp(name, acts[i].name) == 0) {
            *act = acts[i].act;
            return RF_OK;
        }
    return rf_err_set(c->err, RF_EUNSUP, "%s: hidden_act '%s' is not supported", c->path, name);
}

/* ---- weight files ---- */

int rf_weights_open(const char *dir, rf_safetensors **files, int max, int *nfiles, rf_err *err)
{
    *nfiles = 0;
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    struct stat sb;
    if (stat(path, &sb) != 0) {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        int rc = max < 1 ? rf_err_set(err, RF_EINVAL, "%s: no room for a weight file", dir)
                         : rf_safetensors_open(&files[0], path, err);
        *nfiles = rc ? 0 : 1;
        return rc;
    }
    config idx;
    int rc = cfg_load(&idx, path, err);
    if (rc)
        return rc;
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(idx.root, "weight_map");
    if (!cJSON_IsObject(map)) {
        cJSON_Delete(idx.root);
        return rf_err_set(err, RF_EFORMAT, "%s: no 'weight_map' object", path);
    }
    int n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, map)
    {
        if (!cJSON_IsString(e) || strchr(e->valuestring, '/') || e->valuestring[0] == '.') {
            rc = rf_err_set(err, RF_EFORMAT, "%s: shard name for '%s' must be a plain file name", path,
                            e->string);
            break;
        }
        int seen = 0;
        for (int i = 0; i < n && !seen; i++)
            seen = strcmp(strrchr(rf_safetensors_path(files[i]), '/') + 1, e->valuestring) == 0;
        if (seen)
            continue;
        if (n == max) {
            rc = rf_err_set(err, RF_EFORMAT, "%s: more than %d shards", path, max);
            break;
        }
        char shard[4096];
        snprintf(shard, sizeof shard, "%s/%s", dir, e->valuestring);
        rc = rf_safetensors_open(&files[n], shard, err);
        if (rc)
            break;
        n++;
    }
    cJSON_Delete(idx.root);
    if (!rc && n == 0)
        rc = rf_err_set(err, RF_EFORMAT, "%s: names no shards", path);
    if (rc) {
        for (int i = 0; i < n; i++)
            rf_safetensors_close(files[i]);
        n = 0;
    }
    *nfiles = n;
    return rc;
}

/* ---- architecture detection and building ---- */

/* Heads of the timm model families, by architecture name prefix. */
static int timm_heads(const char *arch)
{
    static const struct {
        const char *prefix;
        int heads;
    } t[] = {{"vit_tiny_", 3},  {"vit_small_", 6},  {"vit_medium_", 8}, {"vit_base_", 12},
             {"vit_large_", 16}, {"vit_huge_", 16}, {"vit_giant_", 16}, {"vit_gigantic_", 16}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (strncmp(arch, t[i].prefix, strlen(t[i].prefix)) == 0)
            return t[i].heads;
    return 0;
}

/* Sets L->prefix to the one under which the architecture's anchor exists. */
static int find_prefix(loader *L, const arch_names *nm)
{
    const char *p = nm->prefixes;
    for (;;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        size_t olen = strlen(L->outer);
        if (olen + len < sizeof L->prefix) {
            memcpy(L->prefix, L->outer, olen);
            memcpy(L->prefix + olen, p, len);
            L->prefix[olen + len] = 0;
            char name[300];
            snprintf(name, sizeof name, "%s%s", L->prefix, nm->anchor);
            if (find_exact(L, name))
                return RF_OK;
        }
        if (!bar)
            break;
        p = bar + 1;
    }
    snprintf(L->prefix, sizeof L->prefix, "%s", L->outer);
    return rf_err_set(L->err, RF_EFORMAT, "%s: weights have no '%s%s' tensor; not a %s checkpoint", L->dir,
                      L->outer, nm->anchor, rf_arch_name(L->m->info.arch));
}

static int check_unsupported(loader *L, const arch_names *nm)
{
    if (!nm->unsupported)
        return RF_OK;
    const char *p = nm->unsupported;
    while (*p) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        char name[256];
        if (len < sizeof name) {
            memcpy(name, p, len);
            name[len] = 0;
            if (find(L, name, 0, ""))
                return rf_err_set(L->err, RF_EUNSUP, "%s: checkpoint has '%s%s', a variant radfuse does not run",
                                  L->dir, L->prefix, name);
        }
        p += len + (bar ? 1 : 0);
    }
    return RF_OK;
}

static int build_blocks(loader *L, const arch_names *nm, int64_t C, int64_t I)
{
    rf_model *m = L->m;
    m->blocks = calloc((size_t)m->info.layers, sizeof *m->blocks);
    if (!m->blocks)
        return rf_err_set(L->err, RF_ENOMEM, "%s: cannot allocate %d blocks", L->dir, m->info.layers);
    for (int i = 0; i < m->info.layers; i++) {
        rf_block *b = &m->blocks[i];
        int rc = bind_qkv(L, &b->qkv, nm, i, C);
        if (!rc)
            rc = bind_linear(L, &b->proj, nm->proj, i, 1, C, C);
        if (!rc)
            rc = bind_norm(L, &b->ln1_g, &b->ln1_b, nm->ln1, i, 1, C);
        if (!rc)
            rc = bind_norm(L, &b->ln2_g, &b->ln2_b, nm->ln2, i, 1, C);
        if (!rc)
            rc = bind_linear(L, &b->fc1, nm->fc1, i, 1, I, C);
        if (!rc)
            rc = bind_linear(L, &b->fc2, nm->fc2, i, 1, C, I);
        if (!rc && nm->ls1)
            rc = bind(L, &b->ls1, nm->ls1, i, "", 0, 1, C, 0);
        if (!rc && nm->ls2)
            rc = bind(L, &b->ls2, nm->ls2, i, "", 0, 1, C, 0);
        if (rc)
            return rc;
    }
    return RF_OK;
}

/* Vision embeddings shared by Dinov2, HF ViT and timm. */
static int build_vision_embeddings(loader *L, const arch_names *nm, int C, int channels, int patch)
{
    rf_model *m = L->m;
    int rc = bind(L, &m->cls, nm->cls, 0, "", 1, 1, C, 0);
    if (!rc) {
        /* the conv weight [E, C, P, P] is the linear weight [E, C*P*P] */
        const rf_st_tensor *t;
        if ((rc = require(L, &t, nm->patch, 0, ".weight")))
            return rc;
        if (t->ndim != 4 || t->shape[0] != C || t->shape[1] != channels || t->shape[2] != patch ||
            t->shape[3] != patch) {
            char have[128];
            shape_str(have, sizeof have, t->ndim, t->shape);
            return rf_err_set(L->err, RF_EFORMAT,
                              "%s: tensor '%s' has shape %s, the config implies [%d, %d, %d, %d]",
                              file_of(L, t), t->name, have, C, channels, patch, patch);
        }
        rf_st_tensor flat = *t;
        flat.ndim = 2;
        flat.shape[1] = (int64_t)channels * patch * patch;
        int64_t want[2] = {C, flat.shape[1]};
        memset(&m->patch, 0, sizeof m->patch);
        rc = convert(L, &m->patch.w, &flat, 2, want);
        if (!rc)
            rc = bind(L, &m->patch.b, nm->patch, 0, ".bias", 0, 1, C, 0);
    }
    if (rc)
        return rc;
    const rf_st_tensor *pt = find(L, nm->pos, 0, "");
    if (!pt)
        return rf_err_set(L->err, RF_EFORMAT, "%s: missing tensor '%s%s'", L->dir, L->prefix, nm->pos);
    int64_t dims[8];
    int nd = squeezed(pt, dims);
    int64_t npos = nd == 2 ? dims[0] - 1 : -1;
    int64_t grid = npos > 0 ? (int64_t)llround(sqrt((double)npos)) : 0;
    if (nd != 2 || dims[1] != C || grid * grid != npos)
        return rf_err_set(L->err, RF_EFORMAT,
                          "%s: tensor '%s' must hold 1 + a square number of %d-wide position embeddings",
                          file_of(L, pt), pt->name, C);
    m->grid_h = m->grid_w = (int)grid;
    int64_t want[2] = {npos + 1, C};
    return convert(L, &m->pos, pt, 2, want);
}

static int build_hf(loader *L, config *c, const char *model_type)
{
    rf_model *m = L->m;
    rf_model_info *info = &m->info;
    const arch_names *nm;
    if (strcmp(model_type, "dinov2") == 0) {
        info->arch = RF_ARCH_DINOV2;
        nm = &dinov2_names;
    } else if (strcmp(model_type, "vit") == 0) {
        info->arch = RF_ARCH_HF_VIT;
        nm = &hf_vit_names;
    } else if (strcmp(model_type, "bert") == 0) {
        info->arch = RF_ARCH_BERT;
        nm = &bert_names;
    } else {
        return rf_err_set(L->err, RF_EUNSUP,
                          "%s: model_type '%s' is not supported (dinov2, vit, bert, or a timm vit_*)",
                          c->path, model_type);
    }
    int rc = cfg_int(c, "hidden_size", 1, 0, 1, 1 << 16, &info->hidden);
    if (!rc)
        rc = cfg_int(c, "num_hidden_layers", 1, 0, 1, 1024, &info->layers);
    if (!rc)
        rc = cfg_int(c, "num_attention_heads", 1, 0, 1, 1024, &info->heads);
    double eps = 0;
    if (!rc)
        rc = cfg_double(c, "layer_norm_eps", info->arch == RF_ARCH_DINOV2 ? 1e-6 : 1e-12, 0, 1, &eps);
    const char *act = NULL;
    if (!rc)
        rc = cfg_string(c, "hidden_act", "gelu", &act);
    if (!rc)
        rc = parse_act(c, act, &m->act);
    if (rc)
        return rc;
    m->eps = (float)eps;
    if (info->hidden % info->heads)
        return rf_err_set(L->err, RF_EFORMAT, "%s: hidden_size %d is not a multiple of num_attention_heads %d",
                          c->path, info->hidden, info->heads);
    if (info->arch == RF_ARCH_DINOV2) {
        int swiglu = 0;
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->root, "use_swiglu_ffn");
        swiglu = cJSON_IsTrue(v);
        if (swiglu)
            return rf_err_set(L->err, RF_EUNSUP, "%s: use_swiglu_ffn is not supported", c->path);
        double ratio = 4;
        rc = cfg_double(c, "mlp_ratio", 4, 0.01, 64, &ratio);
        if (rc)
            return rc;
        info->intermediate = (int)(info->hidden * ratio);
    } else {
        rc = cfg_int(c, "intermediate_size", 1, 0, 1, 1 << 20, &info->intermediate);
        if (rc)
            return rc;
    }
    if ((rc = find_prefix(L, nm)) || (rc = check_unsupported(L, nm)))
        return rc;
    int64_t C = info->hidden;
    if (info->arch == RF_ARCH_BERT) {
        m->pre_norm = 0;
        if ((rc = cfg_int(c, "vocab_size", 1, 0, 1, 1 << 24, &info->vocab_size)) ||
            (rc = cfg_int(c, "max_position_embeddings", 1, 0, 1, 1 << 20, &info->max_positions)))
            return rc;
        int types = 2;
        if ((rc = cfg_int(c, "type_vocab_size", 0, 2, 1, 1 << 16, &types)))
            return rc;
        const char *pet = NULL;
        if ((rc = cfg_string(c, "position_embedding_type", "absolute", &pet)))
            return rc;
        if (strcmp(pet, "absolute") != 0)
            return rf_err_set(L->err, RF_EUNSUP, "%s: position_embedding_type '%s' is not supported",
                              c->path, pet);
        if ((rc = bind(L, &m->word_emb, nm->word, 0, ".weight", 1, 2, info->vocab_size, C)) ||
            (rc = bind(L, &m->pos_emb, nm->posemb, 0, ".weight", 1, 2, info->max_positions, C)) ||
            (rc = bind(L, &m->type_emb, nm->type, 0, ".weight", 1, 2, types, C)) ||
            (rc = bind_norm(L, &m->emb_ln_g, &m->emb_ln_b, nm->emb_ln, 0, 1, C)))
            return rc;
    } else {
        m->pre_norm = 1;
        if ((rc = cfg_int(c, "num_channels", 0, 3, 1, 64, &info->channels)) ||
            (rc = cfg_int(c, "patch_size", 1, 0, 1, 1024, &info->patch_size)) ||
            (rc = cfg_int(c, "image_size", 1, 0, 1, 1 << 16, &info->image_size)))
            return rc;
        if ((rc = build_vision_embeddings(L, nm, info->hidden, info->channels, info->patch_size)))
            return rc;
        m->interpolate_pos = info->arch == RF_ARCH_DINOV2;
        m->pooler_is_cls = info->arch == RF_ARCH_DINOV2;
        if ((rc = bind_norm(L, &m->final_ln_g, &m->final_ln_b, nm->final_ln, 0, 1, C)))
            return rc;
    }
    if ((rc = build_blocks(L, nm, C, info->intermediate)))
        return rc;
    if (nm->pooler && (rc = bind_linear(L, &m->pooler, nm->pooler, 0, 0, C, C)))
        return rc;
    return RF_OK;
}

static int build_timm(loader *L, config *c, const char *arch)
{
    rf_model *m = L->m;
    rf_model_info *info = &m->info;
    const arch_names *nm = &timm_vit_names;
    info->arch = RF_ARCH_TIMM_VIT;
    m->pre_norm = 1;
    m->act = RF_ACT_GELU_ERF;
    int rc = find_prefix(L, nm);
    if (!rc)
        rc = check_unsupported(L, nm);
    if (rc)
        return rc;
    /* timm's hub config names the architecture; sizes come from the weights
     * where they can, and from explicit keys or the family table otherwise */
    const rf_st_tensor *pw = find(L, nm->patch, 0, ".weight");
    if (!pw || pw->ndim != 4 || pw->shape[2] != pw->shape[3] || pw->shape[0] > (1 << 16) ||
        pw->shape[1] > 64 || pw->shape[2] > 1024)
        return rf_err_set(L->err, RF_EFORMAT, "%s: '%spatch_embed.proj.weight' must be [E, C, P, P]",
                          L->dir, L->prefix);
    info->hidden = (int)pw->shape[0];
    info->channels = (int)pw->shape[1];
    info->patch_size = (int)pw->shape[2];
    int embed_dim = info->hidden, in_chans = info->channels, patch = info->patch_size;
    if ((rc = cfg_int(c, "embed_dim", 0, info->hidden, 1, 1 << 16, &embed_dim)) ||
        (rc = cfg_int(c, "in_chans", 0, info->channels, 1, 64, &in_chans)) ||
        (rc = cfg_int(c, "patch_size", 0, info->patch_size, 1, 1024, &patch)))
        return rc;
    if (embed_dim != info->hidden || in_chans != info->channels || patch != info->patch_size)
        return rf_err_set(L->err, RF_EFORMAT,
                          "%s: config (embed_dim %d, in_chans %d, patch_size %d) disagrees with the patch "
                          "embedding weight [%d, %d, %d, %d]",
                          c->path, embed_dim, in_chans, patch, info->hidden, info->channels,
                          info->patch_size, info->patch_size);
    int depth = 0;
    while (depth < 1024 && find(L, nm->ln1, depth, ".weight"))
        depth++;
    if ((rc = cfg_int(c, "depth", 0, depth, 1, 1024, &info->layers)))
        return rc;
    if (info->layers != depth)
        return rf_err_set(L->err, RF_EFORMAT, "%s: config says depth %d, the weights hold %d blocks",
                          c->path, info->layers, depth);
    if ((rc = cfg_int(c, "num_heads", 0, timm_heads(arch), 0, 1024, &info->heads)))
        return rc;
    if (info->heads <= 0)
        return rf_err_set(L->err, RF_EFORMAT, "%s: missing key 'num_heads' (not implied by architecture '%s')",
                          c->path, arch);
    if (info->hidden % info->heads)
        return rf_err_set(L->err, RF_EFORMAT, "%s: embed_dim %d is not a multiple of num_heads %d", c->path,
                          info->hidden, info->heads);
    double eps = 1e-6;
    if ((rc = cfg_double(c, "norm_eps", 1e-6, 0, 1, &eps)))
        return rc;
    m->eps = (float)eps;
    const char *pool = NULL;
    if ((rc = cfg_string(c, "global_pool", "token", &pool)))
        return rc;
    if (strcmp(pool, "token") != 0 && strcmp(pool, "avg") != 0)
        return rf_err_set(L->err, RF_EUNSUP, "%s: global_pool '%s' is not supported (token, avg)", c->path,
                          pool);
    m->pool_avg = strcmp(pool, "avg") == 0;
    const rf_st_tensor *fc1 = find(L, nm->fc1, 0, ".weight");
    if (!fc1 || fc1->ndim != 2)
        return rf_err_set(L->err, RF_EFORMAT, "%s: missing tensor '%sblocks.0.mlp.fc1.weight'", L->dir,
                          L->prefix);
    info->intermediate = (int)fc1->shape[0];
    if ((rc = build_vision_embeddings(L, nm, info->hidden, info->channels, info->patch_size)))
        return rc;
    info->image_size = m->grid_h * info->patch_size;
    int img = info->image_size;
    if ((rc = cfg_int(c, "img_size", 0, img, 1, 1 << 16, &img)))
        return rc;
    if (img != info->image_size)
        return rf_err_set(L->err, RF_EFORMAT, "%s: config says img_size %d, the position table implies %d",
                          c->path, img, info->image_size);
    int64_t C = info->hidden;
    if ((rc = build_blocks(L, nm, C, info->intermediate)) ||
        (rc = bind_norm(L, &m->final_ln_g, &m->final_ln_b, nm->final_ln, 0, 0, C)) ||
        (rc = bind_norm(L, &m->fc_norm_g, &m->fc_norm_b, nm->fc_norm, 0, 0, C)) ||
        (rc = bind_linear(L, &m->head, nm->head, 0, 0, -1, C)))
        return rc;
    info->num_classes = m->head.w.data ? (int)m->head.w.shape[0] : 0;
    if (m->pool_avg) {
        /* the patch-token mean is a product with ones: keep them with the weights */
        int64_t shape[3] = {1, 1, (int64_t)m->grid_h * m->grid_w};
        m->pool_ones = rf_arena_tensor(&m->weights, RF_F32, 3, shape);
        if (!m->pool_ones.data)
            return rf_err_set(L->err, RF_ENOMEM, "%s: weight arena exhausted", L->dir);
        for (int64_t i = 0; i < shape[2]; i++)
            ((float *)m->pool_ones.data)[i] = 1.0f;
    }
    int classes = info->num_classes;
    if ((rc = cfg_int(c, "num_classes", 0, classes, 0, 1 << 24, &classes)))
        return rc;
    if (classes != info->num_classes)
        return rf_err_set(L->err, RF_EFORMAT, "%s: config says num_classes %d, the head has %d", c->path,
                          classes, info->num_classes);
    return RF_OK;
}

/* Sends every linear layer to the backend for packing. */
static int prepare_linears(rf_model *m, rf_err *err)
{
    rf_backend *be = m->be;
    rf_linear *singles[] = {&m->patch, &m->pooler, &m->head};
    for (size_t i = 0; i < sizeof singles / sizeof singles[0]; i++)
        if (singles[i]->w.data) {
            int rc = be->ops->linear_prepare(be, singles[i], err);
            if (rc)
                return rc;
        }
    for (int i = 0; i < m->info.layers; i++) {
        rf_linear *ls[] = {&m->blocks[i].qkv, &m->blocks[i].proj, &m->blocks[i].fc1, &m->blocks[i].fc2};
        for (int j = 0; j < 4; j++) {
            int rc = be->ops->linear_prepare(be, ls[j], err);
            if (rc)
                return rc;
        }
    }
    return RF_OK;
}

void rf_model_for_each_weight(rf_model *m, void (*fn)(rf_tensor *t, void *ctx), void *ctx)
{
    rf_tensor *singles[] = {&m->cls, &m->pos, &m->patch.w, &m->patch.b, &m->word_emb, &m->pos_emb,
                            &m->type_emb, &m->emb_ln_g, &m->emb_ln_b, &m->final_ln_g, &m->final_ln_b,
                            &m->pooler.w, &m->pooler.b, &m->fc_norm_g, &m->fc_norm_b, &m->head.w,
                            &m->head.b, &m->pool_ones};
    for (size_t i = 0; i < sizeof singles / sizeof singles[0]; i++)
        fn(singles[i], ctx);
    for (int i = 0; m->blocks && i < m->info.layers; i++) {
        rf_block *b = &m->blocks[i];
        rf_tensor *ts[] = {&b->qkv.w, &b->qkv.b, &b->proj.w, &b->proj.b, &b->fc1.w, &b->fc1.b, &b->fc2.w,
                           &b->fc2.b, &b->ln1_g, &b->ln1_b, &b->ln2_g, &b->ln2_b, &b->ls1, &b->ls2};
        for (size_t j = 0; j < sizeof ts / sizeof ts[0]; j++)
            fn(ts[j], ctx);
    }
}

typedef struct packing {
    uint8_t *host;   /* packed copy being filled, or NULL while sizing */
    uint8_t *device; /* its device base, for relocation */
    size_t used;
} packing;

/* Sizes (host == NULL) or copies and relocates one weight into the packing. */
static void pack(rf_tensor *t, void *ctx)
{
    packing *p = ctx;
    if (!t->data)
        return;
    size_t bytes = (size_t)rf_tensor_numel(t) * rf_dtype_size(t->dtype);
    if (p->host) {
        memcpy(p->host + p->used, t->data, bytes);
        t->data = p->device + p->used;
    }
    p->used += (bytes + 63) & ~(size_t)63;
}

int rf_weights_upload(rf_backend *be, rf_weight_walk walk, void *owner, rf_arena *weights, rf_buffer **buf,
                      const char *what, rf_err *err)
{
    packing p = {0};
    walk(owner, pack, &p); /* sizes */
    size_t bytes = p.used ? p.used : 64;
    void *dev;
    int rc = be->ops->buffer_alloc(be, bytes, buf, &dev, err);
    if (rc)
        return rc;
    p = (packing){.host = calloc(1, bytes), .device = dev};
    if (!p.host)
        return rf_err_set(err, RF_ENOMEM, "cannot allocate %zu bytes to stage %s", bytes, what);
    walk(owner, pack, &p); /* copies and relocates */
    int64_t n = (int64_t)(bytes / 4);
    rf_tensor all = rf_tensor_make(RF_F32, dev, 1, &n);
    rc = be->ops->upload(be, &all, p.host, err);
    free(p.host);
    rf_arena_free(weights);
    rf_arena_wrap(weights, dev, bytes);
    weights->used = bytes;
    return rc;
}

static void walk_model(void *owner, void (*fn)(rf_tensor *t, void *ctx), void *ctx)
{
    rf_model_for_each_weight(owner, fn, ctx);
}

static void drop_prepared(rf_linear *l)
{
    if (l->prepared)
        l->w.data = NULL; /* the backend keeps its own form; only the shape stays */
}

/* Moves every weight to backend memory in one upload and points the tensors
 * there; linear weights the backend holds in a prepared form of its own (fp16
 * copies) are left out, so the device does not keep them twice. */
static int move_weights_to_device(rf_model *m, rf_err *err)
{
    rf_backend *be = m->be;
    rf_linear *singles[] = {&m->patch, &m->pooler, &m->head};
    for (size_t i = 0; i < sizeof singles / sizeof singles[0]; i++)
        drop_prepared(singles[i]);
    for (int i = 0; i < m->info.layers; i++) {
        drop_prepared(&m->blocks[i].qkv);
        drop_prepared(&m->blocks[i].proj);
        drop_prepared(&m->blocks[i].fc1);
        drop_prepared(&m->blocks[i].fc2);
    }
    return rf_weights_upload(be, walk_model, m, &m->weights, &m->weights_buf, "the weights", err);
}

void rf_model_release(rf_model *m)
{
    if (m->be) {
        rf_linear *singles[] = {&m->patch, &m->pooler, &m->head};
        for (size_t i = 0; i < sizeof singles / sizeof singles[0]; i++)
            if (singles[i]->prepared)
                m->be->ops->linear_release(m->be, singles[i]);
        for (int i = 0; m->blocks && i < m->info.layers; i++) {
            rf_linear *ls[] = {&m->blocks[i].qkv, &m->blocks[i].proj, &m->blocks[i].fc1,
                               &m->blocks[i].fc2};
            for (int j = 0; j < 4; j++)
                if (ls[j]->prepared)
                    m->be->ops->linear_release(m->be, ls[j]);
        }
    }
    free(m->blocks);
    m->blocks = NULL;
    rf_arena_free(&m->weights);
    rf_arena_free(&m->activations);
    if (m->be && m->weights_buf)
        m->be->ops->buffer_free(m->be, m->weights_buf);
    if (m->be && m->activations_buf)
        m->be->ops->buffer_free(m->be, m->activations_buf);
    m->weights_buf = m->activations_buf = NULL;
    for (int i = 0; i < m->nweight_files; i++)
        free(m->weight_files[i]);
    m->nweight_files = 0;
}

static int has_prefix(const char *name, const char *prefix)
{
    return strncmp(name, prefix, strlen(prefix)) == 0;
}

int rf_model_load_source(rf_model **out, const rf_model_source *src, rf_backend *be, rf_err *err)
{
    *out = NULL;
    loader L;
    memset(&L, 0, sizeof L);
    L.dir = src->weights_name;
    L.files = src->files;
    L.nfiles = src->nfiles;
    L.outer = src->prefix ? src->prefix : "";
    snprintf(L.prefix, sizeof L.prefix, "%s", L.outer);
    L.err = err;
    if (strlen(L.outer) >= sizeof L.prefix / 2)
        return rf_err_set(err, RF_EINVAL, "%s: tensor prefix '%s' is too long", src->config_name, L.outer);
    rf_model *m = calloc(1, sizeof *m);
    if (!m)
        return rf_err_set(err, RF_ENOMEM, "%s: cannot allocate a model", L.dir);
    m->be = be;
    L.m = m;
    /* the config is only read; cfg_* take it as the root of a file's object */
    config c = {.root = (cJSON *)src->config, .path = src->config_name, .err = err};
    /* an upper bound: every stored element of the section as f32 */
    size_t total = 0;
    for (int i = 0; i < L.nfiles; i++) {
        int used = 0;
        for (size_t j = 0; j < rf_safetensors_count(L.files[i]); j++) {
            const rf_st_tensor *t = rf_safetensors_at(L.files[i], j);
            if (!has_prefix(t->name, L.outer))
                continue;
            size_t esz = rf_st_dtype_size(t->dtype);
            total += (esz ? t->nbytes / esz : 0) * 4 + 64;
            m->info.tensor_count++;
            m->info.dtype_counts[t->dtype]++;
            used = 1;
        }
        if ((used || !*L.outer) && m->nweight_files < (int)(sizeof m->weight_files / sizeof m->weight_files[0])) {
            char *copy = strdup(rf_safetensors_path(L.files[i]));
            if (!copy) {
                rf_model_free(m);
                return rf_err_set(err, RF_ENOMEM, "%s: out of memory", L.dir);
            }
            m->weight_files[m->nweight_files++] = copy;
        }
    }
    int rc = rf_arena_init(&m->weights, total + 4096, err);
    if (!rc) {
        const char *model_type = NULL, *arch = NULL;
        rc = cfg_string(&c, "model_type", NULL, &model_type);
        if (!rc)
            rc = cfg_string(&c, "architecture", NULL, &arch);
        if (!rc) {
            if (model_type)
                rc = build_hf(&L, &c, model_type);
            else if (arch && strncmp(arch, "vit_", 4) == 0)
                rc = build_timm(&L, &c, arch);
            else if (arch)
                rc = rf_err_set(err, RF_EUNSUP, "%s: timm architecture '%s' is not supported (vit_*)",
                                c.path, arch);
            else
                rc = rf_err_set(err, RF_EFORMAT,
                                "%s: missing key 'model_type' (Hugging Face) or 'architecture' (timm)",
                                c.path);
        }
    }
    if (!rc)
        rc = prepare_linears(m, err);
    if (!rc && !be->ops->host_addressable)
        rc = move_weights_to_device(m, err);
    if (!rc) /* sized at load for one input of the model's own size */
        rc = rf_model_reserve(m, 1, m->info.arch == RF_ARCH_BERT ? m->info.max_positions
                                                                 : 1 + (int64_t)m->grid_h * m->grid_w, err);
    if (rc) {
        rf_model_free(m);
        return rc;
    }
    *out = m;
    return RF_OK;
}

int rf_model_load(rf_model **out, const char *dir, rf_backend *be, rf_err *err)
{
    *out = NULL;
    char config_path[4096];
    snprintf(config_path, sizeof config_path, "%s/config.json", dir);
    config c;
    int rc = cfg_load(&c, config_path, err);
    if (rc)
        return rc;
    rf_safetensors *files[MAX_SHARDS];
    int nfiles = 0;
    rc = rf_weights_open(dir, files, MAX_SHARDS, &nfiles, err);
    if (!rc) {
        rf_model_source src = {.config = c.root, .config_name = config_path, .weights_name = dir,
                               .files = files, .nfiles = nfiles, .prefix = ""};
        rc = rf_model_load_source(out, &src, be, err);
    }
    cJSON_Delete(c.root);
    for (int i = 0; i < nfiles; i++)
        rf_safetensors_close(files[i]);
    return rc;
}

void rf_model_free(rf_model *m)
{
    if (!m)
        return;
    rf_model_release(m);
    free(m);
}

const rf_model_info *rf_model_get_info(const rf_model *m)
{
    return &m->info;
}

const char *rf_model_weight_file(const rf_model *m, int i)
{
    return i >= 0 && i < m->nweight_files ? m->weight_files[i] : NULL;
}
