/*
 * Hostile model directories: each case breaks one thing of a good model
 * directory (tests/model_maker.h) and checks that loading fails with one
 * line naming the file and the key or tensor (never a crash), through the
 * library and, for a few, through `radfuse model info`. The good directories
 * (both layouts, timm vision, no text encoder, 96x96 without pooling) load.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "radfuse/fusion.h"
#include "runtime/fileio.h"
#include "tests/model_maker.h"
#include "tests/testutil.h"

/* ---- edits ---- */

static cJSON *read_json(const char *path)
{
    size_t n;
    char *text = test_read_file(path, &n);
    cJSON *j = text ? cJSON_ParseWithLength(text, n) : NULL;
    free(text);
    if (!j) {
        fprintf(stderr, "FATAL: cannot read %s\n", path);
        exit(1);
    }
    return j;
}

static void write_json(const char *path, cJSON *j)
{
    char *text = cJSON_Print(j);
    test_write_file(path, text, strlen(text));
    cJSON_free(text);
    cJSON_Delete(j);
}

static void path_of(char *out, size_t n, const char *dir, const char *rel)
{
    snprintf(out, n, "%s/%s", dir, rel);
}

/* Sets key (a.b for one level of nesting) of the JSON file rel to value (JSON text; NULL deletes it). */
static void set_key(const char *dir, const char *rel, const char *key, const char *value)
{
    char path[4300], k1[64] = "", *k2;
    path_of(path, sizeof path, dir, rel);
    cJSON *j = read_json(path), *obj = j;
    snprintf(k1, sizeof k1, "%s", key);
    k2 = strchr(k1, '.');
    if (k2) {
        *k2++ = 0;
        obj = cJSON_GetObjectItem(j, k1);
    } else {
        k2 = k1;
    }
    cJSON_DeleteItemFromObject(obj, k2);
    if (value)
        cJSON_AddItemToObject(obj, k2, cJSON_Parse(value));
    write_json(path, j);
}

/* Rewrites the safetensors file rel without tensor name (replace NULL), or
 * with it replaced by a tensor of shape [d0, d1] (d1 0: 1-D) filled with fill. */
static void edit_tensor(const char *dir, const char *rel, const char *name, int replace, int64_t d0, int64_t d1,
                        float fill)
{
    char path[4300];
    path_of(path, sizeof path, dir, rel);
    rf_safetensors *st;
    rf_err err;
    if (rf_safetensors_open(&st, path, &err)) {
        fprintf(stderr, "FATAL: %s\n", err.msg);
        exit(1);
    }
    size_t n = rf_safetensors_count(st), k = 0;
    rf_st_out *out = test_xmalloc((n + 1) * sizeof *out);
    int64_t shape[2] = {d0, d1};
    float *data = test_falloc(d0 * (d1 ? d1 : 1));
    test_fill_const(data, d0 * (d1 ? d1 : 1), fill);
    for (size_t i = 0; i < n; i++) {
        const rf_st_tensor *t = rf_safetensors_at(st, i);
        if (strcmp(t->name, name) == 0) {
            if (replace)
                out[k++] = (rf_st_out){t->name, RF_ST_F32, d1 ? 2 : 1, shape, data};
            continue;
        }
        out[k++] = (rf_st_out){t->name, t->dtype, t->ndim, t->shape, t->data};
    }
    if (replace == 2) /* add as a new tensor */
        out[k++] = (rf_st_out){name, RF_ST_F32, d1 ? 2 : 1, shape, data};
    char tmp[4400];
    snprintf(tmp, sizeof tmp, "%s.new", path);
    if (rf_safetensors_write(tmp, out, k, &err)) {
        fprintf(stderr, "FATAL: %s\n", err.msg);
        exit(1);
    }
    rf_safetensors_close(st);
    rename(tmp, path);
    free(out);
    free(data);
}

static void write_text(const char *dir, const char *rel, const char *text)
{
    char path[4300];
    path_of(path, sizeof path, dir, rel);
    test_write_file(path, text, strlen(text));
}

static void remove_file(const char *dir, const char *rel)
{
    char path[4300];
    path_of(path, sizeof path, dir, rel);
    unlink(path);
}

