/*
 * The shared DCMTK input stream (imaging/dcm_stream.h): everything both
 * shims parse goes through dcm_stream below.
 */
#include "imaging/dcm_stream.h"

#include "imaging/dicom.h"

#include <dcmtk/dcmdata/dcistrma.h>
#include <dcmtk/dcmdata/dcistrmz.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

// Files and buffers both reach DCMTK through this stream (a file by pread, a
// buffer in place), in both shims, so that the fuzz target
// (tests/fuzz/fuzz_dicom.c, which reads memory) exercises what rf_dicom_read
// and the DICOMDIR reader do too. It guards two DCMTK 3.6.7 behaviours the
// fuzzer found:
//
// 1. Allocation by declared length. DCMTK's DcmInputBufferStream cannot
//    re-create itself at an offset (its newFactory() is NULL), nor can any
//    stream once the deflate filter is installed (so deflated files are no
//    better). Without a factory DcmElement::read loads each value at once,
//    allocating the length its header declares before reading a byte: 12
//    bytes declaring 0xFFFF3D00 allocated 4 GiB. With a factory, values over
//    maxReadLength are skipped, and a skip that runs out of data fails the
//    read ("larger than remaining bytes"), as for a plain file. So this stream
//    has a factory, and a deflated dataset is inflated eagerly (by DCMTK's own
//    zlib filter, into a buffer bounded like decoded pixels) when DCMTK asks
//    for the filter, then read from memory like the rest.
//
// 2. DcmDirectoryRecord. Items of a Directory Record Sequence (0004,1220),
//    wherever it is, are read as DcmDirectoryRecord, whose read() calls
//    DcmByteString::verify(autocorrect) on DirectoryRecordType and
//    ReferencedFileID. For a last value longer than twice the CS limit (> 32
//    bytes) verify's index arithmetic wraps and std::string::erase throws
//    std::out_of_range, which unwinds through DCMTK's reader and leaks the
//    tree read so far (the sequence is not yet inserted in its parent). With
//    plain_records, when DCMTK reads that tag the stream shows it as
//    (0004,1221): an unknown tag, read as plain items (or, in implicit VR
//    with a defined length, as bytes; the DICOMDIR shim parses those). Only a
//    (0004,1220) header followed by an item tag (either byte order, implicit
//    or explicit VR) is renamed, only in the small reads DCMTK reads tags with
//    (values, pixels included, are never looked at), and the file or buffer
//    itself is never modified.
//
// Factories share the source (and keep a file open); they and the
// DcmFileFormat die inside one call.
struct dcm_source {
    const uint8_t *mem = NULL; // the caller's bytes, or NULL for a file
    int fd = -1;               // the file, read by pread
    size_t size = 0;           // of the buffer or the file (when opened)
    std::vector<uint8_t> inflated; // the dataset after the deflate filter
    bool has_inflated = false;
    OFCondition inflate_end = EC_Normal; // how inflating ended (bad: corrupt stream)
    bool plain_records = false;          // 2. above
    dcm_source() = default;
    dcm_source(const dcm_source &) = delete;
    dcm_source &operator=(const dcm_source &) = delete;
    ~dcm_source()
    {
        if (fd >= 0)
            close(fd);
    }
    // n raw bytes at pos (pos + n <= size) into dst; false on a read error
    bool raw(size_t pos, void *dst, size_t n) const
    {
        if (mem) {
            std::memcpy(dst, mem + pos, n);
            return true;
        }
        for (size_t done = 0; done < n;) {
            ssize_t r = pread(fd, (uint8_t *)dst + done, n - done, (off_t)(pos + done));
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                return false; // an error, or the file shrank
            done += (size_t)r;
        }
        return true;
    }
};

