/*
 * Hostile DICOM input through `radfuse dicom ls`: empty and non-DICOM files,
 * every truncation of real files, lying lengths and sizes, sizes no file can
 * justify, byte flips, and directory trees with links and fifos. Each bad file
 * must give exit status 2 and exactly one JSON line with status "error" and a
 * one-line message naming the file; never a crash (the sanitizer build runs
 * the same binary under ASan + UBSan).
 */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/testutil.h"

#define OUT_CAP (4 << 20)
static char out[OUT_CAP], errb[1 << 16];

static int run_ls(const char *path, int json)
{
    char *argv[] = {(char *)test_radfuse_bin(), "dicom", "ls", (char *)path, json ? "--json" : NULL, NULL};
    return test_run(argv, out, OUT_CAP, errb, sizeof errb);
}

/* Every line of out is a JSON object; counts them and the errors. */
static void count_json(int *lines, int *errors, int *bad_messages)
{
    *lines = *errors = *bad_messages = 0;
    char *copy = strdup(out);
    for (char *line = strtok(copy, "\n"); line; line = strtok(NULL, "\n")) {
        (*lines)++;
        cJSON *o = cJSON_Parse(line);
        if (!o) {
            (*bad_messages)++;
            continue;
        }
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(o, "status");
        const cJSON *path = cJSON_GetObjectItemCaseSensitive(o, "path");
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(o, "error");
        if (cJSON_IsString(st) && strcmp(st->valuestring, "error") == 0) {
            (*errors)++;
            if (!cJSON_IsString(msg) || !cJSON_IsString(path) ||
                strncmp(msg->valuestring, path->valuestring, strlen(path->valuestring)) != 0 ||
                strchr(msg->valuestring, '\n'))
                (*bad_messages)++;
        }
        cJSON_Delete(o);
    }
    free(copy);
}

/* One bad file: exit 2, one line, an error naming it. */
static void expect_error(const char *path, const char *what)
{
    int status = run_ls(path, 1), lines, errors, bad;
    count_json(&lines, &errors, &bad);
    CHECKF(status == 2, "%s (%s): exit status %d", path, what, status);
    CHECKF(lines == 1 && errors == 1 && bad == 0, "%s (%s): %d lines, %d errors, %d bad: %s", path, what, lines,
           errors, bad, out);
}

/* Offset of the first occurrence of needle in hay, or -1. */
static long find(const unsigned char *hay, size_t n, const void *needle, size_t m)
{
    for (size_t i = 0; i + m <= n; i++)
        if (memcmp(hay + i, needle, m) == 0)
            return (long)i;
    return -1;
}

static void write_patched(const char *path, const unsigned char *data, size_t n, long at, const void *bytes, size_t m)
{
    unsigned char *copy = malloc(n);
    memcpy(copy, data, n);
    memcpy(copy + at, bytes, m);
    test_write_file(path, copy, n);
    free(copy);
}

