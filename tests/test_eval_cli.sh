#!/usr/bin/env bash
# `radfuse eval` from the command line on covid-chestxray with a small random
# model (three labels renamed to the collection's outcomes): a split file made
# here, --subset and --limit; the JSON keys the format promises; n and
# positives per target equal a count of the same rows made here with Python's
# csv module from the collection's finding, survival, went_icu and
# needed_supplemental_O2 columns; targets with one class left out with their
# reason; AUROCs and intervals in [0, 1], the macro AUROC the mean of the
# targets'; --seed reproducible; --mask-findings adds the masked sets; the
# table output; rows whose image is missing or broken counted, listed and
# left out (exit 0); CPU and Vulkan (lavapipe) predictions within 1e-4
# (--predictions); usage and input errors with their exit status and one line.
name=test_eval_cli
source "${RADFUSE_SOURCE:?RADFUSE_SOURCE must name the source tree}/tests/lib.sh"
need_shared data/covid-chestxray
need_tools python3
data=$shared/data/covid-chestxray
make_tmp
one_line() { [[ $(wc -l <"$1") -eq 1 ]] && grep -q "$2" "$1"; }

# the model: labels covid19, pneumonia and three outcomes
model=$tmp/model
"$bin" model random --arch fusion_tiny --vocab "$shared/fixtures/tokenizer/vocab.txt" --out "$model" >/dev/null ||
  { echo "test_eval_cli: cannot make the model" >&2; exit 1; }
python3 - "$model/labels.json" <<'EOF'
import json, sys
p = sys.argv[1]
labels = json.load(open(p))
for l, code in zip(labels[2:], ["survival", "went_icu", "needed_supplemental_O2"]):
    l["code"], l["display"] = code, code.replace("_", " ")
    l.pop("system", None), l.pop("system_code", None)
json.dump(labels, open(p, "w"))
EOF

# a split file: patients by a sum of their key's bytes, every patient listed
python3 - "$data/metadata.csv" "$tmp/split.csv" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1], encoding="utf-8")))
sides = {}
for r in rows:
    sides.setdefault(r["patientid"], ["train", "val", "test"][sum(r["patientid"].encode()) % 3])
with open(sys.argv[2], "w") as f:
    f.write("patientid,split\n")
    for p, s in sides.items():
        f.write(f"{p},{s}\n")
EOF

# the counts: the first LIMIT rows of the val side, targets from the columns
# (the finding's terms: a target is positive where a term says so, else
# negative where a term says not, else unknown; docs/datasets.md)
cat >"$tmp/count.py" <<'EOF'
import csv, json, sys
meta, split, limit, result = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
side = dict(r for r in csv.reader(open(split)) if r[0] != "patientid")
rows = [r for r in csv.DictReader(open(meta, encoding="utf-8")) if side[r["patientid"]] == "val"][:limit]
COVID_NO = {"SARS", "MERS-CoV", "MERS", "Influenza", "Varicella", "Herpes", "Bacterial", "Klebsiella",
            "Streptococcus", "Staphylococcus", "E.Coli", "Legionella", "Mycoplasma", "Mycoplasma Bacterial Pneumonia",
            "Chlamydophila", "Nocardia", "Fungal", "Pneumocystis", "Aspergillosis", "Lipoid", "No Finding"}
PNEUMONIA_YES = {"COVID-19", "SARS", "MERS-CoV", "MERS", "Influenza", "Varicella", "Herpes", "Viral", "Bacterial",
                 "Klebsiella", "Streptococcus", "Staphylococcus", "E.Coli", "Legionella", "Mycoplasma",
                 "Mycoplasma Bacterial Pneumonia", "Chlamydophila", "Nocardia", "Fungal", "Pneumocystis",
                 "Aspergillosis", "Pneumonia"}
KNOWN = COVID_NO | PNEUMONIA_YES | {"ARDS"}
def finding(r, yes, no):
    terms = [t.strip() for t in r["finding"].replace("/", ",").split(",") if t.strip()]
    if not terms or any(t not in KNOWN for t in terms):
        return None
    return 1 if any(t in yes for t in terms) else 0 if any(t in no for t in terms) else None
