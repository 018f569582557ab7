#!/usr/bin/env bash
# `radfuse batch` on a full disk: the output directory on a 2 MiB tmpfs (mounted by the test,
# which needs root: CI runs as root; a failed mount fails the test) fills after a few
# studies. The batch must stop with exit 2 and a clear error (no space left), its state
# consistent (each recorded study once in results.jsonl and in the state, no leftovers);
# copied to a bigger disk it resumes and completes identically to a run that never ran out of
# space; and resumed in place after the tmpfs is remounted larger, it completes identically
# too. An export without failures exits 0, with a progress bar on a terminal.
name=test_batch_disk
source "${RADFUSE_SOURCE:?}/tests/batch/common.sh"

small=$tmp/small
mkdir -p "$small"
mount -t tmpfs -o size=2m tmpfs "$small" 2>"$tmp/mount.err" ||
  fatal "cannot mount a tmpfs at $small (this test needs root: $(cat "$tmp/mount.err"))"
cleanup_extra() { umount "$small" 2>/dev/null; }

work=$tmp/export
make_export "$work" --studies 24 --first 300 --frontal-only
root=$work/root
opts=(--model "$model" --manifest "$work/side/manifest.csv" --saliency none --jobs 2 --device cpu)

"$bin" batch "$root" --out "$tmp/ref" "${opts[@]}" >/dev/null 2>&1
check "the reference run exits 2 (the manifest row without a study)" test $? -eq 2
check "the reference run: 24 studies" py "$checker" once "$tmp/ref" --studies 24

"$bin" batch "$root" --out "$small/out" "${opts[@]}" >"$tmp/full.out" 2>"$tmp/full.err"
check "a full disk: exit 2" test $? -eq 2
check "a full disk: the error says so" grep -qi "no space left on device\|disk is full" "$tmp/full.err"
check "a full disk: the batch says it stopped and how to go on" grep -q "stopped; every study recorded so far is kept" "$tmp/full.err"
n=$(wc -l <"$small/out/results.jsonl")
check "a full disk: some studies were recorded before ($n)" test "$n" -ge 1 -a "$n" -lt 24
check "a full disk: each recorded study once, no leftovers" py "$checker" once "$small/out" --studies "$n"
check "a full disk: the state records what results.jsonl holds" \
  test "$(sqlite3 "$small/out/state.sqlite" "SELECT count(*) FROM studies WHERE status = 'done'")" -eq "$n"

# the state copied to a bigger disk resumes there
cp -a "$small/out" "$tmp/big"
"$bin" batch "$root" --out "$tmp/big" "${opts[@]}" --json >"$tmp/big.json" 2>/dev/null
check "copied to a bigger disk: completes (exit 2 only for the manifest row)" test $? -eq 2
check "... processing only what was missing" py -c "
import json, sys
s = json.load(open('$tmp/big.json'))
sys.exit(not (s['done_before'] == $n and s['processed'] == 24 - $n and s['done'] == 24))"
check "... each study once, folders, no leftovers" py "$checker" once "$tmp/big" --studies 24
check "... results equal the reference's" py "$checker" same "$tmp/big" "$tmp/ref"

# the same directory, resumed in place on a tmpfs remounted larger
mount -o remount,size=64m "$small" || fatal "cannot remount $small larger"
"$bin" batch "$root" --out "$small/out" "${opts[@]}" >/dev/null 2>&1
check "remounted larger: completes in place" test $? -eq 2
check "... each study once, folders, no leftovers" py "$checker" once "$small/out" --studies 24
check "... results equal the reference's" py "$checker" same "$small/out" "$tmp/ref"

# exit status 0 when nothing fails (no manifest: its row without a study is the only error),
# and the progress bar on a terminal (script gives the batch a pseudo-terminal)
script -qec "'$bin' batch '$root' --out '$tmp/clean' --model '$model' --saliency none --device cpu --outputs json" \
  /dev/null >"$tmp/tty.txt" 2>&1
check "an export without failures: exit 0" test $? -eq 0
check "... a progress bar on a terminal" grep -q $'\r\\[#*\\] 24/24 studies' "$tmp/tty.txt"
finish
