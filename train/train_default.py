#!/usr/bin/env python3
"""Trains radfuse's default model (models/default) from the shared data.

Three steps, each a subcommand (docs/training.md has the commands, sizes and times):

  prepare  (CPU, needs radfuse and Pillow) the covid-chestxray rows as the model sees them at
           inference: each 8-bit gray JPEG / 255, resized by Pillow on the float image exactly as
           radfuse's preprocessing does (preprocessor_config.json below); each clinical note
           tokenized by `radfuse text tokenize` (rf_wordpiece_encode); each row's labs written as
           `radfuse dataset study` writes them and read by `radfuse text labs --json`, then made
           into rf_lab_tokens' eight features; the IU X-ray reports tokenized for masked-language
           pre-training. Writes CACHE/ (arrays and JSON; no model state).
  fit      (CPU or CUDA) masked-language pre-training of the small BERT on the reports (and the
           training split's notes), then the whole fusion model end to end on the training
           split's frontal rows with modality dropout and image-, note- and labs-only passes,
           the epoch chosen by the validation split's fused AUROC over the findings. Writes RUN/.
  export   (CPU) the fitted weights as fp16 into a radfuse model directory; a shift (in the
           head's bias) and a temperature per target and thresholds (Youden's J) fitted on the
           validation split with those fp16 weights; the validation predictions of a few rows
           for tests/test_default_model.c.

The arithmetic is that of tests/data/make_fusion_expected.py (ViTModel, BertModel, the fusion
sequence of docs/model-dir.md), batched: padded keys are masked, so every row equals its
unpadded computation. The test split is never read by fit or export.
"""
import argparse
import csv
import hashlib
import json
import math
import os
import random
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
SPLIT_FILE = ROOT / "datasets/splits/covid-chestxray.csv"

# ---- sizes (docs/training.md says why) ----
IMAGE = 128
PATCH = 16
VIT = dict(hidden=192, layers=4, heads=3, intermediate=768)
BERT = dict(hidden=128, layers=4, heads=4, intermediate=512, positions=128)
FUSION = dict(hidden=128, layers=2, heads=4, intermediate=512, pool=4, max_text_tokens=128)
LAB_CODES = 42          # radfuse's lab table (labs.h); ids are stable
EPS = 1e-12             # HF ViT/BERT layer_norm_eps
FEPS = 1e-6             # fusion layer_norm_eps
MEAN, STD = 0.5, 0.5    # preprocessor_config.json image_mean / image_std
RESAMPLE = 3            # Pillow BICUBIC, HF's numbering (preprocessor_config.json 'resample')
IMG_I, TXT_I, LAB_I, PRI_I = 0, 1, 2, 3
DROPOUT = 0.1           # residual-branch dropout while training (the data is small)  # rows of modality_embed / absent_embed

# ---- targets: train/targets.py (the table tests/test_train_targets.sh checks against radfuse's) ----
from targets import FINDINGS, TARGETS, row_targets  # noqa: E402


# ---- split ----
def split_of(rows):
    """patientid -> train/val/test: the repository's fixed split file when it exists, else a
    keyed hash of the patient id (70/15/15), so one patient is always on one side."""
    if SPLIT_FILE.exists():
        with open(SPLIT_FILE, newline="") as f:
            m = {r["patientid"]: r["split"] for r in csv.DictReader(f)}
        missing = {r["patientid"] for r in rows} - set(m)
        if missing:
            sys.exit(f"{SPLIT_FILE}: {len(missing)} patients of metadata.csv have no split")
        return m, str(SPLIT_FILE.relative_to(ROOT))
    m = {}
    for r in rows:
        h = int(hashlib.sha256(("radfuse-split:" + r["patientid"]).encode()).hexdigest()[:8], 16) / 2**32
        m[r["patientid"]] = "train" if h < 0.70 else "val" if h < 0.85 else "test"
    return m, "sha256('radfuse-split:' + patientid) fallback"


# ---- inputs as radfuse computes them ----
def load_image(path):
    """The JPEG as radfuse reads it (8-bit gray / 255, the identity window of the CR study)
    resized as rf_preprocess does (Pillow's float path), before normalization: [S, S] float32."""
    from PIL import Image
    im = Image.open(path)
    if im.mode != "L":
        sys.exit(f"{path}: mode {im.mode}, the collections' images are 8-bit gray")
    a = np.asarray(im, dtype=np.float32) / np.float32(255.0)
    f = Image.fromarray(a, mode="F").resize((IMAGE, IMAGE), resample=RESAMPLE)
    return np.asarray(f, dtype=np.float32)


def lung_masks(path, rows, use):
    """[(row index, [S, S] uint8 mask)] of the rows use() accepts that have lung boxes: the union of
    the right and left lung boxes (COCO [x, y, w, h] in the image's pixels), scaled as load_image
    stretches the image to S x S."""
    d = json.loads(Path(path).read_text())
    ims = {im["file_name"]: im for im in d["images"]}
    boxes = {}
    for an in d["annotations"]:
        boxes.setdefault(an["image_id"], []).append(an["bbox"])
    out = []
    for i, r in enumerate(rows):
        im = ims.get(r["filename"])
        if im is None or not use(r) or not boxes.get(im["id"]):
            continue
        m = np.zeros((IMAGE, IMAGE), np.uint8)
        sx, sy = IMAGE / im["width"], IMAGE / im["height"]
        for x, y, w, h in boxes[im["id"]]:
            x0, y0 = int(round(x * sx)), int(round(y * sy))
            x1, y1 = int(round((x + w) * sx)), int(round((y + h) * sy))
            m[max(y0, 0):min(y1, IMAGE), max(x0, 0):min(x1, IMAGE)] = 1
        out.append((i, m))
    return out


def tokenize(radfuse, vocab, text):
    p = subprocess.run([radfuse, "text", "tokenize", "--vocab", str(vocab), "--json", "--max-length", "16777216"],
                       input=text.encode(), capture_output=True, check=True)
    return json.loads(p.stdout)["input_ids"][1:-1]  # content tokens


C_SPACE = " \t\n\v\f\r"
LAB_COLUMNS = [("temperature", "8310-5", "Body temperature", "Cel"),
               ("pO2_saturation", "2708-6", "Oxygen saturation", "%"),
               ("leukocyte_count", "26464-8", "Leukocytes", "10*9/L"),
               ("neutrophil_count", "26499-4", "Neutrophils", "10*9/L"),
               ("lymphocyte_count", "26474-7", "Lymphocytes", "10*9/L")]


def labs_csv(r):
    """The row's labs.csv as `radfuse dataset study` writes it (datasets/covid_study.c), or None."""
    lines = []
    for col, code, name, unit in LAB_COLUMNS:
        v = r[col].strip(C_SPACE)
        if not v:
            continue
        try:
            x = float(v)
        except ValueError:
            continue
        if col == "pO2_saturation" and x > 100:
            continue  # pO2 in mm Hg, not a saturation: left out as the study writer does
        lines.append(f"{code},{name},{v},{unit},,,DATE")
    return lines


def lab_features(rec, age):
    z = rec["z"]
    flags = set(rec["flags"])
    return [math.tanh(z / 2) if rec["z_source"] != "none" and z is not None else 0.0, 1.0,
            float("low" in flags), float("high" in flags), float("critical" in flags),
            float(rec["comparator"] is not None), float(rec["z_source"] == "population"), age]


def study_date(offset):
    import datetime
    return (datetime.date(2020, 1, 1) + datetime.timedelta(days=offset)).isoformat()


