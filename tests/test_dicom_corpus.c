/*
 * `radfuse dicom ls --json` over the shared DICOM corpus (shared/data/dicom),
 * checked file by file against tests/data/dicom_expected.txt: that list was
 * made independently of radfuse, with pydicom (tests/data/make_dicom_expected.py
 * says how), and holds for every file ok or error, and for the ok ones the
 * shape and (lossless syntaxes) the SHA-256 of the decoded stored values.
 * Lossy JPEG files (and JPEG 2000 with the irreversible wavelet, against GDCM)
 * may differ by +-1 per sample between decoders: their hash
 * is informative, and a 16x16 thumbnail of block means must match pydicom's
 * within 1.0 (computed here from rf_dicom_read's values, in process).
 * Objects without pixel data of a non-image SOP class (SR, RT plans,
 * waveforms) are ok with kind non-image and never selected; DICOMDIRs are ok
 * with kind dicomdir and the number of files their records reference.
 */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "radfuse/imaging.h"
#include "tests/testutil.h"

#define MAX_FILES 1024

enum { EXP_ERROR, EXP_OK, EXP_NONIMAGE, EXP_DICOMDIR };

typedef struct expect {
    char path[512];
    int ok; /* EXP_* */
    int rows, cols, frames;
    char what[256]; /* sha256, "lossy", or the reason for the error */
    char sha[65];   /* lossy: pydicom's hash */
    char *thumb;    /* lossy: block means in tenths, comma-separated */
    int seen;
} expect;

static int load_expected(const char *file, expect *e, int cap)
{
    size_t n;
    char *text = test_read_file(file, &n);
    if (!text) {
        fprintf(stderr, "cannot read %s\n", file);
        exit(1);
    }
    int count = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#' || !line[0])
            continue;
        if (count == cap) {
            fprintf(stderr, "%s: more than %d entries\n", file, cap);
            exit(1);
        }
        expect *x = &e[count];
        char status[16], r[16], c[16], f[16];
        memset(x, 0, sizeof *x);
        int used = 0;
        if (sscanf(line, "%511[^\t]\t%15[^\t]\t%15[^\t]\t%15[^\t]\t%15[^\t]\t%255[^\t\n]%n", x->path, status, r, c,
                   f, x->what, &used) != 6 ||
            (strcmp(x->what, "lossy") == 0 && sscanf(line + used, "\t%64[0-9a-f]\t%n", x->sha, &used) != 1)) {
            fprintf(stderr, "%s: bad line '%s'\n", file, line);
            exit(1);
        }
        if (strcmp(x->what, "lossy") == 0) {
            const char *t = strchr(strchr(line + strlen(x->path) + 1, '\t') + 1, '\t');
            for (int k = 0; k < 4 && t; k++)
                t = strchr(t + 1, '\t');
            x->thumb = t ? strdup(t + 1) : NULL;
        }
        x->ok = strcmp(status, "ok") == 0         ? EXP_OK
                : strcmp(status, "nonimage") == 0 ? EXP_NONIMAGE
                : strcmp(status, "dicomdir") == 0 ? EXP_DICOMDIR
                                                  : EXP_ERROR;
        if (x->ok == EXP_ERROR && strcmp(status, "error") != 0) {
            fprintf(stderr, "%s: bad status in '%s'\n", file, line);
            exit(1);
        }
        x->rows = atoi(r);
        x->cols = atoi(c);
        x->frames = atoi(f);
        count++;
    }
    free(text);
    return count;
}

/* The thumbnail make_dicom_expected.py defines, from rf_dicom_read's frame 0;
 * returns the largest |ours - pydicom's| in tenths, or -1 when it cannot compare. */