def yn(v):
    return {"Y": 1, "N": 0}.get(v)
values = {
    "covid19": [finding(r, {"COVID-19"}, COVID_NO) for r in rows],
    "pneumonia": [finding(r, PNEUMONIA_YES, {"Lipoid", "No Finding"}) for r in rows],
    "survival": [yn(r["survival"]) for r in rows],
    "went_icu": [yn(r["went_icu"]) for r in rows],
    "needed_supplemental_O2": [yn(r["needed_supplemental_O2"]) for r in rows],
}
j = json.load(open(result))
assert j["dataset"]["rows_read"] == len(rows) == j["dataset"]["rows_used"], (j["dataset"], len(rows))
assert j["dataset"]["patients"] == len({r["patientid"] for r in rows})
assert j["dataset"]["split"] == "file" and j["dataset"]["subset"] == "val"
evaluated = 0
for name, v in values.items():
    known = [x for x in v if x is not None]
    n, pos = len(known), sum(known)
    if 0 < pos < n:
        t = j["targets"][name]
        assert (t["n"], t["positives"]) == (n, pos), (name, t["n"], t["positives"], n, pos)
        evaluated += 1
    else:
        assert name not in j["targets"], name
        assert ("no positives" if pos == 0 else "no negatives") in j["skipped_targets"][name], name
assert evaluated == len(j["targets"]) and evaluated >= 3, evaluated
print(f"{evaluated} targets counted over {len(rows)} rows")
EOF

cat >"$tmp/structure.py" <<'EOF'
import json, math, sys
j = json.load(open(sys.argv[1]))
masked = len(sys.argv) > 2
sets = ["image", "text", "labs", "fused"] + (["fused_masked", "text_masked"] if masked else [])
assert set(j["macro_auroc"]) == set(sets), j["macro_auroc"]
assert j["targets"]
for name, t in j["targets"].items():
    for k in ["n", "positives", "auroc", "auroc_ci", "ece", "ablation"]:
        assert k in t, (name, k)
    assert isinstance(t["n"], int) and 0 < t["positives"] < t["n"]
    lo, hi = t["auroc_ci"]
    assert 0 <= lo <= hi <= 1 and 0 <= t["auroc"] <= 1 and 0 <= t["ece"] <= 1, t
    assert set(t["ablation"]) == set(sets) and t["ablation"]["fused"] == t["auroc"]
    assert all(0 <= v <= 1 for v in t["ablation"].values())
    assert len(t["reliability"]) == 10 and sum(b["count"] for b in t["reliability"]) == t["n"]
    assert set(t["fused_minus"]) == set(sets) - {"fused"}
    for s, d in t["fused_minus"].items():
        assert math.isclose(d["delta"], t["auroc"] - t["ablation"][s], abs_tol=1e-12), (s, d)
        assert -1 <= d["ci"][0] <= d["ci"][1] <= 1, d
    c = t["confusion"]
    assert c["tp"] + c["fn"] == t["positives"] and c["tp"] + c["fn"] + c["fp"] + c["tn"] == t["n"]
for s in sets:
    mean = sum(t["ablation"][s] for t in j["targets"].values()) / len(j["targets"])
    assert math.isclose(j["macro_auroc"][s], mean, abs_tol=1e-12), (s, j["macro_auroc"][s], mean)
if masked:
    assert j["mask_findings"]["enabled"] and j["mask_findings"]["replacements"] > 0
EOF

common=(eval "$data" --model "$model" --split "$tmp/split.csv" --subset val --limit 40 --bootstrap 300 --device cpu)
check "eval --json" run 0 "$tmp/a.json" "$tmp/err.txt" "${common[@]}" --json
check "the JSON structure" python3 "$tmp/structure.py" "$tmp/a.json"
check "n and positives against Python's count" python3 "$tmp/count.py" "$data/metadata.csv" "$tmp/split.csv" 40 "$tmp/a.json"
check "eval --json again (same seed)" run 0 "$tmp/b.json" "$tmp/err.txt" "${common[@]}" --json
check "the same seed gives the same figures" python3 - "$tmp/a.json" "$tmp/b.json" <<'EOF'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
for j in (a, b):
    j.pop("seconds")
