#!/usr/bin/env bash
# The evaluation MODEL_CARD.md records, as CI runs it: `radfuse eval
# ../shared/data/covid-chestxray --model models/default --subset val --json`
# from the repository root. Checks the structure issue 7 asks for, not the
# figures: every target with n, positives (both classes present), auroc,
# auroc_ci [lo, hi], ece and the ablation (image, text, labs, fused); the
# macro AUROCs the mean of the targets'; every AUROC, interval end, ECE,
# sensitivity and specificity in [0, 1]; the rows read are exactly the
# validation rows of datasets/splits/covid-chestxray.csv (counted here with
# Python's csv module), so no test patient is read.
name=test_default_eval
source "${RADFUSE_SOURCE:?RADFUSE_SOURCE must name the source tree}/tests/lib.sh"
need_shared data/covid-chestxray
need_tools python3
data=$shared/data/covid-chestxray
make_tmp
# the automatic device may load a Vulkan driver, whose own leaks are not ours
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"

cd "$src" || exit 1
start=$SECONDS
if ! "$bin" eval "$data" --model models/default --subset val --json >"$tmp/eval.json" 2>"$tmp/err"; then
  echo "test_default_eval: FAILED: radfuse eval $data --model models/default --subset val --json" >&2
  sed 's/^/  /' "$tmp/err" >&2
  exit 1
fi
echo "radfuse eval of models/default on the val subset: $((SECONDS - start)) s"

python3 - "$tmp/eval.json" "$data/metadata.csv" "$src/datasets/splits/covid-chestxray.csv" <<'EOF'
import csv, json, math, sys

out, meta, split = sys.argv[1:4]
r = json.load(open(out))
fails = []

def check(cond, what):
    if not cond:
        fails.append(what)

def unit(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1

sets = ["image", "text", "labs", "fused"]
check(isinstance(r.get("targets"), dict) and r["targets"], "no targets")
for name, t in r.get("targets", {}).items():
    for k in ["n", "positives", "auroc", "auroc_ci", "ece", "ablation"]:
        check(k in t, f"{name}: no {k}")
    n, pos = t.get("n"), t.get("positives")
    check(isinstance(n, int) and isinstance(pos, int) and 0 < pos < n, f"{name}: n {n}, positives {pos}")
    check(unit(t.get("auroc")), f"{name}: auroc {t.get('auroc')}")
    ci = t.get("auroc_ci")
    check(isinstance(ci, list) and len(ci) == 2 and all(unit(x) for x in ci) and ci[0] <= ci[1], f"{name}: auroc_ci {ci}")
    check(unit(t.get("ece")), f"{name}: ece {t.get('ece')}")
    ab = t.get("ablation", {})
    check(all(unit(ab.get(s)) for s in sets), f"{name}: ablation {ab}")
    check(ab.get("fused") == t.get("auroc"), f"{name}: fused ablation is not the auroc")
    for k in ["sensitivity", "specificity", "threshold"]:
        check(unit(t.get(k)), f"{name}: {k} {t.get(k)}")
macro = r.get("macro_auroc", {})
for s in sets:
    v = macro.get(s)
    check(unit(v), f"macro_auroc.{s} {v}")
    mean = sum(t["ablation"][s] for t in r["targets"].values()) / max(len(r["targets"]), 1)
    check(v is not None and math.isclose(v, mean, abs_tol=1e-12), f"macro_auroc.{s} {v} is not the mean {mean}")

# the rows: the validation side of the repository's split, every one read
sides = {row["patientid"]: row["split"] for row in csv.DictReader(open(split, encoding="utf-8"))}
rows = list(csv.DictReader(open(meta, encoding="utf-8")))
val = [x for x in rows if sides.get(x["patientid"]) == "val" and x.get("modality", "X-ray") in ("", "X-ray")]
d = r.get("dataset", {})
check(d.get("subset") == "val", f"subset {d.get('subset')}")
check(d.get("split") == "datasets/splits/covid-chestxray.csv", f"split {d.get('split')}")
check(d.get("rows_subset") == len(val), f"rows_subset {d.get('rows_subset')}, the split file has {len(val)} val rows")
check(d.get("rows_used") == len(val) and d.get("image_failures") == 0, f"rows_used {d.get('rows_used')}")
check(d.get("patients") == len({x["patientid"] for x in val}), f"patients {d.get('patients')}")
check(r.get("model", {}).get("name") == "radfuse-default-cxr", f"model {r.get('model')}")
for f in fails:
    print("test_default_eval: FAILED:", f, file=sys.stderr)
print(f"test_default_eval: {len(r.get('targets', {}))} targets, {d.get('rows_used')} rows, {len(fails)} failures")
sys.exit(1 if fails else 0)
EOF
