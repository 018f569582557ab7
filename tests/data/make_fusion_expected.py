#!/usr/bin/env python3
"""Expected outputs for tests/test_fusion.c, made independently of radfuse's forward pass.

The fusion model of docs/model-dir.md written here in plain PyTorch (float64):
a Hugging Face ViTModel, a BertModel, and the fusion transformer (tokens,
modality, absent and time embeddings, pre-norm blocks with joint or cross
attention, final LayerNorm, head, temperatures), over the weights of the two
small models `radfuse model random --arch fusion_tiny[_cross] --seed 7 --vocab
shared/fixtures/tokenizer/vocab.txt` writes (the generator is radfuse's; the
arithmetic here is not). Token ids of the notes are transformers'
BertTokenizer's, from shared/fixtures/tokenizer/cases_pub.jsonl.

Run: /usr/bin/python3 tests/data/make_fusion_expected.py RADFUSE_BIN ../shared
Writes tests/data/fusion_expected.safetensors: the inputs (images, prior,
lab tokens, note case numbers, prior days), and per model and case the
logits, probabilities and (case 0) the assembled fusion sequence, plus the
SHA-256 of each generated model directory (radfuse model info) so that a
change of the generator is caught as such.
"""
import json
import math
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

binary = sys.argv[1]
shared = Path(sys.argv[2] if len(sys.argv) > 2 else "../shared")
here = Path(__file__).resolve().parent
DT = {"F32": np.float32, "I32": np.int32, "I64": np.int64}
SEED = 7
IMAGE, TEXT, LABS, PRIOR = 0, 1, 2, 3


def load(path):
    b = path.read_bytes()
    n = struct.unpack("<Q", b[:8])[0]
    head = json.loads(b[8:8 + n])
    out = {}
    for k, v in head.items():
        if k == "__metadata__":
            continue
        s, e = v["data_offsets"]
        a = np.frombuffer(b[8 + n + s:8 + n + e], dtype=DT[v["dtype"]]).reshape(v["shape"]).copy()
        out[k] = torch.from_numpy(a).double()
    return out


def save(path, tensors, meta):
    head, blobs, off = {"__metadata__": meta}, [], 0
    for k, t in tensors.items():
        a = np.ascontiguousarray(np.asarray(t, dtype=np.int32 if np.asarray(t).dtype.kind in "iu" else np.float32))
        head[k] = {"dtype": "F32" if a.dtype == np.float32 else "I32", "shape": list(a.shape),
                   "data_offsets": [off, off + a.nbytes]}
        blobs.append(a.tobytes())
        off += a.nbytes
    h = json.dumps(head).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    path.write_bytes(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def ln(x, g, b, eps):
    return F.layer_norm(x, (x.shape[-1],), g, b, eps)


def mha(q, k, v, heads):
    T, C = q.shape
    d = C // heads
    q = q.view(T, heads, d).transpose(0, 1)
    k = k.view(-1, heads, d).transpose(0, 1)
    v = v.view(-1, heads, d).transpose(0, 1)
    p = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(d), dim=-1)
    return (p @ v).transpose(0, 1).reshape(T, C)


def vit(W, cfg, img):
    """transformers ViTModel last_hidden_state for one image [C, H, W]."""
    E, P, eps = cfg["hidden_size"], cfg["patch_size"], cfg["layer_norm_eps"]
    x = F.conv2d(img[None], W["embeddings.patch_embeddings.projection.weight"],
                 W["embeddings.patch_embeddings.projection.bias"], stride=P)
    x = x.flatten(2).transpose(1, 2)[0]
    x = torch.cat([W["embeddings.cls_token"].reshape(1, E), x]) + W["embeddings.position_embeddings"].reshape(-1, E)
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        h = ln(x, W[p + "layernorm_before.weight"], W[p + "layernorm_before.bias"], eps)
        q = h @ W[p + "attention.attention.query.weight"].T + W[p + "attention.attention.query.bias"]
        k = h @ W[p + "attention.attention.key.weight"].T + W[p + "attention.attention.key.bias"]
        v = h @ W[p + "attention.attention.value.weight"].T + W[p + "attention.attention.value.bias"]
        a = mha(q, k, v, cfg["num_attention_heads"])
        x = x + a @ W[p + "attention.output.dense.weight"].T + W[p + "attention.output.dense.bias"]
        h = ln(x, W[p + "layernorm_after.weight"], W[p + "layernorm_after.bias"], eps)
        h = F.gelu(h @ W[p + "intermediate.dense.weight"].T + W[p + "intermediate.dense.bias"])
        x = x + h @ W[p + "output.dense.weight"].T + W[p + "output.dense.bias"]
    return ln(x, W["layernorm.weight"], W["layernorm.bias"], eps)


