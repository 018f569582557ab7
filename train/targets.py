"""The default model's targets and how a row of the COVID-19 image data collection's
metadata.csv gives them: the table of datasets/dataset_covid.c (which `radfuse eval` and
`radfuse dataset ls` read the targets with), kept here for the trainer. Standard library only,
so that tests/test_train_targets.sh can check it against radfuse without PyTorch."""
import re

TARGETS = [
    ("covid19", "COVID-19"),
    ("viral", "Viral pneumonia"),
    ("bacterial", "Bacterial pneumonia"),
    ("fungal", "Fungal pneumonia"),
    ("pneumonia", "Pneumonia"),
    ("ards", "ARDS"),
    ("no_finding", "No finding"),
    ("survival", "Survival"),
    ("intubated", "Intubation"),
    ("went_icu", "ICU admission"),
    ("needed_supplemental_O2", "Supplemental oxygen"),
]
FINDINGS = 7  # the first seven are findings, the rest outcomes
# What each finding term says of the seven finding targets (covid19 viral bacterial fungal
# pneumonia ards no_finding): 1, 0 or None (says nothing). The table of datasets/dataset_covid.c,
# which `radfuse eval` reads the targets with (docs/datasets.md gives the reasons); a finding of
# several terms (',' or '/') is positive where any term is, else negative where any term is.
TERMS = {
    "COVID-19": (1, 1, 0, 0, 1, 0, 0), "SARS": (0, 1, 0, 0, 1, 0, 0), "MERS-CoV": (0, 1, 0, 0, 1, 0, 0),
    "MERS": (0, 1, 0, 0, 1, 0, 0), "Influenza": (0, 1, 0, 0, 1, 0, 0), "Varicella": (0, 1, 0, 0, 1, 0, 0),
    "Herpes": (0, 1, 0, 0, 1, 0, 0), "Viral": (None, 1, 0, 0, 1, 0, 0), "Bacterial": (0, 0, 1, 0, 1, 0, 0),
    "Klebsiella": (0, 0, 1, 0, 1, 0, 0), "Streptococcus": (0, 0, 1, 0, 1, 0, 0),
    "Staphylococcus": (0, 0, 1, 0, 1, 0, 0), "E.Coli": (0, 0, 1, 0, 1, 0, 0), "Legionella": (0, 0, 1, 0, 1, 0, 0),
    "Mycoplasma": (0, 0, 1, 0, 1, 0, 0), "Mycoplasma Bacterial Pneumonia": (0, 0, 1, 0, 1, 0, 0),
    "Chlamydophila": (0, 0, 1, 0, 1, 0, 0), "Nocardia": (0, 0, 1, 0, 1, 0, 0), "Fungal": (0, 0, 0, 1, 1, 0, 0),
    "Pneumocystis": (0, 0, 0, 1, 1, 0, 0), "Aspergillosis": (0, 0, 0, 1, 1, 0, 0),
    "Pneumonia": (None, None, None, None, 1, 0, 0), "ARDS": (None, None, None, None, None, 1, 0),
    "Lipoid": (0, 0, 0, 0, 0, 0, 0), "No Finding": (0, 0, 0, 0, 0, 0, 1),
}


def finding_targets(finding):
    """The seven finding targets of a 'finding' value: 1, 0 or None (unknown, masked out)."""
    terms = [t.strip(" \t") for t in re.split(r"[,/]", finding) if t.strip(" \t")]
    if not terms or any(t not in TERMS for t in terms):
        return dict.fromkeys((c for c, _ in TARGETS[:FINDINGS]), None)
    out = {}
    for j, (c, _) in enumerate(TARGETS[:FINDINGS]):
        v = [TERMS[t][j] for t in terms]
        out[c] = 1 if 1 in v else 0 if 0 in v else None
    return out


def row_targets(r):
    t = finding_targets(r["finding"])
    out = [t[c] for c, _ in TARGETS[:FINDINGS]]
    for c, _ in TARGETS[FINDINGS:]:
        v = r.get(c, "").strip()
        out.append(1 if v == "Y" else 0 if v == "N" else None)
    return out
