#!/usr/bin/python3
"""Compares the results of sharded `radfuse batch` runs with a single-process run.

    compare_results.py SINGLE MERGED [--shards N SHARD_DIR...] [--tolerance T]

SINGLE and MERGED are batch output directories (results.jsonl, errors.jsonl). Checks,
printing one line per failure and exiting 1 on any:
  - every results.jsonl line is a JSON object with study.study_instance_uid, each study
    at most once per directory;
  - MERGED holds exactly SINGLE's studies, each with the same findings (code, positive)
    and probabilities within T (default 1e-6; both runs use the same model on the same
    CPU, so the difference is the batching of the inference, if any);
  - MERGED's errors.jsonl names the same inputs as SINGLE's, each once;
  - with --shards: the shards are disjoint, their union is SINGLE's studies, and every
    study (and each bad file, by its path relative to the export) sits in the shard that
    the documented hash gives (docs/slurm.md).
"""
import collections
import hashlib
import json
import os
import sys


def load_jsonl(path, what):
    rows = []
    if not os.path.exists(path):
        return rows
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise SystemExit(f"{path}:{n}: not JSON ({e}): a half-written {what} line")
    return rows


def results(d, fails):
    by_uid = {}
    for r in load_jsonl(os.path.join(d, "results.jsonl"), "result"):
        uid = r.get("study", {}).get("study_instance_uid")
        if not uid:
            fails.append(f"{d}/results.jsonl: a line without study.study_instance_uid")
            continue
        if uid in by_uid:
            fails.append(f"{d}/results.jsonl: study {uid} twice")
        by_uid[uid] = r
    return by_uid


def error_keys(d):
    """The errors of d as (kind, what) pairs, counted: the file path relative to the
    export's root, or the study's UID."""
    keys = collections.Counter()
    for e in load_jsonl(os.path.join(d, "errors.jsonl"), "error"):
        what = e.get("path") or e.get("study_instance_uid") or json.dumps(e, sort_keys=True)
        keys[(e.get("kind", "?"), what)] += 1
    return keys


def shard_of(uid, n):
    # docs/slurm.md, "The shard hash": the first 8 bytes of SHA-256(StudyInstanceUID) as a
    # big-endian unsigned integer, modulo N
    return int.from_bytes(hashlib.sha256(uid.encode()).digest()[:8], "big") % n


def main(argv):
    tol = 1e-6
    shards = []
    nshards = 0
    args = argv[1:]
    if "--tolerance" in args:
        i = args.index("--tolerance")
        tol = float(args[i + 1])
        del args[i:i + 2]
    if "--shards" in args:
        i = args.index("--shards")
        nshards = int(args[i + 1])
        shards = args[i + 2:]
        del args[i:]
    if len(args) != 2:
        raise SystemExit(__doc__)
    single_dir, merged_dir = args
    fails = []
    single = results(single_dir, fails)
    merged = results(merged_dir, fails)
    if not single:
        fails.append(f"{single_dir}/results.jsonl: no results")
    for uid in sorted(set(single) - set(merged)):
        fails.append(f"merged: study {uid} missing")
    for uid in sorted(set(merged) - set(single)):
        fails.append(f"merged: study {uid} not in the single-process run")
    worst = 0.0
    for uid in sorted(set(single) & set(merged)):
        a = {f["code"]: f for f in single[uid].get("findings", [])}
        b = {f["code"]: f for f in merged[uid].get("findings", [])}
        if set(a) != set(b) or not a:
            fails.append(f"study {uid}: findings {sorted(a)} vs {sorted(b)}")
            continue
        for code in a:
            d = abs(a[code]["probability"] - b[code]["probability"])
            worst = max(worst, d)
            if d > tol:
                fails.append(f"study {uid} {code}: probability {a[code]['probability']} vs {b[code]['probability']}")
            if a[code]["positive"] != b[code]["positive"]:
                fails.append(f"study {uid} {code}: positive differs")
    es, em = error_keys(single_dir), error_keys(merged_dir)
    if es != em:
        fails.append(f"errors.jsonl: single-process run has {sorted(es.items())}, merged {sorted(em.items())}")
    for k, n in em.items():
        if n > 1:
            fails.append(f"merged errors.jsonl: {k} {n} times")
    if shards:
        if len(shards) != nshards:
            fails.append(f"--shards {nshards} but {len(shards)} directories")
        seen = {}
        for i, d in enumerate(shards):
            for uid in results(d, fails):
                if uid in seen:
                    fails.append(f"study {uid} in shard {seen[uid]} and shard {i}")
                seen[uid] = i
                if shard_of(uid, nshards) != i:
                    fails.append(f"study {uid} in shard {i}, the hash gives {shard_of(uid, nshards)}")
        if set(seen) != set(single):
            fails.append(f"the shards hold {len(seen)} studies, the single-process run {len(single)}")
        # each bad file reported by one shard: the one the hash of its relative path gives
        # (a failed study: the one of its UID)
        eseen = collections.Counter()
        for i, d in enumerate(shards):
            for (kind, what), n in error_keys(d).items():
                eseen[(kind, what)] += n
                if shard_of(what, nshards) != i:
                    fails.append(f"error {kind} {what} reported by shard {i}, the hash gives {shard_of(what, nshards)}")
        if eseen != es:
            fails.append(f"the shards report errors {sorted(eseen.items())}, the single-process run {sorted(es.items())}")
        counts = [sum(1 for v in seen.values() if v == i) for i in range(nshards)]
        print(f"compare_results: studies per shard {counts}")
    print(f"compare_results: {len(single)} studies, {sum(es.values())} errors, largest probability difference {worst:.3g}")
    for f in fails:
        print(f"compare_results: FAILED: {f}", file=sys.stderr)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
