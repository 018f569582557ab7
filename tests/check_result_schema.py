#!/usr/bin/python3
"""Validates result.json files against docs/result.schema.json (python3-jsonschema).

usage: check_result_schema.py SCHEMA RESULT.json...

Exit 0 when the schema is itself a valid draft 2020-12 schema, every file
validates, and a few broken copies of the first file are rejected (so a
schema that accepts anything fails here too). One line per problem on stderr.
"""
import copy
import json
import sys

import jsonschema


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    with open(sys.argv[1], encoding="utf-8") as f:
        schema = json.load(f)
    cls = jsonschema.validators.validator_for(schema)
    if cls is not jsonschema.Draft202012Validator:
        print(f"{sys.argv[1]}: not a draft 2020-12 schema ({cls.__name__})", file=sys.stderr)
        return 1
    cls.check_schema(schema)
    validator = cls(schema)
    bad = 0
    docs = []
    for path in sys.argv[2:]:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        docs.append(doc)
        for e in sorted(validator.iter_errors(doc), key=lambda e: list(e.path)):
            where = "/".join(str(p) for p in e.path) or "(root)"
            print(f"{path}: {where}: {e.message}", file=sys.stderr)
            bad += 1
    # broken copies that must fail
    broken = []
    d = copy.deepcopy(docs[0]); del d["findings"]; broken.append(("no findings", d))
    d = copy.deepcopy(docs[0]); d["schema_version"] = "2.0"; broken.append(("schema 2.0", d))
    if docs[0]["findings"]:
        d = copy.deepcopy(docs[0]); d["findings"][0]["probability"] = 1.5; broken.append(("probability 1.5", d))
        d = copy.deepcopy(docs[0]); d["findings"][0]["input_weights"]["sound"] = 0.1
        broken.append(("unknown modality", d))
    d = copy.deepcopy(docs[0]); d["include_phi"] = False
    d["study"]["patient"] = {"id": "X"}; broken.append(("patient without include_phi", d))
    if docs[0]["images"]:
        d = copy.deepcopy(docs[0]); d["include_phi"] = False
        d["images"][0]["file"] = "/a/b/c.dcm"; broken.append(("full path without include_phi", d))
    for what, d in broken:
        if validator.is_valid(d):
            print(f"{sys.argv[2]}: a copy with {what} validates, but must not", file=sys.stderr)
            bad += 1
    print(f"check_result_schema: {len(docs)} files, {len(broken)} broken copies, {bad} problems")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
