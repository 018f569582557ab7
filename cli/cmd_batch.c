/*
 * radfuse batch: every study of an export through the read (batch/,
 * docs/batch.md), resumably, with progress on a terminal or log lines, and a
 * summary; radfuse batch merge: shard outputs into one directory.
 *
 * Exit status: 0 when every study of the shard succeeded and no file failed,
 * 2 otherwise (failures, a stop on an output that cannot be written, bad
 * input), 1 on usage.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli/cli.h"
#include "radfuse/batch.h"
#include "radfuse/fusion.h"


static const char batch_usage[] =
    "usage: radfuse batch ROOT --out DIR [--model DIR] [--manifest FILE] [--jobs N] [--device D]\n"
    "                     [--threads N] [--shard I/N] [--retry-failed] [--saliency M] [--precision P]\n"
    "                     [--include-phi] [--dicom] [--outputs LIST] [--queue N] [--device-batch N]\n"
    "                     [--log-every S] [--json] [--dry-run]\n"
    "       radfuse batch merge OUT DIR...\n";

static const cli_cmd batch_cmd = {"batch", batch_usage};

typedef struct progress_ctx {
    int tty;
    double log_every, last;
    size_t last_done;
} progress_ctx;

static void fmt_eta(double s, char *buf, size_t n)
{
    if (!isfinite(s) || s < 0)
        snprintf(buf, n, "?");
    else if (s >= 3600)
        snprintf(buf, n, "%d:%02d:%02d", (int)(s / 3600), (int)fmod(s / 60, 60), (int)fmod(s, 60));
    else
        snprintf(buf, n, "%d:%02d", (int)(s / 60), (int)fmod(s, 60));
}

static void on_progress(void *vctx, const rf_batch_progress *p)
{
    progress_ctx *c = vctx;
    double rate = p->elapsed_s > 0 ? p->run_done / p->elapsed_s : 0;
    size_t finished = p->done + p->failed, left = p->total > finished ? p->total - finished : 0;
    char eta[32];
    fmt_eta(rate > 0 ? left / rate : NAN, eta, sizeof eta);
    if (c->tty) {
        int width = 30, fill = p->total ? (int)((double)finished / p->total * width) : width;
        char bar[64];
        for (int i = 0; i < width; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[width] = 0;
        fprintf(stderr, "\r[%s] %zu/%zu studies  %.2f/s  ETA %s  failed %zu ", bar, finished, p->total, rate, eta,
                p->failed);
        if (p->final)
            fputc('\n', stderr);
        fflush(stderr);
        return;
    }
    if (!p->final && p->elapsed_s - c->last < c->log_every && p->run_done - c->last_done < 100)
        return;
    c->last = p->elapsed_s;
    c->last_done = p->run_done;
    fprintf(stderr, "radfuse: batch: %zu/%zu studies (%zu failed), %.2f studies/s, ETA %s\n", finished, p->total,
            p->failed, rate, eta);
}

/* Prints o as one line of JSON and frees it. */
static void print_json_line(cJSON *o)
{
    char *text = cJSON_PrintUnformatted(o);
    if (text)
        printf("%s\n", text);
    free(text);
    cJSON_Delete(o);
}

static void plan_line(void *ctx, const rf_batch_plan_study *s)
{
    int json = *(int *)ctx;
    if (json) {
        /* UIDs come from the files: escaped as any string */
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "kind", "study");
        cJSON_AddStringToObject(o, "study_instance_uid", s->uid);
        cJSON_AddStringToObject(o, "key", s->key);
        cJSON_AddNumberToObject(o, "instances", s->instances);
        cJSON_AddNumberToObject(o, "notes", s->nnotes);
        cJSON_AddNumberToObject(o, "labs", s->nlabs);
        cJSON_AddBoolToObject(o, "prior", s->has_prior);
        cJSON_AddStringToObject(o, "pairing", s->pairing);
        cJSON_AddStringToObject(o, "state", s->state);
        print_json_line(o);
    } else {
        printf("%s  %s  %d instance%s  %d note%s  %d lab file%s  prior %s  paired by %s  %s\n", s->key, s->uid,
               s->instances, s->instances == 1 ? "" : "s", s->nnotes, s->nnotes == 1 ? "" : "s", s->nlabs,
               s->nlabs == 1 ? "" : "s", s->has_prior ? "yes" : "no", s->pairing, s->state);
    }
}

static void plan_ignored(void *ctx, const char *path, const char *reason)
{
    int json = *(int *)ctx;
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "kind", "ignored");
        cJSON_AddStringToObject(o, "path", path);
        cJSON_AddStringToObject(o, "reason", reason);
        print_json_line(o);
    } else {
        printf("ignored  %s  %s\n", path, reason);
    }
}

