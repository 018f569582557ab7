/* radfuse model info | run | random: checkpoints and the parity harness. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "fusion/fusion_model.h"
#include "runtime/fileio.h"
#include "runtime/sha256.h"

/* ---- model info ---- */

static const char *aspect_name(rf_preprocess_aspect a)
{
    switch (a) {
    case RF_PREPROCESS_CROP: return "crop";
    case RF_PREPROCESS_PAD: return "pad";
    case RF_PREPROCESS_STRETCH: return "stretch";
    case RF_PREPROCESS_NONE: return "none";
    }
    return "?";
}

/* The first lines of the model card (at most 6 non-empty ones), one string. */
static char *card_lines(const char *path)
{
    char *text = NULL;
    size_t n = 0;
    rf_err err;
    if (!path || rf_read_file(path, 1 << 20, &text, &n, &err))
        return NULL;
    char *out = calloc(n + 1, 1);
    if (!out) {
        free(text);
        return NULL;
    }
    size_t used = 0;
    int lines = 0;
    for (char *p = text; *p && lines < 6;) {
        char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (len > 0) {
            memcpy(out + used, p, len);
            used += len;
            out[used++] = '\n';
            lines++;
        }
        p += len + (nl ? 1 : 0);
    }
    if (used)
        out[used - 1] = 0;
    free(text);
    return out;
}

static cJSON *encoder_json(const rf_fusion_encoder *e)
{
    cJSON *o = cJSON_CreateObject();
    const rf_model_info *in = &e->info;
    cJSON_AddStringToObject(o, "source", e->source);
    cJSON_AddStringToObject(o, "architecture", rf_arch_name(in->arch));
    cJSON_AddNumberToObject(o, "hidden_size", in->hidden);
    cJSON_AddNumberToObject(o, "layers", in->layers);
    cJSON_AddNumberToObject(o, "heads", in->heads);
    cJSON_AddNumberToObject(o, "intermediate_size", in->intermediate);
    if (in->arch == RF_ARCH_BERT) {
        cJSON_AddNumberToObject(o, "vocab_size", in->vocab_size);
        cJSON_AddNumberToObject(o, "max_positions", in->max_positions);
    } else {
        cJSON_AddNumberToObject(o, "image_size", in->image_size);
        cJSON_AddNumberToObject(o, "patch_size", in->patch_size);
        cJSON_AddNumberToObject(o, "channels", in->channels);
    }
    cJSON_AddNumberToObject(o, "parameters", (double)in->param_count);
    return o;
}

static void print_encoder(const char *label, const rf_fusion_encoder *e)
{
    const rf_model_info *in = &e->info;
    printf("%-13s %s (%s): %d layers, hidden %d, %d heads, MLP %d, %lld parameters\n", label,
           rf_arch_name(in->arch), e->source, in->layers, in->hidden, in->heads, in->intermediate,
           (long long)in->param_count);
    if (in->arch == RF_ARCH_BERT)
        printf("%-13s vocabulary %d, up to %d tokens per window\n", "", in->vocab_size, in->max_positions);
    else
        printf("%-13s %d channels, %dx%d, patch %d\n", "", in->channels, in->image_size, in->image_size,
               in->patch_size);
}

