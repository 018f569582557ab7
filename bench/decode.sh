#!/usr/bin/env bash
# DICOM decode throughput: radfuse against DCMTK's and GDCM's own command-line
# tools on the same files in the same run (corpus: bench/decode_corpus.sh).
# Per transfer syntax, every file is decoded by
#   radfuse in-proc   bench/decode_bench: rf_dicom_read(RF_DICOM_PIXELS) in one process,
#                     files handed out to a pool of 1 or all threads
#   radfuse per proc  `decode_bench --once FILE`: the same call, one process per file
#   radfuse CLI       `radfuse dicom ls --json FILE`, one process per file (also hashes
#                     the decoded values with SHA-256 and prints a JSON line)
#   DCMTK             `dcmj2pnm -o FILE` (`dcml2pnm` for JPEG-LS: the same program built
#                     with the JPEG-LS decoder), one process per file; none for JPEG 2000
#   GDCM              `gdcmconv --raw FILE OUT`, one process per file, OUT on tmpfs
# One core: taskset to CPU 0 (processes one after another, or one thread); all
# cores: xargs -P nproc, or a pool of nproc threads. Best of ITERS passes (the
# first pass also warms the page cache), wall time and CPU time (user + system,
# children included), the latter being less sensitive to other load on the
# machine. Prints one JSON line per measurement and tables with ratios (peer
# time / radfuse time: above 1, radfuse is faster).
#   bench/decode.sh [ITERS]      env: BUILD (build), CORPUS, COUNT (24), SYNTAXES
set -euo pipefail
cd "$(dirname "$0")/.."
iters=${1:-3}
build=${BUILD:-build}
corpus=${CORPUS:-${TMPDIR:-/tmp}/radfuse-decode-corpus}
count=${COUNT:-24}
ncores=$(nproc)
syntaxes=(${SYNTAXES:-explicit-le jpeg-lossless-sv1 jpeg-ls-lossless rle j2k-lossless jpeg-baseline-8bit real-jpeg-baseline})
for tool in dcmj2pnm dcml2pnm gdcmconv taskset python3 /usr/bin/time; do
  command -v $tool >/dev/null || { echo "decode: $tool missing: scripts/install-deps.sh --bench" >&2; exit 1; }