namespace {

class dcm_producer : public DcmProducer {
  public:
    dcm_producer(std::shared_ptr<dcm_source> s, bool inflated, size_t pos)
        : src(std::move(s)), in_inflated(inflated), at(pos)
    {
        if (at > size())
            at = size();
    }
    OFBool good() const override { return status().good(); }
    // a corrupt deflate stream shows once the bytes inflated before it are read
    OFCondition status() const override
    {
        if (bad.bad())
            return bad;
        return in_inflated && at >= size() ? src->inflate_end : OFCondition(EC_Normal);
    }
    OFBool eos() override { return at >= size(); }
    offile_off_t avail() override { return good() ? (offile_off_t)(size() - at) : 0; }
    offile_off_t read(void *buf, offile_off_t n) override
    {
        n = clamp(n);
        if (n > 0 && !get(at, buf, (size_t)n)) {
            bad = EC_InvalidStream;
            return 0;
        }
        if (n > 0 && n <= 16 && src->plain_records) // tags are read 2 bytes at a time, values in one read each
            rename_dir_record_seq((uint8_t *)buf, (size_t)n);
        at += (size_t)n;
        return n;
    }
    offile_off_t skip(offile_off_t n) override
    {
        n = clamp(n);
        at += (size_t)n;
        return n;
    }
    void putback(offile_off_t n) override
    {
        if (n < 0 || (uint64_t)n > at)
            bad = EC_PutbackFailed;
        else
            at -= (size_t)n;
    }
    // switches to the inflated dataset (after inflating it)
    void to_inflated() { in_inflated = true, at = 0; }
    std::shared_ptr<dcm_source> src;
    bool in_inflated;
    size_t at;

  private:
    size_t size() const { return in_inflated ? src->inflated.size() : src->size; }
    offile_off_t clamp(offile_off_t n) const
    {
        if (!good() || n <= 0)
            return 0;
        return (uint64_t)n > size() - at ? (offile_off_t)(size() - at) : n;
    }
    // n bytes at pos: memory as is; a file through a 64 KiB read-ahead window
    // for the small reads (tags, lengths, short values), directly for the rest
    bool get(size_t pos, void *dst, size_t n)
    {
        if (in_inflated) {
            std::memcpy(dst, src->inflated.data() + pos, n);
            return true;
        }
        if (src->mem || n > window_max / 2)
            return src->raw(pos, dst, n);
        if (pos < window_at || pos + n > window_at + window.size()) {
            size_t len = std::min(window_max, src->size - pos);
            window.resize(len);
            window_at = pos;
            if (!src->raw(pos, window.data(), len)) {
                window.clear();
                return false;
            }
        }
        std::memcpy(dst, window.data() + (pos - window_at), n);
        return true;
    }
    // 2. above: the element number 0x1220 of a (0004,1220) whose header (VR and
    // 2-byte length or 4-byte length, or VR, reserved and 4-byte length) is
    // followed by an item tag, in either byte order, reads as 0x1221.
    void rename_dir_record_seq(uint8_t *buf, size_t n)
    {
        static const uint8_t le[4] = {0x04, 0x00, 0x20, 0x12}, be[4] = {0x00, 0x04, 0x12, 0x20};
        static const uint8_t item_le[4] = {0xfe, 0xff, 0x00, 0xe0}, item_be[4] = {0xff, 0xfe, 0xe0, 0x00};
        for (size_t i = 0; i < n; i++) {
            // the element number is read whole: 20 12 (little endian) or 12 20 (big)
            bool is_le = i + 1 < n && buf[i] == 0x20 && buf[i + 1] == 0x12;
            bool is_be = i >= 1 && buf[i] == 0x20 && buf[i - 1] == 0x12;
            size_t k = at + i; // where the 0x20 is
            if (!(is_le && k >= 2) && !(is_be && k >= 3))
                continue;
            size_t tag = is_le ? k - 2 : k - 3;
            uint8_t w[16];
            size_t wn = std::min<size_t>(sizeof w, size() - tag);
            if (wn < 12 || !get(tag, w, wn) || std::memcmp(w, is_le ? le : be, 4) != 0)
                continue;
            const uint8_t *item = is_le ? item_le : item_be;
            if (std::memcmp(w + 8, item, 4) == 0 || (wn >= 16 && std::memcmp(w + 12, item, 4) == 0))
                buf[i] = 0x21;
        }
    }
    static constexpr size_t window_max = 64 * 1024;
    std::vector<uint8_t> window; // file bytes [window_at, window_at + window.size())
    size_t window_at = 0;
    OFCondition bad = EC_Normal;
};

class dcm_stream : public DcmInputStream {
  public:
    dcm_stream(std::shared_ptr<dcm_source> s, bool inflated, size_t pos)
        : DcmInputStream(&prod), prod(std::move(s), inflated, 0)
    {
        skip((offile_off_t)pos); // as DCMTK's file factory does: tell() is the offset
    }
    DcmInputStreamFactory *newFactory() const override;
    OFCondition installCompressionFilter(E_StreamCompression type) override;