static long thumb_diff(const char *path, const char *ref)
{
    rf_dicom_image img;
    rf_err err;
    if (!ref || rf_dicom_read(path, RF_DICOM_PIXELS, &img, &err)) {
        fprintf(stderr, "%s\n", ref ? err.msg : "no thumbnail");
        return -1;
    }
    int rows = img.rows, cols = img.columns, spp = img.out_samples;
    int gr = rows < 16 ? rows : 16, gc = cols < 16 ? cols : 16;
    const uint8_t *px = img.pixels;
    long worst = 0;
    const char *p = ref;
    for (int i = 0; i < gr; i++)
        for (int j = 0; j < gc; j++)
            for (int c = 0; c < spp; c++) {
                double sum = 0;
                long n = 0;
                for (int y = i * rows / gr; y < (i + 1) * rows / gr; y++)
                    for (int x = j * cols / gc; x < (j + 1) * cols / gc; x++, n++) {
                        size_t at = ((size_t)y * (size_t)cols + (size_t)x) * (size_t)spp + (size_t)c;
                        long v;
                        if (img.sample_bytes == 1)
                            v = img.pixel_representation ? (int8_t)px[at] : px[at];
                        else
                            v = img.pixel_representation ? (int16_t)(px[2 * at] | px[2 * at + 1] << 8)
                                                         : (uint16_t)(px[2 * at] | px[2 * at + 1] << 8);
                        sum += (double)v;
                    }
                char *end;
                long want = strtol(p, &end, 10);
                if (end == p) {
                    rf_dicom_image_free(&img);
                    return -1;
                }
                p = *end == ',' ? end + 1 : end;
                long got = (long)(sum / (double)n * 10.0 + 0.5);
                long d = labs(got - want);
                if (d > worst)
                    worst = d;
            }
    rf_dicom_image_free(&img);
    return *p ? -1 : worst;
}

static int get_int(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valueint : -1;
}

static const char *get_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

