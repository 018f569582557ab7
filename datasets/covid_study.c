/*
 * A study from one row of the COVID-19 image data collection
 * (rf_dataset_study, radfuse/datasets.h): the row found in metadata.csv, its
 * JPEG decoded, and the DICOM image, note, labs and attribution written.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <jpeglib.h>

#include "datasets/datasets_internal.h"
#include "radfuse/datasets.h"
#include "runtime/fileio.h"
#include "runtime/sha256.h"
#include "text/csv.h"

#define META_MAX ((size_t)64 << 20)
#define JPEG_MAX ((size_t)64 << 20)

/* The columns used, by name (the collection's header; order may change). */
enum {
    K_PATIENTID, K_OFFSET, K_SEX, K_AGE, K_TEMPERATURE, K_PO2, K_LEUKOCYTES, K_NEUTROPHILS, K_LYMPHOCYTES, K_VIEW,
    K_FOLDER, K_FILENAME, K_DOI, K_URL, K_LICENSE, K_NOTES, K_COUNT
};
static const char *const column_names[K_COUNT] = {
    "patientid", "offset", "sex", "age", "temperature", "pO2_saturation", "leukocyte_count", "neutrophil_count",
    "lymphocyte_count", "view", "folder", "filename", "doi", "url", "license", "clinical_notes"};

/* The lab columns, in the order of ds_covid_lab_columns. */
static const int lab_cols[DS_COVID_NLABS] = {K_TEMPERATURE, K_PO2, K_LEUKOCYTES, K_NEUTROPHILS, K_LYMPHOCYTES};

typedef struct row_fields {
    char *f[K_COUNT]; /* malloc'd copies, trimmed */
} row_fields;

static void row_free(row_fields *r)
{
    for (int k = 0; k < K_COUNT; k++)
        free(r->f[k]);
}

static char *dup_trim(const char *s, size_t n)
{
    while (n && isspace((unsigned char)*s))
        s++, n--;
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = 0;
    }
    return p;
}

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* Finds the row (by index, or by file name when row < 0) of metadata.csv. */
static int find_row(const char *meta, long row, const char *image, row_fields *out, long *found, rf_err *err)
{
    char *data = NULL;
    size_t len = 0;
    int rc = rf_read_file(meta, META_MAX, &data, &len, err);
    if (rc)
        return rc;
    text_csv csv;
    text_csv_opts opts = {.skip_blank = true};
    text_csv_init(&csv, meta, data, len, &opts);
    bool got;
    size_t col[K_COUNT];
    rc = text_csv_read(&csv, &got, err);
    if (!rc && !got)
        rc = rf_err_set(err, RF_EFORMAT, "%s: empty; the collection's metadata.csv starts with its header", meta);
    for (int k = 0; !rc && k < K_COUNT; k++) {
        col[k] = (size_t)-1;
        for (size_t i = 0; i < csv.nfields; i++)
            if (!strcmp(text_csv_field(&csv, i, NULL), column_names[k]))
                col[k] = i;
        if (col[k] == (size_t)-1)
            rc = rf_err_set(err, RF_EFORMAT, "%s: the header has no column '%s'", meta, column_names[k]);
    }
    size_t ncols = csv.nfields;
    const char *want = image ? base_name(image) : NULL;
    long i = 0;
    *found = -1;
    while (!rc) {
        rc = text_csv_read(&csv, &got, err);
        if (rc || !got)
            break;
        bool hit = row >= 0 ? i == row : !strcmp(text_csv_field(&csv, col[K_FILENAME], NULL) ?: "", want);
        if (hit) {
            if (csv.nfields != ncols) {
                rc = rf_err_set(err, RF_EFORMAT, "%s: line %zu: %zu fields where the header has %zu", meta, csv.line,
                                csv.nfields, ncols);
                break;
            }
            for (int k = 0; k < K_COUNT; k++) {
                size_t n;
                const char *v = text_csv_field(&csv, col[k], &n);
                if (!(out->f[k] = dup_trim(v, n))) {
                    rc = rf_err_set(err, RF_ENOMEM, "out of memory");
                    break;
                }
            }
            *found = i;
            break;
        }
        i++;
    }
    text_csv_free(&csv);
    free(data);
    if (!rc && *found < 0) {
        if (row >= 0)
            rc = rf_err_set(err, RF_EINVAL, "%s: no row %ld (the file has %ld rows, numbered from 0)", meta, row, i);
        else
            rc = rf_err_set(err, RF_EINVAL, "%s: no row has the image '%.200s'", meta, want);
    }
    if (rc)
        row_free(out);
    return rc;
}

