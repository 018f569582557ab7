/* Atomic file writes: write to a temporary file beside the target, fsync,
 * rename over the target, fsync the directory. A reader sees the old file or
 * the complete new one, never a torn write. */
#ifndef RADFUSE_RUNTIME_FILEIO_H
#define RADFUSE_RUNTIME_FILEIO_H

#include <stdio.h>

#include "radfuse/runtime.h"

typedef struct rf_atomic_file {
    FILE *f;
    char path[4096];
    char tmp[4160];
} rf_atomic_file;

/* Opens a temporary file for path; write through af->f. */
int rf_atomic_open(rf_atomic_file *af, const char *path, rf_err *err);
/* Flushes, fsyncs and renames into place; removes the temporary on failure. */
int rf_atomic_commit(rf_atomic_file *af, rf_err *err);
/* Abandons the write and removes the temporary. */
void rf_atomic_abort(rf_atomic_file *af);
/* The whole of data to path, atomically. */
int rf_write_file_atomic(const char *path, const void *data, size_t n, rf_err *err);

#endif
