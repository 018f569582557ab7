/*
 * A model directory that combines published checkpoints with a fusion head
 * trained apart (docs/model-dir.md): the shared reference checkpoints in their
 * own formats (transformers' Dinov2Model as the vision encoder, BertModel as
 * the text encoder, each in a subdirectory as published) and a fusion head
 * this test writes. Checks that the combination loads, that its encoders are
 * exactly the checkpoints loaded on their own (same states for the same
 * input), and that a covid-chestxray study reads end to end through it on
 * the CPU and on Vulkan (probabilities within 1e-4), Grad-CAM included.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "radfuse/datasets.h"
#include "radfuse/fusion.h"
#include "radfuse/labs.h"
#include "radfuse/read.h"
#include "tests/testutil.h"

enum { D = 32, I = 64, K = 3, LAYERS = 1, DV = 64, DT = 64 };

static void die(const char *what, const char *msg)
{
    fprintf(stderr, "test_fusion_reference: %s: %s\n", what, msg);
    exit(1);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0)
        die(path, "cannot write");
}

/* The first n lines of the shared WordPiece vocabulary (the reference BERT has 500 ids). */
static void write_vocab(const char *path, int n)
{
    char src[512];
    snprintf(src, sizeof src, "%s/fixtures/tokenizer/vocab.txt", test_shared_dir());
    FILE *in = fopen(src, "r"), *out = fopen(path, "w");
    if (!in || !out)
        die(src, "cannot copy the vocabulary");
    char line[512];
    for (int i = 0; i < n && fgets(line, sizeof line, in); i++)
        fputs(line, out);
    fclose(in);
    fclose(out);
}

/* Deterministic uniform values in [-a, a]. */
static float *rnd(int64_t n, uint64_t seed, float a)
{
    float *x = malloc((size_t)n * sizeof *x);
    if (!x)
        die("fusion head", "out of memory");
    test_fill_random(x, n, seed, a);
    return x;
}

typedef struct tensors {
    rf_st_out t[64];
    int64_t shapes[64][2];
    float *data[64];
    char names[64][64];
    int n;
} tensors;

static void add(tensors *ts, const char *name, int ndim, int64_t d0, int64_t d1, float a, float bias)
{
    int i = ts->n++;
    snprintf(ts->names[i], sizeof ts->names[i], "%s", name);
    ts->shapes[i][0] = d0;
    ts->shapes[i][1] = d1;
    int64_t n = ndim == 1 ? d0 : d0 * d1;
    ts->data[i] = rnd(n, 1000 + (uint64_t)i, a);
    if (bias != 0)
        for (int64_t j = 0; j < n; j++)
            ts->data[i][j] = bias + 0.1f * ts->data[i][j];
    ts->t[i] = (rf_st_out){ts->names[i], RF_ST_F32, ndim, ts->shapes[i], ts->data[i]};
}

static void write_fusion_head(const char *path)
{
    tensors ts = {0};
    int L = rf_lab_count();
    add(&ts, "fusion.cls_token", 1, D, 0, 0.5f, 0);
    add(&ts, "fusion.modality_embed", 2, 4, D, 0.5f, 0);
    add(&ts, "fusion.absent_embed", 2, 4, D, 0.5f, 0);
    add(&ts, "fusion.image_proj.weight", 2, D, DV, 0.2f, 0);
    add(&ts, "fusion.image_proj.bias", 1, D, 0, 0.1f, 0);
    add(&ts, "fusion.text_proj.weight", 2, D, DT, 0.2f, 0);
    add(&ts, "fusion.text_proj.bias", 1, D, 0, 0.1f, 0);
    add(&ts, "fusion.time_embed.weight", 2, D, 8, 0.2f, 0);
    add(&ts, "fusion.lab_code.weight", 2, L, D, 0.5f, 0);
    add(&ts, "fusion.lab_value.weight", 2, D, 8, 0.3f, 0);
    for (int b = 0; b < LAYERS; b++) {
        char n[64];
#define BLK(suffix, nd, a0, a1, sc, bias)                                                                             \
    snprintf(n, sizeof n, "fusion.blocks.%d." suffix, b);                                                              \
    add(&ts, n, nd, a0, a1, sc, bias)
        BLK("norm1.weight", 1, D, 0, 0.1f, 1.0f);
        BLK("norm1.bias", 1, D, 0, 0.1f, 0);
        BLK("attn.qkv.weight", 2, 3 * D, D, 0.2f, 0);
        BLK("attn.qkv.bias", 1, 3 * D, 0, 0.1f, 0);
        BLK("attn.proj.weight", 2, D, D, 0.2f, 0);
        BLK("norm2.weight", 1, D, 0, 0.1f, 1.0f);
        BLK("norm2.bias", 1, D, 0, 0.1f, 0);
        BLK("mlp.fc1.weight", 2, I, D, 0.2f, 0);
        BLK("mlp.fc1.bias", 1, I, 0, 0.1f, 0);
        BLK("mlp.fc2.weight", 2, D, I, 0.2f, 0);
#undef BLK
    }
    add(&ts, "fusion.norm.weight", 1, D, 0, 0.1f, 1.0f);
    add(&ts, "fusion.norm.bias", 1, D, 0, 0.1f, 0);
    add(&ts, "fusion.head.weight", 2, K, D, 0.5f, 0);
    add(&ts, "fusion.head.bias", 1, K, 0, 0.2f, 0);
    add(&ts, "fusion.head.temperature", 1, K, 0, 0.2f, 1.5f);
    rf_err err;
    if (rf_safetensors_write(path, ts.t, (size_t)ts.n, &err))
        die(path, err.msg);
    for (int i = 0; i < ts.n; i++)
        free(ts.data[i]);
}

