#!/usr/bin/env bash
# `radfuse batch` end to end over an export of 200 covid-chestxray studies (trees with notes
# and labs beside the images, a flat folder paired by a manifest by StudyInstanceUID and by
# AccessionNumber, bare studies, a zip archive; five transfer syntaxes; a prior), pydicom's test
# files (studies of modalities the model rejects, a DICOMDIR with a CR study it reads, files
# that are no DICOM) and broken files (tests/batch/make_export.py):
#   --dry-run lists every study with its pairing and writes nothing;
#   --device-batch 1 and 8 give the same results (Grad-CAM too), and the summary counts batches;
#   the run records every good study exactly once and every failed study and bad file in
#   errors.jsonl (tests/batch/check.py export), exits 2 (some failed), and a few studies
#   agree with `radfuse read` of the same inputs;
#   a second run and --retry-failed change no result;
#   --shard 0/2 and 1/2 take the studies the documented hash gives them, and their merge
#   equals the single run; a merge of shards with different results, or of two models'
#   results, or of a shard killed before it recorded its study count, is refused;
#   usage errors exit 1, another model on the same directory is refused.
name=test_batch_export
source "${RADFUSE_SOURCE:?}/tests/batch/common.sh"

work=$tmp/export
make_export "$work" --studies 200 --pydicom --broken
root=$work/root
manifest=$work/side/manifest.csv
opts=(--model "$model" --manifest "$manifest" --saliency none --jobs 2 --device cpu)

# --dry-run: the studies and their pairing, nothing written
"$bin" batch "$root" --out "$tmp/out" "${opts[@]}" --dry-run --json >"$tmp/dry.jsonl" 2>"$tmp/dry.err"
check "--dry-run exits 0" test $? -eq 0
check "--dry-run writes nothing" test ! -e "$tmp/out"
check "--dry-run: pairing of the studies as built" py - "$work/expect.json" "$tmp/dry.jsonl" <<'EOF'
import json, sys
ex = json.load(open(sys.argv[1]))
dry = {j["study_instance_uid"]: j for j in map(json.loads, open(sys.argv[2])) if j["kind"] == "study"}
bad = 0
for r, e in ex["rows"].items():
    d = dry.get(e["uid"])
    want = {"folder": "folder", "manifest": "manifest", "none": "none"}[e["where"]]
    if e["where"] == "folder" and not e["notes"] and not e["labs"]:
        want = "none"
    if not d or d["pairing"] != want or d["notes"] != len(e["notes"]) or d["labs"] != len(e["labs"]) \
            or d["prior"] != bool(e["prior"]) or d["instances"] != 1 or d["state"] != "pending":
        print("row %s: %s, built %s notes %d labs %d" % (r, d, want, len(e["notes"]), len(e["labs"])))
        bad += 1
sys.exit(bad > 0)
EOF
ndry=$(grep -c '"kind":"study"' "$tmp/dry.jsonl")
nign=$(grep -c '"kind":"ignored"' "$tmp/dry.jsonl")
"$bin" batch "$root" "${opts[@]}" --dry-run >"$tmp/dry.txt" 2>/dev/null
check "--dry-run (text): one line per study and per ignored file" \
  test "$(grep -vc '^ignored  ' "$tmp/dry.txt")" -eq "$ndry" -a "$(grep -c '^ignored  ' "$tmp/dry.txt")" -eq "$nign"
check "--dry-run: pydicom's READMEs are ignored (no DICOM by name)" grep -q '"path":"pydicom/README.txt"' "$tmp/dry.jsonl"

# the run
"$bin" batch "$root" --out "$tmp/out" "${opts[@]}" --json >"$tmp/run.json" 2>"$tmp/run.err"
rc=$?
check "the run exits 2 (some studies and files fail)" test $rc -eq 2
check "the summary counts every study of the dry run" py -c "
import json, sys
s = json.load(open('$tmp/run.json'))
sys.exit(not (s['total'] == $ndry and s['ignored_files'] == $nign and s['done'] + s['failed'] == s['total']
              and s['processed'] == s['total']
              and s['file_errors'] > 0 and s['stages']['device_ms'] > 0 and s['stages']['prepare_ms'] > 0))"
