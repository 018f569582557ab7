#!/usr/bin/env bash
# The trainer's target table (train/targets.py) against radfuse's (datasets/dataset_covid.c):
# the two read the same metadata.csv, and a difference would train the default model on
# targets other than those `radfuse eval` scores it on. For every side of the fixed split
# (and the whole set) and every target, the positives, negatives and unknowns Python counts
# with train/targets.py must equal what `radfuse dataset ls --split FILE --json` counts.
# Also: a finding of unknown terms gives unknown (None) for every finding target.
name=test_train_targets
source "${RADFUSE_SOURCE:?RADFUSE_SOURCE must name the source tree}/tests/lib.sh"
need_shared data/covid-chestxray/metadata.csv
need_tools python3
data=$shared/data/covid-chestxray
make_tmp

check "radfuse dataset ls --json" run 0 "$tmp/ls.json" "$tmp/err" dataset ls "$data" \
  --split "$src/datasets/splits/covid-chestxray.csv" --json || finish

check "train/targets.py counts = radfuse's" python3 - "$tmp/ls.json" "$data/metadata.csv" \
  "$src/datasets/splits/covid-chestxray.csv" "$src/train" <<'PY'
import csv, json, sys
ls_path, meta, split_file, train_dir = sys.argv[1:]
sys.path.insert(0, train_dir)
from targets import TARGETS, FINDINGS, row_targets, finding_targets

ls = json.load(open(ls_path))
codes = [c for c, _ in TARGETS]
bad = []
if ls["targets"] != codes:
    bad.append(f"target lists differ: radfuse {ls['targets']}, trainer {codes}")
if ls["finding_targets"] != FINDINGS:
    bad.append(f"finding targets: radfuse {ls['finding_targets']}, trainer {FINDINGS}")
split = {r["patientid"]: r["split"] for r in csv.DictReader(open(split_file, newline=""))}
rows = list(csv.DictReader(open(meta, newline="", encoding="utf-8")))
counts = {}
for r in rows:
    t = row_targets(r)
    for side in ("all", split[r["patientid"]]):
        c = counts.setdefault(side, {k: {"positive": 0, "negative": 0, "unknown": 0} for k in codes})
        for k, v in zip(codes, t):
            c[k]["positive" if v == 1 else "negative" if v == 0 else "unknown"] += 1
sides = ls["sets"]
if set(sides) != set(counts):
    bad.append(f"sets differ: radfuse {sorted(sides)}, trainer {sorted(counts)}")
compared = 0
for side in sorted(set(sides) & set(counts)):
    for k in codes:
        a, b = sides[side]["targets"][k], counts[side][k]
        compared += 1
        if any(a[x] != b[x] for x in b):
            bad.append(f"{side} {k}: radfuse {a}, trainer {b}")
if set(finding_targets("Something Else").values()) != {None}:
    bad.append("an unknown finding term does not give unknown targets")
for b in bad:
    print("  " + b, file=sys.stderr)
print(f"{compared} (side, target) counts compared over {len(rows)} rows")
sys.exit(1 if bad else 0)
PY
finish
