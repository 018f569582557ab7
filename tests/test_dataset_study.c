/*
 * rf_dataset_study and `radfuse dataset study`: rows of the COVID-19 image
 * data collection made into studies, checked against values computed with
 * Python's csv module and Pillow (tests/data/make_dataset_expected.py):
 * the DICOM pixels equal the decoded JPEG (SHA-256), dciodvfy finds no
 * errors, labs.csv reads back with radfuse's lab reader into the row's
 * values in the lab table's units, note.txt reads back as the row's note
 * dated at the study, a rebuild gives identical bytes, rows without a note
 * or labs give no such file, and bad rows, images and directories give one
 * clear line.
 */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dicom_validate.h"
#include "radfuse/datasets.h"
#include "radfuse/imaging.h"
#include "radfuse/labs.h"
#include "testutil.h"

/* rows: AP with all five labs and a note; AP Supine with only a pO2 above
 * 100 (left out) and no note; PA with neither (no age either); lateral (LL). */
static const long ROWS[] = {174, 254, 20, 14};
#define NROWS (sizeof ROWS / sizeof *ROWS)

static const struct {
    const char *column, *key;
} LAB_KEYS[] = {{"temperature", "temperature"},
                {"pO2_saturation", "spo2"},
                {"leukocyte_count", "wbc"},
                {"neutrophil_count", "neutrophils"},
                {"lymphocyte_count", "lymphocytes"}};

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static int same_file(const char *a, const char *b)
{
    size_t na, nb;
    char *x = test_read_file(a, &na), *y = test_read_file(b, &nb);
    int same = x && y && na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return same;
}

static void expected_date(const char *offset, char iso[11])
{
    struct tm t = {.tm_year = 120, .tm_mon = 0, .tm_mday = 1 + atoi(offset), .tm_hour = 12};
    time_t x = timegm(&t);
    gmtime_r(&x, &t);
    strftime(iso, 11, "%Y-%m-%d", &t);
}