check "log lines on a pipe, not a progress bar" grep -q "^radfuse: batch: [0-9]*/[0-9]* studies" "$tmp/run.err"
"$bin" dicom ls "$root/pydicom" --json >"$tmp/ls.jsonl" 2>/dev/null
check "every good study once, every failure reported" py "$checker" export "$work" "$tmp/out" "$tmp/ls.jsonl"
check "results, folders and no leftovers" py "$checker" once "$tmp/out"
check "state.sqlite is in WAL mode" test "$(sqlite3 "$tmp/out/state.sqlite" 'PRAGMA journal_mode')" = wal

# a few studies against radfuse read of the same inputs (one per layout, and the prior)
py - "$work/expect.json" >"$tmp/picks.tsv" <<'EOF'
import json, sys
ex = json.load(open(sys.argv[1]))
seen = set()
for r, e in sorted(ex["rows"].items(), key=lambda x: int(x[0])):
    if e["lateral"] or (int(r) % 10 in seen and r != "1"):
        continue
    seen.add(int(r) % 10)
    args = [e["study"], "--study", e["uid"]]
    for n in e["notes"]:
        args += ["--notes", n]
    for l in e["labs"]:
        args += ["--labs", l]
    if e["prior"]:
        args += ["--prior", e["prior"]]
    print("\t".join([e["uid"]] + args))
EOF
while IFS=$'\t' read -r -a a; do
  uid=${a[0]}
  "$bin" read "${a[@]:1}" --model "$model" --saliency none --device cpu --json >"$tmp/read.json" 2>/dev/null
  check "study $uid: as radfuse read reads it" py "$checker" read "$tmp/out" "$uid" "$tmp/read.json"
done <"$tmp/picks.tsv"
check "the read comparison covered the layouts" test "$(wc -l <"$tmp/picks.tsv")" -ge 8
# Grad-CAM (the default saliency) on one study with notes and labs, as radfuse read gives it
IFS=$'\t' read -r -a a <"$tmp/picks.tsv"
# the first pick is row 0: ROOT/tree/p0/study/0.dcm with its note in ROOT/tree/p0
"$bin" batch "$root/tree/p0" --out "$tmp/gradcam" --model "$model" --saliency gradcam --device cpu >/dev/null 2>&1
check "Grad-CAM: the batch of one study exits 0" test $? -eq 0
"$bin" read "${a[@]:1}" --model "$model" --saliency gradcam --device cpu --json >"$tmp/read.json" 2>/dev/null
check "Grad-CAM: as radfuse read gives it (findings, input weights, map peaks, spans)" \
  py "$checker" read "$tmp/gradcam" "${a[0]}" "$tmp/read.json"
check "Grad-CAM: the overlays are in the study's folder" \
  bash -c "ls '$tmp/gradcam/studies/'*/overlays/*.png >/dev/null"

# the device stage's batches: one study at a time and up to 8 (their images through the vision
# encoder in one pass) give the same results, Grad-CAM included (it is device-bound, so studies
# wait and batches form)
for sal in none gradcam; do
  for db in 1 8; do
    "$bin" batch "$root/bare" --out "$tmp/db$db.$sal" --model "$model" --saliency $sal --jobs 2 --device cpu \
      --outputs json --device-batch $db --json >"$tmp/db$db.$sal.json" 2>/dev/null
  done
  check "--device-batch 1 and 8 ($sal): the same results.jsonl (probabilities within 1e-6)" \
    py - "$tmp/db1.$sal/results.jsonl" "$tmp/db8.$sal/results.jsonl" <<'EOF2'
import json, sys
def load(p):
    out = {}
    for l in open(p):
        j = json.loads(l)
        for k in ("created", "timings"):
            j.pop(k, None)
        out[j["study"]["study_instance_uid"]] = j
    return out
def same(a, b, where):
    if isinstance(a, dict) and isinstance(b, dict):
        return set(a) == set(b) and all(same(a[k], b[k], where + "." + k) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y, where) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return abs(a - b) <= 1e-6
    return a == b