int main(void)
{
    char tmp[256], path[2048], dicom[512];
    test_tmpdir(tmp, sizeof tmp);
    snprintf(dicom, sizeof dicom, "%s/data/dicom/pydicom-test-files", test_shared_dir());

    /* empty, text, binary noise, a preamble alone, DICM with nothing after */
    snprintf(path, sizeof path, "%s/empty.dcm", tmp);
    test_write_file(path, "", 0);
    expect_error(path, "empty");
    snprintf(path, sizeof path, "%s/text.dcm", tmp);
    test_write_file(path, "hello, not a DICOM file\n", 24);
    expect_error(path, "text");
    unsigned char pre[132] = {0};
    memcpy(pre + 128, "DICM", 4);
    snprintf(path, sizeof path, "%s/preamble.dcm", tmp);
    test_write_file(path, pre, sizeof pre);
    expect_error(path, "preamble only");
    snprintf(path, sizeof path, "%s/missing.dcm", tmp);
    expect_error(path, "missing file");

    /* real files: explicit LE, implicit LE, big endian (16- and 32-bit), RLE (16-bit; 32-bit RGB
     * multi-frame), JPEG-LS, JPEG lossless, JPEG baseline YBR_FULL_422, JPEG 12-bit extended,
     * uncompressed YBR_FULL_422, deflate, JPEG 2000 (J2K codestream; JP2 file, YBR_RCT) */
    const char *sources[] = {"CT_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm", "rtdose_expb.dcm",
                             "MR_small_RLE.dcm", "SC_rgb_rle_32bit_2frame.dcm", "MR_small_jpeg_ls_lossless.dcm",
                             "SC_rgb_jpeg_gdcm.dcm", "SC_rgb_dcmtk_+eb+cy+np.dcm", "JPGExtended.dcm",
                             "SC_ybr_full_422_uncompressed.dcm", "image_dfl.dcm", "MR_small_jp2klossless.dcm",
                             "GDCMJ2K_TextGBR.dcm"};
    int nsrc = (int)(sizeof sources / sizeof *sources);
    for (int s = 0; s < nsrc; s++) {
        char src[768];
        snprintf(src, sizeof src, "%s/%s", dicom, sources[s]);
        size_t n;
        unsigned char *data = (unsigned char *)test_read_file(src, &n);
        CHECKF(data != NULL, "cannot read %s", src);
        if (!data)
            continue;
        /* the intact file reads */
        CHECKF(run_ls(src, 1) == 0, "%s: exit status != 0: %s", src, out);

        /* truncations: a directory of copies cut at many lengths, one run */
        char tdir[1024];
        snprintf(tdir, sizeof tdir, "%s/trunc%d", tmp, s);
        mkdir(tdir, 0700);
        int copies = 0;
        size_t step = n / 97 + 1;
        for (size_t len = 0; len < n; len += (len < 400 ? 7 : step)) {
            snprintf(path, sizeof path, "%s/cut%08zu", tdir, len);
            test_write_file(path, data, len);
            copies++;
        }
        int status = run_ls(tdir, 1), lines, errors, bad;
        count_json(&lines, &errors, &bad);
        CHECKF(status == 2, "%s truncated: exit status %d", sources[s], status);
        /* a cut inside trailing padding may still read; nothing may crash or go unlisted */
        CHECKF(lines == copies && bad == 0 && errors >= copies - 2, "%s truncated: %d lines, %d errors, %d bad of %d",
               sources[s], lines, errors, bad, copies);

        /* byte flips: deterministic mutations, one run over all of them */
        snprintf(tdir, sizeof tdir, "%s/flip%d", tmp, s);
        mkdir(tdir, 0700);
        unsigned char *m = malloc(n);
        uint64_t seed = 0x9e3779b97f4a7c15ull * (uint64_t)(s + 1);
        int flips = 150;
        for (int k = 0; k < flips; k++) {
            memcpy(m, data, n);
            for (int j = 0; j < 1 + k % 4; j++) {
                seed = seed * 6364136223846793005ull + 1442695040888963407ull;
                size_t at = (size_t)(seed >> 33) % (n < 2048 ? n : 2048 + (size_t)(seed >> 20) % (n - 2048 + 1));
                m[at % n] ^= (unsigned char)(1u << ((seed >> 13) & 7)) | (unsigned char)(k & 0x80 ? 0xff : 0);
            }
            snprintf(path, sizeof path, "%s/flip%04d", tdir, k);
            test_write_file(path, m, n);
        }
        free(m);
        status = run_ls(tdir, 1);
        count_json(&lines, &errors, &bad);
        CHECKF(status == 0 || status == 2, "%s flipped: exit status %d (crash?) %s", sources[s], status, errb);
        CHECKF(lines == flips && bad == 0, "%s flipped: %d lines of %d, %d bad", sources[s], lines, flips, bad);
        free(data);
    }

    /* lying sizes in CT_small (explicit VR little endian, 128x128x16-bit) */
    {
        char src[768];
        snprintf(src, sizeof src, "%s/CT_small.dcm", dicom);
        size_t n;
        unsigned char *data = (unsigned char *)test_read_file(src, &n);
        const unsigned char rows_tag[] = {0x28, 0x00, 0x10, 0x00, 'U', 'S', 0x02, 0x00};
        const unsigned char pix_tag[] = {0xe0, 0x7f, 0x10, 0x00, 'O', 'W', 0x00, 0x00};
        long r = find(data, n, rows_tag, sizeof rows_tag), p = find(data, n, pix_tag, sizeof pix_tag);
        CHECK(r > 0 && p > 0);
        if (r > 0 && p > 0) {
            const unsigned char big[2] = {0x00, 0x10}; /* Rows 4096: pixel data too short */
            snprintf(path, sizeof path, "%s/rows4096.dcm", tmp);
            write_patched(path, data, n, r + 8, big, 2);
            expect_error(path, "Rows larger than the pixel data");
            const unsigned char zero[2] = {0, 0};
            snprintf(path, sizeof path, "%s/rows0.dcm", tmp);
            write_patched(path, data, n, r + 8, zero, 2);
            expect_error(path, "Rows 0");
            const unsigned char huge[4] = {0xf0, 0xff, 0xff, 0x7f}; /* pixel data length past the end */
            snprintf(path, sizeof path, "%s/pixlen.dcm", tmp);
            write_patched(path, data, n, p + 8, huge, 4);
            expect_error(path, "pixel data length past the end of the file");
            const unsigned char odd[4] = {0x01, 0x00, 0x00, 0x00}; /* 1-byte pixel data */
            snprintf(path, sizeof path, "%s/pix1.dcm", tmp);
            write_patched(path, data, n, p + 8, odd, 4);
            expect_error(path, "pixel data shorter than the attributes");
        }
        free(data);
    }

    /* a compressed file claiming 65535x65535 (past the absolute limit) and 65535x2048
     * (under it, but far more than the file can hold): rejected before anything
     * is allocated */
    {
        char src[768];
        snprintf(src, sizeof src, "%s/MR_small_RLE.dcm", dicom);
        size_t n;
        unsigned char *data = (unsigned char *)test_read_file(src, &n);
        const unsigned char rows_tag[] = {0x28, 0x00, 0x10, 0x00, 'U', 'S', 0x02, 0x00};
        const unsigned char cols_tag[] = {0x28, 0x00, 0x11, 0x00, 'U', 'S', 0x02, 0x00};
        long r = find(data, n, rows_tag, sizeof rows_tag), c = find(data, n, cols_tag, sizeof cols_tag);
        CHECK(r > 0 && c > 0);
        if (r > 0 && c > 0) {
            const unsigned char big[2] = {0xff, 0xff};
            unsigned char *copy = malloc(n);
            memcpy(copy, data, n);
            memcpy(copy + r + 8, big, 2);
            memcpy(copy + c + 8, big, 2);
            snprintf(path, sizeof path, "%s/huge_rle.dcm", tmp);
            test_write_file(path, copy, n);
            free(copy);
            expect_error(path, "65535x65535 RLE");
            CHECKF(strstr(out, "limit") != NULL, "huge RLE: not the size limit: %s", out);
            const unsigned char cols2k[2] = {0x00, 0x08};
            copy = malloc(n);
            memcpy(copy, data, n);
            memcpy(copy + r + 8, big, 2);
            memcpy(copy + c + 8, cols2k, 2);
            snprintf(path, sizeof path, "%s/big_rle.dcm", tmp);
            test_write_file(path, copy, n);
            free(copy);
            expect_error(path, "65535x2048 RLE");
            CHECKF(strstr(out, "can hold") != NULL, "big RLE: not the file-size check: %s", out);
        }
        free(data);
    }

    /* a JPEG segment length of 0 (DCMTK 3.6.7's bit-depth scan loops forever on it:
     * radfuse must check the marker structure first) and an SOI-less first fragment */
    {
        char src[768];
        snprintf(src, sizeof src, "%s/SC_rgb_dcmtk_+eb+cy+np.dcm", dicom);
        size_t n;
        unsigned char *data = (unsigned char *)test_read_file(src, &n);
        const unsigned char soi[3] = {0xff, 0xd8, 0xff};
        long at = find(data, n, soi, sizeof soi);
        CHECK(at > 0);
        if (at > 0) {
            const unsigned char zero[2] = {0, 0};
            snprintf(path, sizeof path, "%s/jpeg_len0.dcm", tmp);
            write_patched(path, data, n, at + 4, zero, 2);
            expect_error(path, "JPEG segment length 0");
            CHECKF(strstr(out, "malformed") != NULL, "JPEG length 0: %s", out);
            const unsigned char nosoi[2] = {0x12, 0x34};
            snprintf(path, sizeof path, "%s/jpeg_nosoi.dcm", tmp);
            write_patched(path, data, n, at, nosoi, 2);
            expect_error(path, "JPEG without SOI");
        }
        free(data);
    }

    /* a tree: good files, a symlink and a fifo (skipped), nested directories, sorted output */
    {
        char tree[512], sub[600], src[768]; /* path is larger than all */
        snprintf(tree, sizeof tree, "%s/tree", tmp);
        mkdir(tree, 0700);
        snprintf(sub, sizeof sub, "%s/b", tree);
        mkdir(sub, 0700);
        size_t n;
        snprintf(src, sizeof src, "%s/CT_small.dcm", dicom);
        char *ct = test_read_file(src, &n);
        snprintf(path, sizeof path, "%s/b/ct.dcm", tree);
        test_write_file(path, ct, n);
        snprintf(path, sizeof path, "%s/a.dcm", tree);
        test_write_file(path, ct, n);
        free(ct);
        snprintf(path, sizeof path, "%s/link.dcm", tree);
        CHECK(symlink(src, path) == 0);
        snprintf(path, sizeof path, "%s/fifo", tree);
        CHECK(mkfifo(path, 0600) == 0);
        int status = run_ls(tree, 1), lines, errors, bad;
        count_json(&lines, &errors, &bad);
        CHECKF(status == 0 && lines == 2 && errors == 0, "tree: status %d, %d lines, %d errors: %s", status, lines,
               errors, out);
        char *a = strstr(out, "/tree/a.dcm"), *b = strstr(out, "/tree/b/ct.dcm");
        CHECKF(a && b && a < b, "tree: not in sorted order: %s", out);

        /* the readable report: study / series / instance (selected: '*'), the copy
         * (same SOPInstanceUID) listed once, no patient name or ID (PHI) */
        status = run_ls(tree, 0);
        CHECKF(status == 0, "tree text: status %d", status);
        CHECKF(strstr(out, "study 1.3.6.1.4.1.5962.1.2.1.20040119072730.12322") && strstr(out, "  series ") &&
                   strstr(out, "    * #1  128x128") && strstr(out, "also read from"),
               "tree text: %s", out);
        CHECKF(!strstr(out, "CompressedSamples") && !strstr(out, "1CT1"), "tree text shows PHI: %s", out);

        /* a good file with a bad one: exit 2, both listed, the scan goes on */
        snprintf(path, sizeof path, "%s/zz-bad.dcm", tree);
        test_write_file(path, "junk", 4);
        status = run_ls(tree, 1);
        count_json(&lines, &errors, &bad);
        CHECKF(status == 2 && lines == 3 && errors == 1 && bad == 0, "mixed: status %d, %d lines, %d errors: %s",
               status, lines, errors, out);
        status = run_ls(tree, 0);
        CHECKF(status == 2 && strstr(out, "errors (1):") && strstr(out, "zz-bad.dcm"), "mixed text: %s", out);
    }

    /* usage errors */
    {
        char *argv[] = {(char *)test_radfuse_bin(), "dicom", "ls", NULL};
        CHECK(test_run(argv, out, OUT_CAP, errb, sizeof errb) == 2);
        char *argv2[] = {(char *)test_radfuse_bin(), "dicom", "ls", "--bogus", tmp, NULL};
        CHECK(test_run(argv2, out, OUT_CAP, errb, sizeof errb) == 2);
        char *argv3[] = {(char *)test_radfuse_bin(), "dicom", "frobnicate", NULL};
        CHECK(test_run(argv3, out, OUT_CAP, errb, sizeof errb) == 2);
        CHECK(test_count_lines(errb) == 1);
    }
    return test_finish("test_dicom_bad");
}
