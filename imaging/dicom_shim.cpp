/*
 * The DCMTK shim: the only C++ in radfuse. It opens a DICOM file with DCMTK's
 * dcmdata, decompresses the pixel data with DCMTK's codecs and hands back
 * plain C data (imaging/dicom.h). Every exception is caught at the boundary.
 * JPEG 2000 (which DCMTK 3.6.7 cannot decode) goes through OpenJPEG instead:
 * DCMTK only supplies the fragments, decoded from memory per frame; OpenJPEG's
 * codec, stream and image are per call, its messages go to the caller's rf_err.
 * Files and buffers alike reach DCMTK through radfuse's own input stream
 * (imaging/dcm_stream.h, shared with the DICOMDIR shim), which guards two
 * DCMTK bugs the fuzzer found.
 *
 * Process state: DCMTK keeps its codec list in a global registry, so the JPEG
 * (IJG 8/12/16-bit), JPEG-LS (CharLS) and RLE decoders must be registered
 * once per process before any decode; its logger is also global and is set to
 * silence there (DCMTK would otherwise print warnings to stderr, and radfuse
 * reports every problem as its own one line). Both happen under one
 * std::call_once, which makes the registration thread-safe. This is the one
 * piece of process-wide mutable state radfuse permits; nothing else here
 * keeps any, and the registration is never undone (it lives as long as the
 * process, as DCMTK's registry does).
 */
#include "imaging/dicom.h"
#include "imaging/dcm_stream.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dctk.h>
#include <dcmtk/dcmdata/dcpxitem.h>
#include <dcmtk/dcmdata/dcrledrg.h>
#include <dcmtk/dcmjpeg/djdecode.h>
#include <dcmtk/dcmjpls/djdecode.h>
#include <dcmtk/oflog/oflog.h>

#include <openjpeg.h>

#include <csetjmp>
#include <cstdio>
// libjpeg-turbo (Debian's libjpeg62-turbo-dev); jpeglib.h needs FILE and size_t first
#include <jpeglib.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <iconv.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the DICOM shim assumes a little-endian host"
#endif