/* vocab.txt with one line more or less */
static void edit_vocab(const char *dir, const char *rel, int more)
{
    char path[4300];
    path_of(path, sizeof path, dir, rel);
    size_t n;
    char *text = test_read_file(path, &n);
    if (more) {
        text = realloc(text, n + 32);
        memcpy(text + n, "zzzextra\n", 9);
        n += 9;
    } else {
        n--; /* the last newline */
        while (n > 0 && text[n - 1] != '\n')
            n--;
    }
    test_write_file(path, text, n);
    free(text);
}

/* ---- cases ---- */

typedef struct hcase {
    const char *name;
    int inline_sections;
    void (*edit)(const char *dir);
    const char *want1, *want2; /* substrings of the message */
} hcase;

#define EDIT(fn, body) static void fn(const char *d) { body; }

EDIT(no_config, remove_file(d, "config.json"))
EDIT(no_labels, remove_file(d, "labels.json"))
EDIT(labels_fewer, write_text(d, "labels.json",
                              "[{\"code\":\"a\",\"display\":\"A\",\"threshold\":0.5},"
                              "{\"code\":\"b\",\"display\":\"B\",\"threshold\":0.5}]"))
EDIT(threshold_high, write_text(d, "labels.json",
                                "[{\"code\":\"a\",\"display\":\"A\",\"threshold\":0.5},{\"code\":\"b\",\"display\":"
                                "\"B\",\"threshold\":0.5},{\"code\":\"c\",\"display\":\"C\",\"threshold\":1.5},"
                                "{\"code\":\"d\",\"display\":\"D\",\"threshold\":0.5},{\"code\":\"e\",\"display\":"
                                "\"E\",\"threshold\":0.5}]"))
EDIT(threshold_zero, write_text(d, "labels.json", "[{\"code\":\"a\",\"display\":\"A\",\"threshold\":0}]"))
EDIT(threshold_missing, write_text(d, "labels.json", "[{\"code\":\"a\",\"display\":\"A\"}]"))
EDIT(labels_dup, write_text(d, "labels.json",
                            "[{\"code\":\"a\",\"display\":\"A\",\"threshold\":0.5},{\"code\":\"a\",\"display\":\"A\","
                            "\"threshold\":0.5}]"))
EDIT(labels_not_array, write_text(d, "labels.json", "{\"code\": 1}"))
EDIT(labels_truncated, write_text(d, "labels.json", "[{\"code\":\"a\",\"disp"))
EDIT(vocab_larger, edit_vocab(d, "text/vocab.txt", 1))
EDIT(vocab_smaller, edit_vocab(d, "text/vocab.txt", 0))
EDIT(vocab_missing, remove_file(d, "text/vocab.txt"))
EDIT(fusion_width, set_key(d, "config.json", "fusion.hidden_size", "48"))
EDIT(fusion_heads, set_key(d, "config.json", "fusion.num_attention_heads", "5"))
EDIT(fusion_layers, set_key(d, "config.json", "fusion.num_hidden_layers", "3"))
EDIT(fusion_attention, set_key(d, "config.json", "fusion.attention", "\"sideways\""))
EDIT(fusion_act, set_key(d, "config.json", "fusion.hidden_act", "\"swish\""))
EDIT(fusion_pool, set_key(d, "config.json", "fusion.image_pool_grid", "9"))
EDIT(fusion_missing, set_key(d, "config.json", "fusion", NULL))
EDIT(format_wrong, set_key(d, "config.json", "format", "\"radfuse-model-9\""))
EDIT(name_missing, set_key(d, "config.json", "name", NULL))
EDIT(vision_escape, set_key(d, "config.json", "vision.path", "\"../vision\""))
EDIT(vision_absolute, set_key(d, "config.json", "vision.path", "\"/etc\""))
EDIT(vision_nodir, set_key(d, "config.json", "vision.path", "\"nowhere\""))
EDIT(vision_mixed, set_key(d, "config.json", "vision.hidden_size", "32"))
EDIT(vision_missing, set_key(d, "config.json", "vision", NULL))
EDIT(vision_is_text, set_key(d, "config.json", "vision.path", "\"text\""))
EDIT(inline_no_hidden, set_key(d, "config.json", "vision.hidden_size", NULL))
EDIT(inline_bad_type, set_key(d, "config.json", "text.model_type", "\"gpt2\""))
EDIT(text_removed, set_key(d, "config.json", "text", NULL))
EDIT(image_proj_width, edit_tensor(d, "model.safetensors", "fusion.image_proj.weight", 1, 32, 48, 0.1f))
EDIT(text_proj_width, edit_tensor(d, "model.safetensors", "fusion.text_proj.weight", 1, 32, 40, 0.1f))
EDIT(head_rows, edit_tensor(d, "model.safetensors", "fusion.head.weight", 1, 6, 32, 0.1f))
EDIT(temperature_neg, edit_tensor(d, "model.safetensors", "fusion.head.temperature", 1, 5, 0, -1.0f))
EDIT(temperature_missing, edit_tensor(d, "model.safetensors", "fusion.head.temperature", 0, 1, 0, 0))
EDIT(norm_missing, edit_tensor(d, "model.safetensors", "fusion.norm.weight", 0, 1, 0, 0))
EDIT(lab_code_width, edit_tensor(d, "model.safetensors", "fusion.lab_code.weight", 1, 42, 31, 0.1f))
EDIT(weight_nan, edit_tensor(d, "model.safetensors", "fusion.blocks.1.mlp.fc2.weight", 1, 32, 64, NAN))
EDIT(stray_tensor, edit_tensor(d, "model.safetensors", "decoder.weight", 2, 4, 0, 0))
EDIT(inline_vision_tensor, edit_tensor(d, "model.safetensors", "vision.layernorm.weight", 0, 1, 0, 0))
EDIT(no_weights, remove_file(d, "model.safetensors"))
EDIT(preprocess_size, write_text(d, "vision/preprocessor_config.json",
                                 "{\"size\": {\"height\": 80, \"width\": 80}, \"do_resize\": true, \"do_normalize\": false}"))
