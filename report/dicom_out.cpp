/*
 * The DICOM writer of a study read (rf_result_write_dicom, radfuse/result.h):
 * under OUTDIR/dicom/, one Secondary Capture per saliency map (the displayed
 * image with the map blended on, RGB 8-bit) in one new series, and one
 * Comprehensive SR of the findings in a second new series, both in the
 * source study, so that a PACS files them beside the images they explain.
 *
 * Patient and study modules: the SC and SR IODs require them (a PACS could not
 * file the objects otherwise), so they are copied from the source image file,
 * read again with DCMTK from rf_result_image.source (else .path) and converted to UTF-8.
 * These objects are therefore the one output of radfuse that carries patient
 * identifiers whatever include_phi says (docs/result-schema.md).
 *
 * UIDs are the 2.25 UUID form (OFUUID), so nothing depends on a registered
 * root. Files are written to a temporary beside the target, fsynced and
 * renamed. Every DCMTK exception stays in here.
 *
 * Process state: DCMTK's logger is global; it is silenced once per process,
 * as the image shim does (imaging/dicom_shim.cpp), because every problem is
 * reported as one line in rf_err.
 */
#include "radfuse/result.h"

#include "imaging/dcm_stream.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dctk.h>
#include <dcmtk/dcmsr/dsrdoc.h>
#include <dcmtk/oflog/oflog.h>
#include <dcmtk/ofstd/ofuuid.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <vector>