/* ---- JPEG (libjpeg-turbo) ---- */

/* Decodes path to 8-bit gray (JDCT_ISLOW: the values every libjpeg decoder
 * and DCMTK's IJG codec agree on); *pixels is malloc'd. */
static int decode_jpeg(const char *path, uint8_t **pixels, int *rows, int *cols, rf_err *err)
{
    char *data = NULL;
    size_t len = 0;
    int rc = rf_read_file(path, JPEG_MAX, &data, &len, err);
    if (rc)
        return rc;
    struct jpeg_decompress_struct cinfo;
    ds_jpeg_fail jf;
    /* volatile: changed between setjmp and a longjmp back to it */
    uint8_t *volatile out = NULL;
    ds_jpeg_catch(&cinfo, &jf);
    if (setjmp(jf.jb)) {
        jpeg_destroy_decompress(&cinfo);
        free(out);
        free(data);
        return rf_err_set(err, RF_EFORMAT, "%s: not a JPEG image radfuse can decode: %s", path, jf.msg);
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, (const unsigned char *)data, (unsigned long)len);
    jpeg_read_header(&cinfo, TRUE);
    if (cinfo.num_components != 1) {
        jpeg_destroy_decompress(&cinfo);
        free(data);
        return rf_err_set(err, RF_EUNSUP, "%s: a %d-component JPEG; the collection's images are grayscale", path,
                          cinfo.num_components);
    }
    cinfo.out_color_space = JCS_GRAYSCALE;
    cinfo.dct_method = JDCT_ISLOW;
    jpeg_start_decompress(&cinfo);
    size_t w = cinfo.output_width, h = cinfo.output_height;
    if (w == 0 || h == 0 || w > 65535 || h > 65535) {
        jpeg_destroy_decompress(&cinfo);
        free(data);
        return rf_err_set(err, RF_EUNSUP, "%s: image size %zux%zu cannot be a DICOM image", path, w, h);
    }
    out = malloc(w * h);
    if (!out) {
        jpeg_destroy_decompress(&cinfo);
        free(data);
        return rf_err_set(err, RF_ENOMEM, "%s: out of memory", path);
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW line = out + (size_t)cinfo.output_scanline * w;
        jpeg_read_scanlines(&cinfo, &line, 1);
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    free(data);
    *pixels = out;
    *rows = (int)h;
    *cols = (int)w;
    return RF_OK;
}

/* ---- outputs ---- */

/* 2.25.<decimal>: a name-based UUID (RFC 9562 version 8) from SHA-256 of
 * "radfuse covid-chestxray <kind> <image>"; at most 44 characters. */
static void make_uid(const char *kind, const char *image, char out[64])
{
    rf_sha256 s;
    uint8_t d[32];
    rf_sha256_init(&s);
    const char *parts[] = {"radfuse covid-chestxray ", kind, " ", image};
    for (int i = 0; i < 4; i++)
        rf_sha256_update(&s, parts[i], strlen(parts[i]));
    rf_sha256_final(&s, d);
    d[6] = (uint8_t)((d[6] & 0x0f) | 0x80);
    d[8] = (uint8_t)((d[8] & 0x3f) | 0x80);
    unsigned __int128 v = 0;
    for (int i = 0; i < 16; i++)
        v = (v << 8) | d[i];
    char dec[48];
    int n = 0;
    do {
        dec[n++] = (char)('0' + (int)(v % 10));
        v /= 10;
    } while (v);
    int o = snprintf(out, 64, "2.25.");
    while (n)
        out[o++] = dec[--n];
    out[o] = 0;
}

/* A growable text buffer; the first failed allocation sets oom. */
typedef struct tbuf {
    char *p;
    size_t n, cap;
    bool oom;
} tbuf;

static void tb_printf(tbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tb_printf(tbuf *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    va_list ap;
    va_start(ap, fmt);
    int need = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (need < 0 || b->n + (size_t)need + 1 > b->cap) {
        size_t cap = (b->n + (size_t)(need < 0 ? 0 : need) + 1) * 2;
        char *p = need < 0 ? NULL : realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p, b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
    va_end(ap);
    b->n += (size_t)need;
}

static int write_text(const char *dir, const char *name, tbuf *b, rf_err *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (b->oom)
        return rf_err_set(err, RF_ENOMEM, "%s: out of memory", path);
    return rf_write_file_atomic(path, b->p ? b->p : "", b->n, err);
}

static int make_dir(const char *path, rf_err *err)
{
    if (mkdir(path, 0777) != 0 && errno != EEXIST)
        return rf_err_set(err, RF_EIO, "%s: cannot create: %s", path, strerror(errno));
    return RF_OK;
}

int rf_dataset_study(const char *data_dir, long row, const char *image, const char *outdir,
                     rf_dataset_study_info *info, rf_err *err)
{
    if (!data_dir || !outdir || (row < 0 && (!image || !*image)))
        return rf_err_set(err, RF_EINVAL, "rf_dataset_study: a data directory, a row or an image, and an output "
                                          "directory are needed");
    rf_dataset_study_info local;
    if (!info)
        info = &local;
    memset(info, 0, sizeof *info);
    char meta[4096], path[4096];
    snprintf(meta, sizeof meta, "%s/metadata.csv", data_dir);
    row_fields r = {0};
    long found;
    int rc = find_row(meta, row, image, &r, &found, err);
    if (rc)
        return rc;
    info->row = found;
    char **f = r.f;
    uint8_t *pixels = NULL;
    tbuf note = {0}, attr = {0};
    if (!*f[K_FILENAME] || strchr(f[K_FILENAME], '/') || strchr(f[K_FOLDER], '/') || !strcmp(f[K_FILENAME], "..")) {
        rc = rf_err_set(err, RF_EFORMAT, "%s: row %ld: no usable file name", meta, found);
        goto done;
    }
    snprintf(path, sizeof path, "%s/%s/%s", data_dir, *f[K_FOLDER] ? f[K_FOLDER] : "images", f[K_FILENAME]);
    if ((rc = decode_jpeg(path, &pixels, &info->rows, &info->cols, err)))
        goto done;

    /* the date: day 0 plus the row's offset (none: day 0) */
    long offset = 0;
    if (*f[K_OFFSET]) {
        char *end;
        offset = strtol(f[K_OFFSET], &end, 10);
        if (*end || offset < -36500 || offset > 36500) {
            rc = rf_err_set(err, RF_EFORMAT, "%s: row %ld: offset is not a whole number of days", meta, found);
            goto done;
        }
    }
    ds_study_date(offset, info->study_date);
    char iso_date[11];
    snprintf(iso_date, sizeof iso_date, "%.4s-%.2s-%.2s", info->study_date, info->study_date + 4,
             info->study_date + 6);

    /* the DICOM image */
    const char *v = f[K_VIEW];
    snprintf(info->view, sizeof info->view, "%s",
             !strcmp(v, "PA") ? "PA" : !strncmp(v, "AP", 2) ? "AP" : !strcmp(v, "L") ? "LL" : "");
    snprintf(info->modality, sizeof info->modality, "CR");
    char pid[80], age[8] = "", suid[64], seuid[64], sopuid[64], sdesc[80], derivation[400];
    snprintf(pid, sizeof pid, "COVID-%.60s", f[K_PATIENTID]);
    char pname[80]; /* family^given: the collection^its patient number */
    snprintf(pname, sizeof pname, "COVID^%.60s", f[K_PATIENTID]);
    char *end;
    long a = *f[K_AGE] ? strtol(f[K_AGE], &end, 10) : -1;
    if (*f[K_AGE] && !*end && a >= 0 && a <= 999)
        snprintf(age, sizeof age, "%03ldY", a);
    make_uid("study", f[K_FILENAME], suid);
    make_uid("series", f[K_FILENAME], seuid);
    make_uid("instance", f[K_FILENAME], sopuid);
    snprintf(sdesc, sizeof sdesc, "Chest X-ray %.20s", v);
    snprintf(derivation, sizeof derivation,
             "8-bit grayscale JPEG of the COVID-19 image data collection (%.200s), decoded and stored uncompressed",
             f[K_FILENAME]);
    snprintf(path, sizeof path, "%s", outdir);
    if ((rc = make_dir(path, err)))
        goto done;
    snprintf(path, sizeof path, "%s/study", outdir);
    if ((rc = make_dir(path, err)))
        goto done;
    snprintf(info->dicom, sizeof info->dicom, "study/%ld.dcm", found);
    snprintf(path, sizeof path, "%s/%s", outdir, info->dicom);
    const char *sex = !strcmp(f[K_SEX], "M") ? "M" : !strcmp(f[K_SEX], "F") ? "F" : "";
    ds_cr_spec spec = {.path = path,
                       .pixels = pixels,
                       .rows = info->rows,
                       .cols = info->cols,
                       .patient_id = pid,
                       .patient_name = pname,
                       .patient_sex = sex,
                       .patient_age = age,
                       .study_uid = suid,
                       .series_uid = seuid,
                       .sop_uid = sopuid,
                       .study_date = info->study_date,
                       .study_time = "120000",
                       .view_position = info->view,
                       .body_part = "CHEST",
                       .study_description = "Chest X-ray",
                       .series_description = sdesc,
                       .derivation = derivation};
    if ((rc = ds_write_cr(&spec, err)))
        goto done;

    /* the note */
    if (*f[K_NOTES]) {
        tb_printf(&note, "Date: %s\n%s", iso_date, f[K_NOTES]);
        if ((rc = write_text(outdir, "note.txt", &note, err)))
            goto done;
        info->has_note = 1;
    }

    /* the labs */
    {
        const char *vals[DS_COVID_NLABS];
        for (int i = 0; i < DS_COVID_NLABS; i++)
            vals[i] = f[lab_cols[i]];
        char *csv = NULL;
        size_t csv_len = 0;
        if ((rc = ds_covid_labs_csv(vals, iso_date, &csv, &csv_len, &info->nlabs, info->skipped,
                                    sizeof info->skipped, err)))
            goto done;
        if (info->nlabs) {
            snprintf(path, sizeof path, "%s/labs.csv", outdir);
            rc = rf_write_file_atomic(path, csv, csv_len, err);
        }
        free(csv);
        if (rc)
            goto done;
    }

    /* the attribution */
    tb_printf(&attr,
              "Image: %s\n"
              "From: COVID-19 image data collection (Cohen, Morrison, Dao, Roth, Duong, Ghassemi, arXiv:2006.11988, "
              "2020; github.com/ieee8023/covid-chestxray-dataset), row %ld of metadata.csv\n"
              "License: %s\nDOI: %s\nURL: %s\n"
              "Changes: converted to 8-bit grayscale JPEG by the collection's subset; decoded and written as DICOM "
              "with its note and labs by radfuse\n",
              f[K_FILENAME], found, *f[K_LICENSE] ? f[K_LICENSE] : "not stated by the source",
              *f[K_DOI] ? f[K_DOI] : "none given", *f[K_URL] ? f[K_URL] : "none given");
    rc = write_text(outdir, "ATTRIBUTION.txt", &attr, err);

done:
    free(pixels);
    free(note.p);
    free(attr.p);
    row_free(&r);
    return rc;
}
