#!/usr/bin/env bash
# ViT-B/16 (224x224, random weights of the real shape) forward pass on the CPU
# backend against PyTorch on the same machine, in the same run. Prints each
# timing and the ratio torch/radfuse (above 1: radfuse is faster).
#   bench/run.sh [ITERS]       (make bench installs the peer and runs this)
set -euo pipefail
cd "$(dirname "$0")/.."
iters=${1:-10}
build=${BUILD:-build}
threads=$(nproc)
model=$build/bench-vit-b16
cmake --build "$build" --target radfuse model_bench >/dev/null
[[ -f $model/model.safetensors ]] || "$build/radfuse" model random --arch vit_base_patch16_224 --out "$model"
# the reference BLAS would make the peer 25x slower than it can be: insist on OpenBLAS
blas=$(readlink -f /etc/alternatives/libblas.so.3-x86_64-linux-gnu 2>/dev/null || true)
case "$blas" in *openblas*) ;; *) echo "bench: libblas.so.3 is '$blas', not OpenBLAS: install libopenblas0-pthread" >&2; exit 1;; esac
echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); torch threads $threads; BLAS $blas"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$build/model_bench" "$model" --batch 1,8 --iters "$iters" --threads "$threads" --dump "$out/dump.safetensors" | tee "$out/radfuse.jsonl"
# Threading matters more than anything for this peer: Debian's torch runs its own
# OpenMP pool beside OpenBLAS's pthreads, and OpenMP's default spin-waiting takes
# the cores OpenBLAS needs (3x slower here). Try each arrangement; keep the best.
for cfg in "omp-passive:$threads:PASSIVE" "omp-default:$threads:" "torch-1-thread:1:"; do
  IFS=: read -r label tthreads policy <<<"$cfg"
  env ${policy:+OMP_WAIT_POLICY=$policy} OMP_NUM_THREADS=$tthreads OPENBLAS_NUM_THREADS=$threads \
    /usr/bin/python3 bench/vit_torch.py "$model" "$out/dump.safetensors" --batch 1,8 \
    --iters "$iters" --threads "$tthreads" --config "$label" | tee -a "$out/torch.jsonl"
done
/usr/bin/python3 - "$out/radfuse.jsonl" "$out/torch.jsonl" <<'PY'
import json, sys
rad = {r["batch"]: r for r in map(json.loads, open(sys.argv[1]))}
best = {}
for r in map(json.loads, open(sys.argv[2])):
    if r.get("impl") == "torch-best" and (r["batch"] not in best or r["median_ms"] < best[r["batch"]]["median_ms"]):
        best[r["batch"]] = r
print("\nbatch  radfuse ms  torch ms (best variant)                     torch/radfuse")
for b in sorted(rad):
    r, t = rad[b], best[b]
    print(f"{b:5d}  {r['median_ms']:10.1f}  {t['median_ms']:8.1f} ({t['variant']:<31})  {t['median_ms'] / r['median_ms']:6.2f}x")
PY
