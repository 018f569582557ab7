#!/usr/bin/env python3
"""Expected metrics for tests/test_eval.c, made with sklearn and numpy (not radfuse).

For fixed random inputs (continuous scores, heavy ties, float32 probabilities,
all-tied, perfect and inverted separation, tiny n, one class only) it writes
the scores, labels and:
  auroc   sklearn.metrics.roc_auc_score (null where sklearn refuses: one class)
  auprc   sklearn.metrics.average_precision_score (null without positives)
  ece     10 equal-width bins as sklearn.calibration.calibration_curve bins
          them (np.linspace edges, np.searchsorted on the inner edges), with
          the per-bin counts, mean probability and fraction positive; the
          non-empty bins' values are checked against calibration_curve here
  confusion at a threshold: sklearn.metrics.confusion_matrix of p >= t
  bootstrap: resamples of patients (or rows) drawn with xoshiro256** seeded
          by splitmix64 (the generator radfuse/eval.h specifies, written out
          again here), each scored by roc_auc_score, resamples with one
          class skipped, then numpy.percentile at 2.5 and 97.5; and of the
          difference of two scores' AUROCs over the same resamples

Run: /usr/bin/python3 tests/data/make_eval_expected.py
Writes tests/data/eval_expected.json. Needs python3-sklearn (Debian).
"""
import json
from pathlib import Path

import numpy as np
from sklearn.calibration import calibration_curve
from sklearn.metrics import average_precision_score, confusion_matrix, roc_auc_score

M64 = (1 << 64) - 1


def splitmix64(state):
    state = (state + 0x9E3779B97F4A7C15) & M64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return state, z ^ (z >> 31)


class Xoshiro:
    def __init__(self, seed):
        self.s = []
        x = seed & M64
        for _ in range(4):
            x, v = splitmix64(x)
            self.s.append(v)

    @staticmethod
    def rotl(x, k):
        return ((x << k) | (x >> (64 - k))) & M64

    def next(self):
        s = self.s
        out = (self.rotl((s[1] * 5) & M64, 7) * 9) & M64
        t = (s[1] << 17) & M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = self.rotl(s[3], 45)
        return out

    def below(self, n):
        return (self.next() * n) >> 64


def auroc(s, y):
    if len(set(y)) < 2:
        return None
    return float(roc_auc_score(y, s))


def auprc(s, y):
    if sum(y) == 0:
        return None
    return float(average_precision_score(y, s))


def ece(p, y):
    p = np.asarray(p, dtype=np.float64)
    y = np.asarray(y)
    edges = np.linspace(0.0, 1.0, 11)
    ids = np.searchsorted(edges[1:-1], p)
    count = np.bincount(ids, minlength=10)
    sum_p = np.bincount(ids, weights=p, minlength=10)
    sum_y = np.bincount(ids, weights=y.astype(np.float64), minlength=10)
    nz = count > 0
    conf = np.where(nz, sum_p / np.maximum(count, 1), 0.0)
    acc = np.where(nz, sum_y / np.maximum(count, 1), 0.0)
    if len(set(y.tolist())) == 2:
        prob_true, prob_pred = calibration_curve(y, p, n_bins=10, strategy="uniform")
        assert np.allclose(prob_true, acc[nz], rtol=0, atol=1e-12)
        assert np.allclose(prob_pred, conf[nz], rtol=0, atol=1e-12)
    value = float(np.sum(count / len(p) * np.abs(acc - conf)))
    return value, [int(c) for c in count], [float(c) for c in conf], [float(a) for a in acc]


def confusion(p, y, t):
    pred = (np.asarray(p) >= t).astype(int)
    tn, fp, fn, tp = confusion_matrix(y, pred, labels=[0, 1]).ravel()
    return {"threshold": t, "tp": int(tp), "fp": int(fp), "tn": int(tn), "fn": int(fn)}


