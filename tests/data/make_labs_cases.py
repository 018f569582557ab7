#!/usr/bin/env python3
"""Writes tests/data/labs/: real lab rows in the three input formats, and the
expected conversions from an independent reference.

- synthea.csv, synthea_fhir.json, synthea.hl7: the same rows of Synthea's
  observations.csv (shared/data/synthea; synthetic patients) as the lab CSV
  layout (code,name,value,unit,low,high,time), as a FHIR R4 Bundle of
  Observations (plus a blood-pressure panel with components, a
  DocumentReference, a DiagnosticReport and a Patient, which must be skipped)
  and as one HL7 v2.5.1 ORU^R01 message. Patient and encounter ids are left out.
- hannover.csv: lab values of shared/data/hannover-covid-cxr by name, without
  units (the source gives none).
- synthea_expected.tsv: per row, the lab radfuse must identify (from this
  script's own LOINC table, not radfuse's), and the value in the lab's
  canonical unit computed with the UCUM reference implementation.
- ucum_factors.tsv: factor and offset from each unit spelling radfuse accepts
  to each lab's canonical unit, from @lhncbc/ucum-lhc (the NLM's UCUM library,
  run through node) with molar masses computed here from molecular formulas
  and IUPAC standard atomic weights. Spellings UCUM does not have (K/uL,
  mEq/L, mmHg, degF, IU/L...) are mapped to their UCUM equal by hand; the
  'source' column says so.

Regenerate (node and npm needed only here, never by the build):
    cd /tmp && npm install @lhncbc/ucum-lhc
    python3 tests/data/make_labs_cases.py --ucum /tmp/node_modules/@lhncbc/ucum-lhc
"""
import argparse
import base64
import csv
import json
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "labs")

# IUPAC abridged standard atomic weights (2021)
ATOMIC = {"H": 1.008, "C": 12.011, "N": 14.007, "O": 15.999, "Na": 22.990, "Cl": 35.45, "K": 39.098, "Ca": 40.078}


def molar_mass(formula):
    total = 0.0
    for el, n in re.findall(r"([A-Z][a-z]?)(\d*)", formula):
        total += ATOMIC[el] * (int(n) if n else 1)
    return total


# lab key -> (canonical UCUM unit, molar mass g/mol or None, charge or None)
LABS = {
    "glucose": ("mmol/L", molar_mass("C6H12O6"), None),
    "creatinine": ("umol/L", molar_mass("C4H7N3O"), None),
    "urea": ("mmol/L", molar_mass("CH4N2O"), None),
    "sodium": ("mmol/L", molar_mass("Na"), 1),
    "potassium": ("mmol/L", molar_mass("K"), 1),
    "chloride": ("mmol/L", molar_mass("Cl"), 1),
    "bicarbonate": ("mmol/L", molar_mass("HCO3"), 1),
    "calcium": ("mmol/L", molar_mass("Ca"), 2),
    "hemoglobin": ("g/L", 64458 / 4, None),  # per globin chain: tetramer 64458 g/mol
    "hematocrit": ("%", None, None),
    "wbc": ("10*9/L", None, None),
    "neutrophils": ("10*9/L", None, None),
    "neutrophils_pct": ("%", None, None),
    "lymphocytes": ("10*9/L", None, None),
    "lymphocytes_pct": ("%", None, None),
    "platelets": ("10*9/L", None, None),
    "crp": ("mg/L", None, None),
    "procalcitonin": ("ug/L", None, None),
    "d_dimer_feu": ("mg/L{FEU}", None, None),
    "ferritin": ("ug/L", None, None),
    "ldh": ("U/L", None, None),
    "troponin_i": ("ng/L", None, None),
    "troponin_t": ("ng/L", None, None),
    "bnp": ("ng/L", 3464.0, None),
    "nt_probnp": ("ng/L", 8457.0, None),
    "lactate": ("mmol/L", molar_mass("C3H6O3"), None),
    "albumin": ("g/L", None, None),
    "bilirubin": ("umol/L", molar_mass("C33H36N4O6"), None),
    "alt": ("U/L", None, None),
    "ast": ("U/L", None, None),
    "inr": ("{INR}", None, None),
    "po2": ("mm[Hg]", None, None),
    "pco2": ("mm[Hg]", None, None),
    "ph": ("[pH]", None, None),
    "spo2": ("%", None, None),
    "temperature": ("Cel", None, None),
    "heart_rate": ("/min", None, None),
    "resp_rate": ("/min", None, None),
    "sbp": ("mm[Hg]", None, None),
    "dbp": ("mm[Hg]", None, None),
}
BUN = molar_mass("N2")  # urea nitrogen: BUN codes convert through 2 N per urea