static int o_shard(const rf_batch_opts *o)
{
    return o->nshards > 1 ? o->shard : 0;
}

static int o_nshards(const rf_batch_opts *o)
{
    return o->nshards > 1 ? o->nshards : 1;
}

static void print_summary(const rf_batch_opts *opts, const rf_batch_summary *s, int json)
{
    const rf_batch_opts *o = opts;
    const rf_batch_progress *p = &s->progress;
    const rf_batch_stages *t = &s->stages;
    double wall = t->wall_ms / 1e3, rate = wall > 0 ? p->run_done / wall : 0;
    double overlap = t->wall_ms > 0 ? (t->prepare_ms + t->device_ms + t->write_ms + t->commit_ms) / t->wall_ms : 0;
    double mean_batch = t->device_batches ? (double)t->device_studies / (double)t->device_batches : 0;
    if (json) {
        cJSON *j = cJSON_CreateObject(), *st = cJSON_CreateObject();
        char shard[32];
        snprintf(shard, sizeof shard, "%d/%d", o_shard(opts), o_nshards(opts));
        cJSON_AddNumberToObject(j, "studies_found", (double)s->studies_found);
        cJSON_AddStringToObject(j, "shard", shard);
        cJSON_AddNumberToObject(j, "total", (double)p->total);
        cJSON_AddNumberToObject(j, "done", (double)p->done);
        cJSON_AddNumberToObject(j, "failed", (double)p->failed);
        cJSON_AddNumberToObject(j, "done_before", (double)p->done_before);
        cJSON_AddNumberToObject(j, "processed", (double)p->run_done);
        cJSON_AddNumberToObject(j, "file_errors", (double)p->file_errors);
        cJSON_AddNumberToObject(j, "ignored_files", (double)s->ignored_files);
        cJSON_AddBoolToObject(j, "stopped", s->stopped);
        cJSON_AddNumberToObject(j, "wall_s", wall);
        cJSON_AddNumberToObject(j, "studies_per_s", rate);
        cJSON_AddNumberToObject(st, "jobs", t->jobs);
        cJSON_AddNumberToObject(st, "discover_ms", t->discover_ms);
        cJSON_AddNumberToObject(st, "prepare_ms", t->prepare_ms);
        cJSON_AddNumberToObject(st, "device_ms", t->device_ms);
        cJSON_AddNumberToObject(st, "device_wait_ms", t->device_wait_ms);
        cJSON_AddNumberToObject(st, "device_batches", (double)t->device_batches);
        cJSON_AddNumberToObject(st, "device_batch_mean", mean_batch);
        cJSON_AddNumberToObject(st, "write_ms", t->write_ms);
        cJSON_AddNumberToObject(st, "commit_ms", t->commit_ms);
        cJSON_AddNumberToObject(st, "wall_ms", t->wall_ms);
        cJSON_AddNumberToObject(st, "device_utilization", t->wall_ms > 0 ? t->device_ms / t->wall_ms : 0);
        cJSON_AddNumberToObject(st, "overlap", overlap);
        cJSON_AddItemToObject(j, "stages", st);
        cJSON_AddStringToObject(j, "out", opts->out);
        char *text = cJSON_PrintUnformatted(j);
        if (text)
            printf("%s\n", text);
        free(text);
        cJSON_Delete(j);
        return;
    }
    printf("batch: %zu stud%s in shard %d/%d (%zu found); %zu done (%zu before this run), %zu failed; %zu file%s "
           "not read, %zu ignored (no DICOM by name)\n",
           p->total, p->total == 1 ? "y" : "ies", o->nshards > 1 ? o->shard : 0, o->nshards > 1 ? o->nshards : 1,
           s->studies_found, p->done, p->done_before, p->failed, p->file_errors, p->file_errors == 1 ? "" : "s",
           s->ignored_files);
    printf("time: %zu stud%s in %.1f s, %.2f studies/s (listing the export: %.1f s)\n", p->run_done,
           p->run_done == 1 ? "y" : "ies", wall, rate, t->discover_ms / 1e3);
    printf("stages (busy): prepare %.1f s and write %.1f s over %d worker%s, device %.1f s (%.0f%% of the wall "
           "time; waited %.1f s; %zu batch%s of %.1f studies on average), commit %.1f s; overlap %.2fx\n",
           t->prepare_ms / 1e3, t->write_ms / 1e3, t->jobs, t->jobs == 1 ? "" : "s", t->device_ms / 1e3,
           t->wall_ms > 0 ? 100 * t->device_ms / t->wall_ms : 0, t->device_wait_ms / 1e3, t->device_batches,
           t->device_batches == 1 ? "" : "es", mean_batch, t->commit_ms / 1e3, overlap);
    printf("results: %s/results.jsonl%s\n", o->out, p->failed || p->file_errors ? "; failures: errors.jsonl" : "");
}

