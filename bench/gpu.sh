#!/usr/bin/env bash
# The GPU benchmark, one command on the lent GPU machine (after bench/gpu-prepare.sh here):
#   run(command="bash bench/gpu.sh", carry=[".gl", ".gpu"])
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
export LD_LIBRARY_PATH=$PWD/.gpu/lib:${LD_LIBRARY_PATH:-}
nv=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[[ -f $nv ]] && export VK_DRIVER_FILES=$nv
bin=.gpu/bin
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | sed 's/^/# gpu: /'
"$bin/radfuse" model random --arch vit_base_patch16_224 --out /tmp/vit >/dev/null
"$bin/radfuse" model random --arch bert_base --out /tmp/bert >/dev/null
{
  "$bin/model_bench" /tmp/vit --device vulkan --precision fp16 --batch 1,256 --iters 20
  "$bin/model_bench" /tmp/bert --device vulkan --precision fp16 --batch 256 --tokens 128 --iters 10
  "$bin/gemm_device_bench" --device vulkan --precision fp16 --size 4096
  "$bin/gemm_device_bench" --device vulkan --precision fp32 --size 4096
} | tee "$out/radfuse.jsonl"
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