assert a == b
EOF
check "eval --seed 2" run 0 "$tmp/c.json" "$tmp/err.txt" "${common[@]}" --json --seed 2
check "another seed gives other intervals, the same AUROCs" python3 - "$tmp/a.json" "$tmp/c.json" <<'EOF'
import json, sys
a, c = (json.load(open(p)) for p in sys.argv[1:3])
assert all(a["targets"][k]["auroc"] == c["targets"][k]["auroc"] for k in a["targets"])
assert any(a["targets"][k]["auroc_ci"] != c["targets"][k]["auroc_ci"] for k in a["targets"])
EOF
check "eval --mask-findings" run 0 "$tmp/m.json" "$tmp/err.txt" "${common[@]}" --json --mask-findings
check "the masked sets" python3 "$tmp/structure.py" "$tmp/m.json" masked
check "eval (tables)" run 0 "$tmp/t.txt" "$tmp/err.txt" "${common[@]}"
check "the tables" bash -c "grep -q '^target  *n  *pos  *AUROC' '$tmp/t.txt' && grep -q '^ablation' '$tmp/t.txt' &&
  grep -q '^covid19 ' '$tmp/t.txt' && grep -q '^reliability of covid19' '$tmp/t.txt' && grep -q '^macro ' '$tmp/t.txt' &&
  grep -q '^fused minus each set' '$tmp/t.txt'"
check "no patient keys in the outputs" python3 - "$data/metadata.csv" "$tmp/a.json" "$tmp/t.txt" <<'EOF'
import csv, re, sys
keys = {r["patientid"] for r in csv.DictReader(open(sys.argv[1], encoding="utf-8"))}
for p in sys.argv[2:]:
    text = open(p).read()
    found = {k for k in keys if re.search(r'"%s"' % re.escape(k), text)}
    assert not found, (p, sorted(found)[:5])
EOF

# rows whose image is missing or broken: counted, listed, left out
bad=$tmp/bad-data
mkdir -p "$bad/images"
cp "$data/metadata.csv" "$bad/"
python3 - "$data" "$bad" <<'EOF'
import csv, os, sys
src, dst = sys.argv[1:3]
rows = list(csv.DictReader(open(os.path.join(src, "metadata.csv"), encoding="utf-8")))
for i, r in enumerate(rows[:10]):
    out = os.path.join(dst, "images", r["filename"])
    if i == 3:
        continue  # missing
    if i == 6:
        open(out, "wb").write(b"\xff\xd8\xff\xe0 not a JPEG")
        continue
    os.symlink(os.path.join(src, "images", r["filename"]), out)
EOF
check "eval with broken images" run 0 "$tmp/bad.json" "$tmp/err.txt" eval "$bad" --model "$model" --subset all --limit 10 --bootstrap 50 --device cpu --json
check "the broken images counted and listed" python3 - "$tmp/bad.json" "$data/metadata.csv" <<'EOF'
import csv, json, sys
j = json.load(open(sys.argv[1]))
rows = list(csv.DictReader(open(sys.argv[2], encoding="utf-8")))
d = j["dataset"]
assert (d["rows_read"], d["rows_used"], d["image_failures"]) == (10, 8, 2), d
assert [f["id"] for f in d["failures"]] == [rows[3]["filename"], rows[6]["filename"]], d["failures"]
assert "not a JPEG image" in d["failures"][1]["error"] and "/" not in d["failures"][1]["error"].split(":")[0]
EOF
check "a line on stderr for the broken images" grep -q "2 images could not be read" "$tmp/err.txt"