namespace {

std::once_flag log_once;

// Series numbers of the two new series: high, so that they sort after the
// acquisition series in a viewer's series list.
const char *const SC_SERIES_NUMBER = "9901";
const char *const SR_SERIES_NUMBER = "9902";
const char *const SC_SERIES_DESCRIPTION = "radfuse saliency";
const char *const SR_SERIES_DESCRIPTION = "radfuse findings";
const char *const PRIVATE_SCHEME = "99RADFUSE";

// The overlay: the map drawn with viridis where it is at least FLOOR, with an
// opacity of ALPHA * value (rf_overlay_opts' defaults).
const float ALPHA = 0.5f, FLOOR = 0.2f;

// viridis (matplotlib) at 0, 1/8, ..., 1; linear in between.
const unsigned char VIRIDIS[9][3] = {{68, 1, 84},    {72, 36, 117},  {59, 82, 139},
                                     {44, 114, 142}, {33, 145, 140}, {34, 168, 132},
                                     {94, 201, 98},  {173, 220, 48}, {253, 231, 37}};

struct fail_exc {
    int code;
    std::string msg;
};

[[noreturn]] void fail(int code, const std::string &msg) { throw fail_exc{code, msg}; }

void check(const OFCondition &c, const std::string &what)
{
    if (c.bad())
        fail(RF_EIO, what + ": " + c.text());
}

std::string new_uid()
{
    OFUUID u;
    OFString s;
    u.toString(s, OFUUID::ER_RepresentationOID);
    return s.c_str();
}

std::string fmt_ds(double v)
{
    char b[32];
    std::snprintf(b, sizeof b, "%.6g", v); // at most 12 characters: a valid DS
    return b;
}

std::string now_da_tm(bool date)
{
    time_t t = time(nullptr);
    struct tm tmv;
    localtime_r(&t, &tmv);
    char b[16];
    strftime(b, sizeof b, date ? "%Y%m%d" : "%H%M%S", &tmv);
    return b;
}

// A name safe in a file name: [A-Za-z0-9_-], others become '_'.
std::string file_safe(const char *s)
{
    std::string o;
    for (const char *p = s ? s : ""; *p && o.size() < 64; p++)
        o += (std::isalnum((unsigned char)*p) || *p == '-' || *p == '_') ? *p : '_';
    return o.empty() ? std::string("finding") : o;
}

char *xstrdup(const std::string &s)
{
    char *p = (char *)std::malloc(s.size() + 1);
    if (!p)
        throw std::bad_alloc();
    std::memcpy(p, s.c_str(), s.size() + 1);
    return p;
}

// Writes ff to path: a temporary beside it, fsynced, renamed, directory fsynced.
void save_atomic(DcmFileFormat &ff, const std::string &dir, const std::string &path)
{
    std::string tmp = path + ".tmp." + std::to_string((long)getpid());
    OFCondition c = ff.saveFile(tmp.c_str(), EXS_LittleEndianExplicit, EET_ExplicitLength, EGL_recalcGL);
    if (c.bad()) {
        unlink(tmp.c_str());
        fail(RF_EIO, path + ": cannot write: " + c.text());
    }
    int fd = open(tmp.c_str(), O_RDONLY | O_CLOEXEC);
    bool ok = fd >= 0 && fsync(fd) == 0;
    int e = errno;
    if (fd >= 0)
        close(fd);
    if (!ok || rename(tmp.c_str(), path.c_str()) != 0) {
        e = ok ? errno : e;
        unlink(tmp.c_str());
        fail(RF_EIO, path + ": cannot write: " + std::strerror(e));
    }
    int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
}

// The source image file, read again for its patient and study modules
// (through radfuse's own input stream, which bounds what DCMTK allocates).
struct source_file {
    std::unique_ptr<DcmFileFormat> ff;
    bool utf8 = false; // its text is UTF-8 now (converted, or plain ASCII)
};

std::string base_name(const char *path)
{
    const char *s = std::strrchr(path, '/');
    return s ? s + 1 : path;
}

source_file load_source(const rf_result_image &im, size_t index)
{
    // never the path itself in a message: file names may hold PHI
    std::string what = "image " + std::to_string(index) + " (" + base_name(im.path) + ")";
    source_file s;
    std::shared_ptr<dcm_source> src;
    uint64_t size = 0;
    rf_err e;
    if (im.source_data) {
        src = dcm_memory(im.source_data, im.source_size);
        size = im.source_size;
    } else if (dcm_open_file(im.source ? im.source : im.path, src, &size, &e)) {
        fail(RF_EIO, what + ": cannot open the source image again to copy its patient and study modules");
    }
    s.ff.reset(new DcmFileFormat());
    check(dcm_read(*s.ff, std::move(src), false), what + ": cannot read the source image again");
    DcmDataset *ds = s.ff->getDataset();
    s.utf8 = ds->convertToUTF8().good();
    return s;
}

// Patient, Patient Study and General Study attributes copied from the
// source; type 2 ones are written empty when the source lacks them.
struct copied_tag {
    DcmTagKey tag;
    bool type2;
};
const copied_tag COPIED[] = {
    {DCM_PatientName, true},        {DCM_PatientID, true},          {DCM_IssuerOfPatientID, false},
    {DCM_PatientBirthDate, true},   {DCM_PatientSex, true},         {DCM_PatientAge, false},
    {DCM_PatientSize, false},       {DCM_PatientWeight, false},     {DCM_StudyInstanceUID, true},
    {DCM_StudyDate, true},          {DCM_StudyTime, true},          {DCM_ReferringPhysicianName, true},
    {DCM_StudyID, true},            {DCM_AccessionNumber, true},    {DCM_StudyDescription, false},
};

void copy_patient_study(const source_file &s, DcmItem *dst)
{
    DcmDataset *src = s.ff->getDataset();
    for (const copied_tag &c : COPIED) {
        DcmElement *e = nullptr;
        if (src->findAndGetElement(c.tag, e).good() && e) {
            DcmElement *copy = OFstatic_cast(DcmElement *, e->clone());
            if (!s.utf8) {
                // the source's character set could not be converted: keep
                // ASCII only, so the copy is valid under ISO_IR 192
                char *v = nullptr;
                if (copy->getString(v).good() && v)
                    for (char *p = v; *p; p++)
                        if ((unsigned char)*p >= 0x80)
                            *p = '?';
            }
            check(dst->insert(copy, true), "cannot copy an attribute of the source study");
        } else if (c.type2) {
            check(dst->insertEmptyElement(c.tag, true), "cannot write an empty attribute");
        }
    }
}

void put(DcmItem *ds, const DcmTagKey &tag, const std::string &v)
{
    check(ds->putAndInsertString(tag, v.c_str()), std::string("cannot set ") + DcmTag(tag).getTagName());
}

void blend(const rf_result_image &im, const rf_result_map &m, std::vector<Uint8> &rgb)
{
    size_t n = (size_t)im.rows * (size_t)im.cols;
    rgb.resize(n * 3);
    for (size_t i = 0; i < n; i++) {
        float g = im.display[i], v = m.values[i];
        if (!(v >= 0))
            v = 0; // NaN too
        if (v > 1)
            v = 1;
        float out[3] = {g, g, g};
        if (v >= FLOOR) {
            float x = v * 8, a = ALPHA * v;
            int k = (int)x;
            if (k > 7)
                k = 7;
            float t = x - (float)k;
            for (int c = 0; c < 3; c++) {
                float col = VIRIDIS[k][c] + t * (float)(VIRIDIS[k + 1][c] - VIRIDIS[k][c]);
                out[c] = g * (1 - a) + col * a;
            }
        }
        for (int c = 0; c < 3; c++)
            rgb[i * 3 + c] = (Uint8)std::lround(out[c]);
    }
}

struct written_sc {
    std::string sop_uid;
    size_t image;
    size_t finding;
};

DSRCodedEntryValue code(const char *value, const char *scheme, const char *meaning)
{
    return DSRCodedEntryValue(value, scheme, meaning);
}

// The finding as a coded entry: its external code when the model gave one
// (FHIR-style system URIs mapped to DICOM coding scheme designators), else
// the model's own code under the private scheme.
DSRCodedEntryValue finding_code(const rf_result_finding &f)
{
    const char *meaning = f.display && *f.display ? f.display : f.code;
    if (f.coding_system && *f.coding_system && f.coding_code && *f.coding_code) {
        static const struct {
            const char *uri, *designator;
        } schemes[] = {{"http://snomed.info/sct", "SCT"},
                       {"http://loinc.org", "LN"},
                       {"http://radlex.org", "RADLEX"},
                       {"http://www.radlex.org", "RADLEX"},
                       {"http://hl7.org/fhir/sid/icd-10", "I10"},
                       {"http://hl7.org/fhir/sid/icd-10-cm", "I10C"},
                       {"http://dicom.nema.org/resources/ontology/DCM", "DCM"}};
        const char *designator = nullptr;
        for (const auto &s : schemes)
            if (!std::strcmp(f.coding_system, s.uri))
                designator = s.designator;
        // a designator given as such (SH, no URI characters)
        if (!designator && std::strlen(f.coding_system) <= 16 && !std::strpbrk(f.coding_system, ":/ \\"))
            designator = f.coding_system;
        if (designator) {
            DSRCodedEntryValue c(f.coding_code, designator, meaning, DSRTypes::CVT_auto, OFExplicitBool(OFFalse));
            if (c.isValid())
                return c;
        }
    }
    return DSRCodedEntryValue(f.code, PRIVATE_SCHEME, meaning);
}

// Adds items one level at a time: the first under the current container,
// the others after it.
struct tree_builder {
    DSRDocumentTree &t;
    std::vector<bool> empty{true};
    void add(DSRTypes::E_RelationshipType rel, DSRTypes::E_ValueType vt, const DSRCodedEntryValue &concept)
    {
        OFCondition c = empty.back() ? t.addChildContentItem(rel, vt, concept) : t.addContentItem(rel, vt, concept);
        check(c, std::string("cannot add the SR item ") + concept.getCodeMeaning().c_str());
        empty.back() = false;
    }
    DSRContentItem &cur() { return t.getCurrentContentItem(); }
    void open() { empty.push_back(true); }
    void close()
    {
        if (!empty.back())
            t.goUp();
        empty.pop_back();
    }
};

int write_impl(rf_read_result *r, const char *outdir, rf_err *err)
{
    std::call_once(log_once, [] { OFLog::configure(OFLogger::OFF_LOG_LEVEL); });
    if (!r || !outdir || !*outdir)
        return rf_err_set(err, RF_EINVAL, "rf_result_write_dicom: no result or no output directory");

    // the current study: the study of the first used image that is not a prior
    size_t first = r->nimages;
    for (size_t i = 0; i < r->nimages; i++)
        if (r->images[i].used && !r->images[i].prior && (r->images[i].source || r->images[i].path)) {
            first = i;
            break;
        }
    if (first == r->nimages)
        return rf_err_set(err, RF_EINVAL, "%s/dicom: no used image of the study to reference", outdir);
    for (size_t i = 0; i < r->nimages; i++) {
        const rf_result_image &im = r->images[i];
        if (im.used && !im.prior && ((!im.path && !im.source) || !im.sop_instance_uid || !im.sop_class_uid ||
                                     !im.series_instance_uid || !im.study_instance_uid))
            return rf_err_set(err, RF_EINVAL, "%s/dicom: image %zu has no path or no UIDs", outdir, i);
    }
    std::string study_uid = r->images[first].study_instance_uid;
    if (r->study.study_instance_uid && study_uid != r->study.study_instance_uid)
        return rf_err_set(err, RF_EINVAL, "%s/dicom: image %zu is not of the study read", outdir, first);

    std::string dir = std::string(outdir) + "/dicom";
    if (mkdir(dir.c_str(), 0777) != 0 && errno != EEXIST)
        return rf_err_set(err, RF_EIO, "%s: cannot create: %s", dir.c_str(), std::strerror(errno));

    std::map<size_t, source_file> sources;
    auto source = [&](size_t i) -> const source_file & {
        auto it = sources.find(i);
        if (it == sources.end())
            it = sources.emplace(i, load_source(r->images[i], i)).first;
        return it->second;
    };
    std::string date = now_da_tm(true), time_ = now_da_tm(false);
    std::string tool = r->tool_version ? r->tool_version : "";
    std::string model = r->model.name ? r->model.name : "radfuse";
    std::string model_version = r->model.version ? r->model.version : "";
    std::string method = r->saliency ? r->saliency : "none";

    // ---- Secondary Captures, one series ----
    std::string sc_series = new_uid();
    std::vector<written_sc> scs;
    int instance = 0;
    for (size_t fi = 0; fi < r->nfindings; fi++) {
        rf_result_finding &f = r->findings[fi];
        for (size_t mi = 0; mi < f.nmaps; mi++) {
            rf_result_map &m = f.maps[mi];
            if (m.image >= r->nimages)
                return rf_err_set(err, RF_EINVAL, "%s: finding %zu map %zu: image index %zu out of range", dir.c_str(),
                                  fi, mi, m.image);
            const rf_result_image &im = r->images[m.image];
            if (im.prior || !im.used)
                continue; // a prior's map belongs to another study: not filed in this one (m.dicom stays NULL)
            if (!im.display || !m.values || im.rows <= 0 || im.cols <= 0 || im.rows > 65535 || im.cols > 65535)
                return rf_err_set(err, RF_EINVAL, "%s: finding %zu map %zu: image %zu has no display pixels",
                                  dir.c_str(), fi, mi, m.image);
            const source_file &src = source(m.image);
            std::vector<Uint8> rgb;
            blend(im, m, rgb);

            DcmFileFormat ff;
            DcmDataset *ds = ff.getDataset();
            std::string uid = new_uid();
            put(ds, DCM_SpecificCharacterSet, "ISO_IR 192");
            put(ds, DCM_SOPClassUID, UID_SecondaryCaptureImageStorage);
            put(ds, DCM_SOPInstanceUID, uid);
            put(ds, DCM_InstanceCreationDate, date);
            put(ds, DCM_InstanceCreationTime, time_);
            copy_patient_study(src, ds);
            put(ds, DCM_StudyInstanceUID, study_uid);
            // General Series, General Equipment, SC Equipment
            put(ds, DCM_Modality, "OT");
            // Laterality (type 2C: a paired body part): the source's, else its
            // image laterality, else empty (unknown)
            std::string lat;
            OFString ov;
            DcmDataset *sds = src.ff->getDataset();
            if (sds->findAndGetOFString(DCM_Laterality, ov).good() || sds->findAndGetOFString(DCM_ImageLaterality, ov).good())
                lat = ov.c_str();
            if (lat == "R" || lat == "L")
                put(ds, DCM_Laterality, lat);
            else
                check(ds->insertEmptyElement(DCM_Laterality, true), "cannot set Laterality");
            put(ds, DCM_SeriesInstanceUID, sc_series);
            put(ds, DCM_SeriesNumber, SC_SERIES_NUMBER);
            put(ds, DCM_SeriesDescription, SC_SERIES_DESCRIPTION);
            put(ds, DCM_Manufacturer, "radfuse");
            put(ds, DCM_ManufacturerModelName, model);
            put(ds, DCM_SoftwareVersions, tool);
            put(ds, DCM_ConversionType, "WSD");
            // General Image, SC Image
            put(ds, DCM_InstanceNumber, std::to_string(++instance));
            put(ds, DCM_ContentDate, date);
            put(ds, DCM_ContentTime, time_);
            DcmElement *po = nullptr;
            if (src.ff->getDataset()->findAndGetElement(DCM_PatientOrientation, po).good() && po)
                check(ds->insert(OFstatic_cast(DcmElement *, po->clone()), true), "cannot copy PatientOrientation");
            else
                check(ds->insertEmptyElement(DCM_PatientOrientation, true), "cannot set PatientOrientation");
            put(ds, DCM_ImageType, "DERIVED\\SECONDARY");
            char wnd[96];
            if (im.window_width > 0)
                std::snprintf(wnd, sizeof wnd, "window center %s width %s", fmt_ds(im.window_center).c_str(),
                              fmt_ds(im.window_width).c_str());
            else
                std::snprintf(wnd, sizeof wnd, "automatic window");
            std::string deriv = "radfuse saliency (" + method + ") of " +
                                (f.display && *f.display ? f.display : f.code ? f.code : "finding") +
                                ", probability " + fmt_ds(f.probability) + ", viridis at opacity 0.5 x value above " +
                                "0.2, on the source image displayed with " + wnd;
            if (deriv.size() > 1024)
                deriv.resize(1024); // ST: at most 1024 characters
            put(ds, DCM_DerivationDescription, deriv);
            DcmItem *item = nullptr;
            check(ds->findOrCreateSequenceItem(DCM_SourceImageSequence, item, 0), "cannot add SourceImageSequence");
            put(item, DCM_ReferencedSOPClassUID, im.sop_class_uid);
            put(item, DCM_ReferencedSOPInstanceUID, im.sop_instance_uid);
            if (im.frame > 0)
                put(item, DCM_ReferencedFrameNumber, std::to_string(im.frame + 1));
            put(ds, DCM_BurnedInAnnotation, "NO");
            put(ds, DCM_LossyImageCompression, "00");
            put(ds, DCM_ImageComments, "radfuse research output, not for diagnostic use");
            // Image Pixel
            check(ds->putAndInsertUint16(DCM_SamplesPerPixel, 3), "cannot set SamplesPerPixel");
            put(ds, DCM_PhotometricInterpretation, "RGB");
            check(ds->putAndInsertUint16(DCM_PlanarConfiguration, 0), "cannot set PlanarConfiguration");
            check(ds->putAndInsertUint16(DCM_Rows, (Uint16)im.rows), "cannot set Rows");
            check(ds->putAndInsertUint16(DCM_Columns, (Uint16)im.cols), "cannot set Columns");
            check(ds->putAndInsertUint16(DCM_BitsAllocated, 8), "cannot set BitsAllocated");
            check(ds->putAndInsertUint16(DCM_BitsStored, 8), "cannot set BitsStored");
            check(ds->putAndInsertUint16(DCM_HighBit, 7), "cannot set HighBit");
            check(ds->putAndInsertUint16(DCM_PixelRepresentation, 0), "cannot set PixelRepresentation");
            check(ds->putAndInsertUint8Array(DCM_PixelData, rgb.data(), (unsigned long)rgb.size()),
                  "cannot set PixelData");

            std::string name = "sc_" + file_safe(f.code) + "_" + std::to_string(m.image) + ".dcm";
            save_atomic(ff, dir, dir + "/" + name);
            char *rel = xstrdup("dicom/" + name), *suid = nullptr;
            try {
                suid = xstrdup(uid);
            } catch (...) {
                std::free(rel);
                throw;
            }
            std::free(m.dicom);
            std::free(m.sop_instance_uid);
            m.dicom = rel;
            m.sop_instance_uid = suid;
            scs.push_back({uid, m.image, fi});
        }
    }

    // ---- Comprehensive SR, a second series ----
    DSRDocument doc(DSRTypes::DT_ComprehensiveSR);
    check(doc.createNewSeriesInStudy(study_uid.c_str()), "cannot start the SR");
    check(doc.setSpecificCharacterSet("ISO_IR 192"), "cannot set the SR's character set");
    check(doc.setSeriesDescription(SR_SERIES_DESCRIPTION), "cannot set the SR's series description");
    check(doc.setSeriesNumber(SR_SERIES_NUMBER), "cannot set the SR's series number");
    check(doc.setInstanceNumber("1"), "cannot set the SR's instance number");
    check(doc.setManufacturer("radfuse"), "cannot set the SR's manufacturer");
    DSRDocumentTree &t = doc.getTree();
    if (!t.addContentItem(DSRTypes::RT_isRoot, DSRTypes::VT_Container))
        fail(RF_EIO, "cannot add the SR's root");
    check(t.getCurrentContentItem().setConceptName(code("18748-4", "LN", "Diagnostic imaging report")),
          "cannot set the SR's title");
    check(t.getCurrentContentItem().setContinuityOfContent(DSRTypes::COC_Separate), "cannot set continuity");
    tree_builder b{t};
    b.add(DSRTypes::RT_hasObsContext, DSRTypes::VT_Text, code("111001", "DCM", "Algorithm Name"));
    check(b.cur().setStringValue(model.c_str()), "cannot set the algorithm name");
    b.add(DSRTypes::RT_hasObsContext, DSRTypes::VT_Text, code("111003", "DCM", "Algorithm Version"));
    check(b.cur().setStringValue(model_version.empty() ? "unknown" : model_version.c_str()),
          "cannot set the algorithm version");
    std::string params = "radfuse " + tool + "; saliency " + method;
    if (r->model.sha256)
        params += std::string("; model sha256 ") + r->model.sha256;
    b.add(DSRTypes::RT_hasObsContext, DSRTypes::VT_Text, code("111002", "DCM", "Algorithm Parameters"));
    check(b.cur().setStringValue(params.c_str()), "cannot set the algorithm parameters");
    DSRSOPInstanceReferenceList &evidence = doc.getCurrentRequestedProcedureEvidence();
    for (size_t i = 0; i < r->nimages; i++) {
        const rf_result_image &im = r->images[i];
        if (!im.used || im.prior)
            continue;
        b.add(DSRTypes::RT_contains, DSRTypes::VT_Image, code("260753009", "SCT", "Source"));
        DSRImageReferenceValue ref(im.sop_class_uid, im.sop_instance_uid);
        if (im.frame > 0)
            ref.getFrameList().addItem((Sint32)im.frame + 1);
        check(b.cur().setImageReference(ref), "cannot reference a source image");
        check(evidence.addItem(im.study_instance_uid, im.series_instance_uid, im.sop_class_uid, im.sop_instance_uid),
              "cannot list a source image as evidence");
    }
    const DSRCodedEntryValue one("1", "UCUM", "no units");
    for (size_t fi = 0; fi < r->nfindings; fi++) {
        const rf_result_finding &f = r->findings[fi];
        if (!f.code || !*f.code)
            return rf_err_set(err, RF_EINVAL, "%s: finding %zu has no code", dir.c_str(), fi);
        if (!std::isfinite(f.probability) || !std::isfinite(f.threshold))
            return rf_err_set(err, RF_EINVAL, "%s: finding %s: probability or threshold is not a number", dir.c_str(),
                              f.code);
        b.add(DSRTypes::RT_contains, DSRTypes::VT_Container, code("121071", "DCM", "Finding"));
        check(b.cur().setContinuityOfContent(DSRTypes::COC_Separate), "cannot set continuity");
        b.open();
        b.add(DSRTypes::RT_contains, DSRTypes::VT_Code, code("121071", "DCM", "Finding"));
        check(b.cur().setCodeValue(finding_code(f), OFFalse), std::string("finding ") + f.code + ": cannot code it");
        b.add(DSRTypes::RT_contains, DSRTypes::VT_Num, code("probability", PRIVATE_SCHEME, "Probability"));
        check(b.cur().setNumericValue(DSRNumericMeasurementValue(fmt_ds(f.probability).c_str(), one)),
              "cannot set a probability");
        b.add(DSRTypes::RT_contains, DSRTypes::VT_Num, code("threshold", PRIVATE_SCHEME, "Operating threshold"));
        check(b.cur().setNumericValue(DSRNumericMeasurementValue(fmt_ds(f.threshold).c_str(), one)),
              "cannot set a threshold");
        b.add(DSRTypes::RT_contains, DSRTypes::VT_Code,
              code("result", PRIVATE_SCHEME, "Result at operating threshold"));
        check(b.cur().setCodeValue(f.positive ? code("10828004", "SCT", "Positive")
                                              : code("260385009", "SCT", "Negative")),
              "cannot set a result");
        for (const written_sc &s : scs) {
            if (s.finding != fi)
                continue;
            b.add(DSRTypes::RT_contains, DSRTypes::VT_Image, code("121200", "DCM", "Illustration of ROI"));
            check(b.cur().setImageReference(DSRImageReferenceValue(UID_SecondaryCaptureImageStorage, s.sop_uid.c_str())),
                  "cannot reference a saliency image");
        }
        b.close();
    }
    for (const written_sc &s : scs)
        check(evidence.addItem(study_uid.c_str(), sc_series.c_str(), UID_SecondaryCaptureImageStorage, s.sop_uid.c_str()),
              "cannot list a saliency image as evidence");
    check(doc.completeDocument(), "cannot complete the SR");

    DcmFileFormat ff;
    DcmDataset *ds = ff.getDataset();
    check(doc.write(*ds), "cannot encode the SR");
    // DCMTK made its own UIDs under its root; radfuse's are the 2.25 form
    put(ds, DCM_SOPInstanceUID, new_uid());
    put(ds, DCM_SeriesInstanceUID, new_uid());
    copy_patient_study(source(first), ds);
    put(ds, DCM_StudyInstanceUID, study_uid);
    put(ds, DCM_SpecificCharacterSet, "ISO_IR 192");
    put(ds, DCM_ManufacturerModelName, model);
    put(ds, DCM_SoftwareVersions, tool);
    // the private coding scheme, declared (SOP Common)
    DcmItem *cs = nullptr;
    check(ds->findOrCreateSequenceItem(DCM_CodingSchemeIdentificationSequence, cs, 0),
          "cannot add CodingSchemeIdentificationSequence");
    put(cs, DCM_CodingSchemeDesignator, PRIVATE_SCHEME);
    put(cs, DCM_CodingSchemeName, "radfuse model finding codes and result concepts");
    put(cs, DCM_CodingSchemeResponsibleOrganization, "radfuse");
    save_atomic(ff, dir, dir + "/sr.dcm");
    return RF_OK;
}

} // namespace

extern "C" int rf_result_write_dicom(rf_read_result *r, const char *outdir, rf_err *err)
{
    try {
        return write_impl(r, outdir, err);
    } catch (const fail_exc &e) {
        return rf_err_set(err, e.code, "%s/dicom: %s", outdir ? outdir : "", e.msg.c_str());
    } catch (const std::bad_alloc &) {
        return rf_err_set(err, RF_ENOMEM, "%s/dicom: out of memory", outdir ? outdir : "");
    } catch (const std::exception &e) {
        return rf_err_set(err, RF_EIO, "%s/dicom: %s", outdir ? outdir : "", e.what());
    } catch (...) {
        return rf_err_set(err, RF_EIO, "%s/dicom: unexpected failure", outdir ? outdir : "");
    }
}
