#!/usr/bin/python3
"""Writes tests/data/render/: small synthetic DICOM files for what the shared
corpus lacks, and the values pydicom computes for every render case that
tests/test_render.c checks imaging/render.c against.

Made with Debian 12's python3-pydicom 2.3.1, python3-numpy 1.24.2 and
python3-gdcm 3.0.21 (pydicom's JPEG 2000 decoder for J2K_pixelrep_mismatch):
    apt-get install python3-pydicom python3-numpy python3-gdcm
    /usr/bin/python3 tests/data/make_render_expected.py ../shared/data/dicom tests/data/render

The reference is pydicom's own implementation (pydicom.pixel_data_handlers.util):
apply_modality_lut, apply_windowing (LINEAR, LINEAR_EXACT, SIGMOID), apply_voi
(VOI LUT) and apply_color_lut (plain and segmented palettes); numpy for what
pydicom leaves to the caller: masking to BitsStored and sign extension,
YBR -> RGB (convert_color_space), MONOCHROME1 inversion, padding and the
automatic window. radfuse's displayed values are pydicom's output mapped from
its output range [y_min, y_max] to [0, 1] (windows), divided by 2^bits - 1
(VOI LUTs, palettes, RGB), inverted (1 - v) for MONOCHROME1, 0 at padding.
The automatic window is numpy.percentile(modality values of the frame's
non-padding pixels, [0.5, 99.5]) applied as clip((x - lo) / (hi - lo), 0, 1)
(0 when hi <= lo).

Written:
    render/*.dcm       the synthetic files (explicit VR little endian, tiny); badwindow.dcm
                       (WindowWidth 0) and wide.dcm (1 x 65535, RLE) are for
                       tests/test_dicom_export.c's per-file errors
    render/cases.txt   one case per line:
        NAME SOURCE FRAME WHAT VOI STRIDE NPAD MEAN[,MEAN,MEAN]
        SOURCE  shared:REL (under shared/data/dicom) or local:FILE (under render/)
        WHAT    modality | display
        VOI     default | window:N | explicit:C,W | lut | auto   (display only; '-' for modality)
        STRIDE  the values kept: rows and columns 0, STRIDE, 2*STRIDE, ...
        NPAD    padding pixels in the frame
        MEAN    per channel, over the whole frame (float64)
    render/NAME.f32    the kept values, float32 little-endian, row-major, channels last

Where pydicom 2.3.1 departs from PS3.3 the cases stay clear of it (see
docs/imaging.md, "Rendering"): an 8-bit VOI LUT or palette indexes through a
uint8 array (wraps at 256), a segmented palette's indirect offset is taken in
entries rather than bytes (same for 8-bit entries; 16-bit cases use offset 0),
and an indirect copy of 0 segments copies everything.
"""
import copy
import os
import struct
import sys
import warnings

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixel_data_handlers.util import (apply_color_lut, apply_modality_lut, apply_voi,
                                              apply_voi_lut, apply_windowing, convert_color_space)
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, RLELossless

warnings.filterwarnings("ignore")

UID_ROOT = "1.2.826.0.1.3680043.10.1442."  # a fixed example root: the files must not change between runs


# ---- synthetic files --------------------------------------------------------

def base(name, rows, cols, ba, bs, pr, pi="MONOCHROME2", frames=1, spp=1):
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"  # secondary capture
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = UID_ROOT + "1." + str(sum(ord(c) * (i + 1) for i, c in enumerate(name)))
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID = UID_ROOT + "2"
    ds.SeriesInstanceUID = UID_ROOT + "3"
    ds.Modality = "OT"
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = ba, bs, bs - 1, pr
    ds.SamplesPerPixel = spp
    ds.PhotometricInterpretation = pi
    if frames > 1:
        ds.NumberOfFrames = frames
    return ds


def set_pixels(ds, values, junk=0):
    """values: stored values (signed ok); junk is OR'ed into the bits above BitsStored."""
    bs, ba = ds.BitsStored, ds.BitsAllocated
    raw = (np.asarray(values, dtype=np.int64) & ((1 << bs) - 1)) | junk
    ds.PixelData = raw.astype({8: "u1", 16: "<u2"}[ba]).tobytes()


