#!/usr/bin/env bash
# Files of an export that are no DICOM by their name (docs/batch.md, "Files that are not
# DICOM"): an export made with `radfuse dataset study` (each row's ATTRIBUTION.txt beside its
# study) with a README.md, a LICENSE and a .DS_Store at its root reads with exit status 0, the
# summary counts the ignored files and --dry-run lists them, errors.jsonl names none of them;
# a broken .dcm, a file without extension that is no DICOM and a README.txt that carries a
# DICM preamble are still bad files (errors.jsonl, exit status 2).
name=test_batch_ignored
source "${RADFUSE_SOURCE:?}/tests/batch/common.sh"

root=$tmp/root
mkdir -p "$root"
data=$shared/data/covid-chestxray
# two frontal rows (the model reads no lateral view)
py -c 'import csv, sys
rows = [i for i, r in enumerate(csv.DictReader(open(sys.argv[1]))) if r["view"] != "L"]
print(rows[0], rows[len(rows) // 2])' "$data/metadata.csv" >"$tmp/rows" || fatal "reading metadata.csv"
while read -r row; do
  "$bin" dataset study --data "$data" --row "$row" --out "$root/row$row" >/dev/null || fatal "dataset study $row"
done < <(tr ' ' '\n' <"$tmp/rows")
check "the dataset's rows carry their ATTRIBUTION.txt" test "$(find "$root" -name ATTRIBUTION.txt | wc -l)" -eq 2
printf '# an export\n' >"$root/README.md"
printf 'CC BY 4.0\n' >"$root/LICENSE"
printf '\0\0\0\1Bud1' >"$root/.DS_Store"
opts=(--model "$model" --saliency none --jobs 2 --device cpu --outputs json)

"$bin" batch "$root" "${opts[@]}" --dry-run --json >"$tmp/dry.jsonl" 2>"$tmp/dry.err"
check "--dry-run exits 0" test $? -eq 0
check "--dry-run lists the ignored files (the two ATTRIBUTION.txt, README.md, LICENSE, .DS_Store)" py - \
  "$tmp/dry.jsonl" <<'EOF'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
ign = sorted(j["path"] for j in lines if j["kind"] == "ignored")
studies = [j for j in lines if j["kind"] == "study"]
want = [".DS_Store", "LICENSE", "README.md"]
ok = len(studies) == 2 and sorted(p for p in ign if "/" not in p) == want and \
    sum(p.endswith("/ATTRIBUTION.txt") for p in ign) == 2 and len(ign) == 5
print(ign, len(studies))
sys.exit(0 if ok else 1)
EOF
check "--dry-run's count on standard error" grep -q "0 files of the shard cannot be read as DICOM, 5 ignored" \
  "$tmp/dry.err"

"$bin" batch "$root" --out "$tmp/out" "${opts[@]}" --json >"$tmp/run.json" 2>/dev/null
check "an export with documents beside its studies: exit 0" test $? -eq 0
check "... the summary counts them as ignored, not as errors" py -c "
import json, sys
s = json.load(open('$tmp/run.json'))
sys.exit(not (s['done'] == 2 and s['failed'] == 0 and s['file_errors'] == 0 and s['ignored_files'] == 5))"
check "... errors.jsonl is empty" test ! -s "$tmp/out/errors.jsonl"
"$bin" batch "$root" --out "$tmp/out" "${opts[@]}" >"$tmp/run.txt" 2>/dev/null
check "... the text summary says so" grep -q "0 files not read, 5 ignored" "$tmp/run.txt"

# files that may be DICOM by their name, or that say they are (DICM), are still bad files
printf 'not a dicom file' >"$root/broken.dcm"
printf 'neither' >"$root/IM0001"
{ head -c 128 /dev/zero; printf 'DICMgarbage'; } >"$root/README.txt"
"$bin" batch "$root" --out "$tmp/out2" "${opts[@]}" --json >"$tmp/run2.json" 2>/dev/null
check "a broken .dcm: exit 2" test $? -eq 2
check "... the broken .dcm, the file without extension and the README.txt with a DICM preamble are bad files" \
  py - "$tmp/out2/errors.jsonl" "$tmp/run2.json" <<'EOF'
import json, sys
paths = sorted(json.loads(l)["path"] for l in open(sys.argv[1]) if '"kind":"file"' in l)
s = json.load(open(sys.argv[2]))
print(paths)
sys.exit(0 if paths == ["IM0001", "README.txt", "broken.dcm"] and s["file_errors"] == 3
         and s["ignored_files"] == 5 and s["done"] == 2 else 1)
EOF
finish
