/*
 * Loading a model directory (docs/model-dir.md): config.json with its
 * vision, text and fusion sections, the encoders (subdirectories holding
 * checkpoints as rf_model_load reads them, or inline configs whose weights
 * sit under "vision." / "text." in the directory's own safetensors), the
 * fusion weights under "fusion.", labels.json, vocab.txt and
 * preprocessor_config.json, and the SHA-256 of every file that determines
 * the outputs. Every check names the file and the key or tensor.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fusion/fusion_model.h"
#include "runtime/fileio.h"
#include "runtime/sha256.h"

#define CONFIG_MAX_BYTES (16 << 20)
#define LABELS_MAX_BYTES (4 << 20)
#define MAX_SHARDS 256
#define MAX_LABELS 4096

/* ---- small helpers ---- */

static char *dupstr(const char *s)
{
    return s ? strdup(s) : NULL;
}

static int file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* An integer key of obj in [lo, hi]; absent: def, or an error when required. */
static int json_int(const cJSON *obj, const char *where, const char *section, const char *key, int required,
                    long def, long lo, long hi, int *out, rf_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) {
        if (required)
            return rf_err_set(err, RF_EFORMAT, "%s: missing key '%s.%s'", where, section, key);
        *out = (int)def;
        return RF_OK;
    }
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!(d >= (double)lo && d <= (double)hi) || d != floor(d))
        return rf_err_set(err, RF_EFORMAT, "%s: key '%s.%s' must be an integer in [%ld, %ld]", where, section, key,
                          lo, hi);
    *out = (int)d;
    return RF_OK;
}

static int json_str(const cJSON *obj, const char *where, const char *section, const char *key, const char *def,
                    const char **out, rf_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) {
        if (!def)
            return rf_err_set(err, RF_EFORMAT, "%s: missing key '%s%s%s'", where, section, *section ? "." : "",
                              key);
        *out = def;
        return RF_OK;
    }
    if (!cJSON_IsString(v) || !v->valuestring[0])
        return rf_err_set(err, RF_EFORMAT, "%s: key '%s%s%s' must be a non-empty string", where, section,
                          *section ? "." : "", key);
    *out = v->valuestring;
    return RF_OK;
}

static void shape_str(char *out, size_t n, int ndim, const int64_t *dims)
{
    size_t used = (size_t)snprintf(out, n, "[");
    for (int i = 0; i < ndim && used < n; i++)
        used += (size_t)snprintf(out + used, n - used, "%s%lld", i ? ", " : "", (long long)dims[i]);
    if (used < n)
        snprintf(out + used, n - used, "]");
}

/* ---- the fusion weights ---- */

typedef struct wload {
    rf_fusion *f;
    rf_safetensors **files;
    int nfiles;
    const char *dir;
    rf_err *err;
    int64_t params;
} wload;

static const rf_st_tensor *wfind(const wload *W, const char *name, const char **path)
{
    for (int i = 0; i < W->nfiles; i++) {
        const rf_st_tensor *t = rf_safetensors_find(W->files[i], name);
        if (t) {
            if (path)
                *path = rf_safetensors_path(W->files[i]);
            return t;
        }
    }
    return NULL;
}

/*
 * Binds tensor name (shape want[0..ndim), leading 1s of the stored shape
 * ignored) into dst as f32 in the weight arena. why explains the expected
 * shape in the message. A missing tensor is an error when required.
 */
static int wbind(wload *W, rf_tensor *dst, const char *name, int required, int ndim, int64_t d0, int64_t d1,
                 const char *why)
{
    memset(dst, 0, sizeof *dst);
    const char *path = NULL;
    const rf_st_tensor *t = wfind(W, name, &path);
    if (!t) {
        if (!required)
            return RF_OK;
        return rf_err_set(W->err, RF_EFORMAT, "%s: missing tensor '%s'", W->dir, name);
    }
    int64_t want[2] = {d0, d1}, dims[8];
    int start = 0;
    /* leading 1s beyond the rank wanted are dropped ([1, D] for [D]); a
     * [1, D] weight of one label stays two-dimensional */
    while (t->ndim - start > ndim && t->shape[start] == 1)
        start++;
    int n = 0;
    for (int i = start; i < t->ndim; i++)
        dims[n++] = t->shape[i];
    int ok = n == ndim;
    for (int i = 0; ok && i < ndim; i++)
        ok = dims[i] == want[i];
    if (!ok) {
        char have[128], exp[128];
        shape_str(have, sizeof have, t->ndim, t->shape);
        shape_str(exp, sizeof exp, ndim, want);
        return rf_err_set(W->err, RF_EFORMAT, "%s: tensor '%s' has shape %s, %s implies %s", path, name, have, why,
                          exp);
    }
    *dst = rf_arena_tensor(&W->f->weights, RF_F32, ndim, want);
    if (!dst->data)
        return rf_err_set(W->err, RF_ENOMEM, "%s: weight arena exhausted at '%s'", W->dir, name);
    float *out = dst->data;
    int64_t count = rf_tensor_numel(dst);
    const uint8_t *src = t->data;
    for (int64_t i = 0; i < count; i++) {
        switch (t->dtype) {
        case RF_ST_F32: memcpy(&out[i], src + 4 * i, 4); break;
        case RF_ST_F16:
        case RF_ST_BF16: {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            out[i] = t->dtype == RF_ST_F16 ? rf_f16_to_f32(h) : rf_bf16_to_f32(h);
            break;
        }
        case RF_ST_F64: {
            double d;
            memcpy(&d, src + 8 * i, 8);
            out[i] = (float)d;
            break;
        }
        default:
            return rf_err_set(W->err, RF_EUNSUP, "%s: tensor '%s' has dtype %s; weights must be F32, F16, BF16 or F64",
                              path, name, rf_st_dtype_name(t->dtype));
        }
        if (!isfinite(out[i]))
            return rf_err_set(W->err, RF_EFORMAT, "%s: tensor '%s' holds a non-finite value at element %lld", path,
                              name, (long long)i);
    }
    W->params += count;
    return RF_OK;
}

