#!/usr/bin/env bash
# `radfuse read` from the command line, as a radiologist runs it: a study made
# from a covid-chestxray row (image, note, labs) through a small random model;
# the summary, every output file, --json against result.json, CPU against
# Vulkan (lavapipe) within 1e-4, no patient identifiers outside dicom/ unless
# --include-phi, dciodvfy on the DICOM outputs, and the exit status and one
# error line for usage errors and bad inputs.
name=test_read_cli
source "${RADFUSE_SOURCE:?RADFUSE_SOURCE must name the source tree}/tests/lib.sh"
need_shared data/covid-chestxray
need_tools python3 dciodvfy
make_tmp

"$bin" model random --arch fusion_tiny --vocab "$shared/fixtures/tokenizer/vocab.txt" --out "$tmp/model" >/dev/null ||
  { echo "test_read_cli: cannot make the model" >&2; exit 1; }
"$bin" dataset study --data "$shared/data/covid-chestxray" --row 440 --out "$tmp/s" >/dev/null ||
  { echo "test_read_cli: cannot make the study" >&2; exit 1; }
s=$tmp/s
common=("$s/study" --notes "$s/note.txt" --labs "$s/labs.csv" --model "$tmp/model")

# a full read on the CPU with every output
check "read on cpu" run 0 "$tmp/summary.txt" "$tmp/err.txt" read "${common[@]}" --out "$tmp/o" --device cpu
check "summary has the findings table" grep -q "probability  threshold  call" "$tmp/summary.txt"
check "summary has 5 findings" test "$(grep -cE ' (POSITIVE|negative) ' "$tmp/summary.txt")" -eq 5
for f in result.json report.html report.fhir.json; do
  check "$f written" test -s "$tmp/o/$f"
