#!/usr/bin/python3
"""Writes tests/data/dicom_expected.txt: what `radfuse dicom ls --json` must say
about every file under shared/data/dicom, determined independently of radfuse
with pydicom (and GDCM as pydicom's decoder where Pillow cannot decode).

Made with Debian 12's python3-pydicom 2.3.1, python3-numpy 1.24.2,
python3-pil 9.4.0 and python3-gdcm 3.0.21:
    apt-get install python3-pydicom python3-numpy python3-pil python3-gdcm
    /usr/bin/python3 tests/data/make_dicom_expected.py ../shared/data/dicom > tests/data/dicom_expected.txt

One line per file, tab-separated:
    relative/path  ok     ROWS COLS FRAMES  SHA256    lossless: the hash must match exactly
    relative/path  nonimage  -  -  -        CLASS     no Pixel Data, and its SOP class is not an image
                                                      class (pydicom's name for it has no "Image
                                                      Storage": SR, RT plan, waveform...): listed as ok
                                                      with kind non-image, never selected
    relative/path  dicomdir  -  -  -        N         a DICOMDIR (Media Storage Directory) whose
                                                      records reference N files: listed as ok with kind
                                                      dicomdir and referenced_files N
    relative/path  ok     ROWS COLS FRAMES  lossy  SHA256  THUMB
                                                      lossy JPEG: decoders may differ by +-1 per
                                                      sample, so the hash is informative only;
                                                      THUMB must match within 1.0 (10 tenths)
    relative/path  error  -    -    -       REASON    radfuse must report an error

pixel_sha256 rule (the one radfuse documents): SHA-256 of the stored values of
all frames after decompression, masked to BitsStored and sign-extended when
PixelRepresentation is 1, little-endian, in 1 byte for BitsAllocated 1 (0/1)
and 8, 2 bytes for 16, 4 bytes for 32; color as interleaved RGB (YBR_FULL and
YBR_FULL_422 converted with pydicom's convert_color_space).

THUMB: frame 0 cut into min(16, rows) x min(16, cols) blocks (block i of n covers
[i*len//n, (i+1)*len//n)); for each block row, block column and sample, the mean
of those values in tenths, rounded: comma-separated, row-major, samples last.

Status rules: a file is an error when pydicom cannot parse it as DICOM (files
without preamble or meta header count when pydicom with force=True finds Pixel
Data with Rows, or a SOPClassUID of a non-image class), when it has no Pixel Data
and is not a non-image object or a DICOMDIR, when its transfer syntax is JPEG 2000 Part 2 (.92/.93, not
supported by radfuse: a decision, not a pydicom finding), when pydicom cannot
decode its pixel data, or when DECISIONS says so.

JPEG 2000 (.90, .91) is decoded by pydicom through GDCM here (check with
`/usr/bin/python3 -c "import pydicom, gdcm"`). Codestreams with the reversible 5/3
wavelet must match exactly; those with the irreversible 9/7 wavelet get the lossy
line (OpenJPEG and GDCM may differ by small amounts). PixelRepresentation is read
before decoding: pydicom's JPEG 2000 path rewrites it to the codestream's
signedness (J2K_pixelrep_mismatch.dcm), and radfuse follows the attribute.

When JPEG 2000 decoding was added, these files changed from error ("JPEG 2000
not supported yet") to ok:
    pydicom-test-files/GDCMJ2K_TextGBR.dcm       .90, YBR_RCT (decoded to RGB), exact
    pydicom-test-files/J2K_pixelrep_mismatch.dcm .90, exact
    pydicom-test-files/MR_small_jp2klossless.dcm .90, exact
    pydicom-test-files/SC_rgb_gdcm_KY.dcm        .91 with the reversible wavelet, exact
    pydicom-test-files/JPEG2000.dcm              .91 irreversible: lossy rule
and these stay errors, for new reasons (DECISIONS):
    pydicom-test-files/693_J2KI.dcm              precision 16 vs BitsStored 14
    pydicom-test-files/JPEG2000-embedded-sequence-delimiter.dcm  corrupt SIZ
"""
import hashlib
import os
import sys
import warnings