static int wbind_linear(wload *W, rf_linear *l, const char *prefix, int required, int64_t out, int64_t in,
                        const char *why)
{
    char name[256];
    memset(l, 0, sizeof *l);
    snprintf(name, sizeof name, "%s.weight", prefix);
    int rc = wbind(W, &l->w, name, required, 2, out, in, why);
    if (!rc && l->w.data) {
        snprintf(name, sizeof name, "%s.bias", prefix);
        rc = wbind(W, &l->b, name, 0, 1, out, 0, why);
    }
    return rc;
}

static int wbind_norm(wload *W, rf_tensor *g, rf_tensor *b, const char *prefix, int64_t D, const char *why)
{
    char name[256];
    snprintf(name, sizeof name, "%s.weight", prefix);
    int rc = wbind(W, g, name, 1, 1, D, 0, why);
    if (!rc) {
        snprintf(name, sizeof name, "%s.bias", prefix);
        rc = wbind(W, b, name, 1, 1, D, 0, why);
    }
    return rc;
}

void rf_fusion_for_each_weight(rf_fusion *f, void (*fn)(rf_tensor *t, void *ctx), void *ctx)
{
    rf_tensor *singles[] = {&f->cls, &f->modality, &f->absent, &f->image_proj.w, &f->image_proj.b,
                            &f->text_proj.w, &f->text_proj.b, &f->time_embed.w, &f->time_embed.b,
                            &f->lab_code, &f->lab_value.w, &f->lab_value.b, &f->norm_g, &f->norm_b,
                            &f->head.w, &f->head.b};
    for (size_t i = 0; i < sizeof singles / sizeof singles[0]; i++)
        fn(singles[i], ctx);
    for (int i = 0; f->blocks && i < f->info.layers; i++) {
        rf_block *b = &f->blocks[i];
        rf_tensor *ts[] = {&b->qkv.w, &b->qkv.b, &b->proj.w, &b->proj.b, &b->fc1.w, &b->fc1.b, &b->fc2.w,
                           &b->fc2.b, &b->ln1_g, &b->ln1_b, &b->ln2_g, &b->ln2_b};
        for (size_t j = 0; j < sizeof ts / sizeof ts[0]; j++)
            fn(ts[j], ctx);
    }
}

/* Every linear layer of the fusion model, for preparing and releasing. */
static int fusion_linears(rf_fusion *f, rf_linear **out, int cap)
{
    int n = 0;
    rf_linear *singles[] = {&f->image_proj, &f->text_proj, &f->time_embed, &f->lab_value, &f->head};
    for (size_t i = 0; i < sizeof singles / sizeof singles[0]; i++)
        if (rf_linear_present(singles[i]) && n < cap)
            out[n++] = singles[i];
    for (int i = 0; f->blocks && i < f->info.layers; i++) {
        rf_linear *ls[] = {&f->blocks[i].qkv, &f->blocks[i].proj, &f->blocks[i].fc1, &f->blocks[i].fc2};
        for (int j = 0; j < 4; j++)
            if (rf_linear_present(ls[j]) && n < cap)
                out[n++] = ls[j];
    }
    return n;
}

static void walk_fusion(void *owner, void (*fn)(rf_tensor *t, void *ctx), void *ctx)
{
    rf_fusion_for_each_weight(owner, fn, ctx);
}

/* Prepares the linear layers and, on a device backend, moves every weight to
 * backend memory in one upload (as model_load.c does for encoders). */
static int weights_to_backend(rf_fusion *f, rf_err *err)
{
    rf_backend *be = f->be;
    rf_linear *ls[4 * 1024 + 8];
    int n = fusion_linears(f, ls, (int)(sizeof ls / sizeof ls[0]));
    for (int i = 0; i < n; i++) {
        int rc = be->ops->linear_prepare(be, ls[i], err);
        if (rc)
            return rc;
    }
    if (be->ops->host_addressable)
        return RF_OK;
    for (int i = 0; i < n; i++)
        if (ls[i]->prepared)
            ls[i]->w.data = NULL;
    return rf_weights_upload(be, walk_fusion, f, &f->weights, &f->weights_buf, "the fusion weights", err);
}

/* ---- the sections ---- */

typedef struct loadctx {
    rf_fusion *f;
    const char *dir;
    char config_path[4096];
    cJSON *root;
    rf_safetensors *files[MAX_SHARDS];
    int nfiles;
    rf_err *err;
} loadctx;

/* A section's "path": relative, no "..", no empty components. */
static int check_subdir(loadctx *C, const char *section, const char *path)
{
    if (path[0] == '/' || strlen(path) > 255)
        return rf_err_set(C->err, RF_EFORMAT, "%s: key '%s.path' must be a relative path inside the model directory",
                          C->config_path, section);
    const char *p = path;
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 0 || (len == 2 && p[0] == '.' && p[1] == '.') || (len == 1 && p[0] == '.'))
            return rf_err_set(C->err, RF_EFORMAT,
                              "%s: key '%s.path' must be a relative path inside the model directory (no '.', '..' "
                              "or empty parts)",
                              C->config_path, section);
        p += len + (slash ? 1 : 0);
    }
    return RF_OK;
}

