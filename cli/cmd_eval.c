/*
 * radfuse eval: a model directory against a labelled dataset
 * (datasets/eval*.c, docs/eval.md): per-target AUROC with bootstrap
 * intervals, AUPRC, calibration, sensitivity / specificity at the stored
 * thresholds, and the ablation over input sets; tables on stdout, or one
 * JSON object with --json.
 *
 * Exit status: 0 when the evaluation ran (rows whose image failed are
 * counted in the output), 2 when it could not, 1 on usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "radfuse/datasets.h"
#include "radfuse/eval.h"
#include "radfuse/fusion.h"
#include "radfuse/saliency.h"
#include "runtime/fileio.h"


static const char eval_usage[] =
    "usage: radfuse eval DATASET --model DIR [--json] [--split FILE] [--subset val|test|train|all]\n"
    "                    [--limit N] [--layout NAME] [--device D] [--threads N] [--bootstrap N]\n"
    "                    [--seed S] [--mask-findings] [--predictions FILE]\n"
    "                    [--saliency gradcam|rollout|occlusion --boxes FILE]\n";

static const cli_cmd eval_cmd = {"eval", eval_usage};

/* "row i of N" on a terminal's stderr, at most twice a second. */
typedef struct progress {
    double last;
} progress;

static void on_progress(void *ctx, size_t done, size_t total)
{
    progress *p = ctx;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double now = (double)ts.tv_sec + ts.tv_nsec / 1e9;
    if (done < total && now - p->last < 0.5)
        return;
    p->last = now;
    fprintf(stderr, "\rradfuse: eval: row %zu of %zu%s", done, total, done == total ? "\n" : "");
}

