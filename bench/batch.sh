#!/usr/bin/env bash
# `radfuse batch` throughput on the CPU: studies/s over an export of covid-chestxray rows
# (`radfuse dataset study`: one DX/CR image, a note and, for some rows, labs per study) read
# by a small random fusion model (`model random --arch fusion_tiny`), against the naive loop
# an operator would otherwise write, in the same run:
#   batch --jobs J     one `radfuse batch` process: J workers (decode, preprocess, write a
#                      study's outputs), one device stage, one committer (fresh output
#                      directory each pass)
#   read loop          one `radfuse read STUDY --notes --labs --out --no-dicom` process per
#                      study, one after another (the outputs batch writes per study:
#                      result.json, report.html, report.fhir.json, overlays)
#   read loop -P cores the same processes, `xargs -P nproc` at once
# Every pass must give the same studies with the same probabilities (within 1e-5) as the
# first batch pass, so all compute the same thing. Best of ITERS passes, wall time of the
# whole command (model load and export listing included), and the least CPU time (user +
# system, children included: steadier than the wall time on a shared machine). The batch's
# own summary (its stage timings: busy time of the workers, the device stage and the
# committer, and the device stage's wait for input) is printed for the best pass.
# Ratios: naive time / batch time.
# SALIENCY (default none) goes to both: with gradcam (batch's default) every study also gets
# its saliency maps, overlay PNGs and their copies in report.html, which dominate.
#   bench/batch.sh [STUDIES] [ITERS]     env: BUILD (build), JOBS ("1 2"), SALIENCY (none)
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
nstudies=${1:-100}
iters=${2:-3}
build=${BUILD:-build}
jobs_list=${JOBS:-1 2}
saliency=${SALIENCY:-none}
shared=${RADFUSE_SHARED:-$src/../shared}
ncores=$(nproc)
for tool in python3 /usr/bin/time; do
  command -v $tool >/dev/null || { echo "batch bench: $tool missing: scripts/install-deps.sh --bench" >&2; exit 1; }
