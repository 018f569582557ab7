/*
 * The inputs libFuzzer found in the DICOM shim (tests/fuzz/fuzz_dicom.c), kept
 * in tests/data/fuzz-regressions (its README says what each one did and what
 * fixed it). Each is read through rf_dicom_read_memory and through
 * rf_dicom_read from a temporary copy, with pixels and attributes only, and
 * must give a clean result: ok, or an error of one line naming the source with
 * nothing left allocated; both ways must agree. Each is also read by the
 * DICOMDIR reader (imaging/dicomdir_shim.cpp, which parses through the same
 * stream): as a file called DICOMDIR (read as one when its meta header says
 * so) and as the entry DICOMDIR of a zip archive (always read as one, from
 * memory), through rf_inputs_collect and rf_inputs_read; every item must read
 * or fail with one line naming it.
 *
 * Each file runs in a child process with a wall-clock limit (alarm), so that a
 * hang fails the test instead of hanging CI and a crash fails it instead of
 * ending it. In the sanitizer build one allocation may not exceed 1 GiB
 * (__asan_default_options below: the inputs are tiny), so an input that makes
 * DCMTK allocate what a length field declares fails here as it does under
 * libFuzzer's -malloc_limit_mb; LeakSanitizer checks each child at exit.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zip.h>

#include "radfuse/dicom_input.h"
#include "radfuse/imaging.h"
#include "tests/testutil.h"

#define FILE_SECONDS 30 /* per file, all six reads; the slowest takes milliseconds */

/* Read by AddressSanitizer at start-up (unused elsewhere); ASAN_OPTIONS adds to it. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "max_allocation_size_mb=1024";
}

static int no_allocation(const rf_dicom_image *img)
{
    const rf_dicom_display *d = &img->display;
    return !img->pixels && !d->modality_lut.data && !d->voi_lut.data && !d->palette[0].data &&
           !d->palette[1].data && !d->palette[2].data;
}

/* One read's result against the contract; returns rc and the pixels' hash ("" when none). */
static int check_result(const char *what, const char *source, int rc, rf_dicom_image *img, const rf_err *err,
                        int flags, char sha[65])
{
    sha[0] = 0;
    if (rc) {
        size_t n = strlen(source);
        CHECKF(strncmp(err->msg, source, n) == 0 && strncmp(err->msg + n, ": ", 2) == 0 && err->msg[n + 2],
               "%s: error does not name the source: '%s'", what, err->msg);
        CHECKF(!strchr(err->msg, '\n'), "%s: error is not one line: '%s'", what, err->msg);
        CHECKF(no_allocation(img), "%s: failed read left an allocation", what);
    } else if ((flags & RF_DICOM_PIXELS) && img->has_pixel_data) {
        CHECKF(img->pixels && img->pixels_size > 0, "%s: ok without pixels", what);
        rf_dicom_pixel_sha256(img, sha);
    }
    rf_dicom_image_free(img);
    return rc;
}

/* path through the input layer: every item read, each error one line naming the item. */
static void check_inputs(const char *what, const char *path)
{
    rf_inputs *in = NULL;
    rf_err err;
    memset(&err, 0, sizeof err);
    const char *paths[] = {path};
    int rc = rf_inputs_collect(paths, 1, NULL, &in, &err);
    CHECKF(rc == RF_OK, "%s: collect failed: %s", what, err.msg);
    if (rc)
        return;
    for (size_t i = 0; i < rf_inputs_count(in); i++) {
        const rf_input *it = rf_inputs_at(in, i);
        size_t n = strlen(it->name);
        if (it->kind == RF_INPUT_ERROR)
            CHECKF(strncmp(it->error, it->name, n) == 0 && !strchr(it->error, '\n'), "%s: error item '%s'", what,
                   it->error);
        rf_dicom_image img;
        memset(&err, 0, sizeof err);
        if (rf_inputs_read(in, i, RF_DICOM_PIXELS | RF_DICOM_NO_PIXELS_OK, &img, &err)) {
            CHECKF(strncmp(err.msg, it->name, n) == 0 && err.msg[n] == ':' && !strchr(err.msg, '\n'),
                   "%s: %s: error '%s'", what, it->name, err.msg);
            CHECKF(no_allocation(&img), "%s: %s: failed read left an allocation", what, it->name);
        }
        rf_dicom_image_free(&img);
        if (test_verbose())
            fprintf(stderr, "%s: %s: kind %d, %ld records%s%s\n", what, it->name, (int)it->kind, it->records,
                    it->error ? ": " : "", it->error ? it->error : "");
    }
    rf_inputs_free(in);
}