EDIT(preprocess_bad, write_text(d, "vision/preprocessor_config.json", "{\"size\": \"big\"}"))
EDIT(vision_weights_gone, remove_file(d, "vision/model.safetensors"))

static const hcase cases[] = {
    {"no config.json", 0, no_config, "config.json", NULL},
    {"no labels.json", 0, no_labels, "labels.json", NULL},
    {"fewer labels than head rows", 0, labels_fewer, "labels.json", "fusion.head.weight"},
    {"threshold above 1", 0, threshold_high, "labels.json", "[2].threshold"},
    {"threshold 0", 0, threshold_zero, "labels.json", "[0].threshold"},
    {"threshold missing", 0, threshold_missing, "labels.json", "threshold"},
    {"repeated code", 0, labels_dup, "labels.json", "[1].code"},
    {"labels not an array", 0, labels_not_array, "labels.json", "array"},
    {"labels truncated", 0, labels_truncated, "labels.json", NULL},
    {"vocab larger than vocab_size", 0, vocab_larger, "vocab.txt", "vocab_size"},
    {"vocab smaller than vocab_size", 0, vocab_smaller, "vocab.txt", "vocab_size"},
    {"vocab missing", 0, vocab_missing, "vocab.txt", NULL},
    {"fusion width", 0, fusion_width, "fusion.cls_token", "fusion.hidden_size 48"},
    {"fusion heads", 0, fusion_heads, "config.json", "fusion.num_attention_heads"},
    {"fusion layers", 0, fusion_layers, "config.json", "fusion.num_hidden_layers"},
    {"attention kind", 0, fusion_attention, "config.json", "fusion.attention"},
    {"activation", 0, fusion_act, "config.json", "fusion.hidden_act"},
    {"pool grid larger than the patch grid", 0, fusion_pool, "config.json", "fusion.image_pool_grid"},
    {"no fusion section", 0, fusion_missing, "config.json", "fusion"},
    {"format", 0, format_wrong, "config.json", "format"},
    {"name", 0, name_missing, "config.json", "name"},
    {"vision path escapes", 0, vision_escape, "config.json", "vision.path"},
    {"vision path absolute", 0, vision_absolute, "config.json", "vision.path"},
    {"vision path not a directory", 0, vision_nodir, "config.json", "vision.path"},
    {"vision path and inline keys", 0, vision_mixed, "config.json", "'vision'"},
    {"no vision section", 0, vision_missing, "config.json", "vision"},
    {"vision section is a BERT", 0, vision_is_text, "config.json", "vision"},
    {"inline vision without hidden_size", 1, inline_no_hidden, "config.json: vision", "hidden_size"},
    {"inline text of an unknown type", 1, inline_bad_type, "config.json: text", "gpt2"},
    {"text projection without a text section", 0, text_removed, "fusion.text_proj.weight", "text"},
    {"image projection vs vision width", 0, image_proj_width, "fusion.image_proj.weight", "vision encoder"},
    {"text projection vs text width", 0, text_proj_width, "fusion.text_proj.weight", "text encoder"},
    {"head rows", 0, head_rows, "labels.json", "fusion.head.weight"},
    {"negative temperature", 0, temperature_neg, "model.safetensors", "fusion.head.temperature"},
    {"no temperature", 0, temperature_missing, "fusion.head.temperature", NULL},
    {"no final norm", 0, norm_missing, "fusion.norm.weight", NULL},
    {"lab code width", 0, lab_code_width, "model.safetensors", "fusion.lab_code.weight"},
    {"NaN weight", 0, weight_nan, "fusion.blocks.1.mlp.fc2.weight", "non-finite"},
    {"tensor under no prefix", 0, stray_tensor, "model.safetensors", "decoder.weight"},
    {"inline vision tensor missing", 1, inline_vision_tensor, "missing tensor 'vision.layernorm", NULL},
    {"no weights", 0, no_weights, "model.safetensors", NULL},
    {"preprocessing size", 0, preprocess_size, "preprocessor_config.json", "80x80"},
    {"preprocessing key", 0, preprocess_bad, "preprocessor_config.json", "size"},
    {"vision weights missing", 0, vision_weights_gone, "vision/model.safetensors", NULL},
};