/* `model info` of a model directory (docs/model-dir.md). */
static int fusion_info(const char *dir, int json)
{
    rf_backend *be;
    if (cli_backend(&be, "cpu", 1))
        return CLI_EXIT_FAIL;
    rf_fusion *f;
    rf_err err;
    if (rf_fusion_load(&f, dir, be, &err)) {
        rf_backend_destroy(be);
        return cli_fail("%s", err.msg);
    }
    const rf_fusion_info *in = rf_fusion_get_info(f);
    const rf_preprocess_config *pc = &in->preprocess;
    char *card = card_lines(in->model_card);
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "dir", dir);
        cJSON_AddStringToObject(o, "format", in->format);
        cJSON_AddStringToObject(o, "name", in->name);
        cJSON_AddStringToObject(o, "version", in->version);
        cJSON_AddStringToObject(o, "sha256", in->sha256);
        cJSON_AddItemToObject(o, "vision", encoder_json(&in->vision));
        if (in->text.present)
            cJSON_AddItemToObject(o, "text", encoder_json(&in->text));
        else
            cJSON_AddNullToObject(o, "text");
        cJSON *fz = cJSON_AddObjectToObject(o, "fusion");
        cJSON_AddNumberToObject(fz, "hidden_size", in->hidden);
        cJSON_AddNumberToObject(fz, "layers", in->layers);
        cJSON_AddNumberToObject(fz, "heads", in->heads);
        cJSON_AddNumberToObject(fz, "intermediate_size", in->intermediate);
        cJSON_AddStringToObject(fz, "hidden_act", in->hidden_act);
        cJSON_AddNumberToObject(fz, "layer_norm_eps", in->layer_norm_eps);
        cJSON_AddStringToObject(fz, "attention", in->cross_attention ? "cross" : "joint");
        cJSON_AddNumberToObject(fz, "image_pool_grid", in->image_pool_grid);
        cJSON_AddNumberToObject(fz, "max_text_tokens", in->max_text_tokens);
        cJSON_AddNumberToObject(fz, "max_images", in->max_images);
        cJSON_AddNumberToObject(fz, "max_prior_images", in->max_prior_images);
        cJSON *mods = cJSON_AddArrayToObject(fz, "image_modalities");
        for (int k = 0; k < in->nimage_modalities; k++)
            cJSON_AddItemToArray(mods, cJSON_CreateString(in->image_modalities[k]));
        cJSON_AddNumberToObject(fz, "lab_codes", in->lab_codes);
        cJSON_AddNumberToObject(fz, "parameters", (double)in->fusion_params);
        cJSON *pp = cJSON_AddObjectToObject(o, "preprocess");
        cJSON_AddStringToObject(pp, "source", in->has_preprocess_file ? in->preprocess_path : "defaults");
        cJSON_AddNumberToObject(pp, "height", pc->height);
        cJSON_AddNumberToObject(pp, "width", pc->width);
        cJSON_AddNumberToObject(pp, "channels", pc->channels);
        cJSON_AddStringToObject(pp, "aspect", aspect_name(pc->aspect));
        cJSON_AddStringToObject(pp, "filter", rf_preprocess_filter_name(pc->filter));
        cJSON *labels = cJSON_AddArrayToObject(o, "labels");
        for (int k = 0; k < in->nlabels; k++) {
            const rf_fusion_label *l = &in->labels[k];
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "code", l->code);
            cJSON_AddStringToObject(e, "display", l->display);
            cJSON_AddNumberToObject(e, "threshold", l->threshold);
            cJSON_AddNumberToObject(e, "temperature", l->temperature);
            if (l->system)
                cJSON_AddStringToObject(e, "system", l->system);
            if (l->system_code)
                cJSON_AddStringToObject(e, "system_code", l->system_code);
            cJSON_AddItemToArray(labels, e);
        }
        cJSON *files = cJSON_AddArrayToObject(o, "files");
        for (int i = 0; i < in->nfiles; i++) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "file", in->files[i].name);
            cJSON_AddStringToObject(e, "role", in->files[i].role);
            cJSON_AddNumberToObject(e, "bytes", (double)in->files[i].bytes);
            cJSON_AddStringToObject(e, "sha256", in->files[i].sha256);
            cJSON_AddItemToArray(files, e);
        }
        if (card)
            cJSON_AddStringToObject(o, "model_card", card);
        else
            cJSON_AddNullToObject(o, "model_card");
        char *text = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        if (text)
            printf("%s\n", text);
        cJSON_free(text);
    } else {
        printf("model         %s\n", dir);
        printf("name          %s %s (%s)\n", in->name, in->version, in->format);
        printf("sha256        %s\n", in->sha256);
        print_encoder("vision", &in->vision);
        if (in->text.present) {
            print_encoder("text", &in->text);
            printf("%-13s vocabulary file %s\n", "", in->vocab_path);
        } else {
            printf("text          none (the text input is always absent)\n");
        }
        printf("fusion        %d layers, hidden %d, %d heads, MLP %d, %s, eps %g, %s attention, %lld parameters\n",
               in->layers, in->hidden, in->heads, in->intermediate, in->hidden_act, in->layer_norm_eps,
               in->cross_attention ? "cross" : "joint", (long long)in->fusion_params);
        if (in->image_pool_grid)
            printf("tokens        per image CLS + %dx%d pooled patches;", in->image_pool_grid, in->image_pool_grid);
        else
            printf("tokens        per image CLS + every patch;");
        printf(" up to %d images, %d prior images, %d text tokens; %d lab codes\n", in->max_images,
               in->max_prior_images, in->max_text_tokens, in->lab_codes);
        printf("modalities   ");
        for (int k = 0; k < in->nimage_modalities; k++)
            printf(" %s", in->image_modalities[k]);
        printf("%s\n", in->nimage_modalities ? "" : " any");
        printf("preprocess    %dx%d, %d channels, %s, %s (%s)\n", pc->height, pc->width, pc->channels,
               aspect_name(pc->aspect), rf_preprocess_filter_name(pc->filter),
               in->has_preprocess_file ? in->preprocess_path : "defaults");
        printf("labels        %d findings\n", in->nlabels);
        for (int k = 0; k < in->nlabels; k++) {
            const rf_fusion_label *l = &in->labels[k];
            printf("  %-16s threshold %.3f  temperature %.4f  %s", l->code, l->threshold, l->temperature,
                   l->display);
            if (l->system)
                printf("  (%s %s)", l->system, l->system_code ? l->system_code : "");
            printf("\n");
        }
        printf("files\n");
        for (int i = 0; i < in->nfiles; i++)
            printf("  %s  %12lld  %-10s %s\n", in->files[i].sha256, (long long)in->files[i].bytes,
                   in->files[i].role, in->files[i].name);
        printf("backend       %s\n", in->backend);
        if (card) {
            printf("model card    %s\n", in->model_card);
            for (char *p = card; *p;) {
                char *nl = strchr(p, '\n');
                size_t len = nl ? (size_t)(nl - p) : strlen(p);
                printf("  %.*s\n", (int)len, p);
                p += len + (nl ? 1 : 0);
            }
        } else {
            printf("model card    none\n");
        }
    }
    free(card);
    rf_fusion_free(f);
    rf_backend_destroy(be);
    return CLI_EXIT_OK;
}