  private:
    dcm_producer prod;
};

class dcm_factory : public DcmInputStreamFactory {
  public:
    dcm_factory(std::shared_ptr<dcm_source> s, bool inflated, size_t pos)
        : src(std::move(s)), in_inflated(inflated), at(pos)
    {
    }
    DcmInputStream *create() const override { return new dcm_stream(src, in_inflated, at); }
    DcmInputStreamFactory *clone() const override { return new dcm_factory(*this); }
    // nothing may take this for a DcmInputFileStreamFactory and ask for its file name
    DcmInputStreamFactoryType ident() const override { return DFT_DcmInputTempFileStreamFactory; }

  private:
    std::shared_ptr<dcm_source> src;
    bool in_inflated;
    size_t at;
};

DcmInputStreamFactory *dcm_stream::newFactory() const
{
    return new dcm_factory(prod.src, prod.in_inflated, prod.at);
}

// Inflates the rest of the raw bytes with DCMTK's own filter (same zlib
// settings and error handling as a deflated file read by DCMTK), at most
// max(DICOM_MIN_BUDGET, DICOM_MAX_RATIO x the compressed size) bytes, capped
// at DICOM_MAX_DECODED_BYTES (deflate itself cannot exceed about 1032:1).
OFCondition dcm_stream::installCompressionFilter(E_StreamCompression type)
{
    if (type != ESC_zlib)
        return EC_UnsupportedEncoding;
    dcm_source &s = *prod.src;
    if (prod.in_inflated || s.has_inflated)
        return EC_DoubleCompressionFilters;
    dcm_producer rest(prod.src, false, prod.at);
    uint64_t left = s.size - prod.at, limit = left * DICOM_MAX_RATIO;
    if (limit < DICOM_MIN_BUDGET)
        limit = DICOM_MIN_BUDGET;
    if (limit > DICOM_MAX_DECODED_BYTES)
        limit = DICOM_MAX_DECODED_BYTES;
    DcmZLibInputFilter z;
    z.append(rest);
    z.skip(0); // feeds the engine, as DcmInputStream::installCompressionFilter does
    std::vector<uint8_t> &out = s.inflated;
    int idle = 0;
    while (z.good() && !z.eos() && idle < 2) {
        size_t n0 = out.size();
        if (n0 >= limit)
            return makeOFCondition(OFM_dcmdata, 1001, OF_error, "deflated dataset inflates beyond the size limit");
        size_t want = (size_t)std::min<uint64_t>(limit - n0, 1u << 20);
        out.resize(n0 + want);
        offile_off_t got = z.read(out.data() + n0, (offile_off_t)want);
        out.resize(n0 + (size_t)(got > 0 ? got : 0));
        idle = got > 0 ? 0 : idle + 1; // a truncated stream ends without eos
    }
    s.inflate_end = z.status().good() ? rest.status() : z.status();
    s.has_inflated = true;
    prod.to_inflated();
    return EC_Normal;
}

} // namespace

int dcm_open_file(const char *path, std::shared_ptr<dcm_source> &out, uint64_t *size, rf_err *err)
{
    auto src = std::make_shared<dcm_source>();
    src->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (src->fd < 0)
        return rf_err_set(err, RF_EIO, "%s: cannot open: %s", path, std::strerror(errno));
    struct stat st;
    // fstat, not the caller's stat: the size is that of the file being read
    if (fstat(src->fd, &st) != 0 || !S_ISREG(st.st_mode))
        return rf_err_set(err, RF_EIO, "%s: changed while being opened", path);
    src->size = (size_t)st.st_size;
    *size = (uint64_t)st.st_size;
    out = std::move(src);
    return RF_OK;
}

std::shared_ptr<dcm_source> dcm_memory(const void *data, size_t size)
{
    auto src = std::make_shared<dcm_source>();
    src->mem = (const uint8_t *)(data ? data : "");
    src->size = data ? size : 0;
    return src;
}

OFCondition dcm_read(DcmFileFormat &ff, std::shared_ptr<dcm_source> src, bool plain_records)
{
    src->plain_records = plain_records;
    dcm_stream in(std::move(src), false, 0);
    ff.setReadMode(ERM_autoDetect);
    ff.transferInit();
    OFCondition c = ff.read(in, EXS_Unknown, EGL_noChange, DCM_MaxReadLength);
    ff.transferEnd();
    return c;
}

OFCondition dcm_read_items(DcmSequenceOfItems &seq, const void *data, size_t size, E_TransferSyntax xfer)
{
    auto src = dcm_memory(data, size);
    src->plain_records = true; // a nested (0004,1220) would be a DcmDirectoryRecord again
    dcm_stream in(std::move(src), false, 0);
    seq.transferInit();
    OFCondition c = seq.read(in, xfer, EGL_noChange, DCM_MaxReadLength);
    seq.transferEnd();
    return c;
}