done
[[ -d $shared/data/covid-chestxray ]] || { echo "batch bench: shared data not found at $shared (set RADFUSE_SHARED)" >&2; exit 1; }
((nstudies >= 1 && nstudies <= 400)) || { echo "batch bench: STUDIES must be 1..400 (frontal covid-chestxray rows)" >&2; exit 1; }
[[ -f $build/build.ninja ]] || cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" --target radfuse >/dev/null
bin=$build/radfuse
scratch=$(mktemp -d "${TMPDIR:-/tmp}/radfuse-batch-bench.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

echo "# machine: $ncores cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/^Mem/ {print $2}') GiB; load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# radfuse $(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo '?'), $build; $nstudies studies, saliency $saliency, best of $iters"

"$bin" model random --arch fusion_tiny --vocab "$shared/fixtures/tokenizer/vocab.txt" --out "$scratch/model" >/dev/null
root=$scratch/export
mkdir -p "$root"
# frontal views (the model reads no lateral one) spread over the whole table, so that the
# image sizes, notes and labs vary; without the rows' ATTRIBUTION.txt (no DICOM, which batch
# would report), so that every study and file reads
python3 -c 'import csv, sys
rows = [i for i, r in enumerate(csv.DictReader(open(sys.argv[1]))) if r["view"] != "L"]
n = int(sys.argv[2]); print("\n".join(str(rows[k * len(rows) // n]) for k in range(n)))' \
  "$shared/data/covid-chestxray/metadata.csv" "$nstudies" >"$scratch/rows"
while read -r row; do
  "$bin" dataset study --data "$shared/data/covid-chestxray" --row "$row" --out "$root/row$row" >/dev/null
  rm -f "$root/row$row/ATTRIBUTION.txt"
done <"$scratch/rows"
echo "# export: $(find "$root" -name '*.dcm' | wc -l) studies, $(du -sh "$root" | cut -f1), $(find "$root" -name 'labs.csv' | wc -l) with labs"
model=(--model "$scratch/model" --device cpu --saliency "$saliency")
# warm the page cache with the export and the model
cat "$root"/*/study/*.dcm "$scratch/model"/*/* >/dev/null 2>&1 || true

ms() { echo $(($(date +%s%N) / 1000000)); }
results=$scratch/results.txt
# timed CMD...: runs CMD; t_wall: its wall time in ms, t_cpu: user + system seconds of it and
# its children (less sensitive than the wall time to other load on a shared machine)
timed() {
  local t0
  t0=$(ms)
  /usr/bin/time -o "$scratch/time" -f '%U %S' "$@"
  t_wall=$(($(ms) - t0))
  t_cpu=$(awk '{ print $1 + $2 }' "$scratch/time")
}

# read_one DIR OUT: the naive read of one study folder
cat >"$scratch/read_one.sh" <<EOF
#!/usr/bin/env bash
d=\$1 out=\$2
labs=()
[[ -f \$d/labs.csv ]] && labs=(--labs "\$d/labs.csv")
exec "$bin" read "\$d/study" --notes "\$d/note.txt" "\${labs[@]}" ${model[*]} --no-dicom --out "\$out/\${d##*/}" >/dev/null 2>&1
EOF
chmod +x "$scratch/read_one.sh"

# naive results as one results.jsonl, for the comparison
naive_jsonl() { # naive_jsonl OUT: OUT/results.jsonl from OUT/*/result.json
  python3 -c 'import json, glob, sys
with open(sys.argv[1] + "/results.jsonl", "w") as f:
    for p in sorted(glob.glob(sys.argv[1] + "/*/result.json")):
        f.write(json.dumps(json.load(open(p))) + "\n")' "$1"
}

compare() { # compare DIR: same studies and probabilities as the reference batch pass
  python3 "$src/tests/slurm/compare_results.py" "$scratch/reference" "$1" --tolerance 1e-5 >/dev/null ||
    { echo "batch bench: $1 differs from the reference pass:" >&2
      python3 "$src/tests/slurm/compare_results.py" "$scratch/reference" "$1" --tolerance 1e-5 >&2; exit 1; }
}

row() { # row NAME WALL_MS CPU_S
  awk -v name="$1" -v ms="$2" -v cpu="$3" -v n="$nstudies" 'BEGIN {
      printf "%-24s %8.2f s %8.1f studies/s %8.1f ms CPU/study\n", name, ms / 1000, n * 1000 / ms, cpu * 1000 / n }' |
    tee -a "$results"
}

"$bin" batch "$root" --out "$scratch/reference" "${model[@]}" --jobs 1 >/dev/null 2>&1 ||
  { echo "batch bench: the reference batch run failed:" >&2; "$bin" batch "$root" --out "$scratch/reference" "${model[@]}" --jobs 1 >&2; exit 1; }

declare -A best cpu
keep() { # keep KEY: the best wall time and the least CPU time of KEY's passes
  [[ -z ${best[$1]:-} || $t_wall -lt ${best[$1]} ]] && best[$1]=$t_wall
  [[ -z ${cpu[$1]:-} ]] || awk -v a="$t_cpu" -v b="${cpu[$1]}" 'BEGIN { exit !(a < b) }' && cpu[$1]=$t_cpu
  return 0
}
for j in $jobs_list; do
  for ((k = 0; k < iters; k++)); do
    out=$scratch/batch-$j-$k
    timed "$bin" batch "$root" --out "$out" "${model[@]}" --jobs "$j" >"$out.log" 2>&1
    compare "$out"
    [[ -n ${best[batch$j]:-} && $t_wall -ge ${best[batch$j]} ]] || cp "$out.log" "$scratch/batch-$j.best.log"
    keep "batch$j"
    rm -rf "$out"
  done
done
for mode in seq par; do
  for ((k = 0; k < iters; k++)); do
    out=$scratch/naive-$mode-$k
    mkdir -p "$out"
    if [[ $mode == seq ]]; then
      timed bash -c 'for d in "$1"/*/; do "$2" "${d%/}" "$3"; done' _ "$root" "$scratch/read_one.sh" "$out"
    else
      timed bash -c 'printf "%s\n" "$1"/*/ | sed "s,/\$,," | xargs -P "$4" -I{} "$2" {} "$3"' _ \
        "$root" "$scratch/read_one.sh" "$out" "$ncores"
    fi
    naive_jsonl "$out"
    compare "$out"
    keep "naive$mode"
    rm -rf "$out"
  done
done

echo
printf '%-24s %10s %18s %20s\n' "what" "wall" "throughput" "CPU"
for j in $jobs_list; do row "batch --jobs $j" "${best[batch$j]}" "${cpu[batch$j]}"; done
row "read loop" "${best[naiveseq]}" "${cpu[naiveseq]}"
row "read loop -P $ncores" "${best[naivepar]}" "${cpu[naivepar]}"
echo
for j in $jobs_list; do
  awk -v j="$j" -v b="${best[batch$j]}" -v s="${best[naiveseq]}" -v p="${best[naivepar]}" -v c="$ncores" \
    'BEGIN { printf "batch --jobs %s: %.2fx the read loop, %.2fx the read loop -P %s\n", j, s / b, p / b, c }'
  awk -v j="$j" -v b="${cpu[batch$j]}" -v s="${cpu[naiveseq]}" \
    'BEGIN { printf "batch --jobs %s: %.2fx less CPU time than the read loop\n", j, s / b }'
done
for j in $jobs_list; do
  echo
  echo "# radfuse batch --jobs $j, best pass, its summary:"
  cat "$scratch/batch-$j.best.log"
done
