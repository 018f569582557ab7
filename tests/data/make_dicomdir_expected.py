#!/usr/bin/python3
"""Writes tests/data/dicomdir_expected.txt: what radfuse's inputs, grouping,
ordering and selection must say about shared/data/dicom/pydicom-test-files/
dicomdirtests, worked out independently of radfuse with pydicom.

Made with Debian 12's python3-pydicom 2.3.1:
    apt-get install python3-pydicom
    /usr/bin/python3 tests/data/make_dicomdir_expected.py \\
        ../shared/data/dicom/pydicom-test-files/dicomdirtests > tests/data/dicomdir_expected.txt

Lines, tab-separated:
    dicomdir  NAME  RECORDS  REFS    a DICOMDIR (by its Media Storage SOP Class): how many
                                     directory records, how many with a ReferencedFileID
    ref  NAME  PATH                  each referenced file of DICOMDIR NAME, in record order,
                                     as a path relative to the DICOMDIR's directory
    file  PATH  STUDY  SERIES  INDEX  SELECTED  WORD
                                     each instance the DICOMDIR named "DICOMDIR" references:
                                     its study and series UIDs, its 0-based place in its
                                     series, 1 when chosen for a model, and the first word
                                     of the reason radfuse must give

Ordering (docs/imaging.md): InstanceNumber (absent last), then the position along
the slice normal (row x column cosines of ImageOrientationPatient, dot
ImagePositionPatient; absent last), then SOPInstanceUID, then path.

Selection, the rules of docs/imaging.md restated for what this corpus holds:
  - ImageType with LOCALIZER, or a localizer word in SeriesDescription: "localizer"
  - ImageType's second value SECONDARY: "derived"
  - CR: ViewPosition AP/PA: "frontal" (chosen); LL/RL: "lateral"
  - CT, MR: per study, the series left after the skips ranked axial first (normal
    within ~37 degrees of z), then ORIGINAL, then most slices: the best is chosen
    (reason starts with "series"), the others not ("series" too, "not chosen")
"""
import math
import os
import sys
import warnings

import pydicom

warnings.filterwarnings("ignore")

DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
LOCALIZER_WORDS = {"LOCALIZER", "LOCALISER", "SCOUT", "SURVEY", "PILOT", "TOPOGRAM", "SCANOGRAM",
                   "SCOUTVIEW", "LOCATOR"}


def words(s):
    out, w = [], ""
    for ch in str(s):
        if ch.isalnum() and ch.isascii():
            w += ch.upper()
        else:
            if w:
                out.append(w)
            w = ""
    if w:
        out.append(w)
    return out


def normal(ds):
    iop = ds.get("ImageOrientationPatient")
    if not iop or len(iop) != 6:
        return None
    r, c = [float(v) for v in iop[:3]], [float(v) for v in iop[3:]]
    n = [r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0]]
    length = math.sqrt(sum(v * v for v in n))
    return [v / length for v in n] if length > 1e-6 else None


def sort_key(item):
    path, ds = item
    inum = ds.get("InstanceNumber")
    n = normal(ds)
    ipp = ds.get("ImagePositionPatient")
    pos = sum(a * float(b) for a, b in zip(n, ipp)) if n and ipp and len(ipp) == 3 else None
    return (inum is None, int(inum) if inum is not None else 0, pos is None, pos if pos is not None else 0.0,
            str(ds.SOPInstanceUID), path)


def skip_word(ds):
    it = [str(v) for v in ds.get("ImageType", [])]
    if "LOCALIZER" in it or LOCALIZER_WORDS & set(words(ds.get("SeriesDescription", ""))):
        return "localizer"
    if len(it) > 1 and it[1] == "SECONDARY":
        return "derived"
    return None


def main():
    root = sys.argv[1]
    print("# made by tests/data/make_dicomdir_expected.py with pydicom %s (see the script)" % pydicom.__version__)
    main_refs = []
    for d, _, names in sorted(os.walk(root)):
        for n in sorted(names):
            p = os.path.join(d, n)
            try:
                ds = pydicom.dcmread(p, stop_before_pixels=True)
            except Exception:  # noqa: BLE001
                continue
            if str(ds.file_meta.get("MediaStorageSOPClassUID", "")) != DICOMDIR_CLASS:
                continue
            rel = os.path.relpath(p, root)
            recs = ds.get("DirectoryRecordSequence", [])
            refs = []
            for r in recs:
                fid = r.get("ReferencedFileID")
                if fid:
                    parts = [fid] if isinstance(fid, str) else list(fid)
                    refs.append("/".join(parts))
            print("dicomdir\t%s\t%d\t%d" % (rel, len(recs), len(refs)))
            for f in refs:
                print("ref\t%s\t%s" % (rel, f))
            if rel == "DICOMDIR":
                main_refs = refs

    items = [(f, pydicom.dcmread(os.path.join(root, f), stop_before_pixels=True)) for f in main_refs]
    series = {}
    for path, ds in items:
        series.setdefault((str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID)), []).append((path, ds))
    place = {}
    for key, members in series.items():
        for i, (path, ds) in enumerate(sorted(members, key=sort_key)):
            place[path] = i
    decision = {}
    for path, ds in items:
        w = skip_word(ds)
        if w:
            decision[path] = (0, w)
        elif ds.Modality == "CR":
            vp = str(ds.get("ViewPosition", ""))
            decision[path] = (1, "frontal") if vp in ("AP", "PA") else (0, "lateral")
    # CT, MR: one series per study and modality
    for modality in ("CT", "MR"):
        studies = {}
        for (study, ser), members in series.items():
            left = [(p, ds) for p, ds in members if p not in decision and ds.Modality == modality]
            if left:
                studies.setdefault(study, []).append((ser, left))
        for study, cands in studies.items():
            def score(c):
                _, left = c
                planes = set()
                for _, ds in left:
                    n = normal(ds)
                    planes.add("axial" if n and abs(n[2]) >= 0.8 else "other")
                axial = planes == {"axial"}
                original = all(str(ds.get("ImageType", [""])[0]) == "ORIGINAL" for _, ds in left)
                slices = sum(int(ds.get("NumberOfFrames", 1) or 1) for _, ds in left)
                return (axial, original, slices)
            best = None
            for c in sorted(cands, key=lambda c: (int(c[1][0][1].get("SeriesNumber", 1 << 30)), c[0])):
                if best is None or score(c) > score(best):
                    best = c
            for c in cands:
                for p, _ in c[1]:
                    decision[p] = (1 if c is best else 0, "series")
    for path, ds in sorted(items, key=lambda x: x[0]):
        sel, w = decision[path]
        print("file\t%s\t%s\t%s\t%d\t%d\t%s" % (path, ds.StudyInstanceUID, ds.SeriesInstanceUID, place[path], sel, w))


main()