a, b = load(sys.argv[1]), load(sys.argv[2])
bad = [u for u in a if u not in b or not same(a[u], b[u], u)]
print("%d studies, %d differ" % (len(a), len(bad)))
sys.exit(1 if not a or set(a) != set(b) or bad else 0)
EOF2
done
check "--device-batch: the summary counts the batches (1: one study each; 8: several)" py -c "
import json, sys
one = json.load(open('$tmp/db1.gradcam.json'))['stages']; many = json.load(open('$tmp/db8.gradcam.json'))['stages']
n = json.load(open('$tmp/db1.gradcam.json'))['done']
sys.exit(not (one['device_batch_mean'] == 1 and one['device_batches'] == n and many['device_batch_mean'] > 1
              and many['device_batch_mean'] <= 8 and many['device_batches'] < n and many['device_ms'] > 0))"
"$bin" batch "$root" --out "$tmp/x" --device-batch 0 >/dev/null 2>&1
check "--device-batch 0: usage, exit 1" test $? -eq 1

# a second run: nothing to do, nothing changes
cp "$tmp/out/results.jsonl" "$tmp/results.first"
"$bin" batch "$root" --out "$tmp/out" "${opts[@]}" --json >"$tmp/run2.json" 2>/dev/null
check "a second run exits 2 again (the failures stay)" test $? -eq 2
check "a second run processes nothing" py -c "
import json, sys
s = json.load(open('$tmp/run2.json')); f = json.load(open('$tmp/run.json'))
sys.exit(not (s['processed'] == 0 and s['done_before'] == f['done'] and s['failed'] == f['failed']))"
check "a second run leaves results.jsonl as it was" cmp -s "$tmp/out/results.jsonl" "$tmp/results.first"
"$bin" batch "$root" --out "$tmp/out" "${opts[@]}" --retry-failed --json >"$tmp/run3.json" 2>/dev/null
check "--retry-failed runs the failed studies again" py -c "
import json, sys
s = json.load(open('$tmp/run3.json')); f = json.load(open('$tmp/run.json'))
att = [json.loads(l).get('attempts') for l in open('$tmp/out/errors.jsonl') if '\"kind\":\"study\"' in l]
sys.exit(not (s['processed'] == f['failed'] and s['failed'] == f['failed'] and att and all(a == 2 for a in att)))"
check "--retry-failed leaves the results as they were" cmp -s "$tmp/out/results.jsonl" "$tmp/results.first"

# shards: the documented hash, and their merge equals the single run
for i in 0 1; do
  "$bin" batch "$root" --out "$tmp/shard$i" "${opts[@]}" --shard $i/2 --outputs json >/dev/null 2>&1
  check "shard $i/2 exits 2 (its failures)" test $? -eq 2
  check "shard $i/2 holds the studies whose hash gives $i" py -c "
import hashlib, json, sys
uids = [json.loads(l)['study']['study_instance_uid'] for l in open('$tmp/shard$i/results.jsonl')]
uids += [json.loads(l)['study_instance_uid'] for l in open('$tmp/shard$i/errors.jsonl') if '\"kind\":\"study\"' in l]
sys.exit(not uids or any(int(hashlib.sha256(u.encode()).hexdigest()[:16], 16) % 2 != $i for u in uids))"
done
"$bin" batch merge "$tmp/merged" "$tmp/shard0" "$tmp/shard1" >"$tmp/merge.txt" 2>&1
check "merge exits 0" test $? -eq 0
check "the merge equals the single run (studies, probabilities, errors)" py "$checker" same "$tmp/merged" "$tmp/out"
check "the merge: folders and no leftovers" py "$checker" once "$tmp/merged"
check "a merge is a batch directory: a run on it has nothing to do" bash -c \
  "'$bin' batch '$root' --out '$tmp/merged' --model '$model' --manifest '$manifest' --saliency none --device cpu --retry-failed --json 2>/dev/null | grep -q '\"processed\":$(py -c "import json; print(json.load(open('$tmp/run.json'))['failed'])"),'"