# LOINC -> lab key (from LOINC's long common names), with the molar mass of the code's basis
LOINC = {
    "2339-0": "glucose", "2345-7": "glucose", "38483-4": "creatinine", "2160-0": "creatinine",
    "6299-2": ("urea", BUN), "3094-0": ("urea", BUN), "49765-1": "calcium", "17861-6": "calcium",
    "2947-0": "sodium", "2951-2": "sodium", "6298-4": "potassium", "2823-3": "potassium",
    "2069-3": "chloride", "2075-0": "chloride", "20565-8": "bicarbonate", "2028-9": "bicarbonate",
    "1960-4": "bicarbonate", "718-7": "hemoglobin", "4544-3": "hematocrit", "6690-2": "wbc",
    "751-8": "neutrophils", "770-8": "neutrophils_pct", "731-0": "lymphocytes", "736-9": "lymphocytes_pct",
    "777-3": "platelets", "1988-5": "crp", "33959-8": "procalcitonin", "48065-7": "d_dimer_feu",
    "2276-4": "ferritin", "14804-9": "ldh", "89579-7": "troponin_i", "1751-7": "albumin",
    "1975-2": "bilirubin", "1742-6": "alt", "1920-8": "ast", "6301-6": "inr", "2703-7": "po2",
    "2019-8": "pco2", "2744-1": "ph", "2708-6": "spo2", "8310-5": "temperature", "8867-4": "heart_rate",
    "9279-1": "resp_rate", "8480-6": "sbp", "8462-4": "dbp",
}
# codes Synthea has that radfuse's table does not: they must come out unknown-lab
UNKNOWN = ["2093-3", "4548-4", "29463-7", "8302-2", "72166-2", "33914-3"]