static int parse_shard(const char *v, int *i, int *n)
{
    char *end;
    long a = strtol(v, &end, 10);
    if (end == v || *end != '/')
        return -1;
    const char *b = end + 1;
    long c = strtol(b, &end, 10);
    if (end == b || *end || c < 1 || c > 1000000 || a < 0 || a >= c)
        return -1;
    *i = (int)a;
    *n = (int)c;
    return 0;
}

/* "html,fhir": the study folder's files besides result.json ("json" alone: none). */
static int parse_outputs(const char *v, unsigned *out)
{
    static const char *const names[] = {"overlays", "html", "fhir", "dicom", "json"};
    static const unsigned bits[] = {RF_BATCH_OUT_OVERLAYS, RF_BATCH_OUT_HTML, RF_BATCH_OUT_FHIR, RF_BATCH_OUT_DICOM,
                                    0};
    unsigned o = 0;
    int any = 0;
    for (const char *p = v; *p;) {
        size_t n = strcspn(p, ",");
        int hit = 0;
        for (int k = 0; k < 5; k++)
            if (strlen(names[k]) == n && strncmp(p, names[k], n) == 0) {
                o |= bits[k];
                hit = 1;
            }
        if (!hit)
            return -1;
        any = 1;
        p += n;
        if (*p == ',')
            p++;
    }
    if (!any)
        return -1;
    /* only json: a bit that is no file, so that 0 keeps meaning the default */
    *out = o ? o : 0x100u;
    return 0;
}

static int cli_batch_merge(int argc, char **argv)
{
    if (argc < 2)
        return cli_usage(&batch_cmd, "%s", "merge needs OUT and at least one DIR");
    for (int i = 0; i < argc; i++)
        if (argv[i][0] == '-')
            return cli_usage(&batch_cmd, "merge: unknown option %s", argv[i]);
    rf_batch_merge_info info;
    rf_err err;
    if (rf_batch_merge(argv[0], (const char *const *)argv + 1, argc - 1, &info, &err))
        return cli_fail("batch: %s", err.msg);
    printf("merged %d director%s into %s: %zu studies (%zu duplicate%s dropped), %zu error line%s\n", argc - 1,
           argc == 2 ? "y" : "ies", argv[0], info.results, info.duplicates, info.duplicates == 1 ? "" : "s",
           info.errors, info.errors == 1 ? "" : "s");
    if (info.incomplete)
        return cli_fail("batch: merge: %zu studies of the shards are not processed yet (a shard has not finished)",
                        info.incomplete);
    return CLI_EXIT_OK;
}