/* Loads the encoder of section ("vision" or "text") into *m; sets *source. */
static int load_encoder(loadctx *C, const char *section, const cJSON *sec, rf_model **m, char **source,
                        char *subdir, size_t subdir_cap)
{
    subdir[0] = 0;
    if (!cJSON_IsObject(sec))
        return rf_err_set(C->err, RF_EFORMAT, "%s: key '%s' must be an object", C->config_path, section);
    const cJSON *path = cJSON_GetObjectItemCaseSensitive(sec, "path");
    int rc;
    if (path) {
        if (!cJSON_IsString(path) || !path->valuestring[0])
            return rf_err_set(C->err, RF_EFORMAT, "%s: key '%s.path' must be a non-empty string", C->config_path,
                              section);
        if (cJSON_GetArraySize(sec) != 1)
            return rf_err_set(C->err, RF_EFORMAT,
                              "%s: section '%s' has 'path' and other keys; it is either {\"path\": DIR} or an inline "
                              "config",
                              C->config_path, section);
        if ((rc = check_subdir(C, section, path->valuestring)))
            return rc;
        snprintf(subdir, subdir_cap, "%s/%s", C->dir, path->valuestring);
        struct stat sb;
        if (stat(subdir, &sb) != 0 || !S_ISDIR(sb.st_mode))
            return rf_err_set(C->err, RF_EIO, "%s: '%s.path' names '%s', which is not a directory", C->config_path,
                              section, subdir);
        char src[300];
        snprintf(src, sizeof src, "%s/", path->valuestring);
        *source = strdup(src);
        if (!*source)
            return rf_err_set(C->err, RF_ENOMEM, "out of memory");
        return rf_model_load(m, subdir, C->f->be, C->err);
    }
    char name[4200], prefix[32];
    snprintf(name, sizeof name, "%s: %s", C->config_path, section);
    snprintf(prefix, sizeof prefix, "%s.", section);
    *source = strdup("inline");
    if (!*source)
        return rf_err_set(C->err, RF_ENOMEM, "out of memory");
    rf_model_source s = {.config = sec, .config_name = name, .weights_name = C->dir, .files = C->files,
                         .nfiles = C->nfiles, .prefix = prefix};
    return rf_model_load_source(m, &s, C->f->be, C->err);
}

static int parse_act(const char *name, rf_act *act)
{
    static const struct {
        const char *name;
        rf_act act;
    } acts[] = {{"gelu", RF_ACT_GELU_ERF}, {"gelu_new", RF_ACT_GELU_TANH}, {"gelu_pytorch_tanh", RF_ACT_GELU_TANH},
                {"gelu_fast", RF_ACT_GELU_TANH}, {"relu", RF_ACT_RELU}};
    for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++)
        if (strcmp(name, acts[i].name) == 0) {
            *act = acts[i].act;
            return 1;
        }
    return 0;
}

