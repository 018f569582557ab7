#!/usr/bin/env bash
# `radfuse batch` throughput on the CPU: studies/s over an export of covid-chestxray rows
# (`radfuse dataset study`: one DX/CR image, a note and, for some rows, labs per study) read
# by a small random fusion model (`model random --arch fusion_tiny`), against the naive loop
# an operator would otherwise write, in the same run:
#   batch --jobs J     one `radfuse batch` process: J decode/preprocess workers, one device
#                      stage, one writer (fresh output directory each pass)
#   read loop          one `radfuse read STUDY --notes --labs --out --no-dicom` process per
#                      study, one after another (the outputs batch writes per study:
#                      result.json, report.html, report.fhir.json, overlays)
#   read loop -P cores the same processes, `xargs -P nproc` at once
# Every pass must give the same studies with the same probabilities (within 1e-5) as the
# first batch pass, so all compute the same thing. Best of ITERS passes, wall time of the
# whole command (model load and export listing included); the batch's own summary (its
# stage timings: busy time of the workers, the device stage, the writer, and the device
# stage's wait for input) is printed for the best pass. Ratios: naive time / batch time.
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
best_ms=()

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

row() { # row NAME MS
  awk -v name="$1" -v ms="$2" -v n="$nstudies" 'BEGIN { printf "%-24s %8.2f s %8.1f studies/s\n", name, ms / 1000, n * 1000 / ms }' |
    tee -a "$results"
}

"$bin" batch "$root" --out "$scratch/reference" "${model[@]}" --jobs 1 >/dev/null 2>&1 ||
  { echo "batch bench: the reference batch run failed:" >&2; "$bin" batch "$root" --out "$scratch/reference" "${model[@]}" --jobs 1 >&2; exit 1; }

declare -A best
for j in $jobs_list; do
  b=
  for ((k = 0; k < iters; k++)); do
    out=$scratch/batch-$j-$k
    t0=$(ms)
    "$bin" batch "$root" --out "$out" "${model[@]}" --jobs "$j" >"$out.log" 2>&1
    t=$(($(ms) - t0))
    compare "$out"
    if [[ -z $b || $t -lt $b ]]; then b=$t; cp "$out.log" "$scratch/batch-$j.best.log"; fi
    rm -rf "$out"
  done
  best[batch$j]=$b
done
for mode in seq par; do
  b=
  for ((k = 0; k < iters; k++)); do
    out=$scratch/naive-$mode-$k
    mkdir -p "$out"
    t0=$(ms)
    if [[ $mode == seq ]]; then
      for d in "$root"/*/; do "$scratch/read_one.sh" "${d%/}" "$out"; done
    else
      printf '%s\n' "$root"/*/ | sed 's,/$,,' | xargs -P "$ncores" -I{} "$scratch/read_one.sh" {} "$out"
    fi
    t=$(($(ms) - t0))
    naive_jsonl "$out"
    compare "$out"
    [[ -z $b || $t -lt $b ]] && b=$t
    rm -rf "$out"
  done
  best[naive$mode]=$b
done

echo
printf '%-24s %10s %18s\n' "what" "wall" "throughput"
for j in $jobs_list; do row "batch --jobs $j" "${best[batch$j]}"; done
row "read loop" "${best[naiveseq]}"
row "read loop -P $ncores" "${best[naivepar]}"
echo
for j in $jobs_list; do
  awk -v j="$j" -v b="${best[batch$j]}" -v s="${best[naiveseq]}" -v p="${best[naivepar]}" -v c="$ncores" \
    'BEGIN { printf "batch --jobs %s: %.2fx the read loop, %.2fx the read loop -P %s\n", j, s / b, p / b, c }'
done
for j in $jobs_list; do
  echo
  echo "# radfuse batch --jobs $j, best pass, its summary:"
  cat "$scratch/batch-$j.best.log"
done