"$bin" batch merge "$tmp/merged2" "$tmp/shard0" "$tmp/shard0" >"$tmp/merge2.txt" 2>&1
check "overlapping shards with the same results merge (duplicates dropped)" grep -q "duplicate" "$tmp/merge2.txt"
cp -a "$tmp/shard0" "$tmp/shard0x"
py - "$tmp/shard0x/results.jsonl" <<'EOF'
import json, sys
lines = open(sys.argv[1]).read().splitlines()
j = json.loads(lines[0])
j["findings"][0]["probability"] = 0.123456
lines[0] = json.dumps(j, separators=(",", ":"))
open(sys.argv[1], "w").write("\n".join(lines) + "\n")
EOF
"$bin" batch merge "$tmp/merged3" "$tmp/shard0" "$tmp/shard0x" >"$tmp/merge3.txt" 2>&1
check "overlapping shards with different results: refused with exit 2" test $? -eq 2
check "... naming the study" grep -q "different results" "$tmp/merge3.txt"
# a shard killed before it had recorded its study count: the state it leaves (model and shard,
# no total, no study; an empty results.jsonl) cannot say what the shard lacks
cp -a "$tmp/shard1" "$tmp/shard1k"
sqlite3 "$tmp/shard1k/state.sqlite" "DELETE FROM meta WHERE name = 'total'; DELETE FROM studies;"
: >"$tmp/shard1k/results.jsonl"
rm -rf "$tmp/shard1k/studies"/*
"$bin" batch merge "$tmp/merged5" "$tmp/shard0" "$tmp/shard1k" >"$tmp/merge5.txt" 2>&1
check "a shard killed before it recorded its study count: the merge is refused (exit 2)" test $? -eq 2
check "... naming the shard and why" grep -q "shard1k: its run stopped before it had listed" "$tmp/merge5.txt"
check "... and nothing is written" test ! -e "$tmp/merged5"
"$bin" batch merge "$tmp/merged6" "$tmp/shard0" "$tmp/never" >"$tmp/merge6.txt" 2>&1
check "a shard directory that does not exist: refused, saying so" \
  bash -c "test $? -eq 2 && grep -q 'never: no results.jsonl' '$tmp/merge6.txt'"
# killed after it: the merge is written and says the shard has not finished
cp -a "$tmp/shard1" "$tmp/shard1p"
sqlite3 "$tmp/shard1p/state.sqlite" "DELETE FROM studies WHERE rowid IN (SELECT rowid FROM studies LIMIT 3);"
"$bin" batch merge "$tmp/merged7" "$tmp/shard0" "$tmp/shard1p" >"$tmp/merge7.txt" 2>&1
check "a shard killed after it: the merge exits 2, 3 studies not processed" \
  bash -c "test $? -eq 2 && grep -q '3 studies of the shards are not processed yet' '$tmp/merge7.txt'"

# usage and refusals
"$bin" batch >/dev/null 2>&1
check "no ROOT: usage, exit 1" test $? -eq 1
"$bin" batch "$root" --out "$tmp/x" --shard 2/2 >/dev/null 2>&1
check "--shard 2/2: usage, exit 1" test $? -eq 1
"$bin" model random --arch fusion_tiny --out "$tmp/model2" --seed 7 >/dev/null
"$bin" batch "$root" --out "$tmp/out" --model "$tmp/model2" --saliency none --device cpu >/dev/null 2>"$tmp/other.err"
check "another model on the same directory: exit 2" test $? -eq 2
check "... saying why" grep -q "another model" "$tmp/other.err"
"$bin" batch "$root/bare" --out "$tmp/model2out" --model "$tmp/model2" --saliency none --device cpu --outputs json \
  >/dev/null 2>&1
"$bin" batch merge "$tmp/merged4" "$tmp/shard0" "$tmp/model2out" >/dev/null 2>"$tmp/merge4.err"
check "a merge of two models' results: refused with exit 2" test $? -eq 2
check "... naming the models" grep -q "results of model" "$tmp/merge4.err"
"$bin" batch "$root" --out "$tmp/shard0" "${opts[@]}" --shard 1/2 >/dev/null 2>"$tmp/shardx.err"
check "another shard on a shard's directory: refused" grep -q "holds shard 0/2" "$tmp/shardx.err"
finish
