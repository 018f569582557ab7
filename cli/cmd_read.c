/*
 * radfuse read: a study-level read (fusion/read.c) and its outputs
 * (report/): a summary on stdout (or result.json with --json), and with
 * --out DIR the files of docs/read.md: result.json, overlays/, report.html,
 * report.fhir.json, dicom/.
 *
 * Exit status: 0 when the read succeeded and every output was written (warnings
 * allowed: they are in the result and on stderr), 2 when it failed, 1 on usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "radfuse/fusion.h"
#include "radfuse/read.h"
#include "radfuse/result.h"
#include "runtime/fileio.h"

#define READ_MAX_PATHS 256

static const char read_usage[] =
    "usage: radfuse read STUDY... [--study UID] [--notes FILE]... [--labs FILE]... [--fhir FILE]...\n"
    "                   [--prior STUDY]... [--model DIR] [--out DIR] [--device D] [--threads N]\n"
    "                   [--precision fp32|fp16] [--saliency gradcam|rollout|occlusion|none] [--json]\n"
    "                   [--include-phi] [--no-dicom] [--colormap viridis|inferno] [--alpha A]\n";

static const cli_cmd read_cmd = {"read", read_usage};

typedef struct path_list {
    const char *v[READ_MAX_PATHS];
    int n;
} path_list;

static int push(path_list *l, const char *flag, const char *p)
{
    if (l->n == READ_MAX_PATHS)
        return cli_usage(&read_cmd, "too many %s paths", flag);
    l->v[l->n++] = p;
    return 0;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void print_summary(const rf_read_result *r, const char *out_dir, int dicom, FILE *f)
{
    size_t used = 0, skipped = 0, notes = 0;
    for (size_t i = 0; i < r->nimages; i++)
        if (!r->images[i].prior)
            r->images[i].used ? used++ : skipped++;
    for (size_t i = 0; i < r->nnotes; i++)
        notes += r->notes[i].used;
    fprintf(f, "study %s", r->study.study_instance_uid ? r->study.study_instance_uid : "?");
    if (r->study.modalities)
        fprintf(f, " (%s", r->study.modalities);
    if (r->study.study_date)
        fprintf(f, ", %s", r->study.study_date);
    fprintf(f, "%s\n", r->study.modalities ? ")" : "");
    fprintf(f, "inputs: %zu image%s used (%zu skipped), %zu note%s, %zu lab%s%s\n", used, used == 1 ? "" : "s",
            skipped, notes, notes == 1 ? "" : "s", r->nlabs, r->nlabs == 1 ? "" : "s",
            r->inputs_used[RF_MODALITY_PRIOR] ? ", prior study" : "");
    fprintf(f, "model: %s %s on %s (%s), saliency %s\n\n", r->model.name ? r->model.name : "?",
            r->model.version ? r->model.version : "", r->model.backend, r->model.precision, r->saliency);
    int w = 7;
    for (size_t k = 0; k < r->nfindings; k++) {
        int l = (int)strlen(r->findings[k].display);
        w = l > w ? (l > 40 ? 40 : l) : w;
    }
    fprintf(f, "%-*s  probability  threshold  call      driven by\n", w, "finding");
    for (size_t k = 0; k < r->nfindings; k++) {
        const rf_result_finding *fd = &r->findings[k];
        fprintf(f, "%-*.*s  %11.3f  %9.2f  %-8s ", w, w, fd->display, fd->probability, fd->threshold,
                fd->positive ? "POSITIVE" : "negative");
        int any = 0;
        for (int m = 0; m < RF_MODALITY_COUNT; m++)
            if (r->inputs_used[m] && fd->input_weight[m] > 0) {
                fprintf(f, "%s %s %.2f", any ? "," : "", rf_modality_name((rf_modality)m), fd->input_weight[m]);
                any = 1;
            }
        if (!any) {
            for (int m = 0; m < RF_MODALITY_COUNT; m++)
                if (r->inputs_used[m]) {
                    fprintf(f, "%s %s", any ? "," : "", rf_modality_name((rf_modality)m));
                    any = 1;
                }
        }
        if (fd->nmaps && fd->maps[0].values) {
            const rf_result_map *mp = &fd->maps[0];
            fprintf(f, "; peak at row %d col %d", mp->peak_row, mp->peak_col);
        }
        fputc('\n', f);
    }
    if (r->nwarnings) {
        fprintf(f, "\n%zu warning%s:\n", r->nwarnings, r->nwarnings == 1 ? "" : "s");
        for (size_t i = 0; i < r->nwarnings; i++)
            fprintf(f, "  %s\n", r->warnings[i]);
    }
    if (out_dir)
        fprintf(f, "\nwritten to %s: result.json, report.html, report.fhir.json%s%s\n", out_dir,
                r->nfindings && r->findings[0].nmaps ? ", overlays/" : "", dicom ? ", dicom/" : "");
}

/* Writes every output into dir; result.json last, so it names the others. */
static int write_outputs(rf_read_result *r, const char *dir, const rf_overlay_opts *ov, int dicom, rf_err *err)
{
    double t0 = now_ms();
    char path[4200];
    int rc = rf_mkdirs(dir, 0777, err);
    int maps = 0;
    for (size_t k = 0; k < r->nfindings; k++)
        maps += r->findings[k].nmaps > 0;
    if (!rc && maps)
        rc = rf_result_write_overlays(r, dir, ov, err);
    if (!rc && dicom)
        rc = rf_result_write_dicom(r, dir, err);
    if (!rc)
        rc = rf_result_write_html(r, dir, err);
    if (!rc) {
        snprintf(path, sizeof path, "%s/report.fhir.json", dir);
        rc = rf_result_write_fhir(r, path, err);
    }
    if (!rc)
        rc = rf_result_time(r, "write", now_ms() - t0) ? rf_err_set(err, RF_ENOMEM, "out of memory") : 0;
    if (!rc) {
        snprintf(path, sizeof path, "%s/result.json", dir);
        rc = rf_result_write_json(r, path, err);
    }
    return rc;
}