def bert(W, cfg, ids):
    """transformers BertModel last_hidden_state for one sequence of ids."""
    eps = cfg["layer_norm_eps"]
    T = len(ids)
    x = W["embeddings.word_embeddings.weight"][ids] + W["embeddings.position_embeddings.weight"][:T] + \
        W["embeddings.token_type_embeddings.weight"][0]
    x = ln(x, W["embeddings.LayerNorm.weight"], W["embeddings.LayerNorm.bias"], eps)
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        q = x @ W[p + "attention.self.query.weight"].T + W[p + "attention.self.query.bias"]
        k = x @ W[p + "attention.self.key.weight"].T + W[p + "attention.self.key.bias"]
        v = x @ W[p + "attention.self.value.weight"].T + W[p + "attention.self.value.bias"]
        a = mha(q, k, v, cfg["num_attention_heads"])
        x = ln(x + a @ W[p + "attention.output.dense.weight"].T + W[p + "attention.output.dense.bias"],
               W[p + "attention.output.LayerNorm.weight"], W[p + "attention.output.LayerNorm.bias"], eps)
        h = F.gelu(x @ W[p + "intermediate.dense.weight"].T + W[p + "intermediate.dense.bias"])
        x = ln(x + h @ W[p + "output.dense.weight"].T + W[p + "output.dense.bias"],
               W[p + "output.LayerNorm.weight"], W[p + "output.LayerNorm.bias"], eps)
    return x


def time_features(days):
    d = min(max(days, 0.0), 36525.0)
    tp = 2 * math.pi
    return torch.tensor([math.log1p(d) / math.log1p(3650.0), math.sin(tp * d / 7), math.cos(tp * d / 7),
                         math.sin(tp * d / 30.4375), math.cos(tp * d / 30.4375), math.sin(tp * d / 365.25),
                         math.cos(tp * d / 365.25), min(d, 3650.0) / 3650.0], dtype=torch.float32).double()


class Model:
    def __init__(self, d):
        cfg = json.loads((d / "config.json").read_text())
        self.fcfg = cfg["fusion"]
        self.vcfg = json.loads((d / "vision/config.json").read_text())
        self.tcfg = json.loads((d / "text/config.json").read_text())
        self.V = load(d / "vision/model.safetensors")
        self.T = load(d / "text/model.safetensors")
        self.W = load(d / "model.safetensors")
        self.K = len(json.loads((d / "labels.json").read_text()))

    def image_tokens(self, img):
        v = vit(self.V, self.vcfg, img)
        g = self.fcfg["image_pool_grid"]
        n = int(round(math.sqrt(v.shape[0] - 1)))
        patches = v[1:].T.reshape(1, -1, n, n)
        if g and g < n:
            patches = F.adaptive_avg_pool2d(patches, g)
        toks = torch.cat([v[:1], patches.flatten(2)[0].T])
        return toks @ self.W["fusion.image_proj.weight"].T + self.W["fusion.image_proj.bias"]

    def forward(self, images, priors, days, notes, labs):
        W, D = self.W, self.fcfg["hidden_size"]
        mod, absent = W["fusion.modality_embed"], W["fusion.absent_embed"]
        rows = [W["fusion.cls_token"].reshape(1, D)]
        ranges = {}

        def put(kind, x):
            start = sum(r.shape[0] for r in rows)
            if x is None:
                x = absent[kind].reshape(1, D)
            rows.append(x)
            ranges[kind] = (start, start + x.shape[0])

        put(IMAGE, torch.cat([self.image_tokens(i) + mod[IMAGE] for i in images]) if images else None)
        if priors:
            t = time_features(days) @ W["fusion.time_embed.weight"].T + W["fusion.time_embed.bias"]
            put(PRIOR, torch.cat([self.image_tokens(i) + mod[PRIOR] + t for i in priors]))
        else:
            put(PRIOR, None)
        if notes:
            budget, states = self.fcfg["max_text_tokens"], []
            for ids in notes:
                h = bert(self.T, self.tcfg, ids)  # [CLS] content [SEP]
                take = min(len(ids) - 2, budget)
                budget -= take
                states += [h[0:1], h[1:1 + take]]
            s = torch.cat(states)
            put(TEXT, s @ W["fusion.text_proj.weight"].T + W["fusion.text_proj.bias"] + mod[TEXT])
        else:
            put(TEXT, None)
        L = W["fusion.lab_code.weight"].shape[0]
        kept = [(lab, f) for lab, f in labs if 0 <= lab < L]
        if kept:
            ids = torch.tensor([lab for lab, _ in kept])
            feats = torch.stack([torch.tensor(f, dtype=torch.float32).double() for _, f in kept])
            put(LABS, W["fusion.lab_code.weight"][ids] + feats @ W["fusion.lab_value.weight"].T +
                W["fusion.lab_value.bias"] + mod[LABS])
        else:
            put(LABS, None)
        x = torch.cat(rows)
        seq = x.clone()
        H, eps = self.fcfg["num_attention_heads"], self.fcfg["layer_norm_eps"]
        cross = self.fcfg["attention"] == "cross"
        for i in range(self.fcfg["num_hidden_layers"]):
            p = f"fusion.blocks.{i}."
            h = ln(x, W[p + "norm1.weight"], W[p + "norm1.bias"], eps)
            qkv = h @ W[p + "attn.qkv.weight"].T + W[p + "attn.qkv.bias"]
            q, k, v = qkv[:, :D], qkv[:, D:2 * D], qkv[:, 2 * D:]
            a = mha(q, k, v, H)
            if cross:
                for kind in (TEXT, LABS):
                    s, e = ranges[kind]
                    a[s:e] = mha(q[s:e], k[s:e], v[s:e], H)
            x = x + a @ W[p + "attn.proj.weight"].T + W[p + "attn.proj.bias"]
            h = ln(x, W[p + "norm2.weight"], W[p + "norm2.bias"], eps)
            h = F.gelu(h @ W[p + "mlp.fc1.weight"].T + W[p + "mlp.fc1.bias"])
            x = x + h @ W[p + "mlp.fc2.weight"].T + W[p + "mlp.fc2.bias"]
        c = ln(x[0], W["fusion.norm.weight"], W["fusion.norm.bias"], eps)
        logits = c @ W["fusion.head.weight"].T + W["fusion.head.bias"]
        probs = torch.sigmoid(logits / W["fusion.head.temperature"])
        return logits, probs, seq