int cli_eval(int argc, char **argv)
{
    const char *data = NULL, *model_dir = getenv("RADFUSE_MODEL"), *device = NULL, *layout_name = "auto";
    const char *predictions = NULL, *boxes_file = NULL;
    long threads = 0, limit = 0, bootstrap = 1000, seed = 1;
    int json = 0;
    rf_eval_opts o;
    rf_eval_opts_init(&o);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int rc = 0;
        if (strcmp(a, "--json") == 0)
            json = 1;
        else if (strcmp(a, "--mask-findings") == 0)
            o.mask_findings = 1;
        else if (strcmp(a, "--model") == 0)
            model_dir = cli_value(&eval_cmd, argc, argv, &i, &rc);
        else if (strcmp(a, "--split") == 0)
            o.split_file = cli_value(&eval_cmd, argc, argv, &i, &rc);
        else if (strcmp(a, "--predictions") == 0)
            predictions = cli_value(&eval_cmd, argc, argv, &i, &rc);
        else if (strcmp(a, "--boxes") == 0)
            boxes_file = cli_value(&eval_cmd, argc, argv, &i, &rc);
        else if (strcmp(a, "--saliency") == 0) {
            const char *v = cli_value(&eval_cmd, argc, argv, &i, &rc);
            rf_saliency_method m;
            rf_err e;
            if (!rc && rf_saliency_method_parse(v, &m, &e))
                rc = cli_usage(&eval_cmd, "%s", e.msg);
            else if (!rc)
                o.saliency = (int)m;
        }
        else if (strcmp(a, "--layout") == 0)
            layout_name = cli_value(&eval_cmd, argc, argv, &i, &rc);
        else if (strcmp(a, "--device") == 0)
            device = cli_value(&eval_cmd, argc, argv, &i, &rc);
        else if (strcmp(a, "--subset") == 0) {
            const char *v = cli_value(&eval_cmd, argc, argv, &i, &rc);
            if (!rc) {
                if (strcmp(v, "all") == 0)
                    o.subset = RF_SPLIT_NONE;
                else if ((o.subset = (int)rf_split_parse(v)) == RF_SPLIT_NONE)
                    rc = cli_usage(&eval_cmd, "--subset must be val, test, train or all, not '%s'", v);
            }
        } else if (strcmp(a, "--limit") == 0) {
            const char *v = cli_value(&eval_cmd, argc, argv, &i, &rc);
            if (!rc && cli_parse_int(a, v, 1, 1L << 40, &limit))
                rc = CLI_EXIT_USAGE;
        } else if (strcmp(a, "--bootstrap") == 0) {
            const char *v = cli_value(&eval_cmd, argc, argv, &i, &rc);
            if (!rc && cli_parse_int(a, v, 0, 1000000, &bootstrap))
                rc = CLI_EXIT_USAGE;
        } else if (strcmp(a, "--seed") == 0) {
            const char *v = cli_value(&eval_cmd, argc, argv, &i, &rc);
            if (!rc && cli_parse_int(a, v, 0, 1L << 62, &seed))
                rc = CLI_EXIT_USAGE;
        } else if (strcmp(a, "--threads") == 0) {
            const char *v = cli_value(&eval_cmd, argc, argv, &i, &rc);
            if (!rc && cli_parse_int(a, v, 0, 1024, &threads))
                rc = CLI_EXIT_USAGE;
        } else if (a[0] == '-' && a[1])
            rc = cli_usage(&eval_cmd, "unknown option %s", a);
        else if (data)
            rc = cli_usage(&eval_cmd, "one DATASET only, not also '%s'", a);
        else
            data = a;
        if (rc)
            return rc;
    }
    if (!data)
        return cli_usage(&eval_cmd, "%s", "no DATASET given");
    if (!model_dir)
        return cli_usage(&eval_cmd, "%s", "no model: give --model DIR or set RADFUSE_MODEL");
    if (o.saliency && !boxes_file)
        return cli_usage(&eval_cmd, "%s", "--saliency needs --boxes FILE (lung boxes, COCO json)");
    if (boxes_file && !o.saliency)
        return cli_usage(&eval_cmd, "%s", "--boxes needs --saliency gradcam|rollout|occlusion");
    o.limit = limit;
    o.bootstrap = (int)bootstrap;
    o.seed = (uint64_t)seed;
    o.threads = (int)threads;

    rf_err err;
    rf_dataset_layout layout;
    if (rf_dataset_layout_parse(layout_name, &layout, &err))
        return cli_usage(&eval_cmd, "%s", err.msg);
    rf_eval_boxes boxes;
    memset(&boxes, 0, sizeof boxes);
    if (boxes_file) {
        if (rf_eval_boxes_load(boxes_file, &boxes, &err))
            return cli_fail("eval: %s", err.msg);
        o.boxes = &boxes;
    }
    rf_dataset *ds;
    if (rf_dataset_open(&ds, data, layout, &err)) {
        rf_eval_boxes_free(&boxes);
        return cli_fail("eval: %s", err.msg);
    }
    rf_backend *be;
    if (cli_backend(&be, device, threads)) {
        rf_dataset_free(ds);
        rf_eval_boxes_free(&boxes);
        return CLI_EXIT_FAIL;
    }
    rf_fusion *model;
    if (rf_fusion_load(&model, model_dir, be, &err)) {
        rf_dataset_free(ds);
        rf_backend_destroy(be);
        rf_eval_boxes_free(&boxes);
        return cli_fail("eval: %s", err.msg);
    }
    progress prog = {0};
    if (isatty(STDERR_FILENO)) {
        o.progress = on_progress;
        o.progress_ctx = &prog;
    }
    rf_eval_result r;
    int rc = rf_eval_run(model, ds, &o, &r, &err);
    int status = CLI_EXIT_OK;
    if (rc) {
        status = cli_fail("eval: %s", err.msg);
    } else if (json) {
        char *text = rf_eval_json(&r, model);
        if (text && o.saliency) {
            char *with = rf_eval_saliency_json(&r, text);
            free(text);
            text = with;
        }
        if (!text) {
            status = cli_fail("eval: out of memory");
        } else {
            fputs(text, stdout);
            fputc('\n', stdout);
            free(text);
        }
    } else {
        rf_eval_print(&r, model, stdout);
        rf_eval_saliency_print(&r, stdout);
    }
    if (!rc && predictions && status == CLI_EXIT_OK) {
        /* every row's probabilities per input set, written atomically */
        char *csv = rf_eval_predictions_csv(&r, model, ds);
        if (!csv)
            status = cli_fail("eval: out of memory");
        else if (rf_write_file_atomic(predictions, csv, strlen(csv), &err))
            status = cli_fail("eval: %s", err.msg);
        free(csv);
    }
    if (!rc && r.image_failures)
        fprintf(stderr, "radfuse: eval: %zu image%s could not be read; those rows were left out\n", r.image_failures,
                r.image_failures == 1 ? "" : "s");
    if (fflush(stdout) != 0 && status == CLI_EXIT_OK)
        status = cli_fail("eval: cannot write the output");
    rf_eval_result_free(&r);
    rf_fusion_free(model);
    rf_backend_destroy(be);
    rf_dataset_free(ds);
    rf_eval_boxes_free(&boxes);
    return status;
}