static int model_info(int argc, char **argv)
{
    const char *dir = NULL;
    int json = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else if (argv[i][0] == '-')
            return cli_fail("model info: unknown option '%s'", argv[i]);
        else if (!dir)
            dir = argv[i];
        else
            return cli_fail("model info: more than one directory given");
    }
    if (!dir)
        return cli_fail("model info: usage: radfuse model info DIR [--json]");
    if (rf_fusion_is_model_dir(dir))
        return fusion_info(dir, json);
    rf_backend *be;
    if (cli_backend(&be, "cpu", 1))
        return CLI_EXIT_FAIL;
    rf_model *m;
    rf_err err;
    if (rf_model_load(&m, dir, be, &err)) {
        rf_backend_destroy(be);
        return cli_fail("%s", err.msg);
    }
    const rf_model_info *in = rf_model_get_info(m);
    char hashes[256][65];
    int nfiles = 0, rc = 0;
    for (; rf_model_weight_file(m, nfiles) && nfiles < 256; nfiles++)
        if ((rc = rf_sha256_file(rf_model_weight_file(m, nfiles), hashes[nfiles], &err)))
            break;
    if (rc) {
        rf_model_free(m);
        rf_backend_destroy(be);
        return cli_fail("%s", err.msg);
    }
    int vision = in->arch != RF_ARCH_BERT;
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "dir", dir);
        cJSON_AddStringToObject(o, "architecture", rf_arch_name(in->arch));
        cJSON_AddNumberToObject(o, "hidden_size", in->hidden);
        cJSON_AddNumberToObject(o, "layers", in->layers);
        cJSON_AddNumberToObject(o, "heads", in->heads);
        cJSON_AddNumberToObject(o, "intermediate_size", in->intermediate);
        if (vision) {
            cJSON_AddNumberToObject(o, "image_size", in->image_size);
            cJSON_AddNumberToObject(o, "patch_size", in->patch_size);
            cJSON_AddNumberToObject(o, "channels", in->channels);
            cJSON_AddNumberToObject(o, "num_classes", in->num_classes);
        } else {
            cJSON_AddNumberToObject(o, "vocab_size", in->vocab_size);
            cJSON_AddNumberToObject(o, "max_positions", in->max_positions);
        }
        cJSON_AddNumberToObject(o, "parameters", (double)in->param_count);
        cJSON_AddNumberToObject(o, "tensors", (double)in->tensor_count);
        cJSON *dt = cJSON_AddObjectToObject(o, "dtypes");
        for (int t = 0; t < RF_ST_DTYPE_COUNT; t++)
            if (in->dtype_counts[t])
                cJSON_AddNumberToObject(dt, rf_st_dtype_name((rf_st_dtype)t), (double)in->dtype_counts[t]);
        cJSON *w = cJSON_AddArrayToObject(o, "weights");
        for (int i = 0; i < nfiles; i++) {
            cJSON *f = cJSON_CreateObject();
            cJSON_AddStringToObject(f, "file", rf_model_weight_file(m, i));
            cJSON_AddStringToObject(f, "sha256", hashes[i]);
            cJSON_AddItemToArray(w, f);
        }
        char *text = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        if (text)
            printf("%s\n", text);
        cJSON_free(text);
    } else {
        printf("model         %s\n", dir);
        printf("architecture  %s\n", rf_arch_name(in->arch));
        printf("encoder       %d layers, hidden %d, %d heads, MLP %d\n", in->layers, in->hidden, in->heads,
               in->intermediate);
        if (vision) {
            printf("input         %d channels, %dx%d, patch %d\n", in->channels, in->image_size,
                   in->image_size, in->patch_size);
            if (in->num_classes)
                printf("head          %d classes\n", in->num_classes);
        } else {
            printf("input         vocabulary %d, up to %d tokens\n", in->vocab_size, in->max_positions);
        }
        printf("parameters    %lld used (of %lld tensors stored)\n", (long long)in->param_count,
               (long long)in->tensor_count);
        printf("dtypes       ");
        for (int t = 0; t < RF_ST_DTYPE_COUNT; t++)
            if (in->dtype_counts[t])
                printf(" %s x %lld", rf_st_dtype_name((rf_st_dtype)t), (long long)in->dtype_counts[t]);
        printf("\n");
        for (int i = 0; i < nfiles; i++)
            printf("sha256        %s  %s\n", hashes[i], rf_model_weight_file(m, i));
    }
    rf_model_free(m);
    rf_backend_destroy(be);
    return CLI_EXIT_OK;
}

