/*
 * radfuse imaging: DICOM instances read through DCMTK (imaging/dicom_shim.cpp,
 * the only C++ in the tree) into plain C structs, the decoded stored pixel
 * values of every frame, their SHA-256, and file discovery for `radfuse dicom`.
 *
 * Conventions as in runtime.h: fallible functions return 0 or an RF_E* code
 * and fill rf_err with one line naming the file and the problem; nothing calls
 * exit(). The one piece of process state is DCMTK's codec registration, done
 * once per process (see imaging/dicom_shim.cpp).
 */
#ifndef RADFUSE_IMAGING_H
#define RADFUSE_IMAGING_H

#include <stddef.h>
#include <stdint.h>

#include "radfuse/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RF_DICOM_STR 80 /* UIDs are at most 64 characters; longer values are truncated */

/*
 * One DICOM instance. Attribute strings are empty when absent; integers are 0
 * when absent (has_instance_number tells InstanceNumber 0 from absent).
 * photometric is the stored PhotometricInterpretation (before decoding).
 *
 * pixels (when asked for): every frame's stored values after decompression,
 * frame after frame, row-major, color samples interleaved (RGB: YBR_FULL and
 * YBR_FULL_422 are converted to RGB as pydicom does, planar configuration 1
 * is interleaved). Each value is masked to BitsStored and sign-extended when
 * PixelRepresentation is 1, and stored little-endian in sample_bytes bytes:
 * 1 for BitsAllocated 1 (unpacked, 0/1) and 8, 2 for 16, 4 for 32.
 */
typedef struct rf_dicom_image {
    char study_uid[RF_DICOM_STR];
    char series_uid[RF_DICOM_STR];
    char sop_uid[RF_DICOM_STR];
    char sop_class_uid[RF_DICOM_STR];
    char modality[RF_DICOM_STR];
    char view[RF_DICOM_STR];
    char transfer_syntax[RF_DICOM_STR];
    char photometric[RF_DICOM_STR];
    int instance_number, has_instance_number;
    int rows, columns, frames;
    int bits_allocated, bits_stored, high_bit, pixel_representation;
    int samples_per_pixel, planar_configuration;
    int sample_bytes;   /* bytes per decoded sample: 1, 2 or 4 */
    int out_samples;    /* samples per pixel of the decoded values (1 or 3) */
    void *pixels;       /* malloc'd; NULL unless pixels were asked for */
    size_t pixels_size; /* rows * columns * frames * out_samples * sample_bytes */
} rf_dicom_image;

enum {
    RF_DICOM_ATTRS = 0,  /* attributes only: pixel data is checked but not decoded */
    RF_DICOM_PIXELS = 1, /* also decode every frame into pixels */
};

/*
 * Reads path (with or without preamble and meta header, any transfer syntax
 * the registered DCMTK codecs decode: native, deflate, JPEG baseline/extended/
 * lossless, JPEG-LS, RLE). Fails with one line naming path when the file is
 * not DICOM, is truncated, has no pixel data, uses an unsupported transfer
 * syntax (JPEG 2000 for now), or its pixel data is shorter than its
 * attributes say. On failure *img holds no allocation.
 */
int rf_dicom_read(const char *path, int flags, rf_dicom_image *img, rf_err *err);
void rf_dicom_image_free(rf_dicom_image *img);

/* SHA-256 (lowercase hex) of img->pixels: the decoded values as defined above. */
void rf_dicom_pixel_sha256(const rf_dicom_image *img, char out[65]);

/*
 * The regular files under each path (a file, or a directory tree walked
 * recursively; symbolic links and other non-regular files are skipped),
 * sorted by byte order of the path and without duplicates. A path that
 * cannot be read is returned as is (so the caller reports it per file).
 * *out is a malloc'd array of malloc'd strings; free with rf_paths_free.
 */
int rf_collect_files(const char *const *paths, int npaths, char ***out, size_t *count, rf_err *err);
void rf_paths_free(char **paths, size_t count);

#ifdef __cplusplus
}
#endif
#endif
