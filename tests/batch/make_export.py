#!/usr/bin/python3
"""An export like a PACS gives one, for the `radfuse batch` tests.

Studies are covid-chestxray rows made by `radfuse dataset study` (one CR image, the row's
note and labs), laid out in every way the batch must handle:

  row % 10 in 0..5  ROOT/tree/p<row>/[study/]<row>.dcm with note*.txt and labs*.csv beside it
                    (the folder convention; row % 10 == 5 uses other names of the pattern)
  row % 10 == 6     ROOT/flat/<row>.dcm, notes and labs in SIDE/<row>/, paired by study UID
  row % 10 == 7     the same, paired by AccessionNumber (set to ACC<row>)
  row % 10 == 8     ROOT/bare/<row>/<row>.dcm, no notes or labs
  row % 10 == 9     an entry of ROOT/archive.zip; every other one paired by the manifest
and transfer syntaxes by row % 7: 1 implicit VR little endian, 2 explicit VR big endian,
3 JPEG lossless, 5 RLE, 6 JPEG-LS lossless (dcmconv, dcmcjpeg, dcmcrle, dcmcjpls), else
explicit VR little endian as made. Row 1 names row 0 (the same patient, 3 days earlier) as its
prior through the manifest. The manifest has one row that names no study of the export.

--frontal-only leaves out the rows the model rejects (lateral views only). --pydicom adds pydicom's test files (ROOT/pydicom: studies of other modalities the model
rejects, a DICOMDIR with a CR study it reads, files that are no DICOM or broken); --broken adds
ROOT/broken/ (an empty file, garbage after a DICM preamble, a file cut in its header).

Writes WORK/expect.json: per row its StudyInstanceUID, the paths of its DICOM file, notes and
labs as `radfuse read` takes them, its prior, whether its only image is a lateral view (from
metadata.csv: the model reads frontal views only); the broken files (relative to ROOT).
"""
import argparse
import concurrent.futures
import csv
import json
import os
import shutil
import subprocess
import sys
import zipfile