static void make_model(const char *dir)
{
    char p[1024], q[1024];
    const char *shared = test_shared_dir();
    mkdir(dir, 0777);
    /* the encoders as published: their own directories, linked in unchanged */
    snprintf(p, sizeof p, "%s/vision", dir);
    snprintf(q, sizeof q, "%s/fixtures/reference/dinov2", shared);
    if (symlink(q, p) != 0)
        die(p, "cannot link the Dinov2 checkpoint");
    snprintf(p, sizeof p, "%s/text", dir);
    snprintf(q, sizeof q, "%s/fixtures/reference/bert", shared);
    if (symlink(q, p) != 0)
        die(p, "cannot link the BERT checkpoint");
    snprintf(p, sizeof p, "%s/vocab.txt", dir);
    write_vocab(p, 500);
    snprintf(p, sizeof p, "%s/config.json", dir);
    write_text(p, "{\"format\": \"radfuse-model-1\", \"name\": \"reference-combination\", \"version\": \"0.0.1\",\n"
                  " \"vision\": {\"path\": \"vision\"}, \"text\": {\"path\": \"text\"},\n"
                  " \"fusion\": {\"hidden_size\": 32, \"num_hidden_layers\": 1, \"num_attention_heads\": 2,\n"
                  "   \"intermediate_size\": 64, \"image_pool_grid\": 2, \"max_text_tokens\": 48, \"max_images\": 2,\n"
                  "   \"max_prior_images\": 0, \"image_modalities\": [\"CR\", \"DX\"]}}\n");
    snprintf(p, sizeof p, "%s/preprocessor_config.json", dir);
    write_text(p, "{\"do_resize\": true, \"size\": {\"height\": 56, \"width\": 56}, \"resample\": 3,\n"
                  " \"do_normalize\": true, \"image_mean\": [0.485, 0.456, 0.406], \"image_std\": [0.229, 0.224, 0.225]}\n");
    snprintf(p, sizeof p, "%s/labels.json", dir);
    write_text(p, "[{\"code\": \"covid19\", \"display\": \"COVID-19\", \"threshold\": 0.5},\n"
                  " {\"code\": \"pneumonia\", \"display\": \"Pneumonia\", \"threshold\": 0.4},\n"
                  " {\"code\": \"no_finding\", \"display\": \"No finding\", \"threshold\": 0.6}]\n");
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    write_fusion_head(p);
}