int cli_read(int argc, char **argv)
{
    path_list study = {0}, prior = {0}, notes = {0}, labs = {0};
    const char *model_dir = getenv("RADFUSE_MODEL"), *out_dir = NULL, *device = NULL, *saliency = "gradcam";
    const char *study_uid = NULL, *precision_name = "fp32";
    long threads = 0;
    int json = 0, include_phi = 0, dicom = 1;
    rf_overlay_opts ov = {.colormap = "viridis", .alpha = 0.5f, .floor = 0.2f};
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int rc = 0;
        if (strcmp(a, "--json") == 0)
            json = 1;
        else if (strcmp(a, "--include-phi") == 0)
            include_phi = 1;
        else if (strcmp(a, "--no-dicom") == 0)
            dicom = 0;
        else if (strcmp(a, "--notes") == 0) {
            const char *v = cli_value(&read_cmd, argc, argv, &i, &rc);
            if (!rc)
                rc = push(&notes, a, v);
        } else if (strcmp(a, "--labs") == 0 || strcmp(a, "--fhir") == 0) {
            const char *v = cli_value(&read_cmd, argc, argv, &i, &rc);
            if (!rc)
                rc = push(&labs, a, v);
        } else if (strcmp(a, "--prior") == 0) {
            const char *v = cli_value(&read_cmd, argc, argv, &i, &rc);
            if (!rc)
                rc = push(&prior, a, v);
        } else if (strcmp(a, "--study") == 0)
            study_uid = cli_value(&read_cmd, argc, argv, &i, &rc);
        else if (strcmp(a, "--model") == 0)
            model_dir = cli_value(&read_cmd, argc, argv, &i, &rc);
        else if (strcmp(a, "--out") == 0)
            out_dir = cli_value(&read_cmd, argc, argv, &i, &rc);
        else if (strcmp(a, "--device") == 0)
            device = cli_value(&read_cmd, argc, argv, &i, &rc);
        else if (strcmp(a, "--saliency") == 0)
            saliency = cli_value(&read_cmd, argc, argv, &i, &rc);
        else if (strcmp(a, "--colormap") == 0)
            ov.colormap = cli_value(&read_cmd, argc, argv, &i, &rc);
        else if (strcmp(a, "--precision") == 0) {
            precision_name = cli_value(&read_cmd, argc, argv, &i, &rc);
            if (!rc && strcmp(precision_name, "fp32") != 0 && strcmp(precision_name, "fp16") != 0)
                rc = cli_usage(&read_cmd, "--precision must be fp32 or fp16, not '%s'", precision_name);
        } else if (strcmp(a, "--alpha") == 0) {
            const char *v = cli_value(&read_cmd, argc, argv, &i, &rc);
            char *end = NULL;
            double al = v ? strtod(v, &end) : 0;
            if (!rc && (!end || *end || !(al >= 0 && al <= 1)))
                rc = cli_usage(&read_cmd, "--alpha must be a number in [0, 1], not '%s'", v);
            ov.alpha = (float)al;
        } else if (strcmp(a, "--threads") == 0) {
            const char *v = cli_value(&read_cmd, argc, argv, &i, &rc);
            if (!rc && cli_parse_int(a, v, 0, 1024, &threads))
                rc = CLI_EXIT_USAGE;
        } else if (a[0] == '-' && a[1])
            rc = cli_usage(&read_cmd, "unknown option %s", a);
        else
            rc = push(&study, "STUDY", a);
        if (rc)
            return rc;
    }
    if (study.n == 0)
        return cli_usage(&read_cmd, "%s", "no STUDY given");
    if (!model_dir)
        return cli_usage(&read_cmd, "%s", "no model: give --model DIR or set RADFUSE_MODEL");

    rf_backend *be;
    if (cli_backend(&be, device, threads))
        return CLI_EXIT_FAIL;
    rf_err err;
    if (strcmp(precision_name, "fp16") == 0 && rf_backend_set_precision(be, RF_PRECISION_FP16, &err)) {
        rf_backend_destroy(be);
        return cli_fail("read: %s", err.msg);
    }
    rf_fusion *model;
    if (rf_fusion_load(&model, model_dir, be, &err)) {
        rf_backend_destroy(be);
        return cli_fail("read: %s", err.msg);
    }
    rf_read_request req = {
        .study = study.v,
        .nstudy = study.n,
        .study_uid = study_uid,
        .prior = prior.v,
        .nprior = prior.n,
        .notes = notes.v,
        .nnotes = notes.n,
        .labs = labs.v,
        .nlabs = labs.n,
        .saliency = saliency,
        .include_phi = include_phi,
        .precision = precision_name,
        .threads = (int)threads,
    };
    rf_read_result r;
    int rc = rf_read(model, &req, &r, &err);
    for (size_t i = 0; i < r.nwarnings; i++)
        fprintf(stderr, "radfuse: read: warning: %s\n", r.warnings[i]);
    if (rc) {
        fprintf(stderr, "radfuse: read: %s\n", err.msg);
    } else if (out_dir) {
        rc = write_outputs(&r, out_dir, &ov, dicom, &err);
        if (rc)
            fprintf(stderr, "radfuse: read: %s\n", err.msg);
    }
    if (!rc && json) {
        char *text = NULL;
        size_t len = 0;
        rc = rf_result_json(&r, &text, &len, &err);
        if (rc)
            fprintf(stderr, "radfuse: read: %s\n", err.msg);
        else
            fwrite(text, 1, len, stdout);
        free(text);
    } else if (!rc) {
        print_summary(&r, out_dir, dicom, stdout);
    }
    rf_result_free(&r);
    rf_fusion_free(model);
    rf_backend_destroy(be);
    return rc ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}