static int load_fusion_section(loadctx *C, const cJSON *sec)
{
    rf_fusion *f = C->f;
    rf_fusion_info *in = &f->info;
    const char *P = C->config_path;
    if (!cJSON_IsObject(sec))
        return rf_err_set(C->err, RF_EFORMAT, "%s: missing object 'fusion'", P);
    int rc;
    const char *act = NULL, *attn = NULL;
    if ((rc = json_int(sec, P, "fusion", "hidden_size", 1, 0, 1, 1 << 14, &in->hidden, C->err)) ||
        (rc = json_int(sec, P, "fusion", "num_hidden_layers", 1, 0, 0, 256, &in->layers, C->err)) ||
        (rc = json_int(sec, P, "fusion", "num_attention_heads", 1, 0, 1, 256, &in->heads, C->err)) ||
        (rc = json_int(sec, P, "fusion", "intermediate_size", 1, 0, 1, 1 << 16, &in->intermediate, C->err)) ||
        (rc = json_int(sec, P, "fusion", "image_pool_grid", 0, 0, 0, 256, &in->image_pool_grid, C->err)) ||
        (rc = json_int(sec, P, "fusion", "max_text_tokens", 0, 128, 0, 1 << 16, &in->max_text_tokens, C->err)) ||
        (rc = json_int(sec, P, "fusion", "max_images", 0, 4, 1, 64, &in->max_images, C->err)) ||
        (rc = json_int(sec, P, "fusion", "max_prior_images", 0, 2, 0, 64, &in->max_prior_images, C->err)) ||
        (rc = json_str(sec, P, "fusion", "hidden_act", "gelu", &act, C->err)) ||
        (rc = json_str(sec, P, "fusion", "attention", "joint", &attn, C->err)))
        return rc;
    const cJSON *mods = cJSON_GetObjectItemCaseSensitive(sec, "image_modalities");
    if (mods && !cJSON_IsNull(mods)) {
        int n = cJSON_IsArray(mods) ? cJSON_GetArraySize(mods) : -1;
        if (n < 1 || n > RF_FUSION_MAX_MODALITIES)
            return rf_err_set(C->err, RF_EFORMAT, "%s: key 'fusion.image_modalities' must be an array of 1 to %d "
                              "DICOM Modality values", P, RF_FUSION_MAX_MODALITIES);
        const cJSON *m;
        cJSON_ArrayForEach(m, mods)
        {
            const char *v = cJSON_IsString(m) ? m->valuestring : "";
            size_t len = strlen(v);
            if (len < 1 || len > 16 || strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_ ") != len)
                return rf_err_set(C->err, RF_EFORMAT, "%s: key 'fusion.image_modalities' entries must be DICOM "
                                  "Modality values (A-Z, 0-9, _, 1-16 characters)", P);
            memcpy(in->image_modalities[in->nimage_modalities++], v, len + 1);
        }
    }
    if (!parse_act(act, &f->cfg.act))
        return rf_err_set(C->err, RF_EUNSUP, "%s: key 'fusion.hidden_act' '%s' is not supported (gelu, gelu_new, "
                          "gelu_pytorch_tanh, relu)", P, act);
    if (strcmp(attn, "joint") != 0 && strcmp(attn, "cross") != 0)
        return rf_err_set(C->err, RF_EFORMAT, "%s: key 'fusion.attention' must be \"joint\" or \"cross\"", P);
    in->cross_attention = strcmp(attn, "cross") == 0;
    if (in->hidden % in->heads)
        return rf_err_set(C->err, RF_EFORMAT, "%s: key 'fusion.hidden_size' %d is not a multiple of "
                          "'fusion.num_attention_heads' %d", P, in->hidden, in->heads);
    const cJSON *eps = cJSON_GetObjectItemCaseSensitive(sec, "layer_norm_eps");
    in->layer_norm_eps = 1e-6;
    if (eps && !cJSON_IsNull(eps)) {
        if (!cJSON_IsNumber(eps) || !(eps->valuedouble >= 0 && eps->valuedouble <= 1))
            return rf_err_set(C->err, RF_EFORMAT, "%s: key 'fusion.layer_norm_eps' must be a number in [0, 1]", P);
        in->layer_norm_eps = eps->valuedouble;
    }
    f->hidden_act = strdup(act);
    if (!f->hidden_act)
        return rf_err_set(C->err, RF_ENOMEM, "out of memory");
    in->hidden_act = f->hidden_act;
    f->cfg.hidden = in->hidden;
    f->cfg.heads = in->heads;
    f->cfg.pre_norm = 1;
    f->cfg.eps = (float)in->layer_norm_eps;
    f->intermediate = in->intermediate;
    return RF_OK;
}

/* Binds every fusion.* tensor, checking shapes against the config and the encoders. */
static int bind_fusion(loadctx *C, int K_labels)
{
    rf_fusion *f = C->f;
    rf_fusion_info *in = &f->info;
    int64_t D = in->hidden, I = in->intermediate, Dv = in->vision.info.hidden;
    size_t total = 0;
    for (int i = 0; i < C->nfiles; i++)
        for (size_t j = 0; j < rf_safetensors_count(C->files[i]); j++) {
            const rf_st_tensor *t = rf_safetensors_at(C->files[i], j);
            if (strncmp(t->name, "fusion.", 7) == 0) {
                size_t esz = rf_st_dtype_size(t->dtype);
                total += (esz ? t->nbytes / esz : 0) * 4 + 64;
            }
        }
    int rc = rf_arena_init(&f->weights, total + 4096, C->err);
    if (rc)
        return rc;
    wload W = {.f = f, .files = C->files, .nfiles = C->nfiles, .dir = C->dir, .err = C->err};
    /* the number of blocks stored must be the config's */
    int stored = 0;
    for (;; stored++) {
        char name[96];
        snprintf(name, sizeof name, "fusion.blocks.%d.norm1.weight", stored);
        if (!wfind(&W, name, NULL) || stored > 4096)
            break;
    }
    if (stored != in->layers)
        return rf_err_set(C->err, RF_EFORMAT, "%s: key 'fusion.num_hidden_layers' is %d, the weights hold %d fusion "
                          "blocks ('fusion.blocks.N.norm1.weight')", C->config_path, in->layers, stored);
    char why_d[128], why_v[160], why_t[160], why_i[128];
    snprintf(why_d, sizeof why_d, "fusion.hidden_size %lld", (long long)D);
    snprintf(why_v, sizeof why_v, "fusion.hidden_size %lld and the vision encoder's hidden size %lld", (long long)D,
             (long long)Dv);
    snprintf(why_i, sizeof why_i, "fusion.hidden_size %lld and fusion.intermediate_size %lld", (long long)D,
             (long long)I);
    if ((rc = wbind(&W, &f->cls, "fusion.cls_token", 1, 1, D, 0, why_d)) ||
        (rc = wbind(&W, &f->modality, "fusion.modality_embed", 1, 2, RF_MODALITY_COUNT, D, why_d)) ||
        (rc = wbind(&W, &f->absent, "fusion.absent_embed", 1, 2, RF_MODALITY_COUNT, D, why_d)) ||
        (rc = wbind_linear(&W, &f->image_proj, "fusion.image_proj", 1, D, Dv, why_v)) ||
        (rc = wbind_linear(&W, &f->time_embed, "fusion.time_embed", 1, D, RF_FUSION_TIME_FEATURES, why_d)) ||
        (rc = wbind_linear(&W, &f->lab_value, "fusion.lab_value", 1, D, RF_LAB_TOKEN_FEATURES, why_d)))
        return rc;
    if (in->text.present) {
        int64_t Dt = in->text.info.hidden;
        snprintf(why_t, sizeof why_t, "fusion.hidden_size %lld and the text encoder's hidden size %lld",
                 (long long)D, (long long)Dt);
        if ((rc = wbind_linear(&W, &f->text_proj, "fusion.text_proj", 1, D, Dt, why_t)))
            return rc;
    } else if (wfind(&W, "fusion.text_proj.weight", NULL)) {
        return rf_err_set(C->err, RF_EFORMAT, "%s: the weights hold 'fusion.text_proj.weight' but config.json has no "
                          "'text' section", C->dir);
    }
    /* the lab code table: any number of rows (the lab table only grows) */
    const char *lpath = NULL;
    const rf_st_tensor *lc = wfind(&W, "fusion.lab_code.weight", &lpath);
    if (!lc)
        return rf_err_set(C->err, RF_EFORMAT, "%s: missing tensor 'fusion.lab_code.weight'", C->dir);
    if (lc->ndim != 2 || lc->shape[0] < 1 || lc->shape[0] > (1 << 20) || lc->shape[1] != D) {
        char have[128];
        shape_str(have, sizeof have, lc->ndim, lc->shape);
        return rf_err_set(C->err, RF_EFORMAT, "%s: tensor 'fusion.lab_code.weight' has shape %s, %s implies [labs, %lld]",
                          lpath, have, why_d, (long long)D);
    }
    in->lab_codes = (int)lc->shape[0];
    if ((rc = wbind(&W, &f->lab_code, "fusion.lab_code.weight", 1, 2, lc->shape[0], D, why_d)))
        return rc;
    f->blocks = calloc((size_t)(in->layers > 0 ? in->layers : 1), sizeof *f->blocks);
    if (!f->blocks)
        return rf_err_set(C->err, RF_ENOMEM, "out of memory");
    for (int i = 0; i < in->layers; i++) {
        rf_block *b = &f->blocks[i];
        char p[96];
        snprintf(p, sizeof p, "fusion.blocks.%d.norm1", i);
        if ((rc = wbind_norm(&W, &b->ln1_g, &b->ln1_b, p, D, why_d)))
            return rc;
        snprintf(p, sizeof p, "fusion.blocks.%d.attn.qkv", i);
        if ((rc = wbind_linear(&W, &b->qkv, p, 1, 3 * D, D, why_d)))
            return rc;
        snprintf(p, sizeof p, "fusion.blocks.%d.attn.proj", i);
        if ((rc = wbind_linear(&W, &b->proj, p, 1, D, D, why_d)))
            return rc;
        snprintf(p, sizeof p, "fusion.blocks.%d.norm2", i);
        if ((rc = wbind_norm(&W, &b->ln2_g, &b->ln2_b, p, D, why_d)))
            return rc;
        snprintf(p, sizeof p, "fusion.blocks.%d.mlp.fc1", i);
        if ((rc = wbind_linear(&W, &b->fc1, p, 1, I, D, why_i)))
            return rc;
        snprintf(p, sizeof p, "fusion.blocks.%d.mlp.fc2", i);
        if ((rc = wbind_linear(&W, &b->fc2, p, 1, D, I, why_i)))
            return rc;
    }
    if ((rc = wbind_norm(&W, &f->norm_g, &f->norm_b, "fusion.norm", D, why_d)))
        return rc;
    /* the head: its rows are the findings of labels.json */
    const char *hpath = NULL;
    const rf_st_tensor *hw = wfind(&W, "fusion.head.weight", &hpath);
    if (!hw)
        return rf_err_set(C->err, RF_EFORMAT, "%s: missing tensor 'fusion.head.weight'", C->dir);
    if (hw->ndim == 2 && hw->shape[1] == D && hw->shape[0] != K_labels)
        return rf_err_set(C->err, RF_EFORMAT, "%s/labels.json: %d labels, but tensor 'fusion.head.weight' in %s has %lld "
                          "rows", C->dir, K_labels, hpath, (long long)hw->shape[0]);
    char why_k[160];
    snprintf(why_k, sizeof why_k, "labels.json's %d labels and fusion.hidden_size %lld", K_labels, (long long)D);
    rf_tensor temp;
    if ((rc = wbind_linear(&W, &f->head, "fusion.head", 1, K_labels, D, why_k)) ||
        (rc = wbind(&W, &temp, "fusion.head.temperature", 1, 1, K_labels, 0, why_k)))
        return rc;
    f->temperature = malloc((size_t)K_labels * sizeof(float));
    if (!f->temperature)
        return rf_err_set(C->err, RF_ENOMEM, "out of memory");
    memcpy(f->temperature, temp.data, (size_t)K_labels * sizeof(float));
    for (int k = 0; k < K_labels; k++)
        if (!(f->temperature[k] > 0)) {
            const char *tpath = NULL;
            wfind(&W, "fusion.head.temperature", &tpath);
            return rf_err_set(C->err, RF_EFORMAT, "%s: tensor 'fusion.head.temperature' element %d is %g; temperatures "
                              "must be > 0", tpath, k, (double)f->temperature[k]);
        }
    in->fusion_params = W.params;
    return RF_OK;
}

/* labels.json: [{"code", "display", "threshold", "system"?, "system_code"?}, ...] */
static int load_labels(loadctx *C, int *count)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/labels.json", C->dir);
    char *text = NULL;
    size_t len = 0;
    int rc = rf_read_file(path, LABELS_MAX_BYTES, &text, &len, C->err);
    if (rc)
        return rc;
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    if (!cJSON_IsArray(root)) {
        cJSON_Delete(root);
        return rf_err_set(C->err, RF_EFORMAT, "%s: not a JSON array of labels", path);
    }
    int n = cJSON_GetArraySize(root);
    if (n < 1 || n > MAX_LABELS) {
        cJSON_Delete(root);
        return rf_err_set(C->err, RF_EFORMAT, "%s: %d labels; expected 1 to %d", path, n, MAX_LABELS);
    }
    C->f->labels = calloc((size_t)n, sizeof *C->f->labels);
    if (!C->f->labels) {
        cJSON_Delete(root);
        return rf_err_set(C->err, RF_ENOMEM, "out of memory");
    }
    C->f->info.nlabels = n;
    C->f->info.labels = C->f->labels;
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, root)
    {
        rf_fusion_label *l = &C->f->labels[i];
        char where[32];
        snprintf(where, sizeof where, "[%d]", i);
        if (!cJSON_IsObject(e)) {
            rc = rf_err_set(C->err, RF_EFORMAT, "%s: label %s is not an object", path, where);
            break;
        }
        const char *code, *display, *system = NULL, *scode = NULL;
        if ((rc = json_str(e, path, where, "code", NULL, &code, C->err)) ||
            (rc = json_str(e, path, where, "display", NULL, &display, C->err)))
            break;
        if (cJSON_GetObjectItemCaseSensitive(e, "system") &&
            (rc = json_str(e, path, where, "system", NULL, &system, C->err)))
            break;
        if (cJSON_GetObjectItemCaseSensitive(e, "system_code") &&
            (rc = json_str(e, path, where, "system_code", NULL, &scode, C->err)))
            break;
        const cJSON *th = cJSON_GetObjectItemCaseSensitive(e, "threshold");
        if (!cJSON_IsNumber(th) || !(th->valuedouble > 0 && th->valuedouble < 1)) {
            rc = rf_err_set(C->err, RF_EFORMAT, "%s: key '%s.threshold' must be a number in (0, 1)", path, where);
            break;
        }
        for (int j = 0; j < i; j++)
            if (strcmp(C->f->labels[j].code, code) == 0) {
                rc = rf_err_set(C->err, RF_EFORMAT, "%s: key '%s.code' repeats the code of label [%d]", path, where, j);
                break;
            }
        if (rc)
            break;
        l->code = dupstr(code);
        l->display = dupstr(display);
        l->system = dupstr(system);
        l->system_code = dupstr(scode);
        l->threshold = th->valuedouble;
        if (!l->code || !l->display || (system && !l->system) || (scode && !l->system_code)) {
            rc = rf_err_set(C->err, RF_ENOMEM, "out of memory");
            break;
        }
        i++;
    }
    cJSON_Delete(root);
    *count = n;
    return rc;
}

