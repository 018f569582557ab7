# Shared by tests/test_batch*.sh, on top of tests/lib.sh (the binary, the shared data, a
# temporary directory removed on exit, check/run helpers): the tools the batch tests need and
# the small random test model (fusion_tiny with a text encoder over the fixture vocabulary).
# Source it after setting `name`.
source "${RADFUSE_SOURCE:?RADFUSE_SOURCE must name the source tree}/tests/lib.sh"
need_shared data/covid-chestxray fixtures/tokenizer/vocab.txt
need_tools python3 dcmconv dcmcjpeg dcmcrle dcmcjpls dcmodify dcmdump sqlite3
make_tmp
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
