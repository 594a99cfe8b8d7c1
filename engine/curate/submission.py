"""Contribution files (`engine submit`, engine.profiles.submission) and Lemonade `bench --submit` bodies: the
`benchmark` member is a Lemonade bench result, read like one."""

from __future__ import annotations

import json
from collections.abc import Iterator

from engine.curate.fields import Item
from engine.curate.lemonade_bench import read_lemonade
from engine.curate.records import IngestIssue
from facts.documents import JSONProblem, parse_json

SCHEMA = "lemonade-autotune/submission"  # = engine.profiles.submission.SCHEMA (curation imports nothing at run time)
READS = 1  # the newest schema_version this reader knows


def read_lemonade_or_submission(label: str, text: str) -> Iterator[Item]:
    """A Lemonade bench JSON file, a contribution file, or a bare `{"benchmark": ...}` body."""
    try:
        doc = parse_json(text)
    except JSONProblem:
        doc = None  # read_lemonade reports it
    if not (isinstance(doc, dict) and "benchmark" in doc and "hardware" not in doc):  # a bench result has hardware
        yield from read_lemonade(label, text)
        return
    if "schema" in doc and doc.get("schema") != SCHEMA:
        yield IngestIssue(where=f"{label}:1", message=f"unknown submission schema {doc.get('schema')!r} "
                                                      f"(expected {SCHEMA!r})")
        return
    version = doc.get("schema_version", READS)
    if not isinstance(version, int) or version > READS:
        yield IngestIssue(where=f"{label}:1", message=f"submission schema_version {version!r} is newer than this "
                                                      f"lemonade-autotune reads ({READS}); upgrade it")
        return
    if not isinstance(doc["benchmark"], dict):
        yield IngestIssue(where=f"{label}:1", message="'benchmark' must be a Lemonade bench result object")
        return
    yield from read_lemonade(label, json.dumps(doc["benchmark"]))
