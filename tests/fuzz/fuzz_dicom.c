/*
 * libFuzzer target for the DICOM shim's entry point (imaging/dicom_shim.cpp
 * through include/radfuse/imaging.h): every input is read from memory with
 * pixels decoded and files without Pixel Data accepted, then hashed and freed,
 * as `radfuse dicom ls` does with a file. Built only in the RADFUSE_FUZZ
 * configuration (clang, -fsanitize=fuzzer,address,undefined); `make test-fuzz`
 * runs it. A failed read must leave no allocation and one line in err.
 * The same bytes then go to the DICOMDIR reader (imaging/dicomdir_shim.cpp,
 * as for a zip entry called DICOMDIR): it parses through the same stream but
 * walks the Directory Record Sequence the image reader ignores.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "imaging/input_internal.h"
#include "radfuse/imaging.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rf_dicom_image img;
    rf_err err;
    memset(&err, 0, sizeof err);
    int rc = rf_dicom_read_memory(data, size, "fuzz", RF_DICOM_PIXELS | RF_DICOM_NO_PIXELS_OK, &img, &err);
    char hex[65];
    rf_dicom_pixel_sha256(&img, hex);
    if (rc) {
        /* the contract: nothing left allocated, one non-empty line naming the source */
        if (img.pixels || img.display.modality_lut.data || img.display.voi_lut.data ||
            img.display.palette[0].data || img.display.palette[1].data || img.display.palette[2].data)
            abort();
        if (strncmp(err.msg, "fuzz: ", 6) != 0 || strchr(err.msg, '\n'))
            abort();
    } else if (img.has_pixel_data && (!img.pixels || img.pixels_size == 0)) {
        abort();
    }
    rf_dicom_image_free(&img);

    dicomdir_refs refs;
    memset(&err, 0, sizeof err);
    if (dicomdir_read("fuzz", NULL, data, size, &refs, &err)) {
        if (refs.file_ids || refs.count || strncmp(err.msg, "fuzz: ", 6) != 0 || strchr(err.msg, '\n'))
            abort();
    } else if (refs.count > (size_t)refs.records) {
        abort();
    }
    dicomdir_refs_free(&refs);
    return 0;
}
