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

#define RF_DICOM_STR 80   /* UIDs are at most 64 characters; longer values are truncated */
#define RF_DICOM_TEXT 256 /* free text (descriptions, names) in UTF-8; truncated on a character boundary */
#define RF_DICOM_MAX_WINDOWS 8

/*
 * A lookup table as DICOM describes it (LUT Descriptor: number of entries,
 * first mapped value, bits per entry; then LUT Data). data is NULL when the
 * table is absent. entries is 1..65536 (a descriptor value of 0 means 65536).
 * first is signed when the descriptor's VR is SS or the image's
 * PixelRepresentation is 1. Entries are widened to 16 bits (8-bit entries
 * packed two per word are unpacked). For a segmented palette (segmented = 1)
 * data holds the segment words as stored (data_count of them), to be expanded
 * by the renderer; otherwise data_count == entries.
 */
typedef struct rf_dicom_lut {
    int entries;
    int32_t first;
    int bits;
    int segmented;
    int data_count;
    uint16_t *data; /* malloc'd */
} rf_dicom_lut;

/*
 * What turns stored values into displayed ones (PS3.3 C.11): Modality LUT
 * (rescale or a LUT), VOI (windows or a LUT), padding, and the palette of
 * PALETTE COLOR images. Read, never applied here: the renderer does that.
 */
typedef struct rf_dicom_display {
    int has_rescale;
    double rescale_slope, rescale_intercept; /* 1 and 0 when absent */
    char rescale_type[RF_DICOM_STR];
    rf_dicom_lut modality_lut; /* first item of ModalityLUTSequence */
    int nwindows;              /* WindowCenter/WindowWidth pairs read (widths not checked here) */
    double window_center[RF_DICOM_MAX_WINDOWS], window_width[RF_DICOM_MAX_WINDOWS];
    char voi_lut_function[RF_DICOM_STR]; /* LINEAR (default), LINEAR_EXACT, SIGMOID */
    rf_dicom_lut voi_lut;                /* first item of VOILUTSequence */
    int has_padding, has_padding_limit;
    int32_t padding_value, padding_limit; /* in stored values, signed per PixelRepresentation */
    rf_dicom_lut palette[3];              /* red, green, blue (PALETTE COLOR) */
} rf_dicom_display;

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
    char image_type[RF_DICOM_STR];          /* values joined by '\\', e.g. ORIGINAL\\PRIMARY */
    char conversion_type[RF_DICOM_STR];     /* secondary capture: WSD, DV, ... */
    char laterality[RF_DICOM_STR];          /* ImageLaterality, else Laterality */
    char body_part[RF_DICOM_STR];
    char patient_orientation[RF_DICOM_STR]; /* e.g. P\\F for a PA chest */
    char presentation_intent[RF_DICOM_STR]; /* FOR PRESENTATION / FOR PROCESSING (DX) */
    char study_date[RF_DICOM_STR], study_time[RF_DICOM_STR];
    char charset[RF_DICOM_STR];             /* SpecificCharacterSet as stored */
    /* UTF-8 (converted from SpecificCharacterSet by DCMTK; when conversion
     * fails, non-ASCII bytes become '?'). Patient fields are PHI: radfuse
     * never prints or logs them unless asked to. */
    char study_description[RF_DICOM_TEXT], series_description[RF_DICOM_TEXT];
    char patient_name[RF_DICOM_TEXT], patient_id[RF_DICOM_TEXT], accession_number[RF_DICOM_TEXT];
    int charset_ok; /* 1: text is UTF-8 (converted, or ASCII); 0: conversion failed */
    int instance_number, has_instance_number;
    int series_number, has_series_number;
    int has_position, has_orientation, has_spacing;
    double position[3];    /* ImagePositionPatient (mm) */
    double orientation[6]; /* ImageOrientationPatient: row, then column direction cosines */
    double spacing[2];     /* PixelSpacing, else ImagerPixelSpacing (mm): between rows, between columns */
    rf_dicom_display display;
    int rows, columns, frames;
    int bits_allocated, bits_stored, high_bit, pixel_representation;
    int samples_per_pixel, planar_configuration;
    int has_pixel_data; /* 0 only with RF_DICOM_NO_PIXELS_OK; then the image fields are not checked */
    int sample_bytes;   /* bytes per decoded sample: 1, 2 or 4 */
    int out_samples;    /* samples per pixel of the decoded values (1 or 3) */
    void *pixels;       /* malloc'd; NULL unless pixels were asked for */
    size_t pixels_size; /* rows * columns * frames * out_samples * sample_bytes */
} rf_dicom_image;

enum {
    RF_DICOM_ATTRS = 0,  /* attributes only: pixel data is checked but not decoded */
    RF_DICOM_PIXELS = 1, /* also decode every frame into pixels */
    RF_DICOM_NO_PIXELS_OK = 2, /* an instance without Pixel Data (SR, PR, KO...) reads with has_pixel_data 0 */
    RF_DICOM_DCMTK_JPEG = 4,   /* 8-bit grayscale JPEG through DCMTK's own codec, not libjpeg-turbo (same values) */
};

/*
 * Reads path (with or without preamble and meta header, any transfer syntax
 * the registered DCMTK codecs decode: native, deflate, JPEG baseline/extended/
 * lossless, JPEG-LS, RLE). Fails with one line naming path when the file is
 * not DICOM, is truncated, has no pixel data, uses an unsupported transfer
 * syntax (JPEG 2000 Part 2, HTJ2K), or its pixel data is shorter than its
 * attributes say. On failure *img holds no allocation; the attributes read
 * before the problem was found (UIDs, modality, text) stay filled.
 */
int rf_dicom_read(const char *path, int flags, rf_dicom_image *img, rf_err *err);

/*
 * As rf_dicom_read, from size bytes in memory (a zip entry, a network
 * buffer, a fuzzer's input). name stands for the source in error messages.
 * data is not kept after the call.
 */
int rf_dicom_read_memory(const void *data, size_t size, const char *name, int flags, rf_dicom_image *img,
                         rf_err *err);

/* Frees what rf_dicom_read allocated (pixels and LUTs); img may be reused after. */
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
