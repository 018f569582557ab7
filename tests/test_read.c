/*
 * A study-level read end to end (issue: fusion, saliency and `radfuse read`):
 * a DICOM study built from a covid-chestxray row (image, clinical note,
 * labs) through a small fusion model the test writes, on the CPU and on
 * Vulkan (lavapipe in CI): the same probabilities within 1e-4, every input
 * used, saliency maps on the image's own grid, text spans inside the note,
 * and every output written. Then the bad inputs: no usable image, several
 * studies, unreadable and empty notes, a broken lab file, a model without a
 * text encoder, a prior the model does not take.
 */
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
#include "tests/model_maker.h"
#include "tests/testutil.h"

#define ROW_WITH_LABS 440 /* a CC BY 4.0 row with a note and all five lab columns */
#define ROW_OTHER 3       /* another patient, a note, no labs */

static char tmp_root[256];

static void path_join(char *out, size_t n, const char *a, const char *b)
{
    if ((size_t)snprintf(out, n, "%s/%s", a, b) >= n) {
        fprintf(stderr, "test_read: path too long: %s/%s\n", a, b);
        exit(1);
    }
}

static int file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (int)sb.st_size : -1;
}

static void write_text(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(text, 1, len, f) != len) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
    fclose(f);
}

static void make_study(long row, const char *out, rf_dataset_study_info *info)
{
    char data[512];
    snprintf(data, sizeof data, "%s/data/covid-chestxray", test_shared_dir());
    rf_err err;
    if (rf_dataset_study(data, row, NULL, out, info, &err)) {
        fprintf(stderr, "test_read: %s\n", err.msg);
        exit(1);
    }
}

static const rf_result_finding *finding(const rf_read_result *r, const char *code)
{
    for (size_t k = 0; k < r->nfindings; k++)
        if (strcmp(r->findings[k].code, code) == 0)
            return &r->findings[k];
    return NULL;
}

static int has_warning(const rf_read_result *r, const char *needle)
{
    for (size_t i = 0; i < r->nwarnings; i++)
        if (strstr(r->warnings[i], needle))
            return 1;
    return 0;
}

typedef struct read_env {
    rf_backend *be;
    rf_fusion *model;
} read_env;

static void env_open(read_env *e, const char *device, const char *model_dir)
{
    rf_err err;
    if (rf_backend_create(&e->be, device, 0, &err) || rf_fusion_load(&e->model, model_dir, e->be, &err)) {
        fprintf(stderr, "test_read: %s: %s\n", device, err.msg);
        exit(1);
    }
}

static void env_close(read_env *e)
{
    rf_fusion_free(e->model);
    rf_backend_destroy(e->be);
}

/* The full read of the study on one backend, checked; returns the result. */
static void read_full(read_env *e, const char *study_dir, const char *method, rf_read_result *r)
{
    char dcm[512], note[512], labs[512];
    path_join(dcm, sizeof dcm, study_dir, "study");
    path_join(note, sizeof note, study_dir, "note.txt");
    path_join(labs, sizeof labs, study_dir, "labs.csv");
    const char *study[] = {dcm}, *notes[] = {note}, *labfiles[] = {labs};
    rf_read_request req = {
        .study = study, .nstudy = 1, .notes = notes, .nnotes = 1, .labs = labfiles, .nlabs = 1, .saliency = method,
    };
    rf_err err;
    int rc = rf_read(e->model, &req, r, &err);
    CHECKF(rc == 0, "%s: %s", method, rc ? err.msg : "");
}

