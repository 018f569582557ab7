/*
 * radfuse dicom ls PATH... [--json]: files, directory trees, DICOMDIRs and zip
 * exports (rf_inputs_collect), each instance read and hashed, grouped into
 * studies with the images a model would see chosen (rf_studies_build), then
 * printed as a per-study report or, with --json, one object per file per
 * line in name order. No patient names or IDs are printed.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "radfuse/dicom_input.h"
#include "radfuse/imaging.h"
#include "radfuse/study.h"

enum { REC_ERROR, REC_INSTANCE, REC_DICOMDIR };

typedef struct ls_rec {
    int what;
    long inst; /* REC_INSTANCE: index into the studies' instances */
    rf_err err; /* REC_ERROR */
} ls_rec;

static void add_str(cJSON *o, const char *key, const char *v)
{
    cJSON_AddStringToObject(o, key, v);
}

static void print_json(const rf_input *it, const ls_rec *r, const rf_studies *s)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return;
    add_str(o, "path", it->name);
    add_str(o, "status", r->what == REC_ERROR ? "error" : "ok");
    if (r->what == REC_ERROR) {
        add_str(o, "error", r->err.msg);
        cJSON_AddBoolToObject(o, "selected", 0);
        add_str(o, "reason", "not read");
    } else if (r->what == REC_DICOMDIR) {
        char reason[160];
        add_str(o, "kind", "dicomdir");
        cJSON_AddNumberToObject(o, "records", (double)it->records);
        cJSON_AddNumberToObject(o, "referenced_files", (double)it->referenced);
        cJSON_AddNumberToObject(o, "missing_files", (double)it->missing);
        cJSON_AddBoolToObject(o, "selected", 0);
        snprintf(reason, sizeof reason, "DICOMDIR: a directory of %ld records referencing %ld files, not an image",
                 it->records, it->referenced);
        add_str(o, "reason", reason);
    } else {
        const rf_instance *in = &s->inst[r->inst];
        const rf_dicom_image *m = &in->attrs;
        add_str(o, "kind", m->has_pixel_data ? "image" : "non-image");
        add_str(o, "study_instance_uid", m->study_uid);
        add_str(o, "series_instance_uid", m->series_uid);
        add_str(o, "sop_instance_uid", m->sop_uid);
        add_str(o, "sop_class_uid", m->sop_class_uid);
        add_str(o, "modality", m->modality);
        add_str(o, "view", m->view);
        if (m->has_series_number)
            cJSON_AddNumberToObject(o, "series_number", m->series_number);
        if (m->has_instance_number)
            cJSON_AddNumberToObject(o, "instance_number", m->instance_number);
        add_str(o, "transfer_syntax_uid", m->transfer_syntax);
        if (m->has_pixel_data) {
            cJSON_AddNumberToObject(o, "rows", m->rows);
            cJSON_AddNumberToObject(o, "columns", m->columns);
            cJSON_AddNumberToObject(o, "frames", m->frames);
            cJSON_AddNumberToObject(o, "samples_per_pixel", m->samples_per_pixel);
            add_str(o, "photometric", m->photometric);
            cJSON_AddNumberToObject(o, "bits_allocated", m->bits_allocated);
            cJSON_AddNumberToObject(o, "bits_stored", m->bits_stored);
            cJSON_AddNumberToObject(o, "pixel_representation", m->pixel_representation);
            add_str(o, "pixel_sha256", in->pixel_sha256);
        }
        if (in->duplicate_of >= 0)
            add_str(o, "duplicate_of", s->inst[in->duplicate_of].name);
        cJSON_AddBoolToObject(o, "selected", in->selected);
        add_str(o, "reason", in->reason);
    }
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (text)
        printf("%s\n", text);
    cJSON_free(text);
}

/* ---- the readable report ---- */

static const char *or_none(const char *s)
{
    return *s ? s : "(none)";
}