static void good_variants(rf_backend *be)
{
    struct {
        const char *what;
        int inline_sections, timm, text, size, pool, nlabels;
    } v[] = {{"subdirectories", 0, 0, 1, 64, 2, 0},         {"inline", 1, 0, 1, 64, 2, 0},
             {"timm vision", 0, 1, 1, 64, 2, 0},            {"inline timm, no text", 1, 1, 0, 64, 2, 0},
             {"96x96, every patch token", 0, 0, 1, 96, 0, 0}, {"one label (head [1, D])", 0, 0, 1, 64, 2, 1}};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        rf_fusion_random_opts o;
        test_model_defaults(&o);
        o.inline_sections = v[i].inline_sections;
        o.timm_vision = v[i].timm;
        o.with_text = v[i].text;
        o.image_size = v[i].size;
        o.pool_grid = v[i].pool;
        if (v[i].nlabels)
            o.nlabels = v[i].nlabels;
        char dir[4096];
        test_make_model_tmp(dir, sizeof dir, &o);
        rf_fusion *f;
        rf_err err;
        int rc = rf_fusion_load(&f, dir, be, &err);
        CHECKF(rc == 0, "%s: %s", v[i].what, err.msg);
        if (rc)
            continue;
        const rf_fusion_info *in = rf_fusion_get_info(f);
        CHECK(in->text.present == v[i].text);
        CHECK(in->vision.info.arch == (v[i].timm ? RF_ARCH_TIMM_VIT : RF_ARCH_HF_VIT));
        CHECK(in->preprocess.height == v[i].size && in->has_preprocess_file);
        /* a study with one image and labs runs; text is absent without an encoder */
        int64_t n = 3 * (int64_t)v[i].size * v[i].size;
        float *img = test_falloc(n);
        test_fill_random(img, n, 5, 1.0f);
        rf_lab_token lab = {.lab = 2, .features = {0.5f, 1, 0, 1, 0, 0, 0, 0.2f}};
        rf_fusion_study s = {.height = v[i].size, .width = v[i].size, .images = img, .nimages = 1, .labs = &lab,
                             .nlabs = 1};
        rf_fusion_output out;
        rc = rf_fusion_forward(f, &s, &out, &err);
        CHECKF(rc == 0, "%s: forward: %s", v[i].what, err.msg);
        if (!rc) {
            int per = v[i].pool ? 1 + v[i].pool * v[i].pool : 1 + (v[i].size / 16) * (v[i].size / 16);
            CHECK(out.layout.image_tokens == per);
            CHECK(out.inputs_used[RF_MODALITY_IMAGE] && out.inputs_used[RF_MODALITY_LABS] &&
                  !out.inputs_used[RF_MODALITY_TEXT] && !out.inputs_used[RF_MODALITY_PRIOR]);
            CHECK(out.nlabels == (v[i].nlabels ? v[i].nlabels : in->nlabels));
            for (int k = 0; k < out.nlabels; k++)
                CHECK(out.probabilities[k] > 0 && out.probabilities[k] < 1);
        }
        rf_fusion_output_free(&out);
        /* inputs the model cannot take: one line each */
        rf_text_encoding fake = {.n = 0, .hidden = 7};
        rf_fusion_study bad = s;
        bad.notes = &fake;
        bad.nnotes = 1;
        CHECK(rf_fusion_forward(f, &bad, &out, &err) == RF_EINVAL && !strchr(err.msg, '\n'));
        rf_fusion_output_free(&out);
        bad = s;
        bad.height = bad.width = 48;
        CHECK(rf_fusion_forward(f, &bad, &out, &err) == RF_EINVAL && !strchr(err.msg, '\n'));
        rf_fusion_output_free(&out);
        bad = s;
        bad.nimages = 5;
        CHECK(rf_fusion_forward(f, &bad, &out, &err) == RF_EINVAL && strstr(err.msg, "images"));
        rf_fusion_output_free(&out);
        bad = s;
        bad.priors = img;
        bad.npriors = 1;
        bad.prior_days = NAN;
        CHECK(rf_fusion_forward(f, &bad, &out, &err) == RF_EINVAL && strstr(err.msg, "prior_days"));
        rf_fusion_output_free(&out);
        rf_lab_token badlab = lab;
        badlab.features[3] = INFINITY;
        bad = s;
        bad.labs = &badlab;
        CHECK(rf_fusion_forward(f, &bad, &out, &err) == RF_EINVAL && strstr(err.msg, "lab token"));
        rf_fusion_output_free(&out);
        if (!v[i].text) {
            rf_text_encoding e;
            CHECK(rf_fusion_encode_note(f, "x", 1, &e, &err) == RF_EINVAL && strstr(err.msg, "no text encoder"));
        }
        free(img);
        rf_fusion_free(f);
        test_model_remove(dir);
    }
}