static void check_full(const rf_read_result *r, const rf_dataset_study_info *info, const rf_fusion_info *mi,
                       int maps_expected)
{
    CHECK(r->nfindings == (size_t)mi->nlabels);
    CHECK(r->inputs_used[RF_MODALITY_IMAGE] == 1);
    CHECK(r->inputs_used[RF_MODALITY_TEXT] == 1);
    CHECK(r->inputs_used[RF_MODALITY_LABS] == 1);
    CHECK(r->inputs_used[RF_MODALITY_PRIOR] == 0);
    CHECK(r->nimages == 1 && r->images[0].used == 1 && r->images[0].display);
    CHECK(r->nimages == 1 && r->images[0].rows == info->rows && r->images[0].cols == info->cols);
    CHECK(r->nnotes == 1 && r->notes[0].used == 1);
    CHECKF(r->nlabs >= 3, "%zu labs", r->nlabs);
    CHECK(r->study.study_instance_uid && strncmp(r->study.study_instance_uid, "2.25.", 5) == 0);
    CHECK(r->study.patient_id == NULL && r->study.patient_name == NULL); /* no PHI unless asked */
    for (size_t k = 0; k < r->nfindings; k++) {
        const rf_result_finding *f = &r->findings[k];
        CHECK(f->probability >= 0 && f->probability <= 1);
        CHECK(fabs(f->probability - 1 / (1 + exp(-f->logit / f->temperature))) < 1e-5);
        CHECK(f->positive == (f->probability >= f->threshold));
        if (k)
            CHECK(f->probability <= r->findings[k - 1].probability);
        double sum = 0;
        for (int m = 0; m < RF_MODALITY_COUNT; m++)
            sum += f->input_weight[m];
        CHECKF(fabs(sum - 1) < 1e-6, "input weights of %s sum to %g", f->code, sum);
        if (maps_expected) {
            CHECK(f->nmaps == 1);
            if (f->nmaps == 1) {
                const rf_result_map *m = &f->maps[0];
                CHECK(m->image == 0 && m->values);
                CHECK(m->peak_row >= 0 && m->peak_row < info->rows && m->peak_col >= 0 && m->peak_col < info->cols);
                float mx = 0;
                for (long i = 0; i < (long)info->rows * info->cols; i++)
                    mx = m->values[i] > mx ? m->values[i] : mx;
                CHECKF(fabs(mx - 1) < 1e-6 || mx == 0, "map max %g", mx);
            }
        }
        for (size_t j = 0; j < f->nspans; j++) {
            const rf_result_span *s = &f->spans[j];
            CHECK(s->note == 0 && s->begin < s->end && s->end <= r->notes[0].len);
            CHECK(fabsf(s->weight) <= 1.0f + 1e-6f);
        }
    }
}

/* The CPU and Vulkan reads of one study: every probability within 1e-4. */
static void test_backends(const char *model_dir, const char *study_dir, const rf_dataset_study_info *info)
{
    read_env cpu, vk;
    env_open(&cpu, "cpu", model_dir);
    env_open(&vk, "vulkan", model_dir);
    CHECKF(strncmp(rf_backend_name(vk.be), "vulkan", 6) == 0, "Vulkan backend is %s (%s)", rf_backend_name(vk.be),
           rf_backend_warning(vk.be) ? rf_backend_warning(vk.be) : "");
    const char *methods[] = {"gradcam", "rollout", "occlusion", "none"};
    for (int mi = 0; mi < 4; mi++) {
        rf_read_result a, b;
        read_full(&cpu, study_dir, methods[mi], &a);
        read_full(&vk, study_dir, methods[mi], &b);
        check_full(&a, info, rf_fusion_get_info(cpu.model), mi < 3);
        check_full(&b, info, rf_fusion_get_info(vk.model), mi < 3);
        double worst = 0;
        for (size_t k = 0; k < a.nfindings && a.nfindings == b.nfindings; k++) {
            const rf_result_finding *fb = finding(&b, a.findings[k].code);
            CHECK(fb != NULL);
            if (fb)
                worst = fmax(worst, fabs(a.findings[k].probability - fb->probability));
        }
        CHECKF(worst <= 1e-4, "%s: CPU vs Vulkan probabilities differ by %g", methods[mi], worst);
        printf("read (%s): CPU vs %s max |dp| = %.3g over %zu findings\n", methods[mi], rf_backend_name(vk.be), worst,
               a.nfindings);
        rf_result_free(&a);
        rf_result_free(&b);
    }
    env_close(&cpu);
    env_close(&vk);
}