done
check "5 overlays" test "$(ls "$tmp/o/overlays"/*.png | wc -l)" -eq 5
check "5 secondary captures and an SR" test "$(ls "$tmp/o/dicom"/*.dcm | wc -l)" -eq 6
check "no temporary files left" test -z "$(find "$tmp/o" -name '*.tmp*')"
for d in "$tmp/o/dicom"/*.dcm; do
  check "dciodvfy $(basename "$d")" bash -c "! dciodvfy '$d' 2>&1 | grep -q Error"
done
# patient identifiers (PatientID COVID-<id>, PatientName COVID^<id>) only in dicom/
pid=$(python3 -c 'import csv,sys; print(list(csv.DictReader(open(sys.argv[1])))[440]["patientid"])' \
  "$shared/data/covid-chestxray/metadata.csv")
phi="COVID[-^]$pid([^0-9]|\$)"
check "patient ID known" test -n "$pid"
check "no PHI outside dicom/" bash -c "! grep -rlaE '$phi' '$tmp/o' --exclude-dir=dicom '$tmp/summary.txt' '$tmp/err.txt'"
check "PHI in the DICOM objects (they file into the patient's study)" grep -qaE "$phi" "$tmp/o/dicom/sr.dcm"

# the same study as a zip export: same findings, and the DICOM objects made from the entry's bytes
python3 -c 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED); z.write(sys.argv[2], "export/IMG0001.dcm")' \
  "$tmp/study.zip" "$(ls "$s"/study/*.dcm | head -1)"
check "read a zip export" run 0 "$tmp/zsum.txt" "$tmp/err.txt" read "$tmp/study.zip" --notes "$s/note.txt" \
  --labs "$s/labs.csv" --model "$tmp/model" --out "$tmp/oz" --device cpu
check "zip: same findings" bash -c "diff <(grep -E ' (POSITIVE|negative) ' '$tmp/summary.txt') <(grep -E ' (POSITIVE|negative) ' '$tmp/zsum.txt')"
check "zip: DICOM objects written" test "$(ls "$tmp/oz/dicom"/*.dcm | wc -l)" -eq 6
check "zip: the SR is valid" bash -c "! dciodvfy '$tmp/oz/dicom/sr.dcm' 2>&1 | grep -q Error"

# --json prints result.json's document
check "read --json" run 0 "$tmp/r.json" "$tmp/err.txt" read "${common[@]}" --device cpu --json
check "--json equals result.json but for times" python3 - "$tmp/r.json" "$tmp/o/result.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
for d in (a, b):
    d.pop("created", None); d.pop("timings", None)
    for f in d["findings"]:
        for m in f.get("image_evidence", []):
            for k in ("overlay", "dicom", "sop_instance_uid"):
                m.pop(k, None)
pa = {f["code"]: f["probability"] for f in a["findings"]}
pb = {f["code"]: f["probability"] for f in b["findings"]}
sys.exit(0 if pa == pb and len(pa) == 5 else 1)
PY

# Vulkan gives the CPU's probabilities within 1e-4
check "read --device vulkan" run 0 "$tmp/v.json" "$tmp/err.txt" read "${common[@]}" --device vulkan --json
check "CPU vs Vulkan within 1e-4" python3 - "$tmp/r.json" "$tmp/v.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
assert b["model"]["backend"].startswith("vulkan"), b["model"]["backend"]
pa = {f["code"]: f["probability"] for f in a["findings"]}
pb = {f["code"]: f["probability"] for f in b["findings"]}
worst = max(abs(pa[k] - pb[k]) for k in pa)
print(f"test_read_cli: CPU vs Vulkan max |dp| = {worst:.3g}")
sys.exit(0 if pa.keys() == pb.keys() and worst <= 1e-4 else 1)
PY

# --include-phi puts the patient ID into result.json
check "read --include-phi" run 0 "$tmp/phi.json" "$tmp/err.txt" read "${common[@]}" --device cpu --json --include-phi
check "patient ID with --include-phi" grep -qE "\"COVID-$pid\"" "$tmp/phi.json"

# every saliency method and no saliency
for m in rollout occlusion none; do
  check "--saliency $m" run 0 "$tmp/m.txt" "$tmp/err.txt" read "${common[@]}" --device cpu --saliency $m --no-dicom
done

# usage errors: exit 1 and the usage
check "no study" run 1 "$tmp/x" "$tmp/err.txt" read --model "$tmp/model"
check "unknown option" run 1 "$tmp/x" "$tmp/err.txt" read "${common[@]}" --bogus
check "alpha out of range" run 1 "$tmp/x" "$tmp/err.txt" read "${common[@]}" --alpha 2
check "precision" run 1 "$tmp/x" "$tmp/err.txt" read "${common[@]}" --precision fp8
no_model=0
env -u RADFUSE_MODEL "$bin" read "$s/study" >/dev/null 2>"$tmp/err.txt" || no_model=$?
check "no model: usage status" test $no_model -eq 1
check "no model: says so" grep -q "no model" "$tmp/err.txt"
# bad inputs: exit 2, one line naming the problem, never a crash
mkdir -p "$tmp/junk"
echo "not DICOM" >"$tmp/junk/JOHN_DOE.dcm"
check "no readable DICOM" run 2 "$tmp/x" "$tmp/err.txt" read "$tmp/junk" --model "$tmp/model" --device cpu
check "error says why" grep -q "no readable DICOM" "$tmp/err.txt"
check "error hides the file name" bash -c "! grep -q JOHN_DOE '$tmp/err.txt'"
check "unknown saliency method" run 2 "$tmp/x" "$tmp/err.txt" read "${common[@]}" --saliency magic --device cpu
check "a model that is not one" run 2 "$tmp/x" "$tmp/err.txt" read "${common[@]/$tmp\/model/$tmp\/junk}" --device cpu
check "a CT for a CR/DX model" run 2 "$tmp/x" "$tmp/err.txt" read "$shared/data/dicom/pydicom-test-files/CT_small.dcm" \
  --model "$tmp/model" --device cpu
check "mismatch says so" grep -q "reads CR, DX images" "$tmp/err.txt"
# a note that is not UTF-8: a warning, the read goes on
printf 'fever \xff cough\n' >"$tmp/bad.txt"
check "bad note is a warning" run 0 "$tmp/x" "$tmp/err.txt" read "$s/study" --notes "$tmp/bad.txt" --model "$tmp/model" \
  --device cpu --saliency none
check "warning printed" grep -q "warning: note 1" "$tmp/err.txt"
# an output directory that cannot be written
touch "$tmp/file"
check "unwritable --out" run 2 "$tmp/x" "$tmp/err.txt" read "${common[@]}" --device cpu --out "$tmp/file/o"

finish
