"""`engine submit BENCH.json`: a Lemonade bench result + this machine's facts -> an anonymised contribution file
(a superset of Lemonade's `bench --submit` body) and how to contribute it."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from engine.commands._common import add_json_flag

HOW = ("to contribute it, open a pull request adding {out} under data/community-bench/submissions/ of the "
       "lemonade-autotune repository (docs/contributing-profiles.md); `engine curate` reads it as it is. It is also "
       "a Lemonade `bench --submit` body: its `benchmark` member is what `lemonade bench --submit-file` sends")


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "submit", help="turn a Lemonade bench result into an anonymised contribution file",
        description="Read a `lemonade bench --json` result, add this machine's hardware facts and archetype "
                    "(or those of --system-info), remove anything identifying (host and user names, paths, serial "
                    "numbers, UUIDs, addresses; fields outside Lemonade's bench schema), validate it and write a "
                    "schema-versioned contribution file that `engine curate` reads and Lemonade's --submit accepts.")
    p.add_argument("bench", metavar="BENCH.json", help="a `lemonade bench ... --json --output FILE` result")
    p.add_argument("--system-info", metavar="FILE", help="Lemonade system-info of the benchmarked machine (default: "
                                                         "detect this machine)")
    p.add_argument("--llama-devices", metavar="FILE", help="llama-server --list-devices output of that machine")
    p.add_argument("--out", metavar="FILE", help="where to write it (default: BENCH.submission.json here)")
    p.add_argument("--redact", action="append", default=[], metavar="WORD",
                   help="another word to remove wherever it appears (repeatable)")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.commands._common import print_json
    from engine.errors import UsageError
    from engine.inputs import hardware
    from engine.profiles.anonymise import machine_identifiers
    from engine.profiles.submission import build
    from facts.documents import JSONProblem, parse_json, read_document

    src = Path(args.bench)
    try:
        bench = parse_json(read_document(src, "Lemonade bench").text)
    except JSONProblem as err:
        raise UsageError(f"{err.at(str(src))}; give a `lemonade bench --json` result") from None
    hw = hardware(args.system_info, args.llama_devices)
    source = "detected on this machine" if not (args.system_info or args.llama_devices) else hw.source.split(":")[0]
    doc, scrub = build(bench, hw, facts_source=source, identifiers=[*machine_identifiers(), *args.redact])
    out = Path(args.out) if args.out else Path(src.name.removesuffix(".json") + ".submission.json")
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(out)
    removed = doc["anonymised"]["removed"]
    summary = {"file": str(out), "archetype": doc["archetype"]["id"], "models": len(doc["models"]),
               "results": len(doc["results"]), "removed": removed, "how_to_contribute": HOW.format(out=out.name)}
    if args.json:
        print_json("submission", summary)
        return 0
    gone = ", ".join(f"{n} {k}{'s' if n != 1 else ''}" for k, n in removed.items()) or "nothing"
    print(f"wrote {out}: {summary['models']} model(s), {summary['results']} result(s), archetype "
          f"{summary['archetype']} (facts {source})")
    print(f"removed: {gone}")
    print(summary["how_to_contribute"], file=sys.stderr)
    return 0
