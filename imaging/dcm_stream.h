/*
 * The input stream both DCMTK shims (imaging/dicom_shim.cpp, images;
 * imaging/dicomdir_shim.cpp, DICOMDIRs) read through, files and buffers
 * alike, so that what the fuzzer finds in one reader is fixed in both. It
 * guards two DCMTK 3.6.7 bugs (imaging/dcm_stream_shim.cpp says how):
 * DCMTK allocating whatever length an element declares when it reads from
 * memory or a deflated file, and DcmDirectoryRecord throwing (and leaking)
 * on a record value longer than 32 bytes. Internal to radfuse_imaging.
 */
#ifndef RADFUSE_IMAGING_DCM_STREAM_H
#define RADFUSE_IMAGING_DCM_STREAM_H

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dctk.h>

#include <cstddef>
#include <cstdint>
#include <memory>

#include "radfuse/runtime.h"

// Where DCMTK's bytes come from: a file (read by pread) or the caller's
// buffer (read in place, which must outlive the read). Opaque; shared by the
// stream and the factories DCMTK makes from it, all gone when the read ends.
struct dcm_source;

// With plain_records (dcm_read), the Directory Record Sequence (0004,1220) is
// shown to DCMTK under this tag, so its items are plain DcmItems.
const DcmTagKey DCM_PLAIN_RECORD_SEQUENCE(0x0004, 0x1221);

// Opens the regular file path; on failure sets err (one line naming path)
// and returns its code. *size is the size of the file that was opened.
int dcm_open_file(const char *path, std::shared_ptr<dcm_source> &out, uint64_t *size, rf_err *err);

// size bytes at data (not copied).
std::shared_ptr<dcm_source> dcm_memory(const void *data, size_t size);

// Reads ff (meta header and dataset, transfer syntax detected) from src.
// plain_records: show (0004,1220) as DCM_PLAIN_RECORD_SEQUENCE (both shims
// want it: the image shim never uses that sequence, the DICOMDIR shim looks
// it up under the new tag). A deflated dataset is inflated within the image
// shim's budget (imaging/dicom.h).
OFCondition dcm_read(DcmFileFormat &ff, std::shared_ptr<dcm_source> src, bool plain_records);

// Reads seq's items from size bytes at data, the value of a sequence of
// defined length that DCMTK kept as bytes (its tag unknown in implicit VR).
OFCondition dcm_read_items(DcmSequenceOfItems &seq, const void *data, size_t size, E_TransferSyntax xfer);

#endif
