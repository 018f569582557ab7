# Shared by the command-line tests (tests/test_*.sh, tests/batch/common.sh): the binary, the
# source tree, the shared data ($RADFUSE_SHARED, else ../shared beside the source), the
# checks for data and tools, a temporary directory removed on exit, and the check/run
# helpers. Source it after setting `name`. KEEP=DIR copies the temporary directory there on
# exit (to look at a failure).
set -uo pipefail
bin=${RADFUSE_BIN:?RADFUSE_BIN must name the radfuse binary}
src=${RADFUSE_SOURCE:?RADFUSE_SOURCE must name the source tree}
shared=${RADFUSE_SHARED:-$src/../shared}
failures=0
checks=0

need_shared() { # need_shared PATH...: each must exist under $shared, else exit 1
  local p
  for p; do
    [[ -e $shared/$p ]] || { echo "$name: shared data not found at $shared (set RADFUSE_SHARED)" >&2; exit 1; }
  done
}
need_tools() { # need_tools TOOL...: each must be on PATH, else exit 1
  local tool
  for tool; do
    command -v "$tool" >/dev/null || { echo "$name: $tool is missing (scripts/install-deps.sh)" >&2; exit 1; }
  done
}

# make_tmp: a fresh directory in $tmp; on exit cleanup_extra (a test may define its own)
# runs, then the directory is removed
cleanup_extra() { :; }
cleanup() {
  [[ -n ${KEEP:-} ]] && { cp -r "$tmp" "$KEEP"; }
  cleanup_extra
  rm -rf "$tmp"
}
make_tmp() {
  tmp=$(mktemp -d "/tmp/radfuse-$name-XXXXXX")
  trap cleanup EXIT
  trap 'exit 130' INT TERM
}

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

# run EXPECTED_STATUS OUT_FILE ERR_FILE ARGS...: radfuse ARGS must exit EXPECTED_STATUS.
# Under ASan the runs on the CPU (--device cpu) are leak-checked; runs that may load a
# Vulkan driver are not (CMakeLists.txt: its leaks are not radfuse's).
run() {
  local want=$1 out=$2 errf=$3
  shift 3
  local asan=${ASAN_OPTIONS:-}
  [[ " $* " == *" --device cpu "* ]] && asan=${asan/detect_leaks=0/detect_leaks=1}
  ASAN_OPTIONS=$asan "$bin" "$@" >"$out" 2>"$errf"
  local got=$?
  if [[ $got -ne $want ]]; then
    echo "$name: 'radfuse $*' exited $got, expected $want; stderr:" >&2
    sed 's/^/  /' "$errf" >&2
    return 1
  fi
}
