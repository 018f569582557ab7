/*
 * Validation helpers shared by the tests that write DICOM (test_dicom_out,
 * test_dataset_study): external tools found by name, and dicom3tools'
 * dciodvfy run on a file. A missing tool is a failure with a message that
 * says which Debian package provides it, never a skip.
 */
#ifndef RADFUSE_TESTS_DICOM_VALIDATE_H
#define RADFUSE_TESTS_DICOM_VALIDATE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

/* The full path of an executable named name on PATH or in the usual system
 * directories (Orthanc lives in /usr/sbin, often not on a user's PATH), into
 * buf; NULL when there is none. */
static const char *dv_find_tool(const char *name, char *buf, size_t cap)
{
    const char *path = getenv("PATH");
    char dirs[4096];
    snprintf(dirs, sizeof dirs, "%s:/usr/bin:/usr/sbin:/usr/local/bin:/bin:/sbin", path ? path : "");
    for (char *save = NULL, *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        snprintf(buf, cap, "%s/%s", *d ? d : ".", name);
        if (access(buf, X_OK) == 0)
            return buf;
    }
    return NULL;
}

/* Like dv_find_tool, but a missing tool fails the test with a clear message. */
static const char *dv_need_tool(const char *name, const char *package, char *buf, size_t cap)
{
    const char *p = dv_find_tool(name, buf, cap);
    CHECKF(p != NULL, "%s not found: install Debian's %s (scripts/install-deps.sh)", name, package);
    return p;
}

/* Runs dciodvfy on path: any line with "Error" fails the test; warnings are
 * printed to the test log (and counted into *warnings when not NULL). Returns
 * the number of error lines, or -1 when dciodvfy could not run. */
static int dv_dciodvfy(const char *dciodvfy, const char *path, int *warnings)
{
    static char out[1 << 16], err[1 << 16];
    char *argv[] = {(char *)dciodvfy, (char *)path, NULL};
    int rc = test_run(argv, out, sizeof out, err, sizeof err);
    CHECKF(rc >= 0 && rc < 128, "dciodvfy %s: did not run (status %d)", path, rc);
    if (rc < 0 || rc >= 128)
        return -1;
    int errors = 0;
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    for (int pass = 0; pass < 2; pass++) {
        char *save = NULL;
        for (char *line = strtok_r(pass ? err : out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
            if (strstr(line, "Error")) {
                errors++;
                CHECKF(0, "dciodvfy %s: %s", base, line);
            } else if (strstr(line, "Warning")) {
                if (warnings)
                    (*warnings)++;
                printf("dciodvfy %s: %s\n", base, line);
            }
        }
    }
    return errors;
}

#endif
