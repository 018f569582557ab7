/*
 * The default model (models/default) against its trainer. Rows of the
 * covid-chestxray validation split are built into studies as `radfuse
 * dataset study` builds them (DICOM image, note.txt, labs.csv) and read with
 * rf_read on the CPU and on Vulkan (lavapipe in CI); every finding's
 * probability and logit must equal what train/train_default.py export
 * computed for the same row with the same fp16 weights (in float32 PyTorch,
 * from Pillow's preprocessing, the tokenizer and lab features of radfuse
 * text): tests/data/default_model_parity.json. The rows cover every input
 * kind (note and labs, note only, image only), so the inputs the trainer fed
 * the model are checked to be the ones radfuse builds: a difference in
 * preprocessing, tokens, text windows, lab features or the fusion sequence
 * moves a probability by far more than the tolerance.
 *
 * Tolerance: 1e-4 on probabilities, 1e-3 on logits. Both sides run float32
 * over identical weights; what differs is the order of summation (Pillow's
 * double weights against radfuse's float ones, GEMM blocking), measured below
 * 1e-5 (docs/training.md has the figure).
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "radfuse/datasets.h"
#include "radfuse/fusion.h"
#include "radfuse/read.h"
#include "radfuse/result.h"
#include "tests/testutil.h"

#define PROB_TOL 1e-4
#define LOGIT_TOL 1e-3
#define WEIGHTS_MAX (30L << 20) /* the repository's budget for default weights */

static char tmp_root[256];

static void path_join(char *out, size_t n, const char *a, const char *b)
{
    if ((size_t)snprintf(out, n, "%s/%s", a, b) >= n) {
        fprintf(stderr, "test_default_model: path too long: %s/%s\n", a, b);
        exit(1);
    }
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "test_default_model: cannot open %s\n", path);
        exit(1);
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (!s || fread(s, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "test_default_model: cannot read %s\n", path);
        exit(1);
    }
    s[n] = 0;
    fclose(f);
    return s;
}

static const char *source_dir(void)
{
    const char *s = getenv("RADFUSE_SOURCE");
    if (!s || !*s) {
        fprintf(stderr, "test_default_model: RADFUSE_SOURCE (the source tree) is not set\n");
        exit(1);
    }
    return s;
}

typedef struct env {
    rf_backend *be;
    rf_fusion *model;
} env;

static void env_open(env *e, const char *device, const char *model_dir)
{
    rf_err err;
    if (rf_backend_create(&e->be, device, 0, &err) || rf_fusion_load(&e->model, model_dir, e->be, &err)) {
        fprintf(stderr, "test_default_model: %s: %s\n", device, err.msg);
        exit(1);
    }
}

static void env_close(env *e)
{
    rf_fusion_free(e->model);
    rf_backend_destroy(e->be);
}

static const rf_result_finding *finding(const rf_read_result *r, const char *code)
{
    for (size_t k = 0; k < r->nfindings; k++)
        if (strcmp(r->findings[k].code, code) == 0)
            return &r->findings[k];
    return NULL;
}

/* The model directory as the trainer wrote it: labels, temperatures, sizes. */
static void check_model(const rf_fusion_info *in, const cJSON *parity, const char *model_dir)
{
    const cJSON *codes = cJSON_GetObjectItem(parity, "codes"), *temps = cJSON_GetObjectItem(parity, "temperatures");
    CHECKF(in->nlabels == cJSON_GetArraySize(codes), "%d labels, the trainer wrote %d", in->nlabels,
           cJSON_GetArraySize(codes));
    for (int k = 0; k < in->nlabels && k < cJSON_GetArraySize(codes); k++) {
        CHECKF(strcmp(in->labels[k].code, cJSON_GetArrayItem(codes, k)->valuestring) == 0, "label %d is %s", k,
               in->labels[k].code);
        double t = cJSON_GetArrayItem(temps, k)->valuedouble;
        CHECKF(fabs(in->labels[k].temperature - t) <= 1e-6 * t, "%s: temperature %g, trainer %g", in->labels[k].code,
               in->labels[k].temperature, t);
        CHECK(in->labels[k].threshold > 0 && in->labels[k].threshold < 1);
    }
    CHECK(in->text.present && in->max_prior_images == 0 && in->max_images == 1);
    long bytes = 0;
    for (int i = 0; i < in->nfiles; i++)
        if (strcmp(in->files[i].role, "weights") == 0)
            bytes += (long)in->files[i].bytes;
    CHECKF(bytes > 0 && bytes < WEIGHTS_MAX, "weights of %s: %ld bytes", model_dir, bytes);
    printf("model %s: %d findings, weights %.1f MB, sha256 %.16s...\n", in->name, in->nlabels, bytes / 1e6,
           in->sha256);
}

/* Reads the study of one row on one backend and compares it with the trainer's numbers;
 * returns the largest probability difference. */