/* The outputs of one read, written as cli/cmd_read.c writes them. */
static void test_outputs(const char *model_dir, const char *study_dir)
{
    read_env e;
    env_open(&e, "cpu", model_dir);
    rf_read_result r;
    read_full(&e, study_dir, "gradcam", &r);
    char out[512], p[700];
    path_join(out, sizeof out, tmp_root, "out");
    mkdir(out, 0777);
    rf_err err;
    rf_overlay_opts ov = {.colormap = "viridis", .alpha = 0.5f, .floor = 0.2f};
    CHECKF(rf_result_write_overlays(&r, out, &ov, &err) == 0, "%s", err.msg);
    CHECKF(rf_result_write_dicom(&r, out, &err) == 0, "%s", err.msg);
    CHECKF(rf_result_write_html(&r, out, &err) == 0, "%s", err.msg);
    path_join(p, sizeof p, out, "report.fhir.json");
    CHECKF(rf_result_write_fhir(&r, p, &err) == 0, "%s", err.msg);
    path_join(p, sizeof p, out, "result.json");
    CHECKF(rf_result_write_json(&r, p, &err) == 0, "%s", err.msg);
    CHECK(file_size(p) > 1000);
    path_join(p, sizeof p, out, "report.html");
    CHECK(file_size(p) > 1000);
    for (size_t k = 0; k < r.nfindings; k++) {
        CHECK(r.findings[k].nmaps == 1 && r.findings[k].maps[0].overlay && r.findings[k].maps[0].dicom);
        if (r.findings[k].nmaps == 1 && r.findings[k].maps[0].overlay) {
            snprintf(p, sizeof p, "%s/%s", out, r.findings[k].maps[0].overlay);
            CHECK(file_size(p) > 100);
        }
    }
    /* the schema check of the read's own result.json (python3-jsonschema) */
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "python3 %s/tests/check_result_schema.py %s/docs/result.schema.json %s/result.json",
             getenv("RADFUSE_SOURCE") ? getenv("RADFUSE_SOURCE") : ".",
             getenv("RADFUSE_SOURCE") ? getenv("RADFUSE_SOURCE") : ".", out);
    CHECKF(system(cmd) == 0, "%s", cmd);
    rf_result_free(&r);
    env_close(&e);
}