/* ---- model run ---- */

/* A stored input converted to the dtype the model wants, in malloc'd memory. */
typedef struct input_tensor {
    rf_tensor t;
    int present;
} input_tensor;

static int load_input(const rf_safetensors *st, const char *name, int want_float, input_tensor *out,
                      rf_err *err)
{
    memset(out, 0, sizeof *out);
    const rf_st_tensor *s = rf_safetensors_find(st, name);
    if (!s)
        return RF_OK;
    const char *path = rf_safetensors_path(st);
    if (s->ndim < 1 || s->ndim > RF_MAX_DIMS)
        return rf_err_set(err, RF_EINVAL, "%s: input '%s' has %d dimensions", path, name, s->ndim);
    size_t esz = rf_st_dtype_size(s->dtype);
    int64_t n = esz ? (int64_t)(s->nbytes / esz) : 0;
    out->t = rf_tensor_make(want_float ? RF_F32 : RF_I32, NULL, s->ndim, s->shape);
    out->t.data = malloc((size_t)(n ? n : 1) * 4);
    if (!out->t.data)
        return rf_err_set(err, RF_ENOMEM, "%s: cannot allocate input '%s'", path, name);
    out->present = 1;
    const uint8_t *src = s->data;
    for (int64_t i = 0; i < n; i++) {
        double v;
        switch (s->dtype) {
        case RF_ST_F32: { float f; memcpy(&f, src + 4 * i, 4); v = f; break; }
        case RF_ST_F64: memcpy(&v, src + 8 * i, 8); break;
        case RF_ST_F16: case RF_ST_BF16: {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            v = s->dtype == RF_ST_F16 ? rf_f16_to_f32(h) : rf_bf16_to_f32(h);
            break;
        }
        case RF_ST_I64: { int64_t x; memcpy(&x, src + 8 * i, 8); v = (double)x; break; }
        case RF_ST_I32: { int32_t x; memcpy(&x, src + 4 * i, 4); v = x; break; }
        case RF_ST_I16: { int16_t x; memcpy(&x, src + 2 * i, 2); v = x; break; }
        case RF_ST_I8: v = (int8_t)src[i]; break;
        case RF_ST_U8: case RF_ST_BOOL: v = src[i]; break;
        default:
            return rf_err_set(err, RF_EINVAL, "%s: input '%s' has unsupported dtype %s", path, name,
                              rf_st_dtype_name(s->dtype));
        }
        if (want_float) {
            if (!(v == v) || v > 3.4e38 || v < -3.4e38)
                return rf_err_set(err, RF_EINVAL, "%s: input '%s' holds a non-finite value at %lld", path,
                                  name, (long long)i);
            ((float *)out->t.data)[i] = (float)v;
        } else {
            if (v != (double)(int32_t)v)
                return rf_err_set(err, RF_EINVAL, "%s: input '%s' value %g at %lld is not a 32-bit integer",
                                  path, name, v, (long long)i);
            ((int32_t *)out->t.data)[i] = (int32_t)v;
        }
    }
    return RF_OK;
}