static void check_row(const char *data, const cJSON *e, const char *dciodvfy, const char *tmp)
{
    long row = (long)cJSON_GetObjectItem(e, "row")->valuedouble;
    const char *note = cJSON_GetObjectItem(e, "note")->valuestring;
    const char *view = cJSON_GetObjectItem(e, "view")->valuestring;
    const char *offset = cJSON_GetObjectItem(e, "offset")->valuestring;
    const cJSON *labs = cJSON_GetObjectItem(e, "labs");
    char out[512], out2[512], path[1024], path2[1024];
    snprintf(out, sizeof out, "%s/row%ld", tmp, row);
    snprintf(out2, sizeof out2, "%s/row%ld-again", tmp, row);
    rf_dataset_study_info info;
    rf_err err;
    int rc = rf_dataset_study(data, row, NULL, out, &info, &err);
    CHECKF(rc == 0, "row %ld: %s", row, err.msg);
    if (rc)
        return;
    printf("row %ld: %s %dx%d, note %d, labs %d%s%s\n", row, info.view, info.cols, info.rows, info.has_note,
           info.nlabs, info.skipped[0] ? ", left out: " : "", info.skipped);
    CHECK(info.row == row);

    /* the image */
    snprintf(path, sizeof path, "%s/study/%ld.dcm", out, row);
    CHECK(!strcmp(info.dicom + 6, strrchr(path, '/') + 1));
    rf_dicom_image img;
    memset(&img, 0, sizeof img);
    rc = rf_dicom_read(path, RF_DICOM_PIXELS, &img, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc == 0) {
        char sha[65];
        rf_dicom_pixel_sha256(&img, sha);
        CHECKF(!strcmp(sha, cJSON_GetObjectItem(e, "pixels_sha256")->valuestring),
               "row %ld: the DICOM pixels are not the decoded JPEG", row);
        CHECK(img.rows == (int)cJSON_GetObjectItem(e, "rows")->valuedouble);
        CHECK(img.columns == (int)cJSON_GetObjectItem(e, "cols")->valuedouble);
        CHECK(!strcmp(img.modality, "CR") && !strcmp(img.photometric, "MONOCHROME2"));
        CHECK(img.bits_allocated == 8 && img.samples_per_pixel == 1 && img.frames == 1);
        CHECK(!strcmp(img.transfer_syntax, "1.2.840.10008.1.2.1"));
        const char *want_view = !strcmp(view, "L") ? "LL" : !strncmp(view, "AP", 2) ? "AP" : view;
        CHECKF(!strcmp(img.view, want_view), "row %ld: view '%s', want '%s'", row, img.view, want_view);
        CHECK(!strncmp(img.study_uid, "2.25.", 5) && !strncmp(img.series_uid, "2.25.", 5) &&
              !strncmp(img.sop_uid, "2.25.", 5));
        CHECK(strcmp(img.study_uid, img.series_uid) && strcmp(img.series_uid, img.sop_uid));
        char id[64];
        snprintf(id, sizeof id, "COVID-%s", cJSON_GetObjectItem(e, "patientid")->valuestring);
        CHECKF(!strcmp(img.patient_id, id), "row %ld: PatientID '%s', want '%s'", row, img.patient_id, id);
        char iso[11], da[9];
        expected_date(offset, iso);
        snprintf(da, sizeof da, "%.4s%.2s%.2s", iso, iso + 5, iso + 8);
        CHECKF(!strcmp(img.study_date, da), "row %ld: study date %s, want %s", row, img.study_date, da);
    }
    rf_dicom_image_free(&img);
    CHECKF(dv_dciodvfy(dciodvfy, path, NULL) == 0, "%s", path);

    /* the note */
    snprintf(path, sizeof path, "%s/note.txt", out);
    CHECK(info.has_note == (*note != 0));
    CHECK(exists(path) == (*note != 0));
    if (*note) {
        rf_labs L = {0};
        rc = rf_note_read_file(path, "note", &L, &err);
        CHECKF(rc == 0, "%s", err.msg);
        if (rc == 0 && L.nnotes == 1) {
            CHECKF(L.notes[0].len == strlen(note) && !memcmp(L.notes[0].text, note, L.notes[0].len),
                   "row %ld: note.txt does not read back as the row's note", row);
            char iso[11], got[48];
            expected_date(offset, iso);
            rf_time_format(&L.notes[0].time, got, sizeof got);
            CHECKF(!strcmp(got, iso), "row %ld: note dated %s, want %s", row, got, iso);
        }
        rf_labs_free(&L);
    }

    /* the labs: every numeric column but a pO2 above 100 */
    int want = 0;
    const cJSON *l;
    cJSON_ArrayForEach(l, labs)
    {
        if (!(!strcmp(l->string, "pO2_saturation") && atof(l->valuestring) > 100))
            want++;
    }
    snprintf(path, sizeof path, "%s/labs.csv", out);
    CHECKF(info.nlabs == want, "row %ld: %d labs, want %d", row, info.nlabs, want);
    CHECK(exists(path) == (want > 0));
    if (want) {
        rf_labs L = {0};
        rc = rf_labs_read_file(path, RF_LABS_CSV, &L, &err);
        CHECKF(rc == 0, "%s", err.msg);
        CHECK(L.nissues == 0 && (int)L.nlabs == want);
        for (size_t i = 0; i < L.nlabs; i++) {
            const rf_lab *r = &L.labs[i];
            const char *key = rf_lab_def_get(r->lab) ? rf_lab_def_get(r->lab)->key : "?";
            const char *col = NULL;
            for (size_t k = 0; k < sizeof LAB_KEYS / sizeof *LAB_KEYS; k++)
                if (!strcmp(LAB_KEYS[k].key, key))
                    col = LAB_KEYS[k].column;
            const cJSON *v = col ? cJSON_GetObjectItem(labs, col) : NULL;
            CHECKF(v != NULL, "row %ld: lab %s is not one of the row's", row, key);
            CHECKF(r->loinc != NULL && !(r->flags & (RF_LAB_UNKNOWN_UNIT | RF_LAB_UNIT_UNCONVERTIBLE | RF_LAB_BY_NAME)),
                   "row %ld: lab %s: flags %#x", row, key, r->flags);
            if (v)
                CHECKF(r->has_norm && r->value_norm == strtod(v->valuestring, NULL),
                       "row %ld: lab %s: %g in %s, the row says %s", row, key, r->value_norm, r->unit ? r->unit : "?",
                       v->valuestring);
            CHECK(r->time.precision == RF_TIME_DAY);
        }
        rf_labs_free(&L);
    }

    /* the attribution */
    snprintf(path, sizeof path, "%s/ATTRIBUTION.txt", out);
    char *attr = test_read_file(path, NULL);
    CHECK(attr && strstr(attr, cJSON_GetObjectItem(e, "filename")->valuestring) && strstr(attr, "License: "));
    free(attr);

    /* rebuilt, by image name this time: the same row, the same bytes */
    rc = rf_dataset_study(data, -1, cJSON_GetObjectItem(e, "filename")->valuestring, out2, &info, &err);
    CHECKF(rc == 0, "%s", err.msg);
    CHECK(info.row == row);
    const char *files[] = {"study/%ld.dcm", "note.txt", "labs.csv", "ATTRIBUTION.txt"};
    for (size_t i = 0; i < 4; i++) {
        char name[64];
        snprintf(name, sizeof name, files[i], row);
        snprintf(path, sizeof path, "%s/%s", out, name);
        snprintf(path2, sizeof path2, "%s/%s", out2, name);
        CHECKF(exists(path) == exists(path2) && (!exists(path) || same_file(path, path2)),
               "row %ld: %s differs when rebuilt", row, name);
    }
}

