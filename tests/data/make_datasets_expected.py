#!/usr/bin/python3
"""Expected values of radfuse's covid-chestxray loader and patient split, from
Python's csv, hmac and hashlib modules (an implementation other than
radfuse's CSV reader, target mapping, HMAC and split).

usage: make_datasets_expected.py DATA_DIR -> one JSON object:
  rows, patients: counts
  targets: {name: [positives, negatives, unknown]}
  sample: rows (the first row of every distinct finding string, and a few
          more): index, id, patient, view, frontal, sex, age, offset, note,
          nlabs, license, targets
  hash: {patient: HMAC-SHA-256 hash in [0, 1)} for every patient
  split: {patient: side} of the default stratified split (key radfuse-split-1,
         0.70 / 0.15 / 0.15), as docs/datasets.md describes it
"""
import csv
import hashlib
import hmac
import json
import math
import sys

KEY = b"radfuse-split-1"
FINDING = ["covid19", "viral", "bacterial", "fungal", "pneumonia", "ards", "no_finding"]
OUTCOMES = ["survival", "intubated", "went_icu", "needed_supplemental_O2"]
LABS = ["temperature", "pO2_saturation", "leukocyte_count", "neutrophil_count", "lymphocyte_count"]

# the documented mapping, by kind of term
VIRAL = {"SARS", "MERS-CoV", "MERS", "Influenza", "Varicella", "Herpes"}
BACTERIAL = {"Bacterial", "Klebsiella", "Streptococcus", "Staphylococcus", "E.Coli", "Legionella", "Mycoplasma",
             "Mycoplasma Bacterial Pneumonia", "Chlamydophila", "Nocardia"}
FUNGAL = {"Fungal", "Pneumocystis", "Aspergillosis"}


def term_says(term):
    """{target: 1 or 0} for the targets the term speaks of; None when unknown."""
    none_infectious = {"covid19": 0, "viral": 0, "bacterial": 0, "fungal": 0, "pneumonia": 0}
    if term == "COVID-19":
        return {"covid19": 1, "viral": 1, "bacterial": 0, "fungal": 0, "pneumonia": 1, "ards": 0, "no_finding": 0}
    if term in VIRAL or term == "Viral":
        d = {"viral": 1, "bacterial": 0, "fungal": 0, "pneumonia": 1, "ards": 0, "no_finding": 0}
        if term != "Viral":
            d["covid19"] = 0
        return d
    if term in BACTERIAL:
        return {"covid19": 0, "viral": 0, "bacterial": 1, "fungal": 0, "pneumonia": 1, "ards": 0, "no_finding": 0}
    if term in FUNGAL:
        return {"covid19": 0, "viral": 0, "bacterial": 0, "fungal": 1, "pneumonia": 1, "ards": 0, "no_finding": 0}
    if term == "Pneumonia":
        return {"pneumonia": 1, "ards": 0, "no_finding": 0}
    if term == "ARDS":
        return {"ards": 1, "no_finding": 0}
    if term == "Lipoid":
        return dict(none_infectious, ards=0, no_finding=0)
    if term == "No Finding":
        return dict(none_infectious, ards=0, no_finding=1)
    return None


def finding_targets(finding):
    said = []
    for part in finding.replace("/", ",").split(","):
        part = part.strip()
        if part:
            s = term_says(part)
            if s is None:
                return [-1] * len(FINDING)
            said.append(s)
    if not said:
        return [-1] * len(FINDING)
    out = []
    for t in FINDING:
        vals = {s[t] for s in said if t in s}
        out.append(1 if 1 in vals else 0 if 0 in vals else -1)
    return out


def yes_no(v):
    return {"Y": 1, "N": 0}.get(v.strip(), -1)


def nlabs(r):
    n = 0
    for i, k in enumerate(LABS):
        v = r[k].strip()
        if not v:
            continue
        try:
            x = float(v)
        except ValueError:
            continue
        if i == 1 and x > 100:
            continue
        n += 1
    return n


def main():
    data = sys.argv[1]
    with open(f"{data}/metadata.csv", newline="", encoding="utf-8") as f:
        table = [r for r in csv.DictReader(f) if r.get("modality", "X-ray").strip() in ("", "X-ray")]
    targets = [finding_targets(r["finding"]) + [yes_no(r[k]) for k in OUTCOMES] for r in table]
    names = FINDING + OUTCOMES
    counts = {n: [sum(t[k] == v for t in targets) for v in (1, 0, -1)] for k, n in enumerate(names)}
    patients = sorted({r["patientid"].strip() for r in table})

    picks, seen = [], set()
    for i, r in enumerate(table):
        if r["finding"] not in seen:
            seen.add(r["finding"])
            picks.append(i)
    picks += [i for i in (0, 14, 174, 254, 442) if i not in picks]
    sample = []
    for i in sorted(picks):
        r = table[i]
        v = r["view"].strip()
        view = "PA" if v == "PA" else "AP" if v.startswith("AP") else "LL" if v == "L" else ""
        sample.append({
            "index": i, "id": r["filename"].strip(), "patient": r["patientid"].strip(), "view": view,
            "frontal": (0 if view == "LL" else 1) if view else -1, "sex": r["sex"].strip(),
            "age": float(r["age"]) if r["age"].strip() else -1, "offset": r["offset"].strip(),
            "note": r["clinical_notes"].strip(), "nlabs": nlabs(r), "license": r["license"].strip(),
            "targets": targets[i],
        })

    u = {p: int.from_bytes(hmac.new(KEY, p.encode(), hashlib.sha256).digest()[:8], "big") / 2.0**64
         for p in patients}
    # stratified: patients grouped by the finding targets any of their rows is positive for
    stratum = {p: 0 for p in patients}
    for r, t in zip(table, targets):
        for k in range(len(FINDING)):
            if t[k] == 1:
                stratum[r["patientid"].strip()] |= 1 << k
    split = {}
    for s in sorted(set(stratum.values())):
        group = sorted((p for p in patients if stratum[p] == s), key=lambda p: (u[p], p))
        n = len(group)
        ntest = math.floor(n * 0.15 + 0.5)
        nval = math.floor(n * 0.30 + 0.5) - ntest
        for j, p in enumerate(group):
            split[p] = "test" if j < ntest else "val" if j < ntest + nval else "train"

    print(json.dumps({"rows": len(table), "patients": len(patients), "targets": counts, "sample": sample,
                      "hash": u, "split": split}))


if __name__ == "__main__":
    main()