def main():
    cases_pub = [json.loads(l) for l in (shared / "fixtures/tokenizer/cases_pub.jsonl").read_text().splitlines()]
    # two notes of one window (<= 62 content tokens): 14 and about 30 content
    # tokens, so that the 16-token cap cuts into the second
    short = [i for i, c in enumerate(cases_pub) if len(c["input_ids"]) - 2 == 14]
    longer = [i for i, c in enumerate(cases_pub) if 25 <= len(c["input_ids"]) - 2 <= 40]
    note_cases = [short[0], longer[0]]
    notes = [cases_pub[i]["input_ids"] for i in note_cases]

    rng = np.random.default_rng(20240611)
    images = torch.from_numpy(rng.uniform(-1, 1, (2, 3, 64, 64)).astype(np.float32)).double()
    prior = torch.from_numpy(rng.uniform(-1, 1, (1, 3, 64, 64)).astype(np.float32)).double()
    lab_ids = [3, 17, 41, 45]  # 45 is past the 42-row code table: dropped
    lab_feats = rng.uniform(-1, 1, (4, 8)).astype(np.float32)
    labs = list(zip(lab_ids, lab_feats.tolist()))
    days = 37.5

    # (images, prior, notes, labs) per case: which inputs each case gives
    cases = [
        (2, 1, 2, 4),
        (1, 0, 0, 0),
        (0, 0, 1, 4),
        (2, 1, 0, 4),
        (1, 0, 2, 0),
    ]
    out = {"images": images.float().numpy(), "prior": prior.float().numpy(), "lab_ids": np.array(lab_ids),
           "lab_features": lab_feats, "note_cases": np.array(note_cases), "prior_days": np.array([days]),
           "cases": np.array(cases)}
    meta = {}
    with tempfile.TemporaryDirectory() as tmp:
        for arch in ("fusion_tiny", "fusion_tiny_cross"):
            d = Path(tmp) / arch
            subprocess.run([binary, "model", "random", "--arch", arch, "--seed", str(SEED), "--vocab",
                            str(shared / "fixtures/tokenizer/vocab.txt"), "--out", str(d)], check=True,
                           stdout=subprocess.DEVNULL)
            info = json.loads(subprocess.run([binary, "model", "info", str(d), "--json"], check=True,
                                             capture_output=True, text=True).stdout)
            meta[arch + ".sha256"] = info["sha256"]
            m = Model(d)
            for c, (ni, npr, nn, nl) in enumerate(cases):
                logits, probs, seq = m.forward(list(images[:ni]), list(prior[:npr]), days, notes[:nn], labs[:nl])
                out[f"{arch}.case{c}.logits"] = logits.float().numpy()
                out[f"{arch}.case{c}.probabilities"] = probs.float().numpy()
                if c == 0:
                    out[f"{arch}.case{c}.sequence"] = seq.float().numpy()
    save(here / "fusion_expected.safetensors", out, meta)
    print("wrote", here / "fusion_expected.safetensors", meta)


main()
