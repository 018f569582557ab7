#!/usr/bin/env bash
# `radfuse batch` killed with SIGKILL at random moments and restarted: 22 kills of a running
# batch (a seeded generator; half of them 0.05 s to 1.2 s after the start, half 0 to 0.4 s
# after the run recorded a study: in the middle of the pipeline whatever the machine's speed),
# each followed by a restart of the same command, then a restart left to complete; then
# results.jsonl has each study exactly once, every study has its folder, no temporary file
# or folder is left, and the probabilities and failures equal those of an uninterrupted run.
# Then the reconciliation cases one by one: a torn write and a partial last line are cut, a
# line whose state commit was lost is recorded (not repeated), leftovers of unfinished writes
# are removed, a results.jsonl shorter than the state says is refused, and so is a directory
# another batch holds.
name=test_batch_kill
source "${RADFUSE_SOURCE:?}/tests/batch/common.sh"

work=$tmp/export
make_export "$work" --studies 48 --first 200 --frontal-only
root=$work/root
opts=(--model "$model" --manifest "$work/side/manifest.csv" --saliency none --jobs 2 --queue 2 --device cpu)

"$bin" batch "$root" --out "$tmp/ref" "${opts[@]}" >/dev/null 2>"$tmp/ref.err"
# the manifest's row without a study is the one error
check "the uninterrupted run exits 2 (the manifest row without a study)" test $? -eq 2
check "the uninterrupted run: 48 studies once" py "$checker" once "$tmp/ref" --studies 48

lines() { if [[ -f $1 ]]; then wc -l <"$1"; else echo 0; fi; }
RANDOM=20261123
kills=0 rounds=0 progressed=0
while ((kills < 22 && rounds < 8)); do
  rounds=$((rounds + 1))
  out=$tmp/out$rounds
  while :; do
    before=$(lines "$out/results.jsonl")
    "$bin" batch "$root" --out "$out" "${opts[@]}" >/dev/null 2>>"$tmp/kill.err" &
    pid=$!
    if ((RANDOM % 2)); then
      # a moment from the start: start-up, listing, reconciling, the first studies
      d=$((5 + RANDOM % 115))
    else
      # a moment after the run recorded a study of its own, whatever the machine's speed
      for ((w = 0; w < 3000; w++)); do
        (($(lines "$out/results.jsonl") > before)) || ! kill -0 "$pid" 2>/dev/null && break
        sleep 0.02
      done
      d=$((RANDOM % 40))
    fi
    sleep "$(printf '%d.%02d' $((d / 100)) $((d % 100)))"
    # once enough kills are done, the round runs to its end
    if ((kills < 22)) && kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null; then
      wait "$pid" 2>/dev/null
      kills=$((kills + 1))
      # killed after it had recorded studies: in the middle of the pipeline, not at start-up
      (($(lines "$out/results.jsonl") > before)) && progressed=$((progressed + 1))
      continue
    fi
    wait "$pid"
    rc=$?
    check "round $rounds: the run that completed exits 2 (the manifest row)" test $rc -eq 2
    break
  done
  check "round $rounds: each study once, folders, no leftovers" py "$checker" once "$out" --studies 48
  check "round $rounds: results equal the uninterrupted run's" py "$checker" same "$out" "$tmp/ref"
done
echo "$name: $kills kills in $rounds rounds, $progressed of them after the run had recorded studies"
check "at least 20 runs were killed while running ($kills)" test "$kills" -ge 20
check "at least 5 of them in the middle of the pipeline ($progressed)" test "$progressed" -ge 5

# reconciliation, case by case, on a completed directory
out=$tmp/out1
count_done() { sqlite3 "$out/state.sqlite" "SELECT count(*) FROM studies WHERE status = 'done'"; }
# a torn write (zeros, as a power loss may leave past the last fsync), a partial last line
# (a kill in the middle of an append) and leftovers of unfinished writes
printf '\0\0\0\0\0\0\n{"schema_version":"1.0","study":{"study_instance_uid":"1.2.3' >>"$out/results.jsonl"
mkdir -p "$out/studies/0123456789abcdef.tmp/overlays"
echo x >"$out/studies/0123456789abcdef.tmp/result.json.tmp.999"
echo x >"$out/errors.jsonl.tmp.12345"
"$bin" batch "$root" --out "$out" "${opts[@]}" >/dev/null 2>&1
check "a torn write and a partial last line are cut, leftovers removed" py "$checker" once "$out" --studies 48
check "... and the results are as before" py "$checker" same "$out" "$tmp/ref"
# a line whose state commit was lost (a kill between the fsync and the commit)
last_uid=$(tail -n 1 "$out/results.jsonl" | py -c "import json,sys; print(json.load(sys.stdin)['study']['study_instance_uid'])")
sqlite3 "$out/state.sqlite" "DELETE FROM studies WHERE uid = '$last_uid'"
check "the state lacks the study" test "$(count_done)" -eq 47
"$bin" batch "$root" --out "$out" "${opts[@]}" --json >"$tmp/rec.json" 2>/dev/null
check "the line is recorded from results.jsonl, the study not read again" py -c "
import json, sys
s = json.load(open('$tmp/rec.json'))
sys.exit(not (s['processed'] == 0 and s['done_before'] == 48))"
check "the state has it again" test "$(count_done)" -eq 48
check "... exactly once in results.jsonl" py "$checker" once "$out" --studies 48
# results.jsonl cut short by something else: refused, nothing changed
head -n 40 "$out/results.jsonl" >"$tmp/cut.jsonl"
cp "$tmp/cut.jsonl" "$out/results.jsonl"
"$bin" batch "$root" --out "$out" "${opts[@]}" >/dev/null 2>"$tmp/cut.err"
check "a results.jsonl shorter than the state: exit 2" test $? -eq 2
check "... saying so" grep -q "cut by something else" "$tmp/cut.err"
check "... and leaving it alone" cmp -s "$out/results.jsonl" "$tmp/cut.jsonl"
# two processes on one directory would append the same studies twice: the second is refused
cp "$tmp/ref/results.jsonl" "$tmp/ref.results"
flock "$tmp/ref/lock" sleep 30 &
holder=$!
sleep 0.3
"$bin" batch "$root" --out "$tmp/ref" "${opts[@]}" --retry-failed >/dev/null 2>"$tmp/busy.err"
check "a directory in use by another batch: exit 2" test $? -eq 2
check "... saying so" grep -q "in use by another radfuse batch" "$tmp/busy.err"
check "... and leaving it alone" cmp -s "$tmp/ref/results.jsonl" "$tmp/ref.results"
kill "$holder" 2>/dev/null
wait "$holder" 2>/dev/null
finish