static double check_row(env *e, const cJSON *row, const char *study_dir, const rf_dataset_study_info *info)
{
    char dcm[512], note[512], labs[512];
    path_join(dcm, sizeof dcm, study_dir, "study");
    path_join(note, sizeof note, study_dir, "note.txt");
    path_join(labs, sizeof labs, study_dir, "labs.csv");
    const char *study[] = {dcm}, *notes[] = {note}, *labfiles[] = {labs};
    rf_read_request req = {.study = study,
                           .nstudy = 1,
                           .notes = notes,
                           .nnotes = info->has_note ? 1 : 0,
                           .labs = labfiles,
                           .nlabs = info->nlabs ? 1 : 0,
                           .saliency = "none"};
    rf_read_result r;
    rf_err err;
    int rc = rf_read(e->model, &req, &r, &err);
    CHECKF(rc == 0, "row %d: %s", cJSON_GetObjectItem(row, "row")->valueint, rc ? err.msg : "");
    double worst = 0;
    if (rc == 0) {
        const char *kind = cJSON_GetObjectItem(row, "inputs")->valuestring;
        int want_text = strstr(kind, "note") != NULL, want_labs = strstr(kind, "labs") != NULL;
        CHECKF(r.inputs_used[RF_MODALITY_IMAGE] == 1 && r.inputs_used[RF_MODALITY_TEXT] == want_text &&
                   r.inputs_used[RF_MODALITY_LABS] == want_labs,
               "row %d: inputs used %d %d %d, the trainer's row had %s", cJSON_GetObjectItem(row, "row")->valueint,
               r.inputs_used[RF_MODALITY_IMAGE], r.inputs_used[RF_MODALITY_TEXT], r.inputs_used[RF_MODALITY_LABS],
               kind);
        const cJSON *probs = cJSON_GetObjectItem(row, "probabilities"), *logits = cJSON_GetObjectItem(row, "logits");
        const rf_fusion_info *in = rf_fusion_get_info(e->model);
        for (int k = 0; k < in->nlabels; k++) {
            const rf_result_finding *f = finding(&r, in->labels[k].code);
            CHECK(f != NULL);
            if (!f)
                continue;
            double p = cJSON_GetArrayItem(probs, k)->valuedouble, z = cJSON_GetArrayItem(logits, k)->valuedouble;
            double dp = fabs(f->probability - p), dz = fabs(f->logit - z);
            CHECKF(dp <= PROB_TOL && dz <= LOGIT_TOL, "row %d %s on %s: p %.6f (trainer %.6f), logit %.5f (trainer %.5f)",
                   cJSON_GetObjectItem(row, "row")->valueint, f->code, rf_backend_name(e->be), f->probability, p,
                   f->logit, z);
            worst = dp > worst ? dp : worst;
        }
    }
    rf_result_free(&r);
    return worst;
}

int main(void)
{
    char model_dir[512], parity_path[512], data[512];
    path_join(model_dir, sizeof model_dir, source_dir(), "models/default");
    path_join(parity_path, sizeof parity_path, source_dir(), "tests/data/default_model_parity.json");
    path_join(data, sizeof data, test_shared_dir(), "data/covid-chestxray");
    char *text = slurp(parity_path);
    cJSON *parity = cJSON_Parse(text);
    free(text);
    const cJSON *rows = parity ? cJSON_GetObjectItem(parity, "rows") : NULL;
    if (!cJSON_IsArray(rows) || cJSON_GetArraySize(rows) < 3) {
        fprintf(stderr, "test_default_model: %s: no rows\n", parity_path);
        return 1;
    }
    snprintf(tmp_root, sizeof tmp_root, "/tmp/radfuse-test-default-XXXXXX");
    if (!mkdtemp(tmp_root)) {
        perror("mkdtemp");
        return 1;
    }

    env cpu, vk;
    env_open(&cpu, "cpu", model_dir);
    env_open(&vk, "vulkan", model_dir);
    CHECKF(strncmp(rf_backend_name(vk.be), "vulkan", 6) == 0, "Vulkan backend is %s (%s)", rf_backend_name(vk.be),
           rf_backend_warning(vk.be) ? rf_backend_warning(vk.be) : "");
    check_model(rf_fusion_get_info(cpu.model), parity, model_dir);

    double worst_cpu = 0, worst_vk = 0;
    int kinds[3] = {0, 0, 0};
    const cJSON *row;
    cJSON_ArrayForEach(row, rows)
    {
        int idx = cJSON_GetObjectItem(row, "row")->valueint;
        char dir[600], name[32];
        snprintf(name, sizeof name, "r%d", idx);
        path_join(dir, sizeof dir, tmp_root, name);
        rf_dataset_study_info info;
        rf_err err;
        if (rf_dataset_study(data, idx, NULL, dir, &info, &err)) {
            CHECKF(0, "row %d: %s", idx, err.msg);
            continue;
        }
        CHECKF(strcmp(info.dicom, "") != 0, "row %d: no study written", idx);
        const char *kind = cJSON_GetObjectItem(row, "inputs")->valuestring;
        kinds[strcmp(kind, "note+labs") == 0 ? 0 : strcmp(kind, "note") == 0 ? 1 : 2]++;
        double c = check_row(&cpu, row, dir, &info), v = check_row(&vk, row, dir, &info);
        worst_cpu = c > worst_cpu ? c : worst_cpu;
        worst_vk = v > worst_vk ? v : worst_vk;
    }
    CHECKF(kinds[0] && kinds[1] && kinds[2], "rows by inputs: %d note+labs, %d note, %d other", kinds[0], kinds[1],
           kinds[2]);
    printf("%d validation rows: max |p - trainer| = %.3g (cpu), %.3g (%s); tolerance %g\n", cJSON_GetArraySize(rows),
           worst_cpu, worst_vk, rf_backend_name(vk.be), PROB_TOL);
    env_close(&cpu);
    env_close(&vk);
    cJSON_Delete(parity);

    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp_root);
    if (test_failures == 0 && system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmp_root);
    return test_finish("test_default_model");
}