/* data as tmp/NAME.d/DICOMDIR and as the entry DICOMDIR of tmp/NAME.zip, each read through the input layer. */
static void run_dicomdir(const char *name, const char *tmp, const char *data, size_t n)
{
    char dir[4608], file[4700], zpath[4608], what[600];
    snprintf(dir, sizeof dir, "%s/%s.d", tmp, name);
    snprintf(file, sizeof file, "%s/DICOMDIR", dir);
    snprintf(zpath, sizeof zpath, "%s/%s.zip", tmp, name);
    CHECKF(mkdir(dir, 0700) == 0, "%s: mkdir failed", dir);
    test_write_file(file, data, n);
    snprintf(what, sizeof what, "%s (DICOMDIR file)", name);
    check_inputs(what, file);
    unlink(file);
    rmdir(dir);

    int zerr = 0;
    zip_t *za = zip_open(zpath, ZIP_CREATE | ZIP_TRUNCATE, &zerr);
    zip_source_t *src = za ? zip_source_buffer(za, data, n, 0) : NULL;
    int added = src && zip_file_add(za, "DICOMDIR", src, 0) >= 0;
    if (src && !added)
        zip_source_free(src);
    int closed = za && zip_close(za) == 0;
    if (za && !closed)
        zip_discard(za); /* zip_close frees the archive only when it succeeds */
    int ok = added && closed;
    CHECKF(ok, "%s: cannot write the zip", zpath);
    snprintf(what, sizeof what, "%s (DICOMDIR zip entry)", name);
    if (ok)
        check_inputs(what, zpath);
    unlink(zpath);
}

/* The child's work for one file; exit status 0 when every check passed. */
static int run_file(const char *dir, const char *name, const char *tmp)
{
    char path[4608], copy[4608], mem_name[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(copy, sizeof copy, "%s/%s", tmp, name);
    snprintf(mem_name, sizeof mem_name, "memory:%s", name);
    size_t n;
    char *data = test_read_file(path, &n);
    CHECKF(data != NULL, "%s: cannot read", path);
    if (!data)
        return 1;
    test_write_file(copy, data, n);
    static const int flag_sets[2] = {RF_DICOM_PIXELS | RF_DICOM_NO_PIXELS_OK, RF_DICOM_ATTRS};
    for (int k = 0; k < 2; k++) {
        int flags = flag_sets[k];
        char what[600], sha_m[65], sha_f[65];
        rf_dicom_image img;
        rf_err err_m, err_f;
        memset(&err_m, 0, sizeof err_m);
        memset(&err_f, 0, sizeof err_f);
        snprintf(what, sizeof what, "%s (memory, flags %d)", name, flags);
        int rc_m = rf_dicom_read_memory(data, n, mem_name, flags, &img, &err_m);
        check_result(what, mem_name, rc_m, &img, &err_m, flags, sha_m);
        snprintf(what, sizeof what, "%s (file, flags %d)", name, flags);
        int rc_f = rf_dicom_read(copy, flags, &img, &err_f);
        check_result(what, copy, rc_f, &img, &err_f, flags, sha_f);
        CHECKF(rc_m == rc_f && strcmp(sha_m, sha_f) == 0, "%s (flags %d): memory gives %d '%s', file %d '%s'", name,
               flags, rc_m, rc_m ? err_m.msg : sha_m, rc_f, rc_f ? err_f.msg : sha_f);
        if (test_verbose())
            fprintf(stderr, "%s (flags %d): %s\n", name, flags, rc_m ? err_m.msg : "ok");
    }
    unlink(copy);
    run_dicomdir(name, tmp, data, n);
    free(data);
    return test_failures ? 1 : 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(void)
{
    const char *src = getenv("RADFUSE_SOURCE");
    char dir[4096], tmpbuf[64];
    snprintf(dir, sizeof dir, "%s/tests/data/fuzz-regressions", src && *src ? src : ".");
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "FATAL: %s not found (run through ctest, which sets RADFUSE_SOURCE)\n", dir);
        return 1;
    }
    char *names[256];
    size_t count = 0;
    for (struct dirent *e; (e = readdir(d)) && count < 256;) {
        size_t len = strlen(e->d_name);
        if (len > 4 && strcmp(e->d_name + len - 4, ".dcm") == 0)
            names[count++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, count, sizeof names[0], by_name);
    CHECKF(count >= 3, "%zu regression inputs in %s", count, dir);
    const char *tmp = test_tmpdir(tmpbuf, sizeof tmpbuf);

    for (size_t i = 0; i < count; i++) {
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        if (pid < 0) {
            CHECKF(0, "fork failed");
            break;
        }
        if (pid == 0) {
            alarm(FILE_SECONDS); /* SIGALRM ends a hung child */
            exit(run_file(dir, names[i], tmp)); /* exit, not _exit: LeakSanitizer runs at exit */
        }
        int status = 0;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
        if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
            CHECKF(0, "%s: still running after %d s (a hang)", names[i], FILE_SECONDS);
        else if (WIFSIGNALED(status))
            CHECKF(0, "%s: killed by signal %d (a crash)", names[i], WTERMSIG(status));
        else
            CHECKF(WEXITSTATUS(status) == 0, "%s: exit status %d (failed checks, or a sanitizer report)", names[i],
                   WEXITSTATUS(status));
        free(names[i]);
    }
    rmdir(tmp);
    printf("%zu fuzz regression inputs, each through memory and file, with and without pixels, and as a DICOMDIR "
           "file and zip entry\n",
           count);
    return test_finish("test_dicom_fuzz_regressions");
}
