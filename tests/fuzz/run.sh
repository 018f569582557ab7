#!/usr/bin/env bash
# Runs the DICOM fuzz target (tests/fuzz/fuzz_dicom.c, built by `make test-fuzz`):
#   1. every file of tests/data/fuzz-regressions once (past crashers must stay fixed);
#   2. SECONDS of coverage-guided fuzzing, one process, from the corpus kept in
#      build-fuzz/fuzz-corpus (empty on a fresh clone) and the shared DICOM files
#      (${RADFUSE_SHARED:-../shared}/data/dicom) as seeds, with tests/fuzz/dicom.dict.
# Fails on any crash, sanitizer report, leak, timeout (> 10 s per input) or OOM
# (> 2 GiB RSS, or one allocation > 2 GiB) and prints the reproducer's path.
#   tests/fuzz/run.sh BINARY SECONDS [libFuzzer flags...]
# e.g. a longer local run on all cores, going on after a finding:
#   tests/fuzz/run.sh build-fuzz/fuzz_dicom 1800 -fork=$(nproc) -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1
set -euo pipefail
bin=${1:?usage: tests/fuzz/run.sh BINARY SECONDS [libFuzzer flags...]}
seconds=${2:?usage: tests/fuzz/run.sh BINARY SECONDS [libFuzzer flags...]}
shift 2
bin=$(realpath "$bin")
[[ -z ${RADFUSE_SHARED:-} ]] || RADFUSE_SHARED=$(realpath "$RADFUSE_SHARED")
cd "$(dirname "$0")/../.."
out=$(dirname "$bin")
shared=${RADFUSE_SHARED:-../shared}
seeds=$shared/data/dicom
if [[ ! -d $seeds ]]; then
  echo "fuzz: shared DICOM files not found at $seeds (set RADFUSE_SHARED or place shared/ beside the checkout)" >&2
  exit 1
fi
corpus=$out/fuzz-corpus
artifacts=$out/fuzz-artifacts
rm -rf "$artifacts"
mkdir -p "$corpus" "$artifacts"

# Limits: the shim lets a compressed file decode to max(64 MiB, 2048 x its size)
# (docs/imaging.md), held twice while decoding (DCMTK's frame, our copy): inputs
# up to 256 KiB stay within 1 GiB of pixels, so an OOM report is a real excess,
# not the policy. The shared files are up to ~290 KB; longer seeds are cut.
flags=(-timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 -max_len=262144
       -dict=tests/fuzz/dicom.dict -print_final_stats=1)
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}

report() { # the newest artifact, if any
  local a
  a=$(ls -t "$artifacts" 2>/dev/null | head -1)
  if [[ -n $a ]]; then
    echo "fuzz: FAILED ($1); reproducer: $artifacts/$a" >&2
    echo "fuzz: reproduce with: $bin $artifacts/$a" >&2
    echo "fuzz: minimize with: $bin -minimize_crash=1 -max_total_time=60 -exact_artifact_path=min.dcm $artifacts/$a" >&2
  else
    echo "fuzz: FAILED ($1)" >&2
  fi
  exit 1
}

regressions=(tests/data/fuzz-regressions/*.dcm)
echo "fuzz: ${#regressions[@]} regression inputs"
if ! "$bin" "${flags[@]}" -artifact_prefix="$artifacts/" "${regressions[@]}" 2>"$out/fuzz-regressions.log"; then
  tail -60 "$out/fuzz-regressions.log" >&2
  input=$(grep '^Running: ' "$out/fuzz-regressions.log" | tail -1 | cut -d' ' -f2-)
  echo "fuzz: FAILED on regression input $input; reproduce with: $bin $input" >&2
  exit 1
fi

echo "fuzz: fuzzing for ${seconds} s (log: $out/fuzz.log)"
if ! "$bin" "${flags[@]}" -max_total_time="$seconds" -artifact_prefix="$artifacts/" "$@" \
    "$corpus" "$seeds" 2>"$out/fuzz.log"; then
  tail -80 "$out/fuzz.log" >&2
  report "see $out/fuzz.log"
fi
grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|Done )' "$out/fuzz.log" || true
# with -fork and -ignore_* the run goes on after a finding and still exits 0
if [[ -n $(ls "$artifacts") ]]; then
  ls -l "$artifacts" >&2
  report "findings kept in $artifacts"
fi
echo "fuzz: ok ($(ls "$corpus" | wc -l) inputs in $corpus)"