def bootstrap(s, y, groups, resamples, seed, other=None):
    s = np.asarray(s)
    y = np.asarray(y)
    o = None if other is None else np.asarray(other)
    if groups is None:
        members = [[i] for i in range(len(s))]
    else:
        order = []
        by = {}
        for i, g in enumerate(groups):
            if g not in by:
                by[g] = []
                order.append(g)
            by[g].append(i)
        members = [by[g] for g in order]
    rng = Xoshiro(seed)
    G = len(members)
    aucs = []
    for _ in range(resamples):
        idx = []
        for _ in range(G):
            idx.extend(members[rng.below(G)])
        yy = y[idx]
        if len(set(yy.tolist())) < 2:
            continue
        aucs.append(roc_auc_score(yy, s[idx]) - (0.0 if o is None else roc_auc_score(yy, o[idx])))
    if not aucs:
        return {"used": 0, "lo": None, "hi": None}
    return {"used": len(aucs), "lo": float(np.percentile(aucs, 2.5)), "hi": float(np.percentile(aucs, 97.5))}


def main():
    rng = np.random.default_rng(20261123)
    cases = []

    def add(name, s, y, threshold=0.5, groups=None, resamples=0, seed=0, other=None):
        s = [float(v) for v in s]
        y = [int(v) for v in y]
        c = {"name": name, "score": s, "label": y, "auroc": auroc(s, y), "auprc": auprc(s, y)}
        if all(0.0 <= v <= 1.0 for v in s):
            e, count, conf, acc = ece(s, y)
            c["ece"] = e
            c["bins"] = {"count": count, "confidence": conf, "accuracy": acc}
            c["confusion"] = confusion(s, y, threshold)
        if resamples:
            c["bootstrap"] = {"resamples": resamples, "seed": seed, "groups": groups}
            c["bootstrap"].update(bootstrap(s, y, groups, resamples, seed))
        if other is not None:
            other = [float(v) for v in other]
            c["bootstrap_diff"] = {"other": other}
            c["bootstrap_diff"].update(bootstrap(s, y, groups, resamples, seed, other))
        cases.append(c)

    y = rng.integers(0, 2, 50)
    add("continuous", rng.random(50) * 0.6 + 0.4 * y, y, resamples=300, seed=1,
        other=np.round(rng.random(50) * 0.8 + 0.2 * y, 1))
    y = rng.integers(0, 2, 40)
    add("ties", np.round(rng.random(40) * 4 + y) / 5.0, y, threshold=0.4, resamples=200, seed=2)
    y = (rng.random(200) < 0.05).astype(int)
    y[0] = 1
    p = np.float32(1 / (1 + np.exp(-(rng.normal(size=200) + 1.5 * y))))
    add("imbalanced_float32", p.astype(np.float64), y, threshold=float(np.float32(0.35)))
    y = rng.integers(0, 2, 30)
    y[:2] = [0, 1]
    add("all_tied", np.full(30, 0.3), y, threshold=0.3)
    add("perfect", [0.1, 0.2, 0.3, 0.7, 0.8, 0.9], [0, 0, 0, 1, 1, 1])
    add("inverted", [0.1, 0.2, 0.3, 0.7, 0.8, 0.9], [1, 1, 1, 0, 0, 0])
    add("tiny_two", [0.4, 0.6], [0, 1])
    add("tiny_tie", [0.5, 0.5, 0.2], [1, 0, 0], resamples=50, seed=3)
    add("one_class_negative", [0.1, 0.5, 0.9], [0, 0, 0])
    add("one_class_positive", [0.1, 0.5, 0.9], [1, 1, 1])
    # probabilities on and next to the bin edges (np.linspace's k * 0.1)
    edges = np.linspace(0, 1, 11)
    p = np.concatenate([edges, np.nextafter(edges[1:-1], 2), [0.05, 0.95, 0.3]])
    add("edges", p, (np.arange(len(p)) % 3 == 0).astype(int), threshold=0.3)
    # patients with several rows each
    groups = rng.integers(0, 20, 60)
    y = (rng.random(20) < 0.4).astype(int)[groups]
    y[0], y[1] = 0, 1
    groups[1] = 99  # a group of its own so both classes exist
    add("patients", rng.random(60) * 0.5 + 0.3 * y, y, groups=[int(g) for g in groups], resamples=400, seed=42,
        other=rng.random(60) * 0.5 + 0.1 * y)
    # few positives: many resamples have one class and are skipped
    add("few_positives", [0.2, 0.9, 0.3, 0.1, 0.4], [0, 1, 0, 0, 0], resamples=100, seed=5)

    out = Path(__file__).resolve().parent / "eval_expected.json"
    out.write_text(json.dumps({"generator": "tests/data/make_eval_expected.py", "cases": cases}, indent=1) + "\n")
    print(f"wrote {out}: {len(cases)} cases")


if __name__ == "__main__":
    main()