#define MAX_OUTPUTS 8

typedef struct output_set {
    rf_st_out items[MAX_OUTPUTS];
    int n;
} output_set;

static void add_output(output_set *o, const char *name, const rf_tensor *t)
{
    if (!t->data || o->n == MAX_OUTPUTS)
        return;
    o->items[o->n++] = (rf_st_out){name, RF_ST_F32, t->ndim, t->shape, t->data};
}

static int model_run(int argc, char **argv)
{
    const char *dir = NULL, *in_path = NULL, *out_path = NULL, *device = NULL;
    long threads = 0;
    rf_precision precision = RF_PRECISION_FP32;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--input") == 0 && next)
            in_path = argv[++i];
        else if (strcmp(a, "--output") == 0 && next)
            out_path = argv[++i];
        else if (strcmp(a, "--device") == 0 && next)
            device = argv[++i];
        else if (strcmp(a, "--precision") == 0 && next) {
            if (strcmp(next, "fp32") == 0)
                precision = RF_PRECISION_FP32;
            else if (strcmp(next, "fp16") == 0)
                precision = RF_PRECISION_FP16;
            else
                return cli_fail("model run: --precision '%s': expected fp32 or fp16", next);
            i++;
        } else if (strcmp(a, "--threads") == 0) {
            if (cli_parse_int(a, next, 1, 1024, &threads))
                return CLI_EXIT_FAIL;
            i++;
        } else if (a[0] == '-')
            return cli_fail("model run: unknown option or missing value '%s'", a);
        else if (!dir)
            dir = a;
        else
            return cli_fail("model run: more than one directory given");
    }
    if (!dir || !in_path || !out_path)
        return cli_fail("model run: usage: radfuse model run DIR --input IN.safetensors --output OUT.safetensors "
                        "[--device cpu] [--threads N] [--precision fp32|fp16]");
    rf_err err;
    rf_safetensors *st = NULL;
    rf_backend *be = NULL;
    rf_model *m = NULL;
    input_tensor px = {0}, pxb = {0}, ids = {0}, mask = {0}, tt = {0};
    rf_model_outputs outa = {0}, outb = {0};
    int rc = rf_safetensors_open(&st, in_path, &err);
    if (!rc && cli_backend(&be, device, threads)) {
        rf_safetensors_close(st);
        return CLI_EXIT_FAIL;
    }
    if (!rc && rf_backend_set_precision(be, precision, &err)) {
        rf_backend_destroy(be);
        rf_safetensors_close(st);
        return cli_fail("%s", err.msg);
    }
    if (!rc)
        rc = rf_model_load(&m, dir, be, &err);
    if (!rc && (rc = load_input(st, "pixel_values", 1, &px, &err)) == 0 &&
        (rc = load_input(st, "pixel_values_b", 1, &pxb, &err)) == 0 &&
        (rc = load_input(st, "input_ids", 0, &ids, &err)) == 0 &&
        (rc = load_input(st, "attention_mask", 0, &mask, &err)) == 0)
        rc = load_input(st, "token_type_ids", 0, &tt, &err);
    int vision = m && rf_model_get_info(m)->arch != RF_ARCH_BERT;
    if (!rc && vision && !px.present)
        rc = rf_err_set(&err, RF_EINVAL, "%s: no 'pixel_values' tensor for a vision model", in_path);
    if (!rc && m && !vision && !ids.present)
        rc = rf_err_set(&err, RF_EINVAL, "%s: no 'input_ids' tensor for a text model", in_path);
    if (!rc) {
        rf_model_inputs in = {0};
        if (vision) {
            in.pixel_values = &px.t;
        } else {
            in.input_ids = &ids.t;
            in.attention_mask = mask.present ? &mask.t : NULL;
            in.token_type_ids = tt.present ? &tt.t : NULL;
        }
        rc = rf_model_forward(m, &in, &outa, &err);
        if (!rc && vision && pxb.present) {
            in.pixel_values = &pxb.t;
            rc = rf_model_forward(m, &in, &outb, &err);
        }
        if (rc) {
            /* the inputs came from this file: say so */
            rf_err inner = err;
            rf_err_set(&err, rc, "%s: %s", in_path, inner.msg);
        }
    }
    if (!rc) {
        output_set o = {.n = 0};
        int timm = rf_model_get_info(m)->arch == RF_ARCH_TIMM_VIT;
        add_output(&o, timm ? "features" : "last_hidden_state", &outa.last_hidden_state);
        add_output(&o, "pooler_output", &outa.pooler_output);
        add_output(&o, "logits", &outa.logits);
        add_output(&o, timm ? "features_b" : "last_hidden_state_b", &outb.last_hidden_state);
        add_output(&o, "pooler_output_b", &outb.pooler_output);
        add_output(&o, "logits_b", &outb.logits);
        rc = rf_safetensors_write(out_path, o.items, (size_t)o.n, &err);
    }
    rf_model_outputs_free(&outa);
    rf_model_outputs_free(&outb);
    input_tensor *all[] = {&px, &pxb, &ids, &mask, &tt};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        free(all[i]->t.data);
    rf_model_free(m);
    rf_backend_destroy(be);
    rf_safetensors_close(st);
    return rc ? cli_fail("%s", err.msg) : CLI_EXIT_OK;
}