/* ---- hashing ---- */

static int add_file(loadctx *C, const char *path, const char *role)
{
    rf_fusion *f = C->f;
    for (int i = 0; i < f->nfiles; i++)
        if (strcmp(f->files[i].path, path) == 0)
            return RF_OK;
    if (f->nfiles == RF_FUSION_MAX_FILES)
        return rf_err_set(C->err, RF_EFORMAT, "%s: more than %d files", C->dir, RF_FUSION_MAX_FILES);
    rf_fusion_file *fl = &f->files[f->nfiles];
    memset(fl, 0, sizeof *fl);
    fl->path = strdup(path);
    if (!fl->path)
        return rf_err_set(C->err, RF_ENOMEM, "out of memory");
    f->nfiles++;
    size_t dl = strlen(C->dir);
    fl->name = strncmp(path, C->dir, dl) == 0 && path[dl] == '/' ? fl->path + dl + 1 : fl->path;
    fl->role = role;
    struct stat sb;
    if (stat(path, &sb) != 0)
        return rf_err_set(C->err, RF_EIO, "%s: %s", path, strerror(errno));
    fl->bytes = (int64_t)sb.st_size;
    return rf_sha256_file(path, fl->sha256, C->err);
}

static int hash_files(loadctx *C, const char *vision_dir, const char *text_dir)
{
    rf_fusion *f = C->f;
    char path[4300];
    int rc;
    f->files = calloc(RF_FUSION_MAX_FILES, sizeof *f->files);
    if (!f->files)
        return rf_err_set(C->err, RF_ENOMEM, "out of memory");
    snprintf(path, sizeof path, "%s/labels.json", C->dir);
    if ((rc = add_file(C, C->config_path, "config")) || (rc = add_file(C, path, "labels")))
        return rc;
    if (f->vocab_path && (rc = add_file(C, f->vocab_path, "vocab")))
        return rc;
    if (f->preprocess_path && (rc = add_file(C, f->preprocess_path, "preprocess")))
        return rc;
    const char *subs[2] = {vision_dir, text_dir};
    for (int s = 0; s < 2; s++)
        if (subs[s][0]) {
            snprintf(path, sizeof path, "%s/config.json", subs[s]);
            if ((rc = add_file(C, path, "config")))
                return rc;
        }
    rf_model *ms[2] = {f->vision, f->text};
    for (int s = 0; s < 2; s++)
        for (int i = 0; ms[s] && subs[s][0] && rf_model_weight_file(ms[s], i); i++)
            if ((rc = add_file(C, rf_model_weight_file(ms[s], i), "weights")))
                return rc;
    for (int i = 0; i < C->nfiles; i++)
        if ((rc = add_file(C, rf_safetensors_path(C->files[i]), "weights")))
            return rc;
    rf_sha256 h;
    rf_sha256_init(&h);
    for (int i = 0; i < f->nfiles; i++) {
        rf_sha256_update(&h, f->files[i].sha256, 64);
        rf_sha256_update(&h, "  ", 2);
        rf_sha256_update(&h, f->files[i].name, strlen(f->files[i].name));
        rf_sha256_update(&h, "\n", 1);
    }
    uint8_t d[32];
    rf_sha256_final(&h, d);
    rf_sha256_hex(d, f->info.sha256);
    f->info.nfiles = f->nfiles;
    f->info.files = f->files;
    return RF_OK;
}