# no --split: the covid-chestxray split built in from datasets/splits/, the same
# rows as the file given; a dataset with a patient the built-in split lacks is refused
check "eval without --split" run 0 "$tmp/d.json" "$tmp/err.txt" eval "$data" --model "$model" --limit 30 --bootstrap 0 --device cpu --json --predictions "$tmp/d.csv"
check "eval --split datasets/splits/covid-chestxray.csv" run 0 "$tmp/e.json" "$tmp/err.txt" eval "$data" --model "$model" --limit 30 --bootstrap 0 --device cpu --json --predictions "$tmp/e.csv" --split "$src/datasets/splits/covid-chestxray.csv"
check "the built-in split is the repository's" cmp -s "$tmp/d.csv" "$tmp/e.csv"
check "... and is named" grep -q '"split":[[:space:]]*"datasets/splits/covid-chestxray.csv"' "$tmp/d.json"
python3 - "$data/metadata.csv" "$bad/metadata.csv" <<'EOF'
import csv, sys
rows = list(csv.reader(open(sys.argv[1], encoding="utf-8")))
rows[1][0] = "a-patient-of-no-split"
csv.writer(open(sys.argv[2], "w", encoding="utf-8", newline="")).writerows(rows)
EOF
check "a patient the built-in split lacks" run 2 "$tmp/o.txt" "$tmp/err.txt" eval "$bad" --model "$model" --device cpu
check "... one line asking for --split" one_line "$tmp/err.txt" "give --split FILE"

# CPU and Vulkan (lavapipe): the same predictions within 1e-4
few=(eval "$data" --model "$model" --subset all --limit 4 --bootstrap 10 --mask-findings)
check "eval --device cpu --predictions" run 0 "$tmp/p.txt" "$tmp/err.txt" "${few[@]}" --device cpu --predictions "$tmp/cpu.csv"
check "eval --device vulkan --predictions" run 0 "$tmp/p.txt" "$tmp/err.txt" "${few[@]}" --device vulkan --predictions "$tmp/vk.csv"
check "the Vulkan run was on Vulkan" grep -q "on vulkan" "$tmp/p.txt"
check "CPU and Vulkan predictions within 1e-4" python3 - "$tmp/cpu.csv" "$tmp/vk.csv" <<'EOF'
import csv, sys
a, b = (list(csv.reader(open(p))) for p in sys.argv[1:3])
assert a[0] == b[0] and len(a) == len(b) == 1 + 4 * 6, (len(a), len(b))
worst = 0.0
for x, y in zip(a[1:], b[1:]):
    assert x[:2] == y[:2]
    worst = max([worst] + [abs(float(u) - float(v)) for u, v in zip(x[2:], y[2:])])
assert worst < 1e-4, worst
print(f"CPU vs Vulkan: max difference {worst:.2e}")
EOF

# usage and input errors
check "no DATASET: usage" run 1 "$tmp/o.txt" "$tmp/err.txt" eval --model "$model"
check "a bad --subset: usage" run 1 "$tmp/o.txt" "$tmp/err.txt" eval "$data" --model "$model" --subset everything
check "a bad --limit: exit 1" run 1 "$tmp/o.txt" "$tmp/err.txt" eval "$data" --model "$model" --limit 0
check "a dataset that is not one" run 2 "$tmp/o.txt" "$tmp/err.txt" eval "$tmp" --model "$model" --device cpu
check "... one line" test "$(wc -l <"$tmp/err.txt")" -eq 1
check "a model that is not one" run 2 "$tmp/o.txt" "$tmp/err.txt" eval "$data" --model "$tmp/none" --device cpu
check "... one line naming it" one_line "$tmp/err.txt" "$tmp/none"
printf 'patientid,split\n2,val\n' >"$tmp/short.csv"
check "a split file missing patients" run 2 "$tmp/o.txt" "$tmp/err.txt" eval "$data" --model "$model" --split "$tmp/short.csv" --device cpu
check "... one line naming it" one_line "$tmp/err.txt" "$tmp/short.csv"

finish