# unit spellings to check per lab: (as written, its UCUM equal, where the equality comes from)
UCUM = "ucum-lhc"
SPELLINGS = {
    "glucose": [("mg/dL", "mg/dL", UCUM), ("mmol/L", "mmol/L", UCUM), ("mg/dl", "mg/dL", "case-insensitive spelling"),
                ("g/L", "g/L", UCUM)],
    "creatinine": [("mg/dL", "mg/dL", UCUM), ("umol/L", "umol/L", UCUM),
                   ("\u00b5mol/L", "umol/L", "micro sign for u"), ("mmol/L", "mmol/L", UCUM)],
    "urea": [("mg/dL", "mg/dL", UCUM), ("mmol/L", "mmol/L", UCUM)],
    "sodium": [("mmol/L", "mmol/L", UCUM), ("meq/L", "meq/L", UCUM), ("mEq/L", "meq/L", "case-insensitive spelling")],
    "potassium": [("mEq/L", "meq/L", "case-insensitive spelling"), ("mmol/L", "mmol/L", UCUM)],
    "chloride": [("meq/L", "meq/L", UCUM)],
    "bicarbonate": [("meq/L", "meq/L", UCUM), ("mmol/L", "mmol/L", UCUM)],
    "calcium": [("mg/dL", "mg/dL", UCUM), ("mmol/L", "mmol/L", UCUM), ("meq/L", "meq/L", UCUM)],
    "hemoglobin": [("g/dL", "g/dL", UCUM), ("g/L", "g/L", UCUM), ("mmol/L", "mmol/L", UCUM)],
    "hematocrit": [("%", "%", UCUM), ("L/L", "L/L", UCUM), ("1", "1", UCUM), ("{fraction}", "1", "UCUM annotation")],
    "wbc": [("10*3/uL", "10*3/uL", UCUM), ("10*9/L", "10*9/L", UCUM), ("/uL", "/uL", UCUM), ("/mm3", "/mm3", UCUM),
            ("K/uL", "10*3/uL", "K = thousand"), ("x10^9/L", "10*9/L", "caret exponent"),
            ("G/L", "10*9/L", "giga per litre"), ("{cells}/uL", "/uL", "UCUM annotation")],
    "neutrophils": [("10*3/uL", "10*3/uL", UCUM), ("10*9/L", "10*9/L", UCUM), ("cells/uL", "/uL", "cells = count")],
    "neutrophils_pct": [("%", "%", UCUM)],
    "lymphocytes": [("10*3/uL", "10*3/uL", UCUM), ("/uL", "/uL", UCUM)],
    "lymphocytes_pct": [("%", "%", UCUM)],
    "platelets": [("10*3/uL", "10*3/uL", UCUM), ("10*9/L", "10*9/L", UCUM), ("K/uL", "10*3/uL", "K = thousand")],
    "crp": [("mg/L", "mg/L", UCUM), ("mg/dL", "mg/dL", UCUM), ("ug/mL", "ug/mL", UCUM)],
    "procalcitonin": [("ng/mL", "ng/mL", UCUM), ("ug/L", "ug/L", UCUM)],
    "d_dimer_feu": [("ug/mL", "ug/mL", UCUM), ("ug/mL{FEU}", "ug/mL", "UCUM annotation"),
                    ("ng/mL FEU", "ng/mL", "FEU suffix"), ("mg/L FEU", "mg/L", "FEU suffix")],
    "ferritin": [("ng/mL", "ng/mL", UCUM), ("ug/L", "ug/L", UCUM)],
    "ldh": [("U/L", "U/L", UCUM), ("ukat/L", "ukat/L", UCUM),
            ("IU/L", "U/L", "enzyme unit (IUB 1964): 1 IU = 1 umol/min = 1 U")],
    "troponin_i": [("ng/L", "ng/L", UCUM), ("pg/mL", "pg/mL", UCUM), ("ng/mL", "ng/mL", UCUM)],
    "troponin_t": [("ng/mL", "ng/mL", UCUM)],
    "bnp": [("pg/mL", "pg/mL", UCUM), ("pmol/L", "pmol/L", UCUM)],
    "nt_probnp": [("pg/mL", "pg/mL", UCUM), ("pmol/L", "pmol/L", UCUM)],
    "lactate": [("mmol/L", "mmol/L", UCUM), ("mg/dL", "mg/dL", UCUM)],
    "albumin": [("g/dL", "g/dL", UCUM), ("g/L", "g/L", UCUM)],
    "bilirubin": [("mg/dL", "mg/dL", UCUM), ("umol/L", "umol/L", UCUM)],
    "alt": [("U/L", "U/L", UCUM), ("ukat/L", "ukat/L", UCUM), ("nkat/L", "nkat/L", UCUM)],
    "ast": [("U/L", "U/L", UCUM)],
    "inr": [("{INR}", "{INR}", UCUM), ("1", "1", UCUM)],
    "po2": [("mm[Hg]", "mm[Hg]", UCUM), ("kPa", "kPa", UCUM), ("mmHg", "mm[Hg]", "common spelling")],
    "pco2": [("kPa", "kPa", UCUM), ("mm[Hg]", "mm[Hg]", UCUM)],
    "ph": [("[pH]", "[pH]", UCUM)],
    "spo2": [("%", "%", UCUM)],
    "temperature": [("Cel", "Cel", UCUM), ("[degF]", "[degF]", UCUM),
                    ("\u00b0F", "[degF]", "degree sign"), ("\u00b0C", "Cel", "degree sign"), ("degF", "[degF]", "spelling")],
    "heart_rate": [("/min", "/min", UCUM), ("{beats}/min", "/min", "UCUM annotation"), ("bpm", "/min", "beats per minute")],
    "resp_rate": [("/min", "/min", UCUM), ("{breaths}/min", "/min", "UCUM annotation")],
    "sbp": [("mm[Hg]", "mm[Hg]", UCUM)],
    "dbp": [("kPa", "kPa", UCUM)],
}

NODE = r"""
const u = require(process.argv[1]).UcumLhcUtils.getInstance();
const cases = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const out = cases.map(c => {
  const opt = {};
  if (c.mw) opt.molecularWeight = c.mw;
  if (c.charge) opt.charge = c.charge;
  const a = u.convertUnitTo(c.from, 0, c.to, opt), b = u.convertUnitTo(c.from, 1, c.to, opt);
  if (a.status !== 'succeeded' || b.status !== 'succeeded')
    return {error: (a.msg || []).concat(b.msg || []).join('; ') || a.status};
  return {offset: a.toVal, factor: b.toVal - a.toVal};
});
process.stdout.write(JSON.stringify(out));
"""


def ucum_convert(pkg, cases):
    r = subprocess.run(["node", "-e", NODE, pkg], input=json.dumps(cases), capture_output=True, text=True, check=True)
    return json.loads(r.stdout)


def hl7_escape(s):
    return (s.replace("\\", "\\E\\").replace("|", "\\F\\").replace("^", "\\S\\")
            .replace("&", "\\T\\").replace("~", "\\R\\"))


def hl7_time(iso):
    # 2021-08-23T03:26:50Z -> 20210823032650+0000
    m = re.fullmatch(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)Z", iso)
    return "".join(m.groups()) + "+0000"