namespace {

std::once_flag codecs_once;

void register_codecs()
{
    OFLog::configure(OFLogger::OFF_LOG_LEVEL);
    DJDecoderRegistration::registerCodecs();     // JPEG baseline, extended, lossless
    DJLSDecoderRegistration::registerCodecs();   // JPEG-LS lossless and near-lossless
    DcmRLEDecoderRegistration::registerCodecs(); // RLE lossless
}

void copy_str(char *dst, const OFString &s)
{
    std::snprintf(dst, RF_DICOM_STR, "%s", s.c_str());
    // values are printed on one line: no control characters
    for (char *p = dst; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
}

void get_str(DcmItem *ds, const DcmTagKey &tag, char *dst)
{
    OFString s;
    dst[0] = 0;
    if (ds->findAndGetOFString(tag, s).good())
        copy_str(dst, s);
}

// ISO 2022 Japanese (ISO 2022 IR 13, 87, 159) to UTF-8: DCMTK hands these
// to iconv under names glibc does not know, so radfuse decodes the escape
// sequences itself into EUC-JP (which carries the same three character sets)
// and lets glibc's EUC-JP converter finish. Returns false on anything else.
bool iso2022jp_to_utf8(const std::string &in, std::string &out)
{
    std::string euc;
    enum { ROMAN, KATAKANA, X0208, X0212 } g0 = ROMAN;
    for (size_t i = 0; i < in.size();) {
        unsigned char c = (unsigned char)in[i];
        if (c == 0x1b) {
            std::string esc = in.substr(i + 1, 3);
            if (esc.compare(0, 2, "(B") == 0 || esc.compare(0, 2, "(J") == 0)
                g0 = ROMAN, i += 3;
            else if (esc.compare(0, 2, "(I") == 0)
                g0 = KATAKANA, i += 3;
            else if (esc.compare(0, 2, "$B") == 0 || esc.compare(0, 2, "$@") == 0)
                g0 = X0208, i += 3;
            else if (esc.compare(0, 3, "$(D") == 0)
                g0 = X0212, i += 4;
            else if (esc.compare(0, 2, ")I") == 0) // IR 13 in G1: the 8-bit bytes below
                i += 3;
            else
                return false;
            continue;
        }
        if (c >= 0xa1 && c <= 0xdf) { // JIS X 0201 katakana in G1 (ISO 2022 IR 13)
            euc += '\x8e';
            euc += (char)c;
            i++;
        } else if (c >= 0x80) {
            return false;
        } else if (g0 == ROMAN || c < 0x21 || c == 0x7f) {
            euc += (char)c;
            i++;
        } else if (g0 == KATAKANA) {
            if (c > 0x5f)
                return false;
            euc += '\x8e';
            euc += (char)(c + 0x80);
            i++;
        } else {
            if (i + 1 >= in.size() || (unsigned char)in[i + 1] < 0x21 || (unsigned char)in[i + 1] > 0x7e)
                return false;
            if (g0 == X0212)
                euc += '\x8f';
            euc += (char)(c | 0x80);
            euc += (char)((unsigned char)in[i + 1] | 0x80);
            i += 2;
        }
    }
    iconv_t cd = iconv_open("UTF-8", "EUC-JP");
    if (cd == (iconv_t)-1)
        return false;
    std::vector<char> buf(euc.size() * 3 + 4);
    char *src = &euc[0], *dst = buf.data();
    size_t left = euc.size(), room = buf.size();
    size_t r = euc.empty() ? 0 : iconv(cd, &src, &left, &dst, &room);
    iconv_close(cd);
    if (r == (size_t)-1 || left)
        return false;
    out.assign(buf.data(), (size_t)(dst - buf.data()));
    return true;
}

// How text attributes are decoded, decided once per dataset.
enum text_mode { TEXT_UTF8, TEXT_JAPANESE, TEXT_ASCII };

// Free text into a RF_DICOM_TEXT buffer: cut on a UTF-8 character boundary,
// control characters (and, unless the text is known to be UTF-8, every
// non-ASCII byte) shown as '?', trailing spaces dropped, so that values print
// on one line. Person names also lose trailing empty components ('^', '=').
void get_text(DcmItem *ds, const DcmTagKey &tag, char *dst, text_mode mode)
{
    OFString raw;
    dst[0] = 0;
    if (ds->findAndGetOFStringArray(tag, raw).bad())
        return;
    std::string s(raw.c_str(), raw.length());
    bool utf8 = mode == TEXT_UTF8;
    if (mode == TEXT_JAPANESE)
        utf8 = iso2022jp_to_utf8(std::string(s), s);
    size_t n = 0;
    const unsigned char *p = (const unsigned char *)s.c_str();
    size_t len = s.length();
    for (size_t i = 0; i < len;) {
        unsigned char c = p[i];
        size_t k = 1; // length of this character
        bool ok = true;
        if (c >= 0x80) {
            if (!utf8)
                ok = false;
            else if (c >= 0xc2 && c <= 0xdf)
                k = 2;
            else if (c >= 0xe0 && c <= 0xef)
                k = 3;
            else if (c >= 0xf0 && c <= 0xf4)
                k = 4;
            else
                ok = false;
            for (size_t j = 1; ok && j < k; j++)
                if (i + j >= len || (p[i + j] & 0xc0) != 0x80)
                    ok = false;
            if (!ok)
                k = 1;
        } else if (c < 0x20 || c == 0x7f) {
            ok = false;
        }
        if (n + k >= RF_DICOM_TEXT)
            break;
        if (ok)
            std::memcpy(dst + n, p + i, k);
        else
            dst[n] = '?';
        n += ok ? k : 1;
        i += k;
    }
    dst[n] = 0;
    bool pn = tag == DCM_PatientName;
    while (n > 0 && (dst[n - 1] == ' ' || (pn && (dst[n - 1] == '^' || dst[n - 1] == '='))))
        dst[--n] = 0;
}

// A multi-valued attribute joined by backslashes (as stored)
void get_str_array(DcmItem *ds, const DcmTagKey &tag, char *dst)
{
    OFString s;
    dst[0] = 0;
    if (ds->findAndGetOFStringArray(tag, s).good())
        copy_str(dst, s);
}

// Up to n finite decimal values of a DS/FD/FL attribute; returns how many were read
int get_doubles(DcmItem *ds, const DcmTagKey &tag, double *v, int n)
{
    int k = 0;
    for (; k < n; k++) {
        Float64 x;
        if (ds->findAndGetFloat64(tag, x, (unsigned long)k).bad() || !std::isfinite(x))
            break;
        v[k] = x;
    }
    return k;
}

// An integer attribute: US read as such; IS parsed strictly (an optional sign,
// digits, surrounding spaces). *found: 0 absent or empty, 1 valid, -1 present but invalid.
long get_int(DcmItem *ds, const DcmTagKey &tag, int *found)
{
    *found = 0;
    DcmElement *e = NULL;
    if (ds->findAndGetElement(tag, e).bad() || !e || e->getLength() == 0)
        return 0;
    if (e->getVR() == EVR_US) {
        Uint16 u;
        if (e->getUint16(u).bad())
            return *found = -1, 0;
        *found = 1;
        return u;
    }
    OFString str;
    if (e->getOFString(str, 0).bad())
        return *found = -1, 0;
    const char *p = str.c_str();
    while (*p == ' ')
        p++;
    char *end;
    errno = 0;
    long v = std::strtol(p, &end, 10);
    bool digits = end != p;
    while (*end == ' ')
        end++;
    if (!digits || *end || errno)
        return *found = -1, 0;
    *found = 1;
    return v;
}

// Where the bytes come from: a file (data == NULL; name is its path) or memory.
struct source {
    const char *name;
    const void *data;
    size_t size;
};

// A cheap first look at the first n bytes: a DICOM file has "DICM" at byte
// 128, or (without the preamble) starts with a tag of group 0002..0008 in
// either byte order.
bool looks_like_dicom(const unsigned char *b, size_t n)
{
    if (n >= 132 && std::memcmp(b + 128, "DICM", 4) == 0)
        return true;
    if (n < 8)
        return false;
    unsigned le = b[0] | (unsigned)b[1] << 8, be = (unsigned)b[0] << 8 | b[1];
    return (le >= 0x0002 && le <= 0x0008) || (be >= 0x0002 && be <= 0x0008);
}

bool file_looks_like_dicom(const char *path)
{
    FILE *f = std::fopen(path, "rb");
    if (!f)
        return true; // let DCMTK report why it cannot be opened
    unsigned char b[132];
    size_t n = std::fread(b, 1, sizeof b, f);
    std::fclose(f);
    return looks_like_dicom(b, n);
}

struct sample_reader {
    const uint8_t *data;
    int bits_allocated;
    // the i-th stored sample (before masking), as an unsigned 32-bit pattern
    uint32_t get(uint64_t i) const
    {
        switch (bits_allocated) {
        case 1: return (data[i >> 3] >> (i & 7)) & 1u;
        case 8: return data[i];
        case 16: return (uint32_t)data[2 * i] | (uint32_t)data[2 * i + 1] << 8;
        default:
            return (uint32_t)data[4 * i] | (uint32_t)data[4 * i + 1] << 8 | (uint32_t)data[4 * i + 2] << 16 |
                   (uint32_t)data[4 * i + 3] << 24;
        }
    }
};

uint8_t clamp_round(float v)
{
    v = std::floor(v + 0.5f);
    return v < 0.f ? 0 : v > 255.f ? 255 : (uint8_t)v;
}

// YBR_FULL -> RGB exactly as pydicom's convert_color_space (float32, round half up, clip)
void ybr_to_rgb(uint8_t *p, uint64_t pixels)
{
    const float cb_g = (float)(-0.114 * 1.772 / 0.587), cr_g = (float)(-0.299 * 1.402 / 0.587);
    const float cr_r = 1.402f, cb_b = 1.772f;
    for (uint64_t i = 0; i < pixels; i++, p += 3) {
        float y = p[0], cb = (float)p[1] - 128.f, cr = (float)p[2] - 128.f;
        float r = y + cb * 0.f + cr * cr_r;
        float g = y + cb * cb_g + cr * cr_g;
        float b = y + cb * cb_b + cr * 0.f;
        p[0] = clamp_round(r);
        p[1] = clamp_round(g);
        p[2] = clamp_round(b);
    }
}

// The marker structure of a JPEG / JPEG-LS stream from SOI up to the first
// frame header (SOFn) or scan (SOS): every segment length >= 2 and inside the
// fragment. DCMTK 3.6.7's DJCodecDecoder::scanJpegDataForBitDepth loops forever
// on a segment length of 0, so every frame is checked before DCMTK sees it.
bool jpeg_header_ok(const uint8_t *p, size_t n)
{
    if (n < 4 || p[0] != 0xff || p[1] != 0xd8)
        return false;
    size_t i = 2;
    for (;;) {
        if (i >= n || p[i] != 0xff)
            return false;
        while (i < n && p[i] == 0xff) // fill bytes
            i++;
        if (i >= n)
            return false;
        uint8_t m = p[i++];
        if (m == 0x01 || (m >= 0xd0 && m <= 0xd8)) // TEM, RSTn, SOI: no length
            continue;
        if (m == 0xd9 || m == 0x00) // EOI before a frame header, or a stuffed zero
            return false;
        if (i + 2 > n)
            return false;
        size_t len = (size_t)p[i] << 8 | p[i + 1];
        if (len < 2 || i + len > n)
            return false;
        bool sof = (m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc) || m == 0xf7;
        if (sof || m == 0xda)
            return true;
        i += len;
    }
}

// Every frame of a JPEG / JPEG-LS pixel sequence starts with a sound header.
bool jpeg_frames_ok(DcmPixelData *pd, E_TransferSyntax xfer, long frames)
{
    DcmPixelSequence *seq = NULL;
    if (pd->getEncapsulatedRepresentation(xfer, NULL, seq).bad() || !seq)
        return false;
    unsigned long items = seq->card();
    long starts = 0;
    for (unsigned long k = 1; k < items; k++) { // item 0 is the basic offset table
        DcmPixelItem *item = NULL;
        if (seq->getItem(item, k).bad() || !item)
            return false;
        Uint8 *b = NULL;
        Uint32 len = item->getLength();
        if (len == 0)
            continue;
        if (item->getUint8Array(b).bad() || !b)
            return false;
        if (len >= 2 && b[0] == 0xff && b[1] == 0xd8) {
            if (!jpeg_header_ok(b, len))
                return false;
            starts++;
        } else if (k == 1) {
            return false; // the first fragment must start a frame
        }
    }
    return starts >= 1 && starts <= frames;
}

// ---- JPEG 2000 (OpenJPEG): DCMTK 3.6.7 has no decoder for it ----

// opj_stream over a buffer in memory
struct mem_stream {
    const uint8_t *data;
    size_t size, pos;
};

OPJ_SIZE_T mem_read(void *buf, OPJ_SIZE_T n, void *user)
{
    mem_stream *m = (mem_stream *)user;
    if (m->pos >= m->size)
        return (OPJ_SIZE_T)-1;
    size_t left = m->size - m->pos;
    if (n > left)
        n = left;
    std::memcpy(buf, m->data + m->pos, n);
    m->pos += n;
    return n;
}

OPJ_OFF_T mem_skip(OPJ_OFF_T n, void *user)
{
    mem_stream *m = (mem_stream *)user;
    if (n < 0) {
        if ((uint64_t)(-n) > m->pos)
            return -1;
    } else if ((uint64_t)n > m->size - m->pos) {
        return -1;
    }
    m->pos = (size_t)((OPJ_OFF_T)m->pos + n);
    return n;
}

OPJ_BOOL mem_seek(OPJ_OFF_T to, void *user)
{
    mem_stream *m = (mem_stream *)user;
    if (to < 0 || (uint64_t)to > m->size)
        return OPJ_FALSE;
    m->pos = (size_t)to;
    return OPJ_TRUE;
}

// OpenJPEG's messages: the first error is kept (one line), the rest is dropped
struct opj_msgs {
    char first[160];
};

void opj_on_error(const char *msg, void *user)
{
    opj_msgs *m = (opj_msgs *)user;
    if (m->first[0] || !msg)
        return;
    std::snprintf(m->first, sizeof m->first, "%s", msg);
    for (char *p = m->first; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = *p == '\n' && !p[1] ? 0 : ' ';
}

void opj_quiet(const char *, void *) {}

// The fragments of each frame: [first, last) item indices (item 0 is the offset table).
// Basic Offset Table when present, else one fragment per frame when the counts agree,
// else all fragments for a single frame.
bool j2k_frame_items(DcmPixelSequence *seq, long frames, std::vector<unsigned long> &start, const char **why)
{
    unsigned long items = seq->card();
    if (items < 2)
        return *why = "no fragments", false;
    unsigned long nfrag = items - 1;
    start.assign((size_t)frames + 1, 0);
    DcmPixelItem *bot = NULL;
    if (seq->getItem(bot, 0).bad() || !bot)
        return *why = "no offset table item", false;
    Uint32 botlen = bot->getLength();
    if (botlen > 0) {
        Uint8 *b = NULL;
        if (botlen % 4 || botlen / 4 != (Uint32)frames || bot->getUint8Array(b).bad() || !b)
            return *why = "Basic Offset Table does not match NumberOfFrames", false;
        // each fragment's byte position (item tag) relative to the first fragment
        uint64_t pos = 0;
        unsigned long k = 1;
        for (long f = 0; f < frames; f++) {
            uint32_t off = (uint32_t)b[4 * f] | (uint32_t)b[4 * f + 1] << 8 | (uint32_t)b[4 * f + 2] << 16 |
                           (uint32_t)b[4 * f + 3] << 24;
            while (k <= nfrag && pos < off) {
                DcmPixelItem *it = NULL;
                if (seq->getItem(it, k).bad() || !it)
                    return *why = "unreadable fragment", false;
                pos += 8 + (uint64_t)it->getLength();
                k++;
            }
            if (pos != off || k > nfrag || (f > 0 && k <= start[(size_t)f - 1]))
                return *why = "Basic Offset Table does not point at fragments", false;
            start[(size_t)f] = k;
        }
        start[(size_t)frames] = items;
        return true;
    }
    if (frames == 1) {
        start[0] = 1, start[1] = items;
        return true;
    }
    if (nfrag == (unsigned long)frames) {
        for (long f = 0; f <= frames; f++)
            start[(size_t)f] = (unsigned long)f + 1;
        return true;
    }
    return *why = "fragments cannot be assigned to frames (no offset table)", false;
}

// The buffer for decoded values (never a zero-byte malloc).
uint8_t *alloc_pixels(uint64_t decoded)
{
    return (uint8_t *)std::malloc(decoded ? decoded : 1);
}

// The bits of a sample that hold its value: BitsStored of them (1..32).
uint32_t stored_mask(long bs)
{
    return bs >= 32 ? 0xffffffffu : ((1u << bs) - 1u);
}

// Frame f's compressed stream: its fragments (items start[f] .. start[f+1]-1),
// in place when there is one, else concatenated into buf. False when a
// fragment cannot be read.
bool frame_stream(DcmPixelSequence *seq, const std::vector<unsigned long> &start, long f, std::vector<uint8_t> &buf,
                  const uint8_t **data, size_t *size)
{
    unsigned long a = start[(size_t)f], b = start[(size_t)f + 1];
    *data = NULL;
    *size = 0;
    buf.clear();
    for (unsigned long k = a; k < b; k++) {
        DcmPixelItem *it = NULL;
        Uint8 *p = NULL;
        if (seq->getItem(it, k).bad() || !it)
            return false;
        Uint32 len = it->getLength();
        if (len == 0)
            continue;
        if (it->getUint8Array(p).bad() || !p)
            return false;
        if (b - a == 1)
            *data = p, *size = len;
        else
            buf.insert(buf.end(), p, p + len);
    }
    if (b - a > 1)
        *data = buf.data(), *size = buf.size();
    return true;
}

// libjpeg-turbo's errors end the frame through longjmp; its warnings (corrupt
// data it recovers from, as DCMTK's decoder also does) are dropped.
struct turbo_error {
    jpeg_error_mgr mgr;
    jmp_buf jump;
    char msg[JMSG_LENGTH_MAX];
};

void turbo_fail(j_common_ptr cinfo)
{
    turbo_error *e = (turbo_error *)cinfo->err;
    cinfo->err->format_message(cinfo, e->msg);
    longjmp(e->jump, 1);
}

void turbo_quiet(j_common_ptr, int) {}

enum { TURBO_OK = 0, TURBO_NOT_MINE = -1, TURBO_ERROR = -2 };

// One frame into rows x cols bytes at frame. TURBO_NOT_MINE when the stream is
// not an 8-bit one-component image of that size; TURBO_ERROR with libjpeg's
// message in msg. (Its own function: setjmp must not see the callers' loops.)
int turbo_frame(const uint8_t *data, size_t size, long rows, long cols, uint8_t *frame, char *msg)
{
    jpeg_decompress_struct cinfo;
    turbo_error jerr;
    cinfo.err = jpeg_std_error(&jerr.mgr);
    jerr.mgr.error_exit = turbo_fail;
    jerr.mgr.emit_message = turbo_quiet;
    jpeg_create_decompress(&cinfo);
    if (setjmp(jerr.jump)) {
        jpeg_destroy_decompress(&cinfo);
        std::snprintf(msg, JMSG_LENGTH_MAX, "%s", jerr.msg);
        return TURBO_ERROR;
    }
    jpeg_mem_src(&cinfo, data, (unsigned long)size);
    jpeg_read_header(&cinfo, TRUE);
    if (cinfo.num_components != 1 || cinfo.data_precision != 8 || (long)cinfo.image_width != cols ||
        (long)cinfo.image_height != rows) {
        jpeg_destroy_decompress(&cinfo);
        return TURBO_NOT_MINE;
    }
    cinfo.dct_method = JDCT_ISLOW;
    cinfo.out_color_space = JCS_GRAYSCALE;
    jpeg_start_decompress(&cinfo);
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = frame + (size_t)cinfo.output_scanline * (size_t)cols;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    return TURBO_OK;
}

// 8-bit grayscale JPEG baseline/extended frames through libjpeg-turbo (SIMD;
// JDCT_ISLOW gives the values DCMTK's IJG codec gives, bit for bit: see
// tests/test_dicom_jpeg.c). Returns TURBO_NOT_MINE when the first frame is
// not an 8-bit one-component stream of the image's size, or libjpeg-turbo
// cannot read it, so that DCMTK decodes the file as before (and reports its
// own reason); else TURBO_OK or an error naming the frame.
int turbo_decode(const char *path, DcmPixelSequence *seq, const std::vector<unsigned long> &start, long rows,
                 long cols, long frames, uint8_t *out, rf_err *err)
{
    std::vector<uint8_t> buf;
    char msg[JMSG_LENGTH_MAX];
    for (long f = 0; f < frames; f++) {
        const uint8_t *data = NULL;
        size_t size = 0;
        if (!frame_stream(seq, start, f, buf, &data, &size))
            return rf_err_set(err, RF_EFORMAT, "%s: JPEG frame %ld: unreadable fragment", path, f);
        int rc = data && size >= 4 ? turbo_frame(data, size, rows, cols, out + (size_t)f * (size_t)rows * (size_t)cols, msg)
                                   : TURBO_NOT_MINE;
        if (rc != TURBO_OK && f == 0)
            return TURBO_NOT_MINE;
        if (rc == TURBO_NOT_MINE)
            return rf_err_set(err, RF_EFORMAT, "%s: JPEG frame %ld is not like frame 0 (size, components or precision)",
                              path, f);
        if (rc == TURBO_ERROR)
            return rf_err_set(err, RF_EFORMAT, "%s: JPEG frame %ld: %s", path, f, msg);
    }
    return TURBO_OK;
}

// Decodes every frame into the interleaved stored-value layout; sets img's pixel fields.
int j2k_decode(const char *path, DcmPixelSequence *seq, const std::vector<unsigned long> &start, long rows,
               long cols, long frames, long spp, long bs, long pr, int out_bytes, uint64_t decoded,
               rf_dicom_image *img, rf_err *err)
{
    uint8_t *out = alloc_pixels(decoded);
    if (!out)
        return rf_err_set(err, RF_ENOMEM, "%s: cannot allocate %llu bytes for the pixels", path,
                          (unsigned long long)decoded);
    uint32_t mask = stored_mask(bs), sign = 1u << (bs - 1);
    uint64_t frame_px = (uint64_t)rows * (uint64_t)cols;
    std::vector<uint8_t> buf;
    int rc = RF_OK;
    for (long f = 0; f < frames && rc == RF_OK; f++) {
        const uint8_t *data = NULL;
        size_t size = 0;
        if (!frame_stream(seq, start, f, buf, &data, &size)) {
            rc = rf_err_set(err, RF_EFORMAT, "%s: JPEG 2000 frame %ld: unreadable fragment", path, f);
            break;
        }
        if (!data || size < 12) {
            rc = rf_err_set(err, RF_EFORMAT, "%s: JPEG 2000 frame %ld: empty or truncated codestream", path, f);
            break;
        }
        static const uint8_t jp2_sig[12] = {0, 0, 0, 0x0c, 'j', 'P', ' ', ' ', 0x0d, 0x0a, 0x87, 0x0a};
        bool jp2 = std::memcmp(data, jp2_sig, sizeof jp2_sig) == 0;
        if (!jp2 && !(data[0] == 0xff && data[1] == 0x4f && data[2] == 0xff && data[3] == 0x51)) {
            rc = rf_err_set(err, RF_EFORMAT, "%s: JPEG 2000 frame %ld: neither a J2K codestream nor a JP2 file",
                            path, f);
            break;
        }
        mem_stream ms = {data, size, 0};
        opj_msgs msgs;
        msgs.first[0] = 0;
        opj_codec_t *codec = opj_create_decompress(jp2 ? OPJ_CODEC_JP2 : OPJ_CODEC_J2K);
        opj_stream_t *stream = opj_stream_create(64 * 1024, OPJ_TRUE);
        opj_image_t *im = NULL;
        const char *what = NULL;
        if (!codec || !stream) {
            what = "cannot create the decoder";
        } else {
            opj_set_error_handler(codec, opj_on_error, &msgs);
            opj_set_warning_handler(codec, opj_quiet, NULL);
            opj_set_info_handler(codec, opj_quiet, NULL);
            opj_stream_set_user_data(stream, &ms, NULL);
            opj_stream_set_user_data_length(stream, (OPJ_UINT64)size);
            opj_stream_set_read_function(stream, mem_read);
            opj_stream_set_skip_function(stream, mem_skip);
            opj_stream_set_seek_function(stream, mem_seek);
            opj_dparameters_t par;
            opj_set_default_decoder_parameters(&par);
            if (!opj_setup_decoder(codec, &par))
                what = "decoder setup failed";
            else if (!opj_read_header(stream, codec, &im) || !im)
                what = "bad header";
        }
        // the header must agree with the attributes before anything is decoded
        char shape[200] = "";
        if (!what) {
            bool match = (long)im->numcomps == spp && im->x1 > im->x0 && im->y1 > im->y0 &&
                         (long)(im->x1 - im->x0) == cols && (long)(im->y1 - im->y0) == rows;
            for (OPJ_UINT32 c = 0; match && c < im->numcomps; c++)
                match = im->comps[c].dx == 1 && im->comps[c].dy == 1 && (long)im->comps[c].prec == bs;
            if (!match) {
                std::snprintf(shape, sizeof shape,
                              "codestream is %lux%lu x %u components of %u bits, the attributes say %ldx%ld x %ld "
                              "of %ld bits",
                              (unsigned long)(im->y1 - im->y0), (unsigned long)(im->x1 - im->x0),
                              (unsigned)im->numcomps, im->numcomps ? (unsigned)im->comps[0].prec : 0u, rows, cols,
                              spp, bs);
                what = shape;
            }
        }
        if (!what && (!opj_decode(codec, stream, im) || !opj_end_decompress(codec, stream)))
            what = "decoding failed";
        if (!what) {
            for (OPJ_UINT32 c = 0; c < im->numcomps; c++)
                if (!im->comps[c].data || (long)im->comps[c].w != cols || (long)im->comps[c].h != rows)
                    what = "decoded components do not cover the image";
        }
        if (!what) {
            uint8_t *fo = out + (uint64_t)f * frame_px * (uint64_t)spp * (uint64_t)out_bytes;
            for (uint64_t px = 0; px < frame_px; px++)
                for (long c = 0; c < spp; c++) {
                    uint32_t v = (uint32_t)im->comps[c].data[px] & mask;
                    if (pr == 1 && (v & sign))
                        v |= ~mask;
                    uint64_t i = px * (uint64_t)spp + (uint64_t)c;
                    switch (out_bytes) {
                    case 1: fo[i] = (uint8_t)v; break;
                    case 2: fo[2 * i] = (uint8_t)v; fo[2 * i + 1] = (uint8_t)(v >> 8); break;
                    default:
                        fo[4 * i] = (uint8_t)v; fo[4 * i + 1] = (uint8_t)(v >> 8);
                        fo[4 * i + 2] = (uint8_t)(v >> 16); fo[4 * i + 3] = (uint8_t)(v >> 24);
                    }
                }
        }
        if (im)
            opj_image_destroy(im);
        if (stream)
            opj_stream_destroy(stream);
        if (codec)
            opj_destroy_codec(codec);
        if (what)
            rc = rf_err_set(err, RF_EFORMAT, "%s: JPEG 2000 frame %ld: %s%s%s", path, f, what,
                            msgs.first[0] ? ": " : "", msgs.first);
    }
    if (rc) {
        std::free(out);
        return rc;
    }
    img->pixels = out;
    img->pixels_size = decoded;
    img->sample_bytes = out_bytes;
    img->out_samples = (int)spp;
    return RF_OK;
}

// One LUT (descriptor + data) from item into *lut. Returns NULL when it is
// absent or read, else why it cannot be used. The 16-bit words come from
// DCMTK in host order whatever the transfer syntax; 8-bit entries may come
// packed two per word (low byte first, as the little-endian stream has them).
const char *read_lut(DcmItem *item, const DcmTagKey &desc_tag, const DcmTagKey &data_tag, bool segmented,
                     bool signed_first, rf_dicom_lut *lut)
{
    DcmElement *d = NULL, *e = NULL;
    if (item->findAndGetElement(desc_tag, d).bad() || !d)
        return NULL;
    if (item->findAndGetElement(data_tag, e).bad() || !e)
        return "LUT Descriptor without LUT Data";
    if (d->getVM() != 3)
        return "LUT Descriptor does not have 3 values";
    long v[3];
    bool ss = d->getVR() == EVR_SS;
    for (unsigned long i = 0; i < 3; i++) {
        Uint16 u = 0;
        Sint16 si = 0;
        if (ss ? d->getSint16(si, i).bad() : d->getUint16(u, i).bad())
            return "unreadable LUT Descriptor";
        v[i] = ss ? (long)(Uint16)si : (long)u;
    }
    long entries = v[0] ? v[0] : 65536;
    long bits = v[2];
    if (bits < 8 || bits > 16)
        return "LUT Descriptor's bits per entry is not 8..16";
    lut->entries = (int)entries;
    lut->first = (ss || signed_first) ? (int32_t)(int16_t)(uint16_t)v[1] : (int32_t)v[1];
    lut->bits = (int)bits;
    lut->segmented = segmented;
    Uint16 *w = NULL;
    Uint8 *b = NULL;
    unsigned long nbytes = e->getLength();
    if (e->getVR() == EVR_OB) {
        if (e->getUint8Array(b).bad() || !b)
            return "unreadable LUT Data";
    } else if (e->getUint16Array(w).bad() || !w) {
        return "unreadable LUT Data";
    }
    unsigned long words = nbytes / 2;
    enum { WORDS, BYTES, PACKED } mode = b ? BYTES : WORDS;
    if (segmented) {
        if (!w || words == 0 || words > (1ul << 20))
            return "bad segmented LUT Data";
        lut->data_count = (int)words;
    } else {
        // 8-bit entries packed two per word: half as many words as entries
        if (w && bits == 8 && words != (unsigned long)entries &&
            (words * 2 == (unsigned long)entries || words * 2 == (unsigned long)entries + 1))
            mode = PACKED;
        unsigned long have = mode == WORDS ? words : nbytes;
        if (have < (unsigned long)entries)
            return "LUT Data shorter than its descriptor";
        lut->data_count = (int)entries;
    }
    lut->data = (uint16_t *)std::malloc((size_t)lut->data_count * sizeof(uint16_t));
    if (!lut->data)
        throw std::bad_alloc();
    for (int i = 0; i < lut->data_count; i++)
        lut->data[i] = mode == WORDS ? w[i] : mode == BYTES ? b[i] : (uint16_t)(w[i / 2] >> (8 * (i % 2)) & 0xff);
    return NULL;
}

// Everything rendering needs (imaging/render): Modality LUT, VOI, padding, palette.
int read_display(DcmDataset *ds, const char *path, long pr, rf_dicom_display *dp, rf_err *err)
{
    double v[RF_DICOM_MAX_WINDOWS];
    dp->rescale_slope = 1;
    dp->rescale_intercept = 0;
    int ns = get_doubles(ds, DCM_RescaleSlope, v, 1);
    if (ns)
        dp->rescale_slope = v[0];
    int ni = get_doubles(ds, DCM_RescaleIntercept, v, 1);
    if (ni)
        dp->rescale_intercept = v[0];
    dp->has_rescale = ns || ni;
    get_str(ds, DCM_RescaleType, dp->rescale_type);
    double c[RF_DICOM_MAX_WINDOWS], w[RF_DICOM_MAX_WINDOWS];
    int nc = get_doubles(ds, DCM_WindowCenter, c, RF_DICOM_MAX_WINDOWS);
    int nw = get_doubles(ds, DCM_WindowWidth, w, RF_DICOM_MAX_WINDOWS);
    dp->nwindows = nc < nw ? nc : nw;
    for (int i = 0; i < dp->nwindows; i++)
        dp->window_center[i] = c[i], dp->window_width[i] = w[i];
    get_str(ds, DCM_VOILUTFunction, dp->voi_lut_function);
    int found;
    long pad = get_int(ds, DCM_PixelPaddingValue, &found);
    if (found == 1) {
        dp->has_padding = 1;
        dp->padding_value = pr == 1 ? (int32_t)(int16_t)(uint16_t)pad : (int32_t)pad;
    }
    pad = get_int(ds, DCM_PixelPaddingRangeLimit, &found);
    if (found == 1) {
        dp->has_padding_limit = 1;
        dp->padding_limit = pr == 1 ? (int32_t)(int16_t)(uint16_t)pad : (int32_t)pad;
    }
    const char *why;
    DcmItem *item = NULL;
    if (ds->findAndGetSequenceItem(DCM_ModalityLUTSequence, item, 0).good() && item &&
        (why = read_lut(item, DCM_LUTDescriptor, DCM_LUTData, false, pr == 1, &dp->modality_lut)))
        return rf_err_set(err, RF_EFORMAT, "%s: ModalityLUTSequence: %s", path, why);
    item = NULL;
    if (ds->findAndGetSequenceItem(DCM_VOILUTSequence, item, 0).good() && item &&
        (why = read_lut(item, DCM_LUTDescriptor, DCM_LUTData, false, pr == 1, &dp->voi_lut)))
        return rf_err_set(err, RF_EFORMAT, "%s: VOILUTSequence: %s", path, why);
    static const DcmTagKey desc[3] = {DCM_RedPaletteColorLookupTableDescriptor,
                                      DCM_GreenPaletteColorLookupTableDescriptor,
                                      DCM_BluePaletteColorLookupTableDescriptor};
    static const DcmTagKey data[3] = {DCM_RedPaletteColorLookupTableData, DCM_GreenPaletteColorLookupTableData,
                                      DCM_BluePaletteColorLookupTableData};
    static const DcmTagKey seg[3] = {DCM_SegmentedRedPaletteColorLookupTableData,
                                     DCM_SegmentedGreenPaletteColorLookupTableData,
                                     DCM_SegmentedBluePaletteColorLookupTableData};
    static const char *const color[3] = {"red", "green", "blue"};
    for (int k = 0; k < 3; k++) {
        DcmElement *e = NULL;
        bool segmented = ds->findAndGetElement(data[k], e).bad() &&
                         ds->findAndGetElement(seg[k], e).good();
        if ((why = read_lut(ds, desc[k], segmented ? seg[k] : data[k], segmented, pr == 1, &dp->palette[k])))
            return rf_err_set(err, RF_EFORMAT, "%s: %s palette: %s", path, color[k], why);
    }
    return RF_OK;
}

int fail(rf_err *err, int code, const char *path, const char *what)
{
    return rf_err_set(err, code, "%s: %s", path, what);
}

// Stored samples already in output order and width (monochrome or
// interleaved color, 8/16/32 bits allocated, little-endian): one pass that
// masks to BitsStored and sign-extends, which the compiler vectorizes (a
// plain copy when nothing needs masking). The commonest case by far.
template <typename T>
void mask_extend(const uint8_t *raw, uint8_t *out, uint64_t n, T mask, T sign, bool is_signed)
{
    if (mask == (T)~(T)0) {
        if (out != raw) // in place: nothing to do
            std::memcpy(out, raw, n * sizeof(T));
        return;
    }
    T ext = is_signed ? (T)~mask : 0;
    for (uint64_t i = 0; i < n; i++) {
        T v;
        std::memcpy(&v, raw + i * sizeof(T), sizeof(T));
        v &= mask;
        v |= (v & sign) ? ext : 0;
        std::memcpy(out + i * sizeof(T), &v, sizeof(T));
    }
}

void stored_values_fast(const uint8_t *raw, uint8_t *out, uint64_t samples, int ba, uint32_t mask, uint32_t sign,
                        bool is_signed)
{
    switch (ba) {
    case 8: mask_extend<uint8_t>(raw, out, samples, (uint8_t)mask, (uint8_t)sign, is_signed); break;
    case 16: mask_extend<uint16_t>(raw, out, samples, (uint16_t)mask, (uint16_t)sign, is_signed); break;
    default: mask_extend<uint32_t>(raw, out, samples, mask, sign, is_signed); break;
    }
}

// Every other layout, one sample at a time: 1-bit data, YBR_FULL_422
// (upsampled), planar color (interleaved), 32-bit big-endian words held as OW.
void stored_values_generic(const uint8_t *raw, uint8_t *out, uint64_t samples, int ba, int out_bytes, uint32_t mask,
                           uint32_t sign, bool is_signed, bool ybr_422, bool planar, bool swap_halves,
                           uint64_t frame_px)
{
    sample_reader rd = {raw, ba};
    for (uint64_t i = 0; i < samples; i++) {
        // index of output sample i (interleaved) in the stored order
        uint64_t at = i;
        if (ybr_422) {
            uint64_t px = i / 3, ch = i % 3, pair = px / 2;
            at = ch == 0 ? pair * 4 + (px % 2) : pair * 4 + 1 + ch;
        } else if (planar) {
            uint64_t px = i / 3, ch = i % 3, f = px / frame_px, p = px % frame_px;
            at = f * frame_px * 3 + ch * frame_px + p;
        }
        uint32_t v = rd.get(at);
        if (swap_halves)
            v = v >> 16 | v << 16;
        v &= mask;
        if (is_signed && (v & sign))
            v |= ~mask;
        switch (out_bytes) {
        case 1: out[i] = (uint8_t)v; break;
        case 2: out[2 * i] = (uint8_t)v; out[2 * i + 1] = (uint8_t)(v >> 8); break;
        default:
            out[4 * i] = (uint8_t)v; out[4 * i + 1] = (uint8_t)(v >> 8);
            out[4 * i + 2] = (uint8_t)(v >> 16); out[4 * i + 3] = (uint8_t)(v >> 24);
        }
    }
}

int read_impl(const source &src, int flags, rf_dicom_image *img, rf_err *err)
{
    std::call_once(codecs_once, register_codecs);
    const char *path = src.name;
    uint64_t file_size;
    DcmFileFormat ff;
    OFCondition c;
    if (!src.data) {
        struct stat st;
        if (stat(path, &st) != 0)
            return rf_err_set(err, RF_EIO, "%s: cannot stat: %s", path, std::strerror(errno));
        if (!S_ISREG(st.st_mode))
            return fail(err, RF_EINVAL, path, "not a regular file");
        if (!file_looks_like_dicom(path))
            return fail(err, RF_EFORMAT, path, "not a DICOM file (no DICM prefix and no DICOM tag at the start)");
        std::shared_ptr<dcm_source> fsrc;
        int rc = dcm_open_file(path, fsrc, &file_size, err);
        if (rc)
            return rc;
        c = dcm_read(ff, std::move(fsrc), true);
    } else {
        if (!looks_like_dicom((const unsigned char *)src.data, src.size))
            return fail(err, RF_EFORMAT, path, "not DICOM data (no DICM prefix and no DICOM tag at the start)");
        file_size = src.size;
        c = dcm_read(ff, dcm_memory(src.data, src.size), true);
    }
    if (c.bad())
        return rf_err_set(err, RF_EFORMAT, "%s: not a readable DICOM file: %s", path, c.text());
    DcmDataset *ds = ff.getDataset();
    if (!ds)
        return fail(err, RF_EFORMAT, path, "no dataset");

    get_str_array(ds, DCM_SpecificCharacterSet, img->charset);
    // text to UTF-8 before anything is read (DCMTK through iconv); on failure
    // the text fields keep only their ASCII characters
    text_mode tm = TEXT_UTF8;
    if (ff.convertToUTF8().bad())
        tm = std::strstr(img->charset, "ISO 2022 IR 87") || std::strstr(img->charset, "ISO 2022 IR 159") ||
                     std::strstr(img->charset, "ISO 2022 IR 13")
                 ? TEXT_JAPANESE
                 : TEXT_ASCII;
    img->charset_ok = tm != TEXT_ASCII;
    get_text(ds, DCM_StudyDescription, img->study_description, tm);
    get_text(ds, DCM_SeriesDescription, img->series_description, tm);
    get_text(ds, DCM_PatientName, img->patient_name, tm);
    get_text(ds, DCM_PatientID, img->patient_id, tm);
    get_text(ds, DCM_AccessionNumber, img->accession_number, tm);
    get_str_array(ds, DCM_ImageType, img->image_type);
    get_str(ds, DCM_ConversionType, img->conversion_type);
    get_str(ds, DCM_ImageLaterality, img->laterality);
    if (!img->laterality[0])
        get_str(ds, DCM_Laterality, img->laterality);
    get_str(ds, DCM_BodyPartExamined, img->body_part);
    get_str_array(ds, DCM_PatientOrientation, img->patient_orientation);
    get_str(ds, DCM_PresentationIntentType, img->presentation_intent);
    get_str(ds, DCM_StudyDate, img->study_date);
    get_str(ds, DCM_StudyTime, img->study_time);
    img->has_position = get_doubles(ds, DCM_ImagePositionPatient, img->position, 3) == 3;
    img->has_orientation = get_doubles(ds, DCM_ImageOrientationPatient, img->orientation, 6) == 6;
    img->has_spacing = get_doubles(ds, DCM_PixelSpacing, img->spacing, 2) == 2 ||
                       get_doubles(ds, DCM_ImagerPixelSpacing, img->spacing, 2) == 2;
    {
        int f;
        long sn = get_int(ds, DCM_SeriesNumber, &f);
        img->has_series_number = f == 1 && sn >= INT32_MIN && sn <= INT32_MAX;
        img->series_number = img->has_series_number ? (int)sn : 0;
    }
    get_str(ds, DCM_StudyInstanceUID, img->study_uid);
    get_str(ds, DCM_SeriesInstanceUID, img->series_uid);
    get_str(ds, DCM_SOPInstanceUID, img->sop_uid);
    get_str(ds, DCM_SOPClassUID, img->sop_class_uid);
    get_str(ds, DCM_Modality, img->modality);
    get_str(ds, DCM_ViewPosition, img->view);
    get_str(ds, DCM_PhotometricInterpretation, img->photometric);
    E_TransferSyntax xfer = ds->getOriginalXfer();
    DcmXfer xf(xfer);
    copy_str(img->transfer_syntax, xf.getXferID());
    int found;
    long inum = get_int(ds, DCM_InstanceNumber, &found);
    img->has_instance_number = found == 1 && inum >= INT32_MIN && inum <= INT32_MAX;
    img->instance_number = img->has_instance_number ? (int)inum : 0;
    long rows = get_int(ds, DCM_Rows, &found);
    long cols = get_int(ds, DCM_Columns, &found);
    long frames = get_int(ds, DCM_NumberOfFrames, &found);
    if (found < 0) {
        OFString raw;
        ds->findAndGetOFString(DCM_NumberOfFrames, raw);
        char shown[RF_DICOM_STR];
        copy_str(shown, raw);
        return rf_err_set(err, RF_EFORMAT, "%s: NumberOfFrames '%s' is not an integer", path, shown);
    }
    if (!found)
        frames = 1;
    long ba = get_int(ds, DCM_BitsAllocated, &found);
    long bs = get_int(ds, DCM_BitsStored, &found);
    if (!found)
        bs = ba;
    long hb = get_int(ds, DCM_HighBit, &found);
    if (!found)
        hb = bs - 1;
    long pr = get_int(ds, DCM_PixelRepresentation, &found);
    long spp = get_int(ds, DCM_SamplesPerPixel, &found);
    if (!found)
        spp = 1;
    long pc = get_int(ds, DCM_PlanarConfiguration, &found);
    img->rows = (int)rows;
    img->columns = (int)cols;
    img->frames = (int)frames;
    img->bits_allocated = (int)ba;
    img->bits_stored = (int)bs;
    img->high_bit = (int)hb;
    img->pixel_representation = (int)pr;
    img->samples_per_pixel = (int)spp;
    img->planar_configuration = (int)pc;
    if (int rc = read_display(ds, path, pr, &img->display, err))
        return rc;

    DcmElement *pix = NULL;
    if (ds->findAndGetElement(DCM_PixelData, pix).bad() || !pix) {
        if (flags & RF_DICOM_NO_PIXELS_OK)
            return RF_OK; // a report, presentation state, ...: listed, not decoded
        return fail(err, RF_EFORMAT, path, "no pixel data (7FE0,0010)");
    }
    img->has_pixel_data = 1;
    if (rows < 1 || rows > 65535 || cols < 1 || cols > 65535)
        return rf_err_set(err, RF_EFORMAT, "%s: bad image size %ldx%ld (Rows x Columns)", path, rows, cols);
    if (frames < 1 || frames > 1000000)
        return rf_err_set(err, RF_EFORMAT, "%s: bad NumberOfFrames %ld", path, frames);
    if (ba != 1 && ba != 8 && ba != 16 && ba != 32)
        return rf_err_set(err, RF_EUNSUP, "%s: BitsAllocated %ld not supported (1, 8, 16, 32)", path, ba);
    if (bs < 1 || bs > ba)
        return rf_err_set(err, RF_EFORMAT, "%s: BitsStored %ld with BitsAllocated %ld", path, bs, ba);
    if (pr != 0 && pr != 1)
        return rf_err_set(err, RF_EFORMAT, "%s: bad PixelRepresentation %ld", path, pr);
    if (spp != 1 && spp != 3)
        return rf_err_set(err, RF_EUNSUP, "%s: SamplesPerPixel %ld not supported (1 or 3)", path, spp);
    if (spp == 3 && ba != 8 && ba != 16 && ba != 32)
        return rf_err_set(err, RF_EUNSUP, "%s: color with BitsAllocated %ld not supported", path, ba);
    if (spp == 3 && pc != 0 && pc != 1)
        return rf_err_set(err, RF_EFORMAT, "%s: bad PlanarConfiguration %ld", path, pc);

    const char *pi = img->photometric;
    bool ybr_full = std::strcmp(pi, "YBR_FULL") == 0;
    bool ybr_422 = std::strcmp(pi, "YBR_FULL_422") == 0;
    if (spp == 3 && (ybr_full || ybr_422) && ba != 8)
        return rf_err_set(err, RF_EUNSUP, "%s: %s with BitsAllocated %ld not supported", path, pi, ba);

    uint64_t pixels = (uint64_t)rows * (uint64_t)cols * (uint64_t)frames; // < 2^52
    uint64_t samples = pixels * (uint64_t)spp;
    int out_bytes = ba <= 8 ? 1 : (int)(ba / 8);
    uint64_t decoded = samples * (uint64_t)out_bytes;
    if (decoded > DICOM_MAX_DECODED_BYTES)
        return rf_err_set(err, RF_ENOMEM, "%s: %llu decoded bytes exceed the %llu-byte limit", path,
                          (unsigned long long)decoded, (unsigned long long)DICOM_MAX_DECODED_BYTES);

    if (xf.isEncapsulated()) {
        bool supported = xfer == EXS_JPEGProcess1 || xfer == EXS_JPEGProcess2_4 || xfer == EXS_JPEGProcess14 ||
                         xfer == EXS_JPEGProcess14SV1 || xfer == EXS_JPEGLSLossless ||
                         xfer == EXS_JPEGLSLossy || xfer == EXS_RLELossless ||
                         xfer == EXS_JPEG2000LosslessOnly || xfer == EXS_JPEG2000;
        if (!supported)
            return rf_err_set(err, RF_EUNSUP, "%s: transfer syntax %s (%s) not supported yet", path,
                              xf.getXferID(), xf.getXferName());
        // what DCMTK will allocate for the decoded frames, against what the file can justify
        uint64_t budget = file_size * DICOM_MAX_RATIO;
        if (budget < DICOM_MIN_BUDGET)
            budget = DICOM_MIN_BUDGET;
        if (samples * (uint64_t)(ba <= 8 ? 1 : ba / 8) > budget)
            return rf_err_set(err, RF_ENOMEM,
                              "%s: %ldx%ld x %ld frames x %ld samples is more than a %lld-byte file can hold",
                              path, rows, cols, frames, spp, (long long)file_size);
        if (xfer == EXS_JPEG2000LosslessOnly || xfer == EXS_JPEG2000) {
            DcmPixelSequence *seq = NULL;
            if (OFstatic_cast(DcmPixelData *, pix)->getEncapsulatedRepresentation(xfer, NULL, seq).bad() || !seq)
                return fail(err, RF_EFORMAT, path, "no encapsulated JPEG 2000 pixel data");
            std::vector<unsigned long> start;
            const char *why = NULL;
            if (!j2k_frame_items(seq, frames, start, &why))
                return rf_err_set(err, RF_EFORMAT, "%s: malformed JPEG 2000 pixel data: %s", path, why);
            if (!(flags & RF_DICOM_PIXELS))
                return RF_OK;
            return j2k_decode(path, seq, start, rows, cols, frames, spp, bs, pr, out_bytes, decoded, img, err);
        }
        bool jpeg = xfer != EXS_RLELossless;
        if (jpeg && !jpeg_frames_ok(OFstatic_cast(DcmPixelData *, pix), xfer, frames))
            return rf_err_set(err, RF_EFORMAT, "%s: malformed %s stream (marker structure or frame count)", path,
                              xf.getXferName());
        if (!(flags & RF_DICOM_PIXELS))
            return RF_OK;
        bool lossy8 = (xfer == EXS_JPEGProcess1 || xfer == EXS_JPEGProcess2_4) && ba == 8 && spp == 1;
        if (lossy8 && !(flags & RF_DICOM_DCMTK_JPEG)) {
            DcmPixelSequence *seq = NULL;
            std::vector<unsigned long> start;
            const char *why = NULL;
            if (OFstatic_cast(DcmPixelData *, pix)->getEncapsulatedRepresentation(xfer, NULL, seq).good() && seq &&
                j2k_frame_items(seq, frames, start, &why)) {
                uint8_t *out = alloc_pixels(decoded);
                if (!out)
                    return rf_err_set(err, RF_ENOMEM, "%s: cannot allocate %llu bytes for the pixels", path,
                                      (unsigned long long)decoded);
                int rc = turbo_decode(path, seq, start, rows, cols, frames, out, err);
                if (rc == TURBO_OK) {
                    // BitsStored < 8: masked and sign-extended in place, as every path does
                    stored_values_fast(out, out, samples, 8, stored_mask(bs), 1u << (bs - 1),
                                       pr == 1);
                    img->pixels = out;
                    img->pixels_size = decoded;
                    img->sample_bytes = 1;
                    img->out_samples = 1;
                    return RF_OK;
                }
                std::free(out);
                if (rc != TURBO_NOT_MINE)
                    return rc;
            }
        }
        c = ds->chooseRepresentation(EXS_LittleEndianExplicit, NULL);
        if (c.bad() || !ds->canWriteXfer(EXS_LittleEndianExplicit))
            return rf_err_set(err, RF_EFORMAT, "%s: cannot decode the %s pixel data: %s", path, xf.getXferName(),
                              c.bad() ? c.text() : "codec failed");
        pix = NULL;
        if (ds->findAndGetElement(DCM_PixelData, pix).bad() || !pix)
            return fail(err, RF_EFORMAT, path, "no pixel data after decoding");
        // the decoders may have changed these (JPEG: YBR -> RGB; JPEG-LS/RLE: planar configuration)
        char pi_after[RF_DICOM_STR];
        get_str(ds, DCM_PhotometricInterpretation, pi_after);
        ybr_full = std::strcmp(pi_after, "YBR_FULL") == 0;
        ybr_422 = std::strcmp(pi_after, "YBR_FULL_422") == 0;
        pc = get_int(ds, DCM_PlanarConfiguration, &found);
        if (ybr_422)
            ybr_422 = false, ybr_full = true; // decoded data is never subsampled
    } else if (!(flags & RF_DICOM_PIXELS)) {
        // native: the stored length must cover the attributes (checked again when decoding)
        uint64_t need = ba == 1 ? (samples + 7) / 8 : (ybr_422 ? pixels * 2 : samples) * (uint64_t)(ba / 8);
        uint64_t frame_bytes = need / (uint64_t)frames;
        if ((uint64_t)pix->getLength() < need || (uint64_t)pix->getLength() >= need + frame_bytes)
            return rf_err_set(err, RF_EFORMAT, "%s: pixel data has %lu bytes, the attributes need %llu", path,
                              (unsigned long)pix->getLength(), (unsigned long long)need);
        return RF_OK;
    }

    // the (now native, little-endian) stored bytes
    const uint8_t *raw = NULL;
    if (pix->getVR() == EVR_OW) {
        Uint16 *w = NULL;
        c = pix->getUint16Array(w); // host (little-endian) words: the LE byte stream
        raw = (const uint8_t *)w;
    } else {
        Uint8 *b = NULL;
        c = pix->getUint8Array(b);
        raw = b;
    }
    if (c.bad() || !raw)
        return rf_err_set(err, RF_EFORMAT, "%s: cannot read the pixel data: %s", path, c.bad() ? c.text() : "empty");
    uint64_t have = pix->getLength();
    uint64_t stored_samples = ybr_422 ? pixels * 2 : samples;
    uint64_t need = ba == 1 ? (stored_samples + 7) / 8 : stored_samples * (uint64_t)(ba / 8);
    if (ybr_422 && (cols % 2))
        return fail(err, RF_EFORMAT, path, "YBR_FULL_422 with an odd number of columns");
    // native data must cover the attributes; trailing padding shorter than a
    // frame is ignored (as pydicom does), a whole frame more means the frame
    // count or the size is wrong
    if (have < need || (!xf.isEncapsulated() && have >= need + need / (uint64_t)frames))
        return rf_err_set(err, RF_EFORMAT, "%s: pixel data has %llu bytes, the attributes need %llu", path,
                          (unsigned long long)have, (unsigned long long)need);

    // a big-endian file's 32-bit samples held as OW: DCMTK swapped 16-bit words, not 32-bit ones
    bool swap_halves = ba == 32 && pix->getVR() == EVR_OW && xfer == EXS_BigEndianExplicit;

    uint8_t *out = alloc_pixels(decoded);
    if (!out)
        return rf_err_set(err, RF_ENOMEM, "%s: cannot allocate %llu bytes for the pixels", path,
                          (unsigned long long)decoded);
    uint32_t mask = stored_mask(bs), sign = 1u << (bs - 1);
    if (!ybr_422 && !(spp == 3 && pc == 1) && !swap_halves && ba != 1)
        stored_values_fast(raw, out, samples, (int)ba, mask, sign, pr == 1);
    else
        stored_values_generic(raw, out, samples, (int)ba, out_bytes, mask, sign, pr == 1, ybr_422,
                              spp == 3 && pc == 1, swap_halves, (uint64_t)rows * (uint64_t)cols);
    if (spp == 3 && (ybr_full || ybr_422))
        ybr_to_rgb(out, pixels);
    img->pixels = out;
    img->pixels_size = decoded;
    img->sample_bytes = out_bytes;
    img->out_samples = (int)spp;
    return RF_OK;
}


int read_guarded(const source &src, int flags, rf_dicom_image *img, rf_err *err)
{
    std::memset(img, 0, sizeof *img);
    int rc;
    try {
        rc = read_impl(src, flags, img, err);
    } catch (const std::bad_alloc &) {
        rc = rf_err_set(err, RF_ENOMEM, "%s: out of memory while reading", src.name);
    } catch (const std::exception &e) {
        rc = rf_err_set(err, RF_EFORMAT, "%s: %s", src.name, e.what());
    } catch (...) {
        rc = rf_err_set(err, RF_EFORMAT, "%s: unexpected error while reading", src.name);
    }
    if (rc)
        rf_dicom_image_free(img);
    return rc;
}

} // namespace

extern "C" int dicom_read(const char *path, int flags, rf_dicom_image *img, rf_err *err)
{
    source src = {path, NULL, 0};
    return read_guarded(src, flags, img, err);
}

extern "C" int dicom_read_memory(const void *data, size_t size, const char *name, int flags, rf_dicom_image *img,
                                 rf_err *err)
{
    source src = {name ? name : "(memory)", data ? data : "", data ? size : 0};
    return read_guarded(src, flags, img, err);
}
