#!/usr/bin/env bash
# The GPU benchmark, one command on the lent GPU machine (after bench/gpu-prepare.sh here):
#   run(command="bash bench/gpu.sh", carry=[".gl", ".gpu"])
#   (after bench/gpu-prepare.sh; bench/gpu-tests.sh runs the Vulkan tests there)
# Prints, from the same run: radfuse on Vulkan (fp16 weights) against PyTorch eager
# fp16 on CUDA for ViT-B/16 throughput at batch 256 and latency at batch 1,
# BERT-base throughput at batch 256 x 128 tokens, and a 4096^3 GEMM against
# cuBLAS; then the ratios and the targets. Results also land in $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/radfuse-gpu}
mkdir -p "$out"
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
# radfuse's libraries (Debian 12's) on the path of its binaries only, not of python3
[[ -d .gpu/lib ]] || tar -C .gpu -xJf .gpu/lib.tar.xz
rflib=$PWD/.gpu/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
nv=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[[ -f $nv ]] && export VK_DRIVER_FILES=$nv
bin=.gpu/bin
rf() { LD_LIBRARY_PATH=$rflib "$@"; }
# a driver library that cannot load shows as "no driver installed": say why
if [[ -f $nv ]]; then
  lib=$(sed -n 's/.*"library_path": *"\([^"]*\)".*/\1/p' "$nv")
  [[ $lib == /* ]] || lib=$(ldconfig -p | awk -v l="$lib" '$1 == l {print $NF; exit}')
  ldd "$lib" 2>&1 | grep -i 'not found' | sed "s|^|# $lib: |" || true
fi
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | sed 's/^/# gpu: /'
rf "$bin/radfuse" model random --arch vit_base_patch16_224 --out /tmp/vit >/dev/null
rf "$bin/radfuse" model random --arch bert_base --out /tmp/bert >/dev/null
{
  rf "$bin/model_bench" /tmp/vit --device vulkan --precision fp16 --batch 1,256 --iters 20 || echo "# model_bench failed: exit $?"
  rf "$bin/model_bench" /tmp/bert --device vulkan --precision fp16 --batch 256 --tokens 128 --iters 10 || echo "# model_bench failed: exit $?"
  rf "$bin/gemm_device_bench" --device vulkan --precision fp16 --size 4096 || echo "# gemm_device_bench failed: exit $?"
  rf "$bin/gemm_device_bench" --device vulkan --precision fp32 --size 4096 || echo "# gemm_device_bench failed: exit $?"
} | tee "$out/radfuse.jsonl"
# GPU_EXTRA=1: also the same runs without tensor cores (RADFUSE_VK_COOPMAT=0),
# the 4096^3 GEMM on each tensor-core tile variant, and per-kernel GPU time of
# ViT-B/16 at batch 256 (RADFUSE_PROFILE=1)
if [[ ${GPU_EXTRA:-0} == 1 ]]; then
  tag() { sed "s/^{/{\"variant\": \"$1\", /"; }
  {
    RADFUSE_VK_COOPMAT=0 rf "$bin/model_bench" /tmp/vit --device vulkan --precision fp16 --batch 1,256 --iters 10 | tag no-coopmat
    RADFUSE_VK_COOPMAT=0 rf "$bin/model_bench" /tmp/bert --device vulkan --precision fp16 --batch 256 --tokens 128 --iters 5 | tag no-coopmat
    for s in gemm_coop_n256 gemm_coop gemm_coop_s gemm_coop_256 gemm_coop_n256t gemm_coop_m64n256; do
      RADFUSE_VK_COOP_SHADER=$s rf "$bin/gemm_device_bench" --device vulkan --precision fp16 --size 4096 | tag $s
    done
    RADFUSE_PROFILE=1 rf "$bin/model_bench" /tmp/vit --device vulkan --precision fp16 --batch 256 --iters 1 2>&1 | tail -14
  } | tee "$out/extra.jsonl" || true
fi
python3 bench/gpu_torch.py /tmp/vit /tmp/bert --iters 20 | tee "$out/torch.jsonl"
python3 - "$out/radfuse.jsonl" "$out/torch.jsonl" <<'PY' | tee "$out/summary.txt"
import json, sys
rad = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
tor = [json.loads(l) for l in open(sys.argv[2]) if l.startswith("{")]
def pick(rows, **kw):
    return next((r for r in rows if all(r.get(k) == v for k, v in kw.items())), None)
print("\nwhat                          radfuse (vulkan fp16)   pytorch eager fp16   ratio   target")
def line(what, r, t, key, better_high, target):
    if not r or not t:
        print(f"{what:30s} missing"); return
    ratio = r[key] / t[key] if better_high else t[key] / r[key]
    print(f"{what:30s} {r[key]:>14}          {t[key]:>12}      {ratio:5.2f}   {target}")
vit = "timm VisionTransformer"
line("ViT-B/16 img/s, batch 256", pick(rad, arch=vit, batch=256), pick(tor, model="vit_base_patch16_224", batch=256), "per_second", True, ">= 1.0")
line("ViT-B/16 ms, batch 1", pick(rad, arch=vit, batch=1), pick(tor, model="vit_base_patch16_224", batch=1), "median_ms", False, "<= 1 ms")
line("BERT-base seq/s, batch 256", pick(rad, arch="BertModel"), pick(tor, model="bert_base"), "per_second", True, ">= 1.0")
line("GEMM 4096^3 TFLOP/s (fp16)", pick(rad, gemm=4096, precision="fp16"), pick(tor, gemm=4096), "tflops", True, ">= 0.5")
PY