def pick_rows(shared):
    rows = list(csv.DictReader(open(os.path.join(shared, "synthea", "observations.csv"), newline="")))
    want = list(LOINC) + UNKNOWN
    picked, seen = [], {}
    for r in rows:  # file order; first row of each code (two for glucose and WBC)
        c = r["CODE"]
        if c in want and seen.get(c, 0) < (2 if c in ("2339-0", "6690-2") else 1):
            seen[c] = seen.get(c, 0) + 1
            picked.append(r)
    missing = [c for c in want if c not in seen]
    if missing:
        print("note: Synthea has no rows for", missing, file=sys.stderr)
    # one systolic/diastolic pair of the same time and encounter, for the FHIR panel
    sbp = {(r["ENCOUNTER"], r["DATE"]): r for r in rows if r["CODE"] == "8480-6"}
    pair = next(((sbp[(r["ENCOUNTER"], r["DATE"])], r) for r in rows
                 if r["CODE"] == "8462-4" and (r["ENCOUNTER"], r["DATE"]) in sbp))
    return picked, pair


NOTE = ("Chest radiograph, PA and lateral.\nFindings: patchy opacity in the right lower lobe; "
        "no pleural effusion. Heart size normal.\nImpression: right lower lobe pneumonia.\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ucum", default="/tmp/node_modules/@lhncbc/ucum-lhc", help="the @lhncbc/ucum-lhc package")
    ap.add_argument("--shared", default=os.environ.get("RADFUSE_SHARED", os.path.join(HERE, "..", "..", "..", "shared")))
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    rows, (sys_row, dia_row) = pick_rows(args.shared)

    # the expected conversion of every row, from UCUM
    conv = []
    for r in rows:
        entry = LOINC.get(r["CODE"])
        if entry is None or r["TYPE"] != "numeric":
            conv.append(None)
            continue
        key, mw = (entry, None) if isinstance(entry, str) else entry
        unit, own_mw, charge = LABS[key]
        conv.append({"from": r["UNITS"], "to": unit, "mw": mw or own_mw, "charge": charge})
    results = ucum_convert(args.ucum, [c for c in conv if c])
    it = iter(results)
    with open(os.path.join(OUT, "synthea_expected.tsv"), "w", newline="") as f:
        f.write("# row\tcode\tvalue\tunit\tlab\tcanonical_unit\tvalue_norm\tflags  (make_labs_cases.py; UCUM: ucum-lhc)\n")
        for i, (r, c) in enumerate(zip(rows, conv)):
            entry = LOINC.get(r["CODE"])
            key = "-" if entry is None else (entry if isinstance(entry, str) else entry[0])
            norm, flags = "-", []
            if c:
                res = next(it)
                if "error" in res:
                    sys.exit("ucum-lhc cannot convert %s -> %s: %s" % (c["from"], c["to"], res["error"]))
                norm = "%.12g" % (float(r["VALUE"]) * res["factor"] + res["offset"])
            if entry is None:
                flags.append("unknown-lab")
            if r["TYPE"] != "numeric":
                flags.append("text-value")
            f.write("\t".join([str(i + 1), r["CODE"], r["VALUE"], r["UNITS"] or "-", key,
                               LABS[key][0] if key != "-" else "-", norm, ",".join(flags) or "-"]) + "\n")

    # CSV
    with open(os.path.join(OUT, "synthea.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["code", "name", "value", "unit", "low", "high", "time"])
        for r in rows:
            w.writerow([r["CODE"], r["DESCRIPTION"], r["VALUE"], r["UNITS"], "", "", r["DATE"]])

    # FHIR
    def observation(r):
        o = {"resourceType": "Observation", "status": "final",
             "code": {"coding": [{"system": "http://loinc.org", "code": r["CODE"], "display": r["DESCRIPTION"]}],
                      "text": r["DESCRIPTION"]},
             "effectiveDateTime": r["DATE"]}
        if r["TYPE"] == "numeric":
            o["valueQuantity"] = {"value": float(r["VALUE"]), "unit": r["UNITS"],
                                  "system": "http://unitsofmeasure.org", "code": r["UNITS"]}
        else:
            o["valueCodeableConcept"] = {"text": r["VALUE"]}
        return o

    entries = [{"resource": observation(r)} for r in rows]
    entries.append({"resource": {
        "resourceType": "Observation", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9", "display": "Blood pressure panel"}]},
        "effectiveDateTime": sys_row["DATE"],
        "component": [
            {"code": {"coding": [{"system": "http://loinc.org", "code": r["CODE"], "display": r["DESCRIPTION"]}]},
             "valueQuantity": {"value": float(r["VALUE"]), "unit": "mmHg", "system": "http://unitsofmeasure.org",
                               "code": "mm[Hg]"}}
            for r in (sys_row, dia_row)]}})
    entries.append({"resource": {
        "resourceType": "DocumentReference", "status": "current", "date": "2021-08-23T04:00:00Z",
        "type": {"text": "Radiology report"},
        "content": [{"attachment": {"contentType": "text/plain; charset=utf-8",
                                    "data": base64.b64encode(NOTE.encode()).decode()}},
                    {"attachment": {"contentType": "application/pdf", "url": "http://example.org/report.pdf"}}]}})
    entries.append({"resource": {
        "resourceType": "DiagnosticReport", "status": "final", "effectiveDateTime": "2021-08-23T04:10:00Z",
        "code": {"text": "XR chest"}, "conclusion": "Right lower lobe pneumonia."}})
    entries.append({"resource": {"resourceType": "Patient", "id": "synthetic"}})
    with open(os.path.join(OUT, "synthea_fhir.json"), "w") as f:
        json.dump({"resourceType": "Bundle", "type": "collection", "entry": entries}, f, indent=1)
        f.write("\n")

    # HL7 v2.5.1 ORU^R01, segments ended by CR as the standard says
    segs = ["MSH|^~\\&|SYNTHEA|LAB|RADFUSE|RAD|20210823040000+0000||ORU^R01^ORU_R01|MSG00001|P|2.5.1",
            "PID|1||SYNTH-0001",
            "OBR|1|||24323-8^Comprehensive metabolic panel^LN|||" + hl7_time(rows[0]["DATE"])]
    for i, r in enumerate(rows):
        vt = "NM" if r["TYPE"] == "numeric" else "ST"
        segs.append("|".join(["OBX", str(i + 1), vt,
                              "%s^%s^LN" % (r["CODE"], hl7_escape(r["DESCRIPTION"])), "",
                              hl7_escape(r["VALUE"]), hl7_escape(r["UNITS"]) + ("^^UCUM" if r["UNITS"] else ""),
                              "", "", "", "", "F", "", "", hl7_time(r["DATE"])]))
    with open(os.path.join(OUT, "synthea.hl7"), "w", newline="") as f:
        f.write("\r".join(segs) + "\r")

    # Hannover's COVID-19 labs: names and values, no units in the source (its README names none),
    # so radfuse must identify them by name and flag every number missing-unit, never assume one
    hann = list(csv.DictReader(open(os.path.join(args.shared, "hannover-covid-cxr", "data.csv"), newline="")))
    names = {"crp": "CRP", "d-dimer": "D-dimer", "factor_xii": "Factor XII", "ldh": "LDH",
             "lymphocytes": "Lymphocytes", "neutrophils": "Neutrophils", "pco2": "pCO2", "po2": "pO2"}
    with open(os.path.join(OUT, "hannover.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["code", "name", "value", "unit", "low", "high", "time"])
        n = 0
        for r in hann:
            for col, name in names.items():
                if r[col + "_val"] and n < 60:
                    w.writerow(["", name, r[col + "_val"], "", "", "", ""])
                    n += 1

    # unit factors from UCUM
    cases, meta = [], []
    for key, spellings in SPELLINGS.items():
        unit, mw, charge = LABS[key]
        for written, ucum, source in spellings:
            cases.append({"from": ucum, "to": unit, "mw": mw, "charge": charge})
            meta.append((key, written, ucum, unit, mw, source))
    # BUN through urea nitrogen's molar mass (a per-code override)
    cases.append({"from": "mg/dL", "to": "mmol/L", "mw": BUN, "charge": None})
    meta.append(("urea", "mg/dL", "mg/dL", "mmol/L", BUN, UCUM + " (urea nitrogen, override)"))
    res = ucum_convert(args.ucum, cases)
    with open(os.path.join(OUT, "ucum_factors.tsv"), "w") as f:
        f.write("# lab\tunit_written\tucum_unit\tcanonical\tmolar_mass\toverride\tfactor\toffset\tsource"
                "  (make_labs_cases.py)\n")
        for (key, written, ucum, unit, mw, source), r in zip(meta, res):
            if "error" in r:
                sys.exit("ucum-lhc cannot convert %s -> %s for %s: %s" % (ucum, unit, key, r["error"]))
            override = "1" if "override" in source else "0"
            f.write("\t".join([key, written, ucum, unit, "%.6f" % mw if mw else "0", override,
                               "%.12g" % r["factor"], "%.12g" % r["offset"], source]) + "\n")
    print("wrote", OUT, len(rows), "rows,", len(cases), "unit cases")


if __name__ == "__main__":
    main()