done
[[ -f $build/build.ninja ]] || cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" --target radfuse decode_bench cxr_synth >/dev/null
BUILD=$build bench/decode_corpus.sh "$corpus" "$count"
# tmpfs, so that GDCM's written output costs memory bandwidth, not a disk
scratch=$(mktemp -d /dev/shm/radfuse-decode.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
results=$scratch/results.jsonl
# OpenJPEG reads this at codec creation; both radfuse and GDCM decode JPEG 2000 through it
unset OPJ_NUM_THREADS
echo "# machine: $ncores cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# $(dcmj2pnm --version | head -1 | tr -d '$' | xargs); $(gdcmconv --version 2>&1 | head -1 | sed 's/ *[$]Date[$]//');" \
  "OpenJPEG $(dpkg-query -W -f '${Version}' libopenjp2-7 2>/dev/null); corpus $corpus"

# wall and CPU time of ITERS runs of a command: the best of each, and the median wall
time_runs() { # impl syntax cores files cmd...
  local impl=$1 syntax=$2 cores=$3 files=$4 t0 t1 walls=() cpus=()
  shift 4
  for ((k = 0; k < iters; k++)); do
    t0=$(date +%s%N)
    /usr/bin/time -o "$scratch/time" -f '%U %S' "$@" >/dev/null
    t1=$(date +%s%N)
    walls+=("$(((t1 - t0) / 1000))")
    cpus+=("$(awk '{print $1 + $2}' "$scratch/time")")
  done
  python3 -c 'import json,sys
a = sys.argv; k = int(a[5]); w = sorted(int(x) / 1e6 for x in a[6:6 + k]); c = min(float(x) for x in a[6 + k:])
print(json.dumps({"impl": a[1], "syntax": a[2], "cores": int(a[3]), "files": int(a[4]), "best_s": w[0],
                  "median_s": w[len(w) // 2], "cpu_s": c}))' \
    "$impl" "$syntax" "$cores" "$files" "$iters" "${walls[@]}" "${cpus[@]}" | tee -a "$results"
}

for syntax in "${syntaxes[@]}"; do
  dir=$corpus/$syntax
  list=$scratch/$syntax.list
  find "$dir" -name '*.dcm' | sort >"$list"
  n=$(wc -l <"$list")
  mkdir -p "$scratch/out"
  # GDCM gets input/output pairs: every process writes its own file
  pairs=$scratch/$syntax.pairs
  while read -r f; do printf '%s\n%s\n' "$f" "$scratch/out/${f##*/}"; done <"$list" >"$pairs"

  # the same work: every lossless syntax decodes to the uncompressed file's values,
  # and GDCM's output read back gives radfuse's values (lossy JPEG included: both are IJG)
  xargs -a "$list" -d '\n' "$build/radfuse" dicom ls --json | python3 -c '
import json, sys
for line in sys.stdin:
    r = json.loads(line); print(r["path"].rsplit("/", 1)[1], r["pixel_sha256"])' >"$scratch/$syntax.sha"
  case $syntax in
    explicit-le|jpeg-lossless-sv1|jpeg-ls-lossless|rle|j2k-lossless)
      if [[ -f $scratch/explicit-le.sha ]] && ! cmp -s "$scratch/explicit-le.sha" "$scratch/$syntax.sha"; then
        echo "decode: $syntax does not decode to the uncompressed values" >&2; exit 1
      fi ;;
  esac
  first=$(head -1 "$list")
  gdcmconv --raw "$first" "$scratch/check.dcm"
  a=$("$build/radfuse" dicom ls --json "$scratch/check.dcm" | grep -o '"pixel_sha256":"[0-9a-f]*"')
  b=$("$build/radfuse" dicom ls --json "$first" | grep -o '"pixel_sha256":"[0-9a-f]*"')
  [[ $a == "$b" ]] || { echo "decode: GDCM and radfuse decode $first differently" >&2; exit 1; }

  taskset -c 0 "$build/decode_bench" --threads 1 --iters "$iters" --label "$syntax" "$dir" | tee -a "$results"
  "$build/decode_bench" --threads 0 --iters "$iters" --label "$syntax" "$dir" | tee -a "$results"
  for cores in 1 "$ncores"; do
    pin=()
    [[ $cores == 1 ]] && pin=(taskset -c 0)
    time_runs radfuse-proc "$syntax" "$cores" "$n" \
      "${pin[@]}" xargs -a "$list" -d '\n' -P "$cores" -n 1 "$build/decode_bench" --once
    time_runs radfuse-cli "$syntax" "$cores" "$n" \
      "${pin[@]}" xargs -a "$list" -d '\n' -P "$cores" -n 1 "$build/radfuse" dicom ls --json
    dcmtk=dcmj2pnm
    [[ $syntax == jpeg-ls* ]] && dcmtk=dcml2pnm
    [[ $syntax == j2k* ]] || time_runs dcmtk "$syntax" "$cores" "$n" \
      "${pin[@]}" xargs -a "$list" -d '\n' -P "$cores" -n 1 "$dcmtk" -o
    time_runs gdcm "$syntax" "$cores" "$n" \
      "${pin[@]}" xargs -a "$pairs" -d '\n' -P "$cores" -n 2 gdcmconv --raw
  done
  rm -rf "$scratch/out"
done

python3 - "$results" "$ncores" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
ncores = int(sys.argv[2])
size = {}  # syntax -> (files, decoded bytes, input bytes), from decode_bench
t = {}     # (syntax, impl, cores) -> (best wall s, least CPU s)
for r in rows:
    if r["impl"] == "radfuse-inproc":
        s, c = r["label"], r["threads"]
        size[s] = (r["files"], r["decoded_bytes"], r["input_bytes"])
    else:
        s, c = r["syntax"], r["cores"]
    t[(s, r["impl"], c)] = (r["best_s"], r["cpu_s"])
names = {"radfuse-inproc": "radfuse in-proc", "radfuse-proc": "radfuse per proc", "radfuse-cli": "radfuse CLI",
         "dcmtk": "DCMTK dcm*2pnm -o", "gdcm": "GDCM gdcmconv --raw"}
print("\nthroughput, best pass (MB = 10^6 bytes; dec: decoded stored values; in: files as stored;"
      " CPU ms/img: user + system on one core)")
print(f"{'syntax':<19} {'impl':<20} {'1 core img/s':>12} {'dec MB/s':>9} {'in MB/s':>8} {'CPU ms/img':>10}"
      f" {f'{ncores} cores img/s':>14} {'dec MB/s':>9} {'in MB/s':>8}")
for s in size:
    n, dec, inp = size[s]
    print(f"{s:<19} ({n} files, {dec / n / 1e6:.1f} MB decoded each, {dec / inp:.1f}:1)")
    for impl, name in names.items():
        one, many = t.get((s, impl, 1)), t.get((s, impl, ncores))
        cell = lambda x: f"{n / x[0]:9.2f} {dec / 1e6 / x[0]:9.1f} {inp / 1e6 / x[0]:8.1f}" if x else f"{'-':>9} {'-':>9} {'-':>8}"
        cpu = f"{one[1] / n * 1e3:10.1f}" if one else f"{'-':>10}"
        print(f"{'':<19} {name:<20} {cell(one):>32} {cpu} {cell(many):>32}")
print("\nratios: peer / radfuse time (above 1: radfuse is faster); 1c: one core, wall; cpu: one core, CPU time")
print(f"{'syntax':<19} {'radfuse':<17} {'vs DCMTK: 1c':>12} {'cpu':>6} {f'{ncores}c':>6} {'vs GDCM: 1c':>12} {'cpu':>6} {f'{ncores}c':>6}")
for s in size:
    for ours in ("radfuse-inproc", "radfuse-proc", "radfuse-cli"):
        cells = []
        for peer in ("dcmtk", "gdcm"):
            for c, k in ((1, 0), (1, 1), (ncores, 0)):
                a, b = t.get((s, ours, c)), t.get((s, peer, c))
                cells.append(f"{b[k] / a[k]:5.2f}x" if a and b else f"{'-':>6}")
        print(f"{s:<19} {names[ours][8:]:<17} {cells[0]:>12} {cells[1]} {cells[2]} {cells[3]:>12} {cells[4]} {cells[5]}")
PY