/* ---- the whole directory ---- */

int rf_fusion_is_model_dir(const char *dir)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    cJSON *root = NULL;
    rf_err err;
    if (rf_json_read_object(path, CONFIG_MAX_BYTES, &root, &err))
        return 0;
    int yes = cJSON_GetObjectItemCaseSensitive(root, "format") != NULL ||
              cJSON_GetObjectItemCaseSensitive(root, "fusion") != NULL;
    cJSON_Delete(root);
    return yes;
}

static int load_all(loadctx *C)
{
    rf_fusion *f = C->f;
    rf_fusion_info *in = &f->info;
    rf_err *err = C->err;
    const char *P = C->config_path;
    int rc = rf_json_read_object(P, CONFIG_MAX_BYTES, &C->root, err);
    if (rc)
        return rc;
    const char *format, *name, *version;
    if ((rc = json_str(C->root, P, "", "format", NULL, &format, err)) ||
        (rc = json_str(C->root, P, "", "name", NULL, &name, err)) ||
        (rc = json_str(C->root, P, "", "version", NULL, &version, err)))
        return rc;
    if (strcmp(format, RF_FUSION_FORMAT) != 0)
        return rf_err_set(err, RF_EUNSUP, "%s: key 'format' is \"%s\"; this radfuse reads \"%s\"", P, format,
                          RF_FUSION_FORMAT);
    f->format = strdup(format);
    f->name = strdup(name);
    f->version = strdup(version);
    if (!f->format || !f->name || !f->version)
        return rf_err_set(err, RF_ENOMEM, "out of memory");
    in->format = f->format;
    in->name = f->name;
    in->version = f->version;
    /* the directory's own weights: fusion.* and any inline encoder */
    if ((rc = rf_weights_open(C->dir, C->files, MAX_SHARDS, &C->nfiles, err)))
        return rc;
    for (int i = 0; i < C->nfiles; i++)
        for (size_t j = 0; j < rf_safetensors_count(C->files[i]); j++) {
            const char *tn = rf_safetensors_at(C->files[i], j)->name;
            if (strncmp(tn, "fusion.", 7) && strncmp(tn, "vision.", 7) && strncmp(tn, "text.", 5))
                return rf_err_set(err, RF_EFORMAT,
                                  "%s: tensor '%s' is under none of the prefixes fusion., vision., text.",
                                  rf_safetensors_path(C->files[i]), tn);
        }
    char vision_dir[4200], text_dir[4200];
    const cJSON *vs = cJSON_GetObjectItemCaseSensitive(C->root, "vision");
    if (!vs)
        return rf_err_set(err, RF_EFORMAT, "%s: missing key 'vision'", P);
    if ((rc = load_encoder(C, "vision", vs, &f->vision, &f->vision_source, vision_dir, sizeof vision_dir)))
        return rc;
    in->vision.present = 1;
    in->vision.source = f->vision_source;
    in->vision.info = *rf_model_get_info(f->vision);
    if (in->vision.info.arch == RF_ARCH_BERT)
        return rf_err_set(err, RF_EFORMAT, "%s: section 'vision' is a BertModel, not a vision encoder", P);
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(C->root, "text");
    text_dir[0] = 0;
    if (ts && !cJSON_IsNull(ts)) {
        if ((rc = load_encoder(C, "text", ts, &f->text, &f->text_source, text_dir, sizeof text_dir)))
            return rc;
        in->text.present = 1;
        in->text.source = f->text_source;
        in->text.info = *rf_model_get_info(f->text);
        if (in->text.info.arch != RF_ARCH_BERT)
            return rf_err_set(err, RF_EFORMAT, "%s: section 'text' is a %s, not a BertModel", P,
                              rf_arch_name(in->text.info.arch));
        /* vocab.txt: the text subdirectory's, else the model directory's */
        char vp[4300];
        snprintf(vp, sizeof vp, "%s/vocab.txt", text_dir[0] ? text_dir : C->dir);
        if (text_dir[0] && !file_exists(vp))
            snprintf(vp, sizeof vp, "%s/vocab.txt", C->dir);
        if (!file_exists(vp))
            return rf_err_set(err, RF_EIO, "%s/vocab.txt: missing (the text encoder needs its WordPiece vocabulary)",
                              text_dir[0] ? text_dir : C->dir);
        if ((rc = rf_vocab_load(vp, &f->vocab, err)))
            return rc;
        int32_t nv = rf_vocab_size(f->vocab);
        if (nv != in->text.info.vocab_size)
            return rf_err_set(err, RF_EFORMAT, "%s: %d tokens, but the text encoder's 'vocab_size' is %d", vp, nv,
                              in->text.info.vocab_size);
        f->vocab_path = strdup(vp);
        if (!f->vocab_path)
            return rf_err_set(err, RF_ENOMEM, "out of memory");
        in->vocab_path = f->vocab_path;
    }
    if ((rc = load_fusion_section(C, cJSON_GetObjectItemCaseSensitive(C->root, "fusion"))))
        return rc;
    int grid = in->vision.info.arch == RF_ARCH_DINOV2 ? 0 : in->vision.info.image_size / in->vision.info.patch_size;
    if (in->image_pool_grid && grid && in->image_pool_grid > grid)
        return rf_err_set(err, RF_EFORMAT, "%s: key 'fusion.image_pool_grid' %d exceeds the vision encoder's %dx%d "
                          "patch grid", P, in->image_pool_grid, grid, grid);
    int K = 0;
    if ((rc = load_labels(C, &K)) || (rc = bind_fusion(C, K)))
        return rc;
    for (int k = 0; k < K; k++)
        f->labels[k].temperature = f->temperature[k];
    /* what the vision encoder takes */
    char pp[4300];
    snprintf(pp, sizeof pp, "%s/preprocessor_config.json", vision_dir[0] ? vision_dir : C->dir);
    if (vision_dir[0] && !file_exists(pp))
        snprintf(pp, sizeof pp, "%s/preprocessor_config.json", C->dir);
    const rf_model_info *vi = &in->vision.info;
    rf_preprocess_config_init(&in->preprocess, vi->image_size, vi->image_size, vi->channels);
    if (file_exists(pp)) {
        if ((rc = rf_preprocess_config_load(pp, &in->preprocess, err)))
            return rc;
        f->preprocess_path = strdup(pp);
        if (!f->preprocess_path)
            return rf_err_set(err, RF_ENOMEM, "out of memory");
        in->preprocess_path = f->preprocess_path;
        in->has_preprocess_file = 1;
        const rf_preprocess_config *pc = &in->preprocess;
        int size_ok = vi->arch == RF_ARCH_DINOV2
                          ? pc->height % vi->patch_size == 0 && pc->width % vi->patch_size == 0
                          : pc->height == vi->image_size && pc->width == vi->image_size;
        if (!size_ok)
            return rf_err_set(err, RF_EFORMAT, "%s: key 'crop_size' / 'size' gives %dx%d images, the vision encoder "
                              "takes %dx%d (patch %d)", pp, pc->height, pc->width, vi->image_size, vi->image_size,
                              vi->patch_size);
        if (pc->channels != vi->channels)
            return rf_err_set(err, RF_EFORMAT, "%s: %d channels, the vision encoder takes %d", pp, pc->channels,
                              vi->channels);
    }
    char card[4300];
    snprintf(card, sizeof card, "%s/MODEL_CARD.md", C->dir);
    if (file_exists(card)) {
        f->model_card = strdup(card);
        in->model_card = f->model_card;
    }
    if ((rc = hash_files(C, vision_dir, text_dir)))
        return rc;
    return weights_to_backend(f, err);
}

