"""ProntoQA curriculum data (docs/prontoqa_full_cpu.md, "decoy queries"): every query asks about an adjective
the problem never mentions, so no query word can stand in for the last rule and the steps' last hop can
only come from the chain's own property rule. Steps are kept; the answer becomes False.

    .venv/bin/python scripts/prontoqa_decoy_queries.py data/prontoqa_full_train.json \
        data/prontoqa_full_train_decoy.json --seed 7
"""

from __future__ import annotations

import argparse
import random
import re

from latentcot.data.io import load_records, save_records
from latentcot.data.prontoqa import ADJECTIVE_FAMILIES
from latentcot.data.records import Record

QUERY = re.compile(r"True or false: (\w+) is (?:not )?\w+\.\s*$")


def decoy(record: Record, rng: random.Random, where: str) -> Record:
    match = QUERY.search(record.question)
    if match is None:
        raise ValueError(f"{where}: question: no 'True or false: <name> is [not] <adjective>.' at its end")
    used = set(re.findall(r"[a-z]+", record.question[:match.start()].lower()))
    spare = [word for family in ADJECTIVE_FAMILIES if not used & set(family) for word in family]
    if not spare:
        raise ValueError(f"{where}: question: every adjective family is used; no decoy is left")
    adjective = rng.choice(spare)
    negation = "not " if rng.random() < 0.5 else ""
    question = f"{record.question[:match.start()]}True or false: {match.group(1)} is {negation}{adjective}."
    return Record(question, list(record.steps), "False", dict(record.extra))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source")
    parser.add_argument("out")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    records = [decoy(r, rng, f"{args.source}: record {i}") for i, r in enumerate(load_records(args.source))]
    save_records(records, args.out)
    print(f"wrote {len(records)} problems with decoy queries to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
