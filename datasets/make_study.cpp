/*
 * The DICOM side of `radfuse dataset study` (datasets/covid_study.c): one
 * Computed Radiography image (CR Image Storage) with the values given, no
 * creation time and no generated UID, so that the same input gives the same
 * bytes. Written with DCMTK's dcmdata to a temporary beside the target,
 * fsynced and renamed; every exception stays in here.
 */
#include "datasets/datasets_internal.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dctk.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <new>
#include <string>

namespace {

struct fail_exc {
    std::string msg;
};

void put(DcmItem *ds, const DcmTagKey &tag, const char *v, bool type2 = true)
{
    OFCondition c = EC_Normal;
    if (v && *v)
        c = ds->putAndInsertString(tag, v);
    else if (type2)
        c = ds->insertEmptyElement(tag, true);
    if (c.bad())
        throw fail_exc{std::string("cannot set ") + DcmTag(tag).getTagName() + ": " + c.text()};
}

void put16(DcmItem *ds, const DcmTagKey &tag, Uint16 v)
{
    if (ds->putAndInsertUint16(tag, v).bad())
        throw fail_exc{std::string("cannot set ") + DcmTag(tag).getTagName()};
}

int write_cr(const ds_cr_spec *s, rf_err *err)
{
    if (s->rows <= 0 || s->cols <= 0 || s->rows > 65535 || s->cols > 65535)
        return rf_err_set(err, RF_EINVAL, "%s: image size %dx%d cannot be a DICOM image", s->path, s->cols, s->rows);
    DcmFileFormat ff;
    DcmDataset *ds = ff.getDataset();
    // SOP Common
    put(ds, DCM_SOPClassUID, UID_ComputedRadiographyImageStorage);
    put(ds, DCM_SOPInstanceUID, s->sop_uid);
    // Patient, Patient Study
    put(ds, DCM_PatientName, s->patient_name);
    put(ds, DCM_PatientID, s->patient_id);
    put(ds, DCM_PatientBirthDate, "");
    put(ds, DCM_PatientSex, s->patient_sex);
    put(ds, DCM_PatientAge, s->patient_age, false);
    put(ds, DCM_PatientIdentityRemoved, "YES", false);
    put(ds, DCM_DeidentificationMethod, "public collection, de-identified by its source", false);
    // General Study
    put(ds, DCM_StudyInstanceUID, s->study_uid);
    put(ds, DCM_StudyDate, s->study_date);
    put(ds, DCM_StudyTime, s->study_time);
    put(ds, DCM_ReferringPhysicianName, "");
    put(ds, DCM_StudyID, "1");
    put(ds, DCM_AccessionNumber, "");
    put(ds, DCM_StudyDescription, s->study_description, false);
    // General Series, CR Series
    put(ds, DCM_Modality, "CR");
    put(ds, DCM_SeriesInstanceUID, s->series_uid);
    put(ds, DCM_SeriesNumber, "1");
    put(ds, DCM_SeriesDescription, s->series_description, false);
    put(ds, DCM_BodyPartExamined, s->body_part);
    put(ds, DCM_ViewPosition, s->view_position);
    // General Equipment
    put(ds, DCM_Manufacturer, "");
    // General Image
    put(ds, DCM_InstanceNumber, "1");
    put(ds, DCM_PatientOrientation, ""); // the collection does not say how its images are oriented
    put(ds, DCM_ContentDate, s->study_date);
    put(ds, DCM_ContentTime, s->study_time);
    put(ds, DCM_ImageType, "DERIVED\\PRIMARY");
    put(ds, DCM_DerivationDescription, s->derivation, false);
    put(ds, DCM_BurnedInAnnotation, "NO");
    // the values come from a lossy JPEG (decoded, stored uncompressed)
    put(ds, DCM_LossyImageCompression, "01");
    put(ds, DCM_LossyImageCompressionMethod, "ISO_10918_1");
    // Image Pixel
    put16(ds, DCM_SamplesPerPixel, 1);
    put(ds, DCM_PhotometricInterpretation, "MONOCHROME2");
    put16(ds, DCM_Rows, (Uint16)s->rows);
    put16(ds, DCM_Columns, (Uint16)s->cols);
    put16(ds, DCM_BitsAllocated, 8);
    put16(ds, DCM_BitsStored, 8);
    put16(ds, DCM_HighBit, 7);
    put16(ds, DCM_PixelRepresentation, 0);
    // VOI LUT: the identity window (LINEAR: (x - 127.5) / 255 + 0.5 = x / 255),
    // so the image displays as the JPEG did
    put(ds, DCM_WindowCenter, "128");
    put(ds, DCM_WindowWidth, "256");
    size_t n = (size_t)s->rows * (size_t)s->cols;
    if (ds->putAndInsertUint8Array(DCM_PixelData, s->pixels, (unsigned long)n).bad())
        throw fail_exc{"cannot set PixelData"};

    std::string tmp = std::string(s->path) + ".tmp." + std::to_string((long)getpid());
    OFCondition c = ff.saveFile(tmp.c_str(), EXS_LittleEndianExplicit, EET_ExplicitLength, EGL_recalcGL);
    if (c.bad()) {
        unlink(tmp.c_str());
        return rf_err_set(err, RF_EIO, "%s: cannot write: %s", s->path, c.text());
    }
    int fd = open(tmp.c_str(), O_RDONLY | O_CLOEXEC);
    bool ok = fd >= 0 && fsync(fd) == 0;
    int e = errno;
    if (fd >= 0)
        close(fd);
    if (!ok || rename(tmp.c_str(), s->path) != 0) {
        e = ok ? errno : e;
        unlink(tmp.c_str());
        return rf_err_set(err, RF_EIO, "%s: cannot write: %s", s->path, std::strerror(e));
    }
    std::string dir(s->path);
    size_t slash = dir.rfind('/');
    dir = slash == std::string::npos ? "." : dir.substr(0, slash ? slash : 1);
    int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return RF_OK;
}

} // namespace

extern "C" int ds_write_cr(const ds_cr_spec *s, rf_err *err)
{
    try {
        return write_cr(s, err);
    } catch (const fail_exc &e) {
        return rf_err_set(err, RF_EIO, "%s: %s", s->path, e.msg.c_str());
    } catch (const std::bad_alloc &) {
        return rf_err_set(err, RF_ENOMEM, "%s: out of memory", s->path);
    } catch (const std::exception &e) {
        return rf_err_set(err, RF_EIO, "%s: %s", s->path, e.what());
    } catch (...) {
        return rf_err_set(err, RF_EIO, "%s: unexpected failure", s->path);
    }
}