static void print_instance_line(const rf_instance *in, int with_reason)
{
    const rf_dicom_image *m = &in->attrs;
    printf("    %c ", in->selected ? '*' : '-');
    if (m->has_instance_number)
        printf("#%d  ", m->instance_number);
    if (m->has_pixel_data) {
        printf("%dx%d", m->columns, m->rows);
        if (m->frames > 1)
            printf(" x%d frames", m->frames);
        printf("  %s %d-bit%s", m->photometric, m->bits_stored, m->pixel_representation ? " signed" : "");
    } else {
        printf("no pixel data");
    }
    if (*m->view)
        printf("  %s", m->view);
    printf("  %s\n", in->name);
    if (with_reason)
        printf("        %s\n", in->reason);
}

static void print_series(const rf_studies *s, const rf_series *se, const rf_instance *all, size_t nall)
{
    printf("  series ");
    if (se->has_number)
        printf("#%d ", se->number);
    printf("%s", or_none(se->modality));
    if (*se->description)
        printf(" '%s'", se->description);
    printf("  %zu instance%s, %ld frame%s, %ld selected  %s\n", se->count, se->count == 1 ? "" : "s", se->frames,
           se->frames == 1 ? "" : "s", se->selected, se->uid);
    /* one reason for the whole series when every instance has the same verdict */
    int same = se->count > 1;
    for (size_t k = 1; k < se->count && same; k++) {
        const rf_instance *a = &s->inst[se->order[0]], *b = &s->inst[se->order[k]];
        same = a->selected == b->selected && strcmp(a->reason, b->reason) == 0;
    }
    if (same)
        printf("    %s: %s\n", s->inst[se->order[0]].selected ? "selected" : "skipped", s->inst[se->order[0]].reason);
    for (size_t k = 0; k < se->count; k++) {
        const rf_instance *in = &s->inst[se->order[k]];
        print_instance_line(in, !same);
        if (in->duplicates)
            for (size_t i = 0; i < nall; i++)
                if (all[i].duplicate_of == (long)se->order[k]) {
                    const char *d = strstr(all[i].reason, "; ");
                    printf("        also read from %s (same SOPInstanceUID%s)\n", all[i].name, d ? d : "");
                }
    }
}

static void print_report(const rf_inputs *in, const ls_rec *recs, size_t n, const rf_studies *s)
{
    for (size_t q = 0; q < s->nstudies; q++) {
        const rf_study *st = &s->studies[s->study_order[q]];
        printf("study %s", st->uid);
        if (*st->description)
            printf("  '%s'", st->description);
        if (*st->date)
            printf("  %s", st->date);
        printf("\n  %s; %zu series, %ld instance%s, %ld frame%s; selected: ", or_none(st->modalities), st->nseries,
               st->instances, st->instances == 1 ? "" : "s", st->frames, st->frames == 1 ? "" : "s");
        if (st->selected)
            printf("%ld instance%s, %ld frame%s", st->selected, st->selected == 1 ? "" : "s", st->selected_frames,
                   st->selected_frames == 1 ? "" : "s");
        else
            printf("none");
        if (st->duplicates)
            printf("; %ld duplicate file%s", st->duplicates, st->duplicates == 1 ? "" : "s");
        printf("\n");
        for (size_t j = 0; j < st->nseries; j++)
            print_series(s, &s->series[st->series[j]], s->inst, s->ninst);
    }
    size_t ndirs = 0, nerr = 0;
    for (size_t i = 0; i < n; i++) {
        ndirs += recs[i].what == REC_DICOMDIR;
        nerr += recs[i].what == REC_ERROR;
    }
    if (ndirs) {
        printf("DICOMDIRs (%zu):\n", ndirs);
        for (size_t i = 0; i < n; i++) {
            const rf_input *it = rf_inputs_at(in, i);
            if (recs[i].what == REC_DICOMDIR)
                printf("  %s: %ld records, %ld referenced files, %ld missing\n", it->name, it->records,
                       it->referenced, it->missing);
        }
    }
    if (nerr) {
        printf("errors (%zu):\n", nerr);
        for (size_t i = 0; i < n; i++)
            if (recs[i].what == REC_ERROR)
                printf("  %s\n", recs[i].err.msg);
    }
    long selected = 0;
    for (size_t q = 0; q < s->nstudies; q++)
        selected += s->studies[q].selected;
    printf("%zu file%s: %zu stud%s, %zu instance%s (%ld selected), %zu DICOMDIR%s, %zu error%s\n", n,
           n == 1 ? "" : "s", s->nstudies, s->nstudies == 1 ? "y" : "ies", s->ninst, s->ninst == 1 ? "" : "s",
           selected, ndirs, ndirs == 1 ? "" : "s", nerr, nerr == 1 ? "" : "s");
}