def lut_item(desc, data, vr_desc="US", bits16=True):
    it = Dataset()
    it.add_new(0x00283002, vr_desc, desc)
    if bits16:
        it.add_new(0x00283006, "OW", struct.pack("<%dH" % len(data), *data))
    else:
        it.add_new(0x00283006, "US", list(data))
    return it


def seg8(*segments):
    out = []
    for s in segments:
        out += s
    b = bytes(out)
    return b + (b"\0" if len(b) % 2 else b"")


def seg16(*segments):
    out = []
    for s in segments:
        out += s
    return struct.pack("<%dH" % len(out), *out)


def ramp(n, lo, hi, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(lo, hi + 1, size=n)


def synthetic(outdir):
    files = {}

    # Modality LUT (16-bit entries, non-monotonic) then a window on its output
    ds = base("mlut16", 32, 32, 16, 12, 0)
    set_pixels(ds, ramp(32 * 32, 0, 699, 1))
    lut = [(i * 37) % 3000 + (i // 100) * 200 for i in range(512)]
    ds.ModalityLUTSequence = Sequence([lut_item([512, 100, 16], lut)])
    ds.WindowCenter, ds.WindowWidth = 1800, 2500
    files["mlut16.dcm"] = ds

    # signed 12-bit in 16 with junk above bit 11, Modality LUT with a negative first value
    ds = base("mlut_signed", 24, 24, 16, 12, 1)
    set_pixels(ds, ramp(24 * 24, -2048, 2047, 2) // 8, junk=0x5000)
    ds.ModalityLUTSequence = Sequence([lut_item([300, -100, 16], [i * i % 9000 for i in range(300)], "SS")])
    files["mlut_signed.dcm"] = ds

    # signed 12-bit in 16, 3 frames, rescale, padding value: automatic window per frame
    ds = base("signed12", 20, 20, 16, 12, 1, frames=3)
    v = np.concatenate([ramp(400, -2048 + 200 * f, 1500 - 300 * f, 10 + f) for f in range(3)])
    v[::7] = -2048  # padding
    set_pixels(ds, v, junk=0xA000)
    ds.RescaleSlope, ds.RescaleIntercept = "2.5", "-100"
    ds.add_new(0x00280120, "SS", -2048)  # PixelPaddingValue
    files["signed12.dcm"] = ds

    # VOI LUT, 8-bit entries (US), 8-bit image; indexes stay below 256 (pydicom wraps there)
    ds = base("voilut8", 16, 16, 8, 8, 0)
    set_pixels(ds, np.arange(256))
    ds.VOILUTSequence = Sequence([lut_item([200, 30, 8], [(i * 5) % 256 for i in range(200)], bits16=False)])
    files["voilut8.dcm"] = ds

    # VOI LUT, 12-bit entries in 16, signed image with rescale, and two windows
    ds = base("voilut16", 32, 32, 16, 16, 1)
    set_pixels(ds, ramp(32 * 32, -2000, 3000, 3))
    ds.RescaleSlope, ds.RescaleIntercept = "1", "-1024"
    ds.VOILUTSequence = Sequence([lut_item([3000, -1500, 12], [min(4095, i * 4095 // 2999) for i in range(3000)],
                                           "SS")])
    ds.WindowCenter, ds.WindowWidth = ["40", "400"], ["400", "2000"]
    files["voilut16.dcm"] = ds

    # SIGMOID with two windows (one of width < 1, fine for SIGMOID)
    ds = base("sigmoid", 32, 32, 16, 16, 0)
    set_pixels(ds, ramp(32 * 32, 0, 4000, 4))
    ds.VOILUTFunction = "SIGMOID"
    ds.WindowCenter, ds.WindowWidth = ["2000", "1000"], ["1000", "0.5"]
    files["sigmoid.dcm"] = ds

    # LINEAR_EXACT, MONOCHROME1, 10 bits stored
    ds = base("linexact", 16, 16, 16, 10, 0, pi="MONOCHROME1")
    set_pixels(ds, ramp(256, 0, 1023, 5), junk=0xFC00)
    ds.VOILUTFunction = "LINEAR_EXACT"
    ds.WindowCenter, ds.WindowWidth = ["512", "300"], ["0.5", "200"]
    files["linexact.dcm"] = ds

    # padding range: value 0 .. limit 10
    ds = base("padrange", 24, 24, 16, 16, 0)
    v = ramp(576, 0, 3000, 6)
    v[::5] = ramp(len(v[::5]), 0, 10, 7)
    set_pixels(ds, v)
    ds.PixelPaddingValue = 0
    ds.add_new(0x00280121, "US", 10)  # PixelPaddingRangeLimit
    ds.WindowCenter, ds.WindowWidth = 1500, 2000
    files["padrange.dcm"] = ds

    # padding range the other way round (value -100 > limit -120), signed, MONOCHROME1, rescale
    ds = base("padrange_rev", 24, 24, 16, 16, 1, pi="MONOCHROME1")
    v = ramp(576, -1000, 2000, 8)
    v[::4] = ramp(len(v[::4]), -125, -95, 9)
    set_pixels(ds, v)
    ds.add_new(0x00280120, "SS", -100)
    ds.add_new(0x00280121, "SS", -120)
    ds.RescaleSlope, ds.RescaleIntercept = "0.5", "10"
    ds.WindowCenter, ds.WindowWidth = 300, 800
    files["padrange_rev.dcm"] = ds

    # PALETTE COLOR, 8-bit entries packed in OW
    ds = base("pal8", 16, 16, 8, 8, 0, pi="PALETTE COLOR")
    set_pixels(ds, np.arange(256)[::-1])
    for k, tag in enumerate((0x00281201, 0x00281202, 0x00281203)):
        ds.add_new(0x00281101 + k, "US", [256, 0, 8])
        ds.add_new(tag, "OW", bytes(((i * (k + 3)) + 40 * k) % 256 for i in range(256)))
    files["pal8.dcm"] = ds

    # PALETTE COLOR, 16-bit entries, first value 10, 200 entries: indexes clamp both ways
    ds = base("pal16", 20, 20, 16, 16, 0, pi="PALETTE COLOR")
    set_pixels(ds, ramp(400, 0, 255, 11))
    for k, tag in enumerate((0x00281201, 0x00281202, 0x00281203)):
        ds.add_new(0x00281101 + k, "US", [200, 10, 16])
        ds.add_new(tag, "OW", struct.pack("<200H", *[(i * 331 * (k + 1)) % 65536 for i in range(200)]))
    files["pal16.dcm"] = ds

    # segmented PALETTE COLOR, 8-bit entries: discrete, linear, indirect (byte offsets)
    ds = base("palseg8", 16, 16, 8, 8, 0, pi="PALETTE COLOR")
    set_pixels(ds, np.arange(256))
    red = seg8([0, 3, 10, 20, 30], [1, 100, 200], [2, 2, 0, 0, 0, 0], [1, 50, 0])  # 3+100+103+50
    green = seg8([0, 1, 255], [1, 127, 0], [1, 128, 128])  # 1+127+128
    blue = seg8([0, 4, 1, 2, 3, 4], [1, 40, 200], [0, 2, 90, 91], [2, 1, 6, 0, 0, 0], [1, 170, 250])
    # blue: 4 + 40 + 2 + (indirect to byte 6, the linear segment: from 91 to 200 in 40) + 170
    for k, (tag, data) in enumerate(zip((0x00281221, 0x00281222, 0x00281223), (red, green, blue))):
        ds.add_new(0x00281101 + k, "US", [256, 0, 8])
        ds.add_new(tag, "OW", data)
    files["palseg8.dcm"] = ds

    # segmented PALETTE COLOR, 16-bit entries; the indirect offset is 0 (bytes and entries agree)
    ds = base("palseg16", 20, 20, 16, 16, 0, pi="PALETTE COLOR")
    set_pixels(ds, ramp(400, 0, 320, 12))
    red = seg16([0, 2, 0, 1000], [1, 98, 65535], [2, 1, 0, 0], [1, 198, 30000])  # 2+98+2+198
    green = seg16([0, 1, 65535], [1, 299, 0])
    blue = seg16([0, 3, 7, 7, 7], [1, 297, 7])  # linear with y0 == y1
    for k, (tag, data) in enumerate(zip((0x00281221, 0x00281222, 0x00281223), (red, green, blue))):
        ds.add_new(0x00281101 + k, "US", [300, 0, 16])
        ds.add_new(tag, "OW", data)
    files["palseg16.dcm"] = ds

    # not a render case: a window of width 0, which radfuse refuses (export's per-file error)
    ds = base("badwindow", 8, 8, 16, 12, 0)
    set_pixels(ds, np.arange(64))
    ds.WindowCenter, ds.WindowWidth = 100, 0
    files["badwindow.dcm"] = ds

    # not a render case either: 65535 columns, past JPEG's 65500 (export's encoder error), RLE so it stays small
    ds = base("wide", 1, 65535, 8, 8, 0)
    set_pixels(ds, (np.arange(65535) // 4096) * 16)
    ds.compress(RLELossless)
    files["wide.dcm"] = ds

    for name, ds in files.items():
        ds.save_as(os.path.join(outdir, name), write_like_original=name == "wide.dcm")
    return sorted(files)


# ---- the reference ----------------------------------------------------------

def stored(ds):
    """Every frame's stored values, (frames, rows, cols, spp), masked and
    sign-extended per BitsStored / PixelRepresentation, YBR as RGB."""
    pr = int(ds.PixelRepresentation)  # before decoding: pydicom's JPEG 2000 path rewrites it
    arr = ds.pixel_array
    ds.PixelRepresentation = pr
    pi = str(ds.PhotometricInterpretation)
    spp = int(ds.SamplesPerPixel)
    if spp == 3 and pi in ("YBR_FULL", "YBR_FULL_422"):
        arr = convert_color_space(arr, pi, "RGB")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    bs = int(ds.BitsStored)
    u = arr.astype(np.int64) & ((1 << bs) - 1)
    if pr == 1:
        u = np.where(u >= (1 << (bs - 1)), u - (1 << bs), u)
    return u.reshape(frames, int(ds.Rows), int(ds.Columns), spp)


def padding_mask(ds, s):
    if "PixelPaddingValue" not in ds or ds.PhotometricInterpretation not in ("MONOCHROME1", "MONOCHROME2"):
        return np.zeros(s.shape, dtype=bool)
    a = int(ds.PixelPaddingValue)
    b = int(ds.get("PixelPaddingRangeLimit", a))
    return (s >= min(a, b)) & (s <= max(a, b))


def y_range(ds):
    """pydicom apply_windowing's output range, to map its output to [0, 1]."""
    if ds.get("ModalityLUTSequence"):
        y_min, y_max = 0, 2 ** ds.ModalityLUTSequence[0].LUTDescriptor[2] - 1
    elif ds.PixelRepresentation == 0:
        y_min, y_max = 0, 2 ** ds.BitsStored - 1
    else:
        y_min, y_max = -2 ** (ds.BitsStored - 1), 2 ** (ds.BitsStored - 1) - 1
    if ds.get("RescaleSlope") is not None and ds.get("RescaleIntercept") is not None:
        y_min = y_min * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        y_max = y_max * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    return y_min, y_max


def lut_full(values, bits):
    full = 2 ** bits - 1
    return 65535 if np.max(values) > full else full


def render(ds, s, what, voi):
    """s: one frame (rows, cols, spp) of stored values -> (values float64, npad)."""
    pi = str(ds.PhotometricInterpretation)
    pad = padding_mask(ds, s[..., 0])
    if what == "modality":
        if s.shape[-1] == 3 or pi == "PALETTE COLOR":
            return s.astype(np.float64), 0
        return np.asarray(apply_modality_lut(s[..., 0], ds), dtype=np.float64)[..., None], int(pad.sum())
    if s.shape[-1] == 3:
        return s / (2.0 ** int(ds.BitsStored) - 1), 0
    if pi == "PALETTE COLOR":
        rgb = apply_color_lut(s[..., 0], ds)
        bits = int(ds.RedPaletteColorLookupTableDescriptor[2])
        return rgb / float(lut_full(rgb, bits)), 0
    m = np.asarray(apply_modality_lut(s[..., 0], ds), dtype=np.float64)
    d = copy.deepcopy(ds)
    if voi == "auto" or (voi == "default" and "WindowCenter" not in ds and not ds.get("VOILUTSequence")):
        vals = m[~pad]
        lo, hi = np.percentile(vals, [0.5, 99.5]) if vals.size else (0.0, 0.0)
        y = np.clip((m - lo) / (hi - lo), 0, 1) if hi > lo else np.zeros_like(m)
    elif voi == "lut" or (voi == "default" and "WindowCenter" not in ds):
        # apply_voi_lut prefers the LUT; a plain LUT index array for integer modality values
        out = apply_voi_lut(m if np.any(m != np.round(m)) else m.astype(np.int64), d, prefer_lut=True)
        bits = int(ds.VOILUTSequence[0].LUTDescriptor[2])
        y = out / float(lut_full(np.asarray(ds_lut_values(ds.VOILUTSequence[0])), bits))
    else:
        index = 0
        if voi.startswith("window:"):
            index = int(voi.split(":")[1])
        elif voi.startswith("explicit:"):
            c, w = voi.split(":")[1].split(",")
            d.WindowCenter, d.WindowWidth = c, w
        y_min, y_max = y_range(d)
        out = apply_windowing(m, d, index)
        y = (out - y_min) / (y_max - y_min)
    if pi == "MONOCHROME1":
        y = 1 - y
    y = np.where(pad, 0.0, y)
    return y[..., None], int(pad.sum())


def ds_lut_values(item):
    if item["LUTData"].VR == "OW":
        n = item.LUTDescriptor[0] or 65536
        return struct.unpack("<%dH" % n, item.LUTData)
    return list(item.LUTData)


CORPUS = [
    # name, file, frame, what, voi, stride
    ("ct_mod", "pydicom-test-files/CT_small.dcm", 0, "modality", "-", 4),
    ("ct_auto", "pydicom-test-files/CT_small.dcm", 0, "display", "default", 4),
    ("ct_explicit", "pydicom-test-files/CT_small.dcm", 0, "display", "explicit:40,400", 4),
    ("mr_mod", "pydicom-test-files/MR_small.dcm", 0, "modality", "-", 2),
    ("mr_window", "pydicom-test-files/MR_small.dcm", 0, "display", "default", 2),
    ("mr_auto", "pydicom-test-files/MR_small.dcm", 0, "display", "auto", 2),
    ("cr_mono1_mod", "pydicom-test-files/dicomdirtests/77654033/CR1/6154", 0, "modality", "-", 1),
    ("cr_mono1", "pydicom-test-files/dicomdirtests/77654033/CR1/6154", 0, "display", "default", 1),
    ("cr_mono1_auto", "pydicom-test-files/dicomdirtests/77654033/CR1/6154", 0, "display", "auto", 1),
    ("cr3_mono1", "pydicom-test-files/dicomdirtests/77654033/CR3/6278", 0, "display", "default", 1),
    ("j2k_w0", "pydicom-test-files/J2K_pixelrep_mismatch.dcm", 0, "display", "window:0", 16),
    ("j2k_w1", "pydicom-test-files/J2K_pixelrep_mismatch.dcm", 0, "display", "window:1", 16),
    ("j2k_w2", "pydicom-test-files/J2K_pixelrep_mismatch.dcm", 0, "display", "window:2", 16),
    ("j2k_auto", "pydicom-test-files/J2K_pixelrep_mismatch.dcm", 0, "display", "auto", 16),
    ("rgb16_f0", "pydicom-test-files/SC_rgb_rle_16bit_2frame.dcm", 0, "display", "default", 4),
    ("rgb16_f1", "pydicom-test-files/SC_rgb_rle_16bit_2frame.dcm", 1, "display", "default", 4),
    ("rgb16_mod_f1", "pydicom-test-files/SC_rgb_rle_16bit_2frame.dcm", 1, "modality", "-", 4),
    ("ybr422", "pydicom-test-files/SC_ybr_full_422_uncompressed.dcm", 0, "display", "default", 4),
    ("rgb8_odd", "pydicom-test-files/SC_rgb_small_odd.dcm", 0, "display", "default", 1),
    ("rtdose_f7_auto", "pydicom-test-files/rtdose.dcm", 7, "display", "default", 1),
    ("rtdose_f14_mod", "pydicom-test-files/rtdose.dcm", 14, "modality", "-", 1),
    ("liver_1bit", "pydicom-test-files/liver_1frame.dcm", 0, "display", "default", 16),
]

LOCAL = [
    ("mlut16_mod", "mlut16.dcm", 0, "modality", "-"),
    ("mlut16_window", "mlut16.dcm", 0, "display", "default"),
    ("mlut16_auto", "mlut16.dcm", 0, "display", "auto"),
    ("mlut_signed_mod", "mlut_signed.dcm", 0, "modality", "-"),
    ("mlut_signed_auto", "mlut_signed.dcm", 0, "display", "default"),
    ("signed12_mod_f0", "signed12.dcm", 0, "modality", "-"),
    ("signed12_auto_f0", "signed12.dcm", 0, "display", "default"),
    ("signed12_auto_f2", "signed12.dcm", 2, "display", "auto"),
    ("signed12_explicit_f1", "signed12.dcm", 1, "display", "explicit:500,3000"),
    ("voilut8", "voilut8.dcm", 0, "display", "default"),
    ("voilut16_w0", "voilut16.dcm", 0, "display", "default"),
    ("voilut16_w1", "voilut16.dcm", 0, "display", "window:1"),
    ("voilut16_lut", "voilut16.dcm", 0, "display", "lut"),
    ("sigmoid_w0", "sigmoid.dcm", 0, "display", "window:0"),
    ("sigmoid_w1", "sigmoid.dcm", 0, "display", "window:1"),
    ("sigmoid_explicit", "sigmoid.dcm", 0, "display", "explicit:1500,300"),
    ("linexact_w0", "linexact.dcm", 0, "display", "window:0"),
    ("linexact_w1", "linexact.dcm", 0, "display", "window:1"),
    ("padrange_mod", "padrange.dcm", 0, "modality", "-"),
    ("padrange_window", "padrange.dcm", 0, "display", "default"),
    ("padrange_auto", "padrange.dcm", 0, "display", "auto"),
    ("padrange_rev_window", "padrange_rev.dcm", 0, "display", "default"),
    ("padrange_rev_auto", "padrange_rev.dcm", 0, "display", "auto"),
    ("pal8", "pal8.dcm", 0, "display", "default"),
    ("pal16", "pal16.dcm", 0, "display", "default"),
    ("pal16_mod", "pal16.dcm", 0, "modality", "-"),
    ("palseg8", "palseg8.dcm", 0, "display", "default"),
    ("palseg16", "palseg16.dcm", 0, "display", "default"),
]


def main():
    shared, outdir = sys.argv[1], sys.argv[2]
    os.makedirs(outdir, exist_ok=True)
    for f in os.listdir(outdir):
        if f.endswith((".f32", ".dcm")) or f == "cases.txt":
            os.remove(os.path.join(outdir, f))
    synthetic(outdir)
    cases = [(n, "shared:" + f, fr, w, v, st) for n, f, fr, w, v, st in CORPUS]
    cases += [(n, "local:" + f, fr, w, v, 1) for n, f, fr, w, v in LOCAL]
    lines = []
    for name, src, frame, what, voi, stride in cases:
        kind, rel = src.split(":", 1)
        path = os.path.join(shared if kind == "shared" else outdir, rel)
        ds = pydicom.dcmread(path)
        s = stored(ds)[frame]
        vals, npad = render(ds, s, what, voi)
        means = ",".join("%.17g" % vals[..., c].mean() for c in range(vals.shape[-1]))
        kept = vals[::stride, ::stride, :].astype("<f4")
        kept.tofile(os.path.join(outdir, name + ".f32"))
        lines.append("%s %s %d %s %s %d %d %s" % (name, src, frame, what, voi, stride, npad, means))
    with open(os.path.join(outdir, "cases.txt"), "w") as f:
        f.write("# made by tests/data/make_render_expected.py (pydicom %s, numpy %s); see its docstring\n"
                % (pydicom.__version__, np.__version__))
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