int main(void)
{
    static expect exp[MAX_FILES];
    const char *src = getenv("RADFUSE_SOURCE");
    char file[4096], dir[4096];
    snprintf(file, sizeof file, "%s/tests/data/dicom_expected.txt", src ? src : ".");
    snprintf(dir, sizeof dir, "%s/data/dicom", test_shared_dir());
    int nexp = load_expected(file, exp, MAX_FILES);
    CHECKF(nexp >= 180, "%d expected entries", nexp);

    size_t cap = 8 << 20;
    char *out = malloc(cap), *errb = malloc(1 << 16);
    char *argv[] = {(char *)test_radfuse_bin(), "dicom", "ls", "--json", dir, NULL};
    int status = test_run(argv, out, cap, errb, 1 << 16);
    /* the corpus holds broken and non-image files: exit 2, every file still listed */
    CHECKF(status == 2, "exit status %d, stderr: %s", status, errb);

    int lines = 0, ok_hashed = 0, ok_lossy = 0, lossy_exact = 0, errors = 0, nonimage = 0, dicomdirs = 0;
    char prev[4096] = "";
    size_t dlen = strlen(dir);
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        lines++;
        cJSON *o = cJSON_Parse(line);
        CHECKF(o != NULL, "not JSON: %.200s", line);
        if (!o)
            continue;
        const char *path = get_str(o, "path"), *st = get_str(o, "status");
        CHECKF(path && st, "no path/status: %.200s", line);
        if (!path || !st || strncmp(path, dir, dlen) != 0 || path[dlen] != '/') {
            CHECKF(0, "path outside the corpus: %.200s", line);
            cJSON_Delete(o);
            continue;
        }
        CHECKF(strcmp(prev, path) < 0, "not in sorted order: %s after %s", path, prev);
        snprintf(prev, sizeof prev, "%s", path);
        const char *rel = path + dlen + 1;
        expect *x = NULL;
        for (int i = 0; i < nexp; i++)
            if (strcmp(exp[i].path, rel) == 0)
                x = &exp[i];
        CHECKF(x != NULL, "%s is not in the expected list", rel);
        if (!x) {
            cJSON_Delete(o);
            continue;
        }
        CHECKF(!x->seen, "%s listed twice", rel);
        x->seen = 1;
        const cJSON *sel = cJSON_GetObjectItemCaseSensitive(o, "selected");
        const char *reason = get_str(o, "reason"), *kind = get_str(o, "kind");
        CHECKF(cJSON_IsBool(sel) && reason && *reason, "%s: no selected/reason", rel);
        if (x->ok == EXP_NONIMAGE) {
            nonimage++;
            CHECKF(strcmp(st, "ok") == 0 && kind && strcmp(kind, "non-image") == 0 && !get_str(o, "pixel_sha256") &&
                       cJSON_IsFalse(sel) && reason &&
                       (strncmp(reason, "not an image", 12) == 0 || strncmp(reason, "duplicate", 9) == 0),
                   "%s: expected an ok non-image object (%s): %.300s", rel, x->what, line);
        } else if (x->ok == EXP_DICOMDIR) {
            dicomdirs++;
            CHECKF(strcmp(st, "ok") == 0 && kind && strcmp(kind, "dicomdir") == 0 && cJSON_IsFalse(sel),
                   "%s: expected a DICOMDIR: %.300s", rel, line);
            CHECKF(get_int(o, "referenced_files") == atoi(x->what) && get_int(o, "missing_files") == 0,
                   "%s: %d referenced files (%d missing), pydicom lists %s", rel, get_int(o, "referenced_files"),
                   get_int(o, "missing_files"), x->what);
        } else if (x->ok) {
            CHECKF(strcmp(st, "ok") == 0, "%s: expected ok, got: %s", rel, get_str(o, "error"));
            if (strcmp(st, "ok") == 0) {
                CHECKF(get_int(o, "rows") == x->rows && get_int(o, "columns") == x->cols &&
                           get_int(o, "frames") == x->frames,
                       "%s: shape %dx%dx%d, expected %dx%dx%d", rel, get_int(o, "rows"), get_int(o, "columns"),
                       get_int(o, "frames"), x->rows, x->cols, x->frames);
                const char *sha = get_str(o, "pixel_sha256");
                CHECKF(sha && strlen(sha) == 64, "%s: no pixel_sha256", rel);
                CHECKF(get_str(o, "sop_instance_uid") && get_str(o, "transfer_syntax_uid") && get_str(o, "modality"),
                       "%s: attributes missing", rel);
                if (strcmp(x->what, "lossy") == 0) {
                    ok_lossy++;
                    lossy_exact += sha && strcmp(sha, x->sha) == 0;
                    long d = thumb_diff(path, x->thumb);
                    /* +-1 per sample moves a block mean by at most 1.0; +1 tenth for rounding */
                    CHECKF(d >= 0 && d <= 11, "%s: thumbnail differs from pydicom's by %ld tenths", rel, d);
                } else {
                    CHECKF(sha && strcmp(sha, x->what) == 0, "%s: pixel_sha256 %s, pydicom's %s", rel, sha, x->what);
                    ok_hashed++;
                }
            }
        } else {
            errors++;
            const char *msg = get_str(o, "error");
            CHECKF(strcmp(st, "error") == 0, "%s: expected an error (%s), got ok", rel, x->what);
            CHECKF(msg && strncmp(msg, path, strlen(path)) == 0 && !strchr(msg, '\n'),
                   "%s: error must be one line naming the file: %s", rel, msg ? msg : "(none)");
        }
        cJSON_Delete(o);
    }
    for (int i = 0; i < nexp; i++)
        CHECKF(exp[i].seen, "%s: not listed", exp[i].path);
    CHECKF(lines == nexp, "%d lines for %d files", lines, nexp);
    /* the representative set the list promises: lossless hashes across syntaxes */
    CHECKF(ok_hashed >= 20, "only %d files checked by hash", ok_hashed);
    fprintf(stderr,
            "dicom corpus: %d files, %d lossless hashes equal to pydicom's, %d lossy within tolerance (%d exactly), "
            "%d non-image objects, %d DICOMDIRs, %d errors\n",
            lines, ok_hashed, ok_lossy, lossy_exact, nonimage, dicomdirs, errors);
    for (int i = 0; i < nexp; i++)
        free(exp[i].thumb);
    free(out);
    free(errb);
    return test_finish("test_dicom_corpus");
}
