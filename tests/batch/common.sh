# Shared by tests/test_batch*.sh: the binary, the shared data, a temporary directory removed
# on exit, check/fatal helpers and the small random test model (fusion_tiny with a text
# encoder over the fixture vocabulary). Source it after setting `name`. KEEP=DIR copies the
# temporary directory there on exit (to look at a failure).
set -uo pipefail
bin=${RADFUSE_BIN:?RADFUSE_BIN must name the radfuse binary}
src=${RADFUSE_SOURCE:?RADFUSE_SOURCE must name the source tree}
shared=${RADFUSE_SHARED:-$src/../shared}
[[ -d $shared/data/covid-chestxray && -f $shared/fixtures/tokenizer/vocab.txt ]] ||
  { echo "$name: shared data not found at $shared (set RADFUSE_SHARED)" >&2; exit 1; }
for tool in python3 dcmconv dcmcjpeg dcmcrle dcmcjpls dcmodify dcmdump sqlite3; do
  command -v "$tool" >/dev/null || { echo "$name: $tool is missing (scripts/install-deps.sh)" >&2; exit 1; }
done
tmp=$(mktemp -d /tmp/radfuse-$name-XXXXXX)
cleanup_extra() { :; }
cleanup() {
  [[ -n ${KEEP:-} ]] && { cp -r "$tmp" "$KEEP"; }
  cleanup_extra
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
failures=0
checks=0
check() { # check DESCRIPTION COMMAND...
  local what=$1
  shift
  checks=$((checks + 1))
  if ! "$@"; then
    echo "$name: FAILED: $what" >&2
    failures=$((failures + 1))
    return 1
  fi
}
fatal() {
  echo "$name: FAILED: $*" >&2
  exit 1
}
finish() {
  if ((failures)); then
    echo "$name: $failures of $checks checks failed" >&2
    exit 1
  fi
  echo "$name: all $checks checks passed"
}
py() { /usr/bin/python3 "$@"; }
checker=$src/tests/batch/check.py
make_export() { # make_export WORK ARGS...: tests/batch/make_export.py
  local work=$1
  shift
  py "$src/tests/batch/make_export.py" --bin "$bin" --shared "$shared" --work "$work" "$@" ||
    fatal "building the export failed"
}
"$bin" model random --arch fusion_tiny --vocab "$shared/fixtures/tokenizer/vocab.txt" --out "$tmp/model" >/dev/null ||
  fatal "radfuse model random failed"
model=$tmp/model
