/*
 * DICOMDIR reading through DCMTK (the second C++ file, beside the image shim
 * imaging/dicom_shim.cpp). A DICOMDIR is read as a plain dataset: the items of
 * DirectoryRecordSequence in file order, each one's ReferencedFileID when it
 * has one. DcmDicomDir is not used: it follows the record offsets
 * (OffsetOfTheNextDirectoryRecord, ...), which some writers get wrong or omit
 * (pydicom's DICOMDIR-nooffset, -reordered), and radfuse needs only the list
 * of files; the study structure comes from the instances' own UIDs.
 * Files and buffers (zip entries) reach DCMTK through the stream the image
 * shim uses (imaging/dcm_stream.h), which keeps DCMTK from allocating what a
 * length field declares and shows the Directory Record Sequence to DCMTK as
 * (0004,1221), so its items are read as plain items (DcmDirectoryRecord
 * throws and leaks on a record value over 32 bytes); plain items answer the
 * lookups below the same way. Every exception is caught at the boundary. DCMTK's logger is silenced once
 * per process here too (the image shim does the same; either may run first).
 */
#include "imaging/input_internal.h"
#include "imaging/dcm_stream.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dctk.h>
#include <dcmtk/oflog/oflog.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <vector>

namespace {

std::once_flag log_once;

void silence_log()
{
    OFLog::configure(OFLogger::OFF_LOG_LEVEL);
}

// A sequence of a given length, which only DCMTK's protected constructor sets.
struct sized_sequence : DcmSequenceOfItems {
    explicit sized_sequence(Uint32 len) : DcmSequenceOfItems(DcmTag(DCM_PLAIN_RECORD_SEQUENCE, EVR_SQ), len) {}
};

// In implicit VR DCMTK takes an element's VR from its dictionary, which does
// not know (0004,1221): the sequence then arrives as bytes when its length is
// defined (pydicom's DICOMDIR-implicit). Those bytes are its items, parsed
// here in the dataset's transfer syntax. Returns why it failed, or NULL (out
// left empty when there is no such element).
const char *records_from_bytes(DcmDataset *ds, std::unique_ptr<DcmSequenceOfItems> &out)
{
    DcmElement *el = NULL;
    if (ds->findAndGetElement(DCM_PLAIN_RECORD_SEQUENCE, el).bad() || !el)
        return NULL;
    Uint8 *bytes = NULL;
    Uint32 len = el->getLength();
    if (len > 0 && (el->getUint8Array(bytes).bad() || !bytes))
        return "DirectoryRecordSequence (0004,1220) cannot be read";
    std::unique_ptr<DcmSequenceOfItems> seq(new sized_sequence(len));
    OFCondition c = dcm_read_items(*seq, bytes, len, ds->getOriginalXfer());
    if (c.bad())
        return c.text();
    out = std::move(seq);
    return NULL;
}

int read_impl(const char *name, const char *path, const void *data, size_t size, dicomdir_refs *out, rf_err *err)
{
    std::call_once(log_once, silence_log);
    DcmFileFormat ff;
    std::shared_ptr<dcm_source> src;
    if (!data) {
        uint64_t file_size;
        int rc = dcm_open_file(path, src, &file_size, err);
        if (rc)
            return rc;
    } else {
        src = dcm_memory(data, size);
    }
    OFCondition c = dcm_read(ff, std::move(src), true);
    if (c.bad())
        return rf_err_set(err, RF_EFORMAT, "%s: not a readable DICOMDIR: %s", name, c.text());
    DcmDataset *ds = ff.getDataset();
    DcmSequenceOfItems *seq = NULL;
    std::unique_ptr<DcmSequenceOfItems> parsed;
    // a sequence without items keeps its own tag: only an item after it renames it
    if (ds && ds->findAndGetSequence(DCM_PLAIN_RECORD_SEQUENCE, seq).bad() &&
        ds->findAndGetSequence(DCM_DirectoryRecordSequence, seq).bad()) {
        const char *why = records_from_bytes(ds, parsed);
        if (why)
            return rf_err_set(err, RF_EFORMAT, "%s: not a readable DICOMDIR: %s", name, why);
        seq = parsed.get();
    }
    if (!seq)
        return rf_err_set(err, RF_EFORMAT, "%s: not a DICOMDIR: no DirectoryRecordSequence (0004,1220)", name);
    unsigned long n = seq->card();
    if (n > (unsigned long)DICOMDIR_MAX_RECORDS)
        return rf_err_set(err, RF_ENOMEM, "%s: %lu directory records, more than the limit of %ld", name, n,
                          DICOMDIR_MAX_RECORDS);
    std::vector<std::string> ids;
    for (unsigned long i = 0; i < n; i++) {
        DcmItem *item = seq->getItem(i);
        OFString id;
        if (item && item->findAndGetOFStringArray(DCM_ReferencedFileID, id).good() && !id.empty())
            ids.emplace_back(id.c_str(), id.length());
    }
    out->file_ids = (char **)std::calloc(ids.empty() ? 1 : ids.size(), sizeof *out->file_ids);
    if (!out->file_ids)
        return rf_err_set(err, RF_ENOMEM, "%s: out of memory", name);
    out->records = (long)n;
    for (size_t i = 0; i < ids.size(); i++) {
        out->file_ids[i] = (char *)std::malloc(ids[i].size() + 1);
        if (!out->file_ids[i])
            return rf_err_set(err, RF_ENOMEM, "%s: out of memory", name);
        // NUL bytes inside a value would cut the id short: shown as '?' instead
        for (size_t k = 0; k < ids[i].size(); k++)
            out->file_ids[i][k] = ids[i][k] ? ids[i][k] : '?';
        out->file_ids[i][ids[i].size()] = 0;
        out->count = i + 1;
    }
    return RF_OK;
}

} // namespace

extern "C" int dicomdir_read(const char *name, const char *path, const void *data, size_t size, dicomdir_refs *out,
                             rf_err *err)
{
    std::memset(out, 0, sizeof *out);
    int rc;
    try {
        rc = read_impl(name, path, data ? data : (path ? NULL : ""), size, out, err);
    } catch (const std::bad_alloc &) {
        rc = rf_err_set(err, RF_ENOMEM, "%s: out of memory while reading the DICOMDIR", name);
    } catch (const std::exception &e) {
        rc = rf_err_set(err, RF_EFORMAT, "%s: %s", name, e.what());
    } catch (...) {
        rc = rf_err_set(err, RF_EFORMAT, "%s: unexpected error while reading the DICOMDIR", name);
    }
    if (rc)
        dicomdir_refs_free(out);
    return rc;
}

extern "C" void dicomdir_refs_free(dicomdir_refs *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->count; i++)
        std::free(r->file_ids[i]);
    std::free(r->file_ids);
    std::memset(r, 0, sizeof *r);
}
