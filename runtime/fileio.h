/*
 * Whole-file reads with a size cap, and atomic file writes.
 *
 * Atomic file writes: bytes go to "<path>.tmp.<pid>" beside the target
 * (created exclusively), which is fsynced and renamed over the target, and
 * then the directory is fsynced. A reader sees the old file or the complete
 * new one, never a torn write; on failure the target is untouched and the
 * temporary is removed.
 */
#ifndef RADFUSE_RUNTIME_FILEIO_H
#define RADFUSE_RUNTIME_FILEIO_H

#include <stddef.h>

#include "radfuse/runtime.h"

typedef struct rf_atomic_file {
    int fd;
    char *path;
    char *tmp;
} rf_atomic_file;

/* Creates the temporary file for path. */
int rf_atomic_open(rf_atomic_file *af, const char *path, rf_err *err);
/* Appends n bytes; on failure the write is abandoned (no commit needed). */
int rf_atomic_write(rf_atomic_file *af, const void *data, size_t n, rf_err *err);
/* fsyncs, renames into place and syncs the directory; always releases af. */
int rf_atomic_commit(rf_atomic_file *af, rf_err *err);
/* Abandons the write and removes the temporary; safe to call twice. */
void rf_atomic_abort(rf_atomic_file *af);
/* The whole of data to path, atomically. */
int rf_write_file_atomic(const char *path, const void *data, size_t n, rf_err *err);

/* mkdir -p: dir and every missing parent, created with mode (less the
 * umask); fails naming the part that cannot be made, or dir when it is not
 * a directory. */
int rf_mkdirs(const char *dir, unsigned mode, rf_err *err);

/*
 * Reads a whole regular file of at most max_bytes into a malloc'd buffer with
 * a NUL after the data (*size excludes it). Fails, naming the file, when it
 * cannot be opened, is not a regular file, is larger than max_bytes (checked
 * before anything is allocated: "larger than N bytes"), or cannot be read.
 */
int rf_read_file(const char *path, size_t max_bytes, char **data, size_t *size, rf_err *err);

/* A JSON file (at most max_bytes) whose top level must be an object: *root
 * is the parsed cJSON tree (free with cJSON_Delete). */
struct cJSON;
int rf_json_read_object(const char *path, size_t max_bytes, struct cJSON **root, rf_err *err);

#endif