import numpy as np
import pydicom
from pydicom.pixel_data_handlers.util import convert_color_space
from pydicom.uid import UID

warnings.filterwarnings("ignore")

# JPEG 2000 (.90 lossless-only, .91) is decoded by pydicom through GDCM here; Part 2
# multi-component (.92, .93) stays unsupported by radfuse (a decision).
J2K = {"1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"}
J2K_LATER = {"1.2.840.10008.1.2.4.92", "1.2.840.10008.1.2.4.93"}
# Where radfuse deliberately differs from what pydicom tolerates (see docs/imaging.md).
DECISIONS = {
    "pydicom-test-files/SC_rgb_jpeg.dcm":
        "meta header says explicit VR (JPEG baseline) but the dataset is implicit VR: "
        "pydicom falls back, radfuse rejects the contradiction",
    "pydicom-test-files/693_J2KI.dcm":
        "JPEG 2000 codestream precision 16 bits, BitsStored 14: pydicom decodes, "
        "radfuse rejects the mismatch",
    "pydicom-test-files/rtplan_truncated.dcm":
        "truncated inside its last element: pydicom keeps the elements before the cut, "
        "radfuse rejects the file",
    "pydicom-test-files/JPEG2000-embedded-sequence-delimiter.dcm":
        "JPEG 2000 codestream with a corrupt SIZ (tile count 4292730882): GDCM reports the "
        "error yet pydicom returns values, radfuse rejects it",
}
LOSSY = {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51"}  # JPEG baseline, extended


def j2k_irreversible(ds):
    """JPEG 2000 with the 9/7 irreversible wavelet (COD's transformation byte is 0):
    OpenJPEG (radfuse) and GDCM (pydicom) may differ by small amounts, so these
    files are checked with the lossy rule. The reversible 5/3 wavelet must match exactly."""
    from pydicom.encaps import generate_pixel_data_frame
    frame = next(generate_pixel_data_frame(ds.PixelData, int(ds.get("NumberOfFrames", 1) or 1)))
    at = frame.find(b"\xff\x52")
    return at >= 0 and len(frame) > at + 13 and frame[at + 13] == 0


def non_image_class(ds):
    """pydicom's name of the SOP class when it is a known class that is not an image
    class (no "Image Storage" in the name), else None."""
    uid = str(ds.get("SOPClassUID", "")).strip()
    name = UID(uid).name if uid else ""
    if not name or name == uid or "Image Storage" in name:
        return None
    return name


def dicomdir_files(ds):
    """The number of records with a ReferencedFileID, when ds is a DICOMDIR; else None."""
    meta = getattr(ds, "file_meta", None)
    if meta is None or str(meta.get("MediaStorageSOPClassUID", "")) != "1.2.840.10008.1.3.10":
        return None
    return sum(1 for r in ds.get("DirectoryRecordSequence", []) if r.get("ReferencedFileID"))


def expected(path):
    try:
        ds = pydicom.dcmread(path)  # not force=True: a file must look like DICOM
    except Exception as e:  # noqa: BLE001
        try:
            ds = pydicom.dcmread(path, force=True)
            # files without preamble or meta header, but with real elements
            if "PixelData" in ds:
                if "Rows" not in ds:
                    raise ValueError("no image attributes")
            elif not non_image_class(ds):
                raise ValueError("neither an image nor a known non-image object")
        except Exception:  # noqa: BLE001
            return "error", None, "not DICOM (pydicom: %s)" % type(e).__name__
    if "PixelData" not in ds:
        n = dicomdir_files(ds)
        if n is not None:
            return "dicomdir", None, "%d" % n
        kind = non_image_class(ds)
        if kind:
            return "nonimage", None, kind
        return "error", None, "no pixel data"
    ts = str(ds.file_meta.get("TransferSyntaxUID", "")) if "file_meta" in dir(ds) else ""
    if not ts and hasattr(ds, "file_meta"):
        ts = ""
    if ts in J2K_LATER:
        return "error", None, "JPEG 2000 Part 2 (multi-component) not supported"
    nf = ds.get("NumberOfFrames", 1)
    try:
        int(str(nf).strip() or "1")
    except ValueError:
        return "error", None, "NumberOfFrames %r is not an integer" % str(nf)
    # PixelRepresentation as the file has it: read before decoding, because pydicom's
    # JPEG 2000 path rewrites it to the codestream's signedness
    try:
        pr = int(getattr(ds, "PixelRepresentation", 0))
    except Exception:  # noqa: BLE001
        pr = None
    try:
        arr = ds.pixel_array
    except Exception as e:  # noqa: BLE001
        return "error", None, "pydicom cannot decode: %s" % str(e).splitlines()[0][:80]
    rows, cols = int(ds.Rows), int(ds.Columns)
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    spp = int(getattr(ds, "SamplesPerPixel", 1))
    ba, bs = int(ds.BitsAllocated), int(ds.BitsStored)
    pi = str(getattr(ds, "PhotometricInterpretation", ""))
    native = not pydicom.uid.UID(ts).is_compressed if ts else True
    expected_len = rows * cols * frames * spp * ba // 8 if ba != 1 else (rows * cols * frames + 7) // 8
    if pi == "YBR_FULL_422" and native:
        expected_len = expected_len // 3 * 2
    if native and len(ds.PixelData) >= expected_len + expected_len // frames:
        return "error", None, "pixel data a frame or more longer than the attributes say (%d > %d bytes)" % (
            len(ds.PixelData), expected_len)
    if arr.size != rows * cols * frames * spp:
        return "error", None, "pydicom decodes %d values, attributes say %d" % (
            arr.size, rows * cols * frames * spp)
    if spp == 3 and pi in ("YBR_FULL", "YBR_FULL_422"):
        arr = convert_color_space(arr, pi, "RGB")
    width = {1: 1, 8: 1, 16: 2, 32: 4}[ba]
    u = arr.astype(np.int64).ravel() & ((1 << bs) - 1)
    if pr == 1:
        u = np.where(u >= (1 << (bs - 1)), u - (1 << bs), u)
    dt = {1: "u1", 2: "<u2", 4: "<u4"}[width] if pr == 0 else {1: "i1", 2: "<i2", 4: "<i4"}[width]
    data = u.astype(dt).tobytes()
    digest = hashlib.sha256(data).hexdigest()
    if ts in LOSSY or (ts in J2K and j2k_irreversible(ds)):
        return "ok", (rows, cols, frames), "lossy\t%s\t%s" % (digest, thumb(u.reshape(frames, rows, cols, spp)[0]))
    return "ok", (rows, cols, frames), digest


def thumb(img):
    rows, cols, spp = img.shape
    gr, gc = min(16, rows), min(16, cols)
    out = []
    for i in range(gr):
        for j in range(gc):
            block = img[i * rows // gr:(i + 1) * rows // gr, j * cols // gc:(j + 1) * cols // gc]
            for c in range(spp):
                out.append(str(int(np.floor(block[..., c].mean() * 10 + 0.5))))
    return ",".join(out)


def main():
    root = sys.argv[1]
    files = []
    for d, _, names in os.walk(root):
        for n in names:
            p = os.path.join(d, n)
            if os.path.isfile(p) and not os.path.islink(p):
                files.append(os.path.relpath(p, root))
    print("# made by tests/data/make_dicom_expected.py with pydicom %s, numpy %s (see the script)"
          % (pydicom.__version__, np.__version__))
    for rel in sorted(files, key=lambda s: s.encode()):
        status, shape, what = expected(os.path.join(root, rel))
        if rel in DECISIONS:
            status, shape, what = "error", None, DECISIONS[rel]
        if shape:
            print("%s\t%s\t%d\t%d\t%d\t%s" % (rel, status, shape[0], shape[1], shape[2], what))
        else:
            print("%s\t%s\t-\t-\t-\t%s" % (rel, status, what))


main()