/* Reads item i into the studies, or says why not. */
static void read_item(rf_inputs *in, size_t i, ls_rec *r, rf_studies *s)
{
    const rf_input *it = rf_inputs_at(in, i);
    r->inst = -1;
    if (it->kind == RF_INPUT_DICOMDIR) {
        r->what = REC_DICOMDIR;
        return;
    }
    r->what = REC_ERROR;
    if (it->kind == RF_INPUT_ERROR) {
        snprintf(r->err.msg, sizeof r->err.msg, "%s", it->error);
        return;
    }
    rf_dicom_image img;
    if (rf_inputs_read(in, i, RF_DICOM_PIXELS | RF_DICOM_NO_PIXELS_OK, &img, &r->err))
        return;
    char sha[65] = "";
    int rc = RF_OK;
    if (img.has_pixel_data)
        rf_dicom_pixel_sha256(&img, sha);
    else if (!rf_sop_class_non_image(img.sop_class_uid))
        rc = rf_err_set(&r->err, RF_EFORMAT, "%s: no pixel data (7FE0,0010)", it->name);
    if (!rc)
        rc = rf_studies_add(s, it->name, &img, sha, &r->err);
    rf_dicom_image_free(&img);
    if (!rc) {
        r->what = REC_INSTANCE;
        r->inst = (long)s->ninst - 1;
    }
}

int cli_dicom_ls(int argc, char **argv)
{
    int json = 0, npaths = 0;
    const char **paths = calloc((size_t)argc + 1, sizeof *paths);
    if (!paths)
        return cli_fail("out of memory");
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else if (strcmp(argv[i], "--") == 0) {
            while (++i < argc)
                paths[npaths++] = argv[i];
        } else if (argv[i][0] == '-' && argv[i][1]) {
            free(paths);
            return cli_fail("dicom ls: unknown option '%s'", argv[i]);
        } else
            paths[npaths++] = argv[i];
    }
    if (!npaths) {
        free(paths);
        return cli_fail("dicom ls: usage: radfuse dicom ls PATH... [--json]");
    }
    rf_inputs *in;
    rf_err err;
    int rc = rf_inputs_collect(paths, npaths, NULL, &in, &err);
    free(paths);
    if (rc)
        return cli_fail("%s", err.msg);
    size_t n = rf_inputs_count(in);
    ls_rec *recs = calloc(n ? n : 1, sizeof *recs);
    rf_studies s;
    rf_studies_init(&s);
    if (!recs) {
        rf_inputs_free(in);
        return cli_fail("out of memory");
    }
    int failed = 0;
    for (size_t i = 0; i < n; i++) {
        read_item(in, i, &recs[i], &s);
        failed |= recs[i].what == REC_ERROR;
    }
    rc = rf_studies_build(&s, &err);
    if (rc) {
        rf_studies_free(&s);
        rf_inputs_free(in);
        free(recs);
        return cli_fail("%s", err.msg);
    }
    if (json) {
        for (size_t i = 0; i < n; i++)
            print_json(rf_inputs_at(in, i), &recs[i], &s);
    } else {
        print_report(in, recs, n, &s);
    }
    fflush(stdout);
    if (n == 0) {
        failed = 1;
        fprintf(stderr, "radfuse: dicom ls: no files found\n");
    } else if (failed) {
        fprintf(stderr, "radfuse: dicom ls: some files could not be read\n");
    }
    rf_studies_free(&s);
    rf_inputs_free(in);
    free(recs);
    return failed ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}
