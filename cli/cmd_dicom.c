/* radfuse dicom ls: DICOM files and directory trees, as a study/series tree or JSON lines. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "radfuse/imaging.h"

typedef struct dicom_rec {
    const char *path;
    int ok;
    rf_err err;
    rf_dicom_image img; /* attributes; pixels freed once hashed */
    char sha[65];
} dicom_rec;

static void add_str(cJSON *o, const char *key, const char *v)
{
    cJSON_AddStringToObject(o, key, v);
}

static void print_json(const dicom_rec *r)
{
    cJSON *o = cJSON_CreateObject();
    add_str(o, "path", r->path);
    add_str(o, "status", r->ok ? "ok" : "error");
    if (!r->ok) {
        add_str(o, "error", r->err.msg);
    } else {
        const rf_dicom_image *m = &r->img;
        add_str(o, "study_instance_uid", m->study_uid);
        add_str(o, "series_instance_uid", m->series_uid);
        add_str(o, "sop_instance_uid", m->sop_uid);
        add_str(o, "sop_class_uid", m->sop_class_uid);
        add_str(o, "modality", m->modality);
        add_str(o, "view", m->view);
        if (m->has_instance_number)
            cJSON_AddNumberToObject(o, "instance_number", m->instance_number);
        add_str(o, "transfer_syntax_uid", m->transfer_syntax);
        cJSON_AddNumberToObject(o, "rows", m->rows);
        cJSON_AddNumberToObject(o, "columns", m->columns);
        cJSON_AddNumberToObject(o, "frames", m->frames);
        cJSON_AddNumberToObject(o, "samples_per_pixel", m->samples_per_pixel);
        add_str(o, "photometric", m->photometric);
        cJSON_AddNumberToObject(o, "bits_allocated", m->bits_allocated);
        cJSON_AddNumberToObject(o, "bits_stored", m->bits_stored);
        cJSON_AddNumberToObject(o, "pixel_representation", m->pixel_representation);
        add_str(o, "pixel_sha256", r->sha);
    }
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (text)
        printf("%s\n", text);
    cJSON_free(text);
}

/* Study, then series, then instance number, then path. */
static int cmp_rec(const void *pa, const void *pb)
{
    const dicom_rec *a = pa, *b = pb;
    int c = strcmp(a->img.study_uid, b->img.study_uid);
    if (!c)
        c = strcmp(a->img.series_uid, b->img.series_uid);
    if (!c)
        c = (a->img.instance_number > b->img.instance_number) - (a->img.instance_number < b->img.instance_number);
    if (!c)
        c = strcmp(a->path, b->path);
    return c;
}

static const char *or_none(const char *s)
{
    return *s ? s : "(none)";
}

static void print_tree(dicom_rec *recs, size_t n)
{
    dicom_rec *ok = malloc((n ? n : 1) * sizeof *ok);
    size_t nok = 0, nerr = 0;
    if (!ok) {
        cli_fail("out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (recs[i].ok)
            ok[nok++] = recs[i];
        else
            nerr++;
    }
    qsort(ok, nok, sizeof *ok, cmp_rec);
    for (size_t i = 0; i < nok; i++) {
        const rf_dicom_image *m = &ok[i].img;
        if (i == 0 || strcmp(m->study_uid, ok[i - 1].img.study_uid) != 0)
            printf("study %s\n", or_none(m->study_uid));
        if (i == 0 || strcmp(m->study_uid, ok[i - 1].img.study_uid) != 0 ||
            strcmp(m->series_uid, ok[i - 1].img.series_uid) != 0)
            printf("  series %s  %s%s%s\n", or_none(m->series_uid), or_none(m->modality), *m->view ? " " : "",
                   m->view);
        printf("    instance %s", or_none(m->sop_uid));
        if (m->has_instance_number)
            printf("  #%d", m->instance_number);
        printf("  %dx%d", m->columns, m->rows);
        if (m->frames > 1)
            printf(" x%d frames", m->frames);
        printf("  %s %d-bit%s  %s\n", m->photometric, m->bits_stored, m->pixel_representation ? " signed" : "",
               ok[i].path);
    }
    if (nerr) {
        printf("errors (%zu):\n", nerr);
        for (size_t i = 0; i < n; i++)
            if (!recs[i].ok)
                printf("  %s\n", recs[i].err.msg);
    }
    free(ok);
}

static int dicom_ls(int argc, char **argv)
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
    char **files;
    size_t n;
    rf_err err;
    int rc = rf_collect_files(paths, npaths, &files, &n, &err);
    free(paths);
    if (rc)
        return cli_fail("%s", err.msg);
    dicom_rec *recs = calloc(n ? n : 1, sizeof *recs);
    if (!recs) {
        rf_paths_free(files, n);
        return cli_fail("out of memory");
    }
    int failed = 0;
    for (size_t i = 0; i < n; i++) {
        dicom_rec *r = &recs[i];
        r->path = files[i];
        r->ok = rf_dicom_read(files[i], RF_DICOM_PIXELS, &r->img, &r->err) == 0;
        if (r->ok)
            rf_dicom_pixel_sha256(&r->img, r->sha);
        else
            failed = 1;
        rf_dicom_image_free(&r->img);
        if (json) {
            print_json(r);
            fflush(stdout);
        }
    }
    if (!json)
        print_tree(recs, n);
    if (n == 0) {
        failed = 1;
        fprintf(stderr, "radfuse: dicom ls: no files found\n");
    } else if (failed) {
        fprintf(stderr, "radfuse: dicom ls: some files could not be read\n");
    }
    free(recs);
    rf_paths_free(files, n);
    return failed ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

int cli_dicom(int argc, char **argv)
{
    if (argc >= 1 && strcmp(argv[0], "ls") == 0)
        return dicom_ls(argc - 1, argv + 1);
    return cli_fail("dicom: unknown subcommand '%s' (radfuse dicom ls PATH... [--json])", argc ? argv[0] : "");
}