int main(void)
{
    rf_backend *be;
    rf_err err;
    if (rf_backend_create(&be, "cpu", 2, &err)) {
        fprintf(stderr, "FATAL: %s\n", err.msg);
        return 1;
    }
    good_variants(be);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        rf_fusion_random_opts o;
        test_model_defaults(&o);
        o.inline_sections = cases[c].inline_sections;
        char dir[4096];
        test_make_model_tmp(dir, sizeof dir, &o);
        cases[c].edit(dir);
        rf_fusion *f = NULL;
        memset(&err, 0, sizeof err);
        int rc = rf_fusion_load(&f, dir, be, &err);
        CHECKF(rc != 0, "%s: loaded", cases[c].name);
        CHECKF(f == NULL, "%s: a model came back", cases[c].name);
        CHECKF(err.msg[0] && !strchr(err.msg, '\n'), "%s: not one line: '%s'", cases[c].name, err.msg);
        CHECKF(strstr(err.msg, cases[c].want1), "%s: '%s' does not name '%s'", cases[c].name, err.msg,
               cases[c].want1);
        if (cases[c].want2)
            CHECKF(strstr(err.msg, cases[c].want2), "%s: '%s' does not name '%s'", cases[c].name, err.msg,
                   cases[c].want2);
        if (test_verbose())
            printf("%-40s %s\n", cases[c].name, err.msg);
        rf_fusion_free(f);
        /* a few through the command: exit 2, one line on stderr */
        if (c % 8 == 2) {
            char *argv[] = {(char *)test_radfuse_bin(), "model", "info", dir, NULL};
            char out[8192], errbuf[4096];
            int status = test_run(argv, out, sizeof out, errbuf, sizeof errbuf);
            CHECKF(status == 2, "%s: model info exit %d", cases[c].name, status);
            CHECKF(test_count_lines(errbuf) == 1 && strstr(errbuf, cases[c].want1), "%s: model info said '%s'",
                   cases[c].name, errbuf);
        }
        test_model_remove(dir);
    }
    rf_backend_destroy(be);
    return test_finish("test_fusion_hostile");
}
