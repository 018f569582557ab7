#!/usr/bin/env python3
"""Expected outputs for tests/test_text_encoder.c, made independently of radfuse.

A BERT forward written here in plain PyTorch (float64) over the weights of
shared/fixtures/reference/bert. It is first checked against what transformers
itself computed for that fixture (io.safetensors, max abs error <= 1e-5), then
applied to notes whose token ids come from transformers' BertTokenizer (the
cases of shared/fixtures/tokenizer/cases_pub.jsonl whose ids fit the fixture's
500-token vocabulary and 64 positions), and to one long note (those texts
joined by spaces: whitespace-joined texts tokenize to the joined token lists)
encoded with the window rule of include/radfuse/text.h, written again here.

Run: /usr/bin/python3 tests/data/make_note_bert_expected.py ../shared
Writes tests/data/note_bert_expected.safetensors and note_bert_long.txt.
"""
import json
import math
import struct
import sys
from pathlib import Path

import numpy as np
import torch

shared = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared")
here = Path(__file__).resolve().parent
DT = {"F32": np.float32, "I32": np.int32, "I64": np.int64}


def load(path):
    b = path.read_bytes()
    n = struct.unpack("<Q", b[:8])[0]
    head = json.loads(b[8:8 + n])
    out = {}
    for k, v in head.items():
        if k == "__metadata__":
            continue
        s, e = v["data_offsets"]
        out[k] = torch.from_numpy(np.frombuffer(b[8 + n + s:8 + n + e], dtype=DT[v["dtype"]]).reshape(v["shape"]).copy())
    return out


def save(path, tensors):
    head, blobs, off = {}, [], 0
    for k, t in tensors.items():
        a = np.ascontiguousarray(t.numpy().astype(np.float32 if t.dtype.is_floating_point else np.int32))
        head[k] = {"dtype": "F32" if a.dtype == np.float32 else "I32", "shape": list(a.shape),
                   "data_offsets": [off, off + a.nbytes]}
        blobs.append(a.tobytes())
        off += a.nbytes
    h = json.dumps(head).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    path.write_bytes(struct.pack("<Q", len(h)) + h + b"".join(blobs))


cfg = json.loads((shared / "fixtures/reference/bert/config.json").read_text())
W = {k: v.double() for k, v in load(shared / "fixtures/reference/bert/model.safetensors").items()}
H, heads, eps = cfg["hidden_size"], cfg["num_attention_heads"], cfg["layer_norm_eps"]


def ln(x, p):
    m = x.mean(-1, keepdim=True)
    v = ((x - m) ** 2).mean(-1, keepdim=True)
    return (x - m) / torch.sqrt(v + eps) * W[p + ".weight"] + W[p + ".bias"]


def lin(x, p):
    return x @ W[p + ".weight"].T + W[p + ".bias"]


def bert(ids, mask, types):
    B, T = ids.shape
    x = W["embeddings.word_embeddings.weight"][ids.long()] + W["embeddings.position_embeddings.weight"][:T] + \
        W["embeddings.token_type_embeddings.weight"][types.long()]
    x = ln(x, "embeddings.LayerNorm")
    d = H // heads
    bias = (1.0 - mask.double())[:, None, None, :] * -1e30
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        q, k, v = (lin(x, p + "attention.self." + n).view(B, T, heads, d).transpose(1, 2) for n in ("query", "key", "value"))
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d) + bias, -1)
        c = (a @ v).transpose(1, 2).reshape(B, T, H)
        x = ln(x + lin(c, p + "attention.output.dense"), p + "attention.output.LayerNorm")
        g = lin(x, p + "intermediate.dense")
        g = 0.5 * g * (1 + torch.erf(g / math.sqrt(2)))
        x = ln(x + lin(g, p + "output.dense"), p + "output.LayerNorm")
    return x, torch.tanh(lin(x[:, 0], "pooler.dense"))


io = load(shared / "fixtures/reference/bert/io.safetensors")
h, pool = bert(io["input_ids"], io["attention_mask"], io["token_type_ids"])
valid = io["attention_mask"].bool()
err = max((h - io["last_hidden_state"].double())[valid].abs().max().item(),
          (pool - io["pooler_output"].double()).abs().max().item())
assert err <= 1e-5, f"the reference BERT differs from transformers by {err}"
print(f"reference BERT vs transformers on the fixture: max abs error {err:.2e}")

cases = []
for line in (shared / "fixtures/tokenizer/cases_pub.jsonl").read_text().splitlines():
    c = json.loads(line)
    if max(c["input_ids"]) < cfg["vocab_size"] and 8 < len(c["input_ids"]) <= cfg["max_position_embeddings"]:
        cases.append(c)
out = {}
for i, c in enumerate(cases[:6]):
    ids = torch.tensor([c["input_ids"]], dtype=torch.int32)
    hh, pp = bert(ids, torch.ones_like(ids), torch.zeros_like(ids))
    out[f"case{i}.input_ids"] = ids[0]
    out[f"case{i}.last_hidden_state"] = hh[0].float()
    (here / f"note_bert_case{i}.txt").write_text(c["text"])

# one long note: all those texts joined by spaces, windowed as text.h says
text = " ".join(c["text"] for c in cases)
content = [t for c in cases for t in c["input_ids"][1:-1]]
CLS, SEP = cases[0]["input_ids"][0], cases[0]["input_ids"][-1]
N, Wn = len(content), cfg["max_position_embeddings"] - 2
S = Wn // 2
starts = [0]
while starts[-1] + Wn < N:
    starts.append(starts[-1] + S)
best, owner = [-1] * N, [0] * N
tok = torch.zeros(N, H, dtype=torch.float64)
cls_states = []
for w, s in enumerate(starts):
    piece = content[s:s + Wn]
    ids = torch.tensor([[CLS] + piece + [SEP]], dtype=torch.int32)
    hh, _ = bert(ids, torch.ones_like(ids), torch.zeros_like(ids))
    cls_states.append(hh[0, 0])
    n = len(piece)
    for i in range(n):
        ctx = min(i, n - 1 - i)
        if ctx > best[s + i]:
            best[s + i], owner[s + i] = ctx, w
            tok[s + i] = hh[0, i + 1]
doc = sum(cls_states[owner[j]] for j in range(N)) / N
out["long.input_ids"] = torch.tensor(content, dtype=torch.int32)
out["long.tokens"] = tok.float()
out["long.document"] = doc.float()
(here / "note_bert_long.txt").write_text(text)
save(here / "note_bert_expected.safetensors", out)
print(f"{min(len(cases), 6)} short notes, one long note of {N} tokens in {len(starts)} windows")
