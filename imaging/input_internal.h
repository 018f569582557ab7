/*
 * What imaging/input.c, imaging/zip.c and imaging/dicomdir_shim.cpp share
 * behind include/radfuse/dicom_input.h.
 */
#ifndef RADFUSE_IMAGING_INPUT_INTERNAL_H
#define RADFUSE_IMAGING_INPUT_INTERNAL_H

#include <sys/types.h>

#include "radfuse/dicom_input.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DICOMDIR_SOP_CLASS "1.2.840.10008.1.3.10" /* Media Storage Directory Storage */
#define DICOMDIR_MAX_RECORDS 10000000L

/* ---- DICOMDIR (imaging/dicomdir_shim.cpp, DCMTK) ---- */

typedef struct dicomdir_refs {
    char **file_ids; /* each record's ReferencedFileID as stored: components joined by '\\' */
    size_t count;
    long records;    /* items of DirectoryRecordSequence */
} dicomdir_refs;

/*
 * Reads a DICOMDIR from path (data NULL) or from size bytes at data, as a
 * plain dataset: every item of DirectoryRecordSequence in file order (the
 * record offsets are not followed, so DICOMDIRs with wrong or missing offsets
 * still list their files). name stands for the source in messages. Fails when
 * the file is not DICOM or has no DirectoryRecordSequence.
 */
int dicomdir_read(const char *name, const char *path, const void *data, size_t size, dicomdir_refs *out,
                  rf_err *err);
void dicomdir_refs_free(dicomdir_refs *r);

/*
 * Splits a ReferencedFileID ("A\\B\\C") into components, refusing what could
 * leave the DICOMDIR's directory or is not a name: empty, ".", "..",
 * components with '/', ':' or control characters, more than 32 components.
 * On success *ncomp components point into buf (a copy, NUL-separated, of at
 * most bufsize bytes); on failure returns a static reason.
 */
const char *dicomdir_split_id(const char *id, char *buf, size_t bufsize, char **comp, int maxcomp, int *ncomp);

/* ---- the item list (imaging/input.c) ---- */

typedef struct input_item {
    rf_input pub;
    int has_id;   /* dev/ino known (files on disk): the same file reached twice is listed once */
    dev_t dev;
    ino_t ino;
    int pass;     /* 0: named or walked, 1: referenced by a DICOMDIR, 2: zip entries */
    size_t seq;   /* order of addition: ties keep the first */
} input_item;

typedef struct rfzip rfzip;

struct rf_inputs {
    input_item *items;
    size_t n, cap;
    rfzip **archives;
    int narchives, cap_archives;
    rf_input_limits lim;
};

/* Appends an item (strings copied; NULL allowed); returns its index or -1 (out of memory, err set). */
long inputs_add(rf_inputs *in, rf_input_kind kind, const char *name, const char *path, rf_err *err);
/* Appends an ERROR item whose message is "name: reason...". */
long inputs_add_error(rf_inputs *in, const char *name, rf_err *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* A copy of s with control characters shown as '?', for names taken from files. */
char *inputs_clean_name(const char *s);

/* ---- zip archives (imaging/zip.c, libzip) ---- */

/* Opens the archive at path; a failure is for the caller to report as an error item. */
int rfzip_open(const char *path, rfzip **out, rf_err *err);
void rfzip_close(rfzip *z);
/* Adds one item per file entry of archive a (an index into in->archives), named "name:entry". */
int rfzip_enumerate(rf_inputs *in, int a, const char *name, rf_err *err);
/* The bytes of entry it->entry of archive it->archive, within in->lim. */
int rfzip_load(rf_inputs *in, const rf_input *it, uint64_t max_bytes, void **data, size_t *size, rf_err *err);

#ifdef __cplusplus
}
#endif
#endif