int cli_batch(int argc, char **argv)
{
    if (argc > 0 && strcmp(argv[0], "merge") == 0)
        return cli_batch_merge(argc - 1, argv + 1);
    rf_batch_opts o = {.saliency = "gradcam", .precision = "fp32"};
    const char *model_dir = getenv("RADFUSE_MODEL"), *device = NULL;
    long jobs = 0, threads = 0, queue = 0, log_every = 10, device_batch = RF_BATCH_DEVICE_BATCH;
    int json = 0, dry = 0, dicom = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int rc = 0;
        if (strcmp(a, "--json") == 0)
            json = 1;
        else if (strcmp(a, "--dry-run") == 0)
            dry = 1;
        else if (strcmp(a, "--include-phi") == 0)
            o.include_phi = 1;
        else if (strcmp(a, "--dicom") == 0)
            dicom = 1;
        else if (strcmp(a, "--outputs") == 0) {
            const char *v = cli_value(&batch_cmd, argc, argv, &i, &rc);
            if (!rc && parse_outputs(v, &o.outputs))
                rc = cli_usage(&batch_cmd,
                               "--outputs takes a comma-separated list of overlays, html, fhir, dicom or json,"
                               " not '%s'",
                               v);
        }
        else if (strcmp(a, "--retry-failed") == 0)
            o.retry_failed = 1;
        else if (strcmp(a, "--out") == 0)
            o.out = cli_value(&batch_cmd, argc, argv, &i, &rc);
        else if (strcmp(a, "--model") == 0)
            model_dir = cli_value(&batch_cmd, argc, argv, &i, &rc);
        else if (strcmp(a, "--manifest") == 0)
            o.manifest = cli_value(&batch_cmd, argc, argv, &i, &rc);
        else if (strcmp(a, "--device") == 0)
            device = cli_value(&batch_cmd, argc, argv, &i, &rc);
        else if (strcmp(a, "--saliency") == 0)
            o.saliency = cli_value(&batch_cmd, argc, argv, &i, &rc);
        else if (strcmp(a, "--precision") == 0) {
            o.precision = cli_value(&batch_cmd, argc, argv, &i, &rc);
            if (!rc && strcmp(o.precision, "fp32") != 0 && strcmp(o.precision, "fp16") != 0)
                rc = cli_usage(&batch_cmd, "--precision must be fp32 or fp16, not '%s'", o.precision);
        } else if (strcmp(a, "--shard") == 0) {
            const char *v = cli_value(&batch_cmd, argc, argv, &i, &rc);
            if (!rc && parse_shard(v, &o.shard, &o.nshards))
                rc = cli_usage(&batch_cmd, "--shard takes I/N with 0 <= I < N, not '%s'", v);
        } else if (strcmp(a, "--jobs") == 0 || strcmp(a, "--threads") == 0 || strcmp(a, "--queue") == 0 ||
                   strcmp(a, "--log-every") == 0) {
            const char *v = cli_value(&batch_cmd, argc, argv, &i, &rc);
            long *dst = a[2] == 'j' ? &jobs : a[2] == 't' ? &threads : a[2] == 'q' ? &queue : &log_every;
            if (!rc && cli_parse_int(a, v, a[2] == 'l' ? 1 : 0, a[2] == 'l' ? 86400 : 1024, dst))
                rc = CLI_EXIT_USAGE;
        } else if (strcmp(a, "--device-batch") == 0) {
            const char *v = cli_value(&batch_cmd, argc, argv, &i, &rc);
            if (!rc && cli_parse_int(a, v, 1, RF_BATCH_MAX_DEVICE_BATCH, &device_batch))
                rc = CLI_EXIT_USAGE;
        } else if (a[0] == '-' && a[1])
            rc = cli_usage(&batch_cmd, "unknown option %s", a);
        else if (o.root)
            rc = cli_usage(&batch_cmd, "one ROOT only (got also '%s')", a);
        else
            o.root = a;
        if (rc)
            return rc;
    }
    if (!o.root)
        return cli_usage(&batch_cmd, "%s", "no ROOT given");
    if (dicom)
        o.outputs = (o.outputs ? o.outputs : RF_BATCH_OUT_DEFAULT) | RF_BATCH_OUT_DICOM;
    o.jobs = (int)jobs;
    o.queue = (int)queue;
    o.device_batch = (int)device_batch;
    rf_err err;
    if (dry) {
        size_t nerr = 0, nign = 0;
        if (rf_batch_plan(&o, plan_line, plan_ignored, &json, &nerr, &nign, &err))
            return cli_fail("batch: %s", err.msg);
        fprintf(stderr,
                "radfuse: batch: dry run: %zu file%s of the shard cannot be read as DICOM, %zu ignored (no DICOM by "
                "name); nothing written\n",
                nerr, nerr == 1 ? "" : "s", nign);
        return CLI_EXIT_OK;
    }
    if (!o.out)
        return cli_usage(&batch_cmd, "%s", "no output directory: give --out DIR");
    if (!model_dir)
        return cli_usage(&batch_cmd, "%s", "no model: give --model DIR or set RADFUSE_MODEL");
    rf_backend *be;
    if (cli_backend(&be, device, threads))
        return CLI_EXIT_FAIL;
    if (strcmp(o.precision, "fp16") == 0 && rf_backend_set_precision(be, RF_PRECISION_FP16, &err)) {
        rf_backend_destroy(be);
        return cli_fail("batch: %s", err.msg);
    }
    rf_fusion *model;
    if (rf_fusion_load(&model, model_dir, be, &err)) {
        rf_backend_destroy(be);
        return cli_fail("batch: %s", err.msg);
    }
    progress_ctx pc = {.tty = isatty(2), .log_every = (double)log_every};
    o.progress = on_progress;
    o.progress_ctx = &pc;
    rf_batch_summary sum;
    int rc = rf_batch_run(model, &o, &sum, &err);
    if (rc && sum.stopped)
        fprintf(stderr,
                "radfuse: batch: %s\nradfuse: batch: stopped; every study recorded so far is kept: run the same "
                "command again once the cause is fixed (e.g. space freed) to continue\n",
                err.msg);
    else if (rc)
        fprintf(stderr, "radfuse: batch: %s\n", err.msg);
    if (!rc || sum.stopped)
        print_summary(&o, &sum, json);
    rf_fusion_free(model);
    rf_backend_destroy(be);
    return !rc && sum.progress.failed == 0 && sum.progress.file_errors == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}
