/*
 * radfuse DICOM inputs: what `radfuse dicom ls` (and anything else that takes
 * PATH... arguments) reads. Given files, directory trees, DICOMDIR files and
 * .zip archives, rf_inputs_collect lists every candidate instance once, as a
 * display name plus a file path or a zip entry, and turns what cannot be read
 * at all (a DICOMDIR's missing file, an encrypted or oversized zip entry) into
 * error items, so the caller reports one line per file and goes on.
 *
 * Rules (docs/imaging.md, "Inputs"):
 *  - a directory is walked recursively (symbolic links and other non-regular
 *    files skipped); every regular file in it is a candidate, whether or not a
 *    DICOMDIR lists it: walking finds everything;
 *  - a DICOMDIR (recognised by its Media Storage SOP Class, 1.2.840.10008.1.3.10,
 *    whatever the file is called) is an item of its own (kind DICOMDIR); the
 *    files it references are resolved relative to its directory (exact name,
 *    else one case-insensitive match; '..', '.', empty, absolute and drive
 *    components refused, symbolic links not followed) and added: named
 *    explicitly, a DICOMDIR brings exactly what it lists; met in a walk, its
 *    files are the walk's already, and only the missing ones add error items;
 *  - a zip archive (PK signature, or a name ending in .zip) is opened with
 *    libzip; each file entry is an item named ARCHIVE:entry/path, read into
 *    memory within rf_input_limits; directory and symbolic-link entries are
 *    skipped; a zip inside a zip is not opened (error item); a DICOMDIR entry
 *    (named DICOMDIR) has its references checked against the archive's names;
 *  - the same file reached twice (named twice, walked and referenced, hard
 *    links) is listed once; items are sorted by byte order of their names.
 */
#ifndef RADFUSE_DICOM_INPUT_H
#define RADFUSE_DICOM_INPUT_H

#include <stddef.h>
#include <stdint.h>

#include "radfuse/imaging.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Limits on what is taken out of a zip archive (checked before anything is
 * allocated, and again while decompressing: an entry whose data is longer or
 * shorter than its header says, or fails its CRC, is an error). */
typedef struct rf_input_limits {
    uint64_t max_entry_bytes;  /* one entry, uncompressed */
    uint64_t max_total_bytes;  /* all entries of one archive, uncompressed */
    uint64_t max_ratio;        /* uncompressed / compressed bytes of one entry... */
    uint64_t ratio_min_bytes;  /* ...checked for entries larger than this */
    uint64_t max_entries;      /* entries in one archive */
    uint64_t max_dicomdir_bytes; /* a DICOMDIR inside an archive, read at collection */
} rf_input_limits;

/* 1 GiB per entry, 8 GiB per archive, ratio 1000:1 above 1 MiB, 100000
 * entries, DICOMDIR entries up to 256 MiB. */
void rf_input_limits_default(rf_input_limits *lim);

typedef enum rf_input_kind {
    RF_INPUT_FILE = 0,      /* a file on disk (path) */
    RF_INPUT_ZIP_ENTRY = 1, /* an entry of a zip archive, read into memory by rf_inputs_load */
    RF_INPUT_DICOMDIR = 2,  /* a DICOMDIR: not an instance; records/referenced/missing say what it holds */
    RF_INPUT_ERROR = 3,     /* nothing to read: error says why */
} rf_input_kind;

typedef struct rf_input {
    rf_input_kind kind;
    char *name;       /* display name and sort key: the path, or ARCHIVE:entry/path */
    char *path;       /* FILE, DICOMDIR on disk: the file; NULL for zip entries and errors */
    char *error;      /* ERROR: one line, starting with name */
    char *dicomdir;   /* the DICOMDIR that referenced this item, or NULL */
    long records;     /* DICOMDIR: directory records */
    long referenced;  /* DICOMDIR: records with a ReferencedFileID */
    long missing;     /* DICOMDIR: referenced files not found or refused */
    /* zip entries (and DICOMDIRs inside zips): which archive and entry */
    int archive;
    uint64_t entry;
} rf_input;

typedef struct rf_inputs rf_inputs;

/*
 * Lists the items under paths (lim NULL: the defaults). Fails only when
 * memory runs out or a tree is deeper than 64 levels; everything about one
 * input (missing, unreadable, not a zip) becomes an item of kind ERROR or is
 * left to the reader (rf_inputs_read) to report.
 */
int rf_inputs_collect(const char *const *paths, int npaths, const rf_input_limits *lim, rf_inputs **out,
                      rf_err *err);
size_t rf_inputs_count(const rf_inputs *in);
const rf_input *rf_inputs_at(const rf_inputs *in, size_t i);

/*
 * A zip entry's bytes (malloc'd, *size of them; free with free()), checked
 * against the limits: encrypted entries, unsupported compression, entries
 * over the size or ratio limits or past the archive's total, data that
 * disagrees with the header (length, CRC) fail with one line naming the
 * item. Fails with RF_EINVAL for items that are not zip entries.
 */
int rf_inputs_load(rf_inputs *in, size_t i, void **data, size_t *size, rf_err *err);

/*
 * Reads item i as rf_dicom_read does (flags RF_DICOM_*): files from disk, zip
 * entries from memory (a zip inside a zip is refused here), ERROR items fail
 * with their message, DICOMDIR items with "is a DICOMDIR". Error messages
 * start with the item's name.
 */
int rf_inputs_read(rf_inputs *in, size_t i, int flags, rf_dicom_image *img, rf_err *err);

void rf_inputs_free(rf_inputs *in);

#ifdef __cplusplus
}
#endif
#endif