def run(cmd, ok=(0,), **kw):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
    if r.returncode not in ok:
        sys.exit("make_export: %s failed: %s" % (" ".join(cmd), r.stderr.strip()))
    return r.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--shared", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--studies", type=int, required=True)
    ap.add_argument("--first", type=int, default=0)
    ap.add_argument("--pydicom", action="store_true")
    ap.add_argument("--broken", action="store_true")
    ap.add_argument("--frontal-only", action="store_true", help="leave out rows whose image is a lateral view")
    a = ap.parse_args()
    covid = os.path.join(a.shared, "data", "covid-chestxray")
    work = os.path.abspath(a.work)
    gen, root, side = (os.path.join(work, d) for d in ("gen", "root", "side"))
    for d in (gen, root, side):
        os.makedirs(d, exist_ok=True)
    with open(os.path.join(covid, "metadata.csv"), newline="") as f:
        meta = list(csv.DictReader(f))
    rows = [r for r in range(a.first, len(meta)) if not (a.frontal_only and meta[r]["view"].strip() == "L")]
    rows = rows[:a.studies]
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)
    list(pool.map(lambda r: run([a.bin, "dataset", "study", "--data", covid, "--row", str(r), "--out",
                                 os.path.join(gen, str(r))]), rows))
    uid = {}
    # notes, labs and ATTRIBUTION.txt are listed as no DICOM (exit status 2)
    for line in run([a.bin, "dicom", "ls", gen, "--json"], ok=(0, 2)).splitlines():
        j = json.loads(line)
        if not j["path"].endswith(".dcm"):
            continue
        r = int(os.path.basename(j["path"]).split(".")[0])
        uid[r] = j["study_instance_uid"]

    # the view column says which studies have no frontal image (lateral only): the model rejects them
    views = [row["view"].strip() for row in meta]
    manifest = []
    expect = {"rows": {}, "broken": [], "manifest_unmatched": 1}
    def transcode(r):
        dcm = os.path.join(gen, str(r), "study", "%d.dcm" % r)
        tmp = dcm + ".x"
        tool = {1: ["dcmconv", "+ti"], 2: ["dcmconv", "+tb"], 3: ["dcmcjpeg"], 5: ["dcmcrle"], 6: ["dcmcjpls"]}
        if r % 7 in tool:
            run(tool[r % 7] + [dcm, tmp])
            os.replace(tmp, dcm)
        if r % 10 == 7:
            run(["dcmodify", "-nb", "-i", "(0008,0050)=ACC%d" % r, dcm])

    list(pool.map(transcode, rows))
    zf = zipfile.ZipFile(os.path.join(root, "archive.zip"), "w", zipfile.ZIP_DEFLATED)
    for r in rows:
        k = r % 10
        src = os.path.join(gen, str(r))
        dcm = os.path.join(src, "study", "%d.dcm" % r)
        note = os.path.join(src, "note.txt")
        labs = os.path.join(src, "labs.csv")
        has_note, has_labs = os.path.exists(note), os.path.exists(labs)
        e = {"uid": uid[r], "notes": [], "labs": [], "prior": None, "where": "", "lateral": views[r] == "L",
             "patient_id": "COVID-" + meta[r]["patientid"].strip()}
        if k <= 5:
            folder = os.path.join(root, "tree", "p%d" % r)
            ddir = os.path.join(folder, "study") if k % 2 == 0 else folder
            os.makedirs(ddir, exist_ok=True)
            dst = os.path.join(ddir, "%d.dcm" % r)
            shutil.copy(dcm, dst)
            nname, lname = ("note_clinical.txt", "labs_1.csv") if k == 5 else ("note.txt", "labs.csv")
            if has_note:
                shutil.copy(note, os.path.join(folder, nname))
                e["notes"].append(os.path.join(folder, nname))
            if has_labs:
                shutil.copy(labs, os.path.join(folder, lname))
                e["labs"].append(os.path.join(folder, lname))
            e["study"], e["where"] = dst, "folder"
        elif k in (6, 7):
            os.makedirs(os.path.join(root, "flat"), exist_ok=True)
            dst = os.path.join(root, "flat", "%d.dcm" % r)
            shutil.copy(dcm, dst)
            sd = os.path.join(side, str(r))
            os.makedirs(sd, exist_ok=True)
            rel = []
            if has_note:
                shutil.copy(note, os.path.join(sd, "note.txt"))
                e["notes"].append(os.path.join(sd, "note.txt"))
                rel.append("%d/note.txt" % r)
            lrel = ""
            if has_labs:
                shutil.copy(labs, os.path.join(sd, "labs.csv"))
                e["labs"].append(os.path.join(sd, "labs.csv"))
                lrel = "%d/labs.csv" % r
            manifest.append({"study_instance_uid": uid[r] if k == 6 else "",
                             "accession_number": "ACC%d" % r if k == 7 else "",
                             "notes": ";".join(rel), "labs": lrel, "prior_study_instance_uid": ""})
            e["study"], e["where"] = dst, "manifest"
        elif k == 8:
            d = os.path.join(root, "bare", str(r))
            os.makedirs(d, exist_ok=True)
            dst = os.path.join(d, "%d.dcm" % r)
            shutil.copy(dcm, dst)
            e["study"], e["where"] = dst, "none"
        else:
            zf.write(dcm, "e/%d.dcm" % r)
            e["study"], e["where"] = os.path.join(root, "archive.zip"), "none"
            if r % 20 == 9 and (has_note or has_labs):
                sd = os.path.join(side, str(r))
                os.makedirs(sd, exist_ok=True)
                notes = []
                if has_note:
                    shutil.copy(note, os.path.join(sd, "note.txt"))
                    e["notes"].append(os.path.join(sd, "note.txt"))
                    notes.append(os.path.join(sd, "note.txt"))  # absolute paths are taken as they are
                if has_labs:
                    shutil.copy(labs, os.path.join(sd, "labs.csv"))
                    e["labs"].append(os.path.join(sd, "labs.csv"))
                manifest.append({"study_instance_uid": uid[r], "accession_number": "", "notes": ";".join(notes),
                                 "labs": "%d/labs.csv" % r if has_labs else "", "prior_study_instance_uid": ""})
                e["where"] = "manifest"
        expect["rows"][str(r)] = e
    zf.close()
    # row 1's prior is row 0 (patient 2, 3 days earlier), through the manifest
    if 0 in uid and 1 in uid:
        e = expect["rows"]["1"]
        manifest.append({"study_instance_uid": uid[1], "accession_number": "", "notes": ";".join(e["notes"]),
                         "labs": ";".join(e["labs"]), "prior_study_instance_uid": uid[0]})
        e["prior"] = expect["rows"]["0"]["study"]
        e["where"] = "manifest"
    manifest.append({"study_instance_uid": "1.2.3.4.5.6.7.8.9", "accession_number": "", "notes": "",
                     "labs": "", "prior_study_instance_uid": ""})
    with open(os.path.join(side, "manifest.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["study_instance_uid", "accession_number", "notes", "labs",
                                          "prior_study_instance_uid"])
        w.writeheader()
        w.writerows(manifest)
    if a.pydicom:
        shutil.copytree(os.path.join(a.shared, "data", "dicom", "pydicom-test-files"), os.path.join(root, "pydicom"))
    if a.broken:
        b = os.path.join(root, "broken")
        os.makedirs(b)
        open(os.path.join(b, "empty.dcm"), "wb").close()
        with open(os.path.join(b, "garbage.dcm"), "wb") as f:
            f.write(b"\0" * 128 + b"DICM" + bytes((i * 37 + 11) % 256 for i in range(4000)))
        ct = os.path.join(a.shared, "data", "dicom", "pydicom-test-files", "CT_small.dcm")
        with open(ct, "rb") as f, open(os.path.join(b, "truncated.dcm"), "wb") as g:
            g.write(f.read(300))
        expect["broken"] = ["broken/empty.dcm", "broken/garbage.dcm", "broken/truncated.dcm"]
    shutil.rmtree(gen)
    with open(os.path.join(work, "expect.json"), "w") as f:
        json.dump(expect, f, indent=1)


if __name__ == "__main__":
    main()
