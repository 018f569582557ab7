#!/usr/bin/env python3
"""Fills the evaluation section of models/default/MODEL_CARD.md (between its BEGIN and END
radfuse eval markers) from the JSON that `radfuse eval` writes, so that every figure in the card
is what the command printed, not copied by hand. Standard library only.

    radfuse eval ../shared/data/covid-chestxray --model models/default --subset val --json > plain.json
    radfuse eval ... --mask-findings > masked.json
    radfuse eval ... --saliency gradcam --boxes .../lung_bounding_boxes.json > saliency.json
    python3 train/model_card.py --plain plain.json --masked masked.json --saliency saliency.json \
        --describe "what this model is" [--card models/default/MODEL_CARD.md]

It also states, per target of issue 7, whether the figures meet it (fused above image-only and
text-only for every finding, ECE <= 0.10, Grad-CAM mass inside the lung boxes above uniform), so
the card cannot claim a target the numbers do not show."""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEGIN = "<!-- BEGIN radfuse eval: this section is filled by train/model_card.py from `radfuse eval` -->"
END = "<!-- END radfuse eval -->"
DATA = "../shared/data/covid-chestxray"
COMMANDS = [
    f"radfuse eval {DATA} --model models/default --subset val --json",
    f"radfuse eval {DATA} --model models/default --subset val --json --mask-findings",
    f"radfuse eval {DATA} --model models/default --subset val --json --saliency gradcam "
    f"--boxes {DATA}/annotations/lung_bounding_boxes.json",
]
ECE_TARGET = 0.10


def f3(x):
    return "–" if x is None else f"{x:.3f}"


def f2(x):
    return "–" if x is None else f"{x:.2f}"


def ci(v, c):
    return "–" if v is None else f"{v:.3f} ({c[0]:.2f}–{c[1]:.2f})"


def signed(d):
    return f"{d['delta']:+.3f} [{d['ci'][0]:+.2f}, {d['ci'][1]:+.2f}]"


def mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def section(plain, masked, sal, describe):
    T = plain["targets"]
    names = list(T)
    finds = [k for k in names if T[k]["kind"] == "finding"]
    ds, model, bs = plain["dataset"], plain["model"], plain["bootstrap"]
    out = [BEGIN, ""]
    out.append(f"Model: `models/default/model.safetensors`, sha256 `{model['sha256'][:16]}…` ({describe}); "
               f"radfuse built from the same tree; {model['backend']} backend.")
    out.append("")
    out.append(f"**Validation figures only.** The rows are the validation patients of the fixed split "
               f"(`{ds['split']}`: {ds['patients']} patients, {ds['rows_used']} rows, {ds['with_note']} with a "
               f"note, {ds['with_labs']} with labs). The same rows chose the epoch and the training settings and "
               f"fitted the temperatures and thresholds, so every figure here is optimistic. The test patients "
               f"were not read for this card or for any choice of model, size or threshold.")
    out += ["", "Commands (from the repository root, `../shared` beside it), then "
            "`train/model_card.py` to write this section from their output:", "", "```"] + COMMANDS + ["```", ""]
    kept = [T[k]["bootstrap_used"] for k in names if T[k].get("bootstrap_used", bs["resamples"]) < bs["resamples"]]
    out.append(f"Intervals: {int(bs['level'] * 100)}% percentile bootstrap, {bs['resamples']} resamples of "
               f"{bs['unit']}s, seed {bs['seed']}" +
               (f"; resamples with one class are skipped (some targets keep {min(kept)}-{max(kept)})" if kept else "") +
               ". Targets with few positives have wide intervals: read them before the point values.")
    out += ["", "### Per target (fused input)", "",
            "| target | kind | n | pos | AUROC (95% CI) | AUPRC | ECE | threshold | sensitivity | specificity |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for k in names:
        t = T[k]
        out.append(f"| {k} | {t['kind']} | {t['n']} | {t['positives']} | {ci(t['auroc'], t['auroc_ci'])} | "
                   f"{f3(t['auprc'])} | {f3(t['ece'])} | {f2(t['threshold'])} | {f2(t['sensitivity'])} | "
                   f"{f2(t['specificity'])} |")
    out += ["", "### Ablation: AUROC by input (95% CI)", "",
            "| target | fused | image | text | labs | fused − image | fused − text |",
            "|---|---|---|---|---|---|---|"]
    for k in names:
        t = T[k]
        a, c = t["ablation"], t["ablation_ci"]
        out.append(f"| {k} | " + " | ".join(ci(a[m], c[m]) for m in ("fused", "image", "text", "labs")) +
                   f" | {signed(t['fused_minus']['image'])} | {signed(t['fused_minus']['text'])} |")
    for label, sel in (("all targets", names), ("findings", finds)):
        out.append(f"| *macro, {label}* | " +
                   " | ".join(f3(mean([T[k]['ablation'][m] for k in sel])) for m in ("fused", "image", "text", "labs"))
                   + " | | |")
    out += ["", "Fused − image and fused − text: the AUROC difference with a paired interval (the same patient "
            "resamples score both); an interval above 0 says fused beats that input on these rows."]
    M = masked["targets"]
    out += ["", "### Finding names masked out of the notes (`--mask-findings`)", "",
            f"{masked['mask_findings']['replacements']} terms replaced by `[MASK]` in the validation notes. "
            "AUROC (95% CI):", "",
            "| target | text | text, masked | fused | fused, masked |", "|---|---|---|---|---|"]
    for k in names:
        if k in M:
            a, c = M[k]["ablation"], M[k]["ablation_ci"]
            out.append(f"| {k} | " + " | ".join(ci(a[m], c[m]) for m in ("text", "text_masked", "fused", "fused_masked"))
                       + " |")
    S = sal["saliency"]
    out += ["", f"### Saliency against the lung boxes (`--saliency {S['method']}`)", "",
            f"{S['method']} maps as `radfuse read` makes them, on the {S['rows_mapped']} validation rows with lung "
            "boxes (`annotations/lung_bounding_boxes.json`), for each finding the row is positive for. Mass "
            "inside: the share of the map inside the union of the two lung boxes; pointing: the fraction of maps "
            "whose peak lies in a box; uniform: what a map without preference scores on both (the boxes' area "
            "fraction). 95% CI by patient.", "",
            "| target | rows | patients | mass inside (95% CI) | uniform | mass − uniform (95% CI) | pointing (95% CI) |",
            "|---|---|---|---|---|---|---|"]
    rows = [(k, S["targets"][k]) for k in S["targets"]] + [("*overall (target, row pairs)*", S["overall"])]
    for k, s in rows:
        if not s.get("n"):
            out.append(f"| {k} | 0 | 0 | – | – | – | – |")
            continue
        out.append(f"| {k} | {s['n']} | {s['patients']} | {ci(s['mass_inside'], s['mass_inside_ci'])} | "
                   f"{f3(s['uniform_mass'])} | {signed(s['mass_minus_uniform'])} | "
                   f"{ci(s['pointing_hit_rate'], s['pointing_hit_rate_ci'])} |")
    # the targets of issue 7, stated from the figures
    above_img = [k for k in finds if T[k]["ablation"]["fused"] > T[k]["ablation"]["image"]]
    above_txt = [k for k in finds if T[k]["ablation"]["fused"] > T[k]["ablation"]["text"]]
    tied_txt = [k for k in finds if T[k]["ablation"]["fused"] == T[k]["ablation"]["text"]]
    ece_ok = [k for k in names if T[k]["ece"] is not None and T[k]["ece"] <= ECE_TARGET]
    ece_miss = ["%s %.3f" % (k, T[k]["ece"]) for k in names if k not in ece_ok and T[k]["ece"] is not None]
    o = S["overall"]
    out += ["", "### Against the targets (computed from the tables above)", "",
            f"- Fused AUROC above image-only: {len(above_img)} of {len(finds)} findings"
            + (f" (not: {', '.join(k for k in finds if k not in above_img)})" if len(above_img) < len(finds) else "")
            + ".",
            f"- Fused AUROC above text-only: {len(above_txt)} of {len(finds)} findings"
            + (f"; equal for {', '.join(tied_txt)}" if tied_txt else "")
            + (f"; below for {', '.join(k for k in finds if k not in above_txt and k not in tied_txt)}"
               if len(above_txt) + len(tied_txt) < len(finds) else "") + ".",
            f"- ECE <= {ECE_TARGET:.2f} (after the fitted temperatures): {len(ece_ok)} of {len(names)} targets"
            + (f" (not: {', '.join(ece_miss)})" if ece_miss else "") + ".",
            f"- {S['method']} mass inside the lung boxes, all (finding, row) pairs: {o['mass_inside']:.3f} against "
            f"{o['uniform_mass']:.3f} for a uniform map ({signed(o['mass_minus_uniform'])}); pointing "
            f"{o['pointing_hit_rate']:.3f} against {o['uniform_pointing']:.3f}.", "", END]
    return "\n".join(out)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--plain", required=True)
    p.add_argument("--masked", required=True)
    p.add_argument("--saliency", required=True)
    p.add_argument("--describe", required=True, help="a few words on what this model is")
    p.add_argument("--card", default=str(ROOT / "models/default/MODEL_CARD.md"))
    a = p.parse_args()
    load = lambda f: json.loads(Path(f).read_text())
    plain, masked, sal = load(a.plain), load(a.masked), load(a.saliency)
    if not (plain["model"]["sha256"] == masked["model"]["sha256"] == sal["model"]["sha256"]):
        sys.exit("model_card: the three evaluations are of different models")
    card = Path(a.card)
    text = card.read_text(encoding="utf-8")
    i = text.find("<!-- BEGIN radfuse eval")
    j = text.find(END)
    if i < 0 or j < i:
        sys.exit(f"{card}: no BEGIN/END radfuse eval markers")
    new = text[:i] + section(plain, masked, sal, a.describe) + text[j + len(END):]
    tmp = card.with_name(card.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(new)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, card)


if __name__ == "__main__":
    main()