int rf_fusion_load(rf_fusion **out, const char *dir, rf_backend *be, rf_err *err)
{
    *out = NULL;
    rf_fusion *f = calloc(1, sizeof *f);
    if (!f)
        return rf_err_set(err, RF_ENOMEM, "%s: cannot allocate a model", dir);
    f->be = be;
    f->dir = strdup(dir);
    f->info.dir = f->dir;
    f->info.backend = rf_backend_name(be);
    loadctx *C = calloc(1, sizeof *C);
    if (!f->dir || !C) {
        free(C);
        rf_fusion_free(f);
        return rf_err_set(err, RF_ENOMEM, "%s: cannot allocate a model", dir);
    }
    C->f = f;
    C->dir = dir;
    C->err = err;
    snprintf(C->config_path, sizeof C->config_path, "%s/config.json", dir);
    int rc = load_all(C);
    cJSON_Delete(C->root);
    for (int i = 0; i < C->nfiles; i++)
        rf_safetensors_close(C->files[i]);
    free(C);
    if (rc) {
        rf_fusion_free(f);
        return rc;
    }
    *out = f;
    return RF_OK;
}

void rf_fusion_free(rf_fusion *f)
{
    if (!f)
        return;
    if (f->be) {
        rf_linear *ls[4 * 1024 + 8];
        int n = fusion_linears(f, ls, (int)(sizeof ls / sizeof ls[0]));
        for (int i = 0; i < n; i++)
            if (ls[i]->prepared)
                f->be->ops->linear_release(f->be, ls[i]);
        if (f->weights_buf)
            f->be->ops->buffer_free(f->be, f->weights_buf);
        if (f->activations_buf)
            f->be->ops->buffer_free(f->be, f->activations_buf);
    }
    rf_arena_free(&f->weights);
    rf_arena_free(&f->activations);
    rf_model_free(f->vision);
    rf_model_free(f->text);
    rf_vocab_free(f->vocab);
    free(f->blocks);
    free(f->temperature);
    for (int i = 0; f->labels && i < f->info.nlabels; i++) {
        free((char *)f->labels[i].code);
        free((char *)f->labels[i].display);
        free((char *)f->labels[i].system);
        free((char *)f->labels[i].system_code);
    }
    free(f->labels);
    for (int i = 0; i < f->nfiles; i++)
        free((char *)f->files[i].path);
    free(f->files);
    free(f->dir);
    free(f->name);
    free(f->version);
    free(f->format);
    free(f->hidden_act);
    free(f->vision_source);
    free(f->text_source);
    free(f->preprocess_path);
    free(f->vocab_path);
    free(f->model_card);
    free(f);
}

const rf_fusion_info *rf_fusion_get_info(const rf_fusion *f)
{
    return &f->info;
}

int rf_fusion_encode_note(rf_fusion *f, const char *text, size_t len, rf_text_encoding *out, rf_err *err)
{
    memset(out, 0, sizeof *out);
    if (!f->text)
        return rf_err_set(err, RF_EINVAL, "%s: the model has no text encoder", f->dir);
    return rf_text_encode(f->text, f->vocab, text, len, NULL, out, err);
}