/* The combination's vision states equal the Dinov2 checkpoint's own, for the same input. */
static void check_same_encoder(rf_fusion *f, rf_backend *be)
{
    const rf_fusion_info *in = rf_fusion_get_info(f);
    CHECK(in->vision.present && in->vision.info.arch == RF_ARCH_DINOV2 && in->vision.info.hidden == DV);
    CHECK(in->text.present && in->text.info.arch == RF_ARCH_BERT && in->text.info.hidden == DT);
    CHECK(strcmp(in->vision.source, "inline") != 0 && strcmp(in->text.source, "inline") != 0);
    CHECK(in->preprocess.height == 56 && in->preprocess.width == 56 && in->preprocess.channels == 3);
    int64_t n = 3 * 56 * 56;
    float *img = malloc((size_t)n * sizeof *img);
    test_fill_random(img, n, 77, 1.0f);
    rf_fusion_study s = {.height = 56, .width = 56, .images = img, .nimages = 1};
    rf_fusion_trace tr;
    rf_err err;
    int rc = rf_fusion_trace_study(f, &s, &tr, &err);
    CHECKF(rc == 0, "%s", rc ? err.msg : "");
    char dir[512];
    snprintf(dir, sizeof dir, "%s/fixtures/reference/dinov2", test_shared_dir());
    rf_model *m;
    rc = rc ? rc : rf_model_load(&m, dir, be, &err);
    CHECKF(rc == 0, "%s", rc ? err.msg : "");
    if (!rc) {
        int64_t shape[4] = {1, 3, 56, 56};
        rf_tensor px = rf_tensor_make(RF_F32, img, 4, shape);
        rf_model_inputs mi = {.pixel_values = &px};
        rf_model_outputs mo;
        rc = rf_model_forward(m, &mi, &mo, &err);
        CHECKF(rc == 0, "%s", rc ? err.msg : "");
        if (!rc) {
            int64_t cnt = rf_tensor_numel(&mo.last_hidden_state);
            CHECK(cnt == (int64_t)tr.vision_tokens * tr.vision_hidden);
            double d = test_max_abs_diff(mo.last_hidden_state.data, tr.vision, cnt);
            CHECKF(d == 0, "combination vs checkpoint alone: vision states differ by %g", d);
            printf("vision states of the combination vs the Dinov2 checkpoint alone (%s): max |d| = %g\n",
                   rf_backend_name(be), d);
        }
        rf_model_outputs_free(&mo);
        rf_model_free(m);
    }
    rf_fusion_trace_free(&tr);
    free(img);
}

int main(void)
{
    char root[] = "/tmp/radfuse-test-fusion-reference-XXXXXX";
    if (!mkdtemp(root))
        die("mkdtemp", "failed");
    char model[600], study[600], data[600];
    snprintf(model, sizeof model, "%s/model", root);
    snprintf(study, sizeof study, "%s/s440", root);
    snprintf(data, sizeof data, "%s/data/covid-chestxray", test_shared_dir());
    make_model(model);
    rf_err err;
    if (rf_dataset_study(data, 440, NULL, study, NULL, &err))
        die(study, err.msg);

    const char *devices[] = {"cpu", "vulkan"};
    double probs[2][K];
    for (int d = 0; d < 2; d++) {
        rf_backend *be;
        rf_fusion *f;
        if (rf_backend_create(&be, devices[d], 0, &err))
            die(devices[d], err.msg);
        if (rf_fusion_load(&f, model, be, &err))
            die(model, err.msg);
        check_same_encoder(f, be);
        char dcm[700], note[700], labs[700];
        snprintf(dcm, sizeof dcm, "%s/study", study);
        snprintf(note, sizeof note, "%s/note.txt", study);
        snprintf(labs, sizeof labs, "%s/labs.csv", study);
        const char *st[] = {dcm}, *notes[] = {note}, *lb[] = {labs};
        rf_read_request req = {.study = st, .nstudy = 1, .notes = notes, .nnotes = 1, .labs = lb, .nlabs = 1,
                               .saliency = "gradcam"};
        rf_read_result r;
        int rc = rf_read(f, &req, &r, &err);
        CHECKF(rc == 0, "%s: %s", devices[d], rc ? err.msg : "");
        if (!rc) {
            CHECK(r.nfindings == K);
            CHECK(r.inputs_used[RF_MODALITY_IMAGE] && r.inputs_used[RF_MODALITY_TEXT] && r.inputs_used[RF_MODALITY_LABS]);
            for (size_t k = 0; k < r.nfindings; k++) {
                const rf_result_finding *fd = &r.findings[k];
                int idx = strcmp(fd->code, "covid19") == 0 ? 0 : strcmp(fd->code, "pneumonia") == 0 ? 1 : 2;
                probs[d][idx] = fd->probability;
                CHECK(fd->nmaps == 1 && fd->maps[0].values);
                CHECK(fabs(fd->probability - 1 / (1 + exp(-fd->logit / fd->temperature))) < 1e-5);
            }
        }
        rf_result_free(&r);
        rf_fusion_free(f);
        rf_backend_destroy(be);
    }
    double worst = 0;
    for (int k = 0; k < K; k++)
        worst = fmax(worst, fabs(probs[0][k] - probs[1][k]));
    CHECKF(worst <= 1e-4, "CPU vs Vulkan probabilities differ by %g", worst);
    printf("read through Dinov2 + BERT reference checkpoints and a separate fusion head: CPU vs Vulkan max |dp| = %g\n",
           worst);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    if (test_failures == 0 && system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", root);
    return test_finish("test_fusion_reference");
}
