#!/usr/bin/python3
"""Expected values of `radfuse dataset study` for rows of the COVID-19 image
data collection, from Python's csv module and Pillow's JPEG decoder (an
implementation other than radfuse's CSV reader and libjpeg-turbo call).

usage: make_dataset_expected.py DATA_DIR ROW... -> one JSON object per line:
row, patientid, filename, note (the clinical_notes text), labs ({column: value as
written}), sex, age, view, offset, rows, cols, pixels_sha256 (SHA-256 of the
decoded 8-bit values, row-major).
"""
import csv
import hashlib
import json
import sys

from PIL import Image

LABS = ["temperature", "pO2_saturation", "leukocyte_count", "neutrophil_count", "lymphocyte_count"]


def main():
    data, rows = sys.argv[1], [int(a) for a in sys.argv[2:]]
    with open(f"{data}/metadata.csv", newline="", encoding="utf-8") as f:
        table = list(csv.DictReader(f))
    for i in rows:
        r = table[i]
        with Image.open(f"{data}/{r['folder']}/{r['filename']}") as im:
            assert im.mode == "L", im.mode
            pix = im.tobytes()
            w, h = im.size
        print(json.dumps({
            "row": i, "patientid": r["patientid"], "filename": r["filename"], "note": r["clinical_notes"].strip(),
            "labs": {k: r[k].strip() for k in LABS if r[k].strip()},
            "sex": r["sex"], "age": r["age"], "view": r["view"], "offset": r["offset"],
            "rows": h, "cols": w, "pixels_sha256": hashlib.sha256(pix).hexdigest(),
        }))


if __name__ == "__main__":
    main()