/* ---- model random ---- */

static int model_random(int argc, char **argv)
{
    const char *arch = NULL, *dir = NULL, *vocab = NULL;
    long seed = 0;
    int inline_sections = 0, timm = 0;
    for (int i = 0; i < argc; i++) {
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--arch") == 0 && next)
            arch = argv[++i];
        else if (strcmp(argv[i], "--vocab") == 0 && next)
            vocab = argv[++i];
        else if (strcmp(argv[i], "--inline") == 0)
            inline_sections = 1;
        else if (strcmp(argv[i], "--timm") == 0)
            timm = 1;
        else if (strcmp(argv[i], "--out") == 0 && next)
            dir = argv[++i];
        else if (strcmp(argv[i], "--seed") == 0) {
            if (cli_parse_int("--seed", next, 0, 1L << 40, &seed))
                return CLI_EXIT_FAIL;
            i++;
        } else
            return cli_fail("model random: unknown option or missing value '%s'", argv[i]);
    }
    if (!arch || !dir)
        return cli_fail("model random: usage: radfuse model random --arch vit_<size>_patch<P>_<IMG>|bert_base|"
                        "fusion_tiny|fusion_tiny_cross --out DIR [--seed S] [--vocab FILE] [--inline] [--timm]");
    rf_err err;
    if (strcmp(arch, "fusion_tiny") == 0 || strcmp(arch, "fusion_tiny_cross") == 0) {
        rf_fusion_random_opts o;
        rf_fusion_random_defaults(&o);
        o.seed = (unsigned long)seed;
        o.cross_attention = strcmp(arch, "fusion_tiny_cross") == 0;
        o.inline_sections = inline_sections;
        o.timm_vision = timm;
        o.with_text = vocab != NULL;
        o.vocab_path = vocab;
        if (rf_fusion_write_random(dir, &o, &err))
            return cli_fail("%s", err.msg);
        printf("wrote model directory %s (%s, %s, %s, random weights)\n", dir, arch,
               inline_sections ? "inline sections" : "encoder subdirectories",
               vocab ? "with a text encoder" : "no text encoder: give --vocab FILE for one");
        return CLI_EXIT_OK;
    }
    if (inline_sections || timm || vocab)
        return cli_fail("model random: --inline, --timm and --vocab are for fusion_tiny[_cross]");
    if (cli_write_random_model(arch, dir, (unsigned long)seed, &err))
        return cli_fail("%s", err.msg);
    printf("wrote %s/config.json and %s/model.safetensors (%s, random weights)\n", dir, dir, arch);
    return CLI_EXIT_OK;
}

int cli_model(int argc, char **argv)
{
    if (argc < 1)
        return cli_fail("model: expected a subcommand: info, run, random (see radfuse --help)");
    if (strcmp(argv[0], "info") == 0)
        return model_info(argc - 1, argv + 1);
    if (strcmp(argv[0], "run") == 0)
        return model_run(argc - 1, argv + 1);
    if (strcmp(argv[0], "random") == 0)
        return model_random(argc - 1, argv + 1);
    return cli_fail("model: unknown subcommand '%s' (info, run, random)", argv[0]);
}
