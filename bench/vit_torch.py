#!/usr/bin/env python3
"""The benchmark's peer: the same ViT-B/16 forward pass in PyTorch, on the same
weights and input as bench/model_bench.c. Eager, TorchScript-frozen with
optimize_for_inference, and the nn.TransformerEncoderLayer fast path are all
timed; run.sh also varies the threading environment, and the fastest of all is
the figure compared. Every variant is checked to compute the same features as
radfuse before it is timed.

  vit_torch.py DIR DUMP.safetensors [--batch 1,8] [--iters N] [--threads N]
"""
import argparse, json, os, struct, sys, time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def load_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        assert t["dtype"] == "F32", (name, t["dtype"])
        b, e = t["data_offsets"]
        arr = np.frombuffer(data[8 + n + b:8 + n + e], dtype=np.float32).reshape(t["shape"])
        out[name] = torch.from_numpy(arr.copy())
    return out


class TimmViT(nn.Module):
    """timm's VisionTransformer forward (class token, pre-norm blocks, eager attention)."""

    def __init__(self, sd, heads, eps=1e-6):
        super().__init__()
        self.sd = {k: nn.Parameter(v, requires_grad=False) for k, v in sd.items()}
        for k, v in self.sd.items():
            self.register_parameter(k.replace(".", "_"), v)
        self.depth = sum(1 for k in sd if k.endswith(".norm1.weight"))
        self.heads, self.eps = heads, eps
        self.patch = sd["patch_embed.proj.weight"].shape[-1]

    def forward(self, x):
        p, B = self.sd, x.shape[0]
        E = p["cls_token"].shape[-1]
        x = F.conv2d(x, p["patch_embed.proj.weight"], p["patch_embed.proj.bias"], stride=self.patch)
        x = x.flatten(2).transpose(1, 2)
        x = torch.cat([p["cls_token"].expand(B, -1, -1), x], dim=1) + p["pos_embed"]
        T, H = x.shape[1], self.heads
        D = E // H
        for i in range(self.depth):
            b = f"blocks.{i}."
            h = F.layer_norm(x, (E,), p[b + "norm1.weight"], p[b + "norm1.bias"], self.eps)
            qkv = F.linear(h, p[b + "attn.qkv.weight"], p[b + "attn.qkv.bias"])
            qkv = qkv.reshape(B, T, 3, H, D).permute(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]
            a = (q * D ** -0.5) @ k.transpose(-2, -1)
            o = (a.softmax(dim=-1) @ v).transpose(1, 2).reshape(B, T, E)
            x = x + F.linear(o, p[b + "attn.proj.weight"], p[b + "attn.proj.bias"])
            h = F.layer_norm(x, (E,), p[b + "norm2.weight"], p[b + "norm2.bias"], self.eps)
            h = F.gelu(F.linear(h, p[b + "mlp.fc1.weight"], p[b + "mlp.fc1.bias"]))
            x = x + F.linear(h, p[b + "mlp.fc2.weight"], p[b + "mlp.fc2.bias"])
        return F.layer_norm(x, (E,), p["norm.weight"], p["norm.bias"], self.eps)


class FastPathViT(nn.Module):
    """The same network on nn.TransformerEncoderLayer, whose inference fast path
    (fused native kernels) PyTorch 1.13 takes under inference_mode."""

    def __init__(self, sd, heads, eps=1e-6):
        super().__init__()
        E = sd["cls_token"].shape[-1]
        I = sd["blocks.0.mlp.fc1.weight"].shape[0]
        depth = sum(1 for k in sd if k.endswith(".norm1.weight"))
        self.patch = sd["patch_embed.proj.weight"].shape[-1]
        self.proj = nn.Conv2d(sd["patch_embed.proj.weight"].shape[1], E, self.patch, self.patch)
        self.proj.weight.data, self.proj.bias.data = sd["patch_embed.proj.weight"], sd["patch_embed.proj.bias"]
        self.cls, self.pos = nn.Parameter(sd["cls_token"]), nn.Parameter(sd["pos_embed"])
        self.layers = nn.ModuleList()
        for i in range(depth):
            b = f"blocks.{i}."
            L = nn.TransformerEncoderLayer(E, heads, I, dropout=0.0, activation="gelu",
                                           layer_norm_eps=eps, batch_first=True, norm_first=True)
            L.self_attn.in_proj_weight.data = sd[b + "attn.qkv.weight"]
            L.self_attn.in_proj_bias.data = sd[b + "attn.qkv.bias"]
            L.self_attn.out_proj.weight.data = sd[b + "attn.proj.weight"]
            L.self_attn.out_proj.bias.data = sd[b + "attn.proj.bias"]
            L.linear1.weight.data, L.linear1.bias.data = sd[b + "mlp.fc1.weight"], sd[b + "mlp.fc1.bias"]
            L.linear2.weight.data, L.linear2.bias.data = sd[b + "mlp.fc2.weight"], sd[b + "mlp.fc2.bias"]
            L.norm1.weight.data, L.norm1.bias.data = sd[b + "norm1.weight"], sd[b + "norm1.bias"]
            L.norm2.weight.data, L.norm2.bias.data = sd[b + "norm2.weight"], sd[b + "norm2.bias"]
            self.layers.append(L)
        self.norm = nn.LayerNorm(E, eps=eps)
        self.norm.weight.data, self.norm.bias.data = sd["norm.weight"], sd["norm.bias"]

    def forward(self, x):
        B = x.shape[0]
        x = self.proj(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(B, -1, -1), x], dim=1) + self.pos
        for L in self.layers:
            x = L(x)
        return self.norm(x)


def time_it(fn, x, iters):
    with torch.inference_mode():
        fn(x)
        fn(x)
        times = []
        for _ in range(iters):
            t0 = time.perf_counter()
            fn(x)
            times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2] * 1e3, times[0] * 1e3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("dump")
    ap.add_argument("--batch", default="1,8")
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--config", default="", help="label of the environment this run uses")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = json.load(open(os.path.join(args.dir, "config.json")))
    sd = load_safetensors(os.path.join(args.dir, "model.safetensors"))
    ref = load_safetensors(args.dump)
    heads = cfg["num_heads"]
    eager = TimmViT(sd, heads).eval()
    fast = FastPathViT(sd, heads).eval()
    x0 = ref["pixel_values"]
    with torch.inference_mode():
        frozen = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(eager, x0).eval()))
    variants = {"eager": eager, "torchscript-frozen": frozen, "encoder-fastpath": fast}
    # every variant must compute what radfuse computed on the dumped input
    with torch.inference_mode():
        for name, fn in variants.items():
            err = (fn(x0) - ref["features"]).abs().max().item()
            print(json.dumps({"impl": "torch", "variant": name, "check_max_abs_vs_radfuse": err}), flush=True)
            if err > 1e-3:
                sys.exit(f"vit_torch: variant {name} differs from radfuse by {err}")
    S = cfg["img_size"]
    for batch in [int(b) for b in args.batch.split(",")]:
        x = torch.randn(batch, cfg.get("in_chans", 3), S, S)
        best = None
        for name, fn in variants.items():
            med, mn = time_it(fn, x, args.iters)
            row = {"impl": "torch", "variant": f"{name} {args.config}".strip(), "batch": batch, "iters": args.iters,
                   "median_ms": round(med, 2), "min_ms": round(mn, 2)}
            print(json.dumps(row), flush=True)
            if best is None or med < best["median_ms"]:
                best = row
        print(json.dumps(dict(best, impl="torch-best")), flush=True)


if __name__ == "__main__":
    main()
