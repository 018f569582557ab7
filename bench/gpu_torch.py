#!/usr/bin/env python3
"""The GPU benchmark's peer: PyTorch eager in fp16 on CUDA, on the same
random checkpoints radfuse runs (bench/gpu.sh writes them with
`radfuse model random`): ViT-B/16 throughput at batch 256 and latency at
batch 1, BERT-base throughput at batch 256 x 128 tokens, and a 4096^3 fp16
matrix product (cuBLAS). One JSON object per line.

  gpu_torch.py VIT_DIR BERT_DIR [--iters N]
Without CUDA it runs the same code on the CPU in fp32 at small sizes, as a
smoke test of the script (--smoke), and says so in every line.
"""
import argparse, json, os, sys, time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vit_torch import TimmViT, load_safetensors  # noqa: E402


def timed(fn, iters, sync):
    with torch.inference_mode():
        for _ in range(3):
            fn()
        sync()
        times = []
        for _ in range(iters):
            t0 = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("vit_dir")
    ap.add_argument("bert_dir")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--smoke", action="store_true", help="CPU, fp32, small sizes")
    args = ap.parse_args()
    cuda = torch.cuda.is_available() and not args.smoke
    dev = torch.device("cuda" if cuda else "cpu")
    dtype = torch.float16 if cuda else torch.float32
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    tag = {"impl": "torch-eager", "device": torch.cuda.get_device_name() if cuda else "cpu (smoke)",
           "dtype": str(dtype).replace("torch.", ""), "torch": torch.__version__}
    big, gemm_n, tokens = (256, 4096, 128) if cuda else (2, 256, 16)

    vit_cfg = json.load(open(os.path.join(args.vit_dir, "config.json")))
    vit = TimmViT(load_safetensors(os.path.join(args.vit_dir, "model.safetensors")), vit_cfg["num_heads"])
    vit = vit.to(dev, dtype).eval()
    S = vit_cfg["img_size"]
    for batch in (1, big):
        x = torch.randn(batch, 3, S, S, device=dev, dtype=dtype)
        t = timed(lambda: vit(x), args.iters, sync)
        print(json.dumps(dict(tag, model="vit_base_patch16_224", batch=batch, median_ms=round(t * 1e3, 3),
                              per_second=round(batch / t, 1))), flush=True)
    del vit

    try:
        from transformers import BertConfig, BertModel
    except ImportError:
        if cuda:
            raise
        print(json.dumps(dict(tag, model="bert_base", skipped="transformers is not installed (smoke run)")))
        return
    cfg = json.load(open(os.path.join(args.bert_dir, "config.json")))
    cfg.pop("note", None)
    bert = BertModel(BertConfig(**cfg), add_pooling_layer=True)
    missing, unexpected = bert.load_state_dict(load_safetensors(os.path.join(args.bert_dir, "model.safetensors")),
                                               strict=False)
    if [m for m in missing if "position_ids" not in m] or unexpected:
        sys.exit(f"gpu_torch: BERT weights do not match: missing {missing}, unexpected {unexpected}")
    bert = bert.to(dev, dtype).eval()
    ids = torch.randint(0, cfg["vocab_size"], (big, tokens), device=dev)
    t = timed(lambda: bert(input_ids=ids), args.iters, sync)
    print(json.dumps(dict(tag, model="bert_base", batch=big, tokens=tokens, median_ms=round(t * 1e3, 3),
                          per_second=round(big / t, 1))), flush=True)
    del bert

    a = torch.randn(gemm_n, gemm_n, device=dev, dtype=dtype)
    b = torch.randn(gemm_n, gemm_n, device=dev, dtype=dtype)
    t = timed(lambda: a @ b.T, args.iters, sync)
    print(json.dumps(dict(tag, gemm=gemm_n, ms_per_product=round(t * 1e3, 3),
                          tflops=round(2 * gemm_n ** 3 / t / 1e12, 2))), flush=True)


if __name__ == "__main__":
    main()
