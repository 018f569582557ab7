#!/bin/sh
# The fusion settings of the default model, chosen on the validation split (never the test
# split): one masked-language pre-training, then each setting's fusion training from it in
# parallel (2 threads each on a GPU machine, 1 each on the CPU). The best by validation macro
# AUROC of the fused input over the findings, among the runs whose chosen epoch's Grad-CAM lies
# on the lungs of the held-out training rows more than a uniform map (fit's best_score says so),
# gets its state copied to $OUT (with every setting's log and summary), for
# `train_default.py export --run`. docs/training.md says what it chose.
#   OUT=/tmp/sweep sh train/sweep.sh [cuda|cpu] [FIT_SECONDS]
set -e
DEV=${1:-cuda}
LIMIT=${2:-200}
OUT=${OUT:-/tmp/sweep}
W=/tmp/radfuse-sweep
PY=${PYTHON:-python3}
T=train/train_default.py
rm -rf "$W" && mkdir -p "$W" "$OUT"
export PYTHONUNBUFFERED=1
$PY $T fit --device "$DEV" --threads 2 --out "$W/mlm" --epochs 0 > "$W/mlm.out" 2>&1 || { cat "$W/mlm.out"; exit 1; }
tail -2 "$W/mlm.out"
run() {
    name=$1; shift
    $PY $T fit --device "$DEV" --threads "${THREADS:-2}" --out "$W/$name" --mlm-init "$W/mlm/mlm_bert.pt" \
        --time-limit "$LIMIT" "$@" > "$W/$name.out" 2>&1 || echo "$name failed" >> "$W/$name.out"
}
if [ "$DEV" = cpu ]; then
    # the 2-core machine: the Grad-CAM guidance weights only, one thread each
    THREADS=1
    run guide1 --guide 1 &                   # the defaults of fit
    run guide3 --guide 3 &
else
    run text1 --guide 0 &                    # the settings of the first CUDA sweep (no guidance)
    run guide1 --guide 1 &
    run guide3 --guide 3 &
    run base --text-lr-mult 0.3 --guide 0 &
    run aux05 --text-lr-mult 0.3 --aux 0.5 --guide 0 &
    run noaux --text-lr-mult 0.3 --aux 0 --guide 0 &
fi
wait
$PY - "$W" "$OUT" <<'PY'
import json, shutil, sys, tarfile
from pathlib import Path
w, out = Path(sys.argv[1]), Path(sys.argv[2])
res = []
for d in sorted(w.iterdir()):
    s = d / "summary.json"
    if d.is_dir() and s.exists():
        j = json.loads(s.read_text())
        m = j["best_val_finding_macro"]
        res.append((j["best_score"], d.name, j["best_epoch"], j["epochs_run"], m))
res.sort(reverse=True)
for sc, n, be, er, m in res:
    print(f"{n:8s} best epoch {be:2d}/{er:2d}  fused {m['fused']:.3f} image {m['image']:.3f} "
          f"text {m['text']:.3f} labs {m['labs']:.3f}" + ("" if sc > -500 else "  (Grad-CAM not on the lungs)"))
for rank, (_, n, *_r) in enumerate(res[:2]):
    for part in ("vit", "bert", "fusion"):
        shutil.copy(w / n / f"state_{part}.pt", out / f"{rank}_{n}_state_{part}.pt")
with tarfile.open(out / "logs.tar.gz", "w:gz") as t:
    for f in sorted(w.rglob("*")):
        if f.suffix in (".log", ".json", ".out"):
            t.add(f, arcname=str(f.relative_to(w)))
PY