int main(void)
{
    const char *shared = test_shared_dir();
    char data[1024], dciodvfy[512], script[1024], tmp[256];
    snprintf(data, sizeof data, "%s/data/covid-chestxray", shared);
    if (!dv_need_tool("dciodvfy", "dicom3tools", dciodvfy, sizeof dciodvfy))
        return test_finish("test_dataset_study");
    const char *src = getenv("RADFUSE_SOURCE");
    snprintf(script, sizeof script, "%s/tests/data/make_dataset_expected.py", src ? src : ".");
    test_tmpdir(tmp, sizeof tmp);

    /* the reference values */
    static char out[1 << 20], errb[1 << 14];
    char *argv[4 + NROWS] = {"/usr/bin/python3", script, data};
    char rows[NROWS][16];
    for (size_t i = 0; i < NROWS; i++) {
        snprintf(rows[i], sizeof rows[i], "%ld", ROWS[i]);
        argv[3 + i] = rows[i];
    }
    argv[3 + NROWS] = NULL;
    int rc = test_run(argv, out, sizeof out, errb, sizeof errb);
    CHECKF(rc == 0, "%s: status %d: %s", script, rc, errb);
    size_t n = 0;
    for (char *save = NULL, *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        cJSON *e = cJSON_Parse(line);
        CHECK(e != NULL);
        if (e)
            check_row(data, e, dciodvfy, tmp), n++;
        cJSON_Delete(e);
    }
    CHECK(n == NROWS);

    /* bad input: one clear line each */
    rf_err err;
    char dir[512];
    snprintf(dir, sizeof dir, "%s/bad", tmp);
    rc = rf_dataset_study(data, 100000, NULL, dir, NULL, &err);
    CHECKF(rc != 0 && strstr(err.msg, "no row 100000") && strstr(err.msg, "metadata.csv"), "%s", err.msg);
    rc = rf_dataset_study(data, -1, "no-such-image.jpg", dir, NULL, &err);
    CHECKF(rc != 0 && strstr(err.msg, "no-such-image.jpg"), "%s", err.msg);
    rc = rf_dataset_study(tmp, 0, NULL, dir, NULL, &err);
    CHECKF(rc != 0 && strstr(err.msg, "metadata.csv"), "%s", err.msg);
    /* a row whose image is missing: the collection's metadata beside an empty images/ */
    char fake[512], link[600], meta[1100];
    snprintf(fake, sizeof fake, "%s/fake", tmp);
    snprintf(link, sizeof link, "%s/images", fake);
    snprintf(meta, sizeof meta, "%s/metadata.csv", data);
    CHECK(mkdir(fake, 0777) == 0 && mkdir(link, 0777) == 0);
    snprintf(link, sizeof link, "%s/metadata.csv", fake);
    CHECK(symlink(meta, link) == 0);
    rc = rf_dataset_study(fake, 0, NULL, dir, NULL, &err);
    CHECKF(rc != 0 && strstr(err.msg, "/images/") && strstr(err.msg, ".jpg"), "%s", err.msg);

    /* the command */
    const char *bin = test_radfuse_bin();
    char sout[8192], serr[8192];
    snprintf(dir, sizeof dir, "%s/cli", tmp);
    char *cli_ok[] = {(char *)bin, "dataset", "study", "--data", data, "--row", "20", "--out", dir, NULL};
    rc = test_run(cli_ok, sout, sizeof sout, serr, sizeof serr);
    CHECKF(rc == 0, "radfuse dataset study --row 20: status %d: %s", rc, serr);
    CHECKF(strstr(sout, "note: none") && strstr(sout, "labs: none") && strstr(sout, "study/20.dcm"), "%s", sout);
    char *cli_bad[] = {(char *)bin, "dataset", "study", "--data", data, "--row", "99999", "--out", dir, NULL};
    rc = test_run(cli_bad, sout, sizeof sout, serr, sizeof serr);
    CHECKF(rc == 2 && test_count_lines(serr) == 1 && strstr(serr, "no row 99999"), "status %d: %s", rc, serr);
    char *cli_usage[] = {(char *)bin, "dataset", "study", "--data", data, "--out", dir, NULL};
    rc = test_run(cli_usage, sout, sizeof sout, serr, sizeof serr);
    CHECKF(rc == 2 && test_count_lines(serr) == 1, "status %d: %s", rc, serr);
    return test_finish("test_dataset_study");
}