static void test_bad_inputs(const char *model_dir, const char *study_dir, const char *other_dir)
{
    read_env e;
    env_open(&e, "cpu", model_dir);
    rf_err err;
    rf_read_result r;
    char dcm[512], other[512], note[512], p[700];
    path_join(dcm, sizeof dcm, study_dir, "study");
    path_join(other, sizeof other, other_dir, "study");
    path_join(note, sizeof note, study_dir, "note.txt");

    /* no usable image: a directory of one file that is not DICOM */
    char junk[512];
    path_join(junk, sizeof junk, tmp_root, "junk");
    mkdir(junk, 0777);
    path_join(p, sizeof p, junk, "not-dicom.dcm");
    write_text(p, "this is not DICOM\n", 18);
    {
        const char *study[] = {junk};
        rf_read_request req = {.study = study, .nstudy = 1, .saliency = "none"};
        int rc = rf_read(e.model, &req, &r, &err);
        CHECK(rc != 0);
        CHECKF(strstr(err.msg, "no readable DICOM") != NULL, "%s", err.msg);
        CHECK(strstr(err.msg, "not-dicom") == NULL); /* file names stay out of messages */
        rf_result_free(&r);
    }
    /* a study the model does not read: a CT for a CR/DX model */
    {
        char ct[512];
        snprintf(ct, sizeof ct, "%s/data/dicom/pydicom-test-files/CT_small.dcm", test_shared_dir());
        const char *study[] = {ct};
        rf_read_request req = {.study = study, .nstudy = 1, .saliency = "none"};
        int rc = rf_read(e.model, &req, &r, &err);
        CHECK(rc != 0);
        CHECKF(strstr(err.msg, "reads CR, DX images") && strstr(err.msg, "has CT"), "%s", err.msg);
        CHECK(r.nimages == 1 && r.images[0].used == 0 && strstr(r.images[0].reason, "not CT"));
        rf_result_free(&r);
    }
    /* two studies without a choice, then with one */
    {
        const char *study[] = {dcm, other};
        rf_read_request req = {.study = study, .nstudy = 2, .saliency = "none"};
        int rc = rf_read(e.model, &req, &r, &err);
        CHECK(rc != 0 && strstr(err.msg, "2 studies"));
        rf_result_free(&r);
        rf_dataset_study_info oi;
        (void)oi;
    }
    /* unreadable, invalid and empty notes, a broken lab file: warnings, the read goes on */
    {
        char bad_utf8[512], empty[512], missing[512], badlabs[512];
        path_join(bad_utf8, sizeof bad_utf8, tmp_root, "bad.txt");
        path_join(empty, sizeof empty, tmp_root, "empty.txt");
        path_join(missing, sizeof missing, tmp_root, "missing.txt");
        path_join(badlabs, sizeof badlabs, tmp_root, "bad.csv");
        write_text(bad_utf8, "fever \xff\xfe cough", 14);
        write_text(empty, "  \n", 3);
        write_text(badlabs, "{\"resourceType\": ", 17);
        const char *study[] = {dcm}, *notes[] = {bad_utf8, empty, missing, note}, *labs[] = {badlabs};
        rf_read_request req = {
            .study = study, .nstudy = 1, .notes = notes, .nnotes = 4, .labs = labs, .nlabs = 1, .saliency = "none"};
        int rc = rf_read(e.model, &req, &r, &err);
        CHECKF(rc == 0, "%s", rc ? err.msg : "");
        CHECK(has_warning(&r, "note 1:"));
        CHECK(has_warning(&r, "is empty"));
        CHECK(has_warning(&r, "note 3:"));
        CHECK(has_warning(&r, "labs 1:"));
        CHECK(r.inputs_used[RF_MODALITY_TEXT] == 1);  /* the good note */
        CHECK(r.inputs_used[RF_MODALITY_LABS] == 0);  /* absent token */
        for (size_t i = 0; i < r.nwarnings; i++)
            CHECKF(strstr(r.warnings[i], tmp_root) == NULL, "path in warning: %s", r.warnings[i]);
        rf_result_free(&r);
    }
    /* a prior of another patient: a warning, read without it */
    {
        const char *study[] = {dcm}, *prior[] = {other};
        rf_read_request req = {.study = study, .nstudy = 1, .prior = prior, .nprior = 1, .saliency = "none"};
        int rc = rf_read(e.model, &req, &r, &err);
        CHECK(rf_fusion_get_info(e.model)->max_prior_images > 0);
        CHECKF(rc == 0, "%s", rc ? err.msg : "");
        CHECK(has_warning(&r, "another patient"));
        CHECK(r.inputs_used[RF_MODALITY_PRIOR] == 0 && r.study.prior_study_instance_uid == NULL);
        int listed = 0;
        for (size_t i = 0; i < r.nimages; i++)
            if (r.images[i].prior)
                listed += !r.images[i].used && strstr(r.images[i].reason, "another patient") != NULL;
        CHECK(listed == 1);
        rf_result_free(&r);
    }
    /* a prior of the same patient six days earlier (patient 2: rows 0 and 3) */
    {
        char p0[512], p3[512], d0[600], d3[600];
        path_join(p0, sizeof p0, tmp_root, "p2-row0");
        path_join(p3, sizeof p3, tmp_root, "p2-row3");
        rf_dataset_study_info i0, i3;
        make_study(0, p0, &i0);
        make_study(3, p3, &i3);
        path_join(d0, sizeof d0, p0, "study");
        path_join(d3, sizeof d3, p3, "study");
        const char *study[] = {d3}, *prior[] = {d0};
        rf_read_request req = {.study = study, .nstudy = 1, .prior = prior, .nprior = 1, .saliency = "gradcam"};
        int rc = rf_read(e.model, &req, &r, &err);
        CHECKF(rc == 0, "%s", rc ? err.msg : "");
        CHECK(r.inputs_used[RF_MODALITY_PRIOR] == 1 && r.study.prior_study_instance_uid);
        CHECK(r.study.prior_study_date && strcmp(r.study.prior_study_date, i0.study_date) == 0);
        CHECK(r.study.study_date && strcmp(r.study.study_date, i3.study_date) == 0);
        CHECK(r.nwarnings == 0);
        for (size_t k = 0; k < r.nfindings; k++) /* maps on the current study's image only */
            CHECK(r.findings[k].nmaps == 1 && !r.images[r.findings[k].maps[0].image].prior);
        rf_read_result noprior;
        rf_read_request req2 = {.study = study, .nstudy = 1, .saliency = "none"};
        rc = rf_read(e.model, &req2, &noprior, &err);
        CHECKF(rc == 0, "%s", rc ? err.msg : "");
        double moved = 0;
        for (size_t k = 0; k < r.nfindings && k < noprior.nfindings; k++) {
            const rf_result_finding *g = finding(&noprior, r.findings[k].code);
            moved = g ? fmax(moved, fabs(g->probability - r.findings[k].probability)) : moved;
        }
        CHECKF(moved > 1e-6, "the prior changed no probability (%g)", moved);
        rf_result_free(&noprior);
        rf_result_free(&r);
    }
    /* image only: the other inputs are the absent tokens */
    {
        const char *study[] = {dcm};
        rf_read_request req = {.study = study, .nstudy = 1, .saliency = "gradcam"};
        int rc = rf_read(e.model, &req, &r, &err);
        CHECKF(rc == 0, "%s", rc ? err.msg : "");
        CHECK(r.inputs_used[RF_MODALITY_IMAGE] == 1 && r.inputs_used[RF_MODALITY_TEXT] == 0 &&
              r.inputs_used[RF_MODALITY_LABS] == 0);
        for (size_t k = 0; k < r.nfindings; k++)
            CHECK(r.findings[k].nspans == 0 && r.findings[k].input_weight[RF_MODALITY_TEXT] == 0);
        rf_result_free(&r);
    }
    /* PHI only when asked */
    {
        const char *study[] = {dcm};
        rf_read_request req = {.study = study, .nstudy = 1, .saliency = "none", .include_phi = 1};
        int rc = rf_read(e.model, &req, &r, &err);
        CHECKF(rc == 0, "%s", rc ? err.msg : "");
        CHECK(r.study.patient_id && strncmp(r.study.patient_id, "COVID-", 6) == 0);
        rf_result_free(&r);
    }
    env_close(&e);
}

int main(void)
{
    snprintf(tmp_root, sizeof tmp_root, "/tmp/radfuse-test-read-XXXXXX");
    if (!mkdtemp(tmp_root)) {
        perror("mkdtemp");
        return 1;
    }
    char model_dir[512], study_dir[512], other_dir[512];
    path_join(model_dir, sizeof model_dir, tmp_root, "model");
    path_join(study_dir, sizeof study_dir, tmp_root, "s440");
    path_join(other_dir, sizeof other_dir, tmp_root, "s3");
    rf_fusion_random_opts o;
    test_model_defaults(&o);
    test_make_model(model_dir, &o);
    rf_dataset_study_info info, other;
    make_study(ROW_WITH_LABS, study_dir, &info);
    make_study(ROW_OTHER, other_dir, &other);
    CHECK(info.has_note && info.nlabs >= 3);

    test_backends(model_dir, study_dir, &info);
    test_outputs(model_dir, study_dir);
    test_bad_inputs(model_dir, study_dir, other_dir);

    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp_root);
    if (test_failures == 0 && system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmp_root);
    return test_finish("test_read");
}
