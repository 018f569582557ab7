/*
 * The C boundary of the DCMTK shim (imaging/dicom_shim.cpp). Everything C++
 * stays behind these functions: they catch every exception and report
 * failures as one line in rf_err.
 */
#ifndef RADFUSE_IMAGING_DICOM_H
#define RADFUSE_IMAGING_DICOM_H

#include "radfuse/imaging.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Limits checked before anything is allocated for the decoded values. */
#define DICOM_MAX_DECODED_BYTES ((uint64_t)4 << 30) /* 4 GiB in all */
#define DICOM_MAX_RATIO 2048                        /* decoded bytes per compressed byte */
#define DICOM_MIN_BUDGET ((uint64_t)64 << 20)       /* always allowed for compressed data */

/* rf_dicom_read's work: open, parse, decode (flags: RF_DICOM_*). */
int dicom_read(const char *path, int flags, rf_dicom_image *img, rf_err *err);
int dicom_read_memory(const void *data, size_t size, const char *name, int flags, rf_dicom_image *img,
                      rf_err *err);

#ifdef __cplusplus
}
#endif
#endif
