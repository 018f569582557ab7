#!/usr/bin/python3
"""Checks of a `radfuse batch` output directory for the batch tests (prints what fails, exit 1).

  check.py once OUT [--studies N]
      results.jsonl is whole lines, one per study (no StudyInstanceUID twice), each with its
      folder studies/<key>/result.json of the same study (key: SHA-256 of the UID, 16 hex
      digits), no folder without a line, no leftover temporary file or folder anywhere;
      with --studies, exactly N lines.
  check.py same OUT REF [--tol T]
      OUT and REF hold the same studies with the same probabilities per finding (|diff| <= T,
      default 0) and the same failed studies and files in errors.jsonl.
  check.py export WORK OUT LS_JSON
      the end-to-end expectations of an export made by make_export.py: every study expected
      to succeed exactly once in results.jsonl and every other one failed in errors.jsonl;
      pairing of notes, labs and the prior as built; every file that `radfuse dicom ls`
      (LS_JSON, its --json output over ROOT/pydicom) cannot read, every broken file and the
      manifest's row without a study in errors.jsonl as files; no patient identifier.
  check.py read OUT UID READ_JSON [--tol T]
      the study's results.jsonl line against `radfuse read --json` of the same inputs: the
      same findings, probabilities (|diff| <= T, default 1e-6), images used, notes, labs and
      warnings.
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys

fails = []


def fail(msg):
    fails.append(msg)
    print("check: " + msg, file=sys.stderr)


def key(uid):
    return hashlib.sha256(uid.encode()).hexdigest()[:16]


def results(out):
    path = os.path.join(out, "results.jsonl")
    data = open(path, "rb").read()
    if data and not data.endswith(b"\n"):
        fail("%s: the last line is partial" % path)
    res = {}
    for n, line in enumerate(data.split(b"\n")[:-1] if data else [], 1):
        try:
            j = json.loads(line)
        except ValueError:
            fail("%s:%d: not JSON" % (path, n))
            continue
        uid = j["study"]["study_instance_uid"]
        if uid in res:
            fail("%s:%d: study %s a second time" % (path, n, uid))
        res[uid] = j
    return res


def errors(out):
    path = os.path.join(out, "errors.jsonl")
    files, studies = {}, {}
    if not os.path.exists(path):
        return files, studies
    for line in open(path):
        j = json.loads(line)
        if j["kind"] == "file":
            files[j["path"]] = j
        else:
            studies[j["study_instance_uid"]] = j
    return files, studies


def probs(j):
    return {f["code"]: f["probability"] for f in j["findings"]}


def cmd_once(a):
    res = results(a.out)
    if a.studies is not None and len(res) != a.studies:
        fail("%d studies in results.jsonl, expected %d" % (len(res), a.studies))
    sdir = os.path.join(a.out, "studies")
    keys = {key(u): u for u in res}
    have = set(os.listdir(sdir)) if os.path.isdir(sdir) else set()
    for k, u in keys.items():
        rj = os.path.join(sdir, k, "result.json")
        if not os.path.exists(rj):
            fail("study %s: no %s" % (u, rj))
            continue
        if json.load(open(rj))["study"]["study_instance_uid"] != u:
            fail("%s: of another study" % rj)
    for k in have - set(keys):
        fail("studies/%s: a folder without a line in results.jsonl" % k)
    for d, dirs, files in os.walk(a.out):
        for n in dirs + files:
            if ".tmp" in n:
                fail("a leftover temporary: %s" % os.path.join(d, n))


def cmd_same(a):
    r1, r2 = results(a.out), results(a.ref)
    if set(r1) != set(r2):
        fail("studies differ: %d only in %s, %d only in %s" % (len(set(r1) - set(r2)), a.out,
                                                                 len(set(r2) - set(r1)), a.ref))
    worst = 0.0
    for u in set(r1) & set(r2):
        p1, p2 = probs(r1[u]), probs(r2[u])
        if set(p1) != set(p2):
            fail("study %s: findings differ" % u)
            continue
        for c in p1:
            d = abs(p1[c] - p2[c])
            worst = max(worst, d)
            if d > a.tol:
                fail("study %s finding %s: %.9g vs %.9g" % (u, c, p1[c], p2[c]))
    f1, s1 = errors(a.out)
    f2, s2 = errors(a.ref)
    if set(f1) != set(f2):
        fail("failed files differ: %s" % sorted(set(f1) ^ set(f2))[:5])
    if set(s1) != set(s2):
        fail("failed studies differ: %s" % sorted(set(s1) ^ set(s2))[:5])
    print("check: %d studies, largest probability difference %.3g" % (len(r1), worst))


# files that are no DICOM by their name (batch/discover.c, bt_not_dicom_name; docs/batch.md):
# ignored when they do not read as DICOM and have no DICM preamble
DOC_EXT = {"txt", "md", "markdown", "rst", "html", "htm", "pdf", "csv", "tsv", "json", "xml", "yaml", "yml", "log",
           "rtf", "doc", "docx", "odt", "xls", "xlsx", "ods", "png", "jpg", "jpeg", "gif", "bmp", "svg", "webp",
           "ini", "sha256", "md5"}
DOC_STEM = {"readme", "license", "licence", "copying", "notice", "authors", "changelog", "attribution", "citation"}
DOC_NAME = {".ds_store", "thumbs.db", "desktop.ini"}


def ignored(path):
    base = os.path.basename(path).lower()
    stem, dot, ext = base.rpartition(".")
    if not stem:
        stem, ext = base, ""
    if not (base in DOC_NAME or ext in DOC_EXT or stem in DOC_STEM):
        return False
    with open(path, "rb") as f:
        return f.read(132)[128:132] != b"DICM"


def cmd_export(a):
    ex = json.load(open(os.path.join(a.work, "expect.json")))
    res = results(a.out)
    ferr, serr = errors(a.out)
    good, bad = set(), set()
    for r, e in ex["rows"].items():
        (bad if e["lateral"] else good).add(e["uid"])
    # pydicom's studies: done when `dicom ls` selects a CR or DX image (the model reads those)
    ls_studies, ls_bad = {}, []
    for line in open(a.ls_json):
        j = json.loads(line)
        rel = os.path.relpath(os.path.abspath(j["path"]), os.path.join(os.path.abspath(a.work), "root"))
        if j.get("kind") == "dicomdir":
            continue
        if j["status"] != "ok":
            ls_bad.append(rel)
            continue
        ok = j.get("selected") and j.get("modality") in ("CR", "DX")
        u = j["study_instance_uid"]
        ls_studies[u] = ls_studies.get(u, False) or bool(ok)
    for u, ok in ls_studies.items():
        (good if ok else bad).add(u)
    # a file `dicom ls` cannot read is reported as a bad file, or, when DCMTK's dcmdump finds
    # its StudyInstanceUID, maybe as part of its study, which then fails or lists it as skipped
    uid_of = {}
    for rel in ls_bad:
        r = subprocess.run(["dcmdump", "-q", "+P", "0020,000d", os.path.join(a.work, "root", rel)],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        if r.returncode == 0 and "[" in r.stdout:
            uid_of[rel] = r.stdout.split("[", 1)[1].split("]", 1)[0]
    for u in good - set(res):
        fail("study %s: not in results.jsonl" % u)
    for u in set(res) - good:
        fail("study %s: in results.jsonl, not expected to succeed" % u)
    for u in bad - set(serr):
        if u in ls_studies or u not in uid_of.values():
            fail("study %s: not among the failed studies of errors.jsonl" % u)
    for u in set(serr) - bad:
        if u not in uid_of.values():
            fail("study %s: failed (%s), not expected to" % (u, serr[u]["reason"]))
    for p in ex["broken"]:
        if p not in ferr:
            fail("file %s: not in errors.jsonl" % p)
    root = os.path.join(a.work, "root")
    skip = {p for p in ls_bad if os.path.isfile(os.path.join(root, p)) and ignored(os.path.join(root, p))}
    for p in skip & set(ferr):
        fail("file %s: in errors.jsonl, but no DICOM by its name: ignored" % p)
    for p in ls_bad:
        if p not in skip and p not in ferr and uid_of.get(p) not in set(serr) | set(res):
            fail("file %s: not in errors.jsonl, nor its study" % p)
    if sum(1 for p in ferr if p.startswith("manifest line")) != ex["manifest_unmatched"]:
        fail("the manifest's row without a study is not in errors.jsonl")
    for p in ferr:
        if not (p in ex["broken"] or p in ls_bad or p.startswith("manifest line")):
            fail("file %s: in errors.jsonl (%s), not expected" % (p, ferr[p]["reason"]))
    for r, e in ex["rows"].items():
        j = res.get(e["uid"])
        if not j:
            continue
        if len(j["notes"]) != len(e["notes"]):
            fail("row %s (%s): %d notes in the result, %d paired" % (r, e["where"], len(j["notes"]), len(e["notes"])))
        if bool(j["labs"]) != bool(e["labs"]):
            fail("row %s (%s): labs %s in the result, %d files paired" % (r, e["where"], bool(j["labs"]),
                                                                          len(e["labs"])))
        if e["prior"]:
            prior_uid = ex["rows"]["0"]["uid"]
            if j["study"].get("prior_study_instance_uid") != prior_uid or not j["inputs_used"].get("prior"):
                fail("row %s: the prior %s was not read: %s" % (r, prior_uid, j["study"]))
    # no patient identifiers or full paths (a finding's display name may be anything)
    pids = {e["patient_id"] for e in ex["rows"].values()}
    work = os.path.abspath(a.work)

    def walk(v, where):
        if isinstance(v, dict):
            for k, x in v.items():
                if k.startswith("patient") or k == "accession_number":
                    fail("%s: holds %s" % (where, k))
                if k != "display":
                    walk(x, where)
        elif isinstance(v, list):
            for x in v:
                walk(x, where)
        elif isinstance(v, str) and (v in pids or work in v):
            fail("%s: holds '%s' (patient data or a full path)" % (where, v))

    for u, j in res.items():
        walk(j, "result of " + u)
    print("check: %d studies done, %d failed, %d files in errors.jsonl" % (len(res), len(serr), len(ferr)))


def cmd_read(a):
    res = results(a.out)
    j = res.get(a.uid)
    r = json.load(open(a.read_json))
    if not j:
        fail("study %s: not in results.jsonl" % a.uid)
        return
    p1, p2 = probs(j), probs(r)
    if set(p1) != set(p2):
        fail("study %s: findings differ from radfuse read" % a.uid)
    for c in set(p1) & set(p2):
        if abs(p1[c] - p2[c]) > a.tol:
            fail("study %s finding %s: batch %.9g, read %.9g" % (a.uid, c, p1[c], p2[c]))
    # saliency: each finding's input weights, and its maps' peaks and text spans
    ev = lambda x: {f["code"]: (f["input_weights"], [(m.get("peak_row"), m.get("peak_col")) for m in f["image_evidence"]],
                                [(t["note"], t["begin"], t["end"]) for t in f["text_evidence"]]) for f in x["findings"]}
    e1, e2 = ev(j), ev(r)
    for c in set(e1) & set(e2):
        w1, w2 = e1[c][0], e2[c][0]
        if set(w1) != set(w2) or any(abs(w1[k] - w2[k]) > 1e-5 for k in w1) or e1[c][1:] != e2[c][1:]:
            fail("study %s finding %s: saliency differs from radfuse read" % (a.uid, c))
    for field in ("notes", "labs", "warnings", "inputs_used"):
        if j[field] != r[field]:
            fail("study %s: %s differ from radfuse read: %s vs %s" % (a.uid, field, j[field], r[field]))
    used = lambda x: [(i["file"], i["sop_instance_uid"], i["used"], i["reason"]) for i in x["images"]]
    if used(j) != used(r):
        fail("study %s: images differ from radfuse read" % a.uid)
    if [t["stage"] for t in j["timings"]] != [t["stage"] for t in r["timings"] if t["stage"] != "write"]:
        fail("study %s: timing stages differ from radfuse read" % a.uid)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("once")
    p.add_argument("out")
    p.add_argument("--studies", type=int)
    p = sub.add_parser("same")
    p.add_argument("out")
    p.add_argument("ref")
    p.add_argument("--tol", type=float, default=0.0)
    p = sub.add_parser("export")
    p.add_argument("work")
    p.add_argument("out")
    p.add_argument("ls_json")
    p = sub.add_parser("read")
    p.add_argument("out")
    p.add_argument("uid")
    p.add_argument("read_json")
    p.add_argument("--tol", type=float, default=1e-6)
    a = ap.parse_args()
    {"once": cmd_once, "same": cmd_same, "export": cmd_export, "read": cmd_read}[a.cmd](a)
    sys.exit(1 if fails else 0)


if __name__ == "__main__":
    main()