def windows_of(n, positions):
    """rf_text_encode's windows (text/encoder.c): starts, lengths, and for each content token
    its window and position in it (most context, earlier window on ties)."""
    W = positions - 2
    S = max(W // 2, 1)
    nw = 1 if n <= W else 1 + (n - W + S - 1) // S
    wins = [(w * S, min(n - w * S, W)) for w in range(nw)]
    best, owner, pos = [-1] * n, [0] * n, [0] * n
    for w, (s, k) in enumerate(wins):
        for i in range(k):
            j, ctx = s + i, min(i, k - 1 - i)
            if ctx > best[j]:
                best[j], owner[j], pos[j] = ctx, w, i
    return wins, owner, pos


def cmd_prepare(a):
    shared, radfuse, cache = Path(a.shared), a.radfuse, Path(a.cache)
    data = shared / "data/covid-chestxray"
    vocab = shared / "fixtures/tokenizer/vocab.txt"
    cache.mkdir(parents=True, exist_ok=True)
    with open(data / "metadata.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    split, split_src = split_of(rows)
    t0 = time.time()
    images = np.zeros((len(rows), IMAGE, IMAGE), np.float16)
    notes, targets = [], []
    for i, r in enumerate(rows):
        if split[r["patientid"]] == "test":
            # the test side is never read: no image, note, labs or targets in the cache
            notes.append(None)
            targets.append([None] * len(TARGETS))
            continue
        images[i] = load_image(data / (r["folder"] or "images") / r["filename"]).astype(np.float16)
        note = r["clinical_notes"].strip(C_SPACE)
        notes.append(tokenize(radfuse, vocab, note) if note.strip(" \t\r\n") else None)
        targets.append(row_targets(r))
    print(f"images and notes: {time.time() - t0:.0f} s", flush=True)
    # labs: each row's labs.csv through radfuse's lab reader, tokens as rf_lab_tokens makes them
    labs = [[] for _ in rows]
    age = float(np.float32(math.log1p(0.5) / math.log(366.0)))  # lab at 00:00 of the study date, study 12:00
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for i, r in enumerate(rows):
            lines = labs_csv(r) if split[r["patientid"]] != "test" else None
            if lines:
                p = Path(tmp) / f"{i}.csv"
                d = study_date(int(r["offset"])) if r["offset"].strip() else "2020-01-01"
                p.write_text("code,name,value,unit,low,high,time\n" +
                             "".join(l.replace("DATE", d) + "\n" for l in lines))
                files.append(str(p))
        if files:
            out = subprocess.run([radfuse, "text", "labs", "--json"] + files, capture_output=True, check=True,
                                 text=True).stdout
            best = {}
            for line in out.splitlines():
                rec = json.loads(line)
                if rec["type"] != "lab" or rec.get("lab_id") is None or rec["value_norm"] is None:
                    continue
                i = int(Path(rec["source"].split(":")[0]).stem)
                best[(i, rec["lab_id"])] = rec  # one record per lab per row; the later wins ties
            for (i, lab), rec in sorted(best.items()):
                labs[i].append([lab] + lab_features(rec, age))
    # reports for masked-language pre-training
    with open(shared / "data/iu-xray-reports/indiana_reports.csv", newline="", encoding="utf-8") as f:
        reports = [" ".join(x for x in (r["indication"], r["findings"], r["impression"]) if x.strip())
                   for r in csv.DictReader(f)]
    t0 = time.time()
    report_ids = [tokenize(radfuse, vocab, t) for t in reports if t.strip()]
    print(f"reports: {len(report_ids)} in {time.time() - t0:.0f} s", flush=True)
    np.save(cache / "images.npy", images)
    # unlabelled images for the vision encoder's masked-image pre-training: the Hannover
    # collection (CC BY 3.0; no notes, every patient COVID-19 positive, so never a label source)
    han = shared / "data/hannover-covid-cxr/png"
    extra = sorted(han.glob("*.png")) if han.is_dir() else []
    np.save(cache / "images_extra.npy", np.stack([load_image(f) for f in extra]).astype(np.float16)
            if extra else np.zeros((0, IMAGE, IMAGE), np.float16))
    print(f"unlabelled images for vision pre-training: {len(extra)} from {han}", flush=True)
    # lung boxes of the training rows only (validation and test boxes are for evaluation)
    lung = lung_masks(data / "annotations/lung_bounding_boxes.json", rows,
                      lambda r: split[r["patientid"]] == "train")
    np.save(cache / "lung_masks.npy", np.stack([m for _, m in lung]) if lung else np.zeros((0, IMAGE, IMAGE), np.uint8))
    meta = {"rows": [{"index": i, "patientid": r["patientid"], "filename": r["filename"],
                      "split": split[r["patientid"]], "view": r["view"],
                      "finding": r["finding"] if split[r["patientid"]] != "test" else None}
                     for i, r in enumerate(rows)],
            "lung_rows": [i for i, _ in lung],
            "split_source": split_src, "notes": notes, "labs": labs, "targets": targets,
            "reports": report_ids, "vocab_size": sum(1 for _ in open(vocab, encoding="utf-8")),
            "vocab": {t: i for i, t in enumerate(open(vocab, encoding="utf-8").read().split("\n")[:-1])}}
    (cache / "meta.json").write_text(json.dumps(meta))
    n = [len(x) for x in notes if x is not None]
    print(f"rows {len(rows)}, split {split_src}: " +
          ", ".join(f"{s} {sum(1 for r in meta['rows'] if r['split'] == s)}" for s in ("train", "val", "test")))
    print(f"notes {len(n)} (tokens median {int(np.median(n))}, max {max(n)}), rows with labs "
          f"{sum(1 for l in labs if l)}, reports {len(report_ids)}")


# ---- the model: transformers' ViTModel / BertModel and the fusion of docs/model-dir.md ----
def attention(q, k, v, heads, key_mask):
    """q [B, T, C], k/v [B, S, C], key_mask [B, S] bool (True: a real key) or None."""
    B, T, C = q.shape
    d = C // heads
    q = q.view(B, T, heads, d).transpose(1, 2)
    k = k.view(B, -1, heads, d).transpose(1, 2)
    v = v.view(B, -1, heads, d).transpose(1, 2)
    s = q @ k.transpose(-1, -2) / math.sqrt(d)
    if key_mask is not None:
        s = s.masked_fill(~key_mask[:, None, None, :], float("-inf"))
    return (torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(B, T, C)


class Layer(nn.Module):
    """One encoder layer with HF's names; pre-norm (ViT) or post-norm (BERT)."""

    def __init__(self, C, I, heads, pre):
        super().__init__()
        self.heads, self.pre = heads, pre
        self.query, self.key, self.value = nn.Linear(C, C), nn.Linear(C, C), nn.Linear(C, C)
        self.out = nn.Linear(C, C)
        self.fc1, self.fc2 = nn.Linear(C, I), nn.Linear(I, C)
        self.ln1, self.ln2 = nn.LayerNorm(C, eps=EPS), nn.LayerNorm(C, eps=EPS)
        self.drop = nn.Dropout(DROPOUT)  # training only: identity at inference, nothing exported

    def forward(self, x, mask=None):
        d = self.drop
        if self.pre:
            h = self.ln1(x)
            x = x + d(self.out(attention(self.query(h), self.key(h), self.value(h), self.heads, mask)))
            return x + d(self.fc2(F.gelu(self.fc1(self.ln2(x)))))
        x = self.ln1(x + d(self.out(attention(self.query(x), self.key(x), self.value(x), self.heads, mask))))
        return self.ln2(x + d(self.fc2(F.gelu(self.fc1(x)))))


class ViT(nn.Module):
    def __init__(self):
        super().__init__()
        C, n = VIT["hidden"], (IMAGE // PATCH) ** 2
        self.patch = nn.Conv2d(3, C, PATCH, stride=PATCH)
        self.cls = nn.Parameter(torch.randn(1, 1, C) * 0.02)
        self.pos = nn.Parameter(torch.randn(1, 1 + n, C) * 0.02)
        self.layers = nn.ModuleList(Layer(C, VIT["intermediate"], VIT["heads"], True) for _ in range(VIT["layers"]))
        self.norm = nn.LayerNorm(C, eps=EPS)

    def forward(self, px):  # [B, 3, S, S] normalized
        x = self.patch(px).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos
        for i, l in enumerate(self.layers):
            if i == len(self.layers) - 1:
                self.last_input = x  # what radfuse's Grad-CAM weighs (docs/saliency.md)
            x = l(x)
        return self.norm(x)

    def hf(self):
        m = {"embeddings.cls_token": self.cls, "embeddings.position_embeddings": self.pos,
             "embeddings.patch_embeddings.projection.weight": self.patch.weight,
             "embeddings.patch_embeddings.projection.bias": self.patch.bias,
             "layernorm.weight": self.norm.weight, "layernorm.bias": self.norm.bias}
        for i, l in enumerate(self.layers):
            p = f"encoder.layer.{i}."
            for name, mod in (("attention.attention.query", l.query), ("attention.attention.key", l.key),
                              ("attention.attention.value", l.value), ("attention.output.dense", l.out),
                              ("intermediate.dense", l.fc1), ("output.dense", l.fc2), ("layernorm_before", l.ln1),
                              ("layernorm_after", l.ln2)):
                m[p + name + ".weight"], m[p + name + ".bias"] = mod.weight, mod.bias
        return m


class Bert(nn.Module):
    def __init__(self, vocab_size):
        super().__init__()
        C = BERT["hidden"]
        self.word = nn.Embedding(vocab_size, C)
        self.pos = nn.Embedding(BERT["positions"], C)
        self.ttype = nn.Embedding(2, C)
        for e in (self.word, self.pos, self.ttype):
            nn.init.normal_(e.weight, std=0.02)
        self.ln = nn.LayerNorm(C, eps=EPS)
        self.layers = nn.ModuleList(Layer(C, BERT["intermediate"], BERT["heads"], False)
                                    for _ in range(BERT["layers"]))

    def forward(self, ids, mask):  # [B, T] ids, mask bool
        T = ids.shape[1]
        x = self.ln(self.word(ids) + self.pos.weight[:T] + self.ttype.weight[0])
        for l in self.layers:
            x = l(x, mask)
        return x

    def hf(self):
        m = {"embeddings.word_embeddings.weight": self.word.weight,
             "embeddings.position_embeddings.weight": self.pos.weight,
             "embeddings.token_type_embeddings.weight": self.ttype.weight,
             "embeddings.LayerNorm.weight": self.ln.weight, "embeddings.LayerNorm.bias": self.ln.bias}
        for i, l in enumerate(self.layers):
            p = f"encoder.layer.{i}."
            for name, mod in (("attention.self.query", l.query), ("attention.self.key", l.key),
                              ("attention.self.value", l.value), ("attention.output.dense", l.out),
                              ("intermediate.dense", l.fc1), ("output.dense", l.fc2),
                              ("attention.output.LayerNorm", l.ln1), ("output.LayerNorm", l.ln2)):
                m[p + name + ".weight"], m[p + name + ".bias"] = mod.weight, mod.bias
        return m


class MLMHead(nn.Module):
    def __init__(self, bert):
        super().__init__()
        C = BERT["hidden"]
        self.dense, self.ln = nn.Linear(C, C), nn.LayerNorm(C, eps=EPS)
        self.bias = nn.Parameter(torch.zeros(bert.word.weight.shape[0]))
        self.bert = [bert]  # tied decoder, not a submodule

    def forward(self, h):
        return self.ln(F.gelu(self.dense(h))) @ self.bert[0].word.weight.T + self.bias


def pool_matrix(g, o):
    """rf_fusion_pool_matrix: adaptive average pooling of a g x g grid to o x o as a matrix."""
    P = torch.zeros(o * o, g * g)
    for i in range(o):
        r0, r1 = i * g // o, ((i + 1) * g + o - 1) // o
        for j in range(o):
            c0, c1 = j * g // o, ((j + 1) * g + o - 1) // o
            for r in range(r0, r1):
                for c in range(c0, c1):
                    P[i * o + j, r * g + c] = 1.0 / ((r1 - r0) * (c1 - c0))
    return P


class Block(nn.Module):
    """A fusion block (timm names: norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2)."""

    def __init__(self, D, I, heads):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(D, eps=FEPS), nn.LayerNorm(D, eps=FEPS)
        self.qkv, self.proj = nn.Linear(D, 3 * D), nn.Linear(D, D)
        self.fc1, self.fc2 = nn.Linear(D, I), nn.Linear(I, D)
        self.drop = nn.Dropout(DROPOUT)

    def forward(self, x, mask):
        q, k, v = self.qkv(self.norm1(x)).chunk(3, dim=-1)
        x = x + self.drop(self.proj(attention(q, k, v, self.heads, mask)))
        return x + self.drop(self.fc2(F.gelu(self.fc1(self.norm2(x)))))


class Fusion(nn.Module):
    def __init__(self, vocab_size):
        super().__init__()
        D, K = FUSION["hidden"], len(TARGETS)
        self.vit, self.bert = ViT(), Bert(vocab_size)
        g = IMAGE // PATCH
        self.register_buffer("pool", pool_matrix(g, FUSION["pool"]), persistent=False)
        self.cls = nn.Parameter(torch.randn(D) * 0.02)
        self.modality = nn.Parameter(torch.randn(4, D) * 0.02)
        self.absent = nn.Parameter(torch.randn(4, D) * 0.02)
        self.image_proj = nn.Linear(VIT["hidden"], D)
        self.text_proj = nn.Linear(BERT["hidden"], D)
        self.time_embed = nn.Linear(8, D)  # no prior input in this model: exported, never used
        self.lab_code = nn.Parameter(torch.randn(LAB_CODES, D) * 0.02)
        self.lab_value = nn.Linear(8, D)
        self.blocks = nn.ModuleList(Block(D, FUSION["intermediate"], FUSION["heads"])
                                    for _ in range(FUSION["layers"]))
        self.norm = nn.LayerNorm(D, eps=FEPS)
        self.head = nn.Linear(D, K)

    def image_tokens(self, px):
        v = self.vit(px)  # [n, 1 + g*g, Dv]
        pooled = torch.cat([v[:, :1], self.pool @ v[:, 1:]], 1)
        return self.image_proj(pooled) + self.modality[IMG_I]

    def text_rows(self, notes, device):
        """notes: list of content-id lists (or None). Returns per note [1 + take, D] rows (document
        vector first) as rf_text_encode + the fusion's max_text_tokens cap give them."""
        P = BERT["positions"]
        wins_all, plan = [], []
        for ids in notes:
            if ids is None:
                plan.append(None)
                continue
            wins, owner, pos = windows_of(len(ids), P)
            w0 = len(wins_all)
            wins_all += [[CLS_ID] + ids[s:s + k] + [SEP_ID] for s, k in wins]
            plan.append((w0, len(ids), owner, pos))
        out = [None] * len(notes)
        if not wins_all:
            return out
        T = max(len(w) for w in wins_all)
        ids = torch.full((len(wins_all), T), PAD_ID, dtype=torch.long)
        mask = torch.zeros(len(wins_all), T, dtype=torch.bool)
        for i, w in enumerate(wins_all):
            ids[i, :len(w)] = torch.tensor(w)
            mask[i, :len(w)] = True
        h = self.bert(ids.to(device), mask.to(device))
        for n, p in enumerate(plan):
            if p is None:
                continue
            w0, N, owner, pos = p
            if N == 0:
                doc = h[w0, 0]
                toks = h.new_zeros(0, h.shape[-1])
            else:
                ow = torch.tensor(owner, device=device) + w0
                doc = h[ow, 0].mean(0)
                take = min(N, FUSION["max_text_tokens"])
                toks = h[ow[:take], torch.tensor(pos[:take], device=device) + 1]
            out[n] = self.text_proj(torch.cat([doc[None], toks])) + self.modality[TXT_I]
        return out

    def forward(self, px, has_image, notes, labs, modes=None, detach_text=False):
        """px [B, 3, S, S]; has_image [B] bool; notes: B content-id lists or None; labs: B lists
        of [lab, 8 features] (empty: absent). Returns logits [B, K] (before temperatures).
        modes: None, or M triples (image, note, labs) of B bools each saying which of the row's
        inputs that pass gives; the encoders run once and the fusion once per mode, and the
        result is [M, B, K] (several input sets of one batch at the cost of one encoding)."""
        device, B = self.cls.device, len(notes)
        img = self.image_tokens(px[has_image]) if has_image.any() else None
        txt = self.text_rows(notes, device)
        if detach_text:  # the guidance loss leaves the text encoder alone
            txt = [None if t is None else t.detach() for t in txt]
        imgs, k = [], 0
        for b in range(B):
            imgs.append(img[k] if has_image[b] else None)
            k += int(bool(has_image[b]))
        labt = []
        for b in range(B):
            if labs[b]:
                L = torch.tensor(labs[b], dtype=torch.float32, device=device)
                labt.append(self.lab_code[L[:, 0].long()] + self.lab_value(L[:, 1:]) + self.modality[LAB_I])
            else:
                labt.append(None)
        all_on = [True] * B
        seqs = []
        for mi, mt, ml in (modes or [(all_on, all_on, all_on)]):
            for b in range(B):
                rows = [self.cls[None]]
                rows.append(imgs[b] if imgs[b] is not None and mi[b] else self.absent[IMG_I][None])
                rows.append(self.absent[PRI_I][None])
                rows.append(txt[b] if txt[b] is not None and mt[b] else self.absent[TXT_I][None])
                rows.append(labt[b] if labt[b] is not None and ml[b] else self.absent[LAB_I][None])
                seqs.append(torch.cat(rows))
        T = max(s.shape[0] for s in seqs)
        D = FUSION["hidden"]
        x = torch.zeros(len(seqs), T, D, device=device)
        mask = torch.zeros(len(seqs), T, dtype=torch.bool, device=device)
        for b, s in enumerate(seqs):
            x[b, :s.shape[0]] = s
            mask[b, :s.shape[0]] = True
        for blk in self.blocks:
            x = blk(x, mask)
        out = self.head(self.norm(x[:, 0]))
        return out if modes is None else out.view(len(modes), B, -1)

    def fusion_tensors(self):
        m = {"fusion.cls_token": self.cls, "fusion.modality_embed": self.modality,
             "fusion.absent_embed": self.absent, "fusion.lab_code.weight": self.lab_code,
             "fusion.norm.weight": self.norm.weight, "fusion.norm.bias": self.norm.bias,
             "fusion.head.weight": self.head.weight, "fusion.head.bias": self.head.bias}
        for name, mod in (("image_proj", self.image_proj), ("text_proj", self.text_proj),
                          ("time_embed", self.time_embed), ("lab_value", self.lab_value)):
            m[f"fusion.{name}.weight"], m[f"fusion.{name}.bias"] = mod.weight, mod.bias
        for i, b in enumerate(self.blocks):
            for name, mod in (("norm1", b.norm1), ("attn.qkv", b.qkv), ("attn.proj", b.proj),
                              ("norm2", b.norm2), ("mlp.fc1", b.fc1), ("mlp.fc2", b.fc2)):
                m[f"fusion.blocks.{i}.{name}.weight"], m[f"fusion.blocks.{i}.{name}.bias"] = mod.weight, mod.bias
        return m


CLS_ID = SEP_ID = PAD_ID = MASK_ID = None


def set_special(vocab):
    global CLS_ID, SEP_ID, PAD_ID, MASK_ID
    CLS_ID, SEP_ID, PAD_ID, MASK_ID = vocab["[CLS]"], vocab["[SEP]"], vocab["[PAD]"], vocab["[MASK]"]


# ---- metrics ----
def auroc(y, p):
    y, p = np.asarray(y), np.asarray(p)
    pos, neg = p[y == 1], p[y == 0]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    r = np.argsort(np.argsort(np.concatenate([pos, neg]), kind="mergesort"), kind="mergesort").astype(float)
    # average ranks of ties
    allv = np.concatenate([pos, neg])
    for v in np.unique(allv):
        idx = np.where(allv == v)[0]
        if len(idx) > 1:
            r[idx] = r[idx].mean()
    return float((r[:len(pos)].sum() - len(pos) * (len(pos) - 1) / 2) / (len(pos) * len(neg)))


def target_arrays(meta, idx):
    Y = np.array([[np.nan if v is None else v for v in meta["targets"][i]] for i in idx], dtype=np.float64)
    return Y


# ---- fit ----
def seed_all(s):
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)


def augment(x, gen, masks=None):
    """Modest: a small random affine (rotation +-7 degrees, scale 0.9-1.1, shift +-6%) and
    brightness / contrast +-10%, on the [0, 1] image before normalization. No flips: the heart
    is on the left. masks ([B, 1, S, S], optional) go through the same affine: returns (x, masks)."""
    B = x.shape[0]
    ang = (torch.rand(B, generator=gen) * 2 - 1) * math.radians(7)
    sc = 1 + (torch.rand(B, generator=gen) * 2 - 1) * 0.1
    tx, ty = [(torch.rand(B, generator=gen) * 2 - 1) * 0.12 for _ in range(2)]
    th = torch.stack([torch.stack([torch.cos(ang) / sc, -torch.sin(ang) / sc, tx], 1),
                      torch.stack([torch.sin(ang) / sc, torch.cos(ang) / sc, ty], 1)], 1).to(x.device)
    grid = F.affine_grid(th, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, padding_mode="border", align_corners=False)
    c = (1 + (torch.rand(B, 1, 1, 1, generator=gen) * 2 - 1) * 0.1).to(x.device)
    b = ((torch.rand(B, 1, 1, 1, generator=gen) * 2 - 1) * 0.1).to(x.device)
    x = ((x - 0.5) * c + 0.5 + b).clamp(0, 1)
    if masks is None:
        return x
    return x, F.grid_sample(masks, grid, padding_mode="zeros", align_corners=False)


def normalize(x):  # [B, 1, S, S] in [0, 1] -> [B, 3, S, S]
    return ((x - MEAN) / STD).expand(-1, 3, -1, -1)


def set_warmup_cosine(opt, lr0, step, steps, warmup=100):
    """The pre-trainings' learning rate at step: linear warm-up over warmup steps, then cosine
    decay to 0 at steps."""
    lr = lr0 * min(1, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * step / steps))
    for g in opt.param_groups:
        g["lr"] = lr


def pretrain_text(bert, meta, train_idx, steps, device, log, lr0=5e-4):
    """Masked-language modelling (15%: 80% [MASK], 10% random, 10% kept) on the reports and the
    training split's notes, one window of at most positions - 2 tokens each."""
    texts = [t for t in meta["reports"] if t] + [meta["notes"][i] for i in train_idx if meta["notes"][i]]
    head = MLMHead(bert).to(device)
    opt = torch.optim.AdamW(list(bert.parameters()) + list(head.parameters()), lr=lr0, weight_decay=0.01)
    W, V, Bs = BERT["positions"] - 2, meta["vocab_size"], 32
    rng = random.Random(1)
    t0 = time.time()
    for step in range(steps):
        set_warmup_cosine(opt, lr0, step, steps)
        batch = []
        for _ in range(Bs):
            t = texts[rng.randrange(len(texts))]
            s = rng.randrange(max(1, len(t) - W + 1))
            batch.append([CLS_ID] + t[s:s + W] + [SEP_ID])
        T = max(len(b) for b in batch)
        ids = torch.full((Bs, T), PAD_ID, dtype=torch.long)
        mask = torch.zeros(Bs, T, dtype=torch.bool)
        for i, b in enumerate(batch):
            ids[i, :len(b)] = torch.tensor(b)
            mask[i, :len(b)] = True
        content = mask.clone()
        content[:, 0] = False
        content[torch.arange(Bs), mask.sum(1) - 1] = False
        g = torch.Generator().manual_seed(1000 + step)
        pick = (torch.rand(Bs, T, generator=g) < 0.15) & content
        r = torch.rand(Bs, T, generator=g)
        inp = ids.clone()
        inp[pick & (r < 0.8)] = MASK_ID
        rnd = pick & (r >= 0.8) & (r < 0.9)
        inp[rnd] = torch.randint(0, V, (int(rnd.sum()),), generator=g)
        inp, mask, ids, pick = inp.to(device), mask.to(device), ids.to(device), pick.to(device)
        logits = head(bert(inp, mask)[pick])
        loss = F.cross_entropy(logits, ids[pick])
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(bert.parameters(), 1.0)
        opt.step()
        if step % 200 == 0 or step == steps - 1:
            log(f"mlm step {step}/{steps} loss {loss.item():.3f} ({time.time() - t0:.0f} s)")


def pretrain_vision(vit, images, rows, steps, device, log, lr0=5e-4, bs=32, ratio=0.5):
    """Masked-image modelling (SimMIM: Xie et al., CVPR 2022) of the vision encoder on unlabelled
    images (rows of images): per image half of the 8 x 8 patches replaced by a learnt mask token
    after the patch embedding, the encoder's output at each masked patch mapped by a linear
    decoder to the patch's 16 x 16 pixels, L1 loss on the masked patches; the images augmented
    as in fitting. Teaches the encoder what chest radiographs look like before any label does,
    so that the labels of 300 images are not all it learns from."""
    C, g = VIT["hidden"], IMAGE // PATCH
    mask_token = nn.Parameter(torch.zeros(1, 1, C, device=device))
    dec = nn.Linear(C, PATCH * PATCH).to(device)
    opt = torch.optim.AdamW(list(vit.parameters()) + [mask_token] + list(dec.parameters()), lr=lr0,
                            weight_decay=0.05)
    gen = torch.Generator().manual_seed(7)
    t0 = time.time()
    for step in range(steps):
        set_warmup_cosine(opt, lr0, step, steps)
        pick = torch.randint(0, len(rows), (bs,), generator=gen)
        x = augment(torch.from_numpy(images[[rows[i] for i in pick]].astype(np.float32))[:, None].to(device), gen)
        m = (torch.rand(bs, g * g, generator=gen) < ratio).to(device)
        t = vit.patch(normalize(x)).flatten(2).transpose(1, 2)
        t = torch.where(m[..., None], mask_token.expand(bs, g * g, C), t)
        h = torch.cat([vit.cls.expand(bs, -1, -1), t], 1) + vit.pos
        for l in vit.layers:
            h = l(h)
        pred = dec(vit.norm(h)[:, 1:])  # [B, g*g, P*P]
        target = F.unfold(x, PATCH, stride=PATCH).transpose(1, 2)  # [B, g*g, P*P] in [0, 1]
        loss = (pred - target).abs()[m].mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vit.parameters(), 1.0)
        opt.step()
        if step % 200 == 0 or step == steps - 1:
            log(f"mim step {step}/{steps} loss {loss.item():.4f} ({time.time() - t0:.0f} s)")


def run_batch(model, meta, images, idx, device, train, gen, drop, aux):
    """Training logits [M, B, K]: first the fused pass with modality dropout (each input of a
    row replaced by its absent token with the probabilities drop), then, when aux, the image-,
    note- and labs-only passes of the same rows, so that every single-input path the ablation
    reads is trained and the fused pass has to do better than each."""
    x = torch.from_numpy(images[idx].astype(np.float32))[:, None].to(device)
    if train:
        x = augment(x, gen)
    px = normalize(x)
    B = len(idx)
    notes = [meta["notes"][i] for i in idx]
    labs = [meta["labs"][i] for i in idx]
    r = torch.rand(B, 3, generator=gen)
    on = [[bool(r[b, m] >= drop[m]) for b in range(B)] for m in range(3)]
    modes = [tuple(on)]
    if aux:
        t, f = [True] * B, [False] * B
        modes += [(t, f, f), (f, t, f), (f, f, t)]
    return model(px, torch.ones(B, dtype=torch.bool).to(device), notes, labs, modes)


def guidance_loss(model, meta, images, masks, idx, device, gen, detach_text=False):
    """The share of the Grad-CAM maps outside the lung boxes, 1 - mass inside, averaged over the
    (row, positive finding) pairs of rows idx (training rows with boxes; masks [len(idx), S, S]):
    the map radfuse's Grad-CAM draws (docs/saliency.md: the finding's logit of the fused input,
    gradients at the last vision block's input, channel weights = mean gradient over the patches,
    ReLU of the weighted sum), here at patch resolution and differentiable (create_graph), so
    that the image side is trained to find its evidence in the lungs rather than on the source's
    markers and borders. detach_text: no gradient of it reaches the text encoder. None when no
    row has a positive finding."""
    x = torch.from_numpy(images[idx].astype(np.float32))[:, None].to(device)
    m = torch.from_numpy(masks.astype(np.float32))[:, None].to(device)
    if gen is not None:  # training: augmented; None: as radfuse reads the image
        x, m = augment(x, gen, m)
    B = len(idx)
    logits = model(normalize(x), torch.ones(B, dtype=torch.bool, device=device),
                   [meta["notes"][i] for i in idx], [meta["labs"][i] for i in idx], detach_text=detach_text)
    A = model.vit.last_input
    cover = F.avg_pool2d(m, PATCH).flatten(1)  # [B, patches]: the share of each patch inside
    Y = target_arrays(meta, idx)[:, :FINDINGS]
    out = []
    for k in range(FINDINGS):
        pos = torch.from_numpy(Y[:, k] == 1).to(device)
        if not bool(pos.any()):
            continue
        g = torch.autograd.grad(logits[pos, k].sum(), A, create_graph=True)[0][pos, 1:]
        cam = F.relu((A[pos, 1:] * g.mean(1, keepdim=True)).sum(-1))
        out.append(1 - (cam * cover[pos]).sum(1) / (cam.sum(1) + 1e-6))
    return torch.cat(out).mean() if out else None


def predict(model, meta, images, idx, device, mode="fused", bs=32):
    """Logits of rows idx with the inputs of mode: fused (every input the row has), image, text,
    labs; or mode "all": a dict of the four from one encoding."""
    model.eval()
    names = ("fused", "image", "text", "labs")
    out = {m: [] for m in names}
    with torch.no_grad():
        for s in range(0, len(idx), bs):
            ii = idx[s:s + bs]
            x = normalize(torch.from_numpy(images[ii].astype(np.float32))[:, None].to(device))
            B = len(ii)
            t, f = [True] * B, [False] * B
            modes = {"fused": (t, t, t), "image": (t, f, f), "text": (f, t, f), "labs": (f, f, t)}
            want = names if mode == "all" else (mode,)
            notes = [meta["notes"][i] for i in ii]
            labs = [meta["labs"][i] for i in ii]
            has_image = torch.full((B,), any(modes[m][0][0] for m in want), dtype=torch.bool)
            L = model(x, has_image.to(device), notes, labs, [modes[m] for m in want]).double().cpu()
            for j, m in enumerate(want):
                out[m].append(L[j])
    if mode == "all":
        return {m: torch.cat(out[m]).numpy() for m in names}
    return torch.cat(out[mode]).numpy()


def aurocs(Y, L):
    return [auroc(Y[~np.isnan(Y[:, k]), k], L[~np.isnan(Y[:, k]), k]) for k in range(Y.shape[1])]


def cmd_fit(a):
    cache, out = Path(a.cache), Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    logf = open(out / "fit.log", "a")

    def log(s):
        print(s, flush=True)
        logf.write(s + "\n")
        logf.flush()

    device = torch.device(a.device)
    if a.threads or device.type == "cpu":
        # one thread on the CPU unless asked: on the shared 2-core machine two OpenMP threads
        # wait on each other behind other jobs and ran 2 to 5 times slower than one
        # (docs/training.md, "Time"); results differ only by float rounding
        torch.set_num_threads(a.threads or 1)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    seed_all(a.seed)
    meta = json.loads((cache / "meta.json").read_text())
    set_special(meta["vocab"])
    images = np.load(cache / "images.npy")
    # frontal rows only unless asked: radfuse read never gives the model a lateral (docs/imaging.md)
    keep = (lambda r: True) if a.laterals else (lambda r: r["view"] != "L")
    tr = [r["index"] for r in meta["rows"] if r["split"] == "train" and keep(r)]
    va = [r["index"] for r in meta["rows"] if r["split"] == "val" and r["view"] != "L"]
    if a.max_train_rows:
        tr = tr[:a.max_train_rows]
    log(f"torch {torch.__version__} on {device} ({torch.get_num_threads()} threads); split "
        f"{meta['split_source']}: train {len(tr)}, val {len(va)} rows (frontal)")
    model = Fusion(meta["vocab_size"]).to(device)
    nparams = {n: sum(p.numel() for p in m.parameters()) for n, m in
               (("vision", model.vit), ("text", model.bert))}
    nparams["fusion"] = sum(p.numel() for p in model.parameters()) - nparams["vision"] - nparams["text"]
    log(f"parameters: {nparams}")
    t_start = time.time()
    if a.mlm_init:
        # the pre-trained text encoder of an earlier fit with the same seed, rows and steps
        # (what a sweep of fusion settings shares); the fit continues as if it had run it
        model.bert.load_state_dict(torch.load(a.mlm_init, map_location=device))
        log(f"text encoder from {a.mlm_init}")
    elif a.mlm_steps:
        pretrain_text(model.bert, meta, tr, a.mlm_steps, device, log, a.mlm_lr)
        torch.save({k: v.detach().cpu() for k, v in model.bert.state_dict().items()}, out / "mlm_bert.pt")
    if a.mim_init:
        model.vit.load_state_dict(torch.load(a.mim_init, map_location=device))
        log(f"vision encoder from {a.mim_init}")
    elif a.mim_steps:
        # training rows (any view) and the unlabelled extra images; no validation or test image
        extra = np.load(cache / "images_extra.npy") if (cache / "images_extra.npy").exists() else None
        pool = images if extra is None or not len(extra) else np.concatenate([images, extra])
        rows = [r["index"] for r in meta["rows"] if r["split"] == "train"] + \
            list(range(len(images), len(pool)))
        log(f"masked-image pre-training on {len(rows)} images")
        pretrain_vision(model.vit, pool, rows, a.mim_steps, device, log)
        torch.save({k: v.detach().cpu() for k, v in model.vit.state_dict().items()}, out / "mim_vit.pt")
    t_mlm = time.time() - t_start  # both pre-trainings
    if a.epochs == 0:
        log(f"pre-training only: {t_mlm:.0f} s")
        return
    torch.manual_seed(a.seed + 1)  # the fusion stage's dropout draws do not depend on how MLM ran
    Yv = target_arrays(meta, va)
    Yt = target_arrays(meta, tr)
    # positive weights for rare targets: negatives / positives of the training rows, clipped
    npos, nneg = np.nansum(Yt, 0), np.nansum(1 - Yt, 0)
    pw = np.clip(nneg / np.maximum(npos, 1), 1.0, a.pos_weight_max) if a.pos_weight_max > 1 else np.ones(len(TARGETS))
    pos_weight = torch.tensor(pw, dtype=torch.float32, device=device)
    log("pos_weight " + " ".join(f"{x:.2f}" for x in pw))
    enc = list(model.vit.parameters()) + list(model.bert.parameters())
    encset = {id(p) for p in enc}
    rest = [p for p in model.parameters() if id(p) not in encset]
    opt = torch.optim.AdamW([{"params": list(model.vit.parameters()), "lr": a.lr},
                             {"params": list(model.bert.parameters()), "lr": a.lr * a.text_lr_mult},
                             {"params": rest, "lr": a.lr}], weight_decay=0.05)
    base = [g["lr"] for g in opt.param_groups]
    gen = torch.Generator().manual_seed(a.seed)
    steps_per = math.ceil(len(tr) / a.batch)
    total = steps_per * a.epochs
    drop = tuple(a.drop)

    def write_summary(best_ep, best):
        summary = {"best_epoch": best_ep, "best_score": best, "select": a.select,
                   "best_val_loss": history[best_ep]["val_loss"],
                   "best_val_finding_macro": history[best_ep]["val_finding_macro"],
                   "best_val_auroc": history[best_ep]["val_auroc"], "epochs_run": len(history),
                   "mlm_steps": a.mlm_steps, "mlm_seconds": t_mlm, "fit_seconds": time.time() - t_fit,
                   "total_seconds": time.time() - t_start, "device": str(device),
                   "device_name": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
                   "threads": torch.get_num_threads(), "torch": torch.__version__, "parameters": nparams,
                   "args": vars(a), "history": history, "split_source": meta["split_source"]}
        write_atomic(out / "summary.json", json.dumps(summary, indent=1))
    # Grad-CAM guidance (guidance_loss) on the training rows with lung boxes and a positive finding
    lung_masks_all = np.load(cache / "lung_masks.npy") if (cache / "lung_masks.npy").exists() else None
    trset = set(tr)
    guide_rows = [(i, j) for j, i in enumerate(meta.get("lung_rows", [])) if i in trset and
                  np.nansum(target_arrays(meta, [i])[0, :FINDINGS]) > 0] \
        if a.guide > 0 and lung_masks_all is not None else []
    # a quarter of those rows' patients are held out of the guidance: their Grad-CAM lung mass is
    # the check of whether it generalizes (the validation boxes stay unread, for evaluation)
    held = [g for g in guide_rows if int(hashlib.sha256(("radfuse-guide:" + meta["rows"][g[0]]["patientid"])
                                                        .encode()).hexdigest()[:8], 16) % 4 == 0]
    guide_rows = [g for g in guide_rows if g not in held]
    held_masks = lung_masks_all[[g[1] for g in held]] if held else None
    hunif = float(held_masks.mean()) if held else None  # what a uniform map scores on them
    if a.guide > 0:
        log(f"Grad-CAM guidance: weight {a.guide}, {len(guide_rows)} training rows with lung boxes, "
            f"{a.guide_batch} a step; {len(held)} held out to check it")
    ggen = torch.Generator().manual_seed(a.seed + 2)
    best, best_ep, step, history = -math.inf, -1, 0, []
    t_fit = time.time()
    for ep in range(a.epochs):
        model.train()
        order = torch.randperm(len(tr), generator=gen).tolist()
        tot, n, gtot, gn = 0.0, 0, 0.0, 0
        te = time.time()
        for s in range(0, len(tr), a.batch):
            idx = [tr[i] for i in order[s:s + a.batch]]
            f = min(1, (step + 1) / (2 * steps_per)) * 0.5 * (1 + math.cos(math.pi * step / total))
            for j, (g, b) in enumerate(zip(opt.param_groups, base)):
                # the pre-trained text encoder waits until the fusion has learnt to read it
                g["lr"] = 0.0 if j == 1 and ep < a.text_freeze else b * f
            logits = run_batch(model, meta, images, idx, device, True, gen, drop, a.aux > 0)
            Y = torch.tensor(target_arrays(meta, idx), dtype=torch.float32, device=device)
            known = ~torch.isnan(Y)
            w = pos_weight.expand_as(Y)[known]
            losses = [F.binary_cross_entropy_with_logits(L[known], Y[known], pos_weight=w) for L in logits]
            loss = losses[0] + (a.aux * sum(losses[1:]) / len(losses[1:]) if len(losses) > 1 else 0)
            if guide_rows:
                pick = torch.randperm(len(guide_rows), generator=ggen)[:a.guide_batch].tolist()
                gl = guidance_loss(model, meta, images, lung_masks_all[[guide_rows[p][1] for p in pick]],
                                   [guide_rows[p][0] for p in pick], device, ggen, a.guide_detach_text)
                if gl is not None:
                    loss = loss + a.guide * gl
                    gtot += gl.item()
                    gn += 1
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            tot += losses[0].item() * len(idx)
            n += len(idx)
            step += 1
        t_ep = time.time() - te
        P = predict(model, meta, images, va, device, "all")
        Lv = P["fused"]
        au = aurocs(Yv, Lv)
        mac = {m: float(np.nanmean(aurocs(Yv, np.round(P[m], 5))[:FINDINGS])) for m in P}
        known = ~np.isnan(Yv)
        vloss = float(F.binary_cross_entropy_with_logits(torch.from_numpy(Lv[known]), torch.from_numpy(Yv[known])))
        gmass = 1 - gtot / gn if gn else None
        hmass = None
        if held:
            model.eval()
            hl = guidance_loss(model, meta, images, held_masks, [g[0] for g in held], device, None)
            hmass = None if hl is None else 1 - hl.item()
        history.append({"epoch": ep, "train_loss": tot / n, "val_loss": vloss, "val_auroc": au,
                        "val_finding_macro": mac, "train_gradcam_lung_mass": gmass,
                        "held_gradcam_lung_mass": hmass, "held_uniform_mass": hunif, "seconds": t_ep})
        log(f"epoch {ep} train {tot / n:.4f} val {vloss:.4f}" +
            (f" Grad-CAM lung mass train {gmass:.3f}" if gmass is not None else "") +
            (f" held-out {hmass:.3f} (uniform {hunif:.3f})" if hmass is not None else "") +
            f" finding AUROC fused {mac['fused']:.3f} image "
            f"{mac['image']:.3f} text {mac['text']:.3f} labs {mac['labs']:.3f} ({t_ep:.1f} s)")
        # the choice: the fused input's macro AUROC over the findings (what the model is for),
        # or the validation loss
        score = mac["fused"] if a.select == "auroc" else -vloss
        if hmass is not None and not hmass > hunif:
            # an epoch whose Grad-CAM on the held-out training rows with lung boxes is not on the
            # lungs more than a uniform map is chosen only when no epoch is
            score -= 1000
        if score > best:
            best, best_ep = score, ep
            save_states(model, out)
        write_summary(best_ep, best)
        if ep - best_ep >= a.patience:
            log(f"early stop: no better validation {a.select} for {a.patience} epochs")
            break
        if a.time_limit and time.time() - t_fit > a.time_limit:
            log(f"stop: the time limit of {a.time_limit:.0f} s")
            break
    write_summary(best_ep, best)
    log(f"done: best epoch {best_ep}, {a.select} {best:.4f}, {time.time() - t_start:.0f} s")


def save_states(model, out):
    """The state in three files below 16 MB each (the transfer limit of the training machine)."""
    sd = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    for part in ("vit.", "bert.", ""):
        sel = {k: v for k, v in sd.items() if k.startswith(part) and (part or not k.startswith(("vit.", "bert.")))}
        tmp = out / f"state_{part.rstrip('.') or 'fusion'}.pt.tmp"
        torch.save(sel, tmp)
        os.replace(tmp, out / f"state_{part.rstrip('.') or 'fusion'}.pt")


# ---- export ----
def save_safetensors(path, tensors, meta):
    head, blobs, off = {"__metadata__": meta}, [], 0
    for k in sorted(tensors):
        a = np.ascontiguousarray(tensors[k].detach().cpu().numpy().astype(np.float16))
        head[k] = {"dtype": "F16", "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        blobs.append(a.tobytes())
        off += a.nbytes
    h = json.dumps(head).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    os.replace(tmp, path)


def fit_temperature(y, z):
    """The temperature minimizing the negative log-likelihood of sigmoid(z / T) (grid in log T)."""
    best, bt = None, 1.0
    for lt in np.linspace(math.log(0.05), math.log(20), 601):
        t = math.exp(lt)
        p = 1 / (1 + np.exp(-z / t))
        nll = -np.mean(y * np.log(np.clip(p, 1e-12, 1)) + (1 - y) * np.log(np.clip(1 - p, 1e-12, 1)))
        if best is None or nll < best:
            best, bt = nll, t
    return bt


def fit_platt(y, z):
    """The temperature T and shift s minimizing the negative log-likelihood of
    sigmoid(z / T + s) (grid in log T and s)."""
    T = np.exp(np.linspace(math.log(0.05), math.log(20), 121))
    S = np.linspace(-6, 6, 241)
    q = z[None, None, :] / T[:, None, None] + S[None, :, None]
    nll = np.mean(np.logaddexp(0, -q) * y + np.logaddexp(0, q) * (1 - y), axis=2)
    i, j = np.unravel_index(np.argmin(nll), nll.shape)
    return float(T[i]), float(S[j])


def youden(y, p):
    best, th = -1, 0.5
    for t in np.unique(p):
        tpr = np.mean(p[y == 1] >= t)
        fpr = np.mean(p[y == 0] >= t)
        if tpr - fpr > best:
            best, th = tpr - fpr, float(t)
    return float(min(max(th, 0.01), 0.99))


def write_atomic(path, text):
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def cmd_export(a):
    cache, run, outdir = Path(a.cache), Path(a.run), Path(a.model)
    torch.set_num_threads(a.threads or 2)
    meta = json.loads((cache / "meta.json").read_text())
    set_special(meta["vocab"])
    images = np.load(cache / "images.npy")
    shared = Path(a.shared)
    model = Fusion(meta["vocab_size"])
    sd = {}
    for part in ("vit", "bert", "fusion"):
        sd.update(torch.load(run / f"state_{part}.pt"))
    model.load_state_dict(sd)
    # the weights radfuse will load: fp16, back to float32
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())
    model.eval()
    # calibration and thresholds on every validation row, the laterals included: the rows
    # `radfuse eval --subset val` scores (the epoch was chosen on the frontal ones)
    va = [r["index"] for r in meta["rows"] if r["split"] == "val"]
    # exact inputs for the validation rows: the cache holds fp16 images, radfuse computes float32
    data = shared / "data/covid-chestxray"
    exact = {i: load_image(data / "images" / meta["rows"][i]["filename"]) for i in va}
    imgs32 = np.zeros((len(meta["rows"]), IMAGE, IMAGE), np.float32)
    for i, v in exact.items():
        imgs32[i] = v
    Yv = target_arrays(meta, va)
    modes = {m: predict(model, meta, imgs32, va, "cpu", m) for m in ("fused", "image", "text", "labs")}
    Lv = modes["fused"]
    if a.calibration == "platt":
        # a temperature and a shift per target (Platt scaling on the validation rows): the shift
        # goes into the head's bias (times the temperature), so the model directory keeps its
        # format, a temperature per target, and radfuse computes sigmoid(logit / T) as before
        with torch.no_grad():
            for k in range(len(TARGETS)):
                y, z = Yv[:, k], Lv[:, k]
                ok = ~np.isnan(y)
                if ok.sum() >= 5 and 0 < y[ok].sum() < ok.sum():
                    t, sh = fit_platt(y[ok], z[ok])
                    model.head.bias[k] = float(np.float16(float(model.head.bias[k]) + sh * t))
        modes = {m: predict(model, meta, imgs32, va, "cpu", m) for m in ("fused", "image", "text", "labs")}
        Lv = modes["fused"]
    temps, ths, val = [], [], {}
    for k, (code, _) in enumerate(TARGETS):
        y, z = Yv[:, k], Lv[:, k]
        ok = ~np.isnan(y)
        if ok.sum() >= 5 and 0 < y[ok].sum() < ok.sum():
            t = fit_temperature(y[ok], z[ok])
            p = 1 / (1 + np.exp(-z[ok] / t))
            th = youden(y[ok], p)
        else:
            t, th = 1.0, 0.5
        temps.append(t)
        ths.append(th)
        val[code] = {"n": int(ok.sum()), "positives": int(np.nansum(y)),
                     # rounded: a row without the set's input gets the absent tokens' one answer,
                     # and float noise of batching must not break those ties
                     **{m: auroc(y[ok], np.round(modes[m][ok, k], 5)) for m in modes}}
    outdir.mkdir(parents=True, exist_ok=True)
    tensors = {"vision." + k: v for k, v in model.vit.hf().items()}
    tensors.update({"text." + k: v for k, v in model.bert.hf().items()})
    tensors.update(model.fusion_tensors())
    tensors["fusion.head.temperature"] = torch.tensor(temps, dtype=torch.float32)
    save_safetensors(outdir / "model.safetensors", tensors, {"format": "pt", "source": "train/train_default.py"})
    temps16 = [float(np.float16(t)) for t in temps]
    vision_cfg = {"model_type": "vit", "hidden_size": VIT["hidden"], "num_hidden_layers": VIT["layers"],
                  "num_attention_heads": VIT["heads"], "intermediate_size": VIT["intermediate"],
                  "hidden_act": "gelu", "layer_norm_eps": EPS, "image_size": IMAGE, "patch_size": PATCH,
                  "num_channels": 3, "qkv_bias": True}
    text_cfg = {"model_type": "bert", "vocab_size": meta["vocab_size"], "hidden_size": BERT["hidden"],
                "num_hidden_layers": BERT["layers"], "num_attention_heads": BERT["heads"],
                "intermediate_size": BERT["intermediate"], "hidden_act": "gelu",
                "max_position_embeddings": BERT["positions"], "type_vocab_size": 2, "layer_norm_eps": EPS}
    cfg = {"format": "radfuse-model-1", "name": "radfuse-default-cxr", "version": "0.1.0",
           "vision": vision_cfg, "text": text_cfg,
           "fusion": {"hidden_size": FUSION["hidden"], "num_hidden_layers": FUSION["layers"],
                      "num_attention_heads": FUSION["heads"], "intermediate_size": FUSION["intermediate"],
                      "hidden_act": "gelu", "layer_norm_eps": FEPS, "attention": "joint",
                      "image_pool_grid": FUSION["pool"], "max_text_tokens": FUSION["max_text_tokens"],
                      "max_images": 1, "max_prior_images": 0, "image_modalities": ["CR", "DX"]}}
    write_atomic(outdir / "config.json", json.dumps(cfg, indent=2) + "\n")
    labels = [{"code": c, "display": d, "threshold": round(th, 4)} for (c, d), th in zip(TARGETS, ths)]
    write_atomic(outdir / "labels.json", json.dumps(labels, indent=2) + "\n")
    pre = {"do_resize": True, "size": {"height": IMAGE, "width": IMAGE}, "resample": RESAMPLE,
           "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
           "image_mean": [MEAN] * 3, "image_std": [STD] * 3}
    write_atomic(outdir / "preprocessor_config.json", json.dumps(pre, indent=2) + "\n")
    write_atomic(outdir / "vocab.txt", (shared / "fixtures/tokenizer/vocab.txt").read_text(encoding="utf-8"))
    # the parity rows: validation rows with every input kind (note + labs, note only, neither)
    kinds = {"note+labs": [], "note": [], "image only": [], "labs": []}
    for i in (i for i in va if meta["rows"][i]["view"] != "L"):  # radfuse read never reads a lateral
        has_n, has_l = meta["notes"][i] is not None, bool(meta["labs"][i])
        key = "note+labs" if has_n and has_l else "note" if has_n else "labs" if has_l else "image only"
        kinds[key].append(i)
    # a note longer than one text window first where there is one (rf_text_encode's windows)
    W = BERT["positions"] - 2
    for k in ("note+labs", "note"):
        kinds[k].sort(key=lambda i: len(meta["notes"][i]) <= W)
    rows = [i for k in kinds for i in kinds[k][:2]][:a.parity_rows]
    pos = {i: j for j, i in enumerate(va)}
    parity = {"model_sha256_files": "models/default", "tolerance": "see tests/test_default_model.c",
              "codes": [c for c, _ in TARGETS], "temperatures": temps16,
              "rows": [{"row": i, "filename": meta["rows"][i]["filename"], "split": "val",
                        "inputs": [k for k in kinds if i in kinds[k]][0],
                        "logits": [float(x) for x in Lv[pos[i]]],
                        "probabilities": [float(1 / (1 + math.exp(-Lv[pos[i], k] / temps16[k])))
                                          for k in range(len(TARGETS))]} for i in rows]}
    write_atomic(Path(a.parity), json.dumps(parity, indent=1) + "\n")
    summ = {"val": val, "temperatures": temps, "thresholds": ths,
            "val_rows": len(va), "split_source": meta["split_source"]}
    # calibration on validation: ECE (10 bins) per target after temperature scaling
    for k, (code, _) in enumerate(TARGETS):
        y = Yv[:, k]
        ok = ~np.isnan(y)
        p = 1 / (1 + np.exp(-Lv[ok, k] / temps[k]))
        bins = np.minimum((p * 10).astype(int), 9)
        ece = sum(abs(p[bins == b].mean() - y[ok][bins == b].mean()) * (bins == b).sum()
                  for b in range(10) if (bins == b).any()) / max(ok.sum(), 1)
        val[code]["ece"] = float(ece)
    write_atomic(run / "export_summary.json", json.dumps(summ, indent=1) + "\n")
    size = (outdir / "model.safetensors").stat().st_size
    print(f"wrote {outdir} ({size / 1e6:.1f} MB weights), {a.parity} ({len(rows)} rows)")
    for code in val:
        v = val[code]
        print(f"  {code:24s} n {v['n']:3d} pos {v['positives']:3d}  " +
              " ".join(f"{m} {v[m]:.3f}" for m in ("fused", "image", "text", "labs")) + f"  ece {v['ece']:.3f}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("prepare")
    q.add_argument("--shared", default=str(ROOT.parent / "shared"))
    q.add_argument("--radfuse", default=str(ROOT / "build/radfuse"))
    q.add_argument("--cache", default=str(ROOT / "train/cache"))
    q = sub.add_parser("fit")
    q.add_argument("--cache", default=str(ROOT / "train/cache"))
    q.add_argument("--out", default=str(ROOT / "train/run"))
    q.add_argument("--device", default="cpu")
    q.add_argument("--threads", type=int, default=0)
    q.add_argument("--seed", type=int, default=20261123)
    q.add_argument("--mlm-steps", type=int, default=3000)
    q.add_argument("--epochs", type=int, default=30)
    q.add_argument("--patience", type=int, default=8)
    q.add_argument("--max-train-rows", type=int, default=0, help="reduced runs: the first N training rows")
    q.add_argument("--batch", type=int, default=16)
    q.add_argument("--lr", type=float, default=2e-4)
    q.add_argument("--mlm-lr", type=float, default=5e-4)
    q.add_argument("--mlm-init", default="", help="a pre-trained text encoder (RUN/mlm_bert.pt of a fit)")
    q.add_argument("--mim-steps", type=int, default=0, help="masked-image pre-training steps of the vision encoder")
    q.add_argument("--mim-init", default="", help="a pre-trained vision encoder (RUN/mim_vit.pt of a fit)")
    q.add_argument("--text-lr-mult", type=float, default=1.0)
    q.add_argument("--text-freeze", type=int, default=0, help="epochs with the text encoder frozen")
    q.add_argument("--aux", type=float, default=1.0, help="weight of the image-, note- and labs-only losses")
    q.add_argument("--drop", type=float, nargs=3, default=[0.2, 0.4, 0.3], help="modality dropout: image note labs")
    q.add_argument("--pos-weight-max", type=float, default=1.0)
    q.add_argument("--select", choices=("auroc", "loss"), default="auroc")
    q.add_argument("--time-limit", type=float, default=0, help="seconds of fusion training, then stop")
    q.add_argument("--laterals", action="store_true", help="also fit on lateral views")
    q.add_argument("--guide", type=float, default=1.0,
                   help="weight of the Grad-CAM guidance loss on training rows with lung boxes (0: off)")
    q.add_argument("--guide-batch", type=int, default=8, help="rows with lung boxes per step")
    q.add_argument("--guide-detach-text", action="store_true",
                   help="the guidance loss does not train the text encoder")
    q = sub.add_parser("export")
    q.add_argument("--cache", default=str(ROOT / "train/cache"))
    q.add_argument("--run", default=str(ROOT / "train/run"))
    q.add_argument("--model", default=str(ROOT / "models/default"))
    q.add_argument("--shared", default=str(ROOT.parent / "shared"))
    q.add_argument("--parity", default=str(ROOT / "tests/data/default_model_parity.json"))
    q.add_argument("--parity-rows", type=int, default=8)
    q.add_argument("--calibration", choices=("platt", "temperature"), default="platt",
                   help="platt: a shift per target folded into the head's bias, then the temperature")
    q.add_argument("--threads", type=int, default=0)
    a = p.parse_args()
    {"prepare": cmd_prepare, "fit": cmd_fit, "export": cmd_export}[a.cmd](a)


if __name__ == "__main__":
    main()
